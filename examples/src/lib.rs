//! Examples of embedding `sam-core`. Each example is a function here, called
//! both by its program (`cargo run -p sam-examples --example <name>`) and by
//! the crate's tests (`examples/tests/examples.rs`), so the examples cannot rot:
//!
//! - [`provision`]: the engine with the real Hetzner and Cloudflare adapters,
//!   pointed at in-process emulators, provisioning, stopping and deleting a
//!   workspace;
//! - [`custom_provider`]: a cloud SAM has never heard of, implemented here as
//!   a [`ComputeProvider`](sam_core::ports::ComputeProvider) and plugged into
//!   the engine without touching `sam-core`;
//! - [`embed_axum`]: SAM's HTTP API mounted in an existing axum application
//!   next to its own routes, sharing one engine.
//!
//! `lifecycle` prints the state machine's transition table.

pub mod custom_provider;
pub mod demo;
pub mod embed_axum;
pub mod provision;

/// What the examples return on failure.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
