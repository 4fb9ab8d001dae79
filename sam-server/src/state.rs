//! Everything a request handler needs, shared behind an `Arc`.

use std::path::PathBuf;
use std::sync::Arc;

use sam_core::accounts::Accounts;
use sam_core::domain::{UserId, WorkspaceId};
use sam_core::engine::Engine;
use sam_core::ports::{TokenIssuer, TokenVerifier, WebhookSource};
use sam_providers::cookie::{Cookie, SameSite};

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Public origin of the control plane, e.g. `https://sam.example.dev`
    /// (no trailing slash). State-changing requests must come from it.
    pub public_url: String,
    /// Whether cookies get `Secure` and the `__Host-` prefix (https).
    pub secure_cookies: bool,
    /// Directory holding `sam-agent-<arch>` binaries.
    pub agent_dir: PathBuf,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Requests per minute per client address to sign-in, terminal-token and
    /// bootstrap endpoints.
    pub rate_limit_per_minute: u32,
    /// Heartbeats, and boot reports, per workspace and minute (each its own
    /// budget; an agent sends a heartbeat a minute and a boot report every
    /// few seconds).
    pub agent_reports_per_minute: u32,
    /// Behind a load balancer: take the client address for rate limits from
    /// the right-most `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
    /// Behind a proxy that names the client in a header of its own
    /// (Cloudflare: `CF-Connecting-IP`): rate-limit by it.
    pub client_ip_header: Option<String>,
    /// An origin the pages may load avatar images from besides GitHub's CDN:
    /// the GitHub Enterprise host (or an emulator). `None` for github.com.
    pub avatar_origin: Option<String>,
    /// Whether any GitHub account may install the app (else only its owner).
    pub github_app_public: bool,
}

impl HttpSettings {
    /// The settings `sam-server serve` uses, for an embedder that mounts the
    /// API in its own application: `public_url` is the origin the browser
    /// sees (scheme, host and port, no path, no trailing slash); cookies are
    /// `Secure` when it is `https`; JSON bodies up to
    /// 64 KiB; 30 sign-in/token/bootstrap requests per minute per client
    /// address; 120 heartbeats and boot reports per workspace and minute; `X-Forwarded-For` not trusted; avatars from github.com only;
    /// a public GitHub App.
    /// `agent_dir` holds the
    /// `sam-agent-<arch>` binaries served to new workspaces. Change any field
    /// afterwards.
    pub fn new(public_url: impl Into<String>, agent_dir: impl Into<PathBuf>) -> Self {
        let public_url = public_url.into().trim_end_matches('/').to_owned();
        Self {
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            agent_dir: agent_dir.into(),
            max_body_bytes: 64 * 1024,
            rate_limit_per_minute: 30,
            agent_reports_per_minute: 120,
            trust_forwarded_for: false,
            client_ip_header: None,
            avatar_origin: None,
            github_app_public: true,
        }
    }

    /// The session cookie. Lax, not Strict: it is set on the way back from
    /// GitHub, a cross-site top-level navigation.
    pub fn session_cookie(&self) -> Cookie {
        Cookie::new("sam_session", self.secure_cookies, SameSite::Lax)
    }

    /// The short-lived OAuth cookie (state + PKCE verifier); Lax for the same
    /// reason.
    pub fn oauth_cookie(&self) -> Cookie {
        Cookie::new("sam_oauth", self.secure_cookies, SameSite::Lax)
    }

    /// The OAuth redirect URI.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/api/auth/callback/github", self.public_url)
    }
}

/// Shared application state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The workspace engine.
    pub engine: Arc<Engine>,
    /// Users, sessions, cloud accounts and repository access.
    pub accounts: Arc<Accounts>,
    /// Signs terminal/callback tokens and serves the JWKS.
    pub issuer: Arc<dyn TokenIssuer>,
    /// Verifies agent callback credentials.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Verifies GitHub webhook deliveries (`None`: webhooks not configured).
    pub webhooks: Option<Arc<dyn WebhookSource>>,
    /// HTTP settings.
    pub http: HttpSettings,
}

impl AppState {
    /// Runs the engine on a workspace in the background; the request that
    /// changed it has already answered.
    pub fn spawn_drive(&self, owner: UserId, id: WorkspaceId) {
        let engine = self.engine.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.drive(owner, id).await {
                tracing::warn!(workspace_id = %id, error = %e, "background drive failed; the reconciler will retry");
            }
        });
    }
}
