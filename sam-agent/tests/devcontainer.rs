//! `devcontainer up` for real: the pinned devcontainer CLI
//! (`SAM_DEVCONTAINER_CLI`) on podman (`scripts/test.d/40-containers.sh`),
//! a sample repository whose `devcontainer.json` names a local image running
//! as a user who is not root. The agent's runner brings it up; a terminal
//! opened through the agent's session manager runs inside the container as
//! that user, in the workspace folder, sees the container's environment;
//! `remoteEnv` applied (as `devcontainer exec` computes it); `postCreateCommand`
//! ran once; closing the terminal ends the shell inside.
//! And git's credential helper works inside: `git push` as the container's
//! user goes through the agent's socket to the emulated GitHub.
//! Fails without a runtime unless `SAM_SKIP_CONTAINERS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sam_agent::activity::Activity;
use sam_agent::bootstrap::{ContainerInfo, DevcontainerCli, DevcontainerRunner};
use sam_agent::protocol::WindowSize;
use sam_agent::session::SessionManager;
use sam_agent::step_output::StepOutput;
use sam_agent::{SessionConfig, ShellCommand};

/// The CLI, the container CLI and the user image, or `None` when container
/// tests are skipped on purpose.
fn tools() -> Option<(String, String, String)> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (get("SAM_DEVCONTAINER_CLI"), get("SAM_TEST_DOCKER_CLI"), get("SAM_TEST_USER_IMAGE")) {
        (Some(cli), Some(docker), Some(image)) => Some((cli, docker, image)),
        _ if std::env::var("SAM_SKIP_CONTAINERS").as_deref() == Ok("1") => {
            eprintln!("SKIPPED (SAM_SKIP_CONTAINERS=1)");
            None
        }
        _ => panic!(
            "SAM_DEVCONTAINER_CLI, SAM_TEST_DOCKER_CLI and SAM_TEST_USER_IMAGE are not set: run ./scripts/test \
             (scripts/test.d/40-containers.sh), or set SAM_SKIP_CONTAINERS=1 to skip container tests"
        ),
    }
}

/// Removes the container at the end, whatever happened.
struct Removed {
    docker: String,
    id: String,
}

impl Drop for Removed {
    fn drop(&mut self) {
        remove_container(&self.docker, &self.id);
    }
}

/// Removes a container and the image the devcontainer CLI built for it
/// (`vsc-…`, the remote user's uid layered on the image): on a VM both go
/// with the disk; on a test machine they would pile up.
fn remove_container(docker: &str, id: &str) {
    let image = std::process::Command::new(docker).args(["inspect", "--format", "{{.Config.Image}}", id]).output();
    let _ = std::process::Command::new(docker).args(["rm", "-f", id]).output();
    if let Ok(image) = image {
        let image = String::from_utf8_lossy(&image.stdout).trim().to_owned();
        if image.rsplit('/').next().is_some_and(|name| name.starts_with("vsc-")) {
            let _ = std::process::Command::new(docker).args(["rmi", &image]).output();
        }
    }
}

const T: Duration = Duration::from_secs(30);

