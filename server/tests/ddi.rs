//! The device API: admission, tokens, isolation between devices, bad input, downloads.

mod common;

use airlock_server::store::Backend;
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn admission(b: Backend) {
    let s = TestServer::start(b).await;
    // First contact with a TargetToken: recorded as pending, refused with a clear message.
    let (status, v) = s.ddi(Method::GET, "dev-1", "", "secret-1", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("awaits admission"),
        "{v}"
    );
    let d = s.get("/devices/dev-1").await;
    assert_eq!(d["status"], "pending");
    assert!(d["lastSeenMs"].is_i64());
    // Another token for the same id: 401, the pending record keeps its first token.
    let (status, _) = s.ddi(Method::GET, "dev-1", "", "impostor", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Accepted: the poll answers, with the configData link (no attributes yet).
    s.post("/devices/dev-1/accept", json!(null)).await;
    let (status, v) = s.ddi(Method::GET, "dev-1", "", "secret-1", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["config"]["polling"]["sleep"], "00:00:10");
    assert!(
        v["_links"]["configData"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/DEFAULT/controller/v1/dev-1/configData")
    );
    assert!(v["_links"].get("deploymentBase").is_none());
    // Attributes: merge, then the link goes away.
    let attrs = json!({"mode": "merge", "data": {"airlock.device_type": "test-board", "airlock.health": "failed: disk"}});
    let (status, _) = s
        .ddi(Method::PUT, "dev-1", "/configData", "secret-1", Some(attrs))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, v) = s.ddi(Method::GET, "dev-1", "", "secret-1", None).await;
    assert!(v["_links"].get("configData").is_none(), "{v}");
    let d = s.get("/devices/dev-1").await;
    assert_eq!(d["attributes"]["airlock.device_type"], "test-board");
    assert_eq!(d["health"]["state"], "failing");
    // Remove one key.
    let rm = json!({"mode": "remove", "data": {"airlock.health": ""}});
    s.ddi(Method::PUT, "dev-1", "/configData", "secret-1", Some(rm))
        .await;
    let d = s.get("/devices/dev-1").await;
    assert!(d["attributes"].get("airlock.health").is_none());
    // Rejected: refused again.
    s.post("/devices/dev-1/reject", json!(null)).await;
    let (status, v) = s.ddi(Method::GET, "dev-1", "", "secret-1", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().contains("rejected"));
    // Pre-authorised device: accepted at once with its token.
    s.add_device("dev-2").await;
    let (status, _) = s.poll("dev-2").await;
    assert_eq!(status, StatusCode::OK);
    // A known device with the wrong token: 401 and nothing recorded.
    let before = s.get("/devices/dev-2").await["lastSeenMs"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, v) = s.ddi(Method::GET, "dev-2", "", "wrong", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["errorCode"], "airlock.unauthorized");
    assert_eq!(s.get("/devices/dev-2").await["lastSeenMs"], before);
    // No credentials, unknown scheme, wrong tenant.
    let r = s.http.get(s.device_url("dev-2")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(s.device_url("dev-2"))
        .header("Authorization", "Basic x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(format!("{}/OTHER/controller/v1/dev-2", s.url))
        .header("Authorization", "TargetToken t-dev-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The gateway token admits a device.
    let r = s
        .http
        .get(s.device_url("gw-dev"))
        .header("Authorization", "GatewayToken gateway-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .get(s.device_url("gw-dev2"))
        .header("Authorization", "GatewayToken nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = s.api(Method::GET, "/devices/gw-dev2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.finish().await;
}
both_backends!(admission);

async fn devices_are_isolated(b: Backend) {
    let s = TestServer::start(b).await;
    s.add_device("a").await;
    s.add_device("b").await;
    let bundle = s.good_bundle("1.0.0").await;
    s.post("/groups", json!({"name": "ab", "devices": ["a", "b"]}))
        .await;
    s.post(
        "/campaigns",
        json!({"name": "c", "bundle": bundle, "group": "ab"}),
    )
    .await;
    let (_, v) = s.poll("a").await;
    let href = v["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let a_action = airlock_ddi::action_id_of(&href).unwrap().to_string();
    // b may not read or report on a's action, nor download through a's path.
    let fb = json!({"status": {"execution": "closed", "result": {"finished": "failure"}, "details": []}});
    let (status, _) = s
        .ddi(
            Method::GET,
            "b",
            &format!("/deploymentBase/{a_action}"),
            "t-b",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = s
        .ddi(
            Method::POST,
            "b",
            &format!("/deploymentBase/{a_action}/feedback"),
            "t-b",
            Some(fb.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    // b with its own token on a's path: 401.
    let (status, _) = s
        .ddi(
            Method::POST,
            "a",
            &format!("/deploymentBase/{a_action}/feedback"),
            "t-b",
            Some(fb),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let a = s.get("/devices/a/actions").await;
    assert_eq!(a[0]["status"], "scheduled", "{a}");
    s.finish().await;
}
both_backends!(devices_are_isolated);

async fn bad_input(b: Backend) {
    let s = TestServer::start(b).await;
    s.add_device("d").await;
    // Malformed JSON: 400 with serde's message.
    let r = s
        .http
        .put(format!("{}/configData", s.device_url("d")))
        .header("Authorization", "TargetToken t-d")
        .header("Content-Type", "application/json")
        .body("{\"data\": ")
        .send()
        .await
        .unwrap();
    let (status, v) = common::read(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["message"].as_str().unwrap().contains("malformed JSON"),
        "{v}"
    );
    // Huge body: 413.
    let huge = format!("{{\"data\": {{\"k\": \"{}\"}}}}", "x".repeat(200_000));
    let r = s
        .http
        .put(format!("{}/configData", s.device_url("d")))
        .header("Authorization", "TargetToken t-d")
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, v) = common::read(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["errorCode"], "airlock.tooLarge");
    // Unknown action: 404. Not a number: 404.
    let (status, _) = s
        .ddi(Method::GET, "d", "/deploymentBase/999", "t-d", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .ddi(Method::GET, "d", "/deploymentBase/x", "t-d", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A controller id with odd characters: 400.
    let (status, _) = s.ddi(Method::GET, "a%20b", "", "t", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    s.finish().await;
}
both_backends!(bad_input);

async fn deployment_and_range_download(b: Backend) {
    let s = TestServer::start(b).await;
    let (href, bundle) = s.deployment_link("d", "2.0.0").await;
    let action = airlock_ddi::action_id_of(&href).unwrap().to_string();
    let r = s.get_as("t-d", &href).await;
    let dep: airlock_ddi::DeploymentBase = r.json().await.unwrap();
    assert_eq!(dep.id, action);
    assert_eq!(dep.deployment.update, airlock_ddi::HandlingType::Forced);
    let art = &dep.deployment.chunks[0].artifacts[0];
    assert_eq!(art.filename, "acme-os-2.0.0.airlock");
    let url = art.links.best().unwrap().to_string();
    assert!(url.contains(&format!(
        "/controller/v1/d/softwaremodules/{bundle}/artifacts/"
    )));
    // Whole file: hash matches.
    let r = s.get_as("t-d", &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    let all = r.bytes().await.unwrap();
    assert_eq!(all.len() as u64, art.size);
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&all)),
        art.hashes.sha256.clone().unwrap()
    );
    // SHA-1 and MD5 too, and the MD5SUM links, as hawkBit lists them.
    assert_eq!(Some(hex::encode(sha1::Sha1::digest(&all))), art.hashes.sha1);
    let md5 = hex::encode(md5::Md5::digest(&all));
    assert_eq!(Some(md5.clone()), art.hashes.md5);
    let md5sum = format!("{url}.MD5SUM");
    assert_eq!(art.links.md5sum_http.as_ref().unwrap().href, md5sum);
    assert_eq!(art.links.md5sum.as_ref().unwrap().href, md5sum);
    let r = s.get_as("t-d", &md5sum).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment;filename=acme-os-2.0.0.airlock.MD5SUM"
    );
    assert_eq!(
        r.text().await.unwrap(),
        format!("{md5}  acme-os-2.0.0.airlock")
    );
    // A bounded Range: 206 with Content-Range and exactly those bytes.
    let r = s
        .http
        .get(&url)
        .header("Authorization", "TargetToken t-d")
        .header("Range", "bytes=100-1123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-1123/{}", all.len())
    );
    assert_eq!(r.bytes().await.unwrap(), all.slice(100..1124));
    // Without a token, or as a device never given the bundle: refused.
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.add_device("e").await;
    let other = url.replace("/v1/d/", "/v1/e/");
    let r = s.get_as("t-e", &other).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Progress, then success: the action closes and the device is asked for its attributes.
    let fb = json!({"status": {"execution": "proceeding", "result": {"finished": "none", "progress": {"cnt": 1, "of": 3}}, "details": ["writing slot b"]}});
    let (status, _) = s
        .ddi(
            Method::POST,
            "d",
            &format!("/deploymentBase/{action}/feedback"),
            "t-d",
            Some(fb),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.get("/devices/d").await["currentAction"]["status"],
        "running"
    );
    s.run_action("d", "success").await;
    let fb = json!({"status": {"execution": "closed", "result": {"finished": "success"}, "details": ["done"]}});
    let (status, _) = s
        .ddi(
            Method::POST,
            "d",
            &format!("/deploymentBase/{action}/feedback"),
            "t-d",
            Some(fb),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let h = s.get("/devices/d/actions").await;
    assert_eq!(h[0]["status"], "succeeded", "{h}");
    let log: Vec<String> = h[0]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        log.iter()
            .any(|l| l == "device: proceeding (1/3): writing slot b"),
        "{log:?}"
    );
    let (_, v) = s.poll("d").await;
    assert!(
        v["_links"]["installedBase"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/installedBase/{action}"))
    );
    let (status, _) = s
        .ddi(
            Method::GET,
            "d",
            &format!("/installedBase/{action}"),
            "t-d",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.get("/campaigns/1").await["state"], "finished");
    s.finish().await;
}
both_backends!(deployment_and_range_download);

/// What DDI clients written for hawkBit send and expect: `?c=` on the deploymentBase link (and
/// paths with or without it), feedback read as leniently as hawkBit reads it, `rejected` keeping
/// the action open, and the JSON error shape for a wrong method.
async fn hawkbit_clients_are_understood(b: Backend) {
    let s = TestServer::start(b).await;
    let (href, _) = s.deployment_link("h", "1.0.0").await;
    let (path, c) = href
        .split_once("?c=")
        .expect("a ?c= parameter, as hawkBit's");
    assert!(c.parse::<i32>().is_ok(), "{href}");
    let (_, again) = s.poll("h").await;
    assert_eq!(again["_links"]["deploymentBase"]["href"], href.as_str());
    let action = airlock_ddi::action_id_of(path).unwrap().to_string();
    for rest in [
        format!("/deploymentBase/{action}?c={c}"),
        format!("/deploymentBase/{action}"),
    ] {
        let (status, v) = s.ddi(Method::GET, "h", &rest, "t-h", None).await;
        assert_eq!(status, StatusCode::OK, "{rest}: {v}");
        assert_eq!(v["id"], action.as_str());
    }
    // The link changes with what it answers: the action is now running.
    let (_, v) = s.poll("h").await;
    assert_ne!(v["_links"]["deploymentBase"]["href"], href.as_str());

    let feedback = format!("/deploymentBase/{action}/feedback");
    for fb in [
        json!({"time": "20140511T121314", "status": {"execution": "download",
            "result": {"finished": "none", "progress": {"cnt": 1}}, "details": null}}),
        json!({"status": {"execution": "proceeding", "code": 7,
            "result": {"finished": "none", "progress": {"cnt": 2, "of": ""}},
            "details": ["half"]}, "id": action, "extra": {"k": 1}}),
        json!({"status": {"execution": "downloaded", "result": {"finished": "none", "progress": {}}}}),
        json!({"status": {"execution": "resumed", "result": {"finished": "none"}}}),
        json!({"status": {"execution": "scheduled", "result": {"finished": "none"}}}),
        json!({"status": {"execution": "rejected", "result": {"finished": "none"},
            "details": ["not now"]}}),
    ] {
        let (status, v) = s
            .ddi(Method::POST, "h", &feedback, "t-h", Some(fb.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{fb}: {v}");
    }
    let actions = s.get("/devices/h/actions").await;
    assert_eq!(
        actions[0]["status"], "running",
        "rejected keeps it open: {actions}"
    );

    // A wrong method on a device path: the JSON error shape, 405.
    for (method, rest) in [(Method::DELETE, ""), (Method::GET, feedback.as_str())] {
        let (status, v) = s.ddi(method.clone(), "h", rest, "t-h", None).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {rest}: {v}"
        );
        assert_eq!(v["errorCode"], "airlock.methodNotAllowed", "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "{method} is not allowed on /DEFAULT/controller/v1/h"
            )),
            "{message}"
        );
    }

    let done = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let (status, _) = s.ddi(Method::POST, "h", &feedback, "t-h", Some(done)).await;
    assert_eq!(status, StatusCode::OK);
    let actions = s.get("/devices/h/actions").await;
    assert_eq!(actions[0]["status"], "succeeded", "{actions}");
    s.finish().await;
}
both_backends!(hawkbit_clients_are_understood);

/// A DDI client other than Airlock's daemon reports no `airlock.*` attributes: the device list
/// still shows what it installed and how its last deployment ended, from the server's records.
async fn a_device_not_running_airlock_shows_what_it_installed(b: Backend) {
    let s = TestServer::start(b).await;
    s.deployment_link("foreign", "1.0.0").await;
    s.run_action("foreign", "success").await.unwrap();
    let d = s.get("/devices/foreign").await;
    assert_eq!(d["version"], "1.0.0", "{d}");
    assert_eq!(d["health"]["lastResult"], "succeeded acme-os 1.0.0", "{d}");

    let second = s.good_bundle("2.0.0").await;
    s.post(
        "/campaigns",
        json!({"name": "second", "bundle": second, "group": "only-foreign"}),
    )
    .await;
    s.run_action("foreign", "failure").await.unwrap();
    let list = s.get("/devices").await;
    let d = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["controllerId"] == "foreign")
        .unwrap();
    assert_eq!(
        d["version"], "1.0.0",
        "the failed 2.0.0 is not installed: {d}"
    );
    assert_eq!(d["health"]["lastResult"], "failed acme-os 2.0.0", "{d}");

    // A device that reports its own version and result is shown as it says.
    let attrs =
        json!({"data": {"airlock.version": "9.9.9", "airlock.last_result": "committed os 9.9.9"}});
    let (status, _) = s
        .ddi(
            Method::PUT,
            "foreign",
            "/configData",
            "t-foreign",
            Some(attrs),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let d = s.get("/devices/foreign").await;
    assert_eq!(d["version"], "9.9.9");
    assert_eq!(d["health"]["lastResult"], "committed os 9.9.9");
    s.finish().await;
}
both_backends!(a_device_not_running_airlock_shows_what_it_installed);

/// docs/fleet.md's table of DDI resources and fields: every field marked as sent by the server
/// is in its answers.
async fn the_ddi_table_is_what_the_server_answers(b: Backend) {
    let s = TestServer::start(b).await;
    let mut answers: Vec<(&str, serde_json::Value)> = Vec::new();
    let get = async |resource: &'static str, rest: String| {
        let (status, v) = s.ddi(Method::GET, "t", &rest, "t-t", None).await;
        assert_eq!(status, StatusCode::OK, "{rest}: {v}");
        (resource, v)
    };
    let base = "`GET` (controller base)";
    // Offered (with the configData link: no attributes yet), then installed.
    let (href, _) = s.deployment_link("t", "1.0.0").await;
    let id = airlock_ddi::action_id_of(&href).unwrap().to_string();
    answers.push(get(base, String::new()).await);
    answers.push(get("`GET deploymentBase/{id}`", format!("/deploymentBase/{id}")).await);
    s.run_action("t", "success").await.unwrap();
    let polled = get(base, String::new()).await;
    let installed = polled.1["_links"]["installedBase"]["href"]
        .as_str()
        .unwrap();
    let installed = airlock_ddi::action_id_of(installed).unwrap().to_string();
    answers.push(polled);
    answers.push(
        get(
            "`GET installedBase/{id}`",
            format!("/installedBase/{installed}"),
        )
        .await,
    );
    // With a maintenance window, then canceled while running.
    let second = s.good_bundle("2.0.0").await;
    let campaign = s
        .post(
            "/campaigns",
            json!({"name": "w", "bundle": second, "group": "only-t",
                   "maintenanceWindow": {"start": "00:00", "duration": "01:00"}}),
        )
        .await;
    let (_, v) = s.poll("t").await;
    let href = v["_links"]["deploymentBase"]["href"].as_str().unwrap();
    let id = airlock_ddi::action_id_of(href).unwrap().to_string();
    answers.push(get("`GET deploymentBase/{id}`", format!("/deploymentBase/{id}")).await);
    s.post(
        &format!("/campaigns/{}/cancel", campaign["id"]),
        json!(null),
    )
    .await;
    let polled = get(base, String::new()).await;
    assert!(
        polled.1["_links"]["cancelAction"].is_object(),
        "{}",
        polled.1
    );
    answers.push(polled);
    answers.push(get("`GET cancelAction/{id}`", format!("/cancelAction/{id}")).await);

    let rows = airlock_testkit::ddi_table();
    let sent: Vec<_> = rows.iter().filter(|r| r.server == "sends").collect();
    assert!(sent.len() > 20, "{rows:?}");
    for row in sent {
        let found = answers
            .iter()
            .filter(|(resource, _)| *resource == row.resource)
            .any(|(_, v)| common::has_field(v, &row.field));
        assert!(
            found,
            "docs/fleet.md says the server sends {row:?}; not in {answers:#?}"
        );
    }
    s.finish().await;
}
both_backends!(the_ddi_table_is_what_the_server_answers);
