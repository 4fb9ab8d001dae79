//! Hetzner adapter ↔ Hetzner emulator, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sam_core::domain::{ServerId, WorkspaceId};
use sam_core::ports::{ComputeProvider, LABEL_MANAGED, LABEL_WORKSPACE, ProviderErrorKind, ServerStatus};
use sam_core::secret::SecretString;
use sam_core::testkit::conformance;
use sam_providers::emulators::{Fault, HetznerEmulator, HetznerEmulatorConfig, InjectedError, ServerEvent};
use sam_providers::hetzner::{HetznerConfig, HetznerProvider};
use sam_providers::http::{HttpConfig, RetryPolicy};

async fn emulator() -> HetznerEmulator {
    HetznerEmulator::start(HetznerEmulatorConfig { boot_delay: Duration::from_millis(50), ..Default::default() })
        .await
        .unwrap()
}

fn adapter(emu: &HetznerEmulator, http: HttpConfig) -> HetznerProvider {
    HetznerProvider::new(HetznerConfig { base_url: emu.base_url().to_owned(), http }).unwrap()
}

fn no_retry() -> HttpConfig {
    HttpConfig { retry: RetryPolicy::never(), ..HttpConfig::fast() }
}

fn token(emu: &HetznerEmulator) -> SecretString {
    SecretString::new(emu.token())
}

#[tokio::test]
async fn conformance_suite_passes_against_the_emulator() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    conformance::compute::run(&provider, &token(&emu), "fsn1").await;
    assert!(emu.servers().is_empty(), "the suite leaves no server behind");
}

#[tokio::test]
async fn each_error_kind_comes_from_a_real_emulator_response() {
    let emu = emulator().await;
    let provider = adapter(&emu, no_retry());
    let tok = token(&emu);
    let spec = |location: &str| conformance::compute::spec(WorkspaceId::new(), location);

    // (case, expected kind, error)
    let mut cases = Vec::new();

    let err = provider.validate_credential(&SecretString::new("wrong")).await.unwrap_err();
    cases.push(("unauthorized", ProviderErrorKind::Unauthorized, err));

    emu.configure(|c| c.readonly_tokens.push("read-only".into()));
    let err = provider.create_server(&SecretString::new("read-only"), &spec("fsn1")).await.unwrap_err();
    cases.push(("token_readonly", ProviderErrorKind::Unauthorized, err));

    let err = provider.power_off(&tok, &ServerId("123".into())).await.unwrap_err();
    cases.push(("not_found", ProviderErrorKind::NotFound, err));

    let mut bad_image = spec("fsn1");
    bad_image.image = "windows-95".into();
    let err = provider.create_server(&tok, &bad_image).await.unwrap_err();
    cases.push(("invalid_input", ProviderErrorKind::InvalidConfig, err));

    let taken = spec("fsn1");
    emu.insert_server(&taken.name, BTreeMap::new());
    let err = provider.create_server(&tok, &taken).await.unwrap_err();
    cases.push(("uniqueness_error", ProviderErrorKind::InvalidConfig, err));

    let err = provider.create_server(&tok, &spec("mars1")).await.unwrap_err();
    cases.push(("no type in location", ProviderErrorKind::InvalidConfig, err));

    emu.faults().inject("POST", "/v1/servers", Fault::Error(InjectedError::ResourceUnavailable), 1);
    let err = provider.create_server(&tok, &spec("fsn1")).await.unwrap_err();
    cases.push(("resource_unavailable", ProviderErrorKind::Capacity, err));

    emu.faults().inject("GET", "/v1/servers", Fault::Error(InjectedError::Unavailable), 1);
    let err = provider.list_servers(&tok).await.unwrap_err();
    cases.push(("503", ProviderErrorKind::Transient, err));

    emu.faults().inject("GET", "/v1/servers", Fault::Error(InjectedError::Internal), 1);
    let err = provider.list_servers(&tok).await.unwrap_err();
    cases.push(("500", ProviderErrorKind::Transient, err));

    emu.faults().inject("GET", "/v1/locations", Fault::Latency(Duration::from_secs(3)), 1);
    let err = provider.list_locations(&tok).await.unwrap_err();
    cases.push(("timeout", ProviderErrorKind::Transient, err));
    emu.faults().clear();

    let existing = emu.servers().len();
    emu.configure(|c| c.max_servers = existing);
    let err = provider.create_server(&tok, &spec("fsn1")).await.unwrap_err();
    cases.push(("resource_limit_exceeded", ProviderErrorKind::QuotaExceeded, err));

    emu.exhaust_rate_limit();
    let err = provider.list_server_types(&tok).await.unwrap_err();
    assert!(err.retry_after().is_some(), "the reset time is carried: {err}");
    cases.push(("rate_limit_exceeded", ProviderErrorKind::RateLimited { retry_after: err.retry_after() }, err));

    for (case, expected, err) in cases {
        assert_eq!(err.kind(), expected, "{case}: {err}");
        assert!(!err.to_string().contains(&emu.token()), "{case}: the token never appears in errors");
    }
}

