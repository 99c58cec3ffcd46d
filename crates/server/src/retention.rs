//! Retention: every ten minutes, raw readings older than `raw_days`, roll-ups older than
//! `rollup_days` and plans (but the active one) computed more than `plan_days` ago are deleted, a
//! bounded slice at a time so ingest never waits long for the writer. Disks stay bounded: raw data
//! for a month, minute roll-ups for two years and plans for three months by default (automatic
//! repairs make a plan, with its problem, several times a day).

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
        let now_ms = model::oee::unix_ms(state.clock.now());
        let raw_before = now_ms - i64::from(config.raw_days) * 86_400_000;
        let rollups_before = now_ms - i64::from(config.rollup_days) * 86_400_000;
        let mut removed = 0;
        loop {
            let store = state.store.clone();
            match tokio::task::spawn_blocking(move || store.prune(raw_before, rollups_before, SLICE)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => removed += n,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "retention could not prune");
                    break;
                }
                Err(_) => break,
            }
            if *stop.borrow() {
                return;
            }
            // Leave the writer to ingest between slices.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if removed > 0 {
            tracing::info!(rows = removed, "retention pruned old telemetry");
        }
        let plans_before = state.clock.now() - time::Duration::days(i64::from(config.plan_days.max(1)));
        let mut plans = 0;
        loop {
            let store = state.store.clone();
            match tokio::task::spawn_blocking(move || store.prune_plans(plans_before, PLAN_SLICE)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => plans += n,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "retention could not prune plans");
                    break;
                }
                Err(_) => break,
            }
            if *stop.borrow() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if plans > 0 {
            tracing::info!(plans, "retention pruned old plans");
        }
    }
}
