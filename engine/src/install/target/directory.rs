//! A payload unpacked into the inactive side of a directory slot, which goes live when the
//! update does and turns back when it is abandoned.

use tracing::info;

use super::{Finishing, PayloadTarget};
use crate::boot::Side;
use crate::config::{Config, SlotConfig};
use crate::install::record::DirectorySwitch;
use crate::install::stream::PayloadWrite;
use crate::install::{InstallError, faults};
use crate::slot::DirectorySlot;

pub(crate) struct DirectoryTarget {
    class: String,
    slot: DirectorySlot,
    /// The side live when the update started; the update writes the other one.
    from: Side,
}

impl DirectoryTarget {
    /// The slot as it is now: the update goes to the side not live.
    pub fn new(class: &str, slot: DirectorySlot) -> Result<Self, InstallError> {
        let from = slot.active()?;
        Ok(Self {
            class: class.to_string(),
            slot,
            from,
        })
    }

    /// The slot as the journal recorded it when the update started.
    pub fn recorded(d: &DirectorySwitch, slot: DirectorySlot) -> Self {
        Self {
            class: d.class.clone(),
            slot,
            from: d.from,
        }
    }

    fn to(&self) -> Side {
        self.from.other()
    }
}

impl PayloadTarget for DirectoryTarget {
    fn directory_switch(&self) -> Option<DirectorySwitch> {
        Some(DirectorySwitch {
            class: self.class.clone(),
            from: self.from,
            to: self.to(),
        })
    }

    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError> {
        let size = payload.info().size;
        info!(payload = %payload.info().name, class = %self.class, dir = %self.slot.dir(self.to()).display(), "unpacking");
        payload.stream(|data| Ok(self.slot.install(self.to(), data).map(|_| ())?))?;
        payload.advance(size);
        faults::point("directory-unpacked");
        Ok(())
    }

    fn switch(&self) -> Result<(), InstallError> {
        self.slot.switch_to(self.to())?;
        faults::point("directory-switched");
        Ok(())
    }

    fn roll_back(&self, _: &mut Finishing<'_>) -> Result<(), InstallError> {
        if self.slot.active()? == self.to() {
            self.slot.switch_to(self.from)?;
        }
        Ok(())
    }
}

/// The directory slot `class` as configured now; finishing an update after a reboot finds its
/// directory slots here.
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
