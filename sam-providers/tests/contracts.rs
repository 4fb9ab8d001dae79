//! The emulators against the providers' own OpenAPI descriptions (vendored
//! in `tests/contracts/`, see its README): every call SAM's adapters, setup
//! and dev mode make — and the ones real clients make that issue 18 lists —
//! is sent to the emulator, and each answer, success or error, must match
//! the description of that operation. Each test also fails when an
//! operation of its list was never answered successfully.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/openapi.rs"]
mod openapi;

use openapi::Checked;
use sam_providers::emulators::{HetznerEmulator, HetznerEmulatorConfig};
use serde_json::json;

#[tokio::test]
async fn hetzner_answers_as_its_description_says() {
    let contract = openapi::load("hetzner");
    let emu = HetznerEmulator::start(HetznerEmulatorConfig {
        boot_delay: std::time::Duration::from_millis(0),
        ..HetznerEmulatorConfig::default()
    })
    .await
    .unwrap();
    let api = Checked {
        http: reqwest::Client::new(),
        base: emu.base_url().to_owned(),
        token: emu.token(),
        contract: &contract,
    };

    // Catalogue: lists, filters, one by id.
    let (status, types) = api.call("GET", "/server_types?name=cx33", None).await;
    assert_eq!(status, 200);
    let types = types["server_types"].as_array().unwrap();
    assert!(types.len() == 1 && types[0]["name"] == "cx33", "the name filter: {types:?}");
    let type_id = types[0]["id"].as_u64().unwrap();
    assert_eq!(api.call("GET", &format!("/server_types/{type_id}"), None).await.0, 200);
    assert_eq!(api.call("GET", "/server_types/999999", None).await.0, 404);
    let (_, locations) = api.call("GET", "/locations?name=hel1", None).await;
    let locations = locations["locations"].as_array().unwrap();
    assert!(locations.len() == 1 && locations[0]["name"] == "hel1", "{locations:?}");
    let location_id = locations[0]["id"].as_u64().unwrap();
    assert_eq!(api.call("GET", &format!("/locations/{location_id}"), None).await.0, 200);
    assert_eq!(api.call("GET", "/locations/999999", None).await.0, 404);
    let (_, datacenters) = api.call("GET", "/datacenters", None).await;
    let datacenter_id = datacenters["datacenters"][0]["id"].as_u64().unwrap();
    assert_eq!(api.call("GET", &format!("/datacenters/{datacenter_id}"), None).await.0, 200);
    let (_, images) = api.call("GET", "/images?name=ubuntu-24.04", None).await;
    let image_id = images["images"][0]["id"].as_u64().unwrap();
    assert_eq!(api.call("GET", &format!("/images/{image_id}"), None).await.0, 200);
    // The app image SAM boots by default: Ubuntu with Docker CE.
    let (_, apps) = api.call("GET", "/images?type=app&name=docker-ce&architecture=x86", None).await;
    let apps = apps["images"].as_array().unwrap();
    assert!(apps.len() == 1 && apps[0]["type"] == "app" && apps[0]["os_flavor"] == "ubuntu", "{apps:?}");
    let (_, systems) = api.call("GET", "/images?type=system", None).await;
    assert!(systems["images"].as_array().unwrap().iter().all(|i| i["type"] == "system"));
    let app = json!({"name": "contract-app", "server_type": "cx23", "location": "fsn1", "image": "docker-ce"});
    let (status, created) = api.call("POST", "/servers", Some(app)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["server"]["image"]["name"], "docker-ce");
    let app_server = created["server"]["id"].as_u64().unwrap();
    assert_eq!(api.call("DELETE", &format!("/servers/{app_server}"), None).await.0, 200);

    // Servers: create, read, list with filters, update, actions, delete.
    let body = json!({"name": "contract-1", "server_type": "cx23", "location": "fsn1", "image": "ubuntu-24.04",
                      "labels": {"sam-managed": "true", "env": "test"}, "user_data": "#cloud-config\n"});
    let (status, created) = api.call("POST", "/servers", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["server"]["id"].as_u64().unwrap();
    assert!(created["server"]["location"]["name"] == "fsn1", "a top-level location: {created}");
    assert_eq!(api.call("POST", "/servers", Some(body)).await.0, 409, "a second server with the name");
    let bad_label =
        json!({"name": "contract-2", "server_type": "cx23", "image": "ubuntu-24.04", "labels": {"-bad": "x"}});
    assert_eq!(api.call("POST", "/servers", Some(bad_label)).await.0, 400);
    assert_eq!(api.call("GET", &format!("/servers/{id}"), None).await.0, 200);
    assert_eq!(api.call("GET", "/servers/999999", None).await.0, 404);
    let (_, listed) = api.call("GET", "/servers?status=running&status=initializing&sort=name:desc", None).await;
    assert_eq!(listed["servers"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(api.call("GET", "/servers?status=sleeping", None).await.0, 400, "an unknown status");
    assert_eq!(api.call("GET", "/servers?label_selector=env%3D%3Dtest&page=1&per_page=5", None).await.0, 200);
    let (status, updated) =
        api.call("PUT", &format!("/servers/{id}"), Some(json!({"name": "contract-1b", "labels": {"a": "b"}}))).await;
    assert_eq!(status, 200);
    assert_eq!(updated["server"]["labels"], json!({"a": "b"}));
    for action in ["poweroff", "poweron", "reboot", "reset", "shutdown"] {
        let (status, answer) = api.call("POST", &format!("/servers/{id}/actions/{action}"), None).await;
        assert_eq!(status, 201, "{action}: {answer}");
        let action_id = answer["action"]["id"].as_u64().unwrap();
        assert_eq!(api.call("GET", &format!("/actions/{action_id}"), None).await.0, 200);
    }
    let protection = json!({"delete": true, "rebuild": true});
    assert_eq!(api.call("POST", &format!("/servers/{id}/actions/change_protection"), Some(protection)).await.0, 201);
    assert_eq!(api.call("DELETE", &format!("/servers/{id}"), None).await.0, 403, "protected");
    let unprotect = json!({"delete": false, "rebuild": false});
    assert_eq!(api.call("POST", &format!("/servers/{id}/actions/change_protection"), Some(unprotect)).await.0, 201);
    let (_, actions) = api.call("GET", &format!("/servers/{id}/actions?sort=id:desc",), None).await;
    assert!(actions["actions"].as_array().unwrap().len() >= 7, "{actions}");
    assert_eq!(api.call("GET", "/actions/999999", None).await.0, 404);

    // Firewalls.
    let rules = json!([{"direction": "in", "protocol": "tcp", "port": "443", "source_ips": ["198.51.100.0/24"]}]);
    let (status, firewall) = api
        .call(
            "POST",
            "/firewalls",
            Some(json!({"name": "contract-fw", "labels": {"sam-managed": "true"}, "rules": rules})),
        )
        .await;
    assert_eq!(status, 201, "{firewall}");
    let fw = firewall["firewall"]["id"].as_u64().unwrap();
    assert_eq!(api.call("GET", "/firewalls?name=contract-fw", None).await.0, 200);
    assert_eq!(api.call("GET", &format!("/firewalls/{fw}"), None).await.0, 200);
    assert_eq!(api.call("PUT", &format!("/firewalls/{fw}"), Some(json!({"labels": {"x": "y"}}))).await.0, 200);
    assert_eq!(
        api.call("POST", &format!("/firewalls/{fw}/actions/set_rules"), Some(json!({"rules": rules}))).await.0,
        201
    );
    let target = json!({"apply_to": [{"type": "server", "server": {"id": id}}]});
    assert_eq!(
        api.call("POST", &format!("/firewalls/{fw}/actions/apply_to_resources"), Some(target.clone())).await.0,
        201
    );
    assert_eq!(api.call("DELETE", &format!("/firewalls/{fw}"), None).await.0, 422, "in use");
    let target = json!({"remove_from": [{"type": "server", "server": {"id": id}}]});
    assert_eq!(api.call("POST", &format!("/firewalls/{fw}/actions/remove_from_resources"), Some(target)).await.0, 201);
    assert_eq!(api.call("DELETE", &format!("/firewalls/{fw}"), None).await.0, 204);

    assert_eq!(api.call("DELETE", &format!("/servers/{id}"), None).await.0, 200);
    assert_eq!(api.call("DELETE", &format!("/servers/{id}"), None).await.0, 404);
    let readonly = Checked { token: "not-a-token".into(), ..api };
    assert_eq!(readonly.call("GET", "/servers", None).await.0, 401);

    let uncovered = contract.uncovered();
    assert!(uncovered.is_empty(), "hetzner: never answered successfully: {uncovered:#?}");
}

/// The checker itself: a body missing a required field, a wrong type, or an
/// undocumented status fails; a documented one passes.
#[test]
fn the_checker_refuses_what_the_description_does_not_allow() {
    let contract = openapi::load("hetzner");
    let fails = |status: u16, body: &str| {
        let body = body.to_owned();
        let contract = &contract;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| contract.check("GET", "/actions/1", status, &body)))
            .is_err()
    };
    let good = r#"{"action": {"id": 1, "command": "start_server", "status": "success", "progress": 100,
        "started": "2026-01-01T00:00:00+00:00", "finished": null, "resources": [], "error": null}}"#;
    assert!(!fails(200, good), "a documented answer passes");
    assert!(fails(200, r#"{"action": {"id": 1}}"#), "required fields");
    assert!(fails(200, &good.replace(r#""progress": 100"#, r#""progress": "all""#)), "types");
    assert!(fails(200, &good.replace(r#""status": "success""#, r#""status": "done""#)), "enumerations");
    assert!(!fails(404, r#"{"error": {"code": "not_found", "message": "gone", "details": {}}}"#));
    assert!(fails(404, r#"{"message": "gone"}"#), "the error body");
    assert!(fails(200, "not json"));
}

#[tokio::test]
async fn cloudflare_answers_as_its_description_says() {
    use sam_providers::emulators::{CloudflareEmulator, CloudflareEmulatorConfig};
    let contract = openapi::load("cloudflare");
    for operation in [
        "POST /certificates",
        "GET /certificates",
        "GET /certificates/{certificate_id}",
        "DELETE /certificates/{certificate_id}",
    ] {
        let go_time = "the real Origin CA answers expires_on in Go's format (2034-11-17 13:16:00 +0000 UTC), \
                       which Cloudflare's own Go client parses; the description says date-time";
        contract.tolerate(operation, "/expires_on", go_time);
        let serial = "Origin CA certificate ids are the certificates' decimal serial numbers (about 40 digits), \
                      longer than the description's 32";
        contract.tolerate(operation, "/id", serial);
    }
    let emu = CloudflareEmulator::start(CloudflareEmulatorConfig::default()).await.unwrap();
    let api = Checked {
        http: reqwest::Client::new(),
        base: emu.base_url().to_owned(),
        token: emu.token(),
        contract: &contract,
    };
    let zone = emu.zone_id();
    let name = emu.zone_name();

    assert_eq!(api.call("GET", "/ips", None).await.0, 200);
    assert_eq!(api.call("GET", "/user/tokens/verify", None).await.0, 200);
    let (status, zones) = api.call("GET", &format!("/zones?name={name}&page=1&per_page=5"), None).await;
    assert_eq!(status, 200);
    assert_eq!(zones["result_info"]["total_pages"], 1);
    let (_, past_the_end) = api.call("GET", "/zones?page=2&per_page=5", None).await;
    assert_eq!(past_the_end["result"].as_array().unwrap().len(), 0, "a page past the end is empty: {past_the_end}");
    assert_eq!(api.call("GET", &format!("/zones/{zone}"), None).await.0, 200);
    assert_eq!(api.call("GET", &format!("/zones/{}", "f".repeat(32)), None).await.0, 403);

    // Records of several types, as real zones hold them, with comments.
    let records = [
        json!({"type": "A", "name": "ws-1", "content": "198.51.100.7", "ttl": 60, "proxied": true, "comment": "sam-deployment=a"}),
        json!({"type": "AAAA", "name": "ws-1", "content": "2001:db8::7", "ttl": 1, "proxied": false}),
        json!({"type": "TXT", "name": "_acme", "content": "\"hello\"", "ttl": 120}),
        json!({"type": "MX", "name": "@", "content": "mx.example.net", "priority": 10, "ttl": 300}),
        json!({"type": "CNAME", "name": "www", "content": name, "ttl": 1, "proxied": true}),
    ];
    let mut ids = Vec::new();
    for record in records {
        let (status, created) = api.call("POST", &format!("/zones/{zone}/dns_records"), Some(record.clone())).await;
        assert_eq!(status, 200, "{record}: {created}");
        if let Some(comment) = record.get("comment") {
            assert_eq!(&created["result"]["comment"], comment, "the comment is kept");
        }
        ids.push(created["result"]["id"].as_str().unwrap().to_owned());
    }
    let bad = json!({"type": "A", "name": "ws-2", "content": "not-an-address"});
    assert_eq!(api.call("POST", &format!("/zones/{zone}/dns_records"), Some(bad)).await.0, 400);
    let path = format!("/zones/{zone}/dns_records");
    let (_, by_content) = api.call("GET", &format!("{path}?content.exact=198.51.100.7"), None).await;
    assert_eq!(by_content["result"].as_array().unwrap().len(), 1, "{by_content}");
    let (_, contains) = api.call("GET", &format!("{path}?content.contains=example"), None).await;
    assert_eq!(contains["result"].as_array().unwrap().len(), 1, "{contains}");
    let (_, ordered) = api.call("GET", &format!("{path}?order=type&direction=desc&per_page=5"), None).await;
    let types: Vec<&str> = ordered["result"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["TXT", "MX", "CNAME", "AAAA", "A"], "ordered by type, descending");
    let (_, page_two) = api.call("GET", &format!("{path}?per_page=5&page=2"), None).await;
    assert!(page_two["result"].as_array().unwrap().is_empty());
    let record = format!("{path}/{}", ids[0]);
    assert_eq!(api.call("GET", &record, None).await.0, 200);
    assert_eq!(api.call("PATCH", &record, Some(json!({"comment": "changed"}))).await.0, 200);
    let replace = json!({"type": "A", "name": "ws-1", "content": "198.51.100.8", "ttl": 60, "proxied": false});
    assert_eq!(api.call("PUT", &record, Some(replace)).await.0, 200);
    assert_eq!(api.call("DELETE", &record, None).await.0, 200);
    assert_eq!(api.call("GET", &record, None).await.0, 404);
    assert_eq!(api.call("DELETE", &record, None).await.0, 404);

    // Zone settings and edge certificates.
    let settings = format!("/zones/{zone}/settings");
    assert_eq!(api.call("GET", &format!("{settings}/ssl"), None).await.0, 200);
    assert_eq!(api.call("PATCH", &format!("{settings}/ssl"), Some(json!({"value": "strict"}))).await.0, 200);
    assert_eq!(api.call("PATCH", &format!("{settings}/ssl"), Some(json!({"value": "stricter"}))).await.0, 400);
    assert_eq!(api.call("GET", &format!("{settings}/no_such_setting"), None).await.0, 400);
    assert_eq!(api.call("GET", &format!("/zones/{zone}/ssl/certificate_packs"), None).await.0, 200);

    // The Origin CA.
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
    let issue = json!({"csr": csr, "hostnames": [format!("ws-1.{name}")], "request_type": "origin-ecc",
                       "requested_validity": 7});
    let (status, issued) = api.call("POST", "/certificates", Some(issue)).await;
    assert_eq!(status, 200, "{issued}");
    let certificate = issued["result"]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.call("GET", &format!("/certificates?zone_id={zone}"), None).await.0, 200);
    assert_eq!(api.call("GET", &format!("/certificates/{certificate}"), None).await.0, 200);
    assert_eq!(api.call("DELETE", &format!("/certificates/{certificate}"), None).await.0, 200);
    assert_eq!(api.call("GET", &format!("/certificates/{certificate}"), None).await.0, 404);

    let stranger = Checked { token: "not-a-token".into(), ..api };
    assert_eq!(stranger.call("GET", &format!("/zones/{zone}/dns_records"), None).await.0, 403);

    let uncovered = contract.uncovered();
    assert!(uncovered.is_empty(), "cloudflare: never answered successfully: {uncovered:#?}");
}

#[tokio::test]
async fn github_answers_as_its_description_says() {
    use sam_providers::emulators::{
        GITHUB_APP_ID, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, GithubEmulator, GithubEmulatorConfig,
        TEST_APP_PRIVATE_KEY_PEM,
    };
    let contract = openapi::load("github");
    contract.tolerate(
        "GET /app/installations",
        "/account",
        "this operation's inline installation combines the two account kinds with allOf [simple user, \
         enterprise], which no account satisfies; the same object under GET /app/installations/{id} says anyOf",
    );
    let emu = GithubEmulator::start(GithubEmulatorConfig::default()).await.unwrap();
    emu.add_installation(7, "octo-org", &[("octo-org/hello-world", &["main", "dev"]), ("octo-org/api", &["main"])]);
    let http = reqwest::Client::new();
    let base = emu.base_url().trim_end_matches('/').to_owned();

    // The three credentials: a user's token, the app's JWT, an installation token.
    let code = emu.approve("http://localhost/callback", None);
    let exchanged: serde_json::Value = http
        .post(format!("{base}/login/oauth/access_token"))
        .header("accept", "application/json")
        .form(&[("client_id", GITHUB_CLIENT_ID), ("client_secret", GITHUB_CLIENT_SECRET), ("code", code.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_token = exchanged["access_token"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iat": now - 30, "exp": now + 540, "iss": GITHUB_APP_ID});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(TEST_APP_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap();
    let as_user = Checked { http: http.clone(), base: base.clone(), token: user_token, contract: &contract };
    let as_app = Checked { token: jwt, ..as_user.clone_with_token() };

    let (status, app) = as_app.call("GET", "/app", None).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(as_app.call("GET", "/app/installations", None).await.0, 200);
    assert_eq!(as_app.call("GET", "/app/installations/7", None).await.0, 200);
    assert_eq!(as_app.call("GET", "/app/installations/8", None).await.0, 404);
    assert_eq!(as_app.call("GET", "/repos/octo-org/hello-world/installation", None).await.0, 200);
    assert_eq!(as_app.call("GET", "/repos/octo-org/nothing/installation", None).await.0, 404);
    let (status, minted) = as_app.call("POST", "/app/installations/7/access_tokens", None).await;
    assert_eq!(status, 201, "{minted}");
    let as_installation = Checked { token: minted["token"].as_str().unwrap().to_owned(), ..as_user.clone_with_token() };
    // A token for one repository and chosen permissions, as SAM mints them.
    let scoped = json!({"repositories": ["hello-world"], "permissions": {"contents": "write", "metadata": "read"}});
    let (status, one) = as_app.call("POST", "/app/installations/7/access_tokens", Some(scoped)).await;
    assert_eq!(status, 201, "{one}");
    assert_eq!(one["repositories"][0]["full_name"], "octo-org/hello-world");
    assert_eq!(one["permissions"]["contents"], "write");
    let elsewhere = json!({"repositories": ["elsewhere"]});
    assert_eq!(as_app.call("POST", "/app/installations/7/access_tokens", Some(elsewhere)).await.0, 422);

    // The user.
    assert_eq!(as_user.call("GET", "/user", None).await.0, 200);
    assert_eq!(as_user.call("GET", "/user/emails", None).await.0, 200);
    assert_eq!(as_user.call("GET", "/user/installations", None).await.0, 200);
    let (_, repos) = as_user.call("GET", "/user/installations/7/repositories?per_page=1", None).await;
    assert_eq!(repos["total_count"], 2);
    assert_eq!(as_user.call("GET", "/user/installations/8/repositories", None).await.0, 404);
    let (_, own) = as_user.call("GET", "/user/repos", None).await;
    assert_eq!(own.as_array().unwrap().len(), 2);

    // Repositories and branches, with either token.
    for who in [&as_user, &as_installation] {
        let (status, repo) = who.call("GET", "/repos/octo-org/hello-world", None).await;
        assert_eq!(status, 200, "{repo}");
        assert_eq!(repo["default_branch"], "main");
        assert_eq!(who.call("GET", "/repos/octo-org/private-elsewhere", None).await.0, 404);
        let (_, branches) = who.call("GET", "/repos/octo-org/hello-world/branches", None).await;
        assert_eq!(branches.as_array().unwrap().len(), 2);
        assert_eq!(who.call("GET", "/repos/octo-org/hello-world/branches/dev", None).await.0, 200);
        assert_eq!(who.call("GET", "/repos/octo-org/hello-world/branches/nope", None).await.0, 404);
    }
    assert_eq!(as_installation.call("GET", "/installation/repositories", None).await.0, 200);

    // Rate limits: every API answer says where the caller stands.
    let (status, limits) = as_user.call("GET", "/rate_limit", None).await;
    assert_eq!(status, 200);
    let used = limits["resources"]["core"]["used"].as_u64().unwrap();
    assert!(used >= 10, "the calls above counted: {limits}");
    let response = http.get(format!("{base}/user")).bearer_auth(&as_user.token).send().await.unwrap();
    let remaining: u64 = response.headers()["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap();
    assert_eq!(remaining, 5000 - used - 1);
    assert!(response.headers().contains_key("x-ratelimit-reset"));

    // App manifests.
    let code = emu.create_app_from_manifest(&json!({"url": "https://sam.example.dev", "name": "SAM test"}));
    let anonymous = Checked { token: String::new(), ..as_user.clone_with_token() };
    assert_eq!(anonymous.call("POST", &format!("/app-manifests/{code}/conversions"), None).await.0, 201);
    assert_eq!(anonymous.call("POST", &format!("/app-manifests/{code}/conversions"), None).await.0, 404);
    assert_eq!(anonymous.call("GET", "/user", None).await.0, 401);

    let uncovered = contract.uncovered();
    assert!(uncovered.is_empty(), "github: never answered successfully: {uncovered:#?}");
}

/// What the emulators do not cover still answers in the provider's own error
/// body: a method a route does not take, a path that does not parse, an
/// unknown endpoint. Never an empty 405 or a plain-text 400.
#[tokio::test]
async fn uncovered_calls_get_the_providers_error_body() {
    use sam_providers::emulators::Emulators;
    let emu = Emulators::start().await.unwrap();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, url: String, token: String| {
        let http = http.clone();
        async move {
            let response = http.request(method, url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            let kind =
                response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
            (status, kind, body)
        }
    };
    let hetzner = |path: &str| format!("{}{path}", emu.hetzner.base_url());
    for (method, path, status) in [
        (reqwest::Method::PATCH, "/servers", 405),
        (reqwest::Method::DELETE, "/server_types", 405),
        (reqwest::Method::GET, "/volumes", 404),
    ] {
        let (got, kind, body) = call(method.clone(), hetzner(path), emu.hetzner.token()).await;
        assert_eq!(got, status, "hetzner {method} {path}");
        assert!(kind.contains("json"), "hetzner {method} {path}: {kind}");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    }
    let cloudflare = |path: &str| format!("{}{path}", emu.cloudflare.base_url());
    for (method, path, status, code) in
        [(reqwest::Method::POST, "/zones/x/settings/ssl", 405, 7001), (reqwest::Method::GET, "/accounts", 400, 7000)]
    {
        let (got, kind, body) = call(method.clone(), cloudflare(path), emu.cloudflare.token()).await;
        assert_eq!(got, status, "cloudflare {method} {path}: {body}");
        assert!(kind.contains("json"), "{kind}");
        assert_eq!(body["success"], false);
        assert_eq!(body["errors"][0]["code"], code, "{body}");
    }
    let github = |path: &str| format!("{}{path}", emu.github.base_url());
    for (method, path, status) in [
        (reqwest::Method::GET, "/app/installations/not-a-number", 400),
        (reqwest::Method::DELETE, "/user", 405),
        (reqwest::Method::GET, "/gists", 404),
    ] {
        let (got, kind, body) = call(method.clone(), github(path), "x".into()).await;
        assert_eq!(got, status, "github {method} {path}: {body}");
        assert!(kind.contains("json"), "{kind}");
        assert!(body["message"].is_string() && body["documentation_url"].is_string(), "{body}");
    }
}
