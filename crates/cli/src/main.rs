//! The `microfactory` binary: parses flags and the config file, sets up logging, and runs one
//! command. Everything else lives in the library crates; this file only wires them together.

mod bench;
mod config;
mod gantt;
mod schedule;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use model::{Clock, Role, SystemClock};
use server::import::{Existing, ImportOutcome, import_csv};
use server::{AppState, Bootstrap};
use store::Store;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::FileConfig;

/// Default HTTP address.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Name of the database file inside the data directory.
const DATABASE_FILE: &str = "microfactory.db";
/// The file `serve` and `demo` lock in the data directory while they run (see `lock_data_dir`).
const LOCK_FILE: &str = "microfactory.lock";
/// Present in the data directory from a first start until it has shown the admin's credentials.
const CREDENTIALS_NOT_SHOWN_FILE: &str = "first-start-credentials-not-shown";
/// Written by `demo` beside its database: that data keeps the demo's fast factory clock and its
/// simulated machines, and `serve` refuses it.
const DEMO_MARKER: &str = "DEMO";
/// Environment variable whose value becomes the first admin API token on a new store.
const BOOTSTRAP_TOKEN_VAR: &str = "MICROFACTORY_BOOTSTRAP_TOKEN";

/// microfactory: a smart micro-factory in one binary — orders, planning, machines, OEE, carbon.
#[derive(Debug, Parser)]
#[command(name = "microfactory", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the platform: HTTP API and pages on --listen, data in --data-dir.
    Serve(ServeArgs),
    /// Run the platform seeded with a demo Hong Kong micro-factory (seeded only when the data
    /// directory is new).
    Demo(ServeArgs),
    /// Work with customer orders.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Work with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with user accounts in the store, without the API: for when nobody can sign in.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run the simulated factory against a broker (embedded or external), with the machines and
    /// released orders of the store in --data-dir.
    Sim(SimArgs),
    /// Copy the store in --data-dir to a new file, consistent and compacted, while the platform
    /// keeps running. Restore: stop the platform and put the copy in an empty data directory as
    /// microfactory.db (with a file named DEMO for a demo's store).
    Backup {
        /// The new file to write (it must not exist).
        file: PathBuf,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Solve and benchmark job-shop and flexible job-shop scheduling problems.
    Schedule(schedule::ScheduleCommand),
    /// Measure the platform (prints tables for BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
struct SimArgs {
    /// The MQTT broker to publish to, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:1883")]
    broker: String,
    /// API token used as the MQTT password (an admin token, or a device token of the site).
    #[arg(long, env = "MICROFACTORY_SIM_TOKEN", hide_env_values = true)]
    token: String,
    /// MQTT user name; a device account's client id must start with it.
    #[arg(long, default_value = "simulator")]
    username: String,
    /// Simulated seconds per real second [default: `[sim] speed` of the config file, else 60].
    #[arg(long, value_name = "FACTOR")]
    speed: Option<f64>,
    /// Seed of every random choice [default: `[sim] seed` of the config file, else 2026].
    #[arg(long)]
    seed: Option<u64>,
    /// Only this site's machines (code); all sites' by default.
    #[arg(long)]
    site: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Simulated devices → MQTT broker → ingest pipeline → durable store: messages/s, points/s,
    /// publish-to-queryable latency.
    Ingest(bench::IngestBench),
    /// A generated high-mix factory (500 orders, 15 machines by default): first feasible plan,
    /// repair after a breakdown, and the optimised plan against EDD and ATCS dispatching.
    Plan(bench::PlanBench),
    /// Repairs of searched plans of small generated factories a few minutes after they were
    /// published, nothing started: how much work moves and how many orders turn late.
    Repairs(bench::RepairsBench),
    /// A generated factory (50 machines, a day of history, about 2,000 planned operations): the
    /// server time of each dashboard page.
    Dashboard(bench::DashboardBench),
}

/// Flags shared by the commands that touch the data directory.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Folder holding the database; `serve` and `demo` create it if missing, the other commands
    /// need one with a store [default: microfactory-data, or microfactory-demo for `demo`].
    #[arg(long, value_name = "DIR", env = "MICROFACTORY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (see `microfactory config example`).
    #[arg(long, value_name = "FILE", env = "MICROFACTORY_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to serve HTTP on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of the embedded MQTT broker machines publish to [default: 127.0.0.1:1883].
    #[arg(long, value_name = "ADDR")]
    mqtt_listen: Option<SocketAddr>,
    /// Subscribe to this external MQTT broker (HOST:PORT, e.g. Mosquitto) instead of running the
    /// embedded one; credentials come from the [mqtt] section of the config file.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "mqtt_listen")]
    mqtt_broker: Option<String>,
    /// Do not connect machines over MQTT at all.
    #[arg(long, conflicts_with_all = ["mqtt_listen", "mqtt_broker"])]
    no_mqtt: bool,
    /// `demo` only: simulated seconds per real second [default: 60]. The whole demo factory runs
    /// on a clock this much faster than real time (machines, orders, plans, due dates, alarms);
    /// sign-ins and tokens keep real time.
    #[arg(long, value_name = "FACTOR")]
    sim_speed: Option<f64>,
    /// `demo` only: do not run the simulated factory.
    #[arg(long)]
    no_sim: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum OrdersCommand {
    /// Import orders from a CSV file straight into the store, all or nothing. Columns: number,
    /// customer, variant (code), quantity, due (RFC 3339), optional priority (1-10) and
    /// material_ready (RFC 3339).
    Import {
        /// The CSV file, with a header row.
        file: PathBuf,
        /// Skip the rows of order numbers already in use (and import the rest) instead of refusing
        /// the file: a file sent again imports only what is new.
        #[arg(long)]
        skip_existing: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Give a person's account a new random password, printed once, and end its sign-ins (the
    /// admin's password was lost, or never seen). Runs beside the platform or without it; the
    /// account's open pages notice within 30 s.
    ResetPassword {
        /// The account's user name.
        username: String,
        /// Also revoke the account's tokens made to last (scripts, machines): for an account
        /// whose tokens may have been seen by someone who should not have them, or never seen.
        #[arg(long)]
        revoke_tokens: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration file with every option and its default.
    Example,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args, false),
        Command::Demo(args) => serve(args, true),
        Command::Orders(OrdersCommand::Import { file, skip_existing, common }) => {
            import(&file, skip_existing, &common)
        }
        Command::Sim(args) => simulate(args),
        Command::Users(UsersCommand::ResetPassword { username, revoke_tokens, common }) => {
            reset_password(&username, revoke_tokens, &common)
        }
        Command::Backup { file, common } => backup(&file, &common),
        Command::Schedule(command) => schedule::run(command),
        Command::Bench(BenchCommand::Ingest(options)) => bench::run(options),
        Command::Bench(BenchCommand::Plan(options)) => bench::plan(options),
        Command::Bench(BenchCommand::Repairs(options)) => bench::repairs(options),
        Command::Bench(BenchCommand::Dashboard(options)) => bench::dashboard(options),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", config::EXAMPLE);
            Ok(())
        }
    }
}

