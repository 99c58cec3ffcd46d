//! MQTT connectivity. By default an embedded broker (the `mqtt` crate) serves the factory network:
//! devices sign in with an API token as the MQTT password, and a device may publish only for its
//! own site. Alternatively the platform subscribes, as a client, to an external broker (Mosquitto,
//! EMQX, HiveMQ) and trusts that broker's own access control. Either way, messages on the JSON
//! and Sparkplug topics go into the ingest pipeline, and what the platform publishes (Sparkplug
//! rebirth requests, alarm notifications) goes out the same way.

use std::net::SocketAddr;

use ingest::Outgoing;
use model::{Role, SiteId};
use mqtt::{AuthRejection, Broker, BrokerConfig, BrokerHandle, Credentials, Hooks, Identity, QoS};
use serde::{Deserialize, Serialize};
use store::Store;

use crate::AppState;
use crate::auth::token_digest;
use crate::pipeline::{Incoming, Publisher};

mod external;

/// The topic filters the platform ingests.
pub const INGEST_FILTERS: [&str; 2] = ["mf/v1/#", "spBv1.0/#"];

/// MQTT settings (the `[mqtt]` section of the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Whether to connect machines at all.
    pub enabled: bool,
    /// Address of the embedded broker.
    pub listen: SocketAddr,
    /// `host:port` of an external broker to subscribe to instead of running the embedded one.
    pub external: Option<String>,
    /// User name for the external broker.
    pub username: Option<String>,
    /// Password for the external broker (never logged).
    pub password: Option<String>,
    /// Client id of the platform's persistent session at the external broker (default: `host_id`).
    /// Keep it fixed: the broker holds the messages of this session while the platform is away.
    pub client_id: Option<String>,
    /// The Sparkplug primary host id: the platform publishes `spBv1.0/STATE/{host_id}` (retained)
    /// so edge nodes know it is online.
    pub host_id: String,
}

impl Default for MqttConfig {
    fn default() -> MqttConfig {
        MqttConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            external: None,
            username: None,
            password: None,
            client_id: None,
            host_id: "microfactory".into(),
        }
    }
}

/// Authentication and permissions of the embedded broker, from the platform's users and tokens.
///
/// - The MQTT password is an API token; the user name is informational.
/// - Admin tokens may publish and subscribe anywhere (automation, the built-in simulator).
/// - Device tokens may publish only under their site: `mf/v1/{site}/…` and `spBv1.0/{site}/…`
///   (the Sparkplug group id is the site code). They read nothing of the site's data: they may
///   subscribe only to the commands for their site's edge nodes (`spBv1.0/{site}/NCMD/…` and
///   `DCMD/…`) and to the primary host's `spBv1.0/STATE/…`. A device's client id must start with
///   its user name, and the broker lets only the same identity take a client id over.
/// - Every other role is refused (return code 5).
/// - A connection's identity names its token, and `watch_tokens` closes connections whose token
///   no longer gives that identity (revoked, expired, the user deleted or changed).
/// - A device's publish outside its site is dropped, counted in `/metrics` as `not_permitted`
///   and logged (at most every 10 s), so a gateway set up with the wrong site code is found.
#[derive(Clone)]
pub struct PlatformHooks {
    store: Store,
    clock: std::sync::Arc<dyn model::Clock>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// When each device's refused client id was last logged: a refused gateway retries every
    /// few seconds, and the log says it once a minute.
    refusals_logged: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
    /// The platform's own Sparkplug STATE topic, which only the platform publishes to.
    host_state_topic: String,
}

impl PlatformHooks {
    /// Hooks over `store`'s users and tokens, telling expired tokens by `clock`; refused publishes
    /// are counted in `metrics`. `host_id` is the platform's Sparkplug host id: no client may
    /// publish on its STATE topic, so none can say the platform is offline while it runs.
    pub fn new(
        store: Store,
        clock: std::sync::Arc<dyn model::Clock>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        host_id: &str,
    ) -> PlatformHooks {
        PlatformHooks {
            store,
            clock,
            metrics,
            refusals_logged: std::sync::Arc::default(),
            host_state_topic: format!("spBv1.0/STATE/{host_id}"),
        }
    }
}

