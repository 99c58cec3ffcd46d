//! A solution in the solver's terms: a machine and a position in that machine's sequence for every
//! operation. `decode` turns it into exact start times (left-justified: setups, releases, breaks and fixed
//! starts included), `tails` computes the longest path from each operation's end to the sink, and the
//! move helpers apply/undo sequence changes and estimate their effect from heads and tails.

use super::Score;
use super::inst::{Inst, NONE};

#[derive(Clone)]
pub(crate) struct State {
    pub(crate) mach: Vec<usize>,
    pub(crate) dur: Vec<i64>,
    pub(crate) seq: Vec<Vec<usize>>,
    pub(crate) pos: Vec<usize>,
    /// Machine predecessor / successor of each op (`NONE` at the ends), mirrored from `seq`.
    pub(crate) mp: Vec<usize>,
    pub(crate) mn: Vec<usize>,
    pub(crate) start: Vec<i64>,
    pub(crate) tail: Vec<i64>,
    pub(crate) topo: Vec<usize>,
    /// Position of each op in `topo` (valid after a successful decode).
    pub(crate) rank: Vec<usize>,
    /// Scratch: the re-sorted part of `topo` during a decode.
    order: Vec<usize>,
    pub(crate) makespan: i64,
    pub(crate) tardiness: i64,
    /// Total lateness of fixed operations' predecessors (0 when every fixed start is honoured).
    pub(crate) penalty: i64,
    indeg: Vec<u32>,
    /// Scratch of [`State::probe`]: operations whose head may change (stamped with `epoch`), and the
    /// heads it changed, to put back.
    dirty: Vec<u32>,
    epoch: u32,
    changed: Vec<(usize, i64)>,
}

/// The part of a state that defines it; copied into elite pools.
#[derive(Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) mach: Vec<usize>,
    pub(crate) dur: Vec<i64>,
    pub(crate) seq: Vec<Vec<usize>>,
}

impl State {
    /// A state from machine choices and per-machine sequences (each op exactly once, on its machine).
    pub(crate) fn new(inst: &Inst, mach: Vec<usize>, dur: Vec<i64>, seq: Vec<Vec<usize>>) -> Self {
        let n = inst.n_ops;
        let mut state = State {
            mach,
            dur,
            seq,
            pos: vec![0; n],
            mp: vec![NONE; n],
            mn: vec![NONE; n],
            start: vec![0; n],
            tail: vec![0; n],
            topo: Vec::with_capacity(n),
            rank: vec![0; n],
            order: Vec::with_capacity(n),
            makespan: 0,
            tardiness: 0,
            penalty: 0,
            indeg: vec![0; n],
            dirty: vec![0; n],
            epoch: 0,
            changed: Vec::new(),
        };
        state.reindex_all();
        state
    }

    fn reindex_all(&mut self) {
        for m in 0..self.seq.len() {
            self.reindex(m, 0, self.seq[m].len());
        }
    }

    /// Refreshes `pos`, `mp` and `mn` for positions `lo..hi` of machine `m`'s sequence.
    fn reindex(&mut self, m: usize, lo: usize, hi: usize) {
        let s = &self.seq[m];
        let hi = hi.min(s.len());
        for p in lo..hi {
            let o = s[p];
            self.pos[o] = p;
            self.mp[o] = if p == 0 { NONE } else { s[p - 1] };
            self.mn[o] = if p + 1 < s.len() { s[p + 1] } else { NONE };
        }
    }

    pub(crate) fn snapshot_into(&self, snap: &mut Snapshot) {
        snap.mach.clone_from(&self.mach);
        snap.dur.clone_from(&self.dur);
        snap.seq.clone_from(&self.seq);
    }

    pub(crate) fn restore(&mut self, snap: &Snapshot) {
        self.mach.clone_from(&snap.mach);
        self.dur.clone_from(&snap.dur);
        self.seq.clone_from(&snap.seq);
        self.reindex_all();
    }

    #[inline]
    pub(crate) fn mprev(&self, o: usize) -> usize {
        self.mp[o]
    }

    #[inline]
    pub(crate) fn end(&self, o: usize) -> i64 {
        self.start[o] + self.dur[o]
    }

