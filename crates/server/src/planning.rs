//! Planning: turns the open operations of released orders into a scheduling problem for the
//! `scheduler` crate, solves it, and turns the schedule back into a plan in wall-clock time.
//!
//! The problem, in seconds from "now":
//! - one job per released or running order: its operations not yet done, in routing order, each
//!   taking `ceil(quantity × unit seconds)` on every eligible machine, where the quantity is the
//!   good units the operation before passed on once it finished, else the order's quantity;
//! - due dates from the orders, weights from their priorities, release at the material-ready time;
//! - sequence-dependent setups by setup family: switching a machine to family `f` takes the
//!   largest setup time of the operations of family `f` (no setup between operations of one family);
//!   a machine with no running work starts set up for the family of the operation it last counted
//!   units for, so its first operation of another family needs a setup;
//! - each machine unavailable outside its site's shift calendar over the planning horizon and in
//!   its planned maintenance windows;
//! - operations already running are fixed: on their machine, starting now (one after another
//!   when several are running on one machine);
//! - operations are not interrupted by breaks, so a lot too long for the longest shift of its
//!   machines is split into consecutive parts that each fit (part `k + 1` follows part `k`); the
//!   station stops a running lot for now after a part (`POST /operations/{id}/pause`), and a
//!   stopped lot is planned for the units it has left.

pub mod baseline;
pub(crate) mod progress;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use model::oee::{shift_spans, unix_ms};
use model::{MachineId, Operation, Order, OrderStatus, PlannedOperation, Timestamp};
use scheduler::{Alternative, FixedStart, Interval, Job, Objective, Problem};
use store::{NewPlan, OrderFilter, PageRequest, Store, StoreError};

/// How far ahead the shift calendar is laid out at least; further when the open work needs it
/// (see `build`), up to [`MAX_HORIZON_DAYS`]. Beyond it machines are taken as always open.
pub const HORIZON_DAYS: i64 = 42;

/// The furthest the shift calendar is laid out: five years.
pub const MAX_HORIZON_DAYS: i64 = 5 * 366;

/// The furthest a plan may reach, in seconds from now: a thousand years, far short of the end of
/// the calendar (year 9999) that plan times must fit in.
const MAX_REACH_SECONDS: i64 = 1_000 * 366 * 86_400;

/// What was planned and how to map the solver's indices back.
#[derive(Clone)]
pub struct Built {
    /// The problem for the solver.
    pub problem: Problem,
    /// The store id of every machine index.
    pub machines: Vec<MachineId>,
    /// For every job: its order and what each of the job's positions is.
    pub jobs: Vec<(Order, Vec<Position>)>,
    /// Setup seconds into each family, by family index. A family is a setup family with one
    /// setup time: steps of one setup family whose setups differ are families of one group.
    pub family_setup: Vec<i64>,
    /// The group (the setup family's name) of each family: work of one group follows other work
    /// of it without a setup.
    pub family_group: Vec<usize>,
    /// What the planner should know of the plan (see [`model::PlanNote`]).
    pub notes: Vec<model::PlanNote>,
    /// When it was built: the plan's `created_at` (the schedule counts from [`origin`] of it).
    pub made_at: Timestamp,
    /// The plan active when it was built (0: none), read first: a plan published since makes it
    /// stale, however the clocks went.
    pub based_on: i64,
    /// For every job, where a repair's active plan had each position: machine index and setup
    /// start in seconds from now (none for work it had not, and in a build that is no repair).
    pub planned: Vec<Vec<Option<(usize, i64)>>>,
}

/// How to build the problem.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Repair the active plan: keep the operations it starts within this long from now on their
    /// planned machine and start.
    pub repair: Option<time::Duration>,
    /// How long a machine that is down now is expected to stay down.
    pub down_for: time::Duration,
    /// Solver threads ([`solver_threads`] by default).
    pub threads: usize,
    /// In a repair, orders of this priority or more that the active plan does not have go ahead
    /// of all other work not yet fixed (0: they are slotted in by their ATCS start like others).
    pub rush_priority: u8,
    /// A repair that keeps every machine's order but is more than this much worse than the active
    /// plan (percent) searches, and takes the search's plan when it is this much better (0: never).
    pub search_loss_percent: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            repair: None,
            down_for: time::Duration::minutes(60),
            threads: solver_threads(),
            rush_priority: 0,
            search_loss_percent: REPAIR_SEARCH_LOSS_PERCENT,
        }
    }
}

/// One position of a job: the store operation, the part of its lot, and the units in that part.
pub type Position = (Operation, u32, u32);

/// What a repair knows of one position of a job besides the problem.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    /// It runs now (fixed where it runs, not frozen by the repair).
    running: bool,
    /// Where and when the active plan had it: machine index and setup start in seconds from now
    /// (before now for work that was to have started).
    planned: Option<(usize, i64)>,
    /// Late work that runs as soon as what it waits for allows: a lot whose planned start passed
    /// without it starting, or one after such a lot in its job. Unlike work held up for long (by
    /// a machine that is down, by material), it keeps its place on its machine: the frozen work
    /// after it there moves with it.
    slipped: bool,
}

/// Makes the fixed operations fit together. Running operations all "start now" on their machine;
/// when a machine has more than one (work was started before the previous job was reported
/// finished), they run one after another, with the setup between them. A repair's frozen
/// operation that then overlaps running work or another frozen one, or starts before the
/// operation before it in its job ends (running work ends later than the active plan said when it
/// started later or runs slower), is replanned instead, with the rest of its job (only a prefix
/// of a job may stay frozen); such work has slipped, as has work `held` marks so. The frozen work
/// that the active plan had after slipped work on its machine is replanned too (slipped work
/// cannot go behind work frozen after it, or it would wait for all of it, and its job's later
/// steps with it; this is how a lot whose planned start passed without it starting takes the
/// rest of its machine's work along, while work held up for long by a machine that is down lets
/// the frozen work after it keep its place). So is the first frozen operation of an idle machine that starts too
/// soon for the setup from the `initial` family the machine is set up for, or whose setup would
/// fall in closed time (`open(machine, from, to)`: whether the machine works all of that span, in
/// seconds from now). Running work on a machine that is down starts when it is expected back
/// (`resume`, seconds from now).
fn settle_fixed(
    jobs: &mut [Job],
    held: &[Vec<Held>],
    family_setup: &[i64],
    family_group: &[usize],
    initial: &[Option<usize>],
    resume: &[i64],
    open: &dyn Fn(usize, i64, i64) -> bool,
) {
    let setup = |from: Option<usize>, to: usize| match from {
        Some(from) if family_group[from] != family_group[to] => family_setup[to],
        _ => 0,
    };
    let machines = jobs
        .iter()
        .flat_map(|job| &job.operations)
        .filter_map(|op| op.fixed.map(|f| f.machine + 1))
        .max()
        .unwrap_or(0);
    let mut slipped: Vec<Vec<bool>> =
        held.iter().map(|positions| positions.iter().map(|held| held.slipped).collect()).collect();
    let mut ends: Vec<Option<(i64, usize)>> = vec![None; machines];
    for (j, job) in jobs.iter_mut().enumerate() {
        for (k, op) in job.operations.iter_mut().enumerate() {
            let Some(fixed) = op.fixed.as_mut().filter(|_| held[j][k].running) else { continue };
            let resumes = resume.get(fixed.machine).copied().unwrap_or(0);
            let start =
                ends[fixed.machine].map_or(resumes, |(end, family)| end + setup(Some(family), op.family));
            fixed.start = start;
            let duration =
                op.alternatives.iter().find(|a| a.machine == fixed.machine).map_or(0, |a| a.duration);
            ends[fixed.machine] = Some((start + duration, op.family));
        }
    }
    let duration = |op: &scheduler::Operation, machine: usize| {
        op.alternatives.iter().find(|a| a.machine == machine).map_or(0, |a| a.duration)
    };
    loop {
        // A frozen operation that starts before its job's previous operation ends.
        let mut conflict = jobs.iter().enumerate().find_map(|(j, job)| {
            job.operations.windows(2).enumerate().find_map(|(k, pair)| {
                let (Some(before), Some(after)) = (pair[0].fixed, pair[1].fixed) else { return None };
                let early = after.start < before.start + duration(&pair[0], before.machine);
                (early && !held[j][k + 1].running).then_some((j, k + 1))
            })
        });
        // Frozen work the active plan had after slipped work on the same machine.
        if conflict.is_none() {
            let mut first_free = vec![i64::MAX; machines];
            for ((job, held), slipped) in jobs.iter().zip(held).zip(&slipped) {
                for ((op, held), slipped) in job.operations.iter().zip(held).zip(slipped) {
                    if let (None, false, true, Some((machine, start))) =
                        (op.fixed, held.running, *slipped, held.planned)
                        && let Some(first) = first_free.get_mut(machine)
                    {
                        *first = (*first).min(start);
                    }
                }
            }
            conflict = jobs.iter().zip(held).enumerate().find_map(|(j, (job, held))| {
                job.operations
                    .iter()
                    .zip(held)
                    .position(|(op, held)| {
                        op.fixed.is_some_and(|f| {
                            !held.running && first_free.get(f.machine).is_some_and(|first| f.start >= *first)
                        })
                    })
                    .map(|k| (j, k))
            });
        }
        'machines: for machine in 0..machines {
            if conflict.is_some() {
                break;
            }
            // (start, end, family, frozen, job, operation) of the fixed work on this machine.
            let mut work: Vec<(i64, i64, usize, bool, usize, usize)> = Vec::new();
            for (j, job) in jobs.iter().enumerate() {
                for (k, op) in job.operations.iter().enumerate() {
                    if let Some(f) = op.fixed.filter(|f| f.machine == machine) {
                        work.push((
                            f.start,
                            f.start + duration(op, machine),
                            op.family,
                            !held[j][k].running,
                            j,
                            k,
                        ));
                    }
                }
            }
            work.sort_unstable();
            // The setup from what the machine is set up for must fit before its first frozen work.
            if let (Some(&first), Some(&Some(family))) = (work.first(), initial.get(machine))
                && first.3
                && let needed = setup(Some(family), first.2)
                && (first.0 - needed < 0 || (needed > 0 && !open(machine, first.0 - needed, first.0)))
            {
                conflict = Some((first.4, first.5));
                break 'machines;
            }
            for pair in work.windows(2) {
                let (previous, next) = (pair[0], pair[1]);
                if next.0 - setup(Some(previous.2), next.2) < previous.1 {
                    // Running work never conflicts with running work, so one of the two is frozen.
                    conflict = Some(if next.3 { (next.4, next.5) } else { (previous.4, previous.5) });
                    break 'machines;
                }
            }
        }
        let Some((j, k)) = conflict else { return };
        for (index, op) in jobs[j].operations.iter_mut().enumerate().skip(k) {
            if !held[j][index].running {
                op.fixed = None;
                slipped[j][index] = true;
            }
        }
    }
}

