//! Solver tests: brute-force optimum on tiny shops, one test per extension, tardiness objectives,
//! determinism, and a property test that every solution passes the independent checker.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use super::*;
use crate::check::check;
use crate::problem::{Alternative, FixedStart, Interval, Job, Machine, Operation};

fn config(iterations: u64) -> Config {
    Config { iteration_limit: Some(iterations), time_limit: None, ..Config::default() }
}

fn assert_feasible(problem: &Problem, solution: &Solution) {
    let violations = check(problem, &solution.operations);
    assert!(violations.is_empty(), "{violations:?}");
    assert!(solution.feasible);
    let (makespan, tardiness) = crate::objectives(problem, &solution.operations);
    assert_eq!((makespan, tardiness), (solution.makespan, solution.weighted_tardiness));
}

/// Optimal makespan of a tiny job shop by enumerating every machine order (independent of the solver).
fn brute_force(problem: &Problem) -> i64 {
    let n_machines = problem.machines.len();
    let mut ops_on: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_machines];
    for (j, job) in problem.jobs.iter().enumerate() {
        for (k, op) in job.operations.iter().enumerate() {
            ops_on[op.alternatives[0].machine].push((j, k));
        }
    }
    fn permutations(items: &[(usize, usize)]) -> Vec<Vec<(usize, usize)>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                out.push(tail);
            }
        }
        out
    }
    let choices: Vec<Vec<Vec<(usize, usize)>>> = ops_on.iter().map(|ops| permutations(ops)).collect();
    let mut best = i64::MAX;
    let mut index = vec![0usize; n_machines];
    loop {
        // Relax start times until stable; a cycle never stabilises within n rounds.
        let mut start: Vec<Vec<i64>> =
            problem.jobs.iter().map(|j| vec![j.release; j.operations.len()]).collect();
        let n_ops = problem.n_operations();
        let mut stable = false;
        for _ in 0..=n_ops {
            let mut changed = false;
            for (j, job) in problem.jobs.iter().enumerate() {
                for k in 1..job.operations.len() {
                    let ready = start[j][k - 1] + job.operations[k - 1].alternatives[0].duration;
                    if start[j][k] < ready {
                        start[j][k] = ready;
                        changed = true;
                    }
                }
            }
            for (m, choice) in choices.iter().enumerate() {
                let order = &choice[index[m]];
                for w in order.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let ready = start[a.0][a.1] + problem.jobs[a.0].operations[a.1].alternatives[0].duration;
                    if start[b.0][b.1] < ready {
                        start[b.0][b.1] = ready;
                        changed = true;
                    }
                }
            }
            if !changed {
                stable = true;
                break;
            }
        }
        if stable {
            let makespan = problem
                .jobs
                .iter()
                .enumerate()
                .flat_map(|(j, job)| {
                    let start = &start;
                    job.operations
                        .iter()
                        .enumerate()
                        .map(move |(k, op)| start[j][k] + op.alternatives[0].duration)
                })
                .max()
                .unwrap_or(0);
            best = best.min(makespan);
        }
        let mut m = 0;
        loop {
            if m == n_machines {
                return best;
            }
            index[m] += 1;
            if index[m] < choices[m].len() {
                break;
            }
            index[m] = 0;
            m += 1;
        }
    }
}

fn random_job_shop(seed: u64, n_jobs: usize, n_machines: usize) -> Problem {
    let mut rng = rng::Rng::new(seed);
    let routes: Vec<Vec<(usize, i64)>> = (0..n_jobs)
        .map(|_| {
            let mut machines: Vec<usize> = (0..n_machines).collect();
            for i in (1..machines.len()).rev() {
                machines.swap(i, rng.below(i + 1));
            }
            machines.into_iter().map(|m| (m, 1 + rng.below(9) as i64)).collect()
        })
        .collect();
    Problem::job_shop("random", n_machines, &routes)
}

#[test]
fn tiny_shops_reach_the_brute_force_optimum() {
    for seed in 0..12 {
        let problem = random_job_shop(seed, 3, 3);
        let solution = solve(&problem, &config(2_000));
        assert_feasible(&problem, &solution);
        assert_eq!(solution.makespan, brute_force(&problem), "seed {seed}");
    }
}

