//! `sam-server dev`: the whole product on one machine, no cloud account.
//!
//! - GitHub, Hetzner and Cloudflare are the emulators from `sam-providers`,
//!   in-process, reached over real HTTP by the real adapters;
//! - keys are generated on first start into the data directory and reused,
//!   the database is a SQLite file there;
//! - every server the emulated Hetzner "boots" becomes a local VM: the
//!   `vm` module plays cloud-init (downloads the agent from the control
//!   plane, checks its SHA-256, starts it with the bootstrap token), so the
//!   agent goes through the real bootstrap path; its terminals run in
//!   devcontainers when a container runtime and the devcontainer CLI are
//!   here (`containers`), else on the host;
//! - the emulated GitHub's repositories are served as git repositories over
//!   HTTP by this server (`git`), so the agent really clones;
//! - `http://ws-<id>.localhost:<workspace port>` reaches the agent through a
//!   small Host-routing proxy (`proxy`); `*.localhost` resolves to loopback.
//!
//! With `--tls`, the production topology instead: a local edge (`edge`)
//! plays Cloudflare's part with certificates from a local CA
//! (`local_ca`, kept in the data directory for the browser to trust):
//! `https://localhost:<port>` for the control plane,
//! `https://ws-<id>.localhost:<workspace port>` for workspaces, whose
//! records are proxied and whose agents serve TLS with certificates from the
//! emulated Origin CA and admit only the edge's origin-pull certificate; the
//! zone is set up as `setup --configure-zone` leaves it, and the session and
//! terminal cookies are `Secure`.

pub mod containers;
mod edge;
mod local_ca;
mod proxy;
pub mod service;
mod vm;
pub mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sam_providers::emulators::{self, Emulators};
use world::{DEMO_OWNER, HETZNER_READ_ONLY, HETZNER_SECOND_PROJECT, ORG_MEMBER, OUTSIDER, WorldInfo};

use crate::config::ServeConfig;
use crate::deployment;

