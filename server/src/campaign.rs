//! Phased rollouts. The decisions are pure functions ([`phase_of`], [`decide`], [`progress`]);
//! [`step`] applies them through the store's conditional updates, so any number of server
//! processes may call it at once and each phase starts exactly once.

use serde::Serialize;

use crate::store::{
    ActionStatus, Campaign, CampaignDevice, CampaignState, NewCampaign, Store, StoreResult,
};

/// Checks phases: cumulative percentages, strictly increasing, 1..=100, the last 100.
pub fn validate_phases(phases: &[u32]) -> Result<(), String> {
    if phases.is_empty() {
        return Err(
            "phases must not be empty; give cumulative percentages such as [10, 50, 100]".into(),
        );
    }
    if phases.windows(2).any(|w| w[0] >= w[1]) || phases[0] == 0 {
        return Err(format!(
            "phases {phases:?} must be strictly increasing cumulative percentages above 0"
        ));
    }
    if phases.last() != Some(&100) {
        return Err(format!("the last phase must be 100 (got {phases:?})"));
    }
    Ok(())
}

/// Which phase the device at `index` (0-based) of `n` falls in: phase p covers the first
/// ceil(phases[p]% of n) devices.
pub fn phase_of(index: usize, n: usize, phases: &[u32]) -> usize {
    phases
        .iter()
        .position(|&pct| index < (n * pct as usize).div_ceil(100))
        .unwrap_or(phases.len().saturating_sub(1))
}

/// Per-phase counts shown by the API and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseProgress {
    pub phase: usize,
    /// Cumulative percentage this phase reaches.
    pub percent: u32,
    pub devices: u64,
    /// No action yet, or not yet fetched by the device.
    pub pending: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub canceled: u64,
}

impl PhaseProgress {
    fn done(&self) -> bool {
        self.pending + self.running == 0
    }
}

pub fn progress(c: &Campaign, devices: &[CampaignDevice]) -> Vec<PhaseProgress> {
    let mut out: Vec<PhaseProgress> = c
        .phases
        .iter()
        .enumerate()
        .map(|(phase, &percent)| PhaseProgress {
            phase,
            percent,
            ..Default::default()
        })
        .collect();
    for d in devices {
        let Some(p) = out.get_mut(d.phase as usize) else {
            continue;
        };
        p.devices += 1;
        match d.action_status {
            None if c.state == CampaignState::Canceled => p.canceled += 1,
            None | Some(ActionStatus::Scheduled) => p.pending += 1,
            Some(ActionStatus::Running | ActionStatus::Canceling) => p.running += 1,
            Some(ActionStatus::Succeeded) => p.succeeded += 1,
            Some(ActionStatus::Failed) => p.failed += 1,
            Some(ActionStatus::Canceled) => p.canceled += 1,
        }
    }
    out
}

/// What a running campaign does next, given its current phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Wait,
    NextPhase,
    Pause(String),
    Finish,
}

/// `success_threshold`: percent of the phase's devices that must succeed before the next phase
/// starts. `error_threshold`: percent of them failed above which the campaign pauses (failures
/// the operator accepted by resuming do not count again).
pub fn decide(
    p: &PhaseProgress,
    success_threshold: i64,
    error_threshold: i64,
    accepted_failures: i64,
    is_last: bool,
) -> Decision {
    let total = p.devices as i64;
    if total == 0 {
        return if is_last {
            Decision::Finish
        } else {
            Decision::NextPhase
        };
    }
    let new_failures = p.failed as i64 - accepted_failures;
    if new_failures > 0 && new_failures * 100 > error_threshold * total {
        return Decision::Pause(format!(
            "{} of {total} devices failed in phase {}, above the error threshold of {error_threshold}%",
            p.failed,
            p.phase + 1
        ));
    }
    if p.succeeded as i64 * 100 >= success_threshold * total {
        return match (is_last, p.done()) {
            (false, _) => Decision::NextPhase,
            (true, true) => Decision::Finish,
            (true, false) => Decision::Wait,
        };
    }
    if p.done() {
        return Decision::Pause(format!(
            "phase {} finished with {} of {total} devices succeeded, below the success threshold of {success_threshold}%",
            p.phase + 1,
            p.succeeded
        ));
    }
    Decision::Wait
}

