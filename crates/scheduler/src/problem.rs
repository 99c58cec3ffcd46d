//! The problem model: jobs of ordered operations, each with one or more eligible machines, plus the
//! production extensions the solver must respect exactly (release and due dates, weights,
//! sequence-dependent setups by family, machine unavailability, fixed operations), and its validation.
//!
//! Time is an integer number of abstract units (`i64`), starting at 0.
//!
//! Semantics the solver, the checker and the readers agree on:
//! - An operation runs non-preemptively on exactly one of its alternatives' machines for that
//!   alternative's duration, after its job predecessor ends and not before its job's release.
//! - Setups: when operation `b` follows operation `a` on machine `m`, `b` may start no earlier than
//!   `end(a) + setup[family(a)][family(b)]`. The first operation on a machine needs
//!   `setup[initial_family][family]` (counted from time 0) when the machine has an initial family,
//!   otherwise no setup. Setups are *anticipatory*: they occupy the machine during
//!   `[start - setup, start)` and do not wait for the job to arrive.
//! - Unavailability: an operation together with its setup window `[start - setup, end)` must fit
//!   entirely inside one gap between unavailable intervals (no preemption, no setup across a break).
//!   Zero-length intervals and zero-length windows never conflict.
//! - Fixed operations keep the given machine and start exactly; the solver sequences other work around
//!   them.

#[cfg(test)]
mod tests;

use crate::error::{Error, Result};

/// A scheduling problem: machines and jobs. Machine and job indices are 0-based positions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problem {
    /// Instance name (file stem for benchmark files), used in reports only.
    pub name: String,
    /// The machines; operations refer to them by index.
    pub machines: Vec<Machine>,
    /// The jobs; each is an ordered chain of operations.
    pub jobs: Vec<Job>,
}

/// One machine: its setup matrix and unavailable intervals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Machine {
    /// `setup[from_family][to_family]`; empty means no setups on this machine. Must be square and cover
    /// every family used by operations that may run here.
    pub setup: Vec<Vec<i64>>,
    /// Family the machine is set up for at time 0; `None` means the first operation needs no setup.
    pub initial_family: Option<usize>,
    /// Half-open intervals `[start, end)` during which the machine cannot work.
    pub unavailable: Vec<Interval>,
}

impl Machine {
    /// The unavailable time as `(start, end)` pairs, sorted, without empty ones, and with those
    /// that overlap or touch merged: the first pair ending after a time is found by binary search,
    /// and it is the only one that can block a window opening then.
    pub fn breaks(&self) -> Vec<(i64, i64)> {
        let mut spans: Vec<(i64, i64)> =
            self.unavailable.iter().filter(|iv| iv.start < iv.end).map(|iv| (iv.start, iv.end)).collect();
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

/// A half-open time interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// First time unit inside the interval.
    pub start: i64,
    /// First time unit after the interval.
    pub end: i64,
}

/// A job: an ordered chain of operations with a release date, an optional due date and a weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Earliest start of the job's first operation.
    pub release: i64,
    /// Due date for the tardiness objectives; `None` means the job is never tardy.
    pub due: Option<i64>,
    /// Weight of the job's tardiness.
    pub weight: i64,
    /// The operations, in processing order.
    pub operations: Vec<Operation>,
}

/// One operation of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Eligible machines with their processing time; at least one.
    pub alternatives: Vec<Alternative>,
    /// Setup family, an index into the machines' setup matrices (0 when setups are unused).
    pub family: usize,
    /// When set, the operation is already decided: it runs on this machine from this start.
    pub fixed: Option<FixedStart>,
}

/// An eligible machine for an operation and the processing time there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alternative {
    /// Machine index.
    pub machine: usize,
    /// Processing time on that machine (≥ 0).
    pub duration: i64,
}

/// A frozen decision for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedStart {
    /// Machine index; must be one of the operation's alternatives.
    pub machine: usize,
    /// Start time the solver must keep.
    pub start: i64,
}

/// Largest time value (duration, release, due date, setup, interval bound, fixed start) a problem may
/// use; keeps every sum the solver forms far from `i64` overflow.
pub const MAX_TIME: i64 = 1_000_000_000_000;

impl Job {
    /// A job released at 0, without due date, weight 1.
    pub fn new(operations: Vec<Operation>) -> Self {
        Self { release: 0, due: None, weight: 1, operations }
    }
}

impl Operation {
    /// An operation of family 0, not fixed.
    pub fn new(alternatives: Vec<Alternative>) -> Self {
        Self { alternatives, family: 0, fixed: None }
    }

    /// The processing time on `machine`, if eligible.
    pub fn duration_on(&self, machine: usize) -> Option<i64> {
        self.alternatives.iter().find(|alt| alt.machine == machine).map(|alt| alt.duration)
    }
}

