//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `airlock` binary under test: the one cargo built for these tests, or the one
/// `AIRLOCK_TEST_BIN` names (the device build: `scripts/test-device`).
pub fn airlock_bin() -> PathBuf {
    match std::env::var_os("AIRLOCK_TEST_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => PathBuf::from(env!("CARGO_BIN_EXE_airlock")),
    }
}

/// The `airlock` binary under test ([`airlock_bin`]), with a clean environment.
pub fn airlock() -> Command {
    let mut cmd = Command::new(airlock_bin());
    for var in [
        "AIRLOCK_CONFIG",
        "AIRLOCK_KILL_AT",
        "AIRLOCK_FAULT_LOG",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn run(args: &[&str]) -> Output {
    airlock()
        .args(args)
        .output()
        .expect("the airlock binary runs")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs airlock and expects success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "airlock {args:?} failed:\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs airlock and expects a clean failure (exit 1, no panic); returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "airlock {args:?} should fail cleanly:\n{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "airlock {args:?} panicked:\n{stderr}"
    );
    assert!(stderr.contains("error: "), "no error message:\n{stderr}");
    stderr
}

pub use airlock_testkit::{BundleToml, image_bytes, random_bytes, tar_archive, toml_path};

/// A folder holding keys, images, bundles and simulated devices for one test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let ws = Self {
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        ok(&[
            "key",
            "generate",
            "--out",
            ws.path("release").to_str().unwrap(),
        ]);
        ws
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn key(&self) -> PathBuf {
        self.path("release.key")
    }

    pub fn public_key(&self) -> PathBuf {
        self.path("release.pub")
    }

    /// Writes `data` to a file in the workspace.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Builds a bundle. `payloads`: (payload name, file in the workspace, slot class).
    /// `extra` is appended to the top of bundle.toml (e.g. `expires = "…"`).
    pub fn bundle(
        &self,
        out: &str,
        version: &str,
        device_type: &str,
        payloads: &[(&str, &str, &str)],
        extra: &str,
    ) -> PathBuf {
        let toml = payloads.iter().fold(
            BundleToml::new("test-os", version, &[device_type]).with(extra),
            |toml, (name, file, slot)| toml.payload(name, file, slot),
        );
        self.bundle_from_spec(out, &toml.text())
    }

    /// A simulated device of type `test-device` with rootfs slots of `slot_size` bytes, whose
    /// slot a holds recognisable factory content.
    pub fn device(&self, name: &str, slot_size: &str) -> Device {
        let dir = self.path(name);
        ok(&[
            "sim",
            "init",
            dir.to_str().unwrap(),
            "--key",
            self.public_key().to_str().unwrap(),
            "--device-type",
            "test-device",
            "--slot-size",
            slot_size,
        ]);
        let dev = Device { dir };
        let len = std::fs::metadata(dev.slot_path("a")).unwrap().len() as usize;
        std::fs::write(dev.slot_path("a"), image_bytes(len, 999)).unwrap();
        dev
    }
}

/// A simulated device.
pub struct Device {
    pub dir: PathBuf,
}

impl Device {
    pub fn config(&self) -> String {
        self.dir.join("airlock.toml").display().to_string()
    }

    pub fn slot_path(&self, side: &str) -> PathBuf {
        self.dir.join(format!("slots/rootfs.{side}"))
    }

    pub fn slot(&self, side: &str) -> Vec<u8> {
        std::fs::read(self.slot_path(side)).unwrap()
    }

    /// Runs `airlock --config DEVICE args…`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = airlock();
        cmd.arg("--config").arg(self.config()).args(args);
        cmd
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let config = self.config();
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        ok(&all)
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let config = self.config();
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        fails(&all)
    }

    pub fn install(&self, source: &Path) -> String {
        self.ok(&["install", source.to_str().unwrap()])
    }

    pub fn reboot(&self, fail: bool) -> String {
        let dir = self.dir.to_str().unwrap();
        if fail {
            ok(&["sim", "reboot", dir, "--fail"])
        } else {
            ok(&["sim", "reboot", dir])
        }
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json is JSON")
    }
}

