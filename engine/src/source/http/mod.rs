//! A bundle behind an HTTP(S) URL, resumed with `Range` requests.
//!
//! One `GET` streams the bundle. When the transfer breaks — the body ends before the announced
//! length, the connection drops, no data arrives for `read_timeout`, or the server answers
//! 5xx, 408 or 429 — the source waits (exponential backoff) and continues with
//! `Range: bytes=POS-` and `If-Range: <ETag or Last-Modified>`, so a bundle replaced on the
//! server meanwhile is noticed instead of spliced. `retries` failures in a row end the download;
//! any byte delivered resets the count.
//!
//! A 200 to a `Range` request means the server ignores `Range` (or, with `If-Range`, that the
//! bundle changed; the length and validators tell which). A server that ignores `Range` is still
//! usable: the source reads from the start and discards up to the position it needs, and says so
//! once in the log.

use std::io::{self, Read};
use std::ops::Range;
use std::time::Duration;

use reqwest::Url;
use reqwest::blocking::{Client, Response};
use reqwest::header::{self, HeaderMap};
use tracing::{debug, warn};

mod client;

pub(crate) use client::build_client;
pub use client::{ClientIdentity, HttpExtras, HttpOptions};
use client::{cause, has_invalid_data};

use super::{ByteSource, SourceError};

/// The longest wait between two attempts (unless `backoff` itself is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Buffer for bytes read only to be discarded.
const DISCARD_BUFFER: usize = 64 * 1024;
/// In ranged mode, the largest window asked for when nobody said how far they will read.
const MAX_WINDOW: u64 = 64 * 1024 * 1024;
/// A forward skip up to this long reads through the open response instead of making a new
/// request (a request costs a round trip; this many bytes cost about as much on a slow link).
const SKIP_BY_READING: u64 = 64 * 1024;

/// A bundle behind an `http://` or `https://` URL.
pub struct HttpSource {
    client: Client,
    url: Url,
    /// The URL for messages (any password masked).
    shown: String,
    retries: u32,
    backoff: Duration,
    read_timeout: Duration,
    /// The response being read, if any.
    stream: Option<Stream>,
    /// Absolute offset of the next byte `read()` returns.
    pos: u64,
    len: Option<u64>,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Whether a response was accepted yet (then `len` and the validators describe the bundle).
    identified: bool,
    transferred: u64,
    /// The server answers `Range` requests with the whole body.
    ranges_ignored: bool,
    warned_ranges_ignored: bool,
    /// Failed attempts since the last byte delivered.
    failures: u32,
    discard: Vec<u8>,
    /// The ranges the reader announced it will read (`plan_reads`).
    plan: Vec<Range<u64>>,
    /// Ranged mode: the size of the next request made without a read limit.
    window: Option<u64>,
}

/// A response body positioned in the bundle.
struct Stream {
    response: Response,
    /// Absolute offset of the response's next byte.
    at: u64,
    /// Absolute offset just past the response's last byte, when announced.
    end: Option<u64>,
    /// A range we bounded ourselves (ranged mode): the server sends all of it whether or not
    /// it is read.
    bounded: bool,
}

/// Why an attempt failed.
enum Failure {
    /// Worth another attempt, after the backoff (or the server's `Retry-After`).
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(SourceError),
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure::Fatal(e)
    }
}

fn transient(reason: impl Into<String>) -> Failure {
    Failure::Transient {
        reason: reason.into(),
        retry_after: None,
    }
}

