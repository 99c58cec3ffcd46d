//! The simulated factory: a deterministic (seeded) discrete-event twin of a micro-factory. Each
//! machine works through a queue of operations — setup when the family changes, then unit after
//! unit — draws power, heats up, vibrates more as its bearings wear until they fail, breaks down at
//! random, and (for moulding machines) now and then leaks gas. The factory answers "what happened
//! up to time t?" with [`Output`]s; publishing them over MQTT is the caller's job, so this core is
//! pure and testable with a manual clock.
//!
//! Time: every output carries a timestamp of the clock whose `now` is passed in, and `speed`
//! compresses how long things take (at speed 60, a 10-minute operation finishes in 10 real
//! seconds). Against a platform on real time the outputs carry real time, so a fast simulator never
//! publishes into the future. The demo's platform runs on a clock as fast as the simulator
//! ([`SimConfig::clock_speed`]), so the machines keep pace with its plans; what the viewer watches
//! (temperatures settling, incidents lasting long enough for alarms) keeps to real seconds either
//! way.

pub mod driver;
mod machine;

use model::random::SplitMix;
use model::{MachineId, MachineKind, MachineState, OperationId, Timestamp};

pub use driver::{JobOffer, JobSource};
pub use machine::{Job, SimMachine};

/// How often a running machine reports the units it has made, in simulated seconds: every five
/// minutes, so OEE follows a lot while it runs (a real machine's counter may report every unit).
pub const COUNT_REPORT_SECONDS: f64 = 300.0;

/// The metric of every machine's cumulative energy meter, in kWh.
pub const ENERGY_METRIC: &str = "energy_kwh";

/// Settings of the simulated factory.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Time compression: simulated seconds per real second.
    pub speed: f64,
    /// Seconds of the clock passed to [`Factory::advance_to`] per real second: 1 for a real-time
    /// clock, the demo's speed for its fast factory clock (then equal to `speed`).
    pub clock_speed: f64,
    /// Real seconds between telemetry samples per machine.
    pub sample_seconds: f64,
    /// Random breakdowns per running hour (simulated time), besides wear-out failures.
    pub breakdowns_per_hour: f64,
    /// Gas or temperature incidents per hour (simulated time) per eligible machine.
    pub incidents_per_hour: f64,
    /// Fraction of units scrapped.
    pub scrap_rate: f64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 2026,
            speed: 60.0,
            clock_speed: 1.0,
            sample_seconds: 2.0,
            breakdowns_per_hour: 0.05,
            incidents_per_hour: 0.02,
            scrap_rate: 0.02,
        }
    }
}

/// A machine as the simulator needs to know it.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineSpec {
    /// Store id.
    pub id: MachineId,
    /// Site code (the MQTT `{site}`).
    pub site: String,
    /// Machine code (the MQTT `{machine}`).
    pub code: String,
    /// What kind of machine.
    pub kind: MachineKind,
    /// Rated power in kW.
    pub rated_power_kw: f64,
    /// Whether the machine sends its telemetry as a Sparkplug B device (see [`driver`]) rather
    /// than as JSON.
    pub sparkplug: bool,
}

/// Something that happened on a machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A telemetry sample.
    Reading {
        /// Which machine.
        machine: usize,
        /// Metric name.
        metric: &'static str,
        /// Value.
        value: f64,
        /// When.
        at: Timestamp,
    },
    /// The machine entered a state.
    State {
        /// Which machine.
        machine: usize,
        /// The state.
        state: MachineState,
        /// Why, for setups and downtime.
        reason: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// Work on an operation began (after its setup).
    OperationStarted {
        /// Which machine.
        machine: usize,
        /// Which operation.
        operation: OperationId,
        /// When.
        at: Timestamp,
    },
    /// Units made on an operation since its last report: every [`COUNT_REPORT_SECONDS`] of
    /// simulated running time, and when the operation finishes.
    Units {
        /// Which machine.
        machine: usize,
        /// Which operation.
        operation: OperationId,
        /// Good units since the last report.
        good: u32,
        /// Scrapped units since the last report.
        scrap: u32,
        /// The ideal time per unit in seconds of the clock: the fastest the machine makes a unit
        /// of the operation, divided by the speed and multiplied by the clock's speed, so that
        /// OEE's performance stays meaningful when time is compressed.
        ideal_unit_seconds: f64,
        /// Whether the operation finished with these units.
        finished: bool,
        /// When.
        at: Timestamp,
    },
}

