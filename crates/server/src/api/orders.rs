//! Handlers for customer orders: list with filters, create, change while planned, release,
//! cancel, delete, and the all-or-nothing CSV import.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use model::{NewOrder, Operation, Order, OrderId, OrderStatus};
use serde::{Deserialize, Serialize};
use store::{OrderFilter, Store};

use super::{Created, blocking, read, remove};
use crate::AppState;
use crate::auth::{Need, Orderer, Reader, Reporter};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, ListResponse, QueryParams, page_request, timestamp_param};
use crate::import::{ImportOutcome, import_csv};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<OrderStatus>,
    due_before: Option<String>,
    due_after: Option<String>,
    machine: Option<i64>,
    customer: Option<String>,
    number: Option<String>,
    search: Option<String>,
    sort: Option<String>,
    changed_after: Option<i64>,
    late: Option<bool>,
    open: Option<bool>,
    site: Option<i64>,
    product: Option<i64>,
}

pub(crate) async fn list_orders(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<OrdersQuery>,
) -> ApiResult<Json<ListResponse<Order>>> {
    let (cursor, limit) = (query.cursor.clone(), query.limit);
    let mut filter = orders_filter(query, state.clock.now())?;
    let sort = filter.sort;
    let (cursor, cursor_due_ms) = split_order_cursor(sort, cursor.as_deref())
        .map_err(|()| ApiError::bad_request("cursor", "not a cursor returned by this API for this order"))?;
    let request = page_request(limit, cursor)?;
    filter.cursor_due_ms = cursor_due_ms;
    let store = state.store;
    read(|| check_filter_records(&store, &filter))?;
    let page = read(|| store.orders(&filter, request))?;
    let next_cursor = order_cursor(sort, &page);
    Ok(Json(ListResponse { items: page.items, next_cursor }))
}

/// Orders of a machine, site or product that does not exist are not "none": the filter is
/// wrong (404, as `/oee` says).
fn check_filter_records(store: &Store, filter: &OrderFilter) -> store::Result<()> {
    if let Some(machine) = filter.machine {
        store.machine(machine)?;
    }
    if let Some(site) = filter.site {
        store.site(site)?;
    }
    if let Some(product) = filter.product {
        store.product(product)?;
    }
    Ok(())
}

/// The filter of an orders list's query (its paging aside); `now` judges lateness.
fn orders_filter(query: OrdersQuery, now: model::Timestamp) -> ApiResult<OrderFilter> {
    let sort = match (query.sort.as_deref(), query.changed_after) {
        (None, Some(revision)) if revision >= 0 => store::OrderSort::Revision,
        (None, Some(_)) => {
            return Err(ApiError::bad_request("changed_after", "must be a revision, 0 or more"));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "sort",
                "changed_after lists orders by revision; leave sort out",
            ));
        }
        (None | Some("created"), None) => store::OrderSort::Created,
        (Some("due"), None) => store::OrderSort::Due,
        (Some("newest"), None) => store::OrderSort::Newest,
        (Some(_), None) => return Err(ApiError::bad_request("sort", "must be created, newest or due")),
    };
    // Spaces around a search or customer are no part of it (names are stored without them).
    let trim = |text: Option<String>| text.map(|text| text.trim().to_string());
    let (search, customer) = (trim(query.search), trim(query.customer));
    if search.as_ref().is_some_and(|text| text.is_empty() || text.chars().count() > 200) {
        return Err(ApiError::bad_request("search", "must be 1 to 200 characters"));
    }
    Ok(OrderFilter {
        sort,
        cursor_due_ms: None,
        changed_after: query.changed_after.unwrap_or(0),
        status: query.status,
        open: query.open,
        due_before: timestamp_param("due_before", query.due_before.as_deref())?,
        due_after: timestamp_param("due_after", query.due_after.as_deref())?,
        machine: query.machine.map(model::MachineId),
        site: query.site.map(model::SiteId),
        product: query.product.map(model::ProductId),
        customer,
        number: query.number,
        search,
        lateness: query.late.map(|late| store::Lateness { late, now }),
    })
}

/// Most orders one export holds.
const MAX_EXPORT: u32 = 100_000;

