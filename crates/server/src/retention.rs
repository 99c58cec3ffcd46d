//! Retention: every ten minutes, raw readings older than `raw_days`, minute roll-ups older than
//! `rollup_days`, hour roll-ups older than `hourly_rollup_days` and plans (but the active one)
//! computed more than `plan_days` ago (all counted back from a basis: now, or the newest reading
//! when that is earlier, but never further on from the last basis than twice the time that really
//! passed since, see [`basis`]) and browser sessions expired more than `session_days` ago (counted
//! back from the wall clock the same way, since the start) are deleted, a
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
    // Time that really passed, on the clock's scale (the demo's runs faster), since the last basis
    // was kept: none at a start, as the time the platform was down is not known.
    let speed = state.own_clock_speed().unwrap_or(1.0);
    let mut last_kept: Option<std::time::Instant> = None;
    // Sessions expire by the wall clock: their ages count back from a basis of their own, kept
    // the same way (in memory: at a start it is the wall clock), so a clock stepped ahead does not
    // delete sign-ins that are still good once it is set right.
    let mut session_basis: Option<i64> = None;
    // Said once for each time the basis falls a day or more behind what the clock says.
    let mut warned = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        // Counted back from the newest reading when that is earlier than now: a clock set weeks
        // ahead (a dead RTC battery, a wrong manual setting) must not delete the factory's data,
        // nor may the readings it stamped while it was wrong.
        let now_ms = model::oee::unix_ms(state.clock.now());
        let passed_ms = last_kept.map_or(0, |at| (at.elapsed().as_secs_f64() * speed * 1000.0) as i64);
        let wall_passed_ms =
            last_kept.map_or(0, |at| at.elapsed().as_millis().try_into().unwrap_or(i64::MAX));
        let wall_basis = basis(session_basis, wall_passed_ms, model::oee::unix_ms(state.wall_clock.now()));
        session_basis = Some(wall_basis);
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || -> store::Result<_> {
            let wanted = counted_from(store.newest_reading_ms()?, now_ms);
            let basis = basis(store.retention_basis()?, passed_ms, wanted);
            store.set_retention_basis(basis)?;
            Ok((basis, wanted))
        })
        .await;
        let Ok(Ok((basis, wanted))) = found else { continue };
        last_kept = Some(std::time::Instant::now());
        let behind_hours = (wanted - basis) / 3_600_000;
        if behind_hours >= 24 && !warned {
            tracing::warn!(
                behind_hours,
                "retention counts ages back from earlier than the clock says: the clock was stepped ahead, or the platform was stopped a while; it follows at twice the speed of time"
            );
        }
        warned = behind_hours >= 24;
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
        let plans_before = model::oee::from_unix_ms(days_back(config.plan_days.max(1)))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let Some(plans) =
            in_slices(&state, &stop, "plans", move |store| store.prune_plans(plans_before, PLAN_SLICE)).await
        else {
            return;
        };
        if plans > 0 {
            tracing::info!(plans, "retention pruned old plans");
        }
        let sessions_before =
            model::oee::from_unix_ms(wall_basis - i64::from(config.session_days) * 86_400_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let prune_sessions = move |store: &store::Store| store.prune_sessions(sessions_before, SLICE);
        let Some(sessions) = in_slices(&state, &stop, "sessions", prune_sessions).await else { return };
        if sessions > 0 {
            tracing::info!(sessions, "retention deleted ended browser sessions");
        }
    }
}

/// The time retention would count telemetry ages back from: now, or the newest reading when
/// earlier.
fn counted_from(newest_reading_ms: Option<i64>, now_ms: i64) -> i64 {
    newest_reading_ms.map_or(now_ms, |newest| newest.min(now_ms))
}

/// How much faster than time the basis may move on, so it catches up after the platform was
/// stopped (the time it was down is not known, so it counts as none).
const CATCH_UP: i64 = 2;

/// The basis retention counts back from: `wanted` ([`counted_from`]), but no further on from the
/// `kept` basis of the last pass than twice the `passed_ms` that really passed since. A clock
/// stepped ahead (and readings stamped by it) moves `wanted` on at once; the basis follows only
/// as time passes, and goes back with the clock when it is set right.
fn basis(kept: Option<i64>, passed_ms: i64, wanted: i64) -> i64 {
    match kept {
        Some(kept) => wanted.min(kept.saturating_add(passed_ms.max(0).saturating_mul(CATCH_UP))),
        None => wanted,
    }
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

    #[test]
    fn the_basis_follows_a_clock_stepped_ahead_only_as_time_passes() {
        let (day, minutes) = (86_400_000, 60_000);
        // The first pass of a store takes what the clock and readings say.
        assert_eq!(super::basis(None, 0, 100 * day), 100 * day);
        // Ten minutes later, as expected.
        assert_eq!(
            super::basis(Some(100 * day), 10 * minutes, 100 * day + 10 * minutes),
            100 * day + 10 * minutes
        );
        // The clock (and the readings it stamped) 40 days ahead: the basis moves 20 minutes.
        assert_eq!(super::basis(Some(100 * day), 10 * minutes, 140 * day), 100 * day + 20 * minutes);
        // Started again under a clock years ahead: nothing has passed yet.
        assert_eq!(super::basis(Some(100 * day), 0, 5000 * day), 100 * day);
        // The clock set right again: back with it.
        assert_eq!(
            super::basis(Some(100 * day + 20 * minutes), 10 * minutes, 100 * day + 5 * minutes),
            100 * day + 5 * minutes
        );
    }
}
