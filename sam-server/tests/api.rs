//! HTTP tests of every endpoint against the real server on a random port,
//! built as `serve` builds it, with the Hetzner, Cloudflare and GitHub
//! emulators behind the real adapters: happy path, unauthenticated, another
//! user's workspace, wrong state, invalid and oversized bodies, CSRF, sign-in
//! and sign-out. Every test runs once on SQLite and once on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "../../sam-providers/tests/support/keep_alive.rs"]
mod keep_alive;

#[macro_use]
mod support;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use sam_providers::emulators::{Fault, InjectedError};
use serde_json::{Value, json};
use support::{Backend, HETZNER_TOKEN, Server, workspace_body};

api_suite!(
    the_openapi_document_is_valid_and_complete,
    health_ready_and_jwks,
    sign_in_me_and_sign_out,
    forged_state_and_replayed_code_are_refused,
    every_user_endpoint_needs_a_session,
    cross_origin_posts_are_refused,
    credentials_are_validated_and_never_returned,
    github_listing_is_scoped_to_the_users_installations,
    workspace_lifecycle_over_http,
    invalid_and_oversized_bodies,
    agent_download_serves_the_binary_with_its_checksum,
    the_stream_sends_workspace_changes,
    sign_in_and_token_endpoints_are_rate_limited,
    github_webhooks_are_verified_deduplicated_and_applied,
    a_workspace_cannot_clone_through_someone_elses_installation,
    repository_access_is_per_user_and_per_workspace,
    the_sign_in_policy_admits_only_listed_users_and_organizations,
    another_organization_installs_the_public_app_and_works_through_it,
    personal_access_tokens_are_scoped_revocable_and_never_stored,
);