impl HttpSource {
    /// Start downloading `url`: the first request is made here, so a wrong URL or a refusing
    /// server fails now (after the retries a transient failure deserves).
    pub fn open(url: &str, options: &HttpOptions) -> Result<Self, SourceError> {
        let parsed = Url::parse(url).map_err(|e| SourceError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SourceError::InvalidUrl {
                url: url.to_string(),
                reason: "only http:// and https:// are supported".into(),
            });
        }
        let mut source = Self {
            client: build_client(options)?,
            shown: redact(&parsed),
            url: parsed,
            retries: options.retries,
            backoff: options.backoff,
            read_timeout: options.read_timeout,
            stream: None,
            pos: 0,
            len: None,
            etag: None,
            last_modified: None,
            identified: false,
            transferred: 0,
            ranges_ignored: false,
            warned_ranges_ignored: false,
            failures: 0,
            discard: Vec::new(),
            plan: Vec::new(),
            window: options.window.filter(|w| *w > 0),
        };
        source.connect()?;
        Ok(source)
    }

    /// Make requests until one gives a usable response (or the retries run out).
    fn connect(&mut self) -> Result<(), SourceError> {
        loop {
            match self.request() {
                Ok(stream) => {
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient {
                    reason,
                    retry_after,
                }) => self.failed(reason, retry_after)?,
            }
        }
    }

    /// Count a failed attempt: give up when the retries are used up, else log and wait.
    fn failed(&mut self, reason: String, retry_after: Option<Duration>) -> Result<(), SourceError> {
        self.stream = None;
        self.failures += 1;
        if self.failures > self.retries {
            return Err(SourceError::GaveUp {
                url: self.shown.clone(),
                offset: self.pos,
                attempts: self.failures,
                last: reason,
            });
        }
        let cap = MAX_BACKOFF.max(self.backoff);
        let doubled = self
            .backoff
            .saturating_mul(1u32 << (self.failures - 1).min(20));
        let delay = doubled.max(retry_after.unwrap_or_default()).min(cap);
        warn!(
            "{}: {reason} at byte {}; retry {} of {} in {}",
            self.shown,
            self.pos,
            self.failures,
            self.retries,
            humantime::format_duration(delay)
        );
        std::thread::sleep(delay);
        Ok(())
    }

    /// Where the next request should stop (exclusive), if anywhere: the end of the planned
    /// range it starts in, else (ranged mode) the next window.
    fn request_end(&mut self) -> Option<u64> {
        let at = self.plan.partition_point(|r| r.end <= self.pos);
        let end = match self.plan.get(at) {
            Some(r) if r.start <= self.pos => r.end,
            _ => {
                let window = self.window?;
                self.window = Some(window.saturating_mul(2).min(MAX_WINDOW).max(window));
                self.pos.saturating_add(window)
            }
        };
        Some(self.len.map_or(end, |len| end.min(len)))
    }

    /// One request for the bytes from `pos` on (up to the read limit or window, if any).
    fn request(&mut self) -> Result<Stream, Failure> {
        let end = if self.ranges_ignored {
            None
        } else {
            self.request_end()
        };
        let ranged = (self.pos > 0 || end.is_some()) && !self.ranges_ignored;
        let mut request = self.client.get(self.url.clone());
        if ranged {
            let range = match end {
                Some(end) if end > self.pos => format!("bytes={}-{}", self.pos, end - 1),
                _ => format!("bytes={}-", self.pos),
            };
            request = request.header(header::RANGE, range);
            if let Some(validator) = self.if_range() {
                request = request.header(header::IF_RANGE, validator);
            }
        }
        debug!(url = %self.shown, offset = self.pos, ?end, ranged, "requesting");
        let response = request.send().map_err(|e| self.send_failure(e))?;
        let status = response.status().as_u16();
        match status {
            200 => self.accept_full(response, ranged),
            206 => self.accept_partial(response, if ranged { self.pos } else { 0 }, end.is_some()),
            416 => Err(Failure::Fatal(SourceError::RangeNotSatisfiable {
                url: self.shown.clone(),
                offset: self.pos,
            })),
            408 | 429 | 500..=599 => Err(Failure::Transient {
                reason: format!(
                    "HTTP {status} {}",
                    response.status().canonical_reason().unwrap_or("")
                ),
                retry_after: retry_after(response.headers()),
            }),
            _ => Err(Failure::Fatal(SourceError::HttpStatus {
                url: self.shown.clone(),
                status,
            })),
        }
    }

    /// A strong validator for `If-Range`: the ETag unless weak, else Last-Modified.
    fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(etag) if !etag.starts_with("W/") => Some(etag),
            _ => self.last_modified.as_deref(),
        }
    }

    /// A 200: the whole bundle from byte 0.
    fn accept_full(&mut self, response: Response, ranged: bool) -> Result<Stream, Failure> {
        let headers = response.headers();
        let len = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        self.identify(
            len,
            header_str(headers, header::ETAG),
            header_str(headers, header::LAST_MODIFIED),
        )?;
        if header_str(headers, header::ACCEPT_RANGES)
            .is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            self.ranges_ignored = true;
        }
        if ranged {
            // Same bundle (validators and length agree), so the server ignored the Range.
            self.ranges_ignored = true;
        }
        self.warn_if_discarding();
        Ok(Stream {
            response,
            at: 0,
            end: self.len,
            bounded: false,
        })
    }

    /// A 206: the bytes from `start` on, as Content-Range must confirm.
    fn accept_partial(
        &mut self,
        response: Response,
        start: u64,
        bounded: bool,
    ) -> Result<Stream, Failure> {
        let headers = response.headers();
        let content_range = header_str(headers, header::CONTENT_RANGE);
        let Some((first, last, total)) = content_range.and_then(parse_content_range) else {
            return Err(self.bad_content_range(start, content_range).into());
        };
        if first != start {
            return Err(self.bad_content_range(start, content_range).into());
        }
        self.identify(
            total,
            header_str(headers, header::ETAG),
            header_str(headers, header::LAST_MODIFIED),
        )?;
        if self.len.is_some_and(|len| last >= len) {
            return Err(self.bad_content_range(start, content_range).into());
        }
        Ok(Stream {
            response,
            at: first,
            end: Some(last + 1),
            bounded,
        })
    }

    fn bad_content_range(&self, offset: u64, content_range: Option<&str>) -> SourceError {
        SourceError::BadContentRange {
            url: self.shown.clone(),
            offset,
            content_range: content_range.map(str::to_string),
        }
    }

    /// Learn the bundle's length and validators from the first response; check that later
    /// responses describe the same bundle.
    fn identify(
        &mut self,
        len: Option<u64>,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<(), SourceError> {
        if !self.identified {
            self.identified = true;
            self.len = len;
            self.etag = etag.map(str::to_string);
            self.last_modified = last_modified.map(str::to_string);
            return Ok(());
        }
        let differs = |known: &Option<String>, now: Option<&str>| matches!((known, now), (Some(a), Some(b)) if a.trim_start_matches("W/") != b.trim_start_matches("W/"));
        let changed = match (self.len, len) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        } || differs(&self.etag, etag)
            // Last-Modified only counts when there is no ETag to go by.
            || (self.etag.is_none() && differs(&self.last_modified, last_modified));
        if changed {
            return Err(SourceError::Changed {
                url: self.shown.clone(),
            });
        }
        if self.len.is_none() {
            self.len = len;
        }
        Ok(())
    }

    /// Say once that bytes will be downloaded only to be thrown away.
    fn warn_if_discarding(&mut self) {
        if self.ranges_ignored && self.pos > 0 && !self.warned_ranges_ignored {
            self.warned_ranges_ignored = true;
            warn!(
                "{} ignores Range requests: reading from the start and discarding {} bytes to \
                 continue at byte {} (and so on each resume)",
                self.shown, self.pos, self.pos
            );
        }
    }

    /// Classify a failed `send()`.
    fn send_failure(&self, e: reqwest::Error) -> Failure {
        if e.is_builder() {
            return Failure::Fatal(SourceError::InvalidUrl {
                url: self.shown.clone(),
                reason: cause(&e),
            });
        }
        // TLS failures (bad certificate, not TLS at all) surface as InvalidData; trying again
        // will not help.
        if e.is_redirect() || has_invalid_data(&e) {
            return Failure::Fatal(SourceError::Fetch {
                url: self.shown.clone(),
                reason: cause(&e),
            });
        }
        if e.is_timeout() {
            return transient(format!(
                "no response within {}",
                humantime::format_duration(self.read_timeout)
            ));
        }
        transient(cause(&e))
    }

    /// Read into `buf`, resuming as needed. Returns 0 only at the end of the bundle.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        let remaining = self
            .len
            .map_or(u64::MAX, |len| len.saturating_sub(self.pos));
        if buf.is_empty() || remaining == 0 {
            return Ok(0);
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.connect()?;
                continue;
            };
            // How much this response may still deliver: never past what it announced.
            let available = stream
                .end
                .map_or(u64::MAX, |end| end.saturating_sub(stream.at));
            if available == 0 {
                if self.len.is_none() {
                    return Ok(0);
                }
                // A shorter range than asked for, completely read: ask for the rest.
                self.stream = None;
                continue;
            }
            let discarding = stream.at < self.pos;
            let want = if discarding {
                (self.pos - stream.at).min(DISCARD_BUFFER as u64)
            } else {
                remaining.min(buf.len() as u64)
            }
            .min(available) as usize;
            let target = if discarding {
                self.discard.resize(DISCARD_BUFFER, 0);
                &mut self.discard[..want]
            } else {
                &mut buf[..want]
            };
            match stream.response.read(target) {
                Ok(0) if stream.end.is_none() && self.len.is_none() => return Ok(0),
                Ok(0) => {
                    let reason = match self.len {
                        Some(len) => format!("the transfer ended at byte {} of {len}", stream.at),
                        None => format!("the transfer ended at byte {}", stream.at),
                    };
                    self.failed(reason, None)?;
                }
                Ok(n) => {
                    stream.at += n as u64;
                    self.transferred += n as u64;
                    if !discarding {
                        self.pos += n as u64;
                        self.failures = 0;
                        return Ok(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let reason = self.read_failure(&e);
                    self.failed(reason, None)?;
                }
            }
        }
    }

    fn read_failure(&self, e: &io::Error) -> String {
        let timed_out = e.kind() == io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        if timed_out {
            format!(
                "no data for {}",
                humantime::format_duration(self.read_timeout)
            )
        } else {
            format!("the transfer broke off: {}", cause(e))
        }
    }
}

