//! Sparkplug B 3.0: topics, the stateful host-side session decoder ([`SparkplugDecoder`]) and the
//! edge-node encoder ([`EdgeNode`]) the simulator publishes with.
//!
//! Topics are `spBv1.0/{group}/{NBIRTH|NDEATH|DBIRTH|DDEATH|NDATA|DDATA|NCMD|DCMD}/{edge_node}[/{device}]`
//! and `spBv1.0/STATE/{host_id}`. The group is our site code, the device our machine code, and
//! the edge node is a machine too (its node-level metrics belong to it); all three must be codes.
//!
//! The decoder keeps, per edge node, the alias → (name, datatype) tables of its NBIRTH and DBIRTHs
//! and the next expected `seq` (0–255, wrapping; an NBIRTH starts over at its own `seq`).
//! Rules, in the words of the specification where it has them:
//!
//! - Data or device messages from an edge node without a current birth are dropped (`no_birth`)
//!   and a rebirth is requested: an NCMD with `Node Control/Rebirth = true`.
//! - A message with the `seq` of the one before it is a resend and dropped (`repeated_seq`, as
//!   QoS 1 delivers a message again when its acknowledgement was lost).
//! - A `seq` other than the expected one drops that message (`sequence_gap`), requests a rebirth
//!   and drops further messages from that node (`awaiting_rebirth`) until its NBIRTH: after a gap
//!   the alias tables cannot be trusted (a DBIRTH may have been lost). Rebirth requests to one
//!   node are at most one per [`DecodeConfig::rebirth_interval_secs`].
//! - A data metric is resolved by alias, else by name; unknown ones are dropped (and a rebirth
//!   is requested). Its time is its own timestamp, else the payload's, else the time received.
//! - Births are readings too (they carry current values) and emit [`MachineEvent::Online`]. An
//!   NBIRTH while devices are online marks them offline until their DBIRTHs follow. A birth
//!   takes effect at its timestamp, but never before the node's last death as recorded here (a
//!   death is stamped when received, and a node's clock may run behind the platform's; a DBIRTH
//!   not before its device's last DDEATH either), and a
//!   `state` metric in a birth is the machine's state from the birth on, even when its own
//!   timestamp is a little earlier: the birth says what the machine does now. A state the node
//!   reports later takes effect no earlier than its birth either, unless it is `is_historical`.
//! - NDEATH (normally the MQTT will, with the `bdSeq` of the NBIRTH it belongs to) marks the node
//!   and its devices offline at the time received; a `bdSeq` that does not match the current
//!   NBIRTH is a stale will and ignored (`stale_death`). DDEATH marks its device offline.
//! - Numeric, boolean and DateTime (epoch ms) values become readings; a String metric named
//!   `state` or `…/state` (any case) whose value is a machine state becomes a
//!   [`MachineEvent::StateChange`]; a String metric named `state_reason` or `…/state_reason`
//!   gives the reason of the state change in the same payload (up to 200 characters without
//!   control characters, else `invalid_event`; empty, or without a state change, it is ignored);
//!   other strings are `not_numeric`; DataSet, Template, Bytes, File, PropertySet and array types
//!   are `unsupported_type`. Metrics under `Node Control/`,
//!   `Device Control/` and `Properties/`, and `bdSeq`, are session machinery and skipped silently.
//! - NCMD and DCMD (commands to edge nodes, including our own rebirth requests) are ignored.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::{
    DecodeConfig, Decoded, DropReason, EncodeError, Interner, MachineEvent, MachineKey, MachineState,
    Outgoing, RawReading, TimeWindow, TimedEvent, check_code, clip, epoch_ms, is_code, is_metric_name,
    unstorable,
};

pub mod proto;

use proto::{DataType, Metric, Payload, metric};

/// Every Sparkplug B topic starts with this.
pub const NAMESPACE: &str = "spBv1.0/";

/// The metric an edge node answers with a new NBIRTH when it is set to true in an NCMD.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// The birth/death sequence metric of NBIRTH and NDEATH.
pub const BD_SEQ_METRIC: &str = "bdSeq";

/// The message types of edge-node topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Edge node birth certificate.
    NBirth,
    /// Edge node death certificate (usually the MQTT will).
    NDeath,
    /// Device birth certificate.
    DBirth,
    /// Device death certificate.
    DDeath,
    /// Edge node data.
    NData,
    /// Device data.
    DData,
    /// Command to an edge node.
    NCmd,
    /// Command to a device.
    DCmd,
}

impl MessageType {
    /// Every message type.
    pub const ALL: [MessageType; 8] = [
        MessageType::NBirth,
        MessageType::NDeath,
        MessageType::DBirth,
        MessageType::DDeath,
        MessageType::NData,
        MessageType::DData,
        MessageType::NCmd,
        MessageType::DCmd,
    ];

    /// The topic segment, e.g. `NBIRTH`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    /// The inverse of [`MessageType::as_str`].
    pub fn parse(text: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether topics of this type name a device.
    pub fn is_device(self) -> bool {
        matches!(self, MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd)
    }
}

/// A parsed Sparkplug topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `spBv1.0/{group}/{type}/{edge_node}[/{device}]`; `device` is set exactly for D* types.
    Edge {
        /// Group id (our site code).
        group: &'a str,
        /// Message type.
        kind: MessageType,
        /// Edge node id.
        edge_node: &'a str,
        /// Device id (our machine code).
        device: Option<&'a str>,
    },
    /// `spBv1.0/STATE/{host_id}`: a primary host application's state.
    HostState {
        /// The host application id.
        host_id: &'a str,
    },
}

