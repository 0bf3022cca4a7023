//! One call's sandbox: a fresh `Store` with WASI that has no ambient authority, the memory
//! limiter, the wall-clock deadline, captured stdout/stderr, and the translation of whatever
//! stopped the call into a [`PluginError`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::engine::TICK;
use super::host::PayloadFeed;
use super::probes;
use super::{PluginError, ProgressSink};
use crate::config::{ByteSize, DirGrant, PluginConfig};

/// stdout and stderr are each captured up to this much per call; more is a flood.
pub(super) const OUTPUT_CAP: usize = 64 << 10;
/// The `log` interface may write this much per call; more is a flood.
pub(super) const LOG_CAP: usize = 64 << 10;
/// A logged line (from `log` or captured output) is cut here.
pub(super) const LINE_CAP: usize = 1024;
/// The smallest `memory` cap we accept: below it not even an empty Rust plugin instantiates.
const MIN_MEMORY: ByteSize = ByteSize(1 << 20);
/// Tables, instances and memories per store: generous for any real component, small enough
/// that a hostile one cannot exhaust the host with them.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 1000;
const MAX_TABLES: usize = 1000;
const MAX_MEMORIES: usize = 100;

/// What a plugin may do, fixed when it is loaded.
#[derive(Debug)]
pub(super) struct Sandbox {
    pub name: String,
    pub timeout: Duration,
    pub memory: ByteSize,
    /// Allowed URLs, normalised.
    pub http: Vec<String>,
    pub units: Vec<String>,
    pub commands: Vec<Vec<String>>,
    pub dirs: Vec<DirGrant>,
    pub config: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new(name: &str, config: &PluginConfig) -> Result<Self, PluginError> {
        let bad = |reason: String| PluginError::Config {
            name: name.to_string(),
            reason,
        };
        if config.timeout.is_zero() {
            return Err(bad("timeout must be more than zero".into()));
        }
        if config.memory < MIN_MEMORY {
            return Err(bad(format!(
                "memory = {} is too small; give at least {MIN_MEMORY}",
                config.memory
            )));
        }
        if config.memory.bytes() > 4 << 30 {
            return Err(bad(format!(
                "memory = {} is more than a 32-bit plugin can address (4 GiB)",
                config.memory
            )));
        }
        let http = config
            .http
            .iter()
            .map(|u| probes::normalize_url(u).map_err(|e| bad(format!("http: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(empty) = config.commands.iter().find(|argv| argv.is_empty()) {
            return Err(bad(format!(
                "commands: an empty argv ({empty:?}) cannot run"
            )));
        }
        for dir in &config.dirs {
            if !dir.host.is_dir() {
                return Err(bad(format!(
                    "dirs: {} is not a directory; create it or remove the grant",
                    dir.host.display()
                )));
            }
            if dir.guest.is_empty() {
                return Err(bad(format!(
                    "dirs: give {} a guest path such as \"/data\"",
                    dir.host.display()
                )));
            }
        }
        Ok(Sandbox {
            name: name.to_string(),
            timeout: config.timeout,
            memory: config.memory,
            http,
            units: config.units.clone(),
            commands: config.commands.clone(),
            dirs: config.dirs.clone(),
            config: config.config_entries(),
        })
    }
}

/// The data of a call's `Store`.
pub(super) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub sandbox: Arc<Sandbox>,
    /// When the call times out. Installer calls push it back on every payload read.
    pub deadline: Instant,
    /// Bytes written through the `log` interface so far.
    pub log_used: usize,
    pub payload: Option<PayloadFeed>,
    pub progress: Option<ProgressSink>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// What is left of the call's time; host functions bound their own work by it.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Caps the sum of all linear memories of the store (a component has several: the plugin's,
/// the WASI adapter's, …), and records that it refused something.
pub(super) struct Limiter {
    cap: usize,
    used: usize,
    pub refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        match self.used.checked_add(grow) {
            Some(total) if total <= self.cap => {
                self.used = total;
                Ok(true)
            }
            _ => {
                self.refused = true;
                Ok(false)
            }
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// One call in progress: its store and its captured output.
pub(super) struct Call {
    pub store: Store<HostState>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Call {
    pub fn new(
        engine: &wasmtime::Engine,
        sandbox: Arc<Sandbox>,
        payload: Option<PayloadFeed>,
        progress: Option<ProgressSink>,
    ) -> Result<Self, PluginError> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        let mut wasi = WasiCtxBuilder::new();
        // No environment, no arguments, stdin empty (the defaults), and no network at all:
        // the sockets interfaces are linked (std links them) but refuse every use.
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .allow_blocking_current_thread(true);
        for dir in &sandbox.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| PluginError::Config {
                    name: sandbox.name.clone(),
                    reason: format!("dirs: cannot open {}: {e}", dir.host.display()),
                })?;
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                cap: usize::try_from(sandbox.memory.bytes()).unwrap_or(usize::MAX),
                used: 0,
                refused: false,
            },
            deadline: Instant::now() + sandbox.timeout,
            sandbox,
            log_used: 0,
            payload,
            progress,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        // The epoch only says "look at the clock now"; the deadline itself is an Instant, so
        // that payload reads can push it back and ticker jitter does not shorten a call.
        store.set_epoch_deadline(ticks(store.data().remaining()));
        store.epoch_deadline_callback(|ctx| {
            let left = ctx.data().remaining();
            if left.is_zero() {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(ticks(left)))
            }
        });
        Ok(Call {
            store,
            stdout,
            stderr,
        })
    }

    /// Logs what the plugin printed and turns a failed call into the error that says why.
    pub fn finish<R>(self, result: wasmtime::Result<R>) -> Result<R, PluginError> {
        let Call {
            store,
            stdout,
            stderr,
        } = self;
        let state = store.into_data();
        let name = state.sandbox.name.as_str();
        let out = stdout.contents();
        let err = stderr.contents();
        log_output(name, "stdout", &out);
        log_output(name, "stderr", &err);
        let e = match result {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        tracing::debug!(target: "airlock::plugin", plugin = name, "call failed: {e:?}");
        let name = name.to_string();
        if let Some(flood) = e.downcast_ref::<LogFlood>() {
            return Err(PluginError::OutputFlood {
                name,
                what: "log",
                cap: ByteSize(flood.0 as u64),
            });
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                return Err(PluginError::Timeout {
                    name,
                    timeout: state.sandbox.timeout,
                });
            }
            Some(Trap::StackOverflow) => return Err(PluginError::StackOverflow { name }),
            _ => {}
        }
        if state.limiter.refused {
            return Err(PluginError::MemoryCap {
                name,
                cap: state.sandbox.memory,
            });
        }
        for (what, buf) in [("stdout", &out), ("stderr", &err)] {
            if buf.len() >= OUTPUT_CAP {
                return Err(PluginError::OutputFlood {
                    name,
                    what,
                    cap: ByteSize(OUTPUT_CAP as u64),
                });
            }
        }
        let mut message = match e.downcast_ref::<Trap>() {
            // Rust and C keep their stack in linear memory: running off its end looks like
            // any other stray access.
            Some(Trap::MemoryOutOfBounds) => {
                "out of bounds memory access (a memory bug, or its stack overflowed)".to_string()
            }
            Some(trap) => trap.to_string(),
            None => format!("{e:#}"),
        };
        // A Rust plugin prints its panic message to stderr before it aborts.
        if let Some(last) = last_lines(&err, 3) {
            message.push_str(" (stderr: ");
            message.push_str(&last);
            message.push(')');
        }
        Err(PluginError::Trap { name, message })
    }
}

/// The error a host function returns to stop a plugin that logged too much.
#[derive(Debug, thiserror::Error)]
#[error("the plugin logged more than {0} bytes in one call")]
pub(super) struct LogFlood(pub usize);

/// Epoch ticks covering `d`, at least one.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos().div_ceil(TICK.as_nanos()) as u64).max(1)
}

fn log_output(name: &str, stream: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        let line = sanitize(line, LINE_CAP);
        if stream == "stderr" {
            tracing::warn!(target: "airlock::plugin", plugin = name, "{stream}: {line}");
        } else {
            tracing::info!(target: "airlock::plugin", plugin = name, "{stream}: {line}");
        }
    }
}