/// Minutes after midnight UTC of `now_ms`.
fn minute_of_day(now_ms: i64) -> i64 {
    (now_ms / 60_000).rem_euclid(24 * 60)
}

/// Whether `now_ms` is inside the daily window starting `start` minutes after midnight UTC,
/// `duration` minutes long (it may wrap past midnight).
pub fn in_window(now_ms: i64, start: i64, duration: i64) -> bool {
    if duration >= 24 * 60 {
        return true;
    }
    let since_start = (minute_of_day(now_ms) - start).rem_euclid(24 * 60);
    since_start < duration
}

/// Snapshots `members` (sorted by controller id) into phases and creates the running campaign
/// with its first phase's actions.
pub async fn create(
    store: &Store,
    new: &NewCampaign,
    mut members: Vec<String>,
    now: i64,
) -> StoreResult<i64> {
    members.sort();
    members.dedup();
    let n = members.len();
    let snapshot: Vec<(String, i64)> = members
        .into_iter()
        .enumerate()
        .map(|(i, d)| (d, phase_of(i, n, &new.phases) as i64))
        .collect();
    let id = store.insert_campaign(new, &snapshot, now).await?;
    step(store, id, now).await?;
    Ok(id)
}

/// Hands out the current phase's actions and moves the campaign on while its decision says so.
pub async fn step(store: &Store, id: i64, now: i64) -> StoreResult<()> {
    // Bounded: each round either stops or starts the next phase.
    for _ in 0..=100 {
        let Some(c) = store.campaign(id).await? else {
            return Ok(());
        };
        if c.state != CampaignState::Running {
            return Ok(());
        }
        store.assign_actions(&c, c.current_phase, now).await?;
        let devices = store.campaign_devices(id).await?;
        let phases = progress(&c, &devices);
        let current = c.current_phase as usize;
        let Some(p) = phases.get(current) else {
            return Ok(());
        };
        let is_last = current + 1 == phases.len();
        match decide(
            p,
            c.success_threshold,
            c.error_threshold,
            c.accepted_failures,
            is_last,
        ) {
            Decision::Wait => return Ok(()),
            Decision::NextPhase => {
                if !store
                    .advance_phase(id, c.current_phase, c.current_phase + 1, now)
                    .await?
                {
                    return Ok(());
                }
                tracing::info!(campaign = id, phase = current + 2, "phase started");
            }
            Decision::Pause(reason) => {
                tracing::warn!(campaign = id, "pausing: {reason}");
                let (running, paused) = (CampaignState::Running, CampaignState::Paused);
                store
                    .set_campaign_state(
                        id,
                        running,
                        paused,
                        Some(&reason),
                        c.accepted_failures,
                        now,
                    )
                    .await?;
                return Ok(());
            }
            Decision::Finish => {
                let (running, finished) = (CampaignState::Running, CampaignState::Finished);
                store
                    .set_campaign_state(id, running, finished, None, c.accepted_failures, now)
                    .await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Outcome of a pause/resume/cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Done,
    /// The campaign is not in a state that allows it.
    NotAllowed(CampaignState),
}

pub async fn pause(store: &Store, c: &Campaign, now: i64) -> StoreResult<Transition> {
    let ok = store
        .set_campaign_state(
            c.id,
            CampaignState::Running,
            CampaignState::Paused,
            Some("paused by the operator"),
            c.accepted_failures,
            now,
        )
        .await?;
    Ok(if ok {
        Transition::Done
    } else {
        Transition::NotAllowed(c.state)
    })
}

/// Resumes a paused campaign. If its current phase is over, the operator accepted its failures
/// and the next phase starts; otherwise the failures so far no longer count against it.
pub async fn resume(store: &Store, c: &Campaign, now: i64) -> StoreResult<Transition> {
    let devices = store.campaign_devices(c.id).await?;
    let phases = progress(c, &devices);
    let current = c.current_phase as usize;
    let p = phases.get(current).cloned().unwrap_or_default();
    let ok = store
        .set_campaign_state(
            c.id,
            CampaignState::Paused,
            CampaignState::Running,
            None,
            p.failed as i64,
            now,
        )
        .await?;
    if !ok {
        return Ok(Transition::NotAllowed(c.state));
    }
    if p.done() {
        if current + 1 >= phases.len() {
            let (running, finished) = (CampaignState::Running, CampaignState::Finished);
            store
                .set_campaign_state(c.id, running, finished, None, p.failed as i64, now)
                .await?;
        } else {
            store
                .advance_phase(c.id, c.current_phase, c.current_phase + 1, now)
                .await?;
        }
    }
    step(store, c.id, now).await?;
    Ok(Transition::Done)
}

pub async fn cancel(store: &Store, c: &Campaign, now: i64) -> StoreResult<Transition> {
    Ok(if store.cancel_campaign(c.id, now).await? {
        Transition::Done
    } else {
        Transition::NotAllowed(c.state)
    })
}

/// Moves every running campaign on; the server runs this periodically so that devices that
/// were busy get their action and several processes converge.
pub async fn step_all(store: &Store, now: i64) -> StoreResult<()> {
    for c in store.running_campaigns().await? {
        step(store, c.id, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(
        devices: u64,
        pending: u64,
        running: u64,
        succeeded: u64,
        failed: u64,
    ) -> PhaseProgress {
        PhaseProgress {
            phase: 0,
            percent: 10,
            devices,
            pending,
            running,
            succeeded,
            failed,
            canceled: 0,
        }
    }

    #[test]
    fn phases_split_the_snapshot_cumulatively() {
        let phases = [10, 50, 100];
        let of: Vec<usize> = (0..10).map(|i| phase_of(i, 10, &phases)).collect();
        assert_eq!(of, [0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
        // Rounding up: 10% of 3 devices is one device.
        let of: Vec<usize> = (0..3).map(|i| phase_of(i, 3, &phases)).collect();
        assert_eq!(of, [0, 1, 2]);
        assert_eq!(phase_of(0, 1, &phases), 0);
    }

    #[test]
    fn phase_lists_are_checked() {
        assert!(validate_phases(&[10, 50, 100]).is_ok());
        assert!(validate_phases(&[100]).is_ok());
        for bad in [
            &[][..],
            &[50, 50, 100],
            &[10, 50],
            &[0, 100],
            &[60, 40, 100],
        ] {
            assert!(validate_phases(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn success_threshold_starts_the_next_phase() {
        assert_eq!(
            decide(&counts(10, 0, 2, 8, 0), 80, 0, 0, false),
            Decision::NextPhase
        );
        assert_eq!(
            decide(&counts(10, 0, 3, 7, 0), 80, 0, 0, false),
            Decision::Wait
        );
        // Last phase: finished only when nothing is left open.
        assert_eq!(
            decide(&counts(10, 0, 2, 8, 0), 80, 0, 0, true),
            Decision::Wait
        );
        assert_eq!(
            decide(&counts(10, 0, 0, 10, 0), 100, 0, 0, true),
            Decision::Finish
        );
        assert_eq!(
            decide(&counts(0, 0, 0, 0, 0), 100, 0, 0, false),
            Decision::NextPhase
        );
    }

    #[test]
    fn error_threshold_pauses() {
        // Default error threshold 0: any failure pauses.
        assert!(matches!(
            decide(&counts(10, 0, 9, 0, 1), 100, 0, 0, false),
            Decision::Pause(_)
        ));
        // 20% allowed: 2 of 10 is not above it, 3 is.
        assert_eq!(
            decide(&counts(10, 0, 8, 0, 2), 100, 20, 0, false),
            Decision::Wait
        );
        assert!(matches!(
            decide(&counts(10, 0, 7, 0, 3), 100, 20, 0, false),
            Decision::Pause(_)
        ));
        // Failures accepted by a resume do not pause again; a new one does.
        assert_eq!(
            decide(&counts(10, 0, 9, 0, 1), 100, 0, 1, false),
            Decision::Wait
        );
        assert!(matches!(
            decide(&counts(10, 0, 8, 0, 2), 100, 0, 1, false),
            Decision::Pause(_)
        ));
        // A phase over below the success threshold pauses for the operator.
        assert!(matches!(
            decide(&counts(10, 0, 0, 9, 1), 100, 0, 1, false),
            Decision::Pause(_)
        ));
    }

    #[test]
    fn maintenance_window_wraps_midnight() {
        let at = |h: i64, m: i64| (h * 60 + m) * 60_000 + 86_400_000 * 3;
        assert!(in_window(at(2, 30), 120, 60));
        assert!(!in_window(at(3, 0), 120, 60));
        assert!(in_window(at(0, 30), 23 * 60, 120));
        assert!(!in_window(at(1, 0), 23 * 60, 120));
    }
}
