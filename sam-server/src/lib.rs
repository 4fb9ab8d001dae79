//! # sam-server
//!
//! The control plane: a thin layer that wires configuration to `sam-core`'s
//! engine and `sam-providers`' adapters and serves the HTTP API (see the design
//! document's contract), GitHub sign-in, the JWKS document, agent downloads and
//! webhooks, and runs the reconciler.
//!
//! The library part exists so tests (and embedders) can build the router with
//! any adapters: [`api::router`] takes an [`state::AppState`].

pub mod api;
pub mod config;
pub mod deployment;
pub mod state;
pub mod web;
