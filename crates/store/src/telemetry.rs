//! Time series, machine states and production records: the write path the ingest pipeline
//! batches into, the queries behind charts and OEE, and retention.

use std::collections::HashMap;

use model::oee::StateSpan;
use model::{MachineId, MachineState, OperationId, OrderId, ProductionRecord, Reading, StateChange};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Result, Store, StoreError, from_ms, lock, to_ms};

/// How far after now a state may be stamped and count as current: as far ahead as reports are
/// taken (five minutes; a device's clock a little fast).
pub const STATES_AHEAD_MS: i64 = 300_000;

/// What a batch write did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Readings stored.
    pub inserted: usize,
    /// Readings ignored because the series already had a value at that timestamp.
    pub duplicates: usize,
    /// The positions in the batch of the readings not stored (duplicates, unknown machines, too
    /// many metrics), in order: what watches the readings (alarms) sees only the stored ones.
    pub not_stored: Vec<usize>,
    /// Readings of machines that do not exist (deleted since they were decoded).
    pub unknown_machine: usize,
    /// Readings of a new metric of a machine that has [`MAX_METRICS_PER_MACHINE`] already.
    pub too_many_metrics: usize,
    /// Units recorded: by the operation reports applied (a resent one is not applied again) and
    /// by the machines' [`model::CountRule`]s from counter metrics.
    pub counted: Vec<CountedUnits>,
    /// Machines' own operation reports that were not applied (see [`RefusedReport`]).
    pub refused: Vec<RefusedReport>,
}

/// A machine's own report on an operation that no person could have made either, so it was
/// not applied: a device may report only on work its machine may do, of released orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedReport {
    /// The operation named.
    pub operation: OperationId,
    /// The machine that reported.
    pub machine: MachineId,
    /// Why.
    pub reason: Refusal,
}

/// Why a machine's report was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The machine is not one of the operation's eligible machines (another site's work, or
    /// another kind of machine's).
    NotEligible,
    /// The operation's order is still `planned`: it is released before work on it starts.
    Unreleased,
}

impl Refusal {
    /// The reason's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotEligible => "report_not_eligible",
            Refusal::Unreleased => "report_unreleased",
        }
    }
}

/// Units a machine's counter metric counted (see [`model::CountRule`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedUnits {
    /// Which machine.
    pub machine: MachineId,
    /// The time of the counter reading.
    pub at: model::Timestamp,
    /// The operation they counted toward (for a count rule, the one running on the machine), if
    /// any.
    pub operation: Option<OperationId>,
    /// That operation's order.
    pub order: Option<OrderId>,
    /// Good units.
    pub good: u32,
    /// Scrapped units.
    pub scrap: u32,
}

/// A machine reporting progress on an order operation.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationEvent {
    /// The operation.
    pub operation: OperationId,
    /// The machine doing it.
    pub machine: MachineId,
    /// When.
    pub at: model::Timestamp,
    /// Started, units made, or finished.
    pub kind: OperationEventKind,
    /// A person's report (the API's start, finish and production reports): checked against the
    /// operation as it stands inside the write, and refused with [`StoreError::Conflict`] or
    /// [`StoreError::Invalid`] when it does not fit, so two reports at once cannot both pass. A
    /// machine's own report (`false`) is taken as the machine saw it (it may start a step before
    /// the previous one is recorded done), but only on work the machine may do, of a released
    /// order: others are not applied and are listed in [`WriteStats::refused`].
    pub checked: bool,
    /// For a person's finish or stop for now (`checked`): the units (good and scrap) counted on
    /// the lot when they read it. When more have been counted since (a machine's counter, another
    /// person), the report is refused with [`StoreError::Conflict`] instead of counting them twice.
    pub counted_before: Option<u32>,
    /// Why the scrapped units of this report were scrapped, when someone said (kept with the
    /// production record it makes).
    pub scrap_reason: Option<String>,
}

/// What happened to the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationEventKind {
    /// Work began.
    Started,
    /// Units made while the work runs, since the machine's last report.
    Produced {
        /// Good units.
        good: u32,
        /// Scrapped units.
        scrap: u32,
        /// The ideal time per unit in milliseconds that the machine reported, as in `Finished`.
        ideal_unit_ms: Option<u32>,
    },
    /// Work stopped for now with part of the lot made (a lot split across shifts, the end of a
    /// shift): the units not reported yet count, and the operation waits to be started again for
    /// the rest. Only a person reports this (`checked`).
    Paused {
        /// Good units.
        good: u32,
        /// Scrapped units.
        scrap: u32,
    },
    /// Work ended, with the units not reported yet by `Produced`.
    Finished {
        /// Good units.
        good: u32,
        /// Scrapped units.
        scrap: u32,
        /// The ideal time per unit in milliseconds that the machine reported, which the
        /// production record takes instead of the operation's unit time.
        ideal_unit_ms: Option<u32>,
    },
}

/// One point of a series query: raw (`count == 1`) or aggregated over a step.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoint {
    /// Start of the step (raw: the reading's time), Unix milliseconds.
    pub ts_ms: i64,
    /// Smallest value in the step.
    pub min: f64,
    /// Largest value in the step.
    pub max: f64,
    /// Mean value in the step.
    pub avg: f64,
    /// Latest value in the step.
    pub last: f64,
    /// Number of readings in the step.
    pub count: u64,
}

/// What [`Store::prune`] deletes: rows older than these times, in epoch milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct PruneBefore {
    /// Raw readings taken before this.
    pub raw_ms: i64,
    /// Minute roll-ups of minutes that began before this.
    pub minutes_ms: i64,
    /// Hour roll-ups of hours that began before this.
    pub hours_ms: i64,
}

/// How many milliseconds a minute roll-up row covers.
pub const ROLLUP_MS: i64 = 60_000;

/// How many milliseconds an hour roll-up row covers.
pub const HOUR_ROLLUP_MS: i64 = 3_600_000;

/// The readings of one series in one minute or hour, as a roll-up row holds them.
struct Aggregate {
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
    last: f64,
    last_ts: i64,
}

impl Aggregate {
    fn one(ts: i64, value: f64) -> Aggregate {
        Aggregate { min: value, max: value, sum: value, count: 1, last: value, last_ts: ts }
    }

    const EMPTY: Aggregate = Aggregate {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sum: 0.0,
        count: 0,
        last: 0.0,
        last_ts: i64::MIN,
    };

    fn merge(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        if other.last_ts >= self.last_ts {
            self.last = other.last;
            self.last_ts = other.last_ts;
        }
    }
}

