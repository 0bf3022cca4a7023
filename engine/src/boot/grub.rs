//! The `grub` backend: a GRUB environment block, as `grub-editenv` and GRUB's
//! `load_env`/`save_env` read and write it.
//!
//! The block is exactly [`BLOCK_SIZE`] bytes:
//!
//! ```text
//! # GRUB Environment Block\n        signature, always first
//! # WARNING: ...\n                  '#' lines are comments (Debian's grub-editenv writes one)
//! name=value\n                      one line per variable; in a value '\' and newline are escaped
//! ...                               with a backslash
//! ##########...                     padding with '#' up to the block size
//! ```
//!
//! Edits follow `grub-editenv`: setting an existing variable rewrites it in place, a new one is
//! appended after the last line, unsetting removes its line; comments and other variables are
//! kept byte for byte. The result is written with [`atomic_write`]. GRUB's `save_env` rewrites
//! the file in place at boot, so the file must live on a filesystem GRUB can write (FAT, ext2/3/4;
//! not btrfs, LVM, RAID or an encrypted volume).

use std::path::{Path, PathBuf};

use super::{BootError, PRIMARY_VAR, TRIAL_VAR, VarEnv, VarStore};
use crate::fsutil::atomic_write;

/// The size `grub-editenv create` gives a block, and the only size this backend accepts.
pub(crate) const BLOCK_SIZE: usize = 1024;
const SIGNATURE: &[u8] = b"# GRUB Environment Block\n";
const WHAT: &str = "grub environment";

/// One line of the block after the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A variable: its name, its unescaped value and the line as stored (with its newline).
    Var {
        name: Vec<u8>,
        value: Vec<u8>,
        raw: Vec<u8>,
    },
    /// A comment line, kept as stored.
    Comment(Vec<u8>),
}

/// A parsed environment block.
#[derive(Debug, Clone)]
pub(crate) struct GrubEnv {
    path: PathBuf,
    lines: Vec<Line>,
}

fn escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if b == b'\\' || b == b'\n' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

impl GrubEnv {
    fn corrupt(path: &Path, problem: String) -> BootError {
        BootError::Corrupt {
            what: WHAT,
            path: path.to_path_buf(),
            problem,
            hint: format!(
                "recreate it with `grub-editenv {} create` (this resets every variable in it)",
                path.display()
            ),
        }
    }