#[tokio::test]
async fn rate_limit_reset_is_honoured() {
    let emu =
        HetznerEmulator::start(HetznerEmulatorConfig { rate_limit: 2, rate_refill_per_sec: 4.0, ..Default::default() })
            .await
            .unwrap();
    let provider = adapter(&emu, HttpConfig::fast());
    emu.exhaust_rate_limit();
    let started = Instant::now();
    provider.list_server_types(&token(&emu)).await.expect("succeeds after waiting for the reset");
    let calls = emu.faults().count("GET", "/v1/server_types");
    // With millisecond backoffs and no regard for the reset, all 5 attempts
    // would land inside the empty bucket and fail.
    assert!((2..=3).contains(&calls), "waited for the reset instead of hammering: {calls} calls");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_error_after_the_retry_policy_says_how_often_it_was_tried() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    emu.faults().inject("GET", "/v1/servers", Fault::Error(InjectedError::Unavailable), 10);
    let err = provider.validate_credential(&token(&emu)).await.unwrap_err();
    assert_eq!(emu.faults().count("GET", "/v1/servers"), 5, "the policy's 5 attempts, no more");
    assert_eq!(err.attempts(), 5);
    assert!(err.already_retried(), "so the engine does not retry it again at once");
    assert!(err.to_string().contains("after 5 attempts"), "{err}");
}

#[tokio::test]
async fn unavailable_is_retried_then_succeeds() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    emu.faults().inject("GET", "/v1/servers", Fault::Error(InjectedError::Unavailable), 2);
    provider.validate_credential(&token(&emu)).await.expect("third attempt succeeds");
    assert_eq!(emu.faults().count("GET", "/v1/servers"), 3);
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    let err = provider.list_servers(&SecretString::new("revoked")).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized);
    assert_eq!(emu.faults().count("GET", "/v1/servers"), 1);
}

#[tokio::test]
async fn lost_create_response_is_found_by_label_not_created_twice() {
    let emu = emulator().await;
    let http = HttpConfig { request_timeout: Duration::from_millis(400), ..HttpConfig::fast() };
    let provider = adapter(&emu, http);
    emu.faults().inject("POST", "/v1/servers", Fault::DropResponse(Duration::from_secs(5)), 1);
    let workspace = WorkspaceId::new();
    let server = provider
        .create_server(&token(&emu), &conformance::compute::spec(workspace, "fsn1"))
        .await
        .expect("the retry finds the server the lost request created");
    let labelled: Vec<_> =
        emu.servers().into_iter().filter(|s| s.labels.get(LABEL_WORKSPACE) == Some(&workspace.to_string())).collect();
    assert_eq!(labelled.len(), 1, "exactly one server for the workspace");
    assert_eq!(server.id.0, labelled[0].id.to_string());
    assert_eq!(emu.faults().count("POST", "/v1/servers"), 1, "no second create was sent");
}

#[tokio::test]
async fn capacity_errors_are_retried() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    emu.faults().inject("POST", "/v1/servers", Fault::Error(InjectedError::ResourceUnavailable), 1);
    provider.create_server(&token(&emu), &conformance::compute::spec(WorkspaceId::new(), "nbg1")).await.unwrap();
    assert_eq!(emu.servers().len(), 1);
    assert_eq!(emu.faults().count("POST", "/v1/servers"), 2);
}

