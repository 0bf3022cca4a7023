//! Bundles: uploaded as raw bytes, verified in full before they are kept; or artifacts of
//! another updater (`artifact=NAME`), kept as they are for the devices that run it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, QueryParams};
use crate::now_ms;
use crate::server::AppState;
use crate::store::{Bundle, NewBundle};
use crate::verify::{self, UploadError};

/// `POST /bundles?artifact=NAME&name=N&version=V`: an artifact for another updater instead of
/// an Airlock bundle.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    artifact: Option<String>,
    name: Option<String>,
    version: Option<String>,
}

pub async fn upload(
    _: Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Bundle>)> {
    let dir = state.config.artifacts_dir();
    let limit = state.config.max_bundle_size;
    let (new, received) = match &q.artifact {
        Some(filename) => {
            let (name, version) = foreign_labels(&q, filename)?;
            let received = verify::stream_in(body, &dir, limit)
                .await
                .map_err(upload_error)?;
            let new = NewBundle {
                name,
                version,
                // Nothing the server can check: the device's own updater verifies it.
                compatible: Vec::new(),
                filename: filename.clone(),
                size: received.size as i64,
                sha256: received.sha256.clone(),
                signers: Vec::new(),
            };
            (new, received)
        }
        None if q.name.is_some() || q.version.is_some() => {
            return Err(ApiError::BadRequest(
                "name and version are for an artifact of another updater (with artifact=FILE); an Airlock bundle names itself in its signed manifest".into(),
            ));
        }
        None => {
            let v = verify::receive(body, &dir, limit, &state.config.trust)
                .await
                .map_err(upload_error)?;
            let m = &v.manifest;
            let new = NewBundle {
                name: m.name.clone(),
                version: m.version.to_string(),
                compatible: m.compatible.clone(),
                filename: format!("{}-{}.airlock", m.name, m.version),
                size: v.received.size as i64,
                sha256: v.received.sha256.clone(),
                signers: v.signers,
            };
            let received = v.received;
            (new, received)
        }
    };
    if let Some(existing) = state.store.bundle_by_sha256(&new.sha256).await? {
        return Err(ApiError::Conflict(format!(
            "this bundle was already uploaded as bundle {}",
            existing.id
        )));
    }
    let verify::Received { file, legacy, .. } = received;
    verify::keep(file, &new.sha256, &dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .set_artifact_hashes(&new.sha256, &legacy.sha1, &legacy.md5)
        .await?;
    let Some(id) = state.store.insert_bundle(&new, now_ms()).await? else {
        return Err(ApiError::Conflict(
            "this bundle was just uploaded by another request".into(),
        ));
    };
    tracing::info!(bundle = id, "bundle {} {} uploaded", new.name, new.version);
    Ok((StatusCode::CREATED, Json(found(&state, id).await?)))
}

fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        UploadError::Verify(_) | UploadError::NotAccepted(_) => {
            ApiError::Unprocessable(e.to_string())
        }
        UploadError::Empty | UploadError::Body(_) => ApiError::BadRequest(e.to_string()),
        UploadError::Io { .. } => ApiError::Internal(e.to_string()),
    }
}

/// The name and version an operator gives an artifact of another updater, checked, and its file
/// name: what devices see in the deployment.
fn foreign_labels(q: &UploadQuery, filename: &str) -> ApiResult<(String, String)> {
    let bad = |what: &str| ApiError::BadRequest(what.to_string());
    let safe = |c: char| c.is_ascii_alphanumeric() || "._-+".contains(c);
    if filename.is_empty()
        || filename.len() > 255
        || !filename.chars().all(safe)
        || filename.starts_with('.')
    {
        return Err(bad(&format!(
            "artifact={filename:?}: give the file name devices should see, 1 to 255 characters of A-Z a-z 0-9 . _ - + (not starting with a dot)"
        )));
    }
    if filename.ends_with(".airlock") {
        return Err(bad(
            "an .airlock bundle is uploaded without artifact=…: the server then verifies its signatures",
        ));
    }
    let label = |key: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() && v.len() <= 128 && !v.chars().any(char::is_control) => {
            Ok(v.to_string())
        }
        _ => Err(bad(&format!(
            "an artifact of another updater needs {key}=… (1 to 128 characters): the server cannot read it from the file"
        ))),
    };
    Ok((label("name", &q.name)?, label("version", &q.version)?))
}

async fn found(state: &AppState, id: i64) -> ApiResult<Bundle> {
    state
        .store
        .bundle(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("bundle {id}")))
}

fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("bundle {id}")))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<Bundle>>> {
    Ok(Json(state.store.bundles().await?))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Bundle>> {
    Ok(Json(found(&state, parse_id(&id)?).await?))
}

pub async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let b = found(&state, parse_id(&id)?).await?;
    if !state.store.delete_bundle_if_unused(b.id).await? {
        return Err(ApiError::Conflict(format!(
            "bundle {id} is used by a campaign or an action; it stays"
        )));
    }
    // Another bundle row never shares the file: the sha256 column is unique.
    let path = verify::artifact_path(&state.config.artifacts_dir(), &b.sha256);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!("removing {}: {e}", path.display());
    }
    Ok(StatusCode::NO_CONTENT)
}
