//! Argument parsing, progress bars and output. The only place that prints.

mod bundle;
mod daemon;
mod device;
mod key;
mod plugin;
mod progress;
mod scaffold;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What `airlock --version` prints: the device build says it is one.
const VERSION: &str = if cfg!(feature = "compiler") {
    env!("CARGO_PKG_VERSION")
} else {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (device build: no Wasm compiler, runs precompiled plugins)"
    )
};

#[derive(Parser)]
#[command(
    name = "airlock",
    version = VERSION,
    about = "Airlock: over-the-air A/B updates for embedded Linux, extended by sandboxed WebAssembly plugins",
    propagate_version = true
)]
struct Cli {
    /// More log output (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The device configuration (give it before the command: `airlock --config FILE install …`).
    #[arg(long, env = "AIRLOCK_CONFIG", default_value = airlock::config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of its largest variant (`plugin run`'s options) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create signing keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Build, sign, inspect, verify and unpack update bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Install a bundle (a file path or an http(s) URL) into the inactive slots.
    Install {
        source: String,
        #[arg(long)]
        json: bool,
    },
    /// Run at every boot (airlock-boot.service): finish whatever is pending.
    Boot {
        #[arg(long)]
        json: bool,
        /// When a failed trial needs a reboot back into the old slot, reboot now ([device]
        /// reboot_command).
        #[arg(long)]
        reboot: bool,
    },
    /// Show the booted slot, what each slot holds, the pending update and the last result.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make the update on trial permanent now.
    Commit,
    /// Abandon the pending update; the old slot stays or becomes active again.
    Rollback,
    /// Run, inspect and precompile plugins on a workstation.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run the reboot-enter hooks, then reboot into the pending update ([device] reboot_command).
    Reboot,
    /// A simulated device in a folder.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Poll the fleet server of [fleet] (hawkBit DDI) and install, report and reboot as it asks.
    Daemon {
        /// One cycle (report, poll, act) and exit, for cron and tests.
        #[arg(long)]
        once: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // The daemon runs under systemd, which ignores SIGPIPE for it: a restarted journal must not
    // end it. Every other command ends quietly when its reader goes away.
    if !matches!(cli.command, Command::Daemon { .. }) {
        end_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Key(cmd) => key::run(cmd),
        Command::Bundle(cmd) => bundle::run(cmd),
        Command::Install { source, json } => device::install(&cli.config, &source, json),
        Command::Boot { json, reboot } => device::boot(&cli.config, json).and_then(|needed| {
            if needed && reboot {
                device::reboot_after_boot(&cli.config)
            } else {
                Ok(())
            }
        }),
        Command::Status { json } => device::status(&cli.config, json),
        Command::Commit => device::commit(&cli.config),
        Command::Rollback => device::rollback(&cli.config),
        Command::Sim(cmd) => sim::run(cmd),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Reboot => device::reboot(&cli.config),
        Command::Daemon { once } => daemon::run(&cli.config, once),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Printing into a closed pipe (`airlock bundle inspect … | head -1`) ends the process with
/// SIGPIPE, as for any Unix tool, instead of a panic in `println!` (Rust ignores SIGPIPE by
/// default). Safe for the engine: its sockets are written with MSG_NOSIGNAL and it writes into no
/// child's pipe.
fn end_quietly_on_closed_stdout() {
    // SAFETY: sets a signal's disposition to the default; no handler runs in this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // RUST_LOG as `level` or `target=level,…` (no span or field filters, which would need a
    // regex engine in the device binary); anything else falls back to -v's level.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default());
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time();
    tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .init();
}

/// The error and its causes on one line, skipping a cause its parent's message already quotes
/// (most of our errors include their cause in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