/// The file at `path` starts with `expected` (a slot is larger than what was written to it).
pub fn assert_prefix(path: &Path, expected: &[u8]) {
    let actual = std::fs::read(path).unwrap();
    assert!(
        actual.len() >= expected.len(),
        "{} is shorter than expected",
        path.display()
    );
    assert!(
        actual[..expected.len()] == *expected,
        "{} does not hold the expected bytes",
        path.display()
    );
}

// ---- Helpers for the bad-input and HTTP tests (bad_input.rs, http.rs) ----

/// Status, stdout and stderr of a finished command, for assertion messages.
pub fn output_text(out: &Output) -> String {
    show(out)
}

/// A clean failure: exit code 1, an `error: ` line and no panic. Returns stderr.
pub fn expect_clean_failure(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail cleanly:\n{}",
        show(out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{what} panicked:\n{stderr}");
    assert!(
        stderr.contains("error: "),
        "{what}: no error message:\n{stderr}"
    );
    stderr
}

impl Device {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("airlock.toml")
    }

    /// Replaces the first `from` in airlock.toml by `to`; `from` must be there.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        assert!(text.contains(from), "airlock.toml has no {from:?}:\n{text}");
        std::fs::write(self.config_path(), text.replacen(from, to, 1)).unwrap();
    }

    /// Appends `text` to airlock.toml.
    pub fn append_config(&self, text: &str) {
        let mut config = std::fs::read_to_string(self.config_path()).unwrap();
        config.push('\n');
        config.push_str(text);
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Fast HTTP downloads for tests: short read timeout and backoff, `retries` in a row.
    pub fn fast_downloads(&self, read_timeout: &str, retries: u32) {
        self.append_config(&format!(
            "[download]\nconnect_timeout = \"2s\"\nread_timeout = \"{read_timeout}\"\nbackoff = \"10ms\"\nretries = {retries}\n"
        ));
    }

    /// Runs `install --json SOURCE`, expects success and returns the report.
    pub fn install_json(&self, source: &str) -> Value {
        serde_json::from_str(&self.ok(&["install", "--json", source]))
            .expect("install --json is JSON")
    }

    /// Runs `airlock --config DEVICE args…` and returns what happened, success or not.
    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("the airlock binary runs")
    }

    /// The device still runs `side`, which holds `content` byte for byte, and no trial is
    /// armed. Returns `status --json`.
    pub fn assert_active_untouched(&self, side: &str, content: &[u8]) -> Value {
        assert!(
            self.slot(side) == content,
            "the active slot {side} was modified"
        );
        let st = self.status();
        assert_eq!(st["booted"], side, "{st}");
        assert_eq!(st["primary"], side, "{st}");
        assert!(
            st["pending_trial"].is_null(),
            "a trial is armed after a failure: {st}"
        );
        st
    }
}

/// `payload bytes X..Y` from a bad-chunk error: where the refused chunk starts.
pub fn bad_chunk_start(e: &str) -> usize {
    let rest = &e[e
        .find("payload bytes ")
        .expect("the error names the chunk's bytes")
        + "payload bytes ".len()..];
    rest[..rest.find("..").unwrap()].parse().unwrap()
}

/// Nothing at or after `from` in `slot` differs from `before`, and what comes before either is
/// the image or was there before: no unverified byte reached the slot.
pub fn assert_nothing_unverified(slot: &[u8], before: &[u8], image: &[u8], from: usize) {
    assert!(
        slot[from..] == before[from..],
        "bytes from the refused chunk on (byte {from}) reached the slot"
    );
    let bad = (0..from).find(|&i| slot[i] != image[i] && slot[i] != before[i]);
    assert!(
        bad.is_none(),
        "slot byte {bad:?} is neither the image nor what was there"
    );
}

// ---- Helpers for the plugin tests (plugins.rs) ----

