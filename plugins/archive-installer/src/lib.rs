//! `archive-installer`: an installer that unpacks a tar payload into a directory, and commits
//! or rolls it back as a whole.
//!
//! Config (`[plugins.NAME.config]`):
//!
//! | key   | default     | meaning                                                           |
//! |-------|-------------|-------------------------------------------------------------------|
//! | `dir` | `"/target"` | the plugin's pre-opened, writable directory (its path inside the sandbox) |
//!
//! # Layout and the three calls
//!
//! ```text
//! <dir>/current/            the installed tree, what the device uses; holds .airlock-release
//! <dir>/.staging.partial/   install: being unpacked
//! <dir>/.staging/           install: unpacked completely, waiting for commit
//! <dir>/.previous/          commit: the old tree, between the two renames
//! ```
//!
//! - **install** streams the payload through the `tar` crate into `.staging.partial/` (each
//!   file fsynced), writes `.airlock-release` (the bundle's name and version) into it, and
//!   renames it to `.staging/`. What runs now (`current/`) is not touched; a leftover
//!   staging tree from an abandoned install is removed first.
//! - **commit** renames `current/` to `.previous/`, `.staging/` to `current/`, and removes
//!   `.previous/`. Committing again after a commit of the same release is a no-op, and a
//!   commit cut between its two renames finishes when called again.
//! - **rollback** removes the staging trees; if a commit was cut between its renames it
//!   renames `.previous/` back to `current/`.
//!
//! Every call is a fresh instance: what commit and rollback need is on disk, nothing in memory.
//!
//! # What the archive may hold
//!
//! Regular files, directories, symlinks and hard links. Refused, failing the install: absolute
//! paths, `..` in a path, a symlink whose target is absolute or leads out of the tree, a hard
//! link to a path outside it, an entry whose path goes through a symlink unpacked earlier,
//! and device nodes and FIFOs. The sandbox would stop a write outside `<dir>` anyway; these
//! checks also keep an archive from reaching `current/` or other files inside it.
//!
//! WASI has no `chmod` or `chown`: modes, owners and times in the archive are not kept
//! (files get the engine's defaults, usually 0644 and the engine's user).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use airlock_sdk::payload::PayloadReader;
use airlock_sdk::{Context, Installer, config, log};

/// The file in the tree's root that records which release the tree is.
const RELEASE_FILE: &str = ".airlock-release";

struct ArchiveInstaller;

impl Installer for ArchiveInstaller {
    fn install(ctx: Context) -> Result<(), String> {
        let layout = Layout::from_config()?;
        let total = ctx.payload.as_ref().map_or(0, |payload| payload.size);
        log::info!(
            "installing {} ({}) into {}",
            ctx.bundle,
            ctx.payload
                .as_ref()
                .map_or("no payload info", |p| p.name.as_str()),
            layout.staging.display()
        );
        let count = layout.install(&ctx, &mut PayloadReader::with_progress(total))?;
        log::info!("staged {count} entries in {}", layout.staging.display());
        Ok(())
    }

    fn commit(ctx: Context) -> Result<(), String> {
        Layout::from_config()?.commit(&ctx)
    }

    fn rollback(ctx: Context) -> Result<(), String> {
        Layout::from_config()?.rollback(&ctx)
    }
}

airlock_sdk::export_installer!(ArchiveInstaller);

/// The paths the installer works with, under `dir`.
struct Layout {
    current: PathBuf,
    partial: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
}

impl Layout {
    fn from_config() -> Result<Layout, String> {
        Ok(Layout::new(Path::new(&config::get_or("dir", "/target"))))
    }

    fn new(dir: &Path) -> Layout {
        Layout {
            current: dir.join("current"),
            partial: dir.join(".staging.partial"),
            staging: dir.join(".staging"),
            previous: dir.join(".previous"),
        }
    }

