//! Precompiled plugins on a simulated device, through the binary under test. `cargo test` runs
//! these against the full build, which loads a precompiled form the same way when there is one;
//! `scripts/test-device` runs them against the device build (`AIRLOCK_TEST_BIN`), which has no
//! Wasm compiler and needs one. The artifacts are made the way an image build makes them: by
//! the full build's `airlock plugin compile --target`, with the digest list beside the config.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlock_testkit::FaultServer;

use crate::support::*;

/// True when the binary under test is the device build (it says so in `--version`).
fn device_build() -> bool {
    let out = airlock().arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("device build")
}

/// The full build: the build host's `airlock`, which precompiles.
fn full_build(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "airlock {args:?}:\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Puts first-party plugin `wasm` on the device's "image" as `NAME.wasm` with its precompiled
/// form for `target` beside it; returns (the .wasm path, the artifact path).
fn precompile(dev: &Device, name: &str, wasm: &str, target: &str) -> (PathBuf, PathBuf) {
    let dir = dev.dir.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::copy(plugin_artifacts().join(wasm), &path).unwrap();
    let artifact = dir.join(format!("{name}.{}.cwasm", native_target()));
    compile_with_full_build(&path, target, &artifact);
    (path, artifact)
}

/// `airlock plugin compile WASM --target TARGET -o ARTIFACT`, by the full build.
fn compile_with_full_build(wasm: &Path, target: &str, artifact: &Path) {
    full_build(&[
        "plugin",
        "compile",
        wasm.to_str().unwrap(),
        "--target",
        target,
        "-o",
        artifact.to_str().unwrap(),
    ]);
}

/// Writes the device's digest list (beside its airlock.toml) vouching for `artifacts`.
fn vouch(dev: &Device, artifacts: &[&Path]) -> PathBuf {
    let mut list = String::new();
    for a in artifacts {
        let out = Command::new("sha256sum").arg(a).output().unwrap();
        list += &String::from_utf8_lossy(&out.stdout);
    }
    let path = dev.dir.join("precompiled.sha256");
    std::fs::write(&path, list).unwrap();
    path
}

/// A device whose check `health` (http-health, precompiled) asks `server` for /health.
fn device_with_precompiled_check(ws: &Workspace, server: &FaultServer) -> (Device, PathBuf) {
    let dev = ws.device("dev", "2MiB");
    let _ = std::fs::remove_file(dev.dir.join("precompiled.sha256"));
    let (wasm, artifact) = precompile(&dev, "health", "http_health.wasm", native_target());
    let url = server.url("/health");
    dev.append_config(&format!(
        "[plugins.health]\npath = {}\ntimeout = \"5s\"\nhttp = [\"{url}\"]\n\
         [plugins.health.config]\nurl = \"{url}\"\nbody = \"\\\"ok\\\"\"\ntimeout = \"2s\"\n",
        toml_path(&wasm)
    ));
    dev.set_chain("check = [\"health\"]");
    (dev, artifact)
}

fn update(ws: &Workspace, version: &str, seed: u64) -> PathBuf {
    let image = format!("v{version}.img");
    ws.file(&image, &image_bytes(1 << 20, seed));
    ws.bundle(
        &format!("v{version}.airlock"),
        version,
        "test-device",
        &[("rootfs", &image, "rootfs")],
        "",
    )
}

#[test]
fn the_device_build_says_so_and_cannot_compile() {
    if !device_build() {
        // The full build compiles; what it does with precompiled forms is tested below.
        let out = run(&["--version"]);
        assert!(!output_text(&out).contains("device build"));
        return;
    }
    let ws = Workspace::new();
    let wasm = ws.path("p.wasm");
    std::fs::copy(plugin_artifacts().join("always_pass.wasm"), &wasm).unwrap();
    let e = fails(&[
        "plugin",
        "compile",
        wasm.to_str().unwrap(),
        "--target",
        native_target(),
    ]);
    assert!(
        e.contains("device build") && e.contains("without a Wasm compiler"),
        "{e}"
    );
}

#[test]
fn a_precompiled_check_decides_the_trial_boot_and_a_failing_one_rolls_back() {
    plugin_artifacts();
    let ws = Workspace::new();
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/health", b"{\"status\":\"ok\"}".to_vec());
    let (dev, artifact) = device_with_precompiled_check(&ws, &server);
    vouch(&dev, &[&artifact]);
    // The device needs only the precompiled form: the .wasm names it.
    std::fs::remove_file(dev.dir.join("plugins/health.wasm")).unwrap();

    dev.install(&update(&ws, "1.0.0", 1));
    let out = dev.reboot(false);
    assert!(out.contains("passed its checks; committed"), "{out}");
    assert_eq!(dev.status()["committed"]["version"], "1.0.0");

    server.serve_bytes("/health", b"{\"status\":\"degraded\"}".to_vec());
    let running = dev.slot("b");
    dev.install(&update(&ws, "2.0.0", 2));
    let out = dev.reboot(false);
    assert!(out.contains("rolled back: check health failed"), "{out}");
    let st = dev.assert_active_untouched("b", &running);
    assert_eq!(st["committed"]["version"], "1.0.0", "{st}");
    assert_eq!(st["last_result"]["result"], "rolled-back", "{st}");
}

/// Installs an update on `dev` and expects it refused before anything is written, with
/// `expected` in the error. Returns the error.
fn expect_refused(ws: &Workspace, dev: &Device, expected: &str) -> String {
    let factory = dev.slot("a");
    let slot_b = dev.slot("b");
    let out = dev.output(&["install", update(ws, "1.0.0", 1).to_str().unwrap()]);
    let stderr = expect_clean_failure(&out, "install");
    assert!(
        stderr.contains(expected),
        "expected {expected:?}:\n{stderr}"
    );
    assert!(dev.slot("b") == slot_b, "slot b was written");
    dev.assert_active_untouched("a", &factory);
    stderr
}

#[test]
fn precompiled_forms_nothing_vouches_for_are_refused_before_anything_is_written() {
    plugin_artifacts();
    let ws = Workspace::new();
    let server = FaultServer::start().unwrap();
    let (dev, artifact) = device_with_precompiled_check(&ws, &server);

    // No digest list at all.
    let e = expect_refused(&ws, &dev, "there is no digest list");
    assert!(e.contains("refusing the precompiled"), "{e}");

    // A list that does not name it.
    let list = dev.dir.join("precompiled.sha256");
    std::fs::write(&list, format!("{}  other.cwasm\n", "0".repeat(64))).unwrap();
    expect_refused(&ws, &dev, "is not in");

    // Listed, then altered.
    vouch(&dev, &[&artifact]);
    flip_middle_byte(&artifact);
    expect_refused(&ws, &dev, "changed after its digest was listed");

    // A list others can write vouches for nothing.
    precompile(&dev, "health", "http_health.wasm", native_target());
    vouch(&dev, &[&artifact]);
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o666)).unwrap();
    expect_refused(&ws, &dev, "writable by other users");
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Listed and intact: accepted.
    dev.install(&update(&ws, "1.0.0", 1));
}

