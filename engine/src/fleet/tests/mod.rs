//! The daemon against a loopback DDI responder: a simulated device, real bundles, real HTTP.
//! The responder is a test fixture for the protocol exchange (it records every request and
//! answers what the test set up); the end-to-end test against `airlock-server` lives in
//! `tests/e2e/fleet.rs`.

mod reoffered;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use airlock_testkit::BundleToml;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

use super::*;
use crate::boot::{self, Side};
use crate::bundle::{BundleSpec, CreateOptions, create_bundle};
use crate::config::Config;
use crate::install::Device;

const TOKEN: &str = "tok-3f9a";

/// One request the responder received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct State {
    /// GET answers by path: JSON, or the artifact's bytes (served with Range support).
    json: HashMap<String, Value>,
    files: HashMap<String, Vec<u8>>,
    requests: Vec<Recorded>,
    /// Close every connection without an answer: the server is out of reach.
    down: bool,
}

/// A minimal HTTP/1.1 DDI responder on loopback, std only.
#[derive(Clone)]
struct Ddi {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Ddi {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Ddi { base, state }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_json(&self, path: &str, v: Value) {
        self.lock().json.insert(path.to_string(), v);
    }

    fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The JSON bodies sent to `path` with `method`.
    fn bodies(&self, method: &str, path_end: &str) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_end))
            .map(Recorded::json)
            .collect()
    }

    /// Offers the deployment of `bundle` as action `id`.
    fn offer(&self, id: &str, bundle: &Path, deployment: Value) {
        let controller_path = "/DEFAULT/controller/v1/dev1";
        let artifact_path =
            format!("/DEFAULT/controller/v1/dev1/softwaremodules/1/artifacts/{id}.airlock");
        let bytes = std::fs::read(bundle).unwrap();
        let size = bytes.len();
        self.lock().files.insert(artifact_path.clone(), bytes);
        let mut deployment = deployment;
        deployment["chunks"] = json!([{
            "part": "os", "version": "2.0.0", "name": "acme-os",
            "artifacts": [{
                "filename": format!("acme-os-{id}.airlock"),
                "hashes": {"sha256": "0000"},
                "size": size,
                "_links": {"download-http": {"href": format!("{}{artifact_path}", self.base)}}
            }]
        }]);
        self.set_json(
            &format!("{controller_path}/deploymentBase/{id}"),
            json!({"id": id, "deployment": deployment}),
        );
        self.set_json(
            controller_path,
            json!({
                "config": {"polling": {"sleep": "00:00:01"}},
                "_links": {
                    "deploymentBase": {"href": format!("{}{controller_path}/deploymentBase/{id}?c=-1", self.base)},
                    "configData": {"href": format!("{}{controller_path}/configData", self.base)}
                }
            }),
        );
    }

    fn nothing_to_do(&self) {
        self.set_json(
            "/DEFAULT/controller/v1/dev1",
            json!({"config": {"polling": {"sleep": "00:00:01"}}, "_links": {}}),
        );
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => head.push(line.trim_end().to_string()),
            }
        }
        let Some((method, path)) = head.first().and_then(|l| {
            let mut parts = l.split(' ');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        }) else {
            return;
        };
        let headers: Vec<(String, String)> = head[1..]
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Recorded {
            method,
            path: path.clone(),
            headers,
            body,
        };
        let (status, extra, payload) = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            if st.down {
                return;
            }
            st.requests.push(request.clone());
            answer(&st, &request)
        };
        let reason = match status {
            200 => "OK",
            206 => "Partial Content",
            _ => "Error",
        };
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n{extra}\r\n",
            payload.len()
        )
        .into_bytes();
        response.extend(payload);
        if out.write_all(&response).is_err() {
            return;
        }
    }
}