    /// Unpacks `payload` into the staging tree; returns how many entries it unpacked.
    fn install(&self, ctx: &Context, payload: &mut impl io::Read) -> Result<usize, String> {
        for leftover in [&self.partial, &self.staging] {
            if exists(leftover)? {
                log::warn!("removing {} left by an earlier install", leftover.display());
                remove_tree(leftover)?;
            }
        }
        fs::create_dir(&self.partial).map_err(|e| at("creating", &self.partial, e))?;
        let count = unpack(payload, &self.partial)?;
        write_synced(
            &self.partial.join(RELEASE_FILE),
            release_stamp(ctx).as_bytes(),
        )?;
        sync_dir(&self.partial);
        rename(&self.partial, &self.staging)?;
        Ok(count)
    }

    fn commit(&self, ctx: &Context) -> Result<(), String> {
        if !exists(&self.staging)? {
            if self.current_release()?.as_deref() == Some(release_stamp(ctx).as_str()) {
                log::info!(
                    "{} is already committed in {}",
                    ctx.bundle,
                    self.current.display()
                );
                return Ok(());
            }
            return Err(format!(
                "nothing staged to commit in {} (install did not finish or was rolled back)",
                self.staging.display()
            ));
        }
        if exists(&self.current)? {
            if exists(&self.previous)? {
                remove_tree(&self.previous)?;
            }
            rename(&self.current, &self.previous)?;
        } else if exists(&self.previous)? {
            log::warn!(
                "finishing a commit that was cut short: {} is missing",
                self.current.display()
            );
        }
        rename(&self.staging, &self.current)?;
        if exists(&self.previous)? {
            // The commit is done; an old tree that won't go away is only wasted space.
            if let Err(e) = remove_tree(&self.previous) {
                log::warn!("committed, but could not remove the old tree: {e}");
            }
        }
        log::info!("committed {} into {}", ctx.bundle, self.current.display());
        Ok(())
    }

    fn rollback(&self, ctx: &Context) -> Result<(), String> {
        for staged in [&self.partial, &self.staging] {
            if exists(staged)? {
                remove_tree(staged)?;
                log::info!("removed {}", staged.display());
            }
        }
        if !exists(&self.current)? && exists(&self.previous)? {
            rename(&self.previous, &self.current)?;
            log::warn!(
                "restored {} from a commit that was cut short",
                self.current.display()
            );
        }
        log::info!("rolled back {}", ctx.bundle);
        Ok(())
    }

    fn current_release(&self) -> Result<Option<String>, String> {
        let path = self.current.join(RELEASE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at("reading", &path, e)),
        }
    }
}

fn release_stamp(ctx: &Context) -> String {
    format!("{}\n", ctx.bundle)
}

/// Unpacks the tar stream `payload` into `root`, which exists and is empty, then reads the
/// rest of the payload (the archive's end padding) so the engine sees all of it consumed.
fn unpack(payload: &mut impl io::Read, root: &Path) -> Result<usize, String> {
    let count = unpack_entries(&mut tar::Archive::new(&mut *payload), root)?;
    io::copy(payload, &mut io::sink()).map_err(|e| format!("reading the payload's end: {e}"))?;
    sync_dir(root);
    Ok(count)
}

