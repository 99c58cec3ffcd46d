//! Handlers for plans: compute one from the open orders, read it (with order ETAs and its diff
//! against the active plan), publish it, draw its Gantt data, and each machine's dispatch list.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use model::{MachineId, Operation, OrderId, OrderStatus, PlanSummary, PlannedOperation, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Created, blocking, read};
use crate::auth::{Maintainer, Need, Planner, Reader};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, JsonOrDefault, ListResponse, QueryParams, page_request};
use crate::{AppState, planning};

/// A plan request; every field is optional, and no body at all is the defaults.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRequest {
    /// Solver time in seconds, 0 to 60 (default 3); 0 returns the best dispatching rule's plan at
    /// once, without search.
    #[serde(default)]
    time_limit_seconds: Option<f64>,
    /// `tardiness_then_makespan` (default), `weighted_tardiness` or `makespan`.
    #[serde(default)]
    objective: Option<String>,
    /// Repair the active plan instead of planning afresh: operations the active plan starts
    /// within `freeze_minutes` keep their machine and start (unless their machine is down), so the
    /// near term stays stable.
    #[serde(default)]
    repair: bool,
    /// The freeze horizon of a repair, in minutes (default 60, at most 1440).
    #[serde(default)]
    freeze_minutes: Option<u32>,
}

/// When an order is planned to finish.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Eta {
    pub(crate) order_id: OrderId,
    pub(crate) number: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    pub(crate) due: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    pub(crate) eta: Timestamp,
    pub(crate) late: bool,
    /// The order's status now, which the plan may no longer match (not in the API).
    #[serde(skip)]
    pub(crate) status: OrderStatus,
    /// The order's priority now (not in the API).
    #[serde(skip)]
    pub(crate) priority: u8,
    /// When the order finished, once done (not in the API).
    #[serde(skip)]
    pub(crate) finished: Option<Timestamp>,
}

impl Eta {
    /// Seconds the order is late now, if it is: a done order by when it finished, a cancelled
    /// one never, an open one by the plan's ETA.
    pub(crate) fn late_now(&self) -> Option<i64> {
        let end = match self.status {
            OrderStatus::Cancelled => return None,
            OrderStatus::Done => self.finished.unwrap_or(self.eta),
            _ => self.eta,
        };
        (end > self.due).then(|| (end - self.due).whole_seconds())
    }
}

/// Late orders and Σ priority × seconds late of a plan's `etas`, against the orders' due dates
/// and priorities now (the plan's own figures are those it was computed with): orders cancelled
/// since do not count, and those done by when they finished (see [`Eta::late_now`]).
pub(crate) fn figures_now(etas: &[Eta]) -> (u32, i64) {
    etas.iter()
        .filter_map(|e| e.late_now().map(|seconds| (e.priority, seconds)))
        .fold((0, 0), |(late, weighted), (priority, seconds)| {
            (late + 1, weighted + i64::from(priority) * seconds)
        })
}

/// What changed against the plan that was active when this one was computed.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct PlanDiff {
    /// The plan compared with; absent when there was none.
    pub(crate) against: Option<i64>,
    /// Operations on another machine or starting more than a minute earlier or later.
    pub(crate) moved_operations: usize,
    /// Operations planned in both.
    pub(crate) compared_operations: usize,
    /// Orders whose ETA moved by more than a minute, with the shift in seconds (positive: later).
    pub(crate) eta_changes: Vec<(OrderId, i64)>,
}

/// How busy a machine is in a plan.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Utilisation {
    pub(crate) machine_id: MachineId,
    /// Seconds of processing and setup planned.
    pub(crate) busy_seconds: i64,
    /// Seconds the machine is open within the plan's span (from its computation to its last
    /// end): its site's shifts (all of it when the site has none), less its maintenance.
    pub(crate) open_seconds: i64,
    /// Busy seconds over open seconds, 0 to 1 (1 also when running work goes on through closed
    /// time).
    pub(crate) utilisation: f64,
}

