//! The HTTP client the agent talks to the control plane with.
//!
//! Every `reqwest::Client` loads the system's trust anchors into a store of
//! its own (on Debian all of `/etc/ssl/certs`, the bundle and the
//! directory both): measured here, about 380 KiB of heap for the first
//! client and 150–200 KiB for each further one, none of it returned while
//! the agent runs. The agent's four callers (bootstrap, heartbeats, git
//! credentials, the token key set) therefore share one, built by `main`
//! and handed to each constructor; each sets its own timeout per request.

use std::time::Duration;

/// How long a connection to the control plane may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for the control plane's API. Redirects are not followed: the
/// API never answers with one, and a request that carries a credential is
/// not sent on to wherever a redirect points.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    crate::ensure_tls_provider();
    reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).redirect(reqwest::redirect::Policy::none()).build()
}
