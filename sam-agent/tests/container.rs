//! Devcontainer shells: closing the tab ends the shell *inside the
//! container*, jobs included, not only the local `docker exec` client.
//!
//! Two harnesses:
//!
//! * a fake `docker` (a shell script, always runs) that records its argv and
//!   runs `docker exec` commands on this machine the way the daemon runs
//!   them: in a session of their own rather than under the client, so that,
//!   as with real Docker, killing the client does not reach them. It checks
//!   the command lines and that the kill script finds and ends the shell and
//!   its jobs by pid file and by `SAM_SHELL_ID`. It does not give the
//!   "container" process its own terminal (no job control inside), and
//!   "inside the container" is this machine's `/proc`.
//! * a real container runtime (`scripts/test` starts podman with its Docker
//!   API; `SAM_TEST_DOCKER_CLI` names the CLI) and the local images named by
//!   `SAM_TEST_DOCKER_IMAGE` (root) and `SAM_TEST_USER_IMAGE` (user
//!   `vscode`), nothing pulled: the same checks with real containers, as
//!   root and as a user who is not. Without them the tests fail unless
//!   `SAM_SKIP_CONTAINERS=1`. The images need `/bin/sh`, `bash`, `sleep`,
//!   `cat`, `tr` and `grep`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sam_agent::activity::Activity;
use sam_agent::protocol::WindowSize;
use sam_agent::session::{
    CONTAINER_KILL_SCRIPT, CONTAINER_SHELL_WRAPPER, ContainerShell, SessionManager, kill_session_processes,
};
use sam_agent::{SessionConfig, ShellCommand};

const T: Duration = Duration::from_secs(20);

const FAKE_DOCKER: &str = r#"#!/bin/sh
# Stand-in for the Docker CLI: records argv, runs `docker exec` locally in a
# new session (as the daemon would: not a descendant of this client).
log="$(dirname "$0")/docker.log"
{ printf 'argv:'; for a in "$@"; do printf ' [%s]' "$a"; done; printf '\n'; } >> "$log"
[ "$1" = exec ] || { echo "fake docker: only exec" >&2; exit 125; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    -i|-t|-it|-ti) shift ;;
    -e) case "$2" in *=*) export "$2" ;; esac; shift 2 ;;
    -u) shift 2 ;;
    -w) cd "$2" || exit 126; shift 2 ;;
    -*) echo "fake docker: unknown option $1" >&2; exit 125 ;;
    *) break ;;
  esac
done
shift
exec setsid -w "$@"
"#;

