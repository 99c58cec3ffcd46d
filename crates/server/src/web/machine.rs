//! The machine page: time-series charts with range presets, the state timeline, the OEE
//! breakdown, the downtime Pareto and the machine's alarms.

use axum::extract::{Path, RawQuery, State};
use maud::{Markup, html};
use model::alarm::Alarm;
use model::oee::{StateSpan, from_unix_ms, unix_ms};
use model::{Kpis, Machine, MachineId, MachineKind, MachineState, Timestamp};
use store::{AlarmFilter, PageRequest, SeriesPoint};

use super::svg::{self, BandPoint, HBar, Span, TimeChart, Timeline};
use super::{Ctx, Nav, OrPage, PageResult, alarm_status, layout, percent, state_class};
use crate::AppState;
use crate::api::telemetry::machine_kpis;
use crate::auth::Need;
use crate::error::ApiError;

/// The machine page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) kinds: [&'static str; 7],
    pub(crate) line: &'static str,
    pub(crate) rated_power: &'static str,
    pub(crate) last_reading: &'static str,
    /// `{date}`: when the machine retired.
    pub(crate) retired: &'static str,
    pub(crate) maintenance: &'static str,
    pub(crate) maintenance_hint: &'static str,
    pub(crate) no_maintenance: &'static str,
    pub(crate) reason: &'static str,
    pub(crate) plan_maintenance: &'static str,
    pub(crate) maintenance_planned: &'static str,
    pub(crate) remove_maintenance: &'static str,
    pub(crate) current_state: &'static str,
    pub(crate) open_station: &'static str,
    pub(crate) range: &'static str,
    pub(crate) ranges: [&'static str; 5],
    pub(crate) timeline: &'static str,
    pub(crate) timeline_label: &'static str,
    pub(crate) no_state: &'static str,
    pub(crate) oee_breakdown: &'static str,
    pub(crate) oee_label: &'static str,
    pub(crate) planned_busy: &'static str,
    /// Stops in breakdown (`down`) that began in the period, and the means from them.
    pub(crate) failures: &'static str,
    pub(crate) mtbf: &'static str,
    pub(crate) mttr: &'static str,
    pub(crate) actual_production: &'static str,
    pub(crate) ideal_production: &'static str,
    pub(crate) produced: &'static str,
    pub(crate) no_planned_time: &'static str,
    /// Said when performance is above 100 %: the counts or the ideal times are wrong.
    pub(crate) above_ideal: &'static str,
    pub(crate) pareto: &'static str,
    pub(crate) pareto_hint: &'static str,
    pub(crate) scrap_pareto: &'static str,
    pub(crate) scrap_pareto_hint: &'static str,
    pub(crate) units: &'static str,
    pub(crate) loss: &'static str,
    pub(crate) duration: &'static str,
    pub(crate) share: &'static str,
    pub(crate) cumulative: &'static str,
    pub(crate) unspecified: &'static str,
    pub(crate) other_reasons: &'static str,
    pub(crate) no_losses: &'static str,
    pub(crate) measurements: &'static str,
    pub(crate) band_hint: &'static str,
    pub(crate) chart_label: &'static str,
    pub(crate) last: &'static str,
    pub(crate) no_readings: &'static str,
    pub(crate) no_metrics: &'static str,
    pub(crate) seconds: &'static str,
    pub(crate) recent_alarms: &'static str,
    pub(crate) no_alarms: &'static str,
    pub(crate) all_alarms: &'static str,
    pub(crate) rules: &'static str,
    pub(crate) rules_hint: &'static str,
    pub(crate) state_rule: &'static str,
    pub(crate) no_state_rule: &'static str,
    pub(crate) count_rule: &'static str,
    pub(crate) no_count_rule: &'static str,
    pub(crate) metric: &'static str,
    pub(crate) running_above: &'static str,
    pub(crate) idle_above: &'static str,
    pub(crate) otherwise: &'static str,
    pub(crate) good_counter: &'static str,
    pub(crate) scrap_counter: &'static str,
    pub(crate) idle_unit_time: &'static str,
    pub(crate) optional: &'static str,
    pub(crate) no_readings_short: &'static str,
    pub(crate) remove_rule: &'static str,
    /// Names of common measurements, by the metric name without its unit suffix
    /// (`temperature` of `temperature_c`).
    pub(crate) measurement_names: &'static [(&'static str, &'static str)],
}

pub(crate) const EN: Text = Text {
    title: "Machine",
    kinds: [
        "CNC mill",
        "Injection moulding",
        "Laser cutter",
        "3D printer",
        "Assembly",
        "Quality control",
        "Other",
    ],
    line: "Line",
    rated_power: "Rated power",
    last_reading: "Last reading",
    retired: "Retired on {date}: no longer planned or watched by alarm rules; its history is kept.",
    maintenance: "Maintenance windows",
    maintenance_hint: "Planned ahead: the plan keeps work out of them, their time is a planned stop in the OEE (but while the machine runs), and a stop within one raises no long-stop alarm.",
    no_maintenance: "No maintenance planned.",
    reason: "Reason",
    plan_maintenance: "Plan maintenance",
    maintenance_planned: "Maintenance planned; the plan is repaired around it.",
    remove_maintenance: "Remove this maintenance window? Work may be planned in its time again.",
    current_state: "Current state",
    open_station: "Open the station",
    range: "Time range",
    // The last hours up to now, not the shift or day on the calendar: said as such.
    ranges: ["Last 1 h", "8 h", "24 h", "7 d", "This shift"],
    timeline: "State timeline",
    timeline_label: "Machine states over the chosen time range",
    no_state: "No state reported",
    oee_breakdown: "OEE breakdown",
    oee_label: "Availability, performance, quality and OEE over the chosen time range",
    planned_busy: "Planned busy time",
    failures: "Breakdowns (down)",
    mtbf: "Mean time between failures",
    mttr: "Mean time to repair",
    actual_production: "Actual production time",
    ideal_production: "Ideal production time",
    produced: "Produced",
    no_planned_time: "No production was planned in this time range, so there is no OEE.",
    above_ideal: "Performance is above 100 %: the units counted took less than their ideal time. Check the steps' unit times (the planning standard) and the machine's counts.",
    pareto: "Downtime Pareto",
    scrap_pareto: "Scrap by reason",
    scrap_pareto_hint: "Units scrapped in the period, by the reason given when they were reported, most first.",
    units: "Units",
    pareto_hint: "Time lost within planned time, by state and reason (breakdowns, waiting, setups, time without a state), longest first.",
    loss: "Loss",
    duration: "Duration",
    share: "Share",
    cumulative: "Cumulative",
    unspecified: "Unspecified",
    other_reasons: "Other reasons",
    no_losses: "No downtime in this time range.",
    measurements: "Measurements",
    band_hint: "Line: average · shaded band: lowest to highest · one point per",
    chart_label: "average with the lowest-to-highest band over the chosen time range",
    last: "Last",
    no_readings: "No readings in this time range.",
    no_metrics: "This machine has not reported any measurements yet.",
    seconds: "s",
    recent_alarms: "Recent alarms",
    no_alarms: "No alarms for this machine.",
    all_alarms: "All alarms",
    rules: "Signals from metrics",
    rules_hint: "For machines that send only metrics (a Sparkplug B node, a power meter): their state from one metric, their units from counters.",
    state_rule: "State from a metric",
    no_state_rule: "None: the machine reports its own states.",
    count_rule: "Units from counters",
    no_count_rule: "None: units are reported by the machine or at the station.",
    metric: "Metric",
    running_above: "Running above",
    idle_above: "Idle above",
    otherwise: "Otherwise",
    good_counter: "Good-unit counter",
    scrap_counter: "Scrap counter",
    idle_unit_time: "Ideal seconds per unit while no operation runs",
    optional: "optional",
    no_readings_short: "no readings in this range",
    remove_rule: "Remove this rule?",
    measurement_names: &[
        ("power", "Power"),
        ("energy", "Energy"),
        ("temperature", "Temperature"),
        ("vibration", "Vibration"),
        ("gas", "Gas"),
        ("pressure", "Pressure"),
        ("humidity", "Humidity"),
        ("spindle_speed", "Spindle speed"),
        ("speed", "Speed"),
        ("current", "Current"),
        ("voltage", "Voltage"),
        ("flow", "Flow"),
    ],
};

