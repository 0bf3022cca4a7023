//! A loopback HTTP/1.1 server with injectable faults, std only.
//!
//! ```no_run
//! use airlock_testkit::{FaultServer, Faults};
//!
//! let server = FaultServer::start().unwrap();
//! server.serve_bytes("/bundle.airlock", vec![7u8; 100_000]);
//! // The first request breaks off after 1000 body bytes; later ones are served normally.
//! server.set_faults(Faults::none().drop_after(1000).times(1));
//! let url = server.url("/bundle.airlock");
//! // ... download `url` ...
//! assert_eq!(server.requests()[1].range(), Some("bytes=1000-"));
//! ```
//!
//! What it speaks: `GET` and `HEAD`, keep-alive, `Range: bytes=a-`, `bytes=a-b` and `bytes=-n`
//! (one range; answered with 206 and `Content-Range`, or 416), `If-Range` (a validator that no
//! longer matches gets the full body with 200, as RFC 9110 says), `ETag` and `Last-Modified`.
//! Paths are matched literally, without the query string and without percent-decoding.
//!
//! Faults are set per server and can change while it runs. The per-request faults (status,
//! drop, stall) can be limited to the next K requests with [`Faults::times`]; the content faults
//! (wrong length, corruption, ignoring `Range`, no `ETag`) apply to every response. A server
//! without faults is a plain file server, good for end-to-end tests and the demo.
//!
//! One thread per connection (at most 64 at a time; further connections wait in the listen
//! backlog). Dropping the server closes every connection, wakes stalled responses and joins all
//! threads.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::ToSocketAddrs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections served at the same time.
const MAX_CONNECTIONS: usize = 64;
/// How often a connection waiting for a request checks whether the server is shutting down.
const POLL: Duration = Duration::from_millis(50);
/// A request head larger than this is refused.
const MAX_HEAD: usize = 64 * 1024;
/// Body bytes written per `write` call.
const CHUNK: usize = 64 * 1024;

/// Misbehaviour to inject, built with chained calls: `Faults::none().status(503).times(2)`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    status: Option<u16>,
    drop_after: Option<u64>,
    stall: Option<(u64, Duration)>,
    times: Option<u32>,
    announce_length: Option<u64>,
    corrupt_at: Option<u64>,
    ignore_range: bool,
    no_etag: bool,
}

impl Faults {
    /// Serve correctly.
    pub fn none() -> Self {
        Self::default()
    }

    /// Answer every request with this status (and a short text body) instead of the file.
    /// A 416 carries `Content-Range: bytes */LEN`.
    pub fn status(mut self, code: u16) -> Self {
        self.status = Some(code);
        self
    }

    /// Close the connection after sending this many body bytes of a response.
    pub fn drop_after(mut self, body_bytes: u64) -> Self {
        self.drop_after = Some(body_bytes);
        self
    }

    /// Pause for `pause` after sending this many body bytes of a response, then go on (unless the
    /// client has hung up).
    pub fn stall_after(mut self, body_bytes: u64, pause: Duration) -> Self {
        self.stall = Some((body_bytes, pause));
        self
    }

    /// Apply the per-request faults (status, drop, stall) only to the next `requests` requests
    /// for a served path, counted from [`FaultServer::set_faults`]; later requests are served
    /// correctly. Without this they apply to every request.
    pub fn times(mut self, requests: u32) -> Self {
        self.times = Some(requests);
        self
    }

    /// Claim the full file is `len` bytes long: `Content-Length` of a 200, the total in the
    /// `Content-Range` of a 206. The real bytes are sent, then the connection is closed.
    pub fn announce_length(mut self, len: u64) -> Self {
        self.announce_length = Some(len);
        self
    }

    /// Flip every bit of the byte at this absolute offset of the file, in every response.
    pub fn corrupt_at(mut self, offset: u64) -> Self {
        self.corrupt_at = Some(offset);
        self
    }

    /// Ignore `Range` and `If-Range`: always answer 200 with the whole file, and do not send
    /// `Accept-Ranges`.
    pub fn ignore_range(mut self) -> Self {
        self.ignore_range = true;
        self
    }

