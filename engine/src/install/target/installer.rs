//! A payload handed to an installer plugin, which writes it wherever it knows to.

use tracing::info;

use super::PayloadTarget;
use crate::install::stream::PayloadWrite;
use crate::install::{InstallError, faults};
use crate::plugin::PayloadInfo;

pub(crate) struct InstallerTarget {
    plugin: String,
}

impl InstallerTarget {
    pub fn new(plugin: &str) -> Self {
        Self {
            plugin: plugin.to_string(),
        }
    }
}

impl PayloadTarget for InstallerTarget {
    fn installer(&self) -> Option<&str> {
        Some(&self.plugin)
    }

    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError> {
        let p = payload.info().clone();
        info!(payload = %p.name, plugin = %self.plugin, "handing the payload to its installer plugin");
        let info = PayloadInfo {
            name: p.name.clone(),
            size: p.size,
            sha256: p.sha256.to_string(),
        };
        payload.stream_to_installer(&self.plugin, info)?;
        payload.advance(p.size);
        faults::point("installer-plugin-done");
        Ok(())
    }
}