fn write_fake_docker(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("docker");
    std::fs::write(&path, FAKE_DOCKER).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

/// Local processes whose environment carries `SAM_SHELL_ID=<id>`, with their
/// command lines.
fn local_marked(id: &str) -> Vec<(u32, String)> {
    let marker = format!("SAM_SHELL_ID={id}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else { continue };
        if env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ").trim().to_owned();
            // Zombies have an empty command line: they are gone already.
            if !cmd.is_empty() {
                out.push((pid, cmd));
            }
        }
    }
    out
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a container session, reads its shell id, starts a background and a
/// foreground job.
async fn open_with_jobs(m: &Arc<SessionManager>, id: &str) -> (Arc<sam_agent::session::Session>, String) {
    let a = m.attach(id, WindowSize::default(), None, false).await.unwrap();
    let (g, w) = (a.attachment.generation, Arc::clone(&a.attachment.waker));
    let mut out = Vec::new();
    a.session.write(b"echo mark-$((6*7)) \"<$SAM_SHELL_ID>\"\r").await;
    session_read_until(&a.session, g, &w, &mut out, b"mark-42 <", T).await;
    session_read_until(&a.session, g, &w, &mut out, b">", T).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let start = text.rfind("mark-42 <").unwrap() + "mark-42 <".len();
    let shell_id = text[start..].split('>').next().unwrap().to_owned();
    assert_eq!(shell_id.len(), 32, "shell id {shell_id:?} in {text:?}");
    a.session.write(b"sleep 1001 & sleep 1002\r").await;
    (a.session, shell_id)
}

fn fake_manager(docker: &str, workdir: &str) -> Arc<SessionManager> {
    let shell = ShellCommand::docker_exec_via(docker, "ctr-test", "vscode", workdir, "/bin/bash");
    Arc::new(SessionManager::new(Some(shell), SessionConfig::default(), Arc::new(Activity::new())))
}

#[test]
fn docker_exec_command_line() {
    let shell = ShellCommand::docker_exec("abc123", "vscode", "/workspaces/hello", "/bin/zsh");
    assert_eq!(shell.program, "docker");
    let args: Vec<&str> = shell.args.iter().map(String::as_str).collect();
    assert_eq!(
        args,
        [
            "exec",
            "-it",
            "-e",
            "TERM=xterm-256color",
            "-e",
            "COLORTERM=truecolor",
            "-e",
            "SAM_SHELL_ID",
            "-u",
            "vscode",
            "-w",
            "/workspaces/hello",
            "abc123",
            "/bin/sh",
            "-c",
            CONTAINER_SHELL_WRAPPER,
            "sam-shell",
            "/bin/zsh",
            "-l"
        ]
    );
    let target = shell.container.clone().unwrap();
    assert_eq!(
        target,
        ContainerShell {
            docker: "docker".into(),
            container: "abc123".into(),
            user: "vscode".into(),
            workdir: "/workspaces/hello".into()
        }
    );
    let kill = target.kill_command("0123abcd");
    let kill_args: Vec<String> = kill.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(kill.get_program(), "docker");
    assert_eq!(
        kill_args,
        ["exec", "-u", "vscode", "abc123", "/bin/sh", "-c", CONTAINER_KILL_SCRIPT, "sam-kill", "0123abcd"],
        "the kill script runs as the shell's user, who can see its processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_container_shell_ends_it_and_its_jobs_in_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let docker = write_fake_docker(dir.path());
    let m = fake_manager(&docker, &dir.path().to_string_lossy());
    let (session, shell_id) = open_with_jobs(&m, "c1").await;
    wait_for("both jobs", || {
        let p = local_marked(&shell_id);
        p.iter().any(|(_, c)| c == "sleep 1001") && p.iter().any(|(_, c)| c == "sleep 1002")
    })
    .await;
    let pid_file = format!("/tmp/sam-shell-{shell_id}.pid");
    assert!(Path::new(&pid_file).exists(), "the wrapper records the shell's pid");
    let log = std::fs::read_to_string(dir.path().join("docker.log")).unwrap();
    assert!(log.lines().next().unwrap().contains("[-e] [SAM_SHELL_ID] [-u] [vscode]"), "{log}");

    let client = session.pid().unwrap();
    m.close("c1");
    wait_for("the container shell and its jobs to end", || local_marked(&shell_id).is_empty()).await;
    wait_for("the local docker client to end", || {
        !Path::new(&format!("/proc/{client}")).exists() || {
            // A zombie until its waiter reaps it.
            std::fs::read_to_string(format!("/proc/{client}/stat")).map(|s| s.contains(") Z")).unwrap_or(true)
        }
    })
    .await;
    wait_for("the kill script to remove the pid file", || !Path::new(&pid_file).exists()).await;
    let log = std::fs::read_to_string(dir.path().join("docker.log")).unwrap();
    // The kill script spans lines in the log.
    assert_eq!(
        log.matches("argv: [exec] [-u] [vscode] [ctr-test] [/bin/sh] [-c] [id=$1").count(),
        1,
        "one kill: {log}"
    );
    assert!(log.trim_end().ends_with(&format!("[sam-kill] [{shell_id}]")), "{log}");
}

/// The `docker exec` client alone on a PTY, as the agent used to run it:
/// returns the PTY (kept open, like a session's) and the client's pid.
struct RawClient {
    _master: Box<dyn portable_pty::MasterPty + Send>,
    writer: Box<dyn std::io::Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

fn raw_client(shell: &ShellCommand, shell_id: &str) -> RawClient {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let pty = native_pty_system().openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut cmd = CommandBuilder::new(&shell.program);
    cmd.args(&shell.args);
    cmd.env("SAM_SHELL_ID", shell_id);
    let child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let writer = pty.master.take_writer().unwrap();
    RawClient { _master: pty.master, writer, child }
}

/// The problem this fixes, shown on the same fake: killing only the local
/// client and its session (what closing a tab did before) leaves the shell
/// and its jobs running; the container kill ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_only_the_client_leaves_the_container_shell_running() {
    let dir = tempfile::tempdir().unwrap();
    let docker = write_fake_docker(dir.path());
    let shell =
        ShellCommand::docker_exec_via(&docker, "ctr-test", "vscode", &dir.path().to_string_lossy(), "/bin/bash");
    let shell_id = &uuid::Uuid::new_v4().simple().to_string();
    let mut client = raw_client(&shell, shell_id);
    client.writer.write_all(b"sleep 1001 & sleep 1002\r").unwrap();
    wait_for("both jobs", || local_marked(shell_id).iter().filter(|(_, c)| c.starts_with("sleep 100")).count() == 2)
        .await;
    kill_session_processes(client.child.process_id().unwrap());
    let _ = client.child.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = local_marked(shell_id);
    assert!(left.iter().any(|(_, c)| c == "sleep 1001"), "{left:?}");
    assert!(left.iter().any(|(_, c)| c == "sleep 1002"), "{left:?}");
    shell.container.clone().unwrap().kill_blocking(shell_id).unwrap();
    wait_for("the kill script to end them", || local_marked(shell_id).is_empty()).await;
}

// ------------------------------------------------------------ real Docker

struct Container {
    docker: String,
    id: String,
}

impl Container {
    /// A container of `image` with no network that sleeps until removed.
    fn sleeping(docker: &str, image: &str) -> Self {
        let run = std::process::Command::new(docker)
            .args(["run", "-d", "--network", "none", image, "sleep", "100000"])
            .output()
            .unwrap();
        assert!(run.status.success(), "docker run: {}", String::from_utf8_lossy(&run.stderr));
        Self { docker: docker.to_owned(), id: String::from_utf8_lossy(&run.stdout).trim().to_owned() }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.docker).args(["rm", "-f", &self.id]).output();
    }
}

/// The Docker CLI's daemon (podman's Docker API in `scripts/test`) and the
/// test image named by `variable`, which must be present locally (nothing
/// is pulled). Without them the test fails, unless `SAM_SKIP_CONTAINERS=1`
/// asked to skip container tests (`None`).
fn docker_ready(docker: &str, variable: &str) -> Option<String> {
    let ready = || -> Result<String, String> {
        let info = std::process::Command::new(docker).arg("info").output();
        match info {
            Err(e) => return Err(format!("no docker CLI ({e})")),
            Ok(o) if !o.status.success() => {
                return Err(format!("no Docker daemon: {}", String::from_utf8_lossy(&o.stderr).trim()));
            }
            Ok(_) => {}
        }
        let image = std::env::var(variable).map_err(|_| format!("{variable} is not set"))?;
        let inspect = std::process::Command::new(docker).args(["image", "inspect", &image]).output();
        match inspect {
            Ok(o) if o.status.success() => Ok(image),
            _ => Err(format!("image {image} is not present locally (nothing is pulled)")),
        }
    };
    match ready() {
        Ok(image) => Some(image),
        Err(reason) if std::env::var("SAM_SKIP_CONTAINERS").as_deref() == Ok("1") => {
            eprintln!("SKIPPED (SAM_SKIP_CONTAINERS=1): {reason}");
            None
        }
        Err(reason) => panic!(
            "{reason}: run ./scripts/test (scripts/test.d/40-containers.sh starts podman and builds the images), \
             or set SAM_SKIP_CONTAINERS=1 to skip container tests"
        ),
    }
}

/// Command lines of the processes in the container.
fn container_processes(docker: &str, container: &str) -> Vec<String> {
    let script = r#"for d in /proc/[0-9]*; do tr '\0' ' ' < "$d/cmdline" 2>/dev/null; echo; done"#;
    let out = std::process::Command::new(docker).args(["exec", container, "/bin/sh", "-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_docker_close_ends_the_shell_inside_the_container() {
    close_ends_the_shell_inside_a_real_container("SAM_TEST_DOCKER_IMAGE", "root").await;
}

/// The default case of devcontainer images (`devcontainers/base` runs as
/// `vscode`): the shell's processes belong to another user than root, whose
/// environment root cannot read without `CAP_SYS_PTRACE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_docker_close_ends_a_non_root_shell_inside_the_container() {
    close_ends_the_shell_inside_a_real_container("SAM_TEST_USER_IMAGE", "vscode").await;
}

/// The container CLI the real-container tests drive: `SAM_TEST_DOCKER_CLI`
/// (`scripts/test` sets it), else `docker`.
fn docker_cli() -> String {
    std::env::var("SAM_TEST_DOCKER_CLI").unwrap_or_else(|_| "docker".to_owned())
}

async fn close_ends_the_shell_inside_a_real_container(image_variable: &str, user: &str) {
    let docker = docker_cli();
    let Some(image) = docker_ready(&docker, image_variable) else { return };
    let container = Container::sleeping(&docker, &image);
    let shell = ShellCommand::docker_exec_via(&docker, &container.id, user, "/", "/bin/bash");
    let m = Arc::new(SessionManager::new(Some(shell), SessionConfig::default(), Arc::new(Activity::new())));
    let jobs = |procs: &[String]| procs.iter().filter(|c| *c == "sleep 1001" || *c == "sleep 1002").count();

    // Killing only the local client (what closing a tab did before) leaves
    // the shell and its jobs running in the container: the problem.
    let shell = ShellCommand::docker_exec_via(&docker, &container.id, user, "/", "/bin/bash");
    let shell_id = &uuid::Uuid::new_v4().simple().to_string();
    let mut client = raw_client(&shell, shell_id);
    client.writer.write_all(b"sleep 1001 & sleep 1002\r").unwrap();
    wait_for("both jobs", || jobs(&container_processes(&docker, &container.id)) == 2).await;
    kill_session_processes(client.child.process_id().unwrap());
    let _ = client.child.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jobs(&container_processes(&docker, &container.id)), 2, "client kill alone leaves the jobs");
    shell.container.clone().unwrap().kill_blocking(shell_id).unwrap();
    wait_for("jobs gone", || jobs(&container_processes(&docker, &container.id)) == 0).await;
    drop(client);

    // Closing the session ends the shell and its jobs in the container.
    let (_session, _) = open_with_jobs(&m, "d2").await;
    wait_for("both jobs", || jobs(&container_processes(&docker, &container.id)) == 2).await;
    m.close("d2");
    wait_for("the container shell and its jobs to end", || {
        let procs = container_processes(&docker, &container.id);
        jobs(&procs) == 0 && !procs.iter().any(|c| c.contains("bash"))
    })
    .await;
}

/// Files in and out of a real container go through the terminal's own
/// user: an upload into the shell's current directory belongs to `vscode`,
/// and a download reads it back, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_move_in_and_out_of_a_real_container_as_the_workspace_user() {
    use sam_agent::files::{Entry, FileTarget};
    use tokio::io::AsyncReadExt as _;
    let docker = docker_cli();
    let Some(image) = docker_ready(&docker, "SAM_TEST_USER_IMAGE") else { return };
    let container = Container::sleeping(&docker, &image);
    let shell = ShellCommand::docker_exec_via(&docker, &container.id, "vscode", "/tmp", "/bin/bash");
    let target = FileTarget::of(&shell);
    assert_eq!(target.workdir, "/tmp");
    let m = Arc::new(SessionManager::new(Some(shell), SessionConfig::default(), Arc::new(Activity::new())));
    let a = m.attach("files", WindowSize::default(), None, false).await.unwrap();
    let (g, w) = (a.attachment.generation, Arc::clone(&a.attachment.waker));
    let mut out = Vec::new();
    a.session.write(b"mkdir -p /tmp/proj && cd /tmp/proj && echo in-$((6*7))\r").await;
    session_read_until(&a.session, g, &w, &mut out, b"in-42", T).await;
    let dir = target.directory_of(Some(&a.session)).await;
    assert_eq!(dir, "/tmp/proj");

    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        data.chunks(64 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    target.write(&dir, "up.bin", data.len() as u64, false, futures_util::stream::iter(chunks)).await.unwrap();
    let owner = std::process::Command::new(&docker)
        .args(["exec", &container.id, "stat", "-c", "%U %s", "/tmp/proj/up.bin"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), format!("vscode {}", data.len()));

    assert_eq!(target.stat(&dir, "up.bin").await.unwrap(), Entry::File(data.len() as u64));
    let mut child = target.read(&dir, "up.bin").unwrap();
    let mut back = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut back).await.unwrap();
    assert!(child.wait().await.unwrap().success());
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the same bytes");
    // A directory the user may not write: refused, nothing written.
    let denied = target
        .write(
            "/",
            "x",
            1,
            false,
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))]),
        )
        .await;
    assert_eq!(denied, Err(sam_agent::files::FileError::Denied));
    m.close("files");
}

