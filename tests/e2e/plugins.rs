//! The plugin chain on a simulated device, through the real binary: checks deciding a trial
//! boot, hooks aborting or postponing an update, an installer plugin taking a payload, and
//! hostile plugins that must fail their stage without taking the engine down.
//!
//! The plugins are the real components from plugins/, built once per test process
//! (`support::plugin_artifacts`). Every test has its own device, so its own compile cache.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_testkit::{FaultServer, Faults};

use crate::support::*;

/// The plugin part of the fault-injection suite (see `fault_case`); hostile_stages.rs puts
/// hostile hooks at every stage and reports on its own.
static PLUGINS: FaultGroup = FaultGroup {
    name: "failing and hostile plugins",
    holds: "airlock never down and the running release untouched in each",
};

/// A device with 2 MiB slots (slot a holds its factory image) and a signed 1 MiB update for it.
struct Setup {
    ws: Workspace,
    dev: Device,
    factory: Vec<u8>,
    bundle: std::path::PathBuf,
}

fn setup() -> Setup {
    // Build (or find) the plugins before anything else, so a missing target fails first.
    plugin_artifacts();
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    let factory = dev.slot("a");
    ws.file("v1.img", &image_bytes(1 << 20, 1));
    let bundle = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    Setup {
        ws,
        dev,
        factory,
        bundle,
    }
}

fn arg(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// `sim reboot` (the trial boot and, after a rollback, the boot back): exits 0, no panic.
fn reboot(dev: &Device) -> String {
    let out = run(&["sim", "reboot", arg(&dev.dir)]);
    let text = assert_contained(&out, "sim reboot");
    assert!(out.status.success(), "sim reboot failed:\n{text}");
    text
}

/// Installs, reboots into the trial and expects the check `name` to fail it: the device is
/// back on slot a, untouched, and the journal says why. Returns the recorded reason.
fn install_and_expect_rollback(s: &Setup, name: &str) -> String {
    s.dev.install(&s.bundle);
    let out = reboot(&s.dev);
    assert!(
        out.contains(&format!("rolled back: check {name} failed")),
        "{out}"
    );
    assert!(out.contains("booted slot a"), "{out}");
    let st = s.dev.assert_active_untouched("a", &s.factory);
    assert_eq!(st["last_result"]["result"], "rolled-back", "{st}");
    assert!(st["update"].is_null(), "{st}");
    assert!(st["committed"].is_null(), "{st}");
    let reason = st["last_result"]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with(&format!("check {name} failed: ")),
        "{reason}"
    );
    reason
}

/// Expects `install` of the setup's bundle to be refused by a hook at download-enter, leaving
/// the device untouched with the refusal recorded. Returns the error message.
fn install_and_expect_refusal(s: &Setup, hook: &str) -> String {
    let slot_b = s.dev.slot("b");
    let out = s.dev.output(&["install", arg(&s.bundle)]);
    let text = assert_contained(&out, "install");
    let stderr = expect_clean_failure(&out, "install");
    let prefix = format!("hook {hook} aborted the update at download-enter: ");
    assert!(stderr.contains(&prefix), "{text}");
    assert!(s.dev.slot("b") == slot_b, "slot b was written");
    let st = s.dev.assert_active_untouched("a", &s.factory);
    assert!(st["update"].is_null(), "{st}");
    assert_eq!(st["last_result"]["result"], "failed", "{st}");
    let reason = st["last_result"]["reason"].as_str().unwrap();
    assert!(reason.starts_with(&prefix), "{reason}");
    stderr
}

// ---- checks ----

/// http-health against a loopback server: `check` runs on the trial boot.
fn health_plugin(dev: &Device, server: &FaultServer, body: &str) {
    let url = server.url("/health");
    dev.add_plugin(
        "health",
        "http_health.wasm",
        &format!(
            "timeout = \"5s\"\nhttp = [\"{url}\"]\n\
             [plugins.health.config]\nurl = \"{url}\"\nbody = \"{body}\"\ntimeout = \"2s\"\n"
        ),
    );
    dev.set_chain("check = [\"health\"]");
}

