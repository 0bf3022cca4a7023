//! Plugins written in Python, JavaScript and C, built from source with their own toolchains
//! (`plugins/build.sh python js c`), run through the real `airlock` binary on a simulated
//! device: checks deciding trial boots (commit or roll back), hooks vetoing installs, probes of
//! allow-listed loopback URLs, a pre-opened directory. And `airlock plugin new`: a project in
//! each language that builds and passes its own test out of the box.
//!
//! A missing toolchain fails these tests with the install command (never a silent skip);
//! `scripts/test` installs the toolchains when it runs as root.
//!
//! Python and JavaScript components take tens of seconds to compile, so each component is
//! compiled once, with `airlock plugin compile`, into a cache the devices share (as an image
//! build would precompile into a device's cache); the tests check that the devices then load
//! them without compiling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use airlock_testkit::{FaultServer, Faults};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::*;

/// The checkout's plugins/ folder.
fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .canonicalize()
        .expect("the plugins/ folder next to engine/")
}

/// A language of plugins/ other than Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Python,
    Js,
    C,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }
}

/// The folder holding `lang`'s built components (`plugins/target/LANG`). The first call per
/// language runs `plugins/LANG/build.sh` (seconds when nothing changed); a missing toolchain
/// panics with the script's message, which names what to install.
fn built(lang: Lang) -> &'static Path {
    static BUILT: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    BUILT[lang as usize].get_or_init(|| {
        let script = plugins_dir().join(lang.dir()).join("build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .unwrap_or_else(|e| panic!("cannot run `bash {}`: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(2) => panic!(
                "the {lang:?} plugin tests need a toolchain that is not installed:\n{stderr}\
                 (scripts/test installs every toolchain when it runs as root)"
            ),
            _ => panic!(
                "`{}` failed; run it to see why:\n{}",
                script.display(),
                output_text(&out)
            ),
        }
        plugins_dir().join("target").join(lang.dir())
    })
}

/// The built component `name` of `lang`, e.g. `component(Lang::Python, "health-json")`.
fn component(lang: Lang, name: &str) -> PathBuf {
    let path = built(lang).join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "plugins/{}/build.sh left no {}",
        lang.dir(),
        path.display()
    );
    path
}

/// The compile cache the tests' devices share: persistent under plugins/target, so a second
/// run compiles nothing. Entries are named by the component's sha256 and the engine's
/// compatibility hash, so a stale one is never loaded.
fn shared_cache() -> PathBuf {
    plugins_dir().join("target/e2e-plugin-cache")
}

/// Compiles `wasm` into the shared cache with `airlock plugin compile`, unless it is there.
/// Serialised: two compilations at once would only slow each other down on a small machine.
fn precompile(wasm: &Path) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let sha = hex::encode(Sha256::digest(std::fs::read(wasm).unwrap()));
    let cached = std::fs::read_dir(shared_cache())
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&sha))
        })
        .unwrap_or(false);
    if cached {
        return;
    }
    let artifact = tempfile::tempdir().unwrap();
    let out = artifact.path().join("plugin.cwasm");
    let text = ok(&[
        "plugin",
        "compile",
        wasm.to_str().unwrap(),
        "--cache",
        shared_cache().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("compiled "), "{text}");
}

/// A device with 2 MiB slots whose compile cache is the shared one, and signed 1 MiB updates.
struct Setup {
    ws: Workspace,
    dev: Device,
}

fn setup() -> Setup {
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    let cache = dev.dir.join("data/plugin-cache");
    if cache.exists() {
        std::fs::remove_dir_all(&cache).unwrap();
    }
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    // The engine wants its cache private (mode 0700, ours).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(shared_cache())
        .unwrap();
    std::os::unix::fs::symlink(shared_cache(), &cache).unwrap();
    Setup { ws, dev }
}

impl Setup {
    /// A signed bundle of `version` for the device.
    fn bundle(&self, version: &str, seed: u64) -> PathBuf {
        let image = format!("v{version}.img");
        self.ws.file(&image, &image_bytes(1 << 20, seed));
        self.ws.bundle(
            &format!("v{version}.airlock"),
            version,
            "test-device",
            &[("rootfs", &image, "rootfs")],
            "",
        )
    }

