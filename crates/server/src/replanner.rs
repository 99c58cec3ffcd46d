//! Automatic repair re-planning. The active plan is repaired (near-term work frozen, every
//! machine keeping the order of its work) and the repair published, so dispatch lists and the
//! shop floor follow at once, when:
//! - a machine with work in the plan breaks down (it is taken out for the expected repair time);
//! - a machine the plan took out so runs again (its work moves back to when it can now happen);
//! - a released order of rush priority is missing from the plan, or was raised to rush priority
//!   since it was made (it is slotted in ahead of all work not running or frozen);
//! - other released orders are missing from a plan `new_order_minutes` old (they are slotted in);
//! - a lot starts on another of its machines than the plan has it on;
//! - work runs off the plan, late or early, by more than `deviation_minutes` (everything after it
//!   moves to where it can now happen), at most once per `repair_interval_minutes`.
//!
//! Repairs never re-order work, so at the times of day of `reoptimise_at` the plan is also searched
//! afresh and the result published when it is clearly better (see [`planning::reoptimise`]).
//!
//! On by default; see [`PlanningConfig`]. Each automatic plan says in its `trigger` why it was made.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use model::{Clock, MachineId, OrderId, PlanSummary, PlanTrigger, Timestamp};
use serde::{Deserialize, Serialize};
use store::Store;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::live::LiveEvent;
use crate::planning::progress;
use crate::{AppState, planning};

/// Planning settings (the `[planning]` section of the config file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanningConfig {
    /// Repair and publish the active plan automatically (on the triggers below and breakdowns).
    pub auto_replan: bool,
    /// Solver time of an automatic repair, in seconds.
    pub repair_time_limit_seconds: f64,
    /// Operations the active plan starts within this many minutes keep their place in a repair.
    pub freeze_minutes: u32,
    /// A repair that keeps every machine's order but leaves the plan more than this much worse
    /// than the active one (weighted tardiness, or the end for the makespan objective; percent)
    /// searches from that order for `repair_time_limit_seconds`, and takes the search's plan when
    /// it is this much better (0: never).
    pub repair_search_loss_percent: f64,
    /// How long a broken-down machine is expected to stay down, in minutes.
    pub expected_repair_minutes: u32,
    /// Repair when work runs this many minutes off the active plan, late or early (0: never).
    pub deviation_minutes: u32,
    /// A repair for work off the plan waits at least this many minutes after the last publish.
    pub repair_interval_minutes: u32,
    /// Released orders of this priority or more that the active plan lacks are slotted in by a
    /// repair at once (0: never).
    pub rush_priority: u8,
    /// Other released orders that the active plan lacks are slotted in by a repair once the
    /// active plan is this many minutes old, so that several released together make one repair
    /// and none waits longer (0: never; they wait for the next repair).
    pub new_order_minutes: u32,
    /// Solver threads of every plan and repair; 0 picks two where the machine has two cores.
    pub solver_threads: usize,
    /// Times of day ("HH:MM", the site's local time) of the scheduled re-optimisation: a full
    /// search over all open work, published when it beats the active plan (empty: never).
    pub reoptimise_at: Vec<String>,
    /// Solver time of a scheduled re-optimisation, in seconds.
    pub reoptimise_time_limit_seconds: f64,
    /// A re-optimised plan is published only when it is at least this much better, in percent.
    pub reoptimise_min_gain_percent: f64,
}

impl PlanningConfig {
    /// The repair time limits accepted, in seconds; the config file is checked against them.
    pub const REPAIR_TIME_LIMITS: std::ops::RangeInclusive<f64> = 0.05..=60.0;
    /// The minutes accepted for the freeze, the expected repair, the deviation, the interval and
    /// the wait of new orders.
    pub const MINUTES: std::ops::RangeInclusive<u32> = 0..=10_080;
    /// The rush priorities accepted (order priorities run from 1 to 10; 0 turns it off).
    pub const RUSH_PRIORITIES: std::ops::RangeInclusive<u8> = 0..=10;
    /// The re-optimisation time limits accepted, in seconds.
    pub const REOPTIMISE_TIME_LIMITS: std::ops::RangeInclusive<f64> = 1.0..=600.0;
    /// The minimum gains accepted, in percent.
    pub const MIN_GAINS: std::ops::RangeInclusive<f64> = 0.0..=50.0;
    /// The losses accepted before a repair searches, in percent.
    pub const SEARCH_LOSSES: std::ops::RangeInclusive<f64> = 0.0..=1000.0;

