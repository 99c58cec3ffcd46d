//! One simulated machine: its queue, its process (setup, units), its physics (power, energy,
//! temperature, vibration, gas) and its failures.

use std::collections::VecDeque;

use model::random::SplitMix;
use model::{MachineId, MachineKind, MachineState, OperationId, Timestamp};

use crate::{MachineSpec, Output, SimConfig};

/// An operation queued on a machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The order operation.
    pub operation: OperationId,
    /// Good units to make: the machine makes a replacement for each unit it scraps, as a shop
    /// making to order does (up to twice the lot in all, should it scrap
    /// nearly everything).
    pub quantity: u32,
    /// Seconds per unit (simulated time).
    pub unit_seconds: f64,
    /// Setup seconds when the family changes (simulated time).
    pub setup_seconds: f64,
    /// Setup family.
    pub family: String,
}

#[derive(Clone, Debug)]
enum Phase {
    Setup {
        remaining: f64,
    },
    /// `good` and `scrap` count the units not reported yet, `made_good` and `made` every unit of
    /// the lot so far; `since_report` is the simulated running time since the last report.
    Running {
        unit_remaining: f64,
        made_good: u32,
        made: u32,
        good: u32,
        scrap: u32,
        since_report: f64,
    },
}

impl Phase {
    /// Running a lot from its first unit, which takes `unit_remaining`.
    fn running(unit_remaining: f64) -> Phase {
        Phase::Running { unit_remaining, made_good: 0, made: 0, good: 0, scrap: 0, since_report: 0.0 }
    }
}

#[derive(Clone, Debug)]
struct Current {
    job: Job,
    phase: Phase,
}

/// A machine and everything the simulator tracks about it.
#[derive(Clone, Debug)]
pub struct SimMachine {
    /// What the machine is.
    pub spec: MachineSpec,
    pub(crate) queue: VecDeque<Job>,
    /// Work this machine had under way before the simulator (re)started: done before the queue,
    /// and kept when the queue is handed out afresh.
    pub(crate) resumed: VecDeque<Job>,
    current: Option<Current>,
    state: Option<MachineState>,
    /// Why the machine is in its state (a breakdown's cause, a setup's family).
    reason: Option<String>,
    down_remaining: f64,
    last_family: Option<String>,
    /// Remaining bearing life, 1 (new) to 0 (fails).
    health: f64,
    /// Health lost per running hour (simulated), drawn per machine.
    wear_per_hour: f64,
    temperature: f64,
    energy_kwh: f64,
    incident_remaining: f64,
    incident_peak: f64,
    sample_due: f64,
    /// When it last reported a state of its own.
    state_since: Option<Timestamp>,
    /// Stopped by a person on the platform (a stop reported at the station): it makes nothing and
    /// reports no state of its own until the platform says otherwise.
    held: bool,
}

/// Reasons and simulated repair minutes of random breakdowns.
const BREAKDOWNS: [(&str, f64, f64); 4] = [
    ("tool breakage", 15.0, 40.0),
    ("material jam", 5.0, 15.0),
    ("sensor fault", 10.0, 25.0),
    ("power trip", 5.0, 10.0),
];

impl SimMachine {
    pub(crate) fn new(spec: MachineSpec, random: &mut SplitMix, _start: Timestamp) -> SimMachine {
        let ambient = 24.0;
        SimMachine {
            spec,
            queue: VecDeque::new(),
            resumed: VecDeque::new(),
            current: None,
            state: None,
            reason: None,
            down_remaining: 0.0,
            last_family: None,
            health: random.between(0.3, 1.0),
            wear_per_hour: random.between(0.02, 0.06),
            temperature: ambient,
            energy_kwh: random.between(100.0, 5000.0).round(),
            incident_remaining: 0.0,
            incident_peak: 0.0,
            sample_due: 0.0,
            held: false,
            state_since: None,
        }
    }

    /// The state the machine is in (idle before the first advance).
    pub fn state(&self) -> MachineState {
        self.state.unwrap_or(MachineState::Idle)
    }