/// A plan with its order ETAs, machine utilisation and its diff.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct PlanDetail {
    #[serde(flatten)]
    pub(crate) summary: PlanSummary,
    /// Orders the plan finishes late against their due dates now: `late_orders` is the count
    /// when the plan was computed, and an order's due date may have changed since.
    pub(crate) late_orders_now: u32,
    /// Σ priority × seconds late against the orders' due dates and priorities now.
    pub(crate) weighted_tardiness_now: i64,
    pub(crate) etas: Vec<Eta>,
    pub(crate) utilisation: Vec<Utilisation>,
    pub(crate) diff: PlanDiff,
}

fn utilisation(
    store: &store::Store,
    summary: &PlanSummary,
    operations: &[PlannedOperation],
) -> Result<Vec<Utilisation>, store::StoreError> {
    let (from_ms, to_ms) =
        (model::oee::unix_ms(summary.created_at), model::oee::unix_ms(summary.makespan_end));
    let mut busy: std::collections::BTreeMap<MachineId, i64> = std::collections::BTreeMap::new();
    for op in operations {
        *busy.entry(op.machine_id).or_default() += (op.end - op.setup_start).whole_seconds();
    }
    let mut maintenance: HashMap<MachineId, Vec<model::oee::Span>> = HashMap::new();
    for window in store.maintenance(None, from_ms)? {
        let span = (model::oee::unix_ms(window.start), model::oee::unix_ms(window.end));
        maintenance.entry(window.machine_id).or_default().push(span);
    }
    let mut open_by_site: HashMap<model::SiteId, Vec<model::oee::Span>> = HashMap::new();
    let mut out = Vec::with_capacity(busy.len());
    for (machine_id, busy_seconds) in busy {
        let site = store.machine(machine_id)?.site_id;
        if let std::collections::hash_map::Entry::Vacant(entry) = open_by_site.entry(site) {
            let calendar = store.calendar(site)?;
            entry.insert(if calendar.always_open() || to_ms <= from_ms {
                vec![(from_ms, to_ms.max(from_ms))]
            } else {
                model::oee::shift_spans(&calendar, &store.site(site)?.zone(), from_ms, to_ms)
            });
        }
        let mut closed = maintenance.remove(&machine_id).unwrap_or_default();
        closed.sort_unstable();
        let open = model::oee::subtract(&open_by_site[&site], &closed);
        let open_seconds = open.iter().map(|(start, end)| end - start).sum::<i64>() / 1000;
        let utilisation =
            if open_seconds > 0 { (busy_seconds as f64 / open_seconds as f64).min(1.0) } else { 1.0 };
        out.push(Utilisation { machine_id, busy_seconds, open_seconds, utilisation });
    }
    Ok(out)
}

pub(crate) fn etas(
    store: &store::Store,
    operations: &[PlannedOperation],
) -> Result<Vec<Eta>, store::StoreError> {
    let mut ends: HashMap<OrderId, Timestamp> = HashMap::new();
    for op in operations {
        let end = ends.entry(op.order_id).or_insert(op.end);
        *end = (*end).max(op.end);
    }
    let mut out = Vec::with_capacity(ends.len());
    for (order_id, eta) in ends {
        let order = store.order(order_id)?;
        out.push(Eta {
            order_id,
            number: order.number,
            due: order.due,
            eta,
            late: eta > order.due,
            status: order.status,
            priority: order.priority,
            finished: order.finished_at,
        });
    }
    out.sort_by_key(|e| e.order_id);
    Ok(out)
}

fn diff(
    against: Option<(i64, &[PlannedOperation])>,
    plan: &[PlannedOperation],
    new_etas: &[Eta],
    old_etas: &[Eta],
) -> PlanDiff {
    let Some((against, previous)) = against else { return PlanDiff::default() };
    let first_parts = |ops: &[PlannedOperation]| -> HashMap<model::OperationId, (MachineId, Timestamp)> {
        ops.iter().filter(|op| op.part == 0).map(|op| (op.operation_id, (op.machine_id, op.start))).collect()
    };
    let (old, new) = (first_parts(previous), first_parts(plan));
    let mut moved = 0;
    let mut compared = 0;
    for (operation, (machine, start)) in &new {
        if let Some((old_machine, old_start)) = old.get(operation) {
            compared += 1;
            if old_machine != machine || (*start - *old_start).abs() > time::Duration::minutes(1) {
                moved += 1;
            }
        }
    }
    let old_eta: HashMap<OrderId, Timestamp> = old_etas.iter().map(|e| (e.order_id, e.eta)).collect();
    let eta_changes = new_etas
        .iter()
        .filter_map(|e| {
            let shift = (e.eta - *old_eta.get(&e.order_id)?).whole_seconds();
            (shift.abs() > 60).then_some((e.order_id, shift))
        })
        .collect();
    PlanDiff { against: Some(against), moved_operations: moved, compared_operations: compared, eta_changes }
}

