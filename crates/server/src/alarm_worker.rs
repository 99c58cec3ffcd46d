//! The alarm worker: one task owns the rule engine, fed by readings, state changes and a clock
//! tick; it stores what the engine raises and clears, and notifies the live stream and webhooks.

use std::sync::Arc;
use std::time::Duration;

use model::alarm::{Engine, Transition};
use model::{MachineId, Reading, StateChange};
use serde::{Deserialize, Serialize};
use store::{MachineFilter, PageRequest};
use tokio::sync::{mpsc, watch};

use crate::AppState;
use crate::live::LiveEvent;
use crate::webhook;

/// Settings of alarms and their notifications (the `[alarms]` section of the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmConfig {
    /// `http://` URLs that receive every alarm change as a JSON POST, retried with backoff.
    pub webhooks: Vec<String>,
    /// How often time-based conditions (delays, stale data, long stops) are checked, in seconds.
    pub tick_seconds: u64,
    /// A secret shared with the webhook receivers: each POST is signed with it
    /// (`X-Microfactory-Signature`), so a receiver can tell the platform's notifications from
    /// anyone else's on the network. At least 16 characters; never logged.
    pub webhook_secret: Option<webhook::Secret>,
}

impl Default for AlarmConfig {
    fn default() -> AlarmConfig {
        AlarmConfig { webhooks: Vec::new(), tick_seconds: 2, webhook_secret: None }
    }
}

/// What the worker is told.
#[derive(Debug)]
pub enum AlarmInput {
    /// Readings just stored.
    Readings(Arc<Vec<Reading>>),
    /// A machine changed state.
    State(StateChange),
    /// Rules were created, changed or deleted.
    RulesChanged,
    /// Alarms changed elsewhere (acknowledged, or cleared by a rule's edit or deletion), already
    /// stored and on the live stream: MQTT and the webhooks hear of them as of the worker's own.
    Changed(Vec<model::alarm::Alarm>),
}

/// How many inputs may wait for the worker; past that, inputs are dropped and counted rather
/// than slowing ingest down.
pub(crate) const ALARM_QUEUE: usize = 8192;

impl AppState {
    /// Tells MQTT and the webhooks of alarms changed outside the worker. A task waits for room in
    /// the worker's queue rather than drop them, so the caller (someone acknowledging an alarm
    /// during a storm) is answered at once.
    pub(crate) fn alarms_changed(&self, alarms: Vec<model::alarm::Alarm>) {
        if alarms.is_empty() {
            return;
        }
        let (inputs, metrics) = (self.alarm_inputs.clone(), self.metrics.clone());
        tokio::spawn(async move {
            if inputs.send(AlarmInput::Changed(alarms)).await.is_err() {
                metrics.count_dropped_alarm_input();
            }
        });
    }

    /// Hands an input to the alarm worker without waiting.
    pub fn alarm_input(&self, input: AlarmInput) {
        if self.alarm_inputs.try_send(input).is_err() {
            self.metrics.count_dropped_alarm_input();
        }
    }
}

