//! Plans and their operations, and publishing one as the active plan.

use std::collections::HashMap;
use std::io::{Read, Write};

use model::{
    MachineId, OperationId, OrderId, OrderStatus, PlanStatus, PlanSummary, PlanTrigger, PlannedOperation,
    Timestamp,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Page, PageRequest, Result, Store, StoreError, from_ms, page, to_ms, touched};

/// A plan to store: its figures (the id and status are assigned) and its operations.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPlan {
    /// When it was computed.
    pub created_at: Timestamp,
    /// What the solver minimised.
    pub objective: String,
    /// When the last planned operation ends.
    pub makespan_end: Timestamp,
    /// Σ priority × seconds late.
    pub weighted_tardiness: i64,
    /// Orders planned late.
    pub late_orders: u32,
    /// Seconds of setup.
    pub setup_seconds: i64,
    /// Solver time in milliseconds.
    pub solve_ms: i64,
    /// The schedule.
    pub operations: Vec<PlannedOperation>,
    /// The solver's problem, in the scheduler's JSON format.
    pub problem: String,
    /// Why the platform made it by itself (`None` for plans asked for).
    pub trigger: Option<PlanTrigger>,
    /// The plan that was active when it was computed (`Some(0)`: none was; `None`: not known,
    /// and another plan's publication after `created_at` makes it stale).
    pub based_on: Option<i64>,
    /// What the planner should know of it.
    pub notes: Vec<model::PlanNote>,
}

