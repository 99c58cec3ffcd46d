//! Store tests against a real SQLite database (in memory, or a temporary file where durability
//! and the reader pool matter).

use model::*;
use time::macros::datetime;

use crate::*;
use crate::{from_ms, to_ms};

const NOW: Timestamp = datetime!(2026-11-24 09:00 UTC);

fn all() -> PageRequest {
    PageRequest { after: None, limit: 1000 }
}

struct Fixture {
    store: Store,
    variant: VariantId,
    machines: [MachineId; 2],
}

fn fixture(store: Store) -> Fixture {
    let site = store
        .create_site(&NewSite {
            code: "hk".into(),
            name: "Kwun Tong".into(),
            utc_offset: Some("+08:00".into()),
            time_zone: None,
        })
        .unwrap();
    fixture_at(store, site.id)
}

/// The machines, products and routing of [`fixture`], at a site that exists already.
fn fixture_at(store: Store, site: SiteId) -> Fixture {
    let machine = |code: &str| NewMachine {
        site_id: site,
        line_id: None,
        code: code.into(),
        name: code.into(),
        kind: MachineKind::CncMill,
        capabilities: vec!["3-axis".into()],
        rated_power_kw: 7.5,
        retired: None,
    };
    let m1 = store.create_machine(&machine("cnc-1"), NOW).unwrap().id;
    let m2 = store.create_machine(&machine("cnc-2"), NOW).unwrap().id;
    let product =
        store.create_product(&NewProduct { code: "p".into(), name: "P".into(), family: "f".into() }).unwrap();
    // Written as every schema version since the first keeps routings: the upgrade tests build this
    // fixture in old versions.
    let routing = store
        .write(|tx| {
            tx.execute("INSERT INTO routings (code, name) VALUES ('r', 'R')", [])?;
            let id = tx.last_insert_rowid();
            for (seq, name, machines) in [(0, "mill", vec![m1, m2]), (1, "deburr", vec![m2])] {
                tx.execute(
                    "INSERT INTO routing_steps (routing_id, seq, name, setup_seconds, unit_seconds, setup_family)
                     VALUES (?1, ?2, ?3, 600, 30.0, 'alu')",
                    rusqlite::params![id, seq, name],
                )?;
                for machine in machines {
                    tx.execute(
                        "INSERT INTO routing_step_machines (routing_id, seq, machine_id) VALUES (?1, ?2, ?3)",
                        rusqlite::params![id, seq, machine.0],
                    )?;
                }
            }
            Ok(RoutingId(id))
        })
        .unwrap();
    let material =
        store.create_material(&NewMaterial { code: "al".into(), name: "Aluminium".into() }).unwrap();
    let variant = store
        .create_variant(&NewVariant {
            product_id: product.id,
            code: "p-black".into(),
            name: "P black".into(),
            routing_id: Some(routing),
            bom: vec![BomLine { material_id: material.id, kg_per_unit: 0.25 }],
        })
        .unwrap();
    Fixture { store, variant: variant.id, machines: [m1, m2] }
}

/// An empty folder of its own for a test's database files (emptied if an earlier run left one).
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mf-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn new_order(number: &str, variant: VariantId) -> NewOrder {
    NewOrder {
        number: number.into(),
        customer: "Acme".into(),
        variant_id: variant,
        quantity: 5,
        due: datetime!(2026-12-01 10:00 UTC),
        priority: 2,
        material_ready: None,
    }
}

#[test]
fn stored_milliseconds_read_back_as_the_same_instant() {
    for ms in [0, 1, 999, 1_000, 1_764_000_000_123, -1, -999, -1_000, -1_001, -62_135_596_800_000] {
        let at = from_ms(ms).unwrap();
        assert_eq!(at.unix_timestamp_nanos(), i128::from(ms) * 1_000_000, "{ms}");
        assert_eq!(to_ms(at), ms);
    }
    // Beyond what a time can hold: an error naming the value, not a panic.
    for ms in [i64::MAX, i64::MIN] {
        assert!(matches!(from_ms(ms), Err(StoreError::Corrupt(text)) if text.contains(&ms.to_string())));
    }
}

#[test]
fn a_cached_statement_is_not_compiled_again_for_each_page() {
    // A page is `... LIMIT ?`; binding another limit must not send SQLite back to the compiler.
    let conn = Connection::open_in_memory().unwrap();
    configure(&conn, Durability::Full).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    let mut statement = conn.prepare_cached("SELECT id FROM t WHERE id > ? ORDER BY id LIMIT ?").unwrap();
    for (after, limit) in [(0, 1), (1, 2), (0, 3), (2, 1)] {
        let ids: Vec<i64> =
            statement.query_map([after, limit], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        assert_eq!(ids.len(), limit.min(3 - after) as usize);
    }
    assert_eq!(statement.get_status(rusqlite::StatementStatus::RePrepare), 0);
}

#[test]
fn the_retention_basis_is_kept() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.retention_basis().unwrap(), None);
    store.set_retention_basis(1_000).unwrap();
    store.set_retention_basis(2_000).unwrap();
    assert_eq!(store.retention_basis().unwrap(), Some(2_000));
}

#[test]
fn the_newest_reading_is_found_across_series() {
    let f = fixture(Store::open_in_memory().unwrap());
    assert_eq!(f.store.newest_reading_ms().unwrap(), None);
    let reading = |machine: usize, metric: &str, minutes: i64| Reading {
        machine: f.machines[machine],
        metric: metric.into(),
        at: NOW + time::Duration::minutes(minutes),
        value: 1.0,
    };
    f.store.write_readings(&[reading(0, "a", 5), reading(1, "b", 9), reading(1, "a", 2)]).unwrap();
    assert_eq!(f.store.newest_reading_ms().unwrap(), Some(oee::unix_ms(NOW + time::Duration::minutes(9))));
}

#[test]
fn one_machine_s_current_state_is_its_latest() {
    let f = fixture(Store::open_in_memory().unwrap());
    let change = |machine: usize, minutes: i64, state: MachineState| StateChange {
        machine: f.machines[machine],
        at: NOW + time::Duration::minutes(minutes),
        state,
        reason: None,
    };
    let now = NOW + time::Duration::minutes(10);
    assert_eq!(f.store.current_state(f.machines[0], now).unwrap(), None);
    let changes = [
        change(0, 5, MachineState::Running),
        change(0, 1, MachineState::Down),
        change(1, 9, MachineState::Idle),
        // Stamped by a clock that ran an hour ahead: not the state yet.
        change(0, 70, MachineState::Offline),
    ];
    f.store.write_batch(&[], &changes, &[], &[]).unwrap();
    assert_eq!(f.store.current_state(f.machines[0], now).unwrap(), Some(changes[0].clone()));
    let all = f.store.current_states(now).unwrap();
    assert_eq!(all.iter().find(|c| c.machine == f.machines[0]), Some(&changes[0]));
    assert_eq!(
        all.iter().find(|c| c.machine == f.machines[1]),
        f.store.current_state(f.machines[1], now).unwrap().as_ref()
    );
    // Once its time has come (or within the five minutes reports may be ahead), it is.
    let later = NOW + time::Duration::minutes(66);
    assert_eq!(f.store.current_state(f.machines[0], later).unwrap(), Some(changes[3].clone()));
}

#[test]
fn a_write_failing_for_want_of_room_is_remembered_until_one_succeeds() {
    let f = fixture(Store::open_in_memory().unwrap());
    let minute = std::time::Duration::from_secs(60);
    assert!(!f.store.write_failed_within(minute));
    f.store.simulate_full_disk(true).unwrap();
    let mut refused = None;
    for i in 0..1000 {
        let mut order = new_order(&format!("FULL-{i:04}-{}", "x".repeat(40)), f.variant);
        order.customer = "c".repeat(150);
        if let Err(error) = f.store.create_order(&order, NOW) {
            refused = Some(error);
            break;
        }
    }
    let refused = refused.expect("the capped database took every order");
    assert!(refused.is_storage_failure(), "{refused}");
    assert!(f.store.write_failed_within(minute));
    assert!(
        !f.store.write_failed_within(std::time::Duration::ZERO),
        "the failure is older than no time at all"
    );
    // A refusal of another kind (a duplicate number) says nothing about the disk.
    let first = f.store.orders(&OrderFilter::default(), all()).unwrap().items.remove(0);
    let duplicate = f.store.create_order(&new_order(&first.number, f.variant), NOW).unwrap_err();
    assert!(matches!(duplicate, StoreError::Conflict { .. }), "{duplicate}");
    assert!(f.store.write_failed_within(minute));
    f.store.simulate_full_disk(false).unwrap();
    f.store.create_order(&new_order("ROOM-1", f.variant), NOW).unwrap();
    assert!(!f.store.write_failed_within(minute));
}

#[test]
fn a_machine_takes_a_thousand_metrics_at_most() {
    let f = fixture(Store::open_in_memory().unwrap());
    let readings: Vec<Reading> = (0..1005)
        .map(|i| Reading { machine: f.machines[0], metric: format!("junk_{i}"), at: NOW, value: 1.0 })
        .collect();
    let stats = f.store.write_batch(&readings, &[], &[], &[]).unwrap();
    assert_eq!((stats.inserted, stats.too_many_metrics), (1000, 5));
    assert_eq!(f.store.metrics(f.machines[0]).unwrap().len(), 1000);
    // Known metrics still take readings, and other machines their own.
    let more = [
        Reading {
            machine: f.machines[0],
            metric: "junk_7".into(),
            at: NOW + time::Duration::seconds(1),
            value: 2.0,
        },
        Reading { machine: f.machines[1], metric: "junk_2000".into(), at: NOW, value: 2.0 },
    ];
    assert_eq!(f.store.write_batch(&more, &[], &[], &[]).unwrap().inserted, 2);
}

#[test]
fn migrations_set_the_schema_version() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), 40);
}

#[test]
fn a_raised_alarm_finds_its_unseen_predecessor_through_an_index() {
    // Without one, the lookup reads every cleared alarm: minutes behind in an alarm storm.
    let store = Store::open_in_memory().unwrap();
    let plan: Vec<String> = store
        .read(|conn| {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", alarms::UNSEEN_ALARM))?;
            Ok(statement.query_map([1, 2], |row| row.get(3))?.collect::<rusqlite::Result<_>>()?)
        })
        .unwrap();
    assert!(plan.iter().any(|step| step.contains("USING INDEX alarms_rule_machine")), "{plan:?}");
}

#[test]
fn ids_are_never_handed_out_twice() {
    let f = fixture(Store::open_in_memory().unwrap());
    let first = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    f.store.delete_order(first.id).unwrap();
    let second = f.store.create_order(&new_order("SO-2", f.variant), NOW).unwrap();
    assert!(second.id.0 > first.id.0, "the deleted order's id {} came back", first.id.0);

    f.store.create_user("root", Role::Admin, None, "$argon2id$fake", NOW).unwrap();
    let ada = f.store.create_user("ada", Role::Planner, None, "$argon2id$fake", NOW).unwrap();
    f.store.delete_user(ada.id).unwrap();
    let bob = f.store.create_user("bob", Role::Viewer, None, "$argon2id$fake", NOW).unwrap();
    assert!(bob.id.0 > ada.id.0, "the deleted user's id {} came back", ada.id.0);
}

/// A database as an earlier version made it, at schema `version`.
fn store_at_version(path: &Path, version: usize) -> Store {
    Store::create_at_version(path, version as u32).unwrap();
    let writer = Connection::open(path).unwrap();
    configure(&writer, Durability::Full).unwrap();
    Store::from_writer(Some(path.to_path_buf()), Durability::Full, writer)
}

