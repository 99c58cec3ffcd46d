//! Sites, their calendars, lines and machines.

use model::{
    Calendar, Line, LineId, Machine, MachineId, MachineKind, NewLine, NewMachine, NewSite, Shift, Site,
    SiteId, Timestamp, Weekday,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{
    Page, PageRequest, Result, Store, StoreError, constraint, delete_row, from_ms, page, require, to_ms,
    touched,
};

impl Store {
    /// Creates a site with an empty calendar.
    pub fn create_site(&self, new: &NewSite) -> Result<Site> {
        self.changing_machine_keys(|tx| {
            tx.execute(
                "INSERT INTO sites (code, name, utc_offset, time_zone) VALUES (?1, ?2, ?3, ?4)",
                params![new.code, new.name, new.utc_offset.as_deref().unwrap_or(""), new.time_zone],
            )
            .map_err(constraint)?;
            Ok(site_from(SiteId(tx.last_insert_rowid()), new))
        })
    }

    /// Replaces a site's fields.
    pub fn update_site(&self, id: SiteId, new: &NewSite) -> Result<Site> {
        self.changing_machine_keys(|tx| {
            let changed = tx
                .execute(
                    "UPDATE sites SET code = ?2, name = ?3, utc_offset = ?4, time_zone = ?5 WHERE id = ?1",
                    params![id.0, new.code, new.name, new.utc_offset.as_deref().unwrap_or(""), new.time_zone],
                )
                .map_err(constraint)?;
            touched(changed, "site", id.0)?;
            Ok(site_from(id, new))
        })
    }

    /// Deletes a site that no line or machine refers to any more.
    pub fn delete_site(&self, id: SiteId) -> Result<()> {
        self.changing_machine_keys(|tx| delete_row(tx, "sites", "site", id.0))
    }

    /// One site.
    pub fn site(&self, id: SiteId) -> Result<Site> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, code, name, utc_offset, time_zone FROM sites WHERE id = ?1")?
                .query_row([id.0], site_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "site", id: id.0 })
        })
    }

    /// Sites in id order.
    pub fn sites(&self, request: PageRequest) -> Result<Page<Site>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, code, name, utc_offset, time_zone FROM sites WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![request.after.unwrap_or(0), request.limit + 1], site_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |site| site.id.0))
        })
    }

    /// A site's shift calendar (empty when none was set).
    pub fn calendar(&self, site: SiteId) -> Result<Calendar> {
        self.read(|conn| {
            require(conn, "sites", site.0, "site_id")
                .map_err(|_| StoreError::NotFound { entity: "site", id: site.0 })?;
            read_calendar(conn, site)
        })
    }

    /// Replaces a site's shift calendar.
    pub fn set_calendar(&self, site: SiteId, calendar: &Calendar) -> Result<()> {
        self.write(|tx| {
            require(tx, "sites", site.0, "site_id").map_err(|_| StoreError::NotFound { entity: "site", id: site.0 })?;
            tx.execute("DELETE FROM shifts WHERE site_id = ?1", [site.0])?;
            tx.execute("DELETE FROM holidays WHERE site_id = ?1", [site.0])?;
            let mut insert_shift = tx.prepare_cached(
                "INSERT INTO shifts (site_id, position, name, days, start_time, end_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (position, shift) in calendar.shifts.iter().enumerate() {
                let days: Vec<&str> = shift.days.iter().map(|day| weekday_str(*day)).collect();
                insert_shift.execute(params![site.0, position, shift.name, days.join(","), shift.start, shift.end])?;
            }
            let mut insert_holiday = tx.prepare_cached("INSERT OR IGNORE INTO holidays (site_id, day) VALUES (?1, ?2)")?;
            for day in &calendar.holidays {
                insert_holiday.execute(params![site.0, day.to_string()])?;
            }
            Ok(())
        })
    }

    /// Creates a line.
    pub fn create_line(&self, new: &NewLine) -> Result<Line> {
        self.write(|tx| {
            require(tx, "sites", new.site_id.0, "site_id")?;
            tx.execute(
                "INSERT INTO lines (site_id, code, name) VALUES (?1, ?2, ?3)",
                params![new.site_id.0, new.code, new.name],
            )
            .map_err(constraint)?;
            Ok(line_from(LineId(tx.last_insert_rowid()), new))
        })
    }

    /// Replaces a line's fields.
    pub fn update_line(&self, id: LineId, new: &NewLine) -> Result<Line> {
        self.write(|tx| {
            require(tx, "sites", new.site_id.0, "site_id")?;
            let elsewhere: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM machines WHERE line_id = ?1 AND site_id != ?2)",
                )?
                .query_row(params![id.0, new.site_id.0], |row| row.get(0))?;
            if elsewhere {
                return Err(StoreError::Conflict {
                    field: Some("site_id".into()),
                    message: "machines stand in this line at its site; move them out first".into(),
                });
            }
            let changed = tx
                .execute(
                    "UPDATE lines SET site_id = ?2, code = ?3, name = ?4 WHERE id = ?1",
                    params![id.0, new.site_id.0, new.code, new.name],
                )
                .map_err(constraint)?;
            touched(changed, "line", id.0)?;
            Ok(line_from(id, new))
        })
    }

    /// Deletes a line no machine stands in.
    pub fn delete_line(&self, id: LineId) -> Result<()> {
        self.write(|tx| delete_row(tx, "lines", "line", id.0))
    }

    /// One line.
    pub fn line(&self, id: LineId) -> Result<Line> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, site_id, code, name FROM lines WHERE id = ?1")?
                .query_row([id.0], line_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "line", id: id.0 })
        })
    }

    /// Lines in id order, optionally of one site.
    pub fn lines(&self, site: Option<SiteId>, request: PageRequest) -> Result<Page<Line>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, site_id, code, name FROM lines WHERE id > ?1 AND (?2 IS NULL OR site_id = ?2)
                     ORDER BY id LIMIT ?3",
                )?
                .query_map(
                    params![request.after.unwrap_or(0), site.map(|s| s.0), request.limit + 1],
                    line_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(page(rows, request.limit, |line| line.id.0))
        })
    }

    /// Creates a machine (retired at `now` when `new` says so).
    pub fn create_machine(&self, new: &NewMachine, now: Timestamp) -> Result<Machine> {
        self.changing_machine_keys(|tx| {
            check_machine_refs(tx, new)?;
            tx.execute(
                "INSERT INTO machines (site_id, line_id, code, name, kind, capabilities, rated_power_kw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    new.site_id.0,
                    new.line_id.map(|l| l.0),
                    new.code,
                    new.name,
                    new.kind.as_str(),
                    new.capabilities.join(","),
                    new.rated_power_kw
                ],
            )
            .map_err(constraint)?;
            let id = MachineId(tx.last_insert_rowid());
            // As stored, to the millisecond. Set apart from the insert, which the upgrade tests run
            // on stores from before the column.
            let retired_at = new.retired.unwrap_or(false).then(|| from_ms(to_ms(now))).transpose()?;
            if let Some(at) = retired_at {
                tx.execute("UPDATE machines SET retired_ms = ?2 WHERE id = ?1", params![id.0, to_ms(at)])?;
            }
            Ok(machine_from(id, new, retired_at))
        })
    }

    /// Replaces a machine's fields. Retiring it (see [`Machine::retired_at`]) at `now` takes it out
    /// of every routing step and out of the open work not running that could go to it; it is
    /// refused while work runs on it, or while it is the only machine in service left to a routing
    /// step or to open work. Putting it back in service does not put it back in routings.
    pub fn update_machine(&self, id: MachineId, new: &NewMachine, now: Timestamp) -> Result<Machine> {
        self.changing_machine_keys(|tx| {
            check_machine_refs(tx, new)?;
            let was: Option<Option<i64>> = tx
                .query_row("SELECT retired_ms FROM machines WHERE id = ?1", [id.0], |row| row.get(0))
                .optional()?;
            let Some(was) = was else { return Err(StoreError::NotFound { entity: "machine", id: id.0 }) };
            let retired_ms = match new.retired {
                None => was,
                Some(false) => None,
                Some(true) => match was {
                    Some(since) => Some(since),
                    None => {
                        retire(tx, id)?;
                        Some(to_ms(now))
                    }
                },
            };
            tx.execute(
                "UPDATE machines SET site_id = ?2, line_id = ?3, code = ?4, name = ?5, kind = ?6,
                 capabilities = ?7, rated_power_kw = ?8, retired_ms = ?9 WHERE id = ?1",
                params![
                    id.0,
                    new.site_id.0,
                    new.line_id.map(|l| l.0),
                    new.code,
                    new.name,
                    new.kind.as_str(),
                    new.capabilities.join(","),
                    new.rated_power_kw,
                    retired_ms
                ],
            )
            .map_err(constraint)?;
            Ok(machine_from(id, new, retired_ms.map(from_ms).transpose()?))
        })
    }

    /// Deletes a machine no routing or order refers to. A machine with a history (states, counted
    /// units, readings, alarms or alarm rules of its own) is deleted only `with_history`, which
    /// deletes all of that too; otherwise the answer is a conflict that says what it has.
    pub fn delete_machine(&self, id: MachineId, with_history: bool) -> Result<()> {
        crate::lock(&self.inner.series).clear();
        self.changing_machine_keys(|tx| {
            if !with_history {
                let has = machine_history(tx, id)?;
                if !has.is_empty() {
                    let message = format!(
                        "the machine has a history ({}); delete it with ?with_history=true to delete that too",
                        has.join(", ")
                    );
                    return Err(StoreError::Conflict { field: None, message });
                }
            }
            // Readings and roll-ups refer to series by id alone: they go with the machine's series.
            for table in ["readings", "rollups_1m", "rollups_1h"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE series_id IN (SELECT id FROM series WHERE machine_id = ?1)"),
                    [id.0],
                )?;
            }
            // Work of finished orders cannot be removed or changed: such a machine is retired.
            delete_row(tx, "machines", "machine", id.0).map_err(|error| match error {
                StoreError::Conflict { field, message } if message.contains("order operation") => {
                    let message = format!(
                        "{message}; a machine whose work stays on record is retired instead (`\"retired\": true` in its PUT)"
                    );
                    StoreError::Conflict { field, message }
                }
                other => other,
            })
        })
    }

    /// One machine.
    pub fn machine(&self, id: MachineId) -> Result<Machine> {
        self.read(|conn| {
            conn.prepare_cached(&format!("{MACHINE_SELECT} WHERE id = ?1"))?
                .query_row([id.0], machine_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "machine", id: id.0 })?
        })
    }

    /// A write to sites or machines; once it is committed, [`Store::machine_keys_generation`]
    /// moves on.
    fn changing_machine_keys<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let out = self.write(f);
        if out.is_ok() {
            self.machine_keys_changed();
        }
        out
    }

    /// Every machine's `(site code, machine code, machine id, site id)`: what the ingest pipeline
    /// resolves MQTT topics with.
    pub fn machine_keys(&self) -> Result<Vec<(String, String, MachineId, SiteId)>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT s.code, m.code, m.id, s.id FROM machines m JOIN sites s ON s.id = m.site_id",
                )?
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, MachineId(row.get(2)?), SiteId(row.get(3)?)))
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Machines in id order that `filter` lets through.
    pub fn machines(&self, filter: &MachineFilter, request: PageRequest) -> Result<Page<Machine>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "{MACHINE_SELECT} WHERE id > ?1 AND (?2 IS NULL OR site_id = ?2) AND (?3 IS NULL OR line_id = ?3)
                       AND (?4 IS NULL OR (retired_ms IS NOT NULL) = ?4)
                     ORDER BY id LIMIT ?5"
                ))?
                .query_map(
                    params![
                        request.after.unwrap_or(0),
                        filter.site.map(|s| s.0),
                        filter.line.map(|l| l.0),
                        filter.retired,
                        request.limit + 1
                    ],
                    machine_row,
                )?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()??;
            Ok(page(rows, request.limit, |machine| machine.id.0))
        })
    }
}

