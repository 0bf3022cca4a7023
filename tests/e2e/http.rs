//! Installing over HTTP from a FaultServer that misbehaves on demand: dropped connections,
//! stalls, 5xx, missing files, no Range support, corrupt bytes, lying lengths, and a process
//! killed in the middle of a fetch. Whatever happens, the active slot stays byte-identical and
//! `status --json` tells the truth.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use airlock_testkit::{FaultServer, Faults};
use serde_json::Value;

use crate::support::*;

/// The network part of the fault-injection suite (see `fault_case`).
static NETWORK: FaultGroup = FaultGroup {
    name: "network faults",
    holds: "active slot untouched in each",
};

/// A device with 4 MiB slots and fast download settings, a 2 MiB incompressible image, its
/// bundle, and a server publishing it.
struct Fixture {
    /// Holds the temporary folder of the device and the bundle.
    _ws: Workspace,
    dev: Device,
    factory: Vec<u8>,
    image: Vec<u8>,
    /// The bundle's bytes as published.
    bundle: Vec<u8>,
    server: FaultServer,
    url: String,
}

fn fixture(seed: u64, read_timeout: &str) -> Fixture {
    let ws = Workspace::new();
    let dev = ws.device("dev", "4MiB");
    dev.fast_downloads(read_timeout, 3);
    // These tests pin the plain path: one open-ended request, resumed with Range after a
    // fault. tests/e2e/delta.rs puts the ranged requests of a delta install through the same.
    dev.append_config("delta = false\n");
    let factory = dev.slot("a");
    let image = random_bytes(2 << 20, seed);
    ws.file("v1.img", &image);
    let path = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs")],
        "",
    );
    let bundle = std::fs::read(&path).unwrap();
    let server = FaultServer::start().unwrap();
    server.serve_bytes("/v1.airlock", bundle.clone());
    let url = server.url("/v1.airlock");
    Fixture {
        _ws: ws,
        dev,
        factory,
        image,
        bundle,
        server,
        url,
    }
}

impl Fixture {
    fn len(&self) -> u64 {
        self.bundle.len() as u64
    }

    /// The install reached `installed`: slot b holds the image, slot a is untouched.
    fn assert_installed(&self, report: &Value) {
        assert_eq!(report["version"], "1.0.0", "{report}");
        assert_eq!(report["slot"], "b", "{report}");
        assert_prefix(&self.dev.slot_path("b"), &self.image);
        assert!(
            self.dev.slot("a") == self.factory,
            "the active slot must not be touched"
        );
        let st = self.dev.status();
        assert_eq!(st["update"]["phase"], "installed", "{st}");
        assert_eq!(st["pending_trial"], "b", "{st}");
    }

    /// A failed or interrupted install left slot a active and intact; returns the status.
    fn assert_untouched(&self) -> Value {
        self.dev.assert_active_untouched("a", &self.factory)
    }

    /// The Range headers the server saw, in order.
    fn ranges(&self) -> Vec<Option<String>> {
        self.server
            .requests()
            .iter()
            .map(|r| r.range().map(str::to_string))
            .collect()
    }

    /// The report says the whole bundle came over once: not less (the closing end-of-archive
    /// block is not read), not more.
    fn assert_whole_bundle_once(&self, report: &Value) {
        let transferred = report["fetched_bytes"].as_u64().unwrap();
        assert!(
            transferred > self.len() - 1024 && transferred <= self.len(),
            "transferred {transferred} of {}: {report}",
            self.len()
        );
    }

    fn statuses(&self) -> Vec<u16> {
        self.server.requests().iter().map(|r| r.status).collect()
    }
}

#[test]
fn plain_install_over_http() {
    let f = fixture(1, "5s");
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    assert_eq!(report["resumed_bytes"], 0);
    f.assert_whole_bundle_once(&report);
    assert_eq!(f.ranges(), [None]);
    assert!(f.dev.reboot(false).contains("committed"));
    assert_eq!(f.dev.status()["committed"]["version"], "1.0.0");
}

#[test]
fn dropped_connection_resumes_with_range() {
    let f = fixture(2, "5s");
    let at = f.len() / 2;
    f.server.set_faults(Faults::none().drop_after(at).times(1));
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    assert_eq!(f.ranges(), [None, Some(format!("bytes={at}-"))]);
    assert_eq!(f.statuses(), [200, 206]);
    f.assert_whole_bundle_once(&report);
    fault_case(&NETWORK, "dropped connection", "installed");
}

#[test]
fn stall_is_resumed_after_the_read_timeout() {
    let f = fixture(3, "300ms");
    let at = f.len() / 3;
    f.server.set_faults(
        Faults::none()
            .stall_after(at, Duration::from_secs(60))
            .times(1),
    );
    let started = Instant::now();
    let report = f.dev.install_json(&f.url);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a stall must not wait for the server"
    );
    f.assert_installed(&report);
    assert_eq!(f.ranges(), [None, Some(format!("bytes={at}-"))]);
    fault_case(&NETWORK, "stall", "installed");
}