/// Runs until `stop` turns true.
pub(crate) async fn run(
    state: AppState,
    mut inputs: mpsc::Receiver<AlarmInput>,
    mut stop: watch::Receiver<bool>,
) {
    let (store, now) = (state.store.clone(), state.clock.now());
    let loaded = tokio::task::spawn_blocking(move || {
        let rules = store.alarm_rules()?;
        let open = store.open_alarm_keys()?;
        let watched = Watched::load(&store)?;
        // A machine stopped now counts from when its stop began, however many reports (other
        // reasons, offline) came since.
        let states = current_states(&store, now)?
            .into_iter()
            .map(|(change, stop_began)| StateChange { at: stop_began.unwrap_or(change.at), ..change })
            .collect::<Vec<_>>();
        Ok::<_, store::StoreError>((rules, open, watched, states, store.latest_readings()?))
    })
    .await;
    let (rules, open, mut watched, states, latest) = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(error)) => return tracing::error!(%error, "alarm worker cannot load its rules"),
        Err(error) => return tracing::error!(%error, "alarm worker failed to start"),
    };
    let mut engine = Engine::new(rules, &open);
    engine.set_sites(watched.sites.clone());
    engine.resume(&states, &latest, state.clock.now());
    resume_delays(&state.store, &mut engine).await;
    let webhooks = webhook::spawn(
        state.alarms.webhooks.clone(),
        state.alarms.webhook_secret.clone(),
        state.metrics.clone(),
        stop.clone(),
    );
    let mut tick = tokio::time::interval(Duration::from_secs(state.alarms.tick_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut transitions = Vec::new();
    let mut lost = state.metrics.alarm_inputs_dropped();
    let mut last_tick = (state.clock.now(), std::time::Instant::now());
    loop {
        let input = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => Some(input),
                None => return,
            },
            _ = tick.tick() => {
                let now = (state.clock.now(), std::time::Instant::now());
                if let Some(step) = clock_step(last_tick, now, state.clock.speed()) {
                    tracing::warn!(
                        step_seconds = step.whole_seconds(),
                        "the system clock was stepped; alarms count silence from now"
                    );
                    engine.clock_stepped(now.0);
                }
                last_tick = now;
                watched.refresh(&state, &mut engine, &mut transitions).await;
                let dropped = state.metrics.alarm_inputs_dropped();
                if dropped != lost && catch_up(&state, &watched, &mut engine, &mut transitions).await {
                    lost = dropped;
                }
                refresh_maintenance(&state, &mut engine).await;
                engine.on_tick(state.clock.now(), &watched.machines, &mut transitions);
                None
            }
            _ = stop.changed() => return,
        };
        if input.is_some() {
            watched.refresh(&state, &mut engine, &mut transitions).await;
        }
        // What else is waiting goes into the same batch (up to a bound), so that a burst of
        // readings is one write to the store, not one per alarm change.
        let mut next = input;
        let mut taken = 0;
        while let Some(input) = next {
            match input {
                AlarmInput::Readings(readings) => {
                    let arrived = state.clock.now();
                    for reading in readings.iter().filter(|r| watched.contains(r.machine)) {
                        engine.on_reading_at(reading, arrived, &mut transitions);
                    }
                }
                AlarmInput::State(change) => {
                    if watched.contains(change.machine) {
                        engine.on_state(&change, &mut transitions);
                    }
                }
                AlarmInput::RulesChanged => {
                    let store = state.store.clone();
                    match tokio::task::spawn_blocking(move || store.alarm_rules()).await {
                        Ok(Ok(rules)) => engine.set_rules(rules, state.clock.now(), &mut transitions),
                        _ => tracing::warn!("alarm worker could not reload its rules; keeping the old ones"),
                    }
                }
                AlarmInput::Changed(alarms) => {
                    let store = state.store.clone();
                    match tokio::task::spawn_blocking(move || with_sites(&store, alarms)).await {
                        Ok(Ok(changed)) => notify(&state, changed, &webhooks, false),
                        _ => tracing::warn!(
                            "alarm worker could not tell MQTT and the webhooks of changed alarms"
                        ),
                    }
                }
            }
            taken += 1;
            next = if taken < BATCH_INPUTS && transitions.len() < BATCH_TRANSITIONS {
                inputs.try_recv().ok()
            } else {
                None
            };
        }
        if !transitions.is_empty() {
            apply(&state, std::mem::take(&mut transitions), &webhooks).await;
        }
    }
}

/// Gives the engine the machines' maintenance windows of the last week and ahead: a stop within
/// one is planned, not a long stop. Kept as they were when the store cannot be read.
async fn refresh_maintenance(state: &AppState, engine: &mut Engine) {
    let (store, now) = (state.store.clone(), state.clock.now());
    let since = model::oee::unix_ms(now - time::Duration::days(7));
    match tokio::task::spawn_blocking(move || store.maintenance(None, since)).await {
        Ok(Ok(windows)) => {
            let mut by_machine: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
            for window in windows {
                by_machine.entry(window.machine_id).or_default().push((window.start, window.end));
            }
            engine.set_maintenance(by_machine);
        }
        _ => tracing::debug!("alarm worker could not read the maintenance windows; it keeps those it had"),
    }
}

