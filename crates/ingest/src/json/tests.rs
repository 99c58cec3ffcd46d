//! Tests of the JSON codec: good and bad telemetry and events, validation windows and encoder
//! round trips.

use expect_test::{Expect, expect};
use time::macros::datetime;

use super::*;
use crate::codec::tests::{NOW, render};

fn check(topic: &str, payload: &str, expected: Expect) {
    let mut decoder = JsonDecoder::new(DecodeConfig::default());
    let mut out = Decoded::default();
    decoder.decode(topic, payload.as_bytes(), NOW, &mut out);
    expected.assert_eq(&render(&out));
}

const TELEMETRY: &str = "mf/v1/hk/cnc-1/telemetry";
const EVENTS: &str = "mf/v1/hk/cnc-1/events";

#[test]
fn telemetry_numbers_and_booleans() {
    check(
        TELEMETRY,
        r#"{"ts": "2025-03-01T11:59:00.250+08:00", "metrics": {"spindle_kw": 3.5, "door open": true, "count": 18446744073709551615, "neg": -2, "big": 1e30}}"#,
        expect![[r#"
            reading hk/cnc-1 "spindle_kw" = 3.5 at 2025-03-01T11:59:00.25+08:00
            reading hk/cnc-1 "door open" = 1 at 2025-03-01T11:59:00.25+08:00
            reading hk/cnc-1 "count" = 18446744073709552000 at 2025-03-01T11:59:00.25+08:00
            reading hk/cnc-1 "neg" = -2 at 2025-03-01T11:59:00.25+08:00
            reading hk/cnc-1 "big" = 1000000000000000000000000000000 at 2025-03-01T11:59:00.25+08:00
        "#]],
    );
}

#[test]
fn telemetry_epoch_millis_missing_ts_and_arrays() {
    check(
        TELEMETRY,
        r#"[{"ts": 1740830400123, "metrics": {"a": 1}}, {"metrics": {"a": 2}, "extra": [1, {"x": null}]}, {"ts": 1740830400000.5, "metrics": {"a": 3}}]"#,
        expect![[r#"
            reading hk/cnc-1 "a" = 1 at 2025-03-01T12:00:00.123Z
            reading hk/cnc-1 "a" = 2 at 2025-03-01T12:00:00Z
            reading hk/cnc-1 "a" = 3 at 2025-03-01T12:00:00.0005Z
        "#]],
    );
}

#[test]
fn messages_without_ts_received_within_a_millisecond_keep_apart_per_machine() {
    let mut decoder = JsonDecoder::new(DecodeConfig::default());
    let mut out = Decoded::default();
    let later = NOW + time::Duration::seconds(1);
    let messages: [(&str, &str, OffsetDateTime); 7] = [
        (TELEMETRY, r#"{"metrics": {"n": 1}}"#, NOW),
        (TELEMETRY, r#"{"metrics": {"n": 2}}"#, NOW),
        // A time of its own takes none of the machine's received times.
        (TELEMETRY, r#"{"ts": 1740830400000, "metrics": {"n": 3}}"#, NOW),
        (EVENTS, r#"{"type": "produced", "operation_id": 4, "good": 1}"#, NOW),
        // Another machine has its own.
        ("mf/v1/hk/cnc-2/telemetry", r#"{"metrics": {"n": 5}}"#, NOW),
        (EVENTS, r#"{"type": "produced", "operation_id": 4, "good": 1}"#, NOW),
        // The clock moved past them: its own time again.
        (TELEMETRY, r#"{"metrics": {"n": 7}}"#, later),
    ];
    for (topic, payload, now) in messages {
        decoder.decode(topic, payload.as_bytes(), now, &mut out);
    }
    expect![[r#"
        reading hk/cnc-1 "n" = 1 at 2025-03-01T12:00:00Z
        reading hk/cnc-1 "n" = 2 at 2025-03-01T12:00:00.001Z
        reading hk/cnc-1 "n" = 3 at 2025-03-01T12:00:00Z
        reading hk/cnc-2 "n" = 5 at 2025-03-01T12:00:00Z
        reading hk/cnc-1 "n" = 7 at 2025-03-01T12:00:01Z
        event hk/cnc-1 Produced { operation_id: 4, good: 1, scrap: 0, ideal_unit_ms: None } at 2025-03-01T12:00:00.002Z
        event hk/cnc-1 Produced { operation_id: 4, good: 1, scrap: 0, ideal_unit_ms: None } at 2025-03-01T12:00:00.003Z
    "#]]
    .assert_eq(&render(&out));
}

#[test]
fn messages_without_ts_follow_a_clock_set_back() {
    let mut decoder = JsonDecoder::new(DecodeConfig::default());
    let mut out = Decoded::default();
    let seconds = |s: i64| NOW + time::Duration::seconds(s);
    // A clock set back by two minutes (an NTP step), then messages two seconds apart: they keep
    // their times, not a millisecond after the last before the step. A step back within the
    // slack a burst may run ahead by (here one second) still keeps them apart.
    for (n, now) in [(1, seconds(120)), (2, seconds(0)), (3, seconds(2)), (4, seconds(1)), (5, seconds(4))] {
        decoder.decode(TELEMETRY, format!(r#"{{"metrics": {{"n": {n}}}}}"#).as_bytes(), now, &mut out);
    }
    expect![[r#"
        reading hk/cnc-1 "n" = 1 at 2025-03-01T12:02:00Z
        reading hk/cnc-1 "n" = 2 at 2025-03-01T12:00:00Z
        reading hk/cnc-1 "n" = 3 at 2025-03-01T12:00:02Z
        reading hk/cnc-1 "n" = 4 at 2025-03-01T12:00:02.001Z
        reading hk/cnc-1 "n" = 5 at 2025-03-01T12:00:04Z
    "#]]
    .assert_eq(&render(&out));
}

#[test]
fn one_bad_metric_keeps_the_others() {
    check(
        TELEMETRY,
        r#"{"ts": 1740830400000, "metrics": {"ok": 1, "s": "text", "n": null, "arr": [1, 2], "obj": {"a": 1}, "": 5, "ctl\u0001": 6, "ok2": false, "huge": 1e101, "tiny": -1.7e308, "edge": -1e100}}"#,
        expect![[r#"
            reading hk/cnc-1 "ok" = 1 at 2025-03-01T12:00:00Z
            reading hk/cnc-1 "ok2" = 0 at 2025-03-01T12:00:00Z
            reading hk/cnc-1 "edge" = -10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000 at 2025-03-01T12:00:00Z
            dropped wrong_types: metric "s" is a string
            dropped wrong_types: metric "n" is null
            dropped wrong_types: metric "arr" is an array
            dropped wrong_types: metric "obj" is an object
            dropped bad_metric_name: metric name ""
            dropped bad_metric_name: metric name "ctl\u{1}"
            dropped out_of_range: metric "huge" is 1e101
            dropped out_of_range: metric "tiny" is -1.7e308
        "#]],
    );
}

#[test]
fn a_null_ts_is_the_time_received_and_seconds_are_named() {
    check(
        TELEMETRY,
        r#"[{"ts": null, "metrics": {"n": 1}}, {"ts": 1740830400, "metrics": {"s": 1}}]"#,
        expect![[r#"
            reading hk/cnc-1 "n" = 1 at 2025-03-01T12:00:00Z
            dropped too_old: ts 1740830400, which looks like seconds: ts is in milliseconds (1 metrics)
        "#]],
    );
}

#[test]
fn timestamps_outside_the_window_drop_their_object() {
    check(
        TELEMETRY,
        r#"[{"ts": "2025-03-01T12:05:00.001Z", "metrics": {"a": 1, "b": 2}},
            {"ts": "2025-02-22T11:59:59Z", "metrics": {"a": 1}},
            {"ts": "yesterday", "metrics": {"a": 1}},
            {"ts": true, "metrics": {"a": 1}},
            {"ts": 1e30, "metrics": {"a": 1}},
            {"ts": "2025-03-01T12:05:00Z", "metrics": {"edge": 1}}]"#,
        expect![[r#"
            reading hk/cnc-1 "edge" = 1 at 2025-03-01T12:05:00Z
            dropped future_timestamp: ts "2025-03-01T12:05:00.001Z" (2 metrics)
            dropped too_old: ts "2025-02-22T11:59:59Z" (1 metrics)
            dropped bad_timestamp: ts "yesterday" (1 metrics)
            dropped bad_timestamp: ts neither text nor a number (1 metrics)
            dropped bad_timestamp: ts 1000000000000000000000000000000 (1 metrics)
        "#]],
    );
}

#[test]
fn malformed_telemetry_drops_the_message() {
    check(
        TELEMETRY,
        r#"{"ts": 1, "metrics": {"a": 1"#,
        expect![[r#"
        dropped malformed_json: telemetry: EOF while parsing an object at line 1 column 28
    "#]],
    );
    check(
        TELEMETRY,
        r#"[{"metrics": {"a": 1}}, 7]"#,
        expect![[r#"
        dropped malformed_json: telemetry: invalid type: integer `7`, expected a telemetry object at line 1 column 25
    "#]],
    );
    check(
        TELEMETRY,
        r#"{"ts": 1740830400000}"#,
        expect![[r#"
        dropped malformed_json: telemetry: missing field `metrics` at line 1 column 21
    "#]],
    );
    check(
        TELEMETRY,
        r#"{"metrics": {"a": 1e400}}"#,
        expect![[r#"
        dropped malformed_json: telemetry: number out of range at line 1 column 23
    "#]],
    );
    check(
        TELEMETRY,
        "\u{fffd}\0",
        expect![[r#"
        dropped malformed_json: telemetry: expected value at line 1 column 1
    "#]],
    );
}

#[test]
fn bad_topics() {
    for topic in [
        "mf/v1/hk/telemetry",
        "mf/v1/hk/cnc 1/telemetry",
        "mf/v1/hk/m/status",
        "mf/v1/hk/m/telemetry/x",
        "mf/v2/hk/m/telemetry",
    ] {
        let mut out = Decoded::default();
        JsonDecoder::default().decode(topic, b"{}", NOW, &mut out);
        assert_eq!(out.drop_counts()[&DropReason::BadTopic], 1, "{topic}");
    }
}

#[test]
fn payload_too_large() {
    let config = DecodeConfig { max_payload_bytes: 10, ..DecodeConfig::default() };
    let mut out = Decoded::default();
    JsonDecoder::new(config).decode(TELEMETRY, br#"{"metrics": {}}"#, NOW, &mut out);
    expect![[r#"
        dropped payload_too_large: 15 bytes
    "#]]
    .assert_eq(&render(&out));
}

#[test]
fn events_good_and_bad() {
    check(
        EVENTS,
        r#"[{"ts": 1740830400000, "type": "state", "state": "down", "reason": "spindle overload"},
            {"type": "state", "state": "planned_stop"},
            {"type": "operation_started", "operation_id": 42},
            {"type": "operation_finished", "operation_id": 42, "good": 10, "scrap": 1},
            {"type": "downtime", "reason": "tool breakage", "future_field": 1},
            {"type": "online"}, {"type": "offline"},
            {"type": "state", "state": "sleeping"},
            {"type": "state"},
            {"type": "operation_started", "operation_id": 0},
            {"type": "operation_finished", "operation_id": 1, "good": -1, "scrap": 0},
            {"type": "operation_finished", "operation_id": 1, "good": 1},
            {"type": "operation_finished", "operation_id": 2, "good": 1, "scrap": 0, "ideal_unit_seconds": 0.25},
            {"type": "operation_finished", "operation_id": 2, "good": 1, "scrap": 0, "ideal_unit_seconds": 0},
            {"type": "operation_finished", "operation_id": 2, "good": 1, "scrap": 0, "ideal_unit_seconds": 1e9},
            {"type": "operation_finished", "operation_id": 2, "good": 1, "scrap": 0, "ideal_unit_seconds": "fast"},
            {"type": "produced", "operation_id": 42, "good": 3},
            {"type": "produced", "operation_id": 42, "good": 0, "scrap": 1, "ideal_unit_seconds": 1.5},
            {"type": "produced", "operation_id": 42, "good": 0, "scrap": 0},
            {"type": "produced", "operation_id": 42, "scrap": 2},
            {"type": "produced", "good": 2},
            {"type": "produced", "operation_id": 42, "good": 1, "ideal_unit_seconds": -1},
            {"type": "produced", "operation_id": 42, "good": 4294967295, "scrap": 4294967295},
            {"type": "operation_finished", "operation_id": 42, "good": 999999, "scrap": 2},
            {"type": "downtime", "reason": " "},
            {"type": "state", "state": "down", "reason": "Tool change \u202egniraeb"},
            {"type": "reboot"},
            {"state": "down"},
            {"type": "online", "ts": "2030-01-01T00:00:00Z"},
            7]"#,
        expect![[r#"
            event hk/cnc-1 StateChange { state: Down, reason: Some("spindle overload") } at 2025-03-01T12:00:00Z
            event hk/cnc-1 StateChange { state: PlannedStop, reason: None } at 2025-03-01T12:00:00Z
            event hk/cnc-1 OperationStarted { operation_id: 42 } at 2025-03-01T12:00:00.001Z
            event hk/cnc-1 OperationFinished { operation_id: 42, good: 10, scrap: 1, ideal_unit_ms: None } at 2025-03-01T12:00:00.002Z
            event hk/cnc-1 Downtime { reason: "tool breakage" } at 2025-03-01T12:00:00.003Z
            event hk/cnc-1 Online at 2025-03-01T12:00:00.004Z
            event hk/cnc-1 Offline at 2025-03-01T12:00:00.005Z
            event hk/cnc-1 OperationFinished { operation_id: 2, good: 1, scrap: 0, ideal_unit_ms: Some(250) } at 2025-03-01T12:00:00.006Z
            event hk/cnc-1 Produced { operation_id: 42, good: 3, scrap: 0, ideal_unit_ms: None } at 2025-03-01T12:00:00.007Z
            event hk/cnc-1 Produced { operation_id: 42, good: 0, scrap: 1, ideal_unit_ms: Some(1500) } at 2025-03-01T12:00:00.008Z
            dropped invalid_event: unknown state "sleeping"
            dropped invalid_event: missing field `state`
            dropped invalid_event: operation_id 0 is not positive
            dropped invalid_event: invalid value: integer `-1`, expected u32
            dropped invalid_event: missing field `scrap`
            dropped invalid_event: ideal_unit_seconds must be more than 0 and at most 604800, found 0
            dropped invalid_event: ideal_unit_seconds must be more than 0 and at most 604800, found 1000000000
            dropped invalid_event: invalid type: string "fast", expected f64
            dropped invalid_event: a produced event reports at least one unit, good or scrap
            dropped invalid_event: missing field `good`
            dropped invalid_event: missing field `operation_id`
            dropped invalid_event: ideal_unit_seconds must be more than 0 and at most 604800, found -1
            dropped invalid_event: good and scrap together must be at most 1000000, found 4294967295 and 4294967295
            dropped invalid_event: good and scrap together must be at most 1000000, found 999999 and 2
            dropped invalid_event: reason " " is not 1 to 200 characters without control or text-direction characters
            dropped invalid_event: reason "Tool change \u{202e}gniraeb" is not 1 to 200 characters without control or text-direction characters
            dropped invalid_event: unknown event type "reboot"
            dropped invalid_event: missing field `type`
            dropped future_timestamp: ts "2030-01-01T00:00:00Z"
            dropped invalid_event: an event is a JSON object
        "#]],
    );
    check(
        EVENTS,
        "{",
        expect![[r#"
        dropped malformed_json: events: EOF while parsing an object at line 1 column 1
    "#]],
    );
    check(
        EVENTS,
        "3",
        expect![[r#"
        dropped malformed_json: events: expected an object or an array of objects
    "#]],
    );
}

#[test]
fn telemetry_round_trip() {
    let at = datetime!(2025-03-01 11:58:30.125 UTC);
    let message =
        encode_telemetry("hk", "cnc-1", at, &[("power \"kW\"", 3.25), ("count", 1e20), ("t", -0.5)]).unwrap();
    assert_eq!(message.topic, TELEMETRY);
    let mut out = Decoded::default();
    JsonDecoder::default().decode(&message.topic, &message.payload, NOW, &mut out);
    expect![[r#"
        reading hk/cnc-1 "power \"kW\"" = 3.25 at 2025-03-01T11:58:30.125Z
        reading hk/cnc-1 "count" = 100000000000000000000 at 2025-03-01T11:58:30.125Z
        reading hk/cnc-1 "t" = -0.5 at 2025-03-01T11:58:30.125Z
    "#]]
    .assert_eq(&render(&out));
    assert_eq!(
        encode_telemetry("hk", "cnc-1", at, &[("x", f64::NAN)]),
        Err(EncodeError::NonFinite("x".into()))
    );
    assert!(matches!(
        encode_telemetry("hk", "a/b", at, &[]),
        Err(EncodeError::BadCode { field: "machine", .. })
    ));
    assert!(encode_telemetry("hk", "m", at, &[("", 1.0)]).is_err());
}

#[test]
fn event_round_trip() {
    let at = datetime!(2025-03-01 11:58:30 UTC);
    let events = [
        MachineEvent::Online,
        MachineEvent::Offline,
        MachineEvent::StateChange { state: MachineState::Setup, reason: Some("family change".into()) },
        MachineEvent::StateChange { state: MachineState::Running, reason: None },
        MachineEvent::OperationStarted { operation_id: 7 },
        MachineEvent::OperationFinished { operation_id: 7, good: 9, scrap: 1, ideal_unit_ms: None },
        MachineEvent::OperationFinished { operation_id: 7, good: 9, scrap: 1, ideal_unit_ms: Some(1_500) },
        MachineEvent::Produced { operation_id: 7, good: 0, scrap: 2, ideal_unit_ms: None },
        MachineEvent::Produced { operation_id: 7, good: 4, scrap: 0, ideal_unit_ms: Some(250) },
        MachineEvent::Downtime { reason: "no material".into() },
    ];
    let mut decoder = JsonDecoder::default();
    for event in events {
        let message = encode_event("hk", "cnc-1", Some(at), &event).unwrap();
        let mut out = Decoded::default();
        decoder.decode(&message.topic, &message.payload, NOW, &mut out);
        assert_eq!(out.events, vec![TimedEvent { key: MachineKey::new("hk", "cnc-1"), at, event }]);
    }
    let will = encode_event("hk", "cnc-1", None, &MachineEvent::Offline).unwrap();
    assert_eq!(will.payload, br#"{"type":"offline"}"#);
}
