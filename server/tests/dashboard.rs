//! The dashboard, rendered by headless Chromium.

mod common;

use std::process::Command;

use airlock_server::store::Backend;
use common::{ADMIN, TestServer};
use reqwest::Method;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The DOM Chromium renders for `url` (a fresh profile each time).
fn dump_dom(url: &str) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the dashboard test needs headless Chromium (apt-get install chromium)"
    );
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("running chromium (apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_devices_campaigns_and_escapes() {
    let s = TestServer::start(Backend::Sqlite).await;
    for id in ["dash-1", "dash-2", "dash-3"] {
        s.add_device(id).await;
    }
    let evil = json!({"data": {"airlock.version": "<script>document.title='pwned'</script>", "airlock.health": "failed: <b>disk</b>"}});
    s.ddi(Method::PUT, "dash-1", "/configData", "t-dash-1", Some(evil))
        .await;
    // A pending device too.
    s.ddi(Method::GET, "newcomer", "", "tok", None).await;
    s.post(
        "/groups",
        json!({"name": "dash", "devices": ["dash-1", "dash-2", "dash-3"]}),
    )
    .await;
    let b = s.good_bundle("1.0.0").await;
    s.post("/campaigns", json!({"name": "rollout", "bundle": b, "group": "dash", "phases": [33, 100], "errorThreshold": 50})).await;
    s.run_action("dash-1", "success").await;
    s.run_action("dash-2", "failure").await;

    // Without the cookie: the login form.
    let dom = dump_dom(&format!("{}/devices", s.url));
    assert!(dom.contains("name=\"token\""), "{dom}");
    assert!(!dom.contains("dash-1"));

    let login = |next: &str| format!("{}/login?token={ADMIN}&next={next}", s.url);
    let dom = dump_dom(&login("/devices"));
    for id in ["dash-1", "dash-2", "dash-3", "newcomer"] {
        assert!(
            dom.contains(&format!(">{id}</a>")),
            "device row {id} missing: {dom}"
        );
    }
    assert_eq!(dom.matches("<tr class=\"device\">").count(), 4);
    // Device-supplied text is escaped: shown as text, never run.
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<title>pwned"));
    assert!(dom.contains("<title>Devices · Airlock</title>"));
    assert!(dom.contains("failed: &lt;b&gt;disk&lt;/b&gt;"), "{dom}");
    assert!(dom.contains("class=\"failing\""));

    // Per-phase counts: phase 1 (dash-1) succeeded; phase 2 (dash-2 failed, dash-3 pending).
    let dom = dump_dom(&login("/campaigns/1"));
    assert!(dom.contains("Campaign rollout"), "{dom}");
    let rows: Vec<&str> = dom.split("<tr class=\"phase\">").skip(1).collect();
    assert_eq!(rows.len(), 2, "{dom}");
    let cell = |row: &str, class: &str| -> String {
        let start = row.find(&format!("<td class=\"{class}\">")).unwrap() + class.len() + 13;
        row[start..start + row[start..].find('<').unwrap()].to_string()
    };
    assert_eq!(
        ["devices", "pending", "running", "succeeded", "failed"].map(|c| cell(rows[0], c)),
        ["1", "0", "0", "1", "0"]
    );
    assert_eq!(
        ["devices", "pending", "running", "succeeded", "failed"].map(|c| cell(rows[1], c)),
        ["2", "1", "0", "0", "1"]
    );

    let dom = dump_dom(&login("/devices/dash-2"));
    assert!(
        dom.contains("installed: failure"),
        "action log shown: {dom}"
    );
    let dom = dump_dom(&login("/"));
    assert!(dom.contains("awaiting admission"), "{dom}");
    let dom = dump_dom(&login("/groups"));
    assert!(dom.contains("dash-1, dash-2, dash-3"), "{dom}");
    // A wrong token does not log in; an outside `next` is ignored.
    let dom = dump_dom(&format!("{}/login?token=wrong", s.url));
    assert!(dom.contains("wrong admin token"));
    let dom = dump_dom(&format!(
        "{}/login?token={ADMIN}&next=//example.com/",
        s.url
    ));
    assert!(dom.contains("<title>Overview · Airlock</title>"), "{dom}");
    s.finish().await;
}