    /// [`PlanningConfig::reoptimise_at`] as minutes after local midnight, sorted; the error names
    /// the first entry that is not a time of day "HH:MM" or that repeats one.
    pub fn reoptimise_minutes(&self) -> Result<Vec<u32>, String> {
        let mut minutes = Vec::with_capacity(self.reoptimise_at.len());
        for text in &self.reoptimise_at {
            let parsed = text
                .split_once(':')
                .filter(|(h, m)| {
                    let digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
                    digits(h) && digits(m)
                })
                .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|&(h, m)| h < 24 && m < 60)
                .map(|(h, m)| h * 60 + m);
            match parsed {
                Some(minute) if !minutes.contains(&minute) => minutes.push(minute),
                Some(_) => return Err(format!("{text:?} is given twice")),
                None => return Err(format!("{text:?} is not a time of day such as \"05:30\"")),
            }
        }
        minutes.sort_unstable();
        Ok(minutes)
    }

    /// [`PlanningConfig::solver_threads`] resolved: 0 becomes [`planning::solver_threads`], and
    /// more than [`MAX_SOLVER_THREADS`] is capped.
    pub fn threads(&self) -> usize {
        match self.solver_threads {
            0 => planning::solver_threads(),
            n => n.min(MAX_SOLVER_THREADS),
        }
    }

    /// How an automatic repair plans: the freeze, the expected repair time, the threads, the rush
    /// priority and the search loss these settings give.
    pub fn repair_options(&self) -> planning::Options {
        planning::Options {
            repair: Some(time::Duration::minutes(i64::from(self.freeze_minutes))),
            down_for: time::Duration::minutes(i64::from(self.expected_repair_minutes)),
            threads: self.threads(),
            rush_priority: self.rush_priority,
            search_loss_percent: self.repair_search_loss_percent,
        }
    }

    /// The solver time of an automatic repair, within [`PlanningConfig::REPAIR_TIME_LIMITS`].
    pub fn repair_time_limit(&self) -> Duration {
        seconds(self.repair_time_limit_seconds, PlanningConfig::REPAIR_TIME_LIMITS)
    }
}

/// Most solver threads a plan may use.
pub const MAX_SOLVER_THREADS: usize = scheduler::MAX_THREADS;

impl Default for PlanningConfig {
    fn default() -> PlanningConfig {
        PlanningConfig {
            auto_replan: true,
            repair_time_limit_seconds: 2.0,
            freeze_minutes: 60,
            repair_search_loss_percent: planning::REPAIR_SEARCH_LOSS_PERCENT,
            expected_repair_minutes: 60,
            deviation_minutes: 30,
            repair_interval_minutes: 10,
            rush_priority: 8,
            new_order_minutes: 15,
            solver_threads: 0,
            reoptimise_at: vec!["05:00".into()],
            reoptimise_time_limit_seconds: 30.0,
            reoptimise_min_gain_percent: 1.0,
        }
    }
}

