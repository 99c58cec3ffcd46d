//! Customer orders and their operations. An order's operations are copied from its variant's
//! routing when the order is created, in the same transaction.

use std::collections::HashMap;

use model::{
    FieldChange, FieldError, MachineId, NewOrder, Operation, OperationId, Order, OrderEvent, OrderId,
    OrderStatus, PlanTrigger, Timestamp, VariantId,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::catalog::read_routing;
use crate::{Page, PageRequest, Result, Store, StoreError, constraint, from_ms, page, to_ms};

/// The routing orders of `variant` are made by.
fn variant_routing(tx: &Connection, variant: VariantId) -> Result<model::Routing> {
    let routing: Option<Option<i64>> = tx
        .prepare_cached("SELECT routing_id FROM variants WHERE id = ?1")?
        .query_row([variant.0], |row| row.get(0))
        .optional()?;
    match routing {
        None => Err(StoreError::invalid("variant_id", &format!("no such variant (id {variant})"))),
        Some(None) => {
            Err(StoreError::invalid("variant_id", "the variant has no routing, so it cannot be made"))
        }
        Some(Some(routing)) => read_routing(tx, model::RoutingId(routing)),
    }
}

/// What an order (the row of `orders`) delivered, as SQL: the good units of its last operation not
/// cancelled ([`Order::delivered`]), stored with the order when it is done. A macro, so that
/// `concat!` can use it.
macro_rules! delivered {
    () => {
        "coalesce((SELECT op.good FROM operations op
           WHERE op.order_id = orders.id AND op.status != 'cancelled' ORDER BY op.seq DESC LIMIT 1), 0)"
    };
}

/// When a published plan would have finished an order ([`Store::order_eta_history`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEta {
    /// The plan.
    pub plan_id: i64,
    /// When it was published.
    pub published_at: Timestamp,
    /// Why the platform made it by itself; `None` for a plan someone published.
    pub trigger: Option<PlanTrigger>,
    /// Its end of the order's work.
    pub eta: Timestamp,
}

/// The id of a [`Store::draft_order`]: no stored order has it.
pub const DRAFT_ORDER: OrderId = OrderId(-1);

/// Which orders a list returns. Every field narrows the list; `None` does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only open orders (planned, released or running): `true`; only the others (done or
    /// cancelled): `false`.
    pub open: Option<bool>,
    /// Only orders due strictly before this time.
    pub due_before: Option<Timestamp>,
    /// Only orders due at or after this time.
    pub due_after: Option<Timestamp>,
    /// Only orders with an operation that may run on this machine.
    pub machine: Option<MachineId>,
    /// Only orders with an operation that may run on a machine of this site.
    pub site: Option<model::SiteId>,
    /// Only orders of a variant of this product.
    pub product: Option<model::ProductId>,
    /// Only orders of this customer (exact match).
    pub customer: Option<String>,
    /// Only the order of this number (exact match).
    pub number: Option<String>,
    /// Only orders whose number or customer contains this text (ASCII letters in any case).
    pub search: Option<String>,
    /// The order of the list.
    pub sort: OrderSort,
    /// With [`OrderSort::Due`] and a cursor: the due time (Unix ms) of the order at the cursor,
    /// so the list goes on from (due, id) however that order has changed since.
    pub cursor_due_ms: Option<i64>,
    /// With [`OrderSort::Revision`]: only orders changed after this revision ([`Order::revision`]).
    pub changed_after: i64,
    /// Only orders late (or, with `late: false`, not late) at a time; see [`Lateness`].
    pub lateness: Option<Lateness>,
}

/// Whether an order is late at `now`, as the orders page marks it: a done order that finished
/// after its due time; an open order past its due time, or that the active plan finishes after
/// it. A cancelled order is never late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lateness {
    /// Late orders (`true`) or the others (`false`).
    pub late: bool,
    /// The time lateness is judged at.
    pub now: Timestamp,
}

/// The order of an order list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrderSort {
    /// As created (by id).
    #[default]
    Created,
    /// Earliest due first, then as created.
    Due,
    /// Newest first (by id, descending); the cursor is an upper bound on the id.
    Newest,
    /// By [`Order::revision`], least recently changed first; the cursor is the last revision.
    Revision,
}

/// How many orders are in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderStats {
    /// `(status, count)` for every status, in life-cycle order.
    pub by_status: Vec<(OrderStatus, u64)>,
}

/// How orders that finished in a period kept their due dates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Orders that finished in the period.
    pub finished: u64,
    /// Of those, the ones that finished on or before their due time and in full: their last step
    /// made at least the ordered quantity of good units (on time in full, OTIF).
    pub on_time: u64,
}

impl Store {
    /// Creates an order and its operations from the variant's routing.
    pub fn create_order(&self, new: &NewOrder, now: Timestamp) -> Result<Order> {
        self.create_order_by(new, now, None)
    }

    /// [`Store::create_order`], kept in the order's history as done by `actor`.
    pub fn create_order_by(&self, new: &NewOrder, now: Timestamp, actor: Option<&str>) -> Result<Order> {
        self.write(|tx| {
            let mut batch = Batch::begin(tx)?;
            let order = insert_order(tx, new, now, &mut batch, actor)?;
            batch.end(tx)?;
            Ok(order)
        })
    }

    /// Creates all of `orders` or none of them. On failure the error says which one failed
    /// ([`StoreError::InRow`]).
    pub fn create_orders(&self, orders: &[NewOrder], now: Timestamp) -> Result<Vec<Order>> {
        self.create_orders_by(orders, now, None)
    }

    /// [`Store::create_orders`], kept in the orders' history as done by `actor`.
    pub fn create_orders_by(
        &self,
        orders: &[NewOrder],
        now: Timestamp,
        actor: Option<&str>,
    ) -> Result<Vec<Order>> {
        self.write(|tx| {
            let mut batch = Batch::begin(tx)?;
            let created = orders
                .iter()
                .enumerate()
                .map(|(index, new)| {
                    insert_order(tx, new, now, &mut batch, actor)
                        .map_err(|error| StoreError::InRow { index, source: Box::new(error) })
                })
                .collect::<Result<Vec<_>>>()?;
            batch.end(tx)?;
            Ok(created)
        })
    }