#[test]
fn names_an_earlier_version_let_differ_in_case_only_each_sign_in_as_written() {
    let dir = fresh_dir("case");
    let path = dir.join("case.db");
    let store = Store::open(&path, Durability::Full).unwrap();
    store.create_user("Alice", Role::Planner, None, "$argon2id$upper", NOW).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO users (username, role, password_hash, created_ms) VALUES ('alice', 'viewer', '$argon2id$lower', 0)",
        )
        .unwrap();
    let found =
        |typed: &str| store.user_credentials(typed).unwrap().map(|(user, hash)| (user.username, hash));
    assert_eq!(found("alice"), Some(("alice".into(), "$argon2id$lower".into())));
    assert_eq!(found("Alice"), Some(("Alice".into(), "$argon2id$upper".into())));
    assert_eq!(found("ALICE"), Some(("Alice".into(), "$argon2id$upper".into())), "the oldest");
    assert_eq!(store.user_names_differing_in_case().unwrap(), [["Alice", "alice"]]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn upgrading_ends_old_api_log_ins_twelve_hours_after_they_were_made() {
    let dir = fresh_dir("logins");
    let path = dir.join("logins.db");
    let (login, script, revoked) = {
        let old = store_at_version(&path, 31);
        let user = old.create_user("op1", Role::Operator, None, "$argon2id$fake", NOW).unwrap();
        let token =
            |name: &str, byte: u8| old.create_token(user.id, name, &[byte; 32], "abc", NOW).unwrap().id;
        let ids = (token("login", 1), token("login", 2), token("script", 3));
        old.revoke_token(ids.1, None, NOW).unwrap();
        (ids.0, ids.2, ids.1)
    };
    let store = Store::open(&path, Durability::Full).unwrap();
    assert_eq!(store.migrated().map(|(from, _)| from), Some(31));
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let expires = |id: i64| -> Option<i64> {
        conn.query_row("SELECT expires_ms FROM api_tokens WHERE id = ?1", [id], |row| row.get(0)).unwrap()
    };
    assert_eq!(expires(login), Some(to_ms(NOW) + 12 * 3600 * 1000));
    assert_eq!(expires(script), None, "a token made to last stays so");
    assert_eq!(expires(revoked), None, "a revoked one is left as it was");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn upgrading_sums_the_stored_minutes_into_hours() {
    let dir = fresh_dir("hours");
    let path = dir.join("hours.db");
    let (machine, base) = {
        let store = store_at_version(&path, 21);
        let f = fixture(store);
        let base: i64 = 1_800_000_000_000; // a whole hour
        f.store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO series (id, machine_id, metric) VALUES (7, ?1, 't')",
                    [f.machines[0].0],
                )?;
                // Minutes of two hours, not in time order; each the roll-up of one or two readings.
                let mut minute = tx.prepare(
                    "INSERT INTO rollups_1m (series_id, minute_ms, min, max, sum, count, last, last_ts_ms)
                     VALUES (7, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (m, min, max, sum, count, last, last_s) in [
                    (59, 4.0, 4.0, 4.0, 1, 4.0, 10),
                    (0, 1.0, 9.0, 10.0, 2, 9.0, 50),
                    (30, -2.0, 3.0, 1.0, 2, -2.0, 40),
                    (61, 7.0, 7.0, 7.0, 1, 7.0, 0),
                ] {
                    let at = base + m * 60_000;
                    minute.execute(rusqlite::params![at, min, max, sum, count, last, at + last_s * 1000])?;
                }
                Ok(())
            })
            .unwrap();
        (f.machines[0], base)
    };
    let store = Store::open(&path, Durability::Full).unwrap();
    let hours = store.series(machine, "t", base, base + 7_200_000, Some(3_600_000), 0, 10).unwrap();
    let rows: Vec<_> = hours.iter().map(|p| (p.ts_ms - base, p.min, p.max, p.avg, p.last, p.count)).collect();
    // The first hour: minute 59 holds its latest reading (59:10); the mean is (4 + 10 + 1) / 5.
    assert_eq!(rows, [(0, -2.0, 9.0, 3.0, 4.0, 5), (3_600_000, 7.0, 7.0, 7.0, 7.0, 1)]);
}

#[test]
fn upgrading_keeps_every_row_and_reference() {
    use model::alarm::{Condition, NewAlarmRule, Severity};

    let dir = fresh_dir("upgrade");
    let path = dir.join("upgrade.db");
    let (orders, operations, users, tokens, rules, variant) = {
        let store = store_at_version(&path, 16);
        assert_eq!(store.schema_version().unwrap(), 16);
        // A site as version 16 kept it: a fixed offset, no time zone column yet.
        let site = store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO sites (code, name, utc_offset) VALUES ('hk', 'Kwun Tong', '+08:00')",
                    [],
                )?;
                Ok(SiteId(tx.last_insert_rowid()))
            })
            .unwrap();
        let f = fixture_at(store, site);
        // Written as version 16 kept orders (this version's order code reads and writes columns
        // it did not have), each with the fixture routing's two operations; as read after the
        // upgrade, which numbers the revisions of the orders there by their ids.
        let orders: Vec<Order> = ["SO-1", "SO-2", "SO-3"]
            .into_iter()
            .map(|number| {
                let new = new_order(number, f.variant);
                let id = f
                    .store
                    .write(|tx| {
                        tx.execute(
                            "INSERT INTO orders (number, customer, variant_id, quantity, due_ms, priority, status, created_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned', ?7)",
                            rusqlite::params![
                                new.number,
                                new.customer,
                                new.variant_id.0,
                                new.quantity,
                                to_ms(new.due),
                                new.priority,
                                to_ms(NOW)
                            ],
                        )?;
                        let id = tx.last_insert_rowid();
                        for (seq, name, machines) in [(0, "mill", &f.machines[..]), (1, "deburr", &f.machines[1..])] {
                            tx.execute(
                                "INSERT INTO operations (order_id, seq, name, setup_seconds, unit_seconds, setup_family, status)
                                 VALUES (?1, ?2, ?3, 600, 30.0, 'alu', 'planned')",
                                rusqlite::params![id, seq, name],
                            )?;
                            let operation = tx.last_insert_rowid();
                            for machine in machines {
                                tx.execute(
                                    "INSERT INTO operation_machines (operation_id, machine_id) VALUES (?1, ?2)",
                                    rusqlite::params![operation, machine.0],
                                )?;
                            }
                        }
                        Ok(id)
                    })
                    .unwrap();
                Order {
                    id: OrderId(id),
                    number: new.number,
                    customer: new.customer,
                    variant_id: new.variant_id,
                    quantity: new.quantity,
                    due: new.due,
                    priority: new.priority,
                    status: OrderStatus::Planned,
                    material_ready: None,
                    created_at: NOW,
                    finished_at: None,
                    delivered: None,
                    revision: id,
                }
            })
            .collect();
        let user = f.store.create_user("ada", Role::Planner, None, "$argon2id$fake", NOW).unwrap();
        f.store.create_token(user.id, "cli", &[9u8; 32], "mf_abc", NOW).unwrap();
        // A bootstrap token a person chose, listed with its first 10 characters.
        f.store.create_token(user.id, "bootstrap", &[8u8; 32], "bootstrap-", NOW).unwrap();
        // A device with a password, as older versions kept one.
        f.store.create_user("gw", Role::Device, Some(site), "$argon2id$device", NOW).unwrap();
        // A rule as version 16 kept it, without a site.
        let rule = alarm::AlarmRule {
            id: f
                .store
                .write(|tx| {
                    tx.execute(
                        "INSERT INTO alarm_rules (name, machine_id, metric, kind, param, for_seconds, severity,
                                                  enabled, deadband)
                         VALUES ('gas', ?1, 'gas_ppm', 'above', 50.0, 0, 'critical', 1, 0.0)",
                        [f.machines[0].0],
                    )?;
                    Ok(tx.last_insert_rowid())
                })
                .unwrap(),
            rule: NewAlarmRule {
                name: "gas".into(),
                machine_id: Some(f.machines[0]),
                site_id: None,
                metric: Some("gas_ppm".into()),
                condition: Condition::Above { threshold: 50.0 },
                for_seconds: 0,
                deadband: 0.0,
                severity: Severity::Critical,
                enabled: true,
            },
        };
        // An alarm as version 16 wrote it, without the time it fired.
        f.store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO alarms (rule_id, machine_id, severity, message, value, status, raised_ms,
                                         rule_name, metric, condition_kind, condition_param)
                     VALUES (?1, ?2, 'critical', 'gas', 72.5, 'active', ?3, 'gas', 'gas_ppm', 'above', 50.0)",
                    rusqlite::params![rule.id, f.machines[0].0, to_ms(NOW)],
                )?;
                Ok(())
            })
            .unwrap();
        let operations: Vec<_> = orders.iter().flat_map(|o| f.store.operations(o.id).unwrap()).collect();
        (orders, operations, f.store.users().unwrap(), f.store.tokens(None).unwrap(), vec![rule], f.variant)
    };

    let store = Store::open(&path, Durability::Full).unwrap();
    assert_eq!(store.schema_version().unwrap(), 40);
    let site = &store.sites(all()).unwrap().items[0];
    assert_eq!((site.utc_offset.as_deref(), site.time_zone.as_deref()), (Some("+08:00"), None));
    assert_eq!(store.orders(&OrderFilter::default(), all()).unwrap().items, orders);
    let after: Vec<_> = orders.iter().flat_map(|o| store.operations(o.id).unwrap()).collect();
    assert_eq!(after, operations);
    assert_eq!(store.users().unwrap(), users);
    let alarms = store.alarms(&AlarmFilter::default(), all()).unwrap().items;
    assert_eq!(alarms.len(), 1);
    assert_eq!((alarms[0].raised_at, alarms[0].fired_at, alarms[0].value), (NOW, None, Some(72.5)));
    let (_, device_hash) = store.user_credentials("gw").unwrap().unwrap();
    assert_eq!(device_hash, "!", "a device's old password is gone");
    let (_, person_hash) = store.user_credentials("ada").unwrap().unwrap();
    assert_eq!(person_hash, "$argon2id$fake");
    let upgraded = store.tokens(None).unwrap();
    let prefixes: Vec<&str> = upgraded.iter().map(|t| t.prefix.as_str()).collect();
    assert_eq!(prefixes, ["mf_abc", "boo"]);
    let unchanged =
        |list: &[ApiToken]| -> Vec<_> { list.iter().map(|t| (t.id, t.name.clone(), t.created_at)).collect() };
    assert_eq!(unchanged(&upgraded), unchanged(&tokens));
    assert_eq!(store.alarm_rules().unwrap(), rules);
    let dangling: i64 = store
        .read(|conn| {
            Ok(conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| row.get(0))?)
        })
        .unwrap();
    assert_eq!(dangling, 0);
    // The rebuilt tables still cascade: deleting an order takes its operations along.
    let newest = orders.iter().map(|o| o.id).max().unwrap();
    store.delete_order(newest).unwrap();
    let left: i64 = store
        .read(|conn| {
            Ok(conn.query_row("SELECT count(*) FROM operations WHERE order_id = ?1", [newest.0], |row| {
                row.get(0)
            })?)
        })
        .unwrap();
    assert_eq!(left, 0);
    let next = store.create_order(&new_order("SO-4", variant), NOW).unwrap();
    assert!(next.id.0 > newest.0);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn orders_copy_their_routing_into_operations() {
    let f = fixture(Store::open_in_memory().unwrap());
    let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    assert_eq!(f.store.order(order.id).unwrap(), order);
    let operations = f.store.operations(order.id).unwrap();
    assert_eq!(operations.len(), 2);
    assert_eq!(operations[0].eligible_machines, f.machines.to_vec());
    assert_eq!(operations[1].eligible_machines, vec![f.machines[1]]);
    assert!(operations.iter().all(|op| op.status == OrderStatus::Planned));
}

#[test]
fn duplicate_codes_are_conflicts_naming_the_field() {
    let f = fixture(Store::open_in_memory().unwrap());
    f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    let error = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict { field: Some(ref field), .. } if field == "number"),
        "{error:?}"
    );
}

#[test]
fn unknown_references_are_field_errors_and_write_nothing() {
    let f = fixture(Store::open_in_memory().unwrap());
    let error = f.store.create_order(&new_order("SO-1", VariantId(999)), NOW).unwrap_err();
    assert!(matches!(&error, StoreError::Invalid(p) if p[0].field == "variant_id"), "{error:?}");
    assert!(f.store.orders(&OrderFilter::default(), all()).unwrap().items.is_empty());
}

#[test]
fn batches_are_all_or_nothing() {
    let f = fixture(Store::open_in_memory().unwrap());
    let batch =
        [new_order("SO-1", f.variant), new_order("SO-2", VariantId(999)), new_order("SO-3", f.variant)];
    let error = f.store.create_orders(&batch, NOW).unwrap_err();
    assert!(matches!(error, StoreError::InRow { index: 1, .. }), "{error:?}");
    assert!(f.store.orders(&OrderFilter::default(), all()).unwrap().items.is_empty());
    let good = [new_order("SO-1", f.variant), new_order("SO-3", f.variant)];
    assert_eq!(f.store.create_orders(&good, NOW).unwrap().len(), 2);
}

