//! Running the device's plugin chain from the state machine: hooks at each stage, checks on the
//! trial boot, installer plugins for their payloads. The plugin host is started only when the
//! chain names a plugin, and each plugin is loaded (from the compile cache) once per process.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::InstallError;
use super::record::{BundledPlugin, DeviceState, Release};
use crate::chain::Chain;
use crate::config::Config;
use crate::plugin::{
    self, CheckVerdict, HookVerdict, Plugin, PluginConfig, PluginContext, PluginHost, Stage, World,
};

/// What a stage's hooks decided, all of them together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Proceed,
    Abort { plugin: String, reason: String },
    RetryLater { plugin: String, seconds: u32 },
}

pub(crate) struct PluginRunner {
    host: Option<PluginHost>,
    cache_dir: PathBuf,
    /// The digest list that vouches for precompiled plugins, beside the configuration file.
    digest_list: PathBuf,
    /// `[device] precompiled_dir`.
    precompiled_dir: Option<PathBuf>,
    configs: BTreeMap<String, PluginConfig>,
    chain: Chain,
    /// Where plugins a bundle brought are saved, to be found again after the reboot.
    bundled_dir: PathBuf,
    loaded: BTreeMap<String, Plugin>,
    /// Plugins a bundle brought, saved under the data dir (only when the chain allows it).
    bundled: BTreeMap<String, PathBuf>,
    /// Their precompiled forms, with the sha256 the signed manifest listed for each.
    bundled_artifacts: BTreeMap<PathBuf, String>,
}

