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