    /// End of the job predecessor, or the job's release.
    #[inline]
    pub(crate) fn job_ready(&self, inst: &Inst, o: usize) -> i64 {
        let jp = inst.jprev[o];
        if jp == NONE { inst.release[inst.job_of[o]] } else { self.end(jp) }
    }

    /// Length from the start of the job successor to the sink, or 0.
    #[inline]
    pub(crate) fn job_tail(&self, inst: &Inst, o: usize) -> i64 {
        let jn = inst.jnext[o];
        if jn == NONE { 0 } else { self.dur[jn] + self.tail[jn] }
    }

    pub(crate) fn score(&self, objective: super::Objective) -> Score {
        match objective {
            super::Objective::Makespan => Score(self.penalty, self.makespan, 0),
            super::Objective::WeightedTardiness => Score(self.penalty, self.tardiness, 0),
            super::Objective::TardinessThenMakespan => Score(self.penalty, self.tardiness, self.makespan),
        }
    }

    /// Computes exact start times, objectives and tails; false when the sequences contain a cycle.
    pub(crate) fn decode(&mut self, inst: &Inst) -> bool {
        if inst.has_extensions() { self.decode_full::<true>(inst) } else { self.decode_full::<false>(inst) }
    }

    /// Incremental decode after a move, given the previous topological order (`topo`, `rank`). `r0` is
    /// the lowest rank among targets of changed arcs, `r1` the highest among their sources. An arc the
    /// move turned against the old order runs from rank ≤ `r1` to rank ≥ `r0` backwards, so both its
    /// ends lie in the window `r0..=r1`: the old order stays valid outside it and only the window is
    /// re-sorted. Heads are then recomputed for ranks `≥ r0` (nothing earlier is reachable from a
    /// changed arc) and tails for ranks `≤ r1`. On a cycle (it lies inside the window) returns false
    /// and leaves the state's order, heads and tails untouched: undo the move and decode again.
    pub(crate) fn decode_from(&mut self, inst: &Inst, r0: usize, r1: usize) -> bool {
        if inst.n_ops == 0 {
            return self.decode(inst);
        }
        let r1 = r1.min(inst.n_ops - 1);
        if inst.has_extensions() {
            // With setups, breaks or fixed work a move also changes arc weights elsewhere (the setup
            // before the moved operation's machine successor, the break a head is pushed past), which
            // can change tails ranked above `r1`; recompute every tail. Seen on a repair instance
            // where the bounded tails differed from a full decode.
            self.decode_window::<true>(inst, r0, r1, inst.n_ops - 1)
        } else {
            self.decode_window::<false>(inst, r0, r1, r1)
        }
    }

    /// The score the state would have after a move, without keeping it. `r0..=r1` is the move's
    /// window of the topological order (as for [`State::decode_from`]) and `targets` the operations
    /// that gained a new machine predecessor outside it. The window is re-sorted into scratch, and
    /// heads are recomputed along the order only where a predecessor changed, so the cost follows
    /// what the move actually shifts, not the rest of the schedule; then every head is put back.
    /// No tails. `None` on a cycle.
    pub(crate) fn probe(
        &mut self,
        inst: &Inst,
        (r0, r1): (usize, usize),
        targets: &[usize],
        objective: super::Objective,
    ) -> Option<Score> {
        if inst.has_extensions() {
            self.probe_with::<true>(inst, r0, r1, targets, objective)
        } else {
            self.probe_with::<false>(inst, r0, r1, targets, objective)
        }
    }

