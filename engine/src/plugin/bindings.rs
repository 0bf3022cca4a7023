//! Rust bindings of the WIT worlds, one module per released version of `airlock:plugin`.
//!
//! The installer world imports every host interface, so its bindings own the shared types and
//! host traits; the hook and check worlds reuse them (`with`), and the host implements each
//! interface once. A host function may end the call (`trappable`): that is how the log cap and
//! the host-side limits stop a plugin.

/// `airlock:plugin@0.1.0` (`wit/v0.1`).
pub(super) mod v0_1 {
    pub mod installer {
        wasmtime::component::bindgen!({
            world: "installer",
            path: "../wit/v0.1",
            imports: { default: trappable },
        });
    }

    pub mod hook {
        wasmtime::component::bindgen!({
            world: "hook",
            path: "../wit/v0.1",
            imports: { default: trappable },
            with: {
                "airlock:plugin/types": super::installer::airlock::plugin::types,
                "airlock:plugin/log": super::installer::airlock::plugin::log,
                "airlock:plugin/config": super::installer::airlock::plugin::config,
                "airlock:plugin/progress": super::installer::airlock::plugin::progress,
                "airlock:plugin/probes": super::installer::airlock::plugin::probes,
            },
        });
    }

    pub mod check {
        wasmtime::component::bindgen!({
            world: "check",
            path: "../wit/v0.1",
            imports: { default: trappable },
            with: {
                "airlock:plugin/types": super::installer::airlock::plugin::types,
                "airlock:plugin/log": super::installer::airlock::plugin::log,
                "airlock:plugin/config": super::installer::airlock::plugin::config,
                "airlock:plugin/probes": super::installer::airlock::plugin::probes,
            },
        });
    }

    pub use installer::airlock::plugin::{config, log, payload, probes, progress, types};
}
