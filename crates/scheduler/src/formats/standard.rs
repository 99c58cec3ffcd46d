//! Standard / OR-Library job-shop reader: `n m`, then one line per job of `m` pairs `machine duration`
//! with 0-based machines. `#` lines are comments. The OR-Library's collected file (`jobshop1.txt`)
//! holds many instances, each opened by an `instance NAME` line and followed by separator and
//! description lines before its `n m`: [`count`] says how many a text holds and [`parse`] reads the
//! one at an index (from 0), named as the file names it.

use super::{MAX_COUNT, MAX_TIME, Tokens, content_lines};
use crate::error::{Error, Result};
use crate::problem::Problem;

/// The name on a line that opens an instance of a collected file: `instance NAME`.
pub(super) fn instance_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("instance"), Some(name), None) => Some(name),
        _ => None,
    }
}

/// How many instances the text holds: its `instance NAME` lines, or one.
pub(super) fn count(text: &str) -> usize {
    content_lines(text).filter(|(_, line)| instance_name(line).is_some()).count().max(1)
}

pub(super) fn parse(text: &str, index: usize) -> Result<Problem> {
    let lines: Vec<(usize, &str)> = content_lines(text).collect();
    let openings: Vec<usize> = (0..lines.len()).filter(|&k| instance_name(lines[k].1).is_some()).collect();
    let last_line = lines.last().map_or(1, |l| l.0);
    if openings.is_empty() {
        if index > 0 {
            return Err(Error::Parse {
                line: last_line,
                expected: format!("instance {index} (from 0), but the file holds 1"),
            });
        }
        return matrix(&lines);
    }
    let Some(&at) = openings.get(index) else {
        return Err(Error::Parse {
            line: last_line,
            expected: format!("instance {index} (from 0), but the file holds {}", openings.len()),
        });
    };
    let name = instance_name(lines[at].1).unwrap_or_default();
    let section = &lines[at + 1..openings.get(index + 1).copied().unwrap_or(lines.len())];
    // Separators and a description come first; the numbers start at the `jobs machines` line and
    // run until the next line of text.
    let is_numeric = |line: &str| line.split_whitespace().all(|t| t.parse::<i64>().is_ok());
    let first = section
        .iter()
        .position(|(_, line)| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.len() == 2 && words.iter().all(|w| w.parse::<usize>().is_ok())
        })
        .ok_or(Error::Parse {
            line: lines[at].0,
            expected: format!("a `jobs machines` line for instance {name}"),
        })?;
    let end =
        section[first..].iter().position(|(_, line)| !is_numeric(line)).map_or(section.len(), |p| first + p);
    let mut problem = matrix(&section[first..end])?;
    problem.name = name.to_string();
    Ok(problem)
}

/// One instance's numbers: `n m` and the job lines, nothing after them.
fn matrix(lines: &[(usize, &str)]) -> Result<Problem> {
    let mut tokens = Tokens::new(lines.iter().copied());
    let n_jobs = tokens.index("number of jobs", MAX_COUNT)?;
    let n_machines = tokens.index("number of machines", MAX_COUNT)?;
    if n_jobs.saturating_mul(n_machines) > MAX_COUNT {
        return Err(Error::Parse {
            line: lines.first().map_or(1, |l| l.0),
            expected: "at most a million operations".into(),
        });
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