/// The document is OpenAPI 3.1 with valid JSON Schemas, every `$ref`
/// resolves, and it lists exactly the endpoints of DESIGN.md (plus ours).
async fn the_openapi_document_is_valid_and_complete(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let doc = s.contract.document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} documents no response");
            for (status, response) in responses {
                assert!(response["description"].is_string(), "{method} {path} {status} has no description");
                let code: u16 = status.parse().unwrap();
                if code >= 400 {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}: errors use the error body"
                    );
                }
            }
        }
    }
    documented.sort();
    let mut expected: Vec<&str> = vec![
        "GET /.well-known/jwks.json",
        "GET /api/agent/download",
        "GET /api/agent/devcontainer-cli",
        "POST /api/bootstrap/{token}/progress",
        "GET /api/auth/callback/github",
        "GET /api/auth/github",
        "GET /api/auth/me",
        "POST /api/auth/logout",
        "GET /api/credentials",
        "POST /api/credentials",
        "DELETE /api/credentials/{provider}",
        "DELETE /api/tokens/{id}",
        "GET /api/github/install-url",
        "GET /api/github/installations",
        "GET /api/github/repositories",
        "GET /api/github/repositories/{owner}/{repo}/branches",
        "POST /api/github/webhook",
        "GET /api/health",
        "GET /api/openapi.json",
        "GET /api/ready",
        "GET /api/tokens",
        "POST /api/bootstrap/{token}",
        "POST /api/terminal/token",
        "POST /api/tokens",
        "GET /api/workspace-options",
        "GET /api/workspaces",
        "POST /api/workspaces",
        "GET /api/workspaces/stream",
        "GET /api/workspaces/{id}",
        "DELETE /api/workspaces/{id}",
        "POST /api/workspaces/{id}/stop",
        "POST /api/workspaces/{id}/restart",
        "GET /api/workspaces/{id}/events",
        "POST /api/workspaces/{id}/heartbeat",
        "POST /api/workspaces/{id}/activity",
        "GET /api/workspaces/{id}/ports/{port}/open",
        "POST /api/workspaces/{id}/boot-progress",
        "POST /api/workspaces/{id}/preview-certificate",
        "POST /api/workspaces/{id}/git-credential",
    ];
    expected.sort();
    assert_eq!(documented, expected);

    // Every schema is valid JSON Schema (2020-12), and every $ref resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        let mut schema = schema.clone();
        schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        assert!(jsonschema::meta::is_valid(&schema), "schema {name} is not valid JSON Schema");
    }
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }
    for scheme in ["session", "token", "agent"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object(), "security scheme {scheme}");
    }
    // An access token opens what a session opens, except what needs the
    // browser itself.
    let security = |method: &str, path: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(security("get", "/api/workspaces"), json!([{"session": []}, {"token": []}]));
    assert_eq!(security("post", "/api/workspaces/{id}/stop"), json!([{"session": []}, {"token": []}]));
    assert_eq!(security("post", "/api/tokens"), json!([{"session": []}]));
    assert_eq!(security("get", "/api/workspaces/{id}/ports/{port}/open"), json!([{"session": []}]));
    assert_eq!(security("post", "/api/workspaces/{id}/heartbeat"), json!([{"agent": []}]));

    // The checker every response goes through does catch drift.
    let json = Some("application/json");
    let drifted = |method: &'static str, path: &'static str, status: u16, body: &'static str| {
        let contract = &s.contract;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| contract.check(method, path, status, json, body)))
            .is_err()
    };
    assert!(!drifted("GET", "/api/health", 200, r#"{"status":"ok","version":"1"}"#));
    assert!(drifted("GET", "/api/health", 200, r#"{"status":1,"version":"1"}"#), "wrong type");
    assert!(drifted("GET", "/api/health", 418, r#"{"status":"ok","version":"1"}"#), "undocumented status");
    assert!(drifted("GET", "/api/workspaces/x", 404, r#"{"message":"no error code"}"#), "error body");
    assert!(drifted("GET", "/api/workspaces", 200, r#"[{"id":"not-a-uuid"}]"#), "missing fields, bad format");
    assert!(drifted("GET", "/api/undocumented", 200, "{}"), "an undocumented endpoint");
}

async fn health_ready_and_jwks(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let response = s.client.get(s.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"), "every response carries a request id");
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
    let response = s.client.get(s.url("/api/health")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123", "an incoming request id is kept");
    let (status, _) = s.send(reqwest::Method::GET, "/api/ready", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.send(reqwest::Method::GET, "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["keys"].is_array());
    let (status, body) = s.send(reqwest::Method::GET, "/api/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

async fn sign_in_me_and_sign_out(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.sign_in(101).await;
    let (status, me) = s.get("/api/auth/me", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["githubId"], 101);
    assert_eq!(me["login"], "user101");

    // Signing in again binds to the same account.
    let again = s.sign_in(101).await;
    let (_, me2) = s.get("/api/auth/me", &again).await;
    assert_eq!(me2["id"], me["id"]);

    let (status, _) = s.send(reqwest::Method::POST, "/api/auth/logout", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.get("/api/auth/me", &cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old cookie no longer works");
    assert_eq!(body["error"], "unauthenticated");
    let (status, _) = s.get("/api/auth/me", &again).await;
    assert_eq!(status, StatusCode::OK, "other sessions survive a plain sign-out");
    let (status, _) = s.send(reqwest::Method::POST, "/api/auth/logout?everywhere=true", Some(&again), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/api/auth/me", &again).await.0, StatusCode::UNAUTHORIZED);
}

async fn forged_state_and_replayed_code_are_refused(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let (authorize, oauth_cookie) = s.begin_sign_in().await;
    let (code, state) = s.approve(5, &authorize);

    let forged = s
        .client
        .get(s.url(&format!("/api/auth/callback/github?code={code}&state=forged")))
        .header(COOKIE, &oauth_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let no_cookie =
        s.client.get(s.url(&format!("/api/auth/callback/github?code={code}&state={state}"))).send().await.unwrap();
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);

    let ok = s
        .client
        .get(s.url(&format!("/api/auth/callback/github?code={code}&state={state}")))
        .header(COOKIE, &oauth_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::FOUND);
    let replay = s
        .client
        .get(s.url(&format!("/api/auth/callback/github?code={code}&state={state}")))
        .header(COOKIE, &oauth_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "a code works once");
}

async fn every_user_endpoint_needs_a_session(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let id = sam_core::domain::WorkspaceId::new();
    for (method, path) in [
        ("GET", "/api/auth/me".to_owned()),
        ("GET", "/api/credentials".to_owned()),
        ("POST", "/api/credentials".to_owned()),
        ("DELETE", "/api/credentials/hetzner".to_owned()),
        ("GET", "/api/github/installations".to_owned()),
        ("GET", "/api/github/install-url".to_owned()),
        ("GET", "/api/github/repositories?installation_id=1".to_owned()),
        ("GET", "/api/github/repositories/o/r/branches?installation_id=1".to_owned()),
        ("GET", "/api/workspaces".to_owned()),
        ("POST", "/api/workspaces".to_owned()),
        ("GET", "/api/workspaces/stream".to_owned()),
        ("GET", format!("/api/workspaces/{id}")),
        ("DELETE", format!("/api/workspaces/{id}")),
        ("POST", format!("/api/workspaces/{id}/stop")),
        ("POST", format!("/api/workspaces/{id}/restart")),
        ("GET", format!("/api/workspaces/{id}/events")),
        ("POST", "/api/terminal/token".to_owned()),
        ("POST", "/api/auth/logout".to_owned()),
        ("GET", "/api/workspace-options".to_owned()),
        ("POST", format!("/api/workspaces/{id}/activity")),
        ("GET", format!("/api/workspaces/{id}/ports/3000/open")),
        ("GET", "/api/tokens".to_owned()),
        ("POST", "/api/tokens".to_owned()),
        ("DELETE", "/api/tokens/abc".to_owned()),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let (status, error) = s.send(method.parse().unwrap(), &path, Some("sam_session=forged"), body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(error["error"], "unauthenticated");
        let (status, _) = s.send(method.parse().unwrap(), &path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without cookie");
    }
}

async fn cross_origin_posts_are_refused(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.ready_user(11).await;
    let foreign = s
        .client
        .post(s.url("/api/workspaces"))
        .header(COOKIE, &cookie)
        .header("origin", "https://evil.example")
        .json(&workspace_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let no_origin = s
        .client
        .post(s.url("/api/workspaces"))
        .header(COOKIE, &cookie)
        .json(&workspace_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);
    let same_site = s
        .client
        .post(s.url("/api/workspaces"))
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .json(&workspace_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), StatusCode::CREATED);
    // A method the route does not have is a 405 from any origin, not a 403.
    for (method, path) in [(reqwest::Method::PUT, "/api/workspaces"), (reqwest::Method::PATCH, "/api/credentials")] {
        let wrong = s
            .client
            .request(method.clone(), s.url(path))
            .header(COOKIE, &cookie)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
}

async fn credentials_are_validated_and_never_returned(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.sign_in(21).await;
    let (status, body) = s.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": "wrong"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "token");
    assert!(body["message"].as_str().unwrap().contains("Hetzner rejected"));
    let (status, body) = s.post("/api/credentials", &cookie, json!({"provider": "aws", "token": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "provider");
    s.emulators.hetzner.faults().always("GET", "/v1/servers", Fault::Error(InjectedError::Unavailable));
    let (status, body) =
        s.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    s.emulators.hetzner.faults().clear();
    let (_, list) = s.get("/api/credentials", &cookie).await;
    assert_eq!(list, json!([]), "nothing stored when the provider was down");

    let (status, body) =
        s.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!body.to_string().contains(HETZNER_TOKEN));
    let (_, list) = s.get("/api/credentials", &cookie).await;
    let text = list.to_string();
    assert!(!text.contains(HETZNER_TOKEN), "the token is never returned");
    assert_eq!(list[0]["provider"], "hetzner");
    assert!(list[0]["validatedAt"].is_string());
    assert!(list[0]["locations"].as_array().unwrap().iter().any(|l| l["code"] == "fsn1"));
    let small =
        list[0]["sizes"].as_array().unwrap().iter().find(|o| o["size"] == "small" && o["location"] == "fsn1").unwrap();
    assert_eq!(small["serverType"], "cx23", "deprecated types are skipped");
    assert!(small["hourly"].is_string());

    let (status, _) = s.send(reqwest::Method::DELETE, "/api/credentials/hetzner", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.send(reqwest::Method::DELETE, "/api/credentials/hetzner", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Each write asks Hetzner: at most 10 a minute per user.
    let hetzner_calls = s.emulators.hetzner.faults().requests().len();
    let mut answers = Vec::new();
    for _ in 0..12 {
        answers.push(s.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await);
    }
    let refused = answers.iter().filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS).count();
    assert!((2..=12).contains(&refused), "{answers:?}");
    assert!(answers.iter().any(|(_, body)| body["error"] == "rate_limited"));
    // The refusal says when to come back, as the address limiter's does.
    let refused = s
        .client
        .post(s.url("/api/credentials"))
        .header("origin", &s.base)
        .header(COOKIE, &cookie)
        .json(&json!({"provider": "hetzner", "token": HETZNER_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let asked = s.emulators.hetzner.faults().requests().len() - hetzner_calls;
    assert!(asked <= 10 * 2, "refused writes do not reach Hetzner ({asked} calls)");
}

async fn github_listing_is_scoped_to_the_users_installations(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    // One more repository than a GitHub page holds (100), so the listing
    // has a second page; GitHub sorts them by name, other-org/tool last.
    let mut repositories: Vec<String> = (0..98).map(|i| format!("octo-org/r{i:03}")).collect();
    repositories.extend(["octo-org/hello-world".into(), "octo-org/api".into(), "other-org/tool".into()]);
    let cookie = s.ready_user(31).await;
    s.install_app(31, "octo-org", 31, &repositories.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, installs) = s.get("/api/github/installations", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(installs[0]["accountLogin"], "octo-org");
    let (_, url) = s.get("/api/github/install-url", &cookie).await;
    assert!(url["url"].as_str().unwrap().contains("installations/new"));

    let (status, page1) = s.get("/api/github/repositories?installation_id=31", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["repositories"].as_array().unwrap().len(), 100);
    assert_eq!(page1["nextPage"], 2);
    let (_, page2) = s.get("/api/github/repositories?installation_id=31&page=2", &cookie).await;
    assert_eq!(page2["repositories"][0]["fullName"], "other-org/tool");
    let (_, filtered) = s.get("/api/github/repositories?installation_id=31&page=2&org=octo-org", &cookie).await;
    assert_eq!(filtered["repositories"], json!([]));

    let (status, branches) =
        s.get("/api/github/repositories/octo-org/hello-world/branches?installation_id=31", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(branches, json!(["main", "dev"]));

    let other = s.ready_user(32).await;
    let (status, _) = s.get("/api/github/repositories?installation_id=31", &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's installation is not visible");
    let (status, body) =
        s.get("/api/github/repositories/octo-org/..%2F..%2Fetc/branches?installation_id=32", &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a name no repository can have: {body}");
    // Branches need no installation: GitHub decides from the user's token.
    let (status, branches) = s.get("/api/github/repositories/octo-org/hello-world/branches", &cookie).await;
    assert_eq!((status, branches), (StatusCode::OK, json!(["main", "dev"])));
    for (who, path) in [(&cookie, "ghost-org/nothing"), (&other, "octo-org/r001")] {
        let (status, body) = s.get(&format!("/api/github/repositories/{path}/branches"), who).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["message"], "repository not found", "no upstream text");
    }
}

/// The GitHub id of the user signed in with `cookie`.
async fn id_owner_github(s: &Server, cookie: &str) -> i64 {
    s.get("/api/auth/me", cookie).await.1["githubId"].as_i64().unwrap()
}

/// `POST /api/workspaces/{id}/git-credential` as the workspace's agent.
async fn git_credential(s: &Server, id: &str, bearer: &str) -> (StatusCode, Value) {
    let r = s.client.post(s.url(&format!("/api/workspaces/{id}/git-credential"))).bearer_auth(bearer).send();
    let r = r.await.unwrap();
    let status = r.status();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// What a user reaches is what GitHub grants *them*; every workspace gets
/// its own token for its one repository, which pushes only with the owner's
/// permission; an expired GitHub sign-in renews itself, a dead one asks for
/// a new sign-in; GitHub being down is a 503 with a retry hint.
async fn repository_access_is_per_user_and_per_workspace(backend: Backend) {
    let Some(server) = Server::start(backend).await else { return };
    let s = &server;
    let github = &s.emulators.github;
    let owner = s.ready_user(101).await;
    // A member of the organization whose team grants octo-org/api only, read.
    github.share_installation(101, 102);
    github.restrict_user(101, 102, &["octo-org/api"]);
    github.set_role(101, 102, "read");
    let member = s.sign_in(102).await;
    let (status, body) =
        s.post("/api/credentials", &member, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (_, listed) = s.get("/api/github/repositories?installation_id=101", &member).await;
    assert_eq!(
        listed["repositories"],
        json!([{"fullName": "octo-org/api", "private": true, "defaultBranch": "main", "push": false}])
    );
    let (status, _) = s.get("/api/github/repositories/octo-org/hello-world/branches", &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut body = workspace_body("not-granted");
    body["installationId"] = json!(101);
    let (status, error) = s.post("/api/workspaces", &member, body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");

    // Plays a workspace's agent up to its git credential.
    let agent_credential = async |cookie: &str, name: &str, repository: &str| {
        let mut body = workspace_body(name);
        body["repository"] = json!(repository);
        body["installationId"] = json!(101);
        let (status, ws) = s.post("/api/workspaces", cookie, body).await;
        assert_eq!(status, StatusCode::CREATED, "{ws}");
        let id = ws["id"].as_str().unwrap().to_owned();
        let token = s.bootstrap_token(&id).await;
        let (_, grant) = s.send(reqwest::Method::POST, &format!("/api/bootstrap/{token}"), None, None).await;
        let clone = grant["cloneToken"].as_str().unwrap().to_owned();
        let scope = github.token_scope(&clone).unwrap();
        assert_eq!(scope, (Some(vec![repository.to_owned()]), "read".to_owned()), "the clone reads one repository");
        let callback = grant["callbackToken"].as_str().unwrap().to_owned();
        let (status, _) = git_credential(s, &id, "forged").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, credential) = git_credential(s, &id, &callback).await;
        assert_eq!(status, StatusCode::OK, "{credential}");
        assert_eq!(credential["repository"], repository);
        assert_eq!(credential["username"], "x-access-token");
        let password = credential["password"].as_str().unwrap();
        assert_ne!(password, clone, "a token of its own");
        (credential.clone(), github.token_scope(password).unwrap(), callback)
    };
    let (credential, scope, _) = agent_credential(&owner, "owned", "octo-org/hello-world").await;
    assert_eq!(credential["write"], true);
    assert_eq!(scope, (Some(vec!["octo-org/hello-world".to_owned()]), "write".to_owned()));
    let (credential, scope, _) = agent_credential(&member, "granted", "octo-org/api").await;
    assert_eq!(credential["write"], false);
    assert!(credential["notice"].as_str().unwrap().contains("no push permission"), "{credential}");
    assert_eq!(scope, (Some(vec!["octo-org/api".to_owned()]), "read".to_owned()));

    // Eight hours on: the GitHub sign-in renews itself, once, and listing
    // and creating work.
    github.expire_user_tokens();
    let refreshes = github.refreshes();
    let (status, _) = s.get("/api/github/repositories?installation_id=101", &owner).await;
    assert_eq!(status, StatusCode::OK);
    let mut body = workspace_body("after-eight-hours");
    body["installationId"] = json!(101);
    let (status, ws) = s.post("/api/workspaces", &owner, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    assert_eq!(github.refreshes(), refreshes + 1, "one refresh");
    // GitHub down: 503 with a retry hint.
    github.faults().inject("GET", "/user/installations/101/repositories", Fault::Error(InjectedError::Unavailable), 10);
    let r = s.client.get(s.url("/api/github/repositories?installation_id=101")).header(COOKIE, &owner).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    github.faults().clear();
    // Other failures say what they mean, never GitHub's own text: a refusal
    // is a 403, a missing thing a 404, and only an answer nobody
    // understands a 502.
    for (upstream, status, code) in [
        (403, StatusCode::FORBIDDEN, "not_allowed"),
        (404, StatusCode::NOT_FOUND, "not_found"),
        (422, StatusCode::BAD_GATEWAY, "provider_error"),
        (418, StatusCode::BAD_GATEWAY, "provider_error"),
    ] {
        let path = "/user/installations/101/repositories";
        github.faults().inject("GET", path, Fault::Error(InjectedError::Status(upstream)), 1);
        let (got, body) = s.get("/api/github/repositories?installation_id=101", &owner).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "GitHub {upstream}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(!message.contains("Injected") && !message.contains(&upstream.to_string()), "upstream text: {message}");
    }
    github.faults().clear();
    // A dead refresh token: sign in again, said so.
    github.expire_user_tokens();
    github.revoke_refresh_tokens();
    let (status, body) = s.get("/api/github/installations", &owner).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "signin_required");
    assert!(body["message"].as_str().unwrap().contains("sign in again"), "{body}");
}

async fn workspace_lifecycle_over_http(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.ready_user(41).await;
    let (status, ws) = s.post("/api/workspaces", &cookie, workspace_body("api")).await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    assert_eq!(ws["status"], "creating");
    assert_eq!(ws["vmSize"], "small");
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, body) = s.post("/api/workspaces", &cookie, workspace_body("api")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "name_taken");
    // A workspace's own idle timeout, within the deployment's bounds.
    let (status, options) = s.get("/api/workspace-options", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        options,
        json!({"idleTimeoutSeconds": {"default": 1800, "min": 600, "max": 28800}, "idleWarningSeconds": 300})
    );
    for (seconds, accepted) in [(599, false), (600, true), (28800, true), (28801, false)] {
        let mut body = workspace_body(&format!("idle-{seconds}"));
        body["idleTimeoutSeconds"] = json!(seconds);
        let (status, answer) = s.post("/api/workspaces", &cookie, body).await;
        if accepted {
            assert_eq!(status, StatusCode::CREATED, "{answer}");
            assert_eq!(answer["idleTimeoutSeconds"], seconds);
            assert!(answer["idleStopAt"].is_null(), "no countdown before it runs");
            let other = answer["id"].as_str().unwrap();
            let (status, _) = s.post(&format!("/api/workspaces/{other}/activity"), &cookie, json!({})).await;
            assert_eq!(status, StatusCode::CONFLICT, "only a running workspace is kept running");
            let (status, _) =
                s.send(reqwest::Method::DELETE, &format!("/api/workspaces/{other}"), Some(&cookie), None).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            assert_eq!(answer["field"], "idleTimeoutSeconds");
            assert!(answer["message"].as_str().unwrap().contains("between 10 and 480 minutes"), "{answer}");
        }
    }

    // The background drive creates the server; play the agent.
    let token = s.bootstrap_token(&id).await;
    let (status, _) =
        s.send(reqwest::Method::POST, "/api/terminal/token", Some(&cookie), Some(json!({"workspaceId": id}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "not running yet");

    // The VM reports its own boot with the token, which that does not
    // spend; odd steps and forged tokens are refused.
    let progress = format!("/api/bootstrap/{token}/progress");
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            &progress,
            None,
            Some(json!({"step": "packages", "status": "done", "message": "in 2 s"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        s.send(reqwest::Method::POST, &progress, None, Some(json!({"step": "a step; rm -rf", "status": "done"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            "/api/bootstrap/forged-token/progress",
            None,
            Some(json!({"step": "packages", "status": "done"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, events) = s.get(&format!("/api/workspaces/{id}/events"), &cookie).await;
    assert!(events.as_array().unwrap().iter().any(|e| e["message"] == "packages done: in 2 s"), "{events}");

    // A body that is not the request's shape is refused, and spends nothing.
    let bad = s.client.post(s.url(&format!("/api/bootstrap/{token}"))).body("{\"csr\": 42}").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, grant) = s.send(reqwest::Method::POST, &format!("/api/bootstrap/{token}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(grant["workspaceId"], id);
    assert!(grant.get("originCertificate").is_none(), "no certificate without a request (and no origin CA)");
    assert_eq!(grant["repository"], "octo-org/hello-world");
    let (status, _) = s.send(reqwest::Method::POST, &format!("/api/bootstrap/{token}"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "single use");
    let (status, _) =
        s.send(reqwest::Method::POST, &progress, None, Some(json!({"step": "agent-start", "status": "done"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the agent reports once it has redeemed the token");
    let callback = grant["callbackToken"].as_str().unwrap().to_owned();

    let agent = |path: String, bearer: String, body: Value| {
        let client = s.client.clone();
        let url = s.url(&path);
        async move {
            let r = client.post(url).bearer_auth(bearer).json(&body).send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _) = agent(
        format!("/api/workspaces/{id}/boot-progress"),
        "forged".into(),
        json!({"step": "ready", "status": "done", "message": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The credential is checked before the body is looked at: without one,
    // a 401 whatever the body (not a 422 telling a stranger what it expects).
    for path in ["heartbeat", "boot-progress"] {
        let (status, _) =
            agent(format!("/api/workspaces/{id}/{path}"), "forged".into(), json!({"no": "such field"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = agent(
        format!("/api/workspaces/{id}/boot-progress"),
        callback.clone(),
        json!({"step": "ready", "status": "done", "message": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ws = s.wait_for(&cookie, &id, |w| w["status"] == "running").await;
    let host = format!("ws-{id}.{}", s.emulators.cloudflare.zone_name());
    assert!(ws["url"].as_str().unwrap().starts_with(&format!("https://{host}")), "{ws}");
    assert!(s.emulators.cloudflare.records().iter().any(|r| r.name == host), "the DNS record is set");

    let (status, answer) = agent(
        format!("/api/workspaces/{id}/heartbeat"),
        callback.clone(),
        json!({"idleSeconds": 10, "activeSessions": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["action"], "continue");
    assert_eq!(answer["idleThreshold"], 1800);
    let (_, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    assert_eq!((&ws["agentVersion"], &ws["agentCurrent"]), (&Value::Null, &Value::Null), "no version reported yet");
    // An agent of another version is noticed and shown with the workspace.
    let (status, _) = agent(
        format!("/api/workspaces/{id}/heartbeat"),
        callback.clone(),
        json!({"idleSeconds": 10, "activeSessions": 1, "lastActivityAt": "2026-01-01T00:00:00Z", "agentVersion": "0.0.1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    assert_eq!((&ws["agentVersion"], &ws["agentCurrent"]), (&json!("0.0.1"), &json!(false)), "{ws}");
    let current = env!("CARGO_PKG_VERSION");
    agent(
        format!("/api/workspaces/{id}/heartbeat"),
        callback.clone(),
        json!({"idleSeconds": 1, "agentVersion": current}),
    )
    .await;
    let (_, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    assert_eq!((&ws["agentVersion"], &ws["agentCurrent"]), (&json!(current), &json!(true)), "{ws}");
    // The heartbeat asks which sign-ins its terminals were opened under
    // have ended: a signed-out one, a stranger's, and garbage are; the
    // owner's live one is not.
    let hash = |cookie: &str| sam_core::secret::sha256_hex(cookie.split_once('=').unwrap().1.as_bytes());
    let second = s.sign_in(id_owner_github(&s, &cookie).await).await;
    let (live, signed_out) = (hash(&cookie), hash(&second));
    let (status, _) = s.send(reqwest::Method::POST, "/api/auth/logout", Some(&second), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stranger = hash(&s.sign_in(4343).await);
    let asked = json!({"idleSeconds": 1, "signIns": [live, signed_out, stranger, "not-a-sign-in"]});
    let (status, answer) = agent(format!("/api/workspaces/{id}/heartbeat"), callback.clone(), asked).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["endedSignIns"], json!([signed_out, stranger, "not-a-sign-in"]), "{answer}");
    let other_id = sam_core::domain::WorkspaceId::new();
    let (status, _) =
        agent(format!("/api/workspaces/{other_id}/heartbeat"), callback.clone(), json!({"idleSeconds": 0})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a callback credential works for its own workspace only");

    let (status, access) =
        s.send(reqwest::Method::POST, "/api/terminal/token", Some(&cookie), Some(json!({"workspaceId": id}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(access["url"].as_str().unwrap().contains("/auth/callback?token="));
    assert!(access["expiresAt"].is_string());

    // Previews: the ports a heartbeat reports are listed with the
    // workspace, each opened through a one-time `workspace-preview` token
    // on its own host, for the owner only.
    let ports =
        json!([{"port": 5173, "process": "node"}, {"port": 3000}, {"port": 0}, {"port": 3000, "process": "dup"}]);
    let (status, _) =
        agent(format!("/api/workspaces/{id}/heartbeat"), callback.clone(), json!({"idleSeconds": 1, "ports": ports}))
            .await;
    assert_eq!(status, StatusCode::OK);
    let (_, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    assert_eq!(
        ws["ports"],
        json!([
            {"port": 3000, "process": null, "openUrl": format!("/api/workspaces/{id}/ports/3000/open")},
            {"port": 5173, "process": "node", "openUrl": format!("/api/workspaces/{id}/ports/5173/open")},
        ]),
        "valid ports, once each, lowest first"
    );
    let open = |path: String, cookie: Option<String>| {
        let mut request = s.client.get(s.url(&path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        async move {
            let response = request.send().await.unwrap();
            let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
            (response.status(), location)
        }
    };
    let (status, location) =
        open(format!("/api/workspaces/{id}/ports/5173/open?path=%2Fapp%3Fx%3D1"), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    let preview = format!("https://p5173-{host}/__sam/preview/callback?token=");
    assert!(location.starts_with(&preview), "{location}");
    assert!(location.ends_with("&next=/app%3Fx%3D1"), "{location}");
    let token = location[preview.len()..].split('&').next().unwrap();
    let claims: Value = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims["aud"], "workspace-preview", "never a terminal token: {claims}");
    assert_eq!(claims["workspace"], id.as_str());
    // Another site's path is not followed there.
    let (_, location) =
        open(format!("/api/workspaces/{id}/ports/5173/open?path=//evil.example"), Some(cookie.clone())).await;
    assert!(location.unwrap().ends_with("&next=/"));
    for (path, expected) in [
        (format!("/api/workspaces/{id}/ports/0/open"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/api/workspaces/{id}/ports/65536/open"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/api/workspaces/{id}/ports/http/open"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/api/workspaces/{}/ports/3000/open", sam_core::domain::WorkspaceId::new()), StatusCode::NOT_FOUND),
        ("/api/workspaces/not-an-id/ports/3000/open".to_owned(), StatusCode::NOT_FOUND),
    ] {
        assert_eq!(open(path.clone(), Some(cookie.clone())).await.0, expected, "{path}");
    }
    assert_eq!(open(format!("/api/workspaces/{id}/ports/3000/open"), None).await.0, StatusCode::UNAUTHORIZED);
    // The agent asks for the preview name of a port (the edge's record,
    // where the workspace's own points); with its own credential only.
    let (status, answer) =
        agent(format!("/api/workspaces/{id}/preview-certificate"), callback.clone(), json!({"port": 5173})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["hostname"], format!("p5173-{host}"));
    let records = s.emulators.cloudflare.records();
    let own = records.iter().find(|r| r.name == host).unwrap();
    let preview = records.iter().find(|r| r.name == format!("p5173-{host}")).expect("the preview's record");
    assert_eq!(
        (preview.content.as_str(), preview.proxied),
        (own.content.as_str(), own.proxied),
        "like the workspace's own"
    );
    for (credential, body, expected) in [
        ("forged".to_owned(), json!({"port": 5173}), StatusCode::UNAUTHORIZED),
        (callback.clone(), json!({"port": 0}), StatusCode::UNPROCESSABLE_ENTITY),
        (callback.clone(), json!({"port": 5173, "csr": "hello"}), StatusCode::UNPROCESSABLE_ENTITY),
        (callback.clone(), json!({"port": "http"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, answer) =
            agent(format!("/api/workspaces/{id}/preview-certificate"), credential, body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }

    // The idle countdown: the deployment's default threshold, a warning 5
    // minutes before the stop, measured from the last reported activity;
    // "I'm still here" (the dashboard) moves it to now, and the agent's
    // next heartbeat, which knows nothing of it, does not move it back.
    let (_, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    let at = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(ws["idleTimeoutSeconds"], 1800);
    assert_eq!(at(&ws["idleStopAt"]) - at(&ws["idleWarningAt"]), time::Duration::minutes(5));
    let before = at(&ws["idleStopAt"]);
    agent(format!("/api/workspaces/{id}/heartbeat"), callback.clone(), json!({"idleSeconds": 1500})).await;
    let (status, ws) = s.post(&format!("/api/workspaces/{id}/activity"), &cookie, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{ws}");
    let extended = at(&ws["idleStopAt"]);
    assert!(extended >= before, "{before} then {extended}");
    assert!(extended - time::OffsetDateTime::now_utc() > time::Duration::minutes(29), "{extended}");
    let (status, answer) =
        agent(format!("/api/workspaces/{id}/heartbeat"), callback.clone(), json!({"idleSeconds": 1700})).await;
    assert_eq!((status, answer["action"].as_str()), (StatusCode::OK, Some("continue")), "{answer}");
    let (_, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    assert_eq!(at(&ws["idleStopAt"]), extended);
    let (status, _) =
        s.post(&format!("/api/workspaces/{}/activity", sam_core::domain::WorkspaceId::new()), &cookie, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, list) = s.get("/api/workspaces?status=running", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, body) = s.get("/api/workspaces?status=bogus", &cookie).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "status");

    // Another user sees nothing, and gets 404 (never 403) for it.
    let other = s.ready_user(42).await;
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/workspaces/{id}")),
        (reqwest::Method::POST, format!("/api/workspaces/{id}/stop")),
        (reqwest::Method::DELETE, format!("/api/workspaces/{id}")),
        (reqwest::Method::GET, format!("/api/workspaces/{id}/events")),
        (reqwest::Method::GET, format!("/api/workspaces/{id}/ports/3000/open")),
    ] {
        let (status, _) = s.send(method, &path, Some(&other), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) =
        s.send(reqwest::Method::POST, "/api/terminal/token", Some(&other), Some(json!({"workspaceId": id}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, ws) = s.send(reqwest::Method::POST, &format!("/api/workspaces/{id}/stop"), Some(&cookie), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(ws["ports"], json!([]), "a workspace that is not running lists no ports");
    let (status, _) = s.get(&format!("/api/workspaces/{id}/ports/3000/open"), &cookie).await;
    assert_eq!(status, StatusCode::CONFLICT, "no preview of a workspace that is not running");
    assert_eq!(ws["status"], "stopping");
    let ws = s.wait_for(&cookie, &id, |w| w["status"] == "stopped").await;
    assert_eq!(ws["statusReason"], "user");
    assert!(
        !s.emulators.cloudflare.records().iter().any(|r| r.name.starts_with('p')),
        "the preview's record went with the workspace"
    );
    // Its server is gone, and with it the credential its agent was given
    // (which still had 30 days to live): a copy of it speaks for nothing.
    for path in ["heartbeat", "git-credential"] {
        let (status, _) =
            agent(format!("/api/workspaces/{id}/{path}"), callback.clone(), json!({"idleSeconds": 0})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with a stopped server's credential");
    }
    let (status, body) =
        s.send(reqwest::Method::POST, &format!("/api/workspaces/{id}/stop"), Some(&cookie), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "invalid_state");
    let (status, _) =
        s.send(reqwest::Method::POST, "/api/terminal/token", Some(&cookie), Some(json!({"workspaceId": id}))).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, events) = s.get(&format!("/api/workspaces/{id}/events"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"create_requested"));
    assert!(names.contains(&"stop_finished"));

    let (status, _) =
        s.send(reqwest::Method::POST, &format!("/api/workspaces/{id}/restart"), Some(&cookie), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = s.send(reqwest::Method::DELETE, &format!("/api/workspaces/{id}"), Some(&cookie), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut last = Value::Null;
    for _ in 0..2000 {
        let (status, ws) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        last = ws;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _) = s.get(&format!("/api/workspaces/{id}"), &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "never deleted; last seen {last}");
    let (status, _) =
        agent(format!("/api/workspaces/{id}/heartbeat"), callback.clone(), json!({"idleSeconds": 0})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted workspace's credential");
    assert!(s.emulators.hetzner.servers().is_empty(), "nothing left at the provider");
    assert!(s.emulators.cloudflare.records().is_empty(), "nothing left in the zone");
}

async fn invalid_and_oversized_bodies(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.ready_user(51).await;
    for (field, body) in [
        (
            "name",
            json!({"name": "<script>", "repository": "octo-org/hello-world", "branch": "main", "vmSize": "small", "vmLocation": "fsn1"}),
        ),
        (
            "repository",
            json!({"name": "a", "repository": "../x", "branch": "main", "vmSize": "small", "vmLocation": "fsn1"}),
        ),
        (
            "branch",
            json!({"name": "a", "repository": "o/r", "branch": "--upload-pack=x", "vmSize": "small", "vmLocation": "fsn1"}),
        ),
        ("vmSize", json!({"name": "a", "repository": "o/r", "branch": "main", "vmSize": "huge", "vmLocation": "fsn1"})),
        (
            "vmLocation",
            json!({"name": "a", "repository": "octo-org/hello-world", "branch": "main", "vmSize": "small", "vmLocation": "mars1"}),
        ),
    ] {
        let (status, response) = s.post("/api/workspaces", &cookie, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {response}");
        assert_eq!(response["field"], field);
    }
    let (status, _) = s.post("/api/workspaces", &cookie, json!({"name": "a"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "missing fields");
    let big = "x".repeat(100 * 1024);
    let (status, _) = s.post("/api/workspaces", &cookie, json!({"name": big})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = s.post("/api/workspaces", &cookie, json!({"name": "a", "repository": "unknown-org/x", "branch": "main", "vmSize": "small", "vmLocation": "fsn1"})).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(body["message"].as_str().unwrap().contains("Install the SAM GitHub App on unknown-org"));
}

async fn agent_download_serves_the_binary_with_its_checksum(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let (status, body) = s.send(reqwest::Method::GET, "/api/agent/download?arch=arm64", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("arm64"));
    let (status, _) = s.send(reqwest::Method::GET, "/api/agent/download?arch=sparc", None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let binary = b"\x7fELF fake agent".repeat(1000);
    std::fs::write(sam_server::api::agent_path(&s.agent_dir, "amd64"), &binary).unwrap();
    let response = s.client.get(s.url("/api/agent/download?arch=amd64")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-agent-version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(response.headers()["content-length"], binary.len().to_string().as_str());
    let sha = response.headers()["x-agent-sha256"].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), binary.as_slice());
    assert_eq!(sha, sam_core::secret::sha256_hex(&binary));

    // Streamed from disk, at most 16 at once: slow readers (bodies not
    // read) hold their slot; the next one is told to retry.
    let big = vec![7u8; 8 * 1024 * 1024];
    std::fs::write(sam_server::api::agent_path(&s.agent_dir, "amd64"), &big).unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        let response = s.client.get(s.url("/api/agent/download?arch=amd64")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        held.push(response);
    }
    let busy = s.client.get(s.url("/api/agent/download?arch=amd64")).send().await.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "2");
    drop(held);
    // A replaced binary is hashed again.
    let mut freed = None;
    for _ in 0..50 {
        let response = s.client.get(s.url("/api/agent/download?arch=amd64")).send().await.unwrap();
        if response.status() == StatusCode::OK {
            freed = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let freed = freed.expect("slots freed once the readers left");
    assert_eq!(freed.headers()["x-agent-sha256"].to_str().unwrap(), sam_core::secret::sha256_hex(&big));
    assert_eq!(freed.bytes().await.unwrap().len(), big.len());

    // The devcontainer CLI bundle: a 404 that says so (VMs then use npm),
    // or the pinned package with its checksum.
    let (status, body) = s.send(reqwest::Method::GET, "/api/agent/devcontainer-cli", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "devcontainer_cli_not_found");
    let bundle = b"\x1f\x8b fake package".repeat(100);
    std::fs::write(s.agent_dir.join(sam_server::api::devcontainer_cli_file()), &bundle).unwrap();
    let response = s.client.get(s.url("/api/agent/devcontainer-cli")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-devcontainer-cli-version"], sam_core::cloud_init::DEVCONTAINER_CLI_VERSION);
    let sha = response.headers()["x-sha256"].to_str().unwrap().to_owned();
    assert_eq!(sha, sam_core::secret::sha256_hex(&response.bytes().await.unwrap()));
    assert_eq!(sha, sam_core::secret::sha256_hex(&bundle));
}

/// The version the image's `npm pack` stage, the test tools and cloud-init
/// use is one.
#[test]
fn one_devcontainer_cli_version_everywhere() {
    let pinned = sam_core::cloud_init::DEVCONTAINER_CLI_VERSION;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("ARG DEVCONTAINER_CLI_VERSION={pinned}\n")), "Dockerfile");
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("scripts/devcontainer/package.json")).unwrap())
            .unwrap();
    assert_eq!(package["dependencies"]["@devcontainers/cli"], pinned, "scripts/devcontainer/package.json");
}

async fn the_stream_sends_workspace_changes(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.ready_user(61).await;
    let (_, ws) = s.post("/api/workspaces", &cookie, workspace_body("streamed")).await;
    let mut response = s.client.get(s.url("/api/workspaces/stream")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains("event: workspace") && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(2), response.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("event: workspace"), "{seen}");
    assert!(seen.contains(ws["id"].as_str().unwrap()));

    // A change arrives as it is committed (the change feed), not on a poll:
    // the stop's `stopping`, then the workspace's end.
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, _) = s.post(&format!("/api/workspaces/{id}/stop"), &cookie, json!({})).await;
    assert!(status.is_success(), "{status}");
    let started = tokio::time::Instant::now();
    seen.clear();
    while !(seen.contains("\"stopping\"") || seen.contains("\"stopped\"")) && started.elapsed() < Duration::from_secs(5)
    {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains(&id) && (seen.contains("\"stopping\"") || seen.contains("\"stopped\"")), "{seen}");

    // A user holds at most 8 live streams; closing one frees its place.
    let open = |cookie: String| {
        let request = s.client.get(s.url("/api/workspaces/stream")).header(COOKIE, cookie);
        async move { request.send().await.unwrap() }
    };
    let mut more = Vec::new();
    for _ in 1..8 {
        let r = open(cookie.clone()).await;
        assert_eq!(r.status(), StatusCode::OK);
        more.push(r);
    }
    let refused = open(cookie.clone()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "too_many_streams");
    drop(more.pop());
    let mut freed = None;
    for _ in 0..50 {
        let r = open(cookie.clone()).await;
        if r.status() == StatusCode::OK {
            freed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed.is_some(), "a closed stream gives its place back");
    drop((freed, more));

    // Signing out ends the session's streams at once (announced by the
    // store, not found by a periodic check, which runs every 30 s).
    let (status, _) = s.send(reqwest::Method::POST, "/api/auth/logout", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ended =
        tokio::time::timeout(Duration::from_secs(3), async { while let Ok(Some(_)) = response.chunk().await {} }).await;
    assert!(ended.is_ok(), "the stream of a signed-out session ends");
}

async fn sign_in_and_token_endpoints_are_rate_limited(backend: Backend) {
    let Some(s) = Server::start_with_rate_limit(backend, 5).await else { return };
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = s.client.get(s.url("/api/auth/github")).send().await.unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            assert_eq!(response.json::<Value>().await.unwrap()["error"], "rate_limited");
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::FOUND).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 2);
    let (status, _) = s.send(reqwest::Method::GET, "/api/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "other endpoints are not limited");

    // Behind a proxy naming the client (Cloudflare's CF-Connecting-IP),
    // each client has its own budget: one client's loop locks out no one
    // else, though every request comes from the proxy's address.
    let Some(s) = Server::start_configured(backend, 5, &[("--client-ip-header", "CF-Connecting-IP")]).await else {
        return;
    };
    let from = async |ip: &str| {
        s.client.get(s.url("/api/auth/github")).header("cf-connecting-ip", ip).send().await.unwrap().status()
    };
    for _ in 0..5 {
        assert_eq!(from("198.51.100.1").await, StatusCode::FOUND);
    }
    assert_eq!(from("198.51.100.1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(from("198.51.100.2").await, StatusCode::FOUND, "another client is not locked out");

    // An agent's heartbeats and reports: a budget per workspace.
    let path = format!("/api/workspaces/{}/heartbeat", sam_core::domain::WorkspaceId::new());
    let mut limited = None;
    for n in 0..130 {
        let response =
            s.client.post(s.url(&path)).json(&json!({"idleSeconds": 1, "activeSessions": 0})).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(n);
            break;
        }
    }
    assert_eq!(limited, Some(120), "120 a minute per workspace");
}

async fn github_webhooks_are_verified_deduplicated_and_applied(backend: Backend) {
    use sam_core::domain::InstallationId;

    let Some(s) = Server::start(backend).await else { return };
    let github = &s.emulators.github;
    let url = s.url("/api/github/webhook");
    let store = s.store.clone();

    let created = github.installation_payload("created", 777);
    let body = serde_json::to_vec(&created).unwrap();
    let delivery =
        github.send_webhook_raw(&url, "installation", "d-1", &body, Some(&github.sign(&body))).await.unwrap();
    assert_eq!(delivery.status, 200, "{}", delivery.body);
    let stored = store.get_installation(InstallationId(777)).await.unwrap().expect("recorded");
    assert!(stored.is_usable());

    let replay = github.send_webhook_raw(&url, "installation", "d-1", &body, Some(&github.sign(&body))).await.unwrap();
    assert_eq!(replay.status, 200);
    assert!(replay.body.contains("duplicate"));

    let forged = github
        .send_webhook_raw(&url, "installation", "d-2", &body, Some(&format!("sha256={}", "0".repeat(64))))
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    let unsigned = github.send_webhook_raw(&url, "installation", "d-3", &body, None).await.unwrap();
    assert_eq!(unsigned.status, 401);
    let malformed = github.send_webhook_raw(&url, "installation", "d-4", &body, Some("sha1=abc")).await.unwrap();
    assert_eq!(malformed.status, 401);
    let tampered = br#"{"action":"deleted"}"#;
    let wrong_body =
        github.send_webhook_raw(&url, "installation", "d-5", tampered, Some(&github.sign(&body))).await.unwrap();
    assert_eq!(wrong_body.status, 401, "the signature covers the exact body");
    // A large delivery (an installation on many repositories) up to the
    // verifier's 1 MiB is taken, not refused by the API's 64 KiB limit.
    let mut large = github.installation_payload("created", 778);
    large["repositories"] =
        serde_json::json!((0..4000).map(|i| json!({"full_name": format!("octo-org/r{i}")})).collect::<Vec<_>>());
    let body = serde_json::to_vec(&large).unwrap();
    assert!(body.len() > 100 * 1024, "{}", body.len());
    let delivery =
        github.send_webhook_raw(&url, "installation", "d-6", &body, Some(&github.sign(&body))).await.unwrap();
    assert_eq!(delivery.status, 200, "{}", delivery.body);

    // After "deleted", new workspaces through it are refused with a clear message.
    let cookie = s.ready_user(81).await;
    let deleted =
        github.send_webhook(&url, "installation", &github.installation_payload("deleted", 777)).await.unwrap();
    assert_eq!(deleted.status, 200);
    assert!(!store.get_installation(InstallationId(777)).await.unwrap().unwrap().is_usable());
    // GitHub may still list it for a moment; the recorded uninstall wins.
    s.install_app(777, "octo-org", 81, &["octo-org/hello-world"]);
    let mut body = workspace_body("after-uninstall");
    body["installationId"] = json!(777);
    let (status, error) = s.post("/api/workspaces", &cookie, body).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(error["message"].as_str().unwrap().contains("uninstalled"), "{error}");
}

async fn a_workspace_cannot_clone_through_someone_elses_installation(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let _alice = s.ready_user(91).await; // installation 91 on octo-org, visible to alice only
    let bob = s.ready_user(92).await;
    let mut body = workspace_body("borrowed");
    body["installationId"] = json!(91);
    let (status, error) = s.post("/api/workspaces", &bob, body).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{error}");
    assert_eq!(error["error"], "app_not_installed");
    let (status, _) = s.post("/api/workspaces", &bob, workspace_body("own")).await;
    assert_eq!(status, StatusCode::CREATED, "bob's own installation works");
}

/// The dashboard's reason labels (`REASONS` in `web/app.js`) are keyed by the
/// `Reason` enum of the OpenAPI document, so a reason added to the API
/// without a label (or a label for a reason that no longer exists) fails here.
#[test]
fn the_pages_label_every_status_reason_the_api_documents() {
    let document: Value = serde_json::from_str(sam_server::api::openapi::document()).unwrap();
    let mut documented: Vec<String> = document["components"]["schemas"]["Reason"]["enum"]
        .as_array()
        .expect("the Reason enum is in the document")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let app = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/web/app.js")).unwrap();
    let block = app.split("export const REASONS = {").nth(1).and_then(|rest| rest.split("};").next()).unwrap();
    let mut labelled: Vec<String> = block
        .split(',')
        .filter_map(|entry| entry.split_once(':'))
        .map(|(key, _)| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .collect();
    documented.sort();
    labelled.sort();
    assert_eq!(labelled, documented);
    let schema = &document["components"]["schemas"]["WorkspaceView"]["properties"]["statusReason"];
    assert!(schema.to_string().contains("Reason"), "statusReason refers to the enum: {schema}");
}

/// An operator's list: a user by numeric id and an organization's members
/// get in; anyone else is sent back to the landing page with the reason and
/// no session, also someone who left the organization (the recheck of a
/// live session is in `sam-core`'s accounts tests, on a manual clock). A
/// private app's install URL says so.
async fn the_sign_in_policy_admits_only_listed_users_and_organizations(backend: Backend) {
    let extra = [("--allowed-users", "201"), ("--allowed-organizations", "acme-org"), ("--github-app-public", "false")];
    let Some(s) = Server::start_with(backend, &extra).await else { return };
    let listed = s.sign_in(201).await;
    let (status, me) = s.get("/api/auth/me", &listed).await;
    assert_eq!((status, me["login"].as_str()), (StatusCode::OK, Some("user201")));
    let (_, install) = s.get("/api/github/install-url", &listed).await;
    assert_eq!(install["public"], false, "{install}");

    let refused = s.sign_in_callback(202).await;
    assert_eq!(refused.status(), StatusCode::FOUND);
    assert_eq!(refused.headers()["location"], "/?signin=refused");
    assert!(
        !refused.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("sam_session=")),
        "no session"
    );

    // A member of acme-org sees the app's installation there.
    s.install_app(203, "acme-org", 203, &["acme-org/app"]);
    let member = s.sign_in(203).await;
    let (status, _) = s.get("/api/auth/me", &member).await;
    assert_eq!(status, StatusCode::OK);
    // Without the organization's installation, no way in.
    s.emulators.github.remove_installation(203);
    let again = s.sign_in_callback(203).await;
    assert_eq!(again.headers()["location"], "/?signin=refused");
}

/// Someone from another organization installs the (public) app on their
/// organization on GitHub's install page and creates a workspace through
/// it; a private app refuses them there, and SAM's install URL says why.
async fn another_organization_installs_the_public_app_and_works_through_it(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let github = &s.emulators.github;
    github.configure(|c| c.install_accounts = vec!["far-org".into()]);
    let cookie = s.sign_in(301).await;
    let (status, body) =
        s.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, install) = s.get("/api/github/install-url", &cookie).await;
    assert_eq!(install["public"], true);
    let install_on = async |account: &str| {
        let url = format!("{}?as=user301", install["url"].as_str().unwrap());
        let r = s.client.post(url).form(&[("account", account)]).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    };

    // A private app: GitHub refuses, naming the reason.
    github.configure(|c| c.app_public = false);
    let (status, page) = install_on("far-org").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("private GitHub App"), "{page}");

    github.configure(|c| c.app_public = true);
    let (status, page) = install_on("far-org").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, installations) = s.get("/api/github/installations", &cookie).await;
    let far = installations.as_array().unwrap().iter().find(|i| i["accountLogin"] == "far-org").expect("listed");
    assert_eq!(far["accountType"], "Organization");
    let mut body = workspace_body("far");
    body["repository"] = json!("far-org/hello-world");
    let (status, ws) = s.post("/api/workspaces", &cookie, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let token = s.bootstrap_token(ws["id"].as_str().unwrap()).await;
    let (status, grant) = s.send(reqwest::Method::POST, &format!("/api/bootstrap/{token}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let scope = github.token_scope(grant["cloneToken"].as_str().unwrap()).unwrap();
    assert_eq!(scope.0, Some(vec!["far-org/hello-world".to_owned()]));

    // SAM configured with a private app tells its users.
    let Some(private) = Server::start_with(backend, &[("--github-app-public", "false")]).await else { return };
    let cookie = private.sign_in(302).await;
    let (_, install) = private.get("/api/github/install-url", &cookie).await;
    assert_eq!(install["public"], false);
}

/// Issue 21: answers sent before the request's body is read (405, 401,
/// 403, 404) must not break the kept-alive connection (before the fix,
/// every one with a 60 kB body did): thousands of them, each with a body,
/// on reused connections, and not one reset. (A server may close a
/// connection, but only by saying `Connection: close`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_keep_the_connection_usable() {
    let Some(s) = Server::start(Backend::Sqlite).await else { return };
    let addr = s.base.strip_prefix("http://").unwrap();
    let requests = [
        ("POST", "/api/health", ""),
        ("POST", "/api/workspaces", ""),
        ("POST", "/api/no-such-route", ""),
        ("POST", "/api/credentials", "Origin: https://evil.example\r\n"),
        ("DELETE", "/api/workspaces/not-an-id", ""),
    ];
    let outcome = keep_alive::hammer(addr, &requests, &[4096, 60_000], 2000).await;
    assert_eq!(outcome, keep_alive::Outcome { answered: 2000, closed: 0, resets: 0 });
}

/// Issue 22: a personal access token, created from the dashboard's session
/// and shown once, lets a program call the API without a cookie or an
/// Origin; `read` tokens only read; a token cannot manage tokens or sign
/// out; a revoked token stops working at once, and so do the terminals
/// opened with it (the agent's heartbeat learns it).
async fn personal_access_tokens_are_scoped_revocable_and_never_stored(backend: Backend) {
    let Some(s) = Server::start(backend).await else { return };
    let cookie = s.ready_user(61).await;
    let bearer = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        // No cookie and no Origin: a program, not a browser.
        let mut request = s.client.request(method, s.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, write) =
        s.post("/api/tokens", &cookie, json!({"name": "laptop CLI", "scope": "write", "expiresInDays": 30})).await;
    assert_eq!(status, StatusCode::CREATED, "{write}");
    let write_token = write["token"].as_str().unwrap().to_owned();
    assert!(write_token.starts_with("sam_pat_") && write_token.len() > 40, "{write_token}");
    let (_, read) = s.post("/api/tokens", &cookie, json!({"name": "dashboard script", "scope": "read"})).await;
    let read_token = read["token"].as_str().unwrap().to_owned();
    assert!(read["expiresAt"].is_null(), "no expiry asked: until revoked");
    let (status, list) = s.get("/api/tokens", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&write_token[8..]), "listed without the token");
    for (body, field) in [
        (json!({"name": "", "scope": "read"}), "name"),
        (json!({"name": "x", "scope": "admin"}), "scope"),
        (json!({"name": "x", "scope": "read", "expiresInDays": 0}), "expiresInDays"),
        (json!({"name": "x", "scope": "read", "expiresInDays": 367}), "expiresInDays"),
    ] {
        let (status, answer) = s.post("/api/tokens", &cookie, body).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{answer}");
    }

    // Programs: reading with either, writing only with the write token.
    let (status, me) = bearer(reqwest::Method::GET, "/api/auth/me", &read_token, None).await;
    assert_eq!((status, me["login"].is_string()), (StatusCode::OK, true), "{me}");
    let (status, answer) =
        bearer(reqwest::Method::POST, "/api/workspaces", &read_token, Some(workspace_body("cli"))).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")));
    let (status, ws) =
        bearer(reqwest::Method::POST, "/api/workspaces", &write_token, Some(workspace_body("cli"))).await;
    assert_eq!(status, StatusCode::CREATED, "no Origin needed with a token: {ws}");
    let id = ws["id"].as_str().unwrap().to_owned();
    let (status, list) = bearer(reqwest::Method::GET, "/api/workspaces", &read_token, None).await;
    assert_eq!((status, list.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    // A token cannot make tokens, nor sign a browser out.
    let (status, answer) =
        bearer(reqwest::Method::POST, "/api/tokens", &write_token, Some(json!({"name": "x", "scope": "write"}))).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("browser_session_required")));
    let (status, _) = bearer(reqwest::Method::POST, "/api/auth/logout", &write_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor open a preview (it runs the user's app: a signed-in browser only).
    let (status, answer) =
        bearer(reqwest::Method::GET, &format!("/api/workspaces/{id}/ports/3000/open"), &write_token, None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("browser_session_required")));
    // Garbage, and a bad token beside a good cookie: the token decides.
    for token in ["sam_pat_forged", "not-a-token", &"sam_pat_x".repeat(40)] {
        let (status, _) = bearer(reqwest::Method::GET, "/api/workspaces", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:.20}");
    }
    let mixed = s
        .client
        .get(s.url("/api/workspaces"))
        .header(reqwest::header::COOKIE, &cookie)
        .bearer_auth("sam_pat_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), StatusCode::UNAUTHORIZED);

    // A terminal opened with the token is tied to it: the agent's heartbeat
    // asks, and learns when it is revoked.
    let token = s.bootstrap_token(&id).await;
    let (status, grant) = s.send(reqwest::Method::POST, &format!("/api/bootstrap/{token}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let callback = grant["callbackToken"].as_str().unwrap().to_owned();
    let ready = s
        .client
        .post(s.url(&format!("/api/workspaces/{id}/boot-progress")))
        .bearer_auth(&callback)
        .json(&json!({"step": "ready", "status": "done", "message": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::NO_CONTENT);
    s.wait_for(&cookie, &id, |w| w["status"] == "running").await;
    let (status, access) =
        bearer(reqwest::Method::POST, "/api/terminal/token", &write_token, Some(json!({"workspaceId": id}))).await;
    assert_eq!(status, StatusCode::OK, "{access}");
    let sign_in = sam_core::secret::sha256_hex(write_token.as_bytes());
    let heartbeat = async || {
        let answer: Value = s
            .client
            .post(s.url(&format!("/api/workspaces/{id}/heartbeat")))
            .bearer_auth(&callback)
            .json(&json!({"idleSeconds": 1, "signIns": [sign_in]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Absent when nothing ended.
        answer["endedSignIns"].as_array().cloned().unwrap_or_default()
    };
    assert_eq!(heartbeat().await, Vec::<Value>::new(), "the token is live");

    // Revoked: at once for the API, at the next heartbeat for terminals.
    let token_id = write["id"].as_str().unwrap();
    let (status, _) = s.send(reqwest::Method::DELETE, &format!("/api/tokens/{token_id}"), Some(&cookie), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = bearer(reqwest::Method::GET, "/api/workspaces", &write_token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(heartbeat().await, vec![json!(sign_in)]);
    let (status, _) = s.send(reqwest::Method::DELETE, &format!("/api/tokens/{token_id}"), Some(&cookie), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another user cannot revoke the read token.
    let other = s.ready_user(62).await;
    let read_id = read["id"].as_str().unwrap();
    let (status, _) = s.send(reqwest::Method::DELETE, &format!("/api/tokens/{read_id}"), Some(&other), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = bearer(reqwest::Method::GET, "/api/workspaces", &read_token, None).await;
    assert_eq!(status, StatusCode::OK);
}
