//! Process metrics in the Prometheus text format. Counters live in memory; store-derived gauges
//! are read when `/metrics` is scraped. Every metric name comes from [`MetricName`], so the set
//! is visible in one place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every metric this process exports.
#[derive(Clone, Copy, Debug)]
pub enum MetricName {
    /// Counter: HTTP requests by method, route and status.
    HttpRequests,
    /// Histogram: HTTP request duration by route.
    HttpRequestDuration,
    /// Gauge: orders by status.
    Orders,
    /// Gauge: always 1, labelled with the version.
    BuildInfo,
    /// Counter: inputs the alarm worker could not take because its queue was full.
    AlarmInputsDropped,
    /// Counter: messages taken in by the ingest pipeline.
    IngestMessages,
    /// Counter: readings stored.
    IngestReadings,
    /// Counter: readings, metrics or events dropped, by reason.
    IngestDropped,
    /// Counter: well-formed input the pipeline does not store by design, by reason.
    IngestSkipped,
    /// Counter: ingest write transactions.
    IngestBatches,
    /// Counter: seconds the ingest write transactions took.
    IngestBatchSeconds,
    /// Counter: attempts to write an ingest batch that failed (the batch is written again).
    IngestWriteFailures,
    /// Counter: what the embedded MQTT broker counted, by event.
    MqttEvents,
    /// Gauge: MQTT client connections open at the embedded broker.
    MqttConnectionsOpen,
    /// Gauge: whether the platform is connected to its external MQTT broker.
    MqttExternalConnected,
    /// Gauge: HTTP connections open.
    HttpConnectionsOpen,
    /// Counter: HTTP connections closed on arrival because `http.max_connections` were open.
    HttpConnectionsRefused,
    /// Counter: alarm notifications to webhooks, by outcome.
    WebhookNotifications,
    /// Gauge: open alarms by severity.
    AlarmsOpen,
}

/// What became of an alarm notification to a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver answered 2xx.
    Delivered = 0,
    /// Every attempt failed (refused or unreachable); the notification is lost.
    GivenUp = 1,
    /// The webhook's queue was full (a receiver down in an alarm storm); never sent.
    Dropped = 2,
}

impl WebhookOutcome {
    const ALL: [WebhookOutcome; 3] =
        [WebhookOutcome::Delivered, WebhookOutcome::GivenUp, WebhookOutcome::Dropped];

    fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Delivered => "delivered",
            WebhookOutcome::GivenUp => "given_up",
            WebhookOutcome::Dropped => "dropped",
        }
    }
}