#[test]
fn ft06_is_solved_to_optimality() {
    let text = "6 6\n2 1 0 3 1 6 3 7 5 3 4 6\n1 8 2 5 4 10 5 10 0 10 3 4\n2 5 3 4 5 8 0 9 1 1 4 7\n\
                1 5 0 5 2 5 3 3 4 8 5 9\n2 9 1 3 4 5 5 4 0 3 3 1\n1 3 3 3 5 9 0 10 4 4 2 1\n";
    let problem = crate::formats::parse(text, crate::formats::Format::Jssp, "ft06").unwrap();
    let solution = solve(&problem, &config(20_000));
    assert_feasible(&problem, &solution);
    assert_eq!(solution.makespan, 55);
}

#[test]
fn same_seed_same_iterations_same_schedule() {
    // A square shop: its optimum lies above the lower bound, so both runs use their iterations.
    let problem = random_job_shop(7, 8, 8);
    let a = solve(&problem, &Config { seed: 3, ..config(3_000) });
    let b = solve(&problem, &Config { seed: 3, ..config(3_000) });
    assert_eq!(a.operations, b.operations);
    let c = solve(&problem, &Config { seed: 3, threads: 2, ..config(1_000) });
    let d = solve(&problem, &Config { seed: 3, threads: 2, ..config(1_000) });
    assert_eq!(c.operations, d.operations);
    assert_eq!(c.iterations, 2_000);
}

#[test]
fn every_thread_reports_its_improvements_down_to_the_result() {
    let problem = random_job_shop(7, 8, 8);
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let watched = Config {
        seed: 3,
        threads: 2,
        on_improvement: Some(Arc::new(move |it: Improvement| sink.lock().unwrap().push(it))),
        ..config(3_000)
    };
    let solution = solve(&problem, &watched);
    let reports = reports.lock().unwrap().clone();
    for thread in 0..2 {
        let mine: Vec<&Improvement> = reports.iter().filter(|it| it.thread == thread).collect();
        assert!(mine.len() >= 2, "thread {thread} reports its start and at least one improvement: {mine:?}");
        for pair in mine.windows(2) {
            assert!(pair[1].makespan < pair[0].makespan, "{pair:?}");
            assert!(pair[1].elapsed >= pair[0].elapsed && pair[1].elapsed <= solution.elapsed, "{pair:?}");
        }
    }
    assert!(reports.iter().all(|it| it.thread < 2 && it.feasible && it.weighted_tardiness == 0));
    assert_eq!(reports.iter().map(|it| it.makespan).min(), Some(solution.makespan));
    // Watching changes nothing.
    let unwatched = solve(&problem, &Config { seed: 3, threads: 2, ..config(3_000) });
    assert_eq!(unwatched.operations, solution.operations);
}

#[test]
fn thread_counts_are_kept_within_bounds() {
    let problem = random_job_shop(3, 4, 3);
    // Iterations are summed over the threads that ran: 0 runs one, 100,000 runs `MAX_THREADS`.
    let none = solve(&problem, &Config { threads: 0, ..config(10) });
    assert_eq!(none.iterations, 10);
    let many = solve(&problem, &Config { threads: 100_000, ..config(10) });
    assert_eq!(many.iterations, 10 * MAX_THREADS as u64);
    assert_feasible(&problem, &many);
}

/// A clock that advances one second per reading: the solver must stop on the time limit.
struct TickingClock(AtomicU64);

