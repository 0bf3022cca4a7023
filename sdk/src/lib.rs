//! Write Airlock plugins in Rust.
//!
//! A plugin is a WebAssembly component that implements one of the three worlds of the plugin
//! interface `airlock:plugin@0.1.0` (`wit/v0.1/plugin.wit`):
//!
//! | world       | trait         | export macro           | answers                               |
//! |-------------|---------------|------------------------|---------------------------------------|
//! | `hook`      | [`Hook`]      | [`export_hook!`]       | [`HookResult`]: proceed, abort, retry later |
//! | `check`     | [`Check`]     | [`export_check!`]      | [`CheckResult`]: pass or fail         |
//! | `installer` | [`Installer`] | [`export_installer!`]  | install, commit, rollback: `Result<(), String>` |
//!
//! Write one trait impl, export it with the matching macro, and build the crate as a `cdylib`
//! for `wasm32-wasip2`: the `.wasm` file cargo produces is already a component.
//!
//! Around the trait, small helpers reach what the sandbox allows: [`log`] lines,
//! the plugin's own [`config`] table with typed parsers that return readable errors, the
//! allow-listed [`probes`] (HTTP GET, systemd unit state, commands), an installer's
//! [`payload`] stream as a [`std::io::Read`], and [`progress`] reports.
//!
//! # Example: a health check
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "my-health"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! airlock-sdk = "0.1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use std::time::Duration;
//!
//! use airlock_sdk::{Check, CheckResult, Context, config, log, probes};
//!
//! struct Health;
//!
//! impl Check for Health {
//!     fn check(ctx: Context) -> CheckResult {
//!         match probe(&ctx) {
//!             Ok(()) => CheckResult::Pass,
//!             Err(reason) => {
//!                 log::warn!("{reason}");
//!                 CheckResult::Fail(reason)
//!             }
//!         }
//!     }
//! }
//!
//! fn probe(ctx: &Context) -> Result<(), String> {
//!     // `[plugins.health.config]` in airlock.toml: url = "http://127.0.0.1:8080/health"
//!     let url = config::require("url")?;
//!     let timeout = config::duration_or("timeout", Duration::from_secs(5))?;
//!     log::info!("checking {url} for {} on slot {:?}", ctx.bundle, ctx.slot);
//!     let response = probes::http_get(&url, timeout)?;
//!     if response.status == 200 {
//!         Ok(())
//!     } else {
//!         Err(format!("{url} answered {}", response.status))
//!     }
//! }
//!
//! airlock_sdk::export_check!(Health);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and point a plugin entry of
//! `airlock.toml` at `target/wasm32-wasip2/release/my_health.wasm`.
//!
//! # Rules of the sandbox
//!
//! - A plugin gets a fresh instance per call: keep no state between calls in memory. An
//!   installer that must remember something from `install` for `commit` writes it to its
//!   pre-opened directory.
//! - No environment variables, sockets or files except the directories the operator
//!   pre-opened for the plugin. stdout and stderr end up in the engine's log, capped.
//! - Each probe is refused unless the operator allowed that URL, unit or command for this
//!   plugin; the refusal is an `Err` naming what was asked and what is allowed.
//! - A panic traps the instance (its message goes to stderr, so to the engine's log) and the
//!   engine fails the stage. Prefer returning [`CheckResult::Fail`] or [`HookResult::Abort`]
//!   with a reason.
//! - Only call what your world imports: `progress` is not imported by a check, `payload` only
//!   by an installer. The component still builds, but the engine refuses to load a component
//!   that imports more than its world.
//!
//! # Testing on the host
//!
//! The crate also builds for the host. There the helpers talk to [`testing`], a stand-in
//! for the engine whose config, probe answers and payload a unit test sets, and whose log a
//! test reads back.
#![warn(missing_docs)]

pub mod config;
pub mod log;
pub mod payload;
pub mod probes;
pub mod progress;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

use std::fmt;

/// Bindings for every interface of `airlock:plugin@0.1.0`, imports only.
///
/// No world with exports is generated here: each export macro generates its own world in the
/// plugin's crate, so a plugin's component carries the exports of its world and nothing else.
#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package airlock:sdk@0.1.0;

            world imports {
                import airlock:plugin/types@0.1.0;
                import airlock:plugin/log@0.1.0;
                import airlock:plugin/config@0.1.0;
                import airlock:plugin/progress@0.1.0;
                import airlock:plugin/probes@0.1.0;
                import airlock:plugin/payload@0.1.0;
            }
        ",
        path: "../wit/v0.1",
        world: "airlock:sdk/imports",
        // The interfaces live in airlock:plugin, a package other than the inline world's.
        generate_all,
        // `types` has no functions; its types are what the worlds exchange.
        generate_unused_types: true,
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::airlock::plugin::types::{
    CheckResult, Context, HookResult, PayloadInfo, Release, Stage,
};

