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
use super::record::DirectorySwitch;
use super::stream::PayloadWrite;
use crate::boot::Side;
use crate::bundle::{ChunkIndex, Manifest, PayloadInfo, Target};
use crate::config::{Config, SlotConfig};
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

fn target_for(
    config: &Config,
    p: &PayloadInfo,
    side: Side,
) -> Result<Box<dyn PayloadTarget>, InstallError> {
    let class = match &p.target {
        Target::Installer(plugin) if config.chain.installers.contains(plugin) => {
            return Ok(Box::new(installer::InstallerTarget::new(plugin)));
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
            Ok(Box::new(directory::DirectoryTarget::new(class, slot)))
        }
    }
}