impl Clock for TickingClock {
    fn elapsed(&self) -> Duration {
        Duration::from_secs(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

#[test]
fn injected_clock_stops_the_search() {
    let problem = random_job_shop(1, 10, 5);
    let config = Config {
        time_limit: Some(Duration::from_secs(50)),
        iteration_limit: None,
        clock: Some(Arc::new(TickingClock(AtomicU64::new(0)))),
        ..Config::default()
    };
    let solution = solve(&problem, &config);
    assert_feasible(&problem, &solution);
    assert!(solution.iterations < 1_000, "{}", solution.iterations);
}

#[test]
fn flexible_shop_uses_the_faster_machine() {
    let op = |alts: &[(usize, i64)]| {
        Operation::new(alts.iter().map(|&(machine, duration)| Alternative { machine, duration }).collect())
    };
    let problem = Problem {
        name: "flex".into(),
        machines: vec![Machine::default(); 2],
        jobs: vec![
            Job::new(vec![op(&[(0, 5), (1, 2)]), op(&[(0, 3)])]),
            Job::new(vec![op(&[(0, 2), (1, 6)]), op(&[(1, 3)])]),
        ],
    };
    let solution = solve(&problem, &config(1_000));
    assert_feasible(&problem, &solution);
    assert_eq!(solution.makespan, 5);
}

#[test]
fn a_flexible_shop_stops_at_the_work_bound_of_a_machine_set() {
    // Six jobs of 4 that may run on machine 0 or 1, and one of 3 on machine 2: machines 0 and 1
    // share 24 units of work, so 12 is optimal, though no job (4) or single machine (3) says so.
    let op = |alts: &[(usize, i64)]| {
        Operation::new(alts.iter().map(|&(machine, duration)| Alternative { machine, duration }).collect())
    };
    let mut jobs: Vec<Job> = (0..6).map(|_| Job::new(vec![op(&[(0, 4), (1, 4)])])).collect();
    jobs.push(Job::new(vec![op(&[(2, 3)])]));
    let problem = Problem { name: "pairs".into(), machines: vec![Machine::default(); 3], jobs };
    assert_stops_at_the_bound(&problem, 12);
}

/// `problem`'s lower bound is `optimum`, and the search stops as soon as it reaches it.
fn assert_stops_at_the_bound(problem: &Problem, optimum: i64) {
    assert_eq!(Inst::new(problem).lower_bound, optimum);
    let solution = solve(problem, &config(1_000_000));
    assert_feasible(problem, &solution);
    assert_eq!(solution.makespan, optimum);
    assert!(solution.iterations < 1_000, "{}", solution.iterations);
}

#[test]
fn a_shop_stops_at_the_one_machine_bound() {
    // Both jobs start on machine 0 and have 10 more to do elsewhere: whichever goes second ends at
    // 20, though no job (15) and no machine load (10) says so.
    let problem = Problem::job_shop("tails", 3, &[vec![(0, 5), (1, 10)], vec![(0, 5), (2, 10)]]);
    assert_stops_at_the_bound(&problem, 20);
}

#[test]
fn jacksons_preemptive_schedule_serves_the_longest_tail_first() {
    // The long operation is interrupted at 2 by one with a longer tail, which delivers at 2 + 3 + 20.
    assert_eq!(inst::jackson_preemptive(&mut [(0, 10, 0), (2, 3, 20)]), 25);
    // Idle until the first head, then the longer tail first: 5 + 2 + 4 = 11 against 5 + 4 + 1.
    assert_eq!(inst::jackson_preemptive(&mut [(5, 2, 1), (5, 2, 4)]), 11);
    // A machine without single-machine operations bounds nothing.
    assert_eq!(inst::jackson_preemptive(&mut []), 0);
}

#[test]
fn the_lower_bound_never_exceeds_the_brute_force_optimum() {
    let mut reached = 0;
    for seed in 0..80 {
        let (jobs, machines) = if seed % 2 == 0 { (3, 3) } else { (4, 2) };
        let mut problem = random_job_shop(seed, jobs, machines);
        // Releases make the heads differ from the job prefixes.
        for (j, job) in problem.jobs.iter_mut().enumerate() {
            job.release = (seed as i64 * 7 + j as i64 * 5) % 9;
        }
        let (bound, optimum) = (Inst::new(&problem).lower_bound, brute_force(&problem));
        assert!(bound <= optimum, "seed {seed}: bound {bound} above the optimum {optimum}");
        reached += usize::from(bound == optimum);
    }
    // The bound is tight on some of them, so the comparison tests something.
    assert!(reached > 10, "{reached}");
}

#[test]
fn setups_are_respected() {
    // One machine, families alternate: grouping by family avoids the big setups.
    let mut problem =
        Problem::job_shop("setup", 1, &[vec![(0, 2)], vec![(0, 2)], vec![(0, 2)], vec![(0, 2)]]);
    problem.machines[0].setup = vec![vec![0, 10], vec![10, 0]];
    problem.machines[0].initial_family = Some(0);
    problem.jobs[1].operations[0].family = 1;
    problem.jobs[3].operations[0].family = 1;
    let solution = solve(&problem, &config(500));
    assert_feasible(&problem, &solution);
    assert_eq!(solution.makespan, 18);
}

#[test]
fn releases_and_breaks_are_respected() {
    let mut problem = Problem::job_shop("breaks", 2, &[vec![(0, 4), (1, 4)], vec![(1, 3), (0, 3)]]);
    problem.jobs[1].release = 2;
    problem.machines[0].unavailable = vec![Interval { start: 3, end: 6 }];
    problem.machines[1].unavailable = vec![Interval { start: 0, end: 1 }, Interval { start: 9, end: 10 }];
    let solution = solve(&problem, &config(500));
    assert_feasible(&problem, &solution);
    assert!(solution.operations.iter().all(|it| it.start >= 0));
    assert_eq!(solution.operations[0].start, 6, "op 0 does not fit before the break");
}

#[test]
fn fixed_operations_stay_put() {
    let mut problem = random_job_shop(11, 6, 4);
    let fixed = FixedStart { machine: problem.jobs[2].operations[0].alternatives[0].machine, start: 5 };
    problem.jobs[2].operations[0].fixed = Some(fixed);
    problem.validate().unwrap();
    let solution = solve(&problem, &config(2_000));
    assert_feasible(&problem, &solution);
    let scheduled = solution.operations.iter().find(|it| it.job == 2 && it.op == 0).unwrap();
    assert_eq!((scheduled.machine, scheduled.start), (fixed.machine, 5));
}

#[test]
fn tardiness_objectives_prefer_urgent_jobs() {
    // Two jobs on one machine: the short urgent one must go first.
    let mut problem = Problem::job_shop("tardy", 1, &[vec![(0, 10)], vec![(0, 2)], vec![(0, 5)]]);
    problem.jobs[1].due = Some(2);
    problem.jobs[1].weight = 5;
    problem.jobs[2].due = Some(7);
    let solution = solve(&problem, &Config { objective: Objective::WeightedTardiness, ..config(500) });
    assert_feasible(&problem, &solution);
    assert_eq!(solution.weighted_tardiness, 0);
    let lex = solve(&problem, &Config { objective: Objective::TardinessThenMakespan, ..config(500) });
    assert_feasible(&problem, &lex);
    assert_eq!((lex.weighted_tardiness, lex.makespan), (0, 17));
}

/// A random small problem with every extension switched on by the flags.
fn random_extended(seed: u64, flexible: bool, setups: bool, breaks: bool, fixed: bool) -> Problem {
    let mut rng = rng::Rng::new(seed);
    let n_machines = 2 + rng.below(3);
    let n_jobs = 2 + rng.below(5);
    let n_families = 3;
    let machines = (0..n_machines)
        .map(|_| Machine {
            setup: if setups {
                (0..n_families)
                    .map(|a| (0..n_families).map(|b| if a == b { 0 } else { rng.below(6) as i64 }).collect())
                    .collect()
            } else {
                Vec::new()
            },
            initial_family: if setups && rng.below(2) == 0 { Some(rng.below(n_families)) } else { None },
            unavailable: if breaks {
                (0..rng.below(3))
                    .map(|i| {
                        let start = 10 + 25 * i as i64 + rng.below(10) as i64;
                        Interval { start, end: start + 1 + rng.below(6) as i64 }
                    })
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    let jobs = (0..n_jobs)
        .map(|_| {
            let n_ops = 1 + rng.below(4);
            let mut job = Job::new(
                (0..n_ops)
                    .map(|_| {
                        let n_alts = if flexible { 1 + rng.below(n_machines) } else { 1 };
                        let mut ms: Vec<usize> = (0..n_machines).collect();
                        for i in (1..ms.len()).rev() {
                            ms.swap(i, rng.below(i + 1));
                        }
                        let mut op = Operation::new(
                            ms[..n_alts]
                                .iter()
                                .map(|&machine| Alternative {
                                    machine,
                                    duration: rng.below(8) as i64 + i64::from(setups),
                                })
                                .collect(),
                        );
                        op.family = rng.below(n_families);
                        op
                    })
                    .collect(),
            );
            job.release = rng.below(8) as i64;
            job.due = Some(10 + rng.below(30) as i64);
            job.weight = 1 + rng.below(3) as i64;
            job
        })
        .collect();
    let mut problem = Problem { name: "prop".into(), machines, jobs };
    if fixed {
        // Fix the first op of job 0 late enough that it is always reachable, if it fits the rules.
        let alt = problem.jobs[0].operations[0].alternatives[0];
        problem.jobs[0].operations[0].fixed =
            Some(FixedStart { machine: alt.machine, start: 40 + rng.below(10) as i64 });
        if problem.validate().is_err() {
            problem.jobs[0].operations[0].fixed = None;
        }
    }
    problem
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn solutions_always_pass_the_checker(
        seed in 0u64..1_000_000,
        flexible: bool, setups: bool, breaks: bool, fixed: bool, objective in 0usize..3,
    ) {
        let problem = random_extended(seed, flexible, setups, breaks, fixed);
        prop_assume!(problem.validate().is_ok());
        let objective = [Objective::Makespan, Objective::WeightedTardiness, Objective::TardinessThenMakespan][objective];
        let solution = solve(&problem, &Config { objective, seed, ..config(300) });
        let violations = check(&problem, &solution.operations);
        prop_assert!(violations.is_empty(), "{:?}", violations);
        prop_assert!(solution.feasible);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Compacting a solver's schedule keeps it valid, never makes a job finish later, and leaves no
    /// operation that could start earlier in a gap of its machine.
    #[test]
    fn compacting_keeps_schedules_valid_and_no_later(
        seed in 0u64..1_000_000,
        flexible: bool, setups: bool, breaks: bool, fixed: bool,
    ) {
        let problem = random_extended(seed, flexible, setups, breaks, fixed);
        prop_assume!(problem.validate().is_ok());
        let solution = solve(&problem, &Config { objective: Objective::WeightedTardiness, seed, ..config(50) });
        let mut compacted = solution.operations.clone();
        crate::compact(&problem, &mut compacted);
        let violations = check(&problem, &compacted);
        prop_assert!(violations.is_empty(), "{:?}", violations);
        for (before, after) in solution.operations.iter().zip(&compacted) {
            prop_assert!(after.start <= before.start, "{before:?} -> {after:?}");
        }
        let mut again = compacted.clone();
        prop_assert_eq!(crate::compact(&problem, &mut again), 0, "a second pass finds nothing");
    }
}

#[test]
fn a_ready_operation_fills_an_idle_gap_before_a_later_one() {
    // Machine 1 runs job 0's second step (ready at 10) first, then job 1's only step (ready at 0),
    // as a search may leave it when neither order changes the makespan: job 1 waits from 0 to 14
    // while machine 1 is idle until 10. Compacted, job 1 runs 0 to 4 and job 0 keeps its times.
    let problem = Problem::job_shop("gap", 2, &[vec![(0, 10), (1, 5)], vec![(1, 4)]]);
    let op = |job, op, machine, start, end| ScheduledOperation { job, op, machine, start, end };
    let mut schedule = vec![op(0, 0, 0, 0, 10), op(0, 1, 1, 10, 15), op(1, 0, 1, 15, 19)];
    assert!(check(&problem, &schedule).is_empty());
    assert_eq!(crate::compact(&problem, &mut schedule), 1);
    assert_eq!(schedule, [op(0, 0, 0, 0, 10), op(0, 1, 1, 10, 15), op(1, 0, 1, 0, 4)]);
    // With a setup between families that leaves no room, it stays.
    let mut tight = problem.clone();
    tight.machines[1].setup = vec![vec![0, 0], vec![8, 0]];
    tight.jobs[1].operations[0].family = 1;
    let mut schedule = vec![op(0, 0, 0, 0, 10), op(0, 1, 1, 10, 15), op(1, 0, 1, 15, 19)];
    assert!(check(&tight, &schedule).is_empty());
    assert_eq!(crate::compact(&tight, &mut schedule), 0, "4 + 8 setup does not fit before 10");
}

#[test]
fn an_operation_its_neighbours_need_still_starts_earlier_between_them() {
    // Family 0 to family 2 takes a setup of 100, any other change none. Job 1 (family 1) waits
    // from 10 to 15 between job 0 (family 0) and job 2 (family 2); taken out, it would leave job 2
    // a setup of 100 after job 0, but between them it can start at 10, and job 2 then at 15.
    let mut problem = Problem::job_shop("between", 1, &[vec![(0, 10)], vec![(0, 5)], vec![(0, 5)]]);
    problem.machines[0].setup = vec![vec![0, 0, 100], vec![0, 0, 0], vec![0, 0, 0]];
    for (job, family) in [(1, 1), (2, 2)] {
        problem.jobs[job].operations[0].family = family;
    }
    let op = |job, start| ScheduledOperation {
        job,
        op: 0,
        machine: 0,
        start,
        end: start + if job == 0 { 10 } else { 5 },
    };
    let mut schedule = vec![op(0, 0), op(1, 15), op(2, 20)];
    assert!(check(&problem, &schedule).is_empty());
    assert_eq!(crate::compact(&problem, &mut schedule), 2);
    assert_eq!(schedule, [op(0, 0), op(1, 10), op(2, 15)]);
}

#[test]
fn a_shop_without_neighbours_stops_before_the_time_limit() {
    // One operation behind a break: the bound (5) is never reached and no move exists.
    let mut problem = Problem::job_shop("lonely", 1, &[vec![(0, 5)]]);
    problem.machines[0].unavailable = vec![Interval { start: 0, end: 10 }];
    let config = Config {
        time_limit: Some(Duration::from_secs(1_000_000)),
        iteration_limit: None,
        clock: Some(Arc::new(TickingClock(AtomicU64::new(0)))),
        ..Config::default()
    };
    let solution = solve(&problem, &config);
    assert_feasible(&problem, &solution);
    assert_eq!(solution.makespan, 15);
    assert!(solution.iterations < 100, "{}", solution.iterations);
}

#[test]
fn a_warm_start_is_never_lost() {
    let problem = random_job_shop(11, 8, 5);
    // The schedule of a long search, handed to a search with no iterations at all.
    let good = solve(&problem, &config(20_000));
    let warm = solve(&problem, &Config { initial: Some(good.operations.clone()), ..config(0) });
    assert_feasible(&problem, &warm);
    assert!(warm.makespan <= good.makespan, "{} > {}", warm.makespan, good.makespan);
    // With threads, the odd ones search without it; the even ones still keep it.
    let threaded =
        solve(&problem, &Config { initial: Some(good.operations.clone()), threads: 3, ..config(0) });
    assert_feasible(&problem, &threaded);
    assert!(threaded.makespan <= good.makespan, "{} > {}", threaded.makespan, good.makespan);
    // A schedule that does not fit the problem is ignored, not trusted.
    let mut broken = good.operations.clone();
    broken.pop();
    let cold = solve(&problem, &Config { initial: Some(broken), ..config(0) });
    assert_feasible(&problem, &cold);
}

#[test]
fn constructions_give_up_when_told_and_a_thread_without_one_leaves_the_answer_to_the_warm_start() {
    // 300 operations: more steps than a construction takes between two looks at `give_up`.
    let problem = random_job_shop(5, 30, 10);
    let inst = Inst::new(&problem);
    let mut rng = rng::Rng::new(1);
    assert!(construct::build(&inst, construct::Rule::Random, &mut rng, Some(&|| true)).is_none());
    let built = |give_up: Option<&dyn Fn() -> bool>| {
        let mut state = construct::build(&inst, construct::Rule::LeastSlack, &mut rng::Rng::new(2), give_up)
            .expect("not given up");
        state.decode(&inst);
        state.makespan
    };
    assert_eq!(built(Some(&|| false)), built(None));
    // The time is up before anything is built: the thread with the warm start answers with it,
    // the one without gives up its construction instead of overrunning the limit.
    let good = solve(&problem, &config(2_000));
    let config = Config {
        initial: Some(good.operations.clone()),
        threads: 2,
        time_limit: Some(Duration::from_secs(1)),
        iteration_limit: None,
        clock: Some(Arc::new(TickingClock(AtomicU64::new(0)))),
        ..Config::default()
    };
    let answer = solve(&problem, &config);
    assert_feasible(&problem, &answer);
    assert_eq!(answer.makespan, good.makespan);
}

#[test]
fn critical_operations_are_counted_on_every_critical_path() {
    // Job 0 runs 5 + 5 on machines 0 and 1, job 1 runs 2 on machine 0.
    let problem = Problem::job_shop("critical", 2, &[vec![(0, 5), (1, 5)], vec![(0, 2)]]);
    let inst = Inst::new(&problem);
    let count = |machine_0: Vec<usize>| {
        let mut state = State::new(&inst, vec![0, 1, 0], vec![5, 5, 2], vec![machine_0, vec![1]]);
        assert!(state.decode(&inst));
        (state.makespan, state.critical_count())
    };
    // Job 1 after job 0's first operation has slack (ends at 7 of 10): job 0 alone is critical.
    assert_eq!(count(vec![0, 2]), (10, 2));
    // Job 1 first delays job 0: all three operations lie on the one critical path.
    assert_eq!(count(vec![2, 0]), (12, 3));
}

#[test]
fn every_second_restarted_population_has_a_shorter_tenure() {
    // 30 jobs on 10 machines: the usual base tenure is 10 + 30 / 10.
    let inst = Inst::new(&random_job_shop(3, 30, 10));
    let tenures: Vec<u64> = (0..5).map(|restarts| tabu::population_tenure(&inst, restarts)).collect();
    assert_eq!(tenures, [13, 7, 13, 7, 13]);
}

#[test]
fn a_critical_path_runs_through_a_break() {
    // Both jobs on machine 0, which stops from 5 to 10: job 1 (3 long) follows job 0 (0 to 4) and
    // does not fit before the break, so it starts at 10, still because of job 0.
    let mut problem = Problem::job_shop("break path", 1, &[vec![(0, 4)], vec![(0, 3)]]);
    problem.machines[0].unavailable = vec![Interval { start: 5, end: 10 }];
    let inst = Inst::new(&problem);
    let mut state = State::new(&inst, vec![0, 0], vec![4, 3], vec![vec![0, 1]]);
    assert!(state.decode(&inst));
    assert_eq!((state.start[1], state.makespan), (10, 13));
    let mut path = Vec::new();
    state.critical_path_to(&inst, 1, &mut path, || true);
    assert_eq!(path, [0, 1], "the break does not cut the path");
}

#[test]
fn a_critical_path_turns_where_both_predecessors_are_tight() {
    // Operation 1 (job 0, machine 1) waits for its job predecessor 0 and its machine predecessor 2,
    // which both end at 2: two critical paths end at it.
    let problem = Problem::job_shop("tie", 2, &[vec![(0, 2), (1, 3)], vec![(1, 2), (0, 1)]]);
    let inst = Inst::new(&problem);
    let mut state = State::new(&inst, vec![0, 1, 1, 0], vec![2, 3, 2, 1], vec![vec![0, 3], vec![2, 1]]);
    assert!(state.decode(&inst));
    assert_eq!(state.makespan, 5);
    let mut path = Vec::new();
    state.critical_path_to(&inst, 1, &mut path, || true);
    assert_eq!(path, [2, 1], "the machine predecessor");
    state.critical_path_to(&inst, 1, &mut path, || false);
    assert_eq!(path, [0, 1], "the job predecessor");
}

#[test]
fn the_schedule_hash_follows_every_move() {
    let mut moves = 0;
    for seed in 0..20 {
        let problem = random_extended(seed, seed % 2 == 0, false, false, false);
        let inst = Inst::new(&problem);
        let mut rng = rng::Rng::new(seed);
        let state =
            construct::build(&inst, construct::Rule::Random, &mut rng, None).expect("nothing gives it up");
        let mut search = tabu::Search::new(&inst, state, seed);
        search.react();
        // A fresh search hashes its state when a run starts; here the hash starts from nothing.
        let empty = tabu::Search::new(&inst, search.state.clone(), seed);
        assert_eq!(empty.sequences_hash(), None);
        let mut hashes = std::collections::HashSet::new();
        let mut schedules = std::collections::HashSet::new();
        for _ in 0..200 {
            let before = tabu::sequences_hash(&search.state);
            let o = rng.below(inst.n_ops);
            let m = search.state.mach[o];
            let alts: Vec<usize> =
                (inst.alt_off[o]..inst.alt_off[o + 1]).filter(|&a| inst.alt_machine[a] != m).collect();
            let mv = if !alts.is_empty() && rng.below(2) == 0 {
                let alt = alts[rng.below(alts.len())];
                let p = rng.below(search.state.seq[inst.alt_machine[alt]].len() + 1);
                tabu::Move::Reassign { o, alt, p }
            } else {
                let len = search.state.seq[m].len();
                tabu::Move::Shift { m, from: search.state.pos[o], to: rng.below(len) }
            };
            let start = search.sequences_hash().unwrap_or_default() ^ before;
            search.apply(mv, false);
            // The kept hash moved by exactly what the full hash moved.
            let after = tabu::sequences_hash(&search.state);
            assert_eq!(search.sequences_hash().unwrap_or_default() ^ after, start, "seed {seed}, {mv:?}");
            hashes.insert(after);
            schedules.insert(search.state.seq.clone());
            moves += 1;
        }
        assert_eq!(hashes.len(), schedules.len(), "seed {seed}: one hash per set of sequences");
    }
    assert_eq!(moves, 4_000);
}

#[test]
fn probing_a_move_equals_decoding_it_and_changes_nothing() {
    let objectives = [Objective::Makespan, Objective::WeightedTardiness, Objective::TardinessThenMakespan];
    let mut probed = 0;
    for seed in 0..40 {
        let problem = random_extended(seed, seed % 2 == 0, seed % 3 == 0, seed % 4 < 2, seed % 5 == 0);
        if problem.validate().is_err() {
            continue;
        }
        let inst = Inst::new(&problem);
        let mut rng = rng::Rng::new(seed);
        let mut state =
            construct::build(&inst, construct::Rule::Random, &mut rng, None).expect("nothing gives it up");
        assert!(state.decode(&inst));
        let mut search = tabu::Search::new(&inst, state, seed);
        let objective = objectives[seed as usize % 3];
        for m in 0..inst.n_machines {
            let len = search.state.seq[m].len();
            for from in 0..len {
                for to in 0..len {
                    if from == to {
                        continue;
                    }
                    let mv = tabu::Move::Shift { m, from, to };
                    let before = (
                        search.state.start.clone(),
                        search.state.tail.clone(),
                        search.state.score(objective),
                    );
                    let window = search.affected_ranks(mv);
                    let targets = search.new_predecessor_targets(mv);
                    search.apply(mv, false);
                    let score = search.state.probe(&inst, window, &targets, objective);
                    let mut full = search.state.clone();
                    let exact = full.decode(&inst).then(|| full.score(objective));
                    assert_eq!(score, exact, "seed {seed}, {mv:?}");
                    search.apply(tabu::Move::Shift { m, from: to, to: from }, false);
                    let after = (
                        search.state.start.clone(),
                        search.state.tail.clone(),
                        search.state.score(objective),
                    );
                    assert!(before == after, "seed {seed}: the probe of {mv:?} left a trace");
                    probed += 1;
                }
            }
        }
    }
    assert!(probed > 500, "only {probed} moves probed");
}

#[test]
fn the_break_index_finds_what_a_binary_search_finds() {
    let mut rng = rng::Rng::new(5);
    for case in 0..200 {
        // Calendars (evenly spread) and irregular ones, including long and touching intervals.
        let mut intervals = Vec::new();
        let mut t = rng.below(50) as i64 - 25;
        for _ in 0..rng.below(40) {
            let gap = if case % 2 == 0 { 100 } else { rng.below(300) as i64 };
            let length = 1 + if case % 2 == 0 { 50 } else { rng.below(200) as i64 };
            intervals.push((t + gap, t + gap + length));
            t += gap + length;
        }
        let index = inst::BreakIndex::new(&intervals);
        for x in -60..t + 60 {
            let expected = intervals.partition_point(|iv| iv.1 <= x);
            assert_eq!(index.first_ending_after(&intervals, x), expected, "case {case}, x {x}");
        }
    }
}
