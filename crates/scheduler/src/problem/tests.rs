//! Validation rules of the problem model.

use super::*;

fn two_jobs() -> Problem {
    Problem::job_shop("t", 2, &[vec![(0, 3), (1, 2)], vec![(1, 4), (0, 1)]])
}

#[test]
fn valid_job_shop_passes() {
    assert_eq!(two_jobs().validate(), Ok(()));
    assert_eq!(two_jobs().n_operations(), 4);
    assert!(!two_jobs().is_flexible());
}

#[test]
fn rejects_unknown_machine_and_empty_job() {
    let mut p = two_jobs();
    p.jobs[0].operations[1].alternatives[0].machine = 7;
    assert_eq!(p.validate(), Err(Error::Invalid("job 0 op 1: unknown machine 7".into())));
    let mut p = two_jobs();
    p.jobs[1].operations.clear();
    assert_eq!(p.validate(), Err(Error::Invalid("job 1: no operations".into())));
}

#[test]
fn rejects_bad_setup_matrix_and_family() {
    let mut p = two_jobs();
    p.machines[0].setup = vec![vec![0, 1], vec![1]];
    assert!(p.validate().unwrap_err().to_string().contains("not square"));
    let mut p = two_jobs();
    p.machines[0].setup = vec![vec![0, 1], vec![1, 0]];
    p.jobs[0].operations[0].family = 2;
    assert!(p.validate().unwrap_err().to_string().contains("family 2 outside"));
}

#[test]
fn rejects_fixed_operations_that_cannot_hold() {
    let mut p = two_jobs();
    p.jobs[0].operations[0].fixed = Some(FixedStart { machine: 1, start: 0 });
    assert!(p.validate().unwrap_err().to_string().contains("ineligible"));
    let mut p = two_jobs();
    p.jobs[0].operations[1].fixed = Some(FixedStart { machine: 1, start: 0 });
    p.jobs[1].operations[0].fixed = Some(FixedStart { machine: 1, start: 1 });
    assert!(p.validate().unwrap_err().to_string().contains("overlaps earlier work"));
    let mut p = two_jobs();
    p.machines[0].unavailable = vec![Interval { start: 2, end: 5 }];
    p.jobs[0].operations[0].fixed = Some(FixedStart { machine: 0, start: 0 });
    assert!(p.validate().unwrap_err().to_string().contains("unavailable"));
}

#[test]
fn setup_time_uses_initial_family() {
    let mut p = two_jobs();
    p.machines[0].setup = vec![vec![0, 4], vec![6, 0]];
    assert_eq!(p.setup_time(0, None, 1), 0);
    p.machines[0].initial_family = Some(0);
    assert_eq!(p.setup_time(0, None, 1), 4);
    assert_eq!(p.setup_time(0, Some(1), 0), 6);
    assert_eq!(p.setup_time(1, Some(1), 0), 0);
}

#[test]
fn rejects_times_that_could_overflow() {
    let mut p = two_jobs();
    p.jobs[0].operations[0].alternatives[0].duration = i64::MAX;
    assert!(p.validate().unwrap_err().to_string().contains("exceeds"));
}

#[test]
fn rejects_times_and_weights_that_could_overflow_together() {
    // Each number is allowed, but two jobs of weight 10^12, both 10^12 late, weigh 2 × 10^24.
    let mut p = Problem::job_shop("w", 1, &[vec![(0, MAX_TIME)], vec![(0, MAX_TIME)]]);
    for job in &mut p.jobs {
        job.due = Some(0);
        job.weight = MAX_TIME;
    }
    let error = p.validate().unwrap_err().to_string();
    assert!(error.contains("times and weights too large together"), "{error}");
    // Weight 1 keeps the same times within range.
    for job in &mut p.jobs {
        job.weight = 1;
    }
    p.validate().unwrap();
}
