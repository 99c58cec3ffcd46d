//! The configuration file (TOML) and how it combines with flags: a flag wins over the file, the
//! file wins over the built-in default. Unknown keys are errors, so typos do not pass silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use server::broker::MqttConfig;
use server::simulation::SimSettings;
use server::{AlarmConfig, PlanningConfig, RetentionConfig, ServerConfig};

/// Everything the file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Address the HTTP server listens on.
    pub listen: Option<SocketAddr>,
    /// Folder for the database and other state.
    pub data_dir: Option<PathBuf>,
    /// Log filter in `RUST_LOG` syntax; the environment variable wins when set.
    pub log: Option<String>,
    /// How log lines are written; `MICROFACTORY_LOG_FORMAT` wins when set.
    pub log_format: Option<LogFormat>,
    /// Store settings.
    pub store: StoreSection,
    /// HTTP settings.
    pub http: ServerConfig,
    /// Alarm notification settings.
    pub alarms: AlarmConfig,
    /// MQTT settings.
    pub mqtt: MqttConfig,
    /// The simulated factory of `demo`.
    pub sim: SimSettings,
    /// How long telemetry is kept.
    pub retention: RetentionConfig,
    /// Planning settings.
    pub planning: PlanningConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event, `key=value` fields after the message, for people.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the event's fields),
    /// for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<LogFormat> {
        match name.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => anyhow::bail!("the log format must be \"text\" or \"json\", found {other:?}"),
        }
    }
}

/// The `[store]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `full` (default) or `normal`; see the README's durability section.
    pub durability: Option<DurabilityName>,
    /// Whether a start that upgrades the store's schema first copies it beside itself (default
    /// true), so the version before can be gone back to.
    pub backup_before_upgrade: Option<bool>,
}

/// The durability levels by name.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityName {
    /// Fsync on every commit.
    Full,
    /// Fsync at checkpoints only.
    Normal,
}

impl From<DurabilityName> for store::Durability {
    fn from(name: DurabilityName) -> store::Durability {
        match name {
            DurabilityName::Full => store::Durability::Full,
            DurabilityName::Normal => store::Durability::Normal,
        }
    }
}

/// A parse error by line and column, without the line itself: the line may hold a password.
fn described(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim_end();
    // Serde's "invalid type: integer `123`, expected a string" quotes the value.
    let redacted;
    let message = match message.split_once(", expected ") {
        Some((found, expected))
            if found.starts_with("invalid type") || found.starts_with("invalid value") =>
        {
            redacted = format!("{}, expected {expected}", found.split(':').next().unwrap_or(found));
            redacted.as_str()
        }
        _ => message,
    };
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            match key_before(before) {
                Some(key) => format!("line {line}, column {column}: {key}: {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message.to_string(),
    }
}

/// The key whose value starts where `before` ends, with its table as the example writes it
/// (`[mqtt] enabled`): the line's text left of `=`, and the last table header above. `None` when
/// the value does not follow a plain `key =` on its line (an error inside an inline table or an
/// array spread over lines), rather than a wrong name.
fn key_before(before: &str) -> Option<String> {
    let (lines, line) = before.rsplit_once('\n').unwrap_or(("", before));
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    let plain = |name: &str| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !plain(key) || !value.trim().is_empty() {
        return None;
    }
    let table = lines.lines().rev().map(str::trim).find(|l| l.starts_with('[')).and_then(|header| {
        let name = header.trim_start_matches('[');
        let name = name[..name.find(']')?].trim();
        plain(name).then(|| name.to_owned())
    });
    Some(match table {
        Some(table) => format!("[{table}] {key}"),
        None => key.to_owned(),
    })
}

/// Says on stderr when a config file with secrets can be read by other users of the computer.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: config file {} holds secrets and other users may read it (mode {:o}); chmod 600 it",
            path.display(),
            metadata.permissions().mode() & 0o777
        );
    }
}

