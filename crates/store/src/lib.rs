//! The durable store: one [`Store`] handle over an SQLite database in WAL mode, with embedded
//! migrations. This is the only crate that knows SQL; callers see typed methods on `model` types.
//!
//! Durability promise: a write method returns only after its transaction has committed. With the
//! default [`Durability::Full`] the commit is fsynced to the write-ahead log first, so anything a
//! caller was told succeeded survives both a process crash (kill -9) and a power cut. With
//! [`Durability::Normal`] it survives a process crash; a power cut may lose the last commits.
//!
//! Concurrency: one writer connection behind a mutex (SQLite allows one writer anyway) and a small
//! pool of reader connections, which WAL lets run beside the writer. All methods are blocking; the
//! server calls them from `spawn_blocking`.

mod alarms;
mod auth;
mod catalog;
mod factory;
mod orders;
mod plans;
mod schema;
mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use model::{FieldError, Timestamp};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use alarms::{AlarmFilter, AlarmSort};
pub use auth::{ApiToken, MAX_LASTING_TOKENS, TokenOwner};
pub use factory::MachineFilter;
pub use orders::{DRAFT_ORDER, Deliveries, Lateness, OrderFilter, OrderSort, OrderStats, PlanEta};
pub use plans::NewPlan;
pub use telemetry::{
    CountedUnits, HOUR_ROLLUP_MS, MAX_METRICS_PER_MACHINE, OperationEvent, OperationEventKind, PruneBefore,
    ROLLUP_MS, Refusal, RefusedReport, SeriesPoint, WriteStats,
};

/// How hard a commit tries to reach the disk before it returns. See the crate docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Fsync the write-ahead log on every commit (SQLite `synchronous=FULL`).
    #[default]
    Full,
    /// Fsync only at checkpoints (SQLite `synchronous=NORMAL`): survives process crashes only.
    Normal,
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What was looked for, e.g. `order`.
        entity: &'static str,
        /// The id asked for.
        id: i64,
    },
    /// The input refers to rows that do not exist or breaks a rule only the store can check.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The write clashes with what is stored: a duplicate code, or a row still in use.
    #[error("{message}")]
    Conflict {
        /// The input field at fault, when there is one.
        field: Option<String>,
        /// What clashed, in lowercase words.
        message: String,
    },
    /// One record of a batch failed; nothing of the batch was written.
    #[error("record {index}: {source}")]
    InRow {
        /// Position of the failing record in the batch, from 0.
        index: usize,
        /// Why it failed.
        source: Box<StoreError>,
    },
    /// SQLite failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database holds something this version cannot read.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A newer version of the program wrote the database.
    #[error(
        "the store was written by a newer microfactory (schema version {found}; this program knows up to {known}): run that version, or restore a backup made before the upgrade"
    )]
    NewerSchema {
        /// The database's schema version.
        found: u32,
        /// The latest this program knows.
        known: u32,
    },
    /// An older version wrote the database, and this caller may not upgrade it (see
    /// [`Store::open_current`]).
    #[error(
        "the store is at schema version {found} and this program at {known}: start `microfactory serve` of this version on it first, which upgrades it (commands that may run beside a server do not)"
    )]
    OlderSchema {
        /// The database's schema version.
        found: u32,
        /// The latest this program knows.
        known: u32,
    },
    /// A migration failed; the database stays at the version before it.
    #[error("migration {version} failed, the store stays at schema version {}: {source}", version - 1)]
    Migration {
        /// The version the migration leads to.
        version: u32,
        /// Why.
        source: Box<StoreError>,
    },
    /// The files next to the database would damage it if it were opened.
    #[error("{0}")]
    Unsafe(String),
}

impl StoreError {
    /// Whether retrying the same call may succeed (the database was busy or locked).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }

    /// Whether the database could not write for want of room or permission, or the disk failed:
    /// a full disk, a read-only file system, an I/O error. The write may succeed later.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Database(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::CannotOpen
                )
        )
    }

    fn invalid(field: &str, message: &str) -> StoreError {
        StoreError::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A page of a list, in id order.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this as the cursor to get the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Where a list starts and how long a page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Only items with an id greater than this.
    pub after: Option<i64>,
    /// At most this many items (the caller bounds it).
    pub limit: u32,
}