    /// Why the machine is in its current state, when it says.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Whether a person on the platform has stopped it (see [`crate::Factory::hold`]).
    pub fn held(&self) -> bool {
        self.held
    }

    /// When it last reported a state of its own.
    pub fn state_since(&self) -> Option<Timestamp> {
        self.state_since
    }

    /// Holds or releases it at `at`. Released, it reports its own state again, which the
    /// platform's stop had replaced.
    pub(crate) fn set_held(&mut self, held: bool, index: usize, at: Timestamp, out: &mut Vec<Output>) {
        if self.held && !held {
            out.push(Output::State { machine: index, state: self.state(), reason: self.reason.clone(), at });
        }
        self.held = held;
    }

    /// The state its physics follow: stopped while held.
    fn physical_state(&self) -> MachineState {
        if self.held { MachineState::Down } else { self.state() }
    }

    /// Which machine it simulates.
    pub fn id(&self) -> MachineId {
        self.spec.id
    }

    /// What its energy meter reads, in kWh.
    pub fn energy_meter(&self) -> f64 {
        self.energy_kwh
    }

    /// Sets the family it is set up for (see [`crate::Factory::set_setup_family`]).
    pub(crate) fn set_setup_family(&mut self, family: String) {
        self.last_family = Some(family);
    }

    /// Sets its energy meter (see [`crate::Factory::set_energy_meter`]); a value that is not
    /// finite is ignored.
    pub(crate) fn set_energy_meter(&mut self, kwh: f64) {
        if kwh.is_finite() {
            self.energy_kwh = kwh.max(0.0);
        }
    }

    /// Remaining bearing life, 1 (new) to 0 (fails).
    pub fn health(&self) -> f64 {
        self.health
    }