fn answer(st: &State, r: &Recorded) -> (u16, String, Vec<u8>) {
    if r.header("authorization") != Some(&format!("TargetToken {TOKEN}")) {
        return (401, String::new(), Vec::new());
    }
    let path = r.path.split('?').next().unwrap_or_default();
    if r.method != "GET" {
        return (200, String::new(), Vec::new());
    }
    if let Some(v) = st.json.get(path) {
        let body = serde_json::to_vec(v).unwrap();
        return (200, "Content-Type: application/json\r\n".into(), body);
    }
    let Some(data) = st.files.get(path) else {
        return (
            404,
            String::new(),
            b"{\"errorCode\":\"notFound\",\"message\":\"no such resource\"}".to_vec(),
        );
    };
    let len = data.len();
    let range = r.header("range").and_then(|v| {
        let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
        let a: usize = a.parse().ok()?;
        let b: usize = if b.is_empty() {
            len - 1
        } else {
            b.parse::<usize>().ok()?.min(len - 1)
        };
        Some((a, b))
    });
    match range {
        Some((a, b)) => (
            206,
            format!(
                "Accept-Ranges: bytes\r\nETag: \"b\"\r\nContent-Range: bytes {a}-{b}/{len}\r\n"
            ),
            data[a..=b].to_vec(),
        ),
        None => (
            200,
            "Accept-Ranges: bytes\r\nETag: \"b\"\r\n".into(),
            data.clone(),
        ),
    }
}

/// A simulated device in a folder, pointed at the responder.
struct Sim {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl Sim {
    fn new(ddi: &Ddi) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        std::fs::write(p.join("release.pub"), public).unwrap();
        std::fs::write(p.join("token"), format!("{TOKEN}\n")).unwrap();
        for side in ["a", "b"] {
            std::fs::File::create(p.join(format!("rootfs.{side}")))
                .unwrap()
                .set_len(1 << 20)
                .unwrap();
        }
        boot::sim_init(&p.join("boot.env")).unwrap();
        let config = format!(
            r#"
[device]
type = "acme-gw"
data_dir = "data"
[trust]
keys = ["release.pub"]
[boot]
backend = "sim"
env = "boot.env"
[slots.rootfs]
a = "rootfs.a"
b = "rootfs.b"
[download]
retries = 1
backoff = "10ms"
read_timeout = "5s"
[fleet]
server = "{}"
controller_id = "dev1"
token_file = "token"
poll_interval = "2s"
"#,
            ddi.base
        );
        std::fs::write(p.join("airlock.toml"), config).unwrap();
        Sim { dir, key }
    }

    fn config(&self) -> Config {
        Config::load(&self.dir.path().join("airlock.toml")).unwrap()
    }

    /// A bundle of version 2.0.0 for this device, signed by `key`.
    fn bundle(&self, name: &str, key: &SigningKey) -> PathBuf {
        let p = self.dir.path();
        let image: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(p.join("rootfs.img"), image).unwrap();
        let spec = BundleToml::new("acme-os", "2.0.0", &["acme-gw"])
            .payload("rootfs", "rootfs.img", "rootfs")
            .write(&p.join("bundle.toml"));
        let out = p.join(name);
        let options = CreateOptions {
            threads: 1,
            ..CreateOptions::default()
        };
        create_bundle(
            &BundleSpec::load(&spec).unwrap(),
            std::slice::from_ref(key),
            &out,
            &options,
            &mut |_| {},
        )
        .unwrap();
        out
    }

    /// The daemon, rebooting the simulated device in-process (as `airlock daemon` does for a
    /// sim device); `after` runs once the device is back, before the daemon goes on.
    fn daemon(&self, after: impl FnMut() + Send + 'static) -> Daemon {
        let config = self.config();
        let env = self.dir.path().join("boot.env");
        let boot_config = config.clone();
        let mut after = after;
        let reboot: RebootFn = Box::new(move || {
            boot::sim_reboot(&env, false).map_err(|e| e.to_string())?;
            let report = Device::open(boot_config.clone())
                .and_then(|mut d| d.boot(&mut |_| {}))
                .map_err(|e| e.to_string())?;
            assert!(!report.reboot_needed, "{report:?}");
            after();
            Ok(AfterReboot::Continue)
        });
        Daemon::new(config, reboot).unwrap()
    }

