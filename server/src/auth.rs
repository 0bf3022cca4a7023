//! Tokens: device tokens are stored as SHA-256 hashes; the admin token guards the management
//! API (`Authorization: Bearer …`) and the dashboard (a cookie set by `/login`).

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::server::AppState;

pub const COOKIE_NAME: &str = "airlock_admin";

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token: 32 bytes, hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two secrets without an early exit on the first differing byte.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The `Authorization` header split into scheme and credentials.
pub fn authorization(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme.to_string(), rest.trim().to_string()))
}

/// The admin token from a cookie, if the request carries one.
pub fn admin_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

/// Proof that the request carries the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authorization(parts) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("Bearer") => {
                if same_secret(&token, &state.config.admin_token) {
                    Ok(Admin)
                } else {
                    Err(ApiError::Unauthorized("wrong admin token".into()))
                }
            }
            _ => Err(ApiError::Unauthorized(
                "missing admin token: send `Authorization: Bearer <token>` (the server printed where it keeps it)".into(),
            )),
        }
    }
}
