//! Credentials ([`CredentialStore`](crate::ports::CredentialStore)).

use crate::domain::{Credential, CredentialProvider, Timestamp, UserId};
use crate::lifecycle::WorkspaceStatus;
use crate::ports::{CredentialRemoval, Store, StoreErrorKind, WorkspaceLimits};
use crate::testkit::{sample_workspace, typical_lifecycle};

use super::{T0, at, new_user, unique_github_id};

fn credential(user: UserId, bytes: &[u8], now: Timestamp) -> Credential {
    Credential {
        user_id: user,
        provider: CredentialProvider::HETZNER,
        ciphertext: bytes.to_vec(),
        validated_at: Some(now),
        created_at: now,
        updated_at: now,
    }
}

/// Credentials are per user and provider, replaceable, and invisible to others.
pub async fn credentials(store: &dyn Store) {
    let alice = new_user(store, unique_github_id()).await;
    let bob = new_user(store, unique_github_id()).await;
    store.put_credential(&credential(alice, &[1, 2, 3], T0)).await.expect("put");
    store.put_credential(&credential(alice, &[4, 5, 6, 0, 255], at(5))).await.expect("replace");
    let got = store.get_credential(alice, CredentialProvider::HETZNER).await.expect("get").expect("stored");
    assert_eq!(got.ciphertext, vec![4, 5, 6, 0, 255], "binary ciphertext round-trips and replace wins");
    assert_eq!(got.validated_at, Some(at(5)));
    assert_eq!(store.list_credentials(alice).await.expect("list").len(), 1);
    assert!(store.get_credential(bob, CredentialProvider::HETZNER).await.expect("get other").is_none());
    assert!(store.list_credentials(bob).await.expect("list other").is_empty());
    let all = store.list_all_credentials(CredentialProvider::HETZNER).await.expect("list all");
    assert!(all.iter().any(|c| c.user_id == alice));
    let removal = store.delete_credential_unless_in_use(bob, CredentialProvider::HETZNER).await.expect("delete none");
    assert_eq!(removal, CredentialRemoval::NotFound);
    let removal = store.delete_credential_unless_in_use(alice, CredentialProvider::HETZNER).await.expect("delete");
    assert_eq!(removal, CredentialRemoval::Removed);
    assert!(store.get_credential(alice, CredentialProvider::HETZNER).await.expect("get").is_none());
}

/// A credential is replaced conditionally only while it is what the caller
/// read: of two concurrent renewals one wins, the other sees it lost.
pub async fn credential_compare_and_swap(store: &dyn Store) {
    let alice = new_user(store, unique_github_id()).await;
    let first = credential(alice, &[1, 1], T0);
    assert!(!store.replace_credential_if(&first, &[1, 1]).await.expect("swap missing"), "nothing to replace");
    assert!(store.get_credential(alice, CredentialProvider::HETZNER).await.expect("get").is_none(), "not created");
    store.put_credential(&first).await.expect("put");
    let second = credential(alice, &[2, 2, 0], at(10));
    let third = credential(alice, &[3], at(11));
    assert!(store.replace_credential_if(&second, &[1, 1]).await.expect("swap"), "the first renewal wins");
    assert!(!store.replace_credential_if(&third, &[1, 1]).await.expect("swap stale"), "the second loses");
    let got = store.get_credential(alice, CredentialProvider::HETZNER).await.expect("get").expect("stored");
    assert_eq!(got.ciphertext, vec![2, 2, 0]);
    assert_eq!(got.updated_at, at(10));
    assert_eq!(got.created_at, T0, "creation time kept");
    assert!(!store.replace_credential_if(&third, &[1]).await.expect("prefix"), "a prefix is not a match");
}

/// A credential is not removed while a workspace could need it to clean up,
/// and a workspace that needs one is not inserted without it.
pub async fn credentials_in_use(store: &dyn Store) {
    let hetzner = CredentialProvider::HETZNER;
    let limits = WorkspaceLimits { max_active_per_user: 100, required_credential: None };
    for status in WorkspaceStatus::ALL {
        let owner = new_user(store, unique_github_id()).await;
        store.put_credential(&credential(owner, &[1], T0)).await.expect("put");
        let mut ws = sample_workspace(owner, "uses-token", T0);
        ws.lifecycle = typical_lifecycle(status);
        let blocks = status.is_active() || ws.lifecycle.holds_resources();
        store.insert_workspace(&ws, None, limits).await.expect("insert");
        let outcome = store.delete_credential_unless_in_use(owner, hetzner).await.expect("delete unless in use");
        if blocks {
            assert_eq!(outcome, CredentialRemoval::InUse { workspaces: 1 }, "{status}");
            assert!(store.get_credential(owner, hetzner).await.expect("get").is_some(), "{status}: kept");
        } else {
            assert_eq!(outcome, CredentialRemoval::Removed, "{status}");
            assert!(store.get_credential(owner, hetzner).await.expect("get").is_none(), "{status}: removed");
        }
    }

    // Another user's workspaces do not count; a second removal finds nothing.
    let alice = new_user(store, unique_github_id()).await;
    let bob = new_user(store, unique_github_id()).await;
    store.put_credential(&credential(alice, &[1], T0)).await.expect("put");
    let mut busy = sample_workspace(bob, "busy", T0);
    busy.lifecycle = typical_lifecycle(WorkspaceStatus::Running);
    store.insert_workspace(&busy, None, limits).await.expect("insert");
    assert_eq!(
        store.delete_credential_unless_in_use(alice, hetzner).await.expect("delete"),
        CredentialRemoval::Removed
    );
    assert_eq!(
        store.delete_credential_unless_in_use(alice, hetzner).await.expect("again"),
        CredentialRemoval::NotFound
    );

    // The insert side of the same rule.
    let needs = WorkspaceLimits { required_credential: Some(hetzner), ..limits };
    let err = store.insert_workspace(&sample_workspace(alice, "needs-token", T0), None, needs).await.expect_err("none");
    assert_eq!(err.kind(), StoreErrorKind::CredentialMissing);
    store.put_credential(&credential(alice, &[2], T0)).await.expect("put");
    store.insert_workspace(&sample_workspace(alice, "needs-token", T0), None, needs).await.expect("now it has one");
}
