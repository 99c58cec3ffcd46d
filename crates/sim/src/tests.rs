//! Simulator tests on a manual timeline.

use model::{MachineId, MachineKind, MachineState, OperationId};
use time::macros::datetime;

use crate::*;

const START: Timestamp = datetime!(2026-11-24 09:00 UTC);

fn specs() -> Vec<MachineSpec> {
    vec![
        MachineSpec {
            id: MachineId(1),
            site: "hk".into(),
            code: "cnc-01".into(),
            kind: MachineKind::CncMill,
            rated_power_kw: 10.0,
            sparkplug: false,
        },
        MachineSpec {
            id: MachineId(2),
            site: "hk".into(),
            code: "imm-01".into(),
            kind: MachineKind::InjectionMoulding,
            rated_power_kw: 18.0,
            sparkplug: false,
        },
    ]
}

fn job(operation: i64, quantity: u32, family: &str) -> Job {
    Job {
        operation: OperationId(operation),
        quantity,
        unit_seconds: 30.0,
        setup_seconds: 600.0,
        family: family.into(),
    }
}

fn run(factory: &mut Factory, seconds: i64) -> Vec<Output> {
    let mut out = Vec::new();
    for s in 1..=seconds {
        out.extend(factory.advance_to(START + time::Duration::seconds(s)));
    }
    out
}

#[test]
fn operations_go_through_setup_then_run_and_finish_with_every_unit_counted() {
    let config = SimConfig { breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    let mut factory = Factory::new(specs(), config, START);
    factory.set_setup_family(0, "steel".into());
    factory.enqueue(0, job(1, 20, "alu"));
    factory.enqueue(0, job(2, 10, "alu"));
    factory.enqueue(0, job(3, 5, "steel"));
    // Total simulated work ≈ 3 × 600 s setup... the second job shares the family: 2 setups
    // (1,200 s) + 35 units × ~31 s ≈ 2,300 s simulated ≈ 40 real seconds at speed 60.
    let out = run(&mut factory, 60);
    // Units are counted as they are made (every five simulated minutes) and at the finish.
    let mut counted: Vec<(i64, u32)> = Vec::new();
    let mut finished = Vec::new();
    let mut reports = 0;
    for o in &out {
        let Output::Units { operation, good, finished: done, .. } = o else { continue };
        // Scrapped units are made again: each lot ends with its quantity of good units.
        let (operation, units) = (operation.0, *good);
        if *done {
            finished.push(operation);
        } else {
            reports += 1;
        }
        match counted.last_mut() {
            Some((last, sum)) if *last == operation => *sum += units,
            _ => counted.push((operation, units)),
        }
    }
    assert_eq!(finished, [1, 2, 3]);
    assert_eq!(counted, [(1, 20), (2, 10), (3, 5)]);
    assert!(reports >= 1, "the 20-unit lot runs for about ten simulated minutes and reports midway");
    let started: Vec<i64> = out
        .iter()
        .filter_map(|o| match o {
            Output::OperationStarted { operation, .. } => Some(operation.0),
            _ => None,
        })
        .collect();
    assert_eq!(started, [1, 2, 3], "each operation starts once, with its setup when it has one");
    let states: Vec<MachineState> = out
        .iter()
        .filter_map(|o| match o {
            Output::State { machine: 0, state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            MachineState::Idle,
            MachineState::Setup,
            MachineState::Running,
            MachineState::Setup,
            MachineState::Running,
            MachineState::Idle
        ]
    );
    assert_eq!(factory.machines()[0].state(), MachineState::Idle);
    // Telemetry flows for both machines; only the moulding machine reports gas.
    let gas = out.iter().filter(|o| matches!(o, Output::Reading { metric: "gas_ppm", .. })).count();
    let gas_on_cnc = out.iter().any(|o| matches!(o, Output::Reading { machine: 0, metric: "gas_ppm", .. }));
    assert!(gas >= 25 && !gas_on_cnc, "{gas}");
    let energy: Vec<f64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reading { machine: 0, metric: "energy_kwh", value, .. } => Some(*value),
            _ => None,
        })
        .collect();
    assert!(energy.windows(2).all(|w| w[1] >= w[0]), "the kWh meter only counts up");
    assert!(energy.last().unwrap() > energy.first().unwrap());
}

#[test]
fn the_same_seed_gives_the_same_factory() {
    let busy = |seed| {
        let mut factory = Factory::new(
            specs(),
            SimConfig { seed, breakdowns_per_hour: 2.0, incidents_per_hour: 1.0, ..SimConfig::default() },
            START,
        );
        for i in 0..20 {
            factory.enqueue((i % 2) as usize, job(i, 50, if i % 3 == 0 { "a" } else { "b" }));
        }
        run(&mut factory, 300)
    };
    assert_eq!(busy(7), busy(7));
    assert_ne!(busy(7), busy(8));
}