/// `GET /orders/export`: every order the filters match, as CSV for a spreadsheet. The import's
/// columns come first, so an exported file can be edited and imported into another store, then
/// what the platform knows of each order: status, when it was entered and finished, and the
/// active plan's ETA.
pub(crate) async fn export_orders(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<OrdersQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    // Everything the filter lets through, so no paging.
    for (name, given) in [("limit", query.limit.is_some()), ("cursor", query.cursor.is_some())] {
        if given {
            return Err(ApiError::bad_request(
                name,
                "an export has every matching order; it takes no paging",
            ));
        }
    }
    let now = state.clock.now();
    let filter = orders_filter(query, now)?;
    let store = state.store;
    let csv = blocking(move || {
        // Times as the orders page shows them, in the site's time (with its offset, so they
        // stay exact instants); the import takes them back as they are.
        let zone = crate::site_zone(&store);
        // Named by the day it was taken, in the site's time: exports of several days keep apart.
        let day = zone.local(now).date();
        let name = format!("orders-{}-{:02}-{:02}.csv", day.year(), u8::from(day.month()), day.day());
        check_filter_records(&store, &filter)?;
        let orders = store.orders(&filter, store::PageRequest { after: None, limit: MAX_EXPORT + 1 })?.items;
        if orders.len() > MAX_EXPORT as usize {
            return Ok(Err(ApiError::conflict(
                None,
                format!("more than {MAX_EXPORT} orders match; narrow the filters (status, due dates)"),
            )));
        }
        let etas: std::collections::HashMap<OrderId, model::Timestamp> = match store.active_plan()? {
            Some(plan) => super::plans::etas(&store, &store.plan_operations(plan.id, None)?)?
                .into_iter()
                .map(|eta| (eta.order_id, eta.eta))
                .collect(),
            None => std::collections::HashMap::new(),
        };
        let mut variants = std::collections::HashMap::new();
        // A byte-order mark first, so a spreadsheet opens the file as UTF-8, not in the
        // computer's own code page (Big5, GBK), which garbles every Chinese name.
        let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
        let header = [
            "number",
            "customer",
            "variant",
            "quantity",
            "due",
            "priority",
            "material_ready",
            "status",
            "created_at",
            "finished_at",
            "delivered",
            "eta",
            "late",
            "id",
            "revision",
        ];
        let written = out.write_record(header).map(|()| {
            for order in &orders {
                if let std::collections::hash_map::Entry::Vacant(entry) = variants.entry(order.variant_id) {
                    entry.insert(store.variant(order.variant_id).map(|v| v.code).unwrap_or_default());
                }
                let (eta, late) = eta_and_lateness(order, etas.get(&order.id).copied(), now);
                let local = |at: model::Timestamp| crate::rfc3339_in(&zone, at);
                let time = |at: Option<model::Timestamp>| at.map(local).unwrap_or_default();
                let record = [
                    spreadsheet_safe(&order.number),
                    spreadsheet_safe(&order.customer),
                    spreadsheet_safe(&variants[&order.variant_id]),
                    order.quantity.to_string(),
                    local(order.due),
                    order.priority.to_string(),
                    time(order.material_ready),
                    order.status.as_str().to_string(),
                    local(order.created_at),
                    time(order.finished_at),
                    order.delivered.map_or(String::new(), |units| units.to_string()),
                    time(eta),
                    late.map_or(String::new(), |late| late.to_string()),
                    order.id.to_string(),
                    order.revision.to_string(),
                ];
                if out.write_record(&record).is_err() {
                    return;
                }
            }
        });
        Ok(written
            .and_then(|()| out.into_inner().map_err(|e| e.into_error().into()))
            .map(|csv| (name, csv))
            .map_err(ApiError::internal))
    })
    .await??;
    let (name, csv) = csv;
    let disposition = format!("attachment; filename=\"{name}\"");
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, csv).into_response())
}

