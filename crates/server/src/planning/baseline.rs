//! Dispatching-rule baselines the solver is measured against: active schedules built by
//! Giffler–Thompson list scheduling (the next operation of every job competes for the machine that
//! can finish one first; the rule picks among those that could start before that), with
//! - EDD: earliest due date first;
//! - ATCS: apparent tardiness cost with setups (Lee, Bhaskaran & Pinedo), `k1 = 2` unless chosen
//!   ([`dispatch_with`]), `k2 = 0.5`.
//!
//! They respect everything the checker checks (setups, breaks, releases, fixed work) but never
//! insert work into earlier gaps, so they are what a good dispatcher at the machine would do.

use scheduler::{Problem, ScheduledOperation};

/// A dispatching rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Earliest due date.
    Edd,
    /// Apparent tardiness cost with setups.
    Atcs,
}

/// A machine while a schedule is built.
struct Machine {
    /// When the last operation placed on it ends.
    free_at: i64,
    /// The family of that operation.
    family: Option<usize>,
    /// Fixed operations (running or frozen) on it not placed yet: other work must not overlap them.
    reserved: Vec<Reserved>,
    /// Its unavailable time, sorted and merged, so that a lookup is a binary search.
    breaks: Vec<(i64, i64)>,
    /// How many of `breaks` end by `free_at`: work placed after it searches only the rest, from
    /// the front, where its window nearly always is.
    breaks_done: usize,
}

/// The time a fixed operation holds on its machine: from its start less the longest setup into
/// its family, to its end.
struct Reserved {
    job: usize,
    op: usize,
    from: i64,
    end: i64,
    family: usize,
}

/// Every machine empty, holding the time of the fixed operations that run on it.
fn machines(problem: &Problem) -> Vec<Machine> {
    let mut machines: Vec<Machine> = problem
        .machines
        .iter()
        .map(|machine| Machine {
            free_at: 0,
            family: None,
            reserved: Vec::new(),
            breaks: machine.breaks(),
            breaks_done: 0,
        })
        .collect();
    for (job, spec) in problem.jobs.iter().enumerate() {
        for (op, operation) in spec.operations.iter().enumerate() {
            let Some(fixed) = operation.fixed else { continue };
            let Some(alternative) = operation.alternatives.iter().find(|a| a.machine == fixed.machine) else {
                continue;
            };
            let setups = &problem.machines[fixed.machine].setup;
            let longest_setup =
                setups.iter().map(|row| row.get(operation.family).copied().unwrap_or(0)).max();
            machines[fixed.machine].reserved.push(Reserved {
                job,
                op,
                from: fixed.start - longest_setup.unwrap_or(0),
                end: fixed.start + alternative.duration,
                family: operation.family,
            });
        }
    }
    machines
}

impl Machine {
    /// Records operation `op` of `job` (of `family`) placed on this machine, ending at `end`.
    fn place(&mut self, job: usize, op: usize, end: i64, family: usize) {
        // A fixed operation can be placed after work that went past it; the machine is then
        // still set up for that work.
        if end >= self.free_at {
            self.free_at = end;
            self.family = Some(family);
            let passed = self.breaks[self.breaks_done..].iter().take_while(|&&(_, end)| end <= self.free_at);
            self.breaks_done += passed.count();
        }
        self.reserved.retain(|r| (r.job, r.op) != (job, op));
    }
}

/// A job's next operation on one of its machines, as [`dispatch_with`] keeps it: what it needs
/// to place it there, and when it could start and end now.
#[derive(Clone, Copy)]
struct Entry {
    job: usize,
    /// The operation's position in its job.
    position: usize,
    /// Its place among the job's entries (a tie-break).
    k: usize,
    machine: usize,
    family: usize,
    duration: i64,
    fixed: Option<i64>,
    /// The least work left in the job from this operation on.
    remaining: i64,
    start: i64,
    end: i64,
    setup: i64,
}

/// ATCS's look-ahead `k1` in [`dispatch`] (the slack scale, in mean operation durations).
pub const ATCS_LOOKAHEAD: f64 = 2.0;