impl Store {
    /// The `(id, number)` of the orders `sql` selects, with `values` bound to it.
    fn order_numbers(&self, sql: &str, values: impl rusqlite::Params) -> Result<Vec<(OrderId, String)>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(sql)?
                .query_map(values, |row| Ok((OrderId(row.get(0)?), row.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Stores a draft plan. Its problem is kept gzip-compressed (8 to 17 times smaller).
    pub fn create_plan(&self, plan: &NewPlan) -> Result<PlanSummary> {
        let problem = gzip(plan.problem.as_bytes());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO plans (created_ms, status, objective, makespan_ms, weighted_tardiness, late_orders,
                 setup_seconds, solve_ms, problem, trigger_json, based_on, notes_json)
                 VALUES (?1, 'draft', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    to_ms(plan.created_at),
                    plan.objective,
                    to_ms(plan.makespan_end),
                    plan.weighted_tardiness,
                    plan.late_orders,
                    plan.setup_seconds,
                    plan.solve_ms,
                    problem,
                    plan.trigger.as_ref().map(|t| serde_json::to_string(t).unwrap_or_default()),
                    plan.based_on,
                    (!plan.notes.is_empty()).then(|| serde_json::to_string(&plan.notes).unwrap_or_default()),
                ],
            )?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT INTO plan_operations (plan_id, operation_id, part, quantity, machine_id, setup_start_ms, start_ms, end_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for op in &plan.operations {
                insert.execute(params![
                    id,
                    op.operation_id.0,
                    op.part,
                    op.quantity,
                    op.machine_id.0,
                    to_ms(op.setup_start),
                    to_ms(op.start),
                    to_ms(op.end)
                ])?;
            }
            read_summary(tx, id)
        })
    }

    /// One plan's figures.
    pub fn plan(&self, id: i64) -> Result<PlanSummary> {
        self.read(|conn| read_summary(conn, id))
    }

    /// The units of each part a plan splits an operation into, in part order (one entry when it
    /// is not split; none when the plan does not have it).
    pub fn plan_part_quantities(&self, plan: i64, operation: OperationId) -> Result<Vec<u32>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT quantity FROM plan_operations WHERE plan_id = ?1 AND operation_id = ?2 ORDER BY part",
                )?
                .query_map(params![plan, operation.0], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The solver problem a plan was computed from (the scheduler's JSON format).
    pub fn plan_problem(&self, id: i64) -> Result<String> {
        match self.stored_problem(id)? {
            Ok(compressed) => {
                let mut text = String::new();
                flate2::read::GzDecoder::new(compressed.as_slice())
                    .read_to_string(&mut text)
                    .map_err(|e| StoreError::Corrupt(format!("plan {id}'s problem: {e}")))?;
                Ok(text)
            }
            Err(text) => {
                String::from_utf8(text).map_err(|e| StoreError::Corrupt(format!("plan {id}'s problem: {e}")))
            }
        }
    }

    /// The same, gzip-compressed, as stored (to send as it is to a client that takes gzip).
    pub fn plan_problem_gzip(&self, id: i64) -> Result<Vec<u8>> {
        Ok(self.stored_problem(id)?.unwrap_or_else(|text| gzip(&text)))
    }

    /// A plan's problem as stored: gzip-compressed (`Ok`), or as text (`Err`) in rows stored
    /// before 2026-12-07.
    fn stored_problem(&self, id: i64) -> Result<std::result::Result<Vec<u8>, Vec<u8>>> {
        self.read(|conn| {
            conn.query_row("SELECT problem FROM plans WHERE id = ?1", [id], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(text) => Err(text.to_vec()),
                    ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
                    _ => Ok(Vec::new()),
                })
            })
            .optional()?
            .ok_or(StoreError::NotFound { entity: "plan", id })
        })
    }

    /// The active plan, if any.
    pub fn active_plan(&self) -> Result<Option<PlanSummary>> {
        self.read(|conn| {
            let id: Option<i64> = conn
                .query_row("SELECT id FROM plans WHERE status = 'active'", [], |row| row.get(0))
                .optional()?;
            id.map(|id| read_summary(conn, id)).transpose()
        })
    }

    /// When the active plan ends the work it has of `order` (its last part's end); `None` when
    /// no plan is active or it has none of the order's work.
    pub fn active_plan_end(&self, order: OrderId) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            let end: Option<i64> = conn
                .prepare_cached(
                    "SELECT max(po.end_ms) FROM operations o JOIN plan_operations po
                       ON po.operation_id = o.id AND po.plan_id = (SELECT id FROM plans WHERE status = 'active')
                     WHERE o.order_id = ?1",
                )?
                .query_row([order.0], |row| row.get(0))?;
            end.map(from_ms).transpose()
        })
    }

    /// Plans, newest first.
    pub fn plans(&self, request: PageRequest) -> Result<Page<PlanSummary>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "{PLAN_SELECT} WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2"
                ))?
                .query_map(params![request.after, request.limit + 1], summary_row)?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()??;
            Ok(page(rows, request.limit, |plan| plan.id))
        })
    }

    /// Where every operation of plan `plan` stands now (its status in the order book).
    pub fn plan_operation_statuses(&self, plan: i64) -> Result<HashMap<OperationId, OrderStatus>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT DISTINCT o.id, o.status FROM plan_operations p JOIN operations o ON o.id = p.operation_id
                 WHERE p.plan_id = ?1",
            )?;
            let mut rows = statement.query([plan])?;
            let mut out = HashMap::new();
            while let Some(row) = rows.next()? {
                let status: String = row.get(1)?;
                let status = OrderStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("operation status {status:?}")))?;
                out.insert(OperationId(row.get(0)?), status);
            }
            Ok(out)
        })
    }

    /// Released or running orders of priority `min_priority` or more with open operations that
    /// plan `plan` does not have, by id: each order's id and number.
    pub fn orders_missing_from_plan(&self, plan: i64, min_priority: u8) -> Result<Vec<(OrderId, String)>> {
        self.order_numbers(
            "SELECT r.id, r.number FROM orders r
             WHERE r.status IN ('released', 'running') AND r.priority >= ?2 AND EXISTS (
                 SELECT 1 FROM operations o WHERE o.order_id = r.id AND o.status NOT IN ('done', 'cancelled')
                 AND NOT EXISTS (SELECT 1 FROM plan_operations p WHERE p.plan_id = ?1 AND p.operation_id = o.id))
             ORDER BY r.id",
            params![plan, min_priority],
        )
    }

    /// Orders with work that plan `plan` has on a machine the work may no longer run on (its
    /// routing changed since), not begun and starting at or after `movable_from`.
    pub fn orders_on_ineligible_machines(
        &self,
        plan: i64,
        movable_from: Timestamp,
    ) -> Result<Vec<(OrderId, String)>> {
        self.order_numbers(
            "SELECT DISTINCT r.id, r.number FROM plan_operations p
             JOIN operations o ON o.id = p.operation_id JOIN orders r ON r.id = o.order_id
             WHERE p.plan_id = ?1 AND p.start_ms >= ?2 AND o.status IN ('planned', 'released')
               AND NOT EXISTS (SELECT 1 FROM operation_machines m
                               WHERE m.operation_id = o.id AND m.machine_id = p.machine_id)
             ORDER BY r.id",
            params![plan, to_ms(movable_from)],
        )
    }

    /// Released orders whose material now arrives after plan `plan` starts their work, where it
    /// has not started (`material_ready` later than the plan's first processing start of the order:
    /// a machine may be set up before the material is there) and is still to come after `now`.
    pub fn orders_material_after_plan(&self, plan: i64, now: Timestamp) -> Result<Vec<(OrderId, String)>> {
        self.order_numbers(
            "SELECT r.id, r.number FROM orders r
             JOIN (SELECT o.order_id, min(p.start_ms) AS first FROM plan_operations p
                   JOIN operations o ON o.id = p.operation_id WHERE p.plan_id = ?1 GROUP BY o.order_id) f
               ON f.order_id = r.id
             WHERE r.status = 'released' AND r.material_ready_ms > f.first AND r.material_ready_ms > ?2
               AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.order_id = r.id
                               AND o.status IN ('running', 'done'))
             ORDER BY r.id",
            params![plan, to_ms(now)],
        )
    }

    /// Released orders of `min_priority` or more with open work in plan `plan` whose priority was
    /// raised after `since` (the plan's computation): rush orders the plan placed as ordinary ones.
    pub fn orders_raised_since(
        &self,
        plan: i64,
        since: Timestamp,
        min_priority: u8,
    ) -> Result<Vec<(OrderId, String)>> {
        self.order_numbers(
            "SELECT r.id, r.number FROM orders r
             WHERE r.status IN ('released', 'running') AND r.priority >= ?2 AND r.priority_raised_ms > ?3
             AND EXISTS (SELECT 1 FROM operations o JOIN plan_operations p ON p.operation_id = o.id
                         WHERE o.order_id = r.id AND p.plan_id = ?1 AND o.status NOT IN ('done', 'cancelled'))
             ORDER BY r.id",
            params![plan, min_priority, to_ms(since)],
        )
    }

    /// Deletes up to `limit` plans made before `before` that are not the active plan, oldest
    /// first, with their operations; returns how many went.
    pub fn prune_plans(&self, before: Timestamp, limit: u32) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM plans WHERE id IN (SELECT id FROM plans WHERE status != 'active' AND created_ms < ?1
                 ORDER BY id LIMIT ?2)",
                params![to_ms(before), limit],
            )?)
        })
    }

    /// A plan's operations, by machine and start, optionally of one machine.
    pub fn plan_operations(&self, plan: i64, machine: Option<MachineId>) -> Result<Vec<PlannedOperation>> {
        self.read(|conn| {
            read_summary(conn, plan)?;
            let rows = conn
                .prepare_cached(
                    "SELECT p.operation_id, o.order_id, p.machine_id, p.setup_start_ms, p.start_ms, p.end_ms, p.part, p.quantity
                     FROM plan_operations p JOIN operations o ON o.id = p.operation_id
                     WHERE p.plan_id = ?1 AND (?2 IS NULL OR p.machine_id = ?2) ORDER BY p.machine_id, p.start_ms",
                )?
                .query_map(params![plan, machine.map(|m| m.0)], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
                })?
                .collect::<rusqlite::Result<Vec<(i64, i64, i64, i64, i64, i64, u32, u32)>>>()?;
            rows.into_iter()
                .map(|(op, order, machine, setup, start, end, part, quantity)| {
                    Ok(PlannedOperation {
                        operation_id: OperationId(op),
                        order_id: OrderId(order),
                        part,
                        quantity,
                        machine_id: MachineId(machine),
                        setup_start: from_ms(setup)?,
                        start: from_ms(start)?,
                        end: from_ms(end)?,
                    })
                })
                .collect()
        })
    }

    /// Makes a draft plan the active one; the previous active plan is superseded. A plan is stale,
    /// and refused, when another plan was published after it was computed (the active plan is not
    /// the one it was based on; for a plan without that, one was published after its
    /// `created_at`), or when it is not a draft. Judged by plans, not times, a plan published
    /// under a clock that ran ahead does not make every later plan stale once the clock is right.
    pub fn publish_plan(&self, id: i64, now: Timestamp) -> Result<PlanSummary> {
        self.write(|tx| {
            let plan = read_summary(tx, id)?;
            if plan.status != PlanStatus::Draft {
                return Err(StoreError::Conflict {
                    field: Some("status".into()),
                    message: format!("only draft plans can be published; this one is {}", plan.status.as_str()),
                });
            }
            let based_on: Option<i64> = tx.query_row("SELECT based_on FROM plans WHERE id = ?1", [id], |row| row.get(0))?;
            let active: Option<i64> =
                tx.query_row("SELECT id FROM plans WHERE status = 'active'", [], |row| row.get(0)).optional()?;
            let newer = match based_on {
                Some(based_on) => active.filter(|active| *active != based_on),
                None => tx
                    .query_row(
                        "SELECT id FROM plans WHERE published_ms IS NOT NULL AND published_ms > ?1 ORDER BY published_ms DESC LIMIT 1",
                        [to_ms(plan.created_at)],
                        |row| row.get(0),
                    )
                    .optional()?,
            };
            if let Some(newer) = newer {
                return Err(StoreError::Conflict {
                    field: None,
                    message: format!("the plan is stale: plan {newer} was published after it was computed; plan again"),
                });
            }
            tx.execute("UPDATE plans SET status = 'superseded' WHERE status = 'active'", [])?;
            touched(
                tx.execute("UPDATE plans SET status = 'active', published_ms = ?2 WHERE id = ?1", params![id, to_ms(now)])?,
                "plan",
                id,
            )?;
            read_summary(tx, id)
        })
    }
}