fn unpack_entries(archive: &mut tar::Archive<impl io::Read>, root: &Path) -> Result<usize, String> {
    let entries = archive
        .entries()
        .map_err(|e| format!("reading the archive: {e}"))?;
    let mut count = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading the archive: {e}"))?;
        let raw = entry
            .path()
            .map_err(|e| format!("reading an entry's path: {e}"))?;
        let name = raw.display().to_string();
        let Some(relative) = safe_relative(&raw).map_err(|e| format!("entry {name:?}: {e}"))?
        else {
            continue; // "." or "./": the root itself
        };
        let target = root.join(&relative);
        let kind = entry.header().entry_type();
        let refuse = |why: String| format!("entry {name:?}: {why}");
        prepare_parents(root, &relative).map_err(refuse)?;
        use tar::EntryType as T;
        match kind {
            T::Directory => match fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(refuse("a file of that name was unpacked before".into())),
                Err(_) => fs::create_dir(&target).map_err(|e| at("creating", &target, e))?,
            },
            T::Regular | T::Continuous => {
                replace_non_dir(&target).map_err(refuse)?;
                let mut file = File::create(&target).map_err(|e| at("creating", &target, e))?;
                let size = entry.size();
                let written =
                    io::copy(&mut entry, &mut file).map_err(|e| at("writing", &target, e))?;
                if written != size {
                    return Err(refuse(format!(
                        "the archive ends after {written} of its {size} bytes"
                    )));
                }
                file.sync_all().map_err(|e| at("syncing", &target, e))?;
            }
            T::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| refuse(format!("reading its link target: {e}")))?
                    .ok_or_else(|| refuse("a symlink without a target".into()))?;
                check_symlink(&relative, &link).map_err(refuse)?;
                replace_non_dir(&target).map_err(refuse)?;
                symlink(&link, &target).map_err(|e| at("creating symlink", &target, e))?;
            }
            T::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| refuse(format!("reading its link target: {e}")))?
                    .ok_or_else(|| refuse("a hard link without a target".into()))?;
                let source = safe_relative(&link)
                    .map_err(|e| refuse(format!("hard link to {}: {e}", link.display())))?
                    .ok_or_else(|| refuse("a hard link to the root".into()))?;
                prepare_parents(root, &source).map_err(refuse)?;
                replace_non_dir(&target).map_err(refuse)?;
                fs::hard_link(root.join(&source), &target)
                    .map_err(|e| at("creating hard link", &target, e))?;
            }
            // Extended headers the tar crate did not fold into the next entry: metadata only.
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                return Err(refuse(format!(
                    "a {other:?} entry, which this installer refuses"
                )));
            }
        }
        count += 1;
    }
    Ok(count)
}

/// `path` as a relative path of normal components: `None` for the root itself, an error for
/// an absolute path or `..`.
fn safe_relative(path: &Path) -> Result<Option<PathBuf>, String> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in the path is refused".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute paths are refused".into());
            }
        }
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// Refuses a symlink at `relative` whose `target` is absolute or leads out of the tree.
fn check_symlink(relative: &Path, target: &Path) -> Result<(), String> {
    // Where the link lives, as a depth below the root, then walk its target.
    let mut depth = relative.components().count() - 1;
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("symlink target {} leads out of the tree", target.display())
                })?;
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("symlink target {} is absolute", target.display()));
            }
        }
    }
    Ok(())
}

/// Makes sure every parent of `relative` under `root` is a real directory, creating missing
/// ones. A parent that is a symlink is refused: writing through it could land anywhere.
fn prepare_parents(root: &Path, relative: &Path) -> Result<(), String> {
    let mut path = root.to_path_buf();
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    for part in parent.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "its path goes through the symlink {}",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "its parent {} is not a directory",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(|e| at("creating", &path, e))?;
            }
            Err(e) => return Err(at("inspecting", &path, e)),
        }
    }
    Ok(())
}

/// Removes a file or symlink at `path` (a later entry replaces an earlier one, as tar does);
/// refuses to replace a directory with a non-directory.
fn replace_non_dir(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err("a directory of that name was unpacked before".into()),
        Ok(_) => fs::remove_file(path).map_err(|e| at("replacing", path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(at("inspecting", path, e)),
    }
}

#[allow(deprecated)] // std::os::wasi::fs::symlink_path is unstable; soft_link is the stable spelling.
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    fs::soft_link(target, link)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = File::create(path).map_err(|e| at("creating", path, e))?;
    file.write_all(bytes).map_err(|e| at("writing", path, e))?;
    file.sync_all().map_err(|e| at("syncing", path, e))
}

/// Fsyncs a directory so the names in it are durable. Best effort: not every WASI host lets a
/// directory be opened as a file.
fn sync_dir(path: &Path) {
    if let Err(e) = File::open(path).and_then(|dir| dir.sync_all()) {
        log::debug!("could not fsync directory {}: {e}", path.display());
    }
}

