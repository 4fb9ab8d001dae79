//! # sam-server
//!
//! The control plane: a thin binary that wires configuration to `sam-core`'s
//! engine and `sam-providers`' adapters and serves the HTTP API, the web UI,
//! GitHub sign-in, the JWKS document, agent downloads and webhooks, and runs the
//! reconciler. `sam-server dev` will run the whole product on one machine with
//! emulated GitHub, Hetzner and Cloudflare and local agent processes;
//! `sam-server serve` is production.
//!
//! Not built yet: the server lands with its own issue.

fn main() {
    let command = std::env::args().nth(1).unwrap_or_default();
    println!(
        "sam-server {}: `{command}` is not available yet; the control plane lands with the server issue. \
         Run ./scripts/test to run what exists.",
        env!("CARGO_PKG_VERSION")
    );
}
