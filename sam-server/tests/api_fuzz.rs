//! A property-based fuzzer driven only by the OpenAPI document
//! (Schemathesis): it generates requests for every operation from the
//! document — valid ones, and ones that break it — against the real control
//! plane (emulated providers, a signed-in user with a Hetzner token), and
//! checks each answer: no server error, no status or body the document does
//! not describe, no valid request refused, no invalid one accepted.
//!
//! Schemathesis is a Python tool: `scripts/test.d/50-schemathesis.sh`
//! installs it (pinned) into a virtual environment and sets
//! `SAM_TEST_SCHEMATHESIS`; without it the test fails unless
//! `SAM_SKIP_SCHEMATHESIS=1`. `SAM_API_FUZZ_SECONDS` bounds the run (60);
//! `SAM_API_FUZZ_SEED` picks the generator's seed (1, so that a run of the
//! suite does not fail by chance; `random` for a new one each time, which is
//! what to run by hand when looking for new failures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Backend, Server, workspace_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_contract_under_a_property_based_fuzzer() {
    let Some(st) = std::env::var_os("SAM_TEST_SCHEMATHESIS") else {
        assert!(
            std::env::var_os("SAM_SKIP_SCHEMATHESIS").is_some(),
            "SAM_TEST_SCHEMATHESIS is not set: run ./scripts/test, or source scripts/test.d/50-schemathesis.sh \
             (SAM_SKIP_SCHEMATHESIS=1 to skip)"
        );
        return;
    };
    let seconds: u64 = std::env::var("SAM_API_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed = std::env::var("SAM_API_FUZZ_SEED").unwrap_or_else(|_| "1".into());
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let cookie = s.ready_user(71).await;
    // Something for the path parameters to find besides random ids.
    let (_, ws) = s.post("/api/workspaces", &cookie, workspace_body("fuzzed")).await;
    assert!(ws["id"].is_string(), "{ws}");
    let schema = format!("{}/api/openapi.json", s.base);
    let dir = tempfile::tempdir().unwrap();
    let session = cookie.split_once('=').map(|(_, value)| value).unwrap();
    // The session through the document's own security scheme, so the
    // fuzzer knows which requests carry it (and checks that those without
    // it are refused). Where the document says a schema-valid request may
    // still be refused for what only the server knows — a token the
    // provider refuses, a location the account does not offer — those
    // statuses count as accepted answers.
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"[auth.openapi.session]
api_key = "{session}"

[[operations]]
include-name = "POST /api/credentials"
checks.positive_data_acceptance.expected-statuses = ["201", "401", "404", "409", "422", "429", "503"]

[[operations]]
include-name = "POST /api/workspaces/{{id}}/restart"
checks.positive_data_acceptance.expected-statuses = ["202", "401", "404", "409", "412", "429"]

[[operations]]
include-name = "POST /api/workspaces"
checks.positive_data_acceptance.expected-statuses = ["201", "401", "404", "409", "412", "422", "429", "503"]
"#
        ),
    )
    .unwrap();
    let st = std::path::PathBuf::from(st);
    let mut command = tokio::process::Command::new(&st);
    command
        .arg("--config-file")
        .arg(&config)
        .args(["run", &schema, "--url", &s.base])
        // What the issue asks of the document: no server error, no status
        // or body it does not describe, no valid request refused; and
        // requests without the session refused. Not `use_after_free`: a
        // delete is accepted (202) and the workspace stays visible, as
        // `deleting`, until its server and record are gone.
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,\
             response_headers_conformance,positive_data_acceptance,ignored_auth,ensure_resource_availability",
        ])
        .args(["--max-time", &seconds.to_string()])
        .args(if seed == "random" { vec![] } else { vec!["--seed".to_owned(), seed.clone()] })
        .args(["--workers", "2", "--request-timeout", "20", "--no-color"])
        .args(["-H", &format!("Origin: {}", s.base)])
        // The event stream never ends by design: a response time check would
        // wait for it forever.
        .args(["--exclude-path", "/api/workspaces/stream"])
        // Signing out would end the session every other request runs in
        // (sign-out has its own tests).
        .args(["--exclude-path", "/api/auth/logout"])
        .args(["--report", "junit", "--report-dir", &dir.path().display().to_string()])
        .env("SCHEMATHESIS_HOOKS", "")
        // It keeps a cache where it runs: there, not in the source tree.
        .current_dir(dir.path())
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(seconds * 3 + 120), command.output())
        .await
        .expect("schemathesis finishes within its time budget")
        .expect("schemathesis runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{printed}");
    println!("schemathesis ran {:.0} s", started.elapsed().as_secs_f64());
    assert!(output.status.success(), "the fuzzer found contract violations (above)");
}
