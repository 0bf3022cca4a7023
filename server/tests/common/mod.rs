//! A real server on loopback for the tests, on SQLite or PostgreSQL, plus signed test bundles
//! made with the engine's bundle writer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use airlock::bundle::{BundleSpec, CreateOptions, create_bundle};
use airlock::keys;
use airlock::trust::TrustPolicy;
use airlock_server::server::{AppState, Config};
use airlock_server::store::{Backend, Store};
use airlock_testkit::BundleToml;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Executor;

pub const TENANT: &str = "DEFAULT";
pub const ADMIN: &str = "test-admin-token";

pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub state: AppState,
    /// Signs bundles the server trusts.
    pub key: PathBuf,
    /// Signs bundles the server does not trust.
    pub other_key: PathBuf,
    pub http: reqwest::Client,
    /// The PostgreSQL database's URL (None on SQLite).
    pub database_url: Option<String>,
    pg_cleanup: Option<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database: (its URL, (admin URL, name)).
async fn postgres_database() -> (String, (String, String)) {
    let base = std::env::var("AIRLOCK_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "AIRLOCK_TEST_POSTGRES_URL is not set: the storage layer is tested against PostgreSQL too. \
             Set it to a role that may CREATE DATABASE, e.g. \
             AIRLOCK_TEST_POSTGRES_URL=postgres://airlock:airlock@127.0.0.1:5432/airlock_test \
             (scripts/test sets it)"
        )
    });
    sqlx::any::install_default_drivers();
    let name = format!(
        "airlock_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("connecting to AIRLOCK_TEST_POSTGRES_URL");
    drop_stale_databases(&mut conn).await;
    conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (head, _) = base.rsplit_once('/').expect("database URL has a path");
    let (_, query) = base.split_once('?').map_or(("", ""), |(a, q)| (a, q));
    let url = if query.is_empty() {
        format!("{head}/{name}")
    } else {
        format!("{head}/{name}?{query}")
    };
    (url, (base, name))
}

