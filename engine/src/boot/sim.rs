//! The simulated bootloader of a device in a folder: a small text file with the same try-once
//! semantics as the real bootloaders, and [`sim_reboot`] playing the bootloader.
//!
//! ```text
//! # airlock simulated bootloader
//! primary=a
//! trial=none
//! booted=a
//! ```
//!
//! `primary` is the committed slot, `trial` a one-shot trial (`none`, empty or absent when there
//! is none), `booted` the slot the simulated system is running. `#` lines and blank lines are
//! ignored; any other key is refused.

use std::path::{Path, PathBuf};

use super::{BootError, Side, VarEnv, VarStore};
use crate::fsutil::atomic_write;

const WHAT: &str = "sim bootloader file";
const HINT_RECREATE: &str = "recreate the simulated device (boot::sim_init writes a fresh file)";

/// The parsed file. Values are kept as written; [`super::VarBackend`] validates them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SimEnv {
    primary: Option<String>,
    trial: Option<String>,
    booted: Option<String>,
}

impl SimEnv {
    fn field(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "primary" => Some(&mut self.primary),
            "trial" => Some(&mut self.trial),
            "booted" => Some(&mut self.booted),
            _ => None,
        }
    }

    fn parse(path: &Path, text: &str) -> Result<SimEnv, BootError> {
        let mut env = SimEnv::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let corrupt = |problem: String| BootError::Corrupt {
                what: WHAT,
                path: path.to_path_buf(),
                problem,
                hint: HINT_RECREATE.to_string(),
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| corrupt(format!("line {} is not key=value: {line:?}", n + 1)))?;
            let field = env.field(key.trim()).ok_or_else(|| {
                corrupt(format!(
                    "line {}: unknown key {:?} (known: primary, trial, booted)",
                    n + 1,
                    key.trim()
                ))
            })?;
            let value = value.trim();
            *field = (!value.is_empty() && value != "none").then(|| value.to_string());
        }
        Ok(env)
    }

    fn render(&self) -> String {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
        format!(
            "# airlock simulated bootloader: primary = committed slot, trial = one-shot next boot, \
             booted = running slot\nprimary={}\ntrial={}\nbooted={}\n",
            show(&self.primary),
            show(&self.trial),
            show(&self.booted)
        )
    }
}

impl VarEnv for SimEnv {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "primary" => self.primary.clone(),
            "trial" => self.trial.clone(),
            "booted" => self.booted.clone(),
            _ => None,
        }
    }

    fn set(&mut self, name: &str, value: Option<&str>) -> Result<bool, BootError> {
        let field = self.field(name).ok_or_else(|| BootError::Config {
            what: WHAT,
            path: PathBuf::new(),
            problem: format!("no variable {name:?} in the sim bootloader"),
        })?;
        let new = value.map(str::to_string);
        let changed = *field != new;
        *field = new;
        Ok(changed)
    }
}

/// The `sim` backend's store: the file at `path`, re-read on every call so that
/// [`sim_reboot`] from another process is seen.
pub(crate) struct SimStore {
    path: PathBuf,
}

impl SimStore {
    pub(crate) fn new(path: &Path) -> SimStore {
        SimStore {
            path: path.to_path_buf(),
        }
    }

    fn slot(&self, env: &SimEnv, var: &str) -> Result<Option<Side>, BootError> {
        match env.get(var) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| self.bad_variable(var, &v)),
        }
    }
}

impl VarStore for SimStore {
    type Env = SimEnv;
    type Lock = ();
    const NAME: &'static str = "sim";
    const PRIMARY: &'static str = "primary";
    const TRIAL: &'static str = "trial";

    fn lock(&self) {}

    fn load(&self) -> Result<SimEnv, BootError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BootError::NotFound {
                what: WHAT,
                path: self.path.clone(),
                hint: "create the simulated device first (boot::sim_init)".to_string(),
            },
            _ => BootError::io("read", WHAT, &self.path, e),
        })?;
        SimEnv::parse(&self.path, &text)
    }

    fn store(&mut self, env: &SimEnv) -> Result<(), BootError> {
        atomic_write(&self.path, env.render().as_bytes())
            .map_err(|e| BootError::io("write", WHAT, &self.path, e))
    }

    fn bad_variable(&self, var: &str, value: &str) -> BootError {
        BootError::BadVariable {
            what: WHAT,
            path: self.path.clone(),
            var: var.to_string(),
            value: value.to_string(),
            hint: HINT_RECREATE.to_string(),
        }
    }

    fn booted(&self, env: &SimEnv) -> Result<Option<Side>, BootError> {
        self.slot(env, "booted")
    }
}

/// Create a fresh sim bootloader file (primary a, booted a, no trial).
pub fn sim_init(env: &Path) -> Result<(), BootError> {
    let fresh = SimEnv {
        primary: Some("a".into()),
        trial: None,
        booted: Some("a".into()),
    };
    SimStore::new(env).store(&fresh)
}

/// The airlock.toml of a simulated device (`airlock sim init`), relative to its folder: the key
/// in `keys/release.pub`, rootfs slots in `slots/rootfs.{a,b}`, the sim bootloader file in
/// `boot/bootloader.env`, a directory slot `app`, the data in `data`.
pub fn sim_device_config(device_type: &str) -> String {
    format!(
        r#"# A simulated Airlock device: slots are files, the bootloader is a small text file.
[device]
type = "{device_type}"
data_dir = "data"

[trust]
keys = ["keys/release.pub"]
threshold = 1

[boot]
backend = "sim"
env = "boot/bootloader.env"

[slots.rootfs]
a = "slots/rootfs.a"
b = "slots/rootfs.b"

[slots.app]
type = "directory"
path = "app"
"#
    )
}

