//! Codec tests: known byte sequences from the specification, every rejection rule, incremental
//! decoding, and property tests (random packets round-trip; random bytes never panic).

use proptest::prelude::*;

use super::*;

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn encoded(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode(packet, &mut out).unwrap();
    out
}

fn decode_all(bytes: &[u8]) -> Result<Option<(Packet, usize)>, CodecError> {
    decode(bytes, DEFAULT_MAX_PACKET_SIZE)
}

#[test]
fn connect_matches_the_specification_layout() {
    let connect = Packet::Connect(Connect {
        client_id: "dev1".into(),
        keep_alive: 10,
        clean_session: true,
        will: Some(LastWill {
            topic: "w".into(),
            payload: b"x".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
        username: Some("u".into()),
        password: Some(b"p".to_vec()),
    });
    let bytes = encoded(&connect);
    #[rustfmt::skip]
    let expected = [
        0x10, 28,
        0, 4, b'M', b'Q', b'T', b'T', 4,
        0b1110_1110, // user, password, will retain, will qos 1, will, clean session
        0, 10,
        0, 4, b'd', b'e', b'v', b'1',
        0, 1, b'w', 0, 1, b'x',
        0, 1, b'u', 0, 1, b'p',
    ];
    assert_eq!(bytes, expected);
    assert_eq!(decode_all(&bytes), Ok(Some((connect, bytes.len()))));
}

#[test]
fn small_packets_have_their_known_encodings() {
    assert_eq!(encoded(&Packet::PingReq), [0xC0, 0]);
    assert_eq!(encoded(&Packet::PingResp), [0xD0, 0]);
    assert_eq!(encoded(&Packet::Disconnect), [0xE0, 0]);
    assert_eq!(encoded(&Packet::PubAck(id(0x1234))), [0x40, 2, 0x12, 0x34]);
    assert_eq!(encoded(&Packet::PubRel(id(1))), [0x62, 2, 0, 1]);
    assert_eq!(
        encoded(&Packet::ConnAck(ConnAck { session_present: false, code: ConnectReturnCode::NotAuthorized })),
        [0x20, 2, 0, 5]
    );
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "a/b".into(),
        packet_id: Some(id(10)),
        payload: b"hi".to_vec(),
    });
    assert_eq!(encoded(&publish), [0x33, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']);
}

#[test]
fn remaining_length_uses_the_variable_length_encoding() {
    for (len, expected_header) in [
        (0usize, vec![0u8]),
        (127, vec![0x7F]),
        (128, vec![0x80, 0x01]),
        (16_383, vec![0xFF, 0x7F]),
        (16_384, vec![0x80, 0x80, 0x01]),
        (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
    ] {
        let mut out = Vec::new();
        put_fixed_header(&mut out, 0x30, len).unwrap();
        assert_eq!(out[1..], expected_header[..], "{len}");
        assert_eq!(decode_remaining_length(&out[1..]), Ok(Some((len, expected_header.len()))));
    }
    assert_eq!(decode_remaining_length(&[0xFF, 0xFF, 0xFF, 0x7F]), Ok(Some((MAX_REMAINING_LENGTH, 4))));
    assert_eq!(decode_remaining_length(&[0xFF, 0xFF, 0xFF, 0xFF]), Err(CodecError::MalformedRemainingLength));
    assert_eq!(decode_remaining_length(&[0xFF, 0xFF]), Ok(None));
    let mut out = Vec::new();
    assert!(matches!(
        put_fixed_header(&mut out, 0x30, MAX_REMAINING_LENGTH + 1),
        Err(CodecError::PacketTooLarge { .. })
    ));
}

#[test]
fn every_prefix_of_a_packet_asks_for_more_bytes() {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: id(7),
        filters: vec![
            SubscribeFilter { filter: "a/+".into(), qos: QoS::AtLeastOnce },
            SubscribeFilter { filter: "#".into(), qos: QoS::AtMostOnce },
        ],
    });
    let mut bytes = encoded(&packet);
    for len in 0..bytes.len() {
        assert_eq!(decode_all(&bytes[..len]), Ok(None), "prefix of {len} bytes");
    }
    // Two packets back to back decode one at a time.
    bytes.extend(encoded(&Packet::PingReq));
    let (first, used) = decode_all(&bytes).unwrap().unwrap();
    assert_eq!(first, packet);
    assert_eq!(decode_all(&bytes[used..]), Ok(Some((Packet::PingReq, 2))));
}

#[test]
fn oversized_packets_are_rejected_from_the_header_alone() {
    // A header announcing 200 MB, with no body: rejected without waiting for (or buffering) it.
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x5F];
    assert!(matches!(decode(&header, 1024), Err(CodecError::PacketTooLarge { max: 1024, .. })));
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".into(),
        packet_id: None,
        payload: vec![0; 100],
    });
    let bytes = encoded(&publish);
    assert!(matches!(decode(&bytes, 100), Err(CodecError::PacketTooLarge { size: 105, max: 100 })));
    assert!(decode(&bytes, 105).unwrap().is_some());
}

