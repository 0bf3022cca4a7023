//! The management API: auth, bad input, bundles, groups, campaigns, the OpenAPI document.

mod common;

use std::collections::BTreeSet;

use airlock_server::store::Backend;
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[test]
fn openapi_lists_exactly_the_routes() {
    let doc: Value = serde_json::from_str(airlock_server::api::OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = airlock_server::api::routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "openapi.json documents routes that do not exist: {extra:?}"
    );
    // Every $ref points at something.
    let text = airlock_server::api::OPENAPI;
    for piece in text.split("\"$ref\": \"#/components/").skip(1) {
        let target = &piece[..piece.find('"').unwrap()];
        let (kind, name) = target.split_once('/').unwrap();
        assert!(
            doc["components"][kind].get(name).is_some(),
            "dangling $ref {target}"
        );
    }
}

async fn auth_and_bad_input(b: Backend) {
    let s = TestServer::start(b).await;
    let r = s
        .http
        .get(format!("{}/api/v1/devices", s.url))
        .send()
        .await
        .unwrap();
    let (status, v) = common::read(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["errorCode"], "airlock.unauthorized");
    let r = s
        .http
        .get(format!("{}/api/v1/devices", s.url))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The OpenAPI document is served.
    let doc = s.get("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    // Malformed JSON, unknown fields, wrong types: 400 with serde's message.
    let r = s
        .http
        .post(format!("{}/api/v1/devices", s.url))
        .bearer_auth(common::ADMIN)
        .body("{\"controllerId\": ")
        .send()
        .await
        .unwrap();
    let (status, v) = common::read(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("EOF"), "{v}");
    let (status, v) = s
        .api(
            Method::POST,
            "/devices",
            Some(json!({"controllerId": "x", "colour": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("colour"), "{v}");
    let (status, _) = s
        .api(
            Method::POST,
            "/devices",
            Some(json!({"controllerId": "bad id"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An unknown query parameter: 400 in the same JSON shape, naming it.
    let (status, v) = s.api(Method::GET, "/devices?colour=red", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("colour"), "{v}");
    // Huge JSON body: 413, and the connection (the rest of the body is still on it) is closed
    // with `Connection: close`, so the client's next request goes on a new one.
    let huge = json!({"name": "g", "devices": vec!["x".repeat(100); 20_000]});
    let post_huge = async |token: &str| {
        s.http
            .post(format!("{}/api/v1/groups", s.url))
            .bearer_auth(token)
            .json(&huge)
            .send()
            .await
            .unwrap()
    };
    let r = post_huge(common::ADMIN).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["connection"], "close");
    // The same for a body refused before it is read (wrong token); a refused request without a
    // body keeps its connection.
    let r = post_huge("nope").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["connection"], "close");
    let (status, _) = s.api(Method::GET, "/groups/none", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = s
        .http
        .get(format!("{}/api/v1/groups/none", s.url))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("connection").is_none());
    // Unknown ids: 404.
    for path in [
        "/devices/nobody",
        "/groups/none",
        "/bundles/9",
        "/campaigns/9",
        "/bundles/x",
    ] {
        let (status, v) = s.api(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["errorCode"], "airlock.notFound");
    }
    let (status, _) = s.api(Method::POST, "/devices/nobody/accept", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Device creation: generated token, conflict on the same id.
    let v = s.post("/devices", json!({"controllerId": "x"})).await;
    assert_eq!(v["token"].as_str().unwrap().len(), 64);
    assert_eq!(v["status"], "accepted");
    let (status, _) = s
        .api(Method::POST, "/devices", Some(json!({"controllerId": "x"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    s.finish().await;
}
both_backends!(auth_and_bad_input);

async fn bundles(b: Backend) {
    let s = TestServer::start(b).await;
    let good = s.bundle("acme-os", "1.0.0", &s.key.clone(), 300_000);
    let (status, v) = s.upload(&good).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "acme-os");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["compatible"], json!(["test-board"]));
    assert_eq!(
        v["size"].as_u64().unwrap(),
        std::fs::metadata(&good).unwrap().len()
    );
    let id = v["id"].as_i64().unwrap();
    // The same bytes again: 409.
    let (status, v) = s.upload(&good).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    // Signed by a key the server does not trust: 422 naming the signature check.
    let untrusted = s.bundle("acme-os", "1.0.1", &s.other_key.clone(), 1000);
    let (status, v) = s.upload(&untrusted).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("signature"), "{v}");
    // Well signed but expired: 422 with the device's own words, so no campaign can use it.
    let expired = s.bundle_expiring(
        "acme-os",
        "1.0.2",
        &s.key.clone(),
        1000,
        Some("2020-01-01T00:00:00Z"),
    );
    let (status, v) = s.upload(&expired).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["message"],
        "bundle acme-os 1.0.2 expired at 2020-01-01T00:00:00Z; build and sign a fresh one"
    );
    // A flipped byte deep in the payload: refused, because every chunk is read.
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x55;
    let corrupt = s.dir.path().join("corrupt.airlock");
    std::fs::write(&corrupt, &bytes).unwrap();
    let (status, v) = s.upload(&corrupt).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("failed verification"),
        "{v}"
    );
    // Truncated, not a bundle at all, empty.
    let truncated = s.dir.path().join("truncated.airlock");
    std::fs::write(&truncated, &std::fs::read(&good).unwrap()[..5000]).unwrap();
    assert_eq!(
        s.upload(&truncated).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let junk = s.dir.path().join("junk");
    std::fs::write(&junk, b"hello, not a bundle").unwrap();
    assert_eq!(s.upload(&junk).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    std::fs::write(&junk, b"").unwrap();
    assert_eq!(s.upload(&junk).await.0, StatusCode::BAD_REQUEST);
    // Nothing refused was kept.
    let list = s.get("/bundles").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let artifacts: Vec<_> = std::fs::read_dir(s.state.config.artifacts_dir())
        .unwrap()
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    // Used by a campaign: stays. Unused: deleted with its file.
    s.add_device("d").await;
    s.post("/groups", json!({"name": "g", "devices": ["d"]}))
        .await;
    s.post(
        "/campaigns",
        json!({"name": "c", "bundle": id, "group": "g"}),
    )
    .await;
    let (status, _) = s.api(Method::DELETE, &format!("/bundles/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let other = s.good_bundle("3.0.0").await;
    let (status, _) = s
        .api(Method::DELETE, &format!("/bundles/{other}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        std::fs::read_dir(s.state.config.artifacts_dir())
            .unwrap()
            .count(),
        1
    );
    s.finish().await;
}
both_backends!(bundles);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_above_the_limit_is_refused() {
    let s = TestServer::start_with(Backend::Sqlite, |c| c.max_bundle_size = 10_000).await;
    let big = s.bundle("acme-os", "1.0.0", &s.key.clone(), 100_000);
    let (status, v) = s.upload(&big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["message"].as_str().unwrap().contains("--max-bundle-size"));
    s.finish().await;
}

async fn groups(b: Backend) {
    let s = TestServer::start(b).await;
    for id in ["edge-1", "edge-2", "core-1"] {
        s.add_device(id).await;
    }
    let put = |id: &str, t: &str| {
        let data = json!({"data": {"airlock.device_type": t}});
        let token = format!("t-{id}");
        let s = &s;
        let id = id.to_string();
        async move {
            s.ddi(Method::PUT, &id, "/configData", &token, Some(data))
                .await
        }
    };
    put("edge-1", "rpi-4").await;
    put("edge-2", "rpi-5").await;
    put("core-1", "x86").await;
    let v = s
        .post(
            "/groups",
            json!({"name": "pis", "filter": "airlock.device_type=rpi-*"}),
        )
        .await;
    assert_eq!(v["members"], json!(["edge-1", "edge-2"]));
    assert_eq!(v["type"], "dynamic");
    let v = s
        .post(
            "/groups",
            json!({"name": "not-edge-1", "filter": "controllerId!=edge-1"}),
        )
        .await;
    assert_eq!(v["members"], json!(["core-1", "edge-2"]));
    let v = s
        .post("/groups", json!({"name": "fixed", "devices": ["core-1"]}))
        .await;
    assert_eq!(v["type"], "static");
    let (status, v) = s
        .api(Method::PUT, "/groups/fixed/devices/edge-2", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["members"], json!(["core-1", "edge-2"]));
    let (status, _) = s.api(Method::PUT, "/groups/pis/devices/core-1", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = s
        .api(Method::PUT, "/groups/fixed/devices/ghost", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = s
        .api(Method::DELETE, "/groups/fixed/devices/core-1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["members"], json!(["edge-2"]));
    // Listing devices by group and status.
    let v = s.get("/devices?group=pis").await;
    assert_eq!(v.as_array().unwrap().len(), 2);
    let v = s.get("/devices?status=pending").await;
    assert_eq!(v.as_array().unwrap().len(), 0);
    // Bad groups.
    let (status, _) = s
        .api(
            Method::POST,
            "/groups",
            Some(json!({"name": "x", "filter": "novalue"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .api(
            Method::POST,
            "/groups",
            Some(json!({"name": "pis", "devices": []})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = s
        .api(
            Method::POST,
            "/groups",
            Some(json!({"name": "y", "devices": ["ghost"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.api(Method::DELETE, "/groups/pis", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/groups").await.as_array().unwrap().len(), 2);
    s.finish().await;
}
both_backends!(groups);

fn phase(c: &Value, i: usize) -> Vec<u64> {
    let p = &c["progress"][i];
    [
        "devices",
        "pending",
        "running",
        "succeeded",
        "failed",
        "canceled",
    ]
    .iter()
    .map(|k| p[k].as_u64().unwrap())
    .collect()
}

async fn has_deployment(s: &TestServer, id: &str) -> bool {
    let (status, v) = s.poll(id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["_links"].get("deploymentBase").is_some()
}

async fn campaign_phases(b: Backend) {
    let s = TestServer::start(b).await;
    let ids: Vec<String> = (0..10).map(|i| format!("d{i:02}")).collect();
    // Added in reverse: the snapshot is ordered by controller id all the same.
    for id in ids.iter().rev() {
        s.add_device(id).await;
    }
    s.post(
        "/groups",
        json!({"name": "fleet", "filter": "controllerId=d*"}),
    )
    .await;
    let bundle = s.good_bundle("1.0.0").await;
    // Bad campaigns.
    for bad in [
        json!({"name": "c", "bundle": bundle, "group": "fleet", "phases": [50, 10, 100]}),
        json!({"name": "c", "bundle": bundle, "group": "fleet", "phases": [10, 50]}),
        json!({"name": "c", "bundle": bundle, "group": "fleet", "successThreshold": 101}),
        json!({"name": "c", "bundle": bundle, "group": "fleet", "maintenanceWindow": {"start": "25:00", "duration": "01:00"}}),
    ] {
        let (status, v) = s.api(Method::POST, "/campaigns", Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    }
    let (status, _) = s
        .api(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "c", "bundle": 99, "group": "fleet"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A device reporting a type the bundle is not for: refused, naming it. Devices of the right
    // type, or that have not reported one yet, take part.
    let report_type = async |id: &str, device_type: &str| {
        let data = json!({"mode": "merge", "data": {"airlock.device_type": device_type}});
        let (status, _) = s
            .ddi(
                Method::PUT,
                id,
                "/configData",
                &format!("t-{id}"),
                Some(data),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    report_type("d00", "test-board").await;
    report_type("d03", "other-board").await;
    let roll = json!({"name": "roll", "bundle": bundle, "group": "fleet", "phases": [10, 50, 100]});
    let (status, v) = s.api(Method::POST, "/campaigns", Some(roll.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("d03 (other-board)")
            && !message.contains("d00")
            && message.contains("airlock.device_type=test-board"),
        "{message}"
    );
    report_type("d03", "test-board").await;
    let c = s.post("/campaigns", roll).await;
    let id = c["id"].as_i64().unwrap();
    let url = format!("/campaigns/{id}");
    assert_eq!(c["state"], "running");
    assert_eq!(phase(&c, 0), [1, 1, 0, 0, 0, 0]);
    assert_eq!(phase(&c, 1), [4, 4, 0, 0, 0, 0]);
    assert_eq!(phase(&c, 2), [5, 5, 0, 0, 0, 0]);
    // Phase 1 is d00 alone.
    assert!(has_deployment(&s, "d00").await);
    assert!(!has_deployment(&s, "d01").await);
    s.run_action("d00", "success").await;
    // Success threshold met: phase 2 (d01..d04) starts.
    let c = s.get(&url).await;
    assert_eq!(c["currentPhase"], 1);
    assert_eq!(phase(&c, 0), [1, 0, 0, 1, 0, 0]);
    // d01 fails: above the error threshold (0%), the campaign pauses.
    s.run_action("d01", "failure").await;
    let c = s.get(&url).await;
    assert_eq!(c["state"], "paused", "{c}");
    assert!(c["reason"].as_str().unwrap().contains("error threshold"));
    assert_eq!(phase(&c, 1), [4, 3, 0, 0, 1, 0]);
    // Paused: devices that have not fetched their action do not get it.
    assert!(!has_deployment(&s, "d02").await);
    let (status, _) = s.api(Method::POST, &format!("{url}/pause"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Resume: the failure is accepted; the rest of the phase goes on.
    let c = s.post(&format!("{url}/resume"), json!(null)).await;
    assert_eq!(c["state"], "running");
    for d in ["d02", "d03", "d04"] {
        s.run_action(d, "success").await;
    }
    // 3 of 4 succeeded, below the 100% success threshold, and the phase is over: paused.
    let c = s.get(&url).await;
    assert_eq!(c["state"], "paused", "{c}");
    assert!(
        c["reason"].as_str().unwrap().contains("success threshold"),
        "{c}"
    );
    assert!(!has_deployment(&s, "d05").await);
    // Resume with the phase over: the operator accepted its failures, phase 3 starts.
    let c = s.post(&format!("{url}/resume"), json!(null)).await;
    assert_eq!(c["currentPhase"], 2, "{c}");
    assert_eq!(phase(&c, 2), [5, 5, 0, 0, 0, 0]);
    // An operator pause holds back actions not yet fetched.
    assert!(has_deployment(&s, "d05").await);
    let (_, v) = s.poll("d05").await;
    let href = v["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(&href)
        .header("Authorization", "TargetToken t-d05")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.post(&format!("{url}/pause"), json!(null)).await;
    assert!(!has_deployment(&s, "d06").await);
    assert!(
        has_deployment(&s, "d05").await,
        "a fetched action stays offered"
    );
    s.post(&format!("{url}/resume"), json!(null)).await;
    assert!(has_deployment(&s, "d06").await);
    // Cancel: d05 (started) gets a cancelAction, the others lose their action.
    let c = s.post(&format!("{url}/cancel"), json!(null)).await;
    assert_eq!(c["state"], "canceled");
    assert!(!has_deployment(&s, "d06").await);
    let (_, v) = s.poll("d05").await;
    let cancel = v["_links"]["cancelAction"]["href"]
        .as_str()
        .expect("cancelAction link")
        .to_string();
    let action = airlock_ddi::action_id_of(&cancel).unwrap().to_string();
    let (status, v) = s
        .ddi(
            Method::GET,
            "d05",
            &format!("/cancelAction/{action}"),
            "t-d05",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["cancelAction"]["stopId"], action);
    let fb = json!({"status": {"execution": "canceled", "result": {"finished": "success"}, "details": ["stopped"]}});
    let (status, _) = s
        .ddi(
            Method::POST,
            "d05",
            &format!("/cancelAction/{action}/feedback"),
            "t-d05",
            Some(fb),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let c = s.get(&url).await;
    assert_eq!(phase(&c, 2), [5, 0, 0, 0, 0, 5], "{c}");
    let (status, _) = s.api(Method::POST, &format!("{url}/resume"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Health: d01 failed once.
    let h = s.get("/health").await;
    assert_eq!(h[0]["controllerId"], "d01");
    assert_eq!(h[0]["failures"], 1);
    // A device has one open action at a time: a second campaign waits for d05's... none open now.
    assert!(s.get("/devices/d05").await["currentAction"].is_null());
    s.finish().await;
}
both_backends!(campaign_phases);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_open_action_per_device() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.add_device("d").await;
    s.post("/groups", json!({"name": "g", "devices": ["d"]}))
        .await;
    let b1 = s.good_bundle("1.0.0").await;
    let b2 = s.good_bundle("2.0.0").await;
    let c1 = s
        .post(
            "/campaigns",
            json!({"name": "one", "bundle": b1, "group": "g"}),
        )
        .await;
    let c2 = s
        .post(
            "/campaigns",
            json!({"name": "two", "bundle": b2, "group": "g"}),
        )
        .await;
    assert_eq!(phase(&c1, 0), [1, 1, 0, 0, 0, 0]);
    assert!(c2["devices"][0]["actionId"].is_null(), "{c2}");
    s.run_action("d", "success").await;
    // The second campaign's action is created once the device is free (on the next step).
    airlock_server::campaign::step_all(&s.store, airlock_server::now_ms())
        .await
        .unwrap();
    let (_, v) = s.poll("d").await;
    let href = v["_links"]["deploymentBase"]["href"].as_str().unwrap();
    let c2 = s.get("/campaigns/2").await;
    assert_eq!(
        c2["devices"][0]["actionId"].as_i64().unwrap().to_string(),
        airlock_ddi::action_id_of(href).unwrap()
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_window_outside_means_skip() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.add_device("d").await;
    s.post("/groups", json!({"name": "g", "devices": ["d"]}))
        .await;
    let b = s.good_bundle("1.0.0").await;
    // A one-minute window twelve hours from now.
    let now_min = (airlock_server::now_ms() / 60_000) % (24 * 60);
    let start = (now_min + 12 * 60) % (24 * 60);
    let window = json!({"start": format!("{:02}:{:02}", start / 60, start % 60), "duration": "00:01", "timezone": "UTC"});
    s.post(
        "/campaigns",
        json!({"name": "w", "bundle": b, "group": "g", "maintenanceWindow": window}),
    )
    .await;
    let (_, v) = s.poll("d").await;
    let href = v["_links"]["deploymentBase"]["href"].as_str().unwrap();
    let r = s
        .http
        .get(href)
        .header("Authorization", "TargetToken t-d")
        .send()
        .await
        .unwrap();
    let dep: airlock_ddi::DeploymentBase = r.json().await.unwrap();
    assert_eq!(
        dep.deployment.maintenance_window,
        Some(airlock_ddi::MaintenanceWindow::Unavailable)
    );
    assert_eq!(dep.deployment.update, airlock_ddi::HandlingType::Skip);
    assert_eq!(dep.deployment.download, airlock_ddi::HandlingType::Forced);
    s.finish().await;
}

/// An artifact of another updater (SWUpdate's `.swu`): kept as uploaded with the name and
/// version the operator gives, rolled out to any device type, offered with its hashes.
async fn foreign_artifacts(b: Backend) {
    let s = TestServer::start(b).await;
    let file = s.dir.path().join("update.swu");
    std::fs::write(&file, airlock_testkit::random_bytes(50_000, 5)).unwrap();
    let labels = [
        ("artifact", "gw-3.1.swu"),
        ("name", "gw-image"),
        ("version", "3.1"),
    ];
    for (query, says) in [
        (&labels[..1], "needs name="),
        (&labels[..2], "needs version="),
        (
            &labels[1..],
            "name and version are for an artifact of another updater",
        ),
        (
            &[("artifact", "x.airlock"), ("name", "n"), ("version", "1")][..],
            "without artifact=",
        ),
        (
            &[("artifact", "../x"), ("name", "n"), ("version", "1")][..],
            "file name devices should see",
        ),
    ] {
        let (status, v) = s.upload_with(&file, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(says),
            "{query:?}: {v}"
        );
    }
    // Without artifact=, the same file is refused as a bundle that does not verify.
    let (status, _) = s.upload(&file).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, v) = s.upload_with(&file, &labels).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "foreign");
    assert_eq!(v["filename"], "gw-3.1.swu");
    assert_eq!(
        (&v["name"], &v["version"]),
        (&json!("gw-image"), &json!("3.1"))
    );
    assert_eq!(v["signers"], json!([]));
    let id = v["id"].as_i64().unwrap();

    // Any device type takes it: its own updater checks it.
    s.add_device("swu-1").await;
    let attrs = json!({"data": {"airlock.device_type": "some-board"}});
    s.ddi(Method::PUT, "swu-1", "/configData", "t-swu-1", Some(attrs))
        .await;
    s.post("/groups", json!({"name": "swu", "devices": ["swu-1"]}))
        .await;
    let (status, v) = s
        .api(
            Method::POST,
            "/campaigns",
            Some(json!({"name": "swu", "bundle": id, "group": "swu"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (_, base) = s.poll("swu-1").await;
    let href = base["_links"]["deploymentBase"]["href"].as_str().unwrap();
    let dep = s.get_as("t-swu-1", href).await;
    let dep: Value = dep.json().await.unwrap();
    let chunk = &dep["deployment"]["chunks"][0];
    assert_eq!(
        (&chunk["name"], &chunk["version"]),
        (&json!("gw-image"), &json!("3.1"))
    );
    let artifact = &chunk["artifacts"][0];
    assert_eq!(artifact["filename"], "gw-3.1.swu");
    let url = artifact["_links"]["download-http"]["href"]
        .as_str()
        .unwrap();
    let got = s.get_as("t-swu-1", url).await.bytes().await.unwrap();
    assert_eq!(&got[..], &std::fs::read(&file).unwrap()[..]);
    use sha2::Digest;
    assert_eq!(
        artifact["hashes"]["sha256"],
        hex::encode(sha2::Sha256::digest(&got))
    );
    s.finish().await;
}
both_backends!(foreign_artifacts);
