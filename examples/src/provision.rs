//! Provisions a workspace through `sam-core`'s [`Engine`] with the real
//! Hetzner and Cloudflare adapters from `sam-providers`, pointed at the
//! in-process emulators of both APIs (real HTTP on loopback ports), then
//! stops and deletes it and shows that nothing is left at either provider.
//!
//! `cargo run -p sam-examples --example provision`

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use sam_core::domain::Workspace;
use sam_core::engine::{DriveOutcome, Engine, EngineConfig, Ports, RetryPolicy};
use sam_core::ports::SystemClock;
use sam_core::secret::SecretString;
use sam_core::testkit::fakes::{FakeCipher, FakeGithub, FakeTokenAuthority, MemoryStore};
use sam_providers::cloudflare::{CloudflareConfig, CloudflareDns};
use sam_providers::emulators::{CloudflareEmulator, CloudflareEmulatorConfig, HetznerEmulator, HetznerEmulatorConfig};
use sam_providers::hetzner::{HetznerConfig, HetznerProvider};
use sam_providers::http::HttpConfig;

use crate::{Error, demo};

/// What the run left behind, for the tests.
#[derive(Debug)]
pub struct Outcome {
    /// Every status the workspace went through, in order.
    pub statuses: Vec<String>,
    /// Servers left at the Hetzner emulator.
    pub servers_left: usize,
    /// DNS records left at the Cloudflare emulator.
    pub records_left: usize,
}

/// Runs the example, writing what happens to `out`.
pub async fn run(out: &mut dyn Write) -> Result<Outcome, Error> {
    // The two clouds, emulated in this process on random loopback ports.
    let hetzner_emulator =
        HetznerEmulator::start(HetznerEmulatorConfig { boot_delay: Duration::from_millis(50), ..Default::default() })
            .await?;
    let cloudflare_emulator = CloudflareEmulator::start(CloudflareEmulatorConfig::default()).await?;
    writeln!(out, "Hetzner emulator at {}", hetzner_emulator.base_url())?;
    writeln!(
        out,
        "Cloudflare emulator at {} (zone {})",
        cloudflare_emulator.base_url(),
        cloudflare_emulator.zone_name()
    )?;

    // The real adapters, configured exactly as for the public APIs except for
    // the base URLs.
    let hetzner = HetznerProvider::new(HetznerConfig {
        base_url: hetzner_emulator.base_url().to_owned(),
        http: HttpConfig::fast(),
    })?;
    let cloudflare = CloudflareDns::new(CloudflareConfig {
        base_url: cloudflare_emulator.base_url().to_owned(),
        http: HttpConfig::fast(),
        ..CloudflareConfig::new(SecretString::new(cloudflare_emulator.token()), cloudflare_emulator.zone_id())
    })?;

    let github = Arc::new(FakeGithub::new(30));
    let ports = Ports {
        store: Arc::new(MemoryStore::new()),
        compute: Arc::new(hetzner),
        dns: Arc::new(cloudflare),
        repos: github.clone(),
        cipher: Arc::new(FakeCipher::new(1, "example key")),
        tokens: Arc::new(FakeTokenAuthority::new("http://127.0.0.1:8080", "k1")),
        clock: Arc::new(SystemClock),
    };
    let mut config = EngineConfig::new(cloudflare_emulator.zone_name(), "http://127.0.0.1:8080");
    config.retry =
        RetryPolicy { max_attempts: 3, initial_delay: Duration::from_millis(20), max_delay: Duration::from_secs(1) };
    let engine = Arc::new(Engine::new(ports.clone(), config));

    let user = demo::sign_up(&ports, &github, &hetzner_emulator.token()).await?;

    let mut statuses = Vec::new();
    let mut show = |out: &mut dyn Write, step: &str, ws: &Workspace| -> std::io::Result<()> {
        statuses.push(ws.status().to_string());
        writeln!(out, "{step:<28} → {}", demo::describe(ws))
    };

    // Create: the engine records the workspace as `creating`; `drive` does the
    // work (server, then DNS record) and stops where it must wait for the agent.
    let ws = engine.create(user, demo::spec("demo", "fsn1")?, demo::INSTALLATION).await?;
    show(out, "create", &ws)?;
    let ws = settled(engine.drive(user, ws.id).await?)?;
    show(out, "drive", &ws)?;
    let server = hetzner_emulator.servers().into_iter().next().ok_or("no server at the Hetzner emulator")?;
    writeln!(
        out,
        "  Hetzner: server {} ({}, {}, {}) labelled {:?}",
        server.id, server.name, server.server_type, server.location, server.labels
    )?;
    for record in cloudflare_emulator.records() {
        writeln!(out, "  Cloudflare: {} A {}", record.name, record.content)?;
    }

    // The agent on the new server: redeem the bootstrap token its cloud-init
    // carries, report ready, heartbeat.
    let (ws, answer) = demo::boot_agent(&engine, user, &server.user_data).await?;
    show(out, "agent ready", &ws)?;
    writeln!(out, "  heartbeat answered {:?} (idle threshold {} s)", answer.action, answer.idle_threshold)?;

    // Stop: server and record are deleted; the workspace can be restarted.
    let ws = engine.stop(user, ws.id).await?;
    show(out, "stop", &ws)?;
    let ws = settled(engine.drive(user, ws.id).await?)?;
    show(out, "drive", &ws)?;

    writeln!(out, "history:")?;
    for event in engine.events(user, ws.id).await? {
        writeln!(out, "  {} → {} on {} ({})", event.from, event.to, event.event, event.reason)?;
    }

    // Delete: the row goes once nothing is left at the providers.
    let ws = engine.delete(user, ws.id).await?;
    show(out, "delete", &ws)?;
    match engine.drive(user, ws.id).await? {
        DriveOutcome::Removed => writeln!(out, "{:<28} → removed", "drive")?,
        other => return Err(format!("delete did not finish: {other:?}").into()),
    }

    let outcome = Outcome {
        statuses,
        servers_left: hetzner_emulator.servers().len(),
        records_left: cloudflare_emulator.records().len(),
    };
    writeln!(
        out,
        "left at Hetzner: {} servers; at Cloudflare: {} records",
        outcome.servers_left, outcome.records_left
    )?;
    Ok(outcome)
}

fn settled(outcome: DriveOutcome) -> Result<Workspace, Error> {
    match outcome {
        DriveOutcome::Settled(ws) => Ok(*ws),
        other => Err(format!("unexpected drive outcome {other:?}").into()),
    }
}
