//! Provisions a workspace through `sam-core`'s [`Engine`] with the real
//! Hetzner and Cloudflare adapters from `sam-providers`, pointed at the
//! in-process emulators of both APIs (real HTTP on loopback ports), then
//! stops and deletes it and shows that nothing is left at either provider.
//!
//! `cargo run -p sam-examples --example provision`

#[tokio::main]
async fn main() -> Result<(), sam_examples::Error> {
    sam_examples::provision::run(&mut std::io::stdout()).await?;
    Ok(())
}
