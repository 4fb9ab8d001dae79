//! The emulators answer raw HTTP the way the real services do (statuses,
//! bodies, headers), independent of SAM's adapters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sam_providers::emulators::{
    CloudflareEmulatorConfig, Emulators, Fault, GITHUB_APP_ID, GITHUB_CLIENT_ID, GithubEmulatorConfig, HetznerEmulator,
    HetznerEmulatorConfig, InjectedError, TEST_APP_PRIVATE_KEY_PEM,
};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn body(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

#[tokio::test]
async fn all_three_start_on_distinct_loopback_ports() {
    let emu = Emulators::start().await.unwrap();
    let urls = [emu.hetzner.base_url(), emu.cloudflare.base_url(), emu.github.base_url()];
    for url in urls {
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    }
    assert_ne!(urls[0], urls[1]);
    assert_ne!(urls[1], urls[2]);
    let custom = Emulators::start_with(
        HetznerEmulatorConfig { fixed_ipv4: Some(std::net::Ipv4Addr::LOCALHOST), ..Default::default() },
        CloudflareEmulatorConfig { zone_name: "dev.test".into(), ..Default::default() },
        GithubEmulatorConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(custom.cloudflare.zone_name(), "dev.test");
}

#[tokio::test]
async fn hetzner_speaks_hetzner() {
    let emu = HetznerEmulator::start(HetznerEmulatorConfig {
        boot_delay: Duration::from_millis(30),
        rate_limit: 40,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = client();
    let url = |p: &str| format!("{}{p}", emu.base_url());
    let token = emu.token();

    let r = http.get(url("/servers")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(body(r).await["error"]["code"], "unauthorized");

    let r = http.get(url("/servers")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for h in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(r.headers().contains_key(h), "{h}");
    }
    let b = body(r).await;
    assert_eq!(b["servers"], json!([]));
    assert_eq!(b["meta"]["pagination"]["page"], 1);
    assert_eq!(b["meta"]["pagination"]["per_page"], 25);
    assert_eq!(b["meta"]["pagination"]["next_page"], Value::Null);

    let create = |name: &str, ws: &str| {
        json!({"name": name, "server_type": "cx23", "location": "fsn1", "image": "ubuntu-24.04",
               "labels": {"sam-managed": "true", "sam-workspace": ws}})
    };
    let r = http.post(url("/servers")).bearer_auth(&token).json(&create("a", "1")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let b = body(r).await;
    assert_eq!(b["server"]["status"], "initializing");
    assert_eq!(b["action"]["command"], "create_server");
    assert!(b["server"]["public_net"]["ipv4"]["ip"].is_string());
    assert_eq!(b["server"]["datacenter"]["location"]["name"], "fsn1");
    let id = b["server"]["id"].as_u64().unwrap();
    let action = b["action"]["id"].as_u64().unwrap();

    let r = http.post(url("/servers")).bearer_auth(&token).json(&create("a", "2")).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(body(r).await["error"]["code"], "uniqueness_error");

    let mut bad = create("b", "3");
    bad["server_type"] = json!("cx999");
    let r = http.post(url("/servers")).bearer_auth(&token).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let b = body(r).await;
    assert_eq!(b["error"]["code"], "invalid_input");
    assert_eq!(b["error"]["details"]["fields"][0]["name"], "server_type");

    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = http.get(url(&format!("/servers/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(body(r).await["server"]["status"], "running");
    let r = http.get(url(&format!("/actions/{action}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(body(r).await["action"]["status"], "success");
    let r = http.get(url("/servers/424242")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(body(r).await["error"]["code"], "not_found");

    for (i, ws) in ["2", "3", "4"].iter().enumerate() {
        let r =
            http.post(url("/servers")).bearer_auth(&token).json(&create(&format!("s{i}"), ws)).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = http
        .get(url("/servers"))
        .bearer_auth(&token)
        .query(&[("label_selector", "sam-managed=true,sam-workspace!=1"), ("per_page", "2")])
        .send()
        .await
        .unwrap();
    let b = body(r).await;
    assert_eq!(b["servers"].as_array().unwrap().len(), 2);
    assert_eq!(b["meta"]["pagination"]["total_entries"], 3);
    assert_eq!(b["meta"]["pagination"]["next_page"], 2);
    assert_eq!(b["meta"]["pagination"]["last_page"], 2);

    let r = http.get(url("/servers?page=18446744073709551615")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "an absurd page is just empty");
    assert_eq!(body(r).await["servers"], json!([]));

    let r = http.post(url(&format!("/servers/{id}/actions/poweroff"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = http.delete(url(&format!("/servers/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.delete(url(&format!("/servers/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);

    emu.faults().inject("GET", "/v1/locations", Fault::Error(InjectedError::ResourceUnavailable), 1);
    let r = http.get(url("/locations")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(body(r).await["error"]["code"], "resource_unavailable");

    emu.exhaust_rate_limit();
    let r = http.get(url("/servers")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let reset: u64 = r.headers()["ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset >= SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs());
    assert_eq!(body(r).await["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn cloudflare_speaks_cloudflare() {
    let emu = Emulators::start().await.unwrap().cloudflare;
    let http = client();
    let records = format!("{}/zones/{}/dns_records", emu.base_url(), emu.zone_id());
    let token = emu.token();

    let r = http.get(format!("{}/user/tokens/verify", emu.base_url())).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let b = body(r).await;
    assert_eq!(b["success"], false);
    assert_eq!(b["errors"][0]["code"], 1000);

    let post = |content: &str| json!({"type": "A", "name": "ws-dup", "content": content, "ttl": 1, "proxied": false});
    let r = http.post(&records).bearer_auth(&token).json(&post("192.0.2.1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    assert_eq!(b["success"], true);
    assert_eq!(b["result"]["name"], format!("ws-dup.{}", emu.zone_name()), "relative names get the zone");
    let r = http.post(&records).bearer_auth(&token).json(&post("192.0.2.2")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a second record with the same name is accepted");
    let r = http.post(&records).bearer_auth(&token).json(&post("192.0.2.2")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(body(r).await["errors"][0]["code"], 81058);

    let r = http
        .get(&records)
        .bearer_auth(&token)
        .query(&[("name", format!("ws-dup.{}", emu.zone_name())), ("per_page", "5".into())])
        .send()
        .await
        .unwrap();
    let b = body(r).await;
    assert_eq!(b["result"].as_array().unwrap().len(), 2);
    assert_eq!(b["result_info"]["total_count"], 2);
    assert_eq!(b["result_info"]["total_pages"], 1);

    let r =
        http.delete(format!("{records}/ffffffffffffffffffffffffffffffff")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(body(r).await["errors"][0]["code"], 81044);

    let r = http.post(&records).bearer_auth(&token).json(&post("not-an-ip")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(body(r).await["success"], false);

    emu.faults().inject("*", "/client/v4/*", Fault::Error(InjectedError::TooManyRequests), 1);
    let r = http.get(&records).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn github_speaks_github() {
    let emu = Emulators::start().await.unwrap().github;
    let http = client();
    let base = emu.base_url().to_owned();

    let r = http
        .get(format!("{base}/login/oauth/authorize"))
        .query(&[("client_id", "unknown"), ("redirect_uri", "http://127.0.0.1:9/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{base}/login/oauth/authorize"))
        .query(&[
            ("client_id", GITHUB_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "only S256");

    // Without `Accept: application/json` the token endpoint answers form-encoded, still 200.
    let r = http
        .post(format!("{base}/login/oauth/access_token"))
        .form(&[("client_id", GITHUB_CLIENT_ID), ("client_secret", "x"), ("code", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("error=incorrect_client_credentials"));

    let r = http.get(format!("{base}/user")).bearer_auth("gho_wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(body(r).await["message"], "Bad credentials");

    // An app JWT that lives longer than 10 minutes is refused.
    emu.add_installation(9, "octocat", &[]);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(TEST_APP_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let jwt = |iat: u64, exp: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &json!({"iat": iat, "exp": exp, "iss": GITHUB_APP_ID}),
            &key,
        )
        .unwrap()
    };
    let mint = |token: String| http.post(format!("{base}/app/installations/9/access_tokens")).bearer_auth(token).send();
    let r = mint(jwt(now - 60, now + 3600)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(body(r).await["message"].as_str().unwrap().contains("too far in the future"));
    let r = mint(jwt(now - 700, now - 100)).await.unwrap();
    assert_eq!(r.status(), 401, "expired");
    let r = mint(jwt(now - 60, now + 540)).await.unwrap();
    assert_eq!(r.status(), 201);
    let b = body(r).await;
    assert!(b["token"].as_str().unwrap().starts_with("ghs_"));
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'));

    // Link pagination on installation repositories.
    emu.add_installation(
        10,
        "octocat",
        &[("octocat/a", &["main"]), ("octocat/b", &["main"]), ("octocat/c", &["main"])],
    );
    let r = mint(jwt(now - 60, now + 540)).await.unwrap();
    assert_eq!(r.status(), 201);
    let token = http
        .post(format!("{base}/app/installations/10/access_tokens"))
        .bearer_auth(jwt(now - 60, now + 540))
        .send()
        .await
        .unwrap();
    let token = body(token).await["token"].as_str().unwrap().to_owned();
    let r = http.get(format!("{base}/installation/repositories?per_page=2")).bearer_auth(&token).send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("rel=\"last\""));
    assert_eq!(body(r).await["total_count"], 3);
}

#[tokio::test]
async fn fault_rules_are_used_up() {
    let emu = HetznerEmulator::start(HetznerEmulatorConfig::default()).await.unwrap();
    let http = client();
    let url = format!("{}/locations", emu.base_url());
    emu.faults().inject("GET", "/v1/locations", Fault::Latency(Duration::from_millis(300)), 1);
    emu.faults().inject("GET", "/v1/*", Fault::Error(InjectedError::Internal), 2);
    let mut statuses = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        statuses.push(http.get(&url).bearer_auth(emu.token()).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [500, 500, 200]);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(emu.faults().count("GET", "/v1/locations"), 3);
}

/// A snapshot restores the emulated world: the same servers (ids, labels,
/// protection), firewalls, records, zone settings, Origin CA (a certificate
/// issued before still verifies against the same root, and can be revoked),
/// installations and signed-in users' tokens.
#[tokio::test]
async fn a_snapshot_restores_every_emulator() {
    use sam_providers::emulators::{EmulatorAddresses, GITHUB_CLIENT_SECRET};
    let emu = Emulators::start().await.unwrap();
    let http = client();
    let server: Value = body(
        http.post(format!("{}/servers", emu.hetzner.base_url()))
            .bearer_auth(emu.hetzner.token())
            .json(&json!({"name": "kept", "server_type": "cx23", "image": "ubuntu-24.04", "labels": {"a": "b"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let server_id = server["server"]["id"].as_u64().unwrap();
    let record = emu.cloudflare.create_raw("ws-kept", "198.51.100.9".parse().unwrap());
    let cf = |path: &str| format!("{}{path}", emu.cloudflare.base_url());
    http.patch(cf(&format!("/zones/{}/settings/ssl", emu.cloudflare.zone_id())))
        .bearer_auth(emu.cloudflare.token())
        .json(&json!({"value": "strict"}))
        .send()
        .await
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
    let issued: Value = body(
        http.post(cf("/certificates"))
            .bearer_auth(emu.cloudflare.token())
            .json(&json!({"csr": csr, "hostnames": [format!("ws-kept.{}", emu.cloudflare.zone_name())],
                          "request_type": "origin-ecc", "requested_validity": 7}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let certificate = issued["result"]["id"].as_str().unwrap().to_owned();
    emu.github.add_installation(12, "octo-org", &[("octo-org/kept", &["main"])]);
    let code = emu.github.approve("http://localhost/cb", None);
    let token: Value = body(
        http.post(format!("{}/login/oauth/access_token", emu.github.base_url().trim_end_matches('/')))
            .header("accept", "application/json")
            .form(&[("client_id", GITHUB_CLIENT_ID), ("client_secret", GITHUB_CLIENT_SECRET), ("code", code.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let user_token = token["access_token"].as_str().unwrap().to_owned();
    let root = emu.cloudflare.origin_ca_pem();

    // Through JSON text, as on disk.
    let saved: Value = serde_json::from_str(&emu.snapshot().to_string()).unwrap();
    drop(emu);
    let configs =
        (HetznerEmulatorConfig::default(), CloudflareEmulatorConfig::default(), GithubEmulatorConfig::default());
    let back = Emulators::start_from(configs, Some(saved), EmulatorAddresses::default()).await.unwrap();
    let servers = back.hetzner.servers();
    assert_eq!(servers.len(), 1);
    assert_eq!((servers[0].id, servers[0].labels.get("a").map(String::as_str)), (server_id, Some("b")));
    assert_eq!(back.cloudflare.records().iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![record]);
    assert_eq!(back.cloudflare.zone_setting("ssl").as_deref(), Some("strict"));
    assert_eq!(back.cloudflare.origin_ca_pem(), root, "the same Origin CA");
    assert_eq!(back.cloudflare.origin_certificates().len(), 1);
    let revoked = http
        .delete(format!("{}/certificates/{certificate}", back.cloudflare.base_url()))
        .bearer_auth(back.cloudflare.token())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "a certificate from before is known");
    assert_eq!(back.github.installations().len(), 1);
    let me = http.get(format!("{}/user", back.github.base_url().trim_end_matches('/'))).bearer_auth(&user_token);
    assert_eq!(me.send().await.unwrap().status(), 200, "a user token from before still works");
    // New ids continue after the restored ones.
    let next: Value = body(
        http.post(format!("{}/servers", back.hetzner.base_url()))
            .bearer_auth(back.hetzner.token())
            .json(&json!({"name": "new", "server_type": "cx23", "image": "ubuntu-24.04"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(next["server"]["id"].as_u64().unwrap() > server_id);
}

#[path = "support/keep_alive.rs"]
mod keep_alive;

/// Early answers (401 without a token, 404 for no route) to requests with
/// bodies keep the kept-alive connection usable in every emulator, as on
/// the real services: thousands on reused connections, not one reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_keep_the_connection_usable() {
    let emu = Emulators::start().await.unwrap();
    for base in [emu.hetzner.base_url(), emu.cloudflare.base_url(), emu.github.base_url()] {
        let url = reqwest::Url::parse(base).unwrap();
        let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let prefix = url.path().trim_end_matches('/');
        let paths = [format!("{prefix}/servers"), format!("{prefix}/no-such-route"), format!("{prefix}/zones")];
        let requests: Vec<(&str, &str, &str)> = paths.iter().map(|p| ("POST", p.as_str(), "")).collect();
        let outcome = keep_alive::hammer(&addr, &requests, &[4096, 60_000], 600).await;
        assert_eq!(outcome, keep_alive::Outcome { answered: 600, closed: 0, resets: 0 }, "{base}");
    }
}