/// The look-aheads the planner tries when it has time (see `planning::solve`). Which one wins
/// depends on the order book: on three generated 500-order factories the best start came from
/// `k1` = 3, 1 and 4, up to 17 % better in weighted tardiness than `k1` = 2 (BENCHMARKS.md).
pub const ATCS_LOOKAHEADS: [f64; 6] = [0.5, 1.0, 2.0, 3.0, 4.0, 6.0];

/// Builds a schedule of `problem` with `rule`.
pub fn dispatch(problem: &Problem, rule: Rule) -> Vec<ScheduledOperation> {
    dispatch_with(problem, rule, ATCS_LOOKAHEAD)
}

/// [`dispatch`] with ATCS's look-ahead `k1` chosen: small values rank jobs by weight and slack
/// sharply (only the nearly late count), large ones weigh in jobs due later.
pub fn dispatch_with(problem: &Problem, rule: Rule, k1: f64) -> Vec<ScheduledOperation> {
    let mut machines = machines(problem);
    let mut next = vec![0usize; problem.jobs.len()];
    let mut ready: Vec<i64> = problem.jobs.iter().map(|job| job.release).collect();
    // The least work left in each job from each of its operations on.
    let remaining_work: Vec<Vec<i64>> = problem
        .jobs
        .iter()
        .map(|job| {
            let mut rest = vec![0; job.operations.len() + 1];
            for (k, op) in job.operations.iter().enumerate().rev() {
                rest[k] = rest[k + 1] + op.alternatives.iter().map(|a| a.duration).min().unwrap_or(0);
            }
            rest
        })
        .collect();
    let total: usize = problem.jobs.iter().map(|job| job.operations.len()).sum();
    let mean_duration =
        (problem.jobs.iter().flat_map(|j| &j.operations).map(|op| op.alternatives[0].duration).sum::<i64>()
            as f64
            / total.max(1) as f64)
            .max(1.0);
    let mean_setup = {
        let setups: Vec<i64> = problem
            .machines
            .iter()
            .flat_map(|m| m.setup.iter().flatten().copied())
            .filter(|s| *s > 0)
            .collect();
        setups.iter().sum::<i64>() as f64 / setups.len().max(1) as f64
    };
    // Every job's next operation on each of its machines, in the order of its alternatives, filed
    // with that machine (`waiting[machine]`), with what a step reads of it kept in the entry, so
    // a step reads one list in order. An entry depends only on the job and that machine, so a
    // placement changes the entries on its machine and the job's own (stale ones, of a job that
    // has moved on, are skipped wherever they are read). Each machine keeps its best entry
    // (`best_on`: earliest end, then job, then entry), so a step looks at the machines and at the
    // work waiting for one of them, not at every job.
    let mut waiting: Vec<Vec<Entry>> = vec![Vec::new(); problem.machines.len()];
    let mut best_on: Vec<Option<(i64, usize, usize)>> = vec![None; problem.machines.len()];
    // Where each job's entries are: the machines of its next operation.
    let mut entered: Vec<Vec<usize>> = vec![Vec::new(); problem.jobs.len()];
    let evaluate = |entry: &mut Entry, machines: &[Machine], ready: i64| {
        let (start, setup) =
            earliest(problem, machines, entry.machine, ready, entry.family, entry.duration, entry.fixed);
        (entry.start, entry.end, entry.setup) = (start, start + entry.duration, setup);
    };
    // The entries of the job's operation at `position`, each filed with its machine.
    let enter = |job: usize,
                 position: usize,
                 machines: &[Machine],
                 ready: i64,
                 entered: &mut [Vec<usize>],
                 waiting: &mut [Vec<Entry>],
                 best_on: &mut [Option<(i64, usize, usize)>]| {
        entered[job].clear();
        let Some(op) = problem.jobs[job].operations.get(position) else { return };
        for alternative in &op.alternatives {
            if op.fixed.is_some_and(|f| f.machine != alternative.machine) {
                continue;
            }
            let k = entered[job].len();
            let mut entry = Entry {
                job,
                position,
                k,
                machine: alternative.machine,
                family: op.family,
                duration: alternative.duration,
                fixed: op.fixed.map(|f| f.start),
                remaining: remaining_work[job][position],
                start: 0,
                end: 0,
                setup: 0,
            };
            evaluate(&mut entry, machines, ready);
            entered[job].push(alternative.machine);
            let key = (entry.end, job, k);
            waiting[alternative.machine].push(entry);
            let best = &mut best_on[alternative.machine];
            if best.is_none_or(|b| key < b) {
                *best = Some(key);
            }
        }
    };
    for (job, &ready) in ready.iter().enumerate() {
        enter(job, 0, &machines, ready, &mut entered, &mut waiting, &mut best_on);
    }
    let best_of = |entries: &[Entry]| entries.iter().map(|e| (e.end, e.job, e.k)).min();
    let mut schedule = Vec::with_capacity(total);
    let mut conflict: Vec<usize> = Vec::new();
    while schedule.len() < total {
        // The machine that can finish an operation first (the first such, in job order).
        let Some((machine, (completion, _, _))) =
            best_on.iter().enumerate().filter_map(|(m, best)| best.map(|b| (m, b))).min_by_key(|&(_, b)| b)
        else {
            break;
        };
        // The operations that could start on it before then.
        let entries = &waiting[machine];
        conflict.clear();
        conflict.extend(
            (0..entries.len())
                .filter(|&i| next[entries[i].job] == entries[i].position && entries[i].start < completion),
        );
        let now = conflict.iter().map(|&i| entries[i].start).min().unwrap_or(0);
        let score = |entry: &Entry| -> f64 {
            let job_data = &problem.jobs[entry.job];
            let due = job_data.due.unwrap_or(i64::MAX / 4);
            match rule {
                Rule::Edd => -(due as f64) - entry.start as f64 * 1e-9,
                Rule::Atcs => {
                    let p = (entry.end - entry.start).max(1) as f64;
                    let slack = (due - entry.remaining - now).max(0) as f64;
                    let setup_term = if mean_setup > 0.0 {
                        (-(entry.setup as f64) / (0.5 * mean_setup)).exp()
                    } else {
                        1.0
                    };
                    job_data.weight as f64 / p * (-slack / (k1 * mean_duration)).exp() * setup_term
                }
            }
        };
        // The highest score; among equal ones the last in job order.
        let Some((_, _, chosen)) = conflict
            .iter()
            .map(|&i| (score(&entries[i]), (entries[i].job, entries[i].k), i))
            .max_by(|(a, first, _), (b, second, _)| a.total_cmp(b).then(first.cmp(second)))
        else {
            break;
        };
        let Entry { job, position, start, end, family, .. } = entries[chosen];
        schedule.push(ScheduledOperation { job, op: position, machine, start, end });
        machines[machine].place(job, position, end, family);
        ready[job] = end;
        next[job] += 1;
        // Everything still waiting for this machine meets it in its new state; the job's entries
        // on its other machines are stale now, and those machines' bests may have been among them.
        let mut entries = std::mem::take(&mut waiting[machine]);
        entries.retain(|e| next[e.job] == e.position);
        for entry in &mut entries {
            evaluate(entry, &machines, ready[entry.job]);
        }
        best_on[machine] = best_of(&entries);
        waiting[machine] = entries;
        // Stale entries elsewhere are skipped wherever they are read; a machine's best is looked
        // for again only where it was this job's.
        for &m in entered[job].iter().filter(|&&m| m != machine) {
            if best_on[m].is_some_and(|(_, other, _)| other == job) {
                waiting[m].retain(|e| next[e.job] == e.position);
                best_on[m] = best_of(&waiting[m]);
            }
        }
        enter(job, next[job], &machines, ready[job], &mut entered, &mut waiting, &mut best_on);
    }
    schedule.sort_by_key(|s| (s.job, s.op));
    schedule
}