/// Output of `command` run in terminal `id` of `m`, until `marker`.
async fn run_in(m: &Arc<SessionManager>, id: &str, command: &str, marker: &str) -> String {
    let a = m.attach(id, WindowSize::default(), None, false).await.unwrap();
    let (g, w) = (a.attachment.generation, Arc::clone(&a.attachment.waker));
    let mut out = Vec::new();
    a.session.write(format!("{command}\r").as_bytes()).await;
    session_read_until(&a.session, g, &w, &mut out, marker.as_bytes(), T).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Terminals of the devcontainer `info` describes, as the agent's bootstrap
/// sets them up: `docker exec` as the remote user in the workspace folder,
/// with the probed environment in an env file (written in `dir`).
fn terminals(docker: &str, info: &ContainerInfo, dir: &std::path::Path) -> Arc<SessionManager> {
    let env_file = dir.join("terminal.env");
    sam_agent::bootstrap::write_env_file(&env_file, &info.env).unwrap();
    let shell = ShellCommand::docker_exec_via(
        docker,
        &info.container_id,
        &info.remote_user,
        &info.workspace_folder,
        "/bin/bash",
    )
    .with_env_file(&env_file);
    Arc::new(SessionManager::new(Some(shell), SessionConfig::default(), Arc::new(Activity::new())))
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devcontainer_up_runs_terminals_inside_as_the_remote_user() {
    let Some((cli, docker, image)) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("sample");
    std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
    std::fs::write(repo.join("README.md"), "sample\n").unwrap();
    // Created by root, as the agent clones.
    assert!(std::process::Command::new("git").args(["init", "-q"]).current_dir(&repo).status().unwrap().success());
    let config = serde_json::json!({
        "name": "sample",
        "image": image,
        "remoteUser": "vscode",
        "containerEnv": {"SAM_TEST_FROM_CONFIG": "container-env"},
        "remoteEnv": {"SAM_TEST_REMOTE": "remote env", "PATH": "${containerEnv:PATH}:/opt/sam-test/bin"},
        "runArgs": ["--network=host"],
        "postCreateCommand": "echo created >> /home/vscode/post-create.log",
        "postAttachCommand": "echo attached >> /home/vscode/attach.log",
    });
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), config.to_string()).unwrap();

    let runner = DevcontainerCli { program: cli, docker_path: Some(docker.clone()), ..DevcontainerCli::default() };
    let started = Instant::now();
    let info = runner.up(&repo, &StepOutput::default()).await.unwrap();
    eprintln!("devcontainer up: {} ms", started.elapsed().as_millis());
    let _removed = Removed { docker: docker.clone(), id: info.container_id.clone() };
    assert_eq!(info.remote_user, "vscode");
    assert_eq!(info.workspace_folder, "/workspaces/sample");

    let m = terminals(&docker, &info, dir.path());
    let out = run_in(&m, "tr", "echo \"[$SAM_TEST_REMOTE] [$PATH]\" R-$((40+2))", "R-42").await;
    assert!(out.contains("[remote env] [") && out.contains(":/opt/sam-test/bin]"), "remoteEnv applied: {out}");
    let out = run_in(
        &m,
        "t1",
        "echo \"who=$(id -un) at=$(pwd) env=$SAM_TEST_FROM_CONFIG\" posts=$(wc -l < ~/post-create.log); echo DONE-$((40+2))",
        "DONE-42",
    )
    .await;
    assert!(out.contains("who=vscode at=/workspaces/sample env=container-env posts=1"), "{out}");
    let out = run_in(&m, "ta", "echo attaches=$(wc -l < ~/attach.log) A-$((40+2))", "A-42").await;
    assert!(out.contains("attaches=3"), "postAttachCommand ran for each of the 3 terminals, not at up: {out}");
    let out = run_in(&m, "t0", "touch mine.txt && git status --short && echo W-$((40+2))", "W-42").await;
    assert!(out.contains("mine.txt"), "the user writes in the workspace folder: {out}");
    assert!(run_in(&m, "t2", "ls; echo LS-$((40+2))", "LS-42").await.contains("README.md"), "the clone is there");

    // A second `up` (the agent restarted) finds the container and does not
    // run postCreateCommand again.
    let again = runner.up(&repo, &StepOutput::default()).await.unwrap();
    assert_eq!(again.container_id, info.container_id, "the same container");
    let out = run_in(&m, "t3", "echo posts=$(wc -l < ~/post-create.log) P-$((40+2))", "P-42").await;
    assert!(out.contains("posts=1"), "{out}");

    // Closing a terminal ends its shell inside the container.
    let marker = run_in(&m, "t4", "sleep 4242 & echo JOB-$((40+2))", "JOB-42").await;
    assert!(marker.contains("JOB-42"));
    let sleeping = || {
        let out = std::process::Command::new(&docker)
            .args(["exec", &info.container_id, "/bin/sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("sleep 4242")
    };
    assert!(sleeping());
    m.close("t4");
    wait_for("the job gone", || !sleeping()).await;
}

/// The git credential helper inside a real devcontainer: the agent's binary
/// and its credential socket are mounted at the same paths, so `git push`
/// as the container's user reaches the (emulated) GitHub with a token the
/// agent fetched from the control plane, long after the clone token died.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_push_inside_the_devcontainer_goes_through_the_agent() {
    use sam_agent::bootstrap::{GitCloner, RepoCloner};
    use sam_agent::git_credential::{self, CredentialService};
    use sam_core::domain::{InstallationId, RepoFullName, WorkspaceId};
    use sam_core::ports::{RepoAccess, TokenScope};
    use sam_providers::emulators::{GithubEmulator, GithubEmulatorConfig};
    use sam_providers::github::{GithubApp, GithubConfig};

    let Some((cli, docker, image)) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let github = GithubEmulator::start(GithubEmulatorConfig {
        git_root: Some(dir.path().join("github")),
        installation_token_ttl: Duration::from_secs(2),
        ..GithubEmulatorConfig::default()
    })
    .await
    .unwrap();
    github.add_installation(9, "octo-org", &[("octo-org/sample", &["main"])]);
    let app = Arc::new(GithubApp::new(GithubConfig::emulated(github.base_url())).unwrap());
    let scope = |write| TokenScope { repository: RepoFullName::new("octo-org/sample").unwrap(), write };

    // The control plane's git-credential endpoint, as far as the agent sees it.
    let control = {
        let app = Arc::clone(&app);
        let mint = axum::routing::post(move || {
            let app = Arc::clone(&app);
            async move {
                let token = app.installation_token(InstallationId(9), &scope(true)).await.unwrap();
                let expires = token.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap();
                axum::Json(serde_json::json!({"repository": "octo-org/sample", "username": "x-access-token",
                    "password": token.token.expose(), "expiresAt": expires, "write": true}))
            }
        });
        let router = axum::Router::new().route("/api/workspaces/{id}/git-credential", mint);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    };

    // Clone with a read token, as bootstrap does; the image's user owns it.
    let repo = dir.path().join("work/sample");
    let clone_url = format!("{}/octo-org/sample.git", github.base_url());
    let read = app.installation_token(InstallationId(9), &scope(false)).await.unwrap();
    GitCloner.clone_repo(&clone_url, "main", &read.token, &repo, &StepOutput::default()).await.unwrap();
    std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
    let config = serde_json::json!({"image": image, "remoteUser": "vscode", "runArgs": ["--network=host"]});
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), config.to_string()).unwrap();
    let socket = git_credential::socket_path(&dir.path().join("state"));
    let service = CredentialService::new(
        &control,
        WorkspaceId::new(),
        "cb".into(),
        &clone_url,
        sam_agent::http::client().unwrap(),
    )
    .unwrap();
    tokio::spawn(Arc::new(service).serve(git_credential::bind(&socket).unwrap()));
    let agent = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sam-agent"));

    let runner = DevcontainerCli {
        program: cli,
        docker_path: Some(docker.clone()),
        same_path_mounts: vec![agent.clone(), socket.parent().unwrap().to_owned()],
        ..DevcontainerCli::default()
    };
    let info = runner.up(&repo, &StepOutput::default()).await.unwrap();
    let _removed = Removed { docker: docker.clone(), id: info.container_id.clone() };
    // As the agent does: after `up`, which gave the clone to the container's user.
    git_credential::configure_clone(&repo, &agent, &socket).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // the clone token is dead by now
    assert_eq!(info.remote_user, "vscode");
    let m = terminals(&docker, &info, dir.path());
    let push = "git -c user.name=V -c user.email=v@example.com commit -q --allow-empty -m 'from the container' \
        && git push -q origin HEAD:main && echo PUSHED-$((40+2))";
    let out = run_in(&m, "t1", push, "PUSHED-42").await;
    assert!(!out.contains("ghs_"), "no token in the terminal: {out}");
    let bare = dir.path().join("github/octo-org/sample.git");
    let head = std::process::Command::new("git")
        .args(["--git-dir", bare.to_str().unwrap(), "log", "-1", "--format=%s", "main"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), "from the container");
}

