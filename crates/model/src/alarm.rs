//! Alarm rules and the engine that evaluates them. Pure: the engine is fed readings, state changes
//! and clock ticks, and answers with the alarms to raise and clear; the server stores them and
//! sends notifications.
//!
//! An alarm has a life cycle `active → acknowledged → cleared` (or `active → cleared`): the engine
//! raises it when the rule's condition has held for `for_seconds`, and clears it when the
//! condition stops holding. Acknowledging is a person's act and does not clear it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::oee::unix_ms;
use crate::validate::{FieldError, Validate, check_range};
use crate::{MachineId, MachineState, Reading, SiteId, StateChange, Timestamp, check_name};

/// How urgent an alarm is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now: safety or a stopped line.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The inverse of [`Severity::as_str`].
    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a rule watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The metric is above `threshold`.
    Above {
        /// The limit.
        threshold: f64,
    },
    /// The metric is below `threshold`.
    Below {
        /// The limit.
        threshold: f64,
    },
    /// The metric changes faster than `per_minute` units per minute (either direction).
    RateAbove {
        /// The limit, in units per minute.
        per_minute: f64,
    },
    /// No reading of the metric for `seconds`.
    Stale {
        /// How long silence is tolerated.
        seconds: u32,
    },
    /// The machine has been stopped (down or offline) for longer than `minutes`. Idle (waiting
    /// for work), a setup and a planned stop are not stops: they are planned or have nothing to
    /// do, and work they hold up shows as work behind the plan.
    StoppedLonger {
        /// How long a stop is tolerated.
        minutes: u32,
    },
}

impl Condition {
    /// Whether the rule needs a metric name.
    pub fn needs_metric(&self) -> bool {
        !matches!(self, Condition::StoppedLonger { .. })
    }
}

/// An alarm rule to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlarmRule {
    /// What the alarm says, e.g. `Gas leak`.
    pub name: String,
    /// One machine, or every machine when absent.
    #[serde(default)]
    pub machine_id: Option<MachineId>,
    /// Without `machine_id`: every machine of this site only (every site's when absent too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<SiteId>,
    /// The metric watched (not for `stopped_longer`).
    #[serde(default)]
    pub metric: Option<String>,
    /// The condition.
    pub condition: Condition,
    /// How long the condition must hold before the alarm is raised (0 = at once); for
    /// `stopped_longer`, on top of its minutes.
    #[serde(default)]
    pub for_seconds: u32,
    /// The return-to-normal band of `above`, `below` and `rate_above` (0 = none): a raised alarm
    /// clears only once the value is back past the limit by more than this, so a value that
    /// wavers around the limit raises one alarm, not one per crossing.
    #[serde(default)]
    pub deadband: f64,
    /// How urgent the alarm is.
    pub severity: Severity,
    /// Disabled rules raise nothing.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl Validate for NewAlarmRule {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_name("name", &self.name, &mut out);
        if self.machine_id.is_some() && self.site_id.is_some() {
            out.push(FieldError::new(
                "site_id",
                "give a machine or a site, not both: a machine is at one site",
            ));
        }
        match (&self.metric, self.condition.needs_metric()) {
            (None, true) => out.push(FieldError::new("metric", "this condition watches a metric; name it")),
            (Some(_), false) => {
                out.push(FieldError::new("metric", "stopped_longer watches the machine state, not a metric"))
            }
            (Some(metric), true) => check_metric_name("metric", metric, &mut out),
            (None, false) => {}
        }
        match &self.condition {
            Condition::Above { threshold } | Condition::Below { threshold } => {
                check_range("condition.threshold", *threshold, -1e12, 1e12, &mut out)
            }
            Condition::RateAbove { per_minute } => {
                check_range("condition.per_minute", *per_minute, 0.0, 1e12, &mut out)
            }
            Condition::Stale { seconds } if *seconds == 0 => {
                out.push(FieldError::new("condition.seconds", "must be at least 1"))
            }
            Condition::StoppedLonger { minutes } if *minutes == 0 => {
                out.push(FieldError::new("condition.minutes", "must be at least 1"))
            }
            _ => {}
        }
        if !matches!(
            self.condition,
            Condition::Above { .. } | Condition::Below { .. } | Condition::RateAbove { .. }
        ) && self.deadband != 0.0
        {
            out.push(FieldError::new("deadband", "only above, below and rate_above have a deadband"));
        } else if let Condition::RateAbove { per_minute } = self.condition
            && self.deadband >= per_minute
            && per_minute > 0.0
        {
            out.push(FieldError::new("deadband", "must be below the rate limit, or the alarm never clears"));
        } else {
            check_range("deadband", self.deadband, 0.0, 1e12, &mut out);
        }
        if self.for_seconds > 86_400 {
            out.push(FieldError::new("for_seconds", "must be at most one day"));
        }
        out
    }
}

