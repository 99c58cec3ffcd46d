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
    /// Simulated devices, one MQTT connection each (1 to 10000).
    #[arg(long, default_value_t = 20)]
    devices: u32,
    /// Metrics per message (1 to 1000).
    #[arg(long, default_value_t = 10)]
    metrics: u32,
    /// Seconds of publishing (1 to 86400).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Broker to publish through.
    #[arg(long, value_enum, default_value_t = BrokerKind::Embedded)]
    broker: BrokerKind,
    /// QoS of the device messages (0 or 1).
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Messages per second per device, at most 100000; 0 publishes as fast as the platform accepts
    /// (overload).
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
    if !(1..=10_000).contains(&options.devices)
        || !(1..=1_000).contains(&options.metrics)
        || !(1..=86_400).contains(&options.duration)
        || options.rate > 100_000
    {
        bail!(
            "--devices must be from 1 to 10000, --metrics from 1 to 1000, --duration from 1 to 86400 \
             and --rate from 0 to 100000"
        );
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
    server::bootstrap(&store, Some(token), clock.now(), false)?;
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
            let options = server::RunOptions {
                mqtt: Some((mqtt, None)),
                simulator: None,
                retention: None,
                planning: None,
                on_ready: None,
            };
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
                let points = store.series(probe_machine, "bench_probe", at_ms, at_ms + 1, None, 0, 1)?;
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

/// The generated high-mix factory planned by `bench plan` and written by `schedule generate`.
#[derive(Debug, Args)]
pub struct GeneratedFactory {
    /// Released orders of the generated factory (1 to 100000).
    #[arg(long, default_value_t = 500)]
    pub orders: usize,
    /// Machines of the generated factory (1 to 1000).
    #[arg(long, default_value_t = 15)]
    pub machines: usize,
    /// Seed of the generated factory; the same seed gives the same factory.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl GeneratedFactory {
    /// The planning time of the generated factory: fixed, so a seed always gives the same problem.
    pub const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-30 06:00 +08:00);

    /// A throw-away store holding the generated factory.
    pub fn store(&self) -> anyhow::Result<Store> {
        if !(1..=100_000).contains(&self.orders) || !(1..=1_000).contains(&self.machines) {
            bail!("--orders must be from 1 to 100000 and --machines from 1 to 1000");
        }
        let store = Store::open_in_memory()?;
        server::demo::seed_generated(&store, self.orders, self.machines, self.seed, Self::NOW)?;
        Ok(store)
    }
}

/// Options of `bench plan`.
#[derive(Debug, Args)]
pub struct PlanBench {
    #[command(flatten)]
    factory: GeneratedFactory,
    /// Solver time of the full optimisation, in seconds.
    #[arg(long, default_value_t = 10.0)]
    time_limit: f64,
}

