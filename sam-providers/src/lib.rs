//! # sam-providers
//!
//! Adapters that implement `sam-core`'s ports against real services, one cargo
//! feature per adapter: Hetzner Cloud (`ComputeProvider`), Cloudflare
//! (`DnsProvider`), GitHub OAuth and App (`IdentityProvider`, `RepoAccess`,
//! webhook verification), SQLite and PostgreSQL (`Store`), AES-256-GCM
//! (`Cipher`), RS256 JWTs with a JWKS document (`TokenIssuer`,
//! `TokenVerifier`), and a `local` compute provider whose "VMs" are agent
//! processes on this machine. It also holds the emulators: real HTTP servers
//! that speak the Hetzner, Cloudflare and GitHub APIs with fault and latency
//! injection, used by tests and by `sam-server dev`. Every adapter passes the
//! same conformance suites as the in-memory fakes in `sam_core::testkit`.
//!
//! The adapters land with the storage and cloud-adapter issues; this crate is
//! the place they go.