/// `admin:{token id}`, of the account `user:{user id}`.
fn admin_identity(token_id: i64, user: model::UserId) -> Identity {
    Identity::of_account(format!("admin:{token_id}"), format!("user:{}", user.0))
}

fn is_admin(identity: &Identity) -> bool {
    identity.as_str().starts_with("admin:")
}

/// `device:{token id}:{site id}:{site code}:{user name}`, of the account `user:{user id}`: a
/// device back with a new token takes over its old connection's client id.
fn device_identity(
    token_id: i64,
    user: model::UserId,
    site: SiteId,
    site_code: &str,
    username: &str,
) -> Identity {
    Identity::of_account(
        format!("device:{token_id}:{}:{site_code}:{username}", site.0),
        format!("user:{}", user.0),
    )
}

/// The site id and code of a device identity.
fn device_site(identity: &Identity) -> Option<(SiteId, &str)> {
    let mut parts = identity.as_str().strip_prefix("device:")?.splitn(4, ':');
    let _token = parts.next()?;
    let id = parts.next()?.parse().ok()?;
    Some((SiteId(id), parts.next()?))
}

/// The token an identity was signed in with.
fn identity_token(identity: &Identity) -> Option<i64> {
    let rest =
        identity.as_str().strip_prefix("admin:").or_else(|| identity.as_str().strip_prefix("device:"))?;
    rest.split(':').next()?.parse().ok()
}

/// The identity a token's owner signs in as (a device's names its site), or why not. Sign-in and
/// `watch_tokens` both derive it here, so a connection is closed exactly when signing in again
/// would give another identity.
fn owner_identity(
    store: &Store,
    owner: &store::TokenOwner,
) -> store::Result<Result<Identity, AuthRejection>> {
    let site = match owner.user.site_id {
        Some(site) => Some(store.site(site)?),
        None => None,
    };
    Ok(match (owner.user.role, site) {
        (Role::Admin, _) => Ok(admin_identity(owner.token_id, owner.user.id)),
        (Role::Device, Some(site)) => {
            Ok(device_identity(owner.token_id, owner.user.id, site.id, &site.code, &owner.user.username))
        }
        _ => Err(AuthRejection::NotAuthorized),
    })
}

