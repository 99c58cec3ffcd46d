#!/usr/bin/env python3
"""Weighted-tardiness job shops: ours against CP-SAT at the same time limit.

The planner minimises weighted tardiness, but the public benchmark folder holds makespan instances
only. This script turns classic shops into weighted-tardiness instances built by the rule of Singer
and Pinedo's study (release 0; due date = floor(f x the job's total processing time) for a tightness
factor f, 1.3 tight to 1.6 loose; the first 20 % of the jobs weigh 4, the next 60 % weigh 2, the
last 20 % weigh 1), writes them in the scheduler's JSON format, solves each with
`microfactory schedule solve --objective tardiness` and with a CP-SAT model of the same problem,
and prints one table (BENCHMARKS.md, "Weighted tardiness against CP-SAT").

The default set is abz5, abz6, ft10, la16-24 and orb01-10: 10 x 10 shops except la21-24 (15 x 10).
It follows the study's rule, not its exact instance list.

Both schedules are checked here: ours by the solver's own checker (`"valid"`), CP-SAT's by
recomputing precedence, machine overlap and the objective from its start times.

Usage:
  python3 bench/tardiness.py JSSP_DIR OUT_DIR [--bin PATH] [--time-limit S] [--seeds N]
                             [--factors 1.3,1.5,1.6] [--instances abz5,la16,...] [--jobs N]
                             [--workers N] [--no-cpsat]

JSSP_DIR is a folder of standard-format shops, such as ../shared/bench/scheduling/jssp. Our runs
go `--jobs` at a time (say so when quoting the figures); CP-SAT runs alone with `--workers`.
"""

import argparse
import concurrent.futures
import csv
import json
import os
import subprocess
import sys

# 22 classic shops in the spirit of Singer and Pinedo's set (see the module text).
DEFAULT_INSTANCES = ["abz5", "abz6", "ft10"] + [f"la{k}" for k in range(16, 25)] + [
    f"orb{k:02d}" for k in range(1, 11)
]


def read_standard(path):
    """Rows of (machine, time) per job from a standard-format shop."""
    with open(path) as text:
        numbers = [int(token) for token in text.read().split()]
    jobs, machines = numbers[0], numbers[1]
    values = numbers[2:]
    if len(values) < jobs * machines * 2:
        sys.exit(f"{path}: expected {jobs} x {machines} (machine, time) pairs")
    return [
        [(values[2 * (j * machines + k)], values[2 * (j * machines + k) + 1]) for k in range(machines)]
        for j in range(jobs)
    ]


def weight(job, jobs):
    """4 for the first 20 % of the jobs, 2 for the next 60 %, 1 for the rest."""
    if job < jobs * 0.2:
        return 4
    if job < jobs * 0.8:
        return 2
    return 1


def tardiness_problem(name, shop, factor):
    machines = 1 + max(machine for job in shop for machine, _ in job)
    return {
        "name": name,
        "machines": [{} for _ in range(machines)],
        "jobs": [
            {
                "due": int(factor * sum(time for _, time in job) + 1e-9),
                "weight": weight(j, len(shop)),
                "operations": [{"alternatives": [[machine, time]]} for machine, time in job],
            }
            for j, job in enumerate(shop)
        ],
    }


def weighted_tardiness(problem, ends):
    return sum(job["weight"] * max(0, end - job["due"]) for job, end in zip(problem["jobs"], ends))


