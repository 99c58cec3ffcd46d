//! Standard / OR-Library job-shop reader: `n m`, then one line per job of `m` pairs `machine duration`
//! with 0-based machines. `#` lines are comments.

use super::{MAX_COUNT, MAX_TIME, Tokens, content_lines};
use crate::error::{Error, Result};
use crate::problem::Problem;

pub(super) fn parse(text: &str) -> Result<Problem> {
    let mut tokens = Tokens::new(content_lines(text));
    let n_jobs = tokens.index("number of jobs", MAX_COUNT)?;
    let n_machines = tokens.index("number of machines", MAX_COUNT)?;
    if n_jobs.saturating_mul(n_machines) > MAX_COUNT {
        return Err(Error::Parse { line: 1, expected: "at most a million operations".into() });
    }
    let mut routes = Vec::with_capacity(n_jobs);
    for job in 0..n_jobs {
        let mut route = Vec::with_capacity(n_machines);
        for op in 0..n_machines {
            let machine =
                tokens.index(&format!("machine of job {job} op {op}"), n_machines.saturating_sub(1))?;
            let duration = tokens.int(&format!("duration of job {job} op {op}"), MAX_TIME)?;
            route.push((machine, duration));
        }
        routes.push(route);
    }
    if !tokens.is_empty() {
        return Err(Error::Parse { line: tokens.line(), expected: "end of input after the last job".into() });
    }
    Ok(Problem::job_shop("", n_machines, &routes))
}
