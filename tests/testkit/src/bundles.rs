//! What tests build bundles from: the bundle description (`bundle.toml`) and the archives of
//! directory payloads. The engine's unit tests, the end-to-end tests (through `airlock bundle
//! create`) and the server's tests all describe their bundles this way.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A bundle description, built up key by key.
#[derive(Debug, Clone)]
pub struct BundleToml {
    head: String,
    tables: String,
}

impl BundleToml {
    /// Bundle `name` at `version` for the device types `compatible`.
    pub fn new(name: &str, version: &str, compatible: &[&str]) -> Self {
        let compatible: Vec<String> = compatible.iter().map(|c| format!("{c:?}")).collect();
        Self {
            head: format!(
                "name = {name:?}\nversion = {version:?}\ncompatible = [{}]\n",
                compatible.join(", ")
            ),
            tables: String::new(),
        }
    }

    /// Adds top-level TOML, e.g. `expires = "2030-01-01T00:00:00Z"` (empty: nothing).
    pub fn with(mut self, toml: &str) -> Self {
        if !toml.is_empty() {
            self.head += toml;
            self.head += "\n";
        }
        self
    }

    /// A payload read from `file` (absolute, or relative to the description's folder) for slot
    /// class `slot`.
    pub fn payload(self, name: &str, file: impl AsRef<Path>, slot: &str) -> Self {
        self.payload_to(name, file.as_ref(), "slot", slot)
    }

    /// A payload read from `file` that installer plugin `plugin` installs.
    pub fn installer_payload(self, name: &str, file: impl AsRef<Path>, plugin: &str) -> Self {
        self.payload_to(name, file.as_ref(), "installer", plugin)
    }

    fn payload_to(mut self, name: &str, file: &Path, key: &str, value: &str) -> Self {
        let file = toml_path(file);
        let _ = write!(
            self.tables,
            "[[payload]]\nname = {name:?}\nfile = {file}\n{key} = {value:?}\n"
        );
        self
    }

    /// Appends TOML tables after the payloads (e.g. `[[plugin]]` entries).
    pub fn tables(mut self, toml: &str) -> Self {
        self.tables += toml;
        self
    }

    /// The description's text.
    pub fn text(&self) -> String {
        format!("{}{}", self.head, self.tables)
    }

    /// Writes the description to `path` and returns that path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.text())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path.to_path_buf()
    }
}

/// `path` as a TOML literal string (no escapes: a Windows-free test suite needs none).
pub fn toml_path(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 path");
    assert!(
        !text.contains('\'') && !text.contains('\n'),
        "cannot quote {text:?}"
    );
    format!("'{text}'")
}

/// A tar archive (a directory payload) of `files`: (path inside, content). Files under `bin/`
/// are executable, the others 0644.
pub fn tar_archive<P: AsRef<str>, C: AsRef<[u8]>>(files: &[(P, C)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let (path, content) = (path.as_ref(), content.as_ref());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(if path.starts_with("bin/") {
            0o755
        } else {
            0o644
        });
        header.set_cksum();
        tar.append_data(&mut header, path, content)
            .expect("appending to an in-memory archive");
    }
    tar.into_inner().expect("finishing an in-memory archive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_puts_top_level_keys_before_the_tables() {
        let toml = BundleToml::new("os", "1.2.3", &["board", "board-v2"])
            .payload("rootfs", "root fs.img", "rootfs")
            .with("expires = \"2030-01-01T00:00:00Z\"")
            .installer_payload("app", Path::new("/tmp/app.tar"), "archive-installer")
            .text();
        assert_eq!(
            toml,
            "name = \"os\"\nversion = \"1.2.3\"\ncompatible = [\"board\", \"board-v2\"]\n\
             expires = \"2030-01-01T00:00:00Z\"\n\
             [[payload]]\nname = \"rootfs\"\nfile = 'root fs.img'\nslot = \"rootfs\"\n\
             [[payload]]\nname = \"app\"\nfile = '/tmp/app.tar'\ninstaller = \"archive-installer\"\n"
        );
    }

    #[test]
    fn an_archive_holds_its_files_with_their_modes() {
        let archive = tar_archive(&[("bin/app", "run"), ("etc/app.conf", "x = 1")]);
        let mut tar = tar::Archive::new(&archive[..]);
        let entries: Vec<(String, u32, u64)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                (path, e.header().mode().unwrap(), e.size())
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("bin/app".to_string(), 0o755, 3),
                ("etc/app.conf".to_string(), 0o644, 5)
            ]
        );
    }
}
