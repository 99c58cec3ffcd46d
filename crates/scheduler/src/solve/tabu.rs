//! The tabu search on the disjunctive graph. Makespan: critical-block neighbourhood in the spirit of
//! Zhang et al.'s N7 (move an operation of a critical block to the block's front or back, or the first/last
//! operation into the block) plus, for flexible problems, Mastrolilli–Gambardella style reassignment of a
//! critical operation to its best estimated position on another eligible machine. Moves are ranked by the
//! head/tail estimate of the longest path through the changed operations; the chosen one is applied and
//! the schedule decoded exactly. Tardiness objectives use the same moves on the critical paths of tardy
//! jobs, evaluated exactly; so does the makespan of a shop with breaks, which the estimate ignores.
//! Around the tabu search, a small population of solutions is recombined by path relinking (see
//! [`search`]). Under makespan, fewer critical operations at an equal makespan count as
//! progress, which gives the search a direction on plateaus (see `Search::run`).

use std::time::Duration;

use super::construct::{RULES, Rule, build};
use super::inst::{Inst, NONE};
use super::rng::Rng;
use super::state::{Snapshot, State};
use super::{Clock, Objective, Score};

/// Limits and goal of one search.
#[derive(Clone)]
pub(crate) struct Params<'a> {
    pub(crate) objective: Objective,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) iteration_limit: Option<u64>,
    pub(crate) clock: &'a dyn Clock,
    /// Iterations without improvement before restarting from an elite solution.
    pub(crate) stall_limit: u64,
    /// The least share of the differing operations a relink moves (see [`RELINK_SHARE_MIN`]).
    pub(crate) relink_least_share: f64,
    /// A warm start, see `Config::initial`.
    pub(crate) initial: Option<&'a [crate::ScheduledOperation]>,
    /// Another thread has the warm start, so this one may end without a schedule when the time
    /// runs out before its first construction is finished.
    pub(crate) warm_elsewhere: bool,
    /// When the solve began on `clock`.
    pub(crate) began: Duration,
    /// See `Config::on_improvement`.
    pub(crate) on_improvement: Option<&'a (dyn Fn(super::Improvement) + Send + Sync)>,
}

/// Result of one search.
pub(crate) struct Outcome {
    pub(crate) best: Snapshot,
    pub(crate) score: Score,
    pub(crate) iterations: u64,
    pub(crate) time_to_best: Duration,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Move {
    /// Move the op at `from` of machine `m` so it ends at position `to`.
    Shift { m: usize, from: usize, to: usize },
    /// Move op `o` to alternative `alt` at position `p` of that machine.
    Reassign { o: usize, alt: usize, p: usize },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) mv: Move,
    pub(crate) estimate: i64,
    pub(crate) tabu: bool,
}

/// Tabu expiry per (operation, job) pair. A dense table while it stays small (every benchmark
/// instance: at most a few megabytes), a map of the pairs actually marked for the large problems
/// of production planning, where operations × jobs would take hundreds of megabytes.
enum TabuPairs {
    Dense { until: Vec<u64>, n_jobs: usize },
    Sparse { until: std::collections::HashMap<u64, u64>, n_jobs: u64 },
}

/// Largest dense table, in entries (32 MiB).
const DENSE_PAIRS: usize = 4 << 20;
/// A sparse table is pruned of expired entries when it grows past this.
const SPARSE_PRUNE: usize = 1 << 16;

impl TabuPairs {
    fn new(n_ops: usize, n_jobs: usize) -> TabuPairs {
        match n_ops.checked_mul(n_jobs) {
            Some(entries) if entries <= DENSE_PAIRS => TabuPairs::Dense { until: vec![0; entries], n_jobs },
            _ => TabuPairs::Sparse { until: std::collections::HashMap::new(), n_jobs: n_jobs as u64 },
        }
    }

    #[inline]
    fn get(&self, op: usize, job: usize) -> u64 {
        match self {
            TabuPairs::Dense { until, n_jobs } => until[op * n_jobs + job],
            TabuPairs::Sparse { until, n_jobs } => {
                until.get(&(op as u64 * n_jobs + job as u64)).copied().unwrap_or(0)
            }
        }
    }

    /// Marks the pair tabu until iteration `until`; `now` lets the sparse table drop what expired.
    fn set(&mut self, op: usize, job: usize, until: u64, now: u64) {
        match self {
            TabuPairs::Dense { until: table, n_jobs } => table[op * *n_jobs + job] = until,
            TabuPairs::Sparse { until: table, n_jobs } => {
                if table.len() >= SPARSE_PRUNE {
                    table.retain(|_, expiry| *expiry > now);
                }
                table.insert(op as u64 * *n_jobs + job as u64, until);
            }
        }
    }

    fn clear(&mut self) {
        match self {
            TabuPairs::Dense { until, .. } => until.fill(0),
            TabuPairs::Sparse { until, .. } => until.clear(),
        }
    }
}

/// Base tenure of every second restarted population, in percent of the usual one. Some shops (la29)
/// leave their plateau only with a shorter tenure, while a shorter tenure throughout, or one drawn per
/// run, loses on the large ones (measured in BENCHMARKS.md, "la29 and the tabu tenure").
const SHORT_TENURE_PERCENT: u64 = 55;

/// Base tabu tenure of the population started after `restarts` restarts (see [`Epoch`]): the usual
/// one, shortened for every second restarted population. Each tabu entry then lasts between the
/// base and half as long again ([`Search::tenure`]).
pub(crate) fn population_tenure(inst: &Inst, restarts: u64) -> u64 {
    let usual = 10 + (inst.n_jobs / inst.n_machines.max(1)) as u64;
    if restarts % 2 == 1 { usual * SHORT_TENURE_PERCENT / 100 } else { usual }
}

/// Operations at the end of a late job's critical path whose moves the tardiness search probes.
/// Moves further upstream shift most of the schedule after them: they cost the most to probe and
/// rarely pay. On three generated 500-order factories keeping 20 doubled the iterations and
/// lowered the weighted tardiness by 1.5 % (cold search, 4 seeds; the planner likewise), though
/// not on every factory (BENCHMARKS.md, "Planning a generated high-mix factory").
const TARDY_PATH_TAIL: usize = 20;

/// Moves probed per tardiness iteration, sampled from the candidates. Fewer probes buy more
/// iterations: on the generated factories 64 → 16 lowered the weighted tardiness by 7 % (cold
/// search, 4 seeds; 8 was worse again), the planner's by 1–4 % (BENCHMARKS.md).
const TARDY_PROBES: usize = 16;

/// Iterations at the start of a search, and of each restarted population, that keep the usual
/// tenure. Shortened from the start, the tenure rushed some shops (swv11, 50 × 10) into a schedule
/// that no later run improved on (3,068 after 0.4 s against 3,020 after 9 s with the usual tenure).
const REACTIVE_WARM_UP: u64 = 100_000;
/// A schedule seen again within this many iterations counts as a repetition (the search cycles).
const REPEAT_WINDOW: u64 = 1_000;
/// Iterations without a repetition after which the tenure shrinks a step.
const CALM_WINDOW: u64 = 200;
/// Lowest and highest tenure factor, and the steps up on a repetition and down when calm.
const FACTOR_MIN: f64 = 0.3;
const FACTOR_MAX: f64 = 3.0;
const FACTOR_GROW: f64 = 1.1;
const FACTOR_SHRINK: f64 = 0.9;
/// The tenure never shrinks below this share of the mean number of candidate moves (nor above the
/// usual tenure through it): a large neighbourhood needs a long tenure to keep from cycling
/// (swv11–15, about 50 candidates per iteration, lose badly with a short one), a small one
/// (la29, ft10, ta01–10: 16–25) gains.
const FLOOR_PER_CANDIDATE: f64 = 0.3;
/// Slots of the table of recently seen schedules (a power of two).
const RECENT_SLOTS: usize = 1 << 14;

