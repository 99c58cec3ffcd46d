//! SVG drawing shared by the pages: numbers formatted for attributes and small chart pieces.
//!
//! Everything here is a pure function of its input: axis ticks and nice numbers, a linear
//! scale, a time-series chart (the average as a line over a min–max band), horizontal bars, an
//! inline meter for table cells, and a timeline of coloured spans. Text goes through maud, so it
//! is escaped; numbers go through [`num`], so attributes stay short (one decimal) and a NaN never
//! reaches the browser. The drawings stretch to their container's width; the words on them
//! (titles, axis labels, values) are HTML around the SVG, so they keep their size on a tablet and
//! on a wide screen alike. Their classes (`tchart-*`, `hbars`, `meter`, `timeline-*`) are styled
//! in `app.css`.

use maud::{Markup, html};
use model::{MachineState, Zone};
use time::OffsetDateTime;

/// The fill of a machine state, the same colours as the style sheet's `--running` and so on.
pub(crate) fn state_fill(state: MachineState) -> &'static str {
    match state {
        MachineState::Running => "#1a7f37",
        MachineState::Idle => "#975a16",
        MachineState::Setup => "#2b6cb0",
        MachineState::Down => "#c53030",
        MachineState::Offline => "#4b5563",
        MachineState::PlannedStop => "#6b46c1",
    }
}

/// The fill of time nothing is known about.
pub(crate) const UNKNOWN_FILL: &str = "#e5e7eb";
/// Grid lines and tracks.
const GRID: &str = "#e4e7eb";

/// Appends `value` with at most one decimal and no trailing `.0`; non-finite values become `0`
/// and magnitudes are capped at a billion, so an attribute can never carry `NaN` or `inf`.
pub(crate) fn push_num(out: &mut String, value: f64) {
    use std::fmt::Write as _;
    let value = if value.is_finite() { value.clamp(-1e9, 1e9) } else { 0.0 };
    // Tenths as an integer: exact, fast, and no `-0`.
    let tenths = (value * 10.0).round() as i64;
    if tenths < 0 {
        out.push('-');
    }
    let tenths = tenths.unsigned_abs();
    let _ = write!(out, "{}", tenths / 10);
    if !tenths.is_multiple_of(10) {
        out.push('.');
        out.push(char::from(b'0' + (tenths % 10) as u8));
    }
}

/// `value` as [`push_num`] writes it.
pub(crate) fn num(value: f64) -> String {
    let mut out = String::with_capacity(8);
    push_num(&mut out, value);
    out
}

/// A linear map from data values to drawing coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    /// Maps `domain` onto `range` (either may run backwards, as a value axis does).
    pub(crate) fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        Scale { d0: domain.0, d1: domain.1, r0: range.0, r1: range.1 }
    }

    /// Where `value` goes. An empty or broken domain maps everything to the middle of the
    /// range; a non-finite value maps to the range's start.
    pub(crate) fn at(&self, value: f64) -> f64 {
        let span = self.d1 - self.d0;
        if !value.is_finite() {
            return self.r0;
        }
        if !span.is_finite() || span == 0.0 {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (value - self.d0) / span * (self.r1 - self.r0)
    }
}

/// Round axis values: `values` run from `min` to `max` in steps of `step` (1, 2, 2.5 or 5 times
/// a power of ten), and `min..=max` covers the data.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ticks {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) step: f64,
    pub(crate) values: Vec<f64>,
}

