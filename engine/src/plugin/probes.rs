//! `airlock:plugin/probes`: the only ways a plugin sees outside its sandbox, each allow-listed in
//! `[plugins.NAME]` and each bounded by the time the call has left.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Url;

use super::sandbox::Sandbox;

/// Response bodies and command outputs are cut here.
pub(super) const BODY_CAP: usize = 64 << 10;
/// Redirects followed by `http-get`, each checked against the allow-list.
const MAX_REDIRECTS: usize = 5;
/// `unit-state` never waits longer than this for systemctl.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(5);

/// The time a probe may take: what the plugin asked for (0: as long as it has), capped by what
/// is left of the call.
pub(super) fn budget(timeout_ms: u32, remaining: Duration) -> Duration {
    if timeout_ms == 0 {
        remaining
    } else {
        remaining.min(Duration::from_millis(u64::from(timeout_ms)))
    }
}

/// The canonical spelling of an allowed URL: lower-case scheme and host, no default port, a
/// path of at least `/`, no fragment. Only http and https, without credentials.
pub(super) fn normalize_url(url: &str) -> Result<String, String> {
    let mut u = Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("{url:?}: only http and https URLs can be allowed"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{url:?}: credentials in URLs are not allowed"));
    }
    u.set_fragment(None);
    Ok(u.to_string())
}

fn allowed_list(sandbox: &Sandbox) -> String {
    if sandbox.http.is_empty() {
        "none is allowed".into()
    } else {
        format!("allowed: {}", sandbox.http.join(", "))
    }
}

/// GET `url` if it, and every hop it redirects to, is allowed; each hop connects to the address
/// we resolved ourselves, and the address actually connected to is checked against it.
pub(super) fn http_get(
    sandbox: &Sandbox,
    url: &str,
    budget: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let name = &sandbox.name;
    let deadline = Instant::now() + budget;
    let mut current = normalize_url(url)?;
    if !sandbox.http.contains(&current) {
        return Err(format!(
            "{current} is not in [plugins.{name}] http ({})",
            allowed_list(sandbox)
        ));
    }
    for hop in 0..=MAX_REDIRECTS {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("GET {current}: out of time"));
        }
        let u = Url::parse(&current).map_err(|e| e.to_string())?;
        let host = u.host_str().unwrap_or_default().to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let addr = resolve(&host, port, left).map_err(|e| format!("GET {current}: {e}"))?;
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(left)
            .connect_timeout(left)
            .resolve(&host, addr)
            .build()
            .map_err(|e| format!("GET {current}: {e}"))?;
        let resp = client
            .get(u.clone())
            .send()
            .map_err(|e| format!("GET {current}: {e}"))?;
        if let Some(remote) = resp.remote_addr()
            && remote.ip() != addr.ip()
        {
            return Err(format!(
                "GET {current}: connected to {remote}, not to {addr} that {host} resolved to"
            ));
        }
        let status = resp.status();
        if status.is_redirection()
            && let Some(location) = resp.headers().get(reqwest::header::LOCATION)
        {
            let location = location
                .to_str()
                .map_err(|_| format!("GET {current}: a redirect with an unreadable Location"))?;
            let next = u
                .join(location)
                .map_err(|e| format!("GET {current}: bad redirect to {location:?}: {e}"))
                .and_then(|n| normalize_url(n.as_str()))?;
            if hop == MAX_REDIRECTS {
                return Err(format!("GET {url}: more than {MAX_REDIRECTS} redirects"));
            }
            if !sandbox.http.contains(&next) {
                return Err(format!(
                    "GET {current} redirected to {next}, which is not in [plugins.{name}] http \
                     ({})",
                    allowed_list(sandbox)
                ));
            }
            current = next;
            continue;
        }
        let mut body = Vec::new();
        resp.take(BODY_CAP as u64)
            .read_to_end(&mut body)
            .map_err(|e| format!("GET {current}: reading the body: {e}"))?;
        return Ok((status.as_u16(), body));
    }
    Err(format!("GET {url}: more than {MAX_REDIRECTS} redirects"))
}

/// The first address `host` resolves to, within `timeout` (getaddrinfo itself has none, so
/// it runs on a thread we stop waiting for).
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let h = host.to_string();
    std::thread::Builder::new()
        .name("airlock-resolve".into())
        .spawn(move || {
            let _ = tx.send((h.as_str(), port).to_socket_addrs().map(|mut a| a.next()));
        })
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(addr))) => Ok(addr),
        Ok(Ok(None)) => Err(format!("{host} has no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!("resolving {host} timed out")),
    }
}

/// `systemctl show -p ActiveState --value UNIT` for an allowed unit.
pub(super) fn unit_state(
    sandbox: &Sandbox,
    unit: &str,
    remaining: Duration,
) -> Result<String, String> {
    if !sandbox.units.iter().any(|u| u == unit) {
        let allowed = if sandbox.units.is_empty() {
            "none is allowed".to_string()
        } else {
            format!("allowed: {}", sandbox.units.join(", "))
        };
        return Err(format!(
            "unit {unit:?} is not in [plugins.{}] units ({allowed})",
            sandbox.name
        ));
    }
    let argv: Vec<String> = [
        "systemctl",
        "show",
        "-p",
        "ActiveState",
        "--value",
        "--",
        unit,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_process(&argv, remaining.min(SYSTEMCTL_TIMEOUT)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "systemctl is not available on this device".to_string()
        } else {
            format!("cannot run systemctl: {e}")
        }
    })?;
    if out.status != 0 {
        return Err(format!(
            "systemctl show {unit} failed (status {}): {}",
            out.status,
            out.stderr.trim()
        ));
    }
    Ok(out.stdout.trim().to_string())
}