/// Reactive tabu tenure, after Battiti and Tecchiolli's reactive tabu search: the tenure grows when
/// the search comes back to a schedule it saw shortly before, and shrinks while it does not, within
/// [`FACTOR_MIN`]..[`FACTOR_MAX`] of the usual tenure and never below [`FLOOR_PER_CANDIDATE`] of the
/// neighbourhood's size. Schedules are recognised by a hash of their machine sequences, kept up to
/// date move by move. Used under makespan (the estimate-driven search); measured in BENCHMARKS.md,
/// "Reactive tabu tenure".
///
/// A restarted population starts the reaction afresh ([`Reactive::restart`]): carried over, the
/// factor learnt by the populations before held the new one near the floor from its first
/// iteration, which cost 60 s searches on ta41–50 1.08 → 1.21 % (BENCHMARKS.md, "The reactive
/// tenure restarts with each population").
struct Reactive {
    /// XOR over all machines of a key per pair of neighbours (and per machine's first operation).
    hash: u64,
    /// Direct-mapped table of (hash, iteration) of recently seen schedules.
    recent: Vec<(u64, u64)>,
    factor: f64,
    last_change: u64,
    candidates: u64,
    iterations: u64,
    /// Iteration at which the current warm-up started.
    warm_from: u64,
}

impl Reactive {
    fn new() -> Reactive {
        Reactive {
            hash: 0,
            recent: vec![(0, 0); RECENT_SLOTS],
            factor: 1.0,
            last_change: 0,
            candidates: 0,
            iterations: 0,
            warm_from: 0,
        }
    }

    /// Forgets what the tenure learnt (factor, neighbourhood size) and warms up again from
    /// iteration `iter`: a new population is a new search.
    fn restart(&mut self, iter: u64) {
        self.factor = 1.0;
        self.candidates = 0;
        self.iterations = 0;
        self.warm_from = iter;
    }

    /// Forgets the schedules seen so far and hashes `state` afresh (a run starts from a new state).
    fn start_run(&mut self, state: &State) {
        self.hash = sequences_hash(state);
        self.recent.fill((0, 0));
    }

    /// Counts one iteration's candidate moves.
    fn count_candidates(&mut self, n: usize) {
        self.candidates += n as u64;
        self.iterations += 1;
    }

    /// Notes the schedule reached at iteration `iter` and adapts the factor.
    fn observe(&mut self, iter: u64) {
        let slot = &mut self.recent[(self.hash >> (64 - RECENT_SLOTS.trailing_zeros())) as usize];
        let seen = *slot;
        *slot = (self.hash, iter);
        if seen.0 == self.hash && iter - seen.1 <= REPEAT_WINDOW {
            self.factor = (self.factor * FACTOR_GROW).min(FACTOR_MAX);
            self.last_change = iter;
        } else if iter - self.last_change > CALM_WINDOW {
            self.factor = (self.factor * FACTOR_SHRINK).max(FACTOR_MIN);
            self.last_change = iter;
        }
    }

    /// The base tenure at iteration `iter` given the usual one.
    fn base(&self, usual: u64, iter: u64) -> u64 {
        if iter - self.warm_from < REACTIVE_WARM_UP || self.iterations == 0 {
            return usual;
        }
        let scaled = ((usual as f64 * self.factor).round() as u64).max(1);
        let mean_candidates = self.candidates as f64 / self.iterations as f64;
        let floor = ((FLOOR_PER_CANDIDATE * mean_candidates).round() as u64).min(usual);
        scaled.max(floor)
    }
}

/// A hash key for "`b` follows `a` on a machine" (`a` may be a machine's start marker).
fn neighbour_key(a: usize, b: usize) -> u64 {
    super::rng::mix(((a as u64) << 32 ^ b as u64).wrapping_add(0x9E37_79B9_7F4A_7C15))
}

/// XOR of the neighbour keys of the operations at positions `from..to` of machine `m` (each with
/// the one before it, or with the machine's start marker).
fn sequence_hash(state: &State, m: usize, from: usize, to: usize) -> u64 {
    let s = &state.seq[m];
    let mut hash = 0;
    for p in from..to.min(s.len()) {
        let before = if p == 0 { (1 << 31) + m } else { s[p - 1] };
        hash ^= neighbour_key(before, s[p]);
    }
    hash
}

/// The hash of all machine sequences of `state`.
pub(crate) fn sequences_hash(state: &State) -> u64 {
    (0..state.seq.len()).fold(0, |hash, m| hash ^ sequence_hash(state, m, 0, usize::MAX))
}

/// Searcher state reused across iterations (no allocation in the loop once warmed up).
pub(crate) struct Search<'a> {
    pub(crate) inst: &'a Inst,
    pub(crate) state: State,
    pub(crate) rng: Rng,
    /// Iteration until which "a before b" (same machine) is tabu, by `a` and `b`'s job.
    tabu_pair: TabuPairs,
    /// Per alternative: iteration until which reassigning to it is tabu.
    tabu_alt: Vec<u64>,
    pub(crate) iter: u64,
    base_tenure: u64,
    /// Reactive tenure, when enabled ([`Search::react`]).
    reactive: Option<Reactive>,
    pub(crate) cands: Vec<Candidate>,
    path: Vec<usize>,
    order: Vec<usize>,
    heads: Vec<i64>,
    /// Exact scores of the candidates, by [`Search::probe_candidates`].
    scores: Vec<Score>,
    /// Per machine, its sequence's times in order ([`Slot`]), for the reassignment moves.
    lanes: Vec<Vec<Slot>>,
    /// Whether a machine's lane is up to date within the current [`Search::add_path_moves`].
    lanes_built: Vec<bool>,
}

/// The times of the operation at one position of a machine's sequence, laid out side by side so
/// that [`best_insert`] reads a machine's sequence in order instead of through the operation
/// indices: on multi-purpose shops most of an iteration goes into that scan.
#[derive(Clone, Copy)]
struct Slot {
    start: i64,
    end: i64,
    /// Duration and tail: the longest path from the start of the operation to the sink.
    rest: i64,
}

impl<'a> Search<'a> {
    pub(crate) fn new(inst: &'a Inst, state: State, seed: u64) -> Self {
        let n_alts = inst.alt_machine.len();
        Search {
            inst,
            state,
            rng: Rng::new(seed),
            tabu_pair: TabuPairs::new(inst.n_ops, inst.n_jobs),
            tabu_alt: vec![0; n_alts],
            iter: 1,
            base_tenure: population_tenure(inst, 0),
            reactive: None,
            cands: Vec::new(),
            path: Vec::new(),
            order: Vec::new(),
            heads: Vec::new(),
            scores: Vec::new(),
            lanes: vec![Vec::new(); inst.n_machines],
            lanes_built: vec![false; inst.n_machines],
        }
    }

