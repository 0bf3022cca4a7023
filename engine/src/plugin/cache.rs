//! The on-disk cache of components this engine compiled (the full build only: the device build
//! cannot compile, and loads precompiled forms instead).

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

/// Compiled components on disk, one file per component and engine:
/// `<sha256 of the component>-<engine compatibility hash>.cwasm`. Each file is wasmtime's
/// serialized artifact followed by the sha256 of that artifact, checked before every load, so
/// that a file damaged on disk is compiled again instead of executed.
pub(super) struct Cache {
    dir: PathBuf,
    /// The first 16 hex digits of the sha256 of `Engine::precompile_compatibility_hash`: a new
    /// wasmtime or other engine settings never load an old artifact.
    engine_key: String,
}

const CHECKSUM_LEN: usize = 32;

impl Cache {
    /// Opens (creating, mode 0700) the cache directory. It must belong to the user running
    /// Airlock and be writable by nobody else: what it holds is executed as native code.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, PluginError> {
        let err = |reason: String| PluginError::Cache {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| err(format!("cannot create it: {e}")))?;
        }
        let meta = fs::metadata(dir).map_err(|e| err(e.to_string()))?;
        if !meta.is_dir() {
            return Err(err("it is not a directory".into()));
        }
        // Safety: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(err(format!(
                "it belongs to uid {}, not to the user running airlock (uid {euid}); chown it",
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(err(format!(
                "it is writable by other users (mode {:o}); chmod 700 it",
                meta.permissions().mode() & 0o7777
            )));
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Cache {
            dir: dir.to_path_buf(),
            engine_key,
        })
    }

    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached component at `path`, if there is a sound one. A damaged or incompatible file
    /// is removed (and compiled again by the caller).
    pub fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read cached plugin: {e}");
                return None;
            }
        };
        let Some(split) = data.len().checked_sub(CHECKSUM_LEN) else {
            self.discard(path, "too short");
            return None;
        };
        let (artifact, checksum) = data.split_at(split);
        if Sha256::digest(artifact).as_slice() != checksum {
            self.discard(path, "checksum mismatch");
            return None;
        }
        // Safety: deserializing runs native code the file describes, so the file must be one
        // that wasmtime produced and nobody altered. It is: the cache directory belongs to us
        // and no other user may write to it (checked in `open`); we only write files there
        // from `Engine::precompile_component`, atomically (temp + rename); the name binds the
        // component's sha256 and this engine's compatibility hash; and the trailing checksum
        // just matched, so a torn or bit-rotten file is never loaded. Wasmtime checks its own
        // header (version, target, settings) on top.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(e) => {
                self.discard(path, &format!("{e}"));
                None
            }
        }
    }

    fn discard(&self, path: &Path, why: &str) {
        tracing::warn!(path = %path.display(), "discarding cached plugin ({why})");
        let _ = fs::remove_file(path);
    }

    /// Writes `artifact` (plus its checksum) to `path`, durably ([`crate::fsutil::persist`]).
    pub fn store(&self, path: &Path, artifact: &[u8]) -> Result<(), PluginError> {
        let err = |e: std::io::Error| PluginError::Cache {
            path: path.to_path_buf(),
            reason: format!("cannot write: {e}"),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".cwasm-")
            .tempfile_in(&self.dir)
            .map_err(err)?;
        tmp.write_all(artifact).map_err(err)?;
        tmp.write_all(&Sha256::digest(artifact)).map_err(err)?;
        crate::fsutil::persist(tmp, path).map_err(err)
    }
}

/// Feeds `Hash` output into sha256, so that the engine key is stable across processes (std's
/// `DefaultHasher` makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