pub(crate) fn detail(store: &store::Store, summary: PlanSummary) -> Result<PlanDetail, store::StoreError> {
    let operations = store.plan_operations(summary.id, None)?;
    let new_etas = etas(store, &operations)?;
    // Compare with the plan that was active when this one was computed: the newest active or
    // superseded plan older than it.
    let previous = store
        .plans(store::PageRequest { after: Some(summary.id), limit: 50 })?
        .items
        .into_iter()
        .find(|p| p.status != model::PlanStatus::Draft);
    let diff = match previous {
        Some(previous) => {
            let old_ops = store.plan_operations(previous.id, None)?;
            let old_etas = etas(store, &old_ops)?;
            diff(Some((previous.id, &old_ops)), &operations, &new_etas, &old_etas)
        }
        None => PlanDiff::default(),
    };
    let utilisation = utilisation(store, &summary, &operations)?;
    let (late_orders_now, weighted_tardiness_now) = figures_now(&new_etas);
    Ok(PlanDetail { summary, late_orders_now, weighted_tardiness_now, etas: new_etas, utilisation, diff })
}

pub(crate) async fn create_plan(
    State(state): State<AppState>,
    Planner(principal): Planner,
    JsonOrDefault(request): JsonOrDefault<PlanRequest>,
) -> ApiResult<Created<PlanDetail>> {
    principal.require(Need::Plan)?;
    let seconds = request.time_limit_seconds.unwrap_or(3.0);
    if !(0.0..=60.0).contains(&seconds) {
        return Err(ApiError::validation(vec![model::FieldError::new(
            "time_limit_seconds",
            "must be from 0 to 60",
        )]));
    }
    let freeze = request.freeze_minutes.unwrap_or(60);
    if freeze > 1440 {
        return Err(ApiError::validation(vec![model::FieldError::new(
            "freeze_minutes",
            "must be at most 1440",
        )]));
    }
    let options = planning::Options {
        repair: request.repair.then(|| time::Duration::minutes(i64::from(freeze))),
        down_for: time::Duration::minutes(i64::from(state.planning.expected_repair_minutes)),
        threads: state.planning.threads(),
        rush_priority: state.planning.rush_priority,
        search_loss_percent: state.planning.repair_search_loss_percent,
    };
    let objective = request.objective.unwrap_or_else(|| planning::DEFAULT_OBJECTIVE.into());
    if planning::objective(&objective).is_none() {
        return Err(ApiError::validation(vec![model::FieldError::new(
            "objective",
            "must be tardiness_then_makespan, weighted_tardiness or makespan",
        )]));
    }
    // One plan at a time: a second waits its turn (at most the longest plan), and its time
    // limit starts then.
    let turn = super::take_turn(
        &state.plan_turn,
        PLAN_TURN_WAIT,
        "other plans are being computed; try again when they are done",
    )
    .await?;
    // A client that goes away (the request is dropped) ends the search, and nothing is stored.
    let cancel: Arc<AtomicBool> = Arc::default();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (store, now) = (state.store.clone(), state.clock.now());
    let planned = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let limit = Duration::from_secs_f64(seconds);
        let plan = planning::plan_with(&store, now, &objective, limit, &options, Some(&cancel), &[])
            .map_err(|error| match error {
                planning::PlanError::Store(error) => ApiError::from(error),
                planning::PlanError::Solver(error) => ApiError::internal(error),
                planning::PlanError::TooFar(message) => ApiError::conflict(None, message),
            })?;
        if cancel.load(Ordering::Relaxed) {
            return Err(ApiError::service_unavailable("the plan was cancelled"));
        }
        let summary = store.create_plan(&plan)?;
        Ok::<_, ApiError>(detail(&store, summary)?)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Created(planned))
}

