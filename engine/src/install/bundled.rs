//! The plugins a bundle brings with it: saved for this update, one folder per bundle, with the
//! precompiled form for this device's CPU, when the chain allows bundled plugins.

use tracing::{info, warn};

use super::record::BundledPlugin;
use super::{Device, InstallError};
use crate::bundle::{BundleInput, BundleReader, PluginInfo, Sha256Hex, Target};
use crate::plugin;

impl Device {
    /// Saves the plugins a bundle brings for this update, when the chain allows bundled plugins:
    /// installers one of its payloads names, and checks the chain runs. Each is verified against
    /// the signed manifest already; so is the precompiled form for this device's CPU, saved
    /// beside it, which that digest alone vouches for. A device build, which cannot compile,
    /// refuses a bundle that has no precompiled form for it before anything is saved.
    pub(super) fn take_bundled_plugins<R: BundleInput>(
        &mut self,
        reader: &mut BundleReader<R>,
        manifest_sha256: &Sha256Hex,
    ) -> Result<Vec<BundledPlugin>, InstallError> {
        let manifest = reader.manifest();
        let wanted: Vec<&PluginInfo> = manifest
            .plugins
            .iter()
            .filter(|p| {
                let installer = manifest
                    .payloads
                    .iter()
                    .any(|pl| pl.target == Target::Installer(p.name.clone()));
                installer || self.config.chain.checks.contains(&p.name)
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        if !self.config.chain.bundled_plugins {
            let names: Vec<&str> = wanted.iter().map(|p| p.name.as_str()).collect();
            info!(plugins = ?names, "the bundle brings plugins but [chain] bundled-plugins is off; using the device's own");
            return Ok(Vec::new());
        }
        let target = plugin::precompiled::native_target();
        if !cfg!(feature = "compiler")
            && let Some(p) = wanted.iter().find(|p| p.precompiled_for(target).is_none())
        {
            return Err(InstallError::NoPrecompiledForm {
                plugin: p.name.clone(),
                target: target.to_string(),
            });
        }
        let wanted: Vec<String> = wanted.iter().map(|p| p.name.clone()).collect();
        let dir = self.bundled_dir(manifest_sha256);
        let saving = |name: &str, source: std::io::Error| InstallError::SaveBundledPlugin {
            plugin: name.to_string(),
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| saving("plugins", e))?;
        let mut saved = Vec::new();
        while let Some((info, bytes)) = reader.next_plugin()? {
            if !wanted.contains(&info.name) {
                continue;
            }
            let mut plugin = BundledPlugin {
                name: info.name.clone(),
                path: dir.join(format!("{}.wasm", info.name)),
                precompiled: None,
            };
            crate::fsutil::atomic_write(&plugin.path, &bytes).map_err(|e| saving(&info.name, e))?;
            let artifact = plugin.precompiled_path();
            let mut tmp =
                tempfile::NamedTempFile::new_in(&dir).map_err(|e| saving(&info.name, e))?;
            let precompiled = reader.read_precompiled(target, tmp.as_file_mut())?;
            plugin.precompiled = precompiled.map(|p| p.sha256);
            match plugin.precompiled {
                Some(_) => {
                    crate::fsutil::persist(tmp, &artifact).map_err(|e| saving(&info.name, e))?
                }
                None => match std::fs::remove_file(&artifact) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(saving(&info.name, e));
                    }
                    _ => {}
                },
            }
            crate::fsutil::sync_dir(&dir).map_err(|e| saving(&info.name, e))?;
            info!(plugin = %plugin.name, precompiled = plugin.precompiled.is_some(), "using the plugin the bundle brought");
            self.plugins.use_bundled(&plugin);
            saved.push(plugin);
        }
        self.forget_bundled_except(&dir);
        Ok(saved)
    }

    /// Where the plugins of the bundle with this manifest are saved: one folder per bundle, so
    /// that a bundle that is refused cannot overwrite what a pending update uses.
    pub(super) fn bundled_dir(&self, manifest_sha256: &Sha256Hex) -> std::path::PathBuf {
        let id = manifest_sha256.to_string();
        self.config.bundled_plugins_dir().join(&id[..16])
    }

    /// Removes the saved plugins of bundles other than `keep` and the pending update's.
    pub(super) fn forget_bundled_except(&self, keep: &std::path::Path) {
        let pending = self
            .state
            .update
            .as_ref()
            .map(|u| self.bundled_dir(&u.manifest_sha256));
        let root = self.config.bundled_plugins_dir();
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir()
                && path != keep
                && Some(&path) != pending.as_ref()
                && let Err(e) = std::fs::remove_dir_all(&path)
            {
                warn!(path = %path.display(), "cannot remove old bundled plugins: {e}");
            }
        }
    }
}
