//! This crate's JSON problem format, the one that carries the production extensions.
//!
//! Every field except `machines` and `jobs` is optional; unknown fields are rejected so typos surface.
//! Machines are listed as objects (an empty object `{}` is a plain machine):
//!
//! ```json
//! {
//!   "name": "demo",
//!   "machines": [
//!     { "setup": [[0, 5], [3, 0]], "initial_family": 0, "unavailable": [[100, 120]] },
//!     {}
//!   ],
//!   "jobs": [
//!     { "release": 0, "due": 60, "weight": 2, "operations": [
//!       { "alternatives": [[0, 10], [1, 12]], "family": 1 },
//!       { "alternatives": [[1, 7]], "fixed": { "machine": 1, "start": 30 } }
//!     ] }
//!   ]
//! }
//! ```
//!
//! - `alternatives`: `[machine, duration]` pairs, 0-based machines.
//! - `setup[from][to]`: setup time between families on that machine; `initial_family` is the state at
//!   time 0 (omit it for "no setup before the first operation").
//! - `unavailable`: half-open `[start, end)` intervals.
//! - `release` defaults to 0, `due` to none (never tardy), `weight` to 1, `family` to 0.
//! - `fixed`: the operation keeps this machine and start exactly.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::problem::{Alternative, FixedStart, Interval, Job, Machine, Operation, Problem};

/// A complete example of the JSON format, kept compiling by the tests.
pub const JSON_EXAMPLE: &str = r#"{
  "name": "demo",
  "machines": [
    { "setup": [[0, 5], [3, 0]], "initial_family": 0, "unavailable": [[100, 120]] },
    {}
  ],
  "jobs": [
    { "release": 0, "due": 60, "weight": 2, "operations": [
      { "alternatives": [[0, 10], [1, 12]], "family": 1 },
      { "alternatives": [[1, 7]], "fixed": { "machine": 1, "start": 30 } }
    ] },
    { "release": 5, "operations": [
      { "alternatives": [[0, 8]] },
      { "alternatives": [[0, 4], [1, 6]], "family": 1 }
    ] }
  ]
}
"#;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemDto {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    machines: Vec<MachineDto>,
    jobs: Vec<JobDto>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MachineDto {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    setup: Vec<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial_family: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unavailable: Vec<(i64, i64)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobDto {
    #[serde(default)]
    release: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due: Option<i64>,
    #[serde(default = "one")]
    weight: i64,
    operations: Vec<OperationDto>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationDto {
    alternatives: Vec<(usize, i64)>,
    #[serde(default)]
    family: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed: Option<FixedDto>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixedDto {
    machine: usize,
    start: i64,
}

fn one() -> i64 {
    1
}

pub(super) fn parse(text: &str) -> Result<Problem> {
    let dto: ProblemDto = serde_json::from_str(text)
        .map_err(|err| Error::Parse { line: err.line(), expected: format!("a JSON problem ({err})") })?;
    Ok(Problem {
        name: dto.name,
        machines: dto
            .machines
            .into_iter()
            .map(|m| Machine {
                setup: m.setup,
                initial_family: m.initial_family,
                unavailable: m.unavailable.into_iter().map(|(start, end)| Interval { start, end }).collect(),
            })
            .collect(),
        jobs: dto
            .jobs
            .into_iter()
            .map(|job| Job {
                release: job.release,
                due: job.due,
                weight: job.weight,
                operations: job
                    .operations
                    .into_iter()
                    .map(|op| Operation {
                        alternatives: op
                            .alternatives
                            .into_iter()
                            .map(|(machine, duration)| Alternative { machine, duration })
                            .collect(),
                        family: op.family,
                        fixed: op.fixed.map(|f| FixedStart { machine: f.machine, start: f.start }),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Writes `problem` in the JSON format (pretty-printed); [`crate::formats::parse`] reads it back.
pub fn to_json(problem: &Problem) -> String {
    let dto = ProblemDto {
        name: problem.name.clone(),
        machines: problem
            .machines
            .iter()
            .map(|m| MachineDto {
                setup: m.setup.clone(),
                initial_family: m.initial_family,
                unavailable: m.unavailable.iter().map(|iv| (iv.start, iv.end)).collect(),
            })
            .collect(),
        jobs: problem
            .jobs
            .iter()
            .map(|job| JobDto {
                release: job.release,
                due: job.due,
                weight: job.weight,
                operations: job
                    .operations
                    .iter()
                    .map(|op| OperationDto {
                        alternatives: op.alternatives.iter().map(|a| (a.machine, a.duration)).collect(),
                        family: op.family,
                        fixed: op.fixed.map(|f| FixedDto { machine: f.machine, start: f.start }),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&dto).unwrap_or_default()
}
