//! The one wasmtime `Engine` of the process, its epoch ticker, and the on-disk cache of compiled
//! components.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::PluginError;
use crate::config::DEFAULT_MEMORY;

/// How often the ticker advances the epoch, i.e. the resolution of plugin timeouts.
pub(super) const TICK: Duration = Duration::from_millis(10);
/// The most wasm stack a call may use.
const MAX_WASM_STACK: usize = 512 << 10;
/// Address space reserved per linear memory up front, and added when one grows past it.
/// Wasmtime's default reserves 4 GiB per memory, which small devices cannot spare; a memory
/// larger than this is moved as it grows (capped by the plugin's `memory` anyway).
const MEMORY_RESERVATION: u64 = DEFAULT_MEMORY.bytes();
const MEMORY_RESERVATION_FOR_GROWTH: u64 = 16 << 20;

/// The engine settings every compiled artifact depends on. Precompiling for another target
/// uses the same settings, so that the device's engine accepts what the build machine made.
fn engine_config(target: Option<&str>) -> Result<Config, PluginError> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .memory_reservation(MEMORY_RESERVATION)
        .memory_reservation_for_growth(MEMORY_RESERVATION_FOR_GROWTH)
        .wasm_component_model(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    if let Some(target) = target {
        config
            .target(target)
            .map_err(|e| PluginError::Precompile(format!("unsupported target {target}: {e}")))?;
    }
    Ok(config)
}

/// The process's wasmtime engine, with the ticker that drives its epoch.
pub(super) struct Runtime {
    pub engine: Engine,
    pub ticker: Ticker,
    pub cache: Cache,
    /// How many components this runtime compiled (a warm load compiles none).
    pub compilations: AtomicU64,
}

impl Runtime {
    pub fn new(cache_dir: &Path) -> Result<Self, PluginError> {
        let engine = Engine::new(&engine_config(None)?)
            .map_err(|e| PluginError::Host(format!("wasmtime refused its configuration: {e}")))?;
        let cache = Cache::open(cache_dir, &engine)?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Runtime {
            engine,
            ticker,
            cache,
            compilations: AtomicU64::new(0),
        })
    }

    /// The compiled form of `bytes` (whose sha256 is `sha256`), from the cache or compiled now
    /// and cached.
    pub fn component(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Component, PluginError> {
        let component = self.load_or_compile(name, sha256, bytes)?;
        prepare_memory_images(name, &component);
        Ok(component)
    }

    fn load_or_compile(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Component, PluginError> {
        let path = self.cache.path_for(sha256);
        if let Some(component) = self.cache.load(&self.engine, &path) {
            tracing::debug!(plugin = name, path = %path.display(), "plugin loaded from cache");
            return Ok(component);
        }
        let started = std::time::Instant::now();
        let artifact = self.compile(name, bytes)?;
        tracing::info!(
            plugin = name,
            elapsed = ?started.elapsed(),
            "plugin compiled"
        );
        if let Err(e) = self.cache.store(&path, &artifact) {
            // A read-only or full disk costs a compilation per load, nothing more.
            tracing::warn!(
                plugin = name,
                "{e}; the plugin will be compiled again next time"
            );
        }
        // Safety: `artifact` was produced just now by this very engine.
        unsafe { Component::deserialize(&self.engine, &artifact) }.map_err(|e| {
            PluginError::Compile {
                name: name.to_string(),
                reason: format!("{e:#}"),
            }
        })
    }

    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, PluginError> {
        self.compilations.fetch_add(1, Ordering::Relaxed);
        self.engine
            .precompile_component(bytes)
            .map_err(|e| PluginError::Compile {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })
    }

    /// AOT-compiles `bytes` for `target` (a target triple), with the settings of this engine.
    pub fn precompile(&self, bytes: &[u8], target: Option<&str>) -> Result<Vec<u8>, PluginError> {
        match target {
            None => {
                let artifact = self
                    .compile("(precompile)", bytes)
                    .map_err(|e| PluginError::Precompile(e.to_string()))?;
                let path = self.cache.path_for(&sha256_hex(bytes));
                if let Err(e) = self.cache.store(&path, &artifact) {
                    tracing::warn!("{e}");
                }
                Ok(artifact)
            }
            Some(target) => {
                let engine = Engine::new(&engine_config(Some(target))?).map_err(|e| {
                    PluginError::Precompile(format!(
                        "cannot compile for {target}: {e} (this build compiles for x86_64 and \
                         aarch64)"
                    ))
                })?;
                engine
                    .precompile_component(bytes)
                    .map_err(|e| PluginError::Precompile(format!("{e:#}")))
            }
        }
    }
}

/// Attempts at creating a component's copy-on-write memory images, and the pause after the
/// first failed one (doubled after each).
const MEMORY_IMAGE_ATTEMPTS: u32 = 5;
const MEMORY_IMAGE_RETRY: Duration = Duration::from_millis(10);

/// Creates the copy-on-write images of the component's initial memories now, at load, rather
/// than in its first call. Each image is a sealed memfd holding the initial heap (megabytes
/// for a Python or JavaScript plugin, whose interpreter comes pre-initialised); instances map
/// it copy-on-write, which keeps a warm call at milliseconds. Linux refuses to seal a memfd
/// (EBUSY) while something else holds a transient reference to one of its pages (page
/// migration, memory monitoring), so a refusal is tried again after a pause. Should it persist,
/// the first instantiation tries once more, and a failure there fails that call like a trap.
fn prepare_memory_images(name: &str, component: &Component) {
    let mut pause = MEMORY_IMAGE_RETRY;
    for attempt in 1..=MEMORY_IMAGE_ATTEMPTS {
        match component.initialize_copy_on_write_image() {
            Ok(()) => return,
            Err(e) if attempt < MEMORY_IMAGE_ATTEMPTS => {
                tracing::debug!(
                    plugin = name,
                    attempt,
                    "memory images not ready ({e:#}); retrying"
                );
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(e) => tracing::warn!(
                plugin = name,
                "cannot prepare the plugin's memory images ({e:#}); its first call will try again"
            ),
        }
    }
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

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
    fn open(dir: &Path, engine: &Engine) -> Result<Self, PluginError> {
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
    fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
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

    /// Writes `artifact` (plus its checksum) to `path`: temp file, fsync, rename, fsync dir.
    fn store(&self, path: &Path, artifact: &[u8]) -> Result<(), PluginError> {
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
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        crate::fsutil::sync_dir(&self.dir).map_err(err)
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

/// Advances the engine's epoch every [`TICK`] while at least one call runs, and sleeps
/// otherwise (an idle daemon should not wake up a hundred times a second).
pub(super) struct Ticker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

struct TickerShared {
    state: Mutex<TickerState>,
    wake: Condvar,
}

#[derive(Default)]
struct TickerState {
    active: usize,
    stop: bool,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, PluginError> {
        let shared = Arc::new(TickerShared {
            state: Mutex::new(TickerState::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                loop {
                    {
                        let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
                        while st.active == 0 && !st.stop {
                            st = s.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        if st.stop {
                            return;
                        }
                    }
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Host(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// Keeps the ticker running until the guard is dropped.
    pub fn active(&self) -> ActiveCall<'_> {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.active += 1;
        self.shared.wake.notify_all();
        ActiveCall(self)
    }
}

pub(super) struct ActiveCall<'a>(&'a Ticker);

impl Drop for ActiveCall<'_> {
    fn drop(&mut self) {
        let mut st = self
            .0
            .shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        st.active = st.active.saturating_sub(1);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            st.stop = true;
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