#[test]
fn order_lists_paginate_and_filter() {
    let f = fixture(Store::open_in_memory().unwrap());
    for i in 0..25 {
        let mut order = new_order(&format!("SO-{i}"), f.variant);
        order.due = datetime!(2026-12-01 00:00 UTC) + time::Duration::days(i);
        f.store.create_order(&order, NOW).unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f.store.orders(&OrderFilter::default(), PageRequest { after, limit: 10 }).unwrap();
        seen.extend(page.items.iter().map(|o| o.number.clone()));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let filter = OrderFilter {
        due_after: Some(datetime!(2026-12-05 00:00 UTC)),
        due_before: Some(datetime!(2026-12-08 00:00 UTC)),
        ..OrderFilter::default()
    };
    let numbers: Vec<_> =
        f.store.orders(&filter, all()).unwrap().items.into_iter().map(|o| o.number).collect();
    assert_eq!(numbers, ["SO-4", "SO-5", "SO-6"]);
    let on_machine = OrderFilter { machine: Some(f.machines[0]), ..OrderFilter::default() };
    assert_eq!(f.store.orders(&on_machine, all()).unwrap().items.len(), 25);
    let released = OrderFilter { status: Some(OrderStatus::Released), ..OrderFilter::default() };
    assert!(f.store.orders(&released, all()).unwrap().items.is_empty());
    // Search: a part of the number or of the customer, letters in any case; `%` and `_` are text.
    let mut other = new_order("XR-100%", f.variant);
    other.customer = "Harbour Audio Co".into();
    f.store.create_order(&other, NOW).unwrap();
    let search = |text: &str| {
        let filter = OrderFilter { search: Some(text.into()), ..OrderFilter::default() };
        f.store.orders(&filter, all()).unwrap().items.into_iter().map(|o| o.number).collect::<Vec<_>>()
    };
    assert_eq!(search("harbour"), ["XR-100%"]);
    assert_eq!(search("xr-1"), ["XR-100%"]);
    assert_eq!(search("100%"), ["XR-100%"]);
    assert_eq!(search("%").len(), 1, "a percent sign matches only itself");
    assert_eq!(search("SO-2_").len(), 0, "an underscore matches only itself");
    assert_eq!(search("acme").len(), 25);
    assert_eq!(
        f.store.count_orders(&OrderFilter { search: Some("acme".into()), ..OrderFilter::default() }).unwrap(),
        25
    );
    // Full-width letters and digits, typed or stored (a Chinese input method in full-width mode),
    // find the same as ASCII.
    let mut wide = new_order("HK-2612-7", f.variant);
    wide.customer = "ＡＢＣ貿易（香港）".into();
    f.store.create_order(&wide, NOW).unwrap();
    assert_eq!(search("abc"), ["HK-2612-7"]);
    assert_eq!(search("ＨＫ－２６１２"), ["HK-2612-7"]);
    assert_eq!(search("ｘｒ"), ["XR-100%"]);
}

#[test]
fn orders_list_by_due_time_page_by_page_and_count_over_all_pages() {
    let f = fixture(Store::open_in_memory().unwrap());
    // Due on days 5, 3, 3, 1, 4, 2, 5 of December, created in that order.
    for (i, day) in [5, 3, 3, 1, 4, 2, 5].into_iter().enumerate() {
        let mut order = new_order(&format!("SO-{i}"), f.variant);
        order.due = datetime!(2026-12-01 10:00 UTC) + time::Duration::days(day - 1);
        f.store.create_order(&order, NOW).unwrap();
    }
    let by_due = OrderFilter { sort: OrderSort::Due, ..OrderFilter::default() };
    let (mut numbers, mut after, mut due) = (Vec::new(), None, None);
    loop {
        let filter = OrderFilter { cursor_due_ms: due, ..by_due.clone() };
        let page = f.store.orders(&filter, PageRequest { after, limit: 2 }).unwrap();
        due = page.items.last().map(|o| to_ms(o.due));
        numbers.extend(page.items.into_iter().map(|o| o.number));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(numbers, ["SO-3", "SO-5", "SO-1", "SO-2", "SO-4", "SO-0", "SO-6"], "ties as created");
    let early = OrderFilter { due_before: Some(datetime!(2026-12-03 12:00 UTC)), ..by_due.clone() };
    assert_eq!(f.store.count_orders(&early).unwrap(), 4);
    assert_eq!(f.store.count_orders(&OrderFilter::default()).unwrap(), 7);
    // The cursor carries the due time: the list goes on from there even when the order at the
    // cursor has gone since.
    let first = f.store.orders(&by_due, PageRequest { after: None, limit: 2 }).unwrap();
    let (cursor, cursor_due) = (first.next_cursor.unwrap(), to_ms(first.items[1].due));
    f.store.set_order_status(OrderId(cursor), OrderStatus::Cancelled).unwrap();
    f.store.delete_order(OrderId(cursor)).unwrap();
    let on = OrderFilter { cursor_due_ms: Some(cursor_due), ..by_due.clone() };
    let next = f.store.orders(&on, PageRequest { after: Some(cursor), limit: 1 }).unwrap();
    assert_eq!(next.items[0].number, "SO-1");
    let without = f.store.orders(&by_due, PageRequest { after: Some(cursor), limit: 1 });
    assert!(matches!(without, Err(StoreError::Invalid(_))), "{without:?}");
}

#[test]
fn status_changes_follow_the_life_cycle() {
    let f = fixture(Store::open_in_memory().unwrap());
    let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    assert!(f.store.set_order_status(order.id, OrderStatus::Done).is_err());
    let released = f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
    assert!(f.store.operations(order.id).unwrap().iter().all(|op| op.status == OrderStatus::Released));
    // What a change answers is the order as it now is, with the revision the change gave it.
    assert_eq!(released, f.store.order(order.id).unwrap());
    assert!(released.revision > order.revision);
    let cancelled = f.store.set_order_status(order.id, OrderStatus::Cancelled).unwrap();
    assert!(f.store.operations(order.id).unwrap().iter().all(|op| op.status == OrderStatus::Cancelled));
    assert_eq!(cancelled, f.store.order(order.id).unwrap());
    f.store.delete_order(order.id).unwrap();
    assert!(matches!(f.store.order(order.id), Err(StoreError::NotFound { .. })));
}

#[test]
fn referenced_rows_cannot_be_deleted() {
    let f = fixture(Store::open_in_memory().unwrap());
    f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    f.store.create_order(&new_order("SO-2", f.variant), NOW).unwrap();
    // The conflict says what uses the row: machine 1 is eligible for one routing step and for the
    // first step of both orders.
    let error = f.store.delete_machine(f.machines[0], false).unwrap_err();
    let StoreError::Conflict { message, .. } = &error else { panic!("{error:?}") };
    assert_eq!(
        message,
        "the machine is still used by 2 order operations, 1 routing step; remove or change those first; a machine whose work stays on record is retired instead (`\"retired\": true` in its PUT)"
    );
    let site = f.store.machine(f.machines[0]).unwrap().site_id;
    let StoreError::Conflict { message, .. } = f.store.delete_site(site).unwrap_err() else { panic!() };
    assert_eq!(message, "the site is still used by 2 machines; remove or change those first");
    let StoreError::Conflict { message, .. } = f.store.delete_variant(f.variant).unwrap_err() else {
        panic!()
    };
    assert!(message.starts_with("the variant is still used by 2 orders"), "{message}");
}

#[test]
fn calendars_round_trip() {
    let store = Store::open_in_memory().unwrap();
    let site = store
        .create_site(&NewSite {
            code: "hk".into(),
            name: "HK".into(),
            utc_offset: Some("+08:00".into()),
            time_zone: None,
        })
        .unwrap();
    let calendar = Calendar {
        shifts: vec![Shift {
            name: "day".into(),
            days: vec![Weekday::Mon, Weekday::Sat],
            start: "08:00".into(),
            end: "17:30".into(),
        }],
        holidays: vec![time::macros::date!(2026 - 12 - 25)],
    };
    store.set_calendar(site.id, &calendar).unwrap();
    assert_eq!(store.calendar(site.id).unwrap(), calendar);
    assert!(matches!(store.calendar(SiteId(99)), Err(StoreError::NotFound { .. })));
}

#[test]
fn a_user_holds_a_hundred_lasting_tokens_at_most() {
    let store = Store::open_in_memory().unwrap();
    let user = store.create_user("ada", Role::Planner, None, "$argon2id$fake", NOW).unwrap();
    let digest = |i: u32| {
        let mut d = [0u8; 32];
        d[..4].copy_from_slice(&i.to_le_bytes());
        d
    };
    let tokens: Vec<ApiToken> = (0..MAX_LASTING_TOKENS as u32)
        .map(|i| store.create_token(user.id, "t", &digest(i), "mf_x", NOW).unwrap())
        .collect();
    let refused = store.create_token(user.id, "t", &digest(1000), "mf_x", NOW).unwrap_err();
    assert!(matches!(&refused, StoreError::Conflict { field: Some(f), .. } if f == "user_id"), "{refused}");
    // Sign-ins, which expire by themselves, do not count; a revoked token frees its place.
    let later = Some(NOW + time::Duration::hours(12));
    store.create_expiring_token(user.id, "login", &digest(1001), "mf_x", NOW, later).unwrap();
    store.revoke_token(tokens[0].id, Some(user.id), NOW).unwrap();
    store.create_token(user.id, "t", &digest(1002), "mf_x", NOW).unwrap();
}

#[test]
fn tokens_authenticate_until_revoked() {
    let store = Store::open_in_memory().unwrap();
    let user = store.create_user("ada", Role::Planner, None, "$argon2id$fake", NOW).unwrap();
    let digest = [7u8; 32];
    let token = store.create_token(user.id, "cli", &digest, "mf_abc", NOW).unwrap();
    assert_eq!(store.token_owner(&digest, NOW).unwrap().unwrap().user, user);
    assert_eq!(store.live_token(token.id, NOW).unwrap().unwrap().user, user);
    store.revoke_token(token.id, Some(user.id), NOW).unwrap();
    assert!(store.token_owner(&digest, NOW).unwrap().is_none());
    assert!(store.live_token(token.id, NOW).unwrap().is_none());
    // Revoking it again is no error (a repeated DELETE); an unknown token is.
    store.revoke_token(token.id, Some(user.id), NOW).unwrap();
    assert!(matches!(store.revoke_token(token.id + 100, None, NOW), Err(StoreError::NotFound { .. })));
    assert_eq!(store.tokens(Some(user.id)).unwrap()[0].revoked_at, Some(NOW));
}

#[test]
fn expiring_tokens_stop_at_their_expiry() {
    let store = Store::open_in_memory().unwrap();
    let user = store.create_user("ada", Role::Planner, None, "$argon2id$fake", NOW).unwrap();
    let digest = [8u8; 32];
    let expires = NOW + time::Duration::hours(12);
    let token =
        store.create_expiring_token(user.id, "session", &digest, "mf_def", NOW, Some(expires)).unwrap();
    assert_eq!(token.expires_at, Some(expires));
    let owner = store.token_owner(&digest, expires - time::Duration::seconds(1)).unwrap().unwrap();
    assert_eq!(owner.expires, Some(expires));
    assert!(store.token_owner(&digest, expires).unwrap().is_none());
    assert_eq!(store.tokens(None).unwrap()[0].expires_at, Some(expires));
    // Retention deletes ended sessions, never tokens without an expiry.
    store.create_token(user.id, "cli", &[9u8; 32], "mf_ghi", NOW).unwrap();
    assert_eq!(store.prune_sessions(expires, 10).unwrap(), 0, "not yet expired before the cut");
    let later = expires + time::Duration::days(30);
    assert_eq!(store.prune_sessions(later, 10).unwrap(), 1);
    assert_eq!(store.prune_sessions(later, 10).unwrap(), 0);
    let left: Vec<String> = store.tokens(None).unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(left, ["cli"]);
}

#[test]
fn a_sign_in_made_while_the_clock_ran_ahead_ends_when_it_is_set_right() {
    let store = Store::open_in_memory().unwrap();
    let user = store.create_user("ada", Role::Planner, None, "$argon2id$fake", NOW).unwrap();
    // Not a year later; a token without an expiry made then keeps working.
    let ahead = NOW + time::Duration::days(365);
    let sign_in = [10u8; 32];
    let signed_in = Some(ahead + time::Duration::hours(12));
    store.create_expiring_token(user.id, "session", &sign_in, "mf_jkl", ahead, signed_in).unwrap();
    assert!(store.token_owner(&sign_in, ahead).unwrap().is_some());
    assert!(store.token_owner(&sign_in, NOW).unwrap().is_none());
    store.create_token(user.id, "gateway", &[11u8; 32], "mf_mno", ahead).unwrap();
    assert!(store.token_owner(&[11u8; 32], NOW).unwrap().is_some());
}

#[test]
fn file_store_survives_reopen_and_reads_through_the_pool() {
    let dir = fresh_dir("test");
    let path = dir.join("reopen.db");
    {
        let f = fixture(Store::open(&path, Durability::Full).unwrap());
        f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    }
    let store = Store::open(&path, Durability::Normal).unwrap();
    let orders = store.orders(&OrderFilter::default(), all()).unwrap().items;
    assert_eq!(orders.len(), 1);
    assert_eq!(store.machines(&MachineFilter::default(), all()).unwrap().items.len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stores_of_other_schema_versions_and_foreign_logs_are_refused_with_reasons() {
    let dir = fresh_dir("versions");
    // An older store: a tool beside a server must not upgrade it; the platform does, and says so.
    let old = dir.join("old.db");
    {
        let conn = Connection::open(&old).unwrap();
        schema::migrate_to(&conn, 18).unwrap();
    }
    let known = Store::schema_versions(&old).unwrap().unwrap().1;
    assert_eq!(Store::schema_versions(&old).unwrap(), Some((18, known)));
    let before = std::fs::read(&old).unwrap();
    let refused = Store::open_current(&old, Durability::Full).err().unwrap();
    assert!(matches!(refused, StoreError::OlderSchema { found: 18, .. }), "{refused}");
    assert!(std::fs::read(&old).unwrap() == before, "a refused store is left as it was");
    assert!(refused.to_string().contains("start `microfactory serve` of this version"), "{refused}");
    let upgraded = Store::open(&old, Durability::Full).unwrap();
    assert_eq!(upgraded.migrated(), Some((18, known)));
    drop(upgraded);
    assert!(Store::open(&old, Durability::Full).unwrap().migrated().is_none());
    assert!(Store::open_current(&old, Durability::Full).is_ok());
    // A newer one: not corrupt, written by a newer version.
    let newer = dir.join("newer.db");
    Connection::open(&newer).unwrap().execute_batch(&format!("PRAGMA user_version = {}", known + 1)).unwrap();
    let refused = Store::open(&newer, Durability::Full).err().unwrap();
    assert!(refused.to_string().contains("written by a newer microfactory"), "{refused}");
    // A migration that fails says which, and leaves the store as it was.
    let clash = dir.join("clash.db");
    {
        let conn = Connection::open(&clash).unwrap();
        schema::migrate_to(&conn, 18).unwrap();
        conn.execute_batch("ALTER TABLE alarms ADD COLUMN occurrences INTEGER").unwrap();
    }
    let failed = Store::open(&clash, Durability::Full).err().unwrap();
    assert!(
        failed.to_string().starts_with("migration 19 failed, the store stays at schema version 18"),
        "{failed}"
    );
    assert_eq!(Store::schema_versions(&clash).unwrap().unwrap().0, 18);
    // A backup restored beside the log of the store it replaced is not opened (which would ruin it).
    let live = dir.join("live.db");
    let store = Store::open(&live, Durability::Full).unwrap();
    let f = fixture(store);
    let copy = dir.join("copy.db");
    backup_database(&live, &copy).unwrap();
    f.store.create_order(&new_order("SO-AFTER", f.variant), NOW).unwrap();
    let live_log = dir.join("live.db-wal");
    assert!(std::fs::metadata(&live_log).unwrap().len() > 0);
    std::fs::copy(&live_log, dir.join("copy.db-wal")).unwrap();
    let refused = Store::open(&copy, Durability::Full).err().unwrap();
    assert!(matches!(refused, StoreError::Unsafe(_)), "{refused}");
    assert!(refused.to_string().contains("copy.db-wal"), "{refused}");
    let backup = backup_database(&copy, &dir.join("again.db")).unwrap_err();
    assert!(backup.contains("copy.db-wal"), "{backup}");
    std::fs::remove_file(dir.join("copy.db-wal")).unwrap();
    let restored = Store::open(&copy, Durability::Full).unwrap();
    assert_eq!(restored.orders(&OrderFilter::default(), all()).unwrap().items.len(), 0);
    // A store file lost or emptied beside its log: a new store would overwrite the newest writes.
    for lost in ["emptied.db", "gone.db"] {
        let path = dir.join(lost);
        if lost == "emptied.db" {
            std::fs::write(&path, "").unwrap();
        }
        std::fs::copy(&live_log, dir.join(format!("{lost}-wal"))).unwrap();
        let refused = Store::open(&path, Durability::Full).err().unwrap();
        assert!(matches!(refused, StoreError::Unsafe(_)), "{refused}");
        assert!(refused.to_string().contains("newest writes"), "{refused}");
        assert!(std::fs::metadata(dir.join(format!("{lost}-wal"))).unwrap().len() > 0, "the log is kept");
    }
    std::fs::write(dir.join("nothing.db"), "").unwrap();
    let empty = backup_database(&dir.join("nothing.db"), &dir.join("nothing-backup.db")).unwrap_err();
    assert!(empty.contains("nothing to back up"), "{empty}");
    // After a checkpoint (a clean stop) the store file alone holds every write.
    assert!(f.store.checkpoint().unwrap());
    assert_eq!(std::fs::metadata(&live_log).unwrap().len(), 0);
    std::fs::copy(&live, dir.join("cold.db")).unwrap();
    let cold = Store::open(&dir.join("cold.db"), Durability::Full).unwrap();
    let numbers: Vec<String> =
        cold.orders(&OrderFilter::default(), all()).unwrap().items.into_iter().map(|o| o.number).collect();
    assert_eq!(numbers, ["SO-AFTER"]);
    drop((f, restored, cold));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_backup_is_a_whole_store_that_opens_on_its_own() {
    let dir = fresh_dir("backup");
    let live = dir.join("live.db");
    let f = fixture(Store::open(&live, Durability::Full).unwrap());
    f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    let copy = dir.join("backup.db");
    // What a killed backup left (its process long gone) is cleaned up by the next one; another
    // running backup's file is left alone.
    let dead = u32::MAX - 7;
    let half_a_copy = b"SQLite format 3\0 and then half of the pages";
    std::fs::write(dir.join(format!("backup.db.partial-{dead}")), half_a_copy).unwrap();
    // One killed before SQLite wrote its first page (it writes that last).
    std::fs::write(dir.join(format!("early.db.partial-{dead}")), vec![0u8; 8192]).unwrap();
    std::fs::write(dir.join(format!("backup.db.partial-{dead}-journal")), "").unwrap();
    // Also one of a backup by another name (dated backups never repeat a name).
    std::fs::write(dir.join(format!("mf-2026-12-05.db.partial-{dead}")), half_a_copy).unwrap();
    let alive = std::process::id();
    std::fs::write(dir.join(format!("backup.db.partial-{alive}0-unrelated")), "").unwrap();
    // A file of somebody else's that happens to be named so is no backup's.
    std::fs::write(dir.join(format!("notes.partial-{dead}")), "somebody's notes").unwrap();
    assert!(backup_database(&live, &copy).unwrap() > 0);
    assert!(!dir.join(format!("backup.db.partial-{dead}")).exists());
    assert!(!dir.join(format!("backup.db.partial-{dead}-journal")).exists());
    assert!(!dir.join(format!("mf-2026-12-05.db.partial-{dead}")).exists());
    assert!(!dir.join(format!("early.db.partial-{dead}")).exists());
    assert!(dir.join(format!("notes.partial-{dead}")).exists());
    std::fs::remove_file(dir.join(format!("notes.partial-{dead}"))).unwrap();
    std::fs::remove_file(dir.join(format!("backup.db.partial-{alive}0-unrelated"))).unwrap();
    // Written after the copy: not in it.
    f.store.create_order(&new_order("SO-2", f.variant), NOW).unwrap();
    let again = backup_database(&live, &copy).unwrap_err();
    assert!(again.contains("exists already"), "{again}");
    // A backup that fails half-way (here: its folder is gone) leaves no file at all.
    let nowhere = dir.join("gone").join("backup.db");
    assert!(backup_database(&live, &nowhere).is_err());
    // Nothing is left behind but the backup itself.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let restored = Store::open(&copy, Durability::Full).unwrap();
    let numbers: Vec<String> = restored
        .orders(&OrderFilter::default(), all())
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.number)
        .collect();
    assert_eq!(numbers, ["SO-1"]);
    assert_eq!(restored.machines(&MachineFilter::default(), all()).unwrap().items.len(), 2);
    drop((f, restored));
    std::fs::remove_dir_all(&dir).unwrap();
}

mod telemetry_tests {
    use super::*;

    fn reading(machine: MachineId, metric: &str, ms: i64, value: f64) -> Reading {
        Reading { machine, metric: metric.into(), at: from_ms(ms).unwrap(), value }
    }

    #[test]
    fn a_deleted_machine_s_readings_never_come_back_under_another_series() {
        let f = fixture(Store::open_in_memory().unwrap());
        let site = f.store.machine(f.machines[0]).unwrap().site_id;
        let machine = |code: &str| NewMachine {
            site_id: site,
            line_id: None,
            code: code.into(),
            name: code.into(),
            kind: MachineKind::Other,
            capabilities: vec![],
            rated_power_kw: 0.0,
            retired: None,
        };
        let base = 1_800_000_000_000;
        let gone = f.store.create_machine(&machine("gone"), NOW).unwrap().id;
        let readings: Vec<Reading> =
            (0..3).map(|i| reading(gone, "secret", base + i * 1000, 41.0 + i as f64)).collect();
        f.store.write_batch(&readings, &[], &[], &[]).unwrap();
        f.store.delete_machine(gone, true).unwrap();
        // A new series on another machine, which a reused id would have given the old readings.
        f.store.write_batch(&[reading(f.machines[0], "brand_new", base + 5000, 1.0)], &[], &[], &[]).unwrap();
        let raw = f.store.series(f.machines[0], "brand_new", base, base + 60_000, None, 0, 100).unwrap();
        assert_eq!(raw.len(), 1, "{raw:?}");
        let minutes = f
            .store
            .series(f.machines[0], "brand_new", base - 60_000, base + 120_000, Some(60_000), 0, 100)
            .unwrap();
        assert_eq!(minutes.iter().map(|p| p.count).sum::<u64>(), 1, "{minutes:?}");
    }

    #[test]
    fn the_last_reading_is_the_latest_of_any_metric() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        assert_eq!(f.store.last_reading_at(m).unwrap(), None);
        let base = 1_800_000_000_000;
        f.store
            .write_readings(&[reading(m, "temp", base + 5_000, 1.0), reading(m, "power", base + 9_000, 2.0)])
            .unwrap();
        f.store
            .write_readings(&[
                reading(m, "temp", base + 7_000, 1.5),
                reading(f.machines[1], "temp", base + 60_000, 0.0),
            ])
            .unwrap();
        assert_eq!(f.store.last_reading_at(m).unwrap(), Some(from_ms(base + 9_000).unwrap()));
        let mut latest = f.store.latest_readings().unwrap();
        latest.sort_by(|a, b| (a.machine, &a.metric).cmp(&(b.machine, &b.metric)));
        assert_eq!(
            latest,
            [
                reading(m, "power", base + 9_000, 2.0),
                reading(m, "temp", base + 7_000, 1.5),
                reading(f.machines[1], "temp", base + 60_000, 0.0)
            ]
        );
    }

    #[test]
    fn a_series_is_read_back_to_a_time_and_the_reading_before_it() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000;
        let temp = |seconds: i64| reading(m, "temp", base + seconds * 1000, seconds as f64);
        f.store
            .write_readings(&[temp(0), temp(10), temp(20), temp(30), reading(m, "power", base, 1.0)])
            .unwrap();
        let back = |oldest: i64, limit| {
            f.store.readings_back(m, "temp", base + oldest * 1000, i64::MAX, limit).unwrap()
        };
        assert_eq!(back(15, 100), [temp(30), temp(20), temp(10)]);
        assert_eq!(back(20, 100), [temp(30), temp(20), temp(10)]);
        assert_eq!(back(-5, 100), [temp(30), temp(20), temp(10), temp(0)]);
        assert_eq!(back(15, 2), [temp(30), temp(20)]);
        assert!(f.store.readings_back(m, "none", base, i64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn the_latest_recorded_time_is_the_newest_of_readings_states_and_orders() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        assert_eq!(f.store.latest_recorded_at().unwrap(), None);
        f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        assert_eq!(f.store.latest_recorded_at().unwrap(), Some(NOW));
        let later = NOW + time::Duration::hours(30);
        f.store.write_readings(&[reading(m, "temp", to_ms(later), 1.0)]).unwrap();
        assert_eq!(f.store.latest_recorded_at().unwrap(), Some(later));
        let latest = later + time::Duration::minutes(5);
        f.store
            .record_state(&StateChange { machine: m, at: latest, state: MachineState::Down, reason: None })
            .unwrap();
        // An older reading changes nothing.
        f.store.write_readings(&[reading(m, "power", to_ms(NOW), 1.0)]).unwrap();
        assert_eq!(f.store.latest_recorded_at().unwrap(), Some(latest));
    }

    #[test]
    fn minute_steps_take_the_parts_of_minutes_at_either_end_from_the_raw_readings() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000; // a whole minute
        let at = |s: i64| base + s;
        let readings = [(10_000, 1.0), (40_000, 3.0), (50_000, 2.0), (80_000, 10.0), (179_999, 5.0)];
        let batch: Vec<Reading> = readings.iter().map(|&(ms, v)| reading(m, "t", at(ms), v)).collect();
        f.store.write_readings(&batch).unwrap();
        let steps = |from: i64, to: i64| -> Vec<(i64, f64, f64, u64)> {
            f.store
                .series(m, "t", at(from), at(to), Some(60_000), 0, 1000)
                .unwrap()
                .iter()
                .map(|p| (p.ts_ms - base, p.min, p.max, p.count))
                .collect()
        };
        // From :30 of the first minute to :30 of the third: 3 and 2, then 10; not 1, not 5.
        assert_eq!(steps(30_000, 150_000), [(0, 2.0, 3.0, 2), (60_000, 10.0, 10.0, 1)]);
        // Within one minute.
        assert_eq!(steps(35_000, 45_000), [(0, 3.0, 3.0, 1)]);
        // Whole minutes as before.
        assert_eq!(steps(0, 180_000).len(), 3);
        // Once the raw readings are gone, the end minutes come whole from the roll-ups.
        f.store.prune(PruneBefore { raw_ms: at(180_000), minutes_ms: 0, hours_ms: 0 }, 1000).unwrap();
        assert_eq!(
            steps(30_000, 150_000),
            [(0, 1.0, 3.0, 3), (60_000, 10.0, 10.0, 1), (120_000, 5.0, 5.0, 1)]
        );
    }

    #[test]
    fn hour_steps_read_the_hour_rollups_and_the_ends_from_finer_rows() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000; // a whole hour
        let (minute, hour) = (60_000, 3_600_000);
        // One reading a minute, at :30 of each, for three hours; the value is the minute's number.
        let batch: Vec<Reading> =
            (0..180).map(|i| reading(m, "t", base + i * minute + 30_000, i as f64)).collect();
        f.store.write_readings(&batch).unwrap();
        let steps = |from: i64, to: i64| -> Vec<(i64, f64, f64, f64, u64)> {
            f.store
                .series(m, "t", base + from, base + to, Some(hour), 0, 1000)
                .unwrap()
                .iter()
                .map(|p| (p.ts_ms - base, p.min, p.max, p.last, p.count))
                .collect()
        };
        // Half past the first hour to half past the third: minutes 30–149, the middle hour whole.
        let half = 30 * minute;
        let expected =
            [(0, 30.0, 59.0, 59.0, 30), (hour, 60.0, 119.0, 119.0, 60), (2 * hour, 120.0, 149.0, 149.0, 30)];
        assert_eq!(steps(half, 2 * hour + half), expected);
        // A part of a minute at the start comes from the raw readings: minute 30's is at :30.
        assert_eq!(steps(half + 40_000, 2 * hour)[0], (0, 31.0, 59.0, 59.0, 29));
        // The middle hour is the hour roll-up's row: the same as the minutes give.
        let by_minutes =
            f.store.series(m, "t", base + hour, base + 2 * hour, Some(2 * minute), 0, 1000).unwrap();
        assert_eq!(by_minutes.iter().map(|p| p.count).sum::<u64>(), 60);
        // Once raw readings and minutes are pruned, the end hours come whole from their rows.
        let gone = PruneBefore { raw_ms: base + 3 * hour, minutes_ms: base + 3 * hour, hours_ms: 0 };
        assert_eq!(f.store.prune(gone, 1000).unwrap(), 360);
        assert_eq!(
            steps(half, 2 * hour + half),
            [(0, 0.0, 59.0, 59.0, 60), (hour, 60.0, 119.0, 119.0, 60), (2 * hour, 120.0, 179.0, 179.0, 60)]
        );
        // Steps shorter than an hour have nothing left to read.
        assert!(f.store.series(m, "t", base, base + 3 * hour, Some(minute), 0, 1000).unwrap().is_empty());
        let all = PruneBefore { raw_ms: 0, minutes_ms: 0, hours_ms: base + 2 * hour };
        assert_eq!(f.store.prune(all, 1000).unwrap(), 2);
        assert_eq!(steps(0, 3 * hour), [(2 * hour, 120.0, 179.0, 179.0, 60)]);
    }

    #[test]
    fn an_hour_step_in_a_series_first_hour_counts_only_the_readings_in_the_range() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000; // a whole hour
        let (minute, hour) = (60_000, 3_600_000);
        // One reading a minute from :10 to :49 of the series' first hour; the value counts from 0.
        let batch: Vec<Reading> =
            (0..40).map(|i| reading(m, "t", base + (10 + i) * minute, i as f64)).collect();
        f.store.write_readings(&batch).unwrap();
        let steps = |from: i64, to: i64, step: i64| -> Vec<(i64, f64, f64, u64)> {
            f.store
                .series(m, "t", base + from, base + to, Some(step), 0, 1000)
                .unwrap()
                .iter()
                .map(|p| (p.ts_ms - base, p.min, p.max, p.count))
                .collect()
        };
        let sum = |points: Vec<(i64, f64, f64, u64)>| points.iter().map(|p| p.3).sum::<u64>();
        // `to` inside the hour: :10 to :19 only, as ten minute steps count them.
        assert_eq!(steps(0, 20 * minute, hour), [(0, 0.0, 9.0, 10)]);
        assert_eq!(sum(steps(0, 20 * minute, minute)), 10);
        // `to` inside a minute too: :10 to :19 again.
        assert_eq!(steps(0, 20 * minute - 1, hour), [(0, 0.0, 9.0, 10)]);
        // `from` inside the hour, before the first reading or after it.
        assert_eq!(steps(5 * minute, 2 * hour, hour), [(0, 0.0, 39.0, 40)]);
        assert_eq!(steps(15 * minute, 2 * hour, hour), [(0, 5.0, 39.0, 35)]);
        // Both ends inside the hour.
        assert_eq!(steps(5 * minute, 20 * minute, hour), [(0, 0.0, 9.0, 10)]);
        assert_eq!(steps(15 * minute + 1, 20 * minute, hour), [(0, 6.0, 9.0, 4)]);
    }

    #[test]
    fn a_minute_step_in_a_series_first_minute_counts_only_the_readings_in_the_range() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000; // a whole minute
        // A reading every ten seconds from :30 of the series' first minute to the end of the next.
        let batch: Vec<Reading> = (3..12).map(|i| reading(m, "t", base + i * 10_000, i as f64)).collect();
        f.store.write_readings(&batch).unwrap();
        let steps = |from: i64, to: i64| -> Vec<(i64, f64, f64, u64)> {
            f.store
                .series(m, "t", base + from, base + to, Some(60_000), 0, 1000)
                .unwrap()
                .iter()
                .map(|p| (p.ts_ms - base, p.min, p.max, p.count))
                .collect()
        };
        // `to` inside the first minute: :30 and :40 only.
        assert_eq!(steps(0, 45_000), [(0, 3.0, 4.0, 2)]);
        // `from` inside it, before the first reading or after it.
        assert_eq!(steps(10_000, 120_000), [(0, 3.0, 5.0, 3), (60_000, 6.0, 11.0, 6)]);
        assert_eq!(steps(45_000, 120_000), [(0, 5.0, 5.0, 1), (60_000, 6.0, 11.0, 6)]);
        // Both ends inside it.
        assert_eq!(steps(10_000, 45_000), [(0, 3.0, 4.0, 2)]);
        // An hour step reads the same minute from the raw readings.
        let hours = f.store.series(m, "t", base, base + 45_000, Some(3_600_000), 0, 1000).unwrap();
        assert_eq!(hours.iter().map(|p| (p.min, p.max, p.count)).collect::<Vec<_>>(), [(3.0, 4.0, 2)]);
    }

    #[test]
    fn where_the_finer_rows_of_a_minute_or_hour_were_pruned_its_roll_up_still_answers() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000; // a whole hour
        let (minute, hour) = (60_000, 3_600_000);
        // A reading every ten seconds from :10 to :49 of an hour; the value counts from 0.
        let batch: Vec<Reading> =
            (0..240).map(|i| reading(m, "t", base + 10 * minute + i * 10_000, i as f64)).collect();
        f.store.write_readings(&batch).unwrap();
        let steps = |from: i64, to: i64, step: i64| -> Vec<(i64, f64, f64, u64)> {
            f.store
                .series(m, "t", base + from, base + to, Some(step), 0, 1000)
                .unwrap()
                .iter()
                .map(|p| (p.ts_ms - base, p.min, p.max, p.count))
                .collect()
        };
        // Raw readings pruned up to :20:25, inside a minute: that minute comes whole from its row.
        let raw_gone = PruneBefore { raw_ms: base + 20 * minute + 25_000, minutes_ms: 0, hours_ms: 0 };
        assert_eq!(f.store.prune(raw_gone, 1000).unwrap(), 63);
        assert_eq!(steps(20 * minute, 20 * minute + 45_000, minute), [(20 * minute, 60.0, 65.0, 6)]);
        // The minutes before :30 pruned too: the hour comes whole from its row.
        let minutes_gone = PruneBefore { raw_ms: 0, minutes_ms: base + 30 * minute, hours_ms: 0 };
        assert_eq!(f.store.prune(minutes_gone, 1000).unwrap(), 20);
        assert_eq!(steps(0, 20 * minute, hour), [(0, 0.0, 239.0, 240)]);
        assert_eq!(steps(15 * minute, 2 * hour, hour), [(0, 0.0, 239.0, 240)]);
        // With no raw readings left at all, minutes answer from their rows alone.
        let all_raw_gone = PruneBefore { raw_ms: base + hour, minutes_ms: 0, hours_ms: 0 };
        assert_eq!(f.store.prune(all_raw_gone, 1000).unwrap(), 177);
        assert_eq!(
            steps(35 * minute + 1, 36 * minute + 1, minute),
            [(35 * minute, 150.0, 155.0, 6), (36 * minute, 156.0, 161.0, 6)]
        );
    }

    #[test]
    fn readings_roll_up_per_minute_and_duplicates_are_ignored() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let base = 1_800_000_000_000; // a whole minute
        let batch: Vec<Reading> = (0..120).map(|i| reading(m, "temp", base + i * 1000, i as f64)).collect();
        let stats = f.store.write_readings(&batch).unwrap();
        assert_eq!(stats.inserted, 120);
        let again = f.store.write_readings(&batch[..10]).unwrap();
        assert_eq!((again.inserted, again.duplicates), (0, 10));
        let unknown = f.store.write_readings(&[reading(MachineId(999), "temp", base, 1.0)]).unwrap();
        assert_eq!(unknown.unknown_machine, 1);

        let raw = f.store.series(m, "temp", base, base + 120_000, None, 0, 1000).unwrap();
        assert_eq!(raw.len(), 120);
        let minutes = f.store.series(m, "temp", base, base + 120_000, Some(60_000), 0, 1000).unwrap();
        assert_eq!(minutes.len(), 2);
        assert_eq!(
            (minutes[0].min, minutes[0].max, minutes[0].avg, minutes[0].last, minutes[0].count),
            (0.0, 59.0, 29.5, 59.0, 60)
        );
        assert_eq!((minutes[1].min, minutes[1].last, minutes[1].count), (60.0, 119.0, 60));
        let ten_seconds = f.store.series(m, "temp", base, base + 30_000, Some(10_000), 0, 1000).unwrap();
        assert_eq!(ten_seconds.len(), 3);
        assert_eq!((ten_seconds[1].min, ten_seconds[1].avg, ten_seconds[1].last), (10.0, 14.5, 19.0));
        assert_eq!(f.store.metrics(m).unwrap(), ["temp"]);
        // Steps of several minutes fold roll-ups; the limit counts steps, not rows.
        // (A day later, so the prune below leaves them alone.)
        let hour = 3_600_000;
        let day = base + 24 * hour;
        let hourly: Vec<Reading> =
            (0..180).map(|i| reading(m, "load", day + i * 60_000 + 30_000, (i % 60) as f64)).collect();
        f.store.write_readings(&hourly).unwrap();
        let hours = f.store.series(m, "load", day, day + 3 * hour, Some(hour), 0, 1000).unwrap();
        let summary: Vec<_> =
            hours.iter().map(|p| (p.ts_ms - day, p.min, p.max, p.avg, p.last, p.count)).collect();
        assert_eq!(
            summary,
            [
                (0, 0.0, 59.0, 29.5, 59.0, 60),
                (hour, 0.0, 59.0, 29.5, 59.0, 60),
                (2 * hour, 0.0, 59.0, 29.5, 59.0, 60)
            ]
        );
        let first_two = f.store.series(m, "load", day, day + 3 * hour, Some(hour), 0, 2).unwrap();
        assert_eq!(first_two.len(), 2);
        assert_eq!((first_two[1].ts_ms - day, first_two[1].avg, first_two[1].count), (hour, 29.5, 60));
        let raw_limited = f.store.series(m, "temp", base, base + 30_000, Some(10_000), 0, 2).unwrap();
        assert_eq!(raw_limited.iter().map(|p| p.last).collect::<Vec<_>>(), [9.0, 19.0]);

        assert_eq!(
            f.store
                .prune(PruneBefore { raw_ms: base + 60_000, minutes_ms: base, hours_ms: base }, 1000)
                .unwrap(),
            60
        );
        assert_eq!(f.store.series(m, "temp", base, base + 120_000, None, 0, 1000).unwrap().len(), 60);
        // Roll-ups outlive raw readings.
        assert_eq!(f.store.series(m, "temp", base, base + 120_000, Some(60_000), 0, 1000).unwrap().len(), 2);
    }

    #[test]
    fn a_stop_begins_at_its_first_report() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[1];
        let change = |ms: i64, state: MachineState, reason: &str| StateChange {
            machine: m,
            at: from_ms(ms).unwrap(),
            state,
            reason: Some(reason.to_string()),
        };
        for (ms, state, reason) in [
            (1_000, MachineState::Running, ""),
            (2_000, MachineState::Down, "jam"),
            (3_000, MachineState::Down, "still jammed"),
            (4_000, MachineState::Offline, "gateway gone"),
            (5_000, MachineState::Running, ""),
            (6_000, MachineState::Down, "e-stop"),
        ] {
            f.store.record_state(&change(ms, state, reason)).unwrap();
        }
        let since = |ms: i64| f.store.stopped_since(m, from_ms(ms).unwrap()).unwrap().map(to_ms);
        assert_eq!(
            [since(4_500), since(3_000), since(5_500), since(6_000), since(500)],
            [Some(2_000), Some(2_000), None, Some(6_000), None]
        );
    }

    #[test]
    fn a_machine_s_first_state_and_first_units_are_its_earliest_ever() {
        let f = fixture(Store::open_in_memory().unwrap());
        let (m, other) = (f.machines[0], f.machines[1]);
        assert_eq!(f.store.first_state_at(m).unwrap(), None);
        assert_eq!(f.store.first_production(m).unwrap(), None);
        let base = 1_800_000_000_000;
        let day = 86_400_000;
        for (machine, ms) in [(m, base + 3 * day), (m, base), (other, base - day), (m, base + day)] {
            let change =
                StateChange { machine, at: from_ms(ms).unwrap(), state: MachineState::Running, reason: None };
            f.store.record_state(&change).unwrap();
        }
        assert_eq!(f.store.first_state_at(m).unwrap(), Some(from_ms(base).unwrap()));
        let units = |machine: MachineId, ms: i64, good: u32| ProductionRecord {
            machine,
            at: from_ms(ms).unwrap(),
            operation: None,
            good,
            scrap: 0,
            ideal_unit_seconds: 30.0,
            scrap_reason: None,
        };
        // Recorded out of time order; two at the earliest time: the first stored is first.
        for record in
            [units(m, base + day, 1), units(m, base, 2), units(other, base - day, 3), units(m, base, 4)]
        {
            f.store.record_production(&record).unwrap();
        }
        assert_eq!(f.store.first_production(m).unwrap(), Some(units(m, base, 2)));
    }

    #[test]
    fn state_spans_cover_the_period_from_the_state_in_force() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[1];
        let change = |ms: i64, state: MachineState| StateChange {
            machine: m,
            at: from_ms(ms).unwrap(),
            state,
            reason: (state == MachineState::Down).then(|| "jam".to_string()),
        };
        f.store.record_state(&change(1_000, MachineState::Idle)).unwrap();
        f.store.record_state(&change(5_000, MachineState::Running)).unwrap();
        f.store.record_state(&change(9_000, MachineState::Down)).unwrap();
        let spans = f.store.state_spans(m, 3_000, 10_000).unwrap();
        let compact: Vec<_> = spans.iter().map(|s| (s.start_ms, s.end_ms, s.state)).collect();
        assert_eq!(
            compact,
            [
                (3_000, 5_000, MachineState::Idle),
                (5_000, 9_000, MachineState::Running),
                (9_000, 10_000, MachineState::Down)
            ]
        );
        let current = f.store.current_states(NOW + time::Duration::days(1)).unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].state, MachineState::Down);
        assert!(
            f.store
                .record_state(&StateChange { machine: MachineId(77), ..change(1, MachineState::Idle) })
                .is_err()
        );
    }

    #[test]
    fn a_repeated_state_keeps_its_span_and_reason() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[1];
        let change = |ms: i64, state: MachineState, reason: Option<&str>| StateChange {
            machine: m,
            at: from_ms(ms).unwrap(),
            state,
            reason: reason.map(str::to_string),
        };
        f.store.record_state(&change(1_000, MachineState::Down, Some("mould jam"))).unwrap();
        // Repeated without a reason, or with the same one: nothing changes.
        let batch =
            [change(2_000, MachineState::Down, None), change(3_000, MachineState::Down, Some("mould jam"))];
        f.store.write_batch(&[], &batch, &[], &[]).unwrap();
        // Another reason is another stop; a state without one after it keeps that one's.
        f.store.record_state(&change(4_000, MachineState::Down, Some("heater fault"))).unwrap();
        f.store.record_state(&change(5_000, MachineState::Down, None)).unwrap();
        f.store.record_state(&change(6_000, MachineState::Running, None)).unwrap();
        let spans: Vec<_> = f
            .store
            .state_spans(m, 0, 7_000)
            .unwrap()
            .into_iter()
            .map(|s| (s.start_ms, s.end_ms, s.state, s.reason))
            .collect();
        assert_eq!(
            spans,
            [
                (1_000, 4_000, MachineState::Down, Some("mould jam".to_string())),
                (4_000, 6_000, MachineState::Down, Some("heater fault".to_string())),
                (6_000, 7_000, MachineState::Running, None),
            ]
        );
    }

    #[test]
    fn production_records_round_trip() {
        let f = fixture(Store::open_in_memory().unwrap());
        let record = ProductionRecord {
            machine: f.machines[0],
            at: from_ms(10_000).unwrap(),
            operation: None,
            good: 9,
            scrap: 1,
            ideal_unit_seconds: 30.0,
            scrap_reason: None,
        };
        f.store.record_production(&record).unwrap();
        assert_eq!(f.store.production(f.machines[0], 0, 20_000).unwrap(), vec![record]);
        assert!(f.store.production(f.machines[0], 10_001, 20_000).unwrap().is_empty());
    }

    #[test]
    fn a_machine_is_set_up_for_the_family_it_last_produced_for() {
        let f = fixture(Store::open_in_memory().unwrap());
        let steel = f
            .store
            .create_routing(&NewRouting {
                code: "r-steel".into(),
                name: "Steel".into(),
                steps: vec![RoutingStep {
                    name: "mill".into(),
                    eligible_machines: vec![f.machines[0]],
                    setup_seconds: 900,
                    unit_seconds: 40.0,
                    setup_family: "steel".into(),
                }],
            })
            .unwrap();
        let product = f.store.variant(f.variant).unwrap().product_id;
        let variant = f
            .store
            .create_variant(&NewVariant {
                product_id: product,
                code: "p-steel".into(),
                name: "P steel".into(),
                routing_id: Some(steel.id),
                bom: Vec::new(),
            })
            .unwrap();
        let alu = f.store.create_order(&new_order("SO-A", f.variant), from_ms(0).unwrap()).unwrap();
        let steel = f.store.create_order(&new_order("SO-S", variant.id), from_ms(0).unwrap()).unwrap();
        let (alu, steel) =
            (f.store.operations(alu.id).unwrap()[0].id, f.store.operations(steel.id).unwrap()[0].id);
        let count = |at: i64, operation: Option<OperationId>| ProductionRecord {
            machine: f.machines[0],
            at: from_ms(at).unwrap(),
            operation,
            good: 1,
            scrap: 0,
            ideal_unit_seconds: 30.0,
            scrap_reason: None,
        };
        let families = |store: &Store| store.last_setup_families(&f.machines).unwrap();
        assert!(families(&f.store).is_empty(), "nothing produced yet");
        // Stored out of order: the latest count decides, and counts without an operation do not.
        for record in [count(30_000, Some(steel)), count(10_000, Some(alu)), count(40_000, None)] {
            f.store.record_production(&record).unwrap();
        }
        assert_eq!(
            families(&f.store),
            std::collections::HashMap::from([(f.machines[0], "steel".to_string())])
        );
        f.store.record_production(&count(50_000, Some(alu))).unwrap();
        assert_eq!(families(&f.store), std::collections::HashMap::from([(f.machines[0], "alu".to_string())]));
    }
}

