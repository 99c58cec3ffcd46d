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
];

/// Applies the migrations the database has not seen yet, each in its own transaction.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this program ({}); upgrade microfactory",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index + 1;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {version}; COMMIT;"))?;
    }
    Ok(())
}
