//! The vocabulary every codec shares: what a decoded message turns into ([`RawReading`],
//! [`MachineEvent`], [`Outgoing`] replies), why input is dropped ([`DropReason`]), the validation
//! limits ([`DecodeConfig`]) and the topic router ([`Decoder`]) that sends each MQTT message to
//! the right codec.
//!
//! Readings carry their machine as a [`MachineKey`] of shared strings (`Arc<str>`), and metric
//! names are shared too, so a decoder that has seen a machine and a metric before hands out
//! reference-counted clones instead of allocating per reading.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{json, sparkplug};

/// Which machine a reading or event belongs to, as the wire names it.
///
/// `site` is our site code (the Sparkplug `group_id`); `machine` is our machine code (the
/// Sparkplug `device_id`, or the edge node id for node-level metrics). Both are codes: 1 to 64
/// ASCII letters, digits, `-`, `_` and `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineKey {
    /// Site code.
    pub site: Arc<str>,
    /// Machine code.
    pub machine: Arc<str>,
}

impl MachineKey {
    /// A key from two codes (not checked; decoders check what they receive).
    pub fn new(site: &str, machine: &str) -> MachineKey {
        MachineKey { site: Arc::from(site), machine: Arc::from(machine) }
    }
}

impl fmt::Display for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.site, self.machine)
    }
}

/// One numeric value of one metric of one machine at one time, as decoded and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RawReading {
    /// The machine.
    pub key: MachineKey,
    /// Metric name: 1 to 128 printable characters.
    pub metric: Arc<str>,
    /// When it was measured: the message's (or metric's) timestamp, else the time received.
    pub at: OffsetDateTime,
    /// The value; always finite. Booleans are 0 and 1.
    pub value: f64,
}

/// The states of the machine state model; the same names as `model::MachineState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Producing.
    Running,
    /// Ready but not producing.
    Idle,
    /// Changing over.
    Setup,
    /// Broken down or stopped by a fault.
    Down,
    /// Stopped on purpose within planned time.
    PlannedStop,
    /// Not reporting.
    Offline,
}

impl MachineState {
    /// Every state.
    pub const ALL: [MachineState; 6] = [
        MachineState::Running,
        MachineState::Idle,
        MachineState::Setup,
        MachineState::Down,
        MachineState::PlannedStop,
        MachineState::Offline,
    ];

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Running => "running",
            MachineState::Idle => "idle",
            MachineState::Setup => "setup",
            MachineState::Down => "down",
            MachineState::PlannedStop => "planned_stop",
            MachineState::Offline => "offline",
        }
    }

    /// The inverse of [`MachineState::as_str`].
    pub fn parse(text: &str) -> Option<MachineState> {
        MachineState::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// Something that happened to a machine, as opposed to a measured value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineEvent {
    /// The machine (or its edge node) came online: a Sparkplug birth or a JSON `online` event.
    Online,
    /// The machine went offline: a Sparkplug death (including the MQTT will) or a JSON
    /// `offline` event.
    Offline,
    /// The machine entered a state.
    StateChange {
        /// The new state.
        state: MachineState,
        /// Why, for downtime and planned stops.
        reason: Option<String>,
    },
    /// The machine started working on an operation of an order.
    OperationStarted {
        /// The operation's id as the API shows it.
        operation_id: i64,
    },
    /// Units made on a running operation since the machine's last report: they count toward OEE
    /// when they are made, not only when the lot ends.
    Produced {
        /// The operation's id as the API shows it.
        operation_id: i64,
        /// Good parts made since the last report.
        good: u32,
        /// Scrapped parts made since the last report.
        scrap: u32,
        /// The ideal time per unit in milliseconds, as in `OperationFinished`.
        ideal_unit_ms: Option<u32>,
    },
    /// The machine finished (or stopped) working on an operation.
    OperationFinished {
        /// The operation's id as the API shows it.
        operation_id: i64,
        /// Good parts produced and not yet reported by `Produced` (so 0 from a machine that
        /// reported every unit as it went).
        good: u32,
        /// Scrapped parts produced and not yet reported by `Produced`.
        scrap: u32,
        /// The ideal time per unit of this lot in milliseconds, when the machine reports it;
        /// otherwise the operation's own unit time counts.
        ideal_unit_ms: Option<u32>,
    },
    /// The machine reports why it is down (without necessarily changing state).
    Downtime {
        /// The reason, e.g. `tool breakage`.
        reason: String,
    },
}

