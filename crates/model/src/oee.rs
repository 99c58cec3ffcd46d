//! ISO 22400-2 key performance indicators for a machine over a period, from the shift calendar,
//! the state timeline and the production records. Pure arithmetic on intervals.
//!
//! Definitions used (ISO 22400-2:2014, simplified to what a micro-factory reports):
//! - **Planned busy time (PBT)**: shift time in the period (calendar shifts minus holidays) minus
//!   planned stops.
//! - **Actual production time (APT)**: time in the `running` state within planned busy time.
//! - **Availability** = APT / PBT.
//! - **Effectiveness** (performance) = Σ (ideal unit time × produced quantity) / APT, with produced =
//!   good + scrap. A report's units were made before it, in planned busy time: their work ends at
//!   the report, or at the end of the last busy time before it when the report comes after a
//!   shift ended (a lot counted after the bell), and its ideal time lies in the busy time just
//!   before that end. A lot the machine was running for after the shift ended (its state
//!   `running` between the end of busy time and the report) was made in overtime and is left
//!   out. The units count in the period where their work ended; the ideal time counts in each
//!   period by the part of it that lies there, so a lot made across midnight lifts both days'
//!   performance by what was made in each, and periods add up to their whole.
//! - **Quality rate** = good / produced.
//! - **OEE** = availability × effectiveness × quality rate.
//!
//! Everything outside planned busy time (overtime, weekends) is left out of every term, so the
//! ratios stay comparable between periods. Ratios are `None` when their denominator is zero.

use serde::Serialize;

use crate::{Calendar, MachineState, ProductionRecord, Timestamp, Weekday, Zone};

/// A half-open time interval in Unix milliseconds.
pub type Span = (i64, i64);

/// A machine's state over an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSpan {
    /// Start, Unix milliseconds (inclusive).
    pub start_ms: i64,
    /// End, Unix milliseconds (exclusive).
    pub end_ms: i64,
    /// The state held over the span.
    pub state: MachineState,
    /// Why, for downtime and planned stops.
    pub reason: Option<String>,
}

/// The KPIs of one machine (or a sum of machines) over a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Kpis {
    /// Planned busy time in seconds.
    pub planned_busy_seconds: f64,
    /// Actual production time in seconds.
    pub actual_production_seconds: f64,
    /// Σ ideal unit time × produced, in seconds.
    pub ideal_production_seconds: f64,
    /// Units produced (good + scrap).
    pub produced: u64,
    /// Good units.
    pub good: u64,
    /// Scrapped units.
    pub scrap: u64,
    /// APT / PBT.
    pub availability: Option<f64>,
    /// Ideal production time / APT.
    pub effectiveness: Option<f64>,
    /// Good / produced.
    pub quality: Option<f64>,
    /// Availability × effectiveness × quality.
    pub oee: Option<f64>,
    /// Seconds of unplanned downtime (`down`, `offline`, `idle`, `setup`) within planned busy time,
    /// by reason (`unspecified` when none was given), largest first: the downtime Pareto.
    pub losses: Vec<Loss>,
    /// Scrapped units by the reason the person reporting them gave (`unspecified` when none was),
    /// most first: the scrap Pareto. They add up to `scrap`.
    pub scrap_reasons: Vec<ScrapCount>,
    /// Failures: stops in `down` that began within the period (one stop however often its
    /// reason changed), in or out of planned time, but for maintenance windows. A stop that began
    /// before the period is the earlier period's failure, however long it lasts.
    pub failures: u64,
    /// Seconds the machine was `down` within the period, in or out of planned time, but for
    /// maintenance windows.
    pub down_seconds: f64,
    /// Seconds the failures of the period were down, each from its start to its end (or to now,
    /// while it lasts), also past the period's end: their repair time.
    pub repair_seconds: f64,
    /// Mean time between failures (ISO 22400's MTBF, as actual production time per failure), in
    /// seconds; absent without failures.
    pub mtbf_seconds: Option<f64>,
    /// Mean time to repair (MTTR: repair time per failure), in seconds; absent without failures.
    pub mttr_seconds: Option<f64>,
}

/// One bar of the downtime Pareto.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Loss {
    /// The state the time was lost in.
    pub state: MachineState,
    /// The reason given, or `unspecified`.
    pub reason: String,
    /// Seconds lost.
    pub seconds: f64,
}