impl Ticks {
    /// A tick value as text, with as many decimals as the step needs.
    pub(crate) fn label(&self, value: f64) -> String {
        let decimals = (0..6)
            .find(|d| {
                let scaled = self.step * 10f64.powi(*d);
                (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
            })
            .unwrap_or(6) as usize;
        let text = format!("{value:.decimals$}");
        // `-0`, `-0.0` and the like read as zero.
        if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
            text.trim_start_matches('-').to_string()
        } else {
            text
        }
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10ⁿ that is at least `raw` (positive and finite).
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 2.5 {
        2.5
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// At most `most` (at least 2) round values covering `low..=high`. Non-finite bounds are
/// ignored; with no usable bound the axis runs from 0 to 1, and a single value gets some room
/// around it.
pub(crate) fn nice_ticks(low: f64, high: f64, most: usize) -> Ticks {
    let most = most.max(2);
    let (mut low, mut high) = match (low.is_finite(), high.is_finite()) {
        (true, true) => (low.min(high), low.max(high)),
        (true, false) => (low, low),
        (false, true) => (high, high),
        (false, false) => (0.0, 1.0),
    };
    if high - low <= f64::EPSILON * low.abs().max(1.0) {
        let pad = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
        low -= if low == 0.0 { 0.0 } else { pad };
        high += pad;
    }
    let mut step = nice_step((high - low) / (most - 1) as f64);
    loop {
        let first = (low / step).floor();
        let last = (high / step).ceil();
        let count = (last - first) as usize + 1;
        if count <= most || !step.is_finite() {
            let values: Vec<f64> = (0..count).map(|i| (first + i as f64) * step).collect();
            return Ticks { min: first * step, max: last * step, step, values };
        }
        step = nice_step(step * 1.000_001);
    }
}

/// A tick of a time axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TimeTick {
    /// Unix milliseconds.
    pub(crate) at_ms: i64,
    /// `14:00`, or the date `11-24` at local midnight and on axes of whole days.
    pub(crate) label: String,
}

/// Steps a time axis may use, in minutes.
const TIME_STEPS: [i64; 16] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440, 2880, 10_080, 43_200];

/// At most `most` ticks on round local times of `zone` within `from_ms..=to_ms`. Across a
/// daylight-saving change the ticks keep to round local times, so one step is an hour longer or
/// shorter.
pub(crate) fn time_ticks(from_ms: i64, to_ms: i64, zone: &Zone, most: usize) -> Vec<TimeTick> {
    if to_ms <= from_ms || most == 0 {
        return Vec::new();
    }
    let span_minutes = (to_ms - from_ms) / 60_000;
    let step_minutes =
        TIME_STEPS.into_iter().find(|step| span_minutes / step < most as i64).unwrap_or(TIME_STEPS[15]);
    let step = step_minutes * 60_000;
    // Round times are counted on the local clock (milliseconds of wall time, read as UTC).
    let shift = i64::from(zone.offset_minutes_at(from_ms)) * 60_000;
    let mut wall = (from_ms + shift).div_euclid(step) * step;
    let mut ticks: Vec<TimeTick> = Vec::new();
    while ticks.len() <= most {
        let at = zone.instant_of_local(wall);
        let local = OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        wall += step;
        if at > to_ms {
            break;
        }
        if at < from_ms {
            continue;
        }
        // A time the clocks skipped lands on the instant of the next, which keeps its label.
        if ticks.last().is_some_and(|last| last.at_ms >= at) {
            ticks.pop();
        }
        let midnight = local.hour() == 0 && local.minute() == 0;
        let label = if midnight || step_minutes >= 1440 {
            format!("{:02}-{:02}", u8::from(local.month()), local.day())
        } else {
            format!("{:02}:{:02}", local.hour(), local.minute())
        };
        ticks.push(TimeTick { at_ms: at, label });
    }
    ticks
}

/// A measured value as text: three significant-ish digits, no trailing zeros.
pub(crate) fn value_text(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_string();
    }
    let decimals = match value.abs() {
        a if a >= 100.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_string() } else { text.to_string() }
}

/// One point of a time series: the spread and the mean over a step (or one raw reading).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BandPoint {
    /// Where the point goes on the time axis, Unix milliseconds.
    pub(crate) at_ms: i64,
    pub(crate) min: f64,
    pub(crate) avg: f64,
    pub(crate) max: f64,
}