/// Breakdowns arriving within this window are handled by one repair.
const DEBOUNCE: Duration = Duration::from_secs(3);
/// How often the plan is compared with the shop floor when nothing wakes the replanner sooner.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Runs until `stop` turns true. Wakes on breakdowns, on [`AppState::wake_replanner`] (orders
/// and operations changed through the API) and every [`CHECK_EVERY`].
pub(crate) async fn run(state: AppState, config: PlanningConfig, mut stop: watch::Receiver<bool>) {
    let mut events = state.live.subscribe();
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A re-optimisation time is looked for every second, which on the demo's fast clock is much
    // less than `CHECK_EVERY` of factory time.
    let mut slot_tick = tokio::time::interval(Duration::from_secs(1));
    slot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Machines that broke down before the replanner subscribed are found by the first check.
    let mut memory = Memory { missed_events: true, ..Memory::default() };
    // The config file is validated; a bad time is dropped with the others rather than panicking.
    let schedule = config.reoptimise_minutes().unwrap_or_default();
    let slot = |now| latest_slot(now, &schedule, &crate::site_zone(&state.store));
    // A re-optimisation time passed before the start is not made up for.
    let mut last_slot = slot(state.clock.now());
    // After a failed repair, only breakdowns are tried until then, so a repair that keeps failing
    // is not retried (and logged) at every check.
    let mut quiet_until: Option<Timestamp> = None;
    // Machines reported down since the start: another state from one of them is a recovery.
    let mut down: HashSet<MachineId> = HashSet::new();
    let mut recovered: Vec<MachineId> = Vec::new();
    loop {
        let mut slot_only = false;
        let mut breakdown = tokio::select! {
            event = events.recv() => match event.map(crate::Stamped::into_event) {
                Ok(LiveEvent::MachineState { machine_id, state: model::MachineState::Down, .. }) => {
                    down.insert(machine_id);
                    Some(Breakdown { machines: vec![machine_id], reported: state.clock.now() })
                }
                Ok(LiveEvent::MachineState { machine_id, .. }) if down.remove(&machine_id) => {
                    recovered.push(machine_id);
                    None
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the replanner fell behind the live stream; it reads the machines' states");
                    memory.missed_events = true;
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            () = state.replan_wake.notified() => None,
            _ = every.tick() => None,
            _ = slot_tick.tick() => {
                slot_only = true;
                None
            }
            _ = stop.changed() => return,
        };
        let current_slot = slot(state.clock.now());
        if current_slot != last_slot {
            last_slot = current_slot;
            memory.reoptimise = current_slot;
        } else if slot_only {
            continue;
        }
        if let Some(breakdown) = &mut breakdown {
            // The breakdowns of the next few seconds make one repair (it reads every machine's
            // state); other events go, as the loop ignores them.
            tokio::time::sleep(DEBOUNCE).await;
            loop {
                match events.try_recv().map(crate::Stamped::into_event) {
                    Ok(LiveEvent::MachineState { machine_id, state: model::MachineState::Down, .. }) => {
                        down.insert(machine_id);
                        breakdown.machines.push(machine_id);
                    }
                    Ok(LiveEvent::MachineState { machine_id, .. }) if down.remove(&machine_id) => {
                        recovered.push(machine_id);
                    }
                    Ok(_) => {}
                    // Breakdowns among what was missed are found in the machines' states.
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                        memory.missed_events = true
                    }
                    Err(_) => break,
                }
            }
        } else if quiet_until.is_some_and(|until| state.clock.now() < until) {
            continue;
        }
        let (store, clock, now, config_now) =
            (state.store.clone(), state.clock.clone(), state.clock.now(), config.clone());
        let (interrupt, slotted) = (memory.interrupt.clone(), memory.slotted.clone());
        interrupt.store(false, Ordering::Relaxed);
        memory.recovered.append(&mut recovered);
        memory.requested.extend(state.take_requested_replans());
        let mut moved = std::mem::take(&mut memory);
        let mut pass = tokio::task::spawn_blocking(move || {
            let outcome = check_and_repair(&store, &*clock, &config_now, breakdown, &mut moved);
            (outcome, moved)
        });
        // Meanwhile a breakdown or a rush order cuts a re-optimisation's search short (a repair
        // is short and takes no notice). What is read here is not seen by the next pass's
        // `select`: it reads the machines' states, and is woken again.
        let (mut missed, mut woken, mut stopping) = (false, false, false);
        let outcome = loop {
            tokio::select! {
                outcome = &mut pass => break outcome,
                event = events.recv(), if !interrupt.load(Ordering::Relaxed) => match event.map(crate::Stamped::into_event) {
                    Ok(LiveEvent::MachineState { machine_id, state: model::MachineState::Down, .. }) => {
                        down.insert(machine_id);
                        missed = true;
                        interrupt.store(true, Ordering::Relaxed);
                    }
                    Ok(LiveEvent::MachineState { machine_id, .. }) if down.remove(&machine_id) => {
                        recovered.push(machine_id);
                        woken = true;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => missed = true,
                    Err(RecvError::Closed) => {}
                },
                () = state.replan_wake.notified(), if !interrupt.load(Ordering::Relaxed) => {
                    woken = true;
                    if rush_waiting(&state.store, &config, &slotted) {
                        interrupt.store(true, Ordering::Relaxed);
                    }
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    interrupt.store(true, Ordering::Relaxed);
                }
            }
        };
        if stopping {
            return;
        }
        if woken || missed {
            state.wake_replanner();
        }
        let outcome = outcome.map(|(outcome, mut moved)| {
            moved.missed_events |= missed;
            (outcome, moved)
        });
        match outcome {
            Ok((outcome, moved)) => {
                memory = moved;
                match outcome {
                    Ok(Some((plan, trigger))) => {
                        tracing::info!(plan, trigger = %in_brief(&trigger), "automatic plan published");
                        state.publish(LiveEvent::Plan { plan_id: plan, trigger: Some(trigger) });
                    }
                    Ok(None) => {}
                    // Nothing failed: the shop has a newer plan; the next pass looks at it.
                    Err(RepairError::Stale) => state.wake_replanner(),
                    Err(RepairError::Failed(error)) => {
                        let pause = time::Duration::minutes(i64::from(config.repair_interval_minutes.max(1)));
                        quiet_until = Some(now + pause);
                        tracing::warn!(%error, retry_in_minutes = pause.whole_minutes(), "automatic repair failed; the active plan stays");
                    }
                }
                if let Some(last) = memory.reoptimised.take() {
                    state.set_last_reoptimisation(last);
                }
                // A re-optimisation that waited for an urgent repair goes next.
                if memory.reoptimise.is_some() {
                    state.wake_replanner();
                }
            }
            Err(error) => tracing::warn!(%error, "automatic repair task failed"),
        }
        // Breakdowns reported meanwhile wait in `events`: those the plan just made knew of are
        // not repaired again (see `due`).
    }
}

/// Whether a released rush order is missing from the active plan that no repair has tried yet
/// (one that could not be planned must not cut every re-optimisation short).
fn rush_waiting(store: &Store, config: &PlanningConfig, slotted: &HashSet<OrderId>) -> bool {
    if config.rush_priority == 0 {
        return false;
    }
    let missing = store.active_plan().and_then(|active| {
        active.map_or(Ok(Vec::new()), |a| store.orders_missing_from_plan(a.id, config.rush_priority))
    });
    missing.is_ok_and(|orders| orders.iter().any(|(id, _)| !slotted.contains(id)))
}

/// What the replanner carries from one check to the next.
#[derive(Debug, Default)]
pub struct Memory {
    /// Rush and new orders a published repair had: one that it could not plan is not tried again.
    pub slotted: HashSet<OrderId>,
    /// The scheduled re-optimisation time not yet acted on (it waits for urgent repairs only).
    pub reoptimise: Option<Timestamp>,
    /// The last scheduled re-optimisation that ran, until the loop hands it to the dashboard.
    pub reoptimised: Option<LastReoptimisation>,
    /// Breakdown events may have been missed (the live stream lagged, or the replanner just
    /// started): the next check reads the machines' states instead.
    pub missed_events: bool,
    /// Set while a scheduled re-optimisation searches, to end it at once for an urgent repair
    /// (a breakdown, a rush order); it then runs again after that.
    pub interrupt: Arc<AtomicBool>,
    /// Machines reported down that have reported another state since, for the next check.
    pub recovered: Vec<MachineId>,
    /// Re-plans asked for by changes the store does not show (a maintenance window removed):
    /// made with a search, after anything more urgent.
    pub requested: Vec<PlanTrigger>,
}

/// What the last scheduled re-optimisation did, for the settings page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastReoptimisation {
    /// When it ran.
    pub at: Timestamp,
    /// The plan it published; `None` when nothing was better enough and the active plan stayed.
    pub published: Option<i64>,
}

/// A trigger for a log line: at most ten order numbers (the first plan of a large order book
/// names thousands, which made one line of 105 KB).
fn in_brief(trigger: &PlanTrigger) -> String {
    const SHOWN: usize = 10;
    match trigger {
        PlanTrigger::RushOrders { orders } | PlanTrigger::NewOrders { orders } if orders.len() > SHOWN => {
            let kind =
                if matches!(trigger, PlanTrigger::RushOrders { .. }) { "RushOrders" } else { "NewOrders" };
            format!("{kind} {{ orders: {:?} and {} more }}", &orders[..SHOWN], orders.len() - SHOWN)
        }
        other => format!("{other:?}"),
    }
}

/// The latest of the times of day `minutes` (after local midnight in `zone`) at or before `now`;
/// `None` when there are none. A time the clocks skip that day counts as just after the jump.
pub fn latest_slot(now: Timestamp, minutes: &[u32], zone: &model::Zone) -> Option<Timestamp> {
    let today = zone.local(now).date();
    minutes
        .iter()
        .filter_map(|&minute| {
            let at = zone.at_local(today, minute);
            if at <= now { Some(at) } else { today.previous_day().map(|day| zone.at_local(day, minute)) }
        })
        .max()
}

/// Machines reported down, and when the first report arrived (a plan made since then knew of
/// it, whatever time the report gives for the stop itself).
#[derive(Clone, Debug)]
pub struct Breakdown {
    /// Which machines.
    pub machines: Vec<MachineId>,
    /// When the first report was taken in.
    pub reported: Timestamp,
}

/// Repairs and publishes the active plan when something calls for it (see [`due`]), or, when a
/// scheduled re-optimisation is waiting and nothing more urgent than work off the plan is due,
/// re-optimises it (see [`planning::reoptimise`]); returns the new plan's id and why it was made.
/// The rush or new orders a repair was made for join `memory.slotted`. Plans are made for the
/// time `clock` reads at the start and published at the time it reads when the search is done.
pub fn check_and_repair(
    store: &Store,
    clock: &dyn Clock,
    config: &PlanningConfig,
    breakdown: Option<Breakdown>,
    memory: &mut Memory,
) -> Result<Option<(i64, PlanTrigger)>, RepairError> {
    let now = clock.now();
    let breakdown = match breakdown {
        None if std::mem::take(&mut memory.missed_events) => {
            missed_breakdowns(store, now).map_err(RepairError::failed)?
        }
        breakdown => breakdown,
    };
    let recovered = std::mem::take(&mut memory.recovered);
    let due =
        due_after(store, now, config, breakdown, &recovered, &memory.slotted).map_err(RepairError::failed)?;
    // New orders and work off the plan wait for a re-optimisation that is due: it plans all open
    // work afresh (and, should it publish nothing, the next check repairs).
    let urgent = due.as_ref().is_some_and(|due| {
        matches!(due.trigger, PlanTrigger::Breakdown { .. } | PlanTrigger::RushOrders { .. })
    });
    let options = config.repair_options();
    if !urgent && memory.reoptimise.take().is_some() {
        let Some(active) = store.active_plan().map_err(RepairError::failed)? else { return Ok(None) };
        let limit = seconds(config.reoptimise_time_limit_seconds, PlanningConfig::REOPTIMISE_TIME_LIMITS);
        let gain = config.reoptimise_min_gain_percent.clamp(0.0, *PlanningConfig::MIN_GAINS.end());
        let found =
            planning::reoptimise(store, now, &active.objective, limit, &options, gain, &memory.interrupt)
                .map_err(RepairError::failed)?;
        if found.interrupted {
            tracing::info!(
                plan = active.id,
                "scheduled re-optimisation interrupted for an urgent repair; it runs again after it"
            );
            memory.reoptimise = Some(now);
            return Ok(None);
        }
        let Some(plan) = found.better else {
            tracing::info!(plan = active.id, current = ?found.current, "scheduled re-optimisation found nothing better enough; the active plan stays");
            memory.reoptimised = Some(LastReoptimisation { at: now, published: None });
            return Ok(None);
        };
        let (late_orders_before, weighted_tardiness_before, makespan_end_before) =
            found.current.unwrap_or((active.late_orders, active.weighted_tardiness, active.makespan_end));
        // Stored times are whole milliseconds; a moved-on plan's end may carry nanoseconds.
        let makespan_end_before =
            model::oee::from_unix_ms(model::oee::unix_ms(makespan_end_before)).unwrap_or(makespan_end_before);
        let trigger =
            PlanTrigger::Reoptimised { late_orders_before, weighted_tardiness_before, makespan_end_before };
        let published = publish(store, clock.now().max(now), plan, trigger)?;
        memory.reoptimised = Some(LastReoptimisation { at: now, published: Some(published.0) });
        return Ok(Some(published));
    }
    let limit = config.repair_time_limit();
    let due = match due {
        Some(due) => Some(due),
        None if !memory.requested.is_empty() => {
            let trigger = memory.requested.remove(0);
            memory.requested.retain(|other| *other != trigger);
            store.active_plan().map_err(RepairError::failed)?.map(|active| Due {
                active,
                trigger,
                slotting: Vec::new(),
            })
        }
        None => None,
    };
    let Some(Due { active, trigger, slotting }) = due else { return Ok(None) };
    // The rules the plan was made under changed: searched afresh from it, not right-shifted.
    if matches!(
        trigger,
        PlanTrigger::Maintenance { .. }
            | PlanTrigger::MaintenanceRemoved { .. }
            | PlanTrigger::Calendar { .. }
            | PlanTrigger::MaterialLater { .. }
            | PlanTrigger::Routing { .. }
            | PlanTrigger::DueEarlier { .. }
    ) {
        let plan =
            planning::replan(store, now, &active.objective, limit, &options).map_err(RepairError::failed)?;
        // A window removed where no work waited behind it changes nothing.
        if matches!(trigger, PlanTrigger::MaintenanceRemoved { .. })
            && moves_nothing(
                &store.plan_operations(active.id, None).map_err(RepairError::failed)?,
                &plan.operations,
            )
        {
            tracing::info!(plan = active.id, trigger = %in_brief(&trigger), "the re-plan moved no work; the active plan stays");
            return Ok(None);
        }
        return publish(store, clock.now().max(now), plan, trigger).map(Some);
    }
    // Orders slotted in as rush orders take no place the active plan gave them.
    let plan = planning::plan_with(store, now, &active.objective, limit, &options, None, &slotting)
        .map_err(RepairError::failed)?;
    // A machine that broke down or runs again before its planned work is due changes nothing: the
    // active plan stays, and the stations are not sent a new plan for it.
    if matches!(trigger, PlanTrigger::Breakdown { .. } | PlanTrigger::Recovered { .. })
        && moves_nothing(
            &store.plan_operations(active.id, None).map_err(RepairError::failed)?,
            &plan.operations,
        )
    {
        tracing::info!(plan = active.id, trigger = %in_brief(&trigger), "the repair moved no work; the active plan stays");
        return Ok(None);
    }
    let published = publish(store, clock.now().max(now), plan, trigger)?;
    memory.slotted.extend(slotting);
    Ok(Some(published))
}

/// The code of a site whose calendar closes time that plan `plan`, made at `made_at`, has work
/// in, from `movable_from` on (where a re-plan can still move it) until that plan's calendar
/// horizon (beyond it, a plan does not follow the calendar): its shifts or holidays changed since.
fn site_closed_under_work(
    store: &Store,
    plan: i64,
    movable_from: Timestamp,
    made_at: Timestamp,
) -> Result<Option<String>, store::StoreError> {
    let horizon = made_at + time::Duration::days(planning::HORIZON_DAYS);
    let operations: Vec<model::PlannedOperation> = store
        .plan_operations(plan, None)?
        .into_iter()
        .filter(|op| op.setup_start >= movable_from && op.end <= horizon)
        .collect();
    let (Some(from), Some(to)) =
        (operations.iter().map(|op| op.setup_start).min(), operations.iter().map(|op| op.end).max())
    else {
        return Ok(None);
    };
    let (from_ms, to_ms) = (model::oee::unix_ms(from), model::oee::unix_ms(to));
    use std::collections::hash_map::{Entry, HashMap};
    let mut sites: HashMap<MachineId, model::SiteId> = HashMap::new();
    // Per site, its open time; `None` when it is always open.
    let mut open: HashMap<model::SiteId, Option<Vec<model::oee::Span>>> = HashMap::new();
    for op in &operations {
        let site = match sites.entry(op.machine_id) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => *entry.insert(store.machine(op.machine_id)?.site_id),
        };
        if let Entry::Vacant(entry) = open.entry(site) {
            let calendar = store.calendar(site)?;
            entry.insert(if calendar.always_open() {
                None
            } else {
                Some(model::oee::shift_spans(&calendar, &store.site(site)?.zone(), from_ms, to_ms))
            });
        }
        let Some(spans) = &open[&site] else { continue };
        let (start, end) = (model::oee::unix_ms(op.setup_start), model::oee::unix_ms(op.end));
        // The open span that starts last at or before the work's start must hold all of it.
        let holding = spans.partition_point(|(s, _)| *s <= start);
        let fits = holding > 0 && spans[holding - 1].1 >= end;
        if !fits && start < end {
            return Ok(Some(store.site(site)?.code));
        }
    }
    Ok(None)
}