/// The handle to the database. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for an in-memory database, which must then read through the writer connection.
    path: Option<PathBuf>,
    durability: Durability,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Series ids by machine and metric name; see `Store::series_id`.
    series: Mutex<telemetry::SeriesCache>,
    /// The schema versions before and after the migrations `open` applied, if it applied any.
    migrated: Option<(u32, u32)>,
    /// When the last write failed for want of room or permission (`StoreError::is_storage_failure`);
    /// `None` once a write has succeeded since.
    write_failed_at: Mutex<Option<std::time::Instant>>,
    /// Counts the changes to sites and machines, which change what topics name: see
    /// [`Store::machine_keys_generation`].
    machine_keys_generation: std::sync::atomic::AtomicU64,
}

/// How many idle reader connections the pool keeps.
const MAX_IDLE_READERS: usize = 8;

impl Store {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date
    /// ([`Store::migrated`] says from which version).
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        Store::check(path)?;
        let writer = Connection::open(path)?;
        // SQLite opens a file it may not write read-only without a word; a server on it would
        // refuse every write until restarted, even once the file is writable again.
        if writer.is_readonly(rusqlite::MAIN_DB)? {
            return Err(StoreError::Unsafe(format!(
                "{} can be read but not written by this user: give it (and its folder) to the user the platform runs as, then start again",
                path.display()
            )));
        }
        configure(&writer, durability)?;
        let migrated = schema::migrate(&writer)?;
        let mut store = Store::from_writer(Some(path.to_path_buf()), durability, writer);
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.migrated = migrated;
        }
        Ok(store)
    }

    /// Whether the files at `path` may be opened as a store by this user ([`Store::open`] asks
    /// the same): a copy beside another store's log, a missing or empty file beside a log, or
    /// files this user cannot write are refused, before anything touches them.
    pub fn check(path: &Path) -> Result<()> {
        check_files(path)?;
        check_writable(path)
    }

    /// Opens the database at `path`, which must be at this program's schema version: for tools
    /// that may run beside a server (an import), which must not upgrade the store under an older
    /// server that then could not read it ([`StoreError::OlderSchema`]).
    pub fn open_current(path: &Path, durability: Durability) -> Result<Store> {
        Store::check(path)?;
        let writer = Connection::open(path)?;
        // Asked before anything is set: a refused store is left exactly as it was.
        let (found, known) = schema::versions(&writer)?;
        if found < known {
            return Err(StoreError::OlderSchema { found, known });
        }
        configure(&writer, durability)?;
        Ok(Store::from_writer(Some(path.to_path_buf()), durability, writer))
    }

    /// The schema version of the database at `path` and the latest this program knows, read
    /// without changing anything (`None` when there is no database there yet): callers say so
    /// before an upgrade that may take a while.
    pub fn schema_versions(path: &Path) -> Result<Option<(u32, u32)>> {
        if std::fs::metadata(path).map_or(true, |meta| meta.len() == 0) {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(Some(schema::versions(&conn)?))
    }

    /// Makes a database at `path` with the schema of an earlier version (`version`, at least 1),
    /// empty, as that version would have left it: for tests of what an upgrade does.
    pub fn create_at_version(path: &Path, version: u32) -> Result<()> {
        let conn = Connection::open(path)?;
        configure(&conn, Durability::Full)?;
        schema::migrate_to(&conn, (version as usize).clamp(1, schema::latest() as usize))
    }

    /// The schema versions before and after the migrations [`Store::open`] applied, if any.
    pub fn migrated(&self) -> Option<(u32, u32)> {
        self.inner.migrated
    }

    /// Copies what the write-ahead log holds into the database file and empties the log, so that
    /// the file alone holds every write (a copy of it after a stop is complete). For a clean
    /// stop, once nothing writes any more; whether all of it went (a reader still open may hold
    /// some back).
    pub fn checkpoint(&self) -> Result<bool> {
        let writer = self.writer();
        let busy: i64 = writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        Ok(busy == 0)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let writer = Connection::open_in_memory()?;
        configure(&writer, Durability::Full)?;
        schema::migrate(&writer)?;
        Ok(Store::from_writer(None, Durability::Full, writer))
    }

    fn from_writer(path: Option<PathBuf>, durability: Durability, writer: Connection) -> Store {
        let inner = Inner {
            path,
            durability,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            series: Mutex::default(),
            migrated: None,
            write_failed_at: Mutex::default(),
            machine_keys_generation: std::sync::atomic::AtomicU64::new(0),
        };
        Store { inner: Arc::new(inner) }
    }

    /// A number that changes whenever a site or machine is created, changed or deleted, so that
    /// what caches [`Store::machine_keys`] (the ingest pipeline) knows to read them again: a
    /// machine's code may have moved to another machine, or its site changed.
    pub fn machine_keys_generation(&self) -> u64 {
        self.inner.machine_keys_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Notes a committed change to sites or machines (see [`Store::machine_keys_generation`]).
    pub(crate) fn machine_keys_changed(&self) {
        self.inner.machine_keys_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<u32> {
        self.read(|conn| Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?))
    }

    /// Caps the database at its current size (`true`) or lifts the cap (`false`), so that writes
    /// needing more room fail as on a full disk. For tests of what callers do then.
    #[doc(hidden)]
    pub fn simulate_full_disk(&self, full: bool) -> Result<()> {
        let conn = self.writer();
        let pages: i64 =
            if full { conn.query_row("PRAGMA page_count", [], |row| row.get(0))? } else { 4_294_967_294 };
        let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| row.get(0))?;
        Ok(())
    }

    /// Runs `f` on a reader connection (a snapshot that never sees half a write).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.inner.path else {
            return f(&self.writer());
        };
        let pooled = lock(&self.inner.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                configure(&conn, self.inner.durability)?;
                conn
            }
        };
        let result = f(&conn);
        let mut idle = lock(&self.inner.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    /// Whether a write failed for want of room or permission (a full disk, a read-only file
    /// system, an I/O error) within `within`, with no write succeeding since. A health check
    /// reports that without writing anything itself.
    pub fn write_failed_within(&self, within: std::time::Duration) -> bool {
        lock(&self.inner.write_failed_at).is_some_and(|at| at.elapsed() <= within)
    }

    /// Runs `f` inside one write transaction; commits when it returns `Ok`, rolls back otherwise.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer();
        let outcome = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => f(&tx).and_then(|value| Ok(tx.commit().map(|()| value)?)),
            Err(error) => Err(error.into()),
        };
        match &outcome {
            Ok(_) => *lock(&self.inner.write_failed_at) = None,
            Err(error) => {
                // Ids cached during a rolled-back transaction may name rows that no longer exist.
                lock(&self.inner.series).clear();
                if error.is_storage_failure() {
                    *lock(&self.inner.write_failed_at) = Some(std::time::Instant::now());
                }
            }
        }
        outcome
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.writer)
    }
}