/// Adds a batch's aggregates to a roll-up table (`rollups_1m` keyed by `minute_ms`, or
/// `rollups_1h` by `hour_ms`).
fn upsert_rollups(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    key: &str,
    rows: &HashMap<(i64, i64), Aggregate>,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO {table} (series_id, {key}, min, max, sum, count, last, last_ts_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (series_id, {key}) DO UPDATE SET
           min = min(min, excluded.min), max = max(max, excluded.max),
           sum = sum + excluded.sum, count = count + excluded.count,
           last = CASE WHEN excluded.last_ts_ms >= last_ts_ms THEN excluded.last ELSE last END,
           last_ts_ms = max(last_ts_ms, excluded.last_ts_ms)"
    ))?;
    for (&(series, start), agg) in rows {
        upsert.execute(params![
            series,
            start,
            agg.min,
            agg.max,
            agg.sum,
            agg.count,
            agg.last,
            agg.last_ts
        ])?;
    }
    Ok(())
}

impl Store {
    /// Stores a batch of readings in one transaction and folds them into the 1-minute roll-ups.
    /// When this returns, the batch is durable (see the crate docs on durability).
    pub fn write_readings(&self, readings: &[Reading]) -> Result<WriteStats> {
        self.write_batch(readings, &[], &[], &[])
    }

