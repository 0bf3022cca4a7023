//! Power safety: a real `airlock` process killed (SIGKILL) at every persistence point of an
//! update, then restarted the way a device restarts after a power cut, always leaves a consistent
//! device; so does a damaged copy of the state journal.
//!
//! The points come from the engine itself (`AIRLOCK_FAULT_LOG`, see `engine/src/install/faults.rs`),
//! not from a list kept here: a point added to the engine is covered without touching this file.
//! For each point passed by a clean run of a scenario, a fresh simulated device runs the scenario
//! with `AIRLOCK_KILL_AT=NAME#N` on the command that passes it, reboots (`airlock sim reboot`, which
//! plays the bootloader and runs `airlock boot`) and carries on until the update settles. Every
//! step is checked against the invariants in [`Run::problems`], the end against the scenario's goal.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

const VERSION: &str = "1.0.0";
const SLOT_SIZE: &str = "4MiB";
const IMAGE_LEN: usize = 3 << 19;
/// Steps a device may take after a power cut before its update must have settled.
const MAX_RECOVERY_STEPS: usize = 10;

/// One command of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `airlock install BUNDLE`
    Install,
    /// `airlock sim reboot DIR`: the bootloader, then `airlock boot`
    Reboot,
    /// `airlock sim reboot DIR --fail`: the new slot does not come up
    RebootFail,
    /// `airlock rollback`
    Rollback,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Install => "install",
            Step::Reboot => "sim reboot",
            Step::RebootFail => "sim reboot --fail",
            Step::Rollback => "rollback",
        })
    }
}

/// How a scenario's update ends when nothing goes wrong, and which ends a power cut may lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// The new version ends committed. A power cut may roll a trial back; the device then
    /// installs the same bundle again.
    Commit,
    /// The new slot never comes up (every reboot is `--fail`): the update ends rolled back.
    FailedBoot,
    /// The operator cancels before the reboot: the update ends cancelled, or rolled back when the
    /// power cut hit the rollback itself, or committed when the power cut's reboot already tried
    /// the armed slot.
    Cancel,
}

struct Scenario {
    name: &'static str,
    /// The bundle also carries an `app` archive for the directory slot.
    app: bool,
    steps: &'static [Step],
    goal: Goal,
}

/// Where the kill goes: the `nth` point called `name` passed by command `steps[step]`.
#[derive(Clone, Debug)]
struct KillPoint {
    step: usize,
    command: Step,
    name: String,
    nth: u32,
}

impl fmt::Display for KillPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{} in `{}`", self.name, self.nth, self.command)
    }
}

/// How an update settled.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// The new version is committed.
    Committed,
    /// The old version stays committed; `last_result` says why.
    NotCommitted(String),
}

type Files = BTreeMap<String, Vec<u8>>;

/// A workspace with one signed bundle of version [`VERSION`], and the devices made in it.
struct Fixture {
    ws: Workspace,
    bundle: PathBuf,
    image: Vec<u8>,
    /// The files of the `app` payload, when the bundle has one.
    app: Option<Files>,
    devices: Cell<usize>,
}

impl Fixture {
    fn new(app: bool) -> Self {
        let ws = Workspace::new();
        let image = image_bytes(IMAGE_LEN, 7);
        ws.file("v1.img", &image);
        let mut payloads = vec![("rootfs", "v1.img", "rootfs")];
        let app = app.then(|| {
            let files: Files = [
                ("bin/app", format!("#!/bin/sh\necho app {VERSION}\n")),
                ("etc/app.conf", format!("version = {VERSION}\n")),
            ]
            .into_iter()
            .map(|(p, c)| (p.to_string(), c.into_bytes()))
            .collect();
            ws.file("app.tar", &tar_archive(&files.iter().collect::<Vec<_>>()));
            payloads.push(("app", "app.tar", "app"));
            files
        });
        let bundle = ws.bundle("v1.airlock", VERSION, "test-device", &payloads, "");
        Fixture {
            ws,
            bundle,
            image,
            app,
            devices: Cell::new(0),
        }
    }

