//! The embedded MQTT 3.1.1 broker: `Broker::start` serves a caller-provided `TcpListener` and
//! returns a `BrokerHandle` for in-process publish/subscribe, counters and graceful shutdown.
//! Devices are authenticated and restricted through the `Hooks` trait.
//!
//! Policies, in short (details on the items):
//! - **QoS**: 0 and 1 end to end. Incoming QoS 2 is accepted (PUBREC/PUBREL/PUBCOMP) and routed
//!   once; subscriptions are granted at most QoS 1, so the broker never sends QoS 2. With durable
//!   acks a PUBREC waits for the in-process subscribers as a PUBACK does.
//! - **Topics**: at most `topic::MAX_TOPIC_LEVELS` levels; a deeper one is a protocol error.
//! - **Sessions**: clean sessions only. `clean_session = 0` is accepted but nothing is kept after
//!   the connection ends (CONNACK's session-present flag is always 0), so unacknowledged QoS 1
//!   messages to a client that disconnects are lost.
//! - **Back-pressure**: every queue is bounded; see `BrokerConfig` and `BrokerHandle::subscribe`.
//! - **Permissions**: a PUBLISH that `may_publish` refuses is dropped and counted; a QoS 1 one is
//!   still acknowledged with PUBACK, since MQTT 3.1.1 has no negative acknowledgement and closing
//!   the connection would only make the device retry the same message forever.
//! - **Wills**: published (through `may_publish`) when a connection ends without DISCONNECT: socket
//!   closed or failed, 1.5 × keepalive without a packet, protocol error, or disconnected as a slow
//!   subscriber. Not on a client-id takeover (the device is back, so "offline" would be wrong) and
//!   not at broker shutdown.
//! - **Client ids**: a new connection takes over a client id only from a connection of the same
//!   account (`Identity::account`); another account is refused (return code 2), so one device
//!   cannot knock another offline, while a device back with a new token still takes over its old,
//!   half-open connection.
//! - **Withdrawn permission** (`BrokerHandle::disconnect_where`): the connection is closed and its
//!   will published, as when it drops (the will was permitted when it connected, and tells the
//!   platform the device is gone).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::codec::{self, QoS};
use crate::error::Error;
use crate::topic;

mod connection;
mod counters;
mod router;
mod subscriptions;
#[cfg(test)]
mod tests;

pub use counters::{Counter, CounterSnapshot};
use router::Router;

/// Limits and timeouts of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest packet accepted (fixed header included); larger ones close the connection.
    pub max_packet_size: usize,
    /// Capacity of each network subscriber's outgoing queue, in messages.
    pub subscriber_queue_capacity: usize,
    /// Capacity of each in-process subscriber's channel, in messages.
    pub in_process_capacity: usize,
    /// QoS 1 messages sent to one client and not yet acknowledged; when reached, the broker stops
    /// sending to it until PUBACKs arrive (its queue then fills and the policy above applies).
    pub max_inflight: usize,
    /// How long a network subscriber's queue may stay full before it is disconnected as too slow.
    /// Meanwhile what finds it full is dropped and counted, QoS 1 included (as a broker's queue
    /// limit does): publishers never wait for a network subscriber (only the retained messages a
    /// subscriber asked for wait, up to this long).
    pub slow_subscriber_timeout: Duration,
    /// Retained messages kept at most; retaining a new topic beyond this is dropped and counted.
    pub max_retained: usize,
    /// Bytes (topics plus payloads) of retained messages kept at most; a retained message that
    /// would exceed this is not stored (counted like `max_retained`).
    pub max_retained_bytes: usize,
    /// Open connections at most; more are closed at once and counted.
    pub max_connections: usize,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Durable acknowledgements: a QoS 1 PUBACK (or QoS 2 PUBREC) is sent only once every
    /// in-process subscriber it was routed to has released its copy — so one that holds the
    /// message's [`Receipt`] until the message is stored makes "acknowledged" mean "durable".
    /// Copies for network subscribers and the retained store hold nothing back. The acks still go
    /// out in the order the PUBLISHes came in.
    pub durable_acks: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_packet_size: codec::DEFAULT_MAX_PACKET_SIZE,
            subscriber_queue_capacity: 1024,
            in_process_capacity: 4096,
            max_inflight: 256,
            slow_subscriber_timeout: Duration::from_secs(10),
            max_retained: 100_000,
            max_retained_bytes: 64 << 20,
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(10),
            durable_acks: false,
        }
    }
}

/// Who published a message, as `Hooks::authenticate` named the connection (for example
/// `"device site=hk-kt"`), and the account it belongs to: a client id is taken over only by a
/// connection of the same account. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    name: Arc<str>,
    account: Arc<str>,
}

impl Identity {
    /// The identity of messages published through `BrokerHandle::publish`.
    pub const BROKER: &'static str = "$broker";

    /// Wraps any text, as its own account.
    pub fn new(name: impl Into<Arc<str>>) -> Identity {
        let name = name.into();
        Identity { account: name.clone(), name }
    }