impl<'a> Topic<'a> {
    /// Parses a topic; `None` when it is not a Sparkplug B 3.0 topic or an id is not a code.
    pub fn parse(topic: &'a str) -> Option<Topic<'a>> {
        let rest = topic.strip_prefix(NAMESPACE)?;
        let mut parts = rest.split('/');
        let first = parts.next()?;
        let second = parts.next()?;
        if first == "STATE" {
            return (parts.next().is_none() && is_code(second))
                .then_some(Topic::HostState { host_id: second });
        }
        let kind = MessageType::parse(second)?;
        let edge_node = parts.next()?;
        let device = if kind.is_device() { Some(parts.next()?) } else { None };
        let all_codes = is_code(first) && is_code(edge_node) && device.is_none_or(is_code);
        (parts.next().is_none() && all_codes).then_some(Topic::Edge { group: first, kind, edge_node, device })
    }
}

/// The topic of an edge-node message; `device` is required for D* types and ignored otherwise.
pub fn topic(
    group: &str,
    kind: MessageType,
    edge_node: &str,
    device: Option<&str>,
) -> Result<String, EncodeError> {
    check_code("group", group)?;
    check_code("edge_node", edge_node)?;
    match (kind.is_device(), device) {
        (true, Some(device)) => {
            check_code("device", device)?;
            Ok(format!("{NAMESPACE}{group}/{}/{edge_node}/{device}", kind.as_str()))
        }
        (true, None) => Err(EncodeError::BadCode { field: "device", value: String::new() }),
        (false, _) => Ok(format!("{NAMESPACE}{group}/{}/{edge_node}", kind.as_str())),
    }
}

/// A primary host application's state (Sparkplug 3.0 `spBv1.0/STATE/{host_id}`, JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// Whether the host application is online.
    pub online: bool,
    /// Epoch milliseconds of the host's MQTT CONNECT this state belongs to.
    pub timestamp: u64,
}

/// Decodes a STATE payload.
pub fn decode_host_state(payload: &[u8]) -> Option<HostState> {
    serde_json::from_slice(payload).ok()
}

/// Encodes a STATE message (QoS 1, retained, as the specification requires). Publish it with
/// `online: true` after connecting, and register it with `online: false` and the same
/// `timestamp` as the MQTT will.
pub fn encode_host_state(host_id: &str, state: HostState) -> Result<Outgoing, EncodeError> {
    check_code("host_id", host_id)?;
    Ok(Outgoing {
        topic: format!("{NAMESPACE}STATE/{host_id}"),
        payload: serde_json::to_vec(&state).unwrap_or_default(),
        qos: 1,
        retain: true,
    })
}

/// The NCMD that asks an edge node to publish its births again (QoS 0, not retained).
pub fn encode_rebirth_request(
    group: &str,
    edge_node: &str,
    now: OffsetDateTime,
) -> Result<Outgoing, EncodeError> {
    let topic = topic(group, MessageType::NCmd, edge_node, None)?;
    Ok(rebirth_request(topic, now))
}

fn rebirth_request(topic: String, now: OffsetDateTime) -> Outgoing {
    let payload = Payload {
        timestamp: u64::try_from(epoch_ms(now)).ok(),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.to_string()),
            datatype: Some(DataType::Boolean.code()),
            value: Some(metric::Value::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    Outgoing { topic, payload: payload.encode_to_vec(), qos: 0, retain: false }
}

/// A typed metric value for the encoder.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// `Int8`.
    Int8(i8),
    /// `Int16`.
    Int16(i16),
    /// `Int32`.
    Int32(i32),
    /// `Int64`.
    Int64(i64),
    /// `UInt8`.
    UInt8(u8),
    /// `UInt16`.
    UInt16(u16),
    /// `UInt32`.
    UInt32(u32),
    /// `UInt64`.
    UInt64(u64),
    /// `Float`.
    Float(f32),
    /// `Double`.
    Double(f64),
    /// `Boolean`.
    Boolean(bool),
    /// `String`.
    String(String),
    /// `DateTime`, epoch milliseconds.
    DateTime(u64),
}

impl MetricValue {
    /// The Sparkplug datatype.
    pub fn datatype(&self) -> DataType {
        match self {
            MetricValue::Int8(_) => DataType::Int8,
            MetricValue::Int16(_) => DataType::Int16,
            MetricValue::Int32(_) => DataType::Int32,
            MetricValue::Int64(_) => DataType::Int64,
            MetricValue::UInt8(_) => DataType::UInt8,
            MetricValue::UInt16(_) => DataType::UInt16,
            MetricValue::UInt32(_) => DataType::UInt32,
            MetricValue::UInt64(_) => DataType::UInt64,
            MetricValue::Float(_) => DataType::Float,
            MetricValue::Double(_) => DataType::Double,
            MetricValue::Boolean(_) => DataType::Boolean,
            MetricValue::String(_) => DataType::String,
            MetricValue::DateTime(_) => DataType::DateTime,
        }
    }

    /// The protobuf value: signed integers are stored as two's complement in the unsigned
    /// fields (8 to 32 bits sign-extended into `int_value`, 64 bits in `long_value`).
    pub fn to_proto(&self) -> metric::Value {
        use metric::Value as V;
        match self {
            MetricValue::Int8(v) => V::IntValue(i32::from(*v) as u32),
            MetricValue::Int16(v) => V::IntValue(i32::from(*v) as u32),
            MetricValue::Int32(v) => V::IntValue(*v as u32),
            MetricValue::Int64(v) => V::LongValue(*v as u64),
            MetricValue::UInt8(v) => V::IntValue(u32::from(*v)),
            MetricValue::UInt16(v) => V::IntValue(u32::from(*v)),
            MetricValue::UInt32(v) => V::IntValue(*v),
            MetricValue::UInt64(v) => V::LongValue(*v),
            MetricValue::Float(v) => V::FloatValue(*v),
            MetricValue::Double(v) => V::DoubleValue(*v),
            MetricValue::Boolean(v) => V::BooleanValue(*v),
            MetricValue::String(v) => V::StringValue(v.clone()),
            MetricValue::DateTime(v) => V::LongValue(*v),
        }
    }

    fn is_finite(&self) -> bool {
        match self {
            MetricValue::Float(v) => v.is_finite(),
            MetricValue::Double(v) => v.is_finite(),
            _ => true,
        }
    }
}

/// One edge node as a publisher: tracks `seq`, `bdSeq` and the aliases it gave out in its
/// births, and encodes every message type an edge node sends. Aliases are unique across the
/// node and its devices, assigned 1, 2, … in birth order.
#[derive(Debug)]
pub struct EdgeNode {
    group: String,
    edge_node: String,
    bd_seq: u64,
    seq: u8,
    next_alias: u64,
    /// Per device ("" for the node itself): metric name → alias.
    aliases: HashMap<String, HashMap<String, u64>>,
}