/// The environment variable that chooses the log format (`text` or `json`) over the config file.
const LOG_FORMAT_VAR: &str = "MICROFACTORY_LOG_FORMAT";

/// Sets up logging to stderr: `RUST_LOG` wins, then the config file, then `info`; the same for
/// the format (`MICROFACTORY_LOG_FORMAT`, `log_format`, text).
fn init_logging(config: &FileConfig) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|filter| !filter.trim().is_empty())
        .or_else(|| config.log.clone())
        .unwrap_or_else(|| "info".into());
    check_log_filter(&filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    let targets: Targets = filter.parse().with_context(|| format!("invalid log filter {filter:?}"))?;
    let format = match std::env::var(LOG_FORMAT_VAR).ok().filter(|f| !f.trim().is_empty()) {
        Some(name) => name.parse().with_context(|| format!("invalid {LOG_FORMAT_VAR}"))?,
        None => config.log_format.unwrap_or(config::LogFormat::Text),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        config::LogFormat::Text => layer.with_ansi(std::io::stderr().is_terminal()).boxed(),
        // Fields beside the message at the top level, as collectors index them.
        config::LogFormat::Json => layer.json().flatten_event(true).with_current_span(false).boxed(),
    };
    tracing_subscriber::registry().with(layer).with(targets).try_init().context("cannot set up logging")?;
    if !filter.split(',').any(|directive| !directive.trim().is_empty() && !directive.contains('=')) {
        tracing::warn!(
            "the log filter {filter:?} gives no level for the rest of the platform, so only what it names logs (warnings and errors of everything else too are left out); put a level first, as in info,{}",
            filter.trim()
        );
    }
    for target in unknown_log_targets(&filter) {
        tracing::warn!(
            target = %target,
            "the log filter names {target:?}, which is none of the platform's modules ({}): it selects nothing of ours",
            OUR_LOG_TARGETS.join(", ")
        );
    }
    Ok(())
}

/// The crates whose modules log, as log filters name them.
const OUR_LOG_TARGETS: [&str; 8] =
    ["microfactory", "server", "store", "model", "mqtt", "ingest", "scheduler", "sim"];

/// Targets of `target=level` directives outside [`OUR_LOG_TARGETS`] (`stroe=debug`): probably
/// misspelt, as the libraries underneath log nothing of interest at these levels.
fn unknown_log_targets(filter: &str) -> Vec<String> {
    filter
        .split(',')
        .filter_map(|directive| directive.split_once('='))
        .map(|(target, _)| target.trim())
        .filter(|target| {
            let root = target.split("::").next().unwrap_or(target);
            !target.is_empty() && !OUR_LOG_TARGETS.contains(&root)
        })
        .map(str::to_string)
        .collect()
}

