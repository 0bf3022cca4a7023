//! The web dashboard: server-rendered pages (maud escapes everything device-supplied), no
//! JavaScript. `/login?token=…` sets an HttpOnly cookie; pages without it go to the login form.

mod pages;

use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::auth::{COOKIE_NAME, admin_cookie, same_secret};
use crate::server::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/", get(pages::overview))
        .route("/devices", get(pages::devices))
        .route("/devices/{controller_id}", get(pages::device))
        .route("/groups", get(pages::groups))
        .route("/campaigns", get(pages::campaigns))
        .route("/campaigns/{id}", get(pages::campaign))
}

/// A logged-in operator.
pub struct Viewer;

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match admin_cookie(parts) {
            Some(t) if same_secret(&t, &state.config.admin_token) => Ok(Viewer),
            _ => Err(Redirect::to("/login").into_response()),
        }
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
    /// Where to go after logging in: a path on this server.
    next: Option<String>,
}

async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    match q.token {
        Some(t) if same_secret(&t, &state.config.admin_token) => {
            let cookie = format!("{COOKIE_NAME}={t}; HttpOnly; SameSite=Strict; Path=/");
            // Only local paths: `//host` or a scheme would make this an open redirect.
            let next = q
                .next
                .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
                .unwrap_or_else(|| "/".into());
            ([(SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            login_form(Some("wrong admin token")),
        )
            .into_response(),
        None => login_form(None).into_response(),
    }
}

fn login_form(error: Option<&str>) -> Markup {
    page(
        "Log in",
        html! {
            @if let Some(e) = error { p.error { (e) } }
            form method="get" action="/login" {
                label { "Admin token " input type="password" name="token" autofocus; }
                " " button type="submit" { "Log in" }
            }
            p.muted { "The token is in the server's data directory (admin-token)." }
        },
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}
nav{background:#1d3557;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em 1.5em}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}
.ok{color:#2a7d2a}.failing,.error{color:#b00020}.muted,.unknown{color:#777}
.bar{display:flex;height:1em;width:20em;background:#eee}.bar span{display:block;height:100%}
.s{background:#2a9d8f}.r{background:#e9c46a}.f{background:#e63946}.c{background:#999}
code{background:#f4f4f4;padding:0 .2em}";

pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Airlock" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/" { "Airlock" }
                    a href="/devices" { "Devices" }
                    a href="/groups" { "Groups" }
                    a href="/campaigns" { "Campaigns" }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}
