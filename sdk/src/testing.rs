//! A stand-in for the engine, for unit tests of a plugin on the host.
//!
//! Off `wasm32` the SDK's helpers talk to this module instead of the engine. A test sets the
//! config, the probes' answers and the payload, calls the plugin's trait impl directly, and
//! reads back what it logged and reported. State is per thread, as cargo runs tests on
//! threads of their own; start each test with [`reset`].
//!
//! ```
//! use airlock_sdk::{config, log, testing};
//!
//! testing::reset();
//! testing::set_config(&[("units", "a.service,b.service")]);
//! testing::on_unit_state(|unit| Ok(if unit == "a.service" { "active" } else { "failed" }.into()));
//!
//! let states: Vec<String> = config::list("units")
//!     .iter()
//!     .map(|unit| airlock_sdk::probes::unit_state(unit).unwrap())
//!     .collect();
//! log::info!("states: {states:?}");
//!
//! assert_eq!(states, ["active", "failed"]);
//! assert_eq!(testing::logs()[0].1, r#"states: ["active", "failed"]"#);
//! ```
//!
//! A probe without an answer set up is refused, as the engine refuses what the operator did
//! not allow.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use crate::log::Level;
use crate::probes::{CommandOutput, HttpResponse};

type HttpHandler = Rc<dyn Fn(&str, Duration) -> Result<HttpResponse, String>>;
type UnitHandler = Rc<dyn Fn(&str) -> Result<String, String>>;
type RunHandler = Rc<dyn Fn(&[String], Duration) -> Result<CommandOutput, String>>;

#[derive(Default)]
struct State {
    config: Vec<(String, String)>,
    http: Option<HttpHandler>,
    units: Option<UnitHandler>,
    commands: Option<RunHandler>,
    payload: Vec<u8>,
    payload_offset: usize,
    payload_error: Option<String>,
    logs: Vec<(Level, String)>,
    progress: Vec<(u64, u64)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

/// Forgets everything this thread set up and recorded.
pub fn reset() {
    with(|state| *state = State::default());
}

/// Replaces the plugin's config table.
pub fn set_config(entries: &[(&str, &str)]) {
    let mut config: Vec<(String, String)> = entries
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    config.sort();
    with(|state| state.config = config);
}

/// Answers `probes::http_get` with `handler(url, timeout)`.
pub fn on_http_get(handler: impl Fn(&str, Duration) -> Result<HttpResponse, String> + 'static) {
    with(|state| state.http = Some(Rc::new(handler)));
}

/// Answers `probes::unit_state` with `handler(unit)`.
pub fn on_unit_state(handler: impl Fn(&str) -> Result<String, String> + 'static) {
    with(|state| state.units = Some(Rc::new(handler)));
}

/// Answers `probes::run` with `handler(argv, timeout)`.
pub fn on_run(handler: impl Fn(&[String], Duration) -> Result<CommandOutput, String> + 'static) {
    with(|state| state.commands = Some(Rc::new(handler)));
}

/// Makes `bytes` the payload, read from its start.
pub fn set_payload(bytes: Vec<u8>) {
    with(|state| {
        state.payload = bytes;
        state.payload_offset = 0;
        state.payload_error = None;
    });
}

/// Makes the next payload read fail with `message`.
pub fn fail_payload(message: &str) {
    with(|state| state.payload_error = Some(message.to_owned()));
}

/// Every line logged so far.
pub fn logs() -> Vec<(Level, String)> {
    with(|state| state.logs.clone())
}

/// Every progress report so far, as `(done, total)`.
pub fn progress() -> Vec<(u64, u64)> {
    with(|state| state.progress.clone())
}

fn refused(probe: &str, what: &str, setup: &str) -> String {
    format!("{probe} {what:?} refused: no answer set up (call airlock_sdk::testing::{setup})")
}

/// What the helpers call off `wasm32`; mirrors `sys::component`.
pub(crate) mod sys {
    use super::*;

    pub(crate) fn log(level: Level, message: &str) {
        eprintln!("[{level:?}] {message}");
        with(|state| state.logs.push((level, message.to_owned())));
    }

    pub(crate) fn config_get(key: &str) -> Option<String> {
        with(|state| {
            state
                .config
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        })
    }

    pub(crate) fn config_entries() -> Vec<(String, String)> {
        with(|state| state.config.clone())
    }

    pub(crate) fn progress(done: u64, total: u64) {
        with(|state| state.progress.push((done, total)));
    }

    pub(crate) fn http_get(url: &str, timeout_ms: u32) -> Result<HttpResponse, String> {
        let handler = with(|state| state.http.clone())
            .ok_or_else(|| refused("http-get", url, "on_http_get"))?;
        handler(url, Duration::from_millis(timeout_ms.into()))
    }

    pub(crate) fn unit_state(unit: &str) -> Result<String, String> {
        let handler = with(|state| state.units.clone())
            .ok_or_else(|| refused("unit-state", unit, "on_unit_state"))?;
        handler(unit)
    }

    pub(crate) fn run(argv: &[String], timeout_ms: u32) -> Result<CommandOutput, String> {
        let handler = with(|state| state.commands.clone())
            .ok_or_else(|| refused("run", &argv.join(" "), "on_run"))?;
        handler(argv, Duration::from_millis(timeout_ms.into()))
    }

    pub(crate) fn payload_read(max: u32) -> Result<Vec<u8>, String> {
        with(|state| {
            if let Some(message) = state.payload_error.take() {
                return Err(message);
            }
            let start = state.payload_offset;
            let end = state.payload.len().min(start + max as usize);
            state.payload_offset = end;
            Ok(state.payload[start..end].to_vec())
        })
    }
}
