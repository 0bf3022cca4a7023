//! The DDI client: polls the controller resource, follows the links it is given and answers
//! with feedback and attributes. One reqwest client, built like the bundle downloader's
//! ([`crate::source`]): the same timeouts, trusted CAs, token and client certificate.

use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::debug;

use airlock_ddi::{ActionFeedback, ConfigData, ControllerBase, ErrorBody};

use super::FleetError;
use crate::config::{DownloadConfig, FleetAuth, FleetConfig};
use crate::source::{self, ClientIdentity, HttpExtras, HttpOptions};

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{url} answered HTTP {status}: the server refused the token: the device may await admission by an operator, or the token is wrong"
    )]
    Unauthorized { url: String, status: u16 },
    #[error("cannot reach the server at {url}: {reason}; the daemon keeps trying")]
    Offline { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} answered with a body that is not the DDI message expected: {reason}")]
    BadBody { url: String, reason: String },
}

impl ClientError {
    /// A request that can never succeed as it is (a 4xx other than 401, 403, 408 and 429):
    /// retrying it only blocks what comes after it.
    pub fn is_hopeless(&self) -> bool {
        matches!(self, ClientError::Server { status, .. }
            if (400..500).contains(status) && !matches!(status, 408 | 429))
    }
}

/// A device's connection to its DDI server.
pub struct DdiClient {
    http: Client,
    /// `{server}/{tenant}/controller/v1/{controllerId}`.
    base: String,
    /// Scheme, host and port of the server: the token goes only there.
    origin: Option<Origin>,
    auth: (String, String),
    identity: Option<ClientIdentity>,
    ca_file: Option<std::path::PathBuf>,
}

type Origin = (String, Option<String>, Option<u16>);

fn origin(url: &str) -> Option<Origin> {
    let url = Url::parse(url).ok()?;
    Some((
        url.scheme().to_string(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    ))
}

impl DdiClient {
    /// Reads the token and builds the client; a missing token or a bad certificate fails here,
    /// at start-up.
    pub fn new(fleet: &FleetConfig, download: &DownloadConfig) -> Result<Self, FleetError> {
        let (scheme, path) = match &fleet.auth {
            FleetAuth::TargetToken(p) => (airlock_ddi::TARGET_TOKEN_SCHEME, p),
            FleetAuth::GatewayToken(p) => (airlock_ddi::GATEWAY_TOKEN_SCHEME, p),
        };
        let token = std::fs::read_to_string(path)
            .map_err(|e| FleetError::Token {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(FleetError::Token {
                path: path.clone(),
                reason: "it is empty".into(),
            });
        }
        let auth = ("Authorization".to_string(), format!("{scheme} {token}"));
        let identity = fleet
            .client_identity
            .as_ref()
            .map(|(certificate, key)| ClientIdentity {
                certificate: certificate.clone(),
                key: key.clone(),
            });
        let options = HttpOptions {
            extras: HttpExtras {
                headers: vec![auth.clone()],
                ca_file: fleet.ca_file.clone(),
                identity: identity.clone(),
            },
            ..download.http_options()
        };
        let http = source::build_client(&options).map_err(FleetError::Setup)?;
        let base = format!(
            "{}/{}/controller/v1/{}",
            fleet.server, fleet.tenant, fleet.controller_id
        );
        Ok(Self {
            http,
            origin: origin(&fleet.server),
            base,
            auth,
            identity,
            ca_file: fleet.ca_file.clone(),
        })
    }

    /// `{server}/{tenant}/controller/v1/{controllerId}`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// What the bundle download needs: the fleet CA and client certificate always, the token
    /// only when the artifact lives on the server itself (a CDN never sees it).
    pub fn extras_for(&self, url: &str) -> HttpExtras {
        let same_origin = self.origin.is_some() && origin(url) == self.origin;
        HttpExtras {
            headers: if same_origin {
                vec![self.auth.clone()]
            } else {
                Vec::new()
            },
            ca_file: self.ca_file.clone(),
            identity: self.identity.clone(),
        }
    }

    /// `GET {base}`: what the server wants next.
    pub fn poll(&self) -> Result<ControllerBase, ClientError> {
        self.get(&self.base)
    }

    /// `GET href` and read its JSON answer.
    pub fn get<T: DeserializeOwned>(&self, href: &str) -> Result<T, ClientError> {
        let body = self.send(href, self.http.get(href))?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadBody {
            url: href.to_string(),
            reason: e.to_string(),
        })
    }

    /// `POST …/feedback`.
    pub fn post_feedback(&self, href: &str, feedback: &ActionFeedback) -> Result<(), ClientError> {
        self.send_json(href, self.http.post(href), feedback)
    }

    /// `PUT …/configData`.
    pub fn put_config_data(&self, href: &str, data: &ConfigData) -> Result<(), ClientError> {
        self.send_json(href, self.http.put(href), data)
    }

    fn send_json<T: Serialize>(
        &self,
        href: &str,
        request: RequestBuilder,
        body: &T,
    ) -> Result<(), ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::BadBody {
            url: href.to_string(),
            reason: e.to_string(),
        })?;
        let request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        self.send(href, request).map(|_| ())
    }

    fn send(&self, href: &str, request: RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let request = request.header(
            reqwest::header::ACCEPT,
            "application/hal+json, application/json",
        );
        let response = request.send().map_err(|e| ClientError::Offline {
            url: href.to_string(),
            reason: source_chain(&e),
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .map_err(|e| ClientError::Offline {
                url: href.to_string(),
                reason: source_chain(&e),
            })?
            .to_vec();
        debug!(url = href, status, bytes = body.len(), "DDI exchange");
        match status {
            200..=299 => Ok(body),
            401 | 403 => Err(ClientError::Unauthorized {
                url: href.to_string(),
                status,
            }),
            _ => Err(ClientError::Server {
                url: href.to_string(),
                status,
                message: error_message(&body),
            }),
        }
    }
}

/// hawkBit's `{"errorCode", "message"}`, else the start of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return format!("{} ({})", e.message, e.error_code);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(no message)".into(),
        None => text.to_string(),
    }
}