#[test]
fn service_unavailable_twice_then_ok() {
    let f = fixture(4, "5s");
    f.server.set_faults(Faults::none().status(503).times(2));
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    assert_eq!(f.statuses(), [503, 503, 200]);
    fault_case(&NETWORK, "503 twice", "installed");
}

#[test]
fn persistent_server_error_gives_up_and_a_later_install_resumes() {
    // At the first request: nothing is journaled, nothing written.
    let f = fixture(5, "2s");
    f.server.set_faults(Faults::none().status(500));
    let e = f.dev.fails(&["install", &f.url]);
    assert!(
        e.contains(&f.url) && e.contains("HTTP 500") && e.contains("4 attempts"),
        "{e}"
    );
    assert_eq!(f.statuses(), [500; 4], "1 attempt + 3 retries");
    let st = f.assert_untouched();
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    fault_case(&NETWORK, "persistent 500", "refused before writing");

    // In the middle of the body: the transfer stalls, then the server answers 500 to every
    // resume. The install stops, resumable; the journal says it is being fetched.
    f.server.clear_requests();
    let at = f.len() * 3 / 4;
    f.server.set_faults(
        Faults::none()
            .stall_after(at, Duration::from_secs(60))
            .times(1),
    );
    let child = f
        .dev
        .cmd(&["install", &f.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.server.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the install never reached the server"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // The first response is under way (its faults were fixed when it started); from now on
    // every request gets a 500. The read timeout (2s) leaves ample time to switch.
    f.server.set_faults(Faults::none().status(500));
    let out = child.wait_with_output().unwrap();
    let e = expect_clean_failure(&out, "install against a failing server");
    assert!(
        e.contains(&f.url) && e.contains("HTTP 500") && e.contains(&format!("at byte {at}")),
        "{e}"
    );
    assert_eq!(
        f.ranges()[1..],
        vec![Some(format!("bytes={at}-")); 3],
        "each retry resumes at the same byte"
    );
    let st = f.assert_untouched();
    assert_eq!(st["update"]["phase"], "fetching", "{st}");
    assert_eq!(st["update"]["source"], f.url.as_str(), "{st}");
    assert!(
        st["last_result"].is_null(),
        "an interrupted download is not a failed update: {st}"
    );

    // The server recovers: the same install continues after what is in the slot.
    f.server.clear_faults();
    f.server.clear_requests();
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    let resumed = report["resumed_bytes"].as_u64().unwrap();
    let transferred = report["fetched_bytes"].as_u64().unwrap();
    // Every chunk verified before the stall was kept: at most the chunk cut by the stall
    // (up to 256 KiB) and the bundle's head separate `resumed` from `at`.
    assert!(
        resumed + 400_000 > at,
        "resumed {resumed} bytes, the stall was at byte {at}: {report}"
    );
    assert!(transferred < f.len() - resumed + 100_000, "{report}");
    assert!(
        f.ranges()[1]
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes=")),
        "{:?}",
        f.ranges()
    );
    fault_case(&NETWORK, "500 to every resume", "interrupted, then resumed");
}

#[test]
fn not_found_fails_at_once() {
    let f = fixture(6, "5s");
    let url = f.server.url("/missing.airlock");
    let e = f.dev.fails(&["install", &url]);
    assert!(e.contains(&url) && e.contains("404 Not Found"), "{e}");
    assert_eq!(f.statuses(), [404], "a 404 is not retried");
    let st = f.assert_untouched();
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    fault_case(&NETWORK, "404", "refused before writing");
}

#[test]
fn server_ignoring_range_falls_back_to_reading_from_the_start() {
    let f = fixture(7, "5s");
    let at = f.len() / 2;
    f.server
        .set_faults(Faults::none().ignore_range().drop_after(at).times(1));
    let out = f.dev.output(&["install", "--json", &f.url]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ignores Range requests") && stderr.contains(&f.url),
        "the fallback should be reported:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    f.assert_installed(&report);
    assert_eq!(f.ranges(), [None, Some(format!("bytes={at}-"))]);
    assert_eq!(f.statuses(), [200, 200]);
    let transferred = report["fetched_bytes"].as_u64().unwrap();
    assert!(
        transferred > f.len() + at - 1024 && transferred <= f.len() + at,
        "the resumed request reads from byte 0 again: {report}"
    );
    fault_case(&NETWORK, "server ignoring Range", "installed");
}

#[test]
fn corrupt_bytes_on_the_wire_are_refused() {
    let f = fixture(8, "5s");
    let slot_b = f.dev.slot("b");

    // In the manifest: the signature check refuses the bundle before anything else.
    f.server.set_faults(Faults::none().corrupt_at(600));
    let e = f.dev.fails(&["install", &f.url]);
    assert!(e.contains("manifest") || e.contains("signature"), "{e}");
    let st = f.assert_untouched();
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    assert!(f.dev.slot("b") == slot_b);
    fault_case(
        &NETWORK,
        "corrupt byte in the manifest",
        "refused before writing",
    );

    // In a chunk: the chunk check refuses it; only verified chunks before it reached slot b.
    f.server.set_faults(Faults::none().corrupt_at(f.len() / 2));
    let e = f.dev.fails(&["install", &f.url]);
    assert!(
        e.contains("payload rootfs, chunk") && e.contains("altered or corrupted"),
        "{e}"
    );
    let st = f.assert_untouched();
    assert!(st["update"].is_null(), "{st}");
    assert_eq!(st["last_result"]["result"], "failed", "{st}");
    assert!(
        st["last_result"]["reason"]
            .as_str()
            .unwrap()
            .contains("altered or corrupted"),
        "{st}"
    );
    assert_nothing_unverified(&f.dev.slot("b"), &slot_b, &f.image, bad_chunk_start(&e));
    fault_case(
        &NETWORK,
        "corrupt byte in a chunk",
        "failed at the bad chunk",
    );

    f.server.clear_faults();
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
}

#[test]
fn wrong_content_length() {
    // Too short: the bundle ends early; the install is interrupted (not failed) and resumes
    // from the honest server.
    let f = fixture(9, "5s");
    f.server
        .set_faults(Faults::none().announce_length(f.len() * 2 / 3));
    let e = f.dev.fails(&["install", &f.url]);
    assert!(e.contains("ends early"), "{e}");
    let st = f.assert_untouched();
    assert_eq!(st["update"]["phase"], "fetching", "{st}");
    assert!(st["last_result"].is_null(), "{st}");
    f.server.clear_faults();
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    fault_case(
        &NETWORK,
        "Content-Length too short",
        "interrupted, then resumed",
    );

    // Too long: every byte the bundle has arrives and is verified; the claimed excess is never
    // needed, so the install completes with the right content.
    let f = fixture(10, "5s");
    f.server
        .set_faults(Faults::none().announce_length(f.len() + 100_000));
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    fault_case(&NETWORK, "Content-Length too long", "installed");
}

#[test]
fn server_returning_garbage() {
    let f = fixture(11, "5s");
    let html =
        b"<html><head><title>Captive portal</title></head><body>Log in first</body></html>\n"
            .repeat(20);
    f.server.serve_bytes("/portal.airlock", html);
    let e = f.dev.fails(&["install", &f.server.url("/portal.airlock")]);
    assert!(
        e.contains("corrupt") || e.contains("not an Airlock bundle"),
        "{e}"
    );
    f.server
        .serve_bytes("/noise.airlock", random_bytes(300_000, 1));
    let e = f.dev.fails(&["install", &f.server.url("/noise.airlock")]);
    assert!(
        e.contains("corrupt") || e.contains("not an Airlock bundle"),
        "{e}"
    );
    let st = f.assert_untouched();
    assert!(
        st["update"].is_null() && st["last_result"].is_null(),
        "{st}"
    );
    fault_case(
        &NETWORK,
        "an HTML page instead of a bundle",
        "refused before writing",
    );
    fault_case(
        &NETWORK,
        "random bytes instead of a bundle",
        "refused before writing",
    );
}

#[test]
fn killed_mid_fetch_then_install_again_resumes() {
    let f = fixture(12, "5s");
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
    let st = f.assert_untouched();
    assert_eq!(st["update"]["phase"], "fetching", "{st}");
    assert!(
        st["slots"]["b"].is_null(),
        "a half-written slot is recorded as unknown: {st}"
    );

    f.server.clear_requests();
    let report = f.dev.install_json(&f.url);
    f.assert_installed(&report);
    let resumed = report["resumed_bytes"].as_u64().unwrap();
    let transferred = report["fetched_bytes"].as_u64().unwrap();
    assert!(
        resumed > 0,
        "the second install started from zero: {report}"
    );
    assert!(
        transferred < f.len() * 3 / 4,
        "transferred {transferred} of {} bytes: {report}",
        f.len()
    );
    let ranges = f.ranges();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let from: u64 = ranges[1]
        .as_deref()
        .unwrap()
        .strip_prefix("bytes=")
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > f.len() / 4, "resumed at byte {from} of {}", f.len());
    assert!(f.dev.reboot(false).contains("committed"));
    let st = f.dev.status();
    assert_eq!(st["committed"]["version"], "1.0.0");
    assert_eq!(st["booted"], "b");
    fault_case(
        &NETWORK,
        "process killed mid-fetch",
        "interrupted, then resumed",
    );
}
