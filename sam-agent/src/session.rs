//! PTY sessions: one shell per browser tab, kept alive across dropped
//! connections for a grace period.
//!
//! The PTY master is driven by the tokio reactor ([`crate::pty_io`]), so
//! neither direction of the echo path crosses a thread: the socket task
//! writes keystrokes straight into the PTY, and a small **reader task** per
//! session moves PTY output into the [`OutputBuffer`] and wakes the attached
//! socket task (same runtime, no system call). The shell's exit is awaited
//! on the runtime too (a pidfd becomes readable; kernels before 5.3 get a
//! waiter thread instead); then the shell is reaped and whatever is left of
//! its session killed, on the blocking pool, so no zombie or orphan outlives
//! a tab.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};

use crate::activity::Activity;
use crate::output::{Attachment, OutputBuffer};
use crate::protocol::WindowSize;
use crate::pty_io::{self, PtyWriter};

const THREAD_STACK: usize = 128 * 1024;

/// Errors of session management.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The configured maximum number of sessions is reached.
    #[error("too many sessions (limit {0})")]
    TooMany(usize),
    /// The PTY or the shell could not be started.
    #[error("could not start the shell: {0}")]
    Spawn(String),
    /// The shell is not available yet (bootstrap still running).
    #[error("the workspace shell is not ready yet")]
    NotReady,
}

/// The program a session runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellCommand {
    /// Program.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Set when the program is a `docker exec` client: how to end the shell
    /// inside the container as well.
    pub container: Option<ContainerShell>,
}

/// Environment variable that names one container shell. It is set for the
/// local `docker exec` client and passed into the container (`-e
/// SAM_SHELL_ID`), so the shell and everything it starts carry it.
pub const SHELL_ID_ENV: &str = "SAM_SHELL_ID";

/// Runs inside the container before the login shell: records its pid in a
/// file named after the shell id, runs the devcontainer's
/// `postAttachCommand` ([`POST_ATTACH_SCRIPT`], when there is one: every
/// terminal is an attach; its output is the terminal's first lines), then
/// becomes the shell. `docker exec -t` makes this process a session leader,
/// so the pid is the session id of everything the shell starts (job control
/// moves jobs to other process groups, not other sessions).
pub const CONTAINER_SHELL_WRAPPER: &str = r#"{ echo "$$" > "/tmp/sam-shell-$SAM_SHELL_ID.pid"; } 2>/dev/null; [ -r /tmp/sam-post-attach.sh ] && sh /tmp/sam-post-attach.sh; exec "$@""#;

/// Where the agent puts the devcontainer's `postAttachCommand` inside the
/// container (for [`CONTAINER_SHELL_WRAPPER`]).
pub const POST_ATTACH_SCRIPT: &str = "/tmp/sam-post-attach.sh";

/// Runs inside the container (as root) to end shell `$1`: kills the
/// recorded session (its process group and every member, jobs included)
/// and every process that still carries `SAM_SHELL_ID=$1` (what escaped
/// with `setsid`), then removes the pid file. Guards against a pid file
/// that names no session or pid 1, which would make `kill -- -1` hit
/// every process.
pub const CONTAINER_KILL_SCRIPT: &str = r#"id=$1
case $id in ''|*[!A-Za-z0-9_-]*) exit 2;; esac
f=/tmp/sam-shell-$id.pid
sid=$(cat "$f" 2>/dev/null)
case $sid in ''|0|1|*[!0-9]*) sid=;; esac
# The file is writable by the container user: only trust a pid that is still
# this shell (it carries the id), never an arbitrary process group.
if [ -n "$sid" ] && ! tr '\0' '\n' < "/proc/$sid/environ" 2>/dev/null | grep -qx "SAM_SHELL_ID=$id"; then sid=; fi
if [ -n "$sid" ]; then kill -KILL -- "-$sid" 2>/dev/null; fi
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  hit=
  if [ -n "$sid" ] && st=$(cat "$d/stat" 2>/dev/null); then
    set -- ${st##*) }
    [ "${4:-}" = "$sid" ] && hit=1
  fi
  if [ -z "$hit" ] && tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx "SAM_SHELL_ID=$id"; then hit=1; fi
  if [ -n "$hit" ]; then kill -KILL "$p" 2>/dev/null; fi
done
rm -f "$f"
exit 0
"#;

/// How long ending a container shell may take before the `docker exec`
/// running the kill script is given up on.
const CONTAINER_KILL_TIMEOUT: Duration = Duration::from_secs(15);

/// A shell that runs inside a container through `docker exec`. Killing the
/// local client does not end what it started there: the container's
/// processes are the daemon's, and the daemon keeps their terminal open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerShell {
    /// The Docker CLI (`docker`, or a path).
    pub docker: String,
    /// Container id or name.
    pub container: String,
    /// The user the shell runs as.
    pub user: String,
    /// The directory shells start in (the workspace folder).
    pub workdir: String,
}