    /// Stores readings, state changes and production records in one transaction: the unit of
    /// durability of the ingest pipeline. State changes and production records of machines that
    /// no longer exist are skipped (and not counted). Operation events are applied first, so the
    /// units a count rule finds in `readings` count toward what runs after them: a caller that
    /// must keep readings before an operation event writes them in an earlier batch (the
    /// pipeline does).
    pub fn write_batch(
        &self,
        readings: &[Reading],
        states: &[StateChange],
        production: &[ProductionRecord],
        operations: &[OperationEvent],
    ) -> Result<WriteStats> {
        let mut stats = WriteStats::default();
        self.write(|tx| {
            for event in operations {
                if !event.checked
                    && let Some(reason) = crate::orders::refuse_machine_report(tx, event)?
                {
                    stats.refused.push(RefusedReport {
                        operation: event.operation,
                        machine: event.machine,
                        reason,
                    });
                    continue;
                }
                stats.counted.extend(crate::orders::apply_operation_event(tx, event)?);
            }
            let exists = |machine: MachineId| -> Result<bool> {
                Ok(tx.prepare_cached("SELECT 1 FROM machines WHERE id = ?1")?.exists([machine.0])?)
            };
            for change in states {
                if exists(change.machine)? {
                    insert_state(tx, change)?;
                }
            }
            for record in production {
                if exists(record.machine)? {
                    insert_production(tx, record)?;
                }
            }
            let mut minutes: HashMap<(i64, i64), Aggregate> = HashMap::new();
            let count_rules = if readings.is_empty() { HashMap::new() } else { count_rules(tx)? };
            let mut cache = lock(&self.inner.series);
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO readings (series_id, ts_ms, value) VALUES (?1, ?2, ?3)",
            )?;
            for (position, reading) in readings.iter().enumerate() {
                let series = match series_id(tx, &mut cache, reading.machine, &reading.metric)? {
                    Series::Id(id) => id,
                    Series::UnknownMachine => {
                        stats.unknown_machine += 1;
                        stats.not_stored.push(position);
                        continue;
                    }
                    Series::TooMany => {
                        stats.too_many_metrics += 1;
                        stats.not_stored.push(position);
                        continue;
                    }
                };
                let ts = to_ms(reading.at);
                if insert.execute(params![series, ts, reading.value])? == 0 {
                    stats.duplicates += 1;
                    stats.not_stored.push(position);
                    continue;
                }
                stats.inserted += 1;
                if !count_rules.is_empty()
                    && let Some(rule) = count_rules.get(&reading.machine)
                    && let Some(scrap) = rule.counts_scrap(&reading.metric)
                {
                    stats.counted.extend(count_units(tx, rule, series, reading, scrap)?);
                }
                let minute = ts.div_euclid(ROLLUP_MS) * ROLLUP_MS;
                minutes
                    .entry((series, minute))
                    .or_insert(Aggregate::EMPTY)
                    .merge(&Aggregate::one(ts, reading.value));
            }
            let mut hours: HashMap<(i64, i64), Aggregate> = HashMap::new();
            for (&(series, minute), agg) in &minutes {
                let hour = minute.div_euclid(HOUR_ROLLUP_MS) * HOUR_ROLLUP_MS;
                hours.entry((series, hour)).or_insert(Aggregate::EMPTY).merge(agg);
            }
            upsert_rollups(tx, "rollups_1m", "minute_ms", &minutes)?;
            upsert_rollups(tx, "rollups_1h", "hour_ms", &hours)?;
            Ok(())
        })?;
        Ok(stats)
    }

    /// The metric names a machine has reported.
    pub fn metrics(&self, machine: MachineId) -> Result<Vec<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT metric FROM series WHERE machine_id = ?1 ORDER BY metric")?
                .query_map([machine.0], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every metric name any machine has reported, sorted (at most a thousand).
    pub fn metric_names(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT DISTINCT metric FROM series ORDER BY metric LIMIT 1000")?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// When the machine's latest raw reading was taken, of any metric; `None` when it has none
    /// (never reported, or nothing within raw-data retention).
    pub fn last_reading_at(&self, machine: MachineId) -> Result<Option<model::Timestamp>> {
        self.read(|conn| {
            // Per series, `max` over the primary key is one index lookup.
            let latest: Option<i64> = conn
                .prepare_cached(
                    "SELECT max((SELECT max(ts_ms) FROM readings WHERE series_id = s.id)) FROM series s
                     WHERE s.machine_id = ?1",
                )?
                .query_row([machine.0], |row| row.get(0))?;
            latest.map(from_ms).transpose()
        })
    }

    /// The latest time anything on the shop floor was recorded at: a reading, a machine state, a
    /// production report, an order, an operation's start or finish, a plan or an alarm; `None` in
    /// an empty store. The demo's fast
    /// clock goes on from here after a restart, so its time never runs backwards.
    pub fn latest_recorded_at(&self) -> Result<Option<model::Timestamp>> {
        self.read(|conn| {
            let latest: Option<i64> = conn
                .prepare_cached(
                    "SELECT max(
                        coalesce((SELECT max((SELECT max(ts_ms) FROM readings WHERE series_id = s.id))
                                  FROM series s), 0),
                        coalesce((SELECT max(since_ms) FROM machine_states), 0),
                        coalesce((SELECT max(ts_ms) FROM production), 0),
                        coalesce((SELECT max(created_ms) FROM orders), 0),
                        coalesce((SELECT max(created_ms) FROM plans), 0),
                        coalesce((SELECT max(max(coalesce(started_ms, 0), coalesce(finished_ms, 0))) FROM operations), 0),
                        coalesce((SELECT max(max(raised_ms, coalesce(fired_ms, 0), coalesce(cleared_ms, 0))) FROM alarms), 0))",
                )?
                .query_row([], |row| row.get(0))?;
            latest.filter(|ms| *ms > 0).map(from_ms).transpose()
        })
    }

    /// When the newest raw reading was taken, in epoch milliseconds; `None` without readings.
    pub fn newest_reading_ms(&self) -> Result<Option<i64>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT max((SELECT max(ts_ms) FROM readings WHERE series_id = s.id)) FROM series s",
                )?
                .query_row([], |row| row.get(0))?)
        })
    }

    /// The time retention last counted telemetry ages back from, if it ever did.
    pub fn retention_basis(&self) -> Result<Option<i64>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT basis_ms FROM retention_basis WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()?)
        })
    }

    /// Keeps `basis_ms` as the time retention counts back from.
    pub fn set_retention_basis(&self, basis_ms: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO retention_basis (id, basis_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET basis_ms = excluded.basis_ms",
                [basis_ms],
            )?;
            Ok(())
        })
    }

    /// The newest raw reading of every series (of every machine and metric) that has one.
    pub fn latest_readings(&self) -> Result<Vec<Reading>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT s.machine_id, s.metric, r.ts_ms, r.value FROM series s
                 JOIN readings r ON r.series_id = s.id
                  AND r.ts_ms = (SELECT max(ts_ms) FROM readings WHERE series_id = s.id)
                 ORDER BY s.id",
            )?;
            let mut rows = statement.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(Reading {
                    machine: MachineId(row.get(0)?),
                    metric: row.get(1)?,
                    at: from_ms(row.get(2)?)?,
                    value: row.get(3)?,
                });
            }
            Ok(out)
        })
    }

    /// The value of a machine's newest raw reading of `metric`, if it has one.
    pub fn last_value(&self, machine: MachineId, metric: &str) -> Result<Option<f64>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT r.value FROM readings r JOIN series s ON s.id = r.series_id
                     WHERE s.machine_id = ?1 AND s.metric = ?2 ORDER BY r.ts_ms DESC LIMIT 1",
                )?
                .query_row(params![machine.0, metric], |row| row.get(0))
                .optional()?)
        })
    }

    /// One series' raw readings from `newest_ms` back to `oldest_ms` (both included), newest
    /// first, and the newest one before `oldest_ms`, if any; at most `limit`.
    pub fn readings_back(
        &self,
        machine: MachineId,
        metric: &str,
        oldest_ms: i64,
        newest_ms: i64,
        limit: u32,
    ) -> Result<Vec<Reading>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT r.ts_ms, r.value FROM series s JOIN readings r ON r.series_id = s.id
                 WHERE s.machine_id = ?1 AND s.metric = ?2 AND r.ts_ms <= ?4
                   AND r.ts_ms >= coalesce(
                     (SELECT max(ts_ms) FROM readings WHERE series_id = s.id AND ts_ms < ?3), ?3)
                 ORDER BY r.ts_ms DESC LIMIT ?5",
            )?;
            let mut rows = statement.query(params![machine.0, metric, oldest_ms, newest_ms, limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(Reading {
                    machine,
                    metric: metric.to_owned(),
                    at: from_ms(row.get(0)?)?,
                    value: row.get(1)?,
                });
            }
            Ok(out)
        })
    }

    /// Readings of one series in `[from_ms, to_ms)`: raw when `step_ms` is `None` (at most
    /// `limit` points), otherwise aggregated per step (from the roll-ups when the step is a whole
    /// number of minutes, so long ranges stay fast and survive raw-data retention). Steps start at
    /// `origin_ms` and whole steps from it (0: the Unix epoch; a site's local midnight for days
    /// of its own). Roll-up rows go to the step of their start, so an origin between whole hours
    /// (a zone half an hour off UTC) places an hour's roll-up in the step it begins in.
    #[allow(clippy::too_many_arguments, reason = "a query's parameters, each named where it is called")]
    pub fn series(
        &self,
        machine: MachineId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
        step_ms: Option<i64>,
        origin_ms: i64,
        limit: u32,
    ) -> Result<Vec<SeriesPoint>> {
        self.read(|conn| {
            let series: Option<i64> = conn
                .prepare_cached("SELECT id FROM series WHERE machine_id = ?1 AND metric = ?2")?
                .query_row(params![machine.0, metric], |row| row.get(0))
                .optional()?;
            let Some(series) = series else { return Ok(Vec::new()) };
            let points = match step_ms {
                None => conn
                    .prepare_cached(
                        "SELECT ts_ms, value FROM readings WHERE series_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
                         ORDER BY ts_ms LIMIT ?4",
                    )?
                    .query_map(params![series, from_ms, to_ms, limit], |row| {
                        let value: f64 = row.get(1)?;
                        Ok(SeriesPoint { ts_ms: row.get(0)?, min: value, max: value, avg: value, last: value, count: 1 })
                    })?
                    .collect::<rusqlite::Result<_>>()?,
                // Stepped reads walk the primary keys in time order and fold rows into steps here:
                // a GROUP BY on a computed bucket (with a correlated subquery for `last`) cost
                // several times more on a week of roll-ups.
                Some(step) => {
                    let top = if step % HOUR_ROLLUP_MS == 0 {
                        Level::Hour
                    } else if step % ROLLUP_MS == 0 {
                        Level::Minute
                    } else {
                        Level::Raw
                    };
                    let oldest = |sql: &str| -> rusqlite::Result<i64> {
                        let oldest: Option<i64> = conn.prepare_cached(sql)?.query_row([series], |row| row.get(0))?;
                        Ok(oldest.unwrap_or(i64::MAX))
                    };
                    let levels = Levels {
                        conn,
                        series,
                        raw_from: oldest("SELECT min(ts_ms) FROM readings WHERE series_id = ?1")?,
                        minutes_from: match top {
                            Level::Hour => oldest("SELECT min(minute_ms) FROM rollups_1m WHERE series_id = ?1")?,
                            _ => i64::MAX,
                        },
                    };
                    let mut steps = Steps::new(step, origin_ms, limit);
                    levels.fold(&mut steps, top, from_ms, to_ms)?;
                    steps.finish()
                }
            };
            Ok(points)
        })
    }

    /// Deletes raw readings taken before `before.raw_ms`, minute roll-ups of minutes before
    /// `before.minutes_ms` and hour roll-ups of hours before `before.hours_ms`, at most `batch`
    /// rows of each per call so the writer is never held for long; returns how many rows went.
    /// Call repeatedly until it returns 0.
    pub fn prune(&self, before: PruneBefore, batch: u32) -> Result<usize> {
        self.write(|tx| {
            let mut deleted = 0;
            for (table, key, before_ms) in [
                ("readings", "ts_ms", before.raw_ms),
                ("rollups_1m", "minute_ms", before.minutes_ms),
                ("rollups_1h", "hour_ms", before.hours_ms),
            ] {
                deleted += tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE (series_id, {key}) IN
                           (SELECT series_id, {key} FROM {table} WHERE {key} < ?1 LIMIT ?2)"
                    ),
                    params![before_ms, batch],
                )?;
            }
            Ok(deleted)
        })
    }

    /// Records a machine entering a state. A second change at the same millisecond replaces the
    /// first. Unknown machines are an error naming `machine`.
    pub fn record_state(&self, change: &StateChange) -> Result<()> {
        self.write(|tx| {
            crate::require(tx, "machines", change.machine.0, "machine")?;
            insert_state(tx, change)
        })
    }

    /// Every machine's latest state at `now` and since when, for machines that ever reported one.
    /// A state stamped more than [`STATES_AHEAD_MS`] after `now` is not one yet: a clock that ran
    /// ahead stamped it, and it would otherwise stay "current" over every true report until that
    /// time came.
    pub fn current_states(&self, now: model::Timestamp) -> Result<Vec<StateChange>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT s.machine_id, s.since_ms, s.state, s.reason FROM machine_states s
                 JOIN (SELECT machine_id, max(since_ms) AS since FROM machine_states WHERE since_ms <= ?1
                       GROUP BY machine_id) latest
                   ON latest.machine_id = s.machine_id AND latest.since = s.since_ms
                 ORDER BY s.machine_id",
            )?;
            let mut rows = statement.query([to_ms(now).saturating_add(STATES_AHEAD_MS)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(StateChange {
                    machine: MachineId(row.get(0)?),
                    at: from_ms(row.get(1)?)?,
                    state: parse_state(&row.get::<_, String>(2)?)?,
                    reason: row.get(3)?,
                });
            }
            Ok(out)
        })
    }

    /// When `machine`'s run of stopped states (down or offline, however many reports with other
    /// reasons it holds) that includes `at` began: the first such report after the last other
    /// state before `at`. `None` when it is not stopped at `at`.
    pub fn stopped_since(
        &self,
        machine: MachineId,
        at: model::Timestamp,
    ) -> Result<Option<model::Timestamp>> {
        self.read(|conn| {
            let since: Option<i64> = conn
                .prepare_cached(
                    "SELECT min(since_ms) FROM machine_states
                     WHERE machine_id = ?1 AND since_ms <= ?2 AND state IN ('down', 'offline')
                       AND since_ms > coalesce((SELECT max(since_ms) FROM machine_states
                           WHERE machine_id = ?1 AND since_ms <= ?2 AND state NOT IN ('down', 'offline')), -1)",
                )?
                .query_row(params![machine.0, to_ms(at)], |row| row.get(0))?;
            since.map(from_ms).transpose()
        })
    }

    /// One machine's latest state at `now` (see [`Store::current_states`]), if it ever reported one.
    pub fn current_state(&self, machine: MachineId, now: model::Timestamp) -> Result<Option<StateChange>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(
                    "SELECT since_ms, state, reason FROM machine_states WHERE machine_id = ?1 AND since_ms <= ?2
                     ORDER BY since_ms DESC LIMIT 1",
                )?
                .query_row(params![machine.0, to_ms(now).saturating_add(STATES_AHEAD_MS)], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get(2)?))
                })
                .optional()?;
            row.map(|(since, state, reason)| {
                Ok(StateChange { machine, at: from_ms(since)?, state: parse_state(&state)?, reason })
            })
            .transpose()
        })
    }

    /// The state timeline of a machine clipped to `[from_ms, to_ms)`: the state in force at
    /// `from_ms` and every change after it. Time before the first known state is not covered.
    pub fn state_spans(&self, machine: MachineId, from_ms: i64, to_ms: i64) -> Result<Vec<StateSpan>> {
        self.state_timeline(machine, from_ms, to_ms, true)
    }

    /// [`Store::state_spans`], but the state in force at `from_ms` spans from when it began: a
    /// stop under way at `from_ms` shows as begun before it (the OEE's failures count stops by
    /// the period they began in).
    pub fn state_spans_from_their_start(
        &self,
        machine: MachineId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StateSpan>> {
        self.state_timeline(machine, from_ms, to_ms, false)
    }

    fn state_timeline(
        &self,
        machine: MachineId,
        from_ms: i64,
        to_ms: i64,
        clip: bool,
    ) -> Result<Vec<StateSpan>> {
        self.read(|conn| {
            let mut changes: Vec<(i64, MachineState, Option<String>)> = Vec::new();
            let before = conn
                .prepare_cached(
                    "SELECT since_ms, state, reason FROM machine_states WHERE machine_id = ?1 AND since_ms <= ?2
                     ORDER BY since_ms DESC LIMIT 1",
                )?
                .query_row(params![machine.0, from_ms], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?))
                })
                .optional()?;
            if let Some((since, state, reason)) = before {
                changes.push((since, parse_state(&state)?, reason));
            }
            let mut statement = conn.prepare_cached(
                "SELECT since_ms, state, reason FROM machine_states WHERE machine_id = ?1 AND since_ms > ?2
                 AND since_ms < ?3 ORDER BY since_ms",
            )?;
            let mut rows = statement.query(params![machine.0, from_ms, to_ms])?;
            while let Some(row) = rows.next()? {
                changes.push((row.get(0)?, parse_state(&row.get::<_, String>(1)?)?, row.get(2)?));
            }
            let mut spans = Vec::with_capacity(changes.len());
            for (i, (since, state, reason)) in changes.iter().enumerate() {
                let end = changes.get(i + 1).map_or(to_ms, |next| next.0);
                let start = if clip { (*since).max(from_ms) } else { *since };
                if start < end {
                    spans.push(StateSpan { start_ms: start, end_ms: end, state: *state, reason: reason.clone() });
                }
            }
            Ok(spans)
        })
    }

    /// When `machine` first reported a state, if it ever did: where its state timeline begins,
    /// however long ago (one lookup in the timeline's primary key).
    pub fn first_state_at(&self, machine: MachineId) -> Result<Option<model::Timestamp>> {
        self.read(|conn| {
            let first: Option<i64> = conn
                .prepare_cached("SELECT min(since_ms) FROM machine_states WHERE machine_id = ?1")?
                .query_row([machine.0], |row| row.get(0))?;
            first.map(from_ms).transpose()
        })
    }

    /// Stores Sparkplug B sessions' births (`(group, edge node, births)`), or forgets them where
    /// `births` is `None` (the node died).
    pub fn save_sparkplug_sessions(&self, sessions: &[(String, String, Option<String>)]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for (group, node, births) in sessions {
                match births {
                    Some(births) => tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO sparkplug_sessions (group_code, edge_node, births) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![group, node, births])?,
                    None => tx
                        .prepare_cached("DELETE FROM sparkplug_sessions WHERE group_code = ?1 AND edge_node = ?2")?
                        .execute(params![group, node])?,
                };
            }
            Ok(())
        })
    }

    /// The Sparkplug B sessions stored: `(group, edge node, births)`.
    pub fn sparkplug_sessions(&self) -> Result<Vec<(String, String, String)>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT group_code, edge_node, births FROM sparkplug_sessions ORDER BY 1, 2")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Records finished units; the same units at the same instant again (a retry) are recorded
    /// once. Whether they were recorded now (`false`: they had been).
    pub fn record_production(&self, record: &ProductionRecord) -> Result<bool> {
        self.write(|tx| {
            crate::require(tx, "machines", record.machine.0, "machine")?;
            // The same units at the same instant again: a client's retry, recorded once.
            let resent = tx
                .prepare_cached(
                    "SELECT 1 FROM production WHERE machine_id = ?1 AND ts_ms = ?2 AND operation_id IS ?3
                     AND good = ?4 AND scrap = ?5",
                )?
                .exists(params![
                    record.machine.0,
                    to_ms(record.at),
                    record.operation.map(|o| o.0),
                    record.good,
                    record.scrap
                ])?;
            if !resent {
                insert_production(tx, record)?;
            }
            Ok(!resent)
        })
    }

    /// The setup family of the operation each of `machines` last produced units for (by the time
    /// of its count): what the machine is set up for now, as far as the store knows. Machines that
    /// never produced for an operation are left out.
    pub fn last_setup_families(&self, machines: &[MachineId]) -> Result<HashMap<MachineId, String>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT o.setup_family FROM production p JOIN operations o ON o.id = p.operation_id
                 WHERE p.machine_id = ?1 AND p.operation_id IS NOT NULL ORDER BY p.ts_ms DESC LIMIT 1",
            )?;
            let mut out = HashMap::new();
            for machine in machines {
                if let Some(family) = statement.query_row(params![machine.0], |row| row.get(0)).optional()? {
                    out.insert(*machine, family);
                }
            }
            Ok(out)
        })
    }

    /// The scrap reasons given on a machine, most recently used first, at most `limit`: what its
    /// station offers to pick.
    pub fn scrap_reasons_used(&self, machine: MachineId, limit: u32) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT scrap_reason FROM production WHERE machine_id = ?1 AND scrap_reason IS NOT NULL
                 GROUP BY scrap_reason ORDER BY max(ts_ms) DESC LIMIT ?2",
            )?;
            let reasons = statement.query_map(params![machine.0, limit], |row| row.get(0))?;
            Ok(reasons.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// A machine's first production record ever (of several at that time, the first stored), if
    /// it has one: the units it was first counted for, however long ago (found through the
    /// machine's index of records by time).
    pub fn first_production(&self, machine: MachineId) -> Result<Option<ProductionRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(
                    "SELECT ts_ms, operation_id, good, scrap, ideal_unit_seconds, scrap_reason FROM production
                     WHERE machine_id = ?1 ORDER BY ts_ms, id LIMIT 1",
                )?
                .query_row([machine.0], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                })
                .optional()?;
            row.map(|(at, operation, good, scrap, ideal_unit_seconds, scrap_reason)| {
                Ok(ProductionRecord {
                    machine,
                    at: from_ms(at)?,
                    operation: operation.map(OperationId),
                    good,
                    scrap,
                    ideal_unit_seconds,
                    scrap_reason,
                })
            })
            .transpose()
        })
    }

    /// Production records of a machine in `[from_ms, to_ms)`, oldest first.
    pub fn production(
        &self,
        machine: MachineId,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<ProductionRecord>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT ts_ms, operation_id, good, scrap, ideal_unit_seconds, scrap_reason FROM production
                 WHERE machine_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 ORDER BY ts_ms",
            )?;
            let mut rows = statement.query(params![machine.0, start_ms, end_ms])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(ProductionRecord {
                    machine,
                    at: from_ms(row.get(0)?)?,
                    operation: row.get::<_, Option<i64>>(1)?.map(OperationId),
                    good: row.get(2)?,
                    scrap: row.get(3)?,
                    ideal_unit_seconds: row.get(4)?,
                    scrap_reason: row.get(5)?,
                });
            }
            Ok(out)
        })
    }
}

