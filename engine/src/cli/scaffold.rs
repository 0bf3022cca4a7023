//! `airlock plugin new`: a plugin project in Rust, Python, JavaScript or C that builds and runs
//! out of the box, outside this repository.
//!
//! A project holds the engine's own WIT file (`wit/plugin.wit`, so it always matches the
//! interface this engine serves), the plugin's source, `build.sh` (the language's toolchain →
//! `NAME.wasm`), `test.sh` (builds, then runs the plugin through `airlock plugin run` and checks
//! its verdicts), a README and a .gitignore. The templates live in `engine/templates/`; the
//! toolchain pins come from the first-party plugins' own (plugins/python/requirements.txt,
//! plugins/js/package.json, plugins/c/tool), so the scaffold builds with what CI tests.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

/// The interface version every scaffold is built against.
const WIT_VERSION: &str = "0.1.0";
const WIT: &str = include_str!("../../../wit/v0.1/plugin.wit");

const TEST_CHECK: &str = include_str!("../../templates/common/test-check.sh");
const TEST_HOOK: &str = include_str!("../../templates/common/test-hook.sh");
const README: &str = include_str!("../../templates/common/README.md");

const PY_REQUIREMENTS: &str = include_str!("../../../plugins/python/requirements.txt");
const JS_PACKAGE_PINS: &str = include_str!("../../../plugins/js/package.json");
const C_TOOL_MANIFEST: &str = include_str!("../../../plugins/c/tool/Cargo.toml");
const C_TOOL_LOCK: &str = include_str!("../../../plugins/c/tool/Cargo.lock");
const C_TOOL_MAIN: &str = include_str!("../../../plugins/c/tool/src/main.rs");

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

impl Lang {
    #[cfg(test)]
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C];

    fn id(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
        }
    }

    /// What `build.sh` needs, for the README and the command's closing hint.
    fn needs(self) -> &'static str {
        match self {
            Lang::Rust => "cargo and `rustup target add wasm32-wasip2`",
            Lang::Python => "componentize-py: `pip install -r requirements.txt`",
            Lang::Js => "Node.js 18+ and npm (the first build runs `npm install`)",
            Lang::C => "cargo, and `apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32`",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The world of a new plugin. Installers are left to the SDK and the guides: they need a
/// payload and pre-opened directories to be useful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Check,
    Hook,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Hook => "hook",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One file of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative to the project's folder.
    pub path: String,
    pub contents: String,
    pub executable: bool,
}

/// Checks that `name` can be a plugin, crate, file and TOML key name: lowercase ASCII letters,
/// digits and dashes, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "{name:?} cannot name a plugin: use lowercase letters, digits and dashes, starting \
             with a letter (e.g. \"battery-check\")"
        );
    }
    Ok(())
}

/// The files of a new `lang` plugin of world `kind` called `name`.
pub fn files(name: &str, lang: Lang, kind: Kind) -> Result<Vec<File>> {
    check_name(name)?;
    let crate_name = name.replace('-', "_");
    let js_version = componentize_js_version()?;
    // componentize-js imports the WASI shim without declaring it: pin it beside it.
    let preview2_shim = js_pin("@bytecodealliance/preview2-shim")?;
    let vars: [(&str, &str); 8] = [
        ("name", name),
        ("crate", &crate_name),
        ("world", kind.id()),
        ("wit_version", WIT_VERSION),
        ("lang", lang.id()),
        ("lang_name", lang.title()),
        ("componentize_js", &js_version),
        ("preview2_shim", &preview2_shim),
    ];
    let render = |template: &str| render(template, &vars);
    let text = |path: &str, contents: String| File {
        path: path.to_string(),
        contents,
        executable: false,
    };
    let script = |path: &str, contents: String| File {
        path: path.to_string(),
        contents,
        executable: true,
    };

    let (source_path, source, build, gitignore) = match (lang, kind) {
        (Lang::Rust, k) => (
            "src/lib.rs".to_string(),
            pick(
                k,
                include_str!("../../templates/rust/check.rs"),
                include_str!("../../templates/rust/hook.rs"),
            ),
            include_str!("../../templates/rust/build.sh"),
            include_str!("../../templates/rust/gitignore"),
        ),
        (Lang::Python, k) => (
            "app.py".to_string(),
            pick(
                k,
                include_str!("../../templates/python/check.py"),
                include_str!("../../templates/python/hook.py"),
            ),
            include_str!("../../templates/python/build.sh"),
            include_str!("../../templates/python/gitignore"),
        ),
        (Lang::Js, k) => (
            format!("{name}.js"),
            pick(
                k,
                include_str!("../../templates/js/check.js"),
                include_str!("../../templates/js/hook.js"),
            ),
            include_str!("../../templates/js/build.sh"),
            include_str!("../../templates/js/gitignore"),
        ),
        (Lang::C, k) => (
            format!("{name}.c"),
            pick(
                k,
                include_str!("../../templates/c/check.c"),
                include_str!("../../templates/c/hook.c"),
            ),
            include_str!("../../templates/c/build.sh"),
            include_str!("../../templates/c/gitignore"),
        ),
    };

    let mut out = vec![
        text("wit/plugin.wit", WIT.to_string()),
        text(&source_path, render(source)),
        script("build.sh", render(build)),
        script("test.sh", render(pick(kind, TEST_CHECK, TEST_HOOK))),
        text(".gitignore", gitignore.to_string()),
        text("README.md", readme(name, lang, kind, &render)),
    ];
    match lang {
        Lang::Rust => out.push(text(
            "Cargo.toml",
            render(include_str!("../../templates/rust/Cargo.toml")),
        )),
        Lang::Python => out.push(text("requirements.txt", PY_REQUIREMENTS.to_string())),
        Lang::Js => out.push(text(
            "package.json",
            render(include_str!("../../templates/js/package.json")),
        )),
        Lang::C => {
            let tool = "tools/airlock-c-tool";
            out.push(text(
                &format!("{tool}/Cargo.toml"),
                C_TOOL_MANIFEST.to_string(),
            ));
            out.push(text(&format!("{tool}/Cargo.lock"), C_TOOL_LOCK.to_string()));
            out.push(text(
                &format!("{tool}/src/main.rs"),
                C_TOOL_MAIN.to_string(),
            ));
        }
    }
    Ok(out)
}