/// Work running on a machine that plan `plan` does not have it on, as a trigger naming the first
/// such machine and the orders of the work running there off the plan.
fn started_elsewhere(store: &Store, plan: i64) -> Result<Option<PlanTrigger>, store::StoreError> {
    let planned: HashSet<(model::OperationId, MachineId)> =
        store.plan_operations(plan, None)?.iter().map(|op| (op.operation_id, op.machine_id)).collect();
    let ops: HashSet<model::OperationId> = planned.iter().map(|(op, _)| *op).collect();
    let elsewhere: Vec<(MachineId, OrderId)> = store
        .running_operations()?
        .into_iter()
        .filter_map(|op| op.machine_id.map(|machine| (op.id, machine, op.order_id)))
        .filter(|(op, machine, _)| ops.contains(op) && !planned.contains(&(*op, *machine)))
        .map(|(_, machine, order)| (machine, order))
        .collect();
    let Some(&(machine, _)) = elsewhere.first() else { return Ok(None) };
    let mut orders = Vec::new();
    for (_, order) in elsewhere.iter().filter(|(m, _)| *m == machine) {
        orders.push(store.order(*order)?.number);
    }
    Ok(Some(PlanTrigger::Elsewhere { machine: store.machine(machine)?.code, orders }))
}

/// Whether `repaired` plans every piece of work as `active` does: on the same machine, with the
/// same units, its setup, start and end within a minute. Work `active` has and `repaired` not
/// (finished since) does not count.
fn moves_nothing(active: &[model::PlannedOperation], repaired: &[model::PlannedOperation]) -> bool {
    let near = |a: Timestamp, b: Timestamp| (a - b).abs() < time::Duration::minutes(1);
    let planned: std::collections::HashMap<_, _> =
        active.iter().map(|op| ((op.operation_id, op.part), op)).collect();
    repaired.iter().all(|op| {
        planned.get(&(op.operation_id, op.part)).is_some_and(|was| {
            was.machine_id == op.machine_id
                && was.quantity == op.quantity
                && near(was.setup_start, op.setup_start)
                && near(was.start, op.start)
                && near(was.end, op.end)
        })
    })
}