/// Metrics a machine may have at most: a device that invents names (a counter in the name, say)
/// must not grow the store and the machine page without end.
pub const MAX_METRICS_PER_MACHINE: u64 = 1000;

/// What [`series_id`] found.
enum Series {
    Id(i64),
    UnknownMachine,
    TooMany,
}

/// The id of a machine's series for `metric`, created on first use while the machine has fewer
/// than [`MAX_METRICS_PER_MACHINE`]. Ids are cached by machine and name (looked up without
/// allocating): a series is never renamed, only deleted with its machine, which clears the cache.
fn series_id(tx: &Connection, cache: &mut SeriesCache, machine: MachineId, metric: &str) -> Result<Series> {
    if let Some(id) = cache.get(&machine).and_then(|names| names.get(metric)) {
        return Ok(Series::Id(*id));
    }
    let found: Option<i64> = tx
        .prepare_cached("SELECT id FROM series WHERE machine_id = ?1 AND metric = ?2")?
        .query_row(params![machine.0, metric], |row| row.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            let exists = tx.prepare_cached("SELECT 1 FROM machines WHERE id = ?1")?.exists([machine.0])?;
            if !exists {
                return Ok(Series::UnknownMachine);
            }
            let count: u64 = tx
                .prepare_cached("SELECT count(*) FROM series WHERE machine_id = ?1")?
                .query_row([machine.0], |row| row.get(0))?;
            if count >= MAX_METRICS_PER_MACHINE {
                return Ok(Series::TooMany);
            }
            tx.prepare_cached("INSERT INTO series (machine_id, metric) VALUES (?1, ?2)")?
                .execute(params![machine.0, metric])?;
            tx.last_insert_rowid()
        }
    };
    // A rolled-back insert would leave a stale id here; `Store::write` clears the cache whenever
    // a transaction fails.
    cache.entry(machine).or_default().insert(metric.to_string(), id);
    Ok(Series::Id(id))
}

