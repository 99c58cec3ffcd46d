//! Our JSON topic scheme: decoding and encoding `mf/v1/{site}/{machine}/telemetry` and
//! `mf/v1/{site}/{machine}/events`.
//!
//! **Telemetry** is one object, or an array of them, each
//! `{"ts": <RFC 3339 string | epoch milliseconds>, "metrics": {"<name>": <number | bool>, …}}`.
//! Metric names are 1 to 128 printable characters; booleans become 0 and 1. `ts` may be left
//! out, meaning "when the platform received it" (see [`Received`]). A metric whose value is a string, null, array or
//! object is dropped as `wrong_types` and the others in the object are kept; a bad or out-of-window
//! `ts` drops that object. Unknown top-level fields are ignored (forward compatibility).
//!
//! **Events** are one object, or an array of them, each with an optional `ts` as above and a
//! `type`:
//!
//! | `type` | fields |
//! | --- | --- |
//! | `state` | `state`: `running`, `idle`, `setup`, `down`, `planned_stop` or `offline`; optional `reason` |
//! | `operation_started` | `operation_id` (positive integer) |
//! | `produced` | `operation_id`, `good`, optional `scrap` (0 when absent; together at least one unit): the units made since the machine's last report, while the lot runs; optional `ideal_unit_seconds` as for `operation_finished` |
//! | `operation_finished` | `operation_id`, `good`, `scrap` (non-negative integers, at most 2^32 - 1): the units not yet reported by `produced` (0 and 0 from a machine that reported them all); optional `ideal_unit_seconds` (more than 0, at most 604800) when the ideal time per unit of this lot is not the operation's (a simulator running faster than real time reports its own) |
//! | `downtime` | `reason` |
//! | `online`, `offline` | — (an `offline` event without `ts` makes a good MQTT will) |
//!
//! `reason` is 1 to 200 characters without control characters. A bad event is dropped as
//! `invalid_event` and the others in the array are kept.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::codec::{
    DecodeConfig, Decoded, DropReason, EncodeError, Interner, KeyCache, MachineEvent, MachineKey,
    MachineState, Outgoing, RawReading, TimeWindow, TimedEvent, check_code, clip, epoch_ms, is_code,
    is_metric_name, unstorable,
};

/// Every topic of the JSON scheme starts with this.
pub const TOPIC_PREFIX: &str = "mf/v1/";

/// The two kinds of JSON topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKind {
    /// `mf/v1/{site}/{machine}/telemetry`.
    Telemetry,
    /// `mf/v1/{site}/{machine}/events`.
    Events,
}

/// Splits `mf/v1/{site}/{machine}/{telemetry|events}` into site, machine and kind; `None` when
/// the topic has another shape or the site or machine is not a code.
pub fn parse_topic(topic: &str) -> Option<(&str, &str, TopicKind)> {
    let rest = topic.strip_prefix(TOPIC_PREFIX)?;
    let mut parts = rest.split('/');
    let (site, machine, kind) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_code(site) || !is_code(machine) {
        return None;
    }
    let kind = match kind {
        "telemetry" => TopicKind::Telemetry,
        "events" => TopicKind::Events,
        _ => return None,
    };
    Some((site, machine, kind))
}

/// The telemetry topic of a machine.
pub fn telemetry_topic(site: &str, machine: &str) -> Result<String, EncodeError> {
    check_code("site", site)?;
    check_code("machine", machine)?;
    Ok(format!("{TOPIC_PREFIX}{site}/{machine}/telemetry"))
}

/// The events topic of a machine.
pub fn events_topic(site: &str, machine: &str) -> Result<String, EncodeError> {
    check_code("site", site)?;
    check_code("machine", machine)?;
    Ok(format!("{TOPIC_PREFIX}{site}/{machine}/events"))
}

