//! The HTTP client a download uses: its options (timeouts, retries, trusted CAs, what a fleet
//! server asks of every request) and how its errors read.

use std::error::Error as StdError;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{self, HeaderMap};

use crate::config::DownloadConfig;
use crate::source::SourceError;

/// How patient an HTTP download is, and what it sends besides the URL.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Connecting (TCP and TLS) may take this long.
    pub connect_timeout: Duration,
    /// A stall: no data for this long breaks the transfer (then it is retried). It also bounds
    /// the wait for each response's head, connecting included.
    pub read_timeout: Duration,
    /// How many times to try again after a failure, in a row; a byte delivered resets the count.
    pub retries: u32,
    /// The wait before the first retry; doubles with each failure in a row, up to a minute.
    pub backoff: Duration,
    /// An extra trusted root certificate (PEM; may hold several), besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Ranged mode (delta installs): every request asks for a bounded range, so that bytes the
    /// reader will skip are never sent. Outside the ranges given to [`ByteSource::plan_reads`]
    /// the first request asks for this many bytes and each further one for twice as many as
    /// the last, up to 64 MiB. `None`: one open-ended request for everything.
    pub window: Option<u64>,
    /// What a fleet server asks of every request: headers and a client certificate.
    pub extras: HttpExtras,
}

impl Default for HttpOptions {
    /// The download defaults of the configuration ([`DownloadConfig::default`]).
    fn default() -> Self {
        DownloadConfig::default().http_options()
    }
}

/// Sent with every request of a client, retries and ranged requests included: what a fleet
/// server requires besides the URL.
#[derive(Clone, Default)]
pub struct HttpExtras {
    /// (name, value), e.g. `("Authorization", "TargetToken …")`. An `Authorization` header is
    /// marked sensitive, so it never shows in debug output, and the client drops it when a
    /// redirect leads to another host or port.
    pub headers: Vec<(String, String)>,
    /// Another CA certificate (PEM) to trust, besides `ca_file` and the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Mutual TLS: the client certificate presented when a server asks for one.
    pub identity: Option<ClientIdentity>,
}

impl std::fmt::Debug for HttpExtras {
    // Header values may be secrets: show only their names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExtras")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("ca_file", &self.ca_file)
            .field("identity", &self.identity)
            .finish()
    }
}

/// A client certificate chain and its private key, both PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// The client for `options`: timeouts, trusted CAs, extra headers, client certificate. Shared
/// with the fleet daemon's DDI client, so both speak to a server the same way.
pub(crate) fn build_client(options: &HttpOptions) -> Result<Client, SourceError> {
    let mut builder = Client::builder()
        .connect_timeout(options.connect_timeout)
        // Blocking reqwest applies this to the response head and to each read of the body.
        .timeout(options.read_timeout)
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")));
    let extras = &options.extras;
    for path in options.ca_file.iter().chain(&extras.ca_file) {
        let ca_error = |reason: String| SourceError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(cause(&e)))?;
        if certs.is_empty() {
            return Err(ca_error("it holds no PEM certificate".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if !extras.headers.is_empty() {
        builder = builder.default_headers(header_map(&extras.headers)?);
    }
    if let Some(id) = &extras.identity {
        builder = builder.identity(load_identity(id)?);
    }
    builder
        .build()
        .map_err(|e| SourceError::HttpClient { reason: cause(&e) })
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, SourceError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |what: &str| SourceError::HttpClient {
            reason: format!(
                "header {name:?} has an invalid {what}; check the token file for stray characters"
            ),
        };
        let name = header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("name"))?;
        let mut value = header::HeaderValue::from_str(value).map_err(|_| bad("value"))?;
        if name == header::AUTHORIZATION {
            value.set_sensitive(true);
        }
        map.append(name, value);
    }
    Ok(map)
}

/// reqwest (rustls) wants the private key and the certificate chain in one PEM buffer.
fn load_identity(id: &ClientIdentity) -> Result<reqwest::Identity, SourceError> {
    let bad = |reason: String| SourceError::HttpClient {
        reason: format!(
            "cannot use client certificate {} with key {}: {reason}; give PEM files of a certificate and its private key",
            id.certificate.display(),
            id.key.display()
        ),
    };
    let mut pem = fs::read(&id.key).map_err(|e| bad(format!("{}: {e}", id.key.display())))?;
    pem.push(b'\n');
    pem.extend(
        fs::read(&id.certificate).map_err(|e| bad(format!("{}: {e}", id.certificate.display())))?,
    );
    reqwest::Identity::from_pem(&pem).map_err(|e| bad(cause(&e)))
}

/// An error and its causes on one line, without reqwest's "for url (...)" (we name the URL).
pub(super) fn cause(e: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = match err.downcast_ref::<reqwest::Error>() {
            Some(re) if re.url().is_some() => {
                let mut re_text = re.to_string();
                if let Some(i) = re_text.find(" for url (") {
                    re_text.truncate(i);
                }
                re_text
            }
            _ => err.to_string(),
        };
        // Wrappers often repeat their cause verbatim.
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Whether a TLS (or other protocol) failure is behind `e`.
pub(super) fn has_invalid_data(e: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        next = match err.downcast_ref::<io::Error>() {
            Some(io) if io.kind() == io::ErrorKind::InvalidData => return true,
            // An io::Error's source() skips the error it wraps; look at that one too.
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner),
                None => err.source(),
            },
            None => err.source(),
        };
    }
    false
}
