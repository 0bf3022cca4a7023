//! The plugin host: loads WebAssembly components that implement a world of `airlock:plugin`
//! (`wit/`), and runs them in a sandbox, one fresh instance per call.
//!
//! ```text
//! PluginHost::new(cache_dir)       one per process: the wasmtime Engine, its epoch ticker,
//!                                  the linkers of every served WIT version, the AOT cache
//!   .load(name, &PluginConfig)     read → inspect (world, WIT version) → compile or load the
//!                                  cached artifact → link (fails here if it imports what we
//!                                  do not offer) → Plugin
//!   .run_hook / run_check /        a fresh Store per call: memory cap, wall-clock deadline,
//!    run_install / run_commit /    WASI without ambient authority, captured stdout/stderr;
//!    run_rollback                  whatever stops the plugin becomes a PluginError
//! ```
//!
//! Every wasmtime type stays inside this module; callers see only the types below. Modules:
//! `engine` (Engine, ticker, where components come from), `cache` (what the full build
//! compiled), `precompiled` (precompiled forms and the digest list that vouches for them),
//! `sandbox` (one call's Store and limits, error translation), `host` and `probes` (the host
//! interfaces), `bindings` (the WIT worlds), `context` (what a plugin is told and answers, and
//! its WIT form), `inspect` (what a component is, without compiling it). What needs no wasmtime
//! lives outside and is re-exported here: [`PluginConfig`] (the `[plugins.NAME]` table, in
//! [`crate::config`]) and [`World`] and [`Stage`] (in [`crate::chain`]), so that the
//! configuration parses in a build without the `device` feature.

mod bindings;
#[cfg(feature = "compiler")]
mod cache;
mod context;
mod engine;
mod error;
mod host;
mod inspect;
mod memo;
pub mod precompiled;
mod probes;
mod sandbox;
// They build their components from WAT, so they need the compiler.
#[cfg(all(test, feature = "compiler"))]
mod tests;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmtime::component::{Component, HasSelf, Linker};

pub use crate::chain::{Stage, World};
pub use crate::config::{ByteSize, DEFAULT_MEMORY, DEFAULT_TIMEOUT, DirGrant, PluginConfig};
pub use context::{CheckVerdict, HookVerdict, PayloadInfo, PluginContext, Release};
pub use error::PluginError;
pub use inspect::{PluginInfo, inspect};
use memo::Memo;
use precompiled::Vouchers;
pub use precompiled::{DIGEST_LIST, DigestList};

use bindings::v0_1;
use engine::Runtime;
use host::{PAYLOAD_QUEUE, PayloadFeed};
use sandbox::{Call, HostState, Sandbox};

/// The `airlock:plugin` versions this engine serves.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.1.0"];

/// Receives an installer's progress reports: plugin name, done, total.
pub type ProgressSink = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// A loaded, compiled and linked plugin, ready to run any number of times. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub name: String,
    pub world: World,
    /// The `airlock:plugin` version it was built for.
    pub wit_version: String,
    /// sha256 of the file it was loaded from (the component, or its precompiled form), 64 hex
    /// digits.
    pub sha256: String,
    inner: Arc<Loaded>,
}

struct Loaded {
    sandbox: Arc<Sandbox>,
    engine: wasmtime::Engine,
    pre: WorldPre,
}

#[derive(Clone)]
enum WorldPre {
    Hook(v0_1::hook::HookPre<HostState>),
    Check(v0_1::check::CheckPre<HostState>),
    Installer(v0_1::installer::InstallerPre<HostState>),
}

