//! The messages of hawkBit's Direct Device Integration (DDI) API, version 1, as far as Airlock
//! speaks it: the device polls its controller resource, follows the links it is given
//! (`deploymentBase`, `cancelAction`, `installedBase`, `configData`) and answers with feedback.
//! Field names are exactly hawkBit's (camelCase, `_links`, `download-http`), so that the
//! `airlock daemon` works against Eclipse hawkBit and against `airlock-server` alike.
//!
//! Paths, relative to the server's base URL:
//! - `GET  {tenant}/controller/v1/{controllerId}` → [`ControllerBase`]
//! - `GET  …/deploymentBase/{actionId}` and `…/installedBase/{actionId}` → [`DeploymentBase`]
//! - `POST …/deploymentBase/{actionId}/feedback` ← [`ActionFeedback`]
//! - `GET  …/cancelAction/{actionId}` → [`CancelAction`]
//! - `POST …/cancelAction/{actionId}/feedback` ← [`ActionFeedback`]
//! - `PUT  …/configData` ← [`ConfigData`]

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `Authorization` header schemes hawkBit accepts from devices.
pub const TARGET_TOKEN_SCHEME: &str = "TargetToken";
pub const GATEWAY_TOKEN_SCHEME: &str = "GatewayToken";

/// A link: `{"href": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
}

impl Link {
    pub fn new(href: impl Into<String>) -> Self {
        Self { href: href.into() }
    }
}

/// The answer to a poll of `{tenant}/controller/v1/{controllerId}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerBase {
    #[serde(default)]
    pub config: PollingConfig,
    #[serde(rename = "_links", default)]
    pub links: ControllerLinks,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollingConfig {
    #[serde(default)]
    pub polling: Polling,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polling {
    /// How long to wait before the next poll, as `HH:MM:SS`.
    pub sleep: String,
}

impl Default for Polling {
    fn default() -> Self {
        Self {
            sleep: format_sleep(Duration::from_secs(300)),
        }
    }
}

/// What the server wants the device to do next; absent links mean nothing to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerLinks {
    #[serde(
        rename = "deploymentBase",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub deployment_base: Option<Link>,
    #[serde(
        rename = "cancelAction",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub cancel_action: Option<Link>,
    #[serde(
        rename = "installedBase",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub installed_base: Option<Link>,
    /// Present when the server asks for the device's attributes.
    #[serde(
        rename = "configData",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub config_data: Option<Link>,
}

/// `deploymentBase/{actionId}` (and `installedBase/{actionId}`): one update action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentBase {
    /// The action id, as a string.
    pub id: String,
    pub deployment: Deployment,
    #[serde(
        rename = "actionHistory",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub action_history: Option<ActionHistory>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub download: HandlingType,
    pub update: HandlingType,
    /// Present only when the action has a maintenance schedule.
    #[serde(
        rename = "maintenanceWindow",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub maintenance_window: Option<MaintenanceWindow>,
    pub chunks: Vec<Chunk>,
}

/// How the device should handle the download or the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlingType {
    /// Not now (for `update`: download only, install later).
    Skip,
    /// The device may decide when.
    Attempt,
    /// At once.
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceWindow {
    Available,
    Unavailable,
}

/// A software module of the deployment; Airlock's bundle is an artifact of one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub part: String,
    pub version: String,
    pub name: String,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Vec<Metadata>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub filename: String,
    #[serde(default)]
    pub hashes: Hashes,
    pub size: u64,
    #[serde(rename = "_links", default)]
    pub links: ArtifactLinks,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLinks {
    /// HTTPS download.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub download: Option<Link>,
    /// Plain HTTP download.
    #[serde(
        rename = "download-http",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub download_http: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub md5sum: Option<Link>,
    #[serde(
        rename = "md5sum-http",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub md5sum_http: Option<Link>,
}

