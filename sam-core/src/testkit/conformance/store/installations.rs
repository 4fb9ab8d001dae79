//! Installations ([`InstallationStore`](crate::ports::InstallationStore)).

use crate::domain::{GithubInstallation, GithubUserId, InstallationId};
use crate::ports::Store;

use super::{T0, at, unique_github_id};

/// Installations are upserted and marked removed.
pub async fn installations(store: &dyn Store) {
    let id = InstallationId(unique_github_id());
    let mut inst = GithubInstallation {
        id,
        account_login: "octo-org".into(),
        account_type: "Organization".into(),
        account_id: GithubUserId(77),
        suspended: false,
        removed_at: None,
        updated_at: T0,
    };
    store.upsert_installation(&inst).await.expect("upsert");
    inst.suspended = true;
    store.upsert_installation(&inst).await.expect("upsert again");
    assert_eq!(store.get_installation(id).await.expect("get"), Some(inst.clone()));
    assert!(store.mark_installation_removed(id, at(9)).await.expect("remove"));
    let removed = store.get_installation(id).await.expect("get").expect("kept");
    assert_eq!(removed.removed_at, Some(at(9)));
    assert!(!removed.is_usable());
    assert!(!store.mark_installation_removed(InstallationId(-5), at(9)).await.expect("remove unknown"));
}
