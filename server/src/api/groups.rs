//! Groups: static lists of devices, or dynamic filters over attributes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, JsonBody};
use crate::filter;
use crate::now_ms;
use crate::server::AppState;
use crate::store::{Group, Store, StoreResult};

/// The group's members now: its list, or the devices its filter matches, sorted.
pub async fn resolve_members(store: &Store, g: &Group) -> StoreResult<Vec<String>> {
    match &g.filter {
        None => store.group_members(g.id).await,
        Some(f) => {
            // Checked when the group was created.
            let terms = filter::parse(f).unwrap_or_default();
            Ok(store
                .devices()
                .await?
                .into_iter()
                .filter(|d| filter::matches(&terms, &d.controller_id, &d.attributes))
                .map(|d| d.controller_id)
                .collect())
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    #[serde(flatten)]
    group: Group,
    #[serde(rename = "type")]
    kind: &'static str,
    members: Vec<String>,
}

async fn view(store: &Store, group: Group) -> StoreResult<GroupView> {
    let members = resolve_members(store, &group).await?;
    let kind = if group.filter.is_some() {
        "dynamic"
    } else {
        "static"
    };
    Ok(GroupView {
        group,
        kind,
        members,
    })
}

async fn found(state: &AppState, name: &str) -> ApiResult<Group> {
    state
        .store
        .group(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {name}")))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<GroupView>>> {
    let mut out = Vec::new();
    for g in state.store.groups().await? {
        out.push(view(&state.store, g).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    name: String,
    devices: Option<Vec<String>>,
    filter: Option<String>,
}

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 128 || name.contains('/') {
        return Err(ApiError::BadRequest(format!(
            "group name {name:?} must be 1 to 128 characters without '/'"
        )));
    }
    let (filter, devices) = match (body.filter, body.devices) {
        (Some(f), None) => {
            filter::parse(&f).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            (Some(f), Vec::new())
        }
        (None, devices) => (None, devices.unwrap_or_default()),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give either devices (a static group) or filter (a dynamic group), not both".into(),
            ));
        }
    };
    for d in &devices {
        if state.store.device(d).await?.is_none() {
            return Err(ApiError::not_found(format!("device {d}")));
        }
    }
    let created = state
        .store
        .create_group(name, filter.as_deref(), &devices, now_ms())
        .await?;
    if created.is_none() {
        return Err(ApiError::Conflict(format!("group {name} already exists")));
    }
    let g = found(&state, name).await?;
    Ok((StatusCode::CREATED, Json(view(&state.store, g).await?)))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<GroupView>> {
    let g = found(&state, &name).await?;
    Ok(Json(view(&state.store, g).await?))
}

pub async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let g = found(&state, &name).await?;
    state.store.delete_group(g.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn static_group(state: &AppState, name: &str) -> ApiResult<Group> {
    let g = found(state, name).await?;
    if g.filter.is_some() {
        return Err(ApiError::Conflict(format!(
            "group {name} is dynamic (filter {:?}); its members follow the filter",
            g.filter.as_deref().unwrap_or_default()
        )));
    }
    Ok(g)
}

pub async fn add_member(
    _: Admin,
    State(state): State<AppState>,
    Path((name, device)): Path<(String, String)>,
) -> ApiResult<Json<GroupView>> {
    let g = static_group(&state, &name).await?;
    if state.store.device(&device).await?.is_none() {
        return Err(ApiError::not_found(format!("device {device}")));
    }
    state.store.add_group_member(g.id, &device).await?;
    Ok(Json(view(&state.store, g).await?))
}

pub async fn remove_member(
    _: Admin,
    State(state): State<AppState>,
    Path((name, device)): Path<(String, String)>,
) -> ApiResult<Json<GroupView>> {
    let g = static_group(&state, &name).await?;
    if !state.store.remove_group_member(g.id, &device).await? {
        return Err(ApiError::not_found(format!(
            "device {device} in group {name}"
        )));
    }
    Ok(Json(view(&state.store, g).await?))
}
