//! A payload unpacked into the inactive side of a directory slot, which goes live when the
//! update does.

use tracing::info;

use super::PayloadTarget;
use crate::config::{Config, SlotConfig};
use crate::install::record::DirectorySwitch;
use crate::install::stream::PayloadWrite;
use crate::install::{InstallError, faults};
use crate::slot::DirectorySlot;

pub(crate) struct DirectoryTarget {
    class: String,
    slot: DirectorySlot,
}

impl DirectoryTarget {
    pub fn new(class: &str, slot: DirectorySlot) -> Self {
        Self {
            class: class.to_string(),
            slot,
        }
    }
}

impl PayloadTarget for DirectoryTarget {
    fn directory_switch(&self) -> Option<DirectorySwitch> {
        self.slot.active().ok().map(|from| DirectorySwitch {
            class: self.class.clone(),
            from,
            to: from.other(),
        })
    }

    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError> {
        let to = self.slot.active()?.other();
        let size = payload.info().size;
        info!(payload = %payload.info().name, class = %self.class, dir = %self.slot.dir(to).display(), "unpacking");
        payload.stream(|data| Ok(self.slot.install(to, data).map(|_| ())?))?;
        payload.advance(size);
        faults::point("directory-unpacked");
        Ok(())
    }
}

/// The directory slot `class` as configured now; switching an update's directory slots after a
/// reboot finds them here.
pub(crate) fn configured_directory(
    config: &Config,
    class: &str,
) -> Result<DirectorySlot, InstallError> {
    match config.slots.get(class) {
        Some(SlotConfig::Directory { path }) => Ok(DirectorySlot::new(path)),
        _ => Err(InstallError::DirectorySlotGone {
            class: class.to_string(),
        }),
    }
}