pub(crate) const ZH: Text = Text {
    title: "機器",
    kinds: ["數控銑床", "注塑機", "激光切割機", "3D 打印機", "裝配工位", "品質檢驗", "其他"],
    line: "生產線",
    rated_power: "額定功率",
    last_reading: "最新讀數",
    retired: "已於 {date} 退役：不再排產，亦不受警報規則監察；歷史記錄保留。",
    maintenance: "保養時段",
    maintenance_hint: "須預先計劃：排程會避開這些時段；在設備綜合效率中其時間算作計劃停機（機器仍在運行時除外）；時段內停機不會觸發長時間停機警報。",
    no_maintenance: "沒有已計劃的保養。",
    reason: "原因",
    plan_maintenance: "計劃保養",
    maintenance_planned: "已計劃保養，排程會據此修訂。",
    remove_maintenance: "刪除此保養時段？其時間可再排入工作。",
    current_state: "目前狀態",
    open_station: "開啟工位",
    range: "時段",
    ranges: ["最近 1 小時", "8 小時", "24 小時", "7 日", "本更"],
    timeline: "狀態時間線",
    timeline_label: "所選時段內的機器狀態",
    no_state: "未有狀態報告",
    oee_breakdown: "OEE 分析",
    oee_label: "所選時段內的可用率、表現率、良品率及 OEE",
    planned_busy: "計劃生產時間",
    failures: "故障次數（停機）",
    mtbf: "平均故障間隔",
    mttr: "平均修復時間",
    actual_production: "實際生產時間",
    ideal_production: "理想生產時間",
    produced: "總產量",
    no_planned_time: "此時段內沒有計劃生產，因此沒有 OEE。",
    above_ideal: "表現率高於 100%：所計件數用時少於理想時間。請檢查工序的單件時間（計劃標準）及機器的計數。",
    pareto: "停機柏拉圖",
    scrap_pareto: "廢品原因",
    scrap_pareto_hint: "期內報廢的數量，按報告時所填原因分類，最多者在前。",
    units: "數量",
    pareto_hint: "計劃時間內損失的時間，按狀態及原因（故障、等待、換線、未報狀態），時間最長者在前。",
    loss: "損失",
    duration: "時長",
    share: "佔比",
    cumulative: "累計",
    unspecified: "未註明",
    other_reasons: "其他原因",
    no_losses: "此時段內沒有停機。",
    measurements: "量度數據",
    band_hint: "線：平均值 · 陰影：最低至最高 · 每點代表",
    chart_label: "所選時段內的平均值及最低至最高範圍",
    last: "最新",
    no_readings: "此時段內沒有讀數。",
    no_metrics: "此機器尚未報告任何量度數據。",
    seconds: "秒",
    recent_alarms: "最近警報",
    no_alarms: "此機器沒有警報。",
    all_alarms: "所有警報",
    rules: "由量度數據推算",
    rules_hint: "適用於只傳送量度數據的機器（Sparkplug B 節點、電錶）：由一項數據推算狀態，由計數器計算產量。",
    state_rule: "由數據推算狀態",
    no_state_rule: "無：機器自行報告狀態。",
    count_rule: "由計數器計算產量",
    no_count_rule: "無：產量由機器或工位報告。",
    metric: "數據項目",
    running_above: "高於此值為運行",
    idle_above: "高於此值為閒置",
    otherwise: "否則",
    good_counter: "良品計數器",
    scrap_counter: "廢品計數器",
    idle_unit_time: "沒有工序運行時每件的理想秒數",
    optional: "可選",
    no_readings_short: "此時段內沒有讀數",
    remove_rule: "移除此規則？",
    measurement_names: &[
        ("power", "功率"),
        ("energy", "電能"),
        ("temperature", "溫度"),
        ("vibration", "振動"),
        ("gas", "氣體濃度"),
        ("pressure", "壓力"),
        ("humidity", "濕度"),
        ("spindle_speed", "主軸轉速"),
        ("speed", "速度"),
        ("current", "電流"),
        ("voltage", "電壓"),
        ("flow", "流量"),
    ],
};

/// Most alarms listed.
const ALARMS_SHOWN: u32 = 20;
/// Most points per chart.
const MAX_POINTS: i64 = 400;
/// Most Pareto rows before the rest are summed up as "other reasons".
const PARETO_ROWS: usize = 8;
/// The colour of the charts' lines, the style sheet's `--accent`.
const LINE_COLOUR: &str = "#0b5cad";
/// Steps a chart may aggregate over, in seconds: whole minutes come from the roll-ups.
const STEPS: [i64; 16] =
    [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 604_800];

/// The time ranges offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range {
    Hour,
    Shift,
    Day,
    Week,
    /// The shift in progress by the site's calendar (or the last one that ended), from its start.
    ThisShift,
}

impl Range {
    const ALL: [Range; 5] = [Range::Hour, Range::Shift, Range::Day, Range::Week, Range::ThisShift];

    /// The code in `?range=`.
    fn code(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Shift => "shift",
            Range::Day => "day",
            Range::Week => "week",
            Range::ThisShift => "this-shift",
        }
    }

    /// The range asked for in a query string; a shift when absent or unknown.
    fn from_query(query: Option<&str>) -> Range {
        let asked = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(key, _)| key == "range").map(|(_, value)| value)
        });
        Range::ALL.into_iter().find(|r| asked.as_deref() == Some(r.code())).unwrap_or(Range::Shift)
    }

    fn millis(self) -> i64 {
        match self {
            Range::Hour => 3_600_000,
            Range::Shift => 8 * 3_600_000,
            Range::Day => 24 * 3_600_000,
            Range::Week => 7 * 24 * 3_600_000,
            // At most a day (a shift that long); the page reads its real span from the calendar.
            Range::ThisShift => 24 * 3_600_000,
        }
    }

    fn label(self, t: &Text) -> &'static str {
        t.ranges[Range::ALL.iter().position(|r| *r == self).unwrap_or(1)]
    }
}

