//! GitHub App webhooks: `X-Hub-Signature-256` checked in constant time,
//! deliveries de-duplicated by `X-GitHub-Delivery` through a [`DeliveryLog`]
//! (checked before a delivery is applied, recorded after), and
//! `installation` / `installation_repositories` events parsed into
//! [`WebhookEvent`]. Apart from the API client (feature `github-webhooks`,
//! which `github` includes; re-exported from `github`), so that what parses
//! untrusted bodies builds and is fuzzed without an HTTP stack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sam_core::domain::{GithubUserId, InstallationId, RepoFullName};
/// The headers of a delivery that matter (the port's type).
pub use sam_core::ports::WebhookHeaders;
use sam_core::ports::{
    InstallationChange, InstallationInfo, ProviderError, ProviderErrorKind, WebhookDelivery, WebhookRejection,
    WebhookSource,
};
use sam_core::secret::SecretString;
use serde::Deserialize;
use sha2::Sha256;

#[derive(Deserialize)]
pub(crate) struct GhAccount {
    login: String,
    id: i64,
    #[serde(rename = "type", default)]
    account_type: String,
}

#[derive(Deserialize)]
pub(crate) struct GhInstallation {
    id: i64,
    account: GhAccount,
    #[serde(default)]
    suspended_at: Option<String>,
}

impl GhInstallation {
    pub(crate) fn into_info(self) -> InstallationInfo {
        InstallationInfo {
            id: InstallationId(self.id),
            account_login: self.account.login,
            account_type: self.account.account_type,
            account_id: GithubUserId(self.account.id),
            suspended: self.suspended_at.is_some(),
        }
    }
}

/// Remembers webhook delivery ids, so a redelivered (or replayed) delivery is
/// handled once. Implement it over the store to de-duplicate across replicas.
#[async_trait]
pub trait DeliveryLog: Send + Sync + std::fmt::Debug {
    /// Whether `delivery_id` was handled before (and not yet forgotten).
    async fn handled_before(&self, delivery_id: &str) -> Result<bool, ProviderError>;
    /// Records `delivery_id` as handled: called once its effects are applied,
    /// so a crash before leaves the delivery to be applied again, not lost.
    /// `false` when another handler (a replica given the same delivery at
    /// once) recorded it first.
    async fn mark_handled(&self, delivery_id: &str) -> Result<bool, ProviderError>;
}

/// An in-memory [`DeliveryLog`] that forgets ids after a TTL and holds at
/// most `capacity` ids (the oldest go first).
#[derive(Debug)]
pub struct InMemoryDeliveryLog {
    ttl: Duration,
    capacity: usize,
    seen: Mutex<HashMap<String, Instant>>,
}

impl InMemoryDeliveryLog {
    /// A log keeping ids for `ttl`, at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), seen: Mutex::new(HashMap::new()) }
    }
}

impl Default for InMemoryDeliveryLog {
    /// 24 hours, 100 000 ids.
    fn default() -> Self {
        Self::new(Duration::from_secs(24 * 3600), 100_000)
    }
}

#[async_trait]
impl DeliveryLog for InMemoryDeliveryLog {
    async fn handled_before(&self, delivery_id: &str) -> Result<bool, ProviderError> {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(seen.get(delivery_id).is_some_and(|at| at.elapsed() < self.ttl))
    }

    async fn mark_handled(&self, delivery_id: &str) -> Result<bool, ProviderError> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < self.ttl);
        if seen.contains_key(delivery_id) {
            return Ok(false);
        }
        if seen.len() >= self.capacity
            && let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(id, _)| id.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(delivery_id.to_owned(), now);
        Ok(true)
    }
}

/// A [`DeliveryLog`] kept in the [`Store`](sam_core::ports::Store), so every
/// replica de-duplicates against the same ids. Ids are kept for `retention`
/// (GitHub lets an operator redeliver for a few days; the default is 7 days).
#[derive(Debug, Clone)]
pub struct StoreDeliveryLog {
    store: Arc<dyn sam_core::ports::Store>,
    clock: Arc<dyn sam_core::ports::Clock>,
    retention: Duration,
}

impl StoreDeliveryLog {
    /// The default retention: longer than GitHub's redelivery window.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

    /// A log over `store`, timed by `clock`, keeping ids for `retention`.
    pub fn new(
        store: Arc<dyn sam_core::ports::Store>,
        clock: Arc<dyn sam_core::ports::Clock>,
        retention: Duration,
    ) -> Self {
        Self { store, clock, retention }
    }
}

#[async_trait]
impl DeliveryLog for StoreDeliveryLog {
    async fn handled_before(&self, delivery_id: &str) -> Result<bool, ProviderError> {
        let now = self.clock.now();
        self.store
            .webhook_delivery_seen(delivery_id, now - self.retention)
            .await
            .map_err(|e| ProviderError::new(ProviderErrorKind::Transient, format!("webhook delivery log: {e}")))
    }