/// A time-series chart: what [`time_chart`] draws.
pub(crate) struct TimeChart<'a> {
    /// Drawn at the top left: the metric's name.
    pub(crate) title: &'a str,
    /// What a screen reader says about the chart.
    pub(crate) aria_label: &'a str,
    /// Drawn at the top right and as the last point's tooltip, e.g. `41.2 °C · 14:05`.
    pub(crate) last_text: &'a str,
    /// The value the last point's marker sits on (the latest reading), if any.
    pub(crate) last_value: Option<f64>,
    /// Said in the middle of the chart when there are no points.
    pub(crate) empty_text: &'a str,
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
    /// The local time of the time axis.
    pub(crate) zone: Zone,
    /// In time order.
    pub(crate) points: &'a [BandPoint],
    /// Neighbours further apart than this (or than three times the usual spacing, whichever is
    /// longer) are not joined: the line breaks where data is missing.
    pub(crate) gap_ms: i64,
    /// The line's colour; the band is the same colour, faint.
    pub(crate) colour: &'a str,
}

/// The drawing space of a chart's plot: x from 0 to `PLOT_W`, y from 0 (top) to `PLOT_H`. The
/// plot stretches to its box (`preserveAspectRatio="none"`), strokes keep their width
/// (`vector-effect`), and the axis labels are HTML, so text keeps its size at any width.
const PLOT_W: f64 = 1000.0;
const PLOT_H: f64 = 100.0;

/// Splits `points` (finite ones only) into runs without gaps longer than `gap_ms` or three times
/// the median spacing.
fn runs(points: &[BandPoint], gap_ms: i64) -> Vec<&[BandPoint]> {
    let mut spacing: Vec<i64> = points.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    let median = if spacing.is_empty() {
        0
    } else {
        let middle = spacing.len() / 2;
        *spacing.select_nth_unstable(middle).1
    };
    let gap = gap_ms.max(median.saturating_mul(3));
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].at_ms - points[i - 1].at_ms > gap {
            out.push(&points[start..i]);
            start = i;
        }
    }
    out.retain(|run| !run.is_empty());
    out
}

