//! Bundles, configurations and slots that are wrong: each gets a clear error (exit 1, `error: `
//! naming what is wrong, no panic), the active slot stays byte-identical and `status --json`
//! tells the truth afterwards.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

/// The disk and input part of the fault-injection suite (see `fault_case`).
static INPUT: FaultGroup = FaultGroup {
    name: "disk and input faults",
    holds: "a clear error and the active slot untouched in each",
};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh device with 4 MiB slots; returns it with the factory content of its active slot a.
fn device(ws: &Workspace) -> (Device, Vec<u8>) {
    let dev = ws.device("dev", "4MiB");
    let factory = dev.slot("a");
    (dev, factory)
}

/// A one-payload rootfs bundle of a `len`-byte image.
fn rootfs_bundle(
    ws: &Workspace,
    out: &str,
    version: &str,
    device_type: &str,
    len: usize,
    extra: &str,
) -> (std::path::PathBuf, Vec<u8>) {
    let img = image_bytes(len, version.len() as u64 + len as u64);
    let name = format!("{out}.img");
    ws.file(&name, &img);
    (
        ws.bundle(
            out,
            version,
            device_type,
            &[("rootfs", &name, "rootfs")],
            extra,
        ),
        img,
    )
}

/// Installing `bundle` is refused before anything is written: the error names each of
/// `expected`, both slots are as they were and the journal did not move.
fn refused(dev: &Device, active: &str, content: &[u8], bundle: &Path, expected: &[&str]) -> String {
    let inactive = if active == "a" { "b" } else { "a" };
    let other_before = dev.slot(inactive);
    let before = dev.status();
    let e = dev.fails(&["install", s(bundle)]);
    for want in expected {
        assert!(e.contains(want), "the error should mention {want:?}:\n{e}");
    }
    let st = dev.assert_active_untouched(active, content);
    assert!(
        dev.slot(inactive) == other_before,
        "a refused bundle wrote the inactive slot"
    );
    assert!(st["update"].is_null(), "{st}");
    assert_eq!(
        st["last_result"], before["last_result"],
        "a refusal before any write changes no result"
    );
    assert_eq!(st["committed"], before["committed"]);
    e
}

#[test]
fn bundle_for_another_device_type_is_refused() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    let (b, _) = rootfs_bundle(&ws, "other.airlock", "1.0.0", "other-device", 1 << 20, "");
    refused(
        &dev,
        "a",
        &factory,
        &b,
        &["other-device", "test-device", "compatible"],
    );
    fault_case(&INPUT, "wrong device type", "refused before writing");
}

#[test]
fn expired_bundle_is_refused() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    let (b, _) = rootfs_bundle(
        &ws,
        "old.airlock",
        "1.0.0",
        "test-device",
        1 << 20,
        "expires = \"2020-01-01T00:00:00Z\"",
    );
    refused(&dev, "a", &factory, &b, &["expired", "2020-01-01"]);
    fault_case(&INPUT, "expired bundle", "refused before writing");
}

#[test]
fn bundle_signed_by_an_untrusted_key_is_refused() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    ok(&["key", "generate", "--out", s(&ws.path("rogue"))]);
    ws.file("v1.img", &image_bytes(1 << 20, 1));
    let spec = ws.file("rogue.toml", b"name = \"test-os\"\nversion = \"1.0.0\"\ncompatible = [\"test-device\"]\n[[payload]]\nname = \"rootfs\"\nfile = \"v1.img\"\nslot = \"rootfs\"\n");
    let b = ws.path("rogue.airlock");
    ok(&[
        "bundle",
        "create",
        s(&spec),
        "--key",
        s(&ws.path("rogue.key")),
        "-o",
        s(&b),
    ]);
    refused(
        &dev,
        "a",
        &factory,
        &b,
        &["0 valid signature(s) from trusted keys"],
    );
    fault_case(&INPUT, "untrusted key", "refused before writing");
}

#[test]
fn payload_for_a_slot_class_the_device_lacks_is_refused() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    ws.file("fw.img", &image_bytes(1 << 20, 1));
    let b = ws.bundle(
        "fw.airlock",
        "1.0.0",
        "test-device",
        &[("firmware", "fw.img", "modem")],
        "",
    );
    refused(
        &dev,
        "a",
        &factory,
        &b,
        &["\"modem\"", "app, rootfs", "[slots.modem]"],
    );
    fault_case(&INPUT, "unknown slot class", "refused before writing");
}