    fn clear_tabu(&mut self) {
        self.tabu_pair.clear();
        self.tabu_alt.fill(0);
    }

    /// Makes the tabu tenure reactive (see [`Reactive`]).
    pub(crate) fn react(&mut self) {
        self.reactive = Some(Reactive::new());
    }

    /// The incrementally kept hash of the machine sequences, when the tenure is reactive.
    #[cfg(test)]
    pub(crate) fn sequences_hash(&self) -> Option<u64> {
        self.reactive.as_ref().map(|r| r.hash)
    }

    fn tenure(&mut self) -> u64 {
        let base = self.reactive.as_ref().map_or(self.base_tenure, |r| r.base(self.base_tenure, self.iter));
        base + self.rng.below(base as usize / 2 + 1) as u64
    }

    /// The op ending last (random among ties), among `Inst::last_candidates`.
    fn last_op(&mut self) -> usize {
        let mut chosen = NONE;
        let mut seen = 0;
        for &o in &self.inst.last_candidates {
            if self.state.end(o) == self.state.makespan {
                seen += 1;
                if self.rng.below(seen) == 0 {
                    chosen = o;
                }
            }
        }
        chosen
    }

    /// Adds the critical-block and reassignment moves around the critical path in `self.path`.
    /// With `estimate`, candidates get the head/tail estimate; otherwise 0.
    pub(crate) fn add_path_moves(&mut self, estimate: bool) {
        let inst = self.inst;
        let st = &self.state;
        let path = &self.path;
        let mut i = 0;
        while i < path.len() {
            // Block: maximal run of consecutive ops on one machine linked by machine arcs.
            let m = st.mach[path[i]];
            let mut j = i;
            while j + 1 < path.len()
                && st.mach[path[j + 1]] == m
                && st.pos[path[j + 1]] == st.pos[path[j]] + 1
            {
                j += 1;
            }
            if j > i {
                let lo = st.pos[path[i]];
                let hi = st.pos[path[j]];
                let mut push = |from: usize, to: usize| {
                    if from != to {
                        self.cands.push(Candidate {
                            mv: Move::Shift { m, from, to },
                            estimate: 0,
                            tabu: false,
                        });
                    }
                };
                // Every operation to the block's front and to its back, and the front and the back
                // operation into the block (N7). Each swap of neighbours at the block's ends comes up
                // twice (the second to the front is the first to the second place). Classic shops
                // list it once: a third fewer estimates on Taillard shops, +30 % iterations. Flexible
                // shops keep both entries, which double the swap's weight in the tie-break against
                // reassignments; without them eight hard flexible shops measured worse (BENCHMARKS).
                let skip_swaps = !inst.flexible;
                for p in lo + 1..=hi {
                    push(p, lo);
                }
                for p in lo..hi {
                    if !(skip_swaps && p == lo && hi == lo + 1) {
                        push(p, hi);
                    }
                }
                for p in lo + 1..hi {
                    if !(skip_swaps && p == lo + 1) {
                        push(lo, p);
                    }
                    if !(skip_swaps && p + 1 == hi) {
                        push(hi, p);
                    }
                }
            }
            i = j + 1;
        }
        if inst.flexible {
            // Each call lays out afresh the machines it inserts into, once.
            self.lanes_built.fill(false);
            for &o in path {
                if inst.fixed[o].is_some() {
                    continue;
                }
                for alt in inst.alt_off[o]..inst.alt_off[o + 1] {
                    let m2 = inst.alt_machine[alt];
                    if m2 == st.mach[o] {
                        continue;
                    }
                    let lane = &mut self.lanes[m2];
                    if !self.lanes_built[m2] {
                        self.lanes_built[m2] = true;
                        lane.clear();
                        lane.extend(st.seq[m2].iter().map(|&x| Slot {
                            start: st.start[x],
                            end: st.end(x),
                            rest: st.dur[x] + st.tail[x],
                        }));
                    }
                    if let Some((p, est)) = best_insert(inst, st, lane, o, m2, inst.alt_dur[alt]) {
                        self.cands.push(Candidate {
                            mv: Move::Reassign { o, alt, p },
                            estimate: est,
                            tabu: false,
                        });
                    }
                }
            }
        }
        let _ = estimate;
    }

    /// Fills estimates and tabu flags of shift candidates from index `first` on; drops unsafe shifts.
    pub(crate) fn evaluate_candidates(&mut self, first: usize, estimate: bool) {
        let inst = self.inst;
        let mut keep = first;
        for idx in first..self.cands.len() {
            let mut cand = self.cands[idx];
            match cand.mv {
                Move::Shift { m, from, to } => {
                    let s = &self.state.seq[m];
                    let (u, v) = (s[from], s[to]);
                    if inst.fixed[u].is_some() || !shift_is_safe(inst, &self.state, u, v, from < to) {
                        continue;
                    }
                    let (lo, hi) = (from.min(to), from.max(to));
                    self.order.clear();
                    if from < to {
                        self.order.extend_from_slice(&s[lo + 1..=hi]);
                        self.order.push(u);
                    } else {
                        self.order.push(u);
                        self.order.extend_from_slice(&s[lo..hi]);
                    }
                    if estimate {
                        if self.heads.len() < self.order.len() {
                            self.heads.resize(self.order.len(), 0);
                        }
                        cand.estimate =
                            self.state.estimate_segment(inst, m, lo, hi, &self.order, &mut self.heads);
                    }
                    let ju = inst.job_of[u];
                    cand.tabu = if from < to {
                        s[lo + 1..=hi].iter().any(|&x| self.tabu_pair.get(x, ju) > self.iter)
                    } else {
                        s[lo..hi].iter().any(|&x| self.tabu_pair.get(u, inst.job_of[x]) > self.iter)
                    };
                }
                Move::Reassign { alt, .. } => {
                    cand.tabu = self.tabu_alt[alt] > self.iter;
                }
            }
            self.cands[keep] = cand;
            keep += 1;
        }
        self.cands.truncate(keep);
    }

    /// Applies a move and records its tabu attributes.
    pub(crate) fn apply(&mut self, mv: Move, record: bool) {
        let inst = self.inst;
        let tenure = if record { self.tenure() } else { 0 };
        let until = self.iter + tenure;
        match mv {
            Move::Shift { m, from, to } => {
                if record {
                    let s = &self.state.seq[m];
                    let u = s[from];
                    // Only the arc between `u` and its old neighbour in the direction of the move becomes
                    // tabu (Nowicki–Smutnicki's attribute); marking every passed pair measured worse.
                    if from < to {
                        self.tabu_pair.set(u, inst.job_of[s[from + 1]], until, self.iter);
                    } else {
                        self.tabu_pair.set(s[from - 1], inst.job_of[u], until, self.iter);
                    }
                }
                // The pairs that change: those ending at the positions `lo..=hi + 1`.
                let (lo, end) = (from.min(to), from.max(to) + 2);
                if let Some(r) = &mut self.reactive {
                    r.hash ^= sequence_hash(&self.state, m, lo, end);
                }
                self.state.shift(m, from, to);
                if let Some(r) = &mut self.reactive {
                    r.hash ^= sequence_hash(&self.state, m, lo, end);
                }
            }
            Move::Reassign { o, alt, p } => {
                if record && let Some(old_alt) = inst.alt_on(o, self.state.mach[o]) {
                    self.tabu_alt[old_alt] = until;
                }
                // The pairs that change: on the old machine those ending at `o` and at its
                // successor (then only the successor's), on the new one the pair ending at
                // position `p` (then those ending at `o` and at its new successor).
                let (m1, m2, q) = (self.state.mach[o], inst.alt_machine[alt], self.state.pos[o]);
                debug_assert_ne!(m1, m2, "a reassignment changes the machine");
                if let Some(r) = &mut self.reactive {
                    r.hash ^=
                        sequence_hash(&self.state, m1, q, q + 2) ^ sequence_hash(&self.state, m2, p, p + 1);
                }
                self.state.reassign(inst, o, alt, p);
                if let Some(r) = &mut self.reactive {
                    r.hash ^=
                        sequence_hash(&self.state, m1, q, q + 1) ^ sequence_hash(&self.state, m2, p, p + 2);
                }
            }
        }
    }

