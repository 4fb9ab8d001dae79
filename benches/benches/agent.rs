//! The terminal agent against a raw PTY read loop measured in the same run.
//!
//! `cargo bench -p sam-benches --bench agent` prints one table:
//!
//! * output throughput: `head -c $SAM_BENCH_MB M /dev/zero | base64` in bash,
//!   read by a raw PTY loop vs. over the agent's WebSocket on loopback
//!   (one tokio-tungstenite client, with and without flow-control acks);
//! * agent CPU per MB of output (the agent runs as a child process: this
//!   same binary with `--agent-child`, so its CPU is read from `/proc`),
//!   next to the CPU per MB of the raw read loop itself;
//! * keystroke echo latency p50/p99 (`stty raw -echo; exec cat`, one byte
//!   at a time; raw and agent samples alternate so both see the same
//!   background load), the agent's CPU time and sleeps per keystroke, and
//!   the same echo through an axum WebSocket server with no PTY behind it
//!   (what the WebSocket and loopback TCP alone cost);
//! * time to the first prompt (raw: spawn → prompt; agent: WebSocket connect
//!   → prompt, with its spare shell and, from a second agent, without), next
//!   to the WebSocket handshake alone;
//! * agent RSS idle and with 20 sessions;
//! * size of the agent binary as built by the `agent` profile (what VMs
//!   download) and by `--release`, where built.
//!
//! `SAM_BENCH_MB` (default 64), `SAM_BENCH_RUNS` (3), `SAM_BENCH_ECHOES`
//! (4000) and `SAM_BENCH_ONLY` (comma list of `throughput`, `echo`,
//! `prompt`, `rss`) tune a run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PROMPT: &[u8] = b"$ ";
const ECHO_SYNC: &[u8] = b"@@sync@@";