/// Previews of a real container: a server bound to the container's own
/// loopback (unreachable from the host) is listed with its process, and
/// reached through the container's network namespace; a listener on the
/// host is neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_the_containers_loopback_is_previewed() {
    use sam_core::ports::{Audience, TokenIssuer as _, TokenRequest};
    let docker = docker_cli();
    let Some(image) = docker_ready(&docker, "SAM_TEST_DOCKER_IMAGE") else { return };
    let container = Container::sleeping(&docker, &image);
    // A one-line HTTP server on the container's 127.0.0.1 (perl is in
    // Debian's base system).
    let server = r#"$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>8123,Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){ while(<$c>){ last if /^\r?$/ } print $c "HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\nhello from the container"; close $c }"#;
    let started = std::process::Command::new(&docker)
        .args(["exec", "-d", &container.id, "perl", "-MIO::Socket::INET", "-e", server])
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));

    sam_agent::ensure_tls_provider();
    let workspace = sam_core::domain::WorkspaceId::new();
    let owner = sam_core::domain::UserId::new();
    let authority = sam_core::testkit::fakes::FakeTokenAuthority::new("sam-test", "k1");
    let mut config = sam_agent::AgentConfig::new(workspace);
    config.cookie.secure = false;
    config.owner = Some(owner);
    let shell = ShellCommand::docker_exec_via(&docker, &container.id, "root", "/", "/bin/bash");
    let agent = sam_agent::Agent::new(config, Arc::new(authority.clone()), None);
    agent.set_ready(shell, Some(container.id.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(sam_agent::web::serve(listener, Arc::clone(&agent)));

    let scope = agent.port_scope().await.expect("the container's process");
    assert!(matches!(scope, sam_agent::ports::PortScope::Container { .. }), "{scope:?}");
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = agent.listening_ports(scope).await;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].port, listed[0].process.as_deref()), (8123, Some("perl")));
    let host_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host_listener.local_addr().unwrap().port();
    assert!(agent.listening_ports(scope).await.iter().all(|p| p.port != host_port), "the host's are not listed");

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let preview = |port: u16| format!("p{port}-{}.localhost", workspace.dns_label());
    let token = |_| {
        let request = TokenRequest {
            audience: Audience::WorkspacePreview,
            subject: owner,
            workspace,
            ttl: Duration::from_secs(60),
            session: None,
        };
        authority.issue(request, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned()
    };
    let sign_in = async |port: u16| {
        let res = client
            .get(format!("http://{addr}/__sam/preview/callback?token={}", token(port)))
            .header("host", preview(port))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    };
    let cookie = sign_in(8123).await;
    let res = client
        .get(format!("http://{addr}/"))
        .header("host", preview(8123))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from the container");
    let cookie = sign_in(host_port).await;
    let res = client
        .get(format!("http://{addr}/"))
        .header("host", preview(host_port))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502, "a host port is not the workspace's");
    served.abort();
    drop(host_listener);
}