    /// The inverse of `mv` as applied to the current state (valid right after `apply`).
    pub(crate) fn inverse(&self, mv: Move, old_mach: usize, old_pos: usize) -> Move {
        match mv {
            Move::Shift { m, from, to } => Move::Shift { m, from: to, to: from },
            Move::Reassign { o, .. } => {
                let alt = self.inst.alt_on(o, old_mach).unwrap_or_default();
                Move::Reassign { o, alt, p: old_pos }
            }
        }
    }

    /// Picks the best admissible candidate: lowest estimate among non-tabu ones or tabu ones that beat
    /// `aspiration`; random tie-break; a random candidate when everything is tabu.
    pub(crate) fn pick(&mut self, aspiration: i64) -> Option<usize> {
        let mut best = None;
        let mut best_est = i64::MAX;
        let mut ties = 0;
        for (idx, cand) in self.cands.iter().enumerate() {
            if cand.estimate == i64::MAX || (cand.tabu && cand.estimate >= aspiration) {
                continue;
            }
            if cand.estimate < best_est {
                best_est = cand.estimate;
                best = Some(idx);
                ties = 1;
            } else if cand.estimate == best_est {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = Some(idx);
                }
            }
        }
        if best.is_none() {
            let open: usize = self.cands.iter().filter(|c| c.estimate != i64::MAX).count();
            if open > 0 {
                let mut k = self.rng.below(open);
                for (idx, cand) in self.cands.iter().enumerate() {
                    if cand.estimate != i64::MAX {
                        if k == 0 {
                            return Some(idx);
                        }
                        k -= 1;
                    }
                }
            }
        }
        best
    }

    /// Applies `mv`, decodes; on a cycle undoes it and returns false.
    pub(crate) fn try_apply(&mut self, mv: Move, record: bool) -> bool {
        let (old_mach, old_pos) = match mv {
            Move::Reassign { o, .. } => (self.state.mach[o], self.state.pos[o]),
            Move::Shift { .. } => (0, 0),
        };
        let (r0, r1) = self.affected_ranks(mv);
        self.apply(mv, record);
        if self.state.decode_from(self.inst, r0, r1) {
            #[cfg(debug_assertions)]
            {
                let mut full = self.state.clone();
                assert!(full.decode(self.inst));
                assert_eq!(
                    (&full.start, &full.tail, full.makespan),
                    (&self.state.start, &self.state.tail, self.state.makespan)
                );
                assert_eq!((full.penalty, full.tardiness), (self.state.penalty, self.state.tardiness));
            }
            return true;
        }
        let back = self.inverse(mv, old_mach, old_pos);
        self.apply(back, false);
        let ok = self.state.decode(self.inst);
        debug_assert!(ok, "undo restores an acyclic state");
        false
    }

    /// The operations that `mv` (not yet applied) gives a new machine predecessor: the one after
    /// the moved segment, or the moved operation's old and new machine successors (`NONE` where
    /// there is none). Operations inside the segment are covered by the move's window.
    pub(crate) fn new_predecessor_targets(&self, mv: Move) -> [usize; 3] {
        let st = &self.state;
        match mv {
            Move::Shift { m, from, to } => {
                let hi = from.max(to);
                [st.seq[m].get(hi + 1).copied().unwrap_or(NONE), NONE, NONE]
            }
            Move::Reassign { o, alt, p } => {
                let s2 = &st.seq[self.inst.alt_machine[alt]];
                [st.mn[o], o, s2.get(p).copied().unwrap_or(NONE)]
            }
        }
    }

    /// Topological ranks bounding what `mv` can change (see [`State::decode_from`]): the lowest rank
    /// among targets of new or changed arcs and the highest among their sources.
    pub(crate) fn affected_ranks(&self, mv: Move) -> (usize, usize) {
        let st = &self.state;
        let rank = |o: usize| if o == NONE { None } else { Some(st.rank[o]) };
        match mv {
            Move::Shift { m, from, to } => {
                let (lo, hi) = (from.min(to), from.max(to));
                let segment = &st.seq[m][lo..=hi];
                // The operations around the segment gain a new machine successor (before) and
                // predecessor (after). Without fixed operations they rank below and above the whole
                // segment; arcs into a fixed operation are not in the graph, so then they may not.
                let before = if lo > 0 { rank(st.seq[m][lo - 1]) } else { None };
                let after = st.seq[m].get(hi + 1).and_then(|&o| rank(o));
                let ranks = segment.iter().map(|&o| st.rank[o]);
                let r0 = ranks.clone().chain(after).min().unwrap_or(0);
                let r1 = ranks.chain(before).max().unwrap_or(usize::MAX);
                (r0, r1)
            }
            Move::Reassign { o, alt, p } => {
                let s2 = &st.seq[self.inst.alt_machine[alt]];
                let new_prev = if p > 0 { s2[p - 1] } else { NONE };
                let new_next = s2.get(p).copied().unwrap_or(NONE);
                let targets = [st.mn[o], o, new_next];
                let sources = [st.mp[o], o, new_prev];
                let r0 = targets.iter().filter_map(|&x| rank(x)).min().unwrap_or(0);
                let r1 = sources.iter().filter_map(|&x| rank(x)).max().unwrap_or(usize::MAX);
                (r0, r1)
            }
        }
    }

    /// Collects a critical path to the last op into `self.path`. In classic shops it turns to the
    /// job predecessor at random where both predecessors are tight, instead of always keeping to
    /// the machine: the search then also sees the shorter blocks of the other critical paths through
    /// a plateau. On 30 hard classic shops this took the mean gap from 0.90 to 0.85 %, on 56
    /// Taillard and swv shops from 0.89 to 0.82 % (swv14 optimal in both seeds); flexible shops,
    /// where the path also chooses the operations to reassign, measured worse (0.64 → 0.70 %,
    /// BENCHMARKS.md, "Random turns on the critical path").
    pub(crate) fn makespan_path(&mut self) {
        let last = self.last_op();
        let random = !self.inst.flexible;
        let rng = &mut self.rng;
        self.state.critical_path_to(self.inst, last, &mut self.path, || !random || rng.below(2) == 0);
    }

    /// One makespan iteration; false when no move exists.
    fn step_makespan(&mut self, best_makespan: i64) -> bool {
        self.cands.clear();
        self.makespan_path();
        self.add_path_moves(true);
        self.evaluate_candidates(0, true);
        if let Some(r) = &mut self.reactive {
            r.count_candidates(self.cands.len());
        }
        for _ in 0..4 {
            let Some(idx) = self.pick(best_makespan) else { return false };
            let mv = self.cands[idx].mv;
            if self.try_apply(mv, true) {
                return true;
            }
            self.cands[idx].estimate = i64::MAX;
        }
        false
    }

    /// One makespan iteration, for the bench harness.
    pub(crate) fn bench_step(&mut self, best_makespan: i64) -> bool {
        self.step_makespan(best_makespan)
    }

    /// Fills `self.scores` with the exact score after each candidate move ([`Score::WORST`] where
    /// it closes a cycle); returns how many.
    pub(crate) fn probe_candidates(&mut self, objective: Objective) -> usize {
        let inst = self.inst;
        self.scores.clear();
        for idx in 0..self.cands.len() {
            let mv = self.cands[idx].mv;
            let (old_mach, old_pos) = match mv {
                Move::Reassign { o, .. } => (self.state.mach[o], self.state.pos[o]),
                Move::Shift { .. } => (0, 0),
            };
            let window = self.affected_ranks(mv);
            let targets = self.new_predecessor_targets(mv);
            self.apply(mv, false);
            let score = self.state.probe(inst, window, &targets, objective).unwrap_or(Score::WORST);
            #[cfg(debug_assertions)]
            {
                let mut full = self.state.clone();
                let exact = if full.decode(inst) { full.score(objective) } else { Score::WORST };
                assert_eq!(score, exact, "probe of {mv:?}");
            }
            self.scores.push(score);
            let back = self.inverse(mv, old_mach, old_pos);
            self.apply(back, false);
        }
        self.scores.len()
    }

    /// One iteration for tardiness objectives, and for the makespan of shops with breaks: moves on
    /// the critical paths of (up to a few) tardy jobs, or on the makespan's critical path, evaluated
    /// exactly by [`State::probe`]. Makespan with breaks: on three generated factories (seeds 0
    /// and 1, 10 s) the estimate-driven search ended at 758.0 h on average and this one at
    /// 751.1 h; both find their best within a few seconds, as the calendar dominates the makespan.
    ///
    /// A move here shifts most of the schedule after it (in the generated factory of `microfactory
    /// bench plan` a probe recomputes about 1,400 of 2,615 heads), and ranking the moves by an
    /// estimate from their machine and job neighbours first, then probing only the best 8 or 16,
    /// found no improvement at all in 10 s there: every sampled move is probed.
    fn step_exact(&mut self, objective: Objective, best: Score) -> bool {
        let inst = self.inst;
        self.cands.clear();
        // Late jobs only matter under a tardiness objective and while some job is late.
        let mut tardy: Vec<usize> = if objective == Objective::Makespan || self.state.tardiness == 0 {
            Vec::new()
        } else {
            (0..inst.n_jobs)
                .filter(|&j| inst.due[j].is_some_and(|due| self.state.end(inst.job_start[j + 1] - 1) > due))
                .collect()
        };
        if tardy.is_empty() {
            self.makespan_path();
            self.add_path_moves(false);
        } else {
            // Shuffle and keep a few, so each iteration stays cheap on large shops.
            for k in (1..tardy.len()).rev() {
                tardy.swap(k, self.rng.below(k + 1));
            }
            tardy.truncate(3);
            for &j in &tardy {
                let last = inst.job_start[j + 1] - 1;
                self.state.critical_path_to(inst, last, &mut self.path, || true);
                let upstream = self.path.len().saturating_sub(TARDY_PATH_TAIL);
                self.path.drain(..upstream);
                self.add_path_moves(false);
            }
        }
        self.evaluate_candidates(0, false);
        while self.cands.len() > TARDY_PROBES {
            let k = self.rng.below(self.cands.len());
            self.cands.swap_remove(k);
        }
        self.probe_candidates(objective);
        let scores = &self.scores;
        let mut pick = None;
        let mut pick_score = Score::WORST;
        let mut ties = 0;
        for (idx, &score) in scores.iter().enumerate() {
            if score == Score::WORST || (self.cands[idx].tabu && score >= best) {
                continue;
            }
            if score < pick_score {
                pick_score = score;
                pick = Some(idx);
                ties = 1;
            } else if score == pick_score {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    pick = Some(idx);
                }
            }
        }
        if pick.is_none() && !self.cands.is_empty() {
            let k = self.rng.below(self.cands.len());
            if scores[k] != Score::WORST {
                pick = Some(k);
            }
        }
        match pick {
            Some(idx) => self.try_apply(self.cands[idx].mv, true),
            None => false,
        }
    }
}