impl Problem {
    /// A classic job shop: `routes[j]` lists `(machine, duration)` in processing order.
    pub fn job_shop(name: &str, n_machines: usize, routes: &[Vec<(usize, i64)>]) -> Self {
        let jobs = routes
            .iter()
            .map(|route| {
                Job::new(
                    route
                        .iter()
                        .map(|&(machine, duration)| Operation::new(vec![Alternative { machine, duration }]))
                        .collect(),
                )
            })
            .collect();
        Self { name: name.to_owned(), machines: vec![Machine::default(); n_machines], jobs }
    }

    /// Total number of operations.
    pub fn n_operations(&self) -> usize {
        self.jobs.iter().map(|job| job.operations.len()).sum()
    }

    /// True when any operation has more than one eligible machine.
    pub fn is_flexible(&self) -> bool {
        self.jobs.iter().flat_map(|job| &job.operations).any(|op| op.alternatives.len() > 1)
    }

    /// True when any production extension is used (setups, releases, unavailability, fixed operations).
    pub fn has_extensions(&self) -> bool {
        self.machines.iter().any(|m| !m.setup.is_empty() || !m.unavailable.is_empty())
            || self
                .jobs
                .iter()
                .any(|job| job.release != 0 || job.operations.iter().any(|op| op.fixed.is_some()))
    }

    /// True when some job has a due date, so tardiness objectives are meaningful.
    pub fn has_due_dates(&self) -> bool {
        self.jobs.iter().any(|job| job.due.is_some())
    }

    /// Setup time on `machine` between an operation of family `from` (or the initial state when `None`)
    /// and one of family `to`.
    pub fn setup_time(&self, machine: usize, from: Option<usize>, to: usize) -> i64 {
        let spec = &self.machines[machine];
        if spec.setup.is_empty() {
            return 0;
        }
        match from.or(spec.initial_family) {
            Some(from) => spec.setup[from][to],
            None => 0,
        }
    }

