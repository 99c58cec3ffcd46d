//! The broker's counters: one enum names them all, an array of atomics holds them, and a snapshot
//! copies them out for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every number the broker counts. `name()` gives the metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// PUBLISH packets accepted from clients, in-process publishes and wills.
    MessagesReceived,
    /// Messages handed to a subscriber's queue (one per subscriber).
    MessagesDelivered,
    /// Messages that matched no subscription.
    MessagesUnrouted,
    /// Messages (of any QoS) dropped because a network subscriber's queue was full.
    DroppedQueueFull,
    /// Network subscribers disconnected because their queue stayed full for
    /// `slow_subscriber_timeout` (one count each; the message that found it so is dropped).
    DroppedSlowSubscriber,
    /// Publishes dropped because `Hooks::may_publish` said no.
    DroppedNotPermitted,
    /// Retained messages not stored because `max_retained` or `max_retained_bytes` was reached.
    DroppedRetainedFull,
    /// TCP connections accepted.
    ConnectionsAccepted,
    /// Connections currently open (a gauge: it goes down too).
    ConnectionsOpen,
    /// Connections closed at once because `max_connections` were open.
    ConnectionsRefused,
    /// CONNECTs refused by `Hooks::authenticate` (or for a client id the broker cannot accept).
    AuthFailures,
    /// Connections closed for malformed or out-of-order packets.
    ProtocolErrors,
    /// Connections closed because nothing arrived within 1.5 × keepalive.
    KeepaliveTimeouts,
    /// Connections closed because a new one came with the same client id.
    Takeovers,
    /// Wills published.
    WillsPublished,
    /// Subscriptions refused by `Hooks::may_subscribe`.
    SubscriptionsDenied,
}

impl Counter {
    /// Every counter, in a stable order.
    pub const ALL: [Counter; 16] = [
        Counter::MessagesReceived,
        Counter::MessagesDelivered,
        Counter::MessagesUnrouted,
        Counter::DroppedQueueFull,
        Counter::DroppedSlowSubscriber,
        Counter::DroppedNotPermitted,
        Counter::DroppedRetainedFull,
        Counter::ConnectionsAccepted,
        Counter::ConnectionsOpen,
        Counter::ConnectionsRefused,
        Counter::AuthFailures,
        Counter::ProtocolErrors,
        Counter::KeepaliveTimeouts,
        Counter::Takeovers,
        Counter::WillsPublished,
        Counter::SubscriptionsDenied,
    ];

    /// The metric name, e.g. `mqtt_messages_received`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::MessagesReceived => "mqtt_messages_received",
            Counter::MessagesDelivered => "mqtt_messages_delivered",
            Counter::MessagesUnrouted => "mqtt_messages_unrouted",
            Counter::DroppedQueueFull => "mqtt_dropped_queue_full",
            Counter::DroppedSlowSubscriber => "mqtt_slow_subscribers_disconnected",
            Counter::DroppedNotPermitted => "mqtt_dropped_not_permitted",
            Counter::DroppedRetainedFull => "mqtt_dropped_retained_full",
            Counter::ConnectionsAccepted => "mqtt_connections_accepted",
            Counter::ConnectionsOpen => "mqtt_connections_open",
            Counter::ConnectionsRefused => "mqtt_connections_refused",
            Counter::AuthFailures => "mqtt_auth_failures",
            Counter::ProtocolErrors => "mqtt_protocol_errors",
            Counter::KeepaliveTimeouts => "mqtt_keepalive_timeouts",
            Counter::Takeovers => "mqtt_takeovers",
            Counter::WillsPublished => "mqtt_wills_published",
            Counter::SubscriptionsDenied => "mqtt_subscriptions_denied",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A copy of every counter at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    values: [u64; Counter::ALL.len()],
}

impl CounterSnapshot {
    /// The value of one counter.
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter.index()]
    }

    /// Every counter with its value, in `Counter::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&counter| (counter, self.get(counter)))
    }
}

/// The live counters shared by the broker's tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    values: [AtomicU64; Counter::ALL.len()],
}

impl Counters {
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.values[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }

    pub(crate) fn decr(&self, counter: Counter) {
        self.values[counter.index()].fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot { values: std::array::from_fn(|idx| self.values[idx].load(Ordering::Relaxed)) }
    }
}
