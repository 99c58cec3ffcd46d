//! Unit tests of the domain rules.

use super::*;
use time::macros::datetime;

fn order() -> NewOrder {
    NewOrder {
        number: "SO-1".into(),
        customer: "Kowloon Gadgets".into(),
        variant_id: VariantId(1),
        quantity: 10,
        due: datetime!(2026-12-01 18:00 +08:00),
        priority: 1,
    }
}

fn fields(problems: Vec<FieldError>) -> Vec<String> {
    problems.into_iter().map(|p| p.field).collect()
}

#[test]
fn valid_order_has_no_problems() {
    assert!(order().problems().is_empty());
}

#[test]
fn order_problems_name_their_fields() {
    let bad = NewOrder { quantity: 0, priority: 11, number: "has space".into(), ..order() };
    assert_eq!(fields(bad.problems()), ["number", "quantity", "priority"]);
}

#[test]
fn status_life_cycle_only_moves_forward() {
    use OrderStatus::*;
    assert!(Planned.can_become(Released));
    assert!(Running.can_become(Cancelled));
    assert!(!Done.can_become(Cancelled));
    assert!(!Released.can_become(Planned));
    assert!(!Cancelled.can_become(Released));
    for status in OrderStatus::ALL {
        assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
    }
}

#[test]
fn utc_offsets_parse_within_range() {
    assert_eq!(parse_utc_offset("+08:00"), Some(480));
    assert_eq!(parse_utc_offset("-03:30"), Some(-210));
    assert_eq!(parse_utc_offset("+15:00"), None);
    assert_eq!(parse_utc_offset("08:00"), None);
    assert_eq!(parse_utc_offset("+08:60"), None);
}

#[test]
fn calendar_counts_overnight_shifts_and_holidays() {
    let calendar = Calendar {
        shifts: vec![
            Shift {
                name: "day".into(),
                days: vec![Weekday::Mon],
                start: "08:00".into(),
                end: "17:00".into(),
            },
            Shift {
                name: "night".into(),
                days: vec![Weekday::Mon],
                start: "22:00".into(),
                end: "06:00".into(),
            },
        ],
        holidays: vec![time::macros::date!(2026 - 12 - 28)],
    };
    assert!(calendar.problems().is_empty());
    assert_eq!(calendar.planned_minutes(time::macros::date!(2026 - 11 - 30)), 9 * 60 + 8 * 60);
    assert_eq!(calendar.planned_minutes(time::macros::date!(2026 - 12 - 28)), 0);
    assert_eq!(calendar.planned_minutes(time::macros::date!(2026 - 12 - 1)), 0);
}

