//! The one MQTT 3.1.1 packet codec, shared by the broker and the client: every control packet as a
//! Rust value, `encode` into a byte buffer and incremental `decode` from one. Decoding never
//! allocates more than the configured maximum packet size and turns every malformed input into a
//! `CodecError`, never a panic; it checks the fixed-header flags, string encoding (UTF-8 without
//! U+0000) and topic rules the specification makes mandatory.

use std::num::NonZeroU16;

use crate::topic::{self, TopicError};

#[cfg(test)]
mod tests;

/// The default limit on a whole packet (fixed header included): 1 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1 << 20;

/// The largest remaining length the four-byte variable length encoding can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Quality of service of a PUBLISH or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// Fire and forget.
    AtMostOnce = 0,
    /// Acknowledged with PUBACK; may arrive more than once.
    AtLeastOnce = 1,
    /// Four-way handshake; arrives exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS to publish a message of `level` with: 0 is at most once, anything higher at least
    /// once (the most the platform's publishers use).
    pub fn publish_level(level: u8) -> QoS {
        if level == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce }
    }

    /// The QoS for its wire value, `None` for 3.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A packet identifier: never zero on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The identifier for `value`, `None` for 0.
    pub fn new(value: u16) -> Option<PacketId> {
        NonZeroU16::new(value).map(PacketId)
    }

    /// The wire value.
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

/// Every MQTT 3.1.1 control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client → server: open a session.
    Connect(Connect),
    /// Server → client: answer to CONNECT.
    ConnAck(ConnAck),
    /// Either way: an application message.
    Publish(Publish),
    /// Acknowledges a QoS 1 PUBLISH.
    PubAck(PacketId),
    /// QoS 2, step 2: publish received.
    PubRec(PacketId),
    /// QoS 2, step 3: publish release.
    PubRel(PacketId),
    /// QoS 2, step 4: publish complete.
    PubComp(PacketId),
    /// Client → server: add subscriptions.
    Subscribe(Subscribe),
    /// Server → client: answer to SUBSCRIBE.
    SubAck(SubAck),
    /// Client → server: remove subscriptions.
    Unsubscribe(Unsubscribe),
    /// Server → client: answer to UNSUBSCRIBE.
    UnsubAck(PacketId),
    /// Client → server: keepalive probe.
    PingReq,
    /// Server → client: keepalive answer.
    PingResp,
    /// Client → server: clean close; the will is discarded.
    Disconnect,
}

/// The CONNECT packet (protocol name "MQTT", level 4). Its `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    /// Client identifier; may be empty with a clean session (the server then assigns one).
    pub client_id: String,
    /// Keepalive in seconds; 0 turns the keepalive off.
    pub keep_alive: u16,
    /// Start a new session and discard it when the connection ends.
    pub clean_session: bool,
    /// Message the server publishes if the connection ends abnormally.
    pub will: Option<LastWill>,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any (binary data; only allowed with a user name).
    pub password: Option<Vec<u8>>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("client_id", &self.client_id)
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A will message carried by CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic name the will is published to.
    pub topic: String,
    /// Will payload.
    pub payload: Vec<u8>,
    /// QoS of the will publication.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
}

/// CONNACK return codes (3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// Connection accepted.
    Accepted = 0,
    /// The server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// The client identifier is not allowed.
    IdentifierRejected = 2,
    /// The MQTT service is unavailable.
    ServerUnavailable = 3,
    /// The user name or password is malformed or wrong.
    BadUserNameOrPassword = 4,
    /// The client is not authorized to connect.
    NotAuthorized = 5,
}

/// The CONNACK packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session.
    pub session_present: bool,
    /// The outcome.
    pub code: ConnectReturnCode,
}

/// The PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Redelivery flag; always false for QoS 0.
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (no wildcards).
    pub topic: String,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// Application payload.
    pub payload: Vec<u8>,
}

/// One topic filter of a SUBSCRIBE with the maximum QoS asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// The topic filter.
    pub filter: String,
    /// Requested maximum QoS.
    pub qos: QoS,
}

/// The SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Identifier echoed by SUBACK.
    pub packet_id: PacketId,
    /// At least one filter.
    pub filters: Vec<SubscribeFilter>,
}