/// How long an asked-for plan waits for the plans before it: one of the longest (60 s) and a
/// little more.
const PLAN_TURN_WAIT: Duration = Duration::from_secs(75);

/// Sets its flag when dropped: when the request's future is, because the client went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

pub(crate) async fn list_plans(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<super::PageQuery>,
) -> ApiResult<Json<ListResponse<PlanSummary>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    Ok(Json(read(|| state.store.plans(request))?.into()))
}

pub(crate) async fn get_plan(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<PlanDetail>> {
    let store = state.store;
    Ok(Json(read(|| detail(&store, store.plan(id)?))?))
}

/// The problem as stored (gzip) to a client that takes gzip, else decompressed here.
pub(crate) async fn plan_problem(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, VARY};
    use axum::response::IntoResponse;
    let json = (CONTENT_TYPE, "application/json");
    if crate::compress::accepts_gzip(&headers) {
        let stored = read(|| state.store.plan_problem_gzip(id))?;
        return Ok(([json, (CONTENT_ENCODING, "gzip"), (VARY, "accept-encoding")], stored).into_response());
    }
    let problem = read(|| state.store.plan_problem(id))?;
    Ok(([json, (VARY, "accept-encoding")], problem).into_response())
}

pub(crate) async fn publish_plan(
    State(state): State<AppState>,
    _: Planner,
    Id(id): Id,
) -> ApiResult<Json<PlanSummary>> {
    let (store, now) = (state.store.clone(), state.clock.now());
    let published = blocking(move || store.publish_plan(id, now)).await?;
    state.publish(crate::LiveEvent::Plan { plan_id: published.id, trigger: published.trigger.clone() });
    Ok(Json(published))
}

/// One bar of the Gantt chart.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct GanttItem {
    #[serde(flatten)]
    pub(crate) operation: PlannedOperation,
    pub(crate) order_number: String,
    /// The product variant the order is for.
    pub(crate) product: String,
    pub(crate) operation_name: String,
    /// The order is planned to finish after its due date.
    pub(crate) late: bool,
    /// Where the operation stands now (`running` and `done` show progress against the plan).
    pub(crate) status: model::OperationStatus,
    /// Good units counted so far for the whole operation (every part of a split lot).
    pub(crate) good: u32,
    /// Scrapped units counted so far for the whole operation.
    pub(crate) scrap: u32,
}

impl GanttItem {
    /// A bar for `planned`, part of `operation` (its name, status and counts) of an order.
    fn new(
        planned: PlannedOperation,
        operation: Operation,
        order_number: String,
        product: String,
        late: bool,
    ) -> Self {
        GanttItem {
            operation: planned,
            order_number,
            product,
            operation_name: operation.name,
            late,
            status: operation.status,
            good: operation.good,
            scrap: operation.scrap,
        }
    }
}

/// A bar for `operation` running on `machine` where the active plan does not have it (started
/// on another of its machines than planned): from its start to `now`, with the units it has left.
pub(crate) fn unplanned_item(
    store: &store::Store,
    operation: Operation,
    machine: MachineId,
    now: Timestamp,
) -> store::Result<GanttItem> {
    let order = store.order(operation.order_id)?;
    let product = store.variant(order.variant_id)?.name;
    let started = operation.started_at.unwrap_or(now);
    let planned = PlannedOperation {
        operation_id: operation.id,
        order_id: order.id,
        part: 0,
        quantity: operation.quantity.saturating_sub(operation.good.saturating_add(operation.scrap)),
        machine_id: machine,
        setup_start: started,
        start: started,
        end: now.max(started),
    };
    Ok(GanttItem::new(planned, operation, order.number, product, false))
}

/// One machine's row of the Gantt chart.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct GanttLane {
    pub(crate) machine_id: MachineId,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) items: Vec<GanttItem>,
    /// When the machine does not work within the plan's span: outside its site's shifts, and
    /// its planned maintenance.
    pub(crate) closed: Vec<ClosedSpan>,
}

