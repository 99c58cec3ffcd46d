//! Alarm rules and alarms: what the alarm worker raises and clears, and what people acknowledge.

use model::alarm::{
    Alarm, AlarmCause, AlarmRule, AlarmStatus, Condition, NewAlarmRule, Severity, Transition,
};
use model::{FieldError, MachineId, SiteId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{
    Page, PageRequest, Result, Store, StoreError, constraint, from_ms, page, require, to_ms, touched,
};

/// Which alarms a list returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmFilter {
    /// Only alarms in this status.
    pub status: Option<AlarmStatus>,
    /// `Some(true)`: only open alarms, not cleared, or cleared before anyone acknowledged them;
    /// `Some(false)`: only the others (cleared and acknowledged).
    pub open: Option<bool>,
    /// Only alarms of this machine.
    pub machine: Option<MachineId>,
    /// Only alarms of this site's machines.
    pub site: Option<SiteId>,
    /// Only alarms of this severity.
    pub severity: Option<Severity>,
    /// Only alarms up at some time from this time on: not cleared before it.
    pub from: Option<Timestamp>,
    /// Only alarms up at some time before this time: their first occurrence began before it.
    pub to: Option<Timestamp>,
    /// The order of the list.
    pub sort: AlarmSort,
    /// With [`AlarmSort::Latest`] and a cursor: the `raised_at` (Unix ms) of the alarm at the
    /// cursor, so the list goes on from (raised, id) however that alarm has changed since.
    pub cursor_raised_ms: Option<i64>,
}

/// The order of an alarm list; the cursor is always the last alarm's id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlarmSort {
    /// Newest first by when the alarm was first raised (by id).
    #[default]
    Created,
    /// By the latest occurrence first ([`Alarm::raised_at`]: an alarm that came back moves up),
    /// then newest first.
    Latest,
}