    /// A fresh simulated device: slot a holds factory content and is active.
    fn device(&self) -> Device {
        let n = self.devices.get();
        self.devices.set(n + 1);
        self.ws.device(&format!("dev{n}"), SLOT_SIZE)
    }
}

/// Every regular file under `dir` (following a symlink at `dir` itself), by relative path.
fn dir_files(dir: &Path) -> Files {
    fn walk(root: &Path, dir: &Path, out: &mut Files) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = Files::new();
    walk(dir, dir, &mut out);
    out
}

/// The simulated bootloader's variables, read from its file (not through airlock).
#[derive(Debug)]
struct Bootloader {
    primary: Option<String>,
    trial: Option<String>,
    booted: Option<String>,
}

fn bootloader(dev: &Device) -> Bootloader {
    let text = std::fs::read_to_string(dev.dir.join("boot/bootloader.env")).unwrap();
    let mut b = Bootloader {
        primary: None,
        trial: None,
        booted: None,
    };
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
            "primary" => b.primary = value,
            "trial" => b.trial = value,
            "booted" => b.booted = value,
            other => panic!("unknown bootloader variable {other}"),
        }
    }
    b
}

/// One copy of the state journal (format in engine/src/state.rs).
struct JournalCopy {
    path: PathBuf,
    generation: u64,
    record: Value,
}

fn journal_copies(dev: &Device) -> Vec<JournalCopy> {
    let mut copies: Vec<JournalCopy> = (0..2)
        .map(|i| dev.dir.join(format!("data/state/journal.{i}")))
        .filter(|p| p.exists())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let generation = u64::from_le_bytes(bytes[20..28].try_into().unwrap());
            let record = serde_json::from_slice(&bytes[37..]).unwrap();
            JournalCopy {
                path,
                generation,
                record,
            }
        })
        .collect();
    copies.sort_by_key(|c| std::cmp::Reverse(c.generation));
    copies
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// One flipped bit in the record.
    FlipBody,
    /// One flipped bit in the generation counter.
    FlipGeneration,
    /// Cut in the middle, as a torn write leaves it.
    TruncateHalf,
    /// Zero bytes.
    Empty,
}

const DAMAGES: [Damage; 4] = [
    Damage::FlipBody,
    Damage::FlipGeneration,
    Damage::TruncateHalf,
    Damage::Empty,
];

fn damage(path: &Path, kind: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    match kind {
        Damage::FlipBody => {
            let i = 37 + (bytes.len() - 37) / 2;
            bytes[i] ^= 0x04;
        }
        Damage::FlipGeneration => bytes[20] ^= 0x01,
        Damage::TruncateHalf => bytes.truncate(bytes.len() / 2),
        Damage::Empty => bytes.clear(),
    }
    std::fs::write(path, bytes).unwrap();
}

/// One device going through a scenario, with a transcript for failure messages.
struct Run<'a> {
    fx: &'a Fixture,
    sc: &'a Scenario,
    dev: Device,
    /// Slot a, active at the start: it must stay byte-identical (no scenario targets it).
    factory: Vec<u8>,
    trace: String,
    /// Installs run while recovering.
    reinstalls: usize,
}

impl<'a> Run<'a> {
    fn new(fx: &'a Fixture, sc: &'a Scenario, what: &str) -> Self {
        let dev = fx.device();
        let factory = dev.slot("a");
        let trace = format!("{} on {}: {what}\n", sc.name, dev.dir.display());
        Run {
            fx,
            sc,
            dev,
            factory,
            trace,
            reinstalls: 0,
        }
    }

    #[track_caller]
    fn fail(&self, msg: impl fmt::Display) -> ! {
        panic!("{}: {msg}\n--- transcript\n{}", self.sc.name, self.trace)
    }

