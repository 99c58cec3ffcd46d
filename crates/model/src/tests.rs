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
