//! How an update ends: committed (made permanent), or abandoned — cancelled before its trial,
//! rolled back on it, or failed — with the old slots and directory sides restored.

use tracing::info;

use super::plugins;
use super::record::{Ending, Outcome, PendingEnding, Phase, Update, now};
use super::target::{self, Finishing};
use super::{Device, InstallError, describe, faults, phase_name};
use crate::plugin::Stage;

impl Device {
    /// Makes every target of the update that has a switch of its own live (directory slots
    /// turn to their new side). Idempotent.
    pub(super) fn switch_targets(&self, u: &Update) -> Result<(), InstallError> {
        for t in target::recorded(&self.config, u)? {
            t.switch()?;
        }
        Ok(())
    }

    /// Makes the update permanent. Idempotent.
    pub(super) fn finish_commit(&mut self, u: Update) -> Result<(), InstallError> {
        let slot = u.needs_reboot.then(|| u.target.to_string());
        let ctx = plugins::context(
            &self.config,
            &self.state,
            &u.release,
            slot,
            Stage::CommitLeave,
        );
        // Targets make their part permanent first: if one cannot, nothing is committed yet.
        let mut finishing = Finishing {
            plugins: &mut self.plugins,
            ctx: &ctx,
        };
        for t in target::recorded(&self.config, &u)? {
            t.commit(&mut finishing)?;
        }
        if u.needs_reboot {
            self.boot.commit(u.target)?;
            faults::point("boot-committed");
        }
        self.state.committed = Some(u.release.clone());
        self.state.committed_manifest = Some(u.manifest_sha256);
        self.state.update = None;
        self.state.last_result = Some(Outcome {
            release: u.release.clone(),
            result: Ending::Committed,
            reason: None,
            at: now(),
        });
        self.store("journal-committed")?;
        info!(bundle = %u.release.bundle, version = %u.release.version, "committed");
        self.plugins.notify(Stage::CommitLeave, &ctx);
        Ok(())
    }

    /// `airlock commit`: make an update on trial permanent without waiting for checks.
    /// Idempotent: with nothing on trial it says so and changes nothing.
    pub fn commit(&mut self) -> Result<String, InstallError> {
        let booted = self.booted()?;
        match self.state.update.clone() {
            None => Ok(match &self.state.committed {
                Some(r) => format!("nothing to commit: {} is committed", describe(r)),
                None => "nothing to commit: no update pending".into(),
            }),
            Some(u) if u.phase >= Phase::Installed && booted == u.target => {
                self.finish_commit(u.clone())?;
                Ok(format!(
                    "committed {} in slot {}",
                    describe(&u.release),
                    u.target
                ))
            }
            Some(u) => Err(InstallError::NotBootedIntoUpdate {
                release: describe(&u.release),
                phase: phase_name(u.phase),
                target: u.target,
                booted,
            }),
        }
    }

    /// `airlock rollback`: abandon the pending update. Before its trial boot this cancels the
    /// trial; on the trial boot it makes the old slot the one booted next. Idempotent.
    pub fn rollback(&mut self, reason: &str) -> Result<(String, bool), InstallError> {
        let booted = self.booted()?;
        let Some(u) = self.state.update.clone() else {
            return Ok(("nothing to roll back: no update pending".into(), false));
        };
        let on_trial = booted == u.target && u.needs_reboot;
        let ending = if on_trial {
            Ending::RolledBack
        } else {
            Ending::Cancelled
        };
        self.abandon(u.clone(), ending, reason)?;
        let msg = if on_trial {
            format!(
                "rolled back {}: reboot to return to slot {}",
                describe(&u.release),
                u.from
            )
        } else {
            format!(
                "cancelled {}; slot {} stays active",
                describe(&u.release),
                u.from
            )
        };
        Ok((msg, on_trial))
    }

    /// Ends the pending update without committing it: cancel the trial, roll every target back
    /// (directory slots turn back, installer plugins are told), record why. The old slots were
    /// never written, so they are as they were.
    pub(super) fn abandon(
        &mut self,
        mut u: Update,
        ending: Ending,
        reason: &str,
    ) -> Result<(), InstallError> {
        // Record the decision first, so that a power cut half-way through finishes this
        // abandon, with this reason, instead of guessing one from the bootloader.
        if u.ending.is_none() {
            u.ending = Some(PendingEnding {
                ending,
                reason: reason.to_string(),
            });
            self.state.update = Some(u.clone());
            self.store("journal-abandoning")?;
        }
        let slot = u.needs_reboot.then(|| u.target.to_string());
        let (enter, leave) = match ending {
            Ending::Failed => (Stage::Failure, None),
            _ => (Stage::RollbackEnter, Some(Stage::RollbackLeave)),
        };
        let ctx = plugins::context(&self.config, &self.state, &u.release, slot, enter);
        self.plugins.notify(enter, &ctx);
        // The bootloader first: whatever happens to the rest, the old slots boot next.
        self.boot.cancel_trial()?;
        // The primary slot is the one the update started from; make sure the bootloader agrees.
        if self.boot.primary()? != u.from {
            self.boot.commit(u.from)?;
        }
        let mut finishing = Finishing {
            plugins: &mut self.plugins,
            ctx: &ctx,
        };
        for t in target::recorded(&self.config, &u)? {
            t.roll_back(&mut finishing)?;
        }
        faults::point("abandon-switched-back");
        self.state.update = None;
        self.state.last_result = Some(Outcome {
            release: u.release,
            result: ending,
            reason: Some(reason.into()),
            at: now(),
        });
        self.store("journal-abandoned")?;
        info!("update ended without commit: {reason}");
        if let Some(leave) = leave {
            self.plugins.notify(leave, &ctx);
        }
        Ok(())
    }

    pub(super) fn fail(&mut self, u: Update, reason: &str) -> Result<(), InstallError> {
        self.abandon(u, Ending::Failed, reason)
    }
}
