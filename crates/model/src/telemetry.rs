//! What machines report: numeric readings of named metrics, the state a machine is in, and
//! production records (good and scrap counts against an ideal cycle time).

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
}