const PLAN_SELECT: &str =
    "SELECT id, created_ms, status, objective, makespan_ms, weighted_tardiness, late_orders,
    setup_seconds, solve_ms, published_ms, trigger_json, notes_json FROM plans";

fn read_summary(conn: &Connection, id: i64) -> Result<PlanSummary> {
    conn.prepare_cached(&format!("{PLAN_SELECT} WHERE id = ?1"))?
        .query_row([id], summary_row)
        .optional()?
        .ok_or(StoreError::NotFound { entity: "plan", id })?
}

fn summary_row(row: &Row<'_>) -> rusqlite::Result<Result<PlanSummary>> {
    let status: String = row.get(2)?;
    let Some(status) = PlanStatus::parse(&status) else {
        return Ok(Err(StoreError::Corrupt(format!("unknown plan status {status:?}"))));
    };
    let (created, makespan) = match (from_ms(row.get(1)?), from_ms(row.get(4)?)) {
        (Ok(c), Ok(m)) => (c, m),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let published_at = match row.get::<_, Option<i64>>(9)?.map(from_ms).transpose() {
        Ok(at) => at,
        Err(e) => return Ok(Err(e)),
    };
    let trigger = match row.get::<_, Option<String>>(10)?.map(|json| serde_json::from_str(&json)).transpose()
    {
        Ok(trigger) => trigger,
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("plan trigger: {e}")))),
    };
    let notes = match row.get::<_, Option<String>>(11)?.map(|json| serde_json::from_str(&json)).transpose() {
        Ok(notes) => notes.unwrap_or_default(),
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("plan notes: {e}")))),
    };
    Ok(Ok(PlanSummary {
        id: row.get(0)?,
        created_at: created,
        status,
        objective: row.get(3)?,
        makespan_end: makespan,
        weighted_tardiness: row.get(5)?,
        late_orders: row.get(6)?,
        setup_seconds: row.get(7)?,
        solve_ms: row.get(8)?,
        published_at,
        trigger,
        notes,
    }))
}

