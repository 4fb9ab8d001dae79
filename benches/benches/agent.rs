//! The terminal agent against a raw PTY read loop and, when
//! `SAM_BENCH_TTYD` names a ttyd binary, ttyd — all measured in the same run
//! by the same WebSocket client.
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
//!   at a time; raw, agent, ttyd and no-PTY samples interleave so all see
//!   the same background load, in a new order every round: in a fixed
//!   order, the agent, always measured right after the raw PTY, came out
//!   5–11 % behind ttyd, and within 2 % of it once the order changed),
//!   the agent's and ttyd's CPU time and sleeps per keystroke, and the same
//!   echo through an axum WebSocket server with no PTY behind it (what the
//!   WebSocket and loopback TCP alone cost);
//! * time to the first prompt (raw: spawn → prompt; agent: WebSocket connect
//!   → prompt, with its spare shell and, from a second agent, without), next
//!   to the WebSocket handshake alone;
//! * Ctrl-C during an endless flood: time to the prompt and the output that
//!   still arrives after the keystroke, with a client reading as fast as it
//!   can (acking every 16 KiB, as `sam shell` does) and with one reading
//!   10 MB/s (slower than any of the servers sends, as a browser is; acking
//!   every 64 KiB, as the page does);
//! * agent (and ttyd) RSS idle, and what each session adds (from 1 to 21
//!   sessions: the first pages in code once);
//! * when `target/agent/sam-agent` is built (`cargo build --profile agent
//!   -p sam-agent`), the binary workspaces download, started as on a VM
//!   (RS256 terminal tokens against a key set this bench serves, the
//!   cookie from `/auth/callback`): its throughput and CPU per MB next to
//!   the bench's own agent (release profile), and its RSS, which the side by
//!   side table then shows (the bench's agent carries the bench with it);
//! * the browser side: 50 MB (`SAM_BENCH_BROWSER_MB`) through the terminal
//!   page's xterm.js in headless Chromium (`sam-agent/web/flood-bench.mjs`):
//!   the page's main-thread stalls and round trips during the flood next to
//!   the idle page's, the rendered rate, Ctrl-C → echo on screen;
//! * size of the agent binary as built by the `agent` profile (what VMs
//!   download) and by `--release`, where built.
//!
//! With ttyd, a last table puts the three side by side with a verdict per
//! figure. ttyd runs the same shell with `-W` (writable); its framing (a
//! command byte before every frame, a JSON hello that starts the shell) is
//! spoken by the same client. ttyd is not in Debian 12; build it from its
//! source (`cmake` with Debian's `libwebsockets-dev`, `libjson-c-dev`,
//! `libuv1-dev`), see `docs/performance.md`.
//!
//! `SAM_BENCH_MB` (default 64), `SAM_BENCH_RUNS` (3), `SAM_BENCH_ECHOES`
//! (4000) and `SAM_BENCH_ONLY` (comma list of `throughput`, `echo`,
//! `prompt`, `interrupt`, `rss`, `browser`) tune a run; `SAM_BENCH_SHIPPED`
//! names another binary to measure as the shipped agent, and
//! `SAM_BENCH_ONLY=startup-profile` only starts it, opens sessions and stops
//! it (what `scripts/agent-startup-order.sh` profiles).
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
        let workspace = sam_core::domain::WorkspaceId::new();
        let authority = sam_core::testkit::fakes::FakeTokenAuthority::new("bench", "k1");
        let mut config = sam_agent::AgentConfig::new(workspace);
        config.cookie.secure = false;
        config.sessions.max_sessions = 64;
        if std::env::args().any(|a| a == "--no-spare") {
            config.sessions.spare_for = Duration::ZERO;
        }
        let agent = sam_agent::Agent::new(config, Arc::new(authority.clone()), Some(shell()));
        let token = terminal_token(&authority, workspace);
        let cookie = agent.auth.redeem(&token).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("READY {} {}={}", listener.local_addr().unwrap(), agent.auth.cookie_name(), cookie);
        sam_agent::web::serve(listener, agent).await.unwrap();
    });
}

/// A terminal token for `workspace` from `issuer`, valid for an hour.
fn terminal_token(issuer: &dyn sam_core::ports::TokenIssuer, workspace: sam_core::domain::WorkspaceId) -> String {
    use sam_core::ports::{Audience, TokenRequest};
    let request = TokenRequest {
        audience: Audience::WorkspaceTerminal,
        subject: sam_core::domain::UserId::new(),
        workspace,
        ttl: Duration::from_secs(3600),
        session: None,
    };
    issuer.issue(request, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned()
}

/// Waits until a server started as a child process listens on `addr`.
fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
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

/// How a terminal server frames a session on its WebSocket: SAM's agent
/// carries PTY bytes as plain binary frames (control as JSON text); ttyd
/// prefixes every frame with a command byte (`0` input/output) and starts
/// the shell on a JSON hello.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Agent,
    Ttyd,
}

