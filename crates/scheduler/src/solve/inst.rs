//! The solver's flat view of a [`Problem`]: operations numbered `0..n_ops` job by job, with index
//! arrays for job chains and alternatives, so the inner loop touches only flat vectors.

use crate::problem::Problem;

/// "No operation" in index arrays.
pub(crate) const NONE: usize = usize::MAX;

pub(crate) struct Inst {
    pub(crate) n_ops: usize,
    pub(crate) n_jobs: usize,
    pub(crate) n_machines: usize,
    pub(crate) job_of: Vec<usize>,
    /// First operation of each job; `job_start[n_jobs] == n_ops`.
    pub(crate) job_start: Vec<usize>,
    pub(crate) jprev: Vec<usize>,
    pub(crate) jnext: Vec<usize>,
    /// Alternatives of op `o` are `alt_off[o]..alt_off[o + 1]`.
    pub(crate) alt_off: Vec<usize>,
    pub(crate) alt_machine: Vec<usize>,
    pub(crate) alt_dur: Vec<i64>,
    pub(crate) family: Vec<usize>,
    /// Per machine: flattened `n_families x n_families` setup matrix (empty when none).
    pub(crate) setup: Vec<Vec<i64>>,
    pub(crate) n_families: Vec<usize>,
    pub(crate) initial_family: Vec<Option<usize>>,
    /// Per machine: sorted, merged, non-empty unavailable intervals.
    pub(crate) unavailable: Vec<Vec<(i64, i64)>>,
    /// Per machine: an index into `unavailable` by time, so [`Inst::fit`] finds the first interval
    /// that can matter in a step or two instead of a binary search (which was half of a tardiness
    /// probe on a plant with a break every night).
    pub(crate) breaks_index: Vec<BreakIndex>,
    pub(crate) release: Vec<i64>,
    pub(crate) due: Vec<Option<i64>>,
    pub(crate) weight: Vec<i64>,
    /// Fixed (machine, start) per op.
    pub(crate) fixed: Vec<Option<(usize, i64)>>,
    /// The operations with a fixed start, in index order.
    pub(crate) fixed_ops: Vec<usize>,
    pub(crate) has_setups: bool,
    pub(crate) has_unavailable: bool,
    pub(crate) has_fixed: bool,
    pub(crate) flexible: bool,
    /// Shortest possible remaining work from op `o` to the end of its job (inclusive).
    pub(crate) min_remaining: Vec<i64>,
    /// The operations that can end last: each job's last one (a validated problem has no empty job),
    /// or every operation when some start is fixed (a fixed successor may start before its
    /// predecessor ends). The makespan is the latest end among them.
    pub(crate) last_candidates: Vec<usize>,
    /// A lower bound on the makespan: job lengths, the work each set of machines must do
    /// ([`Inst::machine_set_bound`]) and each machine's one-machine bound
    /// ([`Inst::one_machine_bound`]). It ignores setups and breaks, which only lengthen a schedule,
    /// and fixed starts, which only delay jobs, so it stays valid.
    pub(crate) lower_bound: i64,
}

impl Inst {
    /// Most distinct sets of eligible machines [`Inst::machine_set_bound`] looks at.
    const MACHINE_SETS: usize = 1_024;