/// Each machine's current state report, with when its stop began for one that is stopped.
fn current_states(
    store: &store::Store,
    now: model::Timestamp,
) -> store::Result<Vec<(StateChange, Option<model::Timestamp>)>> {
    let mut states = Vec::new();
    for change in store.current_states(now)? {
        let stop_began = if matches!(change.state, model::MachineState::Down | model::MachineState::Offline) {
            store.stopped_since(change.machine, change.at)?
        } else {
            None
        };
        states.push((change, stop_began));
    }
    Ok(states)
}

/// After inputs were dropped (the queue was full): the rules, states and latest readings as the
/// store has them, so no rule edit, stop or value the engine missed stays unseen. False when the
/// store could not be read (the next tick tries again).
async fn catch_up(
    state: &AppState,
    watched: &Watched,
    engine: &mut Engine,
    out: &mut Vec<Transition>,
) -> bool {
    let (store, now) = (state.store.clone(), state.clock.now());
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, store::StoreError>((
            store.alarm_rules()?,
            current_states(&store, now)?,
            store.latest_readings()?,
        ))
    })
    .await;
    match read {
        Ok(Ok((rules, mut states, mut latest))) => {
            states.retain(|(change, _)| watched.contains(change.machine));
            latest.retain(|reading| watched.contains(reading.machine));
            tracing::warn!("alarm worker missed inputs (its queue was full); caught up with the store");
            engine.catch_up(rules, &states, &latest, state.clock.now(), out);
            true
        }
        _ => {
            tracing::warn!("alarm worker missed inputs and could not read the store to catch up");
            false
        }
    }
}

/// Starts again the delays that were running when the platform stopped, from the stored readings
/// (see [`Engine::running_delays`]).
async fn resume_delays(store: &store::Store, engine: &mut Engine) {
    /// Readings read back at a time.
    const PAGE: u32 = 10_000;
    for delay in engine.running_delays() {
        let mut newest = i64::MAX;
        loop {
            let (store, asked) = (store.clone(), delay.clone());
            let read = tokio::task::spawn_blocking(move || {
                let oldest = model::oee::unix_ms(asked.look_back_to);
                store.readings_back(asked.machine, &asked.metric, oldest, newest, PAGE)
            })
            .await;
            let page = match read {
                Ok(Ok(page)) => page,
                _ => {
                    tracing::warn!(
                        rule = delay.rule_id,
                        machine = delay.machine.0,
                        "alarm worker could not read back a series; its delay starts again with the next reading"
                    );
                    break;
                }
            };
            match engine.resume_delay(&delay, &page) {
                Some(before) if page.len() == PAGE as usize => newest = model::oee::unix_ms(before) - 1,
                _ => break,
            }
        }
    }
}

/// The machines the rules watch: those in service. Read again whenever machines change (created,
/// retired, put back in service, deleted); a machine that leaves has its alarms cleared.
struct Watched {
    /// In id order.
    machines: Vec<MachineId>,
    /// Each one's site, for the rules of one site's machines.
    sites: std::collections::HashMap<MachineId, model::SiteId>,
    /// The store's [`store::Store::machine_keys_generation`] when `machines` was read.
    generation: u64,
}

impl Watched {
    fn load(store: &store::Store) -> store::Result<Watched> {
        let generation = store.machine_keys_generation();
        let all = PageRequest { after: None, limit: 100_000 };
        let in_service = store.machines(&MachineFilter::IN_SERVICE, all)?.items;
        let sites = in_service.iter().map(|m| (m.id, m.site_id)).collect();
        let machines = in_service.into_iter().map(|m| m.id).collect();
        Ok(Watched { machines, sites, generation })
    }

    fn contains(&self, machine: MachineId) -> bool {
        self.machines.binary_search(&machine).is_ok()
    }

    async fn refresh(&mut self, state: &AppState, engine: &mut Engine, out: &mut Vec<Transition>) {
        if state.store.machine_keys_generation() == self.generation {
            return;
        }
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || Watched::load(&store)).await {
            Ok(Ok(now)) => {
                let at = state.clock.now();
                for &gone in self.machines.iter().filter(|m| !now.contains(**m)) {
                    engine.forget(gone, at, out);
                }
                *self = now;
                engine.set_sites(self.sites.clone());
            }
            _ => tracing::warn!("alarm worker could not read the machines again; watching the ones it knew"),
        }
    }
}