/// Earliest start of an operation on `machine` after everything already there: after the job is
/// ready and the machine's setup, inside one gap between breaks (setup included), clear of the
/// fixed operations still to come (after one, with the setup from its family). A fixed operation
/// starts where it is fixed. Returns the start and the setup it needs.
fn earliest(
    problem: &Problem,
    machines: &[Machine],
    machine: usize,
    ready: i64,
    family: usize,
    duration: i64,
    fixed: Option<i64>,
) -> (i64, i64) {
    let state = &machines[machine];
    let setup = problem.setup_time(machine, state.family, family);
    if let Some(start) = fixed {
        return (start, setup);
    }
    clear_start(problem, state, machine, family, duration, ready.max(state.free_at + setup), setup)
}

/// The earliest start from `start` (set up for `setup` before it) of work of `family` taking
/// `duration` on `machine` (`state`) whose setup and work miss every break and the time of fixed
/// work still to come (after which the setup is the one from that work), and that setup.
fn clear_start(
    problem: &Problem,
    state: &Machine,
    machine: usize,
    family: usize,
    duration: i64,
    mut start: i64,
    mut setup: i64,
) -> (i64, i64) {
    loop {
        let (from, to) = (start - setup, start + duration);
        // The first break ending after the window opens; it blocks the window if it starts
        // before the window closes (breaks are disjoint and sorted, so no other can).
        let done = if from >= state.free_at { state.breaks_done } else { 0 };
        let first = done + first_ending_after(&state.breaks[done..], from);
        if let Some(&(_, end)) = state.breaks.get(first).filter(|&&(begin, _)| begin < to) {
            start = end + setup;
        } else if let Some(held) = state.reserved.iter().find(|r| r.from < to && from < r.end) {
            setup = problem.setup_time(machine, Some(held.family), family);
            start = held.end + setup;
        } else {
            return (start, setup);
        }
    }
}

