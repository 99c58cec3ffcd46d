//! `microfactory bench ingest`: simulated devices publish JSON telemetry over MQTT as fast as the
//! platform takes it, through a broker (the embedded one, or Mosquitto) into the durable store,
//! and the command prints messages/s, stored points/s and publish-to-queryable latency.
//!
//! Latency is measured end to end: a probe publishes one reading every 100 ms and polls the store
//! until the reading is queryable. Peak memory (VmHWM) is printed to show that overload is met by
//! back-pressure, not by growing queues.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use model::{Clock, SystemClock};
use mqtt::{Client, ClientOptions, QoS};
use server::AppState;
use store::{Durability, Store};

/// Which broker the devices publish to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BrokerKind {
    /// The broker embedded in microfactory.
    Embedded,
    /// Debian's `mosquitto`, started for the run; the platform subscribes to it.
    Mosquitto,
}

/// Options of `bench ingest`.
#[derive(Debug, Args)]
pub struct IngestBench {
    /// Simulated devices, one MQTT connection each.
    #[arg(long, default_value_t = 20)]
    devices: u32,
    /// Metrics per message.
    #[arg(long, default_value_t = 10)]
    metrics: u32,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Broker to publish through.
    #[arg(long, value_enum, default_value_t = BrokerKind::Embedded)]
    broker: BrokerKind,
    /// QoS of the device messages (0 or 1).
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Messages per second per device; 0 publishes as fast as the platform accepts (overload).
    #[arg(long, default_value_t = 0)]
    rate: u32,
}