impl ContainerShell {
    /// The command that ends shell `shell_id` inside the container:
    /// `docker exec -u <the shell's user> <container> /bin/sh -c <kill
    /// script> sam-kill <id>`. As the shell's own user, not root: without
    /// `CAP_SYS_PTRACE` (no container has it by default) root cannot read
    /// another user's `/proc/<pid>/environ`, so it would find nothing to
    /// kill; the user can read and kill their own processes.
    pub fn kill_command(&self, shell_id: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.docker);
        cmd.args([
            "exec",
            "-u",
            &self.user,
            &self.container,
            "/bin/sh",
            "-c",
            CONTAINER_KILL_SCRIPT,
            "sam-kill",
            shell_id,
        ]);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        cmd
    }

    /// Runs [`kill_command`](Self::kill_command) and waits for it (bounded).
    /// Blocking: call it from a blocking thread.
    pub fn kill_blocking(&self, shell_id: &str) -> Result<(), String> {
        let mut child =
            self.kill_command(shell_id).spawn().map_err(|e| format!("could not run {}: {e}", self.docker))?;
        let deadline = std::time::Instant::now() + CONTAINER_KILL_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        use std::io::Read as _;
                        let _ = pipe.by_ref().take(4096).read_to_string(&mut err);
                    }
                    return Err(format!("{status}: {}", err.trim()));
                }
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("timed out".into());
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// The container side of one session's shell, ended at most once.
#[derive(Debug)]
struct RemoteShell {
    target: ContainerShell,
    id: String,
    ended: AtomicBool,
}

impl RemoteShell {
    fn end(&self) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        match self.target.kill_blocking(&self.id) {
            Ok(()) => tracing::debug!(container = %self.target.container, shell = %self.id, "container shell ended"),
            Err(error) => {
                tracing::warn!(container = %self.target.container, shell = %self.id, %error, "could not end the container shell");
            }
        }
    }
}

impl ShellCommand {
    /// `program args...`.
    pub fn new(program: impl Into<String>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
            cwd: None,
            container: None,
        }
    }

    /// The user's login shell on the host (`$SHELL -l`, else `/bin/bash -l`),
    /// starting in the home directory.
    pub fn host_login() -> Self {
        let shell = std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/bash".into());
        let mut cmd = Self::new(shell, &["-l"]);
        cmd.cwd = std::env::var("HOME").ok();
        cmd
    }

    /// A login shell inside a devcontainer:
    /// `docker exec -it -u <user> -w <dir> <container> <shell> -l`, started
    /// through [`CONTAINER_SHELL_WRAPPER`] so it can be ended there.
    pub fn docker_exec(container: &str, user: &str, workdir: &str, shell: &str) -> Self {
        Self::docker_exec_via("docker", container, user, workdir, shell)
    }

    /// The same command with the variables of `env_file` (`KEY=VALUE`
    /// lines, what `docker exec --env-file` reads) in the shell's
    /// environment: a devcontainer's `remoteEnv` and probed user
    /// environment.
    pub fn with_env_file(mut self, env_file: &std::path::Path) -> Self {
        if self.args.first().is_some_and(|a| a == "exec") {
            self.args.insert(1, "--env-file".into());
            self.args.insert(2, env_file.display().to_string());
        }
        self
    }

    /// [`docker_exec`](Self::docker_exec) with another Docker CLI.
    pub fn docker_exec_via(docker: &str, container: &str, user: &str, workdir: &str, shell: &str) -> Self {
        let mut cmd = Self::new(
            docker,
            &[
                "exec",
                "-it",
                "-e",
                "TERM=xterm-256color",
                "-e",
                "COLORTERM=truecolor",
                "-e",
                SHELL_ID_ENV,
                "-u",
                user,
                "-w",
                workdir,
                container,
                "/bin/sh",
                "-c",
                CONTAINER_SHELL_WRAPPER,
                "sam-shell",
                shell,
                "-l",
            ],
        );
        cmd.container = Some(ContainerShell {
            docker: docker.to_owned(),
            container: container.to_owned(),
            user: user.to_owned(),
            workdir: workdir.to_owned(),
        });
        cmd
    }

    fn builder(&self, shell_id: Option<&str>) -> CommandBuilder {
        let mut cmd = CommandBuilder::new(&self.program);
        cmd.args(&self.args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("COLORTERM", "truecolor");
        if std::env::var_os("LANG").is_none() {
            cmd.env("LANG", "C.UTF-8");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.cwd(dir);
        }
        if let Some(id) = shell_id {
            cmd.env(SHELL_ID_ENV, id);
        }
        cmd
    }
}

