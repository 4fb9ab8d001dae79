//! Reattach after a dropped connection: gapless, duplicate-free replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(10);

/// Reads for `dur`, appending binary data.
async fn read_for(ws: &mut Ws, out: &mut Vec<u8>, dur: Duration) {
    let deadline = Instant::now() + dur;
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), ws.next()).await
    {
        if let Message::Binary(b) = msg {
            out.extend_from_slice(&b);
        }
    }
}

fn counter_values(out: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .filter_map(|line| line.rsplit('\r').next().and_then(|l| l.strip_prefix('n')).and_then(|n| n.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_is_gapless_and_duplicate_free() {
    let t = start(|c| c.sessions.grace = Duration::from_secs(3)).await;
    let mut ws = t.connect("session=r1").await;
    let h = hello(&mut ws).await;
    assert_eq!(h["offset"], 0);
    let mut out = Vec::new();
    read_until(&mut ws, &mut out, b"$ ", T).await;
    send_text(&mut ws, "i=0; while :; do echo n$i; i=$((i+1)); sleep 0.01; done\r").await;
    read_for(&mut ws, &mut out, Duration::from_millis(500)).await;
    let offset = out.len();
    let pid = t.agent.sessions.get("r1").unwrap().pid().unwrap();
    drop(ws); // network drop: no close message
    // The shell keeps printing while nobody is attached (the replay must
    // carry all of it): wait for about 60 more lines, not for a time.
    let session = t.agent.sessions.get("r1").unwrap();
    let detached = Instant::now();
    while session.output().span().1 < offset as u64 + 400 {
        assert!(detached.elapsed() < Duration::from_secs(2), "the detached shell stopped printing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(session);

    let mut ws = t.connect(&format!("session=r1&offset={offset}")).await;
    let h = hello(&mut ws).await;
    assert_eq!(h["resumed"], true);
    assert_eq!(h["offset"], offset as u64);
    assert_eq!(h["lostBytes"], 0);
    read_for(&mut ws, &mut out, Duration::from_millis(500)).await;
    let values = counter_values(&out);
    assert!(values.len() > 100, "counter too short: {}", values.len());
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            *v,
            i as u64,
            "gap or duplicate at {i}: {:?}",
            &values[i.saturating_sub(3)..(i + 3).min(values.len())]
        );
    }

    // A different id gets a fresh shell.
    let mut other = t.connect("session=r2").await;
    assert_eq!(hello(&mut other).await["resumed"], false);
    assert_ne!(t.agent.sessions.get("r2").unwrap().pid(), Some(pid));
    drop(other);

    // After the grace period the dropped shell is gone: waited for, not
    // slept on (bounded well above the grace).
    drop(ws);
    let dropped = Instant::now();
    while t.agent.sessions.get("r1").is_some() {
        assert!(dropped.elapsed() < T, "the shell outlived its grace period by far");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped.elapsed() >= Duration::from_millis(2900), "ended before its grace period: {:?}", dropped.elapsed());
    let ended = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(ended.elapsed() < T, "old shell still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = t.connect("session=r1&offset=5").await;
    let h = hello(&mut again).await;
    assert_eq!(h["resumed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_replays_the_ring_and_close_after_delay_keeps_shell_for_reload() {
    let t = start(|_| {}).await;
    let mut ws = t.connect("session=p1").await;
    hello(&mut ws).await;
    let mut out = Vec::new();
    read_until(&mut ws, &mut out, b"$ ", T).await;
    send_text(&mut ws, "echo marker-$((6*7))\r").await;
    read_until(&mut ws, &mut out, b"marker-42", T).await;
    // pagehide: close with a short delay, then the reloaded page attaches
    // without an offset and gets the ring replayed.
    send_control(&mut ws, r#"{"type":"close","after":2}"#).await;
    assert_eq!(close_code(&mut ws, T).await, Some(1000));
    let mut ws = t.connect("session=p1").await;
    let h = hello(&mut ws).await;
    assert_eq!(h["resumed"], true);
    assert_eq!(h["offset"], 0);
    let mut replay = Vec::new();
    read_until(&mut ws, &mut replay, b"marker-42", T).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(t.agent.sessions.get("p1").is_some(), "reattached shell survives the close delay");
}