/// A time-series chart: the average as a line over a faint min–max band, with a value axis of
/// round numbers, a time axis in local time and the latest value marked. Non-finite points are
/// left out; with no points the plot says `empty_text`. The SVG holds only the plot; title, last
/// value and axis labels are HTML around it (classes `tchart` and `tchart-*`).
pub(crate) fn time_chart(chart: &TimeChart) -> Markup {
    let points: Vec<BandPoint> = chart
        .points
        .iter()
        .filter(|p| p.min.is_finite() && p.avg.is_finite() && p.max.is_finite())
        .copied()
        .collect();
    let last_value = chart.last_value.filter(|v| v.is_finite());
    let (low, high) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), p| {
        (low.min(p.min).min(p.avg), high.max(p.max).max(p.avg))
    });
    let (low, high) = last_value.map_or((low, high), |v| (low.min(v), high.max(v)));
    let ticks = nice_ticks(low, high, 5);
    let x = Scale::new((chart.from_ms as f64, chart.to_ms as f64), (0.0, PLOT_W));
    let y = Scale::new((ticks.min, ticks.max), (PLOT_H, 0.0));
    let time_ticks = time_ticks(chart.from_ms, chart.to_ms, &chart.zone, 6);
    let clamp_x = |at: i64| x.at(at.clamp(chart.from_ms, chart.to_ms) as f64);
    let label_chars = ticks.values.iter().map(|v| ticks.label(*v).chars().count()).max().unwrap_or(1);

    let mut band = String::with_capacity(points.len() * 26);
    let mut line = String::with_capacity(points.len() * 13);
    for run in runs(&points, chart.gap_ms) {
        line.push('M');
        for (i, p) in run.iter().enumerate() {
            if i > 0 {
                line.push('L');
            }
            push_num(&mut line, clamp_x(p.at_ms));
            line.push(' ');
            push_num(&mut line, y.at(p.avg));
        }
        if run.len() == 1 {
            // A lone point: a zero-length stroke with round caps draws a dot.
            line.push_str("h0");
        }
        if run.iter().any(|p| p.max > p.min) {
            band.push('M');
            for (i, p) in run.iter().enumerate() {
                if i > 0 {
                    band.push('L');
                }
                push_num(&mut band, clamp_x(p.at_ms));
                band.push(' ');
                push_num(&mut band, y.at(p.max));
            }
            for p in run.iter().rev() {
                band.push('L');
                push_num(&mut band, clamp_x(p.at_ms));
                band.push(' ');
                push_num(&mut band, y.at(p.min));
            }
            band.push('Z');
        }
    }
    let marker = points.last().map(|p| {
        let mut d = String::from("M");
        push_num(&mut d, clamp_x(p.at_ms));
        d.push(' ');
        push_num(&mut d, y.at(last_value.unwrap_or(p.avg)));
        d.push_str("h0");
        d
    });
    let share = |v: f64, of: f64| num(v / of * 100.0);
    html! {
        div.tchart {
            div.tchart-head {
                span.tchart-title { (chart.title) }
                @if !points.is_empty() { span.tchart-last { (chart.last_text) } }
            }
            div.tchart-frame {
                div.tchart-y style={ "width:" (label_chars + 1) "ch" } aria-hidden="true" {
                    @for value in &ticks.values {
                        span style={ "top:" (share(y.at(*value), PLOT_H)) "%" } { (ticks.label(*value)) }
                    }
                }
                div.tchart-plot {
                    svg viewBox={ "0 0 " (num(PLOT_W)) " " (num(PLOT_H)) } preserveAspectRatio="none" role="img"
                        aria-label=(chart.aria_label) {
                        g stroke=(GRID) stroke-width="1" {
                            @for value in &ticks.values {
                                @let at = num(y.at(*value));
                                line x1="0" x2=(num(PLOT_W)) y1=(at) y2=(at) vector-effect="non-scaling-stroke" {}
                            }
                            @for tick in &time_ticks {
                                @let at = num(x.at(tick.at_ms as f64));
                                line x1=(at) x2=(at) y1="0" y2=(num(PLOT_H)) vector-effect="non-scaling-stroke" {}
                            }
                        }
                        @if !band.is_empty() {
                            path d=(band) fill=(chart.colour) fill-opacity="0.16" stroke="none" {}
                        }
                        @if !line.is_empty() {
                            path d=(line) fill="none" stroke=(chart.colour) stroke-width="1.8" stroke-linejoin="round"
                                stroke-linecap="round" vector-effect="non-scaling-stroke" {}
                        }
                        @if let Some(marker) = &marker {
                            path d=(marker) stroke="#fff" stroke-width="10" stroke-linecap="round"
                                vector-effect="non-scaling-stroke" {}
                            path d=(marker) stroke=(chart.colour) stroke-width="7" stroke-linecap="round"
                                vector-effect="non-scaling-stroke" {
                                title { (chart.last_text) }
                            }
                        }
                    }
                    @if points.is_empty() { span.tchart-empty { (chart.empty_text) } }
                    div.tchart-x aria-hidden="true" {
                        @for tick in &time_ticks {
                            @let at = x.at(tick.at_ms as f64) / PLOT_W * 100.0;
                            @if (3.0..=97.0).contains(&at) {
                                span style={ "left:" (num(at)) "%" } { (tick.label) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One bar of [`hbars`].
pub(crate) struct HBar<'a> {
    pub(crate) label: &'a str,
    /// In the units of the chart's `max`; non-finite or negative draws no bar.
    pub(crate) value: f64,
    /// Written after the bar, e.g. `87.5 %`.
    pub(crate) text: &'a str,
    pub(crate) fill: &'a str,
    /// The tooltip, when there is more to say than the text.
    pub(crate) title: Option<&'a str>,
}

/// Horizontal bars from a common zero, each on a full-length track so an empty bar still shows
/// its scale: label, bar and value text in a grid (class `hbars`), the words as HTML so they
/// read at any width and to a screen reader, the bars as [`meter`]s.
pub(crate) fn hbars(bars: &[HBar], max: f64, aria_label: &str) -> Markup {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    html! {
        div.hbars role="group" aria-label=(aria_label) {
            @for bar in bars {
                span.hbar-label title=[bar.title] { (bar.label) }
                (meter(bar.value / max, bar.fill, 100.0, 10.0))
                span.hbar-value { (bar.text) }
            }
        }
    }
}

/// A small bar for a table cell, `fraction` (0 to 1) of its track filled. Decorative: the
/// numbers belong in the neighbouring cells.
pub(crate) fn meter(fraction: f64, fill: &str, width: f64, height: f64) -> Markup {
    let fraction = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
    html! {
        svg.meter viewBox={ "0 0 " (num(width)) " " (num(height)) } width=(num(width)) height=(num(height))
            preserveAspectRatio="none" aria-hidden="true" focusable="false" {
            rect width=(num(width)) height=(num(height)) rx="2" fill=(GRID) {}
            @if fraction > 0.0 {
                rect width=(num((width * fraction).max(1.0))) height=(num(height)) rx="2" fill=(fill) {}
            }
        }
    }
}

/// One span of a [`timeline`].
pub(crate) struct Span<'a> {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) fill: &'a str,
    /// The tooltip: what, why, from when to when.
    pub(crate) title: String,
}

/// A timeline: what [`timeline`] draws.
pub(crate) struct Timeline<'a> {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
    pub(crate) zone: Zone,
    /// In time order, not overlapping; time no span covers is drawn as unknown.
    pub(crate) spans: &'a [Span<'a>],
    pub(crate) aria_label: &'a str,
    /// Units across, about the pixels it is usually shown at: how finely slivers merge and how
    /// many ticks the axis gets.
    pub(crate) width: f64,
}

/// One bar across `from_ms..to_ms` with a coloured rectangle per span, each with its tooltip,
/// over a local-time axis. The bar stretches to its container's width while the axis labels are
/// HTML (classes `timeline`, `timeline-bar`, `timeline-axis`), so they keep their size on a
/// tablet and on a wide screen alike. Spans too narrow to see still get a sliver, so a short stop
/// is not lost, but a run of them shares one rectangle at most half a unit (of `width`) wide,
/// with the first one's colour and tooltip, so a week of frequent changes stays a small page.
pub(crate) fn timeline(chart: &Timeline) -> Markup {
    let width = chart.width.max(120.0);
    let x = Scale::new((chart.from_ms as f64, chart.to_ms as f64), (0.0, width));
    let ticks = time_ticks(chart.from_ms, chart.to_ms, &chart.zone, (width / 85.0) as usize);
    // (x0, x1, span), runs of slivers merged into rectangles at most half a unit wide.
    let mut rects: Vec<(f64, f64, &Span)> = Vec::with_capacity(chart.spans.len());
    for span in chart.spans {
        let start = span.start_ms.clamp(chart.from_ms, chart.to_ms);
        let end = span.end_ms.clamp(chart.from_ms, chart.to_ms);
        if end <= start {
            continue;
        }
        let (x0, x1) = (x.at(start as f64), x.at(end as f64));
        match rects.last_mut() {
            Some(last) if x1 - last.0 < 0.5 => last.1 = x1,
            _ => rects.push((x0, x1, span)),
        }
    }
    html! {
        div.timeline {
            svg.timeline-bar viewBox={ "0 0 " (num(width)) " 1" } preserveAspectRatio="none"
                shape-rendering="crispEdges" role="img" aria-label=(chart.aria_label) {
                rect width=(num(width)) height="1" fill=(UNKNOWN_FILL) {}
                // Each rectangle reaches a little under the next, so no seam of background shows.
                @for (x0, x1, span) in &rects {
                    @let w = (x1 - x0 + 0.4).max(0.6).min(width - x0);
                    rect x=(num(*x0)) width=(num(w)) height="1" fill=(span.fill) {
                        title { (span.title) }
                    }
                }
            }
            div.timeline-axis aria-hidden="true" {
                @for tick in &ticks {
                    @let share = x.at(tick.at_ms as f64) / width * 100.0;
                    @if (2.5..=97.5).contains(&share) {
                        span style={ "left:" (num(share)) "%" } { (tick.label) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn numbers_are_compact_and_never_nan() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(-0.04), "0");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(12.35), "12.4");
        assert_eq!(num(-3.96), "-4");
        assert_eq!(num(-3.94), "-3.9");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(f64::INFINITY), "0");
        assert_eq!(num(1e300), "1000000000");
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let ticks = nice_ticks(3.2, 97.1, 5);
        assert_eq!(ticks.values, vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        for (low, high, most) in
            [(0.0, 1.0, 5), (-7.5, 13.0, 4), (1013.2, 1013.9, 5), (0.001, 0.0042, 5), (-50.0, -2.0, 6)]
        {
            let ticks = nice_ticks(low, high, most);
            assert!((3..=most).contains(&ticks.values.len()), "{low}..{high}: {ticks:?}");
            assert!(ticks.min <= low && ticks.max >= high, "{low}..{high}: {ticks:?}");
            let mantissa = ticks.step / 10f64.powf(ticks.step.log10().floor());
            assert!([1.0, 2.0, 2.5, 5.0].iter().any(|m| (m - mantissa).abs() < 1e-9), "{ticks:?}");
        }
        assert_eq!(nice_ticks(0.0, 100.0, 3).values, vec![0.0, 50.0, 100.0]);
        assert_eq!(nice_ticks(1013.2, 1013.9, 5).values.len(), 5);
        assert_eq!(nice_ticks(0.0, 1.0, 6).values.len(), 6);
    }

    #[test]
    fn ticks_survive_flat_reversed_and_broken_input() {
        let flat = nice_ticks(20.0, 20.0, 5);
        assert!(flat.min < 20.0 && flat.max > 20.0, "{flat:?}");
        let zero = nice_ticks(0.0, 0.0, 5);
        assert_eq!((zero.min, zero.max), (0.0, 1.0));
        assert_eq!(nice_ticks(10.0, 0.0, 5), nice_ticks(0.0, 10.0, 5));
        let broken = nice_ticks(f64::NAN, f64::INFINITY, 5);
        assert_eq!((broken.min, broken.max), (0.0, 1.0));
        let half = nice_ticks(f64::NAN, 4.0, 5);
        assert!(half.min < 4.0 && half.max > 4.0, "{half:?}");
        assert!(nice_ticks(0.0, 1.0, 0).values.len() >= 2);
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        let ticks = nice_ticks(0.0, 1.0, 6);
        assert_eq!(ticks.label(0.2 + 0.1 - 0.1), "0.2");
        assert_eq!(nice_ticks(0.0, 100.0, 5).label(50.0), "50");
        assert_eq!(nice_ticks(0.0, 10.0, 5).label(7.5), "7.5");
        assert_eq!(nice_ticks(-1.0, 1.0, 5).label(-0.0000001), "0.0");
        assert_eq!(nice_ticks(0.0, 0.01, 6).label(0.004), "0.004");
    }

    #[test]
    fn scale_maps_linearly_and_safely() {
        let scale = Scale::new((0.0, 10.0), (100.0, 0.0));
        assert_eq!(scale.at(0.0), 100.0);
        assert_eq!(scale.at(2.5), 75.0);
        assert_eq!(scale.at(10.0), 0.0);
        assert_eq!(scale.at(f64::NAN), 100.0);
        assert_eq!(Scale::new((5.0, 5.0), (0.0, 10.0)).at(5.0), 5.0);
        assert_eq!(Scale::new((f64::NAN, 5.0), (0.0, 10.0)).at(1.0), 5.0);
    }

    #[test]
    fn time_ticks_fall_on_round_local_times() {
        // 2026-11-24 09:07 +08:00 to 17:07: every hour or two, on the hour in Hong Kong.
        let from = 1_795_482_420_000;
        let ticks = time_ticks(from, from + 8 * HOUR, &Zone::fixed(480), 6);
        assert!(!ticks.is_empty() && ticks.len() <= 7, "{ticks:?}");
        assert!(ticks.iter().all(|t| (t.at_ms + 8 * HOUR) % (2 * HOUR) == 0), "{ticks:?}");
        assert_eq!(ticks[0].label, "10:00");
        // Over midnight the date replaces 00:00; a week is labelled by days.
        let day = time_ticks(from, from + 24 * HOUR, &Zone::fixed(480), 8);
        assert!(day.iter().any(|t| t.label == "11-25"), "{day:?}");
        let week = time_ticks(from, from + 7 * 24 * HOUR, &Zone::fixed(480), 8);
        assert_eq!(week.first().map(|t| t.label.as_str()), Some("11-25"));
        assert!(week.iter().all(|t| t.label.contains('-')), "{week:?}");
        assert!(time_ticks(from, from, &Zone::fixed(480), 5).is_empty());
        assert!(time_ticks(from, from - 1, &Zone::fixed(480), 5).is_empty());
    }

    #[test]
    fn time_ticks_keep_to_local_hours_across_summer_time() {
        // Berlin, 2026-03-29 00:00 to 06:00 local (23:00 to 04:00 UTC): 02:00 does not exist.
        let berlin = Zone::named("Europe/Berlin").unwrap();
        let from = 1_774_738_800_000; // 2026-03-28 23:00 UTC
        let ticks = time_ticks(from, from + 5 * HOUR, &berlin, 6);
        let labels: Vec<(i64, &str)> =
            ticks.iter().map(|t| ((t.at_ms - from) / HOUR, t.label.as_str())).collect();
        assert_eq!(
            labels,
            [(0, "03-29"), (1, "01:00"), (2, "03:00"), (3, "04:00"), (4, "05:00"), (5, "06:00")]
        );
    }

    #[test]
    fn values_read_well() {
        assert_eq!(value_text(41.234), "41.23");
        assert_eq!(value_text(1234.56), "1234.6");
        assert_eq!(value_text(0.0), "0");
        assert_eq!(value_text(-0.0001), "0");
        assert_eq!(value_text(2.5), "2.5");
        assert_eq!(value_text(f64::NAN), "—");
    }

    fn point(minute: i64, value: f64) -> BandPoint {
        BandPoint { at_ms: minute * 60_000, min: value - 1.0, avg: value, max: value + 1.0 }
    }

    fn chart<'a>(points: &'a [BandPoint], title: &'a str) -> TimeChart<'a> {
        TimeChart {
            title,
            aria_label: title,
            last_text: "last",
            last_value: points.last().map(|p| p.avg),
            empty_text: "No data",
            from_ms: 0,
            to_ms: 60 * 60_000,
            zone: Zone::fixed(480),
            points,
            gap_ms: 120_000,
            colour: "#0b5cad",
        }
    }

    #[test]
    fn a_chart_draws_line_band_axes_and_the_last_value() {
        let points: Vec<BandPoint> = (0..60).map(|m| point(m, 20.0 + (m % 7) as f64)).collect();
        let svg = time_chart(&chart(&points, "temperature_c")).into_string();
        assert!(
            svg.contains(r#"<svg viewBox="0 0 1000 100" preserveAspectRatio="none" role="img""#),
            "{svg}"
        );
        assert_eq!(svg.matches("<path").count(), 4, "a band, a line and the last point's marker");
        assert!(svg.contains(">temperature_c</span>"));
        // Five value ticks from 17.5 to 27.5 around 19 to 27, labelled from the bottom up.
        assert!(svg.contains(r#"<span style="top:0%">27.5</span>"#), "{svg}");
        assert!(svg.contains(r#"<span style="top:100%">17.5</span>"#), "{svg}");
        assert!(svg.contains("<title>last</title>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // One subpath each: the data has no gap.
        let line = svg.split("<path").nth(2).unwrap();
        assert_eq!(line.matches('M').count(), 1, "{line}");
    }

    #[test]
    fn a_chart_breaks_at_gaps_and_skips_broken_points() {
        let mut points: Vec<BandPoint> = (0..10).map(|m| point(m, 5.0)).collect();
        points.push(BandPoint { at_ms: 10 * 60_000, min: f64::NAN, avg: f64::NAN, max: f64::NAN });
        points.extend((40..50).map(|m| point(m, 6.0)));
        let svg = time_chart(&chart(&points, "gap")).into_string();
        let line = svg.split("<path").nth(2).unwrap();
        assert_eq!(line.matches('M').count(), 2, "{line}");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = time_chart(&chart(&[], "empty")).into_string();
        assert!(svg.contains(">No data</span>"));
        assert!(!svg.contains("<path"));
        let broken = [BandPoint { at_ms: 0, min: f64::NAN, avg: f64::INFINITY, max: 1.0 }];
        let svg = time_chart(&chart(&broken, "broken")).into_string();
        assert!(svg.contains(">No data</span>") && !svg.contains("NaN"));
    }

    #[test]
    fn text_is_escaped() {
        let points = [point(1, 1.0)];
        let svg = time_chart(&chart(&points, "<script>alert(\"x\")</script>")).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        let bars = hbars(
            &[HBar { label: "a<b", value: 0.5, text: "50 %", fill: "#000", title: Some("\"q\" & <t>") }],
            1.0,
            "x\"y",
        )
        .into_string();
        assert!(bars.contains("a&lt;b") && bars.contains("&quot;q&quot; &amp; &lt;t&gt;"));
        assert!(bars.contains("aria-label=\"x&quot;y\""));
        let spans = [Span { start_ms: 0, end_ms: HOUR, fill: "#000", title: "</title><script>".into() }];
        let line = timeline(&Timeline {
            from_ms: 0,
            to_ms: HOUR,
            zone: Zone::UTC,
            spans: &spans,
            aria_label: "t",
            width: 1000.0,
        })
        .into_string();
        assert!(!line.contains("<script>"));
    }

    #[test]
    fn bars_scale_to_their_maximum_and_clamp() {
        let bars = [
            HBar { label: "half", value: 0.5, text: "50 %", fill: "#111", title: None },
            HBar { label: "none", value: f64::NAN, text: "—", fill: "#222", title: None },
            HBar { label: "over", value: 3.0, text: "300 %", fill: "#333", title: None },
        ];
        let svg = hbars(&bars, 1.0, "bars").into_string();
        assert!(svg.contains("fill=\"#111\"") && svg.contains("fill=\"#333\""));
        assert!(!svg.contains("fill=\"#222\""), "no bar for a missing value");
        assert!(!svg.contains("NaN"));
        assert!(svg.contains(">300 %</span>") && svg.matches("<svg").count() == 3);
        let meter = meter(f64::NAN, "#111", 100.0, 8.0).into_string();
        assert!(!meter.contains("#111") && meter.contains("aria-hidden"));
        assert!(super::meter(0.25, "#111", 100.0, 8.0).into_string().contains("width=\"25\""));
    }

    #[test]
    fn a_timeline_covers_its_range_and_merges_slivers() {
        let spans: Vec<Span> = (0..1000)
            .map(|i| Span {
                start_ms: i * 1000,
                end_ms: (i + 1) * 1000,
                fill: if i % 2 == 0 { "#1a7f37" } else { "#c53030" },
                title: format!("span {i}"),
            })
            .chain([Span {
                start_ms: 1_000_000,
                end_ms: 7 * 24 * HOUR,
                fill: "#975a16",
                title: "long".into(),
            }])
            .collect();
        let svg = timeline(&Timeline {
            from_ms: 0,
            to_ms: 7 * 24 * HOUR,
            zone: Zone::UTC,
            spans: &spans,
            aria_label: "states",
            width: 1000.0,
        })
        .into_string();
        // 1000 seconds of a week are 1.7 units wide: a handful of rectangles, not a thousand.
        assert!(svg.matches("<rect").count() < 10, "{svg}");
        assert!(svg.contains("<title>long</title>"));
        assert!(svg.contains(">01-02</span>"), "day ticks: {svg}");
        let empty = timeline(&Timeline {
            from_ms: 0,
            to_ms: HOUR,
            zone: Zone::UTC,
            spans: &[],
            aria_label: "none",
            width: 1000.0,
        })
        .into_string();
        assert_eq!(empty.matches("<rect").count(), 1, "just the unknown background");
    }
}