/// A text field as a spreadsheet takes it as text: one that starts like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'`, so opening an export cannot run what a
/// customer's name holds. The import takes one such `'` off again, so a text that starts with
/// `'` and then a formula's first character gets one more, and comes back as it was.
fn spreadsheet_safe(text: &str) -> String {
    // Spreadsheets skip leading spaces before they look for a formula.
    let formula = |text: &str| text.trim_start_matches(' ').starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula(text) || text.strip_prefix('\'').is_some_and(formula) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// An orders list's next cursor: the last order's id and, in a list by due time, its due time
/// too (`"{due_ms}.{id}"`), so the next page needs no lookup and holds however that order changes.
pub(crate) fn order_cursor(sort: store::OrderSort, page: &store::Page<Order>) -> Option<String> {
    let id = page.next_cursor?;
    match sort {
        store::OrderSort::Created | store::OrderSort::Revision | store::OrderSort::Newest => {
            Some(id.to_string())
        }
        store::OrderSort::Due => {
            page.items.last().map(|order| crate::extract::keyed_cursor(model::oee::unix_ms(order.due), id))
        }
    }
}

/// Splits a cursor of [`order_cursor`] for `sort` into its id (as [`page_request`] reads it) and
/// due time; `Err` when it is not a cursor of such a list.
pub(crate) fn split_order_cursor(
    sort: store::OrderSort,
    cursor: Option<&str>,
) -> Result<(Option<&str>, Option<i64>), ()> {
    match (sort, cursor) {
        (_, None | Some("")) => Ok((None, None)),
        (store::OrderSort::Created | store::OrderSort::Revision | store::OrderSort::Newest, Some(cursor)) => {
            Ok((Some(cursor), None))
        }
        (store::OrderSort::Due, Some(cursor)) => {
            let (id, due) = crate::extract::split_keyed_cursor(cursor)?;
            Ok((Some(id), Some(due)))
        }
    }
}

/// `GET /orders/deleted`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeletedQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    changed_after: Option<i64>,
}

/// An order that was deleted, and the revision its deletion took.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct DeletedOrder {
    id: OrderId,
    number: String,
    revision: i64,
}

/// `GET /orders/deleted?changed_after=`: the orders deleted after a revision, in the order of
/// their revisions, so an integration that follows `GET /orders?changed_after=` learns of them too.
pub(crate) async fn deleted_orders(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<DeletedQuery>,
) -> ApiResult<Json<ListResponse<DeletedOrder>>> {
    let after = query.changed_after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("changed_after", "must be a revision, 0 or more"));
    }
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    let page = read(|| store.deleted_orders(after, request))?;
    let items =
        page.items.into_iter().map(|(id, number, revision)| DeletedOrder { id, number, revision }).collect();
    Ok(Json(ListResponse { items, next_cursor: page.next_cursor.map(|revision| revision.to_string()) }))
}

/// An order with its operations, and when the active plan finishes it.
#[derive(Serialize)]
pub(crate) struct OrderDetail {
    #[serde(flatten)]
    order: Order,
    /// An open order's end in the active plan; absent outside it, and once done or cancelled.
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    eta: Option<model::Timestamp>,
    /// Judged as the orders page and `late=` judge it; absent when there is nothing to judge
    /// (cancelled, or open and neither overdue nor in the active plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    late: Option<bool>,
    operations: Vec<Operation>,
}

impl OrderDetail {
    /// `order` with its operations, `planned_end` its end in the active plan, judged at `now`.
    pub(crate) fn new(
        order: Order,
        operations: Vec<Operation>,
        planned_end: Option<model::Timestamp>,
        now: model::Timestamp,
    ) -> OrderDetail {
        let (eta, late) = eta_and_lateness(&order, planned_end, now);
        OrderDetail { order, eta, late, operations }
    }

