//! Where `sam login` keeps the URL and the token: `$SAM_CONFIG`, else
//! `$XDG_CONFIG_HOME/sam/login.json`, else `~/.config/sam/login.json`,
//! readable by the user only. `SAM_URL` and `SAM_TOKEN` override it.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// A control plane and a token for it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Login {
    pub url: String,
    pub token: String,
}

fn path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SAM_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("sam").join("login.json"))
}

/// Saves `login` (0600); returns where.
pub fn save(login: &Login) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(login)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The saved login, with `SAM_URL` / `SAM_TOKEN` taking precedence.
pub fn load() -> anyhow::Result<Login> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let saved: Option<Login> = match std::fs::read(path()?) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).context("the saved login is damaged; run sam login")?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("reading the saved login"),
    };
    let url = env("SAM_URL").or_else(|| saved.as_ref().map(|l| l.url.clone()));
    let token = env("SAM_TOKEN").or_else(|| saved.map(|l| l.token));
    match (url, token) {
        (Some(url), Some(token)) => Ok(Login { url: url.trim_end_matches('/').to_owned(), token }),
        _ => bail!("not logged in: run `sam login --url <dashboard URL>` with a token from Settings"),
    }
}