/// Seconds of work a running operation of `quantity` units has left at `now`: its units not yet
/// counted, with its setup while none is, less the time since it last showed `progress` (its
/// start or its latest count) as if it ran at its planned pace since, but for the `stopped`
/// seconds its machine was down; at least a second. Without
/// the time since, every re-plan would push running work (and what follows it) later by the time
/// elapsed since the last one.
fn work_left(
    op: &Operation,
    quantity: u32,
    progress: Option<Timestamp>,
    now: Timestamp,
    stopped: i64,
) -> i64 {
    let made = op.good.saturating_add(op.scrap);
    let setup = if made == 0 { i64::from(op.setup_seconds) } else { 0 };
    let units = op.processing_seconds(quantity.saturating_sub(made)) as i64;
    let since = progress.map_or(0, |at| ((now - at).whole_seconds() - stopped).max(0));
    (setup + units - since).max(1)
}

/// Seconds `machine` was down between `from` and `now`.
fn down_seconds(
    store: &Store,
    machine: MachineId,
    from: Timestamp,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let spans = store.state_spans(machine, unix_ms(from), unix_ms(now))?;
    let down_ms: i64 = spans
        .iter()
        .filter(|span| span.state == model::MachineState::Down)
        .map(|span| span.end_ms - span.start_ms)
        .sum();
    Ok(down_ms / 1000)
}

/// The instant a plan made at `now` counts its seconds from: `now` rounded up to a whole second.
/// Shifts, breaks, maintenance and material dates fall on whole seconds, so counted from there
/// they stay exactly as long as they are (from a fraction, rounding each closed period outward
/// took a second off every shift, and a lot that filled a shift exactly no longer fitted in any).
pub fn origin(now: Timestamp) -> Timestamp {
    match now.nanosecond() {
        0 => now,
        _ => now.replace_nanosecond(0).unwrap_or(now) + time::Duration::SECOND,
    }
}

/// Builds the problem at `now` (taken as [`origin`]`(now)`).
pub fn build(store: &Store, now: Timestamp, options: &Options) -> Result<Built, PlanError> {
    build_with(store, now, options, None)
}

/// An order with its operations that the store does not have ([`Store::draft_order`]).
pub type Draft = (Order, Vec<Operation>);

