//! After a reboot (or a restart): what became of the installed action, read from the device's
//! state journal, the booted slot and the bootloader's pending trial. Pure, so that each outcome
//! and the feedback it gives are tested without a device.

use airlock_ddi::{ActionFeedback, Execution, Finished};

use super::action::{Action, Stage};
use super::attributes::{health_of, last_result};
use crate::boot::Side;
use crate::install::describe;
use crate::install::record::{DeviceState, Ending, Phase};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Nothing to settle here (no installed action, or one the deployment flow carries on).
    Nothing,
    /// Installed and armed: the device should reboot to try it.
    AwaitReboot,
    /// Booted for the trial, or the trial was consumed, but `airlock boot` has not decided
    /// yet: wait for it (airlock-boot.service).
    Unsettled(String),
    /// The action ended: report this, and the trial boot's health when it came to one.
    Done {
        feedback: ActionFeedback,
        health: Option<String>,
    },
}

pub fn reconcile(
    action: &Action,
    state: &DeviceState,
    booted: Side,
    pending_trial: Option<Side>,
) -> Settled {
    if action.stage != Stage::Installed {
        return Settled::Nothing;
    }
    let Some(release) = &action.release else {
        return Settled::Nothing;
    };
    let what = describe(release);
    if let Some(u) = state.update.as_ref().filter(|u| &u.release == release) {
        return match u.phase {
            Phase::Installed
                if booted != u.target && pending_trial == Some(u.target) && u.ending.is_none() =>
            {
                Settled::AwaitReboot
            }
            _ => Settled::Unsettled(format!(
                "{what} is {} in slot {} (booted {booted}); waiting for `airlock boot` to settle it (is airlock-boot.service enabled?)",
                crate::install::phase_name(u.phase),
                u.target
            )),
        };
    }
    let Some(outcome) = state.last_result.as_ref().filter(|o| &o.release == release) else {
        let last = state
            .last_result
            .as_ref()
            .map_or("none".into(), last_result);
        return Settled::Done {
            feedback: ActionFeedback::new(
                Execution::Closed,
                Finished::Failure,
                vec![format!(
                    "{what} is no longer pending on the device and it recorded no result for it (last result: {last})"
                )],
            ),
            health: None,
        };
    };
    let slot = action
        .slot
        .map_or(String::new(), |s| format!(" in slot {s}"));
    let (finished, detail) = match outcome.result {
        Ending::Committed if action.rebooted => (
            Finished::Success,
            format!("trial boot of {what}{slot} passed its checks; committed"),
        ),
        Ending::Committed => (Finished::Success, format!("committed {what}")),
        _ => (Finished::Failure, last_result(outcome)),
    };
    Settled::Done {
        feedback: ActionFeedback::new(Execution::Closed, finished, vec![detail]),
        health: if action.rebooted {
            health_of(outcome)
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Sha256Hex;
    use crate::install::record::{Outcome, Release, Update};

    fn release() -> Release {
        Release {
            bundle: "acme-os".into(),
            version: semver::Version::new(1, 3, 0),
        }
    }

    fn action(rebooted: bool) -> Action {
        Action {
            id: "8".into(),
            href: "http://h/deploymentBase/8".into(),
            name: "acme-os".into(),
            version: "1.3.0".into(),
            stage: Stage::Installed,
            release: Some(release()),
            slot: Some(Side::B),
            rebooted,
            said: None,
            attempts: 0,
            retry_at: None,
        }
    }

    fn update(phase: Phase) -> Update {
        Update {
            release: release(),
            manifest_sha256: Sha256Hex([0; 32]),
            source: "http://h/a.airlock".into(),
            target: Side::B,
            from: Side::A,
            phase,
            needs_reboot: true,
            directories: Vec::new(),
            payloads: Default::default(),
            started: "2026-01-01T00:00:00Z".into(),
            installers: Vec::new(),
            ending: None,
            download: None,
            credentials: false,
            bundled: Vec::new(),
        }
    }

    fn ended(result: Ending, reason: Option<&str>) -> DeviceState {
        DeviceState {
            last_result: Some(Outcome {
                release: release(),
                result,
                reason: reason.map(str::to_string),
                at: "2026-01-01T00:00:00Z".into(),
            }),
            ..DeviceState::default()
        }
    }

    fn done(s: Settled) -> (ActionFeedback, Option<String>) {
        match s {
            Settled::Done { feedback, health } => (feedback, health),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_committed_trial_closes_with_success() {
        let (f, health) = done(reconcile(
            &action(true),
            &ended(Ending::Committed, None),
            Side::B,
            None,
        ));
        assert_eq!(
            (f.status.execution, f.status.result.finished),
            (Execution::Closed, Finished::Success)
        );
        assert_eq!(
            f.status.details,
            ["trial boot of acme-os 1.3.0 in slot b passed its checks; committed"]
        );
        assert_eq!(health.as_deref(), Some("ok"));
    }

    #[test]
    fn a_rollback_closes_with_failure_naming_the_check_and_why() {
        let state = ended(
            Ending::RolledBack,
            Some("check health failed: HTTP 500 from http://127.0.0.1:8080/health"),
        );
        let (f, health) = done(reconcile(&action(true), &state, Side::A, None));
        assert_eq!(
            (f.status.execution, f.status.result.finished),
            (Execution::Closed, Finished::Failure)
        );
        assert_eq!(
            f.status.details,
            [
                "rolled-back acme-os 1.3.0: check health failed: HTTP 500 from http://127.0.0.1:8080/health"
            ]
        );
        assert_eq!(
            health.as_deref(),
            Some("failed: check health failed: HTTP 500 from http://127.0.0.1:8080/health")
        );

        // A hook's veto before the reboot is a failure, but says nothing of health.
        let state = ended(
            Ending::RolledBack,
            Some("hook battery aborted the update at reboot-enter: battery at 5%"),
        );
        let (f, health) = done(reconcile(&action(false), &state, Side::A, Some(Side::B)));
        assert!(
            f.status.details[0].contains("hook battery aborted"),
            "{:?}",
            f.status.details
        );
        assert_eq!(health, None);
    }

    #[test]
    fn pending_states_wait_or_reboot() {
        let state = DeviceState {
            update: Some(update(Phase::Installed)),
            ..DeviceState::default()
        };
        assert_eq!(
            reconcile(&action(false), &state, Side::A, Some(Side::B)),
            Settled::AwaitReboot
        );
        // Rebooted, the trial was consumed, nobody settled it: never reboot again in a loop.
        assert!(matches!(
            reconcile(&action(true), &state, Side::A, None),
            Settled::Unsettled(_)
        ));
        let state = DeviceState {
            update: Some(update(Phase::Trial)),
            ..DeviceState::default()
        };
        match reconcile(&action(true), &state, Side::B, None) {
            Settled::Unsettled(why) => assert!(why.contains("airlock boot"), "{why}"),
            other => panic!("{other:?}"),
        }
        let mut waiting = action(false);
        waiting.stage = Stage::Installing;
        assert_eq!(reconcile(&waiting, &state, Side::A, None), Settled::Nothing);
    }

    #[test]
    fn a_vanished_update_is_a_failure_that_says_so() {
        let (f, _) = done(reconcile(
            &action(true),
            &DeviceState::default(),
            Side::A,
            None,
        ));
        assert_eq!(f.status.result.finished, Finished::Failure);
        assert!(
            f.status.details[0].contains("no longer pending"),
            "{:?}",
            f.status.details
        );
    }
}
