//! Turns provider failures into messages a user can act on. Raw upstream bodies
//! never reach the user; the provider error's own message is already sanitised
//! by the adapter and is only used where it names the problem.

use crate::domain::Timestamp;
use crate::ports::{ProviderError, ProviderErrorKind, ServerStatus};

/// Where a failure happened, to make the message specific.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement<'a> {
    pub size: &'a str,
    pub location: &'a str,
}

/// A message for a compute-provider failure.
pub(crate) fn provider_failure(e: &ProviderError, placement: Option<Placement<'_>>) -> String {
    match e.kind() {
        ProviderErrorKind::Unauthorized => {
            "Hetzner rejected the token: it was revoked or is read-only. Update it in Settings.".into()
        }
        ProviderErrorKind::QuotaExceeded => "Your Hetzner project reached its server or resource limit. Delete unused \
                                             servers or ask Hetzner to raise the limit."
            .into(),
        ProviderErrorKind::Capacity => match placement {
            Some(p) => {
                format!("Hetzner has no capacity for a {} server in {}; try another location.", p.size, p.location)
            }
            None => "Hetzner has no capacity for this server right now; try another location.".into(),
        },
        ProviderErrorKind::InvalidConfig => {
            "Hetzner refused the request as invalid (the server type, image or location may no longer be offered); \
             the operator has the details in the log."
                .into()
        }
        ProviderErrorKind::NotFound => "Hetzner could not find a resource the workspace needs.".into(),
        ProviderErrorKind::RateLimited { .. } => {
            "Hetzner is rate-limiting this account; SAM will retry. If this persists, wait a few minutes.".into()
        }
        ProviderErrorKind::Transient => "Hetzner is not responding; SAM will retry.".into(),
        _ => format!("The cloud provider failed ({}).", e.kind().code()),
    }
}

/// A message for a failure to set up the workspace firewall.
pub(crate) fn firewall_failure(e: &ProviderError) -> String {
    match e.kind() {
        ProviderErrorKind::Unauthorized | ProviderErrorKind::QuotaExceeded => provider_failure(e, None),
        _ => format!(
            "The firewall for workspace servers could not be set up in your Hetzner project ({}).",
            e.kind().code()
        ),
    }
}

/// A message for a DNS failure.
pub(crate) fn dns_failure(e: &ProviderError) -> String {
    match e.kind() {
        ProviderErrorKind::Unauthorized => {
            "The DNS provider rejected SAM's credential; the operator must check the Cloudflare token.".into()
        }
        _ => format!("The workspace's DNS record could not be set ({}); the operator has been told.", e.kind().code()),
    }
}

/// A message for a certificate the Origin CA did not issue.
pub(crate) fn origin_ca_failure(e: &ProviderError, hostname: &str) -> String {
    let what = format!("Cloudflare's Origin CA did not issue the certificate for {hostname}, which the terminal needs");
    match e.kind() {
        ProviderErrorKind::Unauthorized => format!(
            "{what}: the operator must give the Cloudflare token \"SSL and Certificates: Edit\" on the zone. \
             Restart the workspace afterwards."
        ),
        ProviderErrorKind::InvalidConfig => format!(
            "{what}: it refused the request. The operator must check that the base domain is in the \
             Cloudflare zone (sam-server doctor). Restart the workspace afterwards."
        ),
        ProviderErrorKind::RateLimited { .. } | ProviderErrorKind::Transient => {
            format!("{what}: it kept failing ({}). Restart the workspace to try again.", e.kind().code())
        }
        _ => format!("{what} ({}). Restart the workspace to try again.", e.kind().code()),
    }
}

pub(crate) const NO_CREDENTIAL: &str = "Connect your Hetzner token in Settings before creating a workspace.";
pub(crate) const CREDENTIAL_UNREADABLE: &str =
    "Your stored Hetzner token can no longer be read (the server's keys changed). Add it again in Settings.";

/// A time as the user reads it in a message: UTC, to the minute.
fn minute(t: Timestamp) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// What a user sees on a running workspace whose agent went silent.
pub(crate) fn agent_silent(last_heard: Timestamp, url: &str, server: ServerStatus, release_at: Timestamp) -> String {
    let server = match server {
        ServerStatus::Running => "running",
        ServerStatus::Starting => "starting",
        ServerStatus::Stopping => "powering off",
        ServerStatus::Off => "powered off",
        ServerStatus::Deleting => "being deleted",
        ServerStatus::Unknown => "in an unknown state",
    };
    format!(
        "Nothing heard from the agent since {} and it does not answer at {url}; the server is {server}. Kept \
         until {} unless the agent comes back; stop or delete the workspace to release it now.",
        minute(last_heard),
        minute(release_at),
    )
}

/// What a user sees on a workspace whose DNS record cannot be deleted.
pub(crate) fn cleanup_blocked(name: &str, e: &ProviderError) -> String {
    format!(
        "The DNS record {name} cannot be deleted ({}); the server is kept, so that its address is never freed \
         while the name points at it. Both are retried.",
        e.kind().code()
    )
}