/// A hook: runs at a stage of an update and answers whether the update may go on.
///
/// Export the implementing type with [`export_hook!`].
pub trait Hook {
    /// Decides whether the update may go on at `ctx.stage`.
    fn run(ctx: Context) -> HookResult;
}

/// A check: decides whether the trial boot of a new slot is good.
///
/// Every configured check must pass before the update is committed; one failure rolls the
/// device back. Export the implementing type with [`export_check!`].
pub trait Check {
    /// Is the device healthy on the new slot?
    fn check(ctx: Context) -> CheckResult;
}

/// An installer: installs a payload whose target names this plugin, and later commits or
/// rolls back what it installed.
///
/// Each call runs in a fresh instance, so whatever `commit` and `rollback` need to know must
/// be on disk (in a directory the operator pre-opened for the plugin). Export the
/// implementing type with [`export_installer!`].
pub trait Installer {
    /// Installs the payload (read it with [`payload::PayloadReader`]) without disturbing
    /// what runs now.
    fn install(ctx: Context) -> Result<(), String>;
    /// The trial passed: makes what `install` did permanent.
    fn commit(ctx: Context) -> Result<(), String>;
    /// The update is abandoned: undoes what `install` did.
    fn rollback(ctx: Context) -> Result<(), String>;
}

impl Stage {
    /// The stage's name as the WIT spells it (`download-enter`, `check`, …).
    pub fn name(self) -> &'static str {
        match self {
            Stage::DownloadEnter => "download-enter",
            Stage::DownloadLeave => "download-leave",
            Stage::InstallEnter => "install-enter",
            Stage::InstallLeave => "install-leave",
            Stage::RebootEnter => "reboot-enter",
            Stage::CommitEnter => "commit-enter",
            Stage::CommitLeave => "commit-leave",
            Stage::RollbackEnter => "rollback-enter",
            Stage::RollbackLeave => "rollback-leave",
            Stage::Failure => "failure",
            Stage::Check => "check",
            Stage::Install => "install",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Release {
    /// `name version`, e.g. `rootfs 1.4.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// Exports a [`Hook`] implementation as the plugin's `hook` world.
///
/// ```
/// use airlock_sdk::{Context, Hook, HookResult};
///
/// struct Always;
///
/// impl Hook for Always {
///     fn run(_ctx: Context) -> HookResult {
///         HookResult::Proceed
///     }
/// }
///
/// airlock_sdk::export_hook!(Always);
/// # fn main() {}
/// ```
///
/// Use it once per crate, at the crate's top level, and depend on the SDK under its own name
/// (`airlock-sdk`): the generated code refers to `::airlock_sdk`.
#[macro_export]
macro_rules! export_hook {
    ($ty:ident) => {
        $crate::__with_plugin_wit!(hook $ty);
    };
}

/// Exports a [`Check`] implementation as the plugin's `check` world.
///
/// ```
/// use airlock_sdk::{Check, CheckResult, Context};
///
/// struct Fine;
///
/// impl Check for Fine {
///     fn check(_ctx: Context) -> CheckResult {
///         CheckResult::Pass
///     }
/// }
///
/// airlock_sdk::export_check!(Fine);
/// # fn main() {}
/// ```
///
/// Use it once per crate, at the crate's top level, and depend on the SDK under its own name
/// (`airlock-sdk`): the generated code refers to `::airlock_sdk`.
#[macro_export]
macro_rules! export_check {
    ($ty:ident) => {
        $crate::__with_plugin_wit!(check $ty);
    };
}

/// Exports an [`Installer`] implementation as the plugin's `installer` world.
///
/// ```
/// use std::io::Read;
///
/// use airlock_sdk::{Context, Installer, payload::PayloadReader};
///
/// struct Count;
///
/// impl Installer for Count {
///     fn install(_ctx: Context) -> Result<(), String> {
///         let mut bytes = Vec::new();
///         PayloadReader::new().read_to_end(&mut bytes).map_err(|e| e.to_string())?;
///         airlock_sdk::log::info!("payload has {} bytes", bytes.len());
///         Ok(())
///     }
///     fn commit(_ctx: Context) -> Result<(), String> {
///         Ok(())
///     }
///     fn rollback(_ctx: Context) -> Result<(), String> {
///         Ok(())
///     }
/// }
///
/// airlock_sdk::export_installer!(Count);
/// # fn main() {}
/// ```
///
/// Use it once per crate, at the crate's top level, and depend on the SDK under its own name
/// (`airlock-sdk`): the generated code refers to `::airlock_sdk`.
#[macro_export]
macro_rules! export_installer {
    ($ty:ident) => {
        $crate::__with_plugin_wit!(installer $ty);
    };
}

// The text of `wit/v0.1/plugin.wit` as `__with_plugin_wit!`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/plugin_wit.rs"));

/// Generates one world's exports in the plugin's crate and wires them to the trait impl.
///
/// Every interface the world imports is mapped (`with`) onto the SDK's bindings, so only the
/// world itself is generated here: its export glue and the component-type section that
/// tells `wasm-component-ld` which world the component implements.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_world {
    ($wit:tt hook $ty:ident) => {
        #[doc(hidden)]
        #[allow(clippy::all, missing_docs, unused)]
        mod __airlock_hook_world {
            $crate::__private::wit_bindgen::generate!({
                inline: $wit,
                world: "hook",
                runtime_path: "::airlock_sdk::__private::wit_bindgen::rt",
                with: {
                    "airlock:plugin/types@0.1.0": ::airlock_sdk::__private::wit::types,
                    "airlock:plugin/log@0.1.0": ::airlock_sdk::__private::wit::log,
                    "airlock:plugin/config@0.1.0": ::airlock_sdk::__private::wit::config,
                    "airlock:plugin/progress@0.1.0": ::airlock_sdk::__private::wit::progress,
                    "airlock:plugin/probes@0.1.0": ::airlock_sdk::__private::wit::probes,
                },
            });
        }
        impl __airlock_hook_world::Guest for $ty {
            fn run(ctx: $crate::Context) -> $crate::HookResult {
                <$ty as $crate::Hook>::run(ctx)
            }
        }
        __airlock_hook_world::export!($ty with_types_in __airlock_hook_world);
    };
    ($wit:tt check $ty:ident) => {
        #[doc(hidden)]
        #[allow(clippy::all, missing_docs, unused)]
        mod __airlock_check_world {
            $crate::__private::wit_bindgen::generate!({
                inline: $wit,
                world: "check",
                runtime_path: "::airlock_sdk::__private::wit_bindgen::rt",
                with: {
                    "airlock:plugin/types@0.1.0": ::airlock_sdk::__private::wit::types,
                    "airlock:plugin/log@0.1.0": ::airlock_sdk::__private::wit::log,
                    "airlock:plugin/config@0.1.0": ::airlock_sdk::__private::wit::config,
                    "airlock:plugin/probes@0.1.0": ::airlock_sdk::__private::wit::probes,
                },
            });
        }
        impl __airlock_check_world::Guest for $ty {
            fn check(ctx: $crate::Context) -> $crate::CheckResult {
                <$ty as $crate::Check>::check(ctx)
            }
        }
        __airlock_check_world::export!($ty with_types_in __airlock_check_world);
    };
    ($wit:tt installer $ty:ident) => {
        #[doc(hidden)]
        #[allow(clippy::all, missing_docs, unused)]
        mod __airlock_installer_world {
            $crate::__private::wit_bindgen::generate!({
                inline: $wit,
                world: "installer",
                runtime_path: "::airlock_sdk::__private::wit_bindgen::rt",
                with: {
                    "airlock:plugin/types@0.1.0": ::airlock_sdk::__private::wit::types,
                    "airlock:plugin/log@0.1.0": ::airlock_sdk::__private::wit::log,
                    "airlock:plugin/config@0.1.0": ::airlock_sdk::__private::wit::config,
                    "airlock:plugin/progress@0.1.0": ::airlock_sdk::__private::wit::progress,
                    "airlock:plugin/probes@0.1.0": ::airlock_sdk::__private::wit::probes,
                    "airlock:plugin/payload@0.1.0": ::airlock_sdk::__private::wit::payload,
                },
            });
        }
        impl __airlock_installer_world::Guest for $ty {
            fn install(ctx: $crate::Context) -> ::std::result::Result<(), ::std::string::String> {
                <$ty as $crate::Installer>::install(ctx)
            }
            fn commit(ctx: $crate::Context) -> ::std::result::Result<(), ::std::string::String> {
                <$ty as $crate::Installer>::commit(ctx)
            }
            fn rollback(ctx: $crate::Context) -> ::std::result::Result<(), ::std::string::String> {
                <$ty as $crate::Installer>::rollback(ctx)
            }
        }
        __airlock_installer_world::export!($ty with_types_in __airlock_installer_world);
    };
}

/// What the export macros expand to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::airlock::plugin as wit;
    pub use wit_bindgen;
}

#[cfg(test)]
mod tests {
    use super::Stage;

    #[test]
    fn the_stage_names_are_the_wits_in_its_order() {
        // Stage::name matches every case, so a case added to the WIT fails to compile there;
        // this list must then grow too.
        let all = [
            Stage::DownloadEnter,
            Stage::DownloadLeave,
            Stage::InstallEnter,
            Stage::InstallLeave,
            Stage::RebootEnter,
            Stage::CommitEnter,
            Stage::CommitLeave,
            Stage::RollbackEnter,
            Stage::RollbackLeave,
            Stage::Failure,
            Stage::Check,
            Stage::Install,
        ];
        let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names, airlock_testkit::wit_stage_names());
    }
}