    fn command(&self, step: Step) -> Command {
        let dir = self.dev.dir.to_str().unwrap();
        match step {
            Step::Install => self.dev.cmd(&["install", self.fx.bundle.to_str().unwrap()]),
            Step::Reboot | Step::RebootFail => {
                let mut cmd = airlock();
                cmd.args(["sim", "reboot", dir]);
                if step == Step::RebootFail {
                    cmd.arg("--fail");
                }
                cmd
            }
            Step::Rollback => self.dev.cmd(&["rollback"]),
        }
    }

    fn exec(&mut self, step: Step, env: Option<(&str, &str)>) -> Output {
        let mut cmd = self.command(step);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("the airlock binary runs");
        let env = env.map(|(k, v)| format!("{k}={v} ")).unwrap_or_default();
        let _ = writeln!(self.trace, "$ {env}airlock {step}  => {}", out.status);
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            let _ = writeln!(self.trace, "    {line}");
        }
        out
    }

    /// Runs `step`, which must succeed.
    fn step(&mut self, step: Step) {
        if !self.exec(step, None).status.success() {
            self.fail(format!("`airlock {step}` failed"));
        }
    }

    /// Runs `step` with a kill at `point`, which it must reach.
    fn killed(&mut self, step: Step, point: &KillPoint) {
        let at = format!("{}#{}", point.name, point.nth);
        let out = self.exec(step, Some(("AIRLOCK_KILL_AT", &at)));
        if out.status.signal() != Some(9) {
            self.fail(format!(
                "`airlock {step}` was not killed (SIGKILL) at {point}: {}",
                out.status
            ));
        }
    }

    /// Runs `status --json`, checks it against the device and returns it.
    fn check(&mut self) -> Value {
        let out = self
            .dev
            .cmd(&["status", "--json"])
            .output()
            .expect("the airlock binary runs");
        if !out.status.success() {
            self.fail(format!(
                "`airlock status` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let st: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| self.fail(format!("status --json: {e}")));
        let _ = writeln!(
            self.trace,
            "  status: booted {} primary {} trial {} | update {} | committed {} | last {} | slot b {} | app {}",
            st["booted"],
            st["primary"],
            st["pending_trial"],
            st["update"]["phase"],
            st["committed"]["version"],
            st["last_result"]["result"],
            st["slots"]["b"]["release"]["version"],
            st["directories"][0]["active"],
        );
        let problems = self.problems(&st);
        if !problems.is_empty() {
            self.fail(format!(
                "inconsistent device:\n  - {}",
                problems.join("\n  - ")
            ));
        }
        st
    }

    /// Slot b starts with the new image.
    fn b_holds_image(&self) -> bool {
        let b = self.dev.slot("b");
        b.len() >= self.fx.image.len() && b[..self.fx.image.len()] == self.fx.image[..]
    }

    /// What is inconsistent between the status, the bootloader and the slots.
    fn problems(&self, st: &Value) -> Vec<String> {
        let mut p = Vec::new();
        let boot = bootloader(&self.dev);
        let s = |v: &Value| v.as_str().map(str::to_string);

        // The status reports what the bootloader holds.
        for (field, actual) in [
            ("booted", &boot.booted),
            ("primary", &boot.primary),
            ("pending_trial", &boot.trial),
        ] {
            if s(&st[field]) != *actual {
                p.push(format!(
                    "status says {field} = {}, the bootloader {actual:?}",
                    st[field]
                ));
            }
        }
        let (booted, primary) = (
            boot.booted.unwrap_or_default(),
            boot.primary.unwrap_or_default(),
        );

        // The old slot: active at the start and targeted by no step, so never written, in
        // particular not before the bootloader's switch to b is committed.
        if self.dev.slot("a") != self.factory {
            p.push(format!(
                "slot a (the old slot) changed; the bootloader's primary is {primary}"
            ));
        }
        if !st["slots"]["a"].is_null() {
            p.push(format!(
                "slot a is recorded as holding {}, but it holds the factory image",
                st["slots"]["a"]
            ));
        }
        // A slot record is a promise that the slot holds that release, completely.
        let b_recorded = !st["slots"]["b"].is_null();
        if b_recorded {
            if st["slots"]["b"]["release"]["version"] != VERSION {
                p.push(format!(
                    "slot b is recorded as {}",
                    st["slots"]["b"]["release"]
                ));
            }
            if !self.b_holds_image() {
                p.push(format!(
                    "slot b is recorded as holding {VERSION} but does not hold its image"
                ));
            }
        }

        let update = &st["update"];
        let phase = update["phase"].as_str().unwrap_or("none");
        let in_flight = matches!(phase, "switching" | "installed" | "trial");
        let committed = st["committed"]["version"].as_str() == Some(VERSION);
        if !update.is_null() {
            if update["target"] != "b"
                || update["from"] != "a"
                || update["release"]["version"] != VERSION
            {
                p.push(format!("unexpected update {update}"));
            }
            if phase == "fetching" && b_recorded {
                p.push("slot b is being written but recorded as complete".into());
            }
        }
        if !st["committed"].is_null() && !committed {
            p.push(format!("committed is {}", st["committed"]));
        }
        if committed && (primary != "b" || !update.is_null() || !b_recorded) {
            p.push(format!("{VERSION} is committed but primary = {primary}, update = {update}, slot b record = {}", st["slots"]["b"]));
        }

        // The bootloader never tries a slot that is not completely written and recorded.
        if let Some(t) = &boot.trial
            && (t != "b" || !matches!(phase, "switching" | "installed") || !b_recorded)
        {
            p.push(format!(
                "the bootloader will try slot {t} once, but the update is {phase} and slot b's record is {}",
                st["slots"]["b"]
            ));
        }
        // Running a slot other than the primary is a trial boot of the update's slot.
        if booted != primary && (update["target"] != booted.as_str() || !in_flight) {
            p.push(format!(
                "booted {booted} but primary is {primary}, and the update is {update}"
            ));
        }
        // The bootloader commits b only for a trial that booted b.
        if primary == "b" && !committed && !(phase == "trial" && booted == "b" && b_recorded) {
            p.push(format!("the bootloader's primary is b but {VERSION} is not committed and the update is {update}"));
        }

        // The directory slot: the new app is live only while the update is in flight or once it
        // is committed, and always once it is committed.
        if let Some(app) = &self.fx.app {
            let active = st["directories"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["class"] == "app"))
                .and_then(|d| d["active"].as_str())
                .unwrap_or("?")
                .to_string();
            let link = std::fs::read_link(self.dev.dir.join("app"))
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            if !link.ends_with(&format!("app.{active}")) {
                p.push(format!(
                    "status says the app side {active} is active, the symlink points at {link:?}"
                ));
            }
            let files = dir_files(&self.dev.dir.join("app"));
            match active.as_str() {
                "a" if !files.is_empty() => {
                    p.push(format!("the old app side holds {:?}", files.keys()))
                }
                "a" if committed => {
                    p.push(format!("{VERSION} is committed but its app is not live"))
                }
                "b" if files != *app => p.push(format!(
                    "the active app side b holds {:?}, not the new app",
                    files.keys()
                )),
                "b" if !(committed || in_flight) => {
                    p.push(format!("the new app is live, but the update is {phase}"))
                }
                "a" | "b" => {}
                other => p.push(format!("the app directory slot's active side is {other:?}")),
            }
        }
        p
    }

    /// With the newest journal copy damaged: `status` warns about it by name, succeeds, and
    /// reports the record of the `older` copy; the device is consistent.
    fn assert_older_generation(&mut self, older: &JournalCopy) {
        let out = self
            .dev
            .cmd(&["status", "--json"])
            .output()
            .expect("the airlock binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            self.fail(format!(
                "status with one damaged journal copy failed:\n{stderr}"
            ));
        }
        let damaged = ["journal.0", "journal.1"]
            .into_iter()
            .find(|n| older.path.file_name().unwrap() != *n)
            .unwrap();
        if !stderr.contains(damaged) {
            self.fail(format!(
                "no warning names the damaged copy {damaged}:\n{stderr}"
            ));
        }
        let st = self.check();
        for (status, record) in [
            ("update", "update"),
            ("committed", "committed"),
            ("last_result", "last_result"),
        ] {
            if st[status] != older.record[record] {
                self.fail(format!(
                    "status {status} = {}, not the older generation's {}",
                    st[status], older.record[record]
                ));
            }
        }
        if st["slots"]["b"] != older.record["slot_b"] {
            self.fail("status reports slot b not as the older generation does");
        }
    }

    /// Both journal copies are valid again (the next store overwrote the damaged one).
    fn assert_journal_intact(&self) {
        let out = self
            .dev
            .cmd(&["status"])
            .output()
            .expect("the airlock binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || stderr.contains("journal") {
            self.fail(format!(
                "the journal was not repaired by the next store:\n{stderr}"
            ));
        }
        let copies = journal_copies(&self.dev);
        if copies.len() != 2 || copies[0].generation == copies[1].generation {
            self.fail("expected two journal copies of different generations");
        }
    }

    /// Whether the update has settled, for this scenario's goal; panics on an end the goal
    /// does not allow.
    fn settled(&self, st: &Value) -> Option<Outcome> {
        if !st["update"].is_null() {
            return None;
        }
        if st["committed"]["version"] == VERSION {
            if self.sc.goal == Goal::FailedBoot {
                self.fail("committed, though the new slot never came up");
            }
            return Some(Outcome::Committed);
        }
        let result = st["last_result"]["result"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        match (self.sc.goal, result.as_str()) {
            (_, "failed") => self.fail(format!(
                "the update failed: {}",
                st["last_result"]["reason"]
            )),
            (Goal::FailedBoot, "rolled-back") | (Goal::Cancel, "cancelled" | "rolled-back") => {
                Some(Outcome::NotCommitted(result))
            }
            // Nothing pending, nothing committed: the device installs the bundle again.
            _ => None,
        }
    }

    /// What the device does next with the status `st`, towards its goal.
    fn next(&mut self, st: &Value) -> Step {
        let reboot = if self.sc.goal == Goal::FailedBoot {
            Step::RebootFail
        } else {
            Step::Reboot
        };
        if st["update"].is_null() {
            self.reinstalls += 1;
            if self.reinstalls > 2 {
                self.fail("the update does not settle: installed again twice");
            }
            return Step::Install;
        }
        if self.sc.goal == Goal::Cancel
            && st["update"]["phase"] == "installed"
            && st["booted"] == "a"
        {
            return Step::Rollback;
        }
        reboot
    }

    /// After a power cut: reboot, then carry on until the update settles.
    fn recover(&mut self) -> Outcome {
        let reboot = if self.sc.goal == Goal::FailedBoot {
            Step::RebootFail
        } else {
            Step::Reboot
        };
        self.step(reboot);
        for _ in 0..MAX_RECOVERY_STEPS {
            let st = self.check();
            if let Some(outcome) = self.settled(&st) {
                return outcome;
            }
            let step = self.next(&st);
            self.step(step);
        }
        self.fail(format!(
            "the update did not settle within {MAX_RECOVERY_STEPS} steps"
        ))
    }

    /// The settled device: the new version committed and in place, or the old one untouched.
    fn assert_end(&mut self, outcome: &Outcome) {
        let st = self.check();
        let expect = |field: &str, want: &str| {
            if st[field] != want {
                self.fail(format!(
                    "settled as {outcome:?} but {field} = {}",
                    st[field]
                ));
            }
        };
        if !st["update"].is_null() || !st["pending_trial"].is_null() {
            self.fail("settled with an update or a trial pending");
        }
        match outcome {
            Outcome::Committed => {
                expect("booted", "b");
                expect("primary", "b");
                if st["last_result"]["result"] != "committed"
                    || st["slots"]["b"]["release"]["version"] != VERSION
                {
                    self.fail("committed but the last result or slot b's record says otherwise");
                }
                assert_prefix(&self.dev.slot_path("b"), &self.fx.image);
                if let Some(app) = &self.fx.app
                    && (st["directories"][0]["active"] != "b"
                        || dir_files(&self.dev.dir.join("app")) != *app)
                {
                    self.fail("committed but the app is not the new one");
                }
            }
            Outcome::NotCommitted(result) => {
                expect("booted", "a");
                expect("primary", "a");
                if !st["committed"].is_null() || st["last_result"]["result"] != result.as_str() {
                    self.fail("rolled back but the record says otherwise");
                }
                if self.dev.slot("a") != self.factory {
                    self.fail("slot a changed");
                }
                if self.fx.app.is_some()
                    && (st["directories"][0]["active"] != "a"
                        || !dir_files(&self.dev.dir.join("app")).is_empty())
                {
                    self.fail("rolled back but the app is not the old one");
                }
            }
        }
    }
}