/// A repository without a `devcontainer.json` gets the configured default
/// image (here the local test image), not a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_a_devcontainer_json_gets_the_default_image() {
    let Some((cli, docker, image)) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("plain");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let runner = DevcontainerCli {
        program: cli,
        docker_path: Some(docker.clone()),
        default_image: image,
        ..DevcontainerCli::default()
    };
    let info = runner.up(&repo, &StepOutput::default()).await.unwrap();
    let _removed = Removed { docker: docker.clone(), id: info.container_id.clone() };
    assert_eq!(info.workspace_folder, "/workspaces/plain");
    let m = terminals(&docker, &info, dir.path());
    let out = run_in(&m, "t1", "ls; cat /etc/debian_version; echo D-$((40+2))", "D-42").await;
    assert!(out.contains("main.c"), "{out}");
    assert!(out.contains("12."), "the local bookworm image: {out}");
}

/// What users get wrong fails the step with the CLI's own explanation (the
/// agent reports it; the workspace goes to `error` with it, and its VM is
/// released): a malformed `devcontainer.json`, an image that does not
/// exist (nothing is pulled: no registry is reachable here, as on a VM
/// without network), a `postCreateCommand` that fails, a container that
/// exits at once, and a hostile `remoteUser` (data to the agent's own
/// commands, never code: nothing runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_devcontainer_fails_with_its_reason() {
    let Some((cli, docker, image)) = tools() else { return };
    let runner = DevcontainerCli { program: cli, docker_path: Some(docker.clone()), ..DevcontainerCli::default() };
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("malformed", "{ \"image\": ".to_owned()),
        ("no-image", serde_json::json!({"image": "localhost/sam-test-does-not-exist:never"}).to_string()),
        (
            "post-create-fails",
            serde_json::json!({"image": image, "runArgs": ["--network=host"], "postCreateCommand": "echo broken-step >&2; exit 3"})
                .to_string(),
        ),
        // The image's own command (bash without a terminal) ends at once.
        ("exits-at-once", serde_json::json!({"image": image, "overrideCommand": false}).to_string()),
        (
            "hostile-user",
            serde_json::json!({"image": image, "runArgs": ["--network=host"],
                "remoteUser": "root\"; touch /tmp/sam-pwned; echo \"$(touch /tmp/sam-pwned)"})
            .to_string(),
        ),
    ];
    let _ = std::fs::remove_file("/tmp/sam-pwned");
    for (name, config) in cases {
        let repo = dir.path().join(name);
        std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
        std::fs::write(repo.join(".devcontainer/devcontainer.json"), config).unwrap();
        let output = StepOutput::default();
        let err = runner.up(&repo, &output).await.expect_err(name).to_string();
        assert!(!std::path::Path::new("/tmp/sam-pwned").exists(), "{name}: nothing of the configuration ran here");
        assert!(err.starts_with("devcontainer"), "{name}: {err}");
        assert!(err.len() > 20, "{name}: says why: {err}");
        // What the failure report adds: the CLI's last lines, as printed.
        let printed = output.tail(sam_agent::step_output::KEPT_LINES);
        assert!(!printed.is_empty(), "{name}: output kept");
        if name == "post-create-fails" {
            assert!(err.contains("postCreateCommand") || err.contains("broken-step"), "{name}: {err}");
            assert!(printed.contains("broken-step"), "{name}: the command's own output: {printed}");
        }
        // On a VM whatever the CLI left goes with the server; here, remove it.
        let left = std::process::Command::new(&docker)
            .args(["ps", "-aq", "--filter", &format!("label=devcontainer.local_folder={}", repo.display())])
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&left.stdout).split_whitespace() {
            remove_container(&docker, id);
        }
    }
}
