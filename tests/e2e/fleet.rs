//! The fleet end to end: `airlock-server` on loopback with its SQLite database, and twenty
//! simulated devices, each running the real `airlock daemon` against it. An operator (the test,
//! through `airlock-server`'s CLI) admits a device, makes a dynamic group, uploads a bundle and
//! runs a campaign of three phases. The devices of phase 2 whose health check fails roll back;
//! the error threshold pauses the campaign; the operator resumes it and phase 3 completes. In the
//! end every device's record on the server agrees with the device's own `airlock status`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_testkit::FaultServer;
use serde_json::Value;

use super::support::*;

const DEVICES: usize = 20;

/// The `airlock-server` binary `cargo test --workspace` builds beside `airlock`.
fn server_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_airlock")).with_file_name("airlock-server");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p airlock-server` (scripts/test does)",
        path.display()
    );
    path
}

/// A child process killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server on loopback and the operator's CLI pointed at it.
pub(crate) struct Fleet {
    pub(crate) url: String,
    token_file: PathBuf,
    _server: Running,
}

impl Fleet {
    pub(crate) fn start(ws: &Workspace) -> Self {
        let data = ws.path("server");
        let log = std::fs::File::create(ws.path("server.log")).unwrap();
        let mut child = Command::new(server_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--poll-interval",
                "00:00:01",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--trust-key")
            .arg(ws.public_key())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("airlock-server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("airlock-server printed its address")
                .unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().trim_end_matches('/').to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            url,
            token_file: data.join("admin-token"),
            _server: Running(child),
        }
    }

    /// Runs `airlock-server ARGS --server URL --token-file F`; expects success.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(server_binary())
            .args(args)
            .arg("--server")
            .arg(&self.url)
            .arg("--token-file")
            .arg(&self.token_file)
            .output()
            .expect("airlock-server runs");
        assert!(
            out.status.success(),
            "airlock-server {args:?} failed:\n{}",
            output_text(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.cli(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} --json: {e}:\n{text}"))
    }

    pub(crate) fn device(&self, id: &str) -> Value {
        self.json(&["device", "show", id])
    }

    /// The device's record, or `None` while the server has never heard of it.
    fn try_device(&self, id: &str) -> Option<Value> {
        let out = Command::new(server_binary())
            .args([
                "device",
                "show",
                id,
                "--json",
                "--server",
                &self.url,
                "--token-file",
            ])
            .arg(&self.token_file)
            .output()
            .expect("airlock-server runs");
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("device show --json is JSON"))
    }
}

/// Polls `probe` every 200 ms until it returns `Some`, for at most `secs` seconds.
pub(crate) fn wait_for<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One device's health URL answers from a file the test rewrites.
fn set_health(dir: &Path, id: &str, ok: bool) {
    let body = if ok {
        r#"{"status":"ok"}"#
    } else {
        r#"{"status":"error","reason":"cannot open the database"}"#
    };
    std::fs::write(dir.join(id), body).unwrap();
}

fn attribute<'a>(device: &'a Value, key: &str) -> Option<&'a str> {
    device["attributes"][key].as_str()
}