/// One entry of a SUBACK: the granted QoS or a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeReturnCode {
    /// Subscribed with this maximum QoS.
    Success(QoS),
    /// Refused (0x80).
    Failure,
}

/// The SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Identifier of the SUBSCRIBE being answered.
    pub packet_id: PacketId,
    /// One code per filter, in the order of the SUBSCRIBE.
    pub return_codes: Vec<SubscribeReturnCode>,
}

/// The UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Identifier echoed by UNSUBACK.
    pub packet_id: PacketId,
    /// At least one filter.
    pub filters: Vec<String>,
}

/// Why bytes could not be decoded into a packet, or a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The remaining-length varint runs over four bytes.
    #[error("malformed remaining length")]
    MalformedRemainingLength,
    /// The packet is larger than the configured limit.
    #[error("packet of {size} bytes exceeds the limit of {max} bytes")]
    PacketTooLarge {
        /// Size of the whole packet as announced (or as encoded).
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// Packet type 0 or 15.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low nibble of the first byte is not what the packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidFlags {
        /// The packet type (high nibble).
        packet_type: u8,
        /// The flags (low nibble).
        flags: u8,
    },
    /// A field runs past the end of the packet.
    #[error("packet ends inside a field")]
    Truncated,
    /// Bytes remain after the last field.
    #[error("unexpected bytes after the last field")]
    TrailingBytes,
    /// A string is not valid UTF-8.
    #[error("string is not valid utf-8")]
    InvalidUtf8,
    /// A string contains U+0000.
    #[error("string contains the null character")]
    NulInString,
    /// A string or binary field is longer than 65535 bytes (encoding only).
    #[error("field is longer than 65535 bytes")]
    FieldTooLong,
    /// QoS 3.
    #[error("invalid qos 3")]
    InvalidQos,
    /// The QoS 0 PUBLISH has DUP set, or a QoS 0 packet carries a packet id (or a QoS 1/2 lacks one).
    #[error("publish flags and packet id are inconsistent")]
    InconsistentPublish,
    /// A packet identifier of 0.
    #[error("packet identifier is zero")]
    ZeroPacketId,
    /// CONNECT does not say "MQTT".
    #[error("protocol name is not MQTT")]
    InvalidProtocolName,
    /// CONNECT asks for a protocol level other than 4; the server answers with return code 1.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags break a rule (reserved bit, will flags without a will, password without user).
    #[error("invalid connect flags {0:#010b}")]
    InvalidConnectFlags(u8),
    /// CONNACK flags or return code out of range.
    #[error("invalid connack")]
    InvalidConnAck,
    /// SUBACK return code other than 0, 1, 2 or 0x80.
    #[error("invalid suback return code {0:#04x}")]
    InvalidSubAckCode(u8),
    /// A SUBSCRIBE requested-QoS byte with reserved bits set.
    #[error("invalid requested qos byte {0:#04x}")]
    InvalidRequestedQos(u8),
    /// SUBSCRIBE, UNSUBSCRIBE or SUBACK without any entry.
    #[error("packet has no topic filters")]
    NoTopicFilters,
    /// A topic name in PUBLISH or a will breaks the topic rules.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// A topic filter in SUBSCRIBE or UNSUBSCRIBE breaks the topic rules.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(Some((packet, consumed)))` with the number of bytes the packet took,
/// `Ok(None)` when `buf` holds only a prefix of a packet (read more and call again), or an error
/// for malformed input, including a packet whose announced size exceeds `max_packet_size` — that
/// is detected from the fixed header alone, so a caller never buffers more than the limit.
pub fn decode(buf: &[u8], max_packet_size: usize) -> Result<Option<(Packet, usize)>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((remaining_len, len_bytes)) = decode_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let total = 1 + len_bytes + remaining_len;
    if total > max_packet_size {
        return Err(CodecError::PacketTooLarge { size: total, max: max_packet_size });
    }
    if buf.len() < total {
        // Validate the type and flags early so garbage fails before a peer makes us wait.
        check_flags(first)?;
        return Ok(None);
    }
    let body = &buf[1 + len_bytes..total];
    let packet = decode_body(first, body)?;
    Ok(Some((packet, total)))
}

