//! Constructive start: Giffler–Thompson style list scheduling with a few priority rules (most work
//! remaining, shortest processing time, earliest due date / least slack, random). Operations are appended
//! to machines at their earliest feasible start; fixed operations act as reserved slots that the
//! machine "passes" when the next operation would not fit before them.

use super::inst::{Inst, NONE};
use super::rng::Rng;
use super::state::State;

/// Priority rule for choosing among the operations that may start before the earliest completion.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rule {
    MostWorkRemaining,
    ShortestProcessing,
    LeastSlack,
    EarliestCompletion,
    Random,
}

pub(crate) const RULES: [Rule; 5] = [
    Rule::MostWorkRemaining,
    Rule::EarliestCompletion,
    Rule::ShortestProcessing,
    Rule::LeastSlack,
    Rule::Random,
];

struct Builder<'a> {
    inst: &'a Inst,
    free: Vec<i64>,
    last: Vec<usize>,
    /// Fixed ops per machine by start; `next_fixed[m]` indexes the first not yet passed.
    fixed_on: Vec<Vec<usize>>,
    next_fixed: Vec<usize>,
    start: Vec<i64>,
    /// Machine sequences in append order (fixed ops inserted when passed).
    seq: Vec<Vec<usize>>,
}

impl Builder<'_> {
    /// Earliest start of non-fixed `o` on `m` with duration `d`, given the job is ready at `ready`;
    /// returns (start, number of fixed ops passed).
    fn earliest(&self, o: usize, m: usize, d: i64, ready: i64) -> (i64, usize) {
        let inst = self.inst;
        let mut free = self.free[m];
        let mut last = self.last[m];
        let mut passed = 0;
        loop {
            let setup = inst.setup(m, last, o);
            let mut t = ready.max(free + setup);
            if inst.has_unavailable {
                t = inst.fit(m, t, setup, d);
            }
            match self.fixed_on[m].get(self.next_fixed[m] + passed) {
                Some(&f)
                    if t + d + inst.setup(m, o, f) > self.start[f]
                        || inst.fit(m, self.start[f], inst.setup(m, o, f), 0) != self.start[f] =>
                {
                    free = self.start[f] + inst.alt_dur[inst.alt_on(f, m).unwrap_or_default()];
                    last = f;
                    passed += 1;
                }
                _ => return (t, passed),
            }
        }
    }

    fn commit(&mut self, o: usize, m: usize, d: i64, t: i64, passed: usize) {
        for _ in 0..passed {
            let f = self.fixed_on[m][self.next_fixed[m]];
            self.next_fixed[m] += 1;
            self.seq[m].push(f);
            self.free[m] = self.start[f] + self.inst.alt_dur[self.inst.alt_on(f, m).unwrap_or_default()];
            self.last[m] = f;
        }
        self.start[o] = t;
        self.seq[m].push(o);
        self.free[m] = t + d;
        self.last[m] = o;
    }
}

/// A job's best machine for its next op: (completion, machine load, alt, start, fixed ops passed).
type Pick = (i64, i64, usize, i64, usize);

/// Steps of a construction between two looks at `give_up`.
const GIVE_UP_EVERY: usize = 256;