    /// `new` as the order and operations it would be once created and released at `now`, but
    /// stored nowhere: for a delivery quote. Its id is [`DRAFT_ORDER`], its operations' ids
    /// negative (no stored record has such ids); refused as [`Store::create_order`] would
    /// refuse it.
    pub fn draft_order(&self, new: &NewOrder, now: Timestamp) -> Result<(Order, Vec<Operation>)> {
        self.read(|conn| {
            let routing = variant_routing(conn, new.variant_id)?;
            check_work(&routing, new.quantity)?;
            let order = order_of(new, DRAFT_ORDER, OrderStatus::Released, now, 0)?;
            let operations = routing
                .steps
                .into_iter()
                .enumerate()
                .map(|(seq, step)| Operation {
                    id: OperationId(-1 - seq as i64),
                    order_id: DRAFT_ORDER,
                    seq: seq as u32,
                    name: step.name,
                    eligible_machines: step.eligible_machines,
                    setup_seconds: step.setup_seconds,
                    unit_seconds: step.unit_seconds,
                    setup_family: step.setup_family,
                    status: OrderStatus::Released,
                    machine_id: None,
                    quantity: new.quantity,
                    good: 0,
                    scrap: 0,
                    started_at: None,
                    finished_at: None,
                })
                .collect();
            Ok((order, operations))
        })
    }

    /// One order.
    pub fn order(&self, id: OrderId) -> Result<Order> {
        self.read(|conn| read_order(conn, id))
    }

    /// The order with this number, if any: in this case, else in another (`SO-1` for `so-1`).
    pub fn order_by_number(&self, number: &str) -> Result<Option<Order>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "{ORDER_SELECT} WHERE lower(number) = lower(?1) ORDER BY number = ?1 DESC, id LIMIT 1"
            ))?
            .query_row([number], order_row)
            .optional()?
            .transpose()
        })
    }

    /// An order's operations in routing order.
    pub fn operations(&self, order: OrderId) -> Result<Vec<Operation>> {
        self.read(|conn| {
            if !conn.prepare_cached("SELECT 1 FROM orders WHERE id = ?1")?.exists([order.0])? {
                return Err(StoreError::NotFound { entity: "order", id: order.0 });
            }
            let mut operations = conn
                .prepare_cached(&format!("{OPERATION_SELECT} WHERE order_id = ?1 ORDER BY seq"))?
                .query_map([order.0], operation_row)?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()??;
            let mut statement = conn.prepare_cached(
                "SELECT om.operation_id, om.machine_id FROM operation_machines om
                 JOIN operations o ON o.id = om.operation_id WHERE o.order_id = ?1 ORDER BY om.machine_id",
            )?;
            let mut rows = statement.query([order.0])?;
            while let Some(row) = rows.next()? {
                let operation = OperationId(row.get(0)?);
                if let Some(op) = operations.iter_mut().find(|op| op.id == operation) {
                    op.eligible_machines.push(MachineId(row.get(1)?));
                }
            }
            Ok(operations)
        })
    }

    /// One operation, with its eligible machines.
    pub fn operation(&self, id: OperationId) -> Result<Operation> {
        self.read(|conn| load_operation(conn, id))
    }

    /// Orders narrowed by `filter`, in id order (as created) or by due time (`filter.sort`). The
    /// cursor is the last order's id either way; by due time, `filter.cursor_due_ms` must give its
    /// due time too.
    pub fn orders(&self, filter: &OrderFilter, request: PageRequest) -> Result<Page<Order>> {
        let (conditions, mut values) = order_conditions(filter);
        let mut sql = format!("{ORDER_SELECT} WHERE 1 = 1{conditions}");
        match (filter.sort, request.after) {
            (OrderSort::Created, after) => {
                sql.push_str(" AND id > ? ORDER BY id");
                values.push(Value::Integer(after.unwrap_or(0)));
            }
            (OrderSort::Revision, after) => {
                sql.push_str(" AND revision > ? ORDER BY revision");
                values.push(Value::Integer(after.unwrap_or(0).max(filter.changed_after)));
            }
            (OrderSort::Newest, after) => {
                sql.push_str(" AND id < ? ORDER BY id DESC");
                values.push(Value::Integer(after.unwrap_or(i64::MAX)));
            }
            (OrderSort::Due, None) => sql.push_str(" ORDER BY due_ms, id"),
            (OrderSort::Due, Some(after)) => {
                let Some(due) = filter.cursor_due_ms else {
                    return Err(StoreError::Invalid(vec![FieldError::new(
                        "cursor",
                        "a cursor of a list by due time carries the due time",
                    )]));
                };
                sql.push_str(" AND (due_ms, id) > (?, ?) ORDER BY due_ms, id");
                values.extend([Value::Integer(due), Value::Integer(after)]);
            }
        }
        sql.push_str(" LIMIT ?");
        values.push(Value::Integer(i64::from(request.limit) + 1));
        self.read(|conn| {
            // Room for a whole page at once (an order is some 200 bytes, moved at each growth), but
            // not for an export's 100,000 before any is read.
            let mut rows = Vec::with_capacity((request.limit as usize + 1).min(1_001));
            for row in conn.prepare_cached(&sql)?.query_map(params_from_iter(values), order_row)? {
                rows.push(row??);
            }
            let by_revision = filter.sort == OrderSort::Revision;
            Ok(page(rows, request.limit, |order| if by_revision { order.revision } else { order.id.0 }))
        })
    }

    /// Orders deleted after revision `after`, in the order of their revisions: `(id, number,
    /// revision)`; the cursor is the last revision.
    pub fn deleted_orders(&self, after: i64, request: PageRequest) -> Result<Page<(OrderId, String, i64)>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, number, revision FROM deleted_orders WHERE revision > ?1 ORDER BY revision LIMIT ?2",
                )?
                .query_map(params![after.max(request.after.unwrap_or(0)), request.limit + 1], |row| {
                    Ok((OrderId(row.get(0)?), row.get(1)?, row.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |(_, _, revision)| *revision))
        })
    }

    /// How many orders `filter` lets through, over all pages.
    pub fn count_orders(&self, filter: &OrderFilter) -> Result<u64> {
        let (conditions, values) = order_conditions(filter);
        let sql = format!("SELECT count(*) FROM orders WHERE 1 = 1{conditions}");
        self.read(|conn| {
            Ok(conn.prepare_cached(&sql)?.query_row(params_from_iter(values), |row| row.get(0))?)
        })
    }

    /// Moves an order to `next` if its life cycle allows it. Cancelling cancels every operation not
    /// yet done; releasing releases every planned operation.
    pub fn set_order_status(&self, id: OrderId, next: OrderStatus) -> Result<Order> {
        self.write(|tx| set_status(tx, id, next))
    }

    /// [`Store::set_order_status`] at `now`, kept in the order's history as done by `actor`.
    pub fn set_order_status_by(
        &self,
        id: OrderId,
        next: OrderStatus,
        now: Timestamp,
        actor: Option<&str>,
    ) -> Result<Order> {
        self.write(|tx| {
            let order = set_status(tx, id, next)?;
            record_event(tx, id, now, actor, next.as_str(), &[])?;
            Ok(order)
        })
    }

    /// What was done to an order, oldest first ([`OrderEvent`]).
    pub fn order_history(&self, id: OrderId) -> Result<Vec<OrderEvent>> {
        self.read(|conn| {
            read_order(conn, id)?;
            let mut out = Vec::new();
            let mut statement = conn.prepare_cached(
                "SELECT at_ms, actor, kind, changes FROM order_events WHERE order_id = ?1 ORDER BY id",
            )?;
            let mut rows = statement.query([id.0])?;
            while let Some(row) = rows.next()? {
                let changes: Option<String> = row.get(3)?;
                let changes = match changes {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|error| StoreError::Corrupt(format!("order event changes: {error}")))?,
                    None => Vec::new(),
                };
                out.push(OrderEvent {
                    at: from_ms(row.get(0)?)?,
                    actor: row.get(1)?,
                    kind: row.get(2)?,
                    changes,
                });
            }
            Ok(out)
        })
    }

    /// When each plan published with work of the order would have finished it, oldest first.
    pub fn order_eta_history(&self, id: OrderId) -> Result<Vec<PlanEta>> {
        self.read(|conn| {
            read_order(conn, id)?;
            let mut statement = conn.prepare_cached(
                // From the order's few operations, to each published plan, to the plan's rows of
                // them by its key: `CROSS JOIN` keeps that order (plan rows have no index by
                // operation, and a scan of every plan's rows grows with the plans kept).
                "SELECT p.id, p.published_ms, p.trigger_json, max(po.end_ms)
                 FROM operations o CROSS JOIN plans p CROSS JOIN plan_operations po
                 WHERE o.order_id = ?1 AND p.published_ms IS NOT NULL
                   AND po.plan_id = p.id AND po.operation_id = o.id
                 GROUP BY p.id ORDER BY p.published_ms, p.id",
            )?;
            let mut rows = statement.query([id.0])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let trigger: Option<String> = row.get(2)?;
                let trigger = trigger
                    .map(|json| serde_json::from_str(&json))
                    .transpose()
                    .map_err(|error| StoreError::Corrupt(format!("plan trigger: {error}")))?;
                out.push(PlanEta {
                    plan_id: row.get(0)?,
                    published_at: from_ms(row.get(1)?)?,
                    trigger,
                    eta: from_ms(row.get(3)?)?,
                });
            }
            Ok(out)
        })
    }
}