/// Runs `argv` if it is exactly one of the plugin's `commands`.
pub(super) fn run(
    sandbox: &Sandbox,
    argv: &[String],
    budget: Duration,
) -> Result<ProcessOutput, String> {
    if !sandbox.commands.iter().any(|c| c == argv) {
        return Err(format!(
            "command {argv:?} is not in [plugins.{}] commands (the argv must match exactly)",
            sandbox.name
        ));
    }
    if budget.is_zero() {
        return Err(format!("{argv:?}: out of time"));
    }
    run_process(argv, budget).map_err(|e| format!("cannot run {argv:?}: {e}"))
}

#[derive(Debug)]
pub(super) struct ProcessOutput {
    /// The exit code; -1 when killed by a signal or timed out.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a process with an empty environment and no stdin, in its own process group, killing
/// the group once `timeout` passes. Outputs are cut at [`BODY_CAP`] (the rest is drained).
fn run_process(argv: &[String], timeout: Duration) -> std::io::Result<ProcessOutput> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let out = capture(child.stdout.take());
    let err = capture(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            if let Ok(pgid) = i32::try_from(child.id()) {
                // Safety: kill(2) with a negative pid signals that process group, the one
                // `process_group(0)` created for this child; no memory is involved.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A grandchild that left the group may hold the pipes open; wait only a moment for EOF.
    let grace = Instant::now() + Duration::from_millis(100);
    Ok(ProcessOutput {
        status,
        stdout: out.take(grace),
        stderr: err.take(grace),
    })
}

struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Captured {
    fn take(self, until: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn capture(pipe: Option<impl Read + Send + 'static>) -> Captured {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (tx, done) = std::sync::mpsc::channel();
    if let Some(mut pipe) = pipe {
        let b = buf.clone();
        let _ = std::thread::Builder::new()
            .name("airlock-probe-io".into())
            .spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
                            let room = BODY_CAP.saturating_sub(b.len());
                            b.extend_from_slice(&chunk[..n.min(room)]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = tx.send(());
            });
    } else {
        let _ = tx.send(());
    }
    Captured { buf, done }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginConfig;

    fn sandbox(config: PluginConfig) -> Sandbox {
        Sandbox::new("p", &config).unwrap()
    }

    #[test]
    fn normalizes_urls() {
        assert_eq!(
            normalize_url("HTTP://Example.COM:80").unwrap(),
            "http://example.com/"
        );
        assert_eq!(
            normalize_url("https://h:443/a/../b?x=1#frag").unwrap(),
            "https://h/b?x=1"
        );
        assert!(normalize_url("ftp://h/").is_err());
        assert!(normalize_url("http://u:p@h/").is_err());
        assert!(normalize_url("not a url").is_err());
    }

    #[test]
    fn refuses_what_is_not_allowed() {
        let mut c = PluginConfig::new("/p.wasm");
        c.http = vec!["http://127.0.0.1:9/health".into()];
        c.units = vec!["app.service".into()];
        c.commands = vec![vec!["/bin/echo".into(), "hi".into()]];
        let s = sandbox(c);
        let e = http_get(&s, "http://127.0.0.1:9/other", Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("not in [plugins.p] http"), "{e}");
        let e = unit_state(&s, "sshd.service", Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("not in [plugins.p] units"), "{e}");
        let e = run(&s, &["/bin/echo".into()], Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("not in [plugins.p] commands"), "{e}");
    }

    #[test]
    fn runs_allowed_commands_with_limits() {
        let mut c = PluginConfig::new("/p.wasm");
        c.commands = vec![
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo $HOME; echo err >&2; exit 3".into(),
            ],
            vec!["/bin/sh".into(), "-c".into(), "sleep 5".into()],
            vec!["/bin/sh".into(), "-c".into(), "yes".into()],
        ];
        let s = sandbox(c.clone());
        let out = run(&s, &c.commands[0], Duration::from_secs(5)).unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "\n", "the environment must be empty");
        assert_eq!(out.stderr, "err\n");
        let started = Instant::now();
        let out = run(&s, &c.commands[1], Duration::from_millis(200)).unwrap();
        assert_eq!(out.status, -1);
        assert!(started.elapsed() < Duration::from_secs(2));
        let out = run(&s, &c.commands[2], Duration::from_millis(300)).unwrap();
        assert_eq!(out.stdout.len(), BODY_CAP);
    }

    #[test]
    fn follows_only_allowed_redirects() {
        use std::io::{BufRead, BufReader, Write};
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut conn, _) = listener.accept().unwrap();
                let mut line = String::new();
                BufReader::new(conn.try_clone().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                let resp = if line.starts_with("GET /start") {
                    "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".to_string()
                } else if line.starts_with("GET /ok") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()
                } else {
                    "HTTP/1.1 302 Found\r\nLocation: /secret\r\nContent-Length: 0\r\n\r\n"
                        .to_string()
                };
                conn.write_all(resp.as_bytes()).unwrap();
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let mut c = PluginConfig::new("/p.wasm");
        c.http = vec![
            format!("{base}/start"),
            format!("{base}/ok"),
            format!("{base}/evil"),
        ];
        let s = sandbox(c);
        let (status, body) =
            http_get(&s, &format!("{base}/start"), Duration::from_secs(5)).unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
        let e = http_get(&s, &format!("{base}/evil"), Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("redirected to") && e.contains("/secret"), "{e}");
        server.join().unwrap();
    }
}
