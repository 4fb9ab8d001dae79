use async_trait::async_trait;

use super::InstallationInfo;

/// A change to an installation of the GitHub App, as its webhook announces it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InstallationChange {
    /// Installed on an account.
    Created,
    /// Suspended by the account: no new workspaces.
    Suspended,
    /// Suspension lifted.
    Unsuspended,
    /// Uninstalled: no new workspaces; running ones keep working.
    Deleted,
}

/// The headers of a delivery that a source checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookHeaders<'a> {
    /// The event name (GitHub: `X-GitHub-Event`).
    pub event: Option<&'a str>,
    /// The delivery id (GitHub: `X-GitHub-Delivery`).
    pub delivery: Option<&'a str>,
    /// The signature of the body (GitHub: `X-Hub-Signature-256`).
    pub signature: Option<&'a str>,
}

/// A verified delivery seen for the first time, and what it means to SAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The delivery id.
    pub delivery_id: String,
    /// The event name, for logs.
    pub event: String,
    /// The installation change it announces, if any (most events change
    /// nothing SAM keeps).
    pub change: Option<(InstallationInfo, InstallationChange)>,
}

/// Why a delivery was not taken.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRejection {
    /// The signature is missing, malformed or wrong: not from the sender.
    #[error("{0}")]
    Unauthenticated(String),
    /// The body exceeds the size limit.
    #[error("webhook body too large")]
    TooLarge,
    /// The delivery id was handled before (a redelivery or a replay).
    #[error("duplicate delivery")]
    Duplicate,
    /// Authentic, but not a payload the source understands.
    #[error("{0}")]
    Invalid(String),
    /// The log of handled deliveries is unavailable; the sender should retry.
    #[error("{0}")]
    Unavailable(String),
}

/// Where installation events come from: verifies a delivery (signature,
/// size, first time seen) and says what it means. The GitHub App's webhook
/// is `sam_providers::github::WebhookVerifier`.
#[async_trait]
pub trait WebhookSource: Send + Sync + std::fmt::Debug {
    /// Verifies `body` with its `headers`; a delivery marked
    /// [`handled`](Self::handled) before is a duplicate.
    async fn receive(&self, headers: WebhookHeaders<'_>, body: &[u8]) -> Result<WebhookDelivery, WebhookRejection>;

    /// Marks a delivery handled, after its effects were applied: a crash
    /// between the two leaves it to be applied again (when the sender
    /// redelivers) instead of lost; later copies are duplicates. `false` when
    /// a concurrent handler of the same delivery recorded it first (both
    /// applied it: installation changes are idempotent).
    async fn handled(&self, delivery_id: &str) -> Result<bool, WebhookRejection>;
}