#[test]
fn calendar_serialises_dates_as_iso() {
    let calendar = Calendar { shifts: vec![], holidays: vec![time::macros::date!(2026 - 12 - 25)] };
    let json = serde_json::to_string(&calendar).unwrap();
    assert_eq!(json, r#"{"shifts":[],"holidays":["2026-12-25"]}"#);
}

#[test]
fn routing_steps_are_checked_one_by_one() {
    let routing = NewRouting {
        code: "r1".into(),
        name: "Routing".into(),
        steps: vec![RoutingStep {
            name: "mill".into(),
            eligible_machines: vec![],
            setup_seconds: 60,
            unit_seconds: f64::NAN,
            setup_family: "alu".into(),
        }],
    };
    assert_eq!(fields(routing.problems()), ["steps[0].eligible_machines", "steps[0].unit_seconds"]);
}

mod oee_tests {
    use super::*;
    use crate::oee::{self, StateSpan, compute, shift_spans};
    use time::macros::datetime;

    const HOUR: i64 = 3_600_000;

    fn ms(at: Timestamp) -> i64 {
        oee::unix_ms(at)
    }

    /// Monday to Friday 08:00–17:00 and a 22:00–06:00 night shift on Mondays, Hong Kong time.
    fn calendar() -> Calendar {
        Calendar {
            shifts: vec![
                Shift {
                    name: "day".into(),
                    days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
                    start: "08:00".into(),
                    end: "17:00".into(),
                },
                Shift {
                    name: "night".into(),
                    days: vec![Weekday::Mon],
                    start: "22:00".into(),
                    end: "06:00".into(),
                },
            ],
            holidays: vec![time::macros::date!(2026 - 12 - 25)],
        }
    }

    fn span(from: Timestamp, to: Timestamp, state: MachineState, reason: Option<&str>) -> StateSpan {
        StateSpan { start_ms: ms(from), end_ms: ms(to), state, reason: reason.map(str::to_string) }
    }

    #[test]
    fn shifts_cross_midnight_and_period_edges_in_local_time() {
        // Monday 2026-11-30 from 20:00 to Tuesday 10:00 local: night shift 22:00–06:00 (8 h)
        // plus Tuesday's day shift 08:00–10:00 (2 h).
        let from = ms(datetime!(2026-11-30 20:00 +08:00));
        let to = ms(datetime!(2026-12-01 10:00 +08:00));
        let spans = shift_spans(&calendar(), 480, from, to);
        assert_eq!(
            spans,
            vec![
                (ms(datetime!(2026-11-30 22:00 +08:00)), ms(datetime!(2026-12-01 06:00 +08:00))),
                (ms(datetime!(2026-12-01 08:00 +08:00)), to),
            ]
        );
        // Christmas (a Friday) is a holiday: no planned time at all.
        let christmas = shift_spans(
            &calendar(),
            480,
            ms(datetime!(2026-12-25 00:00 +08:00)),
            ms(datetime!(2026-12-26 00:00 +08:00)),
        );
        assert!(christmas.is_empty());
    }

    #[test]
    fn kpis_match_a_hand_computed_day() {
        // Wednesday 2026-12-02 (Monday's night shift does not reach it), day shift 08:00–17:00 = 9 h. A one-hour planned stop (12:00–13:00)
        // leaves PBT = 8 h. States: 08:00–09:00 setup, 09:00–12:00 running, 12:00–13:00 planned
        // stop, 13:00–14:30 down (spindle fault), 14:30–17:00 running, 17:00–19:00 running
        // (overtime, outside the calendar, ignored).
        // APT = 3 h + 2.5 h = 5.5 h → availability = 5.5 / 8 = 0.6875.
        // Production inside PBT: 300 units at 50 s ideal (270 good, 30 scrap), plus 100 units in
        // overtime (ignored). Ideal time = 300 × 50 s = 15,000 s; effectiveness = 15,000 / 19,800.
        // Quality = 270 / 300 = 0.9. OEE = 0.6875 × 0.757575… × 0.9 = 0.46875.
        let day = |h: u8, m: u8| {
            time::PrimitiveDateTime::new(
                time::macros::date!(2026 - 12 - 02),
                time::Time::from_hms(h, m, 0).unwrap(),
            )
            .assume_offset(time::macros::offset!(+8))
        };
        let states = vec![
            span(day(14, 30), day(19, 0), MachineState::Running, None),
            span(day(8, 0), day(9, 0), MachineState::Setup, Some("alu-stand")),
            span(day(9, 0), day(12, 0), MachineState::Running, None),
            span(day(12, 0), day(13, 0), MachineState::PlannedStop, Some("lunch")),
            span(day(13, 0), day(14, 30), MachineState::Down, Some("spindle fault")),
        ];
        let record = |at, good, scrap| ProductionRecord {
            machine: MachineId(1),
            at,
            operation: None,
            good,
            scrap,
            ideal_unit_seconds: 50.0,
        };
        let production =
            vec![record(day(11, 0), 120, 10), record(day(16, 0), 150, 20), record(day(18, 0), 100, 0)];
        let kpis = compute(&calendar(), 480, ms(day(0, 0)), ms(day(23, 59)), &states, &production);
        assert_eq!(kpis.planned_busy_seconds, 8.0 * 3600.0);
        assert_eq!(kpis.actual_production_seconds, 5.5 * 3600.0);
        assert_eq!((kpis.produced, kpis.good, kpis.scrap), (300, 270, 30));
        assert_eq!(kpis.availability, Some(0.6875));
        assert!((kpis.effectiveness.unwrap() - 15_000.0 / 19_800.0).abs() < 1e-12);
        assert_eq!(kpis.quality, Some(0.9));
        assert!((kpis.oee.unwrap() - 0.46875).abs() < 1e-12, "{:?}", kpis.oee);
        let losses: Vec<(&str, f64)> =
            kpis.losses.iter().map(|l| (l.reason.as_str(), l.seconds / 3600.0)).collect();
        assert_eq!(losses, [("spindle fault", 1.5), ("alu-stand", 1.0)]);
    }

    #[test]
    fn gaps_in_the_timeline_count_as_offline_and_sums_recompute_ratios() {
        let from = datetime!(2026-12-02 08:00 +08:00);
        let states = vec![span(from, from + time::Duration::hours(3), MachineState::Running, None)];
        let a = compute(&calendar(), 480, ms(from), ms(from) + 9 * HOUR, &states, &[]);
        assert_eq!(a.availability, Some(3.0 / 9.0));
        assert_eq!(a.losses[0].reason, "no data");
        assert_eq!(a.losses[0].seconds, 6.0 * 3600.0);
        assert_eq!(a.oee, None, "no production means effectiveness is undefined");
        let b = compute(&calendar(), 480, ms(from), ms(from) + 9 * HOUR, &[], &[]);
        assert_eq!(b.oee, Some(0.0));
        let both = Kpis::combine([&a, &b]);
        assert_eq!(both.planned_busy_seconds, 18.0 * 3600.0);
        assert_eq!(both.availability, Some(3.0 / 18.0));
    }
}