/// Limits and sizes of sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Output kept per session for reattach, in bytes.
    pub ring_capacity: usize,
    /// Unacknowledged bytes allowed for clients that ack.
    pub ack_window: u64,
    /// Largest binary frame sent to the browser.
    pub max_output_frame: usize,
    /// How long a detached shell is kept.
    pub grace: Duration,
    /// Maximum concurrent sessions.
    pub max_sessions: usize,
    /// How long a spare shell, started after a tab opened so the next tab
    /// gets its prompt at once, waits for that tab; zero turns spares off.
    pub spare_for: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ring_capacity: 256 * 1024,
            ack_window: 1024 * 1024,
            max_output_frame: 256 * 1024,
            grace: Duration::from_secs(300),
            max_sessions: 32,
            spare_for: Duration::from_secs(30),
        }
    }
}

/// One shell on a PTY.
pub struct Session {
    /// Assigned when a tab takes a spare shell.
    id: Mutex<String>,
    /// What the user calls it (a tab's title), see [`crate::protocol::session_name`].
    name: Mutex<String>,
    output: Arc<OutputBuffer>,
    /// The PTY master for input; the lock keeps two connections' writes
    /// (during a takeover) from interleaving mid-chunk.
    input: Arc<tokio::sync::Mutex<PtyWriter>>,
    /// Input the PTY would not take at once, written by the session's input
    /// task, so a shell that does not read stdin never blocks the socket task
    /// (which must keep handling acks, resizes and closes).
    backlog: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Chunks in `backlog` or being written; direct writes only when zero,
    /// so input stays in order.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    master: Mutex<Box<dyn MasterPty + Send>>,
    pid: Option<u32>,
    remote: Option<Arc<RemoteShell>>,
    killed: AtomicBool,
    /// Set once the shell was waited for: its pid may then belong to another
    /// process, so it is never signalled again.
    reaped: Arc<AtomicBool>,
    /// The kill started by [`Session::kill`] (a process scan, and `docker
    /// exec` for a container shell), so shutdown can wait for it.
    ending: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Chunks of input that may wait for a shell that is not reading.
const INPUT_BACKLOG: usize = 64;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id()).field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl Session {
    /// Session id.
    pub fn id(&self) -> String {
        self.id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_id(&self, id: &str) {
        *self.id.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = id.to_owned();
    }

    /// The session's name.
    pub fn name(&self) -> String {
        self.name.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Renames the session; `name` must already be valid
    /// ([`crate::protocol::session_name`]).
    pub fn set_name(&self, name: String) {
        *self.name.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    }

    /// For a shell in a container: the container and the shell's id there
    /// (its pid is in `/tmp/sam-shell-<id>.pid` inside).
    pub fn container(&self) -> Option<(&ContainerShell, &str)> {
        self.remote.as_ref().map(|r| (&r.target, r.id.as_str()))
    }

    /// Process id of the shell.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The output ring.
    pub fn output(&self) -> &Arc<OutputBuffer> {
        &self.output
    }

    /// Writes input to the shell's PTY: straight away when the PTY takes it
    /// (the keystroke path: no task hop), otherwise through the session's
    /// input task. Waits only when `INPUT_BACKLOG` chunks are already
    /// waiting for a shell that does not read. Returns false when the session
    /// is gone.
    pub async fn write(&self, data: &[u8]) -> bool {
        let written = self.write_in_order(data).await;
        if written {
            self.output.input_written();
        }
        written
    }

    async fn write_in_order(&self, data: &[u8]) -> bool {
        let mut rest = data;
        if self.queued.load(Ordering::SeqCst) == 0 {
            let pty = self.input.lock().await;
            if self.queued.load(Ordering::SeqCst) == 0 {
                match pty.write_now(rest) {
                    Ok(left) => rest = left,
                    Err(_) => return false,
                }
                if rest.is_empty() {
                    return true;
                }
                // Counted before the lock is released, so no later direct
                // write overtakes this remainder.
                self.queued.fetch_add(1, Ordering::SeqCst);
                drop(pty);
                return self.backlog.send(rest.to_vec()).await.is_ok();
            }
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.backlog.send(rest.to_vec()).await.is_ok()
    }

    /// Resizes the PTY (the shell gets `SIGWINCH`).
    pub fn resize(&self, size: WindowSize) {
        let master = self.master.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(error) = master.resize(pty_size(size)) {
            tracing::debug!(session = %self.id(), %error, "resize failed");
        }
    }

    /// Kills the shell and every process of its session, at once.
    pub fn kill(&self) {
        if self.killed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.output.stop();
        let pid = self.pid;
        let remote = self.remote.clone();
        let reaped = Arc::clone(&self.reaped);
        let end = move || {
            if let Some(pid) = pid
                && !reaped.load(Ordering::SeqCst)
            {
                kill_session_processes(pid);
            }
            if let Some(remote) = remote {
                remote.end();
            }
        };
        // The process scan reads /proc and the container kill runs `docker
        // exec`: keep both off the async workers.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let task = handle.spawn_blocking(end);
                *self.ending.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
            }
            Err(_) => end(),
        }
    }

    /// Waits for the kill started by [`Session::kill`] to finish.
    async fn ended(&self) {
        let task = self.ending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// True once killed or exited.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Starts `shell` on a new PTY (on `starter`'s thread) and makes it a
    /// session. The session itself (its buffers, its tasks, their
    /// registrations) is built here, on the runtime's thread, so what lives
    /// as long as the session is allocated where the runtime allocates.
    async fn spawn(
        id: String,
        starter: &ShellStarter,
        shell: &ShellCommand,
        size: WindowSize,
        cfg: &SessionConfig,
        activity: Arc<Activity>,
    ) -> Result<Arc<Self>, SessionError> {
        let process = starter.start(shell.clone(), size).await?;
        Self::from_process(id, process, cfg, activity)
    }

    fn from_process(
        id: String,
        mut process: Process,
        cfg: &SessionConfig,
        activity: Arc<Activity>,
    ) -> Result<Arc<Self>, SessionError> {
        // The PTY is driven by this runtime's reactor.
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| SessionError::Spawn(e.to_string()))?;
        let taken = || SessionError::Spawn("the shell was already taken".into());
        // A failure here drops `process`, which ends the shell.
        let (reader, writer) = master_fd(process.master.as_deref().ok_or_else(taken)?)
            .and_then(|fd| pty_io::split(fd, &runtime).map_err(|e| SessionError::Spawn(e.to_string())))?;
        let (pid, remote) = (process.pid, process.remote.clone());
        let (Some(master), Some(mut child)) = (process.master.take(), process.child.take()) else {
            return Err(taken());
        };
        let output = Arc::new(OutputBuffer::new(cfg.ring_capacity, cfg.ack_window, cfg.max_output_frame));
        let input = Arc::new(tokio::sync::Mutex::new(writer));
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (backlog, backlog_rx) = tokio::sync::mpsc::channel(INPUT_BACKLOG);
        let reaped = Arc::new(AtomicBool::new(false));
        let session = Arc::new(Self {
            id: Mutex::new(id.clone()),
            name: Mutex::new(String::new()),
            output: Arc::clone(&output),
            input: Arc::clone(&input),
            backlog,
            queued: Arc::clone(&queued),
            master: Mutex::new(master),
            pid,
            remote: remote.clone(),
            killed: AtomicBool::new(false),
            reaped: Arc::clone(&reaped),
            ending: Mutex::new(None),
        });

        runtime.spawn(pty_io::read_loop(reader, Arc::clone(&output), activity));
        runtime.spawn(pty_io::input_loop(input, queued, backlog_rx));
        let out = Arc::clone(&output);
        // What follows the shell's exit (blocking: it reads /proc, kills,
        // may run `docker`).
        let finish = move |code: Option<u32>| {
            // Whatever the shell left behind in its session goes too, so
            // the PTY closes and the reader sees EOF. Right after the wait
            // the session id is still held by those members (Linux does not
            // reuse a pid that is some process's session id); later kills
            // skip the pid altogether.
            reaped.store(true, Ordering::SeqCst);
            if let Some(pid) = pid {
                crate::reaper::untrack(pid);
                kill_session_processes(pid);
            }
            out.set_exit(code);
            // Jobs the shell left running inside the container.
            if let Some(remote) = remote {
                remote.end();
            }
        };
        // The exit is awaited on the runtime through a pidfd (readable once
        // the process exits), not by a thread per session: a thread's stack
        // and allocator arena were most of what a session cost in memory.
        // Kernels without pidfds (before 5.3) get the thread.
        let notifier = pid.map(|pid| {
            let _runtime = runtime.enter();
            exit_notifier(pid)
        });
        // A waiter thread, where pidfds are missing or fail: detached, so it
        // never holds up the process's exit (the runtime waits for its
        // blocking pool when it shuts down, not for this thread).
        let waiter_thread = move |id: &str,
                                  child: Box<dyn portable_pty::Child + Send + Sync>,
                                  finish: Box<dyn FnOnce(Option<u32>) + Send>| {
            std::thread::Builder::new()
                .name(format!("pty-wait-{id}"))
                .stack_size(THREAD_STACK)
                .spawn(move || {
                    let mut child = child;
                    finish(child.wait().ok().map(|status| status.exit_code()));
                })
                .map(drop)
        };
        let finish: Box<dyn FnOnce(Option<u32>) + Send> = Box::new(finish);
        match notifier.transpose() {
            Ok(Some(exited)) => {
                let id = id.clone();
                runtime.spawn(async move {
                    if exited.readable().await.is_ok() {
                        // The shell exited: its wait returns at once.
                        let wait = move || finish(child.wait().ok().map(|status| status.exit_code()));
                        let _ = tokio::task::spawn_blocking(wait).await;
                        return;
                    }
                    // The runtime is going away (or the descriptor broke):
                    // wait on a thread instead.
                    if let Err(error) = waiter_thread(&id, child, finish) {
                        tracing::warn!(%error, "could not wait for a shell");
                    }
                });
            }
            _ => {
                if let Err(error) = waiter_thread(&id, child, finish) {
                    session.kill();
                    return Err(SessionError::Spawn(error.to_string()));
                }
            }
        }
        Ok(session)
    }
}

/// Starts shells one at a time on a thread of its own, created with the
/// first shell and ended with its manager.
///
/// Not on the runtime's thread: a start blocks until the exec (0.6–1 ms
/// here, more on a busy machine), and every terminal would stall meanwhile.
/// Not on the runtime's blocking pool either: with glibc every thread that
/// allocates gets a malloc arena of its own, the pool grows a thread
/// whenever a start overlaps other blocking work (five at once were seen
/// while tabs opened), and each such thread kept about 100 KiB of arena and
/// stack, while each session left 4–11 KiB in whichever arena started it
/// (under 1 KiB in this thread's one arena).
#[derive(Debug, Default)]
struct ShellStarter(std::sync::OnceLock<std::sync::mpsc::Sender<StartJob>>);

type StartJob = Box<dyn FnOnce() + Send>;

impl ShellStarter {
    async fn start(&self, shell: ShellCommand, size: WindowSize) -> Result<Process, SessionError> {
        let (done, started) = tokio::sync::oneshot::channel();
        let job: StartJob = Box::new(move || {
            // Nobody waits any more (the task was cancelled): the process
            // comes back and is dropped, which ends the shell.
            let _ = done.send(Process::start(&shell, size));
        });
        let gone = || SessionError::Spawn("the thread that starts shells is gone".into());
        self.thread()?.send(job).map_err(|_| gone())?;
        started.await.map_err(|_| gone())?
    }

    fn thread(&self) -> Result<&std::sync::mpsc::Sender<StartJob>, SessionError> {
        if let Some(jobs) = self.0.get() {
            return Ok(jobs);
        }
        let (jobs, queue) = std::sync::mpsc::channel::<StartJob>();
        std::thread::Builder::new()
            .name("shell-starter".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                for job in queue {
                    // A start that panicked fails alone (its caller sees the
                    // thread gone); the next ones still run.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| SessionError::Spawn(e.to_string()))?;
        // Two first starts at once: the loser's sender is dropped here and
        // its thread ends.
        Ok(self.0.get_or_init(|| jobs))
    }
}

/// A shell just started on its PTY, not yet a session: the blocking half
/// of opening one.
struct Process {
    master: Option<Box<dyn MasterPty + Send>>,
    /// Taken when the process becomes a session; still here when dropped
    /// means it never did (the task starting it was cancelled), and the
    /// drop ends it.
    child: Option<Box<dyn portable_pty::Child + Send + Sync>>,
    pid: Option<u32>,
    remote: Option<Arc<RemoteShell>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = self.pid;
        let remote = self.remote.take();
        let _ = std::thread::Builder::new().name("pty-abandoned".into()).stack_size(THREAD_STACK).spawn(move || {
            if let Some(pid) = pid {
                kill_session_processes(pid);
            }
            let _ = child.wait();
            if let Some(pid) = pid {
                crate::reaper::untrack(pid);
            }
            if let Some(remote) = remote {
                remote.end();
            }
        });
    }
}

impl Process {
    /// Opens a PTY and starts `shell` on it. Blocking: it forks, and waits
    /// for the exec.
    fn start(shell: &ShellCommand, size: WindowSize) -> Result<Self, SessionError> {
        let remote = shell.container.clone().map(|target| {
            Arc::new(RemoteShell {
                target,
                id: uuid::Uuid::new_v4().simple().to_string(),
                ended: AtomicBool::new(false),
            })
        });
        let pty = native_pty_system().openpty(pty_size(size)).map_err(|e| SessionError::Spawn(e.to_string()))?;
        let child = pty
            .slave
            .spawn_command(shell.builder(remote.as_ref().map(|r| r.id.as_str())))
            .map_err(|e| SessionError::Spawn(e.to_string()))?;
        // The parent must not keep the slave open, or EOF never comes.
        drop(pty.slave);
        let pid = child.process_id();
        // The session's waiter reports the exit code: a PID 1 reaper must
        // not take it.
        if let Some(pid) = pid {
            crate::reaper::track(pid);
        }
        Ok(Self { master: Some(pty.master), child: Some(child), pid, remote })
    }
}

/// A descriptor, registered with the runtime, that becomes readable when
/// process `pid` exits (a pidfd). Registered the way the PTY is (a "pipe"
/// receiver that only polls it: nothing is read from it).
fn exit_notifier(pid: u32) -> std::io::Result<tokio::net::unix::pipe::Receiver> {
    let raw = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    let pid = rustix::process::Pid::from_raw(raw).ok_or_else(|| std::io::Error::other("pid 0"))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK)?;
    tokio::net::unix::pipe::Receiver::from_file_unchecked(std::fs::File::from(fd))
}

fn pty_size(size: WindowSize) -> PtySize {
    PtySize { rows: size.rows, cols: size.cols, pixel_width: 0, pixel_height: 0 }
}

/// The raw descriptor of a PTY master, to duplicate it into an owned one.
struct MasterFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for MasterFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// A duplicate of the PTY master's descriptor (the same open file).
fn master_fd(master: &(dyn MasterPty + Send)) -> Result<std::fs::File, SessionError> {
    let spawn_err = |e: &dyn std::fmt::Display| SessionError::Spawn(e.to_string());
    let raw = master.as_raw_fd().ok_or_else(|| spawn_err(&"the PTY has no file descriptor"))?;
    filedescriptor::FileDescriptor::dup(&MasterFd(raw)).and_then(|fd| fd.as_file()).map_err(|e| spawn_err(&e))
}

/// Sends `SIGKILL` to the process group led by `pid` and to every process
/// whose session id is `pid` (jobs the shell put in other process groups),
/// then waits (at most two seconds) until none of them is still running.
///
/// `kill` only queues the signal: returning before the processes are gone
/// would let a shutdown report "no shells left" while their jobs still run.
/// Blocking; call it off the async workers.
pub fn kill_session_processes(pid: u32) {
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    let Ok(raw) = i32::try_from(pid) else { return };
    let Some(leader) = Pid::from_raw(raw) else { return };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let _ = kill_process_group(leader, Signal::KILL);
        let members = session_members(pid);
        if members.is_empty() || std::time::Instant::now() >= deadline {
            return;
        }
        for member in members {
            if let Some(p) = i32::try_from(member).ok().and_then(Pid::from_raw) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Running processes whose session id is `sid` (Linux `/proc`); zombies,
/// which are dead and only wait for their parent, are not counted.
pub fn session_members(sid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: u32 = name.to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name: state ppid pgrp session ...
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        let session: u32 = fields.nth(2)?.parse().ok()?;
        (session == sid && state != "Z" && state != "X").then_some(pid)
    })
    .collect()
}

#[derive(Debug)]
struct Entry {
    session: Arc<Session>,
    /// Bumped on every attach and detach so a stale grace timer does nothing.
    epoch: u64,
    /// Order of opening, for listings.
    opened: u64,
}

/// A live session, as [`SessionManager::list`] describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// Session id (the one a client reattaches with).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether a connection is attached to it now.
    pub attached: bool,
}