/// Refuses to open a database that is a copy (a backup made by `VACUUM INTO` is in rollback
/// mode, bytes 18 and 19 of its header 1; the store turns WAL on at its first open) while a
/// write-ahead log lies beside it: that log belongs to another database (a backup restored over
/// a stopped store's files), and SQLite would apply it to the copy and ruin it. Refuses too a
/// database file that is missing or empty while a log lies beside it: the log holds the store's
/// newest writes, and a new store started there would overwrite it.
fn check_files(path: &Path) -> Result<()> {
    use std::io::Read as _;
    let mut header = [0u8; 20];
    let copy = std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 1 && header[19] == 1);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let log = std::fs::metadata(&wal).map_or(0, |meta| meta.len());
    let empty = std::fs::metadata(path).map_or(true, |meta| meta.len() == 0);
    if empty && log > 0 {
        return Err(StoreError::Unsafe(format!(
            "{} is missing or empty, but {} beside it holds {log} bytes of a store's newest writes, which a new store would overwrite: put the store file back (or restore a backup into an empty folder), or move {} out of the way to start a new factory here",
            path.display(),
            wal.display(),
            wal.display()
        )));
    }
    let foreign_log = log > 0;
    if copy && foreign_log {
        return Err(StoreError::Unsafe(format!(
            "{} is a copy (a backup), but {} of another database lies beside it, and opening it would apply that log to the copy and damage it; move {} and its -shm file out of the directory (if you restored a backup there), then start again",
            path.display(),
            wal.display(),
            wal.display()
        )));
    }
    Ok(())
}

