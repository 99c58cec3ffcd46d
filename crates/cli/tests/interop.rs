//! Interoperability: a third-party MQTT client (paho-mqtt, from PyPI) publishes JSON and Sparkplug
//! B (protobuf built by Python's protobuf package from our .proto) to the embedded broker as a
//! device account, and every reading is then queryable through the API with its exact value and
//! timestamp; the Sparkplug device's part counter counts units through a count rule. A receiver
//! written with Python's `hmac` checks the signatures of alarm webhooks. Skipped with a note when python3 lacks the packages, unless MF_REQUIRE_INTEROP=1
//! (CI sets it and installs them).

mod support;

use std::process::Command;

use support::{TOKEN, TempDir, request, start};

fn python_has_packages() -> bool {
    Command::new("python3")
        .args(["-c", "import paho.mqtt.client, google.protobuf, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn paho_mqtt_json_and_sparkplug_readings_are_stored_exactly() {
    let missing = (!python_has_packages()).then_some("python3 with paho-mqtt, protobuf and grpcio-tools");
    if support::skip_without(missing, "MF_REQUIRE_INTEROP") {
        return;
    }
    let dir = TempDir::new("paho");
    let server = start("demo", &dir.0);
    let user = r#"{"username": "gw-paho", "role": "device", "site_id": 1}"#;
    let created = request(server.address, "POST", "/api/v1/users", Some(TOKEN), Some(user)).unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let user_id = created.json()["id"].as_i64().unwrap();
    let token = request(
        server.address,
        "POST",
        "/api/v1/tokens",
        Some(TOKEN),
        Some(&format!(r#"{{"name": "paho", "user_id": {user_id}}}"#)),
    )
    .unwrap()
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let machines =
        request(server.address, "GET", "/api/v1/machines?limit=500", Some(TOKEN), None).unwrap().json();
    let id_of = |code: &str| {
        machines["items"].as_array().unwrap().iter().find(|m| m["code"] == code).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let rule = request(
        server.address,
        "PUT",
        &format!("/api/v1/machines/{}/count-rule", id_of("cnc-02")),
        Some(TOKEN),
        Some(r#"{"good_metric": "paho_parts"}"#),
    )
    .unwrap();
    assert_eq!(rule.status, 200, "{}", rule.body);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/paho_publish.py");
    let output = Command::new("python3")
        .arg(script)
        .args(["--port", &server.mqtt.port().to_string(), "--username", "gw-paho", "--password", &token])
        .args(["--site", "hk-kt", "--json-machine", "cnc-01", "--sparkplug-machine", "cnc-02"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = expected.as_array().unwrap();
    assert_eq!(expected.len(), 7);

    let format = &time::format_description::well_known::Rfc3339;
    let window = |ts_ms: i64| {
        let from = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000).unwrap();
        (from, from + time::Duration::milliseconds(1))
    };
    for reading in expected {
        let machine = id_of(reading["machine"].as_str().unwrap());
        let metric = reading["metric"].as_str().unwrap();
        let ts_ms = reading["ts_ms"].as_i64().unwrap();
        let (from, to) = window(ts_ms);
        let path = format!(
            "/api/v1/machines/{machine}/series?metric={metric}&from={}&to={}",
            from.format(format).unwrap(),
            to.format(format).unwrap()
        );
        // The pipeline commits within 50 ms; allow a little longer on a busy machine.
        let mut points = serde_json::Value::Null;
        for _ in 0..100 {
            points =
                request(server.address, "GET", &path, Some(TOKEN), None).unwrap().json()["points"].clone();
            if points.as_array().is_some_and(|p| !p.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let points = points.as_array().unwrap_or_else(|| panic!("no series for {reading}"));
        assert_eq!(points.len(), 1, "{reading}: {points:?}");
        assert_eq!(points[0]["last"].as_f64(), reading["value"].as_f64(), "{reading}");
        let stored = time::OffsetDateTime::parse(points[0]["ts"].as_str().unwrap(), format).unwrap();
        assert_eq!(stored, from, "{reading}");
    }
    // The counter went from 12 to 13: one good unit, counted at the second reading's time.
    let last = expected.iter().rev().find(|r| r["metric"] == "paho_parts").unwrap();
    // Units count in the period their work ended in, up to and including its end.
    let (from, to) = window(last["ts_ms"].as_i64().unwrap() - 1);
    let path = format!(
        "/api/v1/oee?machine={}&from={}&to={}",
        id_of("cnc-02"),
        from.format(format).unwrap().replace('+', "%2B"),
        to.format(format).unwrap().replace('+', "%2B")
    );
    let oee = request(server.address, "GET", &path, Some(TOKEN), None).unwrap();
    assert_eq!(oee.status, 200, "{}", oee.body);
    assert_eq!(oee.json()["total"]["good"], 1, "{}", oee.body);
}

#[test]
fn the_openapi_document_is_valid_openapi_3_1() {
    let has_validator = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if support::skip_without(
        (!has_validator).then_some("python3 with openapi-spec-validator"),
        "MF_REQUIRE_INTEROP",
    ) {
        return;
    }
    let dir = TempDir::new("openapi");
    let server = start("serve", &dir.0);
    let reply = request(server.address, "GET", "/api/v1/openapi.json", Some(TOKEN), None).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["openapi"], "3.1.0");
    let path = dir.0.join("openapi.json");
    std::fs::write(&path, &reply.body).unwrap();
    let output = Command::new("python3")
        .args(["-c", "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A webhook receiver written with Python's standard library: it checks each POST's signature with
/// `hmac` and prints what it found, one line per notification.
const HOOK_RECEIVER: &str = r#"
import hashlib, hmac, http.server, json, sys, time
secret, port = sys.argv[1].encode(), int(sys.argv[2])
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts = self.headers.get("X-Microfactory-Timestamp", "0")
        expected = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(expected, self.headers.get("X-Microfactory-Signature", ""))
        fresh = abs(time.time() - int(ts)) <= 300
        print("verified" if good and fresh else "rejected", json.loads(body)["status"], flush=True)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
"#;

#[test]
fn webhook_signatures_verify_with_python_hmac() {
    let has_python = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if support::skip_without((!has_python).then_some("python3"), "MF_REQUIRE_INTEROP") {
        return;
    }
    let dir = TempDir::new("webhook-hmac");
    let port = support::free_port();
    let secret = "a secret the receiver shares";
    let mut receiver = Command::new("python3")
        .args(["-c", HOOK_RECEIVER, secret, &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let config = dir.0.join("config.toml");
    std::fs::write(
        &config,
        format!("[alarms]\nwebhooks = [\"http://127.0.0.1:{port}/alarms\"]\nwebhook_secret = \"{secret}\"\n"),
    )
    .unwrap();
    let server =
        support::start_with("demo", &dir.0.join("data"), &["--no-sim", "--config", config.to_str().unwrap()]);
    let rule = r#"{"name": "Hook test", "metric": "hook_test", "condition": {"kind": "above", "threshold": 1.0}, "severity": "info"}"#;
    assert_eq!(
        request(server.address, "POST", "/api/v1/alarm-rules", Some(TOKEN), Some(rule)).unwrap().status,
        201
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let reading = r#"[{"site": "hk-kt", "machine": "cnc-01", "metrics": {"hook_test": 5}}]"#;
    let stored = request(server.address, "POST", "/api/v1/telemetry", Some(TOKEN), Some(reading)).unwrap();
    assert_eq!(stored.status, 200, "{}", stored.body);
    // The receiver says what it found; the first line is the raised alarm.
    let out = receiver.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx.recv_timeout(std::time::Duration::from_secs(30));
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    assert_eq!(line.expect("no webhook within 30 s").trim(), "verified active");
}
