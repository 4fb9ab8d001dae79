//! SAM inside an existing axum application.
//!
//! The host application has its own routes (`/` and `/internal/status`) and
//! hands every other request to SAM's API router from the `sam-server`
//! library, with [`Router::fallback_service`]: the host's routes win, and SAM
//! keeps the paths its web pages, OAuth callback and agents expect (`/api/…`,
//! `/.well-known/jwks.json`). Both sides share one [`Engine`]: the host's status
//! page reads the same workspaces SAM's API serves.
//!
//! (Nesting SAM under a prefix, `Router::nest("/sam", …)`, also routes, but the
//! web UI and the OAuth redirect URI assume SAM is at the root of its origin.)
//!
//! `cargo run -p sam-examples --example embed_axum`

#[tokio::main]
async fn main() -> Result<(), sam_examples::Error> {
    sam_examples::embed_axum::run(&mut std::io::stdout()).await?;
    Ok(())
}
