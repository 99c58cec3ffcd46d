//! The broker's shared state and message routing: who is connected under which client id, who
//! subscribes to what, the retained messages, and `route`, which applies the back-pressure policy
//! while handing one message to every matching subscriber.
//!
//! The state sits behind one `std::sync::Mutex` that is never held across an `.await`: `route`
//! copies the matching subscribers' senders out under the lock and delivers after releasing it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};

use super::counters::{Counter, Counters};
use super::subscriptions::{SubscriberKey, Subscriptions};
use super::{BrokerConfig, Identity, Message};
use crate::codec::QoS;

/// Why the broker closes a connection from outside its own task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// A new connection arrived with the same client id; no will.
    Takeover,
    /// Its queue stayed full past `slow_subscriber_timeout`; the will is published.
    SlowSubscriber,
    /// Writing to its socket failed; the will is published.
    WriteFailed,
    /// The application withdrew its permission (`BrokerHandle::disconnect_where`); the will is
    /// published.
    Revoked,
    /// A message it published was abandoned unacknowledged ([`super::Receipt::abandon`]): it
    /// reconnects and sends it again. The device is not gone, so no will.
    Abandoned,
}

/// A message on its way to a network subscriber, with the QoS and retain flag for that delivery.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) message: Message,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
}

/// Where a subscriber's messages go.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    Network {
        queue: mpsc::Sender<Outbound>,
        kick: Arc<watch::Sender<Option<Kick>>>,
        /// Since when its queue has been full without a break, if it is.
        full_since: Arc<Mutex<Option<std::time::Instant>>>,
    },
    InProcess(mpsc::Sender<Message>),
}

impl Sink {
    /// A network subscriber's sink.
    pub(crate) fn network(queue: mpsc::Sender<Outbound>, kick: Arc<watch::Sender<Option<Kick>>>) -> Sink {
        Sink::Network { queue, kick, full_since: Arc::default() }
    }
}

/// Whether a delivery may wait for room in a network subscriber's queue: a publisher's never does
/// (one slow subscriber must not slow the plant's ingest), the retained messages a subscriber asked
/// for on its own connection may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Never,
    UpToTimeout,
}

#[derive(Debug)]
struct Subscriber {
    sink: Sink,
    filters: HashSet<String>,
    /// Who is connected (network subscribers only).
    identity: Option<Identity>,
}

#[derive(Debug, Default)]
struct State {
    subscriptions: Subscriptions,
    subscribers: HashMap<SubscriberKey, Subscriber>,
    /// Client id → the key of the connection that holds it.
    clients: HashMap<String, SubscriberKey>,
    retained: HashMap<String, Message>,
    /// Topic plus payload bytes of everything in `retained`.
    retained_bytes: usize,
}

/// Routing state shared by every connection task and the broker handle.
#[derive(Debug)]
pub(crate) struct Router {
    pub(crate) config: BrokerConfig,
    pub(crate) counters: Counters,
    state: Mutex<State>,
    next_key: std::sync::atomic::AtomicU64,
}