/// The outcome a scenario's goal has when nothing goes wrong.
fn clean_outcome(goal: Goal) -> Outcome {
    match goal {
        Goal::Commit => Outcome::Committed,
        Goal::FailedBoot => Outcome::NotCommitted("rolled-back".into()),
        Goal::Cancel => Outcome::NotCommitted("cancelled".into()),
    }
}

/// Runs the scenario once without kills, logging every persistence point each command passes.
fn discover(fx: &Fixture, sc: &Scenario) -> Vec<KillPoint> {
    let mut run = Run::new(fx, sc, "discovering the persistence points");
    let mut points = Vec::new();
    for (i, &step) in sc.steps.iter().enumerate() {
        let log = fx.ws.path(&format!("faults-{i}.log"));
        let out = run.exec(step, Some(("AIRLOCK_FAULT_LOG", log.to_str().unwrap())));
        if !out.status.success() {
            run.fail(format!("`airlock {step}` failed"));
        }
        let mut seen = BTreeMap::<String, u32>::new();
        for name in std::fs::read_to_string(&log).unwrap_or_default().lines() {
            let nth = seen.entry(name.to_string()).or_insert(0);
            *nth += 1;
            points.push(KillPoint {
                step: i,
                command: step,
                name: name.to_string(),
                nth: *nth,
            });
        }
        run.check();
    }
    let st = run.check();
    let want = clean_outcome(sc.goal);
    if run.settled(&st).as_ref() != Some(&want) {
        run.fail(format!("without kills the scenario should end {want:?}"));
    }
    run.assert_end(&want);
    points
}