/// Whether a device may subscribe to `filter`: the commands for its site's edge nodes, and the
/// primary host's state.
fn device_may_read(filter: &str, site: &str) -> bool {
    filter.starts_with("spBv1.0/STATE/")
        || ["NCMD", "DCMD"].iter().any(|kind| {
            filter
                .strip_prefix("spBv1.0/")
                .and_then(|rest| rest.strip_prefix(site))
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.strip_prefix(kind))
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// What a device of `site` may publish: its machines' JSON telemetry and events, and its edge
/// nodes' Sparkplug births, deaths and data. Not the platform's own topics (the alarm feed
/// `mf/v1/{site}/alarms`, Sparkplug commands and host state), which others trust.
fn device_may_publish(topic: &str, site: &str) -> bool {
    if let Some((topic_site, _, _)) = ingest::json::parse_topic(topic) {
        return topic_site == site;
    }
    topic
        .strip_prefix("spBv1.0/")
        .and_then(|rest| rest.strip_prefix(site))
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(kind, node)| {
            !node.is_empty() && matches!(kind, "NBIRTH" | "NDEATH" | "DBIRTH" | "DDEATH" | "NDATA" | "DDATA")
        })
}

impl PlatformHooks {
    /// Whether a refusal logged under `key` is to be logged now: once a minute per key, and for at
    /// most 1,024 keys a minute, so that made-up client ids cannot fill the log or the memory.
    fn log_now(&self, key: String) -> bool {
        let mut logged = self.refusals_logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if logged.get(&key).is_some_and(|at| now.duration_since(*at).as_secs() < 60) {
            return false;
        }
        if logged.len() >= 1024 {
            logged.retain(|_, at| now.duration_since(*at).as_secs() < 60);
            if logged.len() >= 1024 {
                return false;
            }
        }
        logged.insert(key, now);
        true
    }

    /// Logs a sign-in refused for want of a valid token (a device left with a revoked one keeps
    /// trying), once a minute per client id ([`PlatformHooks::log_now`]). Never the password, nor
    /// the user name (a password typed there must not reach the log).
    fn log_refused_sign_in(&self, client_id: &str) {
        let client_id: String = client_id.chars().take(64).collect();
        if !self.log_now(format!("sign-in {client_id}")) {
            return;
        }
        tracing::info!(
            client_id = ?client_id,
            "MQTT sign-in refused: the password is no valid API token (unknown, revoked or expired); logged at most once a minute per client id"
        );
    }

    /// Says where people look why a device's client id was refused, once a minute per device: a
    /// device that worked yesterday may be refused because a device account with a longer name was
    /// created since. `owner` is that account, if any.
    fn log_refused_id(&self, device: &str, client_id: &str, owner: Option<&str>) {
        if !self.log_now(format!("client id {device}")) {
            return;
        }
        // Clipped: ids may be long.
        let client_id: String = client_id.chars().take(64).collect();
        match owner {
            Some(owner) => tracing::warn!(
                device,
                client_id = ?client_id,
                owner,
                "MQTT client id refused: it starts with another device account's longer name"
            ),
            None => tracing::info!(
                device,
                client_id = ?client_id,
                "MQTT client id refused: a device's client id starts with its user name"
            ),
        }
    }
}

impl Hooks for PlatformHooks {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Identity, AuthRejection> {
        let Some(password) = credentials.password else { return Err(AuthRejection::BadUserNameOrPassword) };
        let token = std::str::from_utf8(password).map_err(|_| AuthRejection::BadUserNameOrPassword)?;
        let digest = token_digest(token);
        let client_id = credentials.client_id.to_string();
        let (store, now) = (self.store.clone(), self.clock.now());
        let found = tokio::task::spawn_blocking(move || {
            let Some(owner) = store.token_owner(&digest, now)? else { return Ok(None) };
            let identity = owner_identity(&store, &owner)?;
            let id_owner = match owner.user.role {
                Role::Device => store.longest_device_prefix(&client_id)?,
                _ => None,
            };
            Ok::<_, store::StoreError>(Some((owner, identity, id_owner)))
        })
        .await
        .map_err(|_| AuthRejection::ServerUnavailable)?
        .map_err(|_| AuthRejection::ServerUnavailable)?;
        let Some((owner, identity, id_owner)) = found else {
            self.log_refused_sign_in(credentials.client_id);
            return Err(AuthRejection::BadUserNameOrPassword);
        };
        let identity = identity?;
        // A device's client id starts with its user name, and with no longer one: `press10-1` is
        // press10's, so press1 cannot claim it while press10 is away.
        if owner.user.role == Role::Device && id_owner.as_deref() != Some(owner.user.username.as_str()) {
            self.log_refused_id(&owner.user.username, credentials.client_id, id_owner.as_deref());
            return Err(AuthRejection::IdentifierRejected);
        }
        Ok(identity)
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        if topic == self.host_state_topic {
            self.metrics.count_ingest_drop("not_permitted");
            self.metrics.log_drop_limited(
                "not_permitted",
                &format!(
                    "{topic:?} is the platform's own Sparkplug STATE topic: only the platform publishes there"
                ),
            );
            return false;
        }
        if is_admin(identity) {
            return true;
        }
        let allowed = device_site(identity).is_some_and(|(_, site)| device_may_publish(topic, site));
        if !allowed {
            self.metrics.count_ingest_drop("not_permitted");
            let who = identity.as_str().rsplit(':').next().unwrap_or_default();
            // Clipped: a topic may be 64 KB.
            let topic: String = topic.chars().take(128).collect();
            self.metrics
                .log_drop_limited("not_permitted", &format!("device {who} may not publish to {topic:?}"));
        }
        allowed
    }

    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        is_admin(identity) || device_site(identity).is_some_and(|(_, site)| device_may_read(filter, site))
    }
}