#[test]
fn passing_check_commits() {
    let s = setup();
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/health", b"{\"status\":\"ok\"}".to_vec());
    health_plugin(&s.dev, &server, "\\\"ok\\\"");

    s.dev.install(&s.bundle);
    assert!(
        server.requests().is_empty(),
        "the check ran before the trial boot"
    );
    let out = reboot(&s.dev);
    assert!(out.contains("passed its checks; committed"), "{out}");
    let st = s.dev.status();
    assert_eq!(st["booted"], "b", "{st}");
    assert_eq!(st["primary"], "b", "{st}");
    assert_eq!(st["committed"]["version"], "1.0.0", "{st}");
    assert_eq!(st["last_result"]["result"], "committed", "{st}");
    let asked: Vec<_> = server
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(asked, [("GET".to_string(), "/health".to_string())]);
    assert_eq!(s.dev.slot("a"), s.factory);
}

#[test]
fn check_answered_500_rolls_back() {
    let s = setup();
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/health", b"ok".to_vec());
    server.set_faults(Faults::none().status(500));
    health_plugin(&s.dev, &server, "ok");
    let reason = install_and_expect_rollback(&s, "health");
    let url = server.url("/health");
    assert!(
        reason.contains(&format!("GET {url} answered status 500, expected 200")),
        "{reason}"
    );
    fault_case(&PLUGINS, "health check answered 500", "rolled back");
}

#[test]
fn check_with_wrong_body_rolls_back() {
    let s = setup();
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/health", b"starting".to_vec());
    health_plugin(&s.dev, &server, "ready");
    let reason = install_and_expect_rollback(&s, "health");
    assert!(
        reason.contains("answered status 200 but its body") && reason.contains("\"ready\""),
        "{reason}"
    );
    fault_case(&PLUGINS, "health check with the wrong body", "rolled back");
}

// ---- hooks ----

