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
        material_ready: None,
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
fn a_site_keeps_one_offset_or_one_known_time_zone() {
    let site = |utc_offset: Option<&str>, time_zone: Option<&str>| NewSite {
        code: "a".into(),
        name: "A".into(),
        utc_offset: utc_offset.map(str::to_owned),
        time_zone: time_zone.map(str::to_owned),
    };
    let fields = |new: NewSite| new.problems().into_iter().map(|p| p.field).collect::<Vec<_>>();
    assert!(fields(site(Some("+08:00"), None)).is_empty());
    assert!(fields(site(None, Some("Asia/Hong_Kong"))).is_empty());
    assert_eq!(fields(site(None, None)), ["utc_offset"]);
    assert_eq!(fields(site(Some("+08:00"), Some("Asia/Hong_Kong"))), ["time_zone"]);
    assert_eq!(fields(site(None, Some("Mars/Olympus_Mons"))), ["time_zone"]);
    for not_a_place in
        ["Etc/Unknown", "Factory", "posixrules", "localtime", "posix/Europe/Berlin", "right/UTC"]
    {
        assert_eq!(fields(site(None, Some(not_a_place))), ["time_zone"], "{not_a_place}");
    }
    assert_eq!(fields(site(Some("+8"), None)), ["utc_offset"]);
    assert_eq!(site(None, Some("asia/hong_kong")).canonical().time_zone.as_deref(), Some("Asia/Hong_Kong"));
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

#[test]
fn a_routing_step_names_each_machine_once() {
    let step = RoutingStep {
        name: "mill".into(),
        eligible_machines: vec![MachineId(1), MachineId(1), MachineId(2)],
        setup_seconds: 60,
        unit_seconds: 30.0,
        setup_family: "alu".into(),
    };
    let routing = NewRouting { code: "r1".into(), name: "Routing".into(), steps: vec![step] };
    let problems = routing.problems();
    assert_eq!(fields(problems.clone()), ["steps[0].eligible_machines"]);
    assert_eq!(problems[0].message, "names machine 1 twice");
}

mod oee_tests {
    use super::*;
    use crate::oee::{self, StateSpan, compute, shift_spans};
    use time::macros::datetime;

    const HOUR: i64 = 3_600_000;
    const HK: Zone = Zone::fixed(480);

    fn ms(at: Timestamp) -> i64 {
        oee::unix_ms(at)
    }

    #[test]
    fn shifts_follow_a_named_zone_across_its_daylight_saving_changes() {
        let berlin = Zone::named("europe/berlin").unwrap();
        assert_eq!(berlin.name(), Some("Europe/Berlin"));
        let night = Calendar {
            shifts: vec![Shift {
                name: "night".into(),
                days: Weekday::ALL.to_vec(),
                start: "22:00".into(),
                end: "06:00".into(),
            }],
            holidays: vec![],
        };
        // The night shifts within the 24 hours from noon UTC.
        let nights = |zone: &Zone, noon: Timestamp| shift_spans(&night, zone, ms(noon), ms(noon) + 24 * HOUR);
        let hours = |spans: &[(i64, i64)]| spans.iter().map(|(s, e)| e - s).sum::<i64>() / HOUR;
        // Clocks go from 02:00 to 03:00 on Sunday 2026-03-29: Saturday's night shift is 7 h, from
        // 21:00 UTC (22:00 CET) to 04:00 UTC (06:00 CEST).
        let spring = nights(&berlin, datetime!(2026-03-28 12:00 UTC));
        assert_eq!(spring, vec![(ms(datetime!(2026-03-28 21:00 UTC)), ms(datetime!(2026-03-29 04:00 UTC)))]);
        // Back from 03:00 to 02:00 on Sunday 2026-10-25: 9 h, 20:00 UTC (22:00 CEST) to 05:00 UTC.
        let autumn = nights(&berlin, datetime!(2026-10-24 12:00 UTC));
        assert_eq!(autumn, vec![(ms(datetime!(2026-10-24 20:00 UTC)), ms(datetime!(2026-10-25 05:00 UTC)))]);
        assert_eq!((hours(&spring), hours(&autumn)), (7, 9));
        // The same calendar on a fixed offset keeps 8 h every night.
        assert_eq!(hours(&nights(&Zone::fixed(60), datetime!(2026-03-28 12:00 UTC))), 8);

        // A time the clocks skip falls after the jump; a repeated time is its first occurrence.
        let skipped = berlin.at_local(time::macros::date!(2026 - 03 - 29), 150);
        assert_eq!(skipped, datetime!(2026-03-29 01:30 UTC));
        let repeated = berlin.at_local(time::macros::date!(2026 - 10 - 25), 150);
        assert_eq!(repeated, datetime!(2026-10-25 00:30 UTC));
        assert_eq!(berlin.local(datetime!(2026-07-01 10:00 UTC)).offset().whole_minutes(), 120);
        assert_eq!(berlin.local(datetime!(2026-12-01 10:00 UTC)).offset().whole_minutes(), 60);
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
        let spans = shift_spans(&calendar(), &HK, from, to);
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
            &HK,
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
            scrap_reason: None,
        };
        let production =
            vec![record(day(11, 0), 120, 10), record(day(16, 0), 150, 20), record(day(18, 0), 100, 0)];
        let kpis = compute(&calendar(), &HK, ms(day(0, 0)), ms(day(23, 59)), &states, &production);
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
    fn the_shift_at_a_time_is_the_one_in_progress_or_the_last_that_ended() {
        // Monday 2026-12-07 (HK): day 08–17, night 22–06.
        let at = |day: u8, hour: u8, minute: u8| {
            ms(time::PrimitiveDateTime::new(
                time::Date::from_calendar_date(2026, time::Month::December, day).unwrap(),
                time::Time::from_hms(hour, minute, 0).unwrap(),
            )
            .assume_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap()))
        };
        let shift = |when| oee::shift_at(&calendar(), &HK, when).map(|((s, e), name)| (s, e, name));
        assert_eq!(shift(at(7, 9, 30)), Some((at(7, 8, 0), at(7, 17, 0), "day".to_string())));
        assert_eq!(shift(at(7, 17, 0)), Some((at(7, 8, 0), at(7, 17, 0), "day".to_string())), "ended");
        // Past midnight, the night shift that began the day before.
        assert_eq!(shift(at(8, 1, 23)), Some((at(7, 22, 0), at(8, 6, 0), "night".to_string())));
        assert_eq!(shift(at(8, 7, 0)), Some((at(7, 22, 0), at(8, 6, 0), "night".to_string())));
        // Without shifts, the day.
        let days = Calendar { shifts: vec![], holidays: vec![] };
        let today = oee::shift_at(&days, &HK, at(8, 7, 0)).map(|(span, _)| span);
        assert_eq!(today, Some((at(8, 0, 0), at(9, 0, 0))));
    }

    #[test]
    fn failures_count_unplanned_stops_in_down_for_mtbf_and_mttr() {
        let from = datetime!(2026-12-07 00:00 +08:00);
        let at = |hour: i64, minute: i64| from + time::Duration::minutes(hour * 60 + minute);
        let states = vec![
            // Down since the day before: not a failure of this day, though its time counts.
            span(from - time::Duration::hours(1), at(1, 0), MachineState::Down, Some("spindle fault")),
            span(at(1, 0), at(9, 0), MachineState::Running, None),
            // One stop whose reason changed: one failure of 30 minutes.
            span(at(9, 0), at(9, 20), MachineState::Down, Some("power trip")),
            span(at(9, 20), at(9, 30), MachineState::Down, Some("fuse")),
            span(at(9, 30), at(13, 0), MachineState::Running, None),
            // Down for a maintenance window (a planned stop) from 13:00 to 14:00, and 15 minutes
            // past it: a failure from 14:00.
            span(at(13, 0), at(14, 15), MachineState::Down, Some("service")),
            span(at(13, 0), at(14, 0), MachineState::PlannedStop, Some("service")),
            span(at(14, 15), at(17, 0), MachineState::Running, None),
            // A breakdown at night, outside the shifts, is a failure too.
            span(at(20, 0), at(20, 45), MachineState::Down, None),
            span(at(20, 45), at(24, 0), MachineState::Idle, None),
        ];
        let kpis = compute(&calendar(), &HK, ms(from), ms(at(24, 0)), &states, &[]);
        assert_eq!(kpis.failures, 3);
        assert_eq!(kpis.down_seconds, (60.0 + 30.0 + 15.0 + 45.0) * 60.0);
        // Repairs of the day's failures: 30, 15 and 45 minutes (the stop of the night before is
        // that day's failure).
        assert_eq!(kpis.mttr_seconds, Some(30.0 * 60.0));
        assert_eq!(kpis.mtbf_seconds, Some(kpis.actual_production_seconds / 3.0));
        // Machines add up, and the means come from the sums.
        let both = Kpis::combine([&kpis, &kpis]);
        assert_eq!((both.failures, both.mttr_seconds), (6, Some(30.0 * 60.0)));
        // A stop across the end of a shift is the failure of the shift it began in, with its
        // whole repair; the next shift has its down time but not the failure.
        let early = compute(&calendar(), &HK, ms(from), ms(at(9, 10)), &states, &[]);
        let late = compute(&calendar(), &HK, ms(at(9, 10)), ms(at(24, 0)), &states, &[]);
        assert_eq!((early.failures, late.failures), (1, 2));
        assert_eq!(early.down_seconds + late.down_seconds, kpis.down_seconds);
        assert_eq!(early.mttr_seconds, Some(30.0 * 60.0), "the whole stop, past the shift's end");
        let calm = compute(&calendar(), &HK, ms(at(1, 0)), ms(at(9, 0)), &states, &[]);
        assert_eq!((calm.failures, calm.mtbf_seconds, calm.mttr_seconds), (0, None, None));
    }

    #[test]
    fn scrapped_units_are_counted_by_their_reason_and_add_up_across_machines() {
        let from = datetime!(2026-12-06 00:00 +08:00);
        let to = from + time::Duration::hours(24);
        let states = vec![span(from, to, MachineState::Running, None)];
        let record = |hour: i64, scrap, reason: Option<&str>| ProductionRecord {
            machine: MachineId(1),
            at: from + time::Duration::hours(hour),
            operation: None,
            good: 10,
            scrap,
            ideal_unit_seconds: 60.0,
            scrap_reason: reason.map(str::to_string),
        };
        let production = [
            record(1, 3, Some("burr")),
            record(2, 1, None),
            record(3, 2, Some("burr")),
            record(4, 4, Some("short shot")),
            record(5, 0, Some("ignored without scrap")),
            // After the period: not counted.
            record(30, 9, Some("burr")),
        ];
        let empty = Calendar { shifts: vec![], holidays: vec![] };
        let kpis = compute(&empty, &HK, ms(from), ms(to), &states, &production);
        let counts =
            |k: &Kpis| k.scrap_reasons.iter().map(|c| (c.reason.clone(), c.units)).collect::<Vec<_>>();
        assert_eq!(
            counts(&kpis),
            [("burr".to_string(), 5), ("short shot".to_string(), 4), ("unspecified".to_string(), 1)]
        );
        assert_eq!(kpis.scrap_reasons.iter().map(|c| c.units).sum::<u64>(), kpis.scrap);
        let both = Kpis::combine([&kpis, &kpis]);
        assert_eq!(counts(&both)[0], ("burr".to_string(), 10));
    }

    #[test]
    fn a_site_without_shifts_works_around_the_clock() {
        // As the planner reads an empty calendar: the whole period is planned, so a new site's
        // output counts before anyone enters its shifts, nights and Sundays included.
        let from = datetime!(2026-12-06 00:00 +08:00); // a Sunday
        let to = from + time::Duration::hours(24);
        let states = vec![span(from, from + time::Duration::hours(20), MachineState::Running, None)];
        let unit = ProductionRecord {
            machine: MachineId(1),
            at: from + time::Duration::hours(3),
            operation: None,
            good: 38,
            scrap: 2,
            ideal_unit_seconds: 60.0,
            scrap_reason: None,
        };
        let empty = Calendar { shifts: vec![], holidays: vec![] };
        let kpis = compute(&empty, &HK, ms(from), ms(to), &states, &[unit]);
        assert_eq!(kpis.planned_busy_seconds, 24.0 * 3600.0);
        assert_eq!(kpis.availability, Some(20.0 / 24.0));
        assert_eq!((kpis.produced, kpis.good), (40, 38));
    }

    #[test]
    fn units_reported_just_after_the_period_began_count_only_their_time_inside_it() {
        // Wednesday's day shift from 08:00; the machine ran from 07:56. At 08:02 it reports a unit
        // of 228 s ideal time, most of it made before the period: 120 s of it count, against
        // 120 s of running (performance 100 %, not 190 %).
        let from = datetime!(2026-12-02 08:00 +08:00);
        let reported = from + time::Duration::minutes(2);
        let states = vec![
            span(from - time::Duration::minutes(4), reported, MachineState::Running, None),
            span(reported, from + time::Duration::hours(1), MachineState::Idle, None),
        ];
        let unit = ProductionRecord {
            machine: MachineId(1),
            at: reported,
            operation: None,
            good: 1,
            scrap: 0,
            ideal_unit_seconds: 228.0,
            scrap_reason: None,
        };
        let kpis =
            compute(&calendar(), &HK, ms(from), ms(from) + 4 * 60_000, &states, std::slice::from_ref(&unit));
        assert_eq!(
            (kpis.produced, kpis.ideal_production_seconds, kpis.actual_production_seconds),
            (1, 120.0, 120.0)
        );
        assert_eq!(kpis.effectiveness, Some(1.0));
        // The day shift began at 08:00: the 108 s before it are outside busy time even over a
        // longer period.
        let day = compute(
            &calendar(),
            &HK,
            ms(from) - HOUR,
            ms(from) + 9 * HOUR,
            &states,
            std::slice::from_ref(&unit),
        );
        assert_eq!(day.ideal_production_seconds, 120.0);
        // Reported after a planned stop, units made before it keep all their ideal time.
        let lunch = (from + time::Duration::hours(4), from + time::Duration::hours(5));
        let states = vec![
            span(from, lunch.0, MachineState::Running, None),
            span(lunch.0, lunch.1, MachineState::PlannedStop, Some("lunch")),
            span(lunch.1, from + time::Duration::hours(6), MachineState::Running, None),
        ];
        let batch = ProductionRecord {
            at: lunch.1 + time::Duration::minutes(10),
            good: 60,
            ideal_unit_seconds: 60.0,
            ..unit
        };
        let kpis = compute(&calendar(), &HK, ms(from), ms(from) + 9 * HOUR, &states, &[batch]);
        assert_eq!(kpis.ideal_production_seconds, 3600.0, "an hour of ideal time, most of it before lunch");
    }

    #[test]
    fn units_count_where_their_work_ended_and_their_ideal_time_where_it_lay() {
        // The day shift, 08:00–17:00 on Wednesday 2026-12-02, running all of it.
        let start = datetime!(2026-12-02 08:00 +08:00);
        let end = datetime!(2026-12-02 17:00 +08:00);
        let states = vec![span(start, end, MachineState::Running, None)];
        let lot = |at: Timestamp, good: u32, scrap: u32| ProductionRecord {
            machine: MachineId(1),
            at,
            operation: None,
            good,
            scrap,
            ideal_unit_seconds: 60.0,
            scrap_reason: None,
        };
        let period = |from: Timestamp, to: Timestamp, production: &[ProductionRecord]| {
            compute(&calendar(), &HK, ms(from), ms(to), &states, production)
        };
        // A lot counted 5 minutes after the bell: made in the shift, so it counts there, units
        // and ideal time, and in the day around it.
        let late = [lot(end + time::Duration::minutes(5), 50, 5)];
        let shift = period(start, end, &late);
        assert_eq!((shift.good, shift.scrap, shift.ideal_production_seconds), (50, 5, 3300.0));
        let day = period(datetime!(2026-12-02 00:00 +08:00), datetime!(2026-12-03 00:00 +08:00), &late);
        assert_eq!((day.good, day.scrap, day.ideal_production_seconds), (50, 5, 3300.0));
        // A lot of an hour counted at 12:30: split at noon, 30 minutes of ideal time fall in each
        // half of the day and the units in the afternoon; the halves add up to the whole.
        let noon = datetime!(2026-12-02 12:00 +08:00);
        let across = [lot(noon + time::Duration::minutes(30), 60, 0)];
        let (morning, afternoon) = (period(start, noon, &across), period(noon, end, &across));
        assert_eq!((morning.produced, morning.ideal_production_seconds), (0, 1800.0));
        assert_eq!((afternoon.produced, afternoon.ideal_production_seconds), (60, 1800.0));
        assert_eq!(period(start, end, &across).ideal_production_seconds, 3600.0);
        // Counted exactly at noon, the lot is the morning's, units and all.
        let at_noon = [lot(noon, 60, 0)];
        assert_eq!(period(start, noon, &at_noon).produced, 60);
        let after = period(noon, end, &at_noon);
        assert_eq!((after.produced, after.ideal_production_seconds), (0, 0.0));
        // Counted at 06:30 next morning, before the shift (Wednesday has no night shift), a lot
        // was made the evening before; at 08:10, in the first 10 minutes of Thursday's shift.
        let thursday = (datetime!(2026-12-03 08:00 +08:00), datetime!(2026-12-03 17:00 +08:00));
        let dawn = [lot(datetime!(2026-12-03 06:30 +08:00), 10, 0)];
        let evening = period(noon, end, &dawn);
        assert_eq!((evening.produced, evening.ideal_production_seconds), (10, 600.0));
        assert_eq!(period(thursday.0, thursday.1, &dawn).produced, 0);
        let early = [lot(datetime!(2026-12-03 08:10 +08:00), 10, 0)];
        assert_eq!(period(noon, end, &early).produced, 0);
        let shift = period(thursday.0, thursday.1, &early);
        assert_eq!((shift.produced, shift.ideal_production_seconds), (10, 600.0));
        // Running on after the bell, the machine made a lot counted then in overtime: left out.
        let overtime = vec![span(start, end + time::Duration::hours(1), MachineState::Running, None)];
        let kpis = compute(&calendar(), &HK, ms(start), ms(end), &overtime, &late);
        assert_eq!((kpis.produced, kpis.ideal_production_seconds), (0, 0.0));
    }

    #[test]
    fn gaps_in_the_timeline_count_as_offline_and_sums_recompute_ratios() {
        let from = datetime!(2026-12-02 08:00 +08:00);
        let states = vec![span(from, from + time::Duration::hours(3), MachineState::Running, None)];
        let a = compute(&calendar(), &HK, ms(from), ms(from) + 9 * HOUR, &states, &[]);
        assert_eq!(a.availability, Some(3.0 / 9.0));
        assert_eq!(a.losses[0].reason, "no data");
        assert_eq!(a.losses[0].seconds, 6.0 * 3600.0);
        // Running three hours without a unit counted: effectiveness 0, so OEE 0 (quality has no
        // value without units, but the output is lost whatever it would be).
        assert_eq!((a.effectiveness, a.quality, a.oee), (Some(0.0), None, Some(0.0)));
        let b = compute(&calendar(), &HK, ms(from), ms(from) + 9 * HOUR, &[], &[]);
        assert_eq!(b.oee, Some(0.0));
        let both = Kpis::combine([&a, &b]);
        assert_eq!(both.planned_busy_seconds, 18.0 * 3600.0);
        assert_eq!(both.availability, Some(3.0 / 18.0));
    }
}

