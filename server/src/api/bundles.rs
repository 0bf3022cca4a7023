//! Bundles: uploaded as raw bytes, verified in full before they are kept.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::now_ms;
use crate::server::AppState;
use crate::store::{Bundle, NewBundle};
use crate::verify::{self, UploadError};

pub async fn upload(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Bundle>)> {
    let dir = state.config.artifacts_dir();
    let verified = verify::receive(
        body,
        &dir,
        state.config.max_bundle_size,
        &state.config.trust,
    )
    .await
    .map_err(|e| match e {
        UploadError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        UploadError::Verify(_) | UploadError::NotAccepted(_) => {
            ApiError::Unprocessable(e.to_string())
        }
        UploadError::Empty | UploadError::Body(_) => ApiError::BadRequest(e.to_string()),
        UploadError::Io { .. } => ApiError::Internal(e.to_string()),
    })?;
    if let Some(existing) = state.store.bundle_by_sha256(&verified.sha256).await? {
        return Err(ApiError::Conflict(format!(
            "this bundle was already uploaded as bundle {}",
            existing.id
        )));
    }
    let m = &verified.manifest;
    let new = NewBundle {
        name: m.name.clone(),
        version: m.version.to_string(),
        compatible: m.compatible.clone(),
        filename: format!("{}-{}.airlock", m.name, m.version),
        size: verified.size as i64,
        sha256: verified.sha256.clone(),
        signers: verified.signers.clone(),
    };
    let legacy = verified.legacy.clone();
    verify::keep(verified, &dir).map_err(|e| ApiError::Internal(e.to_string()))?;
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