/// Kills the scenario at every persistence point it passes, recovers, and checks the device.
fn power_cut(sc: &Scenario, required: &[&str]) {
    let fx = Fixture::new(sc.app);
    let points = discover(&fx, sc);
    let names: BTreeSet<&str> = points.iter().map(|p| p.name.as_str()).collect();
    for r in required {
        assert!(
            names.contains(r),
            "{}: the engine passed no point {r:?}; it passed {names:?}",
            sc.name
        );
    }
    let mut outcomes = BTreeMap::<String, usize>::new();
    let mut torn = 0;
    for point in &points {
        let what = kill_case(&fx, sc, point, false).expect("a plain kill case always runs");
        *outcomes.entry(what).or_default() += 1;
        if let Some(what) = kill_case(&fx, sc, point, true) {
            *outcomes
                .entry(format!("{what} (torn journal write)"))
                .or_default() += 1;
            torn += 1;
        }
    }
    let by_command = sc
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s} {}", points.iter().filter(|p| p.step == i).count()));
    reliability_report(&format!(
        "power-cut {}: {} kill points ({}) + {torn} torn journal writes, all consistent: {}",
        sc.name,
        points.len(),
        by_command.collect::<Vec<_>>().join(", "),
        outcomes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

/// One device killed at `point`, recovered and checked; returns how it settled.
///
/// With `torn`, the kill is also taken as having torn the journal store just before the point,
/// as a file system that does not keep its promises may: the copy that store wrote is damaged
/// (truncated), and the device must go on from the older generation. Only points named
/// `journal-*` follow a store directly (`Device::store`), and a lone first copy has no older
/// generation to fall back to; for the others this returns `None` without running anything.
fn kill_case(fx: &Fixture, sc: &Scenario, point: &KillPoint, torn: bool) -> Option<String> {
    if torn && !point.name.starts_with("journal-") {
        return None;
    }
    let what = if torn {
        format!("kill at {point}, its journal write torn")
    } else {
        format!("kill at {point}")
    };
    let mut run = Run::new(fx, sc, &what);
    for (i, &step) in sc.steps[..=point.step].iter().enumerate() {
        if i < point.step {
            run.step(step);
        } else {
            run.killed(step, point);
        }
        run.check();
    }
    if torn {
        let copies = journal_copies(&run.dev);
        if copies.len() < 2 {
            return None;
        }
        damage(&copies[0].path, Damage::TruncateHalf);
        let _ = writeln!(
            run.trace,
            "  truncated {} (generation {})",
            copies[0].path.display(),
            copies[0].generation
        );
        run.assert_older_generation(&copies[1]);
    }
    let outcome = run.recover();
    run.assert_end(&outcome);
    Some(match &outcome {
        Outcome::Committed if run.reinstalls > 0 => {
            "committed after a rollback and a new install".to_string()
        }
        Outcome::Committed => "committed".to_string(),
        Outcome::NotCommitted(r) => r.clone(),
    })
}

const BASE_POINTS: &[&str] = &[
    "journal-fetching",
    "payload-half-written",
    "payload-synced",
    "boot-trial-armed",
    "journal-installed",
    "journal-trial",
    "boot-committed",
    "journal-committed",
];

#[test]
fn kill_at_every_point_of_install_reboot_commit() {
    let sc = Scenario {
        name: "rootfs",
        app: false,
        steps: &[Step::Install, Step::Reboot],
        goal: Goal::Commit,
    };
    power_cut(&sc, BASE_POINTS);
}

#[test]
fn kill_at_every_point_of_a_rootfs_and_app_update() {
    let sc = Scenario {
        name: "rootfs+app",
        app: true,
        steps: &[Step::Install, Step::Reboot],
        goal: Goal::Commit,
    };
    power_cut(
        &sc,
        &[BASE_POINTS, &["directory-unpacked", "directory-switched"]].concat(),
    );
}

#[test]
fn kill_at_every_point_of_a_failed_trial_boot() {
    let sc = Scenario {
        name: "failed-boot",
        app: true,
        steps: &[Step::Install, Step::RebootFail],
        goal: Goal::FailedBoot,
    };
    power_cut(
        &sc,
        &["journal-fetching", "journal-installed", "journal-abandoned"],
    );
}

#[test]
fn kill_at_every_point_of_a_cancel_before_reboot() {
    let sc = Scenario {
        name: "cancel",
        app: true,
        steps: &[Step::Install, Step::Rollback],
        goal: Goal::Cancel,
    };
    power_cut(
        &sc,
        &["journal-fetching", "journal-installed", "journal-abandoned"],
    );
}

/// Killed half-way through the payload, installing the same bundle again continues after the
/// chunks already in the slot.
#[test]
fn install_after_a_kill_mid_payload_resumes() {
    let fx = Fixture::new(false);
    let sc = Scenario {
        name: "resume",
        app: false,
        steps: &[Step::Install],
        goal: Goal::Commit,
    };
    let mut run = Run::new(&fx, &sc, "kill mid-payload, install again");
    let point = KillPoint {
        step: 0,
        command: Step::Install,
        name: "payload-half-written".into(),
        nth: 1,
    };
    run.killed(Step::Install, &point);
    let st = run.check();
    assert_eq!(st["update"]["phase"], "fetching");
    let out = run
        .dev
        .ok(&["install", "--json", fx.bundle.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&out).expect("install --json is JSON");
    let resumed = report["resumed_bytes"].as_u64().unwrap();
    let total = report["payload_bytes"].as_u64().unwrap();
    let transferred = report["fetched_bytes"].as_u64().unwrap();
    let bundle_size = std::fs::metadata(&fx.bundle).unwrap().len();
    assert!(
        resumed > 0 && resumed < total,
        "resumed {resumed} of {total} bytes:\n{out}"
    );
    assert!(
        transferred < bundle_size,
        "transferred {transferred} of the {bundle_size}-byte bundle:\n{out}"
    );
    assert_eq!(report["needs_reboot"], true);
    let st = run.check();
    assert_eq!(st["update"]["phase"], "installed");
    run.step(Step::Reboot);
    run.assert_end(&Outcome::Committed);
}

/// The newest journal copy damaged after the install or after the commit: airlock uses the older
/// generation and the device settles; the next store repairs the damaged copy.
#[test]
fn a_damaged_newest_journal_copy_falls_back_to_the_older_one() {
    let fx = Fixture::new(true);
    let sc = Scenario {
        name: "journal-damage",
        app: true,
        steps: &[Step::Install, Step::Reboot],
        goal: Goal::Commit,
    };
    let mut cases = 0;
    for after in 1..=sc.steps.len() {
        for kind in DAMAGES {
            let mut run = Run::new(
                &fx,
                &sc,
                &format!(
                    "{kind:?} on the newest journal copy after {:?}",
                    &sc.steps[..after]
                ),
            );
            for &step in &sc.steps[..after] {
                run.step(step);
                run.check();
            }
            let copies = journal_copies(&run.dev);
            assert_eq!(copies.len(), 2, "both journal copies exist");
            let (newest, older) = (&copies[0], &copies[1]);
            assert!(newest.generation > older.generation);
            damage(&newest.path, kind);
            let _ = writeln!(run.trace, "  damaged {} ({kind:?})", newest.path.display());

            run.assert_older_generation(older);

            let outcome = run.recover();
            run.assert_end(&outcome);
            assert_eq!(outcome, Outcome::Committed);
            run.assert_journal_intact();
            cases += 1;
        }
    }
    reliability_report(&format!(
        "power-cut journal: {cases} damaged newest copies (after install, after commit), all consistent"
    ));
}

/// Both journal copies damaged: every command refuses with a message naming both files, and
/// nothing is written to any slot.
#[test]
fn both_journal_copies_damaged_is_refused_and_touches_nothing() {
    let fx = Fixture::new(true);
    let dev = fx.device();
    dev.install(&fx.bundle);
    let copies = journal_copies(&dev);
    assert_eq!(copies.len(), 2);
    damage(&copies[0].path, Damage::FlipBody);
    damage(&copies[1].path, Damage::TruncateHalf);
    let snapshot = |dev: &Device| {
        (
            dev.slot("a"),
            dev.slot("b"),
            dir_files(&dev.dir.join("app.a")),
            dir_files(&dev.dir.join("app.b")),
            std::fs::read_link(dev.dir.join("app")).unwrap(),
        )
    };
    let before = snapshot(&dev);
    let bundle = fx.bundle.to_str().unwrap();
    let dir = dev.dir.to_str().unwrap();
    let names = |e: &str| {
        for c in &copies {
            assert!(
                e.contains(&c.path.display().to_string()),
                "the message does not name {}:\n{e}",
                c.path.display()
            );
        }
    };
    for args in [
        &["status", "--json"][..],
        &["install", bundle],
        &["boot"],
        &["commit"],
        &["rollback"],
    ] {
        names(&dev.fails(args));
    }
    names(&fails(&["sim", "reboot", dir]));
    assert!(before == snapshot(&dev), "a slot was touched");
}