impl Read for HttpSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_some(buf).map_err(io::Error::other)
    }
}

impl ByteSource for HttpSource {
    fn position(&self) -> u64 {
        self.pos
    }

    fn skip_to(&mut self, offset: u64) -> Result<(), SourceError> {
        if offset < self.pos {
            return Err(SourceError::SkipBackwards {
                location: self.describe(),
                position: self.pos,
                offset,
            });
        }
        if offset == self.pos {
            return Ok(());
        }
        if let Some(len) = self.len
            && offset > len
        {
            return Err(SourceError::SkipPastEnd {
                location: self.describe(),
                offset,
                len,
            });
        }
        // A short hop within the open response (the padding after a tar entry, a few bytes) is
        // read through and discarded: a new request per hop made a plain install issue one
        // Range request per bundle entry, and a one-shot fault (a drop, a stall) on the first
        // response was never reached.
        let short_hop = self.stream.as_ref().is_some_and(|s| {
            s.at == self.pos
                && offset - self.pos <= SKIP_BY_READING
                && s.end.is_none_or(|end| offset <= end)
        });
        self.pos = offset;
        if self.ranges_ignored {
            // Keep reading the open response; read() discards up to the new position.
            self.warn_if_discarding();
        } else if short_hop {
            // read() discards up to the new position from the open response.
        } else {
            // The next read() asks for the bytes from here. What is left of a range we asked
            // for is on its way all the same: count it, so that "fetched" is what the network
            // carried (a delta plan keeps it small).
            if let Some(stream) = self.stream.take()
                && stream.bounded
                && let Some(end) = stream.end
            {
                self.transferred += end.saturating_sub(stream.at);
            }
        }
        Ok(())
    }

