//! Brandimarte `.fjs` reader: `n m [average flexibility]`, then one line per job: the number of
//! operations, then per operation `k` and `k` pairs `machine duration` with 1-based machines (converted
//! to 0-based). Jobs are read as a token stream, so a job may wrap over lines.

use super::{MAX_COUNT, MAX_TIME, Tokens, content_lines};
use crate::error::{Error, Result};
use crate::problem::{Alternative, Job, Machine, Operation, Problem};

pub(super) fn parse(text: &str) -> Result<Problem> {
    let mut lines = content_lines(text);
    let Some(header) = lines.next() else {
        return Err(Error::Parse { line: 1, expected: "a header `jobs machines [flexibility]`".into() });
    };
    let header_tokens: Vec<&str> = header.1.split_whitespace().collect();
    let mut head = Tokens::new(std::iter::once((header.0, header.1)));
    let n_jobs = head.index("number of jobs", MAX_COUNT)?;
    let n_machines = head.index("number of machines", MAX_COUNT)?;
    if let Some(extra) = header_tokens.get(2)
        && extra.parse::<f64>().is_err()
    {
        return Err(Error::Parse {
            line: header.0,
            expected: format!("average flexibility, found {extra:?}"),
        });
    }
    if header_tokens.len() > 3 {
        return Err(Error::Parse { line: header.0, expected: "at most three numbers in the header".into() });
    }
    let mut tokens = Tokens::new(lines);
    let mut jobs = Vec::with_capacity(n_jobs.min(MAX_COUNT));
    let mut total_ops = 0usize;
    for job in 0..n_jobs {
        let n_ops = tokens.index(&format!("number of operations of job {job}"), MAX_COUNT)?;
        total_ops += n_ops;
        if total_ops > MAX_COUNT {
            return Err(Error::Parse {
                line: tokens.line(),
                expected: "at most a million operations".into(),
            });
        }
        let mut operations = Vec::with_capacity(n_ops);
        for op in 0..n_ops {
            let n_alts = tokens.index(&format!("number of machines of job {job} op {op}"), n_machines)?;
            let mut alternatives = Vec::with_capacity(n_alts);
            for _ in 0..n_alts {
                let line = tokens.line();
                let machine = tokens.index(&format!("machine of job {job} op {op} (1-based)"), n_machines)?;
                if machine == 0 {
                    return Err(Error::Parse { line, expected: "a 1-based machine number, found 0".into() });
                }
                let duration = tokens.int(&format!("duration of job {job} op {op}"), MAX_TIME)?;
                alternatives.push(Alternative { machine: machine - 1, duration });
            }
            operations.push(Operation::new(alternatives));
        }
        jobs.push(Job::new(operations));
    }
    if !tokens.is_empty() {
        return Err(Error::Parse { line: tokens.line(), expected: "end of input after the last job".into() });
    }
    Ok(Problem { name: String::new(), machines: vec![Machine::default(); n_machines], jobs })
}