impl MachineEvent {
    /// An ideal time per unit in seconds as `OperationFinished`'s `ideal_unit_ms`: rounded to the
    /// millisecond, at least 1 (a fast simulator's units can take less) and at most `u32::MAX`.
    pub fn ideal_unit_ms(seconds: f64) -> u32 {
        (seconds * 1000.0).round().clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

/// A [`MachineEvent`] with its machine and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedEvent {
    /// The machine.
    pub key: MachineKey,
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub event: MachineEvent,
}

/// Why a message, or one metric or event in it, was not turned into output.
///
/// Some reasons are bad input (`malformed_*`, `wrong_types`, …), some are protocol state
/// (`sequence_gap`, `no_birth`) and some are well-formed values that are not time series
/// (`not_numeric`, `null_value`, `transient`). All are counted under [`DropReason::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The payload is larger than [`DecodeConfig::max_payload_bytes`].
    PayloadTooLarge,
    /// The topic is not one of ours, or a site, machine, group, node or device id is not a code.
    BadTopic,
    /// The payload is not JSON, or not the telemetry/events/STATE shape at the top level.
    MalformedJson,
    /// The payload is not a Sparkplug B protobuf `Payload`.
    MalformedProtobuf,
    /// A JSON event is not one of the documented event shapes.
    InvalidEvent,
    /// A value has the wrong type for its metric (a JSON string, a Sparkplug value in the wrong
    /// field for its datatype, or no value at all).
    WrongTypes,
    /// A well-formed string value that is not a machine state: strings are not time series.
    NotNumeric,
    /// A Sparkplug datatype we do not store (DataSet, Template, Bytes, File, arrays, …).
    UnsupportedType,
    /// A Sparkplug metric explicitly marked `is_null`.
    NullValue,
    /// A Sparkplug metric marked `is_transient`, which the spec says must not be stored.
    Transient,
    /// A metric name that is empty, longer than 128 characters or has control characters.
    BadMetricName,
    /// A Sparkplug data metric whose alias no birth defined.
    UnknownAlias,
    /// A Sparkplug data metric whose name no birth defined.
    UnknownMetric,
    /// A NaN or infinite value.
    NonFinite,
    /// A value of magnitude above [`MAX_MAGNITUDE`].
    OutOfRange,
    /// A timestamp that is not RFC 3339 or epoch milliseconds, or out of range.
    BadTimestamp,
    /// A timestamp more than [`DecodeConfig::max_future_skew_secs`] after "now".
    FutureTimestamp,
    /// A timestamp more than [`DecodeConfig::max_age_secs`] before "now".
    TooOld,
    /// A Sparkplug message whose `seq` is not the expected next one (or is missing); the whole
    /// message is dropped and a rebirth is requested.
    SequenceGap,
    /// Sparkplug data or device messages from an edge node or device without a current birth;
    /// a rebirth is requested.
    NoBirth,
    /// Sparkplug messages from an edge node after a sequence gap, until its new NBIRTH arrives.
    AwaitingRebirth,
    /// An NDEATH whose `bdSeq` does not match the current session's NBIRTH (a will left over
    /// from an earlier connection).
    StaleDeath,
    /// A Sparkplug message with the same `seq` as the one before it from its node: a resend (a
    /// QoS 1 message whose acknowledgement was lost), already taken in.
    RepeatedSeq,
    /// A birth metric whose alias another metric of the same birth has already: the alias stays
    /// the first one's, and the metric is known by its name only.
    DuplicateAlias,
}