/// The last `n` non-empty lines of `bytes`, sanitised and joined with " | ".
fn last_lines(bytes: &[u8], n: usize) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let tail = &lines[lines.len().saturating_sub(n)..];
    Some(
        tail.iter()
            .map(|l| sanitize(l, 300))
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

/// One line fit for a log: control and bidi-override characters replaced, cut at `max` bytes.
pub(super) fn sanitize(line: &str, max: usize) -> String {
    let mut out = String::with_capacity(line.len().min(max + 3));
    for c in line.chars() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        out.push(match c {
            '\t' => ' ',
            c if c.is_control() || bidi => '\u{FFFD}',
            c => c,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_lines() {
        assert_eq!(sanitize("a\x1b[31mb\tc", 100), "a\u{FFFD}[31mb c");
        assert_eq!(sanitize("abc\u{202E}def", 100), "abc\u{FFFD}def");
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("ééé", 3), "é…");
    }

    #[test]
    fn ticks_round_up() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_millis(10)), 1);
        assert_eq!(ticks(Duration::from_millis(11)), 2);
        assert_eq!(ticks(Duration::from_secs(10)), 1000);
    }

    #[test]
    fn limiter_caps_the_sum_of_memories() {
        let mut l = Limiter {
            cap: 100,
            used: 0,
            refused: false,
        };
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert!(!l.memory_growing(30, 50, None).unwrap());
        assert!(l.refused);
        assert!(l.memory_growing(60, 70, None).unwrap());
    }
}