impl MetricName {
    /// The exported name.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::HttpRequests => "microfactory_http_requests_total",
            MetricName::HttpRequestDuration => "microfactory_http_request_duration_seconds",
            MetricName::Orders => "microfactory_orders",
            MetricName::BuildInfo => "microfactory_build_info",
            MetricName::AlarmInputsDropped => "microfactory_alarm_inputs_dropped_total",
            MetricName::IngestMessages => "microfactory_ingest_messages_total",
            MetricName::IngestReadings => "microfactory_ingest_readings_total",
            MetricName::IngestDropped => "microfactory_ingest_dropped_total",
            MetricName::IngestSkipped => "microfactory_ingest_skipped_total",
            MetricName::IngestBatches => "microfactory_ingest_batches_total",
            MetricName::IngestBatchSeconds => "microfactory_ingest_batch_seconds_total",
            MetricName::IngestWriteFailures => "microfactory_ingest_write_failures_total",
            MetricName::MqttEvents => "microfactory_mqtt_events_total",
            MetricName::MqttConnectionsOpen => "microfactory_mqtt_connections_open",
            MetricName::MqttExternalConnected => "microfactory_mqtt_external_connected",
            MetricName::HttpConnectionsOpen => "microfactory_http_connections_open",
            MetricName::HttpConnectionsRefused => "microfactory_http_connections_refused_total",
            MetricName::WebhookNotifications => "microfactory_webhook_notifications_total",
            MetricName::AlarmsOpen => "microfactory_alarms_open",
        }
    }

    fn help(self) -> &'static str {
        match self {
            MetricName::HttpRequests => "HTTP requests served, by method, route and status.",
            MetricName::HttpRequestDuration => "Time to serve an HTTP request, by route.",
            MetricName::Orders => "Customer orders in the store, by status.",
            MetricName::BuildInfo => "Build information; the value is always 1.",
            MetricName::AlarmInputsDropped => {
                "Readings or state changes the alarm worker missed because it was behind."
            }
            MetricName::IngestMessages => "Messages taken in by the ingest pipeline (MQTT and HTTP).",
            MetricName::IngestReadings => "Readings stored by the ingest pipeline.",
            MetricName::IngestDropped => "Readings, metrics, events or messages not stored, by reason.",
            MetricName::IngestSkipped => {
                "Well-formed metrics or messages not stored by design (strings, null or transient values, resends), by reason."
            }
            MetricName::IngestBatches => "Ingest write transactions committed.",
            MetricName::IngestBatchSeconds => "Seconds the committed ingest write transactions took.",
            MetricName::IngestWriteFailures => {
                "Failed attempts to write an ingest batch; the batch is held (its MQTT messages unacknowledged) and written again."
            }
            MetricName::MqttEvents => {
                "Events at the embedded MQTT broker: messages, drops, connections, refused sign-ins, protocol errors."
            }
            MetricName::MqttConnectionsOpen => "MQTT client connections open at the embedded broker.",
            MetricName::MqttExternalConnected => {
                "1 while the platform is connected to its external MQTT broker, else 0 (machines' data is not coming in)."
            }
            MetricName::HttpConnectionsOpen => "HTTP connections open.",
            MetricName::HttpConnectionsRefused => {
                "HTTP connections closed as they arrived because http.max_connections were open."
            }
            MetricName::WebhookNotifications => {
                "Alarm notifications to webhooks, by outcome: delivered, given_up (every attempt failed) or dropped (the webhook's queue was full)."
            }
            MetricName::AlarmsOpen => {
                "Open alarms (not cleared, or cleared before anyone acknowledged them), by severity."
            }
        }
    }
}

/// Upper bounds of the duration histogram buckets, in seconds: up to a minute, as a plan asked for
/// with a long time limit is one request.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5, 5.0, 10.0, 30.0, 60.0];

/// What is counted per route.
#[derive(Default)]
struct RouteStats {
    /// Requests by method and status; a handful of entries per route, so a list beats a map.
    requests: Vec<(String, u16, u64)>,
    /// Duration histogram: cumulative bucket counts, total count and sum in seconds.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The in-memory metric registry. One lock per request, and no allocation once a route, method
/// and status have been seen.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    alarm_inputs_dropped: AtomicU64,
    ingest_messages: AtomicU64,
    ingest_readings: AtomicU64,
    ingest_batches: AtomicU64,
    ingest_batch_micros: AtomicU64,
    ingest_write_failures: AtomicU64,
    http_connections_open: AtomicU64,
    http_connections_refused: AtomicU64,
    ingest_dropped: Mutex<BTreeMap<&'static str, u64>>,
    ingest_skipped: Mutex<BTreeMap<&'static str, u64>>,
    /// When a drop was last logged, per reason and what it names (a machine code; empty for a
    /// reason logged as one).
    drop_logged: Mutex<std::collections::HashMap<(&'static str, String), std::time::Instant>>,
    /// The embedded broker, once it runs, for its counters.
    broker: std::sync::OnceLock<mqtt::BrokerHandle>,
    /// The connection to an external broker: 0 none set up, 1 not connected, 2 connected.
    external_broker: std::sync::atomic::AtomicU8,
    /// Webhook notifications, indexed by [`WebhookOutcome`].
    webhook: [AtomicU64; 3],
}

impl Metrics {
    /// Messages taken in, readings stored and items dropped by the ingest pipeline so far.
    pub fn ingest_totals(&self) -> (u64, u64, u64) {
        let dropped = self.ingest_dropped.lock().unwrap_or_else(|p| p.into_inner()).values().sum();
        (self.ingest_messages.load(Ordering::Relaxed), self.ingest_readings.load(Ordering::Relaxed), dropped)
    }

