//! The `uboot` backend: the U-Boot environment, read and written the way libubootenv's
//! `fw_printenv`/`fw_setenv` do, located by the same `fw_env.config`.
//!
//! ## fw_env.config
//!
//! One or two lines `DEVICE OFFSET ENVSIZE [SECTORSIZE [SECTORS]]`; `#` starts a comment. As in
//! libubootenv, OFFSET is a C integer (`0x` hex, leading `0` octal, else decimal; negative counts
//! back from the end of the device) and ENVSIZE is hexadecimal with or without `0x`. Two lines
//! mean a redundant environment (two copies, same size). DEVICE may be a regular file or a block
//! device (eMMC, SD); raw flash (`/dev/mtd*`, UBI) needs erase-before-write and is refused.
//!
//! ## One copy, ENVSIZE bytes
//!
//! ```text
//! offset 0  u32 little endian  CRC32 (zlib) of the data area
//! offset 4  u8                 flags, redundant environments only: a counter, the higher
//!                              (modulo 256: 0 follows 255) valid copy is the current one
//! then      data area          "name=value\0" entries sorted by name, then "\0", then padding
//!                              (zeros) to the end; the CRC covers the whole area
//! ```
//!
//! A write goes to the *other* copy with flags + 1 and is fsynced, so a power cut during it
//! leaves the current copy intact; with a single copy there is no such protection (as with
//! `fw_setenv`). Like libubootenv we hold `flock` on `/var/lock/fw_printenv.lock` across a
//! read-modify-write, so we do not race `fw_setenv`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{BootError, PRIMARY_VAR, TRIAL_VAR, VarEnv, VarStore};

const WHAT: &str = "U-Boot environment";
const CONFIG_WHAT: &str = "fw_env.config";
/// libubootenv's default lock file.
const LOCK_FILE: &str = "/var/lock/fw_printenv.lock";

/// Where one copy of the environment lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    device: PathBuf,
    /// Negative: from the end of the device.
    offset: i64,
    size: usize,
}

/// A C integer as `strtoll(s, NULL, 0)` reads it: optional sign, `0x` hex, leading `0` octal.
fn parse_c_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.starts_with(['+', '-']) {
        return None;
    }
    // from_str_radix takes a sign of its own, so "-0x-8000000000000000" read as i64::MIN and
    // overflowed when negated (a panic in debug builds; seed fw_env-overflow.config of the
    // uboot_env fuzz target).
    // Refuse a sign after the prefix, and a negation that does not fit.
    let (radix, rest) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if rest.starts_with(['+', '-']) {
        return None;
    }
    let value = i64::from_str_radix(rest, radix).ok()?;
    if negative {
        value.checked_neg()
    } else {
        Some(value)
    }
}

/// A hexadecimal number with or without `0x`, as `scanf("%zx")` reads it.
fn parse_hex(s: &str) -> Option<usize> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    usize::from_str_radix(digits, 16).ok()
}