#[test]
fn campaign_pauses_on_failed_health_checks_and_completes_after_resume() {
    let ws = Workspace::new();
    let fleet = Fleet::start(&ws);

    // Each device's health check GETs its own URL on this server.
    let health_dir = ws.path("health");
    std::fs::create_dir_all(&health_dir).unwrap();
    let health = FaultServer::bind(("127.0.0.1", 0)).unwrap();
    health.serve_dir("/health/", &health_dir);

    let ids: Vec<String> = (1..=DEVICES).map(|i| format!("dev-{i:02}")).collect();
    let mut daemons = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let dev = ws.device(id, "4MiB");
        set_health(&health_dir, id, true);
        let url = health.url(&format!("/health/{id}"));
        dev.add_plugin(
            "health",
            "http_health.wasm",
            &format!("http = [\"{url}\"]\nconfig = {{ url = \"{url}\", body = '\"status\":\"ok\"', timeout = \"2s\" }}"),
        );
        dev.set_chain("check = [\"health\"]");
        let token = format!("token-of-{id}");
        std::fs::write(dev.dir.join("fleet-token"), &token).unwrap();
        dev.append_config(&format!(
            "[fleet]\nserver = \"{}\"\ncontroller_id = \"{id}\"\ntoken_file = \"fleet-token\"\npoll_interval = \"1s\"\n",
            fleet.url
        ));
        // All but the last are pre-authorised; the last asks for admission on its first poll.
        if n + 1 < DEVICES {
            fleet.cli(&["device", "add", id, "--token", &token]);
        }
        let log = std::fs::File::create(dev.dir.join("daemon.log")).unwrap();
        let child = dev
            .cmd(&["daemon"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("airlock daemon starts");
        daemons.push((id.clone(), dev, Running(child)));
    }

    let newcomer = ids.last().unwrap().as_str();
    wait_for("the last device to ask for admission", 30, || {
        fleet
            .try_device(newcomer)
            .filter(|d| d["status"] == "pending")
            .map(drop)
    });
    fleet.cli(&["device", "accept", newcomer]);

    // Every device reports its attributes (configData) once it is let in.
    wait_for("every device's attributes", 60, || {
        ids.iter()
            .all(|id| attribute(&fleet.device(id), "airlock.device_type") == Some("test-device"))
            .then_some(())
    });

    fleet.cli(&[
        "group",
        "create",
        "test-devices",
        "--filter",
        "airlock.device_type=test-device",
    ]);
    let group = fleet.json(&["group", "show", "test-devices"]);
    assert_eq!(
        group["members"].as_array().unwrap().len(),
        DEVICES,
        "{group}"
    );

    let image = random_bytes(1 << 20, 7);
    ws.file("rootfs-2.img", &image);
    let bundle = ws.bundle(
        "os-2.0.0.airlock",
        "2.0.0",
        "test-device",
        &[("rootfs", "rootfs-2.img", "rootfs")],
        "",
    );
    let uploaded = fleet.json(&["bundle", "upload", bundle.to_str().unwrap()]);
    let bundle_id = uploaded["id"].to_string();

    let campaign = fleet.json(&[
        "campaign",
        "create",
        "--name",
        "spring",
        "--bundle",
        &bundle_id,
        "--group",
        "test-devices",
        "--phases",
        "10,50,100",
        "--success-threshold",
        "100",
        "--error-threshold",
        "20",
    ]);
    let campaign_id = campaign["id"].to_string();
    let members = |p: u64| -> Vec<String> {
        campaign["devices"]
            .as_array()
            .unwrap_or_else(|| panic!("the campaign lists its devices: {campaign}"))
            .iter()
            .filter(|d| d["phase"].as_u64() == Some(p))
            .map(|d| d["controllerId"].as_str().unwrap().to_string())
            .collect()
    };
    let (first, second, third) = (members(0), members(1), members(2));
    assert_eq!(
        (first.len(), second.len(), third.len()),
        (2, 8, 10),
        "10%, 50% and 100% of twenty devices: {campaign}"
    );
    // Three of phase 2's eight devices will fail their health check on the trial boot: 37% is
    // above the 20% error threshold.
    let failing: BTreeSet<String> = second.iter().take(3).cloned().collect();
    for id in &failing {
        set_health(&health_dir, id, false);
    }

    let show = || fleet.json(&["campaign", "show", &campaign_id]);
    let paused = wait_for("the campaign to pause", 240, || {
        let c = show();
        (c["state"] == "paused").then_some(c)
    });
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("phase 2, above the error threshold of 20%"),
        "the campaign says why it paused: {paused}"
    );
    // Phase 3 has not started: none of its devices got an action.
    for id in &third {
        let d = fleet.device(id);
        assert!(
            d["currentAction"].is_null(),
            "{id} in phase 3 got an action while paused: {d}"
        );
    }
    // The failing devices that got the update before the pause report why, and went back to
    // where they were. A fast device can fail before the third has even polled: two of eight
    // (25%) are already above the threshold, and a paused campaign offers nothing more.
    let latest = |id: &String| fleet.json(&["device", "history", id])[0].clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    let failed: Vec<&String> = loop {
        let actions: Vec<(&String, Value)> = failing.iter().map(|id| (id, latest(id))).collect();
        let settled = actions
            .iter()
            .all(|(_, a)| a["status"] == "failed" || a["status"] == "scheduled");
        let failed: Vec<&String> = actions
            .iter()
            .filter(|(_, a)| a["status"] == "failed")
            .map(|(id, _)| *id)
            .collect();
        if settled && failed.len() >= 2 {
            break failed;
        }
        if Instant::now() > deadline {
            let mut report = String::new();
            for (id, dev, _) in daemons.iter().filter(|(id, ..)| failing.contains(id)) {
                let log = std::fs::read_to_string(dev.dir.join("daemon.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                report += &format!(
                    "\n--- {id}: latest action {}\nstatus {}\ndaemon.log (newest first):\n{}\n",
                    latest(id),
                    dev.status(),
                    tail.join("\n")
                );
            }
            panic!("timed out waiting for the failing devices to roll back:{report}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for id in failed {
        let log = latest(id)["log"].to_string();
        // The device's own words, relayed: the check that failed and what it saw.
        assert!(
            log.contains("check health failed"),
            "{id}'s action log names the failing check: {log}"
        );
    }
    assert!(
        paused["progress"][1]["failed"].as_u64().unwrap() >= 2,
        "{paused}"
    );

    // The operator resumes until the campaign finishes. Resumed mid-phase (fast devices fail
    // before the others finish), it pauses again when phase 2 ends below the success threshold,
    // or when a failing device that got the update only after the resume fails then: the
    // server asks again, and phase 3 starts only after that.
    let mut resumes = 0;
    let done = loop {
        fleet.cli(&["campaign", "resume", &campaign_id]);
        resumes += 1;
        let c = wait_for("the campaign to finish or pause again", 300, || {
            let c = show();
            (c["state"] == "finished" || c["state"] == "paused").then_some(c)
        });
        if c["state"] == "finished" {
            break c;
        }
        let reason = c["reason"].as_str().unwrap_or_default();
        assert!(
            resumes < 3 && c["currentPhase"] == 1 && reason.contains("phase 2"),
            "paused again after {resumes} resumes: {c}"
        );
    };
    eprintln!("the finished campaign: {}", done["progress"]);
    let counts = |p: usize, key: &str| done["progress"][p][key].as_u64().unwrap();
    assert_eq!(
        (counts(0, "succeeded"), counts(0, "failed")),
        (2, 0),
        "{done}"
    );
    assert_eq!(
        (counts(1, "succeeded"), counts(1, "failed")),
        (5, 3),
        "{done}"
    );
    assert_eq!(
        (counts(2, "succeeded"), counts(2, "failed")),
        (10, 0),
        "{done}"
    );

    // Every device's own status agrees with what the server shows of it.
    let mut seen = BTreeMap::new();
    for (id, dev, _) in &daemons {
        let status = dev.status();
        let expect_version = if failing.contains(id) {
            assert_eq!(
                status["last_result"]["result"], "rolled-back",
                "{id}: {status}"
            );
            Value::Null
        } else {
            assert_eq!(status["committed"]["version"], "2.0.0", "{id}: {status}");
            status["committed"]["version"].clone()
        };
        // What the device says of itself, in the words of its attributes.
        let slot = |side: &str| match &status["slots"][side] {
            Value::Null => "unknown".to_string(),
            s => format!(
                "{} {}",
                s["release"]["bundle"].as_str().unwrap(),
                s["release"]["version"].as_str().unwrap()
            ),
        };
        let own: BTreeMap<&str, String> = BTreeMap::from([
            (
                "airlock.version",
                expect_version.as_str().unwrap_or("none").to_string(),
            ),
            (
                "airlock.booted",
                status["booted"].as_str().unwrap().to_string(),
            ),
            ("airlock.slot.a", slot("a")),
            ("airlock.slot.b", slot("b")),
            ("airlock.update", "none".to_string()),
        ]);
        let server_view = wait_for(
            "the server to hold the device's latest attributes",
            30,
            || {
                let d = fleet.device(id);
                own.iter()
                    .all(|(key, value)| attribute(&d, key) == Some(value.as_str()))
                    .then_some(d)
            },
        );
        let last_result = attribute(&server_view, "airlock.last_result").unwrap_or_default();
        let expected_result = if failing.contains(id) {
            "rolled-back"
        } else {
            "committed"
        };
        assert!(
            last_result.starts_with(expected_result),
            "{id}: the server shows {last_result:?}, the device {status}"
        );
        let history = fleet.json(&["device", "history", id]);
        let expected_action = if failing.contains(id) {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(history[0]["status"], expected_action, "{id}: {history}");
        let health = attribute(&server_view, "airlock.health").unwrap_or_default();
        if failing.contains(id) {
            assert!(health.starts_with("failed"), "{id}: {server_view}");
        } else {
            assert_eq!(health, "ok", "{id}: {server_view}");
        }
        seen.insert(id.clone(), expect_version);
    }
    assert_eq!(seen.len(), DEVICES);
}

/// Runs openssl with `args` in `dir`; panics with its output on failure.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}:\n{}",
        output_text(&out)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=Airlock test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "127.0.0.1"), ("client", "dev-tls")] {
        let subj = format!("/CN={cn}");
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let mut req = vec!["req", "-subj", &subj];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
}

/// The daemon reaches a server that demands a client certificate (openssl's TLS server, which
/// answers every request with a status page) only when `[fleet]` names its certificate: with
/// it, TLS succeeds and the daemon refuses the answer as not DDI; without it, the handshake is
/// refused. The server's CA comes from `[fleet] ca_file`.
#[test]
fn daemon_presents_its_client_certificate_for_mutual_tls() {
    let ws = Workspace::new();
    let pki = ws.path("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _tls = Running(
        Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args([
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-CAfile",
                "ca.pem",
            ])
            .args(["-Verify", "1", "-verify_return_error", "-www", "-quiet"])
            .current_dir(&pki)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts"),
    );
    wait_for("openssl s_server to listen", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let dev = ws.device("dev-tls", "1MiB");
    std::fs::write(dev.dir.join("fleet-token"), "token").unwrap();
    let fleet = |identity: &str| {
        format!(
            "[fleet]\nserver = \"https://127.0.0.1:{port}\"\ncontroller_id = \"dev-tls\"\ntoken_file = \"fleet-token\"\nca_file = {}\n{identity}",
            toml_path(&pki.join("ca.pem"))
        )
    };
    let config = std::fs::read_to_string(dev.config_path()).unwrap();

    let identity = format!(
        "client_certificate = {}\nclient_key = {}\n",
        toml_path(&pki.join("client.pem")),
        toml_path(&pki.join("client.key"))
    );
    std::fs::write(dev.config_path(), format!("{config}\n{}", fleet(&identity))).unwrap();
    let with_cert = output_text(&dev.output(&["daemon", "--once"]));
    assert!(
        with_cert.contains("answered with a body that is not the DDI message expected"),
        "with its certificate the daemon gets past TLS to the (non-DDI) answer:\n{with_cert}"
    );

    std::fs::write(dev.config_path(), format!("{config}\n{}", fleet(""))).unwrap();
    let out = dev.output(&["daemon", "--once"]);
    let without = expect_clean_failure(&out, "a poll without a client certificate");
    assert!(
        without.contains("CertificateRequired") && !without.contains("not the DDI message"),
        "without a certificate the server refuses the handshake:\n{without}"
    );
}

/// A power cut in the middle of a download the server handed out: the boot after it leaves the
/// download to the daemon (only the daemon holds the token the server wants), and the daemon's
/// next poll resumes it, installs, reboots into it and reports success: no spurious failure.
#[test]
fn power_cut_mid_download_is_resumed_by_the_daemon() {
    let ws = Workspace::new();
    let fleet = Fleet::start(&ws);
    let dev = ws.device("dev-cut", "8MiB");
    std::fs::write(dev.dir.join("fleet-token"), "token-of-dev-cut").unwrap();
    dev.append_config(&format!(
        "[fleet]\nserver = \"{}\"\ncontroller_id = \"dev-cut\"\ntoken_file = \"fleet-token\"\n",
        fleet.url
    ));
    fleet.cli(&["device", "add", "dev-cut", "--token", "token-of-dev-cut"]);
    fleet.cli(&["group", "create", "one", "--device", "dev-cut"]);
    ws.file("rootfs.img", &random_bytes(4 << 20, 11));
    let bundle = ws.bundle(
        "os-3.0.0.airlock",
        "3.0.0",
        "test-device",
        &[("rootfs", "rootfs.img", "rootfs")],
        "",
    );
    let uploaded = fleet.json(&["bundle", "upload", bundle.to_str().unwrap()]);
    let bundle_id = uploaded["id"].to_string();
    fleet.cli(&[
        "campaign", "create", "--name", "cut", "--bundle", &bundle_id, "--group", "one",
    ]);

    // The power fails with half the payload written.
    let out = dev
        .cmd(&["daemon", "--once"])
        .env("AIRLOCK_KILL_AT", "payload-half-written")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the daemon was killed:\n{}",
        output_text(&out)
    );
    let boot = dev.reboot(false);
    assert!(
        boot.contains("is resumed by airlock daemon"),
        "the boot leaves the download to the daemon:\n{boot}"
    );
    assert_eq!(dev.status()["update"]["phase"], "fetching");

    // The daemon's next polls finish the job: install, reboot, commit, report.
    for _ in 0..3 {
        dev.ok(&["daemon", "--once"]);
    }
    assert_eq!(dev.status()["committed"]["version"], "3.0.0");
    let history = fleet.json(&["device", "history", "dev-cut"]);
    assert_eq!(history[0]["status"], "succeeded", "{history}");
    assert!(
        !history.to_string().contains("closed failure"),
        "no failure was reported on the way: {history}"
    );
}
