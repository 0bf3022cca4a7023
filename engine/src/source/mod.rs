//! Where bundle bytes come from: a local file, or HTTP(S) with `Range` resume.
//!
//! Every kind is a [`ByteSource`]: a reader that knows the absolute offset of the next byte and
//! can jump forward. Jumping forward is how an install resumes at the first chunk not yet
//! written, and how a delta install skips the chunks the device already has. A source never
//! moves backwards; to start over, open it again.
//!
//! A source delivers bytes and resumes faithfully; it does not judge them. Whether they are the
//! bundle they claim to be is for the signature and hash checks in `bundle`.

mod file;
mod http;

use std::io;
use std::ops::Range;
use std::path::PathBuf;

pub use file::FileSource;
pub(crate) use http::build_client;
pub use http::{ClientIdentity, HttpExtras, HttpOptions, HttpSource};

/// A bundle's bytes, read front to back; can jump forward (resume at a chunk, skip what the
/// device already has).
///
/// `read()` failures are `io::Error`s wrapping a [`SourceError`]; get it back with
/// [`SourceError::from_io`].
#[allow(
    clippy::len_without_is_empty,
    reason = "len() is optional metadata; an empty bundle is no case worth a method"
)]
pub trait ByteSource: io::Read + Send {
    /// Absolute offset (from the start of the bundle) of the next byte `read()` returns.
    fn position(&self) -> u64;

    /// Continue at absolute `offset` >= [`position`](Self::position). A file seeks; HTTP makes a
    /// new `Range` request (or, when the server ignores `Range`, reads and discards). Going back,
    /// or past the end when the length is known, is an error.
    fn skip_to(&mut self, offset: u64) -> Result<(), SourceError>;

    /// Total size in bytes, when known.
    fn len(&self) -> Option<u64>;

    /// Bytes actually transferred from the origin so far, including any read only to be
    /// discarded (for "fetched vs reused" reports).
    fn bytes_transferred(&self) -> u64;

    /// `file /path` or the URL, for messages.
    fn describe(&self) -> String;

    /// The byte ranges the caller is going to read, sorted and disjoint (a delta install's
    /// plan): HTTP then asks for each range on its own, so bytes the caller skips are never
    /// sent. Reads outside the ranges still work (each costs a request). A file ignores it.
    fn plan_reads(&mut self, _ranges: Vec<Range<u64>>) {}

    /// Whether the origin answers range requests with the whole bundle (then every skip reads
    /// and discards, and a delta install saves nothing).
    fn ignores_ranges(&self) -> bool {
        false
    }
}

/// Open a bundle location: an `http://` or `https://` URL, a `file://` URL or a file path.
pub fn open(location: &str, http: &HttpOptions) -> Result<Box<dyn ByteSource>, SourceError> {
    let scheme = location
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https") => Ok(Box::new(HttpSource::open(location, http)?)),
        Some("file") => {
            let path = &location["file://".len()..];
            Ok(Box::new(FileSource::open(path)?))
        }
        Some(scheme) if !scheme.is_empty() && scheme.chars().all(is_scheme_char) => {
            Err(SourceError::UnsupportedLocation {
                location: location.to_string(),
            })
        }
        _ => Ok(Box::new(FileSource::open(location)?)),
    }
}