/// Refuses a store whose file, or write-ahead log files, this user cannot write, before SQLite
/// touches them: it would open the store read-only without a word (every write then failing
/// until a restart), and leave log files behind that the next start could not write either.
fn check_writable(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        match std::fs::OpenOptions::new().write(true).open(&file) {
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                return Err(StoreError::Unsafe(format!(
                    "{} can be read but not written by this user: give it (and its folder) to the user the platform runs as, then start again",
                    file.display()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A poisoned lock only means another thread panicked while holding it; SQLite's own state is
/// still consistent (an open transaction is rolled back when its guard drops), so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn configure(conn: &Connection, durability: Durability) -> Result<()> {
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // journal_mode answers with a row, so it cannot go through execute_batch's plain path on
    // read-only connections; WAL is a property of the file and persists once set by the writer.
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    // SQLite reuses the log from its start after each checkpoint but keeps the file as long as
    // the largest burst of writes ever made it (an import of 100,000 orders: tens of MB); cut
    // back to this when it starts over.
    let _: i64 =
        conn.query_row(&format!("PRAGMA journal_size_limit={WAL_SIZE_LIMIT}"), [], |row| row.get(0))?;
    conn.execute_batch(&format!("PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON;"))?;
    // One plan per statement, whatever is bound to it. Without this, SQLite marks a cached
    // statement whose plan looked at a bound value (every `LIMIT ?`, a `LIKE ?`) as expired each
    // time that value is bound again, and compiles it anew at its next step: a tenth of the CPU
    // time of a page of orders. The plans it could pick from the values gain nothing here (no
    // statistics tables, and the searches use `LIKE '%…%'`, which no index serves).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // `fold_width(text)`: the text with full-width letters and digits as ASCII (see
    // `model::fold_width`), for searches that find "ＡＢＣ貿易" by "ABC"; NULL when there is
    // nothing to fold, so a search over every order copies no text (`coalesce` it).
    conn.create_scalar_function(
        "fold_width",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let rusqlite::types::ValueRef::Text(bytes) = ctx.get_raw(0) else { return Ok(None) };
            let text = std::str::from_utf8(bytes).unwrap_or_default();
            Ok(match model::fold_width(text) {
                std::borrow::Cow::Owned(folded) => Some(folded),
                std::borrow::Cow::Borrowed(_) => None,
            })
        },
    )?;
    Ok(())
}

/// The size the write-ahead log is cut back to when it starts over, in bytes: four times what it
/// holds in steady use (a checkpoint every 1,000 pages of 4 KiB).
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

fn to_ms(ts: Timestamp) -> i64 {
    (ts.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> Result<Timestamp> {
    // Whole seconds and milliseconds apart: the same instant as from nanoseconds, without a
    // 128-bit division per time read (it showed in the profile of a page of orders).
    Timestamp::from_unix_timestamp(ms.div_euclid(1000))
        .and_then(|at| at.replace_millisecond(ms.rem_euclid(1000) as u16))
        .map_err(|_| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

/// Writes a consistent copy of the database at `database` to `target`, a new file, while the
/// platform keeps using it. SQLite's `VACUUM INTO` reads one snapshot (what is written meanwhile is
/// either wholly in the copy or not) from a read-only connection that neither migrates nor
/// changes the live store, into a temporary file beside `target` that only becomes `target` once
/// it is complete and on disk: an interrupted backup leaves no file that could be mistaken for one.
/// The copy is compacted, carries no log, and is readable by its owner only.
pub fn backup_database(database: &Path, target: &Path) -> std::result::Result<u64, String> {
    if !database.exists() {
        return Err(format!("no database at {}", database.display()));
    }
    check_files(database).map_err(|error| error.to_string())?;
    if std::fs::metadata(database).is_ok_and(|meta| meta.len() == 0) {
        return Err(format!("{} is empty: there is nothing to back up", database.display()));
    }
    // Absolute: a name starting with "file:" would otherwise read as a URI.
    let target = std::path::absolute(target).map_err(|e| format!("{}: {e}", target.display()))?;
    if target.exists() {
        return Err(format!(
            "{} exists already; name a new file (a backup never overwrites one)",
            target.display()
        ));
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_stale_partials(&target);
    let partial = target.with_file_name(format!("{name}.partial-{}", std::process::id()));
    let journal = target.with_file_name(format!("{name}.partial-{}-journal", std::process::id()));
    let written = (|| -> std::result::Result<u64, String> {
        // Created empty for its owner alone before SQLite writes into it (VACUUM INTO takes an
        // empty file), so not even the half-written copy is ever readable by others.
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        }
        let source = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open {}: {e}", database.display()))?;
        source.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
        let into = partial.to_str().ok_or_else(|| format!("{} is not UTF-8", partial.display()))?;
        source
            .execute("VACUUM INTO ?1", [into])
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        drop(source);
        // VACUUM INTO does not sync: the copy must be on disk before it is called a backup.
        let file = std::fs::File::open(&partial).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
        // A hard link fails if the target appeared meanwhile, so nothing is overwritten.
        std::fs::hard_link(&partial, &target)
            .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
        if let Some(parent) = target.parent()
            && let Ok(dir) = std::fs::File::open(parent)
        {
            let _ = dir.sync_all();
        }
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    })();
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(&journal);
    written
}

/// Removes what killed backups left in `target`'s folder (`NAME.partial-PID` and its `-journal`,
/// whatever the name: backups dated by name never meet the same name again), when their process
/// is gone and the file is what a backup writes: empty, a SQLite database or a SQLite journal, or
/// one whose first page was not written yet (it begins with zeros: SQLite writes page 1 last).
/// Anything else by such a name is somebody else's and stays.
fn remove_stale_partials(target: &Path) {
    let Some(dir) = target.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((_, rest)) = file.rsplit_once(".partial-") else { continue };
        let (pid, magic): (&str, &[u8]) = match rest.strip_suffix("-journal") {
            Some(pid) => (pid, &[0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]),
            None => (rest, b"SQLite format 3\0"),
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !process_alive(pid) && begins_with(&entry.path(), magic) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether the regular file at `path` is empty or begins with `magic` or with as many zeros.
fn begins_with(path: &Path, magic: &[u8]) -> bool {
    use std::io::Read;
    let Ok(metadata) = std::fs::symlink_metadata(path) else { return false };
    if !metadata.is_file() {
        return false;
    }
    let mut head = Vec::with_capacity(magic.len());
    let read = std::fs::File::open(path).and_then(|f| f.take(magic.len() as u64).read_to_end(&mut head));
    read.is_ok()
        && (head.is_empty() || head == magic || (head.len() == magic.len() && head.iter().all(|&b| b == 0)))
}

/// Whether a process with this id runs (as far as this system shows; true where it cannot tell).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") { Path::new("/proc").join(pid.to_string()).exists() } else { true }
}

/// Turns SQLite constraint failures into conflicts that name the field, e.g.
/// `UNIQUE constraint failed: sites.code` into a conflict on `code`.
fn constraint(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, Some(message)) = &error
        && e.code == rusqlite::ErrorCode::ConstraintViolation
    {
        if let Some(columns) = message.strip_prefix("UNIQUE constraint failed: ") {
            let field = columns.rsplit(", ").next().and_then(|c| c.split('.').nth(1)).unwrap_or("id");
            return StoreError::Conflict {
                field: Some(field.to_string()),
                message: format!("{field} is already in use"),
            };
        }
        if message.contains("FOREIGN KEY") {
            return StoreError::Conflict {
                field: None,
                message: "the record is still referenced by others".into(),
            };
        }
    }
    StoreError::Database(error)
}

/// Deletes the row `id` of `table`; one still in use is a conflict that says what uses it
/// ("still used by 3 orders, 1 routing step") rather than only that something does.
fn delete_row(tx: &Connection, table: &'static str, entity: &'static str, id: i64) -> Result<()> {
    match tx.execute(&format!("DELETE FROM \"{table}\" WHERE id = ?1"), [id]) {
        Ok(changed) => touched(changed, entity, id),
        // SQLITE_CONSTRAINT_FOREIGNKEY.
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.extended_code == 787 => {
            // One phrase per kind of user: an order operation may be tied to a machine twice
            // (eligible for it, and assigned to it), and counts once.
            let mut named: Vec<(&'static str, &'static str, u64)> = Vec::new();
            for (child, count) in referrers(tx, table, id)? {
                let (one, many) = row_words(&child);
                match named.iter_mut().find(|(o, _, _)| *o == one) {
                    Some(entry) => entry.2 = entry.2.max(count),
                    None => named.push((one, many, count)),
                }
            }
            let message = if named.is_empty() {
                format!("the {entity} is still in use")
            } else {
                let named: Vec<String> = named
                    .iter()
                    .map(|(one, many, count)| format!("{count} {}", if *count == 1 { one } else { many }))
                    .collect();
                format!("the {entity} is still used by {}; remove or change those first", named.join(", "))
            };
            Err(StoreError::Conflict { field: None, message })
        }
        Err(error) => Err(constraint(error)),
    }
}

/// The rows that keep row `id` of `table` from being deleted, by the table they are in: every
/// single-column foreign key to `table` whose deletion rule is neither cascade nor set null. The
/// names come from the schema itself, never from a request.
fn referrers(tx: &Connection, table: &str, id: i64) -> Result<Vec<(String, u64)>> {
    let tables: Vec<String> = tx
        .prepare_cached(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut found = Vec::new();
    for child in tables {
        // (id, seq, parent table, from column, on delete) of each key column.
        let keys: Vec<(i64, i64, String, String, String)> = tx
            .prepare_cached(
                "SELECT id, seq, \"table\", \"from\", on_delete FROM pragma_foreign_key_list(?1)",
            )?
            .query_map([&child], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (key, _, parent, column, on_delete) in &keys {
            let single = keys.iter().filter(|k| k.0 == *key).count() == 1;
            if parent != table || !single || matches!(on_delete.as_str(), "CASCADE" | "SET NULL") {
                continue;
            }
            let sql = format!("SELECT count(*) FROM \"{child}\" WHERE \"{column}\" = ?1");
            let count: u64 = tx.query_row(&sql, [id], |row| row.get(0))?;
            if count > 0 {
                found.push((child.clone(), count));
            }
        }
    }
    Ok(found)
}

/// A table's rows in words, one and many.
fn row_words(table: &str) -> (&'static str, &'static str) {
    match table {
        "routing_step_machines" | "routing_steps" => ("routing step", "routing steps"),
        "operation_machines" | "operations" => ("order operation", "order operations"),
        "bom_lines" => ("bill-of-materials line", "bill-of-materials lines"),
        "lines" => ("line", "lines"),
        "machines" => ("machine", "machines"),
        "users" => ("user", "users"),
        "variants" => ("variant", "variants"),
        "orders" => ("order", "orders"),
        _ => ("other record", "other records"),
    }
}

/// Fails with a field error unless a row with `id` exists in `table`.
fn require(tx: &Connection, table: &'static str, id: i64, field: &str) -> Result<()> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = ?1");
    let found = tx.prepare_cached(&sql)?.exists([id])?;
    if found { Ok(()) } else { Err(StoreError::invalid(field, &format!("no such record (id {id})"))) }
}

/// Fails with `NotFound` when a statement touched no row.
fn touched(changed: usize, entity: &'static str, id: i64) -> Result<()> {
    if changed == 0 { Err(StoreError::NotFound { entity, id }) } else { Ok(()) }
}

/// Converts a page's rows plus one look-ahead row into a [`Page`].
fn page<T>(mut items: Vec<T>, limit: u32, id_of: impl Fn(&T) -> i64) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(id_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

#[cfg(test)]
mod tests;