/// Builds one schedule with `rule` and returns it as an undecoded state; `None` when `give_up`
/// said so (it is asked every [`GIVE_UP_EVERY`] steps: on an order book of 10,000 orders a
/// construction takes seconds).
pub(crate) fn build(
    inst: &Inst,
    rule: Rule,
    rng: &mut Rng,
    give_up: Option<&dyn Fn() -> bool>,
) -> Option<State> {
    let n = inst.n_ops;
    let mut mach = vec![0; n];
    let mut dur = vec![0; n];
    let mut b = Builder {
        inst,
        free: vec![0; inst.n_machines],
        last: vec![NONE; inst.n_machines],
        fixed_on: vec![Vec::new(); inst.n_machines],
        next_fixed: vec![0; inst.n_machines],
        start: vec![0; n],
        seq: vec![Vec::new(); inst.n_machines],
    };
    for o in 0..n {
        if let Some((m, s)) = inst.fixed[o] {
            mach[o] = m;
            dur[o] = inst.alt_dur[inst.alt_on(o, m).unwrap_or_default()];
            b.start[o] = s;
            b.fixed_on[m].push(o);
        }
    }
    for list in &mut b.fixed_on {
        list.sort_by_key(|&f| b.start[f]);
    }
    // Next unscheduled op per job and when the job is ready for it.
    let mut next: Vec<usize> = (0..inst.n_jobs).map(|j| inst.job_start[j]).collect();
    let mut ready: Vec<i64> = inst.release.clone();
    let skip_fixed = |next: &mut Vec<usize>, ready: &mut Vec<i64>, j: usize, b: &Builder<'_>, dur: &[i64]| {
        while next[j] < inst.job_start[j + 1] && inst.fixed[next[j]].is_some() {
            let f = next[j];
            ready[j] = ready[j].max(b.start[f] + dur[f]);
            next[j] += 1;
        }
    };
    for j in 0..inst.n_jobs {
        skip_fixed(&mut next, &mut ready, j, &b, &dur);
    }
    let noise: Vec<f64> = (0..inst.n_jobs).map(|_| rng.unit()).collect();
    // Best machine for the job's next op `o`: earliest completion, then lowest machine load, as
    // (completion, load, alt, start, fixed ops passed).
    let evaluate = |o: usize, ready: i64, b: &Builder<'_>| {
        let mut pick = (i64::MAX, i64::MAX, 0, 0, 0);
        for a in inst.alt_off[o]..inst.alt_off[o + 1] {
            let m = inst.alt_machine[a];
            let (t, passed) = b.earliest(o, m, inst.alt_dur[a], ready);
            let key = (t + inst.alt_dur[a], b.free[m]);
            if (key.0, key.1) < (pick.0, pick.1) {
                pick = (key.0, key.1, a, t, passed);
            }
        }
        pick
    };
    // Each job's pick depends only on its next op and the state of that op's machines, so after a
    // commit only the jobs waiting on that machine (`(job, op)` pairs; stale ones are skipped) and
    // the job itself are evaluated again: a step is a scan, not a search per job and machine.
    let mut picks: Vec<Option<Pick>> = vec![None; inst.n_jobs];
    let mut waiting: Vec<Vec<(usize, usize)>> = vec![Vec::new(); inst.n_machines];
    let enter = |j: usize,
                 o: usize,
                 picks: &mut [Option<_>],
                 waiting: &mut [Vec<(usize, usize)>],
                 b: &Builder<'_>,
                 ready: i64| {
        if o >= inst.job_start[j + 1] {
            picks[j] = None;
            return;
        }
        picks[j] = Some(evaluate(o, ready, b));
        for a in inst.alt_off[o]..inst.alt_off[o + 1] {
            waiting[inst.alt_machine[a]].push((j, o));
        }
    };
    for j in 0..inst.n_jobs {
        enter(j, next[j], &mut picks, &mut waiting, &b, ready[j]);
    }
    // (job, alt, start, passed) candidates of the current step.
    let mut cands: Vec<(usize, usize, i64, usize)> = Vec::with_capacity(inst.n_jobs);
    for step in 0.. {
        if step % GIVE_UP_EVERY == GIVE_UP_EVERY - 1 && give_up.is_some_and(|give_up| give_up()) {
            return None;
        }
        cands.clear();
        let mut best_completion = i64::MAX;
        for (j, pick) in picks.iter().enumerate() {
            let Some(pick) = pick else { continue };
            best_completion = best_completion.min(pick.0);
            cands.push((j, pick.2, pick.3, pick.4));
        }
        if cands.is_empty() {
            break;
        }
        let mut chosen = 0;
        let mut chosen_key = f64::INFINITY;
        for (idx, &(j, a, t, _)) in cands.iter().enumerate() {
            if t >= best_completion && !matches!(rule, Rule::EarliestCompletion) {
                continue;
            }
            let o = next[j];
            let d = inst.alt_dur[a] as f64;
            let key = match rule {
                Rule::MostWorkRemaining => -(inst.min_remaining[o] as f64) + noise[j] * 0.5,
                Rule::ShortestProcessing => d + noise[j] * 0.5,
                Rule::EarliestCompletion => (t as f64 + d) * 1e6 - inst.min_remaining[o] as f64,
                Rule::LeastSlack => {
                    let due = inst.due[j].unwrap_or(i64::MAX / 4) as f64;
                    (due - t as f64 - inst.min_remaining[o] as f64) / (inst.weight[j].max(1) as f64)
                }
                Rule::Random => rng.unit(),
            };
            if key < chosen_key {
                chosen_key = key;
                chosen = idx;
            }
        }
        let (j, a, t, passed) = cands[chosen];
        let o = next[j];
        let m = inst.alt_machine[a];
        mach[o] = m;
        dur[o] = inst.alt_dur[a];
        b.commit(o, m, dur[o], t, passed);
        ready[j] = t + dur[o];
        next[j] += 1;
        skip_fixed(&mut next, &mut ready, j, &b, &dur);
        let mut entries = std::mem::take(&mut waiting[m]);
        entries.retain(|&(other, op)| next[other] == op && other != j);
        for &(other, op) in &entries {
            picks[other] = Some(evaluate(op, ready[other], &b));
        }
        waiting[m] = entries;
        enter(j, next[j], &mut picks, &mut waiting, &b, ready[j]);
    }
    let mut seq = std::mem::take(&mut b.seq);
    for (m, s) in seq.iter_mut().enumerate() {
        s.extend_from_slice(&b.fixed_on[m][b.next_fixed[m]..]);
    }
    Some(State::new(inst, mach, dur, seq))
}
