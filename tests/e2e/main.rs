//! End-to-end tests: the real `airlock` binary against simulated devices in temporary folders,
//! bundles built and signed by the binary itself, and a real HTTP server on loopback.

mod support;

mod bad_input;
mod bundle_cli;
mod delta;
mod device_build;
mod docs;
mod fleet;
mod fleet_swupdate;
mod hostile_stages;
mod http;
mod install_flow;
mod mutation;
mod plugin_langs;
mod plugins;
mod power_cut;