    /// Configures plugin `name` (the component `wasm`, precompiled) with `extra` lines of its
    /// table, then its sub-tables.
    fn plugin(&self, name: &str, wasm: &Path, extra: &str) {
        if !precompiled_under_test() {
            precompile(wasm);
        }
        self.dev.add_component(name, wasm, extra);
    }
}

/// `airlock -v sim reboot`: exits 0, no panic, and loads its plugins from the compile cache.
fn reboot(dev: &Device) -> String {
    let out = run(&["-v", "sim", "reboot", dev.dir.to_str().unwrap()]);
    let text = assert_contained(&out, "sim reboot");
    assert!(out.status.success(), "sim reboot failed:\n{text}");
    assert!(
        !text.contains("plugin compiled"),
        "the trial boot compiled a plugin that `airlock plugin compile` had cached:\n{text}"
    );
    text
}

/// Installs `bundle` and reboots into its trial: the checks pass and the release is committed.
fn install_and_expect_commit(s: &Setup, bundle: &Path, version: &str) {
    s.dev.install(bundle);
    let out = reboot(&s.dev);
    assert!(out.contains("passed its checks; committed"), "{out}");
    let st = s.dev.status();
    assert_eq!(st["committed"]["version"], version, "{st}");
    assert_eq!(st["last_result"]["result"], "committed", "{st}");
}

/// Installs `bundle` and reboots into its trial: check `name` fails it and the device boots
/// back into `side`. Returns the recorded reason.
fn install_and_expect_rollback(s: &Setup, bundle: &Path, name: &str, side: &str) -> String {
    s.dev.install(bundle);
    let out = reboot(&s.dev);
    assert!(
        out.contains(&format!("rolled back: check {name} failed")),
        "{out}"
    );
    let st = s.dev.status();
    assert_eq!(st["booted"], side, "{st}");
    assert_eq!(st["primary"], side, "{st}");
    assert_eq!(st["last_result"]["result"], "rolled-back", "{st}");
    let reason = st["last_result"]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with(&format!("check {name} failed: ")),
        "{reason}"
    );
    reason
}

/// `install` of `bundle` is refused by hook `hook` at download-enter, slot b untouched.
/// Returns stderr.
fn install_and_expect_veto(s: &Setup, bundle: &Path, hook: &str) -> String {
    let slot_b = s.dev.slot("b");
    let out = s.dev.output(&["install", bundle.to_str().unwrap()]);
    let text = assert_contained(&out, "install");
    let stderr = expect_clean_failure(&out, "install");
    assert!(
        stderr.contains(&format!(
            "hook {hook} aborted the update at download-enter: "
        )),
        "{text}"
    );
    assert!(s.dev.slot("b") == slot_b, "slot b was written");
    let st = s.dev.status();
    assert!(st["update"].is_null(), "{st}");
    assert_eq!(st["last_result"]["result"], "failed", "{st}");
    stderr
}

/// A check of `lang` against a loopback health URL: a healthy release commits, an unhealthy
/// one rolls back. `good` and `bad` are what /health serves (body, status) for each.
fn check_commits_then_rolls_back(
    lang: Lang,
    wasm: &str,
    config: &str,
    good: (&str, u16),
    bad: (&str, u16),
) -> String {
    let s = setup();
    let server = FaultServer::start().unwrap();
    let url = server.url("/health");
    s.plugin(
        "health",
        &component(lang, wasm),
        &format!("http = [\"{url}\"]\n[plugins.health.config]\nurl = \"{url}\"\n{config}"),
    );
    s.dev.set_chain("check = [\"health\"]");

    server.serve_bytes("/health", good.0.as_bytes().to_vec());
    if good.1 != 200 {
        server.set_faults(Faults::none().status(good.1));
    }
    let v1 = s.bundle("1.0.0", 1);
    install_and_expect_commit(&s, &v1, "1.0.0");
    assert_eq!(server.requests().len(), 1, "one GET per trial boot");

    server.serve_bytes("/health", bad.0.as_bytes().to_vec());
    if bad.1 != 200 {
        server.set_faults(Faults::none().status(bad.1));
    }
    let v2 = s.bundle("1.1.0", 2);
    let reason = install_and_expect_rollback(&s, &v2, "health", "b");
    assert_eq!(s.dev.status()["committed"]["version"], "1.0.0");
    reason
}

