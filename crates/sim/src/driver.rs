//! Runs a [`Factory`] in real time and publishes what happens through an MQTT client with the
//! platform's own codecs, exactly as a gateway on the shop floor would: telemetry on
//! `mf/v1/{site}/{machine}/telemetry` (QoS 0), states and operation progress on
//! `mf/v1/{site}/{machine}/events` (QoS 1). Machines marked [`MachineSpec::sparkplug`] send
//! their telemetry as Sparkplug B devices of one edge node, [`EDGE_NODE`], instead: births, data
//! by alias, their state as the `state` and `state_reason` metrics, the node's death as the MQTT
//! will, and a rebirth when the platform asks for one. Their operation progress still goes as JSON
//! events, as an operator's station would send it.
//!
//! [`MachineSpec::sparkplug`]: crate::MachineSpec::sparkplug

use std::sync::Arc;
use std::time::Duration;

use ingest::json::{encode_event, encode_telemetry};
use ingest::sparkplug::{self, EdgeNode, MetricValue};
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
    /// Operations ready to run at `now`, on the clock the factory runs on.
    fn ready(&mut self, now: model::Timestamp) -> Vec<JobOffer>;

    /// The machines stopped on the platform (down or in a planned stop), with since when. Those a
    /// person stopped (a stop reported at the station) the simulator holds until the platform
    /// says they run again (see [`Factory::hold`]).
    fn stopped(&mut self) -> Vec<(MachineId, model::Timestamp)> {
        Vec::new()
    }

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
    let mut encoder = Encoder::new(&factory);
    let mut commands = match encoder.command_topic() {
        Some(topic) => match client.subscribe(&topic, QoS::AtMostOnce).await {
            Ok(subscription) => Some(subscription),
            Err(error) => {
                tracing::warn!(%error, "simulator cannot listen for Sparkplug rebirth requests");
                None
            }
        },
        None => None,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_poll: Option<tokio::time::Instant> = None;
    // States of machines released from a hold, reported with the next outputs.
    let mut held = Vec::new();
    let mut revision = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            command = async { commands.as_mut()?.recv().await }, if commands.is_some() => {
                match command {
                    Some(command) => encoder.command(&command.topic, &command.payload),
                    None => commands = None,
                }
                continue;
            }
            _ = stop.changed() => break,
        }
        if last_poll.is_none_or(|at| at.elapsed() >= JOB_POLL) {
            last_poll = Some(tokio::time::Instant::now());
            let current = jobs.revision();
            if current != revision {
                revision = current;
                factory.clear_queues();
            }
            held = factory.hold(&jobs.stopped());
            for offer in jobs.ready(clock.now()) {
                if factory.knows(offer.operation) {
                    continue;
                }
                if let Some(machine) = factory.least_loaded(&offer.eligible) {
                    factory.enqueue(machine, offer.job);
                }
            }
        }
        let mut outputs = std::mem::take(&mut held);
        outputs.extend(factory.advance_to(clock.now()));
        for message in encoder.encode(&factory, &outputs) {
            let qos = QoS::publish_level(message.qos);
            if let Err(error) = client.publish(&message.topic, message.payload, qos, false).await {
                tracing::warn!(%error, "simulator lost its broker connection");
                return;
            }
        }
    }
    let _ = client.disconnect().await;
}

/// The Sparkplug B edge node the simulated Sparkplug machines hang off (the group is the site).
pub const EDGE_NODE: &str = "sim-gw";

/// Readings of one machine at one sample time, waiting to become one telemetry message.
type Sample<'a> = Option<(usize, model::Timestamp, Vec<(&'a str, f64)>)>;

/// Turns a factory's outputs into MQTT messages, remembering the Sparkplug session: the edge
/// node's sequence numbers and aliases, and which devices have been born.
pub struct Encoder {
    /// The edge node, when some machine speaks Sparkplug B, and its group (the site code).
    edge: Option<EdgeNode>,
    site: String,
    node_born: bool,
    /// Per machine: whether its DBIRTH went out in this session.
    born: Vec<bool>,
    /// Per machine: its state and reason as of the outputs encoded so far, for its births.
    states: Vec<Option<(model::MachineState, Option<String>)>>,
}

impl Encoder {
    /// An encoder for `factory`'s machines, before anything was published.
    pub fn new(factory: &Factory) -> Encoder {
        let machines = factory.machines();
        let site =
            machines.iter().find(|m| m.spec.sparkplug).map(|m| m.spec.site.clone()).unwrap_or_default();
        let edge = (!site.is_empty()).then(|| EdgeNode::new(&site, EDGE_NODE, 0).ok()).flatten();
        let n = machines.len();
        Encoder { edge, site, node_born: false, born: vec![false; n], states: vec![None; n] }
    }

    /// The edge node's death certificate, to register as the MQTT will before connecting.
    pub fn will(&self) -> Option<Outgoing> {
        self.edge.as_ref().map(EdgeNode::will)
    }

    /// The topic on which the platform sends the edge node commands (rebirth requests).
    pub fn command_topic(&self) -> Option<String> {
        self.edge.as_ref()?;
        let site = &self.site;
        sparkplug::topic(site, sparkplug::MessageType::NCmd, EDGE_NODE, None).ok()
    }

