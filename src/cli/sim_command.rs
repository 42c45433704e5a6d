//! Owns `migrator sim-command --server HOST:PORT CMD [ARGS...]` (hidden): sends one remote
//! command, as the Pegasus shell's `remote_command` does, and prints the answer — how the
//! demo and an operator trying the sandbox flip its faults (`sim.fault ...`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::pegasus::replica::ReplicaClient;

/// Flags of `migrator sim-command`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server to ask (a sandbox meta server for `sim.*` commands).
    #[arg(long)]
    pub server: SocketAddr,
    /// The command, e.g. `sim.fault`.
    pub command: String,
    /// Its arguments, e.g. `corrupt t0 6`.
    pub arguments: Vec<String>,
}

/// Sends the command and prints the answer; an answer starting with `ERROR` exits 1.
///
/// # Errors
/// The server cannot be reached.
pub async fn run(args: &Args) -> Result<Exit> {
    let arguments: Vec<&str> = args.arguments.iter().map(String::as_str).collect();
    let answer = ReplicaClient::new(Duration::from_secs(5))
        .command(args.server, &args.command, &arguments)
        .await
        .map_err(Error::Pegasus)?;
    crate::say!("{answer}");
    Ok(if answer.starts_with("ERROR") {
        Exit::Error
    } else {
        Exit::Success
    })
}
