//! A payload handed to an installer plugin, which writes it wherever it knows to, and is told
//! when the update is committed or rolled back.

use tracing::{info, warn};

use super::{Finishing, PayloadTarget};
use crate::install::stream::PayloadWrite;
use crate::install::{InstallError, faults};
use crate::plugin::PayloadInfo;

pub(crate) struct InstallerTarget {
    plugin: String,
    payload: String,
}

impl InstallerTarget {
    pub fn new(plugin: &str, payload: &str) -> Self {
        Self {
            plugin: plugin.to_string(),
            payload: payload.to_string(),
        }
    }
}

impl PayloadTarget for InstallerTarget {
    fn installer(&self) -> Option<&str> {
        Some(&self.plugin)
    }

    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError> {
        let p = payload.info();
        info!(payload = %p.name, plugin = %self.plugin, "handing the payload to its installer plugin");
        let info = PayloadInfo {
            name: p.name.clone(),
            size: p.size,
            sha256: p.sha256.to_string(),
        };
        let size = info.size;
        payload.stream_to_installer(&self.plugin, info)?;
        payload.advance(size);
        faults::point("installer-plugin-done");
        Ok(())
    }

    fn commit(&self, f: &mut Finishing<'_>) -> Result<(), InstallError> {
        f.plugins
            .finish_installer(&self.plugin, &self.payload, f.ctx, true)
    }

    /// The update ends either way: a plugin that cannot roll back is logged, not fatal.
    fn roll_back(&self, f: &mut Finishing<'_>) -> Result<(), InstallError> {
        if let Err(e) = f
            .plugins
            .finish_installer(&self.plugin, &self.payload, f.ctx, false)
        {
            warn!(plugin = %self.plugin, payload = %self.payload, "installer rollback failed: {e}");
        }
        Ok(())
    }
}
