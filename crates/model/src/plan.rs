//! Plans: the solver's schedule of the open operations of released orders, its key figures, and
//! the life cycle `draft → active → superseded` (one active plan at a time).

use serde::{Deserialize, Serialize};

use crate::{MachineId, OperationId, OrderId, Timestamp};

/// Where a plan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Computed, not followed.
    Draft,
    /// The plan the shop floor follows.
    Active,
    /// Was active; a newer plan replaced it.
    Superseded,
}

impl PlanStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Draft => "draft",
            PlanStatus::Active => "active",
            PlanStatus::Superseded => "superseded",
        }
    }

    /// The inverse of [`PlanStatus::as_str`].
    pub fn parse(text: &str) -> Option<PlanStatus> {
        [PlanStatus::Draft, PlanStatus::Active, PlanStatus::Superseded]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One operation as planned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlannedOperation {
    /// The order operation.
    pub operation_id: OperationId,
    /// Its order.
    pub order_id: OrderId,
    /// Which part of a split lot this is (0 for an operation planned whole).
    pub part: u32,
    /// Units in this part.
    pub quantity: u32,
    /// The machine it is planned on.
    pub machine_id: MachineId,
    /// When its setup begins (equal to `start` when it needs none).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub setup_start: Timestamp,
    /// When processing begins.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub start: Timestamp,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub end: Timestamp,
}

/// A plan's key figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanSummary {
    /// Store-assigned id.
    pub id: i64,
    /// When it was computed.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub created_at: Timestamp,
    /// Where it stands.
    pub status: PlanStatus,
    /// What the solver minimised.
    pub objective: String,
    /// When the last planned operation ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub makespan_end: Timestamp,
    /// Σ priority × seconds late over orders.
    pub weighted_tardiness: i64,
    /// Orders planned to finish after their due date.
    pub late_orders: u32,
    /// Seconds of setup in the plan.
    pub setup_seconds: i64,
    /// How long the solver ran, in milliseconds.
    pub solve_ms: i64,
    /// When it became the active plan (absent while a draft).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub published_at: Option<Timestamp>,
    /// Why the platform made and published it by itself; absent for plans asked for.
    pub trigger: Option<PlanTrigger>,
    /// What the planner should know of it: work it could not plan as the shop runs.
    #[serde(default)]
    pub notes: Vec<PlanNote>,
}

/// Something found while a plan was made that a planner should know and act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanNote {
    /// One unit of the step, with its setup, takes longer than any of its machines works without
    /// a break. Work does not run through breaks, so the plan puts it where the laid-out shift
    /// calendar ends (machines count as always open from there), which may be months or years
    /// ahead. Lengthen a shift, or shorten the step's unit or setup time.
    LongerThanShifts {
        /// The order.
        order_id: OrderId,
        /// Its number.
        order_number: String,
        /// The step.
        operation_id: OperationId,
        /// The step's name.
        step: String,
        /// Seconds one unit takes, with the step's setup.
        needs_seconds: i64,
        /// The longest stretch any of its machines works without a break, in seconds.
        longest_open_seconds: i64,
    },
}

/// What made the platform repair and publish the active plan by itself (`[planning]` settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlanTrigger {
    /// A machine with planned work broke down.
    Breakdown {
        /// The machine's code.
        machine: String,
    },
    /// A machine the active plan kept out for its expected repair time runs again: its work
    /// (and what waits for it) moves back to when it can now happen.
    Recovered {
        /// The machine's code.
        machine: String,
    },
    /// Work was planned on a machine during a maintenance window entered after the plan was made
    /// (beyond the freeze window, where it can still move).
    Maintenance {
        /// The machine's code.
        machine: String,
    },
    /// Work was planned in what is now closed time of its site (its shifts or holidays changed
    /// after the plan was made), beyond the freeze window.
    Calendar {
        /// The site's code.
        site: String,
    },
    /// Orders whose material is now to arrive after the active plan starts their work (their
    /// `material_ready` moved), beyond the freeze window.
    MaterialLater {
        /// Their order numbers.
        orders: Vec<String>,
    },
    /// Work the active plan has on a machine it may no longer run on (a routing's machines
    /// changed), beyond the freeze window.
    Routing {
        /// The orders of that work (their numbers).
        orders: Vec<String>,
    },
    /// Orders of the active plan whose due time was moved earlier, so that the plan finishes
    /// them late: the work beyond the freeze window is searched afresh for them.
    DueEarlier {
        /// Their order numbers.
        orders: Vec<String>,
    },
    /// Released orders of rush priority that the active plan did not have.
    RushOrders {
        /// Their order numbers.
        orders: Vec<String>,
    },
    /// Released orders below the rush priority that the active plan did not have, once it was
    /// `planning.new_order_minutes` old.
    NewOrders {
        /// Their order numbers.
        orders: Vec<String>,
    },
    /// Work started on another of its machines than the active plan has it on (the shop floor
    /// chose another machine): the work of both machines moves to where it can now happen.
    Elsewhere {
        /// The machine it runs on (its code).
        machine: String,
        /// The orders of that work (their numbers).
        orders: Vec<String>,
    },
    /// A maintenance window of the machine was removed: the work the active plan had kept out of
    /// it may come earlier, so the plan is searched afresh.
    MaintenanceRemoved {
        /// The machine's code.
        machine: String,
    },
    /// Work ran off the active plan by more than `planning.deviation_minutes`.
    Deviation {
        /// Lots behind: not started, or still running, that long after they were planned to.
        late: u32,
        /// Lots ahead: started, or finished, that long before they were planned to.
        early: u32,
        /// Lots of cancelled orders still holding machine time that far ahead.
        #[serde(default)]
        cancelled: u32,
    },
    /// The scheduled re-optimisation (`planning.reoptimise_at`) searched afresh and found a plan
    /// better than the active one by at least `planning.reoptimise_min_gain_percent`. The plan's
    /// own figures are the "after".
    Reoptimised {
        /// Orders late in the active plan as it stood then (moved on to that time, as a repair
        /// would have).
        late_orders_before: u32,
        /// Its Σ priority × seconds late.
        weighted_tardiness_before: i64,
        /// When its last operation ended.
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "crate::DateTime")]
        makespan_end_before: Timestamp,
    },
}