/// Moves an order to `next` if its life cycle allows it. Cancelling cancels every operation not yet
/// done; releasing releases every planned operation.
fn set_status(tx: &Connection, id: OrderId, next: OrderStatus) -> Result<Order> {
    let order = read_order(tx, id)?;
    if !order.status.can_become(next) {
        let message = if order.status == next {
            format!("the order is {} already", next.as_str())
        } else {
            format!("an order that is {} cannot become {}", order.status.as_str(), next.as_str())
        };
        return Err(StoreError::Conflict { field: Some("status".into()), message });
    }
    tx.execute("UPDATE orders SET status = ?2 WHERE id = ?1", params![id.0, next.as_str()])?;
    let from: &[OrderStatus] = match next {
        OrderStatus::Released => &[OrderStatus::Planned],
        OrderStatus::Cancelled => &[OrderStatus::Planned, OrderStatus::Released, OrderStatus::Running],
        _ => &[],
    };
    for status in from {
        tx.execute(
            "UPDATE operations SET status = ?3 WHERE order_id = ?1 AND status = ?2",
            params![id.0, status.as_str(), next.as_str()],
        )?;
    }
    // Read again: the triggers gave it (and its steps) new revisions.
    read_order(tx, id)
}

impl Store {
    /// Changes what a customer asked for while the order is open: anything but its variant while it
    /// is `planned`, and anything but its variant and quantity once released or running.
    pub fn update_order(&self, id: OrderId, new: &NewOrder, now: Timestamp) -> Result<Order> {
        self.update_order_by(id, new, now, None)
    }

    /// [`Store::update_order`], kept in the order's history as done by `actor` (when anything
    /// changed).
    pub fn update_order_by(
        &self,
        id: OrderId,
        new: &NewOrder,
        now: Timestamp,
        actor: Option<&str>,
    ) -> Result<Order> {
        self.write(|tx| {
            let order = read_order(tx, id)?;
            if matches!(order.status, OrderStatus::Done | OrderStatus::Cancelled) {
                return Err(StoreError::Conflict {
                    field: Some("status".into()),
                    message: format!("the order is {}; it can no longer be changed", order.status.as_str()),
                });
            }
            // Released work is on the dispatch lists (and may be under way) in its lot sizes.
            if order.status != OrderStatus::Planned && new.quantity != order.quantity {
                return Err(StoreError::Conflict {
                    field: Some("quantity".into()),
                    message: format!(
                        "the quantity of a {} order is fixed, as its lots are on the dispatch lists; for more units enter another order; for fewer, cancel it (and delete it, to use its number again) and enter it anew",
                        order.status.as_str()
                    ),
                });
            }
            if new.variant_id != order.variant_id {
                return Err(StoreError::invalid(
                    "variant_id",
                    "cannot change; cancel the order and create a new one",
                ));
            }
            let changes = changes(&order, new);
            // Nothing to change: no new revision, nothing in the history.
            if changes.is_empty() {
                return Ok(order);
            }
            let steps: Vec<(String, f64)> = tx
                .prepare_cached("SELECT name, unit_seconds FROM operations WHERE order_id = ?1 ORDER BY seq")?
                .query_map([id.0], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            if let Some(problem) =
                steps.iter().find_map(|(name, unit)| model::step_work_problem(new.quantity, name, *unit))
            {
                return Err(StoreError::Invalid(vec![problem]));
            }
            check_number_case(tx, &new.number, Some(id))?;
            tx.execute(
                "UPDATE orders SET number = ?2, customer = ?3, quantity = ?4, due_ms = ?5,
                 priority_raised_ms = CASE WHEN ?6 > priority THEN ?8 ELSE priority_raised_ms END,
                 priority = ?6, material_ready_ms = ?7 WHERE id = ?1",
                params![
                    id.0,
                    new.number,
                    new.customer,
                    new.quantity,
                    to_ms(new.due),
                    new.priority,
                    new.material_ready.map(to_ms),
                    to_ms(now)
                ],
            )
            .map_err(constraint)?;
            record_event(tx, id, now, actor, "changed", &changes)?;
            read_order(tx, id)
        })
    }

    /// The customers of the latest 2,000 orders, the most recent first (at most `limit`): the
    /// order forms offer them, so a customer is typed once and then chosen.
    pub fn recent_customers(&self, limit: u32) -> Result<Vec<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT customer FROM (SELECT customer, id FROM orders ORDER BY id DESC LIMIT 2000)
                     GROUP BY customer ORDER BY max(id) DESC LIMIT ?1",
                )?
                .query_map([limit], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Which of `numbers` are order numbers already in use, in any case.
    pub fn taken_order_numbers<'a>(
        &self,
        numbers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<&'a str>> {
        self.read(|conn| {
            let mut exists = conn.prepare_cached("SELECT 1 FROM orders WHERE lower(number) = lower(?1)")?;
            let mut taken = Vec::new();
            for number in numbers {
                if exists.exists([number])? {
                    taken.push(number);
                }
            }
            Ok(taken)
        })
    }