#[test]
fn payload_larger_than_the_slot_is_refused() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "1MiB");
    let factory = dev.slot("a");
    let (b, _) = rootfs_bundle(&ws, "big.airlock", "1.0.0", "test-device", 2 << 20, "");
    refused(
        &dev,
        "a",
        &factory,
        &b,
        &["2097152 bytes", "holds only 1048576", "rootfs.b"],
    );
    fault_case(&INPUT, "slot too small", "refused before writing");
}

#[test]
fn missing_slot_device_is_refused() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    dev.edit_config(
        "b = \"slots/rootfs.b\"",
        "b = \"/dev/airlock-e2e-no-such-slot\"",
    );
    let (b, _) = rootfs_bundle(&ws, "v1.airlock", "1.0.0", "test-device", 1 << 20, "");
    let before = dev.status();
    let e = dev.fails(&["install", s(&b)]);
    assert!(
        e.contains("/dev/airlock-e2e-no-such-slot") && e.contains("does not exist"),
        "{e}"
    );
    let st = dev.assert_active_untouched("a", &factory);
    assert!(
        st["update"].is_null() && st["last_result"] == before["last_result"],
        "{st}"
    );
    fault_case(&INPUT, "missing slot device", "refused before writing");
}

#[test]
fn downgrade_is_refused_unless_allowed() {
    let ws = Workspace::new();
    let (dev, _) = device(&ws);
    let (b2, v2) = rootfs_bundle(&ws, "v2.airlock", "2.0.0", "test-device", 1 << 20, "");
    let (b1, v1) = rootfs_bundle(&ws, "v1.airlock", "1.0.0", "test-device", 1 << 20, "");
    dev.install(&b2);
    dev.reboot(false);
    assert_eq!(dev.status()["committed"]["version"], "2.0.0");
    let running = dev.slot("b");
    assert_prefix(&dev.slot_path("b"), &v2);

    refused(
        &dev,
        "b",
        &running,
        &b1,
        &[
            "1.0.0",
            "older than the installed version 2.0.0",
            "allow_downgrade = true",
        ],
    );
    fault_case(&INPUT, "downgrade", "refused before writing");

    dev.edit_config("threshold = 1\n", "threshold = 1\nallow_downgrade = true\n");
    let out = dev.install(&b1);
    assert!(out.contains("into slot a"), "{out}");
    assert!(
        dev.slot("b") == running,
        "the active slot must not be touched"
    );
    dev.reboot(false);
    let st = dev.status();
    assert_eq!(st["booted"], "a");
    assert_eq!(st["committed"]["version"], "1.0.0");
    assert_eq!(st["last_result"]["result"], "committed");
    assert_prefix(&dev.slot_path("a"), &v1);
}

#[test]
fn unreadable_configuration_names_the_file() {
    let ws = Workspace::new();
    let (dev, _) = device(&ws);
    let (b, _) = rootfs_bundle(&ws, "v1.airlock", "1.0.0", "test-device", 1 << 20, "");

    let missing = ws.path("nowhere/airlock.toml");
    for cmd in [
        &["install", s(&b)][..],
        &["status", "--json"],
        &["boot"],
        &["commit"],
        &["rollback"],
    ] {
        let mut args = vec!["--config", s(&missing)];
        args.extend_from_slice(cmd);
        let e = fails(&args);
        assert!(
            e.contains(s(&missing)) && e.contains("cannot read the configuration"),
            "{e}"
        );
    }
    let mut cases = vec!["missing configuration file"];

    // A directory where the file should be.
    let e = fails(&["--config", s(&dev.dir), "install", s(&b)]);
    assert!(
        e.contains(s(&dev.dir)) && e.contains("cannot read the configuration"),
        "{e}"
    );
    cases.push("a directory as the configuration");

    // Not text at all.
    let garbage = ws.file("garbage.toml", &random_bytes(4096, 7));
    let e = fails(&["--config", s(&garbage), "install", s(&b)]);
    assert!(e.contains(s(&garbage)), "{e}");
    cases.push("binary garbage as the configuration");

    // Not readable by this user; root reads anything, so only without root.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!(
            "skipping the mode-000 configuration case: running as root, which may read any file"
        );
    } else {
        use std::os::unix::fs::PermissionsExt;
        let locked = ws.file("locked.toml", &std::fs::read(dev.config_path()).unwrap());
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let e = fails(&["--config", s(&locked), "install", s(&b)]);
        assert!(
            e.contains(s(&locked)) && e.contains("ermission denied"),
            "{e}"
        );
        cases.push("unreadable configuration (mode 000)");
    }

    // Nothing happened to the device.
    let st = dev.status();
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    for case in cases {
        fault_case(&INPUT, case, "refused before writing");
    }
}