#[test]
fn a_precompiled_form_for_another_cpu_is_refused_by_name() {
    plugin_artifacts();
    let ws = Workspace::new();
    let server = FaultServer::start().unwrap();
    let (dev, _) = device_with_precompiled_check(&ws, &server);
    let other = other_cpu();
    // Made for the other CPU, but put where this device looks, and vouched for.
    let (_, artifact) = precompile(&dev, "health", "http_health.wasm", other);
    vouch(&dev, &[&artifact]);
    let arch = other.split('-').next().unwrap();
    let e = expect_refused(&ws, &dev, &format!("compiled for architecture '{arch}'"));
    assert!(e.contains("does not fit this engine"), "{e}");
    assert!(e.contains("airlock plugin compile --target"), "{e}");
}

#[test]
fn a_plugin_without_a_precompiled_form_says_how_to_make_one() {
    plugin_artifacts();
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    // Configured by hand: `add_plugin` would give the device build a precompiled form.
    let wasm = plugin_artifacts().join("always_pass.wasm");
    dev.append_config(&format!("[plugins.pass]\npath = {}\n", toml_path(&wasm)));
    dev.set_chain("check = [\"pass\"]");
    if device_build() {
        let e = expect_refused(&ws, &dev, "has no precompiled form for this device");
        assert!(
            e.contains(&format!(
                "airlock plugin compile {}",
                plugin_artifacts().join("always_pass.wasm").display()
            )),
            "{e}"
        );
        assert!(e.contains("precompiled.sha256"), "{e}");
    } else {
        // The full build compiles it itself.
        dev.install(&update(&ws, "1.0.0", 1));
    }
}

// ---- plugins a bundle brings, with their precompiled forms ----

/// A device whose own check `health` always passes (precompiled on its image), which lets a
/// bundle bring its own `health` (`[chain] bundled-plugins = true`) and grants it `server`'s
/// /health.
fn device_taking_bundled_checks(ws: &Workspace, server: &FaultServer) -> Device {
    let dev = ws.device("dev", "2MiB");
    let url = server.url("/health");
    dev.add_plugin(
        "health",
        "always_pass.wasm",
        &format!(
            "timeout = \"5s\"\nhttp = [\"{url}\"]\n[plugins.health.config]\nurl = \"{url}\"\n\
             body = \"\\\"ok\\\"\"\ntimeout = \"2s\"\n"
        ),
    );
    dev.set_chain("check = [\"health\"]\nbundled-plugins = true");
    dev
}

