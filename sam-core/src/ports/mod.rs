//! The ports: traits through which the engine reaches the outside world. Each is
//! object-safe (`Arc<dyn Port>`) so adapters are chosen at run time, each has an
//! in-memory fake in `testkit` (feature `testkit`) and a
//! conformance suite every adapter runs.

mod agent_probe;
mod certificates;
mod cipher;
mod clock;
mod compute;
mod dns;
mod firewall;
mod github;
mod provider_error;
mod store;
mod token;
mod webhooks;

pub use agent_probe::{AgentHealth, AgentProbe};
pub use certificates::{OriginCertificate, OriginCertificateAuthority};
pub use cipher::{Cipher, CipherError, CipherErrorKind, SealContext};
pub use clock::{Clock, SystemClock};
pub use compute::{
    ComputeProvider, LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_WORKSPACE, Server, ServerSpec, ServerStatus,
};
pub use dns::{DnsProvider, DnsRecord};
pub use firewall::{
    EdgeNetwork, EdgeRanges, Firewall, FirewallPolicy, FirewallProtocol, InboundRule, is_cidr,
    normalized as normalized_rules,
};
pub use github::{
    IdentityProvider, InstallationInfo, InstallationToken, Page, RepoAccess, Repository, TokenScope, UserTokens,
    VerifiedIdentity,
};
pub use provider_error::{ProviderError, ProviderErrorKind};
pub use store::{
    AccessTokenStore, BootstrapToken, BootstrapTokenStore, CHANGE_FEED_CAPACITY, ChangeFeed, CredentialRemoval,
    CredentialStore, InstallationStore, LeaseStore, Store, StoreChange, StoreError, StoreErrorKind, UserStore,
    WebhookDeliveryStore, WorkspaceLimits, WorkspaceScan, WorkspaceStore,
};
pub use token::{
    Audience, IssuedToken, Jwk, JwkSet, TokenError, TokenErrorKind, TokenIssuer, TokenRequest, TokenVerifier,
    VerifiedToken,
};
pub use webhooks::{InstallationChange, WebhookDelivery, WebhookHeaders, WebhookRejection, WebhookSource};
