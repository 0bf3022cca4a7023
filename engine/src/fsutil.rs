//! Durable file writes: the one way everything in Airlock persists a file.
//!
//! write a temporary file next to the target → fsync it → rename over the target → fsync it
//! again and the directory. After a power cut the target holds either the old or the new
//! content, never a mix. [`atomic_write`] does it for bytes in memory, [`persist`] for a file
//! streamed into a [`NamedTempFile`] in the target's directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// Atomically replace `path` with `data`, durable once this returns.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    synced_in_place(&f, path)
}

/// Moves `tmp`, written completely and created in `path`'s directory, over `path`: durable once
/// this returns, as [`atomic_write`].
pub fn persist(tmp: NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    let f = tmp.persist(path).map_err(|e| e.error)?;
    synced_in_place(&f, path)
}

/// After the rename of `f` to `path`: makes the new name durable.
fn synced_in_place(f: &File, path: &Path) -> io::Result<()> {
    // vfat (the ESP that holds GRUB's environment block) keeps a file's start and size in its
    // directory entry and writes that entry with the file, not with the directory: after the
    // rename only syncing the file again writes the entry under its new name.
    f.sync_all()?;
    sync_dir(parent_dir(path))
}

/// fsync a directory so that a rename or a new entry in it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state");
        atomic_write(&target, b"one").unwrap();
        atomic_write(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
    }

    #[test]
    fn persist_moves_a_streamed_file_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("artifact");
        fs::write(&target, b"old").unwrap();
        let mut tmp = NamedTempFile::new_in(dir.path()).unwrap();
        tmp.write_all(b"new, streamed").unwrap();
        persist(tmp, &target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new, streamed");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        // Into a directory that is gone: an error, and the temporary file is not left behind.
        let other = tempfile::tempdir().unwrap();
        let tmp = NamedTempFile::new_in(other.path()).unwrap();
        let err = persist(tmp, &dir.path().join("missing/artifact")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(fs::read_dir(other.path()).unwrap().count(), 0);
    }
}

/// An exclusive advisory lock (flock) on a file, held until dropped: one Airlock process at a
/// time changes a device.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock, or returns `None` when another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(FileLock { _file: file }));
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(err)
        }
    }
}