impl Store {
    /// Creates an alarm rule.
    pub fn create_alarm_rule(&self, new: &NewAlarmRule) -> Result<AlarmRule> {
        self.write(|tx| {
            require_watched(tx, new)?;
            let (kind, param) = encode_condition(&new.condition);
            tx.execute(
                "INSERT INTO alarm_rules (name, machine_id, metric, kind, param, for_seconds, severity, enabled,
                 deadband, site_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    new.name,
                    new.machine_id.map(|m| m.0),
                    new.metric,
                    kind,
                    param,
                    new.for_seconds,
                    new.severity.as_str(),
                    new.enabled,
                    new.deadband,
                    new.site_id.map(|s| s.0)
                ],
            )
            .map_err(constraint)?;
            Ok(AlarmRule { id: tx.last_insert_rowid(), rule: new.clone() })
        })
    }

    /// Replaces an alarm rule. A rule disabled no longer watches its condition: its alarms are
    /// cleared at `at`, and returned.
    pub fn update_alarm_rule(
        &self,
        id: i64,
        new: &NewAlarmRule,
        at: Timestamp,
    ) -> Result<(AlarmRule, Vec<Alarm>)> {
        self.write(|tx| {
            require_watched(tx, new)?;
            let (kind, param) = encode_condition(&new.condition);
            let changed = tx.execute(
                "UPDATE alarm_rules SET name = ?2, machine_id = ?3, metric = ?4, kind = ?5, param = ?6,
                 for_seconds = ?7, severity = ?8, enabled = ?9, deadband = ?10, site_id = ?11 WHERE id = ?1",
                params![
                    id,
                    new.name,
                    new.machine_id.map(|m| m.0),
                    new.metric,
                    kind,
                    param,
                    new.for_seconds,
                    new.severity.as_str(),
                    new.enabled,
                    new.deadband,
                    new.site_id.map(|s| s.0)
                ],
            )?;
            touched(changed, "alarm rule", id)?;
            let cleared = if new.enabled { Vec::new() } else { clear_rule_alarms(tx, id, at)? };
            Ok((AlarmRule { id, rule: new.clone() }, cleared))
        })
    }

    /// Deletes an alarm rule; the alarms it raised stay in the history, those still holding
    /// cleared at `at` (and returned), since nothing watches them any more.
    pub fn delete_alarm_rule(&self, id: i64, at: Timestamp) -> Result<Vec<Alarm>> {
        self.write(|tx| {
            let cleared = clear_rule_alarms(tx, id, at)?;
            touched(tx.execute("DELETE FROM alarm_rules WHERE id = ?1", [id])?, "alarm rule", id)?;
            Ok(cleared)
        })
    }

    /// One rule.
    pub fn alarm_rule(&self, id: i64) -> Result<AlarmRule> {
        self.read(|conn| {
            conn.prepare_cached(&format!("{RULE_SELECT} WHERE id = ?1"))?
                .query_row([id], rule_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "alarm rule", id })?
        })
    }

    /// Every rule, by id (factories have dozens, not thousands).
    pub fn alarm_rules(&self) -> Result<Vec<AlarmRule>> {
        self.read(|conn| {
            conn.prepare_cached(&format!("{RULE_SELECT} ORDER BY id"))?
                .query_map([], rule_row)?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()?
        })
    }

    /// Stores a newly raised alarm.
    pub fn raise_alarm(
        &self,
        rule_id: i64,
        machine: MachineId,
        at: Timestamp,
        value: Option<f64>,
        message: &str,
    ) -> Result<Alarm> {
        self.raise_alarm_fired(rule_id, machine, at, at, value, message)
    }

    /// Like [`Store::raise_alarm`] for a condition that began at `since` and fired (held past its
    /// delay) at `fired`.
    pub fn raise_alarm_fired(
        &self,
        rule_id: i64,
        machine: MachineId,
        since: Timestamp,
        fired: Timestamp,
        value: Option<f64>,
        message: &str,
    ) -> Result<Alarm> {
        self.write(|tx| raise_in(tx, rule_id, machine, since, fired, value, message))
    }

    /// Clears the open alarm of `rule_id` on `machine`, if there is one.
    pub fn clear_alarm(&self, rule_id: i64, machine: MachineId, at: Timestamp) -> Result<Option<Alarm>> {
        self.write(|tx| clear_in(tx, rule_id, machine, at))
    }

    /// Stores what the alarm engine decided, in order, in one transaction: an alarm storm costs
    /// one write (and one sync to disk) per batch, not one per alarm. Answers each change's alarm
    /// (`None` for a clear with nothing open, or a raise whose rule was deleted meanwhile).
    pub fn apply_alarm_transitions(&self, transitions: &[Transition]) -> Result<Vec<Option<Alarm>>> {
        self.write(|tx| {
            let mut out = Vec::with_capacity(transitions.len());
            for transition in transitions {
                out.push(match transition {
                    Transition::Raise { rule_id, machine, at, fired, value, message } => {
                        match raise_in(tx, *rule_id, *machine, *at, *fired, *value, message) {
                            Ok(alarm) => Some(alarm),
                            Err(StoreError::NotFound { .. }) => None,
                            Err(error) => return Err(error),
                        }
                    }
                    Transition::Clear { rule_id, machine, at } => clear_in(tx, *rule_id, *machine, *at)?,
                });
            }
            Ok(out)
        })
    }

    /// Records that `by` has seen an alarm that needs it (`Alarm::needs_acknowledgement`): an
    /// active one becomes `acknowledged`, a cleared one stays `cleared`.
    pub fn acknowledge_alarm(&self, id: i64, by: &str, at: Timestamp, note: Option<&str>) -> Result<Alarm> {
        self.write(|tx| {
            let alarm = read_alarm(tx, id)?;
            if !alarm.needs_acknowledgement() {
                return Err(StoreError::Conflict {
                    field: Some("status".into()),
                    message: format!(
                        "the alarm was already acknowledged by {}",
                        alarm.acknowledged_by.as_deref().unwrap_or("someone")
                    ),
                });
            }
            tx.execute(
                "UPDATE alarms SET status = CASE status WHEN 'active' THEN 'acknowledged' ELSE status END,
                 acknowledged_by = ?2, acknowledged_ms = ?3, ack_note = ?4 WHERE id = ?1",
                params![id, by, to_ms(at), note],
            )?;
            read_alarm(tx, id)
        })
    }

    /// Records that `by` has seen every alarm that cleared before anyone acknowledged it, of
    /// `machine` or of all machines (of `site` only, when given); returns them, oldest first.
    pub fn acknowledge_cleared_alarms(
        &self,
        machine: Option<MachineId>,
        site: Option<SiteId>,
        by: &str,
        at: Timestamp,
    ) -> Result<Vec<Alarm>> {
        self.write(|tx| {
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM alarms WHERE status = 'cleared' AND acknowledged_ms IS NULL
                     AND (?1 IS NULL OR machine_id = ?1)
                     AND (?2 IS NULL OR machine_id IN (SELECT id FROM machines WHERE site_id = ?2))
                     ORDER BY id",
                )?
                .query_map(params![machine.map(|m| m.0), site.map(|s| s.0)], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut acknowledge = tx.prepare_cached(
                "UPDATE alarms SET acknowledged_by = ?2, acknowledged_ms = ?3 WHERE id = ?1",
            )?;
            ids.into_iter()
                .map(|id| {
                    acknowledge.execute(params![id, by, to_ms(at)])?;
                    read_alarm(tx, id)
                })
                .collect()
        })
    }

    /// One alarm.
    pub fn alarm(&self, id: i64) -> Result<Alarm> {
        self.read(|conn| read_alarm(conn, id))
    }

    /// Alarms, newest first.
    pub fn alarms(&self, filter: &AlarmFilter, request: PageRequest) -> Result<Page<Alarm>> {
        let (after, order) = match filter.sort {
            AlarmSort::Created => ("(?1 IS NULL OR id < ?1)", "id DESC"),
            AlarmSort::Latest if request.after.is_some() && filter.cursor_raised_ms.is_none() => {
                return Err(StoreError::Invalid(vec![FieldError::new(
                    "cursor",
                    "a cursor of a list by latest occurrence carries the time it was raised",
                )]));
            }
            AlarmSort::Latest => ("(?1 IS NULL OR (raised_ms, id) < (?7, ?1))", "raised_ms DESC, id DESC"),
        };
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "{ALARM_SELECT} WHERE {after} AND (?2 IS NULL OR status = ?2)
                     AND (?3 IS NULL OR ?3 = {OPEN_ALARM})
                     AND (?4 IS NULL OR machine_id = ?4) AND (?6 IS NULL OR severity = ?6)
                     AND (?8 IS NULL OR cleared_ms IS NULL OR cleared_ms >= ?8)
                     AND (?9 IS NULL OR coalesce(first_raised_ms, raised_ms) < ?9)
                     AND (?10 IS NULL OR machine_id IN (SELECT id FROM machines WHERE site_id = ?10))
                     ORDER BY {order} LIMIT ?5"
                ))?
                .query_map(
                    params![
                        request.after,
                        filter.status.map(AlarmStatus::as_str),
                        filter.open,
                        filter.machine.map(|m| m.0),
                        request.limit + 1,
                        filter.severity.map(Severity::as_str),
                        filter.cursor_raised_ms,
                        filter.from.map(to_ms),
                        filter.to.map(to_ms),
                        filter.site.map(|s| s.0),
                    ],
                    alarm_row,
                )?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()??;
            Ok(page(rows, request.limit, |alarm| alarm.id))
        })
    }

    /// The `limit` most urgent open alarms (see [`AlarmFilter::open`]) and how many are open:
    /// those whose condition still holds before those that cleared unseen, then by severity
    /// (critical first), then newest first.
    pub fn most_urgent_alarms(&self, limit: u32) -> Result<(Vec<Alarm>, u64)> {
        self.read(|conn| {
            let alarms = conn
                .prepare_cached(&format!(
                    "{ALARM_SELECT} WHERE {OPEN_ALARM}
                     ORDER BY status = 'cleared',
                         CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, id DESC
                     LIMIT ?1"
                ))?
                .query_map([limit], alarm_row)?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()??;
            let open: u64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM alarms WHERE {OPEN_ALARM}"))?
                .query_row([], |row| row.get(0))?;
            Ok((alarms, open))
        })
    }

    /// Open alarms (not cleared, or cleared before anyone acknowledged them) by severity, every
    /// severity listed.
    pub fn open_alarm_counts(&self) -> Result<Vec<(Severity, u64)>> {
        self.read(|conn| {
            let mut counts: Vec<(Severity, u64)> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT severity, count(*) FROM alarms WHERE {OPEN_ALARM} GROUP BY severity"
                ))?
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (severity, count) in rows {
                if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == severity) {
                    entry.1 = count;
                }
            }
            Ok(counts)
        })
    }

    /// The (rule, machine) pairs with an alarm not yet cleared, to restart the engine without
    /// raising them twice.
    pub fn open_alarm_keys(&self) -> Result<Vec<(i64, MachineId)>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT DISTINCT rule_id, machine_id FROM alarms WHERE status != 'cleared' AND rule_id IS NOT NULL")?
                .query_map([], |row| Ok((row.get(0)?, MachineId(row.get(1)?))))?
                .collect::<rusqlite::Result<_>>()?)
        })
    }
}