/// Machines down now that went down after the active plan was made, as a breakdown reported
/// `now`: what the events would have said had none been missed.
fn missed_breakdowns(store: &Store, now: Timestamp) -> Result<Option<Breakdown>, store::StoreError> {
    let Some(active) = store.active_plan()? else { return Ok(None) };
    let machines: Vec<MachineId> = store
        .current_states(now)?
        .into_iter()
        .filter(|s| s.state == model::MachineState::Down && s.at > active.created_at)
        .map(|s| s.machine)
        .collect();
    Ok((!machines.is_empty()).then_some(Breakdown { machines, reported: now }))
}

/// A time limit from the config, kept in `range` (the config file is validated; this keeps a NaN
/// from other callers from panicking).
fn seconds(value: f64, range: std::ops::RangeInclusive<f64>) -> Duration {
    Duration::try_from_secs_f64(value.clamp(*range.start(), *range.end())).unwrap_or(Duration::from_secs(2))
}

/// Stores `plan`, made by itself for `trigger`, and makes it the active plan; its id and trigger.
fn publish(
    store: &Store,
    now: Timestamp,
    mut plan: store::NewPlan,
    trigger: PlanTrigger,
) -> Result<(i64, PlanTrigger), RepairError> {
    plan.trigger = Some(trigger.clone());
    let summary = store.create_plan(&plan).map_err(RepairError::failed)?;
    match store.publish_plan(summary.id, now) {
        Ok(_) => Ok((summary.id, trigger)),
        Err(store::StoreError::Conflict { .. }) => Err(RepairError::Stale),
        Err(error) => Err(RepairError::failed(error)),
    }
}