    /// An identity of `account` (one account may sign in as several identities: with each of its
    /// tokens, say).
    pub fn of_account(name: impl Into<Arc<str>>, account: impl Into<Arc<str>>) -> Identity {
        Identity { name: name.into(), account: account.into() }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The account it belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// An application message as the broker routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: Arc<str>,
    /// Payload bytes.
    pub payload: Arc<[u8]>,
    /// QoS it was published with.
    pub qos: QoS,
    /// As MQTT delivers it: true only when the message comes from the retained store because of a
    /// new subscription, false for live messages even if they were published with retain.
    pub retain: bool,
    /// Who published it.
    pub publisher: Identity,
    /// With [`BrokerConfig::durable_acks`], the publisher's PUBACK waits until every copy of this
    /// receipt is dropped (or [`Receipt::release`]d). Not part of equality.
    pub receipt: Receipt,
}

/// Holds back the PUBACK of a QoS 1 message while any copy of it is alive (see
/// [`BrokerConfig::durable_acks`]). Empty for QoS 0 and when durable acks are off.
///
/// The copy an in-process subscriber gets is *guarded*: dropped without [`Receipt::release`] (its
/// holder stopped with the message still queued, say) it abandons the message, so nothing that
/// subscriber did not take care of is ever acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    held: Option<Arc<ReceiptInner>>,
    guarded: bool,
}

#[derive(Debug)]
struct ReceiptInner {
    /// Told when the last copy goes, unless one was abandoned: then it is dropped unsent.
    done: Option<tokio::sync::oneshot::Sender<()>>,
    abandoned: std::sync::atomic::AtomicBool,
}

impl Drop for ReceiptInner {
    fn drop(&mut self) {
        if !self.abandoned.load(std::sync::atomic::Ordering::Acquire)
            && let Some(done) = self.done.take()
        {
            let _ = done.send(());
        }
    }
}

impl Receipt {
    /// A receipt and the future that completes when every copy of it is gone: with `Ok` when the
    /// message may be acknowledged, with an error when a holder abandoned it (see
    /// [`Receipt::abandon`]). The broker acknowledges on `Ok`; other sources may hold back their
    /// own acknowledgement the same way.
    pub fn new() -> (Receipt, tokio::sync::oneshot::Receiver<()>) {
        let (done, released) = tokio::sync::oneshot::channel();
        let inner = ReceiptInner { done: Some(done), abandoned: std::sync::atomic::AtomicBool::new(false) };
        (Receipt { held: Some(Arc::new(inner)), guarded: false }, released)
    }

    /// This copy, guarded: dropped without [`Receipt::release`] it abandons the message. The broker
    /// hands its in-process subscribers such copies; a source of its own does the same.
    pub fn guarded(mut self) -> Receipt {
        self.guarded = true;
        self
    }

    /// Lets go of this copy: the holder has taken care of the message (stored it, or judged it
    /// not worth storing).
    pub fn release(mut self) {
        self.guarded = false;
    }

    /// Lets go of this copy as a holder that could not keep the message (the store stopped before
    /// it was written): it is never acknowledged, and the broker closes the publisher's connection
    /// so that the publisher sends it again once reconnected (acknowledgements must keep the
    /// messages' order, so none after it can be sent either).
    pub fn abandon(mut self) {
        self.guarded = true;
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if self.guarded
            && let Some(inner) = &self.held
        {
            inner.abandoned.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

impl PartialEq for Receipt {
    /// Receipts never make two messages differ.
    fn eq(&self, _other: &Receipt) -> bool {
        true
    }
}

impl Eq for Receipt {}

impl std::hash::Hash for Receipt {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

/// What a client presented in CONNECT, for `Hooks::authenticate`. `Debug` hides the password.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The client identifier (assigned by the broker if the client sent an empty one).
    pub client_id: &'a str,
    /// User name, if sent.
    pub username: Option<&'a str>,
    /// Password, if sent.
    pub password: Option<&'a [u8]>,
    /// The client's address.
    pub peer: SocketAddr,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "<redacted>"))
            .field("peer", &self.peer)
            .finish()
    }
}

/// Why `Hooks::authenticate` refused a connection; each maps to a CONNACK return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejection {
    /// Return code 2.
    IdentifierRejected,
    /// Return code 3: try again later (e.g. the credential store is unavailable).
    ServerUnavailable,
    /// Return code 4.
    BadUserNameOrPassword,
    /// Return code 5.
    NotAuthorized,
}