    /// The `ETag` that `GET /orders/{id}` gives it (see `conditional`).
    pub(crate) fn tag(&self) -> String {
        crate::conditional::tag_of(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// An order's ETA (open orders only: `planned_end`, its end in the active plan) and whether it
/// is late at `now`, as the orders page, the export and `late=` judge it: a done order by when it
/// finished, a cancelled one not at all, an open one as overdue once its due time has passed, or
/// by its ETA.
pub(crate) fn eta_and_lateness(
    order: &Order,
    planned_end: Option<model::Timestamp>,
    now: model::Timestamp,
) -> (Option<model::Timestamp>, Option<bool>) {
    match order.status {
        OrderStatus::Cancelled => (None, None),
        OrderStatus::Done => (None, order.finished_at.map(|at| at > order.due)),
        _ => match planned_end {
            Some(eta) => (Some(eta), Some(eta > order.due || order.due < now)),
            None => (None, (order.due < now).then_some(true)),
        },
    }
}

/// What was done to an order, and how the plans moved its ETA.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrderHistory {
    /// Entered, changed, released, cancelled: by whom and when, oldest first.
    pub events: Vec<model::OrderEvent>,
    /// Each published plan that changed when the order would be done (and the first that had
    /// it), oldest first.
    pub etas: Vec<PlannedEta>,
}

/// When a published plan would have finished an order.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PlannedEta {
    pub plan_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    pub published_at: model::Timestamp,
    /// Why the platform made the plan by itself; absent for a plan someone published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<model::PlanTrigger>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    pub eta: model::Timestamp,
}

/// An order's history: its events, and the published plans that moved its ETA.
pub(crate) fn order_history(store: &Store, id: OrderId) -> store::Result<OrderHistory> {
    let events = store.order_history(id)?;
    let mut etas: Vec<PlannedEta> = Vec::new();
    for store::PlanEta { plan_id, published_at, trigger, eta } in store.order_eta_history(id)? {
        if etas.last().is_none_or(|last| last.eta != eta) {
            etas.push(PlannedEta { plan_id, published_at, trigger, eta });
        }
    }
    Ok(OrderHistory { events, etas })
}

pub(crate) async fn get_order_history(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<OrderHistory>> {
    let store = state.store;
    Ok(Json(blocking(move || order_history(&store, OrderId(id))).await?))
}

/// `POST /orders/quote`: an order to quote a delivery for, not entered. Number and customer may
/// be left out.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// The order number, if it has one yet (checked as an order's, used nowhere).
    #[serde(default)]
    number: Option<String>,
    /// The customer, if known (checked as an order's, used nowhere).
    #[serde(default)]
    customer: Option<String>,
    /// The variant to make.
    variant_id: model::VariantId,
    /// Units, 1 to 1,000,000.
    quantity: u32,
    /// When the customer wants it.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    due: model::Timestamp,
    /// 1 to 10 (1 when left out); of the rush priority or more it goes ahead of other work.
    #[serde(default = "one")]
    priority: u8,
    /// When its material arrives; on hand when left out.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<model::DateTime>")]
    material_ready: Option<model::Timestamp>,
}

fn one() -> u8 {
    1
}

/// One step of a quoted order, as the plan would run it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct QuotedStep {
    /// Position in the routing, from 0.
    seq: u32,
    name: String,
    machine_id: model::MachineId,
    /// When its first part starts (its setup before).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    start: model::Timestamp,
    /// When its last part ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    end: model::Timestamp,
}

/// What releasing an order now would bring, by the plan the platform would make for it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Quote {
    /// When the order would be done.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    eta: model::Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    due: model::Timestamp,
    /// Whether it would be done after its due time.
    late: bool,
    /// How long after its due time (0 when on time).
    late_seconds: i64,
    /// `slotted_in`: into the active plan, as the automatic re-plan slots in a released order
    /// (every machine keeps its order of work); `planned_afresh`: no plan is active, so a plan
    /// of all released work was made.
    how: &'static str,
    /// The active plan it was slotted into.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_id: Option<i64>,
    /// Other orders late by the same plan without this order, and with it (slotted in only).
    #[serde(skip_serializing_if = "Option::is_none")]
    other_late_orders_before: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_late_orders_after: Option<u32>,
    /// Its steps.
    steps: Vec<QuotedStep>,
}

