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
/// - Device tokens may publish and subscribe only under their site: `mf/v1/{site}/…` and
///   `spBv1.0/{site}/…` (the Sparkplug group id is the site code); they may also subscribe to the
///   primary host's `spBv1.0/STATE/…`. A device's client id must
///   start with its user name, so one device cannot knock another offline by taking its id.
/// - Every other role is refused (return code 5).
#[derive(Clone)]
pub struct PlatformHooks {
    store: Store,
    clock: std::sync::Arc<dyn model::Clock>,
}

impl PlatformHooks {
    /// Hooks over `store`'s users and tokens, telling expired tokens by `clock`.
    pub fn new(store: Store, clock: std::sync::Arc<dyn model::Clock>) -> PlatformHooks {
        PlatformHooks { store, clock }
    }
}

const ADMIN_IDENTITY: &str = "admin";

/// `device:{site id}:{site code}:{user name}`.
fn device_identity(site: SiteId, site_code: &str, username: &str) -> Identity {
    Identity::new(format!("device:{}:{site_code}:{username}", site.0))
}

/// The site id and code of a device identity.
fn device_site(identity: &Identity) -> Option<(SiteId, &str)> {
    let mut parts = identity.as_str().strip_prefix("device:")?.splitn(3, ':');
    let id = parts.next()?.parse().ok()?;
    Some((SiteId(id), parts.next()?))
}

fn under_site(topic: &str, site: &str) -> bool {
    ["mf/v1/", "spBv1.0/"].iter().any(|prefix| {
        topic
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(site))
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

impl Hooks for PlatformHooks {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Identity, AuthRejection> {
        let Some(password) = credentials.password else { return Err(AuthRejection::BadUserNameOrPassword) };
        let token = std::str::from_utf8(password).map_err(|_| AuthRejection::BadUserNameOrPassword)?;
        let digest = token_digest(token);
        let client_id = credentials.client_id.to_string();
        let (store, now) = (self.store.clone(), self.clock.now());
        let found = tokio::task::spawn_blocking(move || {
            let owner = store.token_owner(&digest, now)?;
            let site = match owner.as_ref().and_then(|o| o.user.site_id) {
                Some(site) => Some(store.site(site)?),
                None => None,
            };
            Ok::<_, store::StoreError>((owner, site))
        })
        .await
        .map_err(|_| AuthRejection::ServerUnavailable)?
        .map_err(|_| AuthRejection::ServerUnavailable)?;
        match found {
            (None, _) => Err(AuthRejection::BadUserNameOrPassword),
            (Some(owner), _) if owner.user.role == Role::Admin => Ok(Identity::new(ADMIN_IDENTITY)),
            (Some(owner), Some(site)) if owner.user.role == Role::Device => {
                if client_id.starts_with(&owner.user.username) {
                    Ok(device_identity(site.id, &site.code, &owner.user.username))
                } else {
                    Err(AuthRejection::IdentifierRejected)
                }
            }
            _ => Err(AuthRejection::NotAuthorized),
        }
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        identity.as_str() == ADMIN_IDENTITY
            || device_site(identity).is_some_and(|(_, site)| under_site(topic, site))
    }

    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        // Edge nodes watch the primary host's STATE before they publish.
        self.may_publish(identity, filter)
            || (device_site(identity).is_some() && filter.starts_with("spBv1.0/STATE/"))
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
        PlatformHooks::new(state.store.clone(), state.wall_clock.clone()),
    );
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
    tracing::info!(address = ?address, "embedded MQTT broker listening");
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
        let identity = device_identity(SiteId(3), "hk-kt", "gw-1");
        assert_eq!(device_site(&identity), Some((SiteId(3), "hk-kt")));
        let hooks_allow =
            |topic: &str| device_site(&identity).is_some_and(|(_, site)| under_site(topic, site));
        assert!(hooks_allow("mf/v1/hk-kt/cnc-01/telemetry"));
        assert!(hooks_allow("spBv1.0/hk-kt/NDATA/gw-1"));
        assert!(!hooks_allow("mf/v1/hk-kt2/cnc-01/telemetry"));
        assert!(!hooks_allow("mf/v1/sz/cnc-01/telemetry"));
        assert!(!hooks_allow("spBv1.0/STATE/host"));
        assert!(!hooks_allow("mf/v1/+/cnc-01/telemetry"));
        assert!(!hooks_allow("#"));
        assert_eq!(device_site(&Identity::new("admin")), None);
    }
}