impl EdgeNode {
    /// An edge node in group `group` (our site code), before its first connection, whose
    /// birth/death sequence number starts at `bd_seq` (0–255; wraps).
    pub fn new(group: &str, edge_node: &str, bd_seq: u8) -> Result<EdgeNode, EncodeError> {
        check_code("group", group)?;
        check_code("edge_node", edge_node)?;
        Ok(EdgeNode {
            group: group.to_string(),
            edge_node: edge_node.to_string(),
            bd_seq: u64::from(bd_seq),
            seq: 0,
            next_alias: 1,
            aliases: HashMap::new(),
        })
    }

    /// The current `bdSeq`.
    pub fn bd_seq(&self) -> u64 {
        self.bd_seq
    }

    /// The alias a birth gave `name` (of `device`, or of the node for `None`).
    pub fn alias(&self, device: Option<&str>, name: &str) -> Option<u64> {
        self.aliases.get(device.unwrap_or(""))?.get(name).copied()
    }

    /// The NDEATH to register as the MQTT will before connecting (QoS 1, not retained): it
    /// carries only `bdSeq`, and no timestamp, since the broker sends it at an unknown time.
    pub fn will(&self) -> Outgoing {
        let payload = Payload { metrics: vec![self.bd_seq_metric()], ..Payload::default() };
        Outgoing {
            topic: self.topic(MessageType::NDeath, None),
            payload: payload.encode_to_vec(),
            qos: 1,
            retain: false,
        }
    }

    /// The NBIRTH after connecting (QoS 0, not retained): `seq` restarts at 0, aliases are
    /// assigned afresh, and the metrics carry `bdSeq`, `Node Control/Rebirth = false` and
    /// `metrics` with their current values.
    pub fn birth(
        &mut self,
        at: OffsetDateTime,
        metrics: &[(&str, MetricValue)],
    ) -> Result<Outgoing, EncodeError> {
        self.seq = 0;
        self.next_alias = 1;
        self.aliases.clear();
        let mut birth_metrics = Vec::with_capacity(metrics.len() + 2);
        birth_metrics.push(self.bd_seq_metric());
        birth_metrics.push(Metric {
            name: Some(REBIRTH_METRIC.to_string()),
            datatype: Some(DataType::Boolean.code()),
            value: Some(metric::Value::BooleanValue(false)),
            ..Metric::default()
        });
        self.birth_metrics("", metrics, &mut birth_metrics)?;
        self.message(MessageType::NBirth, None, at, birth_metrics)
    }

    /// A DBIRTH for `device` with its metrics' current values.
    pub fn device_birth(
        &mut self,
        device: &str,
        at: OffsetDateTime,
        metrics: &[(&str, MetricValue)],
    ) -> Result<Outgoing, EncodeError> {
        check_code("device", device)?;
        let mut birth_metrics = Vec::with_capacity(metrics.len());
        self.birth_metrics(device, metrics, &mut birth_metrics)?;
        self.message(MessageType::DBirth, Some(device), at, birth_metrics)
    }

    /// An NDATA with metrics by alias; every name must have been in the NBIRTH.
    pub fn data(
        &mut self,
        at: OffsetDateTime,
        metrics: &[(&str, MetricValue)],
    ) -> Result<Outgoing, EncodeError> {
        let data_metrics = self.data_metrics("", metrics)?;
        self.message(MessageType::NData, None, at, data_metrics)
    }

    /// A DDATA with metrics by alias; every name must have been in the device's DBIRTH.
    pub fn device_data(
        &mut self,
        device: &str,
        at: OffsetDateTime,
        metrics: &[(&str, MetricValue)],
    ) -> Result<Outgoing, EncodeError> {
        if !self.aliases.contains_key(device) {
            return Err(EncodeError::DeviceNotBorn(device.to_string()));
        }
        let data_metrics = self.data_metrics(device, metrics)?;
        self.message(MessageType::DData, Some(device), at, data_metrics)
    }

    /// A DDEATH for `device`; its aliases are forgotten until the next DBIRTH.
    pub fn device_death(&mut self, device: &str, at: OffsetDateTime) -> Result<Outgoing, EncodeError> {
        if self.aliases.remove(device).is_none() {
            return Err(EncodeError::DeviceNotBorn(device.to_string()));
        }
        self.message(MessageType::DDeath, Some(device), at, Vec::new())
    }

    /// The NDEATH to publish before a clean disconnect (the will, with a timestamp), and the
    /// move to the next session: `bdSeq` is incremented for the next connection's will and birth.
    pub fn death(&mut self, at: OffsetDateTime) -> Outgoing {
        let payload = Payload {
            timestamp: u64::try_from(epoch_ms(at)).ok(),
            metrics: vec![self.bd_seq_metric()],
            ..Payload::default()
        };
        let message = Outgoing {
            topic: self.topic(MessageType::NDeath, None),
            payload: payload.encode_to_vec(),
            qos: 1,
            retain: false,
        };
        self.next_session();
        message
    }

    /// Moves to the next connection without publishing a death (the broker will publish the
    /// will): increments `bdSeq` and forgets the births.
    pub fn next_session(&mut self) {
        self.bd_seq = (self.bd_seq + 1) % 256;
        self.aliases.clear();
    }

    /// Whether a received message is an NCMD to this node asking for a rebirth.
    pub fn is_rebirth_request(&self, topic: &str, payload: &[u8]) -> bool {
        let for_us = matches!(
            Topic::parse(topic),
            Some(Topic::Edge { group, kind: MessageType::NCmd, edge_node, .. })
                if group == self.group && edge_node == self.edge_node
        );
        for_us
            && Payload::decode(payload).is_ok_and(|payload| {
                payload.metrics.iter().any(|metric| {
                    metric.name.as_deref() == Some(REBIRTH_METRIC)
                        && metric.value == Some(metric::Value::BooleanValue(true))
                })
            })
    }

    fn topic(&self, kind: MessageType, device: Option<&str>) -> String {
        match device {
            Some(device) => {
                format!("{NAMESPACE}{}/{}/{}/{device}", self.group, kind.as_str(), self.edge_node)
            }
            None => format!("{NAMESPACE}{}/{}/{}", self.group, kind.as_str(), self.edge_node),
        }
    }

    fn bd_seq_metric(&self) -> Metric {
        Metric {
            name: Some(BD_SEQ_METRIC.to_string()),
            datatype: Some(DataType::UInt64.code()),
            value: Some(metric::Value::LongValue(self.bd_seq)),
            ..Metric::default()
        }
    }