/// A workspace, a health endpoint that answers ok, and a device taking bundled checks from it.
fn bundled_checks_setup() -> (Workspace, FaultServer, Device) {
    plugin_artifacts();
    let ws = Workspace::new();
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/health", b"{\"status\":\"ok\"}".to_vec());
    let dev = device_taking_bundled_checks(&ws, &server);
    (ws, server, dev)
}

/// Changes one byte in the middle of `path`, as damage or tampering would.
fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();
}

/// A CPU target other than this machine's.
fn other_cpu() -> &'static str {
    if native_target().starts_with("x86_64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

/// Builds, with the full build (which compiles), a bundle that brings the http-health check
/// as `health`, precompiled for `targets`.
fn bundle_with_check(ws: &Workspace, version: &str, seed: u64, targets: &[&str]) -> PathBuf {
    ws.file(&format!("v{version}.img"), &image_bytes(1 << 20, seed));
    std::fs::copy(
        plugin_artifacts().join("http_health.wasm"),
        ws.path("http_health.wasm"),
    )
    .unwrap();
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let spec = ws.file(
        &format!("v{version}.toml"),
        format!(
            "name = \"test-os\"\nversion = \"{version}\"\ncompatible = [\"test-device\"]\n\
             [[payload]]\nname = \"rootfs\"\nfile = \"v{version}.img\"\nslot = \"rootfs\"\n\
             [[plugin]]\nname = \"health\"\nfile = \"http_health.wasm\"\nworld = \"check\"\n\
             precompile = [{}]\n",
            targets.join(", ")
        )
        .as_bytes(),
    );
    let out = ws.path(&format!("v{version}.airlock"));
    let made = bundle_create(Path::new(env!("CARGO_BIN_EXE_airlock")), ws, &spec, &out);
    let text = output_text(&made);
    assert!(made.status.success(), "bundle create (full build):\n{text}");
    for t in &targets {
        let t = t.trim_matches('"');
        let shown = if t.starts_with("armv7") {
            "pulley32"
        } else {
            t
        };
        assert!(
            text.contains(&format!("precompiled health for {shown}")),
            "{text}"
        );
    }
    out
}

/// Runs `BIN bundle create SPEC --key KEY -o OUT` with the workspace's key.
fn bundle_create(bin: &Path, ws: &Workspace, spec: &Path, out: &Path) -> Output {
    Command::new(bin)
        .args(["bundle", "create"])
        .arg(spec)
        .arg("--key")
        .arg(ws.key())
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

/// The precompiled form of `health` the device saved from the bundle it is installing.
fn saved_form(dev: &Device) -> PathBuf {
    let root = dev.dir.join("data/bundled-plugins");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one bundle's plugins are kept: {dirs:?}");
    dirs[0].join(format!("health.{}.cwasm", native_target()))
}

#[test]
fn a_bundle_brings_a_precompiled_check_that_decides_commit_and_rollback() {
    let (ws, server, dev) = bundled_checks_setup();
    // Every CPU the device build runs on: this device's is always among them.
    let targets = [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
    ];

    // v1 carries forms for three CPUs; the device keeps its own, vouched for by the manifest.
    let v1 = bundle_with_check(&ws, "1.0.0", 1, &targets);
    let shown = ok(&["bundle", "inspect", v1.to_str().unwrap()]);
    for t in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "pulley32",
    ] {
        assert!(shown.contains(&format!("precompiled for {t}")), "{shown}");
    }
    dev.install(&v1);
    let form = saved_form(&dev);
    assert!(form.exists(), "{} was not saved", form.display());
    let journal = dev.journal().1;
    assert_eq!(
        journal["update"]["bundled"][0]["name"], "health",
        "{journal}"
    );
    server.clear_requests();
    let out = dev.reboot(false);
    assert!(out.contains("passed its checks; committed"), "{out}");
    // The device's own `health` never asks the server: the bundle's check decided.
    assert!(
        server.requests().iter().any(|r| r.path == "/health"),
        "the bundled check did not run"
    );
    assert_eq!(dev.status()["committed"]["version"], "1.0.0");

    // v2's check finds the service degraded on the trial boot: rolled back.
    server.serve_bytes("/health", b"{\"status\":\"degraded\"}".to_vec());
    let running = dev.slot("b");
    dev.install(&bundle_with_check(&ws, "2.0.0", 2, &[native_target()]));
    let out = dev.reboot(false);
    assert!(out.contains("rolled back: check health failed"), "{out}");
    let st = dev.assert_active_untouched("b", &running);
    assert_eq!(st["committed"]["version"], "1.0.0", "{st}");
    assert_eq!(st["last_result"]["result"], "rolled-back", "{st}");
}

#[test]
fn a_bundled_precompiled_form_altered_on_the_device_is_refused() {
    let (ws, _server, dev) = bundled_checks_setup();
    let running = dev.slot("a");
    dev.install(&bundle_with_check(&ws, "1.0.0", 1, &[native_target()]));
    // Between install and the trial boot, someone changes the saved native code.
    let form = saved_form(&dev);
    flip_middle_byte(&form);
    let out = dev.reboot(false);
    assert!(out.contains("rolled back: check health failed"), "{out}");
    assert!(
        out.contains("changed after the signed bundle manifest listed it"),
        "{out}"
    );
    let st = dev.assert_active_untouched("a", &running);
    assert_eq!(st["last_result"]["result"], "rolled-back", "{st}");
}

#[test]
fn a_bundle_without_a_form_for_this_cpu_is_refused_by_the_device_build() {
    let (ws, server, dev) = bundled_checks_setup();
    let other = other_cpu();
    let bundle = bundle_with_check(&ws, "1.0.0", 1, &[other]);
    if !device_build() {
        // The full build compiles the component the bundle brings, and never takes a form of
        // the device's own that has the same name: a decoy `health` that always passes, in
        // the device's precompiled folder, vouched for.
        let folder = dev.dir.join("precompiled");
        std::fs::create_dir_all(&folder).unwrap();
        let decoy = folder.join(format!("health.{}.cwasm", native_target()));
        let pass = plugin_artifacts().join("always_pass.wasm");
        compile_with_full_build(&pass, native_target(), &decoy);
        vouch(&dev, &[&decoy]);
        dev.edit_config(
            "data_dir = ",
            "precompiled_dir = \"precompiled\"\ndata_dir = ",
        );
        server.serve_bytes("/health", b"{\"status\":\"degraded\"}".to_vec());
        dev.install(&bundle);
        let out = dev.reboot(false);
        assert!(out.contains("rolled back: check health failed"), "{out}");
        return;
    }
    let factory = dev.slot("a");
    let slot_b = dev.slot("b");
    let out = dev.output(&["install", bundle.to_str().unwrap()]);
    let e = expect_clean_failure(&out, "install");
    assert!(
        e.contains(&format!(
            "without a precompiled form for {}",
            native_target()
        )) && e.contains(&format!("add \"{}\" to `precompile`", native_target())),
        "{e}"
    );
    assert!(dev.slot("b") == slot_b, "slot b was written");
    dev.assert_active_untouched("a", &factory);

    // And the device build cannot make the forms itself.
    let spec = ws.path("v1.0.0.toml");
    let out = bundle_create(&airlock_bin(), &ws, &spec, &ws.path("x.airlock"));
    let e = expect_clean_failure(&out, "bundle create");
    assert!(
        e.contains("precompiling for") && e.contains("device build"),
        "{e}"
    );
}

#[test]
fn precompiled_forms_may_live_in_the_folder_the_config_names() {
    plugin_artifacts();
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    let image = dev.dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    let wasm = image.join("pass.wasm");
    std::fs::copy(plugin_artifacts().join("always_pass.wasm"), &wasm).unwrap();
    dev.edit_config(
        "data_dir = ",
        "precompiled_dir = \"precompiled\"\ndata_dir = ",
    );
    dev.append_config(&format!("[plugins.pass]\npath = {}\n", toml_path(&wasm)));
    dev.set_chain("check = [\"pass\"]");
    let folder = dev.dir.join("precompiled");
    std::fs::create_dir_all(&folder).unwrap();
    let artifact = folder.join(format!("pass.{}.cwasm", native_target()));

    if device_build() {
        // Nothing in the folder: the error says where the form belongs.
        let e = expect_refused(&ws, &dev, "has no precompiled form for this device");
        assert!(e.contains(&artifact.display().to_string()), "{e}");
    }
    compile_with_full_build(&wasm, native_target(), &artifact);
    vouch(&dev, &[&artifact]);
    // The image keeps only the precompiled form, in its own folder.
    std::fs::remove_file(&wasm).unwrap();
    dev.install(&update(&ws, "1.0.0", 1));
    let out = dev.reboot(false);
    assert!(out.contains("passed its checks; committed"), "{out}");

    // `plugin run` rehearses the same layout.
    let list = dev.dir.join("precompiled.sha256");
    let report = ok(&[
        "plugin",
        "run",
        wasm.to_str().unwrap(),
        "--json",
        "--digest-list",
        list.to_str().unwrap(),
        "--precompiled-dir",
        folder.to_str().unwrap(),
    ]);
    assert!(report.contains("\"approved\": true"), "{report}");
}
