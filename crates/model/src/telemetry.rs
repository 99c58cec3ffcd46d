//! What machines report: numeric readings of named metrics, the state a machine is in, and
//! production records (good and scrap counts against an ideal cycle time); and the rules that
//! derive states and counts from metrics for machines that report neither.

use serde::{Deserialize, Serialize};

use crate::{MachineId, OperationId, Timestamp};

/// One value of one metric of one machine at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The machine it belongs to.
    pub machine: MachineId,
    /// Metric name, e.g. `spindle_power_kw` (1 to 128 printable characters).
    pub metric: String,
    /// When it was measured.
    pub at: Timestamp,
    /// The value; always finite.
    pub value: f64,
}

/// The states of the machine state model (ISO 22400 time model, simplified).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Producing.
    Running,
    /// Ready but not producing (waiting for work, material or an operator).
    Idle,
    /// Changing over between setup families.
    Setup,
    /// Broken down or stopped by a fault.
    Down,
    /// Not reporting (no connection, or its edge node died).
    Offline,
    /// Stopped on purpose within planned time (maintenance, meeting, no shift work planned).
    PlannedStop,
}

impl MachineState {
    /// Every state.
    pub const ALL: [MachineState; 6] = [
        MachineState::Running,
        MachineState::Idle,
        MachineState::Setup,
        MachineState::Down,
        MachineState::Offline,
        MachineState::PlannedStop,
    ];

    /// The snake_case name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Running => "running",
            MachineState::Idle => "idle",
            MachineState::Setup => "setup",
            MachineState::Down => "down",
            MachineState::Offline => "offline",
            MachineState::PlannedStop => "planned_stop",
        }
    }

    /// The inverse of [`MachineState::as_str`].
    pub fn parse(text: &str) -> Option<MachineState> {
        MachineState::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// A machine entering a state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// Which machine.
    pub machine: MachineId,
    /// When it entered the state.
    pub at: Timestamp,
    /// The new state.
    pub state: MachineState,
    /// Why, for downtime and planned stops (e.g. `tool breakage`).
    pub reason: Option<String>,
}

/// Units finished on a machine, reported when an operation (or part of one) finishes.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductionRecord {
    /// Which machine.
    pub machine: MachineId,
    /// When the units were reported.
    pub at: Timestamp,
    /// The order operation they belong to, when known.
    pub operation: Option<OperationId>,
    /// Good units.
    pub good: u32,
    /// Scrapped units.
    pub scrap: u32,
    /// Ideal (planned) seconds per unit, the basis of effectiveness.
    pub ideal_unit_seconds: f64,
    /// Why the scrapped units were scrapped (`burr`, `short shot`), when someone said.
    pub scrap_reason: Option<String>,
}

/// Derives a machine's state from one of its metrics, for machines that do not report states
/// themselves (a power meter on an old lathe): above `running_above` it is running, above
/// `idle_above` idle, otherwise `otherwise`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRule {
    /// The metric, e.g. `power_kw`.
    pub metric: String,
    /// Values above this mean running.
    pub running_above: f64,
    /// Values above this (and not above `running_above`) mean idle.
    pub idle_above: f64,
    /// The state for values at or below `idle_above` (default `offline`).
    #[serde(default = "default_below")]
    pub otherwise: MachineState,
}

fn default_below() -> MachineState {
    MachineState::Offline
}

impl StateRule {
    /// The state a value means.
    pub fn state_for(&self, value: f64) -> MachineState {
        if value > self.running_above {
            MachineState::Running
        } else if value > self.idle_above {
            MachineState::Idle
        } else {
            self.otherwise
        }
    }
}

impl crate::Validate for StateRule {
    fn problems(&self) -> Vec<crate::FieldError> {
        let mut out = Vec::new();
        crate::alarm::check_metric_name("metric", &self.metric, &mut out);
        for (field, value) in [("running_above", self.running_above), ("idle_above", self.idle_above)] {
            if !value.is_finite() {
                out.push(crate::FieldError::new(field, "must be a finite number"));
            }
        }
        if self.idle_above > self.running_above {
            out.push(crate::FieldError::new("idle_above", "must not be above running_above"));
        }
        out
    }
}