/// One bar of the scrap Pareto.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ScrapCount {
    /// The reason given, or `unspecified`.
    pub reason: String,
    /// Units scrapped for it.
    pub units: u64,
}

impl Kpis {
    /// Sums machines into a line or site figure: times and counts add up, ratios are recomputed
    /// from the sums (not averaged), as ISO 22400 aggregates.
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a Kpis>) -> Kpis {
        let mut total = Kpis::default();
        for part in parts {
            total.planned_busy_seconds += part.planned_busy_seconds;
            total.actual_production_seconds += part.actual_production_seconds;
            total.ideal_production_seconds += part.ideal_production_seconds;
            total.produced += part.produced;
            total.good += part.good;
            total.scrap += part.scrap;
            total.failures += part.failures;
            total.down_seconds += part.down_seconds;
            total.repair_seconds += part.repair_seconds;
            for loss in &part.losses {
                match total.losses.iter_mut().find(|l| l.state == loss.state && l.reason == loss.reason) {
                    Some(existing) => existing.seconds += loss.seconds,
                    None => total.losses.push(loss.clone()),
                }
            }
            for count in &part.scrap_reasons {
                add_scrap(&mut total.scrap_reasons, &count.reason, count.units);
            }
        }
        total.finish();
        total
    }

    fn finish(&mut self) {
        let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
        self.availability = ratio(self.actual_production_seconds, self.planned_busy_seconds);
        self.effectiveness = ratio(self.ideal_production_seconds, self.actual_production_seconds);
        self.quality = ratio(self.good as f64, self.produced as f64);
        let failures = self.failures as f64;
        self.mtbf_seconds = ratio(self.actual_production_seconds, failures);
        self.mttr_seconds = ratio(self.repair_seconds, failures);
        // A × E × Q; nothing produced leaves quality without a value, but no time or no output
        // in the planned time is an OEE of 0 whatever it would be (a machine running without
        // counting a unit has lost all its output, and shows 0 %, not "no data").
        self.oee = match (self.availability, self.effectiveness, self.quality) {
            (Some(a), Some(e), Some(q)) => Some(a * e * q),
            (Some(0.0), _, _) | (Some(_), Some(0.0), _) => Some(0.0),
            _ => None,
        };
        self.losses.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.reason.cmp(&b.reason)));
        self.scrap_reasons.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.reason.cmp(&b.reason)));
    }
}

