//! A device that does not run Airlock: SWUpdate's hawkBit client (suricatta, from Debian's
//! `swupdate` package) polls `airlock-server` on loopback. It registers, receives a deployment of
//! a signed `.swu` the operator uploaded with `bundle upload --foreign`, installs it with
//! SWUpdate's own `rawfile` handler into a file and reports success; then an update whose image
//! does not match its signed description fails on the device, and the campaign's error
//! threshold pauses it before its second phase.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::fleet::{Fleet, openssl, wait_for};
use super::support::*;

/// SWUpdate as Debian builds it insists on signed images: a CMS signer for the test.
fn make_signer(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "signer.key",
            "-out",
            "signer.crt",
            "-days",
            "30",
            "-subj",
            "/CN=airlock-test-swu-signer",
            "-addext",
            "extendedKeyUsage=emailProtection",
            "-addext",
            "keyUsage=digitalSignature",
        ],
    );
}

/// A signed `.swu` in `dir` that writes `image` to `target` with SWUpdate's rawfile handler;
/// `lie` makes its signed description name another image's hash.
fn make_swu(dir: &Path, version: &str, image: &[u8], target: &Path, lie: bool) -> PathBuf {
    let work = dir.join(format!("swu-{version}"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("rootfs.img"), image).unwrap();
    let mut signed = image.to_vec();
    if lie {
        signed[0] ^= 1;
    }
    let sha256 = hex::encode(Sha256::digest(&signed));
    let description = format!(
        "software =\n{{\n  version = \"{version}\";\n  hardware-compatibility: [ \"1.0\" ];\n  \
         images: (\n    {{\n      filename = \"rootfs.img\";\n      type = \"rawfile\";\n      \
         path = \"{}\";\n      sha256 = \"{sha256}\";\n    }}\n  );\n}}\n",
        target.display()
    );
    std::fs::write(work.join("sw-description"), description).unwrap();
    let signer = |name: &str| dir.join(name).display().to_string();
    openssl(
        &work,
        &[
            "cms",
            "-sign",
            "-in",
            "sw-description",
            "-out",
            "sw-description.sig",
            "-signer",
            &signer("signer.crt"),
            "-inkey",
            &signer("signer.key"),
            "-outform",
            "DER",
            "-nosmimecap",
            "-binary",
        ],
    );
    // A .swu is a cpio archive (newc with CRC), sw-description first.
    let out = dir.join(format!("gw-{version}.swu"));
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "crc", "--quiet"])
        .current_dir(&work)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .expect("cpio runs (scripts/test installs it)");
    use std::io::Write;
    cpio.stdin
        .take()
        .unwrap()
        .write_all(b"sw-description\nsw-description.sig\nrootfs.img\n")
        .unwrap();
    assert!(
        cpio.wait().unwrap().success(),
        "cpio made {}",
        out.display()
    );
    out
}

/// `swupdate` with suricatta polling the fleet as device `id`; stopped with SIGTERM when
/// dropped, so that it stops its own children too.
struct Suricatta(Child);

impl Suricatta {
    fn start(ws: &Workspace, fleet: &Fleet, id: &str, extra: &str) -> Self {
        let config = ws.file("swupdate.cfg", b"globals :\n{\n  verbose = true;\n};\n");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ws.path("swupdate.log"))
            .unwrap();
        let suricatta = format!(
            "-t DEFAULT -u {} -i {id} -k tok-{id} -p 1 {extra}",
            fleet.url
        );
        let child = Command::new("swupdate")
            .arg("-f")
            .arg(config)
            // No bootloader here: no state marker; the hardware the images are for.
            .args(["-m", "-H", "test-board:1.0", "-k"])
            .arg(ws.path("signer.crt"))
            .args(["-u", &suricatta])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("swupdate runs (scripts/test installs Debian's swupdate package)");
        Self(child)
    }
}

impl Drop for Suricatta {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn latest_action(fleet: &Fleet, id: &str) -> serde_json::Value {
    fleet.json(&["device", "history", id])[0].clone()
}

#[test]
fn swupdate_installs_reports_and_its_failure_pauses_the_campaign() {
    let ws = Workspace::new();
    let fleet = Fleet::start(&ws);
    make_signer(ws.dir.path());
    fleet.cli(&["device", "add", "swu-1", "--token", "tok-swu-1"]);
    // Never polls: it waits in the campaign's second phase.
    fleet.cli(&["device", "add", "swu-2", "--token", "tok-swu-2"]);

    let target = ws.path("target.img");
    let image = random_bytes(200_000, 41);
    let good = make_swu(ws.dir.path(), "3.1", &image, &target, false);
    let good = good.to_str().unwrap();
    let upload = &[
        "bundle",
        "upload",
        good,
        "--foreign",
        "--name",
        "gw-image",
        "--version",
        "3.1",
    ];
    let up = fleet.json(upload);
    assert_eq!(up["kind"], "foreign", "{up}");
    let id = up["id"].to_string();
    fleet.cli(&["group", "create", "one", "--device", "swu-1"]);
    fleet.cli(&[
        "campaign", "create", "--name", "good", "--bundle", &id, "--group", "one",
    ]);
    {
        let _device = Suricatta::start(&ws, &fleet, "swu-1", "");
        wait_for("SWUpdate to install the image", 90, || {
            (std::fs::read(&target).ok()? == image).then_some(())
        });
    }
    // After its reboot a SWUpdate device confirms the update (-c 2: success).
    {
        let _device = Suricatta::start(&ws, &fleet, "swu-1", "-c 2");
        wait_for("the action to succeed", 60, || {
            (latest_action(&fleet, "swu-1")["status"] == "succeeded").then_some(())
        });
    }
    let d = fleet.device("swu-1");
    assert_eq!(d["version"], "3.1", "{d}");
    assert_eq!(d["health"]["lastResult"], "succeeded gw-image 3.1", "{d}");

    // 3.2's signed description names another image: SWUpdate refuses it and says so.
    let bad = make_swu(
        ws.dir.path(),
        "3.2",
        &random_bytes(200_000, 42),
        &target,
        true,
    );
    let bad = bad.to_str().unwrap();
    let up = fleet.json(&[
        "bundle",
        "upload",
        bad,
        "--foreign",
        "--name",
        "gw-image",
        "--version",
        "3.2",
    ]);
    let id = up["id"].to_string();
    fleet.cli(&[
        "group", "create", "two", "--device", "swu-1", "--device", "swu-2",
    ]);
    let campaign = fleet.json(&[
        "campaign",
        "create",
        "--name",
        "bad",
        "--bundle",
        &id,
        "--group",
        "two",
        "--phases",
        "50,100",
        "--error-threshold",
        "0",
    ]);
    let campaign = campaign["id"].to_string();
    let paused = {
        let _device = Suricatta::start(&ws, &fleet, "swu-1", "");
        wait_for("the campaign to pause", 90, || {
            let c = fleet.json(&["campaign", "show", &campaign]);
            (c["state"] == "paused").then_some(c)
        })
    };
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("error threshold"), "{paused}");
    let failed = latest_action(&fleet, "swu-1");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        fleet.device("swu-2")["currentAction"].is_null(),
        "the second phase never started"
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        image,
        "3.1 stays installed"
    );
    let d = fleet.device("swu-1");
    assert_eq!(d["version"], "3.1", "{d}");
    assert_eq!(d["health"]["lastResult"], "failed gw-image 3.2", "{d}");
}
