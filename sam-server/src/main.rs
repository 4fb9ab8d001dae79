//! The `sam-server` binary. Commands land incrementally: see `--help`.

use clap::{Parser, Subcommand};

/// SAM control plane.
#[derive(Parser, Debug)]
#[command(
    name = "sam-server",
    version,
    about = "SAM control plane: disposable cloud workspaces with a browser terminal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole product on this machine with emulated GitHub, Hetzner and Cloudflare (not built yet).
    Dev,
    /// Run the control plane in production (not built yet).
    Serve,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev | Command::Serve => {
            anyhow::bail!(
                "`{:?}` is not available yet: the HTTP API exists as a library (sam_server::api::router) and is \
                 tested; wiring it to configuration and the real adapters is the next step of the server issue",
                cli.command
            )
        }
    }
}
