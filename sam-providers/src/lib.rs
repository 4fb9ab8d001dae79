//! # sam-providers
//!
//! Adapters that implement `sam-core`'s ports against real services, one cargo
//! feature per adapter: Hetzner Cloud (`ComputeProvider`), Cloudflare
//! (`DnsProvider`), GitHub OAuth and App (`IdentityProvider`, `RepoAccess`,
//! `WebhookSource`), SQLite and PostgreSQL (every concern of `Store`, one
//! implementation over both dialects), AES-256-GCM
//! (`Cipher`), RS256 JWTs with a JWKS document (`TokenIssuer`,
//! `TokenVerifier`). It also holds the emulators: real HTTP servers that speak
//! the Hetzner, Cloudflare and GitHub APIs with fault and latency injection,
//! used by tests and by `sam-server dev`. Every adapter passes the same
//! conformance suites as the in-memory fakes in `sam_core::testkit`.
//!
//! Enable only the adapters you use: `sqlite`, `postgres`, `cipher`, `jwt` (`jwt-verify`: verifiers only),
//! `keys`, `hetzner`, `cloudflare`, `github`, `emulators` (the crate's
//! README has the table).

#[cfg(feature = "agent-probe")]
pub mod agent_probe;
#[cfg(feature = "cipher")]
pub mod cipher;
#[cfg(feature = "cloudflare")]
pub mod cloudflare;
pub mod cookie;
#[cfg(feature = "emulators")]
pub mod emulators;
#[cfg(feature = "github")]
pub mod github;
#[cfg(feature = "github-webhooks")]
pub mod github_webhooks;
#[cfg(feature = "hetzner")]
pub mod hetzner;
#[cfg(any(feature = "hetzner", feature = "cloudflare", feature = "github", feature = "agent-probe"))]
pub mod http;
#[cfg(feature = "jwt-verify")]
pub mod jwt;
#[cfg(feature = "keys")]
pub mod keys;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod store;
