//! `airlock key` and `airlock bundle` as a vendor or operator runs them.

use crate::support::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn create_inspect_sign_verify_extract() {
    let ws = Workspace::new();
    let img = image_bytes(3 << 20, 1);
    ws.file("rootfs.img", &img);
    let bundle = ws.bundle(
        "update.airlock",
        "1.2.0",
        "test-device",
        &[("rootfs", "rootfs.img", "rootfs")],
        "",
    );

    // tar lists the documented entries in order.
    let tar = std::process::Command::new("tar")
        .arg("tf")
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tar.stdout),
        "manifest.json\nmanifest.sig\npayloads/rootfs.idx\npayloads/rootfs\n"
    );

    let inspect = ok(&["bundle", "inspect", s(&bundle)]);
    assert!(
        inspect.contains("test-os 1.2.0")
            && inspect.contains("rootfs")
            && inspect.contains("chunks"),
        "{inspect}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["bundle", "inspect", s(&bundle), "--json"])).unwrap();
    assert_eq!(json["manifest"]["payloads"][0]["size"], 3 << 20);
    assert_eq!(json["signed_by"].as_array().unwrap().len(), 1);

    // Into a closed pipe (`airlock bundle inspect … | head -0`): ended by SIGPIPE like any Unix
    // tool, without a panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = airlock()
        .args(["bundle", "inspect", s(&bundle)])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGPIPE),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let verify = ok(&["bundle", "verify", s(&bundle), "--key", s(&ws.public_key())]);
    assert!(verify.starts_with("OK:"), "{verify}");

    // A second signer, with a key made by openssl.
    let other_key = ws.path("other.key");
    let other_pub = ws.path("other.pub");
    assert!(
        std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out", s(&other_key)])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        std::process::Command::new("openssl")
            .args([
                "pkey",
                "-in",
                s(&other_key),
                "-pubout",
                "-out",
                s(&other_pub)
            ])
            .status()
            .unwrap()
            .success()
    );
    let e = fails(&[
        "bundle",
        "verify",
        s(&bundle),
        "--key",
        s(&ws.public_key()),
        "--key",
        s(&other_pub),
        "--threshold",
        "2",
    ]);
    assert!(
        e.contains("1 valid signature(s) from trusted keys but 2 are required"),
        "{e}"
    );
    ok(&["bundle", "sign", s(&bundle), "--key", s(&other_key)]);
    ok(&[
        "bundle",
        "verify",
        s(&bundle),
        "--key",
        s(&ws.public_key()),
        "--key",
        s(&other_pub),
        "--threshold",
        "2",
    ]);

    let out = ws.path("out.img");
    ok(&[
        "bundle",
        "extract",
        s(&bundle),
        "--payload",
        "rootfs",
        "-o",
        s(&out),
        "--key",
        s(&other_pub),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), img);
}

#[test]
fn stored_bundles_and_levels() {
    let ws = Workspace::new();
    ws.file("rootfs.img", &image_bytes(1 << 20, 2));
    let spec = ws.file("b.toml", b"name = \"x\"\nversion = \"1.0.0\"\ncompatible = [\"d\"]\n[[payload]]\nname = \"rootfs\"\nfile = \"rootfs.img\"\nslot = \"rootfs\"\n");
    let stored = ws.path("stored.airlock");
    ok(&[
        "bundle",
        "create",
        s(&spec),
        "--key",
        s(&ws.key()),
        "-o",
        s(&stored),
        "--no-compress",
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["bundle", "inspect", s(&stored), "--json"])).unwrap();
    assert_eq!(json["manifest"]["payloads"][0]["compression"], "none");
    let e = fails(&[
        "bundle",
        "create",
        s(&spec),
        "--key",
        s(&ws.key()),
        "-o",
        s(&stored),
        "--level",
        "40",
    ]);
    assert!(e.contains("compression level 40"), "{e}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let ws = Workspace::new();
    ws.file("rootfs.img", &image_bytes(600_000, 3));
    let bundle = ws.bundle(
        "update.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "rootfs.img", "rootfs")],
        "",
    );
    let key = ws.public_key();

    let empty = ws.file("empty.airlock", b"");
    assert!(fails(&["bundle", "verify", s(&empty), "--key", s(&key)]).contains("empty"));

    let mut bytes = std::fs::read(&bundle).unwrap();
    let cut = ws.file("cut.airlock", &bytes[..bytes.len() / 2]);
    assert!(fails(&["bundle", "verify", s(&cut), "--key", s(&key)]).contains("ends early"));

    let n = bytes.len();
    bytes[n - 3000] ^= 1;
    let flipped = ws.file("flipped.airlock", &bytes);
    let e = fails(&["bundle", "verify", s(&flipped), "--key", s(&key)]);
    assert!(e.contains("payload rootfs, chunk"), "{e}");

    let stranger = ws.path("stranger");
    ok(&["key", "generate", "--out", s(&stranger)]);
    let e = fails(&[
        "bundle",
        "verify",
        s(&bundle),
        "--key",
        &format!("{}.pub", s(&stranger)),
    ]);
    assert!(e.contains("not a trusted key"), "{e}");

    let e = fails(&["bundle", "verify", s(&bundle), "--key", s(&ws.key())]);
    assert!(
        e.contains("SPKI PEM"),
        "a private key given as public key: {e}"
    );

    let e = fails(&[
        "bundle",
        "verify",
        s(&ws.path("missing.airlock")),
        "--key",
        s(&key),
    ]);
    assert!(e.contains("missing.airlock"), "{e}");

    let e = fails(&["key", "generate", "--out", s(&ws.path("release"))]);
    assert!(e.contains("already exists"), "{e}");

    let e = fails(&[
        "bundle",
        "extract",
        s(&bundle),
        "--payload",
        "nope",
        "-o",
        s(&ws.path("x")),
        "--key",
        s(&key),
    ]);
    assert!(e.contains("no payload named \"nope\""), "{e}");
}