/// `bench plan`: a generated high-mix factory planned from the store, timed, checked, and
/// compared with dispatching rules.
pub fn plan(options: PlanBench) -> anyhow::Result<()> {
    use scheduler::{Config, Objective, check, objectives};
    use server::planning::{self, baseline};
    use server::replanner;
    if !(0.05..=600.0).contains(&options.time_limit) {
        bail!("--time-limit must be from 0.05 to 600 seconds");
    }
    let now = GeneratedFactory::NOW;
    let store = options.factory.store()?;
    let bar = indicatif::ProgressBar::new(6);

    let started = Instant::now();
    let built = planning::build(&store, now, &planning::Options::default())?;
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    let operations: usize = built.problem.jobs.iter().map(|j| j.operations.len()).sum();
    bar.inc(1);

    let first = Instant::now();
    let quick = scheduler::solve(
        &built.problem,
        &Config {
            objective: Objective::TardinessThenMakespan,
            iteration_limit: Some(0),
            time_limit: None,
            ..Config::default()
        },
    );
    let first_ms = first.elapsed().as_secs_f64() * 1000.0;
    let quick_valid = check(&built.problem, &quick.operations).is_empty();
    bar.inc(1);

    let timed = Instant::now();
    let edd = baseline::dispatch(&built.problem, baseline::Rule::Edd);
    let edd_ms = timed.elapsed().as_secs_f64() * 1000.0;
    let timed = Instant::now();
    let atcs = baseline::dispatch(&built.problem, baseline::Rule::Atcs);
    let atcs_ms = timed.elapsed().as_secs_f64() * 1000.0;
    let (edd_valid, atcs_valid) =
        (check(&built.problem, &edd).is_empty(), check(&built.problem, &atcs).is_empty());
    let (edd_makespan, edd_twt) = objectives(&built.problem, &edd);
    let (atcs_makespan, atcs_twt) = objectives(&built.problem, &atcs);
    bar.inc(1);

    let optimised = scheduler::solve(
        &built.problem,
        &Config {
            objective: Objective::TardinessThenMakespan,
            time_limit: Some(Duration::from_secs_f64(options.time_limit)),
            ..Config::default()
        },
    );
    let optimised_valid = check(&built.problem, &optimised.operations).is_empty();
    bar.inc(1);

    // The planner's fastest answer: the best rule, no search (time limit 0).
    let fast_started = Instant::now();
    let fast_built = planning::build(&store, now, &planning::Options::default())?;
    let fast = planning::solve(
        &fast_built,
        now,
        "tardiness_then_makespan",
        Duration::ZERO,
        planning::solver_threads(),
    )
    .map_err(anyhow::Error::msg)?;
    let fast_ms = fast_started.elapsed().as_secs_f64() * 1000.0;
    // What the planner returns with the full budget.
    let planned = Instant::now();
    let plan = planning::solve(
        &built,
        now,
        "tardiness_then_makespan",
        Duration::from_secs_f64(options.time_limit),
        planning::solver_threads(),
    )
    .map_err(anyhow::Error::msg)?;
    let planner_seconds = planned.elapsed().as_secs_f64();
    bar.inc(1);
    // Publish it, break the busiest machine, and repair.
    let summary = store.create_plan(&plan)?;
    store.publish_plan(summary.id, now)?;
    let busiest = plan
        .operations
        .iter()
        .fold(std::collections::HashMap::<model::MachineId, usize>::new(), |mut counts, op| {
            *counts.entry(op.machine_id).or_default() += 1;
            counts
        })
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(m, _)| m)
        .context("the plan is empty")?;
    let broken_at = now + time::Duration::minutes(30);
    store.record_state(&model::StateChange {
        machine: busiest,
        at: broken_at,
        state: model::MachineState::Down,
        reason: Some("bench".into()),
    })?;
    let repair_started = Instant::now();
    let repair_options = planning::Options {
        repair: Some(time::Duration::minutes(60)),
        down_for: time::Duration::minutes(60),
        ..planning::Options::default()
    };
    let repaired_built = planning::build(&store, broken_at, &repair_options)?;
    let repaired = planning::solve(
        &repaired_built,
        broken_at,
        "tardiness_then_makespan",
        Duration::from_millis(250),
        planning::solver_threads(),
    );
    let repair_ms = repair_started.elapsed().as_secs_f64() * 1000.0;
    let repair_valid = repaired.is_ok();
    let hours = |seconds: i64| seconds as f64 / 3600.0;
    // The replanner's own path (right-shift repair, stored and published): after the breakdown,
    // then after a rush order, then a check that finds nothing to do but reads the whole plan.
    let config = server::PlanningConfig { repair_interval_minutes: 0, ..server::PlanningConfig::default() };
    let mut memory = replanner::Memory::default();
    let timed = Instant::now();
    let breakdown = replanner::Breakdown { machines: vec![busiest], reported: broken_at };
    let automatic = replanner::check_and_repair(&store, &broken_at, &config, Some(breakdown), &mut memory)
        .map_err(anyhow::Error::msg)?;
    let breakdown_ms = timed.elapsed().as_secs_f64() * 1000.0;
    let rush_at = broken_at + time::Duration::minutes(1);
    let variant =
        store.orders(&store::OrderFilter::default(), store::PageRequest { after: None, limit: 1 })?.items[0]
            .variant_id;
    let rush = store.create_order(
        &model::NewOrder {
            number: "BENCH-RUSH".into(),
            customer: "Bench".into(),
            variant_id: variant,
            quantity: 20,
            due: rush_at + time::Duration::hours(8),
            priority: 10,
            material_ready: None,
        },
        rush_at,
    )?;
    store.set_order_status(rush.id, model::OrderStatus::Released)?;
    let timed = Instant::now();
    let rushed = replanner::check_and_repair(&store, &rush_at, &config, None, &mut memory)
        .map_err(anyhow::Error::msg)?;
    let rush_ms = timed.elapsed().as_secs_f64() * 1000.0;
    let rush_done = match &rushed {
        Some((plan, _)) => store
            .plan_operations(*plan, None)?
            .iter()
            .filter(|op| op.order_id == rush.id)
            .map(|op| op.end)
            .max()
            .map(|end| (end - rush_at).whole_minutes() as f64 / 60.0),
        None => None,
    };
    let timed = Instant::now();
    let idle = replanner::due(&store, rush_at, &config, None, &memory.slotted)?;
    let check_ms = timed.elapsed().as_secs_f64() * 1000.0;
    // The scheduled re-optimisation after those repairs, with the planner's budget.
    let reoptimise_at = rush_at + time::Duration::minutes(1);
    let config = server::PlanningConfig { reoptimise_time_limit_seconds: options.time_limit, ..config };
    memory.reoptimise = Some(reoptimise_at);
    let timed = Instant::now();
    let reoptimised = replanner::check_and_repair(&store, &reoptimise_at, &config, None, &mut memory)
        .map_err(anyhow::Error::msg)?;
    let reoptimise_s = timed.elapsed().as_secs_f64();
    let gained = match &reoptimised {
        Some((
            plan,
            model::PlanTrigger::Reoptimised { late_orders_before, weighted_tardiness_before, .. },
        )) => {
            let after = store.plan(*plan)?;
            format!(
                "published: late orders {late_orders_before} → {}, weighted tardiness {:.0} → {:.0} priority × h",
                after.late_orders,
                hours(*weighted_tardiness_before),
                hours(after.weighted_tardiness)
            )
        }
        Some((plan, trigger)) => format!("plan {plan} ({trigger:?})"),
        None => "nothing 1 % better; the repaired plan stays".into(),
    };
    bar.finish_and_clear();
    println!(
        "generated factory: {} orders, {operations} operations (lots split to fit shifts), {} machines, seed {}; build {build_ms:.0} ms",
        built.problem.jobs.len(),
        built.problem.machines.len(),
        options.factory.seed
    );
    println!("| schedule | time | valid | weighted tardiness (priority × h) | makespan (h) |");
    println!("| --- | ---: | --- | ---: | ---: |");
    println!(
        "| EDD dispatching | {edd_ms:.0} ms | {edd_valid} | {:.0} | {:.1} |",
        hours(edd_twt),
        hours(edd_makespan)
    );
    println!(
        "| ATCS dispatching | {atcs_ms:.0} ms | {atcs_valid} | {:.0} | {:.1} |",
        hours(atcs_twt),
        hours(atcs_makespan)
    );
    println!(
        "| solver's constructive start | {first_ms:.0} ms (+ {build_ms:.0} ms build) | {quick_valid} | {:.0} | {:.1} |",
        hours(quick.weighted_tardiness),
        hours(quick.makespan)
    );
    println!(
        "| first plan from the planner (time limit 0: build + ATCS) | {fast_ms:.0} ms | true | {:.0} | {:.1} |",
        hours(fast.weighted_tardiness),
        hours((fast.makespan_end - now).whole_seconds())
    );
    println!(
        "| optimised, {} s | {:.1} s | {optimised_valid} | {:.0} | {:.1} |",
        options.time_limit,
        optimised.elapsed.as_secs_f64(),
        hours(optimised.weighted_tardiness),
        hours(optimised.makespan)
    );
    println!(
        "| planner (search warm-started from the rules, {} threads), {} s | {planner_seconds:.1} s | true | {:.0} | {:.1} |",
        planning::solver_threads(),
        options.time_limit,
        hours(plan.weighted_tardiness),
        hours((plan.makespan_end - now).whole_seconds())
    );
    println!(
        "| repair after a breakdown (build + 250 ms solve) | {repair_ms:.0} ms | {repair_valid} | — | — |"
    );
    let published = |outcome: &Option<(i64, model::PlanTrigger)>| match outcome {
        Some((plan, trigger)) => format!("plan {plan} ({trigger:?})"),
        None => "nothing due".into(),
    };
    println!(
        "| automatic repair after the breakdown (right shift, stored, published) | {breakdown_ms:.0} ms | {} | — | — |",
        published(&automatic)
    );
    println!(
        "| automatic repair after a rush order (due in 8 h; planned to be done in {} h) | {rush_ms:.0} ms | {} | — | — |",
        rush_done.map_or("—".into(), |h| format!("{h:.1}")),
        published(&rushed)
    );
    println!(
        "| replanner check with nothing due (reads the whole plan) | {check_ms:.1} ms | {} | — | — |",
        if idle.is_none() { "nothing due" } else { "a repair is due" }
    );
    println!(
        "| scheduled re-optimisation after those repairs, {} s | {reoptimise_s:.1} s | {gained} | — | — |",
        options.time_limit
    );
    let factor =
        |baseline: i64, ours: i64| if ours > 0 { baseline as f64 / ours as f64 } else { f64::INFINITY };
    println!(
        "weighted tardiness: the planner's is {:.2}× lower than EDD's and {:.2}× lower than ATCS's; the cold search's {:.2}× and {:.2}×",
        factor(edd_twt, plan.weighted_tardiness),
        factor(atcs_twt, plan.weighted_tardiness),
        factor(edd_twt, optimised.weighted_tardiness),
        factor(atcs_twt, optimised.weighted_tardiness)
    );
    Ok(())
}

