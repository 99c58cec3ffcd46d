//! Topic names and topic filters (MQTT 3.1.1 section 4.7): validation of both, and matching a
//! filter with the `+` (one level) and `#` (this level and everything below) wildcards against a
//! name. Topics starting with `$` are not matched by a filter whose first level is a wildcard.

#[cfg(test)]
mod tests;

/// Longest topic in bytes: the two-byte length prefix of an MQTT string.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Most levels in a topic name or filter, as in Mosquitto. The subscription tree has one node per
/// level and is walked recursively, so without a bound one deep filter could exhaust the stack.
pub const MAX_TOPIC_LEVELS: usize = 200;

/// Why a topic name or filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Topic names and filters must be at least one character long.
    #[error("topic is empty")]
    Empty,
    /// The topic is longer than an MQTT string can be.
    #[error("topic is longer than 65535 bytes")]
    TooLong,
    /// More than [`MAX_TOPIC_LEVELS`] levels.
    #[error("topic has more than 200 levels")]
    TooDeep,
    /// U+0000 is forbidden in MQTT strings.
    #[error("topic contains the null character")]
    Nul,
    /// Topic names (what a PUBLISH carries) may not contain `+` or `#`.
    #[error("topic name contains a wildcard")]
    WildcardInName,
    /// `+` must fill a whole level of a filter.
    #[error("'+' must occupy a whole topic level")]
    MisplacedPlus,
    /// `#` must fill a whole level and be the last level of a filter.
    #[error("'#' must be the last character and occupy a whole topic level")]
    MisplacedHash,
}

/// Checks a topic name, as used in PUBLISH and in a will: non-empty, no wildcards, no NUL.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    validate_common(name)?;
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter, as used in SUBSCRIBE and UNSUBSCRIBE: non-empty, no NUL, `+` only as a
/// whole level, `#` only as the whole last level.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let n_levels = filter.split('/').count();
    for (level_idx, level) in filter.split('/').enumerate() {
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedPlus);
        }
        if level.contains('#') && (level != "#" || level_idx + 1 != n_levels) {
            return Err(TopicError::MisplacedHash);
        }
    }
    Ok(())
}

/// Whether the (valid) `filter` matches the (valid) topic `name`.
///
/// A `#` also matches the parent level (`sport/#` matches `sport`), `+` matches exactly one level
/// (which may be empty), and a name starting with `$` is only matched by filters whose first level
/// is literal (`#` and `+/x` do not match `$SYS/x`).
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut name_levels = name.split('/');
    for filter_level in filter.split('/') {
        if filter_level == "#" {
            return true;
        }
        match name_levels.next() {
            Some(name_level) if filter_level == "+" || filter_level == name_level => {}
            _ => return false,
        }
    }
    name_levels.next().is_none()
}

fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul);
    }
    if topic.bytes().filter(|b| *b == b'/').count() >= MAX_TOPIC_LEVELS {
        return Err(TopicError::TooDeep);
    }
    Ok(())
}