#[test]
fn wear_ends_in_a_failure_and_incidents_happen() {
    let config =
        SimConfig { speed: 600.0, breakdowns_per_hour: 0.0, incidents_per_hour: 0.5, ..SimConfig::default() };
    let mut factory = Factory::new(specs(), config, START);
    for i in 0..400 {
        factory.enqueue(0, job(i, 100, "alu"));
        factory.enqueue(1, job(1000 + i, 100, "pc"));
    }
    let out = run(&mut factory, 3600);
    let failures = out
        .iter()
        .filter(|o| matches!(o, Output::State { state: MachineState::Down, reason: Some(r), .. } if r == "bearing failure"))
        .count();
    assert!(failures >= 1, "600 simulated running hours must wear a bearing out");
    let leaks = out
        .iter()
        .filter(|o| matches!(o, Output::Reading { metric: "gas_ppm", value, .. } if *value > 50.0))
        .count();
    assert!(leaks > 0, "gas incidents happen on the moulding machine");
}

#[test]
fn outputs_encode_as_json_topic_messages_the_decoder_reads_back() {
    let config = SimConfig { breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    let mut factory = Factory::new(specs(), config, START);
    factory.enqueue(0, job(7, 3, "alu"));
    let outputs = run(&mut factory, 30);
    let messages = driver::Encoder::new(&factory).encode(&factory, &outputs);
    let mut decoder = ingest::Decoder::new(ingest::DecodeConfig::default());
    let mut decoded = ingest::Decoded::default();
    for message in &messages {
        decoder.decode(&message.topic, &message.payload, START + time::Duration::seconds(30), &mut decoded);
    }
    assert!(decoded.dropped.is_empty(), "{:?}", decoded.dropped);
    let readings = outputs.iter().filter(|o| matches!(o, Output::Reading { .. })).count();
    assert_eq!(decoded.readings.len(), readings);
    let finished = decoded
        .events
        .iter()
        .filter(|e| matches!(e.event, ingest::MachineEvent::OperationFinished { operation_id: 7, good, scrap, .. } if good + scrap == 3))
        .count();
    assert_eq!(finished, 1);
    assert!(messages.iter().all(|m| m.topic.starts_with("mf/v1/hk/")));
}

#[test]
fn scrapped_units_are_made_again_until_the_lot_is_good_or_hopeless() {
    let units = |scrap_rate: f64| {
        let config = SimConfig {
            breakdowns_per_hour: 0.0,
            incidents_per_hour: 0.0,
            scrap_rate,
            ..SimConfig::default()
        };
        let mut factory = Factory::new(specs(), config, START);
        factory.set_setup_family(0, "alu".into());
        factory.enqueue(0, job(1, 10, "alu"));
        let out = run(&mut factory, 60);
        let (mut good, mut scrap, mut finished) = (0, 0, false);
        for o in &out {
            if let Output::Units { good: g, scrap: s, finished: f, .. } = o {
                (good, scrap, finished) = (good + g, scrap + s, finished || *f);
            }
        }
        assert!(finished, "{out:?}");
        (good, scrap)
    };
    let (good, scrap) = units(0.4);
    assert_eq!(good, 10);
    assert!(scrap > 0, "at 40 % scrap some of 10 units are scrapped");
    // A machine scrapping everything gives up after twice the lot.
    assert_eq!(units(1.0), (0, 20));
}

#[test]
fn resumed_work_goes_first_and_outlives_a_new_hand_out() {
    let config = SimConfig { breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    let mut factory = Factory::new(specs(), config, START);
    factory.enqueue(0, job(1, 5, "alu"));
    // Lot 2 was under way before a restart: 3 units left, its setup done; lot 3 had every unit
    // counted and only needs finishing.
    factory.resume(0, Job { setup_seconds: 0.0, ..job(2, 3, "alu") });
    factory.resume(0, Job { setup_seconds: 0.0, ..job(3, 0, "alu") });
    assert!(factory.knows(OperationId(2)) && factory.knows(OperationId(3)));
    factory.clear_queues();
    assert!(!factory.knows(OperationId(1)), "the queue is handed out afresh");
    factory.enqueue(0, job(1, 5, "alu"));
    let out = run(&mut factory, 60);
    let events: Vec<(i64, bool, u32)> = out
        .iter()
        .filter_map(|o| match o {
            Output::OperationStarted { operation, .. } => Some((operation.0, false, 0)),
            Output::Units { operation, good, scrap, finished: true, .. } => {
                Some((operation.0, true, good + scrap))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [(2, false, 0), (2, true, 3), (3, false, 0), (3, true, 0), (1, false, 0), (1, true, 5)],
        "{out:?}"
    );
}

#[test]
fn sparkplug_machines_publish_births_then_data_the_decoder_reads_back() {
    let config = SimConfig { breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    let mut specs = specs();
    specs[1].sparkplug = true;
    let mut factory = Factory::new(specs, config, START);
    factory.set_setup_family(1, "abs".into());
    factory.enqueue(1, job(7, 3, "pp"));
    let mut encoder = driver::Encoder::new(&factory);
    let will = encoder.will().expect("a Sparkplug machine needs the node's death as the will");
    assert_eq!(will.topic, "spBv1.0/hk/NDEATH/sim-gw");
    assert_eq!(encoder.command_topic().as_deref(), Some("spBv1.0/hk/NCMD/sim-gw"));
    let mut decoder = ingest::Decoder::new(ingest::DecodeConfig::default());
    let mut decoded = ingest::Decoded::default();
    let mut topics = Vec::new();
    let mut readings = 0;
    let now = START + time::Duration::seconds(40);
    for step in 0..2 {
        let outputs = run(&mut factory, 20 * (step + 1));
        readings += outputs.iter().filter(|o| matches!(o, Output::Reading { .. })).count();
        for message in encoder.encode(&factory, &outputs) {
            topics.push(message.topic.clone());
            decoder.decode(&message.topic, &message.payload, now, &mut decoded);
        }
        // The platform asks for a rebirth between the two steps.
        let request = ingest::sparkplug::encode_rebirth_request("hk", driver::EDGE_NODE, now).unwrap();
        encoder.command(&request.topic, &request.payload);
    }
    assert!(decoded.dropped.is_empty(), "{:?}", decoded.dropped);
    assert_eq!(decoded.readings.len(), readings, "every reading of both machines, once");
    let of =
        |kind: &str| topics.iter().filter(|t| t.starts_with(&format!("spBv1.0/hk/{kind}/sim-gw"))).count();
    assert_eq!((of("NBIRTH"), of("DBIRTH")), (2, 2), "born once per session: {topics:?}");
    assert!(of("DDATA") > 10, "{topics:?}");
    // States go as metrics, with their reasons; the birth carries the state too.
    let states: Vec<(ingest::MachineState, Option<&str>)> = decoded
        .events
        .iter()
        .filter(|e| &*e.key.machine == "imm-01")
        .filter_map(|e| match &e.event {
            ingest::MachineEvent::StateChange { state, reason } => Some((*state, reason.as_deref())),
            _ => None,
        })
        .collect();
    assert!(states.contains(&(ingest::MachineState::Setup, Some("pp"))), "{states:?}");
    assert!(states.contains(&(ingest::MachineState::Running, None)), "{states:?}");

    assert!(topics.iter().any(|t| t == "mf/v1/hk/cnc-01/telemetry"), "the other machine stays on JSON");
    assert!(topics.iter().any(|t| t == "mf/v1/hk/imm-01/events"), "operation reports go as JSON events");
    assert!(
        decoded
            .events
            .iter()
            .any(|e| matches!(e.event, ingest::MachineEvent::OperationFinished { operation_id: 7, .. }))
    );
}

#[test]
fn on_a_clock_as_fast_as_the_machines_the_same_work_is_stamped_in_the_clock_s_time() {
    // The demo: the platform's clock runs 60 times as fast as real time, as do the machines. The
    // simulator then does exactly what it does against a real-time clock, stamped in the fast
    // clock's time, and a unit's ideal time is in the fast clock's seconds too.
    let config = SimConfig { breakdowns_per_hour: 1.0, incidents_per_hour: 1.0, ..SimConfig::default() };
    let mut real = Factory::new(specs(), config.clone(), START);
    let mut fast = Factory::new(specs(), SimConfig { clock_speed: 60.0, ..config }, START);
    for factory in [&mut real, &mut fast] {
        factory.enqueue(0, job(1, 20, "alu"));
        factory.enqueue(1, job(2, 10, "abs"));
    }
    let on_real = run(&mut real, 90);
    let mut on_fast = Vec::new();
    for s in 1..=90 {
        on_fast.extend(fast.advance_to(START + time::Duration::seconds(60 * s)));
    }
    let scaled = |at: Timestamp| START + (at - START) * 60;
    let expected: Vec<Output> = on_real
        .into_iter()
        .map(|output| match output {
            Output::Reading { machine, metric, value, at } => {
                Output::Reading { machine, metric, value, at: scaled(at) }
            }
            Output::State { machine, state, reason, at } => {
                Output::State { machine, state, reason, at: scaled(at) }
            }
            Output::OperationStarted { machine, operation, at } => {
                Output::OperationStarted { machine, operation, at: scaled(at) }
            }
            Output::Units { machine, operation, good, scrap, ideal_unit_seconds, finished, at } => {
                Output::Units {
                    machine,
                    operation,
                    good,
                    scrap,
                    ideal_unit_seconds: ideal_unit_seconds * 60.0,
                    finished,
                    at: scaled(at),
                }
            }
        })
        .collect();
    assert!(expected.iter().any(|o| matches!(o, Output::Units { finished: true, .. })));
    assert_eq!(on_fast, expected);
}

#[test]
fn no_lot_runs_faster_than_its_ideal_cycle_time() {
    // Performance (ideal time of the units made over the running time) never passes 100 %. In
    // real time, so that the simulator's steps do not round the running time up.
    let config =
        SimConfig { speed: 1.0, breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    // Small lots, where chance alone could make every unit quick.
    for seed in 0..40 {
        let mut factory = Factory::new(specs(), SimConfig { seed, ..config.clone() }, START);
        factory.enqueue(0, job(1, 3, "alu"));
        let out = run(&mut factory, 800);
        let started = out.iter().find_map(|o| match o {
            Output::State { state: MachineState::Running, at, .. } => Some(*at),
            _ => None,
        });
        let (mut ideal, mut finished) = (0.0, None);
        for o in &out {
            if let Output::Units { good, scrap, ideal_unit_seconds, finished: done, at, .. } = o {
                ideal += f64::from(good + scrap) * ideal_unit_seconds;
                if *done {
                    finished = Some(*at);
                }
            }
        }
        let running = (finished.expect("the lot finishes") - started.unwrap()).as_seconds_f64();
        assert!(ideal <= running, "seed {seed}: {ideal} s of ideal time in {running} s");
        assert!(ideal > 0.75 * running, "seed {seed}: {ideal} s of ideal time in {running} s");
    }
}

#[test]
fn a_machine_takes_its_first_job_without_a_setup_unless_it_is_set_up_for_another_family() {
    // As the planner assumes: a machine whose setup is unknown needs none for its first job.
    let config = SimConfig { breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    let states = |family: Option<&str>| {
        let mut factory = Factory::new(specs(), config.clone(), START);
        if let Some(family) = family {
            factory.set_setup_family(0, family.into());
        }
        factory.enqueue(0, job(1, 2, "alu"));
        run(&mut factory, 30)
            .into_iter()
            .filter_map(|o| match o {
                Output::State { machine: 0, state, .. } => Some(state),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    use MachineState::{Idle, Running, Setup};
    assert_eq!(states(None), [Idle, Running, Idle]);
    assert_eq!(states(Some("alu")), [Idle, Running, Idle]);
    assert_eq!(states(Some("steel")), [Idle, Setup, Running, Idle]);
}

#[test]
fn a_machine_a_person_stopped_makes_nothing_until_the_platform_says_it_runs() {
    let config = SimConfig { breakdowns_per_hour: 0.0, incidents_per_hour: 0.0, ..SimConfig::default() };
    let mut factory = Factory::new(specs(), config, START);
    factory.set_setup_family(0, "alu".into());
    factory.enqueue(0, job(1, 200, "alu"));
    let units = |out: &[Output]| -> u32 {
        out.iter()
            .map(|o| match o {
                Output::Units { machine: 0, good, scrap, .. } => good + scrap,
                _ => 0,
            })
            .sum()
    };
    fn step(factory: &mut Factory, second: &mut i64, seconds: i64) -> Vec<Output> {
        let mut out = Vec::new();
        for _ in 0..seconds {
            *second += 1;
            out.extend(factory.advance_to(START + time::Duration::seconds(*second)));
        }
        out
    }
    let mut second = 0;
    assert!(units(&step(&mut factory, &mut second, 30)) > 0, "it runs");
    // A person reports a stop at the station (after the machine's own last state).
    let stopped_at = START + time::Duration::seconds(second);
    assert!(factory.hold(&[(MachineId(1), stopped_at)]).is_empty());
    assert!(factory.machines()[0].held());
    let during = step(&mut factory, &mut second, 60);
    assert_eq!(units(&during), 0, "a stopped machine makes nothing");
    assert!(!during.iter().any(|o| matches!(o, Output::State { machine: 0, .. })), "nor says it runs");
    // A stop the platform has not yet seen end (older than the machine's own state) holds nothing.
    assert!(factory.hold(&[(MachineId(1), stopped_at), (MachineId(2), START)]).is_empty());
    assert!(factory.machines()[0].held());
    assert!(!factory.machines()[1].held());
    // Running again on the platform: released, it says so and goes on.
    let released = factory.hold(&[]);
    assert!(
        matches!(released[..], [Output::State { machine: 0, state: MachineState::Running, .. }]),
        "{released:?}"
    );
    assert!(units(&step(&mut factory, &mut second, 30)) > 0, "it runs again");
}