    /// Deletes an order that never reached the shop floor (planned or cancelled without work).
    pub fn delete_order(&self, id: OrderId) -> Result<()> {
        self.write(|tx| {
            let order = read_order(tx, id)?;
            let worked: bool = tx
                .prepare_cached("SELECT 1 FROM operations WHERE order_id = ?1 AND (good > 0 OR scrap > 0 OR status IN ('running','done'))")?
                .exists([id.0])?;
            if worked || !matches!(order.status, OrderStatus::Planned | OrderStatus::Cancelled) {
                let message = if order.status == OrderStatus::Done {
                    "a done order is part of the shop floor's history (its production, OEE and deliveries) and cannot be deleted"
                } else if worked && order.status == OrderStatus::Cancelled {
                    "a cancelled order with shop-floor history (started or counted work) is kept for that history and cannot be deleted"
                } else if worked {
                    "orders with shop-floor history cannot be deleted; cancel them instead"
                } else {
                    "a released order is on the shop floor's dispatch lists and cannot be deleted; cancel it instead"
                };
                return Err(StoreError::Conflict { field: Some("status".into()), message: message.into() });
            }
            tx.execute("DELETE FROM orders WHERE id = ?1", [id.0])?;
            Ok(())
        })
    }

    /// When each running operation last showed progress: its start, or the latest count of units
    /// a machine reported for it. The planner estimates the work left from it.
    pub fn running_progress(&self) -> Result<HashMap<OperationId, Timestamp>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, progress_ms FROM operations WHERE status = 'running' AND progress_ms IS NOT NULL",
            )?;
            let mut rows = statement.query([])?;
            let mut out = HashMap::new();
            while let Some(row) = rows.next()? {
                out.insert(OperationId(row.get(0)?), from_ms(row.get(1)?)?);
            }
            Ok(out)
        })
    }

    /// Operations under way (status `running`), oldest order first. Their eligible machines are
    /// left empty: the machine doing one is its `machine_id`.
    pub fn running_operations(&self) -> Result<Vec<Operation>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "{OPERATION_SELECT} WHERE status = 'running' ORDER BY order_id, seq"
            ))?;
            let rows = statement.query_map([], operation_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().collect()
        })
    }

    /// Operations ready to start, oldest order first: for every released or running order, its
    /// first operation not yet started, when every operation before it is done. This is
    /// first-in-first-out dispatch, used until a plan exists.
    pub fn ready_operations(&self, limit: u32) -> Result<Vec<Operation>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "{OPERATION_SELECT} JOIN (
                    SELECT o.id AS order_id_, min(op.seq) AS seq_
                    FROM orders o JOIN operations op ON op.order_id = o.id
                    WHERE o.status IN ('released', 'running') AND op.status NOT IN ('done', 'cancelled')
                    GROUP BY o.id ORDER BY o.id LIMIT ?1
                 ) ready ON ready.order_id_ = operations.order_id AND ready.seq_ = operations.seq
                 WHERE operations.status IN ('planned', 'released') ORDER BY operations.order_id"
            ))?;
            let rows = statement.query_map([limit], operation_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            let mut ready = Vec::with_capacity(rows.len());
            for operation in rows {
                let mut operation = operation?;
                operation.eligible_machines = conn
                    .prepare_cached("SELECT machine_id FROM operation_machines WHERE operation_id = ?1 ORDER BY machine_id")?
                    .query_map([operation.id.0], |row| Ok(MachineId(row.get(0)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                ready.push(operation);
            }
            Ok(ready)
        })
    }

    /// Order counts per status.
    pub fn order_stats(&self) -> Result<OrderStats> {
        self.read(|conn| {
            let mut counts = Vec::new();
            for status in OrderStatus::ALL {
                let count: u64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM orders WHERE status = ?1")?
                    .query_row([status.as_str()], |row| row.get(0))?;
                counts.push((status, count));
            }
            Ok(OrderStats { by_status: counts })
        })
    }

    /// How the orders that finished at or after `since` kept their due dates and quantities.
    pub fn deliveries(&self, since: Timestamp) -> Result<Deliveries> {
        self.read(|conn| {
            let (finished, on_time): (u64, Option<u64>) = conn
                .prepare_cached(
                    "SELECT count(*), sum(finished_ms <= due_ms AND coalesce(delivered, 0) >= quantity)
                     FROM orders WHERE status = 'done' AND finished_ms >= ?1",
                )?
                .query_row([to_ms(since)], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(Deliveries { finished, on_time: on_time.unwrap_or(0) })
        })
    }
}

/// What the orders created in one transaction share: their revisions, numbered on from the
/// counter and counted once at the end (there is no trigger on insert: see migration 0029), and
/// their variants' routings, read once each.
struct Batch {
    next_revision: i64,
    routings: HashMap<VariantId, model::Routing>,
}

impl Batch {
    fn begin(tx: &Connection) -> Result<Batch> {
        let last: i64 = tx.query_row("SELECT value FROM order_revision", [], |row| row.get(0))?;
        Ok(Batch { next_revision: last + 1, routings: HashMap::new() })
    }

    fn end(self, tx: &Connection) -> Result<()> {
        tx.execute("UPDATE order_revision SET value = ?1", [self.next_revision - 1])?;
        Ok(())
    }
}

/// The fields of `order` that `new` changes, from what to what.
fn changes(order: &Order, new: &NewOrder) -> Vec<FieldChange> {
    let time = |at: Option<Timestamp>| {
        at.and_then(|at| {
            at.to_offset(time::UtcOffset::UTC).format(&time::format_description::well_known::Rfc3339).ok()
        })
    };
    let fields = [
        ("number", Some(order.number.clone()), Some(new.number.clone())),
        ("customer", Some(order.customer.clone()), Some(new.customer.clone())),
        ("quantity", Some(order.quantity.to_string()), Some(new.quantity.to_string())),
        ("due", time(Some(order.due)), time(Some(new.due))),
        ("priority", Some(order.priority.to_string()), Some(new.priority.to_string())),
        ("material_ready", time(order.material_ready), time(new.material_ready)),
    ];
    fields
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(field, before, after)| FieldChange { field: field.into(), before, after })
        .collect()
}