/// [`build`], with `draft` planned as a released order besides the stored ones (last).
fn build_with(
    store: &Store,
    now: Timestamp,
    options: &Options,
    draft: Option<&Draft>,
) -> Result<Built, PlanError> {
    let made_at = now;
    let now = origin(now);
    let active = store.active_plan()?;
    let all = PageRequest { after: None, limit: 100_000 };
    // Retired machines take no work (retiring one takes it out of every open operation's machines).
    let machines = store.machines(&store::MachineFilter::IN_SERVICE, all)?.items;
    let machine_index: HashMap<MachineId, usize> =
        machines.iter().enumerate().map(|(i, m)| (m.id, i)).collect();

    let mut orders = Vec::new();
    for status in [OrderStatus::Released, OrderStatus::Running] {
        let filter = OrderFilter { status: Some(status), ..OrderFilter::default() };
        orders.extend(store.orders(&filter, all)?.items);
    }
    orders.sort_by_key(|o| o.id);
    orders.extend(draft.map(|(order, _)| order.clone()));

    let now_ms = unix_ms(now);
    let horizon_ms = now_ms + HORIZON_DAYS * 86_400_000;
    let mut calendars = HashMap::new();
    let mut open_spans = Vec::with_capacity(machines.len());
    for machine in &machines {
        if let std::collections::hash_map::Entry::Vacant(entry) = calendars.entry(machine.site_id) {
            let zone = store.site(machine.site_id)?.zone();
            let calendar = store.calendar(machine.site_id)?;
            let spans = (!calendar.always_open()).then(|| shift_spans(&calendar, &zone, now_ms, horizon_ms));
            entry.insert(spans);
        }
        open_spans.push(calendars[&machine.site_id].clone());
    }
    // The longest stretch each machine can work without a break, in seconds (`None`: no calendar).
    let longest_window: Vec<Option<i64>> = open_spans
        .iter()
        .map(|spans| spans.as_ref().map(|spans| spans.iter().map(|(s, e)| (e - s) / 1000).max().unwrap_or(0)))
        .collect();

    // Machines down now are unavailable for the expected repair time; the work running on them
    // stopped with them and resumes after it.
    let down: std::collections::HashSet<MachineId> = store
        .current_states(made_at)?
        .into_iter()
        .filter(|s| s.state == model::MachineState::Down)
        .map(|s| s.machine)
        .collect();
    let progress = store.running_progress()?;
    // Families by (setup family, setup seconds), and groups by setup family.
    let mut families: HashMap<(String, u32), usize> = HashMap::new();
    let mut groups: HashMap<String, usize> = HashMap::new();
    let mut family_setup: Vec<i64> = Vec::new();
    let mut family_group: Vec<usize> = Vec::new();
    let mut jobs = Vec::new();
    let mut problem_jobs = Vec::new();
    let mut notes = Vec::new();
    // Per job, per operation: what a repair knows of it besides the problem.
    let mut held: Vec<Vec<Held>> = Vec::new();
    // Every order's open operations first: each step's family, whose setup is the step's own (a
    // lot is split to fit a shift with it).
    let mut open_work = Vec::with_capacity(orders.len());
    for order in orders {
        let operations = match draft {
            Some((drafted, operations)) if drafted.id == order.id => operations.clone(),
            _ => store.operations(order.id)?,
        };
        let open: Vec<Operation> = operations
            .into_iter()
            .filter(|op| !matches!(op.status, OrderStatus::Done | OrderStatus::Cancelled))
            .filter(|op| op.eligible_machines.iter().any(|m| machine_index.contains_key(m)))
            .collect();
        for op in &open {
            let group_count = groups.len();
            let group = *groups.entry(op.setup_family.clone()).or_insert(group_count);
            families.entry((op.setup_family.clone(), op.setup_seconds)).or_insert_with(|| {
                family_setup.push(i64::from(op.setup_seconds));
                family_group.push(group);
                family_setup.len() - 1
            });
        }
        if !open.is_empty() {
            open_work.push((order, open));
        }
    }
    // A repair keeps the active plan's near-term operations where they are (see `settle_fixed`
    // for what it then lets go), and knows where the plan had the rest.
    let mut frozen: HashMap<(model::OperationId, u32), (MachineId, i64)> = HashMap::new();
    let mut planned_at: HashMap<(model::OperationId, u32), (MachineId, i64)> = HashMap::new();
    if let (Some(freeze), Some(active)) = (options.repair, &active) {
        for op in store.plan_operations(active.id, None)? {
            let start = (op.start - now).whole_seconds();
            let setup = (op.start - op.setup_start).whole_seconds();
            planned_at.insert((op.operation_id, op.part), (op.machine_id, start - setup));
            if start - setup >= 0 && op.start < now + freeze && !down.contains(&op.machine_id) {
                frozen.insert((op.operation_id, op.part), (op.machine_id, start));
            }
        }
    }

    for (order, open) in open_work {
        let mut operations = Vec::with_capacity(open.len());
        let mut positions = Vec::with_capacity(open.len());
        let mut held_here = Vec::with_capacity(open.len());
        // Only a prefix of a job can stay frozen: once one operation is replanned, the ones after
        // it may have to move too.
        let mut chain_frozen = true;
        // Whether the chain broke at a lot that slipped (see `Held::slipped`).
        let mut chain_slipped = false;
        for op in open {
            let family = families[&(op.setup_family.clone(), op.setup_seconds)];
            let eligible: Vec<usize> =
                op.eligible_machines.iter().filter_map(|m| machine_index.get(m).copied()).collect();
            let running = op.status == OrderStatus::Running;
            // A lot stopped for now (`Paused`) is planned for the units it has left.
            let lot = if running {
                op.quantity
            } else {
                op.quantity.saturating_sub(op.good.saturating_add(op.scrap)).max(1)
            };
            let whole = op.processing_seconds(lot).max(1) as i64;
            let setup = family_setup[family];
            // A unit that fits no shift of any of its machines cannot be planned inside them.
            let unit = op.processing_seconds(1).max(1) as i64 + setup;
            // (`None` when one of its machines has no calendar: always open, it takes any unit.)
            let longest: Option<i64> = eligible
                .iter()
                .map(|&m| longest_window[m])
                .collect::<Option<Vec<_>>>()
                .and_then(|w| w.into_iter().max());
            if !running
                && let Some(longest) = longest
                && unit > longest
            {
                notes.push(model::PlanNote::LongerThanShifts {
                    order_id: order.id,
                    order_number: order.number.clone(),
                    operation_id: op.id,
                    step: op.name.clone(),
                    needs_seconds: unit,
                    longest_open_seconds: longest,
                });
            }
            let window = eligible.iter().filter_map(|&m| longest_window[m]).min();
            // A lot longer than the longest stretch its machines work without a break is split
            // into parts that each fit one (the units shared evenly, so none holds more than fit).
            let parts = match window {
                Some(window) if !running && window > setup && whole + setup > window => {
                    let fit = ((window - setup) as f64 / op.unit_seconds).floor().max(1.0);
                    (f64::from(lot) / fit).ceil() as u32
                }
                _ => 1,
            }
            .clamp(1, lot.max(1));
            for part in 0..parts {
                let quantity = lot / parts + u32::from(part < lot % parts);
                let duration = if running {
                    // Work does not progress while its machine is down.
                    let shown = progress.get(&op.id).copied();
                    let stopped = match (shown, op.machine_id) {
                        (Some(from), Some(machine)) => down_seconds(store, machine, from, now)?,
                        _ => 0,
                    };
                    work_left(&op, quantity, shown, now, stopped)
                } else {
                    op.processing_seconds(quantity).max(1) as i64
                };
                let here = op
                    .machine_id
                    .and_then(|m| machine_index.get(&m))
                    .copied()
                    .filter(|m| eligible.contains(m));
                // Running work stays where it runs. It starts now only as the first open step of
                // its order: a step a machine reported started while an earlier one is still open
                // (out of routing order) is planned after that one, so the plan stays feasible.
                let alternatives: Vec<Alternative> = match here.filter(|_| running) {
                    Some(machine) => vec![Alternative { machine, duration }],
                    None => eligible.iter().map(|&machine| Alternative { machine, duration }).collect(),
                };
                // Frozen work stays, unless its material now comes after its start.
                let material_there = |start: i64| {
                    order.material_ready.is_none_or(|ready| now + time::Duration::seconds(start) >= ready)
                };
                let fixed = match (running && operations.is_empty(), here) {
                    (true, Some(machine)) => Some(FixedStart { machine, start: 0 }),
                    _ => frozen
                        .get(&(op.id, part))
                        .filter(|(_, start)| chain_frozen && material_there(*start))
                        .and_then(|(machine, start)| machine_index.get(machine).map(|&m| (m, *start)))
                        .filter(|(machine, _)| eligible.contains(machine))
                        .map(|(machine, start)| FixedStart { machine, start }),
                };
                chain_frozen &= fixed.is_some();
                // Where the active plan had it (a part it had not, none).
                let planned = planned_at
                    .get(&(op.id, part))
                    .and_then(|(machine, start)| machine_index.get(machine).map(|&m| (m, *start)));
                let missed = !running && planned.is_some_and(|(_, start)| start < 0);
                let slipped = fixed.is_none() && !running && (missed || chain_slipped);
                if fixed.is_none() && !running {
                    chain_slipped = slipped;
                }
                held_here.push(Held { running: running && fixed.is_some(), planned, slipped });
                operations.push(scheduler::Operation { alternatives, family, fixed });
                positions.push((op.clone(), part, quantity));
            }
        }
        let due = (order.due - now).whole_seconds();
        // Work waits for its material, unless it is already running.
        let release = order
            .material_ready
            .filter(|_| !operations.iter().any(|op| op.fixed.is_some()))
            .map_or(0, |ready| ((ready - now).whole_milliseconds() as i64 + 999).div_euclid(1000).max(0));
        problem_jobs.push(Job { release, due: Some(due), weight: i64::from(order.priority), operations });
        held.push(held_here);
        jobs.push((order, positions));
    }
    // A machine without running work is set up for the family it last produced, so its first
    // planned operation of another family needs a setup. (Running work starts now without one.)
    let mut running_on = vec![false; machines.len()];
    for (job, held) in problem_jobs.iter().zip(&held) {
        for (op, _) in job.operations.iter().zip(held).filter(|(_, held)| held.running) {
            if let Some(fixed) = op.fixed {
                running_on[fixed.machine] = true;
            }
        }
    }
    let idle: Vec<MachineId> =
        machines.iter().zip(&running_on).filter(|(_, running)| !**running).map(|(m, _)| m.id).collect();
    let last_families = store.last_setup_families(&idle)?;
    // An idle machine that never produced is set up for nothing yet: a family of its own, which
    // no operation has, so its first lot needs its setup too.
    let mut unknown = None;
    let mut unknown_families: HashMap<String, usize> = HashMap::new();
    let initial_family: Vec<Option<usize>> = machines
        .iter()
        .zip(&running_on)
        .map(|(machine, running)| {
            if *running {
                return None;
            }
            // Set up for a family open work has: any family of its group (no setup between them).
            let last = last_families.get(&machine.id);
            if let Some(&group) = last.and_then(|family| groups.get(family))
                && let Some(family) = family_group.iter().position(|g| *g == group)
            {
                return Some(family);
            }
            // A group of its own: a family no open work has is a change for every operation (its
            // own setup is unused).
            let new_family = || {
                family_setup.push(0);
                family_group.push(usize::MAX - family_group.len());
                family_setup.len() - 1
            };
            Some(match last {
                Some(family) => *unknown_families.entry(family.clone()).or_insert_with(new_family),
                None => *unknown.get_or_insert_with(new_family),
            })
        })
        .collect();

    let down_for = options.down_for.whole_seconds().max(0);
    let resume: Vec<i64> = machines.iter().map(|m| if down.contains(&m.id) { down_for } else { 0 }).collect();
    // Whether a machine works all of `[from, to)` (seconds from now) by its site's calendar.
    let open = |machine: usize, from: i64, to: i64| match &open_spans[machine] {
        None => true,
        Some(spans) => {
            let (from, to) = (now_ms + from * 1000, now_ms + to * 1000);
            spans.iter().any(|&(start, end)| start <= from && to <= end)
        }
    };
    settle_fixed(&mut problem_jobs, &held, &family_setup, &family_group, &initial_family, &resume, &open);

    // The calendar is laid out as far as the work could reach (a large order book runs for
    // months): all of it one piece after another, from the latest release, twice over in the
    // open share of the week (a piece that does not fit what is left of a shift waits for the
    // next one). At least `HORIZON_DAYS`, at most `MAX_HORIZON_DAYS`.
    let work: i64 = problem_jobs
        .iter()
        .flat_map(|job| &job.operations)
        .map(|op| {
            let duration = op.alternatives.iter().map(|a| a.duration).min().unwrap_or(0);
            duration + family_setup.get(op.family).copied().unwrap_or(0)
        })
        .sum();
    let latest_release = problem_jobs.iter().map(|job| job.release).max().unwrap_or(0);
    // Per site: how far, and the open time that far (when past the first lay-out).
    let mut horizons: HashMap<model::SiteId, (i64, Option<Vec<model::oee::Span>>)> = HashMap::new();
    let mut machine_horizon = vec![horizon_ms; machines.len()];
    for ((machine, spans), reach) in machines.iter().zip(&mut open_spans).zip(&mut machine_horizon) {
        let Some(spans) = spans else { continue };
        let (horizon, extended) = match horizons.entry(machine.site_id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let open_week: i64 = spans
                    .iter()
                    .map(|(s, e)| (e.min(&(now_ms + 7 * 86_400_000)) - s).max(0))
                    .sum::<i64>()
                    .max(1);
                let stretch = 7.0 * 86_400_000.0 / open_week as f64;
                let reach = latest_release * 1000 + (2.0 * work as f64 * 1000.0 * stretch) as i64;
                let days = (reach / 86_400_000 + 7).clamp(HORIZON_DAYS, MAX_HORIZON_DAYS);
                let horizon = now_ms + days * 86_400_000;
                let extended = if horizon > horizon_ms {
                    let (calendar, zone) =
                        (store.calendar(machine.site_id)?, store.site(machine.site_id)?.zone());
                    Some(shift_spans(&calendar, &zone, now_ms, horizon))
                } else {
                    None
                };
                entry.insert((horizon, extended))
            }
        };
        if let Some(extended) = extended {
            spans.clone_from(extended);
            *reach = *horizon;
        }
    }

    let n = family_setup.len();
    let setup: Vec<Vec<i64>> = (0..n)
        .map(|from| {
            (0..n)
                .map(|to| if family_group[from] == family_group[to] { 0 } else { family_setup[to] })
                .collect()
        })
        .collect();
    let maintenance = store.maintenance(None, now_ms)?;
    let mut problem_machines = Vec::with_capacity(machines.len());
    for (index, spans) in open_spans.iter().enumerate() {
        // Running work continues until it ends; breaks start after it. (Work a repair freezes is
        // planned inside open time already, and the breaks around it stay.)
        let busy_until = problem_jobs
            .iter()
            .zip(&held)
            .flat_map(|(job, held)| job.operations.iter().zip(held))
            .filter(|(_, held)| held.running)
            .filter_map(|(op, _)| {
                op.fixed
                    .filter(|f| f.machine == index)
                    .and_then(|f| op.duration_on(f.machine).map(|d| f.start + d))
            })
            .max()
            .unwrap_or(0);
        let unavailable = match spans {
            None => Vec::new(),
            Some(open) => {
                let closed = model::oee::subtract(&[(now_ms, machine_horizon[index])], open);
                closed
                    .into_iter()
                    .map(|(start, end)| Interval {
                        start: (start - now_ms) / 1000,
                        end: (end - now_ms + 999) / 1000,
                    })
                    .filter_map(|interval| {
                        let start = interval.start.max(busy_until);
                        (start < interval.end).then_some(Interval { start, end: interval.end })
                    })
                    .collect()
            }
        };
        let mut unavailable = unavailable;
        if down.contains(&machines[index].id) && down_for > 0 {
            unavailable.push(Interval { start: 0, end: down_for });
        }
        // Planned maintenance; running work finishes first.
        for window in maintenance.iter().filter(|w| w.machine_id == machines[index].id) {
            let start = (window.start - now).whole_milliseconds().div_euclid(1000) as i64;
            let start = start.max(busy_until);
            // Rounded out: work starts only once the window has wholly passed.
            let end = ((window.end - now).whole_milliseconds() as i64 + 999).div_euclid(1000);
            if start < end {
                unavailable.push(Interval { start, end });
            }
        }
        let spans = model::oee::merge(unavailable.iter().map(|i| (i.start, i.end)).collect());
        unavailable = spans.into_iter().map(|(start, end)| Interval { start, end }).collect();
        problem_machines.push(scheduler::Machine {
            setup: if n > 0 { setup.clone() } else { Vec::new() },
            initial_family: initial_family[index],
            unavailable,
        });
    }
    // Every schedule of the problem ends before all of its work done one piece after another,
    // after the latest release and the last closed time: that has to have a date.
    let last_closed = problem_machines.iter().flat_map(|m| &m.unavailable).map(|i| i.end).max().unwrap_or(0);
    let largest_setup = family_setup.iter().copied().max().unwrap_or(0);
    let work = problem_jobs
        .iter()
        .flat_map(|job| &job.operations)
        .map(|op| op.alternatives.iter().map(|a| a.duration).max().unwrap_or(0).saturating_add(largest_setup))
        .fold(0i64, i64::saturating_add);
    let reach = latest_release.saturating_add(last_closed).saturating_add(work);
    if reach > MAX_REACH_SECONDS {
        return Err(PlanError::TooFar(format!(
            "the open work reaches {} years ahead (material dates and lots of all released orders); \
             look for an order with an absurd quantity or material date and cancel or change it",
            reach / (366 * 86_400)
        )));
    }
    let problem = Problem { name: format!("plan-{now_ms}"), machines: problem_machines, jobs: problem_jobs };
    let based_on = active.map_or(0, |active| active.id);
    let planned = held.iter().map(|positions| positions.iter().map(|held| held.planned).collect()).collect();
    Ok(Built {
        problem,
        machines: machines.iter().map(|m| m.id).collect(),
        jobs,
        family_setup,
        family_group,
        notes,
        made_at,
        based_on,
        planned,
    })
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The solver's schedule failed the checker, or the problem was invalid.
    #[error("{0}")]
    Solver(String),
    /// The open work reaches too far ahead to be given dates.
    #[error("{0}")]
    TooFar(String),
}