impl FileConfig {
    /// Reads `path`, or returns the defaults when no file is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: FileConfig = toml::from_str(&text).map_err(|error| {
            anyhow::anyhow!("invalid config file {}: {}", path.display(), described(&error, &text))
        })?;
        config.validate().with_context(|| format!("invalid config file {}", path.display()))?;
        if config.holds_secrets() {
            warn_if_readable_by_others(path);
        }
        Ok(config)
    }

    /// Whether the file sets a password or a signing secret.
    fn holds_secrets(&self) -> bool {
        self.mqtt.password.is_some() || self.alarms.webhook_secret.is_some()
    }

    /// Numbers the types accept but the server cannot use (TOML has `nan` and `inf` too): a clear
    /// error at start instead of a stalled simulation or a planner that fails later.
    fn validate(&self) -> anyhow::Result<()> {
        in_range("[sim] speed", self.sim.speed, SimSettings::SPEEDS, "")?;
        in_range("[sim] orders_per_day", self.sim.orders_per_day, SimSettings::ORDERS_PER_DAY, "")?;
        let planning = &self.planning;
        let numbers = [
            (
                "repair_time_limit_seconds",
                planning.repair_time_limit_seconds,
                PlanningConfig::REPAIR_TIME_LIMITS,
            ),
            (
                "reoptimise_time_limit_seconds",
                planning.reoptimise_time_limit_seconds,
                PlanningConfig::REOPTIMISE_TIME_LIMITS,
            ),
            ("reoptimise_min_gain_percent", planning.reoptimise_min_gain_percent, PlanningConfig::MIN_GAINS),
            (
                "repair_search_loss_percent",
                planning.repair_search_loss_percent,
                PlanningConfig::SEARCH_LOSSES,
            ),
        ];
        for (key, value, range) in numbers {
            in_range(&format!("[planning] {key}"), value, range, "")?;
        }
        if let Err(error) = planning.reoptimise_minutes() {
            anyhow::bail!("[planning] reoptimise_at: {error}");
        }
        let retention = &self.retention;
        for (key, days) in [
            ("raw_days", retention.raw_days),
            ("rollup_days", retention.rollup_days),
            ("hourly_rollup_days", retention.hourly_rollup_days),
        ] {
            if days == 0 {
                anyhow::bail!(
                    "[retention] {key} must be at least 1 (0 would delete every reading at start), found 0"
                );
            }
        }
        if retention.hourly_rollup_days < retention.rollup_days {
            anyhow::bail!(
                "[retention] hourly_rollup_days ({}) must be at least rollup_days ({}): steps of whole hours read the hour roll-ups",
                retention.hourly_rollup_days,
                retention.rollup_days
            );
        }
        if let Some(secret) = &self.alarms.webhook_secret
            && secret.len() < 16
        {
            anyhow::bail!(
                "[alarms] webhook_secret must be at least 16 characters (a receiver checks signatures with it), found {}",
                secret.len()
            );
        }
        for url in &self.alarms.webhooks {
            server::parse_webhook_url(url).map_err(|e| anyhow::anyhow!("[alarms] webhooks: {e}"))?;
        }
        if self.retention.plan_days == 0 {
            anyhow::bail!(
                "[retention] plan_days must be at least 1 (the active plan is always kept), found 0"
            );
        }
        let minutes = [
            ("freeze_minutes", planning.freeze_minutes),
            ("expected_repair_minutes", planning.expected_repair_minutes),
            ("deviation_minutes", planning.deviation_minutes),
            ("repair_interval_minutes", planning.repair_interval_minutes),
            ("new_order_minutes", planning.new_order_minutes),
        ];
        for (key, value) in minutes {
            if !PlanningConfig::MINUTES.contains(&value) {
                anyhow::bail!(
                    "[planning] {key} must be at most {} (a week), found {value}",
                    PlanningConfig::MINUTES.end()
                );
            }
        }
        if !PlanningConfig::RUSH_PRIORITIES.contains(&planning.rush_priority) {
            anyhow::bail!(
                "[planning] rush_priority must be from 0 (off) to 10, found {}",
                planning.rush_priority
            );
        }
        let http = &self.http;
        for (key, value) in
            [("body_limit_bytes", http.body_limit_bytes), ("import_limit_bytes", http.import_limit_bytes)]
        {
            in_range(&format!("[http] {key}"), value, ServerConfig::BODY_LIMITS, " (1 KiB to 1 GiB)")?;
        }
        in_range("[http] max_connections", http.max_connections, ServerConfig::MAX_CONNECTIONS, "")?;
        in_range(
            "[http] header_timeout_seconds",
            http.header_timeout_seconds,
            ServerConfig::HEADER_TIMEOUTS,
            "",
        )?;
        if planning.solver_threads > server::replanner::MAX_SOLVER_THREADS {
            anyhow::bail!(
                "[planning] solver_threads must be from 0 (automatic) to {}, found {}",
                server::replanner::MAX_SOLVER_THREADS,
                planning.solver_threads
            );
        }
        in_range("[alarms] tick_seconds", self.alarms.tick_seconds, 1..=3600, "")?;
        let host_id = &self.mqtt.host_id;
        if host_id.is_empty() || host_id.contains(['/', '+', '#']) {
            anyhow::bail!(
                "[mqtt] host_id names the topic spBv1.0/STATE/{{host_id}}: it must not be empty or hold / + #, found {host_id:?}"
            );
        }
        // A persistent session needs a client id the broker accepts (MQTT 3.1.1 requires brokers
        // to take 1 to 23 letters and digits; most take more).
        let id = self.mqtt.client_id.as_deref().unwrap_or(&self.mqtt.host_id);
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            anyhow::bail!(
                "[mqtt] client_id (or host_id) must be 1 to 256 characters without control characters, found {id:?}"
            );
        }
        Ok(())
    }
}