fn pick(kind: Kind, check: &'static str, hook: &'static str) -> &'static str {
    match kind {
        Kind::Check => check,
        Kind::Hook => hook,
    }
}

fn readme(name: &str, lang: Lang, kind: Kind, render: &dyn Fn(&str) -> String) -> String {
    let (what, run, toml, chain) = match kind {
        Kind::Check => (
            "It GETs the URL in its config (`url`) on the trial boot of a new release and \
             passes when it answers 200; the operator must also allow that URL (`http`).",
            "--config url=http://127.0.0.1:8080/health --allow-url http://127.0.0.1:8080/health",
            format!(
                "http = [\"http://127.0.0.1:8080/health\"]\n[plugins.{name}.config]\n\
                 url = \"http://127.0.0.1:8080/health\"\n"
            ),
            format!("check = [\"{name}\"]"),
        ),
        Kind::Hook => (
            "It vetoes an update, before anything is downloaded, when the bundle's version is \
             one of those in its config (`block`, comma-separated).",
            "--config block=1.1.0",
            format!("[plugins.{name}.config]\nblock = \"1.1.0\"\n"),
            format!("download-enter = [\"{name}\"]"),
        ),
    };
    render(README)
        .replace("{{what}}", what)
        .replace("{{build_needs}}", &format!("; needs {}", lang.needs()))
        .replace("{{run_example}}", run)
        .replace("{{toml_example}}", &toml)
        .replace("{{chain_example}}", &chain)
}

/// Replaces every `{{key}}` of `vars` in `template`.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// The componentize-js version the first-party JavaScript plugins pin (plugins/js/package.json).
fn componentize_js_version() -> Result<String> {
    js_pin("@bytecodealliance/componentize-js")
}

/// The version of an npm package the first-party JavaScript plugins pin.
fn js_pin(package_name: &str) -> Result<String> {
    let package: serde_json::Value =
        serde_json::from_str(JS_PACKAGE_PINS).context("plugins/js/package.json is not JSON")?;
    package["devDependencies"][package_name]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("plugins/js/package.json pins no {package_name}"))
}

/// Writes the project into `dir`, which must not exist or be empty. Returns the files written.
pub fn create(dir: &Path, name: &str, lang: Lang, kind: Kind) -> Result<Vec<PathBuf>> {
    let files = files(name, lang, kind)?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} exists and cannot be read", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty; choose another name or --dir",
                dir.display()
            );
        }
    }
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// The line `airlock plugin new` ends with: what to run next.
pub fn next_steps(dir: &Path, name: &str, lang: Lang) -> String {
    format!(
        "next:\n  cd {}\n  ./build.sh   # -> {name}.wasm; needs {}\n  ./test.sh    # builds, \
         then runs it through the engine's sandbox and checks its verdicts",
        dir.display(),
        lang.needs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_completely() {
        for lang in Lang::ALL {
            for kind in [Kind::Check, Kind::Hook] {
                let files = files("my-plugin", lang, kind).unwrap();
                for f in &files {
                    assert!(
                        !f.contents.contains("{{"),
                        "{lang} {kind}: {} keeps a placeholder",
                        f.path
                    );
                }
                let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                for needed in ["wit/plugin.wit", "build.sh", "test.sh", "README.md"] {
                    assert!(paths.contains(&needed), "{lang} {kind}: no {needed}");
                }
                let build = files.iter().find(|f| f.path == "build.sh").unwrap();
                assert!(build.executable && build.contents.contains("my-plugin.wasm"));
            }
        }
    }

    #[test]
    fn the_world_and_names_reach_the_sources() {
        let rust = files("my-plugin", Lang::Rust, Kind::Hook).unwrap();
        let lib = rust.iter().find(|f| f.path == "src/lib.rs").unwrap();
        assert!(lib.contents.contains("world: \"hook\""));
        let build = rust.iter().find(|f| f.path == "build.sh").unwrap();
        assert!(build.contents.contains("release/my_plugin.wasm"));
        let js = files("gate", Lang::Js, Kind::Check).unwrap();
        assert!(js.iter().any(|f| f.path == "gate.js"));
        let package = js.iter().find(|f| f.path == "package.json").unwrap();
        let version = componentize_js_version().unwrap();
        assert!(package.contents.contains(&format!("\"{version}\"")));
        let py = files("gate", Lang::Python, Kind::Check).unwrap();
        let req = py.iter().find(|f| f.path == "requirements.txt").unwrap();
        assert!(req.contents.contains("componentize-py=="));
    }

    #[test]
    fn names_must_suit_every_language() {
        for good in ["a", "battery-check", "v2-gate"] {
            check_name(good).unwrap();
        }
        for bad in ["", "Battery", "2fast", "a_b", "a-", "a b", "../x", "é"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("lowercase letters"), "{bad}: {e}");
        }
    }

    #[test]
    fn create_refuses_a_folder_with_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        let e = create(dir.path(), "p", Lang::C, Kind::Check).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("keep")).unwrap(), b"x");

        let target = dir.path().join("p");
        let written = create(&target, "p", Lang::Python, Kind::Hook).unwrap();
        assert!(written.iter().all(|p| p.starts_with(&target)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target.join("test.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }
}