pub(crate) async fn quote_order(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    JsonBody(request): JsonBody<QuoteRequest>,
) -> ApiResult<Json<Quote>> {
    principal.require(Need::Order)?;
    let new = NewOrder {
        number: request.number.unwrap_or_else(|| "QUOTE".into()),
        customer: request.customer.unwrap_or_else(|| "quote".into()),
        variant_id: request.variant_id,
        quantity: request.quantity,
        due: request.due,
        priority: request.priority,
        material_ready: request.material_ready,
    }
    .trimmed();
    super::validate(&new)?;
    // One quote at a time; a second waits for the first (at most about one search) and is
    // refused beyond that, rather than piling searches up on the cores.
    let wait = state.planning.repair_time_limit() + std::time::Duration::from_secs(2);
    let turn = super::take_turn(
        &state.quote_turn,
        wait,
        "other delivery quotes are being worked out; try again in a moment",
    )
    .await?;
    let (store, now, planning) = (state.store.clone(), state.clock.now(), state.planning.clone());
    blocking(move || {
        let _turn = turn;
        let draft = store.draft_order(&new, now)?;
        let active = store.active_plan()?;
        let objective =
            active.as_ref().map_or(crate::planning::DEFAULT_OBJECTIVE.to_string(), |a| a.objective.clone());
        let options = planning.repair_options();
        let limit = planning.repair_time_limit();
        let quote = |draft: &crate::planning::Draft| {
            crate::planning::quote(&store, now, &objective, limit, &options, draft).map_err(|error| {
                match error {
                    crate::planning::PlanError::Store(error) => error,
                    other => store::StoreError::Invalid(vec![model::FieldError::new(
                        "variant_id",
                        other.to_string(),
                    )]),
                }
            })
        };
        let (with, slotted) = quote(&draft)?;
        let planned = crate::planning::progress::planned_by_operation(&with.operations, store::DRAFT_ORDER);
        let steps: Vec<QuotedStep> = draft
            .1
            .iter()
            .filter_map(|operation| {
                let planned = planned.get(&operation.id)?;
                Some(QuotedStep {
                    seq: operation.seq,
                    name: operation.name.clone(),
                    machine_id: planned.machines[0],
                    start: planned.start,
                    end: planned.end,
                })
            })
            .collect();
        let Some(eta) = steps.iter().map(|step| step.end).max() else {
            return Err(store::StoreError::Invalid(vec![model::FieldError::new(
                "variant_id",
                "none of its steps' machines is in service, so it cannot be planned",
            )]));
        };
        let late = eta > new.due;
        // How the rest fares: the same slot-in without the order.
        let (before, after) = if slotted {
            let (without, _) = quote(&(draft.0.clone(), Vec::new()))?;
            (Some(without.late_orders), Some(with.late_orders.saturating_sub(u32::from(late))))
        } else {
            (None, None)
        };
        Ok(Quote {
            eta,
            due: new.due,
            late,
            late_seconds: (eta - new.due).whole_seconds().max(0),
            how: if slotted { "slotted_in" } else { "planned_afresh" },
            plan_id: active.filter(|_| slotted).map(|a| a.id),
            other_late_orders_before: before,
            other_late_orders_after: after,
            steps,
        })
    })
    .await
    .map(Json)
}

pub(crate) async fn get_order(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<OrderDetail>> {
    let (store, now) = (state.store, state.clock.now());
    let detail = blocking(move || {
        let (order, operations) = (store.order(OrderId(id))?, store.operations(OrderId(id))?);
        Ok(OrderDetail::new(order, operations, store.active_plan_end(OrderId(id))?, now))
    })
    .await?;
    Ok(Json(detail))
}

pub(crate) async fn create_order(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    JsonBody(new): JsonBody<NewOrder>,
) -> ApiResult<Created<Order>> {
    // The creation time comes from the clock, so this cannot go through the shared `create`.
    principal.require(Need::Order)?;
    let new = new.trimmed();
    super::validate(&new)?;
    let now = state.clock.now();
    let store = state.store.clone();
    let number = new.number.clone();
    let actor = principal.user.username.clone();
    let created = match blocking(move || store.create_order_by(&new, now, Some(&actor))).await {
        Ok(created) => created,
        // The same order sent again (a retry after a timeout): say which one is there.
        Err(error) if error.is_conflict() => {
            return Err(match read(|| state.store.order_by_number(&number))? {
                Some(existing) => error.with_existing(existing.id.0),
                None => error,
            });
        }
        Err(error) => return Err(error),
    };
    state.wake_replanner();
    Ok(Created(created))
}

pub(crate) async fn update_order(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    Id(id): Id,
    JsonBody(new): JsonBody<NewOrder>,
) -> ApiResult<Json<Order>> {
    principal.require(Need::Order)?;
    let new = new.trimmed();
    super::validate(&new)?;
    let (store, now) = (state.store.clone(), state.clock.now());
    let actor = principal.user.username;
    let (updated, pulled_in) = blocking(move || {
        let before = store.order(OrderId(id))?;
        let updated = store.update_order_by(OrderId(id), &new, now, Some(&actor))?;
        // A due time moved earlier than the active plan finishes the order: the plan is
        // searched afresh for it (a later one frees time, and waits for the next re-plan).
        let pulled_in = updated.due < before.due
            && store.active_plan_end(updated.id)?.is_some_and(|end| end > updated.due);
        Ok((updated, pulled_in))
    })
    .await?;
    if pulled_in {
        state.request_replan(model::PlanTrigger::DueEarlier { orders: vec![updated.number.clone()] });
    }
    // A raised priority may make it a rush order.
    state.wake_replanner();
    Ok(Json(updated))
}

pub(crate) async fn delete_order(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Order, OrderId(id), Store::delete_order).await
}