/// Builds and solves a plan at `now`. A repair whose frozen work the shop floor has overtaken
/// (a running operation still busy where the active plan had the next one) can be infeasible; the
/// plan is then made afresh.
pub fn plan(
    store: &Store,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    options: &Options,
) -> Result<NewPlan, PlanError> {
    plan_with(store, now, objective_name, time_limit, options, None, &[])
}

/// The plan that releasing `draft` now would bring, for a delivery quote (stored nowhere): with an
/// active plan and `options.repair`, the repair that slots a released order in (every machine's
/// order kept; the draft by its ATCS start, or of `rush_priority` ahead of all work not fixed),
/// as the automatic re-plan does (`true` with the plan); else a plan made afresh in
/// `time_limit` (`false`).
pub fn quote(
    store: &Store,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    options: &Options,
    draft: &Draft,
) -> Result<(NewPlan, bool), PlanError> {
    let objective = known_objective(objective_name)?;
    let built = build_with(store, now, options, Some(draft))?;
    let now = origin(now);
    let started = std::time::Instant::now();
    if options.repair.is_some()
        && let Some(kept) = shifted(&built, options.rush_priority, objective)
    {
        let plan = to_plan(&built, now, objective_name, &unsearched(&built.problem, kept, started.elapsed()));
        return Ok((plan, true));
    }
    let plan = solve_from(&built, now, objective_name, time_limit, options.threads, None, None)
        .map_err(PlanError::Solver)?;
    Ok((plan, false))
}