mod alarm_tests {
    use super::*;
    use crate::alarm::{
        AlarmCause, AlarmRule, Condition, ENGLISH, Engine, NewAlarmRule, Severity, Transition,
    };
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-11-24 09:00 UTC);

    fn rule(id: i64, metric: Option<&str>, condition: Condition, for_seconds: u32) -> AlarmRule {
        AlarmRule {
            id,
            rule: NewAlarmRule {
                name: format!("rule {id}"),
                machine_id: None,
                site_id: None,
                metric: metric.map(str::to_string),
                condition,
                for_seconds,
                deadband: 0.0,
                severity: Severity::Critical,
                enabled: true,
            },
        }
    }

    fn reading(machine: i64, metric: &str, seconds: i64, value: f64) -> Reading {
        Reading {
            machine: MachineId(machine),
            metric: metric.into(),
            at: T0 + time::Duration::seconds(seconds),
            value,
        }
    }

    fn kinds(transitions: &[Transition]) -> Vec<&'static str> {
        transitions
            .iter()
            .map(|t| if matches!(t, Transition::Raise { .. }) { "raise" } else { "clear" })
            .collect()
    }

    #[test]
    fn a_rule_for_one_site_watches_its_machines_only_and_moves_with_them() {
        let mut site_rule = rule(1, Some("gas_ppm"), Condition::Above { threshold: 50.0 }, 0);
        site_rule.rule.site_id = Some(SiteId(2));
        let mut engine = Engine::new(vec![site_rule.clone()], &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "gas_ppm", 0, 80.0), &mut out);
        assert!(out.is_empty(), "a machine of no known site is not the site's");
        engine.set_sites(std::collections::HashMap::from([
            (MachineId(1), SiteId(1)),
            (MachineId(2), SiteId(2)),
        ]));
        engine.on_reading(&reading(1, "gas_ppm", 1, 80.0), &mut out);
        engine.on_reading(&reading(2, "gas_ppm", 1, 80.0), &mut out);
        assert_eq!(kinds(&out), ["raise"]);
        assert!(matches!(out[0], Transition::Raise { machine: MachineId(2), .. }), "{out:?}");
        // Changed to the other site: the alarm at the site it no longer watches clears.
        site_rule.rule.site_id = Some(SiteId(1));
        engine.set_rules(vec![site_rule], T0 + time::Duration::seconds(2), &mut out);
        assert_eq!(kinds(&out), ["raise", "clear", "raise"], "{out:?}");
        assert!(matches!(out[2], Transition::Raise { machine: MachineId(1), .. }), "{out:?}");
        // A rule may watch a machine or a site, not both.
        let mut both = rule(2, Some("gas_ppm"), Condition::Above { threshold: 50.0 }, 0).rule;
        (both.machine_id, both.site_id) = (Some(MachineId(1)), Some(SiteId(1)));
        assert_eq!(both.problems()[0].field, "site_id");
    }

    #[test]
    fn thresholds_wait_for_the_delay_then_raise_once_and_clear() {
        let mut engine =
            Engine::new(vec![rule(1, Some("gas_ppm"), Condition::Above { threshold: 50.0 }, 5)], &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "gas_ppm", 0, 80.0), &mut out);
        engine.on_reading(&reading(1, "gas_ppm", 3, 90.0), &mut out);
        assert!(out.is_empty(), "the condition has held only 3 of 5 seconds");
        engine.on_reading(&reading(1, "gas_ppm", 6, 95.0), &mut out);
        engine.on_reading(&reading(1, "gas_ppm", 7, 99.0), &mut out);
        assert_eq!(kinds(&out), ["raise"]);
        let Transition::Raise { at, fired, value, message, .. } = &out[0] else { unreachable!() };
        assert_eq!((*at, *value), (T0, Some(95.0)));
        assert_eq!(*fired, T0 + time::Duration::seconds(6), "it came up once the 5 s had passed");
        assert_eq!(message, "rule 1: gas_ppm = 95 above 50");
        engine.on_reading(&reading(2, "gas_ppm", 8, 99.0), &mut out);
        assert_eq!(out.len(), 1, "another machine has its own delay");
        engine.on_reading(&reading(1, "gas_ppm", 9, 10.0), &mut out);
        assert_eq!(kinds(&out), ["raise", "clear"]);
        engine.on_reading(&reading(1, "temperature", 10, 500.0), &mut out);
        assert_eq!(out.len(), 2, "other metrics are not watched");
    }

    #[test]
    fn a_delay_can_run_out_between_readings() {
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 30)], &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "temp", 0, 85.0), &mut out);
        engine.on_tick(T0 + time::Duration::seconds(29), &[MachineId(1)], &mut out);
        assert!(out.is_empty());
        engine.on_tick(T0 + time::Duration::seconds(31), &[MachineId(1)], &mut out);
        assert_eq!(kinds(&out), ["raise"]);
    }

    #[test]
    fn buffered_readings_hold_only_as_long_as_they_say() {
        // A gateway sends five minutes late: 85 at T0, then 70 ten seconds later, arriving 3 s
        // apart. The value held above 80 for 10 s, less than the rule's 20 s.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 20)], &[]);
        let mut out = Vec::new();
        let arrived = T0 + time::Duration::minutes(5);
        engine.on_reading_at(&reading(1, "temp", 0, 85.0), arrived, &mut out);
        engine.on_tick(arrived + time::Duration::seconds(2), &[MachineId(1)], &mut out);
        engine.on_reading_at(&reading(1, "temp", 10, 70.0), arrived + time::Duration::seconds(3), &mut out);
        engine.on_tick(arrived + time::Duration::seconds(60), &[MachineId(1)], &mut out);
        assert!(out.is_empty(), "{:?}", kinds(&out));
        // Had nothing followed, the value holds from its arrival on: raised once 20 s have passed
        // since then, dated when the condition began.
        engine.on_reading_at(&reading(1, "temp", 30, 90.0), arrived + time::Duration::seconds(61), &mut out);
        engine.on_tick(arrived + time::Duration::seconds(80), &[MachineId(1)], &mut out);
        assert!(out.is_empty(), "{:?}", kinds(&out));
        engine.on_tick(arrived + time::Duration::seconds(82), &[MachineId(1)], &mut out);
        assert_eq!(kinds(&out), ["raise"]);
        let Transition::Raise { at, .. } = &out[0] else { unreachable!() };
        assert_eq!(*at, T0 + time::Duration::seconds(30));
    }

    #[test]
    fn a_reading_older_than_the_latest_changes_nothing() {
        // 70 now, then two buffered readings of 90 from half a minute before: the value is 70.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 60)], &[]);
        let mut out = Vec::new();
        let now = T0 + time::Duration::seconds(30);
        engine.on_reading_at(&reading(1, "temp", 30, 70.0), now, &mut out);
        engine.on_reading_at(&reading(1, "temp", 0, 90.0), now, &mut out);
        engine.on_reading_at(&reading(1, "temp", 5, 90.0), now, &mut out);
        engine.on_tick(now + time::Duration::seconds(120), &[MachineId(1)], &mut out);
        assert!(out.is_empty(), "{:?}", kinds(&out));
        // After a restart the store's latest reading is taken up; what the store held before it
        // is judged from the store (`resume_delay`), and an older reading arriving later changes
        // nothing either.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 0)], &[]);
        engine.resume(&[], &[reading(1, "temp", 6, 70.0)], now);
        engine.on_reading_at(&reading(1, "temp", 0, 95.0), now, &mut out);
        assert!(out.is_empty(), "{:?}", kinds(&out));
        engine.on_reading_at(&reading(1, "temp", 7, 95.0), now, &mut out);
        assert_eq!(kinds(&out), ["raise"]);
    }

    #[test]
    fn a_reading_stamped_ahead_of_the_platform_holds_back_none_after_it() {
        // A device's clock jumps four minutes ahead for one reading, then is right again: the
        // readings after it still raise, and the stale clock counts from its arrival.
        let rules = vec![
            rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 20),
            rule(2, Some("temp"), Condition::Stale { seconds: 60 }, 0),
        ];
        let mut engine = Engine::new(rules, &[]);
        let mut out = Vec::new();
        engine.on_reading_at(&reading(1, "temp", 240, 70.0), T0, &mut out);
        for seconds in [1, 11, 22] {
            engine.on_reading_at(
                &reading(1, "temp", seconds, 90.0),
                T0 + time::Duration::seconds(seconds),
                &mut out,
            );
        }
        assert_eq!(kinds(&out), ["raise"], "90 from 1 s on, held 21 s");
        let Transition::Raise { at, fired, .. } = &out[0] else { unreachable!() };
        assert_eq!((*at, *fired), (T0 + time::Duration::seconds(1), T0 + time::Duration::seconds(22)));
        out.clear();
        engine.on_tick(T0 + time::Duration::seconds(83), &[MachineId(1)], &mut out);
        assert_eq!(kinds(&out), ["raise"], "silent for 61 s since the last arrival");
        // A reading stamped ahead, and one a little less ahead that arrived with it: the later
        // stamp is the value.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 0)], &[]);
        out.clear();
        engine.on_reading_at(&reading(1, "temp", 100, 90.0), T0, &mut out);
        engine.on_reading_at(&reading(1, "temp", 90, 20.0), T0, &mut out);
        assert_eq!(kinds(&out), ["raise"], "{out:?}");
    }

    #[test]
    fn a_gateway_replaying_what_it_buffered_ends_staleness_once() {
        let mut engine =
            Engine::new(vec![rule(2, Some("vibration"), Condition::Stale { seconds: 60 }, 0)], &[]);
        let machines = [MachineId(1)];
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "vibration", 0, 1.0), &mut out);
        engine.on_tick(T0 + time::Duration::seconds(300), &machines, &mut out);
        assert_eq!(kinds(&out), ["raise"]);
        // Back after five minutes: a reading of each second it missed, sent over 7 s.
        let back = T0 + time::Duration::seconds(300);
        for second in 1..=300 {
            let arrived = back + time::Duration::milliseconds(second * 7000 / 300);
            engine.on_reading_at(&reading(1, "vibration", second, 1.0), arrived, &mut out);
            if second % 43 == 0 {
                engine.on_tick(arrived, &machines, &mut out);
            }
        }
        engine.on_tick(back + time::Duration::seconds(8), &machines, &mut out);
        assert_eq!(kinds(&out), ["raise", "clear"], "one clear, no flapping");
    }

    #[test]
    fn silence_counts_from_a_step_of_the_platform_clock() {
        let machines = [MachineId(1)];
        for step_minutes in [10, -10] {
            let mut engine =
                Engine::new(vec![rule(2, Some("vibration"), Condition::Stale { seconds: 60 }, 0)], &[]);
            let mut out = Vec::new();
            engine.on_reading_at(&reading(1, "vibration", 0, 1.0), T0, &mut out);
            let stepped = T0 + time::Duration::minutes(step_minutes);
            engine.clock_stepped(stepped);
            engine.on_tick(stepped + time::Duration::seconds(30), &machines, &mut out);
            assert!(out.is_empty(), "step {step_minutes} min: {out:?}");
            engine.on_tick(stepped + time::Duration::seconds(61), &machines, &mut out);
            assert_eq!(kinds(&out), ["raise"], "step {step_minutes} min: silent a minute after it");
        }
    }

    #[test]
    fn a_reading_stamped_ahead_holds_back_no_rightly_stamped_one_that_arrives_with_it() {
        // One request: 10 stamped two minutes ahead, then 90 stamped a moment before the batch
        // reached the engine.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 0)], &[]);
        let mut out = Vec::new();
        let arrived = T0 + time::Duration::milliseconds(40);
        engine.on_reading_at(&reading(1, "temp", 120, 10.0), arrived, &mut out);
        engine.on_reading_at(&reading(1, "temp", 0, 90.0), arrived, &mut out);
        assert_eq!(kinds(&out), ["raise"]);
    }

    #[test]
    fn an_old_reading_after_a_restart_holds_back_no_resumed_delay() {
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 30)], &[]);
        engine.resume(&[], &[reading(1, "temp", 0, 60.0)], T0 + time::Duration::seconds(18));
        let delays = engine.running_delays();
        assert_eq!(
            engine.resume_delay(&delays[0], &[reading(1, "temp", 0, 60.0), reading(1, "temp", -10, 40.0)]),
            None
        );
        let mut out = Vec::new();
        engine.on_reading_at(&reading(1, "temp", -50, 60.0), T0 + time::Duration::seconds(19), &mut out);
        engine.on_tick(T0 + time::Duration::seconds(29), &[MachineId(1)], &mut out);
        assert!(out.is_empty());
        engine.on_tick(T0 + time::Duration::seconds(31), &[MachineId(1)], &mut out);
        assert_eq!(kinds(&out), ["raise"], "30 s after the value rose at T0");
    }

    #[test]
    fn a_rule_without_a_delay_is_judged_from_the_store_at_a_restart() {
        // The platform stopped between storing 90 and raising its alarm.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 0)], &[]);
        let restart = T0 + time::Duration::seconds(5);
        engine.resume(&[], &[reading(1, "temp", 0, 90.0)], restart);
        let delays = engine.running_delays();
        assert_eq!(delays.len(), 1);
        assert_eq!(engine.resume_delay(&delays[0], &[reading(1, "temp", 0, 90.0)]), None);
        let mut out = Vec::new();
        engine.on_tick(restart, &[MachineId(1)], &mut out);
        let [Transition::Raise { at, .. }] = &out[..] else { panic!("{out:?}") };
        assert_eq!(*at, T0);
    }

    #[test]
    fn a_long_run_is_read_back_page_by_page() {
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 60)], &[]);
        engine.resume(&[], &[reading(1, "temp", 40, 90.0)], T0 + time::Duration::seconds(45));
        let delay = engine.running_delays().remove(0);
        let first = [reading(1, "temp", 40, 90.0), reading(1, "temp", 30, 90.0)];
        assert_eq!(engine.resume_delay(&delay, &first), Some(T0 + time::Duration::seconds(30)));
        let second = [reading(1, "temp", 10, 90.0), reading(1, "temp", 0, 40.0)];
        assert_eq!(engine.resume_delay(&delay, &second), None);
        let mut out = Vec::new();
        engine.on_tick(T0 + time::Duration::seconds(71), &[MachineId(1)], &mut out);
        let [Transition::Raise { at, .. }] = &out[..] else { panic!("{out:?}") };
        assert_eq!(*at, T0 + time::Duration::seconds(10));
    }

    #[test]
    fn a_rule_whose_condition_changes_judges_afresh() {
        let above = |threshold: f64, delay: u32| rule(1, Some("temp"), Condition::Above { threshold }, delay);
        let machines = [MachineId(1)];
        // A delay running under "above 50" does not run out under "above 70" or "below 50".
        for edited in [above(70.0, 15), rule(1, Some("temp"), Condition::Below { threshold: 50.0 }, 15)] {
            let mut engine = Engine::new(vec![above(50.0, 15)], &[]);
            let mut out = Vec::new();
            engine.on_reading(&reading(1, "temp", 0, 60.0), &mut out);
            engine.set_rules(vec![edited], T0, &mut out);
            engine.on_tick(T0 + time::Duration::seconds(20), &machines, &mut out);
            assert!(out.is_empty(), "{out:?}");
        }
        // Lowered below the value: raised at once, without waiting for a reading.
        let mut engine = Engine::new(vec![above(70.0, 0)], &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "temp", 0, 60.0), &mut out);
        engine.set_rules(vec![above(50.0, 0)], T0, &mut out);
        assert_eq!(kinds(&out), ["raise"]);
        // Raised above the value: the alarm up clears at once.
        engine.set_rules(vec![above(70.0, 0)], T0, &mut out);
        assert_eq!(kinds(&out), ["raise", "clear"]);
        // A new name or severity changes nothing.
        let mut renamed = above(70.0, 0);
        renamed.rule.name = "Hot".into();
        engine.set_rules(vec![renamed], T0, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn re_probe_of_steps_catch_ups_and_rule_edits() {
        let machines = [MachineId(1), MachineId(2)];
        // A step back: readings stamped on arrival after it still come in order.
        let mut engine = Engine::new(vec![rule(2, Some("hb"), Condition::Stale { seconds: 30 }, 0)], &[]);
        let mut out = Vec::new();
        engine.on_reading_at(&reading(1, "hb", 0, 1.0), T0, &mut out);
        let back = T0 - time::Duration::minutes(10);
        engine.clock_stepped(back);
        for seconds in [2, 20, 40] {
            let at = back + time::Duration::seconds(seconds);
            engine.on_reading_at(&Reading { at, ..reading(1, "hb", 0, 1.0) }, at, &mut out);
            engine.on_tick(at, &machines[..1], &mut out);
        }
        assert!(out.is_empty(), "reporting all along: {out:?}");
        // A catch-up does not bring back a reading stamped ahead that a later one replaced.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 0)], &[]);
        engine.on_reading_at(&reading(1, "temp", 240, 90.0), T0, &mut out);
        engine.on_reading_at(&reading(1, "temp", 1, 10.0), T0 + time::Duration::seconds(1), &mut out);
        assert_eq!(kinds(&out), ["raise", "clear"]);
        let rules = vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 0)];
        engine.catch_up(
            rules,
            &[],
            &[reading(1, "temp", 240, 90.0)],
            T0 + time::Duration::seconds(5),
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        // A rule narrowed to one machine clears its alarms on the others.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 0)], &[]);
        out.clear();
        engine.on_reading(&reading(1, "temp", 0, 90.0), &mut out);
        engine.on_reading(&reading(2, "temp", 0, 90.0), &mut out);
        let mut narrowed = rule(1, Some("temp"), Condition::Above { threshold: 50.0 }, 0);
        narrowed.rule.machine_id = Some(MachineId(1));
        engine.set_rules(vec![narrowed], T0 + time::Duration::seconds(9), &mut out);
        let [_, _, Transition::Clear { machine: MachineId(2), at, .. }] = &out[..] else { panic!("{out:?}") };
        assert_eq!(*at, T0 + time::Duration::seconds(9));
    }

    #[test]
    fn a_rate_alarm_says_the_rate() {
        let mut engine =
            Engine::new(vec![rule(1, Some("vibration"), Condition::RateAbove { per_minute: 6.0 }, 0)], &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "vibration", 0, 1.0), &mut out);
        engine.on_reading(&reading(1, "vibration", 30, 6.0), &mut out);
        let [Transition::Raise { value, .. }] = &out[..] else { panic!("{out:?}") };
        assert_eq!(*value, Some(10.0), "5 in half a minute");
    }

    #[test]
    fn a_delay_running_at_a_restart_counts_from_when_the_value_began_to_hold() {
        let rules = vec![
            rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 60),
            rule(2, Some("temp"), Condition::Below { threshold: 10.0 }, 60),
            rule(3, Some("temp"), Condition::Above { threshold: 80.0 }, 0),
        ];
        // Rule 3 has its alarm up already.
        let mut engine = Engine::new(rules, &[(3, MachineId(1))]);
        let restart = T0 + time::Duration::seconds(50);
        engine.resume(&[], &[reading(1, "temp", 40, 90.0), reading(2, "temp", 40, 50.0)], restart);
        let delays = engine.running_delays();
        assert_eq!(delays.len(), 1, "only rule 1 on machine 1 may have a delay running: {delays:?}");
        assert_eq!(delays[0].look_back_to, T0 - time::Duration::seconds(20));
        let stored =
            [reading(1, "temp", 40, 90.0), reading(1, "temp", 20, 86.0), reading(1, "temp", 10, 85.0)];
        let before = [reading(1, "temp", 0, 70.0)];
        engine.resume_delay(&delays[0], &[&stored[..], &before[..]].concat());
        let mut out = Vec::new();
        engine.on_tick(T0 + time::Duration::seconds(69), &[MachineId(1)], &mut out);
        assert!(out.is_empty(), "held 59 s: {out:?}");
        engine.on_tick(T0 + time::Duration::seconds(71), &[MachineId(1)], &mut out);
        let [Transition::Raise { rule_id: 1, at, value, .. }] = &out[..] else { panic!("{out:?}") };
        assert_eq!((*at, *value), (T0 + time::Duration::seconds(10), Some(85.0)));
        // Held through the whole look-back: it has held long enough at the first tick.
        let mut engine =
            Engine::new(vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 60)], &[]);
        engine.resume(&[], &[reading(1, "temp", 40, 90.0)], restart);
        let held =
            [reading(1, "temp", 40, 90.0), reading(1, "temp", -30, 95.0), reading(1, "temp", -90, 99.0)];
        engine.resume_delay(&engine.running_delays()[0], &held);
        out.clear();
        engine.on_tick(restart, &[MachineId(1)], &mut out);
        let [Transition::Raise { at, .. }] = &out[..] else { panic!("{out:?}") };
        assert_eq!(*at, T0 - time::Duration::seconds(30), "the oldest reading the look-back needed");
    }

    #[test]
    fn rate_of_change_and_stale_data() {
        let rules = vec![
            rule(1, Some("vibration"), Condition::RateAbove { per_minute: 6.0 }, 0),
            rule(2, Some("vibration"), Condition::Stale { seconds: 60 }, 0),
        ];
        let mut engine = Engine::new(rules, &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "vibration", 0, 1.0), &mut out);
        engine.on_reading(&reading(1, "vibration", 10, 1.5), &mut out); // 3 per minute
        assert!(out.is_empty());
        engine.on_reading(&reading(1, "vibration", 20, 3.0), &mut out); // 9 per minute
        assert_eq!(kinds(&out), ["raise"]);
        out.clear();
        engine.on_tick(T0 + time::Duration::seconds(70), &[MachineId(1), MachineId(2)], &mut out);
        assert!(out.is_empty(), "50 s of silence is tolerated; machine 2 never reported");
        engine.on_tick(T0 + time::Duration::seconds(81), &[MachineId(1), MachineId(2)], &mut out);
        assert_eq!(kinds(&out), ["raise"]);
        engine.on_reading(&reading(1, "vibration", 90, 3.0), &mut out);
        assert_eq!(kinds(&out), ["raise", "clear", "clear"], "data is back and the rate is calm");
    }

    #[test]
    fn long_stops_raise_and_running_again_clears() {
        let mut engine = Engine::new(vec![rule(1, None, Condition::StoppedLonger { minutes: 10 }, 0)], &[]);
        let mut out = Vec::new();
        let change = |seconds: i64, state| StateChange {
            machine: MachineId(4),
            at: T0 + time::Duration::seconds(seconds),
            state,
            reason: None,
        };
        engine.on_state(&change(0, MachineState::Down), &mut out);
        engine.on_state(&change(120, MachineState::Offline), &mut out);
        engine.on_tick(T0 + time::Duration::minutes(9), &[MachineId(4)], &mut out);
        assert!(out.is_empty());
        engine.on_tick(T0 + time::Duration::minutes(10), &[MachineId(4)], &mut out);
        engine.on_tick(T0 + time::Duration::minutes(11), &[MachineId(4)], &mut out);
        assert_eq!(kinds(&out), ["raise"], "down, then offline: one stop of ten minutes");
        let Transition::Raise { at, fired, .. } = &out[0] else { unreachable!() };
        assert_eq!((*at, *fired), (T0, T0 + time::Duration::minutes(10)));
        engine.on_state(&change(700, MachineState::Running), &mut out);
        assert_eq!(kinds(&out), ["raise", "clear"]);
        // Idle is waiting for work and a setup is planned, not stops: hours of them raise nothing,
        // and they end a stop.
        out.clear();
        engine.on_state(&change(800, MachineState::Idle), &mut out);
        engine.on_tick(T0 + time::Duration::hours(2), &[MachineId(4)], &mut out);
        engine.on_state(&change(7_300, MachineState::Setup), &mut out);
        engine.on_tick(T0 + time::Duration::hours(5), &[MachineId(4)], &mut out);
        assert!(out.is_empty(), "{out:?}");
        engine.on_state(&change(18_000, MachineState::Down), &mut out);
        engine.on_state(&change(18_300, MachineState::Idle), &mut out);
        engine.on_tick(T0 + time::Duration::hours(6), &[MachineId(4)], &mut out);
        assert!(out.is_empty(), "a five-minute breakdown, then idle: {out:?}");
    }

    #[test]
    fn a_stop_within_a_maintenance_window_is_no_long_stop_until_the_window_ends() {
        let mut engine = Engine::new(vec![rule(1, None, Condition::StoppedLonger { minutes: 10 }, 0)], &[]);
        let mut out = Vec::new();
        let minutes = |m: i64| T0 + time::Duration::minutes(m);
        let machines = [MachineId(4), MachineId(5)];
        // Machine 4 has a window from minute 5 to 65; machine 5 none. Both go down at 0.
        engine.set_maintenance(std::collections::HashMap::from([(
            MachineId(4),
            vec![(minutes(5), minutes(65))],
        )]));
        for machine in machines {
            let down = StateChange { machine, at: T0, state: MachineState::Down, reason: None };
            engine.on_state(&down, &mut out);
        }
        engine.on_tick(minutes(4), &machines, &mut out);
        assert!(out.is_empty());
        engine.on_tick(minutes(30), &machines, &mut out);
        let raised: Vec<MachineId> = out
            .iter()
            .map(|t| match t {
                Transition::Raise { machine, .. } => *machine,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(raised, [MachineId(5)], "only the stop without a window is long");
        // Still down ten minutes after the window: that stop is not planned, counted from the end.
        out.clear();
        engine.on_tick(minutes(74), &machines, &mut out);
        assert!(out.is_empty(), "{out:?}");
        engine.on_tick(minutes(75), &machines, &mut out);
        let Transition::Raise { machine, at, .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!((*machine, *at), (MachineId(4), minutes(65)));
    }

    #[test]
    fn a_rule_created_or_enabled_again_judges_the_latest_value_at_once() {
        let mut engine = Engine::new(Vec::new(), &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "temperature_c", 0, 99.0), &mut out);
        engine.on_reading(&reading(2, "temperature_c", 0, 20.0), &mut out);
        let hot = rule(1, Some("temperature_c"), Condition::Above { threshold: 50.0 }, 0);
        engine.set_rules(vec![hot.clone()], T0, &mut out);
        assert_eq!(kinds(&out), ["raise"], "machine 1 is at 99 already: {out:?}");
        let Transition::Raise { machine, at, .. } = &out[0] else { unreachable!() };
        assert_eq!((*machine, *at), (MachineId(1), T0));
        // Disabled, its alarm clears; enabled again while the value is still 99, it raises again.
        let mut off = hot.clone();
        off.rule.enabled = false;
        out.clear();
        engine.set_rules(vec![off], T0, &mut out);
        engine.set_rules(vec![hot.clone()], T0, &mut out);
        assert_eq!(kinds(&out), ["raise"], "{out:?}");
        // An edit of another rule judges nothing again.
        out.clear();
        engine.set_rules(
            vec![hot, rule(2, Some("gas_ppm"), Condition::Above { threshold: 5.0 }, 0)],
            T0,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn stops_that_began_before_the_rule_or_the_restart_still_count() {
        let down = |machine: i64, minutes: i64| StateChange {
            machine: MachineId(machine),
            at: T0 + time::Duration::minutes(minutes),
            state: MachineState::Down,
            reason: None,
        };
        let stop_rule = rule(1, None, Condition::StoppedLonger { minutes: 10 }, 0);
        // A rule created while machine 4 has been down for 8 minutes; the stop was reported again
        // with another reason at minute 5, and it counts from its start all the same.
        let mut engine = Engine::new(Vec::new(), &[]);
        let mut out = Vec::new();
        engine.on_state(&down(4, 0), &mut out);
        engine.on_state(&StateChange { reason: Some("another fault".into()), ..down(4, 5) }, &mut out);
        engine.set_rules(vec![stop_rule.clone()], T0, &mut out);
        engine.on_tick(T0 + time::Duration::minutes(8), &[MachineId(4)], &mut out);
        assert!(out.is_empty());
        engine.on_tick(T0 + time::Duration::minutes(10), &[MachineId(4)], &mut out);
        assert_eq!(kinds(&out), ["raise"]);

        // An engine started after a restart, machine 5 down since minute 0 and machine 6 long
        // down with its alarm already up.
        let mut engine = Engine::new(vec![stop_rule], &[(1, MachineId(6))]);
        engine.resume(&[down(5, 0), down(6, -600)], &[], T0 + time::Duration::minutes(3));
        let mut out = Vec::new();
        engine.on_tick(T0 + time::Duration::minutes(9), &[MachineId(5), MachineId(6)], &mut out);
        assert!(out.is_empty());
        engine.on_tick(T0 + time::Duration::minutes(10), &[MachineId(5), MachineId(6)], &mut out);
        assert_eq!(kinds(&out), ["raise"], "machine 5 raises; machine 6's alarm is up already: {out:?}");
    }

    #[test]
    fn an_engine_that_missed_inputs_catches_up_with_the_store() {
        let state = |machine: i64, minutes: i64, state: MachineState| StateChange {
            machine: MachineId(machine),
            at: T0 + time::Duration::minutes(minutes),
            state,
            reason: None,
        };
        let stop_rule = rule(1, None, Condition::StoppedLonger { minutes: 10 }, 0);
        let mut engine = Engine::new(vec![stop_rule.clone()], &[]);
        let mut out = Vec::new();
        engine.on_state(&state(1, 0, MachineState::Running), &mut out);
        engine.on_state(&state(2, 0, MachineState::Running), &mut out);
        // Missed: machine 1 down at minute 1, offline at minute 3; a hot reading of machine 2; a
        // new rule. The store has them all.
        let hot = rule(2, Some("temp"), Condition::Above { threshold: 80.0 }, 0);
        let states = [
            (state(1, 3, MachineState::Offline), Some(T0 + time::Duration::minutes(1))),
            (state(2, 0, MachineState::Running), None),
        ];
        let now = T0 + time::Duration::minutes(4);
        engine.catch_up(vec![stop_rule, hot], &states, &[reading(2, "temp", 200, 95.0)], now, &mut out);
        assert_eq!(kinds(&out), ["raise"], "the reading, at once: {out:?}");
        out.clear();
        // A report older than what the engine has taken in changes nothing.
        engine.on_state(&state(1, 2, MachineState::Running), &mut out);
        let machines = [MachineId(1), MachineId(2)];
        engine.on_tick(T0 + time::Duration::minutes(10), &machines, &mut out);
        assert!(out.is_empty(), "9 minutes down: {out:?}");
        engine.on_tick(T0 + time::Duration::minutes(11), &machines, &mut out);
        let [Transition::Raise { rule_id: 1, machine: MachineId(1), at, .. }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(*at, T0 + time::Duration::minutes(1), "from when the stop began");
    }

    #[test]
    fn messages_give_the_value_to_two_decimals_at_most() {
        let cause = AlarmCause {
            rule_name: "Hot".into(),
            metric: Some("temperature_c".into()),
            condition: Condition::Above { threshold: 85.0 },
        };
        let said = |value: f64| cause.message(Some(value), &ENGLISH);
        assert_eq!(said(87.148), "Hot: temperature_c = 87.15 above 85");
        assert_eq!(said(93.5), "Hot: temperature_c = 93.5 above 85");
        assert_eq!(said(90.0), "Hot: temperature_c = 90 above 85");
    }

    #[test]
    fn a_machine_forgotten_has_its_alarms_cleared_and_starts_afresh() {
        let mut engine =
            Engine::new(vec![rule(2, Some("vibration"), Condition::Stale { seconds: 60 }, 0)], &[]);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "vibration", 0, 1.0), &mut out);
        engine.on_reading(&reading(3, "vibration", 0, 1.0), &mut out);
        let machines = [MachineId(1), MachineId(3)];
        engine.on_tick(T0 + time::Duration::minutes(5), &machines, &mut out);
        assert_eq!(kinds(&out), ["raise", "raise"]);
        out.clear();
        let retired = T0 + time::Duration::minutes(6);
        engine.forget(MachineId(1), retired, &mut out);
        assert!(
            matches!(out[..], [Transition::Clear { rule_id: 2, machine: MachineId(1), at }] if at == retired),
            "{out:?}"
        );
        out.clear();
        engine.on_tick(T0 + time::Duration::minutes(7), &machines, &mut out);
        assert!(out.is_empty(), "machine 1 has no reading to go stale; machine 3's alarm is up: {out:?}");
    }

    #[test]
    fn sensors_silent_before_a_restart_count_from_the_restart() {
        let mut engine =
            Engine::new(vec![rule(2, Some("vibration"), Condition::Stale { seconds: 60 }, 0)], &[]);
        // The last reading is 10 minutes old when the engine starts: the platform was down.
        let restart = T0 + time::Duration::minutes(10);
        engine.resume(&[], &[reading(1, "vibration", 0, 1.0)], restart);
        let mut out = Vec::new();
        engine.on_tick(restart + time::Duration::seconds(30), &[MachineId(1)], &mut out);
        assert!(out.is_empty(), "no storm of stale alarms at start: {out:?}");
        engine.on_tick(restart + time::Duration::seconds(61), &[MachineId(1)], &mut out);
        assert_eq!(kinds(&out), ["raise"], "still silent a minute after the start");
    }

    #[test]
    fn a_stale_alarm_up_at_a_restart_stays_up_until_a_reading() {
        let mut engine = Engine::new(
            vec![rule(2, Some("vibration"), Condition::Stale { seconds: 60 }, 0)],
            &[(2, MachineId(1))],
        );
        let restart = T0 + time::Duration::minutes(10);
        engine.resume(&[], &[reading(1, "vibration", 0, 1.0)], restart);
        let mut out = Vec::new();
        for seconds in [2, 30, 90] {
            engine.on_tick(restart + time::Duration::seconds(seconds), &[MachineId(1)], &mut out);
        }
        assert!(out.is_empty(), "neither cleared nor raised again: {out:?}");
        engine.on_reading(&reading(1, "vibration", 700, 1.0), &mut out);
        assert_eq!(kinds(&out), ["clear"]);
    }

    #[test]
    fn rates_across_a_restart_use_the_readings_true_times() {
        let mut engine =
            Engine::new(vec![rule(1, Some("vibration"), Condition::RateAbove { per_minute: 6.0 }, 0)], &[]);
        // 100 ten minutes before the restart, 130 a second after it: 3 per minute, calm.
        let restart = T0 + time::Duration::minutes(10);
        engine.resume(&[], &[reading(1, "vibration", 0, 100.0)], restart);
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "vibration", 601, 130.0), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn alarms_already_up_are_not_raised_again_after_a_restart() {
        let mut engine = Engine::new(
            vec![rule(1, Some("temp"), Condition::Above { threshold: 80.0 }, 0)],
            &[(1, MachineId(1))],
        );
        let mut out = Vec::new();
        engine.on_reading(&reading(1, "temp", 0, 90.0), &mut out);
        assert!(out.is_empty());
        engine.on_reading(&reading(1, "temp", 1, 20.0), &mut out);
        assert_eq!(kinds(&out), ["clear"]);
    }

    #[test]
    fn rules_are_validated() {
        let mut bad = rule(1, None, Condition::Above { threshold: f64::NAN }, 90_000).rule;
        assert_eq!(fields(bad.problems()), ["metric", "condition.threshold", "for_seconds"]);
        bad.metric = Some("x".into());
        bad.condition = Condition::StoppedLonger { minutes: 0 };
        bad.for_seconds = 0;
        assert_eq!(fields(bad.problems()), ["metric", "condition.minutes"]);
        bad.condition = Condition::Stale { seconds: 10 };
        bad.deadband = 1.0;
        assert_eq!(fields(bad.problems()), ["deadband"], "stale has no limit to come back past");
        bad.condition = Condition::RateAbove { per_minute: 2.0 };
        bad.deadband = 2.0;
        assert_eq!(fields(bad.problems()), ["deadband"], "a rate alarm would never clear");
        bad.deadband = 0.5;
        assert_eq!(fields(bad.problems()), Vec::<String>::new());
        bad.condition = Condition::Below { threshold: 3.0 };
        bad.deadband = -1.0;
        assert_eq!(fields(bad.problems()), ["deadband"]);
        // A metric name with a text-direction control is one no machine can report.
        bad.deadband = 0.0;
        for name in ["t\u{202e}x", "a\u{061c}b"] {
            bad.metric = Some(name.into());
            assert_eq!(fields(bad.problems()), ["metric"], "{name:?}");
        }
    }

    #[test]
    fn a_value_wavering_around_the_limit_raises_one_alarm_with_a_deadband() {
        // Noise of ±0.4 around 85 after a first crossing: 91, 84.7, 85.3, 84.6, 85.4, then 82.
        let values = [91.0, 84.7, 85.3, 84.6, 85.4, 82.0];
        let run = |deadband: f64| {
            let mut rule = rule(1, Some("temp"), Condition::Above { threshold: 85.0 }, 0);
            rule.rule.deadband = deadband;
            let mut engine = Engine::new(vec![rule], &[]);
            let mut out = Vec::new();
            for (second, value) in values.iter().enumerate() {
                engine.on_reading(&reading(1, "temp", second as i64, *value), &mut out);
            }
            out
        };
        assert_eq!(kinds(&run(0.0)), ["raise", "clear", "raise", "clear", "raise", "clear"]);
        let banded = run(2.0);
        assert_eq!(kinds(&banded), ["raise", "clear"], "clears only below 83");
        assert!(matches!(banded[1], Transition::Clear { at, .. } if at == T0 + time::Duration::seconds(5)));
        // Below: back above the limit plus the band; a rate: below the limit less the band.
        let mut below = rule(2, Some("level"), Condition::Below { threshold: 10.0 }, 0);
        below.rule.deadband = 1.0;
        let mut engine = Engine::new(vec![below], &[]);
        let mut out = Vec::new();
        for (second, value) in [9.0, 10.5, 9.8, 11.2].into_iter().enumerate() {
            engine.on_reading(&reading(1, "level", second as i64, value), &mut out);
        }
        assert_eq!(kinds(&out), ["raise", "clear"]);
        assert!(matches!(out[1], Transition::Clear { at, .. } if at == T0 + time::Duration::seconds(3)));
    }
}

mod count_rule_tests {
    use super::fields;
    use crate::{CountRule, Validate};

    #[test]
    fn counters_count_their_rise_and_a_reset_counts_from_zero() {
        assert_eq!(CountRule::units(100.0, 103.0), 3);
        assert_eq!(CountRule::units(100.0, 100.0), 0);
        assert_eq!(CountRule::units(100.9, 101.2), 1, "whole units only");
        assert_eq!(CountRule::units(1_000.0, 4.0), 4, "a reset counts the new value");
        assert_eq!(CountRule::units(5.0, -2.0), 0);
        assert_eq!(CountRule::units(0.0, 1e12), 0, "a garbled reading counts nothing");
        assert_eq!(CountRule::units(0.0, 1_000_000.0), 1_000_000);
        assert_eq!(CountRule::units(5.0, 1_000_006.0), 0);
        // One garbled reading between two good ones: only the units made count.
        assert_eq!(CountRule::units_after(Some(100.0), 1e12, 105.0), 5, "after a spike");
        assert_eq!(CountRule::units_after(Some(5_000.0), 0.0, 5_010.0), 10, "after a dip to 0");
        assert_eq!(CountRule::units_after(Some(5_000.0), 3.0, 8.0), 5, "a real reset goes on counting");
        assert_eq!(CountRule::units_after(Some(100.0), 103.0, 105.0), 2);
        assert_eq!(CountRule::units_after(None, 1_000.0, 4.0), 4, "no reading before: a reset");
        assert_eq!(
            CountRule::units_after(Some(100.0), 1e12, 1e12 + 5.0),
            0,
            "a jump that holds counts nothing"
        );
        assert_eq!(CountRule::units_after(Some(1e12), 1e12 + 5.0, 1e12 + 9.0), 4, "and then counts on");
    }

    #[test]
    fn count_rules_are_validated() {
        let rule = CountRule { good_metric: "parts".into(), scrap_metric: None, ideal_unit_seconds: None };
        assert!(rule.problems().is_empty());
        assert_eq!(rule.counts_scrap("parts"), Some(false));
        assert_eq!(rule.counts_scrap("temp"), None);
        let bad = CountRule {
            good_metric: String::new(),
            scrap_metric: Some(String::new()),
            ideal_unit_seconds: Some(0.0),
        };
        assert_eq!(
            fields(bad.problems()),
            ["good_metric", "scrap_metric", "scrap_metric", "ideal_unit_seconds"]
        );
        let slow = CountRule { ideal_unit_seconds: Some(1e30), ..rule.clone() };
        assert_eq!(fields(slow.problems()), ["ideal_unit_seconds"], "would make OEE astronomical");
        let week = CountRule { ideal_unit_seconds: Some(604_800.0), ..rule };
        assert!(week.problems().is_empty());
    }
}

#[test]
fn names_need_something_visible_and_no_direction_controls() {
    let check = |name: &str| {
        let mut out = Vec::new();
        check_name("name", name, &mut out);
        out.into_iter().map(|e| e.message).collect::<Vec<_>>()
    };
    assert_eq!(check("\u{200B}\u{200B}"), ["must not be blank"]);
    assert_eq!(check(" \u{FEFF} "), ["must not be blank"]);
    assert_eq!(check("invoice\u{202E}fdp.exe"), ["must not contain text-direction controls"]);
    assert!(check("Lam & Sons 林記").is_empty());
}