/// Fails unless `value` is in `range`: "`what` must be from A to B`note`, found V". A range
/// holds no NaN, so this also refuses TOML's `nan`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    note: &str,
) -> anyhow::Result<()> {
    if !range.contains(&value) {
        anyhow::bail!("{what} must be from {} to {}{note}, found {value}", range.start(), range.end());
    }
    Ok(())
}

/// The commented example printed by `microfactory config example`. A test parses it, so it
/// always matches what [`FileConfig`] accepts.
pub const EXAMPLE: &str = r#"# microfactory configuration (TOML). Every key is optional; the values shown are the defaults.
# Command-line flags win over this file; this file wins over the defaults.

# Address of the HTTP API and web pages. Use 0.0.0.0:8080 to serve the factory network.
listen = "127.0.0.1:8080"

# Folder for the database (microfactory.db) and other state. Created if missing.
data_dir = "microfactory-data"

# Log filter, RUST_LOG syntax: a level (error, warn, info, debug, trace), optionally per module,
# e.g. "info,store=debug". The RUST_LOG environment variable wins when set.
log = "info"

# How log lines are written to stderr: "text" (for people) or "json" (one object per line, for log
# collectors). The MICROFACTORY_LOG_FORMAT environment variable wins when set.
log_format = "text"

[store]
# When a write is acknowledged it is committed. "full" also fsyncs it to disk first, so it survives
# a power cut; "normal" survives a crash of the process but may lose the last commits on power loss.
durability = "full"
# Before a new version upgrades the store's schema, it copies the store to
# microfactory-before-upgrade-N.db beside it (N: the old schema version), so the old version can
# be gone back to. The start stops if the copy cannot be made (say, for want of room).
backup_before_upgrade = true