// ---- checks ----

#[test]
fn python_check_commits_a_healthy_release_and_rolls_back_an_unhealthy_one() {
    let reason = check_commits_then_rolls_back(
        Lang::Python,
        "health-json",
        "field = \"status\"\nexpect = \"ok\"\n",
        ("{\"status\": \"ok\", \"uptime\": 12}", 200),
        ("{\"status\": \"degraded\"}", 200),
    );
    assert!(
        reason.contains("status is 'degraded', expected 'ok'"),
        "{reason}"
    );
}

#[test]
fn js_check_commits_a_healthy_release_and_rolls_back_an_unhealthy_one() {
    let reason = check_commits_then_rolls_back(
        Lang::Js,
        "http-body",
        "contains = \"ready\"\n",
        ("service ready", 200),
        ("service starting", 200),
    );
    assert!(
        reason.contains("answered status 200 but its body does not contain \"ready\""),
        "{reason}"
    );
}

#[test]
fn c_check_commits_a_healthy_release_and_rolls_back_an_unhealthy_one() {
    let reason = check_commits_then_rolls_back(
        Lang::C,
        "http-status",
        "min_body = \"2\"\n",
        ("ok", 200),
        ("oops", 503),
    );
    assert!(
        reason.contains("answered status 503, expected 200"),
        "{reason}"
    );
}

#[test]
fn a_check_refused_its_url_fails_the_trial() {
    // The Python check asks for a URL the operator did not allow: the engine refuses the
    // probe, the check fails and the device rolls back.
    let s = setup();
    s.plugin(
        "health",
        &component(Lang::Python, "health-json"),
        "http = [\"http://127.0.0.1:9/allowed\"]\n\
         [plugins.health.config]\nurl = \"http://127.0.0.1:9/other\"\n",
    );
    s.dev.set_chain("check = [\"health\"]");
    let reason = install_and_expect_rollback(&s, &s.bundle("1.0.0", 1), "health", "a");
    assert!(
        reason.contains("GET http://127.0.0.1:9/other: ") && reason.contains("not in"),
        "{reason}"
    );
}

// ---- hooks ----

#[test]
fn python_hook_vetoes_a_denied_version() {
    let s = setup();
    s.plugin(
        "policy",
        &component(Lang::Python, "version-policy"),
        "[plugins.policy.config]\ndeny = \"0.9.0, 1.0.0\"\n",
    );
    s.dev.set_chain("download-enter = [\"policy\"]");
    let v1 = s.bundle("1.0.0", 1);
    let e = install_and_expect_veto(&s, &v1, "policy");
    assert!(
        e.contains("version 1.0.0 is denied by the operator (deny = 0.9.0, 1.0.0)"),
        "{e}"
    );
    // Another version goes through.
    let v11 = s.bundle("1.1.0", 2);
    s.dev.install(&v11);
    assert_eq!(s.dev.status()["update"]["release"]["version"], "1.1.0");
}

#[test]
fn js_hook_holds_updates_on_no_go_and_lets_them_through_on_go() {
    let s = setup();
    let server = FaultServer::start().unwrap();
    let url = server.url("/go");
    s.plugin(
        "go-no-go",
        &component(Lang::Js, "go-no-go"),
        &format!("http = [\"{url}\"]\n[plugins.go-no-go.config]\nurl = \"{url}\"\n"),
    );
    s.dev.set_chain("download-enter = [\"go-no-go\"]");
    let v1 = s.bundle("1.0.0", 1);

    server.serve_bytes("/go", b"no-go: holiday freeze\n".to_vec());
    let e = install_and_expect_veto(&s, &v1, "go-no-go");
    assert!(
        e.contains(&format!("{url} says no-go: holiday freeze")),
        "{e}"
    );

    server.serve_bytes("/go", b"go\n".to_vec());
    s.dev.install(&v1);
    assert_eq!(s.dev.status()["update"]["release"]["version"], "1.0.0");
    assert_eq!(server.requests().len(), 2, "one GET per install");
}