/// The index of the first of `breaks` (sorted, disjoint) that ends after `at`: a search from the
/// front in steps that double, then a binary search within the last step. Dispatching asks this
/// for windows just after a machine's last work, nearly always among the first breaks left, where
/// it takes a comparison or two instead of a binary search over a year of shifts.
fn first_ending_after(breaks: &[(i64, i64)], at: i64) -> usize {
    let (mut low, mut step) = (0, 1);
    while low + step <= breaks.len() && breaks[low + step - 1].1 <= at {
        low += step;
        step *= 2;
    }
    let high = (low + step).min(breaks.len());
    low + breaks[low..high].partition_point(|&(_, end)| end <= at)
}

/// List scheduling with the machine and the priority of every operation given: operations whose
/// job predecessor is placed compete, the smallest key goes first, each as early as its machine
/// allows after the work placed on it before, or, with `fill_gaps`, in the earliest gap of its
/// machine that holds it (setups into it and out of it included), so it never delays work placed
/// before it. With the keys and machines of a previous plan this is a right-shift repair: the old
/// sequences kept, everything pushed only as far as new breaks, outages and running work demand
/// (with `fill_gaps`, work may go ahead of work held up for longer, such as a lot whose earlier
/// step a break now holds up, into the time that leaves free, rather than wait behind it).
/// `assignment[j][k]` is `(machine, key)` for operation `k` of job `j`; `None` when a machine is
/// not an alternative of its operation.
pub fn list_schedule(
    problem: &Problem,
    assignment: &[Vec<(usize, i64)>],
    fill_gaps: bool,
) -> Option<Vec<ScheduledOperation>> {
    let mut machines = machines(problem);
    // What is placed on each machine so far, by start: (start, end, family).
    let mut placed: Vec<Vec<(i64, i64, usize)>> = vec![Vec::new(); machines.len()];
    let mut next = vec![0usize; problem.jobs.len()];
    let mut ready: Vec<i64> = problem.jobs.iter().map(|job| job.release).collect();
    let total: usize = problem.jobs.iter().map(|job| job.operations.len()).sum();
    let mut schedule = Vec::with_capacity(total);
    let mut heap = std::collections::BinaryHeap::new();
    for (job, ops) in assignment.iter().enumerate() {
        if let Some(&(_, key)) = ops.first() {
            heap.push(std::cmp::Reverse((key, job)));
        }
    }
    while let Some(std::cmp::Reverse((_, job))) = heap.pop() {
        let position = next[job];
        let op = problem.jobs[job].operations.get(position)?;
        let (machine, _) = *assignment[job].get(position)?;
        let duration = op.alternatives.iter().find(|a| a.machine == machine)?.duration;
        let start = match op.fixed {
            Some(fixed) => fixed.start,
            None if fill_gaps => earliest_gap(
                problem,
                &machines[machine],
                &placed[machine],
                machine,
                ready[job],
                op.family,
                duration,
            ),
            None => earliest(problem, &machines, machine, ready[job], op.family, duration, None).0,
        };
        let end = start + duration;
        schedule.push(ScheduledOperation { job, op: position, machine, start, end });
        let on_machine = &mut placed[machine];
        let at = on_machine.partition_point(|&(other, _, _)| other <= start);
        on_machine.insert(at, (start, end, op.family));
        machines[machine].place(job, position, end, op.family);
        ready[job] = end;
        next[job] += 1;
        if let Some(&(_, key)) = assignment[job].get(next[job]) {
            heap.push(std::cmp::Reverse((key, job)));
        }
    }
    (schedule.len() == total).then(|| {
        schedule.sort_by_key(|s| (s.job, s.op));
        schedule
    })
}

