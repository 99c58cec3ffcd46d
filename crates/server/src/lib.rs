//! The composition root of microfactory: the shared [`AppState`], the HTTP [`router`] (API,
//! health, metrics, OpenAPI document, dashboard) and [`run`], which serves until told to stop.
//! This is the only crate that knows HTTP; it turns requests into calls on `store` and `model`.

mod alarm_worker;
mod api;
pub mod auth;
pub mod broker;
mod compress;
mod conditional;
pub mod demo;
mod error;
mod extract;
mod http;
pub mod import;
mod live;
mod metrics;
mod middleware;
mod openapi;
pub mod pipeline;
pub mod planning;
pub mod replanner;
mod retention;
pub mod simulation;
mod throttle;
mod web;
mod webhook;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use model::Clock;
use serde::{Deserialize, Serialize};
use store::Store;
use tokio::net::TcpListener;

pub use alarm_worker::{AlarmConfig, AlarmInput};
pub use auth::{Bootstrap, BootstrapError, bootstrap, check_bootstrap_token};
pub use error::{ApiError, ApiResult};
pub use live::{LiveEvent, Stamped};
use metrics::Metrics;
pub use replanner::PlanningConfig;
pub use webhook::{Secret as WebhookSecret, parse_url as parse_webhook_url};

/// How long telemetry, old plans and ended browser sessions are kept (the `[retention]` section
/// of the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days raw readings are kept.
    pub raw_days: u32,
    /// Days the 1-minute roll-ups are kept (charts over longer ranges read these).
    pub rollup_days: u32,
    /// Days the 1-hour roll-ups are kept (steps of whole hours read these).
    pub hourly_rollup_days: u32,
    /// Days plans other than the active one are kept, from when they were computed (at least 1).
    pub plan_days: u32,
    /// Days ended browser sessions stay listed (and in the store) after they expired.
    pub session_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig {
            raw_days: 30,
            rollup_days: 90,
            hourly_rollup_days: 3650,
            plan_days: 90,
            session_days: 30,
        }
    }
}

/// Settings of the HTTP server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Largest JSON request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Largest CSV import accepted, in bytes.
    pub import_limit_bytes: usize,
    /// Open HTTP connections at most; more are closed as they arrive.
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers, and may stay idle between
    /// requests, before it is closed.
    pub header_timeout_seconds: u64,
}

impl ServerConfig {
    /// The range of `body_limit_bytes` and `import_limit_bytes`.
    pub const BODY_LIMITS: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024 * 1024;
    /// The range of `max_connections`.
    pub const MAX_CONNECTIONS: std::ops::RangeInclusive<usize> = 1..=100_000;
    /// The range of `header_timeout_seconds`.
    pub const HEADER_TIMEOUTS: std::ops::RangeInclusive<u64> = 1..=3600;
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            body_limit_bytes: 1024 * 1024,
            import_limit_bytes: 16 * 1024 * 1024,
            max_connections: 1024,
            header_timeout_seconds: 30,
        }
    }
}