/// Metric names: 1 to 128 printable characters, without text-direction controls (ingest drops
/// metrics named with one, so a rule on such a name could never fire).
pub fn check_metric_name(field: &str, name: &str, out: &mut Vec<FieldError>) {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        out.push(FieldError::new(field, "must be 1 to 128 printable characters"));
    } else if name.chars().any(crate::is_bidi_control) {
        out.push(FieldError::new(field, "must not contain text-direction controls"));
    }
}

/// A stored rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlarmRule {
    /// Store-assigned id.
    pub id: i64,
    /// The rule's contents.
    #[serde(flatten)]
    pub rule: NewAlarmRule,
}

/// What the engine decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// Raise an alarm.
    Raise {
        /// The rule.
        rule_id: i64,
        /// The machine.
        machine: MachineId,
        /// When the condition started to hold.
        at: Timestamp,
        /// When it had held long enough: the delay ran out (the time of the reading or tick
        /// that found it so).
        fired: Timestamp,
        /// The value that tripped it, for metric conditions; for `rate_above`, the rate per
        /// minute.
        value: Option<f64>,
        /// A sentence for people.
        message: String,
    },
    /// The condition no longer holds.
    Clear {
        /// The rule.
        rule_id: i64,
        /// The machine.
        machine: MachineId,
        /// When it stopped holding.
        at: Timestamp,
    },
}

/// A series' latest reading, as the engine judged it.
#[derive(Clone, Copy)]
struct Latest {
    /// Its time for the engine: its stamp, or when it arrived if it was stamped later than that
    /// (a device clock ahead of the platform's must not hold back the readings after it).
    at: Timestamp,
    /// Its stamp, for rates.
    stamped: Timestamp,
    value: f64,
    /// When it reached the engine: `None` for one taken up from the store at a restart.
    arrived: Option<Timestamp>,
    /// The newest stamp of the series' readings that were not stamped ahead of their arrival: a
    /// reading older than this came out of order. A reading stamped ahead does not move it, so
    /// the rightly stamped readings after it still count.
    in_order_from: Option<Timestamp>,
}

/// An `above` or `below` rule's delay that may have been running when the platform stopped:
/// the series' latest stored value meets the rule, and no alarm is up (see
/// [`Engine::running_delays`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RunningDelay {
    /// The rule.
    pub rule_id: i64,
    /// The machine.
    pub machine: MachineId,
    /// The series' metric.
    pub metric: String,
    /// How far back the series' readings matter: the delay before its latest reading. A
    /// condition that held from here on has held long enough.
    pub look_back_to: Timestamp,
}

#[derive(Default)]
struct Track {
    /// Since when the condition holds, if it does.
    since: Option<(Timestamp, Option<f64>)>,
    /// Whether an alarm is up.
    raised: bool,
}

/// Evaluates every rule against what the machines report.
#[derive(Default)]
pub struct Engine {
    rules: Vec<AlarmRule>,
    tracks: HashMap<(i64, MachineId), Track>,
    /// Each series' latest reading.
    last_reading: HashMap<(MachineId, String), Latest>,
    /// Each machine's state and since when it has been in it; for a stop (down or offline,
    /// whatever the reports' reasons), since the stop began.
    states: HashMap<MachineId, (Timestamp, MachineState)>,
    /// The time of each machine's latest state report taken in: an older one that comes after
    /// it (late, or already taken up from the store) changes nothing.
    reported: HashMap<MachineId, Timestamp>,
    /// When the engine started after a restart: silence before it was the platform's, not the
    /// sensors', so staleness counts from here at the earliest (rates use the true times).
    heard_from: Option<Timestamp>,
    /// Each machine's maintenance windows (start, end) not over yet, or over lately: a stop
    /// within one is planned, so it is no long stop (see [`Engine::set_maintenance`]).
    maintenance: HashMap<MachineId, Vec<(Timestamp, Timestamp)>>,
    /// Each machine's site, for the rules of one site's machines (see [`Engine::set_sites`]).
    sites: HashMap<MachineId, SiteId>,
}

