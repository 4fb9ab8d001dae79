//! Reaping orphans when the agent is PID 1 (e.g. the entry point of a
//! container). The kernel re-parents every orphan to PID 1, and an orphan
//! that exits stays a zombie until PID 1 waits for it.
//!
//! A plain `waitpid(-1)` loop would also take the exit status of children
//! that have their own waiter (a session's shell is waited for when its
//! pidfd says it exited, and its exit code is what the terminal reports; `docker exec` kill
//! commands and bootstrap's `git`/`devcontainer` are waited for by their
//! callers). So the reaper only waits for a *specific* pid, and only for a
//! zombie child that is not a [tracked](track) session shell and has stayed
//! a zombie for [`GRACE`]: a child with a waiter is reaped by that waiter
//! well within it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a zombie child must stay unreaped before the reaper takes it.
pub const GRACE: Duration = Duration::from_secs(1);

fn tracked() -> &'static Mutex<HashSet<u32>> {
    static TRACKED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    TRACKED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Marks `pid` as waited for elsewhere: the reaper never takes it.
pub fn track(pid: u32) {
    tracked().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(pid);
}

/// Undoes [`track`] once the owner has waited for `pid`.
pub fn untrack(pid: u32) {
    tracked().lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&pid);
}

/// Runs `cmd` to completion like [`tokio::process::Command::output`]
/// (stdin null, stdout and stderr captured), with its pid tracked while it
/// runs, so a PID 1 reaper never takes the exit status its caller waits for.
pub async fn output_tracked(cmd: &mut tokio::process::Command) -> std::io::Result<std::process::Output> {
    output_tracked_with_input(cmd, &[]).await
}

/// [`output_tracked`] with `input` written to the command's stdin (then
/// closed; empty: stdin is null), while its output is read.
pub async fn output_tracked_with_input(
    cmd: &mut tokio::process::Command,
    input: &[u8],
) -> std::io::Result<std::process::Output> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt as _;
    let stdin = if input.is_empty() { Stdio::null() } else { Stdio::piped() };
    let mut child = cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // The reaper leaves an untracked zombie alone for a second, so tracking
    // right after the spawn is in time.
    let pid = child.id();
    if let Some(pid) = pid {
        track(pid);
    }
    let writer = child.stdin.take();
    let write = async move {
        if let Some(mut writer) = writer {
            // A command that exits without reading all of it is answered
            // by its exit status, not by the broken pipe.
            let _ = writer.write_all(input).await;
        }
    };
    let ((), output) = tokio::join!(write, child.wait_with_output());
    if let Some(pid) = pid {
        untrack(pid);
    }
    output
}

fn is_tracked(pid: u32) -> bool {
    tracked().lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&pid)
}

/// Zombie children of `parent` (Linux `/proc`).
pub fn zombie_children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = fields.next()?;
        let ppid: u32 = fields.next()?.parse().ok()?;
        (state == "Z" && ppid == parent).then_some(pid)
    })
    .collect()
}

/// Reaps untracked zombie children that outstayed [`GRACE`].
#[derive(Debug, Default)]
pub struct Reaper {
    first_seen: HashMap<u32, Instant>,
    /// When set, only these pids are candidates (tests share their process
    /// with other tests' children, which must not be reaped from under them).
    scope: Option<Vec<u32>>,
}

impl Reaper {
    /// One pass over this process's zombie children; returns the pids
    /// reaped.
    pub fn sweep(&mut self) -> Vec<u32> {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&mut self, now: Instant) -> Vec<u32> {
        use rustix::process::{Pid, WaitOptions, waitpid};
        let zombies: Vec<u32> = zombie_children(std::process::id())
            .into_iter()
            .filter(|pid| !is_tracked(*pid))
            .filter(|pid| self.scope.as_ref().is_none_or(|scope| scope.contains(pid)))
            .collect();
        self.first_seen.retain(|pid, _| zombies.contains(pid));
        let mut reaped = Vec::new();
        for pid in zombies {
            let since = *self.first_seen.entry(pid).or_insert(now);
            if now.duration_since(since) < GRACE {
                continue;
            }
            let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else { continue };
            if let Ok(Some(_)) = waitpid(Some(target), WaitOptions::NOHANG) {
                reaped.push(pid);
            }
            self.first_seen.remove(&pid);
        }
        reaped
    }
}

/// True when this process is PID 1 of its namespace.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Reaps orphans for as long as the runtime runs, on `SIGCHLD` and once a
/// second (a zombie first seen on a signal is taken on a later pass). Does
/// nothing unless this process is PID 1.
pub async fn run() {
    if !is_pid1() {
        return;
    }
    use tokio::signal::unix::{SignalKind, signal};
    let mut children = match signal(SignalKind::child()) {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, "no SIGCHLD stream; reaping orphans once a second");
            None
        }
    };
    tracing::info!("running as PID 1: reaping orphaned processes");
    let mut reaper = Reaper::default();
    let mut tick = tokio::time::interval(GRACE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = async {
                match children.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        // The sweep reads /proc: keep it off the (single) runtime thread.
        let Ok((back, reaped)) = tokio::task::spawn_blocking(move || {
            let reaped = reaper.sweep();
            (reaper, reaped)
        })
        .await
        else {
            return;
        };
        reaper = back;
        if !reaped.is_empty() {
            tracing::debug!(count = reaped.len(), "reaped orphaned processes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_zombie_child(pid: u32) -> bool {
        zombie_children(std::process::id()).contains(&pid)
    }

    fn wait_until_zombie(pid: u32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_zombie_child(pid) {
            assert!(Instant::now() < deadline, "{pid} never became a zombie");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// An exited child nobody waits for (what an orphan re-parented to
    /// PID 1 looks like) is reaped once it outstayed the grace period; a
    /// tracked child is left to its waiter, which still gets its status.
    #[test]
    #[allow(clippy::unwrap_used, clippy::zombie_processes)]
    fn reaps_untracked_zombies_only_after_grace() {
        let orphan = std::process::Command::new("/bin/sh").args(["-c", "exit 3"]).spawn().unwrap();
        let mut owned = std::process::Command::new("/bin/sh").args(["-c", "exit 7"]).spawn().unwrap();
        track(owned.id());
        wait_until_zombie(orphan.id());
        wait_until_zombie(owned.id());

        let mut reaper = Reaper { scope: Some(vec![orphan.id(), owned.id()]), ..Reaper::default() };
        let t0 = Instant::now();
        assert!(reaper.sweep_at(t0).is_empty(), "not before the grace period");
        assert!(is_zombie_child(orphan.id()));
        let reaped = reaper.sweep_at(t0 + GRACE);
        assert!(reaped.contains(&orphan.id()), "{reaped:?}");
        assert!(!reaped.contains(&owned.id()));
        assert!(!is_zombie_child(orphan.id()), "reaped");
        assert!(is_zombie_child(owned.id()), "tracked child left alone");
        assert_eq!(owned.wait().unwrap().code(), Some(7), "its waiter still gets the status");
        untrack(owned.id());
    }
}
