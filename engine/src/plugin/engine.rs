//! The one wasmtime `Engine` of the process, its epoch ticker, and where its components come
//! from: compiled (and cached, `cache`), or precompiled.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::PluginError;
#[cfg(feature = "compiler")]
use super::cache::Cache;
use super::memo::Memo;
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
        .wasm_component_model(true);
    // Not part of an artifact's compatibility (wasmtime ignores the optimisation level when it
    // loads one), so the device build, which has no compiler to set it on, loads the same files.
    #[cfg(feature = "compiler")]
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
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
    #[cfg(feature = "compiler")]
    cache: Cache,
    /// How many components this runtime compiled (a warm load compiles none).
    pub compilations: AtomicU64,
    /// Components loaded so far, by the sha256 of the file they came from (`wasm:…` for a
    /// component, `cwasm:…` for a precompiled form): plugin names that use the same file share
    /// one compiled component.
    loaded: Memo<String, Component>,
}

impl Runtime {
    /// Starts the engine and its ticker. The full build caches what it compiles in
    /// `cache_dir`; the device build compiles nothing, so it has no cache.
    pub fn new(cache_dir: &Path) -> Result<Self, PluginError> {
        let engine = Engine::new(&engine_config(None)?)
            .map_err(|e| PluginError::Host(format!("wasmtime refused its configuration: {e}")))?;
        #[cfg(feature = "compiler")]
        let cache = Cache::open(cache_dir, &engine)?;
        #[cfg(not(feature = "compiler"))]
        let _ = cache_dir;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Runtime {
            engine,
            ticker,
            #[cfg(feature = "compiler")]
            cache,
            compilations: AtomicU64::new(0),
            loaded: Memo::default(),
        })
    }

    /// The component loaded before from the file whose sha256 is `key`, or `load`'s, remembered.
    fn shared(
        &self,
        key: String,
        load: impl FnOnce() -> Result<Component, PluginError>,
    ) -> Result<Component, PluginError> {
        self.loaded.get_or_try_insert(key, load)
    }

    /// How many distinct components this runtime holds.
    #[cfg(all(test, feature = "compiler"))]
    pub fn loaded_components(&self) -> usize {
        self.loaded.len()
    }

    /// The precompiled artifact at `path`, whose sha256 `digest` the caller has checked against
    /// the digest list: memory-mapped, not copied.
    pub fn precompiled_component(
        &self,
        name: &str,
        path: &Path,
        digest: &str,
    ) -> Result<Component, PluginError> {
        self.shared(format!("cwasm:{digest}"), || {
            // Safety: this runs the native code the file holds, so it must be code wasmtime
            // made and nobody altered. The caller hashed the file and found the digest in the
            // list the image build wrote (`precompiled::verify`), and neither the file nor its
            // folder can be changed by anyone but root or us, so the bytes mapped here are the
            // bytes that were hashed. Wasmtime checks its header (version, target, settings)
            // before it maps any code.
            let component =
                unsafe { Component::deserialize_file(&self.engine, path) }.map_err(|e| {
                    PluginError::IncompatibleArtifact {
                        name: name.to_string(),
                        path: path.to_path_buf(),
                        target: super::precompiled::native_target(),
                        reason: format!("{e:#}"),
                    }
                })?;
            tracing::debug!(plugin = name, path = %path.display(), "precompiled plugin loaded");
            prepare_memory_images(name, &component);
            Ok(component)
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
        self.shared(format!("wasm:{sha256}"), || {
            let component = self.load_or_compile(name, sha256, bytes)?;
            prepare_memory_images(name, &component);
            Ok(component)
        })
    }

    #[cfg(not(feature = "compiler"))]
    fn load_or_compile(
        &self,
        name: &str,
        _sha256: &str,
        _bytes: &[u8],
    ) -> Result<Component, PluginError> {
        Err(PluginError::Compile {
            name: name.to_string(),
            reason: "this device build of airlock has no Wasm compiler; give it the plugin's \
                     precompiled form (`airlock plugin compile --target`)"
                .into(),
        })
    }

    #[cfg(feature = "compiler")]
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

    #[cfg(feature = "compiler")]
    fn compile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, PluginError> {
        self.compilations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.engine
            .precompile_component(bytes)
            .map_err(|e| PluginError::Compile {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })
    }

    /// AOT-compiles `bytes` for `target` (a target triple), with the settings of this engine.
    #[cfg(not(feature = "compiler"))]
    pub fn precompile(&self, _bytes: &[u8], _target: Option<&str>) -> Result<Vec<u8>, PluginError> {
        Err(PluginError::Precompile(
            "this is a device build of airlock, without a Wasm compiler; precompile plugins on \
             the build host with the full build"
                .into(),
        ))
    }

    /// AOT-compiles `bytes` for `target` (a target triple), with the settings of this engine.
    #[cfg(feature = "compiler")]
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
                let compiled_for = super::precompiled::compile_target(target);
                let engine = Engine::new(&engine_config(Some(compiled_for))?).map_err(|e| {
                    PluginError::Precompile(format!(
                        "cannot compile for {target}: {e}; the targets are {}",
                        super::precompiled::TARGETS
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
            .spawn(move || s.run(&engine))
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
        // Only an idle ticker waits for this; a running one ticks on by itself.
        if st.active == 1 {
            self.shared.wake.notify_all();
        }
        ActiveCall(self)
    }
}

impl TickerShared {
    /// The ticker thread: a tick every [`TICK`] while calls run. It waits on the condition
    /// variable rather than sleeping, so that stopping it (at the end of every process that
    /// ran a plugin) does not wait out the rest of a tick.
    fn run(&self, engine: &Engine) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next_tick = None;
        loop {
            if st.stop {
                return;
            }
            if st.active == 0 {
                next_tick = None;
                st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let now = Instant::now();
            let due = *next_tick.get_or_insert(now + TICK);
            if now >= due {
                engine.increment_epoch();
                next_tick = Some(now + TICK);
                continue;
            }
            st = self
                .wake
                .wait_timeout(st, due - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
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
