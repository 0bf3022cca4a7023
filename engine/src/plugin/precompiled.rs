//! Precompiled plugins: where a plugin's precompiled form lies, and the gate it must pass before
//! wasmtime reads a byte of it.
//!
//! The configuration names a plugin's `.wasm` (`/usr/lib/airlock/plugins/health.wasm`); its
//! precompiled form for this device lies beside it as `health.<target>.cwasm`, where `<target>`
//! is [`native_target`]. `airlock plugin compile health.wasm --target <target>` makes it on the
//! build host. Such an artifact is native code: loading it is trusting it completely. So it is
//! loaded only when its sha256 is in a digest list the device trusts — `precompiled.sha256`
//! beside `airlock.toml`, in `sha256sum` format, written by the image build, owned by root (or
//! the user running airlock) and writable by nobody else — and the artifact itself can be
//! changed by nobody else either, so that the bytes wasmtime maps are the bytes that were hashed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PluginError;

/// How much of an artifact each read takes while it is hashed.
const HASH_READ: usize = 256 << 10;

/// The file name of the digest list, beside the configuration file.
pub const DIGEST_LIST: &str = "precompiled.sha256";

/// The target this build runs precompiled plugins for, as `airlock plugin compile --target`
/// spells it: a target triple where Cranelift makes native code, `pulley32` (wasmtime's
/// interpreter) on 32-bit ARM, which Cranelift has no back end for.
pub fn native_target() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else if cfg!(target_arch = "arm") {
        "pulley32"
    } else {
        std::env::consts::ARCH
    }
}

/// The targets `airlock plugin compile --target` takes, for messages.
pub const TARGETS: &str = "x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu and \
                           armv7-unknown-linux-gnueabihf (or pulley32), or their musl triples";

/// What a device of target `name` runs: the same triple, but Pulley bytecode (`pulley32`) for
/// 32-bit ARM, which Cranelift has no back end for and wasmtime runs in its interpreter. A
/// static musl build runs the same code as the glibc build for its CPU, and looks for it under
/// the glibc triple (its [`native_target`]), so one form serves both.
pub fn compile_target(name: &str) -> &str {
    let arch = name.split('-').next().unwrap_or(name);
    if arch == "arm" || arch.starts_with("armv7") || arch.starts_with("thumbv7") {
        "pulley32"
    } else if name.ends_with("-linux-musl") {
        match arch {
            "x86_64" => "x86_64-unknown-linux-gnu",
            "aarch64" => "aarch64-unknown-linux-gnu",
            _ => name,
        }
    } else {
        name
    }
}

/// Where the precompiled form of the component at `wasm` for `target` lies:
/// `dir/health.wasm` → `dir/health.<target>.cwasm`.
pub fn artifact_path(wasm: &Path, target: &str) -> PathBuf {
    wasm.with_file_name(artifact_name(wasm, target))
}

/// The file name of the precompiled form of `wasm` for `target`: `NAME.TARGET.cwasm`.
pub fn artifact_name(wasm: &Path, target: &str) -> String {
    let stem = wasm
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy());
    format!("{stem}.{target}.cwasm")
}

/// The digests an image build vouched for: `precompiled.sha256`, one `HEX  FILE` line per
/// artifact, as `sha256sum` writes them.
#[derive(Debug, Clone)]
pub struct DigestList {
    path: PathBuf,
    /// File name (without its folder) → sha256, lowercase hex.
    by_file: BTreeMap<String, String>,
}