/// The components of the plugins/ workspace that the plugin tests use.
pub const PLUGIN_ARTIFACTS: [&str; 12] = [
    "archive_installer.wasm",
    "disk_space.wasm",
    "http_health.wasm",
    "maintenance_window.wasm",
    "systemd_unit.wasm",
    "hostile_flood_output.wasm",
    "hostile_forbidden_dir.wasm",
    "hostile_forbidden_url.wasm",
    "hostile_loop_forever.wasm",
    "hostile_oom.wasm",
    "hostile_stack_overflow.wasm",
    "hostile_trap.wasm",
];

/// The folder holding the built plugins (`plugins/target/wasm32-wasip2/release`). The first
/// call of the test process runs `plugins/build.sh` (a second or so when nothing changed);
/// later calls wait for it and share its result. Panics, saying what to do, when the
/// wasm32-wasip2 target is missing or the build fails: the plugin tests never pass silently.
pub fn plugin_artifacts() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(build_plugins)
}

fn build_plugins() -> PathBuf {
    const TARGET: &str = "wasm32-wasip2";
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .canonicalize()
        .expect("the plugins/ folder next to engine/");
    let build = plugins.join("build.sh");
    // build.sh would `rustup target add` a missing target, which needs the network: check
    // first and say what to install instead.
    match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(out) if out.status.success() => assert!(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET),
            "the plugin tests need the Rust target {TARGET}, which is not installed: \
             run `rustup target add {TARGET}`, then `{}`",
            build.display()
        ),
        other => panic!(
            "the plugin tests build their plugins with rustup's {TARGET} target, but \
             `rustup target list --installed` did not run ({other:?}): install rustup \
             (https://rustup.rs), run `rustup target add {TARGET}`, then `{}`",
            build.display()
        ),
    }
    let out = Command::new("bash")
        .arg(&build)
        // plugins/ is a workspace with its own target dir; an inherited override would put
        // the components where build.sh does not look.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `bash {}`: {e}", build.display()));
    assert!(
        out.status.success(),
        "building the plugins failed; run `{}` to see why and fix it (it needs rustup's \
         {TARGET} target: `rustup target add {TARGET}`):\n{}",
        build.display(),
        show(&out)
    );
    let dir = plugins.join("target").join(TARGET).join("release");
    for wasm in PLUGIN_ARTIFACTS {
        assert!(
            dir.join(wasm).is_file(),
            "`{}` succeeded but left no {wasm} in {}; run it by hand and check its output",
            build.display(),
            dir.display()
        );
    }
    dir
}

/// True when the binary under test is another build (`AIRLOCK_TEST_BIN`, the device build):
/// its plugins are then precompiled by this build, as an image build would do.
pub fn precompiled_under_test() -> bool {
    std::env::var_os("AIRLOCK_TEST_BIN").is_some()
}

/// The target the binary under test runs precompiled plugins for: `AIRLOCK_TEST_TARGET` when it
/// is a cross build run under emulation (`scripts/test-device aarch64-unknown-linux-gnu`), else
/// this machine's.
pub fn native_target() -> &'static str {
    static TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TARGET.get_or_init(|| {
        std::env::var("AIRLOCK_TEST_TARGET").unwrap_or_else(|_| {
            if cfg!(target_arch = "x86_64") {
                "x86_64-unknown-linux-gnu".into()
            } else {
                "aarch64-unknown-linux-gnu".into()
            }
        })
    })
}

/// Component `wasm` copied into a `precompiled/` folder beside it, with its precompiled form
/// beside the copy, made by this build's `airlock plugin compile` once per test process: the
/// copy's path and the form's digest-list line (`HEX  PATH\n`).
pub fn precompiled_form(wasm: &Path) -> (PathBuf, String) {
    static DONE: std::sync::Mutex<BTreeMap<PathBuf, String>> =
        std::sync::Mutex::new(BTreeMap::new());
    let dir = wasm.parent().unwrap().join("precompiled");
    let path = dir.join(wasm.file_name().unwrap());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(line) = done.get(wasm) {
        return (path, line.clone());
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(wasm, &path).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["plugin", "compile", path.to_str().unwrap()])
        .args(["--target", native_target()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "precompiling {}:\n{}",
        wasm.display(),
        show(&out)
    );
    // `plugin compile` ends with the artifact's digest-list line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!("{}\n", stdout.lines().last().unwrap());
    done.insert(wasm.to_path_buf(), line.clone());
    (path, line)
}

/// `airlock` exited 0 or 1 and did not panic; the only panic text allowed is a hostile
/// plugin's own, quoted from its stderr (its source path is under `hostile/`). Returns
/// stdout and stderr together.
pub fn assert_contained(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{what}: airlock went down:\n{}",
        show(out)
    );
    for line in text.lines() {
        assert!(
            !line.contains("panicked") || line.contains("hostile/"),
            "{what}: airlock panicked:\n{}",
            show(out)
        );
    }
    text
}