def run_ours(binary, path, time_limit, seed):
    out = subprocess.run(
        [binary, "schedule", "solve", path, "--objective", "tardiness", "--time-limit", str(time_limit),
         "--seed", str(seed)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cpsat(problem, time_limit, workers):
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    horizon = sum(op["alternatives"][0][1] for job in problem["jobs"] for op in job["operations"])
    starts, intervals = [], {}
    tardy = []
    for j, job in enumerate(problem["jobs"]):
        previous_end = None
        row = []
        for k, op in enumerate(job["operations"]):
            machine, time = op["alternatives"][0]
            start = model.NewIntVar(0, horizon, f"s{j}_{k}")
            end = model.NewIntVar(0, horizon, f"e{j}_{k}")
            intervals.setdefault(machine, []).append(model.NewIntervalVar(start, time, end, f"i{j}_{k}"))
            if previous_end is not None:
                model.Add(start >= previous_end)
            previous_end = end
            row.append((start, time))
        starts.append(row)
        late = model.NewIntVar(0, horizon, f"t{j}")
        model.AddMaxEquality(late, [0, previous_end - job["due"]])
        tardy.append(job["weight"] * late)
    for machine_intervals in intervals.values():
        model.AddNoOverlap(machine_intervals)
    model.Minimize(sum(tardy))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {"status": solver.StatusName(status)}
    schedule = [[(solver.Value(start), time) for start, time in row] for row in starts]
    ends = [row[-1][0] + row[-1][1] for row in schedule]
    value = weighted_tardiness(problem, ends)
    return {
        "status": solver.StatusName(status),
        "weighted_tardiness": value,
        "bound": int(solver.BestObjectiveBound()),
        "verified": check(problem, schedule) and value == int(solver.ObjectiveValue()),
    }


def check(problem, schedule):
    """Precedence within jobs and no overlap on machines."""
    busy = {}
    for job, row in zip(problem["jobs"], schedule):
        ready = 0
        for op, (start, time) in zip(job["operations"], row):
            if start < ready:
                return False
            ready = start + time
            busy.setdefault(op["alternatives"][0][0], []).append((start, start + time))
    for spans in busy.values():
        spans.sort()
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jssp_dir", help="folder of standard-format shops (NAME.txt)")
    parser.add_argument("out_dir", help="where the JSON instances and tardiness.csv go")
    parser.add_argument("--bin", default="target/release/microfactory", help="our binary")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per run, both solvers")
    parser.add_argument("--seeds", type=int, default=3, help="our seeds 0..N per instance")
    parser.add_argument("--factors", default="1.3,1.5,1.6", help="due-date tightness factors")
    parser.add_argument("--instances", default=",".join(DEFAULT_INSTANCES), help="comma-separated shop names")
    parser.add_argument("--jobs", type=int, default=1, help="our runs side by side")
    parser.add_argument("--workers", type=int, default=2, help="CP-SAT workers")
    parser.add_argument("--no-cpsat", action="store_true", help="our runs only")
    args = parser.parse_args()
    if not args.no_cpsat:
        try:
            import ortools.sat.python.cp_model  # noqa: F401
        except ImportError:
            sys.exit("CP-SAT is missing: pip install ortools (or pass --no-cpsat)")
    os.makedirs(args.out_dir, exist_ok=True)
    factors = [float(f) for f in args.factors.split(",")]
    problems = []
    for name in args.instances.split(","):
        shop = read_standard(os.path.join(args.jssp_dir, f"{name}.txt"))
        for factor in factors:
            label = f"{name}_f{factor:g}"
            problem = tardiness_problem(label, shop, factor)
            path = os.path.join(args.out_dir, f"{label}.json")
            with open(path, "w") as out:
                json.dump(problem, out)
            problems.append((label, factor, problem, path))

    runs = [(label, path, seed) for label, _, _, path in problems for seed in range(args.seeds)]
    ours = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_ours, args.bin, path, args.time_limit, seed): (label, seed)
                   for label, path, seed in runs}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            label, seed = futures[future]
            ours[(label, seed)] = future.result()
            print(f"\rours {done}/{len(runs)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    peer = {}
    if not args.no_cpsat:
        for done, (label, _, problem, _) in enumerate(problems, 1):
            peer[label] = run_cpsat(problem, args.time_limit, args.workers)
            print(f"\rCP-SAT {done}/{len(problems)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)

    rows = []
    print("| instance | f | ours (seeds) | ours mean | CP-SAT | CP-SAT bound | ours valid, CP-SAT verified |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    for label, factor, _, _ in problems:
        results = [ours[(label, seed)] for seed in range(args.seeds)]
        values = [r["weighted_tardiness"] for r in results]
        mean = sum(values) / len(values)
        cp = peer.get(label, {})
        valid = all(r["valid"] for r in results)
        print(f"| {label.rsplit('_', 1)[0]} | {factor:g} | {' '.join(map(str, values))} | {mean:.1f} | "
              f"{cp.get('weighted_tardiness', '—')} | {cp.get('bound', '—')} | {valid}, {cp.get('verified', '—')} |")
        rows.append({
            "instance": label, "factor": factor, "ours": " ".join(map(str, values)), "ours_mean": mean,
            "ours_valid": valid, "cpsat": cp.get("weighted_tardiness", ""), "cpsat_bound": cp.get("bound", ""),
            "cpsat_status": cp.get("status", ""), "cpsat_verified": cp.get("verified", ""),
        })
    for factor in factors:
        chosen = [row for row in rows if row["factor"] == factor]
        ours_total = sum(row["ours_mean"] for row in chosen)
        line = f"f = {factor:g}: sum of our means {ours_total:.1f}"
        if peer:
            cp_total = sum(row["cpsat"] for row in chosen if row["cpsat"] != "")
            better = sum(1 for row in chosen if row["cpsat"] != "" and row["ours_mean"] < row["cpsat"])
            worse = sum(1 for row in chosen if row["cpsat"] != "" and row["ours_mean"] > row["cpsat"])
            line += f", CP-SAT {cp_total}; ours better on {better}, worse on {worse} of {len(chosen)}"
        print(line)
    with open(os.path.join(args.out_dir, "tardiness.csv"), "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