/// A shell started ahead of the next tab.
#[derive(Debug)]
struct Spare {
    session: Arc<Session>,
    shell: ShellCommand,
    born: std::time::Instant,
}

/// All sessions of this agent.
#[derive(Debug)]
pub struct SessionManager {
    sessions: Mutex<HashMap<String, Entry>>,
    /// Shells being started outside the lock, counted against the limit.
    starting: std::sync::atomic::AtomicUsize,
    spare: Mutex<Option<Spare>>,
    /// A spare shell is being started.
    spare_starting: AtomicBool,
    /// Set by [`close_all`](Self::close_all) (shutdown): no more spares.
    closed: AtomicBool,
    /// Sessions opened so far (numbers default names and orders listings).
    opened: std::sync::atomic::AtomicU64,
    shell: Mutex<Option<ShellCommand>>,
    config: SessionConfig,
    activity: Arc<Activity>,
    starter: ShellStarter,
}

/// Marks a spare shell as being started until dropped.
struct SpareStarting<'a>(&'a AtomicBool);

impl Drop for SpareStarting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Counts one shell start against the session limit until dropped.
struct Starting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The result of [`SessionManager::attach`].
#[derive(Debug)]
pub struct Attached {
    /// The session.
    pub session: Arc<Session>,
    /// The consumer's attachment.
    pub attachment: Attachment,
    /// True when an existing shell was reattached.
    pub resumed: bool,
}