    async fn mark_handled(&self, delivery_id: &str) -> Result<bool, ProviderError> {
        let now = self.clock.now();
        self.store
            .record_webhook_delivery(delivery_id, now, now - self.retention)
            .await
            .map_err(|e| ProviderError::new(ProviderErrorKind::Transient, format!("webhook delivery log: {e}")))
    }
}

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256")]
    MissingSignature,
    /// The header is not `sha256=<64 hex digits>`.
    #[error("malformed X-Hub-Signature-256")]
    MalformedSignature,
    /// The signature does not match the body.
    #[error("webhook signature does not match")]
    BadSignature,
    /// A required header (`X-GitHub-Event`, `X-GitHub-Delivery`) is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The body exceeds the size limit.
    #[error("webhook body too large")]
    TooLarge,
    /// The delivery id was handled before.
    #[error("duplicate delivery")]
    Duplicate,
    /// The body is not the JSON the event should carry.
    #[error("invalid webhook payload: {0}")]
    InvalidPayload(String),
    /// The delivery log failed.
    #[error("delivery log: {0}")]
    Log(#[source] ProviderError),
}

/// A webhook event SAM acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// `installation` `created`, with the repositories granted.
    InstallationCreated {
        /// The installation.
        installation: InstallationInfo,
        /// Repositories it grants.
        repositories: Vec<RepoFullName>,
    },
    /// `installation` `deleted`.
    InstallationDeleted {
        /// The installation.
        installation: InstallationInfo,
    },
    /// `installation` `suspend`.
    InstallationSuspended {
        /// The installation.
        installation: InstallationInfo,
    },
    /// `installation` `unsuspend`.
    InstallationUnsuspended {
        /// The installation.
        installation: InstallationInfo,
    },
    /// `installation_repositories` `added`.
    RepositoriesAdded {
        /// The installation.
        installation: InstallationId,
        /// Repositories added.
        repositories: Vec<RepoFullName>,
    },
    /// `installation_repositories` `removed`.
    RepositoriesRemoved {
        /// The installation.
        installation: InstallationId,
        /// Repositories removed.
        repositories: Vec<RepoFullName>,
    },
    /// `ping` (sent when the hook is set up).
    Ping,
    /// Any other event or action: verified, but nothing to do.
    Ignored {
        /// `X-GitHub-Event`.
        event: String,
        /// The payload's `action`, if any.
        action: Option<String>,
    },
}

/// A verified, first-seen delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// What happened.
    pub event: WebhookEvent,
}

/// Verifies and parses webhook deliveries.
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secret: SecretString,
    log: Arc<dyn DeliveryLog>,
    max_body_bytes: usize,
}

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) against the HMAC-SHA256 of
/// `body` in constant time.
pub fn verify_signature(secret: &SecretString, body: &[u8], header: Option<&str>) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?;
    let hex = header.trim().strip_prefix("sha256=").ok_or(WebhookError::MalformedSignature)?;
    if hex.len() != 64 {
        return Err(WebhookError::MalformedSignature);
    }
    let mut expected = [0u8; 32];
    for (i, byte) in expected.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or(WebhookError::MalformedSignature)?, 16)
            .map_err(|_| WebhookError::MalformedSignature)?;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| WebhookError::BadSignature)
}

#[derive(Deserialize)]
struct HookRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct HookPayload {
    action: Option<String>,
    installation: Option<GhInstallation>,
    #[serde(default)]
    repositories: Vec<HookRepo>,
    #[serde(default)]
    repositories_added: Vec<HookRepo>,
    #[serde(default)]
    repositories_removed: Vec<HookRepo>,
}

fn repos(list: Vec<HookRepo>) -> Vec<RepoFullName> {
    list.into_iter().filter_map(|r| RepoFullName::new(r.full_name).ok()).collect()
}

impl WebhookVerifier {
    /// A verifier for the app's webhook secret, de-duplicating through `log`;
    /// bodies are limited to 1 MiB.
    pub fn new(secret: SecretString, log: Arc<dyn DeliveryLog>) -> Self {
        Self { secret, log, max_body_bytes: 1024 * 1024 }
    }

    /// Sets the body size limit.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Verifies the signature, parses the event, and checks the delivery id
    /// (one handled before is [`WebhookError::Duplicate`]). Nothing is
    /// recorded: call [`handled`](Self::handled) once the delivery's effects
    /// are applied.
    pub async fn verify(&self, headers: WebhookHeaders<'_>, body: &[u8]) -> Result<VerifiedDelivery, WebhookError> {
        if body.len() > self.max_body_bytes {
            return Err(WebhookError::TooLarge);
        }
        verify_signature(&self.secret, body, headers.signature)?;
        let event = headers.event.filter(|e| !e.is_empty()).ok_or(WebhookError::MissingHeader("X-GitHub-Event"))?;
        let delivery =
            headers.delivery.filter(|d| !d.is_empty()).ok_or(WebhookError::MissingHeader("X-GitHub-Delivery"))?;
        let parsed = parse_event(event, body)?;
        if self.log.handled_before(delivery).await.map_err(WebhookError::Log)? {
            return Err(WebhookError::Duplicate);
        }
        Ok(VerifiedDelivery { delivery_id: delivery.to_owned(), event: parsed })
    }