    fn birth_metrics(
        &mut self,
        device: &str,
        metrics: &[(&str, MetricValue)],
        out: &mut Vec<Metric>,
    ) -> Result<(), EncodeError> {
        let mut table = HashMap::with_capacity(metrics.len());
        for (name, value) in metrics {
            check_metric(name, value)?;
            let alias = self.next_alias;
            self.next_alias += 1;
            table.insert((*name).to_string(), alias);
            out.push(Metric {
                name: Some((*name).to_string()),
                alias: Some(alias),
                datatype: Some(value.datatype().code()),
                value: Some(value.to_proto()),
                ..Metric::default()
            });
        }
        self.aliases.insert(device.to_string(), table);
        Ok(())
    }

    fn data_metrics(
        &self,
        device: &str,
        metrics: &[(&str, MetricValue)],
    ) -> Result<Vec<Metric>, EncodeError> {
        let table = self.aliases.get(device);
        metrics
            .iter()
            .map(|(name, value)| {
                check_metric(name, value)?;
                let alias = table
                    .and_then(|table| table.get(*name))
                    .ok_or_else(|| EncodeError::NotInBirth((*name).to_string()))?;
                Ok(Metric { alias: Some(*alias), value: Some(value.to_proto()), ..Metric::default() })
            })
            .collect()
    }

    fn message(
        &mut self,
        kind: MessageType,
        device: Option<&str>,
        at: OffsetDateTime,
        metrics: Vec<Metric>,
    ) -> Result<Outgoing, EncodeError> {
        let timestamp = u64::try_from(epoch_ms(at)).map_err(|_| EncodeError::TimestampBefore1970)?;
        let payload = Payload {
            timestamp: Some(timestamp),
            metrics,
            seq: Some(u64::from(self.seq)),
            ..Payload::default()
        };
        self.seq = self.seq.wrapping_add(1);
        Ok(Outgoing {
            topic: self.topic(kind, device),
            payload: payload.encode_to_vec(),
            qos: 0,
            retain: false,
        })
    }
}

fn check_metric(name: &str, value: &MetricValue) -> Result<(), EncodeError> {
    if !is_metric_name(name) {
        return Err(EncodeError::BadMetricName(name.to_string()));
    }
    if !value.is_finite() {
        return Err(EncodeError::NonFinite(name.to_string()));
    }
    Ok(())
}

/// The host-side Sparkplug B decoder: one per ingest pipeline (it is stateful — sessions, `seq`
/// and alias tables — so all messages of one edge node must go through the same decoder, in
/// order).
#[derive(Debug, Default)]
pub struct SparkplugDecoder {
    config: DecodeConfig,
    /// group → edge node → session.
    groups: HashMap<Box<str>, HashMap<Box<str>, NodeSession>>,
    names: Interner,
    /// Reused between messages so decoding allocates little.
    scratch: Payload,
    /// Edge nodes whose births or death changed since [`SparkplugDecoder::take_changed_sessions`].
    changed: std::collections::BTreeSet<(Box<str>, Box<str>)>,
}

