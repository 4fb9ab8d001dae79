//! [`WorkspaceStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::{Timestamp, UserId, Workspace, WorkspaceEvent, WorkspaceId};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{StoreChange, StoreError, StoreErrorKind, WorkspaceLimits, WorkspaceScan, WorkspaceStore};
use sqlx::Transaction;

use super::errors::{db_error, is_unique_violation};
use super::rows::{self, Columns};
use super::statement::Statement;
use super::values::{corrupt, status_list};
use super::{Dialect, SqlStore, active_statuses, workspace_columns};

#[async_trait]
impl<D: Dialect> WorkspaceStore for SqlStore<D> {
    async fn insert_workspace(
        &self,
        workspace: &Workspace,
        event: Option<&WorkspaceEvent>,
        limits: WorkspaceLimits,
    ) -> Result<Workspace, StoreError> {
        let owner = workspace.owner.to_string();
        let mut tx = self.begin_write().await?;
        // Serialises inserts per owner (Postgres: row lock; SQLite: the write
        // transaction already excludes every other writer).
        let user = D::fetch_optional(&mut tx, Statement::new(D::LOCK_OWNER_SQL).text(owner.as_str()))
            .await
            .map_err(db_error("lock owner"))?;
        if user.is_none() {
            return Err(StoreError::new(StoreErrorKind::NotFound, "user not found"));
        }
        check_insert(&mut tx, workspace, &owner, limits).await?;
        let insert = bind_workspace(
            Statement::new(concat!(
                "INSERT INTO workspaces (",
                workspace_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $20, $21, \
                 $17, $18, $19, 1, $22, $23) RETURNING ",
                workspace_columns!()
            )),
            workspace,
        )?
        .opt_time(workspace.last_activity_at)?
        .opt_time(workspace.last_heartbeat_at)?
        .opt_text(workspace.lifecycle.origin_certificate.as_deref())
        .opt_text(workspace.lifecycle.agent_credential.as_deref());
        let row = D::fetch_optional(&mut tx, insert).await.map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name or id already exists")
            } else {
                db_error("insert workspace")(err)
            }
        })?;
        let stored = rows::workspace::<D>(&row.ok_or_else(|| corrupt("inserted workspace"))?)?;
        if let Some(event) = event {
            insert_event::<D>(&mut tx, workspace.id, event).await?;
        }
        tx.commit().await.map_err(db_error("commit workspace insert"))?;
        self.changed(StoreChange::Workspaces(stored.owner));
        Ok(stored)
    }

    async fn get_workspace(&self, owner: UserId, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let statement =
            Statement::new(concat!("SELECT ", workspace_columns!(), " FROM workspaces WHERE id = $1 AND owner = $2"))
                .text(id.to_string())
                .text(owner.to_string());
        self.fetch_optional(statement, "get workspace").await?.as_ref().map(rows::workspace::<D>).transpose()
    }

    async fn list_workspaces(
        &self,
        owner: UserId,
        status: Option<WorkspaceStatus>,
    ) -> Result<Vec<Workspace>, StoreError> {
        let statement = Statement::new(concat!(
            "SELECT ",
            workspace_columns!(),
            " FROM workspaces WHERE owner = $1 AND ($2 IS NULL OR status = $2) ORDER BY created_at DESC, id DESC"
        ))
        .text(owner.to_string())
        .opt_text(status.map(|s| s.as_str()));
        self.fetch_all(statement, "list workspaces").await?.iter().map(rows::workspace::<D>).collect()
    }

    async fn update_workspace(
        &self,
        workspace: &Workspace,
        events: &[WorkspaceEvent],
    ) -> Result<Workspace, StoreError> {
        let version = i64::try_from(workspace.version)
            .map_err(|_| StoreError::new(StoreErrorKind::StaleVersion, "version out of range"))?;
        // The heartbeat columns are not written: only `record_heartbeat` does.
        let update = bind_workspace(
            Statement::new(concat!(
                "UPDATE workspaces SET name = $3, repository = $4, branch = $5, vm_size = $6, \
                 vm_location = $7, installation_id = $8, status = $9, reason = $10, server_id = $11, \
                 server_ipv4 = $12, dns_record = $13, agent_ready = $14, error_message = $15, \
                 idle_timeout_secs = $16, status_changed_at = $17, created_at = $18, updated_at = $19, \
                 origin_certificate = $21, agent_credential = $22, version = version + 1 \
                 WHERE id = $1 AND owner = $2 AND version = $20 RETURNING ",
                workspace_columns!()
            )),
            workspace,
        )?
        .int(version)
        .opt_text(workspace.lifecycle.origin_certificate.as_deref())
        .opt_text(workspace.lifecycle.agent_credential.as_deref());
        let mut tx = self.begin_write().await?;
        let row = D::fetch_optional(&mut tx, update).await.map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name already exists")
            } else {
                db_error("update workspace")(err)
            }
        })?;
        let Some(row) = row else {
            drop(tx);
            return Err(self.stale_or_missing(workspace.owner, workspace.id).await);
        };
        let stored = rows::workspace::<D>(&row)?;
        for event in events {
            insert_event::<D>(&mut tx, workspace.id, event).await?;
        }
        tx.commit().await.map_err(db_error("commit workspace update"))?;
        self.changed(StoreChange::Workspaces(stored.owner));
        Ok(stored)
    }

    async fn record_heartbeat(
        &self,
        owner: UserId,
        id: WorkspaceId,
        at: Timestamp,
        last_activity_at: Timestamp,
    ) -> Result<bool, StoreError> {
        // Activity only moves forward: a late heartbeat never rolls it back.
        let statement = Statement::new(
            "UPDATE workspaces SET last_heartbeat_at = $3, last_activity_at = CASE \
             WHEN last_activity_at IS NULL OR last_activity_at < $4 THEN $4 ELSE last_activity_at END \
             WHERE id = $1 AND owner = $2",
        )
        .text(id.to_string())
        .text(owner.to_string())
        .time(at)?
        .time(last_activity_at)?;
        let found = self.execute(statement, "record heartbeat").await? > 0;
        if found {
            self.changed(StoreChange::Workspaces(owner));
        }
        Ok(found)
    }

    async fn delete_workspace(&self, owner: UserId, id: WorkspaceId, expected_version: u64) -> Result<(), StoreError> {
        let version = i64::try_from(expected_version)
            .map_err(|_| StoreError::new(StoreErrorKind::StaleVersion, "version out of range"))?;
        // Events and bootstrap tokens go with the row (ON DELETE CASCADE).
        let statement = Statement::new("DELETE FROM workspaces WHERE id = $1 AND owner = $2 AND version = $3")
            .text(id.to_string())
            .text(owner.to_string())
            .int(version);
        if self.execute(statement, "delete workspace").await? > 0 {
            self.changed(StoreChange::Workspaces(owner));
            return Ok(());
        }
        Err(self.stale_or_missing(owner, id).await)
    }

    async fn list_workspace_events(&self, owner: UserId, id: WorkspaceId) -> Result<Vec<WorkspaceEvent>, StoreError> {
        // One statement, so the ownership check and the history are one snapshot.
        let statement = Statement::new(
            "SELECT w.id AS owner_check, e.workspace_id, e.from_status, e.to_status, e.event, e.reason, \
             e.message, e.at FROM workspaces w LEFT JOIN workspace_events e ON e.workspace_id = w.id \
             WHERE w.id = $1 AND w.owner = $2 ORDER BY e.seq",
        )
        .text(id.to_string())
        .text(owner.to_string());
        let found = self.fetch_all(statement, "list workspace events").await?;
        if found.is_empty() {
            return Err(StoreError::new(StoreErrorKind::NotFound, "workspace not found"));
        }
        let mut events = Vec::with_capacity(found.len());
        for row in &found {
            // The workspace without events is one row of NULLs.
            if Columns::<D>::new(row, "decode workspace event").opt_text("workspace_id")?.is_some() {
                events.push(rows::event::<D>(row)?);
            }
        }
        Ok(events)
    }

    async fn scan_workspaces(&self, scan: &WorkspaceScan) -> Result<Vec<Workspace>, StoreError> {
        // Two statements rather than `($2 IS NULL OR id > $2)`: with the OR the
        // planner cannot seek the id index, and every page would rescan from
        // the first row (quadratic over a large table).
        let statement = match scan.after {
            Some(after) => Statement::new(concat!(
                "SELECT ",
                workspace_columns!(),
                " FROM workspaces WHERE id > $2 AND ($1 = '' OR $1 LIKE '%,' || status || ',%') ORDER BY id LIMIT $3"
            ))
            .text(status_list(&scan.statuses))
            .text(after.to_string()),
            None => Statement::new(concat!(
                "SELECT ",
                workspace_columns!(),
                " FROM workspaces WHERE ($1 = '' OR $1 LIKE '%,' || status || ',%') ORDER BY id LIMIT $2"
            ))
            .text(status_list(&scan.statuses)),
        }
        .int(i64::from(scan.limit));
        self.fetch_all(statement, "scan workspaces").await?.iter().map(rows::workspace::<D>).collect()
    }

    async fn count_workspaces_by_status(&self) -> Result<Vec<(WorkspaceStatus, u64)>, StoreError> {
        let statement = Statement::new("SELECT status, COUNT(*) AS n FROM workspaces GROUP BY status");
        let context = "count workspaces";
        let mut counts = Vec::new();
        for row in &self.fetch_all(statement, context).await? {
            let c = Columns::<D>::new(row, context);
            counts.push((c.parsed("status")?, u64::try_from(c.int("n")?).unwrap_or(0)));
        }
        Ok(counts)
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Why a conditional write on a workspace changed nothing: it exists at
    /// another version, or not at all (for this owner).
    async fn stale_or_missing(&self, owner: UserId, id: WorkspaceId) -> StoreError {
        let statement = Statement::new("SELECT 1 AS one FROM workspaces WHERE id = $1 AND owner = $2")
            .text(id.to_string())
            .text(owner.to_string());
        match self.fetch_optional(statement, "look up workspace").await {
            Ok(Some(_)) => StoreError::new(StoreErrorKind::StaleVersion, "workspace changed since it was read"),
            Ok(None) => StoreError::new(StoreErrorKind::NotFound, "workspace not found"),
            Err(err) => err,
        }
    }
}