/// A stretch a machine does not work.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ClosedSpan {
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    pub(crate) from: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    pub(crate) to: Timestamp,
    /// The maintenance window's reason; absent for time outside the shifts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) maintenance: Option<String>,
}

pub(crate) async fn gantt(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Vec<GanttLane>>> {
    let store = state.store;
    Ok(Json(read(|| gantt_lanes(&store, id))?))
}

/// Every machine's row of plan `id`'s Gantt chart.
pub(crate) fn gantt_lanes(store: &store::Store, id: i64) -> store::Result<Vec<GanttLane>> {
    {
        let operations = store.plan_operations(id, None)?;
        let late: HashMap<OrderId, bool> =
            etas(store, &operations)?.into_iter().map(|e| (e.order_id, e.late)).collect();
        let all = store::MachineFilter::default();
        let machines = store.machines(&all, store::PageRequest { after: None, limit: 10_000 })?.items;
        let retired: std::collections::HashSet<MachineId> =
            machines.iter().filter(|m| !m.in_service()).map(|m| m.id).collect();
        let mut orders: HashMap<OrderId, (String, String)> = HashMap::new();
        // Closed time within the plan's span, by site calendar and by machine maintenance.
        let first = operations.iter().map(|op| op.setup_start).min();
        let last = operations.iter().map(|op| op.end).max();
        let mut off_shift: HashMap<model::SiteId, Vec<ClosedSpan>> = HashMap::new();
        let mut maintenance: HashMap<MachineId, Vec<ClosedSpan>> = HashMap::new();
        if let (Some(first), Some(last)) = (first, last) {
            let (from_ms, to_ms) = (model::oee::unix_ms(first), model::oee::unix_ms(last));
            for machine in &machines {
                if off_shift.contains_key(&machine.site_id) {
                    continue;
                }
                let calendar = store.calendar(machine.site_id)?;
                let zone = store.site(machine.site_id)?.zone();
                let spans = if calendar.always_open() {
                    Vec::new()
                } else {
                    let open = model::oee::shift_spans(&calendar, &zone, from_ms, to_ms);
                    model::oee::subtract(&[(from_ms, to_ms)], &open)
                };
                let at = model::oee::from_unix_ms;
                let closed = spans
                    .into_iter()
                    .filter_map(|(from, to)| {
                        Some(ClosedSpan { from: at(from)?, to: at(to)?, maintenance: None })
                    })
                    .collect();
                off_shift.insert(machine.site_id, closed);
            }
            for window in store.maintenance(None, from_ms)? {
                if window.start < last {
                    maintenance.entry(window.machine_id).or_default().push(ClosedSpan {
                        from: window.start.max(first),
                        to: window.end.min(last),
                        maintenance: Some(window.reason),
                    });
                }
            }
        }
        let mut lanes: Vec<GanttLane> = machines
            .into_iter()
            .map(|m| {
                let mut closed = off_shift.get(&m.site_id).cloned().unwrap_or_default();
                closed.extend(maintenance.remove(&m.id).unwrap_or_default());
                GanttLane { machine_id: m.id, code: m.code, name: m.name, items: Vec::new(), closed }
            })
            .collect();
        for op in operations {
            let (number, product) = match orders.get(&op.order_id) {
                Some(known) => known.clone(),
                None => {
                    let order = store.order(op.order_id)?;
                    let known = (order.number, store.variant(order.variant_id)?.name);
                    orders.insert(op.order_id, known.clone());
                    known
                }
            };
            let operation = store.operation(op.operation_id)?;
            if let Some(lane) = lanes.iter_mut().find(|l| l.machine_id == op.machine_id) {
                let late = late.get(&op.order_id).copied().unwrap_or(false);
                lane.items.push(GanttItem::new(op, operation, number, product, late));
            }
        }
        // A retired machine keeps its lane only in plans that gave it work.
        lanes.retain(|lane| !lane.items.is_empty() || !retired.contains(&lane.machine_id));
        Ok(lanes)
    }
}

/// The active plan's queue for one machine.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Dispatch {
    pub(crate) machine_id: MachineId,
    /// The active plan, if there is one.
    pub(crate) plan_id: Option<i64>,
    /// Operations not yet done, in planned order.
    pub(crate) queue: Vec<GanttItem>,
}

