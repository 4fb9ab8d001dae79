//! `devcontainer up` for real: the pinned devcontainer CLI
//! (`SAM_DEVCONTAINER_CLI`) on podman (`scripts/test.d/40-containers.sh`),
//! a sample repository whose `devcontainer.json` names a local image running
//! as a user who is not root. The agent's runner brings it up; a terminal
//! opened through the agent's session manager runs inside the container as
//! that user, in the workspace folder, sees the container's environment;
//! `postCreateCommand` ran once; closing the terminal ends the shell inside.
//! Fails without a runtime unless `SAM_SKIP_CONTAINERS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sam_agent::activity::Activity;
use sam_agent::bootstrap::{DevcontainerCli, DevcontainerRunner};
use sam_agent::protocol::WindowSize;
use sam_agent::session::SessionManager;
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
        let _ = std::process::Command::new(&self.docker).args(["rm", "-f", &self.id]).output();
    }
}

const T: Duration = Duration::from_secs(30);

/// Output of `command` run in terminal `id` of `m`, until `marker`.
async fn run_in(m: &Arc<SessionManager>, id: &str, command: &str, marker: &str) -> String {
    let a = m.attach(id, WindowSize::default(), None, false).unwrap();
    let (g, w) = (a.attachment.generation, Arc::clone(&a.attachment.waker));
    let mut out = Vec::new();
    a.session.write(format!("{command}\r").as_bytes()).await;
    session_read_until(&a.session, g, &w, &mut out, marker.as_bytes(), T).await;
    String::from_utf8_lossy(&out).into_owned()
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
    let config = serde_json::json!({
        "name": "sample",
        "image": image,
        "remoteUser": "vscode",
        "containerEnv": {"SAM_TEST_FROM_CONFIG": "container-env"},
        "runArgs": ["--network=host"],
        "postCreateCommand": "echo created >> /home/vscode/post-create.log",
    });
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), config.to_string()).unwrap();

    let runner = DevcontainerCli { program: cli, docker_path: Some(docker.clone()), ..DevcontainerCli::default() };
    let started = Instant::now();
    let info = runner.up(&repo).await.unwrap();
    eprintln!("devcontainer up: {} ms", started.elapsed().as_millis());
    let _removed = Removed { docker: docker.clone(), id: info.container_id.clone() };
    assert_eq!(info.remote_user, "vscode");
    assert_eq!(info.workspace_folder, "/workspaces/sample");

    let shell = ShellCommand::docker_exec_via(
        &docker,
        &info.container_id,
        &info.remote_user,
        &info.workspace_folder,
        "/bin/bash",
    );
    let m = Arc::new(SessionManager::new(Some(shell), SessionConfig::default(), Arc::new(Activity::new())));
    let out = run_in(
        &m,
        "t1",
        "echo \"who=$(id -un) at=$(pwd) env=$SAM_TEST_FROM_CONFIG\" posts=$(wc -l < ~/post-create.log); echo DONE-$((40+2))",
        "DONE-42",
    )
    .await;
    assert!(out.contains("who=vscode at=/workspaces/sample env=container-env posts=1"), "{out}");
    assert!(run_in(&m, "t2", "ls; echo LS-$((40+2))", "LS-42").await.contains("README.md"), "the clone is there");

    // A second `up` (the agent restarted) finds the container and does not
    // run postCreateCommand again.
    let again = runner.up(&repo).await.unwrap();
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