    /// Send no `ETag` (`Last-Modified` is still sent).
    pub fn no_etag(mut self) -> Self {
        self.no_etag = true;
        self
    }

    fn has_per_request(&self) -> bool {
        self.status.is_some() || self.drop_after.is_some() || self.stall.is_some()
    }
}

/// One request the server received, in arrival order.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target as sent, query string included.
    pub path: String,
    /// The headers (name, value) as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The status the server answered with.
    pub status: u16,
    /// Body bytes written to the connection (what the client was sent, read or not).
    pub body_bytes: u64,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Range` header, e.g. `bytes=123-`.
    pub fn range(&self) -> Option<&str> {
        self.header("range")
    }
}

/// A loopback HTTP/1.1 server with injectable faults; see the module docs.
pub struct FaultServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled on shutdown and whenever a connection ends.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Content>,
    dirs: Vec<(String, PathBuf)>,
    faults: Faults,
    /// Requests the per-request faults have applied to since they were set.
    faults_used: u32,
    requests: Vec<Request>,
    /// Clones of the live connections, to close them on shutdown.
    connections: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
    next_id: u64,
    shutdown: bool,
}

#[derive(Clone)]
enum Content {
    Bytes {
        data: Arc<[u8]>,
        etag: String,
        modified: SystemTime,
    },
    File(PathBuf),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not take the whole test down with a poisoned lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }

    /// Sleep for `pause` unless the server shuts down first; true if it did.
    fn sleep(&self, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        let mut state = self.lock();
        while !state.shutdown {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.wake.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl FaultServer {
    /// Start a server on 127.0.0.1 with a free port, serving nothing yet, without faults.
    pub fn start() -> io::Result<Self> {
        Self::bind((Ipv4Addr::LOCALHOST, 0))
    }

    /// Start a server on a chosen address (e.g. a fixed port for the demo).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("fault-server".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path` (a leading `/` is added when missing).
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// Serve `data` at `path`, replacing what was there. The `ETag` is derived from the content,
    /// so replacing the content changes it.
    pub fn serve_bytes(&self, path: &str, data: impl Into<Arc<[u8]>>) {
        let data = data.into();
        let mut hasher = DefaultHasher::new();
        data.hash(&mut hasher);
        let content = Content::Bytes {
            etag: format!("\"{:016x}\"", hasher.finish()),
            data,
            modified: SystemTime::now(),
        };
        self.shared.lock().files.insert(normalize(path), content);
    }

    /// Serve the file at `file` at `path`. It is opened per request, so it may be large and
    /// may change; its `ETag` comes from its size and modification time.
    pub fn serve_file(&self, path: &str, file: impl Into<PathBuf>) {
        let content = Content::File(file.into());
        self.shared.lock().files.insert(normalize(path), content);
    }

    /// Serve every file below `dir` under the URL prefix `prefix` (`"/"` for the root):
    /// `prefix/a/b` is `dir/a/b`. Paths with `..` are refused.
    pub fn serve_dir(&self, prefix: &str, dir: impl Into<PathBuf>) {
        let mut prefix = normalize(prefix);
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.shared.lock().dirs.push((prefix, dir.into()));
    }

    /// Stop serving `path` (added with `serve_bytes` or `serve_file`).
    pub fn remove(&self, path: &str) {
        self.shared.lock().files.remove(&normalize(path));
    }

    /// Replace the faults; the count for [`Faults::times`] starts again.
    pub fn set_faults(&self, faults: Faults) {
        let mut state = self.shared.lock();
        state.faults = faults;
        state.faults_used = 0;
    }

    /// Serve correctly from now on.
    pub fn clear_faults(&self) {
        self.set_faults(Faults::none());
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Forget the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.shutdown = true;
            for conn in state.connections.values() {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
        self.shared.wake.notify_all();
        // Wake the acceptor, blocked in accept(), with a connection of our own.
        let mut wake_addr = self.addr;
        if wake_addr.ip().is_unspecified() {
            wake_addr.set_ip(match wake_addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let woke = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take()
            && woke
        {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut self.shared.lock().threads);
        for t in threads {
            let _ = t.join();
        }
    }
}

fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut state = shared.lock();
        while !state.shutdown && state.connections.len() >= MAX_CONNECTIONS {
            state = match shared.wake.wait(state) {
                Ok(s) => s,
                Err(e) => e.into_inner(),
            };
        }
        if state.shutdown {
            return;
        }
        state.threads.retain(|t| !t.is_finished());
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = state.next_id;
        state.next_id += 1;
        state.connections.insert(id, clone);
        let conn_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("fault-server-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
                conn_shared.lock().connections.remove(&id);
                conn_shared.wake.notify_all();
            });
        match spawned {
            Ok(handle) => state.threads.push(handle),
            Err(_) => {
                state.connections.remove(&id);
            }
        }
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    close: bool,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_nodelay(true)?;
    let mut pending = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut pending, shared)? else {
            return Ok(());
        };
        let keep_alive = respond(&mut stream, &head, shared)?;
        if !keep_alive {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Read the next request head; None when the client closed the connection or the server stops.
fn read_head(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    shared: &Shared,
) -> io::Result<Option<Head>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let head = parse_head(&String::from_utf8_lossy(&head));
            // Skip a request body, if any (GET and HEAD have none in practice).
            if let Some(len) = head
                .as_ref()
                .and_then(|h| h.header("content-length"))
                .and_then(|v| v.parse::<usize>().ok())
            {
                while pending.len() < len {
                    match stream.read(&mut buf) {
                        Ok(0) => return Ok(None),
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(e) if is_timeout(&e) && !shared.is_shutdown() => {}
                        Err(e) => return Err(e),
                    }
                }
                pending.drain(..len);
            }
            return match head {
                Some(h) => Ok(Some(h)),
                None => {
                    let _ = write_simple(stream, 400, "Bad Request", &[], true);
                    Ok(None)
                }
            };
        }
        // Not HTTP at all (a TLS handshake, say): answer as a plain HTTP server would.
        if pending.first().is_some_and(|b| !b.is_ascii_uppercase()) {
            let _ = write_simple(stream, 400, "Bad Request", &[], true);
            return Ok(None);
        }
        if pending.len() > MAX_HEAD {
            let _ = write_simple(stream, 431, "Request Header Fields Too Large", &[], true);
            return Ok(None);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {
                if shared.is_shutdown() {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let version = parts.next()?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut head = Head {
        method,
        target,
        headers,
        close: version == "HTTP/1.0",
    };
    if let Some(conn) = head.header("connection") {
        head.close = conn.eq_ignore_ascii_case("close");
    }
    Some(head)
}

/// What a request resolves to.
struct Resolved {
    body: Body,
    len: u64,
    etag: String,
    last_modified: String,
}

enum Body {
    Bytes(Arc<[u8]>),
    File(File),
}

fn resolve(state: &State, path: &str) -> Option<Resolved> {
    if let Some(content) = state.files.get(path) {
        return match content {
            Content::Bytes {
                data,
                etag,
                modified,
            } => Some(Resolved {
                len: data.len() as u64,
                body: Body::Bytes(Arc::clone(data)),
                etag: etag.clone(),
                last_modified: http_date(*modified),
            }),
            Content::File(file) => open_file(file),
        };
    }
    // The longest matching directory prefix wins.
    let (prefix, dir) = state
        .dirs
        .iter()
        .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())?;
    let rel = Path::new(&path[prefix.len()..]);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    open_file(&dir.join(rel))
}

fn open_file(path: &Path) -> Option<Resolved> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Some(Resolved {
        body: Body::File(file),
        len: meta.len(),
        etag: format!("\"{:x}-{:x}\"", meta.len(), nanos),
        last_modified: http_date(modified),
    })
}

