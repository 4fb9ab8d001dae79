//! The world outside SAM in dev mode: the emulated GitHub, Hetzner and
//! Cloudflare, either started in this process (the default) or a running
//! `sam-server emulators` reached through its control API
//! (`dev --emulators <control URL>`). With a running service the emulated
//! cloud outlives this process: kill dev mode, start it again, and the
//! servers, records and installations are still there — the VMs of the
//! servers that exist are booted again, and their agents resume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sam_providers::emulators::{
    CloudflareEmulatorConfig, EmulatedServer, EmulatedUser, GithubEmulatorConfig, HetznerEmulatorConfig, ServerHook,
};
use serde_json::{Value, json};

/// Test identities besides octocat: a member of the demo organization (who
/// sees its installation, with read access only) and someone without any
/// installation.
pub(super) const ORG_MEMBER: &str = "mona-member";
const ORG_MEMBER_ID: i64 = 7_001;
pub(super) const OUTSIDER: &str = "hubot-outsider";
/// A second Hetzner project's token, and a read-only token of the first.
pub(super) const HETZNER_SECOND_PROJECT: &str = "hetzner-emulator-token-project-b";
pub(super) const HETZNER_READ_ONLY: &str = "hetzner-emulator-token-read-only";
/// Owner and repositories the emulated GitHub App is installed on.
pub(super) const DEMO_OWNER: &str = "octo-org";
pub(super) const DEMO_REPOSITORIES: [&str; 2] = ["hello-world", "api-service"];
/// What installing the app from the emulated install page grants (on the
/// signed-in user's own account).
pub(super) const INSTALL_REPOSITORIES: [&str; 2] = ["octocat/dotfiles", "octocat/website"];

/// The emulators' configurations for dev mode: the zone `localhost` (whose
/// names resolve to loopback), every server at 127.0.0.1, the test
/// identities, the repositories as git repositories under `git_root`. Behind the TLS edge the zone is set up as
/// `setup --configure-zone` leaves a real one, and the edge's ranges are
/// loopback.
pub fn configs(
    tls: bool,
    git_root: &std::path::Path,
) -> (HetznerEmulatorConfig, CloudflareEmulatorConfig, GithubEmulatorConfig) {
    let hetzner = HetznerEmulatorConfig {
        fixed_ipv4: Some([127, 0, 0, 1].into()),
        other_projects: vec![vec![HETZNER_SECOND_PROJECT.into()]],
        readonly_tokens: vec![HETZNER_READ_ONLY.into()],
        ..HetznerEmulatorConfig::default()
    };
    let mut cloudflare =
        CloudflareEmulatorConfig { zone_name: "localhost".into(), ..CloudflareEmulatorConfig::default() };
    if tls {
        for (id, value) in crate::ops::edge::REQUIRED.iter().map(|r| (r.id, r.wanted)) {
            cloudflare.zone_settings.retain(|(k, _)| k != id);
            cloudflare.zone_settings.push((id.to_owned(), value.to_owned()));
        }
        cloudflare.edge_ipv4 = vec!["127.0.0.1/32".into()];
        cloudflare.edge_ipv6 = vec!["::1/128".into()];
    }
    let github = GithubEmulatorConfig {
        other_users: vec![
            EmulatedUser { id: ORG_MEMBER_ID, login: ORG_MEMBER.into(), name: Some("Mona Member".into()), email: None },
            EmulatedUser { id: 7_002, login: OUTSIDER.into(), name: Some("Hubot Outsider".into()), email: None },
        ],
        install_repositories: install_repositories(),
        // The repositories as real git repositories, cloned and pushed to
        // over smart HTTP with the tokens the emulator issues.
        git_root: Some(git_root.to_owned()),
        ..GithubEmulatorConfig::default()
    };
    (hetzner, cloudflare, github)
}

fn install_repositories() -> Vec<(String, Vec<String>)> {
    INSTALL_REPOSITORIES.iter().map(|r| ((*r).to_owned(), vec!["main".to_owned()])).collect()
}

/// The demo organization's repositories (full names, branches).
pub(super) fn demo_repositories() -> Vec<(String, Vec<String>)> {
    DEMO_REPOSITORIES.iter().map(|r| (format!("{DEMO_OWNER}/{r}"), vec!["main".to_owned()])).collect()
}

/// Where the world's services are and how to authenticate.
#[derive(Debug, Clone)]
pub(super) struct WorldInfo {
    pub hetzner_url: String,
    pub hetzner_token: String,
    pub cloudflare_url: String,
    pub cloudflare_token: String,
    pub zone_id: String,
    pub github_url: String,
}

impl WorldInfo {
    /// The services of in-process emulators.
    pub fn of(emulators: &sam_providers::emulators::Emulators) -> Self {
        Self {
            hetzner_url: emulators.hetzner.base_url().to_owned(),
            hetzner_token: emulators.hetzner.token(),
            cloudflare_url: emulators.cloudflare.base_url().to_owned(),
            cloudflare_token: emulators.cloudflare.token(),
            zone_id: emulators.cloudflare.zone_id(),
            github_url: emulators.github.base_url().to_owned(),
        }
    }

