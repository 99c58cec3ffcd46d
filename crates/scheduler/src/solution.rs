//! What the solver returns: the schedule as a flat list of operations with machine and times, its
//! objective values, and search statistics.

use std::time::Duration;

use crate::problem::Problem;

/// One operation of the schedule (0-based job, position in the job, machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledOperation {
    /// Job index.
    pub job: usize,
    /// Position of the operation within its job.
    pub op: usize,
    /// Machine index.
    pub machine: usize,
    /// Start time.
    pub start: i64,
    /// End time (`start + duration`).
    pub end: i64,
}

/// A solved schedule with its objective values and search statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    /// Every operation, ordered by job then position.
    pub operations: Vec<ScheduledOperation>,
    /// Latest end time.
    pub makespan: i64,
    /// Sum over jobs of `weight * max(0, completion - due)`.
    pub weighted_tardiness: i64,
    /// False only when no schedule satisfying the fixed operations was found (then the schedule keeps
    /// fixed operations in place but some job predecessor ends too late).
    pub feasible: bool,
    /// Tabu-search iterations done (summed over threads).
    pub iterations: u64,
    /// Elapsed time when the returned schedule was found.
    pub time_to_best: Duration,
    /// Total elapsed time.
    pub elapsed: Duration,
}

/// Makespan and total weighted tardiness of a list of scheduled operations. Entries of jobs the
/// problem lacks count for the makespan only (the checker reports them).
pub fn objectives(problem: &Problem, operations: &[ScheduledOperation]) -> (i64, i64) {
    let makespan = operations.iter().map(|it| it.end).max().unwrap_or(0);
    let mut completion = vec![0i64; problem.jobs.len()];
    for it in operations {
        if let Some(done) = completion.get_mut(it.job) {
            *done = (*done).max(it.end);
        }
    }
    let tardiness = problem
        .jobs
        .iter()
        .zip(&completion)
        .map(|(job, &done)| job.due.map_or(0, |due| job.weight * (done - due).max(0)))
        .sum();
    (makespan, tardiness)
}