/// Inserts a production record; an operation id that does not exist (any more) is stored as none.
fn insert_production(tx: &Connection, record: &ProductionRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO production (machine_id, ts_ms, operation_id, good, scrap, ideal_unit_seconds, scrap_reason)
         SELECT ?1, ?2, (SELECT id FROM operations WHERE id = ?3), ?4, ?5, ?6, ?7",
    )?
    .execute(params![
        record.machine.0,
        to_ms(record.at),
        record.operation.map(|o| o.0),
        record.good,
        record.scrap,
        record.ideal_unit_seconds,
        record.scrap_reason
    ])?;
    Ok(())
}

/// Every machine's count rule, by machine.
fn count_rules(tx: &Connection) -> Result<HashMap<MachineId, model::CountRule>> {
    let mut statement = tx.prepare_cached(
        "SELECT machine_id, good_metric, scrap_metric, ideal_unit_seconds FROM machine_count_rules",
    )?;
    let mut rows = statement.query([])?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next()? {
        let rule = model::CountRule {
            good_metric: row.get(1)?,
            scrap_metric: row.get(2)?,
            ideal_unit_seconds: row.get(3)?,
        };
        out.insert(MachineId(row.get(0)?), rule);
    }
    Ok(out)
}

/// Counts what a counter reading, just stored in `series`, adds since the series' previous
/// reading, toward the operation running on the machine (the first by id when several are) or
/// for the machine alone. Only the series' newest reading counts: a late one (older than one
/// already stored) was covered by the rise to that newer reading. The first reading of a series
/// only sets the baseline.
fn count_units(
    tx: &Connection,
    rule: &model::CountRule,
    series: i64,
    reading: &Reading,
    scrap: bool,
) -> Result<Option<CountedUnits>> {
    let ts = to_ms(reading.at);
    // The series' newest other readings: a newer one makes this one late, an older one is the
    // baseline, and the one before that tells whether the baseline was garbled.
    let others: Vec<(i64, f64)> = tx
        .prepare_cached(
            "SELECT ts_ms, value FROM readings WHERE series_id = ?1 AND ts_ms != ?2 ORDER BY ts_ms DESC LIMIT 2",
        )?
        .query_map(params![series, ts], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let Some(&(other_ts, previous)) = others.first() else { return Ok(None) };
    if other_ts > ts {
        return Ok(None);
    }
    let before = others.get(1).map(|&(_, value)| value);
    let units = model::CountRule::units_after(before, previous, reading.value);
    let units = units - confirm_units(tx, reading.machine, ts, units, scrap)?;
    if units == 0 {
        return Ok(None);
    }
    let (good, scrap) = if scrap { (0, units) } else { (units, 0) };
    let running: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM operations WHERE status = 'running' AND machine_id = ?1 ORDER BY id LIMIT 1",
        )?
        .query_row([reading.machine.0], |row| row.get(0))
        .optional()?;
    match running.map(OperationId) {
        // Toward the running lot, as its machine's own report would count.
        Some(operation) => crate::orders::apply_operation_event(
            tx,
            &OperationEvent {
                operation,
                machine: reading.machine,
                at: reading.at,
                kind: OperationEventKind::Produced { good, scrap, ideal_unit_ms: None },
                checked: false,
                counted_before: None,
                scrap_reason: None,
            },
        ),
        None => {
            let record = ProductionRecord {
                machine: reading.machine,
                at: reading.at,
                operation: None,
                good,
                scrap,
                ideal_unit_seconds: rule.ideal_unit_seconds.unwrap_or(0.0),
                scrap_reason: None,
            };
            insert_production(tx, &record)?;
            Ok(Some(CountedUnits {
                machine: reading.machine,
                at: reading.at,
                operation: None,
                order: None,
                good,
                scrap,
            }))
        }
    }
}