[http]
# Largest JSON request body accepted, in bytes (larger requests get 413).
body_limit_bytes = 1048576
# Largest CSV order import accepted, in bytes.
import_limit_bytes = 16777216
# Open connections at most (browsers, scripts, event streams); more are closed as they arrive.
max_connections = 1024
# Seconds a client may take to send a request's headers, or stay idle between requests, before
# its connection is closed.
header_timeout_seconds = 30

[retention]
# Days raw readings are kept; older ones are deleted every ten minutes.
raw_days = 30
# Days the 1-minute roll-ups (min, max, avg, last, count) are kept; charts over long ranges use them.
rollup_days = 90
# Days the 1-hour roll-ups are kept, at least rollup_days; steps of whole hours read them.
hourly_rollup_days = 3650
# Days plans are kept from when they were computed, at least 1. The active plan is always kept.
plan_days = 90
# Days a browser session stays listed on the settings page after it expired (every sign-in makes
# one). API tokens do not expire and are kept.
session_days = 30

[planning]
# Repair the active plan and publish the repair by itself: every machine keeps the order of its
# work, work the plan starts within freeze_minutes keeps its place, the rest moves only as far as
# it must. This happens when a machine with planned work breaks down (it is taken out for
# expected_repair_minutes), when a rush order arrives, and when work runs off the plan.
auto_replan = true
# Seconds the solver may take for a repair, 0.05 to 60 (used when keeping the order of work breaks
# a rule, e.g. a calendar; the repair is then searched with the frozen work kept; and when keeping
# it costs too much, below).
repair_time_limit_seconds = 2.0
# Keeping every machine's order can cost far more than what happened: on a tightly packed plan, a
# lot that a few minutes' delay pushes past a shift's end waits for the next shift, and so does the
# last lot of each later shift. A repair whose kept order is more than this much worse than the
# active plan (weighted tardiness, or the end for the makespan objective; percent, 0 to 1000)
# searches from it for repair_time_limit_seconds, with the work of the next freeze_minutes kept
# where the kept order has it, and takes the search's plan when it is this much better. That plan
# may reorder much of the rest and move work to other machines. 0 turns it off.
repair_search_loss_percent = 10.0
freeze_minutes = 60
expected_repair_minutes = 60
# Repair when a lot runs this many minutes off the plan: still running past its planned end, not
# started past its planned start (once the shop floor reports any work on the plan), or started or
# finished this much ahead of it. 0 turns it off.
deviation_minutes = 30
# ... but not within this many minutes of the last published plan, so a planner's plan stands a
# while and a shop floor that keeps drifting is not re-planned every minute.
repair_interval_minutes = 10
# A released order of this priority (1 to 10) or more that the active plan does not have is slotted
# in at once. 0 turns it off.
rush_priority = 8
# Other released orders that the active plan does not have are slotted in (by ATCS, not ahead of
# other work) once the active plan is this many minutes old: no such order waits longer, and
# several released together make one repair. 0: they wait for the next repair for another reason.
new_order_minutes = 15
# Solver threads of every plan and repair. 0: two where the machine has two cores or more (the
# second searches from the solver's own starts, the first from the best dispatching rule); 1 keeps
# a core free for the rest of the server while a plan is computed. At most 64.
solver_threads = 0
# Times of day (the site's local time, "HH:MM") of the scheduled re-optimisation. Repairs keep the
# order of work on every machine, so after many of them a plan drifts from what a fresh search
# would give. At these times the planner searches afresh over all open work (work the plan starts
# within freeze_minutes keeps its place) and publishes the result when it beats the active plan by
# reoptimise_min_gain_percent: fewer weighted late hours, or, with them no worse, an earlier end
# (for the makespan objective the other way round). Needs auto_replan; [] turns it off.
reoptimise_at = ["05:00"]
# Seconds the solver may take for it, 1 to 600.
reoptimise_time_limit_seconds = 30.0
# How much better, in percent (0 to 50), so a trifle does not reshuffle the shop floor.
reoptimise_min_gain_percent = 1.0