/// Appends the encoding of `packet` to `out`.
///
/// Fails (leaving `out` as it was) when the packet cannot be represented legally: an invalid topic,
/// a string over 65535 bytes, a PUBLISH whose QoS and packet id disagree, an empty SUBSCRIBE, or a
/// remaining length over the protocol maximum.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    let result = encode_inner(packet, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends a PUBLISH built from borrowed parts to `out`, so a broker can send one stored message to
/// many subscribers without copying it into a `Publish` first.
pub fn encode_publish(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    topic::validate_topic_name(topic).map_err(CodecError::InvalidTopicName)?;
    if (qos == QoS::AtMostOnce) != packet_id.is_none() || (qos == QoS::AtMostOnce && dup) {
        return Err(CodecError::InconsistentPublish);
    }
    let start = out.len();
    let remaining = 2 + topic.len() + packet_id.map_or(0, |_| 2) + payload.len();
    let flags = (u8::from(dup) << 3) | ((qos as u8) << 1) | u8::from(retain);
    if let Err(error) = put_fixed_header(out, 0x30 | flags, remaining) {
        out.truncate(start);
        return Err(error);
    }
    put_str(out, topic)?;
    if let Some(id) = packet_id {
        put_u16(out, id.get());
    }
    out.extend_from_slice(payload);
    Ok(())
}

fn encode_inner(packet: &Packet, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match packet {
        Packet::Connect(connect) => encode_connect(connect, out),
        Packet::ConnAck(ack) => {
            put_fixed_header(out, 0x20, 2)?;
            out.push(u8::from(ack.session_present));
            out.push(ack.code as u8);
            Ok(())
        }
        Packet::Publish(p) => encode_publish(&p.topic, &p.payload, p.qos, p.retain, p.dup, p.packet_id, out),
        Packet::PubAck(id) => put_id_only(out, 0x40, *id),
        Packet::PubRec(id) => put_id_only(out, 0x50, *id),
        Packet::PubRel(id) => put_id_only(out, 0x62, *id),
        Packet::PubComp(id) => put_id_only(out, 0x70, *id),
        Packet::Subscribe(sub) => {
            if sub.filters.is_empty() {
                return Err(CodecError::NoTopicFilters);
            }
            let mut remaining = 2;
            for f in &sub.filters {
                topic::validate_topic_filter(&f.filter).map_err(CodecError::InvalidTopicFilter)?;
                remaining += 2 + f.filter.len() + 1;
            }
            put_fixed_header(out, 0x82, remaining)?;
            put_u16(out, sub.packet_id.get());
            for f in &sub.filters {
                put_str(out, &f.filter)?;
                out.push(f.qos as u8);
            }
            Ok(())
        }
        Packet::SubAck(ack) => {
            if ack.return_codes.is_empty() {
                return Err(CodecError::NoTopicFilters);
            }
            put_fixed_header(out, 0x90, 2 + ack.return_codes.len())?;
            put_u16(out, ack.packet_id.get());
            out.extend(ack.return_codes.iter().map(|code| match code {
                SubscribeReturnCode::Success(qos) => *qos as u8,
                SubscribeReturnCode::Failure => 0x80,
            }));
            Ok(())
        }
        Packet::Unsubscribe(unsub) => {
            if unsub.filters.is_empty() {
                return Err(CodecError::NoTopicFilters);
            }
            let mut remaining = 2;
            for filter in &unsub.filters {
                topic::validate_topic_filter(filter).map_err(CodecError::InvalidTopicFilter)?;
                remaining += 2 + filter.len();
            }
            put_fixed_header(out, 0xA2, remaining)?;
            put_u16(out, unsub.packet_id.get());
            for filter in &unsub.filters {
                put_str(out, filter)?;
            }
            Ok(())
        }
        Packet::UnsubAck(id) => put_id_only(out, 0xB0, *id),
        Packet::PingReq => put_fixed_header(out, 0xC0, 0),
        Packet::PingResp => put_fixed_header(out, 0xD0, 0),
        Packet::Disconnect => put_fixed_header(out, 0xE0, 0),
    }
}