fn encode_condition(condition: &Condition) -> (&'static str, f64) {
    match *condition {
        Condition::Above { threshold } => ("above", threshold),
        Condition::Below { threshold } => ("below", threshold),
        Condition::RateAbove { per_minute } => ("rate_above", per_minute),
        Condition::Stale { seconds } => ("stale", f64::from(seconds)),
        Condition::StoppedLonger { minutes } => ("stopped_longer", f64::from(minutes)),
    }
}

fn decode_condition(kind: &str, param: f64) -> Result<Condition> {
    Ok(match kind {
        "above" => Condition::Above { threshold: param },
        "below" => Condition::Below { threshold: param },
        "rate_above" => Condition::RateAbove { per_minute: param },
        "stale" => Condition::Stale { seconds: param as u32 },
        "stopped_longer" => Condition::StoppedLonger { minutes: param as u32 },
        other => return Err(StoreError::Corrupt(format!("unknown alarm condition {other:?}"))),
    })
}

/// Clears every alarm of a rule that is not cleared yet, at `at`, and returns them. Those nobody
/// acknowledged stay open for people ([`Alarm::needs_acknowledgement`]).
fn clear_rule_alarms(tx: &Connection, rule_id: i64, at: Timestamp) -> Result<Vec<Alarm>> {
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT id FROM alarms WHERE rule_id = ?1 AND status != 'cleared' ORDER BY id")?
        .query_map([rule_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut clear =
        tx.prepare_cached("UPDATE alarms SET status = 'cleared', cleared_ms = ?2 WHERE id = ?1")?;
    ids.into_iter()
        .map(|id| {
            clear.execute(params![id, to_ms(at)])?;
            read_alarm(tx, id)
        })
        .collect()
}

/// Fails unless the machine or site a rule names exists.
fn require_watched(tx: &Connection, rule: &NewAlarmRule) -> Result<()> {
    if let Some(machine) = rule.machine_id {
        require(tx, "machines", machine.0, "machine_id")?;
    }
    if let Some(site) = rule.site_id {
        require(tx, "sites", site.0, "site_id")?;
    }
    Ok(())
}

const RULE_SELECT: &str = "SELECT id, name, machine_id, metric, kind, param, for_seconds, severity, enabled, deadband, site_id FROM alarm_rules";

fn rule_row(row: &Row<'_>) -> rusqlite::Result<Result<AlarmRule>> {
    let kind: String = row.get(4)?;
    let severity: String = row.get(7)?;
    let condition = match decode_condition(&kind, row.get(5)?) {
        Ok(condition) => condition,
        Err(e) => return Ok(Err(e)),
    };
    let Some(severity) = Severity::parse(&severity) else {
        return Ok(Err(StoreError::Corrupt(format!("unknown severity {severity:?}"))));
    };
    Ok(Ok(AlarmRule {
        id: row.get(0)?,
        rule: NewAlarmRule {
            name: row.get(1)?,
            machine_id: row.get::<_, Option<i64>>(2)?.map(MachineId),
            site_id: row.get::<_, Option<i64>>(10)?.map(SiteId),
            metric: row.get(3)?,
            condition,
            for_seconds: row.get(6)?,
            deadband: row.get(9)?,
            severity,
            enabled: row.get(8)?,
        },
    }))
}

/// The condition of an open alarm ([`AlarmFilter::open`]).
const OPEN_ALARM: &str = "(status != 'cleared' OR acknowledged_ms IS NULL)";

const ALARM_SELECT: &str = "SELECT id, rule_id, machine_id, severity, message, value, status, raised_ms,
    acknowledged_by, acknowledged_ms, cleared_ms, rule_name, metric, condition_kind, condition_param, fired_ms,
    occurrences, first_raised_ms, ack_note
    FROM alarms";

/// The rule's latest alarm on the machine, if it cleared before anyone acknowledged it (index
/// `alarms_rule_machine`). Only the latest: an older one that cleared unseen (a store from before
/// alarms came back) is not brought back over one acknowledged since.
pub(crate) const UNSEEN_ALARM: &str = "SELECT id FROM
     (SELECT id, status, acknowledged_ms FROM alarms WHERE rule_id = ?1 AND machine_id = ?2 ORDER BY id DESC LIMIT 1)
     WHERE status = 'cleared' AND acknowledged_ms IS NULL";

/// [`Store::raise_alarm_fired`] inside a transaction.
fn raise_in(
    tx: &rusqlite::Transaction<'_>,
    rule_id: i64,
    machine: MachineId,
    since: Timestamp,
    fired: Timestamp,
    value: Option<f64>,
    message: &str,
) -> Result<Alarm> {
    let at = since;
    // The rule's severity, and what it watches for the alarm's cause (`Alarm::cause`).
    let rule: (String, String, Option<String>, String, f64) = tx
        .prepare_cached("SELECT severity, name, metric, kind, param FROM alarm_rules WHERE id = ?1")?
        .query_row([rule_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
        .optional()?
        .ok_or(StoreError::NotFound { entity: "alarm rule", id: rule_id })?;
    let (severity, name, metric, kind, param) = rule;
    // Back before anyone acknowledged its last occurrence: the same alarm, active again.
    let unseen: Option<i64> = tx
        .prepare_cached(UNSEEN_ALARM)?
        .query_row(params![rule_id, machine.0], |row| row.get(0))
        .optional()?;
    if let Some(id) = unseen {
        tx.execute(
            "UPDATE alarms SET status = 'active', cleared_ms = NULL, occurrences = occurrences + 1,
                 first_raised_ms = coalesce(first_raised_ms, raised_ms), raised_ms = ?2, fired_ms = ?3,
                 severity = ?4, message = ?5, value = ?6, rule_name = ?7, metric = ?8,
                 condition_kind = ?9, condition_param = ?10
             WHERE id = ?1",
            params![id, to_ms(at), to_ms(fired.max(at)), severity, message, value, name, metric, kind, param],
        )
        .map_err(constraint)?;
        return read_alarm(tx, id);
    }
    tx.execute(
        "INSERT INTO alarms (rule_id, machine_id, severity, message, value, status, raised_ms,
                             rule_name, metric, condition_kind, condition_param, fired_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            rule_id,
            machine.0,
            severity,
            message,
            value,
            to_ms(at),
            name,
            metric,
            kind,
            param,
            to_ms(fired.max(at))
        ],
    )
    .map_err(constraint)?;
    read_alarm(tx, tx.last_insert_rowid())
}

/// [`Store::clear_alarm`] inside a transaction.
fn clear_in(
    tx: &rusqlite::Transaction<'_>,
    rule_id: i64,
    machine: MachineId,
    at: Timestamp,
) -> Result<Option<Alarm>> {
    let open: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM alarms WHERE rule_id = ?1 AND machine_id = ?2 AND status != 'cleared'
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![rule_id, machine.0], |row| row.get(0))
        .optional()?;
    let Some(id) = open else { return Ok(None) };
    // Not before it came up: readings held back (a full disk, a slow link) can arrive with times
    // older than the tick that raised a stale-data alarm.
    tx.execute(
        "UPDATE alarms SET status = 'cleared', cleared_ms = max(?2, coalesce(fired_ms, raised_ms)) WHERE id = ?1",
        params![id, to_ms(at)],
    )?;
    read_alarm(tx, id).map(Some)
}

fn read_alarm(conn: &Connection, id: i64) -> Result<Alarm> {
    conn.prepare_cached(&format!("{ALARM_SELECT} WHERE id = ?1"))?
        .query_row([id], alarm_row)
        .optional()?
        .ok_or(StoreError::NotFound { entity: "alarm", id })?
}

fn alarm_row(row: &Row<'_>) -> rusqlite::Result<Result<Alarm>> {
    let severity: String = row.get(3)?;
    let status: String = row.get(6)?;
    let (Some(severity), Some(status)) = (Severity::parse(&severity), AlarmStatus::parse(&status)) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "alarm with severity {severity:?} and status {status:?}"
        ))));
    };
    let times = (|| -> Result<_> {
        Ok((
            from_ms(row.get(7)?)?,
            row.get::<_, Option<i64>>(9)?.map(from_ms).transpose()?,
            row.get::<_, Option<i64>>(10)?.map(from_ms).transpose()?,
            row.get::<_, Option<i64>>(15)?.map(from_ms).transpose()?,
            row.get::<_, Option<i64>>(17)?.map(from_ms).transpose()?,
        ))
    })();
    let (raised_at, acknowledged_at, cleared_at, fired_at, first_raised_at) = match times {
        Ok(times) => times,
        Err(e) => return Ok(Err(e)),
    };
    let cause = match (
        row.get::<_, Option<String>>(11)?,
        row.get::<_, Option<String>>(13)?,
        row.get::<_, Option<f64>>(14)?,
    ) {
        (Some(rule_name), Some(kind), Some(param)) => match decode_condition(&kind, param) {
            Ok(condition) => Some(AlarmCause { rule_name, metric: row.get(12)?, condition }),
            Err(e) => return Ok(Err(e)),
        },
        _ => None,
    };
    Ok(Ok(Alarm {
        id: row.get(0)?,
        rule_id: row.get(1)?,
        machine_id: MachineId(row.get(2)?),
        severity,
        message: row.get(4)?,
        value: row.get(5)?,
        status,
        raised_at,
        fired_at,
        occurrences: row.get(16)?,
        first_raised_at,
        acknowledged_by: row.get(8)?,
        acknowledged_at,
        note: row.get(18)?,
        cleared_at,
        cause,
    }))
}