pub(crate) async fn release_order(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    Id(id): Id,
) -> ApiResult<Json<Order>> {
    change_status(state, OrderId(id), OrderStatus::Released, principal.user.username).await
}

pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    Id(id): Id,
) -> ApiResult<Json<Order>> {
    change_status(state, OrderId(id), OrderStatus::Cancelled, principal.user.username).await
}

/// Releases or cancels an order, for a caller the handlers have found may change orders.
async fn change_status(
    state: AppState,
    id: OrderId,
    next: OrderStatus,
    actor: String,
) -> ApiResult<Json<Order>> {
    // Machines running a lot of the order when it is cancelled stop with it: as a finish at the
    // station does, each is shown idle (unless it says otherwise by then), so OEE does not count
    // running time for work that no longer exists.
    let running: Vec<model::MachineId> = match next {
        OrderStatus::Cancelled => read(|| state.store.operations(id))?
            .into_iter()
            .filter(|op| op.status == OrderStatus::Running)
            .filter_map(|op| op.machine_id)
            .collect(),
        _ => Vec::new(),
    };
    let (store, at) = (state.store.clone(), state.clock.now());
    let order = blocking(move || store.set_order_status_by(id, next, at, Some(&actor))).await?;
    let mut idle = Vec::new();
    for machine in running {
        if read(|| state.store.current_state(machine, at))?
            .is_some_and(|c| c.state == model::MachineState::Running)
        {
            idle.push(model::StateChange { machine, at, state: model::MachineState::Idle, reason: None });
        }
    }
    if !idle.is_empty() {
        write_reports(&state, Vec::new(), idle).await?;
    }
    state.wake_replanner();
    Ok(Json(order))
}

/// What an import reports back.
#[derive(Serialize)]
pub(crate) struct ImportResponse {
    imported: usize,
    orders: Vec<OrderId>,
    /// With `?existing=skip`: the rows of orders already there, left as they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<SkippedOrder>,
}

/// An order a `?existing=skip` import left as it was.
#[derive(Serialize)]
pub(crate) struct SkippedOrder {
    number: String,
    id: OrderId,
}

/// `POST /orders/import`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportQuery {
    /// `refuse` (the default) or `skip`: what to do with rows of order numbers in use.
    existing: Option<String>,
}