[alarms]
# http:// URLs that receive every alarm change (raised, acknowledged, cleared) as a JSON POST.
# Failed deliveries are retried after 1, 2, 4 and 8 s, then given up and logged.
webhooks = []
# How often delays, stale-data and long-stop conditions are checked, in seconds.
tick_seconds = 2
# A secret shared with the webhook receivers, at least 16 characters: each POST then carries
# X-Microfactory-Timestamp (Unix seconds) and X-Microfactory-Signature (sha256=<hex>, the
# HMAC-SHA256 of "{timestamp}.{body}"), so receivers can tell the platform's notifications apart.
# webhook_secret = "…"

[mqtt]
# Connect machines over MQTT (Sparkplug B 3.0 on spBv1.0/#, JSON on mf/v1/{site}/{machine}/...).
enabled = true
# Address of the embedded broker. Devices sign in with an API token as the password; a device
# account may publish only for its own site. Use 0.0.0.0:1883 to serve the factory network.
listen = "127.0.0.1:1883"
# Instead of the embedded broker, subscribe to an external one (Mosquitto, EMQX, HiveMQ) at
# "host:port", with these credentials. The external broker's own access control then applies.
# external = "broker.factory.lan:1883"
# Sparkplug primary host id: the platform publishes spBv1.0/STATE/{host_id} (retained, online or
# offline) so edge nodes know when it listens.
host_id = "microfactory"
# username = "microfactory"
# password = "..."
# The platform's client id at the external broker (default: host_id). Keep it fixed and unique:
# the broker holds this session's messages while the platform is away and sends them on return.
# client_id = "microfactory"