/// The largest magnitude a stored reading may have. No measurement comes near it, and it keeps
/// every sum the roll-ups and queries form finite (it would take 10^208 readings to overflow one).
pub const MAX_MAGNITUDE: f64 = 1e100;

/// Why a decoded number cannot be stored as a reading, if it cannot.
pub(crate) fn unstorable(value: f64) -> Option<DropReason> {
    if !value.is_finite() {
        Some(DropReason::NonFinite)
    } else if value.abs() > MAX_MAGNITUDE {
        Some(DropReason::OutOfRange)
    } else {
        None
    }
}

impl DropReason {
    /// Every reason, for registering metrics.
    pub const ALL: [DropReason; 24] = [
        DropReason::PayloadTooLarge,
        DropReason::BadTopic,
        DropReason::MalformedJson,
        DropReason::MalformedProtobuf,
        DropReason::InvalidEvent,
        DropReason::WrongTypes,
        DropReason::NotNumeric,
        DropReason::UnsupportedType,
        DropReason::NullValue,
        DropReason::Transient,
        DropReason::BadMetricName,
        DropReason::UnknownAlias,
        DropReason::UnknownMetric,
        DropReason::NonFinite,
        DropReason::OutOfRange,
        DropReason::BadTimestamp,
        DropReason::FutureTimestamp,
        DropReason::TooOld,
        DropReason::SequenceGap,
        DropReason::NoBirth,
        DropReason::AwaitingRebirth,
        DropReason::StaleDeath,
        DropReason::RepeatedSeq,
        DropReason::DuplicateAlias,
    ];

    /// The snake_case name used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::PayloadTooLarge => "payload_too_large",
            DropReason::BadTopic => "bad_topic",
            DropReason::MalformedJson => "malformed_json",
            DropReason::MalformedProtobuf => "malformed_protobuf",
            DropReason::InvalidEvent => "invalid_event",
            DropReason::WrongTypes => "wrong_types",
            DropReason::NotNumeric => "not_numeric",
            DropReason::UnsupportedType => "unsupported_type",
            DropReason::NullValue => "null_value",
            DropReason::Transient => "transient",
            DropReason::BadMetricName => "bad_metric_name",
            DropReason::UnknownAlias => "unknown_alias",
            DropReason::UnknownMetric => "unknown_metric",
            DropReason::NonFinite => "non_finite",
            DropReason::OutOfRange => "out_of_range",
            DropReason::BadTimestamp => "bad_timestamp",
            DropReason::FutureTimestamp => "future_timestamp",
            DropReason::TooOld => "too_old",
            DropReason::SequenceGap => "sequence_gap",
            DropReason::NoBirth => "no_birth",
            DropReason::AwaitingRebirth => "awaiting_rebirth",
            DropReason::StaleDeath => "stale_death",
            DropReason::RepeatedSeq => "repeated_seq",
            DropReason::DuplicateAlias => "duplicate_alias",
        }
    }

    /// Whether this is well-formed input that is not stored by design (a string metric, a null
    /// or transient value, a resend) rather than bad input or lost protocol state: such input is
    /// counted apart and not logged as a problem.
    pub fn is_skip(self) -> bool {
        matches!(
            self,
            DropReason::NotNumeric | DropReason::NullValue | DropReason::Transient | DropReason::RepeatedSeq
        )
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a decoder could not use: a whole message, or one metric or event in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Why.
    pub reason: DropReason,
    /// What, for a rate-limited log line (names the metric or field; never the whole payload).
    pub detail: String,
}

/// An MQTT message a decoder or encoder wants published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The topic.
    pub topic: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// MQTT QoS, 0 or 1.
    pub qos: u8,
    /// Whether the broker should retain it.
    pub retain: bool,
}

/// Everything decoded from one or more messages. Decoders append to it, so one value can
/// collect a batch; [`Decoded::clear`] keeps the allocations for the next batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    /// Valid numeric readings.
    pub readings: Vec<RawReading>,
    /// Machine events (births, deaths, state changes, operations, downtime).
    pub events: Vec<TimedEvent>,
    /// What was dropped, and why.
    pub dropped: Vec<Dropped>,
    /// Messages to publish in reply (Sparkplug rebirth requests).
    pub replies: Vec<Outgoing>,
}