pub(crate) async fn dispatch(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Dispatch>> {
    let machine = MachineId(id);
    let store = state.store;
    store.machine(machine)?;
    Ok(Json(read(|| dispatch_queue(&store, machine))?))
}

/// The active plan's queue of work not yet done on `machine`, in planned order.
/// The units part `part` of a lot planned in parts of `parts` units still has to make. The parts
/// hold the units the lot had left when the plan was made (all of them, unless it had been
/// stopped for now with some made); the units counted since made the first parts; and the lot
/// may have become smaller since (the step before it scrapped units), which takes units off its
/// last parts, or larger (the step before reported more good units than planned), which its last
/// part takes on. The parts' units left add up to the lot's.
pub(crate) fn units_left(operation: &Operation, parts: &[u32], part: u32) -> u32 {
    let made = operation.good.saturating_add(operation.scrap);
    let planned: u32 = parts.iter().sum();
    // The units of the lot before its first part: those made before the plan. They are made, so
    // no more than `made`; a lot that grew since the plan has more units than its parts besides.
    let base = operation.quantity.saturating_sub(planned).min(made);
    let before: u32 = parts.iter().take(part as usize).sum();
    let this = parts.get(part as usize).copied().unwrap_or(0);
    let last = part as usize + 1 >= parts.len();
    // This part's units, as positions in the lot, less those made and those the lot no longer has.
    let from = (base + before).max(made);
    let to = if last { operation.quantity } else { (base + before + this).min(operation.quantity) };
    to.saturating_sub(from)
}

pub(crate) fn dispatch_queue(store: &store::Store, machine: MachineId) -> store::Result<Dispatch> {
    {
        let Some(plan) = store.active_plan()? else {
            return Ok(Dispatch { machine_id: machine, plan_id: None, queue: Vec::new() });
        };
        let mut queue = Vec::new();
        let mut parts_of: HashMap<model::OperationId, Vec<u32>> = HashMap::new();
        for mut op in store.plan_operations(plan.id, Some(machine))? {
            let operation = store.operation(op.operation_id)?;
            if matches!(operation.status, OrderStatus::Done | OrderStatus::Cancelled) {
                continue;
            }
            // Several parts of one lot may be on this list: its parts are read once.
            let parts = match parts_of.entry(op.operation_id) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(new) => {
                    new.insert(store.plan_part_quantities(plan.id, op.operation_id)?)
                }
            };
            op.quantity = units_left(&operation, parts, op.part);
            // A part made already (the lot stopped for now after it) is off the list.
            if op.quantity == 0 && operation.status != OrderStatus::Running {
                continue;
            }
            let order = store.order(op.order_id)?;
            let late = op.end > order.due;
            let product = store.variant(order.variant_id)?.name;
            queue.push(GanttItem::new(op, operation, order.number, product, late));
        }
        queue.sort_by_key(|item| item.operation.start);
        Ok(Dispatch { machine_id: machine, plan_id: Some(plan.id), queue })
    }
}

pub(crate) async fn list_maintenance(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Vec<model::MaintenanceWindow>>> {
    let machine = MachineId(id);
    let store = state.store;
    store.machine(machine)?;
    Ok(Json(read(|| store.maintenance(Some(machine), i64::MIN))?))
}

/// `GET /maintenance?machine=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceQuery {
    machine: Option<i64>,
}

/// Every machine's maintenance windows not over yet (or one machine's), earliest first: the
/// maintenance schedule.
pub(crate) async fn maintenance_schedule(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<MaintenanceQuery>,
) -> ApiResult<Json<Vec<model::MaintenanceWindow>>> {
    let machine = query.machine.map(MachineId);
    let store = state.store;
    if let Some(machine) = machine {
        read(|| store.machine(machine))?;
    }
    let now = model::oee::unix_ms(state.clock.now());
    Ok(Json(read(|| store.maintenance(machine, now))?))
}

