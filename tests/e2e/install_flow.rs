//! The update lifecycle on a simulated device: install, trial boot, commit, rollback.

use crate::support::*;

#[test]
fn install_reboot_commit_then_failed_boot_rolls_back() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "4MiB");
    let factory = dev.slot("a");
    let v1 = image_bytes(2 << 20, 1);
    ws.file("v1.img", &v1);
    let b1 = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );

    let out = dev.install(&b1);
    assert!(out.contains("into slot b"), "{out}");
    assert_eq!(
        dev.slot("a"),
        factory,
        "the active slot must not be touched"
    );
    let st = dev.status();
    assert_eq!(st["update"]["phase"], "installed");
    assert_eq!(st["pending_trial"], "b");

    let out = dev.reboot(false);
    assert!(out.contains("committed"), "{out}");
    let st = dev.status();
    assert_eq!(st["booted"], "b");
    assert_eq!(st["primary"], "b");
    assert_eq!(st["committed"]["version"], "1.0.0");
    assert_eq!(st["last_result"]["result"], "committed");
    assert_prefix(&dev.slot_path("b"), &v1);

    // Version 2 does not come up: the bootloader falls back and the device records a rollback.
    let v2 = image_bytes(2 << 20, 2);
    ws.file("v2.img", &v2);
    let b2 = ws.bundle(
        "v2.airlock",
        "2.0.0",
        "test-device",
        &[("rootfs", "v2.img", "rootfs")],
        "",
    );
    dev.install(&b2);
    let slot_b = dev.slot("b");
    let out = dev.reboot(true);
    assert!(out.contains("rolled back"), "{out}");
    let st = dev.status();
    assert_eq!(st["booted"], "b");
    assert_eq!(st["primary"], "b");
    assert_eq!(st["committed"]["version"], "1.0.0");
    assert_eq!(st["last_result"]["result"], "rolled-back");
    assert!(st["update"].is_null());
    assert_eq!(dev.slot("b"), slot_b, "the active slot must not be touched");

    // Idempotent manual controls with nothing pending.
    assert!(dev.ok(&["commit"]).contains("nothing to commit"));
    assert!(dev.ok(&["rollback"]).contains("nothing to roll back"));
}

#[test]
fn operator_rollback_before_and_during_trial() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    let factory = dev.slot("a");
    ws.file("v1.img", &image_bytes(1 << 20, 1));
    let b1 = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );

    // Before the reboot: cancelling disarms the trial.
    dev.install(&b1);
    assert!(dev.ok(&["rollback"]).contains("cancelled"));
    let st = dev.status();
    assert!(st["pending_trial"].is_null());
    assert_eq!(st["last_result"]["result"], "cancelled");
    dev.reboot(false);
    assert_eq!(dev.status()["booted"], "a");
    assert_eq!(dev.slot("a"), factory);

    // Installing the same bundle twice: the second call says it waits for a reboot.
    dev.install(&b1);
    assert!(dev.install(&b1).contains("already installed"));
    let e = dev.fails(&["commit"]);
    assert!(e.contains("reboot into the new slot"), "{e}");
}

#[test]
fn bundle_with_rootfs_and_directory_slot_commits_together() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    ws.file("v1.img", &image_bytes(1 << 20, 1));
    // An app archive for the directory slot.
    ws.file("app.tar", &tar_archive(&[("bin/app", "hello")]));
    let b1 = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs"), ("app", "app.tar", "app")],
        "",
    );
    dev.install(&b1);
    assert!(
        !dev.dir.join("app/bin/app").exists(),
        "the app goes live with the new rootfs, at the trial boot"
    );
    dev.reboot(false);
    assert_eq!(
        std::fs::read(dev.dir.join("app/bin/app")).unwrap(),
        b"hello"
    );
    let st = dev.status();
    assert_eq!(st["committed"]["version"], "1.0.0");
    assert_eq!(st["directories"][0]["active"], "b");

    // Version 2 fails to boot: the app stays at version 1 with the rootfs.
    ws.file("app2.tar", &tar_archive(&[("bin/app", "hello 2")]));
    ws.file("v2.img", &image_bytes(1 << 20, 2));
    let payloads = [("rootfs", "v2.img", "rootfs"), ("app", "app2.tar", "app")];
    let b2 = ws.bundle("v2.airlock", "2.0.0", "test-device", &payloads, "");
    dev.install(&b2);
    dev.reboot(true);
    assert_eq!(
        std::fs::read(dev.dir.join("app/bin/app")).unwrap(),
        b"hello"
    );
    assert_eq!(dev.status()["directories"][0]["active"], "b");
}

