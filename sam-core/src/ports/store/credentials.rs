//! Sealed cloud credentials.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Credential, CredentialProvider, UserId};

/// What [`CredentialStore::delete_credential_unless_in_use`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredentialRemoval {
    /// The credential is gone.
    Removed,
    /// There was none.
    NotFound,
    /// Kept: this many of the owner's workspaces are active or still hold a
    /// server or DNS record, and could not be cleaned up without it.
    InUse {
        /// How many.
        workspaces: u64,
    },
}

/// Each user's sealed cloud credentials, at most one per provider.
///
/// Contract (checked by `testkit::conformance::store::credentials`): every
/// read is scoped by owner; removal and workspace creation exclude each other.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Adds or replaces the user's credential for its provider.
    async fn put_credential(&self, credential: &Credential) -> Result<(), StoreError>;
    /// Replaces the user's credential for its provider only while the stored
    /// ciphertext is still `expected` (compare-and-swap), so of two replicas
    /// that renewed the same token at once, one wins and the other learns it
    /// lost (`false`, also when there is no credential) instead of
    /// overwriting a newer token with an older one.
    async fn replace_credential_if(&self, credential: &Credential, expected: &[u8]) -> Result<bool, StoreError>;
    /// The user's credential for a provider.
    async fn get_credential(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<Option<Credential>, StoreError>;
    /// All credentials of a user.
    async fn list_credentials(&self, owner: UserId) -> Result<Vec<Credential>, StoreError>;
    /// Removes a credential unless one of the owner's workspaces is active
    /// or still holds a server or DNS record, atomically with respect to
    /// [`WorkspaceStore::insert_workspace`](super::WorkspaceStore::insert_workspace) (which takes the same per-owner lock).
    async fn delete_credential_unless_in_use(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<CredentialRemoval, StoreError>;
    /// Every credential of a provider, across users: for key rotation and the
    /// orphan sweep (which must look in every connected account).
    async fn list_all_credentials(&self, provider: CredentialProvider) -> Result<Vec<Credential>, StoreError>;
}