/// A filter is levels (`info`) and `target=level` pairs. A bare word that is not a level would
/// be read as a target to log at every level, with everything else off: a typo such as
/// `verbose` would silence the whole log, warnings included.
fn check_log_filter(filter: &str) -> anyhow::Result<()> {
    // As tracing reads them: names, or 0 (off) to 5 (trace). An empty level after `=` it reads
    // as error; that is more likely a slip, so it is refused too.
    const LEVELS: [&str; 12] =
        ["trace", "debug", "info", "warn", "error", "off", "0", "1", "2", "3", "4", "5"];
    let directives: Vec<&str> = filter.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        bail!("it names no level, which would silence the log; give one such as info");
    }
    for directive in directives {
        let level = directive.split_once('=').map_or(directive, |(_, level)| level.trim());
        if directive.contains('=') && level.is_empty() {
            bail!("{directive:?} names no level; write it as {directive}info (or debug, warn, ...)");
        }
        if !LEVELS.iter().any(|known| known.eq_ignore_ascii_case(level)) {
            bail!(
                "{level:?} is not a level (trace, debug, info, warn, error or off); name a target as target=level"
            );
        }
    }
    Ok(())
}

/// The first-start marker's content before the admin exists.
const MARKER_PENDING: &str = "the first admin's credentials have not been shown yet";

/// The first-start marker's content once `admin` exists: it names that admin.
fn marker_for(admin: &model::User) -> String {
    format!(
        "the credentials of {} (created {} ms) have not been shown yet",
        admin.username,
        model::oee::unix_ms(admin.created_at)
    )
}

/// The `admin` user a first start creates, if there is one.
fn first_admin(store: &Store) -> anyhow::Result<Option<model::User>> {
    Ok(store.users()?.into_iter().find(|user| user.username == "admin" && user.role == Role::Admin))
}

/// Whether a first start on *this* store stopped before it showed the admin's credentials: the
/// marker names this store's admin, or was written just before the admin was made. A marker from
/// another store (a backup restored into a directory whose own first start was cut short) would
/// otherwise reset a working admin: it is removed, with a warning.
fn unshown_on_this_store(marker: &Path, store: &Store) -> anyhow::Result<bool> {
    let content = match std::fs::read_to_string(marker) {
        Ok(content) => content,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", marker.display())),
    };
    let content = content.trim();
    // A marker written just before the admin was made (the start was killed in between) goes
    // with an admin made after it: a restored store's admin is older than the marker.
    let written = std::fs::metadata(marker).and_then(|meta| meta.modified()).ok();
    let made_since = |admin: &model::User| {
        written.is_none_or(|written| {
            let written = time::OffsetDateTime::from(written);
            admin.created_at >= written - time::Duration::minutes(1)
        })
    };
    let this_store = match first_admin(store)? {
        Some(admin) => {
            content == marker_for(&admin)
                || (content == MARKER_PENDING && store.count_users()? == 1 && made_since(&admin))
        }
        None => store.count_users()? == 0,
    };
    if !this_store {
        tracing::warn!(
            marker = %marker.display(),
            "a first-start marker of another store was left in the data directory; the store's admin is kept and the marker removed"
        );
        std::fs::remove_file(marker).with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    Ok(this_store)
}

/// Whether a command may start a new store where there is none: `serve` and `demo` do; the
/// commands that work on a factory's data (`orders import`, `sim`) refuse, so a mistyped
/// `--data-dir` is an error rather than a new, empty factory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NewStore {
    Create,
    Refuse,
}

/// The data directory (flag, then config file, then `default_dir`) and its database file; with
/// [`NewStore::Refuse`], an error when the file is not there.
fn database_path(
    common: &CommonArgs,
    config: &FileConfig,
    default_dir: &str,
    new: NewStore,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir =
        common.data_dir.clone().or_else(|| config.data_dir.clone()).unwrap_or_else(|| default_dir.into());
    let path = dir.join(DATABASE_FILE);
    if new == NewStore::Refuse && !path.exists() {
        bail!(
            "no microfactory data in {} (check --data-dir, or start `microfactory serve` there first)",
            dir.display()
        );
    }
    Ok((dir, path))
}

/// Refuses to start a new store in a directory that already holds other things (`--data-dir .`,
/// `/srv` by a slip): the platform would lock it to its owner, cutting off whatever else uses it.
/// What the platform leaves itself (its lock and markers, a copy before an upgrade), its own
/// configuration file and a new disk's `lost+found` do not count.
fn refuse_foreign_directory(dir: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let config = config.and_then(|file| file.canonicalize().ok());
    let mut foreign: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| config.is_none() || entry.path().canonicalize().ok() != config)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            !(name.starts_with("microfactory")
                || [CREDENTIALS_NOT_SHOWN_FILE, DEMO_MARKER, "lost+found"].contains(&name.as_str()))
        })
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let more = if foreign.len() > 3 { format!(" and {} more", foreign.len() - 3) } else { String::new() };
    foreign.truncate(3);
    bail!(
        "{} holds other files ({}{more}) and no microfactory store: give --data-dir a new or empty directory (the platform makes it readable by its owner only)",
        dir.display(),
        foreign.join(", ")
    )
}

/// Creates the data directory, if missing, for its owner only.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Makes the data directory and the store's files readable by their owner only, as they are
/// created now; an older version (or a `mkdir`) left them readable by everyone on the computer,
/// password hashes included.
fn owner_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let files = ["", "-wal", "-shm"].map(|suffix| dir.join(format!("{DATABASE_FILE}{suffix}")));
    let paths =
        std::iter::once((dir.to_path_buf(), 0o700)).chain(files.into_iter().map(|file| (file, 0o600)));
    for (path, mode) in paths {
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        if metadata.permissions().mode() & 0o077 == 0 {
            continue;
        }
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => tracing::info!(path = %path.display(), "made readable by its owner only"),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "readable by others; could not change that")
            }
        }
    }
}