impl Router {
    pub(crate) fn new(config: BrokerConfig) -> Router {
        Router {
            config,
            counters: Counters::default(),
            state: Mutex::default(),
            next_key: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind, still consistent enough to route.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn next_key(&self) -> SubscriberKey {
        self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Registers a connection under its client id, kicking out (takeover) any connection holding
    /// the same id — if that one has the same identity. Another identity may not take a client id
    /// over (one device could knock another offline): then nothing is registered and the answer is
    /// false.
    pub(crate) fn connect(
        &self,
        key: SubscriberKey,
        client_id: &str,
        identity: &Identity,
        sink: Sink,
    ) -> bool {
        let mut state = self.lock();
        if let Some(old_key) = state.clients.get(client_id)
            && let Some(old) = state.subscribers.get(old_key)
        {
            if old.identity.as_ref().map(Identity::account) != Some(identity.account()) {
                return false;
            }
            // A takeover overrides any earlier reason to close: the device is back, so its will
            // ("offline") must not follow its new connection's birth.
            if let Sink::Network { kick, .. } = &old.sink {
                kick.send_replace(Some(Kick::Takeover));
                self.counters.incr(Counter::Takeovers);
            }
        }
        state.clients.insert(client_id.to_owned(), key);
        state
            .subscribers
            .insert(key, Subscriber { sink, filters: HashSet::new(), identity: Some(identity.clone()) });
        true
    }

    /// The identities of the open connections, each once.
    pub(crate) fn identities(&self) -> Vec<Identity> {
        let state = self.lock();
        let mut identities: Vec<Identity> =
            state.subscribers.values().filter_map(|s| s.identity.clone()).collect();
        identities.sort_unstable();
        identities.dedup();
        identities
    }

    /// Closes every connection whose identity `revoked` picks; returns how many.
    pub(crate) fn kick_where(&self, revoked: impl Fn(&Identity) -> bool) -> usize {
        let state = self.lock();
        let mut kicked = 0;
        for subscriber in state.subscribers.values() {
            if let (Some(identity), Sink::Network { kick, .. }) = (&subscriber.identity, &subscriber.sink)
                && revoked(identity)
                && kick_once(kick, Kick::Revoked)
            {
                kicked += 1;
            }
        }
        kicked
    }

    /// Removes a subscriber and its subscriptions (and, for a connection, its client id if it still
    /// holds it).
    pub(crate) fn disconnect(&self, key: SubscriberKey, client_id: Option<&str>) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(subscriber) = state.subscribers.remove(&key) {
            for filter in &subscriber.filters {
                state.subscriptions.remove(filter, key);
            }
        }
        if let Some(client_id) = client_id
            && state.clients.get(client_id) == Some(&key)
        {
            state.clients.remove(client_id);
        }
    }

    /// Adds a subscription for a registered subscriber and returns the retained messages it
    /// matches (with the retain flag set), which the caller delivers.
    pub(crate) fn subscribe(&self, key: SubscriberKey, filter: &str, qos: QoS) -> Vec<Message> {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(subscriber) = state.subscribers.get_mut(&key) else {
            return Vec::new();
        };
        subscriber.filters.insert(filter.to_owned());
        state.subscriptions.insert(filter, key, qos);
        state
            .retained
            .values()
            .filter(|message| crate::topic::matches(filter, &message.topic))
            .cloned()
            .collect()
    }

    /// Registers an in-process subscriber with one filter; returns its key and retained matches.
    pub(crate) fn subscribe_in_process(&self, filter: &str, queue: mpsc::Sender<Message>) -> Vec<Message> {
        let key = self.next_key();
        self.lock().subscribers.insert(
            key,
            Subscriber { sink: Sink::InProcess(queue), filters: HashSet::new(), identity: None },
        );
        self.subscribe(key, filter, QoS::AtLeastOnce)
    }

    pub(crate) fn unsubscribe(&self, key: SubscriberKey, filter: &str) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(subscriber) = state.subscribers.get_mut(&key)
            && subscriber.filters.remove(filter)
        {
            state.subscriptions.remove(filter, key);
        }
    }

    /// Drops every subscriber (at shutdown), which closes in-process receivers.
    pub(crate) fn close_all(&self) {
        let mut state = self.lock();
        state.subscribers.clear();
        state.subscriptions = Subscriptions::default();
        state.clients.clear();
    }

    /// Delivers a message (already checked against `may_publish`) to every matching subscriber and
    /// stores or clears it as retained. Back-pressure policy:
    ///
    /// - in-process subscribers: awaits room in their bounded queue, so a slow consumer (the
    ///   store) slows the publisher (and through it the publisher's TCP socket);
    /// - network subscribers: never waited for. A message that finds the queue full is dropped
    ///   (`DroppedQueueFull`); once the queue has stayed full for `slow_subscriber_timeout`, the
    ///   subscriber is disconnected as too slow (`DroppedSlowSubscriber`).
    pub(crate) async fn route(&self, message: Message) {
        self.counters.incr(Counter::MessagesReceived);
        let targets = {
            let mut state = self.lock();
            if message.retain {
                self.store_retained(&mut state, &message);
            }
            let mut matched = Vec::new();
            state.subscriptions.collect(&message.topic, &mut matched);
            // One delivery per subscriber, at the highest QoS of its matching filters.
            matched.sort_unstable_by_key(|&(key, qos)| (key, std::cmp::Reverse(qos)));
            matched.dedup_by_key(|(key, _)| *key);
            matched
                .into_iter()
                .filter_map(|(key, qos)| state.subscribers.get(&key).map(|s| (key, s.sink.clone(), qos)))
                .collect::<Vec<_>>()
        };
        if targets.is_empty() {
            self.counters.incr(Counter::MessagesUnrouted);
            return;
        }
        let mut closed = Vec::new();
        for (key, sink, granted) in targets {
            let mut delivered = message.clone();
            delivered.retain = false;
            match self.deliver(&sink, delivered, granted, Wait::Never).await {
                Delivery::Delivered => self.counters.incr(Counter::MessagesDelivered),
                Delivery::Dropped => {}
                Delivery::Closed => closed.push(key),
            }
        }
        for key in closed {
            self.disconnect(key, None);
        }
    }

    /// Delivers one message to one subscriber under the back-pressure policy of `route`.
    pub(crate) async fn deliver(&self, sink: &Sink, message: Message, granted: QoS, wait: Wait) -> Delivery {
        match sink {
            // The application's copy abandons the message unless the application releases it
            // (see `Receipt`): one still queued when it stops is not acknowledged.
            Sink::InProcess(queue) => {
                match queue.send(Message { receipt: message.receipt.clone().guarded(), ..message }).await {
                    Ok(()) => Delivery::Delivered,
                    Err(_) => Delivery::Closed,
                }
            }
            Sink::Network { queue, kick, full_since } => {
                // A copy on its way to another client says nothing about durability: it must not
                // hold back the publisher's PUBACK (a subscriber that never acknowledges would
                // otherwise stall every publisher it listens to).
                let message = Message { receipt: super::Receipt::default(), ..message };
                let qos = message.qos.min(granted);
                let retain = message.retain;
                let outbound = Outbound { message, qos, retain };
                if qos != QoS::AtMostOnce && wait == Wait::UpToTimeout {
                    return match queue.send_timeout(outbound, self.config.slow_subscriber_timeout).await {
                        Ok(()) => {
                            *full_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
                            Delivery::Delivered
                        }
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                            self.drop_slow(kick);
                            Delivery::Dropped
                        }
                        Err(mpsc::error::SendTimeoutError::Closed(_)) => Delivery::Dropped,
                    };
                }
                let mut since = full_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match queue.try_send(outbound) {
                    Ok(()) => {
                        *since = None;
                        Delivery::Delivered
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let now = std::time::Instant::now();
                        let full_for = now.duration_since(*since.get_or_insert(now));
                        if full_for >= self.config.slow_subscriber_timeout {
                            self.drop_slow(kick);
                        } else {
                            self.counters.incr(Counter::DroppedQueueFull);
                        }
                        Delivery::Dropped
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Dropped,
                }
            }
        }
    }

    /// Drops a message for a subscriber that is too slow, and disconnects it: counted as a slow
    /// subscriber once, when it is told to go, and as a full queue after that.
    fn drop_slow(&self, kick: &watch::Sender<Option<Kick>>) {
        if kick_once(kick, Kick::SlowSubscriber) {
            self.counters.incr(Counter::DroppedSlowSubscriber);
        } else {
            self.counters.incr(Counter::DroppedQueueFull);
        }
    }

    fn store_retained(&self, state: &mut State, message: &Message) {
        let topic: &str = &message.topic;
        let old_size = state.retained.get(topic).map_or(0, retained_size);
        if message.payload.is_empty() {
            if state.retained.remove(topic).is_some() {
                state.retained_bytes -= old_size;
            }
            return;
        }
        let new_bytes = state.retained_bytes - old_size + retained_size(message);
        let room_for_topic = old_size > 0 || state.retained.len() < self.config.max_retained;
        if room_for_topic && new_bytes <= self.config.max_retained_bytes {
            // Kept without the receipt, or the publisher's PUBACK would wait until it is replaced.
            let kept = Message { receipt: super::Receipt::default(), ..message.clone() };
            state.retained.insert(topic.to_owned(), kept);
            state.retained_bytes = new_bytes;
        } else {
            self.counters.incr(Counter::DroppedRetainedFull);
        }
    }
}

/// Asks a connection to close for `why`, unless it was asked already: the first reason decides
/// (whether its will is published), and a later one does not overwrite it. Whether this asked.
pub(crate) fn kick_once(kick: &watch::Sender<Option<Kick>>, why: Kick) -> bool {
    kick.send_if_modified(|pending| {
        let first = pending.is_none();
        if first {
            *pending = Some(why);
        }
        first
    })
}

fn retained_size(message: &Message) -> usize {
    message.topic.len() + message.payload.len()
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Delivered,
    Dropped,
    /// The subscriber is gone (an in-process receiver was dropped).
    Closed,
}