/// Options of `sam-server dev`.
#[derive(clap::Args, Debug, Clone)]
pub struct DevOptions {
    /// Where keys, the database, agents and workspaces live.
    #[arg(long, env = "SAM_DEV_DATA_DIR", default_value = ".sam-dev")]
    pub data_dir: PathBuf,
    /// Port of the web UI and API.
    #[arg(long, env = "SAM_DEV_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Port the workspace terminals are reached on (`http://ws-<id>.localhost:<port>`).
    #[arg(long, env = "SAM_DEV_WORKSPACE_PORT", default_value_t = 8081)]
    pub workspace_port: u16,
    /// Idle minutes before a workspace stops.
    #[arg(long, env = "SAM_DEV_IDLE_MINUTES", default_value_t = 30)]
    pub idle_minutes: u64,
    /// Idle seconds before a workspace stops, overriding the minutes (to see
    /// the warning and the stop without waiting half an hour).
    #[arg(long, env = "SAM_DEV_IDLE_SECONDS")]
    pub idle_seconds: Option<u64>,
    /// Seconds a silent agent's workspace is kept before it is released
    /// (default: the deployment default, 2 hours).
    #[arg(long, env = "SAM_DEV_UNREACHABLE_SECONDS")]
    pub unreachable_seconds: Option<u64>,
    /// Seconds without a heartbeat before an agent is looked at (default 300).
    #[arg(long, env = "SAM_DEV_HEARTBEAT_TIMEOUT_SECONDS")]
    pub heartbeat_timeout_seconds: Option<u64>,
    /// Seconds between an agent's heartbeats (default: a quarter of the idle
    /// threshold, at most 60, and a third of the heartbeat timeout).
    #[arg(long, env = "SAM_DEV_HEARTBEAT_SECONDS")]
    pub heartbeat_seconds: Option<u64>,
    /// Seconds from `creating` to `running` before a workspace times out
    /// (default 600).
    #[arg(long, env = "SAM_DEV_PROVISION_TIMEOUT_SECONDS")]
    pub provision_timeout_seconds: Option<u64>,
    /// Seconds between reconciler passes.
    #[arg(long, env = "SAM_DEV_RECONCILE_INTERVAL_SECONDS", default_value_t = 5)]
    pub reconcile_interval_seconds: u64,
    /// Seconds an orphaned server or record is kept (default 600).
    #[arg(long, env = "SAM_DEV_ORPHAN_GRACE_SECONDS")]
    pub orphan_grace_seconds: Option<u64>,
    /// Seconds before the idle stop that the warning starts (default 300,
    /// at most half the idle threshold).
    #[arg(long, env = "SAM_DEV_IDLE_WARNING_SECONDS")]
    pub idle_warning_seconds: Option<u64>,
    /// Loopback port of the emulators' control API (0: any free port).
    #[arg(long, env = "SAM_DEV_CONTROL_PORT", default_value_t = 0)]
    pub control_port: u16,
    /// Use a running `sam-server emulators` (its control API's URL, printed
    /// at its start) instead of starting the emulators in this process: the
    /// emulated cloud then outlives dev mode, and a restart finds it as it
    /// was (the VMs of existing servers boot again).
    #[arg(long, env = "SAM_DEV_EMULATORS")]
    pub emulators: Option<String>,
    /// Most active workspaces per user.
    #[arg(long, env = "SAM_DEV_MAX_WORKSPACES", default_value_t = 10)]
    pub max_workspaces: u32,
    /// The production topology: HTTPS everywhere through a local edge that
    /// plays Cloudflare's part (proxied records, Full (strict) TLS to agents
    /// with Origin CA certificates, Authenticated Origin Pulls). The browser
    /// must trust `<data-dir>/tls/local-ca.pem`.
    #[arg(long, env = "SAM_DEV_TLS")]
    pub tls: bool,
    /// Where terminals run: `auto` (in devcontainers when a container
    /// runtime and the devcontainer CLI answer, else on the host), `on`
    /// (devcontainers, or dev mode does not start) or `off` (on the host).
    #[arg(long, env = "SAM_DEV_CONTAINERS", value_enum, default_value_t = containers::ContainerMode::Auto)]
    pub containers: containers::ContainerMode,
    /// The Docker-compatible CLI of the container runtime (its `DOCKER_HOST`
    /// is used as it is).
    #[arg(long, env = "SAM_DEV_DOCKER", default_value = "docker")]
    pub docker: String,
    /// The devcontainer CLI (default: `devcontainer` on `PATH`, else the one
    /// `scripts/test` installs in the source tree).
    #[arg(long, env = "SAM_DEVCONTAINER_CLI")]
    pub devcontainer_cli: Option<PathBuf>,
    /// The image of a repository without a `devcontainer.json` (the
    /// deployment setting `SAM_DEFAULT_DEVCONTAINER_IMAGE`).
    #[arg(long, env = "SAM_DEV_DEVCONTAINER_IMAGE")]
    pub devcontainer_image: Option<String>,
    /// Whether the servers the emulated Hetzner creates boot here as local
    /// VMs (`local`), or boot nowhere unless something else boots them from
    /// their user data (`none`: `scripts/rehearse-boot` boots one with the
    /// real cloud-init in a systemd container).
    #[arg(long, env = "SAM_DEV_VMS", value_enum, default_value_t = VmMode::Local)]
    pub vms: VmMode,
    /// The sam-agent binary to hand out (default: beside this binary, built
    /// with cargo when missing).
    #[arg(long, env = "SAM_DEV_AGENT")]
    pub agent: Option<PathBuf>,
}

/// Who boots the servers of the emulated Hetzner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VmMode {
    /// Dev mode, as local VMs.
    Local,
    /// Nobody here: an outside runner boots them from their user data.
    None,
}

