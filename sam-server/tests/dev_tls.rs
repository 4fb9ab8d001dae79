//! The production topology rehearsed on one machine: `sam-server dev --tls`,
//! where a local edge plays Cloudflare's part (HTTPS for the browser,
//! proxied records only, Full (strict) TLS to agents with certificates from
//! the emulated Origin CA, the origin-pull client certificate), agents serve
//! TLS and admit the edge only, and every server has the deployment's
//! firewall. In Chromium trusting the local CA: sign in, create, open the
//! terminal at `https://ws-<id>.localhost`, type, reload and reattach, and
//! the connect → first-prompt time against plain-HTTP dev mode. Then, from
//! outside the browser: a direct connection that skips the edge gets
//! nothing, one workspace's certificate does not serve another's name, the
//! edge refuses a "DNS only" name, an agent refusing the edge, and an agent
//! with the wrong certificate (each with the reason), the firewall's rules
//! are exactly the edge's ranges on 443 plus ICMP on every server, and no
//! agent key appears in any log, cloud-init or API answer.
//! Needs Chromium, `certutil` and `e2e/node_modules` (`scripts/test.d/3*.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "support/dev.rs"]
mod dev;

use dev::{browser_with, e2e_ready, start_dev, start_dev_with};

const HETZNER_TOKEN: &str = sam_providers::emulators::HETZNER_TOKEN;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A Chromium home whose NSS database trusts `ca`.
fn chromium_home(ca: &Path) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let status = std::process::Command::new("certutil").args(args).status().expect("certutil (libnss3-tools)");
        assert!(status.success(), "certutil {args:?}");
    };
    run(&["-d", &db, "-N", "--empty-password"]);
    run(&["-d", &db, "-A", "-t", "C,,", "-n", "sam-dev-local-ca", "-i", ca.to_str().unwrap()]);
    home
}

/// The deployment's emulated clouds, as dev mode printed them.
struct Clouds {
    http: reqwest::Client,
    hetzner: String,
    cloudflare: String,
    cloudflare_token: String,
    zone: String,
}

impl Clouds {
    async fn get(&self, url: String, token: &str) -> Value {
        self.http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
    }
    async fn hetzner(&self, path: &str) -> Value {
        self.get(format!("{}{path}", self.hetzner), HETZNER_TOKEN).await
    }
    async fn cloudflare(&self, path: &str) -> Value {
        self.get(format!("{}{path}", self.cloudflare), &self.cloudflare_token).await
    }
    async fn cloudflare_patch(&self, path: &str, body: Value) {
        let url = format!("{}/zones/{}{path}", self.cloudflare, self.zone);
        let response = self.http.patch(url).bearer_auth(&self.cloudflare_token).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "PATCH {path}: {}", response.status());
    }
    async fn records(&self) -> Vec<Value> {
        let answer = self.cloudflare(&format!("/zones/{}/dns_records", self.zone)).await;
        answer["result"].as_array().unwrap().clone()
    }
}

/// One workspace's local VM: its agent's address and state.
struct Vm {
    host: String,
    dir: PathBuf,
    port: u16,
    pid: u32,
}

/// The agent processes of `dir`'s VMs: `(vm dir, pid, listen port)`.
fn agent_processes(vms: &Path) -> Vec<(PathBuf, u32, u16)> {
    let needle = vms.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
        if !cmdline.contains(&needle) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let port = String::from_utf8_lossy(&environ)
            .split('\0')
            .find_map(|v| v.strip_prefix("SAM_AGENT_LISTEN=127.0.0.1:").map(|p| p.parse::<u16>().unwrap()));
        let dir = PathBuf::from(cmdline.split('\0').next().unwrap()).parent().unwrap().to_path_buf();
        if let Some(port) = port {
            found.push((dir, pid, port));
        }
    }
    found
}

async fn vm_of(clouds: &Clouds, data: &Path, workspace: &str) -> Vm {
    let servers = clouds.hetzner("/servers").await;
    let server = servers["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"]["sam-workspace"] == workspace)
        .unwrap_or_else(|| panic!("no server for {workspace}"));
    let dir = data.join("vms").join(server["id"].to_string());
    let (_, pid, port) =
        agent_processes(&data.join("vms")).into_iter().find(|(d, _, _)| *d == dir).expect("the agent runs");
    Vm { host: format!("ws-{workspace}.localhost"), dir, port, pid }
}

fn grant(vm: &Vm) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vm.dir.join("state/grant.json")).unwrap()).unwrap()
}