/// Takes the data directory for this process's `serve` or `demo`: a second one on the same
/// directory would run its own replanner, retention and alarms over the same store. Held until
/// the process ends (the operating system lets go of it then, even after `kill -9`).
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::Write as _;
    create_data_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let by = if holder.is_empty() { String::new() } else { format!(" (process {holder})") };
            bail!("another microfactory is already running on {}{by}; stop it first", dir.display());
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

fn open_store(
    common: &CommonArgs,
    config: &FileConfig,
    default_dir: &str,
    new: NewStore,
) -> anyhow::Result<(Store, PathBuf)> {
    let (dir, path) = database_path(common, config, default_dir, new)?;
    create_data_dir(&dir)?;
    // Refused before anything is created or opened: nothing is left behind.
    Store::check(&path).with_context(|| format!("cannot open the store at {}", path.display()))?;
    // The store holds password hashes and token digests: its files are the owner's only (SQLite
    // gives its WAL and shared-memory files the database file's permissions).
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create the store at {}", path.display()))?;
    }
    let durability = config.store.durability.map(Into::into).unwrap_or_default();
    // Only the platform itself upgrades a store: the other commands may run beside an older
    // server, which could not read it afterwards.
    if new == NewStore::Create
        && let Ok(Some((found, known))) = Store::schema_versions(&path)
        && found < known
    {
        if found > 0 && config.store.backup_before_upgrade.unwrap_or(true) {
            keep_before_upgrade(&dir, &path, found)?;
        }
        tracing::info!(
            from = found,
            to = known,
            "upgrading the store's schema (a large store may take a while)"
        );
    }
    let opened = match new {
        NewStore::Create => Store::open(&path, durability),
        NewStore::Refuse => Store::open_current(&path, durability),
    };
    let store = opened.with_context(|| format!("cannot open the store at {}", path.display()))?;
    // (From version 0: a new store, made now.)
    if let Some((from, to)) = store.migrated().filter(|(from, _)| *from > 0) {
        tracing::info!(from, to, "upgraded the store's schema");
    }
    Ok((store, dir))
}