fn encode_connect(connect: &Connect, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if connect.password.is_some() && connect.username.is_none() {
        return Err(CodecError::InvalidConnectFlags(0x40));
    }
    let mut flags = 0u8;
    let mut remaining = 10 + 2 + connect.client_id.len();
    if let Some(will) = &connect.will {
        topic::validate_topic_name(&will.topic).map_err(CodecError::InvalidTopicName)?;
        flags |= 0x04 | ((will.qos as u8) << 3) | (u8::from(will.retain) << 5);
        remaining += 2 + will.topic.len() + 2 + will.payload.len();
    }
    if let Some(username) = &connect.username {
        flags |= 0x80;
        remaining += 2 + username.len();
    }
    if let Some(password) = &connect.password {
        flags |= 0x40;
        remaining += 2 + password.len();
    }
    if connect.clean_session {
        flags |= 0x02;
    }
    put_fixed_header(out, 0x10, remaining)?;
    put_str(out, "MQTT")?;
    out.push(4);
    out.push(flags);
    put_u16(out, connect.keep_alive);
    put_str(out, &connect.client_id)?;
    if let Some(will) = &connect.will {
        put_str(out, &will.topic)?;
        put_bytes(out, &will.payload)?;
    }
    if let Some(username) = &connect.username {
        put_str(out, username)?;
    }
    if let Some(password) = &connect.password {
        put_bytes(out, password)?;
    }
    Ok(())
}

/// Reads the remaining-length varint: `Ok(None)` if `buf` ends inside it.
fn decode_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0usize;
    for (idx, &byte) in buf.iter().enumerate().take(4) {
        value |= usize::from(byte & 0x7F) << (7 * idx);
        if byte & 0x80 == 0 {
            return Ok(Some((value, idx + 1)));
        }
    }
    if buf.len() >= 4 { Err(CodecError::MalformedRemainingLength) } else { Ok(None) }
}