/// Computes the KPIs of one machine over `[from_ms, to_ms)`.
///
/// `states` may be unsorted and may extend past the period; time not covered by any span counts
/// as `offline`. `production` may extend past the period too: a report after it may have ideal
/// time within it (planned stops among `states` after the period place that time). `zone` is the
/// site's local time, in which the calendar is written. A calendar without shifts plans the whole
/// period, as the planner reads it: a new site works around the clock until its shifts are
/// entered.
pub fn compute(
    calendar: &Calendar,
    zone: &Zone,
    from_ms: i64,
    to_ms: i64,
    states: &[StateSpan],
    production: &[ProductionRecord],
) -> Kpis {
    // Busy time up to the last report, where its units' ideal time is placed; the period's part
    // is what the KPIs count.
    let horizon = production.iter().map(|record| unix_ms(record.at)).max().unwrap_or(to_ms).max(to_ms);
    let shifts = if calendar.always_open() {
        vec![(from_ms, horizon)]
    } else {
        shift_spans(calendar, zone, from_ms, horizon)
    };
    let mut sorted: Vec<&StateSpan> = states.iter().collect();
    sorted.sort_by_key(|s| s.start_ms);
    let planned_stops: Vec<Span> = merge(
        sorted
            .iter()
            .filter(|s| s.state == MachineState::PlannedStop)
            .map(|s| (s.start_ms, s.end_ms))
            .collect(),
    );
    let busy_to_horizon = subtract(&shifts, &planned_stops);
    let busy = intersect(&busy_to_horizon, &[(from_ms, to_ms)]);

    let mut kpis = Kpis { planned_busy_seconds: total_ms(&busy) as f64 / 1000.0, ..Kpis::default() };
    // Walk the busy time and attribute every millisecond to the state covering it.
    let mut covered = Vec::new();
    for span in &sorted {
        if span.state == MachineState::PlannedStop {
            continue;
        }
        let inside = intersect(&busy, &[(span.start_ms, span.end_ms)]);
        let ms = total_ms(&inside);
        covered.extend(inside);
        if ms == 0 {
            continue;
        }
        let seconds = ms as f64 / 1000.0;
        if span.state == MachineState::Running {
            kpis.actual_production_seconds += seconds;
        } else {
            add_loss(&mut kpis.losses, span.state, span.reason.as_deref(), seconds);
        }
    }
    // Failures: whole stops in `down` (however often the reason changed), but for planned stops
    // (a machine down for its maintenance window has not failed). A stop fails where its
    // unplanned time begins, its start or the end of a window it outlasted; the period whose
    // failure it is takes its whole repair time, and a stop that began before the period none
    // (`states` begin with the state in force at `from_ms`, from when it really began).
    let mut stops: Vec<Span> = Vec::new();
    for span in sorted.iter().filter(|s| s.state == MachineState::Down) {
        match stops.last_mut() {
            Some(last) if span.start_ms <= last.1 => last.1 = last.1.max(span.end_ms),
            _ => stops.push((span.start_ms, span.end_ms)),
        }
    }
    let period = [(from_ms, to_ms)];
    for stop in stops {
        let pieces = subtract(&[stop], &planned_stops);
        kpis.down_seconds += total_ms(&intersect(&pieces, &period)) as f64 / 1000.0;
        if pieces.first().is_some_and(|&(failed, _)| (from_ms..to_ms).contains(&failed)) {
            kpis.failures += 1;
            kpis.repair_seconds += total_ms(&pieces) as f64 / 1000.0;
        }
    }
    let uncovered = total_ms(&subtract(&busy, &merge(covered)));
    if uncovered > 0 {
        add_loss(&mut kpis.losses, MachineState::Offline, Some("no data"), uncovered as f64 / 1000.0);
    }
    for record in production {
        // The work ended at the report, or at the end of the busy time last before it; with none
        // since the period began, it was all made before.
        let at = unix_ms(record.at);
        let Some(end) =
            busy_to_horizon.iter().take_while(|(start, _)| *start < at).last().map(|(_, end)| (*end).min(at))
        else {
            continue;
        };
        // A machine running between the end of busy time and the report made the lot in overtime,
        // which is left out of every term.
        if end < at
            && sorted.iter().any(|s| s.state == MachineState::Running && s.start_ms < at && s.end_ms > end)
        {
            continue;
        }
        let produced = u64::from(record.good) + u64::from(record.scrap);
        if from_ms < end && end <= to_ms {
            kpis.produced += produced;
            kpis.good += u64::from(record.good);
            kpis.scrap += u64::from(record.scrap);
            if record.scrap > 0 {
                let reason =
                    record.scrap_reason.as_deref().filter(|r| !r.is_empty()).unwrap_or("unspecified");
                add_scrap(&mut kpis.scrap_reasons, reason, u64::from(record.scrap));
            }
        }
        // Its ideal time fills the busy time back from the end; the part within the period counts
        // (what reaches back before the period belongs to earlier ones).
        let mut left = (record.ideal_unit_seconds * produced as f64 * 1000.0).round() as i64;
        let mut inside = 0;
        for &(start, stop) in busy_to_horizon.iter().rev().filter(|(start, _)| *start < end) {
            let stop = stop.min(end);
            let taken = left.min(stop - start);
            inside += (stop.min(to_ms) - (stop - taken).max(from_ms)).max(0);
            left -= taken;
            if left == 0 {
                break;
            }
        }
        kpis.ideal_production_seconds += inside as f64 / 1000.0;
    }
    kpis.finish();
    kpis
}

fn add_scrap(counts: &mut Vec<ScrapCount>, reason: &str, units: u64) {
    match counts.iter_mut().find(|c| c.reason == reason) {
        Some(count) => count.units += units,
        None => counts.push(ScrapCount { reason: reason.to_string(), units }),
    }
}

fn add_loss(losses: &mut Vec<Loss>, state: MachineState, reason: Option<&str>, seconds: f64) {
    let reason = reason.filter(|r| !r.is_empty()).unwrap_or("unspecified");
    match losses.iter_mut().find(|l| l.state == state && l.reason == reason) {
        Some(loss) => loss.seconds += seconds,
        None => losses.push(Loss { state, reason: reason.to_string(), seconds }),
    }
}