impl Engine {
    /// An engine with `rules`; `raised` are the (rule, machine) pairs that already have an alarm
    /// up (from the store, after a restart), so they are not raised twice.
    pub fn new(rules: Vec<AlarmRule>, raised: &[(i64, MachineId)]) -> Engine {
        let mut engine = Engine { rules, ..Engine::default() };
        for key in raised {
            engine.tracks.entry(*key).or_default().raised = true;
        }
        engine
    }

    /// Takes up what the machines were doing when the engine starts (after a restart): each
    /// machine's current state, so a long stop that began before is still caught, and each series'
    /// latest reading. A series counts as heard from at `now` at the earliest, so silence while the
    /// platform itself was down does not raise "stale" for every sensor at once.
    pub fn resume(&mut self, states: &[StateChange], latest: &[Reading], now: Timestamp) {
        for change in states {
            self.states.insert(change.machine, (change.at, change.state));
            self.reported.insert(change.machine, change.at);
        }
        for reading in latest {
            let key = (reading.machine, reading.metric.clone());
            let latest = Latest {
                at: reading.at,
                stamped: reading.at,
                value: reading.value,
                arrived: None,
                in_order_from: Some(reading.at),
            };
            self.last_reading.insert(key, latest);
        }
        self.heard_from = Some(now);
    }

    /// The platform's clock was stepped (not slewed) to `now`: silence counts from here at the
    /// earliest, as after a restart, so a step forward does not make every sensor seem silent for
    /// the size of the step, nor a step back silent for none.
    pub fn clock_stepped(&mut self, now: Timestamp) {
        for latest in self.last_reading.values_mut() {
            latest.arrived = latest.arrived.map(|arrived| arrived.min(now));
            // After a step back, readings stamped by the platform on arrival come in order again.
            latest.in_order_from = latest.in_order_from.map(|from| from.min(now));
        }
        self.heard_from = Some(now);
    }

    /// After [`Engine::resume`]: the delays of `above` and `below` rules that may have been
    /// running when the platform stopped, in a stable order; a rule without a delay is among them
    /// (the platform may have stopped between storing a reading and raising its alarm). Each one's series is read back from
    /// the store and given to [`Engine::resume_delay`], so a value that began to hold before the
    /// restart raises its alarm once it has held for the delay, counted from when it began (a
    /// sensor that reports only on change sends nothing to start it again).
    pub fn running_delays(&self) -> Vec<RunningDelay> {
        let mut delays = Vec::new();
        for ((machine, metric), latest) in &self.last_reading {
            for rule in &self.rules {
                if !applies(rule, *machine, &self.sites)
                    || rule.rule.metric.as_deref() != Some(metric.as_str())
                    || holds_threshold(rule, latest.value) != Some(true)
                    || self.tracks.get(&(rule.id, *machine)).is_some_and(|track| track.raised)
                {
                    continue;
                }
                let look_back_to = latest.at - time::Duration::seconds(i64::from(rule.rule.for_seconds));
                delays.push(RunningDelay {
                    rule_id: rule.id,
                    machine: *machine,
                    metric: metric.clone(),
                    look_back_to,
                });
            }
        }
        delays.sort_by(|a, b| (a.machine, &a.metric, a.rule_id).cmp(&(b.machine, &b.metric, b.rule_id)));
        delays
    }

    /// Starts a delay that was running at a restart from `newest_first`: a page of the series'
    /// stored readings, from its latest (or from before the previous page) back towards
    /// [`RunningDelay::look_back_to`] and the one before it. The delay counts from the oldest
    /// reading of the run that meets the rule up to the latest; the next tick raises the alarm if
    /// it has held long enough by then. Raises nothing itself. Returns the stamp before which the
    /// next page is to be read, while the run may go on further back.
    pub fn resume_delay(&mut self, delay: &RunningDelay, newest_first: &[Reading]) -> Option<Timestamp> {
        let rule = self.rules.iter().find(|r| r.id == delay.rule_id)?;
        let track = self.tracks.entry((delay.rule_id, delay.machine)).or_default();
        if track.raised {
            return None;
        }
        for reading in newest_first {
            if holds_threshold(rule, reading.value) != Some(true) {
                return None;
            }
            track.since = Some((reading.at, Some(reading.value)));
            if reading.at <= delay.look_back_to {
                return None;
            }
        }
        newest_first.last().map(|reading| reading.at)
    }

