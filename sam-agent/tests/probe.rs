//! The control plane's agent probe (`sam_providers::agent_probe`) against
//! the real agent: the same conformance suite the fake passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sam_core::testkit::conformance;
use sam_providers::agent_probe::HttpAgentProbe;

#[tokio::test]
async fn the_http_probe_conforms_against_a_live_agent() {
    let agent = common::start(|_| {}).await;
    let probe = HttpAgentProbe::new().unwrap();
    // Dead: a port nothing listens on (bound, then released).
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://ws-dead.localhost:{}", listener.local_addr().unwrap().port())
    };
    // The way dev mode names a workspace: a *.localhost name, reached on loopback.
    let live = format!("http://ws-{}.localhost:{}", agent.workspace, agent.addr.port());
    let credential = sam_core::secret::SecretString::from(agent.probe_token(agent.workspace));
    conformance::agent_probe::run(&probe, &live, &credential, 0, &dead).await;
    conformance::agent_probe::run(&probe, &agent.origin(), &credential, 0, &dead).await;
}
