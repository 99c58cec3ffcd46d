//! Kill -9 during a sustained MQTT publish: every reading whose QoS 1 PUBACK arrived before the
//! kill is stored after the restart. The embedded broker acknowledges only after the commit; with
//! an external Mosquitto, the platform acknowledges to Mosquitto only after the commit, and its
//! persistent session brings back what it had not stored.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqtt::{Client, ClientOptions, QoS};
use support::{Mosquitto, TOKEN, TempDir, mosquitto, request, start, start_with};

/// Readings of cnc-03 whose PUBACK has arrived, as (epoch ms, value).
type Acknowledged = Arc<Mutex<Vec<(i64, f64)>>>;

/// Publishes `kill9_temp` readings of cnc-03 at QoS 1 to `broker` from 16 concurrent lanes, and
/// records each one once acknowledged, until a publish fails or `stop` is set.
fn publish_readings(
    runtime: &tokio::runtime::Runtime,
    broker: SocketAddr,
    options: ClientOptions,
    base_ms: i64,
    acknowledged: Acknowledged,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    runtime.spawn(async move {
        let client = Client::connect(broker, options).await.unwrap();
        let mut tasks = Vec::new();
        for lane in 0..16i64 {
            let (client, acknowledged, stop) = (client.clone(), acknowledged.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..100_000i64 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let ts = base_ms + i * 16 + lane;
                    let value = (ts % 100_000) as f64 / 8.0;
                    let at =
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000).unwrap();
                    let message =
                        ingest::json::encode_telemetry("hk-kt", "cnc-03", at, &[("kill9_temp", value)])
                            .unwrap();
                    if client.publish(&message.topic, message.payload, QoS::AtLeastOnce, false).await.is_err()
                    {
                        return;
                    }
                    acknowledged.lock().unwrap().push((ts, value));
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    })
}

/// Waits until at least `count` readings are acknowledged (a minute at most).
fn wait_for_acknowledged(acknowledged: &Acknowledged, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The stored `kill9_temp` readings of cnc-03 from `base_ms` on, by epoch ms.
fn stored_readings(address: SocketAddr, base_ms: i64) -> std::collections::HashMap<i64, f64> {
    let machines = request(address, "GET", "/api/v1/machines?limit=500", Some(TOKEN), None).unwrap().json();
    let machine = machines["items"].as_array().unwrap().iter().find(|m| m["code"] == "cnc-03").unwrap()["id"]
        .as_i64()
        .unwrap();
    let format = &time::format_description::well_known::Rfc3339;
    let from = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(base_ms) * 1_000_000).unwrap();
    let to = from + time::Duration::hours(2);
    let path = format!(
        "/api/v1/machines/{machine}/series?metric=kill9_temp&from={}&to={}&limit=100000",
        from.format(format).unwrap(),
        to.format(format).unwrap()
    );
    let points = request(address, "GET", &path, Some(TOKEN), None).unwrap().json()["points"].clone();
    points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let at = time::OffsetDateTime::parse(p["ts"].as_str().unwrap(), format).unwrap();
            ((at.unix_timestamp_nanos() / 1_000_000) as i64, p["last"].as_f64().unwrap())
        })
        .collect()
}

fn missing<'a>(acked: &'a [(i64, f64)], stored: &std::collections::HashMap<i64, f64>) -> Vec<&'a (i64, f64)> {
    acked.iter().filter(|(ts, value)| stored.get(ts) != Some(value)).collect()
}

fn assert_all_stored(acked: &[(i64, f64)], stored: &std::collections::HashMap<i64, f64>) {
    let missing = missing(acked, stored);
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged readings are missing, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Publishes readings to a demo from 16 lanes until `at_least` are acknowledged, stops the demo
/// with `stop`, starts it again, and checks that every reading acknowledged until the process
/// ended is stored. Returns (acknowledged, stored in all).
fn acknowledged_readings_survive(
    name: &str,
    at_least: usize,
    stop: impl FnOnce(&mut support::Server),
) -> (usize, usize) {
    let dir = TempDir::new(name);
    let mut server = start("demo", &dir.0);
    let acknowledged = Acknowledged::default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 - 120_000;
    let mut options = ClientOptions::new(name);
    options.username = Some("admin".into());
    options.password = Some(TOKEN.as_bytes().to_vec());
    let publishing = Arc::new(AtomicBool::new(false));
    let publishers =
        publish_readings(&runtime, server.mqtt, options, base_ms, acknowledged.clone(), publishing);
    wait_for_acknowledged(&acknowledged, at_least);
    stop(&mut server);
    let acked = acknowledged.lock().unwrap().clone();
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), publishers).await;
    });
    assert!(acked.len() >= at_least, "only {} readings were acknowledged", acked.len());

    let server = start("demo", &dir.0);
    let stored = stored_readings(server.address, base_ms);
    assert_all_stored(&acked, &stored);
    (acked.len(), stored.len())
}

#[test]
fn every_acknowledged_mqtt_reading_survives_kill_9() {
    let (acked, stored) = acknowledged_readings_survive("mqtt-kill9", 400, |server| {
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    });
    eprintln!("{acked} readings acknowledged before kill -9, all stored; {stored} stored in all");
}

/// A normal stop (SIGTERM) under a sustained publish: what is acknowledged is stored, including
/// what was still queued for the store when the stop came (it is abandoned unacknowledged, and the
/// publisher would send it again), and the platform exits.
#[test]
fn every_acknowledged_mqtt_reading_survives_a_stop_under_load() {
    let (acked, stored) = acknowledged_readings_survive("mqtt-sigterm", 2_000, |server| {
        support::signal(server.child.id(), "TERM");
        let status = support::wait_for_exit(&mut server.child, Duration::from_secs(20));
        assert!(status.success(), "{status}");
    });
    eprintln!("{acked} readings acknowledged around a SIGTERM, all stored; {stored} stored in all");
}

#[test]
fn every_reading_an_external_broker_acknowledged_survives_kill_9_of_the_platform() {
    let Some(binary) = mosquitto() else { return };
    let dir = TempDir::new("mosquitto-kill9");
    // No limit on the queue of the platform's session while it is away, and room for many
    // messages in flight, so the test measures the platform and not Mosquitto's defaults.
    let broker = Mosquitto::start(binary, &dir.0, "max_queued_messages 0\nmax_inflight_messages 1000\n");
    let external = ["--no-sim", "--mqtt-broker", &broker.address()];
    let mut server = start_with("demo", &dir.0.join("data"), &external);
    let broker_address: SocketAddr = ([127, 0, 0, 1], broker.port).into();

    let acknowledged = Acknowledged::default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 - 120_000;
    let stop = Arc::new(AtomicBool::new(false));
    let options = ClientOptions::new("durability-test");
    let publishers =
        publish_readings(&runtime, broker_address, options, base_ms, acknowledged.clone(), stop.clone());
    // Kill while readings stream in, then stop publishing (Mosquitto acknowledged every one
    // recorded, whether the platform had it yet or not).
    wait_for_acknowledged(&acknowledged, 2_000);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), publishers).await;
    });
    let acked = acknowledged.lock().unwrap().clone();
    assert!(acked.len() >= 2_000, "only {} readings were acknowledged", acked.len());

    let server = start_with("demo", &dir.0.join("data"), &external);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stored = stored_readings(server.address, base_ms);
    while !missing(&acked, &stored).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        stored = stored_readings(server.address, base_ms);
    }
    assert_all_stored(&acked, &stored);
    eprintln!("{} readings acknowledged by Mosquitto around a kill -9, all stored", acked.len());
}
