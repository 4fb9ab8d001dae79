//! Validated names. Each type can only be built through a constructor that checks
//! it, so an invalid name cannot exist inside the domain, and every value is safe
//! to put in a DNS label, a cloud-init file, a shell argument or a URL path after
//! the usual escaping.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::ValidationError;

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A workspace's display name: 1–64 characters of ASCII letters, digits,
    /// space, `-`, `_` and `.`, starting with a letter or digit and not ending in
    /// a space.
    ///
    /// ```
    /// use sam_core::domain::WorkspaceName;
    /// assert!(WorkspaceName::new("api refactor-2").is_ok());
    /// assert!(WorkspaceName::new("<script>").is_err());
    /// ```
    WorkspaceName,
    check_workspace_name
);

validated_string!(
    /// A GitHub repository's full name, `owner/name`, following GitHub's rules:
    /// owner 1–39 characters of letters, digits and single hyphens (not at either
    /// end); name 1–100 characters of letters, digits, `-`, `_` and `.`, not `.`
    /// or `..`.
    ///
    /// ```
    /// use sam_core::domain::RepoFullName;
    /// let repo = RepoFullName::new("octo-org/hello.world").unwrap();
    /// assert_eq!(repo.owner(), "octo-org");
    /// assert_eq!(repo.name(), "hello.world");
    /// assert!(RepoFullName::new("../etc/passwd").is_err());
    /// ```
    RepoFullName,
    check_repo_full_name
);

validated_string!(
    /// A git branch name, following `git check-ref-format --branch` rules, plus
    /// two of SAM's own: at most 255 bytes, and no leading `-` (so it can never be
    /// read as an option by `git clone --branch`).
    ///
    /// ```
    /// use sam_core::domain::BranchName;
    /// assert!(BranchName::new("feature/login-v2").is_ok());
    /// assert!(BranchName::new("--upload-pack=evil").is_err());
    /// assert!(BranchName::new("a..b").is_err());
    /// ```
    BranchName,
    check_branch_name
);

validated_string!(
    /// A provider location code such as `fsn1`, `nbg1` or `hel1`: 1–32 lowercase
    /// letters, digits and hyphens. Whether the provider offers it is checked
    /// against the provider's live list, not here.
    LocationCode,
    check_location_code
);

impl RepoFullName {
    /// The account (user or organisation) that owns the repository.
    pub fn owner(&self) -> &str {
        self.0.split_once('/').map(|(owner, _)| owner).unwrap_or(&self.0)
    }

    /// The repository's name without the owner.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map(|(_, name)| name).unwrap_or("")
    }
}

fn check_workspace_name(value: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "name";
    if value.is_empty() || value.len() > 64 {
        return Err(ValidationError::new(FIELD, "must be 1 to 64 characters"));
    }
    let first = value.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return Err(ValidationError::new(FIELD, "must start with a letter or digit"));
    }
    if value.ends_with(' ') {
        return Err(ValidationError::new(FIELD, "must not end with a space"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'-' | b'_' | b'.')) {
        return Err(ValidationError::new(FIELD, "may contain only letters, digits, spaces, '-', '_' and '.'"));
    }
    Ok(())
}

