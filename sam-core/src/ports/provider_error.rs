use std::time::Duration;

/// What kind of failure an external service reported. Callers match on this,
/// never on messages; [`ProviderErrorKind::is_retryable`] drives the retry
/// policy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// The credential was rejected, revoked, or lacks a permission (e.g. a
    /// read-only Hetzner token).
    Unauthorized,
    /// The credential is valid but may not do this, and asking again with a
    /// renewed one will not change that (GitHub's 403: a permission the app
    /// lacks, an organization's policy). Adapters whose provider does not
    /// tell the two apart report [`ProviderErrorKind::Unauthorized`].
    Forbidden,
    /// An account limit was reached (server limit, resource limit).
    QuotaExceeded,
    /// Too many requests; wait `retry_after` when the service said how long.
    RateLimited {
        /// When the service allows the next request.
        retry_after: Option<Duration>,
    },
    /// The provider lacks capacity right now (Hetzner `resource_unavailable`,
    /// `placement_error`); retrying or another location may work.
    Capacity,
    /// A network error, timeout or 5xx.
    Transient,
    /// The request was invalid (unknown location, bad name, conflicting value);
    /// retrying the same request will fail the same way.
    InvalidConfig,
    /// Anything else.
    Other,
}

impl ProviderErrorKind {
    /// Whether the same request may succeed if tried again.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ProviderErrorKind::RateLimited { .. } | ProviderErrorKind::Capacity | ProviderErrorKind::Transient
        )
    }

    /// A short stable code for logs and metrics.
    pub const fn code(self) -> &'static str {
        match self {
            ProviderErrorKind::NotFound => "not_found",
            ProviderErrorKind::Unauthorized => "unauthorized",
            ProviderErrorKind::Forbidden => "forbidden",
            ProviderErrorKind::QuotaExceeded => "quota_exceeded",
            ProviderErrorKind::RateLimited { .. } => "rate_limited",
            ProviderErrorKind::Capacity => "capacity",
            ProviderErrorKind::Transient => "transient",
            ProviderErrorKind::InvalidConfig => "invalid_config",
            ProviderErrorKind::Other => "other",
        }
    }
}

/// An error from a [`ComputeProvider`](super::ComputeProvider),
/// [`DnsProvider`](super::DnsProvider), [`IdentityProvider`](super::IdentityProvider)
/// or [`RepoAccess`](super::RepoAccess). The message is safe to show and log: it
/// never contains a credential or a raw upstream body.
///
/// ```
/// use sam_core::ports::{ProviderError, ProviderErrorKind};
/// let e = ProviderError::new(ProviderErrorKind::Transient, "hetzner: 503 on POST /servers");
/// assert!(e.is_retryable());
/// assert!(!ProviderError::new(ProviderErrorKind::Unauthorized, "token revoked").is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}{}", attempts_note(*attempts))]
pub struct ProviderError {
    kind: ProviderErrorKind,
    message: String,
    /// Calls made before giving up, by the layer that retries (1 when the
    /// call was not retried).
    attempts: u32,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() }
}

impl ProviderError {
    /// An error of `kind`.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), attempts: 1, source: None }
    }

    /// Records that the call was made `attempts` times (by a layer that
    /// retries) before it failed with this error.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// How many times the call was made before it failed with this error.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether a layer below already retried the call (its retry policy is
    /// spent): a caller should not retry it again at once, which would
    /// multiply the attempts, but leave it for later (the reconciler's next
    /// pass).
    pub fn already_retried(&self) -> bool {
        self.attempts > 1
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ProviderErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The provider the adapter named at the start of its message
    /// (`hetzner: …`, `github: …`), as users know it.
    pub fn provider(&self) -> &'static str {
        match self.message.split_once(':').map(|(name, _)| name.trim()) {
            Some("hetzner") => "Hetzner",
            Some("github") => "GitHub",
            Some("cloudflare") => "Cloudflare",
            Some("agent") => "The workspace's agent",
            _ => "The provider",
        }
    }

    /// What the failure means, for a user or an API client: the kind in
    /// words and who failed, never the provider's own text (which can echo
    /// anything back: names, ids, input). The whole [`message`](Self::message)
    /// belongs in the log.
    ///
    /// ```
    /// use sam_core::ports::{ProviderError, ProviderErrorKind};
    /// let e = ProviderError::new(ProviderErrorKind::NotFound, "github: 404: Not Found");
    /// assert_eq!(e.public_message(), "GitHub has no such resource, or does not show it to this account.");
    /// ```
    pub fn public_message(&self) -> String {
        let who = self.provider();
        match self.kind {
            ProviderErrorKind::NotFound => format!("{who} has no such resource, or does not show it to this account."),
            ProviderErrorKind::Unauthorized => {
                format!("{who} refused the credential SAM holds for it: sign in again or replace it in Settings.")
            }
            ProviderErrorKind::Forbidden => format!("{who} does not allow this with the credential SAM holds for it."),
            ProviderErrorKind::QuotaExceeded => format!("{who} reports a quota or limit reached."),
            ProviderErrorKind::RateLimited { .. } => {
                format!("{who} is limiting the rate of requests; try again later.")
            }
            ProviderErrorKind::Capacity => format!("{who} has no capacity for this right now; try again later."),
            ProviderErrorKind::Transient => format!("{who} is not responding; try again."),
            ProviderErrorKind::InvalidConfig => {
                format!("{who} refused SAM's request as invalid; the operator must check the deployment's settings.")
            }
            ProviderErrorKind::Other => format!("{who} gave an answer SAM does not understand."),
        }
    }

    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// For [`ProviderErrorKind::RateLimited`], how long to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ProviderErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }
}