/// The local time of the (first) site: the dashboard's times and the replanner's re-optimisation
/// times follow it. UTC when there is no site yet.
pub(crate) fn site_zone(store: &Store) -> model::Zone {
    store
        .sites(store::PageRequest { after: None, limit: 1 })
        .ok()
        .and_then(|page| page.items.into_iter().next())
        .map_or(model::Zone::UTC, |site| site.zone())
}

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The source of "now" for everything about the factory: its machines, orders, plans and
    /// alarms.
    pub clock: Arc<dyn Clock>,
    /// Real time, for accounts, sign-ins and tokens, whose lifetimes people count in real days.
    /// The same as `clock` except in the demo, whose factory clock runs fast.
    pub wall_clock: Arc<dyn Clock>,
    /// Seconds of `clock` per second of `wall_clock` when `clock` is a factory clock of its own
    /// (the demo's, shown on every page, even at speed 1); `None` when the factory keeps real time.
    own_clock_speed: Option<f64>,
    config: Arc<ServerConfig>,
    alarms: Arc<AlarmConfig>,
    /// Planning settings of the API's plans (the replanner gets its own copy in [`RunOptions`]).
    planning: Arc<PlanningConfig>,
    metrics: Arc<Metrics>,
    tokens: Arc<auth::TokenCache>,
    /// Failed sign-ins, to slow password guessing down.
    sign_ins: Arc<throttle::SignInThrottle>,
    /// Plans asked for through the API are computed one at a time (each takes the cores).
    plan_turn: Arc<tokio::sync::Semaphore>,
    /// Delivery quotes are worked out one at a time: without an active plan each one searches
    /// for `repair_time_limit_seconds`, and a desk pressing the button again must not take
    /// every core.
    quote_turn: Arc<tokio::sync::Semaphore>,
    live: Arc<live::Live>,
    alarm_inputs: tokio::sync::mpsc::Sender<AlarmInput>,
    /// Taken by the alarm worker when [`run`] starts it.
    alarm_receiver: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<AlarmInput>>>>,
    pipeline: pipeline::Queues,
    state_deriver: Arc<std::sync::Mutex<pipeline::StateDeriver>>,
    /// Messages for MQTT: Sparkplug replies and alarm notifications.
    outgoing: tokio::sync::mpsc::Sender<ingest::Outgoing>,
    /// Taken by the MQTT side when it starts.
    outgoing_receiver: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<ingest::Outgoing>>>>,
    /// Taken by the pipeline tasks when [`run`] starts them.
    pipeline_receivers: Arc<std::sync::Mutex<Option<pipeline::Receivers>>>,
    /// Wakes the replanner to compare the active plan with the shop floor.
    replan_wake: Arc<tokio::sync::Notify>,
    /// The last time given to a report that came without its own (`AppState::report_time`).
    last_report_ms: Arc<std::sync::atomic::AtomicI64>,
    /// Re-plans asked for by changes the replanner cannot see in the store (a maintenance window
    /// removed), taken by it at its next check.
    requested_replans: Arc<std::sync::Mutex<Vec<model::PlanTrigger>>>,
    /// What the replanner's last scheduled re-optimisation did (since the server started).
    last_reoptimisation: Arc<std::sync::Mutex<Option<replanner::LastReoptimisation>>>,
    /// Turns true when the server begins to stop; long-lived streams and workers end then.
    stopping: tokio::sync::watch::Receiver<bool>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// State over `store`, reading time from `clock`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: ServerConfig, alarms: AlarmConfig) -> AppState {
        // Names this run of the server in the live stream's event ids.
        let live = live::Live::new(model::oee::unix_ms(clock.now()));
        let (alarm_inputs, alarm_receiver) = tokio::sync::mpsc::channel(alarm_worker::ALARM_QUEUE);
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let (pipeline, pipeline_receivers) = pipeline::queues();
        let (outgoing, outgoing_receiver) = tokio::sync::mpsc::channel(OUTGOING_QUEUE);
        AppState {
            state_deriver: Arc::default(),
            outgoing,
            outgoing_receiver: Arc::new(std::sync::Mutex::new(Some(outgoing_receiver))),
            pipeline,
            pipeline_receivers: Arc::new(std::sync::Mutex::new(Some(pipeline_receivers))),
            store,
            wall_clock: clock.clone(),
            clock,
            own_clock_speed: None,
            config: Arc::new(config),
            alarms: Arc::new(alarms),
            planning: Arc::default(),
            metrics: Arc::default(),
            tokens: Arc::default(),
            sign_ins: Arc::default(),
            plan_turn: Arc::new(tokio::sync::Semaphore::new(1)),
            quote_turn: Arc::new(tokio::sync::Semaphore::new(1)),
            live,
            alarm_inputs,
            alarm_receiver: Arc::new(std::sync::Mutex::new(Some(alarm_receiver))),
            replan_wake: Arc::default(),
            last_report_ms: Arc::default(),
            requested_replans: Arc::default(),
            last_reoptimisation: Arc::default(),
            stopping,
            stop: Arc::new(stop),
        }
    }

    /// The same state with these planning settings for the API's plans (default: every setting at
    /// its default).
    pub fn with_planning(mut self, planning: PlanningConfig) -> AppState {
        self.planning = Arc::new(planning);
        self
    }

    /// The same state with a factory clock that runs `clock_speed` seconds per second of `wall`,
    /// the real-time clock of accounts, sign-ins and tokens: the demo's (default: one clock).
    pub fn with_wall_clock(mut self, wall: Arc<dyn Clock>, clock_speed: f64) -> AppState {
        self.wall_clock = wall;
        self.own_clock_speed = Some(clock_speed);
        self
    }

    /// The factory clock's speed when it is a clock of its own (the demo's); `None` when the
    /// factory keeps real time.
    pub(crate) fn own_clock_speed(&self) -> Option<f64> {
        self.own_clock_speed
    }

    /// What the last scheduled re-optimisation did, if one ran since the server started.
    pub(crate) fn last_reoptimisation(&self) -> Option<replanner::LastReoptimisation> {
        *self.last_reoptimisation.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_last_reoptimisation(&self, last: replanner::LastReoptimisation) {
        *self.last_reoptimisation.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(last);
    }

    /// The time for a report sent without one (`at` left out): now, but at least a millisecond
    /// after the last such time, as for MQTT messages without `ts`. A production report again at
    /// the same instant with the same units is taken for a client's retry and counted once, so
    /// reports received within one millisecond would otherwise lose all but the first. (A
    /// clock set back more than two seconds is followed.)
    pub(crate) fn report_time(&self) -> model::Timestamp {
        use std::sync::atomic::Ordering;
        let now = self.clock.now();
        let now_ms = model::oee::unix_ms(now);
        let mut last = self.last_report_ms.load(Ordering::Relaxed);
        loop {
            let ms = if last > now_ms + 2_000 { now_ms } else { (last + 1).max(now_ms) };
            match self.last_report_ms.compare_exchange_weak(last, ms, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return if ms == now_ms { now } else { model::oee::from_unix_ms(ms).unwrap_or(now) },
                Err(seen) => last = seen,
            }
        }
    }

    /// Asks the replanner, when it runs, to compare the active plan with the shop floor now (orders
    /// or operations changed) instead of at its next regular check.
    pub(crate) fn wake_replanner(&self) {
        self.replan_wake.notify_one();
    }

    /// Asks the replanner for a searched re-plan of the active plan for `trigger` (with
    /// `auto_replan` on), and wakes it.
    pub(crate) fn request_replan(&self, trigger: model::PlanTrigger) {
        let mut requested = self.requested_replans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Without a replanner (`auto_replan` off) nobody takes them: a few are enough to keep.
        if requested.len() >= 64 {
            requested.remove(0);
        }
        requested.push(trigger);
        drop(requested);
        self.wake_replanner();
    }

    /// The re-plans asked for since the last call.
    pub(crate) fn take_requested_replans(&self) -> Vec<model::PlanTrigger> {
        std::mem::take(&mut *self.requested_replans.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Starts the background workers: the alarm engine and the ingest pipeline. [`run`] does
    /// this; tests that drive the router directly call it when they need the workers. Starting
    /// twice does nothing.
    pub fn start_workers(&self) -> Workers {
        let receiver = self.alarm_receiver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(receiver) = receiver {
            tokio::spawn(alarm_worker::run(self.clone(), receiver, self.stopping.clone()));
        }
        let (write_done, write_done_rx) = tokio::sync::watch::channel(false);
        let receivers = self.pipeline_receivers.lock().unwrap_or_else(|p| p.into_inner()).take();
        let tasks = receivers.map(|receivers| {
            let decode =
                tokio::spawn(pipeline::decode(self.clone(), receivers.incoming, self.stopping.clone()));
            let write = tokio::spawn(pipeline::write(self.clone(), receivers.writes, write_done_rx));
            (decode, write)
        });
        Workers { tasks, write_done }
    }

    /// The receiving end of the MQTT outgoing queue, once.
    pub(crate) fn take_outgoing(&self) -> Option<tokio::sync::mpsc::Receiver<ingest::Outgoing>> {
        self.outgoing_receiver.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(crate) fn state_deriver(&self) -> std::sync::MutexGuard<'_, pipeline::StateDeriver> {
        self.state_deriver.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages taken in, readings stored and items dropped by the ingest pipeline so far.
    pub fn ingest_totals(&self) -> (u64, u64, u64) {
        self.metrics.ingest_totals()
    }

    /// Tells streams and workers to finish.
    pub fn begin_stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = api::routes(&state)
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::not_found("no such API endpoint; see /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() });
    let conditional = Arc::new(conditional::Conditional {
        api: api.clone().with_state(state.clone()),
        state: state.clone(),
        locks: Arc::default(),
    });
    let api = api.layer(conditional::ConditionalLayer(conditional));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .merge(web::routes())
        .nest("/api/v1", api)
        .fallback(web::not_found)
        .method_not_allowed_fallback(web::wrong_method)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(compress::GzipLayer)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::track))
        .with_state(state)
}

/// Messages waiting to be published over MQTT at most.
const OUTGOING_QUEUE: usize = 1024;

/// The running pipeline tasks; [`Workers::finish`] flushes them.
pub struct Workers {
    tasks: Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)>,
    write_done: tokio::sync::watch::Sender<bool>,
}

impl Workers {
    /// After [`AppState::begin_stop`]: waits for the decoder to flush its last batch, then for
    /// the writer to commit everything queued.
    pub async fn finish(self) {
        let Some((decode, write)) = self.tasks else { return };
        let _ = decode.await;
        let _ = self.write_done.send(true);
        let _ = write.await;
    }
}

/// A timestamp as RFC 3339 text (empty if it cannot be formatted, which no stored time hits).
pub(crate) fn rfc3339(at: model::Timestamp) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `at` in RFC 3339 with the offset `zone` has then: `2026-12-20T18:00:00+08:00`.
pub(crate) fn rfc3339_in(zone: &model::Zone, at: model::Timestamp) -> String {
    let offset = time::UtcOffset::from_whole_seconds(zone.offset_minutes_at(model::oee::unix_ms(at)) * 60)
        .unwrap_or(time::UtcOffset::UTC);
    rfc3339(at.to_offset(offset))
}

/// What [`run`] starts besides the HTTP server.
#[derive(Default)]
pub struct RunOptions {
    /// MQTT settings, and a listener already bound for the embedded broker (bound from the
    /// settings when absent); `None` runs without MQTT.
    pub mqtt: Option<(broker::MqttConfig, Option<TcpListener>)>,
    /// Run the simulated factory against the embedded broker.
    pub simulator: Option<simulation::SimSettings>,
    /// Prune old telemetry in the background.
    pub retention: Option<RetentionConfig>,
    /// Planning settings (automatic repairs).
    pub planning: Option<PlanningConfig>,
    /// Called once MQTT (the embedded broker, or the first connection to an external one) and the
    /// simulator have started, before HTTP is served: the welcome, with a first start's
    /// credentials, is shown only by a start that got that far (an external broker refusing the
    /// platform's credentials stops it before).
    pub on_ready: Option<Box<dyn FnOnce() -> std::io::Result<()> + Send>>,
}

/// Serves `router(state)` on `listener` (with MQTT and the simulator as `options` say) until
/// `shutdown` completes, then finishes the requests in flight, flushes the ingest pipeline and
/// returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = state.start_workers();
    if let Some(retention) = options.retention {
        tokio::spawn(retention::run(state.clone(), retention, state.stopping.clone()));
    }
    if let Some(planning) = options.planning.filter(|p| p.auto_replan) {
        tokio::spawn(replanner::run(state.clone(), planning, state.stopping.clone()));
    }
    let mqtt = match options.mqtt {
        Some((config, listener)) => {
            Some(broker::start(&state, &config, listener).await.map_err(std::io::Error::other)?)
        }
        None => None,
    };
    if let (Some(settings), Some(address)) = (options.simulator, mqtt.as_ref().and_then(|m| m.address)) {
        tokio::spawn(demo::order_arrivals(state.clone(), settings.clone(), state.stopping.clone()));
        let (store, clock, stop) = (state.store.clone(), state.clock.clone(), state.stopping.clone());
        let (clock_speed, wall_now) = (state.own_clock_speed.unwrap_or(1.0), state.wall_clock.now());
        let started = tokio::task::spawn_blocking(move || {
            simulation::start(&store, address, &settings, (clock, clock_speed), wall_now, stop)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
        tracing::info!(sites = started, "simulated factory started");
    }
    if let Some(ready) = options.on_ready {
        ready()?;
    }
    let stopper = state.clone();
    let shutdown = async move {
        shutdown.await;
        stopper.begin_stop();
    };
    let served = http::serve(listener, router(state.clone()), &state.config, &state.metrics, shutdown).await;
    if let Some(mqtt) = mqtt {
        mqtt.shutdown().await;
    }
    workers.finish().await;
    served
}

/// How long a write that failed for want of room keeps `/healthz` at 503 when nothing writes
/// after it: long enough for a monitor polling every 30 s to see it, short enough that a quiet
/// shop whose disk has room again does not stay "unhealthy" until somebody saves something.
const WRITE_FAILURE_SHOWN: std::time::Duration = std::time::Duration::from_secs(60);

/// Liveness and readiness: 200 when the store answers and takes writes (503 while ingest cannot
/// write, or within a minute of any write failing for want of room or permission with none
/// succeeding since: a full disk, a read-only file system). Needs no token.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.pipeline.failing.load(std::sync::atomic::Ordering::Relaxed)
        || state.store.write_failed_within(WRITE_FAILURE_SHOWN)
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "store cannot write (see the log)\n");
    }
    let store = state.store;
    match tokio::task::spawn_blocking(move || store.schema_version()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n"),
    }
}

/// Prometheus metrics. Needs a token of any role.
async fn metrics_text(State(state): State<AppState>, _: auth::Reader) -> ApiResult<impl IntoResponse> {
    let store = state.store.clone();
    let (stats, alarms) =
        api::blocking(move || Ok::<_, store::StoreError>((store.order_stats()?, store.open_alarm_counts()?)))
            .await?;
    let orders: Vec<(&str, u64)> = stats.by_status.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    let alarms: Vec<(&str, u64)> = alarms.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&orders, &alarms)))
}

#[cfg(test)]
mod tests;