/// Copies the store at `path` (schema `version`) to `microfactory-before-upgrade-{version}.db`
/// beside it before it is upgraded, so the version that wrote it can be gone back to; a copy
/// there already (an upgrade that stopped half-way) is kept as it is.
fn keep_before_upgrade(dir: &Path, path: &Path, version: u32) -> anyhow::Result<()> {
    let copy = dir.join(format!("microfactory-before-upgrade-{version}.db"));
    if copy.exists() {
        tracing::info!(copy = %copy.display(), "the store's copy from before the upgrade is there already");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let bytes = store::backup_database(path, &copy).map_err(|error| {
        anyhow::anyhow!(
            "cannot copy the store before upgrading it ({error}); make room, or set \
             store.backup_before_upgrade = false to upgrade without a copy"
        )
    })?;
    tracing::info!(
        copy = %copy.display(),
        megabytes = format!("{:.1}", bytes as f64 / 1e6),
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "copied the store before upgrading it: to go back, stop, and give the version before an empty data \
         directory with the copy as {DATABASE_FILE} in it; delete the copy once this version runs well"
    );
    Ok(())
}

fn serve(args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let config = FileConfig::load(args.common.config.as_deref())?;
    init_logging(&config)?;
    let listen = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
    // The flags win over the file, as everywhere: each names the whole choice of broker.
    let mut mqtt = config.mqtt.clone();
    if let Some(address) = args.mqtt_listen {
        if mqtt.external.is_some() || !mqtt.enabled {
            tracing::info!(
                "--mqtt-listen runs the embedded broker; the config file's [mqtt] enabled, external, username and password are not used"
            );
        }
        mqtt.listen = address;
        mqtt.enabled = true;
        mqtt.external = None;
        (mqtt.username, mqtt.password) = (None, None);
    }
    if let Some(broker) = args.mqtt_broker.clone() {
        if !mqtt.enabled {
            tracing::info!(
                "--mqtt-broker connects to that broker; the config file's [mqtt] enabled = false is not used"
            );
        }
        mqtt.enabled = true;
        mqtt.external = Some(broker);
    }
    if args.no_mqtt {
        mqtt.enabled = false;
    }
    match &mqtt.external {
        None if mqtt.username.is_some() || mqtt.password.is_some() => bail!(
            "[mqtt] username and password are the platform's sign-in at an external broker; set external (or --mqtt-broker) too, or remove them"
        ),
        // Checked here, before anything starts: a typo must not surface only after the first
        // admin's password was shown.
        Some(address) if address.contains("://") => {
            bail!("the external MQTT broker is given as HOST:PORT, without a scheme: found {address:?}")
        }
        Some(address)
            if address.rsplit_once(':').is_none_or(|(host, port)| {
                // An IPv6 address in brackets: [::1]:1883.
                let bare_v6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
                host.is_empty() || bare_v6 || port.parse::<u16>().is_err()
            }) =>
        {
            bail!(
                "the external MQTT broker must be given as HOST:PORT (an IPv6 address in brackets, [::1]:1883), found {address:?}"
            )
        }
        _ => {}
    }
    if !demo && (args.sim_speed.is_some() || args.no_sim) {
        bail!("--sim-speed and --no-sim are for `microfactory demo` only");
    }
    let mut sim = config.sim.clone();
    if let Some(speed) = args.sim_speed {
        let range = server::simulation::SimSettings::SPEEDS;
        if !range.contains(&speed) {
            bail!("--sim-speed must be from {} to {}", range.start(), range.end());
        }
        sim.speed = speed;
    }
    let run_sim = demo && sim.enabled && !args.no_sim && mqtt.enabled && mqtt.external.is_none();
    if demo && sim.enabled && !args.no_sim && !run_sim {
        // The simulator publishes through the embedded broker only, inside the process.
        let instead = match &mqtt.external {
            Some(broker) => format!(
                "; to drive this factory through {broker}, run `microfactory sim --broker {broker}` beside it"
            ),
            None => String::new(),
        };
        tracing::warn!(
            "the simulated factory runs with the embedded MQTT broker only, so this demo has none{instead}"
        );
    }
    // Every flag is checked above, and the ports are taken here, before the data directory is
    // created or seeded: a mistyped flag or a port in use leaves nothing behind, and the first
    // admin's password is never created by a start that then fails before showing it.
    let (listener, mqtt_listener) = bind_listeners(listen, &mqtt, demo)?;
    let default_dir = if demo { "microfactory-demo" } else { "microfactory-data" };
    let (dir, path) = database_path(&args.common, &config, default_dir, NewStore::Create)?;
    if !path.exists() {
        refuse_foreign_directory(&dir, args.common.config.as_deref())?;
    }
    // Before the store is opened, which upgrades its schema: a start refused here leaves a store
    // its own version can still open.
    keep_demo_apart_unopened(&dir, &path, demo)?;
    let preset = std::env::var(BOOTSTRAP_TOKEN_VAR).ok().filter(|t| !t.is_empty());
    // Checked before anything is made on a first start; on a store with its users already it is
    // not used, so a weak one left set from the first start does not stop an upgrade.
    if let Some(token) = &preset
        && !path.exists()
    {
        server::check_bootstrap_token(token)?;
    }
    let _lock = lock_data_dir(&dir)?;
    owner_only(&dir);
    let (store, dir) = open_store(&args.common, &config, default_dir, NewStore::Create)?;
    let wall: Arc<dyn Clock> = Arc::new(SystemClock);
    keep_demo_apart(&store, &dir, demo, wall.now())?;
    for names in store.user_names_differing_in_case().context("cannot read the store")? {
        tracing::warn!(
            names = %names.join(", "),
            "user names that differ in case only (an earlier version allowed them): each signs in with its \
             name written exactly as it was made; delete those no longer needed"
        );
    }
    let (clock, clock_speed) =
        if demo { demo_clock(&store, &wall, &sim, run_sim)? } else { (wall.clone(), 1.0) };
    let now = clock.now();
    // The first start's credentials are shown once: until they have been, a marker file says so,
    // and a start that finds it (the first one stopped before showing them) makes new ones.
    let unshown = dir.join(CREDENTIALS_NOT_SHOWN_FILE);
    let again = unshown_on_this_store(&unshown, &store)?;
    let write_marker = |content: &str| {
        std::fs::write(&unshown, format!("{content}\n"))
            .with_context(|| format!("cannot write {}", unshown.display()))
    };
    if again || store.count_users()? == 0 {
        if let Some(token) = &preset {
            server::check_bootstrap_token(token)?;
        }
        write_marker(MARKER_PENDING)?;
    } else if preset.is_some() {
        tracing::info!("{BOOTSTRAP_TOKEN_VAR} is set but the store has its users already; it is not used");
    }
    let bootstrap = server::bootstrap(&store, preset.as_deref(), wall.now(), again)?;
    if bootstrap.is_some() {
        // From now on the marker names the admin it was made for, so it binds to this store.
        if let Some(admin) = first_admin(&store)? {
            write_marker(&marker_for(&admin))?;
        }
    }
    if again && bootstrap.is_some() {
        tracing::warn!(
            "the first start stopped before it showed the admin's credentials; they are made again"
        );
    }
    if demo && let Some(summary) = server::demo::seed_if_empty(&store, now)? {
        tracing::info!(
            machines = summary.machines,
            variants = summary.variants,
            orders = summary.orders,
            "seeded the demo factory"
        );
        match server::demo::publish_first_plan(&store, now, config.planning.threads()) {
            Ok(plan) => tracing::info!(
                plan = plan.id,
                late_orders = plan.late_orders,
                "planned the demo's orders and published the plan"
            ),
            Err(error) => tracing::warn!(%error, "the demo starts without a plan"),
        }
    }
    let kept = store.clone();
    let state = AppState::new(store, clock, config.http.clone(), config.alarms.clone())
        .with_planning(config.planning.clone())
        .with_wall_clock(wall, clock_speed);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).context("cannot listen for HTTP")?;
        let address = listener.local_addr()?;
        let mqtt_listener = match mqtt_listener {
            Some(listener) => {
                Some(tokio::net::TcpListener::from_std(listener).context("cannot listen for MQTT")?)
            }
            None => None,
        };
        let mqtt_address = mqtt_listener.as_ref().and_then(|l| l.local_addr().ok());
        tracing::info!(
            %address,
            data_dir = %dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            durability = match config.store.durability.map(store::Durability::from).unwrap_or_default() {
                store::Durability::Full => "full",
                store::Durability::Normal => "normal",
            },
            "serving"
        );
        // Shown once MQTT is up: a start that an external broker refuses stops before it, and
        // a first start's credentials are then made again at the next one.
        let welcome = move || -> std::io::Result<()> {
            print_welcome(address, mqtt_address, bootstrap.as_ref(), demo, clock_speed);
            if unshown.exists() {
                use std::io::Write as _;
                let failed = |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot show the admin's credentials: {e}"));
                std::io::stdout().flush().map_err(failed)?;
                std::fs::remove_file(&unshown).map_err(failed)?;
            }
            Ok(())
        };
        let options = server::RunOptions {
            mqtt: mqtt.enabled.then(|| (mqtt.clone(), mqtt_listener)),
            simulator: run_sim.then_some(sim),
            retention: Some(config.retention.clone()),
            planning: Some(config.planning.clone()),
            on_ready: Some(Box::new(welcome)),
        };
        server::run(listener, state, options, shutdown_signal()).await.context("the server failed")?;
        // The log's writes go into the store file, so that a copy of the file alone taken after
        // the stop holds them.
        match kept.checkpoint() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "some writes are still only in the store's write-ahead log (microfactory.db-wal); copy it with the store file"
            ),
            Err(error) => tracing::warn!(%error, "cannot write the store's log into its file"),
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// Keeps the demo's data and a factory's own apart: the demo's clock runs fast and its simulated
/// machines publish, so `serve` refuses a directory the demo wrote, and `demo` refuses one that
/// holds a factory's data. A demo directory from before the marker is known by its clock having
/// run ahead of real time.
/// What [`keep_demo_apart`] can tell before the store is opened (and upgraded): `serve` refuses
/// the demo's directory, and `demo` a factory's store of an older version.
fn keep_demo_apart_unopened(dir: &Path, path: &Path, demo: bool) -> anyhow::Result<()> {
    let marker = dir.join(DEMO_MARKER);
    if !demo && marker.exists() {
        bail!(
            "{} holds the demo's data (its factory clock runs fast); serve a data directory of your own",
            dir.display()
        );
    }
    if demo
        && !marker.exists()
        && let Ok(Some((found, known))) = Store::schema_versions(path)
        && found > 0
        && found < known
    {
        bail!(
            "{} holds data of an earlier version that is not the demo's; the demo would upgrade it, and that \
             version could not open it again. Give the demo a directory of its own (--data-dir); if it is \
             an older demo's, delete it or put a file named {DEMO_MARKER} in it",
            dir.display()
        );
    }
    Ok(())
}