    /// Stops watching `machine` (it was retired or deleted): its alarms up clear at `at`, and what
    /// the engine knew of it is forgotten.
    pub fn forget(&mut self, machine: MachineId, at: Timestamp, out: &mut Vec<Transition>) {
        let mut cleared: Vec<i64> = self
            .tracks
            .iter()
            .filter(|((_, m), track)| *m == machine && track.raised)
            .map(|((rule, _), _)| *rule)
            .collect();
        cleared.sort_unstable();
        out.extend(cleared.into_iter().map(|rule_id| Transition::Clear { rule_id, machine, at }));
        self.tracks.retain(|(_, m), _| *m != machine);
        self.last_reading.retain(|(m, _), _| *m != machine);
        self.states.remove(&machine);
        self.reported.remove(&machine);
    }

    /// Replaces the rules (after an edit); state of unchanged enabled rules is kept. A threshold
    /// rule new to a series (created, or enabled again) judges the series' latest value at once,
    /// as if it had just arrived, rather than wait for the next reading.
    pub fn set_rules(&mut self, rules: Vec<AlarmRule>, now: Timestamp, out: &mut Vec<Transition>) {
        // A disabled rule's alarms are cleared; enabled again, it starts afresh. A rule whose
        // condition changed (kind, limit, metric, machine, delay or band) starts afresh too: a
        // delay that ran under the old condition does not run on under the new one. An alarm it
        // has up stays up, judged by the new condition at once below.
        let changed: Vec<i64> = rules
            .iter()
            .filter(|new| self.rules.iter().any(|old| old.id == new.id && !same_condition(old, new)))
            .map(|rule| rule.id)
            .collect();
        // An alarm up under a rule that no longer watches that machine, metric or kind of
        // condition clears.
        let mut gone: Vec<(i64, MachineId)> = self
            .tracks
            .iter()
            .filter(|((id, machine), track)| {
                track.raised
                    && changed.contains(id)
                    && rules.iter().find(|r| r.id == *id).is_some_and(|new| {
                        let old = self.rules.iter().find(|r| r.id == *id);
                        !applies(new, *machine, &self.sites)
                            || old.is_some_and(|old| {
                                old.rule.metric != new.rule.metric
                                    || std::mem::discriminant(&old.rule.condition)
                                        != std::mem::discriminant(&new.rule.condition)
                            })
                    })
            })
            .map(|(key, _)| *key)
            .collect();
        gone.sort_unstable();
        for (rule_id, machine) in gone {
            self.tracks.remove(&(rule_id, machine));
            out.push(Transition::Clear { rule_id, machine, at: now });
        }
        self.tracks.retain(|(rule, _), track| {
            rules.iter().any(|r| r.id == *rule && r.rule.enabled) && (track.raised || !changed.contains(rule))
        });
        self.rules = rules;
        let mut latest: Vec<(MachineId, &String, Timestamp, f64)> = self
            .last_reading
            .iter()
            .map(|((machine, metric), latest)| (*machine, metric, latest.at, latest.value))
            .collect();
        latest.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (machine, metric, at, value) in latest {
            for rule in &self.rules {
                if !applies(rule, machine, &self.sites)
                    || rule.rule.metric.as_deref() != Some(metric.as_str())
                {
                    continue;
                }
                let Some(holds) = holds_threshold(rule, value) else { continue };
                match self.tracks.entry((rule.id, machine)) {
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        step(rule, machine, entry.insert(Track::default()), holds, at, Some(value), out);
                    }
                    // An alarm up under a changed rule holds while the value is past the new limit
                    // by less than the band.
                    std::collections::hash_map::Entry::Occupied(mut entry)
                        if entry.get().raised && changed.contains(&rule.id) =>
                    {
                        let holds = holds_banded(rule, value, true).unwrap_or(holds);
                        step(rule, machine, entry.get_mut(), holds, at, Some(value), out);
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {}
                }
            }
        }
    }

    /// Brings the engine up to what the store holds, after inputs were lost (the worker's queue
    /// was full): the rules as they are now, each machine's current state report newer than the
    /// engine's (with when its stop began, for a stop), and each series' latest reading newer
    /// than the engine's, taken as arriving at `now`. What happened between is not judged; what
    /// holds now is.
    pub fn catch_up(
        &mut self,
        rules: Vec<AlarmRule>,
        states: &[(StateChange, Option<Timestamp>)],
        latest: &[Reading],
        now: Timestamp,
        out: &mut Vec<Transition>,
    ) {
        self.set_rules(rules, now, out);
        for (change, stop_began) in states {
            if self.reported.get(&change.machine).is_some_and(|known| change.at <= *known) {
                continue;
            }
            // The stop's start, so it counts from there; the report's own time is the newest known.
            let from = StateChange { at: stop_began.unwrap_or(change.at).min(change.at), ..change.clone() };
            self.reported.remove(&change.machine);
            self.on_state(&from, out);
            self.reported.insert(change.machine, change.at);
        }
        for reading in latest {
            let key = (reading.machine, reading.metric.clone());
            // One stamped ahead of now may have come before the engine's latest (the store keeps no
            // arrival order): it is not taken for the value in force.
            let ahead = reading.at > now && self.last_reading.contains_key(&key);
            if !ahead && self.last_reading.get(&key).is_none_or(|known| known.stamped < reading.at) {
                self.on_reading_at(reading, now, out);
            }
        }
    }