    /// The operations that may only run on a set `S` of machines keep those machines busy for at
    /// least their shortest durations, so some machine of `S` works until `⌈work / |S|⌉` at least.
    /// Taken over every distinct set of eligible machines in the shop (the first
    /// [`Inst::MACHINE_SETS`] of them, up to 128 machines) and over all machines. Flexible shops
    /// often reach it while the job and single-machine bounds are far below; without it their
    /// search runs to the time limit at a proven optimum.
    fn machine_set_bound(&self) -> i64 {
        let shortest = |o: usize| self.alt_dur[self.alt_off[o]..self.alt_off[o + 1]].iter().copied().min();
        let total: i64 = (0..self.n_ops).filter_map(shortest).sum();
        let mut bound = if self.n_machines == 0 { 0 } else { ceil_div(total, self.n_machines as i64) };
        if self.n_machines > 128 {
            return bound;
        }
        let ops: Vec<(u128, i64)> = (0..self.n_ops)
            .filter_map(|o| {
                let set = self.alt_machine[self.alt_off[o]..self.alt_off[o + 1]]
                    .iter()
                    .fold(0u128, |set, &m| set | 1 << m);
                Some((set, shortest(o)?))
            })
            .collect();
        let mut sets: Vec<u128> = ops.iter().map(|&(set, _)| set).collect();
        sets.sort_unstable();
        sets.dedup();
        for &set in sets.iter().take(Self::MACHINE_SETS) {
            let work: i64 = ops.iter().filter(|&&(own, _)| own & !set == 0).map(|&(_, d)| d).sum();
            bound = bound.max(ceil_div(work, i64::from(set.count_ones())));
        }
        bound
    }

    /// For each machine, the operations that may only run there, each with the least work its job
    /// must do before it (from the job's release) and after it: no schedule ends before the
    /// preemptive one-machine schedule that always runs the available operation with the longest
    /// work after it (Jackson's preemptive schedule) has delivered its last operation. That value
    /// is the largest `least head + work + least tail` over any subset of the machine's
    /// operations, so it is at least the machine's load, and it proves optimal makespans where the
    /// load alone does not: 57 of the 152 public classic shops against 43 (la02, la07, la27 and
    /// several ta and swv shops among them). Skipped with fixed starts, which may put an operation
    /// before its job predecessors.
    fn one_machine_bound(&self) -> i64 {
        if self.has_fixed {
            return 0;
        }
        let mut on: Vec<Vec<(i64, i64, i64)>> = vec![Vec::new(); self.n_machines];
        for o in 0..self.n_ops {
            let alts = self.alt_off[o]..self.alt_off[o + 1];
            if alts.len() != 1 {
                continue;
            }
            let job = self.job_of[o];
            let first = self.job_start[job];
            let duration = self.alt_dur[alts.start];
            let head = self.release[job] + self.min_remaining[first] - self.min_remaining[o];
            let tail = self.min_remaining[o] - duration;
            on[self.alt_machine[alts.start]].push((head, duration, tail));
        }
        on.iter_mut().map(|ops| jackson_preemptive(ops)).max().unwrap_or(0)
    }

