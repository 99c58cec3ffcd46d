//! The checker finds each kind of violation on hand-made schedules.

use super::*;
use crate::problem::{FixedStart, Interval, Problem};

fn op(job: usize, op: usize, machine: usize, start: i64, end: i64) -> ScheduledOperation {
    ScheduledOperation { job, op, machine, start, end }
}

fn problem() -> Problem {
    Problem::job_shop("t", 2, &[vec![(0, 3), (1, 2)], vec![(1, 4), (0, 1)]])
}

fn good() -> Vec<ScheduledOperation> {
    vec![op(0, 0, 0, 0, 3), op(0, 1, 1, 4, 6), op(1, 0, 1, 0, 4), op(1, 1, 0, 4, 5)]
}

#[test]
fn accepts_a_feasible_schedule() {
    assert_eq!(check(&problem(), &good()), vec![]);
}

#[test]
fn reports_missing_and_unknown_operations() {
    let mut s = good();
    s.pop();
    s.push(op(5, 0, 0, 0, 1));
    assert_eq!(
        check(&problem(), &s),
        vec![Violation::UnknownOperation { job: 5, op: 0 }, Violation::Coverage { job: 1, op: 1, count: 0 }]
    );
    // The objectives of such a schedule are still measured, not a panic.
    let mut problem = problem();
    problem.jobs[0].due = Some(5);
    problem.jobs[0].weight = 3;
    s.push(op(9, 0, 7, 0, 8));
    assert_eq!(crate::objectives(&problem, &s), (8, 3));
}

#[test]
fn reports_precedence_overlap_and_eligibility() {
    let mut s = good();
    s[1] = op(0, 1, 1, 2, 4);
    let found = check(&problem(), &s);
    assert!(found.contains(&Violation::Precedence { job: 0, op: 1 }), "{found:?}");
    assert!(found.contains(&Violation::Overlap { machine: 1, at: 2 }), "{found:?}");
    let mut s = good();
    s[3] = op(1, 1, 1, 6, 7);
    assert!(check(&problem(), &s).contains(&Violation::Eligibility { job: 1, op: 1 }));
}

#[test]
fn overlap_inside_a_long_operation_is_found() {
    let p = Problem::job_shop("t", 1, &[vec![(0, 10)], vec![(0, 1)], vec![(0, 1)]]);
    let s = vec![op(0, 0, 0, 0, 10), op(1, 0, 0, 1, 2), op(2, 0, 0, 3, 4)];
    assert_eq!(check(&p, &s).len(), 2);
}

#[test]
fn reports_setups_releases_breaks_and_fixed() {
    let mut p = problem();
    p.machines[0].setup = vec![vec![0, 2], vec![2, 0]];
    p.jobs[1].operations[1].family = 1;
    assert_eq!(check(&p, &good()), vec![Violation::Overlap { machine: 0, at: 4 }]);
    let mut p = problem();
    p.jobs[1].release = 1;
    assert_eq!(check(&p, &good()), vec![Violation::Precedence { job: 1, op: 0 }]);
    let mut p = problem();
    p.machines[1].unavailable = vec![Interval { start: 5, end: 6 }];
    assert_eq!(check(&p, &good()), vec![Violation::Unavailable { job: 0, op: 1 }]);
    let mut p = problem();
    p.jobs[0].operations[0].fixed = Some(FixedStart { machine: 0, start: 1 });
    assert_eq!(check(&p, &good()), vec![Violation::Fixed { job: 0, op: 0 }]);
}
