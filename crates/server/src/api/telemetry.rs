//! Handlers for what machines report: series queries, the state timeline, production counts and
//! ISO 22400 OEE per machine, line or site.

use axum::Json;
use axum::extract::State;
use model::oee::{self, StateSpan};
use model::{
    FieldError, Kpis, Machine, MachineId, MachineState, ProductionRecord, SiteId, StateChange, Timestamp,
};
use serde::{Deserialize, Serialize};
use store::{PageRequest, SeriesPoint};
use time::format_description::well_known::Rfc3339;

use super::{Created, blocking, read};
use crate::AppState;
use crate::alarm_worker::AlarmInput;
use crate::auth::{Administrator, Ingester, MachineReporter, Principal, Reader};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, QueryParams, timestamp_param};
use crate::live::LiveEvent;

/// Most points one series query returns.
const MAX_POINTS: u32 = 100_000;
/// Longest period one OEE or timeline query covers.
const MAX_PERIOD_DAYS: i64 = 400;

/// `from`/`to` as RFC 3339 parameters, defaulting to the last `default_hours` before now.
fn period(from: Option<&str>, to: Option<&str>, now: Timestamp, default_hours: i64) -> ApiResult<(i64, i64)> {
    let parse = |field: &str, value: Option<&str>| -> ApiResult<Option<i64>> {
        Ok(timestamp_param(field, value)?.map(oee::unix_ms))
    };
    let to = parse("to", to)?.unwrap_or_else(|| oee::unix_ms(now));
    let from = parse("from", from)?.unwrap_or(to - default_hours * 3_600_000);
    if from >= to {
        return Err(ApiError::bad_request("from", "must be before to"));
    }
    if to - from > MAX_PERIOD_DAYS * 86_400_000 {
        return Err(ApiError::bad_request(
            "from",
            format!("the period may span at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    Ok((from, to))
}

fn rfc3339(ms: i64) -> String {
    oee::from_unix_ms(ms).and_then(|ts| ts.format(&Rfc3339).ok()).unwrap_or_default()
}

/// A machine's metric names.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct MetricList {
    machine_id: MachineId,
    metrics: Vec<String>,
}

pub(crate) async fn list_metrics(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<MetricList>> {
    let machine = MachineId(id);
    let store = state.store;
    store.machine(machine)?;
    Ok(Json(MetricList { machine_id: machine, metrics: read(|| store.metrics(machine))? }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesQuery {
    metric: String,
    from: Option<String>,
    to: Option<String>,
    /// Seconds per aggregated point; absent for raw readings.
    step: Option<u32>,
    limit: Option<u32>,
}

/// One point of a series as sent.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Point {
    #[schemars(with = "model::DateTime")]
    ts: String,
    min: f64,
    max: f64,
    avg: f64,
    last: f64,
    count: u64,
}

/// A series query's answer.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Series {
    machine_id: MachineId,
    metric: String,
    #[schemars(with = "model::DateTime")]
    from: String,
    #[schemars(with = "model::DateTime")]
    to: String,
    /// Seconds per point, or absent for raw readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u32>,
    /// In time order, oldest first; at most `limit` of them.
    points: Vec<Point>,
    /// Present when there were more points before `to` than `limit`: the `from` that asks for
    /// the rest (the time of the first point left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<model::DateTime>")]
    next_from: Option<String>,
}

pub(crate) async fn series(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
    QueryParams(query): QueryParams<SeriesQuery>,
) -> ApiResult<Json<Series>> {
    let (from, to) = period(query.from.as_deref(), query.to.as_deref(), state.clock.now(), 1)?;
    if query.step == Some(0) {
        return Err(ApiError::bad_request("step", "must be at least 1 second"));
    }
    let limit = query.limit.unwrap_or(10_000);
    if !(1..=MAX_POINTS).contains(&limit) {
        return Err(ApiError::bad_request("limit", format!("must be from 1 to {MAX_POINTS}")));
    }
    let machine = MachineId(id);
    let store = state.store;
    let site = store.site(store.machine(machine)?.site_id)?;
    let step_ms = query.step.map(|s| i64::from(s) * 1000);
    // Steps start at the site's midnight on the period's first day, so steps of a day are its
    // days (and steps of hours its hours, in a zone half an hour off UTC).
    let zone = site.zone();
    let origin = oee::unix_ms(zone.day_start(oee::from_unix_ms(from).unwrap_or(state.clock.now())));
    // One point more than asked for tells whether the answer is whole.
    let mut points = read(|| store.series(machine, &query.metric, from, to, step_ms, origin, limit + 1))?;
    let left_out = points.split_off(points.len().min(limit as usize));
    let next_from = left_out.first().map(|p| rfc3339(p.ts_ms));
    Ok(Json(Series {
        machine_id: machine,
        metric: query.metric,
        from: rfc3339(from),
        to: rfc3339(to),
        step: query.step,
        points: points
            .into_iter()
            .map(|p: SeriesPoint| Point {
                ts: rfc3339(p.ts_ms),
                min: p.min,
                max: p.max,
                avg: p.avg,
                last: p.last,
                count: p.count,
            })
            .collect(),
        next_from,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

/// One span of the state timeline as sent.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Span {
    #[schemars(with = "model::DateTime")]
    from: String,
    #[schemars(with = "model::DateTime")]
    to: String,
    state: MachineState,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn spans_out(spans: Vec<StateSpan>) -> Vec<Span> {
    spans
        .into_iter()
        .map(|s| Span { from: rfc3339(s.start_ms), to: rfc3339(s.end_ms), state: s.state, reason: s.reason })
        .collect()
}

pub(crate) async fn states(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
    QueryParams(query): QueryParams<PeriodQuery>,
) -> ApiResult<Json<Vec<Span>>> {
    let now = state.clock.now();
    let (from, to) = period(query.from.as_deref(), query.to.as_deref(), now, 24)?;
    // The state in force now is known up to now, not up to a `to` ahead of it.
    let to = to.min(oee::unix_ms(now));
    let machine = MachineId(id);
    let store = state.store;
    store.machine(machine)?;
    if from >= to {
        return Ok(Json(Vec::new()));
    }
    Ok(Json(spans_out(read(|| store.state_spans(machine, from, to))?)))
}

/// A machine's current state as sent.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct CurrentState {
    machine_id: MachineId,
    state: MachineState,
    #[schemars(with = "model::DateTime")]
    since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

pub(crate) async fn current_states(
    State(state): State<AppState>,
    _: Reader,
) -> ApiResult<Json<Vec<CurrentState>>> {
    let (store, now) = (state.store, state.clock.now());
    let states = read(|| store.current_states(now))?;
    Ok(Json(
        states
            .into_iter()
            .map(|c| CurrentState {
                machine_id: c.machine,
                state: c.state,
                since: rfc3339(oee::unix_ms(c.at)),
                reason: c.reason,
            })
            .collect(),
    ))
}

/// A state report by a person or a device.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateReport {
    state: MachineState,
    #[serde(default)]
    reason: Option<String>,
    /// When the machine entered the state (RFC 3339 or epoch milliseconds; from seven days ago to
    /// five minutes from now); now when absent.
    #[serde(default, deserialize_with = "model::rfc3339_or_millis")]
    #[schemars(with = "Option<model::DateTimeOrMillis>")]
    at: Option<Timestamp>,
}

/// Operators, planners, admins, and the machine's own site's devices may report states and
/// counts; operators and maintenance accounts bound to a site for its machines only.
fn check_reporter(principal: &Principal, store: &store::Store, machine: &Machine) -> ApiResult<()> {
    if principal.may_ingest_for(machine.site_id) {
        Ok(())
    } else if principal.user.role.may_report_production() {
        principal.require_site(store, machine.site_id, &format!("machine {}", machine.code))
    } else {
        Err(ApiError::forbidden(format!(
            "the {} role may not report for this machine",
            principal.user.role.as_str()
        )))
    }
}

/// A reported time (`at`) must fall in the window machines' own messages are taken in: at most
/// five minutes ahead of the server's clock (devices' clocks drift) and at most seven days old
/// (store and forward after an outage). A state "since 2100" would otherwise stay the machine's
/// current state for good.
fn check_at(at: Option<Timestamp>, now: Timestamp, out: &mut Vec<FieldError>) {
    let window = ingest::TimeWindow::new(now, &ingest::DecodeConfig::default());
    if at.is_some_and(|at| window.check(at).is_err()) {
        out.push(FieldError::new("at", "must be from seven days ago to five minutes from now"));
    }
}

fn check_reason(reason: Option<&str>, out: &mut Vec<FieldError>) {
    if let Some(reason) = reason {
        model::check_name("reason", reason, out);
    }
}

pub(crate) async fn report_state(
    State(state): State<AppState>,
    MachineReporter(principal): MachineReporter,
    Id(id): Id,
    JsonBody(report): JsonBody<StateReport>,
) -> ApiResult<Created<CurrentState>> {
    let machine = state.store.machine(MachineId(id))?;
    check_reporter(&principal, &state.store, &machine)?;
    let mut problems = Vec::new();
    check_reason(report.reason.as_deref(), &mut problems);
    check_at(report.at, state.clock.now(), &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let change = StateChange {
        machine: machine.id,
        at: report.at.unwrap_or_else(|| state.report_time()),
        state: report.state,
        reason: report.reason,
    };
    let store = state.store.clone();
    let stored = change.clone();
    let now = state.clock.now();
    // The state in force once it is written: a report dated before the machine's latest state
    // (a stop entered after the fact) goes into the history, but the machine's state now is
    // still that later one.
    let current = blocking(move || {
        store.record_state(&stored)?;
        store.current_state(stored.machine, now)
    })
    .await?
    .unwrap_or_else(|| change.clone());
    if current.at <= change.at {
        // Only a change of the state now is news: the live pages, the alarms and the replanner
        // (which repairs the plan around a breakdown) take it; a correction of the past is not.
        state.publish(LiveEvent::MachineState {
            machine_id: change.machine,
            state: change.state,
            since: rfc3339(oee::unix_ms(change.at)),
            reason: change.reason.clone(),
        });
        state.alarm_input(AlarmInput::State(change.clone()));
    }
    Ok(Created(CurrentState {
        machine_id: current.machine,
        state: current.state,
        since: rfc3339(oee::unix_ms(current.at)),
        reason: current.reason,
    }))
}

/// Units reported finished on a machine.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductionReport {
    good: u32,
    #[serde(default)]
    scrap: u32,
    /// Ideal seconds per unit; taken from the operation when `operation_id` is given.
    #[serde(default)]
    ideal_unit_seconds: Option<f64>,
    /// The order operation the units belong to: they count toward it, as a machine's `produced`
    /// event does (and start it if it had not started); 409 once it is done or cancelled.
    #[serde(default)]
    operation_id: Option<model::OperationId>,
    /// When the units were made (RFC 3339 or epoch milliseconds; from seven days ago to five minutes
    /// from now); now when absent.
    #[serde(default, deserialize_with = "model::rfc3339_or_millis")]
    #[schemars(with = "Option<model::DateTimeOrMillis>")]
    at: Option<Timestamp>,
    /// Why the scrapped units were scrapped (only with `scrap`): the machine page's scrap Pareto
    /// counts units by it.
    #[serde(default)]
    scrap_reason: Option<String>,
}

/// The stored record, as sent back.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct ProductionOut {
    machine_id: MachineId,
    #[schemars(with = "model::DateTime")]
    at: String,
    good: u32,
    scrap: u32,
    ideal_unit_seconds: f64,
    scrap_reason: Option<String>,
}

pub(crate) async fn report_production(
    State(state): State<AppState>,
    MachineReporter(principal): MachineReporter,
    Id(id): Id,
    JsonBody(report): JsonBody<ProductionReport>,
) -> ApiResult<Created<ProductionOut>> {
    let machine = state.store.machine(MachineId(id))?;
    check_reporter(&principal, &state.store, &machine)?;
    let ideal = report.ideal_unit_seconds.unwrap_or(0.0);
    let mut problems = Vec::new();
    if !(0.0..=7.0 * 86_400.0).contains(&ideal) {
        problems.push(FieldError::new("ideal_unit_seconds", "must be a number from 0 to 604800"));
    }
    if report.good == 0 && report.scrap == 0 {
        problems.push(FieldError::new("good", "report at least one unit, good or scrap"));
    } else if u64::from(report.good) + u64::from(report.scrap) > u64::from(model::MAX_ORDER_QUANTITY) {
        problems.push(FieldError::new("good", "at most 1000000 units in one report"));
    }
    check_at(report.at, state.clock.now(), &mut problems);
    let scrap_reason = model::scrap_reason(report.scrap_reason.as_deref(), report.scrap, &mut problems);
    if report.ideal_unit_seconds.is_none() && report.operation_id.is_none() {
        problems
            .push(FieldError::new("ideal_unit_seconds", "give the ideal time per unit or the operation_id"));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let at = report.at.unwrap_or_else(|| state.report_time());
    if let Some(operation) = report.operation_id {
        return Ok(Created(
            count_for_operation(&state, &machine, operation, &report, at, scrap_reason).await?,
        ));
    }
    let record = ProductionRecord {
        machine: machine.id,
        at,
        operation: None,
        good: report.good,
        scrap: report.scrap,
        ideal_unit_seconds: ideal,
        scrap_reason,
    };
    let store = state.store.clone();
    let (record, recorded) = blocking(move || {
        let recorded = store.record_production(&record)?;
        Ok((record, recorded))
    })
    .await?;
    // A retry changes nothing, so it is no news either.
    if recorded {
        state.publish(LiveEvent::Production {
            machine_id: record.machine,
            operation_id: None,
            order_id: None,
            good: record.good,
            scrap: record.scrap,
            at: rfc3339(oee::unix_ms(record.at)),
        });
    }
    Ok(Created(ProductionOut {
        machine_id: record.machine,
        at: rfc3339(oee::unix_ms(record.at)),
        good: record.good,
        scrap: record.scrap,
        ideal_unit_seconds: record.ideal_unit_seconds,
        scrap_reason: record.scrap_reason,
    }))
}

/// Units of an order operation: they count toward it as a machine's `produced` event does, so the
/// operation must be one this machine can run, not finished, and of a released order.
async fn count_for_operation(
    state: &AppState,
    machine: &Machine,
    operation: model::OperationId,
    report: &ProductionReport,
    at: Timestamp,
    scrap_reason: Option<String>,
) -> ApiResult<ProductionOut> {
    let operation = match state.store.operation(operation) {
        Ok(operation) => operation,
        Err(store::StoreError::NotFound { .. }) => {
            return Err(ApiError::validation(vec![FieldError::new("operation_id", "no such operation")]));
        }
        Err(error) => return Err(error.into()),
    };
    if !operation.eligible_machines.contains(&machine.id) {
        return Err(ApiError::validation(vec![FieldError::new(
            "operation_id",
            "this machine is not an eligible machine of the operation",
        )]));
    }
    // The store checks the rest inside the write (the operation not finished, not running on
    // another machine, free to start here if it has not started, the units within its limit), so
    // reports at once cannot together pass what each would be refused alone.
    let ideal_unit_ms =
        report.ideal_unit_seconds.filter(|s| *s > 0.0).map(ingest::MachineEvent::ideal_unit_ms);
    let kind = store::OperationEventKind::Produced { good: report.good, scrap: report.scrap, ideal_unit_ms };
    let event = store::OperationEvent {
        operation: operation.id,
        machine: machine.id,
        at,
        kind,
        checked: true,
        counted_before: None,
        scrap_reason: scrap_reason.clone(),
    };
    super::orders::write_operation_event(state, event).await?;
    Ok(ProductionOut {
        machine_id: machine.id,
        at: rfc3339(oee::unix_ms(at)),
        good: report.good,
        scrap: report.scrap,
        ideal_unit_seconds: ideal_unit_ms.map_or(operation.unit_seconds, |ms| f64::from(ms) / 1000.0),
        scrap_reason,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OeeQuery {
    machine: Option<i64>,
    line: Option<i64>,
    site: Option<i64>,
    from: Option<String>,
    to: Option<String>,
    shift: Option<String>,
}

/// Which shift `GET /oee?shift=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShiftChoice {
    /// The shift in progress, or the last one that ended.
    Current,
    /// The one before that.
    Previous,
}

/// The whole span and name of the shift `choice` of `site` at `now_ms`, by its calendar and
/// zone; `None` when its calendar has none in the week before.
pub(crate) fn shift_of(
    store: &store::Store,
    site: SiteId,
    choice: ShiftChoice,
    now_ms: i64,
) -> store::Result<Option<(oee::Span, String)>> {
    let (calendar, zone) = (store.calendar(site)?, store.site(site)?.zone());
    let current = oee::shift_at(&calendar, &zone, now_ms);
    Ok(match choice {
        ShiftChoice::Current => current,
        ShiftChoice::Previous => {
            current.and_then(|((start, _), _)| oee::shift_at(&calendar, &zone, start - 1))
        }
    })
}

/// One machine's KPIs.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct MachineKpis {
    pub(crate) machine_id: MachineId,
    pub(crate) code: String,
    #[serde(flatten)]
    pub(crate) kpis: Kpis,
}

/// The OEE answer: the total over the machines asked for, and each machine.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct OeeReport {
    #[schemars(with = "model::DateTime")]
    from: String,
    #[schemars(with = "model::DateTime")]
    to: String,
    /// With `shift=`: the shift's name in the site's calendar ("" for a calendar without
    /// shifts, which works whole days).
    #[serde(skip_serializing_if = "Option::is_none")]
    shift: Option<String>,
    total: Kpis,
    machines: Vec<MachineKpis>,
}

pub(crate) async fn oee_report(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<OeeQuery>,
) -> ApiResult<Json<OeeReport>> {
    let now = state.clock.now();
    let shift = match query.shift.as_deref() {
        None => None,
        Some(_) if query.from.is_some() || query.to.is_some() => {
            return Err(ApiError::bad_request("shift", "give either shift or from and to"));
        }
        Some("current") => Some(ShiftChoice::Current),
        Some("previous") => Some(ShiftChoice::Previous),
        Some(_) => return Err(ApiError::bad_request("shift", "must be current or previous")),
    };
    let (from, to) = period(query.from.as_deref(), query.to.as_deref(), now, 24)?;
    let chosen =
        [query.machine.is_some(), query.line.is_some(), query.site.is_some()].iter().filter(|b| **b).count();
    if chosen > 1 {
        return Err(ApiError::bad_request("machine", "give one of machine, line or site"));
    }
    let store = state.store.clone();
    let now_ms = oee::unix_ms(now);
    let (report, from, to, shift) = blocking(move || {
        let mut machines: Vec<Machine> = match query.machine {
            Some(id) => vec![store.machine(MachineId(id))?],
            None => {
                // A filter naming nothing that exists is wrong, not "none" (as everywhere).
                if let Some(site) = query.site {
                    store.site(SiteId(site))?;
                }
                if let Some(line) = query.line {
                    store.line(model::LineId(line))?;
                }
                let filter = store::MachineFilter {
                    site: query.site.map(SiteId),
                    line: query.line.map(model::LineId),
                    retired: None,
                };
                store.machines(&filter, PageRequest { after: None, limit: 10_000 })?.items
            }
        };
        // A shift is a site's: the one asked for, or the one every machine chosen is at.
        let (from, to, shift) = match shift {
            None => (from, to, None),
            Some(choice) => {
                let mut sites: Vec<SiteId> = machines.iter().map(|m| m.site_id).collect();
                sites.extend(query.site.map(SiteId));
                sites.sort_unstable();
                sites.dedup();
                let [site] = sites[..] else {
                    let message = if sites.is_empty() {
                        "there are no machines, so no site whose shifts to use"
                    } else {
                        "the machines are at several sites, each with its own shifts: give a site, line or machine"
                    };
                    return Ok(Err(ApiError::bad_request("shift", message)));
                };
                match shift_of(&store, site, choice, now_ms)? {
                    Some(((start, end), name)) => (start, end, Some(name)),
                    None => {
                        return Ok(Err(ApiError::conflict(
                            Some("shift".into()),
                            "the site's calendar has no shift in the week before",
                        )));
                    }
                }
            }
        };
        // What has not happened yet is neither available nor lost: the KPIs end at now.
        let to = to.min(now_ms).max(from);
        // A machine retired before the period has nothing in it (one asked for by id keeps
        // its row, as it always did).
        if query.machine.is_none() {
            machines.retain(|m| m.retired_at.is_none_or(|at| oee::unix_ms(at) > from));
        }
        Ok(Ok((machine_kpis(&store, machines, from, to, now_ms)?, from, to, shift)))
    })
    .await??;
    let total = Kpis::combine(report.iter().map(|m| &m.kpis));
    Ok(Json(OeeReport { from: rfc3339(from), to: rfc3339(to), shift, total, machines: report }))
}

/// ISO 22400 KPIs of each of `machines` from `from_ms` to `to_ms`, under its site's calendar; a
/// retired machine's end at its retirement.
pub(crate) fn machine_kpis(
    store: &store::Store,
    machines: Vec<Machine>,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> store::Result<Vec<MachineKpis>> {
    let mut sites = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(machines.len());
    for machine in machines {
        if let std::collections::hash_map::Entry::Vacant(entry) = sites.entry(machine.site_id) {
            entry.insert((store.calendar(machine.site_id)?, store.site(machine.site_id)?.zone()));
        }
        let (calendar, zone) = &sites[&machine.site_id];
        let to_ms = machine.retired_at.map_or(to_ms, |at| to_ms.min(oee::unix_ms(at)).max(from_ms));
        // Units reported up to a day after the period may have been made within it (a lot
        // counted when it ends, after the period or the shift): see `oee::compute`.
        let until = to_ms.saturating_add(LATE_REPORTS_MS);
        // States up to now (not into the next day: a stop still going has lasted until now), the
        // one in force at the start from when it began (a stop under way then is an earlier
        // period's failure).
        let mut spans =
            store.state_spans_from_their_start(machine.id, from_ms, until.min(now_ms.max(to_ms)))?;
        let production = store.production(machine.id, from_ms, until)?;
        let first_state = store.first_state_at(machine.id)?.map(oee::unix_ms);
        let first_units = store.first_production(machine.id)?;
        let from_ms = history_start(first_state, first_units.as_ref(), from_ms, to_ms);
        // Maintenance windows are planned stops, as a `planned_stop` state is: not planned time.
        // Not while the machine ran, though: then the maintenance did not take place (a lot ran
        // on into the window), and the time and the units made in it count as production.
        let running: Vec<oee::Span> = oee::merge(
            spans
                .iter()
                .filter(|s| s.state == MachineState::Running)
                .map(|s| (s.start_ms, s.end_ms))
                .collect(),
        );
        for window in store.maintenance(Some(machine.id), from_ms)? {
            let (start, end) = (oee::unix_ms(window.start).max(from_ms), oee::unix_ms(window.end).min(until));
            for (start_ms, end_ms) in oee::subtract(&[(start, end)], &running) {
                spans.push(StateSpan {
                    start_ms,
                    end_ms,
                    state: MachineState::PlannedStop,
                    reason: Some(window.reason.clone()),
                });
            }
        }
        let kpis = oee::compute(calendar, zone, from_ms, to_ms, &spans, &production);
        rows.push(MachineKpis { machine_id: machine.id, code: machine.code, kpis });
    }
    Ok(rows)
}

/// How long after a period units reported may still have been made within it.
const LATE_REPORTS_MS: i64 = 86_400_000;

/// Where a machine's KPI window really starts: at `from_ms`, unless the machine's first state
/// report ever (`first_state`) and the work of its first counted units ever (their ideal time
/// before the report) both came later. Time before a machine ever reported (it was not yet
/// connected, or the platform was not yet running) is not planned time it lost; gaps after its
/// first report still count as offline, and units counted before its first state count. Both are
/// the machine's first ever, not the first within the window: a day after a machine first reported
/// is planned in full, however late in that day its first report or count came. A machine that
/// never reported anything keeps the whole window, all of it offline without data, so a silent
/// machine shows as such.
fn history_start(
    first_state: Option<i64>,
    first_units: Option<&ProductionRecord>,
    from_ms: i64,
    to_ms: i64,
) -> i64 {
    let first_work = first_units.map_or(i64::MAX, |record| {
        let produced = f64::from(record.good) + f64::from(record.scrap);
        oee::unix_ms(record.at) - (record.ideal_unit_seconds * produced * 1000.0).round() as i64
    });
    match first_state.unwrap_or(i64::MAX).min(first_work) {
        i64::MAX => from_ms,
        first => first.clamp(from_ms, to_ms.max(from_ms)),
    }
}

/// One telemetry message of an HTTP batch: the JSON topic payload plus the machine it is for.
#[derive(Debug, Deserialize)]
pub(crate) struct TelemetryMessage {
    site: String,
    machine: String,
    /// `ts` and `metrics`, exactly as on the MQTT topic `mf/v1/{site}/{machine}/telemetry`.
    #[serde(flatten)]
    body: serde_json::Map<String, serde_json::Value>,
}

/// What an HTTP ingest did.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct IngestReport {
    /// Readings stored (committed) by this request.
    accepted: usize,
    /// Readings already stored with the same timestamp, ignored.
    duplicates: usize,
    /// Readings or messages not stored, by reason.
    dropped: std::collections::BTreeMap<&'static str, usize>,
}

/// Most messages one HTTP ingest request may carry.
const MAX_MESSAGES: usize = 10_000;

/// How long an HTTP ingest waits for its batch to be stored before answering 503.
const INGEST_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

const STORE_FAILING: &str = "the store is not taking writes at the moment (see the server log); nothing of this request may be stored, retry later";

pub(crate) async fn ingest_telemetry(
    State(state): State<AppState>,
    Ingester(principal): Ingester,
    JsonBody(messages): JsonBody<Vec<TelemetryMessage>>,
) -> ApiResult<Json<IngestReport>> {
    use crate::pipeline::{Publisher, Resolver, WriteBatch, collect};
    let publisher = match (principal.user.role, principal.user.site_id) {
        (model::Role::Admin, _) => Publisher::AnySite,
        (model::Role::Device, Some(site)) => Publisher::Site(site),
        (role, _) => {
            return Err(ApiError::forbidden(format!("the {} role may not publish telemetry", role.as_str())));
        }
    };
    if messages.len() > MAX_MESSAGES {
        return Err(ApiError::bad_request("body", format!("at most {MAX_MESSAGES} messages per request")));
    }
    let now = state.clock.now();
    let mut decoder = ingest::json::JsonDecoder::new(ingest::DecodeConfig::default());
    let mut decoded = ingest::Decoded::default();
    let mut resolver = Resolver::new();
    let mut batch = WriteBatch::default();
    let mut dropped = std::collections::BTreeMap::new();
    for message in messages {
        state.metrics.count_ingest_message();
        let topic = format!("mf/v1/{}/{}/telemetry", message.site, message.machine);
        let payload = serde_json::to_vec(&message.body).map_err(ApiError::internal)?;
        decoded.clear();
        decoder.decode(&topic, &payload, now, &mut decoded);
        for reason in collect(&state, &mut resolver, publisher, &mut decoded, &mut batch) {
            *dropped.entry(reason).or_insert(0) += 1;
        }
    }
    if state.pipeline.failing.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::service_unavailable(STORE_FAILING));
    }
    let (ack, outcome) = tokio::sync::oneshot::channel();
    batch.ack = Some(ack);
    let written = async {
        state
            .pipeline
            .writes
            .send(batch)
            .await
            .map_err(|_| ApiError::internal("the ingest writer is not running"))?;
        // The write task logs why the store failed.
        outcome.await.map_err(ApiError::internal)?.map_err(|_| ApiError::service_unavailable(STORE_FAILING))
    };
    // Queued behind a batch the store refuses, the answer could take as long as the failure.
    let stats = tokio::time::timeout(INGEST_ANSWER_TIMEOUT, written)
        .await
        .map_err(|_| ApiError::service_unavailable(STORE_FAILING))??;
    if stats.too_many_metrics > 0 {
        dropped.insert("too_many_metrics", stats.too_many_metrics);
    }
    Ok(Json(IngestReport { accepted: stats.inserted, duplicates: stats.duplicates, dropped }))
}

pub(crate) async fn get_state_rule(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<model::StateRule>> {
    let machine = state.store.machine(MachineId(id))?;
    read(|| state.store.state_rule(machine.id))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("machine {id} has no state rule")))
}

pub(crate) async fn set_state_rule(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(rule): JsonBody<model::StateRule>,
) -> ApiResult<Json<model::StateRule>> {
    principal.require(crate::auth::Need::Administer)?;
    super::validate(&rule)?;
    let store = state.store.clone();
    let stored = rule.clone();
    blocking(move || store.set_state_rule(MachineId(id), &stored)).await?;
    state.state_deriver().invalidate();
    Ok(Json(rule))
}

pub(crate) async fn delete_state_rule(
    State(state): State<AppState>,
    _: Administrator,
    Id(id): Id,
) -> ApiResult<axum::http::StatusCode> {
    let store = state.store.clone();
    blocking(move || store.delete_state_rule(MachineId(id))).await?;
    state.state_deriver().invalidate();
    Ok(axum::http::StatusCode::NO_CONTENT)
}

pub(crate) async fn get_count_rule(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<model::CountRule>> {
    let machine = state.store.machine(MachineId(id))?;
    read(|| state.store.count_rule(machine.id))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("machine {id} has no count rule")))
}

/// Counters are read by the store as each batch is written, so a new rule takes effect with the
/// next reading; there is nothing to invalidate.
pub(crate) async fn set_count_rule(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(rule): JsonBody<model::CountRule>,
) -> ApiResult<Json<model::CountRule>> {
    principal.require(crate::auth::Need::Administer)?;
    super::validate(&rule)?;
    let store = state.store.clone();
    let stored = rule.clone();
    blocking(move || store.set_count_rule(MachineId(id), &stored)).await?;
    Ok(Json(rule))
}

pub(crate) async fn delete_count_rule(
    State(state): State<AppState>,
    _: Administrator,
    Id(id): Id,
) -> ApiResult<axum::http::StatusCode> {
    let store = state.store.clone();
    blocking(move || store.delete_count_rule(MachineId(id))).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