mod alarm_tests {
    use super::*;
    use model::alarm::{Alarm, AlarmCause, AlarmStatus, Condition, NewAlarmRule, Severity};

    /// `gas_ppm` above 50 at once, on every machine.
    fn gas_rule(name: &str, severity: Severity) -> NewAlarmRule {
        NewAlarmRule {
            name: name.into(),
            machine_id: None,
            site_id: None,
            metric: Some("gas_ppm".into()),
            condition: Condition::Above { threshold: 50.0 },
            for_seconds: 0,
            deadband: 0.0,
            severity,
            enabled: true,
        }
    }

    #[test]
    fn an_alarm_comes_back_only_over_its_rule_s_latest_one() {
        // As a store from before alarms came back may hold: an older alarm that cleared unseen
        // under a newer one that was acknowledged. A return is a new alarm.
        let f = fixture(Store::open_in_memory().unwrap());
        let new = gas_rule("gas", Severity::Critical);
        let rule = f.store.create_alarm_rule(&new).unwrap().id;
        let m = f.machines[0];
        let old = f.store.raise_alarm(rule, m, NOW, None, "gas").unwrap().id;
        f.store.acknowledge_alarm(old, "ada", NOW, None).unwrap();
        f.store.clear_alarm(rule, m, NOW).unwrap();
        let newer = f.store.raise_alarm(rule, m, NOW, None, "gas").unwrap().id;
        assert_ne!(newer, old);
        f.store.clear_alarm(rule, m, NOW).unwrap();
        f.store
            .write(|tx| {
                tx.execute(
                    "UPDATE alarms SET acknowledged_ms = NULL, acknowledged_by = NULL WHERE id = ?1",
                    [old],
                )?;
                tx.execute(
                    "UPDATE alarms SET acknowledged_ms = 0, acknowledged_by = 'ada' WHERE id = ?1",
                    [newer],
                )?;
                Ok(())
            })
            .unwrap();
        let back = f.store.raise_alarm(rule, m, NOW, None, "gas").unwrap();
        assert!(back.id != old && back.id != newer, "{back:?}");
        assert_eq!(f.store.alarm(old).unwrap().status, AlarmStatus::Cleared);
    }

