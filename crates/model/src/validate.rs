//! Field-level validation shared by the API, the CSV importer and the seeders, so a rule is written
//! once and every caller names the same offending field.

use serde::Serialize;

/// One problem with one field of an input record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as it appears in the JSON or CSV input, e.g. `quantity` or `steps[2].unit_seconds`.
    pub field: String,
    /// What is wrong, in lowercase words.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Records that can check themselves before they are stored.
pub trait Validate {
    /// Every problem found; empty when the record is valid.
    fn problems(&self) -> Vec<FieldError>;
}

/// Codes are short, stable identifiers used in topics, URLs and CSV files: 1–64 characters of
/// ASCII letters, digits, `-`, `_` and `.`.
pub fn check_code(field: &str, code: &str, out: &mut Vec<FieldError>) {
    if code.is_empty() || code.len() > 64 {
        out.push(FieldError::new(field, "must be 1 to 64 characters"));
    } else if !code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        out.push(FieldError::new(field, "may contain only ASCII letters, digits, '-', '_' and '.'"));
    }
}

/// Names are for people: non-blank, at most 200 characters, no control characters.
pub fn check_name(field: &str, name: &str, out: &mut Vec<FieldError>) {
    if name.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        out.push(FieldError::new(field, "must not be blank"));
    } else if name.chars().count() > 200 {
        out.push(FieldError::new(field, "must be at most 200 characters"));
    } else if name.chars().any(char::is_control) {
        out.push(FieldError::new(field, "must not contain control characters"));
    } else if name.chars().any(is_bidi_control) {
        // They turn text around on the screen, so a name could pass for another.
        out.push(FieldError::new(field, "must not contain text-direction controls"));
    }
}

/// Characters that take no room on the screen: zero-width spaces and joiners, the word joiner
/// and the byte-order mark.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}') || is_bidi_control(c)
}

/// Unicode's explicit text-direction controls (embeddings, overrides, isolates and marks, the
/// Arabic letter mark among them).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Dates of plans, orders and calendars: the years 2000 to 2200, so any plan built on them has
/// room to end before the calendar does.
pub(crate) fn check_year(field: &str, year: i32, out: &mut Vec<FieldError>) {
    if !(2000..=2200).contains(&year) {
        out.push(FieldError::new(field, "must be a date between the years 2000 and 2200"));
    }
}

/// A finite number within `min..=max`.
pub(crate) fn check_range(field: &str, value: f64, min: f64, max: f64, out: &mut Vec<FieldError>) {
    if !value.is_finite() || value < min || value > max {
        out.push(FieldError::new(field, format!("must be a number from {min} to {max}")));
    }
}

/// `text` with full-width letters, digits and signs (U+FF01 to U+FF5E) and the ideographic space
/// as their ASCII forms: what a Chinese input method left in full-width mode types for "ABC 1".
/// Borrowed when there is nothing to fold.
pub fn fold_width(text: &str) -> std::borrow::Cow<'_, str> {
    let wide = |c: char| matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{3000}');
    if !text.chars().any(wide) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod width_tests {
    #[test]
    fn full_width_ascii_folds_and_the_rest_stays() {
        assert_eq!(super::fold_width("ＡＢＣ貿易　ｏｐ１（香港）"), "ABC貿易 op1(香港)");
    }
}