/// Keeps what was done to order `id` in its history.
fn record_event(
    tx: &Connection,
    id: OrderId,
    at: Timestamp,
    actor: Option<&str>,
    kind: &str,
    changes: &[FieldChange],
) -> Result<()> {
    let changes = if changes.is_empty() {
        None
    } else {
        Some(serde_json::to_string(changes).map_err(|error| StoreError::Corrupt(error.to_string()))?)
    };
    tx.prepare_cached(
        "INSERT INTO order_events (order_id, at_ms, actor, kind, changes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id.0, to_ms(at), actor, kind, changes])?;
    Ok(())
}

/// Refuses `number` when another order than `except` has it in another case: people read
/// `so-1` and `SO-1` as one order. The very same number is the `UNIQUE` constraint's conflict.
fn check_number_case(tx: &Connection, number: &str, except: Option<OrderId>) -> Result<()> {
    let taken: Option<String> = tx
        .prepare_cached(
            "SELECT number FROM orders WHERE lower(number) = lower(?1) AND number != ?1 AND id != ?2 LIMIT 1",
        )?
        .query_row(params![number, except.map_or(0, |order| order.0)], |row| row.get(0))
        .optional()?;
    match taken {
        Some(taken) => Err(StoreError::Conflict {
            field: Some("number".into()),
            message: format!("number is already in use (as {taken:?}; numbers differ by more than case)"),
        }),
        None => Ok(()),
    }
}

fn insert_order(
    tx: &Connection,
    new: &NewOrder,
    now: Timestamp,
    batch: &mut Batch,
    actor: Option<&str>,
) -> Result<Order> {
    let routing = match batch.routings.entry(new.variant_id) {
        std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
        std::collections::hash_map::Entry::Vacant(first) => {
            first.insert(variant_routing(tx, new.variant_id)?)
        }
    };
    check_work(routing, new.quantity)?;
    check_number_case(tx, &new.number, None)?;
    let revision = batch.next_revision;
    tx.prepare_cached(
        "INSERT INTO orders (number, customer, variant_id, quantity, due_ms, priority, status, created_ms,
         material_ready_ms, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned', ?7, ?8, ?9)",
    )?
    .execute(params![
        new.number,
        new.customer,
        new.variant_id.0,
        new.quantity,
        to_ms(new.due),
        new.priority,
        to_ms(now),
        new.material_ready.map(to_ms),
        revision
    ])
    .map_err(constraint)?;
    batch.next_revision += 1;
    let id = OrderId(tx.last_insert_rowid());
    record_event(tx, id, now, actor, "created", &[])?;
    let mut insert_operation = tx.prepare_cached(
        "INSERT INTO operations (order_id, seq, name, setup_seconds, unit_seconds, setup_family, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned')",
    )?;
    let mut insert_machine =
        tx.prepare_cached("INSERT INTO operation_machines (operation_id, machine_id) VALUES (?1, ?2)")?;
    for (seq, step) in routing.steps.iter().enumerate() {
        insert_operation.execute(params![
            id.0,
            seq,
            step.name,
            step.setup_seconds,
            step.unit_seconds,
            step.setup_family
        ])?;
        let operation = tx.last_insert_rowid();
        for machine in &step.eligible_machines {
            insert_machine.execute(params![operation, machine.0])?;
        }
    }
    order_of(new, id, OrderStatus::Planned, now, revision)
}

/// Refuses `quantity` units of `routing` when a step's work would be longer than an order may
/// carry ([`model::step_work_problem`]).
fn check_work(routing: &model::Routing, quantity: u32) -> Result<()> {
    match routing
        .steps
        .iter()
        .find_map(|step| model::step_work_problem(quantity, &step.name, step.unit_seconds))
    {
        Some(problem) => Err(StoreError::Invalid(vec![problem])),
        None => Ok(()),
    }
}

/// `new` as the order it becomes at `now`: its times to the millisecond, as stored.
fn order_of(
    new: &NewOrder,
    id: OrderId,
    status: OrderStatus,
    now: Timestamp,
    revision: i64,
) -> Result<Order> {
    Ok(Order {
        id,
        number: new.number.clone(),
        customer: new.customer.clone(),
        variant_id: new.variant_id,
        quantity: new.quantity,
        due: from_ms(to_ms(new.due))?,
        priority: new.priority,
        status,
        material_ready: new.material_ready.map(|t| from_ms(to_ms(t))).transpose()?,
        created_at: from_ms(to_ms(now))?,
        finished_at: None,
        delivered: None,
        revision,
    })
}

/// An order's columns; the last is what it delivered, once it is done.
const ORDER_SELECT: &str =
    "SELECT id, number, customer, variant_id, quantity, due_ms, priority, status, created_ms, material_ready_ms,
     finished_ms, delivered, revision FROM orders";

fn read_order(conn: &Connection, id: OrderId) -> Result<Order> {
    conn.prepare_cached(&format!("{ORDER_SELECT} WHERE id = ?1"))?
        .query_row([id.0], order_row)
        .optional()?
        .ok_or(StoreError::NotFound { entity: "order", id: id.0 })?
}

/// The SQL conditions (each starting with ` AND`) and their values that narrow the orders table
/// to `filter`.
fn order_conditions(filter: &OrderFilter) -> (String, Vec<Value>) {
    let (mut sql, mut values) = (String::new(), Vec::new());
    if let Some(status) = filter.status {
        sql.push_str(" AND status = ?");
        values.push(Value::Text(status.as_str().into()));
    }
    if let Some(open) = filter.open {
        sql.push_str(if open {
            " AND status IN ('planned', 'released', 'running')"
        } else {
            " AND status IN ('done', 'cancelled')"
        });
    }
    if let Some(before) = filter.due_before {
        sql.push_str(" AND due_ms < ?");
        values.push(Value::Integer(to_ms(before)));
    }
    if let Some(after) = filter.due_after {
        sql.push_str(" AND due_ms >= ?");
        values.push(Value::Integer(to_ms(after)));
    }
    if let Some(product) = filter.product {
        sql.push_str(" AND variant_id IN (SELECT id FROM variants WHERE product_id = ?)");
        values.push(Value::Integer(product.0));
    }
    if let Some(customer) = &filter.customer {
        sql.push_str(" AND customer = ?");
        values.push(Value::Text(customer.clone()));
    }
    if let Some(number) = &filter.number {
        sql.push_str(" AND number = ?");
        values.push(Value::Text(number.clone()));
    }
    if let Some(text) = &filter.search {
        // Both sides folded: what was typed or stored with full-width letters finds the same
        // (numbers are ASCII already).
        sql.push_str(
            r" AND (number LIKE ? ESCAPE '\' OR coalesce(fold_width(customer), customer) LIKE ? ESCAPE '\')",
        );
        let escaped: String = model::fold_width(text)
            .chars()
            .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
            .collect();
        let pattern = format!("%{escaped}%");
        values.push(Value::Text(pattern.clone()));
        values.push(Value::Text(pattern));
    }
    if let Some(Lateness { late, now }) = filter.lateness {
        // `coalesce`: a condition that is NULL (a done order without a finish time, from before
        // they were kept) counts as not late, so every order is on one side or the other.
        sql.push_str(if late { " AND coalesce(" } else { " AND NOT coalesce(" });
        sql.push_str(
            "CASE status WHEN 'done' THEN finished_ms > due_ms WHEN 'cancelled' THEN 0
               ELSE due_ms < ? OR EXISTS (SELECT 1 FROM operations op JOIN plan_operations po
                 ON po.operation_id = op.id AND po.plan_id = (SELECT id FROM plans WHERE status = 'active')
                 WHERE op.order_id = orders.id AND po.end_ms > orders.due_ms) END, 0)",
        );
        values.push(Value::Integer(to_ms(now)));
    }
    if let Some(site) = filter.site {
        sql.push_str(
            " AND id IN (SELECT o.order_id FROM operation_machines om
               JOIN operations o ON o.id = om.operation_id
               JOIN machines m ON m.id = om.machine_id WHERE m.site_id = ?)",
        );
        values.push(Value::Integer(site.0));
    }
    if let Some(machine) = filter.machine {
        sql.push_str(
            " AND id IN (SELECT o.order_id FROM operation_machines om
               JOIN operations o ON o.id = om.operation_id WHERE om.machine_id = ?)",
        );
        values.push(Value::Integer(machine.0));
    }
    (sql, values)
}

