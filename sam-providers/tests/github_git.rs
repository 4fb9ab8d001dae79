//! The GitHub emulator's git endpoint through the real git client: clone,
//! fetch and push over smart HTTP, each checked against the token's scope.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use sam_core::domain::{InstallationId, RepoFullName};
use sam_core::ports::{IdentityProvider, RepoAccess, TokenScope};
use sam_core::secret::PkcePair;
use sam_providers::emulators::{EmulatedUser, GithubEmulator, GithubEmulatorConfig};
use sam_providers::github::{GithubApp, GithubConfig};
use sam_providers::http::HttpConfig;

const REDIRECT: &str = "http://127.0.0.1:9/api/auth/callback/github";

/// Runs git with `token` as the Basic credential (as a credential helper
/// would hand it over); returns (success, stderr).
fn git(dir: &Path, token: &str, args: &[&str]) -> (bool, String) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let output = Command::new("git")
        .args(["-c", &format!("http.extraHeader=Authorization: Basic {basic}")])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

async fn world() -> (GithubEmulator, GithubApp, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let reader = EmulatedUser { id: 2001, login: "mona-member".into(), name: None, email: None };
    let emu = GithubEmulator::start(GithubEmulatorConfig {
        git_root: Some(root.path().join("git")),
        other_users: vec![reader],
        ..GithubEmulatorConfig::default()
    })
    .await
    .unwrap();
    emu.add_installation(7, "octo-org", &[("octo-org/x", &["main"]), ("octo-org/y", &["main", "dev"])]);
    let mut config = GithubConfig::emulated(emu.base_url());
    config.http = HttpConfig::fast();
    (emu.clone(), GithubApp::new(config).unwrap(), root)
}

fn scope(repository: &str, write: bool) -> TokenScope {
    TokenScope { repository: RepoFullName::new(repository).unwrap(), write }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_token_clones_its_repository_and_nothing_else() {
    let (emu, github, dir) = world().await;
    let y = github.installation_token(InstallationId(7), &scope("octo-org/y", false)).await.unwrap();
    let url = |repo: &str| format!("{}/octo-org/{repo}.git", emu.base_url());
    let base = dir.path();

    let probe = reqwest::Client::new()
        .get(format!("{}/info/refs?service=git-upload-pack", url("y")))
        .basic_auth("x-access-token", Some(y.token.expose()))
        .send()
        .await
        .unwrap();
    let status = probe.status();
    assert_eq!(status, 200, "{}", probe.text().await.unwrap());
    let (ok, err) = git(base, y.token.expose(), &["clone", "-q", "--branch", "dev", &url("y"), "y"]);
    assert!(ok, "{err}");
    assert!(base.join("y/README.md").exists());
    let (ok, err) = git(base, y.token.expose(), &["clone", "-q", &url("x"), "x"]);
    assert!(!ok, "the token of y cannot clone x");
    assert!(err.contains("not found"), "{err}");
    let (ok, err) = git(base, "ghs_forged", &["clone", "-q", &url("y"), "forged"]);
    assert!(!ok);
    // A 401: git asks for a credential, which no helper or terminal gives.
    assert!(err.contains("could not read Username") || err.contains("Authentication failed"), "{err}");
    let anonymous = Command::new("git")
        .args(["clone", "-q", &url("y"), "anonymous"])
        .current_dir(base)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!anonymous.status.success(), "private repositories need a credential");

    // Read-only: fetch works, push is refused.
    let repo = base.join("y");
    std::fs::write(repo.join("change.txt"), "work\n").unwrap();
    assert!(git(&repo, y.token.expose(), &["add", "change.txt"]).0);
    assert!(git(&repo, y.token.expose(), &["commit", "-q", "-m", "work"]).0);
    assert!(git(&repo, y.token.expose(), &["fetch", "-q", "origin"]).0);
    let (ok, err) = git(&repo, y.token.expose(), &["push", "-q", "origin", "HEAD:dev"]);
    assert!(!ok);
    assert!(err.contains("403"), "{err}");

    // A write token pushes; the branch the push makes is listed by the API.
    let w = github.installation_token(InstallationId(7), &scope("octo-org/y", true)).await.unwrap();
    let (ok, err) = git(&repo, w.token.expose(), &["push", "-q", "origin", "HEAD:dev", "HEAD:feature"]);
    assert!(ok, "{err}");
    let again = base.join("again");
    let (ok, err) = git(base, w.token.expose(), &["clone", "-q", "--branch", "feature", &url("y"), "again"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(again.join("change.txt")).unwrap(), "work\n");
    let branches = &emu.installations()[0].repositories["octo-org/y"];
    assert_eq!(branches, &["main", "dev", "feature"]);
    let (ok, _) = git(base, w.token.expose(), &["ls-remote", &url("x")]);
    assert!(!ok, "a write token of y still cannot reach x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_token_pushes_only_with_push_permission() {
    let (emu, github, dir) = world().await;
    emu.share_installation(7, 2001);
    emu.set_role(7, 2001, "read");
    let reader = EmulatedUser { id: 2001, login: "mona-member".into(), name: None, email: None };
    let pkce = PkcePair::generate().unwrap();
    let code = emu.approve_as(reader, REDIRECT, Some(&pkce.challenge));
    let token = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap().tokens.access_token;
    let url = format!("{}/octo-org/x", emu.base_url());
    let base = dir.path();
    let (ok, err) = git(base, token.expose(), &["clone", "-q", &url, "x"]);
    assert!(ok, "{err}");
    let repo = base.join("x");
    assert!(git(&repo, token.expose(), &["commit", "-q", "--allow-empty", "-m", "try"]).0);
    let (ok, err) = git(&repo, token.expose(), &["push", "-q", "origin", "HEAD:main"]);
    assert!(!ok);
    assert!(err.contains("403"), "{err}");

    emu.set_role(7, 2001, "write");
    let (ok, err) = git(&repo, token.expose(), &["push", "-q", "origin", "HEAD:main"]);
    assert!(ok, "{err}");
}
