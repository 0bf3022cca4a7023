//! Bootloader backends: how Airlock tells the bootloader which slot to boot.
//!
//! Every backend keeps the same two facts, and the shipped boot scripts (`engine/boot-scripts/`)
//! act on them:
//!
//! - **primary**: the committed slot, booted whenever no trial is pending (`a` when unset);
//! - **trial**: a one-shot request. The bootloader consumes it (clears it and saves) *before*
//!   booting the trial slot, so if that slot hangs or panics, the next boot — watchdog or power
//!   cycle — falls back to primary. Only [`BootBackend::commit`] makes a trial slot primary.
//!
//! The running system learns which slot it booted from `airlock.slot=a|b` on the kernel command
//! line (the boot scripts pass it), or from the backend itself where it knows (`sim`).
//!
//! | backend   | where the state lives                  | variables                           |
//! |-----------|----------------------------------------|-------------------------------------|
//! | `grub`    | a GRUB environment block (`grubenv`)   | `airlock_primary`, `airlock_trial`  |
//! | `uboot`   | the U-Boot environment (fw_env.config) | `airlock_primary`, `airlock_trial`  |
//! | `systemd-boot` | Boot Loader Specification entries on the ESP, with boot counting | `default` in `loader.conf`, entry names `slotb+1-0.conf` |
//! | `sim`     | a small text file                      | `primary`, `trial`, `booted`        |
//! | `command` | an operator-provided program           | (its own business)                  |
//!
//! All slot pairs of a device switch together: there is one primary and one trial per device.

mod command;
mod grub;
mod sim;
mod systemd_boot;
mod uboot;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use sim::{sim_device_config, sim_init, sim_reboot};

/// The bootloader-environment parsers on bytes in memory, without files, devices or locks: the
/// entry points of the fuzz targets in `fuzz/` (see docs/reliability.md). Nothing else uses them.
pub mod fuzz {
    pub use super::grub::fuzz_parse as parse_grub_env;
    pub use super::uboot::{
        fuzz_parse_config as parse_fw_env_config, fuzz_parse_env as parse_uboot_env,
    };
}

/// The variable holding the committed slot, in the grub and U-Boot environments.
pub const PRIMARY_VAR: &str = "airlock_primary";
/// The variable holding the one-shot trial slot, in the grub and U-Boot environments.
pub const TRIAL_VAR: &str = "airlock_trial";
/// The kernel command line parameter that names the booted slot.
pub const CMDLINE_PARAM: &str = "airlock.slot";

/// A side of the A/B scheme: slot a or slot b of every slot pair, which all switch together.
/// (The `slot` module holds the backends that write a side.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The other slot of the pair.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// `"a"` or `"b"`, as the bootloader variables and the kernel command line spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = BootError;

    /// `a` or `b`, in either case.
    fn from_str(s: &str) -> Result<Side, BootError> {
        if s.eq_ignore_ascii_case("a") {
            Ok(Side::A)
        } else if s.eq_ignore_ascii_case("b") {
            Ok(Side::B)
        } else {
            Err(BootError::InvalidSlot(s.to_string()))
        }
    }
}

/// A bootloader, seen as the try-once state described in the module docs.
pub trait BootBackend: Send {
    /// `"grub"`, `"uboot"`, `"systemd-boot"`, `"sim"` or `"command"`.
    fn name(&self) -> &'static str;
    /// The slot booted when no trial is pending (the committed slot). Default `A` when unset.
    fn primary(&self) -> Result<Side, BootError>;
    /// A one-shot trial set by set_trial and not yet consumed by a boot.
    fn pending_trial(&self) -> Result<Option<Side>, BootError>;
    /// The next boot tries `slot` once; every boot after that falls back to primary unless
    /// commit() is called.
    fn set_trial(&mut self, slot: Side) -> Result<(), BootError>;
    /// Make `slot` the primary and clear any pending trial. Idempotent.
    fn commit(&mut self, slot: Side) -> Result<(), BootError>;
    /// Clear a pending trial that has not been booted yet. Idempotent.
    fn cancel_trial(&mut self) -> Result<(), BootError>;
    /// The slot the running system booted from when the backend itself knows it (sim does);
    /// None otherwise.
    fn booted(&self) -> Result<Option<Side>, BootError>;
}

