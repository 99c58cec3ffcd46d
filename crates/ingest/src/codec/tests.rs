//! Tests of the shared vocabulary, and the rendering helper the codec tests use to show a
//! [`Decoded`] in expect-test snapshots.

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

use super::*;

/// The "now" of every codec test.
pub(crate) const NOW: OffsetDateTime = datetime!(2025-03-01 12:00 UTC);

/// One line per reading, event, drop and reply.
pub(crate) fn render(decoded: &Decoded) -> String {
    let mut text = String::new();
    for r in &decoded.readings {
        let at = r.at.format(&Rfc3339).unwrap();
        writeln!(text, "reading {} {:?} = {} at {at}", r.key, r.metric, r.value).unwrap();
    }
    for e in &decoded.events {
        let at = e.at.format(&Rfc3339).unwrap();
        writeln!(text, "event {} {:?} at {at}", e.key, e.event).unwrap();
    }
    for d in &decoded.dropped {
        writeln!(text, "dropped {}: {}", d.reason, d.detail).unwrap();
    }
    for o in &decoded.replies {
        writeln!(text, "reply {} ({} bytes, qos {}, retain {})", o.topic, o.payload.len(), o.qos, o.retain)
            .unwrap();
    }
    text
}

#[test]
fn drop_reason_names_are_unique_snake_case() {
    let names: HashSet<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), DropReason::ALL.len());
    assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn machine_state_names_round_trip() {
    for state in MachineState::ALL {
        assert_eq!(MachineState::parse(state.as_str()), Some(state));
        assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{}\"", state.as_str()));
    }
}

#[test]
fn codes_and_metric_names() {
    assert!(is_code("HK-01.a_b"));
    assert!(!is_code(""));
    assert!(!is_code("a/b"));
    assert!(!is_code("a+"));
    assert!(!is_code(&"x".repeat(65)));
    assert!(is_metric_name("Spindle Power [kW]/ä"));
    assert!(is_metric_name(&"é".repeat(128)));
    assert!(!is_metric_name(&"é".repeat(129)));
    assert!(!is_metric_name(&"x".repeat(129)));
    assert!(!is_metric_name(""));
    assert!(!is_metric_name("tab\there"));
    // A right-to-left override would show `temp\u{202e}_c` as another name.
    assert!(!is_metric_name("temp\u{202e}_c"));
    assert!(!is_metric_name("e\u{061c}f"), "the Arabic letter mark is one too");
    assert!(!is_metric_name("\u{2066}power_kw\u{2069}"));
}

#[test]
fn time_window_bounds() {
    let window = TimeWindow::new(NOW, &DecodeConfig::default());
    let ms = epoch_ms(NOW);
    assert_eq!(window.check_ms(ms), Ok(NOW));
    assert_eq!(window.check_ms(ms + 300_000).map(|_| ()), Ok(()));
    assert_eq!(window.check_ms(ms + 300_001), Err(DropReason::FutureTimestamp));
    assert_eq!(window.check_ms(ms - 7 * 24 * 3_600_000).map(|_| ()), Ok(()));
    assert_eq!(window.check_ms(ms - 7 * 24 * 3_600_000 - 1), Err(DropReason::TooOld));
    assert_eq!(window.check_unsigned_ms(u64::MAX), Err(DropReason::FutureTimestamp));
    assert_eq!(window.check_ms(i64::MIN), Err(DropReason::TooOld));
}

