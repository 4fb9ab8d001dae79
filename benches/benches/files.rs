//! Files in and out of a workspace through the agent (issue 22): upload and
//! download throughput against `cat` of the same file on the same machine,
//! measured in one run.
//!
//! The agent runs in this process on loopback with host shells (what
//! `--host-shell` and dev mode serve); the client is a plain HTTP/1.1
//! socket that sends or drains the body in 256-KiB pieces, as a browser's
//! network stack would, without parsing it. Baselines, each the median of
//! the same number of runs:
//!
//! * upload ↔ `cat src > dst` (a copy on the same disk),
//! * download ↔ `cat src > /dev/null` (reading the same file),
//! * and the floor of any HTTP transfer here: the same file sent over a
//!   loopback TCP connection to a reader that drops it (no HTTP, no agent).
//!
//! `cargo bench -p sam-benches --bench files`; `SAM_BENCH_FILE_MIB` (256)
//! and `SAM_BENCH_RUNS` (5) tune a run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark reports failure by panicking

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sam_agent::{Agent, AgentConfig, ShellCommand};
use sam_core::domain::{UserId, WorkspaceId};
use sam_core::ports::{Audience, TokenIssuer, TokenRequest};
use sam_core::testkit::fakes::FakeTokenAuthority;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PIECE: usize = 256 * 1024;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

fn cat(src: &Path, dst: &str) -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("/bin/sh")
        .args(["-c", "cat -- \"$1\" > \"$2\"", "sh"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}

/// Reads an HTTP/1.1 response's head; returns the status and the
/// `Content-Length`, leaving what followed the head in `rest`.
async fn read_head(tcp: &mut TcpStream, rest: &mut Vec<u8>) -> (u16, Option<u64>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&rest[..end]).into_owned();
            rest.drain(..end + 4);
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok());
            return (status, length);
        }
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        rest.extend_from_slice(&buf[..n]);
    }
}

/// Sends `file` on `tcp` in pieces of [`PIECE`].
async fn send_file(tcp: &mut TcpStream, file: &Path) {
    let mut source = tokio::fs::File::open(file).await.unwrap();
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = source.read(&mut piece).await.unwrap();
        if n == 0 {
            break;
        }
        tcp.write_all(&piece[..n]).await.unwrap();
    }
}

async fn upload(addr: &str, cookie: &str, file: &Path, name: &str) -> Duration {
    let size = std::fs::metadata(file).unwrap().len();
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let head = format!(
        "POST /api/files/upload?name={name}&overwrite=1 HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nOrigin: http://{addr}\r\nContent-Length: {size}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    send_file(&mut tcp, file).await;
    let mut rest = Vec::new();
    let (status, _) = read_head(&mut tcp, &mut rest).await;
    assert_eq!(status, 201, "upload answered {status}");
    started.elapsed()
}

async fn download(addr: &str, cookie: &str, path: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/files/download?path={} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        path.display()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let (status, length) = read_head(&mut tcp, &mut rest).await;
    assert_eq!(status, 200, "download answered {status}");
    let mut got = rest.len() as u64;
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = tcp.read(&mut piece).await.unwrap();
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(Some(got), length, "the whole file");
    (started.elapsed(), got)
}

/// The file over loopback TCP to a thread that reads and drops it.
async fn loopback(file: &Path) -> Duration {
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = sink.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        let (mut conn, _) = sink.accept().unwrap();
        let mut piece = vec![0u8; PIECE];
        while conn.read(&mut piece).unwrap() > 0 {}
        conn.write_all(b"k").unwrap();
    });
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    send_file(&mut tcp, file).await;
    tcp.shutdown().await.unwrap();
    let mut done = [0u8; 1];
    tcp.read_exact(&mut done).await.unwrap();
    let took = started.elapsed();
    reader.join().unwrap();
    took
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mib = env_or("SAM_BENCH_FILE_MIB", 256);
    let runs = env_or("SAM_BENCH_RUNS", 5).max(1) as usize;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("source.bin");
    {
        // Incompressible-looking bytes, written once.
        let mut data = vec![0u8; 1024 * 1024];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut f = std::fs::File::create(&src).unwrap();
        for _ in 0..mib {
            std::io::Write::write_all(&mut f, &data).unwrap();
        }
        f.sync_all().unwrap();
    }
    let bytes = mib * 1024 * 1024;

    // The agent: host shells whose directory is `dir`.
    sam_agent::ensure_tls_provider();
    let workspace = WorkspaceId::new();
    let authority = FakeTokenAuthority::new("sam-bench", "k1");
    let mut config = AgentConfig::new(workspace);
    config.cookie.secure = false;
    config.max_upload = bytes * 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    config.allowed_origins = vec![format!("http://{addr}")];
    let mut shell = ShellCommand::new("/bin/bash", &["--noprofile", "--norc"]);
    shell.cwd = Some(dir.path().display().to_string());
    let agent = Agent::new(config, Arc::new(authority.clone()), Some(shell));
    // The agent on a thread and runtime of its own, as the agent binary
    // runs (one current-thread runtime); this runtime is the client's.
    let listener = listener.into_std().unwrap();
    let served = Arc::clone(&agent);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = sam_agent::web::serve(listener, served).await;
        });
    });
    let token = authority
        .issue(
            TokenRequest {
                audience: Audience::WorkspaceTerminal,
                subject: UserId::new(),
                workspace,
                ttl: Duration::from_secs(600),
                session: None,
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap()
        .token
        .expose()
        .to_owned();
    let cookie = agent.auth.redeem(&token).await.unwrap();
    let cookie = format!("{}={cookie}", agent.auth.cookie_name());

    let copy = dir.path().join("copy.bin");
    let (mut cat_copy, mut cat_read, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut tcp = Vec::new();
    for run in 0..runs {
        cat_copy.push(mb_per_s(bytes, cat(&src, &copy.display().to_string())));
        let _ = std::fs::remove_file(&copy);
        cat_read.push(mb_per_s(bytes, cat(&src, "/dev/null")));
        up.push(mb_per_s(bytes, upload(&addr, &cookie, &src, "uploaded.bin").await));
        assert_eq!(std::fs::metadata(dir.path().join("uploaded.bin")).unwrap().len(), bytes);
        let (took, got) = download(&addr, &cookie, &src).await;
        down.push(mb_per_s(got, took));
        tcp.push(mb_per_s(bytes, loopback(&src).await));
        eprintln!(
            "run {run}: cat copy {:.0}, upload {:.0}, cat read {:.0}, download {:.0}, loopback TCP {:.0} MB/s",
            cat_copy[run], up[run], cat_read[run], down[run], tcp[run]
        );
    }
    let (cc, cr, u, d, t) = (median(cat_copy), median(cat_read), median(up), median(down), median(tcp));
    println!("files: {mib} MiB, {runs} runs, medians (MB/s); loopback TCP floor {t:.0} MB/s");
    println!("| direction | through the agent | cat of the same file | ratio | of the loopback floor |");
    println!("|---|---|---|---|---|");
    println!("| upload   | {u:.0} | {cc:.0} (`cat src > dst`) | {:.2}× | {:.2}× |", u / cc, u / t);
    println!("| download | {d:.0} | {cr:.0} (`cat src > /dev/null`) | {:.2}× | {:.2}× |", d / cr, d / t);
}
