//! Criterion bench of the search's inner loop: moves estimated per second on the critical-block
//! neighbourhood, and full tabu iterations (evaluate, pick, apply, exact decode) per second, on random
//! 15x15, 30x20 and flexible 20x10 shops (3 or 5 alternatives) generated in code; and moves probed exactly per second
//! (the tardiness objectives' evaluation) on a plant-like shop with due dates, setups and shifts.

use criterion::{Criterion, Throughput, criterion_main};
use scheduler::{Alternative, Interval, Job, Machine, MoveBench, Operation, Problem};

/// Xorshift64 for the instance generator.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// A Taillard-like random shop; with `flexibility > 1`, each operation gets that many alternatives.
fn random_shop(n_jobs: usize, n_machines: usize, flexibility: usize, seed: u64) -> Problem {
    let mut rng = Xorshift(seed.max(1));
    let jobs = (0..n_jobs)
        .map(|_| {
            let mut order: Vec<usize> = (0..n_machines).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            Job::new(
                order
                    .iter()
                    .map(|&first| {
                        let alternatives = (0..flexibility)
                            .map(|k| Alternative {
                                machine: (first + k * 3) % n_machines,
                                duration: 1 + rng.below(99) as i64,
                            })
                            .collect();
                        Operation::new(alternatives)
                    })
                    .collect(),
            )
        })
        .collect();
    Problem { name: "bench".into(), machines: vec![Machine::default(); n_machines], jobs }
}

/// A plant-like shop: 300 jobs of 5 operations on 10 machines (2 alternatives each), released over
/// the first days, due dates and weights, three setup families, and machines that stop for the
/// night (two shifts of eight hours, then eight hours off, in minutes).
fn plant(seed: u64) -> Problem {
    let mut rng = Xorshift(seed.max(1));
    let n_machines = 10;
    let day = 24 * 60;
    let machines = (0..n_machines)
        .map(|_| Machine {
            setup: (0..3)
                .map(|a| (0..3).map(|b| if a == b { 0 } else { 15 + 10 * (a + b) as i64 }).collect())
                .collect(),
            initial_family: None,
            unavailable: (0..60).map(|d| Interval { start: d * day + 16 * 60, end: (d + 1) * day }).collect(),
        })
        .collect();
    let jobs = (0..300)
        .map(|_| {
            let family = rng.below(3) as usize;
            let mut job = Job::new(
                (0..5)
                    .map(|_| {
                        let first = rng.below(n_machines as u64) as usize;
                        let duration = 20 + rng.below(160) as i64;
                        let alternatives = (0..2)
                            .map(|k| Alternative { machine: (first + 5 * k) % n_machines, duration })
                            .collect();
                        let mut op = Operation::new(alternatives);
                        op.family = family;
                        op
                    })
                    .collect(),
            );
            job.release = rng.below(3 * day as u64) as i64;
            job.due = Some(job.release + 2 * day + rng.below(10 * day as u64) as i64);
            job.weight = 1 + rng.below(3) as i64;
            job
        })
        .collect();
    Problem { name: "plant".into(), machines, jobs }
}

fn moves(c: &mut Criterion) {
    let shops = [
        ("jssp_15x15", random_shop(15, 15, 1, 7)),
        ("jssp_30x20", random_shop(30, 20, 1, 11)),
        ("fjsp_20x10x3", random_shop(20, 10, 3, 13)),
        ("fjsp_20x10x5", random_shop(20, 10, 5, 13)),
    ];
    let mut group = c.benchmark_group("moves");
    for (name, problem) in &shops {
        MoveBench::with(problem, 1, |bench| {
            // Warm up into a typical search state, then measure estimated moves per second.
            for _ in 0..200 {
                bench.iterate();
            }
            let per_pass = bench.evaluate_neighbourhood().max(1) as u64;
            group.throughput(Throughput::Elements(per_pass));
            group.bench_function(format!("estimate/{name}"), |b| b.iter(|| bench.evaluate_neighbourhood()));
            group.throughput(Throughput::Elements(1));
            group.bench_function(format!("iteration/{name}"), |b| b.iter(|| bench.iterate()));
        });
    }
    let plant = plant(17);
    MoveBench::with(&plant, 1, |bench| {
        let per_pass = bench.probe_neighbourhood().max(1) as u64;
        group.throughput(Throughput::Elements(per_pass));
        group.bench_function("probe/plant_300x5", |b| b.iter(|| bench.probe_neighbourhood()));
    });
    group.finish();
}

// reason: criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::moves);
}
criterion_main!(harness::benches);
