//! Where a workspace lives on the Internet: its host name under the
//! deployment's base domain.
//!
//! Two schemes, because of what edge certificates cover: Cloudflare's free
//! Universal SSL certificate is valid for the zone apex and one level below
//! it (`*.zone`), so `ws-<id>.staging.sam.example.dev` (two levels below
//! the zone `sam.example.dev`) gets no edge certificate without an advanced
//! one for `*.staging.sam.example.dev`. The flat scheme folds the first
//! label of the base domain into the workspace's label instead:
//! `ws-<id>--staging.sam.example.dev`, one level below the zone.

use std::fmt;
use std::str::FromStr;

use super::{ValidationError, WorkspaceId};

/// How workspace host names are formed from the base domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostNaming {
    /// `ws-<id>.<base>`: one name per workspace below the base domain.
    #[default]
    Nested,
    /// `ws-<id>--<first label of base>.<rest of base>`: for a base domain
    /// one level below the zone, names one level below the zone, which
    /// Universal SSL covers.
    Flat,
}

impl fmt::Display for HostNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nested => "nested",
            Self::Flat => "flat",
        })
    }
}

impl FromStr for HostNaming {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nested" => Ok(Self::Nested),
            "flat" => Ok(Self::Flat),
            _ => Err(ValidationError::new("hostNaming", "must be nested or flat")),
        }
    }
}

/// The workspace host names of one deployment.
///
/// ```
/// use sam_core::domain::{HostNaming, WorkspaceHosts};
/// let nested = WorkspaceHosts::new("staging.sam.dev", HostNaming::Nested).unwrap();
/// assert_eq!(nested.host_for_label("ws-1"), "ws-1.staging.sam.dev");
/// let flat = WorkspaceHosts::new("staging.sam.dev", HostNaming::Flat).unwrap();
/// assert_eq!(flat.host_for_label("ws-1"), "ws-1--staging.sam.dev");
/// assert_eq!(flat.workspace_label("ws-1--staging.sam.dev"), Some("ws-1"));
/// assert_eq!(nested.workspace_label("ws-1--staging.sam.dev"), None);
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkspaceHosts {
    naming: HostNaming,
    /// What follows the workspace's label, including the separator:
    /// `.staging.sam.dev` (nested) or `--staging.sam.dev` (flat).
    suffix: String,
}

/// Separates a workspace's label from the folded base label (flat naming).
/// A workspace label (`ws-` and a hyphenated UUID) never contains it.
const FLAT_SEPARATOR: &str = "--";

impl WorkspaceHosts {
    /// The names under `base_domain`. Flat naming needs a base domain of at
    /// least two labels, whose first label it folds in.
    pub fn new(base_domain: &str, naming: HostNaming) -> Result<Self, ValidationError> {
        let base = base_domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if base.is_empty() {
            return Err(ValidationError::new("baseDomain", "must not be empty"));
        }
        // A DNS name (RFC 1123 labels): it becomes host names, certificate
        // names and record names, so nothing else may pass.
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !base.split('.').all(label_ok) {
            return Err(ValidationError::new(
                "baseDomain",
                "must be a DNS name: labels of letters, digits and inner hyphens, separated by dots",
            ));
        }
        let suffix = match naming {
            HostNaming::Nested => format!(".{base}"),
            HostNaming::Flat => {
                if !base.contains('.') {
                    return Err(ValidationError::new(
                        "baseDomain",
                        "flat naming needs a base domain below a zone (e.g. staging.example.dev)",
                    ));
                }
                format!("{FLAT_SEPARATOR}{base}")
            }
        };
        // The longest workspace label, then the suffix: a name of at most 253
        // characters whose first label (flat naming folds one in) fits 63.
        let longest = format!("ws-{}", "0".repeat(36));
        let first_label = suffix.split('.').next().unwrap_or_default();
        if longest.len() + suffix.len() > 253 || (!first_label.is_empty() && longest.len() + first_label.len() > 63) {
            return Err(ValidationError::new("baseDomain", "too long for workspace names under it"));
        }
        Ok(Self { naming, suffix })
    }

    /// The scheme.
    pub fn naming(&self) -> HostNaming {
        self.naming
    }

    /// The host name of a workspace.
    pub fn host(&self, id: &WorkspaceId) -> String {
        self.host_for_label(&id.dns_label())
    }

    /// The host name for a workspace-style label (`ws-<id>`, or the setup
    /// probe's `ws-test`).
    pub fn host_for_label(&self, label: &str) -> String {
        format!("{label}{}", self.suffix)
    }