#[tokio::test]
async fn servers_boot_and_hook_sees_them() {
    let emu = emulator().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    emu.set_hook(Arc::new(tx));
    let provider = adapter(&emu, HttpConfig::fast());
    let tok = token(&emu);
    let spec = conformance::compute::spec(WorkspaceId::new(), "hel1");
    let server = provider.create_server(&tok, &spec).await.unwrap();
    assert_eq!(server.status, ServerStatus::Starting);
    assert_eq!(server.server_type, "cx23", "cheapest non-deprecated x86 type for small");
    match rx.recv().await.unwrap() {
        ServerEvent::Created(s) => {
            assert_eq!(s.user_data, spec.user_data);
            assert_eq!(s.labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
        }
        other => panic!("unexpected event {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    let got = provider.get_server(&tok, &server.id).await.unwrap().unwrap();
    assert_eq!(got.status, ServerStatus::Running);
    provider.power_off(&tok, &server.id).await.unwrap();
    assert_eq!(provider.get_server(&tok, &server.id).await.unwrap().unwrap().status, ServerStatus::Off);
    assert!(matches!(rx.recv().await.unwrap(), ServerEvent::PoweredOff(_)));
    provider.delete_server(&tok, &server.id).await.unwrap();
    assert!(matches!(rx.recv().await.unwrap(), ServerEvent::Deleted(_)));
}

#[tokio::test]
async fn listing_follows_pagination_and_skips_unmanaged_servers() {
    let emu = HetznerEmulator::start(HetznerEmulatorConfig { max_servers: 200, ..Default::default() }).await.unwrap();
    for i in 0..120 {
        let labels = BTreeMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_WORKSPACE.to_owned(), WorkspaceId::new().to_string()),
        ]);
        emu.insert_server(&format!("managed-{i}"), labels);
    }
    emu.insert_server("someone-elses", BTreeMap::new());
    let provider = adapter(&emu, HttpConfig::fast());
    let listed = provider.list_servers(&token(&emu)).await.unwrap();
    assert_eq!(listed.len(), 120);
    assert!(emu.faults().count("GET", "/v1/servers") >= 3, "three pages of 50");
}

#[tokio::test]
async fn oversized_user_data_is_refused_before_sending() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    let mut spec = conformance::compute::spec(WorkspaceId::new(), "fsn1");
    spec.user_data = "x".repeat(33 * 1024);
    let err = provider.create_server(&token(&emu), &spec).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig);
    assert_eq!(emu.faults().count("POST", "/v1/servers"), 0);
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn calls_are_traced_without_the_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    emu.faults().inject("GET", "/v1/servers", Fault::Error(InjectedError::Unavailable), 1);
    provider.validate_credential(&token(&emu)).await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("provider_call"), "{log}");
    assert!(log.contains("path=\"/v1/servers\""), "{log}");
    assert!(log.contains("attempt=2"), "{log}");
    assert!(log.contains("status=503"), "{log}");
    assert!(log.contains("latency_ms="), "{log}");
    assert!(!log.contains(&emu.token()), "the token is never logged");
}

#[tokio::test]
async fn a_server_created_concurrently_for_the_workspace_is_returned() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    let workspace = WorkspaceId::new();
    let spec = conformance::compute::spec(workspace, "fsn1");
    // Our POST is held back; meanwhile another writer creates the workspace's
    // server under the same name, so the POST gets 409 uniqueness_error.
    emu.faults().inject("POST", "/v1/servers", Fault::Latency(Duration::from_millis(500)), 1);
    let racer = {
        let emu = emu.clone();
        let name = spec.name.clone();
        let labels = spec.all_labels();
        tokio::spawn(async move {
            // As soon as our POST has arrived (and is being held back).
            while emu.faults().count("POST", "/v1/servers") == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            emu.insert_server(&name, labels)
        })
    };
    let server = provider.create_server(&token(&emu), &spec).await.unwrap();
    let raced = racer.await.unwrap();
    assert_eq!(server.id.0, raced.to_string());
    assert_eq!(emu.servers().len(), 1);
    assert_eq!(emu.faults().count("POST", "/v1/servers"), 1);
}

#[tokio::test]
async fn response_bodies_are_size_limited() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig { max_body_bytes: 256, ..HttpConfig::fast() });
    let err = provider.list_server_types(&token(&emu)).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Other);
    assert!(err.message().contains("exceeds 256 bytes"), "{err}");
}

