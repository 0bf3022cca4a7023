//! The action the daemon has in hand, kept in `<data_dir>/fleet/action.json` so that the result
//! of an update that spans a reboot (or a crash) still reaches the server: which action, which
//! bundle, and how far the daemon got with it.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::FleetError;
use crate::boot::Side;
use crate::install::record::Release;

/// How far the daemon got with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Not started: the server said not yet (download/update skip, maintenance window), or a
    /// hook asked to wait. Nothing was written; a cancel is honoured.
    Waiting,
    /// The install started and may have written to the inactive slots (a download broken
    /// off stays here and is resumed on a later cycle).
    Installing,
    /// Installed into the inactive slots; the trial boot decides.
    Installed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The server's action id.
    pub id: String,
    /// The `deploymentBase` link it came from.
    pub href: String,
    /// What the server calls the software (chunk name and version): for messages only, the
    /// bundle's own manifest is what counts.
    pub name: String,
    pub version: String,
    pub stage: Stage,
    /// The release the device installed, as its signed manifest says (set once installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// The boot slot written, when the update needs a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Side>,
    /// The device rebooted to try it: its outcome is the trial boot's health.
    #[serde(default)]
    pub rebooted: bool,
    /// The last thing said to the server while waiting, to say it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub said: Option<String>,
    /// Installs of it broken off by the network, in a row.
    #[serde(default)]
    pub attempts: u32,
    /// A hook asked to wait until this time (Unix seconds): no install attempt before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
}

impl Action {
    /// `acme-os 1.3.0`: the installed release once known, else the server's name for it.
    pub fn describe(&self) -> String {
        match &self.release {
            Some(r) => crate::install::describe(r),
            None => format!("{} {}", self.name, self.version),
        }
    }
}

/// A small JSON file in the fleet directory, written atomically.
pub struct JsonFile<T> {
    path: PathBuf,
    _kind: std::marker::PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> JsonFile<T> {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            _kind: std::marker::PhantomData,
        }
    }

    #[cfg(test)]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn load(&self) -> Result<Option<T>, FleetError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| FleetError::Corrupt {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FleetError::store(&self.path, e)),
        }
    }

    pub fn save(&self, value: &T) -> Result<(), FleetError> {
        let json = serde_json::to_vec_pretty(value)
            .map_err(|e| FleetError::store(&self.path, std::io::Error::other(e)))?;
        crate::fsutil::atomic_write(&self.path, &json).map_err(|e| FleetError::store(&self.path, e))
    }

    pub fn clear(&self) -> Result<(), FleetError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => crate::fsutil::sync_dir(crate::fsutil::parent_dir(&self.path))
                .map_err(|e| FleetError::store(&self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FleetError::store(&self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_survives_reopening_and_clearing_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let file = JsonFile::<Action>::new(dir.path().join("action.json"));
        assert_eq!(file.load().unwrap(), None);
        let action = Action {
            id: "8".into(),
            href: "http://h/deploymentBase/8?c=1".into(),
            name: "acme-os".into(),
            version: "1.3.0".into(),
            stage: Stage::Installed,
            release: Some(Release {
                bundle: "acme-os".into(),
                version: semver::Version::new(1, 3, 0),
            }),
            slot: Some(Side::B),
            rebooted: false,
            said: None,
            attempts: 0,
            retry_at: None,
        };
        file.save(&action).unwrap();
        let again = JsonFile::<Action>::new(dir.path().join("action.json"));
        assert_eq!(again.load().unwrap(), Some(action));
        again.clear().unwrap();
        again.clear().unwrap();
        assert_eq!(file.load().unwrap(), None);
        std::fs::write(file.path(), b"[").unwrap();
        assert!(file.load().unwrap_err().to_string().contains("action.json"));
    }
}
