//! Directory slots: installs without a reboot.
//!
//! `path` (say `/opt/app`) is a symlink to the sibling directory `app.a` or `app.b` (a relative
//! target, so a simulated device can move). A payload is a tar archive, unpacked into the
//! inactive directory and made durable, then [`DirectorySlot::switch_to`] flips the symlink
//! atomically: a new link is created next to it and renamed over it.
//!
//! An archive is checked entry by entry before anything is written for it:
//! - paths are relative and have no `..`; no entry may go through a symlink, nor replace an
//!   earlier entry (a directory may be listed again);
//! - a symlink target is relative, its `..` come first (`../lib/x`, not `x/../y`) and do not
//!   climb above the slot directory: together with the previous rule, every symlink then
//!   resolves inside the slot directory;
//! - a hard link names a regular file already unpacked from the same archive;
//! - device nodes, fifos, sparse files and any other entry type are refused.
//!
//! File and directory modes are kept without setuid and setgid bits; owners are not restored
//! (everything belongs to the user running airlock).

mod unpack;

use std::ffi::{OsStr, OsString};
use std::fs::{self, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use tracing::info;

use super::{SlotError, config_hint};
use crate::boot::Side;
use crate::fsutil::{parent_dir, sync_dir};
use unpack::Unpacker;

/// A directory slot: `path` is a symlink to `<path>.a` or `<path>.b`.
#[derive(Clone, Debug)]
pub struct DirectorySlot {
    path: PathBuf,
    /// Where the path came from in airlock.toml (`[slots.app] path`), for error messages.
    key: Option<String>,
}

impl DirectorySlot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        // Drop a trailing `/` or `/.`, so that `<path>.a` is a sibling, not a child.
        let path: PathBuf = path.into().components().collect();
        DirectorySlot { path, key: None }
    }

    /// Names the airlock.toml key this path came from (e.g. `[slots.app] path`), so that an
    /// error about the slot tells the operator what to fix.
    pub fn with_config_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding side `slot`: `<path>.a` or `<path>.b`.
    pub fn dir(&self, slot: Side) -> PathBuf {
        let mut dir = self.path.clone().into_os_string();
        dir.push(".");
        dir.push(slot.as_str());
        PathBuf::from(dir)
    }

    /// Creates `<path>.a`, `<path>.b` and the symlink `path` → `.a`, whichever are missing. A
    /// real directory at `path` is refused, with the commands that migrate it.
    pub fn init(&self) -> Result<(), SlotError> {
        let name = self.name()?;
        let link_exists = match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => true,
            Ok(meta) if meta.is_dir() => {
                return Err(self.layout(
                    "is a real directory, not a symlink to one of its sides",
                    format!(
                        "migrate it once, keeping its content as side a: `mv {p} {p}.a && \
                         ln -s {n}.a {p}`, then run init again",
                        p = self.path.display(),
                        n = name.to_string_lossy(),
                    ),
                ));
            }
            Ok(_) => {
                return Err(self.layout(
                    "exists and is not a symlink",
                    "move it away, then run init again".to_string(),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(self.io("inspect", &self.path, e)),
        };
        for slot in [Side::A, Side::B] {
            let dir = self.dir(slot);
            match fs::create_dir(&dir) {
                Ok(()) => info!(dir = %dir.display(), "created directory slot side"),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.check_side(slot)?,
                Err(e) => return Err(self.io("create", &dir, e)),
            }
        }
        let parent = parent_dir(&self.path);
        sync_dir(parent).map_err(|e| self.io("sync", parent, e))?;
        if link_exists {
            self.active().map(|_| ())
        } else {
            self.switch_to(Side::A)
        }
    }

    /// The side the symlink points at now.
    pub fn active(&self) -> Result<Side, SlotError> {
        let target = match fs::read_link(&self.path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.layout(
                    "does not exist",
                    format!(
                        "run `airlock sim init` on a simulated device; on a device, {}",
                        config_hint(self.key.as_deref())
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return Err(self.layout(
                    "is not a symlink",
                    format!(
                        "it must point at {} or {}: run init, which says how to migrate it",
                        self.dir(Side::A).display(),
                        self.dir(Side::B).display()
                    ),
                ));
            }
            Err(e) => return Err(self.io("read the symlink", &self.path, e)),
        };
        let relative: PathBuf = target
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        for slot in [Side::A, Side::B] {
            if target == self.dir(slot) || relative.as_os_str() == self.link_target(slot)? {
                return Ok(slot);
            }
        }
        Err(self.layout(
            &format!(
                "points at {}, not at {} or {}",
                target.display(),
                self.dir(Side::A).display(),
                self.dir(Side::B).display()
            ),
            format!(
                "point it back at the side that should run: `ln -sfn {} {}`",
                self.link_target(Side::A)?.to_string_lossy(),
                self.path.display()
            ),
        ))
    }

    /// Empties the directory of `slot` (never the active one) and unpacks the tar stream into
    /// it, checking every entry first (see the module docs). Everything is fsynced before this
    /// returns. Returns the number of file bytes unpacked.
    pub fn install(&self, slot: Side, archive: impl Read) -> Result<u64, SlotError> {
        let dir = self.dir(slot);
        if self.active()? == slot {
            return Err(SlotError::ActiveSide {
                path: self.path.clone(),
                dir,
                other: self.dir(slot.other()),
            });
        }
        match fs::symlink_metadata(&dir) {
            Ok(_) => self.check_side(slot)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(|e| self.io("create", &dir, e))?;
                let parent = parent_dir(&dir);
                sync_dir(parent).map_err(|e| self.io("sync", parent, e))?;
            }
            Err(e) => return Err(self.io("inspect", &dir, e)),
        }
        clear_dir(&dir).map_err(|e| self.io("empty", &dir, e))?;
        info!(dir = %dir.display(), "unpacking into directory slot");

        let mut unpacker = Unpacker::new(dir.clone());
        let archive_error = |entry: Option<String>, source| SlotError::Archive {
            dir: dir.clone(),
            entry,
            source,
        };
        let mut archive = tar::Archive::new(archive);
        let mut last = None;
        for entry in archive.entries().map_err(|e| archive_error(None, e))? {
            // A bad header is reported after the last good entry, the best place we know.
            let mut entry = entry.map_err(|e| archive_error(last.take(), e))?;
            last = Some(unpacker.unpack(&mut entry)?);
        }
        let bytes = unpacker.finish()?;
        info!(dir = %dir.display(), bytes, "unpacked directory slot");
        Ok(bytes)
    }

    /// Points the symlink at `slot` atomically (a new link `<path>.tmp-link`, renamed over
    /// `path`, then the parent directory fsynced). Idempotent.
    pub fn switch_to(&self, slot: Side) -> Result<(), SlotError> {
        self.check_side(slot)?;
        let parent = parent_dir(&self.path);
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if !meta.file_type().is_symlink() => {
                return Err(self.layout(
                    "is not a symlink",
                    "run init, which says how to migrate it".to_string(),
                ));
            }
            Ok(_) if self.active().ok() == Some(slot) => {
                // Already there; make sure it is durable (a previous switch may have been cut
                // short before its fsync).
                return sync_dir(parent).map_err(|e| self.io("sync", parent, e));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("inspect", &self.path, e)),
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp-link");
        let tmp = PathBuf::from(tmp);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("remove the leftover", &tmp, e)),
        }
        symlink(self.link_target(slot)?, &tmp).map_err(|e| self.io("create", &tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.io("rename over", &self.path, e))?;
        sync_dir(parent).map_err(|e| self.io("sync", parent, e))?;
        info!(path = %self.path.display(), %slot, "switched directory slot");
        Ok(())
    }

    /// The last component of `path` (`app` for `/opt/app`).
    fn name(&self) -> Result<&OsStr, SlotError> {
        self.path
            .file_name()
            .ok_or_else(|| self.layout("has no directory name", config_hint(self.key.as_deref())))
    }

    /// What the symlink holds for `slot`: the sibling's name, `app.a`.
    fn link_target(&self, slot: Side) -> Result<OsString, SlotError> {
        let mut target = self.name()?.to_os_string();
        target.push(".");
        target.push(slot.as_str());
        Ok(target)
    }

    /// A side must be a real directory (not a symlink to somewhere else).
    fn check_side(&self, slot: Side) -> Result<(), SlotError> {
        let dir = self.dir(slot);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(self.layout(
                &format!("has a side {} that is not a real directory", dir.display()),
                "move it away, then run init again".to_string(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.layout(
                &format!("has no side {}", dir.display()),
                "run init to create it".to_string(),
            )),
            Err(e) => Err(self.io("inspect", &dir, e)),
        }
    }

    fn layout(&self, problem: &str, hint: String) -> SlotError {
        SlotError::Layout {
            path: self.path.clone(),
            problem: problem.to_string(),
            hint,
        }
    }

    fn io(&self, action: &'static str, path: &Path, source: io::Error) -> SlotError {
        let hint = if source.kind() == io::ErrorKind::PermissionDenied {
            "airlock needs write access to its slots: run it as root".to_string()
        } else {
            config_hint(self.key.as_deref())
        };
        SlotError::Io {
            action,
            path: path.to_path_buf(),
            source,
            hint,
        }
    }
}

/// Removes everything inside `dir`, never following a symlink. Read-only directories left by
/// an earlier install are made writable first. Holds one directory open at a time.
fn clear_dir(dir: &Path) -> io::Result<()> {
    let children = fs::read_dir(dir)?
        .map(|e| e.and_then(|e| Ok((e.path(), e.file_type()?))))
        .collect::<io::Result<Vec<_>>>()?;
    for (child, kind) in children {
        if kind.is_dir() {
            let mode = fs::symlink_metadata(&child)?.permissions().mode();
            if mode & 0o700 != 0o700 {
                fs::set_permissions(&child, Permissions::from_mode(mode | 0o700))?;
            }
            clear_dir(&child)?;
            fs::remove_dir(&child)?;
        } else {
            fs::remove_file(&child)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use tar::EntryType;

    /// An initialised directory slot `<tmp>/app`, active side a.
    fn slot() -> (tempfile::TempDir, DirectorySlot) {
        let tmp = tempfile::tempdir().unwrap();
        let slot = DirectorySlot::new(tmp.path().join("app"));
        slot.init().unwrap();
        (tmp, slot)
    }

    fn builder() -> tar::Builder<Vec<u8>> {
        tar::Builder::new(Vec::new())
    }

    fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    /// An entry written byte by byte, for names the tar crate's builder refuses to write.
    fn add_raw(
        b: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn good_archive() -> Vec<u8> {
        let mut b = builder();
        add_raw(&mut b, b"./", EntryType::Directory, b"", b"");
        add_file(&mut b, "bin/app", 0o4755, b"#!/bin/sh\necho hi\n");
        add_raw(&mut b, b"etc/", EntryType::Directory, b"", b"");
        add_file(&mut b, "etc/conf/app.toml", 0o640, b"x = 1\n");
        add_raw(
            &mut b,
            b"etc/current",
            EntryType::Symlink,
            b"conf/app.toml",
            b"",
        );
        add_raw(
            &mut b,
            b"etc/conf/up",
            EntryType::Symlink,
            b"../../bin/app",
            b"",
        );
        add_raw(&mut b, b"bin/app2", EntryType::Link, b"bin/app", b"");
        add_raw(&mut b, b"data", EntryType::Directory, b"", b"");
        add_file(&mut b, "data/big", 0o644, &vec![7u8; 300_000]);
        b.into_inner().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn init_creates_the_layout_and_is_idempotent() {
        let (tmp, slot) = slot();
        assert_eq!(names(tmp.path()), ["app", "app.a", "app.b"]);
        assert_eq!(
            fs::read_link(tmp.path().join("app")).unwrap(),
            Path::new("app.a")
        );
        assert_eq!(slot.active().unwrap(), Side::A);
        slot.switch_to(Side::B).unwrap();
        slot.init().unwrap();
        assert_eq!(
            slot.active().unwrap(),
            Side::B,
            "init keeps the active side"
        );
        assert_eq!(slot.dir(Side::B), tmp.path().join("app.b"));
        // A trailing slash does not make the sides children of the path.
        let slash = DirectorySlot::new(format!("{}/", tmp.path().join("app").display()));
        assert_eq!(slash.dir(Side::A), tmp.path().join("app.a"));
    }

    #[test]
    fn init_refuses_a_real_directory_and_says_how_to_migrate() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("app")).unwrap();
        fs::write(tmp.path().join("app/keep"), b"x").unwrap();
        let err = DirectorySlot::new(tmp.path().join("app"))
            .init()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("is a real directory"), "{msg}");
        assert!(msg.contains("ln -s app.a"), "{msg}");
        assert_eq!(names(tmp.path()), ["app"]);
        assert!(tmp.path().join("app/keep").exists());
    }

    #[test]
    fn install_unpacks_files_dirs_links_and_modes() {
        let (tmp, slot) = slot();
        fs::write(slot.dir(Side::B).join("stale"), b"old install").unwrap();
        let bytes = slot.install(Side::B, &good_archive()[..]).unwrap();
        assert_eq!(bytes, 18 + 6 + 300_000);
        let b = slot.dir(Side::B);
        assert_eq!(names(&b), ["bin", "data", "etc"], "emptied first");
        assert_eq!(
            fs::read(b.join("bin/app")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        let meta = fs::metadata(b.join("bin/app")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o755, "setuid dropped");
        assert_eq!(meta.nlink(), 2, "hard link inside");
        assert_eq!(
            fs::metadata(b.join("etc/conf/app.toml")).unwrap().mode() & 0o7777,
            0o640
        );
        assert_eq!(fs::read(b.join("etc/current")).unwrap(), b"x = 1\n");
        assert_eq!(
            fs::read_link(b.join("etc/conf/up")).unwrap(),
            Path::new("../../bin/app")
        );
        assert_eq!(fs::read(b.join("data/big")).unwrap().len(), 300_000);
        assert_eq!(names(&slot.dir(Side::A)), Vec::<String>::new());
        assert_eq!(slot.active().unwrap(), Side::A, "install does not switch");
        drop(tmp);
    }

    #[test]
    fn directory_modes_apply_at_the_end_and_reinstall_clears_read_only_trees() {
        let (_tmp, slot) = slot();
        let mut b = builder();
        add_file(&mut b, "ro/file", 0o444, b"1");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o2555);
        h.set_size(0);
        b.append_data(&mut h, "ro", &[][..]).unwrap();
        let archive = b.into_inner().unwrap();
        slot.install(Side::B, &archive[..]).unwrap();
        let ro = slot.dir(Side::B).join("ro");
        assert_eq!(fs::metadata(&ro).unwrap().mode() & 0o7777, 0o555);
        slot.install(Side::B, &archive[..]).unwrap();
        assert_eq!(fs::read(ro.join("file")).unwrap(), b"1");
    }

    #[test]
    fn install_refuses_the_active_side_and_leaves_it_alone() {
        let (_tmp, slot) = slot();
        fs::write(slot.dir(Side::A).join("running"), b"live").unwrap();
        let err = slot.install(Side::A, &good_archive()[..]).unwrap_err();
        assert!(matches!(err, SlotError::ActiveSide { .. }), "{err}");
        assert!(err.to_string().contains("app.b"), "{err}");
        slot.install(Side::B, &good_archive()[..]).unwrap();
        assert_eq!(names(&slot.dir(Side::A)), ["running"]);
        assert_eq!(
            fs::read(slot.dir(Side::A).join("running")).unwrap(),
            b"live"
        );
    }

    /// Each hostile archive is refused with its entry named, and nothing lands outside.
    #[test]
    fn hostile_archives_are_refused_naming_the_entry() {
        type Build = fn(&mut tar::Builder<Vec<u8>>);
        let cases: &[(&str, &str, Build)] = &[
            ("../evil", "`..`", |b| {
                add_raw(b, b"../evil", EntryType::Regular, b"", b"x")
            }),
            ("/abs", "absolute", |b| {
                add_raw(b, b"/abs", EntryType::Regular, b"", b"x")
            }),
            ("a/../../evil", "`..`", |b| {
                add_raw(b, b"a/../../evil", EntryType::Regular, b"", b"x")
            }),
            ("etc", "absolute", |b| {
                add_raw(b, b"etc", EntryType::Symlink, b"/etc", b"");
                add_raw(b, b"etc/evil", EntryType::Regular, b"", b"x");
            }),
            ("up", "outside", |b| {
                add_raw(b, b"up", EntryType::Symlink, b"..", b"")
            }),
            ("sub/up", "outside", |b| {
                add_raw(b, b"sub/up", EntryType::Symlink, b"../../x", b"")
            }),
            ("l", "after a name", |b| {
                add_raw(b, b"d", EntryType::Symlink, b".", b"");
                add_raw(b, b"l", EntryType::Symlink, b"d/..", b"");
            }),
            ("d/l", "through the symlink d", |b| {
                add_raw(b, b"d", EntryType::Symlink, b".", b"");
                add_raw(b, b"d/l", EntryType::Symlink, b"..", b"");
            }),
            ("inner/file", "through the symlink inner", |b| {
                add_raw(b, b"sub/", EntryType::Directory, b"", b"");
                add_raw(b, b"inner", EntryType::Symlink, b"sub", b"");
                add_raw(b, b"inner/file", EntryType::Regular, b"", b"x");
            }),
            ("passwd", "outside", |b| {
                add_raw(b, b"passwd", EntryType::Link, b"/etc/passwd", b"")
            }),
            ("evil", "outside", |b| {
                add_raw(b, b"evil", EntryType::Link, b"../app.a/running", b"")
            }),
            ("ln", "not an earlier entry", |b| {
                add_raw(b, b"ln", EntryType::Link, b"nothing", b"")
            }),
            ("fifo", "a fifo", |b| {
                add_raw(b, b"fifo", EntryType::Fifo, b"", b"")
            }),
            ("null", "a character device", |b| {
                add_raw(b, b"null", EntryType::Char, b"", b"")
            }),
            ("sda", "a block device", |b| {
                add_raw(b, b"sda", EntryType::Block, b"", b"")
            }),
            ("twice", "same path", |b| {
                add_raw(b, b"twice", EntryType::Regular, b"", b"1");
                add_raw(b, b"twice", EntryType::Symlink, b"x", b"");
            }),
        ];
        for (entry, reason, build) in cases {
            let (tmp, slot) = slot();
            fs::write(slot.dir(Side::A).join("running"), b"live").unwrap();
            let mut b = builder();
            build(&mut b);
            let archive = b.into_inner().unwrap();
            let err = slot.install(Side::B, &archive[..]).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, SlotError::UnsafeEntry { entry: e, .. } if e == entry),
                "{entry}: {msg}"
            );
            assert!(msg.contains(reason), "{entry}: {msg}");
            assert_eq!(names(tmp.path()), ["app", "app.a", "app.b"], "{entry}");
            assert_eq!(names(&slot.dir(Side::A)), ["running"], "{entry}");
        }
    }

    #[test]
    fn truncated_archive_is_an_error_naming_the_entry() {
        let (_tmp, slot) = slot();
        let archive = good_archive();
        let cut = archive.len() - 200_000;
        let err = slot.install(Side::B, &archive[..cut]).unwrap_err();
        assert!(
            matches!(&err, SlotError::Archive { entry: Some(e), .. } if e == "data/big"),
            "{err}"
        );
    }

    #[test]
    fn switch_flips_atomically_and_is_idempotent() {
        let (tmp, slot) = slot();
        slot.install(Side::B, &good_archive()[..]).unwrap();
        // A leftover from a switch cut short is replaced.
        symlink("somewhere", tmp.path().join("app.tmp-link")).unwrap();
        slot.switch_to(Side::B).unwrap();
        assert_eq!(slot.active().unwrap(), Side::B);
        assert_eq!(
            fs::read_link(tmp.path().join("app")).unwrap(),
            Path::new("app.b")
        );
        assert!(tmp.path().join("app/bin/app").exists());
        slot.switch_to(Side::B).unwrap();
        assert_eq!(slot.active().unwrap(), Side::B);
        assert_eq!(names(tmp.path()), ["app", "app.a", "app.b"]);
        slot.switch_to(Side::A).unwrap();
        assert_eq!(slot.active().unwrap(), Side::A);
        // Now b is inactive again and may be installed into; a is the live side.
        let err = slot.install(Side::A, &good_archive()[..]).unwrap_err();
        assert!(matches!(err, SlotError::ActiveSide { .. }), "{err}");
    }

    #[test]
    fn active_explains_a_missing_or_foreign_link() {
        let tmp = tempfile::tempdir().unwrap();
        let slot = DirectorySlot::new(tmp.path().join("app")).with_config_key("[slots.app] path");
        let err = slot.active().unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(err.to_string().contains("[slots.app] path"), "{err}");
        symlink("/usr", tmp.path().join("app")).unwrap();
        let err = slot.active().unwrap_err();
        assert!(err.to_string().contains("points at /usr"), "{err}");
        fs::remove_file(tmp.path().join("app")).unwrap();
        // An absolute link to a side is understood too.
        slot.init().unwrap();
        fs::remove_file(tmp.path().join("app")).unwrap();
        symlink(tmp.path().join("app.b"), tmp.path().join("app")).unwrap();
        assert_eq!(slot.active().unwrap(), Side::B);
        // switch_to refuses a side that is missing.
        fs::remove_dir(tmp.path().join("app.a")).unwrap();
        let err = slot.switch_to(Side::A).unwrap_err();
        assert!(err.to_string().contains("has no side"), "{err}");
        assert_eq!(slot.active().unwrap(), Side::B);
    }
}