fn parse_config(path: &Path, text: &str) -> Result<Vec<Location>, BootError> {
    let config_err = |problem: String| BootError::Config {
        what: CONFIG_WHAT,
        path: path.to_path_buf(),
        problem,
    };
    let mut copies = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let fields: Vec<&str> = line
            .split_whitespace()
            .take_while(|f| !f.starts_with('#'))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let [device, offset, size, ..] = fields[..] else {
            return Err(config_err(format!(
                "line {n} {line:?} has {} field(s); expected DEVICE OFFSET ENVSIZE \
                 [SECTORSIZE [SECTORS]]",
                fields.len()
            )));
        };
        let offset = parse_c_int(offset).ok_or_else(|| {
            config_err(format!(
                "line {n}: offset {offset:?} is not a number (e.g. 0x3e000)"
            ))
        })?;
        let size = parse_hex(size).ok_or_else(|| {
            config_err(format!(
                "line {n}: environment size {size:?} is not a hex number (e.g. 0x2000)"
            ))
        })?;
        if size < 16 {
            return Err(config_err(format!(
                "line {n}: environment size {size:#x} is too small"
            )));
        }
        if device.starts_with("/dev/mtd") || device.starts_with("/dev/ubi") || device.contains(':')
        {
            return Err(config_err(format!(
                "line {n}: {device} is raw flash (MTD/UBI), which needs erase-before-write that airlock \
                 does not do; use backend = \"command\" with a script that calls fw_setenv"
            )));
        }
        copies.push(Location {
            device: PathBuf::from(device),
            offset,
            size,
        });
    }
    match copies.as_slice() {
        [] => Err(config_err(
            "no environment location; add a line DEVICE OFFSET ENVSIZE \
             (e.g. /dev/mmcblk0boot1 0x3e000 0x2000)"
                .into(),
        )),
        [_] => Ok(copies),
        [a, b] if a.size != b.size => Err(config_err(format!(
            "the two copies have different sizes ({:#x} and {:#x}); a redundant environment \
             needs equal sizes",
            a.size, b.size
        ))),
        [_, _] => Ok(copies),
        _ => Err(config_err(format!(
            "{} locations; at most two (a redundant environment) are allowed",
            copies.len()
        ))),
    }
}

/// A parsed environment, with what a write needs to know about where it came from.
#[derive(Debug, Clone)]
pub(crate) struct UbootEnv {
    vars: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The copy it was read from (0 for a single environment).
    current: usize,
    /// That copy's flags byte (redundant only).
    flags: u8,
}

impl VarEnv for UbootEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.vars
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn set(&mut self, name: &str, value: Option<&str>) -> Result<bool, BootError> {
        let key = name.as_bytes().to_vec();
        Ok(match value {
            Some(v) => {
                self.vars.insert(key, v.as_bytes().to_vec()).as_deref() != Some(v.as_bytes())
            }
            None => self.vars.remove(&key).is_some(),
        })
    }
}

/// One copy's bytes: CRC, flags if `flags` is given, entries, terminator, zero padding; or the
/// size the entries would need when they do not fit in `size`.
fn image(
    vars: &BTreeMap<Vec<u8>, Vec<u8>>,
    size: usize,
    flags: Option<u8>,
) -> Result<Vec<u8>, usize> {
    let header = if flags.is_some() { 5 } else { 4 };
    let mut data = Vec::with_capacity(size);
    for (name, value) in vars {
        data.extend_from_slice(name);
        data.push(b'=');
        data.extend_from_slice(value);
        data.push(0);
    }
    data.push(0);
    if data.len() > size - header {
        return Err(data.len());
    }
    data.resize(size - header, 0);
    let mut out = crc32fast::hash(&data).to_le_bytes().to_vec();
    out.extend(flags);
    out.extend(data);
    Ok(out)
}

