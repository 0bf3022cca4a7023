//! What can go wrong with a plugin. Every message names the plugin, says what happened and what
//! to do about it; a failed call never takes the engine down.

use std::path::PathBuf;
use std::time::Duration;

use super::World;
use crate::config::ByteSize;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin host itself could not start (the compiler refused our configuration, or the
    /// cache directory is unusable).
    #[error("cannot start the plugin host: {0}")]
    Host(String),

    #[error("cannot use the plugin cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },

    #[error("cannot read plugin {name} from {path}: {source}; check [plugins.{name}] path")]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },

    /// `[plugins.NAME]` asks for something that cannot work (a missing directory, a bad URL).
    #[error("[plugins.{name}]: {reason}")]
    Config { name: String, reason: String },

    /// Not a component, or not one of ours.
    #[error("plugin {name} is not a usable Airlock plugin: {reason}")]
    Invalid { name: String, reason: String },

    #[error(
        "plugin {name} was built for airlock:plugin@{found}; this engine serves {supported}; \
         rebuild it against a supported version of the SDK or upgrade the engine"
    )]
    UnsupportedVersion {
        name: String,
        found: String,
        supported: String,
    },

    #[error("plugin {name} implements the {actual} world but is configured as a {expected}")]
    WrongWorld {
        name: String,
        actual: World,
        expected: World,
    },

    /// The component imports something the sandbox does not offer (wasi:http, a newer WASI…).
    #[error(
        "plugin {name} needs something this engine does not provide: {reason}; plugins may \
         import only airlock:plugin and WASI 0.2 (no wasi:http)"
    )]
    Link { name: String, reason: String },

    /// A device build (no Wasm compiler) found no precompiled form of a plugin.
    #[error(
        "plugin {name} has no precompiled form for this device ({target}), and this device \
         build of airlock has no Wasm compiler; on the build host run `airlock plugin compile \
         {} --target {target} -o {}` and add the artifact's line to the digest list \
         (`sha256sum {} >> {}`)",
        wasm.display(), artifact.display(), artifact.display(), list.display()
    )]
    NotPrecompiled {
        name: String,
        target: &'static str,
        wasm: PathBuf,
        artifact: PathBuf,
        list: PathBuf,
    },

    /// The digest list that vouches for precompiled plugins is unusable.
    #[error("cannot trust the precompiled-plugin digest list {path}: {reason}")]
    DigestList { path: PathBuf, reason: String },

    /// A precompiled artifact nothing the device trusts vouches for: never loaded.
    #[error("plugin {name}: refusing the precompiled {}: {reason}", path.display())]
    UntrustedArtifact {
        name: String,
        path: PathBuf,
        reason: String,
    },

    /// A trusted artifact made for another CPU, another wasmtime or other engine settings, or
    /// not an artifact at all: wasmtime refused it before loading any of it.
    #[error(
        "plugin {name}: the precompiled {} does not fit this engine ({reason}); precompile it \
         again with `airlock plugin compile --target {target}` from airlock {version}",
        path.display(), version = env!("CARGO_PKG_VERSION")
    )]
    IncompatibleArtifact {
        name: String,
        path: PathBuf,
        target: &'static str,
        reason: String,
    },

    #[error("cannot compile plugin {name}: {reason}")]
    Compile { name: String, reason: String },

    #[error(
        "plugin {name} timed out after {} (it may loop); raise [plugins.{name}] timeout or fix \
         the plugin", humantime::format_duration(*.timeout)
    )]
    Timeout { name: String, timeout: Duration },

    #[error(
        "plugin {name} exceeded its memory cap of {cap}; raise [plugins.{name}] memory or fix \
         the plugin"
    )]
    MemoryCap { name: String, cap: ByteSize },

    #[error("plugin {name} overflowed its stack (deep or endless recursion); fix the plugin")]
    StackOverflow { name: String },

    /// Too much written to stdout, stderr or the log interface in one call.
    #[error("plugin {name} flooded its {what} (more than {cap} in one call); fix the plugin")]
    OutputFlood {
        name: String,
        what: &'static str,
        cap: ByteSize,
    },

    #[error("plugin {name} trapped: {message}")]
    Trap { name: String, message: String },

    /// An installer's `install`, `commit` or `rollback` returned `err(message)`.
    #[error("plugin {name} failed to {action}: {message}")]
    Failed {
        name: String,
        action: &'static str,
        message: String,
    },

    /// The payload stream of an installer call went wrong.
    #[error("plugin {name}: payload {payload}: {reason}")]
    Payload {
        name: String,
        payload: String,
        reason: String,
    },

    #[error("cannot precompile plugin: {0}")]
    Precompile(String),
}