fn check_repo_full_name(value: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "repository";
    let Some((owner, name)) = value.split_once('/') else {
        return Err(ValidationError::new(FIELD, "must be 'owner/name'"));
    };
    if owner.is_empty() || owner.len() > 39 {
        return Err(ValidationError::new(FIELD, "owner must be 1 to 39 characters"));
    }
    if !owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || owner.starts_with('-')
        || owner.ends_with('-')
        || owner.contains("--")
    {
        return Err(ValidationError::new(
            FIELD,
            "owner may contain only letters, digits and single hyphens, not at either end",
        ));
    }
    if name.is_empty() || name.len() > 100 {
        return Err(ValidationError::new(FIELD, "name must be 1 to 100 characters"));
    }
    if name == "." || name == ".." {
        return Err(ValidationError::new(FIELD, "name must not be '.' or '..'"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(ValidationError::new(FIELD, "name may contain only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

fn check_branch_name(value: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "branch";
    let fail = |why: &'static str| Err(ValidationError::new(FIELD, why));
    if value.is_empty() || value.len() > 255 {
        return fail("must be 1 to 255 bytes");
    }
    if value.starts_with('-') {
        return fail("must not start with '-'");
    }
    if value == "@" || value == "HEAD" {
        return fail("must not be '@' or 'HEAD'");
    }
    if value.chars().any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\' | '\u{7f}')) {
        return fail("must not contain spaces, control characters or any of ~ ^ : ? * [ \\");
    }
    if value.contains("..") || value.contains("@{") || value.contains("//") {
        return fail("must not contain '..', '@{' or '//'");
    }
    if value.starts_with('/') || value.ends_with('/') || value.ends_with('.') {
        return fail("must not start or end with '/' or end with '.'");
    }
    for component in value.split('/') {
        if component.starts_with('.') || component.ends_with(".lock") {
            return fail("no path component may start with '.' or end with '.lock'");
        }
    }
    Ok(())
}

validated_string!(
    /// The id of one SAM deployment: every server, firewall and DNS record it
    /// creates carries it (the `sam-deployment` label at the cloud, the
    /// record's comment in the zone), and its orphan sweeps and teardown touch
    /// nothing that carries another. 1–63 lowercase letters, digits, `-` and
    /// `.`, starting and ending with a letter or digit: a valid label value at
    /// Hetzner, and short enough for a Cloudflare comment on every plan. A base
    /// domain usually is one ([`DeploymentId::from_base_domain`]).
    ///
    /// ```
    /// use sam_core::domain::DeploymentId;
    /// assert!(DeploymentId::new("sam.example.dev").is_ok());
    /// assert!(DeploymentId::new("Prod").is_err());
    /// assert!(DeploymentId::new("-x").is_err());
    /// ```
    DeploymentId,
    check_deployment_id
);

impl DeploymentId {
    /// The default id of a deployment: its base domain, lowercased, when that
    /// is a valid id (a longer one must be given explicitly).
    pub fn from_base_domain(base_domain: &str) -> Result<Self, ValidationError> {
        Self::new(base_domain.trim_end_matches('.').to_ascii_lowercase())
    }

    /// `sam`: the id of a deployment that names none and whose base domain
    /// is not one.
    pub fn fallback() -> Self {
        Self("sam".to_owned())
    }
}

fn check_deployment_id(value: &str) -> Result<(), ValidationError> {
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if value.is_empty()
        || value.len() > 63
        || !edge(value.as_bytes().first())
        || !edge(value.as_bytes().last())
        || !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(ValidationError::new(
            "deploymentId",
            "must be 1 to 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

fn check_location_code(value: &str) -> Result<(), ValidationError> {
    if value.is_empty()
        || value.len() > 32
        || !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ValidationError::new("vmLocation", "must be 1 to 32 lowercase letters, digits or hyphens"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names() {
        for ok in ["a", "My workspace", "api_v2.1-test", &"x".repeat(64)] {
            assert!(WorkspaceName::new(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", " lead", "trail ", "-x", "a/b", "é", "a\nb", "a;rm -rf", &"x".repeat(65)] {
            assert!(WorkspaceName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repository_names() {
        for ok in ["octocat/Hello-World", "a/b", "my-org/repo.name_1", "x/.github"] {
            assert!(RepoFullName::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "noslash",
            "/repo",
            "owner/",
            "-owner/r",
            "owner-/r",
            "ow--ner/r",
            "o/..",
            "o/.",
            "o/r/x",
            "o/r x",
            "o/r;ls",
            "o/r'",
            &format!("{}/r", "a".repeat(40)),
            &format!("o/{}", "a".repeat(101)),
        ] {
            assert!(RepoFullName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn branch_names_follow_git_rules() {
        for ok in ["main", "feature/x", "release-1.2", "user@host", "fix_#12", "ünïcode"] {
            assert!(BranchName::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "-x",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "/a",
            "a/",
            "a//b",
            "a.",
            ".a",
            "a/.b",
            "a.lock",
            "a/b.lock",
            "a@{1}",
            "@",
            "HEAD",
            "a\u{7f}",
            "a\tb",
            "$(reboot)x y",
        ] {
            assert!(BranchName::new(bad).is_err(), "{bad:?}");
        }
        assert!(BranchName::new("a".repeat(256)).is_err());
    }

    #[test]
    fn location_codes() {
        assert!(LocationCode::new("fsn1").is_ok());
        assert!(LocationCode::new("us-east").is_ok());
        assert!(LocationCode::new("FSN1").is_err());
        assert!(LocationCode::new("").is_err());
        assert!(LocationCode::new("fsn1;").is_err());
    }

    #[test]
    fn deserializing_validates() {
        let ok: Result<RepoFullName, _> = serde_json::from_str("\"o/r\"");
        assert!(ok.is_ok());
        let bad: Result<RepoFullName, _> = serde_json::from_str("\"o/r;x\"");
        assert!(bad.is_err());
    }
}