/// How often the identities of open connections are checked against their tokens.
const TOKEN_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Closes, every [`TOKEN_CHECK`], the connections whose token no longer gives the identity they
/// signed in with: revoked, expired, its user deleted, demoted or moved to another site.
async fn watch_tokens(
    broker: BrokerHandle,
    store: Store,
    clock: std::sync::Arc<dyn model::Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TOKEN_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let identities = broker.connected_identities();
        if identities.is_empty() {
            continue;
        }
        let (store, now) = (store.clone(), clock.now());
        let stale = tokio::task::spawn_blocking(move || {
            let mut stale = Vec::new();
            for identity in identities {
                let still = identity_token(&identity)
                    .map(|token| {
                        let Some(owner) = store.live_token(token, now)? else { return Ok(None) };
                        Ok::<_, store::StoreError>(owner_identity(&store, &owner)?.ok())
                    })
                    .transpose()?
                    .flatten();
                if still.as_ref() != Some(&identity) {
                    stale.push(identity);
                }
            }
            Ok::<_, store::StoreError>(stale)
        })
        .await;
        match stale {
            Ok(Ok(stale)) if !stale.is_empty() => {
                let closed = broker.disconnect_where(|identity| stale.contains(identity));
                tracing::info!(closed, "closed MQTT connections whose token no longer holds");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not check MQTT connections' tokens"),
            Err(error) => tracing::warn!(%error, "MQTT token check failed"),
        }
    }
}

impl AppState {
    /// Queues a message for MQTT without waiting; dropped (and logged) when MQTT is off or behind.
    pub fn publish_mqtt(&self, message: Outgoing) {
        if self.outgoing.try_send(message).is_err() {
            tracing::debug!("mqtt outgoing queue full or closed; message dropped");
        }
    }
}

/// The running MQTT side.
pub struct Mqtt {
    broker: Option<BrokerHandle>,
    /// The address the embedded broker listens on.
    pub address: Option<SocketAddr>,
    /// The retained Sparkplug STATE saying the platform went offline, published at shutdown.
    offline: Option<Outgoing>,
}

impl Mqtt {
    /// Stops the embedded broker (the client tasks end with the server's stop signal).
    pub async fn shutdown(&self) {
        if let Some(broker) = &self.broker {
            if let Some(offline) = &self.offline {
                let _ = broker.publish(&offline.topic, &offline.payload, QoS::AtLeastOnce, true).await;
            }
            broker.shutdown().await;
        }
    }
}

/// Starts the embedded broker on `listener`, or connects to the external broker, and wires both
/// directions to the pipeline.
pub async fn start(
    state: &AppState,
    config: &MqttConfig,
    listener: Option<tokio::net::TcpListener>,
) -> Result<Mqtt, MqttError> {
    let outgoing = state.take_outgoing();
    let stop = state.stopping.clone();
    if let Some(external) = &config.external {
        external::start(state, config, external, outgoing).await?;
        return Ok(Mqtt { broker: None, address: None, offline: None });
    }

    let listener = match listener {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind(config.listen).await?,
    };
    let address = listener.local_addr().ok();
    // Durable acks: a device's QoS 1 PUBACK means its reading is stored.
    let broker_config = BrokerConfig { durable_acks: true, ..BrokerConfig::default() };
    let broker = Broker::start(
        listener,
        broker_config,
        PlatformHooks::new(
            state.store.clone(),
            state.wall_clock.clone(),
            state.metrics.clone(),
            &config.host_id,
        ),
    );
    tokio::spawn(watch_tokens(broker.clone(), state.store.clone(), state.wall_clock.clone(), stop.clone()));
    state.metrics.watch_broker(broker.clone());
    for filter in INGEST_FILTERS {
        let mut messages = broker.subscribe(filter)?;
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                let publisher = match device_site(&message.publisher) {
                    Some((site, _)) => Publisher::Site(site),
                    // What the platform publishes itself is output, not input.
                    None if message.publisher.as_str() == Identity::BROKER => continue,
                    None => Publisher::AnySite,
                };
                let incoming = Incoming {
                    topic: message.topic.to_string(),
                    payload: message.payload.to_vec(),
                    publisher,
                    receipt: Some(message.receipt),
                };
                state.ingest(incoming).await;
            }
        });
    }
    if let Some(mut outgoing) = outgoing {
        let broker = broker.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = outgoing.recv() => {
                        let Some(message) = message else { break };
                        let qos = QoS::publish_level(message.qos);
                        if let Err(error) = broker.publish(&message.topic, &message.payload, qos, message.retain).await {
                            tracing::debug!(%error, "could not publish");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        });
    }
    let host_state = |online| {
        let timestamp = model::oee::unix_ms(state.clock.now()).max(0) as u64;
        ingest::sparkplug::encode_host_state(
            &config.host_id,
            ingest::sparkplug::HostState { online, timestamp },
        )
    };
    if let Ok(online) = host_state(true) {
        broker.publish(&online.topic, &online.payload, QoS::AtLeastOnce, true).await?;
    }
    if let Some(address) = address {
        tracing::info!(%address, "embedded MQTT broker listening");
    }
    Ok(Mqtt { broker: Some(broker), address, offline: host_state(false).ok() })
}

