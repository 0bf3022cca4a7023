//! The device API: hawkBit DDI v1 paths and messages, so that `airlock daemon` (or any DDI
//! client) cannot tell this server from hawkBit for the calls it makes.
//!
//! Authentication: `TargetToken <t>` bound to the controller id, or the server-wide
//! `GatewayToken <t>`. An unknown controller id presenting a TargetToken is recorded as pending
//! with that token (trust on first use) until an operator accepts or rejects it.

use airlock_ddi::{
    ActionFeedback, Artifact, ArtifactLinks, CancelAction, CancelActionBody, Chunk, ConfigData,
    ControllerBase, ControllerLinks, Deployment, DeploymentBase, Execution, FeedbackProgress,
    Finished, GATEWAY_TOKEN_SCHEME, HandlingType, Hashes, Link, MaintenanceWindow, Polling,
    PollingConfig, TARGET_TOKEN_SCHEME, UpdateMode,
};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HOST};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::auth::{hash_token, same_secret};
use crate::error::{ApiError, ApiResult, RawBody, parse_json};
use crate::server::{AppState, DDI_BODY_LIMIT};
use crate::store::{Action, ActionStatus, Device, DeviceStatus, FeedbackOutcome};
use crate::verify::LegacyHashes;
use crate::{campaign, now_ms};

const BASE: &str = "/{tenant}/controller/v1/{controller_id}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, get(poll))
        .route(
            &format!("{BASE}/deploymentBase/{{action}}"),
            get(deployment),
        )
        .route(
            &format!("{BASE}/deploymentBase/{{action}}/feedback"),
            post(deployment_feedback),
        )
        .route(
            &format!("{BASE}/cancelAction/{{action}}"),
            get(cancel_action),
        )
        .route(
            &format!("{BASE}/cancelAction/{{action}}/feedback"),
            post(cancel_feedback),
        )
        .route(&format!("{BASE}/installedBase/{{action}}"), get(installed))
        .route(&format!("{BASE}/configData"), put(config_data))
        .route(
            &format!("{BASE}/softwaremodules/{{bundle}}/artifacts/{{filename}}"),
            get(artifact),
        )
        .layer(DefaultBodyLimit::max(DDI_BODY_LIMIT))
}

/// Controller ids are path segments and appear in links: keep them to a safe alphabet.
fn check_controller_id(id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "controller id {id:?} is not valid: use 1 to 128 characters of A-Z a-z 0-9 . _ : -"
        )))
    }
}

/// Who is calling: the accepted device `controller_id`, or an error that says why not.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    controller_id: &str,
) -> ApiResult<Device> {
    if !tenant.eq_ignore_ascii_case(&state.config.tenant) {
        return Err(ApiError::NotFound(format!(
            "tenant {tenant:?} is not served here"
        )));
    }
    check_controller_id(controller_id)?;
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .map(|(s, t)| (s.to_string(), t.trim().to_string()));
    let Some((scheme, token)) = header else {
        return Err(ApiError::Unauthorized(format!(
            "missing credentials: send `Authorization: {TARGET_TOKEN_SCHEME} <token>`"
        )));
    };
    let store = &state.store;
    let now = now_ms();
    let device = if scheme.eq_ignore_ascii_case(GATEWAY_TOKEN_SCHEME) {
        let valid = state
            .config
            .gateway_token
            .as_deref()
            .is_some_and(|g| same_secret(g, &token));
        if !valid {
            return Err(ApiError::Unauthorized("wrong gateway token".into()));
        }
        // The gateway token is the operator's own secret: devices it brings are admitted.
        store
            .insert_device(
                controller_id,
                controller_id,
                None,
                DeviceStatus::Accepted,
                now,
            )
            .await?;
        store.device(controller_id).await?
    } else if scheme.eq_ignore_ascii_case(TARGET_TOKEN_SCHEME) {
        let hash = hash_token(&token);
        if store
            .insert_device(
                controller_id,
                controller_id,
                Some(&hash),
                DeviceStatus::Pending,
                now,
            )
            .await?
        {
            tracing::info!(device = controller_id, "new device awaits admission");
        }
        let device = store.device(controller_id).await?;
        if let Some(d) = &device
            && d.token_hash
                .as_deref()
                .is_none_or(|h| !same_secret(h, &hash))
        {
            return Err(ApiError::Unauthorized(format!(
                "wrong token for device {controller_id}"
            )));
        }
        device
    } else {
        return Err(ApiError::Unauthorized(format!(
            "unknown authorization scheme {scheme:?}: use {TARGET_TOKEN_SCHEME} or {GATEWAY_TOKEN_SCHEME}"
        )));
    };
    let device = device.ok_or_else(|| ApiError::not_found(format!("device {controller_id}")))?;
    store.touch_device(controller_id, now);
    match device.status {
        DeviceStatus::Accepted => Ok(device),
        DeviceStatus::Pending => Err(ApiError::Forbidden(format!(
            "device {controller_id} awaits admission: an operator must accept it (`airlock-server device accept {controller_id}`)"
        ))),
        DeviceStatus::Rejected => Err(ApiError::Forbidden(format!(
            "device {controller_id} was rejected by an operator"
        ))),
    }
}

