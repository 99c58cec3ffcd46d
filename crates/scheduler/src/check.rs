//! The independent feasibility checker: given a problem and a list of scheduled operations, it lists
//! every broken rule (precedence, overlap with setups, eligibility and durations, release,
//! unavailability, fixed operations). It shares no code with the solver on purpose, so a solver bug
//! cannot hide itself; the tests run every solution through it.

#[cfg(test)]
mod tests;

use crate::problem::Problem;
use crate::solution::ScheduledOperation;

/// One broken rule in a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The schedule has not exactly one entry for this operation (0 = missing, 2+ = duplicated).
    Coverage {
        /// Job index.
        job: usize,
        /// Operation position within the job.
        op: usize,
        /// How many entries were found.
        count: usize,
    },
    /// An entry names an operation that does not exist.
    UnknownOperation {
        /// Job index given.
        job: usize,
        /// Operation position given.
        op: usize,
    },
    /// The machine is not eligible, or `end - start` is not its processing time there.
    Eligibility {
        /// Job index.
        job: usize,
        /// Operation position.
        op: usize,
    },
    /// The operation starts before its job predecessor ends or before the job's release.
    Precedence {
        /// Job index.
        job: usize,
        /// Operation position.
        op: usize,
    },
    /// Two operations (with the setup between them) overlap on a machine, or the first operation
    /// does not leave room for the initial setup.
    Overlap {
        /// Machine index.
        machine: usize,
        /// Start of the later operation.
        at: i64,
    },
    /// An operation or its setup window intersects an unavailable interval.
    Unavailable {
        /// Job index.
        job: usize,
        /// Operation position.
        op: usize,
    },
    /// A fixed operation was moved.
    Fixed {
        /// Job index.
        job: usize,
        /// Operation position.
        op: usize,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Coverage { job, op, count } => write!(f, "job {job} op {op} scheduled {count} times"),
            Self::UnknownOperation { job, op } => write!(f, "job {job} op {op} does not exist"),
            Self::Eligibility { job, op } => write!(f, "job {job} op {op}: wrong machine or duration"),
            Self::Precedence { job, op } => {
                write!(f, "job {job} op {op}: starts before its predecessor or release")
            }
            Self::Overlap { machine, at } => write!(f, "machine {machine}: overlap (setup included) at {at}"),
            Self::Unavailable { job, op } => write!(f, "job {job} op {op}: overlaps an unavailable interval"),
            Self::Fixed { job, op } => write!(f, "job {job} op {op}: fixed operation moved"),
        }
    }
}

/// Lists every violation of `schedule` against `problem`; empty means feasible.
pub fn check(problem: &Problem, schedule: &[ScheduledOperation]) -> Vec<Violation> {
    let mut violations = Vec::new();
    // entry[job][op] = index into schedule.
    let mut entry: Vec<Vec<Option<usize>>> =
        problem.jobs.iter().map(|job| vec![None; job.operations.len()]).collect();
    let mut counts: Vec<Vec<usize>> = problem.jobs.iter().map(|job| vec![0; job.operations.len()]).collect();
    for (idx, item) in schedule.iter().enumerate() {
        match counts.get_mut(item.job).and_then(|ops| ops.get_mut(item.op)) {
            Some(count) => {
                *count += 1;
                entry[item.job][item.op] = Some(idx);
            }
            None => violations.push(Violation::UnknownOperation { job: item.job, op: item.op }),
        }
    }
    for (job, ops) in counts.iter().enumerate() {
        for (op, &count) in ops.iter().enumerate() {
            if count != 1 {
                violations.push(Violation::Coverage { job, op, count });
            }
        }
    }
    if !violations.is_empty() {
        return violations;
    }
    let item = |job: usize, op: usize| &schedule[entry[job][op].unwrap_or_default()];

    for (job_idx, job) in problem.jobs.iter().enumerate() {
        for (op_idx, op) in job.operations.iter().enumerate() {
            let it = item(job_idx, op_idx);
            if op.duration_on(it.machine) != Some(it.end - it.start) {
                violations.push(Violation::Eligibility { job: job_idx, op: op_idx });
            }
            let ready = if op_idx == 0 { job.release } else { item(job_idx, op_idx - 1).end };
            if it.start < ready {
                violations.push(Violation::Precedence { job: job_idx, op: op_idx });
            }
            if let Some(fixed) = op.fixed
                && (fixed.machine != it.machine || fixed.start != it.start)
            {
                violations.push(Violation::Fixed { job: job_idx, op: op_idx });
            }
        }
    }

    for machine_idx in 0..problem.machines.len() {
        let mut on_machine: Vec<&ScheduledOperation> =
            schedule.iter().filter(|it| it.machine == machine_idx).collect();
        on_machine.sort_by_key(|it| (it.start, it.end));
        let spec = &problem.machines[machine_idx];
        let family = |it: &ScheduledOperation| problem.jobs[it.job].operations[it.op].family;
        let mut busy_until = 0i64;
        for (pos, it) in on_machine.iter().enumerate() {
            let setup = if spec.setup.is_empty() {
                0
            } else if pos == 0 {
                spec.initial_family.map_or(0, |init| spec.setup[init][family(it)])
            } else {
                spec.setup[family(on_machine[pos - 1])][family(it)]
            };
            // Later operations must clear every earlier one, not only the previous by start.
            if it.start - setup < busy_until {
                violations.push(Violation::Overlap { machine: machine_idx, at: it.start });
            }
            let window = (it.start - setup, it.end);
            let hits_break = window.0 < window.1
                && spec
                    .unavailable
                    .iter()
                    .any(|iv| iv.start < iv.end && iv.start < window.1 && window.0 < iv.end);
            if hits_break {
                violations.push(Violation::Unavailable { job: it.job, op: it.op });
            }
            busy_until = busy_until.max(it.end);
        }
    }
    violations
}