/// The part of the file a response sends, and how to spoil it.
struct Plan {
    start: u64,
    end: u64,
    drop_after: Option<u64>,
    stall: Option<(u64, Duration)>,
    corrupt_at: Option<u64>,
}

/// Answer one request; returns whether the connection stays open.
fn respond(stream: &mut TcpStream, head: &Head, shared: &Shared) -> io::Result<bool> {
    let path = normalize(&head.target);
    let is_head = head.method == "HEAD";
    // Returns where the request was recorded, to add the body bytes once sent.
    let record = |status: u16| -> usize {
        let mut state = shared.lock();
        state.requests.push(Request {
            method: head.method.clone(),
            path: head.target.clone(),
            headers: head.headers.clone(),
            status,
            body_bytes: 0,
        });
        state.requests.len() - 1
    };

    if head.method != "GET" && !is_head {
        record(405);
        write_simple(
            stream,
            405,
            "Method Not Allowed",
            &[("Allow", "GET, HEAD")],
            head.close,
        )?;
        return Ok(!head.close);
    }

    let (resolved, faults, per_request) = {
        let mut state = shared.lock();
        let resolved = resolve(&state, &path);
        let faults = state.faults.clone();
        let mut per_request = false;
        if resolved.is_some() && faults.has_per_request() {
            per_request = faults.times.is_none_or(|k| state.faults_used < k);
            if per_request {
                state.faults_used += 1;
            }
        }
        (resolved, faults, per_request)
    };
    let Some(mut resolved) = resolved else {
        record(404);
        write_simple(stream, 404, "Not Found", &[], head.close)?;
        return Ok(!head.close);
    };

    if let (true, Some(code)) = (per_request, faults.status) {
        record(code);
        let total = format!("bytes */{}", resolved.len);
        let extra: &[(&str, &str)] = if code == 416 {
            &[("Content-Range", &total)]
        } else {
            &[]
        };
        write_simple(stream, code, reason(code), extra, head.close)?;
        return Ok(!head.close);
    }

    // Range, unless ignored or an If-Range validator no longer matches.
    let mut range = None;
    if !faults.ignore_range
        && let Some(spec) = head.header("range")
    {
        let current = match head.header("if-range") {
            None => true,
            Some(v) => (v == resolved.etag && !faults.no_etag) || v == resolved.last_modified,
        };
        if current {
            match parse_range(spec, resolved.len) {
                RangeSpec::Satisfiable(a, b) => range = Some((a, b)),
                RangeSpec::Unsatisfiable => {
                    record(416);
                    let total = format!("bytes */{}", resolved.len);
                    write_simple(
                        stream,
                        416,
                        reason(416),
                        &[("Content-Range", &total)],
                        head.close,
                    )?;
                    return Ok(!head.close);
                }
                RangeSpec::Ignored => {}
            }
        }
    }

    let announced = faults.announce_length.unwrap_or(resolved.len);
    let (status, start, end) = match range {
        Some((a, b)) => (206, a, b + 1),
        None => (200, 0, resolved.len),
    };
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            "application/octet-stream".into(),
        ),
        ("Last-Modified".to_string(), resolved.last_modified.clone()),
    ];
    if !faults.no_etag {
        headers.push(("ETag".into(), resolved.etag.clone()));
    }
    if !faults.ignore_range {
        headers.push(("Accept-Ranges".into(), "bytes".into()));
    }
    if status == 206 {
        let last = if faults.announce_length.is_some() {
            announced.saturating_sub(1).max(start)
        } else {
            end - 1
        };
        headers.push((
            "Content-Range".into(),
            format!("bytes {start}-{last}/{announced}"),
        ));
        headers.push(("Content-Length".into(), (last + 1 - start).to_string()));
    } else {
        headers.push(("Content-Length".into(), announced.to_string()));
    }
    // A lying length, or a response cut short, leaves the connection unusable.
    let close = head.close
        || faults.announce_length.is_some()
        || (per_request && faults.drop_after.is_some());
    if close {
        headers.push(("Connection".into(), "close".into()));
    }
    let recorded = record(status);
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !is_head {
        let plan = Plan {
            start,
            end,
            drop_after: faults.drop_after.filter(|_| per_request),
            stall: faults.stall.filter(|_| per_request),
            corrupt_at: faults.corrupt_at,
        };
        let mut sent = 0;
        let complete = send_body(
            stream,
            &mut resolved.body,
            &plan,
            shared,
            recorded,
            &mut sent,
        );
        if let Some(request) = shared.lock().requests.get_mut(recorded) {
            request.body_bytes = sent;
        }
        if !complete? {
            return Ok(false);
        }
    }
    stream.flush()?;
    Ok(!close)
}