/// The earliest start from `ready` of work of `family` taking `duration` on `machine` (`state`),
/// in a gap between the work `placed` there (by start) or after it: clear of breaks and of fixed
/// work still to come, with the setup into it from the work before and the setup out of it into
/// the work after (which starts where it was placed) both fitting.
fn earliest_gap(
    problem: &Problem,
    state: &Machine,
    placed: &[(i64, i64, usize)],
    machine: usize,
    ready: i64,
    family: usize,
    duration: i64,
) -> i64 {
    let open = |from: i64, to: i64| {
        let first = state.breaks.partition_point(|&(_, end)| end <= from);
        state.breaks.get(first).is_none_or(|&(begin, _)| begin >= to)
    };
    // Work placed before this gap starts at or before `ready`, so it can take nothing earlier.
    let first_gap = placed.partition_point(|&(start, _, _)| start <= ready);
    for gap in first_gap..=placed.len() {
        let (free_at, before) = match gap.checked_sub(1).map(|i| placed[i]) {
            Some((_, end, family)) => (end, Some(family)),
            None => (0, None),
        };
        let after = placed.get(gap);
        if let Some(&(next_start, _, _)) = after
            && next_start - free_at.max(ready) < duration
        {
            continue;
        }
        let setup = problem.setup_time(machine, before, family);
        let (start, _) =
            clear_start(problem, state, machine, family, duration, ready.max(free_at + setup), setup);
        let Some(&(next_start, _, next_family)) = after else { return start };
        let setup_out = problem.setup_time(machine, Some(family), next_family);
        if start + duration + setup_out <= next_start && open(next_start - setup_out, next_start) {
            return start;
        }
    }
    unreachable!("the gap after the last placed work always holds it")
}

#[cfg(test)]
mod tests {
    use scheduler::{Alternative, FixedStart, Job, Machine, Operation, Problem};

    use super::{Rule, dispatch, first_ending_after, list_schedule};

    proptest::proptest! {
        /// The search from the front finds what a binary search over all the breaks finds.
        #[test]
        fn the_first_break_ending_after_a_time_is_found(
            lengths in proptest::collection::vec((1i64..50, 0i64..50), 0..40),
            at in -10i64..2_500,
        ) {
            let mut breaks = Vec::new();
            let mut time = 0;
            for (gap, length) in lengths {
                time += gap;
                breaks.push((time, time + length + 1));
                time += length + 1;
            }
            let expected = breaks.partition_point(|&(_, end)| end <= at);
            proptest::prop_assert_eq!(first_ending_after(&breaks, at), expected);
        }
    }

    /// One machine with two setup families (10 s to change), one job per operation.
    fn shop(operations: Vec<(i64, usize, Option<i64>)>) -> Problem {
        let jobs = operations
            .into_iter()
            .map(|(duration, family, fixed)| Job {
                release: 0,
                due: None,
                weight: 1,
                operations: vec![Operation {
                    alternatives: vec![Alternative { machine: 0, duration }],
                    family,
                    fixed: fixed.map(|start| FixedStart { machine: 0, start }),
                }],
            })
            .collect();
        let machine = Machine { setup: vec![vec![0, 10], vec![10, 0]], ..Machine::default() };
        Problem { name: "fixed".into(), machines: vec![machine], jobs }
    }