    pub(crate) fn new(problem: &Problem) -> Self {
        let n_jobs = problem.jobs.len();
        let n_machines = problem.machines.len();
        let mut inst = Inst {
            n_ops: 0,
            n_jobs,
            n_machines,
            job_of: Vec::new(),
            job_start: Vec::with_capacity(n_jobs + 1),
            jprev: Vec::new(),
            jnext: Vec::new(),
            alt_off: vec![0],
            alt_machine: Vec::new(),
            alt_dur: Vec::new(),
            family: Vec::new(),
            setup: Vec::new(),
            n_families: Vec::new(),
            initial_family: Vec::new(),
            unavailable: Vec::new(),
            breaks_index: Vec::new(),
            release: Vec::new(),
            due: Vec::new(),
            weight: Vec::new(),
            fixed: Vec::new(),
            fixed_ops: Vec::new(),
            has_setups: false,
            has_unavailable: false,
            has_fixed: false,
            flexible: false,
            min_remaining: Vec::new(),
            last_candidates: Vec::new(),
            lower_bound: 0,
        };
        for (job_idx, job) in problem.jobs.iter().enumerate() {
            inst.job_start.push(inst.job_of.len());
            inst.release.push(job.release);
            inst.due.push(job.due);
            inst.weight.push(job.weight);
            let first = inst.job_of.len();
            for (k, op) in job.operations.iter().enumerate() {
                let o = inst.job_of.len();
                inst.job_of.push(job_idx);
                inst.jprev.push(if k == 0 { NONE } else { o - 1 });
                inst.jnext.push(if k + 1 == job.operations.len() { NONE } else { o + 1 });
                for alt in &op.alternatives {
                    inst.alt_machine.push(alt.machine);
                    inst.alt_dur.push(alt.duration);
                }
                inst.alt_off.push(inst.alt_machine.len());
                inst.flexible |= op.alternatives.len() > 1;
                inst.family.push(op.family);
                inst.fixed.push(op.fixed.map(|f| (f.machine, f.start)));
                inst.has_fixed |= op.fixed.is_some();
            }
            let mut remaining = 0;
            let mut rem = vec![0; job.operations.len()];
            for (k, op) in job.operations.iter().enumerate().rev() {
                remaining += op.alternatives.iter().map(|a| a.duration).min().unwrap_or(0);
                rem[k] = remaining;
            }
            inst.lower_bound = inst.lower_bound.max(job.release + remaining);
            inst.min_remaining.extend(rem);
            debug_assert_eq!(first + job.operations.len(), inst.job_of.len());
        }
        inst.n_ops = inst.job_of.len();
        inst.job_start.push(inst.n_ops);
        inst.fixed_ops = (0..inst.n_ops).filter(|&o| inst.fixed[o].is_some()).collect();
        inst.last_candidates = if inst.has_fixed {
            (0..inst.n_ops).collect()
        } else {
            inst.job_start[1..].iter().map(|&s| s - 1).collect()
        };
        let mut load = vec![0i64; n_machines];
        for o in 0..inst.n_ops {
            if inst.alt_off[o + 1] - inst.alt_off[o] == 1 {
                load[inst.alt_machine[inst.alt_off[o]]] += inst.alt_dur[inst.alt_off[o]];
            }
        }
        inst.lower_bound = inst.lower_bound.max(load.into_iter().max().unwrap_or(0));
        inst.lower_bound = inst.lower_bound.max(inst.machine_set_bound());
        inst.lower_bound = inst.lower_bound.max(inst.one_machine_bound());
        for machine in &problem.machines {
            let n = machine.setup.len();
            inst.has_setups |= n > 0;
            inst.n_families.push(n);
            inst.setup.push(machine.setup.iter().flatten().copied().collect());
            inst.initial_family.push(machine.initial_family);
            let merged = machine.breaks();
            inst.has_unavailable |= !merged.is_empty();
            inst.breaks_index.push(BreakIndex::new(&merged));
            inst.unavailable.push(merged);
        }
        inst
    }

    /// Whether any setup, break or fixed operation makes the shop more than a plain (flexible) job shop.
    #[inline]
    pub(crate) fn has_extensions(&self) -> bool {
        self.has_setups || self.has_unavailable || self.has_fixed
    }

    /// Setup time on `machine` before `to` when `from` (an op, or `NONE` for the machine's start) precedes.
    #[inline(always)]
    pub(crate) fn setup(&self, machine: usize, from: usize, to: usize) -> i64 {
        let n = self.n_families[machine];
        if n == 0 {
            return 0;
        }
        let from_family = if from == NONE {
            match self.initial_family[machine] {
                Some(f) => f,
                None => return 0,
            }
        } else {
            self.family[from]
        };
        self.setup[machine][from_family * n + self.family[to]]
    }

    /// Earliest start `≥ t` such that the window `[start - setup, start + duration)` avoids every
    /// unavailable interval of `machine`.
    #[inline]
    pub(crate) fn fit(&self, machine: usize, mut t: i64, setup: i64, duration: i64) -> i64 {
        let intervals = &self.unavailable[machine];
        if intervals.is_empty() || setup + duration == 0 {
            return t;
        }
        let mut idx = self.breaks_index[machine].first_ending_after(intervals, t - setup);
        while let Some(&(start, end)) = intervals.get(idx) {
            if start < t + duration && t - setup < end {
                t = end + setup;
                idx += 1;
            } else {
                break;
            }
        }
        t
    }