    /// Feeds one reading as it happens (it reaches the engine at its own time).
    pub fn on_reading(&mut self, reading: &Reading, out: &mut Vec<Transition>) {
        self.on_reading_at(reading, reading.at, out);
    }

    /// Feeds one reading that reached the platform at `arrived`. A series' time goes on from its
    /// latest reading only as fast as the clock since that reading arrived: a gateway sending
    /// five minutes of buffered readings does not make a value seem to have held for five minutes
    /// before the readings after it, which say otherwise, have arrived too. A reading stamped
    /// later than it arrived (a device clock ahead of the platform's) is judged as of its arrival.
    pub fn on_reading_at(&mut self, reading: &Reading, arrived: Timestamp, out: &mut Vec<Transition>) {
        let key = (reading.machine, reading.metric.clone());
        let at = reading.at.min(arrived);
        // A reading older than the series' latest arrived out of order: the newer one says what
        // the value is now, so it changes no condition (it would otherwise bring an old value
        // back as the current one). After a restart, the latest is the store's, and what the
        // store held before it has been judged from the store (`resume_delay`).
        let previous = self.last_reading.get(&key);
        let known = previous.and_then(|latest| latest.in_order_from);
        // Two readings stamped ahead keep the order of their stamps too.
        let both_ahead = previous.is_some_and(|latest| {
            reading.at > arrived && latest.arrived.is_some_and(|seen| latest.stamped > seen)
        });
        if known.is_some_and(|known| reading.at < known)
            || both_ahead && previous.is_some_and(|latest| reading.at < latest.stamped)
        {
            return;
        }
        let in_order_from = if reading.at <= arrived { Some(reading.at) } else { known };
        let latest =
            Latest { at, stamped: reading.at, value: reading.value, arrived: Some(arrived), in_order_from };
        let previous = self.last_reading.insert(key, latest);
        for rule in &self.rules {
            if !applies(rule, reading.machine, &self.sites)
                || rule.rule.metric.as_deref() != Some(reading.metric.as_str())
            {
                continue;
            }
            // A raised alarm holds until the value is back past the limit by the deadband.
            let raised = self.tracks.get(&(rule.id, reading.machine)).is_some_and(|track| track.raised);
            let band = if raised { rule.rule.deadband } else { 0.0 };
            let holds = match rule.rule.condition {
                Condition::Above { .. } | Condition::Below { .. } => {
                    holds_banded(rule, reading.value, raised).map(|holds| (holds, Some(reading.value)))
                }
                // Between the two readings' own stamps (none across a step back of the device's
                // clock); the alarm's value is the rate per minute.
                Condition::RateAbove { per_minute } => previous.and_then(|previous| {
                    let minutes = (unix_ms(reading.at) - unix_ms(previous.stamped)) as f64 / 60_000.0;
                    (minutes > 0.0).then(|| {
                        let rate = ((reading.value - previous.value) / minutes).abs();
                        (rate > per_minute - band, Some(rate))
                    })
                }),
                // A fresh reading ends staleness.
                Condition::Stale { .. } => Some((false, None)),
                Condition::StoppedLonger { .. } => None,
            };
            if let Some((holds, value)) = holds {
                let track = self.tracks.entry((rule.id, reading.machine)).or_default();
                step(rule, reading.machine, track, holds, at, value, out);
            }
        }
    }

    /// Feeds a state change.
    pub fn on_state(&mut self, change: &StateChange, out: &mut Vec<Transition>) {
        if self.reported.get(&change.machine).is_some_and(|latest| change.at < *latest) {
            return;
        }
        self.reported.insert(change.machine, change.at);
        // A stop goes on through reports of other reasons (or offline): it counts from its start.
        let stop = |state: MachineState| matches!(state, MachineState::Down | MachineState::Offline);
        let since = match self.states.get(&change.machine) {
            Some(&(at, state)) if stop(state) && stop(change.state) => at.min(change.at),
            _ => change.at,
        };
        self.states.insert(change.machine, (since, change.state));
        for rule in &self.rules {
            if !applies(rule, change.machine, &self.sites)
                || !matches!(rule.rule.condition, Condition::StoppedLonger { .. })
            {
                continue;
            }
            let track = self.tracks.entry((rule.id, change.machine)).or_default();
            let stopped = matches!(change.state, MachineState::Down | MachineState::Offline);
            if stopped {
                if track.since.is_none() {
                    track.since = Some((change.at, None));
                }
            } else {
                step(rule, change.machine, track, false, change.at, None, out);
            }
        }
    }

