//! The ingest pipeline: messages from MQTT (or HTTP) are decoded by `ingest`'s codecs, resolved
//! from site and machine codes to machines, checked against what the publisher may publish for,
//! batched, and written to the store in one transaction per batch. After a batch commits, its
//! readings go to the alarm engine and its state changes and production to the live stream.
//!
//! ```text
//! source ──Incoming──▶ decode task ──WriteBatch──▶ write task ──▶ store (one transaction)
//!   (bounded queue)     (codecs, resolve, batch)    (bounded)         └▶ alarms, live stream
//! ```
//!
//! Back-pressure, not unbounded queues: both queues are bounded and senders wait when they are
//! full, so a store that cannot keep up slows the MQTT connections down (TCP flow control) instead
//! of growing memory.
//!
//! Durability: a reading is *accepted* when its batch has committed. HTTP ingest answers only then,
//! and the embedded broker (or, for an external broker, the platform's own client) sends a QoS 1
//! PUBACK only then (the message's receipt is held until the commit). A batch the store refuses is
//! written again until it succeeds, still holding its receipts. QoS 0 messages have no
//! acknowledgement: a crash can lose those that arrived within the last [`FLUSH_EVERY`] or still
//! wait in the bounded queues (see README, Durability).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ingest::{DecodeConfig, Decoded, Decoder, Dropped, MachineEvent, MachineKey};
use model::{MachineId, MachineState, OperationId, Reading, SiteId, StateChange};
use store::{OperationEvent, OperationEventKind, WriteStats};
use tokio::sync::{mpsc, oneshot, watch};

use crate::AppState;
use crate::alarm_worker::AlarmInput;
use crate::live::LiveEvent;

/// Readings per write transaction at most.
pub const MAX_BATCH: usize = 20_000;
/// How long a batch may wait for more readings before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Messages waiting for the decoder at most.
pub const INCOMING_QUEUE: usize = 4096;
/// Batches waiting for the writer at most.
pub const WRITE_QUEUE: usize = 4;

/// A message from a source.
#[derive(Debug)]
pub struct Incoming {
    /// The MQTT topic (HTTP ingest makes up the equivalent JSON topic).
    pub topic: String,
    /// The raw payload.
    pub payload: Vec<u8>,
    /// Who sent it.
    pub publisher: Publisher,
    /// Held until the message's batch has committed, then released: the broker sends the QoS 1
    /// PUBACK only then, so an acknowledged MQTT message is a durable one. Dropped unreleased (the
    /// pipeline stopped with the message queued, or its batch unwritten), the broker's copy
    /// abandons the message: no PUBACK, and the publisher sends it again after reconnecting.
    pub receipt: Option<mqtt::Receipt>,
}

/// What a publisher may publish for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publisher {
    /// Any site: admins, the built-in simulator, an external broker the operator trusts.
    AnySite,
    /// One site only: a device account.
    Site(SiteId),
}

/// Work for the write task.
#[derive(Debug, Default)]
pub(crate) struct WriteBatch {
    pub(crate) readings: Vec<Reading>,
    pub(crate) states: Vec<StateChange>,
    pub(crate) operations: Vec<OperationEvent>,
    /// Sparkplug B sessions whose births changed: `(group, edge node, births or None once dead)`,
    /// stored before the batch, so a birth is kept once its message is acknowledged.
    pub(crate) sessions: Vec<(String, String, Option<String>)>,
    /// Told the outcome once the batch has committed or failed (an HTTP request waits for it).
    /// Such a batch is written once: a failure is the request's answer, and nothing of it stays.
    pub(crate) ack: Option<oneshot::Sender<Result<WriteStats, WriteError>>>,
    /// MQTT receipts of the batch's messages, released after the commit.
    pub(crate) receipts: Vec<mqtt::Receipt>,
}

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The store failed or refused it: a full disk, or a person's report that no longer fits the
    /// operation (`StoreError::Conflict`, see `store::OperationEvent::checked`).
    #[error("{0}")]
    Store(#[from] store::StoreError),
    /// The write itself did not finish (it panicked).
    #[error("the write did not finish: {0}")]
    Lost(String),
}