impl PluginRunner {
    pub fn new(config: &Config) -> Self {
        PluginRunner {
            host: None,
            cache_dir: config.plugin_cache_dir(),
            digest_list: config
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join(plugin::DIGEST_LIST),
            precompiled_dir: config.device.precompiled_dir.clone(),
            configs: config.plugins.clone(),
            chain: config.chain.clone(),
            bundled_dir: config.bundled_plugins_dir(),
            loaded: BTreeMap::new(),
            bundled: BTreeMap::new(),
            bundled_artifacts: BTreeMap::new(),
        }
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Uses a plugin the bundle brought (verified and saved) instead of the configured one,
    /// and trusts its precompiled form if it has the sha256 the manifest listed.
    pub fn use_bundled(&mut self, plugin: &BundledPlugin) {
        self.loaded.remove(&plugin.name);
        self.bundled
            .insert(plugin.name.clone(), plugin.path.clone());
        if let Some(sha256) = plugin.precompiled {
            let artifact = plugin.precompiled_path();
            if let Some(host) = &mut self.host {
                host.trust_bundled_artifact(artifact.clone(), sha256.to_string());
            }
            self.bundled_artifacts.insert(artifact, sha256.to_string());
        }
    }

    fn host(&mut self) -> Result<&PluginHost, InstallError> {
        let host = match self.host.take() {
            Some(host) => host,
            None => {
                let mut host = PluginHost::new(&self.cache_dir)?;
                host.trust_digest_list(&self.digest_list)?;
                host.set_precompiled_dir(self.precompiled_dir.clone());
                for (artifact, sha256) in &self.bundled_artifacts {
                    host.trust_bundled_artifact(artifact.clone(), sha256.clone());
                }
                host
            }
        };
        Ok(self.host.insert(host))
    }

    fn plugin(&mut self, name: &str, world: World) -> Result<Plugin, InstallError> {
        if let Some(p) = self.loaded.get(name) {
            return Ok(p.clone());
        }
        let mut config = self
            .configs
            .get(name)
            .cloned()
            .unwrap_or_else(|| PluginConfig::new(PathBuf::new()));
        let saved = self.bundled_dir.join(format!("{name}.wasm"));
        let bundled = if let Some(path) = self.bundled.get(name) {
            config.path = path.clone();
            true
        } else if world == World::Installer && self.chain.bundled_plugins && saved.exists() {
            config.path = saved;
            true
        } else if !self.configs.contains_key(name) {
            return Err(InstallError::PluginNotConfigured {
                plugin: name.to_string(),
            });
        } else {
            false
        };
        let host = self.host()?;
        let plugin = if bundled {
            host.load_bundled(name, &config)?
        } else {
            host.load(name, &config)?
        };
        plugin.expect_world(world)?;
        self.loaded.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// Loads every hook and check of the chain, and the installer plugins `installers` (those
    /// the bundle's payloads name), checking each implements the world it is configured for.
    /// Loading is all: nothing runs. Installers the chain lists but this bundle does not use
    /// are left alone, since a bundle may bring its own.
    pub fn preflight(&mut self, installers: &[&str]) -> Result<(), InstallError> {
        let chain = self.chain.clone();
        for (name, world) in chain.named() {
            if world != World::Installer || installers.contains(&name) {
                self.plugin(name, world)?;
            }
        }
        Ok(())
    }

    /// Runs the hooks of `stage` in order; the first that does not proceed decides. A hook
    /// that fails (traps, times out, is missing) aborts: a broken guard must not wave an update
    /// through.
    pub fn run_hooks(
        &mut self,
        stage: Stage,
        ctx: &PluginContext,
    ) -> Result<HookOutcome, InstallError> {
        let names = self.chain.hooks(stage).to_vec();
        let mut ctx = ctx.clone();
        ctx.stage = stage;
        for name in names {
            let verdict = self
                .plugin(&name, World::Hook)
                .and_then(|p| Ok(self.host()?.run_hook(&p, &ctx)?));
            let outcome = match verdict {
                Ok(HookVerdict::Proceed) => continue,
                Ok(HookVerdict::Abort(reason)) => HookOutcome::Abort {
                    plugin: name.clone(),
                    reason,
                },
                Ok(HookVerdict::RetryLater(seconds)) => HookOutcome::RetryLater {
                    plugin: name.clone(),
                    seconds,
                },
                Err(e) => HookOutcome::Abort {
                    plugin: name.clone(),
                    reason: format!("the hook failed: {e}"),
                },
            };
            info!(stage = %stage, plugin = %name, ?outcome, "hook decided");
            return Ok(outcome);
        }
        Ok(HookOutcome::Proceed)
    }

    /// Runs hooks whose answer cannot change anything any more (commit-leave, rollback-*,
    /// failure): they are told, and what they say is logged.
    pub fn notify(&mut self, stage: Stage, ctx: &PluginContext) {
        match self.run_hooks(stage, ctx) {
            Ok(HookOutcome::Proceed) => {}
            Ok(other) => {
                warn!(stage = %stage, ?other, "a hook answered at a stage where only proceeding is possible; ignored")
            }
            Err(e) => warn!(stage = %stage, "hooks could not run: {e}"),
        }
    }

    /// Runs every check; returns the first failure as (plugin, reason), or None when all pass.
    pub fn run_checks(
        &mut self,
        ctx: &PluginContext,
    ) -> Result<Option<(String, String)>, InstallError> {
        let mut ctx = ctx.clone();
        ctx.stage = Stage::Check;
        for name in self.chain.checks.clone() {
            let verdict = self
                .plugin(&name, World::Check)
                .and_then(|p| Ok(self.host()?.run_check(&p, &ctx)?));
            match verdict {
                Ok(CheckVerdict::Pass) => info!(plugin = %name, "check passed"),
                Ok(CheckVerdict::Fail(reason)) => return Ok(Some((name, reason))),
                Err(e) => return Ok(Some((name, format!("the check could not run: {e}")))),
            }
        }
        Ok(None)
    }

    /// Hands a verified payload to installer plugin `name`.
    pub fn install(
        &mut self,
        name: &str,
        ctx: &PluginContext,
        payload: &mut (dyn Read + Send),
    ) -> Result<(), InstallError> {
        if !self.chain.installers.iter().any(|i| i == name) {
            return Err(InstallError::NoInstaller {
                payload: ctx
                    .payload
                    .as_ref()
                    .map_or_else(String::new, |p| p.name.clone()),
                plugin: name.into(),
            });
        }
        let plugin = self.plugin(name, World::Installer)?;
        Ok(self.host()?.run_install(&plugin, ctx, payload)?)
    }

    /// Tells installer plugin `name` that its payload `payload` is committed (or rolled back).
    pub fn finish_installer(
        &mut self,
        name: &str,
        payload: &str,
        ctx: &PluginContext,
        commit: bool,
    ) -> Result<(), InstallError> {
        let mut ctx = ctx.clone();
        ctx.payload = Some(plugin::PayloadInfo {
            name: payload.to_string(),
            size: 0,
            sha256: String::new(),
        });
        let plugin = self.plugin(name, World::Installer)?;
        let host = self.host()?;
        if commit {
            host.run_commit(&plugin, &ctx)?;
        } else {
            host.run_rollback(&plugin, &ctx)?;
        }
        Ok(())
    }
}

/// The context plugins get for an update.
pub(crate) fn context(
    config: &Config,
    state: &DeviceState,
    release: &Release,
    slot: Option<String>,
    stage: Stage,
) -> PluginContext {
    let wit = |r: &Release| plugin::Release {
        name: r.bundle.clone(),
        version: r.version.to_string(),
    };
    PluginContext {
        bundle: wit(release),
        current: state.committed.as_ref().map(wit),
        device_type: config.device.device_type.clone(),
        stage,
        payload: None,
        slot,
    }
}