pub(crate) async fn import_orders(
    State(state): State<AppState>,
    Orderer(principal): Orderer,
    QueryParams(query): QueryParams<ImportQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<ImportResponse>)> {
    let existing = match query.existing.as_deref() {
        None | Some("refuse") => crate::import::Existing::Refuse,
        Some("skip") => crate::import::Existing::Skip,
        Some(_) => return Err(ApiError::bad_request("existing", "must be refuse or skip")),
    };
    let is_csv =
        request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(
            |value| value.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv")),
        );
    if !is_csv {
        return Err(ApiError::unsupported_media_type("text/csv"));
    }
    let limit = state.config.import_limit_bytes;
    // A file of up to 16 MB may take a while on a slow link: ten times the header allowance.
    let within = std::time::Duration::from_secs(state.config.header_timeout_seconds * 10);
    let bytes = tokio::time::timeout(within, axum::body::to_bytes(request.into_body(), limit))
        .await
        .map_err(|_| ApiError::request_timeout(within))?
        .map_err(|_| ApiError::payload_too_large(limit))?;
    if crate::import::is_empty_file(&bytes) {
        // As everywhere: an empty body is a 400, so a script whose file came out empty acts on nothing.
        return Err(ApiError::bad_request(
            "body",
            "the CSV file is empty: send a header line and at least one order",
        ));
    }
    let now = state.clock.now();
    let store = state.store.clone();
    let actor = principal.user.username;
    let outcome =
        tokio::task::spawn_blocking(move || import_csv(&store, &bytes, now, existing, Some(&actor)))
            .await
            .map_err(ApiError::internal)?;
    match outcome {
        ImportOutcome::Imported(orders, skipped) => {
            // Created when something was; a file of orders all there already changed nothing.
            let status = if orders.is_empty() {
                StatusCode::OK
            } else {
                state.wake_replanner();
                StatusCode::CREATED
            };
            let skipped = skipped.into_iter().map(|(number, id)| SkippedOrder { number, id }).collect();
            Ok((
                status,
                Json(ImportResponse {
                    imported: orders.len(),
                    orders: orders.iter().map(|o| o.id).collect(),
                    skipped,
                }),
            ))
        }
        ImportOutcome::Rejected(errors) => Err(ApiError::validation(
            errors
                .into_iter()
                .map(|e| model::FieldError::new(format!("line {}.{}", e.line, e.column), e.message))
                .collect(),
        )),
        ImportOutcome::Failed(error) => Err(error.into()),
    }
}

/// Where an operator starts an operation.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRequest {
    /// The machine it runs on; one of the operation's eligible machines.
    machine_id: model::MachineId,
}

/// What an operator reports when an operation ends.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishRequest {
    /// Good units.
    good: u32,
    /// Scrapped units.
    #[serde(default)]
    scrap: u32,
    /// The units (good and scrap) counted on the lot when the person read it (the operation's
    /// `good + scrap` then). When more have been counted since (a machine's counter, another
    /// person), the report is refused (409, field `counted_before`) rather than counting them
    /// twice. The station sends it; leave it out to report whatever was counted meanwhile.
    #[serde(default)]
    counted_before: Option<u32>,
    /// Why the scrapped units were scrapped (only with `scrap`): the machine page's scrap Pareto
    /// counts units by it.
    #[serde(default)]
    scrap_reason: Option<String>,
}

impl FinishRequest {
    /// The scrap reason to keep, or the refusal.
    fn scrap_reason(&self) -> ApiResult<Option<String>> {
        let mut problems = Vec::new();
        let reason = model::scrap_reason(self.scrap_reason.as_deref(), self.scrap, &mut problems);
        if problems.is_empty() { Ok(reason) } else { Err(ApiError::validation(problems)) }
    }
}

pub(crate) async fn start_operation(
    State(state): State<AppState>,
    Reporter(principal): Reporter,
    Id(id): Id,
    JsonBody(request): JsonBody<StartRequest>,
) -> ApiResult<Json<Operation>> {
    principal.require(Need::Report)?;
    let operation = state.store.operation(model::OperationId(id))?;
    if !operation.eligible_machines.contains(&request.machine_id) {
        return Err(ApiError::validation(vec![model::FieldError::new(
            "machine_id",
            "not an eligible machine of this operation",
        )]));
    }
    principal.require_machine_site(&state.store, request.machine_id)?;
    // The store checks the rest (its status, its order, earlier steps, the machine's other work)
    // inside the write, so two stations starting at once cannot both succeed.
    report(&state, operation.id, request.machine_id, store::OperationEventKind::Started, None, None).await
}

pub(crate) async fn finish_operation(
    State(state): State<AppState>,
    Reporter(principal): Reporter,
    Id(id): Id,
    JsonBody(request): JsonBody<FinishRequest>,
) -> ApiResult<Json<Operation>> {
    principal.require(Need::Report)?;
    // The store refuses the finish inside the write unless the operation is running then, and
    // the units beyond its limit.
    let kind =
        store::OperationEventKind::Finished { good: request.good, scrap: request.scrap, ideal_unit_ms: None };
    let reason = request.scrap_reason()?;
    report_on_its_machine(&state, &principal, model::OperationId(id), kind, request.counted_before, reason)
        .await
}

