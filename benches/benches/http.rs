//! Control-plane throughput under load, measured with `wrk` on loopback
//! against the release build: `GET /api/workspaces` for a user with 10
//! workspaces and agent heartbeats (RS256-verified callback credential), on
//! SQLite and, when `SAM_TEST_POSTGRES_URL` is set, PostgreSQL. Each figure
//! is printed next to `GET /api/health` measured in the same run (the cost of
//! the HTTP stack alone). Needs `wrk` (Debian package).
//!
//! `cargo bench -p sam-benches --bench http`

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark reports failure by panicking

use std::sync::Arc;
use std::time::Duration;

use sam_core::domain::NewSession;
use sam_core::lifecycle::{ServerRef, WorkspaceStatus};
use sam_core::ports::{Audience, Store, TokenIssuer, TokenRequest, WorkspaceLimits};
use sam_core::secret::sha256_hex;
use sam_core::testkit::{sample_new_user, sample_workspace};
use sam_providers::store::SqliteStore;

struct Figure {
    rps: f64,
    p99_ms: f64,
}

fn parse_ms(text: &str) -> f64 {
    let t = text.trim();
    if let Some(v) = t.strip_suffix("us") {
        v.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
    } else if let Some(v) = t.strip_suffix("ms") {
        v.parse().unwrap_or(f64::NAN)
    } else if let Some(v) = t.strip_suffix('s') {
        v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
    } else {
        f64::NAN
    }
}

fn wrk(url: &str, script: Option<&std::path::Path>, headers: &[String]) -> Figure {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", "-c32", "-d5s", "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(url).output().expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let p99_ms = text.lines().find_map(|l| l.trim().strip_prefix("99%")).map_or(f64::NAN, parse_ms);
    let errors = text.lines().find(|l| l.contains("Non-2xx"));
    assert!(errors.is_none(), "wrk saw errors for {url}:\n{text}");
    Figure { rps, p99_ms }
}

async fn measure(label: &str, store: Arc<dyn Store>) {
    let control_plane = sam_benches::ControlPlane::start(store.clone()).await;
    let issuer = control_plane.issuer.clone();
    let now = time::OffsetDateTime::now_utc();
    let user = store.upsert_user(&sample_new_user(1), now).await.unwrap().id;
    let secret = "bench-session-secret";
    store
        .create_session(
            &NewSession {
                id_hash: sha256_hex(secret.as_bytes()),
                user_id: user,
                expires_at: now + Duration::from_secs(3600),
            },
            now,
        )
        .await
        .unwrap();
    let mut first = None;
    for n in 0..10 {
        let mut ws = sample_workspace(user, &format!("bench-{n}"), now);
        ws.lifecycle.status = WorkspaceStatus::Running;
        ws.lifecycle.server =
            Some(ServerRef { id: sam_core::domain::ServerId(n.to_string()), ipv4: [10, 0, 0, 1].into() });
        ws.lifecycle.dns_record = Some(format!("rec{n}"));
        ws.lifecycle.agent_ready = true;
        let ws = store.insert_workspace(&ws, None, WorkspaceLimits::default()).await.unwrap();
        first.get_or_insert(ws.id);
    }
    let id = first.unwrap();
    let callback = issuer
        .issue(
            TokenRequest {
                audience: Audience::WorkspaceCallback,
                subject: user,
                workspace: id,
                ttl: Duration::from_secs(3600),
                session: None,
            },
            now,
        )
        .unwrap();

    let base = format!("http://{}", control_plane.addr);

    let script = std::env::temp_dir().join(format!("sam-heartbeat-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"idleSeconds\":0,\"activeSessions\":1}}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {}\"\n",
            callback.token.expose()
        ),
    )
    .unwrap();
    let base2 = base.clone();
    let (health, list, heartbeat) = tokio::task::spawn_blocking(move || {
        let health = wrk(&format!("{base2}/api/health"), None, &[]);
        let list = wrk(&format!("{base2}/api/workspaces"), None, &[format!("Cookie: sam_session={secret}")]);
        let heartbeat = wrk(&format!("{base2}/api/workspaces/{id}/heartbeat"), Some(&script), &[]);
        (health, list, heartbeat)
    })
    .await
    .unwrap();
    drop(control_plane);
    println!("{label}: GET /api/health {:.0} req/s p99 {:.2} ms (baseline)", health.rps, health.p99_ms);
    for (name, f) in [("GET /api/workspaces (10 workspaces)", &list), ("POST heartbeat (RS256 credential)", &heartbeat)]
    {
        println!(
            "{label}: {name} {:.0} req/s p99 {:.2} ms; {:.2}x the baseline's time per request",
            f.rps,
            f.p99_ms,
            health.rps / f.rps
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("sam-http-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = SqliteStore::open(dir.join("bench.db")).await.unwrap();
        measure("SQLite", Arc::new(sqlite)).await;
        let _ = std::fs::remove_dir_all(&dir);
        match std::env::var("SAM_TEST_POSTGRES_URL") {
            Ok(url) => measure("PostgreSQL", Arc::new(sam_benches::fresh_postgres(&url, "sam_http_bench").await)).await,
            Err(_) => {
                println!("PostgreSQL: skipped (set SAM_TEST_POSTGRES_URL, e.g. source scripts/test.d/10-postgres.sh)")
            }
        }
    });
}
