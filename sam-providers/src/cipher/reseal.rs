//! Re-sealing stored credentials after a key rotation.

use sam_core::domain::{CredentialProvider, Timestamp, UserId};
use sam_core::ports::{Cipher, CipherError, SealContext, Store, StoreError};

/// What [`reseal_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Credentials looked at.
    pub examined: usize,
    /// Credentials re-sealed under the active key.
    pub resealed: usize,
    /// Credentials replaced by their owner while the re-seal ran (left as the
    /// owner wrote them).
    pub skipped_concurrent: usize,
}

/// Why a re-seal stopped. Credentials re-sealed before the failure stay
/// re-sealed; running it again continues where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// The store failed.
    #[error("re-seal: {0}")]
    Store(#[from] StoreError),
    /// A credential could not be opened (or sealed) with the ring.
    #[error("re-seal of the credential of user {user}: {error}")]
    Cipher {
        /// Owner of the credential.
        user: UserId,
        /// What went wrong.
        error: CipherError,
    },
}

/// Re-seals every stored credential of `provider` that was sealed with a key
/// other than `cipher`'s active one (those for which
/// [`Cipher::needs_reseal`] is true), under the context
/// `(owner, provider, purpose)`, and stores it with `updated_at = now`. Safe to
/// run while the server serves requests: both the old and new blob open with
/// the rotated ring, and a credential its owner replaced meanwhile is left
/// alone (the check is a re-read just before the write; the store has no
/// compare-and-swap for credentials, so a replacement landing in that instant
/// can still be overwritten by the re-sealed older token).
pub async fn reseal_all(
    store: &dyn Store,
    cipher: &dyn Cipher,
    provider: CredentialProvider,
    purpose: &str,
    now: Timestamp,
) -> Result<ResealReport, ResealError> {
    let mut report = ResealReport::default();
    for credential in store.list_all_credentials(provider).await? {
        report.examined += 1;
        if !cipher.needs_reseal(&credential.ciphertext) {
            continue;
        }
        let user = credential.user_id;
        let context = SealContext { user_id: user, provider, purpose };
        let plaintext =
            cipher.open(&credential.ciphertext, context).map_err(|error| ResealError::Cipher { user, error })?;
        let sealed = cipher.seal(plaintext.expose(), context).map_err(|error| ResealError::Cipher { user, error })?;
        drop(plaintext);
        let current = store.get_credential(user, provider).await?;
        if current.as_ref().map(|c| &c.ciphertext) != Some(&credential.ciphertext) {
            report.skipped_concurrent += 1;
            continue;
        }
        let mut updated = credential;
        updated.ciphertext = sealed;
        updated.updated_at = now;
        store.put_credential(&updated).await?;
        report.resealed += 1;
        tracing::info!(user = %user, provider = provider.as_str(), "credential re-sealed under the active key");
    }
    Ok(report)
}