impl Plugin {
    /// Fails unless the plugin implements `expected`: for the caller to check a chain when it
    /// loads it rather than when the stage comes.
    pub fn expect_world(&self, expected: World) -> Result<(), PluginError> {
        if self.world == expected {
            Ok(())
        } else {
            Err(PluginError::WrongWorld {
                name: self.name.clone(),
                actual: self.world,
                expected,
            })
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("world", &self.world)
            .field("wit_version", &self.wit_version)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// The linkers of one WIT version: WASI plus that version's host interfaces, per world. Each
/// is built when a plugin of its world is first loaded: a process that runs only hooks never
/// pays for the other two.
struct Linkers {
    engine: wasmtime::Engine,
    hook: OnceLock<Linker<HostState>>,
    check: OnceLock<Linker<HostState>>,
    installer: OnceLock<Linker<HostState>>,
}

impl Linkers {
    fn v0_1(engine: &wasmtime::Engine) -> Self {
        Linkers {
            engine: engine.clone(),
            hook: OnceLock::new(),
            check: OnceLock::new(),
            installer: OnceLock::new(),
        }
    }

    fn for_world(&self, world: World) -> Result<&Linker<HostState>, PluginError> {
        let slot = match world {
            World::Hook => &self.hook,
            World::Check => &self.check,
            World::Installer => &self.installer,
        };
        if let Some(linker) = slot.get() {
            return Ok(linker);
        }
        let linker = self
            .build(world)
            .map_err(|e| PluginError::Host(format!("cannot link the host interfaces: {e:#}")))?;
        Ok(slot.get_or_init(|| linker))
    }

    fn build(&self, world: World) -> wasmtime::Result<Linker<HostState>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        match world {
            World::Hook => v0_1::hook::Hook::add_to_linker::<HostState, HasSelf<HostState>>(
                &mut linker,
                |s| s,
            )?,
            World::Check => v0_1::check::Check::add_to_linker::<HostState, HasSelf<HostState>>(
                &mut linker,
                |s| s,
            )?,
            World::Installer => v0_1::installer::Installer::add_to_linker::<
                HostState,
                HasSelf<HostState>,
            >(&mut linker, |s| s)?,
        }
        Ok(linker)
    }
}

/// The plugin host of the process. See the module docs.
pub struct PluginHost {
    rt: Runtime,
    v0_1: Linkers,
    progress: Option<ProgressSink>,
    /// What vouches for precompiled plugins: the digest list, and bundle manifests.
    vouchers: Vouchers,
    /// The folder the configuration names for precompiled forms, looked at first.
    precompiled_dir: Option<PathBuf>,
    /// Artifacts already verified by this process, with their sha256: ten plugin names using
    /// one file hash it once (the component loaded from it is shared too).
    verified: Memo<PathBuf, String>,
    /// Components linked against a world, by sha256: linking type-checks every import, so
    /// ten plugin names using one file link it once.
    linked: Memo<(String, World), WorldPre>,
}

impl PluginHost {
    /// Starts the engine and its ticker; compiled plugins are cached in `cache_dir` (created
    /// mode 0700; it must belong to this user and be writable by nobody else).
    pub fn new(cache_dir: &Path) -> Result<Self, PluginError> {
        let rt = Runtime::new(cache_dir)?;
        let v0_1 = Linkers::v0_1(&rt.engine);
        Ok(PluginHost {
            rt,
            v0_1,
            progress: None,
            vouchers: Vouchers {
                list_path: PathBuf::from(DIGEST_LIST),
                ..Vouchers::default()
            },
            precompiled_dir: None,
            verified: Default::default(),
            linked: Default::default(),
        })
    }

    /// Trusts the precompiled plugins whose sha256 the digest list at `path` holds (see
    /// [`precompiled`]). Without a list, or when `path` does not exist, no precompiled plugin
    /// is loaded. Fails when the list is there but others could have written it, or it does
    /// not parse.
    pub fn trust_digest_list(&mut self, path: &Path) -> Result<(), PluginError> {
        self.vouchers.list = DigestList::load(path)?;
        self.vouchers.list_path = path.to_path_buf();
        Ok(())
    }

    /// Trusts the precompiled artifact at `path` if its sha256 is `sha256` (hex): what a
    /// verified bundle manifest listed for a plugin the bundle brought.
    pub fn trust_bundled_artifact(&mut self, path: PathBuf, sha256: String) {
        self.verified.remove(&path);
        self.vouchers.bundled.insert(path, sha256);
    }

    /// Looks for precompiled forms in `dir` (`[device] precompiled_dir`) when there is none
    /// beside a `.wasm`.
    pub fn set_precompiled_dir(&mut self, dir: Option<PathBuf>) {
        self.precompiled_dir = dir;
    }

    /// Where the precompiled form of `wasm` for `target` is: beside the `.wasm`, else in
    /// `folder` when one is given (where an error then says to put it).
    fn artifact_for(wasm: &Path, target: &str, folder: Option<&Path>) -> PathBuf {
        let beside = precompiled::artifact_path(wasm, target);
        match folder {
            Some(dir) if !beside.exists() => dir.join(precompiled::artifact_name(wasm, target)),
            _ => beside,
        }
    }

    /// Where installers' `progress.report` calls go (besides a trace event).
    pub fn set_progress_sink(&mut self, sink: ProgressSink) {
        self.progress = Some(sink);
    }

    /// Loads the plugin `config.path` (an absolute path) names: its precompiled form for this
    /// device when one lies beside it or in the configured folder (which must pass the digest
    /// list, see [`precompiled`]), else the component itself, as [`PluginHost::load_bytes`].
    /// A device build, which cannot compile, requires the precompiled form.
    pub fn load(&self, name: &str, config: &PluginConfig) -> Result<Plugin, PluginError> {
        self.load_from(name, config, self.precompiled_dir.as_deref())
    }

    /// Loads a plugin a bundle brought: as [`PluginHost::load`], but its precompiled form is
    /// only ever the one saved beside it, never one of the device's own of the same name.
    pub fn load_bundled(&self, name: &str, config: &PluginConfig) -> Result<Plugin, PluginError> {
        self.load_from(name, config, None)
    }

    fn load_from(
        &self,
        name: &str,
        config: &PluginConfig,
        folder: Option<&Path>,
    ) -> Result<Plugin, PluginError> {
        let target = precompiled::native_target();
        let artifact = Self::artifact_for(&config.path, target, folder);
        if artifact.exists() {
            return self.load_precompiled(name, config, &artifact);
        }
        let unreadable = |source| PluginError::Read {
            name: name.to_string(),
            path: config.path.clone(),
            source,
        };
        if !cfg!(feature = "compiler") {
            // Neither form: the path is wrong, which is what to say.
            std::fs::metadata(&config.path).map_err(unreadable)?;
            return Err(PluginError::NotPrecompiled {
                name: name.to_string(),
                target,
                wasm: config.path.clone(),
                artifact,
                list: self.vouchers.list_path.clone(),
            });
        }
        let bytes = std::fs::read(&config.path).map_err(unreadable)?;
        self.load_bytes(name, &bytes, config)
    }

    /// Validates the component (a component, which world, which `airlock:plugin` version),
    /// compiles it or loads it from the cache, and links it against the sandbox.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        config: &PluginConfig,
    ) -> Result<Plugin, PluginError> {
        let sandbox = Arc::new(Sandbox::new(name, config)?);
        let info = inspect::inspect_named(name, bytes)?;
        let (world, wit_version) = Self::world_of(name, info)?;
        let sha256 = engine::sha256_hex(bytes);
        let component = self.rt.component(name, &sha256, bytes)?;
        self.ready(name, sandbox, world, wit_version, sha256, &component)
    }

    /// Loads the precompiled `artifact`, once the digest list vouched for it.
    fn load_precompiled(
        &self,
        name: &str,
        config: &PluginConfig,
        artifact: &Path,
    ) -> Result<Plugin, PluginError> {
        let sandbox = Arc::new(Sandbox::new(name, config)?);
        let digest = self
            .verified
            .get_or_try_insert(artifact.to_path_buf(), || {
                precompiled::verify(name, artifact, &self.vouchers)
            })?;
        let component = self.rt.precompiled_component(name, artifact, &digest)?;
        let ty = component.component_type();
        let names = |items: &mut dyn Iterator<Item = &str>| items.map(String::from).collect();
        let info = inspect::shape(
            name,
            names(&mut ty.imports(&self.rt.engine).map(|(n, _)| n)),
            names(&mut ty.exports(&self.rt.engine).map(|(n, _)| n)),
            0,
        )?;
        let (world, wit_version) = Self::world_of(name, info)?;
        tracing::info!(plugin = name, artifact = %artifact.display(), "using the precompiled form");
        self.ready(name, sandbox, world, wit_version, digest, &component)
    }

    /// The world and interface version of a component, if this engine can serve them.
    fn world_of(name: &str, info: PluginInfo) -> Result<(World, String), PluginError> {
        let invalid = |reason: String| PluginError::Invalid {
            name: name.to_string(),
            reason,
        };
        let world = info.world.ok_or_else(|| {
            invalid(format!(
                "it exports none of `run` (hook), `check` (check) or `install` (installer); \
                 its exports: [{}]",
                info.exports.join(", ")
            ))
        })?;
        let wit_version = info.wit_version.ok_or_else(|| {
            invalid(format!(
                "it imports nothing from {}, so it was not built against the plugin interface",
                inspect::PACKAGE
            ))
        })?;
        if !SUPPORTED_WIT_VERSIONS.contains(&wit_version.as_str()) {
            return Err(PluginError::UnsupportedVersion {
                name: name.to_string(),
                found: wit_version,
                supported: SUPPORTED_WIT_VERSIONS.join(", "),
            });
        }
        Ok((world, wit_version))
    }

    /// Links a loaded component against the sandbox: the plugin, ready to run.
    fn ready(
        &self,
        name: &str,
        sandbox: Arc<Sandbox>,
        world: World,
        wit_version: String,
        sha256: String,
        component: &Component,
    ) -> Result<Plugin, PluginError> {
        let pre = self.linked.get_or_try_insert((sha256.clone(), world), || {
            self.link(name, world, component)
        })?;
        tracing::debug!(plugin = name, %world, %wit_version, %sha256, "plugin loaded");
        Ok(Plugin {
            name: name.to_string(),
            world,
            wit_version,
            sha256,
            inner: Arc::new(Loaded {
                sandbox,
                engine: self.rt.engine.clone(),
                pre,
            }),
        })
    }

    fn link(
        &self,
        name: &str,
        world: World,
        component: &Component,
    ) -> Result<WorldPre, PluginError> {
        let pre = self
            .v0_1
            .for_world(world)?
            .instantiate_pre(component)
            .map_err(|e| PluginError::Link {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })?;
        let mismatch = |e: wasmtime::Error| PluginError::Invalid {
            name: name.to_string(),
            reason: format!(
                "its exports do not match the {world} world of airlock:plugin@0.1.0: {e:#}"
            ),
        };
        Ok(match world {
            World::Hook => WorldPre::Hook(v0_1::hook::HookPre::new(pre).map_err(mismatch)?),
            World::Check => WorldPre::Check(v0_1::check::CheckPre::new(pre).map_err(mismatch)?),
            World::Installer => {
                WorldPre::Installer(v0_1::installer::InstallerPre::new(pre).map_err(mismatch)?)
            }
        })
    }

    fn new_call(&self, plugin: &Plugin, payload: Option<PayloadFeed>) -> Result<Call, PluginError> {
        if !wasmtime::Engine::same(&plugin.inner.engine, &self.rt.engine) {
            return Err(PluginError::Host(format!(
                "plugin {} was loaded by another plugin host",
                plugin.name
            )));
        }
        Call::new(
            &self.rt.engine,
            plugin.inner.sandbox.clone(),
            payload,
            self.progress.clone(),
        )
    }

    fn wrong_world(plugin: &Plugin, expected: World) -> PluginError {
        PluginError::WrongWorld {
            name: plugin.name.clone(),
            actual: plugin.world,
            expected,
        }
    }

    /// Runs a hook plugin at `ctx.stage`.
    pub fn run_hook(
        &self,
        plugin: &Plugin,
        ctx: &PluginContext,
    ) -> Result<HookVerdict, PluginError> {
        let WorldPre::Hook(pre) = &plugin.inner.pre else {
            return Err(Self::wrong_world(plugin, World::Hook));
        };
        let _ticking = self.rt.ticker.active();
        let mut call = self.new_call(plugin, None)?;
        let wit = ctx.to_wit();
        let result = pre
            .instantiate(&mut call.store)
            .and_then(|hook| hook.call_run(&mut call.store, &wit));
        Ok(match call.finish(result)? {
            v0_1::types::HookResult::Proceed => HookVerdict::Proceed,
            v0_1::types::HookResult::Abort(reason) => HookVerdict::Abort(reason_text(&reason)),
            v0_1::types::HookResult::RetryLater(secs) => HookVerdict::RetryLater(secs),
        })
    }

    /// Runs a check plugin on a trial boot.
    pub fn run_check(
        &self,
        plugin: &Plugin,
        ctx: &PluginContext,
    ) -> Result<CheckVerdict, PluginError> {
        let WorldPre::Check(pre) = &plugin.inner.pre else {
            return Err(Self::wrong_world(plugin, World::Check));
        };
        let _ticking = self.rt.ticker.active();
        let mut call = self.new_call(plugin, None)?;
        let wit = ctx.to_wit();
        let result = pre
            .instantiate(&mut call.store)
            .and_then(|check| check.call_check(&mut call.store, &wit));
        Ok(match call.finish(result)? {
            v0_1::types::CheckResult::Pass => CheckVerdict::Pass,
            v0_1::types::CheckResult::Fail(reason) => CheckVerdict::Fail(reason_text(&reason)),
        })
    }

    /// Runs an installer's `install`, streaming `payload` (already verified) to its
    /// `payload.read`. A reader thread fills a queue of at most [`PAYLOAD_QUEUE`] chunks of
    /// 64 KiB, so memory stays bounded whatever the payload's size. The plugin's timeout
    /// bounds how long it may go without reading, not the whole installation. The plugin must
    /// read the payload to its end.
    pub fn run_install(
        &self,
        plugin: &Plugin,
        ctx: &PluginContext,
        payload: &mut (dyn Read + Send),
    ) -> Result<(), PluginError> {
        let WorldPre::Installer(pre) = &plugin.inner.pre else {
            return Err(Self::wrong_world(plugin, World::Installer));
        };
        let payload_name = ctx
            .payload
            .as_ref()
            .map_or_else(|| "(unnamed)".to_string(), |p| p.name.clone());
        let _ticking = self.rt.ticker.active();
        let (tx, rx) = std::sync::mpsc::sync_channel(PAYLOAD_QUEUE);
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("airlock-payload".into())
                .spawn_scoped(scope, move || host::pump(payload, tx))
                .map_err(|e| PluginError::Host(format!("cannot start the payload reader: {e}")))?;
            // The store (and with it the receiving end) is dropped before the scope ends, which
            // stops the reader if the plugin gave up early.
            let mut call = self.new_call(plugin, Some(PayloadFeed::new(rx)))?;
            let wit = ctx.to_wit();
            let result = pre
                .instantiate(&mut call.store)
                .and_then(|inst| inst.call_install(&mut call.store, &wit));
            let feed = call.store.data_mut().payload.take();
            let payload_err = |reason: String| PluginError::Payload {
                name: plugin.name.clone(),
                payload: payload_name.clone(),
                reason,
            };
            let feed_error = feed.as_ref().and_then(|f| f.error.clone());
            let returned = call.finish(result);
            // When the stream failed, that is the cause, whatever the plugin made of it.
            if let Some(e) = feed_error {
                return Err(payload_err(e));
            }
            returned?.map_err(|message| PluginError::Failed {
                name: plugin.name.clone(),
                action: "install",
                message: reason_text(&message),
            })?;
            // The plugin succeeded: it must have consumed the whole payload.
            feed.map_or(Ok(()), |feed| feed.finish().map_err(payload_err))
        })
    }

    /// Runs an installer's `commit`: the trial passed, make the installation permanent.
    pub fn run_commit(&self, plugin: &Plugin, ctx: &PluginContext) -> Result<(), PluginError> {
        self.run_installer_action(plugin, ctx, "commit")
    }

    /// Runs an installer's `rollback`: undo what `install` did.
    pub fn run_rollback(&self, plugin: &Plugin, ctx: &PluginContext) -> Result<(), PluginError> {
        self.run_installer_action(plugin, ctx, "roll back")
    }

    fn run_installer_action(
        &self,
        plugin: &Plugin,
        ctx: &PluginContext,
        action: &'static str,
    ) -> Result<(), PluginError> {
        let WorldPre::Installer(pre) = &plugin.inner.pre else {
            return Err(Self::wrong_world(plugin, World::Installer));
        };
        let _ticking = self.rt.ticker.active();
        let mut call = self.new_call(plugin, None)?;
        let wit = ctx.to_wit();
        let result = pre.instantiate(&mut call.store).and_then(|inst| {
            if action == "commit" {
                inst.call_commit(&mut call.store, &wit)
            } else {
                inst.call_rollback(&mut call.store, &wit)
            }
        });
        call.finish(result)?.map_err(|message| PluginError::Failed {
            name: plugin.name.clone(),
            action,
            message: reason_text(&message),
        })
    }

    /// AOT-compiles a component with this engine's settings: for this machine (`None`, and the
    /// artifact is also put in the cache) or for another target triple such as
    /// `aarch64-unknown-linux-gnu`. Returns wasmtime's serialized artifact.
    pub fn precompile(&self, bytes: &[u8], target: Option<&str>) -> Result<Vec<u8>, PluginError> {
        inspect::inspect_named("(precompile)", bytes)?;
        self.rt.precompile(bytes, target)
    }

    /// How many components this host compiled (a warm load compiles none).
    #[doc(hidden)]
    pub fn compilations(&self) -> u64 {
        self.rt
            .compilations
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A reason a plugin gave, fit for logs and the state journal.
fn reason_text(reason: &str) -> String {
    let one_line: Vec<&str> = reason.lines().collect();
    sandbox::sanitize(&one_line.join(" / "), 1024)
}
