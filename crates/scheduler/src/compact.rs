//! Left-shifting a finished schedule into the idle time it leaves. The search decides the order of
//! work on each machine and starts every operation as early as that order allows, so an operation
//! can wait behind one that was itself held up by its job, while the machine stands idle. A
//! planner reads that as a late ETA for no reason. [`compact`] moves each operation (not a fixed
//! one) to the earliest gap of its machine where it fits, with its setup from the operation before
//! it and the setup of the one after, and where taking it out leaves its old neighbours valid.
//! Every start only moves earlier, so no job waits longer: neither objective can get worse.

use crate::problem::Problem;
use crate::solution::ScheduledOperation;

/// Moves operations of `schedule` (a valid one) into earlier idle time of their machines, as long
/// as any moves; returns how many moves were made. The schedule stays valid.
pub fn compact(problem: &Problem, schedule: &mut [ScheduledOperation]) -> usize {
    // Where each operation's job predecessor is in `schedule`.
    let at: std::collections::HashMap<(usize, usize), usize> =
        schedule.iter().enumerate().map(|(i, s)| ((s.job, s.op), i)).collect();
    let predecessor: Vec<Option<usize>> =
        schedule.iter().map(|s| s.op.checked_sub(1).and_then(|op| at.get(&(s.job, op)).copied())).collect();
    let n_machines = schedule.iter().map(|s| s.machine + 1).max().unwrap_or(0);
    let by_time = |schedule: &[ScheduledOperation], ops: &mut Vec<usize>| {
        ops.sort_by_key(|&i| (schedule[i].start, schedule[i].end));
    };
    // Each machine's breaks sorted and merged, so that finding one in a window is a binary search.
    let breaks: Vec<Vec<(i64, i64)>> = problem.machines.iter().map(crate::Machine::breaks).collect();
    let mut moves = 0;
    for _round in 0..100 {
        let mut machines: Vec<Vec<usize>> = vec![Vec::new(); n_machines];
        for (i, s) in schedule.iter().enumerate() {
            machines[s.machine].push(i);
        }
        for ops in &mut machines {
            by_time(schedule, ops);
        }
        let mut order: Vec<usize> = (0..schedule.len()).collect();
        by_time(schedule, &mut order);
        let before = moves;
        for i in order {
            let ready = predecessor[i].map(|p| schedule[p].end);
            let machine = schedule[i].machine;
            let breaks = breaks.get(machine).map_or(&[][..], Vec::as_slice);
            if let Some(start) = earliest_start(problem, schedule, &machines[machine], breaks, i, ready) {
                let duration = schedule[i].end - schedule[i].start;
                // Only this operation's key changes, and only to an earlier one: it moves left in
                // its machine's order, after the operations of an equal key (as a stable sort
                // would leave it).
                let sequence = &mut machines[machine];
                let key = |s: &ScheduledOperation| (s.start, s.end);
                let old =
                    sequence.iter().position(|&j| j == i).unwrap_or_else(|| unreachable!("on its machine"));
                sequence.remove(old);
                schedule[i].start = start;
                schedule[i].end = start + duration;
                let new = sequence.partition_point(|&j| key(&schedule[j]) <= key(&schedule[i]));
                sequence.insert(new, i);
                moves += 1;
            }
        }
        if moves == before {
            break;
        }
    }
    moves
}

/// The earliest start, before its current one, where operation `index` of `schedule` fits on its
/// machine, whose operations `sequence` lists in time order; `ready` is when its job predecessor
/// ends (`None` for a job's first); `breaks` are the machine's breaks, sorted and merged. `None`
/// when there is no such start (or it is fixed).
fn earliest_start(
    problem: &Problem,
    schedule: &[ScheduledOperation],
    sequence: &[usize],
    breaks: &[(i64, i64)],
    index: usize,
    ready: Option<i64>,
) -> Option<i64> {
    let x = schedule[index];
    let job = problem.jobs.get(x.job)?;
    let operation = job.operations.get(x.op)?;
    if operation.fixed.is_some() || (x.op > 0 && ready.is_none()) {
        return None;
    }
    let ready = ready.unwrap_or(job.release).max(job.release);
    if ready >= x.start {
        return None;
    }
    let machine = problem.machines.get(x.machine)?;
    let family = |s: &ScheduledOperation| problem.jobs[s.job].operations[s.op].family;
    let setup = |from: Option<usize>, to: usize| -> i64 {
        if machine.setup.is_empty() {
            return 0;
        }
        match from.or(machine.initial_family) {
            Some(from) => machine.setup[from][to],
            None => 0,
        }
    };
    // The break that overlaps the window [from, to), if any (an empty window overlaps none): the
    // first one ending after the window opens, if it starts before the window closes.
    let blocking = |from: i64, to: i64| {
        let first = breaks.partition_point(|&(_, end)| end <= from);
        breaks.get(first).filter(|&&(start, _)| from < to && start < to).copied()
    };
    let free = |from: i64, to: i64| blocking(from, to).is_none();
    // The other operations of the machine, in order: those before `position` start earlier, and
    // `next` is the first of the others from there on (`sequence` holds `index` itself too).
    let position = sequence.partition_point(|&i| (schedule[i].start, schedule[i].end) < (x.start, x.end));
    let other = |p: usize| &schedule[sequence[p]];
    let previous = position.checked_sub(1).map(other);
    let next = sequence[position..].iter().find(|&&i| i != index).map(|&i| &schedule[i]);
    // Taken out, its successor follows its predecessor: that setup must fit too.
    let leaves_valid = next.is_none_or(|n| {
        let window = n.start - setup(previous.map(family), family(n));
        window >= previous.map_or(0, |p| p.end) && free(window, n.end)
    });
    let duration = x.end - x.start;
    // A gap whose next operation starts before `ready + duration` cannot hold it, so the search
    // begins at the first gap after that; where taking it out would break its neighbours, it may
    // still start earlier between them.
    let first = if leaves_valid {
        sequence[..position].partition_point(|&i| schedule[i].start < ready + duration)
    } else {
        position
    };
    let mut best: Option<i64> = None;
    for slot in first..=position {
        // Between `before` and `after`; at `position` itself it keeps its neighbours.
        let before = slot.checked_sub(1).map(other);
        let after = if slot < position { Some(other(slot)) } else { next };
        // Too short for the work alone, whatever the setups (never negative) and breaks: most
        // gaps of a busy machine, passed over without looking at either.
        if after.is_some_and(|a| a.start - before.map_or(0, |b| b.end).max(ready) < duration) {
            continue;
        }
        let setup_in = setup(before.map(family), family(&x));
        let mut start = ready.max(before.map_or(0, |b| b.end) + setup_in).max(setup_in);
        // Past every break the setup and the work would touch (each step passes one).
        while let Some((_, end)) = blocking(start - setup_in, start + duration) {
            start = end + setup_in;
        }
        if start >= x.start || best.is_some_and(|b| start >= b) {
            continue;
        }
        let fits_after = after.is_none_or(|a| {
            let window = a.start - setup(Some(family(&x)), family(a));
            window >= start + duration && free(window, a.end)
        });
        if fits_after {
            best = Some(start);
        }
    }
    best
}