    fn len(&self) -> Option<u64> {
        self.len
    }

    fn bytes_transferred(&self) -> u64 {
        self.transferred
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn plan_reads(&mut self, ranges: Vec<Range<u64>>) {
        self.plan = ranges;
    }

    fn ignores_ranges(&self) -> bool {
        self.ranges_ignored
    }
}

/// The URL for messages, any password masked.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, header::RETRY_AFTER)?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.trim().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((first, last, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_testkit::{FaultServer, Faults};
    use std::time::Instant;

    const SIZE: usize = 300_000;

    fn content(seed: u8) -> Vec<u8> {
        (0..SIZE)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    fn options() -> HttpOptions {
        HttpOptions {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_millis(300),
            retries: 3,
            backoff: Duration::from_millis(5),
            ca_file: None,
            window: None,
            extras: HttpExtras::default(),
        }
    }

    fn serve(data: &[u8]) -> (FaultServer, String) {
        let server = FaultServer::start().unwrap();
        server.serve_bytes("/b.airlock", data);
        let url = server.url("/b.airlock");
        (server, url)
    }

    fn read_all(src: &mut HttpSource) -> Vec<u8> {
        let mut out = Vec::new();
        src.read_to_end(&mut out).unwrap();
        out
    }

    fn ranges(server: &FaultServer) -> Vec<Option<String>> {
        server
            .requests()
            .iter()
            .map(|r| r.range().map(str::to_string))
            .collect()
    }

    #[test]
    fn plain_download_equals_content() {
        let data = content(0);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &options()).unwrap();
        assert_eq!(src.len(), Some(SIZE as u64));
        assert_eq!(src.describe(), url);
        assert_eq!(read_all(&mut src), data);
        assert_eq!(src.position(), SIZE as u64);
        assert_eq!(src.bytes_transferred(), SIZE as u64);
        assert_eq!(ranges(&server), [None]);
    }