    /// Jobs waiting (not counting the one in progress).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn knows(&self, operation: OperationId) -> bool {
        self.current.as_ref().is_some_and(|c| c.job.operation == operation)
            || self.queue.iter().chain(&self.resumed).any(|j| j.operation == operation)
    }

    /// Drops the queued jobs that have not started (the one in progress goes on).
    pub(crate) fn clear_queue(&mut self) {
        self.queue.clear();
    }

    pub(crate) fn queued_seconds(&self) -> f64 {
        let jobs = self.queue.iter().chain(&self.resumed);
        jobs.map(|j| j.setup_seconds + j.unit_seconds * f64::from(j.quantity)).sum()
    }

    fn enter(
        &mut self,
        index: usize,
        state: MachineState,
        reason: Option<String>,
        at: Timestamp,
        out: &mut Vec<Output>,
    ) {
        if self.state != Some(state) || state == MachineState::Setup || state == MachineState::Down {
            self.state = Some(state);
            self.reason.clone_from(&reason);
            self.state_since = Some(at);
            out.push(Output::State { machine: index, state, reason, at });
        }
    }

    /// Simulates `real_seconds` from `from`.
    pub(crate) fn advance(
        &mut self,
        index: usize,
        from: Timestamp,
        real_seconds: f64,
        config: &SimConfig,
        random: &mut SplitMix,
        out: &mut Vec<Output>,
    ) {
        const STEP: f64 = 0.25;
        let mut elapsed = 0.0;
        if self.state.is_none() {
            self.enter(index, MachineState::Idle, None, from, out);
        }
        while elapsed < real_seconds {
            let dt_real = STEP.min(real_seconds - elapsed);
            elapsed += dt_real;
            let at = from + time::Duration::seconds_f64(elapsed * config.clock_speed);
            let dt = dt_real * config.speed;
            if !self.held {
                self.process(index, dt, at, config, random, out);
            }
            self.physics(dt, dt_real, config, random);
            self.sample_due -= dt_real;
            if self.sample_due <= 0.0 {
                self.sample_due += config.sample_seconds;
                self.sample(index, at, random, out);
            }
        }
    }

    fn process(
        &mut self,
        index: usize,
        dt: f64,
        at: Timestamp,
        config: &SimConfig,
        random: &mut SplitMix,
        out: &mut Vec<Output>,
    ) {
        if self.state == Some(MachineState::Down) {
            self.down_remaining -= dt;
            if self.down_remaining > 0.0 {
                return;
            }
            let resumed = match &self.current {
                Some(Current { phase: Phase::Setup { .. }, job }) => {
                    (MachineState::Setup, Some(job.family.clone()))
                }
                Some(_) => (MachineState::Running, None),
                None => (MachineState::Idle, None),
            };
            self.state = None;
            self.enter(index, resumed.0, resumed.1, at, out);
        }
        if self.current.is_none() {
            let Some(job) = self.resumed.pop_front().or_else(|| self.queue.pop_front()) else {
                self.enter(index, MachineState::Idle, None, at, out);
                return;
            };
            let needs_setup =
                job.setup_seconds > 0.0 && self.last_family.as_deref().is_some_and(|last| last != job.family);
            self.last_family = Some(job.family.clone());
            if needs_setup {
                // The operation starts with its setup: the machine is committed to it from here.
                out.push(Output::OperationStarted { machine: index, operation: job.operation, at });
                let family = job.family.clone();
                self.current = Some(Current { phase: Phase::Setup { remaining: job.setup_seconds }, job });
                self.enter(index, MachineState::Setup, Some(family), at, out);
            } else {
                out.push(Output::OperationStarted { machine: index, operation: job.operation, at });
                let unit = unit_time(&job, random);
                self.current = Some(Current { phase: Phase::running(unit), job });
                self.enter(index, MachineState::Running, None, at, out);
            }
            return;
        }
        let Some(current) = self.current.as_mut() else { return };
        match &mut current.phase {
            Phase::Setup { remaining } => {
                *remaining -= dt;
                if *remaining <= 0.0 {
                    let unit = unit_time(&current.job, random);
                    current.phase = Phase::running(unit);
                    self.enter(index, MachineState::Running, None, at, out);
                }
            }
            Phase::Running { unit_remaining, made_good, made, good, scrap, since_report } => {
                *unit_remaining -= dt;
                *since_report += dt;
                let quantity = current.job.quantity;
                let attempts = quantity.saturating_mul(MAX_ATTEMPTS_PER_UNIT);
                let finished = |made_good: u32, made: u32| made_good >= quantity || made >= attempts;
                while *unit_remaining <= 0.0 && !finished(*made_good, *made) {
                    *made += 1;
                    // Worn bearings scrap more.
                    if random.chance(config.scrap_rate * (1.0 + 4.0 * (1.0 - self.health).powi(2))) {
                        *scrap += 1;
                    } else {
                        *good += 1;
                        *made_good += 1;
                    }
                    *unit_remaining += unit_time(&current.job, random);
                }
                let finished = finished(*made_good, *made);
                if finished || (*since_report >= crate::COUNT_REPORT_SECONDS && (*good > 0 || *scrap > 0)) {
                    out.push(Output::Units {
                        machine: index,
                        operation: current.job.operation,
                        good: std::mem::take(good),
                        scrap: std::mem::take(scrap),
                        ideal_unit_seconds: current.job.unit_seconds * FASTEST_UNIT / config.speed
                            * config.clock_speed,
                        finished,
                        at,
                    });
                    *since_report = 0.0;
                }
                if finished {
                    self.current = None;
                    return;
                }
                self.health -= self.wear_per_hour * dt / 3600.0;
                if self.health <= 0.0 {
                    self.health = 1.0;
                    self.breakdown(index, "bearing failure", random.between(45.0, 90.0) * 60.0, at, out);
                } else if random.chance(config.breakdowns_per_hour * dt / 3600.0) {
                    let (reason, low, high) = BREAKDOWNS[random.below(BREAKDOWNS.len() as u64) as usize];
                    self.breakdown(index, reason, random.between(low, high) * 60.0, at, out);
                }
            }
        }
    }

    fn breakdown(
        &mut self,
        index: usize,
        reason: &str,
        repair_seconds: f64,
        at: Timestamp,
        out: &mut Vec<Output>,
    ) {
        self.down_remaining = repair_seconds;
        self.enter(index, MachineState::Down, Some(reason.to_string()), at, out);
    }

    fn physics(&mut self, dt: f64, dt_real: f64, config: &SimConfig, random: &mut SplitMix) {
        let power = self.power_kw();
        self.energy_kwh += power * dt / 3600.0;
        let (idle_temp, hot_temp) = match self.spec.kind {
            MachineKind::InjectionMoulding => (60.0, 72.0),
            MachineKind::CncMill => (28.0, 48.0),
            MachineKind::LaserCutter => (26.0, 38.0),
            MachineKind::Printer3d => (35.0, 60.0),
            _ => (24.0, 27.0),
        };
        let mut target = match self.physical_state() {
            MachineState::Running => hot_temp + 10.0 * (1.0 - self.health),
            MachineState::Setup | MachineState::Idle => idle_temp,
            _ => 24.0,
        };
        if self.incident_remaining > 0.0 {
            self.incident_remaining -= dt_real;
            if !self.has_gas() {
                target = self.incident_peak;
            }
        } else if matches!(self.spec.kind, MachineKind::InjectionMoulding | MachineKind::CncMill)
            && random.chance(config.incidents_per_hour * dt / 3600.0)
        {
            // Incidents last long enough in real time for alarm delays to run out.
            self.incident_remaining = random.between(20.0, 60.0) * if self.has_gas() { 1.0 } else { 2.0 };
            self.incident_peak =
                if self.has_gas() { random.between(60.0, 150.0) } else { random.between(92.0, 105.0) };
        }
        // First-order lag towards the target, fast enough to see in a demo.
        let rate = 1.0 - (-dt_real / 8.0).exp();
        self.temperature += (target - self.temperature) * rate;
    }

    fn has_gas(&self) -> bool {
        self.spec.kind == MachineKind::InjectionMoulding
    }

    fn power_kw(&self) -> f64 {
        let share = match self.physical_state() {
            MachineState::Running => 0.75,
            MachineState::Setup => 0.2,
            MachineState::Idle => 0.12,
            MachineState::Down => 0.05,
            MachineState::Offline | MachineState::PlannedStop => 0.0,
        };
        self.spec.rated_power_kw * share
    }

    fn sample(&mut self, index: usize, at: Timestamp, random: &mut SplitMix, out: &mut Vec<Output>) {
        let mut reading = |metric: &'static str, value: f64| {
            out.push(Output::Reading {
                machine: index,
                metric,
                value: (value * 1000.0).round() / 1000.0,
                at,
            });
        };
        let power = self.power_kw();
        reading("power_kw", (power * random.between(0.95, 1.05)).max(0.0));
        reading(crate::ENERGY_METRIC, self.energy_kwh);
        reading("temperature_c", self.temperature + random.between(-0.3, 0.3));
        if matches!(
            self.spec.kind,
            MachineKind::CncMill | MachineKind::InjectionMoulding | MachineKind::LaserCutter
        ) {
            let vibration = match self.physical_state() {
                MachineState::Running => 1.2 * (1.0 + 3.0 * (1.0 - self.health).powi(2)),
                MachineState::Setup | MachineState::Idle => 0.3,
                _ => 0.05,
            };
            reading("vibration_mm_s", vibration * random.between(0.9, 1.1));
        }
        if self.has_gas() {
            let gas =
                if self.incident_remaining > 0.0 { self.incident_peak } else { random.between(2.0, 6.0) };
            reading("gas_ppm", gas);
        }
    }
}

/// The fastest a unit is made, as a share of the job's unit time (the planning standard): the
/// ideal cycle time the machine reports, so that performance never passes 100 %.
const FASTEST_UNIT: f64 = 0.95;

/// A machine gives up on a lot after this many units per good unit ordered (it would be scrapping
/// most of them): it reports what it made and the order ends short.
const MAX_ATTEMPTS_PER_UNIT: u32 = 2;

fn unit_time(job: &Job, random: &mut SplitMix) -> f64 {
    job.unit_seconds * random.between(FASTEST_UNIT, 1.12)
}
