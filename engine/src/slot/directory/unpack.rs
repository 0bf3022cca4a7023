//! Unpacking a directory slot's archive, entry by entry, each checked before anything is
//! written for it (the rules are in the parent module's documentation).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use tar::{Entry, EntryType};

use crate::fsutil::sync_dir;
use crate::slot::{SlotError, is_no_space};

/// Unpacks checked entries into `root`, remembering the directories to fsync at the end.
pub(super) struct Unpacker {
    root: PathBuf,
    /// Every directory created, with the mode its entry asked for (None when created as a
    /// parent of a later entry).
    dirs: Vec<(PathBuf, Option<u32>)>,
    /// The last parent found to be a chain of real directories (directories are never replaced,
    /// so it stays one).
    checked_parent: Option<PathBuf>,
    buf: Vec<u8>,
    bytes: u64,
}

impl Unpacker {
    pub(super) fn new(root: PathBuf) -> Self {
        Unpacker {
            root,
            dirs: Vec::new(),
            checked_parent: None,
            buf: vec![0; 64 * 1024],
            bytes: 0,
        }
    }

    /// Checks and unpacks one entry; returns its name.
    pub(super) fn unpack<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
    ) -> Result<String, SlotError> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Defaults for later headers, already applied by the tar crate; nothing to unpack.
            return Ok(name);
        }
        let root = self.root.clone();
        let refuse = |reason: String| SlotError::UnsafeEntry {
            dir: root.clone(),
            entry: name.clone(),
            reason,
        };
        let rel = relative_path(Path::new(OsStr::from_bytes(&raw_name))).map_err(&refuse)?;
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                return Ok(name); // `./`: the slot directory itself, kept as it is
            }
            return Err(refuse("it names the slot directory itself".to_string()));
        }
        let target = self.root.join(&rel);
        let unpack_error = |source| SlotError::Unpack {
            dir: root.clone(),
            entry: name.clone(),
            source,
        };

        // What may it be, before anything is written?
        let link = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => None,
            EntryType::Symlink | EntryType::Link => {
                let Some(link) = entry.link_name_bytes() else {
                    return Err(refuse("it is a link without a target".to_string()));
                };
                let link = PathBuf::from(OsStr::from_bytes(&link));
                if kind == EntryType::Symlink {
                    check_symlink_target(&rel, &link).map_err(&refuse)?;
                }
                Some(link)
            }
            EntryType::Char => return Err(refuse(not_allowed("a character device"))),
            EntryType::Block => return Err(refuse(not_allowed("a block device"))),
            EntryType::Fifo => return Err(refuse(not_allowed("a fifo"))),
            EntryType::GNUSparse => return Err(refuse(not_allowed("a sparse file"))),
            other => {
                return Err(refuse(not_allowed(&format!(
                    "of tar entry type {:?}",
                    other.as_byte() as char
                ))));
            }
        };
        let mode = if link.is_none() {
            entry
                .header()
                .mode()
                .map_err(|e| refuse(format!("its mode is unreadable: {e}")))?
        } else {
            0
        };

        // Where does it go? Through real directories only, and never over an earlier entry.
        self.make_parents(&rel).map_err(|r| match r {
            Refusal::Unsafe(reason) => refuse(reason),
            Refusal::Io(e) => unpack_error(e),
        })?;
        match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Ok(meta) if meta.is_dir() && kind == EntryType::Directory => {
                self.dirs.push((target, Some(mode & 0o1777)));
                return Ok(name);
            }
            Ok(_) => {
                return Err(refuse(
                    "an earlier entry of the archive has the same path".to_string(),
                ));
            }
            Err(e) => return Err(unpack_error(e)),
        }

        match (kind, link) {
            (EntryType::Directory, _) => {
                fs::create_dir(&target).map_err(unpack_error)?;
                self.dirs.push((target, Some(mode & 0o1777)));
            }
            (EntryType::Symlink, Some(link)) => {
                symlink(&link, &target).map_err(unpack_error)?;
            }
            (EntryType::Link, Some(link)) => {
                let source = self.hard_link_source(&link).map_err(|r| match r {
                    Refusal::Unsafe(reason) => refuse(reason),
                    Refusal::Io(e) => unpack_error(e),
                })?;
                fs::hard_link(source, &target).map_err(unpack_error)?;
            }
            _ => self.write_file(entry, &name, &target, mode & 0o777)?,
        }
        Ok(name)
    }

    /// Streams a regular file's data into a new file at `target`, then fsyncs it.
    fn write_file<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        name: &str,
        target: &Path,
        mode: u32,
    ) -> Result<(), SlotError> {
        let unpack_error = |source| SlotError::Unpack {
            dir: self.root.clone(),
            entry: name.to_string(),
            source,
        };
        // create_new: never through a symlink, never over an existing file.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .map_err(unpack_error)?;
        let expected = entry.size();
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SlotError::Archive {
                        dir: self.root.clone(),
                        entry: Some(name.to_string()),
                        source,
                    });
                }
            };
            file.write_all(&self.buf[..n]).map_err(|source| {
                if is_no_space(&source) {
                    SlotError::NoSpace {
                        path: target.to_path_buf(),
                        offset: written,
                    }
                } else {
                    unpack_error(source)
                }
            })?;
            written += n as u64;
        }
        if written != expected {
            return Err(SlotError::Archive {
                dir: self.root.clone(),
                entry: Some(name.to_string()),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the archive ends after {written} of its {expected} bytes"),
                ),
            });
        }
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(unpack_error)?;
        file.sync_all().map_err(unpack_error)?;
        self.bytes += written;
        Ok(())
    }

    /// Makes sure every parent of `rel` is a real directory under the root, creating the
    /// missing ones; refuses a path that goes through a symlink or a file.
    fn make_parents(&mut self, rel: &Path) -> Result<(), Refusal> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.checked_parent.as_deref() == Some(parent) {
            return Ok(());
        }
        let mut dir = self.root.clone();
        let mut shown = PathBuf::new();
        for part in parent.components() {
            dir.push(part);
            shown.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Refusal::Unsafe(format!(
                        "its path goes through the symlink {}",
                        shown.display()
                    )));
                }
                Ok(_) => {
                    return Err(Refusal::Unsafe(format!(
                        "its path goes through {}, which is not a directory",
                        shown.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&dir).map_err(Refusal::Io)?;
                    self.dirs.push((dir.clone(), None));
                }
                Err(e) => return Err(Refusal::Io(e)),
            }
        }
        self.checked_parent = Some(parent.to_path_buf());
        Ok(())
    }

    /// The file a hard link entry links to: a regular file unpacked earlier, reached through
    /// real directories only.
    fn hard_link_source(&self, link: &Path) -> Result<PathBuf, Refusal> {
        let outside = || {
            Refusal::Unsafe(format!(
                "its hard link target {} is outside the slot directory",
                link.display()
            ))
        };
        let rel = relative_path(link).map_err(|_| outside())?;
        if rel.as_os_str().is_empty() {
            return Err(outside());
        }
        let mut path = self.root.clone();
        let count = rel.components().count();
        for (i, part) in rel.components().enumerate() {
            path.push(part);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Refusal::Unsafe(format!(
                        "its hard link target {} is not an earlier entry of the archive",
                        link.display()
                    )));
                }
                Err(e) => return Err(Refusal::Io(e)),
            };
            let ok = if i + 1 == count {
                meta.is_file()
            } else {
                meta.is_dir()
            };
            if !ok {
                return Err(Refusal::Unsafe(format!(
                    "its hard link target {} is not a regular file reached through directories",
                    link.display()
                )));
            }
        }
        Ok(path)
    }

    /// Sets directory modes (deepest first, so a read-only parent does not lock out its
    /// children), fsyncs every directory created and the root. Returns the bytes unpacked.
    pub(super) fn finish(self) -> Result<u64, SlotError> {
        let mut modes: HashMap<PathBuf, Option<u32>> = HashMap::new();
        for (dir, mode) in self.dirs {
            let slot = modes.entry(dir).or_insert(None);
            if mode.is_some() {
                *slot = mode;
            }
        }
        let mut dirs: Vec<_> = modes.into_iter().collect();
        dirs.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.components().count()));
        let root = self.root;
        let error = |dir: &Path, source| SlotError::Unpack {
            dir: root.clone(),
            entry: dir
                .strip_prefix(&root)
                .unwrap_or(dir)
                .to_string_lossy()
                .into_owned(),
            source,
        };
        for (dir, mode) in &dirs {
            let file = File::open(dir).map_err(|e| error(dir, e))?;
            if let Some(mode) = mode {
                file.set_permissions(Permissions::from_mode(*mode))
                    .map_err(|e| error(dir, e))?;
            }
            file.sync_all().map_err(|e| error(dir, e))?;
        }
        sync_dir(&root).map_err(|e| error(&root, e))?;
        Ok(self.bytes)
    }
}