    #[test]
    fn the_most_urgent_open_alarms_come_first() {
        let f = fixture(Store::open_in_memory().unwrap());
        let rule = |name: &str, severity| f.store.create_alarm_rule(&gas_rule(name, severity)).unwrap().id;
        let (gas, hot, note) =
            (rule("gas", Severity::Critical), rule("hot", Severity::Warning), rule("note", Severity::Info));
        let m = f.machines[0];
        let unseen = f.store.raise_alarm(gas, m, NOW, None, "gas").unwrap();
        f.store.clear_alarm(gas, m, NOW).unwrap();
        let info = f.store.raise_alarm(note, m, NOW, None, "note").unwrap();
        let warning = f.store.raise_alarm(hot, m, NOW, None, "hot").unwrap();
        let seen = f.store.raise_alarm(gas, f.machines[1], NOW, None, "gas").unwrap();
        f.store.clear_alarm(gas, f.machines[1], NOW).unwrap();
        f.store.acknowledge_alarm(seen.id, "mei", NOW, None).unwrap();
        let ids = |(alarms, open): (Vec<Alarm>, u64)| (alarms.iter().map(|a| a.id).collect::<Vec<_>>(), open);
        assert_eq!(ids(f.store.most_urgent_alarms(10).unwrap()), (vec![warning.id, info.id, unseen.id], 3));
        assert_eq!(ids(f.store.most_urgent_alarms(1).unwrap()), (vec![warning.id], 3));
    }

    #[test]
    fn alarms_move_through_their_life_cycle() {
        let f = fixture(Store::open_in_memory().unwrap());
        let rule = f
            .store
            .create_alarm_rule(&NewAlarmRule {
                name: "Over-temperature".into(),
                machine_id: None,
                site_id: None,
                metric: Some("temperature_c".into()),
                condition: Condition::Above { threshold: 80.0 },
                for_seconds: 30,
                deadband: 1.5,
                severity: Severity::Warning,
                enabled: true,
            })
            .unwrap();
        assert_eq!(f.store.alarm_rules().unwrap(), vec![rule.clone()]);
        let m = f.machines[0];
        let alarm = f.store.raise_alarm(rule.id, m, NOW, Some(85.0), "hot").unwrap();
        assert_eq!((alarm.status, alarm.severity), (AlarmStatus::Active, Severity::Warning));
        // What raised it is kept with it, and outlives later edits of the rule.
        let cause = AlarmCause {
            rule_name: "Over-temperature".into(),
            metric: Some("temperature_c".into()),
            condition: Condition::Above { threshold: 80.0 },
        };
        assert_eq!(alarm.cause.as_ref(), Some(&cause));
        let mut edited = rule.rule.clone();
        edited.condition = Condition::Above { threshold: 90.0 };
        f.store.update_alarm_rule(rule.id, &edited, NOW).unwrap();
        assert_eq!(f.store.alarm(alarm.id).unwrap().cause, Some(cause));
        assert_eq!(f.store.open_alarm_keys().unwrap(), vec![(rule.id, m)]);
        let acked = f.store.acknowledge_alarm(alarm.id, "mei", NOW, None).unwrap();
        assert_eq!(
            (acked.status, acked.acknowledged_by.as_deref()),
            (AlarmStatus::Acknowledged, Some("mei"))
        );
        assert!(matches!(
            f.store.acknowledge_alarm(alarm.id, "mei", NOW, None),
            Err(StoreError::Conflict { .. })
        ));
        let cleared = f.store.clear_alarm(rule.id, m, NOW).unwrap().unwrap();
        assert_eq!(cleared.status, AlarmStatus::Cleared);
        assert!(f.store.clear_alarm(rule.id, m, NOW).unwrap().is_none());
        let open = AlarmFilter { open: Some(true), ..AlarmFilter::default() };
        assert!(f.store.alarms(&open, all()).unwrap().items.is_empty());
        // An alarm that clears before anyone acknowledged it stays open until someone does, and
        // stays cleared when they do.
        let brief = f.store.raise_alarm(rule.id, m, NOW, Some(90.0), "hot again").unwrap();
        let gone = f.store.clear_alarm(rule.id, m, NOW + time::Duration::minutes(1)).unwrap().unwrap();
        assert!(gone.needs_acknowledgement());
        assert!(f.store.open_alarm_keys().unwrap().is_empty(), "the engine may raise it again");
        let listed = f.store.alarms(&open, all()).unwrap().items;
        assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), [brief.id]);
        // And `open: false` lists the others only.
        let closed = AlarmFilter { open: Some(false), ..AlarmFilter::default() };
        assert_eq!(
            f.store.alarms(&closed, all()).unwrap().items.iter().map(|a| a.id).collect::<Vec<_>>(),
            [alarm.id]
        );
        let seen =
            f.store.acknowledge_alarm(brief.id, "mei", NOW + time::Duration::minutes(5), None).unwrap();
        assert_eq!((seen.status, seen.acknowledged_by.as_deref()), (AlarmStatus::Cleared, Some("mei")));
        assert!(!seen.needs_acknowledgement());
        assert!(matches!(
            f.store.acknowledge_alarm(brief.id, "li", NOW, None),
            Err(StoreError::Conflict { .. })
        ));
        assert!(f.store.alarms(&open, all()).unwrap().items.is_empty());
        f.store.delete_alarm_rule(rule.id, NOW).unwrap();
        let history = f.store.alarms(&AlarmFilter::default(), all()).unwrap().items;
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|alarm| alarm.rule_id.is_none()));
    }

    /// ISA-18.2's return to normal, unacknowledged: a condition that comes back before anyone
    /// acknowledged the alarm makes the same alarm active again and counts it.
    #[test]
    fn an_alarm_back_before_anyone_saw_it_is_the_same_alarm_again() {
        let f = fixture(Store::open_in_memory().unwrap());
        let new = NewAlarmRule {
            name: "Vibration high".into(),
            machine_id: None,
            site_id: None,
            metric: Some("vibration_mm_s".into()),
            condition: Condition::Above { threshold: 4.0 },
            for_seconds: 300,
            deadband: 0.3,
            severity: Severity::Warning,
            enabled: true,
        };
        let rule = f.store.create_alarm_rule(&new).unwrap().id;
        let (m, other) = (f.machines[0], f.machines[1]);
        let minutes = |n| NOW + time::Duration::minutes(n);
        let first = f.store.raise_alarm_fired(rule, m, NOW, minutes(5), Some(4.2), "first").unwrap();
        assert_eq!((first.occurrences, first.first_raised_at), (1, None));
        f.store.clear_alarm(rule, m, minutes(20)).unwrap();
        // Another machine's alarm of the same rule is another alarm.
        let elsewhere = f.store.raise_alarm(rule, other, minutes(30), Some(4.4), "elsewhere").unwrap();
        let again = f.store.raise_alarm_fired(rule, m, minutes(40), minutes(45), Some(4.6), "again").unwrap();
        assert_eq!(again.id, first.id);
        assert_ne!(elsewhere.id, first.id);
        assert_eq!(
            (again.status, again.occurrences, again.first_raised_at, again.raised_at, again.fired_at),
            (AlarmStatus::Active, 2, Some(NOW), minutes(40), Some(minutes(45)))
        );
        assert_eq!((again.value, again.message.as_str(), again.cleared_at), (Some(4.6), "again", None));
        assert_eq!(f.store.open_alarm_keys().unwrap(), vec![(rule, m), (rule, other)]);
        f.store.clear_alarm(rule, m, minutes(50)).unwrap();
        let third = f.store.raise_alarm(rule, m, minutes(60), Some(4.8), "third").unwrap();
        assert_eq!((third.id, third.occurrences, third.first_raised_at), (first.id, 3, Some(NOW)));
        // Once someone has seen it, a return is a new alarm: acknowledged while active, then
        // cleared; or cleared, then acknowledged.
        f.store.acknowledge_alarm(first.id, "mei", minutes(61), None).unwrap();
        f.store.clear_alarm(rule, m, minutes(70)).unwrap();
        let fourth = f.store.raise_alarm(rule, m, minutes(80), Some(4.9), "fourth").unwrap();
        assert_ne!(fourth.id, first.id);
        assert_eq!((fourth.occurrences, fourth.first_raised_at), (1, None));
        f.store.clear_alarm(rule, m, minutes(90)).unwrap();
        f.store.acknowledge_alarm(fourth.id, "mei", minutes(91), None).unwrap();
        let fifth = f.store.raise_alarm(rule, m, minutes(100), Some(5.0), "fifth").unwrap();
        assert!(fifth.id != fourth.id && fifth.id != first.id);
        let history =
            f.store.alarms(&AlarmFilter { machine: Some(m), ..AlarmFilter::default() }, all()).unwrap();
        assert_eq!(history.items.len(), 3);
        // A clear never comes before the raise, whatever time its reading carries.
        let cleared = f.store.clear_alarm(rule, m, minutes(50)).unwrap().unwrap();
        assert_eq!(cleared.cleared_at, Some(minutes(100)));
    }

    /// An alarm that came back moves up a list by latest occurrence; a period lists the alarms
    /// up at some time within it.
    #[test]
    fn alarms_list_by_latest_occurrence_and_by_period() {
        let f = fixture(Store::open_in_memory().unwrap());
        let rule = f.store.create_alarm_rule(&gas_rule("gas", Severity::Warning)).unwrap().id;
        let (m, other) = (f.machines[0], f.machines[1]);
        let minutes = |n| NOW + time::Duration::minutes(n);
        let back = f.store.raise_alarm(rule, m, NOW, None, "first").unwrap();
        f.store.clear_alarm(rule, m, minutes(20)).unwrap();
        let later = f.store.raise_alarm(rule, other, minutes(30), None, "later").unwrap();
        f.store.clear_alarm(rule, other, minutes(35)).unwrap();
        assert_eq!(f.store.raise_alarm(rule, m, minutes(40), None, "back").unwrap().id, back.id);
        let ids = |filter: &AlarmFilter| {
            f.store.alarms(filter, all()).unwrap().items.iter().map(|a| a.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&AlarmFilter::default()), [later.id, back.id], "newest first raise first");
        let latest = AlarmFilter { sort: AlarmSort::Latest, ..AlarmFilter::default() };
        assert_eq!(ids(&latest), [back.id, later.id], "latest occurrence first");
        // Page by page: the cursor is the id, with the time it was raised.
        let first = f.store.alarms(&latest, PageRequest { after: None, limit: 1 }).unwrap();
        assert_eq!((first.items[0].id, first.next_cursor), (back.id, Some(back.id)));
        let on = AlarmFilter { cursor_raised_ms: Some(to_ms(minutes(40))), ..latest.clone() };
        let second = f.store.alarms(&on, PageRequest { after: Some(back.id), limit: 1 }).unwrap();
        assert_eq!((second.items[0].id, second.next_cursor), (later.id, None));
        let without = f.store.alarms(&latest, PageRequest { after: Some(back.id), limit: 1 });
        assert!(matches!(without, Err(StoreError::Invalid(_))), "{without:?}");
        // Up within a period: not cleared before it began, first raised before it ended.
        let period = |from: i64, to: i64| AlarmFilter {
            from: Some(minutes(from)),
            to: Some(minutes(to)),
            ..latest.clone()
        };
        assert_eq!(ids(&period(25, 60)), [back.id, later.id]);
        assert_eq!(ids(&period(36, 60)), [back.id], "the later one cleared at 35");
        assert_eq!(ids(&period(-10, 30)), [back.id], "the later one came up at 30");
        assert_eq!(ids(&period(-10, 0)), Vec::<i64>::new());
    }
}

mod operation_event_tests {
    use super::*;