#[test]
fn unknown_configuration_key_names_file_line_and_key() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    let (b, _) = rootfs_bundle(&ws, "v1.airlock", "1.0.0", "test-device", 1 << 20, "");
    dev.edit_config(
        "data_dir = \"data\"\n",
        "data_dir = \"data\"\ncolour = \"blue\"\n",
    );
    let text = std::fs::read_to_string(dev.config_path()).unwrap();
    let line = text.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    let config = dev.config_path();
    for cmd in [&["install", s(&b)][..], &["status"]] {
        let mut args = vec!["--config", s(&config)];
        args.extend_from_slice(cmd);
        let e = fails(&args);
        assert!(
            e.contains(s(&dev.config_path())),
            "the error should name the file:\n{e}"
        );
        assert!(
            e.contains(&format!("line {line}")),
            "the error should name line {line}:\n{e}"
        );
        assert!(e.contains("colour"), "the error should name the key:\n{e}");
    }
    fault_case(
        &INPUT,
        "unknown configuration key",
        "refused before writing",
    );
    // A misspelt download setting, too.
    dev.edit_config("colour = \"blue\"\n", "");
    dev.append_config("[download]\nread_timout = \"1s\"\n");
    let e = dev.fails(&["install", s(&b)]);
    assert!(
        e.contains("read_timout") && e.contains(s(&dev.config_path())),
        "{e}"
    );
    dev.edit_config("read_timout", "read_timeout");
    dev.install(&b);
    assert_eq!(dev.slot("a"), factory);
    fault_case(
        &INPUT,
        "misspelt configuration key",
        "refused before writing",
    );
}

#[test]
fn slot_on_a_character_device_is_refused() {
    // /dev/full as a raw slot: raw slots are regular files or block devices, so it is refused
    // by name before anything is written (the next two tests fail writes half-way).
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    dev.edit_config("b = \"slots/rootfs.b\"", "b = \"/dev/full\"");
    let (b, _) = rootfs_bundle(&ws, "v1.airlock", "1.0.0", "test-device", 1 << 20, "");
    let e = dev.fails(&["install", s(&b)]);
    assert!(
        e.contains("/dev/full") && e.contains("character device"),
        "{e}"
    );
    let st = dev.assert_active_untouched("a", &factory);
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    fault_case(
        &INPUT,
        "a character device as the slot",
        "refused before writing",
    );
}

