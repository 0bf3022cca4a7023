//! The built binary: `serve` prints its address, the management commands talk to it, SIGTERM
//! stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_airlock-server");

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn serve(dir: &Path, public_key: &Path) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "00:00:05",
        ])
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--trust-key")
        .arg(public_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("airlock-server listening on ") {
            break url.to_string();
        }
    };
    Server { child, url }
}

fn cli(server: &Server, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["--server", &server.url, "--token-file"])
        .arg(dir.join("data/admin-token"))
        .args(args)
        .env_remove("AIRLOCK_SERVER_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_and_manage_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, _) = airlock::keys::generate(&dir.path().join("k")).unwrap();
    let server = serve(dir.path(), &public);
    let token_file = dir.path().join("data/admin-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let (ok, out, _) = cli(
        &server,
        dir.path(),
        &["device", "add", "cli-1", "--token", "tok-1"],
    );
    assert!(ok);
    assert!(out.contains("tok-1"), "{out}");
    let (ok, out, _) = cli(&server, dir.path(), &["device", "list"]);
    assert!(ok);
    assert!(out.starts_with("DEVICE"), "{out}");
    assert!(out.contains("cli-1") && out.contains("accepted"), "{out}");
    let (ok, out, _) = cli(&server, dir.path(), &["device", "list", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["controllerId"], "cli-1");
    // Into a closed pipe (`airlock-server device list | head -0`): ended by SIGPIPE like any
    // Unix tool, without a panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["--server", &server.url, "--token-file"])
        .arg(&token_file)
        .args(["device", "list"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGPIPE),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Errors: the server's message, non-zero exit.
    let (ok, _, err) = cli(&server, dir.path(), &["device", "show", "ghost"]);
    assert!(!ok);
    assert!(err.contains("device ghost not found"), "{err}");

    // A bundle made with the engine library, uploaded through the CLI.
    let payload = dir.path().join("rootfs.img");
    std::fs::write(&payload, vec![7u8; 100_000]).unwrap();
    let spec = airlock::bundle::BundleSpec {
        name: "acme-os".into(),
        version: "1.2.3".parse().unwrap(),
        description: None,
        compatible: vec!["board".into()],
        expires: None,
        payloads: vec![airlock::bundle::PayloadSpec {
            name: "rootfs".into(),
            file: payload,
            slot: Some("rootfs".into()),
            installer: None,
            compression: None,
        }],
        plugins: vec![],
    };
    let bundle = dir.path().join("b.airlock");
    let key = airlock::keys::load_signing_key(&private).unwrap();
    airlock::bundle::create_bundle(&spec, &[key], &bundle, &Default::default(), &mut |_| {})
        .unwrap();
    let (ok, out, err) = cli(
        &server,
        dir.path(),
        &["bundle", "upload", bundle.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(out.contains("uploaded bundle 1: acme-os 1.2.3"), "{out}");
    let junk = dir.path().join("junk.airlock");
    std::fs::write(&junk, b"junk").unwrap();
    let (ok, _, err) = cli(
        &server,
        dir.path(),
        &["bundle", "upload", junk.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        err.contains("422") && err.contains("failed verification"),
        "{err}"
    );
    // An artifact of another updater: kept as it is, and said so.
    let swu = dir.path().join("gw-3.1.swu");
    std::fs::write(&swu, b"a cpio archive").unwrap();
    let swu = swu.to_str().unwrap();
    let (ok, _, err) = cli(
        &server,
        dir.path(),
        &["bundle", "upload", swu, "--name", "gw"],
    );
    assert!(!ok && err.contains("--foreign"), "{err}");
    let (ok, out, err) = cli(
        &server,
        dir.path(),
        &[
            "bundle",
            "upload",
            swu,
            "--foreign",
            "--name",
            "gw",
            "--version",
            "3.1",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("uploaded artifact (not verified by the server: the devices' updater must verify it) 2: gw 3.1"),
        "{out}"
    );

    let (ok, _, err) = cli(
        &server,
        dir.path(),
        &["group", "create", "g", "--device", "cli-1"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &server,
        dir.path(),
        &[
            "campaign", "create", "--name", "c", "--bundle", "1", "--group", "g", "--phases",
            "50,100",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("running"), "{out}");
    assert!(out.contains("PHASE") && out.contains("SUCCEEDED"), "{out}");
    // Bad campaign options: the operator is told what is wrong, and nothing is created.
    for (flag, value, says) in [
        ("--maintenance-window", "02:00", "START+DURATION"),
        ("--maintenance-window", "25:00+01:00", "not HH:MM"),
        ("--update", "sometimes", "unknown variant"),
    ] {
        let (ok, _, err) = cli(
            &server,
            dir.path(),
            &[
                "campaign", "create", "--name", "bad", "--bundle", "1", "--group", "g", flag, value,
            ],
        );
        assert!(!ok && err.contains(says), "{flag} {value}: {err}");
    }
    let (ok, out, _) = cli(&server, dir.path(), &["campaign", "pause", "1"]);
    assert!(ok && out.contains("paused"), "{out}");
    let (ok, _, err) = cli(&server, dir.path(), &["campaign", "pause", "1"]);
    assert!(!ok && err.contains("cannot pause"), "{err}");
    let (ok, out, _) = cli(&server, dir.path(), &["campaign", "list"]);
    assert!(ok && out.contains("paused"), "{out}");

    // A device polls the running binary.
    let resp = reqwest::blocking_get(&format!("{}/DEFAULT/controller/v1/cli-1", server.url));
    assert!(resp.contains("00:00:05"), "{resp}");

    // SIGTERM: a clean exit.
    let mut server = server;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

mod reqwest {
    /// A tiny blocking GET with the device's token, over a plain TCP socket (the test has no
    /// async runtime).
    pub fn blocking_get(url: &str) -> String {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: TargetToken tok-1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}