/// Everything that can go wrong talking to a bootloader. Each message names the file, device or
/// variable and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{what} {path} does not exist; {hint}")]
    NotFound {
        what: &'static str,
        path: PathBuf,
        hint: String,
    },
    #[error("cannot {action} {what} {path}: {source}")]
    Io {
        action: &'static str,
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what} {path} is not valid: {problem}; {hint}")]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        problem: String,
        hint: String,
    },
    #[error("{what} {path} has {var}={value:?}, expected 'a' or 'b'; {hint}")]
    BadVariable {
        what: &'static str,
        path: PathBuf,
        var: String,
        value: String,
        hint: String,
    },
    #[error(
        "{what} {path} is full: the variables need {needed} bytes but only {capacity} fit; \
         remove variables that are no longer used"
    )]
    NoSpace {
        what: &'static str,
        path: PathBuf,
        needed: usize,
        capacity: usize,
    },
    #[error("{0:?} is not a slot; expected 'a' or 'b'")]
    InvalidSlot(String),
    #[error("{what} {path}: {problem}")]
    Config {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("[boot] in airlock.toml: {0}")]
    InvalidConfig(String),
    #[error("boot command `{command}` {problem}{}", stderr_note(.stderr))]
    Command {
        command: String,
        problem: String,
        stderr: String,
    },
    #[error(
        "cannot tell which slot is running: the {backend} backend does not know and {cmdline} \
         has no {CMDLINE_PARAM}=a|b; make the boot script pass {CMDLINE_PARAM}= on the kernel \
         command line (see engine/boot-scripts/)"
    )]
    BootedUnknown {
        backend: &'static str,
        cmdline: PathBuf,
    },
}

fn stderr_note(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; its stderr: {s}")
    }
}