fn order_row(row: &Row<'_>) -> rusqlite::Result<Result<Order>> {
    let status: String = row.get(7)?;
    let Some(status) = OrderStatus::parse(&status) else {
        return Ok(Err(StoreError::Corrupt(format!("unknown order status {status:?}"))));
    };
    let (due, created_at) = match (from_ms(row.get(5)?), from_ms(row.get(8)?)) {
        (Ok(due), Ok(created)) => (due, created),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let (material_ready, finished_at) = match (optional_time(row, 9)?, optional_time(row, 10)?) {
        (Ok(ready), Ok(finished)) => (ready, finished),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    Ok(Ok(Order {
        id: OrderId(row.get(0)?),
        number: row.get(1)?,
        customer: row.get(2)?,
        variant_id: VariantId(row.get(3)?),
        quantity: row.get(4)?,
        due,
        priority: row.get(6)?,
        status,
        material_ready,
        created_at,
        finished_at,
        delivered: row.get(11)?,
        revision: row.get(12)?,
    }))
}

/// Column `index` of `row` as an optional time.
fn optional_time(row: &Row<'_>, index: usize) -> rusqlite::Result<Result<Option<Timestamp>>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(from_ms).transpose())
}

/// An operation's columns. The last, its quantity ([`Operation::quantity`]), is the good units of
/// the last operation before it in its order that finished with units counted, else the order's.
const OPERATION_SELECT: &str =
    "SELECT id, order_id, seq, name, setup_seconds, unit_seconds, setup_family, status,
    machine_id, good, scrap, finished_ms,
    COALESCE(
        (SELECT before.good FROM operations before
         WHERE before.order_id = operations.order_id AND before.seq < operations.seq
           AND before.status = 'done' AND before.good + before.scrap > 0
         ORDER BY before.seq DESC LIMIT 1),
        (SELECT quantity FROM orders WHERE orders.id = operations.order_id)
    ), started_ms FROM operations";

fn operation_row(row: &Row<'_>) -> rusqlite::Result<Result<Operation>> {
    let status: String = row.get(7)?;
    let Some(status) = OrderStatus::parse(&status) else {
        return Ok(Err(StoreError::Corrupt(format!("unknown operation status {status:?}"))));
    };
    let finished_at = match optional_time(row, 11)? {
        Ok(finished) => finished,
        Err(e) => return Ok(Err(e)),
    };
    let started_at = match optional_time(row, 13)? {
        Ok(started) => started,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(Operation {
        id: OperationId(row.get(0)?),
        order_id: OrderId(row.get(1)?),
        seq: row.get(2)?,
        name: row.get(3)?,
        eligible_machines: Vec::new(),
        setup_seconds: row.get(4)?,
        unit_seconds: row.get(5)?,
        setup_family: row.get(6)?,
        status,
        machine_id: row.get::<_, Option<i64>>(8)?.map(MachineId),
        good: row.get(9)?,
        scrap: row.get(10)?,
        started_at,
        finished_at,
        quantity: row.get(12)?,
    }))
}

/// Applies a machine's report on an operation. `Started` moves a released (or planned) operation
/// and its order to `running` on that machine. `Produced` does the same if need be, adds its units
/// to the operation's counts and records them as production; both mark when the operation last
/// showed progress (`Store::running_progress`). `Finished` adds the units not
/// reported yet, records them (when there are any), marks the operation `done` and completes the
/// order when every operation is done. Production records take the machine's ideal unit time when
/// it sent one, the operation's unit time otherwise. Units another machine reports for a lot
/// running on one are recorded as that other machine's production and counted toward the lot, which
/// stays on its machine. Reports on unknown, cancelled or already
/// finished operations are ignored, and so is a count already recorded at the same instant:
/// machines repeat themselves after reconnecting. Returns the units it recorded, if any.
pub(crate) fn apply_operation_event(
    tx: &Connection,
    event: &crate::telemetry::OperationEvent,
) -> Result<Option<crate::telemetry::CountedUnits>> {
    use crate::telemetry::OperationEventKind;
    if event.checked {
        check_report(tx, event)?;
    }
    let found: Option<(i64, String, f64)> = tx
        .prepare_cached("SELECT order_id, status, unit_seconds FROM operations WHERE id = ?1")?
        .query_row([event.operation.0], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((order, status, unit_seconds)) = found else { return Ok(None) };
    let machine_known =
        tx.prepare_cached("SELECT 1 FROM machines WHERE id = ?1")?.exists([event.machine.0])?;
    if !machine_known || matches!(status.as_str(), "done" | "cancelled") {
        return Ok(None);
    }
    let start = || -> Result<()> {
        if matches!(status.as_str(), "planned" | "released") {
            tx.prepare_cached(
                "UPDATE operations SET status = 'running', machine_id = ?2, progress_ms = ?3,
                 started_ms = coalesce(started_ms, ?3) WHERE id = ?1",
            )?
            .execute(params![event.operation.0, event.machine.0, to_ms(event.at)])?;
            tx.prepare_cached(
                "UPDATE orders SET status = 'running' WHERE id = ?1 AND status IN ('planned', 'released')",
            )?
            .execute([order])?;
        }
        Ok(())
    };
    // Whether units were recorded.
    let count = |good: u32, scrap: u32, ideal_unit_ms: Option<u32>| -> Result<bool> {
        tx.prepare_cached(
            "UPDATE operations SET good = good + ?3, scrap = scrap + ?4,
                 machine_id = CASE WHEN status = 'running' AND machine_id IS NOT NULL THEN machine_id ELSE ?2 END
             WHERE id = ?1",
        )?
        .execute(params![event.operation.0, event.machine.0, good, scrap])?;
        if good == 0 && scrap == 0 {
            return Ok(false);
        }
        let ideal_unit_seconds = ideal_unit_ms.map_or(unit_seconds, |ms| f64::from(ms) / 1000.0);
        tx.prepare_cached(
            "INSERT INTO production (machine_id, ts_ms, operation_id, good, scrap, ideal_unit_seconds, scrap_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            event.machine.0,
            to_ms(event.at),
            event.operation.0,
            good,
            scrap,
            ideal_unit_seconds,
            event.scrap_reason.as_deref().filter(|_| scrap > 0)
        ])?;
        Ok(true)
    };
    let recorded = match event.kind {
        OperationEventKind::Started => {
            start()?;
            false
        }
        OperationEventKind::Produced { good, scrap, ideal_unit_ms } => {
            // A count is an increment, so a resent one (the same machine, operation, instant and
            // units: an MQTT redelivery after a crash, an HTTP client's retry after a timeout)
            // must not count twice.
            let resent = tx
                .prepare_cached(
                    "SELECT 1 FROM production WHERE machine_id = ?1 AND ts_ms = ?2 AND operation_id = ?3
                     AND good = ?4 AND scrap = ?5",
                )?
                .exists(params![event.machine.0, to_ms(event.at), event.operation.0, good, scrap])?;
            if resent {
                return Ok(None);
            }
            start()?;
            let recorded = count(good, scrap, ideal_unit_ms)?;
            tx.prepare_cached(
                "UPDATE operations SET progress_ms = max(coalesce(progress_ms, ?2), ?2) WHERE id = ?1",
            )?
            .execute(params![event.operation.0, to_ms(event.at)])?;
            recorded
        }
        OperationEventKind::Paused { good, scrap } => {
            let recorded = count(good, scrap, None)?;
            crate::telemetry::await_confirmation(tx, event.machine, event.at, good, scrap)?;
            // Waiting to be started again (on any of its machines) for the units left.
            tx.prepare_cached(
                "UPDATE operations SET status = 'released', progress_ms = NULL WHERE id = ?1 AND status = 'running'",
            )?
            .execute([event.operation.0])?;
            // Stopped before a single unit of it was counted: a start made by mistake, undone.
            // The step is as if never started, and so is its order when nothing else of it was.
            let undone = tx
                .prepare_cached(
                    "UPDATE operations SET started_ms = NULL, machine_id = NULL
                     WHERE id = ?1 AND status = 'released' AND good = 0 AND scrap = 0",
                )?
                .execute([event.operation.0])?;
            if undone > 0 {
                tx.prepare_cached(
                    "UPDATE orders SET status = 'released' WHERE id = ?1 AND status = 'running'
                     AND NOT EXISTS (SELECT 1 FROM operations WHERE order_id = ?1
                                     AND (status IN ('running', 'done') OR good + scrap > 0
                                          OR started_ms IS NOT NULL))",
                )?
                .execute([order])?;
            }
            recorded
        }
        OperationEventKind::Finished { good, scrap, ideal_unit_ms } => {
            let recorded = count(good, scrap, ideal_unit_ms)?;
            crate::telemetry::await_confirmation(tx, event.machine, event.at, good, scrap)?;
            tx.prepare_cached("UPDATE operations SET status = 'done', finished_ms = ?2 WHERE id = ?1")?
                .execute(params![event.operation.0, to_ms(event.at)])?;
            // Every unit scrapped: the later steps have nothing to work on, so they are done
            // too, with none, instead of being planned as lots of nothing; unless a later step
            // runs already (a machine started it out of order), which may still pass units on.
            tx.prepare_cached(
                "UPDATE operations SET status = 'done', finished_ms = ?2
                 WHERE order_id = ?3 AND status IN ('planned', 'released')
                   AND seq > (SELECT seq FROM operations WHERE id = ?1)
                   AND (SELECT good = 0 AND scrap > 0 FROM operations WHERE id = ?1)
                   AND NOT EXISTS (SELECT 1 FROM operations later WHERE later.order_id = ?3
                                   AND later.seq > (SELECT seq FROM operations WHERE id = ?1)
                                   AND later.status = 'running')",
            )?
            .execute(params![event.operation.0, to_ms(event.at), order])?;
            let open = tx
                .prepare_cached(
                    "SELECT 1 FROM operations WHERE order_id = ?1 AND status NOT IN ('done', 'cancelled')",
                )?
                .exists([order])?;
            let (next, finished) = if open { ("running", None) } else { ("done", Some(to_ms(event.at))) };
            tx.prepare_cached(concat!(
                "UPDATE orders SET status = ?2, finished_ms = ?3, delivered = CASE WHEN ?2 = 'done' THEN ",
                delivered!(),
                " END WHERE id = ?1 AND status IN ('planned', 'released', 'running')"
            ))?
            .execute(params![order, next, finished])?;
            recorded
        }
    };
    Ok(recorded.then(|| {
        let (good, scrap) = match event.kind {
            OperationEventKind::Started => (0, 0),
            OperationEventKind::Produced { good, scrap, .. }
            | OperationEventKind::Paused { good, scrap }
            | OperationEventKind::Finished { good, scrap, .. } => (good, scrap),
        };
        crate::telemetry::CountedUnits {
            machine: event.machine,
            at: event.at,
            operation: Some(event.operation),
            order: Some(OrderId(order)),
            good,
            scrap,
        }
    }))
}

/// Why a machine's own report on an operation is not applied, if it is not: the machine is not
/// one of the operation's eligible machines, or the order is not released yet. Reports on
/// operations or machines that no longer exist are left to [`apply_operation_event`], which
/// skips them.
pub(crate) fn refuse_machine_report(
    tx: &Connection,
    event: &crate::telemetry::OperationEvent,
) -> Result<Option<crate::telemetry::Refusal>> {
    use crate::telemetry::Refusal;
    let found: Option<(String, bool)> = tx
        .prepare_cached(
            "SELECT r.status, EXISTS (SELECT 1 FROM operation_machines m
                                      WHERE m.operation_id = o.id AND m.machine_id = ?2)
             FROM operations o JOIN orders r ON r.id = o.order_id WHERE o.id = ?1",
        )?
        .query_row(params![event.operation.0, event.machine.0], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(match found {
        Some((_, false)) => Some(Refusal::NotEligible),
        Some((status, true)) if status == "planned" => Some(Refusal::Unreleased),
        _ => None,
    })
}

/// One operation, with its eligible machines, read on `conn`.
fn load_operation(conn: &Connection, id: OperationId) -> Result<Operation> {
    let mut operation = conn
        .prepare_cached(&format!("{OPERATION_SELECT} WHERE id = ?1"))?
        .query_row([id.0], operation_row)
        .optional()?
        .ok_or(StoreError::NotFound { entity: "operation", id: id.0 })??;
    operation.eligible_machines = conn
        .prepare_cached(
            "SELECT machine_id FROM operation_machines WHERE operation_id = ?1 ORDER BY machine_id",
        )?
        .query_map([id.0], |row| Ok(MachineId(row.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(operation)
}

/// Whether a person's report fits the operation as it stands, inside the write that applies it:
/// a start needs a planned or released step of a released order, every earlier step done (or
/// cancelled) and the machine free of other work; a finish needs the step running; units need it
/// not finished, running on this machine or free to start there, and no more than
/// [`Operation::unit_limit`] in all. A conflict names the field at fault.
fn check_report(tx: &Connection, event: &crate::telemetry::OperationEvent) -> Result<()> {
    use crate::telemetry::OperationEventKind;
    let conflict = |field: &str, message: String| StoreError::Conflict { field: Some(field.into()), message };
    let operation = match load_operation(tx, event.operation) {
        Err(StoreError::NotFound { .. }) => {
            return Err(conflict("operation_id", "the operation no longer exists".into()));
        }
        other => other?,
    };
    let status = operation.status;
    let machine_code = |id: MachineId| -> Result<String> {
        Ok(tx
            .prepare_cached("SELECT code FROM machines WHERE id = ?1")?
            .query_row([id.0], |row| row.get(0))
            .optional()?
            .unwrap_or_else(|| id.to_string()))
    };
    let units = |good: u32, scrap: u32| match operation.units_problem("good", good, scrap) {
        Some(problem) => Err(StoreError::Invalid(vec![problem])),
        None => Ok(()),
    };
    // What the person saw counted is no longer what is: the units they report may include some
    // counted since (a machine's counter, another person), which would count twice.
    let unchanged = || {
        let counted = u64::from(operation.good) + u64::from(operation.scrap);
        match event.counted_before.filter(|&before| u64::from(before) != counted) {
            Some(before) => Err(conflict(
                "counted_before",
                format!(
                    "the lot's count changed since it was read ({before} units then, {counted} now: good {}, scrap {}); check what is left and report again",
                    operation.good, operation.scrap
                ),
            )),
            None => Ok(()),
        }
    };
    match event.kind {
        OperationEventKind::Started => {
            if !matches!(status, OrderStatus::Planned | OrderStatus::Released) {
                let running_on = match operation.machine_id.filter(|_| status == OrderStatus::Running) {
                    Some(machine) => format!(" on {}", machine_code(machine)?),
                    None => String::new(),
                };
                return Err(conflict(
                    "status",
                    format!(
                        "the operation is {}{running_on}; only planned or released operations start",
                        status.as_str()
                    ),
                ));
            }
            check_start(
                tx,
                &operation,
                event.machine,
                ("status", "release the order before starting its operations"),
            )
        }
        OperationEventKind::Paused { good, scrap } => {
            if status != OrderStatus::Running {
                return Err(conflict(
                    "status",
                    format!("the operation is {}; only a running lot stops for now", status.as_str()),
                ));
            }
            unchanged()?;
            units(good, scrap)?;
            let made =
                u64::from(operation.good) + u64::from(operation.scrap) + u64::from(good) + u64::from(scrap);
            if made >= u64::from(operation.quantity) {
                return Err(StoreError::Invalid(vec![FieldError::new(
                    "good",
                    format!(
                        "with these, {made} of the lot's {} units are made: nothing is left for later, so finish it",
                        operation.quantity
                    ),
                )]));
            }
            Ok(())
        }
        OperationEventKind::Finished { good, scrap, .. } => {
            match status {
                OrderStatus::Running => {}
                OrderStatus::Done => {
                    return Err(conflict("status", "the operation is done; it cannot finish again".into()));
                }
                OrderStatus::Cancelled => {
                    return Err(conflict(
                        "status",
                        "the operation was cancelled (with its order); nothing more is reported on it".into(),
                    ));
                }
                status => {
                    return Err(conflict(
                        "status",
                        format!("the operation is {}; start it first", status.as_str()),
                    ));
                }
            }
            unchanged()?;
            units(good, scrap)
        }
        OperationEventKind::Produced { good, scrap, .. } => {
            match (status, operation.machine_id) {
                (OrderStatus::Done | OrderStatus::Cancelled, _) => {
                    return Err(conflict(
                        "operation_id",
                        format!("the operation is {}; its units can no longer be reported", status.as_str()),
                    ));
                }
                // A lot runs on one machine at a time: units of a lot running elsewhere are that
                // machine's to report (or the lot is finished there and the rest made here).
                (OrderStatus::Running, Some(on)) if on != event.machine => {
                    return Err(conflict(
                        "operation_id",
                        format!("the operation is running on {}; report its units there", machine_code(on)?),
                    ));
                }
                (OrderStatus::Running, _) => {}
                // Counting units starts an operation, as a start does.
                _ => check_start(
                    tx,
                    &operation,
                    event.machine,
                    ("operation_id", "release the order before reporting units of its operations"),
                )?,
            }
            units(good, scrap)
        }
    }
}

/// What stops `operation` from starting on `machine`: an order not released yet (`unreleased`:
/// the field and message to say so with), an earlier step not done, or other work running on the
/// machine.
fn check_start(
    tx: &Connection,
    operation: &Operation,
    machine: MachineId,
    unreleased: (&str, &str),
) -> Result<()> {
    let conflict = |field: &str, message: String| StoreError::Conflict { field: Some(field.into()), message };
    // Checked here, in the write, too: a machine retired or taken out of the routing since the
    // caller looked gets no work.
    if !operation.eligible_machines.contains(&machine) {
        return Err(conflict("machine_id", "not an eligible machine of this operation".into()));
    }
    let order_status: String = tx
        .prepare_cached("SELECT status FROM orders WHERE id = ?1")?
        .query_row([operation.order_id.0], |row| row.get(0))?;
    if order_status == "planned" {
        return Err(conflict(unreleased.0, unreleased.1.into()));
    }
    let earlier: Option<(u32, String, String)> = tx
        .prepare_cached(
            "SELECT seq, name, status FROM operations
             WHERE order_id = ?1 AND seq < ?2 AND status NOT IN ('done', 'cancelled')
             ORDER BY seq LIMIT 1",
        )?
        .query_row(params![operation.order_id.0, operation.seq], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    if let Some((seq, name, status)) = earlier {
        return Err(conflict(
            "status",
            format!(
                "step {} \"{name}\" of this order is {status}; steps run in order, so finish it first",
                seq + 1
            ),
        ));
    }
    let busy: Option<(u32, String, String)> = tx
        .prepare_cached(
            "SELECT o.seq, o.name, r.number FROM operations o JOIN orders r ON r.id = o.order_id
             WHERE o.status = 'running' AND o.machine_id = ?1 AND o.id <> ?2
             ORDER BY o.order_id, o.seq LIMIT 1",
        )?
        .query_row(params![machine.0, operation.id.0], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((seq, name, number)) = busy {
        return Err(conflict(
            "machine_id",
            format!("the machine is running step {} \"{name}\" of order {number}; finish it first", seq + 1),
        ));
    }
    Ok(())
}