fn exists(path: &Path) -> Result<bool, String> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(at("inspecting", path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    fs::rename(from, to)
        .map_err(|e| format!("renaming {} to {}: {e}", from.display(), to.display()))?;
    if let Some(parent) = to.parent() {
        sync_dir(parent);
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), String> {
    fs::remove_dir_all(path).map_err(|e| at("removing", path, e))
}

fn at(what: &str, path: &Path, e: io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::{PayloadInfo, Release, Stage, testing};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "archive-installer-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    enum Item<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
    }

    /// A tar archive of `items`, with names written raw so that hostile ones get through.
    fn archive(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            let (name, kind, link, data): (&str, _, Option<&str>, &[u8]) = match *item {
                Item::File(name, text) => (name, tar::EntryType::Regular, None, text.as_bytes()),
                Item::Dir(name) => (name, tar::EntryType::Directory, None, b""),
                Item::Symlink(name, to) => (name, tar::EntryType::Symlink, Some(to), b""),
                Item::HardLink(name, to) => (name, tar::EntryType::Link, Some(to), b""),
                Item::Fifo(name) => (name, tar::EntryType::Fifo, None, b""),
            };
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn context(version: &str, size: u64) -> Context {
        Context {
            bundle: Release {
                name: "app".into(),
                version: version.into(),
            },
            current: None,
            device_type: "sim".into(),
            stage: Stage::Install,
            payload: Some(PayloadInfo {
                name: "app.tar".into(),
                size,
                sha256: "0".repeat(64),
            }),
            slot: None,
        }
    }

    /// Runs `install` through the export's entry point, as the engine would.
    fn install(dir: &TempDir, version: &str, items: &[Item]) -> Result<(), String> {
        let bytes = archive(items);
        testing::reset();
        testing::set_config(&[("dir", dir.0.to_str().unwrap())]);
        let ctx = context(version, bytes.len() as u64);
        testing::set_payload(bytes);
        ArchiveInstaller::install(ctx)
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn install_stages_and_commit_swaps() {
        let dir = TempDir::new();
        install(
            &dir,
            "1.0.0",
            &[
                Item::Dir("etc/"),
                Item::File("etc/app.conf", "v1"),
                Item::File("./bin/app", "binary"),
                Item::Symlink("etc/current.conf", "app.conf"),
                Item::HardLink("bin/app-again", "bin/app"),
            ],
        )
        .unwrap();
        let staging = dir.0.join(".staging");
        assert_eq!(read(staging.join("etc/app.conf")), "v1");
        assert_eq!(read(staging.join("etc/current.conf")), "v1");
        assert_eq!(read(staging.join("bin/app-again")), "binary");
        assert_eq!(read(staging.join(RELEASE_FILE)), "app 1.0.0\n");
        assert!(
            !dir.0.join("current").exists(),
            "install does not touch current"
        );
        let (done, of) = *testing::progress().last().expect("progress reported");
        assert_eq!(done, of, "the whole payload was read");

        ArchiveInstaller::commit(context("1.0.0", 0)).unwrap();
        assert_eq!(read(dir.0.join("current/etc/app.conf")), "v1");
        assert!(!staging.exists());
        // Committing again is a no-op; committing another release is an error.
        ArchiveInstaller::commit(context("1.0.0", 0)).unwrap();
        let err = ArchiveInstaller::commit(context("2.0.0", 0)).unwrap_err();
        assert!(err.contains("nothing staged"), "{err}");

        install(&dir, "2.0.0", &[Item::File("etc/app.conf", "v2")]).unwrap();
        assert_eq!(read(dir.0.join("current/etc/app.conf")), "v1");
        ArchiveInstaller::commit(context("2.0.0", 0)).unwrap();
        assert_eq!(read(dir.0.join("current/etc/app.conf")), "v2");
        assert!(
            !dir.0.join("current/bin").exists(),
            "the old tree is replaced whole"
        );
        assert!(!dir.0.join(".previous").exists());
    }

    #[test]
    fn rollback_drops_the_staged_tree_and_finishes_a_cut_commit() {
        let dir = TempDir::new();
        install(&dir, "1.0.0", &[Item::File("a", "1")]).unwrap();
        ArchiveInstaller::commit(context("1.0.0", 0)).unwrap();
        install(&dir, "2.0.0", &[Item::File("a", "2")]).unwrap();
        ArchiveInstaller::rollback(context("2.0.0", 0)).unwrap();
        assert!(!dir.0.join(".staging").exists());
        assert_eq!(read(dir.0.join("current/a")), "1");

        // A commit cut between its renames: current moved away, staging still there.
        install(&dir, "2.0.0", &[Item::File("a", "2")]).unwrap();
        fs::rename(dir.0.join("current"), dir.0.join(".previous")).unwrap();
        ArchiveInstaller::rollback(context("2.0.0", 0)).unwrap();
        assert_eq!(read(dir.0.join("current/a")), "1");

        // The same cut commit, called again, finishes.
        install(&dir, "2.0.0", &[Item::File("a", "2")]).unwrap();
        fs::rename(dir.0.join("current"), dir.0.join(".previous")).unwrap();
        ArchiveInstaller::commit(context("2.0.0", 0)).unwrap();
        assert_eq!(read(dir.0.join("current/a")), "2");
        assert!(!dir.0.join(".previous").exists());
    }

    #[test]
    fn hostile_archives_are_refused() {
        let cases: &[(&[Item], &str)] = &[
            (
                &[Item::File("/etc/passwd", "x")],
                "absolute paths are refused",
            ),
            (
                &[Item::File("a/../../x", "x")],
                "`..` in the path is refused",
            ),
            (&[Item::Symlink("l", "/etc")], "is absolute"),
            (&[Item::Symlink("a/l", "../../x")], "leads out of the tree"),
            (
                &[Item::Symlink("l", "."), Item::File("l/x", "x")],
                "goes through the symlink l",
            ),
            (
                &[Item::HardLink("h", "../outside")],
                "`..` in the path is refused",
            ),
            (&[Item::Fifo("pipe")], "Fifo entry"),
            (
                &[Item::File("f", "x"), Item::File("f/g", "x")],
                "is not a directory",
            ),
        ];
        for (items, expected) in cases {
            let dir = TempDir::new();
            let err = install(&dir, "1.0.0", items).unwrap_err();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
            assert!(
                !dir.0.join(".staging").exists(),
                "nothing staged after {err}"
            );
            // A later good install cleans up what the refused one left.
            install(&dir, "1.0.0", &[Item::File("ok", "ok")]).unwrap();
            assert!(!dir.0.join(".staging.partial").exists());
        }
    }

    #[test]
    fn symlinks_inside_the_tree_are_kept() {
        let dir = TempDir::new();
        install(
            &dir,
            "1.0.0",
            &[
                Item::File("lib/libx.so.1", "x"),
                Item::Symlink("lib/libx.so", "libx.so.1"),
                Item::Symlink("usr/lib", "../lib"),
            ],
        )
        .unwrap();
        let staging = dir.0.join(".staging");
        assert_eq!(read(staging.join("usr/lib/libx.so")), "x");
    }

    #[test]
    fn a_truncated_archive_fails_the_install() {
        let dir = TempDir::new();
        let mut bytes = archive(&[Item::File("big", &"x".repeat(5000))]);
        bytes.truncate(1500);
        testing::reset();
        testing::set_config(&[("dir", dir.0.to_str().unwrap())]);
        testing::set_payload(bytes);
        let err = ArchiveInstaller::install(context("1.0.0", 1500)).unwrap_err();
        assert!(err.contains("big"), "{err}");
        assert!(!dir.0.join(".staging").exists());
    }
}