/// The step of a chart over `span_ms`: the shortest that keeps it to [`MAX_POINTS`] points.
fn step_ms(span_ms: i64) -> i64 {
    STEPS.into_iter().map(|s| s * 1000).find(|step| span_ms / step <= MAX_POINTS).unwrap_or(STEPS[15] * 1000)
}

/// The unit a metric's name ends in, by the usual suffixes (`temperature_c`, `power_kw`).
fn unit(metric: &str) -> &'static str {
    unit_suffix(metric).map_or("", |(_, unit)| unit)
}

/// A chart's title: the measurement's name in the page's language when the metric is a common
/// one (`temperature_c` → "Temperature"), followed by the metric's own name, which is what the
/// API and the rules use; the metric's name alone otherwise.
/// A metric as a sentence says it: "溫度（temperature_c）" where the page knows its name, else
/// its id. In English the id reads well enough as it is.
pub(crate) fn metric_said(t: &super::Text, metric: &str) -> String {
    if t.lang == super::Lang::En {
        return metric.to_owned();
    }
    match measurement_name(t.machine_page, metric) {
        Some(name) => format!("{name}{}{metric}{}", t.lparen, t.rparen),
        None => metric.to_owned(),
    }
}

fn measurement_name(m: &Text, metric: &str) -> Option<&'static str> {
    let stem = unit_suffix(metric).map_or(metric, |(suffix, _)| &metric[..metric.len() - suffix.len()]);
    let stem = stem.to_ascii_lowercase();
    m.measurement_names.iter().find(|(key, _)| *key == stem).map(|(_, name)| *name)
}

fn metric_title(m: &Text, metric: &str) -> String {
    match measurement_name(m, metric) {
        Some(name) => format!("{name} · {metric}"),
        None => metric.to_string(),
    }
}

/// The unit suffix a metric's name ends in, and the unit it stands for.
fn unit_suffix(metric: &str) -> Option<(&'static str, &'static str)> {
    const UNITS: [(&str, &str); 12] = [
        ("_kwh", "kWh"),
        ("_kw", "kW"),
        ("_mm_s", "mm/s"),
        ("_ppm", "ppm"),
        ("_pct", "%"),
        ("_percent", "%"),
        ("_rpm", "rpm"),
        ("_bar", "bar"),
        ("_hz", "Hz"),
        ("_c", "°C"),
        ("_mm", "mm"),
        ("_s", "s"),
    ];
    UNITS.into_iter().find(|(suffix, _)| metric.ends_with(suffix))
}

/// What the machine page shows, read from the store in one go.
pub(crate) struct MachineData {
    machine: Machine,
    site: String,
    line: Option<String>,
    current: Option<(MachineState, Timestamp)>,
    range: Range,
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
    series: Vec<(String, Vec<SeriesPoint>)>,
    spans: Vec<StateSpan>,
    kpis: Kpis,
    alarms: Vec<Alarm>,
    state_rule: Option<model::StateRule>,
    count_rule: Option<model::CountRule>,
    last_reading: Option<Timestamp>,
    /// Maintenance windows not over yet.
    maintenance: Vec<model::MaintenanceWindow>,
}

/// Reads everything the machine page shows for `range` up to `now_ms`.
pub(crate) fn gather(
    store: &store::Store,
    id: MachineId,
    range: Range,
    now_ms: i64,
) -> store::Result<MachineData> {
    let machine = store.machine(id)?;
    let site = store.site(machine.site_id)?.name;
    let line = match machine.line_id {
        Some(line) => Some(store.line(line)?.name),
        None => None,
    };
    let now = from_unix_ms(now_ms).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let current = store.current_state(id, now)?.map(|c| (c.state, c.at));
    let from_ms = match range {
        // From the start of the shift in progress, or of the last one (a week back at most).
        Range::ThisShift => {
            let (calendar, zone) = (store.calendar(machine.site_id)?, store.site(machine.site_id)?.zone());
            model::oee::shift_at(&calendar, &zone, now_ms)
                .map_or(now_ms - range.millis(), |((start, _), _)| start)
        }
        _ => now_ms - range.millis(),
    };
    let (from_ms, to_ms) = (from_ms.min(now_ms - 60_000), now_ms);
    let step = step_ms(to_ms - from_ms);
    // Buckets are aligned to the epoch, so one more may straddle each end.
    let limit = (MAX_POINTS + 2) as u32;
    let mut series = Vec::new();
    for metric in store.metrics(id)? {
        let points = store.series(id, &metric, from_ms, to_ms, Some(step), 0, limit)?;
        series.push((metric, points));
    }
    let spans = store.state_spans(id, from_ms, to_ms)?;
    let kpis = machine_kpis(store, vec![machine.clone()], from_ms, to_ms, now_ms)?
        .into_iter()
        .next()
        .map(|row| row.kpis)
        .unwrap_or_default();
    let filter = AlarmFilter { machine: Some(id), ..AlarmFilter::default() };
    let alarms = store.alarms(&filter, PageRequest { after: None, limit: ALARMS_SHOWN })?.items;
    let state_rule = store.state_rule(id)?;
    let count_rule = store.count_rule(id)?;
    let last_reading = store.last_reading_at(id)?;
    let maintenance = store.maintenance(Some(id), now_ms)?;
    Ok(MachineData {
        machine,
        site,
        line,
        current,
        range,
        from_ms,
        to_ms,
        step_ms: step,
        series,
        spans,
        kpis,
        alarms,
        state_rule,
        count_rule,
        last_reading,
        maintenance,
    })
}

/// `GET /machines/{id}?range=1h|shift|day|week`.
pub(crate) async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let id = id
        .parse::<i64>()
        .map(MachineId)
        .map_err(|_| ApiError::not_found(format!("machine {id} does not exist")))
        .or_page(&ctx)?;
    let range = Range::from_query(query.as_deref());
    let now_ms = unix_ms(ctx.now);
    let store = state.store.clone();
    let data = crate::api::blocking(move || gather(&store, id, range, now_ms)).await.or_page(&ctx)?;
    let ctx = ctx.at_site(&state.store, data.machine.site_id);
    let title = format!("{} {} · {}", data.machine.code, data.machine.name, ctx.t.machine_page.title);
    Ok(layout(&ctx, Nav::Overview, &title, render(&ctx, &data)))
}

