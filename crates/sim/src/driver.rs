//! Runs a [`Factory`] in real time and publishes what happens through an MQTT client with the
//! JSON topic codec, exactly as a gateway on the shop floor would: telemetry on
//! `mf/v1/{site}/{machine}/telemetry` (QoS 0), states and operation progress on
//! `mf/v1/{site}/{machine}/events` (QoS 1).

use std::sync::Arc;
use std::time::Duration;

use ingest::json::{encode_event, encode_telemetry};
use ingest::{MachineEvent, Outgoing};
use model::{Clock, MachineId, OperationId};
use mqtt::{Client, QoS};
use tokio::sync::watch;

use crate::{Factory, Job, Output};

/// An operation the factory may take on, with the machines that can do it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobOffer {
    /// The operation.
    pub operation: OperationId,
    /// Machines that may run it.
    pub eligible: Vec<MachineId>,
    /// Quantity, times and family.
    pub job: Job,
}

/// Where the simulator gets work from: called every few seconds; returns the operations ready
/// to start (the driver skips those it already has).
pub trait JobSource: Send + 'static {
    /// Operations ready to run.
    fn ready(&mut self) -> Vec<JobOffer>;

    /// Changes whenever the work should be handed out afresh (a new plan was published); the
    /// driver then drops the jobs queued but not started and asks again.
    fn revision(&mut self) -> Option<i64> {
        None
    }
}

/// How often the driver advances the factory and publishes.
const TICK: Duration = Duration::from_millis(500);
/// How often it asks for new work.
const JOB_POLL: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true or the connection fails for good.
pub async fn run(
    client: Client,
    mut factory: Factory,
    mut jobs: impl JobSource,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_poll: Option<tokio::time::Instant> = None;
    let mut revision = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if last_poll.is_none_or(|at| at.elapsed() >= JOB_POLL) {
            last_poll = Some(tokio::time::Instant::now());
            let current = jobs.revision();
            if current != revision {
                revision = current;
                factory.clear_queues();
            }
            for offer in jobs.ready() {
                if factory.knows(offer.operation) {
                    continue;
                }
                if let Some(machine) = factory.least_loaded(&offer.eligible) {
                    factory.enqueue(machine, offer.job);
                }
            }
        }
        let outputs = factory.advance_to(clock.now());
        for message in encode(&factory, &outputs) {
            let qos = if message.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
            if let Err(error) = client.publish(&message.topic, message.payload, qos, false).await {
                tracing::warn!(%error, "simulator lost its broker connection");
                return;
            }
        }
    }
    let _ = client.disconnect().await;
}

/// Readings of one machine at one sample time, waiting to become one telemetry message.
type Sample<'a> = Option<(usize, model::Timestamp, Vec<(&'a str, f64)>)>;

/// Turns outputs into MQTT messages: one telemetry message per machine and sample time.
pub fn encode(factory: &Factory, outputs: &[Output]) -> Vec<Outgoing> {
    let machines = factory.machines();
    let mut messages = Vec::new();
    let mut pending: Sample<'_> = None;
    let flush = |pending: &mut Sample<'_>, messages: &mut Vec<Outgoing>| {
        if let Some((machine, at, metrics)) = pending.take() {
            let spec = &machines[machine].spec;
            if let Ok(mut message) = encode_telemetry(&spec.site, &spec.code, at, &metrics) {
                message.qos = 0;
                messages.push(message);
            }
        }
    };
    for output in outputs {
        match output {
            Output::Reading { machine, metric, value, at } => {
                if pending.as_ref().is_some_and(|(m, t, _)| m != machine || t != at) {
                    flush(&mut pending, &mut messages);
                }
                pending.get_or_insert_with(|| (*machine, *at, Vec::new())).2.push((metric, *value));
            }
            other => {
                flush(&mut pending, &mut messages);
                let (machine, at, event) = match other {
                    Output::State { machine, state, reason, at } => (
                        *machine,
                        *at,
                        MachineEvent::StateChange { state: wire_state(*state), reason: reason.clone() },
                    ),
                    Output::OperationStarted { machine, operation, at } => {
                        (*machine, *at, MachineEvent::OperationStarted { operation_id: operation.0 })
                    }
                    Output::Units { machine, operation, good, scrap, ideal_unit_seconds, finished, at } => {
                        let (operation_id, good, scrap) = (operation.0, *good, *scrap);
                        let ideal_unit_ms = Some(MachineEvent::ideal_unit_ms(*ideal_unit_seconds));
                        let event = if *finished {
                            MachineEvent::OperationFinished { operation_id, good, scrap, ideal_unit_ms }
                        } else {
                            MachineEvent::Produced { operation_id, good, scrap, ideal_unit_ms }
                        };
                        (*machine, *at, event)
                    }
                    Output::Reading { .. } => continue,
                };
                let spec = &machines[machine].spec;
                if let Ok(message) = encode_event(&spec.site, &spec.code, Some(at), &event) {
                    messages.push(message);
                }
            }
        }
    }
    flush(&mut pending, &mut messages);
    messages
}

fn wire_state(state: model::MachineState) -> ingest::MachineState {
    match state {
        model::MachineState::Running => ingest::MachineState::Running,
        model::MachineState::Idle => ingest::MachineState::Idle,
        model::MachineState::Setup => ingest::MachineState::Setup,
        model::MachineState::Down => ingest::MachineState::Down,
        model::MachineState::Offline => ingest::MachineState::Offline,
        model::MachineState::PlannedStop => ingest::MachineState::PlannedStop,
    }
}
