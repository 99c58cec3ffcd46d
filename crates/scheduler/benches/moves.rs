//! Criterion bench of the search's inner loop: moves estimated per second on the critical-block
//! neighbourhood, and full tabu iterations (evaluate, pick, apply, exact decode) per second, on random
//! 15x15, 30x20 and flexible 20x10 shops generated in code.

use criterion::{Criterion, Throughput, criterion_main};
use scheduler::{Alternative, Job, Machine, MoveBench, Operation, Problem};

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

fn moves(c: &mut Criterion) {
    let shops = [
        ("jssp_15x15", random_shop(15, 15, 1, 7)),
        ("jssp_30x20", random_shop(30, 20, 1, 11)),
        ("fjsp_20x10x3", random_shop(20, 10, 3, 13)),
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
    group.finish();
}

// reason: criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::moves);
}
criterion_main!(harness::benches);