#[test]
fn router_sends_topics_to_their_codec() {
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut out = Decoded::default();
    decoder.decode("mf/v1/hk/m1/telemetry", br#"{"metrics":{"t":1}}"#, NOW, &mut out);
    decoder.decode("spBv1.0/hk/NDATA/edge", b"", NOW, &mut out);
    decoder.decode("other/topic", b"{}", NOW, &mut out);
    expect_test::expect![[r#"
        reading hk/m1 "t" = 1 at 2025-03-01T12:00:00Z
        dropped no_birth: NDATA from hk/edge before NBIRTH
        dropped bad_topic: topic "other/topic" is neither mf/v1 nor spBv1.0
        reply spBv1.0/hk/NCMD/edge (35 bytes, qos 0, retain false)
    "#]]
    .assert_eq(&render(&out));
    assert_eq!(out.drop_counts()[&DropReason::NoBirth], 1);
    out.clear();
    assert_eq!(out, Decoded::default());
}

mod never_panic {
    //! Property tests: no input makes a decoder panic, and every decoder's output stays valid.

    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;
    use crate::sparkplug::proto::{DataSet, Metric, Payload, metric};

    const TOPICS: [&str; 11] = [
        "mf/v1/hk/m1/telemetry",
        "mf/v1/hk/m1/events",
        "spBv1.0/hk/NBIRTH/e",
        "spBv1.0/hk/NDEATH/e",
        "spBv1.0/hk/DBIRTH/e/d",
        "spBv1.0/hk/DDEATH/e/d",
        "spBv1.0/hk/NDATA/e",
        "spBv1.0/hk/DDATA/e/d",
        "spBv1.0/hk/NCMD/e",
        "spBv1.0/STATE/host",
        "garbage",
    ];

    fn check_output(out: &Decoded) {
        for reading in &out.readings {
            assert!(reading.value.is_finite());
            assert!(is_metric_name(&reading.metric));
            assert!(is_code(&reading.key.site) && is_code(&reading.key.machine));
        }
    }

    fn value() -> impl Strategy<Value = Option<metric::Value>> {
        prop_oneof![
            Just(None),
            any::<u32>().prop_map(|v| Some(metric::Value::IntValue(v))),
            any::<u64>().prop_map(|v| Some(metric::Value::LongValue(v))),
            any::<f32>().prop_map(|v| Some(metric::Value::FloatValue(v))),
            any::<f64>().prop_map(|v| Some(metric::Value::DoubleValue(v))),
            any::<bool>().prop_map(|v| Some(metric::Value::BooleanValue(v))),
            "(running|down|state|[a-z]{0,4})".prop_map(|v| Some(metric::Value::StringValue(v))),
            Just(Some(metric::Value::DatasetValue(DataSet::default()))),
        ]
    }

    fn metric() -> impl Strategy<Value = Metric> {
        (
            proptest::option::of("(bdSeq|state|a/state|[a-c]{1,2}|)"),
            proptest::option::of(0u64..6),
            proptest::option::of(prop_oneof![Just(1_740_830_400_000u64), any::<u64>()]),
            proptest::option::of(0u32..40),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
            value(),
        )
            .prop_map(|(name, alias, timestamp, datatype, is_null, is_transient, value)| Metric {
                name,
                alias,
                timestamp,
                datatype,
                is_null,
                is_transient,
                value,
                ..Metric::default()
            })
    }

    fn payload() -> impl Strategy<Value = Payload> {
        (
            proptest::option::of(prop_oneof![Just(1_740_830_400_000u64), any::<u64>()]),
            proptest::collection::vec(metric(), 0..6),
            proptest::option::of(prop_oneof![0u64..4, any::<u64>()]),
        )
            .prop_map(|(timestamp, metrics, seq)| Payload {
                timestamp,
                metrics,
                seq,
                ..Payload::default()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes(topic in 0..TOPICS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut decoder = Decoder::new(DecodeConfig::default());
            let mut out = Decoded::default();
            decoder.decode(TOPICS[topic], &bytes, NOW, &mut out);
            check_output(&out);
        }

        #[test]
        fn random_json_text(topic in 0..2usize, text in r#"[\[\]{}",: 0-9a-z.eE+-]{0,80}"#) {
            let mut out = Decoded::default();
            Decoder::new(DecodeConfig::default()).decode(TOPICS[topic], text.as_bytes(), NOW, &mut out);
            check_output(&out);
        }

        #[test]
        fn random_sparkplug_sessions(messages in proptest::collection::vec((2..9usize, payload()), 1..12)) {
            let mut decoder = Decoder::new(DecodeConfig::default());
            let mut out = Decoded::default();
            for (topic, payload) in messages {
                decoder.decode(TOPICS[topic], &payload.encode_to_vec(), NOW, &mut out);
            }
            check_output(&out);
            prop_assert!(out.replies.iter().all(|reply| reply.topic == "spBv1.0/hk/NCMD/e"));
        }
    }
}