/// The broker's policy decisions, supplied by the embedding application.
///
/// `authenticate` runs once per connection and may do IO (it is limited by `connect_timeout`,
/// after which the client gets return code 3); `may_publish` and `may_subscribe` run for every
/// PUBLISH and every SUBSCRIBE filter on the connection's task, so they must be cheap in-memory
/// checks (decide what the identity may do in `authenticate` and encode it in the identity).
///
/// A new connection with a client id that is already connected closes the old connection, so
/// `authenticate` should refuse (`IdentifierRejected`) client ids the credentials do not own —
/// otherwise one device can knock another offline by borrowing its id.
pub trait Hooks: Send + Sync + 'static {
    /// Accepts a CONNECT, naming the session's identity, or refuses it.
    fn authenticate(
        &self,
        credentials: Credentials<'_>,
    ) -> impl Future<Output = Result<Identity, AuthRejection>> + Send;

    /// Whether `identity` may publish to the topic name (also asked for its will).
    fn may_publish(&self, identity: &Identity, topic: &str) -> bool;

    /// Whether `identity` may subscribe to the topic filter.
    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool;
}

/// Hooks for tests and trusted networks: everyone is accepted (identity = user name, else client
/// id) and may publish and subscribe anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Hooks for AllowAll {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Identity, AuthRejection> {
        Ok(Identity::new(credentials.username.unwrap_or(credentials.client_id)))
    }

    fn may_publish(&self, _identity: &Identity, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _identity: &Identity, _filter: &str) -> bool {
        true
    }
}

/// The embedded broker.
#[derive(Debug)]
pub struct Broker;

impl Broker {
    /// Starts serving `listener` on the current tokio runtime and returns the handle. Every
    /// accepted socket gets TCP_NODELAY. The broker runs until `BrokerHandle::shutdown` or until
    /// every handle has been dropped.
    pub fn start<H: Hooks>(listener: TcpListener, config: BrokerConfig, hooks: H) -> BrokerHandle {
        let local_addr = listener.local_addr().ok();
        let router = Arc::new(Router::new(config));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, router.clone(), Arc::new(hooks), shutdown_rx));
        BrokerHandle {
            router,
            local_addr,
            shutdown: Arc::new(shutdown_tx),
            task: Arc::new(tokio::sync::Mutex::new(Some(task))),
        }
    }
}

/// A cheap, cloneable handle to a running broker.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    router: Arc<Router>,
    local_addr: Option<SocketAddr>,
    shutdown: Arc<watch::Sender<bool>>,
    task: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl BrokerHandle {
    /// The address the listener is bound to (tests bind port 0 and read the port here).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Subscribes in-process to a topic filter. Matching messages (retained ones first, from a
    /// background task) arrive on the returned bounded channel of `in_process_capacity` with the
    /// publisher's identity. When the channel is full, the connection publishing the next match
    /// waits for room — so a slow consumer slows publishers instead of growing memory. Dropping the
    /// receiver ends the subscription. Don't publish (from the task that drains this receiver) to
    /// topics it matches: with a full channel that task would wait on itself.
    pub fn subscribe(&self, filter: &str) -> Result<mpsc::Receiver<Message>, Error> {
        topic::validate_topic_filter(filter)?;
        let (queue, receiver) = mpsc::channel(self.router.config.in_process_capacity);
        let retained = self.router.subscribe_in_process(filter, queue.clone());
        if !retained.is_empty() {
            tokio::spawn(async move {
                for message in retained {
                    if queue.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(receiver)
    }

    /// Publishes from inside the process, as `Identity::BROKER`, to network and in-process
    /// subscribers under the same back-pressure policy as a client's PUBLISH.
    pub async fn publish(&self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Result<(), Error> {
        topic::validate_topic_name(topic)?;
        if *self.shutdown.borrow() {
            return Err(Error::ShutDown);
        }
        let message = Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: qos.min(QoS::AtLeastOnce),
            retain,
            publisher: Identity::new(Identity::BROKER),
            receipt: Receipt::default(),
        };
        self.router.route(message).await;
        Ok(())
    }

    /// The identities of the open client connections, each once.
    pub fn connected_identities(&self) -> Vec<Identity> {
        self.router.identities()
    }

    /// Closes every client connection whose identity `revoked` picks (a token revoked, a user
    /// deleted); their wills are published. Returns how many were closed.
    pub fn disconnect_where(&self, revoked: impl Fn(&Identity) -> bool) -> usize {
        self.router.kick_where(revoked)
    }

    /// Copies every counter.
    pub fn counters(&self) -> CounterSnapshot {
        self.router.counters.snapshot()
    }

    /// Stops accepting, closes every connection (without publishing wills), waits for their tasks
    /// to end and closes every in-process subscription channel. Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let task = self.task.lock().await.take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "mqtt broker accept loop ended abnormally");
        }
        self.router.close_all();
    }
}

async fn accept_loop<H: Hooks>(
    listener: TcpListener,
    router: Arc<Router>,
    hooks: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    router.counters.incr(Counter::ConnectionsAccepted);
                    if connections.len() >= router.config.max_connections {
                        router.counters.incr(Counter::ConnectionsRefused);
                        drop(stream);
                        continue;
                    }
                    connections.spawn(connection::serve(
                        stream,
                        peer,
                        router.clone(),
                        hooks.clone(),
                        connection_shutdown.clone(),
                    ));
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "mqtt accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
            () = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once shutdown is requested (or every handle is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