/// Derives production counts from cumulative counter metrics, for machines that report counters
/// instead of `produced` events (a Sparkplug B edge node's `parts_good`, say). Each time a counter
/// rises, the rise is counted as units made: toward the operation running on the machine, or for
/// the machine alone when none runs. A counter that falls was reset, and its new value counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRule {
    /// The counter of good units, e.g. `parts_good`.
    pub good_metric: String,
    /// The counter of scrapped units, when the machine has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrap_metric: Option<String>,
    /// Ideal seconds per unit for units made while no operation runs on the machine (their
    /// effectiveness is not known otherwise). Units of an operation use the operation's unit time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_unit_seconds: Option<f64>,
}

impl CountRule {
    /// Whether a metric's value counts good units (`Some(false)`), scrap (`Some(true)`), or
    /// neither.
    pub fn counts_scrap(&self, metric: &str) -> Option<bool> {
        if metric == self.good_metric {
            Some(false)
        } else if self.scrap_metric.as_deref() == Some(metric) {
            Some(true)
        } else {
            None
        }
    }

    /// The units a counter's rise from `previous` to `value` means: the difference, or the new
    /// value when the counter fell (it was reset). Fractions are dropped (counters count whole
    /// units), and a negative value counts nothing. So does a rise of more than
    /// [`CountRule::MAX_RISE`]: a garbled reading, not units made.
    pub fn units(previous: f64, value: f64) -> u32 {
        let (previous, value) = (previous.floor(), value.floor());
        let units = if value >= previous { value - previous } else { value };
        if !(0.0..=f64::from(CountRule::MAX_RISE)).contains(&units) {
            return 0;
        }
        units as u32
    }

    /// [`CountRule::units`] from `previous` to `value`, unless `previous` was a garbled reading
    /// between `before` (the reading before it) and `value`: then from `before`. A garbled reading
    /// is a spike (a rise of more than [`CountRule::MAX_RISE`] from `before`) or a dip (below
    /// `before`, with `value` back at or above it, as a counter read as 0 once). Without this,
    /// the fall back from a spike, or the rise back from a dip, would count the counter's whole
    /// value. The price: a counter reset to a small value and counting back past its old value
    /// within one reading counts only the units past it.
    pub fn units_after(before: Option<f64>, previous: f64, value: f64) -> u32 {
        let (rounded_previous, rounded_value) = (previous.floor(), value.floor());
        match before.map(f64::floor) {
            Some(before)
                if rounded_previous - before > f64::from(CountRule::MAX_RISE)
                    || (rounded_previous < before && rounded_value >= before) =>
            {
                CountRule::units(before, value)
            }
            _ => CountRule::units(previous, value),
        }
    }

    /// The largest rise between two readings of a counter that counts as units made.
    pub const MAX_RISE: u32 = 1_000_000;
}

impl crate::Validate for CountRule {
    fn problems(&self) -> Vec<crate::FieldError> {
        let mut out = Vec::new();
        crate::alarm::check_metric_name("good_metric", &self.good_metric, &mut out);
        if let Some(scrap) = &self.scrap_metric {
            crate::alarm::check_metric_name("scrap_metric", scrap, &mut out);
            if *scrap == self.good_metric {
                out.push(crate::FieldError::new("scrap_metric", "must differ from good_metric"));
            }
        }
        if let Some(ideal) = self.ideal_unit_seconds
            && !(ideal.is_finite() && ideal > 0.0 && ideal <= 7.0 * 86_400.0)
        {
            // As for a production report: at most a week a unit.
            out.push(crate::FieldError::new(
                "ideal_unit_seconds",
                "must be a number above 0 and at most 604800",
            ));
        }
        out
    }
}

/// A scrap reason as reported (`scrap_reason` beside `scrap`), made ready to keep: trimmed, none
/// when blank, a name (at most 200 characters, no control characters) and only with scrapped
/// units.
pub fn scrap_reason(reason: Option<&str>, scrap: u32, out: &mut Vec<crate::FieldError>) -> Option<String> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty())?;
    if scrap == 0 {
        out.push(crate::FieldError::new("scrap_reason", "give a reason only with scrapped units"));
        return None;
    }
    crate::check_name("scrap_reason", reason, out);
    Some(reason.to_string())
}