    fn state(&self) -> (crate::install::record::DeviceState, Side) {
        let d = Device::open_read_only(self.config()).unwrap();
        (d.state().clone(), d.booted().unwrap())
    }
}

/// The feedback messages' shape is exactly hawkBit's: no other keys anywhere.
fn assert_hawkbit_feedback(body: &Value) {
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .unwrap_or_else(|| panic!("{v}"))
            .keys()
            .cloned()
            .collect()
    };
    let top = keys(body);
    assert!(
        top.iter().all(|k| k == "timestamp" || k == "status"),
        "{body}"
    );
    assert!(body["timestamp"].is_u64(), "{body}");
    let status = &body["status"];
    assert_eq!(keys(status), ["details", "execution", "result"], "{body}");
    let result = keys(&status["result"]);
    assert!(
        result == ["finished"] || result == ["finished", "progress"],
        "{body}"
    );
    if let Some(p) = status["result"].get("progress") {
        assert_eq!(keys(p), ["cnt", "of"], "{body}");
    }
    let execution = &status["execution"];
    assert!(
        airlock_ddi::Execution::ALL
            .iter()
            .any(|e| serde_json::to_value(e).unwrap() == *execution),
        "{body}"
    );
    let finished = status["result"]["finished"].as_str().unwrap();
    assert!(["success", "failure", "none"].contains(&finished), "{body}");
    assert!(
        status["details"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string),
        "{body}"
    );
}

/// A responder offering a good bundle as action `id` with `deployment`'s handling, and a
/// device pointed at it.
fn offered(id: &str, deployment: Value) -> (Ddi, Sim, PathBuf) {
    let ddi = Ddi::start();
    let sim = Sim::new(&ddi);
    let bundle = sim.bundle("good.airlock", &sim.key);
    ddi.offer(id, &bundle, deployment);
    (ddi, sim, bundle)
}

/// What docs/fleet.md's DDI table says the daemon sends: (resource, field path).
fn ddi_table_sends() -> Vec<(String, String)> {
    airlock_testkit::ddi_table()
        .into_iter()
        .filter(|r| r.daemon == "sends")
        .map(|r| (r.resource, r.field))
        .collect()
}

/// Every field path of `v`; lists of values end a path.
fn field_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                field_paths(v, &path, out);
            }
        }
        None => out.push(prefix.to_string()),
    }
}

/// The daemon sent `ddi` only fields docs/fleet.md's DDI table lists as sent by it, and every
/// field it lists for the resources in `complete`.
fn assert_as_the_ddi_table_says(ddi: &Ddi, complete: &[&str]) {
    let table = ddi_table_sends();
    let resource_of = |r: &Recorded| match (r.method.as_str(), r.path.split('?').next()?) {
        ("POST", p) if p.contains("/deploymentBase/") && p.ends_with("/feedback") => {
            Some("`POST deploymentBase/{id}/feedback`")
        }
        ("POST", p) if p.contains("/cancelAction/") && p.ends_with("/feedback") => {
            Some("`POST cancelAction/{id}/feedback`")
        }
        ("PUT", p) if p.ends_with("/configData") => Some("`PUT configData`"),
        _ => None,
    };
    let mut seen: Vec<(&str, String)> = Vec::new();
    for r in ddi.requests() {
        let Some(resource) = resource_of(&r) else {
            continue;
        };
        let mut paths = Vec::new();
        field_paths(&r.json(), "", &mut paths);
        for path in paths {
            let listed = table.iter().find(|(res, field)| {
                res == resource && (path == *field || path.starts_with(&format!("{field}.")))
            });
            let (_, field) = listed.unwrap_or_else(|| {
                panic!("the daemon sent {path} to {resource}, which docs/fleet.md's DDI table does not list as sent by it")
            });
            seen.push((resource, field.clone()));
        }
    }
    for (resource, field) in table.iter().filter(|(r, _)| complete.contains(&r.as_str())) {
        let sent = seen.iter().any(|(r, f)| r == resource && f == field);
        assert!(
            sent,
            "docs/fleet.md says the daemon sends {field} to {resource}; it never did"
        );
    }
}