/// A terminal server running as a child process (the agent: this binary
/// with `--agent-child`; ttyd: the binary named by `SAM_BENCH_TTYD`).
struct AgentProc {
    child: Child,
    addr: SocketAddr,
    cookie: String,
    framing: Framing,
    /// The shipped agent's state directory and shell script.
    _dir: Option<tempfile::TempDir>,
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
        Self { child, addr, cookie, framing: Framing::Agent, _dir: None }
    }

    /// The agent binary every workspace VM downloads (`target/agent/sam-agent`,
    /// built with `--profile agent`), started as a VM starts it: terminal
    /// tokens are RS256 JWTs checked against the control plane's key set,
    /// which this process serves, and the cookie comes from redeeming one at
    /// `/auth/callback`, as a browser does. Its `--shell` is started as a
    /// login shell (`-l`), so a two-line script stands in for the shell and
    /// execs the same bash as the other servers run (sh's start costs it
    /// about a millisecond, so its first prompt is not measured here).
    fn start_shipped(bin: &std::path::Path) -> Self {
        use sam_core::ports::TokenIssuer as _;
        let dir = tempfile::tempdir().unwrap();
        let shell = dir.path().join("shell");
        std::fs::write(&shell, "#!/bin/sh\nexec /bin/bash --noprofile --norc\n").unwrap();
        std::fs::set_permissions(&shell, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

        let jwks_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let control_plane = format!("http://{}", jwks_listener.local_addr().unwrap());
        let issuer = sam_providers::jwt::JwtIssuer::new(
            control_plane.clone(),
            sam_providers::jwt::RsaSigningKey::generate(2048).unwrap(),
        );
        let jwks = serde_json::to_string(&issuer.jwks()).unwrap();
        std::thread::spawn(move || {
            for mut stream in jwks_listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
            }
        });

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let workspace = sam_core::domain::WorkspaceId::new();
        let child = Command::new(bin)
            .args(["--listen", &addr.to_string(), "--control-plane", &control_plane])
            .args(["--workspace-id", &workspace.to_string(), "--host-shell", "--shell"])
            .arg(&shell)
            .args(["--secure-cookie", "false", "--max-sessions", "64", "--state-dir"])
            .arg(dir.path().join("state"))
            .env("PS1", "$ ")
            .env("HISTFILE", "/dev/null")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        wait_listening(addr, &bin.display().to_string());
        let token = terminal_token(&issuer, workspace);
        let mut http = std::net::TcpStream::connect(addr).unwrap();
        write!(http, "GET /auth/callback?token={token} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        http.read_to_string(&mut response).unwrap();
        let cookie = response
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("no cookie from /auth/callback: {response}"))
            .to_owned();
        Self { child, addr, cookie, framing: Framing::Agent, _dir: Some(dir) }
    }

    /// ttyd serving the same shell (`-W`: writable, as the agent's
    /// terminal is), on a free loopback port, logs off.
    fn start_ttyd(bin: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args(["-W", "-d", "0", "-i", "127.0.0.1", "-p", &port.to_string(), "/bin/bash", "--noprofile", "--norc"])
            .env("PS1", "$ ")
            .env("HISTFILE", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr, "ttyd");
        Self { child, addr, cookie: String::new(), framing: Framing::Ttyd, _dir: None }
    }

    /// CPU time of the server process in ms: user + system time from
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

    /// Times the server's threads went to sleep (voluntary context switches).
    fn sleeps(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .flatten()
            .filter_map(|task| status_field(&task.path().join("status"), "voluntary_ctxt_switches:"))
            .sum()
    }

    fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// A field of the server's `/proc/<pid>/status` in KiB (`RssAnon:`, the
    /// resident memory no file backs: heap, stacks; the rest of RSS is the
    /// pages of the binary and its libraries the process has mapped).
    fn status_kib(&self, key: &str) -> u64 {
        status_field(std::path::Path::new(&format!("/proc/{}/status", self.child.id())), key).unwrap_or(0)
    }

    /// Opens a terminal session. `query` names the agent's session (and
    /// asks for acks with `ack=1`); ttyd has one session per connection.
    async fn connect(&self, query: &str) -> Conn {
        let url = match self.framing {
            Framing::Agent => format!("ws://{}/ws/terminal?{query}", self.addr),
            Framing::Ttyd => format!("ws://{}/ws", self.addr),
        };
        let mut req = url.into_client_request().unwrap();
        if !self.cookie.is_empty() {
            req.headers_mut().insert("cookie", HeaderValue::from_str(&self.cookie).unwrap());
        }
        req.headers_mut().insert("origin", HeaderValue::from_str(&format!("http://{}", self.addr)).unwrap());
        if self.framing == Framing::Ttyd {
            req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("tty"));
        }
        // Browsers set TCP_NODELAY; so does this client.
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await.unwrap();
        if self.framing == Framing::Ttyd {
            let hello = r#"{"AuthToken":"","columns":80,"rows":24}"#;
            ws.send(Message::Binary(hello.as_bytes().to_vec().into())).await.unwrap();
        }
        let ack_every = query.contains("ack=1").then_some(ACK_EVERY);
        Conn { ws, framing: self.framing, ack_every, offset: 0, last_ack: 0 }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One terminal session seen by the benchmark's client, whichever server.
struct Conn {
    ws: Ws,
    framing: Framing,
    /// Acknowledge output every this many bytes (the agent's flow control).
    ack_every: Option<u64>,
    offset: u64,
    last_ack: u64,
}

