//! The live stream: what changes on the shop floor, fanned out to every `GET /api/v1/stream`
//! client as server-sent events. A slow client misses events (and is told how many) rather than
//! slowing anyone else down: the fan-out is a bounded broadcast channel.
//!
//! Every event has an id, `{run}-{seq}`: `run` names this run of the server (its start time), and
//! `seq` counts from 1. The last [`LIVE_CAPACITY`] events are kept, so a client that comes back
//! with `Last-Event-ID` (as a browser's `EventSource` does by itself after a dropped connection)
//! gets what it missed first; one that missed more, or whose id is of an earlier run, is told
//! with a `lagged` event instead.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use model::alarm::Alarm;
use model::{MachineId, MachineState, OperationId, OrderId};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::Reader;

/// How many events a slow client may fall behind before it misses some, and how many a client
/// that reconnects may have missed and still get.
pub(crate) const LIVE_CAPACITY: usize = 4096;

/// An event and its place in this run's sequence.
#[derive(Clone, Debug)]
pub struct Stamped {
    /// From 1, one more for each event.
    pub seq: u64,
    /// What happened.
    pub event: LiveEvent,
}

impl Stamped {
    /// The event without its number.
    pub fn into_event(self) -> LiveEvent {
        self.event
    }
}

/// The fan-out and the last [`LIVE_CAPACITY`] events.
pub(crate) struct Live {
    sender: broadcast::Sender<Stamped>,
    /// This run's name in event ids.
    run: String,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    last_seq: u64,
    events: VecDeque<Stamped>,
}

impl Live {
    /// A fan-out whose event ids name the run by `started` (Unix milliseconds).
    pub(crate) fn new(started: i64) -> Arc<Live> {
        let (sender, _) = broadcast::channel(LIVE_CAPACITY);
        Arc::new(Live { sender, run: format!("{started:x}"), recent: Mutex::default() })
    }

    /// Numbers `event` and sends it to every listener (none listening is fine).
    fn send(&self, event: LiveEvent) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.last_seq += 1;
        let stamped = Stamped { seq: recent.last_seq, event };
        if recent.events.len() == LIVE_CAPACITY {
            recent.events.pop_front();
        }
        recent.events.push_back(stamped.clone());
        // Sent while the lock is held, so a subscriber taking its replay under the same lock
        // neither misses an event nor gets one twice.
        let _ = self.sender.send(stamped);
    }

    /// A receiver of the events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Stamped> {
        self.sender.subscribe()
    }

    /// A receiver of the events from now on, with what came after the event `last_id` (a
    /// `Last-Event-ID`) that is still kept, or how many of them are lost (`None`: an unknown
    /// number, the id being of another run or not an id at all).
    fn resume(
        &self,
        last_id: Option<&str>,
    ) -> (broadcast::Receiver<Stamped>, Vec<Stamped>, Option<Option<u64>>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = self.sender.subscribe();
        let Some(last_id) = last_id else { return (receiver, Vec::new(), None) };
        let seen = last_id
            .split_once('-')
            .filter(|(run, _)| *run == self.run)
            .and_then(|(_, seq)| seq.parse::<u64>().ok());
        let Some(seen) = seen.filter(|seen| *seen <= recent.last_seq) else {
            return (receiver, Vec::new(), Some(None));
        };
        let oldest = recent.events.front().map_or(recent.last_seq + 1, |event| event.seq);
        let replay = recent.events.iter().filter(|event| event.seq > seen).cloned().collect();
        let lost = oldest.saturating_sub(seen + 1);
        (receiver, replay, (lost > 0).then_some(Some(lost)))
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.run)
    }
}

/// One thing that changed.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A machine entered a state.
    MachineState {
        /// Which machine.
        machine_id: MachineId,
        /// The new state.
        state: MachineState,
        /// Since when, RFC 3339.
        since: String,
        /// Why, when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Units were reported finished.
    Production {
        /// Which machine.
        machine_id: MachineId,
        /// The operation they count toward, when they count toward one.
        #[serde(skip_serializing_if = "Option::is_none")]
        operation_id: Option<OperationId>,
        /// That operation's order.
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<OrderId>,
        /// Good units.
        good: u32,
        /// Scrapped units.
        scrap: u32,
        /// When, RFC 3339.
        at: String,
    },
    /// An alarm was raised, acknowledged or cleared.
    Alarm {
        /// The alarm as it now stands.
        alarm: Alarm,
    },
    /// A plan became the active plan: dispatch lists changed.
    Plan {
        /// Which plan.
        plan_id: i64,
        /// Why the platform made it by itself, for automatic repairs.
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger: Option<model::PlanTrigger>,
    },
}

impl LiveEvent {
    fn name(&self) -> &'static str {
        match self {
            LiveEvent::MachineState { .. } => "machine_state",
            LiveEvent::Production { .. } => "production",
            LiveEvent::Alarm { .. } => "alarm",
            LiveEvent::Plan { .. } => "plan",
        }
    }
}

impl AppState {
    /// Sends `event` to every live client (none listening is fine).
    pub fn publish(&self, event: LiveEvent) {
        self.live.send(event);
    }
}