/// Why a copy is not usable.
fn check_copy(buf: &[u8], redundant: bool) -> Result<(), String> {
    let header = if redundant { 5 } else { 4 };
    let stored = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let computed = crc32fast::hash(&buf[header..]);
    if stored == computed {
        Ok(())
    } else {
        Err(format!(
            "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ))
    }
}

/// The entries of a data area, as libubootenv reads them: up to the empty entry, entries without
/// `=` skipped, a later duplicate replacing an earlier one.
fn parse_entries(data: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    let mut vars = BTreeMap::new();
    let mut p = 0;
    loop {
        let end = data[p..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("the entry at data offset {p} is not NUL-terminated"))?;
        if end == 0 {
            return Ok(vars);
        }
        let entry = &data[p..p + end];
        if let Some(eq) = entry.iter().position(|&b| b == b'=') {
            vars.insert(entry[..eq].to_vec(), entry[eq + 1..].to_vec());
        }
        p += end + 1;
        if p >= data.len() {
            return Err(
                "the entries run to the end of the area without the closing empty entry".into(),
            );
        }
    }
}

/// Which of two valid copies is current, from their flags: the higher one, where 0 follows 255
/// (libubootenv's rule for incremental flags, used for files and block devices).
fn newer_copy(flags0: u8, flags1: u8) -> usize {
    match (flags0, flags1) {
        (0xff, 0) => 1,
        (0, 0xff) => 0,
        (f0, f1) if f1 > f0 => 1,
        _ => 0,
    }
}

/// The `uboot` backend's store.
pub(crate) struct UbootStore {
    config: PathBuf,
    copies: Vec<Location>,
}

impl UbootStore {
    /// Read the fw_env.config at `config`.
    pub(crate) fn open(config: &Path) -> Result<UbootStore, BootError> {
        let text = std::fs::read_to_string(config).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BootError::NotFound {
                what: CONFIG_WHAT,
                path: config.to_path_buf(),
                hint: "write the environment's location into it, one line DEVICE OFFSET ENVSIZE per copy \
                       (the same file fw_printenv uses), or set `config` in [boot]"
                    .into(),
            },
            _ => BootError::io("read", CONFIG_WHAT, config, e),
        })?;
        Ok(UbootStore {
            config: config.to_path_buf(),
            copies: parse_config(config, &text)?,
        })
    }

    fn redundant(&self) -> bool {
        self.copies.len() == 2
    }

    fn describe(&self, loc: &Location) -> String {
        format!("{} at offset {:#x}", loc.device.display(), loc.offset)
    }

    /// Open `loc.device` and seek to the copy.
    fn seek_to(&self, loc: &Location, write: bool) -> Result<File, BootError> {
        let action = if write { "write" } else { "read" };
        let mut file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(&loc.device)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => BootError::NotFound {
                    what: WHAT,
                    path: loc.device.clone(),
                    hint: format!("check the device named in {}", self.config.display()),
                },
                _ => BootError::io(action, WHAT, &loc.device, e),
            })?;
        let pos = if loc.offset >= 0 {
            SeekFrom::Start(loc.offset.unsigned_abs())
        } else {
            SeekFrom::End(loc.offset)
        };
        file.seek(pos)
            .map_err(|e| BootError::io(action, WHAT, &loc.device, e))?;
        Ok(file)
    }

    fn read_copy(&self, loc: &Location) -> Result<Vec<u8>, BootError> {
        let mut file = self.seek_to(loc, false)?;
        let mut buf = vec![0; loc.size];
        file.read_exact(&mut buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BootError::Corrupt {
                what: WHAT,
                path: loc.device.clone(),
                problem: format!(
                    "it ends before the {:#x}-byte environment at offset {:#x} (truncated?)",
                    loc.size, loc.offset
                ),
                hint: format!(
                    "check the device, offset and size in {}",
                    self.config.display()
                ),
            },
            _ => BootError::io("read", WHAT, &loc.device, e),
        })?;
        Ok(buf)
    }

    fn corrupt(&self, loc: &Location, problem: String) -> BootError {
        BootError::Corrupt {
            what: WHAT,
            path: loc.device.clone(),
            problem,
            hint: format!(
                "it was never saved or is damaged: save it once from U-Boot (`saveenv`) or with \
                 `fw_setenv -c {} -f DEFAULT_ENV_FILE`; airlock does not write a fresh environment \
                 over U-Boot's defaults",
                self.config.display()
            ),
        }
    }
}

impl VarStore for UbootStore {
    type Env = UbootEnv;
    type Lock = Option<File>;
    const NAME: &'static str = "uboot";
    const PRIMARY: &'static str = PRIMARY_VAR;
    const TRIAL: &'static str = TRIAL_VAR;

