//! Delta installs over HTTP: a device that runs v1 installs v2 by downloading the bundle's head
//! and only the chunks its active slot lacks, with bounded Range requests; everything it takes
//! from its own slot is verified against v2's signed index first. Also: the prediction of
//! `airlock bundle diff` against what a device really downloads, the scan when the device has
//! no record of its slot, a held chunk that rotted, a server that ignores Range, a connection
//! dropped mid-range and a process killed mid-install.

use std::os::unix::process::ExitStatusExt;

use airlock_testkit::{FaultServer, Faults};
use serde_json::Value;

use crate::support::*;

const MIB: usize = 1 << 20;

/// A device committed to v1 (installed from a file), v2 differing from v1 in a few places, and
/// a server publishing v2.
struct Fixture {
    ws: Workspace,
    dev: Device,
    v1_image: Vec<u8>,
    v2_image: Vec<u8>,
    v1: std::path::PathBuf,
    v2: std::path::PathBuf,
    server: FaultServer,
    url: String,
}

/// v1: 6 MiB of incompressible bytes. v2: the same with 200 KiB rewritten at 1 MiB and 64 KiB
/// inserted at 4 MiB (content after it shifts, as when a file grows in an image).
fn fixture(seed: u64) -> Fixture {
    let ws = Workspace::new();
    let dev = ws.device("dev", "8MiB");
    dev.fast_downloads("5s", 3);
    let v1_image = random_bytes(6 * MIB, seed);
    let mut v2_image = v1_image.clone();
    v2_image[MIB..MIB + 200 * 1024].copy_from_slice(&random_bytes(200 * 1024, seed + 1));
    let inserted = random_bytes(64 * 1024, seed + 2);
    v2_image.splice(4 * MIB..4 * MIB, inserted);
    ws.file("v1.img", &v1_image);
    ws.file("v2.img", &v2_image);
    let v1 = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    let v2 = ws.bundle(
        "v2.airlock",
        "2.0.0",
        "test-device",
        &[("rootfs", "v2.img", "rootfs")],
        "",
    );
    dev.install(&v1);
    assert!(dev.reboot(false).contains("committed"));
    let server = FaultServer::start().unwrap();
    server.serve_file("/v2.airlock", &v2);
    let url = server.url("/v2.airlock");
    Fixture {
        ws,
        dev,
        v1_image,
        v2_image,
        v1,
        v2,
        server,
        url,
    }
}

impl Fixture {
    fn bundle_len(&self) -> u64 {
        std::fs::metadata(&self.v2).unwrap().len()
    }

    /// Bytes the server sent, read by the device or not.
    fn sent(&self) -> u64 {
        self.server.requests().iter().map(|r| r.body_bytes).sum()
    }

    /// v2 landed in slot a (the inactive one after v1 went to b), and v1 in b is untouched.
    fn assert_v2_installed(&self, report: &Value) {
        assert_eq!(report["version"], "2.0.0", "{report}");
        assert_eq!(report["slot"], "a", "{report}");
        assert_prefix(&self.dev.slot_path("a"), &self.v2_image);
        assert_prefix(&self.dev.slot_path("b"), &self.v1_image);
        let st = self.dev.status();
        assert_eq!(st["update"]["phase"], "installed", "{st}");
    }

    /// `airlock bundle diff v1 v2 --json`.
    fn predicted(&self) -> Value {
        let out = ok(&[
            "bundle",
            "diff",
            self.v1.to_str().unwrap(),
            self.v2.to_str().unwrap(),
            "--json",
        ]);
        serde_json::from_str(&out).expect("bundle diff --json is JSON")
    }
}

#[test]
fn a_device_on_v1_downloads_only_what_v2_changed() {
    let f = fixture(1);
    let predicted = f.predicted();
    let report = f.dev.install_json(&f.url);
    f.assert_v2_installed(&report);

    let fetched = report["fetched_bytes"].as_u64().unwrap();
    let reused = report["reused_bytes"].as_u64().unwrap();
    let len = f.bundle_len();
    // 264 KiB of 6 MiB changed; with the chunks around each change, well under a quarter.
    assert!(fetched < len / 4, "fetched {fetched} of {len}: {report}");
    assert!(reused > 4 * MIB as u64, "{report}");
    // What the device says it fetched is what the server sent: bounded ranges, nothing in flight
    // thrown away.
    assert_eq!(f.sent(), fetched, "{report}");
    // The vendor's prediction is exact.
    assert_eq!(predicted["download"].as_u64(), Some(fetched), "{predicted}");
    assert_eq!(
        predicted["payloads"][0]["reused_bytes"].as_u64(),
        Some(reused),
        "{predicted}"
    );
    // A handful of requests: the first, then one per changed region and the end.
    let requests = f.server.requests();
    assert!(requests.len() <= 6, "{} requests", requests.len());
    assert!(
        requests
            .iter()
            .all(|r| r.status == 206 && r.range().is_some())
    );

    // status says how the slot got its content; the trial boot commits v2.
    let st = f.dev.status();
    assert_eq!(
        st["slots"]["a"]["download"]["fetched"].as_u64(),
        Some(fetched),
        "{st}"
    );
    assert_eq!(
        st["slots"]["a"]["download"]["reused"].as_u64(),
        Some(reused),
        "{st}"
    );
    let text = f.dev.ok(&["status"]);
    assert!(text.contains("reused"), "{text}");
    assert!(f.dev.reboot(false).contains("committed"));
    assert_eq!(f.dev.status()["committed"]["version"], "2.0.0");
}