impl Conn {
    /// Types `bytes` into the shell.
    async fn send(&mut self, bytes: &[u8]) {
        let frame = match self.framing {
            Framing::Agent => bytes.to_vec(),
            Framing::Ttyd => [b"0", bytes].concat(),
        };
        self.ws.send(Message::Binary(frame.into())).await.unwrap();
    }

    /// The next chunk of terminal output (control frames are handled here).
    async fn output(&mut self) -> Vec<u8> {
        loop {
            match self.ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => match self.framing {
                    Framing::Agent => {
                        self.offset += b.len() as u64;
                        if self.ack_every.is_some_and(|every| self.offset - self.last_ack >= every) {
                            self.last_ack = self.offset;
                            let msg = format!(r#"{{"type":"ack","offset":{}}}"#, self.offset);
                            self.ws.send(Message::Text(msg.into())).await.unwrap();
                        }
                        return b.to_vec();
                    }
                    Framing::Ttyd if b.first() == Some(&b'0') => return b[1..].to_vec(),
                    Framing::Ttyd => {}
                },
                Message::Text(t) if self.framing == Framing::Agent && t.contains("\"hello\"") => {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    self.offset = v["offset"].as_u64().unwrap();
                    self.last_ack = self.offset;
                }
                _ => {}
            }
        }
    }

    /// Reads until `needle`; returns the bytes read.
    async fn read_until(&mut self, needle: &[u8]) -> usize {
        let mut total = 0;
        let mut window: Vec<u8> = Vec::new();
        loop {
            let b = self.output().await;
            total += b.len();
            window.extend_from_slice(&b);
            if contains(&window, needle) {
                return total;
            }
            let keep = window.len().saturating_sub(needle.len());
            window.drain(..keep);
        }
    }

    /// One keystroke: send a byte, wait for output back (µs).
    async fn echo(&mut self) -> f64 {
        let t0 = Instant::now();
        self.send(b"a").await;
        self.output().await;
        t0.elapsed().as_secs_f64() * 1e6
    }