    /// libubootenv's lock, best effort as in libubootenv (a system without /var/lock still works).
    fn lock(&self) -> Option<File> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(LOCK_FILE)
            .ok()?;
        file.lock().ok()?;
        Some(file)
    }

    fn load(&self) -> Result<UbootEnv, BootError> {
        let redundant = self.redundant();
        let header = if redundant { 5 } else { 4 };
        let bufs = self
            .copies
            .iter()
            .map(|loc| self.read_copy(loc))
            .collect::<Result<Vec<_>, _>>()?;
        let checks: Vec<Result<(), String>> =
            bufs.iter().map(|b| check_copy(b, redundant)).collect();
        let current = match checks.as_slice() {
            [Ok(())] => 0,
            [Ok(()), Ok(())] => newer_copy(bufs[0][4], bufs[1][4]),
            [Ok(()), Err(e)] | [Err(e), Ok(())] => {
                let bad = if checks[0].is_err() { 0 } else { 1 };
                tracing::warn!(
                    copy = %self.describe(&self.copies[bad]),
                    problem = %e,
                    "redundant U-Boot environment: one copy is damaged, using the other"
                );
                1 - bad
            }
            [Err(e0), Err(e1)] => {
                return Err(self.corrupt(
                    &self.copies[0],
                    format!(
                        "neither copy is valid: {}: {e0}; {}: {e1}",
                        self.describe(&self.copies[0]),
                        self.describe(&self.copies[1])
                    ),
                ));
            }
            // A single copy that is not valid.
            _ => {
                let problem = checks
                    .iter()
                    .find_map(|c| c.clone().err())
                    .unwrap_or_default();
                return Err(self.corrupt(
                    &self.copies[0],
                    format!("at offset {:#x}: {problem}", self.copies[0].offset),
                ));
            }
        };
        let buf = &bufs[current];
        let vars = parse_entries(&buf[header..]).map_err(|e| {
            self.corrupt(
                &self.copies[current],
                format!("{}: {e}", self.describe(&self.copies[current])),
            )
        })?;
        Ok(UbootEnv {
            vars,
            current,
            flags: if redundant { buf[4] } else { 0 },
        })
    }

    fn store(&mut self, env: &UbootEnv) -> Result<(), BootError> {
        let (target, flags) = if self.redundant() {
            (1 - env.current, Some(env.flags.wrapping_add(1)))
        } else {
            (0, None)
        };
        let loc = &self.copies[target];
        let bytes = image(&env.vars, loc.size, flags).map_err(|needed| BootError::NoSpace {
            what: WHAT,
            path: loc.device.clone(),
            needed: needed + if flags.is_some() { 5 } else { 4 },
            capacity: loc.size,
        })?;
        let mut file = self.seek_to(loc, true)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| BootError::io("write", WHAT, &loc.device, e))?;
        tracing::debug!(copy = %self.describe(loc), ?flags, "wrote U-Boot environment");
        Ok(())
    }

    fn bad_variable(&self, var: &str, value: &str) -> BootError {
        BootError::BadVariable {
            what: WHAT,
            path: self.copies[0].device.clone(),
            var: var.to_string(),
            value: value.to_string(),
            hint: format!(
                "fix it with `fw_setenv -c {} {var} a` (or b)",
                self.config.display()
            ),
        }
    }
}

/// One `name=value` entry of an environment, as raw bytes.
pub type EnvEntry = (Vec<u8>, Vec<u8>);

/// The parsers' entry point for fuzzing ([`super::fuzz::parse_uboot_env`]): the variables of
/// `image`, one copy or (`redundant`) two equal copies back to back, picked and parsed as
/// [`UbootStore::load`] does after reading them. Like `parse_config`, it refuses copies under 16
/// bytes.
pub fn fuzz_parse_env(image: &[u8], redundant: bool) -> Result<Vec<EnvEntry>, String> {
    let half = image.len() / 2;
    let (header, copies) = if redundant {
        (5, vec![&image[..half], &image[half..2 * half]])
    } else {
        (4, vec![image])
    };
    if copies[0].len() < 16 {
        return Err("copies are at least 16 bytes".into());
    }
    let checks: Vec<_> = copies.iter().map(|c| check_copy(c, redundant)).collect();
    let current = match checks.as_slice() {
        [Ok(())] | [Ok(()), Err(_)] => 0,
        [Ok(()), Ok(())] => newer_copy(copies[0][4], copies[1][4]),
        [Err(_), Ok(())] => 1,
        _ => return Err("no valid copy".into()),
    };
    Ok(parse_entries(&copies[current][header..])?
        .into_iter()
        .collect())
}