    /// Takes a command for the edge node: after a rebirth request every birth goes out again
    /// with the next telemetry.
    pub fn command(&mut self, topic: &str, payload: &[u8]) {
        if self.edge.as_ref().is_some_and(|edge| edge.is_rebirth_request(topic, payload)) {
            self.node_born = false;
            self.born.fill(false);
        }
    }

    /// The messages for `outputs`: one telemetry message per machine and sample time, one event
    /// message per state change or operation report.
    pub fn encode(&mut self, factory: &Factory, outputs: &[Output]) -> Vec<Outgoing> {
        let machines = factory.machines();
        let mut messages = Vec::new();
        let mut pending: Sample<'_> = None;
        for output in outputs {
            match output {
                Output::Reading { machine, metric, value, at } => {
                    if pending.as_ref().is_some_and(|(m, t, _)| m != machine || t != at) {
                        self.flush(factory, pending.take(), &mut messages);
                    }
                    pending.get_or_insert_with(|| (*machine, *at, Vec::new())).2.push((metric, *value));
                }
                Output::State { machine, state, reason, at } if self.speaks_sparkplug(factory, *machine) => {
                    self.flush(factory, pending.take(), &mut messages);
                    self.states[*machine] = Some((*state, reason.clone()));
                    self.sparkplug_state(factory, *machine, *at, *state, reason.as_deref(), &mut messages);
                }
                other => {
                    self.flush(factory, pending.take(), &mut messages);
                    let (machine, at, event) = match other {
                        Output::State { machine, state, reason, at } => (
                            *machine,
                            *at,
                            MachineEvent::StateChange { state: wire_state(*state), reason: reason.clone() },
                        ),
                        Output::OperationStarted { machine, operation, at } => {
                            (*machine, *at, MachineEvent::OperationStarted { operation_id: operation.0 })
                        }
                        Output::Units {
                            machine,
                            operation,
                            good,
                            scrap,
                            ideal_unit_seconds,
                            finished,
                            at,
                        } => {
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
        self.flush(factory, pending, &mut messages);
        messages
    }

    /// Whether machine `index` sends through the edge node.
    fn speaks_sparkplug(&self, factory: &Factory, index: usize) -> bool {
        self.edge.is_some() && factory.machines()[index].spec.sparkplug
    }

    /// A Sparkplug machine's state change as data: its `state` and `state_reason` metrics. A
    /// device not born yet sends nothing: its birth carries its state.
    fn sparkplug_state(
        &mut self,
        factory: &Factory,
        index: usize,
        at: model::Timestamp,
        state: model::MachineState,
        reason: Option<&str>,
        messages: &mut Vec<Outgoing>,
    ) {
        let (Some(edge), true) = (self.edge.as_mut(), self.born[index]) else { return };
        let code = &factory.machines()[index].spec.code;
        match edge.device_data(code, at, &state_metrics(state, reason)) {
            Ok(data) => messages.push(data),
            Err(error) => {
                tracing::warn!(%error, machine = %code, "simulated Sparkplug device cannot send its state")
            }
        }
    }

    /// One machine's sample as a message: JSON telemetry, or Sparkplug data (after the births it
    /// needs).
    fn flush(&mut self, factory: &Factory, sample: Sample<'_>, messages: &mut Vec<Outgoing>) {
        let Some((machine, at, metrics)) = sample else { return };
        let spec = &factory.machines()[machine].spec;
        let Some(edge) = self.edge.as_mut().filter(|_| spec.sparkplug) else {
            if let Ok(mut message) = encode_telemetry(&spec.site, &spec.code, at, &metrics) {
                message.qos = 0;
                messages.push(message);
            }
            return;
        };
        if !self.node_born {
            match edge.birth(at, &[]) {
                Ok(birth) => messages.push(birth),
                Err(error) => {
                    tracing::warn!(%error, "simulated edge node cannot be born");
                    return;
                }
            }
            self.node_born = true;
            self.born.fill(false);
        }
        let mut values: Vec<(&str, MetricValue)> =
            metrics.iter().map(|(name, value)| (*name, MetricValue::Double(*value))).collect();
        // A metric the device's birth did not name needs a new birth, as does a device not born.
        if self.born[machine]
            && let Ok(data) = edge.device_data(&spec.code, at, &values)
        {
            messages.push(data);
            return;
        }
        // The birth carries the state too: it says "online" (idle to the platform) and then, in
        // the same message, what the machine is really doing.
        let sim = &factory.machines()[machine];
        let (state, reason) = match &self.states[machine] {
            Some((state, reason)) => (*state, reason.as_deref()),
            None => (sim.state(), sim.reason()),
        };
        values.extend(state_metrics(state, reason));
        match edge.device_birth(&spec.code, at, &values) {
            Ok(birth) => {
                self.born[machine] = true;
                messages.push(birth);
            }
            Err(error) => {
                tracing::warn!(%error, machine = %spec.code, "simulated Sparkplug device cannot be born")
            }
        }
    }
}

/// A machine state as the Sparkplug metrics the platform reads: `state`, and `state_reason`
/// (empty for none).
fn state_metrics(state: model::MachineState, reason: Option<&str>) -> [(&'static str, MetricValue); 2] {
    [
        ("state", MetricValue::String(state.as_str().to_string())),
        ("state_reason", MetricValue::String(reason.unwrap_or_default().to_string())),
    ]
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