/// Send the planned bytes; false when the response was cut short on purpose.
fn send_body(
    stream: &mut TcpStream,
    body: &mut Body,
    plan: &Plan,
    shared: &Shared,
    recorded: usize,
    sent_bytes: &mut u64,
) -> io::Result<bool> {
    let count = |bytes: u64| {
        if let Some(request) = shared.lock().requests.get_mut(recorded) {
            request.body_bytes = bytes;
        }
    };
    if let Body::File(f) = body {
        f.seek(SeekFrom::Start(plan.start))?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut pos = plan.start;
    let mut stalled = false;
    while pos < plan.end {
        let sent = pos - plan.start;
        // Stop the chunk at the next point where a fault strikes.
        let mut want = (plan.end - pos).min(CHUNK as u64);
        if let Some(limit) = plan.drop_after {
            if sent >= limit {
                stream.flush()?;
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(false);
            }
            want = want.min(limit - sent);
        }
        if let Some((at, pause)) = plan.stall
            && !stalled
        {
            if sent >= at {
                stalled = true;
                stream.flush()?;
                if shared.sleep(pause) {
                    return Ok(false);
                }
                continue;
            }
            want = want.min(at - sent);
        }
        let n = want as usize;
        let chunk = &mut buf[..n];
        match body {
            Body::Bytes(data) => chunk.copy_from_slice(&data[pos as usize..pos as usize + n]),
            Body::File(f) => f.read_exact(chunk)?,
        }
        if let Some(x) = plan.corrupt_at
            && (pos..pos + want).contains(&x)
        {
            chunk[(x - pos) as usize] ^= 0xff;
        }
        // Counted before the write: a client that has read these bytes finds them counted.
        count(*sent_bytes + want);
        if let Err(e) = stream.write_all(chunk) {
            count(*sent_bytes);
            return Err(e);
        }
        *sent_bytes += want;
        pos += want;
    }
    Ok(true)
}

enum RangeSpec {
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Not a single byte range we understand: serve the whole file.
    Ignored,
}

/// Parse `bytes=a-`, `bytes=a-b` or `bytes=-n` against a file of `len` bytes.
fn parse_range(spec: &str, len: u64) -> RangeSpec {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignored;
    };
    if set.contains(',') {
        return RangeSpec::Ignored;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return RangeSpec::Ignored;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // The last n bytes.
        return match b.parse::<u64>() {
            Ok(0) => RangeSpec::Unsatisfiable,
            Ok(_) if len == 0 => RangeSpec::Unsatisfiable,
            Ok(n) => RangeSpec::Satisfiable(len.saturating_sub(n), len - 1),
            Err(_) => RangeSpec::Ignored,
        };
    }
    let Ok(first) = a.parse::<u64>() else {
        return RangeSpec::Ignored;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(last) if last >= first => last,
            _ => return RangeSpec::Ignored,
        }
    };
    if first >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Satisfiable(first, last.min(len - 1))
}