/// How far in the past a new maintenance window may start: the minutes it takes to enter one
/// that begins now.
pub const MAINTENANCE_GRACE: time::Duration = time::Duration::minutes(15);

impl Store {
    /// Schedules a maintenance window on a machine, `now` being the time it is entered: a window
    /// is planned ahead, so one starting more than [`MAINTENANCE_GRACE`] before `now` is refused
    /// (it would turn stops already recorded, breakdowns among them, into planned time after the
    /// fact), and so is one overlapping another window of the machine.
    pub fn create_maintenance(
        &self,
        machine: MachineId,
        new: &model::NewMaintenanceWindow,
        now: Timestamp,
    ) -> Result<model::MaintenanceWindow> {
        if new.start < now - MAINTENANCE_GRACE {
            return Err(StoreError::Invalid(vec![model::FieldError::new(
                "start",
                "is in the past: a maintenance window is planned ahead (a stop that has happened is reported as the machine's state)",
            )]));
        }
        self.write(|tx| {
            crate::require(tx, "machines", machine.0, "machine").map_err(|_| StoreError::NotFound { entity: "machine", id: machine.0 })?;
            // A retired machine is planned no more: a window on it would stop nothing.
            if crate::factory::is_retired(tx, machine)? {
                let message = "the machine is retired; put it back in service first".to_string();
                return Err(StoreError::Conflict { field: Some("machine".into()), message });
            }
            let overlapping: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT id, reason FROM maintenance_windows
                     WHERE machine_id = ?1 AND start_ms < ?3 AND end_ms > ?2 ORDER BY start_ms LIMIT 1",
                )?
                .query_row(params![machine.0, to_ms(new.start), to_ms(new.end)], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            if let Some((id, reason)) = overlapping {
                let message = format!(
                    "the window overlaps maintenance window {id} ({reason:?}) of the machine; change or remove that one instead"
                );
                return Err(StoreError::Conflict { field: Some("start".into()), message });
            }
            tx.execute(
                "INSERT INTO maintenance_windows (machine_id, start_ms, end_ms, reason) VALUES (?1, ?2, ?3, ?4)",
                params![machine.0, to_ms(new.start), to_ms(new.end), new.reason],
            )?;
            Ok(model::MaintenanceWindow {
                id: tx.last_insert_rowid(),
                machine_id: machine,
                start: from_ms(to_ms(new.start))?,
                end: from_ms(to_ms(new.end))?,
                reason: new.reason.clone(),
            })
        })
    }

