//! # sam-core
//!
//! The library at the heart of SAM (Simple Agent Manager): disposable cloud
//! workspaces with a terminal in the browser. A workspace is a VM on the user's
//! own cloud account, running their repository in a devcontainer, reachable at
//! `ws-<id>.<base-domain>`, that stops itself when idle.
//!
//! This crate knows *what* must happen and nothing about *how* a given cloud
//! does it:
//!
//! - [`domain`]: users, credentials, workspaces and validated names;
//! - [`lifecycle`]: the pure workspace state machine;
//! - [`engine`]: drives workspaces through the ports (provisioning, stop,
//!   restart, delete, idle shutdown, bootstrap, the reconciler), and takes the
//!   [`engine::Inventory`] of what a deployment made;
//! - [`accounts`]: the application around it: sign-in and sessions, cloud
//!   accounts, repository access through the GitHub App, installation changes;
//! - [`cloud_init`]: the user data that boots a workspace server;
//! - [`ports`]: the traits adapters implement (compute, DNS, the agent probe,
//!   identity, repository access, webhooks, cipher, tokens, clock, and the
//!   store, one trait per
//!   concern with [`ports::Store`] as their union);
//! - [`secret`]: secret strings, random tokens and hashes;
//! - [`wire`]: the messages between the agent and the control plane;
//! - [`terminal`]: the control messages of the terminal's WebSocket protocol;
//! - [`metrics`]: the series the engine records through the `metrics` facade;
//! - `testkit` (feature `testkit`): in-memory fakes of every port and the
//!   conformance suites every adapter must pass.
//!
//! Adapters for Hetzner, Cloudflare, GitHub, SQLite and PostgreSQL live in
//! the `sam-providers` crate. A new cloud needs only an implementation of
//! [`ports::ComputeProvider`] that passes `testkit::conformance::compute`; it
//! names the kind of credential its users connect
//! ([`domain::CredentialProvider`] is an open name, not a closed list).
//!
//! # Example
//!
//! The engine over the testkit's fakes: create a workspace, let the engine
//! provision it, play the agent, delete it.
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sam_core::engine::EngineError> {
//! use std::sync::Arc;
//! use sam_core::domain::InstallationId;
//! use sam_core::engine::{AgentReport, DriveOutcome, Engine, EngineConfig, Ports};
//! use sam_core::lifecycle::WorkspaceStatus;
//! use sam_core::testkit::{harness::Harness, sample_spec};
//!
//! // A signed-in user with a sealed cloud token and a GitHub App
//! // installation, over in-memory ports.
//! let world = Harness::new().await;
//! let ports: Ports = world.ports(); // or your adapters
//! let engine = Arc::new(Engine::new(ports, EngineConfig::new("ws.example.dev", "https://sam.example.dev")));
//!
//! // A user action records the transition and returns at once ...
//! let ws = engine.create(world.user, sample_spec("my-workspace"), InstallationId(1)).await?;
//! assert_eq!(ws.status(), WorkspaceStatus::Creating);
//! // ... and `drive` does the work (a server, then the DNS record).
//! let DriveOutcome::Settled(ws) = engine.drive(world.user, ws.id).await? else { unreachable!() };
//! assert!(ws.lifecycle.server.is_some() && ws.lifecycle.dns_record.is_some());
//!
//! // The agent on the server redeems its bootstrap token and reports ready.
//! let token = world.bootstrap_token(ws.id).expect("cloud-init carries a bootstrap token");
//! let grant = engine.redeem_bootstrap(&token).await?;
//! let ws = engine.report_agent(grant.owner, grant.workspace_id, &AgentReport::Ready).await?;
//! assert_eq!(ws.status(), WorkspaceStatus::Running);
//!
//! // Deleting removes the server and record, then the row.
//! engine.delete(world.user, ws.id).await?;
//! assert_eq!(engine.drive(world.user, ws.id).await?, DriveOutcome::Removed);
//! assert!(world.cloud.servers().is_empty());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testkit"))] fn main() {}
//! ```
//!
//! The state machine on its own is a pure function:
//!
//! ```
//! use sam_core::lifecycle::{transition, Event, LifecycleState, WorkspaceStatus};
//! let t = transition(&LifecycleState::new(), &Event::CreateRequested).unwrap();
//! assert_eq!(t.state.status, WorkspaceStatus::Creating);
//! ```
//!
//! # Stability
//!
//! Before 1.0, minor releases may change the API. [`domain`], [`lifecycle`],
//! [`ports`], [`engine`], [`accounts`], [`wire`], [`terminal`], [`cloud_init`], [`secret`]
//! and the series names in [`metrics`] are the public API; `testkit` serves
//! adapter authors and tests and may change in any minor release. MSRV: Rust
//! 1.94.

#![warn(missing_docs)]

pub mod accounts;
pub mod api;
pub mod cloud_init;
pub mod domain;
pub mod engine;
pub mod lifecycle;
pub mod metrics;
pub mod ports;
pub mod secret;
mod sync;
pub mod terminal;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "testkit"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