    /// The workspace label (`ws-…`) of `name` when it is a workspace host
    /// name of this scheme and base domain (any case), else `None`.
    pub fn workspace_label<'a>(&self, name: &'a str) -> Option<&'a str> {
        let name = name.trim_end_matches('.');
        let split = name.len().checked_sub(self.suffix.len())?;
        let (label, suffix) = (name.get(..split)?, name.get(split..)?);
        let is_label = label.len() > 3
            && label.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("ws-"))
            && !label.contains('.')
            && !label.contains(FLAT_SEPARATOR);
        (is_label && suffix.eq_ignore_ascii_case(&self.suffix)).then_some(label)
    }

    /// The workspace whose host `name` is, when it is one.
    pub fn workspace_of(&self, name: &str) -> Option<WorkspaceId> {
        self.workspace_label(name).and_then(|label| WorkspaceId::from_dns_label(&label.to_ascii_lowercase()))
    }

    /// The host name of the preview of `port` in workspace `id`
    /// (`p<port>-` before the workspace's host name: one level below the
    /// same zone, so the same edge certificate covers it); `None` when its
    /// first label would pass 63 characters (flat naming under a long label).
    ///
    /// ```
    /// use sam_core::domain::{HostNaming, WorkspaceHosts, WorkspaceId, preview_port_of};
    /// let id: WorkspaceId = "0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f10".parse().unwrap();
    /// let hosts = WorkspaceHosts::new("sam.dev", HostNaming::Nested).unwrap();
    /// let host = hosts.preview_host(&id, 3000).unwrap();
    /// assert_eq!(host, format!("p3000-{}", hosts.host(&id)));
    /// assert_eq!(preview_port_of(&host, &id), Some(3000));
    /// ```
    pub fn preview_host(&self, id: &WorkspaceId, port: u16) -> Option<String> {
        let host = format!("p{port}-{}", self.host(id));
        let first = host.split('.').next().unwrap_or_default();
        (port > 0 && first.len() <= 63 && host.len() <= 253).then_some(host)
    }

    /// The workspace and port of a preview host name of this scheme and
    /// base domain (`p<port>-` before a workspace's host name), else `None`.
    pub fn preview_of(&self, name: &str) -> Option<(WorkspaceId, u16)> {
        let id = self.workspace_of(strip_port_prefix(name)?)?;
        preview_port_of(name.trim_end_matches('.'), &id).map(|port| (id, port))
    }

    /// The workspace a name of this deployment belongs to: the workspace's
    /// own host name or one of its previews.
    pub fn owner_of(&self, name: &str) -> Option<WorkspaceId> {
        self.workspace_of(name).or_else(|| self.preview_of(name).map(|(id, _)| id))
    }
}

/// `name` without a leading `p<digits>-`.
fn strip_port_prefix(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('p').or_else(|| name.strip_prefix('P'))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| rest.get(digits..)?.strip_prefix('-')).flatten()
}