/// The `fw_env.config` parser's entry point for fuzzing ([`super::fuzz::parse_fw_env_config`]):
/// how many copies `text` describes.
pub fn fuzz_parse_config(text: &str) -> Result<usize, BootError> {
    parse_config(Path::new("fw_env.config"), text).map(|copies| copies.len())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::super::testutil::{require_tool, run};
    use super::super::{BootBackend, BootConfig, Side, open};
    use super::*;

    const OFFSET: usize = 0x1000;
    const SIZE: usize = 0x1000;
    const FILLER: u8 = 0xa5;

    /// A device image with the environment at 0x1000 (and 0x2000 for the redundant copy),
    /// surrounded by other data, and its fw_env.config.
    struct Device {
        dir: tempfile::TempDir,
        image: PathBuf,
        config: PathBuf,
    }

    impl Device {
        fn new(redundant: bool) -> Device {
            let dir = tempfile::tempdir().unwrap();
            let image = dir.path().join("mmcblk0boot1.img");
            std::fs::write(&image, vec![FILLER; 0x4000]).unwrap();
            let config = dir.path().join("fw_env.config");
            let mut text = format!(
                "# device offset size\n{} {OFFSET:#x} {SIZE:#x}\n",
                image.display()
            );
            if redundant {
                text += &format!("{}   0x2000 1000 # second copy\n", image.display());
            }
            std::fs::write(&config, text).unwrap();
            Device { dir, image, config }
        }

        /// Give it U-Boot's default environment, saved by fw_setenv, as on a real board.
        fn saved(redundant: bool) -> Device {
            let dev = Device::new(redundant);
            let defaults = dev.dir.path().join("defaults.txt");
            std::fs::write(&defaults, "bootcmd=run distro_bootcmd\nbaudrate=115200\n").unwrap();
            run(dev
                .setenv()
                .arg("-f")
                .arg(&defaults)
                .args(["board", "acme gw"]));
            dev
        }

        fn setenv(&self) -> Command {
            let mut c = Command::new(require_tool("fw_setenv", "libubootenv-tool"));
            c.arg("-c").arg(&self.config);
            c
        }

        fn printenv(&self) -> String {
            let mut c = Command::new(require_tool("fw_printenv", "libubootenv-tool"));
            run(c.arg("-c").arg(&self.config))
        }

        fn backend(&self) -> Box<dyn BootBackend> {
            open(&BootConfig::Uboot {
                config: self.config.clone(),
            })
            .unwrap()
        }

        fn open_err(&self) -> String {
            open(&BootConfig::Uboot {
                config: self.config.clone(),
            })
            .err()
            .unwrap()
            .to_string()
        }

        fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.image).unwrap()
        }

        fn store(&self) -> UbootStore {
            UbootStore::open(&self.config).unwrap()
        }

        /// The area outside the environment copies is untouched.
        fn assert_neighbours_intact(&self, redundant: bool) {
            let bytes = self.bytes();
            let end = if redundant { 0x3000 } else { 0x2000 };
            assert!(bytes[..OFFSET].iter().all(|&b| b == FILLER));
            assert!(bytes[end..].iter().all(|&b| b == FILLER));
            assert_eq!(bytes.len(), 0x4000);
        }
    }

    fn round_trip(redundant: bool) {
        let dev = Device::saved(redundant);
        let mut b = dev.backend();
        assert_eq!(b.name(), "uboot");
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.booted().unwrap(), None);

        // We write, fw_printenv reads; everything else is preserved.
        b.set_trial(Side::B).unwrap();
        assert_eq!(
            dev.printenv(),
            "airlock_trial=b\nbaudrate=115200\nboard=acme gw\nbootcmd=run distro_bootcmd\n"
        );
        b.commit(Side::B).unwrap();
        assert_eq!(
            dev.printenv(),
            "airlock_primary=b\nbaudrate=115200\nboard=acme gw\nbootcmd=run distro_bootcmd\n"
        );

        // fw_setenv writes, we read.
        run(dev.setenv().args(["airlock_trial", "a"]));
        assert_eq!(b.pending_trial().unwrap(), Some(Side::A));
        assert_eq!(b.primary().unwrap(), Side::B);
        run(dev.setenv().arg("airlock_trial"));
        assert_eq!(b.pending_trial().unwrap(), None);
        run(dev.setenv().args(["airlock_primary", "a"]));
        assert_eq!(b.primary().unwrap(), Side::A);

        // And back once more, interleaved.
        b.set_trial(Side::B).unwrap();
        run(dev.setenv().args(["other", "x"]));
        assert_eq!(b.pending_trial().unwrap(), Some(Side::B));
        b.cancel_trial().unwrap();
        assert_eq!(
            dev.printenv(),
            "airlock_primary=a\nbaudrate=115200\nboard=acme gw\nbootcmd=run distro_bootcmd\nother=x\n"
        );
        dev.assert_neighbours_intact(redundant);
    }

    #[test]
    fn single_env_round_trips_with_fw_tools() {
        round_trip(false);
    }

    #[test]
    fn redundant_env_round_trips_with_fw_tools() {
        round_trip(true);
    }

    #[test]
    fn redundant_writes_alternate_copies_with_incremented_flags() {
        let dev = Device::saved(true);
        let flags = |d: &Device| (d.bytes()[OFFSET + 4], d.bytes()[0x2000 + 4]);
        // Over two invalid copies fw_setenv took copy 1 as current and wrote copy 2 with copy 1's
        // flags byte (here the filler) + 1.
        const F: u8 = FILLER;
        assert_eq!(flags(&dev), (F, F + 1));
        assert_eq!(dev.store().load().unwrap().current, 1);
        let mut b = dev.backend();
        b.set_trial(Side::B).unwrap();
        assert_eq!(flags(&dev), (F + 2, F + 1));
        b.commit(Side::B).unwrap();
        assert_eq!(flags(&dev), (F + 2, F + 3));
        run(dev.setenv().args(["k", "v"]));
        assert_eq!(flags(&dev), (F + 4, F + 3));
        b.set_trial(Side::A).unwrap();
        assert_eq!(flags(&dev), (F + 4, F + 5));
    }

    /// For flag pairs including the wrap from 255 to 0, we pick the copy fw_printenv picks.
    #[test]
    fn redundant_picks_the_same_copy_as_fw_printenv() {
        let dev = Device::new(true);
        for (f0, f1) in [
            (1, 2),
            (2, 1),
            (7, 7),
            (0, 0),
            (255, 0),
            (0, 255),
            (254, 255),
            (128, 0),
            (0, 128),
        ] {
            let mut bytes = dev.bytes();
            for (copy, at, flags) in [(0, OFFSET, f0), (1, 0x2000, f1)] {
                let vars = BTreeMap::from([(b"which".to_vec(), format!("{copy}").into_bytes())]);
                bytes[at..at + SIZE].copy_from_slice(&image(&vars, SIZE, Some(flags)).unwrap());
            }
            std::fs::write(&dev.image, &bytes).unwrap();
            let theirs = dev.printenv();
            let ours = dev.store().load().unwrap();
            assert_eq!(
                theirs,
                format!("which={}\n", ours.current),
                "flags {f0} and {f1}"
            );
        }
    }

    #[test]
    fn redundant_survives_one_damaged_copy() {
        let dev = Device::saved(true);
        let mut b = dev.backend();
        b.set_trial(Side::B).unwrap(); // copy 1 is the newest
        b.commit(Side::B).unwrap(); // copy 2 is the newest
        // A power cut tore the newest copy: the previous state (trial b, primary unset) is back.
        let mut bytes = dev.bytes();
        bytes[0x2000 + 40] ^= 0xff;
        std::fs::write(&dev.image, &bytes).unwrap();
        assert_eq!(b.pending_trial().unwrap(), Some(Side::B));
        assert_eq!(b.primary().unwrap(), Side::A);
        assert!(
            dev.printenv().contains("airlock_trial=b\n"),
            "fw_printenv agrees"
        );
        // The next write replaces the damaged copy and wins.
        let older_flags = dev.bytes()[OFFSET + 4];
        b.commit(Side::B).unwrap();
        assert_eq!(dev.bytes()[0x2000 + 4], older_flags + 1);
        assert!(dev.printenv().starts_with("airlock_primary=b\nbaudrate"));
        // Damage the other copy instead: still readable.
        let mut bytes = dev.bytes();
        bytes[OFFSET + 100] ^= 0xff;
        std::fs::write(&dev.image, &bytes).unwrap();
        assert_eq!(b.primary().unwrap(), Side::B);
        // Both damaged: a clear error.
        let mut bytes = dev.bytes();
        bytes[0x2000 + 100] ^= 0xff;
        std::fs::write(&dev.image, &bytes).unwrap();
        let err = dev.open_err();
        assert!(
            err.contains("neither copy is valid") && err.contains("CRC mismatch"),
            "{err}"
        );
    }

    #[test]
    fn commit_and_cancel_are_idempotent_and_spare_writes() {
        let dev = Device::saved(true);
        let mut b = dev.backend();
        b.cancel_trial().unwrap();
        b.set_trial(Side::B).unwrap();
        b.cancel_trial().unwrap();
        let once = dev.bytes();
        b.cancel_trial().unwrap();
        assert_eq!(dev.bytes(), once, "nothing to cancel: nothing written");
        b.commit(Side::B).unwrap();
        let once = dev.bytes();
        b.commit(Side::B).unwrap();
        assert_eq!(dev.bytes(), once);
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), None);
    }

    #[test]
    fn damaged_or_missing_env_gives_clear_errors() {
        // Never saved: U-Boot would run on its built-in defaults; we refuse to write over them.
        let dev = Device::new(false);
        let err = dev.open_err();
        assert!(
            err.contains("CRC mismatch") && err.contains("saveenv") && err.contains("fw_setenv"),
            "{err}"
        );

        // Bad CRC.
        let dev = Device::saved(false);
        let mut bytes = dev.bytes();
        bytes[OFFSET + 10] ^= 1;
        std::fs::write(&dev.image, &bytes).unwrap();
        let err = dev.open_err();
        assert!(
            err.contains("mmcblk0boot1.img is not valid: at offset 0x1000: CRC mismatch"),
            "{err}"
        );

        // Truncated device.
        std::fs::write(&dev.image, &bytes[..0x1800]).unwrap();
        let err = dev.open_err();
        assert!(
            err.contains("ends before the 0x1000-byte environment at offset 0x1000"),
            "{err}"
        );

        // Missing device, missing config.
        std::fs::remove_file(&dev.image).unwrap();
        let err = dev.open_err();
        assert!(
            err.contains("mmcblk0boot1.img does not exist") && err.contains("fw_env.config"),
            "{err}"
        );
        std::fs::remove_file(&dev.config).unwrap();
        let err = dev.open_err();
        assert!(
            err.contains("fw_env.config")
                && err.contains("does not exist")
                && err.contains("DEVICE OFFSET ENVSIZE"),
            "{err}"
        );
    }

    #[test]
    fn bad_variable_value_names_the_fix() {
        let dev = Device::saved(false);
        run(dev.setenv().args(["airlock_primary", "c"]));
        let err = dev.open_err();
        assert!(
            err.contains("airlock_primary=\"c\"") && err.contains("fw_setenv -c"),
            "{err}"
        );
    }

    #[test]
    fn full_env_is_refused() {
        let dev = Device::new(false);
        std::fs::write(
            &dev.config,
            format!("{} 0x1000 0x40\n", dev.image.display()),
        )
        .unwrap();
        // 60 bytes of data: "bootcmd=" + 40 + NUL + final NUL = 50, no room for "airlock_trial=b\0".
        let defaults = dev.dir.path().join("defaults.txt");
        std::fs::write(&defaults, format!("bootcmd={}\n", "x".repeat(40))).unwrap();
        run(dev
            .setenv()
            .arg("-f")
            .arg(&defaults)
            .args(["bootcmd", &"x".repeat(40)]));
        let before = dev.bytes();
        let mut b = dev.backend();
        let err = b.set_trial(Side::B).unwrap_err().to_string();
        assert!(
            err.contains("is full: the variables need 70 bytes but only 64 fit"),
            "{err}"
        );
        assert_eq!(dev.bytes(), before);
    }

    #[test]
    fn negative_offset_counts_from_the_end() {
        let dev = Device::saved(false);
        std::fs::write(
            &dev.config,
            format!("{} -0x3000 0x1000\n", dev.image.display()),
        )
        .unwrap();
        let mut b = dev.backend();
        b.set_trial(Side::B).unwrap();
        std::fs::write(
            &dev.config,
            format!("{} 0x1000 0x1000\n", dev.image.display()),
        )
        .unwrap();
        assert!(dev.printenv().starts_with("airlock_trial=b\n"));
    }

    #[test]
    fn config_parsing() {
        let p = Path::new("/etc/fw_env.config");
        let text = "# comment\n\n/dev/mmcblk0boot1 0x3e000 0x2000 0x1000 2\n\
                    /dev/mmcblk0boot1 0x3c000 2000\n";
        let locs = parse_config(p, text).unwrap();
        assert_eq!(locs.len(), 2);
        assert_eq!(
            locs[0],
            Location {
                device: "/dev/mmcblk0boot1".into(),
                offset: 0x3e000,
                size: 0x2000
            }
        );
        assert_eq!(
            locs[1].size, 0x2000,
            "ENVSIZE is hex even without 0x, as in libubootenv"
        );
        assert_eq!(
            parse_config(p, "/x 010 0x100\n").unwrap()[0].offset,
            8,
            "leading 0 is octal"
        );
        assert_eq!(parse_config(p, "/x 4096 0x100\n").unwrap()[0].offset, 4096);
        assert_eq!(
            parse_config(p, "/x -0x100 0x100\n").unwrap()[0].offset,
            -256
        );
        assert_eq!(parse_c_int("--5"), None);
        assert_eq!(parse_c_int("-0x-8000000000000000"), None);
        assert_eq!(parse_c_int("0x-5"), None);
        assert_eq!(parse_c_int("0+5"), None);
        assert_eq!(parse_c_int("-0x8000000000000000"), None);
        assert_eq!(parse_c_int("-9223372036854775807"), Some(-i64::MAX));
        assert_eq!(parse_c_int("0"), Some(0));

        let err = |text: &str| parse_config(p, text).unwrap_err().to_string();
        assert!(err("/x 0x0\n").contains("line 1 \"/x 0x0\" has 2 field(s)"));
        assert!(err("/x zz 0x100\n").contains("offset \"zz\" is not a number"));
        assert!(err("/x 0 0xg\n").contains("size \"0xg\" is not a hex number"));
        assert!(err("# nothing\n").contains("no environment location"));
        assert!(err("/x 0 0x100\n/x 0x100 0x200\n").contains("different sizes"));
        assert!(err("/x 0 0x100\n/x 0x100 0x100\n/x 0x200 0x100\n").contains("at most two"));
        assert!(err("/dev/mtd1 0 0x100\n").contains("raw flash"));
        assert!(err("/x\n").starts_with("fw_env.config /etc/fw_env.config: line 1"));
    }

    #[test]
    fn entries_parse_like_libubootenv() {
        assert_eq!(parse_entries(b"\0\0\0").unwrap(), BTreeMap::new());
        let vars = parse_entries(b"b=2\0junk\0a=1\0b=3\0\0\xff\xff").unwrap();
        assert_eq!(
            vars,
            BTreeMap::from([
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"3".to_vec())
            ])
        );
        assert!(parse_entries(b"a=1\0b=2").is_err());
        assert!(parse_entries(b"a=1\0").is_err());
    }
}
