//! `airlock key …`

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate an ed25519 key pair: OUT.key (private, PKCS#8 PEM, mode 0600) and OUT.pub (public, SPKI PEM).
    Generate {
        /// Path prefix of the two files, e.g. `keys/release`.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { out } => {
            let (private, public, id) = airlock::keys::generate(&out)?;
            println!(
                "private key: {} (keep it offline; signs bundles)",
                private.display()
            );
            println!(
                "public key:  {} (install on devices: [trust] keys)",
                public.display()
            );
            println!("key id:      {id}");
            Ok(())
        }
    }
}