#[tokio::test]
async fn a_wait_beyond_the_time_budget_returns_the_rate_limit_at_once() {
    let emu = HetznerEmulator::start(HetznerEmulatorConfig { rate_refill_per_sec: 0.001, ..Default::default() })
        .await
        .unwrap();
    let http = HttpConfig {
        retry: RetryPolicy { max_elapsed: Duration::from_millis(500), ..RetryPolicy::fast() },
        ..HttpConfig::fast()
    };
    let provider = adapter(&emu, http);
    emu.exhaust_rate_limit();
    let started = Instant::now();
    let err = provider.list_locations(&token(&emu)).await.unwrap_err();
    assert!(matches!(err.kind(), ProviderErrorKind::RateLimited { retry_after: Some(_) }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(900), "did not wait for the refill");
    assert_eq!(emu.faults().count("GET", "/v1/locations"), 1);
}

/// The emulator's firewalls, over raw HTTP against the reference's shapes
/// and errors (not through our adapter, which could share our assumptions).
#[tokio::test]
async fn firewalls_behave_as_the_api_reference_says() {
    use serde_json::{Value, json};
    let emu = emulator().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", emu.base_url());
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http.request(method, url(path)).bearer_auth(emu.token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
        }
    };
    let rules = json!([
        {"direction": "in", "protocol": "tcp", "port": "443", "source_ips": ["173.245.48.0/20", "2400:cb00::/32"]},
        {"direction": "in", "protocol": "icmp", "source_ips": ["0.0.0.0/0", "::/0"]}
    ]);

    // Bad rules are refused with invalid_input naming the field.
    for bad in [
        json!([{"direction": "in", "protocol": "tcp", "source_ips": ["0.0.0.0/0"]}]),
        json!([{"direction": "in", "protocol": "icmp", "port": "1", "source_ips": ["0.0.0.0/0"]}]),
        json!([{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["10.0.0.1"]}]),
        json!([{"direction": "sideways", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]}]),
        json!([{"direction": "in", "protocol": "tcp", "port": "22", "destination_ips": ["0.0.0.0/0"]}]),
    ] {
        let (status, body) = call(reqwest::Method::POST, "/firewalls", Some(json!({"name": "x", "rules": bad}))).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_input");
        assert_eq!(body["error"]["details"]["fields"][0]["name"], "rules");
    }

    let (status, body) = call(
        reqwest::Method::POST,
        "/firewalls",
        Some(json!({"name": "fw", "labels": {"team": "a"}, "rules": rules,
                    "apply_to": [{"type": "label_selector", "label_selector": {"selector": "team=a"}}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["firewall"]["id"].as_u64().unwrap();
    assert_eq!(body["firewall"]["rules"].as_array().unwrap().len(), 2);
    assert_eq!(body["firewall"]["applied_to"][0]["type"], "label_selector");
    assert_eq!(body["actions"][0]["command"], "apply_firewall");
    let (status, body) = call(reqwest::Method::POST, "/firewalls", Some(json!({"name": "fw"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("uniqueness_error")));

    // A server with matching labels is covered, and says so.
    let server = emu.insert_server("web", BTreeMap::from([("team".to_owned(), "a".to_owned())]));
    let (_, got) = call(reqwest::Method::GET, &format!("/servers/{server}"), None).await;
    assert_eq!(got["server"]["public_net"]["firewalls"][0]["id"].as_u64(), Some(id));
    let (_, got) = call(reqwest::Method::GET, &format!("/firewalls/{id}"), None).await;
    assert_eq!(got["firewall"]["applied_to"][0]["applied_to_resources"][0]["server"]["id"].as_u64(), Some(server));

    // Applying the same selector again, or to a server that does not exist.
    let apply = |target: Value| json!({"apply_to": [target]});
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("/firewalls/{id}/actions/apply_to_resources"),
        Some(apply(json!({"type": "label_selector", "label_selector": {"selector": "team=a"}}))),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("firewall_already_applied")));
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("/firewalls/{id}/actions/apply_to_resources"),
        Some(apply(json!({"type": "server", "server": {"id": 1}}))),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("firewall_resource_not_found")));
    // A server covered through the selector cannot be removed by itself.
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("/firewalls/{id}/actions/remove_from_resources"),
        Some(json!({"remove_from": [{"type": "server", "server": {"id": server}}]})),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("firewall_managed_by_label_selector")));

    // set_rules replaces the rules and re-applies.
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("/firewalls/{id}/actions/set_rules"),
        Some(json!({"rules": [{"direction": "in", "protocol": "tcp", "port": "80-85", "source_ips": ["::/0"]}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["actions"][0]["command"], "set_firewall_rules");
    assert_eq!(body["actions"][1]["command"], "apply_firewall");
    assert_eq!(emu.firewalls()[0].rules.len(), 1);

    // In use: not deleted. Removed from everything: 204, then 404.
    let (status, body) = call(reqwest::Method::DELETE, &format!("/firewalls/{id}"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("resource_in_use")));
    let remove = json!({"remove_from": [{"type": "label_selector", "label_selector": {"selector": "team=a"}}]});
    let path = format!("/firewalls/{id}/actions/remove_from_resources");
    let (status, _) = call(reqwest::Method::POST, &path, Some(remove.clone())).await;
    assert_eq!(status, 201);
    let (status, body) = call(reqwest::Method::POST, &path, Some(remove)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("firewall_already_removed")));
    assert!(emu.firewalls_of(server).is_empty());
    let (status, _) = call(reqwest::Method::DELETE, &format!("/firewalls/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = call(reqwest::Method::DELETE, &format!("/firewalls/{id}"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

/// The adapter's firewall: created with the policy's rules on the
/// deployment's selector, a server created with it is covered at once, and
/// a firewall edited by hand is put back.
#[tokio::test]
async fn the_deployment_firewall_is_kept_as_the_policy_says() {
    use sam_core::ports::{FirewallPolicy, FirewallProtocol, InboundRule};
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    let tok = token(&emu);
    let deployment = sam_core::domain::DeploymentId::new("prod.sam.test").unwrap();
    let policy = FirewallPolicy {
        deployment: deployment.clone(),
        rules: vec![InboundRule {
            protocol: FirewallProtocol::Tcp,
            port: Some(443),
            sources: vec!["173.245.48.0/20".into()],
            description: "edge".into(),
        }],
    };
    let id = provider.ensure_firewall(&tok, &policy).await.unwrap().unwrap();
    let fw = emu.firewalls().into_iter().next().unwrap();
    assert_eq!(fw.id.to_string(), id);
    assert_eq!(fw.name, "sam-prod.sam.test");
    assert_eq!(fw.labels.get("sam-deployment").map(String::as_str), Some("prod.sam.test"));
    assert_eq!(
        fw.applied_to,
        vec![sam_providers::emulators::FirewallTarget::LabelSelector(
            "sam-managed=true,sam-deployment=prod.sam.test".into()
        )]
    );
    assert_eq!(fw.rules.len(), 1);
    assert_eq!((fw.rules[0].protocol.as_str(), fw.rules[0].port.as_deref()), ("tcp", Some("443")));

    // Another deployment in the same project gets its own; nothing shared.
    let other =
        FirewallPolicy { deployment: sam_core::domain::DeploymentId::new("staging").unwrap(), ..policy.clone() };
    let other_id = provider.ensure_firewall(&tok, &other).await.unwrap().unwrap();
    assert_ne!(other_id, id);

    // Someone opens SSH to the world in the console: the next ensure puts
    // the policy back, in place.
    let raw = reqwest::Client::new();
    let opened = raw
        .post(format!("{}/firewalls/{id}/actions/set_rules", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&serde_json::json!({"rules": [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 201);
    assert_eq!(provider.ensure_firewall(&tok, &policy).await.unwrap(), Some(id.clone()));
    let fw = emu.firewalls().into_iter().find(|f| f.id.to_string() == id).unwrap();
    assert_eq!(fw.rules.len(), 1);
    assert_eq!(fw.rules[0].port.as_deref(), Some("443"));

    provider.delete_firewall(&tok, &deployment).await.unwrap();
    assert_eq!(emu.firewalls().len(), 1, "only the other deployment's is left");
    assert_eq!(emu.firewalls()[0].id.to_string(), other_id);
}

/// Projects: each token sees its own project only, as on Hetzner. The same
/// server name may exist in two projects; another project's server or
/// firewall is 404; a label-selector firewall applies to its project's
/// servers only.
#[tokio::test]
async fn projects_see_only_their_own_resources() {
    let emu = HetznerEmulator::start(HetznerEmulatorConfig {
        other_projects: vec![vec!["project-b".into()]],
        readonly_tokens: vec!["project-a-readonly".into()],
        boot_delay: Duration::ZERO,
        ..HetznerEmulatorConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let call = |token: &str, method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let request = http.request(method, format!("{}{path}", emu.base_url())).bearer_auth(token);
        let request = match body {
            Some(b) => request.json(&b),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let a = emu.token();
    let server = |name: &str| serde_json::json!({"name": name, "server_type": "cx23", "image": "ubuntu-24.04", "labels": {"sam-managed": "true"}});
    let (status, in_a) = call(&a, reqwest::Method::POST, "/servers", Some(server("same-name"))).await;
    assert_eq!(status, 201);
    let (status, in_b) = call("project-b", reqwest::Method::POST, "/servers", Some(server("same-name"))).await;
    assert_eq!(status, 201, "the same name in another project: {in_b}");
    let (id_a, id_b) = (in_a["server"]["id"].as_u64().unwrap(), in_b["server"]["id"].as_u64().unwrap());
    assert_ne!(id_a, id_b);
    for (token, own, other) in [(a.as_str(), id_a, id_b), ("project-b", id_b, id_a)] {
        let (_, listed) = call(token, reqwest::Method::GET, "/servers", None).await;
        let ids: Vec<u64> = listed["servers"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![own], "{token} sees its own server only");
        assert_eq!(call(token, reqwest::Method::GET, &format!("/servers/{other}"), None).await.0, 404);
        assert_eq!(call(token, reqwest::Method::DELETE, &format!("/servers/{other}"), None).await.0, 404);
    }
    let (_, readonly) = call("project-a-readonly", reqwest::Method::GET, "/servers", None).await;
    assert_eq!(readonly["servers"][0]["id"].as_u64(), Some(id_a), "the read-only token reads project A");
    assert_eq!(call("nobody", reqwest::Method::GET, "/servers", None).await.0, 401);

    let firewall = serde_json::json!({"name": "fw", "apply_to": [{"type": "label_selector",
        "label_selector": {"selector": "sam-managed=true"}}]});
    let (status, created) = call(&a, reqwest::Method::POST, "/firewalls", Some(firewall)).await;
    assert_eq!(status, 201, "{created}");
    let fw = created["firewall"]["id"].as_u64().unwrap();
    assert_eq!(emu.firewalls_of(id_a), vec![fw]);
    assert!(emu.firewalls_of(id_b).is_empty(), "a selector never reaches another project");
    assert_eq!(call("project-b", reqwest::Method::GET, &format!("/firewalls/{fw}"), None).await.0, 404);
    assert_eq!(emu.servers().len(), 2, "the handle sees every project");
    assert_eq!(emu.servers().iter().map(|s| s.project).collect::<Vec<_>>(), vec![0, 1]);
}

/// Issue 22: with Arm allowed, the adapter picks Hetzner's CAX type where a
/// location offers it cheaper (the emulator's catalogue, as the live one,
/// prices `cax11` below `cx23` in Europe and offers no CAX in Ashburn), and
/// the emulator boots it with the image of that architecture.
#[tokio::test]
async fn arm_types_are_chosen_where_cheaper_when_allowed() {
    let emu = emulator().await;
    let provider = adapter(&emu, no_retry());
    let tok = token(&emu);
    let create = async |location: &str, architectures: &'static [&'static str]| {
        let mut spec = conformance::compute::spec(WorkspaceId::new(), location);
        spec.architectures = architectures;
        let server = provider.create_server(&tok, &spec).await.unwrap();
        provider.delete_server(&tok, &server.id).await.unwrap();
        server.server_type
    };
    assert_eq!(create("fsn1", sam_core::domain::arch::ANY).await, "cax11");
    assert_eq!(create("fsn1", sam_core::domain::arch::X86_ONLY).await, "cx23");
    assert_eq!(create("ash", sam_core::domain::arch::ANY).await, "cpx22", "no Arm type in Ashburn");
}