    /// The machine of a maintenance window.
    pub fn maintenance_machine(&self, id: i64) -> Result<MachineId> {
        self.read(|conn| {
            conn.prepare_cached("SELECT machine_id FROM maintenance_windows WHERE id = ?1")?
                .query_row([id], |row| row.get(0))
                .optional()?
                .map(MachineId)
                .ok_or(StoreError::NotFound { entity: "maintenance window", id })
        })
    }

    /// Removes a maintenance window that has not ended by `now`: one that has is part of the
    /// machine's history (its time was planned stop time in the OEE).
    pub fn delete_maintenance(&self, id: i64, now: Timestamp) -> Result<(MachineId, Timestamp)> {
        self.write(|tx| {
            let window: Option<(i64, i64, i64)> = tx
                .prepare_cached("SELECT machine_id, start_ms, end_ms FROM maintenance_windows WHERE id = ?1")?
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            if window.is_some_and(|(_, _, end)| end <= to_ms(now)) {
                let message =
                    "the window is over and part of the machine's history; it cannot be removed".to_string();
                return Err(StoreError::Conflict { field: None, message });
            }
            touched(
                tx.execute("DELETE FROM maintenance_windows WHERE id = ?1", [id])?,
                "maintenance window",
                id,
            )?;
            let (machine, start, _) = window.unwrap_or_default();
            Ok((MachineId(machine), from_ms(start)?))
        })
    }

    /// Maintenance windows ending after `after_ms`, of one machine or all, by start.
    pub fn maintenance(
        &self,
        machine: Option<MachineId>,
        after_ms: i64,
    ) -> Result<Vec<model::MaintenanceWindow>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, machine_id, start_ms, end_ms, reason FROM maintenance_windows
                     WHERE (?1 IS NULL OR machine_id = ?1) AND end_ms > ?2 ORDER BY start_ms",
                )?
                .query_map(params![machine.map(|m| m.0), after_ms], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, machine, start, end, reason)| {
                    Ok(model::MaintenanceWindow {
                        id,
                        machine_id: MachineId(machine),
                        start: from_ms(start)?,
                        end: from_ms(end)?,
                        reason,
                    })
                })
                .collect()
        })
    }
}

/// `bytes` gzip-compressed at the fastest level (a plan's problem, JSON, still shrinks eightfold).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).and_then(|()| encoder.finish()).expect("writing to memory cannot fail")
}
