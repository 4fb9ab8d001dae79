//! The zone's side of the browser → edge → agent path, for `setup` and
//! `doctor`: the settings the TLS path depends on, the edge certificate
//! covering the workspace names, and the token permissions both need.
//!
//! | setting | wanted | why |
//! |---|---|---|
//! | `ssl` | `strict` | Full (strict): the edge connects to agents over TLS and verifies their Origin CA certificate for the name |
//! | `always_use_https` | `on` | an `http://` link is redirected, never served in clear |
//! | `websockets` | `on` | the terminal is a WebSocket |
//! | `tls_client_auth` | `on` | Authenticated Origin Pulls: the edge presents the client certificate agents require |

use sam_core::domain::WorkspaceHosts;
use sam_core::ports::{ProviderError, ProviderErrorKind};
use sam_providers::cloudflare::{CloudflareZones, Zone, certificate_covers};

use super::doctor::Check;

/// A zone setting the TLS path needs.
#[derive(Debug, Clone, Copy)]
pub struct Required {
    /// The check's name in `doctor`.
    pub check: &'static str,
    /// Cloudflare's setting id.
    pub id: &'static str,
    /// The value it needs.
    pub wanted: &'static str,
    /// What the dashboard calls it (SSL/TLS → …).
    pub dashboard: &'static str,
}

/// Every setting the TLS path needs, in the order they are checked.
pub const REQUIRED: [Required; 4] = [
    Required {
        check: "ssl mode",
        id: "ssl",
        wanted: "strict",
        dashboard: "SSL/TLS → Overview → encryption mode Full (strict)",
    },
    Required {
        check: "https only",
        id: "always_use_https",
        wanted: "on",
        dashboard: "SSL/TLS → Edge Certificates → Always Use HTTPS on",
    },
    Required { check: "websockets", id: "websockets", wanted: "on", dashboard: "Network → WebSockets on" },
    Required {
        check: "origin pulls",
        id: "tls_client_auth",
        wanted: "on",
        dashboard: "SSL/TLS → Origin Server → Authenticated Origin Pulls on",
    },
];

/// The token permission a refused call needs.
const SETTINGS_PERMISSION: &str = "Zone → Zone Settings → Edit (Read is enough for doctor)";
const CERTIFICATES_PERMISSION: &str = "Zone → SSL and Certificates → Edit";

fn refused(e: &ProviderError) -> bool {
    e.kind() == ProviderErrorKind::Unauthorized
}

/// What a setting is now (`Err` with the check to print when it cannot be
/// read).
pub async fn current(api: &CloudflareZones, zone: &Zone, required: &Required) -> Result<String, Check> {
    match api.setting(&zone.id, required.id).await {
        Ok(setting) => Ok(setting.value_str().unwrap_or_default().to_owned()),
        Err(e) if refused(&e) => Err(Check::fail(
            required.check,
            format!("the token cannot read the zone setting {}: {e}", required.id),
            format!("give the Cloudflare token {SETTINGS_PERMISSION}"),
        )),
        Err(e) => Err(Check::fail(
            required.check,
            format!("zone setting {}: {e}", required.id),
            "check that the Cloudflare API is reachable, then run doctor again",
        )),
    }
}

/// The check of one setting's value.
pub fn setting_check(required: &Required, value: &str) -> Check {
    if value == required.wanted {
        return Check::ok(required.check, format!("{} is {value}", required.id));
    }
    let detail = match (required.id, value) {
        ("ssl", "off" | "flexible") => format!(
            "SSL mode is {value}: the edge would reach agents in clear text (or not at all: they serve TLS only)"
        ),
        ("ssl", "full") => "SSL mode is full: the edge would accept any certificate from an agent".to_owned(),
        _ => format!("{} is {value}, needs {}", required.id, required.wanted),
    };
    Check::fail(
        required.check,
        detail,
        format!("run sam-server setup --configure-zone, or set {} in the Cloudflare dashboard", required.dashboard),
    )
}

/// Reads every required setting: one check each.
pub async fn setting_checks(api: &CloudflareZones, zone: &Zone) -> Vec<Check> {
    let mut checks = Vec::new();
    for required in &REQUIRED {
        checks.push(match current(api, zone, required).await {
            Ok(value) => setting_check(required, &value),
            Err(check) => check,
        });
    }
    checks
}

/// Sets `required` to its wanted value.
pub async fn apply(api: &CloudflareZones, zone: &Zone, required: &Required) -> anyhow::Result<()> {
    match api.set_setting(&zone.id, required.id, required.wanted).await {
        Ok(_) => Ok(()),
        Err(e) if refused(&e) => {
            anyhow::bail!("the token cannot change {}: give it {SETTINGS_PERMISSION}", required.id)
        }
        Err(e) => anyhow::bail!("setting {} to {}: {e}", required.id, required.wanted),
    }
}

/// Whether the zone's active edge certificates cover the workspace names
/// (checked with a sample name), and what to do when they do not.
pub async fn certificate_check(api: &CloudflareZones, zone: &Zone, hosts: &WorkspaceHosts) -> Check {
    const NAME: &str = "edge cert";
    let sample = hosts.host_for_label("ws-test");
    let packs = match api.certificate_packs(&zone.id).await {
        Ok(packs) => packs,
        Err(e) if refused(&e) => {
            return Check::fail(
                NAME,
                format!("the token cannot list the zone's edge certificates: {e}"),
                format!("give the Cloudflare token {CERTIFICATES_PERMISSION}"),
            );
        }
        Err(e) => return Check::fail(NAME, format!("listing edge certificates: {e}"), "run doctor again"),
    };
    let covering = packs.iter().find(|p| p.status == "active" && certificate_covers(&p.hosts, &sample));
    if let Some(pack) = covering {
        return Check::ok(
            NAME,
            format!("{sample} is covered by the {} certificate ({})", pack.kind, pack.hosts.join(", ")),
        );
    }
    let below = sample.split_once('.').map(|(_, rest)| rest);
    let mut fix =
        format!("order an advanced certificate for *.{} (SSL/TLS → Edge Certificates)", below.unwrap_or(&zone.name));
    let flat = sample.split_once('.').is_some_and(|(_, parent)| parent != zone.name)
        && hosts.naming() == sam_core::domain::HostNaming::Nested;
    if flat {
        fix.push_str(
            ", or set SAM_WORKSPACE_HOST_NAMING=flat (names ws-<id>--<env>.<zone>, which Universal SSL covers)",
        );
    }
    Check::fail(NAME, format!("no active edge certificate covers {sample}: browsers would refuse the workspaces"), fix)
}

/// Whether the token may use the Origin CA (agents' certificates): lists
/// the zone's origin certificates.
pub async fn origin_ca_check(api: &CloudflareZones, zone: &Zone) -> Check {
    match api.origin_certificate_count(&zone.id).await {
        Ok(n) => Check::ok("origin ca", format!("the token can use the Origin CA ({n} certificate(s) in the zone)")),
        Err(e) if refused(&e) => Check::fail(
            "origin ca",
            format!("the token cannot use the Origin CA: {e}"),
            format!("give the Cloudflare token {CERTIFICATES_PERMISSION}"),
        ),
        Err(e) => Check::fail("origin ca", format!("listing origin certificates: {e}"), "run doctor again"),
    }
}
