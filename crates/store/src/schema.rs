//! Embedded migrations, applied in order on open and recorded in SQLite's `user_version`.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Every migration, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_telemetry.sql"),
    include_str!("migrations/0003_alarms.sql"),
    include_str!("migrations/0004_state_rules.sql"),
    include_str!("migrations/0005_plans.sql"),
    include_str!("migrations/0006_maintenance_and_materials.sql"),
    include_str!("migrations/0007_token_expiry.sql"),
    include_str!("migrations/0008_operation_progress.sql"),
    include_str!("migrations/0009_count_rules.sql"),
    include_str!("migrations/0010_running_operations.sql"),
    include_str!("migrations/0011_plan_triggers.sql"),
    include_str!("migrations/0012_unconfirmed_counts.sql"),
    include_str!("migrations/0013_finish_times.sql"),
    include_str!("migrations/0014_alarm_deadband.sql"),
    include_str!("migrations/0015_alarm_causes.sql"),
    include_str!("migrations/0016_start_times.sql"),
    include_str!("migrations/0017_ids_never_reused.sql"),
    include_str!("migrations/0018_alarm_fired_times.sql"),
    include_str!("migrations/0019_alarm_occurrences.sql"),
    include_str!("migrations/0020_site_time_zones.sql"),
    include_str!("migrations/0021_unseen_alarms_index.sql"),
    include_str!("migrations/0022_hourly_rollups.sql"),
    include_str!("migrations/0023_chosen_token_prefixes.sql"),
    include_str!("migrations/0024_priority_raised.sql"),
    include_str!("migrations/0025_sparkplug_sessions.sql"),
    include_str!("migrations/0026_series_ids_never_reused.sql"),
    include_str!("migrations/0027_orders_delivered.sql"),
    include_str!("migrations/0028_machines_retired.sql"),
    include_str!("migrations/0029_order_revisions.sql"),
    include_str!("migrations/0030_retention_basis.sql"),
    include_str!("migrations/0031_plans_based_on.sql"),
    include_str!("migrations/0032_old_log_ins_expire.sql"),
    include_str!("migrations/0033_alarms_by_rule_and_machine.sql"),
    include_str!("migrations/0034_plan_notes.sql"),
    include_str!("migrations/0035_alarm_notes.sql"),
    include_str!("migrations/0036_alarms_by_latest_occurrence.sql"),
    include_str!("migrations/0037_order_history.sql"),
    include_str!("migrations/0038_alarm_rules_per_site.sql"),
    include_str!("migrations/0039_order_numbers_in_any_case.sql"),
    include_str!("migrations/0040_scrap_reasons.sql"),
];

/// Applies the migrations the database has not seen yet, each in its own transaction.
///
/// Foreign keys are off while they run (SQLite ignores the switch inside a transaction), so a
/// migration may rebuild a table the documented way, create, copy, drop and rename, without the
/// drop cascading into the tables that refer to it. Each migration must then leave no dangling
/// reference, which `PRAGMA foreign_key_check` confirms before it commits (unless one was there
/// before, which is no reason to refuse an upgrade).
/// Returns the versions before and after, when it applied any.
pub(crate) fn migrate(conn: &Connection) -> Result<Option<(u32, u32)>> {
    let (before, _) = versions(conn)?;
    migrate_to(conn, MIGRATIONS.len())?;
    let (after, _) = versions(conn)?;
    Ok((after != before).then_some((before, after)))
}

/// The database's schema version and the latest this program knows; an error when the database
/// is newer.
pub(crate) fn versions(conn: &Connection) -> Result<(u32, u32)> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len() as u32;
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    Ok((found, known))
}

/// The latest schema version this program knows.
pub(crate) fn latest() -> u32 {
    MIGRATIONS.len() as u32
}

/// Brings the schema to `target` (at most the latest version); tests use it to build old databases.
pub(crate) fn migrate_to(conn: &Connection, target: usize) -> Result<()> {
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let migrated = apply(conn, &MIGRATIONS[..target]);
    // Whatever happened, no transaction stays open (the switch would be ignored inside one) and
    // foreign keys are on again before the connection is used.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    let on: bool = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    if !on {
        return Err(StoreError::Corrupt("foreign keys could not be turned on after migrating".into()));
    }
    if migrated? {
        // A table rebuild grows the write-ahead log to the size of the tables; give it back.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// Applies what `migrations` the database lacks; whether it applied any.
fn apply(conn: &Connection, migrations: &[&str]) -> Result<bool> {
    let version = |conn: &Connection| -> Result<usize> { Ok(versions(conn)?.0 as usize) };
    let mut applied_any = false;
    while version(conn)? < migrations.len() {
        let dangling_before = dangling_reference(conn)?.is_some();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // Read again under the write lock: another process (an import beside `serve`) may have
        // applied it meanwhile.
        let current = version(conn)?;
        if current >= migrations.len() {
            conn.execute_batch("COMMIT")?;
            break;
        }
        let target = current + 1;
        let sql = migrations[current];
        let applied = conn
            .execute_batch(&format!("{sql}; PRAGMA user_version = {target};"))
            .map_err(StoreError::from)
            .and_then(|()| match dangling_reference(conn)? {
                Some(found) if !dangling_before => {
                    Err(StoreError::Corrupt(format!("migration {target} left {found}")))
                }
                _ => Ok(()),
            })
            .and_then(|()| Ok(conn.execute_batch("COMMIT")?));
        // On failure `migrate_to` rolls back what is still open; the first error is the one told.
        applied
            .map_err(|source| StoreError::Migration { version: target as u32, source: Box::new(source) })?;
        applied_any = true;
    }
    Ok(applied_any)
}

/// The first row that refers to a row that does not exist, if any, described for an error.
fn dangling_reference(conn: &Connection) -> Result<Option<String>> {
    let mut check = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = check.query([])?;
    let Some(row) = rows.next()? else { return Ok(None) };
    let table: String = row.get(0)?;
    let rowid: Option<i64> = row.get(1)?;
    let parent: String = row.get(2)?;
    let rowid = rowid.map_or_else(|| "a row".to_owned(), |id| format!("row {id}"));
    Ok(Some(format!("{rowid} of {table} referring to a missing row of {parent}")))
}