/// QoS 1 messages a device keeps in flight.
const WINDOW: usize = 256;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Runs the bench and prints its table.
pub fn run(options: IngestBench) -> anyhow::Result<()> {
    if options.devices == 0 || options.metrics == 0 || options.duration == 0 {
        bail!("--devices, --metrics and --duration must be at least 1");
    }
    let qos = match options.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        other => bail!("--qos must be 0 or 1, not {other}"),
    };
    let dir = std::env::temp_dir().join(format!("microfactory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = run_in(&options, qos, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn run_in(options: &IngestBench, qos: QoS, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::open(&dir.join("bench.db"), Durability::Full)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let token = "bench-admin-token-0123456789";
    server::bootstrap(&store, Some(token), clock.now())?;
    server::demo::seed(&store, clock.now())?;
    let probe_machine =
        store.machine_keys()?.into_iter().find(|k| k.1 == "qc-01").context("demo machine qc-01")?.2;

    let mut mosquitto = None;
    let mut mqtt = server::broker::MqttConfig::default();
    let broker_address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    match options.broker {
        BrokerKind::Embedded => mqtt.listen = broker_address,
        BrokerKind::Mosquitto => {
            let config = dir.join("mosquitto.conf");
            std::fs::write(
                &config,
                format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n",
                    broker_address.port()
                ),
            )?;
            let binary = ["mosquitto", "/usr/sbin/mosquitto"]
                .into_iter()
                .find(|b| std::process::Command::new(b).arg("-h").output().is_ok());
            let binary = binary.context("mosquitto is not installed (apt-get install mosquitto)")?;
            mosquitto = Some(
                std::process::Command::new(binary)
                    .arg("-c")
                    .arg(&config)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()?,
            );
            std::thread::sleep(Duration::from_millis(300));
            mqtt.external = Some(broker_address.to_string());
        }
    }
    let state = AppState::new(
        store.clone(),
        clock.clone(),
        server::ServerConfig::default(),
        server::AlarmConfig::default(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        let serve = tokio::spawn(async move {
            let options = server::RunOptions { mqtt: Some((mqtt, None)), simulator: None, retention: None, planning: None };
            server::run(http, serve_state, options, async {
                let _ = stop_rx.await;
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;

        let running = Arc::new(AtomicBool::new(true));
        let published = Arc::new(AtomicU64::new(0));
        let machines = ["cnc-01", "cnc-02", "cnc-03", "imm-01", "imm-02", "laser-01", "p3d-01", "p3d-02", "asm-01", "asm-02"];
        let start_ms = (clock.now().unix_timestamp_nanos() / 1_000_000) as i64 - 60_000;
        let mut devices = Vec::new();
        for device in 0..options.devices {
            let mut client_options = ClientOptions::new(format!("bench-{device}"));
            client_options.username = Some("bench".into());
            client_options.password = Some(token.as_bytes().to_vec());
            let client = Client::connect(broker_address, client_options).await.context("device connect")?;
            let names: Vec<String> = (0..options.metrics).map(|k| format!("d{device}_m{k}")).collect();
            let machine = machines[device as usize % machines.len()];
            let (running, published) = (running.clone(), published.clone());
            let interval = (options.rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(options.rate)));
            devices.push(tokio::spawn(async move {
                // Each message gets the next millisecond of a per-device clock, so every reading
                // is a new point of its series (readings are unique per series and millisecond).
                let mut ts = start_ms;
                let mut window = std::collections::VecDeque::new();
                let mut pace = interval.map(|every| {
                    let mut pace = tokio::time::interval(every);
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    pace
                });
                while running.load(Ordering::Relaxed) {
                    if let Some(pace) = pace.as_mut() {
                        pace.tick().await;
                    }
                    ts += 1;
                    let metrics: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), (ts % 1000) as f64 * 0.5)).collect();
                    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                    let Ok(message) = ingest::json::encode_telemetry("hk-kt", machine, at, &metrics) else { break };
                    // QoS 1 is pipelined: up to a window of messages await their PUBACKs.
                    let Ok(ack) = client.start_publish(&message.topic, message.payload, qos, false).await else { break };
                    window.push_back(ack);
                    if window.len() >= WINDOW && let Some(oldest) = window.pop_front() && oldest.acknowledged().await.is_err() {
                        break;
                    }
                    published.fetch_add(1, Ordering::Relaxed);
                }
                for ack in window {
                    let _ = ack.acknowledged().await;
                }
                let _ = client.disconnect().await;
            }));
        }

        // The probe: one reading every 100 ms, timed until it is queryable.
        let mut probe_options = ClientOptions::new("bench-probe");
        probe_options.username = Some("probe".into());
        probe_options.password = Some(token.as_bytes().to_vec());
        let probe = Client::connect(broker_address, probe_options).await?;
        let bar = indicatif::ProgressBar::new(options.duration);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} s  {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        let (_, readings_before, _) = state.ingest_totals();
        let mut latencies = Vec::new();
        let mut probe_seq = 0u64;
        while started.elapsed() < Duration::from_secs(options.duration) {
            probe_seq += 1;
            let at = clock.now();
            let message = ingest::json::encode_telemetry("hk-kt", "qc-01", at, &[("bench_probe", probe_seq as f64)])?;
            let sent = Instant::now();
            probe.publish(&message.topic, message.payload, QoS::AtLeastOnce, false).await?;
            let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
            loop {
                let points = store.series(probe_machine, "bench_probe", at_ms, at_ms + 1, None, 1)?;
                if !points.is_empty() {
                    latencies.push(sent.elapsed());
                    break;
                }
                if sent.elapsed() > Duration::from_secs(10) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!("{} messages published", published.load(Ordering::Relaxed)));
            tokio::time::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed())).await;
        }
        running.store(false, Ordering::Relaxed);
        let publish_seconds = started.elapsed().as_secs_f64();
        let messages = published.load(Ordering::Relaxed);
        for device in devices {
            let _ = device.await;
        }
        // Let the pipeline drain what was published, then count what is stored.
        let mut last = state.ingest_totals().1;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = state.ingest_totals().1;
            if now == last {
                break;
            }
            last = now;
        }
        let (received, readings_after, dropped) = state.ingest_totals();
        let total_seconds = started.elapsed().as_secs_f64() - 0.5;
        bar.finish_and_clear();
        let stored = readings_after - readings_before;
        let _ = stop_tx.send(());
        let _ = serve.await;
        latencies.sort();
        let percentile = |p: f64| {
            latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        println!("| broker | devices | metrics/msg | QoS | offered msg/s | messages/s | points/s stored | latency p50 | latency p99 | dropped | peak RSS |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let offered = if options.rate == 0 { "max".to_string() } else { (options.rate * options.devices).to_string() };
        println!(
            "| {:?} | {} | {} | {} | {offered} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.0} MiB |",
            options.broker,
            options.devices,
            options.metrics,
            options.qos,
            messages as f64 / publish_seconds,
            stored as f64 / total_seconds,
            percentile(0.5),
            percentile(0.99),
            dropped,
            peak_rss_mib().unwrap_or(f64::NAN),
        );
        println!(
            "({messages} messages = {} points published in {publish_seconds:.1} s; the pipeline received {} messages \
             (with the probes) and stored {stored} points by {total_seconds:.1} s; {} latency probes)",
            messages * u64::from(options.metrics),
            received,
            latencies.len()
        );
        anyhow::Ok(())
    });
    if let Some(mut child) = mosquitto {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}
