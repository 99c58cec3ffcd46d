//! Tests of the Sparkplug B codec: topics, the session rules (birth → data by alias → gap →
//! rebirth request → death), value conversions, encoder round trips, and the field numbers of
//! the Rust messages against `proto/sparkplug_b.proto`.

use std::collections::BTreeMap;

use expect_test::expect;
use time::Duration;

use super::proto::*;
use super::*;
use crate::codec::tests::{NOW, render};

fn decode(decoder: &mut SparkplugDecoder, message: &Outgoing, now: OffsetDateTime) -> String {
    let mut out = Decoded::default();
    decoder.decode(&message.topic, &message.payload, now, &mut out);
    render(&out)
}

fn raw(decoder: &mut SparkplugDecoder, topic: &str, payload: &Payload, now: OffsetDateTime) -> String {
    let mut out = Decoded::default();
    decoder.decode(topic, &payload.encode_to_vec(), now, &mut out);
    render(&out)
}

fn ms(at: OffsetDateTime) -> u64 {
    u64::try_from(epoch_ms(at)).unwrap()
}

#[test]
fn topics() {
    let parsed: Vec<_> = [
        "spBv1.0/hk/NBIRTH/edge-1",
        "spBv1.0/hk/DDATA/edge-1/cnc-1",
        "spBv1.0/STATE/scada",
        "spBv1.0/hk/DDATA/edge-1",
        "spBv1.0/hk/NDATA/edge-1/extra",
        "spBv1.0/hk/STATE/edge-1",
        "spBv1.0/h k/NDATA/edge-1",
        "spBv1.0/hk/NDATA/",
        "spBv1.0/STATE/scada/x",
        "spAv1.0/hk/NDATA/edge-1",
    ]
    .iter()
    .map(|topic| format!("{topic} -> {:?}", Topic::parse(topic)))
    .collect();
    expect![[r#"
        spBv1.0/hk/NBIRTH/edge-1 -> Some(Edge { group: "hk", kind: NBirth, edge_node: "edge-1", device: None })
        spBv1.0/hk/DDATA/edge-1/cnc-1 -> Some(Edge { group: "hk", kind: DData, edge_node: "edge-1", device: Some("cnc-1") })
        spBv1.0/STATE/scada -> Some(HostState { host_id: "scada" })
        spBv1.0/hk/DDATA/edge-1 -> None
        spBv1.0/hk/NDATA/edge-1/extra -> None
        spBv1.0/hk/STATE/edge-1 -> None
        spBv1.0/h k/NDATA/edge-1 -> None
        spBv1.0/hk/NDATA/ -> None
        spBv1.0/STATE/scada/x -> None
        spAv1.0/hk/NDATA/edge-1 -> None"#]]
    .assert_eq(&parsed.join("\n"));
    assert_eq!(topic("hk", MessageType::DCmd, "e", Some("d")).unwrap(), "spBv1.0/hk/DCMD/e/d");
    assert_eq!(topic("hk", MessageType::NCmd, "e", Some("d")).unwrap(), "spBv1.0/hk/NCMD/e");
    assert!(topic("hk", MessageType::DData, "e", None).is_err());
}

#[test]
fn session_birth_data_gap_rebirth_death() {
    let mut edge = EdgeNode::new("hk", "edge-1", 3).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let t0 = NOW - Duration::seconds(10);
    let will = edge.will();
    let node_metrics = [("Temperature", MetricValue::Double(21.5)), ("Uptime", MetricValue::UInt32(7))];
    let birth = edge.birth(t0, &node_metrics).unwrap();
    let cnc = [
        ("Spindle/Power", MetricValue::Float(3.5)),
        ("Running", MetricValue::Boolean(true)),
        ("Offset", MetricValue::Int16(-12)),
        ("Machine/State", MetricValue::String("running".into())),
    ];
    let dbirth = edge.device_birth("cnc-1", t0, &cnc).unwrap();
    let data = edge.data(t0 + Duration::seconds(1), &[("Temperature", MetricValue::Double(22.0))]).unwrap();
    let ddata = edge
        .device_data(
            "cnc-1",
            t0 + Duration::seconds(2),
            &[("Offset", MetricValue::Int16(-13)), ("Machine/State", MetricValue::String("down".into()))],
        )
        .unwrap();
    let mut log = String::new();
    for message in [&birth, &dbirth, &data, &ddata] {
        log += &decode(&mut decoder, message, NOW);
    }
    expect![[r#"
        reading hk/edge-1 "Temperature" = 21.5 at 2025-03-01T11:59:50Z
        reading hk/edge-1 "Uptime" = 7 at 2025-03-01T11:59:50Z
        event hk/edge-1 Online at 2025-03-01T11:59:50Z
        reading hk/cnc-1 "Spindle/Power" = 3.5 at 2025-03-01T11:59:50Z
        reading hk/cnc-1 "Running" = 1 at 2025-03-01T11:59:50Z
        reading hk/cnc-1 "Offset" = -12 at 2025-03-01T11:59:50Z
        event hk/cnc-1 Online at 2025-03-01T11:59:50Z
        event hk/cnc-1 StateChange { state: Running, reason: None } at 2025-03-01T11:59:50Z
        reading hk/edge-1 "Temperature" = 22 at 2025-03-01T11:59:51Z
        reading hk/cnc-1 "Offset" = -13 at 2025-03-01T11:59:52Z
        event hk/cnc-1 StateChange { state: Down, reason: None } at 2025-03-01T11:59:52Z
    "#]]
    .assert_eq(&log);
    assert_eq!(decoder.n_born_nodes(), 1);

    // A lost message: the next one is a gap, the one after waits for the rebirth.
    let _lost = edge.data(NOW, &[("Temperature", MetricValue::Double(23.0))]).unwrap();
    let after_gap = edge.data(NOW, &[("Temperature", MetricValue::Double(24.0))]).unwrap();
    let waiting = edge.device_data("cnc-1", NOW, &[("Running", MetricValue::Boolean(false))]).unwrap();
    let mut log = decode(&mut decoder, &after_gap, NOW);
    log += &decode(&mut decoder, &waiting, NOW + Duration::seconds(1));
    log += &decode(&mut decoder, &waiting, NOW + Duration::seconds(6));
    expect![[r#"
        dropped sequence_gap: NDATA from hk/edge-1: seq 5, expected 4
        reply spBv1.0/hk/NCMD/edge-1 (35 bytes, qos 0, retain false)
        dropped awaiting_rebirth: DDATA from hk/edge-1
        dropped awaiting_rebirth: DDATA from hk/edge-1
        reply spBv1.0/hk/NCMD/edge-1 (35 bytes, qos 0, retain false)
    "#]]
    .assert_eq(&log);

    // The edge node answers the request with new births.
    let mut out = Decoded::default();
    decoder.decode(&after_gap.topic, &after_gap.payload, NOW + Duration::seconds(12), &mut out);
    let request = &out.replies[0];
    assert!(edge.is_rebirth_request(&request.topic, &request.payload));
    assert!(!EdgeNode::new("hk", "edge-2", 0).unwrap().is_rebirth_request(&request.topic, &request.payload));
    let rebirth = edge.birth(NOW, &node_metrics).unwrap();
    let redbirth = edge.device_birth("cnc-1", NOW, &cnc[..1]).unwrap();
    let data = edge.device_data("cnc-1", NOW, &[("Spindle/Power", MetricValue::Float(0.25))]).unwrap();
    let mut log = String::new();
    for message in [&rebirth, &redbirth, &data, &will] {
        log += &decode(&mut decoder, message, NOW + Duration::seconds(20));
    }
    expect![[r#"
        reading hk/edge-1 "Temperature" = 21.5 at 2025-03-01T12:00:00Z
        reading hk/edge-1 "Uptime" = 7 at 2025-03-01T12:00:00Z
        event hk/cnc-1 Offline at 2025-03-01T12:00:00Z
        event hk/edge-1 Online at 2025-03-01T12:00:00Z
        reading hk/cnc-1 "Spindle/Power" = 3.5 at 2025-03-01T12:00:00Z
        event hk/cnc-1 Online at 2025-03-01T12:00:00Z
        reading hk/cnc-1 "Spindle/Power" = 0.25 at 2025-03-01T12:00:00Z
        event hk/cnc-1 Offline at 2025-03-01T12:00:20Z
        event hk/edge-1 Offline at 2025-03-01T12:00:20Z
    "#]]
    .assert_eq(&log);
    assert_eq!(decoder.n_born_nodes(), 0);
}

#[test]
fn stale_will_is_ignored_and_device_death_marks_offline() {
    let mut edge = EdgeNode::new("hk", "edge-1", 255).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let old_will = edge.will();
    edge.next_session();
    assert_eq!(edge.bd_seq(), 0);
    let birth = edge.birth(NOW, &[]).unwrap();
    let dbirth = edge.device_birth("cnc-1", NOW, &[]).unwrap();
    let ddeath = edge.device_death("cnc-1", NOW).unwrap();
    assert_eq!(edge.device_data("cnc-1", NOW, &[]), Err(EncodeError::DeviceNotBorn("cnc-1".into())));
    let death = edge.death(NOW);
    assert_eq!(edge.bd_seq(), 1);
    let mut log = String::new();
    for message in [&birth, &dbirth, &old_will, &ddeath, &death] {
        log += &decode(&mut decoder, message, NOW);
    }
    expect![[r#"
        event hk/edge-1 Online at 2025-03-01T12:00:00Z
        event hk/cnc-1 Online at 2025-03-01T12:00:00Z
        dropped stale_death: NDEATH of hk/edge-1 with bdSeq 255, current 0
        event hk/cnc-1 Offline at 2025-03-01T12:00:00Z
        event hk/edge-1 Offline at 2025-03-01T12:00:00Z
    "#]]
    .assert_eq(&log);
}

#[test]
fn data_before_birth_requests_rebirth_at_a_bounded_rate() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let _birth = edge.birth(NOW, &[("a", MetricValue::Int32(1))]).unwrap();
    let _dbirth = edge.device_birth("cnc-1", NOW, &[("b", MetricValue::Int32(1))]).unwrap();
    let data = edge.data(NOW, &[("a", MetricValue::Int32(2))]).unwrap();
    let ddata = edge.device_data("cnc-1", NOW, &[("b", MetricValue::Int32(2))]).unwrap();
    let mut log = decode(&mut decoder, &data, NOW);
    log += &decode(&mut decoder, &ddata, NOW + Duration::seconds(4));
    log += &decode(&mut decoder, &ddata, NOW + Duration::seconds(5));
    expect![[r#"
        dropped no_birth: NDATA from hk/edge-1 before NBIRTH
        reply spBv1.0/hk/NCMD/edge-1 (35 bytes, qos 0, retain false)
        dropped no_birth: DDATA from hk/edge-1 before NBIRTH
        dropped no_birth: DDATA from hk/edge-1 before NBIRTH
        reply spBv1.0/hk/NCMD/edge-1 (35 bytes, qos 0, retain false)
    "#]]
    .assert_eq(&log);
}

/// A node born with `metrics` (seq 0), so tests can send hand-made payloads from seq 1 on.
fn born(decoder: &mut SparkplugDecoder, metrics: Vec<Metric>) {
    let payload = Payload { timestamp: Some(ms(NOW)), seq: Some(0), metrics, ..Payload::default() };
    let mut out = Decoded::default();
    decoder.decode("spBv1.0/hk/NBIRTH/e", &payload.encode_to_vec(), NOW, &mut out);
}

fn def(name: &str, alias: u64, datatype: DataType) -> Metric {
    Metric {
        name: Some(name.into()),
        alias: Some(alias),
        datatype: Some(datatype.code()),
        ..Metric::default()
    }
}

fn by_alias(alias: u64, value: metric::Value) -> Metric {
    Metric { alias: Some(alias), value: Some(value), ..Metric::default() }
}

#[test]
fn values_by_datatype() {
    use metric::Value as V;
    let types = [
        ("i8", DataType::Int8),
        ("i16", DataType::Int16),
        ("i32", DataType::Int32),
        ("i64", DataType::Int64),
        ("u8", DataType::UInt8),
        ("u32", DataType::UInt32),
        ("u64", DataType::UInt64),
        ("f", DataType::Float),
        ("d", DataType::Double),
        ("b", DataType::Boolean),
        ("s", DataType::String),
        ("dt", DataType::DateTime),
        ("ds", DataType::DataSet),
        ("unknown", DataType::Unknown),
        ("Properties/Make", DataType::String),
    ];
    let mut decoder = SparkplugDecoder::default();
    born(
        &mut decoder,
        types.iter().zip(1..).map(|((name, datatype), alias)| def(name, alias, *datatype)).collect(),
    );
    let metrics = vec![
        by_alias(1, V::IntValue(0xFFFF_FFFF)),
        by_alias(1, V::IntValue(0xFF)),
        by_alias(2, V::IntValue(0x8000)),
        by_alias(3, V::IntValue(0x8000_0000)),
        by_alias(4, V::LongValue(u64::MAX)),
        by_alias(5, V::IntValue(0xFF)),
        // 511 is no UInt8: dropped, not read as its low byte.
        by_alias(5, V::IntValue(0x1FF)),
        by_alias(1, V::LongValue(u64::MAX - 4)),
        by_alias(1, V::IntValue(300)),
        by_alias(6, V::LongValue(4_000_000_000)),
        by_alias(7, V::LongValue(u64::MAX)),
        by_alias(8, V::FloatValue(1.5)),
        by_alias(8, V::FloatValue(f32::NAN)),
        by_alias(9, V::DoubleValue(f64::NEG_INFINITY)),
        by_alias(9, V::DoubleValue(1e200)),
        by_alias(9, V::StringValue("1.0".into())),
        by_alias(10, V::BooleanValue(false)),
        by_alias(11, V::StringValue("hello".into())),
        by_alias(12, V::LongValue(ms(NOW))),
        by_alias(13, V::DatasetValue(DataSet::default())),
        by_alias(14, V::DoubleValue(2.5)),
        by_alias(15, V::StringValue("ACME".into())),
        by_alias(99, V::IntValue(1)),
        Metric { name: Some("d".into()), value: Some(V::DoubleValue(7.0)), ..Metric::default() },
        Metric { name: Some("nope".into()), value: Some(V::DoubleValue(7.0)), ..Metric::default() },
        Metric { alias: Some(9), is_null: Some(true), ..Metric::default() },
        Metric {
            alias: Some(9),
            is_transient: Some(true),
            value: Some(V::DoubleValue(1.0)),
            ..Metric::default()
        },
        Metric { alias: Some(9), ..Metric::default() },
        Metric {
            alias: Some(9),
            timestamp: Some(ms(NOW) - 1000),
            value: Some(V::DoubleValue(8.0)),
            ..Metric::default()
        },
        Metric {
            alias: Some(9),
            timestamp: Some(ms(NOW) + 3_600_000),
            value: Some(V::DoubleValue(9.0)),
            ..Metric::default()
        },
    ];
    let payload = Payload { seq: Some(1), metrics, ..Payload::default() };
    expect![[r#"
        reading hk/e "i8" = -1 at 2025-03-01T12:00:00Z
        reading hk/e "i8" = -1 at 2025-03-01T12:00:00Z
        reading hk/e "i16" = -32768 at 2025-03-01T12:00:00Z
        reading hk/e "i32" = -2147483648 at 2025-03-01T12:00:00Z
        reading hk/e "i64" = -1 at 2025-03-01T12:00:00Z
        reading hk/e "u8" = 255 at 2025-03-01T12:00:00Z
        reading hk/e "i8" = -5 at 2025-03-01T12:00:00Z
        reading hk/e "u32" = 4000000000 at 2025-03-01T12:00:00Z
        reading hk/e "u64" = 18446744073709552000 at 2025-03-01T12:00:00Z
        reading hk/e "f" = 1.5 at 2025-03-01T12:00:00Z
        reading hk/e "b" = 0 at 2025-03-01T12:00:00Z
        reading hk/e "dt" = 1740830400000 at 2025-03-01T12:00:00Z
        reading hk/e "unknown" = 2.5 at 2025-03-01T12:00:00Z
        reading hk/e "d" = 7 at 2025-03-01T12:00:00Z
        reading hk/e "d" = 8 at 2025-03-01T11:59:59Z
        dropped out_of_range: metric "u8" of hk/e: value beyond the range of its datatype
        dropped out_of_range: metric "i8" of hk/e: value beyond the range of its datatype
        dropped non_finite: metric "f" of hk/e
        dropped non_finite: metric "d" of hk/e
        dropped out_of_range: metric "d" of hk/e
        dropped wrong_types: metric "d" of hk/e: value field does not fit the datatype
        dropped not_numeric: metric "s" of hk/e
        dropped unsupported_type: metric "ds" of hk/e: DataSet
        dropped unknown_alias: alias 99 of hk/e
        dropped unknown_metric: metric "nope" of hk/e
        dropped null_value: metric "d" of hk/e
        dropped transient: metric "d" of hk/e
        dropped wrong_types: metric "d" of hk/e: no value
        dropped future_timestamp: metric "d" of hk/e
        reply spBv1.0/hk/NCMD/e (35 bytes, qos 0, retain false)
    "#]]
    .assert_eq(&raw(&mut decoder, "spBv1.0/hk/NDATA/e", &payload, NOW));
}

#[test]
fn an_alias_given_twice_in_a_birth_stays_the_first_metric_s() {
    use metric::Value as V;
    let mut decoder = SparkplugDecoder::default();
    let birth = Payload {
        timestamp: Some(ms(NOW)),
        seq: Some(0),
        metrics: vec![def("da", 7, DataType::Double), def("db", 7, DataType::Double)],
        ..Payload::default()
    };
    let mut log = raw(&mut decoder, "spBv1.0/hk/NBIRTH/e", &birth, NOW);
    // Data by the alias is the first metric's; the second is known by its name.
    let by_name = Metric { name: Some("db".into()), value: Some(V::DoubleValue(2.0)), ..Metric::default() };
    let data = Payload {
        timestamp: Some(ms(NOW)),
        seq: Some(1),
        metrics: vec![by_alias(7, V::DoubleValue(1.0)), by_name],
        ..Payload::default()
    };
    log += &raw(&mut decoder, "spBv1.0/hk/NDATA/e", &data, NOW);
    expect![[r#"
        event hk/e Online at 2025-03-01T12:00:00Z
        dropped wrong_types: metric "da" of hk/e: no value
        dropped duplicate_alias: alias 7 of hk/e is "da"'s already; "db" is known by its name only
        dropped wrong_types: metric "db" of hk/e: no value
        reading hk/e "da" = 1 at 2025-03-01T12:00:00Z
        reading hk/e "db" = 2 at 2025-03-01T12:00:00Z
    "#]]
    .assert_eq(&log);
}

#[test]
fn malformed_and_ignored_messages() {
    let mut decoder =
        SparkplugDecoder::new(DecodeConfig { max_payload_bytes: 64, ..DecodeConfig::default() });
    let mut out = Decoded::default();
    decoder.decode("spBv1.0/hk/NDATA/e", &[0xff, 0xff, 0xff], NOW, &mut out);
    decoder.decode("spBv1.0/hk/NBIRTH/e", &[0x0a, 0x05, 0x01], NOW, &mut out);
    decoder.decode("spBv1.0/hk/NDATA/e", &[0u8; 65], NOW, &mut out);
    decoder.decode("spBv1.0/hk/NCMD/e", b"garbage is not ours to judge", NOW, &mut out);
    decoder.decode("spBv1.0/STATE/scada", br#"{"online": true, "timestamp": 1}"#, NOW, &mut out);
    decoder.decode("spBv1.0/STATE/scada", b"online", NOW, &mut out);
    decoder.decode(
        "spBv1.0/hk/NBIRTH/e",
        &Payload { seq: Some(256), ..Payload::default() }.encode_to_vec(),
        NOW,
        &mut out,
    );
    expect![[r#"
        dropped malformed_protobuf: NDATA: failed to decode Protobuf message: invalid varint
        dropped malformed_protobuf: NBIRTH: failed to decode Protobuf message: Payload.timestamp: invalid wire type: LengthDelimited (expected Varint)
        dropped payload_too_large: 65 bytes
        dropped malformed_json: STATE payload is not {"online": bool, "timestamp": ms}
        dropped malformed_protobuf: NBIRTH from hk/e: seq 256 > 255
    "#]]
    .assert_eq(&render(&out));
}

#[test]
fn host_state_and_rebirth_request_round_trip() {
    let state = HostState { online: true, timestamp: ms(NOW) };
    let message = encode_host_state("scada", state).unwrap();
    assert_eq!((message.topic.as_str(), message.qos, message.retain), ("spBv1.0/STATE/scada", 1, true));
    assert_eq!(
        String::from_utf8(message.payload.clone()).unwrap(),
        r#"{"online":true,"timestamp":1740830400000}"#
    );
    assert_eq!(decode_host_state(&message.payload), Some(state));
    let request = encode_rebirth_request("hk", "edge-1", NOW).unwrap();
    let payload = Payload::decode(request.payload.as_slice()).unwrap();
    assert_eq!(payload.timestamp, Some(ms(NOW)));
    assert_eq!(payload.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
    assert_eq!(payload.metrics[0].datatype, Some(11));
    assert_eq!(payload.metrics[0].value, Some(metric::Value::BooleanValue(true)));
}

#[test]
fn every_value_type_round_trips() {
    let values = [
        MetricValue::Int8(i8::MIN),
        MetricValue::Int16(i16::MIN),
        MetricValue::Int32(i32::MIN),
        MetricValue::Int64(-(1 << 53)),
        MetricValue::UInt8(u8::MAX),
        MetricValue::UInt16(u16::MAX),
        MetricValue::UInt32(u32::MAX),
        MetricValue::UInt64(1 << 53),
        MetricValue::Float(-0.125),
        MetricValue::Double(1e100),
        MetricValue::Boolean(true),
        MetricValue::DateTime(ms(NOW)),
    ];
    let expected = [
        -128.0,
        -32768.0,
        -2147483648.0,
        -9007199254740992.0,
        255.0,
        65535.0,
        4294967295.0,
        9007199254740992.0,
        -0.125,
        1e100,
        1.0,
        1740830400000.0,
    ];
    let names: Vec<String> = (0..values.len()).map(|i| format!("m{i}")).collect();
    let metrics: Vec<(&str, MetricValue)> = names.iter().map(String::as_str).zip(values).collect();
    let mut edge = EdgeNode::new("hk", "e", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let mut out = Decoded::default();
    let birth = edge.birth(NOW, &metrics).unwrap();
    let data = edge.data(NOW, &metrics).unwrap();
    decoder.decode(&birth.topic, &birth.payload, NOW, &mut out);
    decoder.decode(&data.topic, &data.payload, NOW, &mut out);
    let got: Vec<f64> = out.readings.iter().map(|r| r.value).collect();
    assert_eq!(got, [expected, expected].concat());
    assert!(out.dropped.is_empty(), "{:?}", out.dropped);
    assert_eq!(
        edge.data(NOW, &[("m0", MetricValue::Double(f64::NAN))]),
        Err(EncodeError::NonFinite("m0".into()))
    );
    assert_eq!(edge.data(NOW, &[("zz", MetricValue::Int8(1))]), Err(EncodeError::NotInBirth("zz".into())));
}

#[test]
fn seq_wraps_after_255() {
    let mut edge = EdgeNode::new("hk", "e", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let mut out = Decoded::default();
    let birth = edge.birth(NOW, &[("a", MetricValue::Int32(0))]).unwrap();
    decoder.decode(&birth.topic, &birth.payload, NOW, &mut out);
    for i in 1..=600 {
        let data = edge.data(NOW, &[("a", MetricValue::Int32(i))]).unwrap();
        decoder.decode(&data.topic, &data.payload, NOW, &mut out);
    }
    assert_eq!(out.readings.len(), 601);
    assert!(out.dropped.is_empty(), "{:?}", out.dropped);
}

#[test]
fn datatype_codes_match_the_proto_enum() {
    let schema = ProtoSchema::parse(PROTO);
    let codes: BTreeMap<String, u32> =
        DataType::ALL.iter().map(|t| (t.name().to_string(), t.code())).collect();
    assert_eq!(codes, schema.enum_values);
    for datatype in DataType::ALL {
        assert_eq!(DataType::from_code(datatype.code()), Some(datatype));
    }
    assert_eq!(DataType::from_code(35), None);
}

const PROTO: &str = include_str!("../../proto/sparkplug_b.proto");

/// The message fields and `DataType` values of the .proto text, read line by line.
struct ProtoSchema {
    /// (`Payload.Metric`, `alias`) → 2.
    fields: BTreeMap<(String, String), u32>,
    enum_values: BTreeMap<String, u32>,
}

impl ProtoSchema {
    fn parse(text: &str) -> ProtoSchema {
        let mut scopes: Vec<(&str, &str)> = Vec::new();
        let mut fields = BTreeMap::new();
        let mut enum_values = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with("//") => {}
                ["}"] => {
                    scopes.pop();
                }
                [kind @ ("message" | "oneof" | "enum"), name, "{"] => scopes.push((kind, name)),
                ["extensions", ..] | ["syntax", ..] | ["package", ..] => {}
                [name, "=", number] if scopes.last().is_some_and(|s| s.0 == "enum") => {
                    enum_values.insert(name.to_string(), number.trim_end_matches(';').parse().unwrap());
                }
                [.., name, "=", number] => {
                    let message: Vec<&str> =
                        scopes.iter().filter(|s| s.0 == "message").map(|s| s.1).collect();
                    let number = number.trim_end_matches(';').parse().unwrap();
                    let old = fields.insert((message.join("."), name.to_string()), number);
                    assert!(old.is_none(), "duplicate field {name} in {message:?}");
                }
                other => panic!("unexpected .proto line {other:?}"),
            }
        }
        assert!(scopes.is_empty());
        ProtoSchema { fields, enum_values }
    }
}

/// The first field number in an encoded message (which has exactly one field set).
fn first_tag(bytes: &[u8]) -> u32 {
    let mut key = 0u64;
    for (i, byte) in bytes.iter().enumerate() {
        key |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    u32::try_from(key >> 3).unwrap()
}

macro_rules! fields {
    ($path:literal, $ty:ident { $($field:ident : $value:expr),* $(,)? }) => {
        vec![$(($path, stringify!($field).trim_start_matches("r#"), $ty { $field: $value, ..$ty::default() }.encode_to_vec())),*]
    };
}

macro_rules! oneof {
    ($path:literal, $ty:ident, $module:ident { $($name:literal : $variant:ident($value:expr)),* $(,)? }) => {
        vec![$(($path, $name, $ty { value: Some($module::Value::$variant($value)), ..$ty::default() }.encode_to_vec())),*]
    };
}

#[test]
#[allow(clippy::needless_update, reason = "the macros build one-field messages of every size alike")]
fn rust_field_numbers_match_the_proto_file() {
    let rust: Vec<(&str, &str, Vec<u8>)> = [
        fields!("Payload", Payload {
            timestamp: Some(1), metrics: vec![Metric::default()], seq: Some(1), uuid: Some("u".into()), body: Some(vec![1]),
        }),
        fields!("Payload.Metric", Metric {
            name: Some("n".into()), alias: Some(1), timestamp: Some(1), datatype: Some(1), is_historical: Some(true),
            is_transient: Some(true), is_null: Some(true), metadata: Some(MetaData::default()),
            properties: Some(PropertySet::default()),
        }),
        oneof!("Payload.Metric", Metric, metric {
            "int_value": IntValue(1), "long_value": LongValue(1), "float_value": FloatValue(1.0),
            "double_value": DoubleValue(1.0), "boolean_value": BooleanValue(true), "string_value": StringValue("s".into()),
            "bytes_value": BytesValue(vec![1]), "dataset_value": DatasetValue(DataSet::default()),
            "template_value": TemplateValue(Template::default()), "extension_value": ExtensionValue(Extension::default()),
        }),
        fields!("Payload.MetaData", MetaData {
            is_multi_part: Some(true), content_type: Some("c".into()), size: Some(1), seq: Some(1),
            file_name: Some("f".into()), file_type: Some("t".into()), md5: Some("m".into()), description: Some("d".into()),
        }),
        fields!("Payload.PropertySet", PropertySet { keys: vec!["k".into()], values: vec![PropertyValue::default()] }),
        fields!("Payload.PropertySetList", PropertySetList { propertyset: vec![PropertySet::default()] }),
        fields!("Payload.PropertyValue", PropertyValue { r#type: Some(1), is_null: Some(true) }),
        oneof!("Payload.PropertyValue", PropertyValue, property_value {
            "int_value": IntValue(1), "long_value": LongValue(1), "float_value": FloatValue(1.0),
            "double_value": DoubleValue(1.0), "boolean_value": BooleanValue(true), "string_value": StringValue("s".into()),
            "propertyset_value": PropertysetValue(PropertySet::default()),
            "propertysets_value": PropertysetsValue(PropertySetList::default()),
            "extension_value": ExtensionValue(Extension::default()),
        }),
        fields!("Payload.DataSet", DataSet {
            num_of_columns: Some(1), columns: vec!["c".into()], types: vec![1], rows: vec![Row::default()],
        }),
        fields!("Payload.DataSet.Row", Row { elements: vec![DataSetValue::default()] }),
        oneof!("Payload.DataSet.DataSetValue", DataSetValue, data_set_value {
            "int_value": IntValue(1), "long_value": LongValue(1), "float_value": FloatValue(1.0),
            "double_value": DoubleValue(1.0), "boolean_value": BooleanValue(true), "string_value": StringValue("s".into()),
            "extension_value": ExtensionValue(Extension::default()),
        }),
        fields!("Payload.Template", Template {
            version: Some("v".into()), metrics: vec![Metric::default()], parameters: vec![Parameter::default()],
            template_ref: Some("r".into()), is_definition: Some(true),
        }),
        fields!("Payload.Template.Parameter", Parameter { name: Some("n".into()), r#type: Some(1) }),
        oneof!("Payload.Template.Parameter", Parameter, parameter {
            "int_value": IntValue(1), "long_value": LongValue(1), "float_value": FloatValue(1.0),
            "double_value": DoubleValue(1.0), "boolean_value": BooleanValue(true), "string_value": StringValue("s".into()),
            "extension_value": ExtensionValue(Extension::default()),
        }),
    ]
    .concat();
    let schema = ProtoSchema::parse(PROTO);
    let rust_fields: BTreeMap<(String, String), u32> = rust
        .iter()
        .map(|(path, name, bytes)| ((path.to_string(), name.to_string()), first_tag(bytes)))
        .collect();
    assert_eq!(rust_fields.len(), rust.len(), "a Rust field is listed twice");
    assert_eq!(rust_fields, schema.fields);
}

#[test]
fn device_data_without_device_birth_and_drop_counts() {
    let mut edge = EdgeNode::new("hk", "e", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let mut out = Decoded::default();
    let birth = edge.birth(NOW, &[("a", MetricValue::Int32(1))]).unwrap();
    decoder.decode(&birth.topic, &birth.payload, NOW, &mut out);
    // The right seq, but from a device this decoder never saw born.
    let ghost = Payload {
        seq: Some(1),
        metrics: vec![by_alias(1, metric::Value::IntValue(2))],
        ..Payload::default()
    };
    decoder.decode("spBv1.0/hk/DDATA/e/ghost", &ghost.encode_to_vec(), NOW, &mut out);
    let data = Payload {
        seq: Some(2),
        metrics: vec![by_alias(1, metric::Value::IntValue(3))],
        ..Payload::default()
    };
    decoder.decode("spBv1.0/hk/NDATA/e", &data.encode_to_vec(), NOW, &mut out);
    decoder.decode("spBv1.0/hk/NDATA/e", b"\xff", NOW, &mut out);
    decoder.decode("spBv1.0/hk/NDATA/e/x", b"", NOW, &mut out);
    let counts: Vec<String> = out.drop_counts().iter().map(|(reason, n)| format!("{reason}={n}")).collect();
    expect![[r#"
        bad_topic=1 malformed_protobuf=1 no_birth=1
        reading hk/e "a" = 1 at 2025-03-01T12:00:00Z
        reading hk/e "a" = 3 at 2025-03-01T12:00:00Z
        event hk/e Online at 2025-03-01T12:00:00Z
        dropped no_birth: DDATA from hk/ghost before DBIRTH
        dropped malformed_protobuf: NDATA: failed to decode Protobuf message: invalid varint
        dropped bad_topic: topic "spBv1.0/hk/NDATA/e/x" is not a Sparkplug B 3.0 topic
        reply spBv1.0/hk/NCMD/e (35 bytes, qos 0, retain false)
    "#]]
    .assert_eq(&format!("{}\n{}", counts.join(" "), render(&out)));
}

#[test]
fn a_state_reason_metric_gives_the_state_change_in_its_payload_its_reason() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let t0 = NOW - Duration::seconds(10);
    let text = |text: &str| MetricValue::String(text.into());
    let cnc = [
        ("Machine/State", text("running")),
        ("Machine/State_Reason", text("")),
        ("Power", MetricValue::Double(3.0)),
    ];
    let messages = [
        edge.birth(t0, &[]).unwrap(),
        edge.device_birth("cnc-1", t0, &cnc).unwrap(),
        // The reason may come before its state in the payload.
        edge.device_data(
            "cnc-1",
            t0 + Duration::seconds(1),
            // States in any case (a PLC may send them upper-case).
            &[("Machine/State_Reason", text(" tool breakage ")), ("Machine/State", text("DOWN"))],
        )
        .unwrap(),
        // A reason without a state change changes nothing; a bad one is dropped, the state kept.
        edge.device_data("cnc-1", t0 + Duration::seconds(2), &[("Machine/State_Reason", text("waiting"))])
            .unwrap(),
        edge.device_data(
            "cnc-1",
            t0 + Duration::seconds(3),
            &[("Machine/State", text("Idle")), ("Machine/State_Reason", text("bad\nreason"))],
        )
        .unwrap(),
    ];
    let mut log = String::new();
    for message in &messages {
        log += &decode(&mut decoder, message, NOW);
    }
    expect![[r#"
        event hk/edge-1 Online at 2025-03-01T11:59:50Z
        reading hk/cnc-1 "Power" = 3 at 2025-03-01T11:59:50Z
        event hk/cnc-1 Online at 2025-03-01T11:59:50Z
        event hk/cnc-1 StateChange { state: Running, reason: None } at 2025-03-01T11:59:50Z
        event hk/cnc-1 StateChange { state: Down, reason: Some("tool breakage") } at 2025-03-01T11:59:51Z
        event hk/cnc-1 StateChange { state: Idle, reason: None } at 2025-03-01T11:59:53Z
        dropped invalid_event: metric "Machine/State_Reason" of hk/cnc-1
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_birth_says_what_the_machine_does_from_the_birth_on_even_with_a_slow_clock() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let state = [("state", MetricValue::String("running".into()))];
    let mut log = String::new();
    log += &decode(&mut decoder, &edge.birth(NOW, &[]).unwrap(), NOW);
    log += &decode(&mut decoder, &edge.device_birth("cnc-1", NOW, &state).unwrap(), NOW);
    // The node dies (its will, stamped when received) and is back a second later, its clock three
    // seconds behind the platform's: its births still come after the death.
    log += &decode(&mut decoder, &edge.will(), NOW + Duration::seconds(10));
    let back = NOW + Duration::seconds(11);
    let slow = back - Duration::seconds(3);
    let mut edge = EdgeNode::new("hk", "edge-1", 1).unwrap();
    log += &decode(&mut decoder, &edge.birth(slow, &[]).unwrap(), back);
    log += &decode(&mut decoder, &edge.device_birth("cnc-1", slow, &state).unwrap(), back);
    // A state metric taken a moment before its birth was sent is the state after the online.
    let metric = Metric {
        name: Some("state".into()),
        timestamp: Some(ms(back) - 5),
        datatype: Some(DataType::String.code()),
        value: Some(metric::Value::StringValue("setup".into())),
        ..Metric::default()
    };
    let payload =
        Payload { timestamp: Some(ms(back)), seq: Some(2), metrics: vec![metric], ..Payload::default() };
    log += &raw(&mut decoder, "spBv1.0/hk/DBIRTH/edge-1/cnc-2", &payload, back);
    expect![[r#"
        event hk/edge-1 Online at 2025-03-01T12:00:00Z
        event hk/cnc-1 Online at 2025-03-01T12:00:00Z
        event hk/cnc-1 StateChange { state: Running, reason: None } at 2025-03-01T12:00:00Z
        event hk/cnc-1 Offline at 2025-03-01T12:00:10Z
        event hk/edge-1 Offline at 2025-03-01T12:00:10Z
        event hk/edge-1 Online at 2025-03-01T12:00:10.001Z
        event hk/cnc-1 Online at 2025-03-01T12:00:10.001Z
        event hk/cnc-1 StateChange { state: Running, reason: None } at 2025-03-01T12:00:10.001Z
        event hk/cnc-2 Online at 2025-03-01T12:00:11Z
        event hk/cnc-2 StateChange { state: Setup, reason: None } at 2025-03-01T12:00:11Z
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_device_born_again_with_a_slow_clock_comes_after_its_own_death() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let state = [("state", MetricValue::String("running".into()))];
    decode(&mut decoder, &edge.birth(NOW, &[]).unwrap(), NOW);
    decode(&mut decoder, &edge.device_birth("cnc-1", NOW, &state).unwrap(), NOW);
    // The device dies and is born again a second later, the birth stamped two seconds before the
    // death: it is online (and running) after the death, not before it.
    let died = NOW + Duration::seconds(10);
    let mut log = decode(&mut decoder, &edge.device_death("cnc-1", died).unwrap(), died);
    let back = died + Duration::seconds(1);
    log += &decode(
        &mut decoder,
        &edge.device_birth("cnc-1", died - Duration::seconds(2), &state).unwrap(),
        back,
    );
    expect![[r#"
        event hk/cnc-1 Offline at 2025-03-01T12:00:10Z
        event hk/cnc-1 Online at 2025-03-01T12:00:10.001Z
        event hk/cnc-1 StateChange { state: Running, reason: None } at 2025-03-01T12:00:10.001Z
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_device_death_without_seq_takes_no_part_in_the_sequence() {
    // Some libraries register a DDEATH as a will, without a `seq`: the device goes offline, and
    // the node's next message is no gap.
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    decode(&mut decoder, &edge.birth(NOW, &[("Temperature", MetricValue::Double(19.0))]).unwrap(), NOW);
    decode(&mut decoder, &edge.device_birth("cnc-1", NOW, &[]).unwrap(), NOW);
    let will = Payload { timestamp: Some(ms(NOW)), seq: None, ..Payload::default() };
    let later = NOW + Duration::seconds(1);
    let mut log = raw(&mut decoder, "spBv1.0/hk/DDEATH/edge-1/cnc-1", &will, later);
    log += &decode(
        &mut decoder,
        &edge.data(later, &[("Temperature", MetricValue::Double(20.0))]).unwrap(),
        later,
    );
    expect![[r#"
        event hk/cnc-1 Offline at 2025-03-01T12:00:00Z
        reading hk/edge-1 "Temperature" = 20 at 2025-03-01T12:00:01Z
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_resent_message_is_a_repeat_not_a_gap() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let temperature = |value: f64| [("Temperature", MetricValue::Double(value))];
    let mut log = decode(&mut decoder, &edge.birth(NOW, &temperature(20.0)).unwrap(), NOW);
    let first = edge.data(NOW, &temperature(21.0)).unwrap();
    let second = edge.data(NOW + Duration::seconds(1), &temperature(22.0)).unwrap();
    // The first again (its acknowledgement was lost), then the next: nothing lost, no rebirth.
    for message in [&first, &first, &second] {
        log += &decode(&mut decoder, message, NOW + Duration::seconds(2));
    }
    expect![[r#"
        reading hk/edge-1 "Temperature" = 20 at 2025-03-01T12:00:00Z
        event hk/edge-1 Online at 2025-03-01T12:00:00Z
        reading hk/edge-1 "Temperature" = 21 at 2025-03-01T12:00:00Z
        dropped repeated_seq: NDATA from hk/edge-1: seq 1 again
        reading hk/edge-1 "Temperature" = 22 at 2025-03-01T12:00:01Z
    "#]]
    .assert_eq(&log);
    assert!(DropReason::RepeatedSeq.is_skip() && DropReason::NotNumeric.is_skip());
    assert!(!DropReason::SequenceGap.is_skip());
}

#[test]
fn a_session_stored_and_restored_reads_data_sent_while_the_platform_was_away() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let node = [("Temperature", MetricValue::Double(20.0))];
    let cnc = [("Spindle/Power", MetricValue::Float(3.5))];
    decode(&mut decoder, &edge.birth(NOW, &node).unwrap(), NOW);
    decode(&mut decoder, &edge.device_birth("cnc-1", NOW, &cnc).unwrap(), NOW);
    let stored = decoder.take_changed_sessions();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].births.is_some(), "{stored:?}");
    assert!(decoder.take_changed_sessions().is_empty(), "taken once");
    // Data is sent while the platform is away; a new decoder (the platform started again) takes
    // up the stored births and reads it by alias, from whatever seq it carries.
    let _unseen = edge.data(NOW, &[("Temperature", MetricValue::Double(21.0))]).unwrap();
    let queued = edge
        .device_data("cnc-1", NOW + Duration::seconds(1), &[("Spindle/Power", MetricValue::Float(4.5))])
        .unwrap();
    let next = edge.data(NOW + Duration::seconds(2), &[("Temperature", MetricValue::Double(22.0))]).unwrap();
    let mut restarted = SparkplugDecoder::default();
    restarted.restore(&stored[0]).unwrap();
    assert_eq!(restarted.n_born_nodes(), 1);
    let mut log = decode(&mut restarted, &queued, NOW + Duration::seconds(5));
    log += &decode(&mut restarted, &next, NOW + Duration::seconds(5));
    expect![[r#"
        reading hk/cnc-1 "Spindle/Power" = 4.5 at 2025-03-01T12:00:01Z
        reading hk/edge-1 "Temperature" = 22 at 2025-03-01T12:00:02Z
    "#]]
    .assert_eq(&log);
    // A death is stored as no births to keep.
    decode(&mut restarted, &edge.will(), NOW + Duration::seconds(6));
    let gone = restarted.take_changed_sessions();
    assert_eq!((gone.len(), gone[0].births.as_deref()), (1, None));
    // Garbage in the store is refused, not taken up.
    let bad = StoredSession { births: Some("{".into()), ..stored[0].clone() };
    assert!(SparkplugDecoder::default().restore(&bad).is_err());
}

#[test]
fn a_slow_node_s_state_after_its_rebirth_comes_after_the_death_too() {
    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let mut decoder = SparkplugDecoder::default();
    let state = |value: &str| [("state", MetricValue::String(value.into()))];
    decode(&mut decoder, &edge.birth(NOW, &[]).unwrap(), NOW);
    decode(&mut decoder, &edge.device_birth("cnc-1", NOW, &state("running")).unwrap(), NOW);
    decode(&mut decoder, &edge.will(), NOW + Duration::seconds(10));
    // Back a second later, its clock three seconds behind; it stops 0.9 s after its rebirth.
    let (back, slow) = (NOW + Duration::seconds(11), NOW + Duration::seconds(8));
    let mut edge = EdgeNode::new("hk", "edge-1", 1).unwrap();
    decode(&mut decoder, &edge.birth(slow, &[]).unwrap(), back);
    decode(&mut decoder, &edge.device_birth("cnc-1", slow, &state("running")).unwrap(), back);
    let stop = edge.device_data("cnc-1", slow + Duration::milliseconds(900), &state("down")).unwrap();
    expect![[r#"
        event hk/cnc-1 StateChange { state: Down, reason: None } at 2025-03-01T12:00:10.001Z
    "#]]
    .assert_eq(&decode(&mut decoder, &stop, back + Duration::milliseconds(900)));
}