impl SessionManager {
    /// A manager running `shell` (None until bootstrap provides it).
    pub fn new(shell: Option<ShellCommand>, config: SessionConfig, activity: Arc<Activity>) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            starting: std::sync::atomic::AtomicUsize::new(0),
            spare: Mutex::new(None),
            spare_starting: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            opened: std::sync::atomic::AtomicU64::new(0),
            shell: Mutex::new(shell),
            config,
            activity,
            starter: ShellStarter::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the shell new sessions run (after bootstrap).
    pub fn set_shell(&self, shell: ShellCommand) {
        *self.shell.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shell);
    }

    /// The shell new sessions run, once configured.
    pub fn shell(&self) -> Option<ShellCommand> {
        self.shell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// True once a shell is configured.
    pub fn has_shell(&self) -> bool {
        self.shell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True without sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks a session up.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).map(|e| Arc::clone(&e.session))
    }

    /// The live sessions, oldest first.
    pub fn list(&self) -> Vec<SessionSummary> {
        let sessions = self.lock();
        let mut live: Vec<(&u64, SessionSummary)> = sessions
            .iter()
            .filter(|(_, e)| !e.session.is_killed())
            .map(|(id, e)| {
                let summary =
                    SessionSummary { id: id.clone(), name: e.session.name(), attached: e.session.output.is_attached() };
                (&e.opened, summary)
            })
            .collect();
        live.sort_by_key(|(opened, _)| **opened);
        live.into_iter().map(|(_, s)| s).collect()
    }

    /// Reattaches session `id` if it is alive, else starts a new shell under
    /// that id (or hands it the spare shell). `from` is the offset the client
    /// has already received. A new shell is forked and exec'd on the
    /// thread that starts shells, one at a time.
    pub async fn attach(
        &self,
        id: &str,
        size: WindowSize,
        from: Option<u64>,
        acks: bool,
    ) -> Result<Attached, SessionError> {
        self.attach_named(id, None, size, from, acks).await
    }

    /// [`attach`](Self::attach); a new shell is named `name` (else
    /// `Terminal <n>`, `n` counting the sessions opened).
    pub async fn attach_named(
        &self,
        id: &str,
        name: Option<String>,
        size: WindowSize,
        from: Option<u64>,
        acks: bool,
    ) -> Result<Attached, SessionError> {
        let starting = {
            let mut sessions = self.lock();
            if let Some(attached) = Self::resume(&mut sessions, id, size, from, acks) {
                return Ok(attached);
            }
            if sessions.len() + self.starting.load(Ordering::SeqCst) >= self.config.max_sessions {
                return Err(SessionError::TooMany(self.config.max_sessions));
            }
            self.starting.fetch_add(1, Ordering::SeqCst);
            Starting(&self.starting)
        };
        let shell = self.shell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let shell = shell.ok_or(SessionError::NotReady)?;
        // Started without the lock held: `/health` and the other tabs must
        // not wait for a fork and exec.
        let (session, spare) = match self.take_spare(&shell) {
            Some(session) => {
                session.set_id(id);
                session.resize(size);
                (session, true)
            }
            None => (
                Session::spawn(id.to_owned(), &self.starter, &shell, size, &self.config, Arc::clone(&self.activity))
                    .await?,
                false,
            ),
        };
        let mut sessions = self.lock();
        drop(starting);
        // The same tab may have connected twice at once: the first wins.
        if let Some(attached) = Self::resume(&mut sessions, id, size, from, acks) {
            session.kill();
            return Ok(attached);
        }
        let attachment = session.output.attach(None, acks);
        let opened = self.opened.fetch_add(1, Ordering::SeqCst) + 1;
        session.set_name(name.unwrap_or_else(|| format!("Terminal {opened}")));
        sessions.insert(id.to_owned(), Entry { session: Arc::clone(&session), epoch: 0, opened });
        tracing::info!(session = %id, pid = ?session.pid, spare, "shell started");
        Ok(Attached { session, attachment, resumed: false })
    }

    fn resume(
        sessions: &mut HashMap<String, Entry>,
        id: &str,
        size: WindowSize,
        from: Option<u64>,
        acks: bool,
    ) -> Option<Attached> {
        let entry = sessions.get_mut(id)?;
        if entry.session.is_killed() {
            sessions.remove(id);
            return None;
        }
        entry.epoch += 1;
        entry.session.resize(size);
        let attachment = entry.session.output.attach(from, acks);
        Some(Attached { session: Arc::clone(&entry.session), attachment, resumed: true })
    }

    /// The spare shell, if it is fresh, alive and runs `shell`; a stale one
    /// is ended.
    fn take_spare(&self, shell: &ShellCommand) -> Option<Arc<Session>> {
        let spare = self.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        let fresh = spare.born.elapsed() <= self.config.spare_for
            && spare.shell == *shell
            && !spare.session.is_killed()
            && !spare.session.output.is_finished();
        if fresh {
            return Some(spare.session);
        }
        spare.session.kill();
        None
    }

    /// Process id of the spare shell waiting for the next tab, if any.
    pub fn spare_pid(&self) -> Option<u32> {
        self.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().and_then(|s| s.session.pid)
    }

    /// Starts a shell for the next tab unless one is ready, spares are off
    /// ([`SessionConfig::spare_for`] is zero) or the session limit would be
    /// reached. It is ended when no tab took it within `spare_for`, so a new
    /// tab never gets a shell that read its startup files long ago.
    /// Forks and execs on the thread that starts shells.
    pub async fn prepare_spare(self: &Arc<Self>, size: WindowSize) {
        if self.config.spare_for.is_zero() || self.closed.load(Ordering::SeqCst) {
            return;
        }
        let Some(shell) = self.shell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
            return;
        };
        {
            let spare = self.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if spare.as_ref().is_some_and(|s| s.born.elapsed() <= self.config.spare_for / 2) {
                return;
            }
        }
        if self.len() + self.starting.load(Ordering::SeqCst) + 1 >= self.config.max_sessions {
            return;
        }
        // One spare at a time: two tabs opened together would otherwise each
        // start one, and the second would end the first.
        if self.spare_starting.swap(true, Ordering::SeqCst) {
            return;
        }
        let _starting = SpareStarting(&self.spare_starting);
        let session =
            match Session::spawn("spare".into(), &self.starter, &shell, size, &self.config, Arc::clone(&self.activity))
                .await
            {
                Ok(session) => session,
                Err(error) => {
                    tracing::debug!(%error, "could not start a spare shell");
                    return;
                }
            };
        let born = std::time::Instant::now();
        let old = self.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replace(Spare {
            session,
            shell,
            born,
        });
        if let Some(old) = old {
            old.session.kill();
        }
        // A shutdown that began while this shell started must not leave it.
        if self.closed.load(Ordering::SeqCst) {
            if let Some(late) = self.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                late.session.kill();
            }
            return;
        }
        tracing::debug!("spare shell started");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let manager = Arc::clone(self);
        let after = self.config.spare_for;
        runtime.spawn(async move {
            tokio::time::sleep(after).await;
            let mut spare = manager.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if spare.as_ref().is_some_and(|s| s.born == born)
                && let Some(stale) = spare.take()
            {
                stale.session.kill();
            }
        });
    }

    /// The connection of `generation` went away without closing: keep the
    /// shell for the grace period, then kill it unless it was reattached.
    pub fn detach(self: &Arc<Self>, session: &Arc<Session>, generation: u64) {
        self.detach_for(session, generation, self.config.grace);
    }

    /// Like [`detach`](Self::detach) with an explicit grace period.
    pub fn detach_for(self: &Arc<Self>, session: &Arc<Session>, generation: u64, grace: Duration) {
        if !session.output.detach(generation) {
            return;
        }
        let epoch = {
            let mut sessions = self.lock();
            let Some(entry) = sessions.get_mut(&session.id()) else { return };
            entry.epoch += 1;
            entry.epoch
        };
        let manager = Arc::clone(self);
        let id = session.id();
        tracing::info!(session = %id, grace_secs = grace.as_secs(), "connection dropped; shell kept for reattach");
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let mut sessions = manager.lock();
            if let Some(entry) = sessions.get(&id)
                && entry.epoch == epoch
                && !entry.session.output.is_attached()
            {
                entry.session.kill();
                sessions.remove(&id);
                tracing::info!(session = %id, "grace period over; shell ended");
            }
        });
    }

    /// Ends session `id` at once (tab closed on purpose, protocol error, exit).
    pub fn close(&self, id: &str) {
        let removed = self.lock().remove(id);
        if let Some(entry) = removed {
            entry.session.kill();
            tracing::info!(session = %id, "shell ended");
        }
    }

    /// Ends every session and the spare without waiting, and starts no spare
    /// after it (shutdown; see [`close_all_and_wait`](Self::close_all_and_wait)).
    pub fn close_all(&self) -> Vec<Arc<Session>> {
        self.closed.store(true, Ordering::SeqCst);
        let mut all: Vec<Arc<Session>> = self.lock().drain().map(|(_, e)| e.session).collect();
        all.extend(self.spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().map(|s| s.session));
        for session in &all {
            session.kill();
        }
        all
    }

    /// Ends every session (shutdown) and waits, up to `limit`, until their
    /// processes are gone: the runtime drops blocking tasks that have not
    /// started when it shuts down, which would leave container shells running.
    pub async fn close_all_and_wait(&self, limit: Duration) {
        let all = self.close_all();
        let waits = futures_util::future::join_all(all.iter().map(|s| s.ended()));
        if tokio::time::timeout(limit, waits).await.is_err() {
            tracing::warn!(sessions = all.len(), "shells still ending at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell started for a tab that went away before it was handed over
    /// (the task waiting for it was dropped) is ended, not left running.
    #[test]
    fn a_started_shell_nobody_took_is_ended() {
        let shell = ShellCommand::new("/bin/sleep", &["30"]);
        let process = Process::start(&shell, WindowSize::default()).expect("sleep starts");
        let pid = process.pid.expect("a pid");
        let alive = || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z"));
        assert!(alive());
        drop(process);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive() {
            assert!(std::time::Instant::now() < deadline, "the shell nobody took is still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
