//! Hand-run throughput check of the embedded broker: P client connections publish N messages of
//! S bytes at QoS Q over loopback; one subscriber (in-process, or a network client with
//! `--network`) receives them; prints messages per second. Usage:
//!
//! `cargo run --release -p mqtt --example throughput -- [N] [P] [S] [Q] [--network]`
//! (defaults: 200000 messages, 4 publishers, 1024 bytes, QoS 0).

use std::time::Duration;

use mqtt::{AllowAll, Broker, BrokerConfig, Client, ClientOptions, Counter, QoS};
use tokio::net::TcpListener;
use tokio::time::Instant;

fn main() {
    let mut numbers = Vec::new();
    let mut network = false;
    for arg in std::env::args().skip(1) {
        if arg == "--network" {
            network = true;
        } else {
            numbers.push(arg.parse::<usize>().expect("arguments are numbers or --network"));
        }
    }
    let n_messages = numbers.first().copied().unwrap_or(200_000);
    let n_publishers = numbers.get(1).copied().unwrap_or(4).max(1);
    let payload_size = numbers.get(2).copied().unwrap_or(1024);
    let qos = QoS::from_u8(numbers.get(3).copied().unwrap_or(0) as u8).expect("qos 0 or 1");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(n_messages, n_publishers, payload_size, qos, network));
}

async fn run(n_messages: usize, n_publishers: usize, payload_size: usize, qos: QoS, network: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = Broker::start(listener, BrokerConfig::default(), AllowAll);
    let addr = broker.local_addr().unwrap();
    let per_publisher = n_messages / n_publishers;
    let expected = per_publisher * n_publishers;

    let receiver = if network {
        let client = Client::connect(addr, ClientOptions::new("bench-subscriber")).await.unwrap();
        let mut subscription = client.subscribe("bench/#", QoS::AtLeastOnce).await.unwrap();
        tokio::spawn(async move {
            let mut received = 0;
            let mut last = Instant::now();
            while received < expected {
                match tokio::time::timeout(Duration::from_secs(2), subscription.recv()).await {
                    Ok(Some(_)) => {
                        received += 1;
                        last = Instant::now();
                    }
                    _ => break,
                }
            }
            drop(client);
            (received, last)
        })
    } else {
        let mut messages = broker.subscribe("bench/#").unwrap();
        tokio::spawn(async move {
            let mut received = 0;
            let mut last = Instant::now();
            while received < expected {
                match tokio::time::timeout(Duration::from_secs(2), messages.recv()).await {
                    Ok(Some(_)) => {
                        received += 1;
                        last = Instant::now();
                    }
                    _ => break,
                }
            }
            (received, last)
        })
    };

    let mut publishers = Vec::new();
    for idx in 0..n_publishers {
        publishers.push(Client::connect(addr, ClientOptions::new(format!("bench-{idx}"))).await.unwrap());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (idx, client) in publishers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let topic = format!("bench/machine-{idx}/telemetry");
            let payload = vec![b'x'; payload_size];
            // Pipelined: up to `max_inflight` QoS 1 messages await their PUBACK at once.
            let mut pending = std::collections::VecDeque::new();
            for _ in 0..per_publisher {
                pending.push_back(client.start_publish(&topic, payload.clone(), qos, false).await.unwrap());
                if pending.len() >= 512 {
                    pending.pop_front().unwrap().acknowledged().await.unwrap();
                }
            }
            for ack in pending {
                ack.acknowledged().await.unwrap();
            }
            client.disconnect().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let publish_elapsed = started.elapsed();
    let (received, last) = receiver.await.unwrap();
    // Until the last message arrived (a subscriber that lost messages waits for a timeout).
    let elapsed = last.saturating_duration_since(started);
    let counters = broker.counters();
    let rate = received as f64 / elapsed.as_secs_f64();
    println!(
        "subscriber {}: {received}/{expected} messages of {payload_size} B at QoS {} from {n_publishers} \
         publishers in {:.2} s = {rate:.0} msg/s ({:.1} MB/s); publishing took {:.2} s; dropped (queue full) {}",
        if network { "network client" } else { "in-process" },
        qos as u8,
        elapsed.as_secs_f64(),
        rate * payload_size as f64 / 1e6,
        publish_elapsed.as_secs_f64(),
        counters.get(Counter::DroppedQueueFull),
    );
    broker.shutdown().await;
}
