//! The application around the engine: who the users are and what they have
//! connected. Sign-in and sessions, cloud accounts (validated, sealed,
//! disconnected only while nothing depends on them), and repository access
//! through the GitHub App. A server's handlers (or an embedder's) parse a
//! request, make one call here and render the answer.
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sam_core::accounts::AccountsError> {
//! use std::sync::Arc;
//! use sam_core::accounts::{Accounts, AccountsConfig};
//! use sam_core::domain::CredentialProvider;
//! use sam_core::testkit::fakes::FakeGithub;
//! use sam_core::testkit::harness::{Harness, CLOUD_TOKEN};
//!
//! let world = Harness::new().await;
//! let accounts = Accounts::new(world.ports(), Arc::new(FakeGithub::new(30)), AccountsConfig::default());
//! // The provider is asked before anything is stored.
//! let account = accounts.connect_cloud(world.user, CredentialProvider::HETZNER, CLOUD_TOKEN).await?;
//! assert!(account.catalogue.is_ok());
//! assert!(accounts.connect_cloud(world.user, CredentialProvider::HETZNER, "forged").await.is_err());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testkit"))] fn main() {}
//! ```

mod access_tokens;
mod admission;
mod cloud;
mod error;
mod github;
mod github_auth;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

pub use crate::ports::InstallationChange;
pub use access_tokens::{MAX_ACCESS_TOKEN_DAYS, MAX_ACCESS_TOKENS, NewAccessToken};
pub use admission::{RECHECK_EVERY, SignInPolicy};
pub use cloud::{Catalogue, CloudAccount, SizeOffer};
pub use error::{AccountsError, AccountsErrorKind};
pub use sessions::{SessionUser, SignedIn};

use crate::engine::Ports;
use crate::ports::IdentityProvider;

/// Settings of [`Accounts`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AccountsConfig {
    /// How long a session lasts without use (sliding). Default 7 days.
    pub session_ttl: Duration,
    /// How long a session lasts at most, however often it is used (then
    /// the user signs in again). Default 30 days.
    pub session_max_age: Duration,
    /// Who may sign in. Default: anyone.
    pub sign_in_policy: SignInPolicy,
    /// The server architectures the sizes and prices shown map to: the
    /// engine's ([`EngineConfig::server_architectures`](crate::engine::EngineConfig::server_architectures)),
    /// so the price shown is the one billed. Default x86 only.
    pub server_architectures: &'static [&'static str],
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            session_max_age: Duration::from_secs(30 * 24 * 3600),
            sign_in_policy: SignInPolicy::default(),
            server_architectures: crate::domain::arch::X86_ONLY,
        }
    }
}

impl AccountsConfig {
    /// Sessions lasting `session_ttl` without use.
    pub fn with_session_ttl(session_ttl: Duration) -> Self {
        Self { session_ttl, ..Self::default() }
    }

    /// The same settings, sizes mapped to server types of `architectures`.
    pub fn with_server_architectures(mut self, architectures: &'static [&'static str]) -> Self {
        self.server_architectures = architectures;
        self
    }

    /// The same settings, sessions ending `max_age` after sign-in at the
    /// latest.
    pub fn with_session_max_age(mut self, max_age: Duration) -> Self {
        self.session_max_age = max_age;
        self
    }

    /// The same settings, admitting only whom `policy` admits.
    pub fn with_sign_in_policy(mut self, policy: SignInPolicy) -> Self {
        self.sign_in_policy = policy;
        self
    }
}

/// Users, their sessions and what they connected. Cheap to share
/// (`Arc<Accounts>`); all methods take `&self`.
#[derive(Debug)]
pub struct Accounts {
    ports: Ports,
    identity: Arc<dyn IdentityProvider>,
    config: AccountsConfig,
    /// The sign-in policy's last organization answers, per user.
    admissions: std::sync::Mutex<std::collections::HashMap<crate::domain::UserId, (crate::domain::Timestamp, bool)>>,
}

impl Accounts {
    /// Accounts over the same `ports` as the engine, signing in through
    /// `identity`.
    pub fn new(ports: Ports, identity: Arc<dyn IdentityProvider>, config: AccountsConfig) -> Self {
        Self { ports, identity, config, admissions: std::sync::Mutex::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }
}