/// [`plan`], with a flag that someone who no longer wants the plan (the client went away) sets
/// (the search then ends at once with what it has), and where a repair (`options.repair`) keeps
/// none of the places the active plan gave the work of `reslot` orders not yet running or frozen:
/// they are slotted in as new orders are (by ATCS, and ahead of all other such work when of rush
/// priority).
pub fn plan_with(
    store: &Store,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    options: &Options,
    cancel: Option<&Arc<AtomicBool>>,
    reslot: &[model::OrderId],
) -> Result<NewPlan, PlanError> {
    let objective = known_objective(objective_name)?;
    let mut built = build(store, now, options)?;
    let now = origin(now);
    let started = std::time::Instant::now();
    // Orders to slot in anew keep none of their places.
    for ((order, _), planned) in built.jobs.iter().zip(&mut built.planned) {
        if reslot.contains(&order.id) {
            planned.fill(None);
        }
    }
    if let Some(freeze) = options.repair
        && let Some(active) = store.active_plan()?
        && let Some(kept) = shifted(&built, options.rush_priority, objective)
    {
        let repaired = to_plan(
            &built,
            now,
            objective_name,
            &unsearched(&built.problem, kept.clone(), started.elapsed()),
        );
        // Keeping every machine's order can cost far more than what happened: a lot pushed
        // past a shift's end waits for the next shift, and so does the last lot of every later
        // shift on that machine and on the machines of their orders. Then a search from the
        // kept order may move work (not the near term), and its plan is taken when it wins
        // back enough.
        let primary = |twt: i64, end: Timestamp| ranked(objective, twt, (end - now).whole_seconds()).0;
        let kept_figure = primary(repaired.weighted_tardiness, repaired.makespan_end) as f64;
        let active_figure = primary(active.weighted_tardiness, active.makespan_end) as f64;
        let percent = options.search_loss_percent;
        if percent <= 0.0 || kept_figure <= active_figure * (1.0 + percent / 100.0) {
            return Ok(repaired);
        }
        let near = hold_near_term(&built, &kept, freeze, options.rush_priority);
        let searched =
            solve_from(&near, now, objective_name, time_limit, options.threads, Some(kept), cancel);
        let cancelled = cancel.is_some_and(|stop| stop.load(Ordering::Relaxed));
        if let Ok(searched) = searched
            && !cancelled
            && (primary(searched.weighted_tardiness, searched.makespan_end) as f64)
                <= kept_figure * (1.0 - percent.min(100.0) / 100.0)
        {
            tracing::info!(
                kept = repaired.weighted_tardiness,
                searched = searched.weighted_tardiness,
                "keeping every machine's order cost too much; a search moved work"
            );
            return Ok(searched);
        }
        tracing::info!(
            kept = repaired.weighted_tardiness,
            "keeping every machine's order cost much, but a search found too little better; the kept order stays"
        );
        // The plan took the search's time too.
        let solve_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        return Ok(NewPlan { solve_ms, ..repaired });
    }
    solve_or_afresh(store, &built, now, objective_name, time_limit, options, None, cancel)
}

/// How much worse than the active plan (in weighted tardiness, or in its end for the makespan
/// objective; percent) a repair that keeps every machine's order may be before a search from it is
/// tried, and how much better that search must be to be taken instead, unless chosen
/// ([`Options::search_loss_percent`]).
pub const REPAIR_SEARCH_LOSS_PERCENT: f64 = 10.0;

/// `built` with the work that the active plan started within `freeze` of now, and that the kept
/// order (`kept`, a schedule of `built`) still starts within it, fixed where the kept order has
/// it: a search may move the rest, not what the shop floor is about to do. So are the orders of
/// `rush_priority` or more new to the plan, which the kept order put ahead of all other work: a
/// search must not put them back.
fn hold_near_term(
    built: &Built,
    kept: &[scheduler::ScheduledOperation],
    freeze: time::Duration,
    rush_priority: u8,
) -> Built {
    let horizon = freeze.whole_seconds();
    let mut near = built.clone();
    let mut placed: HashMap<(usize, usize), &scheduler::ScheduledOperation> =
        kept.iter().map(|op| ((op.job, op.op), op)).collect();
    for (job, ((order, _), planned)) in built.jobs.iter().zip(&built.planned).enumerate() {
        let rush =
            rush_priority > 0 && order.priority >= rush_priority && planned.iter().all(Option::is_none);
        if rush {
            for (k, spec) in near.problem.jobs[job].operations.iter_mut().enumerate() {
                if let (None, Some(scheduled)) = (spec.fixed, placed.remove(&(job, k))) {
                    spec.fixed = Some(FixedStart { machine: scheduled.machine, start: scheduled.start });
                }
            }
            continue;
        }
        // A prefix of each job, as frozen work is.
        for (k, planned) in planned.iter().enumerate() {
            let Some(scheduled) = placed.remove(&(job, k)) else { break };
            let spec = &mut near.problem.jobs[job].operations[k];
            if spec.fixed.is_some() {
                continue;
            }
            let near_term = scheduled.start < horizon && planned.is_some_and(|(_, start)| start < horizon);
            if !near_term {
                break;
            }
            spec.fixed = Some(FixedStart { machine: scheduled.machine, start: scheduled.start });
        }
    }
    near
}

/// [`solve_from`] `built`; when that fails for a problem with frozen work (`options.repair`),
/// which the shop floor may have overtaken, the plan is made afresh without it.
#[allow(
    clippy::too_many_arguments,
    reason = "a private step of `plan` and `reoptimise`, passing their arguments on"
)]
fn solve_or_afresh(
    store: &Store,
    built: &Built,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    options: &Options,
    current: Option<Vec<scheduler::ScheduledOperation>>,
    interrupt: Option<&Arc<AtomicBool>>,
) -> Result<NewPlan, PlanError> {
    match solve_from(built, now, objective_name, time_limit, options.threads, current, interrupt) {
        Ok(plan) => Ok(plan),
        Err(error) if options.repair.is_some() => {
            tracing::info!(%error, "frozen work infeasible; planning afresh");
            // Judged against the plan the first build read, as it began first.
            let fresh = Built {
                based_on: built.based_on,
                ..build(store, built.made_at, &Options { repair: None, ..*options })?
            };
            solve_from(&fresh, now, objective_name, time_limit, options.threads, None, interrupt)
                .map_err(PlanError::Solver)
        }
        Err(error) => Err(PlanError::Solver(error)),
    }
}

/// A re-plan for a change of the rules the active plan was made under (maintenance entered over
/// its work, shifts or holidays changed, material later than planned): the work of the freeze
/// horizon kept (`options.repair`), and a search of `time_limit` started from the active plan moved
/// on to now, where that still fits the rules, as well as from the dispatching rules. Unlike a
/// repair it may move work to other machines and re-order it: the old order may no longer fit,
/// and work pushed back in one piece behind a long closure would be late for no reason.
pub fn replan(
    store: &Store,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    options: &Options,
) -> Result<NewPlan, PlanError> {
    let objective = known_objective(objective_name)?;
    let built = build(store, now, options)?;
    let now = origin(now);
    let kept = shifted(&built, options.rush_priority, objective);
    solve_or_afresh(store, &built, now, objective_name, time_limit, options, kept, None)
}

