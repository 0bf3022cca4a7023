//! Campaigns: create (snapshot + first phase), progress, pause/resume/cancel.

use airlock_ddi::{HandlingType, parse_sleep};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::Admin;
use crate::campaign::{self, PhaseProgress, Transition};
use crate::error::{ApiError, ApiResult, JsonBody};
use crate::now_ms;
use crate::server::AppState;
use crate::store::{Bundle, Campaign, CampaignDevice, DeviceStatus, NewCampaign};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignView {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub progress: Vec<PhaseProgress>,
    pub devices: Vec<CampaignDevice>,
}

async fn view(state: &AppState, id: i64) -> ApiResult<CampaignView> {
    let c = state
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign {id}")))?;
    let devices = state.store.campaign_devices(id).await?;
    Ok(CampaignView {
        progress: campaign::progress(&c, &devices),
        campaign: c,
        devices,
    })
}

fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("campaign {id}")))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<CampaignView>>> {
    let mut out = Vec::new();
    for c in state.store.campaigns().await? {
        let mut v = view(&state, c.id).await?;
        v.devices.clear();
        out.push(v);
    }
    Ok(Json(out))
}

pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    Ok(Json(view(&state, parse_id(&id)?).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Window {
    /// `HH:MM`, UTC.
    start: String,
    /// `HH:MM` (or `HH:MM:SS`).
    duration: String,
    #[serde(default)]
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCampaign {
    name: String,
    bundle: i64,
    group: String,
    #[serde(default = "all_at_once")]
    phases: Vec<u32>,
    #[serde(default = "hundred")]
    success_threshold: i64,
    #[serde(default)]
    error_threshold: i64,
    #[serde(default = "forced")]
    download: HandlingType,
    #[serde(default = "forced")]
    update: HandlingType,
    maintenance_window: Option<Window>,
}

fn all_at_once() -> Vec<u32> {
    vec![100]
}
fn hundred() -> i64 {
    100
}
fn forced() -> HandlingType {
    HandlingType::Forced
}

fn handling(h: HandlingType) -> String {
    match h {
        HandlingType::Skip => "skip",
        HandlingType::Attempt => "attempt",
        HandlingType::Forced => "forced",
    }
    .into()
}

/// Minutes from `HH:MM` or `HH:MM:SS`.
fn minutes(text: &str) -> Option<i64> {
    let full = if text.matches(':').count() == 1 {
        format!("{text}:00")
    } else {
        text.to_string()
    };
    parse_sleep(&full).ok().map(|d| (d.as_secs() / 60) as i64)
}

fn window(w: &Window) -> ApiResult<(i64, i64)> {
    if let Some(tz) = &w.timezone
        && !tz.eq_ignore_ascii_case("UTC")
    {
        return Err(ApiError::BadRequest(format!(
            "maintenance window timezone {tz:?}: only UTC is supported"
        )));
    }
    let start = minutes(&w.start).filter(|m| *m < 24 * 60).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "maintenance window start {:?} is not HH:MM",
            w.start
        ))
    })?;
    let duration = minutes(&w.duration).filter(|m| *m > 0).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "maintenance window duration {:?} is not HH:MM (above zero)",
            w.duration
        ))
    })?;
    Ok((start, duration))
}

/// The attribute a device reports its type in (`device_type` in its airlock.toml).
const DEVICE_TYPE: &str = "airlock.device_type";

/// Why a campaign is refused when some of its group's devices cannot install its bundle: each
/// would download it only to refuse it, and count as a failure.
fn incompatible_devices(bundle: &Bundle, group: &str, devices: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut list = devices[..devices.len().min(SHOWN)].join(", ");
    if devices.len() > SHOWN {
        list.push_str(&format!(" and {} more", devices.len() - SHOWN));
    }
    let types = match bundle.compatible.len() {
        1 => "device type",
        _ => "device types",
    };
    format!(
        "bundle {} ({} {}) is for {types} {}, but {} device(s) of group {group} report another: {list}; \
         target a group of compatible devices, e.g. one with the filter airlock.device_type={}",
        bundle.id,
        bundle.name,
        bundle.version,
        bundle.compatible.join(", "),
        devices.len(),
        bundle.compatible.first().map_or("…", String::as_str),
    )
}

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateCampaign>,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    campaign::validate_phases(&body.phases).map_err(ApiError::BadRequest)?;
    for (name, t) in [
        ("successThreshold", body.success_threshold),
        ("errorThreshold", body.error_threshold),
    ] {
        if !(0..=100).contains(&t) {
            return Err(ApiError::BadRequest(format!(
                "{name} {t} is not a percentage (0 to 100)"
            )));
        }
    }
    let (window_start, window_duration) = match &body.maintenance_window {
        Some(w) => {
            let (s, d) = window(w)?;
            (Some(s), Some(d))
        }
        None => (None, None),
    };
    let bundle = state
        .store
        .bundle(body.bundle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("bundle {}", body.bundle)))?;
    let group = state
        .store
        .group(&body.group)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {}", body.group)))?;
    // Only admitted devices take part; the snapshot is taken now.
    let mut members = Vec::new();
    let mut incompatible = Vec::new();
    for id in super::resolve_members(&state.store, &group).await? {
        let Some(d) = state.store.device(&id).await? else {
            continue;
        };
        if d.status != DeviceStatus::Accepted {
            continue;
        }
        // A device that has not reported its type yet takes part: it checks the bundle itself.
        // So does every device for an artifact of another updater, which names no types.
        match d.attributes.get(DEVICE_TYPE) {
            Some(t) if !bundle.compatible.is_empty() && !bundle.compatible.contains(t) => {
                incompatible.push(format!("{id} ({t})"))
            }
            _ => members.push(id),
        }
    }
    if !incompatible.is_empty() {
        return Err(ApiError::Unprocessable(incompatible_devices(
            &bundle,
            &body.group,
            &incompatible,
        )));
    }
    if members.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "group {} has no accepted devices; nothing to roll out to",
            body.group
        )));
    }
    let new = NewCampaign {
        name: body.name,
        bundle_id: body.bundle,
        group: body.group,
        phases: body.phases,
        success_threshold: body.success_threshold,
        error_threshold: body.error_threshold,
        download: handling(body.download),
        update: handling(body.update),
        window_start,
        window_duration,
    };
    let id = campaign::create(&state.store, &new, members, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(view(&state, id).await?)))
}

async fn act(
    state: &AppState,
    id: &str,
    what: &str,
    f: impl AsyncFnOnce(&Campaign) -> crate::store::StoreResult<Transition>,
) -> ApiResult<Json<CampaignView>> {
    let id = parse_id(id)?;
    let c = state
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign {id}")))?;
    match f(&c).await? {
        Transition::Done => Ok(Json(view(state, id).await?)),
        Transition::NotAllowed(s) => Err(ApiError::Conflict(format!(
            "campaign {id} is {}; it cannot {what}",
            s.as_str()
        ))),
    }
}

pub async fn pause(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(&state, &id, "pause", async |c| {
        campaign::pause(&state.store, c, now_ms()).await
    })
    .await
}

pub async fn resume(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(&state, &id, "resume", async |c| {
        campaign::resume(&state.store, c, now_ms()).await
    })
    .await
}

pub async fn cancel(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(&state, &id, "be canceled", async |c| {
        campaign::cancel(&state.store, c, now_ms()).await
    })
    .await
}
