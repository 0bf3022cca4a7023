//! The deployment step of the daemon's cycle: install the action's bundle now or wait, report
//! progress, then reboot into the trial.

use std::time::Duration;

use tracing::{debug, info, warn};

use airlock_ddi::{
    ActionFeedback, DeploymentBase, Execution, FeedbackProgress, Finished, action_id_of,
};

use super::FleetError;
use super::action::{Action, Stage};
use super::client::{ClientError, feedback_href};
use super::daemon::{AfterReboot, Daemon, MAX_ATTEMPTS, MIN_SLEEP, Next, unix_millis, unix_secs};
use super::plan::{self, Decision, Throttle};
use crate::install::record::Release;
use crate::install::{Device, InstallError, InstallRequest};

impl Daemon {
    pub(super) fn deployment(&mut self, href: &str) -> Result<Next, FleetError> {
        let id = action_id_of(href)
            .ok_or_else(|| ClientError::BadBody {
                url: href.to_string(),
                reason: "the deploymentBase link names no action id".into(),
            })?
            .to_string();
        let held = self.load_action()?;
        if held.as_ref().is_none_or(|a| a.id != id)
            && let Some(closed) = self.finished.get(&id)
        {
            return Ok(self.answer_again(href, closed.feedback.clone()));
        }
        let mut action = match held {
            Some(a) if a.id == id => {
                if a.stage == Stage::Installed {
                    // Settled by `settle` once the trial boot decided.
                    return Ok(Next::Sleep(self.interval));
                }
                a
            }
            held => {
                if let Some(old) = held {
                    self.supersede(old, &id)?;
                }
                Action {
                    id,
                    href: href.to_string(),
                    name: String::new(),
                    version: String::new(),
                    stage: Stage::Waiting,
                    release: None,
                    slot: None,
                    rebooted: false,
                    said: None,
                    attempts: 0,
                    retry_at: None,
                }
            }
        };
        action.href = href.to_string();
        let base: DeploymentBase = self.client.get(href)?;
        let fb = feedback_href(href);
        let (artifact, url) = match plan::bundle_artifact(&base.deployment) {
            Ok((chunk, artifact, url)) => {
                action.name = chunk.name.clone();
                action.version = chunk.version.clone();
                (artifact.clone(), url.to_string())
            }
            Err(why) => {
                self.close_action(&fb, Finished::Failure, why)?;
                return Ok(Next::Sleep(self.interval));
            }
        };
        let window = self.fleet.maintenance_window;
        if let Decision::Wait(why) = plan::decide(&base.deployment, window, unix_secs()) {
            return self.wait(action, Execution::Scheduled, why);
        }
        if action.retry_at.is_some_and(|at| unix_secs() < at) {
            // A hook asked to wait; the device would refuse before then anyway.
            return Ok(Next::Sleep(self.interval));
        }
        self.install(action, &fb, &artifact, &url)
    }

    /// A deployment the daemon closed already, offered again: the server missed its result, or
    /// it offers closed actions. It gets the same final feedback again (best effort: the poll
    /// after next asks again), and nothing is installed.
    fn answer_again(&self, href: &str, mut feedback: ActionFeedback) -> Next {
        info!(
            href,
            "the server offers an action this device closed already; sending its result again instead of running it twice"
        );
        feedback.timestamp = Some(unix_millis());
        if let Err(e) = self.client.post_feedback(&feedback_href(href), &feedback) {
            warn!("cannot send the result again: {e}");
        }
        Next::Sleep(self.interval)
    }

    /// Another action replaces the one in hand.
    pub(super) fn supersede(&mut self, old: Action, new_id: &str) -> Result<(), FleetError> {
        info!(action = %old.id, "superseded by action {new_id}");
        if old.stage != Stage::Waiting {
            let detail = format!(
                "superseded by action {new_id} before {} was settled",
                old.describe()
            );
            self.report(
                &feedback_href(&old.href),
                ActionFeedback::new(Execution::Closed, Finished::Failure, vec![detail]),
            )?;
        }
        self.action.clear()
    }

    /// Not now: say why once (again only when the reason changes), keep the action.
    pub(super) fn wait(
        &mut self,
        mut action: Action,
        execution: Execution,
        why: String,
    ) -> Result<Next, FleetError> {
        if action.said.as_deref() != Some(why.as_str()) {
            self.report(
                &feedback_href(&action.href),
                ActionFeedback::new(execution, Finished::None, vec![why.clone()]),
            )?;
            action.said = Some(why);
        }
        self.action.save(&action)?;
        Ok(Next::Sleep(self.interval))
    }

