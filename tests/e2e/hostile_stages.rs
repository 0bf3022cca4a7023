//! Hostile hooks at every hook stage (chain.rs `HOOK_STAGES`): a hook that traps, one that
//! loops until its 1 s timeout, one that runs out of its 16 MiB memory cap. Each is wired to
//! one stage and an update is driven through it (install, `sim reboot`, `sim reboot --fail`, a
//! bundle with a corrupt chunk for `failure`). Every case ends with airlock exiting 0 or 1 (it
//! never goes down with the plugin), the device's old slot byte-identical or the update fully
//! committed, and `status --json` agreeing with the bootloader. Where a hook can still stop the
//! update, the recorded reason names the plugin; at commit-leave, rollback-* and failure only
//! proceeding is possible, and the update ends exactly as it would without the hook.

use std::path::{Path, PathBuf};

use crate::support::*;

const STAGES: [&str; 10] = [
    "download-enter",
    "download-leave",
    "install-enter",
    "install-leave",
    "reboot-enter",
    "commit-enter",
    "commit-leave",
    "rollback-enter",
    "rollback-leave",
    "failure",
];

/// A hostile hook: its plugin name, component, extra `[plugins.NAME]` keys and what the
/// engine says when it fails.
struct Hostile {
    name: &'static str,
    wasm: &'static str,
    extra: &'static str,
    says: &'static str,
}

const TRAP: Hostile = Hostile {
    name: "trap-hook",
    wasm: "hostile_trap_hook.wasm",
    extra: "",
    says: "plugin trap-hook trapped",
};
const LOOP: Hostile = Hostile {
    name: "loop-forever",
    wasm: "hostile_loop_forever.wasm",
    extra: "timeout = \"1s\"",
    says: "plugin loop-forever timed out after 1s",
};
const OOM: Hostile = Hostile {
    name: "oom-hook",
    wasm: "hostile_oom_hook.wasm",
    extra: "memory = \"16MiB\"",
    says: "plugin oom-hook exceeded its memory cap of 16 MiB",
};

/// One workspace per hostile plugin: a template device, a good bundle and one with a corrupt
/// chunk. Each case runs on a fresh copy of the template.
struct Fixture {
    ws: Workspace,
    template: Device,
    factory: Vec<u8>,
    image: Vec<u8>,
    bundle: PathBuf,
    corrupt: PathBuf,
}