/// The port a preview host name of workspace `id` stands for: its first
/// label is `p<port>-<workspace label>` (followed by `.`, or by `--` under
/// flat naming). Case-insensitive; a port of 0, above 65535 or with a
/// leading zero is not one. What follows the label is not checked: an
/// agent serves only its own workspace, and the edge routes only names of
/// the zone to it.
pub fn preview_port_of(host: &str, id: &WorkspaceId) -> Option<u16> {
    let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    let rest = host.strip_prefix('p').or_else(|| host.strip_prefix('P'))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = rest.split_at(digits);
    if number.is_empty() || number.len() > 5 || number.starts_with('0') {
        return None;
    }
    let port: u16 = number.parse().ok().filter(|p| *p > 0)?;
    let rest = rest.strip_prefix('-')?;
    let label = id.dns_label();
    let after = rest.get(label.len()..)?;
    let ok = rest.get(..label.len()).is_some_and(|l| l.eq_ignore_ascii_case(&label))
        && (after.starts_with('.') || after.starts_with(FLAT_SEPARATOR) || after.is_empty());
    ok.then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `domain_names` fuzz target: any text was a base domain,
    /// so `ws-<id>.../etc/passwd` was a workspace's host name.
    #[test]
    fn a_base_domain_is_a_dns_name() {
        for bad in ["../etc/passwd", "sam example.dev", "sam_example.dev", "-sam.dev", "sam-.dev", "a..b", "é.dev"] {
            for naming in [HostNaming::Nested, HostNaming::Flat] {
                assert!(WorkspaceHosts::new(bad, naming).is_err(), "{bad:?} {naming}");
            }
        }
        let long = format!("{}.dev", "a".repeat(63));
        assert!(WorkspaceHosts::new(&long, HostNaming::Nested).is_ok());
        assert!(WorkspaceHosts::new(&long, HostNaming::Flat).is_err(), "the folded label would pass 63");
        let deep = vec!["abcdefghij"; 20].join(".");
        assert!(WorkspaceHosts::new(&deep, HostNaming::Nested).is_err(), "over 253 with the workspace label");
        for good in ["localhost", "sam.example.dev", "127.0.0.1.nip.io", "Staging.SAM.dev."] {
            assert!(WorkspaceHosts::new(good, HostNaming::Nested).is_ok(), "{good}");
        }
    }

    #[test]
    fn both_schemes_round_trip_and_reject_each_other() {
        let id: WorkspaceId = "0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f10".parse().unwrap();
        let nested = WorkspaceHosts::new("Staging.Sam.dev.", HostNaming::Nested).unwrap();
        let flat = WorkspaceHosts::new("staging.sam.dev", HostNaming::Flat).unwrap();
        assert_eq!(nested.host(&id), format!("{}.staging.sam.dev", id.dns_label()));
        assert_eq!(flat.host(&id), format!("{}--staging.sam.dev", id.dns_label()));
        assert_eq!(nested.workspace_of(&nested.host(&id).to_ascii_uppercase()), Some(id));
        assert_eq!(flat.workspace_of(&flat.host(&id)), Some(id));
        // Another scheme's, another base's, deeper and non-workspace names.
        assert_eq!(nested.workspace_label(&flat.host(&id)), None);
        assert_eq!(flat.workspace_label(&nested.host(&id)), None);
        assert_eq!(nested.workspace_label("ws-a.b.staging.sam.dev"), None);
        assert_eq!(nested.workspace_label("api.staging.sam.dev"), None);
        assert_eq!(nested.workspace_label("ws-.staging.sam.dev"), None);
        assert_eq!(nested.workspace_label("ws-a.other.dev"), None);
        // A nested deployment on the zone sees a flat one's names as not its own.
        let apex = WorkspaceHosts::new("sam.dev", HostNaming::Nested).unwrap();
        assert_eq!(apex.workspace_label(&flat.host(&id)), None);
        assert!(WorkspaceHosts::new("localhost", HostNaming::Flat).is_err());
        assert!(WorkspaceHosts::new("", HostNaming::Nested).is_err());
        assert_eq!("FLAT".parse::<HostNaming>(), Ok(HostNaming::Flat));
        // Previews: `p<port>-` before either scheme's name.
        for hosts in [&nested, &flat] {
            let preview = hosts.preview_host(&id, 5173).unwrap();
            assert_eq!(preview_port_of(&preview, &id), Some(5173));
            assert_eq!(preview_port_of(&format!("{}:8443", preview.to_ascii_uppercase()), &id), Some(5173));
            assert_eq!(hosts.workspace_of(&preview), None, "a preview is not the workspace's own name");
            assert_eq!(hosts.preview_of(&preview), Some((id, 5173)));
            assert_eq!(hosts.owner_of(&preview), Some(id));
            assert_eq!(hosts.owner_of(&hosts.host(&id)), Some(id));
            assert_eq!(hosts.preview_of(&hosts.host(&id)), None);
        }
        let label = id.dns_label();
        let other: WorkspaceId = "0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f11".parse().unwrap();
        for bad in [
            format!("{label}.sam.dev"),
            format!("p0-{label}.sam.dev"),
            format!("p03000-{label}.sam.dev"),
            format!("p65536-{label}.sam.dev"),
            format!("p-{label}.sam.dev"),
            format!("p3000{label}.sam.dev"),
            format!("p3000-{label}x.sam.dev"),
            format!("p3000-{}.sam.dev", other.dns_label()),
            format!("x.p3000-{label}.sam.dev"),
        ] {
            assert_eq!(preview_port_of(&bad, &id), None, "{bad}");
        }
        assert_eq!(nested.preview_host(&id, 0), None);
        assert_eq!(nested.preview_of(&flat.preview_host(&id, 3000).unwrap()), None, "another scheme's");
        assert_eq!(nested.preview_of(&format!("p3000-{label}.other.dev")), None, "another base's");
        assert_eq!(nested.preview_of(&format!("p03000-{label}.staging.sam.dev")), None);
        let long_flat = WorkspaceHosts::new(&format!("{}.dev", "a".repeat(20)), HostNaming::Flat).unwrap();
        assert_eq!(long_flat.preview_host(&id, 65535), None, "a first label over 63");
        assert!("deep".parse::<HostNaming>().is_err());
    }
}