/// Best insertion position of `o` on machine `m2` (not its current one) by estimate, among positions that
/// keep the graph acyclic (heads-based sufficient conditions). `lane` holds `m2`'s times.
fn best_insert(inst: &Inst, st: &State, lane: &[Slot], o: usize, m2: usize, d: i64) -> Option<(usize, i64)> {
    let s = &st.seq[m2];
    debug_assert!(
        lane.len() == s.len()
            && lane.iter().zip(s).all(|(slot, &x)| {
                (slot.start, slot.end, slot.rest) == (st.start[x], st.end(x), st.dur[x] + st.tail[x])
            }),
        "lane of machine {m2} out of date"
    );
    let js = inst.jnext[o];
    let jp = inst.jprev[o];
    // Ops before the insertion point must not be reachable from o's job successor.
    let limit_before = if js == NONE { i64::MAX } else { st.end(js) };
    // Ops after the insertion point must not reach o's job predecessor.
    let jp_start = if jp == NONE { i64::MIN } else { st.start[jp] };
    // A machine's sequence runs in time order, so its ends rise along it and the positions the
    // second test skips form a prefix, found by binary search. Should a fixed operation break the
    // order, the search may start elsewhere; both tests still hold for every position it keeps.
    let first = lane.partition_point(|x| jp_start >= x.end);
    let ready = st.job_ready(inst, o);
    let job_tail = st.job_tail(inst, o);
    let mut best: Option<(usize, i64)> = None;
    for p in first..=lane.len() {
        if p > 0 && lane[p - 1].start >= limit_before {
            break;
        }
        if p < lane.len() && jp_start >= lane[p].end {
            continue;
        }
        // Longest path through `o` at `p`: from the later of its job predecessor and the operation
        // before it, to the longer of its job successor's and the operation after it's tails.
        let before = if p == 0 { NONE } else { s[p - 1] };
        let before_end = if p == 0 { 0 } else { lane[p - 1].end };
        let head = ready.max(before_end + inst.setup(m2, before, o));
        let link = match lane.get(p) {
            Some(after) => inst.setup(m2, o, s[p]) + after.rest,
            None => 0,
        };
        let est = head + d + job_tail.max(link);
        if best.is_none_or(|(_, e)| est < e) {
            best = Some((p, est));
        }
    }
    best
}

/// Heads-based sufficient condition for a shift to keep the graph acyclic: moving `u` forward right after
/// `v` needs no path from `u`'s job successor to `v`; moving `u` backward right before `v` needs no path
/// from `v` to `u`'s job predecessor.
fn shift_is_safe(inst: &Inst, st: &State, u: usize, v: usize, forward: bool) -> bool {
    if forward {
        let js = inst.jnext[u];
        js == NONE || st.start[v] < st.start[js] + st.dur[js]
    } else {
        let jp = inst.jprev[u];
        jp == NONE || st.start[jp] < st.start[v] + st.dur[v]
    }
}