/// What a scheduled re-optimisation found.
pub struct Reoptimisation {
    /// The active plan as it stands at that time (moved on as a repair would move it), when it
    /// can still be kept: late orders, Σ priority × seconds late, end of the last operation.
    pub current: Option<(u32, i64, Timestamp)>,
    /// The searched plan, when it gains at least the minimum over the active plan (always when
    /// that cannot be kept); never when the search was interrupted.
    pub better: Option<NewPlan>,
    /// The search was cut short by `interrupt` (something urgent came up): it should run again.
    pub interrupted: bool,
}

/// A scheduled re-optimisation at `now`: a full search of `time_limit` over all open work, the
/// work of the freeze horizon kept (`options.repair`), starting from the active plan moved on to
/// now as well as from the dispatching rules. Repairs keep every machine's order, so a plan
/// drifts after many of them; this is the fresh look. The result counts as better only when its
/// primary figure (weighted tardiness, or the makespan for that objective) falls by
/// `min_gain_percent`, or stays and its secondary figure falls by that much, so a trifle does not
/// reshuffle the shop floor. Setting `interrupt` ends the search early, and nothing is offered.
pub fn reoptimise(
    store: &Store,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    options: &Options,
    min_gain_percent: f64,
    interrupt: &Arc<AtomicBool>,
) -> Result<Reoptimisation, PlanError> {
    let objective = known_objective(objective_name)?;
    let built = build(store, now, options)?;
    let now = origin(now);
    let kept = shifted(&built, options.rush_priority, objective);
    let current = kept.as_ref().map(|operations| {
        let plan = to_plan(
            &built,
            now,
            objective_name,
            &unsearched(&built.problem, operations.clone(), Duration::ZERO),
        );
        (plan.late_orders, plan.weighted_tardiness, plan.makespan_end)
    });
    let searched =
        solve_or_afresh(store, &built, now, objective_name, time_limit, options, kept, Some(interrupt))?;
    if interrupt.load(Ordering::Relaxed) {
        return Ok(Reoptimisation { current, better: None, interrupted: true });
    }
    let better = match current {
        None => Some(searched),
        Some((_, twt, end)) => {
            let before = ((end - now).whole_seconds(), twt);
            let after = ((searched.makespan_end - now).whole_seconds(), searched.weighted_tardiness);
            gains(objective, before, after, min_gain_percent).then_some(searched)
        }
    };
    Ok(Reoptimisation { current, better, interrupted: false })
}

/// Whether `after` (makespan, weighted tardiness) beats `before` by at least `percent` under
/// `objective`: in its primary figure, or in its secondary figure with the primary not worse.
fn gains(objective: Objective, before: (i64, i64), after: (i64, i64), percent: f64) -> bool {
    let order = |(makespan, twt): (i64, i64)| ranked(objective, twt, makespan);
    let ((primary, secondary), (new_primary, new_secondary)) = (order(before), order(after));
    let by_enough = |old: i64, new: i64| new < old && (new as f64) <= old as f64 * (1.0 - percent / 100.0);
    by_enough(primary, new_primary) || (new_primary <= primary && by_enough(secondary, new_secondary))
}

/// The stable repair: the active plan's machines and order kept, every operation pushed only as far
/// as the new situation demands (outages, running work, frozen work), and work that would wait behind
/// work held up for longer going ahead into the time it leaves free; work the old plan did not have
/// is slotted in by its ATCS start, or, for orders of `rush_priority` or more, ahead of all work
/// that is not fixed (`Built::planned`: the places a repair build knows). `None` when the result
/// would break a rule, or there was no active plan.
fn shifted(
    built: &Built,
    rush_priority: u8,
    objective: Objective,
) -> Option<Vec<scheduler::ScheduledOperation>> {
    if built.based_on == 0 {
        return None;
    }
    let atcs = baseline::dispatch(&built.problem, baseline::Rule::Atcs);
    let mut assignment: Vec<Vec<(usize, i64)>> =
        built.problem.jobs.iter().map(|job| vec![(0, 0); job.operations.len()]).collect();
    for scheduled in &atcs {
        assignment[scheduled.job][scheduled.op] = (scheduled.machine, scheduled.start);
    }
    for (job, ((order, _), planned)) in built.jobs.iter().zip(&built.planned).enumerate() {
        let rush = rush_priority > 0 && order.priority >= rush_priority;
        for (k, planned) in planned.iter().enumerate() {
            let spec = &built.problem.jobs[job].operations[k];
            if let Some(fixed) = spec.fixed {
                assignment[job][k] = (fixed.machine, fixed.start);
            } else if let Some((index, start)) = *planned
                && spec.alternatives.iter().any(|a| a.machine == index)
            {
                assignment[job][k] = (index, start);
            } else if rush {
                assignment[job][k].1 = RUSH_KEY;
            }
        }
    }
    // Work going ahead into the time that held-up work leaves free mostly costs far less, but not
    // always (what goes ahead may take a place that more urgent work then lacks): the better of
    // the two is kept, and the plain shift when they are equal.
    let score = |operations: &[scheduler::ScheduledOperation]| {
        let (makespan, twt) = scheduler::objectives(&built.problem, operations);
        ranked(objective, twt, makespan)
    };
    let [plain, filled] = [false, true].map(|fill_gaps| {
        baseline::list_schedule(&built.problem, &assignment, fill_gaps)
            .filter(|operations| scheduler::check(&built.problem, operations).is_empty())
    });
    match (plain, filled) {
        (Some(plain), Some(filled)) if score(&filled) < score(&plain) => Some(filled),
        (Some(plain), _) => Some(plain),
        (None, filled) => filled,
    }
}

/// The list-scheduling priority of a rush order's new work in a repair: before any other.
const RUSH_KEY: i64 = i64::MIN / 4;

/// A schedule made without search (a dispatching rule or a right shift) as a solver answer;
/// `elapsed` is the time it took to make, shown as the plan's solve time.
fn unsearched(
    problem: &Problem,
    operations: Vec<scheduler::ScheduledOperation>,
    elapsed: Duration,
) -> scheduler::Solution {
    let (makespan, weighted_tardiness) = scheduler::objectives(problem, &operations);
    scheduler::Solution {
        operations,
        makespan,
        weighted_tardiness,
        feasible: true,
        iterations: 0,
        time_to_best: elapsed,
        elapsed,
    }
}

/// The objective of a plan when none is asked for: fewest late orders (weighted by priority),
/// then the earliest finish.
pub const DEFAULT_OBJECTIVE: &str = "tardiness_then_makespan";

/// A schedule's weighted tardiness and makespan in the order `objective` compares them: the
/// figure it minimises first.
fn ranked(objective: Objective, weighted_tardiness: i64, makespan: i64) -> (i64, i64) {
    match objective {
        Objective::Makespan => (makespan, weighted_tardiness),
        Objective::WeightedTardiness | Objective::TardinessThenMakespan => (weighted_tardiness, makespan),
    }
}

/// [`objective`], or the error that it is unknown.
fn known_objective(name: &str) -> Result<Objective, PlanError> {
    objective(name).ok_or_else(|| PlanError::Solver(format!("unknown objective {name}")))
}

/// The objectives a plan may minimise, by API name.
pub fn objective(name: &str) -> Option<Objective> {
    match name {
        "makespan" => Some(Objective::Makespan),
        "weighted_tardiness" => Some(Objective::WeightedTardiness),
        "tardiness_then_makespan" => Some(Objective::TardinessThenMakespan),
        _ => None,
    }
}

/// Shortest time limit at which the planner tries every ATCS look-ahead for its warm start.
const LOOKAHEAD_PORTFOLIO_FROM: Duration = Duration::from_secs(2);