/// Why an automatic repair was not published.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Another plan was published while the repair was computed: look again at once.
    #[error("another plan was published meanwhile")]
    Stale,
    /// Planning or the store failed.
    #[error("{0}")]
    Failed(String),
}

impl RepairError {
    fn failed(error: impl std::fmt::Display) -> RepairError {
        RepairError::Failed(error.to_string())
    }
}

/// A repair that is due: of which plan, why, and for which rush or new orders.
#[derive(Debug)]
pub struct Due {
    /// The active plan to repair.
    pub active: PlanSummary,
    /// Why.
    pub trigger: PlanTrigger,
    /// The orders it slots in (empty unless the trigger is rush or new orders).
    pub slotting: Vec<OrderId>,
}

/// Whether the active plan needs an automatic repair now, and why: `breakdown` (a machine just
/// reported down) when that machine has work in the plan not yet over and the plan was made
/// before the breakdown was reported (a plan made since knew of it); else work planned in a
/// maintenance window where a repair can move it (past the freeze window); else rush orders missing
/// from the plan and not in `slotted`; else other released orders missing from it and not in
/// `slotted`, when it was published at least `new_order_minutes` ago; else work off the plan by
/// more than the deviation, when the plan was published at least the repair interval ago.
pub fn due(
    store: &Store,
    now: Timestamp,
    config: &PlanningConfig,
    breakdown: Option<Breakdown>,
    slotted: &HashSet<OrderId>,
) -> Result<Option<Due>, store::StoreError> {
    due_after(store, now, config, breakdown, &[], slotted)
}