    pub(super) fn install(
        &mut self,
        mut action: Action,
        fb: &str,
        artifact: &airlock_ddi::Artifact,
        url: &str,
    ) -> Result<Next, FleetError> {
        // Opened first: another airlock process at work is a reason to wait, not to report.
        let mut device = Device::open(self.config.clone())?;
        let what = action.describe();
        action.stage = Stage::Installing;
        action.said = None;
        action.retry_at = None;
        self.action.save(&action)?;
        self.report(
            fb,
            ActionFeedback::new(
                Execution::Proceeding,
                Finished::None,
                vec![format!(
                    "downloading and installing {what} from {} ({} bytes); the device verifies its signature",
                    artifact.filename, artifact.size
                )],
            ),
        )?;
        let request = InstallRequest {
            extras: self.client.extras_for(url),
            unless_running: true,
        };
        let client = &self.client;
        // Progress goes straight out, best effort; behind undelivered feedback it would arrive
        // out of order, so then it is left out.
        let mut progress_ok = self.outbox.entries().is_empty();
        let mut throttle = Throttle::default();
        let result = device.install_with(url, &request, &mut |p| {
            let Some(percent) = throttle.next(p.done, p.total).filter(|_| progress_ok) else {
                return;
            };
            let mut f = ActionFeedback::new(
                Execution::Proceeding,
                Finished::None,
                vec![format!("installing {what}: {percent}%")],
            );
            f.timestamp = Some(unix_millis());
            f.status.result.progress = Some(FeedbackProgress::new(percent, 100));
            if let Err(e) = client.post_feedback(fb, &f) {
                debug!("progress not delivered: {e}");
                progress_ok = false;
            }
        });
        match result {
            Ok(r) if r.already_running => {
                drop(device);
                let slot = r.slot.map_or(String::new(), |s| format!(" in slot {s}"));
                let detail = format!(
                    "{} {} is already installed and running{slot}; nothing was written and no reboot is needed",
                    r.bundle, r.version
                );
                self.close_action(fb, Finished::Success, detail)?;
                Ok(Next::Sleep(self.interval))
            }
            Ok(r) if r.committed => {
                drop(device);
                let detail = format!(
                    "installed and committed {} {} (no reboot needed)",
                    r.bundle, r.version
                );
                self.close_action(fb, Finished::Success, detail)?;
                Ok(Next::Sleep(Duration::ZERO))
            }
            Ok(r) => {
                drop(device);
                action.stage = Stage::Installed;
                action.release = Some(Release {
                    bundle: r.bundle,
                    version: r.version,
                });
                action.slot = r.slot;
                action.attempts = 0;
                self.action.save(&action)?;
                let slot = r
                    .slot
                    .map_or("the inactive slots".into(), |s| format!("slot {s}"));
                let detail = format!(
                    "installed {} in {slot}; rebooting to try it",
                    action.describe()
                );
                self.report(
                    fb,
                    ActionFeedback::new(Execution::Proceeding, Finished::None, vec![detail]),
                )?;
                self.reboot_into_trial(action)
            }
            Err(InstallError::RetryLater {
                plugin,
                stage,
                seconds,
                at,
            }) => {
                // Only what the journal says was started stays "installing".
                if device.state().update.is_none() {
                    action.stage = Stage::Waiting;
                }
                drop(device);
                action.retry_at = Some(unix_secs() + seconds);
                let why =
                    format!("hook {plugin} asked to wait at {stage}; trying again after {at}");
                let execution = if action.stage == Stage::Waiting {
                    Execution::Scheduled
                } else {
                    Execution::Proceeding
                };
                self.wait(action, execution, why)
            }
            Err(e) if e.is_transport() && action.attempts + 1 < MAX_ATTEMPTS => {
                drop(device);
                action.attempts += 1;
                self.action.save(&action)?;
                let detail = format!(
                    "the download broke off: {e}; resuming on a later poll (attempt {} of {MAX_ATTEMPTS})",
                    action.attempts
                );
                self.report(
                    fb,
                    ActionFeedback::new(Execution::Proceeding, Finished::None, vec![detail]),
                )?;
                Ok(Next::Sleep(self.retry_wait().max(MIN_SLEEP)))
            }
            Err(e) => {
                let mut detail = e.to_string();
                if e.is_transport() {
                    detail = format!("gave up after {MAX_ATTEMPTS} broken-off downloads: {e}");
                    // End the half-written update (ours only), so the slots are as before.
                    if device
                        .state()
                        .update
                        .as_ref()
                        .is_some_and(|u| u.source == url)
                        && let Err(e) = device.rollback(&detail)
                    {
                        warn!("cannot clean up the broken-off install: {e}");
                    }
                }
                drop(device);
                self.close_action(fb, Finished::Failure, detail)?;
                Ok(Next::Sleep(Duration::ZERO))
            }
        }
    }

    /// Runs the `reboot-enter` hooks, then reboots into the trial slot.
    pub(super) fn reboot_into_trial(&mut self, mut action: Action) -> Result<Next, FleetError> {
        let mut device = Device::open(self.config.clone())?;
        match device.before_reboot() {
            Ok(()) => {}
            Err(InstallError::RetryLater {
                plugin, stage, at, ..
            }) => {
                drop(device);
                let why = format!("hook {plugin} asked to wait at {stage}; rebooting after {at}");
                return self.wait(action, Execution::Proceeding, why);
            }
            Err(e @ InstallError::HookAborted { .. }) => {
                // The engine ended the update; the next settle reports how.
                info!(action = %action.id, "{e}");
                return Ok(Next::Sleep(Duration::ZERO));
            }
            Err(e) => return Err(e.into()),
        }
        drop(device);
        action.rebooted = true;
        self.action.save(&action)?;
        info!(action = %action.id, "rebooting to try {}", action.describe());
        match (self.reboot)() {
            Ok(AfterReboot::Continue) => Ok(Next::Sleep(Duration::ZERO)),
            Ok(AfterReboot::Exit) => Ok(Next::Exit),
            Err(e) => {
                action.rebooted = false;
                self.action.save(&action)?;
                Err(FleetError::Reboot(e))
            }
        }
    }
}