/// The default threads of a planning search (`[planning] solver_threads = 0`): two where the
/// machine has them. With a warm start the second thread searches from the solver's own
/// constructions (`scheduler::Config::initial`), and the better of the two plans wins: on three
/// generated factories each thread had the better plan on some (BENCHMARKS.md, "Planning a
/// generated high-mix factory").
pub fn solver_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Solves `built` for at most `time_limit` with `threads` solver threads (at least one) and turns
/// the schedule into a plan to store.
pub fn solve(
    built: &Built,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    threads: usize,
) -> Result<NewPlan, String> {
    solve_from(built, origin(now), objective_name, time_limit, threads, None, None)
}

/// [`solve`], with `current` (a valid schedule of `built`, such as the active plan moved on to
/// now) among the warm starts: the plan is then never worse than `current`.
fn solve_from(
    built: &Built,
    now: Timestamp,
    objective_name: &str,
    time_limit: Duration,
    threads: usize,
    current: Option<Vec<scheduler::ScheduledOperation>>,
    interrupt: Option<&Arc<AtomicBool>>,
) -> Result<NewPlan, String> {
    let started = std::time::Instant::now();
    let objective = objective(objective_name).ok_or_else(|| format!("unknown objective {objective_name}"))?;
    if built.problem.jobs.is_empty() {
        return Ok(NewPlan {
            created_at: built.made_at,
            objective: objective_name.to_string(),
            makespan_end: now,
            weighted_tardiness: 0,
            late_orders: 0,
            setup_seconds: 0,
            solve_ms: 0,
            operations: Vec::new(),
            problem: scheduler::formats::to_json(&built.problem),
            trigger: None,
            based_on: Some(built.based_on),
            notes: built.notes.clone(),
        });
    }
    built.problem.validate().map_err(|e| format!("the planning problem is invalid: {e}"))?;
    let score = |twt: i64, makespan: i64| ranked(objective, twt, makespan);
    // The search starts from the best of the dispatching rules (a warm start), so it only ever
    // improves on what a good dispatcher would do.
    // The fastest answer (no time for search) uses ATCS alone, which beats EDD on tardiness. With
    // time, ATCS also runs with other look-aheads: each costs one dispatch (about 50 ms on 2,600
    // operations), so short searches such as repairs keep the two rules.
    let lookaheads: &[f64] = if time_limit >= LOOKAHEAD_PORTFOLIO_FROM {
        &baseline::ATCS_LOOKAHEADS
    } else {
        &[baseline::ATCS_LOOKAHEAD]
    };
    // The usual look-ahead first; the others while the rules have used less than a quarter of
    // the time (on a very large order book one dispatch takes seconds).
    let usual = lookaheads.iter().position(|&k1| k1 == baseline::ATCS_LOOKAHEAD).unwrap_or(0);
    let mut by_lookahead: Vec<Option<Vec<scheduler::ScheduledOperation>>> = vec![None; lookaheads.len()];
    // What one dispatch takes: about what checking, compacting, gap-filling and storing the plan
    // after the search take too, so that much of the limit is kept for them.
    let mut one_dispatch = Duration::ZERO;
    for index in std::iter::once(usual).chain((0..lookaheads.len()).filter(|&i| i != usual)) {
        if index != usual && started.elapsed() >= time_limit / 4 {
            break;
        }
        by_lookahead[index] =
            Some(baseline::dispatch_with(&built.problem, baseline::Rule::Atcs, lookaheads[index]));
        if index == usual {
            one_dispatch = started.elapsed();
        }
    }
    let finishing = one_dispatch;
    let mut rules: Vec<Vec<scheduler::ScheduledOperation>> = by_lookahead.into_iter().flatten().collect();
    // EDD too, unless it would leave no time for the search and the finishing (a very large
    // order book).
    if !time_limit.is_zero() && started.elapsed() + one_dispatch + finishing < time_limit {
        rules.push(baseline::dispatch(&built.problem, baseline::Rule::Edd));
    }
    rules.extend(current);
    rules.retain(|candidate| scheduler::check(&built.problem, candidate).is_empty());
    let initial = rules
        .iter()
        .min_by_key(|candidate| {
            let (makespan, twt) = scheduler::objectives(&built.problem, candidate);
            score(twt, makespan)
        })
        .cloned();
    let config = scheduler::Config {
        objective,
        // The dispatching rules' time and the finishing after the search count against the limit
        // (at least a tenth of it is left for the search), so that the limit bounds the whole
        // plan on a large order book too.
        time_limit: Some(time_limit.saturating_sub(started.elapsed() + finishing).max(time_limit / 10)),
        initial,
        threads: threads.max(1),
        clock: interrupt.map(|stop| {
            Arc::new(Interruptible { watch: scheduler::Stopwatch::start(), stop: stop.clone() })
                as Arc<dyn scheduler::Clock>
        }),
        ..scheduler::Config::default()
    };
    // A zero time limit asks for the fastest feasible plan: the best dispatching rule, no search.
    // So does an interruption before the search: its clock would start from the interrupted
    // time and not see it.
    let interrupted = interrupt.is_some_and(|stop| stop.load(Ordering::Relaxed));
    let fast = (time_limit.is_zero() || interrupted).then(|| config.initial.clone()).flatten();
    let mut solution = match fast {
        Some(operations) => unsearched(&built.problem, operations, started.elapsed()),
        None => scheduler::solve(&built.problem, &config),
    };
    // Work the search left waiting while its machine stood idle starts in that idle time: no job
    // ends later, and the dispatch lists and ETAs show what can really start.
    if scheduler::compact(&built.problem, &mut solution.operations) > 0 {
        let (makespan, weighted_tardiness) = scheduler::objectives(&built.problem, &solution.operations);
        solution.makespan = makespan;
        solution.weighted_tardiness = weighted_tardiness;
    }
    let violations = scheduler::check(&built.problem, &solution.operations);
    if !violations.is_empty() {
        return Err(format!(
            "the solver's schedule breaks {} rule(s), e.g. {:?}",
            violations.len(),
            violations[0]
        ));
    }
    // Belt and braces: should the search ever end worse than its warm start, keep the rule.
    for candidate in rules {
        if candidate.len() != solution.operations.len() {
            continue;
        }
        let (makespan, twt) = scheduler::objectives(&built.problem, &candidate);
        if score(twt, makespan) < score(solution.weighted_tardiness, solution.makespan) {
            solution.operations = candidate;
            solution.makespan = makespan;
            solution.weighted_tardiness = twt;
        }
    }
    // The gaps a repair's list schedule would fill (work going ahead into time that work before
    // it leaves free) are filled now, so that a repair with nothing changed moves nothing.
    for _ in 0..4 {
        let mut assignment: Vec<Vec<(usize, i64)>> =
            built.problem.jobs.iter().map(|job| vec![(0, 0); job.operations.len()]).collect();
        for op in &solution.operations {
            assignment[op.job][op.op] = (op.machine, op.start);
        }
        let Some(relisted) = baseline::list_schedule(&built.problem, &assignment, true) else { break };
        if relisted == solution.operations || !scheduler::check(&built.problem, &relisted).is_empty() {
            break;
        }
        let (makespan, twt) = scheduler::objectives(&built.problem, &relisted);
        if score(twt, makespan) > score(solution.weighted_tardiness, solution.makespan) {
            break;
        }
        solution.operations = relisted;
        solution.makespan = makespan;
        solution.weighted_tardiness = twt;
    }
    Ok(to_plan(built, now, objective_name, &solution))
}

/// The search's clock, which runs out at once when `stop` is set: the search then ends with the
/// best schedule found so far.
struct Interruptible {
    watch: scheduler::Stopwatch,
    stop: Arc<AtomicBool>,
}

impl scheduler::Clock for Interruptible {
    fn elapsed(&self) -> Duration {
        if self.stop.load(Ordering::Relaxed) {
            // Past any time limit, and still growing with the watch, so it never decreases.
            Duration::from_secs(1 << 40) + self.watch.elapsed()
        } else {
            self.watch.elapsed()
        }
    }
}