    /// Ends the session (the agent keeps detached shells unless told).
    async fn close(mut self) {
        if self.framing == Framing::Agent {
            self.ws.send(Message::Text(r#"{"type":"close"}"#.into())).await.unwrap();
        }
        let _ = self.ws.close(None).await;
    }

    /// Interrupts a flood: waits for `warmup` bytes of it, sends Ctrl-C
    /// and returns (ms to the next prompt, bytes received meanwhile). The
    /// flood is base64, which never holds the prompt's `$ `. With `pace`
    /// (MB/s) the client takes that long over every frame it reads, as a
    /// browser rendering the output does; without, it reads as fast as it
    /// can.
    async fn interrupt(&mut self, warmup: usize, pace: Option<f64>) -> (f64, usize) {
        let mut seen = 0;
        while seen < warmup {
            seen += self.output_paced(pace).await.len();
        }
        let t0 = Instant::now();
        self.send(b"\x03").await;
        let mut bytes = 0;
        let mut window: Vec<u8> = Vec::new();
        loop {
            let b = self.output_paced(pace).await;
            bytes += b.len();
            window.extend_from_slice(&b);
            if contains(&window, PROMPT) {
                return (t0.elapsed().as_secs_f64() * 1e3, bytes);
            }
            let keep = window.len().saturating_sub(PROMPT.len());
            window.drain(..keep);
        }
    }

    /// [`Conn::output`], then the time a client reading at `pace` MB/s
    /// spends on it (on this thread: the client has nothing else to do).
    async fn output_paced(&mut self, pace: Option<f64>) -> Vec<u8> {
        let b = self.output().await;
        if let Some(mb_per_s) = pace {
            std::thread::sleep(Duration::from_secs_f64(b.len() as f64 / (mb_per_s * 1e6)));
        }
        b
    }
}

/// How often the client acks output, as `sam shell` does (`ACK_EVERY` in
/// `sam-cli/src/shell.rs`).
const ACK_EVERY: u64 = 16 * 1024;
/// How often the slow client acks, as the terminal page does (`ACK_EVERY`
/// in `sam-agent/assets/terminal.js`).
const PAGE_ACK_EVERY: u64 = 64 * 1024;

/// The flood the Ctrl-C rounds interrupt.
const ENDLESS_FLOOD: &[u8] = b"head -c 100000M /dev/zero | base64\r";

/// How fast the slow client of the Ctrl-C rounds reads (xterm.js renders
/// 18–21 MB/s in the browser part of this bench).
const SLOW_CLIENT_MB_S: f64 = 10.0;

/// One Ctrl-C round on a fresh session of `server`: an endless flood, 4 MiB
/// of it read, Ctrl-C, the prompt (see [`Conn::interrupt`]); then waits
/// until the flood's process is gone.
fn interrupt_round(rt: &tokio::runtime::Runtime, server: &AgentProc, session: &str, pace: Option<f64>) -> (f64, usize) {
    let r = rt.block_on(async {
        let mut ws = server.connect(&format!("session={session}&ack=1")).await;
        if pace.is_some() {
            ws.ack_every = Some(PAGE_ACK_EVERY);
        }
        ws.read_until(PROMPT).await;
        ws.send(ENDLESS_FLOOD).await;
        let r = ws.interrupt(4 << 20, pace).await;
        ws.close().await;
        r
    });
    wait_until_none_named("base64");
    r
}

/// The first number after `key` in a `/proc` status file (`VmRSS:  4242 kB`).
fn status_field(path: &std::path::Path, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// Waits (at most 3 s) until no process named `name` runs on the machine:
/// a flood one contender's round left behind (a server ends its shell
/// asynchronously after the socket closed) must not share the CPU with the
/// next contender's round.
fn wait_until_none_named(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let running =
        || {
            std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|entry| {
                std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name)
            })
        };
    while running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
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

/// Medians of one figure for each contender (`None`: not measured).
#[derive(Default, Clone, Copy)]
struct Figure {
    raw: Option<f64>,
    agent: Option<f64>,
    ttyd: Option<f64>,
}

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
    let ttyd_bin = std::env::var("SAM_BENCH_TTYD").ok().filter(|p| !p.is_empty());
    // The agent binary workspaces download, when built (`cargo build
    // --profile agent -p sam-agent`): measured beside the bench's own agent
    // for throughput and memory.
    // (`SAM_BENCH_SHIPPED` names another: `scripts/agent-startup-order.sh`
    // runs the agent under a profiler that way.)
    let shipped_bin = std::env::var_os("SAM_BENCH_SHIPPED")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/agent/sam-agent")))
        .filter(|p| p.exists());
    if only.split(',').any(|p| p.trim() == "startup-profile") {
        startup_profile(shipped_bin.as_deref().expect("no agent binary: build it or set SAM_BENCH_SHIPPED"));
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let agent = AgentProc::start();
    let ttyd = ttyd_bin.as_deref().map(AgentProc::start_ttyd);
    let shipped = shipped_bin.as_deref().filter(|_| enabled("throughput")).map(AgentProc::start_shipped);
    let mut rows: Vec<(String, String)> = Vec::new();
    let (mut throughput, mut cpu, mut echo_p50, mut echo_p99) =
        (Figure::default(), Figure::default(), Figure::default(), Figure::default());
    let (mut prompt, mut rss_idle, mut rss_session) = (Figure::default(), Figure::default(), Figure::default());
    let mut anon_idle = Figure::default();
    let (mut ctrl_c_ms, mut ctrl_c_kb) = (Figure::default(), Figure::default());
    let (mut ctrl_c_slow_ms, mut ctrl_c_slow_kb) = (Figure::default(), Figure::default());

    // Throughput.
    if enabled("throughput") {
        let mut raw_rates = Vec::new();
        let mut raw_cpu_per_mb = Vec::new();
        let mut ws_rates = Vec::new();
        let mut ack_rates = Vec::new();
        let mut cpu_per_mb = Vec::new();
        let (mut ttyd_rates, mut ttyd_cpu) = (Vec::new(), Vec::new());
        let (mut shipped_rates, mut shipped_cpu) = (Vec::new(), Vec::new());
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

            let servers = [(&agent, false), (&agent, true)]
                .into_iter()
                .chain(ttyd.as_ref().map(|t| (t, false)))
                .chain(shipped.as_ref().map(|t| (t, false)));
            for (server, ack) in servers {
                let is_shipped = shipped.as_ref().is_some_and(|s| std::ptr::eq(s, server));
                let (rate, cpu) = rt.block_on(async {
                    let mut ws = server.connect(&format!("session=tp{run}{ack}&ack={}", u8::from(ack))).await;
                    ws.read_until(PROMPT).await;
                    let cpu0 = server.cpu_ms();
                    ws.send(flood_command(mb).as_bytes()).await;
                    let t0 = Instant::now();
                    let bytes = ws.read_until(b"DONE-42").await;
                    let secs = t0.elapsed().as_secs_f64();
                    let cpu = server.cpu_ms() - cpu0;
                    ws.close().await;
                    (bytes as f64 / secs / 1e6, cpu / (bytes as f64 / 1e6))
                });
                match (server.framing, ack) {
                    _ if is_shipped => {
                        shipped_rates.push(rate);
                        shipped_cpu.push(cpu);
                    }
                    (Framing::Ttyd, _) => {
                        ttyd_rates.push(rate);
                        ttyd_cpu.push(cpu);
                    }
                    (Framing::Agent, true) => ack_rates.push(rate),
                    (Framing::Agent, false) => {
                        ws_rates.push(rate);
                        cpu_per_mb.push(cpu);
                    }
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
        rows.push(("agent CPU per MB (ms)".into(), format!("{:.2}", median(cpu_per_mb.clone()))));
        if shipped.is_some() {
            let rate = median(shipped_rates);
            rows.push((
                "throughput shipped agent (MB/s)".into(),
                format!("{rate:.1}  = {:.2}x raw; CPU {:.2} ms/MB", rate / raw_rate, median(shipped_cpu)),
            ));
        }
        rows.push(("raw PTY read loop CPU per MB (ms)".into(), format!("{:.2}", median(raw_cpu_per_mb.clone()))));
        throughput = Figure { raw: Some(raw_rate), agent: Some(ws_rate), ttyd: None };
        cpu = Figure { raw: Some(median(raw_cpu_per_mb)), agent: Some(median(cpu_per_mb)), ttyd: None };
        if ttyd.is_some() {
            let rate = median(ttyd_rates);
            rows.push(("throughput ttyd (MB/s)".into(), format!("{rate:.1}  = {:.2}x raw", rate / raw_rate)));
            throughput.ttyd = Some(rate);
            cpu.ttyd = Some(median(ttyd_cpu));
        }
    }

    // Echo latency: raw, agent and ttyd samples alternate, so all see the
    // same background load (this machine is shared; a block of raw samples
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
        let start_cat = |server: &AgentProc| {
            rt.block_on(async {
                let mut ws = server.connect("session=echo").await;
                ws.read_until(PROMPT).await;
                ws.send(b"stty raw -echo; exec cat\r").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                ws.send(ECHO_SYNC).await;
                ws.read_until(ECHO_SYNC).await;
                ws
            })
        };
        let mut ws = start_cat(&agent);
        let mut ttyd_ws = ttyd.as_ref().map(start_cat);
        let floor = AgentProc::start_as("--echo-child");
        let mut floor_ws = rt.block_on(floor.connect("session=floor"));
        let echo_cpu0 = agent.cpu_ms();
        let echo_sleeps0 = agent.sleeps();
        let ttyd_cpu0 = ttyd.as_ref().map(|t| (t.cpu_ms(), t.sleeps()));
        let mut raw_lat = Vec::with_capacity(echo_n);
        let mut ws_lat = Vec::with_capacity(echo_n);
        let mut floor_lat = Vec::with_capacity(echo_n);
        let mut ttyd_lat = Vec::with_capacity(echo_n);
        let mut buf = [0u8; 64];
        // Each round takes the four in a new order (all 24 in turn), so none
        // of them always follows the same other: an echo right after
        // another server's finds the scheduler's placement of the client,
        // the server and the shells in a different state.
        let orders: Vec<[usize; 4]> = (0..4)
            .flat_map(|a| (0..4).flat_map(move |b| (0..4).flat_map(move |c| (0..4).map(move |d| [a, b, c, d]))))
            .filter(|o| (1..4).all(|i| !o[..i].contains(&o[i])))
            .collect();
        for i in 0..echo_n {
            for k in orders[i % orders.len()] {
                match k {
                    0 => {
                        let t0 = Instant::now();
                        raw.writer.write_all(b"a").unwrap();
                        let mut got = 0;
                        while got == 0 {
                            got = raw.reader.read(&mut buf).unwrap();
                        }
                        raw_lat.push(t0.elapsed().as_secs_f64() * 1e6);
                    }
                    1 => ws_lat.push(rt.block_on(ws.echo())),
                    2 => floor_lat.push(rt.block_on(floor_ws.echo())),
                    _ => {
                        if let Some(t) = ttyd_ws.as_mut() {
                            ttyd_lat.push(rt.block_on(t.echo()));
                        }
                    }
                }
            }
        }
        let echo_cpu_us = (agent.cpu_ms() - echo_cpu0) * 1e3 / echo_n as f64;
        let echo_sleeps = (agent.sleeps() - echo_sleeps0) as f64 / echo_n as f64;
        let ttyd_cpu = ttyd.as_ref().zip(ttyd_cpu0).map(|(t, (cpu0, sleeps0))| {
            ((t.cpu_ms() - cpu0) * 1e3 / echo_n as f64, (t.sleeps() - sleeps0) as f64 / echo_n as f64)
        });
        drop(floor);
        drop(raw);
        rt.block_on(ws.close());
        if let Some(t) = ttyd_ws {
            rt.block_on(t.close());
        }
        for v in [&mut raw_lat, &mut ws_lat, &mut floor_lat, &mut ttyd_lat] {
            v.sort_by(f64::total_cmp);
        }
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
        echo_p50 = Figure { raw: Some(rp50), agent: Some(wp50), ttyd: None };
        echo_p99 = Figure { raw: Some(rp99), agent: Some(wp99), ttyd: None };
        if !ttyd_lat.is_empty() {
            let (tp50, tp99) = (percentile(&ttyd_lat, 0.5), percentile(&ttyd_lat, 0.99));
            rows.push((
                "echo ttyd p50/p99 (µs)".into(),
                format!("{tp50:.0} / {tp99:.0}  = {:.2}x / {:.2}x raw", tp50 / rp50, tp99 / rp99),
            ));
            if let Some((cpu_us, sleeps)) = ttyd_cpu {
                rows.push(("ttyd CPU / sleeps per keystroke echo".into(), format!("{cpu_us:.1} µs / {sleeps:.2}")));
            }
            echo_p50.ttyd = Some(tp50);
            echo_p99.ttyd = Some(tp99);
        }
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
        let mut ttyd_prompt = vec![];
        for i in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            let t0 = Instant::now();
            let mut raw = RawPty::spawn();
            raw.read_until(PROMPT);
            raw_prompt.push(t0.elapsed().as_secs_f64() * 1e3);
            drop(raw);
            rt.block_on(async {
                let contenders = [(&agent, &mut warm), (&cold, &mut cold_prompt)]
                    .into_iter()
                    .chain(ttyd.as_ref().map(|t| (t, &mut ttyd_prompt)));
                for (proc, samples) in contenders {
                    // The previous contender's closed session is still
                    // being cleaned up (the agent scans /proc for what the
                    // shell left behind): let it finish, on this 2-core
                    // machine it would slow the next sample down.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let t0 = Instant::now();
                    let mut ws = proc.connect(&format!("session=prompt{i}")).await;
                    ws.read_until(PROMPT).await;
                    samples.push(t0.elapsed().as_secs_f64() * 1e3);
                    ws.close().await;
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
        // The comparison uses the agent without a spare shell: ttyd keeps none.
        prompt = Figure { raw: Some(rp), agent: Some(cp), ttyd: None };
        if !ttyd_prompt.is_empty() {
            let tp = median(ttyd_prompt);
            rows.push(("first prompt ttyd (ms)".into(), format!("{tp:.2}  = {:.2}x raw", tp / rp)));
            prompt.ttyd = Some(tp);
        }
    }

    // Ctrl-C in a flood: how long until the prompt is back, and how much
    // output still arrives after the keystroke (what the user scrolls past).
    if enabled("interrupt") {
        let (mut raw_ms, mut raw_bytes, mut agent_ms, mut agent_bytes) = (vec![], vec![], vec![], vec![]);
        let (mut ttyd_ms, mut ttyd_bytes) = (vec![], vec![]);
        let (mut agent_slow_ms, mut agent_slow_bytes, mut ttyd_slow_ms, mut ttyd_slow_bytes) =
            (vec![], vec![], vec![], vec![]);
        for run in 0..runs.max(5) {
            let mut raw = RawPty::spawn();
            raw.read_until(PROMPT);
            raw.writer.write_all(ENDLESS_FLOOD).unwrap();
            let mut seen = 0;
            let mut buf = vec![0u8; 64 * 1024];
            while seen < 4 << 20 {
                seen += raw.reader.read(&mut buf).unwrap();
            }
            let t0 = Instant::now();
            raw.writer.write_all(b"\x03").unwrap();
            raw_bytes.push(raw.read_until(PROMPT) as f64);
            raw_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            drop(raw);
            wait_until_none_named("base64");
            let contenders = [(&agent, &mut agent_ms, &mut agent_bytes)]
                .into_iter()
                .chain(ttyd.as_ref().map(|t| (t, &mut ttyd_ms, &mut ttyd_bytes)));
            for (server, ms, bytes) in contenders {
                let (t, b) = interrupt_round(&rt, server, &format!("int{run}"), None);
                ms.push(t);
                bytes.push(b as f64);
            }
            // The same with a client that reads as slowly as a browser
            // renders: every server then runs ahead of it.
            let contenders = [(&agent, &mut agent_slow_ms, &mut agent_slow_bytes)]
                .into_iter()
                .chain(ttyd.as_ref().map(|t| (t, &mut ttyd_slow_ms, &mut ttyd_slow_bytes)));
            for (server, ms, bytes) in contenders {
                let (t, b) = interrupt_round(&rt, server, &format!("slow{run}"), Some(SLOW_CLIENT_MB_S));
                ms.push(t);
                bytes.push(b as f64);
            }
        }
        ctrl_c_ms = Figure { raw: Some(median(raw_ms)), agent: Some(median(agent_ms)), ttyd: None };
        ctrl_c_kb =
            Figure { raw: Some(median(raw_bytes) / 1024.0), agent: Some(median(agent_bytes) / 1024.0), ttyd: None };
        ctrl_c_slow_ms = Figure { raw: None, agent: Some(median(agent_slow_ms)), ttyd: None };
        ctrl_c_slow_kb = Figure { raw: None, agent: Some(median(agent_slow_bytes) / 1024.0), ttyd: None };
        if !ttyd_ms.is_empty() {
            ctrl_c_ms.ttyd = Some(median(ttyd_ms));
            ctrl_c_kb.ttyd = Some(median(ttyd_bytes) / 1024.0);
            ctrl_c_slow_ms.ttyd = Some(median(ttyd_slow_ms));
            ctrl_c_slow_kb.ttyd = Some(median(ttyd_slow_bytes) / 1024.0);
        }
        let who = [("raw PTY", ctrl_c_ms.raw, ctrl_c_kb.raw), ("agent", ctrl_c_ms.agent, ctrl_c_kb.agent)];
        for (who, ms, kb) in who.into_iter().chain([("ttyd", ctrl_c_ms.ttyd, ctrl_c_kb.ttyd)]) {
            if let (Some(ms), Some(kb)) = (ms, kb) {
                rows.push((format!("Ctrl-C in a flood, {who}: ms; KiB after"), format!("{ms:.2}; {kb:.0}")));
            }
        }
        let who =
            [("agent", ctrl_c_slow_ms.agent, ctrl_c_slow_kb.agent), ("ttyd", ctrl_c_slow_ms.ttyd, ctrl_c_slow_kb.ttyd)];
        for (who, ms, kb) in who {
            if let (Some(ms), Some(kb)) = (ms, kb) {
                rows.push((
                    format!("  client at {SLOW_CLIENT_MB_S} MB/s, {who}: ms; KiB"),
                    format!("{ms:.1}; {kb:.0}"),
                ));
            }
        }
    }

    // RSS: a fresh server, idle; then what each session adds, from one
    // session to 21 (the first session pages in the code that spawns and
    // serves shells, a cost paid once, not per session).
    if enabled("rss") {
        let fresh = [
            Some((AgentProc::start(), "agent")),
            shipped_bin.as_deref().map(|bin| (AgentProc::start_shipped(bin), "shipped agent")),
            ttyd_bin.as_deref().map(|bin| (AgentProc::start_ttyd(bin), "ttyd")),
        ];
        for (server, who) in fresh.iter().flatten() {
            std::thread::sleep(Duration::from_millis(300));
            let idle = server.rss_kib();
            let idle_anon = server.status_kib("RssAnon:");
            let (one, with21) = rt.block_on(async {
                let mut sockets = Vec::new();
                let mut one = 0;
                for i in 0..21 {
                    let mut ws = server.connect(&format!("session=rss{i}")).await;
                    ws.read_until(PROMPT).await;
                    sockets.push(ws);
                    if i == 0 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        one = server.rss_kib();
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let rss = server.rss_kib();
                drop(sockets);
                (one, rss)
            });
            let (idle_mib, per) = (idle as f64 / 1024.0, with21.saturating_sub(one) as f64 / 1024.0 / 20.0);
            let anon_mib = idle_anon as f64 / 1024.0;
            rows.push((format!("{who} RSS idle (MiB)"), format!("{idle_mib:.1}  (anonymous {anon_mib:.2})")));
            rows.push((
                format!("{who} RSS with 1 / 21 sessions (MiB)"),
                format!("{:.1} / {:.1}  (+{per:.3} MiB/session)", one as f64 / 1024.0, with21 as f64 / 1024.0),
            ));
            // The table shows what a workspace runs: the shipped binary
            // when it is built (the bench binary's agent carries the bench,
            // the test kit and a release profile besides).
            match *who {
                "ttyd" => {
                    (rss_idle.ttyd, rss_session.ttyd, anon_idle.ttyd) = (Some(idle_mib), Some(per), Some(anon_mib));
                }
                "agent" if shipped_bin.is_some() => {}
                _ => (rss_idle.agent, rss_session.agent, anon_idle.agent) = (Some(idle_mib), Some(per), Some(anon_mib)),
            }
        }
    }

    // The browser side: 50 MB through the page's xterm.js in Chromium.
    if enabled("browser") {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sam-agent/web");
        if web.join("node_modules/playwright-core").exists() {
            let browser_mb = std::env::var("SAM_BENCH_BROWSER_MB").unwrap_or_else(|_| "50".into());
            let fresh = AgentProc::start();
            let (name, value) = fresh.cookie.split_once('=').unwrap();
            let out = Command::new("node")
                .arg(web.join("flood-bench.mjs"))
                .args([&format!("http://{}", fresh.addr), name, value, &browser_mb])
                .current_dir(&web)
                .stderr(Stdio::inherit())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default())
                .unwrap_or_else(|e| panic!("flood-bench.mjs: {e}: {text}"));
            let f = |path: &str| v.pointer(path).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
            rows.push((
                "page idle: longest stall; round trip p50/p99 (ms)".into(),
                format!("{:.0}; {:.1} / {:.1}", f("/idle/maxStall"), f("/idle/tripP50"), f("/idle/tripP99")),
            ));
            rows.push((
                format!("page, {browser_mb} MB flood: rendered (MB/s)"),
                format!("{:.1}  ({:.1} s)", f("/flood/mbPerS"), f("/flood/ms") / 1e3),
            ));
            rows.push((
                "  page's long tasks (> 50 ms): count; longest".into(),
                format!("{:.0}; {:.0} ms", f("/flood/longTasks"), f("/flood/longestTask")),
            ));
            rows.push((
                "  5-ms timer: longest stall; time in > 50 ms".into(),
                format!("{:.0} ms; {:.0} ms", f("/flood/maxStall"), f("/flood/blocked")),
            ));
            rows.push((
                "  round trip p50/p99/max (ms)".into(),
                format!("{:.1} / {:.1} / {:.1}", f("/flood/tripP50"), f("/flood/tripP99"), f("/flood/tripMax")),
            ));
            rows.push((
                "page: Ctrl-C + command -> answer shown (ms)".into(),
                format!("{:.0} in a flood; {:.0} idle (baseline)", f("/ctrlC"), f("/idleCtrlC")),
            ));
        } else {
            rows.push(("browser part".into(), "skipped (npm ci in sam-agent/web, and Chromium)".into()));
        }
    }

    // What each workspace VM downloads: the size-optimised `agent` profile
    // (and the plain release build next to it, when built).
    for (profile, how) in [("agent", "--profile agent"), ("release", "--release")] {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/{profile}/sam-agent"));
        let label = format!("sam-agent binary, {profile} profile (MiB)");
        match std::fs::metadata(&bin) {
            Ok(m) => {
                // A stale build would measure old code: say how old it is.
                let age = m.modified().ok().and_then(|t| t.elapsed().ok()).map_or(0, |d| d.as_secs() / 60);
                rows.push((label, format!("{:.2}  (built {age} min ago)", m.len() as f64 / 1048576.0)));
                // What `sam-agent/startup-order.ld` gathered: when it has
                // gone stale, this shrinks and the idle RSS grows.
                let sections = elf_sections(&bin);
                let size = |name: &str| sections.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
                rows.push((
                    format!("  start-up code placed first ({profile})"),
                    format!(
                        "{:.2} MiB of {:.2} MiB code",
                        size(".text.startup") as f64 / 1048576.0,
                        (size(".text.startup") + size(".text")) as f64 / 1048576.0
                    ),
                ));
            }
            Err(_) => rows.push((label, format!("not built (cargo build {how} -p sam-agent)"))),
        }
    }

    println!("\nsam-agent vs raw PTY ({mb} MiB of zeros through base64, median of {runs} runs; {echo_n} echoes)");
    for (k, v) in rows {
        println!("  {k:<38} {v}");
    }

    // Side by side, as the issue's table: lower is better except throughput.
    let Some(version) = ttyd_bin.as_deref().map(ttyd_version) else {
        println!("\n(set SAM_BENCH_TTYD to a ttyd binary to measure it side by side)");
        return;
    };
    println!("\nside by side, one run ({version}); the last column compares the agent with ttyd");
    println!("  {:<34} {:>10} {:>10} {:>10}  agent vs ttyd", "figure", "raw PTY", "sam-agent", "ttyd");
    let table = [
        ("throughput, MB/s", throughput, true),
        ("server CPU per MB, ms", cpu, false),
        ("echo p50, µs", echo_p50, false),
        ("echo p99, µs", echo_p99, false),
        ("first prompt (no spare shell), ms", prompt, false),
        ("RSS idle, MiB", rss_idle, false),
        ("  of it anonymous (heap, stacks)", anon_idle, false),
        ("RSS per session, MiB", rss_session, false),
        ("Ctrl-C in a flood → prompt, ms", ctrl_c_ms, false),
        ("output after Ctrl-C, KiB", ctrl_c_kb, false),
        ("the same, client at 10 MB/s: ms", ctrl_c_slow_ms, false),
        ("  output after Ctrl-C, KiB", ctrl_c_slow_kb, false),
    ];
    let cell = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
    for (name, f, higher_better) in table {
        let verdict = match (f.agent, f.ttyd) {
            (Some(a), Some(t)) if a == t => "ties",
            (Some(a), Some(t)) if (a > t) == higher_better => "ahead",
            (Some(_), Some(_)) => "behind",
            _ => "",
        };
        println!("  {name:<34} {:>10} {:>10} {:>10}  {verdict}", cell(f.raw), cell(f.agent), cell(f.ttyd));
    }
    if shipped_bin.is_some() && enabled("rss") {
        println!("  (the memory rows are the shipped binary's, target/agent/sam-agent; the others the bench's agent)");
    }
}

/// The run `scripts/agent-startup-order.sh` profiles: the shipped agent
/// (the profiler wrapped around it, through `SAM_BENCH_SHIPPED`) started
/// and signed in to as on a VM, 21 sessions opened and a command run in each,
/// a few seconds idle, then stopped with SIGTERM so the profiler writes what
/// it saw. Under a profiler everything is slow: each wait is generous and
/// gives up rather than hangs.
fn startup_profile(bin: &std::path::Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut agent = AgentProc::start_shipped(bin);
    rt.block_on(async {
        // 21 sessions at once, as the RSS part opens: the first takes the
        // spare shell, the others start theirs while sessions are open, and
        // the agent's tables grow.
        let patience = Duration::from_secs(60);
        let mut sessions = Vec::new();
        for i in 0..21 {
            let mut ws = agent.connect(&format!("session=profile{i}")).await;
            if tokio::time::timeout(patience, ws.read_until(PROMPT)).await.is_err() {
                eprintln!("no prompt within {patience:?}; profiling what ran");
            }
            ws.send(b"echo profiled-run\r").await;
            let _ = tokio::time::timeout(patience, ws.read_until(b"profiled-run\r\n")).await;
            sessions.push(ws);
        }
        for ws in sessions {
            ws.close().await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let pid = agent.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("profiled run of {} done", bin.display());
}

/// The section names and sizes of an ELF64 file (empty when it is not one).
fn elf_sections(path: &std::path::Path) -> Vec<(String, u64)> {
    let Ok(elf) = std::fs::read(path) else { return Vec::new() };
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return Vec::new();
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| elf.get(at..at + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    let u64_at = |at: usize| elf.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
    let (table, entry, count, names) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| table + i * entry;
    let strings = u64_at(header(names) + 0x18) as usize;
    (0..count)
        .map(|i| {
            let start = strings + u32_at(header(i));
            let name = elf.get(start..).and_then(|s| s.split(|b| *b == 0).next()).unwrap_or_default();
            (String::from_utf8_lossy(name).into_owned(), u64_at(header(i) + 0x20))
        })
        .collect()
}

fn ttyd_version(bin: &str) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "ttyd".to_owned(), |s| s.trim().to_owned())
}
