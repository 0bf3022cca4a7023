//! The host side of the `airlock:plugin` interfaces: log, config, progress, payload (probes are
//! in `probes.rs`). Each runs on the calling thread, inside the plugin's call, so each bounds
//! its own work.

use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;

use super::bindings::v0_1::{config, log, payload, probes as wit_probes, progress, types};
use super::probes;
use super::sandbox::{HostState, LINE_CAP, LOG_CAP, LogFlood, sanitize};

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_used = self.log_used.saturating_add(message.len());
        if self.log_used > LOG_CAP {
            return Err(wasmtime::Error::new(LogFlood(LOG_CAP)));
        }
        let name = self.sandbox.name.as_str();
        for line in message.lines() {
            let line = sanitize(line, LINE_CAP);
            match level {
                log::Level::Trace => {
                    tracing::trace!(target: "airlock::plugin", plugin = name, "{line}")
                }
                log::Level::Debug => {
                    tracing::debug!(target: "airlock::plugin", plugin = name, "{line}")
                }
                log::Level::Info => {
                    tracing::info!(target: "airlock::plugin", plugin = name, "{line}")
                }
                log::Level::Warn => {
                    tracing::warn!(target: "airlock::plugin", plugin = name, "{line}")
                }
                log::Level::Error => {
                    tracing::error!(target: "airlock::plugin", plugin = name, "{line}")
                }
            }
        }
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .sandbox
            .config
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn entries(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.sandbox.config.clone())
    }
}

impl progress::Host for HostState {
    fn report(&mut self, done: u64, total: u64) -> wasmtime::Result<()> {
        tracing::trace!(target: "airlock::plugin", plugin = %self.sandbox.name, done, total, "progress");
        if let Some(sink) = &self.progress {
            sink(&self.sandbox.name, done, total);
        }
        Ok(())
    }
}

impl wit_probes::Host for HostState {
    fn http_get(
        &mut self,
        url: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<wit_probes::HttpResponse, String>> {
        let budget = probes::budget(timeout_ms, self.remaining());
        Ok(probes::http_get(&self.sandbox, &url, budget)
            .map(|(status, body)| wit_probes::HttpResponse { status, body }))
    }

    fn unit_state(&mut self, unit: String) -> wasmtime::Result<Result<String, String>> {
        Ok(probes::unit_state(&self.sandbox, &unit, self.remaining()))
    }

    fn run(
        &mut self,
        argv: Vec<String>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<wit_probes::CommandOutput, String>> {
        let budget = probes::budget(timeout_ms, self.remaining());
        Ok(
            probes::run(&self.sandbox, &argv, budget).map(|o| wit_probes::CommandOutput {
                status: o.status,
                stdout: o.stdout,
                stderr: o.stderr,
            }),
        )
    }
}

/// Bytes handed from the reader thread to the plugin, at most [`PAYLOAD_QUEUE`] chunks of
/// [`PAYLOAD_CHUNK`] bytes in flight.
pub(super) const PAYLOAD_CHUNK: usize = 64 << 10;
pub(super) const PAYLOAD_QUEUE: usize = 4;

pub(super) enum Chunk {
    Data(Vec<u8>),
    End,
    Failed(String),
}

/// Reads `reader` to its end into `tx`; stops early when the plugin's side is gone.
pub(super) fn pump(reader: &mut (dyn Read + Send), tx: SyncSender<Chunk>) {
    loop {
        let mut buf = vec![0u8; PAYLOAD_CHUNK];
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Chunk::Failed(e.to_string()));
                return;
            }
        };
        if n == 0 {
            let _ = tx.send(Chunk::End);
            return;
        }
        buf.truncate(n);
        if tx.send(Chunk::Data(buf)).is_err() {
            return;
        }
    }
}

/// The plugin's end of the payload stream.
pub(super) struct PayloadFeed {
    rx: Receiver<Chunk>,
    buf: Vec<u8>,
    pos: usize,
    /// The plugin was told the payload is complete.
    pub ended: bool,
    /// Reading the payload failed (a bad chunk, a dropped connection); the plugin was told.
    pub error: Option<String>,
    /// Bytes handed to the plugin.
    pub delivered: u64,
}

impl PayloadFeed {
    pub fn new(rx: Receiver<Chunk>) -> Self {
        PayloadFeed {
            rx,
            buf: Vec::new(),
            pos: 0,
            ended: false,
            error: None,
            delivered: 0,
        }
    }

    fn next(&mut self, max: usize) -> Result<Vec<u8>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if max == 0 {
            return Err("payload.read: ask for at least one byte".into());
        }
        while self.pos == self.buf.len() {
            if self.ended {
                return Ok(Vec::new());
            }
            match self.rx.recv() {
                Ok(Chunk::Data(data)) => {
                    self.buf = data;
                    self.pos = 0;
                }
                Ok(Chunk::End) => self.ended = true,
                Ok(Chunk::Failed(e)) => {
                    self.error = Some(e.clone());
                    return Err(e);
                }
                Err(_) => {
                    let e = "the payload stream stopped unexpectedly".to_string();
                    self.error = Some(e.clone());
                    return Err(e);
                }
            }
        }
        let n = max.min(self.buf.len() - self.pos);
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        self.delivered += n as u64;
        Ok(out)
    }

    /// After the plugin returned: whether the whole payload was consumed. Waits for the reader
    /// when the plugin stopped exactly at the end without asking for more.
    pub fn finish(mut self) -> Result<(), String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.pos < self.buf.len() {
            return Err(format!(
                "the plugin returned after reading {} bytes, before the end of the payload",
                self.delivered
            ));
        }
        if self.ended {
            return Ok(());
        }
        match self.rx.recv() {
            Ok(Chunk::End) => Ok(()),
            Ok(Chunk::Data(_)) => Err(format!(
                "the plugin returned after reading {} bytes, before the end of the payload",
                self.delivered
            )),
            Ok(Chunk::Failed(e)) => Err(e),
            Err(_) => {
                self.ended = true;
                Err("the payload stream stopped unexpectedly".into())
            }
        }
    }
}

impl payload::Host for HostState {
    fn read(&mut self, max: u32) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let Some(feed) = self.payload.as_mut() else {
            return Ok(Err("this call has no payload".into()));
        };
        let result = feed.next(max as usize);
        if matches!(&result, Ok(data) if !data.is_empty()) {
            // An installer's timeout bounds how long it may go without reading, not the
            // whole installation.
            self.deadline = Instant::now() + self.sandbox.timeout;
        }
        Ok(result)
    }
}
