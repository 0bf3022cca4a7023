//! The management API under `/api/v1`: JSON in camelCase, `Authorization: Bearer <admin token>`.
//! Every route is listed in [`routes`], which builds the router and is checked against
//! `openapi.json` by the tests.

mod bundles;
mod campaigns;
mod devices;
mod groups;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::server::{API_BODY_LIMIT, AppState};

pub use devices::{DeviceView, Health, device_view, device_views};
pub use groups::resolve_members;

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every management route: method, path, handler.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/api/v1/openapi.json", get(openapi)),
        ("GET", "/api/v1/health", get(devices::health)),
        ("GET", "/api/v1/devices", get(devices::list)),
        ("POST", "/api/v1/devices", post(devices::create)),
        ("GET", "/api/v1/devices/{controllerId}", get(devices::show)),
        (
            "DELETE",
            "/api/v1/devices/{controllerId}",
            delete(devices::remove),
        ),
        (
            "POST",
            "/api/v1/devices/{controllerId}/accept",
            post(devices::accept),
        ),
        (
            "POST",
            "/api/v1/devices/{controllerId}/reject",
            post(devices::reject),
        ),
        (
            "GET",
            "/api/v1/devices/{controllerId}/actions",
            get(devices::actions),
        ),
        ("GET", "/api/v1/groups", get(groups::list)),
        ("POST", "/api/v1/groups", post(groups::create)),
        ("GET", "/api/v1/groups/{name}", get(groups::show)),
        ("DELETE", "/api/v1/groups/{name}", delete(groups::remove)),
        (
            "PUT",
            "/api/v1/groups/{name}/devices/{controllerId}",
            put(groups::add_member),
        ),
        (
            "DELETE",
            "/api/v1/groups/{name}/devices/{controllerId}",
            delete(groups::remove_member),
        ),
        ("GET", "/api/v1/bundles", get(bundles::list)),
        (
            "POST",
            "/api/v1/bundles",
            // Streamed to disk with its own limit (--max-bundle-size).
            post(bundles::upload).layer(DefaultBodyLimit::disable()),
        ),
        ("GET", "/api/v1/bundles/{id}", get(bundles::show)),
        ("DELETE", "/api/v1/bundles/{id}", delete(bundles::remove)),
        ("GET", "/api/v1/campaigns", get(campaigns::list)),
        ("POST", "/api/v1/campaigns", post(campaigns::create)),
        ("GET", "/api/v1/campaigns/{id}", get(campaigns::show)),
        (
            "POST",
            "/api/v1/campaigns/{id}/pause",
            post(campaigns::pause),
        ),
        (
            "POST",
            "/api/v1/campaigns/{id}/resume",
            post(campaigns::resume),
        ),
        (
            "POST",
            "/api/v1/campaigns/{id}/cancel",
            post(campaigns::cancel),
        ),
    ]
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router.layer(DefaultBodyLimit::max(API_BODY_LIMIT))
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}
