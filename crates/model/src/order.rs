//! Customer orders and their operations, with the status life cycles the shop floor moves them
//! through.

use serde::{Deserialize, Serialize};

use crate::validate::{FieldError, Validate, check_year};
use crate::{MachineId, OperationId, OrderId, Timestamp, VariantId, check_code, check_name};

/// Where an order or an operation stands. Moves forward only:
/// `planned → released → running → done`, and anything not done may be `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, not yet released to the shop floor.
    Planned,
    /// Released: may be scheduled and started.
    Released,
    /// At least one operation has started.
    Running,
    /// Every operation is done.
    Done,
    /// Withdrawn; no further work.
    Cancelled,
}

/// Operations share the order life cycle.
pub type OperationStatus = OrderStatus;

impl OrderStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Planned,
        OrderStatus::Released,
        OrderStatus::Running,
        OrderStatus::Done,
        OrderStatus::Cancelled,
    ];

    /// The snake_case name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Planned => "planned",
            OrderStatus::Released => "released",
            OrderStatus::Running => "running",
            OrderStatus::Done => "done",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The inverse of [`OrderStatus::as_str`].
    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the life cycle allows moving from `self` to `next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Planned, Released)
                | (Released, Running)
                | (Running, Done)
                | (Planned | Released | Running, Cancelled)
        )
    }
}

/// A customer order for a quantity of one product variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Order {
    /// Store-assigned id.
    pub id: OrderId,
    /// The business's order number, unique (e.g. `SO-2026-0142`).
    pub number: String,
    /// Customer name.
    pub customer: String,
    /// What is ordered.
    pub variant_id: VariantId,
    /// How many units.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub quantity: u32,
    /// When the customer expects it.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub due: Timestamp,
    /// Weight in due-date planning, 1 (normal) to 10 (most urgent).
    #[schemars(range(min = 1, max = 10))]
    pub priority: u8,
    /// Life-cycle status.
    pub status: OrderStatus,
    /// When the order's material is available; the planner starts no work on it earlier.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub material_ready: Option<Timestamp>,
    /// When the order was entered.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub created_at: Timestamp,
    /// When its last operation finished; `null` until the order is done.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub finished_at: Option<Timestamp>,
    /// Good units its last step made, once the order is done; `null` before. Fewer than
    /// `quantity` when the order ended short (scrap not made again).
    #[serde(default)]
    pub delivered: Option<u32>,
    /// Moves up, counted across all orders, whenever the order or one of its operations changes
    /// (not when a plan moves its ETA): `GET /orders?changed_after=` lists the orders changed
    /// since a revision, in the order of their revisions.
    #[serde(default)]
    pub revision: i64,
}

/// An order to create. Its operations are derived from the variant's routing by the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// See [`Order::number`].
    pub number: String,
    /// See [`Order::customer`].
    pub customer: String,
    /// See [`Order::variant_id`].
    pub variant_id: VariantId,
    /// See [`Order::quantity`]; 1 to 1,000,000.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub quantity: u32,
    /// See [`Order::due`].
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub due: Timestamp,
    /// See [`Order::priority`]; 1 to 10, 1 when left out.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 1, max = 10))]
    pub priority: u8,
    /// See [`Order::material_ready`]; material on hand when left out.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub material_ready: Option<Timestamp>,
}

fn default_priority() -> u8 {
    1
}

/// Largest quantity one order may carry; larger demand is split into several orders.
pub const MAX_ORDER_QUANTITY: u32 = 1_000_000;

/// The most machine time one step of one order may take, in seconds (366 days): more is a slip
/// in the quantity or the routing, and would push every plan out of reach.
pub const MAX_STEP_SECONDS: f64 = 366.0 * 86_400.0;

/// The problem with `quantity` units of the step `name` at `unit_seconds` each, if they take
/// longer than [`MAX_STEP_SECONDS`].
pub fn step_work_problem(quantity: u32, name: &str, unit_seconds: f64) -> Option<FieldError> {
    let seconds = unit_seconds * f64::from(quantity);
    (seconds > MAX_STEP_SECONDS).then(|| {
        FieldError::new(
            "quantity",
            format!(
                "{quantity} units of step \"{name}\" take {:.0} days at {unit_seconds} s each; \
                 one step of an order may take at most 366 days",
                seconds / 86_400.0
            ),
        )
    })
}

impl NewOrder {
    /// The order with spaces around its number and customer taken off, as typed or pasted: a
    /// customer `"Harbour Audio Co "` is the same customer as `"Harbour Audio Co"`.
    pub fn trimmed(mut self) -> NewOrder {
        for text in [&mut self.number, &mut self.customer] {
            if text.trim() != text {
                *text = text.trim().to_string();
            }
        }
        self
    }
}

impl Validate for NewOrder {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("number", &self.number, &mut out);
        check_name("customer", &self.customer, &mut out);
        if self.quantity == 0 || self.quantity > MAX_ORDER_QUANTITY {
            out.push(FieldError::new("quantity", format!("must be from 1 to {MAX_ORDER_QUANTITY}")));
        }
        if !(1..=10).contains(&self.priority) {
            out.push(FieldError::new("priority", "must be from 1 to 10"));
        }
        check_year("due", self.due.year(), &mut out);
        if let Some(ready) = self.material_ready {
            check_year("material_ready", ready.year(), &mut out);
        }
        out
    }
}

/// Something done to an order, kept as its history: who did what, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderEvent {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub at: Timestamp,
    /// Who (a user name); absent for what the platform did by itself (the demo's orders).
    pub actor: Option<String>,
    /// `created`, `changed`, `released` or `cancelled`.
    pub kind: String,
    /// With `changed`: each field that changed, from what to what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

/// One field of a change to an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldChange {
    /// The field: `number`, `customer`, `quantity`, `due`, `priority` or `material_ready`.
    pub field: String,
    /// Its value before (times in RFC 3339, UTC; absent: none).
    pub before: Option<String>,
    /// Its value after.
    pub after: Option<String>,
}

/// A planned stop of a machine (maintenance, calibration): the planner schedules no work in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MaintenanceWindow {
    /// Store-assigned id.
    pub id: i64,
    /// The machine.
    pub machine_id: MachineId,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub start: Timestamp,
    /// End (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub end: Timestamp,
    /// What is done, e.g. `spindle bearing replacement`.
    pub reason: String,
}

/// A maintenance window to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenanceWindow {
    /// See [`MaintenanceWindow::start`].
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub start: Timestamp,
    /// See [`MaintenanceWindow::end`].
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub end: Timestamp,
    /// See [`MaintenanceWindow::reason`].
    pub reason: String,
}

impl Validate for NewMaintenanceWindow {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_name("reason", &self.reason, &mut out);
        check_year("start", self.start.year(), &mut out);
        check_year("end", self.end.year(), &mut out);
        if self.end <= self.start {
            out.push(FieldError::new("end", "must be after start"));
        } else if self.end - self.start > time::Duration::days(60) {
            out.push(FieldError::new("end", "a window may last at most 60 days"));
        }
        out
    }
}

/// One operation of an order: a routing step applied to the order's quantity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Operation {
    /// Store-assigned id.
    pub id: OperationId,
    /// The order it belongs to.
    pub order_id: OrderId,
    /// Position within the order's routing, from 0.
    pub seq: u32,
    /// Copied from the routing step when the order was created, so later routing edits do not
    /// change orders already accepted.
    pub name: String,
    /// Machines that may run it.
    pub eligible_machines: Vec<MachineId>,
    /// Setup seconds when the machine changes family.
    pub setup_seconds: u32,
    /// Processing seconds per unit.
    pub unit_seconds: f64,
    /// Setup family.
    pub setup_family: String,
    /// Life-cycle status.
    pub status: OperationStatus,
    /// The machine it ran or runs on, once started.
    pub machine_id: Option<MachineId>,
    /// Units it is to process: the good units of the last operation before it that finished with
    /// units counted, else the order's quantity. Scrap upstream is not processed downstream.
    pub quantity: u32,
    /// Units reported good.
    pub good: u32,
    /// Units reported scrap.
    pub scrap: u32,
    /// When it started on the shop floor; `null` until it runs (and for operations started before
    /// start times were kept).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub started_at: Option<Timestamp>,
    /// When it was reported finished; `null` until it is done.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub finished_at: Option<Timestamp>,
}

impl Operation {
    /// The most units the operation may have counted in all, as people report them: twice its
    /// quantity, and at least ten more than it. More is a slip of the keyboard that would wreck
    /// its OEE and every plan after it. (Machines' own counts are taken as they come.)
    pub fn unit_limit(&self) -> u64 {
        (u64::from(self.quantity) * 2).max(u64::from(self.quantity) + 10)
    }

    /// The problem with a report of `good` and `scrap` more units, named after `field`, when they
    /// would take the operation past [`Operation::unit_limit`]. A report of no units adds nothing
    /// and is never one, also when a machine's own counts went past the limit (a finish must stay
    /// possible then).
    pub fn units_problem(&self, field: &str, good: u32, scrap: u32) -> Option<FieldError> {
        let counted = u64::from(self.good) + u64::from(self.scrap);
        let limit = self.unit_limit();
        let adding = u64::from(good) + u64::from(scrap);
        (adding > 0 && counted + adding > limit).then(|| {
            FieldError::new(
                field,
                format!(
                    "the lot is {} units and {counted} are counted; at most {} more may be reported",
                    self.quantity,
                    limit.saturating_sub(counted)
                ),
            )
        })
    }

    /// Planned processing time for `quantity` units, excluding setup, in whole seconds (rounded up).
    pub fn processing_seconds(&self, quantity: u32) -> u64 {
        (self.unit_seconds * f64::from(quantity)).ceil() as u64
    }
}
