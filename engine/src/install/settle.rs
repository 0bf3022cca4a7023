//! What the device does at every boot (`airlock boot`): settle whatever update is pending —
//! resume an interrupted download, finish a switch, run the trial's checks and commit, or roll
//! back when the bootloader fell back.

use tracing::warn;

use super::plugins::{self, HookOutcome};
use super::record::{Ending, Phase, Update};
use super::{BootReport, Device, InstallError, Progress, describe};
use crate::plugin::Stage;

impl Device {
    /// What the device runs at every boot: settle whatever is pending.
    pub fn boot(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<BootReport, InstallError> {
        let booted = self.booted()?;
        let mut report = BootReport {
            booted,
            actions: Vec::new(),
            reboot_needed: false,
        };
        let Some(u) = self.state.update.clone() else {
            if let Some((booted, primary)) = self.booted_uncommitted()? {
                return Err(InstallError::BootedUncommitted { booted, primary });
            }
            report
                .actions
                .push(format!("booted slot {booted}; no update pending"));
            return Ok(report);
        };
        if let Some(pending) = u.ending.clone() {
            // Interrupted while ending the update: finish that, as decided.
            let on_new_slot = u.needs_reboot && booted == u.target;
            self.abandon(u, pending.ending, &pending.reason)?;
            report
                .actions
                .push(format!("finished ending the update: {}", pending.reason));
            // The power cut let the bootloader try the abandoned slot: go back to the old one.
            report.reboot_needed = on_new_slot;
            return Ok(report);
        }
        match u.phase {
            // A fleet server's download needs the daemon's token: the daemon resumes it on its
            // next poll, where the boot flow would only be refused.
            Phase::Fetching if u.credentials => {
                report.actions.push(format!(
                    "the interrupted download of {} is resumed by airlock daemon",
                    describe(&u.release)
                ));
            }
            Phase::Fetching => {
                report.actions.push(format!(
                    "resuming the interrupted install of {} from {}",
                    describe(&u.release),
                    u.source
                ));
                match self.install(&u.source, progress) {
                    Ok(r) => report.actions.push(format!(
                        "installed {} {}; reboot to try it",
                        r.bundle, r.version
                    )),
                    Err(e) => {
                        // Whatever happened, don't leave a half-written update pending at boot.
                        let reason = format!("the interrupted install could not be resumed: {e}");
                        if let Some(u) = self
                            .state
                            .update
                            .clone()
                            .filter(|u| u.phase == Phase::Fetching)
                        {
                            self.fail(u, &reason)?;
                        }
                        report.actions.push(reason);
                    }
                }
            }
            Phase::Switching if booted == u.target => self.enter_trial(u, &mut report)?,
            Phase::Switching => {
                self.finish_switch()?;
                report.actions.push(format!(
                    "finished switching to {}; reboot to try it",
                    describe(&u.release)
                ));
            }
            Phase::Installed | Phase::Trial if booted == u.target => {
                self.enter_trial(u, &mut report)?
            }
            Phase::Installed if self.boot.pending_trial()? == Some(u.target) => {
                report.actions.push(format!(
                    "{} waits in slot {} for a reboot",
                    describe(&u.release),
                    u.target
                ));
            }
            Phase::Installed | Phase::Trial => {
                let reason = format!(
                    "slot {} did not boot; the bootloader fell back to slot {booted}",
                    u.target
                );
                self.abandon(u, Ending::RolledBack, &reason)?;
                report.actions.push(format!("rolled back: {reason}"));
            }
        }
        Ok(report)
    }

    /// Booted into the new slot: run the checks and commit (the plugin chain supplies checks;
    /// without any, booting is the check).
    pub(super) fn enter_trial(
        &mut self,
        mut u: Update,
        report: &mut BootReport,
    ) -> Result<(), InstallError> {
        if u.phase != Phase::Trial {
            u.phase = Phase::Trial;
            self.state.update = Some(u.clone());
            self.store("journal-trial")?;
        }
        // Directory slots go live with the new root filesystem, not before it.
        self.switch_targets(&u)?;
        let slot = Some(u.target.to_string());
        let ctx = plugins::context(&self.config, &self.state, &u.release, slot, Stage::Check);
        let verdict = match self.plugins.run_checks(&ctx)? {
            Some((plugin, reason)) => Some(format!("check {plugin} failed: {reason}")),
            None => match self.plugins.run_hooks(Stage::CommitEnter, &ctx)? {
                HookOutcome::Abort { plugin, reason } => {
                    Some(format!("hook {plugin} aborted the commit: {reason}"))
                }
                HookOutcome::RetryLater { plugin, .. } => {
                    warn!(plugin = %plugin, "retry-later at commit-enter cannot wait across a reboot; committing");
                    None
                }
                HookOutcome::Proceed => None,
            },
        };
        if let Some(reason) = verdict {
            let from = u.from;
            self.abandon(u, Ending::RolledBack, &reason)?;
            report.actions.push(format!("rolled back: {reason}"));
            report.actions.push(format!("rebooting into slot {from}"));
            report.reboot_needed = true;
            return Ok(());
        }
        self.finish_commit(u.clone())?;
        report.actions.push(format!(
            "trial boot of {} in slot {} passed{}; committed",
            describe(&u.release),
            u.target,
            if self.config.chain.checks.is_empty() {
                ""
            } else {
                " its checks"
            }
        ));
        Ok(())
    }
}