impl ArtifactLinks {
    /// The download URL to use: HTTPS when offered.
    pub fn best(&self) -> Option<&str> {
        self.download
            .as_ref()
            .or(self.download_http.as_ref())
            .map(|l| l.href.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionHistory {
    pub status: String,
    #[serde(default)]
    pub messages: Vec<String>,
}

/// `cancelAction/{actionId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAction {
    pub id: String,
    #[serde(rename = "cancelAction")]
    pub cancel_action: CancelActionBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelActionBody {
    /// The action to stop.
    #[serde(rename = "stopId")]
    pub stop_id: String,
}

/// Feedback on an action (deployment or cancellation). Read as leniently as hawkBit reads it:
/// unknown fields (hawkBit's older `time`, anything a client adds) are ignored, `details` may be
/// missing or null, and a progress count may be missing, null, empty or a numeric string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionFeedback {
    /// Milliseconds since the Unix epoch when the device made the report.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timestamp: Option<u64>,
    pub status: FeedbackStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackStatus {
    pub execution: Execution,
    pub result: FeedbackResult,
    /// A device-specific code; Airlock leaves it out.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<i32>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub details: Vec<String>,
}

/// Where the action stands on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    Closed,
    Proceeding,
    Canceled,
    Scheduled,
    Rejected,
    Resumed,
    Downloaded,
    Download,
}

impl Execution {
    /// Every value hawkBit accepts.
    pub const ALL: [Execution; 8] = [
        Execution::Closed,
        Execution::Proceeding,
        Execution::Canceled,
        Execution::Scheduled,
        Execution::Rejected,
        Execution::Resumed,
        Execution::Downloaded,
        Execution::Download,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackResult {
    pub finished: Finished,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub progress: Option<FeedbackProgress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    Success,
    Failure,
    None,
}

/// How far the device is: `cnt` of `of` steps. Either may be left out (hawkBit requires
/// neither).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackProgress {
    #[serde(
        default,
        deserialize_with = "lenient_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cnt: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub of: Option<u64>,
}

impl FeedbackProgress {
    pub fn new(cnt: u64, of: u64) -> Self {
        Self {
            cnt: Some(cnt),
            of: Some(of),
        }
    }
}

/// `null` reads as an empty list.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A count as clients send it: a number, a numeric string, or nothing (`null`, `""`).
fn lenient_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("a progress count must not be negative: {n}"))),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => {
            s.trim().parse().map(Some).map_err(|_| {
                D::Error::custom(format!("a progress count must be a number, not {s:?}"))
            })
        }
        other => Err(D::Error::custom(format!(
            "a progress count must be a number, not {other}"
        ))),
    }
}

impl ActionFeedback {
    pub fn new(execution: Execution, finished: Finished, details: Vec<String>) -> Self {
        Self {
            timestamp: None,
            status: FeedbackStatus {
                execution,
                result: FeedbackResult {
                    finished,
                    progress: None,
                },
                code: None,
                details,
            },
        }
    }
}

/// `PUT configData`: the device's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigData {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<UpdateMode>,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// Add to and overwrite the attributes the server holds.
    Merge,
    /// Replace them all.
    Replace,
    /// Remove the keys given.
    Remove,
}

/// The error body hawkBit answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "errorCode")]
    pub error_code: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("polling sleep {0:?} is not HH:MM:SS")]
pub struct BadSleep(pub String);

/// Parses hawkBit's `HH:MM:SS` polling interval.
pub fn parse_sleep(text: &str) -> Result<Duration, BadSleep> {
    let bad = || BadSleep(text.to_string());
    let mut parts = text.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let field = |p: &str, max: u64| -> Result<u64, BadSleep> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<u64>().ok().filter(|v| *v <= max).ok_or_else(bad)
    };
    let (h, m, s) = (field(h, 9999)?, field(m, 59)?, field(s, 59)?);
    Ok(Duration::from_secs(h * 3600 + m * 60 + s))
}