#[test]
fn without_a_record_the_device_scans_its_slot_and_reuses_as_much() {
    let f = fixture(2);
    let records = f.dev.dir.join("data/slot-chunks");
    assert!(
        records.join("rootfs.b.idx").exists(),
        "the install of v1 should have recorded slot b's chunks"
    );
    std::fs::remove_dir_all(&records).unwrap();
    let report = f.dev.install_json(&f.url);
    f.assert_v2_installed(&report);
    // The scan cuts the whole slot, past the end of v1: only v1's last chunk comes out
    // different (it runs on into what follows), so at most one more chunk is downloaded.
    let fetched = report["fetched_bytes"].as_u64().unwrap();
    let predicted = f.predicted()["download"].as_u64().unwrap();
    assert!(
        fetched >= predicted && fetched <= predicted + 256 * 1024,
        "fetched {fetched}, predicted {predicted}: {report}"
    );
    assert!(records.join("rootfs.a.idx").exists());
}

#[test]
fn a_held_chunk_that_changed_is_downloaded_instead() {
    let f = fixture(3);
    // Bit rot in the active slot, in a region v2 shares with v1.
    let slot_b = f.dev.slot_path("b");
    let mut bytes = std::fs::read(&slot_b).unwrap();
    bytes[3 * MIB] ^= 0xff;
    std::fs::write(&slot_b, &bytes).unwrap();

    let report = f.dev.install_json(&f.url);
    assert_eq!(report["version"], "2.0.0", "{report}");
    assert_prefix(&f.dev.slot_path("a"), &f.v2_image);
    let fetched = report["fetched_bytes"].as_u64().unwrap();
    let predicted = f.predicted()["download"].as_u64().unwrap();
    assert!(
        fetched > predicted,
        "the rotten chunk must be downloaded: {report}"
    );
    assert!(fetched < f.bundle_len() / 2, "{report}");
    assert_eq!(f.sent(), fetched);
}

#[test]
fn a_server_ignoring_range_streams_the_whole_bundle() {
    let f = fixture(4);
    f.server.set_faults(Faults::none().ignore_range());
    let out = f.dev.output(&["install", "--json", &f.url]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ignores Range requests") && stderr.contains("whole bundle"),
        "the fallback should be reported:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    f.assert_v2_installed(&report);
    assert_eq!(report["reused_bytes"], 0, "{report}");
    assert_eq!(f.server.requests().len(), 1);
    assert!(report["fetched_bytes"].as_u64().unwrap() > f.bundle_len() - 1024);
}

#[test]
fn a_connection_dropped_mid_range_resumes_inside_it() {
    let f = fixture(5);
    // The first request (64 KiB) passes; the next one, a changed region, breaks off.
    f.server
        .set_faults(Faults::none().drop_after(100 * 1024).times(1));
    let report = f.dev.install_json(&f.url);
    f.assert_v2_installed(&report);
    let ranges: Vec<String> = f
        .server
        .requests()
        .iter()
        .filter_map(|r| r.range().map(str::to_string))
        .collect();
    // Some request was cut short and its remainder asked for with a bounded range.
    assert!(
        ranges.len() >= 3 && ranges.iter().all(|r| !r.ends_with('-')),
        "{ranges:?}"
    );
    assert_eq!(report["fetched_bytes"].as_u64(), Some(f.sent()), "{report}");
}

#[test]
fn killed_mid_delta_install_then_resumed() {
    let f = fixture(6);
    let out = f
        .dev
        .cmd(&["install", &f.url])
        .env("AIRLOCK_KILL_AT", "payload-half-written")
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{}",
        output_text(&out)
    );
    let st = f.dev.status();
    assert_eq!(st["update"]["phase"], "fetching", "{st}");
    assert_eq!(st["booted"], "b", "{st}");
    assert_prefix(&f.dev.slot_path("b"), &f.v1_image);

    let report = f.dev.install_json(&f.url);
    f.assert_v2_installed(&report);
    let resumed = report["resumed_bytes"].as_u64().unwrap();
    assert!(resumed > 2 * MIB as u64, "{report}");
    assert!(f.dev.reboot(false).contains("committed"));
    assert_eq!(f.dev.status()["committed"]["version"], "2.0.0");
    drop(f.ws);
}

