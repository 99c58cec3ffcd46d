//! Time comes from one place. Pure code takes "now" as an argument; everything else asks a
//! [`Clock`], so tests can drive time by hand with a [`ManualClock`].

use std::sync::Mutex;
use time::OffsetDateTime;

/// A point in time with a UTC offset (RFC 3339 on the wire).
pub type Timestamp = OffsetDateTime;

/// The JSON Schema of a [`Timestamp`] as the API writes and reads it: an RFC 3339 string
/// (`#[schemars(with = "model::DateTime")]` on a field serialised with `time::serde::rfc3339`).
pub struct DateTime;

impl schemars::JsonSchema for DateTime {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DateTime".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// The JSON Schema of a time the API reads as either (`#[schemars(with = "model::DateTimeOrMillis")]`
/// on a field read with [`rfc3339_or_millis`]): an RFC 3339 string or Unix epoch milliseconds,
/// as machines' own messages give their `ts`.
pub struct DateTimeOrMillis;

impl schemars::JsonSchema for DateTimeOrMillis {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DateTimeOrMillis".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "description": "Unix epoch milliseconds"}
        ]})
    }
}

/// Reads an optional time given as an RFC 3339 string or as whole Unix epoch milliseconds
/// (`#[serde(default, deserialize_with = "model::rfc3339_or_millis")]`).
pub fn rfc3339_or_millis<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Timestamp>, D::Error> {
    struct Either;
    impl<'de> serde::de::Visitor<'de> for Either {
        type Value = Option<Timestamp>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 time or whole Unix epoch milliseconds")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map(Some).map_err(
                |_| {
                    let shown: String = text.chars().take(40).collect();
                    E::custom(format!("{shown:?} is not an RFC 3339 time (nor epoch milliseconds)"))
                },
            )
        }
        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Self::Value, E> {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map(Some)
                .map_err(|_| E::custom(format!("{ms} epoch milliseconds is out of range")))
        }
        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Self::Value, E> {
            let ms = i64::try_from(ms)
                .map_err(|_| E::custom(format!("{ms} epoch milliseconds is out of range")))?;
            self.visit_i64(ms)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }
    deserializer.deserialize_option(Either)
}

/// The source of "now".
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Seconds of this clock per second of real time (the demo's factory clock runs faster), so
    /// that a step of the clock can be told from its own pace.
    fn speed(&self) -> f64 {
        1.0
    }
}

/// The real wall clock, in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one sanctioned reader of the system clock")]
    fn now(&self) -> Timestamp {
        OffsetDateTime::now_utc()
    }
}

/// The wall clock as it read at the start, moved on by the time that really passed since (the
/// monotonic clock): a step of the system clock (NTP setting it right, someone setting it by
/// hand) does not move it. For a clock that must run evenly, as the demo's factory clock does.
#[derive(Debug, Clone, Copy)]
pub struct SteadyClock {
    start: Timestamp,
    started: std::time::Instant,
}

impl SteadyClock {
    /// A clock reading what `wall` reads now, then running with the monotonic clock.
    pub fn new(wall: &dyn Clock) -> SteadyClock {
        SteadyClock { start: wall.now(), started: std::time::Instant::now() }
    }
}

impl Clock for SteadyClock {
    fn now(&self) -> Timestamp {
        self.start + self.started.elapsed()
    }
}

/// A time is a clock that stands still at it: for callers that take a clock but are tested, or
/// replayed, at one fixed moment.
impl Clock for Timestamp {
    fn now(&self) -> Timestamp {
        *self
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { now: Mutex::new(start) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A clock that runs `speed` times as fast as another, from `start`: the demo's factory clock,
/// on which its simulated machines, plans, due dates and alarms all keep one time.
pub struct FastClock {
    wall: std::sync::Arc<dyn Clock>,
    wall_start: Timestamp,
    start: Timestamp,
    speed: f64,
}

impl FastClock {
    /// A clock that reads `start` now and then runs `speed` seconds per second of `wall`.
    pub fn new(wall: std::sync::Arc<dyn Clock>, start: Timestamp, speed: f64) -> FastClock {
        let wall_start = wall.now();
        FastClock { wall, wall_start, start, speed }
    }
}

impl std::fmt::Debug for FastClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastClock").field("start", &self.start).field("speed", &self.speed).finish()
    }
}

impl Clock for FastClock {
    fn now(&self) -> Timestamp {
        let elapsed = (self.wall.now() - self.wall_start).as_seconds_f64().max(0.0);
        self.start + time::Duration::seconds_f64(elapsed * self.speed)
    }

    fn speed(&self) -> f64 {
        self.speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_steady_clock_does_not_follow_a_step_of_the_wall_clock() {
        let start = time::macros::datetime!(2026-12-06 12:00 UTC);
        let wall = ManualClock::new(start);
        let steady = SteadyClock::new(&wall);
        wall.advance(time::Duration::days(1));
        let read = steady.now();
        assert!(read >= start && read - start < time::Duration::minutes(1), "{read}");
    }

    #[test]
    fn a_fast_clock_starts_where_it_is_told_and_runs_at_its_speed() {
        let wall_start = time::macros::datetime!(2026-12-06 12:00 UTC);
        let wall = Arc::new(ManualClock::new(wall_start));
        let start = time::macros::datetime!(2026-12-09 08:00 UTC);
        let fast = FastClock::new(wall.clone(), start, 60.0);
        assert_eq!(fast.now(), start);
        wall.advance(time::Duration::seconds(90));
        assert_eq!(fast.now(), start + time::Duration::minutes(90));
        assert_eq!(fast.speed(), 60.0);
    }
}