enum Refusal {
    Unsafe(String),
    Io(io::Error),
}

fn not_allowed(what: &str) -> String {
    format!("it is {what}; a directory slot holds only files, directories and symlinks")
}

/// `path` as a plain relative path (`.` dropped), or why it is not one.
fn relative_path(path: &Path) -> Result<PathBuf, String> {
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("its path contains `..`".to_string()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("its path is absolute".to_string());
            }
        }
    }
    Ok(rel)
}

/// A symlink at `rel` (relative to the slot directory) may point at `target` when the target is
/// relative, its `..` come first, and they climb no higher than the slot directory.
fn check_symlink_target(rel: &Path, target: &Path) -> Result<(), String> {
    if target.as_os_str().is_empty() {
        return Err("it is a symlink with an empty target".to_string());
    }
    let depth = rel.components().count().saturating_sub(1);
    let mut ups = 0;
    let mut named = false;
    for part in target.components() {
        match part {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "its symlink target {} is absolute, outside the slot directory",
                    target.display()
                ));
            }
            Component::CurDir => {}
            Component::ParentDir if named => {
                return Err(format!(
                    "its symlink target {} has `..` after a name; write it as ../…/name",
                    target.display()
                ));
            }
            Component::ParentDir => {
                ups += 1;
                if ups > depth {
                    return Err(format!(
                        "its symlink target {} points outside the slot directory",
                        target.display()
                    ));
                }
            }
            Component::Normal(_) => named = true,
        }
    }
    Ok(())
}