fn status_of(body: &Value) -> (&str, &str) {
    (
        body["status"]["execution"].as_str().unwrap(),
        body["status"]["result"]["finished"].as_str().unwrap(),
    )
}

#[test]
fn installs_reboots_reports_and_keeps_the_result_while_offline() {
    let (ddi, sim, _) = offered("8", json!({"download": "forced", "update": "attempt"}));

    // The simulated reboot comes back to a network without the server.
    let net = ddi.clone();
    let mut daemon = sim.daemon(move || net.set_down(true));
    assert_eq!(
        daemon.run_once().unwrap(),
        Next::Sleep(std::time::Duration::ZERO)
    );
    let (state, booted) = sim.state();
    assert_eq!(booted, Side::B);
    assert_eq!(
        state
            .committed
            .as_ref()
            .map(|r| r.version.to_string())
            .as_deref(),
        Some("2.0.0")
    );

    // Offline: the result is settled and kept, across a restart of the daemon.
    let err = daemon.run_once().unwrap_err();
    assert!(
        matches!(err, FleetError::Client(ClientError::Offline { .. })),
        "{err}"
    );
    drop(daemon);
    let mut daemon = sim.daemon(|| {});
    assert_eq!(daemon.outbox().len(), 1);
    let err = daemon.run_once().unwrap_err();
    assert!(
        err.to_string().contains("/deploymentBase/8/feedback"),
        "{err}"
    );
    assert_eq!(
        daemon.outbox().len(),
        1,
        "still offline: nothing lost, nothing doubled"
    );

    // Back: the result goes out first, then the poll; the server has nothing more.
    let back = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ddi.set_down(false);
    ddi.nothing_to_do();
    assert_eq!(
        daemon.run_once().unwrap(),
        Next::Sleep(std::time::Duration::from_secs(1))
    );
    assert!(daemon.outbox().is_empty());
    assert!(daemon.action().is_none());

    let requests = ddi.requests();
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("TargetToken {TOKEN}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    let artifact = requests
        .iter()
        .filter(|r| r.path.contains("/artifacts/"))
        .count();
    assert!(artifact >= 1, "the bundle was downloaded from the server");

    let feedback = ddi.bodies("POST", "/deploymentBase/8/feedback");
    feedback.iter().for_each(assert_hawkbit_feedback);
    let first = &feedback[0];
    assert_eq!(status_of(first), ("proceeding", "none"));
    assert!(
        first["status"]["details"][0]
            .as_str()
            .unwrap()
            .contains("acme-os-8.airlock"),
        "{first}"
    );
    assert!(
        feedback
            .iter()
            .any(|f| f["status"]["result"]["progress"] == json!({"cnt": 100, "of": 100})),
        "{feedback:?}"
    );
    let installed = &feedback[feedback.len() - 2];
    assert_eq!(
        installed["status"]["details"],
        json!(["installed acme-os 2.0.0 in slot b; rebooting to try it"])
    );
    let last = feedback.last().unwrap();
    assert_eq!(status_of(last), ("closed", "success"));
    assert_eq!(
        last["status"]["details"],
        json!(["trial boot of acme-os 2.0.0 in slot b passed its checks; committed"])
    );
    // The result was made while offline: its timestamp says when, not when it was delivered.
    assert!(last["timestamp"].as_u64().unwrap() <= back);

    let config = ddi.bodies("PUT", "/configData");
    let first = &config[0];
    assert_eq!(first["mode"], "merge");
    assert_eq!(first["data"]["airlock.device_type"], "acme-gw");
    assert_eq!(first["data"]["airlock.version"], "none");
    assert_eq!(first["data"]["airlock.booted"], "a");
    let now = &config.last().unwrap()["data"];
    assert_eq!(now["airlock.version"], "2.0.0");
    assert_eq!(now["airlock.booted"], "b");
    assert_eq!(now["airlock.slot.b"], "acme-os 2.0.0");
    assert_eq!(now["airlock.last_result"], "committed acme-os 2.0.0");
    assert_eq!(now["airlock.health"], "ok");
    assert_eq!(now["airlock.update"], "none");

    // Nothing changed: no new attributes, no feedback.
    let before = ddi.requests().len();
    daemon.run_once().unwrap();
    let after = ddi.requests();
    assert_eq!(
        after.len(),
        before + 1,
        "only the poll: {:?}",
        &after[before..]
    );
    assert_as_the_ddi_table_says(
        &ddi,
        &["`POST deploymentBase/{id}/feedback`", "`PUT configData`"],
    );
}

#[test]
fn a_bundle_with_a_bad_signature_fails_the_action_with_the_verifier_message() {
    let ddi = Ddi::start();
    let sim = Sim::new(&ddi);
    let forged = sim.bundle("forged.airlock", &SigningKey::from_bytes(&[9; 32]));
    ddi.offer(
        "9",
        &forged,
        json!({"download": "forced", "update": "forced"}),
    );
    let mut daemon = sim.daemon(|| panic!("no reboot for a refused bundle"));
    daemon.run_once().unwrap();

    let feedback = ddi.bodies("POST", "/deploymentBase/9/feedback");
    feedback.iter().for_each(assert_hawkbit_feedback);
    let last = feedback.last().unwrap();
    assert_eq!(status_of(last), ("closed", "failure"));
    let detail = last["status"]["details"][0].as_str().unwrap();
    assert!(
        detail.contains("0 valid signature(s) from trusted keys but 1 are required"),
        "{detail}"
    );
    let (state, booted) = sim.state();
    assert_eq!(
        (state.committed, state.update, booted),
        (None, None, Side::A)
    );
    assert!(daemon.action().is_none());
    assert!(daemon.outbox().is_empty());
}

#[test]
fn a_closed_window_waits_once_and_a_cancel_is_honoured_before_anything_is_written() {
    let (ddi, sim, _) = offered(
        "11",
        json!({"download": "forced", "update": "forced", "maintenanceWindow": "unavailable"}),
    );
    let mut daemon = sim.daemon(|| panic!("no reboot while waiting"));
    daemon.run_once().unwrap();
    daemon.run_once().unwrap();
    let feedback = ddi.bodies("POST", "/deploymentBase/11/feedback");
    assert_eq!(feedback.len(), 1, "said once: {feedback:?}");
    assert_eq!(status_of(&feedback[0]), ("scheduled", "none"));
    assert!(
        feedback[0]["status"]["details"][0]
            .as_str()
            .unwrap()
            .contains("maintenance window")
    );
    assert!(
        !ddi.requests()
            .iter()
            .any(|r| r.path.contains("/artifacts/")),
        "nothing downloaded"
    );
    assert_eq!(daemon.action().map(|a| a.stage), Some(Stage::Waiting));

    let controller = "/DEFAULT/controller/v1/dev1";
    ddi.set_json(
        &format!("{controller}/cancelAction/12"),
        json!({"id": "12", "cancelAction": {"stopId": "11"}}),
    );
    ddi.set_json(
        controller,
        json!({"config": {"polling": {"sleep": "00:00:01"}}, "_links": {"cancelAction": {"href": format!("{}{controller}/cancelAction/12", ddi.base)}}}),
    );
    daemon.run_once().unwrap();
    let cancel = ddi.bodies("POST", "/cancelAction/12/feedback");
    assert_eq!(cancel.len(), 1);
    assert_hawkbit_feedback(&cancel[0]);
    assert_eq!(status_of(&cancel[0]), ("closed", "success"));
    assert!(daemon.action().is_none());
    let (state, _) = sim.state();
    assert!(state.update.is_none() && state.last_result.is_none());
    assert_as_the_ddi_table_says(&ddi, &["`POST cancelAction/{id}/feedback`"]);
}

#[test]
fn a_refused_token_is_reported_as_awaiting_admission() {
    let ddi = Ddi::start();
    let sim = Sim::new(&ddi);
    std::fs::write(sim.dir.path().join("token"), "wrong").unwrap();
    let mut daemon = sim.daemon(|| {});
    let e = daemon.run_once().unwrap_err().to_string();
    assert!(e.contains("await admission by an operator"), "{e}");
    assert_eq!(
        daemon.retry_wait(),
        std::time::Duration::from_secs(2),
        "capped at poll_interval"
    );
}

#[test]
fn a_device_running_a_slot_it_never_committed_reports_failed_health() {
    let ddi = Ddi::start();
    ddi.nothing_to_do();
    let sim = Sim::new(&ddi);
    // Committed slot b, booted a, no update: what a bootloader that cannot read its environment
    // block does.
    let env = sim.dir.path().join("boot.env");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, text.replace("primary=a", "primary=b")).unwrap();

    let mut daemon = sim.daemon(|| {});
    daemon.run_once().unwrap();
    let config = ddi.bodies("PUT", "/configData");
    let health = config.last().unwrap()["data"]["airlock.health"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        health,
        "failed: runs slot a, never committed (committed: b); the bootloader ignored its environment"
    );
    assert!(health.chars().count() <= attributes::MAX_VALUE);
}