    /// Records a verified delivery as handled: later ones with its id are
    /// duplicates. `false` when a concurrent handler recorded it first.
    pub async fn handled(&self, delivery_id: &str) -> Result<bool, WebhookError> {
        self.log.mark_handled(delivery_id).await.map_err(WebhookError::Log)
    }
}

/// Parses a verified body of event `event`.
pub fn parse_event(event: &str, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    if event == "ping" {
        return Ok(WebhookEvent::Ping);
    }
    if event != "installation" && event != "installation_repositories" {
        let action = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_owned));
        return Ok(WebhookEvent::Ignored { event: event.to_owned(), action });
    }
    let payload: HookPayload = serde_json::from_slice(body).map_err(|e| WebhookError::InvalidPayload(e.to_string()))?;
    let installation =
        payload.installation.ok_or_else(|| WebhookError::InvalidPayload("no installation".into()))?.into_info();
    let action = payload.action.unwrap_or_default();
    Ok(match (event, action.as_str()) {
        ("installation", "created") => {
            WebhookEvent::InstallationCreated { installation, repositories: repos(payload.repositories) }
        }
        ("installation", "deleted") => WebhookEvent::InstallationDeleted { installation },
        ("installation", "suspend") => WebhookEvent::InstallationSuspended { installation },
        ("installation", "unsuspend") => WebhookEvent::InstallationUnsuspended { installation },
        ("installation_repositories", "added") => WebhookEvent::RepositoriesAdded {
            installation: installation.id,
            repositories: repos(payload.repositories_added),
        },
        ("installation_repositories", "removed") => WebhookEvent::RepositoriesRemoved {
            installation: installation.id,
            repositories: repos(payload.repositories_removed),
        },
        _ => WebhookEvent::Ignored { event: event.to_owned(), action: Some(action) },
    })
}

#[async_trait]
impl WebhookSource for WebhookVerifier {
    async fn handled(&self, delivery_id: &str) -> Result<bool, WebhookRejection> {
        WebhookVerifier::handled(self, delivery_id).await.map_err(|e| WebhookRejection::Unavailable(e.to_string()))
    }

    async fn receive(&self, headers: WebhookHeaders<'_>, body: &[u8]) -> Result<WebhookDelivery, WebhookRejection> {
        let verified = self.verify(headers, body).await.map_err(|e| match e {
            WebhookError::MissingSignature | WebhookError::MalformedSignature | WebhookError::BadSignature => {
                WebhookRejection::Unauthenticated(e.to_string())
            }
            WebhookError::TooLarge => WebhookRejection::TooLarge,
            WebhookError::Duplicate => WebhookRejection::Duplicate,
            WebhookError::Log(_) => WebhookRejection::Unavailable(e.to_string()),
            WebhookError::MissingHeader(_) | WebhookError::InvalidPayload(_) => {
                WebhookRejection::Invalid(e.to_string())
            }
        })?;
        let change = match verified.event {
            WebhookEvent::InstallationCreated { installation, .. } => Some((installation, InstallationChange::Created)),
            WebhookEvent::InstallationUnsuspended { installation } => {
                Some((installation, InstallationChange::Unsuspended))
            }
            WebhookEvent::InstallationSuspended { installation } => Some((installation, InstallationChange::Suspended)),
            WebhookEvent::InstallationDeleted { installation } => Some((installation, InstallationChange::Deleted)),
            WebhookEvent::RepositoriesAdded { .. }
            | WebhookEvent::RepositoriesRemoved { .. }
            | WebhookEvent::Ping
            | WebhookEvent::Ignored { .. } => None,
        };
        Ok(WebhookDelivery {
            delivery_id: verified.delivery_id,
            event: headers.event.unwrap_or_default().to_owned(),
            change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let secret = SecretString::new("It's a Secret to Everybody");
        // The example from GitHub's documentation on validating deliveries.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        verify_signature(&secret, b"Hello, World!", Some(header)).unwrap();
        assert!(matches!(verify_signature(&secret, b"Hello, World?", Some(header)), Err(WebhookError::BadSignature)));
        assert!(matches!(verify_signature(&secret, b"x", None), Err(WebhookError::MissingSignature)));
        assert!(matches!(verify_signature(&secret, b"x", Some("sha1=00")), Err(WebhookError::MalformedSignature)));
        assert!(matches!(
            verify_signature(
                &secret,
                b"x",
                Some("sha256=zz57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
            ),
            Err(WebhookError::MalformedSignature)
        ));
    }
}
