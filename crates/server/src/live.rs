//! The live stream: what changes on the shop floor, fanned out to every `GET /api/v1/stream`
//! client as server-sent events. A slow client misses events (and is told how many) rather than
//! slowing anyone else down: the fan-out is a bounded broadcast channel.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use model::alarm::Alarm;
use model::{MachineId, MachineState};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::Reader;

/// How many events a slow client may fall behind before it misses some.
pub(crate) const LIVE_CAPACITY: usize = 4096;

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
        let _ = self.live.send(event);
    }
}

/// `GET /api/v1/stream`: server-sent events until the client leaves or the server stops.
/// How often an open stream checks that its token still works: one revoked or expired, or whose
/// user was deleted or lost the right to read, ends the stream within this time.
pub(crate) const RECHECK_EVERY: Duration =
    if cfg!(test) { Duration::from_millis(200) } else { Duration::from_secs(10) };

/// What the stream carries from one event to the next.
struct Listening {
    receiver: tokio::sync::broadcast::Receiver<LiveEvent>,
    stop: tokio::sync::watch::Receiver<bool>,
    recheck: tokio::time::Interval,
    state: AppState,
    principal: crate::auth::Principal,
}

pub(crate) async fn stream(
    State(state): State<AppState>,
    Reader(principal): Reader,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let listening = Listening {
        receiver: state.live.subscribe(),
        stop: state.stopping.clone(),
        recheck,
        state,
        principal,
    };
    let events = futures_util::stream::unfold(listening, |mut listening| async move {
        loop {
            if *listening.stop.borrow() {
                return None;
            }
            let event = tokio::select! {
                received = listening.receiver.recv() => match received {
                    Ok(event) => Event::default()
                        .event(event.name())
                        .json_data(&event)
                        .unwrap_or_else(|_| Event::default().event("error")),
                    Err(RecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
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