#[test]
fn configured_attributes_go_with_every_report_before_and_after_an_update() {
    let (ddi, sim, _) = offered("8", json!({"download": "forced", "update": "forced"}));
    let config = sim.dir.path().join("airlock.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "[fleet.attributes]\nhw_revision = \"3\"\nserial = { file = \"serial-number\" }\n";
    std::fs::write(&config, text).unwrap();
    std::fs::write(sim.dir.path().join("serial-number"), "SN-0042\n").unwrap();

    let mut daemon = sim.daemon(|| {});
    daemon.run_once().unwrap();
    daemon.run_once().unwrap();
    let reports = ddi.bodies("PUT", "/configData");
    assert!(reports.len() >= 2, "{reports:?}");
    for r in &reports {
        assert_eq!(r["data"]["hw_revision"], "3", "{r}");
        assert_eq!(r["data"]["serial"], "SN-0042", "{r}");
    }
    assert_eq!(reports[0]["data"]["airlock.version"], "none");
    assert_eq!(reports.last().unwrap()["data"]["airlock.version"], "2.0.0");
}

#[test]
fn an_attempt_waits_for_the_device_maintenance_window_and_forced_installs_at_once() {
    let (ddi, sim, bundle) = offered("8", json!({"download": "attempt", "update": "attempt"}));
    // A window that opens in an hour: now is outside it.
    let minute = daemon::unix_secs() / 60 % (24 * 60);
    let (start, end) = ((minute + 60) % 1440, (minute + 120) % 1440);
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    );
    let config = sim.dir.path().join("airlock.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "[fleet]\n",
        &format!("[fleet]\nmaintenance_window = \"{window}\"\n"),
    );
    std::fs::write(&config, text).unwrap();

    let mut daemon = sim.daemon(|| {});
    daemon.run_once().unwrap();
    daemon.run_once().unwrap();
    let feedback = ddi.bodies("POST", "/deploymentBase/8/feedback");
    assert_eq!(feedback.len(), 1, "said once: {feedback:?}");
    assert_hawkbit_feedback(&feedback[0]);
    assert_eq!(status_of(&feedback[0]), ("scheduled", "none"));
    let said = feedback[0]["status"]["details"][0].as_str().unwrap();
    assert!(
        said.contains(&format!("maintenance window ({window} UTC)")),
        "{said}"
    );
    assert!(
        !ddi.requests()
            .iter()
            .any(|r| r.path.contains("/artifacts/")),
        "nothing downloaded"
    );

    // The server forces it: installed at once, whatever the device's window.
    ddi.offer(
        "8",
        &bundle,
        json!({"download": "forced", "update": "forced"}),
    );
    daemon.run_once().unwrap();
    daemon.run_once().unwrap();
    let (state, booted) = sim.state();
    assert_eq!(booted, Side::B);
    assert_eq!(
        state.committed.map(|r| r.version.to_string()).as_deref(),
        Some("2.0.0")
    );
}
