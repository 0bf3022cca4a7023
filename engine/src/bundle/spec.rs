//! The bundle description (`bundle.toml`) a vendor writes to build a bundle:
//!
//! ```toml
//! name = "acme-os"
//! version = "1.2.0"
//! compatible = ["acme-gateway-v2"]
//! expires = "2027-06-30T00:00:00Z"   # optional
//!
//! [[payload]]
//! name = "rootfs"
//! file = "build/rootfs.ext4"        # relative to this file
//! slot = "rootfs"                    # or: installer = "archive-installer"
//! compression = "zstd"               # optional: "zstd" (default) or "none"
//!
//! [[plugin]]                         # optional: plugins shipped inside the bundle
//! name = "health"
//! file = "plugins/health.wasm"
//! world = "check"
//! precompile = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]   # optional
//! ```
//!
//! `precompile` lists the targets to ship precompiled forms for (`armv7-unknown-linux-gnueabihf`
//! or `pulley32` for 32-bit ARM): a device build runs only those. `airlock bundle create`
//! compiles them, so it must be the full build.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::BundleError;
use super::manifest::{Compression, Target, check_name};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSpec {
    pub name: String,
    pub version: semver::Version,
    #[serde(default)]
    pub description: Option<String>,
    pub compatible: Vec<String>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default, rename = "payload")]
    pub payloads: Vec<PayloadSpec>,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSpec {
    pub name: String,
    pub file: PathBuf,
    #[serde(default)]
    pub slot: Option<String>,
    #[serde(default)]
    pub installer: Option<String>,
    #[serde(default)]
    pub compression: Option<Compression>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    pub file: PathBuf,
    pub world: String,
    /// Targets to ship precompiled forms for.
    #[serde(default)]
    pub precompile: Vec<String>,
    /// The forms made for `precompile`, filled in by whoever compiles them before
    /// [`crate::bundle::create_bundle`].
    #[serde(skip)]
    pub precompiled: Vec<PrecompiledFile>,
}

/// A precompiled form of a plugin, ready to go into a bundle.
#[derive(Debug, Clone)]
pub struct PrecompiledFile {
    /// The target it runs on, as devices name it (`x86_64-unknown-linux-gnu`, `pulley32`, …).
    pub target: String,
    pub file: PathBuf,
}

impl BundleSpec {
    /// Reads a bundle description; file paths in it become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let spec_err = |reason: String| BundleError::Spec {
            path: path.display().to_string(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| spec_err(format!("cannot read it: {e}")))?;
        let mut spec: BundleSpec = toml::from_str(&text).map_err(|e| spec_err(e.to_string()))?;
        let base = crate::fsutil::parent_dir(path);
        for p in &mut spec.payloads {
            p.file = base.join(&p.file);
        }
        for p in &mut spec.plugins {
            p.file = base.join(&p.file);
        }
        spec.validate().map_err(|e| spec_err(e.to_string()))?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), BundleError> {
        check_name("bundle name", &self.name)?;
        if self.payloads.is_empty() {
            return Err(BundleError::invalid(
                "no [[payload]] given; a bundle needs at least one",
            ));
        }
        for p in &self.payloads {
            p.target()?;
        }
        Ok(())
    }
}

impl PayloadSpec {
    pub fn target(&self) -> Result<Target, BundleError> {
        match (&self.slot, &self.installer) {
            (Some(s), None) => Ok(Target::Slot(s.clone())),
            (None, Some(i)) => Ok(Target::Installer(i.clone())),
            _ => Err(BundleError::invalid(format!(
                "payload {:?} must name exactly one of `slot` (a slot class such as \"rootfs\") or `installer` (a plugin)",
                self.name
            ))),
        }
    }
}