#[test]
fn bundle_diff_explains_what_a_device_downloads() {
    let f = fixture(7);
    let text = ok(&[
        "bundle",
        "diff",
        f.v1.to_str().unwrap(),
        f.v2.to_str().unwrap(),
    ]);
    assert!(text.contains("a device running"), "{text}");
    assert!(text.contains("chunks reused"), "{text}");

    // Against itself: nothing but the head and framing.
    let same = ok(&[
        "bundle",
        "diff",
        f.v2.to_str().unwrap(),
        f.v2.to_str().unwrap(),
        "--json",
    ]);
    let same: Value = serde_json::from_str(&same).unwrap();
    assert_eq!(same["payloads"][0]["download"], 0, "{same}");
    assert!(same["download"].as_u64().unwrap() < 70 * 1024, "{same}");

    // A payload for a directory slot is downloaded whole.
    let whole = ok(&[
        "bundle",
        "diff",
        f.v1.to_str().unwrap(),
        f.v2.to_str().unwrap(),
        "--directory-slot",
        "rootfs",
        "--json",
    ]);
    let whole: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(whole["payloads"][0]["reused_bytes"], 0, "{whole}");
    assert!(
        whole["payloads"][0]["note"]
            .as_str()
            .unwrap()
            .contains("directory slot")
    );

    // Not a bundle: a clear error.
    let e = fails(&[
        "bundle",
        "diff",
        f.ws.path("v1.img").to_str().unwrap(),
        f.v2.to_str().unwrap(),
    ]);
    assert!(e.contains("v1.img"), "{e}");
}

/// An app archive holding `bin/app` with `content`.
fn app_archive(content: &[u8]) -> Vec<u8> {
    tar_archive(&[("bin/app", content)])
}

#[test]
fn a_directory_payload_next_to_the_rootfs_is_downloaded_whole() {
    let ws = Workspace::new();
    let dev = ws.device("dev", "8MiB");
    dev.fast_downloads("5s", 3);
    let v1_image = random_bytes(4 * MIB, 31);
    let mut v2_image = v1_image.clone();
    v2_image[2 * MIB..2 * MIB + 4096].copy_from_slice(&random_bytes(4096, 32));
    ws.file("v1.img", &v1_image);
    ws.file("v2.img", &v2_image);
    ws.file("app1.tar", &app_archive(b"app 1"));
    ws.file("app2.tar", &app_archive(&random_bytes(300 * 1024, 33)));
    let v1 = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs"), ("app", "app1.tar", "app")],
        "",
    );
    let v2 = ws.bundle(
        "v2.airlock",
        "2.0.0",
        "test-device",
        &[("rootfs", "v2.img", "rootfs"), ("app", "app2.tar", "app")],
        "",
    );
    dev.install(&v1);
    assert!(dev.reboot(false).contains("committed"));
    let server = FaultServer::start().unwrap();
    server.serve_file("/v2.airlock", &v2);

    let report = dev.install_json(&server.url("/v2.airlock"));
    assert_eq!(report["slot"], "a", "{report}");
    assert_prefix(&dev.slot_path("a"), &v2_image);
    let fetched = report["fetched_bytes"].as_u64().unwrap();
    let sent: u64 = server.requests().iter().map(|r| r.body_bytes).sum();
    assert_eq!(sent, fetched);
    let diff = ok(&[
        "bundle",
        "diff",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
        "--directory-slot",
        "app",
        "--json",
    ]);
    let diff: Value = serde_json::from_str(&diff).unwrap();
    assert_eq!(diff["download"].as_u64(), Some(fetched), "{diff}");
    // The app archive (300 KiB, incompressible) came whole; the rootfs change is one chunk or two.
    assert!(fetched > 300 * 1024 && fetched < 1024 * 1024, "{report}");

    assert!(dev.reboot(false).contains("committed"));
    assert_eq!(
        std::fs::read(dev.dir.join("app/bin/app")).unwrap(),
        random_bytes(300 * 1024, 33)
    );
    assert_eq!(dev.status()["committed"]["version"], "2.0.0");
}