    pub(crate) fn parse(path: &Path, buf: &[u8]) -> Result<GrubEnv, BootError> {
        if !buf.starts_with(SIGNATURE) {
            return Err(BootError::Corrupt {
                what: WHAT,
                path: path.to_path_buf(),
                problem:
                    "it is not a GRUB environment block (missing '# GRUB Environment Block' header)"
                        .into(),
                hint: format!("create it with `grub-editenv {} create`", path.display()),
            });
        }
        if buf.len() != BLOCK_SIZE {
            return Err(Self::corrupt(
                path,
                format!(
                    "it is {} bytes, a GRUB environment block is {BLOCK_SIZE} (truncated, or \
                     not made by grub-editenv?)",
                    buf.len()
                ),
            ));
        }
        let mut lines = Vec::new();
        let mut p = SIGNATURE.len();
        while p < buf.len() {
            let rest = &buf[p..];
            if rest[0] == b'#' {
                match rest.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        lines.push(Line::Comment(rest[..=nl].to_vec()));
                        p += nl + 1;
                        continue;
                    }
                    // '#' up to the end: the padding.
                    None if rest.iter().all(|&b| b == b'#') => break,
                    None => {
                        return Err(Self::corrupt(
                            path,
                            format!("unexpected bytes in the padding at offset {p}"),
                        ));
                    }
                }
            }
            let eq = rest
                .iter()
                .position(|&b| b == b'=' || b == b'\n')
                .filter(|&i| rest[i] == b'=')
                .ok_or_else(|| {
                    Self::corrupt(
                        path,
                        format!("line at offset {p} is neither a comment nor name=value"),
                    )
                })?;
            let mut value = Vec::new();
            let mut i = eq + 1;
            let end = loop {
                match rest.get(i) {
                    None => {
                        return Err(Self::corrupt(
                            path,
                            format!("variable at offset {p} runs past the end of the block"),
                        ));
                    }
                    Some(b'\n') => break i,
                    Some(b'\\') => {
                        let escaped = rest.get(i + 1).ok_or_else(|| {
                            Self::corrupt(
                                path,
                                format!("variable at offset {p} runs past the end of the block"),
                            )
                        })?;
                        value.push(*escaped);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            };
            lines.push(Line::Var {
                name: rest[..eq].to_vec(),
                value,
                raw: rest[..=end].to_vec(),
            });
            p += end + 1;
        }
        Ok(GrubEnv {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// The block's bytes: signature, lines, '#' padding; an error if they do not fit.
    pub(crate) fn render(&self) -> Result<Vec<u8>, BootError> {
        let mut out = SIGNATURE.to_vec();
        for line in &self.lines {
            match line {
                Line::Var { raw, .. } | Line::Comment(raw) => out.extend_from_slice(raw),
            }
        }
        if out.len() > BLOCK_SIZE {
            return Err(BootError::NoSpace {
                what: WHAT,
                path: self.path.clone(),
                needed: out.len(),
                capacity: BLOCK_SIZE,
            });
        }
        out.resize(BLOCK_SIZE, b'#');
        Ok(out)
    }
}

impl VarEnv for GrubEnv {
    /// The last assignment wins, as when GRUB's `load_env` reads the block.
    fn get(&self, name: &str) -> Option<String> {
        self.lines.iter().rev().find_map(|line| match line {
            Line::Var { name: n, value, .. } if n == name.as_bytes() => {
                Some(String::from_utf8_lossy(value).into_owned())
            }
            _ => None,
        })
    }

    fn set(&mut self, name: &str, value: Option<&str>) -> Result<bool, BootError> {
        let before = self.lines.clone();
        let is_it = |line: &Line| matches!(line, Line::Var { name: n, .. } if n == name.as_bytes());
        let first = self.lines.iter().position(is_it);
        let new_line = value.map(|v| {
            let mut raw = name.as_bytes().to_vec();
            raw.push(b'=');
            raw.extend(escape(v.as_bytes()));
            raw.push(b'\n');
            Line::Var {
                name: name.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
                raw,
            }
        });
        // Keep the first occurrence's position (as grub-editenv does), drop any duplicates.
        let mut i = 0;
        self.lines.retain(|line| {
            let keep = !is_it(line) || Some(i) == first;
            i += 1;
            keep
        });
        match (first, new_line) {
            (Some(at), Some(line)) => self.lines[at] = line,
            (Some(at), None) => {
                self.lines.remove(at);
            }
            (None, Some(line)) => self.lines.push(line),
            (None, None) => {}
        }
        Ok(self.lines != before)
    }
}

/// The `grub` backend's store: the block at `path`, re-read on every call.
pub(crate) struct GrubStore {
    path: PathBuf,
}

impl GrubStore {
    pub(crate) fn new(path: &Path) -> GrubStore {
        GrubStore {
            path: path.to_path_buf(),
        }
    }
}

impl VarStore for GrubStore {
    type Env = GrubEnv;
    type Lock = ();
    const NAME: &'static str = "grub";
    const PRIMARY: &'static str = PRIMARY_VAR;
    const TRIAL: &'static str = TRIAL_VAR;

    fn lock(&self) {}

    fn load(&self) -> Result<GrubEnv, BootError> {
        let buf = std::fs::read(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BootError::NotFound {
                what: WHAT,
                path: self.path.clone(),
                hint: format!(
                    "create it with `grub-editenv {} create`",
                    self.path.display()
                ),
            },
            _ => BootError::io("read", WHAT, &self.path, e),
        })?;
        GrubEnv::parse(&self.path, &buf)
    }

    fn store(&mut self, env: &GrubEnv) -> Result<(), BootError> {
        let bytes = env.render()?;
        atomic_write(&self.path, &bytes).map_err(|e| BootError::io("write", WHAT, &self.path, e))
    }

    fn bad_variable(&self, var: &str, value: &str) -> BootError {
        BootError::BadVariable {
            what: WHAT,
            path: self.path.clone(),
            var: var.to_string(),
            value: value.to_string(),
            hint: format!(
                "fix it with `grub-editenv {} set {var}=a` (or b)",
                self.path.display()
            ),
        }
    }
}

/// The parser's entry point for fuzzing ([`super::fuzz::parse_grub_env`]): parses `block` as
/// [`GrubStore`] does after reading the file, and renders the result back.
pub fn fuzz_parse(block: &[u8]) -> Result<Vec<u8>, BootError> {
    GrubEnv::parse(Path::new("grubenv"), block)?.render()
}

/// Write an empty environment block, as `grub-editenv FILE create` does (without Debian's
/// warning comment).
#[cfg(test)]
pub(crate) fn create(path: &Path) -> Result<(), BootError> {
    let env = GrubEnv {
        path: path.to_path_buf(),
        lines: Vec::new(),
    };
    atomic_write(path, &env.render()?).map_err(|e| BootError::io("write", WHAT, path, e))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::super::testutil::{require_tool, run};
    use super::super::{BootBackend, BootConfig, Side, open};
    use super::*;

    fn editenv() -> Command {
        Command::new(require_tool("grub-editenv", "grub-common"))
    }

    /// A block made by the real tool, with other variables in it.
    fn made_by_grub(dir: &Path) -> PathBuf {
        let env = dir.join("grubenv");
        run(editenv().arg(&env).arg("create"));
        run(editenv().arg(&env).args([
            "set",
            "saved_entry=Linux 6.1",
            "odd=back\\slash",
            "nl=1\n2",
        ]));
        env
    }

    fn backend(env: &Path) -> Box<dyn BootBackend> {
        open(&BootConfig::Grub {
            env: env.to_path_buf(),
        })
        .unwrap()
    }

    fn list(env: &Path) -> String {
        run(editenv().arg(env).arg("list"))
    }

    #[test]
    fn we_write_grub_editenv_reads() {
        let dir = tempfile::tempdir().unwrap();
        let env = made_by_grub(dir.path());
        let mut b = backend(&env);
        assert_eq!(b.name(), "grub");
        assert_eq!(b.primary().unwrap(), Side::A, "unset primary means a");
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.booted().unwrap(), None);

        b.set_trial(Side::B).unwrap();
        assert_eq!(std::fs::metadata(&env).unwrap().len(), BLOCK_SIZE as u64);
        assert_eq!(
            list(&env),
            "saved_entry=Linux 6.1\nodd=back\\slash\nnl=1\n2\nairlock_trial=b\n"
        );

        b.commit(Side::B).unwrap();
        assert_eq!(
            list(&env),
            "saved_entry=Linux 6.1\nodd=back\\slash\nnl=1\n2\nairlock_primary=b\n"
        );
        assert_eq!(b.primary().unwrap(), Side::B);
    }

    #[test]
    fn grub_editenv_writes_we_read() {
        let dir = tempfile::tempdir().unwrap();
        let env = made_by_grub(dir.path());
        run(editenv()
            .arg(&env)
            .args(["set", "airlock_primary=b", "airlock_trial=a"]));
        let mut b = backend(&env);
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), Some(Side::A));
        run(editenv().arg(&env).args(["unset", "airlock_trial"]));
        assert_eq!(b.pending_trial().unwrap(), None);
        // GRUB's script clears the trial by saving it empty: that also means no trial.
        run(editenv().arg(&env).args(["set", "airlock_trial="]));
        assert_eq!(b.pending_trial().unwrap(), None);
        b.cancel_trial().unwrap();
        assert!(!list(&env).contains("airlock_trial"));
    }

    /// The same edits through us and through grub-editenv give the same bytes.
    #[test]
    fn byte_identical_to_grub_editenv() {
        let dir = tempfile::tempdir().unwrap();
        let ours = made_by_grub(dir.path());
        let theirs = dir.path().join("theirs");
        std::fs::copy(&ours, &theirs).unwrap();
        let mut b = backend(&ours);

        b.set_trial(Side::B).unwrap();
        run(editenv().arg(&theirs).args(["set", "airlock_trial=b"]));
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap()
        );

        b.commit(Side::B).unwrap();
        run(editenv().arg(&theirs).args(["set", "airlock_primary=b"]));
        run(editenv().arg(&theirs).args(["unset", "airlock_trial"]));
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap()
        );

        b.set_trial(Side::A).unwrap();
        b.commit(Side::A).unwrap();
        run(editenv().arg(&theirs).args(["set", "airlock_primary=a"]));
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap()
        );

        // A fresh block from us equals one from grub-editenv less Debian's warning comment.
        let fresh = dir.path().join("fresh");
        create(&fresh).unwrap();
        assert_eq!(list(&fresh), "");
        let mut env = GrubEnv::parse(&fresh, &std::fs::read(&fresh).unwrap()).unwrap();
        env.set("k", Some("v\\w\nx")).unwrap();
        std::fs::write(&fresh, env.render().unwrap()).unwrap();
        assert_eq!(list(&fresh), "k=v\\w\nx\n");
    }

    #[test]
    fn commit_and_cancel_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let env = made_by_grub(dir.path());
        let mut b = backend(&env);
        b.cancel_trial().unwrap();
        b.set_trial(Side::B).unwrap();
        b.cancel_trial().unwrap();
        b.cancel_trial().unwrap();
        assert_eq!(b.pending_trial().unwrap(), None);
        b.commit(Side::B).unwrap();
        let once = std::fs::read(&env).unwrap();
        b.commit(Side::B).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), once);
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), None);
    }

    #[test]
    fn refuses_to_overflow_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let env = made_by_grub(dir.path());
        // Fill the block so that 10 bytes are left: no room for `airlock_trial=b\n` (16).
        let used = std::fs::read(&env)
            .unwrap()
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        let big = format!(
            "big={}",
            "x".repeat(BLOCK_SIZE - used - 10 - "big=\n".len())
        );
        run(editenv().arg(&env).args(["set", &big]));
        let before = std::fs::read(&env).unwrap();
        let mut b = backend(&env);
        let err = b.set_trial(Side::B).unwrap_err().to_string();
        assert!(
            err.contains("is full") && err.contains("need 1030 bytes but only 1024 fit"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&env).unwrap(),
            before,
            "a refused write leaves the file alone"
        );
        // grub-editenv agrees that it does not fit.
        let out = editenv()
            .arg(&env)
            .args(["set", "airlock_trial=b"])
            .output()
            .unwrap();
        assert!(!out.status.success());
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let env = made_by_grub(dir.path());
        let good = std::fs::read(&env).unwrap();

        std::fs::write(&env, &good[..700]).unwrap();
        let err = open(&BootConfig::Grub { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("is 700 bytes") && err.contains("grub-editenv"),
            "{err}"
        );

        let mut bad = good.clone();
        bad[2] = b'X';
        std::fs::write(&env, &bad).unwrap();
        let err = open(&BootConfig::Grub { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("missing '# GRUB Environment Block' header"),
            "{err}"
        );
        assert!(
            err.contains(&format!("grub-editenv {} create", env.display())),
            "{err}"
        );

        std::fs::write(&env, &good).unwrap();
        run(editenv().arg(&env).args(["set", "airlock_primary=c"]));
        let err = open(&BootConfig::Grub { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("airlock_primary=\"c\"") && err.contains("set airlock_primary=a"),
            "{err}"
        );

        let mut bad = good.clone();
        let len = bad.len();
        bad[len - 1] = 0;
        std::fs::write(&env, &bad).unwrap();
        let err = open(&BootConfig::Grub { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("padding"), "{err}");

        std::fs::remove_file(&env).unwrap();
        let err = open(&BootConfig::Grub { env: env.clone() })
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("create"),
            "{err}"
        );
    }
}