    #[test]
    fn dropped_connection_resumes_with_range() {
        let data = content(1);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().drop_after(100_000).times(2));
        let mut src = HttpSource::open(&url, &options()).unwrap();
        assert_eq!(read_all(&mut src), data);
        assert_eq!(
            ranges(&server),
            [
                None,
                Some("bytes=100000-".into()),
                Some("bytes=200000-".into())
            ]
        );
        assert_eq!(server.requests()[0].status, 200);
        let resumed = &server.requests()[1];
        assert!(
            resumed
                .header("if-range")
                .is_some_and(|v| v.starts_with('"'))
        );
        assert_eq!(resumed.status, 206);
        assert_eq!(src.bytes_transferred(), SIZE as u64);
    }

    #[test]
    fn stall_is_resumed() {
        let data = content(2);
        let (server, url) = serve(&data);
        server.set_faults(
            Faults::none()
                .stall_after(50_000, Duration::from_secs(30))
                .times(1),
        );
        let started = Instant::now();
        let mut src = HttpSource::open(&url, &options()).unwrap();
        assert_eq!(read_all(&mut src), data);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(ranges(&server), [None, Some("bytes=50000-".into())]);
    }

    #[test]
    fn transient_status_is_retried() {
        let data = content(3);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().status(503).times(2));
        let mut src = HttpSource::open(&url, &options()).unwrap();
        assert_eq!(read_all(&mut src), data);
        let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [503, 503, 200]);
    }

    #[test]
    fn persistent_server_error_gives_up_after_the_retries() {
        let (server, url) = serve(&content(4));
        server.set_faults(Faults::none().status(500));
        let err = HttpSource::open(&url, &options()).err().unwrap();
        assert!(
            matches!(err, SourceError::GaveUp { attempts: 4, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&url) && msg.contains("HTTP 500"), "{msg}");
        assert!(msg.contains("4 attempts"), "{msg}");
        assert_eq!(server.requests().len(), 4);
    }

    #[test]
    fn failure_mid_download_surfaces_from_read() {
        let data = content(5);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        server.set_faults(Faults::none().status(500));
        src.skip_to(100_000).unwrap();
        let err = src.read(&mut head).unwrap_err();
        let inner = SourceError::from_io(&err).unwrap();
        assert!(
            matches!(
                inner,
                SourceError::GaveUp {
                    offset: 100_000,
                    attempts: 4,
                    ..
                }
            ),
            "{inner}"
        );
        assert!(err.to_string().contains(&url), "{err}");
    }

    #[test]
    fn not_found_fails_at_once() {
        let (server, _) = serve(&content(6));
        let url = server.url("/missing.airlock");
        let err = HttpSource::open(&url, &options()).err().unwrap();
        assert!(
            matches!(err, SourceError::HttpStatus { status: 404, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&url) && msg.contains("404 Not Found"), "{msg}");
        assert_eq!(server.requests().len(), 1);

        server.set_faults(Faults::none().status(403));
        let url = server.url("/b.airlock");
        let err = HttpSource::open(&url, &options()).err().unwrap();
        assert!(
            matches!(err, SourceError::HttpStatus { status: 403, .. }),
            "{err}"
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn range_not_satisfiable_fails_at_once() {
        let (server, url) = serve(&content(7));
        server.set_faults(Faults::none().status(416));
        let err = HttpSource::open(&url, &options()).err().unwrap();
        assert!(
            matches!(err, SourceError::RangeNotSatisfiable { .. }),
            "{err}"
        );
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn server_ignoring_range_still_gives_the_content() {
        let data = content(8);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().ignore_range().drop_after(100_000).times(1));
        let mut src = HttpSource::open(&url, &options()).unwrap();
        assert_eq!(read_all(&mut src), data);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].range(), Some("bytes=100000-"));
        assert_eq!(requests[1].status, 200);
        assert_eq!(src.bytes_transferred(), SIZE as u64 + 100_000);
    }

    #[test]
    fn skip_to_makes_a_range_request() {
        let data = content(9);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        assert_eq!(head, data[..1000]);
        src.skip_to(200_000).unwrap();
        assert_eq!(src.position(), 200_000);
        assert_eq!(read_all(&mut src), data[200_000..]);
        assert_eq!(ranges(&server), [None, Some("bytes=200000-".into())]);
        assert_eq!(src.bytes_transferred(), 1000 + 100_000);

        let err = src.skip_to(5).unwrap_err();
        assert!(matches!(err, SourceError::SkipBackwards { .. }), "{err}");
        let err = src.skip_to(SIZE as u64 + 1).unwrap_err();
        assert!(matches!(err, SourceError::SkipPastEnd { .. }), "{err}");
    }

    #[test]
    fn short_skip_reads_through_the_open_response() {
        // Skipping a tar entry's padding must not cost a new request.
        let data = content(16);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        src.skip_to(1536).unwrap();
        let mut piece = [0u8; 1000];
        src.read_exact(&mut piece).unwrap();
        assert_eq!(piece, data[1536..2536]);
        assert_eq!(ranges(&server), [None]);
        assert_eq!(src.bytes_transferred(), 2536);
    }

    #[test]
    fn skip_to_on_a_server_ignoring_range_discards() {
        let data = content(10);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().ignore_range());
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        src.skip_to(150_000).unwrap();
        let mut piece = [0u8; 1000];
        src.read_exact(&mut piece).unwrap();
        assert_eq!(piece, data[150_000..151_000]);
        // Now known to ignore Range: later skips discard from the open response.
        src.skip_to(250_000).unwrap();
        assert_eq!(read_all(&mut src), data[250_000..]);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].range(), Some("bytes=150000-"));
        assert_eq!(requests[1].status, 200);
        assert_eq!(src.bytes_transferred(), 1000 + SIZE as u64);
    }

    fn ranged_options(window: u64) -> HttpOptions {
        HttpOptions {
            window: Some(window),
            ..options()
        }
    }

    #[test]
    fn ranged_mode_asks_for_growing_windows() {
        let data = content(17);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &ranged_options(50_000)).unwrap();
        assert_eq!(src.len(), Some(SIZE as u64));
        assert_eq!(read_all(&mut src), data);
        assert_eq!(
            ranges(&server),
            [
                Some("bytes=0-49999".into()),
                Some("bytes=50000-149999".into()),
                Some("bytes=150000-299999".into()),
            ]
        );
        assert_eq!(src.bytes_transferred(), SIZE as u64);
        assert!(!src.ignores_ranges());
    }

    #[test]
    fn read_limits_bound_each_request() {
        // A delta install: the head, then two scattered runs; nothing it skips is sent.
        let data = content(18);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &ranged_options(4096)).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        src.plan_reads(vec![100_000..120_000, 200_000..210_000, 210_000..u64::MAX]);
        src.skip_to(100_000).unwrap();
        let mut run = vec![0u8; 20_000];
        src.read_exact(&mut run).unwrap();
        assert_eq!(run, data[100_000..120_000]);
        src.skip_to(200_000).unwrap();
        let mut run = vec![0u8; 10_000];
        src.read_exact(&mut run).unwrap();
        assert_eq!(run, data[200_000..210_000]);
        assert_eq!(
            ranges(&server),
            [
                Some("bytes=0-4095".into()),
                Some("bytes=100000-119999".into()),
                Some("bytes=200000-209999".into()),
            ]
        );
        let sent: u64 = server.requests().iter().map(|r| r.body_bytes).sum();
        assert_eq!(sent, 4096 + 20_000 + 10_000);

        // The next planned range runs to the end of the bundle.
        assert_eq!(read_all(&mut src), data[210_000..]);
        assert_eq!(
            ranges(&server)[3],
            Some(format!("bytes=210000-{}", SIZE - 1))
        );

        // Reading outside the plan still works: a window of its own.
        let mut src = HttpSource::open(&url, &ranged_options(4096)).unwrap();
        src.plan_reads(vec![Range {
            start: 0,
            end: 1000,
        }]);
        src.skip_to(5000).unwrap();
        let mut piece = [0u8; 10];
        src.read_exact(&mut piece).unwrap();
        assert_eq!(piece, data[5000..5010]);
    }

    #[test]
    fn a_drop_inside_a_limited_range_resumes_within_it() {
        let data = content(19);
        let (server, url) = serve(&data);
        let mut src = HttpSource::open(&url, &ranged_options(1000)).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        server.set_faults(Faults::none().drop_after(30_000).times(1));
        src.plan_reads(vec![Range {
            start: 100_000,
            end: 200_000,
        }]);
        src.skip_to(100_000).unwrap();
        let mut run = vec![0u8; 100_000];
        src.read_exact(&mut run).unwrap();
        assert_eq!(run, data[100_000..200_000]);
        assert_eq!(
            ranges(&server)[1..],
            [
                Some("bytes=100000-199999".into()),
                Some("bytes=130000-199999".into()),
            ]
        );
    }

    #[test]
    fn ranged_mode_notices_a_server_ignoring_range() {
        let data = content(20);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().ignore_range());
        let mut src = HttpSource::open(&url, &ranged_options(4096)).unwrap();
        assert!(src.ignores_ranges());
        assert_eq!(read_all(&mut src), data);
        assert_eq!(ranges(&server), [Some("bytes=0-4095".into())]);
        assert_eq!(server.requests()[0].status, 200);
    }

    #[test]
    fn content_changed_between_requests_is_an_error() {
        let (server, url) = serve(&content(11));
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        // Same length, different bytes: the ETag differs, If-Range gets the whole new body.
        server.serve_bytes("/b.airlock", content(12));
        src.skip_to(100_000).unwrap();
        let err = src.read(&mut head).unwrap_err();
        let inner = SourceError::from_io(&err).unwrap();
        assert!(matches!(inner, SourceError::Changed { .. }), "{inner}");
        assert!(
            err.to_string().contains("changed during the download"),
            "{err}"
        );
        assert_eq!(server.requests()[1].status, 200);
    }

    #[test]
    fn changed_length_without_etag_is_an_error() {
        let (server, url) = serve(&content(13));
        server.set_faults(Faults::none().no_etag());
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut head = [0u8; 1000];
        src.read_exact(&mut head).unwrap();
        server.serve_bytes("/b.airlock", &content(13)[..SIZE - 10]);
        src.skip_to(100_000).unwrap();
        let err = src.read(&mut head).unwrap_err();
        let inner = SourceError::from_io(&err).unwrap();
        assert!(matches!(inner, SourceError::Changed { .. }), "{inner}");
        // Without an ETag, If-Range carried Last-Modified.
        let resumed = &server.requests()[1];
        assert!(
            resumed
                .header("if-range")
                .is_some_and(|v| v.ends_with("GMT"))
        );
    }

    #[test]
    fn stops_at_the_announced_length() {
        let data = content(14);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().announce_length(1000));
        let mut src = HttpSource::open(&url, &options()).unwrap();
        assert_eq!(src.len(), Some(1000));
        assert_eq!(read_all(&mut src), data[..1000]);
    }

    #[test]
    fn tls_failure_is_not_retried() {
        let (server, url) = serve(&content(15));
        let url = url.replacen("http://", "https://", 1);
        let err = HttpSource::open(&url, &options()).err().unwrap();
        assert!(matches!(err, SourceError::Fetch { .. }), "{err}");
        assert!(server.requests().len() <= 1);
    }

    #[test]
    fn bad_ca_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let opts = HttpOptions {
            ca_file: Some(ca),
            ..options()
        };
        let err = HttpSource::open("https://127.0.0.1:1/b", &opts)
            .err()
            .unwrap();
        assert!(matches!(err, SourceError::CaFile { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn partial_answer_from_the_wrong_offset_is_an_error() {
        use std::io::Write;
        use std::net::TcpListener;
        // A server that cuts the first answer short and resumes from the wrong byte.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/b", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let answers: [&[u8]; 2] = [
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n0123456789",
                b"HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\
                  Content-Range: bytes 0-99/100\r\nETag: \"x\"\r\n\r\n",
            ];
            for answer in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                conn.write_all(answer).unwrap();
            }
        });
        let mut src = HttpSource::open(&url, &options()).unwrap();
        let mut out = Vec::new();
        let err = src.read_to_end(&mut out).unwrap_err();
        let inner = SourceError::from_io(&err).unwrap();
        assert!(
            matches!(inner, SourceError::BadContentRange { offset: 10, .. }),
            "{inner}"
        );
        assert!(err.to_string().contains("bytes 0-99/100"), "{err}");
        assert_eq!(out, b"0123456789");
        server.join().unwrap();
    }

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, 9, Some(10))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    fn with_token(options: HttpOptions) -> HttpOptions {
        HttpOptions {
            extras: HttpExtras {
                headers: vec![("Authorization".into(), "TargetToken t0k".into())],
                ..HttpExtras::default()
            },
            ..options
        }
    }

    #[test]
    fn extra_headers_go_with_every_request_retries_and_ranges_included() {
        let data = content(23);
        let (server, url) = serve(&data);
        server.set_faults(Faults::none().drop_after(1000).times(1));
        let mut src = HttpSource::open(&url, &with_token(ranged_options(50_000))).unwrap();
        assert_eq!(read_all(&mut src), data);
        let requests = server.requests();
        assert!(requests.len() > 2, "{requests:?}");
        for r in &requests {
            assert_eq!(r.header("authorization"), Some("TargetToken t0k"), "{r:?}");
        }
    }

    #[test]
    fn the_token_is_not_carried_across_a_redirect_to_another_host() {
        let data = content(29);
        let (server, target) = serve(&data);
        // A one-shot redirector on another port: another host as far as the token goes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let from = format!("http://{}/b.airlock", listener.local_addr().unwrap());
        let redirector = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let reply = format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            std::io::Write::write_all(&mut stream, reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&head).to_ascii_lowercase()
        });
        let mut src = HttpSource::open(&from, &with_token(options())).unwrap();
        assert_eq!(read_all(&mut src), data);
        let head = redirector.join().unwrap();
        assert!(head.contains("authorization: targettoken t0k"), "{head}");
        for r in server.requests() {
            assert_eq!(r.header("authorization"), None, "{r:?}");
        }
    }

    #[test]
    fn a_bad_client_certificate_is_reported_with_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("device.crt"), dir.path().join("device.key"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let opts = HttpOptions {
            extras: HttpExtras {
                identity: Some(ClientIdentity {
                    certificate: cert,
                    key,
                }),
                ..HttpExtras::default()
            },
            ..options()
        };
        let err = HttpSource::open("https://127.0.0.1:1/b", &opts)
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("device.crt") && text.contains("device.key"),
            "{text}"
        );
    }

    #[test]
    fn masks_passwords_in_urls() {
        let url = Url::parse("https://user:secret@example.com/b.airlock").unwrap();
        assert_eq!(redact(&url), "https://user:***@example.com/b.airlock");
    }
}