    /// Replaces what the engine knows of the machines' sites: a rule for one site's machines
    /// watches those it knows to be there. An alarm up for a machine that left the site stays
    /// until its condition clears, as for a rule changed to another machine.
    pub fn set_sites(&mut self, sites: HashMap<MachineId, SiteId>) {
        self.sites = sites;
    }

    /// Replaces the machines' maintenance windows: a machine stopped within one is not stopped
    /// for long (the window is the stop's plan), and a stop it began before or during one counts
    /// from the window's end.
    pub fn set_maintenance(&mut self, windows: HashMap<MachineId, Vec<(Timestamp, Timestamp)>>) {
        self.maintenance = windows;
    }

    /// When a stop of `machine` since `since` began to count as unplanned by `now`: `None` while
    /// a maintenance window holds it, else the end of the last window it ran through, or `since`.
    fn unplanned_since(&self, machine: MachineId, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let windows = self.maintenance.get(&machine).map_or(&[][..], Vec::as_slice);
        if windows.iter().any(|&(start, end)| start <= now && now < end) {
            return None;
        }
        Some(
            windows
                .iter()
                .filter(|&&(start, end)| start <= now && end > since)
                .map(|&(_, end)| end)
                .fold(since, Timestamp::max),
        )
    }

    /// Advances time: raises delayed alarms, stale data and long stops. `machines` lists every
    /// machine, so rules for all machines can find silent ones.
    pub fn on_tick(&mut self, now: Timestamp, machines: &[MachineId], out: &mut Vec<Transition>) {
        for rule in &self.rules {
            if !rule.rule.enabled {
                continue;
            }
            for &machine in machines {
                if !applies(rule, machine, &self.sites) {
                    continue;
                }
                match rule.rule.condition {
                    Condition::Stale { seconds } => {
                        let Some(metric) = &rule.rule.metric else { continue };
                        // Only series that have ever reported can go stale.
                        let Some(latest) = self.last_reading.get(&(machine, metric.clone())) else {
                            continue;
                        };
                        // Silence is the platform's: readings a gateway sends late end it when
                        // they arrive, and it counts from there.
                        let last = latest.arrived.unwrap_or(latest.at);
                        let last = self.heard_from.map_or(last, |start| start.max(last));
                        let silent = unix_ms(now) - unix_ms(last) > i64::from(seconds) * 1000;
                        let track = self.tracks.entry((rule.id, machine)).or_default();
                        if silent && track.since.is_none() {
                            track.since = Some((last + time::Duration::seconds(i64::from(seconds)), None));
                        }
                        // Only a reading ends staleness: an alarm up at a restart stays up.
                        let holds = track.since.is_some() || track.raised;
                        step(rule, machine, track, holds, now, None, out);
                    }
                    Condition::StoppedLonger { minutes } => {
                        let track = self.tracks.entry((rule.id, machine)).or_default();
                        // A rule created (or an engine started) while the machine was already
                        // stopped counts from when it stopped.
                        if track.since.is_none()
                            && let Some((at, MachineState::Down | MachineState::Offline)) =
                                self.states.get(&machine)
                        {
                            track.since = Some((*at, None));
                        }
                        let (since, raised) = (track.since.map(|(at, _)| at), track.raised);
                        if let Some(since) = since
                            && !raised
                            && let Some(since) = self.unplanned_since(machine, since, now)
                            && unix_ms(now) - unix_ms(since)
                                >= i64::from(minutes) * 60_000 + i64::from(rule.rule.for_seconds) * 1000
                        {
                            let track = self.tracks.entry((rule.id, machine)).or_default();
                            track.raised = true;
                            out.push(raise(rule, machine, since, now, None));
                        }
                    }
                    _ => {
                        let track = self.tracks.entry((rule.id, machine)).or_default();
                        if track.since.is_some() {
                            // How far the series has got: its latest reading, and the time since
                            // it arrived (now, for readings sent as they happen).
                            let series_now = rule
                                .rule
                                .metric
                                .as_ref()
                                .and_then(|metric| self.last_reading.get(&(machine, metric.clone())))
                                .and_then(|latest| {
                                    latest.arrived.map(|arrived| now.min(latest.at + (now - arrived)))
                                })
                                .unwrap_or(now);
                            step(rule, machine, track, true, series_now, None, out);
                        }
                    }
                }
            }
        }
    }
}