/// An origin-pull client certificate, as the edge holds one.
fn edge_client_certificate(data: &Path) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca = std::fs::read_to_string(data.join("tls/origin-pull-ca.pem")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(data.join("tls/origin-pull-ca-key.pem")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

/// TLS straight to an agent's port (skipping the edge) as `name`, verifying
/// its certificate against the Origin CA, optionally with a client
/// certificate; then one request. The answer's first line, or the error.
async fn direct(
    data: &Path,
    port: u16,
    name: &str,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data.join("tls/origin-ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = connector.connect(server_name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
    let request = format!("GET /health HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await {
        Ok(Err(e)) if answer.is_empty() => return Err(format!("read: {e}")),
        Err(_) => return Err("no answer".into()),
        _ => {}
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().filter(|l| l.starts_with("HTTP/")).map(str::to_owned).ok_or_else(|| format!("no HTTP: {text}"))
}

/// Plain HTTP straight to an agent's port: whatever comes back.
async fn plain_http(port: u16) -> String {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Through the edge, as a browser: status and body.
async fn via_edge(data: &Path, workspace_port: u16, host: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(data.join("tls/local-ca.pem")).unwrap()).unwrap(),
        )
        .resolve(host, ([127, 0, 0, 1], workspace_port).into())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let response = client.get(format!("https://{host}:{workspace_port}/health")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// The middle line of a PEM: unique to the key.
fn fingerprint(pem: &str) -> String {
    pem.lines().nth(2).expect("a PEM body").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_path_runs_over_tls_through_the_edge() {
    use tokio::io::AsyncBufReadExt as _;
    let Some(e2e) = e2e_ready() else { return };
    let (plain_data, data, logs) = (dev::DevData::new(), dev::DevData::new(), dev::DevData::new());
    let data = data.path();
    let log = logs.path().join("server.log");
    let (_plain, plain_base) = start_dev(plain_data.path(), &[]).await;
    let (mut child, base) = start_dev_with(data, &["--tls"], Some(&log)).await;
    assert!(base.starts_with("https://localhost:"), "{base}");

    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while !printed.last().is_some_and(|l: &String| l.contains("Ctrl-C")) {
        printed.push(lines.next_line().await.unwrap().expect("dev mode prints its addresses"));
    }
    let rest = Arc::new(std::sync::Mutex::new(String::new()));
    let sink = rest.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
    let address =
        |label: &str| printed.iter().find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned())).unwrap();
    let cloudflare_token = std::fs::read_to_string(data.join("secrets/cloudflare-token")).unwrap().trim().to_owned();
    let http = reqwest::Client::new();
    let zones: Value = http
        .get(format!("{}/zones", address("Cloudflare API")))
        .bearer_auth(&cloudflare_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let clouds = Clouds {
        zone: zones["result"][0]["id"].as_str().unwrap().to_owned(),
        http,
        hetzner: address("Hetzner API"),
        cloudflare: address("Cloudflare API"),
        cloudflare_token,
    };

    // The browser part.
    let home = chromium_home(&data.join("tls/local-ca.pem"));
    let stdout = browser_with(
        &e2e,
        "tls.mjs",
        &[
            &base,
            &plain_base,
            HETZNER_TOKEN,
            concat!(env!("CARGO_MANIFEST_DIR"), "/../sam-agent/tests/fixtures/preview_server.py"),
        ],
        &[("SAM_CHROMIUM_HOME", home.path().to_str().unwrap()), ("SAM_TLS_RUNS", "5")],
    )
    .await;
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!(
        "TIMING connect → first prompt, median of 5: TLS {} ms, plain HTTP {} ms (TLS {:?}, plain {:?})",
        result["medianTlsMs"], result["medianPlainMs"], result["tlsMs"], result["plainMs"]
    );
    let ids: Vec<String> =
        result["workspaces"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let (a, b) = (vm_of(&clouds, data, &ids[0]).await, vm_of(&clouds, data, &ids[1]).await);
    // The workspace port: from the terminal's public URL the agent was given.
    let workspace_port: u16 = {
        let environ = std::fs::read(format!("/proc/{}/environ", a.pid)).unwrap();
        String::from_utf8_lossy(&environ)
            .split('\0')
            .find_map(|v| {
                v.strip_prefix("SAM_AGENT_PUBLIC_URL=").map(|u| u.rsplit(':').next().unwrap().parse().unwrap())
            })
            .unwrap()
    };

    // Records are proxied (the two workspaces' and the preview's); the
    // firewall admits the edge on 443, and ICMP.
    let preview_host = result["previewHost"].as_str().unwrap().to_owned();
    let records = clouds.records().await;
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(records.iter().any(|r| r["name"] == preview_host.as_str()), "{records:?}");
    assert!(records.iter().all(|r| r["proxied"] == true), "{records:?}");
    let firewalls = clouds.hetzner("/firewalls").await;
    let firewalls = firewalls["firewalls"].as_array().unwrap();
    assert_eq!(firewalls.len(), 1, "{firewalls:?}");
    let firewall = &firewalls[0];
    assert_eq!(firewall["name"], "sam-localhost");
    let mut rules: Vec<(String, Option<String>, Value)> = firewall["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["direction"], "in");
            (r["protocol"].as_str().unwrap().to_owned(), r["port"].as_str().map(str::to_owned), r["source_ips"].clone())
        })
        .collect();
    rules.sort_by(|x, y| x.0.cmp(&y.0));
    // The agent's port from the edge's published ranges only (here loopback,
    // where the local edge is); ping from anywhere.
    let edge = json!(["127.0.0.1/32", "::1/128"]);
    let anywhere = json!(["0.0.0.0/0", "::/0"]);
    assert_eq!(rules, vec![("icmp".into(), None, anywhere), ("tcp".into(), Some("443".into()), edge)]);
    for server in clouds.hetzner("/servers").await["servers"].as_array().unwrap() {
        let applied = server["public_net"]["firewalls"].as_array().unwrap();
        assert!(applied.iter().any(|f| f["id"] == firewall["id"] && f["status"] == "applied"), "{server}");
    }

    // Skipping the edge gets nothing: no client certificate, or plain HTTP.
    let refused = direct(data, a.port, &a.host, None).await;
    assert!(refused.is_err(), "an agent answered without the edge's certificate: {refused:?}");
    let answer = plain_http(a.port).await;
    assert!(!answer.starts_with("HTTP/"), "an agent answered plain HTTP: {answer}");
    // With the edge's certificate: A's agent answers for A's name, never B's.
    let edge = edge_client_certificate(data);
    let own = direct(data, a.port, &a.host, Some((edge.0.clone(), edge.1.clone_key()))).await;
    assert!(own.as_deref().is_ok_and(|l| l.starts_with("HTTP/1.1")), "{own:?}");
    // The preview's name has a certificate of its own on A's agent.
    let preview = direct(data, a.port, &preview_host, Some((edge.0.clone(), edge.1.clone_key()))).await;
    assert!(preview.as_deref().is_ok_and(|l| l.starts_with("HTTP/1.1")), "{preview:?}");
    let other = direct(data, a.port, &b.host, Some((edge.0.clone(), edge.1.clone_key()))).await;
    assert!(
        other.as_ref().is_err_and(|e| e.contains("not valid for name")),
        "A's certificate served B's name: {other:?}"
    );

    // The agents' keys: on the VMs only.
    let keys: Vec<String> = [&a, &b].iter().map(|vm| fingerprint(grant(vm)["tlsKey"].as_str().unwrap())).collect();
    let mut places = vec![
        ("the server's stderr".to_owned(), std::fs::read_to_string(&log).unwrap()),
        ("the server's log".to_owned(), format!("{}\n{}", printed.join("\n"), rest.lock().unwrap())),
        ("the API".to_owned(), result["api"].as_str().unwrap().to_owned()),
        ("Hetzner's servers".to_owned(), clouds.hetzner("/servers").await.to_string()),
        (
            "the Origin CA".to_owned(),
            clouds.cloudflare(&format!("/certificates?zone_id={}", clouds.zone)).await.to_string(),
        ),
    ];
    for vm in [&a, &b] {
        places.push((format!("{} agent.log", vm.host), std::fs::read_to_string(vm.dir.join("agent.log")).unwrap()));
        places
            .push((format!("{} cloud-init", vm.host), std::fs::read_to_string(vm.dir.join("user-data.txt")).unwrap()));
    }
    assert!(places[1].1.contains("workspace_id"), "the log is captured (info level)");
    for (place, text) in &places {
        for key in &keys {
            assert!(!text.contains(key.as_str()), "an agent's private key is in {place}");
        }
    }

    // The edge refuses a name that is not proxied, and says so.
    let record = records.iter().find(|r| r["name"] == b.host.as_str()).unwrap();
    let record_path = format!("/dns_records/{}", record["id"].as_str().unwrap());
    clouds.cloudflare_patch(&record_path, json!({"proxied": false})).await;
    let (status, body) = via_edge(data, workspace_port, &b.host).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not proxied"), "{body}");
    clouds.cloudflare_patch(&record_path, json!({"proxied": true})).await;
    let (status, _) = via_edge(data, workspace_port, &b.host).await;
    assert!(status < 500 && status != 403, "proxied again: {status}");

    // Origin pulls off: the edge presents no certificate, the agent refuses it.
    clouds.cloudflare_patch("/settings/tls_client_auth", json!({"value": "off"})).await;
    let (status, body) = via_edge(data, workspace_port, &a.host).await;
    assert_eq!(status, 525, "{body}");
    assert!(body.contains("refused the edge"), "{body}");
    clouds.cloudflare_patch("/settings/tls_client_auth", json!({"value": "on"})).await;

    // A wrong certificate on the agent (B's, with its key): the edge refuses
    // it with 526 and the reason.
    let mut wrong = grant(&a);
    let b_grant = grant(&b);
    wrong["originCertificate"] = b_grant["originCertificate"].clone();
    wrong["tlsKey"] = b_grant["tlsKey"].clone();
    std::fs::write(a.dir.join("state/grant.json"), wrong.to_string()).unwrap();
    assert!(std::process::Command::new("kill").args(["-KILL", &a.pid.to_string()]).status().unwrap().success());
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = via_edge(data, workspace_port, &a.host).await;
        if last.0 == 526 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last.0, 526, "{}", last.1);
    assert!(last.1.contains("not valid for"), "{}", last.1);
}