impl WriteBatch {
    /// Whether there is nothing to store.
    fn has_no_data(&self) -> bool {
        self.readings.is_empty()
            && self.states.is_empty()
            && self.operations.is_empty()
            && self.sessions.is_empty()
    }

    /// Whether there is nothing to store and nobody waits for it: a message whose contents were
    /// all dropped still holds a receipt, which goes through the write task in turn (so
    /// acknowledgements keep their order) and is released there.
    fn is_empty(&self) -> bool {
        self.has_no_data() && self.receipts.is_empty() && self.ack.is_none()
    }
}

/// The pipeline's queues, as held by [`AppState`].
#[derive(Clone)]
pub(crate) struct Queues {
    pub(crate) incoming: mpsc::Sender<Incoming>,
    pub(crate) writes: mpsc::Sender<WriteBatch>,
    /// True while the write task holds a batch it could not write (a full disk, say), so that
    /// HTTP ingest can answer at once instead of queueing behind it.
    pub(crate) failing: Arc<AtomicBool>,
}

/// The receiving ends, taken once when the workers start.
pub(crate) struct Receivers {
    pub(crate) incoming: mpsc::Receiver<Incoming>,
    pub(crate) writes: mpsc::Receiver<WriteBatch>,
}

pub(crate) fn queues() -> (Queues, Receivers) {
    let (incoming, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
    let (writes, writes_rx) = mpsc::channel(WRITE_QUEUE);
    let failing = Arc::default();
    (Queues { incoming, writes, failing }, Receivers { incoming: incoming_rx, writes: writes_rx })
}

impl AppState {
    /// Hands a message to the pipeline, waiting while its queue is full (back-pressure).
    pub async fn ingest(&self, message: Incoming) {
        if self.pipeline.incoming.send(message).await.is_err() {
            tracing::warn!("the ingest pipeline has stopped; message dropped");
        }
    }
}

/// Resolves `(site code, machine code)` to machines. Reads them again at once after sites or
/// machines changed (a code may now name another machine, or none), and on a miss at most once a
/// second, so machines created at run time are found without hammering the store.
pub(crate) struct Resolver {
    machines: HashMap<(Arc<str>, Arc<str>), (MachineId, SiteId)>,
    loaded: Option<Instant>,
    /// The store's [`store::Store::machine_keys_generation`] when `machines` was read.
    generation: u64,
}

impl Resolver {
    pub(crate) fn new() -> Resolver {
        Resolver { machines: HashMap::new(), loaded: None, generation: 0 }
    }

    pub(crate) fn resolve(&mut self, store: &store::Store, key: &MachineKey) -> Option<(MachineId, SiteId)> {
        let lookup = (key.site.clone(), key.machine.clone());
        let generation = store.machine_keys_generation();
        if generation != self.generation {
            self.machines.clear();
            self.loaded = None;
        }
        if let Some(found) = self.machines.get(&lookup) {
            return Some(*found);
        }
        if self.loaded.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        self.loaded = Some(Instant::now());
        self.generation = generation;
        match store.machine_keys() {
            Ok(keys) => {
                self.machines = keys
                    .into_iter()
                    .map(|(site, machine, id, site_id)| {
                        ((Arc::from(site), Arc::from(machine)), (id, site_id))
                    })
                    .collect();
            }
            Err(error) => tracing::warn!(%error, "cannot load machine codes"),
        }
        self.machines.get(&lookup).copied()
    }
}

fn model_state(state: ingest::MachineState) -> MachineState {
    match state {
        ingest::MachineState::Running => MachineState::Running,
        ingest::MachineState::Idle => MachineState::Idle,
        ingest::MachineState::Setup => MachineState::Setup,
        ingest::MachineState::Down => MachineState::Down,
        ingest::MachineState::PlannedStop => MachineState::PlannedStop,
        ingest::MachineState::Offline => MachineState::Offline,
    }
}

/// Derives machine states from metrics for machines with a [`model::StateRule`], remembering the
/// state each rule last derived so only changes are recorded. Shared by every source.
#[derive(Default)]
pub(crate) struct StateDeriver {
    rules: HashMap<MachineId, model::StateRule>,
    derived: HashMap<MachineId, MachineState>,
    loaded: bool,
}

impl StateDeriver {
    /// Forgets the rules; they are read again on the next reading.
    pub(crate) fn invalidate(&mut self) {
        self.loaded = false;
    }

    fn derive(&mut self, store: &store::Store, readings: &[Reading], out: &mut Vec<StateChange>) {
        if !self.loaded {
            match store.state_rules() {
                Ok(rules) => self.rules = rules.into_iter().collect(),
                Err(error) => tracing::warn!(%error, "cannot load state rules"),
            }
            self.derived.retain(|machine, _| self.rules.contains_key(machine));
            self.loaded = true;
        }
        if self.rules.is_empty() {
            return;
        }
        for reading in readings {
            let Some(rule) = self.rules.get(&reading.machine) else { continue };
            if rule.metric != reading.metric {
                continue;
            }
            let state = rule.state_for(reading.value);
            if self.derived.insert(reading.machine, state) != Some(state) {
                let reason = Some(format!("{} = {}", rule.metric, reading.value));
                out.push(StateChange { machine: reading.machine, at: reading.at, state, reason });
            }
        }
    }
}

/// Moves what a decoder produced into `batch`: resolves machines and enforces the publisher's
/// site. Returns why anything was dropped (one entry per dropped item), already counted in the
/// metrics.
pub(crate) fn collect(
    state: &AppState,
    resolver: &mut Resolver,
    publisher: Publisher,
    decoded: &mut Decoded,
    batch: &mut WriteBatch,
) -> Vec<&'static str> {
    // Input not stored by design (a string metric, a resend) is counted apart and not logged.
    let (skipped, dropped): (Vec<&Dropped>, Vec<&Dropped>) =
        decoded.dropped.iter().partition(|d| d.reason.is_skip());
    for skip in skipped {
        state.metrics.count_ingest_skip(skip.reason.as_str());
    }
    let mut drops: Vec<&'static str> = dropped.iter().map(|d| d.reason.as_str()).collect();
    if let Some(first) = dropped.first() {
        state.metrics.log_drop_limited(first.reason.as_str(), &first.detail);
    }
    // `quiet`: an unknown machine is no loss (a Sparkplug edge node that is a gateway, not a
    // machine, comes online and goes offline like its devices).
    let mut admit = |key: &MachineKey, quiet: bool| -> Option<MachineId> {
        let Some((machine, site)) = resolver.resolve(&state.store, key) else {
            if !quiet {
                drops.push("unknown_machine");
                // A machine code mistyped in a gateway shows up in the log, as a wrong site does.
                state.metrics.log_drop_limited_for(
                    "unknown_machine",
                    &key.to_string(),
                    &format!("no machine {key}: the topic's site and machine codes (Sparkplug: group and edge node or device id) name none"),
                );
            }
            return None;
        };
        if let Publisher::Site(allowed) = publisher
            && allowed != site
        {
            drops.push("not_permitted");
            return None;
        }
        Some(machine)
    };
    let first_new = batch.readings.len();
    for raw in decoded.readings.drain(..) {
        if let Some(machine) = admit(&raw.key, false) {
            batch.readings.push(Reading {
                machine,
                metric: raw.metric.to_string(),
                at: raw.at,
                value: raw.value,
            });
        }
    }
    state.state_deriver().derive(&state.store, &batch.readings[first_new..], &mut batch.states);
    for timed in decoded.events.drain(..) {
        let presence = matches!(timed.event, MachineEvent::Online | MachineEvent::Offline);
        let Some(machine) = admit(&timed.key, presence) else { continue };
        let at = timed.at;
        let change = |state, reason| StateChange { machine, at, state, reason };
        let operation = |id, kind| OperationEvent {
            operation: OperationId(id),
            machine,
            at,
            kind,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        match timed.event {
            MachineEvent::Online => batch.states.push(change(MachineState::Idle, Some("online".into()))),
            MachineEvent::Offline => batch.states.push(change(MachineState::Offline, None)),
            MachineEvent::StateChange { state, reason } => {
                batch.states.push(change(model_state(state), reason))
            }
            MachineEvent::Downtime { reason } => batch.states.push(change(MachineState::Down, Some(reason))),
            MachineEvent::OperationStarted { operation_id } => {
                batch.operations.push(operation(operation_id, OperationEventKind::Started))
            }
            MachineEvent::Produced { operation_id, good, scrap, ideal_unit_ms } => batch
                .operations
                .push(operation(operation_id, OperationEventKind::Produced { good, scrap, ideal_unit_ms })),
            MachineEvent::OperationFinished { operation_id, good, scrap, ideal_unit_ms } => batch
                .operations
                .push(operation(operation_id, OperationEventKind::Finished { good, scrap, ideal_unit_ms })),
        }
    }
    for reason in &drops {
        state.metrics.count_ingest_drop(reason);
    }
    drops
}

/// The decode task: runs until the incoming queue closes or `stop` turns true. What the codecs
/// want sent back (Sparkplug rebirth requests) goes to the MQTT side.
pub(crate) async fn decode(
    state: AppState,
    mut incoming: mpsc::Receiver<Incoming>,
    mut stop: watch::Receiver<bool>,
) {
    let mut decoder = Decoder::new(DecodeConfig::default());
    // Sparkplug sessions of the last run: data an external broker kept for the platform meanwhile
    // is read by their aliases.
    match state.store.sparkplug_sessions() {
        Ok(sessions) => {
            for (group, edge_node, births) in sessions {
                let stored = ingest::sparkplug::StoredSession { group, edge_node, births: Some(births) };
                if let Err(error) = decoder.sparkplug.restore(&stored) {
                    tracing::warn!(%error, group = %stored.group, node = %stored.edge_node, "a stored Sparkplug session does not read back; the node is asked for a rebirth");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read the stored Sparkplug sessions"),
    }
    let mut decoded = Decoded::default();
    let mut resolver = Resolver::new();
    let mut batch = WriteBatch::default();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = incoming.recv() => {
                let Some(message) = message else { break };
                state.metrics.count_ingest_message();
                decoded.clear();
                decoder.decode(&message.topic, &message.payload, state.clock.now(), &mut decoded);
                for stored in decoder.sparkplug.take_changed_sessions() {
                    batch.sessions.push((stored.group, stored.edge_node, stored.births));
                }
                for reply in decoded.replies.drain(..) {
                    state.publish_mqtt(reply);
                }
                // The store applies a batch's operation events before its readings, so readings
                // that arrived before an operation event are written first: a counter's rise
                // reported just before a lot's finish counts toward that lot (see
                // `store::Store::write_batch`).
                if !batch.readings.is_empty() && decoded.events.iter().any(|e| is_operation(&e.event)) {
                    send(&state, &mut batch).await;
                }
                collect(&state, &mut resolver, message.publisher, &mut decoded, &mut batch);
                batch.receipts.extend(message.receipt);
                if batch.readings.len() >= MAX_BATCH {
                    send(&state, &mut batch).await;
                }
            }
            _ = flush.tick() => {
                if !batch.is_empty() {
                    send(&state, &mut batch).await;
                }
            }
            _ = stop.changed() => break,
        }
    }
    if !batch.is_empty() {
        send(&state, &mut batch).await;
    }
}

/// Whether an event changes an order operation (and so may depend on readings before it).
fn is_operation(event: &MachineEvent) -> bool {
    matches!(
        event,
        MachineEvent::OperationStarted { .. }
            | MachineEvent::Produced { .. }
            | MachineEvent::OperationFinished { .. }
    )
}

async fn send(state: &AppState, batch: &mut WriteBatch) {
    let full = std::mem::take(batch);
    if state.pipeline.writes.send(full).await.is_err() {
        tracing::warn!("the store writer has stopped; batch dropped");
    }
}

/// The write task: one transaction per batch, in arrival order. When `done` turns true it writes
/// what is still queued and ends (the decode task has flushed by then; see [`crate::run`]).
pub(crate) async fn write(
    state: AppState,
    mut writes: mpsc::Receiver<WriteBatch>,
    mut done: watch::Receiver<bool>,
) {
    loop {
        // Checked on every turn, not only awaited: `changed` fires once, and a stop that came
        // while a batch was being retried has been seen already.
        if *done.borrow() {
            while let Ok(batch) = writes.try_recv() {
                write_one(&state, batch, None).await;
            }
            return;
        }
        let batch = tokio::select! {
            batch = writes.recv() => batch,
            _ = done.changed() => continue,
        };
        let Some(batch) = batch else { return };
        write_one(&state, batch, Some(&mut done)).await;
    }
}

/// The first pause before writing a failed batch again, and the longest.
const REWRITE_FIRST: Duration = Duration::from_secs(1);
const REWRITE_MAX: Duration = Duration::from_secs(30);

/// Writes one batch. A busy database is retried at once a few times. A batch an HTTP request
/// waits for is then done: the request is told the failure (a full disk, or a report the store
/// refused), and nothing of it is stored. Any other batch holds MQTT receipts: on a failure it
/// keeps them and is written again, after 1 s doubling to 30 s, until it succeeds: publishers get
/// no PUBACK for what is not stored, and the bounded queues hold the rest of the plant back
/// meanwhile. `done` (absent while shutting down) ends the retries; the receipts are then
/// dropped unreleased, so nothing unstored is acknowledged.
async fn write_one(state: &AppState, mut batch: WriteBatch, mut done: Option<&mut watch::Receiver<bool>>) {
    if batch.has_no_data() {
        if let Some(ack) = batch.ack.take() {
            let _ = ack.send(Ok(WriteStats::default()));
        }
        // Nothing to store: the receipts are released now, after every batch before them.
        batch.receipts.drain(..).for_each(mqtt::Receipt::release);
        return;
    }
    let started = Instant::now();
    let readings = Arc::new(std::mem::take(&mut batch.readings));
    let states = std::mem::take(&mut batch.states);
    let operations = std::mem::take(&mut batch.operations);
    let sessions = Arc::new(std::mem::take(&mut batch.sessions));
    let mut pause = REWRITE_FIRST;
    let stats = loop {
        let error = match write_batch(state, (&readings, &states, &operations), &sessions).await {
            Ok(stats) => {
                if let Some(ack) = batch.ack.take() {
                    let _ = ack.send(Ok(stats.clone()));
                }
                break stats;
            }
            Err(error) => error,
        };
        if let Some(ack) = batch.ack.take() {
            debug_assert!(batch.receipts.is_empty(), "a batch a request waits for holds no MQTT messages");
            if !matches!(&error, WriteError::Store(e) if matches!(e, store::StoreError::Conflict { .. } | store::StoreError::Invalid(_)))
            {
                state.metrics.count_ingest_write_failure();
                crate::error::log_storage_failure(&format!("a reported batch could not be written: {error}"));
            }
            let _ = ack.send(Err(error));
            return;
        }
        state.pipeline.failing.store(true, Ordering::Relaxed);
        state.metrics.count_ingest_write_failure();
        tracing::error!(%error, readings = readings.len(), retry_in_s = pause.as_secs(), "an ingest batch could not be written; holding its MQTT acknowledgements");
        let retry = match done.as_deref_mut() {
            Some(done) if !*done.borrow() => tokio::select! {
                _ = tokio::time::sleep(pause) => true,
                _ = done.changed() => false,
            },
            _ => false,
        };
        if !retry {
            tracing::error!(
                readings = readings.len(),
                "shutting down with an unwritten ingest batch; its MQTT messages stay unacknowledged"
            );
            // Dropped unreleased, the receipts abandon their messages.
            return;
        }
        pause = (pause * 2).min(REWRITE_MAX);
    };
    state.pipeline.failing.store(false, Ordering::Relaxed);
    state.metrics.count_ingest_written(stats.inserted as u64, started.elapsed());
    // A series keeps one reading per millisecond: a resent message, or a gateway that stamps
    // whole seconds and sends a second value in the same one, is counted, not lost unseen.
    if stats.duplicates > 0 {
        state.metrics.count_ingest_skips("same_millisecond", stats.duplicates as u64);
    }
    for refused in &stats.refused {
        let reason = refused.reason.as_str();
        state.metrics.count_ingest_drop(reason);
        let detail = format!("machine {} reported on operation {}", refused.machine.0, refused.operation.0);
        state.metrics.log_drop_limited(reason, &detail);
    }
    if stats.too_many_metrics > 0 {
        state.metrics.count_ingest_drops("too_many_metrics", stats.too_many_metrics as u64);
        let detail = format!("a machine has {} metrics already", store::MAX_METRICS_PER_MACHINE);
        state.metrics.log_drop_limited("too_many_metrics", &detail);
    }
    // Alarms judge what the store holds: a second value at a millisecond (not stored) changes none.
    let readings = if stats.not_stored.is_empty() {
        readings
    } else {
        let mut skipped = stats.not_stored.iter().peekable();
        let stored = readings
            .iter()
            .enumerate()
            .filter(|(position, _)| skipped.next_if_eq(&position).is_none())
            .map(|(_, reading)| reading.clone())
            .collect();
        Arc::new(stored)
    };
    if !readings.is_empty() {
        state.alarm_input(AlarmInput::Readings(readings));
    }
    for change in states {
        state.publish(LiveEvent::MachineState {
            machine_id: change.machine,
            state: change.state,
            since: crate::rfc3339(change.at),
            reason: change.reason.clone(),
        });
        state.alarm_input(AlarmInput::State(change));
    }
    // A start or a finish may put work off the plan: the replanner looks now, not at its next check.
    if operations.iter().any(|event| !matches!(event.kind, OperationEventKind::Produced { .. })) {
        state.wake_replanner();
    }
    // Units recorded, by reports (not resent or refused ones) and by count rules.
    for units in &stats.counted {
        state.publish(LiveEvent::Production {
            machine_id: units.machine,
            operation_id: units.operation,
            order_id: units.order,
            good: units.good,
            scrap: units.scrap,
            at: crate::rfc3339(units.at),
        });
    }
    // Only now may the brokers acknowledge these messages to their publishers.
    batch.receipts.drain(..).for_each(mqtt::Receipt::release);
}

/// One attempt at a batch (its Sparkplug sessions first), with a few quick retries while the
/// database is busy.
async fn write_batch(
    state: &AppState,
    (readings, states, operations): (&Arc<Vec<Reading>>, &[StateChange], &[OperationEvent]),
    sessions: &Arc<Vec<(String, String, Option<String>)>>,
) -> Result<WriteStats, WriteError> {
    let store = state.store.clone();
    let (r, s, o) = (readings.clone(), states.to_vec(), operations.to_vec());
    let sessions = sessions.clone();
    tokio::task::spawn_blocking(move || {
        let mut attempt = 0;
        loop {
            let written =
                store.save_sparkplug_sessions(&sessions).and_then(|()| store.write_batch(&r, &s, &[], &o));
            match written {
                Err(error) if error.is_retryable() && attempt < 3 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50 << attempt));
                }
                other => return other,
            }
        }
    })
    .await
    .map_err(|e| WriteError::Lost(e.to_string()))?
    .map_err(WriteError::Store)
}