fn shell() -> sam_agent::ShellCommand {
    let mut s = sam_agent::ShellCommand::new("/bin/bash", &["--noprofile", "--norc"]);
    s.env = vec![("PS1".into(), "$ ".into()), ("HISTFILE".into(), "/dev/null".into())];
    s
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn flood_command(mb: u64) -> String {
    format!("head -c {mb}M /dev/zero | base64; echo DONE-$((40+2))\r")
}

// ---------------------------------------------------------------- agent child

fn agent_child() {
    // The same runtime flavour as the `sam-agent` binary.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sam_core::ports::{Audience, TokenIssuer, TokenRequest};
        let workspace = sam_core::domain::WorkspaceId::new();
        let authority = sam_core::testkit::fakes::FakeTokenAuthority::new("bench", "k1");
        let mut config = sam_agent::AgentConfig::new(workspace);
        config.cookie.secure = false;
        config.sessions.max_sessions = 64;
        if std::env::args().any(|a| a == "--no-spare") {
            config.sessions.spare_for = Duration::ZERO;
        }
        let agent = sam_agent::Agent::new(config, Arc::new(authority.clone()), Some(shell()));
        let token = authority
            .issue(
                TokenRequest {
                    audience: Audience::WorkspaceTerminal,
                    subject: sam_core::domain::UserId::new(),
                    workspace,
                    ttl: Duration::from_secs(3600),
                    session: None,
                },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let cookie = agent.auth.redeem(token.token.expose()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("READY {} {}={}", listener.local_addr().unwrap(), agent.auth.cookie_name(), cookie);
        sam_agent::web::serve(listener, agent).await.unwrap();
    });
}

/// The floor of the echo path: an axum WebSocket server on the same runtime
/// flavour that sends every binary frame straight back, no PTY behind it.
fn echo_child() {
    use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/ws/terminal",
            axum::routing::get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.next().await {
                        if let AxMessage::Binary(b) = msg
                            && socket.send(AxMessage::Binary(b)).await.is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("READY {} none=none", listener.local_addr().unwrap());
        use axum::serve::ListenerExt as _;
        let listener = listener.tap_io(|tcp| tcp.set_nodelay(true).unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

struct AgentProc {
    child: Child,
    addr: SocketAddr,
    cookie: String,
}

impl AgentProc {
    fn start() -> Self {
        Self::start_as("--agent-child")
    }

    fn start_as(role: &str) -> Self {
        Self::start_with(&[role])
    }

    fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace().skip(1);
        let addr = parts.next().unwrap().parse().unwrap();
        let cookie = parts.next().unwrap().to_owned();
        Self { child, addr, cookie }
    }

    /// CPU time of the agent process in ms: user + system time from
    /// `/proc/<pid>/stat`, which, unlike a sum over `/proc/<pid>/task`,
    /// keeps the time of threads that ended (blocking-pool threads, shell
    /// waiters). The kernel reports it in clock ticks (10 ms here), so the
    /// measured windows are hundreds of ms long.
    fn cpu_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
        // After the command name: state is field 3, utime 14 and stime 15.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 * 1e3 / clock_ticks_per_second()
    }

    /// Times the agent's threads went to sleep (voluntary context switches).
    fn sleeps(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .flatten()
            .filter_map(|task| status_field(&task.path().join("status"), "voluntary_ctxt_switches:"))
            .sum()
    }

    fn rss_kib(&self) -> u64 {
        status_field(std::path::Path::new(&format!("/proc/{}/status", self.child.id())), "VmRSS:").unwrap_or(0)
    }

    async fn connect(&self, query: &str) -> Ws {
        let mut req = format!("ws://{}/ws/terminal?{query}", self.addr).into_client_request().unwrap();
        req.headers_mut().insert("cookie", HeaderValue::from_str(&self.cookie).unwrap());
        req.headers_mut().insert("origin", HeaderValue::from_str(&format!("http://{}", self.addr)).unwrap());
        // Browsers set TCP_NODELAY; so does this client.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await.unwrap();
        ws
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first number after `key` in a `/proc` status file (`VmRSS:  4242 kB`).
fn status_field(path: &std::path::Path, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// Reads until `needle`; returns bytes read. Acks every 64 KiB when `ack`.
async fn ws_read_until(ws: &mut Ws, needle: &[u8], ack: bool, offset: &mut u64) -> usize {
    let mut total = 0;
    let mut window: Vec<u8> = Vec::new();
    let mut last_ack = *offset;
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => {
                total += b.len();
                *offset += b.len() as u64;
                window.extend_from_slice(&b);
                if contains(&window, needle) {
                    return total;
                }
                let keep = window.len().saturating_sub(needle.len());
                window.drain(..keep);
                if ack && *offset - last_ack >= 64 * 1024 {
                    last_ack = *offset;
                    let msg = format!(r#"{{"type":"ack","offset":{offset}}}"#);
                    ws.send(Message::Text(msg.into())).await.unwrap();
                }
            }
            Message::Text(t) if t.contains("\"hello\"") => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                *offset = v["offset"].as_u64().unwrap();
                last_ack = *offset;
            }
            _ => {}
        }
    }
}

/// One keystroke over `ws`: send a byte, wait for the binary frame back (µs).
async fn ws_echo(ws: &mut Ws) -> f64 {
    let t0 = Instant::now();
    ws.send(Message::Binary(b"a".to_vec().into())).await.unwrap();
    loop {
        if let Message::Binary(_) = ws.next().await.unwrap().unwrap() {
            break;
        }
    }
    t0.elapsed().as_secs_f64() * 1e6
}

// ---------------------------------------------------------------- raw PTY

struct RawPty {
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl RawPty {
    fn spawn() -> Self {
        let pty = native_pty_system().openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 }).unwrap();
        let mut cmd = CommandBuilder::new("/bin/bash");
        cmd.args(["--noprofile", "--norc"]);
        cmd.env("PS1", "$ ");
        cmd.env("HISTFILE", "/dev/null");
        cmd.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let reader = pty.master.try_clone_reader().unwrap();
        let writer = pty.master.take_writer().unwrap();
        Self { reader, writer, child, _master: pty.master }
    }

    fn read_until(&mut self, needle: &[u8]) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        let mut window = Vec::new();
        let mut total = 0;
        loop {
            let n = self.reader.read(&mut buf).unwrap();
            assert!(n > 0, "raw pty EOF");
            total += n;
            window.extend_from_slice(&buf[..n]);
            if contains(&window, needle) {
                return total;
            }
            let keep = window.len().saturating_sub(needle.len());
            window.drain(..keep);
        }
    }
}

impl Drop for RawPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sysconf(_SC_CLK_TCK)`, read through `getconf` (no libc call here).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time of the calling thread in ms (`schedstat`, ns precision).
fn thread_cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e6
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

// ---------------------------------------------------------------- main

fn main() {
    if std::env::args().any(|a| a == "--agent-child") {
        agent_child();
        return;
    }
    if std::env::args().any(|a| a == "--echo-child") {
        echo_child();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: u64 = std::env::var("SAM_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let runs: usize = std::env::var("SAM_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let echo_n: usize = std::env::var("SAM_BENCH_ECHOES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    // `SAM_BENCH_ONLY=echo,throughput` runs a subset (quicker A/B runs).
    let only = std::env::var("SAM_BENCH_ONLY").unwrap_or_default();
    let enabled = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let agent = AgentProc::start();
    let mut rows: Vec<(String, String)> = Vec::new();

    // Throughput.
    if enabled("throughput") {
        let mut raw_rates = Vec::new();
        let mut raw_cpu_per_mb = Vec::new();
        let mut ws_rates = Vec::new();
        let mut ack_rates = Vec::new();
        let mut cpu_per_mb = Vec::new();
        for run in 0..runs {
            let mut raw = RawPty::spawn();
            raw.read_until(PROMPT);
            raw.writer.write_all(flood_command(mb).as_bytes()).unwrap();
            let t0 = Instant::now();
            let cpu0 = thread_cpu_ms();
            let bytes = raw.read_until(b"DONE-42");
            raw_rates.push(bytes as f64 / t0.elapsed().as_secs_f64() / 1e6);
            raw_cpu_per_mb.push((thread_cpu_ms() - cpu0) / (bytes as f64 / 1e6));
            drop(raw);

            for ack in [false, true] {
                let (rate, cpu) = rt.block_on(async {
                    let mut ws = agent.connect(&format!("session=tp{run}{ack}&ack={}", u8::from(ack))).await;
                    let mut offset = 0;
                    ws_read_until(&mut ws, PROMPT, ack, &mut offset).await;
                    let cpu0 = agent.cpu_ms();
                    ws.send(Message::Binary(flood_command(mb).into_bytes().into())).await.unwrap();
                    let t0 = Instant::now();
                    let bytes = ws_read_until(&mut ws, b"DONE-42", ack, &mut offset).await;
                    let secs = t0.elapsed().as_secs_f64();
                    let cpu = agent.cpu_ms() - cpu0;
                    ws.send(Message::Text(r#"{"type":"close"}"#.into())).await.unwrap();
                    (bytes as f64 / secs / 1e6, cpu / (bytes as f64 / 1e6))
                });
                if ack {
                    ack_rates.push(rate);
                } else {
                    ws_rates.push(rate);
                    cpu_per_mb.push(cpu);
                }
            }
        }
        let raw_rate = median(raw_rates);
        let ws_rate = median(ws_rates);
        let ack_rate = median(ack_rates);
        rows.push(("throughput raw PTY (MB/s)".into(), format!("{raw_rate:.1}")));
        rows.push(("throughput agent WS (MB/s)".into(), format!("{ws_rate:.1}  = {:.2}x raw", ws_rate / raw_rate)));
        rows.push((
            "throughput agent WS, acks (MB/s)".into(),
            format!("{ack_rate:.1}  = {:.2}x raw", ack_rate / raw_rate),
        ));
        rows.push(("agent CPU per MB (ms)".into(), format!("{:.2}", median(cpu_per_mb))));
        rows.push(("raw PTY read loop CPU per MB (ms)".into(), format!("{:.2}", median(raw_cpu_per_mb))));
    }

    // Echo latency: raw and agent samples alternate, so both see the same
    // background load (this machine is shared; a block of raw samples
    // followed by a block of agent samples would compare different minutes).
    if enabled("echo") {
        let mut raw = RawPty::spawn();
        raw.read_until(PROMPT);
        raw.writer.write_all(b"stty raw -echo; exec cat\r").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // A marker the typed command line cannot contain ("exec" has an
        // "x"): waiting for it leaves nothing unread, so every sample below
        // reads its own echo, not the one before.
        raw.writer.write_all(ECHO_SYNC).unwrap();
        raw.read_until(ECHO_SYNC);
        let mut ws = rt.block_on(async {
            let mut ws = agent.connect("session=echo").await;
            let mut offset = 0;
            ws_read_until(&mut ws, PROMPT, false, &mut offset).await;
            ws.send(Message::Binary(b"stty raw -echo; exec cat\r".to_vec().into())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            ws.send(Message::Binary(ECHO_SYNC.to_vec().into())).await.unwrap();
            ws_read_until(&mut ws, ECHO_SYNC, false, &mut offset).await;
            ws
        });
        let floor = AgentProc::start_as("--echo-child");
        let mut floor_ws = rt.block_on(floor.connect("session=floor"));
        let echo_cpu0 = agent.cpu_ms();
        let echo_sleeps0 = agent.sleeps();
        let mut raw_lat = Vec::with_capacity(echo_n);
        let mut ws_lat = Vec::with_capacity(echo_n);
        let mut floor_lat = Vec::with_capacity(echo_n);
        let mut buf = [0u8; 64];
        for _ in 0..echo_n {
            let t0 = Instant::now();
            raw.writer.write_all(b"a").unwrap();
            let mut got = 0;
            while got == 0 {
                got = raw.reader.read(&mut buf).unwrap();
            }
            raw_lat.push(t0.elapsed().as_secs_f64() * 1e6);
            ws_lat.push(rt.block_on(ws_echo(&mut ws)));
            floor_lat.push(rt.block_on(ws_echo(&mut floor_ws)));
        }
        let echo_cpu_us = (agent.cpu_ms() - echo_cpu0) * 1e3 / echo_n as f64;
        let echo_sleeps = (agent.sleeps() - echo_sleeps0) as f64 / echo_n as f64;
        drop(floor);
        drop(raw);
        rt.block_on(async { ws.send(Message::Text(r#"{"type":"close"}"#.into())).await.unwrap() });
        raw_lat.sort_by(f64::total_cmp);
        ws_lat.sort_by(f64::total_cmp);
        floor_lat.sort_by(f64::total_cmp);
        let (rp50, rp99) = (percentile(&raw_lat, 0.5), percentile(&raw_lat, 0.99));
        let (wp50, wp99) = (percentile(&ws_lat, 0.5), percentile(&ws_lat, 0.99));
        rows.push(("echo raw PTY p50/p99 (µs)".into(), format!("{rp50:.0} / {rp99:.0}")));
        rows.push((
            "echo agent WS p50/p99 (µs)".into(),
            format!("{wp50:.0} / {wp99:.0}  = {:.2}x / {:.2}x raw", wp50 / rp50, wp99 / rp99),
        ));
        rows.push(("agent CPU / sleeps per keystroke echo".into(), format!("{echo_cpu_us:.1} µs / {echo_sleeps:.2}")));
        rows.push((
            "echo WS alone p50/p99 (µs)".into(),
            format!(
                "{:.0} / {:.0}  (axum echo server, no PTY)",
                percentile(&floor_lat, 0.5),
                percentile(&floor_lat, 0.99)
            ),
        ));
    }

    // Time to first prompt.
    if enabled("prompt") {
        // Alternating samples, as for the echo, a tab every 100 ms. The agent
        // keeps a spare shell for the next tab; `cold` is an agent without
        // one. The WebSocket handshake to the no-PTY echo server shows what
        // the connection alone costs.
        let floor = AgentProc::start_as("--echo-child");
        let cold = AgentProc::start_with(&["--agent-child", "--no-spare"]);
        let (mut raw_prompt, mut warm, mut cold_prompt, mut handshake) = (vec![], vec![], vec![], vec![]);
        for i in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            let t0 = Instant::now();
            let mut raw = RawPty::spawn();
            raw.read_until(PROMPT);
            raw_prompt.push(t0.elapsed().as_secs_f64() * 1e3);
            drop(raw);
            rt.block_on(async {
                for (proc, samples) in [(&agent, &mut warm), (&cold, &mut cold_prompt)] {
                    let t0 = Instant::now();
                    let mut ws = proc.connect(&format!("session=prompt{i}")).await;
                    let mut offset = 0;
                    ws_read_until(&mut ws, PROMPT, false, &mut offset).await;
                    samples.push(t0.elapsed().as_secs_f64() * 1e3);
                    ws.send(Message::Text(r#"{"type":"close"}"#.into())).await.unwrap();
                }
                let t0 = Instant::now();
                let ws = floor.connect("session=handshake").await;
                handshake.push(t0.elapsed().as_secs_f64() * 1e3);
                drop(ws);
            });
        }
        let rp = median(raw_prompt);
        let (wp, cp) = (median(warm), median(cold_prompt));
        rows.push(("first prompt raw spawn (ms)".into(), format!("{rp:.2}")));
        rows.push(("first prompt agent WS connect (ms)".into(), format!("{wp:.2}  = {:.2}x raw", wp / rp)));
        rows.push(("  the same without a spare shell (ms)".into(), format!("{cp:.2}  = {:.2}x raw", cp / rp)));
        rows.push(("WebSocket handshake alone (ms)".into(), format!("{:.2}", median(handshake))));
    }

    // RSS: a fresh agent, idle, then 20 sessions.
    if enabled("rss") {
        let fresh = AgentProc::start();
        std::thread::sleep(Duration::from_millis(300));
        let idle = fresh.rss_kib();
        let with20 = rt.block_on(async {
            let mut sockets = Vec::new();
            for i in 0..20 {
                let mut ws = fresh.connect(&format!("session=rss{i}")).await;
                let mut offset = 0;
                ws_read_until(&mut ws, PROMPT, false, &mut offset).await;
                sockets.push(ws);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let rss = fresh.rss_kib();
            drop(sockets);
            rss
        });
        rows.push(("agent RSS idle (MiB)".into(), format!("{:.1}", idle as f64 / 1024.0)));
        rows.push((
            "agent RSS with 20 sessions (MiB)".into(),
            format!("{:.1}  (+{:.3} MiB/session)", with20 as f64 / 1024.0, (with20 - idle) as f64 / 1024.0 / 20.0),
        ));
    }

    // What each workspace VM downloads: the size-optimised `agent` profile
    // (and the plain release build next to it, when built).
    for (profile, how) in [("agent", "--profile agent"), ("release", "--release")] {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/{profile}/sam-agent"));
        let label = format!("sam-agent binary, {profile} profile (MiB)");
        match std::fs::metadata(&bin) {
            Ok(m) => rows.push((label, format!("{:.2}", m.len() as f64 / 1048576.0))),
            Err(_) => rows.push((label, format!("not built (cargo build {how} -p sam-agent)"))),
        }
    }

    println!("\nsam-agent vs raw PTY ({mb} MiB of zeros through base64, median of {runs} runs; {echo_n} echoes)");
    for (k, v) in rows {
        println!("  {k:<38} {v}");
    }
}
