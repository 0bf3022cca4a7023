//! What a plugin is told and what it answers: the update's context as the host holds it, its
//! translation into the WIT `context`, and the verdicts of hooks and checks.

use serde::{Deserialize, Serialize};

use super::Stage;
use super::bindings::v0_1;

/// A bundle name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub version: String,
}

/// The payload an installer call is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadInfo {
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// sha256 of the uncompressed payload, 64 hex digits.
    pub sha256: String,
}

/// The update a plugin is called for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginContext {
    pub bundle: Release,
    /// The committed release the device runs, if known.
    pub current: Option<Release>,
    pub device_type: String,
    pub stage: Stage,
    pub payload: Option<PayloadInfo>,
    /// The boot slot being installed or tried ("a" or "b"), when the update has one.
    pub slot: Option<String>,
}

impl PluginContext {
    pub(super) fn to_wit(&self) -> v0_1::types::Context {
        let release = |r: &Release| v0_1::types::Release {
            name: r.name.clone(),
            version: r.version.clone(),
        };
        v0_1::types::Context {
            bundle: release(&self.bundle),
            current: self.current.as_ref().map(release),
            device_type: self.device_type.clone(),
            stage: stage_to_wit(self.stage),
            payload: self.payload.as_ref().map(|p| v0_1::types::PayloadInfo {
                name: p.name.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            }),
            slot: self.slot.clone(),
        }
    }
}

/// A hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    Proceed,
    /// Stop the update, with the plugin's reason (sanitised, at most 1 KiB).
    Abort(String),
    /// Try this stage again after this many seconds.
    RetryLater(u32),
}

/// A check's verdict on a trial boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckVerdict {
    Pass,
    /// The reason, sanitised, at most 1 KiB.
    Fail(String),
}

/// The WIT `stage` of `stage`.
fn stage_to_wit(stage: Stage) -> v0_1::types::Stage {
    use v0_1::types::Stage as W;
    match stage {
        Stage::DownloadEnter => W::DownloadEnter,
        Stage::DownloadLeave => W::DownloadLeave,
        Stage::InstallEnter => W::InstallEnter,
        Stage::InstallLeave => W::InstallLeave,
        Stage::RebootEnter => W::RebootEnter,
        Stage::CommitEnter => W::CommitEnter,
        Stage::CommitLeave => W::CommitLeave,
        Stage::RollbackEnter => W::RollbackEnter,
        Stage::RollbackLeave => W::RollbackLeave,
        Stage::Failure => W::Failure,
        Stage::Check => W::Check,
        Stage::Install => W::Install,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_names_are_the_wits_in_its_order() {
        let host: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(host, airlock_testkit::wit_stage_names());
    }
}