/// What a platform keeps of an edge node's session between runs, so that data it sent while the
/// platform was away (queued for the platform's session at an external broker) can be read by
/// its aliases before any new birth comes: the birth certificates, as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// The group (site code).
    pub group: String,
    /// The edge node.
    pub edge_node: String,
    /// The node's and its devices' metric definitions and `bdSeq`; `None` once it has no birth
    /// to keep (it died, or lost its sequence).
    pub births: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Births {
    bd_seq: Option<u64>,
    metrics: Vec<StoredMetric>,
    devices: Vec<(String, Vec<StoredMetric>)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMetric {
    name: String,
    alias: Option<u64>,
    datatype: u32,
}

impl MetricTable {
    fn stored(&self) -> Vec<StoredMetric> {
        let mut aliases: HashMap<&str, u64> = HashMap::new();
        for (alias, def) in &self.by_alias {
            aliases.insert(&def.name, *alias);
        }
        let mut out: Vec<StoredMetric> = self
            .by_name
            .values()
            .map(|def| StoredMetric {
                name: def.name.to_string(),
                alias: aliases.get(&*def.name).copied(),
                datatype: def.datatype.code(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn from_stored(stored: Vec<StoredMetric>, names: &mut Interner) -> MetricTable {
        let mut table = MetricTable::default();
        for metric in stored {
            let datatype = DataType::from_code(metric.datatype).unwrap_or(DataType::Unknown);
            let def = MetricDef { name: names.intern(&metric.name), datatype };
            if let Some(alias) = metric.alias {
                table.by_alias.insert(alias, def.clone());
            }
            table.by_name.insert(Arc::clone(&def.name), def);
        }
        table
    }
}

#[derive(Debug)]
struct NodeSession {
    key: MachineKey,
    state: NodeState,
    bd_seq: Option<u64>,
    metrics: MetricTable,
    devices: HashMap<Box<str>, DeviceSession>,
    last_rebirth_request: Option<OffsetDateTime>,
    /// When its last NDEATH was received (and recorded).
    died_at: Option<OffsetDateTime>,
    /// When each of its devices last died (DDEATH), as recorded.
    devices_died_at: HashMap<Box<str>, OffsetDateTime>,
    /// When its current birth took effect (see `Message::birth_time`).
    born_at: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    /// Never born since we started, or dead.
    Unborn,
    /// Born; the next message must carry this `seq`.
    Born { next_seq: u8 },
    /// Born before the platform (re)started, its births restored from the store
    /// ([`SparkplugDecoder::restore`]): the next message's `seq`, whatever it is, is taken up.
    Restored,
    /// A `seq` gap happened; waiting for a new NBIRTH.
    AwaitingRebirth,
}

#[derive(Debug)]
struct DeviceSession {
    key: MachineKey,
    metrics: MetricTable,
}

#[derive(Debug, Default)]
struct MetricTable {
    by_alias: HashMap<u64, MetricDef>,
    by_name: HashMap<Arc<str>, MetricDef>,
}

#[derive(Clone, Debug)]
struct MetricDef {
    name: Arc<str>,
    datatype: DataType,
}

impl SparkplugDecoder {
    /// A decoder with the given limits and no sessions.
    pub fn new(config: DecodeConfig) -> SparkplugDecoder {
        SparkplugDecoder { config, ..SparkplugDecoder::default() }
    }

    /// How many edge nodes currently have a session (born and not dead).
    pub fn n_born_nodes(&self) -> usize {
        self.groups
            .values()
            .flat_map(HashMap::values)
            .filter(|node| matches!(node.state, NodeState::Born { .. } | NodeState::Restored))
            .count()
    }

    /// The sessions whose births or death changed since the last call, to be stored (see
    /// [`StoredSession`]).
    pub fn take_changed_sessions(&mut self) -> Vec<StoredSession> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|(group, edge_node)| {
                let births =
                    self.groups.get(&group).and_then(|nodes| nodes.get(&edge_node)).and_then(|node| {
                        matches!(node.state, NodeState::Born { .. } | NodeState::Restored).then(|| {
                            let births = Births {
                                bd_seq: node.bd_seq,
                                metrics: node.metrics.stored(),
                                devices: node
                                    .devices
                                    .iter()
                                    .map(|(name, device)| (name.to_string(), device.metrics.stored()))
                                    .collect(),
                            };
                            serde_json::to_string(&births).unwrap_or_default()
                        })
                    });
                StoredSession { group: group.into(), edge_node: edge_node.into(), births }
            })
            .collect()
    }

    /// Takes up a session stored by an earlier run (its births), as if its node had just been
    /// born: its data is read by the stored aliases, from whatever `seq` comes next. A stored
    /// session that does not read back is left out, and that node asked for a rebirth as usual.
    pub fn restore(&mut self, stored: &StoredSession) -> Result<(), String> {
        let Some(births) = &stored.births else { return Ok(()) };
        if !is_code(&stored.group) || !is_code(&stored.edge_node) {
            return Err(format!("{}/{} is not a group and edge node", stored.group, stored.edge_node));
        }
        let births: Births = serde_json::from_str(births).map_err(|e| e.to_string())?;
        let metrics = MetricTable::from_stored(births.metrics, &mut self.names);
        let mut devices = HashMap::new();
        for (device, stored_metrics) in births.devices {
            if !is_code(&device) {
                return Err(format!("device {device:?} is not a code"));
            }
            let key = MachineKey::new(&stored.group, &device);
            let metrics = MetricTable::from_stored(stored_metrics, &mut self.names);
            devices.insert(Box::from(device.as_str()), DeviceSession { key, metrics });
        }
        let session = node_session(&mut self.groups, &stored.group, &stored.edge_node);
        session.state = NodeState::Restored;
        session.bd_seq = births.bd_seq;
        session.metrics = metrics;
        session.devices = devices;
        Ok(())
    }

    /// Decodes one message received at `now` on `topic`, appending to `out`.
    pub fn decode(&mut self, topic: &str, payload: &[u8], now: OffsetDateTime, out: &mut Decoded) {
        if payload.len() > self.config.max_payload_bytes {
            out.drop(DropReason::PayloadTooLarge, format!("{} bytes", payload.len()));
            return;
        }
        let (group, kind, edge_node, device) = match Topic::parse(topic) {
            Some(Topic::Edge { group, kind, edge_node, device }) => (group, kind, edge_node, device),
            Some(Topic::HostState { .. }) => {
                if decode_host_state(payload).is_none() {
                    out.drop(
                        DropReason::MalformedJson,
                        "STATE payload is not {\"online\": bool, \"timestamp\": ms}",
                    );
                }
                return;
            }
            None => {
                out.drop(
                    DropReason::BadTopic,
                    format!("topic {:?} is not a Sparkplug B 3.0 topic", clip(topic)),
                );
                return;
            }
        };
        if matches!(kind, MessageType::NCmd | MessageType::DCmd) {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        match scratch.merge(payload) {
            Ok(()) => {
                let window = TimeWindow::new(now, &self.config);
                let payload_at = match scratch.timestamp {
                    Some(ms) => window.check_unsigned_ms(ms),
                    None => Ok(window.now),
                };
                let mut message = Message {
                    payload_at,
                    group,
                    edge_node,
                    device,
                    payload: &scratch,
                    window: &window,
                    rebirth_interval: time::Duration::seconds(i64::from(self.config.rebirth_interval_secs)),
                    names: &mut self.names,
                    out,
                    reason: None,
                    not_before: None,
                };
                let session = node_session(&mut self.groups, group, edge_node);
                let before = std::mem::discriminant(&session.state);
                message.not_before = session.born_at;
                message.apply(kind, session);
                let births_changed = matches!(
                    kind,
                    MessageType::NBirth | MessageType::DBirth | MessageType::NDeath | MessageType::DDeath
                );
                if births_changed || std::mem::discriminant(&session.state) != before {
                    self.changed.insert((Box::from(group), Box::from(edge_node)));
                }
            }
            Err(error) => out.drop(DropReason::MalformedProtobuf, format!("{}: {error}", kind.as_str())),
        }
        self.scratch = scratch;
    }
}

fn node_session<'s>(
    groups: &'s mut HashMap<Box<str>, HashMap<Box<str>, NodeSession>>,
    group: &str,
    edge_node: &str,
) -> &'s mut NodeSession {
    if !groups.contains_key(group) {
        groups.insert(Box::from(group), HashMap::new());
    }
    let nodes = groups.get_mut(group).expect("inserted above");
    if !nodes.contains_key(edge_node) {
        nodes.insert(
            Box::from(edge_node),
            NodeSession {
                key: MachineKey::new(group, edge_node),
                state: NodeState::Unborn,
                bd_seq: None,
                metrics: MetricTable::default(),
                devices: HashMap::new(),
                last_rebirth_request: None,
                died_at: None,
                devices_died_at: HashMap::new(),
                born_at: None,
            },
        );
    }
    nodes.get_mut(edge_node).expect("inserted above")
}

/// One decoded message and everything needed to apply it to its node's session.
struct Message<'a> {
    /// The payload's time checked against the window (the time received if absent).
    payload_at: Result<OffsetDateTime, DropReason>,
    group: &'a str,
    edge_node: &'a str,
    device: Option<&'a str>,
    payload: &'a Payload,
    window: &'a TimeWindow,
    rebirth_interval: time::Duration,
    names: &'a mut Interner,
    out: &'a mut Decoded,
    /// A `state_reason` metric of the payload being applied, waiting for its state change.
    reason: Option<String>,
    /// When the node's current birth took effect: a state it reports (not as history) takes
    /// effect no earlier, as a node's clock may run behind the platform's.
    not_before: Option<OffsetDateTime>,
}

impl Message<'_> {
    fn apply(&mut self, kind: MessageType, session: &mut NodeSession) {
        match kind {
            MessageType::NBirth => self.node_birth(session),
            MessageType::NDeath => self.node_death(session),
            MessageType::DDeath => self.device_death(session),
            MessageType::DBirth | MessageType::NData | MessageType::DData => {
                if self.check_session(kind, session) {
                    match kind {
                        MessageType::DBirth => self.device_birth(session),
                        MessageType::NData => {
                            let key = session.key.clone();
                            let unknown = self.data(&key, &session.metrics);
                            if unknown {
                                self.request_rebirth(session);
                            }
                        }
                        _ => self.device_data(session),
                    }
                }
            }
            MessageType::NCmd | MessageType::DCmd => {}
        }
    }

    /// The time of the payload, checked against the window; the time received if absent.
    fn payload_time(&self) -> Result<OffsetDateTime, DropReason> {
        self.payload_at
    }

    fn event(&mut self, key: &MachineKey, at: OffsetDateTime, event: MachineEvent) {
        self.out.events.push(TimedEvent { key: key.clone(), at, event });
    }

    /// Checks that the node is born and `seq` is the next one; drops the message and requests
    /// a rebirth when not.
    fn check_session(&mut self, kind: MessageType, session: &mut NodeSession) -> bool {
        let seq = self.payload.seq;
        match session.state {
            NodeState::Born { next_seq } if seq == Some(u64::from(next_seq)) => {
                session.state = NodeState::Born { next_seq: next_seq.wrapping_add(1) };
                true
            }
            NodeState::Restored if seq.is_some_and(|seq| seq <= 255) => {
                let seq = seq.unwrap_or(0) as u8;
                session.state = NodeState::Born { next_seq: seq.wrapping_add(1) };
                true
            }
            // The message before again: a resend, not a gap.
            NodeState::Born { next_seq } if seq == Some(u64::from(next_seq.wrapping_sub(1))) => {
                self.out.drop(
                    DropReason::RepeatedSeq,
                    format!("{} from {}: seq {} again", kind.as_str(), session.key, next_seq.wrapping_sub(1)),
                );
                false
            }
            NodeState::Born { next_seq } => {
                let got = seq.map_or("none".to_string(), |seq| seq.to_string());
                self.out.drop(
                    DropReason::SequenceGap,
                    format!("{} from {}: seq {got}, expected {next_seq}", kind.as_str(), session.key),
                );
                session.state = NodeState::AwaitingRebirth;
                self.request_rebirth(session);
                false
            }
            NodeState::Restored => {
                self.out.drop(
                    DropReason::SequenceGap,
                    format!("{} from {}: no valid seq after a restart", kind.as_str(), session.key),
                );
                session.state = NodeState::AwaitingRebirth;
                self.request_rebirth(session);
                false
            }
            NodeState::AwaitingRebirth => {
                self.out.drop(DropReason::AwaitingRebirth, format!("{} from {}", kind.as_str(), session.key));
                self.request_rebirth(session);
                false
            }
            NodeState::Unborn => {
                self.out.drop(
                    DropReason::NoBirth,
                    format!("{} from {} before NBIRTH", kind.as_str(), session.key),
                );
                self.request_rebirth(session);
                false
            }
        }
    }

    fn request_rebirth(&mut self, session: &mut NodeSession) {
        let now = self.window.now;
        if session.last_rebirth_request.is_some_and(|last| now - last < self.rebirth_interval && now >= last)
        {
            return;
        }
        session.last_rebirth_request = Some(now);
        let topic = format!("{NAMESPACE}{}/NCMD/{}", self.group, self.edge_node);
        self.out.replies.push(rebirth_request(topic, now));
    }

    fn node_birth(&mut self, session: &mut NodeSession) {
        let seq = self.payload.seq.unwrap_or(0);
        let Ok(seq) = u8::try_from(seq) else {
            self.out
                .drop(DropReason::MalformedProtobuf, format!("NBIRTH from {}: seq {seq} > 255", session.key));
            return;
        };
        let at = self.birth_time(session);
        for (_, device) in session.devices.drain() {
            if let Ok(at) = at {
                self.out.events.push(TimedEvent { key: device.key, at, event: MachineEvent::Offline });
            }
        }
        session.state = NodeState::Born { next_seq: seq.wrapping_add(1) };
        session.bd_seq = None;
        session.metrics = MetricTable::default();
        for metric in &self.payload.metrics {
            if metric.name.as_deref() == Some(BD_SEQ_METRIC) {
                session.bd_seq = match metric.value {
                    Some(metric::Value::LongValue(v)) => Some(v),
                    Some(metric::Value::IntValue(v)) => Some(u64::from(v)),
                    _ => None,
                };
            }
        }
        let key = session.key.clone();
        session.born_at = at.ok();
        match at {
            Ok(at) => self.event(&key, at, MachineEvent::Online),
            Err(reason) => self.out.drop(reason, format!("NBIRTH time of {key}")),
        }
        session.metrics = self.birth(&key, at.ok());
    }

    fn device_birth(&mut self, session: &mut NodeSession) {
        let device = self.device.unwrap_or_default();
        let key = MachineKey { site: Arc::clone(&session.key.site), machine: Arc::from(device) };
        // Never before the device's own last death either.
        let at = self.birth_time(session).map(|at| match session.devices_died_at.get(device) {
            Some(&died) if at <= died => died + time::Duration::milliseconds(1),
            _ => at,
        });
        match at {
            Ok(at) => self.event(&key, at, MachineEvent::Online),
            Err(reason) => self.out.drop(reason, format!("DBIRTH time of {key}")),
        }
        let metrics = self.birth(&key, at.ok());
        session.devices.insert(Box::from(device), DeviceSession { key, metrics });
    }

    /// When a birth takes effect: its payload's time, but after the node's last recorded death.
    fn birth_time(&self, session: &NodeSession) -> Result<OffsetDateTime, DropReason> {
        let at = self.payload_time()?;
        Ok(match session.died_at {
            Some(died) if at <= died => died + time::Duration::milliseconds(1),
            _ => at,
        })
    }

    /// Builds the metric table of a birth that took effect `at` and emits its values.
    fn birth(&mut self, key: &MachineKey, at: Option<OffsetDateTime>) -> MetricTable {
        let mut table = MetricTable::default();
        let first_event = self.out.events.len();
        for metric in &self.payload.metrics {
            let Some(name) = metric.name.as_deref() else {
                self.out.drop(DropReason::UnknownMetric, format!("birth metric of {key} without a name"));
                continue;
            };
            if !is_metric_name(name) {
                self.out.drop(DropReason::BadMetricName, format!("metric name {:?} of {key}", clip(name)));
                continue;
            }
            let datatype = metric.datatype.and_then(DataType::from_code).unwrap_or(DataType::Unknown);
            let def = MetricDef { name: self.names.intern(name), datatype };
            if let Some(alias) = metric.alias {
                // The specification wants aliases unique in a node's births; a second use would
                // send one series' data to another.
                match table.by_alias.entry(alias) {
                    std::collections::hash_map::Entry::Occupied(first) => self.out.drop(
                        DropReason::DuplicateAlias,
                        format!(
                            "alias {alias} of {key} is {:?}'s already; {:?} is known by its name only",
                            clip(&first.get().name),
                            clip(name)
                        ),
                    ),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(def.clone());
                    }
                }
            }
            table.by_name.insert(Arc::clone(&def.name), def.clone());
            if !is_session_machinery(name) {
                self.metric_value(key, &def, metric);
            }
        }
        // The state a birth reports is the state from the birth on, not before it.
        for event in &mut self.out.events[first_event..] {
            if event.key == *key && matches!(event.event, MachineEvent::StateChange { .. }) {
                event.at = event.at.max(at.unwrap_or(event.at));
            }
        }
        self.give_reason(key, first_event);
        table
    }

    /// Gives the payload's `state_reason`, if any, to the state change the payload made (the
    /// events of `key` from index `first_event` on).
    fn give_reason(&mut self, key: &MachineKey, first_event: usize) {
        let Some(reason) = self.reason.take() else { return };
        let changes = self.out.events[first_event..].iter_mut().filter(|e| e.key == *key);
        if let Some(MachineEvent::StateChange { reason: slot, .. }) = changes.map(|e| &mut e.event).last() {
            *slot = Some(reason);
        }
    }

    /// Emits the values of an NDATA or DDATA; returns whether some metric was unknown.
    fn data(&mut self, key: &MachineKey, table: &MetricTable) -> bool {
        let mut unknown = false;
        let first_event = self.out.events.len();
        for metric in &self.payload.metrics {
            let def = match (metric.alias, metric.name.as_deref()) {
                (Some(alias), _) => table
                    .by_alias
                    .get(&alias)
                    .ok_or_else(|| (DropReason::UnknownAlias, format!("alias {alias} of {key}"))),
                (None, Some(name)) => table
                    .by_name
                    .get(name)
                    .ok_or_else(|| (DropReason::UnknownMetric, format!("metric {:?} of {key}", clip(name)))),
                (None, None) => {
                    Err((DropReason::UnknownMetric, format!("metric of {key} without name or alias")))
                }
            };
            match def {
                Ok(def) => {
                    if !is_session_machinery(&def.name) {
                        self.metric_value(key, def, metric);
                    }
                }
                Err((reason, detail)) => {
                    unknown = true;
                    self.out.drop(reason, detail);
                }
            }
        }
        self.give_reason(key, first_event);
        unknown
    }

    fn device_data(&mut self, session: &mut NodeSession) {
        let device = self.device.unwrap_or_default();
        let Some(device_session) = session.devices.get(device) else {
            self.out
                .drop(DropReason::NoBirth, format!("DDATA from {}/{device} before DBIRTH", session.key.site));
            self.request_rebirth(session);
            return;
        };
        let key = device_session.key.clone();
        if self.data(&key, &session.devices[device].metrics) {
            self.request_rebirth(session);
        }
    }

    fn device_death(&mut self, session: &mut NodeSession) {
        let device = self.device.unwrap_or_default();
        let (key, known) = match session.devices.remove(device) {
            Some(device_session) => (device_session.key, true),
            None => (MachineKey { site: Arc::clone(&session.key.site), machine: Arc::from(device) }, false),
        };
        // A DDEATH takes part in the node's sequence; a gap is reported but the device is offline
        // all the same. One without a `seq` (some libraries register it as a will) takes no part.
        if matches!(session.state, NodeState::Born { .. } | NodeState::Restored) && self.payload.seq.is_some()
        {
            self.check_session(MessageType::DDeath, session);
        }
        let at = self.payload_time().unwrap_or(self.window.now);
        self.event(&key, at, MachineEvent::Offline);
        // Kept for the devices the node had born only, so names made up cannot fill it.
        if known {
            session.devices_died_at.insert(Box::from(device), at);
        }
    }

    fn node_death(&mut self, session: &mut NodeSession) {
        let bd_seq =
            self.payload.metrics.iter().find(|m| m.name.as_deref() == Some(BD_SEQ_METRIC)).and_then(|m| {
                match m.value {
                    Some(metric::Value::LongValue(v)) => Some(v),
                    Some(metric::Value::IntValue(v)) => Some(u64::from(v)),
                    _ => None,
                }
            });
        if let (Some(current), Some(got)) = (session.bd_seq, bd_seq)
            && current != got
        {
            self.out.drop(
                DropReason::StaleDeath,
                format!("NDEATH of {} with bdSeq {got}, current {current}", session.key),
            );
            return;
        }
        // The will's timestamp (if any) is from when it was registered, so the time received is
        // the best estimate of when the node died.
        let at = self.window.now;
        for (_, device) in session.devices.drain() {
            self.out.events.push(TimedEvent { key: device.key, at, event: MachineEvent::Offline });
        }
        let key = session.key.clone();
        self.event(&key, at, MachineEvent::Offline);
        session.died_at = Some(at);
        session.state = NodeState::Unborn;
        session.bd_seq = None;
        session.metrics = MetricTable::default();
    }

    /// Turns one metric value into a reading, an event or a drop.
    fn metric_value(&mut self, key: &MachineKey, def: &MetricDef, metric: &Metric) {
        if metric.is_null == Some(true) {
            return self.out.drop(DropReason::NullValue, format!("metric {:?} of {key}", def.name));
        }
        if metric.is_transient == Some(true) {
            return self.out.drop(DropReason::Transient, format!("metric {:?} of {key}", def.name));
        }
        let at = match metric.timestamp {
            Some(ms) if Some(ms) != self.payload.timestamp => self.window.check_unsigned_ms(ms),
            _ => self.payload_time(),
        };
        let at = match at {
            Ok(at) => at,
            Err(reason) => return self.out.drop(reason, format!("metric {:?} of {key}", def.name)),
        };
        match numeric_value(def.datatype, metric.value.as_ref()) {
            Ok(value) => match unstorable(value) {
                None => self.out.readings.push(RawReading {
                    key: key.clone(),
                    metric: Arc::clone(&def.name),
                    at,
                    value,
                }),
                Some(reason) => self.out.drop(reason, format!("metric {:?} of {key}", def.name)),
            },
            Err(NotNumber::Text(text)) if is_state_reason(&def.name) => {
                // An empty reason is the usual "none" of a PLC tag.
                if text.trim().is_empty() {
                } else if crate::json::is_reason(text) {
                    self.reason = Some(text.trim().to_string());
                } else {
                    self.out.drop(DropReason::InvalidEvent, format!("metric {:?} of {key}", def.name));
                }
            }
            Err(NotNumber::Text(text)) => match state_of(&def.name, text) {
                Some(state) => {
                    // Not before the birth: a slow clock must not put the state behind the death
                    // the platform recorded, where it would change nothing. History stays history.
                    let at = match self.not_before {
                        Some(born) if metric.is_historical != Some(true) => at.max(born),
                        _ => at,
                    };
                    self.event(key, at, MachineEvent::StateChange { state, reason: None })
                }
                None => self.out.drop(DropReason::NotNumeric, format!("metric {:?} of {key}", def.name)),
            },
            Err(NotNumber::Drop(reason, what)) => {
                self.out.drop(reason, format!("metric {:?} of {key}: {what}", def.name))
            }
        }
    }
}

