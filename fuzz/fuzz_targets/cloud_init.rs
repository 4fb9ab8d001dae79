//! The cloud-init renderer (`sam_core::cloud_init::render`): the user data
//! every workspace server boots from, built from values that come from the
//! configuration and the engine. Whatever it is given, it either refuses or
//! renders a document of exactly the shape it renders for well-behaved
//! values (no value adds a line, a key or a command) within Hetzner's size
//! limit, with each value on its own line exactly once.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sam_core::cloud_init::{CloudInitParams, MAX_USER_DATA, render};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    url: &'a str,
    token: &'a str,
    sha256: Option<&'a str>,
    sha256_arm64: Option<&'a str>,
    tls: bool,
}

fuzz_target!(|input: Input<'_>| {
    let params = CloudInitParams {
        control_plane_url: input.url,
        bootstrap_token: input.token,
        agent_sha256: input.sha256,
        agent_sha256_arm64: input.sha256_arm64,
        agent_tls: input.tls,
    };
    let Ok(data) = render(&params) else { return };
    assert!(data.starts_with("#cloud-config\n") && data.len() <= MAX_USER_DATA);
    let sha = "0".repeat(64);
    let plain = CloudInitParams {
        control_plane_url: "https://sam.example.dev",
        bootstrap_token: "token",
        agent_sha256: input.sha256.map(|_| sha.as_str()),
        agent_sha256_arm64: input.sha256_arm64.map(|_| sha.as_str()),
        agent_tls: input.tls,
    };
    let reference = render(&plain).expect("the reference renders");
    assert_eq!(data.lines().count(), reference.lines().count(), "a value added or removed lines");
    let token_line = format!("      SAM_AGENT_BOOTSTRAP_TOKEN={}", input.token);
    assert_eq!(data.lines().filter(|l| *l == token_line).count(), 1);
    let url_line = format!("      SAM_AGENT_CONTROL_PLANE={}", input.url.trim_end_matches('/'));
    assert_eq!(data.lines().filter(|l| *l == url_line).count(), 1);
});