/// `GET /api/v1/stream`: server-sent events until the client leaves or the server stops.
/// How often an open stream checks that its token still works: one revoked or expired, or whose
/// user was deleted or lost the right to read, ends the stream within this time.
pub(crate) const RECHECK_EVERY: Duration =
    if cfg!(test) { Duration::from_millis(200) } else { Duration::from_secs(10) };

/// What the stream carries from one event to the next.
struct Listening {
    receiver: broadcast::Receiver<Stamped>,
    /// What is sent before the receiver's events: what the client missed while away.
    first: std::vec::IntoIter<Event>,
    live: Arc<Live>,
    stop: tokio::sync::watch::Receiver<bool>,
    recheck: tokio::time::Interval,
    state: AppState,
    principal: crate::auth::Principal,
}

/// The `lagged` event: `missed` events are lost, or an unknown number when `None`.
fn lagged(missed: Option<u64>) -> Event {
    Event::default().event("lagged").data(missed.map_or_else(|| "unknown".to_owned(), |n| n.to_string()))
}

fn to_sse(live: &Live, stamped: &Stamped) -> Event {
    Event::default()
        .id(live.id(stamped.seq))
        .event(stamped.event.name())
        .json_data(&stamped.event)
        .unwrap_or_else(|_| Event::default().event("error"))
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    Reader(principal): Reader,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    // An empty one is none (a browser sends none before its first event).
    let last_id = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or_default())
        .filter(|id| !id.is_empty());
    let live = state.live.clone();
    let (receiver, replay, lost) = live.resume(last_id);
    let first: Vec<Event> =
        lost.map(lagged).into_iter().chain(replay.iter().map(|stamped| to_sse(&live, stamped))).collect();
    let listening = Listening {
        receiver,
        first: first.into_iter(),
        live,
        stop: state.stopping.clone(),
        recheck,
        state,
        principal,
    };
    let events = futures_util::stream::unfold(listening, |mut listening| async move {
        if let Some(event) = listening.first.next() {
            return Some((Ok(event), listening));
        }
        loop {
            if *listening.stop.borrow() {
                return None;
            }
            let event = tokio::select! {
                received = listening.receiver.recv() => match received {
                    Ok(stamped) => to_sse(&listening.live, &stamped),
                    Err(RecvError::Lagged(missed)) => lagged(Some(missed)),
                    Err(RecvError::Closed) => return None,
                },
                _ = listening.stop.changed() => return None,
                _ = listening.recheck.tick() => {
                    if still_allowed(&listening.state, &listening.principal).await {
                        continue;
                    }
                    return None;
                }
            };
            return Some((Ok(event), listening));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Whether the token a stream was opened with still lets its user read.
async fn still_allowed(state: &AppState, principal: &crate::auth::Principal) -> bool {
    let (store, token, now) = (state.store.clone(), principal.token_id, state.wall_clock.now());
    match tokio::task::spawn_blocking(move || store.live_token(token, now)).await {
        Ok(Ok(Some(owner))) => owner.user.id == principal.user.id && owner.user.role.may_read(),
        Ok(Ok(None)) => false,
        // The store did not answer: keep streaming rather than drop every client at a hiccup.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(plan_id: i64) -> LiveEvent {
        LiveEvent::Plan { plan_id, trigger: None }
    }

    #[test]
    fn a_client_back_gets_what_is_kept_and_hears_how_much_is_not() {
        let live = Live::new(0xabc);
        let seqs = |replay: &[Stamped]| replay.iter().map(|event| event.seq).collect::<Vec<_>>();
        let (_, replay, lost) = live.resume(None);
        assert!(replay.is_empty() && lost.is_none());
        for id in 1..=5 {
            live.send(plan(id));
        }
        let (_, replay, lost) = live.resume(Some("abc-3"));
        assert_eq!((seqs(&replay), lost), (vec![4, 5], None));
        let (_, replay, lost) = live.resume(Some("abc-5"));
        assert_eq!((seqs(&replay), lost), (vec![], None));
        for (id, outcome) in
            [("abc-6", Some(None)), ("abd-3", Some(None)), ("abc-x", Some(None)), ("-", Some(None))]
        {
            let (_, replay, lost) = live.resume(Some(id));
            assert_eq!((replay.len(), lost), (0, outcome), "{id}");
        }
        // Once more happened than is kept, the oldest are gone, and counted.
        let total = LIVE_CAPACITY as i64 + 10;
        for id in 6..=total {
            live.send(plan(id));
        }
        let (_, replay, lost) = live.resume(Some("abc-3"));
        assert_eq!(replay.len(), LIVE_CAPACITY);
        assert_eq!(replay[0].seq, 11);
        assert_eq!(lost, Some(Some(7)), "4 to 10");
        // What comes after the resume arrives through the receiver, once.
        let (mut receiver, replay, _) = live.resume(Some(&format!("abc-{total}")));
        assert!(replay.is_empty());
        live.send(plan(0));
        assert_eq!(receiver.try_recv().unwrap().seq, total as u64 + 1);
        assert!(receiver.try_recv().is_err());
    }
}
