//! The shop floor against the active plan: which lots are behind it and which ahead, for the plan
//! page, the overview and the automatic repairs.

use std::collections::HashMap;

use model::{MachineId, OperationId, OrderStatus, PlannedOperation, SiteId, Timestamp};
use store::{Store, StoreError};

/// One lot of a plan: a planned operation, over all its parts when it is split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Lot {
    /// Index of its first part in the parts given.
    pub index: usize,
    /// When its first part's setup is planned to start.
    pub start: Timestamp,
    /// When its last part is planned to end.
    pub end: Timestamp,
    /// Where the operation stands now.
    pub status: OrderStatus,
}

/// Plan `plan`'s `operations` with where each stands now, as [`lots`] takes them.
pub(crate) fn with_statuses<'a>(
    store: &Store,
    plan: i64,
    operations: &'a [PlannedOperation],
) -> Result<Vec<(&'a PlannedOperation, OrderStatus)>, StoreError> {
    let statuses = store.plan_operation_statuses(plan)?;
    Ok(operations
        .iter()
        .filter_map(|op| statuses.get(&op.operation_id).map(|status| (op, *status)))
        .collect())
}

/// One operation's place in the active plan (all its parts together).
#[derive(Debug, PartialEq)]
pub(crate) struct Planned {
    /// The machines of its parts, in the order they come.
    pub machines: Vec<MachineId>,
    /// Its first part's setup start.
    pub setup_start: Timestamp,
    /// Its first part's start.
    pub start: Timestamp,
    /// Its last part's end.
    pub end: Timestamp,
    /// How many parts.
    pub parts: usize,
}

/// A plan's operations of one order, by operation.
pub(crate) fn planned_by_operation(
    operations: &[PlannedOperation],
    order: model::OrderId,
) -> HashMap<OperationId, Planned> {
    let mut out: HashMap<OperationId, Planned> = HashMap::new();
    for op in operations.iter().filter(|op| op.order_id == order) {
        out.entry(op.operation_id)
            .and_modify(|p| {
                if !p.machines.contains(&op.machine_id) {
                    p.machines.push(op.machine_id);
                }
                p.setup_start = p.setup_start.min(op.setup_start);
                p.start = p.start.min(op.start);
                p.end = p.end.max(op.end);
                p.parts += 1;
            })
            .or_insert(Planned {
                machines: vec![op.machine_id],
                setup_start: op.setup_start,
                start: op.start,
                end: op.end,
                parts: 1,
            });
    }
    out
}

/// The lots of `parts` (planned operations, each with its status), in no particular order.
pub(crate) fn lots<P: std::borrow::Borrow<PlannedOperation>>(parts: &[(P, OrderStatus)]) -> Vec<Lot> {
    let mut lots: HashMap<OperationId, Lot> = HashMap::new();
    for (index, (op, status)) in parts.iter().enumerate() {
        let op = op.borrow();
        let lot = lots.entry(op.operation_id).or_insert(Lot {
            index,
            start: op.setup_start,
            end: op.end,
            status: *status,
        });
        if op.setup_start < lot.start {
            (lot.index, lot.start) = (index, op.setup_start);
        }
        lot.end = lot.end.max(op.end);
    }
    lots.into_values().collect()
}

/// The lots that have fallen behind: not started though their planned start has passed, or still
/// running past their planned end, each by more than `grace`. Returns, per lot, the index of its
/// first part in `parts` and how far behind it is, the furthest first.
pub(crate) fn behind_lots<P: std::borrow::Borrow<PlannedOperation>>(
    parts: &[(P, OrderStatus)],
    now: Timestamp,
    grace: time::Duration,
) -> Vec<(usize, time::Duration)> {
    let mut out: Vec<(usize, time::Duration)> = lots(parts)
        .into_iter()
        .filter_map(|lot| {
            let due = match lot.status {
                OrderStatus::Planned | OrderStatus::Released => lot.start,
                OrderStatus::Running => lot.end,
                OrderStatus::Done | OrderStatus::Cancelled => return None,
            };
            (now - due > grace).then_some((lot.index, now - due))
        })
        .collect();
    out.sort_by_key(|&(index, by)| (std::cmp::Reverse(by), parts[index].0.borrow().operation_id));
    out
}