/// Whether two versions of a rule watch the same condition (they may differ in name, severity or
/// being enabled).
fn same_condition(old: &AlarmRule, new: &AlarmRule) -> bool {
    let (old, new) = (&old.rule, &new.rule);
    (&old.machine_id, &old.site_id, &old.metric, &old.condition, old.for_seconds, old.deadband)
        == (&new.machine_id, &new.site_id, &new.metric, &new.condition, new.for_seconds, new.deadband)
}

/// Whether `value` meets an `above` or `below` rule, with its deadband when an alarm is up;
/// `None` for the other conditions.
fn holds_banded(rule: &AlarmRule, value: f64, raised: bool) -> Option<bool> {
    let band = if raised { rule.rule.deadband } else { 0.0 };
    match rule.rule.condition {
        Condition::Above { threshold } => Some(value > threshold - band),
        Condition::Below { threshold } => Some(value < threshold + band),
        _ => None,
    }
}

/// Whether `value` meets an `above` or `below` rule (without its deadband); `None` for the
/// other conditions.
fn holds_threshold(rule: &AlarmRule, value: f64) -> Option<bool> {
    holds_banded(rule, value, false)
}

/// Whether `rule` watches `machine`, whose site `sites` says (a rule for one site's machines
/// watches no machine whose site it does not know).
fn applies(rule: &AlarmRule, machine: MachineId, sites: &HashMap<MachineId, SiteId>) -> bool {
    rule.rule.enabled
        && rule.rule.machine_id.is_none_or(|m| m == machine)
        && rule.rule.site_id.is_none_or(|site| sites.get(&machine) == Some(&site))
}

/// Moves one (rule, machine) track given whether the condition holds at `at`.
fn step(
    rule: &AlarmRule,
    machine: MachineId,
    track: &mut Track,
    holds: bool,
    at: Timestamp,
    value: Option<f64>,
    out: &mut Vec<Transition>,
) {
    if !holds {
        track.since = None;
        if track.raised {
            track.raised = false;
            out.push(Transition::Clear { rule_id: rule.id, machine, at });
        }
        return;
    }
    let (since, first_value) = *track.since.get_or_insert((at, value));
    let held_ms = unix_ms(at) - unix_ms(since);
    if !track.raised && held_ms >= i64::from(rule.rule.for_seconds) * 1000 {
        track.raised = true;
        out.push(raise(rule, machine, since, at, value.or(first_value)));
    }
}

fn raise(
    rule: &AlarmRule,
    machine: MachineId,
    at: Timestamp,
    fired: Timestamp,
    value: Option<f64>,
) -> Transition {
    let cause = AlarmCause {
        rule_name: rule.rule.name.clone(),
        metric: rule.rule.metric.clone(),
        condition: rule.rule.condition.clone(),
    };
    Transition::Raise { rule_id: rule.id, machine, at, fired, value, message: cause.message(value, &ENGLISH) }
}

/// What raised an alarm: its rule's name, metric and condition when it was raised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlarmCause {
    /// The rule's name.
    pub rule_name: String,
    /// The metric watched (none for `stopped_longer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The condition that held.
    pub condition: Condition,
}

/// The words of an alarm's message in one language (see [`AlarmCause::message`]); `{metric}`,
/// `{value}` and `{limit}` are filled in.
pub struct AlarmWords {
    /// A value above its limit.
    pub above: &'static str,
    /// A value below its limit.
    pub below: &'static str,
    /// A value changing faster than its limit per minute.
    pub rate_above: &'static str,
    /// No reading for longer than the limit in seconds.
    pub stale: &'static str,
    /// Stopped for longer than the limit in minutes.
    pub stopped_longer: &'static str,
    /// Between the rule's name and what happened: ": ".
    pub separator: &'static str,
}

/// The English words of alarm messages, as stored and sent with every alarm.
pub const ENGLISH: AlarmWords = AlarmWords {
    above: "{metric} = {value} above {limit}",
    below: "{metric} = {value} below {limit}",
    rate_above: "{metric} changing faster than {limit}/min",
    stale: "no {metric} data for over {limit} s",
    stopped_longer: "stopped for over {limit} min",
    separator: ": ",
};

