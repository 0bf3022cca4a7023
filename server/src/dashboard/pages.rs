//! The pages. Each reads the store and renders; nothing here changes state.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::{Viewer, page};
use crate::api::{DeviceView, device_view, device_views, resolve_members};
use crate::campaign::{self, PhaseProgress};
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;

fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "never".into() };
    let s = (crate::now_ms() - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn health_cell(v: &DeviceView) -> Markup {
    html! {
        span class=(v.health.state) { (v.health.state) }
        @if let Some(c) = &v.health.check { @if c != "ok" { " — " (c) } }
        @if v.health.failures > 0 { " (" (v.health.failures) " failed)" }
    }
}

fn device_table(views: &[DeviceView]) -> Markup {
    html! {
        table {
            thead { tr { th { "Device" } th { "Status" } th { "Version" } th { "Type" } th { "Health" } th { "Last seen" } } }
            tbody {
                @for v in views {
                    tr.device {
                        td { a href={ "/devices/" (v.device.controller_id) } { (v.device.controller_id) } }
                        td { (v.device.status.as_str()) }
                        td { (v.version.as_deref().unwrap_or("")) }
                        td { (v.device.attributes.get("airlock.device_type").map(String::as_str).unwrap_or("")) }
                        td.health { (health_cell(v)) }
                        td { (ago(v.device.last_seen_ms)) }
                    }
                }
            }
        }
    }
}

fn phase_row(p: &PhaseProgress) -> Markup {
    let pct = |n: u64| {
        if p.devices == 0 {
            0.0
        } else {
            n as f64 * 100.0 / p.devices as f64
        }
    };
    html! {
        tr.phase {
            td { "Phase " (p.phase + 1) " (" (p.percent) "%)" }
            td {
                div.bar {
                    span.s style={ "width:" (pct(p.succeeded)) "%" } {}
                    span.r style={ "width:" (pct(p.running)) "%" } {}
                    span.f style={ "width:" (pct(p.failed)) "%" } {}
                    span.c style={ "width:" (pct(p.canceled)) "%" } {}
                }
            }
            td.devices { (p.devices) }
            td.pending { (p.pending) }
            td.running { (p.running) }
            td.succeeded { (p.succeeded) }
            td.failed { (p.failed) }
            td.canceled { (p.canceled) }
        }
    }
}

fn phase_table(phases: &[PhaseProgress]) -> Markup {
    html! {
        table {
            thead { tr { th { "Phase" } th { "Progress" } th { "Devices" } th { "Pending" } th { "Running" } th { "Succeeded" } th { "Failed" } th { "Canceled" } } }
            tbody { @for p in phases { (phase_row(p)) } }
        }
    }
}

fn render(r: ApiResult<Markup>) -> Response {
    match r {
        Ok(m) => m.into_response(),
        Err(e) => (
            e.status(),
            page("Error", html! { p.error { (e.to_string()) } }),
        )
            .into_response(),
    }
}

pub async fn overview(_: Viewer, State(state): State<AppState>) -> Response {
    render(async {
        let views = device_views(&state.store, state.store.devices().await?).await?;
        let failing: Vec<DeviceView> = views.iter().filter(|v| v.health.state == "failing").cloned().collect();
        let pending = views.iter().filter(|v| v.device.status.as_str() == "pending").count();
        let campaigns = state.store.campaigns().await?;
        let active = campaigns.iter().filter(|c| matches!(c.state.as_str(), "running" | "paused")).count();
        Ok(page("Overview", html! {
            p { (views.len()) " devices, " (pending) " awaiting admission, " (failing.len()) " failing; "
                (active) " active campaigns." }
            h2 { "Failing devices" }
            @if failing.is_empty() { p.muted { "None." } } @else { (device_table(&failing)) }
        }))
    }.await)
}

pub async fn devices(_: Viewer, State(state): State<AppState>) -> Response {
    render(
        async {
            let views = device_views(&state.store, state.store.devices().await?).await?;
            Ok(page("Devices", device_table(&views)))
        }
        .await,
    )
}

pub async fn device(_: Viewer, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    render(async {
        let d = state.store.device(&id).await?.ok_or_else(|| ApiError::not_found(format!("device {id}")))?;
        let v = device_view(&state.store, d).await?;
        let actions = state.store.actions_of(&id).await?;
        let mut history = Vec::new();
        for a in actions {
            let log = state.store.action_log(a.id).await?;
            history.push((a, log));
        }
        Ok(page(&format!("Device {id}"), html! {
            p { "Status: " (v.device.status.as_str()) " · Health: " (health_cell(&v)) " · Last seen " (ago(v.device.last_seen_ms)) }
            h2 { "Attributes" }
            table.attributes {
                @for (k, val) in &v.device.attributes { tr { th { (k) } td { (val) } } }
            }
            h2 { "Deployment history" }
            @for (a, log) in &history {
                h3 { "Action " (a.id) ": " (a.status.as_str()) " (bundle " (a.bundle_id) ")" }
                ul.log { @for l in log { li { code { (ago(Some(l.ts_ms))) } " " (l.message) } } }
            }
        }))
    }.await)
}

pub async fn groups(_: Viewer, State(state): State<AppState>) -> Response {
    render(async {
        let mut rows = Vec::new();
        for g in state.store.groups().await? {
            let members = resolve_members(&state.store, &g).await?;
            rows.push((g, members));
        }
        Ok(page("Groups", html! {
            table {
                thead { tr { th { "Group" } th { "Kind" } th { "Members" } } }
                tbody { @for (g, m) in &rows { tr {
                    td { (g.name) }
                    td { @if let Some(f) = &g.filter { "filter " code { (f) } } @else { "static" } }
                    td { (m.join(", ")) }
                } } }
            }
        }))
    }.await)
}

pub async fn campaigns(_: Viewer, State(state): State<AppState>) -> Response {
    render(async {
        let mut rows = Vec::new();
        for c in state.store.campaigns().await? {
            let devices = state.store.campaign_devices(c.id).await?;
            let p = campaign::progress(&c, &devices);
            rows.push((c, p));
        }
        Ok(page("Campaigns", html! {
            table {
                thead { tr { th { "Campaign" } th { "State" } th { "Group" } th { "Phase" } th { "Succeeded" } th { "Failed" } } }
                tbody { @for (c, p) in &rows { tr {
                    td { a href={ "/campaigns/" (c.id) } { (c.name) } }
                    td { (c.state.as_str()) }
                    td { (c.group) }
                    td { (c.current_phase + 1) " of " (c.phases.len()) }
                    td { (p.iter().map(|x| x.succeeded).sum::<u64>()) }
                    td { (p.iter().map(|x| x.failed).sum::<u64>()) }
                } } }
            }
        }))
    }.await)
}

pub async fn campaign(
    _: Viewer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    render(async {
        let nf = || ApiError::not_found(format!("campaign {id}"));
        let cid: i64 = id.parse().map_err(|_| nf())?;
        let c = state.store.campaign(cid).await?.ok_or_else(nf)?;
        let devices = state.store.campaign_devices(cid).await?;
        let phases = campaign::progress(&c, &devices);
        Ok(page(&format!("Campaign {}", c.name), html! {
            p { "State: " strong.state { (c.state.as_str()) }
                @if let Some(r) = &c.reason { " — " (r) }
                " · bundle " (c.bundle_id) " · group " (c.group)
                " · success threshold " (c.success_threshold) "% · error threshold " (c.error_threshold) "%" }
            (phase_table(&phases))
            h2 { "Devices" }
            table {
                thead { tr { th { "Device" } th { "Phase" } th { "Action" } } }
                tbody { @for d in &devices { tr {
                    td { a href={ "/devices/" (d.controller_id) } { (d.controller_id) } }
                    td { (d.phase + 1) }
                    td { (d.action_status.map(|s| s.as_str()).unwrap_or("not started")) }
                } } }
            }
        }))
    }.await)
}
