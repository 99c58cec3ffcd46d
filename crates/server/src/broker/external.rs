//! The platform as a client of an external broker. Delivery is at least once and durable: the
//! platform keeps one persistent session (a fixed client id, `clean_session = false`) and
//! acknowledges a QoS 1 message only after the pipeline has committed it. A message the platform
//! received but had not stored when it stopped or crashed is sent again by the broker on the
//! next connection, and so are the messages published while the platform was away. A lost
//! connection is retried with a growing pause (1 s doubling to 30 s; it starts again at 1 s only
//! after a connection lasted a minute, so two platforms sharing a client id, which knock each
//! other off, do not churn).

use std::time::Duration;

use ingest::Outgoing;
use mqtt::{Client, ClientOptions, Inbox, QoS};
use tokio::sync::{mpsc, watch};

use super::{INGEST_FILTERS, MqttConfig};
use crate::AppState;
use crate::pipeline::{Incoming, Publisher};

/// Messages taken from the broker and not yet handed to the pipeline, at most.
const INBOX_CAPACITY: usize = 1024;
/// The pause before the first reconnection attempt, and the longest pause.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the pause to [`RETRY_FIRST`].
const STABLE: Duration = Duration::from_secs(60);
/// A connection lost sooner than this after it was made hints at a client id used twice.
const SHORT_LIVED: Duration = Duration::from_secs(10);

/// One connection's client, and the Sparkplug host state timestamp it announced.
struct Connection {
    client: Client,
    inbox: Inbox,
    since_ms: u64,
}

/// The client id of the platform's session: `mqtt.client_id`, or the Sparkplug host id.
pub(super) fn client_id(config: &MqttConfig) -> String {
    config.client_id.clone().unwrap_or_else(|| config.host_id.clone())
}

/// Connects (refused credentials are an error at start-up: a setting to fix; a broker that cannot
/// be reached yet is not: the platform starts and keeps trying, as after losing it), then serves
/// the connection and reconnects in the background until the platform stops.
pub(super) async fn start(
    state: &AppState,
    config: &MqttConfig,
    address: &str,
    outgoing: Option<mpsc::Receiver<Outgoing>>,
) -> Result<(), mqtt::Error> {
    let first = match connect(state, config, address).await {
        Ok(first) => {
            tracing::info!(broker = %address, client_id = %client_id(config), "subscribed to the external MQTT broker");
            Some(first)
        }
        Err(error @ mqtt::Error::ConnectionRefused(_)) => {
            tracing::error!(
                %error,
                broker = %address,
                client_id = %client_id(config),
                "the external MQTT broker refused the platform's connection: check username, password and client_id in the [mqtt] section of the config file, and the broker's access rules for them"
            );
            return Err(error);
        }
        Err(error) => {
            tracing::warn!(%error, broker = %address, "cannot reach the external MQTT broker yet; trying again in the background");
            None
        }
    };
    state.metrics.set_external_broker_connected(first.is_some());
    let (current, watch_current) = watch::channel(first.as_ref().map(|first| first.client.clone()));
    if let Some(outgoing) = outgoing {
        tokio::spawn(forward_outgoing(outgoing, watch_current, state.stopping.clone()));
    }
    tokio::spawn(serve(state.clone(), config.clone(), address.to_string(), first, current));
    Ok(())
}

fn host_state(config: &MqttConfig, online: bool, timestamp: u64) -> Option<Outgoing> {
    let host = ingest::sparkplug::HostState { online, timestamp };
    ingest::sparkplug::encode_host_state(&config.host_id, host).ok()
}

