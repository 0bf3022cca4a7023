//! The `airlock-server` command line: `serve`, and management commands that are a client of
//! the REST API. It parses and prints; the work is the server's.

mod client;
mod serve;
mod table;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use serve::ServeArgs;

#[derive(Parser)]
#[command(
    name = "airlock-server",
    version,
    about = "The fleet server for Airlock devices"
)]
pub struct Cli {
    /// The server to manage.
    #[arg(
        long,
        global = true,
        env = "AIRLOCK_SERVER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// File holding the admin token (AIRLOCK_SERVER_TOKEN, the token itself, wins).
    #[arg(
        long,
        global = true,
        default_value = "./airlock-server-data/admin-token"
    )]
    pub token_file: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Devices: admission, inventory, history.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Groups of devices.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Signed bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Phased rollouts.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Devices' health: failures first.
    Health {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    List {
        /// pending, accepted or rejected.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Pre-authorise a device; prints its token.
    Add {
        controller_id: String,
        #[arg(long)]
        name: Option<String>,
        /// The device's TargetToken (generated when left out).
        #[arg(long)]
        token: Option<String>,
    },
    Accept {
        id: String,
    },
    Reject {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Deployment history with logs.
    History {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    Create {
        name: String,
        /// A member (static group); repeatable.
        #[arg(long = "device", conflicts_with = "filter")]
        devices: Vec<String>,
        /// `key=value,key2!=value2` over attributes and controllerId, `*` globs (dynamic group).
        #[arg(long)]
        filter: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Upload a bundle; the server verifies it before keeping it. With --foreign: an artifact
    /// of another updater (SWUpdate's .swu, …), kept as it is, which the devices' own updater
    /// must verify.
    Upload {
        file: PathBuf,
        /// The file is not an Airlock bundle: give it a name and a version.
        #[arg(long, requires_all = ["name", "version"])]
        foreign: bool,
        /// The software's name, for an artifact of another updater.
        #[arg(long, requires = "foreign")]
        name: Option<String>,
        /// The software's version, for an artifact of another updater.
        #[arg(long, requires = "foreign")]
        version: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Delete {
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum CampaignCommand {
    Create {
        #[arg(long)]
        name: String,
        /// Bundle id.
        #[arg(long)]
        bundle: i64,
        /// Group name.
        #[arg(long)]
        group: String,
        /// Cumulative percentages, e.g. 10,50,100.
        #[arg(long, value_delimiter = ',', default_value = "100")]
        phases: Vec<u32>,
        /// Percent of a phase's devices that must succeed before the next phase starts.
        #[arg(long, default_value_t = 100)]
        success_threshold: i64,
        /// Percent of a phase's devices failed above which the campaign pauses.
        #[arg(long, default_value_t = 0)]
        error_threshold: i64,
        /// Devices install only inside this daily window, `HH:MM+HH:MM` (start+duration, UTC),
        /// e.g. 02:00+03:00; outside it they are told to wait.
        #[arg(long)]
        maintenance_window: Option<String>,
        /// How devices treat the download: forced, attempt or skip.
        #[arg(long, default_value = "forced")]
        download: String,
        /// How devices treat the install: forced, attempt or skip (download only).
        #[arg(long, default_value = "forced")]
        update: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    Pause {
        id: i64,
    },
    Resume {
        id: i64,
    },
    Cancel {
        id: i64,
    },
}

impl Cli {
    /// Whether this runs the server (as opposed to one of the REST client's commands).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        command => client::run(&cli.server, &cli.token_file, command).await,
    }
}