impl Decoded {
    /// Empties every list, keeping their capacity.
    pub fn clear(&mut self) {
        self.readings.clear();
        self.events.clear();
        self.dropped.clear();
        self.replies.clear();
    }

    /// How many drops there are per reason.
    pub fn drop_counts(&self) -> BTreeMap<DropReason, usize> {
        let mut counts = BTreeMap::new();
        for dropped in &self.dropped {
            *counts.entry(dropped.reason).or_insert(0) += 1;
        }
        counts
    }

    pub(crate) fn drop(&mut self, reason: DropReason, detail: impl Into<String>) {
        self.dropped.push(Dropped { reason, detail: detail.into() });
    }
}

/// Validation limits shared by all decoders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// How far after "now" a timestamp may be (clock skew of devices); default 300 s.
    pub max_future_skew_secs: u32,
    /// How far before "now" a timestamp may be (store-and-forward after an outage, but not
    /// forever: roll-ups of older periods are final); default 7 days.
    pub max_age_secs: u32,
    /// The largest payload decoded; default 256 KiB.
    pub max_payload_bytes: usize,
    /// The least time between two rebirth requests to one edge node; default 5 s.
    pub rebirth_interval_secs: u32,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_future_skew_secs: 300,
            max_age_secs: 7 * 24 * 3600,
            max_payload_bytes: 256 * 1024,
            rebirth_interval_secs: 5,
        }
    }
}

/// Why an encoder refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A site, machine, group, node or device id is not a code.
    #[error("{field} {value:?} is not a code (1 to 64 ASCII letters, digits, '-', '_', '.')")]
    BadCode {
        /// Which id.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A metric name is not 1 to 128 printable characters.
    #[error("metric name {0:?} is not 1 to 128 printable characters")]
    BadMetricName(String),
    /// A value is NaN or infinite.
    #[error("metric {0:?} has a non-finite value")]
    NonFinite(String),
    /// A Sparkplug data message names a metric that no birth defined.
    #[error("metric {0:?} was not in the birth")]
    NotInBirth(String),
    /// A device message for a device that has no birth in this session.
    #[error("device {0:?} has no birth in this session")]
    DeviceNotBorn(String),
    /// A timestamp before 1970 (Sparkplug and our JSON use unsigned epoch milliseconds).
    #[error("timestamp before 1970")]
    TimestampBefore1970,
}

/// Routes MQTT messages to the right codec by topic: `mf/v1/…` to [`json::JsonDecoder`],
/// `spBv1.0/…` to [`sparkplug::SparkplugDecoder`]; anything else is dropped as `bad_topic`.
#[derive(Debug)]
pub struct Decoder {
    /// The JSON codec.
    pub json: json::JsonDecoder,
    /// The Sparkplug B session decoder.
    pub sparkplug: sparkplug::SparkplugDecoder,
}

impl Decoder {
    /// Decoders with the given limits and no Sparkplug sessions yet.
    pub fn new(config: DecodeConfig) -> Decoder {
        Decoder {
            json: json::JsonDecoder::new(config.clone()),
            sparkplug: sparkplug::SparkplugDecoder::new(config),
        }
    }

    /// Decodes one MQTT message received at `now`, appending to `out`.
    pub fn decode(&mut self, topic: &str, payload: &[u8], now: OffsetDateTime, out: &mut Decoded) {
        if topic.starts_with(json::TOPIC_PREFIX) {
            self.json.decode(topic, payload, now, out);
        } else if topic.starts_with(sparkplug::NAMESPACE) {
            self.sparkplug.decode(topic, payload, now, out);
        } else {
            out.drop(DropReason::BadTopic, format!("topic {:?} is neither mf/v1 nor spBv1.0", clip(topic)));
        }
    }
}