async fn connect(state: &AppState, config: &MqttConfig, address: &str) -> Result<Connection, mqtt::Error> {
    let mut options = ClientOptions::new(client_id(config));
    options.clean_session = false;
    options.username = config.username.clone();
    options.password = config.password.clone().map(String::into_bytes);
    options.keep_alive = Duration::from_secs(30);
    // Sparkplug primary host: offline as the will, online once connected, with one timestamp.
    let since_ms = model::oee::unix_ms(state.clock.now()).max(0) as u64;
    options.will = host_state(config, false, since_ms).map(|will| mqtt::LastWill {
        topic: will.topic,
        payload: will.payload,
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    let (client, inbox) = Client::connect_with_inbox(address, options, INBOX_CAPACITY).await?;
    // Nothing here waits for the broker's answers: a kept session's messages may come first and
    // fill the inbox, and the answers are read only once the caller takes from it.
    if let Some(online) = host_state(config, true, since_ms) {
        drop(client.start_publish(&online.topic, online.payload, QoS::AtLeastOnce, true).await?);
    }
    let subscriber = client.clone();
    tokio::spawn(async move {
        for filter in INGEST_FILTERS {
            // The messages come through the inbox; the subscription only tells the broker.
            if let Err(error) = subscriber.subscribe(filter, QoS::AtLeastOnce).await {
                tracing::error!(%error, filter, "the external MQTT broker refused a subscription");
            }
        }
    });
    Ok(Connection { client, inbox, since_ms })
}

/// Hands every message to the pipeline with its receipt, and reconnects when the connection
/// ends. `current` tells the outgoing forwarder which client to publish with.
async fn serve(
    state: AppState,
    config: MqttConfig,
    address: String,
    first: Option<Connection>,
    current: watch::Sender<Option<Client>>,
) {
    let mut stop = state.stopping.clone();
    let mut connection = first;
    let mut pause = RETRY_FIRST;
    let mut reassert = Reassert::new();
    loop {
        if let Some(Connection { client, mut inbox, since_ms }) = connection.take() {
            let connected = std::time::Instant::now();
            current.send_replace(Some(client.clone()));
            state.metrics.set_external_broker_connected(true);
            loop {
                tokio::select! {
                    delivery = inbox.recv() => {
                        let Some(delivery) = delivery else { break };
                        // A retained message comes again with every subscription (each connect): it
                        // was taken in when it was published, or queued in the session meanwhile.
                        // Released, so that it is acknowledged (an unreleased receipt abandons it,
                        // and the connection would end for the broker to send it again).
                        // Sparkplug 3.0: a host that reads itself declared offline (the will of
                        // a connection the broker dropped late, another client) says it is online
                        // again at once.
                        if says_host_not_online(&delivery.publish.topic, &delivery.publish.payload, &config.host_id) {
                            reassert.request();
                        }
                        if delivery.publish.retain {
                            state.metrics.count_ingest_skip("retained");
                            delivery.receipt.release();
                            continue;
                        }
                        let incoming = Incoming {
                            topic: delivery.publish.topic,
                            payload: delivery.publish.payload,
                            publisher: Publisher::AnySite,
                            receipt: Some(delivery.receipt),
                        };
                        state.ingest(incoming).await;
                    }
                    () = tokio::time::sleep_until(reassert.at()), if reassert.pending() => {
                        if let Some(online) = host_state(&config, true, since_ms) {
                            drop(client.start_publish(&online.topic, online.payload, QoS::AtLeastOnce, true).await);
                        }
                        reassert.done();
                    }
                    _ = stop.changed() => {
                        // Sparkplug: say offline before a clean disconnect (which discards the will).
                        // Not waiting for its PUBACK, which may sit behind a full inbox.
                        if let Some(offline) = host_state(&config, false, since_ms) {
                            let sent = client.start_publish(&offline.topic, offline.payload, QoS::AtLeastOnce, true);
                            drop(sent.await);
                        }
                        let _ = client.disconnect().await;
                        tracing::info!("left the external MQTT broker");
                        return;
                    }
                }
            }
            current.send_replace(None);
            state.metrics.set_external_broker_connected(false);
            let lasted = connected.elapsed();
            if lasted >= STABLE {
                pause = RETRY_FIRST;
            }
            if lasted < SHORT_LIVED {
                tracing::warn!(
                    broker = %address,
                    client_id = %client_id(&config),
                    lasted_s = lasted.as_secs_f64(),
                    "lost the connection to the external MQTT broker soon after connecting; if another client uses the same client id, give each platform its own mqtt.client_id"
                );
            } else {
                tracing::warn!(broker = %address, "lost the connection to the external MQTT broker; reconnecting");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(RETRY_MAX);
        match connect(&state, &config, &address).await {
            Ok(next) => {
                tracing::info!(broker = %address, "reconnected to the external MQTT broker");
                connection = Some(next);
            }
            Err(error) => {
                tracing::warn!(%error, broker = %address, retry_in_s = pause.as_secs(), "cannot reach the external MQTT broker");
            }
        }
    }
}

/// Publishes what the platform sends (rebirth requests, alarm notifications) with the client of
/// the moment; while disconnected, messages are dropped (and logged at debug level).
async fn forward_outgoing(
    mut outgoing: mpsc::Receiver<Outgoing>,
    current: watch::Receiver<Option<Client>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else { break };
                let client = current.borrow().clone();
                let Some(client) = client else {
                    tracing::debug!(topic = %message.topic, "not connected to the external broker; message dropped");
                    continue;
                };
                let qos = QoS::publish_level(message.qos);
                if let Err(error) = client.publish(&message.topic, message.payload, qos, message.retain).await {
                    tracing::warn!(%error, topic = %message.topic, "could not publish to the external broker");
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Whether a message on this platform's Sparkplug STATE topic (host `host_id`) says anything but
/// that it is online: that it is offline, or something no edge node can read.
fn says_host_not_online(topic: &str, payload: &[u8], host_id: &str) -> bool {
    topic.strip_prefix("spBv1.0/STATE/") == Some(host_id)
        && !ingest::sparkplug::decode_host_state(payload).is_some_and(|state| state.online)
}

/// The platform saying it is online again when another client said otherwise on its STATE topic:
/// at once, but at most once a second (a client answering every online with an offline would
/// otherwise make a loop of tens of thousands a second), and logged at most every 10 s.
struct Reassert {
    pending: bool,
    last: Option<tokio::time::Instant>,
    logged: Option<tokio::time::Instant>,
}

impl Reassert {
    const fn new() -> Reassert {
        Reassert { pending: false, last: None, logged: None }
    }

    /// Another client said the platform is not online: it says otherwise at [`Reassert::at`].
    fn request(&mut self) {
        self.pending = true;
    }

    /// Whether saying online again is due.
    fn pending(&self) -> bool {
        self.pending
    }

    /// When to say it: now, or a second after the last time.
    fn at(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        self.last.map_or(now, |last| (last + Duration::from_secs(1)).max(now))
    }

    /// It was said.
    fn done(&mut self) {
        let now = tokio::time::Instant::now();
        self.pending = false;
        self.last = Some(now);
        if self.logged.is_none_or(|logged| now.duration_since(logged) >= Duration::from_secs(10)) {
            self.logged = Some(now);
            tracing::info!(
                "another client said on the platform's Sparkplug STATE topic that it is not online; said it is online again (logged at most every 10 s)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_online_on_the_platform_s_state_topic_is_not_online() {
        let ours = "spBv1.0/STATE/microfactory";
        assert!(says_host_not_online(ours, br#"{"online": false, "timestamp": 1}"#, "microfactory"));
        // What no edge node can read says it is not online either.
        for unreadable in [&br#"{"online": false}"#[..], b"garbage", b""] {
            assert!(says_host_not_online(ours, unreadable, "microfactory"));
        }
        assert!(!says_host_not_online(ours, br#"{"online": true, "timestamp": 1}"#, "microfactory"));
        let other = "spBv1.0/STATE/other-host";
        assert!(!says_host_not_online(other, b"garbage", "microfactory"));
    }

    #[test]
    fn the_platform_says_it_is_online_again_at_once_but_at_most_once_a_second() {
        let mut reassert = Reassert::new();
        assert!(!reassert.pending());
        reassert.request();
        assert!(reassert.pending() && reassert.at() <= tokio::time::Instant::now());
        reassert.done();
        assert!(!reassert.pending());
        // A client answering every online with an offline makes no loop.
        reassert.request();
        let wait = reassert.at() - tokio::time::Instant::now();
        assert!(wait > Duration::from_millis(900), "{wait:?}");
    }
}