/// Encodes one telemetry message (`ts` as epoch milliseconds), QoS 1, not retained.
pub fn encode_telemetry(
    site: &str,
    machine: &str,
    at: OffsetDateTime,
    metrics: &[(&str, f64)],
) -> Result<Outgoing, EncodeError> {
    let topic = telemetry_topic(site, machine)?;
    let ms = unsigned_ms(at)?;
    let mut payload = Vec::with_capacity(32 + metrics.len() * 24);
    payload.extend_from_slice(b"{\"ts\":");
    payload.extend_from_slice(ms.to_string().as_bytes());
    payload.extend_from_slice(b",\"metrics\":{");
    for (idx, (name, value)) in metrics.iter().enumerate() {
        if !is_metric_name(name) {
            return Err(EncodeError::BadMetricName((*name).to_string()));
        }
        if !value.is_finite() {
            return Err(EncodeError::NonFinite((*name).to_string()));
        }
        if idx > 0 {
            payload.push(b',');
        }
        write_json(&mut payload, name);
        payload.push(b':');
        write_json(&mut payload, value);
    }
    payload.extend_from_slice(b"}}");
    Ok(Outgoing { topic, payload, qos: 1, retain: false })
}

/// Encodes one event; with `at = None` the event has no `ts` (for an MQTT will, whose time is
/// only known when the broker publishes it). QoS 1, not retained.
pub fn encode_event(
    site: &str,
    machine: &str,
    at: Option<OffsetDateTime>,
    event: &MachineEvent,
) -> Result<Outgoing, EncodeError> {
    let topic = events_topic(site, machine)?;
    let mut object = serde_json::Map::new();
    if let Some(at) = at {
        object.insert("ts".into(), unsigned_ms(at)?.into());
    }
    let mut put = |name: &str, value: serde_json::Value| object.insert(name.into(), value);
    match event {
        MachineEvent::Online => put("type", "online".into()),
        MachineEvent::Offline => put("type", "offline".into()),
        MachineEvent::StateChange { state, reason } => {
            put("type", "state".into());
            put("state", state.as_str().into());
            reason.as_ref().and_then(|reason| put("reason", reason.as_str().into()))
        }
        MachineEvent::OperationStarted { operation_id } => {
            put("type", "operation_started".into());
            put("operation_id", (*operation_id).into())
        }
        MachineEvent::Produced { operation_id, good, scrap, ideal_unit_ms }
        | MachineEvent::OperationFinished { operation_id, good, scrap, ideal_unit_ms } => {
            let kind = if matches!(event, MachineEvent::Produced { .. }) {
                "produced"
            } else {
                "operation_finished"
            };
            put("type", kind.into());
            put("operation_id", (*operation_id).into());
            put("good", (*good).into());
            let last = put("scrap", (*scrap).into());
            match ideal_unit_ms {
                Some(ms) => put("ideal_unit_seconds", (f64::from(*ms) / 1000.0).into()),
                None => last,
            }
        }
        MachineEvent::Downtime { reason } => {
            put("type", "downtime".into());
            put("reason", reason.as_str().into())
        }
    };
    let payload = serde_json::to_vec(&object).unwrap_or_default();
    Ok(Outgoing { topic, payload, qos: 1, retain: false })
}

/// Decodes the JSON topic scheme. Holds only caches (shared machine keys and metric names), so
/// one per ingest worker is enough and nothing depends on message order.
#[derive(Debug, Default)]
pub struct JsonDecoder {
    config: DecodeConfig,
    names: Interner,
    keys: KeyCache,
    pending: Vec<(Arc<str>, MetricValue)>,
    /// Per machine (`site/machine`), the last time in epoch milliseconds given to what came
    /// without `ts` (see [`Received`]); cleared when it holds [`KeyCache`]'s capacity.
    received: HashMap<Box<str>, i64>,
}

/// The time given to readings and events that carry no `ts`: when they were received, but at
/// least a millisecond after the last such time given to the same machine. The store keeps one
/// reading per series and millisecond (and counts a report of the same time and units once, as a
/// resend), so messages received within one millisecond, as a client sends what it queued while
/// it reconnected, would otherwise collapse into the first. A machine sending more than a thousand
/// messages a second without `ts` runs ahead of the clock by the excess; more than
/// [`RECEIVED_AHEAD_MS`] ahead means the clock was set back (or ran ahead before), and times
/// follow the clock again.
struct Received {
    now_ms: i64,
    last_ms: Cell<i64>,
}

/// How far the last time given without `ts` may be ahead of the clock before it is taken to be a
/// clock set back, not a burst: readings would otherwise be stamped a millisecond apart, in the
/// future, for as long as the clock was set back (two seconds apart became one millisecond, and a
/// rate alarm fired on it).
const RECEIVED_AHEAD_MS: i64 = 2_000;

