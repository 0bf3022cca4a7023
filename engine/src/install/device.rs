//! A device as the state machine holds it: its configuration, bootloader, journal and plugin
//! chain, opened under the device lock (or read-only, for `status`).

use super::plugins::PluginRunner;
use super::record::DeviceState;
use super::target::{self, PayloadTarget};
use super::{InstallError, faults};
use crate::boot::{self, BootBackend, Side};
use crate::bundle::Manifest;
use crate::config::Config;
use crate::fsutil::FileLock;
use crate::state::Journal;

/// Where each payload of a bundle goes on this device: [`target::plan`], or a fake one in the
/// state machine's unit tests.
type Planner = Box<
    dyn Fn(&Config, &Manifest, Side) -> Result<Vec<Box<dyn PayloadTarget>>, InstallError>
        + Send
        + Sync,
>;

/// A device: its configuration, bootloader and journal.
pub struct Device {
    pub(super) config: Config,
    pub(super) boot: Box<dyn BootBackend>,
    journal: Journal<DeviceState>,
    pub(super) state: DeviceState,
    pub(super) plugins: PluginRunner,
    pub(super) planner: Planner,
    /// Held while the device may be changed.
    _lock: Option<FileLock>,
}

impl Device {
    /// Opens the device to change it: takes the device lock, so that two Airlock processes
    /// (say the daemon and an operator) never interleave transitions.
    pub fn open(config: Config) -> Result<Self, InstallError> {
        let data_dir = &config.device.data_dir;
        let lock_path = data_dir.join("lock");
        let lock = std::fs::create_dir_all(data_dir)
            .and_then(|()| FileLock::try_acquire(&lock_path))
            .map_err(|source| InstallError::DataDir {
                action: "lock",
                path: lock_path.clone(),
                source,
            })?
            .ok_or_else(|| InstallError::Busy {
                lock: lock_path.clone(),
            })?;
        let mut device = Self::open_read_only(config)?;
        device._lock = Some(lock);
        Ok(device)
    }

    /// Opens the device to look at it (`status`), without the lock.
    pub fn open_read_only(config: Config) -> Result<Self, InstallError> {
        let boot = boot::open(&config.boot)?;
        let mut journal = Journal::open(&config.state_dir())?;
        let state: DeviceState = journal.load()?.unwrap_or_default();
        let mut plugins = PluginRunner::new(&config);
        for p in state.update.iter().flat_map(|u| &u.bundled) {
            plugins.use_bundled(p);
        }
        Ok(Self {
            config,
            boot,
            journal,
            state,
            plugins,
            planner: Box::new(target::plan),
            _lock: None,
        })
    }

    /// Sends every payload to the targets `planner` gives instead of the configured slots.
    #[cfg(test)]
    pub(super) fn with_planner(mut self, planner: Planner) -> Self {
        self.planner = planner;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    pub fn boot_backend(&self) -> &dyn BootBackend {
        self.boot.as_ref()
    }

    /// The slot the running system booted from.
    pub fn booted(&self) -> Result<Side, InstallError> {
        Ok(boot::booted_slot(
            self.boot.as_ref(),
            &self.config.device.cmdline,
        )?)
    }

    /// `(booted, committed)` when the device runs a slot it never committed to with no update
    /// that explains it: the bootloader did not boot the committed slot (it could not read its
    /// environment, or someone changed the boot order by hand).
    pub fn booted_uncommitted(&self) -> Result<Option<(Side, Side)>, InstallError> {
        if self.state.update.is_some() {
            return Ok(None);
        }
        let booted = self.booted()?;
        let primary = self.boot.primary()?;
        Ok((booted != primary).then_some((booted, primary)))
    }

    pub(super) fn store(&mut self, point: &str) -> Result<(), InstallError> {
        self.journal.store(&self.state)?;
        faults::point(point);
        Ok(())
    }
}