/// The calendar's working time within `[from_ms, to_ms)`, as sorted disjoint spans. Shifts start
/// and end at their local times of day, so with a zone's daylight-saving change a shift across
/// it is an hour shorter or longer. A calendar without shifts works whole days, but for its
/// holidays.
pub fn shift_spans(calendar: &Calendar, zone: &Zone, from_ms: i64, to_ms: i64) -> Vec<Span> {
    let spans = shifts_overlapping(calendar, zone, from_ms, to_ms).into_iter().map(|(span, _)| span);
    merge(spans.map(|(s, e)| (s.max(from_ms), e.min(to_ms))).filter(|(s, e)| s < e).collect())
}

/// The shift in progress at `at_ms`, or else the last one that ended before it: its whole span
/// and its name (a calendar without shifts works whole days, each named ""). `None` when none
/// lies in the week before.
pub fn shift_at(calendar: &Calendar, zone: &Zone, at_ms: i64) -> Option<(Span, String)> {
    const WEEK_MS: i64 = 7 * 86_400_000;
    let shifts = shifts_overlapping(calendar, zone, at_ms - WEEK_MS, at_ms + 1);
    let (current, ended): (Vec<_>, Vec<_>) =
        shifts.into_iter().partition(|((start, end), _)| *start <= at_ms && at_ms < *end);
    // Of overlapping shifts, the one begun last.
    current
        .into_iter()
        .max_by_key(|((start, _), _)| *start)
        .or_else(|| ended.into_iter().filter(|((_, end), _)| *end <= at_ms).max_by_key(|((_, end), _)| *end))
}

/// Every shift (or whole working day, for a calendar without shifts) that overlaps
/// `[from_ms, to_ms)`, whole and unmerged, with its name.
fn shifts_overlapping(calendar: &Calendar, zone: &Zone, from_ms: i64, to_ms: i64) -> Vec<(Span, String)> {
    const DAY_MS: i64 = 86_400_000;
    let first_day = (from_ms + i64::from(zone.offset_minutes_at(from_ms)) * 60_000).div_euclid(DAY_MS) - 1;
    let last_day = (to_ms + i64::from(zone.offset_minutes_at(to_ms)) * 60_000).div_euclid(DAY_MS);
    let mut spans = Vec::new();
    for day in first_day..=last_day {
        let Some(date) = date_of_day(day) else { continue };
        if calendar.holidays.contains(&date) {
            continue;
        }
        let local_midnight = day * DAY_MS;
        if calendar.shifts.is_empty() {
            let (start, end) =
                (zone.instant_of_local(local_midnight), zone.instant_of_local(local_midnight + DAY_MS));
            spans.push(((start, end), String::new()));
        }
        let weekday = Weekday::from_time(date.weekday());
        for shift in &calendar.shifts {
            let Some((start, end)) = shift.minutes() else { continue };
            if !shift.days.contains(&weekday) {
                continue;
            }
            let start_ms = zone.instant_of_local(local_midnight + i64::from(start) * 60_000);
            let end_minutes = if end > start { i64::from(end) } else { i64::from(end) + 1440 };
            let end_ms = zone.instant_of_local(local_midnight + end_minutes * 60_000);
            spans.push(((start_ms, end_ms), shift.name.clone()));
        }
    }
    spans.retain(|((start, end), _)| start < end && *start < to_ms && *end > from_ms);
    spans.sort_by_key(|(span, _)| *span);
    spans
}

fn date_of_day(day: i64) -> Option<time::Date> {
    let julian = i32::try_from(day + 2_440_588).ok()?;
    time::Date::from_julian_day(julian).ok()
}

/// Sorts and merges overlapping or touching spans.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|(s, e)| s < e);
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// `a ∩ b` for sorted disjoint span lists.
pub fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// `a − b` for sorted disjoint span lists.
pub fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(start, end) in a {
        let mut cursor = start;
        for &(b_start, b_end) in b {
            if b_end <= cursor || b_start >= end {
                continue;
            }
            if b_start > cursor {
                out.push((cursor, b_start));
            }
            cursor = cursor.max(b_end);
        }
        if cursor < end {
            out.push((cursor, end));
        }
    }
    out
}

fn total_ms(spans: &[Span]) -> i64 {
    spans.iter().map(|(s, e)| e - s).sum()
}

/// Milliseconds since the Unix epoch of a timestamp.
pub fn unix_ms(at: Timestamp) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The timestamp of milliseconds since the Unix epoch (the inverse of [`unix_ms`]); `None` out of
/// the representable range.
pub fn from_unix_ms(ms: i64) -> Option<Timestamp> {
    Timestamp::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
