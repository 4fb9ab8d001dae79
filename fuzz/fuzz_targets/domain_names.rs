//! The validated names of the domain (`sam_core::domain`): every name a user
//! or a webhook hands in goes through one of these constructors before it
//! reaches a command line, a DNS name, a path or a query. What they accept
//! must hold their documented rules (no path traversal, no option-looking
//! branch, no control characters), survive a JSON round trip unchanged, and
//! workspace host names must map back to the workspace they name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sam_core::domain::{
    BranchName, DeploymentId, HostNaming, LocationCode, RepoFullName, WorkspaceHosts, WorkspaceId, WorkspaceName,
};

fn round_trips<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).expect("serialises");
    let back: T = serde_json::from_str(&json).expect("what was accepted is accepted again");
    assert_eq!(&back, value);
}

fuzz_target!(|text: &str| {
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if let Ok(name) = WorkspaceName::new(text) {
        assert_eq!(name.as_str(), text);
        assert!((1..=64).contains(&text.len()) && printable(text));
        round_trips(&name);
    }
    if let Ok(repo) = RepoFullName::new(text) {
        assert_eq!(format!("{}/{}", repo.owner(), repo.name()), text);
        assert!(!repo.owner().is_empty() && !repo.owner().contains(['/', '.']));
        assert!(!matches!(repo.name(), "" | "." | "..") && !repo.name().contains('/'));
        round_trips(&repo);
    }
    if let Ok(branch) = BranchName::new(text) {
        assert!(!text.starts_with('-') && !text.contains("..") && text.len() <= 255);
        assert!(text.bytes().all(|b| b > 0x20 && b != 0x7f && !b"~^:?*[\\".contains(&b)), "{text:?}");
        round_trips(&branch);
    }
    if let Ok(location) = LocationCode::new(text) {
        assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        round_trips(&location);
    }
    if let Ok(deployment) = DeploymentId::new(text) {
        assert!(
            text.len() <= 63
                && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        );
        round_trips(&deployment);
    }
    for naming in [HostNaming::Nested, HostNaming::Flat] {
        if let Ok(hosts) = WorkspaceHosts::new(text, naming) {
            let id = WorkspaceId::new();
            let host = hosts.host(&id);
            assert!(
                host.len() <= 253
                    && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
                "{host:?}"
            );
            assert_eq!(hosts.workspace_of(&host), Some(id), "{host:?} names its workspace");
        }
    }
});
