//! cloud-init user data for a workspace server.
//!
//! The VM's metadata service lets any process on the VM read its user data, so
//! the rendered file carries no long-lived secret: only the control-plane URL
//! and a single-use, short-lived bootstrap token. The repository, branch and
//! clone token reach the agent when it redeems the token, so a hostile
//! repository or branch name never appears in this file at all; the values that
//! do appear are checked against strict character sets and single-quoted.

use std::fmt::Write as _;

/// The largest user data Hetzner accepts.
pub const MAX_USER_DATA: usize = 32 * 1024;

/// Version of the devcontainer CLI installed on every VM.
pub const DEVCONTAINER_CLI_VERSION: &str = "0.80.1";

/// What goes into the user data.
#[derive(Clone, Debug)]
pub struct CloudInitParams<'a> {
    /// Control-plane base URL, `https://…` (or `http://` for loopback dev).
    pub control_plane_url: &'a str,
    /// The single-use bootstrap token (base64url).
    pub bootstrap_token: &'a str,
    /// Agent architecture: `amd64` or `arm64`.
    pub agent_arch: &'a str,
    /// Expected SHA-256 (hex) of the agent binary; the download is refused on
    /// mismatch.
    pub agent_sha256: Option<&'a str>,
    /// The agent serves HTTPS on 443 behind the TLS edge (a key of its own,
    /// a certificate signed at bootstrap, the edge's client certificate
    /// required) instead of plain HTTP on 8080.
    pub agent_tls: bool,
}

/// Why user data could not be rendered.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CloudInitError {
    /// A value has characters that are not allowed.
    #[error("invalid {0} for cloud-init")]
    InvalidValue(&'static str),
    /// The result exceeds [`MAX_USER_DATA`].
    #[error("cloud-init user data is {0} bytes, over the 32 KiB limit")]
    TooLarge(usize),
}

fn check(field: &'static str, value: &str, allowed: impl Fn(u8) -> bool, max: usize) -> Result<(), CloudInitError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(allowed) {
        return Err(CloudInitError::InvalidValue(field));
    }
    Ok(())
}

fn url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'-' | b'_' | b'~' | b'[' | b']')
}

