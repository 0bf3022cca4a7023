use std::io;
use std::path::PathBuf;

use crate::boot::{BootError, Side};
use crate::bundle::BundleError;
use crate::config::ConfigError;
use crate::slot::SlotError;
use crate::source::SourceError;
use crate::state::StateError;
use crate::trust::{AcceptanceError, TrustError};

/// Why an install, boot, commit or rollback could not proceed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// Not for this device type, expired, or older than what the device runs.
    #[error(transparent)]
    NotAccepted(#[from] AcceptanceError),
    #[error(
        "payload {payload:?} targets slot class {class:?}, which this device does not have (it has: {configured}); add [slots.{class}] to the configuration or fix the bundle"
    )]
    UnknownSlotClass {
        payload: String,
        class: String,
        configured: String,
    },
    #[error(
        "payload {payload:?} is for installer plugin {plugin:?}, but no installer plugin of that name is configured"
    )]
    NoInstaller { payload: String, plugin: String },
    #[error(
        "an update ({bundle}) is on trial in slot {slot}; run `airlock commit` or `airlock rollback` before installing another"
    )]
    UpdateOnTrial { bundle: String, slot: Side },
    #[error(
        "the device booted slot {booted} but the committed slot is {primary}; run `airlock boot` to settle the pending state first"
    )]
    NotOnPrimary { booted: Side, primary: Side },
    #[error(
        "the bootloader booted slot {booted}, but the committed slot is {primary} and no update is pending: this device runs a release that was never committed to. Check that the bootloader reads its environment block (GRUB: the search for /EFI/airlock/grubenv in grub.cfg; U-Boot: the environment's location), then reboot; `airlock status` shows what each slot holds"
    )]
    BootedUncommitted { booted: Side, primary: Side },
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("hook {plugin} aborted the update at {stage}: {reason}")]
    HookAborted {
        plugin: String,
        stage: String,
        reason: String,
    },
    #[error(
        "hook {plugin} asked to try again later (at {stage}); run the install again after {at} ({seconds} s from now)"
    )]
    RetryLater {
        plugin: String,
        stage: String,
        seconds: u64,
        at: String,
    },
    #[error(
        "another airlock process is working on this device (it holds {}); wait for it to finish",
        lock.display()
    )]
    Busy { lock: PathBuf },
    #[error("cannot {action} {}: {source}; check [device] data_dir", path.display())]
    DataDir {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{release} is {phase} in slot {target} but the device runs slot {booted}; reboot into the new slot before committing"
    )]
    NotBootedIntoUpdate {
        release: String,
        phase: &'static str,
        target: Side,
        booted: Side,
    },
    #[error(
        "payload {payload:?} is {size} bytes but slot {class} {target} ({}) holds only {capacity}; use a larger partition or a smaller image",
        path.display()
    )]
    PayloadTooLarge {
        payload: String,
        size: u64,
        class: String,
        target: Side,
        path: PathBuf,
        capacity: u64,
    },
    #[error(
        "the journal names directory slot {class:?}, which the configuration no longer has as a directory slot; restore [slots.{class}]"
    )]
    DirectorySlotGone { class: String },
    #[error(
        "the bundle brings plugin {plugin:?} without a precompiled form for {target}, and this device build of airlock cannot compile it; add \"{target}\" to `precompile` in its [[plugin]] of the bundle description and build the bundle again"
    )]
    NoPrecompiledForm { plugin: String, target: String },
    #[error("cannot save bundled plugin {plugin} to {}: {source}; check [device] data_dir", dir.display())]
    SaveBundledPlugin {
        plugin: String,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("plugin {plugin:?} is not configured: add [plugins.{plugin}] with its path")]
    PluginNotConfigured { plugin: String },
}

impl InstallError {
    /// Errors of transport (a dropped connection, a truncated file) leave an interrupted install
    /// resumable; everything else (a forged or corrupt bundle, a full slot) fails it.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            InstallError::Source(_)
                | InstallError::Bundle(BundleError::Io { .. } | BundleError::Truncated { .. })
        )
    }
}