/// Global bookkeeping of one search: best solution so far, limits.
struct Global<'p, 'c> {
    params: &'p Params<'c>,
    thread: usize,
    best: Snapshot,
    score: Score,
    time_to_best: Duration,
    iterations: u64,
    lower_bound: i64,
}

impl Global<'_, '_> {
    fn optimal(&self) -> bool {
        let score = self.score;
        score.0 == 0
            && match self.params.objective {
                Objective::Makespan => score.1 <= self.lower_bound,
                Objective::WeightedTardiness => score.1 == 0,
                Objective::TardinessThenMakespan => score.1 == 0 && score.2 <= self.lower_bound,
            }
    }

    fn done(&self) -> bool {
        if self.optimal() || self.params.iteration_limit.is_some_and(|limit| self.iterations >= limit) {
            return true;
        }
        self.params.time_limit.is_some_and(|limit| self.params.clock.elapsed() >= limit)
    }

    fn offer(&mut self, state: &State) {
        let score = state.score(self.params.objective);
        if score < self.score {
            self.score = score;
            state.snapshot_into(&mut self.best);
            self.time_to_best = self.params.clock.elapsed();
            if let Some(report) = self.params.on_improvement {
                report(super::Improvement {
                    thread: self.thread,
                    makespan: state.makespan,
                    weighted_tardiness: state.tardiness,
                    feasible: state.penalty == 0,
                    elapsed: self.time_to_best.saturating_sub(self.params.began),
                });
            }
        }
    }
}

impl Search<'_> {
    /// Tabu search from the current (decoded) state until `stall_limit` iterations pass without improving
    /// this run's best, or a global limit is hit. Returns the run's best as a population member.
    /// Also says whether any move was made (none when the neighbourhood is empty).
    ///
    /// Under makespan, a schedule with the run's best makespan and fewer critical operations also
    /// counts as an improvement: on a plateau of equal makespans the run keeps going while the
    /// critical paths thin out, and it hands the thinnest schedule to the population (see the
    /// "Plateau tie-break" table in BENCHMARKS.md).
    fn run(&mut self, global: &mut Global<'_, '_>, stall_limit: u64) -> (Member, bool) {
        let objective = global.params.objective;
        let thin_plateaus = objective == Objective::Makespan;
        let critical_ops = |state: &State| if thin_plateaus { state.critical_count() } else { 0 };
        self.clear_tabu();
        if let Some(r) = &mut self.reactive {
            r.start_run(&self.state);
        }
        let mut run_best = Snapshot::default();
        self.state.snapshot_into(&mut run_best);
        let mut run_score = self.state.score(objective);
        let mut run_critical = critical_ops(&self.state);
        global.offer(&self.state);
        let mut stall = 0;
        let mut moved_any = false;
        while stall < stall_limit && !global.done() {
            global.iterations += 1;
            self.iter += 1;
            let moved = match objective {
                // The head/tail estimate knows no breaks: with them, makespan moves are probed too.
                Objective::Makespan if !self.inst.has_unavailable => {
                    self.step_makespan(run_score.1.min(global.score.1))
                }
                _ => self.step_exact(objective, run_score.min(global.score)),
            };
            if moved && let Some(r) = &mut self.reactive {
                debug_assert_eq!(r.hash, sequences_hash(&self.state), "incremental hash");
                r.observe(self.iter);
            }
            let score = self.state.score(objective);
            // Counting critical operations is a pass over all of them: only on the run's plateau.
            let critical = if score <= run_score { critical_ops(&self.state) } else { usize::MAX };
            if (score, critical) < (run_score, run_critical) {
                run_score = score;
                run_critical = critical;
                self.state.snapshot_into(&mut run_best);
                global.offer(&self.state);
                stall = 0;
            } else {
                stall += 1;
            }
            if !moved {
                break;
            }
            moved_any = true;
        }
        (Member { score: run_score, critical: run_critical, snap: run_best }, moved_any)
    }

    /// Path relinking: walks the current state towards `guide` by moving a random share (at least
    /// `least_share`, see [`RELINK_SHARE_MIN`]) of the operations whose machine or position differs
    /// to their place in `guide` (skipping steps that would close a cycle). Leaves the state decoded.
    fn relink(&mut self, guide: &Snapshot, least_share: f64) {
        let inst = self.inst;
        let mut guide_pos = vec![0usize; inst.n_ops];
        for sequence in &guide.seq {
            for (p, &o) in sequence.iter().enumerate() {
                guide_pos[o] = p;
            }
        }
        let mut differing: Vec<usize> = (0..inst.n_ops)
            .filter(|&o| {
                inst.fixed[o].is_none()
                    && (self.state.mach[o] != guide.mach[o] || self.state.pos[o] != guide_pos[o])
            })
            .collect();
        for k in (1..differing.len()).rev() {
            differing.swap(k, self.rng.below(k + 1));
        }
        let share = least_share + (RELINK_SHARE_MAX - least_share) * self.rng.unit();
        let steps = (differing.len() as f64 * share) as usize;
        let mut done = 0;
        for &o in &differing {
            if done >= steps {
                break;
            }
            let m = guide.mach[o];
            let mv = if self.state.mach[o] == m {
                let from = self.state.pos[o];
                let to = guide_pos[o].min(self.state.seq[m].len() - 1);
                if from == to {
                    continue;
                }
                Move::Shift { m, from, to }
            } else {
                let Some(alt) = inst.alt_on(o, m) else { continue };
                Move::Reassign { o, alt, p: guide_pos[o].min(self.state.seq[m].len()) }
            };
            if self.try_apply(mv, false) {
                done += 1;
            }
        }
    }
}

/// The machine sequences of a given schedule as an undecoded state; `None` unless it places every
/// operation once, on one of its alternatives.
fn warm_start(inst: &Inst, initial: &[crate::ScheduledOperation]) -> Option<State> {
    let n = inst.n_ops;
    if initial.len() != n {
        return None;
    }
    let mut mach = vec![usize::MAX; n];
    let mut dur = vec![0; n];
    let mut order: Vec<(usize, i64, usize)> = Vec::with_capacity(n);
    for scheduled in initial {
        let first = *inst.job_start.get(scheduled.job)?;
        let o = first + scheduled.op;
        if scheduled.job + 1 >= inst.job_start.len()
            || o >= inst.job_start[scheduled.job + 1]
            || mach[o] != usize::MAX
        {
            return None;
        }
        let alt = inst.alt_on(o, scheduled.machine)?;
        mach[o] = scheduled.machine;
        dur[o] = inst.alt_dur[alt];
        order.push((scheduled.machine, scheduled.start, o));
    }
    order.sort_unstable();
    let mut seq = vec![Vec::new(); inst.n_machines];
    for (machine, _, o) in order {
        seq[machine].push(o);
    }
    Some(State::new(inst, mach, dur, seq))
}

/// Number of operations whose machine or machine position differs between two snapshots.
fn distance(a: &Snapshot, b: &Snapshot, scratch: &mut Vec<usize>) -> usize {
    scratch.clear();
    scratch.resize(a.mach.len(), usize::MAX);
    for sequence in &a.seq {
        for (p, &o) in sequence.iter().enumerate() {
            scratch[o] = p;
        }
    }
    let mut differ = 0;
    for sequence in &b.seq {
        for (p, &o) in sequence.iter().enumerate() {
            differ += usize::from(scratch[o] != p || a.mach[o] != b.mach[o]);
        }
    }
    differ
}