fn write_secret(dir: &Path, name: &str, value: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Finds (or builds) the agent binary. Under `cargo run` it is built from
/// the same source tree: with `--release` for a release server, otherwise
/// with the `dev-agent` profile — optimised like a release, so a dev
/// workspace's terminal performs like a real one and every VM downloads and
/// checks 8 MB instead of a 36-MB debug build — falling back to the debug
/// agent beside this binary when that build fails.
async fn agent_binary(options: &DevOptions) -> anyhow::Result<PathBuf> {
    if let Some(path) = &options.agent {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let beside = exe.with_file_name("sam-agent");
    let workspace_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    if let (Ok(cargo), true) = (std::env::var("CARGO"), workspace_manifest.exists()) {
        let release = exe.components().any(|c| c.as_os_str() == "release");
        let profile = if release { "release" } else { "dev-agent" };
        // target/<profile>/sam-server → target/<profile>/sam-agent
        let built = exe.parent().and_then(Path::parent).map(|target| target.join(profile).join("sam-agent"));
        let mut build = tokio::process::Command::new(cargo);
        build
            .args(["build", "-q", "-p", "sam-agent", "--profile", profile, "--manifest-path"])
            .arg(&workspace_manifest);
        tracing::info!(profile, "building sam-agent (the first time takes a minute or two)");
        match build.status().await {
            Ok(status) if status.success() => {
                if let Some(built) = built.filter(|b| b.exists()) {
                    return Ok(built);
                }
            }
            other => tracing::warn!(?other, "cargo build -p sam-agent failed; using the binary already built, if any"),
        }
    }
    anyhow::ensure!(
        beside.exists(),
        "no sam-agent binary beside {} (build it with cargo build -p sam-agent)",
        exe.display()
    );
    Ok(beside)
}

/// Puts the agent binary where the control plane serves it from: a symbolic
/// link to the build (a debug agent is large, and every dev start would copy
/// it again), or a copy where links are not possible.
fn place_agent(agent: &Path, served: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(served) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let target = std::fs::canonicalize(agent)?;
    if std::os::unix::fs::symlink(&target, served).is_ok() {
        return Ok(());
    }
    std::fs::copy(&target, served).map(drop)
}

/// Serves the pinned devcontainer CLI as a VM fetches it (what the image's
/// `npm pack` stage does in production): the source tree's copy
/// (`scripts/devcontainer`, installed by `./scripts/test`), packed as npm
/// packs it, when its version is the pinned one.
async fn place_devcontainer_cli(agents: &Path) -> anyhow::Result<()> {
    let scope = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/devcontainer/node_modules/@devcontainers");
    let manifest = std::fs::read(scope.join("cli/package.json")).context("the source tree has no devcontainer CLI")?;
    let version: serde_json::Value = serde_json::from_slice(&manifest)?;
    let pinned = sam_core::cloud_init::DEVCONTAINER_CLI_VERSION;
    anyhow::ensure!(version["version"] == pinned, "the source tree's devcontainer CLI is not {pinned}");
    let bundle = agents.join(crate::api::devcontainer_cli_file());
    if bundle.exists() {
        return Ok(());
    }
    let partial = bundle.with_extension("partial");
    let status = tokio::process::Command::new("tar")
        .arg("-czf")
        .arg(&partial)
        .arg("-C")
        .arg(&scope)
        .args(["--transform", "s,^cli,package,", "cli"])
        .status()
        .await
        .context("running tar")?;
    anyhow::ensure!(status.success(), "tar failed: {status}");
    std::fs::rename(&partial, &bundle)?;
    Ok(())
}

/// `POST /dev/faults/hetzner-capacity` makes the emulated Hetzner answer
/// every server creation with `resource_unavailable` (as when a location is
/// out of capacity); `DELETE /dev/faults` clears it. For trying, and testing,
/// how failures look. Only in dev mode.
fn faults_router(emulators: &Emulators) -> axum::Router {
    use axum::routing::{delete, post};
    use sam_providers::emulators::{Fault, InjectedError};
    let (capacity, clear) = (emulators.hetzner.clone(), emulators.hetzner.clone());
    let (github, clear_github) = (emulators.github.clone(), emulators.github.clone());
    axum::Router::new()
        .route(
            // The next installation token (all of one call's retries) fails:
            // an agent's bootstrap meets "try again".
            "/dev/faults/github-installation-token",
            post(move || async move {
                github.faults().inject("POST", "/app/installations/*", Fault::Error(InjectedError::Internal), 5);
                axum::http::StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/dev/faults/hetzner-capacity",
            post(move || async move {
                capacity.faults().always("POST", "/v1/servers", Fault::Error(InjectedError::ResourceUnavailable));
                axum::http::StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/dev/faults",
            delete(move || async move {
                clear.faults().clear();
                clear_github.faults().clear();
                axum::http::StatusCode::NO_CONTENT
            }),
        )
}

/// Runs the dev mode until Ctrl-C.
pub async fn run(options: DevOptions, mut sockets: crate::listeners::Sockets) -> anyhow::Result<()> {
    let data = std::fs::canonicalize({
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        &options.data_dir
    })?;
    let scheme = if options.tls { "https" } else { "http" };
    let public_url = format!("{scheme}://localhost:{}", options.port);
    let tls_dir = data.join("tls");
    let certificates = if options.tls {
        let browser = local_ca::LocalCa::load_or_create(&tls_dir, "local-ca", "SAM dev local CA")?;
        let origin_pull = local_ca::LocalCa::load_or_create(&tls_dir, "origin-pull-ca", "SAM dev origin-pull CA")?;
        Some((browser, origin_pull))
    } else {
        None
    };

    // Keys: generated once, reused.
    let keys_dir = data.join("keys");
    let keys = sam_providers::keys::KeyFiles::in_dir(&keys_dir);
    if !keys.jwt_signing_key.exists() {
        sam_providers::keys::generate_key_files(&keys_dir).context("generating keys")?;
    }

    // The agent binary, served by the control plane like in production.
    let agents = data.join("agents");
    std::fs::create_dir_all(&agents)?;
    let agent = agent_binary(&options).await?;
    place_agent(&agent, &crate::api::agent_path(&agents, "amd64")).context("placing the agent")?;
    if let Err(error) = place_devcontainer_cli(&agents).await {
        tracing::warn!(%error, "no devcontainer CLI bundle: VMs would install it with npm");
    }

    // Emulated clouds: in this process, or a running `sam-server emulators`.
    let (world_info, in_process) = match &options.emulators {
        None => {
            let (hetzner, cloudflare, github) = world::configs(options.tls, &data.join("git"));
            let emulators =
                Emulators::start_with(hetzner, cloudflare, github).await.context("starting the emulators")?;
            world::prepare_in_process(&emulators, &public_url);
            (WorldInfo::of(&emulators), Some(emulators))
        }
        Some(control) => {
            anyhow::ensure!(!options.tls, "--tls needs the emulators in this process (leave out --emulators)");
            let info = WorldInfo::remote(control).await?;
            world::prepare_remote(control, &public_url).await?;
            (info, None)
        }
    };
    let repositories = world::demo_repositories();

    let secrets = data.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    let config = ServeConfig {
        // Behind the edge, the control plane listens on a loopback port of its own.
        listen: if options.tls { "127.0.0.1:0".into() } else { format!("127.0.0.1:{}", options.port) },
        public_url: Some(public_url.clone()),
        base_domain: Some("localhost".into()),
        deployment_id: None,
        workspace_host_naming: sam_core::domain::HostNaming::Nested,
        workspace_url_template: format!("{scheme}://{{host}}:{}", options.workspace_port),
        database_url: format!("sqlite://{}", data.join("sam.db").display()),
        jwt_private_key_file: Some(keys.jwt_signing_key.clone()),
        jwt_previous_key_files: Vec::new(),
        encryption_key_file: Some(keys.credentials_key.clone()),
        old_encryption_key_files: Vec::new(),
        github_client_id: Some(emulators::GITHUB_CLIENT_ID.into()),
        github_client_secret_file: Some(write_secret(
            &secrets,
            "github-client-secret",
            emulators::GITHUB_CLIENT_SECRET,
        )?),
        github_app_id: Some(emulators::GITHUB_APP_ID.into()),
        github_app_slug: Some(emulators::GITHUB_APP_SLUG.into()),
        github_app_private_key_file: Some(write_secret(
            &secrets,
            "github-app.pem",
            emulators::TEST_APP_PRIVATE_KEY_PEM,
        )?),
        github_webhook_secret_file: Some(write_secret(&secrets, "github-webhook", emulators::GITHUB_WEBHOOK_SECRET)?),
        github_web_url: world_info.github_url.clone(),
        github_api_url: world_info.github_url.clone(),
        // Cloned from the emulated GitHub, as from github.com.
        git_base_url: world_info.github_url.clone(),
        github_app_public: true,
        default_devcontainer_image: options.devcontainer_image.clone(),
        hetzner_image: sam_core::engine::DEFAULT_SERVER_IMAGE.into(),
        allowed_users: Vec::new(),
        allowed_organizations: Vec::new(),
        cloudflare_api_token_file: Some(write_secret(&secrets, "cloudflare-token", &world_info.cloudflare_token)?),
        cloudflare_zone_id: Some(world_info.zone_id.clone()),
        cloudflare_api_url: world_info.cloudflare_url.clone(),
        hetzner_api_url: world_info.hetzner_url.clone(),
        agent_dir: Some(agents),
        max_workspaces_per_user: options.max_workspaces,
        idle_timeout_minutes: options.idle_minutes,
        idle_timeout_seconds: options.idle_seconds,
        // Dev mode is for trying things: a one-minute idle stop is allowed.
        idle_timeout_min_minutes: 1,
        // Dev mode builds only this machine's agent; the local VMs run it.
        arm_servers: false,
        idle_timeout_max_minutes: 480,
        unreachable_timeout_minutes: 120,
        unreachable_timeout_seconds: options.unreachable_seconds,
        heartbeat_timeout_seconds: options.heartbeat_timeout_seconds,
        provision_timeout_seconds: options.provision_timeout_seconds,
        idle_warning_seconds: options.idle_warning_seconds,
        orphan_grace_seconds: options.orphan_grace_seconds,
        edge_client_ca_file: certificates.as_ref().map(|(_, origin_pull)| origin_pull.path().to_path_buf()),
        trust_forwarded_for: false,
        client_ip_header: None,
        reconcile_interval_seconds: options.reconcile_interval_seconds.max(1),
        metrics_addr: None,
        metrics_token_file: Some(write_secret(&secrets, "metrics-token", &uuid::Uuid::new_v4().simple().to_string())?),
    };
    let metrics = crate::metrics::install().context("installing the metrics recorder")?;
    let deployment = deployment::build(&config).await.map_err(|p| anyhow::anyhow!("dev configuration:\n{p}"))?;

    // Local "VMs" and the route to their terminals.
    let terminals =
        containers::detect(options.containers, &options.docker, options.devcontainer_cli.as_deref()).await?;
    let runtime = match &terminals {
        containers::Detected::Containers(runtime) => {
            tracing::info!(runtime = %runtime.description, cli = %runtime.devcontainer_cli.display(), "terminals run in devcontainers");
            Some(runtime.clone())
        }
        containers::Detected::Host(reason) => {
            tracing::info!(%reason, "terminals run on the host");
            None
        }
    };
    let routes = proxy::Routes::default();
    // Agents heartbeat often enough to see a short idle threshold through.
    // (And often enough for a shortened heartbeat timeout.)
    let heartbeat = options.idle_seconds.map_or(60, |s| (s / 4).clamp(1, 60));
    let heartbeat = options.heartbeat_timeout_seconds.map_or(heartbeat, |s| heartbeat.min((s / 3).max(1)));
    let heartbeat = options.heartbeat_seconds.map_or(heartbeat, |s| s.max(1));
    let vms = Arc::new(vm::LocalVms::new(
        data.join("vms"),
        routes.clone(),
        options.workspace_port,
        heartbeat,
        certificates.as_ref().map(|(browser, _)| vm::VmTls { ca_file: browser.path().to_path_buf() }),
        runtime,
        tokio::runtime::Handle::current(),
    ));
    match (&in_process, &options.emulators) {
        _ if options.vms == VmMode::None => {
            tracing::info!("--vms none: servers boot only where something else boots them");
        }
        (Some(emulators), _) => emulators.hetzner.set_hook(vms.clone()),
        (None, Some(control)) => {
            tokio::spawn(world::watch_servers(control.clone(), vms.clone()));
        }
        (None, None) => {}
    }
    // Handed-over sockets: the API first, then the workspace port.
    let proxy_listener = sockets
        .tcp(1, &format!("127.0.0.1:{}", options.workspace_port))
        .await
        .with_context(|| format!("the workspace port {}", options.workspace_port))?;
    // The emulators' control API, on loopback only (a running service has
    // its own).
    let control_url = match (&in_process, &options.emulators) {
        (Some(emulators), _) => {
            let control = tokio::net::TcpListener::bind(("127.0.0.1", options.control_port))
                .await
                .with_context(|| format!("the emulator control port {}", options.control_port))?;
            let url = format!("http://{}", control.local_addr()?);
            let control_app = sam_providers::emulators::control::router(emulators.clone());
            tokio::spawn(async move {
                if let Err(error) = axum::serve(control, control_app).await {
                    tracing::warn!(%error, "the emulator control API stopped");
                }
            });
            url
        }
        (None, control) => control.clone().unwrap_or_default(),
    };

    let listener = match certificates {
        None => {
            tokio::spawn(proxy::serve(proxy_listener, routes));
            sockets.tcp(0, &config.listen).await?
        }
        Some((browser, origin_pull)) => {
            let emulators = in_process.as_ref().context("--tls needs the emulators in this process")?;
            // Published, as Cloudflare publishes its Origin CA roots.
            std::fs::write(tls_dir.join("origin-ca.pem"), emulators.cloudflare.origin_ca_pem())?;
            let client = origin_pull.client_certificate("SAM dev edge (origin pull)")?;
            let edge =
                Arc::new(edge::LocalEdge::new(browser, "localhost", client, emulators.cloudflare.clone(), routes)?);
            let public = sockets
                .tcp(0, &format!("127.0.0.1:{}", options.port))
                .await
                .with_context(|| format!("the port {}", options.port))?;
            let internal = tokio::net::TcpListener::bind(&config.listen).await.context("the control plane's port")?;
            tokio::spawn(edge.clone().serve_control_plane(public, internal.local_addr()?));
            tokio::spawn(edge.serve_workspaces(proxy_listener));
            internal
        }
    };
    let engine = deployment.engine.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reconciler = tokio::spawn(async move {
        let mut stop = stop_rx;
        engine
            .run_reconciler(Duration::from_secs(config.reconcile_interval_seconds), async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await;
    });
    let metrics_token_file = config.metrics_token_file.clone().unwrap_or_default();
    let metrics_token = crate::ops::read_secret_file(&metrics_token_file)?;
    let mut app = crate::api::router(deployment.state).merge(crate::metrics::router_with_token(metrics, metrics_token));
    if let Some(emulators) = &in_process {
        app = app.merge(faults_router(emulators));
    }

    println!();
    println!("  SAM is running (dev mode)");
    println!("  Open            {public_url}");
    if options.tls {
        println!(
            "  Trust           {} (the local CA of the edge's certificates)",
            tls_dir.join("local-ca.pem").display()
        );
    }
    println!(
        "  Sign in as      octocat (emulated GitHub: click \"Sign in\"); also {ORG_MEMBER} (an {DEMO_OWNER} member)"
    );
    println!("                  and {OUTSIDER} (no installation)");
    println!("  Hetzner token   {}", world_info.hetzner_token);
    println!("  Other tokens    {HETZNER_SECOND_PROJECT} (a second project), {HETZNER_READ_ONLY} (read-only),");
    println!("                  anything else (invalid)");
    println!("  Repositories    {}", repositories.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "));
    match &terminals {
        containers::Detected::Containers(runtime) => {
            let image = options.devcontainer_image.as_deref().unwrap_or("the agent's default image");
            println!(
                "  Terminals       in devcontainers ({}; without a devcontainer.json: {image})",
                runtime.description
            );
        }
        containers::Detected::Host(reason) => {
            println!("  Terminals       on the host: {reason}");
        }
    }
    println!("  Metrics         {public_url}/metrics (Authorization: Bearer <{}>)", metrics_token_file.display());
    println!("  Hetzner API     {}", world_info.hetzner_url);
    println!("  Cloudflare API  {}", world_info.cloudflare_url);
    println!("  GitHub          {}", world_info.github_url);
    println!("  Emulator control {control_url} (state, faults, latency; see GET /)");
    println!("  Data            {}", data.display());
    println!("  Ctrl-C stops the server and every workspace agent.");
    println!();

    crate::serve_until_shutdown(listener, app).await.context("serving")?;
    let _ = stop_tx.send(true);
    let _ = reconciler.await;
    vms.shutdown().await;
    drop(in_process);
    Ok(())
}
