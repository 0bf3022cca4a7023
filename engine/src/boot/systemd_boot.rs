//! The `systemd-boot` backend: Boot Loader Specification entries with boot counting.
//!
//! The image ships one entry per slot in `ESP/loader/entries/` and a `ESP/loader/loader.conf`
//! whose `default` names the committed slot's entry:
//!
//! ```text
//! loader/loader.conf             default slota.conf          (other lines are left alone)
//! loader/entries/slota.conf      a blessed entry: no counter
//! loader/entries/slotb+1-0.conf  a trial: 1 try left, 0 done (systemd's boot counting)
//! ```
//!
//! How systemd-boot picks an entry (252, Debian 12's): the first entry whose id (its file name,
//! counter included) matches the glob in `default`; failing that, the first entry in its sort
//! order, where entries with no tries left come last. Before booting a counted entry it renames
//! it (`+1-0` → `+0-1`). So during a trial `default` is the glob `slotb+[1-9]*.conf`: it matches
//! slot b's entry while it has tries left and nothing once they are used up, and then the
//! committed slot's entry, the only good one, is the first in the order. Airlock's two facts:
//!
//! - **trial**: the slot `default` names has a counted entry with tries left;
//! - **primary**: the slot `default` names if its entry is blessed, else the other slot.
//!
//! [`set_trial`](BootBackend::set_trial) renames the slot's entry to `slotX+N-0.conf` (N =
//! `tries`), then points `default` at it; [`commit`](BootBackend::commit) points `default` at
//! `slotX.conf`, then blesses the entry (renames it to `slotX.conf`, as `systemd-bless-boot good`
//! does); [`cancel_trial`](BootBackend::cancel_trial) marks a counted entry bad (`+0-D`, as
//! `systemd-bless-boot bad` does), then points `default` back at the other slot. Each step is one
//! rename or one atomic rewrite, ordered so that after a power cut between two, what Airlock
//! reads is what systemd-boot boots. Other entries in the directory must sort after Airlock's
//! (systemd-boot orders ids downwards: `debian.conf` does, `ubuntu.conf` would not).
//!
//! The EFI variables `LoaderEntryDefault` (`bootctl set-default`, the menu's `d` key) and
//! `LoaderEntryOneShot` (`bootctl set-oneshot`) override `loader.conf`: Airlock refuses to switch
//! while either is set, since systemd-boot would not follow it.

use std::fs;
use std::path::{Path, PathBuf};

use super::{BootBackend, BootError, Side};
use crate::fsutil::{atomic_write, sync_dir};

const WHAT_LOADER: &str = "systemd-boot loader.conf";
const WHAT_ENTRIES: &str = "systemd-boot entries directory";
const WHAT_ENTRY: &str = "systemd-boot entry";
/// systemd-boot's vendor GUID for its EFI variables.
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Where the kernel shows EFI variables.
pub(crate) const DEFAULT_EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The EFI variables that override `loader.conf`'s default, and the bootctl verb that sets them.
const OVERRIDES: [(&str, &str); 2] = [
    ("LoaderEntryDefault", "set-default"),
    ("LoaderEntryOneShot", "set-oneshot"),
];

/// A boot counter in an entry's file name: `+LEFT` or `+LEFT-DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counter {
    left: u32,
    done: u32,
}

/// One slot's entry as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    file: String,
    counter: Option<Counter>,
}

impl Entry {
    fn pending(&self) -> bool {
        self.counter.is_some_and(|c| c.left > 0)
    }
}

/// The entry file name of `slot`, blessed or with a counter.
fn entry_name(slot: Side, counter: Option<Counter>) -> String {
    match counter {
        None => format!("slot{slot}.conf"),
        Some(c) => format!("slot{slot}+{}-{}.conf", c.left, c.done),
    }
}