    /// Index of the alternative of `o` on `machine`, if eligible.
    pub(crate) fn alt_on(&self, o: usize, machine: usize) -> Option<usize> {
        (self.alt_off[o]..self.alt_off[o + 1]).find(|&a| self.alt_machine[a] == machine)
    }
}

/// Buckets of time of one machine, each holding the first unavailable interval that ends after the
/// bucket begins. Buckets are a power of two wide, about a quarter of the mean spacing of the
/// intervals, so a lookup scans one or two intervals when they are spread evenly (a calendar), and
/// stays correct (a longer scan) when they are not.
pub(crate) struct BreakIndex {
    origin: i64,
    shift: u32,
    first: Vec<u32>,
}

impl BreakIndex {
    /// Bucket count is bounded by four per interval, plus one.
    pub(crate) fn new(intervals: &[(i64, i64)]) -> BreakIndex {
        let (Some(&(origin, _)), Some(&(_, last_end))) = (intervals.first(), intervals.last()) else {
            return BreakIndex { origin: 0, shift: 0, first: Vec::new() };
        };
        let span = (last_end - origin).max(1) as u64;
        let target = (span / (4 * intervals.len() as u64)).max(1);
        let shift = 63 - target.leading_zeros();
        let buckets = (span >> shift) as usize + 1;
        let mut first = Vec::with_capacity(buckets);
        let mut idx = 0;
        for b in 0..buckets {
            let begin = origin + ((b as i64) << shift);
            while idx < intervals.len() && intervals[idx].1 <= begin {
                idx += 1;
            }
            first.push(idx as u32);
        }
        BreakIndex { origin, shift, first }
    }

    /// Index of the first interval ending after `x`, as `partition_point(|iv| iv.1 <= x)`.
    #[inline]
    pub(crate) fn first_ending_after(&self, intervals: &[(i64, i64)], x: i64) -> usize {
        if x < self.origin || self.first.is_empty() {
            return 0;
        }
        let bucket = (((x - self.origin) as u64) >> self.shift).min(self.first.len() as u64 - 1) as usize;
        let mut idx = self.first[bucket] as usize;
        while idx < intervals.len() && intervals[idx].1 <= x {
            idx += 1;
        }
        idx
    }
}

/// The latest `end + tail` in Jackson's preemptive schedule of `(head, duration, tail)` operations on
/// one machine: whenever the machine is free or an operation becomes available, it runs the
/// available operation with the longest tail. This is the optimum of the preemptive one-machine
/// problem with heads and tails, a lower bound for the non-preemptive one. Sorts `ops` by head.
pub(crate) fn jackson_preemptive(ops: &mut [(i64, i64, i64)]) -> i64 {
    ops.sort_unstable();
    let mut left: Vec<i64> = ops.iter().map(|&(_, duration, _)| duration).collect();
    let mut available = std::collections::BinaryHeap::new();
    let (mut t, mut next, mut bound) = (i64::MIN, 0, i64::MIN);
    while next < ops.len() || !available.is_empty() {
        if available.is_empty() {
            t = t.max(ops[next].0);
        }
        while next < ops.len() && ops[next].0 <= t {
            available.push((ops[next].2, next));
            next += 1;
        }
        let Some(&(tail, k)) = available.peek() else { unreachable!("an operation is available") };
        // Run the longest-tailed operation until it is done or the next one becomes available.
        let until = ops.get(next).map_or(i64::MAX, |op| op.0);
        let run = left[k].min(until.saturating_sub(t));
        t += run;
        left[k] -= run;
        if left[k] == 0 {
            available.pop();
            bound = bound.max(t + tail);
        }
    }
    bound.max(0)
}

/// `⌈a / b⌉` for `a ≥ 0`, `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}
