//! `airlock-ddi-load`: a loopback load generator for the fleet server's device API, for
//! `bench/fleet.sh`. Keeps CONNECTIONS HTTP/1.1 keep-alive connections busy for SECONDS, each
//! polling `{tenant}/controller/v1/load-NNNNN` as device NNNNN (token `token-NNNNN`) in turn,
//! and prints polls per second and latency percentiles. With `--path P` every request is a plain
//! `GET P` instead: the baseline of the same server answering without its database.
//!
//! With `--register TOKEN` it first registers devices 0..N through the management API
//! (`POST /api/v1/devices`, pre-authorised with their tokens, admin token TOKEN) and exits.
//!
//!   airlock-ddi-load http://127.0.0.1:8080 --devices 10000 --register "$(cat admin-token)"
//!   airlock-ddi-load http://127.0.0.1:8080 --devices 10000 --connections 32 --seconds 10

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Options {
    host: String,
    tenant: String,
    devices: usize,
    connections: usize,
    seconds: f64,
    path: Option<String>,
    register: Option<String>,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: airlock-ddi-load http://HOST:PORT [--tenant DEFAULT] [--devices N] [--connections C] [--seconds S] [--path /P] [--register ADMIN_TOKEN]"
    );
    ExitCode::from(2)
}

fn parse(args: Vec<String>) -> Option<Options> {
    let mut it = args.into_iter();
    let url = it.next()?;
    let host = url
        .strip_prefix("http://")?
        .trim_end_matches('/')
        .to_string();
    let mut o = Options {
        host,
        tenant: "DEFAULT".into(),
        devices: 1000,
        connections: 16,
        seconds: 10.0,
        path: None,
        register: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next()?;
        match flag.as_str() {
            "--tenant" => o.tenant = value,
            "--devices" => o.devices = value.parse().ok().filter(|n| *n > 0)?,
            "--connections" => o.connections = value.parse().ok().filter(|n| *n > 0)?,
            "--seconds" => o.seconds = value.parse().ok().filter(|s: &f64| *s > 0.0)?,
            "--path" => o.path = Some(value),
            "--register" => o.register = Some(value),
            _ => return None,
        }
    }
    Some(o)
}

/// What one connection did.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

fn main() -> ExitCode {
    let Some(o) = parse(std::env::args().skip(1).collect()) else {
        return usage();
    };
    if let Some(admin) = &o.register {
        return register(&o, admin);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..o.connections)
            .map(|worker| {
                let o = &o;
                s.spawn(move || run_connection(o, worker, deadline))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a load connection"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let ok = latencies.len();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    println!(
        "{ok} answers in {elapsed:.1} s = {:.0}/s over {} connections; latency p50 {:.2} ms, p99 {:.2} ms; {errors} errors",
        ok as f64 / elapsed,
        o.connections,
        pct(0.50),
        pct(0.99)
    );
    if let Some(e) = tallies.iter().find_map(|t| t.first_error.clone()) {
        eprintln!("first error: {e}");
    }
    if ok == 0 || errors > 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Registers devices 0..N, pre-authorised with their tokens, over one keep-alive connection.
fn register(o: &Options, admin: &str) -> ExitCode {
    let started = Instant::now();
    let result = (|| -> std::io::Result<()> {
        let stream = TcpStream::connect(&o.host)?;
        stream.set_nodelay(true)?;
        let (mut w, mut r) = (stream.try_clone()?, BufReader::new(stream));
        for device in 0..o.devices {
            let body =
                format!(r#"{{"controllerId":"load-{device:05}","token":"token-{device:05}"}}"#);
            write!(
                w,
                "POST /api/v1/devices HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                o.host,
                body.len()
            )?;
            let (status, answer) = read_response(&mut r)?;
            // 409: registered by an earlier run against the same data directory.
            if !(200..300).contains(&status) && status != 409 {
                return Err(std::io::Error::other(format!(
                    "registering load-{device:05}: status {status}: {answer}"
                )));
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            println!(
                "registered {} devices in {:.1} s",
                o.devices,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("airlock-ddi-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_connection(o: &Options, worker: usize, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut device = worker % o.devices;
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while Instant::now() < deadline {
        let request = match &o.path {
            Some(path) => format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", o.host),
            None => format!(
                "GET /{}/controller/v1/load-{device:05} HTTP/1.1\r\nHost: {}\r\nAuthorization: TargetToken token-{device:05}\r\nAccept: application/json\r\n\r\n",
                o.tenant, o.host
            ),
        };
        device = (device + o.connections) % o.devices;
        let t = Instant::now();
        let result = (|| -> std::io::Result<(u16, String)> {
            if conn.is_none() {
                let stream = TcpStream::connect(&o.host)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                conn = Some((stream.try_clone()?, BufReader::new(stream)));
            }
            let (w, r) = conn.as_mut().expect("connected above");
            w.write_all(request.as_bytes())?;
            read_response(r)
        })();
        match result {
            Ok((200, _)) => tally.latencies_us.push(t.elapsed().as_micros() as u64),
            Ok((status, body)) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert(format!("status {status}: {body}"));
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e.to_string());
                conn = None;
            }
        }
    }
    tally
}

/// Reads one response (Content-Length or chunked body): its status and body.
fn read_response(r: &mut impl BufRead) -> std::io::Result<(u16, String)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("the server closed the connection"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP status line"))?;
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
