//! The planning engine: a tabu-search solver for job-shop and flexible job-shop problems with
//! the production extensions (release dates, due dates, setups, unavailability, fixed work).
//!
//! The crate is pure: no IO, no global state, no wall-clock reads except through the [`Clock`] given in
//! [`Config`] (a monotonic [`Stopwatch`] by default). Threads are spawned only when
//! [`Config::threads`] is above 1.
//!
//! ```
//! use scheduler::{formats, solve, Config};
//! let text = "2 2\n0 3 1 2\n1 4 0 1\n";
//! let problem = formats::parse(text, formats::Format::Jssp, "tiny").unwrap();
//! let config = Config { iteration_limit: Some(1_000), ..Config::default() };
//! let solution = solve(&problem, &config);
//! assert!(scheduler::check(&problem, &solution.operations).is_empty());
//! assert_eq!(solution.makespan, 6);
//! ```

pub mod check;
mod compact;
mod error;
pub mod formats;
mod problem;
mod solution;
mod solve;

pub use check::{Violation, check};
pub use compact::compact;
pub use error::{Error, Result};
pub use problem::{Alternative, FixedStart, Interval, Job, MAX_TIME, Machine, Operation, Problem};
pub use solution::{ScheduledOperation, Solution, objectives};
pub use solve::{Clock, Config, Improvement, MAX_THREADS, MoveBench, Objective, Stopwatch, solve};