/// A solution kept in the population, ranked by score, then by its number of critical operations.
struct Member {
    score: Score,
    critical: usize,
    snap: Snapshot,
}

impl Member {
    fn rank(&self) -> (Score, usize) {
        (self.score, self.critical)
    }
}

/// Share of the differing operations a relink moves, drawn uniformly per relink between the least
/// share and [`RELINK_SHARE_MAX`]. Light steps (a few percent) keep the tabu run that follows near
/// its parent, heavy ones (up to half) leave the parent's basin.
///
/// Flexible shops under makespan, whose runs are short (`solve::short_runs`), gain from light
/// steps as well: the multi-purpose shape of `bench/shop-shapes.py` (395 operations) ran about 170
/// tabu runs in 10 s, and after a relink of 25–50 % nearly every run ended worse than the
/// population's worst member. On 22 flexible shops (2 seeds, 10 s) 25–50 % gave 1.52 %, 5–15 % 1.48 %
/// (multi-purpose shops better, Behnke shops and mk07 worse), 5–50 % 1.36 %; all 223 flexible
/// shops 0.27 → 0.23 %. Classic shops keep 25–50 %: with 5–50 % the 30 hard ones measured 0.94
/// against 0.93 % and a full run 0.42 against 0.40 %, the 50 × 10 swv shops worse; generated
/// order books under weighted tardiness moved both ways by up to 17 % (BENCHMARKS.md, "Lighter
/// relinks").
pub(crate) const RELINK_SHARE_MIN: f64 = 0.25;
pub(crate) const RELINK_SHARE_MIN_FLEXIBLE: f64 = 0.05;
const RELINK_SHARE_MAX: f64 = 0.5;

/// Iterations a population must go without a better member before it may be restarted.
const RESTART_MIN_ITERATIONS: u64 = 500_000;

/// One population's life. A population that has gone without a better member for as many iterations
/// as it took to find its best (and at least [`RESTART_MIN_ITERATIONS`]) has settled on a plateau:
/// the search drops it and builds a new one from fresh constructions; the best schedule so far stays
/// in `Global`. Relinking within a settled population rarely leaves its plateau (on ta43 all eight
/// members sat at one makespan from 8 s to 40 s), while a new population finds other basins: at
/// 60 s this took ta41–50 from 1.35 % to 1.11 % (BENCHMARKS.md, "Restarting settled populations").
/// At 10 s it rarely fires and measured within noise.
///
/// A population that is still improving its worst member has not settled either, even when its
/// best came from a lucky first descent: the wait is counted from the last better best or worst
/// member, its length from the best alone. Counting the best alone, swv11 and swv13 (seed 0) found
/// 3,091 and 3,229 in their first 0.2 s, dropped the first population about three seconds later
/// and ended there, against 3,041 and 3,131 without restarts; measuring the length from the worst
/// too kept orb05 from its restarts (889 against 887; BENCHMARKS.md, "A population settles when
/// its worst member does too").
struct Epoch {
    started: u64,
    /// When the best or the worst member last improved.
    improved: u64,
    /// When the best member last improved.
    best_improved: u64,
    best: Option<(Score, usize)>,
    worst: Option<(Score, usize)>,
}

impl Epoch {
    fn new(now: u64) -> Epoch {
        Epoch { started: now, improved: now, best_improved: now, best: None, worst: None }
    }

    /// Notes a finished run's result (`Member::rank`) at iteration `now`.
    fn record(&mut self, rank: (Score, usize), now: u64) {
        if self.best.is_none_or(|best| rank < best) {
            self.best = Some(rank);
            self.improved = now;
            self.best_improved = now;
        }
    }

    /// Notes the rank of the full population's worst member at iteration `now`.
    fn record_worst(&mut self, rank: (Score, usize), now: u64) {
        if self.worst.is_none_or(|worst| rank < worst) {
            self.worst = Some(rank);
            self.improved = now;
        }
    }

    fn exhausted(&self, now: u64) -> bool {
        let productive = self.best_improved - self.started;
        now - self.improved > productive.max(RESTART_MIN_ITERATIONS)
    }
}

/// Runs one complete search with `seed` as thread `thread`: constructive starts, then a small
/// population improved by tabu search and recombined by path relinking (in the spirit of Peng, Lü &
/// Cheng's TS/PR).
pub(crate) fn search(inst: &Inst, params: &Params<'_>, seed: u64, thread: usize) -> Outcome {
    let objective = params.objective;
    let mut rng = Rng::new(seed);
    // The warm start, if any, then every rule once, plus a second randomised construction; on a
    // shop so large that the constructions use up the time limit, only those built by then. The
    // warm start is taken when it beats every construction.
    let warm = params
        .initial
        .and_then(|initial| warm_start(inst, initial))
        .and_then(|mut st| st.decode(inst).then_some(st));
    let mut built: Option<State> = None;
    let time_up = || params.time_limit.is_some_and(|limit| params.clock.elapsed() >= limit);
    for rule in RULES.into_iter().chain(std::iter::once(Rule::Random)) {
        // A construction is cut short at the time limit when there is something else to go on.
        let fallback = built.is_some() || warm.is_some() || params.warm_elsewhere;
        if time_up() && fallback {
            break;
        }
        let Some(mut st) = build(inst, rule, &mut rng, fallback.then_some(&time_up as &dyn Fn() -> bool))
        else {
            break;
        };
        if st.decode(inst) && built.as_ref().is_none_or(|b| st.score(objective) < b.score(objective)) {
            built = Some(st);
        }
    }
    let best_state = match (warm, built) {
        (Some(warm), Some(built)) => {
            Some(if warm.score(objective) < built.score(objective) { warm } else { built })
        }
        (warm, built) => built.or(warm),
    };
    let state = match best_state {
        Some(state) => state,
        // Out of time before its first construction was built: the thread with the warm start
        // answers.
        None if params.warm_elsewhere => {
            return Outcome {
                best: Snapshot::default(),
                score: Score::WORST,
                iterations: 0,
                time_to_best: Duration::ZERO,
            };
        }
        None => {
            // Fixed ops are graph sources, so constructions are acyclic; keep a fallback anyway.
            let mut st = build(inst, Rule::EarliestCompletion, &mut rng, None)
                .unwrap_or_else(|| unreachable!("a construction without `give_up` is finished"));
            st.decode(inst);
            st
        }
    };
    let mut global = Global {
        params,
        thread,
        best: Snapshot::default(),
        score: Score::WORST,
        time_to_best: Duration::ZERO,
        iterations: 0,
        lower_bound: inst.lower_bound,
    };
    global.offer(&state);
    let mut search = Search::new(inst, state, rng.next_u64());
    if objective == Objective::Makespan && !inst.has_unavailable {
        search.react();
    }
    let stall_limit = params.stall_limit;
    let pop_size = 8;
    let mut population: Vec<Member> = Vec::with_capacity(pop_size);
    let mut scratch = Vec::new();
    let mut stuck_runs = 0;
    let mut epoch = Epoch::new(0);
    let mut restarts = 0;
    while !global.done() {
        if population.len() == pop_size && epoch.exhausted(global.iterations) {
            // The global best is kept in `global`; the new population starts from scratch.
            population.clear();
            epoch = Epoch::new(global.iterations);
            restarts += 1;
            search.base_tenure = population_tenure(inst, restarts);
            if let Some(r) = &mut search.reactive {
                r.restart(search.iter);
            }
        }
        if population.len() < pop_size {
            // Only the search's first run starts from the best initial construction. Under makespan
            // every further member starts from a fresh construction. Under the tardiness objectives
            // the next run goes on from where the last one ended: their moves are evaluated exactly,
            // so a run gets far fewer iterations, and from a fresh (often random) construction it
            // ends long before it is back at the level already reached. On generated order books of
            // 70 and 100 orders this took the weighted tardiness down by 4-21 % (BENCHMARKS.md,
            // "Weighted tardiness against CP-SAT").
            let first_run = population.is_empty() && epoch.started == 0;
            if !first_run && objective == Objective::Makespan {
                let rule = if search.rng.below(2) == 0 {
                    Rule::Random
                } else {
                    RULES[search.rng.below(RULES.len())]
                };
                let Some(mut st) = build(inst, rule, &mut search.rng, Some(&|| global.done())) else {
                    break;
                };
                if !st.decode(inst) {
                    continue;
                }
                search.state = st;
            }
        } else {
            let a = search.rng.below(population.len());
            let mut b = search.rng.below(population.len() - 1);
            if b >= a {
                b += 1;
            }
            search.state.restore(&population[a].snap);
            search.state.decode(inst);
            search.relink(&population[b].snap, params.relink_least_share);
        }
        let (member, moved) = search.run(&mut global, stall_limit);
        // Shops without any neighbour (e.g. no two operations ever compete) cannot improve: stop early
        // instead of spinning until the time limit.
        stuck_runs = if moved { 0 } else { stuck_runs + 1 };
        if stuck_runs >= 20 {
            break;
        }
        epoch.record(member.rank(), global.iterations);
        if population.iter().any(|other| distance(&other.snap, &member.snap, &mut scratch) == 0) {
            continue;
        }
        if population.len() < pop_size {
            population.push(member);
        } else if let Some(worst) = population.iter_mut().max_by_key(|other| other.rank())
            && member.rank() <= worst.rank()
        {
            *worst = member;
        }
        if population.len() == pop_size
            && let Some(worst) = population.iter().map(Member::rank).max()
        {
            epoch.record_worst(worst, global.iterations);
        }
    }
    Outcome {
        best: global.best,
        score: global.score,
        iterations: global.iterations,
        time_to_best: global.time_to_best,
    }
}

