//! Devices: admission, inventory, health, history.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::{Admin, generate_token, hash_token};
use crate::error::{ApiError, ApiResult, JsonBody, QueryParams};
use crate::now_ms;
use crate::server::AppState;
use crate::store::{Action, Device, DeviceStatus, Finished, LogLine, Store, StoreResult};

/// A device's health: what its last check said, its last result, and how often it failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `airlock.health` as last reported: `ok` or `failed: <reason>`.
    pub check: Option<String>,
    /// `airlock.last_result` as last reported; for a device that reports none (not an Airlock
    /// device), how its last deployment ended by the server's records.
    pub last_result: Option<String>,
    /// Failed actions.
    pub failures: i64,
    pub last_seen_ms: Option<i64>,
    /// `ok`, `failing` or `unknown`: a summary for lists.
    pub state: &'static str,
}

impl Health {
    fn of(d: &Device, failures: i64, finished: &Finished) -> Self {
        let check = d.attributes.get("airlock.health").cloned();
        // The daemon reports `unknown` before its first trial boot.
        let state = match check.as_deref() {
            Some("ok") => "ok",
            Some(c) if c.starts_with("failed") => "failing",
            _ if failures > 0 => "failing",
            _ => "unknown",
        };
        Health {
            check,
            last_result: d
                .attributes
                .get("airlock.last_result")
                .or(finished.last_result.as_ref())
                .cloned(),
            failures,
            last_seen_ms: d.last_seen_ms,
            state,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    #[serde(flatten)]
    pub device: Device,
    pub health: Health,
    pub current_action: Option<Action>,
    /// The version the device runs: `airlock.version` as it reports it, or, for a device that
    /// does not run Airlock, the bundle version of the last deployment it finished successfully.
    pub version: Option<String>,
}

impl DeviceView {
    fn new(d: Device, failures: i64, finished: &Finished, current_action: Option<Action>) -> Self {
        let reported = d
            .attributes
            .get("airlock.version")
            .filter(|v| v.as_str() != "none");
        DeviceView {
            health: Health::of(&d, failures, finished),
            version: reported.or(finished.installed.as_ref()).cloned(),
            device: d,
            current_action,
        }
    }
}

pub async fn device_view(store: &Store, d: Device) -> StoreResult<DeviceView> {
    let failures = store.failure_count(&d.controller_id).await?;
    let current_action = store.open_action(&d.controller_id).await?;
    let finished = store.finished(Some(&d.controller_id)).await?;
    let finished = finished.get(&d.controller_id).cloned().unwrap_or_default();
    Ok(DeviceView::new(d, failures, &finished, current_action))
}

/// Views of many devices, with one query each for the failure counts and what they finished.
pub async fn device_views(store: &Store, devices: Vec<Device>) -> StoreResult<Vec<DeviceView>> {
    let failures: HashMap<String, i64> = store.failure_counts().await?;
    let finished = store.finished(None).await?;
    let none = Finished::default();
    Ok(devices
        .into_iter()
        .map(|d| {
            let n = failures.get(&d.controller_id).copied().unwrap_or(0);
            let f = finished.get(&d.controller_id).unwrap_or(&none);
            DeviceView::new(d, n, f, None)
        })
        .collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    group: Option<String>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Vec<DeviceView>>> {
    let mut devices = state.store.devices().await?;
    if let Some(s) = &q.status {
        let status = DeviceStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!("status {s:?} is not pending, accepted or rejected"))
        })?;
        devices.retain(|d| d.status == status);
    }
    if let Some(g) = &q.group {
        let group = state
            .store
            .group(g)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("group {g}")))?;
        let members = super::resolve_members(&state.store, &group).await?;
        devices.retain(|d| members.contains(&d.controller_id));
    }
    Ok(Json(device_views(&state.store, devices).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateDevice {
    controller_id: String,
    name: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    #[serde(flatten)]
    device: Device,
    /// The device's TargetToken; shown only now.
    token: String,
}

/// Pre-authorises a device: it is accepted and its token is known.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateDevice>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let id = body.controller_id.trim();
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "controllerId {id:?} is not valid: use 1 to 128 characters of A-Z a-z 0-9 . _ : -"
        )));
    }
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .unwrap_or_else(generate_token);
    let name = body.name.unwrap_or_else(|| id.to_string());
    let inserted = state
        .store
        .insert_device(
            id,
            &name,
            Some(&hash_token(&token)),
            DeviceStatus::Accepted,
            now_ms(),
        )
        .await?;
    if !inserted {
        return Err(ApiError::Conflict(format!("device {id} already exists")));
    }
    let device = found(&state, id).await?;
    Ok((StatusCode::CREATED, Json(Created { device, token })))
}

async fn found(state: &AppState, id: &str) -> ApiResult<Device> {
    state
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id}")))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    let d = found(&state, &id).await?;
    Ok(Json(device_view(&state.store, d).await?))
}

pub async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_device(&id).await? {
        return Err(ApiError::not_found(format!("device {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn set_status(
    state: &AppState,
    id: &str,
    status: DeviceStatus,
) -> ApiResult<Json<DeviceView>> {
    if !state.store.set_device_status(id, status).await? {
        return Err(ApiError::not_found(format!("device {id}")));
    }
    let d = found(state, id).await?;
    Ok(Json(device_view(&state.store, d).await?))
}

pub async fn accept(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    set_status(&state, &id, DeviceStatus::Accepted).await
}

pub async fn reject(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    set_status(&state, &id, DeviceStatus::Rejected).await
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    #[serde(flatten)]
    action: Action,
    log: Vec<LogLine>,
}

/// The device's deployment history, newest first, each action with its log.
pub async fn actions(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ActionView>>> {
    found(&state, &id).await?;
    let mut out = Vec::new();
    for action in state.store.actions_of(&id).await? {
        let log = state.store.action_log(action.id).await?;
        out.push(ActionView { action, log });
    }
    Ok(Json(out))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthRow {
    controller_id: String,
    status: DeviceStatus,
    #[serde(flatten)]
    health: Health,
    attributes: BTreeMap<String, String>,
}

/// Every device's health, failing ones first, then least recently seen.
pub async fn health(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<HealthRow>>> {
    let views = device_views(&state.store, state.store.devices().await?).await?;
    let mut rows: Vec<HealthRow> = views
        .into_iter()
        .map(|v| HealthRow {
            controller_id: v.device.controller_id,
            status: v.device.status,
            health: v.health,
            attributes: v.device.attributes,
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            r.health.state != "failing",
            r.health.last_seen_ms.unwrap_or(0),
        )
    });
    Ok(Json(rows))
}