/// The base URL links are built from.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn device_url(state: &AppState, headers: &HeaderMap, controller_id: &str) -> String {
    format!(
        "{}/{}/controller/v1/{controller_id}",
        base_url(state, headers),
        state.config.tenant
    )
}

/// Whether the device may be handed this open action now (a paused campaign holds back
/// actions not yet fetched).
async fn offered(state: &AppState, a: &Action) -> ApiResult<bool> {
    Ok(match (a.status, a.campaign_id) {
        (ActionStatus::Scheduled, Some(c)) => state.store.campaign_running(c).await?,
        _ => true,
    })
}

async fn poll(
    State(state): State<AppState>,
    Path((tenant, controller_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ControllerBase>> {
    let device = authenticate(&state, &headers, &tenant, &controller_id).await?;
    let url = device_url(&state, &headers, &controller_id);
    let mut links = ControllerLinks::default();
    match state.store.open_action(&controller_id).await? {
        Some(a) if a.status == ActionStatus::Canceling => {
            links.cancel_action = Some(Link::new(format!("{url}/cancelAction/{}", a.id)));
        }
        Some(a) if offered(&state, &a).await? => {
            links.deployment_base = Some(Link::new(format!(
                "{url}/deploymentBase/{}?c={}",
                a.id,
                etag(&a)
            )));
        }
        _ => {
            if let Some(a) = state.store.installed_action(&controller_id).await? {
                links.installed_base = Some(Link::new(format!("{url}/installedBase/{}", a.id)));
            }
        }
    }
    if device.attrs_requested || device.attributes.is_empty() {
        links.config_data = Some(Link::new(format!("{url}/configData")));
    }
    Ok(Json(ControllerBase {
        config: PollingConfig {
            polling: Polling {
                sleep: state.config.poll_interval.clone(),
            },
        },
        links,
    }))
}

/// The device's own action `id`, or 404 (another device's action is as good as unknown).
async fn own_action(state: &AppState, controller_id: &str, id: &str) -> ApiResult<Action> {
    let not_found = || {
        ApiError::NotFound(format!(
            "action {id} is not an action of device {controller_id}"
        ))
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    match state.store.action(id).await? {
        Some(a) if a.controller_id == controller_id => Ok(a),
        _ => Err(not_found()),
    }
}

fn handling(s: &str) -> HandlingType {
    match s {
        "skip" => HandlingType::Skip,
        "attempt" => HandlingType::Attempt,
        _ => HandlingType::Forced,
    }
}

/// How action `a` is to be handled now: download, update, and the maintenance window (while
/// it is closed, the update is `skip`).
fn handling_now(a: &Action) -> (HandlingType, HandlingType, Option<MaintenanceWindow>) {
    let download = handling(&a.download);
    match (a.window_start, a.window_duration) {
        (Some(start), Some(duration)) if campaign::in_window(now_ms(), start, duration) => (
            download,
            handling(&a.update),
            Some(MaintenanceWindow::Available),
        ),
        (Some(_), Some(_)) => (
            download,
            HandlingType::Skip,
            Some(MaintenanceWindow::Unavailable),
        ),
        _ => (download, handling(&a.update), None),
    }
}

/// The `c` parameter of a `deploymentBase` link, as hawkBit sends it: a number that changes
/// whenever what the link answers changes (the action's state, its handling, its maintenance
/// window opening), so that a client caching by URL fetches it again. The same in every server
/// process, as it depends on nothing else.
fn etag(a: &Action) -> i32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (a.id, a.status.as_str(), handling_now(a)).hash(&mut h);
    h.finish() as i32
}

/// What hawkBit appends to an artifact's path for its MD5 in `md5sum` format.
const MD5SUM: &str = ".MD5SUM";

/// The SHA-1 and MD5 of the artifact with `sha256`: recorded at upload, or, for an artifact
/// kept before they were, computed from its file once and recorded.
async fn legacy_hashes(state: &AppState, sha256: &str) -> ApiResult<LegacyHashes> {
    if let Some((sha1, md5)) = state.store.artifact_hashes(sha256).await? {
        return Ok(LegacyHashes { sha1, md5 });
    }
    let path = crate::verify::artifact_path(&state.config.artifacts_dir(), sha256);
    let shown = path.display().to_string();
    let hashes = tokio::task::spawn_blocking(move || crate::verify::legacy_hashes(&path))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing {shown}: {e}")))?
        .map_err(|e| ApiError::Internal(format!("hashing {shown}: {e}")))?;
    state
        .store
        .set_artifact_hashes(sha256, &hashes.sha1, &hashes.md5)
        .await?;
    Ok(hashes)
}

async fn deployment_base(
    state: &AppState,
    headers: &HeaderMap,
    a: &Action,
) -> ApiResult<DeploymentBase> {
    let bundle = state.store.bundle(a.bundle_id).await?.ok_or_else(|| {
        ApiError::Internal(format!("bundle {} of action {} is gone", a.bundle_id, a.id))
    })?;
    let href = format!(
        "{}/softwaremodules/{}/artifacts/{}",
        device_url(state, headers, &a.controller_id),
        bundle.id,
        bundle.filename
    );
    let (download, update, maintenance_window) = handling_now(a);
    let legacy = legacy_hashes(state, &bundle.sha256).await?;
    let md5sum = format!("{href}{MD5SUM}");
    Ok(DeploymentBase {
        id: a.id.to_string(),
        deployment: Deployment {
            download,
            update,
            maintenance_window,
            chunks: vec![Chunk {
                part: "bundle".into(),
                version: bundle.version.clone(),
                name: bundle.name.clone(),
                artifacts: vec![Artifact {
                    filename: bundle.filename.clone(),
                    hashes: Hashes {
                        sha1: Some(legacy.sha1),
                        md5: Some(legacy.md5),
                        sha256: Some(bundle.sha256.clone()),
                    },
                    size: bundle.size as u64,
                    links: ArtifactLinks {
                        download: Some(Link::new(href.clone())),
                        download_http: Some(Link::new(href)),
                        md5sum: Some(Link::new(md5sum.clone())),
                        md5sum_http: Some(Link::new(md5sum)),
                    },
                }],
                metadata: None,
            }],
        },
        action_history: None,
    })
}

async fn deployment(
    State(state): State<AppState>,
    Path((tenant, controller_id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<DeploymentBase>> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let a = own_action(&state, &controller_id, &action).await?;
    if !offered(&state, &a).await? {
        return Err(ApiError::NotFound(format!(
            "action {action} is on hold: its campaign is paused"
        )));
    }
    if a.status == ActionStatus::Scheduled {
        state.store.mark_fetched(a.id, now_ms()).await?;
    }
    Ok(Json(deployment_base(&state, &headers, &a).await?))
}

async fn installed(
    State(state): State<AppState>,
    Path((tenant, controller_id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<DeploymentBase>> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let a = own_action(&state, &controller_id, &action).await?;
    if a.status != ActionStatus::Succeeded {
        return Err(ApiError::NotFound(format!(
            "action {action} is not installed on {controller_id}"
        )));
    }
    Ok(Json(deployment_base(&state, &headers, &a).await?))
}

/// The status text logged for a feedback message, e.g. `proceeding (2/5)`.
fn status_text(f: &ActionFeedback) -> String {
    let execution = serde_json::to_value(f.status.execution)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let finished = match f.status.result.finished {
        Finished::Success => " success",
        Finished::Failure => " failure",
        Finished::None => "",
    };
    match f.status.result.progress {
        Some(FeedbackProgress {
            cnt: Some(cnt),
            of: Some(of),
        }) => format!("{execution}{finished} ({cnt}/{of})"),
        Some(FeedbackProgress { cnt: Some(cnt), .. }) => format!("{execution}{finished} ({cnt})"),
        _ => format!("{execution}{finished}"),
    }
}

const OPEN: &[ActionStatus] = &[
    ActionStatus::Scheduled,
    ActionStatus::Running,
    ActionStatus::Canceling,
];
const STARTED: &[ActionStatus] = &[ActionStatus::Scheduled, ActionStatus::Running];

async fn record(
    state: &AppState,
    controller_id: &str,
    a: &Action,
    change: Option<(&[ActionStatus], ActionStatus)>,
    f: &ActionFeedback,
) -> ApiResult<()> {
    let now = now_ms();
    let outcome = state
        .store
        .record_feedback(
            controller_id,
            a.id,
            change,
            &status_text(f),
            &f.status.details,
            now,
        )
        .await?;
    match outcome {
        FeedbackOutcome::NotFound => Err(ApiError::NotFound(format!(
            "action {} is not an action of device {controller_id}",
            a.id
        ))),
        FeedbackOutcome::AlreadyClosed => Ok(()),
        FeedbackOutcome::Applied(closed) => {
            if closed && let Some(c) = a.campaign_id {
                campaign::step(&state.store, c, now).await?;
            }
            Ok(())
        }
    }
}

async fn deployment_feedback(
    State(state): State<AppState>,
    Path((tenant, controller_id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<()> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let f: ActionFeedback = parse_json(&body)?;
    let a = own_action(&state, &controller_id, &action).await?;
    let change = match (f.status.execution, f.status.result.finished) {
        (Execution::Closed, Finished::Success) => Some((OPEN, ActionStatus::Succeeded)),
        (Execution::Closed, _) => Some((OPEN, ActionStatus::Failed)),
        (Execution::Canceled, _) => Some((OPEN, ActionStatus::Canceled)),
        // As hawkBit: a device rejecting an update is a warning, the action stays open.
        _ => Some((STARTED, ActionStatus::Running)),
    };
    record(&state, &controller_id, &a, change, &f).await
}

async fn cancel_action(
    State(state): State<AppState>,
    Path((tenant, controller_id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<CancelAction>> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let a = own_action(&state, &controller_id, &action).await?;
    if !matches!(a.status, ActionStatus::Canceling | ActionStatus::Canceled) {
        return Err(ApiError::NotFound(format!(
            "action {action} is not being canceled"
        )));
    }
    Ok(Json(CancelAction {
        id: a.id.to_string(),
        cancel_action: CancelActionBody {
            stop_id: a.id.to_string(),
        },
    }))
}

async fn cancel_feedback(
    State(state): State<AppState>,
    Path((tenant, controller_id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<()> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let f: ActionFeedback = parse_json(&body)?;
    let a = own_action(&state, &controller_id, &action).await?;
    const CANCELING: &[ActionStatus] = &[ActionStatus::Canceling];
    let change = match (f.status.execution, f.status.result.finished) {
        (Execution::Canceled, _) | (Execution::Closed, Finished::Success) => {
            Some((CANCELING, ActionStatus::Canceled))
        }
        // The device could not stop (it is past the point of no return): the update goes on.
        (Execution::Rejected, _) | (Execution::Closed, _) => {
            Some((CANCELING, ActionStatus::Running))
        }
        _ => None,
    };
    record(&state, &controller_id, &a, change, &f).await
}

async fn config_data(
    State(state): State<AppState>,
    Path((tenant, controller_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<()> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let data: ConfigData = parse_json(&body)?;
    let mode = data.mode.unwrap_or(UpdateMode::Merge);
    state
        .store
        .update_attributes(&controller_id, mode, &data.data)
        .await?;
    Ok(())
}

/// The bundle file, with Range support (devices fetch only the chunks they lack).
async fn artifact(
    State(state): State<AppState>,
    Path((tenant, controller_id, bundle, filename)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    authenticate(&state, &headers, &tenant, &controller_id).await?;
    let not_found = || ApiError::NotFound(format!("artifact {bundle}/{filename} not found"));
    let id: i64 = bundle.parse().map_err(|_| not_found())?;
    let b = state.store.bundle(id).await?.ok_or_else(not_found)?;
    let md5sum = filename.strip_suffix(MD5SUM) == Some(b.filename.as_str());
    if (b.filename != filename && !md5sum)
        || !state.store.device_has_bundle(&controller_id, id).await?
    {
        return Err(not_found());
    }
    if md5sum {
        // As hawkBit: `md5sum` format, offered as a download of NAME.MD5SUM.
        let legacy = legacy_hashes(&state, &b.sha256).await?;
        let headers = [
            (CONTENT_TYPE, "text/plain".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment;filename={filename}"),
            ),
        ];
        return Ok((headers, format!("{}  {}", legacy.md5, b.filename)).into_response());
    }
    let path = crate::verify::artifact_path(&state.config.artifacts_dir(), &b.sha256);
    let response = ServeFile::new(path)
        .oneshot(request)
        .await
        .map_err(|e| ApiError::Internal(format!("serving artifact {bundle}: {e}")))?;
    Ok(response.map(axum::body::Body::new).into_response())
}