fn fixture() -> Fixture {
    plugin_artifacts();
    let ws = Workspace::new();
    let template = ws.device("template", "2MiB");
    let factory = template.slot("a");
    let image = image_bytes(1 << 20, 7);
    ws.file("v1.img", &image);
    let bundle = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    // One flipped bit in the middle of the file: inside the payload's chunks, so the install
    // starts and then fails on the bad chunk, which is what runs the `failure` hooks.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let corrupt = ws.file("corrupt.airlock", &bytes);
    Fixture {
        ws,
        template,
        factory,
        image,
        bundle,
        corrupt,
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a command on the device; it must end with exit 0 or 1, never a crash or a panic.
/// Returns (success, stdout + stderr).
fn step(dev: &Device, args: &[&str], what: &str) -> (bool, String) {
    let out = dev.output(args);
    let text = assert_contained(&out, what);
    (out.status.success(), text)
}

fn sim_reboot(dev: &Device, fail: bool) -> (bool, String) {
    let mut args = vec!["sim", "reboot", arg(&dev.dir)];
    if fail {
        args.push("--fail");
    }
    let out = run(&args);
    let text = assert_contained(&out, "sim reboot");
    (out.status.success(), text)
}

/// One hostile hook at one stage, on a fresh device. Returns how the update ended.
fn case(fx: &Fixture, h: &Hostile, stage: &str) -> String {
    let what = format!("{} at {stage}", h.name);
    let dev = fx
        .template
        .copy_to(&fx.ws.path(&format!("{}-{stage}", h.name)));
    dev.add_plugin(h.name, h.wasm, h.extra);
    dev.set_chain(&format!("{stage} = [\"{}\"]", h.name));
    let slot_b = dev.slot("b");
    let install = ["install", arg(&fx.bundle)];
    // The hook's own words, as the journal records them when it stops the update.
    let names_hook = |reason: &str| {
        assert!(
            reason.contains(&format!("hook {}", h.name)) && reason.contains(h.says),
            "{what}: the reason does not name the hook and what it did: {reason}"
        );
    };

    // At a stage where only proceeding is possible the hook's failure is logged, not acted on:
    // the log shows it ran (and what it did).
    let ran = |text: &str| {
        assert!(
            text.contains(h.name) && text.contains(h.says),
            "{what}: no sign that the hook ran:\n{text}"
        );
    };
    let (ended, reason) = match stage {
        // Before anything is written: refused, slot b untouched.
        "download-enter" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(!ok, "{what}: the install went through:\n{text}");
            assert!(dev.slot("b") == slot_b, "{what}: slot b was written");
            ("failed", None)
        }
        // After the payload was written to the inactive slot, before the switch.
        "download-leave" | "install-enter" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(!ok, "{what}: the install went through:\n{text}");
            ("failed", None)
        }
        // After the trial was armed: the abort disarms it.
        "install-leave" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(!ok, "{what}: the install went through:\n{text}");
            ("rolled-back", None)
        }
        // The reboot is refused and the update cancelled; the device never left slot a.
        "reboot-enter" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(ok, "{what}: install failed:\n{text}");
            let (ok, text) = sim_reboot(&dev, false);
            assert!(!ok, "{what}: the reboot went ahead:\n{text}");
            assert!(text.contains(&format!("hook {}", h.name)), "{what}: {text}");
            ("rolled-back", None)
        }
        // The trial boot cannot commit: back to slot a.
        "commit-enter" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(ok, "{what}: install failed:\n{text}");
            let (ok, text) = sim_reboot(&dev, false);
            assert!(ok, "{what}: sim reboot failed:\n{text}");
            assert!(
                text.contains(&format!("rolled back: hook {} aborted the commit", h.name)),
                "{what}: {text}"
            );
            ("rolled-back", None)
        }
        // Only proceeding is possible: the update commits as without the hook.
        "commit-leave" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(ok, "{what}: install failed:\n{text}");
            let (ok, text) = sim_reboot(&dev, false);
            assert!(ok && text.contains("committed"), "{what}: {text}");
            ran(&text);
            ("committed", None)
        }
        // The new slot does not come up: the rollback happens as without the hook.
        "rollback-enter" | "rollback-leave" => {
            let (ok, text) = step(&dev, &install, &what);
            assert!(ok, "{what}: install failed:\n{text}");
            let (ok, text) = sim_reboot(&dev, true);
            assert!(ok, "{what}: sim reboot --fail failed:\n{text}");
            ran(&text);
            ("rolled-back", Some("slot b did not boot"))
        }
        // A bad chunk fails the install as without the hook.
        "failure" => {
            let (ok, text) = step(&dev, &["install", arg(&fx.corrupt)], &what);
            assert!(!ok, "{what}: the corrupt bundle installed:\n{text}");
            ran(&text);
            ("failed", Some("chunk"))
        }
        other => panic!("unknown stage {other}"),
    };

    let st = dev.truthful_status();
    assert!(
        st["update"].is_null(),
        "{what}: an update is left pending: {st}"
    );
    assert_eq!(st["last_result"]["result"], ended, "{what}: {st}");
    let recorded = st["last_result"]["reason"].as_str().unwrap_or_default();
    if ended == "committed" {
        assert_eq!(st["booted"], "b", "{what}: {st}");
        assert_eq!(st["primary"], "b", "{what}: {st}");
        assert_eq!(st["committed"]["version"], "1.0.0", "{what}: {st}");
        assert_prefix(&dev.slot_path("b"), &fx.image);
        // The old slot stays as it was, for the next update to overwrite.
        assert!(dev.slot("a") == fx.factory, "{what}: slot a was modified");
    } else {
        dev.assert_active_untouched("a", &fx.factory);
        assert!(st["committed"].is_null(), "{what}: {st}");
        match reason {
            None => {
                names_hook(recorded);
                assert!(
                    recorded.contains(stage) || stage == "commit-enter",
                    "{what}: {recorded}"
                );
            }
            Some(own) => assert!(
                recorded.contains(own) && !recorded.contains(h.name),
                "{what}: the hook changed the outcome's reason: {recorded}"
            ),
        }
    }
    ended.to_string()
}

fn every_stage(h: &Hostile) {
    // Every stage the engine knows, and no other: a new stage must get its case here.
    let known: Vec<&str> = airlock::chain::HOOK_STAGES
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        known, STAGES,
        "chain.rs HOOK_STAGES changed: add a case for each stage"
    );
    let fx = fixture();
    let mut ends = std::collections::BTreeMap::<String, usize>::new();
    for stage in STAGES {
        *ends.entry(case(&fx, h, stage)).or_default() += 1;
    }
    reliability_report(&format!(
        "hostile hook {}: {} stages, airlock never down, every end consistent: {}",
        h.name,
        STAGES.len(),
        ends.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

#[test]
fn trapping_hook_at_every_stage() {
    every_stage(&TRAP);
}

#[test]
fn looping_hook_at_every_stage_times_out() {
    every_stage(&LOOP);
}

#[test]
fn oom_hook_at_every_stage() {
    every_stage(&OOM);
}