fn write_simple(
    stream: &mut TcpStream,
    status: u16,
    text: &str,
    extra: &[(&str, &str)],
    close: bool,
) -> io::Result<()> {
    let body = format!("{status} {text}\n");
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as `Last-Modified` wants.
fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// A raw HTTP/1.1 exchange on a fresh connection: (status, headers, body).
    fn get(server: &FaultServer, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
        exchange(server, "GET", path, headers)
    }

    fn exchange(
        server: &FaultServer,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut reader = io::BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head[9..12].parse().unwrap();
        let mut body = Vec::new();
        let _ = reader.read_to_end(&mut body);
        (status, head, body)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn serves_whole_file_and_ranges() {
        let server = FaultServer::start().unwrap();
        server.serve_bytes("/b", data(1000));
        let (status, head, body) = get(&server, "/b", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("Content-Length: 1000"), "{head}");
        assert!(head.contains("ETag: \""), "{head}");
        assert_eq!(body, data(1000));

        let (status, head, body) = get(&server, "/b", &[("Range", "bytes=100-")]);
        assert_eq!(status, 206);
        assert!(head.contains("Content-Range: bytes 100-999/1000"), "{head}");
        assert_eq!(body, data(1000)[100..]);

        let (status, _, body) = get(&server, "/b", &[("Range", "bytes=10-19")]);
        assert_eq!(status, 206);
        assert_eq!(body, data(1000)[10..20]);

        let (status, _, body) = get(&server, "/b", &[("Range", "bytes=-5")]);
        assert_eq!(status, 206);
        assert_eq!(body, data(1000)[995..]);

        let (status, head, _) = get(&server, "/b", &[("Range", "bytes=1000-")]);
        assert_eq!(status, 416);
        assert!(head.contains("Content-Range: bytes */1000"), "{head}");

        let (status, head, body) = exchange(&server, "HEAD", "/b", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("Content-Length: 1000"));
        assert!(body.is_empty());

        assert_eq!(get(&server, "/missing", &[]).0, 404);
        let ranges: Vec<_> = server
            .requests()
            .iter()
            .map(|r| r.range().map(str::to_string))
            .collect();
        assert_eq!(ranges[1].as_deref(), Some("bytes=100-"));
    }

    #[test]
    fn if_range_with_stale_validator_gets_full_body() {
        let server = FaultServer::start().unwrap();
        server.serve_bytes("/b", data(100));
        let (_, head, _) = get(&server, "/b", &[]);
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .unwrap()
            .to_string();
        let (status, _, _) = get(
            &server,
            "/b",
            &[("Range", "bytes=10-"), ("If-Range", &etag)],
        );
        assert_eq!(status, 206);
        server.serve_bytes("/b", data(101));
        let (status, _, body) = get(
            &server,
            "/b",
            &[("Range", "bytes=10-"), ("If-Range", &etag)],
        );
        assert_eq!(status, 200);
        assert_eq!(body.len(), 101);
    }

    #[test]
    fn faults_apply_and_expire() {
        let server = FaultServer::start().unwrap();
        server.serve_bytes("/b", data(1000));
        server.set_faults(Faults::none().status(503).times(2));
        assert_eq!(get(&server, "/b", &[]).0, 503);
        assert_eq!(get(&server, "/b", &[]).0, 503);
        assert_eq!(get(&server, "/b", &[]).0, 200);

        server.set_faults(Faults::none().drop_after(300).times(1));
        let (status, _, body) = get(&server, "/b", &[]);
        assert_eq!((status, body.len()), (200, 300));
        assert_eq!(get(&server, "/b", &[]).2.len(), 1000);

        server.set_faults(Faults::none().corrupt_at(500).ignore_range());
        let (status, head, body) = get(&server, "/b", &[("Range", "bytes=100-")]);
        assert_eq!(status, 200);
        assert!(!head.contains("Accept-Ranges"));
        assert_eq!(body[500], data(1000)[500] ^ 0xff);
        assert_eq!(body[499], data(1000)[499]);

        server.set_faults(Faults::none().announce_length(2000));
        let (_, head, body) = get(&server, "/b", &[]);
        assert!(head.contains("Content-Length: 2000"));
        assert_eq!(body.len(), 1000);

        server.set_faults(Faults::none().stall_after(10, Duration::from_millis(200)));
        let t = Instant::now();
        assert_eq!(get(&server, "/b", &[]).2, data(1000));
        assert!(t.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn serves_a_directory_and_refuses_escapes() {
        let dir = std::env::temp_dir().join(format!("fault-server-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x.airlock"), b"hello").unwrap();
        let server = FaultServer::start().unwrap();
        server.serve_dir("/bundles", &dir);
        let (status, head, body) = get(&server, "/bundles/sub/x.airlock", &[]);
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        assert!(head.contains("Last-Modified: "), "{head}");
        assert_eq!(get(&server, "/bundles/../etc/passwd", &[]).0, 404);
        assert_eq!(get(&server, "/bundles/sub", &[]).0, 404);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn drop_unblocks_a_stalled_response() {
        let server = FaultServer::start().unwrap();
        server.serve_bytes("/b", data(100));
        server.set_faults(Faults::none().stall_after(10, Duration::from_secs(600)));
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        drop(server);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn formats_http_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