/// The machine page's HTML.
pub(crate) fn render(ctx: &Ctx, data: &MachineData) -> Markup {
    html! {
        (header(ctx, data))
        (range_bar(ctx, data))
        // Fetched again when this machine changes state or counts units, and as the window moves.
        div #machine-oee data-refresh-on="machine_state production" data-refresh-machine=(data.machine.id.0)
            data-refresh-every=(data.step_ms) {
            (state_timeline(ctx, data))
            div.halves {
                (oee_breakdown(ctx, &data.kpis))
                (pareto(ctx, &data.kpis))
            }
            (scrap_pareto(ctx, &data.kpis))
        }
        (charts(ctx, data))
        (alarms(ctx, data))
        (maintenance(ctx, data))
        (rules(ctx, data))
    }
}

fn header(ctx: &Ctx, data: &MachineData) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let machine = &data.machine;
    let kind = m.kinds[MachineKind::ALL.iter().position(|k| *k == machine.kind).unwrap_or(6)];
    let (state, since) = match data.current {
        Some((state, at)) => (state, Some(at)),
        None => (MachineState::Offline, None),
    };
    html! {
        div.machine-head {
            div.identity {
                h1 { span.code { (machine.code) } " " (machine.name) }
                p.meta {
                    span { (kind) }
                    span { (t.site) (t.colon) (data.site) }
                    @if let Some(line) = &data.line { span { (m.line) (t.colon) (line) } }
                    @if machine.rated_power_kw > 0.0 {
                        span { (m.rated_power) (t.colon) (svg::value_text(machine.rated_power_kw)) " kW" }
                    }
                    @for capability in &machine.capabilities { span.tag { (capability) } }
                    span #last-reading data-testid="last-reading" data-refresh-every=(data.step_ms) {
                        (m.last_reading) (t.colon) (data.last_reading.map_or_else(|| t.none.to_string(), |at| ctx.short_time(at)))
                    }
                }
            }
            div.head-side {
                div.machine-state.(state_class(state)) data-machine-id=(machine.id.0) data-state=(state.as_str())
                    data-live aria-label=(m.current_state) role="group" {
                    span.muted { (m.current_state) }
                    span.badge data-state-label { (t.state(state)) }
                    span.muted {
                        (t.since) " "
                        span data-since { (since.map_or_else(|| t.none.to_string(), |at| ctx.short_time(at))) }
                    }
                }
                @if ctx.may_at(Need::Report, machine.site_id) && machine.in_service() {
                    a.button.primary href={ "/station?machine=" (machine.id.0) } { (m.open_station) }
                }
            }
        }
        @if let Some(at) = machine.retired_at {
            p.notice role="note" data-testid="retired" { (m.retired.replace("{date}", &ctx.time(at))) }
        }
    }
}

fn range_bar(ctx: &Ctx, data: &MachineData) -> Markup {
    let m = ctx.t.machine_page;
    html! {
        div.range-bar #machine-range data-refresh-every=(data.step_ms) {
            nav.presets aria-label=(m.range) {
                @for range in Range::ALL {
                    a href={ "/machines/" (data.machine.id.0) "?range=" (range.code()) }
                        aria-current=[(range == data.range).then_some("true")] { (range.label(m)) }
                }
            }
            @if let (Some(from), Some(to)) = (from_unix_ms(data.from_ms), from_unix_ms(data.to_ms)) {
                span.muted { (ctx.time(from)) " – " (ctx.time(to)) }
            }
        }
    }
}

fn state_timeline(ctx: &Ctx, data: &MachineData) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let when = |ms: i64| from_unix_ms(ms).map(|ts| ctx.short_time(ts)).unwrap_or_default();
    let spans: Vec<Span> = data
        .spans
        .iter()
        .map(|s| {
            let reason = s.reason.as_deref().filter(|r| !r.is_empty());
            // A reason the station offers is said in the reader's language, as in the Pareto.
            let reason = reason.map(|r| super::station::reason_label(t, r).unwrap_or(r));
            let title = format!(
                "{}{}\n{} – {}{}{}{}",
                t.state(s.state),
                reason.map(|r| format!(" — {r}")).unwrap_or_default(),
                when(s.start_ms),
                when(s.end_ms),
                t.space_lparen,
                ctx.duration((s.end_ms - s.start_ms) / 1000),
                t.rparen,
            );
            Span { start_ms: s.start_ms, end_ms: s.end_ms, fill: svg::state_fill(s.state), title }
        })
        .collect();
    let range_ms = (data.to_ms - data.from_ms).max(1);
    let mut totals = [0i64; 6];
    for span in &data.spans {
        if let Some(i) = MachineState::ALL.iter().position(|s| *s == span.state) {
            totals[i] += span.end_ms - span.start_ms;
        }
    }
    let unknown = range_ms - totals.iter().sum::<i64>();
    let share = |ms: i64| format!("{:.0}{}", ms as f64 / range_ms as f64 * 100.0, t.percent);
    html! {
        section.panel aria-labelledby="timeline-heading" {
            h2 #timeline-heading { (m.timeline) }
            (svg::timeline(&Timeline {
                from_ms: data.from_ms,
                to_ms: data.to_ms,
                zone: ctx.zone.clone(),
                spans: &spans,
                aria_label: m.timeline_label,
                width: 1000.0,
            }))
            ul.legend {
                @for (state, total) in MachineState::ALL.into_iter().zip(totals) {
                    li.muted[total == 0] {
                        span.swatch.(state_class(state)) {}
                        strong { (t.state(state)) }
                        span { (ctx.duration(total / 1000)) " · " (share(total)) }
                    }
                }
                @if unknown > 0 {
                    li.muted {
                        span.swatch.unknown {}
                        strong { (m.no_state) }
                        span { (ctx.duration(unknown / 1000)) " · " (share(unknown)) }
                    }
                }
            }
        }
    }
}

fn oee_breakdown(ctx: &Ctx, kpis: &Kpis) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let rows = [
        (t.availability, kpis.availability, "#0b5cad"),
        (t.performance, kpis.effectiveness, "#0b5cad"),
        (t.quality, kpis.quality, "#0b5cad"),
        (t.oee, kpis.oee, "#1f2933"),
    ];
    let texts: Vec<String> = rows.iter().map(|(_, ratio, _)| percent(t, *ratio)).collect();
    let bars: Vec<HBar> = rows
        .iter()
        .zip(&texts)
        .map(|((label, ratio, fill), text)| HBar {
            label,
            value: ratio.unwrap_or(f64::NAN),
            text,
            fill,
            title: None,
        })
        .collect();
    let seconds = |s: f64| ctx.duration(if s.is_finite() { s.round() as i64 } else { 0 });
    html! {
        section.panel aria-labelledby="oee-heading" {
            h2 #oee-heading { (m.oee_breakdown) }
            @if kpis.planned_busy_seconds <= 0.0 { p.muted { (m.no_planned_time) } }
            (svg::hbars(&bars, 1.0, m.oee_label))
            // A tenth of a per cent over is rounding; more means impossible counts or ideal times.
            @if kpis.effectiveness.is_some_and(|e| e > 1.001) {
                p.notice role="note" data-testid="above-ideal" { "⚠ " (m.above_ideal) }
            }
            dl.facts {
                div { dt { (m.planned_busy) } dd { (seconds(kpis.planned_busy_seconds)) } }
                div { dt { (m.actual_production) } dd { (seconds(kpis.actual_production_seconds)) } }
                div { dt { (m.ideal_production) } dd { (seconds(kpis.ideal_production_seconds)) } }
                div { dt { (m.produced) } dd { (kpis.produced) } }
                div { dt { (t.good) } dd { (kpis.good) } }
                div { dt { (t.scrap) } dd.bad[kpis.scrap > 0] { (kpis.scrap) } }
                div data-testid="failures" { dt { (m.failures) } dd { (kpis.failures) } }
                @if let (Some(mtbf), Some(mttr)) = (kpis.mtbf_seconds, kpis.mttr_seconds) {
                    div { dt { abbr title=(m.mtbf) { "MTBF" } } dd { (seconds(mtbf)) } }
                    div { dt { abbr title=(m.mttr) { "MTTR" } } dd { (seconds(mttr)) } }
                }
            }
        }
    }
}