/// Reports `kind` on the operation where it runs; a step that is not running (the store refuses
/// the report then) is named with its first eligible machine.
async fn report_on_its_machine(
    state: &AppState,
    principal: &crate::auth::Principal,
    id: model::OperationId,
    kind: store::OperationEventKind,
    counted_before: Option<u32>,
    scrap_reason: Option<String>,
) -> ApiResult<Json<Operation>> {
    let operation = state.store.operation(id)?;
    let Some(machine) = operation.machine_id.or_else(|| operation.eligible_machines.first().copied()) else {
        return Err(ApiError::conflict(Some("status".into()), "the operation has no machine to report on"));
    };
    principal.require_machine_site(&state.store, machine)?;
    report(state, operation.id, machine, kind, counted_before, scrap_reason).await
}

/// Stops a running operation for now (a lot split across shifts, the end of a shift): its units
/// so far count and it waits to be started again, on any of its machines, for the rest.
pub(crate) async fn pause_operation(
    State(state): State<AppState>,
    Reporter(principal): Reporter,
    Id(id): Id,
    JsonBody(request): JsonBody<FinishRequest>,
) -> ApiResult<Json<Operation>> {
    principal.require(Need::Report)?;
    // The store refuses it inside the write unless the operation is running then, and when
    // nothing would be left for later (that is a finish).
    let kind = store::OperationEventKind::Paused { good: request.good, scrap: request.scrap };
    let reason = request.scrap_reason()?;
    report_on_its_machine(&state, &principal, model::OperationId(id), kind, request.counted_before, reason)
        .await
}

/// Reports now on `operation` and answers with it as stored. A start shows the machine running,
/// and a finish idle, unless it says so already: a hand work bench or an unconnected machine has
/// no other source of states, and without them its OEE would read as never running. A connected
/// machine's own next report has the last word.
async fn report(
    state: &AppState,
    operation: model::OperationId,
    machine: model::MachineId,
    kind: store::OperationEventKind,
    counted_before: Option<u32>,
    scrap_reason: Option<String>,
) -> ApiResult<Json<Operation>> {
    let at = state.clock.now();
    let now_state = state.store.current_state(machine, at)?.map(|c| c.state);
    let change = match kind {
        store::OperationEventKind::Started if now_state != Some(model::MachineState::Running) => {
            Some(model::MachineState::Running)
        }
        store::OperationEventKind::Finished { .. } | store::OperationEventKind::Paused { .. }
            if now_state == Some(model::MachineState::Running) =>
        {
            Some(model::MachineState::Idle)
        }
        _ => None,
    };
    let states =
        change.map(|state| model::StateChange { machine, at, state, reason: None }).into_iter().collect();
    let event =
        store::OperationEvent { operation, machine, at, kind, checked: true, counted_before, scrap_reason };
    write_reports(state, vec![event], states).await?;
    Ok(Json(state.store.operation(operation)?))
}

/// Sends a report on an operation through the ingest writer, so it is ordered with machine
/// reports and reaches the live stream, and returns once it is stored.
pub(crate) async fn write_operation_event(state: &AppState, event: store::OperationEvent) -> ApiResult<()> {
    write_reports(state, vec![event], Vec::new()).await
}

/// Writes operation events and machine states through the ingest writer in one batch.
async fn write_reports(
    state: &AppState,
    operations: Vec<store::OperationEvent>,
    states: Vec<model::StateChange>,
) -> ApiResult<()> {
    let (ack, outcome) = tokio::sync::oneshot::channel();
    let batch = crate::pipeline::WriteBatch { operations, states, ack: Some(ack), ..Default::default() };
    if state.pipeline.writes.send(batch).await.is_err() {
        return Err(ApiError::internal("the ingest writer is not running"));
    }
    match outcome.await.map_err(ApiError::internal)? {
        Ok(_) => Ok(()),
        Err(crate::pipeline::WriteError::Store(error)) => Err(error.into()),
        Err(error) => Err(ApiError::internal(error)),
    }
}