/// [`due`], also after `recovered` machines (reported down, then another state) ran again: a
/// plan made while one of them was down kept it out for the expected repair time, so when it has
/// work in that plan not yet over, the plan is repaired (after breakdowns, before the rest).
pub fn due_after(
    store: &Store,
    now: Timestamp,
    config: &PlanningConfig,
    breakdown: Option<Breakdown>,
    recovered: &[MachineId],
    slotted: &HashSet<OrderId>,
) -> Result<Option<Due>, store::StoreError> {
    let Some(active) = store.active_plan()? else { return Ok(None) };
    let breakdown = breakdown.filter(|b| active.created_at < b.reported);
    for machine in breakdown.iter().flat_map(|b| b.machines.iter().copied()) {
        if !store.plan_operations(active.id, Some(machine))?.iter().any(|op| op.end > now) {
            continue;
        }
        let machine = store.machine(machine)?.code;
        return Ok(Some(Due { active, trigger: PlanTrigger::Breakdown { machine }, slotting: Vec::new() }));
    }
    let made_ms = model::oee::unix_ms(active.created_at);
    for &machine in recovered {
        let down_then = store
            .state_spans(machine, made_ms, made_ms + 1)?
            .iter()
            .any(|span| span.state == model::MachineState::Down);
        let back = store.current_state(machine, now)?.is_some_and(|c| c.state != model::MachineState::Down);
        if !down_then
            || !back
            || !store.plan_operations(active.id, Some(machine))?.iter().any(|op| op.end > now)
        {
            continue;
        }
        let machine = store.machine(machine)?.code;
        return Ok(Some(Due { active, trigger: PlanTrigger::Recovered { machine }, slotting: Vec::new() }));
    }
    // Maintenance entered since: work planned in a window, where a repair can still move it (past
    // the freeze window; a repair keeps what starts before then, so it would find the same).
    let movable_from = now + time::Duration::minutes(i64::from(config.freeze_minutes));
    for window in store.maintenance(None, model::oee::unix_ms(now))? {
        let clashes = store
            .plan_operations(active.id, Some(window.machine_id))?
            .iter()
            .any(|op| op.setup_start >= movable_from && op.setup_start < window.end && op.end > window.start);
        if clashes {
            let machine = store.machine(window.machine_id)?.code;
            return Ok(Some(Due {
                active,
                trigger: PlanTrigger::Maintenance { machine },
                slotting: Vec::new(),
            }));
        }
    }
    if let Some(site) = site_closed_under_work(store, active.id, movable_from, active.created_at)? {
        return Ok(Some(Due { active, trigger: PlanTrigger::Calendar { site }, slotting: Vec::new() }));
    }
    let moved = store.orders_on_ineligible_machines(active.id, movable_from)?;
    if !moved.is_empty() {
        let orders = moved.into_iter().map(|(_, number)| number).collect();
        return Ok(Some(Due { active, trigger: PlanTrigger::Routing { orders }, slotting: Vec::new() }));
    }
    // Even within the freeze: work cannot start before its material is there.
    let later = store.orders_material_after_plan(active.id, now)?;
    if !later.is_empty() {
        let orders = later.into_iter().map(|(_, number)| number).collect();
        return Ok(Some(Due {
            active,
            trigger: PlanTrigger::MaterialLater { orders },
            slotting: Vec::new(),
        }));
    }
    // Released orders of `min_priority` or more that the plan lacks and no repair has had.
    let missing = |min_priority: u8| -> Result<(Vec<OrderId>, Vec<String>), store::StoreError> {
        let orders = store.orders_missing_from_plan(active.id, min_priority)?;
        Ok(orders.into_iter().filter(|(id, _)| !slotted.contains(id)).unzip())
    };
    if config.rush_priority > 0 {
        let (mut slotting, mut orders) = missing(config.rush_priority)?;
        // Orders the plan has, raised to rush priority since it was made: moved ahead as well.
        let raised = store.orders_raised_since(active.id, active.created_at, config.rush_priority)?;
        for (id, number) in raised.into_iter().filter(|(id, _)| !slotted.contains(id)) {
            slotting.push(id);
            orders.push(number);
        }
        if !orders.is_empty() {
            return Ok(Some(Due { active, trigger: PlanTrigger::RushOrders { orders }, slotting }));
        }
    }
    // How long ago the active plan was published; one published "later" than now (by a clock
    // that ran ahead and was set right since) has waited long enough.
    let published = active.published_at.unwrap_or(active.created_at);
    let waited = |wait: time::Duration| now - published >= wait || published > now;
    let wait = time::Duration::minutes(i64::from(config.new_order_minutes));
    if config.new_order_minutes > 0 && waited(wait) {
        let (slotting, orders) = missing(1)?;
        if !orders.is_empty() {
            return Ok(Some(Due { active, trigger: PlanTrigger::NewOrders { orders }, slotting }));
        }
    }
    let interval = time::Duration::minutes(i64::from(config.repair_interval_minutes));
    let settled = active.published_at.is_none() || waited(interval);
    if config.deviation_minutes > 0 && settled {
        if let Some(trigger) = started_elsewhere(store, active.id)? {
            return Ok(Some(Due { active, trigger, slotting: Vec::new() }));
        }
        let operations = store.plan_operations(active.id, None)?;
        let parts = progress::with_statuses(store, active.id, &operations)?;
        let by = time::Duration::minutes(i64::from(config.deviation_minutes));
        let all = store::PageRequest { after: None, limit: 10_000 };
        let site_of = store
            .machines(&store::MachineFilter::default(), all)?
            .items
            .iter()
            .map(|m| (m.id, m.site_id))
            .collect();
        let (late, early, cancelled) = progress::deviations(&parts, now, by, &site_of);
        if late + early + cancelled > 0 {
            return Ok(Some(Due {
                active,
                trigger: PlanTrigger::Deviation { late, early, cancelled },
                slotting: Vec::new(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{MAX_SOLVER_THREADS, PlanTrigger, PlanningConfig, in_brief, latest_slot};

    #[test]
    fn reoptimisation_times_are_read_and_placed_in_the_site_s_day() {
        let at = |times: &[&str]| PlanningConfig {
            reoptimise_at: times.iter().map(|t| t.to_string()).collect(),
            ..PlanningConfig::default()
        };
        assert_eq!(
            at(&["22:00", "05:00", "00:00", "23:59"]).reoptimise_minutes(),
            Ok(vec![0, 300, 1320, 1439])
        );
        assert_eq!(at(&[]).reoptimise_minutes(), Ok(vec![]));
        for bad in ["5:00", "+5:00", "05:60", "24:00", "0500", "05:00:00", " 05:00", "-1:00"] {
            assert!(at(&[bad]).reoptimise_minutes().is_err(), "{bad}");
        }
        // Hong Kong (+08:00), 05:00 and 22:00 local: 21:00 and 14:00 UTC.
        let (times, hk) = ([300, 1320], &model::Zone::fixed(480));
        let slot = |now| latest_slot(now, &times, hk);
        assert_eq!(slot(datetime!(2026-12-06 20:59:59 UTC)), Some(datetime!(2026-12-06 14:00 UTC)));
        assert_eq!(slot(datetime!(2026-12-06 21:00 UTC)), Some(datetime!(2026-12-06 21:00 UTC)));
        assert_eq!(slot(datetime!(2026-12-07 13:00 UTC)), Some(datetime!(2026-12-06 21:00 UTC)));
        // Local midnight falls on another UTC day: 01:00 local on the 7th is 17:00 UTC on the 6th.
        assert_eq!(slot(datetime!(2026-12-06 17:00 UTC)), Some(datetime!(2026-12-06 14:00 UTC)));
        assert_eq!(
            latest_slot(datetime!(2026-12-06 03:00 UTC), &[300], &model::Zone::fixed(-300)),
            Some(datetime!(2026-12-05 10:00 UTC))
        );
        assert_eq!(latest_slot(datetime!(2026-12-06 03:00 UTC), &[], hk), None);
        // Whatever offset "now" carries.
        assert_eq!(slot(datetime!(2026-12-07 04:59 +08:00)), Some(datetime!(2026-12-06 14:00 UTC)));
        assert_eq!(slot(datetime!(2026-12-07 05:00 +08:00)), Some(datetime!(2026-12-06 21:00 UTC)));
        assert_eq!(slot(datetime!(2026-12-06 12:00 -05:00)), Some(datetime!(2026-12-06 14:00 UTC)));
        // Berlin: 05:00 is 04:00 UTC on Saturday 2026-03-28 and 03:00 UTC on Sunday, after the
        // clocks moved to summer time.
        let berlin = model::Zone::named("Europe/Berlin").unwrap();
        let early = |now| latest_slot(now, &[300], &berlin);
        assert_eq!(early(datetime!(2026-03-29 02:59 UTC)), Some(datetime!(2026-03-28 04:00 UTC)));
        assert_eq!(early(datetime!(2026-03-29 03:00 UTC)), Some(datetime!(2026-03-29 03:00 UTC)));
    }

    #[test]
    fn a_logged_trigger_names_at_most_ten_orders() {
        let orders: Vec<String> = (0..8070).map(|i| format!("SO-{i}")).collect();
        let line = in_brief(&PlanTrigger::NewOrders { orders });
        assert!(line.starts_with(r#"NewOrders { orders: ["SO-0", "SO-1""#), "{line}");
        assert!(line.ends_with(r#""SO-9"] and 8060 more }"#), "{line}");
        let few = PlanTrigger::RushOrders { orders: vec!["SO-1".into()] };
        assert_eq!(in_brief(&few), format!("{few:?}"));
    }

    #[test]
    fn solver_threads_resolve_to_a_usable_count() {
        let with = |solver_threads| PlanningConfig { solver_threads, ..PlanningConfig::default() }.threads();
        let automatic = with(0);
        assert!((1..=2).contains(&automatic), "{automatic}");
        assert_eq!(automatic, crate::planning::solver_threads());
        assert_eq!((with(1), with(3)), (1, 3));
        assert_eq!(with(10_000), MAX_SOLVER_THREADS);
    }
}