/// Renders the user data.
///
/// ```
/// use sam_core::cloud_init::{render, CloudInitParams};
/// let data = render(&CloudInitParams {
///     control_plane_url: "https://sam.example.dev",
///     bootstrap_token: "abcDEF123_-",
///     agent_arch: "amd64",
///     agent_sha256: None,
///     agent_tls: true,
/// }).unwrap();
/// assert!(data.starts_with("#cloud-config\n"));
/// ```
pub fn render(p: &CloudInitParams<'_>) -> Result<String, CloudInitError> {
    let url = p.control_plane_url.trim_end_matches('/');
    check("control-plane URL", url, url_char, 512)?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(CloudInitError::InvalidValue("control-plane URL"));
    }
    check("bootstrap token", p.bootstrap_token, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_', 128)?;
    if !matches!(p.agent_arch, "amd64" | "arm64") {
        return Err(CloudInitError::InvalidValue("agent architecture"));
    }
    if let Some(sha) = p.agent_sha256 {
        check("agent checksum", sha, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b), 64)?;
        if sha.len() != 64 {
            return Err(CloudInitError::InvalidValue("agent checksum"));
        }
    }

    let download = format!("{url}/api/agent/download?arch={}", p.agent_arch);
    // With a known checksum it is compared to the download; otherwise to the
    // checksum the control plane sends alongside the binary.
    let verify = match p.agent_sha256 {
        Some(sha) => format!("echo '{sha}  /usr/local/bin/sam-agent.download' | sha256sum -c -"),
        None => "echo \"$(sed -n 's/^x-agent-sha256: *\\([0-9a-f]\\{64\\}\\).*/\\1/ip' /tmp/sam-agent.headers)  /usr/local/bin/sam-agent.download\" | sha256sum -c -".to_owned(),
    };

    let mut out = String::with_capacity(4096);
    // `writeln!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "#cloud-config");
    let _ = writeln!(out, "package_update: true");
    let _ = writeln!(out, "packages: [ca-certificates, curl, git, docker.io, nodejs, npm]");
    let _ = writeln!(out, "write_files:");
    let _ = writeln!(out, "  - path: /etc/sam/agent.env");
    let _ = writeln!(out, "    permissions: '0600'");
    let _ = writeln!(out, "    content: |");
    let _ = writeln!(out, "      SAM_AGENT_CONTROL_PLANE={url}");
    let _ = writeln!(out, "      SAM_AGENT_BOOTSTRAP_TOKEN={}", p.bootstrap_token);
    if p.agent_tls {
        // 443: a port Cloudflare's edge proxies to, and the one Full (strict) uses.
        let _ = writeln!(out, "      SAM_AGENT_TLS=true");
        let _ = writeln!(out, "      SAM_AGENT_LISTEN=0.0.0.0:443");
    }
    let _ = writeln!(out, "  - path: /etc/systemd/system/sam-agent.service");
    let _ = writeln!(out, "    permissions: '0644'");
    let _ = writeln!(out, "    content: |");
    let _ = writeln!(out, "      [Unit]");
    let _ = writeln!(out, "      Description=SAM workspace agent");
    let _ = writeln!(out, "      After=network-online.target docker.service");
    let _ = writeln!(out, "      Wants=network-online.target");
    let _ = writeln!(out, "      [Service]");
    let _ = writeln!(out, "      EnvironmentFile=/etc/sam/agent.env");
    let _ = writeln!(out, "      ExecStart=/usr/local/bin/sam-agent");
    // The agent keeps its grant here and resumes from it after a crash or a
    // reboot (the bootstrap token is spent once redeemed).
    let _ = writeln!(out, "      StateDirectory=sam-agent");
    let _ = writeln!(out, "      StateDirectoryMode=0700");
    let _ = writeln!(out, "      Restart=on-failure");
    let _ = writeln!(out, "      RestartSec=5");
    let _ = writeln!(out, "      [Install]");
    let _ = writeln!(out, "      WantedBy=multi-user.target");
    let _ = writeln!(out, "runcmd:");
    // One shell for download, check and install: if the checksum does not
    // match, nothing is installed (runcmd lines do not stop each other).
    let install = format!(
        "set -eu; curl -fsS --retry 10 --retry-all-errors -D /tmp/sam-agent.headers \
         -o /usr/local/bin/sam-agent.download \"{download}\"; {verify}; \
         install -m 0755 /usr/local/bin/sam-agent.download /usr/local/bin/sam-agent; \
         rm -f /usr/local/bin/sam-agent.download /tmp/sam-agent.headers"
    );
    let _ = writeln!(out, "  - [sh, -c, '{}']", install.replace('\'', "''"));
    let _ = writeln!(out, "  - [npm, install, -g, '@devcontainers/cli@{DEVCONTAINER_CLI_VERSION}']");
    let _ = writeln!(out, "  - [systemctl, daemon-reload]");
    let _ = writeln!(out, "  - [systemctl, enable, --now, sam-agent.service]");

    if out.len() > MAX_USER_DATA {
        return Err(CloudInitError::TooLarge(out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CloudInitParams<'static> {
        CloudInitParams {
            control_plane_url: "https://sam.example.dev/",
            bootstrap_token: "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
            agent_arch: "amd64",
            agent_sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
            agent_tls: false,
        }
    }

    #[test]
    fn tls_agents_listen_on_443_with_tls() {
        let data = render(&CloudInitParams { agent_tls: true, ..params() }).unwrap();
        assert!(data.contains("      SAM_AGENT_TLS=true\n      SAM_AGENT_LISTEN=0.0.0.0:443\n"), "{data}");
        assert!(!render(&params()).unwrap().contains("SAM_AGENT_TLS"));
    }

    #[test]
    fn snapshot_with_checksum() {
        insta::assert_snapshot!(render(&params()).unwrap());
    }

    #[test]
    fn snapshot_without_checksum() {
        insta::assert_snapshot!(render(&CloudInitParams { agent_sha256: None, ..params() }).unwrap());
    }

    #[test]
    fn hostile_values_are_refused() {
        for url in [
            "https://x'; reboot; '",
            "https://x\n  - [reboot]",
            "https://x\"",
            "https://x y",
            "ftp://x",
            "https://x$(id)",
            "https://x`id`",
            "https://x#",
            "",
        ] {
            assert!(render(&CloudInitParams { control_plane_url: url, ..params() }).is_err(), "{url:?}");
        }
        for token in ["a'b", "a b", "a\nb", "a$b", "", &"a".repeat(200)] {
            assert!(render(&CloudInitParams { bootstrap_token: token, ..params() }).is_err(), "{token:?}");
        }
        assert!(render(&CloudInitParams { agent_arch: "x86", ..params() }).is_err());
        assert!(render(&CloudInitParams { agent_sha256: Some("ABC"), ..params() }).is_err());
        assert!(render(&CloudInitParams { agent_sha256: Some(&"g".repeat(64)), ..params() }).is_err());
    }

    #[test]
    fn holds_no_repository_data_and_fits() {
        let out = render(&params()).unwrap();
        assert!(out.len() < MAX_USER_DATA);
        assert!(out.contains("SAM_AGENT_BOOTSTRAP_TOKEN=Zm9vYmFy"));
        assert!(out.contains("https://sam.example.dev/api/agent/download?arch=amd64"));
        assert!(!out.contains("sam.example.dev//"), "trailing slash trimmed");
        assert!(out.contains("sha256sum -c"));
    }
}
