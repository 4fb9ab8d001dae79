//! The emulated GitHub's repositories as real git repositories, served over
//! git's "dumb" HTTP protocol (static files after `git update-server-info`),
//! so the agent's `git clone` works exactly as against GitHub.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the repositories are mounted on the dev server.
pub const ROUTE_PREFIX: &str = "/dev-git";

async fn git(args: &[&str], dir: &Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "SAM dev")
        .env("GIT_AUTHOR_EMAIL", "dev@sam.localhost")
        .env("GIT_COMMITTER_NAME", "SAM dev")
        .env("GIT_COMMITTER_EMAIL", "dev@sam.localhost")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("running git {}", args.join(" ")))?;
    anyhow::ensure!(status.success(), "git {} failed", args.join(" "));
    Ok(())
}

/// Creates `<root>/<owner>/<name>.git` with one commit on `main`, if missing.
pub async fn ensure_repository(root: &Path, full_name: &str) -> anyhow::Result<()> {
    let bare = root.join(format!("{full_name}.git"));
    if bare.join("HEAD").exists() {
        return Ok(());
    }
    let work = root.join(".work").join(full_name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::fs::write(
        work.join("README.md"),
        format!("# {full_name}\n\nA repository served by `sam-server dev`. Edit away: this workspace is disposable.\n"),
    )?;
    std::fs::write(work.join("hello.sh"), "#!/bin/sh\necho \"hello from $(hostname)\"\n")?;
    git(&["init", "-q", "-b", "main"], &work).await?;
    git(&["add", "."], &work).await?;
    git(&["commit", "-q", "-m", "Initial commit"], &work).await?;
    if let Some(parent) = bare.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let (Some(work_s), Some(bare_s)) = (work.to_str(), bare.to_str()) else {
        anyhow::bail!("non-UTF-8 data directory");
    };
    git(&["clone", "-q", "--bare", work_s, bare_s], root).await?;
    git(&["update-server-info"], &bare).await?;
    let _ = std::fs::remove_dir_all(root.join(".work"));
    Ok(())
}

async fn serve_file(State(root): State<PathBuf>, UrlPath(path): UrlPath<String>) -> Response {
    // Only plain relative paths inside the root: no `..`, no absolute parts.
    let safe = !path.is_empty()
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(root.join(&path)).await {
        Ok(bytes) => ([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The route serving `root`.
pub fn router(root: PathBuf) -> Router {
    Router::new().route(&format!("{ROUTE_PREFIX}/{{*path}}"), get(serve_file)).with_state(root)
}