/// After a write failure in the middle of the payload: the install failed cleanly, the error
/// and the recorded reason name the slot and what went wrong (`any` of these phrases), the
/// active slot is intact and the next boot has nothing to settle.
fn assert_failed_mid_write(
    dev: &Device,
    factory: &[u8],
    out: &std::process::Output,
    slot: &Path,
    any: &[&str],
) {
    let e = expect_clean_failure(out, "install onto a full slot");
    let names_cause = |text: &str| any.iter().any(|p| text.contains(p));
    assert!(e.contains(s(slot)) && names_cause(&e), "{e}");
    let st = dev.assert_active_untouched("a", factory);
    assert!(st["update"].is_null(), "{st}");
    assert_eq!(st["last_result"]["result"], "failed", "{st}");
    let reason = st["last_result"]["reason"].as_str().unwrap();
    assert!(reason.contains(s(slot)) && names_cause(reason), "{reason}");
    assert!(
        st["slots"]["b"].is_null(),
        "a partly written slot must not be recorded as holding the bundle: {st}"
    );
    let out = dev.output(&["boot"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(dev.status()["booted"], "a");
}

#[test]
fn write_failure_mid_payload_via_file_size_limit() {
    // The variant without root: RLIMIT_FSIZE makes every write past 512 KiB of the slot file
    // fail (EFBIG), half-way through the payload, as a filling disk would.
    use std::os::unix::process::CommandExt;
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    let img = random_bytes(2 << 20, 11);
    ws.file("v1.img", &img);
    let b = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    let mut cmd = dev.cmd(&["install", s(&b)]);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 512 << 10,
                rlim_max: 512 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_failed_mid_write(
        &dev,
        &factory,
        &out,
        &dev.slot_path("b"),
        &["File too large", "no space left"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at byte 524288"),
        "{}",
        output_text(&out)
    );

    let out = dev.install(&b);
    assert!(out.contains("into slot b"), "{out}");
    assert_prefix(&dev.slot_path("b"), &img);
    dev.reboot(false);
    assert_eq!(dev.status()["committed"]["version"], "1.0.0");
    fault_case(
        &INPUT,
        "write error half-way (RLIMIT_FSIZE)",
        "failed mid-write",
    );
}

/// Unmounts on drop, so that a failing test leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_on_a_tiny_tmpfs() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "skipping full_disk_on_a_tiny_tmpfs: mounting a tmpfs needs root (write_failure_mid_payload_via_file_size_limit covers a failing write without it)"
        );
        return;
    }
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    let mnt = ws.path("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&mnt)])
        .output()
        .unwrap();
    if !mounted.status.success() {
        eprintln!(
            "skipping full_disk_on_a_tiny_tmpfs: cannot mount a tmpfs here: {}",
            String::from_utf8_lossy(&mounted.stderr).trim()
        );
        return;
    }
    let guard = Mount(mnt.clone());
    // A sparse 4 MiB slot file on a 1 MiB filesystem: it looks large enough, writing fills it.
    let slot = mnt.join("rootfs.b");
    std::fs::File::create(&slot)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    dev.edit_config(
        "b = \"slots/rootfs.b\"",
        &format!("b = \"{}\"", slot.display()),
    );
    let img = random_bytes(2 << 20, 12);
    ws.file("v1.img", &img);
    let b = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    let out = dev.output(&["install", s(&b)]);
    assert_failed_mid_write(&dev, &factory, &out, &slot, &["no space left"]);

    // Back on a real slot, the same bundle installs.
    drop(guard);
    dev.edit_config(
        &format!("b = \"{}\"", slot.display()),
        "b = \"slots/rootfs.b\"",
    );
    dev.install(&b);
    assert_prefix(&dev.slot_path("b"), &img);
    fault_case(
        &INPUT,
        "disk full half-way (1 MiB tmpfs)",
        "failed mid-write",
    );
}

/// Flips one bit in the middle of a bundle file (inside the payload chunks).
fn corrupt_copy(ws: &Workspace, bundle: &Path, out: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(bundle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    ws.file(out, &bytes)
}

#[test]
fn corrupt_chunk_fails_the_install_and_a_good_one_follows() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    let img = random_bytes(2 << 20, 3);
    ws.file("v1.img", &img);
    let good = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    let bad = corrupt_copy(&ws, &good, "v1-corrupt.airlock");
    let slot_b = dev.slot("b");

    let e = dev.fails(&["install", s(&bad)]);
    assert!(
        e.contains("payload rootfs, chunk") && e.contains("altered or corrupted"),
        "{e}"
    );
    let st = dev.assert_active_untouched("a", &factory);
    assert!(st["update"].is_null(), "{st}");
    assert_eq!(st["last_result"]["result"], "failed", "{st}");
    assert_eq!(st["last_result"]["release"]["version"], "1.0.0", "{st}");
    let reason = st["last_result"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("chunk") && reason.contains("corrupted"),
        "{reason}"
    );
    assert_nothing_unverified(&dev.slot("b"), &slot_b, &img, bad_chunk_start(&e));
    let human = dev.ok(&["status"]);
    assert!(
        human.contains("last result   failed test-os 1.0.0"),
        "{human}"
    );

    // `airlock boot` has nothing to settle; the good bundle installs and commits.
    dev.reboot(false);
    assert_eq!(dev.status()["booted"], "a");
    dev.install(&good);
    dev.reboot(false);
    let st = dev.status();
    assert_eq!(st["booted"], "b");
    assert_eq!(st["last_result"]["result"], "committed");
    assert_prefix(&dev.slot_path("b"), &img);
    assert_eq!(dev.slot("a"), factory);
    fault_case(&INPUT, "corrupt chunk", "failed at the bad chunk");
}

#[test]
fn garbage_empty_and_truncated_bundles() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);

    let garbage = ws.file("garbage.airlock", &random_bytes(100_000, 5));
    let e = dev.fails(&["install", s(&garbage)]);
    assert!(
        e.contains("corrupt") || e.contains("not an Airlock bundle"),
        "{e}"
    );
    let html = ws.file(
        "page.airlock",
        b"<html><body>502 Bad Gateway</body></html>\n",
    );
    let e = dev.fails(&["install", s(&html)]);
    assert!(e.contains("bundle"), "{e}");
    let empty = ws.file("empty.airlock", b"");
    let e = dev.fails(&["install", s(&empty)]);
    assert!(e.contains("empty"), "{e}");
    let st = dev.assert_active_untouched("a", &factory);
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    for case in [
        "random bytes as a bundle",
        "an HTML page as a bundle",
        "empty bundle",
    ] {
        fault_case(&INPUT, case, "refused before writing");
    }

    // Cut in the middle of the payload: the install is interrupted, not failed, and the
    // complete file later continues it.
    let img = random_bytes(2 << 20, 6);
    ws.file("v1.img", &img);
    let full = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    let bytes = std::fs::read(&full).unwrap();
    let cut = ws.path("cut.airlock");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let e = dev.fails(&["install", s(&cut)]);
    assert!(e.contains("ends early") && e.contains("truncated"), "{e}");
    let st = dev.assert_active_untouched("a", &factory);
    assert_eq!(st["update"]["phase"], "fetching", "{st}");
    assert!(st["last_result"].is_null(), "{st}");
    std::fs::write(&cut, &bytes).unwrap();
    let report: Value = dev.install_json(s(&cut));
    assert_eq!(report["version"], "1.0.0");
    assert_prefix(&dev.slot_path("b"), &img);
    assert_eq!(dev.slot("a"), factory);
    fault_case(
        &INPUT,
        "bundle truncated mid-payload",
        "interrupted, then resumed",
    );
}

