//! Kill -9 during a sustained MQTT publish: every reading whose QoS 1 PUBACK arrived before the
//! kill is stored after the restart (the embedded broker acknowledges only after the commit).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqtt::{Client, ClientOptions, QoS};
use support::{TOKEN, TempDir, request, start};

#[test]
fn every_acknowledged_mqtt_reading_survives_kill_9() {
    let dir = TempDir::new("mqtt-kill9");
    let mut server = start("demo", &dir.0);
    let broker = server.mqtt;
    let acknowledged: Arc<Mutex<Vec<(i64, f64)>>> = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 - 120_000;
    let publishers = {
        let acknowledged = acknowledged.clone();
        runtime.spawn(async move {
            let mut options = ClientOptions::new("durability-test");
            options.username = Some("admin".into());
            options.password = Some(TOKEN.as_bytes().to_vec());
            let client = Client::connect(broker, options).await.unwrap();
            let mut tasks = Vec::new();
            for lane in 0..16i64 {
                let (client, acknowledged) = (client.clone(), acknowledged.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..100_000i64 {
                        let ts = base_ms + i * 16 + lane;
                        let value = (ts % 100_000) as f64 / 8.0;
                        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000)
                            .unwrap();
                        let message =
                            ingest::json::encode_telemetry("hk-kt", "cnc-03", at, &[("kill9_temp", value)])
                                .unwrap();
                        if client
                            .publish(&message.topic, message.payload, QoS::AtLeastOnce, false)
                            .await
                            .is_err()
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
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let acked = acknowledged.lock().unwrap().clone();
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), publishers).await;
    });
    assert!(acked.len() >= 400, "only {} readings were acknowledged", acked.len());

    let server = start("serve", &dir.0);
    let machines =
        request(server.address, "GET", "/api/v1/machines?limit=500", Some(TOKEN), None).unwrap().json();
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
    let points = request(server.address, "GET", &path, Some(TOKEN), None).unwrap().json()["points"].clone();
    let stored: std::collections::HashMap<i64, f64> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let at = time::OffsetDateTime::parse(p["ts"].as_str().unwrap(), format).unwrap();
            ((at.unix_timestamp_nanos() / 1_000_000) as i64, p["last"].as_f64().unwrap())
        })
        .collect();
    let missing: Vec<_> = acked.iter().filter(|(ts, value)| stored.get(ts) != Some(value)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged readings are missing, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "{} readings acknowledged before kill -9, all stored; {} stored in all",
        acked.len(),
        stored.len()
    );
}