impl BootError {
    pub(crate) fn io(
        action: &'static str,
        what: &'static str,
        path: &Path,
        source: io::Error,
    ) -> Self {
        BootError::Io {
            action,
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Parse `airlock.slot=a|b` from a kernel command line. The last occurrence wins, as for any
/// kernel parameter; a value other than a/b gives None.
pub fn slot_from_cmdline(cmdline: &str) -> Option<Side> {
    let value = cmdline
        .split_whitespace()
        .rev()
        .find_map(|word| word.strip_prefix(CMDLINE_PARAM)?.strip_prefix('='))?;
    value.trim_matches('"').parse().ok()
}

/// The booted slot: backend.booted(), else the kernel command line at `cmdline_path` (normally
/// /proc/cmdline); a clear error if neither says.
pub fn booted_slot(backend: &dyn BootBackend, cmdline_path: &Path) -> Result<Side, BootError> {
    if let Some(slot) = backend.booted()? {
        return Ok(slot);
    }
    let cmdline = std::fs::read_to_string(cmdline_path)
        .map_err(|e| BootError::io("read", "kernel command line", cmdline_path, e))?;
    slot_from_cmdline(&cmdline).ok_or_else(|| BootError::BootedUnknown {
        backend: backend.name(),
        cmdline: cmdline_path.to_path_buf(),
    })
}

/// The `[boot]` table of airlock.toml, tagged by
/// `backend = "grub" | "uboot" | "systemd-boot" | "sim" | "command"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum BootConfig {
    /// A GRUB environment block, e.g. `/boot/efi/EFI/airlock/grubenv`.
    Grub { env: PathBuf },
    /// The U-Boot environment located by a libubootenv `fw_env.config`.
    Uboot {
        #[serde(default = "default_fw_env_config")]
        config: PathBuf,
    },
    /// systemd-boot's entries `slota.conf` / `slotb.conf` in `esp/loader/entries`, with boot
    /// counting; `tries` is how many boots a trial gets before systemd-boot falls back.
    #[serde(rename = "systemd-boot")]
    SystemdBoot {
        esp: PathBuf,
        #[serde(default = "one_try")]
        tries: u32,
    },
    /// The simulated bootloader of a device in a folder.
    Sim { env: PathBuf },
    /// An operator-provided program (argv prefix); `timeout` is a humantime duration, default 30s.
    Command {
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    },
}

/// Where libubootenv looks for its configuration.
pub const DEFAULT_FW_ENV_CONFIG: &str = "/etc/fw_env.config";

fn one_try() -> u32 {
    1
}

fn default_fw_env_config() -> PathBuf {
    PathBuf::from(DEFAULT_FW_ENV_CONFIG)
}

/// Open the backend `config` describes. File-based backends read their state once here, so that
/// a missing or corrupt environment is reported at start-up rather than at the first switch.
pub fn open(config: &BootConfig) -> Result<Box<dyn BootBackend>, BootError> {
    let backend: Box<dyn BootBackend> = match config {
        BootConfig::Grub { env } => Box::new(VarBackend(grub::GrubStore::new(env))),
        BootConfig::Uboot { config } => Box::new(VarBackend(uboot::UbootStore::open(config)?)),
        BootConfig::SystemdBoot { esp, tries } => Box::new(systemd_boot::SystemdBoot::open(
            esp,
            *tries,
            Path::new(systemd_boot::DEFAULT_EFIVARS),
        )?),
        BootConfig::Sim { env } => Box::new(VarBackend(sim::SimStore::new(env))),
        BootConfig::Command { command, timeout } => {
            return Ok(Box::new(command::CommandBackend::new(
                command,
                timeout.as_deref(),
            )?));
        }
    };
    backend.primary()?;
    Ok(backend)
}

/// An environment of string variables, as one backend reads and writes it.
pub(crate) trait VarEnv {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
    /// Set `name` to `value`, or remove it for None. Returns whether anything changed.
    fn set(&mut self, name: &str, value: Option<&str>) -> Result<bool, BootError>;
}

/// A bootloader whose state is a set of variables: grub, U-Boot and sim share the try-once logic
/// of [`VarBackend`] and differ only in how they load and store their environment.
pub(crate) trait VarStore: Send {
    type Env: VarEnv;
    /// A lock held across load-modify-store, if the format has one (U-Boot's flock).
    type Lock;
    const NAME: &'static str;
    const PRIMARY: &'static str;
    const TRIAL: &'static str;
    fn lock(&self) -> Self::Lock;
    fn load(&self) -> Result<Self::Env, BootError>;
    fn store(&mut self, env: &Self::Env) -> Result<(), BootError>;
    /// The error for a variable that holds something other than a slot name.
    fn bad_variable(&self, var: &str, value: &str) -> BootError;
    /// The booted slot, where the store records it.
    fn booted(&self, _env: &Self::Env) -> Result<Option<Side>, BootError> {
        Ok(None)
    }
}

/// The try-once semantics on top of any [`VarStore`].
pub(crate) struct VarBackend<S>(pub(crate) S);

impl<S: VarStore> VarBackend<S> {
    fn slot_var(&self, env: &S::Env, var: &str) -> Result<Option<Side>, BootError> {
        match env.get(var) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.0.bad_variable(var, &v)),
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Self, &S::Env) -> Result<T, BootError>,
    ) -> Result<T, BootError> {
        let _lock = self.0.lock();
        let env = self.0.load()?;
        f(self, &env)
    }

    /// Load, apply `f`, and store only if `f` changed something (sparing flash an idle write).
    fn modify(
        &mut self,
        f: impl FnOnce(&mut S::Env) -> Result<bool, BootError>,
    ) -> Result<(), BootError> {
        let _lock = self.0.lock();
        let mut env = self.0.load()?;
        if f(&mut env)? {
            self.0.store(&env)?;
        }
        Ok(())
    }
}