/// `slota.conf`, `slotb+3.conf`, `slotb+2-1.conf` → the slot and its counter; None for any
/// other file (the directory may hold other entries).
fn parse_entry_name(name: &str) -> Option<(Side, Option<Counter>)> {
    let stem = name.strip_suffix(".conf")?.strip_prefix("slot")?;
    let slot = stem.get(..1)?.parse().ok()?;
    let rest = &stem[1..];
    if rest.is_empty() {
        return Some((slot, None));
    }
    let counter = rest.strip_prefix('+')?;
    let number = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (left, done) = match counter.split_once('-') {
        Some((left, done)) => (number(left)?, number(done)?),
        None => (number(counter)?, 0),
    };
    Some((slot, Some(Counter { left, done })))
}

/// `default`'s value while `slot` is on trial: its counted entry while it has tries left.
fn trial_pattern(slot: Side) -> String {
    format!("slot{slot}+[1-9]*.conf")
}

/// The slot a `default` value names: `slota.conf`, `slota` (an id without its suffix) or
/// [`trial_pattern`], either case of the letter.
fn parse_default(value: &str) -> Option<Side> {
    let id = value.strip_suffix(".conf").unwrap_or(value);
    let id = id.strip_suffix("+[1-9]*").unwrap_or(id);
    id.strip_prefix("slot")?.parse().ok()
}

/// Both entries and the default, read together.
struct State {
    default: Side,
    /// `default`'s value as written.
    default_value: String,
    /// loader.conf as read, which a change of `default` rewrites.
    loader_text: String,
    a: Entry,
    b: Entry,
}

impl State {
    fn entry(&self, slot: Side) -> &Entry {
        match slot {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn primary(&self) -> Side {
        if self.entry(self.default).counter.is_none() {
            self.default
        } else {
            self.default.other()
        }
    }
}

pub(crate) struct SystemdBoot {
    loader_conf: PathBuf,
    entries: PathBuf,
    tries: u32,
    efivars: PathBuf,
}

impl SystemdBoot {
    /// `esp` is the partition systemd-boot reads `loader/` from; `tries` the boot attempts a
    /// trial gets (1: one-shot, like the other backends).
    pub(crate) fn open(esp: &Path, tries: u32, efivars: &Path) -> Result<SystemdBoot, BootError> {
        if tries == 0 {
            return Err(BootError::InvalidConfig(
                "tries = 0 would never boot a trial; use 1 (the default) or more".into(),
            ));
        }
        let backend = SystemdBoot {
            loader_conf: esp.join("loader/loader.conf"),
            entries: esp.join("loader/entries"),
            tries,
            efivars: efivars.to_path_buf(),
        };
        backend.state()?;
        Ok(backend)
    }

    fn state(&self) -> Result<State, BootError> {
        let text = fs::read_to_string(&self.loader_conf).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BootError::NotFound {
                what: WHAT_LOADER,
                path: self.loader_conf.clone(),
                hint: "the image must ship it with `default slota.conf` (see docs/integrator.md)"
                    .into(),
            },
            _ => BootError::io("read", WHAT_LOADER, &self.loader_conf, e),
        })?;
        let value = default_value(&text).ok_or_else(|| BootError::Corrupt {
            what: WHAT_LOADER,
            path: self.loader_conf.clone(),
            problem: "it has no `default` line, so systemd-boot picks an entry by its own order"
                .into(),
            hint: "add `default slota.conf` (the committed slot's entry)".into(),
        })?;
        let default = parse_default(value).ok_or_else(|| BootError::BadVariable {
            what: WHAT_LOADER,
            path: self.loader_conf.clone(),
            var: "default".into(),
            value: value.into(),
            hint: "name Airlock's entries: `default slota.conf` or `default slotb.conf`".into(),
        })?;
        let (a, b) = self.entries()?;
        Ok(State {
            default,
            default_value: value.to_string(),
            loader_text: text,
            a,
            b,
        })
    }

