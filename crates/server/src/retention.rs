//! Retention: every ten minutes, raw readings older than `raw_days`, minute roll-ups older than
//! `rollup_days` and hour roll-ups older than `hourly_rollup_days` (all counted back from the
//! newest reading when that is earlier than now), plans (but the active one) computed more than
//! `plan_days` ago and browser sessions expired more than `session_days` ago are deleted, a
//! bounded slice at a time so ingest never waits long for the writer. Disks and lists stay
//! bounded: raw data for a month, minute roll-ups for three months, hour roll-ups for ten years,
//! plans for three months and ended sessions for a month by default (automatic repairs make a
//! plan, with its problem, several times a day; every sign-in makes a session).

use std::time::Duration;

use tokio::sync::watch;

use crate::{AppState, RetentionConfig};

/// How often retention runs.
const EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per transaction.
const SLICE: u32 = 20_000;
/// Plans deleted per transaction (each with its few hundred to few thousand operations).
const PLAN_SLICE: u32 = 20;

/// Runs until `stop` turns true.
pub(crate) async fn run(state: AppState, config: RetentionConfig, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        // Counted back from the newest reading when that is earlier than now: a clock set weeks
        // ahead (a dead RTC battery, a wrong manual setting) must not delete the factory's data.
        let now_ms = model::oee::unix_ms(state.clock.now());
        let store = state.store.clone();
        let newest = tokio::task::spawn_blocking(move || store.newest_reading_ms()).await;
        let Ok(Ok(newest)) = newest else { continue };
        let basis = counted_from(newest, now_ms);
        let days_back = |days: u32| basis - i64::from(days) * 86_400_000;
        let before = store::PruneBefore {
            raw_ms: days_back(config.raw_days),
            minutes_ms: days_back(config.rollup_days),
            hours_ms: days_back(config.hourly_rollup_days),
        };
        let telemetry = in_slices(&state, &stop, "telemetry", move |store| store.prune(before, SLICE));
        let Some(rows) = telemetry.await else { return };
        if rows > 0 {
            tracing::info!(rows, "retention pruned old telemetry");
        }
        let plans_before = state.clock.now() - time::Duration::days(i64::from(config.plan_days.max(1)));
        let Some(plans) =
            in_slices(&state, &stop, "plans", move |store| store.prune_plans(plans_before, PLAN_SLICE)).await
        else {
            return;
        };
        if plans > 0 {
            tracing::info!(plans, "retention pruned old plans");
        }
        let sessions_before = state.wall_clock.now() - time::Duration::days(i64::from(config.session_days));
        let prune_sessions = move |store: &store::Store| store.prune_sessions(sessions_before, SLICE);
        let Some(sessions) = in_slices(&state, &stop, "sessions", prune_sessions).await else { return };
        if sessions > 0 {
            tracing::info!(sessions, "retention deleted ended browser sessions");
        }
    }
}

/// The time retention counts telemetry ages back from: now, or the newest reading when earlier.
fn counted_from(newest_reading_ms: Option<i64>, now_ms: i64) -> i64 {
    newest_reading_ms.map_or(now_ms, |newest| newest.min(now_ms))
}

/// Calls `prune` (which deletes one slice and says how many rows went) until it deletes nothing
/// or fails, pausing between slices so ingest gets the writer; returns how many went, or `None`
/// when the server began to stop.
pub(crate) async fn in_slices(
    state: &AppState,
    stop: &watch::Receiver<bool>,
    what: &'static str,
    prune: impl Fn(&store::Store) -> store::Result<usize> + Clone + Send + 'static,
) -> Option<usize> {
    let mut removed = 0;
    loop {
        let (store, prune) = (state.store.clone(), prune.clone());
        match tokio::task::spawn_blocking(move || prune(&store)).await {
            Ok(Ok(0)) | Err(_) => return Some(removed),
            Ok(Ok(n)) => removed += n,
            Ok(Err(error)) => {
                tracing::warn!(%error, what, "retention could not prune");
                return Some(removed);
            }
        }
        if *stop.borrow() {
            return None;
        }
        // Leave the writer to ingest between slices.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn telemetry_ages_count_from_the_newest_reading_when_the_clock_ran_ahead() {
        let day = 86_400_000;
        // The clock jumped 40 days ahead of the last reading: ages count from the reading.
        assert_eq!(super::counted_from(Some(100 * day), 140 * day), 100 * day);
        // Readings are current (or stamped ahead by a device): ages count from now.
        assert_eq!(super::counted_from(Some(140 * day), 140 * day), 140 * day);
        assert_eq!(super::counted_from(Some(141 * day), 140 * day), 140 * day);
        assert_eq!(super::counted_from(None, 140 * day), 140 * day);
    }
}