impl Received {
    fn new(now_ms: i64, last_ms: i64) -> Received {
        let last_ms = if last_ms > now_ms.saturating_add(RECEIVED_AHEAD_MS) { i64::MIN } else { last_ms };
        Received { now_ms, last_ms: Cell::new(last_ms) }
    }

    fn next(&self) -> Result<OffsetDateTime, (DropReason, String)> {
        let ms = self.last_ms.get().saturating_add(1).max(self.now_ms);
        self.last_ms.set(ms);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map_err(|_| (DropReason::BadTimestamp, format!("time received {ms} ms")))
    }
}

impl JsonDecoder {
    /// A decoder with the given limits.
    pub fn new(config: DecodeConfig) -> JsonDecoder {
        JsonDecoder { config, ..JsonDecoder::default() }
    }

    /// Decodes one message received at `now` on `topic`, appending to `out`.
    pub fn decode(&mut self, topic: &str, payload: &[u8], now: OffsetDateTime, out: &mut Decoded) {
        let Some((site, machine, kind)) = parse_topic(topic) else {
            out.drop(
                DropReason::BadTopic,
                format!("topic {:?} is not mf/v1/{{site}}/{{machine}}/{{telemetry|events}}", clip(topic)),
            );
            return;
        };
        if payload.len() > self.config.max_payload_bytes {
            out.drop(DropReason::PayloadTooLarge, format!("{} bytes", payload.len()));
            return;
        }
        let joined = &topic[TOPIC_PREFIX.len()..TOPIC_PREFIX.len() + site.len() + 1 + machine.len()];
        let key = self.keys.get(joined, || MachineKey::new(site, machine));
        let window = TimeWindow::new(now, &self.config);
        let last = self.received.get(joined).copied().unwrap_or(i64::MIN);
        let received = Received::new(epoch_ms(now), last);
        match kind {
            TopicKind::Telemetry => self.decode_telemetry(&key, payload, (&window, &received), out),
            TopicKind::Events => decode_events(&key, payload, (&window, &received), out),
        }
        if received.last_ms.get() != last {
            if let Some(kept) = self.received.get_mut(joined) {
                *kept = received.last_ms.get();
            } else {
                if self.received.len() >= KeyCache::CAPACITY {
                    self.received.clear();
                }
                self.received.insert(Box::from(joined), received.last_ms.get());
            }
        }
    }

    fn decode_telemetry(&mut self, key: &MachineKey, payload: &[u8], times: Times<'_>, out: &mut Decoded) {
        self.pending.clear();
        let n_readings = out.readings.len();
        let n_dropped = out.dropped.len();
        let mut deserializer = serde_json::Deserializer::from_slice(payload);
        let (window, received) = times;
        let seed = TelemetryBody {
            key,
            window,
            received,
            names: &mut self.names,
            pending: &mut self.pending,
            out: &mut *out,
        };
        let result = seed.deserialize(&mut deserializer).and_then(|()| deserializer.end());
        if let Err(error) = result {
            // All or nothing for syntax errors: what was decoded before the error is withdrawn,
            // since a truncated message may have cut a value short.
            out.readings.truncate(n_readings);
            out.dropped.truncate(n_dropped);
            out.drop(DropReason::MalformedJson, format!("telemetry: {error}"));
        }
    }
}

/// A metric value as it appears in telemetry: a number (or boolean), or the kind of thing that
/// was there instead.
#[derive(Clone, Copy, Debug)]
enum MetricValue {
    Number(f64),
    Wrong(&'static str),
    BadName,
}

/// Seed for the whole telemetry payload: one object or an array of objects.
struct TelemetryBody<'a> {
    key: &'a MachineKey,
    window: &'a TimeWindow,
    received: &'a Received,
    names: &'a mut Interner,
    pending: &'a mut Vec<(Arc<str>, MetricValue)>,
    out: &'a mut Decoded,
}

impl<'de> DeserializeSeed<'de> for TelemetryBody<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TelemetryBody<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a telemetry object or an array of them")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        self.object(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(TelemetryObject(&mut self))?.is_some() {}
        Ok(())
    }
}

struct TelemetryObject<'b, 'a>(&'b mut TelemetryBody<'a>);