impl<S: VarStore> BootBackend for VarBackend<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn primary(&self) -> Result<Side, BootError> {
        self.read(|b, env| Ok(b.slot_var(env, S::PRIMARY)?.unwrap_or(Side::A)))
    }

    fn pending_trial(&self) -> Result<Option<Side>, BootError> {
        self.read(|b, env| b.slot_var(env, S::TRIAL))
    }

    fn set_trial(&mut self, slot: Side) -> Result<(), BootError> {
        tracing::info!(backend = S::NAME, %slot, "setting one-shot trial boot");
        self.modify(|env| env.set(S::TRIAL, Some(slot.as_str())))
    }

    fn commit(&mut self, slot: Side) -> Result<(), BootError> {
        tracing::info!(backend = S::NAME, %slot, "committing slot as primary");
        self.modify(|env| {
            let primary = env.set(S::PRIMARY, Some(slot.as_str()))?;
            let trial = env.set(S::TRIAL, None)?;
            Ok(primary || trial)
        })
    }

    fn cancel_trial(&mut self) -> Result<(), BootError> {
        tracing::info!(backend = S::NAME, "cancelling pending trial boot");
        self.modify(|env| env.set(S::TRIAL, None))
    }

    fn booted(&self) -> Result<Option<Side>, BootError> {
        self.read(|b, env| b.0.booted(env))
    }
}