/// The whole simulated factory.
pub struct Factory {
    config: SimConfig,
    machines: Vec<SimMachine>,
    random: SplitMix,
    now: Timestamp,
}

impl Factory {
    /// A factory of `machines`, all idle at `start`.
    pub fn new(machines: Vec<MachineSpec>, config: SimConfig, start: Timestamp) -> Factory {
        let mut random = SplitMix::new(config.seed);
        let machines = machines.into_iter().map(|spec| SimMachine::new(spec, &mut random, start)).collect();
        Factory { config, machines, random, now: start }
    }

    /// The machines, in the order outputs refer to them.
    pub fn machines(&self) -> &[SimMachine] {
        &self.machines
    }

    /// Queues a job on machine `index` (FIFO).
    pub fn enqueue(&mut self, index: usize, job: Job) {
        if let Some(machine) = self.machines.get_mut(index) {
            machine.queue.push_back(job);
        }
    }

    /// Puts work the machine at `index` had under way before the simulator started (a running
    /// operation in the store) first in its line: it goes on before any queued job, and
    /// [`Factory::clear_queues`] keeps it. `job` holds what is left of the lot.
    pub fn resume(&mut self, index: usize, job: Job) {
        if let Some(machine) = self.machines.get_mut(index) {
            machine.resumed.push_back(job);
        }
    }

    /// Sets the setup family machine `index` is set up for, e.g. that of the last operation it
    /// made units for before the simulator restarted. A machine without one takes its first job
    /// without a setup, as the planner assumes of a machine whose setup it does not know.
    pub fn set_setup_family(&mut self, index: usize, family: String) {
        if let Some(machine) = self.machines.get_mut(index) {
            machine.set_setup_family(family);
        }
    }

    /// Sets the energy meter of machine `index` to `kwh` (at least 0), e.g. to the last reading
    /// stored before the simulator restarted: a meter counts on from where it stood.
    pub fn set_energy_meter(&mut self, index: usize, kwh: f64) {
        if let Some(machine) = self.machines.get_mut(index) {
            machine.set_energy_meter(kwh);
        }
    }

    /// Holds the machines that `stopped` lists (store id, and since when the platform has had it
    /// stopped), and releases the others; returns the states the released ones report again. A
    /// stop older than the machine's own last state is that state not yet seen by the platform (a
    /// breakdown of its own, or the end of one), not a person's: it holds nothing.
    pub fn hold(&mut self, stopped: &[(MachineId, Timestamp)]) -> Vec<Output> {
        let mut out = Vec::new();
        for (index, machine) in self.machines.iter_mut().enumerate() {
            let stop = stopped.iter().find(|(id, _)| *id == machine.spec.id).map(|(_, at)| *at);
            let held = match stop {
                None => false,
                Some(_) if machine.held() => true,
                Some(at) => {
                    machine.state() != MachineState::Down && machine.state_since().is_none_or(|own| at > own)
                }
            };
            if held != machine.held() {
                machine.set_held(held, index, self.now, &mut out);
            }
        }
        out
    }

    /// Drops every queued job that has not started, e.g. when a new plan is published and work
    /// is handed out again.
    pub fn clear_queues(&mut self) {
        for machine in &mut self.machines {
            machine.clear_queue();
        }
    }

    /// Whether an operation is queued or in progress anywhere.
    pub fn knows(&self, operation: OperationId) -> bool {
        self.machines.iter().any(|m| m.knows(operation))
    }

    /// The machine with the least queued work among `eligible` (by store id), for FIFO dispatch
    /// until a plan exists.
    pub fn least_loaded(&self, eligible: &[MachineId]) -> Option<usize> {
        self.machines
            .iter()
            .enumerate()
            .filter(|(_, m)| eligible.contains(&m.spec.id))
            .min_by(|(_, a), (_, b)| a.queued_seconds().total_cmp(&b.queued_seconds()))
            .map(|(index, _)| index)
    }

    /// Runs the factory up to `now` and returns what happened, in time order per machine.
    pub fn advance_to(&mut self, now: Timestamp) -> Vec<Output> {
        let mut out = Vec::new();
        if now <= self.now {
            return out;
        }
        let real_seconds = (now - self.now).as_seconds_f64() / self.config.clock_speed;
        for (index, machine) in self.machines.iter_mut().enumerate() {
            machine.advance(index, self.now, real_seconds, &self.config, &mut self.random, &mut out);
        }
        self.now = now;
        out
    }
}

#[cfg(test)]
mod tests;