[sim]
# `demo` only: run the simulated factory, publishing through the embedded broker.
enabled = true
# (`speed` and `seed` are read by `microfactory sim` too; its --speed and --seed win.)
# Simulated seconds per real second (60: a 10-minute operation takes 10 seconds), 0.1 to 10000.
# The whole demo keeps this fast factory clock (plans, due dates, alarms); sign-ins keep real time.
speed = 60.0
# Seed of every random choice: the same seed gives the same factory.
seed = 2026
# New customer orders per simulated day, released as they arrive; one in six is a rush order
# (priority 9, due the next day), which the automatic repair slots in. 0 for none.
orders_per_day = 10.0
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_matches_the_defaults() {
        let parsed: FileConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(parsed.http, ServerConfig::default());
        assert_eq!(parsed.alarms, AlarmConfig::default());
        assert_eq!(parsed.mqtt, MqttConfig::default());
        assert_eq!(parsed.sim, SimSettings::default());
        assert_eq!(parsed.retention, RetentionConfig::default());
        assert_eq!(parsed.planning, PlanningConfig::default());
        assert_eq!(parsed.store.durability, Some(DurabilityName::Full));
        assert_eq!(parsed.listen, Some(crate::DEFAULT_LISTEN.parse().unwrap()));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_told_with_its_key_but_not_the_value() {
        let error = |text: &str| described(&toml::from_str::<FileConfig>(text).unwrap_err(), text);
        assert_eq!(
            error("[mqtt]\nenabled = 3\n"),
            "line 2, column 11: [mqtt] enabled: invalid type, expected a boolean"
        );
        assert_eq!(
            error("log = \"info\"\n\n[mqtt] # the broker\npassword = 12345\n"),
            "line 4, column 12: [mqtt] password: invalid type, expected a string"
        );
        assert_eq!(
            error("listen = 8080"),
            "line 1, column 10: listen: invalid type, expected socket address"
        );
        // A value inside an inline table is not guessed at.
        let inline = error("planning = { freeze_minutes = \"x\" }\n");
        assert!(inline.starts_with("line 1, column 31: invalid type"), "{inline}");
    }

    #[test]
    fn numbers_the_server_cannot_use_are_rejected() {
        let error = |text: &str| {
            let config: FileConfig = toml::from_str(text).unwrap();
            config.validate().unwrap_err().to_string()
        };
        assert_eq!(error("[sim]\nspeed = nan"), "[sim] speed must be from 0.1 to 10000, found NaN");
        assert_eq!(error("[sim]\nspeed = 0.0"), "[sim] speed must be from 0.1 to 10000, found 0");
        assert_eq!(
            error("[sim]\norders_per_day = -1.0"),
            "[sim] orders_per_day must be from 0 to 1000, found -1"
        );
        assert_eq!(
            error("[planning]\nrepair_time_limit_seconds = inf"),
            "[planning] repair_time_limit_seconds must be from 0.05 to 60, found inf"
        );
        assert_eq!(
            error("[planning]\ndeviation_minutes = 20000"),
            "[planning] deviation_minutes must be at most 10080 (a week), found 20000"
        );
        assert!(error("[retention]\nplan_days = 0").starts_with("[retention] plan_days must be at least 1"));
        assert!(error("[retention]\nraw_days = 0").starts_with("[retention] raw_days must be at least 1"));
        assert!(
            error("[alarms]\nwebhook_secret = \"short\"")
                .starts_with("[alarms] webhook_secret must be at least 16")
        );
        assert!(
            error("[retention]\nrollup_days = 0").starts_with("[retention] rollup_days must be at least 1")
        );
        assert!(
            error("[retention]\nhourly_rollup_days = 0")
                .starts_with("[retention] hourly_rollup_days must be at least 1")
        );
        assert!(
            error("[retention]\nrollup_days = 400\nhourly_rollup_days = 365")
                .starts_with("[retention] hourly_rollup_days (365) must be at least rollup_days (400)")
        );
        assert_eq!(
            error("[planning]\nrush_priority = 11"),
            "[planning] rush_priority must be from 0 (off) to 10, found 11"
        );
        assert_eq!(
            error("[planning]\nreoptimise_min_gain_percent = 60.0"),
            "[planning] reoptimise_min_gain_percent must be from 0 to 50, found 60"
        );
        assert_eq!(
            error("[planning]\nreoptimise_at = [\"5:00\"]"),
            "[planning] reoptimise_at: \"5:00\" is not a time of day such as \"05:30\""
        );
        assert_eq!(
            error("[planning]\nreoptimise_at = [\"22:00\", \"24:00\"]"),
            "[planning] reoptimise_at: \"24:00\" is not a time of day such as \"05:30\""
        );
        assert_eq!(
            error("[planning]\nreoptimise_at = [\"22:00\", \"06:00\", \"22:00\"]"),
            "[planning] reoptimise_at: \"22:00\" is given twice"
        );
        assert!(error("[mqtt]\nclient_id = \"\"").starts_with("[mqtt] client_id (or host_id) must be"));
        assert!(error("[mqtt]\nhost_id = \"a\\nb\"").ends_with("found \"a\\nb\""));
        let example: FileConfig = toml::from_str(EXAMPLE).unwrap();
        assert!(example.validate().is_ok());
    }

    #[test]
    fn a_parse_error_names_the_place_but_never_the_value() {
        let dir = std::env::temp_dir().join(format!("mf-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for text in [
            "[alarms]\nwebhook_secrett = \"WEBHOOK-SECRET-1234567\"\n",
            "[mqtt]\npassword = \"MQTT-PASSWORD-SECRET-xyz123\n",
            "[mqtt]\npassword = 12345678901234567\n",
        ] {
            let path = dir.join("microfactory.toml");
            std::fs::write(&path, text).unwrap();
            let error = format!("{:#}", FileConfig::load(Some(&path)).unwrap_err());
            assert!(error.contains("line 2"), "{error}");
            for secret in ["WEBHOOK-SECRET", "MQTT-PASSWORD", "12345678901234567"] {
                assert!(!error.contains(secret), "{error}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<FileConfig>("lisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
