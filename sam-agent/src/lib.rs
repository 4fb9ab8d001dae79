//! # sam-agent
//!
//! The agent that runs on every workspace VM. It redeems its single-use
//! bootstrap token at the control plane, clones the repository and starts the
//! devcontainer ([`bootstrap`]), then serves the browser terminal ([`web`]):
//! an embedded xterm.js page and a WebSocket whose binary frames carry raw PTY
//! bytes and whose text frames carry JSON control messages. Every tab gets its
//! own shell ([`session`]) inside the devcontainer, with reattach after a
//! dropped connection ([`output`]). It tracks activity ([`activity`]) and
//! heartbeats to the control plane ([`heartbeat`]), which answers `continue`,
//! `warn` or `shutdown`.
//!
//! ## The terminal protocol (`GET /ws/terminal`)
//!
//! The upgrade request needs the session cookie set by `/auth/callback`
//! (else **401**) and an `Origin` equal to the agent's public origin (else
//! **403**). Query parameters form the reattach handshake:
//!
//! | parameter | meaning |
//! |---|---|
//! | `session` | the tab's session id, `[A-Za-z0-9_-]{1,64}`; an unknown id starts a new shell under that id, a live one is reattached; absent: a fresh id |
//! | `name` | a new session's name (1–40 characters, no control characters; else **400**); ignored on reattach; absent: `Terminal <n>` |
//! | `offset` | reattach only: the stream offset the client has received up to (bytes since the shell started); output is replayed from there |
//! | `rows`, `cols` | initial size, `1..=500` |
//! | `ack` | `1`: the client acknowledges output (flow control, below) |
//!
//! **Binary frames** carry raw bytes both ways: keystrokes to the shell,
//! shell output to the browser. Output frames may end in the middle of a
//! UTF-8 sequence: decode as a stream (`term.write(Uint8Array)` does).
//!
//! **Text frames** carry one JSON object each.
//!
//! Client → agent:
//!
//! * `{"type":"resize","rows":R,"cols":C}`: `R`, `C` in `1..=500`; other values close the socket.
//! * `{"type":"ping","id":N}` → answered with `{"type":"pong","id":N}`.
//! * `{"type":"ack","offset":N}`: the client has processed output up to offset `N`.
//! * `{"type":"close"}`: the tab is closing on purpose; the shell ends at once.
//!   `{"type":"close","after":S}` (`S` ≤ 10) ends it after `S` seconds unless
//!   the same session reattaches first: the page sends this on `pagehide`,
//!   so a reload keeps its shell while a closed tab's shell ends promptly.
//! * `{"type":"rename","name":S}`: renames the session (`S` as for `name`
//!   above, without surrounding spaces; else the socket closes with `1007`).
//! * `{"type":"active"}`: the user is there (the idle warning's "I'm still
//!   here"): counts as activity without input to the shell.
//!
//! Agent → client:
//!
//! * `{"type":"hello","session":ID,"name":S,"offset":N,"resumed":B,"lostBytes":L,"ackWindow":W}`:
//!   always the first frame. `N` is the stream offset of the next binary byte;
//!   `L` counts requested bytes that had already left the ring buffer.
//! * `{"type":"pong","id":N}`.
//! * `{"type":"idle_warning","deadline":RFC3339,"secondsLeft":S}`: the workspace
//!   stops at `deadline` unless there is input or output.
//! * `{"type":"idle_cleared"}`: the idle warning is over (activity here or
//!   elsewhere, or "I'm still here" on the dashboard, learnt with the next
//!   heartbeat's answer).
//! * `{"type":"shutdown","reason":R}`: the workspace is stopping; a close follows.
//! * `{"type":"exit","code":C}`: the shell exited; a close follows.
//!
//! Close codes: `1000` shell exited or closed on request, `1001` workspace
//! stopping, `1007` malformed control message or size out of range, `1009`
//! frame or message larger than the limit (64 KiB by default), `1011` the
//! shell could not start, `1013` the workspace is not ready yet, `4001` the
//! session was attached from another connection, `4003` the sign-in the
//! terminal was opened under ended at the control plane (the heartbeat
//! learns it; the shell stays for a new sign-in to reattach), `4004` the
//! workspace runs as many sessions as it allows (32 by default,
//! `SAM_AGENT_MAX_SESSIONS`): close one first.
//!
//! **Sessions of a page.** `GET /api/sessions` (same cookie) lists the live
//! sessions, oldest first, with their names, whether a connection is
//! attached, and the limit: `{"limit":32,"sessions":[{"id":…,"name":…,"attached":true}]}`.
//! The page keeps its tabs' session ids for the browser tab (a reload
//! reattaches every one of them) and takes the names from this list.
//!
//! **Reattach.** A connection that drops without `close` leaves the shell
//! running for a grace period (5 minutes by default) while its output goes
//! to a ring buffer (256 KiB). Reconnecting with the same `session` and the
//! `offset` received so far replays exactly the missing bytes, then live
//! output: gapless and without duplicates.
//!
//! **Flow control.** While a client is attached the agent reads from the PTY
//! only while the bytes not yet sent fit the ring, and, with `ack=1`, while
//! fewer than the window are unacknowledged: at most `ackWindow`, less for a
//! client whose acks come back late because it reads slower than the shell
//! prints ([`flow`]: the window follows the acks' delay, so what is on its
//! way after a Ctrl-C stays a few milliseconds' worth). The shell is paused
//! by the PTY itself, so memory stays bounded and a browser is never flooded
//! faster than xterm.js parses; input (Ctrl-C) travels separately and is
//! never queued behind output.
//!
//! **Devcontainer shells.** With a devcontainer, each shell is
//! `docker exec -it -u <user> -w <dir> <container> /bin/sh -c <wrapper>
//! sam-shell <shell> -l`: the wrapper records the shell's pid (its session
//! id inside the container) in `/tmp/sam-shell-<id>.pid`, and
//! `SAM_SHELL_ID=<id>` is in the environment of everything it starts.
//! Killing the local `docker exec` client does not end processes in the
//! container, so closing a tab (or the shell exiting) also runs
//! `docker exec -u <the shell's user> <container> /bin/sh -c <kill script> sam-kill <id>`,
//! which kills that session (jobs included) and every process still marked
//! with the id ([`session::ContainerShell`]).
//!
//! **PID 1.** Run as a container's entry point, the agent reaps orphaned
//! processes ([`reaper`]); it waits only for specific untracked zombies, so
//! a shell's exit code still reaches its terminal.
//!
//! ## Performance notes
//!
//! Measured by `cargo bench -p sam-benches --bench agent` against a raw PTY
//! read loop in the same run (figures and method in that file's header).
//!
//! * **Echo path without thread hops or wasted wake-ups** ([`pty_io`]).
//!   The PTY master is non-blocking and its reader is registered with the
//!   tokio reactor: a keystroke frame is written to the PTY by the socket
//!   task itself (no channel, no writer thread), and the echo is read by
//!   the session's reader task on the same runtime, which wakes the socket
//!   task without a system call. The writer is *not* registered: the
//!   kernel signals write space each time the shell consumes input, which
//!   woke the agent a third time per keystroke. A read shorter than asked
//!   for counts as draining the PTY, so no failing read follows each echo.
//!   A keystroke costs the agent six system calls and two sleeps. Sockets
//!   have `TCP_NODELAY`; the connection's silence timer is re-armed only
//!   when it fires, not per frame.
//! * **Floods are read in paced drains.** Output faster than 16 KiB per
//!   millisecond is a flood: the reader then drains the PTY, pauses 200 µs
//!   (a `timerfd`: tokio's timers tick in milliseconds) and drains again,
//!   instead of waking for every few hundred bytes the shell writes. The
//!   PTY buffers about 12 KiB, so the shell does not stall; a pause that
//!   finds nothing ends the flood, and input (Ctrl-C) ends a pause after
//!   50 µs, so the prompt that follows does not wait for the rest of it.
//!   Reads land back to back in one reused
//!   64 KiB block and leave as one chunk per drain or per 32 KiB (`Bytes`
//!   split off the block, no copy, no zeroing); the socket task sends
//!   whatever accumulated as one frame. Reads stop while the ring or the
//!   ack window is full, which pauses the shell through the PTY.
//! * **A spare shell for the next tab.** 25 ms after a tab's new shell
//!   starts, the agent starts one more, at that tab's size, and hands it to
//!   the next new tab, whose prompt is then already in its ring: connect to
//!   prompt is the WebSocket handshake plus one frame. A spare waits at most
//!   `SAM_AGENT_SPARE_SHELL_SECS` (30 s; `0` turns spares off) and is then
//!   ended, so a new tab never runs a shell that read its startup files
//!   (`.bashrc`) long ago. It is not an active session and does not count
//!   towards the limit.
//! * The binary runs a current-thread runtime: everything on the data path
//!   is one thread; a shell's exit is awaited on it too (a pidfd), and only
//!   starting and cleaning up after a shell run on the blocking pool.

pub mod activity;
pub mod agent;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod files;
pub mod flow;
pub mod git_credential;
pub mod heartbeat;
pub mod http;
pub mod output;
pub mod ports;
pub mod preview;
/// The terminal protocol's messages ([`sam_core::terminal`], shared with
/// other clients).
pub use sam_core::terminal as protocol;
pub mod pty_io;
pub mod reaper;
pub mod session;
pub mod state;
pub mod step_output;
pub mod tls;
pub mod web;

/// Installs the process-wide rustls crypto provider (ring) if none is set;
/// HTTP clients need one.
pub fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub use agent::{Agent, AgentConfig, Notice};
pub use session::{SessionConfig, ShellCommand};