    /// Checks that the problem describes a real shop; the solver and the checker rely on it.
    ///
    /// Rejects: times or weights beyond [`MAX_TIME`] (or large enough together to overflow the
    /// weighted tardiness), no machines, empty jobs, operations without alternatives, unknown machines, negative
    /// durations/weights/releases, zero durations on machines with setups, non-square or negative setup matrices, families outside a machine's
    /// matrix, empty or negative intervals, and fixed operations that are ineligible, overlap an
    /// unavailable interval, overlap each other on a machine (setups included), or break their job's
    /// order among themselves.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::Invalid(msg));
        if self.machines.is_empty() {
            return invalid("no machines".into());
        }
        if self.jobs.is_empty() {
            return invalid("no jobs".into());
        }
        let too_big = |t: i64| t.abs() > MAX_TIME;
        let any_too_big = self.machines.iter().any(|m| {
            m.setup.iter().flatten().any(|&t| too_big(t))
                || m.unavailable.iter().any(|iv| too_big(iv.start) || too_big(iv.end))
        }) || self.jobs.iter().any(|job| {
            too_big(job.release)
                || too_big(job.weight)
                || job.due.is_some_and(too_big)
                || job.operations.iter().any(|op| {
                    op.alternatives.iter().any(|alt| too_big(alt.duration))
                        || op.fixed.is_some_and(|f| too_big(f.start))
                })
        });
        if any_too_big {
            return invalid(format!("a time or weight exceeds {MAX_TIME}"));
        }
        self.validate_magnitudes()?;
        for (machine_idx, machine) in self.machines.iter().enumerate() {
            let n_families = machine.setup.len();
            if machine.setup.iter().any(|row| row.len() != n_families) {
                return invalid(format!("machine {machine_idx}: setup matrix is not square"));
            }
            if machine.setup.iter().flatten().any(|&s| s < 0) {
                return invalid(format!("machine {machine_idx}: negative setup time"));
            }
            if let Some(family) = machine.initial_family
                && n_families > 0
                && family >= n_families
            {
                return invalid(format!(
                    "machine {machine_idx}: initial family {family} outside setup matrix"
                ));
            }
            for interval in &machine.unavailable {
                if interval.start < 0 || interval.end < interval.start {
                    return invalid(format!(
                        "machine {machine_idx}: bad unavailable interval [{}, {})",
                        interval.start, interval.end
                    ));
                }
            }
        }
        for (job_idx, job) in self.jobs.iter().enumerate() {
            if job.operations.is_empty() {
                return invalid(format!("job {job_idx}: no operations"));
            }
            if job.release < 0 || job.weight < 0 {
                return invalid(format!("job {job_idx}: negative release or weight"));
            }
            let mut previous_fixed_end: Option<i64> = None;
            for (op_idx, op) in job.operations.iter().enumerate() {
                if op.alternatives.is_empty() {
                    return invalid(format!("job {job_idx} op {op_idx}: no eligible machine"));
                }
                for alt in &op.alternatives {
                    if alt.machine >= self.machines.len() {
                        return invalid(format!(
                            "job {job_idx} op {op_idx}: unknown machine {}",
                            alt.machine
                        ));
                    }
                    if alt.duration < 0 {
                        return invalid(format!("job {job_idx} op {op_idx}: negative duration"));
                    }
                    let n_families = self.machines[alt.machine].setup.len();
                    // With setups, the order of operations on a machine must be readable from their times;
                    // a zero-length operation could sit anywhere among equal starts.
                    if n_families > 0 && alt.duration == 0 {
                        return invalid(format!(
                            "job {job_idx} op {op_idx}: zero duration on machine {} which has setups",
                            alt.machine
                        ));
                    }
                    if n_families > 0 && op.family >= n_families {
                        return invalid(format!(
                            "job {job_idx} op {op_idx}: family {} outside the setup matrix of machine {}",
                            op.family, alt.machine
                        ));
                    }
                }
                if let Some(fixed) = op.fixed {
                    let Some(duration) = op.duration_on(fixed.machine) else {
                        return invalid(format!("job {job_idx} op {op_idx}: fixed on an ineligible machine"));
                    };
                    if fixed.start < job.release {
                        return invalid(format!("job {job_idx} op {op_idx}: fixed before the job's release"));
                    }
                    if previous_fixed_end.is_some_and(|end| end > fixed.start) {
                        return invalid(format!(
                            "job {job_idx} op {op_idx}: fixed before an earlier fixed op ends"
                        ));
                    }
                    previous_fixed_end = Some(fixed.start + duration);
                }
            }
        }
        self.validate_fixed_on_machines()
    }

    /// Rejects times and weights that are each within [`MAX_TIME`] but together could overflow the
    /// objectives: no operation can end after the latest time the problem names (release, due date,
    /// fixed start or end of a break) plus every operation's longest alternative and the largest
    /// setup, one after another, so the weighted tardiness stays below the sum of the weights
    /// times that horizon plus the earliest due date's distance below zero. That product must stay
    /// far below `i64::MAX`, and so must the horizon.
    fn validate_magnitudes(&self) -> Result<()> {
        let largest_setup =
            self.machines.iter().flat_map(|m| m.setup.iter().flatten()).copied().max().unwrap_or(0);
        let named = self
            .machines
            .iter()
            .flat_map(|m| m.unavailable.iter().map(|iv| iv.end))
            .chain(self.jobs.iter().flat_map(|job| {
                let fixed = job.operations.iter().filter_map(|op| op.fixed.map(|f| f.start));
                fixed.chain([job.release, job.due.unwrap_or(0).abs()])
            }))
            .max()
            .unwrap_or(0);
        let work: i128 = self
            .jobs
            .iter()
            .flat_map(|job| &job.operations)
            .map(|op| {
                let longest = op.alternatives.iter().map(|alt| alt.duration).max().unwrap_or(0);
                i128::from(longest) + i128::from(largest_setup)
            })
            .sum();
        let horizon = 2 * i128::from(named) + work;
        let weights: i128 = self.jobs.iter().map(|job| i128::from(job.weight)).sum();
        let limit = i128::from(i64::MAX / 4);
        if horizon.saturating_mul(weights.max(1)) > limit {
            return Err(Error::Invalid(format!(
                "times and weights too large together: the weights ({weights}) times the longest \
                 possible schedule ({horizon}) must stay below {limit}"
            )));
        }
        Ok(())
    }

    fn validate_fixed_on_machines(&self) -> Result<()> {
        for machine_idx in 0..self.machines.len() {
            // (start, end, family) of fixed operations on this machine, by start.
            let mut fixed: Vec<(i64, i64, usize)> = Vec::new();
            for job in &self.jobs {
                for op in &job.operations {
                    if let Some(f) = op.fixed.filter(|f| f.machine == machine_idx) {
                        let duration = op.duration_on(machine_idx).unwrap_or(0);
                        fixed.push((f.start, f.start + duration, op.family));
                    }
                }
            }
            fixed.sort_unstable();
            let mut previous: Option<(i64, usize)> = None;
            for &(start, end, family) in &fixed {
                let setup = self.setup_time(machine_idx, previous.map(|p| p.1), family);
                let ready = previous.map_or(0, |p| p.0);
                if start - setup < ready {
                    return Err(Error::Invalid(format!(
                        "machine {machine_idx}: fixed operation at {start} overlaps earlier work or its setup"
                    )));
                }
                let window_start = start - setup;
                let blocked = self.machines[machine_idx].unavailable.iter().any(|iv| {
                    iv.start < iv.end && window_start < end && iv.start < end && window_start < iv.end
                });
                if blocked {
                    return Err(Error::Invalid(format!(
                        "machine {machine_idx}: fixed operation at {start} overlaps an unavailable interval"
                    )));
                }
                previous = Some((end, family));
            }
        }
        Ok(())
    }
}