/// reqwest's error and its causes, without the "for url (…)" we already say.
fn source_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![match e.to_string().split_once(" for url (") {
        Some((head, _)) => head.to_string(),
        None => e.to_string(),
    }];
    let mut next = std::error::Error::source(e);
    while let Some(err) = next {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Where feedback on the action at `href` goes: the link without its query, plus `/feedback`.
pub fn feedback_href(href: &str) -> String {
    let path = href.split(['?', '#']).next().unwrap_or(href);
    format!("{}/feedback", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_goes_next_to_the_action() {
        assert_eq!(
            feedback_href("https://h/T/controller/v1/d/deploymentBase/8?c=-21"),
            "https://h/T/controller/v1/d/deploymentBase/8/feedback"
        );
        assert_eq!(
            feedback_href("http://h/T/controller/v1/d/cancelAction/9"),
            "http://h/T/controller/v1/d/cancelAction/9/feedback"
        );
    }

    #[test]
    fn only_4xx_without_hope_are_dropped() {
        let server = |status| ClientError::Server {
            url: "u".into(),
            status,
            message: String::new(),
        };
        assert!(
            server(404).is_hopeless() && server(400).is_hopeless() && server(410).is_hopeless()
        );
        for s in [408, 429, 500, 503] {
            assert!(!server(s).is_hopeless(), "{s}");
        }
        let unauthorized = ClientError::Unauthorized {
            url: "u".into(),
            status: 401,
        };
        assert!(!unauthorized.is_hopeless());
        assert!(unauthorized.to_string().contains("await admission"));
    }

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(
            error_message(br#"{"errorCode":"hawkbit.server.error.repo.entitiyNotFound","message":"Action 8 not found"}"#),
            "Action 8 not found (hawkbit.server.error.repo.entitiyNotFound)"
        );
        assert_eq!(error_message(b""), "(no message)");
        assert_eq!(error_message(&[b'x'; 300]).chars().count(), 201);
    }

    #[test]
    fn the_token_goes_only_to_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  s3cret\n").unwrap();
        let fleet = FleetConfig {
            server: "http://fleet.example:8080".into(),
            tenant: "DEFAULT".into(),
            controller_id: "dev1".into(),
            auth: FleetAuth::TargetToken(token),
            ca_file: None,
            client_identity: None,
            poll_interval: std::time::Duration::from_secs(60),
            attributes: Default::default(),
            maintenance_window: None,
        };
        let client = DdiClient::new(&fleet, &DownloadConfig::default()).unwrap();
        assert_eq!(
            client.base_url(),
            "http://fleet.example:8080/DEFAULT/controller/v1/dev1"
        );
        let same = client.extras_for("http://FLEET.example:8080/DEFAULT/controller/v1/dev1/softwaremodules/1/artifacts/a.airlock");
        assert_eq!(
            same.headers,
            [(
                "Authorization".to_string(),
                "TargetToken s3cret".to_string()
            )]
        );
        assert!(
            client
                .extras_for("http://cdn.example/a.airlock")
                .headers
                .is_empty()
        );
        assert!(
            client
                .extras_for("https://fleet.example:8080/a")
                .headers
                .is_empty()
        );
        assert!(!format!("{same:?}").contains("s3cret"));
    }
}
