//! The one place the helpers reach the host: the engine's imports inside a component, the
//! [`testing`](crate::testing) stand-in on any other target.

#[cfg(target_arch = "wasm32")]
pub(crate) use self::component::*;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::sys::*;

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::bindings::airlock::plugin::{config, log, payload, probes, progress};
    use crate::log::Level;
    use crate::probes::{CommandOutput, HttpResponse};

    pub(crate) fn log(level: Level, message: &str) {
        log::log(level, message);
    }

    pub(crate) fn config_get(key: &str) -> Option<String> {
        config::get(key)
    }

    pub(crate) fn config_entries() -> Vec<(String, String)> {
        config::entries()
    }

    pub(crate) fn progress(done: u64, total: u64) {
        progress::report(done, total);
    }

    pub(crate) fn http_get(url: &str, timeout_ms: u32) -> Result<HttpResponse, String> {
        probes::http_get(url, timeout_ms)
    }

    pub(crate) fn unit_state(unit: &str) -> Result<String, String> {
        probes::unit_state(unit)
    }

    pub(crate) fn run(argv: &[String], timeout_ms: u32) -> Result<CommandOutput, String> {
        probes::run(argv, timeout_ms)
    }

    pub(crate) fn payload_read(max: u32) -> Result<Vec<u8>, String> {
        payload::read(max)
    }
}