/// Records `change` in the machine's timeline, unless it says what the timeline already says at
/// that time: the same state, with no reason or the same one (a gateway repeating its state, or
/// a will's offline for a machine already offline). Such a repeat would split the span, and
/// the part after it would lose the reason the downtime Pareto shows.
fn insert_state(tx: &Connection, change: &StateChange) -> Result<()> {
    let at = to_ms(change.at);
    let before: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "SELECT state, reason FROM machine_states WHERE machine_id = ?1 AND since_ms <= ?2
             ORDER BY since_ms DESC LIMIT 1",
        )?
        .query_row(params![change.machine.0, at], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let repeat = before.is_some_and(|(state, reason)| {
        state == change.state.as_str() && (change.reason.is_none() || change.reason == reason)
    });
    if !repeat {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO machine_states (machine_id, since_ms, state, reason) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![change.machine.0, at, change.state.as_str(), change.reason])?;
    }
    Ok(())
}

/// How long after a finish at the station a machine's counter may still report the units that
/// the finish added. A counter read every few minutes reports units made before the finish only
/// after it; within this window its rises confirm those units before they count for anything
/// else (the machine, or the next operation once that runs).
pub(crate) const CONFIRM_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Notes that a finish on `machine` at `at` added `good` and `scrap` units, for the machine's
/// counters to confirm within [`CONFIRM_WINDOW_MS`]. Nothing to note when the machine has no
/// count rule, and no scrap when its rule has no scrap counter. Units still waiting from an
/// earlier finish inside its window add up.
pub(crate) fn await_confirmation(
    tx: &Connection,
    machine: MachineId,
    at: model::Timestamp,
    good: u32,
    scrap: u32,
) -> Result<()> {
    let rule: Option<Option<String>> = tx
        .prepare_cached("SELECT scrap_metric FROM machine_count_rules WHERE machine_id = ?1")?
        .query_row([machine.0], |row| row.get(0))
        .optional()?;
    let Some(scrap_metric) = rule else { return Ok(()) };
    let scrap = if scrap_metric.is_some() { scrap } else { 0 };
    if good == 0 && scrap == 0 {
        return Ok(());
    }
    let at = to_ms(at);
    tx.prepare_cached(
        "INSERT INTO unconfirmed_counts (machine_id, good, scrap, until_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (machine_id) DO UPDATE SET
             good = excluded.good + CASE WHEN until_ms >= ?5 THEN good ELSE 0 END,
             scrap = excluded.scrap + CASE WHEN until_ms >= ?5 THEN scrap ELSE 0 END,
             until_ms = excluded.until_ms",
    )?
    .execute(params![machine.0, good, scrap, at + CONFIRM_WINDOW_MS, at])?;
    Ok(())
}