#[test]
fn booting_a_slot_that_was_never_committed_is_an_error_not_a_quiet_success() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    // The committed slot is b, but the bootloader booted a with no update pending: what a GRUB
    // that cannot read its environment block does (it falls back to slot a).
    let env = dev.dir.join("boot/bootloader.env");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, text.replace("primary=a", "primary=b")).unwrap();

    let e = dev.fails(&["boot"]);
    assert!(
        e.contains("booted slot a, but the committed slot is b")
            && e.contains("never committed")
            && e.contains("grubenv"),
        "{e}"
    );
    let out = dev.output(&["status"]);
    assert!(!out.status.success(), "status must fail on the wrong slot");
    let text = output_text(&out);
    assert!(
        text.contains("booted        slot a (NOT COMMITTED")
            && text.contains("the committed slot is b"),
        "{text}"
    );
    let out = dev.output(&["status", "--json"]);
    assert!(!out.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON first");
    assert_eq!(json["booted_uncommitted"], true);
    assert_eq!(json["primary"], "b");
}

/// A kernel on the ESP as a file slot: each side is created on its first write, holds exactly
/// the payload, switches with the root filesystem and rolls back with it; an unchanged kernel
/// is copied from the other side's file rather than downloaded.
#[test]
fn kernel_file_slot_switches_and_rolls_back_with_the_rootfs() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "2MiB");
    let esp = dev.dir.join("esp");
    std::fs::create_dir_all(esp.join("a")).unwrap();
    std::fs::create_dir_all(esp.join("b")).unwrap();
    std::fs::write(esp.join("a/vmlinuz"), b"factory kernel").unwrap();
    dev.append_config(
        "\n[slots.kernel]\ntype = \"file\"\na = \"esp/a/vmlinuz\"\nb = \"esp/b/vmlinuz\"\n",
    );
    let kernel1 = image_bytes(300_000, 11);
    ws.file("k1", &kernel1);
    ws.file("v1.img", &image_bytes(1 << 20, 1));
    let payloads = [("rootfs", "v1.img", "rootfs"), ("kernel", "k1", "kernel")];
    let b1 = ws.bundle("v1.airlock", "1.0.0", "test-device", &payloads, "");
    dev.install(&b1);
    assert_eq!(std::fs::read(esp.join("b/vmlinuz")).unwrap(), kernel1);
    assert_eq!(
        std::fs::read(esp.join("a/vmlinuz")).unwrap(),
        b"factory kernel",
        "the running side's kernel is not touched"
    );
    dev.reboot(false);
    assert_eq!(dev.status()["committed"]["version"], "1.0.0");

    // Version 2, same kernel, into a, whose file is longer than the kernel and holds nothing of
    // it: the file ends up exactly the payload.
    std::fs::write(esp.join("a/vmlinuz"), vec![0xEE; 400_000]).unwrap();
    ws.file("v2.img", &image_bytes(1 << 20, 2));
    let payloads = [("rootfs", "v2.img", "rootfs"), ("kernel", "k1", "kernel")];
    let b2 = ws.bundle("v2.airlock", "2.0.0", "test-device", &payloads, "");
    // Over HTTP the unchanged kernel is copied from b's file, not downloaded.
    let server = airlock_testkit::FaultServer::start().unwrap();
    server.serve_file("/v2.airlock", &b2);
    let report = dev.install_json(&server.url("/v2.airlock"));
    assert_eq!(
        report["reused_bytes"].as_u64(),
        Some(kernel1.len() as u64),
        "{report}"
    );
    assert_eq!(std::fs::read(esp.join("a/vmlinuz")).unwrap(), kernel1);
    // It fails to boot: b, with its kernel, stays the committed side.
    dev.reboot(true);
    let st = dev.status();
    assert_eq!(st["committed"]["version"], "1.0.0");
    assert_eq!(st["booted"], "b");
    assert_eq!(std::fs::read(esp.join("b/vmlinuz")).unwrap(), kernel1);

    // A kernel slot whose directory is missing is refused before anything is written.
    dev.edit_config("a = \"esp/a/vmlinuz\"", "a = \"esp/gone/vmlinuz\"");
    let before = dev.slot("a");
    let e = dev.fails(&["install", b2.to_str().unwrap()]);
    assert!(
        e.contains("esp/gone") && e.contains("directory must exist"),
        "{e}"
    );
    assert_eq!(dev.slot("a"), before);
}