    fn probe_with<const EXT: bool>(
        &mut self,
        inst: &Inst,
        r0: usize,
        r1: usize,
        targets: &[usize],
        objective: super::Objective,
    ) -> Option<Score> {
        let n = inst.n_ops;
        let r1 = r1.min(n.saturating_sub(1));
        let window = if r0 <= r1 { r1 - r0 + 1 } else { 0 };
        if window > 0 && !self.sort::<EXT>(inst, r0, r1, false) {
            return None;
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.dirty.fill(0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        for &o in targets {
            if o != NONE {
                self.dirty[o] = epoch;
            }
        }
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        for k in r0..n {
            let in_window = k - r0 < window;
            let o = if in_window { self.order[k - r0] } else { self.topo[k] };
            if !in_window && self.dirty[o] != epoch {
                continue;
            }
            let start = self.head::<EXT>(inst, o);
            let moved = start != self.start[o];
            if moved {
                changed.push((o, self.start[o]));
                self.start[o] = start;
            }
            // Inside the window the order and durations may have changed even where the head did not.
            if moved || in_window {
                for next in [inst.jnext[o], self.mn[o]] {
                    if next != NONE {
                        self.dirty[next] = epoch;
                    }
                }
            }
        }
        let before = (self.makespan, self.tardiness, self.penalty);
        self.finish_objectives::<EXT>(inst);
        let score = self.score(objective);
        (self.makespan, self.tardiness, self.penalty) = before;
        for &(o, start) in &changed {
            self.start[o] = start;
        }
        self.changed = changed;
        Some(score)
    }

    /// Whether operation `o` is a node whose incoming arcs count (fixed operations start where they
    /// are fixed, so arcs into them are not part of the graph).
    #[inline(always)]
    fn has_inputs<const EXT: bool>(inst: &Inst, o: usize) -> bool {
        !(EXT && inst.fixed[o].is_some())
    }

    /// Start of `o` from its predecessors' current ends. `EXT` is false for plain shops (no setups,
    /// breaks or fixed ops), letting the compiler drop those branches from the hot loops.
    #[inline(always)]
    fn head<const EXT: bool>(&self, inst: &Inst, o: usize) -> i64 {
        let mp = self.mp[o];
        let machine_ready = if mp == NONE { 0 } else { self.end(mp) };
        if EXT {
            if let Some((_, fixed_start)) = inst.fixed[o] {
                return fixed_start;
            }
            let m = self.mach[o];
            let setup = inst.setup(m, mp, o);
            let t = self.job_ready(inst, o).max(machine_ready + setup);
            if inst.has_unavailable { inst.fit(m, t, setup, self.dur[o]) } else { t }
        } else {
            self.job_ready(inst, o).max(machine_ready)
        }
    }

    /// Full decode: topological order by Kahn's algorithm, heads along it, tails in reverse.
    fn decode_full<const EXT: bool>(&mut self, inst: &Inst) -> bool {
        let n = inst.n_ops;
        if n == 0 {
            self.finish_objectives::<EXT>(inst);
            return true;
        }
        if !self.sort::<EXT>(inst, 0, n - 1, true) {
            return false;
        }
        std::mem::swap(&mut self.topo, &mut self.order);
        for k in 0..n {
            self.rank[self.topo[k]] = k;
        }
        self.recompute::<EXT>(inst, 0, n - 1);
        true
    }

    /// Re-sorts the window `r0..=r1` of the topological order, then recomputes heads from `r0` up
    /// and tails from `tails_to` down.
    fn decode_window<const EXT: bool>(&mut self, inst: &Inst, r0: usize, r1: usize, tails_to: usize) -> bool {
        if r0 <= r1 {
            if !self.sort::<EXT>(inst, r0, r1, false) {
                return false;
            }
            self.topo[r0..=r1].copy_from_slice(&self.order);
            for k in r0..=r1 {
                self.rank[self.topo[k]] = k;
            }
        }
        self.recompute::<EXT>(inst, r0, tails_to);
        true
    }

    /// Kahn's algorithm into `order` over the operations ranked `r0..=r1` (every operation when
    /// `all`, whatever `rank` holds), on the arcs between them; false on a cycle.
    fn sort<const EXT: bool>(&mut self, inst: &Inst, r0: usize, r1: usize, all: bool) -> bool {
        let rank = &self.rank;
        let inside = |o: usize| o != NONE && (all || (r0..=r1).contains(&rank[o]));
        self.order.clear();
        for k in r0..=r1 {
            let o = if all { k } else { self.topo[k] };
            self.indeg[o] = if Self::has_inputs::<EXT>(inst, o) {
                u32::from(inside(inst.jprev[o])) + u32::from(inside(self.mp[o]))
            } else {
                0
            };
            if self.indeg[o] == 0 {
                self.order.push(o);
            }
        }
        let mut head = 0;
        while head < self.order.len() {
            let o = self.order[head];
            head += 1;
            for next in [inst.jnext[o], self.mn[o]] {
                if inside(next) && Self::has_inputs::<EXT>(inst, next) {
                    self.indeg[next] -= 1;
                    if self.indeg[next] == 0 {
                        self.order.push(next);
                    }
                }
            }
        }
        self.order.len() == r1 - r0 + 1
    }

    /// Heads for ranks `heads_from..`, the objectives, then tails for ranks `..=tails_to`, each in one
    /// pass along the topological order.
    fn recompute<const EXT: bool>(&mut self, inst: &Inst, heads_from: usize, tails_to: usize) {
        for k in heads_from..inst.n_ops {
            let o = self.topo[k];
            self.start[o] = self.head::<EXT>(inst, o);
        }
        self.finish_objectives::<EXT>(inst);
        for k in (0..=tails_to).rev() {
            let o = self.topo[k];
            self.tail[o] = self.compute_tail::<EXT>(inst, o);
        }
    }

    /// Makespan, fixed-start penalty and weighted tardiness from the current heads.
    fn finish_objectives<const EXT: bool>(&mut self, inst: &Inst) {
        let makespan = inst.last_candidates.iter().map(|&o| self.end(o)).max().unwrap_or(0);
        let mut penalty = 0;
        if EXT && inst.has_fixed {
            for &o in &inst.fixed_ops {
                let mp = self.mprev(o);
                let m = self.mach[o];
                let setup = inst.setup(m, mp, o);
                let machine_ready = if mp == NONE { 0 } else { self.end(mp) } + setup;
                penalty += (self.job_ready(inst, o).max(machine_ready) - self.start[o]).max(0);
                // The setup window in front of a fixed op depends on its predecessor and must
                // avoid breaks too.
                penalty += inst.fit(m, self.start[o], setup, self.dur[o]) - self.start[o];
            }
        }
        self.makespan = makespan;
        self.penalty = penalty;
        let mut tardiness = 0;
        for j in 0..inst.n_jobs {
            if let Some(due) = inst.due[j] {
                let last = inst.job_start[j + 1] - 1;
                tardiness += inst.weight[j] * (self.end(last) - due).max(0);
            }
        }
        self.tardiness = tardiness;
    }

    #[inline(always)]
    fn compute_tail<const EXT: bool>(&self, inst: &Inst, o: usize) -> i64 {
        // Arcs into fixed ops are not part of the graph (their start is given), so they add no tail.
        let jn = inst.jnext[o];
        let mut q =
            if jn == NONE || (EXT && inst.fixed[jn].is_some()) { 0 } else { self.dur[jn] + self.tail[jn] };
        let mn = self.mn[o];
        if mn != NONE && !(EXT && inst.fixed[mn].is_some()) {
            let setup = if EXT { inst.setup(self.mach[o], o, mn) } else { 0 };
            q = q.max(setup + self.dur[mn] + self.tail[mn]);
        }
        q
    }

    /// A critical path ending at `last` (walking back over tight arcs), as ops in time order.
    /// Where both the machine and the job predecessor are tight, `machine_on_tie()` says whether
    /// the path follows the machine one (which keeps blocks long) or the job one.
    pub(crate) fn critical_path_to(
        &self,
        inst: &Inst,
        last: usize,
        path: &mut Vec<usize>,
        mut machine_on_tie: impl FnMut() -> bool,
    ) {
        path.clear();
        let mut o = last;
        loop {
            path.push(o);
            // A fixed op's start depends on nothing before it, so the path starts there.
            if inst.fixed[o].is_some() {
                break;
            }
            // The binding predecessor is the one that is ready last: `head` starts `o` at the
            // later of the two ready times, or at the end of the break that time falls into, so
            // the path runs on through a break (stopping there would leave only the moves inside
            // one shift). In a plain shop the binding arc is the tight one.
            let mp = self.mprev(o);
            let jp = inst.jprev[o];
            let job_ready = self.job_ready(inst, o);
            if mp != NONE {
                let setup = if inst.has_setups { inst.setup(self.mach[o], mp, o) } else { 0 };
                let ready = self.end(mp) + setup;
                if ready > job_ready || (ready == job_ready && (jp == NONE || machine_on_tie())) {
                    o = mp;
                    continue;
                }
            }
            if jp != NONE {
                o = jp;
                continue;
            }
            break;
        }
        path.reverse();
    }

    /// Number of operations on some critical path (head + duration + tail equal to the makespan).
    pub(crate) fn critical_count(&self) -> usize {
        let makespan = self.makespan;
        (0..self.start.len()).filter(|&o| self.start[o] + self.dur[o] + self.tail[o] == makespan).count()
    }

    /// Moves the op at `from` in machine `m`'s sequence so that it ends at position `to`.
    pub(crate) fn shift(&mut self, m: usize, from: usize, to: usize) {
        let s = &mut self.seq[m];
        if from < to {
            s[from..=to].rotate_left(1);
        } else {
            s[to..=from].rotate_right(1);
        }
        let lo = from.min(to);
        self.reindex(m, lo.saturating_sub(1), from.max(to) + 2);
    }

    /// Moves op `o` to machine `m` (alternative `alt`) at position `p` of its sequence.
    pub(crate) fn reassign(&mut self, inst: &Inst, o: usize, alt: usize, p: usize) {
        let old = self.mach[o];
        let old_pos = self.pos[o];
        self.seq[old].remove(old_pos);
        self.reindex(old, old_pos.saturating_sub(1), usize::MAX);
        let m = inst.alt_machine[alt];
        self.mach[o] = m;
        self.dur[o] = inst.alt_dur[alt];
        self.seq[m].insert(p, o);
        self.reindex(m, p.saturating_sub(1), usize::MAX);
    }

    /// Estimated longest path through the segment `lo..=hi` of machine `m` once reordered as `order`
    /// (heads from the predecessors, tails from the successors; Taillard / Nowicki–Smutnicki estimate).
    #[inline(always)]
    pub(crate) fn estimate_segment(
        &self,
        inst: &Inst,
        m: usize,
        lo: usize,
        hi: usize,
        order: &[usize],
        heads: &mut [i64],
    ) -> i64 {
        if inst.has_setups {
            self.estimate_segment_with::<true>(inst, m, lo, hi, order, heads)
        } else {
            self.estimate_segment_with::<false>(inst, m, lo, hi, order, heads)
        }
    }

    /// `SETUPS` is `inst.has_setups`: as a constant it lets plain shops' loops drop the setup
    /// lookups (a runtime test instead measured about a tenth fewer iterations on ta41, two runs
    /// side by side, near the machine's noise).
    #[inline(always)]
    fn estimate_segment_with<const SETUPS: bool>(
        &self,
        inst: &Inst,
        m: usize,
        lo: usize,
        hi: usize,
        order: &[usize],
        heads: &mut [i64],
    ) -> i64 {
        let s = &self.seq[m];
        let mut prev = if lo == 0 { NONE } else { s[lo - 1] };
        let mut prev_end = if prev == NONE { 0 } else { self.end(prev) };
        for (i, &y) in order.iter().enumerate() {
            let setup = if SETUPS { inst.setup(m, prev, y) } else { 0 };
            let r = self.job_ready(inst, y).max(prev_end + setup);
            heads[i] = r;
            prev = y;
            prev_end = r + self.dur[y];
        }
        let next = if hi + 1 < s.len() { s[hi + 1] } else { NONE };
        let mut best = 0;
        let mut succ = next;
        let mut succ_tail = if next == NONE { 0 } else { self.dur[next] + self.tail[next] };
        for (i, &y) in order.iter().enumerate().rev() {
            let setup = if SETUPS && succ != NONE { inst.setup(m, y, succ) } else { 0 };
            let link = if succ == NONE { 0 } else { setup + succ_tail };
            let q = self.job_tail(inst, y).max(link);
            best = best.max(heads[i] + self.dur[y] + q);
            succ = y;
            succ_tail = self.dur[y] + q;
        }
        best
    }
}