/// How many of a counter rise's `units` (scrap or good), read at `ts` on `machine`, confirm units
/// a finish already added (`await_confirmation`); those are taken off what is still waiting.
fn confirm_units(tx: &Connection, machine: MachineId, ts: i64, units: u32, scrap: bool) -> Result<u32> {
    if units == 0 {
        return Ok(0);
    }
    let waiting: Option<i64> = tx
        .prepare_cached(
            "SELECT CASE WHEN ?3 THEN scrap ELSE good END FROM unconfirmed_counts
             WHERE machine_id = ?1 AND until_ms >= ?2",
        )?
        .query_row(params![machine.0, ts, scrap], |row| row.get(0))
        .optional()?;
    let Some(waiting) = waiting.filter(|&waiting| waiting > 0) else { return Ok(0) };
    let confirmed = u32::try_from(waiting).unwrap_or(u32::MAX).min(units);
    tx.prepare_cached(
        "UPDATE unconfirmed_counts SET good = good - CASE WHEN ?3 THEN 0 ELSE ?2 END,
             scrap = scrap - CASE WHEN ?3 THEN ?2 ELSE 0 END
         WHERE machine_id = ?1",
    )?
    .execute(params![machine.0, confirmed, scrap])?;
    Ok(confirmed)
}

/// Series ids by machine, then metric name.
pub(crate) type SeriesCache = HashMap<MachineId, HashMap<String, i64>>;

impl Store {
    /// Sets (or replaces) the rule that derives a machine's state from a metric.
    pub fn set_state_rule(&self, machine: MachineId, rule: &model::StateRule) -> Result<()> {
        self.write(|tx| {
            crate::require(tx, "machines", machine.0, "machine").map_err(|_| StoreError::NotFound { entity: "machine", id: machine.0 })?;
            tx.execute(
                "INSERT OR REPLACE INTO machine_state_rules (machine_id, metric, running_above, idle_above, otherwise)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![machine.0, rule.metric, rule.running_above, rule.idle_above, rule.otherwise.as_str()],
            )?;
            Ok(())
        })
    }

    /// Removes a machine's state rule.
    pub fn delete_state_rule(&self, machine: MachineId) -> Result<()> {
        self.write(|tx| {
            let changed = tx.execute("DELETE FROM machine_state_rules WHERE machine_id = ?1", [machine.0])?;
            crate::touched(changed, "state rule of machine", machine.0)
        })
    }

    /// Sets (or replaces) the rule that derives a machine's production counts from counters.
    pub fn set_count_rule(&self, machine: MachineId, rule: &model::CountRule) -> Result<()> {
        self.write(|tx| {
            crate::require(tx, "machines", machine.0, "machine")
                .map_err(|_| StoreError::NotFound { entity: "machine", id: machine.0 })?;
            tx.execute(
                "INSERT OR REPLACE INTO machine_count_rules (machine_id, good_metric, scrap_metric, ideal_unit_seconds)
                 VALUES (?1, ?2, ?3, ?4)",
                params![machine.0, rule.good_metric, rule.scrap_metric, rule.ideal_unit_seconds],
            )?;
            Ok(())
        })
    }

    /// Removes a machine's count rule.
    pub fn delete_count_rule(&self, machine: MachineId) -> Result<()> {
        self.write(|tx| {
            let changed = tx.execute("DELETE FROM machine_count_rules WHERE machine_id = ?1", [machine.0])?;
            crate::touched(changed, "count rule of machine", machine.0)
        })
    }

    /// A machine's count rule, if it has one.
    pub fn count_rule(&self, machine: MachineId) -> Result<Option<model::CountRule>> {
        self.read(|conn| Ok(count_rules(conn)?.remove(&machine)))
    }

    /// A machine's state rule, if it has one.
    pub fn state_rule(&self, machine: MachineId) -> Result<Option<model::StateRule>> {
        Ok(self.state_rules()?.into_iter().find(|(m, _)| *m == machine).map(|(_, rule)| rule))
    }

    /// Every machine's state rule.
    pub fn state_rules(&self) -> Result<Vec<(MachineId, model::StateRule)>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT machine_id, metric, running_above, idle_above, otherwise FROM machine_state_rules ORDER BY machine_id",
            )?;
            let mut rows = statement.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push((
                    MachineId(row.get(0)?),
                    model::StateRule {
                        metric: row.get(1)?,
                        running_above: row.get(2)?,
                        idle_above: row.get(3)?,
                        otherwise: parse_state(&row.get::<_, String>(4)?)?,
                    },
                ));
            }
            Ok(out)
        })
    }
}

/// The detail a stepped read takes rows from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Raw,
    Minute,
    Hour,
}

/// Where a stepped read of one series finds its rows. Each step takes the coarsest rows that fit
/// in it; the parts of a minute or hour at either end of the range come from the finer level
/// wherever that holds every reading of the minute or hour, so no reading outside the range
/// counts. Only where the finer rows were pruned does the whole minute's or hour's row stand in.
struct Levels<'c> {
    conn: &'c Connection,
    series: i64,
    /// The oldest raw reading of the series; `i64::MAX` without one.
    raw_from: i64,
    /// The oldest minute roll-up; `i64::MAX` without one (or when not needed).
    minutes_from: i64,
}