    #[test]
    fn machines_move_operations_and_orders_along() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let ops = f.store.operations(order.id).unwrap();
        let event = |op: &Operation, kind| OperationEvent {
            operation: op.id,
            machine: f.machines[1],
            at: NOW,
            kind,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        f.store.write_batch(&[], &[], &[], &[event(&ops[0], OperationEventKind::Started)]).unwrap();
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Running);
        let finished = OperationEventKind::Finished { good: 4, scrap: 1, ideal_unit_ms: None };
        f.store.write_batch(&[], &[], &[], &[event(&ops[0], finished), event(&ops[0], finished)]).unwrap();
        let after = f.store.operations(order.id).unwrap();
        assert_eq!(
            (after[0].status, after[0].good, after[0].scrap),
            (OrderStatus::Done, 4, 1),
            "a repeated report is ignored"
        );
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Running);
        let production = f.store.production(f.machines[1], 0, i64::MAX).unwrap();
        assert_eq!(production.len(), 1);
        assert_eq!(production[0].ideal_unit_seconds, 30.0);
        // A machine that reports its own ideal time per unit (a fast simulator) is taken at its word.
        let reported = OperationEventKind::Finished { good: 5, scrap: 0, ideal_unit_ms: Some(500) };
        f.store.write_batch(&[], &[], &[], &[event(&ops[1], reported)]).unwrap();
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Done);
        let production = f.store.production(f.machines[1], 0, i64::MAX).unwrap();
        assert_eq!(production[1].ideal_unit_seconds, 0.5);
        // Unknown operations and machines are ignored, not errors.
        let ghost = OperationEvent {
            operation: OperationId(999),
            machine: MachineId(999),
            at: NOW,
            kind: OperationEventKind::Started,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        f.store.write_batch(&[], &[], &[], &[ghost]).unwrap();
    }

    /// A device may report only what a person at its machine could: work the machine may do, of
    /// a released order. Other reports are listed and change nothing.
    #[test]
    fn machines_report_only_on_their_own_work_of_released_orders() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        let ops = f.store.operations(order.id).unwrap();
        let report = |op: usize, machine: usize, kind| OperationEvent {
            operation: ops[op].id,
            machine: f.machines[machine],
            at: NOW,
            kind,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        let finished = OperationEventKind::Finished { good: 20, scrap: 0, ideal_unit_ms: None };
        let produced = OperationEventKind::Produced { good: 3, scrap: 0, ideal_unit_ms: None };
        // The order is still planned.
        let stats = f
            .store
            .write_batch(&[], &[], &[], &[report(0, 0, OperationEventKind::Started), report(0, 0, finished)])
            .unwrap();
        let reasons: Vec<_> = stats.refused.iter().map(|r| (r.operation, r.machine, r.reason)).collect();
        let unreleased = (ops[0].id, f.machines[0], Refusal::Unreleased);
        assert_eq!(reasons, [unreleased, unreleased]);
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        // cnc-1 does not deburr (step 2 is cnc-2's only).
        let stats =
            f.store.write_batch(&[], &[], &[], &[report(1, 0, produced), report(1, 0, finished)]).unwrap();
        assert!(stats.refused.iter().all(|r| r.reason == Refusal::NotEligible) && stats.refused.len() == 2);
        let after = f.store.operations(order.id).unwrap();
        let untouched = |op: &Operation| {
            matches!(op.status, OrderStatus::Planned | OrderStatus::Released)
                && op.good == 0
                && op.machine_id.is_none()
        };
        assert!(after.iter().all(untouched), "{after:?}");
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Released);
        assert!(f.store.production(f.machines[0], 0, i64::MAX).unwrap().is_empty());
        // Its own work of a released order it reports as it saw it.
        let stats = f.store.write_batch(&[], &[], &[], &[report(0, 0, OperationEventKind::Started)]).unwrap();
        assert!(stats.refused.is_empty());
        assert_eq!(f.store.operations(order.id).unwrap()[0].status, OrderStatus::Running);
    }

    /// Units another machine reports for a running lot are that machine's production and count
    /// toward the lot, which stays on the machine it runs on (so that machine is not free).
    #[test]
    fn a_lot_stays_on_its_machine_when_another_reports_units_of_it() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let op = f.store.operations(order.id).unwrap()[0].id;
        let report = |machine: usize, minutes, good| OperationEvent {
            operation: op,
            machine: f.machines[machine],
            at: NOW + time::Duration::minutes(minutes),
            kind: OperationEventKind::Produced { good, scrap: 0, ideal_unit_ms: None },
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        f.store.write_batch(&[], &[], &[], &[report(1, 10, 2), report(0, 20, 1)]).unwrap();
        let lot = &f.store.operations(order.id).unwrap()[0];
        assert_eq!((lot.status, lot.machine_id, lot.good), (OrderStatus::Running, Some(f.machines[1]), 3));
        let elsewhere = f.store.production(f.machines[0], 0, i64::MAX).unwrap();
        assert_eq!(elsewhere.iter().map(|p| (p.good, p.operation)).collect::<Vec<_>>(), [(1, Some(op))]);
        let running: Vec<_> = f.store.running_operations().unwrap().iter().map(|o| o.machine_id).collect();
        assert_eq!(running, [Some(f.machines[1])]);
    }

    #[test]
    fn a_step_that_scrapped_every_unit_leaves_the_later_steps_nothing_and_ends_the_order() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-Z", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let steps = f.store.operations(order.id).unwrap();
        let report = |kind| OperationEvent {
            operation: steps[0].id,
            machine: f.machines[0],
            at: NOW + time::Duration::minutes(5),
            kind,
            checked: true,
            counted_before: None,
            scrap_reason: None,
        };
        f.store.write_batch(&[], &[], &[], &[report(OperationEventKind::Started)]).unwrap();
        let finished = OperationEventKind::Finished { good: 0, scrap: 5, ideal_unit_ms: None };
        f.store.write_batch(&[], &[], &[], &[report(finished)]).unwrap();
        let steps = f.store.operations(order.id).unwrap();
        assert!(steps.len() > 1);
        assert!(steps.iter().all(|op| op.status == OrderStatus::Done), "{steps:?}");
        assert_eq!((steps[1].quantity, steps[1].good), (0, 0));
        let order = f.store.order(order.id).unwrap();
        assert_eq!((order.status, order.delivered), (OrderStatus::Done, Some(0)));
    }

    #[test]
    fn a_person_s_report_is_checked_inside_its_write() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = |number: &str| {
            let order = f.store.create_order(&new_order(number, f.variant), NOW).unwrap();
            f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
            f.store.operations(order.id).unwrap()
        };
        let (a, b) = (order("SO-A"), order("SO-B"));
        let report = |op: &Operation, machine: usize, minutes: i64, kind| OperationEvent {
            operation: op.id,
            machine: f.machines[machine],
            at: NOW + time::Duration::minutes(minutes),
            kind,
            checked: true,
            counted_before: None,
            scrap_reason: None,
        };
        let write = |event: OperationEvent| f.store.write_batch(&[], &[], &[], &[event]);
        let refusal = |result: Result<WriteStats>| match result {
            Err(StoreError::Conflict { field, message }) => (field.unwrap_or_default(), message),
            Err(StoreError::Invalid(errors)) => (errors[0].field.clone(), errors[0].message.clone()),
            other => panic!("not refused: {other:?}"),
        };
        let produced = |good, scrap| OperationEventKind::Produced { good, scrap, ideal_unit_ms: None };
        let finished = |good, scrap| OperationEventKind::Finished { good, scrap, ideal_unit_ms: None };

        // Step 2 waits for step 1; a planned order's steps wait for the release.
        let (field, message) = refusal(write(report(&a[1], 1, 1, OperationEventKind::Started)));
        assert_eq!(field, "status");
        assert!(message.contains("step 1 \"mill\" of this order is released"), "{message}");
        let planned = f.store.create_order(&new_order("SO-P", f.variant), NOW).unwrap();
        let planned = f.store.operations(planned.id).unwrap();
        let (_, message) = refusal(write(report(&planned[0], 0, 1, OperationEventKind::Started)));
        assert_eq!(message, "release the order before starting its operations");
        // Only on one of its machines, checked in the write (a machine retired or taken out of the
        // routing since the caller looked): the deburring step runs on cnc-2 alone.
        let (field, message) = refusal(write(report(&b[1], 0, 1, OperationEventKind::Started)));
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("machine_id", "not an eligible machine of this operation")
        );

        // One lot at a time on a machine, and one machine at a time for a lot.
        write(report(&a[0], 0, 2, OperationEventKind::Started)).unwrap();
        let (field, message) = refusal(write(report(&b[0], 0, 3, OperationEventKind::Started)));
        assert_eq!(field, "machine_id");
        assert!(message.contains("running step 1 \"mill\" of order SO-A"), "{message}");
        let (_, message) = refusal(write(report(&a[0], 1, 3, OperationEventKind::Started)));
        assert!(message.contains("running on cnc-1"), "{message}");
        let (field, message) = refusal(write(report(&a[0], 1, 3, produced(1, 0))));
        assert_eq!(field, "operation_id");
        assert!(message.contains("running on cnc-1; report its units there"), "{message}");
        // Units count toward a starting lot only where it may start.
        let (field, _) = refusal(write(report(&b[0], 0, 3, produced(1, 0))));
        assert_eq!(field, "machine_id");

        // The same report at the same instant again is a retry and counts once; reports at other
        // instants count, up to the lot's limit: 5 units, so at most 15 in all.
        write(report(&a[0], 0, 4, produced(5, 0))).unwrap();
        write(report(&a[0], 0, 4, produced(5, 0))).unwrap();
        assert_eq!(f.store.operation(a[0].id).unwrap().good, 5);
        write(report(&a[0], 0, 5, produced(5, 0))).unwrap();
        assert_eq!(f.store.operation(a[0].id).unwrap().good, 10);
        let (field, message) = refusal(write(report(&a[0], 0, 5, produced(6, 0))));
        assert_eq!(field, "good");
        assert!(message.contains("at most 5 more"), "{message}");
        let (_, message) = refusal(write(report(&a[0], 0, 5, finished(6, 0))));
        assert!(message.contains("at most 5 more"), "{message}");

        // A machine's own count goes past the limit (taken as it comes): no person may add more,
        // but the finish that adds nothing goes through.
        let machine_count =
            OperationEvent { checked: false, counted_before: None, ..report(&a[0], 0, 5, produced(20, 0)) };
        write(machine_count).unwrap();
        let (_, message) = refusal(write(report(&a[0], 0, 5, produced(1, 0))));
        assert!(message.contains("30 are counted; at most 0 more"), "{message}");
        // A person who read the lot at 25 counted (before the machine's 20 more) finishes with
        // what they saw left: refused, not counted twice; read afresh, it goes through.
        let stale = OperationEvent { counted_before: Some(25), ..report(&a[0], 0, 6, finished(0, 0)) };
        let (field, message) = refusal(write(stale));
        assert_eq!(field, "counted_before");
        assert!(message.contains("(25 units then, 30 now: good 30, scrap 0)"), "{message}");
        let paused = OperationEventKind::Paused { good: 1, scrap: 0 };
        let stale_pause = OperationEvent { counted_before: Some(25), ..report(&a[0], 0, 6, paused) };
        assert_eq!(refusal(write(stale_pause)).0, "counted_before");
        // A finish needs the lot running, once.
        write(OperationEvent { counted_before: Some(30), ..report(&a[0], 0, 6, finished(0, 0)) }).unwrap();
        let (field, message) = refusal(write(report(&a[0], 0, 7, finished(1, 0))));
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("status", "the operation is done; it cannot finish again")
        );
        let (_, message) = refusal(write(report(&b[1], 1, 7, finished(1, 0))));
        assert_eq!(message, "the operation is released; start it first");
        let (_, message) = refusal(write(report(&a[0], 0, 7, produced(1, 0))));
        assert_eq!(message, "the operation is done; its units can no longer be reported");
        // Nothing of a refused report was written.
        let done = f.store.operation(a[0].id).unwrap();
        assert_eq!((done.status, done.good), (OrderStatus::Done, 30));
        assert_eq!(f.store.operation(b[0].id).unwrap().status, OrderStatus::Released);
    }

    #[test]
    fn units_reported_while_a_lot_runs_count_when_made_and_the_finish_adds_the_rest() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let op = f.store.operations(order.id).unwrap()[0].id;
        let at = |minutes| NOW + time::Duration::minutes(minutes);
        let event = |minutes, kind| OperationEvent {
            operation: op,
            machine: f.machines[1],
            at: at(minutes),
            kind,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        let produced = |good, scrap| OperationEventKind::Produced { good, scrap, ideal_unit_ms: None };
        // No `Started` first: a count alone shows the operation running on that machine.
        f.store.write_batch(&[], &[], &[], &[event(10, produced(2, 0)), event(20, produced(1, 1))]).unwrap();
        // A resent count (same instant, same units) is recorded once.
        f.store.write_batch(&[], &[], &[], &[event(20, produced(1, 1))]).unwrap();
        let running = &f.store.operations(order.id).unwrap()[0];
        assert_eq!(
            (running.status, running.machine_id, running.good, running.scrap),
            (OrderStatus::Running, Some(f.machines[1]), 3, 1)
        );
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Running);
        let finished = |good, scrap| OperationEventKind::Finished { good, scrap, ideal_unit_ms: None };
        f.store.write_batch(&[], &[], &[], &[event(30, finished(1, 0))]).unwrap();
        let done = &f.store.operations(order.id).unwrap()[0];
        assert_eq!((done.status, done.good, done.scrap), (OrderStatus::Done, 4, 1));
        assert_eq!(done.finished_at, Some(at(30)));
        // The order is done, and finished, only with its last operation.
        assert_eq!(f.store.order(order.id).unwrap().finished_at, None);
        let production: Vec<(i64, u32, u32)> = f
            .store
            .production(f.machines[1], 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|p| ((p.at - NOW).whole_minutes(), p.good, p.scrap))
            .collect();
        assert_eq!(production, [(10, 2, 0), (20, 1, 1), (30, 1, 0)], "each count is recorded when reported");
        // Counts after the finish, and a finish with nothing left to add, record nothing.
        f.store.write_batch(&[], &[], &[], &[event(40, produced(5, 0))]).unwrap();
        let second = f.store.operations(order.id).unwrap()[1].id;
        let last = OperationEvent { operation: second, ..event(50, produced(3, 0)) };
        f.store
            .write_batch(&[], &[], &[], &[last.clone(), OperationEvent { kind: finished(0, 0), ..last }])
            .unwrap();
        let production = f.store.production(f.machines[1], 0, i64::MAX).unwrap();
        assert_eq!(production.len(), 4, "{production:?}");
        assert_eq!(f.store.operations(order.id).unwrap()[1].good, 3);
        assert_eq!(f.store.operations(order.id).unwrap()[0].good, 4);
        let order = f.store.order(order.id).unwrap();
        assert_eq!((order.status, order.finished_at), (OrderStatus::Done, Some(at(50))));
        assert_eq!(
            f.store.operations(order.id).unwrap()[0].finished_at,
            Some(at(30)),
            "a late report changes nothing"
        );
    }

    #[test]
    fn a_start_stopped_for_now_before_any_unit_is_undone_with_its_order() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let ops = f.store.operations(order.id).unwrap();
        let event = |op: &Operation, minutes, kind| OperationEvent {
            operation: op.id,
            machine: op.eligible_machines[0],
            at: NOW + time::Duration::minutes(minutes),
            kind,
            checked: true,
            counted_before: None,
            scrap_reason: None,
        };
        let write = |e: OperationEvent| f.store.write_batch(&[], &[], &[], &[e]).unwrap();
        let pause = |good, scrap| OperationEventKind::Paused { good, scrap };
        write(event(&ops[0], 1, OperationEventKind::Started));
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Running);
        // Started by mistake, stopped for now with nothing made: as before the start.
        write(event(&ops[0], 2, pause(0, 0)));
        let op = f.store.operation(ops[0].id).unwrap();
        assert_eq!((op.status, op.started_at, op.machine_id), (OrderStatus::Released, None, None));
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Released);
        // With a unit made, a stop for now keeps the start, and the order runs on.
        write(event(&ops[0], 3, OperationEventKind::Started));
        write(event(&ops[0], 4, pause(1, 0)));
        let op = f.store.operation(ops[0].id).unwrap();
        assert_eq!(
            (op.status, op.started_at),
            (OrderStatus::Released, Some(NOW + time::Duration::minutes(3)))
        );
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Running);
        // A later step started and stopped with nothing leaves the order running: its first
        // step has made units.
        write(event(&ops[0], 5, OperationEventKind::Started));
        write(event(&ops[0], 6, OperationEventKind::Finished { good: 9, scrap: 0, ideal_unit_ms: None }));
        write(event(&ops[1], 7, OperationEventKind::Started));
        write(event(&ops[1], 8, pause(0, 0)));
        assert_eq!(f.store.operation(ops[1].id).unwrap().started_at, None);
        assert_eq!(f.store.order(order.id).unwrap().status, OrderStatus::Running);
    }
}

