//! Readers for the published instance formats (standard/OR-Library JSSP, Taillard matrices,
//! Brandimarte `.fjs`) and for this crate's JSON problem format, plus format detection. Readers parse
//! from `&str` (the caller does the IO) and never panic: malformed input gives [`Error::Parse`] with the
//! 1-based line and what was expected.

mod fjs;
mod json;
mod standard;
mod taillard;
#[cfg(test)]
mod tests;

pub use json::{JSON_EXAMPLE, to_json};

use crate::error::{Error, Result};
use crate::problem::{MAX_TIME, Problem};

/// A supported input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Standard / OR-Library job shop: `n m`, then per job `m` pairs `machine duration` (0-based).
    Jssp,
    /// Taillard layout: a header, a `Times` matrix and a `Machines` matrix (1-based machines).
    Taillard,
    /// Brandimarte flexible job shop `.fjs` (1-based machines, converted to 0-based).
    Fjs,
    /// This crate's JSON format, see [`JSON_EXAMPLE`].
    Json,
}

impl Format {
    /// The name `FromStr` and the CLI's `--format` take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jssp => "jssp",
            Self::Taillard => "taillard",
            Self::Fjs => "fjs",
            Self::Json => "json",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "jssp" | "standard" => Ok(Self::Jssp),
            "taillard" => Ok(Self::Taillard),
            "fjs" | "fjsp" => Ok(Self::Fjs),
            "json" => Ok(Self::Json),
            other => Err(Error::UnknownFormat(format!("unknown format name {other:?}"))),
        }
    }
}

/// Guesses the format from the file name (extension `.fjs`/`.json`) and the text.
pub fn detect(file_name: Option<&str>, text: &str) -> Result<Format> {
    if let Some(name) = file_name {
        if name.ends_with(".fjs") {
            return Ok(Format::Fjs);
        }
        if name.ends_with(".json") {
            return Ok(Format::Json);
        }
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return Ok(Format::Json);
    }
    if text.lines().any(taillard::is_times) {
        return Ok(Format::Taillard);
    }
    if content_lines(text).any(|(_, line)| standard::instance_name(line).is_some()) {
        return Ok(Format::Jssp);
    }
    let mut lines = content_lines(text).map(|(_, line)| line);
    let Some(head) = lines.next() else {
        return Err(Error::UnknownFormat("empty input".into()));
    };
    let head: Vec<&str> = head.split_whitespace().collect();
    let (Some(n), Some(m)) = (
        head.first().and_then(|t| t.parse::<usize>().ok()),
        head.get(1).and_then(|t| t.parse::<usize>().ok()),
    ) else {
        return Err(Error::UnknownFormat("first line is not `jobs machines`".into()));
    };
    let rows: Vec<&str> = lines.take(n).collect();
    if head.len() == 2 && rows.len() == n && rows.iter().all(|row| row.split_whitespace().count() == 2 * m) {
        Ok(Format::Jssp)
    } else {
        Ok(Format::Fjs)
    }
}

/// Parses `text` in `format`; `name` becomes [`Problem::name`]. The result is validated. A text
/// that holds several instances gives its first ([`parse_instance`] reads the others).
pub fn parse(text: &str, format: Format, name: &str) -> Result<Problem> {
    parse_instance(text, format, name, 0)
}

/// How many instances `text` holds: Taillard's published files hold ten, one after the other, and
/// the OR-Library's collected file (`jobshop1.txt`) holds one per `instance NAME` line; `.fjs`
/// and JSON files hold one.
pub fn count(text: &str, format: Format) -> usize {
    match format {
        Format::Taillard => taillard::count(text),
        Format::Jssp => standard::count(text),
        Format::Fjs | Format::Json => 1,
    }
}

/// Like [`parse`], for the instance at `index` (from 0) of a text that holds several (see
/// [`count`]). An index past the last instance is an error that says how many there are.
pub fn parse_instance(text: &str, format: Format, name: &str, index: usize) -> Result<Problem> {
    if index > 0 && matches!(format, Format::Fjs | Format::Json) {
        return Err(Error::Parse {
            line: 1,
            expected: format!("instance {index} (from 0), but {} files hold one", format.name()),
        });
    }
    let mut problem = match format {
        Format::Jssp => standard::parse(text, index)?,
        Format::Taillard => taillard::parse(text, index)?,
        Format::Fjs => fjs::parse(text)?,
        Format::Json => json::parse(text)?,
    };
    if problem.name.is_empty() {
        name.clone_into(&mut problem.name);
    }
    problem.validate()?;
    Ok(problem)
}

/// Non-blank lines that are not `#` comments, with their 1-based line numbers.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(idx, line)| (idx + 1, line))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

/// Whitespace-separated tokens with their line numbers, for the numeric formats.
struct Tokens<'a> {
    tokens: Vec<(usize, &'a str)>,
    next: usize,
    last_line: usize,
}

impl<'a> Tokens<'a> {
    fn new(lines: impl Iterator<Item = (usize, &'a str)>) -> Self {
        let tokens: Vec<(usize, &str)> = lines
            .flat_map(|(line_no, line)| line.split_whitespace().map(move |tok| (line_no, tok)))
            .collect();
        let last_line = tokens.last().map_or(1, |t| t.0);
        Self { tokens, next: 0, last_line }
    }

    /// Line of the next token (or the last line at the end).
    fn line(&self) -> usize {
        self.tokens.get(self.next).map_or(self.last_line, |t| t.0)
    }

    fn is_empty(&self) -> bool {
        self.next >= self.tokens.len()
    }

    /// Next token as a non-negative integer bounded by `max`, or a parse error naming `what`.
    fn int(&mut self, what: &str, max: i64) -> Result<i64> {
        let Some(&(line, token)) = self.tokens.get(self.next) else {
            return Err(Error::Parse {
                line: self.last_line,
                expected: format!("{what}, found end of input"),
            });
        };
        self.next += 1;
        match token.parse::<i64>() {
            Ok(value) if (0..=max).contains(&value) => Ok(value),
            Ok(value) => Err(Error::Parse { line, expected: format!("{what} in 0..={max}, found {value}") }),
            Err(_) => Err(Error::Parse { line, expected: format!("{what} (an integer), found {token:?}") }),
        }
    }

    /// Next token as a count/index bounded by `max`.
    fn index(&mut self, what: &str, max: usize) -> Result<usize> {
        self.int(what, i64::try_from(max).unwrap_or(i64::MAX)).map(|v| v as usize)
    }
}

/// Upper bound on counts read from files, to refuse absurd allocations on garbage input.
const MAX_COUNT: usize = 1_000_000;
