//! cloud-init user data for a workspace server.
//!
//! The VM's metadata service lets any process on the VM read its user data, so
//! the rendered file carries no long-lived secret: only the control-plane URL
//! and a single-use, short-lived bootstrap token. The repository, branch and
//! clone token reach the agent when it redeems the token, so a hostile
//! repository or branch name never appears in this file at all; the values that
//! do appear are checked against strict character sets (they land in
//! environment files the boot script and the agent read).
//!
//! The user data writes the files and runs [`BOOT_SCRIPT`], a fixed script
//! (checked by `shellcheck` in the tests) rather than commands assembled
//! here: it installs only what the image lacks, so on an image that has
//! Docker (Hetzner's `docker-ce`) a boot installs nothing but Node.js, and
//! it reports every step to the control plane.

use std::fmt::Write as _;

/// The largest user data Hetzner accepts.
pub const MAX_USER_DATA: usize = 32 * 1024;

/// Version of the devcontainer CLI installed on every VM (the control
/// plane serves its npm package; VMs fall back to npm without it).
pub const DEVCONTAINER_CLI_VERSION: &str = "0.80.1";

/// The script cloud-init runs once on a workspace VM: it installs only what
/// the image lacks, unpacks the devcontainer CLI and the agent from the
/// control plane (checksums checked), starts the agent, and reports each
/// step to the control plane with the bootstrap token (not spent by it).
/// Written to [`BOOT_SCRIPT_PATH`] as it is here.
pub const BOOT_SCRIPT: &str = include_str!("cloud_init_boot.sh");

/// Where the user data writes [`BOOT_SCRIPT`].
pub const BOOT_SCRIPT_PATH: &str = "/var/lib/sam/boot.sh";

/// What goes into the user data.
#[derive(Clone, Debug)]
pub struct CloudInitParams<'a> {
    /// Control-plane base URL, `https://…` (or `http://` for loopback dev).
    pub control_plane_url: &'a str,
    /// The single-use bootstrap token (base64url).
    pub bootstrap_token: &'a str,
    /// Expected SHA-256 (hex) of the `amd64` agent binary; the download is
    /// refused on mismatch. The VM downloads the agent for its own
    /// architecture (`uname -m`), so the provider may pick an x86 or an Arm
    /// type after this is rendered.
    pub agent_sha256: Option<&'a str>,
    /// The same for the `arm64` agent (Arm server types).
    pub agent_sha256_arm64: Option<&'a str>,
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
///     agent_sha256: None,
///     agent_sha256_arm64: None,
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
    for sha in [p.agent_sha256, p.agent_sha256_arm64].into_iter().flatten() {
        check("agent checksum", sha, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b), 64)?;
        if sha.len() != 64 {
            return Err(CloudInitError::InvalidValue("agent checksum"));
        }
    }

    let mut out = String::with_capacity(8192);
    // `writeln!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "#cloud-config");
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
    // What only the boot script reads.
    let _ = writeln!(out, "  - path: /etc/sam/boot.env");
    let _ = writeln!(out, "    permissions: '0600'");
    let _ = writeln!(out, "    content: |");
    let _ = writeln!(out, "      SAM_BOOT_DEVCONTAINER_CLI_VERSION={DEVCONTAINER_CLI_VERSION}");
    // Otherwise the checksum the control plane sends with the binary.
    if let Some(sha) = p.agent_sha256 {
        let _ = writeln!(out, "      SAM_BOOT_AGENT_SHA256_AMD64={sha}");
    }
    if let Some(sha) = p.agent_sha256_arm64 {
        let _ = writeln!(out, "      SAM_BOOT_AGENT_SHA256_ARM64={sha}");
    }
    let _ = writeln!(out, "  - path: {BOOT_SCRIPT_PATH}");
    let _ = writeln!(out, "    permissions: '0700'");
    let _ = writeln!(out, "    content: |");
    for line in BOOT_SCRIPT.lines() {
        if line.is_empty() {
            let _ = writeln!(out);
        } else {
            let _ = writeln!(out, "      {line}");
        }
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
    let _ = writeln!(out, "  - [sh, {BOOT_SCRIPT_PATH}]");

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
            agent_sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
            agent_sha256_arm64: Some("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"),
            agent_tls: false,
        }
    }

    #[test]
    fn tls_agents_listen_on_443_with_tls() {
        let data = render(&CloudInitParams { agent_tls: true, ..params() }).unwrap();
        assert!(data.contains("      SAM_AGENT_TLS=true\n      SAM_AGENT_LISTEN=0.0.0.0:443\n"), "{data}");
        assert!(!render(&params()).unwrap().contains("SAM_AGENT_TLS"));
    }

    /// The script cloud-init writes is [`BOOT_SCRIPT`], byte for byte.
    #[test]
    fn the_boot_script_is_written_verbatim() {
        let data = render(&params()).unwrap();
        let start = data.find(&format!("  - path: {BOOT_SCRIPT_PATH}\n")).unwrap();
        let block: String = data[start..]
            .lines()
            .skip(3)
            .take_while(|l| l.is_empty() || l.starts_with("      "))
            .map(|l| format!("{}\n", l.strip_prefix("      ").unwrap_or(l)))
            .collect();
        assert_eq!(block, BOOT_SCRIPT);
        assert!(data.ends_with(&format!("runcmd:\n  - [sh, {BOOT_SCRIPT_PATH}]\n")), "{data}");
        assert!(!data.contains("packages:"), "nothing installed by cloud-init itself: {data}");
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
        assert!(render(&CloudInitParams { agent_sha256_arm64: Some("abc"), ..params() }).is_err());
        assert!(render(&CloudInitParams { agent_sha256: Some("ABC"), ..params() }).is_err());
        assert!(render(&CloudInitParams { agent_sha256: Some(&"g".repeat(64)), ..params() }).is_err());
    }

    #[test]
    fn holds_no_repository_data_and_fits() {
        let out = render(&params()).unwrap();
        assert!(out.len() < MAX_USER_DATA);
        assert!(out.contains("SAM_AGENT_BOOTSTRAP_TOKEN=Zm9vYmFy"));
        assert!(out.contains("SAM_AGENT_CONTROL_PLANE=https://sam.example.dev\n"), "trailing slash trimmed");
        assert!(out.contains("SAM_BOOT_AGENT_SHA256_AMD64=9f86d081"));
        assert!(out.contains("SAM_BOOT_AGENT_SHA256_ARM64=60303ae2"));
        assert!(out.contains("aarch64 | arm64) arch=arm64"), "the VM picks its own agent");
        assert!(out.contains("$control_plane/api/agent/download?arch=$arch"));
        assert!(out.contains("sha256sum -c"));
    }
}