impl Workspace {
    /// Builds a bundle from `spec`, the text of a bundle.toml (paths relative to the workspace).
    pub fn bundle_from_spec(&self, out: &str, spec: &str) -> PathBuf {
        let spec = self.file(&format!("{out}.toml"), spec.as_bytes());
        let path = self.path(out);
        ok(&[
            "bundle",
            "create",
            spec.to_str().unwrap(),
            "--key",
            self.key().to_str().unwrap(),
            "-o",
            path.to_str().unwrap(),
        ]);
        path
    }
}

impl Device {
    /// Appends `[plugins.NAME]` running the built component `wasm` (e.g. `"http_health.wasm"`),
    /// then `extra`: more keys of that table, then its sub-tables (`[plugins.NAME.config]`).
    pub fn add_plugin(&self, name: &str, wasm: &str, extra: &str) {
        self.add_component(name, &plugin_artifacts().join(wasm), extra);
    }

    /// Appends `[plugins.NAME]` running the component at `wasm`, then `extra`. The device
    /// build, which cannot compile, gets its precompiled form instead, vouched for in the
    /// device's digest list, as an image build would leave them.
    pub fn add_component(&self, name: &str, wasm: &Path, extra: &str) {
        let path = if precompiled_under_test() {
            let (path, line) = precompiled_form(wasm);
            let list = self.dir.join("precompiled.sha256");
            let mut text = std::fs::read_to_string(&list).unwrap_or_default();
            text += &line;
            std::fs::write(&list, text).unwrap();
            path
        } else {
            wasm.to_path_buf()
        };
        self.append_config(&format!(
            "[plugins.{name}]\npath = {}\n{extra}\n",
            toml_path(&path)
        ));
    }

    /// Appends the `[chain]` table with `keys` (e.g. `check = ["health"]`).
    pub fn set_chain(&self, keys: &str) {
        self.append_config(&format!("[chain]\n{keys}\n"));
    }

    /// The newest valid copy of the state journal (format in engine/src/state.rs): its
    /// generation and record.
    pub fn journal(&self) -> (u64, Value) {
        (0..2)
            .filter_map(|i| std::fs::read(self.dir.join(format!("data/state/journal.{i}"))).ok())
            .filter(|b| b.len() > 37)
            .map(|b| {
                let generation = u64::from_le_bytes(b[20..28].try_into().unwrap());
                let record = serde_json::from_slice(&b[37..]).expect("a journal record");
                (generation, record)
            })
            .max_by_key(|(g, _)| *g)
            .expect("the device has a state journal")
    }
}

// ---- Helpers for the fault-injection suite (hostile_stages.rs, mutation.rs, power_cut.rs, and
// the cases of http.rs, bad_input.rs and plugins.rs) ----