    /// Logs a dropped input with its detail, at most once per 10 s per reason, so a flood of bad
    /// input cannot flood the log.
    pub fn log_drop_limited(&self, reason: &'static str, detail: &str) {
        self.log_drop_limited_for(reason, "", detail);
    }

    /// [`Metrics::log_drop_limited`] once per 10 s per reason and `subject` (up to 256 subjects
    /// at a time besides the reasons themselves), so that each of several mistyped machine codes
    /// shows up.
    pub fn log_drop_limited_for(&self, reason: &'static str, subject: &str, detail: &str) {
        let mut last = self.drop_logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let key = (reason, subject.to_string());
        if last.get(&key).is_some_and(|at| now.duration_since(*at) < Duration::from_secs(10)) {
            return;
        }
        if !subject.is_empty() && last.len() >= 256 {
            last.retain(|_, at| now.duration_since(*at) < Duration::from_secs(10));
            if last.len() >= 256 {
                return;
            }
        }
        last.insert(key, now);
        // Correctly stamped data from devices whose clocks are right is dropped while this
        // server's own clock is wrong: say which clock may be off.
        let hint = match reason {
            "future_timestamp" => Some(
                "stamped ahead of this server's clock by more than the allowed skew: the device's clock runs ahead, or this server's clock is behind",
            ),
            "too_old" => Some(
                "stamped before the oldest time taken: the device's clock is behind (or it sent old data), or this server's clock runs ahead",
            ),
            _ => None,
        };
        tracing::warn!(
            reason,
            detail,
            hint,
            "ingest dropped bad input (logged at most every 10 s per reason, and per subject where one is named; counted in /metrics)"
        );
    }

    /// Exports the embedded broker's counters from now on.
    pub fn watch_broker(&self, broker: mqtt::BrokerHandle) {
        let _ = self.broker.set(broker);
    }