impl Levels<'_> {
    /// Folds the rows of `[from_ms, to_ms)` into `steps`; false once the steps are complete.
    fn fold(&self, steps: &mut Steps, level: Level, from_ms: i64, to_ms: i64) -> rusqlite::Result<bool> {
        if from_ms >= to_ms {
            return Ok(true);
        }
        let (width, finer, table, key) = match level {
            Level::Raw => {
                let mut raw = self.conn.prepare_cached(
                    "SELECT ts_ms, value FROM readings WHERE series_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
                     ORDER BY ts_ms",
                )?;
                return fold_into(steps, raw.query(params![self.series, from_ms, to_ms])?, |row| {
                    let (ts_ms, value): (i64, f64) = (row.get(0)?, row.get(1)?);
                    Ok((ts_ms, Aggregate::one(ts_ms, value)))
                });
            }
            Level::Minute => (ROLLUP_MS, Level::Raw, "rollups_1m", "minute_ms"),
            Level::Hour => (HOUR_ROLLUP_MS, Level::Minute, "rollups_1h", "hour_ms"),
        };
        let floor = |ms: i64| ms.div_euclid(width) * width;
        let ceil = |ms: i64| floor(ms + width - 1);
        let head_finer =
            from_ms.rem_euclid(width) != 0 && self.finer_covers(level, floor(from_ms), from_ms)?;
        let tail_finer =
            to_ms.rem_euclid(width) != 0 && self.finer_covers(level, floor(to_ms), floor(to_ms))?;
        let rows_from = if head_finer { ceil(from_ms) } else { floor(from_ms) };
        let rows_to = if tail_finer { floor(to_ms) } else { ceil(to_ms) };
        let head_to = if head_finer { ceil(from_ms).min(to_ms) } else { from_ms };
        if head_finer && !self.fold(steps, finer, from_ms, head_to)? {
            return Ok(false);
        }
        if rows_from < rows_to {
            let mut rows = self.conn.prepare_cached(&format!(
                "SELECT {key}, min, max, sum, count, last, last_ts_ms FROM {table}
                 WHERE series_id = ?1 AND {key} >= ?2 AND {key} < ?3 ORDER BY {key}"
            ))?;
            let rows = rows.query(params![self.series, rows_from, rows_to])?;
            let going = fold_into(steps, rows, |row| {
                let aggregate = Aggregate {
                    min: row.get(1)?,
                    max: row.get(2)?,
                    sum: row.get(3)?,
                    count: row.get(4)?,
                    last: row.get(5)?,
                    last_ts: row.get(6)?,
                };
                Ok((row.get(0)?, aggregate))
            })?;
            if !going {
                return Ok(false);
            }
        }
        if tail_finer {
            return self.fold(steps, finer, floor(to_ms).max(head_to), to_ms);
        }
        Ok(true)
    }

    /// Whether the level finer than `level` holds every reading from `part_from` to the end of
    /// the `level` row that starts at `unit`. It does when it is kept from `part_from` on. When
    /// its oldest row lies inside the unit, that is either where the series began (the finer rows
    /// hold the whole unit) or where older rows were pruned (they do not): the finer rows then
    /// cover the unit only if they count as many readings as the unit's own row.
    fn finer_covers(&self, level: Level, unit: i64, part_from: i64) -> rusqlite::Result<bool> {
        let (width, finer_from, coarse_sql, finer_sql) = match level {
            Level::Raw => return Ok(true),
            Level::Minute => (
                ROLLUP_MS,
                self.raw_from,
                "SELECT count FROM rollups_1m WHERE series_id = ?1 AND minute_ms = ?2",
                "SELECT count(*) FROM readings WHERE series_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            ),
            Level::Hour => (
                HOUR_ROLLUP_MS,
                self.minutes_from,
                "SELECT count FROM rollups_1h WHERE series_id = ?1 AND hour_ms = ?2",
                "SELECT coalesce(sum(count), 0) FROM rollups_1m
                 WHERE series_id = ?1 AND minute_ms >= ?2 AND minute_ms < ?3",
            ),
        };
        if finer_from <= part_from {
            return Ok(true);
        }
        if finer_from >= unit.saturating_add(width) {
            return Ok(false);
        }
        let coarse: Option<i64> = self
            .conn
            .prepare_cached(coarse_sql)?
            .query_row(params![self.series, unit], |row| row.get(0))
            .optional()?;
        let finer: i64 = self
            .conn
            .prepare_cached(finer_sql)?
            .query_row(params![self.series, unit, unit.saturating_add(width)], |row| row.get(0))?;
        Ok(finer >= coarse.unwrap_or(0))
    }
}

/// Adds `rows` (in time order, after what `steps` holds) to `steps`; false once the steps are
/// complete, so no further rows are needed.
fn fold_into(
    steps: &mut Steps,
    mut rows: rusqlite::Rows<'_>,
    decode: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<(i64, Aggregate)>,
) -> rusqlite::Result<bool> {
    while let Some(row) = rows.next()? {
        if !steps.add(decode(row)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Folds rows read in time order (each a reading or a roll-up row, at its time) into steps of
/// `step` milliseconds (each starting at a multiple of the step), keeping at most `limit` steps.
struct Steps {
    step: i64,
    /// Where steps start: this, and whole steps from it.
    origin: i64,
    limit: usize,
    points: Vec<SeriesPoint>,
    /// The step being filled: its start and what it holds so far.
    filling: Option<(i64, Aggregate)>,
}

impl Steps {
    fn new(step: i64, origin: i64, limit: u32) -> Self {
        let step = step.max(1);
        Steps {
            step,
            origin: origin.rem_euclid(step),
            limit: limit as usize,
            points: Vec::new(),
            filling: None,
        }
    }

    /// Adds a row; false once `limit` steps are complete and the row starts another.
    fn add(&mut self, (ts_ms, row): (i64, Aggregate)) -> bool {
        let start = (ts_ms - self.origin).div_euclid(self.step) * self.step + self.origin;
        if let Some((at, filling)) = &mut self.filling
            && *at == start
        {
            filling.merge(&row);
            return true;
        }
        self.close();
        if self.points.len() >= self.limit {
            return false;
        }
        self.filling = Some((start, row));
        true
    }

    /// Ends the step being filled.
    fn close(&mut self) {
        if let Some((ts_ms, step)) = self.filling.take() {
            self.points.push(SeriesPoint {
                ts_ms,
                min: step.min,
                max: step.max,
                avg: step.sum / step.count.max(1) as f64,
                last: step.last,
                count: step.count,
            });
        }
    }

    fn finish(mut self) -> Vec<SeriesPoint> {
        self.close();
        self.points
    }
}

fn parse_state(text: &str) -> Result<MachineState> {
    MachineState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown machine state {text:?}")))
}