/// A difference between the clock's advance and real time's (at the clock's speed), from one
/// check to the next, beyond which the clock counts as stepped.
const CLOCK_STEP: time::Duration = time::Duration::seconds(5);

/// How far the clock was stepped between two readings of it and of the monotonic clock, if it
/// was (beyond [`CLOCK_STEP`]); `speed` is the clock's pace (see `model::Clock::speed`).
fn clock_step(
    last: (model::Timestamp, std::time::Instant),
    now: (model::Timestamp, std::time::Instant),
    speed: f64,
) -> Option<time::Duration> {
    let expected = last.0 + time::Duration::seconds_f64((now.1 - last.1).as_secs_f64() * speed);
    let step = now.0 - expected;
    (step.abs() > CLOCK_STEP).then_some(step)
}

/// At most this many inputs, or about this many alarm changes, go into one batch.
const BATCH_INPUTS: usize = 256;
const BATCH_TRANSITIONS: usize = 1000;

/// Stores a batch of alarm changes in one transaction, then tells the world about each.
async fn apply(state: &AppState, transitions: Vec<Transition>, webhooks: &webhook::Sender) {
    let store = state.store.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let alarms = store.apply_alarm_transitions(&transitions)?;
        with_sites(&store, alarms.into_iter().flatten().collect())
    })
    .await;
    match stored {
        Ok(Ok(changed)) => notify(state, changed, webhooks, true),
        Ok(Err(error)) => tracing::warn!(%error, "could not store alarm changes"),
        Err(error) => tracing::error!(%error, "alarm store task failed"),
    }
}

/// Each alarm with the code of its machine's site, which the MQTT topic names: one lookup per
/// machine.
fn with_sites(
    store: &store::Store,
    alarms: Vec<model::alarm::Alarm>,
) -> store::Result<Vec<(model::alarm::Alarm, String)>> {
    let mut sites: std::collections::HashMap<MachineId, String> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(alarms.len());
    for alarm in alarms {
        let site = match sites.get(&alarm.machine_id) {
            Some(code) => code.clone(),
            None => {
                let code = store.site(store.machine(alarm.machine_id)?.site_id)?.code;
                sites.insert(alarm.machine_id, code.clone());
                code
            }
        };
        out.push((alarm, site));
    }
    Ok(out)
}

/// Tells MQTT (`mf/v1/{site}/alarms`), the webhooks and, with `live`, the live stream of each
/// changed alarm.
fn notify(
    state: &AppState,
    changed: Vec<(model::alarm::Alarm, String)>,
    webhooks: &webhook::Sender,
    live: bool,
) {
    for (alarm, site) in changed {
        if let Ok(payload) = serde_json::to_vec(&alarm) {
            state.publish_mqtt(ingest::Outgoing {
                topic: format!("mf/v1/{site}/alarms"),
                payload,
                qos: 1,
                retain: false,
            });
        }
        tracing::info!(alarm = alarm.id, machine = %alarm.machine_id, status = alarm.status.as_str(), message = %alarm.message, "alarm");
        webhooks.send(&alarm);
        if live {
            state.publish(LiveEvent::Alarm { alarm });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clock_step;

    #[test]
    fn a_clock_step_is_told_from_the_clock_s_own_pace() {
        let (start, started) = (time::macros::datetime!(2026-11-24 09:00 UTC), std::time::Instant::now());
        let later = started + std::time::Duration::from_secs(2);
        let at = |seconds: i64| start + time::Duration::seconds(seconds);
        assert_eq!(clock_step((start, started), (at(2), later), 1.0), None);
        assert_eq!(clock_step((start, started), (at(122), later), 60.0), None, "the demo's clock");
        assert_eq!(clock_step((start, started), (at(602), later), 1.0), Some(time::Duration::minutes(10)));
        assert_eq!(clock_step((start, started), (at(-598), later), 1.0), Some(time::Duration::minutes(-10)));
        assert_eq!(clock_step((start, started), (at(2), later), 60.0), Some(time::Duration::seconds(-118)));
    }
}
