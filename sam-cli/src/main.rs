//! `sam`: SAM from a local terminal. It calls the control plane's API with a
//! personal access token (created in the dashboard's Settings) and attaches
//! the local terminal to a workspace's shell over the same WebSocket
//! protocol as the browser page (`sam_core::terminal`): raw mode, resize,
//! Ctrl-C, and reattach after a dropped connection.

mod api;
mod config;
mod shell;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use api::Api;

#[derive(Parser, Debug)]
#[command(name = "sam", version, about = "SAM workspaces from your terminal")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Stores the control plane's URL and a personal access token (from
    /// Settings → Personal access tokens), after checking them.
    Login {
        /// The SAM dashboard's URL, e.g. https://sam.example.dev.
        #[arg(long, env = "SAM_URL")]
        url: String,
        /// The token; read from standard input when absent.
        #[arg(long, env = "SAM_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Lists your workspaces.
    List,
    /// Creates a workspace and waits until it runs.
    Create {
        /// Its name.
        name: String,
        /// `owner/name` of the repository.
        #[arg(long)]
        repo: String,
        #[arg(long, default_value = "main")]
        branch: String,
        /// small, medium or large.
        #[arg(long, default_value = "small")]
        size: String,
        /// A location of your cloud account (fsn1, nbg1, hel1, ash, …).
        #[arg(long, default_value = "fsn1")]
        location: String,
        /// Minutes without terminal activity before it stops (the
        /// deployment's default when absent).
        #[arg(long)]
        idle_minutes: Option<u64>,
        /// Return at once instead of waiting for `running`.
        #[arg(long)]
        no_wait: bool,
    },
    /// Stops a workspace (by name or id).
    Stop { workspace: String },
    /// Starts a stopped workspace again.
    Restart { workspace: String },
    /// Deletes a workspace and its server.
    Delete { workspace: String },
    /// Prints a one-time URL that opens the workspace's terminal in a browser.
    Open { workspace: String },
    /// Attaches this terminal to a shell of the workspace (Ctrl-] d detaches).
    Shell {
        workspace: String,
        /// A session to reattach to (as `sam shell` prints when it ends);
        /// a new shell when absent.
        #[arg(long)]
        session: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sam: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // The standard input's reader thread may be blocked in a read: do not
    // wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sam: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    if let Command::Login { url, token } = cli.command {
        let token = match token {
            Some(token) => token,
            None => {
                eprintln!("Paste a personal access token (Settings → Personal access tokens at {url}):");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).context("reading the token")?;
                line.trim().to_owned()
            }
        };
        let login = config::Login { url: url.trim_end_matches('/').to_owned(), token };
        let me = Api::new(&login)?.me().await?;
        let path = config::save(&login)?;
        println!("Logged in to {} as {} (saved in {})", login.url, me, path.display());
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let login = config::load()?;
    let api = Api::new(&login)?;
    match cli.command {
        Command::Login { .. } => unreachable!("login is handled above"),
        Command::List => {
            let list = api.list().await?;
            println!("{:<24} {:<10} {:<32} {:<7} {:<6} ID", "NAME", "STATUS", "REPOSITORY", "SIZE", "WHERE");
            for ws in list {
                println!(
                    "{:<24} {:<10} {:<32} {:<7} {:<6} {}",
                    ws.name, ws.status, ws.repository, ws.vm_size, ws.vm_location, ws.id
                );
            }
        }
        Command::Create { name, repo, branch, size, location, idle_minutes, no_wait } => {
            let created = api.create(&name, &repo, &branch, &size, &location, idle_minutes.map(|m| m * 60)).await?;
            println!("{} {} ({})", created.name, created.status, created.id);
            if !no_wait {
                let running = api.wait_running(created.id).await?;
                println!("{} running at {}", running.name, running.url.unwrap_or_default());
            }
        }
        Command::Stop { workspace } => {
            let ws = api.find(&workspace).await?;
            println!("{} {}", ws.name, api.action(ws.id, "stop").await?.status);
        }
        Command::Restart { workspace } => {
            let ws = api.find(&workspace).await?;
            println!("{} {}", ws.name, api.action(ws.id, "restart").await?.status);
        }
        Command::Delete { workspace } => {
            let ws = api.find(&workspace).await?;
            println!("{} {}", ws.name, api.delete(ws.id).await?.status);
        }
        Command::Open { workspace } => {
            let ws = api.find(&workspace).await?;
            println!("{}", api.terminal_url(ws.id).await?);
        }
        Command::Shell { workspace, session } => {
            let ws = api.find(&workspace).await?;
            if ws.status != sam_core::lifecycle::WorkspaceStatus::Running {
                bail!("{} is {}; start it first (sam restart {})", ws.name, ws.status, ws.name);
            }
            return shell::attach(&api, ws.id, session).await;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