/// Which machines [`Store::machines`] lists: those of a site, a line, retired or in service; all
/// by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineFilter {
    /// Only this site's.
    pub site: Option<SiteId>,
    /// Only this line's.
    pub line: Option<LineId>,
    /// Only retired machines (`true`) or only those in service (`false`).
    pub retired: Option<bool>,
}

impl MachineFilter {
    /// Every machine in service.
    pub const IN_SERVICE: MachineFilter = MachineFilter { site: None, line: None, retired: Some(false) };
}

const MACHINE_SELECT: &str =
    "SELECT id, site_id, line_id, code, name, kind, capabilities, rated_power_kw, retired_ms FROM machines";

/// Whether machine `id` is retired (false for one that does not exist).
pub(crate) fn is_retired(tx: &Connection, id: MachineId) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT retired_ms IS NOT NULL FROM machines WHERE id = ?1")?
        .query_row([id.0], |row| row.get(0))
        .optional()?
        .unwrap_or(false))
}

/// Checks that machine `id` may retire and takes it out of routings and open work (see
/// [`Store::update_machine`]).
fn retire(tx: &Connection, id: MachineId) -> Result<()> {
    let refuse = |message: String| Err(StoreError::Conflict { field: Some("retired".into()), message });
    let running: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT r.number, o.name FROM operations o JOIN orders r ON r.id = o.order_id
             WHERE o.machine_id = ?1 AND o.status = 'running' ORDER BY r.id, o.seq LIMIT 5",
        )?
        .query_map([id.0], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if !running.is_empty() {
        let work: Vec<String> = running.iter().map(|(order, step)| format!("{order} ({step})")).collect();
        return refuse(format!("work runs on the machine: {}; finish or pause it first", work.join(", ")));
    }
    // Another machine in service that can do the work: of every routing step and every open
    // operation not running (paused ones too) that the machine could do.
    let alone: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT r.code, s.name FROM routing_step_machines sm
             JOIN routing_steps s ON s.routing_id = sm.routing_id AND s.seq = sm.seq
             JOIN routings r ON r.id = sm.routing_id
             WHERE sm.machine_id = ?1
               AND NOT EXISTS (SELECT 1 FROM routing_step_machines other JOIN machines m ON m.id = other.machine_id
                               WHERE other.routing_id = sm.routing_id AND other.seq = sm.seq
                                 AND other.machine_id != ?1 AND m.retired_ms IS NULL)
             ORDER BY r.id, s.seq LIMIT 5",
        )?
        .query_map([id.0], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if !alone.is_empty() {
        let steps: Vec<String> = alone.iter().map(|(routing, step)| format!("{routing} ({step})")).collect();
        return refuse(format!(
            "it is the only machine in service for routing steps {}; add another machine to them first",
            steps.join(", ")
        ));
    }
    let open = "SELECT operation_id FROM operation_machines om JOIN operations o ON o.id = om.operation_id
                JOIN orders r ON r.id = o.order_id
                WHERE om.machine_id = ?1 AND o.status IN ('planned', 'released')
                  AND r.status IN ('planned', 'released', 'running')";
    let stranded: Vec<String> = tx
        .prepare_cached(&format!(
            "SELECT DISTINCT r.number FROM operations o JOIN orders r ON r.id = o.order_id
             WHERE o.id IN ({open})
               AND NOT EXISTS (SELECT 1 FROM operation_machines other JOIN machines m ON m.id = other.machine_id
                               WHERE other.operation_id = o.id AND other.machine_id != ?1 AND m.retired_ms IS NULL)
             ORDER BY r.id LIMIT 5"
        ))?
        .query_map([id.0], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !stranded.is_empty() {
        return refuse(format!(
            "open orders can be made on no other machine in service: {}; give their steps another machine first",
            stranded.join(", ")
        ));
    }
    tx.execute(
        &format!("DELETE FROM operation_machines WHERE machine_id = ?1 AND operation_id IN ({open})"),
        [id.0],
    )?;
    tx.execute("DELETE FROM routing_step_machines WHERE machine_id = ?1", [id.0])?;
    Ok(())
}

fn check_machine_refs(tx: &Connection, new: &NewMachine) -> Result<()> {
    require(tx, "sites", new.site_id.0, "site_id")?;
    if let Some(line) = new.line_id {
        let site: Option<i64> =
            tx.query_row("SELECT site_id FROM lines WHERE id = ?1", [line.0], |row| row.get(0)).optional()?;
        match site {
            None => return Err(StoreError::invalid("line_id", &format!("no such record (id {line})"))),
            Some(site) if site != new.site_id.0 => {
                return Err(StoreError::invalid("line_id", "the line belongs to another site"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn site_from(id: SiteId, new: &NewSite) -> Site {
    Site {
        id,
        code: new.code.clone(),
        name: new.name.clone(),
        utc_offset: new.utc_offset.clone(),
        time_zone: new.time_zone.clone(),
    }
}

fn site_row(row: &Row<'_>) -> rusqlite::Result<Site> {
    // A site following a named zone keeps an empty offset (the column predates zones).
    let utc_offset: String = row.get(3)?;
    Ok(Site {
        id: SiteId(row.get(0)?),
        code: row.get(1)?,
        name: row.get(2)?,
        utc_offset: (!utc_offset.is_empty()).then_some(utc_offset),
        time_zone: row.get(4)?,
    })
}

fn line_from(id: LineId, new: &NewLine) -> Line {
    Line { id, site_id: new.site_id, code: new.code.clone(), name: new.name.clone() }
}

fn line_row(row: &Row<'_>) -> rusqlite::Result<Line> {
    Ok(Line { id: LineId(row.get(0)?), site_id: SiteId(row.get(1)?), code: row.get(2)?, name: row.get(3)? })
}

fn machine_from(id: MachineId, new: &NewMachine, retired_at: Option<Timestamp>) -> Machine {
    Machine {
        id,
        site_id: new.site_id,
        line_id: new.line_id,
        code: new.code.clone(),
        name: new.name.clone(),
        kind: new.kind,
        capabilities: new.capabilities.clone(),
        rated_power_kw: new.rated_power_kw,
        retired_at,
    }
}

/// Machine rows carry an enum stored as text, so the row mapper returns a nested result: the outer
/// one from SQLite, the inner one for data this version cannot read.
fn machine_row(row: &Row<'_>) -> rusqlite::Result<Result<Machine>> {
    let kind: String = row.get(5)?;
    let capabilities: String = row.get(6)?;
    let Some(kind) = MachineKind::parse(&kind) else {
        return Ok(Err(StoreError::Corrupt(format!("unknown machine kind {kind:?}"))));
    };
    Ok(Ok(Machine {
        id: MachineId(row.get(0)?),
        site_id: SiteId(row.get(1)?),
        line_id: row.get::<_, Option<i64>>(2)?.map(LineId),
        code: row.get(3)?,
        name: row.get(4)?,
        kind,
        capabilities: capabilities.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect(),
        rated_power_kw: row.get(7)?,
        retired_at: match row.get::<_, Option<i64>>(8)?.map(from_ms).transpose() {
            Ok(at) => at,
            Err(error) => return Ok(Err(error)),
        },
    }))
}

fn read_calendar(conn: &Connection, site: SiteId) -> Result<Calendar> {
    let mut shifts = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT name, days, start_time, end_time FROM shifts WHERE site_id = ?1 ORDER BY position",
    )?;
    let mut rows = statement.query([site.0])?;
    while let Some(row) = rows.next()? {
        let days: String = row.get(1)?;
        let days = days
            .split(',')
            .map(|day| {
                parse_weekday(day).ok_or_else(|| StoreError::Corrupt(format!("unknown weekday {day:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        shifts.push(Shift { name: row.get(0)?, days, start: row.get(2)?, end: row.get(3)? });
    }
    let mut holidays = Vec::new();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let mut statement = conn.prepare_cached("SELECT day FROM holidays WHERE site_id = ?1 ORDER BY day")?;
    let mut rows = statement.query([site.0])?;
    while let Some(row) = rows.next()? {
        let day: String = row.get(0)?;
        let date = time::Date::parse(&day, &format)
            .map_err(|_| StoreError::Corrupt(format!("bad holiday {day:?}")))?;
        holidays.push(date);
    }
    Ok(Calendar { shifts, holidays })
}

const WEEKDAYS: [(Weekday, &str); 7] = [
    (Weekday::Mon, "mon"),
    (Weekday::Tue, "tue"),
    (Weekday::Wed, "wed"),
    (Weekday::Thu, "thu"),
    (Weekday::Fri, "fri"),
    (Weekday::Sat, "sat"),
    (Weekday::Sun, "sun"),
];

fn weekday_str(day: Weekday) -> &'static str {
    WEEKDAYS.iter().find(|(d, _)| *d == day).map_or("mon", |(_, s)| s)
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    WEEKDAYS.iter().find(|(_, s)| *s == text).map(|(d, _)| *d)
}

/// What machine `id` has recorded, as "3 state changes", "1 open alarm" and the like.
fn machine_history(tx: &rusqlite::Transaction<'_>, id: MachineId) -> Result<Vec<String>> {
    let kinds: [(&str, &str, &str); 5] = [
        ("SELECT count(*) FROM machine_states WHERE machine_id = ?1", "state change", "state changes"),
        ("SELECT count(*) FROM production WHERE machine_id = ?1", "count of units", "counts of units"),
        (
            "SELECT count(*) FROM series WHERE machine_id = ?1",
            "metric with readings",
            "metrics with readings",
        ),
        ("SELECT count(*) FROM alarms WHERE machine_id = ?1", "alarm", "alarms"),
        ("SELECT count(*) FROM alarm_rules WHERE machine_id = ?1", "alarm rule", "alarm rules"),
    ];
    let mut out = Vec::new();
    for (sql, one, many) in kinds {
        let count: u64 = tx.prepare_cached(sql)?.query_row([id.0], |row| row.get(0))?;
        if count > 0 {
            out.push(format!("{count} {}", if count == 1 { one } else { many }));
        }
    }
    Ok(out)
}