/// Birth metrics that describe the session or the node rather than the machine.
fn is_session_machinery(name: &str) -> bool {
    name == BD_SEQ_METRIC
        || name.starts_with("Node Control/")
        || name.starts_with("Device Control/")
        || name.starts_with("Properties/")
}

/// Whether a String metric named `state_reason` or `…/state_reason` (any case) carries the
/// reason of a state change.
fn is_state_reason(name: &str) -> bool {
    name.rsplit('/').next().unwrap_or(name).eq_ignore_ascii_case("state_reason")
}

/// A machine state carried by a String metric named `state` or `…/state`, in any case (a PLC
/// may send `RUNNING`).
fn state_of(name: &str, text: &str) -> Option<MachineState> {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.eq_ignore_ascii_case("state") {
        MachineState::parse(&text.trim().to_ascii_lowercase())
    } else {
        None
    }
}

enum NotNumber<'a> {
    Text(&'a str),
    Drop(DropReason, &'static str),
}

/// The numeric value of a metric for its datatype. Integer widths are taken from the datatype,
/// so both sign-extended and zero-extended encodings of small signed integers read right; a
/// value in a neighbouring field (a UInt32 in `long_value`, as some implementations send) is
/// accepted.
fn numeric_value(datatype: DataType, value: Option<&metric::Value>) -> Result<f64, NotNumber<'_>> {
    use metric::Value as V;
    let Some(value) = value else {
        return Err(NotNumber::Drop(DropReason::WrongTypes, "no value"));
    };
    let bits = match value {
        V::IntValue(v) => Some(u64::from(*v)),
        V::LongValue(v) => Some(*v),
        _ => None,
    };
    let wrong = NotNumber::Drop(DropReason::WrongTypes, "value field does not fit the datatype");
    let beyond = || NotNumber::Drop(DropReason::OutOfRange, "value beyond the range of its datatype");
    let integer = |width: u32, signed: bool| -> Result<f64, NotNumber<'_>> {
        let bits =
            bits.ok_or(NotNumber::Drop(DropReason::WrongTypes, "value field does not fit the datatype"))?;
        narrow(bits, width, signed).ok_or_else(beyond)
    };
    Ok(match datatype {
        DataType::Int8 => integer(8, true)?,
        DataType::Int16 => integer(16, true)?,
        DataType::Int32 => integer(32, true)?,
        DataType::Int64 => integer(64, true)?,
        DataType::UInt8 => integer(8, false)?,
        DataType::UInt16 => integer(16, false)?,
        DataType::UInt32 => integer(32, false)?,
        DataType::UInt64 | DataType::DateTime => integer(64, false)?,
        DataType::Float | DataType::Double => match value {
            V::FloatValue(v) => f64::from(*v),
            V::DoubleValue(v) => *v,
            _ => return Err(wrong),
        },
        DataType::Boolean => match value {
            V::BooleanValue(v) => f64::from(u8::from(*v)),
            _ => return Err(wrong),
        },
        DataType::String | DataType::Text | DataType::Uuid => match value {
            V::StringValue(text) => return Err(NotNumber::Text(text)),
            _ => return Err(wrong),
        },
        DataType::Unknown => match value {
            V::IntValue(v) => f64::from(*v),
            V::LongValue(v) => *v as f64,
            V::FloatValue(v) => f64::from(*v),
            V::DoubleValue(v) => *v,
            V::BooleanValue(v) => f64::from(u8::from(*v)),
            V::StringValue(text) => return Err(NotNumber::Text(text)),
            _ => return Err(NotNumber::Drop(DropReason::UnsupportedType, "not a scalar")),
        },
        _ => return Err(NotNumber::Drop(DropReason::UnsupportedType, datatype.name())),
    })
}

/// An integer of `width` bits sent in a 32- or 64-bit field: zero-extended, or for signed types
/// also sign-extended to 32 or 64 bits (implementations differ); `None` when the bits hold a
/// value the type cannot (a UInt8 of 300), rather than the low bits of it.
fn narrow(bits: u64, width: u32, signed: bool) -> Option<f64> {
    if width == 64 {
        return Some(if signed { bits as i64 as f64 } else { bits as f64 });
    }
    let mask = (1u64 << width) - 1;
    let low = bits & mask;
    let value = if signed && low >> (width - 1) == 1 { low as i64 - (1i64 << width) } else { low as i64 };
    let zero_extended = bits == low;
    let sign_extended = signed && value < 0 && (bits == value as u64 || bits == u64::from(value as u32));
    (zero_extended || sign_extended).then_some(value as f64)
}

#[cfg(test)]
mod tests;
