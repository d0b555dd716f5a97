//! `main-node trust`: make a trusted domain's files, add nodes to it, check a node's files.

use std::path::PathBuf;

use amlip_core::trust::{setup, Role, Trust, Validity};
use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Create a trusted domain in DIR: identity CA, permissions CA (keys in DIR/private) and
    /// a signed governance that authenticates every node and encrypts every amlip topic.
    Init {
        /// The domain's folder (created; must not hold a domain yet).
        dir: PathBuf,
        /// How long the CAs stay valid, in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Add node NAME to the domain in DIR: its key, certificate and signed permissions in
    /// DIR/NAME (start the node with `--trust DIR/NAME`).
    Add {
        /// The domain's folder (made by `trust init`).
        dir: PathBuf,
        /// The node's name ([0-9A-Za-z_.-]); one name may serve many nodes.
        name: String,
        /// What it may do: main, computing, observer (status only) or any.
        #[arg(long, default_value = "any")]
        role: String,
        /// How long its certificate and permissions stay valid, in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Check node DIR/NAME's files as a node starting with `--trust DIR/NAME` would.
    Check {
        /// The node's folder.
        node: PathBuf,
    },
}

pub fn run(cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::Init { dir, days } => {
            let files = setup::init(
                &dir,
                Validity {
                    days,
                    ..Validity::default()
                },
            )
            .context("cannot create the trusted domain")?;
            println!("trusted domain created in {}:", dir.display());
            for f in files {
                println!("  {}", f.display());
            }
            println!(
                "keep {} off the nodes; add a node with `main-node trust add {} NAME`",
                dir.join("private").display(),
                dir.display()
            );
        }
        TrustCommand::Add {
            dir,
            name,
            role,
            days,
        } => {
            let role: Role = role.parse()?;
            let files = setup::add(
                &dir,
                &name,
                role,
                Validity {
                    days,
                    ..Validity::default()
                },
            )
            .with_context(|| format!("cannot add {name} to {}", dir.display()))?;
            println!("{name} ({role:?}) added:");
            for f in files {
                println!("  {}", f.display());
            }
            println!(
                "start it with --trust {} (it needs DIR's *.pem, governance.p7s and its folder)",
                dir.join(&name).display()
            );
        }
        TrustCommand::Check { node } => {
            let t = Trust::load(&node)?;
            println!("{}: {} is a valid member", node.display(), t.name());
        }
    }
    Ok(())
}