#[test]
fn aborting_download_enter_hook_leaves_the_device_untouched() {
    let s = setup();
    let df = ["/usr/bin/df", "/bin/df"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("this test needs df (coreutils or busybox) in /usr/bin or /bin");
    let path = toml_path(&s.dev.dir);
    s.dev.add_plugin(
        "disk-space",
        "disk_space.wasm",
        &format!(
            "commands = [[\"{df}\", \"-P\", \"-k\", {path}]]\n\
             [plugins.disk-space.config]\npath = {path}\nmin_free = \"1000000TiB\"\ndf = \"{df}\"\n"
        ),
    );
    s.dev.set_chain("download-enter = [\"disk-space\"]");
    let e = install_and_expect_refusal(&s, "disk-space");
    // The reason is the hook's own: it ran df through the run probe and measured.
    assert!(
        e.contains(&format!("{} has ", s.dev.dir.display())) && e.contains("needed (min_free)"),
        "{e}"
    );
    fault_case(
        &PLUGINS,
        "hook aborting at download-enter",
        "refused before writing",
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `HH:MM:SS` UTC of a Unix time.
fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// A daily maintenance window that opens `secs` seconds from now and stays open an hour.
fn window_opening_in(secs: u64) -> String {
    let start = unix_now() + secs;
    format!("{}-{}", clock(start), clock(start + 3600))
}

fn maintenance_window(dev: &Device, window: &str, chain_extra: &str) {
    dev.add_plugin(
        "maintenance-window",
        "maintenance_window.wasm",
        &format!("[plugins.maintenance-window.config]\nwindow = \"{window}\"\n"),
    );
    dev.set_chain(&format!(
        "download-enter = [\"maintenance-window\"]\n{chain_extra}"
    ));
}

/// Installs while the window is closed: refused with when to retry, the retry journaled,
/// nothing written. Returns the journaled `not_before`.
fn install_and_expect_retry(s: &Setup, attempts: u64) -> u64 {
    let slot_b = s.dev.slot("b");
    let e = s.dev.fails(&["install", arg(&s.bundle)]);
    assert!(
        e.contains(
            "hook maintenance-window asked to try again later (at download-enter); \
             run the install again after"
        ),
        "{e}"
    );
    // `status` tells the operator, and the journal holds it across runs.
    let status = s.dev.status();
    assert_eq!(status["retry"]["plugin"], "maintenance-window", "{status}");
    let (_, journal) = s.dev.journal();
    let retry = &journal["retry"];
    assert_eq!(retry["plugin"], "maintenance-window", "{journal}");
    assert_eq!(retry["stage"], "download-enter", "{journal}");
    assert_eq!(retry["attempts"], attempts, "{journal}");
    assert_eq!(retry["release"]["version"], "1.0.0", "{journal}");
    let not_before = retry["not_before"].as_u64().unwrap();
    assert!(not_before > unix_now(), "{journal}");
    assert!(s.dev.slot("b") == slot_b, "slot b was written");
    let st = s.dev.assert_active_untouched("a", &s.factory);
    assert!(st["update"].is_null(), "{st}");
    not_before
}

fn sleep_until(unix: u64) {
    while unix_now() < unix {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seconds until the window opens: long enough that a loaded machine still finds it closed
/// on the first install, short enough to wait for.
const OPENS_IN: u64 = 5;

#[test]
fn retry_later_is_journaled_honoured_and_then_installs() {
    let s = setup();
    maintenance_window(&s.dev, &window_opening_in(OPENS_IN), "");
    let not_before = install_and_expect_retry(&s, 1);
    assert!(not_before <= unix_now() + OPENS_IN + 1, "{not_before}");
    assert!(s.dev.status()["last_result"].is_null());

    // Again before the time: refused from the journal alone. No hook runs (it would record a
    // second attempt), nothing is stored.
    let (generation, _) = s.dev.journal();
    let e = s.dev.fails(&["install", arg(&s.bundle)]);
    assert!(
        e.contains("hook maintenance-window asked to try again later"),
        "{e}"
    );
    let (after, journal) = s.dev.journal();
    assert_eq!(after, generation, "the refused retry changed the journal");
    assert_eq!(journal["retry"]["attempts"], 1);

    // The window is open now: the same install goes through and clears the retry.
    sleep_until(not_before);
    let out = s.dev.install(&s.bundle);
    assert!(out.contains("into slot b"), "{out}");
    assert!(s.dev.journal().1["retry"].is_null());
    let out = reboot(&s.dev);
    assert!(out.contains("committed"), "{out}");
    assert_eq!(s.dev.status()["committed"]["version"], "1.0.0");
    fault_case(
        &PLUGINS,
        "hook answering retry-later",
        "postponed, then installed",
    );
}

#[test]
fn retry_limit_turns_repeated_retry_later_into_a_failure() {
    let s = setup();
    let soon = window_opening_in(OPENS_IN);
    maintenance_window(&s.dev, &soon, "retry-limit = 1");
    let not_before = install_and_expect_retry(&s, 1);

    // The operator moves the window before it opens: the hook asks again, one time too many.
    sleep_until(not_before);
    s.dev.edit_config(&soon, &window_opening_in(3 * 3600));
    let e = install_and_expect_refusal(&s, "maintenance-window");
    assert!(
        e.contains("asked to retry later 2 times; the chain's retry-limit is 1"),
        "{e}"
    );
    assert!(
        s.dev.journal().1["retry"].is_null(),
        "the failure must clear the retry"
    );
    fault_case(
        &PLUGINS,
        "retry-later beyond the retry-limit",
        "refused before writing",
    );
}

// ---- an installer plugin ----

/// A bundle with a rootfs image and an `app` archive for the archive-installer plugin.
fn bundle_with_app(ws: &Workspace, version: &str, seed: u64, files: &[(&str, &str)]) -> String {
    ws.file(&format!("v{seed}.img"), &image_bytes(1 << 20, seed));
    ws.file(&format!("app{seed}.tar"), &tar_archive(files));
    let spec = BundleToml::new("test-os", version, &["test-device"])
        .payload("rootfs", format!("v{seed}.img"), "rootfs")
        .installer_payload("app", format!("app{seed}.tar"), "archive-installer");
    ws.bundle_from_spec(&format!("v{seed}.airlock"), &spec.text())
        .to_str()
        .unwrap()
        .to_string()
}

fn read(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn installer_plugin_installs_commits_and_rolls_back_its_payload() {
    let s = setup();
    let (ws, dev) = (&s.ws, &s.dev);
    let app = ws.path("app-data");
    std::fs::create_dir(&app).unwrap();
    dev.add_plugin(
        "archive-installer",
        "archive_installer.wasm",
        &format!(
            "[[plugins.archive-installer.dirs]]\nhost = {}\nguest = \"/target\"\nwritable = true\n",
            toml_path(&app)
        ),
    );
    dev.set_chain("installers = [\"archive-installer\"]");

    // v1: staged at install, made current by the commit on the trial boot.
    let v1 = bundle_with_app(
        ws,
        "1.0.0",
        1,
        &[("bin/app", "app v1"), ("etc/app.conf", "mode = 1")],
    );
    let out = dev.ok(&["install", &v1]);
    assert!(out.contains("into slot b"), "{out}");
    assert_eq!(read(app.join(".staging/bin/app")), "app v1");
    assert!(!app.join("current").exists(), "committed before the trial");
    let journal = dev.journal().1;
    assert_eq!(
        journal["update"]["installers"],
        serde_json::json!([["app", "archive-installer"]]),
        "{journal}"
    );
    let out = reboot(dev);
    assert!(out.contains("committed"), "{out}");
    assert_eq!(read(app.join("current/bin/app")), "app v1");
    assert_eq!(read(app.join("current/etc/app.conf")), "mode = 1");
    assert_eq!(
        read(app.join("current/.airlock-release")),
        "test-os 1.0.0\n"
    );
    assert!(!app.join(".staging").exists());
    assert_eq!(dev.status()["committed"]["version"], "1.0.0");

    // v2 does not boot: the installer is told to roll back, v1 stays current.
    let v2 = bundle_with_app(ws, "2.0.0", 2, &[("bin/app", "app v2")]);
    dev.ok(&["install", &v2]);
    assert_eq!(read(app.join(".staging/bin/app")), "app v2");
    let out = run(&["sim", "reboot", arg(&dev.dir), "--fail"]);
    let text = assert_contained(&out, "sim reboot --fail");
    assert!(text.contains("rolled back"), "{text}");
    assert!(
        !app.join(".staging").exists() && !app.join(".staging.partial").exists(),
        "the installer was not told to roll back: {:?}",
        std::fs::read_dir(&app).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(read(app.join("current/bin/app")), "app v1");
    assert_eq!(
        read(app.join("current/.airlock-release")),
        "test-os 1.0.0\n"
    );
    let st = dev.status();
    assert_eq!(st["last_result"]["result"], "rolled-back", "{st}");
    assert_eq!(st["committed"]["version"], "1.0.0", "{st}");
    assert_eq!(st["booted"], "b", "{st}");
    fault_case(
        &PLUGINS,
        "installer plugin on a failed trial boot",
        "rolled back",
    );
}

// ---- hostile plugins ----

/// Configures a hostile check and expects the trial to roll back with a reason that names it
/// and contains every one of `expect`.
fn hostile_check(name: &str, wasm: &str, extra: &str, expect: &[&str]) -> String {
    let s = setup();
    s.dev.add_plugin(name, wasm, extra);
    s.dev.set_chain(&format!("check = [\"{name}\"]"));
    let reason = install_and_expect_rollback(&s, name);
    for e in expect {
        assert!(reason.contains(e), "{name}: {e:?} not in {reason:?}");
    }
    fault_case(&PLUGINS, &format!("hostile check {name}"), "rolled back");
    reason
}

#[test]
fn hostile_trap_rolls_back() {
    hostile_check(
        "trap",
        "hostile_trap.wasm",
        "",
        &["plugin trap trapped", "hostile-trap panics on purpose"],
    );
}

#[test]
fn hostile_oom_rolls_back() {
    hostile_check(
        "oom",
        "hostile_oom.wasm",
        "memory = \"16MiB\"",
        &["plugin oom exceeded its memory cap of 16 MiB"],
    );
}

#[test]
fn hostile_stack_overflow_rolls_back() {
    let reason = hostile_check(
        "stack-overflow",
        "hostile_stack_overflow.wasm",
        "",
        &["plugin stack-overflow "],
    );
    // Wasmtime's own stack limit or the overflow of Rust's shadow stack in linear memory.
    assert!(reason.contains("stack"), "{reason}");
}

#[test]
fn hostile_flood_output_rolls_back() {
    hostile_check(
        "flood-output",
        "hostile_flood_output.wasm",
        "",
        &["plugin flood-output flooded its"],
    );
}

#[test]
fn hostile_forbidden_url_is_refused() {
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/allowed", b"fine".to_vec());
    server.serve_bytes("/secret", b"secret".to_vec());
    let allowed = server.url("/allowed");
    let secret = server.url("/secret");
    let reason = hostile_check(
        "forbidden-url",
        "hostile_forbidden_url.wasm",
        &format!("http = [\"{allowed}\"]\n[plugins.forbidden-url.config]\nurl = \"{secret}\"\n"),
        &[
            "refused: ",
            &format!("{secret} is not in [plugins.forbidden-url] http (allowed: {allowed})"),
        ],
    );
    assert!(!reason.contains("breach"), "{reason}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn hostile_forbidden_dir_is_refused() {
    let reason = hostile_check(
        "forbidden-dir",
        "hostile_forbidden_dir.wasm",
        "",
        &["refused: ", "/etc/passwd"],
    );
    assert!(!reason.contains("breach"), "{reason}");
}

#[test]
fn hostile_loop_forever_hook_times_out_and_refuses_the_update() {
    let s = setup();
    s.dev.add_plugin(
        "loop-forever",
        "hostile_loop_forever.wasm",
        "timeout = \"1s\"",
    );
    s.dev.set_chain("download-enter = [\"loop-forever\"]");
    let e = install_and_expect_refusal(&s, "loop-forever");
    assert!(e.contains("plugin loop-forever timed out after 1s"), "{e}");
    fault_case(
        &PLUGINS,
        "hook looping forever (1 s timeout)",
        "refused before writing",
    );
}

// ---- misconfiguration ----

/// Expects `install` to be refused before anything happens, because a plugin of the chain
/// cannot be used: nothing written, nothing journaled as an update. Returns the error.
fn install_and_expect_config_error(s: &Setup) -> String {
    let slot_b = s.dev.slot("b");
    let out = s.dev.output(&["install", arg(&s.bundle)]);
    assert_contained(&out, "install");
    let e = expect_clean_failure(&out, "install");
    assert!(s.dev.slot("b") == slot_b, "slot b was written");
    let st = s.dev.assert_active_untouched("a", &s.factory);
    assert!(st["update"].is_null(), "{st}");
    assert!(st["last_result"].is_null(), "{st}");
    e
}

#[test]
fn check_plugin_configured_as_hook_is_a_clear_error() {
    let s = setup();
    s.dev.add_plugin(
        "health",
        "http_health.wasm",
        "[plugins.health.config]\nurl = \"http://127.0.0.1:9/\"\n",
    );
    s.dev.set_chain("download-enter = [\"health\"]");
    let e = install_and_expect_config_error(&s);
    assert!(
        e.contains("plugin health implements the check world but is configured as a hook"),
        "{e}"
    );
    fault_case(
        &PLUGINS,
        "check plugin configured as a hook",
        "refused before writing",
    );
}

#[test]
fn missing_plugin_file_is_a_clear_error() {
    let s = setup();
    let missing = s.ws.path("no-such-plugin.wasm");
    s.dev.append_config(&format!(
        "[plugins.health]\npath = {}\n[chain]\ncheck = [\"health\"]\n",
        toml_path(&missing)
    ));
    // A check runs only on the trial boot, but its plugin must load before the install
    // writes anything: otherwise the update could only roll back, a reboot later.
    let e = install_and_expect_config_error(&s);
    assert!(
        e.contains(&format!(
            "cannot read plugin health from {}: ",
            missing.display()
        )) && e.contains("check [plugins.health] path"),
        "{e}"
    );
    fault_case(&PLUGINS, "missing plugin file", "refused before writing");
}
