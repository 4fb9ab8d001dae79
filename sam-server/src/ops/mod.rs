//! Operator commands: `setup` (first-time wizard), `doctor`, `teardown`,
//! `backup` / `restore`, and the generated configuration reference. Each
//! prints its progress step by step; every failure says what to fix. Secrets
//! are read from and written to files (mode 0600), never printed.

pub mod backup;
pub mod doctor;
pub mod edge;
pub mod github;
pub mod reference;
pub mod setup;
pub mod teardown;

use std::io::{BufRead as _, Write as _};
use std::path::Path;

use anyhow::Context as _;

pub use sam_providers::store::admin::{DatabaseKind, redact_url, sqlite_path};

/// Writes a secret file (mode 0600, atomically), replacing an existing one.
pub fn write_secret_file(path: &Path, value: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut text = value.trim().to_owned();
    text.push('\n');
    sam_providers::keys::write_key_file(path, text.as_bytes(), 0o600, true)
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates a directory (and parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Reads a trimmed secret file.
pub fn read_secret_file(path: &Path) -> anyhow::Result<sam_core::secret::SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let text = text.trim();
    anyhow::ensure!(!text.is_empty(), "{} is empty", path.display());
    Ok(sam_core::secret::SecretString::new(text))
}

/// Asks a question on the terminal; an empty answer takes `default`.
pub fn prompt(question: &str, default: Option<&str>) -> anyhow::Result<String> {
    match default {
        Some(d) if !d.is_empty() => print!("  {question} [{d}]: "),
        _ => print!("  {question}: "),
    }
    std::io::stdout().flush().context("writing to the terminal")?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the answer")?;
    let answer = line.trim();
    Ok(if answer.is_empty() { default.unwrap_or_default().to_owned() } else { answer.to_owned() })
}

/// Asks a yes/no question; an empty answer takes `default`.
pub fn confirm(question: &str, default: bool) -> anyhow::Result<bool> {
    let answer = prompt(&format!("{question} (y/n)"), Some(if default { "y" } else { "n" }))?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Asks for a secret; the terminal echo is turned off while it is typed
/// (best effort, through `stty`).
pub fn prompt_secret(question: &str) -> anyhow::Result<sam_core::secret::SecretString> {
    print!("  {question} (input hidden): ");
    std::io::stdout().flush().context("writing to the terminal")?;
    let echo_off = std::process::Command::new("stty")
        .arg("-echo")
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty").arg("echo").stdin(std::process::Stdio::inherit()).status();
        println!();
    }
    read.context("reading the answer")?;
    Ok(sam_core::secret::SecretString::new(line.trim()))
}

/// A `SAM_*=value` configuration file: settings in order, with the lines
/// that are not settings (comments) kept.
#[derive(Debug, Default, Clone)]
pub struct ConfigFile {
    lines: Vec<String>,
}

impl ConfigFile {
    /// Reads `path`, or an empty file when it does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self { lines: text.lines().map(str::to_owned).collect() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lines.iter().rev().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
    }

    /// Sets `key` (replacing its line, or appending one).
    pub fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key}={value}");
        if let Some(existing) = self.lines.iter_mut().find(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        {
            *existing = line;
        } else {
            self.lines.push(line);
        }
    }

    /// Writes the file (mode 0600: it names where the secrets are).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let mut text = self.lines.join("\n");
        text.push('\n');
        sam_providers::keys::write_key_file(path, text.as_bytes(), 0o600, true)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The host of a URL (`https://sam.example.dev/x` → `sam.example.dev`).
pub fn url_host(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// An HTTP client for operator checks (short timeouts, no redirects).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    sam_providers::http::ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sam-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}