/// Formats a duration as hawkBit's `HH:MM:SS` (whole seconds).
pub fn format_sleep(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The action id at the end of a `deploymentBase`/`cancelAction`/`installedBase` link, with any
/// query string (hawkBit appends `?c=…`) stripped.
pub fn action_id_of(href: &str) -> Option<&str> {
    let path = href.split(['?', '#']).next()?;
    let id = path.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn controller_base_reads_hawkbit_json() {
        let body = json!({
            "config": {"polling": {"sleep": "12:00:00"}},
            "_links": {
                "deploymentBase": {"href": "https://h/DEFAULT/controller/v1/dev1/deploymentBase/8?c=-2127183556"},
                "configData": {"href": "https://h/DEFAULT/controller/v1/dev1/configData"}
            }
        });
        let base: ControllerBase = serde_json::from_value(body).unwrap();
        assert_eq!(
            parse_sleep(&base.config.polling.sleep).unwrap(),
            Duration::from_secs(43200)
        );
        let href = &base.links.deployment_base.as_ref().unwrap().href;
        assert_eq!(action_id_of(href), Some("8"));
        assert!(base.links.cancel_action.is_none());
        assert!(base.links.config_data.is_some());
    }

    #[test]
    fn deployment_base_round_trips_with_hawkbit_names() {
        let body = json!({
            "id": "8",
            "deployment": {
                "download": "forced",
                "update": "attempt",
                "maintenanceWindow": "unavailable",
                "chunks": [{
                    "part": "os", "version": "1.0.75", "name": "acme-os",
                    "artifacts": [{
                        "filename": "acme-os-1.0.75.airlock",
                        "hashes": {"sha1": "a", "md5": "b", "sha256": "c"},
                        "size": 3,
                        "_links": {
                            "download": {"href": "https://h/a"},
                            "download-http": {"href": "http://h/a"}
                        }
                    }]
                }]
            },
            "actionHistory": {"status": "RUNNING", "messages": ["started"]}
        });
        let d: DeploymentBase = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(d.deployment.update, HandlingType::Attempt);
        assert_eq!(
            d.deployment.maintenance_window,
            Some(MaintenanceWindow::Unavailable)
        );
        assert_eq!(
            d.deployment.chunks[0].artifacts[0].links.best(),
            Some("https://h/a")
        );
        assert_eq!(serde_json::to_value(&d).unwrap(), body);
    }

    #[test]
    fn feedback_serialises_as_hawkbit_expects() {
        let mut f = ActionFeedback::new(
            Execution::Proceeding,
            Finished::None,
            vec!["downloading".into()],
        );
        f.status.result.progress = Some(FeedbackProgress::new(2, 5));
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"status": {"execution": "proceeding", "result": {"finished": "none", "progress": {"cnt": 2, "of": 5}}, "details": ["downloading"]}})
        );
        let cancel: CancelAction =
            serde_json::from_value(json!({"id": "11", "cancelAction": {"stopId": "11"}})).unwrap();
        assert_eq!(cancel.cancel_action.stop_id, "11");
    }

    #[test]
    fn feedback_is_read_as_leniently_as_hawkbit_reads_it() {
        let read = |v: serde_json::Value| serde_json::from_value::<ActionFeedback>(v);
        for (progress, expected) in [
            (
                json!({"cnt": 2}),
                FeedbackProgress {
                    cnt: Some(2),
                    of: None,
                },
            ),
            (
                json!({"cnt": 2, "of": ""}),
                FeedbackProgress {
                    cnt: Some(2),
                    of: None,
                },
            ),
            (
                json!({"cnt": "3", "of": null}),
                FeedbackProgress {
                    cnt: Some(3),
                    of: None,
                },
            ),
            (json!({}), FeedbackProgress::default()),
            (json!({"cnt": 1, "of": 4.0}), FeedbackProgress::new(1, 4)),
        ] {
            let f = read(json!({
                "id": "8", "time": "20140511T121314",
                "status": {"execution": "proceeding", "code": 200, "details": null,
                           "result": {"finished": "none", "progress": progress.clone()}},
                "extra": {"anything": true}
            }))
            .unwrap_or_else(|e| panic!("{progress}: {e}"));
            assert_eq!(f.status.result.progress, Some(expected), "{progress}");
            assert!(f.status.details.is_empty());
            assert_eq!(f.status.code, Some(200));
        }
        for execution in Execution::ALL {
            for finished in ["success", "failure", "none"] {
                let f =
                    json!({"status": {"execution": execution, "result": {"finished": finished}}});
                assert!(read(f).is_ok(), "{execution:?} {finished}");
            }
        }
        let e = read(json!({"status": {"execution": "proceeding",
            "result": {"finished": "none", "progress": {"cnt": "lots"}}}}))
        .unwrap_err();
        assert!(e.to_string().contains("must be a number"), "{e}");
    }

    #[test]
    fn sleep_parses_and_formats() {
        assert_eq!(parse_sleep("00:05:00").unwrap(), Duration::from_secs(300));
        assert_eq!(format_sleep(Duration::from_secs(3723)), "01:02:03");
        for bad in [
            "",
            "5",
            "00:60:00",
            "a:b:c",
            "00:00:00:00",
            "-1:00:00",
            "00:00:",
        ] {
            assert!(parse_sleep(bad).is_err(), "{bad}");
        }
        assert_eq!(
            action_id_of("https://h/x/deploymentBase/42?c=1"),
            Some("42")
        );
        assert_eq!(action_id_of(""), None);
    }
}
