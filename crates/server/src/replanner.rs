//! Automatic repair re-planning: when a machine that has work in the active plan breaks down, a
//! repair plan (near-term work frozen, the broken machine unavailable) is computed and published,
//! so dispatch lists and the shop floor follow at once. On by default; see [`PlanningConfig`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::live::LiveEvent;
use crate::{AppState, planning};

/// Planning settings (the `[planning]` section of the config file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanningConfig {
    /// Re-plan and publish automatically when a machine with planned work breaks down.
    pub auto_replan: bool,
    /// Solver time of an automatic repair, in seconds.
    pub repair_time_limit_seconds: f64,
    /// Operations the active plan starts within this many minutes keep their place in a repair.
    pub freeze_minutes: u32,
    /// How long a broken-down machine is expected to stay down, in minutes.
    pub expected_repair_minutes: u32,
    /// Solver threads of every plan and repair; 0 picks two where the machine has two cores.
    pub solver_threads: usize,
}

impl PlanningConfig {
    /// The repair time limits accepted, in seconds; the config file is checked against them.
    pub const REPAIR_TIME_LIMITS: std::ops::RangeInclusive<f64> = 0.05..=60.0;

    /// [`PlanningConfig::solver_threads`] resolved: 0 becomes [`planning::solver_threads`], and
    /// more than [`MAX_SOLVER_THREADS`] is capped.
    pub fn threads(&self) -> usize {
        match self.solver_threads {
            0 => planning::solver_threads(),
            n => n.min(MAX_SOLVER_THREADS),
        }
    }
}

/// Most solver threads a plan may use.
pub const MAX_SOLVER_THREADS: usize = scheduler::MAX_THREADS;

impl Default for PlanningConfig {
    fn default() -> PlanningConfig {
        PlanningConfig {
            auto_replan: true,
            repair_time_limit_seconds: 2.0,
            freeze_minutes: 60,
            expected_repair_minutes: 60,
            solver_threads: 0,
        }
    }
}

/// Breakdowns arriving within this window are handled by one repair.
const DEBOUNCE: Duration = Duration::from_secs(3);

/// Runs until `stop` turns true.
pub(crate) async fn run(state: AppState, config: PlanningConfig, mut stop: watch::Receiver<bool>) {
    let mut events = state.live.subscribe();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => return,
        };
        let machine = match event {
            Ok(LiveEvent::MachineState { machine_id, state: model::MachineState::Down, .. }) => machine_id,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        tokio::time::sleep(DEBOUNCE).await;
        let (store, now, config) = (state.store.clone(), state.clock.now(), config.clone());
        let outcome = tokio::task::spawn_blocking(move || -> Result<Option<(i64, usize)>, String> {
            let Some(active) = store.active_plan().map_err(|e| e.to_string())? else { return Ok(None) };
            let affected = store.plan_operations(active.id, Some(machine)).map_err(|e| e.to_string())?;
            if affected.iter().all(|op| op.end <= now) {
                return Ok(None);
            }
            let options = planning::Options {
                repair: Some(time::Duration::minutes(i64::from(config.freeze_minutes))),
                down_for: time::Duration::minutes(i64::from(config.expected_repair_minutes)),
                threads: config.threads(),
            };
            // The config file is validated; this keeps a NaN from other callers from panicking.
            let range = PlanningConfig::REPAIR_TIME_LIMITS;
            let limit = Duration::try_from_secs_f64(
                config.repair_time_limit_seconds.clamp(*range.start(), *range.end()),
            )
            .unwrap_or(Duration::from_secs(2));
            let plan =
                planning::plan(&store, now, &active.objective, limit, &options).map_err(|e| e.to_string())?;
            let summary = store.create_plan(&plan).map_err(|e| e.to_string())?;
            store.publish_plan(summary.id, now).map_err(|e| e.to_string())?;
            Ok(Some((summary.id, affected.len())))
        })
        .await;
        match outcome {
            Ok(Ok(Some((plan, affected)))) => {
                tracing::info!(machine = %machine, plan, affected, "machine down: repaired plan published");
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::warn!(machine = %machine, %error, "automatic repair failed; the active plan stays")
            }
            Err(error) => tracing::warn!(%error, "automatic repair task failed"),
        }
        // Breakdowns reported while repairing are covered by the plan just made.
        while events.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_SOLVER_THREADS, PlanningConfig};

    #[test]
    fn solver_threads_resolve_to_a_usable_count() {
        let with = |solver_threads| PlanningConfig { solver_threads, ..PlanningConfig::default() }.threads();
        let automatic = with(0);
        assert!((1..=2).contains(&automatic), "{automatic}");
        assert_eq!(automatic, crate::planning::solver_threads());
        assert_eq!((with(1), with(3)), (1, 3));
        assert_eq!(with(10_000), MAX_SOLVER_THREADS);
    }
}