impl<'de> DeserializeSeed<'de> for TelemetryObject<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TelemetryObject<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a telemetry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.object(map)
    }
}

impl TelemetryBody<'_> {
    /// Reads one `{"ts": …, "metrics": {…}}` object and emits its readings.
    fn object<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        self.pending.clear();
        let mut ts = None;
        let mut saw_metrics = false;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                // `"ts": null` is no time, as in events: the time received.
                Field::Ts => ts = map.next_value::<Option<Timestamp>>()?,
                Field::Metrics => {
                    saw_metrics = true;
                    map.next_value_seed(Metrics { names: self.names, pending: self.pending })?;
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !saw_metrics {
            return Err(de::Error::missing_field("metrics"));
        }
        let at = match ts.map_or_else(|| self.received.next(), |ts| ts.resolve(self.window)) {
            Ok(at) => at,
            Err((reason, detail)) => {
                let n = self.pending.len();
                self.out.drop(reason, format!("{detail} ({n} metrics)"));
                return Ok(());
            }
        };
        for (metric, value) in self.pending.drain(..) {
            match value {
                MetricValue::Number(value) => match unstorable(value) {
                    None => self.out.readings.push(RawReading { key: self.key.clone(), metric, at, value }),
                    Some(reason) => self.out.drop(reason, format!("metric {metric:?} is {value:e}")),
                },
                MetricValue::Wrong(kind) => {
                    self.out.drop(DropReason::WrongTypes, format!("metric {metric:?} is {kind}"))
                }
                MetricValue::BadName => {
                    self.out.drop(DropReason::BadMetricName, format!("metric name {:?}", clip(&metric)))
                }
            }
        }
        Ok(())
    }
}

enum Field {
    Ts,
    Metrics,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Field, E> {
                Ok(match text {
                    "ts" => Field::Ts,
                    "metrics" => Field::Metrics,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Seed for the `metrics` object: pushes `(name, value)` pairs into `pending`.
struct Metrics<'a> {
    names: &'a mut Interner,
    pending: &'a mut Vec<(Arc<str>, MetricValue)>,
}

impl<'de> DeserializeSeed<'de> for Metrics<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Metrics<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of metric names to numbers or booleans")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key_seed(MetricName(self.names))? {
            let value = map.next_value::<ValueOf>()?.0;
            match name {
                Ok(name) => self.pending.push((name, value)),
                Err(bad) => self.pending.push((bad, MetricValue::BadName)),
            }
        }
        Ok(())
    }
}

/// A metric name, interned; `Err` with (a clip of) the name when it is not a valid one.
struct MetricName<'a>(&'a mut Interner);

impl<'de> DeserializeSeed<'de> for MetricName<'_> {
    type Value = Result<Arc<str>, Arc<str>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for MetricName<'_> {
    type Value = Result<Arc<str>, Arc<str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(if is_metric_name(name) { Ok(self.0.intern(name)) } else { Err(Arc::from(clip(name))) })
    }
}

/// Any JSON value, classified as a metric value without allocating.
struct ValueOf(MetricValue);