fn check_flags(first: u8) -> Result<(), CodecError> {
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    let expected = match packet_type {
        0 | 15 => return Err(CodecError::ReservedPacketType(packet_type)),
        3 => {
            if (flags >> 1) & 0x03 == 3 {
                return Err(CodecError::InvalidQos);
            }
            return Ok(());
        }
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags == expected { Ok(()) } else { Err(CodecError::InvalidFlags { packet_type, flags }) }
}

fn decode_body(first: u8, body: &[u8]) -> Result<Packet, CodecError> {
    check_flags(first)?;
    let mut r = Reader { buf: body, pos: 0 };
    let packet = match first >> 4 {
        1 => Packet::Connect(decode_connect(&mut r)?),
        2 => {
            let flags = r.u8()?;
            let code = match r.u8()? {
                0 => ConnectReturnCode::Accepted,
                1 => ConnectReturnCode::UnacceptableProtocolVersion,
                2 => ConnectReturnCode::IdentifierRejected,
                3 => ConnectReturnCode::ServerUnavailable,
                4 => ConnectReturnCode::BadUserNameOrPassword,
                5 => ConnectReturnCode::NotAuthorized,
                _ => return Err(CodecError::InvalidConnAck),
            };
            if flags & 0xFE != 0 {
                return Err(CodecError::InvalidConnAck);
            }
            Packet::ConnAck(ConnAck { session_present: flags & 1 == 1, code })
        }
        3 => {
            let flags = first & 0x0F;
            let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(CodecError::InvalidQos)?;
            let dup = flags & 0x08 != 0;
            if qos == QoS::AtMostOnce && dup {
                return Err(CodecError::InconsistentPublish);
            }
            let topic = r.string()?;
            topic::validate_topic_name(&topic).map_err(CodecError::InvalidTopicName)?;
            let packet_id = if qos == QoS::AtMostOnce { None } else { Some(r.packet_id()?) };
            let payload = r.rest().to_vec();
            Packet::Publish(Publish { dup, qos, retain: flags & 1 == 1, topic, packet_id, payload })
        }
        4 => Packet::PubAck(r.packet_id()?),
        5 => Packet::PubRec(r.packet_id()?),
        6 => Packet::PubRel(r.packet_id()?),
        7 => Packet::PubComp(r.packet_id()?),
        8 => {
            let packet_id = r.packet_id()?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let filter = r.string()?;
                topic::validate_topic_filter(&filter).map_err(CodecError::InvalidTopicFilter)?;
                let requested = r.u8()?;
                if requested & 0xFC != 0 {
                    return Err(CodecError::InvalidRequestedQos(requested));
                }
                let qos = QoS::from_u8(requested).ok_or(CodecError::InvalidQos)?;
                filters.push(SubscribeFilter { filter, qos });
            }
            if filters.is_empty() {
                return Err(CodecError::NoTopicFilters);
            }
            Packet::Subscribe(Subscribe { packet_id, filters })
        }
        9 => {
            let packet_id = r.packet_id()?;
            let return_codes = r
                .rest()
                .iter()
                .map(|&code| match code {
                    0x80 => Ok(SubscribeReturnCode::Failure),
                    _ => QoS::from_u8(code)
                        .map(SubscribeReturnCode::Success)
                        .ok_or(CodecError::InvalidSubAckCode(code)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if return_codes.is_empty() {
                return Err(CodecError::NoTopicFilters);
            }
            Packet::SubAck(SubAck { packet_id, return_codes })
        }
        10 => {
            let packet_id = r.packet_id()?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let filter = r.string()?;
                topic::validate_topic_filter(&filter).map_err(CodecError::InvalidTopicFilter)?;
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(CodecError::NoTopicFilters);
            }
            Packet::Unsubscribe(Unsubscribe { packet_id, filters })
        }
        11 => Packet::UnsubAck(r.packet_id()?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect,
        other => return Err(CodecError::ReservedPacketType(other)),
    };
    if !r.is_empty() {
        return Err(CodecError::TrailingBytes);
    }
    Ok(packet)
}

fn decode_connect(r: &mut Reader<'_>) -> Result<Connect, CodecError> {
    if r.string()? != "MQTT" {
        return Err(CodecError::InvalidProtocolName);
    }
    let level = r.u8()?;
    if level != 4 {
        return Err(CodecError::UnsupportedProtocolLevel(level));
    }
    let flags = r.u8()?;
    let has_will = flags & 0x04 != 0;
    let will_qos = QoS::from_u8((flags >> 3) & 0x03).ok_or(CodecError::InvalidConnectFlags(flags))?;
    let will_retain = flags & 0x20 != 0;
    let has_username = flags & 0x80 != 0;
    let has_password = flags & 0x40 != 0;
    let reserved = flags & 0x01 != 0;
    if reserved
        || (!has_will && (will_qos != QoS::AtMostOnce || will_retain))
        || (has_password && !has_username)
    {
        return Err(CodecError::InvalidConnectFlags(flags));
    }
    let keep_alive = r.u16()?;
    let client_id = r.string()?;
    let will = if has_will {
        let topic = r.string()?;
        topic::validate_topic_name(&topic).map_err(CodecError::InvalidTopicName)?;
        let payload = r.bytes()?.to_vec();
        Some(LastWill { topic, payload, qos: will_qos, retain: will_retain })
    } else {
        None
    };
    let username = if has_username { Some(r.string()?) } else { None };
    let password = if has_password { Some(r.bytes()?.to_vec()) } else { None };
    Ok(Connect { client_id, keep_alive, clean_session: flags & 0x02 != 0, will, username, password })
}

/// A bounds-checked cursor over a packet body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end =
            self.pos.checked_add(n).filter(|&end| end <= self.buf.len()).ok_or(CodecError::Truncated)?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn rest(&mut self) -> &'a [u8] {
        let slice = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        slice
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn packet_id(&mut self) -> Result<PacketId, CodecError> {
        PacketId::new(self.u16()?).ok_or(CodecError::ZeroPacketId)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let text = std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::InvalidUtf8)?;
        if text.contains('\0') {
            return Err(CodecError::NulInString);
        }
        Ok(text.to_owned())
    }
}

fn put_fixed_header(out: &mut Vec<u8>, first: u8, remaining: usize) -> Result<(), CodecError> {
    if remaining > MAX_REMAINING_LENGTH {
        return Err(CodecError::PacketTooLarge { size: remaining, max: MAX_REMAINING_LENGTH });
    }
    out.reserve(remaining + 5);
    out.push(first);
    let mut value = remaining;
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return Ok(());
        }
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CodecError::FieldTooLong)?;
    put_u16(out, len);
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, text: &str) -> Result<(), CodecError> {
    if text.contains('\0') {
        return Err(CodecError::NulInString);
    }
    put_bytes(out, text.as_bytes())
}

fn put_id_only(out: &mut Vec<u8>, first: u8, id: PacketId) -> Result<(), CodecError> {
    put_fixed_header(out, first, 2)?;
    put_u16(out, id.get());
    Ok(())
}
