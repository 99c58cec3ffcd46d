#!/usr/bin/env python3
"""Writes job-shop instances in shapes the public benchmark folder does not hold.

The scheduler is tuned on `../shared/bench/scheduling`; these shapes check that it carries over to
shops it has never seen (BENCHMARKS.md, "Shop shapes outside the public set"):

  rt<k>        100 jobs x 20 machines, every job visits every machine once in a random order,
               times 1-99 (the shape of Taillard's largest shops)
  dr<n>x<m>    n x m, random routing, times 1-200 (the shape of Demirkol et al.'s first half)
  ds<n>x<m>    the same, but every job visits the first half of the machines before the second
               half (the shape of Demirkol et al.'s harder second half)
  vf<n>x<m>    flexible: a random classic n x m shop whose every operation may also run on each
               other machine with probability 1/2, at the same time (the shape of Hurink's vdata)
  mp<k>        flexible: 10-20 jobs of 15-25 operations on 5-10 machines, each operation eligible
               on 1..m machines with times within +-20 % of its own base time 10-100 (the shape of
               Dauzere-Peres and Paulli's multi-purpose machine shops)

Classic shops go to `<name>.txt` (standard format, machines from 0), flexible ones to `<name>.fjs`
(Brandimarte format, machines from 1). `bounds.csv` lists the simple lower bound (longest job,
busiest machine; for flexible shops the shortest alternative of each operation and the total work
spread over all machines) as both bounds, so `microfactory schedule bench` reports gaps to that
lower bound, not to a best-known schedule.

Usage: python3 bench/shop-shapes.py OUT_DIR [--seed S]
"""

import argparse
import os
import random


def classic_shop(rng, jobs, machines, longest, routing):
    """Rows of (machine, time) per job."""
    shop = []
    for _ in range(jobs):
        if routing == "two-sets":
            first = list(range(machines // 2))
            second = list(range(machines // 2, machines))
            rng.shuffle(first)
            rng.shuffle(second)
            order = first + second
        else:
            order = list(range(machines))
            rng.shuffle(order)
        shop.append([(machine, rng.randint(1, longest)) for machine in order])
    return shop


def classic_bound(shop, machines):
    load = [0] * machines
    for job in shop:
        for machine, time in job:
            load[machine] += time
    return max(max(load), max(sum(time for _, time in job) for job in shop))


def flexible_bound(shop, machines):
    shortest = [[min(time for _, time in alternatives) for alternatives in job] for job in shop]
    total = sum(sum(job) for job in shortest)
    return max(max(sum(job) for job in shortest), -(-total // machines))


def write_classic(path, shop, machines):
    with open(path, "w") as out:
        out.write(f"{len(shop)} {machines}\n")
        for job in shop:
            out.write(" ".join(f"{machine} {time}" for machine, time in job) + "\n")


def write_flexible(path, shop, machines):
    with open(path, "w") as out:
        out.write(f"{len(shop)} {machines}\n")
        for job in shop:
            fields = [len(job)]
            for alternatives in job:
                fields.append(len(alternatives))
                for machine, time in alternatives:
                    fields += [machine + 1, time]
            out.write(" ".join(map(str, fields)) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    rows = []

    def classic(name, shop, machines):
        write_classic(os.path.join(args.out_dir, f"{name}.txt"), shop, machines)
        rows.append((name, len(shop), machines, classic_bound(shop, machines)))

    def flexible(name, shop, machines):
        write_flexible(os.path.join(args.out_dir, f"{name}.fjs"), shop, machines)
        rows.append((name, len(shop), machines, flexible_bound(shop, machines)))

    for k in range(1, 4):
        classic(f"rt{k}", classic_shop(rng, 100, 20, 99, "random"), 20)
    for jobs, machines in [(20, 15), (30, 20), (40, 20), (50, 20)]:
        classic(f"dr{jobs}x{machines}", classic_shop(rng, jobs, machines, 200, "random"), machines)
        classic(f"ds{jobs}x{machines}", classic_shop(rng, jobs, machines, 200, "two-sets"), machines)
    for jobs, machines in [(10, 10), (15, 10), (20, 10), (30, 10), (15, 15), (20, 15)]:
        base = classic_shop(rng, jobs, machines, 99, "random")
        shop = [
            [
                [(other, time) for other in range(machines) if other == machine or rng.random() < 0.5]
                for machine, time in job
            ]
            for job in base
        ]
        flexible(f"vf{jobs}x{machines}", shop, machines)
    for k, (jobs, machines) in enumerate([(10, 5), (15, 8), (20, 10), (20, 10)], start=1):
        shop = []
        for _ in range(jobs):
            job = []
            for _ in range(rng.randint(15, 25)):
                eligible = sorted(rng.sample(range(machines), rng.randint(1, machines)))
                base = rng.randint(10, 100)
                job.append([(machine, max(1, round(base * rng.uniform(0.8, 1.2)))) for machine in eligible])
            shop.append(job)
        flexible(f"mp{k}", shop, machines)

    with open(os.path.join(args.out_dir, "bounds.csv"), "w") as out:
        out.write("instance,jobs,machines,lower_bound,upper_bound,optimal,source\n")
        for name, jobs, machines, bound in rows:
            out.write(f"{name},{jobs},{machines},{bound},{bound},false,simple lower bound\n")
    print(f"{len(rows)} instances in {args.out_dir}")


if __name__ == "__main__":
    main()