#[test]
fn malformed_packets_are_errors() {
    let cases: &[(&[u8], CodecError)] = &[
        (&[0x00, 0], CodecError::ReservedPacketType(0)),
        (&[0xF0, 0], CodecError::ReservedPacketType(15)),
        (&[0xC1, 0], CodecError::InvalidFlags { packet_type: 12, flags: 1 }),
        (&[0x60, 2, 0, 1], CodecError::InvalidFlags { packet_type: 6, flags: 0 }),
        (&[0x80, 2, 0, 1], CodecError::InvalidFlags { packet_type: 8, flags: 0 }),
        (&[0x36, 5, 0, 1, b't', 0, 1], CodecError::InvalidQos),
        (&[0x38, 3, 0, 1, b't'], CodecError::InconsistentPublish),
        (&[0x40, 2, 0, 0], CodecError::ZeroPacketId),
        (&[0x40, 3, 0, 1, 0], CodecError::TrailingBytes),
        (&[0x40, 1, 0], CodecError::Truncated),
        (&[0xC0, 1, 0], CodecError::TrailingBytes),
        (&[0x30, 4, 0, 2, 0xC3, 0x28], CodecError::InvalidUtf8),
        (&[0x30, 3, 0, 1, 0], CodecError::NulInString),
        (&[0x30, 3, 0, 1, b'+'], CodecError::InvalidTopicName(TopicError::WildcardInName)),
        (&[0x30, 2, 0, 0], CodecError::InvalidTopicName(TopicError::Empty)),
        (&[0x82, 2, 0, 1], CodecError::NoTopicFilters),
        (&[0x82, 6, 0, 1, 0, 1, b'#', 4], CodecError::InvalidRequestedQos(4)),
        (&[0x82, 6, 0, 1, 0, 1, b'#', 3], CodecError::InvalidQos),
        (&[0x82, 7, 0, 1, 0, 2, b'#', b'a', 0], CodecError::InvalidTopicFilter(TopicError::MisplacedHash)),
        (&[0xA2, 2, 0, 1], CodecError::NoTopicFilters),
        (&[0x90, 3, 0, 1, 3], CodecError::InvalidSubAckCode(3)),
        (&[0x20, 2, 2, 0], CodecError::InvalidConnAck),
        (&[0x20, 2, 0, 6], CodecError::InvalidConnAck),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_all(bytes).as_ref(), Err(expected), "{bytes:02x?}");
    }
}

#[test]
fn connect_rules_are_enforced() {
    fn connect_with(name: &[u8], level: u8, flags: u8) -> Vec<u8> {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, flags, 0, 0, 0, 1, b'c']);
        let mut bytes = vec![0x10, body.len() as u8];
        bytes.extend(body);
        bytes
    }
    assert!(decode_all(&connect_with(b"MQTT", 4, 0x02)).unwrap().is_some());
    assert_eq!(decode_all(&connect_with(b"MQIsdp", 3, 0x02)), Err(CodecError::InvalidProtocolName));
    assert_eq!(decode_all(&connect_with(b"MQTT", 5, 0x02)), Err(CodecError::UnsupportedProtocolLevel(5)));
    // Reserved bit, will QoS without will, will retain without will, password without user name.
    for flags in [0x03, 0x08, 0x20, 0x40] {
        assert_eq!(
            decode_all(&connect_with(b"MQTT", 4, flags)),
            Err(CodecError::InvalidConnectFlags(flags)),
            "{flags:#x}"
        );
    }
    // Will QoS 3.
    assert_eq!(decode_all(&connect_with(b"MQTT", 4, 0x1C)), Err(CodecError::InvalidConnectFlags(0x1C)));
}

#[test]
fn encoding_refuses_illegal_packets_and_leaves_the_buffer_alone() {
    let mut out = vec![1, 2, 3];
    let bad = [
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: vec![],
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: vec![],
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "a/#".into(),
            packet_id: None,
            payload: vec![],
        }),
        Packet::Subscribe(Subscribe { packet_id: id(1), filters: vec![] }),
        Packet::Unsubscribe(Unsubscribe { packet_id: id(1), filters: vec!["a#".into()] }),
        Packet::Connect(Connect {
            client_id: "c".into(),
            keep_alive: 0,
            clean_session: true,
            will: None,
            username: None,
            password: Some(vec![1]),
        }),
        Packet::Connect(Connect {
            client_id: "x".repeat(70_000),
            keep_alive: 0,
            clean_session: true,
            will: None,
            username: None,
            password: None,
        }),
        Packet::Connect(Connect {
            client_id: "nul\0".into(),
            keep_alive: 0,
            clean_session: true,
            will: None,
            username: None,
            password: None,
        }),
    ];
    for packet in &bad {
        assert!(encode(packet, &mut out).is_err(), "{packet:?}");
        assert_eq!(out, [1, 2, 3]);
    }
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1u16..).prop_map(id)
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é中/_-]{0,20}"
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-z$]{0,3}(/[a-z0-9]{0,4}){0,4}".prop_filter("non-empty", |t| !t.is_empty())
}