impl AlarmCause {
    /// "Rule name: what happened", for an alarm that tripped at `value`, in `words`.
    pub fn message(&self, value: Option<f64>, words: &AlarmWords) -> String {
        self.message_naming(value, words, &|metric| metric.to_owned())
    }

    /// [`AlarmCause::message`] with the metric said as `name` says it ("溫度（temperature_c）").
    /// The value is given to two decimals at most, as the alarm lists show it.
    pub fn message_naming(
        &self,
        value: Option<f64>,
        words: &AlarmWords,
        name: &dyn Fn(&str) -> String,
    ) -> String {
        let metric = self.metric.as_deref().map_or_else(|| "state".to_owned(), name);
        let shown = value.map(|v| format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_owned());
        let fill = |pattern: &str, limit: String| {
            pattern
                .replace("{metric}", &metric)
                .replace("{value}", shown.as_deref().unwrap_or_default())
                .replace("{limit}", &limit)
        };
        let detail = match (&self.condition, value) {
            (Condition::Above { threshold }, Some(_)) => fill(words.above, threshold.to_string()),
            (Condition::Below { threshold }, Some(_)) => fill(words.below, threshold.to_string()),
            (Condition::RateAbove { per_minute }, _) => fill(words.rate_above, per_minute.to_string()),
            (Condition::Stale { seconds }, _) => fill(words.stale, seconds.to_string()),
            (Condition::StoppedLonger { minutes }, _) => fill(words.stopped_longer, minutes.to_string()),
            (_, None) => metric.clone(),
        };
        format!("{}{}{detail}", self.rule_name, words.separator)
    }
}

/// Where an alarm stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmStatus {
    /// Raised, nobody has responded yet.
    Active,
    /// Someone has seen it; the condition still holds.
    Acknowledged,
    /// The condition no longer holds. Nobody may have acknowledged it yet
    /// ([`Alarm::needs_acknowledgement`]).
    Cleared,
}

impl AlarmStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmStatus::Active => "active",
            AlarmStatus::Acknowledged => "acknowledged",
            AlarmStatus::Cleared => "cleared",
        }
    }

    /// The inverse of [`AlarmStatus::as_str`].
    pub fn parse(text: &str) -> Option<AlarmStatus> {
        [AlarmStatus::Active, AlarmStatus::Acknowledged, AlarmStatus::Cleared]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A raised alarm and its life cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alarm {
    /// Store-assigned id.
    pub id: i64,
    /// The rule that raised it (absent once the rule is deleted).
    pub rule_id: Option<i64>,
    /// The machine.
    pub machine_id: MachineId,
    /// How urgent.
    pub severity: Severity,
    /// What happened, in English.
    pub message: String,
    /// What raised it, to say it in other languages; absent for alarms raised before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<AlarmCause>,
    /// The value that tripped it, for metric conditions; for `rate_above`, the rate per minute.
    pub value: Option<f64>,
    /// Where it stands.
    pub status: AlarmStatus,
    /// When the condition started to hold.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub raised_at: Timestamp,
    /// When the alarm came up: the condition had held for the rule's delay (for `stopped_longer`,
    /// its minutes). Absent for alarms raised before it was kept.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub fired_at: Option<Timestamp>,
    /// How many times the condition came up: it can clear and come back before anyone
    /// acknowledges the alarm, and each return makes it active again (`raised_at` and `fired_at`
    /// are then the latest return's).
    #[serde(default = "one")]
    pub occurrences: u32,
    /// When the first occurrence's condition began, for an alarm that came back.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub first_raised_at: Option<Timestamp>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub acknowledged_at: Option<Timestamp>,
    /// What the person who acknowledged it wrote: what they found, what they did.
    #[serde(default)]
    pub note: Option<String>,
    /// When the condition stopped holding.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub cleared_at: Option<Timestamp>,
}

fn one() -> u32 {
    1
}

impl Alarm {
    /// Whether someone still has to acknowledge it: it is active, or it cleared before anyone
    /// did. A hazard that came and went by itself (a gas leak of a minute at night) stays in the
    /// open alarms until someone has seen it, as alarm management practice (ISA-18.2) has it.
    pub fn needs_acknowledgement(&self) -> bool {
        self.acknowledged_at.is_none() && self.status != AlarmStatus::Acknowledged
    }

    /// Whether its condition cleared before anyone acknowledged it.
    pub fn cleared_unseen(&self) -> bool {
        self.status == AlarmStatus::Cleared && self.acknowledged_at.is_none()
    }
}
