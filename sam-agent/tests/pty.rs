//! Real PTY tests at the session level: a real bash on a real PTY.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use sam_agent::SessionConfig;
use sam_agent::output::Take;
use sam_agent::protocol::WindowSize;

const T: Duration = Duration::from_secs(10);

/// A new shell in session `s1` of `m`, with its output read up to the first
/// prompt.
async fn at_prompt(m: &sam_agent::session::SessionManager) -> (sam_agent::session::Attached, Vec<u8>) {
    let a = m.attach("s1", WindowSize::default(), None, false).await.unwrap();
    let mut out = Vec::new();
    session_read_until(&a.session, a.attachment.generation, &a.attachment.waker, &mut out, b"$ ", T).await;
    (a, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip() {
    let m = manager(SessionConfig::default());
    let a = m.attach("s1", WindowSize::default(), None, false).await.unwrap();
    let mut out = Vec::new();
    session_read_until(&a.session, a.attachment.generation, &a.attachment.waker, &mut out, b"$ ", T).await;
    assert!(a.session.write(b"echo h''i\r").await);
    session_read_until(&a.session, a.attachment.generation, &a.attachment.waker, &mut out, b"hi\r\n", T).await;
    m.close("s1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_reaches_stty() {
    let m = manager(SessionConfig::default());
    let a = m.attach("s1", WindowSize::new(30, 100).unwrap(), None, false).await.unwrap();
    let (g, w) = (a.attachment.generation, &a.attachment.waker);
    let mut out = Vec::new();
    session_read_until(&a.session, g, w, &mut out, b"$ ", T).await;
    a.session.write(b"stty size\r").await;
    session_read_until(&a.session, g, w, &mut out, b"30 100", T).await;
    a.session.resize(WindowSize::new(42, 137).unwrap());
    a.session.write(b"stty size\r").await;
    session_read_until(&a.session, g, w, &mut out, b"42 137", T).await;
    m.close("s1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_interrupts_a_flood_and_memory_stays_bounded() {
    let cfg = SessionConfig::default();
    let ring = cfg.ring_capacity;
    let m = manager(cfg);
    let (a, mut out) = at_prompt(&m).await;
    let (g, w) = (a.attachment.generation, &a.attachment.waker);
    a.session.write(b"yes flood-line\r").await;
    // A slow consumer: take a little, then stall, so back-pressure kicks in.
    session_read_until(&a.session, g, w, &mut out, b"flood-line\r\nflood-line", T).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.session.output().retained() <= ring, "ring must stay bounded");
    let (_, end_before) = a.session.output().span();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, end_after) = a.session.output().span();
    assert!(end_after - end_before <= 64 * 1024, "producer must be paused while the consumer stalls");

    a.session.write(b"\x03").await;
    a.session.write(b"echo after-$((40+2))\r").await;
    out.clear();
    session_read_until(&a.session, g, w, &mut out, b"after-42\r\n", Duration::from_secs(5)).await;
    // Ctrl-C stops the flood at once: what still arrives is what the paused
    // producer had buffered (the ring and the PTY), not more flood.
    assert!(out.len() <= ring + 64 * 1024, "{} bytes arrived after Ctrl-C", out.len());
    m.close("s1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emoji_stream_is_byte_identical() {
    let m = manager(SessionConfig::default());
    let (a, mut out) = at_prompt(&m).await;
    let (g, w) = (a.attachment.generation, &a.attachment.waker);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emoji.txt");
    let emoji = "\u{1F600}".repeat(100_000);
    std::fs::write(&path, &emoji).unwrap();
    // Raw mode so the PTY does not translate anything; markers around the data.
    let cmd = format!("stty raw -echo; printf '%s%s' BEG IN; cat {}; printf '%s%s' EN D; stty sane\r", path.display());
    a.session.write(cmd.as_bytes()).await;
    out.clear();
    session_read_until(&a.session, g, w, &mut out, b"END", Duration::from_secs(20)).await;
    let start = out.windows(5).position(|x| x == b"BEGIN").unwrap() + 5;
    let end = out.windows(3).rposition(|x| x == b"END").unwrap();
    let body = &out[start..end];
    assert_eq!(body.len(), 400_000);
    assert!(body == emoji.as_bytes(), "emoji stream altered");
    m.close("s1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_open_close_cycles_leave_no_children() {
    let m = manager(SessionConfig::default());
    let before = child_processes();
    for i in 0..1000 {
        let id = format!("c{i}");
        let a = m.attach(&id, WindowSize::default(), None, false).await.unwrap();
        if i % 100 == 0 {
            // Every so often give the shell work with its own process group,
            // and close only once both jobs really run.
            let running = sleeps().len();
            a.session.write(b"sleep 1017 & sleep 1017\r").await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while sleeps().len() < running + 2 {
                assert!(Instant::now() < deadline, "the shell never started its jobs");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        m.close(&id);
    }
    assert!(m.is_empty());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = child_processes();
        if now.len() <= before.len() {
            break;
        }
        assert!(Instant::now() < deadline, "children left behind: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And no grandchildren escaped (the sleeps were started inside sessions).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleeps().is_empty() {
        assert!(Instant::now() < deadline, "orphaned sleeps: {}", sleeps().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `sleep 1017` processes on this machine (a duration no other test uses).
fn sleeps() -> Vec<String> {
    sleeps_of("1017")
}

/// The running `sleep <seconds>` processes on this machine.
fn sleeps_of(seconds: &str) -> Vec<String> {
    let wanted = format!("sleep\u{0}{seconds}\u{0}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .filter(|c| *c == wanted)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_is_reported() {
    let m = manager(SessionConfig::default());
    let (a, _) = at_prompt(&m).await;
    let (g, w) = (a.attachment.generation, &a.attachment.waker);
    a.session.write(b"exit 7\r").await;
    let deadline = Instant::now() + T;
    loop {
        match a.session.output().take(g) {
            Take::Finished(code) => {
                assert_eq!(code, Some(7));
                break;
            }
            Take::Data(_) => {}
            Take::Empty => {
                let _ = tokio::time::timeout(Duration::from_millis(200), w.notified()).await;
            }
            Take::Detached => panic!("detached"),
        }
        assert!(Instant::now() < deadline);
    }
}

/// Shutdown waits until every shell and its jobs are gone, so the process can
/// exit without leaving them behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_all_and_wait_returns_once_the_shells_are_gone() {
    let m = manager(SessionConfig::default());
    let before = sleeps_of("1019").len();
    for i in 0..3 {
        let a = m.attach(&format!("s{i}"), WindowSize::default(), None, false).await.unwrap();
        a.session.write(b"sleep 1019 & sleep 1019\r").await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeps_of("1019").len() < before + 6 {
        assert!(Instant::now() < deadline, "the shells never started their jobs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    m.close_all_and_wait(Duration::from_secs(10)).await;
    assert!(m.is_empty());
    assert!(
        sleeps_of("1019").len() <= before,
        "jobs still running after close_all_and_wait: {}",
        sleeps_of("1019").len()
    );
}

/// A paste larger than the PTY takes, sent while the shell is not reading:
/// the writes return at once (the socket task must keep serving acks and
/// resizes), and the shell later receives every byte, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_shell_is_not_reading_yet_arrives_whole_and_in_order() {
    let m = manager(SessionConfig::default());
    let (a, mut out) = at_prompt(&m).await;
    let (g, w) = (a.attachment.generation, &a.attachment.waker);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paste.txt");
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| b'!' + (i % 94) as u8).collect();
    let cmd = format!(
        "stty raw -echo; echo ready-$((1+1)); sleep 3; head -c {} > {}; echo stored-$((40+2))\r",
        data.len(),
        path.display()
    );
    assert!(a.session.write(cmd.as_bytes()).await);
    session_read_until(&a.session, g, w, &mut out, b"ready-2", T).await;
    for chunk in data.chunks(8 * 1024) {
        assert!(a.session.write(chunk).await);
    }
    // Every write returned while the shell was still asleep: the redirection
    // that starts reading has not even created the file yet.
    assert!(!path.exists(), "the writes waited for the shell to read");
    session_read_until(&a.session, g, w, &mut out, b"stored-42", Duration::from_secs(20)).await;
    assert!(std::fs::read(&path).unwrap() == data, "the shell received the paste altered");
    m.close("s1");
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z")).unwrap_or(true)
}

async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The spare shell: the next tab gets a shell whose prompt is already
/// there; it is not counted as a session, each spare serves one tab, and
/// closing everything ends it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_shell_serves_the_next_tab_once() {
    let m = manager(SessionConfig::default());
    let size = WindowSize::new(30, 100).unwrap();
    m.prepare_spare(size).await;
    assert_eq!(m.len(), 0, "a spare is not an active session");
    // Let it print its prompt before any tab asks.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let spare = m.spare_pid().expect("a spare was started");
    let a = m.attach("tab-1", WindowSize::new(40, 120).unwrap(), None, false).await.unwrap();
    assert!(!a.resumed);
    assert_eq!(a.session.pid(), Some(spare), "the tab took the spare");
    assert_eq!(m.spare_pid(), None);
    assert_eq!(a.session.id(), "tab-1");
    let Take::Data(first) = a.session.output().take(a.attachment.generation) else {
        panic!("the spare's prompt should be waiting in its ring")
    };
    assert!(String::from_utf8_lossy(&first).contains("$ "), "{first:?}");
    let (g, w) = (a.attachment.generation, &a.attachment.waker);
    let mut out = Vec::new();
    a.session.write(b"stty size\r").await;
    session_read_until(&a.session, g, w, &mut out, b"40 120", T).await;
    assert_eq!(m.len(), 1);

    // Each spare serves one tab.
    let b = m.attach("tab-2", WindowSize::default(), None, false).await.unwrap();
    assert_ne!(a.session.pid(), b.session.pid());

    m.prepare_spare(size).await;
    let spare = m.spare_pid().expect("a new spare");
    assert!(spare != a.session.pid().unwrap() && Some(spare) != b.session.pid());
    let all = m.close_all();
    assert_eq!(all.len(), 3, "the two tabs and the spare");
    for session in all {
        assert!(wait_gone(session.pid().unwrap()).await, "a shell outlived close_all");
    }
    m.prepare_spare(size).await;
    assert_eq!(m.spare_pid(), None, "no spare after close_all (shutdown)");
}

/// A spare nobody takes is ended after `spare_for`, and with `spare_for`
/// zero there are no spares at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untaken_spare_ends_and_spares_can_be_turned_off() {
    let m = manager(SessionConfig { spare_for: Duration::from_millis(300), ..SessionConfig::default() });
    m.prepare_spare(WindowSize::default()).await;
    let stale = m.spare_pid().expect("a spare was started");
    assert!(wait_gone(stale).await, "an untaken spare outlived spare_for");
    assert_eq!(m.spare_pid(), None);
    let a = m.attach("late", WindowSize::default(), None, false).await.unwrap();
    assert_ne!(a.session.pid(), Some(stale));
    m.close_all();

    let off = manager(SessionConfig { spare_for: Duration::ZERO, ..SessionConfig::default() });
    off.prepare_spare(WindowSize::default()).await;
    assert_eq!(off.spare_pid(), None, "no spare when turned off");
}

/// A manager whose shells append their pid to `log` before they become
/// bash, so a test can count the shells started.
fn logging_manager(log: &std::path::Path, config: SessionConfig) -> std::sync::Arc<sam_agent::session::SessionManager> {
    let script = format!("echo $$ >> '{}'; exec /bin/bash --noprofile --norc", log.display());
    let mut shell = sam_agent::ShellCommand::new("/bin/sh", &["-c", &script]);
    shell.env = test_shell().env;
    std::sync::Arc::new(sam_agent::session::SessionManager::new(
        Some(shell),
        config,
        std::sync::Arc::new(sam_agent::activity::Activity::new()),
    ))
}

fn started(log: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Two tabs opening together ask for a spare each: one shell is started,
/// not two of which the second ends the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spares_asked_for_together_start_one_shell() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("started");
    let m = logging_manager(&log, SessionConfig::default());
    let size = WindowSize::default();
    tokio::join!(m.prepare_spare(size), m.prepare_spare(size));
    let spare = m.spare_pid().expect("a spare was started");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(started(&log), vec![spare], "one shell, the spare");
    m.close_all();
    assert!(wait_gone(spare).await);
}