    /// Counts a message taken in by the ingest pipeline.
    pub fn count_ingest_message(&self) {
        self.ingest_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether the platform is connected to its external MQTT broker now.
    pub fn set_external_broker_connected(&self, connected: bool) {
        self.external_broker.store(if connected { 2 } else { 1 }, Ordering::Relaxed);
    }

    /// Counts something the pipeline dropped.
    pub fn count_ingest_drop(&self, reason: &'static str) {
        self.count_ingest_drops(reason, 1);
    }

    /// Counts `n` things the pipeline dropped for one reason.
    pub fn count_ingest_drops(&self, reason: &'static str, n: u64) {
        debug_assert!(reasons(false).any(|known| known == reason), "{reason} is missing from PIPELINE_DROPS");
        *self.ingest_dropped.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += n;
    }

    /// Counts something the pipeline did not store by design.
    pub fn count_ingest_skip(&self, reason: &'static str) {
        self.count_ingest_skips(reason, 1);
    }

    /// Counts `n` things the pipeline did not store by design, for one reason.
    pub fn count_ingest_skips(&self, reason: &'static str, n: u64) {
        debug_assert!(reasons(true).any(|known| known == reason), "{reason} is missing from PIPELINE_SKIPS");
        *self.ingest_skipped.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += n;
    }

    /// Counts a committed ingest batch.
    pub fn count_ingest_written(&self, readings: u64, took: Duration) {
        self.ingest_readings.fetch_add(readings, Ordering::Relaxed);
        self.ingest_batches.fetch_add(1, Ordering::Relaxed);
        self.ingest_batch_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a failed attempt to write an ingest batch.
    pub fn count_ingest_write_failure(&self) {
        self.ingest_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// How many inputs the alarm worker missed.
    /// Counts a webhook notification's outcome.
    pub fn count_webhook(&self, outcome: WebhookOutcome) {
        self.webhook[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn alarm_inputs_dropped(&self) -> u64 {
        self.alarm_inputs_dropped.load(Ordering::Relaxed)
    }

    /// Counts an input the alarm worker missed.
    pub fn count_dropped_alarm_input(&self) {
        self.alarm_inputs_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP connection taken in.
    pub(crate) fn http_connection_opened(&self) {
        self.http_connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP connection gone.
    pub(crate) fn http_connection_closed(&self) {
        self.http_connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts an HTTP connection closed on arrival, as too many were open.
    pub(crate) fn count_http_connection_refused(&self) {
        self.http_connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one served request. A method outside HTTP's usual ones counts as `other`: anyone
    /// can send any method name, and each would otherwise add a series for good.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"];
        let method = METHODS.into_iter().find(|known| *known == method).unwrap_or("other");
        let seconds = elapsed.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes.entry(route.to_string()).or_default(),
        };
        match stats.requests.iter_mut().find(|(m, s, _)| m == method && *s == status) {
            Some((_, _, count)) => *count += 1,
            None => stats.requests.push((method.to_string(), status, 1)),
        }
        for (count, bound) in stats.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        stats.count += 1;
        stats.sum += seconds;
    }

    /// Renders every metric; `orders` are the per-status counts read from the store.
    /// `orders` and open `alarms` are counted by status and by severity from the store.
    pub fn render(&self, orders: &[(&str, u64)], alarms: &[(&str, u64)]) -> String {
        let mut out = String::new();
        header(&mut out, MetricName::BuildInfo, "gauge");
        let _ = writeln!(
            out,
            "{}{{version=\"{}\"}} 1",
            MetricName::BuildInfo.as_str(),
            env!("CARGO_PKG_VERSION")
        );
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        header(&mut out, MetricName::HttpRequests, "counter");
        let requests = MetricName::HttpRequests.as_str();
        for (route, stats) in routes.iter() {
            let route = escape(route);
            for (method, status, count) in &stats.requests {
                let _ = writeln!(
                    out,
                    "{requests}{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        header(&mut out, MetricName::HttpRequestDuration, "histogram");
        let name = MetricName::HttpRequestDuration.as_str();
        for (route, stats) in routes.iter() {
            let route = escape(route);
            for (count, bound) in stats.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", stats.count);
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", stats.sum);
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", stats.count);
        }
        drop(routes);
        header(&mut out, MetricName::AlarmInputsDropped, "counter");
        let _ = writeln!(
            out,
            "{} {}",
            MetricName::AlarmInputsDropped.as_str(),
            self.alarm_inputs_dropped.load(Ordering::Relaxed)
        );
        let counter = |out: &mut String, name: MetricName, value: u64| {
            header(out, name, "counter");
            let _ = writeln!(out, "{} {value}", name.as_str());
        };
        counter(&mut out, MetricName::IngestMessages, self.ingest_messages.load(Ordering::Relaxed));
        counter(&mut out, MetricName::IngestReadings, self.ingest_readings.load(Ordering::Relaxed));
        counter(&mut out, MetricName::IngestBatches, self.ingest_batches.load(Ordering::Relaxed));
        header(&mut out, MetricName::IngestBatchSeconds, "counter");
        let _ = writeln!(
            out,
            "{} {}",
            MetricName::IngestBatchSeconds.as_str(),
            self.ingest_batch_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        counter(
            &mut out,
            MetricName::IngestWriteFailures,
            self.ingest_write_failures.load(Ordering::Relaxed),
        );
        // Every reason from the start, at 0: a series that appears only with its first count
        // makes that first count invisible to `increase()` and `rate()`.
        let by_reason = [
            (MetricName::IngestDropped, &self.ingest_dropped, false),
            (MetricName::IngestSkipped, &self.ingest_skipped, true),
        ];
        for (name, counted, skips) in by_reason {
            let mut all: BTreeMap<&str, u64> = reasons(skips).map(|reason| (reason, 0)).collect();
            all.extend(counted.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(r, c)| (*r, *c)));
            header(&mut out, name, "counter");
            for (reason, count) in all {
                let _ = writeln!(out, "{}{{reason=\"{reason}\"}} {count}", name.as_str());
            }
        }
        let external = self.external_broker.load(Ordering::Relaxed);
        if external > 0 {
            header(&mut out, MetricName::MqttExternalConnected, "gauge");
            let _ =
                writeln!(out, "{} {}", MetricName::MqttExternalConnected.as_str(), u8::from(external == 2));
        }
        if let Some(broker) = self.broker.get() {
            let counters = broker.counters();
            header(&mut out, MetricName::MqttEvents, "counter");
            for (counter, value) in counters.iter().filter(|(c, _)| *c != mqtt::Counter::ConnectionsOpen) {
                let event = counter.name().trim_start_matches("mqtt_");
                let _ = writeln!(out, "{}{{event=\"{event}\"}} {value}", MetricName::MqttEvents.as_str());
            }
            header(&mut out, MetricName::MqttConnectionsOpen, "gauge");
            let open = counters.get(mqtt::Counter::ConnectionsOpen);
            let _ = writeln!(out, "{} {open}", MetricName::MqttConnectionsOpen.as_str());
        }
        header(&mut out, MetricName::HttpConnectionsOpen, "gauge");
        let _ = writeln!(
            out,
            "{} {}",
            MetricName::HttpConnectionsOpen.as_str(),
            self.http_connections_open.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            MetricName::HttpConnectionsRefused,
            self.http_connections_refused.load(Ordering::Relaxed),
        );
        header(&mut out, MetricName::WebhookNotifications, "counter");
        for (outcome, count) in WebhookOutcome::ALL.iter().zip(&self.webhook) {
            let _ = writeln!(
                out,
                "{}{{outcome=\"{}\"}} {}",
                MetricName::WebhookNotifications.as_str(),
                outcome.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        header(&mut out, MetricName::AlarmsOpen, "gauge");
        for (severity, count) in alarms {
            let _ = writeln!(out, "{}{{severity=\"{severity}\"}} {count}", MetricName::AlarmsOpen.as_str());
        }
        header(&mut out, MetricName::Orders, "gauge");
        for (status, count) in orders {
            let _ = writeln!(out, "{}{{status=\"{status}\"}} {count}", MetricName::Orders.as_str());
        }
        out
    }
}

/// Why the pipeline drops input, besides what the decoders say ([`ingest::codec::DropReason`]).
const PIPELINE_DROPS: [&str; 5] =
    ["unknown_machine", "not_permitted", "too_many_metrics", "report_not_eligible", "report_unreleased"];

/// What the pipeline does not store by design, besides what the decoders say.
const PIPELINE_SKIPS: [&str; 2] = ["same_millisecond", "retained"];

/// Every reason input is dropped for (`skips`: not stored by design), as `/metrics` lists them.
/// Counting one that is not here fails in debug builds (the tests), so the list keeps up.
fn reasons(skips: bool) -> impl Iterator<Item = &'static str> {
    let own: &[&'static str] = if skips { &PIPELINE_SKIPS } else { &PIPELINE_DROPS };
    ingest::codec::DropReason::ALL
        .iter()
        .filter(move |reason| reason.is_skip() == skips)
        .map(|reason| reason.as_str())
        .chain(own.iter().copied())
}

fn header(out: &mut String, name: MetricName, kind: &str) {
    let _ = writeln!(out, "# HELP {} {}", name.as_str(), name.help());
    let _ = writeln!(out, "# TYPE {} {kind}", name.as_str());
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