/// What `airlock sim reboot DIR [--fail]` does to the sim bootloader file: consume a pending
/// trial; booted = trial unless `fail` (the new slot does not come up, the bootloader falls back),
/// else primary. Returns the slot now booted.
pub fn sim_reboot(env: &Path, fail: bool) -> Result<Side, BootError> {
    let mut store = SimStore::new(env);
    let mut state = store.load()?;
    let primary = store.slot(&state, "primary")?.unwrap_or(Side::A);
    let trial = store.slot(&state, "trial")?;
    let booted = match trial {
        Some(slot) if !fail => slot,
        _ => primary,
    };
    state.trial = None;
    state.booted = Some(booted.as_str().to_string());
    store.store(&state)?;
    tracing::info!(?trial, fail, %booted, "simulated reboot");
    Ok(booted)
}

#[cfg(test)]
mod tests {
    use super::super::{BootConfig, open};
    use super::*;

    fn fresh() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("boot.env");
        sim_init(&env).unwrap();
        (dir, env)
    }

    #[test]
    fn init_state() {
        let (_dir, env) = fresh();
        let b = open(&BootConfig::Sim { env: env.clone() }).unwrap();
        assert_eq!(b.name(), "sim");
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.booted().unwrap(), Some(Side::A));
        let text = std::fs::read_to_string(&env).unwrap();
        assert!(text.contains("primary=a\ntrial=none\nbooted=a\n"), "{text}");
    }

    #[test]
    fn trial_then_reboot_boots_it_once() {
        let (_dir, env) = fresh();
        let mut b = open(&BootConfig::Sim { env: env.clone() }).unwrap();
        b.set_trial(Side::B).unwrap();
        assert_eq!(b.pending_trial().unwrap(), Some(Side::B));
        assert_eq!(b.primary().unwrap(), Side::A);

        assert_eq!(sim_reboot(&env, false).unwrap(), Side::B);
        assert_eq!(b.booted().unwrap(), Some(Side::B));
        assert_eq!(
            b.pending_trial().unwrap(),
            None,
            "the trial is consumed by the boot"
        );
        // Not committed: the next boot falls back to primary.
        assert_eq!(sim_reboot(&env, false).unwrap(), Side::A);

        // Trial again, commit this time: it sticks.
        b.set_trial(Side::B).unwrap();
        assert_eq!(sim_reboot(&env, false).unwrap(), Side::B);
        b.commit(Side::B).unwrap();
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(sim_reboot(&env, false).unwrap(), Side::B);
        assert_eq!(sim_reboot(&env, false).unwrap(), Side::B);
    }

    #[test]
    fn failed_trial_falls_back_to_primary() {
        let (_dir, env) = fresh();
        let mut b = open(&BootConfig::Sim { env: env.clone() }).unwrap();
        b.set_trial(Side::B).unwrap();
        assert_eq!(sim_reboot(&env, true).unwrap(), Side::A);
        assert_eq!(b.booted().unwrap(), Some(Side::A));
        assert_eq!(
            b.pending_trial().unwrap(),
            None,
            "a failed boot still consumes the trial"
        );
        assert_eq!(b.primary().unwrap(), Side::A);
        // Without a trial, --fail changes nothing: primary boots.
        assert_eq!(sim_reboot(&env, true).unwrap(), Side::A);
    }

    #[test]
    fn commit_and_cancel_are_idempotent() {
        let (_dir, env) = fresh();
        let mut b = open(&BootConfig::Sim { env: env.clone() }).unwrap();
        b.cancel_trial().unwrap();
        b.cancel_trial().unwrap();
        b.set_trial(Side::B).unwrap();
        b.cancel_trial().unwrap();
        b.cancel_trial().unwrap();
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(sim_reboot(&env, false).unwrap(), Side::A);
        b.set_trial(Side::B).unwrap();
        b.commit(Side::B).unwrap();
        let after_first = std::fs::read(&env).unwrap();
        b.commit(Side::B).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), after_first);
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), None);
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let (_dir, env) = fresh();
        std::fs::write(&env, "primary=c\n").unwrap();
        let err = open(&BootConfig::Sim { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("primary=\"c\"") && err.contains("expected 'a' or 'b'"),
            "{err}"
        );

        std::fs::write(&env, "primary=a\ncolour=blue\n").unwrap();
        let err = open(&BootConfig::Sim { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown key \"colour\""), "{err}");

        std::fs::write(&env, "primary a\n").unwrap();
        let err = sim_reboot(&env, false).unwrap_err().to_string();
        assert!(err.contains("line 1 is not key=value"), "{err}");

        std::fs::remove_file(&env).unwrap();
        let err = sim_reboot(&env, false).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn unset_primary_defaults_to_a() {
        let (_dir, env) = fresh();
        std::fs::write(&env, "\n# nothing yet\n").unwrap();
        let b = open(&BootConfig::Sim { env: env.clone() }).unwrap();
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.booted().unwrap(), None);
        assert_eq!(sim_reboot(&env, false).unwrap(), Side::A);
    }
}