fn topic_filter() -> impl Strategy<Value = String> {
    (proptest::collection::vec(prop_oneof!["[a-z]{0,3}", Just("+".to_owned())], 1..4), any::<bool>())
        .prop_map(|(levels, hash)| {
            let mut filter = levels.join("/");
            if hash {
                filter.push_str("/#");
            }
            if filter.is_empty() { "+".to_owned() } else { filter }
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

fn arbitrary_packet() -> impl Strategy<Value = Packet> {
    let will = (topic_name(), payload(), qos(), any::<bool>())
        .prop_map(|(topic, payload, qos, retain)| LastWill { topic, payload, qos, retain });
    let connect = (
        text(),
        any::<u16>(),
        any::<bool>(),
        proptest::option::of(will),
        proptest::option::of((text(), proptest::option::of(payload()))),
    )
        .prop_map(|(client_id, keep_alive, clean_session, will, credentials)| {
            let (username, password) = match credentials {
                Some((user, password)) => (Some(user), password),
                None => (None, None),
            };
            Packet::Connect(Connect { client_id, keep_alive, clean_session, will, username, password })
        });
    let connack = (any::<bool>(), 0u8..6).prop_map(|(session_present, code)| {
        let code = [
            ConnectReturnCode::Accepted,
            ConnectReturnCode::UnacceptableProtocolVersion,
            ConnectReturnCode::IdentifierRejected,
            ConnectReturnCode::ServerUnavailable,
            ConnectReturnCode::BadUserNameOrPassword,
            ConnectReturnCode::NotAuthorized,
        ][usize::from(code)];
        Packet::ConnAck(ConnAck { session_present, code })
    });
    let publish = (qos(), any::<bool>(), any::<bool>(), topic_name(), packet_id(), payload()).prop_map(
        |(qos, dup, retain, topic, id, payload)| {
            let at_most_once = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                packet_id: (!at_most_once).then_some(id),
                payload,
            })
        },
    );
    let subscribe = (packet_id(), proptest::collection::vec((topic_filter(), qos()), 1..5)).prop_map(
        |(packet_id, filters)| {
            let filters = filters.into_iter().map(|(filter, qos)| SubscribeFilter { filter, qos }).collect();
            Packet::Subscribe(Subscribe { packet_id, filters })
        },
    );
    let return_code =
        prop_oneof![qos().prop_map(SubscribeReturnCode::Success), Just(SubscribeReturnCode::Failure)];
    let suback = (packet_id(), proptest::collection::vec(return_code, 1..5))
        .prop_map(|(packet_id, return_codes)| Packet::SubAck(SubAck { packet_id, return_codes }));
    let unsubscribe = (packet_id(), proptest::collection::vec(topic_filter(), 1..5))
        .prop_map(|(packet_id, filters)| Packet::Unsubscribe(Unsubscribe { packet_id, filters }));
    prop_oneof![
        connect,
        connack,
        publish,
        subscribe,
        suback,
        unsubscribe,
        packet_id().prop_map(Packet::PubAck),
        packet_id().prop_map(Packet::PubRec),
        packet_id().prop_map(Packet::PubRel),
        packet_id().prop_map(Packet::PubComp),
        packet_id().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

proptest! {
    #[test]
    fn random_packets_round_trip(packet in arbitrary_packet()) {
        let bytes = encoded(&packet);
        prop_assert_eq!(decode_all(&bytes), Ok(Some((packet, bytes.len()))));
        for len in 0..bytes.len() {
            prop_assert_eq!(decode_all(&bytes[..len]), Ok(None));
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..300) {
        if let Ok(Some((packet, used))) = decode(&bytes, max) {
            prop_assert!(used <= bytes.len() && used <= max);
            // Whatever decodes re-encodes to the same packet.
            let again = encoded(&packet);
            prop_assert_eq!(decode_all(&again), Ok(Some((packet, again.len()))));
        }
    }

    #[test]
    fn mutated_packets_never_panic(packet in arbitrary_packet(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = encoded(&packet);
        for (pos, value) in flips {
            let len = bytes.len();
            bytes[pos % len] = value;
        }
        let _ = decode_all(&bytes);
    }
}