/// One row of the Pareto: a state and reason, or the rest summed up.
struct ParetoRow<'a> {
    state: Option<MachineState>,
    reason: &'a str,
    seconds: f64,
    /// This row and every row above it, as a share of all downtime.
    cumulative: f64,
}

/// The period's scrapped units by reason, when any were scrapped.
fn scrap_pareto(ctx: &Ctx, kpis: &Kpis) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let share = |units: u64| (kpis.scrap > 0).then(|| units as f64 / kpis.scrap as f64);
    html! {
        @if kpis.scrap > 0 {
            section.panel aria-labelledby="scrap-heading" data-testid="scrap-pareto" {
                h2 #scrap-heading { (m.scrap_pareto) }
                p.muted { (m.scrap_pareto_hint) }
                table.compare {
                    thead { tr { th { (t.station_page.scrap_reason) } th.num { (m.units) } th.num { (m.share) } } }
                    tbody {
                        @for count in &kpis.scrap_reasons {
                            tr {
                                td { (if count.reason == "unspecified" { m.unspecified } else { count.reason.as_str() }) }
                                td.num { (count.units) }
                                td.num { (percent(t, share(count.units))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn pareto(ctx: &Ctx, kpis: &Kpis) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let mut losses: Vec<&model::oee::Loss> =
        // Under a second (a state reported a moment before the period ended) is no downtime.
        kpis.losses.iter().filter(|l| l.seconds.is_finite() && l.seconds >= 1.0).collect();
    losses.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    let total: f64 = losses.iter().map(|l| l.seconds).sum();
    let mut rows: Vec<ParetoRow> = losses
        .iter()
        .take(PARETO_ROWS)
        .map(|l| ParetoRow {
            state: Some(l.state),
            // The two reasons the OEE computation gives itself.
            reason: match l.reason.as_str() {
                "unspecified" => m.unspecified,
                "no data" => m.no_state,
                reason => super::station::reason_label(ctx.t, reason).unwrap_or(reason),
            },
            seconds: l.seconds,
            cumulative: 0.0,
        })
        .collect();
    if losses.len() > PARETO_ROWS {
        let rest = losses[PARETO_ROWS..].iter().map(|l| l.seconds).sum();
        rows.push(ParetoRow { state: None, reason: m.other_reasons, seconds: rest, cumulative: 0.0 });
    }
    let mut sum = 0.0;
    for row in &mut rows {
        sum += row.seconds;
        row.cumulative = sum / total;
    }
    let longest = rows.iter().map(|r| r.seconds).fold(0.0, f64::max);
    html! {
        section.panel aria-labelledby="pareto-heading" {
            h2 #pareto-heading { (m.pareto) }
            @if rows.is_empty() {
                p.muted { (m.no_losses) }
            } @else {
                p.muted { (m.pareto_hint) }
                table.pareto {
                    thead {
                        tr {
                            th { (m.loss) }
                            th.bar {}
                            th.num { (m.duration) }
                            th.num { (m.share) }
                            th.num { (m.cumulative) }
                        }
                    }
                    tbody {
                        @for row in &rows {
                            tr {
                                td {
                                    @if let Some(state) = row.state {
                                        span.badge.(state_class(state)) { (t.state(state)) } " "
                                    }
                                    (row.reason)
                                }
                                @let fill = row.state.map_or("#9aa5b1", svg::state_fill);
                                td.bar { (svg::meter(row.seconds / longest, fill, 100.0, 12.0)) }
                                td.num { (ctx.duration(row.seconds.round() as i64)) }
                                td.num { (format!("{:.0}{}", row.seconds / total * 100.0, t.percent)) }
                                td.num { (format!("{:.0}{}", row.cumulative * 100.0, t.percent)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A step as words: `10 s`, `5 min`.
fn step_text(ctx: &Ctx, step_ms: i64) -> String {
    if step_ms < 60_000 {
        format!("{} {}", step_ms / 1000, ctx.t.machine_page.seconds)
    } else {
        ctx.duration(step_ms / 1000)
    }
}

fn charts(ctx: &Ctx, data: &MachineData) -> Markup {
    let m = ctx.t.machine_page;
    html! {
        // The window ends now, so the charts are drawn again once a step has passed.
        section.panel #machine-charts aria-labelledby="charts-heading" data-refresh-every=(data.step_ms) {
            h2 #charts-heading { (m.measurements) }
            @if data.series.is_empty() {
                p.muted { (m.no_metrics) }
            } @else {
                p.muted { (m.band_hint) " " (step_text(ctx, data.step_ms)) }
                div.charts {
                    @for (metric, points) in &data.series { (chart(ctx, data, metric, points)) }
                }
            }
        }
    }
}

/// One metric's chart, or a line saying it has no readings in the range.
fn chart(ctx: &Ctx, data: &MachineData, metric: &str, points: &[SeriesPoint]) -> Markup {
    let m = ctx.t.machine_page;
    let title = metric_title(m, metric);
    let Some(last) = points.last() else {
        return html! {
            div.chart-card.empty {
                strong { (title) }
                p.muted { (m.no_readings) }
            }
        };
    };
    // Each point sits in the middle of its step.
    let half = data.step_ms / 2;
    let band: Vec<BandPoint> = points
        .iter()
        .map(|p| BandPoint { at_ms: p.ts_ms + half, min: p.min, avg: p.avg, max: p.max })
        .collect();
    let mut last_text = format!("{} {}", m.last, svg::value_text(last.last));
    let unit = unit(metric);
    if !unit.is_empty() {
        last_text.push(' ');
        last_text.push_str(unit);
    }
    // A step's start is the reading's time only when steps are short.
    if data.step_ms <= 60_000
        && let Some(at) = from_unix_ms(last.ts_ms)
    {
        last_text.push_str(" · ");
        last_text.push_str(&ctx.short_time(at));
    }
    let aria = format!("{title}{}{}{}{last_text}", ctx.t.colon, m.chart_label, ctx.t.full_stop);
    html! {
        div.chart-card {
            (svg::time_chart(&TimeChart {
                title: &title,
                aria_label: &aria,
                last_text: &last_text,
                last_value: Some(last.last),
                empty_text: m.no_readings,
                from_ms: data.from_ms,
                to_ms: data.to_ms,
                zone: ctx.zone.clone(),
                points: &band,
                gap_ms: data.step_ms * 5 / 2,
                colour: LINE_COLOUR,
            }))
        }
    }
}

/// The machine's maintenance windows to come (or under way), and for planners the form that plans
/// one and the buttons that remove them.
fn maintenance(ctx: &Ctx, data: &MachineData) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let may_plan = ctx.may_at(Need::Maintain, data.machine.site_id) && data.machine.in_service();
    if data.maintenance.is_empty() && !may_plan {
        return html! {};
    }
    let id = data.machine.id.0;
    html! {
        section.panel #machine-maintenance aria-labelledby="maintenance-heading" {
            h2 #maintenance-heading { (m.maintenance) }
            p.muted { (m.maintenance_hint) }
            @if data.maintenance.is_empty() {
                p.muted { (m.no_maintenance) }
            } @else {
                table data-testid="maintenance-windows" {
                    thead { tr {
                        th { (t.start) } th { (t.end) } th { (m.reason) }
                        @if may_plan { th { span.visually-hidden { (t.actions) } } }
                    } }
                    tbody {
                        @for window in &data.maintenance {
                            tr {
                                td.nw { (ctx.time(window.start)) }
                                td.nw { (ctx.time(window.end)) " " span.muted { "(" (ctx.duration((window.end - window.start).whole_seconds())) ")" } }
                                td { (window.reason) }
                                @if may_plan {
                                    td { button data-action={ "DELETE /api/v1/maintenance/" (window.id) } data-confirm=(m.remove_maintenance) { (t.delete) } }
                                }
                            }
                        }
                    }
                }
            }
            @if may_plan {
                form.row-form data-action={ "POST /api/v1/machines/" (id) "/maintenance" } data-done=(m.maintenance_planned) {
                    label { (t.start) input name="start" type="datetime-local" required data-type="site-datetime"; }
                    label { (t.end) input name="end" type="datetime-local" required data-type="site-datetime"; }
                    label { (m.reason) input name="reason" required maxlength="200"; }
                    button.primary type="submit" data-testid="plan-maintenance" { (m.plan_maintenance) }
                }
            }
        }
    }
}

fn alarms(ctx: &Ctx, data: &MachineData) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    html! {
        section.panel #machine-alarms aria-labelledby="machine-alarms-heading" data-refresh-on="alarm" {
            h2 #machine-alarms-heading { (m.recent_alarms) }
            @if data.alarms.is_empty() {
                p.muted { (m.no_alarms) }
            } @else {
                table {
                    thead {
                        tr { th { (t.severity) } th { (t.message) } th { (t.raised_at) } th { (t.status) } th { span.visually-hidden { (t.actions) } } }
                    }
                    tbody {
                        @for alarm in &data.alarms {
                            tr {
                                td { span.badge.{"sev-" (alarm.severity.as_str())} { (t.severity(alarm.severity)) } }
                                td id={ "alarm-" (alarm.id) "-message" } { (super::alarm_message(t, alarm)) }
                                td { (super::alarm_raised(ctx, alarm)) }
                                td {
                                    (alarm_status(t, alarm))
                                    @if let Some(by) = &alarm.acknowledged_by {
                                        span.muted { " · " (by) }
                                    }
                                    @if let Some(cleared) = alarm.cleared_at {
                                        span.muted { " · " (ctx.short_time(cleared)) }
                                    }
                                }
                                td {
                                    @if alarm.needs_acknowledgement() && ctx.may_at(Need::Report, data.machine.site_id) {
                                        button data-action={ "POST /api/v1/alarms/" (alarm.id) "/acknowledge" }
                                            aria-describedby={ "alarm-" (alarm.id) "-message" } data-then="none" {
                                            (t.acknowledge)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p { a href={ "/alarms?show=all&machine=" (data.machine.id.0) } { (m.all_alarms) } }
        }
    }
}

/// The rules that derive the machine's state and units from its metrics: shown to everyone (they
/// say where the timeline and the counts come from), edited by administrators.
fn rules(ctx: &Ctx, data: &MachineData) -> Markup {
    let (t, m) = (ctx.t, ctx.t.machine_page);
    let admin = ctx.may(Need::Administer);
    let base = format!("/api/v1/machines/{}", data.machine.id.0);
    let metrics = format!("machine-metrics-{}", data.machine.id.0);
    let optional = |label: &str| format!("{label}{}{}{}", ctx.t.space_lparen, m.optional, ctx.t.rparen);
    // A rule's metric with its latest value in the chosen range, so a commissioning engineer
    // sees that the rule reads what the machine sends.
    let latest = |metric: &str| {
        let last = data.series.iter().find(|(name, _)| name == metric).and_then(|(_, points)| points.last());
        html! {
            @if let Some(point) = last { " (" (m.last) " " (svg::value_text(point.last)) ")" }
            @else { (ctx.t.space_lparen) (m.no_readings_short) (ctx.t.rparen) }
        }
    };
    let remove = |what: &str| {
        html! {
            button.danger data-action={ "DELETE " (base) "/" (what) } data-confirm=(m.remove_rule) { (t.delete) }
        }
    };
    html! {
        section.panel #machine-rules aria-labelledby="machine-rules-heading" {
            h2 #machine-rules-heading { (m.rules) }
            p.muted { (m.rules_hint) }
            datalist id=(metrics) { @for (metric, _) in &data.series { option value=(metric) {} } }
            div.halves {
                div data-testid="state-rule" {
                    h3 { (m.state_rule) }
                    @match &data.state_rule {
                        Some(rule) => p {
                            code { (rule.metric) } (latest(&rule.metric)) " · " (m.running_above) " " (rule.running_above)
                            " · " (m.idle_above) " " (rule.idle_above) " · " (m.otherwise) " " (t.state(rule.otherwise))
                        },
                        None => p.muted { (m.no_state_rule) },
                    }
                    @if admin {
                        form.row-form data-action={ "PUT " (base) "/state-rule" } {
                            @let rule = data.state_rule.as_ref();
                            label { (m.metric) input name="metric" required maxlength="128" list=(metrics)
                                value=[rule.map(|r| r.metric.as_str())]; }
                            label { (m.running_above) input name="running_above" type="number" step="any" required data-type="number"
                                value=[rule.map(|r| r.running_above)]; }
                            label { (m.idle_above) input name="idle_above" type="number" step="any" required data-type="number"
                                value=[rule.map(|r| r.idle_above)]; }
                            label { (m.otherwise)
                                select name="otherwise" {
                                    @for state in MachineState::ALL {
                                        option value=(state.as_str())
                                            selected[rule.map_or(state == MachineState::Offline, |r| r.otherwise == state)] { (t.state(state)) }
                                    }
                                }
                            }
                            button.primary type="submit" { (t.save) }
                        }
                        @if data.state_rule.is_some() { (remove("state-rule")) }
                    }
                }
                div data-testid="count-rule" {
                    h3 { (m.count_rule) }
                    @match &data.count_rule {
                        Some(rule) => p {
                            (t.good) " " code { (rule.good_metric) } (latest(&rule.good_metric))
                            @if let Some(scrap) = &rule.scrap_metric { " · " (t.scrap) " " code { (scrap) } (latest(scrap)) }
                            @if let Some(ideal) = rule.ideal_unit_seconds { " · " (m.idle_unit_time) " " (ideal) }
                        },
                        None => p.muted { (m.no_count_rule) },
                    }
                    @if admin {
                        form.row-form data-action={ "PUT " (base) "/count-rule" } {
                            @let rule = data.count_rule.as_ref();
                            label { (m.good_counter) input name="good_metric" required maxlength="128" list=(metrics)
                                value=[rule.map(|r| r.good_metric.as_str())]; }
                            label { (optional(m.scrap_counter)) input name="scrap_metric" maxlength="128" list=(metrics)
                                value=[rule.and_then(|r| r.scrap_metric.as_deref())]; }
                            label { (optional(m.idle_unit_time)) input name="ideal_unit_seconds" type="number" step="any" min="0" data-type="number"
                                value=[rule.and_then(|r| r.ideal_unit_seconds)]; }
                            button.primary type="submit" { (t.save) }
                        }
                        @if data.count_rule.is_some() { (remove("count-rule")) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use model::{ProductionRecord, Reading, Role, StateChange, User, UserId};
    use time::macros::datetime;

    use super::*;
    use crate::web::Lang;

    const NOW: Timestamp = datetime!(2026-11-24 09:00 +08:00);

    fn ctx(lang: Lang, role: Role) -> Ctx {
        let user = User { id: UserId(1), username: "ada".into(), role, site_id: None, created_at: NOW };
        Ctx {
            user,
            t: lang.text(),
            now: NOW,
            clock_speed: None,
            zone: model::Zone::fixed(480),
            here: "/machines/1".into(),
            user_site: None,
        }
    }

    #[test]
    fn short_times_name_the_day_only_when_it_is_not_today() {
        let ctx = ctx(Lang::En, Role::Viewer);
        assert_eq!(ctx.short_time(NOW + time::Duration::hours(2)), "11:00");
        assert_eq!(ctx.short_time(datetime!(2026-11-23 23:30 UTC)), "07:30", "today in Hong Kong");
        assert_eq!(ctx.short_time(NOW - time::Duration::days(1)), "23 Nov 09:00");
        assert_eq!(ctx.short_time(datetime!(2027-01-02 10:00 +08:00)), "2027-01-02 10:00");
    }

    /// The demo factory with a week of one reading a minute for `metrics` metrics on its first
    /// machine, a state change every 37 minutes and production every 10.
    /// A store file, removed with its journal when dropped (bind it first, so it outlives the
    /// store).
    struct TempDb(std::path::PathBuf);

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    fn busy_week(metrics: usize) -> (TempDb, store::Store, MachineId) {
        // On a file, as in production, where reads get connections of their own.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file =
            TempDb(std::env::temp_dir().join(format!("mf-machine-page-{}-{n}.db", std::process::id())));
        drop(TempDb(file.0.clone()));
        let store = store::Store::open(&file.0, store::Durability::Normal).unwrap();
        crate::demo::seed(&store, NOW).unwrap();
        let machine = store
            .machines(&store::MachineFilter::default(), PageRequest { after: None, limit: 1 })
            .unwrap()
            .items[0]
            .id;
        let minutes = 7 * 24 * 60;
        let start = NOW - time::Duration::minutes(minutes);
        let mut readings = Vec::with_capacity(minutes as usize * metrics);
        for minute in 0..minutes {
            let at = start + time::Duration::minutes(minute);
            for metric in 0..metrics {
                let value = 50.0 + 20.0 * ((minute as f64 / 90.0) + metric as f64).sin();
                readings.push(Reading { machine, metric: format!("metric_{metric}_c"), at, value });
            }
        }
        store.write_readings(&readings).unwrap();
        let states = [
            (MachineState::Running, None),
            (MachineState::Down, Some("bearing failure")),
            (MachineState::Running, None),
            (MachineState::Idle, Some("waiting for material")),
            (MachineState::Setup, None),
        ];
        for (i, minute) in (0..minutes).step_by(37).enumerate() {
            let (state, reason) = states[i % states.len()];
            let change = StateChange {
                machine,
                at: start + time::Duration::minutes(minute),
                state,
                reason: reason.map(str::to_string),
            };
            store.record_state(&change).unwrap();
        }
        for minute in (0..minutes).step_by(10) {
            let record = ProductionRecord {
                machine,
                at: start + time::Duration::minutes(minute),
                operation: None,
                good: 9,
                scrap: u32::from(minute % 50 == 0),
                ideal_unit_seconds: 50.0,
                scrap_reason: None,
            };
            store.record_production(&record).unwrap();
        }
        (file, store, machine)
    }

    #[test]
    fn ranges_steps_and_units() {
        assert_eq!(Range::from_query(None), Range::Shift);
        assert_eq!(Range::from_query(Some("range=week&x=1")), Range::Week);
        assert_eq!(Range::from_query(Some("range=1h")), Range::Hour);
        assert_eq!(Range::from_query(Some("range=%3Cscript%3E")), Range::Shift);
        for range in Range::ALL {
            let step = step_ms(range.millis());
            assert!(range.millis() / step <= MAX_POINTS, "{range:?}");
            assert!(range.millis() / step > MAX_POINTS / 3, "{range:?}: not too coarse");
        }
        assert_eq!(step_ms(Range::Hour.millis()), 10_000);
        assert_eq!(step_ms(Range::Week.millis()) % 60_000, 0, "long ranges read the roll-ups");
        assert_eq!(unit("temperature_c"), "°C");
        assert_eq!(unit("energy_kwh"), "kWh");
        assert_eq!(unit("power_kw"), "kW");
        assert_eq!(unit("vibration_mm_s"), "mm/s");
        assert_eq!(unit("count"), "");
        assert_eq!(metric_title(&EN, "temperature_c"), "Temperature · temperature_c");
        assert_eq!(metric_title(&ZH, "Spindle_Speed_rpm"), "主軸轉速 · Spindle_Speed_rpm");
        assert_eq!(metric_title(&EN, "speed"), "Speed · speed");
        assert_eq!(metric_title(&EN, "cycle_count"), "cycle_count");
    }

    #[test]
    fn durations_read_in_the_largest_units_and_seconds_under_a_minute() {
        let en = ctx(Lang::En, Role::Admin);
        let cases = [
            (0, "0 min"),
            (42, "42 s"),
            (60, "1 min"),
            (3_725, "1 h 02 min"),
            (90_000, "1 d 1 h"),
            (-42, "−42 s"),
        ];
        for (seconds, text) in cases {
            assert_eq!(en.duration(seconds), text);
        }
        assert_eq!(ctx(Lang::ZhHk, Role::Admin).duration(42), "42 秒");
    }

    #[test]
    fn a_week_of_ten_metrics_renders_complete() {
        // Speed is measured by `microfactory bench dashboard`, not here.
        let (_file, store, machine) = busy_week(10);
        let ctx = ctx(Lang::En, Role::Admin);
        let data = gather(&store, machine, Range::Week, unix_ms(NOW)).unwrap();
        let html = render(&ctx, &data).into_string();
        assert_eq!(data.series.len(), 10);
        for (metric, points) in &data.series {
            assert!((300..=MAX_POINTS as usize + 2).contains(&points.len()), "{metric}: {}", points.len());
        }
        assert_eq!(html.matches("<div class=\"tchart\"").count(), 10);
        assert!(html.contains("metric_9_c") && html.contains("°C"));
        assert!(html.contains("bearing failure"), "the Pareto and the timeline name the reason");
        assert!(html.contains("data-refresh-on=\"alarm\"") && html.contains("data-live"));
        let refresh = format!(
            "id=\"machine-oee\" data-refresh-on=\"machine_state production\" data-refresh-machine=\"{}\"",
            machine.0
        );
        assert!(html.contains(&refresh), "the OEE panels follow this machine's counts and states");
        assert!(html.contains(r#"href="/machines/1?range=week" aria-current="true""#), "{html}");
        assert!(html.contains("/station?machine="));
        assert!(
            html.contains(&format!("/alarms?show=all&amp;machine={}", machine.0)),
            "alarms of this machine"
        );
        assert!(!html.contains("NaN") && !html.contains("inf\""));
        assert!(html.len() < 400_000, "{} bytes", html.len());
    }

    #[test]
    fn the_page_is_translated_and_respects_the_role() {
        let (_file, store, machine) = busy_week(1);
        // A rule's name is its author's text: it is escaped.
        let rule = store.alarm_rules().unwrap()[0].clone();
        let named = model::alarm::NewAlarmRule { name: "<b>hot</b>".into(), ..rule.rule.clone() };
        store.update_alarm_rule(rule.id, &named, NOW).unwrap();
        store.raise_alarm(rule.id, machine, NOW, Some(1.0), "<b>hot</b>").unwrap();
        let data = gather(&store, machine, Range::Day, unix_ms(NOW)).unwrap();
        let zh = render(&ctx(Lang::ZhHk, Role::Operator), &data).into_string();
        for label in ["狀態時間線", "停機柏拉圖", "最近警報", "確認", "開啟工位", "24 小時", "最新讀數"]
        {
            assert!(zh.contains(label), "{label}");
        }
        assert!(zh.contains("/acknowledge") && zh.contains("&lt;b&gt;hot"));
        assert!(zh.contains("最新讀數："), "a full-width colon in Chinese");
        let viewer = render(&ctx(Lang::En, Role::Viewer), &data).into_string();
        assert!(!viewer.contains("data-action") && !viewer.contains("/station?machine="));
        assert!(viewer.contains("Recent alarms") && viewer.contains("&lt;b&gt;hot"));
        assert!(viewer.contains("Last reading: 08:59"), "the week's last minute, local time");
    }

    #[test]
    fn rules_are_shown_to_all_and_edited_by_administrators() {
        let (_file, store, machine) = busy_week(1);
        let data = gather(&store, machine, Range::Hour, unix_ms(NOW)).unwrap();
        let admin = render(&ctx(Lang::En, Role::Admin), &data).into_string();
        assert!(admin.contains(EN.no_state_rule) && admin.contains(EN.no_count_rule));
        let put = format!("data-action=\"PUT /api/v1/machines/{}/count-rule\"", machine.0);
        assert!(admin.contains(&put), "an administrator gets the forms");
        assert!(!admin.contains("/count-rule\" data-confirm"), "nothing to remove yet");
        let rule = model::CountRule {
            good_metric: "parts_good".into(),
            scrap_metric: Some("parts_scrap".into()),
            ideal_unit_seconds: None,
        };
        store.set_count_rule(machine, &rule).unwrap();
        let state = model::StateRule {
            metric: "metric_0_c".into(),
            running_above: 2.5,
            idle_above: 0.5,
            otherwise: MachineState::Offline,
        };
        store.set_state_rule(machine, &state).unwrap();
        let data = gather(&store, machine, Range::Hour, unix_ms(NOW)).unwrap();
        let admin = render(&ctx(Lang::En, Role::Admin), &data).into_string();
        assert!(
            admin.contains("value=\"parts_scrap\"") && admin.contains("value=\"2.5\""),
            "forms start from the rules"
        );
        assert!(admin.contains(&format!("DELETE /api/v1/machines/{}/state-rule", machine.0)));
        let planner = render(&ctx(Lang::ZhHk, Role::Planner), &data).into_string();
        assert!(planner.contains(ZH.rules) && planner.contains("<code>parts_scrap</code>"));
        assert!(planner.contains("<code>metric_0_c</code> (最新 ") && planner.contains("2.5"), "{planner}");
        let admin = render(&ctx(Lang::En, Role::Admin), &data).into_string();
        assert!(admin.contains("<code>parts_good</code> (no readings in this range)"), "{admin}");
        assert!(!planner.contains("/count-rule") && !planner.contains("/state-rule"), "read only");
    }

    #[test]
    fn a_quiet_machine_says_so_and_an_unknown_one_is_not_found() {
        let store = store::Store::open_in_memory().unwrap();
        crate::demo::seed(&store, NOW).unwrap();
        let machine = store
            .machines(&store::MachineFilter::default(), PageRequest { after: None, limit: 1 })
            .unwrap()
            .items[0]
            .id;
        let data = gather(&store, machine, Range::Hour, unix_ms(NOW)).unwrap();
        let html = render(&ctx(Lang::En, Role::Admin), &data).into_string();
        assert!(html.contains(EN.no_metrics) && html.contains(EN.no_alarms));
        assert!(html.contains("Last reading: —"), "a machine that never reported says so");
        // Planned time without any state report is offline time, said in words.
        assert!(html.contains(EN.no_state) && !html.contains("no data"));
        let zh = render(&ctx(Lang::ZhHk, Role::Admin), &data).into_string();
        assert!(zh.contains(ZH.no_state) && zh.contains(ZH.no_metrics));
        assert!(matches!(
            gather(&store, MachineId(999_999), Range::Hour, unix_ms(NOW)),
            Err(store::StoreError::NotFound { .. })
        ));
    }
}