fn keep_demo_apart(store: &Store, dir: &Path, demo: bool, now: time::OffsetDateTime) -> anyhow::Result<()> {
    let marker = dir.join(DEMO_MARKER);
    let ran_ahead = || -> anyhow::Result<bool> {
        Ok(store
            .latest_recorded_at()
            .context("cannot read the store")?
            .is_some_and(|latest| latest > now + time::Duration::HOUR))
    };
    if !demo {
        if ran_ahead()? {
            tracing::warn!(
                data_dir = %dir.display(),
                "the store holds times more than an hour ahead of this clock: a demo's data, or a clock set wrong \
                 before; plans and OEE will look odd until real time catches up"
            );
        }
        return Ok(());
    }
    if !marker.exists() {
        let empty = store.count_users().context("cannot read the store")? == 0;
        if !empty && !ran_ahead()? {
            bail!(
                "{} holds a factory's own data; the demo would run its fast clock and simulated machines \
                 on it. Give the demo a directory of its own (--data-dir); if it is an older demo's, \
                 delete it or put a file named {DEMO_MARKER} in it",
                dir.display()
            );
        }
        std::fs::write(&marker, "This directory holds the data of `microfactory demo`.\n")
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(())
}

/// Takes the HTTP port and, with the embedded broker, the MQTT port. Where another broker (say
/// Mosquitto) holds the MQTT port, the demo takes a free one instead, so that it still starts.
fn bind_listeners(
    listen: SocketAddr,
    mqtt: &server::broker::MqttConfig,
    demo: bool,
) -> anyhow::Result<(std::net::TcpListener, Option<std::net::TcpListener>)> {
    let bind = |address: SocketAddr| {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(listener)
    };
    let listener = bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let mqtt_listener = match (mqtt.enabled, &mqtt.external) {
        (true, None) => Some(match bind(mqtt.listen) {
            Ok(listener) => listener,
            Err(error) if demo && error.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(wanted = %mqtt.listen, "MQTT port in use; the demo broker takes a free port instead");
                bind(SocketAddr::new(mqtt.listen.ip(), 0)).context("cannot listen for MQTT")?
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot listen for MQTT on {}", mqtt.listen));
            }
        }),
        _ => None,
    };
    Ok((listener, mqtt_listener))
}