/// How many lots run off the plan by more than `by`: `(late, early, cancelled)`.
///
/// Late: still running that long past the planned end, or not started that long past the planned
/// start. Not-started lots count only once the shop floor of their site reports progress on the plan (some lot
/// running or done), so a plant that does not report its work is not re-planned over and over.
/// Early: started that long before the planned start, or finished that long before the planned
/// end. Cancelled: lots of cancelled work whose planned end is that far ahead (machine time the
/// plan holds for work that will not run).
///
/// Sites report apart: a site counts as reporting when a lot on one of its machines (`site_of`;
/// machines it lacks make one site of their own) is running or done, so one site's work not begun
/// is not counted late because another site reports.
pub(crate) fn deviations<P: std::borrow::Borrow<PlannedOperation>>(
    parts: &[(P, OrderStatus)],
    now: Timestamp,
    by: time::Duration,
    site_of: &HashMap<MachineId, SiteId>,
) -> (u32, u32, u32) {
    let lots = lots(parts);
    let site = |lot: &Lot| site_of.get(&parts[lot.index].0.borrow().machine_id).copied();
    let reporting: std::collections::HashSet<Option<SiteId>> = lots
        .iter()
        .filter(|lot| matches!(lot.status, OrderStatus::Running | OrderStatus::Done))
        .map(site)
        .collect();
    let (mut late, mut early, mut cancelled) = (0, 0, 0);
    for lot in &lots {
        match lot.status {
            OrderStatus::Planned | OrderStatus::Released => {
                late += u32::from(reporting.contains(&site(lot)) && now - lot.start > by)
            }
            OrderStatus::Running => {
                late += u32::from(now - lot.end > by);
                early += u32::from(lot.start - now > by);
            }
            OrderStatus::Done => early += u32::from(lot.end - now > by),
            OrderStatus::Cancelled => cancelled += u32::from(lot.end - now > by),
        }
    }
    (late, early, cancelled)
}

#[cfg(test)]
mod tests {
    use model::OrderId;
    use time::macros::datetime;

    use super::*;

    const NINE: Timestamp = datetime!(2026-11-24 09:00 UTC);

    /// A part of operation `op`, planned from `start` to `end` minutes after nine.
    fn part(op: i64, start: i64, end: i64) -> PlannedOperation {
        PlannedOperation {
            operation_id: OperationId(op),
            order_id: OrderId(op),
            part: 0,
            quantity: 1,
            machine_id: MachineId(1),
            setup_start: NINE + time::Duration::minutes(start),
            start: NINE + time::Duration::minutes(start),
            end: NINE + time::Duration::minutes(end),
        }
    }

    fn at(minutes: i64) -> Timestamp {
        NINE + time::Duration::minutes(minutes)
    }

    #[test]
    fn nothing_reported_is_never_late_until_the_floor_reports() {
        let mut parts =
            vec![(part(1, 0, 120), OrderStatus::Released), (part(2, 30, 90), OrderStatus::Released)];
        let thirty = time::Duration::minutes(30);
        assert_eq!(
            deviations(&parts, at(200), thirty, &HashMap::new()),
            (0, 0, 0),
            "a plant that reports nothing"
        );
        // Once one lot has started, the other's missed start counts.
        parts[0].1 = OrderStatus::Running;
        assert_eq!(
            deviations(&parts, at(61), thirty, &HashMap::new()),
            (1, 0, 0),
            "operation 2 did not start at 9:30"
        );
        assert_eq!(
            deviations(&parts, at(60), thirty, &HashMap::new()),
            (0, 0, 0),
            "thirty minutes are within the limit"
        );
        assert_eq!(
            deviations(&parts, at(200), thirty, &HashMap::new()),
            (2, 0, 0),
            "and operation 1 overran too"
        );
    }

    #[test]
    fn a_site_that_reports_nothing_is_not_late_because_another_reports() {
        let thirty = time::Duration::minutes(30);
        // Operation 1 runs on machine 1 at one site; operation 2 was due at 9:30 on machine 2.
        let mut elsewhere = part(2, 30, 90);
        elsewhere.machine_id = MachineId(2);
        let parts = vec![(part(1, 0, 120), OrderStatus::Running), (elsewhere, OrderStatus::Released)];
        let one_site = HashMap::from([(MachineId(1), SiteId(1)), (MachineId(2), SiteId(1))]);
        assert_eq!(deviations(&parts, at(90), thirty, &one_site), (1, 0, 0));
        let two_sites = HashMap::from([(MachineId(1), SiteId(1)), (MachineId(2), SiteId(2))]);
        assert_eq!(deviations(&parts, at(90), thirty, &two_sites), (0, 0, 0), "site 2 reports nothing");
    }

    #[test]
    fn early_starts_and_finishes_count_as_early() {
        let thirty = time::Duration::minutes(30);
        let parts = vec![
            (part(1, 0, 60), OrderStatus::Done),
            (part(2, 60, 120), OrderStatus::Running),
            (part(3, 120, 180), OrderStatus::Released),
        ];
        // At 9:20, operation 1 is done 40 minutes early and 2 started 40 minutes early.
        assert_eq!(deviations(&parts, at(20), thirty, &HashMap::new()), (0, 2, 0));
        assert_eq!(deviations(&parts, at(30), thirty, &HashMap::new()), (0, 0, 0));
        // A split lot counts once, from its first part's start to its last part's end.
        let split = vec![(part(4, 0, 60), OrderStatus::Done), (part(4, 60, 120), OrderStatus::Done)];
        assert_eq!(deviations(&split, at(80), thirty, &HashMap::new()), (0, 1, 0));
        assert_eq!(lots(&split).len(), 1);
        // Cancelled work still in the plan holds machine time until a repair frees it.
        let cancelled =
            vec![(part(5, 60, 120), OrderStatus::Cancelled), (part(6, 0, 20), OrderStatus::Cancelled)];
        assert_eq!(
            deviations(&cancelled, at(0), thirty, &HashMap::new()),
            (0, 0, 1),
            "the lot ending in 20 minutes is let be"
        );
    }
}
