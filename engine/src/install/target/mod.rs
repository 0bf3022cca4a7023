//! Where a payload goes. Every kind of place (a raw or file slot, a directory slot, an installer
//! plugin) implements [`PayloadTarget`], so that planning, resuming, delta reuse and writing
//! work the same way for each: a new kind (an eMMC boot partition, a UBI volume, an MCU image)
//! is one more implementation here and one more `[slots]` type in the configuration, not one
//! more arm in every match of the state machine.

mod directory;
mod installer;
mod raw;

pub(crate) use directory::configured_directory;

use super::InstallError;
use super::local_chunks::LocalChunks;
use super::plugins::PluginRunner;
use super::record::{DirectorySwitch, Update};
use super::stream::PayloadWrite;
use crate::boot::Side;
use crate::bundle::{ChunkIndex, Manifest, PayloadInfo, Target};
use crate::config::{Config, SlotConfig};
use crate::plugin::PluginContext;
use crate::slot::{DirectorySlot, RawSlot};

/// A place one payload of a bundle is written to, with the steps the state machine takes on it.
/// Only `write` is required: the other steps default to "nothing to do".
pub(crate) trait PayloadTarget {
    /// The installer plugin this payload is handed to: it must load before anything is written.
    fn installer(&self) -> Option<&str> {
        None
    }

    /// The payload takes effect only after a reboot into the other A/B side.
    fn needs_reboot(&self) -> bool {
        false
    }

    /// The switch the journal records to make this payload live, and to undo it.
    fn directory_switch(&self) -> Option<DirectorySwitch> {
        None
    }

    /// Before the first byte is written: forget what described the content being overwritten.
    fn prepare(&self) -> Result<(), InstallError> {
        Ok(())
    }

    /// The chunks at the start of the target that an interrupted attempt already wrote, as they
    /// read back now: their count and total length. Only those can be skipped on resume.
    fn intact(&self, _index: &ChunkIndex) -> Result<(u64, u64), InstallError> {
        Ok((0, 0))
    }

    /// The chunks the device already holds for this payload, for a delta install.
    fn local_chunks(&self) -> Option<LocalChunks> {
        None
    }

    /// Writes the payload's verified chunks (after the intact ones), durably.
    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError>;

    /// Makes the written payload live (a directory slot turns to its new side). A/B payloads
    /// go live with the bootloader's trial instead, which is one for the whole side.
    /// Idempotent: after a power cut it runs again.
    fn switch(&self) -> Result<(), InstallError> {
        Ok(())
    }

    /// Makes the payload permanent, once the update is committed. An error stops the commit.
    fn commit(&self, _plugins: &mut Finishing<'_>) -> Result<(), InstallError> {
        Ok(())
    }

    /// Undoes the payload when the update is abandoned. Idempotent.
    fn roll_back(&self, _plugins: &mut Finishing<'_>) -> Result<(), InstallError> {
        Ok(())
    }
}

/// What committing or rolling back a target may call on: the plugin chain, with the update's
/// context.
pub(crate) struct Finishing<'a> {
    pub plugins: &'a mut PluginRunner,
    pub ctx: &'a PluginContext,
}

/// Where each payload of `manifest` goes when the update is written to the `side` slots; checks
/// that every slot exists and is large enough, and that every installer is in the chain, before
/// anything is written.
pub(crate) fn plan(
    config: &Config,
    manifest: &Manifest,
    side: Side,
) -> Result<Vec<Box<dyn PayloadTarget>>, InstallError> {
    manifest
        .payloads
        .iter()
        .map(|p| target_for(config, p, side))
        .collect()
}

/// The targets of the update `u` that have something to do after the write (switch, commit,
/// roll back), rebuilt from the journal's record of it: the same steps run in the process that
/// wrote the update and in the one that finishes it after a reboot or a power cut.
pub(crate) fn recorded(
    config: &Config,
    u: &Update,
) -> Result<Vec<Box<dyn PayloadTarget>>, InstallError> {
    let mut targets: Vec<Box<dyn PayloadTarget>> = Vec::new();
    for (payload, plugin) in &u.installers {
        targets.push(Box::new(installer::InstallerTarget::new(plugin, payload)));
    }
    for d in &u.directories {
        let slot = configured_directory(config, &d.class)?;
        targets.push(Box::new(directory::DirectoryTarget::recorded(d, slot)));
    }
    Ok(targets)
}

fn target_for(
    config: &Config,
    p: &PayloadInfo,
    side: Side,
) -> Result<Box<dyn PayloadTarget>, InstallError> {
    let class = match &p.target {
        Target::Installer(plugin) if config.chain.installers.contains(plugin) => {
            return Ok(Box::new(installer::InstallerTarget::new(plugin, &p.name)));
        }
        Target::Installer(plugin) => {
            return Err(InstallError::NoInstaller {
                payload: p.name.clone(),
                plugin: plugin.clone(),
            });
        }
        Target::Slot(class) => class,
    };
    let sides = |a: RawSlot, b: RawSlot| raw::RawTarget::plan(config, p, class, side, [a, b]);
    match config.slots.get(class) {
        None => Err(InstallError::UnknownSlotClass {
            payload: p.name.clone(),
            class: class.clone(),
            configured: config.slots.keys().cloned().collect::<Vec<_>>().join(", "),
        }),
        Some(SlotConfig::Raw { a, b }) => Ok(Box::new(sides(RawSlot::new(a), RawSlot::new(b))?)),
        Some(SlotConfig::File { a, b }) => Ok(Box::new(sides(RawSlot::file(a), RawSlot::file(b))?)),
        Some(SlotConfig::Directory { path }) => {
            let slot = DirectorySlot::new(path);
            slot.init()?;
            Ok(Box::new(directory::DirectoryTarget::new(class, slot)?))
        }
    }
}