#[test]
fn deliveries_count_the_orders_finished_since_and_those_on_time() {
    let f = fixture(Store::open_in_memory().unwrap());
    let due = datetime!(2026-12-01 10:00 UTC);
    let finish_with = |number: &str, at: Timestamp, good: u32| {
        let order = f.store.create_order(&new_order(number, f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let events: Vec<OperationEvent> = f
            .store
            .operations(order.id)
            .unwrap()
            .iter()
            .map(|op| OperationEvent {
                operation: op.id,
                machine: f.machines[1],
                at,
                kind: OperationEventKind::Finished { good, scrap: 5 - good, ideal_unit_ms: None },
                checked: false,
                counted_before: None,
                scrap_reason: None,
            })
            .collect();
        f.store.write_batch(&[], &[], &[], &events).unwrap();
    };
    let finish = |number: &str, at: Timestamp| finish_with(number, at, 5);
    let delivered = |number: &str| f.store.order_by_number(number).unwrap().unwrap().delivered;
    finish("SO-EARLY", due - time::Duration::days(1));
    finish("SO-ON-THE-DOT", due);
    finish("SO-LATE", due + time::Duration::minutes(1));
    finish("SO-LONG-AGO", due - time::Duration::days(40));
    // On time but short: not delivered in full.
    finish_with("SO-SHORT", due - time::Duration::days(1), 3);
    // Released but not finished: not counted.
    let open = f.store.create_order(&new_order("SO-OPEN", f.variant), NOW).unwrap();
    f.store.set_order_status(open.id, OrderStatus::Released).unwrap();
    // An order says what it delivered once it is done.
    assert_eq!(
        (delivered("SO-EARLY"), delivered("SO-SHORT"), delivered("SO-OPEN")),
        (Some(5), Some(3), None)
    );
    let since = due - time::Duration::days(30);
    assert_eq!(f.store.deliveries(since).unwrap(), Deliveries { finished: 4, on_time: 2 });
    assert_eq!(
        f.store.deliveries(due + time::Duration::days(1)).unwrap(),
        Deliveries { finished: 0, on_time: 0 }
    );
}

mod ready_tests {
    use super::*;

    #[test]
    fn only_the_next_operation_of_released_orders_is_ready() {
        let f = fixture(Store::open_in_memory().unwrap());
        let planned = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        let released = f.store.create_order(&new_order("SO-2", f.variant), NOW).unwrap();
        f.store.set_order_status(released.id, OrderStatus::Released).unwrap();
        let ready = f.store.ready_operations(100).unwrap();
        assert_eq!(ready.len(), 1);
        let first = &ready[0];
        assert_eq!((first.order_id, first.seq, first.quantity), (released.id, 0, 5));
        assert_eq!(first.eligible_machines, f.machines.to_vec());
        let started = OperationEvent {
            operation: first.id,
            machine: f.machines[0],
            at: NOW,
            kind: OperationEventKind::Started,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        f.store.write_batch(&[], &[], &[], std::slice::from_ref(&started)).unwrap();
        assert!(
            f.store.ready_operations(100).unwrap().is_empty(),
            "the first operation is running; the second waits"
        );
        let done = OperationEvent {
            kind: OperationEventKind::Finished { good: 4, scrap: 1, ideal_unit_ms: None },
            ..started
        };
        f.store.write_batch(&[], &[], &[], &[done]).unwrap();
        let ready = f.store.ready_operations(100).unwrap();
        assert_eq!(ready[0].seq, 1);
        assert_eq!(ready[0].quantity, 4, "the scrapped unit is not processed downstream");
        // The same quantity wherever the operation is read.
        assert_eq!(f.store.operation(ready[0].id).unwrap().quantity, 4);
        let operations = f.store.operations(released.id).unwrap();
        assert_eq!(operations.iter().map(|op| op.quantity).collect::<Vec<_>>(), [5, 4]);
        // Not yet started orders process their whole quantity at every step.
        let operations = f.store.operations(planned.id).unwrap();
        assert_eq!(operations.iter().map(|op| op.quantity).collect::<Vec<_>>(), [5, 5]);
    }

    #[test]
    fn a_finish_without_units_passes_the_order_quantity_on() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let first = f.store.ready_operations(100).unwrap().remove(0);
        let finished = OperationEvent {
            operation: first.id,
            machine: f.machines[0],
            at: NOW,
            kind: OperationEventKind::Finished { good: 0, scrap: 0, ideal_unit_ms: None },
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        f.store.write_batch(&[], &[], &[], &[finished]).unwrap();
        let next = f.store.ready_operations(100).unwrap().remove(0);
        assert_eq!((next.seq, next.quantity), (1, 5), "nothing counted: the lot is unknown, not empty");
        assert_eq!(f.store.running_operations().unwrap(), []);
    }
}

mod state_rule_tests {
    use super::*;

    #[test]
    fn state_rules_round_trip() {
        let f = fixture(Store::open_in_memory().unwrap());
        let rule = StateRule {
            metric: "power_kw".into(),
            running_above: 2.0,
            idle_above: 0.3,
            otherwise: MachineState::Offline,
        };
        f.store.set_state_rule(f.machines[0], &rule).unwrap();
        assert_eq!(f.store.state_rules().unwrap(), vec![(f.machines[0], rule.clone())]);
        assert_eq!(f.store.state_rule(f.machines[0]).unwrap(), Some(rule.clone()));
        assert_eq!(f.store.state_rule(f.machines[1]).unwrap(), None);
        assert!(matches!(f.store.set_state_rule(MachineId(99), &rule), Err(StoreError::NotFound { .. })));
        f.store.delete_state_rule(f.machines[0]).unwrap();
        assert!(f.store.state_rules().unwrap().is_empty());
        assert_eq!(rule.state_for(2.5), MachineState::Running);
        assert_eq!(rule.state_for(1.0), MachineState::Idle);
        assert_eq!(rule.state_for(0.1), MachineState::Offline);
    }
}

mod count_rule_tests {
    use super::*;

    fn counter(machine: MachineId, metric: &str, minutes: i64, value: f64) -> Reading {
        Reading { machine, metric: metric.into(), at: NOW + time::Duration::minutes(minutes), value }
    }

    /// (minutes after NOW, operation, good, scrap, ideal seconds) of a machine's production.
    fn production(f: &Fixture, machine: MachineId) -> Vec<(i64, Option<OperationId>, u32, u32, f64)> {
        f.store
            .production(machine, 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|p| ((p.at - NOW).whole_minutes(), p.operation, p.good, p.scrap, p.ideal_unit_seconds))
            .collect()
    }

    #[test]
    fn count_rules_round_trip_and_refuse_unknown_machines() {
        let f = fixture(Store::open_in_memory().unwrap());
        let rule = CountRule {
            good_metric: "parts_good".into(),
            scrap_metric: Some("parts_scrap".into()),
            ideal_unit_seconds: Some(12.5),
        };
        assert_eq!(f.store.count_rule(f.machines[0]).unwrap(), None);
        f.store.set_count_rule(f.machines[0], &rule).unwrap();
        assert_eq!(f.store.count_rule(f.machines[0]).unwrap(), Some(rule.clone()));
        assert_eq!(f.store.count_rule(f.machines[1]).unwrap(), None);
        assert!(matches!(f.store.set_count_rule(MachineId(99), &rule), Err(StoreError::NotFound { .. })));
        f.store.delete_count_rule(f.machines[0]).unwrap();
        assert!(matches!(f.store.delete_count_rule(f.machines[0]), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn counter_rises_count_once_toward_the_running_operation_or_the_machine() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let good = |minutes, value| counter(m, "parts_good", minutes, value);
        let scrap = |minutes, value| counter(m, "parts_scrap", minutes, value);
        // Readings from before the rule set the baseline.
        f.store.write_readings(&[good(0, 100.0)]).unwrap();
        let rule = CountRule {
            good_metric: "parts_good".into(),
            scrap_metric: Some("parts_scrap".into()),
            ideal_unit_seconds: Some(20.0),
        };
        f.store.set_count_rule(m, &rule).unwrap();
        // No operation runs: the units count for the machine, at the rule's ideal time.
        let stats = f.store.write_readings(&[good(1, 103.0), counter(m, "temp", 1, 40.0)]).unwrap();
        assert_eq!(
            stats.counted,
            [CountedUnits {
                machine: m,
                at: NOW + time::Duration::minutes(1),
                operation: None,
                order: None,
                good: 3,
                scrap: 0
            }]
        );
        // An operation starts in the same batch as the next rise: the rise counts toward it.
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
        let op = f.store.operations(order.id).unwrap()[0].id;
        let started = OperationEvent {
            operation: op,
            machine: m,
            at: NOW + time::Duration::minutes(2),
            kind: OperationEventKind::Started,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        // A scrap counter's first reading is its baseline only.
        let stats = f.store.write_batch(&[good(3, 105.0), scrap(3, 7.0)], &[], &[], &[started]).unwrap();
        assert_eq!(stats.counted.len(), 1);
        assert_eq!(stats.counted[0].operation, Some(op));
        // A resent reading counts nothing; nor does a late one (its rise is part of a newer one's).
        let stats = f.store.write_readings(&[good(3, 105.0), good(2, 104.0), scrap(4, 8.0)]).unwrap();
        assert_eq!((stats.inserted, stats.duplicates, stats.counted.len()), (2, 1, 1));
        // Readings out of order within a batch count their total once, at the newest.
        f.store.write_readings(&[good(6, 110.0), good(5, 107.0)]).unwrap();
        // A counter that falls was reset: its new value counts.
        f.store.write_readings(&[good(7, 2.0), good(8, 2.4)]).unwrap();
        assert_eq!(
            production(&f, m),
            [
                (1, None, 3, 0, 20.0),
                (3, Some(op), 2, 0, 30.0),
                (4, Some(op), 0, 1, 30.0),
                (6, Some(op), 5, 0, 30.0),
                (7, Some(op), 2, 0, 30.0),
            ]
        );
        let running = &f.store.operations(order.id).unwrap()[0];
        assert_eq!((running.good, running.scrap), (9, 1));
        // Another machine's counter is not counted: it has no rule.
        f.store.write_readings(&[counter(f.machines[1], "parts_good", 1, 1.0)]).unwrap();
        f.store.write_readings(&[counter(f.machines[1], "parts_good", 2, 5.0)]).unwrap();
        assert!(production(&f, f.machines[1]).is_empty());
    }

    #[test]
    fn a_garbled_counter_reading_between_good_ones_adds_no_units() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let good = |minutes, value| counter(m, "parts_good", minutes, value);
        let rule = CountRule {
            good_metric: "parts_good".into(),
            scrap_metric: None,
            ideal_unit_seconds: Some(20.0),
        };
        f.store.set_count_rule(m, &rule).unwrap();
        f.store.write_readings(&[good(0, 5_000.0)]).unwrap();
        f.store.write_readings(&[good(1, 5_003.0)]).unwrap();
        // A spike (a bit flipped on the wire), then the counter as it was: 5 units, not 5,008.
        f.store.write_readings(&[good(2, 4_294_967_295.0)]).unwrap();
        f.store.write_readings(&[good(3, 5_008.0)]).unwrap();
        // A read that failed as 0, then the counter again: 4 units, not 5,012.
        f.store.write_readings(&[good(4, 0.0)]).unwrap();
        f.store.write_readings(&[good(5, 5_012.0)]).unwrap();
        let counted: Vec<(i64, u32)> = production(&f, m).iter().map(|p| (p.0, p.2)).collect();
        assert_eq!(counted, [(1, 3), (3, 5), (5, 4)]);
    }

    #[test]
    fn a_counter_that_lags_behind_a_finish_confirms_its_units_instead_of_counting_them_again() {
        let f = fixture(Store::open_in_memory().unwrap());
        let m = f.machines[0];
        let good = |minutes, value| counter(m, "parts_good", minutes, value);
        let scrap = |minutes, value| counter(m, "parts_scrap", minutes, value);
        let rule = CountRule {
            good_metric: "parts_good".into(),
            scrap_metric: Some("parts_scrap".into()),
            ideal_unit_seconds: Some(20.0),
        };
        f.store.set_count_rule(m, &rule).unwrap();
        f.store.write_readings(&[good(0, 0.0), scrap(0, 0.0)]).unwrap();
        let lot = |number: &str| {
            let order = f.store.create_order(&new_order(number, f.variant), NOW).unwrap();
            f.store.set_order_status(order.id, OrderStatus::Released).unwrap();
            f.store.operations(order.id).unwrap()[0].id
        };
        let (first, second) = (lot("SO-1"), lot("SO-2"));
        let event = |operation, minutes, kind| OperationEvent {
            operation,
            machine: m,
            at: NOW + time::Duration::minutes(minutes),
            kind,
            checked: false,
            counted_before: None,
            scrap_reason: None,
        };
        let finish = |good, scrap| OperationEventKind::Finished { good, scrap, ideal_unit_ms: None };
        f.store.write_batch(&[], &[], &[], &[event(first, 1, OperationEventKind::Started)]).unwrap();
        f.store.write_readings(&[good(2, 5.0)]).unwrap();
        // The operator finishes the lot with the 3 good and 1 scrapped units the counters have
        // not reported yet, and the next lot starts before they do.
        f.store.write_batch(&[], &[], &[], &[event(first, 3, finish(3, 1))]).unwrap();
        f.store.write_batch(&[], &[], &[], &[event(second, 4, OperationEventKind::Started)]).unwrap();
        // The lagging rises confirm those units; only what goes beyond them is new.
        let stats = f.store.write_readings(&[good(5, 7.0), scrap(5, 1.0)]).unwrap();
        assert!(stats.counted.is_empty(), "{:?}", stats.counted);
        let stats = f.store.write_readings(&[good(6, 10.0)]).unwrap();
        assert_eq!(
            (stats.counted.len(), stats.counted[0].operation, stats.counted[0].good),
            (1, Some(second), 2)
        );
        let counts = |id| {
            let op = f.store.operation(id).unwrap();
            (op.good, op.scrap)
        };
        assert_eq!((counts(first), counts(second)), ((8, 1), (2, 0)));
        // Units a finish added that no counter reports within ten minutes stop waiting: a later
        // rise counts in full.
        f.store.write_batch(&[], &[], &[], &[event(second, 7, finish(4, 0))]).unwrap();
        f.store.write_readings(&[good(18, 13.0)]).unwrap();
        assert_eq!(
            production(&f, m),
            [
                (2, Some(first), 5, 0, 30.0),
                (3, Some(first), 3, 1, 30.0),
                (6, Some(second), 2, 0, 30.0),
                (7, Some(second), 4, 0, 30.0),
                (18, None, 3, 0, 20.0),
            ]
        );
    }
}

mod plan_tests {
    use super::*;

    /// Orders late or not, as the orders page judges them.
    #[test]
    fn orders_filter_by_lateness() {
        let f = fixture(Store::open_in_memory().unwrap());
        let due = datetime!(2026-12-01 10:00 UTC);
        let mut ids = Vec::new();
        for number in ["PLAN-LATE", "PLAN-OK", "OVERDUE", "DONE-LATE", "DONE-OK", "CANCELLED", "NOT-PLANNED"]
        {
            ids.push(f.store.create_order(&new_order(number, f.variant), NOW).unwrap().id);
        }
        let mut operations = Vec::new();
        // The plan finishes the first order an hour after its due time and the second an hour
        // before.
        for (order, end) in
            [(ids[0], due + time::Duration::hours(1)), (ids[1], due - time::Duration::hours(1))]
        {
            let op = &f.store.operations(order).unwrap()[0];
            operations.push(PlannedOperation {
                operation_id: op.id,
                order_id: order,
                part: 0,
                quantity: 5,
                machine_id: f.machines[0],
                setup_start: end - time::Duration::hours(3),
                start: end - time::Duration::hours(2),
                end,
            });
        }
        let plan = f
            .store
            .create_plan(&NewPlan {
                created_at: NOW,
                objective: "makespan".into(),
                makespan_end: due,
                weighted_tardiness: 0,
                late_orders: 1,
                setup_seconds: 0,
                solve_ms: 5,
                operations,
                problem: "{}".into(),
                trigger: None,
                based_on: None,
                notes: Vec::new(),
            })
            .unwrap();
        f.store.publish_plan(plan.id, NOW).unwrap();
        let finish = |id: OrderId, at: Timestamp| {
            f.store
                .write(|tx| {
                    Ok(tx.execute(
                        "UPDATE orders SET status = 'done', finished_ms = ?2 WHERE id = ?1",
                        rusqlite::params![id.0, to_ms(at)],
                    )?)
                })
                .unwrap();
        };
        finish(ids[3], due + time::Duration::minutes(1));
        finish(ids[4], due);
        f.store.set_order_status(ids[5], OrderStatus::Cancelled).unwrap();
        let numbers = |filter: OrderFilter| {
            let mut numbers: Vec<String> =
                f.store.orders(&filter, all()).unwrap().items.into_iter().map(|o| o.number).collect();
            numbers.sort();
            assert_eq!(f.store.count_orders(&filter).unwrap(), numbers.len() as u64);
            numbers
        };
        let at = |late: bool, now: Timestamp| OrderFilter {
            lateness: Some(Lateness { late, now }),
            ..OrderFilter::default()
        };
        // Before the due time only the plan and the finish times make an order late.
        let before = due - time::Duration::hours(2);
        assert_eq!(numbers(at(true, before)), ["DONE-LATE", "PLAN-LATE"]);
        assert_eq!(numbers(at(false, before)), ["CANCELLED", "DONE-OK", "NOT-PLANNED", "OVERDUE", "PLAN-OK"]);
        // After it every open order is late, whatever the plan expected.
        let after = due + time::Duration::minutes(1);
        assert_eq!(numbers(at(true, after)), ["DONE-LATE", "NOT-PLANNED", "OVERDUE", "PLAN-LATE", "PLAN-OK"]);
        assert_eq!(numbers(at(false, after)), ["CANCELLED", "DONE-OK"]);
        // Open or not.
        let open = |open: bool| OrderFilter { open: Some(open), ..OrderFilter::default() };
        assert_eq!(numbers(open(true)), ["NOT-PLANNED", "OVERDUE", "PLAN-LATE", "PLAN-OK"]);
        assert_eq!(numbers(open(false)), ["CANCELLED", "DONE-LATE", "DONE-OK"]);
        // Newest first, page by page.
        let newest = OrderFilter { sort: OrderSort::Newest, ..OrderFilter::default() };
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = f.store.orders(&newest, PageRequest { after, limit: 3 }).unwrap();
            seen.extend(page.items.iter().map(|o| o.id));
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, ids.iter().rev().copied().collect::<Vec<_>>());
    }

    #[test]
    fn plans_are_drafts_until_published_and_stale_ones_are_refused() {
        let f = fixture(Store::open_in_memory().unwrap());
        let order = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
        let ops = f.store.operations(order.id).unwrap();
        let planned = |start: i64| PlannedOperation {
            operation_id: ops[0].id,
            order_id: order.id,
            part: 0,
            quantity: 5,
            machine_id: f.machines[0],
            setup_start: NOW,
            start: NOW + time::Duration::seconds(start),
            end: NOW + time::Duration::seconds(start + 100),
        };
        let new_plan = |at: Timestamp| NewPlan {
            created_at: at,
            objective: "makespan".into(),
            makespan_end: NOW,
            weighted_tardiness: 0,
            late_orders: 0,
            setup_seconds: 0,
            solve_ms: 5,
            operations: vec![planned(10)],
            problem: "{}".into(),
            trigger: None,
            based_on: None,
            notes: Vec::new(),
        };
        let first = f.store.create_plan(&new_plan(NOW)).unwrap();
        let second = f.store.create_plan(&new_plan(NOW + time::Duration::seconds(1))).unwrap();
        assert_eq!(f.store.plan_operations(first.id, None).unwrap(), vec![planned(10)]);
        // The problem is kept gzipped; one stored as text by an older version reads the same.
        assert_eq!(f.store.plan_problem(first.id).unwrap(), "{}");
        let gzipped = f.store.plan_problem_gzip(first.id).unwrap();
        assert_eq!(&gzipped[..2], [0x1f, 0x8b]);
        f.store
            .write(|tx| {
                Ok(tx.execute("UPDATE plans SET problem = '{\"old\": 1}' WHERE id = ?1", [second.id])?)
            })
            .unwrap();
        assert_eq!(f.store.plan_problem(second.id).unwrap(), "{\"old\": 1}");
        assert_eq!(&f.store.plan_problem_gzip(second.id).unwrap()[..2], [0x1f, 0x8b]);
        assert!(f.store.active_plan().unwrap().is_none());
        let active = f.store.publish_plan(second.id, NOW + time::Duration::seconds(2)).unwrap();
        assert_eq!(active.status, PlanStatus::Active);
        // The first plan was computed before the second was published: it is stale.
        assert!(matches!(
            f.store.publish_plan(first.id, NOW + time::Duration::seconds(3)),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(active.published_at, Some(NOW + time::Duration::seconds(2)));
        assert_eq!((first.published_at, first.trigger), (None, None));
        let trigger = PlanTrigger::RushOrders { orders: vec!["SO-1".into()] };
        let third = NewPlan { trigger: Some(trigger.clone()), ..new_plan(NOW + time::Duration::seconds(4)) };
        let third = f.store.create_plan(&third).unwrap();
        assert_eq!(third.trigger, Some(trigger));
        f.store.publish_plan(third.id, NOW + time::Duration::seconds(5)).unwrap();
        assert_eq!(f.store.plan(second.id).unwrap().status, PlanStatus::Superseded);
        assert_eq!(f.store.active_plan().unwrap().unwrap().id, third.id);
        assert_eq!(f.store.plans(all()).unwrap().items.len(), 3);
        // Retention: plans made before the cut go, oldest first, a slice at a time; never the
        // active plan, however old.
        let later = NOW + time::Duration::days(1);
        assert_eq!(f.store.prune_plans(NOW, 10).unwrap(), 0, "none made before the cut");
        assert_eq!(f.store.prune_plans(later, 1).unwrap(), 1);
        assert!(matches!(f.store.plan(first.id), Err(StoreError::NotFound { .. })));
        assert_eq!(f.store.prune_plans(later, 10).unwrap(), 1);
        assert_eq!(f.store.prune_plans(later, 10).unwrap(), 0);
        assert!(matches!(f.store.plan_operations(second.id, None), Err(StoreError::NotFound { .. })));
        assert_eq!(
            f.store.plans(all()).unwrap().items.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![third.id]
        );
        // A plan that knows what it was based on is judged by plans, not times: computed while the
        // third was active, it may be published although the third's publication is stamped
        // later (a clock that ran ahead then); one based on the second is stale.
        let on_second = f.store.create_plan(&NewPlan { based_on: Some(second.id), ..new_plan(NOW) }).unwrap();
        let on_third = f.store.create_plan(&NewPlan { based_on: Some(third.id), ..new_plan(NOW) }).unwrap();
        let stale = f.store.publish_plan(on_second.id, NOW + time::Duration::seconds(6));
        assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
        f.store.publish_plan(on_third.id, NOW + time::Duration::seconds(6)).unwrap();
        // Based on no plan (none was active): stale once one is.
        let on_none = f.store.create_plan(&NewPlan { based_on: Some(0), ..new_plan(NOW) }).unwrap();
        assert!(f.store.publish_plan(on_none.id, NOW).is_err());
    }
}

mod maintenance_tests {
    use super::*;

    #[test]
    fn maintenance_windows_and_material_dates_are_stored() {
        let f = fixture(Store::open_in_memory().unwrap());
        let window = NewMaintenanceWindow {
            start: NOW,
            end: NOW + time::Duration::hours(4),
            reason: "bearings".into(),
        };
        let stored = f.store.create_maintenance(f.machines[0], &window, NOW).unwrap();
        assert_eq!(f.store.maintenance(None, 0).unwrap(), vec![stored.clone()]);
        assert!(f.store.maintenance(Some(f.machines[1]), 0).unwrap().is_empty());
        assert!(f.store.maintenance(None, to_ms(NOW + time::Duration::hours(5))).unwrap().is_empty());
        // Planned ahead: not from the past (beyond a few minutes to enter it), and not over
        // another window of the machine.
        let at = |hours: i64| NOW + time::Duration::hours(hours);
        let past = NewMaintenanceWindow { start: at(-1), end: at(1), reason: "late entry".into() };
        let refused = f.store.create_maintenance(f.machines[1], &past, NOW).unwrap_err();
        assert!(matches!(&refused, StoreError::Invalid(errors) if errors[0].field == "start"), "{refused:?}");
        let just_now = NewMaintenanceWindow { start: NOW - time::Duration::minutes(10), ..past.clone() };
        let other = f.store.create_maintenance(f.machines[1], &just_now, NOW).unwrap();
        let overlapping = NewMaintenanceWindow { start: at(3), end: at(6), reason: "oil".into() };
        let refused = f.store.create_maintenance(f.machines[0], &overlapping, NOW).unwrap_err();
        assert!(refused.to_string().contains("overlaps maintenance window"), "{refused}");
        let after = NewMaintenanceWindow { start: at(4), ..overlapping };
        f.store.create_maintenance(f.machines[0], &after, NOW).unwrap();
        // A window that is over is history; one still to end may go.
        let refused = f.store.delete_maintenance(other.id, at(2)).unwrap_err();
        assert!(refused.to_string().contains("is over"), "{refused}");
        f.store.delete_maintenance(stored.id, at(3)).unwrap();
        assert_eq!(f.store.maintenance(Some(f.machines[0]), 0).unwrap().len(), 1);
        let mut order = new_order("SO-M", f.variant);
        order.material_ready = Some(NOW + time::Duration::days(2));
        let created = f.store.create_order(&order, NOW).unwrap();
        assert_eq!(f.store.order(created.id).unwrap().material_ready, Some(NOW + time::Duration::days(2)));
    }
}

mod account_tests {
    use super::*;

    #[test]
    fn the_last_admin_stays_and_only_device_accounts_have_a_site() {
        let f = fixture(Store::open_in_memory().unwrap());
        let site = f.store.sites(PageRequest { after: None, limit: 10 }).unwrap().items[0].id;
        let first = f.store.create_user("ada", Role::Admin, None, "$argon2id$x", NOW).unwrap();
        let second = f.store.create_user("bo", Role::Admin, None, "$argon2id$x", NOW).unwrap();
        f.store.update_user(second.id, Some(Role::Viewer), None, None).unwrap();
        let last = f.store.update_user(first.id, Some(Role::Viewer), None, None);
        assert!(matches!(last, Err(StoreError::Conflict { .. })), "{last:?}");
        assert!(matches!(f.store.delete_user(first.id), Err(StoreError::Conflict { .. })));
        let first = f.store.users().unwrap().into_iter().find(|u| u.id == first.id).unwrap();
        assert_eq!(first.role, Role::Admin, "nothing changed");
        // A viewer made a device has no site to publish for; a device made a viewer loses its site.
        let device = f.store.update_user(second.id, Some(Role::Device), None, None);
        assert!(matches!(device, Err(StoreError::Invalid(_))), "{device:?}");
        let gateway = f.store.create_user("gw", Role::Device, Some(site), "$argon2id$x", NOW).unwrap();
        // Only with a password: the device had none to sign in with.
        assert!(matches!(
            f.store.update_user(gateway.id, Some(Role::Viewer), None, None),
            Err(StoreError::Invalid(_))
        ));
        let viewer = f.store.update_user(gateway.id, Some(Role::Viewer), None, Some("$argon2id$y")).unwrap();
        assert_eq!((viewer.role, viewer.site_id), (Role::Viewer, None));
    }

    #[test]
    fn operators_and_maintenance_may_be_bound_to_a_site_and_keep_it_between_those_roles() {
        let f = fixture(Store::open_in_memory().unwrap());
        let site = f.store.sites(PageRequest { after: None, limit: 10 }).unwrap().items[0].id;
        f.store.create_user("ada", Role::Admin, None, "$argon2id$x", NOW).unwrap();
        let ops = f.store.create_user("kim", Role::Operator, Some(site), "$argon2id$x", NOW).unwrap();
        assert_eq!(ops.site_id, Some(site));
        let fitter = f.store.update_user(ops.id, Some(Role::Maintenance), None, None).unwrap();
        assert_eq!(fitter.site_id, Some(site), "maintenance is bound as an operator is");
        let planner = f.store.update_user(ops.id, Some(Role::Planner), None, None).unwrap();
        assert_eq!(planner.site_id, None, "a planner covers every site");
        let refused = f.store.update_user(ops.id, None, Some(Some(site)), None).unwrap_err();
        assert!(
            matches!(&refused, StoreError::Invalid(p) if p[0].message.contains("not planner")),
            "{refused:?}"
        );
        let bound = f.store.update_user(ops.id, Some(Role::Operator), Some(Some(site)), None).unwrap();
        assert_eq!(bound.site_id, Some(site));
        let nowhere = f.store.update_user(ops.id, None, Some(Some(SiteId(999))), None);
        assert!(matches!(nowhere, Err(StoreError::Invalid(_))), "{nowhere:?}");
        let unbound = f.store.update_user(ops.id, None, Some(None), None).unwrap();
        assert_eq!((unbound.role, unbound.site_id), (Role::Operator, None));
        let gateway = f.store.create_user("gw", Role::Device, Some(site), "$argon2id$x", NOW).unwrap();
        let other = f
            .store
            .create_site(&NewSite {
                code: "sz".into(),
                name: "Shenzhen".into(),
                utc_offset: Some("+08:00".into()),
                time_zone: None,
            })
            .unwrap();
        let moved = f.store.update_user(gateway.id, None, Some(Some(other.id)), None).unwrap_err();
        assert!(matches!(&moved, StoreError::Invalid(p) if p[0].message.contains("fixed")), "{moved:?}");
        assert_eq!(
            f.store.update_user(gateway.id, None, Some(Some(site)), None).unwrap().site_id,
            Some(site)
        );
        let loose = f.store.update_user(gateway.id, None, Some(None), None).unwrap_err();
        assert!(matches!(&loose, StoreError::Invalid(p) if p[0].field == "site_id"), "{loose:?}");
    }
}

#[test]
fn order_numbers_that_differ_only_in_case_are_one_number() {
    let f = fixture(Store::open_in_memory().unwrap());
    let first = f.store.create_order(&new_order("SO-1", f.variant), NOW).unwrap();
    let other = f.store.create_order(&new_order("SO-2", f.variant), NOW).unwrap();
    let conflict = |result: Result<Order>| match result {
        Err(StoreError::Conflict { field, message }) => (field, message),
        other => panic!("{other:?}"),
    };
    let (field, message) = conflict(f.store.create_order(&new_order("so-1", f.variant), NOW));
    assert_eq!(
        (field.as_deref(), message.as_str()),
        (Some("number"), r#"number is already in use (as "SO-1"; numbers differ by more than case)"#)
    );
    let batch = f.store.create_orders(&[new_order("SO-3", f.variant), new_order("So-1", f.variant)], NOW);
    assert!(matches!(batch, Err(StoreError::InRow { index: 1, .. })), "{batch:?}");
    conflict(f.store.update_order(other.id, &new_order("so-1", f.variant), NOW));
    // Saved as it was: no new revision, nothing in the history.
    let same = f.store.update_order(other.id, &new_order("SO-2", f.variant), NOW).unwrap();
    assert_eq!(same.revision, other.revision);
    assert!(f.store.order_history(other.id).unwrap().iter().all(|event| event.kind != "changed"));
    // An order may change the case of its own number.
    assert_eq!(f.store.update_order(first.id, &new_order("so-1", f.variant), NOW).unwrap().number, "so-1");
    assert_eq!(f.store.order_by_number("SO-1").unwrap().map(|o| o.id), Some(first.id));
    assert_eq!(f.store.taken_order_numbers(["SO-1", "so-2", "SO-3"]).unwrap(), ["SO-1", "so-2"]);
}

#[test]
fn every_change_of_an_order_takes_the_next_revision() {
    let f = fixture(Store::open_in_memory().unwrap());
    let batch =
        f.store.create_orders(&[new_order("SO-1", f.variant), new_order("SO-2", f.variant)], NOW).unwrap();
    let single = f.store.create_order(&new_order("SO-3", f.variant), NOW).unwrap();
    let revisions: Vec<i64> = batch.iter().chain([&single]).map(|o| o.revision).collect();
    assert_eq!(revisions, [1, 2, 3], "numbered as created, once each");
    let read = |id| f.store.order(id).unwrap().revision;
    assert_eq!(read(single.id), 3, "as stored");
    // An order's own change and one of its operations' each take the next.
    f.store.set_order_status(batch[0].id, OrderStatus::Released).unwrap();
    let released = read(batch[0].id);
    assert!(released > 3, "{released}");
    let operation = f.store.operations(batch[1].id).unwrap()[0].id;
    f.store
        .write(|tx| Ok(tx.execute("UPDATE operations SET good = 1 WHERE id = ?1", [operation.0])?))
        .unwrap();
    assert_eq!(read(batch[1].id), released + 1);
    let next = f.store.create_order(&new_order("SO-4", f.variant), NOW).unwrap();
    assert_eq!(next.revision, released + 2, "creating goes on from the same count");
    f.store.delete_order(next.id).unwrap();
    let deleted = f.store.deleted_orders(0, all()).unwrap().items;
    assert_eq!(deleted, [(next.id, "SO-4".to_string(), released + 3)]);
    assert!(f.store.deleted_orders(released + 3, all()).unwrap().items.is_empty());
}

#[test]
fn the_write_ahead_log_shrinks_after_a_burst() {
    let dir = fresh_dir("wal");
    let path = dir.join("wal.db");
    let store = Store::open(&path, Durability::Normal).unwrap();
    let wal = || std::fs::metadata(dir.join("wal.db-wal")).map_or(0, |m| m.len());
    // 24 MB in one transaction: the log holds all of it until the commit's checkpoint.
    store
        .write(|tx| {
            tx.execute_batch("CREATE TABLE burst (data BLOB)")?;
            for _ in 0..24 {
                tx.execute("INSERT INTO burst (data) VALUES (randomblob(1048576))", [])?;
            }
            Ok(())
        })
        .unwrap();
    assert!(wal() > 24 * 1024 * 1024, "{}", wal());
    // The next write starts the log over, and cuts the file back.
    store.write(|tx| Ok(tx.execute("DELETE FROM burst", [])?)).unwrap();
    store.write(|tx| Ok(tx.execute_batch("DROP TABLE burst")?)).unwrap();
    assert!(wal() <= 16 * 1024 * 1024, "{}", wal());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