    #[test]
    fn list_scheduling_lets_work_go_ahead_of_work_held_up_into_the_time_it_leaves_free() {
        // The first by key (family 0, 50 s) cannot start before 100 (its job's release, as if its
        // earlier step were held up). The second (family 1, 30 s) goes ahead of it into the idle
        // time, with the 10 s setup into the held-up work still before 100.
        let mut problem = shop(vec![(50, 0, None), (30, 1, None)]);
        problem.jobs[0].release = 100;
        let schedule = list_schedule(&problem, &[vec![(0, 0)], vec![(0, 10)]], true).unwrap();
        assert!(scheduler::check(&problem, &schedule).is_empty(), "{schedule:?}");
        assert_eq!(schedule.iter().map(|s| s.start).collect::<Vec<_>>(), [100, 0]);
        // Without filling gaps it waits behind it, and sets up after it.
        let schedule = list_schedule(&problem, &[vec![(0, 0)], vec![(0, 10)]], false).unwrap();
        assert_eq!(schedule.iter().map(|s| s.start).collect::<Vec<_>>(), [100, 160]);
        // Work that would leave no time for that setup waits behind it.
        let mut problem = shop(vec![(50, 0, None), (95, 1, None)]);
        problem.jobs[0].release = 100;
        let schedule = list_schedule(&problem, &[vec![(0, 0)], vec![(0, 10)]], true).unwrap();
        assert!(scheduler::check(&problem, &schedule).is_empty(), "{schedule:?}");
        assert_eq!(schedule.iter().map(|s| s.start).collect::<Vec<_>>(), [100, 160]);
        // A break in the idle time counts: work that would run into it waits too.
        let mut problem = shop(vec![(50, 0, None), (30, 0, None)]);
        problem.jobs[0].release = 100;
        problem.machines[0].unavailable = vec![scheduler::Interval { start: 20, end: 60 }];
        let schedule = list_schedule(&problem, &[vec![(0, 0)], vec![(0, 10)]], true).unwrap();
        assert!(scheduler::check(&problem, &schedule).is_empty(), "{schedule:?}");
        assert_eq!(schedule.iter().map(|s| s.start).collect::<Vec<_>>(), [100, 60]);
    }

    #[test]
    fn work_keeps_clear_of_fixed_operations_still_to_come() {
        // Fixed work of family 1 from 50 to 80. Work of family 0 taking 45 s, listed first, would
        // end at 45, too close for the setup into the fixed work: it goes after it, with a setup.
        // Work of 20 s, listed last, fits before the fixed work.
        let problem = shop(vec![(30, 1, Some(50)), (45, 0, None), (20, 0, None)]);
        let schedule = list_schedule(&problem, &[vec![(0, 50)], vec![(0, -10)], vec![(0, 5)]], true).unwrap();
        assert!(
            scheduler::check(&problem, &schedule).is_empty(),
            "{:?}",
            scheduler::check(&problem, &schedule)
        );
        let starts: Vec<i64> = schedule.iter().map(|s| s.start).collect();
        assert_eq!(starts, [50, 90, 0]);
        // Short work fits before it.
        let problem = shop(vec![(30, 1, Some(50)), (40, 0, None)]);
        let schedule = list_schedule(&problem, &[vec![(0, 50)], vec![(0, -10)]], true).unwrap();
        assert_eq!(schedule.iter().map(|s| s.start).collect::<Vec<_>>(), [50, 0]);
        // The dispatching rules too.
        let problem = shop(vec![(30, 1, Some(50)), (45, 0, None), (60, 1, None)]);
        for rule in [Rule::Edd, Rule::Atcs] {
            let schedule = dispatch(&problem, rule);
            assert!(scheduler::check(&problem, &schedule).is_empty(), "{rule:?}: {schedule:?}");
        }
    }
}
