//! Taillard layout reader: a header line (`Nb of jobs, Nb of Machines, ...` text is optional) whose
//! next numeric line starts with `n m`, then a `Times` line and an `n x m` duration matrix, then a
//! `Machines` line and an `n x m` matrix of 1-based machines. Taillard's published files hold ten
//! instances each, one after the other: [`count`] says how many a text holds and [`parse`] reads
//! the one at an index (from 0).

use super::{MAX_COUNT, MAX_TIME, Tokens};
use crate::error::{Error, Result};
use crate::problem::Problem;

/// Whether `line` is the `Times` line that opens an instance's durations.
pub(super) fn is_times(line: &str) -> bool {
    line.trim().eq_ignore_ascii_case("times")
}

/// How many instances (`Times` lines) the text holds, or one.
pub(super) fn count(text: &str) -> usize {
    text.lines().filter(|line| is_times(line)).count().max(1)
}

pub(super) fn parse(text: &str, index: usize) -> Result<Problem> {
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty()).collect();
    let is_numeric = |line: &str| line.split_whitespace().all(|t| t.parse::<f64>().is_ok());
    let mut times_lines = lines.iter().enumerate().filter(|(_, (_, l))| is_times(l)).map(|(at, _)| at);
    let times_at = match times_lines.nth(index) {
        Some(at) => at,
        None if index == 0 => return Err(Error::Parse { line: 1, expected: "a `Times` line".into() }),
        None => {
            return Err(Error::Parse {
                line: lines.last().map_or(1, |l| l.0),
                expected: format!("instance {index} (from 0), but the file holds {}", count(text)),
            });
        }
    };
    let header = lines[..times_at].iter().rev().find(|(_, l)| is_numeric(l)).ok_or(Error::Parse {
        line: lines[times_at].0,
        expected: "a `jobs machines ...` line before `Times`".into(),
    })?;
    let mut head = Tokens::new(std::iter::once(*header));
    let n_jobs = head.index("number of jobs", MAX_COUNT)?;
    let n_machines = head.index("number of machines", MAX_COUNT)?;
    if n_jobs.saturating_mul(n_machines) > MAX_COUNT {
        return Err(Error::Parse { line: header.0, expected: "at most a million operations".into() });
    }
    let machines_at = lines[times_at..]
        .iter()
        .position(|(_, l)| l.eq_ignore_ascii_case("machines"))
        .map(|at| times_at + at)
        .ok_or(Error::Parse {
            line: lines[times_at].0,
            expected: "a `Machines` line after `Times`".into(),
        })?;
    let mut times = Tokens::new(lines[times_at + 1..machines_at].iter().copied());
    let mut durations = Vec::with_capacity(n_jobs * n_machines);
    for job in 0..n_jobs {
        for op in 0..n_machines {
            durations.push(times.int(&format!("duration of job {job} op {op}"), MAX_TIME)?);
        }
    }
    if !times.is_empty() {
        return Err(Error::Parse {
            line: times.line(),
            expected: "`Machines` after the times matrix".into(),
        });
    }
    let end = lines[machines_at + 1..]
        .iter()
        .position(|(_, l)| !is_numeric(l))
        .map_or(lines.len(), |p| machines_at + 1 + p);
    let mut machine_tokens = Tokens::new(lines[machines_at + 1..end].iter().copied());
    let mut routes = Vec::with_capacity(n_jobs);
    for job in 0..n_jobs {
        let mut route = Vec::with_capacity(n_machines);
        for op in 0..n_machines {
            let line = machine_tokens.line();
            let machine =
                machine_tokens.index(&format!("machine of job {job} op {op} (1-based)"), n_machines)?;
            if machine == 0 {
                return Err(Error::Parse { line, expected: "a 1-based machine number, found 0".into() });
            }
            route.push((machine - 1, durations[job * n_machines + op]));
        }
        routes.push(route);
    }
    if !machine_tokens.is_empty() {
        return Err(Error::Parse {
            line: machine_tokens.line(),
            expected: "end of the machines matrix".into(),
        });
    }
    Ok(Problem::job_shop("", n_machines, &routes))
}