/// Test helpers shared by the backends' tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::PathBuf;
    use std::process::Command;

    /// The path of `tool`, or a test failure that says which package to install.
    pub fn require_tool(tool: &str, package: &str) -> PathBuf {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(tool))
                .find(|p| p.is_file())
        });
        match found {
            Some(path) => path,
            None => panic!(
                "`{tool}` is not installed; these tests run the real tool: install package \
                 {package} (apt-get install -y {package})"
            ),
        }
    }

    /// Run a tool, fail the test with its stderr if it fails, return its stdout.
    pub fn run(cmd: &mut Command) -> String {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("tool output is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_basics() {
        assert_eq!(Side::A.other(), Side::B);
        assert_eq!(Side::B.other(), Side::A);
        assert_eq!(Side::B.to_string(), "b");
        assert_eq!("A".parse::<Side>().unwrap(), Side::A);
        assert_eq!("b".parse::<Side>().unwrap(), Side::B);
        let err = "c".parse::<Side>().unwrap_err().to_string();
        assert!(err.contains("\"c\" is not a slot"), "{err}");
        assert!(" a".parse::<Side>().is_err());
        assert_eq!(serde_json::to_string(&Side::B).unwrap(), "\"b\"");
    }

    #[test]
    fn cmdline_parsing() {
        assert_eq!(
            slot_from_cmdline("root=/dev/sda2 airlock.slot=b quiet\n"),
            Some(Side::B)
        );
        assert_eq!(
            slot_from_cmdline("airlock.slot=a airlock.slot=b"),
            Some(Side::B)
        );
        assert_eq!(slot_from_cmdline("airlock.slot=\"a\""), Some(Side::A));
        assert_eq!(slot_from_cmdline("airlock.slot=c"), None);
        assert_eq!(slot_from_cmdline("airlock.slotx=a quiet"), None);
        assert_eq!(slot_from_cmdline(""), None);
    }

    #[test]
    fn booted_slot_prefers_backend_then_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "console=ttyS0 airlock.slot=b\n").unwrap();

        // sim knows the booted slot itself.
        let env = dir.path().join("boot.env");
        sim_init(&env).unwrap();
        let sim = open(&BootConfig::Sim { env }).unwrap();
        assert_eq!(booted_slot(sim.as_ref(), &cmdline).unwrap(), Side::A);

        // grub does not: the command line says.
        let grubenv = dir.path().join("grubenv");
        grub::create(&grubenv).unwrap();
        let grub = open(&BootConfig::Grub { env: grubenv }).unwrap();
        assert_eq!(booted_slot(grub.as_ref(), &cmdline).unwrap(), Side::B);

        std::fs::write(&cmdline, "console=ttyS0\n").unwrap();
        let err = booted_slot(grub.as_ref(), &cmdline)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no airlock.slot=a|b") && err.contains("grub"),
            "{err}"
        );

        let err = booted_slot(grub.as_ref(), &dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read kernel command line"), "{err}");
    }

    fn parse(s: &str) -> Result<BootConfig, toml::de::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            boot: BootConfig,
        }
        toml::from_str::<File>(s).map(|f| f.boot)
    }

    #[test]
    fn config_from_toml() {
        let c =
            parse("[boot]\nbackend = \"grub\"\nenv = \"/boot/efi/EFI/airlock/grubenv\"\n").unwrap();
        assert_eq!(
            c,
            BootConfig::Grub {
                env: "/boot/efi/EFI/airlock/grubenv".into()
            }
        );

        let c = parse("[boot]\nbackend = \"uboot\"\n").unwrap();
        assert_eq!(
            c,
            BootConfig::Uboot {
                config: "/etc/fw_env.config".into()
            }
        );
        let c = parse("[boot]\nbackend = \"uboot\"\nconfig = \"/etc/fw2.config\"\n").unwrap();
        assert_eq!(
            c,
            BootConfig::Uboot {
                config: "/etc/fw2.config".into()
            }
        );

        let c = parse("[boot]\nbackend = \"systemd-boot\"\nesp = \"/boot/efi\"\n").unwrap();
        assert_eq!(
            c,
            BootConfig::SystemdBoot {
                esp: "/boot/efi".into(),
                tries: 1
            }
        );
        let c = parse("[boot]\nbackend = \"systemd-boot\"\nesp = \"/efi\"\ntries = 3\n").unwrap();
        assert_eq!(
            c,
            BootConfig::SystemdBoot {
                esp: "/efi".into(),
                tries: 3
            }
        );

        let c = parse("[boot]\nbackend = \"sim\"\nenv = \"dev/boot.env\"\n").unwrap();
        assert_eq!(
            c,
            BootConfig::Sim {
                env: "dev/boot.env".into()
            }
        );

        let c = parse(
            "[boot]\nbackend = \"command\"\ncommand = [\"/usr/bin/bootctl-ab\", \"--quiet\"]\n\
             timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(
            c,
            BootConfig::Command {
                command: vec!["/usr/bin/bootctl-ab".into(), "--quiet".into()],
                timeout: Some("5s".into())
            }
        );
        let c = parse("[boot]\nbackend = \"command\"\ncommand = [\"x\"]\n").unwrap();
        assert_eq!(
            c,
            BootConfig::Command {
                command: vec!["x".into()],
                timeout: None
            }
        );

        // Serialises back to the same table.
        let back: BootConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn config_refuses_unknown_keys_and_backends() {
        let err = parse("[boot]\nbackend = \"grub\"\nenv = \"/x\"\nenvv = \"/y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("envv"), "{err}");
        let err = parse("[boot]\nbackend = \"sim\"\nenv = \"/x\"\ntimeout = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout"), "{err}");
        let err = parse("[boot]\nbackend = \"lilo\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lilo"), "{err}");
        let err = parse("[boot]\nenv = \"/x\"\n").unwrap_err().to_string();
        assert!(err.contains("backend"), "{err}");
        assert!(
            parse("[boot]\nbackend = \"grub\"\n").is_err(),
            "env is required"
        );
    }

    #[test]
    fn open_reports_missing_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("grubenv");
        let err = open(&BootConfig::Grub { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("grub-editenv"),
            "{err}"
        );
        let err = open(&BootConfig::Sim { env }).err().unwrap().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
