//! [`CredentialStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::{Credential, CredentialProvider, UserId};
use sam_core::ports::{CredentialRemoval, CredentialStore, StoreError};

use super::errors::db_error;
use super::rows::Columns;
use super::statement::Statement;
use super::{Dialect, SqlStore, active_statuses, rows};

#[async_trait]
impl<D: Dialect> CredentialStore for SqlStore<D> {
    async fn put_credential(&self, credential: &Credential) -> Result<(), StoreError> {
        let statement = Statement::new(
            "INSERT INTO credentials (user_id, provider, ciphertext, validated_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext, \
             validated_at = excluded.validated_at, created_at = excluded.created_at, \
             updated_at = excluded.updated_at",
        )
        .text(credential.user_id.to_string())
        .text(credential.provider.as_str())
        .bytes(&credential.ciphertext)
        .opt_time(credential.validated_at)?
        .time(credential.created_at)?
        .time(credential.updated_at)?;
        self.execute(statement, "put credential").await?;
        Ok(())
    }

    async fn replace_credential_if(&self, credential: &Credential, expected: &[u8]) -> Result<bool, StoreError> {
        let statement = Statement::new(
            "UPDATE credentials SET ciphertext = $3, validated_at = $4, updated_at = $5 \
             WHERE user_id = $1 AND provider = $2 AND ciphertext = $6",
        )
        .text(credential.user_id.to_string())
        .text(credential.provider.as_str())
        .bytes(&credential.ciphertext)
        .opt_time(credential.validated_at)?
        .time(credential.updated_at)?
        .bytes(expected);
        Ok(self.execute(statement, "replace credential").await? == 1)
    }

    async fn get_credential(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<Option<Credential>, StoreError> {
        let statement = Statement::new(
            "SELECT user_id, provider, ciphertext, validated_at, created_at, updated_at FROM credentials \
             WHERE user_id = $1 AND provider = $2",
        )
        .text(owner.to_string())
        .text(provider.as_str());
        self.fetch_optional(statement, "get credential").await?.as_ref().map(rows::credential::<D>).transpose()
    }

    async fn list_credentials(&self, owner: UserId) -> Result<Vec<Credential>, StoreError> {
        let statement = Statement::new(
            "SELECT user_id, provider, ciphertext, validated_at, created_at, updated_at FROM credentials \
             WHERE user_id = $1 ORDER BY provider",
        )
        .text(owner.to_string());
        self.fetch_all(statement, "list credentials").await?.iter().map(rows::credential::<D>).collect()
    }

    async fn delete_credential_unless_in_use(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<CredentialRemoval, StoreError> {
        let owner = owner.to_string();
        let mut tx = self.begin_write().await?;
        // The same per-owner lock as `insert_workspace`, so no workspace is
        // created between the count and the delete.
        D::fetch_optional(&mut tx, Statement::new(D::LOCK_OWNER_SQL).text(owner.as_str()))
            .await
            .map_err(db_error("lock owner"))?;
        let count = Statement::new(concat!(
            "SELECT COUNT(*) AS n FROM workspaces WHERE owner = $1 AND (status IN (",
            active_statuses!(),
            ") OR server_id IS NOT NULL OR dns_record IS NOT NULL)"
        ))
        .text(owner.as_str());
        let context = "count workspaces using a credential";
        let row = D::fetch_optional(&mut tx, count).await.map_err(db_error(context))?;
        let in_use = match &row {
            Some(row) => Columns::<D>::new(row, context).int("n")?,
            None => 0,
        };
        if in_use > 0 {
            return Ok(CredentialRemoval::InUse { workspaces: in_use.unsigned_abs() });
        }
        let delete = Statement::new("DELETE FROM credentials WHERE user_id = $1 AND provider = $2")
            .text(owner.as_str())
            .text(provider.as_str());
        let removed = D::execute(&mut tx, delete).await.map_err(db_error("delete credential"))?;
        tx.commit().await.map_err(db_error("commit"))?;
        Ok(if removed > 0 { CredentialRemoval::Removed } else { CredentialRemoval::NotFound })
    }

    async fn list_all_credentials(&self, provider: CredentialProvider) -> Result<Vec<Credential>, StoreError> {
        let statement = Statement::new(
            "SELECT user_id, provider, ciphertext, validated_at, created_at, updated_at FROM credentials \
             WHERE provider = $1 ORDER BY user_id",
        )
        .text(provider.as_str());
        self.fetch_all(statement, "list all credentials").await?.iter().map(rows::credential::<D>).collect()
    }
}