/// Why MQTT could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// Binding or connecting failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The MQTT client or broker refused.
    #[error(transparent)]
    Mqtt(#[from] mqtt::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_stay_under_their_site() {
        let identity = device_identity(12, model::UserId(4), SiteId(3), "hk-kt", "gw-1");
        assert_eq!(device_site(&identity), Some((SiteId(3), "hk-kt")));
        assert_eq!(identity_token(&identity), Some(12));
        assert_eq!(identity_token(&admin_identity(5, model::UserId(1))), Some(5));
        assert_eq!(identity.account(), "user:4");
        let hooks_allow =
            |topic: &str| device_site(&identity).is_some_and(|(_, site)| device_may_publish(topic, site));
        assert!(hooks_allow("mf/v1/hk-kt/cnc-01/telemetry"));
        assert!(hooks_allow("mf/v1/hk-kt/cnc-01/events"));
        assert!(hooks_allow("spBv1.0/hk-kt/NDATA/gw-1"));
        assert!(hooks_allow("spBv1.0/hk-kt/DBIRTH/gw-1/press-2"));
        // Not what the platform publishes for others to trust.
        assert!(!hooks_allow("mf/v1/hk-kt/alarms"));
        assert!(!hooks_allow("mf/v1/hk-kt/cnc-01/commands"));
        assert!(!hooks_allow("spBv1.0/hk-kt/NCMD/gw-1"));
        assert!(!hooks_allow("spBv1.0/hk-kt/DCMD/gw-1/press-2"));
        assert!(!hooks_allow("spBv1.0/hk-kt/NDATA/"));
        assert!(!hooks_allow("mf/v1/hk-kt2/cnc-01/telemetry"));
        assert!(!hooks_allow("mf/v1/sz/cnc-01/telemetry"));
        assert!(!hooks_allow("spBv1.0/STATE/host"));
        assert!(!hooks_allow("mf/v1/+/cnc-01/telemetry"));
        assert!(!hooks_allow("#"));
        assert_eq!(device_site(&admin_identity(1, model::UserId(1))), None);
        // What a device may read: commands to its own site's edge nodes and the host's state.
        for filter in ["spBv1.0/hk-kt/NCMD/gw-1", "spBv1.0/hk-kt/DCMD/gw-1/#", "spBv1.0/STATE/microfactory"] {
            assert!(device_may_read(filter, "hk-kt"), "{filter}");
        }
        for filter in [
            "mf/v1/hk-kt/#",
            "spBv1.0/hk-kt/#",
            "spBv1.0/hk-kt/+/gw-1",
            "spBv1.0/hk-kt/NDATA/gw-1",
            "spBv1.0/sz/NCMD/gw-1",
            "spBv1.0/hk-kt2/NCMD/gw-1",
            "spBv1.0/hk-kt/NCMDX/gw-1",
        ] {
            assert!(!device_may_read(filter, "hk-kt"), "{filter}");
        }
    }
}
