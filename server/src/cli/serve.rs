//! `airlock-server serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use airlock::trust::TrustPolicy;
use anyhow::{Context, Result, bail};
use clap::Args;

use crate::auth::generate_token;
use crate::server::{self, AppState, Config};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory: the SQLite database, artifacts/ and the admin token. Several processes
    /// behind a load balancer need --database postgres://… and a shared artifacts directory.
    #[arg(long, default_value = "./airlock-server-data")]
    pub data: PathBuf,
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database URL (default: SQLite at DATA/airlock.db; postgres://… for PostgreSQL).
    #[arg(long)]
    pub database: Option<String>,
    /// Trusted public key (SPKI PEM) bundles must be signed with; repeatable.
    #[arg(long = "trust-key", required = true)]
    pub trust_keys: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed a bundle.
    #[arg(long, default_value_t = 1)]
    pub threshold: usize,
    /// The DDI tenant in device paths.
    #[arg(long, default_value = "DEFAULT")]
    pub tenant: String,
    /// How long devices sleep between polls (HH:MM:SS).
    #[arg(long, default_value = "00:05:00")]
    pub poll_interval: String,
    /// Base URL for links handed to devices (default: from the request's Host header).
    #[arg(long)]
    pub public_url: Option<String>,
    /// File holding the GatewayToken devices may authenticate with.
    #[arg(long)]
    pub gateway_token_file: Option<PathBuf>,
    /// File holding the admin token (default: DATA/admin-token, generated on first start).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Largest bundle accepted for upload (e.g. 4GiB, 512MiB, 1000000).
    #[arg(long, default_value = "4GiB")]
    pub max_bundle_size: String,
}

/// Parses `4GiB`, `512MiB`, `64KiB`, `1G`, `1000`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn read_secret(path: &Path, what: &str) -> Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} from {}", path.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(t)
}

/// The admin token: from --admin-token-file, else DATA/admin-token (created, mode 0600).
fn admin_token(args: &ServeArgs) -> Result<String> {
    if let Some(f) = &args.admin_token_file {
        return read_secret(f, "admin token");
    }
    let path = args.data.join("admin-token");
    if path.exists() {
        return read_secret(&path, "admin token");
    }
    let token = generate_token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    println!("generated the admin token into {}", path.display());
    Ok(token)
}

pub async fn run(args: ServeArgs) -> Result<()> {
    airlock_ddi::parse_sleep(&args.poll_interval)?;
    let max_bundle_size = parse_size(&args.max_bundle_size).with_context(|| {
        format!(
            "--max-bundle-size {:?} is not a size such as 4GiB",
            args.max_bundle_size
        )
    })?;
    let trust = TrustPolicy::load(&args.trust_keys, args.threshold)?;
    std::fs::create_dir_all(args.data.join("artifacts"))
        .with_context(|| format!("creating {}", args.data.display()))?;
    let admin_token = admin_token(&args)?;
    let gateway_token = args
        .gateway_token_file
        .as_deref()
        .map(|f| read_secret(f, "gateway token"))
        .transpose()?;
    let url = match &args.database {
        Some(u) => u.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            args.data.join("airlock.db").display()
        ),
    };
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening the database {}", redact(&url)))?;
    let config = Config {
        data_dir: args.data.clone(),
        tenant: args.tenant,
        poll_interval: args.poll_interval,
        public_url: args.public_url,
        gateway_token,
        admin_token,
        max_bundle_size,
        trust,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("airlock-server listening on http://{addr}");
    std::io::stdout().flush().ok();
    tracing::info!("serving on {addr}");
    server::serve(listener, AppState::new(store, config), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(redact("postgres://a:b@h/db"), "postgres://…@h/db");
    }
}