/// Options of `bench repairs`.
#[derive(Debug, Args)]
pub struct RepairsBench {
    /// Released orders of each generated factory (1 to 10000).
    #[arg(long, default_value_t = 120)]
    orders: usize,
    /// Machines of each generated factory (1 to 100).
    #[arg(long, default_value_t = 6)]
    machines: usize,
    /// Factories (seeds 1 to N; 1 to 100).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Solver time of each published plan, in seconds (0 to 600; 0 publishes the best dispatching
    /// rule's plan, the same on every run).
    #[arg(long, default_value_t = 2.0)]
    time_limit: f64,
    /// Solver time a repair may take when keeping every machine's order costs too much, in
    /// seconds (0.05 to 60; the default of `planning.repair_time_limit_seconds`).
    #[arg(long, default_value_t = 2.0)]
    repair_time_limit: f64,
}

/// The minutes after publishing at which `bench repairs` repairs.
const REPAIR_DELAYS: [i64; 3] = [1, 4, 10];

/// The times of day (minutes after 05:00, the generated factory working 06:00–22:00) at which
/// `bench repairs` publishes a plan.
const PUBLISH_MINUTES: [i64; 8] = [0, 97, 194, 291, 388, 485, 582, 679];

/// `bench repairs`: for each factory and time of day, a searched plan is published and repaired
/// 1, 4 and 10 minutes later with nothing started, as the replanner repairs (two hours frozen);
/// prints how far work moved and what it cost.
pub fn repairs(options: RepairsBench) -> anyhow::Result<()> {
    use server::planning;
    if !(1..=10_000).contains(&options.orders)
        || !(1..=100).contains(&options.machines)
        || !(1..=100).contains(&options.seeds)
    {
        bail!("--orders must be from 1 to 10000, --machines from 1 to 100 and --seeds from 1 to 100");
    }
    if !(0.0..=600.0).contains(&options.time_limit) || !(0.05..=60.0).contains(&options.repair_time_limit) {
        bail!("--time-limit must be from 0 to 600 seconds and --repair-time-limit from 0.05 to 60");
    }
    let start = time::macros::datetime!(2026-11-30 05:00 +08:00);
    let bar = indicatif::ProgressBar::new(options.seeds * PUBLISH_MINUTES.len() as u64);
    let mut rows = Vec::new();
    for seed in 1..=options.seeds {
        for minutes in PUBLISH_MINUTES {
            let now = start + time::Duration::minutes(minutes);
            let store = Store::open_in_memory()?;
            server::demo::seed_generated(&store, options.orders, options.machines, seed, start)?;
            let built = planning::build(&store, now, &planning::Options::default())?;
            let plan = planning::solve(
                &built,
                now,
                planning::DEFAULT_OBJECTIVE,
                Duration::from_secs_f64(options.time_limit),
                1,
            )
            .map_err(anyhow::Error::msg)?;
            let summary = store.create_plan(&plan)?;
            store.publish_plan(summary.id, now)?;
            let starts: std::collections::HashMap<_, _> =
                plan.operations.iter().map(|op| ((op.operation_id, op.part), op.start)).collect();
            for delay in REPAIR_DELAYS {
                let repair_options = planning::Options {
                    repair: Some(time::Duration::minutes(120)),
                    threads: 1,
                    ..planning::Options::default()
                };
                let timed = Instant::now();
                let repaired = planning::plan(
                    &store,
                    now + time::Duration::minutes(delay),
                    planning::DEFAULT_OBJECTIVE,
                    Duration::from_secs_f64(options.repair_time_limit),
                    &repair_options,
                )?;
                let took = timed.elapsed().as_secs_f64();
                let later: Vec<i64> = repaired
                    .operations
                    .iter()
                    .filter_map(|op| {
                        starts.get(&(op.operation_id, op.part)).map(|s| (op.start - *s).whole_seconds())
                    })
                    .collect();
                rows.push(RepairRow {
                    seed,
                    published: now,
                    delay,
                    operations: repaired.operations.len(),
                    far: later.iter().filter(|&&d| d > delay * 60 + 1800).count(),
                    earlier: later.iter().filter(|&&d| d < -60).count(),
                    latest_hours: later.iter().copied().max().unwrap_or(0) as f64 / 3600.0,
                    late: (plan.late_orders, repaired.late_orders),
                    twt: (plan.weighted_tardiness, repaired.weighted_tardiness),
                    seconds: took,
                });
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!(
        "{} orders, {} machines, seeds 1–{}; plans searched {} s on one thread; repairs with two hours frozen, \
         a search of up to {} s when keeping every machine's order costs more than 10 %",
        options.orders, options.machines, options.seeds, options.time_limit, options.repair_time_limit
    );
    println!();
    println!(
        "| seed | published | after | ops later by > delay + 30 min | ops earlier | most later | late orders | weighted tardiness | time |"
    );
    println!("|---:|---|---:|---:|---:|---:|---|---:|---:|");
    for row in &rows {
        let (hour, minute, _) = row.published.to_offset(time::macros::offset!(+08:00)).time().as_hms();
        println!(
            "| {} | {hour:02}:{minute:02} | {} min | {} of {} | {} | {:.1} h | {} → {} | {:+.1} % | {:.2} s |",
            row.seed,
            row.delay,
            row.far,
            row.operations,
            row.earlier,
            row.latest_hours,
            row.late.0,
            row.late.1,
            percent_change(row.twt.0, row.twt.1),
            row.seconds
        );
    }
    let repairs = rows.len();
    let far: usize = rows.iter().map(|row| row.far).sum();
    let operations: usize = rows.iter().map(|row| row.operations).sum();
    let more_late: i64 = rows.iter().map(|row| i64::from(row.late.1) - i64::from(row.late.0)).sum();
    let worse = rows.iter().filter(|row| row.late.1 > row.late.0).count();
    let slowest = rows.iter().map(|row| row.seconds).fold(0.0, f64::max);
    println!();
    println!(
        "{repairs} repairs: {far} of {operations} operations later by more than the delay and 30 min; \
         {more_late:+} late orders in all ({worse} repairs with more); slowest {slowest:.2} s"
    );
    Ok(())
}

/// One repair of `bench repairs`.
struct RepairRow {
    seed: u64,
    published: time::OffsetDateTime,
    delay: i64,
    operations: usize,
    far: usize,
    earlier: usize,
    latest_hours: f64,
    late: (u32, u32),
    twt: (i64, i64),
    seconds: f64,
}

/// `after` against `before`, in percent (0 when both are 0).
fn percent_change(before: i64, after: i64) -> f64 {
    match before {
        0 if after == 0 => 0.0,
        0 => f64::INFINITY,
        _ => (after - before) as f64 / before as f64 * 100.0,
    }
}

/// Options of `bench dashboard`.
#[derive(Debug, Args)]
pub struct DashboardBench {
    /// Machines of the generated factory (1 to 1000).
    #[arg(long, default_value_t = 50)]
    machines: usize,
    /// Open orders of the generated factory, at most 100000 (450 give about 2,000 planned
    /// operations).
    #[arg(long, default_value_t = 450)]
    orders: usize,
    /// Requests per page measured (1 to 100000).
    #[arg(long, default_value_t = 100)]
    requests: u32,
    /// Seed of the generated factory.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// After measuring, keep serving on this address (for the browser's Gantt bench in
    /// `tests/browser/gantt-bench.mjs`), printing the URL and a session token.
    #[arg(long, value_name = "ADDR")]
    hold: Option<SocketAddr>,
}

/// `bench dashboard`: a generated factory with a day of machine history, a published plan and
/// open alarms; prints the server time of each dashboard page (over HTTP on loopback, so the
/// figures include the request and response, not just the rendering).
pub fn dashboard(options: DashboardBench) -> anyhow::Result<()> {
    if !(1..=1_000).contains(&options.machines)
        || options.orders > 100_000
        || !(1..=100_000).contains(&options.requests)
    {
        bail!("--machines must be from 1 to 1000, --orders from 0 to 100000 and --requests from 1 to 100000");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let store = Store::open_in_memory()?;
    let token = server::auth::new_token()?;
    server::bootstrap(&store, Some(&token), now, false)?;
    server::demo::seed_generated(&store, options.orders, options.machines, options.seed, now)?;
    let bar = indicatif::ProgressBar::new(options.machines as u64);
    let machines = store
        .machines(&store::MachineFilter::default(), store::PageRequest { after: None, limit: 10_000 })?
        .items;
    let mut random = model::random::SplitMix::new(options.seed);
    let day_ago = now - time::Duration::hours(24);
    let states = [
        (model::MachineState::Running, None),
        (model::MachineState::Running, None),
        (model::MachineState::Running, None),
        (model::MachineState::Idle, Some("waiting for material")),
        (model::MachineState::Setup, Some("changeover")),
        (model::MachineState::Down, Some("breakdown")),
    ];
    for machine in &machines {
        let mut at = day_ago;
        while at < now {
            let (state, reason) = states[random.below(states.len() as u64) as usize];
            store.record_state(&model::StateChange {
                machine: machine.id,
                at,
                state,
                reason: reason.map(str::to_string),
            })?;
            let minutes = 5 + random.below(25) as i64;
            if state == model::MachineState::Running {
                store.record_production(&model::ProductionRecord {
                    machine: machine.id,
                    at: (at + time::Duration::minutes(minutes)).min(now),
                    operation: None,
                    good: 10 + random.below(20) as u32,
                    scrap: random.below(3) as u32,
                    ideal_unit_seconds: 50.0,
                    scrap_reason: None,
                })?;
            }
            at += time::Duration::minutes(minutes);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // A week of one reading a minute of ten metrics on the first machine, for its week view.
    let week = 7 * 24 * 60;
    let first = machines[0].id;
    let readings: Vec<model::Reading> = (0..week)
        .flat_map(|minute| {
            (0..10).map(move |metric| model::Reading {
                machine: first,
                metric: format!("metric_{metric}"),
                at: now - time::Duration::minutes(week - minute),
                value: 50.0 + 20.0 * (minute as f64 / 90.0 + f64::from(metric)).sin(),
            })
        })
        .collect();
    store.write_readings(&readings)?;
    let rule = store.create_alarm_rule(&model::alarm::NewAlarmRule {
        name: "bench temperature".into(),
        machine_id: None,
        site_id: None,
        metric: Some("temperature".into()),
        condition: model::alarm::Condition::Above { threshold: 80.0 },
        for_seconds: 0,
        deadband: 0.0,
        severity: model::alarm::Severity::Warning,
        enabled: true,
    })?;
    for machine in machines.iter().step_by(5) {
        store.raise_alarm(rule.id, machine.id, now, Some(85.0), "temperature above 80")?;
    }
    let built = server::planning::build(&store, now, &server::planning::Options::default())?;
    let plan = server::planning::solve(&built, now, "tardiness_then_makespan", Duration::ZERO, 1)
        .map_err(anyhow::Error::msg)?;
    let operations = plan.operations.len();
    let summary = store.create_plan(&plan)?;
    store.publish_plan(summary.id, now)?;

    let state = AppState::new(store, clock, server::ServerConfig::default(), server::AlarmConfig::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.hold.unwrap_or(([127, 0, 0, 1], 0).into())))?;
    let address = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = runtime.spawn(server::run(listener, state, server::RunOptions::default(), async {
        let _ = stop_rx.await;
    }));
    let cookie = format!("mf_session={token}; mf_lang=en");
    let pages = [
        ("/", "overview"),
        ("/plan", "plan (Gantt)"),
        ("/orders", "orders"),
        ("/machines/1?range=day", "machine (day)"),
        ("/machines/1?range=week", "machine (week)"),
        ("/alarms", "alarms"),
        ("/factory", "factory"),
        ("/products", "products"),
    ];
    println!(
        "dashboard bench: {} machines, {} open orders, {operations} planned operations, {} requests per page",
        machines.len(),
        options.orders,
        options.requests
    );
    println!("{:<16} {:>9} {:>9} {:>9} {:>9} {:>10}", "page", "p50 ms", "p95 ms", "max ms", "mean ms", "KiB");
    for (path, name) in pages {
        let mut times = Vec::with_capacity(options.requests as usize);
        let mut size = 0;
        for _ in 0..options.requests {
            let started = Instant::now();
            let (status, body) = get_page(address, path, &cookie)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != 200 {
                bail!("GET {path} answered {status}");
            }
            size = body;
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{name:<16} {:>9.2} {:>9.2} {:>9.2} {mean:>9.2} {:>10.1}",
            at(0.5),
            at(0.95),
            at(1.0),
            size as f64 / 1024.0
        );
    }
    if options.hold.is_some() {
        println!("serving url=http://{address} token={token}");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    let _ = stop_tx.send(());
    runtime.block_on(serve)??;
    Ok(())
}

/// One GET over a new connection; the status and the body's length.
fn get_page(address: SocketAddr, path: &str, cookie: &str) -> anyhow::Result<(u16, usize)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    Ok((status, body.len()))
}