/// Whether `code` is a site or machine code: 1 to 64 ASCII letters, digits, `-`, `_`, `.`.
pub fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `name` is a metric name: 1 to 128 characters, none of them control characters or
/// text-direction controls (which would turn it around on the pages, so one name could pass for
/// another, as the API refuses for the names people type).
pub fn is_metric_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 4 * 128 {
        return false;
    }
    if name.is_ascii() {
        return name.len() <= 128 && name.bytes().all(|b| (0x20..0x7f).contains(&b));
    }
    let mut count = 0;
    for c in name.chars() {
        if c.is_control() || model::is_bidi_control(c) {
            return false;
        }
        count += 1;
    }
    count <= 128
}

pub(crate) fn check_code(field: &'static str, value: &str) -> Result<(), EncodeError> {
    if is_code(value) { Ok(()) } else { Err(EncodeError::BadCode { field, value: value.to_string() }) }
}

/// At most 80 characters of untrusted text, for drop details.
pub(crate) fn clip(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The range of acceptable timestamps around one "now", in epoch milliseconds: from
/// [`DecodeConfig::max_age_secs`] before it to [`DecodeConfig::max_future_skew_secs`] after it.
/// Times reported over HTTP are held to the same window.
#[derive(Clone, Copy, Debug)]
pub struct TimeWindow {
    /// The "now" the window is around.
    pub now: OffsetDateTime,
    earliest_ms: i64,
    latest_ms: i64,
}

impl TimeWindow {
    /// The window around `now` that `config` allows.
    pub fn new(now: OffsetDateTime, config: &DecodeConfig) -> TimeWindow {
        let now_ms = epoch_ms(now);
        TimeWindow {
            now,
            earliest_ms: now_ms - i64::from(config.max_age_secs) * 1000,
            latest_ms: now_ms + i64::from(config.max_future_skew_secs) * 1000,
        }
    }

    /// Checks epoch milliseconds against the window and converts them.
    pub fn check_ms(&self, ms: i64) -> Result<OffsetDateTime, DropReason> {
        if ms > self.latest_ms {
            Err(DropReason::FutureTimestamp)
        } else if ms < self.earliest_ms {
            Err(DropReason::TooOld)
        } else {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|_| DropReason::BadTimestamp)
        }
    }

    /// Checks a timestamp against the window.
    pub fn check(&self, at: OffsetDateTime) -> Result<OffsetDateTime, DropReason> {
        let ms = epoch_ms(at);
        if ms > self.latest_ms {
            Err(DropReason::FutureTimestamp)
        } else if ms < self.earliest_ms {
            Err(DropReason::TooOld)
        } else {
            Ok(at)
        }
    }

    /// Checks unsigned epoch milliseconds (Sparkplug) against the window and converts them.
    pub fn check_unsigned_ms(&self, ms: u64) -> Result<OffsetDateTime, DropReason> {
        match i64::try_from(ms) {
            Ok(ms) => self.check_ms(ms),
            Err(_) => Err(DropReason::FutureTimestamp),
        }
    }
}

/// Epoch milliseconds of a time (floored).
pub(crate) fn epoch_ms(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Shares `Arc<str>` copies of strings seen before, so steady-state decoding allocates no
/// metric names. Bounded: when full it starts over, which costs allocations, not correctness.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    const CAPACITY: usize = 16_384;

    pub fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return Arc::clone(shared);
        }
        if self.strings.len() >= Self::CAPACITY {
            self.strings.clear();
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(Arc::clone(&shared));
        shared
    }
}

/// Shares [`MachineKey`]s by a string naming them (`site/machine`), bounded like [`Interner`].
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: HashMap<Box<str>, MachineKey>,
}

impl KeyCache {
    pub(crate) const CAPACITY: usize = 16_384;

    pub fn get(&mut self, joined: &str, make: impl FnOnce() -> MachineKey) -> MachineKey {
        if let Some(key) = self.keys.get(joined) {
            return key.clone();
        }
        if self.keys.len() >= Self::CAPACITY {
            self.keys.clear();
        }
        let key = make();
        self.keys.insert(Box::from(joined), key.clone());
        key
    }
}

#[cfg(test)]
pub(crate) mod tests;