/// Prints one count line of the fault-injection suite, `reliability: LINE`. When
/// `AIRLOCK_RELIABILITY_REPORT` names a file (scripts/test sets it), the line is also appended
/// there, so the summary can be shown after a run that captured the tests' output.
pub fn reliability_report(line: &str) {
    let line = format!("reliability: {line}");
    println!("{line}");
    if let Some(path) = std::env::var_os("AIRLOCK_RELIABILITY_REPORT") {
        use std::io::Write;
        // One write of one line to a file opened for appending: lines from tests running in
        // parallel do not interleave.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

/// A part of the fault-injection suite whose cases are spread over many small tests (http.rs,
/// bad_input.rs, plugins.rs), reported as one line: its name and what held in every case.
pub struct FaultGroup {
    pub name: &'static str,
    pub holds: &'static str,
}

/// Records one case of `group` that ran and passed its checks (call it after them), and how it
/// ended (`outcome`, e.g. "refused before writing"). When the test process exits, every group
/// with cases gets one [`reliability_report`] line, e.g. `network faults: 14 cases, active slot
/// untouched in each: 5 installed (503 twice, stall, …), …`: counted from what ran, so a
/// filtered run reports only its own cases and a skipped case is not counted.
pub fn fault_case(group: &'static FaultGroup, case: &str, outcome: &'static str) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a plain function with no arguments; it runs once, at exit, after
        // the test harness has joined its test threads.
        unsafe { libc::atexit(report_fault_cases) };
    });
    fault_cases()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((group, case.to_string(), outcome));
}

type FaultCases = std::sync::Mutex<Vec<(&'static FaultGroup, String, &'static str)>>;

fn fault_cases() -> &'static FaultCases {
    static CASES: FaultCases = std::sync::Mutex::new(Vec::new());
    &CASES
}

extern "C" fn report_fault_cases() {
    use std::collections::BTreeMap;
    // A panic must not cross into C (that would abort a run whose tests all passed).
    let _ = std::panic::catch_unwind(|| {
        let cases = fault_cases()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut groups: BTreeMap<&str, (&FaultGroup, BTreeMap<&str, Vec<&str>>)> = BTreeMap::new();
        for (group, case, outcome) in cases.iter() {
            let (_, outcomes) = groups.entry(group.name).or_insert((group, BTreeMap::new()));
            outcomes.entry(outcome).or_default().push(case);
        }
        for (group, outcomes) in groups.values_mut() {
            let total: usize = outcomes.values().map(Vec::len).sum();
            let ends: Vec<String> = outcomes
                .iter_mut()
                .map(|(outcome, names)| {
                    names.sort();
                    format!("{} {outcome} ({})", names.len(), names.join(", "))
                })
                .collect();
            reliability_report(&format!(
                "{}: {total} cases, {}: {}",
                group.name,
                group.holds,
                ends.join("; ")
            ));
        }
    });
}

/// Copies the folder `from` to `to` (which must not exist): files, folders and symlinks (kept
/// as they are, so a simulated device's relative `app -> app.a` stays valid).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

impl Device {
    /// A copy of this device in `to`, e.g. a fresh device per case from a template.
    pub fn copy_to(&self, to: &Path) -> Device {
        copy_dir(&self.dir, to);
        Device {
            dir: to.to_path_buf(),
        }
    }

    /// The simulated bootloader's variables, read from its file (not through airlock):
    /// (primary, trial, booted), `None` for `none`.
    pub fn bootloader_vars(&self) -> [Option<String>; 3] {
        let text = std::fs::read_to_string(self.dir.join("boot/bootloader.env")).unwrap();
        let mut vars = [None, None, None];
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (key, value) = line.split_once('=').expect("key=value");
            let value = Some(value.trim())
                .filter(|v| !v.is_empty() && *v != "none")
                .map(str::to_string);
            match key.trim() {
                "primary" => vars[0] = value,
                "trial" => vars[1] = value,
                "booted" => vars[2] = value,
                other => panic!("unknown bootloader variable {other}"),
            }
        }
        vars
    }

    /// `status --json`, checked against the bootloader's own file: booted, primary and
    /// pending_trial tell the truth.
    pub fn truthful_status(&self) -> Value {
        let st = self.status();
        let [primary, trial, booted] = self.bootloader_vars();
        let as_json = |v: Option<String>| v.map_or(Value::Null, Value::String);
        assert_eq!(st["booted"], as_json(booted), "booted: {st}");
        assert_eq!(st["primary"], as_json(primary), "primary: {st}");
        assert_eq!(st["pending_trial"], as_json(trial), "pending_trial: {st}");
        st
    }
}
