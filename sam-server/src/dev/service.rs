//! `sam-server emulators`: the emulated GitHub, Hetzner and Cloudflare as a
//! process of their own, with their state on disk, so that the world outside
//! SAM outlives a control plane that is killed (or upgraded) and can be
//! reached by any program. Prints the base URLs and test tokens, serves the
//! control API ([`sam_providers::emulators::control`]) on loopback, and
//! writes `state.json` in its data directory within a second of every change
//! (atomically: a `kill -9` loses at most that second); a restart on the same
//! directory continues from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sam_providers::emulators::{EmulatorAddresses, Emulators, control};

/// Options of `sam-server emulators`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorOptions {
    /// Where the state is kept (`state.json`).
    #[arg(long, env = "SAM_EMULATORS_DATA_DIR", default_value = ".sam-emulators")]
    pub data_dir: PathBuf,
    /// Address of the emulated Hetzner Cloud API (port 0: any free port).
    #[arg(long, env = "SAM_EMULATORS_HETZNER_ADDR", default_value = "127.0.0.1:0")]
    pub hetzner_addr: SocketAddr,
    /// Address of the emulated Cloudflare API.
    #[arg(long, env = "SAM_EMULATORS_CLOUDFLARE_ADDR", default_value = "127.0.0.1:0")]
    pub cloudflare_addr: SocketAddr,
    /// Address of the emulated GitHub (web pages and API).
    #[arg(long, env = "SAM_EMULATORS_GITHUB_ADDR", default_value = "127.0.0.1:0")]
    pub github_addr: SocketAddr,
    /// Loopback port of the control API (0: any free port).
    #[arg(long, env = "SAM_EMULATORS_CONTROL_PORT", default_value_t = 0)]
    pub control_port: u16,
}

const STATE_FILE: &str = "state.json";

fn read_state(dir: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `text` as the state, atomically (temporary file, then rename).
fn write_state(dir: &Path, text: &str) -> std::io::Result<()> {
    let partial = dir.join(format!("{STATE_FILE}.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, dir.join(STATE_FILE))
}

/// Runs the emulators until Ctrl-C (or SIGTERM), then saves a last time.
pub async fn run(options: EmulatorOptions) -> anyhow::Result<()> {
    crate::ops::create_private_dir(&options.data_dir)?;
    let saved = read_state(&options.data_dir)?;
    let restored = saved.is_some();
    // The dev mode's world: zone `localhost`, servers on loopback, the test
    // identities (`dev --emulators` uses it as is).
    let configs = super::world::configs(false, &options.data_dir.join("git"));
    let addresses = EmulatorAddresses {
        hetzner: options.hetzner_addr,
        cloudflare: options.cloudflare_addr,
        github: options.github_addr,
    };
    let emulators = Emulators::start_from(configs, saved, addresses).await.context("starting the emulators")?;
    let control_listener = tokio::net::TcpListener::bind(("127.0.0.1", options.control_port))
        .await
        .with_context(|| format!("the control port {}", options.control_port))?;
    let control_url = format!("http://{}", control_listener.local_addr()?);
    let app = control::router(emulators.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(control_listener, app).await {
            tracing::warn!(%error, "the control API stopped");
        }
    });

    println!();
    println!("  SAM emulators{}", if restored { " (state restored)" } else { "" });
    println!("  Hetzner API      {}", emulators.hetzner.base_url());
    println!("  Hetzner token    {}", emulators.hetzner.token());
    println!("  Cloudflare API   {}", emulators.cloudflare.base_url());
    println!("  Cloudflare token {}", emulators.cloudflare.token());
    println!("  Cloudflare zone  {} ({})", emulators.cloudflare.zone_name(), emulators.cloudflare.zone_id());
    println!("  GitHub           {}", emulators.github.base_url());
    println!("  Emulator control {control_url} (state, faults, latency; see GET /)");
    println!("  State            {}", options.data_dir.join(STATE_FILE).display());
    println!();

    let dir = options.data_dir.clone();
    let saver_emulators = emulators.clone();
    let saver = tokio::spawn(async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let text = saver_emulators.snapshot().to_string();
            if text != last {
                match write_state(&dir, &text) {
                    Ok(()) => last = text,
                    Err(error) => tracing::warn!(%error, "saving the emulators' state failed"),
                }
            }
        }
    });
    crate::shutdown_signal().await;
    saver.abort();
    write_state(&options.data_dir, &emulators.snapshot().to_string()).context("saving the state")?;
    println!("emulators stopped; state saved");
    Ok(())
}