/// Maps a schedule back to wall-clock planned operations with the plan's figures.
fn to_plan(built: &Built, now: Timestamp, objective_name: &str, solution: &scheduler::Solution) -> NewPlan {
    let at = |seconds: i64| now + time::Duration::seconds(seconds);
    let mut operations = Vec::with_capacity(solution.operations.len());
    let mut completion = vec![0i64; built.jobs.len()];
    let mut setup_seconds = 0;
    // Setup of each operation: what its family needs after the machine's previous family.
    let mut by_machine: Vec<Vec<&scheduler::ScheduledOperation>> = vec![Vec::new(); built.machines.len()];
    for scheduled in &solution.operations {
        by_machine[scheduled.machine].push(scheduled);
    }
    for (machine, lane) in by_machine.iter_mut().enumerate() {
        lane.sort_by_key(|s| s.start);
        let mut previous: Option<usize> = built.problem.machines[machine].initial_family;
        for scheduled in lane.iter() {
            let family = built.problem.jobs[scheduled.job].operations[scheduled.op].family;
            let setup = match previous {
                Some(p) if built.family_group.get(p) != built.family_group.get(family) => {
                    built.family_setup[family]
                }
                _ => 0,
            };
            setup_seconds += setup;
            previous = Some(family);
            let (order, positions) = &built.jobs[scheduled.job];
            let (operation, part, quantity) = &positions[scheduled.op];
            completion[scheduled.job] = completion[scheduled.job].max(scheduled.end);
            operations.push(PlannedOperation {
                operation_id: operation.id,
                order_id: order.id,
                part: *part,
                quantity: *quantity,
                machine_id: built.machines[scheduled.machine],
                setup_start: at(scheduled.start - setup),
                start: at(scheduled.start),
                end: at(scheduled.end),
            });
        }
    }
    let late_orders = built
        .problem
        .jobs
        .iter()
        .zip(&completion)
        .filter(|(job, end)| job.due.is_some_and(|due| **end > due))
        .count();
    NewPlan {
        created_at: built.made_at,
        objective: objective_name.to_string(),
        makespan_end: at(solution.makespan),
        weighted_tardiness: solution.weighted_tardiness,
        late_orders: late_orders as u32,
        setup_seconds,
        solve_ms: solution.elapsed.as_millis() as i64,
        operations,
        problem: scheduler::formats::to_json(&built.problem),
        trigger: None,
        based_on: Some(built.based_on),
        notes: built.notes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use scheduler::{Alternative, FixedStart, Job, Operation};

    use super::Held;

    /// Positions that run (`true`) or not, none of them in an active plan.
    fn held(running: Vec<bool>) -> Vec<Held> {
        running.into_iter().map(|running| Held { running, planned: None, slipped: false }).collect()
    }

    fn op(machine: usize, duration: i64, fixed: Option<i64>) -> Operation {
        Operation {
            alternatives: vec![Alternative { machine, duration }],
            family: 0,
            fixed: fixed.map(|start| FixedStart { machine, start }),
        }
    }

    #[test]
    fn a_reoptimised_plan_must_gain_enough_in_the_objective_s_order() {
        use scheduler::Objective::{Makespan, TardinessThenMakespan, WeightedTardiness};

        use super::gains;
        // (makespan, weighted tardiness) before and after, 1 %.
        let tardiness_first = |before, after| gains(TardinessThenMakespan, before, after, 1.0);
        assert!(tardiness_first((1_000, 10_000), (2_000, 9_900)), "1 % less tardiness, whatever the end");
        assert!(!tardiness_first((1_000, 10_000), (1_100, 9_901)), "0.99 % is not enough");
        assert!(tardiness_first((1_000, 10_000), (900, 9_901)), "0.99 % less tardiness, 10 % sooner");
        assert!(tardiness_first((1_000, 10_000), (990, 10_000)), "as late, 1 % sooner");
        assert!(!tardiness_first((1_000, 10_000), (900, 10_001)), "sooner but later on tardiness");
        assert!(tardiness_first((1_000, 0), (990, 0)) && !tardiness_first((1_000, 0), (995, 0)));
        assert!(!tardiness_first((1_000, 10), (1_000, 10)), "equal is no gain");
        assert!(gains(WeightedTardiness, (1_000, 10_000), (1_000, 9_000), 1.0));
        assert!(gains(Makespan, (1_000, 10_000), (990, 20_000), 1.0));
        assert!(!gains(Makespan, (1_000, 10_000), (1_001, 0), 1.0));
        assert!(gains(Makespan, (1_000, 10_000), (1_000, 9_999), 0.0), "0 %: any gain");
    }

    #[test]
    fn frozen_work_before_its_running_predecessor_ends_is_replanned_with_the_rest_of_its_job() {
        // Job 0: running on machine 0 for 100 s (from now), then frozen on machine 1 at 60 s (the
        // active plan expected the running work to end sooner) and at 200 s: both are replanned.
        // Job 1: running, then frozen after it ends: kept.
        let job = |operations| Job { release: 0, due: None, weight: 1, operations };
        let mut jobs = vec![
            job(vec![op(0, 100, Some(0)), op(1, 50, Some(60)), op(1, 10, Some(200))]),
            job(vec![op(2, 30, Some(0)), op(1, 20, Some(30))]),
        ];
        let running = [vec![true, false, false], vec![true, false]].map(held);
        super::settle_fixed(&mut jobs, &running, &[0], &[0], &[], &[], &|_, _, _| true);
        let fixed: Vec<Vec<Option<i64>>> = jobs
            .iter()
            .map(|job| job.operations.iter().map(|op| op.fixed.map(|f| f.start)).collect())
            .collect();
        assert_eq!(fixed, [vec![Some(0), None, None], vec![Some(0), Some(30)]]);
    }

    #[test]
    fn frozen_work_too_soon_for_the_setup_from_the_machine_s_family_is_replanned() {
        // Family 1 takes 40 s to set up. Machine 0 is set up for family 0: frozen work of family
        // 1 at 30 s cannot be kept (job 0), at 40 s it can (job 1 on machine 1, same family set).
        let job = |operations| Job { release: 0, due: None, weight: 1, operations };
        let family_one = |machine, start| Operation { family: 1, ..op(machine, 10, Some(start)) };
        let mut jobs = vec![job(vec![family_one(0, 30), op(2, 5, Some(45))]), job(vec![family_one(1, 40)])];
        let running = [vec![false, false], vec![false]].map(held);
        super::settle_fixed(&mut jobs, &running, &[0, 40], &[0, 1], &[Some(0), Some(0)], &[], &|_, _, _| {
            true
        });
        let fixed: Vec<Vec<Option<i64>>> = jobs
            .iter()
            .map(|job| job.operations.iter().map(|op| op.fixed.map(|f| f.start)).collect())
            .collect();
        assert_eq!(fixed, [vec![None, None], vec![Some(40)]]);
    }

    #[test]
    fn frozen_work_behind_work_still_to_come_on_its_machine_goes_with_it() {
        // Job 0 was to start on machine 0 ten seconds ago and has not: it is free, and so is the
        // work frozen after it there (job 1 at 50 s), with the rest of its job (job 1 at 200 s on
        // machine 1), and what follows that on machine 1 (job 2 at 300 s). Job 3 on machine 1,
        // before them all, stays.
        let job = |operations| Job { release: 0, due: None, weight: 1, operations };
        let mut jobs = vec![
            job(vec![op(0, 40, None)]),
            job(vec![op(0, 40, Some(50)), op(1, 10, Some(200))]),
            job(vec![op(1, 10, Some(300))]),
            job(vec![op(1, 10, Some(20))]),
        ];
        let at =
            |machine, start| Held { running: false, planned: Some((machine, start)), slipped: start < 0 };
        let held = [vec![at(0, -10)], vec![at(0, 50), at(1, 200)], vec![at(1, 300)], vec![at(1, 20)]];
        super::settle_fixed(&mut jobs, &held, &[0], &[0], &[], &[], &|_, _, _| true);
        let fixed: Vec<Vec<Option<i64>>> = jobs
            .iter()
            .map(|job| job.operations.iter().map(|op| op.fixed.map(|f| f.start)).collect())
            .collect();
        assert_eq!(fixed, [vec![None], vec![None, None], vec![None], vec![Some(20)]]);
    }
}
