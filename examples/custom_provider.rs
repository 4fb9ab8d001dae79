//! A cloud SAM has never heard of, implemented in this file as a
//! [`ComputeProvider`] and plugged into the engine: supporting a new cloud
//! needs an adapter, not a change to `sam-core`.
//!
//! [`RackCloud`] stands for a small private cloud (a rack of machines behind
//! an API): projects are identified by API tokens, servers get addresses from
//! the rack's 10.42.0.0/16 network, boot for a moment before they run, names
//! are unique per project, the catalogue has server types priced per rack, and
//! each project has a server limit. Its behaviour follows the port's contract,
//! which `sam-core`'s conformance suite checks (see `examples/tests`).
//!
//! `cargo run -p sam-examples --example custom_provider`

#[tokio::main]
async fn main() -> Result<(), sam_examples::Error> {
    sam_examples::custom_provider::run(&mut std::io::stdout()).await?;
    Ok(())
}
