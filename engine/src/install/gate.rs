//! The hooks that may stop or postpone an update before each irreversible step: abort ends it,
//! retry-later is recorded and refused until its time, up to the chain's retry limit.

use std::time::SystemTime;

use super::plugins::{self, HookOutcome};
use super::record::{Ending, Outcome, Phase, Release, Retry, now};
use super::{Device, InstallError};
use crate::bundle::Sha256Hex;
use crate::plugin::Stage;

impl Device {
    /// Runs the hooks of a stage before anything irreversible and acts on their answer:
    /// abort ends the update (or refuses it, before it started), retry-later is recorded and
    /// honoured by the next attempt, up to the chain's retry limit.
    pub(super) fn gate(
        &mut self,
        stage: Stage,
        release: &Release,
        sha: &Sha256Hex,
        slot: Option<String>,
    ) -> Result<(), InstallError> {
        if self.plugins.chain().hooks(stage).is_empty() {
            return Ok(());
        }
        let ctx = plugins::context(&self.config, &self.state, release, slot, stage);
        let (plugin, reason) = match self.plugins.run_hooks(stage, &ctx)? {
            HookOutcome::Proceed => {
                if self
                    .state
                    .retry
                    .as_ref()
                    .is_some_and(|r| r.manifest_sha256 == *sha && r.stage == stage.as_str())
                {
                    self.state.retry = None;
                    self.store("journal-retry-cleared")?;
                }
                return Ok(());
            }
            HookOutcome::RetryLater { plugin, seconds } => {
                let attempts = self
                    .state
                    .retry
                    .as_ref()
                    .filter(|r| r.manifest_sha256 == *sha && r.stage == stage.as_str())
                    .map_or(0, |r| r.attempts)
                    + 1;
                let limit = self.plugins.chain().retry_limit;
                if attempts > limit {
                    let reason = format!(
                        "asked to retry later {attempts} times; the chain's retry-limit is {limit}"
                    );
                    (plugin, reason)
                } else {
                    let not_before = unix_now() + u64::from(seconds);
                    self.state.retry = Some(Retry {
                        release: release.clone(),
                        manifest_sha256: *sha,
                        stage: stage.as_str().to_string(),
                        plugin: plugin.clone(),
                        not_before,
                        attempts,
                    });
                    self.store("journal-retry-later")?;
                    return Err(InstallError::RetryLater {
                        plugin,
                        stage: stage.to_string(),
                        seconds: u64::from(seconds),
                        at: unix_to_rfc3339(not_before),
                    });
                }
            }
            HookOutcome::Abort { plugin, reason } => (plugin, reason),
        };
        let err = InstallError::HookAborted {
            plugin,
            stage: stage.to_string(),
            reason,
        };
        self.state.retry = None;
        // Only this bundle's update ends here; another one waiting for its reboot is not ours.
        match self
            .state
            .update
            .clone()
            .filter(|u| u.manifest_sha256 == *sha)
        {
            Some(u) => {
                let ending = if u.phase >= Phase::Installed {
                    Ending::RolledBack
                } else {
                    Ending::Failed
                };
                self.abandon(u, ending, &err.to_string())?;
            }
            None => {
                self.state.last_result = Some(Outcome {
                    release: release.clone(),
                    result: Ending::Failed,
                    reason: Some(err.to_string()),
                    at: now(),
                });
                self.store("journal-refused-by-hook")?;
            }
        }
        Err(err)
    }

    /// Refuses to try a bundle again before the time a hook asked for.
    pub(super) fn check_retry(&self, sha: &Sha256Hex) -> Result<(), InstallError> {
        if let Some(r) = &self.state.retry
            && r.manifest_sha256 == *sha
            && unix_now() < r.not_before
        {
            return Err(InstallError::RetryLater {
                plugin: r.plugin.clone(),
                stage: r.stage.clone(),
                seconds: r.not_before - unix_now(),
                at: unix_to_rfc3339(r.not_before),
            });
        }
        Ok(())
    }

    /// Runs the reboot-enter hooks before the device reboots into a pending update. An abort
    /// cancels the update; retry-later is recorded and refused until its time.
    pub fn before_reboot(&mut self) -> Result<(), InstallError> {
        let Some(u) = self.state.update.clone() else {
            return Ok(());
        };
        if u.phase != Phase::Installed {
            return Ok(());
        }
        self.check_retry(&u.manifest_sha256)?;
        self.gate(
            Stage::RebootEnter,
            &u.release,
            &u.manifest_sha256,
            Some(u.target.to_string()),
        )
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as an RFC 3339 UTC time, as the journal's other times are written.
pub fn unix_to_rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}