impl<'de> Deserialize<'de> for ValueOf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ValueOf, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = ValueOf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a boolean")
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<ValueOf, E> {
        Ok(ValueOf(MetricValue::Number(if value { 1.0 } else { 0.0 })))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ValueOf, E> {
        Ok(ValueOf(MetricValue::Number(value as f64)))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ValueOf, E> {
        Ok(ValueOf(MetricValue::Number(value as f64)))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<ValueOf, E> {
        // serde_json never produces NaN or infinity, but other deserializers might.
        Ok(ValueOf(if value.is_finite() {
            MetricValue::Number(value)
        } else {
            MetricValue::Wrong("not finite")
        }))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<ValueOf, E> {
        Ok(ValueOf(MetricValue::Wrong("a string")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ValueOf, E> {
        Ok(ValueOf(MetricValue::Wrong("null")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ValueOf, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ValueOf(MetricValue::Wrong("an array")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValueOf, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ValueOf(MetricValue::Wrong("an object")))
    }
}

/// A `ts` field as sent: RFC 3339 text, or epoch milliseconds (integer or fractional).
#[derive(Debug)]
enum Timestamp {
    Text(String),
    Millis(i64),
    FractionalMillis(f64),
    Wrong,
}

impl Timestamp {
    fn resolve(self, window: &TimeWindow) -> Result<OffsetDateTime, (DropReason, String)> {
        let result = match &self {
            Timestamp::Text(text) => match OffsetDateTime::parse(text, &Rfc3339) {
                Ok(at) => window.check(at),
                Err(_) => Err(DropReason::BadTimestamp),
            },
            Timestamp::Millis(ms) => window.check_ms(*ms),
            Timestamp::FractionalMillis(ms) if ms.is_finite() && ms.abs() < 1e17 => {
                // Whole milliseconds and the fraction separately: `ms * 1e6` would lose
                // sub-millisecond precision at today's magnitudes.
                let whole = ms.floor();
                let nanos = whole as i128 * 1_000_000 + ((ms - whole) * 1e6).round() as i128;
                window.check_ms(ms.floor() as i64).and_then(|_| {
                    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| DropReason::BadTimestamp)
                })
            }
            Timestamp::FractionalMillis(_) | Timestamp::Wrong => Err(DropReason::BadTimestamp),
        };
        result.map_err(|reason| {
            let shown = match &self {
                Timestamp::Text(text) => format!("{:?}", clip(text)),
                // A gateway sending Unix seconds: say so, rather than only "too old".
                Timestamp::Millis(ms) if window.check_ms(ms.saturating_mul(1000)).is_ok() => {
                    format!("{ms}, which looks like seconds: ts is in milliseconds")
                }
                Timestamp::Millis(ms) => ms.to_string(),
                Timestamp::FractionalMillis(ms) => ms.to_string(),
                Timestamp::Wrong => "neither text nor a number".to_string(),
            };
            (reason, format!("ts {shown}"))
        })
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        struct TsVisitor;
        impl<'de> Visitor<'de> for TsVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("RFC 3339 text or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                Ok(Timestamp::Text(text.to_string()))
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::Millis(ms))
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Timestamp, E> {
                Ok(i64::try_from(ms).map_or(Timestamp::Millis(i64::MAX), Timestamp::Millis))
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Timestamp, E> {
                Ok(Timestamp::FractionalMillis(ms))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Timestamp, E> {
                Ok(Timestamp::Wrong)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Timestamp, E> {
                Ok(Timestamp::Wrong)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Timestamp, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Timestamp::Wrong)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Timestamp, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Timestamp::Wrong)
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// One event as sent; checked field by field so the drop detail can say what is wrong.
#[derive(Deserialize)]
struct EventWire {
    #[serde(default)]
    ts: Option<Timestamp>,
    #[serde(rename = "type")]
    kind: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    operation_id: Option<i64>,
    good: Option<u32>,
    scrap: Option<u32>,
    ideal_unit_seconds: Option<f64>,
}

/// The window a message's times must fall in, and the time for what carries none.
type Times<'a> = (&'a TimeWindow, &'a Received);

fn decode_events(key: &MachineKey, payload: &[u8], times: Times<'_>, out: &mut Decoded) {
    let value: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(value) => value,
        Err(error) => return out.drop(DropReason::MalformedJson, format!("events: {error}")),
    };
    match value {
        serde_json::Value::Array(items) => {
            for item in items {
                decode_event(key, item, times, out);
            }
        }
        item @ serde_json::Value::Object(_) => decode_event(key, item, times, out),
        _ => out.drop(DropReason::MalformedJson, "events: expected an object or an array of objects"),
    }
}

fn decode_event(key: &MachineKey, item: serde_json::Value, (window, received): Times<'_>, out: &mut Decoded) {
    if !item.is_object() {
        return out.drop(DropReason::InvalidEvent, "an event is a JSON object");
    }
    let wire = match EventWire::deserialize(item) {
        Ok(wire) => wire,
        Err(error) => return out.drop(DropReason::InvalidEvent, error.to_string()),
    };
    let event = match event_of(&wire) {
        Ok(event) => event,
        Err(detail) => return out.drop(DropReason::InvalidEvent, detail),
    };
    let at = match wire.ts.map_or_else(|| received.next(), |ts| ts.resolve(window)) {
        Ok(at) => at,
        Err((reason, detail)) => return out.drop(reason, detail),
    };
    out.events.push(TimedEvent { key: key.clone(), at, event });
}

fn event_of(wire: &EventWire) -> Result<MachineEvent, String> {
    let kind = wire.kind.as_deref().ok_or("missing field `type`")?;
    let operation_id = || match wire.operation_id {
        Some(id) if id > 0 => Ok(id),
        Some(id) => Err(format!("operation_id {id} is not positive")),
        None => Err("missing field `operation_id`".to_string()),
    };
    let reason = |reason: &Option<String>| -> Result<Option<String>, String> {
        match reason {
            Some(text) if !is_reason(text) => Err(format!(
                "reason {:?} is not 1 to 200 characters without control or text-direction characters",
                clip(text)
            )),
            other => Ok(other.clone()),
        }
    };
    Ok(match kind {
        "online" => MachineEvent::Online,
        "offline" => MachineEvent::Offline,
        "state" => {
            let text = wire.state.as_deref().ok_or("missing field `state`")?;
            let state = MachineState::parse(text).ok_or_else(|| format!("unknown state {:?}", clip(text)))?;
            MachineEvent::StateChange { state, reason: reason(&wire.reason)? }
        }
        "operation_started" => MachineEvent::OperationStarted { operation_id: operation_id()? },
        "operation_finished" => {
            let (good, scrap) = plausible(
                wire.good.ok_or("missing field `good`")?,
                wire.scrap.ok_or("missing field `scrap`")?,
            )?;
            MachineEvent::OperationFinished {
                operation_id: operation_id()?,
                good,
                scrap,
                ideal_unit_ms: ideal_unit_ms(wire.ideal_unit_seconds)?,
            }
        }
        "produced" => {
            let (good, scrap) = plausible(wire.good.ok_or("missing field `good`")?, wire.scrap.unwrap_or(0))?;
            if good == 0 && scrap == 0 {
                return Err("a produced event reports at least one unit, good or scrap".into());
            }
            let ideal_unit_ms = ideal_unit_ms(wire.ideal_unit_seconds)?;
            MachineEvent::Produced { operation_id: operation_id()?, good, scrap, ideal_unit_ms }
        }
        "downtime" => {
            MachineEvent::Downtime { reason: reason(&wire.reason)?.ok_or("missing field `reason`")? }
        }
        other => return Err(format!("unknown event type {:?}", clip(other))),
    })
}

/// The most units one event may report: more than the largest order is a garbled count, and
/// taken as one it would wreck the operation's OEE and every plan after it.
pub const MAX_EVENT_UNITS: u64 = 1_000_000;

/// `good` and `scrap`, when together they are at most [`MAX_EVENT_UNITS`].
fn plausible(good: u32, scrap: u32) -> Result<(u32, u32), String> {
    if u64::from(good) + u64::from(scrap) > MAX_EVENT_UNITS {
        return Err(format!(
            "good and scrap together must be at most {MAX_EVENT_UNITS}, found {good} and {scrap}"
        ));
    }
    Ok((good, scrap))
}

/// The longest ideal time per unit an event may report: a week.
const MAX_IDEAL_UNIT_SECONDS: f64 = 604_800.0;

/// An event's optional `ideal_unit_seconds` in milliseconds, checked.
fn ideal_unit_ms(seconds: Option<f64>) -> Result<Option<u32>, String> {
    match seconds {
        None => Ok(None),
        Some(seconds) if seconds > 0.0 && seconds <= MAX_IDEAL_UNIT_SECONDS => {
            Ok(Some(MachineEvent::ideal_unit_ms(seconds)))
        }
        Some(seconds) => Err(format!(
            "ideal_unit_seconds must be more than 0 and at most {MAX_IDEAL_UNIT_SECONDS}, found {seconds}"
        )),
    }
}

/// Reasons are for people: 1 to 200 characters, no control characters or text-direction
/// controls.
pub(crate) fn is_reason(text: &str) -> bool {
    !text.trim().is_empty()
        && text.chars().count() <= 200
        && !text.chars().any(|c| c.is_control() || model::is_bidi_control(c))
}

fn unsigned_ms(at: OffsetDateTime) -> Result<u64, EncodeError> {
    u64::try_from(epoch_ms(at)).map_err(|_| EncodeError::TimestampBefore1970)
}

fn write_json<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    // Writing a string or a finite number into a Vec cannot fail.
    let _ = serde_json::to_writer(buf, value);
}

#[cfg(test)]
mod tests;