/// Drops a test database. The server's connections are closed by now; an autovacuum worker may
/// still be in it for a moment, and `WITH (FORCE)` may not end a process of another role, so a
/// refusal is retried for a few seconds.
async fn drop_database(conn: &mut sqlx::AnyConnection, name: &str) -> Result<(), sqlx::Error> {
    let mut tries = 0;
    loop {
        match conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
        {
            Ok(_) => return Ok(()),
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Drops databases left by test processes that died before cleaning up (their pid is gone).
async fn drop_stale_databases(conn: &mut sqlx::AnyConnection) {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT datname::text AS datname FROM pg_database WHERE datname LIKE 'airlock\\_t\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get::<String, _>("datname") else {
            continue;
        };
        // Only our own pattern, airlock_t_<pid>_<n>, and only when that process is gone.
        let parts: Vec<&str> = name.split('_').collect();
        let Some(pid) = parts.get(2).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if parts.len() == 4
            && parts[..2] == ["airlock", "t"]
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            drop_database(conn, &name).await.ok();
        }
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (_, public, _) = keys::generate(&dir.path().join("trusted")).unwrap();
        let (other_private, _, _) = keys::generate(&dir.path().join("untrusted")).unwrap();
        let (url, pg_cleanup) = match backend {
            Backend::Sqlite => (
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("airlock.db").display()
                ),
                None,
            ),
            Backend::Postgres => {
                let (url, cleanup) = postgres_database().await;
                (url, Some(cleanup))
            }
        };
        let store = Store::connect(&url).await.unwrap();
        let database_url = pg_cleanup.is_some().then(|| url.clone());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut config = Config {
            data_dir: data,
            tenant: TENANT.into(),
            poll_interval: "00:00:10".into(),
            public_url: None,
            gateway_token: Some("gateway-secret".into()),
            admin_token: ADMIN.into(),
            max_bundle_size: 64 << 20,
            trust: TrustPolicy::load(&[public], 1).unwrap(),
        };
        tweak(&mut config);
        let state = AppState::new(store.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            airlock_server::server::serve(listener, serve_state, async {
                rx.await.ok();
            })
            .await
            .unwrap();
        });
        TestServer {
            url: format!("http://{addr}"),
            key: dir.path().join("trusted.key"),
            other_key: other_private,
            dir,
            store,
            state,
            http: reqwest::Client::new(),
            database_url,
            pg_cleanup,
            shutdown: Some(tx),
        }
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn finish(mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        self.store_close().await;
        if let Some((base, name)) = self.pg_cleanup.take() {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                .await
                .unwrap();
            if let Err(e) = drop_database(&mut conn, &name).await {
                panic!("dropping the test database {name}: {e}");
            }
        }
    }

    async fn store_close(&self) {
        self.store.close().await;
    }

    // --- management API ---

    pub async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.api(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.api(Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    pub async fn upload(&self, file: &Path) -> (StatusCode, Value) {
        self.upload_with(file, &[]).await
    }

    /// Uploads `file` with the query `query` (an artifact of another updater).
    pub async fn upload_with(&self, file: &Path, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let bytes = std::fs::read(file).unwrap();
        let resp = self
            .http
            .post(format!("{}/api/v1/bundles", self.url))
            .query(query)
            .bearer_auth(ADMIN)
            .body(bytes)
            .send()
            .await
            .unwrap();
        read(resp).await
    }

    /// Adds an accepted device with token `t-<id>`.
    pub async fn add_device(&self, id: &str) {
        self.post(
            "/devices",
            serde_json::json!({"controllerId": id, "token": format!("t-{id}")}),
        )
        .await;
    }

    // --- device API ---

    pub fn device_url(&self, id: &str) -> String {
        format!("{}/{TENANT}/controller/v1/{id}", self.url)
    }

    pub async fn ddi(
        &self,
        method: Method,
        id: &str,
        rest: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{rest}", self.device_url(id)))
            .header("Authorization", format!("TargetToken {token}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.unwrap()).await
    }

    /// GET `url` with device token `token` (a download, a link the server handed out).
    pub async fn get_as(&self, token: &str, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("Authorization", format!("TargetToken {token}"))
            .send()
            .await
            .unwrap()
    }

    /// Polls as device `id` with its test token.
    pub async fn poll(&self, id: &str) -> (StatusCode, Value) {
        self.ddi(Method::GET, id, "", &format!("t-{id}"), None)
            .await
    }

    /// Polls, follows the deploymentBase link and reports `execution`/`finished`.
    pub async fn run_action(&self, id: &str, finished: &str) -> Option<i64> {
        let (_, base) = self.poll(id).await;
        let href = base["_links"]["deploymentBase"]["href"].as_str()?;
        let action = airlock_ddi::action_id_of(href).unwrap().to_string();
        let token = format!("t-{id}");
        let (s, _) = self
            .ddi(
                Method::GET,
                id,
                &format!("/deploymentBase/{action}"),
                &token,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let fb = serde_json::json!({"status": {"execution": "closed", "result": {"finished": finished}, "details": [format!("installed: {finished}")]}});
        let (s, v) = self
            .ddi(
                Method::POST,
                id,
                &format!("/deploymentBase/{action}/feedback"),
                &token,
                Some(fb),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        action.parse().ok()
    }

    /// Builds a bundle signed with `key` (a payload of `size` pseudo-random bytes).
    pub fn bundle(&self, name: &str, version: &str, key: &Path, size: usize) -> PathBuf {
        self.bundle_expiring(name, version, key, size, None)
    }

    /// [`bundle`](Self::bundle) with `expires` (RFC 3339) in its manifest.
    pub fn bundle_expiring(
        &self,
        name: &str,
        version: &str,
        key: &Path,
        size: usize,
        expires: Option<&str>,
    ) -> PathBuf {
        let dir = self.dir.path();
        let payload = dir.join(format!("{name}-{version}.img"));
        let mut data = airlock_testkit::random_bytes(size, size as u64 ^ version.len() as u64);
        data.extend_from_slice(version.as_bytes());
        std::fs::write(&payload, &data).unwrap();
        let expires = expires.map_or(String::new(), |at| format!("expires = {at:?}"));
        let toml = BundleToml::new(name, version, &["test-board"])
            .with("description = \"<b>test</b>\"")
            .with(&expires)
            .payload("rootfs", &payload, "rootfs")
            .write(&dir.join(format!("{name}-{version}.toml")));
        let spec = BundleSpec::load(&toml).unwrap();
        let out = dir.join(format!(
            "{name}-{version}-{}.airlock",
            key.file_stem().unwrap().to_string_lossy()
        ));
        let signing = keys::load_signing_key(key).unwrap();
        let options = CreateOptions {
            threads: 1,
            ..Default::default()
        };
        create_bundle(&spec, &[signing], &out, &options, &mut |_| {}).unwrap();
        out
    }

    /// A campaign of a good bundle `version` to device `id` alone (added first): the
    /// `deploymentBase` link the device's poll then shows, and the bundle's id.
    pub async fn deployment_link(&self, id: &str, version: &str) -> (String, i64) {
        self.add_device(id).await;
        let bundle = self.good_bundle(version).await;
        let group = format!("only-{id}");
        self.post(
            "/groups",
            serde_json::json!({"name": group, "devices": [id]}),
        )
        .await;
        self.post(
            "/campaigns",
            serde_json::json!({"name": format!("to-{id}"), "bundle": bundle, "group": group}),
        )
        .await;
        let (_, v) = self.poll(id).await;
        let href = v["_links"]["deploymentBase"]["href"]
            .as_str()
            .unwrap_or_else(|| panic!("no deploymentBase link: {v}"))
            .to_string();
        (href, bundle)
    }

    /// Uploads a good bundle and returns its id.
    pub async fn good_bundle(&self, version: &str) -> i64 {
        let file = self.bundle("acme-os", version, &self.key.clone(), 200_000);
        let (status, v) = self.upload(&file).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_i64().unwrap()
    }
}

pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// Runs an async test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(airlock_server::store::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(airlock_server::store::Backend::Postgres).await
            }
        }
    };
}

/// Whether `v` has the field at `path` (`a.b[].c`: `c` in some element of the list `a.b`).
pub fn has_field(v: &Value, path: &str) -> bool {
    match path.split_once('.') {
        None => lookup(v, path).is_some_and(|x| !x.is_null()),
        Some((head, rest)) => lookup(v, head).is_some_and(|x| match head.ends_with("[]") {
            true => x
                .as_array()
                .is_some_and(|a| a.iter().any(|e| has_field(e, rest))),
            false => has_field(x, rest),
        }),
    }
}

fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key.trim_end_matches("[]"))
}