#[cfg(test)]
mod pair_tests {
    use super::{
        CALM_WINDOW, Epoch, FACTOR_MAX, FACTOR_MIN, REACTIVE_WARM_UP, RESTART_MIN_ITERATIONS, Reactive,
        Score, TabuPairs,
    };

    #[test]
    fn the_reactive_tenure_grows_on_repetitions_and_shrinks_when_calm() {
        let mut r = Reactive::new();
        r.count_candidates(20);
        let usual = 12;
        // The usual tenure during the warm-up, whatever the factor.
        r.factor = FACTOR_MIN;
        assert_eq!(r.base(usual, REACTIVE_WARM_UP - 1), usual);
        // Shrunk to the floor: 30 % of 20 candidates.
        assert_eq!(r.base(usual, REACTIVE_WARM_UP), 6);
        // The floor never lifts the tenure above the usual one.
        r.count_candidates(200);
        assert_eq!(r.base(usual, REACTIVE_WARM_UP), usual);
        // Coming back to one schedule again and again grows the factor up to its cap.
        let mut r = Reactive::new();
        r.hash = 42;
        for iter in 1..100 {
            r.observe(iter);
        }
        assert_eq!(r.factor, FACTOR_MAX);
        // New schedules every iteration shrink it a step per calm window, down to the minimum.
        let mut iter = 100;
        r.observe(iter);
        let before = r.factor;
        for _ in 0..=CALM_WINDOW {
            iter += 1;
            r.hash = iter * 7919;
            r.observe(iter);
        }
        assert!(r.factor < before);
        for _ in 0..100 * CALM_WINDOW {
            iter += 1;
            r.hash = iter * 7919;
            r.observe(iter);
        }
        assert_eq!(r.factor, FACTOR_MIN);
        // A restart forgets the factor and warms up again.
        r.count_candidates(20);
        r.restart(iter);
        assert_eq!(r.factor, 1.0);
        r.factor = FACTOR_MIN;
        assert_eq!(r.base(usual, iter + REACTIVE_WARM_UP - 1), usual);
        r.count_candidates(20);
        assert_eq!(r.base(usual, iter + REACTIVE_WARM_UP), 6);
    }

    #[test]
    fn a_population_is_settled_after_as_long_without_progress_as_it_took() {
        let start = 1_000;
        let mut epoch = Epoch::new(start);
        epoch.record((Score(0, 500, 0), 9), start + 10);
        epoch.record((Score(0, 480, 0), 30), start + 2_000_000);
        // Worse or equal members are no progress.
        epoch.record((Score(0, 480, 0), 30), start + 3_000_000);
        epoch.record((Score(0, 490, 0), 1), start + 3_500_000);
        assert!(!epoch.exhausted(start + 4_000_000));
        assert!(epoch.exhausted(start + 4_000_001));
        // Fewer critical operations at the same score are progress.
        epoch.record((Score(0, 480, 0), 29), start + 4_000_000);
        assert!(!epoch.exhausted(start + 8_000_000));
        // A better worst member is progress too; the wait stays as long as the best took.
        let mut maturing = Epoch::new(0);
        maturing.record((Score(0, 100, 0), 5), 1_000);
        maturing.record_worst((Score(0, 140, 0), 5), 400_000);
        maturing.record_worst((Score(0, 150, 0), 5), 450_000);
        assert!(!maturing.exhausted(800_001), "the worst improved at 400,000");
        assert!(maturing.exhausted(900_001));
        // Early bests still wait the minimum.
        let mut quick = Epoch::new(0);
        quick.record((Score(0, 100, 0), 5), 1);
        assert!(!quick.exhausted(RESTART_MIN_ITERATIONS + 1));
        assert!(quick.exhausted(RESTART_MIN_ITERATIONS + 2));
    }

    #[test]
    fn dense_and_sparse_tables_agree() {
        let mut dense = TabuPairs::new(10, 4);
        let mut sparse = TabuPairs::new(100_000, 100_000);
        assert!(matches!(dense, TabuPairs::Dense { .. }) && matches!(sparse, TabuPairs::Sparse { .. }));
        for table in [&mut dense, &mut sparse] {
            assert_eq!(table.get(3, 2), 0);
            table.set(3, 2, 17, 5);
            table.set(9, 3, 8, 5);
            assert_eq!((table.get(3, 2), table.get(9, 3), table.get(2, 3)), (17, 8, 0));
            table.clear();
            assert_eq!(table.get(3, 2), 0);
        }
        // The sparse table forgets expired pairs once it grows, and keeps the live ones.
        for op in 0..super::SPARSE_PRUNE + 10 {
            sparse.set(op, 1, 100, 50);
        }
        sparse.set(7, 7, 200, 150);
        let TabuPairs::Sparse { until, .. } = &sparse else { unreachable!() };
        assert!(until.len() < 100, "expired pairs were dropped: {}", until.len());
        assert_eq!(sparse.get(7, 7), 200);
    }
}
