//! The application state, the router and the serve loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airlock::trust::TrustPolicy;
use axum::Router;
use tokio::net::TcpListener;

use crate::store::Store;

/// How the server was started.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub tenant: String,
    /// `HH:MM:SS` handed to devices as `config.polling.sleep`.
    pub poll_interval: String,
    /// Base for links in DDI answers; `None`: from the request's Host header.
    pub public_url: Option<String>,
    pub gateway_token: Option<String>,
    pub admin_token: String,
    pub max_bundle_size: u64,
    pub trust: TrustPolicy,
}

impl Config {
    pub fn artifacts_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub config: Config,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Store, config: Config) -> Self {
        AppState(Arc::new(Inner { store, config }))
    }
}

/// Largest JSON body a device may send.
pub const DDI_BODY_LIMIT: usize = 64 * 1024;
/// Largest JSON body of the management API (bundle uploads are streamed and limited apart).
pub const API_BODY_LIMIT: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::ddi::router())
        .merge(crate::api::router())
        .merge(crate::dashboard::router())
        // For load balancers and monitoring: the process answers (no database, no token).
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(
            crate::linger::close_after_refused_body,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, stepping running campaigns in the background.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    std::fs::create_dir_all(state.config.artifacts_dir())?;
    let ticker = {
        let store = state.store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            loop {
                every.tick().await;
                if let Err(e) = crate::campaign::step_all(&store, crate::now_ms()).await {
                    tracing::warn!("campaign step: {e}");
                }
                if let Err(e) = store.flush_seen().await {
                    tracing::warn!("writing last-seen times: {e}");
                }
            }
        })
    };
    let store = state.store.clone();
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    ticker.abort();
    if let Err(e) = store.flush_seen().await {
        tracing::warn!("writing last-seen times: {e}");
    }
    result
}

async fn no_route(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::NotFound(format!("no route {}", uri.path()))
}

/// A known path asked with a method it does not take: the same JSON error shape as every other
/// answer, for devices and scripts alike.
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}; the API reference lists the methods each path takes",
        uri.path()
    ))
}