/// The demo's factory clock and its speed: as fast as the simulated machines (or real time
/// without them), going on from the latest time the demo's store recorded, so that a restart never
/// turns its clock back.
fn demo_clock(
    store: &Store,
    wall: &Arc<dyn Clock>,
    sim: &server::simulation::SimSettings,
    run_sim: bool,
) -> anyhow::Result<(Arc<dyn Clock>, f64)> {
    let speed = if run_sim { sim.speed } else { 1.0 };
    let latest = store.latest_recorded_at().context("cannot read the demo's latest time")?;
    let start = match latest {
        Some(latest) if latest > wall.now() => latest + time::Duration::SECOND,
        _ => wall.now(),
    };
    if start > wall.now() {
        let factory_time = start.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        tracing::info!(%factory_time, "the demo's factory clock goes on from where it stopped");
    }
    // It runs with the time that really passes: a step of the system clock would otherwise move
    // the factory by sixty times the step (a day's step: two months of alarms and gaps).
    let steady: Arc<dyn Clock> = Arc::new(model::SteadyClock::new(wall.as_ref()));
    Ok((Arc::new(model::FastClock::new(steady, start, speed)), speed))
}

/// Tells the person at the terminal where to go and how to sign in. Printed to stdout, never to
/// the log: the first-start credentials are secrets.
fn print_welcome(
    address: SocketAddr,
    mqtt: Option<SocketAddr>,
    bootstrap: Option<&Bootstrap>,
    demo: bool,
    clock_speed: f64,
) {
    let what = if demo { "microfactory demo" } else { "microfactory" };
    println!("{what} is running at http://{address}/");
    if clock_speed != 1.0 {
        println!(
            "The simulated factory runs {clock_speed}x faster than real time, on its own clock (shown on \
             every page); --sim-speed changes it."
        );
    }
    if let Some(mqtt) = mqtt {
        println!("Machines publish to mqtt://{mqtt} (password: an API token of a device or admin).");
    }
    match bootstrap {
        Some(credentials) => {
            println!("First start: created the admin account. This is the only time these are shown:");
            println!("  user name: {}", credentials.username);
            println!("  password:  {}", credentials.password);
            if credentials.token_from_env {
                println!("  API token: the value of {BOOTSTRAP_TOKEN_VAR}");
            } else {
                println!("  API token: {}", credentials.token);
            }
        }
        None => println!(
            "Sign in with your existing account (the admin password was shown at first start; lost, it is \
             reset with `microfactory users reset-password admin`)."
        ),
    }
    println!("Try: curl -H 'Authorization: Bearer <token>' http://{address}/api/v1/machines");
    println!("Stop with Ctrl-C.");
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted; finishing requests in flight"),
        () = terminate => tracing::info!("terminated; finishing requests in flight"),
    }
}