/// Whether `location` is an `http://` or `https://` URL.
pub fn is_http(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(scheme, _)| matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https"))
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// What went wrong getting a bundle's bytes, and what to do about it.
///
/// Messages include the underlying cause, so printing one is enough.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot open bundle file {}: {error}; check the path and that airlock may read it",
        path.display()
    )]
    FileOpen { path: PathBuf, error: io::Error },

    #[error(
        "cannot read bundle file {} at byte {offset}: {error}; the file may have been \
         truncated or the storage is failing",
        path.display()
    )]
    FileRead {
        path: PathBuf,
        offset: u64,
        error: io::Error,
    },

    #[error(
        "cannot go back to byte {offset} of {location}: already at byte {position}; a source \
         only moves forward (open it again to start over)"
    )]
    SkipBackwards {
        location: String,
        position: u64,
        offset: u64,
    },

    #[error(
        "cannot skip to byte {offset} of {location}: it is only {len} bytes long; the bundle is \
         truncated or does not match its index"
    )]
    SkipPastEnd {
        location: String,
        offset: u64,
        len: u64,
    },

    #[error(
        "unsupported bundle location {location}: give a file path or an http:// or https:// URL"
    )]
    UnsupportedLocation { location: String },

    #[error("invalid bundle URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error(
        "cannot use {} as a trusted CA certificate: {reason}; give a file with one or more PEM \
         certificates",
        path.display()
    )]
    CaFile { path: PathBuf, reason: String },

    #[error("cannot set up the HTTP client: {reason}")]
    HttpClient { reason: String },

    /// A 4xx (other than 408, 416, 429) or any other status a download cannot use; not retried.
    #[error(
        "{url} answered HTTP {status} {}; check the URL, that the bundle is published there and \
         that this device may fetch it",
        reason_phrase(*status)
    )]
    HttpStatus { url: String, status: u16 },

    #[error(
        "{url} answered 416 Range Not Satisfiable to a request from byte {offset}; the bundle on \
         the server is shorter than expected (replaced?): start the install again"
    )]
    RangeNotSatisfiable { url: String, offset: u64 },

    #[error(
        "{url} answered a request from byte {offset} with Content-Range {}; the server or a \
         proxy in between does not resume downloads correctly: try without the proxy or from \
         another server",
        content_range.as_deref().unwrap_or("(none)")
    )]
    BadContentRange {
        url: String,
        offset: u64,
        content_range: Option<String>,
    },

    #[error("the bundle at {url} changed during the download; start the install again")]
    Changed { url: String },

    /// A failure that retrying cannot fix (an invalid certificate, too many redirects, …).
    #[error(
        "cannot fetch {url}: {reason}; check the URL and, for https, the server's certificate \
         and the trusted CA (ca_file)"
    )]
    Fetch { url: String, reason: String },

    /// Transient failures (dropped connections, stalls, 5xx, 429) went on for too long.
    #[error(
        "gave up on {url} at byte {offset} after {attempts} attempts in a row; last error: \
         {last}; check the network and the server, then try again"
    )]
    GaveUp {
        url: String,
        offset: u64,
        attempts: u32,
        last: String,
    },
}

impl SourceError {
    /// The `SourceError` inside an `io::Error` returned by a [`ByteSource`]'s `read()`.
    pub fn from_io(error: &io::Error) -> Option<&SourceError> {
        error.get_ref()?.downcast_ref()
    }
}

/// `Not Found` for 404, for messages.
fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn open_dispatches_on_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.airlock");
        std::fs::write(&path, b"bundle").unwrap();
        let opts = HttpOptions::default();

        let mut src = open(path.to_str().unwrap(), &opts).unwrap();
        let mut out = Vec::new();
        src.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"bundle");
        assert_eq!(src.describe(), format!("file {}", path.display()));

        let url = format!("file://{}", path.display());
        assert_eq!(open(&url, &opts).unwrap().len(), Some(6));

        let err = open("ftp://example.com/b.airlock", &opts).err().unwrap();
        assert!(
            matches!(err, SourceError::UnsupportedLocation { .. }),
            "{err}"
        );

        let err = open(dir.path().to_str().unwrap(), &opts).err().unwrap();
        assert!(matches!(err, SourceError::FileOpen { .. }), "{err}");

        let missing = dir.path().join("missing.airlock");
        let err = open(missing.to_str().unwrap(), &opts).err().unwrap();
        assert!(err.to_string().contains("missing.airlock"), "{err}");
    }

    #[test]
    fn read_errors_carry_the_source_error() {
        let inner = SourceError::Changed {
            url: "http://x/b".into(),
        };
        let io = io::Error::other(inner);
        assert!(matches!(
            SourceError::from_io(&io),
            Some(SourceError::Changed { .. })
        ));
        assert!(SourceError::from_io(&io::Error::other("plain")).is_none());
    }
}
