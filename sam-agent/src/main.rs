//! The `sam-agent` binary: wires configuration to the library.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use sam_agent::bootstrap::{self, BootstrapOptions, DevcontainerCli, GitCloner, HttpControlPlane, Start};
use sam_agent::config::Config;
use sam_agent::heartbeat::{self, HeartbeatClient};
use sam_agent::state::AgentState;
use sam_agent::{Agent, web};
use sam_core::ports::TokenVerifier;

// `RUST_LOG` as `target=level` directives (`info,sam_agent=debug`): a
// `Targets` filter rather than an `EnvFilter`, whose span and field
// filters bring a regex engine into the binary every VM downloads.
fn init_logs(format: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let info = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    let (filter, refused) = match std::env::var("RUST_LOG") {
        Ok(value) => match value.parse::<tracing_subscriber::filter::Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (info(), Some((value, error))),
        },
        Err(_) => (info(), None),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if format == "json" {
        registry.with(tracing_subscriber::fmt::layer().json()).init();
    } else {
        registry.with(tracing_subscriber::fmt::layer()).init();
    }
    if let Some((value, error)) = refused {
        tracing::warn!(rust_log = %value, %error, "RUST_LOG not understood (target=level directives only); logging at info");
    }
}

// One async thread: PTY and socket I/O both run on the reactor, so a
// keystroke and its echo never cross a thread inside the agent (measured in
// benches/benches/agent.rs); only each shell's blocking `waitpid` has a
// thread of its own.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Run by git as the clone's credential helper.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("git-credential") {
        std::process::exit(sam_agent::git_credential::helper_main(&args[2..]));
    }
    let config = Config::parse();
    init_logs(&config.log_format);
    sam_agent::ensure_tls_provider();
    // As a container's entry point the agent inherits every orphan.
    tokio::spawn(sam_agent::reaper::run());

    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("bind {}", config.listen))?;
    // Terminal tokens are RS256 JWTs from the control plane, checked against
    // its published key set (fetched on first use, refetched once per unknown
    // key id, rate-limited).
    let control_plane = config.control_plane.as_deref().context("--control-plane is required")?.trim_end_matches('/');
    let issuer = config.token_issuer.clone().unwrap_or_else(|| control_plane.to_owned());
    // One client, one store of trust anchors, for all control-plane traffic.
    let http = sam_agent::http::client().context("HTTP client")?;
    let verifier: Arc<dyn TokenVerifier> = Arc::new(sam_providers::jwt::JwksVerifier::with_client(
        format!("{control_plane}/.well-known/jwks.json"),
        issuer,
        http.clone(),
    ));

    // With a bootstrap token: resume from the grant saved before a restart
    // or a reboot (the token is spent once redeemed), else redeem it (it
    // names the workspace) and save the grant; serve /health while the
    // repository is cloned and the devcontainer starts.
    let state = AgentState::new(&config.state_dir);
    let mut pending = None;
    let mut tls = None;
    let (workspace, callback) = match &config.bootstrap_token {
        Some(token) => {
            let cp_url =
                config.control_plane.as_deref().context("--control-plane is required with a bootstrap token")?;
            let cp = HttpControlPlane::new(cp_url, http.clone());
            let token = token.clone();
            let saved = match state.load(Some(&token)).await {
                Ok(saved) => saved,
                Err(error) => {
                    tracing::warn!(%error, "the saved grant is unreadable; redeeming the bootstrap token");
                    None
                }
            };
            let (grant, key, start) = match saved {
                Some(saved) => {
                    tracing::info!(workspace = %saved.grant.workspace_id, "resuming from the saved grant");
                    (saved.grant, saved.tls_key, Start::Resumed { cloned: saved.cloned })
                }
                None => {
                    let (grant, key) =
                        bootstrap::redeem(&cp, &token, Some(&state), config.tls).await.context("bootstrap token")?;
                    (grant, key, Start::Fresh)
                }
            };
            if config.tls {
                let certificate = grant.origin_certificate.as_deref().context("--tls: the grant has no certificate")?;
                let key = key.context("--tls: no key for the certificate")?;
                tls =
                    Some(sam_agent::tls::server_config_with_names(certificate, &key, grant.edge_client_ca.as_deref())?);
            }
            let ids = (grant.workspace_id, Some(grant.callback_token.clone()));
            pending = Some((cp, grant, start));
            ids
        }
        None => (
            config.workspace_id.context("--workspace-id is required without a bootstrap token")?,
            config.callback_token.clone(),
        ),
    };

    let mut agent_config = config.agent_config(workspace);
    // Terminal tokens must be the owner's (the control plane checks it too).
    agent_config.owner = pending.as_ref().and_then(|(_, grant, _)| grant.owner);
    let agent = Agent::new(agent_config, verifier, config.static_shell());
    anyhow::ensure!(
        agent.is_ready() || pending.is_some(),
        "no shell: pass --host-shell, --container or a bootstrap token"
    );
    let server = match tls {
        Some((config, names)) => {
            agent.set_server_names(names);
            let listener = sam_agent::tls::TlsListener::new(listener, config).context("TLS listener")?;
            tokio::spawn(web::serve_tls(listener, Arc::clone(&agent)))
        }
        None => tokio::spawn(web::serve(listener, Arc::clone(&agent))),
    };
    tracing::info!(%workspace, listen = %config.listen, "sam-agent serving");

    if let Some((cp, grant, start)) = pending {
        let options = BootstrapOptions {
            workdir: config.workdir.clone(),
            host_shell: config.host_shell,
            container_shell: config.container_shell.clone(),
            state: Some(state),
        };
        // Git asks this agent for repository tokens once the clone token
        // has expired: a socket of its own, this binary as the helper.
        let socket = sam_agent::git_credential::socket_path(&config.state_dir);
        let credentials = sam_agent::git_credential::CredentialService::new(
            control_plane,
            grant.workspace_id,
            grant.callback_token.clone(),
            &grant.clone_url,
            http.clone(),
        )
        .context("git credentials")?;
        let listener = sam_agent::git_credential::bind(&socket).context("the git credential socket")?;
        tokio::spawn(Arc::new(credentials).serve(listener));
        let agent_exe = std::env::current_exe().context("locating the agent binary")?;
        let mut devcontainer = DevcontainerCli {
            program: config.devcontainer_cli.clone(),
            same_path_mounts: socket.parent().map(|dir| vec![agent_exe.clone(), dir.to_owned()]).unwrap_or_default(),
            docker_path: Some(config.docker.clone()),
            default_network: config.default_container_network.clone(),
            ..DevcontainerCli::default()
        };
        if let Some(image) = &grant.default_image {
            devcontainer.default_image.clone_from(image);
        }
        let outcome = bootstrap::provision(&cp, &GitCloner, &devcontainer, grant, &options, start)
            .await
            .context("bootstrap failed")?;
        if let Err(error) =
            sam_agent::git_credential::configure_clone(&outcome.repository_dir, &agent_exe, &socket).await
        {
            tracing::warn!(%error, "git credential helper not configured: pushing will ask for a password");
        }
        agent.set_ready(outcome.shell, outcome.container);
        bootstrap::report_ready(&cp, &outcome.grant).await;
        tracing::info!(%workspace, "workspace ready");
    }

    if let (Some(cp), Some(credential)) = (&config.control_plane, callback) {
        let client = HeartbeatClient::new(cp, workspace, credential, http.clone());
        tokio::spawn(heartbeat::run(Arc::clone(&agent), client, Duration::from_secs(config.heartbeat_secs)));
    }

    let signals = Arc::clone(&agent);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        signals.shutdown("signal");
    });

    server.await.context("server task")?.context("server")?;
    Ok(())
}