pub(crate) async fn create_maintenance(
    State(state): State<AppState>,
    Maintainer(principal): Maintainer,
    Id(id): Id,
    JsonBody(new): JsonBody<model::NewMaintenanceWindow>,
) -> ApiResult<Created<model::MaintenanceWindow>> {
    principal.require(Need::Maintain)?;
    principal.require_machine_site(&state.store, MachineId(id))?;
    super::validate(&new)?;
    let store = state.store.clone();
    let now = state.clock.now();
    let window = blocking(move || store.create_maintenance(MachineId(id), &new, now)).await?;
    // The active plan may have work in the window: the replanner looks now.
    state.wake_replanner();
    Ok(Created(window))
}

pub(crate) async fn delete_maintenance(
    State(state): State<AppState>,
    Maintainer(principal): Maintainer,
    Id(id): Id,
) -> ApiResult<axum::http::StatusCode> {
    if principal.user.site_id.is_some() {
        principal.require_machine_site(&state.store, state.store.maintenance_machine(id)?)?;
    }
    let store = state.store.clone();
    let now = state.clock.now();
    let (machine, waiting) = blocking(move || {
        let (machine, start) = store.delete_maintenance(id, now)?;
        // Work the active plan has on the machine from the window's start on may come earlier.
        let waiting = match store.active_plan()? {
            Some(active) => store.plan_operations(active.id, Some(machine))?.iter().any(|op| op.end > start),
            None => false,
        };
        Ok::<_, store::StoreError>((store.machine(machine)?, waiting))
    })
    .await?;
    if waiting {
        state.request_replan(model::PlanTrigger::MaintenanceRemoved { machine: machine.code });
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_made_fill_the_first_parts_and_a_smaller_lot_shortens_the_last() {
        let lot = |quantity: u32, good: u32, scrap: u32| Operation { quantity, good, scrap, ..operation() };
        let left = |op: &Operation, parts: &[u32]| -> Vec<u32> {
            (0..parts.len() as u32).map(|part| units_left(op, parts, part)).collect()
        };
        assert_eq!(left(&lot(300, 0, 0), &[150, 150]), [150, 150]);
        // Stopped for now after 149 good and 1 scrap: the first part is made.
        assert_eq!(left(&lot(300, 149, 1), &[150, 150]), [0, 150]);
        assert_eq!(left(&lot(300, 40, 0), &[100, 100, 100]), [60, 100, 100]);
        assert_eq!(left(&lot(300, 250, 0), &[100, 100, 100]), [0, 0, 50]);
        // The step before scrapped 3 of 10: the lot is 7.
        assert_eq!(left(&lot(7, 0, 0), &[10]), [7]);
        assert_eq!(left(&lot(7, 2, 0), &[5, 5]), [3, 2]);
        // More made than planned: nothing left anywhere.
        assert_eq!(left(&lot(10, 12, 0), &[5, 5]), [0, 0]);
        // A plan made after the lot stopped for now with 40 made holds the 260 left, in two
        // parts; 160 more made take the first and 30 of the second; planned again, 100 remain.
        assert_eq!(left(&lot(300, 40, 0), &[130, 130]), [130, 130]);
        assert_eq!(left(&lot(300, 200, 0), &[130, 130]), [0, 100]);
        assert_eq!(left(&lot(300, 200, 0), &[100]), [100]);
        // The step before reported 12 good of a lot of 10: the last part takes the 2 more.
        assert_eq!(left(&lot(12, 0, 0), &[10]), [12]);
        assert_eq!(left(&lot(12, 0, 0), &[5, 5]), [5, 7]);
        // With 6 made it cannot tell growth from units made before the plan; the total holds.
        assert_eq!(left(&lot(12, 6, 0), &[5, 5]), [1, 5]);
        // Grown by 2 after a plan made when 40 of 300 were made.
        assert_eq!(left(&lot(302, 40, 0), &[130, 130]), [130, 132]);
        assert_eq!(left(&lot(302, 300, 0), &[130, 130]), [0, 2]);
    }

    fn operation() -> Operation {
        serde_json::from_value(serde_json::json!({
            "id": 1, "order_id": 1, "seq": 0, "name": "hob", "eligible_machines": [1],
            "setup_seconds": 0, "unit_seconds": 1.0, "setup_family": "g", "quantity": 1,
            "status": "released", "good": 0, "scrap": 0
        }))
        .unwrap()
    }
}
