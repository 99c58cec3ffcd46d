//! Micro-benchmark of the payload decoders: decoded points per second for JSON telemetry and
//! Sparkplug B DDATA (by alias), on one thread, from pre-encoded messages.
//!
//! Run with `cargo run --release -p ingest --example decode_bench`. This measures decoding
//! only (no broker, no store); the end-to-end target is 100,000 points/s on 2 cores, so
//! decoding must be a small fraction of that budget.

use std::time::{Duration, Instant};

use ingest::sparkplug::{EdgeNode, MetricValue};
use ingest::{DecodeConfig, Decoded, Decoder, Outgoing, json};
use time::macros::datetime;

const METRICS_PER_MESSAGE: usize = 20;
const MACHINES: usize = 16;
/// A multiple of 256, so replaying the messages in a loop keeps Sparkplug `seq` continuous.
const MESSAGES: usize = 2560;

fn main() {
    let now = datetime!(2025-03-01 12:00 UTC);
    let names: Vec<String> = (0..METRICS_PER_MESSAGE).map(|i| format!("sensor_{i:02}/value")).collect();

    let json_messages: Vec<Outgoing> = (0..MESSAGES)
        .map(|i| {
            let metrics: Vec<(&str, f64)> =
                names.iter().enumerate().map(|(j, name)| (name.as_str(), (i * j) as f64 * 0.01)).collect();
            let at = now - time::Duration::milliseconds((MESSAGES - i) as i64);
            json::encode_telemetry("hk", &format!("m{}", i % MACHINES), at, &metrics).unwrap()
        })
        .collect();

    let mut edge = EdgeNode::new("hk", "edge-1", 0).unwrap();
    let initial: Vec<(&str, MetricValue)> =
        names.iter().map(|n| (n.as_str(), MetricValue::Double(0.0))).collect();
    let mut births = vec![edge.birth(now, &[]).unwrap()];
    for machine in 0..MACHINES {
        births.push(edge.device_birth(&format!("m{machine}"), now, &initial).unwrap());
    }
    // Births used seq 0..=MACHINES; pad with NDATA so the data loop starts at seq 0.
    while births.len() % 256 != 0 {
        births.push(edge.data(now, &[]).unwrap());
    }
    let sparkplug_messages: Vec<Outgoing> = (0..MESSAGES)
        .map(|i| {
            let metrics: Vec<(&str, MetricValue)> = names
                .iter()
                .enumerate()
                .map(|(j, name)| (name.as_str(), MetricValue::Double((i * j) as f64 * 0.01)))
                .collect();
            let at = now - time::Duration::milliseconds((MESSAGES - i) as i64);
            edge.device_data(&format!("m{}", i % MACHINES), at, &metrics).unwrap()
        })
        .collect();

    println!("decode benchmark: {METRICS_PER_MESSAGE} metrics per message, {MACHINES} machines, one thread");
    println!("| format | bytes/message | messages/s | points/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (label, prelude, messages) in
        [("JSON telemetry", &[][..], &json_messages), ("Sparkplug B DDATA", &births[..], &sparkplug_messages)]
    {
        let bytes = messages.iter().map(|m| m.payload.len()).sum::<usize>() / messages.len();
        let (n_messages, n_points, elapsed) = run(prelude, messages, now);
        let seconds = elapsed.as_secs_f64();
        println!(
            "| {label} | {bytes} | {:.0} | {:.0} |",
            n_messages as f64 / seconds,
            n_points as f64 / seconds
        );
    }
}

/// Decodes `messages` over and over for about a second, in batches of 256 as a pipeline would.
fn run(prelude: &[Outgoing], messages: &[Outgoing], now: time::OffsetDateTime) -> (usize, usize, Duration) {
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut out = Decoded::default();
    for message in prelude {
        decoder.decode(&message.topic, &message.payload, now, &mut out);
    }
    out.clear();
    let (mut n_messages, mut n_points) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for batch in messages.chunks(256) {
            for message in batch {
                decoder.decode(&message.topic, &message.payload, now, &mut out);
            }
            assert!(out.dropped.is_empty(), "{:?}", &out.dropped[..1]);
            n_messages += batch.len();
            n_points += out.readings.len();
            out.clear();
        }
    }
    (n_messages, n_points, start.elapsed())
}