    /// The services of a running `sam-server emulators`, from its control
    /// API; its zone must be `localhost` (the default of the service).
    pub async fn remote(control: &str) -> anyhow::Result<Self> {
        let index: Value = reqwest::get(control)
            .await
            .with_context(|| format!("the emulator control API at {control}"))?
            .error_for_status()?
            .json()
            .await?;
        let text = |pointer: &str| {
            index.pointer(pointer).and_then(Value::as_str).map(str::to_owned).with_context(|| {
                format!("{control} is not an emulator control API (no {pointer}); start it with sam-server emulators")
            })
        };
        let zone = text("/services/cloudflare/zone")?;
        anyhow::ensure!(zone == "localhost", "the emulators' zone is {zone}: dev mode needs localhost");
        Ok(Self {
            hetzner_url: text("/services/hetzner/base_url")?,
            hetzner_token: text("/services/hetzner/token")?,
            cloudflare_url: text("/services/cloudflare/base_url")?,
            cloudflare_token: text("/services/cloudflare/token")?,
            zone_id: text("/services/cloudflare/zone_id")?,
            github_url: text("/services/github/base_url")?,
        })
    }
}

/// Points a running service's GitHub App at this control plane and installs
/// it on the demo organization (again: a replaced installation is the same).
pub(super) async fn prepare_remote(control: &str, public_url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let install: serde_json::Map<String, Value> =
        install_repositories().into_iter().map(|(name, branches)| (name, json!(branches))).collect();
    http.put(format!("{control}/github/app"))
        .json(&json!({"webhook_url": format!("{public_url}/api/github/webhook"),
                      "setup_url": format!("{public_url}/settings"), "install_repositories": install}))
        .send()
        .await?
        .error_for_status()
        .context("configuring the emulated GitHub App")?;
    let repositories: serde_json::Map<String, Value> =
        demo_repositories().into_iter().map(|(name, branches)| (name, json!(branches))).collect();
    http.post(format!("{control}/github/installations"))
        .json(&json!({"id": 1, "account": DEMO_OWNER, "repositories": repositories, "visible_to": [ORG_MEMBER_ID],
                      "roles": {ORG_MEMBER_ID.to_string(): "read"}}))
        .send()
        .await?
        .error_for_status()
        .context("installing the emulated GitHub App")?;
    Ok(())
}

/// Installs the demo organization's installation in in-process emulators.
pub(super) fn prepare_in_process(emulators: &sam_providers::emulators::Emulators, public_url: &str) {
    emulators.github.configure(|c| {
        c.webhook_url = Some(format!("{public_url}/api/github/webhook"));
        c.setup_url = Some(format!("{public_url}/settings"));
    });
    let repositories = demo_repositories();
    let refs: Vec<(&str, Vec<&str>)> =
        repositories.iter().map(|(n, b)| (n.as_str(), b.iter().map(String::as_str).collect())).collect();
    let refs: Vec<(&str, &[&str])> = refs.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    emulators.github.add_installation(1, DEMO_OWNER, &refs);
    emulators.github.share_installation(1, ORG_MEMBER_ID);
    emulators.github.set_role(1, ORG_MEMBER_ID, "read");
}

/// Plays a running service's server changes to `hook` (the local VMs), as
/// the in-process emulator's hook would: every half second the servers are
/// listed; new ones are created (the ones that exist when dev mode starts
/// too: their VMs boot again), gone ones deleted, power changes passed on.
/// A reboot that happens between two looks is not seen.
pub(super) async fn watch_servers(control: String, hook: Arc<dyn ServerHook>) {
    let http = reqwest::Client::new();
    let mut known: HashMap<u64, EmulatedServer> = HashMap::new();
    let on = |status: &str| !matches!(status, "off" | "stopping" | "deleting");
    loop {
        let listed = async {
            http.get(format!("{control}/hetzner/servers"))
                .send()
                .await?
                .error_for_status()?
                .json::<Vec<EmulatedServer>>()
                .await
        };
        match listed.await {
            Ok(servers) => {
                let seen: HashMap<u64, EmulatedServer> = servers.into_iter().map(|s| (s.id, s)).collect();
                for (id, server) in &seen {
                    match known.get(id) {
                        None => hook.server_created(server),
                        Some(before) if on(&before.status) != on(&server.status) => {
                            hook.server_powered(server, on(&server.status));
                        }
                        Some(_) => {}
                    }
                }
                for (id, server) in &known {
                    if !seen.contains_key(id) {
                        hook.server_deleted(server);
                    }
                }
                known = seen;
            }
            Err(error) => tracing::warn!(%error, "listing the emulated servers failed; trying again"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