fn backup(file: &Path, common: &CommonArgs) -> anyhow::Result<()> {
    let config = FileConfig::load(common.config.as_deref())?;
    init_logging(&config)?;
    // Read only: the backup neither creates, migrates nor changes the store it copies, so one
    // taken with a newer binary before an upgrade is still the old store.
    let (dir, database) = database_path(common, &config, "microfactory-data", NewStore::Refuse)?;
    let started = std::time::Instant::now();
    let bytes = store::backup_database(&database, file).map_err(|e| anyhow::anyhow!("backup failed: {e}"))?;
    println!(
        "backed up {} to {} ({:.1} MB in {:.1} s); to restore, stop the platform and put it in an empty data directory as {DATABASE_FILE} (a demo's store also needs a file named {DEMO_MARKER} there)",
        dir.display(),
        file.display(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn reset_password(username: &str, revoke_tokens: bool, common: &CommonArgs) -> anyhow::Result<()> {
    let config = FileConfig::load(common.config.as_deref())?;
    init_logging(&config)?;
    let (store, _) = open_store(common, &config, "microfactory-data", NewStore::Refuse)?;
    let Some((user, _)) = store.user_credentials(username)? else {
        let people: Vec<String> =
            store.users()?.into_iter().filter(|u| u.role != Role::Device).map(|u| u.username).collect();
        bail!("no account is named {username:?}; the people's accounts are: {}", people.join(", "));
    };
    if user.role == Role::Device {
        bail!("{} is a device account: it has no password and signs in with tokens", user.username);
    }
    let password = server::auth::new_password().context("no randomness available")?;
    let hash =
        server::auth::hash_password(&password).map_err(|_| anyhow::anyhow!("cannot hash the password"))?;
    let now = SystemClock.now();
    store.update_user(user.id, None, None, Some(&hash))?;
    let ended = store.revoke_sign_ins(user.id, None, now)?;
    let revoked = if revoke_tokens { store.revoke_lasting_tokens(user.id, now)? } else { 0 };
    tracing::info!(user = %user.username, ended, revoked, "a new password was set from the command line");
    println!("New password of {} ({}): {password}", user.username, user.role.as_str());
    println!("Shown only now. Sign in with it and choose your own on the account page.");
    println!("Ended {ended} sign-in(s); revoked {revoked} token(s) made to last.");
    Ok(())
}

fn import(file: &Path, skip_existing: bool, common: &CommonArgs) -> anyhow::Result<()> {
    let config = FileConfig::load(common.config.as_deref())?;
    init_logging(&config)?;
    let csv = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if server::import::is_empty_file(&csv) {
        bail!("{} is empty: a CSV import needs a header line and at least one order", file.display());
    }
    let (store, _) = open_store(common, &config, "microfactory-data", NewStore::Refuse)?;
    let existing = if skip_existing { Existing::Skip } else { Existing::Refuse };
    // The file is checked whole, then written in one transaction: a spinner with the time so far
    // shows that a large one is under way (on a terminal only; drawn on stderr, cleared after).
    let rows = csv.iter().filter(|&&byte| byte == b'\n').count().saturating_sub(1).max(1);
    let spinner = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} checking and importing {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    spinner.set_message(format!("about {rows} rows of {}", file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let outcome = import_csv(&store, &csv, SystemClock.now(), existing, None);
    spinner.finish_and_clear();
    match outcome {
        ImportOutcome::Imported(orders, skipped) => {
            let noun = if orders.len() == 1 { "order" } else { "orders" };
            println!("imported {} {noun} from {}", orders.len(), file.display());
            if !skipped.is_empty() {
                println!("skipped {} already there", skipped.len());
            }
            Ok(())
        }
        ImportOutcome::Rejected(errors) => {
            for error in &errors {
                eprintln!("{}: {error}", file.display());
            }
            bail!("nothing was imported: fix the rows above and run the import again")
        }
        ImportOutcome::Failed(error) => Err(error).context("the import failed; nothing was imported"),
    }
}

/// `microfactory sim`: the simulated factory as a separate process, like a gateway would be.
fn simulate(args: SimArgs) -> anyhow::Result<()> {
    let config = FileConfig::load(args.common.config.as_deref())?;
    init_logging(&config)?;
    // The flags win over the file's [sim] section (checked when the file was read).
    let speed = args.speed.unwrap_or(config.sim.speed);
    let seed = args.seed.unwrap_or(config.sim.seed);
    let range = server::simulation::SimSettings::SPEEDS;
    if !range.contains(&speed) {
        bail!("--speed must be from {} to {}", range.start(), range.end());
    }
    if args.token.trim().is_empty() {
        bail!(
            "--token (or MICROFACTORY_SIM_TOKEN) is empty: give an API token of an admin or of a device of the site"
        );
    }
    let (store, _) = open_store(&args.common, &config, "microfactory-data", NewStore::Refuse)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sites = store.sites(store::PageRequest { after: None, limit: 1000 })?.items;
    let sites: Vec<_> =
        sites.into_iter().filter(|s| args.site.as_ref().is_none_or(|code| &s.code == code)).collect();
    if sites.is_empty() {
        bail!("no site to simulate in this data directory (run `microfactory demo` once to seed one)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let broker = tokio::net::lookup_host(&args.broker)
            .await
            .with_context(|| format!("cannot resolve {}", args.broker))?
            .next()
            .with_context(|| format!("no address for {}", args.broker))?;
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for site in sites {
            let settings =
                server::simulation::SimSettings { enabled: true, speed, seed, orders_per_day: 0.0 };
            if !server::simulation::has_machines(&store, site.id)? {
                println!("site {} has no machines; skipped", site.code);
                continue;
            }
            let simulated = server::simulation::SimSite {
                store: store.clone(),
                site: site.id,
                settings,
                clock_speed: 1.0,
            };
            // One connection per site, each with a client id of its own: a second connection
            // with the same id would take the first one over.
            tasks.push(tokio::spawn(server::simulation::connect_and_run(
                broker,
                server::simulation::SimLogin {
                    client_id: format!("{}-{}-{}", args.username, site.code, std::process::id()),
                    username: args.username.clone(),
                    token: args.token.clone(),
                },
                simulated,
                clock.clone(),
                stop.clone(),
            )));
            println!("simulating site {} against mqtt://{broker} at {speed}x, seed {seed}", site.code);
        }
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{check_log_filter, unknown_log_targets};

    #[test]
    fn misspelt_log_targets_are_found() {
        assert_eq!(unknown_log_targets("info,stroe=debug,server::pipeline=trace,store=warn"), ["stroe"]);
        assert!(unknown_log_targets("debug").is_empty());
        assert_eq!(unknown_log_targets("hyper=trace"), ["hyper"]);
    }

    #[test]
    fn log_filters_are_levels_or_target_levels() {
        for good in [
            "info",
            "Info",
            "info,store=debug",
            "warn,server::pipeline=trace",
            "store=4",
            "3",
            "off",
            " info , ",
        ] {
            assert!(check_log_filter(good).is_ok(), "{good}");
        }
        // Each of these would silence all or most of the log.
        for bad in ["verbose", "server=debugg", "info,loud", "", ",", " , ", "store=", "info,store= "] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
    }
}
