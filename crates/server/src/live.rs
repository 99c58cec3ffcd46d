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
pub(crate) async fn stream(
    State(state): State<AppState>,
    _: Reader,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.live.subscribe();
    let stop = state.stopping.clone();
    let events = futures_util::stream::unfold((receiver, stop), |(mut receiver, mut stop)| async move {
        if *stop.borrow() {
            return None;
        }
        let event = tokio::select! {
            received = receiver.recv() => match received {
                Ok(event) => Event::default()
                    .event(event.name())
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().event("error")),
                Err(RecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
                Err(RecvError::Closed) => return None,
            },
            _ = stop.changed() => return None,
        };
        Some((Ok(event), (receiver, stop)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