#[test]
fn c_hook_vetoes_an_update_on_a_low_battery() {
    let s = setup();
    let battery = s.ws.path("BAT0");
    std::fs::create_dir(&battery).unwrap();
    std::fs::write(battery.join("capacity"), "12\n").unwrap();
    std::fs::write(battery.join("status"), "Discharging\n").unwrap();
    s.plugin(
        "battery",
        &component(Lang::C, "battery"),
        &format!(
            "[[plugins.battery.dirs]]\nhost = {}\nguest = \"/battery\"\n",
            toml_path(&battery)
        ),
    );
    s.dev.set_chain("download-enter = [\"battery\"]");
    let v1 = s.bundle("1.0.0", 1);
    let e = install_and_expect_veto(&s, &v1, "battery");
    assert!(
        e.contains("battery at 12%, below the 30% needed to update (min)"),
        "{e}"
    );

    // On the charger it proceeds (read through the pre-opened directory, read-only).
    std::fs::write(battery.join("status"), "Charging\n").unwrap();
    s.dev.install(&v1);
    assert_eq!(s.dev.status()["update"]["release"]["version"], "1.0.0");
    assert_eq!(
        std::fs::read_to_string(battery.join("capacity")).unwrap(),
        "12\n"
    );
}

// ---- what the components are, and the compile cache ----

/// `airlock plugin inspect --json` of a component.
fn inspect(wasm: &Path) -> Value {
    serde_json::from_str(&ok(&[
        "plugin",
        "inspect",
        "--json",
        wasm.to_str().unwrap(),
    ]))
    .expect("inspect --json is JSON")
}

#[test]
fn every_language_imports_only_what_the_engine_serves() {
    let components = [
        (Lang::Python, "health-json", "check"),
        (Lang::Python, "version-policy", "hook"),
        (Lang::Js, "http-body", "check"),
        (Lang::Js, "go-no-go", "hook"),
        (Lang::C, "http-status", "check"),
        (Lang::C, "battery", "hook"),
    ];
    for (lang, name, world) in components {
        let info = inspect(&component(lang, name));
        assert_eq!(info["world"], world, "{name}: {info}");
        assert_eq!(info["wit_version"], "0.1.0", "{name}: {info}");
        for import in info["imports"].as_array().unwrap() {
            let import = import.as_str().unwrap();
            let served = import.starts_with("airlock:plugin/") && import.ends_with("@0.1.0")
                || import.starts_with("wasi:") && import.contains("@0.2.")
                // Types the world `use`s, imported by name.
                || matches!(import, "context" | "check-result" | "hook-result");
            assert!(
                served && !import.starts_with("wasi:http/"),
                "{name} ({lang:?}) imports {import}, which the engine does not serve: {info}"
            );
        }
    }
}

