//! Rows back into domain values. Every stored value is checked on the way
//! out: a value that does not parse is [`StoreErrorKind::Corrupt`], never a
//! panic or a default.
//!
//! [`StoreErrorKind::Corrupt`]: sam_core::ports::StoreErrorKind::Corrupt

use std::str::FromStr;

use sam_core::domain::{
    AccessToken, Credential, GithubInstallation, GithubUserId, InstallationId, ServerId, Session, Timestamp, User,
    Workspace, WorkspaceEvent, WorkspaceSpec,
};
use sam_core::lifecycle::{LifecycleState, ServerRef};
use sam_core::ports::{BootstrapToken, StoreError};

use super::Dialect;
use super::errors::db_error;
use super::values::{corrupt, from_ts, parse};

/// The columns of one row, read in the schema's storage types.
pub(super) struct Columns<'r, D: Dialect> {
    row: &'r D::Row,
    context: &'static str,
}

impl<'r, D: Dialect> Columns<'r, D> {
    pub(super) fn new(row: &'r D::Row, context: &'static str) -> Self {
        Self { row, context }
    }

    pub(super) fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        D::text(self.row, column).map_err(db_error(self.context))
    }

    pub(super) fn text(&self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?.ok_or_else(|| corrupt(column))
    }

    pub(super) fn parsed<T: FromStr>(&self, column: &str) -> Result<T, StoreError> {
        parse(&self.text(column)?, column)
    }

    pub(super) fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        D::int(self.row, column).map_err(db_error(self.context))
    }

    pub(super) fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?.ok_or_else(|| corrupt(column))
    }

    pub(super) fn flag(&self, column: &str) -> Result<bool, StoreError> {
        D::flag(self.row, column).map_err(db_error(self.context))
    }

    pub(super) fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        D::bytes(self.row, column).map_err(db_error(self.context))
    }

    pub(super) fn time(&self, column: &str) -> Result<Timestamp, StoreError> {
        from_ts(self.int(column)?)
    }

    pub(super) fn opt_time(&self, column: &str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_int(column)?.map(from_ts).transpose()
    }
}

pub(super) fn user<D: Dialect>(row: &D::Row) -> Result<User, StoreError> {
    let c = Columns::<D>::new(row, "decode user");
    Ok(User {
        id: c.parsed("id")?,
        github_id: GithubUserId(c.int("github_id")?),
        login: c.text("login")?,
        name: c.opt_text("name")?,
        email: c.opt_text("email")?,
        avatar_url: c.opt_text("avatar_url")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}

pub(super) fn access_token<D: Dialect>(row: &D::Row) -> Result<AccessToken, StoreError> {
    let c = Columns::<D>::new(row, "decode access token");
    Ok(AccessToken {
        token_hash: c.text("token_hash")?,
        id: c.text("id")?,
        user_id: c.parsed("user_id")?,
        name: c.text("name")?,
        scope: c.parsed("scope")?,
        created_at: c.time("created_at")?,
        expires_at: c.opt_time("expires_at")?,
        last_used_at: c.opt_time("last_used_at")?,
    })
}

pub(super) fn session<D: Dialect>(row: &D::Row) -> Result<Session, StoreError> {
    let c = Columns::<D>::new(row, "decode session");
    Ok(Session {
        id_hash: c.text("id_hash")?,
        user_id: c.parsed("user_id")?,
        created_at: c.time("created_at")?,
        last_seen_at: c.time("last_seen_at")?,
        expires_at: c.time("expires_at")?,
    })
}

pub(super) fn credential<D: Dialect>(row: &D::Row) -> Result<Credential, StoreError> {
    let c = Columns::<D>::new(row, "decode credential");
    Ok(Credential {
        user_id: c.parsed("user_id")?,
        provider: c.parsed("provider")?,
        ciphertext: c.bytes("ciphertext")?,
        validated_at: c.opt_time("validated_at")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}

pub(super) fn installation<D: Dialect>(row: &D::Row) -> Result<GithubInstallation, StoreError> {
    let c = Columns::<D>::new(row, "decode installation");
    Ok(GithubInstallation {
        id: InstallationId(c.int("id")?),
        account_login: c.text("account_login")?,
        account_type: c.text("account_type")?,
        account_id: GithubUserId(c.int("account_id")?),
        suspended: c.flag("suspended")?,
        removed_at: c.opt_time("removed_at")?,
        updated_at: c.time("updated_at")?,
    })
}

pub(super) fn workspace<D: Dialect>(row: &D::Row) -> Result<Workspace, StoreError> {
    let c = Columns::<D>::new(row, "decode workspace");
    let server = match (c.opt_text("server_id")?, c.opt_text("server_ipv4")?) {
        (Some(id), Some(ip)) => Some(ServerRef { id: ServerId(id), ipv4: parse(&ip, "server address")? }),
        (None, None) => None,
        _ => return Err(corrupt("server reference")),
    };
    let idle_timeout_secs = match c.opt_int("idle_timeout_secs")? {
        Some(n) => Some(u32::try_from(n).map_err(|_| corrupt("idle timeout"))?),
        None => None,
    };
    Ok(Workspace {
        id: c.parsed("id")?,
        owner: c.parsed("owner")?,
        spec: WorkspaceSpec {
            name: c.parsed("name")?,
            repository: c.parsed("repository")?,
            branch: c.parsed("branch")?,
            vm_size: c.parsed("vm_size")?,
            vm_location: c.parsed("vm_location")?,
        },
        installation_id: InstallationId(c.int("installation_id")?),
        lifecycle: LifecycleState {
            status: c.parsed("status")?,
            reason: c.parsed("reason")?,
            server,
            dns_record: c.opt_text("dns_record")?,
            agent_ready: c.flag("agent_ready")?,
            origin_certificate: c.opt_text("origin_certificate")?,
            agent_credential: c.opt_text("agent_credential")?,
            error_message: c.opt_text("error_message")?,
        },
        idle_timeout_secs,
        last_activity_at: c.opt_time("last_activity_at")?,
        last_heartbeat_at: c.opt_time("last_heartbeat_at")?,
        status_changed_at: c.time("status_changed_at")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        version: u64::try_from(c.int("version")?).map_err(|_| corrupt("version"))?,
    })
}

pub(super) fn event<D: Dialect>(row: &D::Row) -> Result<WorkspaceEvent, StoreError> {
    let c = Columns::<D>::new(row, "decode workspace event");
    Ok(WorkspaceEvent {
        workspace_id: c.parsed("workspace_id")?,
        from: c.parsed("from_status")?,
        to: c.parsed("to_status")?,
        event: c.text("event")?,
        reason: c.parsed("reason")?,
        message: c.opt_text("message")?,
        at: c.time("at")?,
    })
}

pub(super) fn bootstrap_token<D: Dialect>(row: &D::Row) -> Result<BootstrapToken, StoreError> {
    let c = Columns::<D>::new(row, "decode bootstrap token");
    Ok(BootstrapToken {
        token_hash: c.text("token_hash")?,
        workspace_id: c.parsed("workspace_id")?,
        owner: c.parsed("owner")?,
        created_at: c.time("created_at")?,
        expires_at: c.time("expires_at")?,
    })
}