impl DigestList {
    /// Reads the list at `path`; `Ok(None)` when there is none. A list that others could have
    /// written, or that does not parse, is an error: it would vouch for code nobody vetted.
    pub fn load(path: &Path) -> Result<Option<Self>, PluginError> {
        let err = |reason: String| PluginError::DigestList {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot open it: {e}"))),
        };
        check_guarded(&file, path).map_err(err)?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| err(format!("cannot read it: {e}")))?;
        Self::parse(&text, path).map(Some)
    }

    /// Parses the list's text (`path` only names it in errors). Blank lines and `#` comments
    /// are skipped.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PluginError> {
        let mut by_file = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| PluginError::DigestList {
                path: path.to_path_buf(),
                reason: format!(
                    "line {}: {what}; each line is `SHA256  FILE`, as `sha256sum FILE` prints it",
                    number + 1
                ),
            };
            let (digest, file) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("no file name after the digest"))?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("the digest is not 64 hex digits"));
            }
            // sha256sum marks binary mode with a `*` before the name.
            let file = file.trim_start().trim_start_matches('*');
            let name = Path::new(file)
                .file_name()
                .ok_or_else(|| bad("no file name after the digest"))?
                .to_string_lossy()
                .into_owned();
            by_file.insert(name, digest.to_ascii_lowercase());
        }
        Ok(DigestList {
            path: path.to_path_buf(),
            by_file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the artifact `file_name` whose content hashes to `digest` is not vouched for, or
    /// `None` when it is.
    fn refusal(&self, file_name: &str, digest: &str) -> Option<String> {
        if self.by_file.values().any(|d| d == digest) {
            return None;
        }
        Some(match self.by_file.get(file_name) {
            Some(listed) => format!(
                "its content changed after its digest was listed: {} lists sha256 {listed}, the \
                 file has {digest}; it was altered or damaged, so install it again from the \
                 image build",
                self.path.display()
            ),
            None => format!(
                "its sha256 {digest} is not in {}; if the image build made it, add its line \
                 (`sha256sum FILE >> {}`)",
                self.path.display(),
                self.path.display()
            ),
        })
    }
}

/// What vouches for precompiled artifacts on this device.
#[derive(Debug, Clone, Default)]
pub(super) struct Vouchers {
    /// The digest list the image build wrote, and where it is (or would be).
    pub list: Option<DigestList>,
    pub list_path: PathBuf,
    /// Artifacts a signed bundle manifest listed, by path: the sha256 each must have.
    pub bundled: BTreeMap<PathBuf, String>,
}

/// Opens the artifact at `path` for plugin `name` and checks it against what vouches for it:
/// it must be guarded like the digest list (nobody but its owner, root or us, can change it),
/// and its sha256 must be the one the signed bundle manifest listed for it, or else be in the
/// digest list. Returns its sha256.
pub(super) fn verify(name: &str, path: &Path, vouchers: &Vouchers) -> Result<String, PluginError> {
    let refuse = |reason: String| PluginError::UntrustedArtifact {
        name: name.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    // A bundle manifest's word for this very file comes first; the digest list otherwise.
    enum Voucher<'a> {
        Manifest(&'a str),
        List(&'a DigestList),
    }
    let voucher = match (vouchers.bundled.get(path), &vouchers.list) {
        (Some(listed), _) => Voucher::Manifest(listed),
        (None, Some(list)) => Voucher::List(list),
        (None, None) => {
            let list_path = vouchers.list_path.display();
            return Err(refuse(format!(
                "there is no digest list {list_path} to vouch for it; the image build writes \
                 one with `sha256sum *.cwasm > {list_path}`"
            )));
        }
    };
    let file = File::open(path).map_err(|e| refuse(format!("cannot open it: {e}")))?;
    check_guarded(&file, path).map_err(refuse)?;
    let mut hasher = Sha256::new();
    // Large reads: io::copy's own 8 KiB buffer costs a system call per 8 KiB of a 40 MiB file.
    io::copy(
        &mut io::BufReader::with_capacity(HASH_READ, file),
        &mut hasher,
    )
    .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let digest = hex::encode(hasher.finalize());
    let refusal = match voucher {
        Voucher::Manifest(listed) => (listed != digest).then(|| {
            format!(
                "its content changed after the signed bundle manifest listed it: the manifest \
                 lists sha256 {listed}, the file has {digest}; it was altered or damaged on the \
                 device, so install the bundle again"
            )
        }),
        Voucher::List(list) => {
            let file_name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            list.refusal(&file_name, &digest)
        }
    };
    match refusal {
        None => Ok(digest),
        Some(reason) => Err(refuse(reason)),
    }
}

/// Nobody but root or the user running airlock may be able to change the opened file at
/// `path`, nor replace it in its folder.
fn check_guarded(file: &File, path: &Path) -> Result<(), String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    guarded("it", &meta)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let dir_meta = fs::metadata(dir).map_err(|e| format!("cannot stat its folder: {e}"))?;
    guarded(&format!("its folder {}", dir.display()), &dir_meta)
}

fn guarded(what: &str, meta: &fs::Metadata) -> Result<(), String> {
    // Safety: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "{what} belongs to uid {}, neither root nor the user running airlock (uid {euid}); \
             chown it",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by other users (mode {:o}); chmod go-w it",
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn thirty_two_bit_arm_runs_pulley_bytecode() {
        assert_eq!(compile_target("armv7-unknown-linux-gnueabihf"), "pulley32");
        assert_eq!(compile_target("pulley32"), "pulley32");
        assert_eq!(
            compile_target("aarch64-unknown-linux-gnu"),
            "aarch64-unknown-linux-gnu"
        );
    }

    #[test]
    fn a_musl_build_runs_the_form_of_its_cpu() {
        assert_eq!(
            compile_target("aarch64-unknown-linux-musl"),
            "aarch64-unknown-linux-gnu"
        );
        assert_eq!(
            compile_target("x86_64-unknown-linux-musl"),
            "x86_64-unknown-linux-gnu"
        );
        assert_eq!(compile_target("armv7-unknown-linux-musleabihf"), "pulley32");
    }

    #[test]
    fn artifact_sits_beside_the_component() {
        assert_eq!(
            artifact_path(Path::new("/usr/lib/p/health.wasm"), "pulley32"),
            Path::new("/usr/lib/p/health.pulley32.cwasm")
        );
    }

    #[test]
    fn parses_what_sha256sum_writes() {
        let text = format!("# made by the image build\n\n{A}  health.x.cwasm\n{A} *other.cwasm\n");
        let list = DigestList::parse(&text, Path::new("l")).unwrap();
        assert_eq!(list.by_file.len(), 2);
        assert_eq!(list.refusal("health.x.cwasm", A), None);
        assert_eq!(list.refusal("anything.cwasm", A), None);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let list = DigestList::parse(&format!("{A}  /p/health.cwasm\n"), Path::new("l")).unwrap();
        let b = "b".repeat(64);
        let changed = list.refusal("health.cwasm", &b).unwrap();
        assert!(
            changed.contains("changed after its digest was listed"),
            "{changed}"
        );
        let unlisted = list.refusal("new.cwasm", &b).unwrap();
        assert!(unlisted.contains("is not in l"), "{unlisted}");
    }

    #[test]
    fn bad_lines_are_errors() {
        for text in ["nothex  f.cwasm", A, &format!("{A}0  f")] {
            let e = DigestList::parse(text, Path::new("l"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 1"), "{e}");
        }
    }

    #[test]
    fn a_list_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DIGEST_LIST);
        fs::write(&path, format!("{A}  f.cwasm\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(DigestList::load(&path).unwrap().is_some());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let e = DigestList::load(&path).unwrap_err().to_string();
        assert!(e.contains("writable by other users"), "{e}");
        assert!(
            DigestList::load(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
    }
}