/// `airlock plugin run --json` with the shared cache.
fn run_json(wasm: &Path, args: &[&str]) -> Value {
    let cache = shared_cache();
    let mut all = vec![
        "plugin",
        "run",
        wasm.to_str().unwrap(),
        "--json",
        "--cache",
        cache.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = run(&all);
    let text = assert_contained(&out, "plugin run");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn plugin_compile_makes_later_loads_and_calls_fast() {
    for (lang, name) in [(Lang::Python, "version-policy"), (Lang::Js, "go-no-go")] {
        let wasm = component(lang, name);
        let args = ["--repeat", "5", "--config", "deny=1.1.0"];
        let report = if precompiled_under_test() {
            // The device build runs the precompiled form the image build vouched for.
            let (wasm, line) = precompiled_form(&wasm);
            let dir = tempfile::tempdir().unwrap();
            let list = dir.path().join("precompiled.sha256");
            std::fs::write(&list, line).unwrap();
            run_json(
                &wasm,
                &[&args[..], &["--digest-list", list.to_str().unwrap()]].concat(),
            )
        } else {
            precompile(&wasm);
            run_json(&wasm, &args)
        };
        assert_eq!(report["compiled"], false, "{name}: {report}");
        assert_eq!(report["warm_calls"], 4, "{report}");
        // Loose bounds that only a compilation (tens of seconds) would break, on any machine.
        for key in ["load_ms", "first_call_ms", "warm_median_ms"] {
            let ms = report[key].as_f64().unwrap();
            assert!(ms < 10_000.0, "{name}: {key} = {ms} ms: {report}");
        }
    }
}

// ---- airlock plugin new ----

/// `airlock plugin new NAME --lang LANG --world WORLD` in a temp folder, then its `test.sh`
/// (which builds, then checks verdicts through `airlock plugin run`), with airlock on PATH
/// and a private compile cache. Cargo's output goes to a shared folder under plugins/target,
/// and a JavaScript project uses plugins/js/node_modules (the same pinned componentize-js),
/// so that nothing is downloaded or compiled twice.
fn scaffold_and_test(lang: &str, world: &str) -> String {
    // The same toolchain as the first-party plugins: a missing one fails here, saying what
    // to install.
    match lang {
        "python" => _ = built(Lang::Python),
        "js" => _ = built(Lang::Js),
        "c" => _ = built(Lang::C),
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let name = format!("my-{lang}-{world}");
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .current_dir(dir.path())
        .args(["plugin", "new", &name, "--lang", lang, "--world", world])
        .output()
        .unwrap();
    assert!(out.status.success(), "plugin new:\n{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("./test.sh"), "{stdout}");
    let project = dir.path().join(&name);
    assert!(project.join("wit/plugin.wit").is_file());
    if lang == "js" {
        std::os::unix::fs::symlink(
            plugins_dir().join("js/node_modules"),
            project.join("node_modules"),
        )
        .unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_airlock")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let target = match lang {
        "c" => plugins_dir().join("target/host"),
        _ => plugins_dir().join("target/scaffold"),
    };
    let out: Output = Command::new("bash")
        .arg(project.join("test.sh"))
        .env("PATH", path)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("CARGO_TARGET_DIR", target)
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{name}/test.sh failed:\n{text}");
    assert!(text.contains(" 0 failed"), "{text}");
    assert!(project.join(format!("{name}.wasm")).is_file(), "{text}");
    let info = inspect(&project.join(format!("{name}.wasm")));
    assert_eq!(info["world"], world, "{info}");
    text
}

#[test]
fn plugin_new_rust_hook_builds_and_passes_its_test() {
    let text = scaffold_and_test("rust", "hook");
    assert!(text.contains("test.sh: 3 passed, 0 failed"), "{text}");
}

#[test]
fn plugin_new_python_hook_builds_and_passes_its_test() {
    let text = scaffold_and_test("python", "hook");
    assert!(text.contains("test.sh: 3 passed, 0 failed"), "{text}");
}

#[test]
fn plugin_new_js_hook_builds_and_passes_its_test() {
    let text = scaffold_and_test("js", "hook");
    assert!(text.contains("test.sh: 3 passed, 0 failed"), "{text}");
}

#[test]
fn plugin_new_c_check_builds_and_passes_its_test() {
    let text = scaffold_and_test("c", "check");
    assert!(text.contains("test.sh: 4 passed, 0 failed"), "{text}");
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_folder_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&[
        "plugin",
        "new",
        "Bad_Name",
        "--dir",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(e.contains("lowercase letters, digits and dashes"), "{e}");
    std::fs::write(dir.path().join("keep"), "x").unwrap();
    let e = fails(&["plugin", "new", "ok", "--dir", dir.path().to_str().unwrap()]);
    assert!(e.contains("already exists and is not empty"), "{e}");
}