    /// The entry of each slot; exactly one file per slot.
    fn entries(&self) -> Result<(Entry, Entry), BootError> {
        let dir = fs::read_dir(&self.entries).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BootError::NotFound {
                what: WHAT_ENTRIES,
                path: self.entries.clone(),
                hint: "the image must ship loader/entries/slota.conf and slotb.conf (see \
                       docs/integrator.md)"
                    .into(),
            },
            _ => BootError::io("list", WHAT_ENTRIES, &self.entries, e),
        })?;
        let mut found: [Vec<Entry>; 2] = [Vec::new(), Vec::new()];
        for item in dir {
            let item = item.map_err(|e| BootError::io("list", WHAT_ENTRIES, &self.entries, e))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some((slot, counter)) = parse_entry_name(&name) {
                found[slot as usize].push(Entry {
                    file: name,
                    counter,
                });
            }
        }
        let [a, b] = found;
        Ok((self.one(Side::A, a)?, self.one(Side::B, b)?))
    }

    fn one(&self, slot: Side, mut found: Vec<Entry>) -> Result<Entry, BootError> {
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(BootError::NotFound {
                what: WHAT_ENTRY,
                path: self.entries.join(entry_name(slot, None)),
                hint: format!(
                    "the image must ship an entry for slot {slot} that boots it with \
                     airlock.slot={slot} (see docs/integrator.md)"
                ),
            }),
            _ => {
                let mut names: Vec<_> = found.into_iter().map(|e| e.file).collect();
                names.sort();
                Err(BootError::Corrupt {
                    what: WHAT_ENTRIES,
                    path: self.entries.clone(),
                    problem: format!(
                        "slot {slot} has {} entries: {}",
                        names.len(),
                        names.join(", ")
                    ),
                    hint: format!(
                        "keep one and remove the others; Airlock renames only {}",
                        entry_name(slot, None)
                    ),
                })
            }
        }
    }

    /// Rename `slot`'s entry to carry `counter` (None: blessed), durably. No-op if it already does.
    fn rename(&self, state: &State, slot: Side, counter: Option<Counter>) -> Result<(), BootError> {
        let from = self.entries.join(&state.entry(slot).file);
        let to = self.entries.join(entry_name(slot, counter));
        if from == to {
            return Ok(());
        }
        tracing::debug!(from = %from.display(), to = %to.display(), "renaming boot entry");
        fs::rename(&from, &to).map_err(|e| BootError::io("rename", WHAT_ENTRY, &from, e))?;
        // On vfat the directory entry is written with the file: sync both.
        fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .and_then(|()| sync_dir(&self.entries))
            .map_err(|e| BootError::io("sync", WHAT_ENTRY, &to, e))
    }

    /// Set `default` to `value`, keeping every other line of loader.conf.
    fn set_default(&self, state: &State, value: &str) -> Result<(), BootError> {
        if state.default_value == value {
            return Ok(());
        }
        let updated = with_default(&state.loader_text, value);
        atomic_write(&self.loader_conf, updated.as_bytes())
            .map_err(|e| BootError::io("write", WHAT_LOADER, &self.loader_conf, e))
    }

    /// An error if an EFI variable would make systemd-boot ignore loader.conf's default.
    fn check_no_override(&self) -> Result<(), BootError> {
        for (var, verb) in OVERRIDES {
            let path = self.efivars.join(format!("{var}-{LOADER_GUID}"));
            if path.exists() {
                return Err(BootError::Config {
                    what: "EFI variable",
                    path,
                    problem: format!(
                        "it overrides loader.conf's default, so systemd-boot would not boot the \
                         slot Airlock chooses; remove it with `bootctl {verb} \"\"`"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The value of loader.conf's `default`: its last line wins, as in systemd-boot.
fn default_value(text: &str) -> Option<&str> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("default")?;
            rest.starts_with(char::is_whitespace).then(|| rest.trim())
        })
        .next_back()
}

/// `text` with its `default` line(s) replaced by one naming `entry` where the first stood (or
/// appended).
fn with_default(text: &str, entry: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut written = false;
    for line in text.lines() {
        if default_value(line).is_some() {
            if !written {
                out.push_str(&format!("default {entry}\n"));
                written = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !written {
        out.push_str(&format!("default {entry}\n"));
    }
    out
}

impl BootBackend for SystemdBoot {
    fn name(&self) -> &'static str {
        "systemd-boot"
    }

    fn primary(&self) -> Result<Side, BootError> {
        Ok(self.state()?.primary())
    }

    fn pending_trial(&self) -> Result<Option<Side>, BootError> {
        let state = self.state()?;
        Ok(state
            .entry(state.default)
            .pending()
            .then_some(state.default))
    }

    fn set_trial(&mut self, slot: Side) -> Result<(), BootError> {
        let state = self.state()?;
        if slot == state.primary() {
            tracing::info!(%slot, "slot is already primary: nothing to try");
            return Ok(());
        }
        self.check_no_override()?;
        tracing::info!(backend = "systemd-boot", %slot, tries = self.tries, "setting trial boot");
        let counter = Counter {
            left: self.tries,
            done: 0,
        };
        // Counted first: until `default` names it, the entry is only a spare in the menu.
        self.rename(&state, slot, Some(counter))?;
        self.set_default(&state, &trial_pattern(slot))
    }

    fn commit(&mut self, slot: Side) -> Result<(), BootError> {
        let state = self.state()?;
        let blessed = entry_name(slot, None);
        if state.entry(slot).counter.is_none() && state.default_value == blessed {
            return Ok(());
        }
        self.check_no_override()?;
        tracing::info!(backend = "systemd-boot", %slot, "committing slot as primary (blessing its entry)");
        // `default` first: it matches nothing until the rename, and systemd-boot falls back to the
        // only good entry, the other slot's, which is also what Airlock reads until the rename.
        self.set_default(&state, &blessed)?;
        self.rename(&state, slot, None)
    }

    fn cancel_trial(&mut self) -> Result<(), BootError> {
        let state = self.state()?;
        let trial = state.default;
        let Some(counter) = state.entry(trial).counter else {
            return Ok(());
        };
        tracing::info!(backend = "systemd-boot", slot = %trial, "cancelling trial boot (marking its entry bad)");
        if counter.left > 0 {
            let bad = Counter {
                left: 0,
                done: counter.done,
            };
            self.rename(&state, trial, Some(bad))?;
        }
        self.set_default(&state, &entry_name(trial.other(), None))
    }

    fn booted(&self) -> Result<Option<Side>, BootError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Esp {
        _dir: tempfile::TempDir,
        root: PathBuf,
        efivars: PathBuf,
    }

    impl Esp {
        /// A factory ESP: both entries blessed, `default slota.conf`, a timeout line to keep.
        fn new() -> Esp {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("esp");
            fs::create_dir_all(root.join("loader/entries")).unwrap();
            fs::write(
                root.join("loader/loader.conf"),
                "# the board's loader\ntimeout 0\ndefault slota.conf\neditor no\n",
            )
            .unwrap();
            for slot in ["a", "b"] {
                fs::write(
                    root.join(format!("loader/entries/slot{slot}.conf")),
                    format!("title Slot {slot}\nlinux /airlock/{slot}/vmlinuz\n"),
                )
                .unwrap();
            }
            fs::write(root.join("loader/entries/debian.conf"), "title other\n").unwrap();
            let efivars = dir.path().join("efivars");
            fs::create_dir(&efivars).unwrap();
            Esp {
                _dir: dir,
                root,
                efivars,
            }
        }

        fn open(&self, tries: u32) -> Result<SystemdBoot, BootError> {
            SystemdBoot::open(&self.root, tries, &self.efivars)
        }

        /// The entry files, sorted, and loader.conf.
        fn files(&self) -> (Vec<String>, String) {
            let mut names: Vec<String> = fs::read_dir(self.root.join("loader/entries"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            let conf = fs::read_to_string(self.root.join("loader/loader.conf")).unwrap();
            (names, conf)
        }

        /// What systemd-boot 252 does at boot: the first entry whose file name matches `default`
        /// (Airlock writes an exact name or [`trial_pattern`]), else the first in its order (no
        /// tries left last, then names downwards); a counted entry is counted down before it
        /// boots. Returns the slot booted.
        fn firmware_boots(&self) -> Side {
            let (mut names, conf) = self.files();
            let default = default_value(&conf).unwrap().to_string();
            let matches = |name: &str| match default.strip_suffix("+[1-9]*.conf") {
                Some(prefix) => name
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('+'))
                    .is_some_and(|rest| rest.starts_with(|c: char| ('1'..='9').contains(&c))),
                None => name == default,
            };
            let bad = |name: &str| {
                parse_entry_name(name).is_some_and(|(_, c)| c.is_some_and(|c| c.left == 0))
            };
            names.sort_by(|x, y| bad(x).cmp(&bad(y)).then(y.cmp(x)));
            let file = names
                .iter()
                .find(|n| matches(n))
                .or(names.first())
                .unwrap()
                .clone();
            let (slot, counter) = parse_entry_name(&file).expect("an Airlock entry boots");
            if let Some(c) = counter.filter(|c| c.left > 0) {
                let next = entry_name(
                    slot,
                    Some(Counter {
                        left: c.left - 1,
                        done: c.done + 1,
                    }),
                );
                let dir = self.root.join("loader/entries");
                fs::rename(dir.join(&file), dir.join(next)).unwrap();
            }
            slot
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entry_names() {
        assert_eq!(parse_entry_name("slota.conf"), Some((Side::A, None)));
        assert_eq!(
            parse_entry_name("slotb+3.conf"),
            Some((Side::B, Some(Counter { left: 3, done: 0 })))
        );
        assert_eq!(
            parse_entry_name("slotb+2-1.conf"),
            Some((Side::B, Some(Counter { left: 2, done: 1 })))
        );
        for other in [
            "slotc.conf",
            "slota",
            "slotab.conf",
            "slotb+.conf",
            "slotb+1-.conf",
            "slotb+x.conf",
            "debian.conf",
            "slotb+-1.conf",
        ] {
            assert_eq!(parse_entry_name(other), None, "{other}");
        }
        assert_eq!(
            entry_name(Side::B, Some(Counter { left: 1, done: 0 })),
            "slotb+1-0.conf"
        );
        assert_eq!(parse_default("slotb.conf"), Some(Side::B));
        assert_eq!(parse_default("slota"), Some(Side::A));
        assert_eq!(parse_default(&trial_pattern(Side::B)), Some(Side::B));
        assert_eq!(parse_default("debian.conf"), None);
    }

    #[test]
    fn loader_conf_default_line() {
        assert_eq!(
            default_value("timeout 3\ndefault  slotb.conf \n"),
            Some("slotb.conf")
        );
        assert_eq!(default_value("defaults x\n#default slotb.conf\n"), None);
        assert_eq!(
            default_value("default slota.conf\ndefault slotb.conf\n"),
            Some("slotb.conf")
        );
        assert_eq!(
            with_default(
                "timeout 0\ndefault slota.conf\neditor no\ndefault x\n",
                "slotb.conf"
            ),
            "timeout 0\ndefault slotb.conf\neditor no\n"
        );
        assert_eq!(
            with_default("timeout 0", "slota.conf"),
            "timeout 0\ndefault slota.conf\n"
        );
    }

    #[test]
    fn trial_boots_once_then_commit_blesses() {
        let esp = Esp::new();
        let mut b = esp.open(1).unwrap();
        assert_eq!(b.name(), "systemd-boot");
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.booted().unwrap(), None);

        b.set_trial(Side::B).unwrap();
        let (entries, conf) = esp.files();
        assert_eq!(
            entries,
            names(&["debian.conf", "slota.conf", "slotb+1-0.conf"])
        );
        assert_eq!(
            conf,
            "# the board's loader\ntimeout 0\ndefault slotb+[1-9]*.conf\neditor no\n"
        );
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.pending_trial().unwrap(), Some(Side::B));

        // systemd-boot consumes the try before booting b.
        assert_eq!(esp.firmware_boots(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.primary().unwrap(), Side::A);

        b.commit(Side::B).unwrap();
        let (entries, conf) = esp.files();
        assert_eq!(entries, names(&["debian.conf", "slota.conf", "slotb.conf"]));
        assert!(conf.contains("default slotb.conf\n"), "{conf}");
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(esp.firmware_boots(), Side::B);

        // Idempotent: a second commit changes nothing.
        b.commit(Side::B).unwrap();
        assert_eq!(esp.files(), (entries, conf));
    }

    #[test]
    fn a_trial_that_never_comes_up_falls_back() {
        let esp = Esp::new();
        let mut b = esp.open(1).unwrap();
        b.set_trial(Side::B).unwrap();
        assert_eq!(esp.firmware_boots(), Side::B); // hangs: no commit
        assert_eq!(esp.firmware_boots(), Side::A);
        assert_eq!(esp.firmware_boots(), Side::A);
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.pending_trial().unwrap(), None);

        // Airlock, back in a, records the rollback: default returns to a, b stays marked bad.
        b.cancel_trial().unwrap();
        let (entries, conf) = esp.files();
        assert_eq!(
            entries,
            names(&["debian.conf", "slota.conf", "slotb+0-1.conf"])
        );
        assert!(conf.contains("default slota.conf\n"), "{conf}");
        b.cancel_trial().unwrap();
        assert_eq!(esp.files(), (entries, conf));

        // The next update tries b again.
        b.set_trial(Side::B).unwrap();
        assert_eq!(
            esp.files().0,
            names(&["debian.conf", "slota.conf", "slotb+1-0.conf"])
        );
        assert_eq!(b.pending_trial().unwrap(), Some(Side::B));
    }

    #[test]
    fn more_tries_and_a_failed_check_marks_the_entry_bad() {
        let esp = Esp::new();
        let mut b = esp.open(3).unwrap();
        b.set_trial(Side::B).unwrap();
        assert_eq!(
            esp.files().0,
            names(&["debian.conf", "slota.conf", "slotb+3-0.conf"])
        );
        assert_eq!(esp.firmware_boots(), Side::B);
        assert_eq!(esp.firmware_boots(), Side::B);
        // Up, but its check fails: Airlock gives up on b at once.
        b.cancel_trial().unwrap();
        assert_eq!(
            esp.files().0,
            names(&["debian.conf", "slota.conf", "slotb+0-2.conf"])
        );
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(esp.firmware_boots(), Side::A);
    }

    #[test]
    fn cancel_before_the_reboot_and_trial_of_primary() {
        let esp = Esp::new();
        let mut b = esp.open(1).unwrap();
        b.set_trial(Side::A).unwrap(); // a is primary: nothing to do
        assert_eq!(
            esp.files().0,
            names(&["debian.conf", "slota.conf", "slotb.conf"])
        );
        b.set_trial(Side::B).unwrap();
        b.cancel_trial().unwrap();
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(esp.firmware_boots(), Side::A);
    }

    #[test]
    fn committing_back_after_the_second_slot_was_committed() {
        let esp = Esp::new();
        let mut b = esp.open(1).unwrap();
        b.set_trial(Side::B).unwrap();
        esp.firmware_boots();
        b.commit(Side::B).unwrap();
        b.set_trial(Side::A).unwrap();
        assert_eq!(
            esp.files().0,
            names(&["debian.conf", "slota+1-0.conf", "slotb.conf"])
        );
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), Some(Side::A));
        // A rollback path: commit the old slot while the trial is pending.
        b.commit(Side::B).unwrap();
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(esp.firmware_boots(), Side::B);
    }

    /// Each switch is two writes; a power cut between them must leave a state that Airlock
    /// reads as systemd-boot boots it.
    #[test]
    fn a_power_cut_between_the_two_writes_reads_as_what_boots() {
        let esp = Esp::new();
        let b = esp.open(1).unwrap();
        let entries = esp.root.join("loader/entries");
        let conf = esp.root.join("loader/loader.conf");
        let set_default = |value: &str| {
            let text = fs::read_to_string(&conf).unwrap();
            fs::write(&conf, with_default(&text, value)).unwrap();
        };

        // set_trial(b) cut after the rename: a is still what boots, and no trial is pending.
        fs::rename(entries.join("slotb.conf"), entries.join("slotb+1-0.conf")).unwrap();
        assert_eq!(
            (b.primary().unwrap(), b.pending_trial().unwrap()),
            (Side::A, None)
        );
        assert_eq!(esp.firmware_boots(), Side::A);

        // The trial, booted; then commit(b) cut after `default`: b's entry is still counted, so
        // Airlock reads a as primary, and a is what boots.
        set_default(&trial_pattern(Side::B));
        assert_eq!(esp.firmware_boots(), Side::B);
        set_default("slotb.conf");
        assert_eq!(
            (b.primary().unwrap(), b.pending_trial().unwrap()),
            (Side::A, None)
        );
        assert_eq!(esp.firmware_boots(), Side::A);

        // cancel_trial cut after marking bad: a again, both ways.
        let mut b = esp.open(1).unwrap();
        b.commit(Side::B).unwrap();
        b.set_trial(Side::A).unwrap();
        fs::rename(
            entries.join("slota+1-0.conf"),
            entries.join("slota+0-0.conf"),
        )
        .unwrap();
        assert_eq!(
            (b.primary().unwrap(), b.pending_trial().unwrap()),
            (Side::B, None)
        );
        assert_eq!(esp.firmware_boots(), Side::B);
    }

    #[test]
    fn an_efi_override_stops_a_switch() {
        let esp = Esp::new();
        let mut b = esp.open(1).unwrap();
        let var = esp
            .efivars
            .join(format!("LoaderEntryDefault-{LOADER_GUID}"));
        fs::write(&var, b"x").unwrap();
        let err = b.set_trial(Side::B).unwrap_err().to_string();
        assert!(
            err.contains("LoaderEntryDefault") && err.contains("bootctl set-default \"\""),
            "{err}"
        );
        assert_eq!(b.pending_trial().unwrap(), None, "nothing was changed");
        fs::remove_file(&var).unwrap();
        b.set_trial(Side::B).unwrap();
    }

    #[test]
    fn bad_layouts_give_clear_errors() {
        let esp = Esp::new();
        let conf = esp.root.join("loader/loader.conf");
        let entries = esp.root.join("loader/entries");

        fs::write(&conf, "timeout 0\n").unwrap();
        let err = esp.open(1).err().unwrap().to_string();
        assert!(
            err.contains("no `default` line") && err.contains("default slota.conf"),
            "{err}"
        );

        fs::write(&conf, "default debian.conf\n").unwrap();
        let err = esp.open(1).err().unwrap().to_string();
        assert!(
            err.contains("\"debian.conf\"") && err.contains("default slotb.conf"),
            "{err}"
        );

        fs::write(&conf, "default slota.conf\n").unwrap();
        fs::write(entries.join("slotb+1-0.conf"), "").unwrap();
        let err = esp.open(1).err().unwrap().to_string();
        assert!(
            err.contains("slot b has 2 entries: slotb+1-0.conf, slotb.conf"),
            "{err}"
        );

        fs::remove_file(entries.join("slotb+1-0.conf")).unwrap();
        fs::remove_file(entries.join("slotb.conf")).unwrap();
        let err = esp.open(1).err().unwrap().to_string();
        assert!(
            err.contains("slotb.conf does not exist") && err.contains("airlock.slot=b"),
            "{err}"
        );

        fs::remove_file(&conf).unwrap();
        let err = esp.open(1).err().unwrap().to_string();
        assert!(
            err.contains("loader.conf") && err.contains("does not exist"),
            "{err}"
        );

        let err = esp.open(0).err().unwrap().to_string();
        assert!(err.contains("tries = 0"), "{err}");
    }
}
