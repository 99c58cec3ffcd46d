//! Sparkplug B interoperability with an independent protobuf implementation: Python's
//! `protobuf` package with classes generated from `proto/sparkplug_b.proto` by `grpcio-tools`
//! (`tests/interop/sparkplug_interop.py`). Python decodes what our `EdgeNode` encodes, and our
//! decoder reads what Python builds.
//!
//! Runs when `python3` can import `google.protobuf` and `grpc_tools`; otherwise it prints a note
//! and passes, unless `MF_REQUIRE_INTEROP=1` (CI) makes the missing modules a failure.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use expect_test::expect;
use ingest::sparkplug::{EdgeNode, MetricValue};
use ingest::{DecodeConfig, Decoded, Decoder};
use time::macros::datetime;

fn python_ready() -> bool {
    let probe = Command::new("python3").args(["-c", "import google.protobuf, grpc_tools"]).output();
    let ready = probe.is_ok_and(|output| output.status.success());
    if !ready {
        let required = std::env::var("MF_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
        assert!(!required, "MF_REQUIRE_INTEROP=1 but python3 cannot import google.protobuf and grpc_tools");
        eprintln!("note: skipping the Sparkplug interop test: pip install protobuf grpcio-tools to run it");
    }
    ready
}

#[test]
fn python_protobuf_reads_ours_and_we_read_python() {
    if !python_ready() {
        return;
    }
    let now = datetime!(2025-03-01 12:00 UTC);
    let mut edge = EdgeNode::new("hk", "rs-edge", 2).unwrap();
    let ours = [
        edge.birth(now, &[("Temperature", MetricValue::Double(20.5)), ("Offset", MetricValue::Int8(-3))])
            .unwrap(),
        edge.device_birth(
            "cnc-1",
            now,
            &[("Power", MetricValue::Float(1.5)), ("On", MetricValue::Boolean(true))],
        )
        .unwrap(),
        edge.device_data("cnc-1", now, &[("Power", MetricValue::Float(2.25))]).unwrap(),
    ];
    let stdin: String = ours
        .iter()
        .map(|m| {
            format!("{} {}\n", m.topic, m.payload.iter().map(|b| format!("{b:02x}")).collect::<String>())
        })
        .collect();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sparkplug_interop.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    // Python's view of our messages.
    let decoded: Vec<String> = report["decoded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} seq={} ts={} {}", m["topic"], m["seq"], m["timestamp"], m["metrics"]))
        .collect();
    expect![[r#"
        "spBv1.0/hk/NBIRTH/rs-edge" seq=0 ts=1740830400000 [{"alias":null,"datatype":8,"name":"bdSeq","value":["long_value",2]},{"alias":null,"datatype":11,"name":"Node Control/Rebirth","value":["boolean_value",false]},{"alias":1,"datatype":10,"name":"Temperature","value":["double_value",20.5]},{"alias":2,"datatype":1,"name":"Offset","value":["int_value",4294967293]}]
        "spBv1.0/hk/DBIRTH/rs-edge/cnc-1" seq=1 ts=1740830400000 [{"alias":3,"datatype":9,"name":"Power","value":["float_value",1.5]},{"alias":4,"datatype":11,"name":"On","value":["boolean_value",true]}]
        "spBv1.0/hk/DDATA/rs-edge/cnc-1" seq=2 ts=1740830400000 [{"alias":3,"datatype":null,"name":null,"value":["float_value",2.25]}]"#]]
    .assert_eq(&decoded.join("\n"));

    // Our view of Python's messages.
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut out = Decoded::default();
    for message in report["messages"].as_array().unwrap() {
        let payload: Vec<u8> = (0..message["payload"].as_str().unwrap().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&message["payload"].as_str().unwrap()[i..i + 2], 16).unwrap())
            .collect();
        decoder.decode(message["topic"].as_str().unwrap(), &payload, now, &mut out);
    }
    let mut lines: Vec<String> = out
        .readings
        .iter()
        .map(|r| format!("reading {} {:?} = {} at {}", r.key, r.metric, r.value, r.at))
        .collect();
    lines.extend(out.events.iter().map(|e| format!("event {} {:?} at {}", e.key, e.event, e.at)));
    lines.extend(out.dropped.iter().map(|d| format!("dropped {}: {}", d.reason, d.detail)));
    lines.extend(out.replies.iter().map(|r| format!("reply {}", r.topic)));
    expect![[r#"
        reading hk/py-edge "Temperature" = 21.25 at 2025-03-01 11:59:00.0 +00:00:00
        reading hk/py-edge "Count" = -5 at 2025-03-01 11:59:00.0 +00:00:00
        reading hk/press-1 "Force [kN]" = 12.5 at 2025-03-01 11:59:00.0 +00:00:00
        reading hk/press-1 "Running" = 1 at 2025-03-01 11:59:00.0 +00:00:00
        reading hk/press-1 "Cycles" = 123456789 at 2025-03-01 11:59:00.0 +00:00:00
        reading hk/py-edge "Temperature" = 22.5 at 2025-03-01 11:59:01.0 +00:00:00
        reading hk/py-edge "Count" = -6 at 2025-03-01 11:59:01.0 +00:00:00
        reading hk/press-1 "Force [kN]" = 13 at 2025-03-01 11:59:02.0 +00:00:00
        reading hk/press-1 "Cycles" = 123456790 at 2025-03-01 11:59:01.5 +00:00:00
        event hk/py-edge Online at 2025-03-01 11:59:00.0 +00:00:00
        event hk/press-1 Online at 2025-03-01 11:59:00.0 +00:00:00
        event hk/press-1 StateChange { state: Setup, reason: None } at 2025-03-01 11:59:00.0 +00:00:00
        event hk/press-1 StateChange { state: Running, reason: None } at 2025-03-01 11:59:02.0 +00:00:00"#]]
    .assert_eq(&lines.join("\n"));
}
