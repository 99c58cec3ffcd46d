//! The crate's one error type: parse errors (with the line and what was expected) and validation errors
//! (a problem that cannot describe a real shop).

/// Everything that can go wrong when reading or validating a problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text does not follow the format; `line` is 1-based (0 when the input ended early).
    #[error("line {line}: expected {expected}")]
    Parse {
        /// 1-based line number of the offending token, or the last line when input ended early.
        line: usize,
        /// What the reader was looking for.
        expected: String,
    },
    /// The format could not be recognised from the text.
    #[error("cannot detect the problem format: {0}")]
    UnknownFormat(String),
    /// The problem is well formed text but not a valid shop (see [`crate::Problem::validate`]).
    #[error("invalid problem: {0}")]
    Invalid(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