/// A tar with one regular file whose name is written as given (the tar crate refuses to
/// build such names itself).
fn tar_with_raw_name(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append(&h, data).unwrap();
    tar.into_inner().unwrap()
}

#[test]
fn directory_slot_refuses_entries_escaping_it() {
    let ws = Workspace::new();
    let (dev, factory) = device(&ws);
    ws.file("good.tar", &tar_archive(&[("bin/app", "hello")]));
    let b1 = ws.bundle(
        "app1.airlock",
        "1.0.0",
        "test-device",
        &[("app", "good.tar", "app")],
        "",
    );
    assert!(dev.install(&b1).contains("no reboot needed"));
    let app_a = std::fs::read(dev.dir.join("app.b/bin/app")).unwrap();
    assert_eq!(app_a, b"hello");

    let outside = ws.path("abs-evil");
    let cases: [(&str, Vec<u8>); 2] = [
        ("../evil", b"../evil".to_vec()),
        ("absolute", outside.as_os_str().as_encoded_bytes().to_vec()),
    ];
    for (i, (what, name)) in cases.iter().enumerate() {
        let file = format!("evil{i}.tar");
        ws.file(&file, &tar_with_raw_name(name, b"pwned"));
        let b = ws.bundle(
            &format!("evil{i}.airlock"),
            &format!("2.0.{i}"),
            "test-device",
            &[("app", &file, "app")],
            "",
        );
        let e = dev.fails(&["install", s(&b)]);
        assert!(
            e.contains("refused") && e.contains(&*String::from_utf8_lossy(name)),
            "{what}: {e}"
        );
        assert!(
            !dev.dir.join("evil").exists() && !dev.dir.join("app.b/../evil").exists(),
            "{what}: written outside the slot"
        );
        assert!(!outside.exists(), "{what}: written at the absolute path");
        let st = dev.status();
        assert_eq!(st["directories"][0]["active"], "b", "{what}: {st}");
        assert!(st["update"].is_null(), "{what}: {st}");
        assert_eq!(st["last_result"]["result"], "failed", "{what}: {st}");
        assert_eq!(st["committed"]["version"], "1.0.0", "{what}: {st}");
        assert_eq!(
            std::fs::read(dev.dir.join("app/bin/app")).unwrap(),
            b"hello",
            "{what}: the active side changed"
        );
        fault_case(
            &INPUT,
            &format!("archive entry escaping a directory slot ({what})"),
            "failed at the bad entry",
        );
    }
    assert_eq!(dev.slot("a"), factory);
    assert!(!ws.dir.path().join("evil").exists());
}
