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
//!   restart, delete, idle shutdown, bootstrap, the reconciler);
//! - [`cloud_init`]: the user data that boots a workspace server;
//! - [`ports`]: the traits adapters implement (compute, DNS, identity, repository
//!   access, store, cipher, tokens, clock);
//! - [`secret`]: secret strings, random tokens and hashes;
//! - `testkit` (feature `testkit`): in-memory fakes of every port and the
//!   conformance suites every adapter must pass.
//!
//! Adapters for Hetzner, Cloudflare, GitHub, SQLite and PostgreSQL live in the
//! `sam-providers` crate.
//!
//! ```
//! use sam_core::lifecycle::{transition, Event, LifecycleState, WorkspaceStatus};
//! let t = transition(&LifecycleState::new(), &Event::CreateRequested).unwrap();
//! assert_eq!(t.state.status, WorkspaceStatus::Creating);
//! ```

#![warn(missing_docs)]

pub mod cloud_init;
pub mod domain;
pub mod engine;
pub mod lifecycle;
pub mod metrics;
pub mod ports;
pub mod secret;
mod sync;
#[cfg(feature = "testkit")]
pub mod testkit;