/// The name, credential and quota checks of an insert, inside its transaction.
async fn check_insert<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    workspace: &Workspace,
    owner: &str,
    limits: WorkspaceLimits,
) -> Result<(), StoreError> {
    let taken = Statement::new("SELECT 1 AS one FROM workspaces WHERE owner = $1 AND name = $2")
        .text(owner)
        .text(workspace.spec.name.as_str());
    if D::fetch_optional(tx, taken).await.map_err(db_error("check workspace name"))?.is_some() {
        return Err(StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name already exists"));
    }
    if let Some(provider) = limits.required_credential {
        let held = Statement::new("SELECT 1 AS one FROM credentials WHERE user_id = $1 AND provider = $2")
            .text(owner)
            .text(provider.as_str());
        if D::fetch_optional(tx, held).await.map_err(db_error("check credential"))?.is_none() {
            return Err(StoreError::new(StoreErrorKind::CredentialMissing, "no credential for the workspace's cloud"));
        }
    }
    if workspace.status().is_active() {
        let count = Statement::new(concat!(
            "SELECT COUNT(*) AS n FROM workspaces WHERE owner = $1 AND status IN (",
            active_statuses!(),
            ")"
        ))
        .text(owner);
        let context = "count active workspaces";
        let active = match D::fetch_optional(tx, count).await.map_err(db_error(context))? {
            Some(row) => Columns::<D>::new(&row, context).int("n")?,
            None => 0,
        };
        if active >= i64::from(limits.max_active_per_user) {
            return Err(StoreError::new(
                StoreErrorKind::QuotaExceeded,
                format!("at most {} active workspaces per user", limits.max_active_per_user),
            ));
        }
    }
    Ok(())
}

/// Binds `$1`–`$19`, the columns an insert and an update both write: id,
/// owner, spec, lifecycle, idle timeout and the three timestamps
/// (`status_changed_at`, `created_at`, `updated_at` as `$17`–`$19`).
fn bind_workspace(statement: Statement, w: &Workspace) -> Result<Statement, StoreError> {
    let server = w.lifecycle.server.as_ref();
    statement
        .text(w.id.to_string())
        .text(w.owner.to_string())
        .text(w.spec.name.as_str())
        .text(w.spec.repository.as_str())
        .text(w.spec.branch.as_str())
        .text(w.spec.vm_size.as_str())
        .text(w.spec.vm_location.as_str())
        .int(w.installation_id.0)
        .text(w.lifecycle.status.as_str())
        .text(w.lifecycle.reason.as_str())
        .opt_text(server.map(|s| s.id.0.clone()))
        .opt_text(server.map(|s| s.ipv4.to_string()))
        .opt_text(w.lifecycle.dns_record.as_deref())
        .flag(w.lifecycle.agent_ready)
        .opt_text(w.lifecycle.error_message.as_deref())
        .opt_int(w.idle_timeout_secs.map(i64::from))
        .time(w.status_changed_at)?
        .time(w.created_at)?
        .time(w.updated_at)
}

/// Appends one event to a workspace's history inside `tx`.
async fn insert_event<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    workspace: WorkspaceId,
    event: &WorkspaceEvent,
) -> Result<(), StoreError> {
    let statement = Statement::new(
        "INSERT INTO workspace_events (workspace_id, from_status, to_status, event, reason, message, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .text(workspace.to_string())
    .text(event.from.as_str())
    .text(event.to.as_str())
    .text(event.event.as_str())
    .text(event.reason.as_str())
    .opt_text(event.message.as_deref())
    .time(event.at)?;
    D::execute(tx, statement).await.map_err(db_error("append workspace event"))?;
    Ok(())
}
