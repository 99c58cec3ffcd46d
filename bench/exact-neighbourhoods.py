#!/usr/bin/env python3
"""Asks how far a schedule is from the optimum by exact large-neighbourhood steps (CP-SAT).

Given a classic job shop and one of our schedules (`microfactory schedule solve FILE --output
PLAN.json`), it frees part of the schedule, keeps every other machine order, and solves the freed
part to optimality with CP-SAT (BENCHMARKS.md, "Targets not met yet"). Three modes:

  window     free the operations that start in a random time window (SIZE x the makespan wide);
             on each machine they form one block between the kept operations before and after
  machines   free every operation of FREE random machines
  keep-one   for each machine in turn, keep only its order and solve everything else

`window` and `machines` repeat TRIES times and go on from each result that is no worse, so they
are a large-neighbourhood search with an exact step; `keep-one` tells whether any single machine
order of the schedule is shared by a better schedule.

Needs `pip install ortools`. Classic shops in the standard format only (`n m`, then per job
`machine duration` pairs, machines from 0).

Usage:
  python3 bench/exact-neighbourhoods.py SHOP PLAN.json window --size 0.3 [--tries 100]
  python3 bench/exact-neighbourhoods.py SHOP PLAN.json machines --free 7 [--tries 100]
  python3 bench/exact-neighbourhoods.py SHOP PLAN.json keep-one [--time-limit 60]
"""

import argparse
import json
import random
import sys
import time

try:
    from ortools.sat.python import cp_model
except ImportError:
    sys.exit("needs OR-Tools: pip install ortools")


def read_shop(path):
    """Jobs as lists of (machine, duration), from the standard format (`#` lines are comments)."""
    lines = [line for line in open(path).read().splitlines() if line.strip() and not line.startswith("#")]
    values = [int(x) for x in " ".join(lines).split()]
    n, m = values[0], values[1]
    body = values[2:]
    if len(body) != 2 * n * m:
        sys.exit(f"{path}: expected {2 * n * m} numbers after the header, found {len(body)}")
    return [[(body[2 * (j * m + k)], body[2 * (j * m + k) + 1]) for k in range(m)] for j in range(n)], m


def read_plan(path):
    """Start of every (job, op) from a `schedule solve --output` file."""
    return {(o["job"], o["op"]): o["start"] for o in json.load(open(path))["operations"]}


def makespan(jobs, start):
    return max(start[j, len(ops) - 1] + ops[-1][1] for j, ops in enumerate(jobs))


def machine_orders(jobs, n_machines, start):
    on = [[] for _ in range(n_machines)]
    for j, ops in enumerate(jobs):
        for k, (machine, _) in enumerate(ops):
            on[machine].append((start[j, k], j, k))
    return [[(j, k) for _, j, k in sorted(ops)] for ops in on]


def solve(jobs, n_machines, start, free, keep_blocks, time_limit, seed):
    """Optimal schedule that keeps the order of the operations not in `free` on every machine.
    With `keep_blocks`, the free operations of a machine also stay between its kept ones before
    and after them (the window mode). Returns (starts, makespan, bound, status)."""
    horizon = sum(d for ops in jobs for _, d in ops)
    model = cp_model.CpModel()
    s = {}
    for j, ops in enumerate(jobs):
        for k, (_, d) in enumerate(ops):
            s[j, k] = model.NewIntVar(0, horizon, "")
            if k:
                model.Add(s[j, k] >= s[j, k - 1] + ops[k - 1][1])
    dur = lambda op: jobs[op[0]][op[1]][1]  # noqa: E731
    for order in machine_orders(jobs, n_machines, start):
        kept = [op for op in order if op not in free]
        for a, b in zip(kept, kept[1:]):
            model.Add(s[b] >= s[a] + dur(a))
        freed = [op for op in order if op in free]
        if not freed:
            continue
        model.AddNoOverlap([model.NewIntervalVar(s[op], dur(op), s[op] + dur(op), "") for op in order])
        if keep_blocks:
            first, last = order.index(freed[0]), order.index(freed[-1])
            before, after = order[:first], order[last + 1 :]
            for op in freed:
                if before:
                    model.Add(s[op] >= s[before[-1]] + dur(before[-1]))
                if after:
                    model.Add(s[after[0]] >= s[op] + dur(op))
    end = model.NewIntVar(0, horizon, "")
    for j, ops in enumerate(jobs):
        model.Add(end >= s[j, len(ops) - 1] + ops[-1][1])
    model.Minimize(end)
    for op, var in s.items():
        model.AddHint(var, start[op])
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, None, int(solver.BestObjectiveBound()), solver.StatusName(status)
    starts = {op: solver.Value(var) for op, var in s.items()}
    return starts, solver.Value(end), int(solver.BestObjectiveBound()), solver.StatusName(status)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shop")
    parser.add_argument("plan")
    parser.add_argument("mode", choices=["window", "machines", "keep-one"])
    parser.add_argument("--size", type=float, default=0.3, help="window: width as a share of the makespan")
    parser.add_argument("--free", type=int, default=4, help="machines: how many machines to free")
    parser.add_argument("--tries", type=int, default=100, help="window, machines: steps")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per exact solve")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    jobs, n_machines = read_shop(args.shop)
    start = read_plan(args.plan)
    if len(start) != sum(len(ops) for ops in jobs):
        sys.exit(f"{args.plan}: the plan does not place every operation of {args.shop} once")
    rng = random.Random(args.seed)
    began = time.time()
    print(f"start: makespan {makespan(jobs, start)}")
    if args.mode == "keep-one":
        print("| kept machine | best makespan with its order | proved bound | status | s |")
        print("|---:|---:|---:|---|---:|")
        for machine in range(n_machines):
            free = {(j, k) for j, ops in enumerate(jobs) for k, (m, _) in enumerate(ops) if m != machine}
            t = time.time()
            _, value, bound, status = solve(jobs, n_machines, start, free, False, args.time_limit, args.seed)
            print(f"| {machine} | {value} | {bound} | {status} | {time.time() - t:.1f} |", flush=True)
        return
    if args.mode == "machines" and not 0 < args.free <= n_machines:
        sys.exit(f"--free must be in 1..={n_machines}")
    best = makespan(jobs, start)
    for step in range(args.tries):
        current = makespan(jobs, start)
        if args.mode == "window":
            width = max(1, int(current * args.size))
            at = rng.randrange(-width // 2, current)
            free = {op for op, t in start.items() if at <= t < at + width}
        else:
            chosen = set(rng.sample(range(n_machines), args.free))
            free = {(j, k) for j, ops in enumerate(jobs) for k, (m, _) in enumerate(ops) if m in chosen}
        starts, value, _, status = solve(
            jobs, n_machines, start, free, args.mode == "window", args.time_limit, rng.randrange(1 << 30)
        )
        if starts is not None and value <= current:
            start = starts
        best = min(best, makespan(jobs, start))
        print(f"step {step}: {len(free)} free, {current} -> {value} ({status}), {time.time() - began:.1f} s", flush=True)
    print(f"best: makespan {best}")


if __name__ == "__main__":
    main()
