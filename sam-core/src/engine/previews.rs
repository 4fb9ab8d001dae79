//! Previews of the ports a workspace serves (`p<port>-ws-<id>.<base>`,
//! answered by its agent): the owner's one-time sign-in for a preview host
//! and, for the edge in front of the agent, the preview host's DNS record
//! (pointing where the workspace's own record points) and a certificate
//! for the agent; all released with the workspace.
//!
//! Nothing about previews is stored: the zone is the record of which
//! preview names exist (listed by the `p` prefix, each parsed back to its
//! workspace), and the Origin CA lists the certificates issued for a name.

use crate::domain::{Workspace, WorkspaceId};
use crate::lifecycle::WorkspaceStatus;
use crate::ports::{Audience, DnsRecord, ProviderError};

use super::retry::with_retry;
use super::{Engine, EngineError, EngineErrorKind, TerminalAccess, UserId};

/// Preview host names one workspace may have at a time (each a DNS record
/// and a certificate).
pub const MAX_PREVIEW_HOSTS: usize = 16;

/// What an agent gets for serving a preview host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewCertificate {
    /// The preview's host name.
    pub hostname: String,
    /// The certificate (PEM) for exactly that name, signed from the agent's
    /// request; `None` when the deployment has no Origin CA (no TLS to the
    /// agents).
    pub certificate_pem: Option<String>,
}

fn invalid(field: &'static str, message: &str) -> EngineError {
    EngineError { kind: EngineErrorKind::Invalid, message: message.to_owned(), field: Some(field) }
}

fn running(ws: &Workspace) -> Result<(), EngineError> {
    if ws.status() == WorkspaceStatus::Running {
        Ok(())
    } else {
        Err(EngineError::new(
            EngineErrorKind::InvalidState,
            format!("The workspace is {}; start it first.", ws.status()),
        ))
    }
}

impl Engine {
    /// A short-lived `workspace-preview` token of the owner for the preview
    /// of `port`, and where to redeem it: the preview host's callback,
    /// moving on to `path` there. The workspace must be running; the port
    /// need not be reported yet (a server started a moment ago). The
    /// token is single-use, tied to the sign-in `session` like a terminal's.
    pub async fn issue_preview_token(
        &self,
        owner: UserId,
        id: WorkspaceId,
        port: u16,
        path: &str,
        session: Option<&str>,
    ) -> Result<TerminalAccess, EngineError> {
        let ws = self.get(owner, id).await?;
        running(&ws)?;
        let host =
            self.hosts.preview_host(&id, port).ok_or_else(|| invalid("port", "port must be a TCP port (1-65535)"))?;
        let path =
            if path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\") { path } else { "/" };
        let issued = self.issue_workspace_token(Audience::WorkspacePreview, owner, id, session)?;
        let origin = self.config.workspace_url_template.replace("{host}", &host);
        let url = format!(
            "{origin}{}?token={}&next={}",
            crate::wire::PREVIEW_CALLBACK_PATH,
            issued.token.expose(),
            crate::wire::url_encode(path)
        );
        Ok(TerminalAccess { token: issued.token, expires_at: issued.expires_at, url })
    }

    /// For the agent of running workspace `ws`: the DNS record of the
    /// preview host of `port` (pointing where the workspace's own record
    /// points, marked with the deployment) and, with a certificate request
    /// and an Origin CA, a certificate for that name. Idempotent; at most
    /// [`MAX_PREVIEW_HOSTS`] names per workspace.
    pub async fn issue_preview_certificate(
        &self,
        ws: Workspace,
        port: u16,
        csr: Option<&str>,
    ) -> Result<PreviewCertificate, EngineError> {
        running(&ws)?;
        let hostname = self
            .hosts
            .preview_host(&ws.id, port)
            .ok_or_else(|| invalid("port", "port must be a TCP port (1-65535)"))?;
        if let Some(csr) = csr
            && (csr.len() > 16 * 1024 || !csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"))
        {
            return Err(invalid("csr", "csr must be a PEM certificate request"));
        }
        let own = self.hosts.host(&ws.id);
        let dns = &self.dns;
        let records = with_retry(self.config.retry, "list_dns", ws.id, || dns.list_records(&own)).await?;
        let Some(ipv4) = records.iter().find(|r| r.name.eq_ignore_ascii_case(&own)).map(|r| r.ipv4) else {
            return Err(EngineError::new(EngineErrorKind::InvalidState, "The workspace has no DNS record yet."));
        };
        let existing = self.preview_records(ws.id).await?;
        if !existing.iter().any(|r| r.name.eq_ignore_ascii_case(&hostname)) && existing.len() >= MAX_PREVIEW_HOSTS {
            return Err(EngineError::new(
                EngineErrorKind::InvalidState,
                format!("A workspace has at most {MAX_PREVIEW_HOSTS} preview names."),
            ));
        }
        let deployment = &self.config.deployment;
        with_retry(self.config.retry, "upsert_preview_dns", ws.id, || dns.upsert_a_record(&hostname, ipv4, deployment))
            .await?;
        let certificate_pem = match (csr, &self.origin_ca) {
            (Some(csr), Some(ca)) => {
                let issued = with_retry(self.config.retry, "issue_preview_certificate", ws.id, || {
                    super::metered::metered("origin_ca", "issue_origin_certificate", ca.issue(csr, &hostname))
                })
                .await?;
                tracing::info!(workspace_id = %ws.id, %hostname, certificate = %issued.id, "preview certificate issued");
                Some(issued.certificate_pem)
            }
            _ => None,
        };
        Ok(PreviewCertificate { hostname, certificate_pem })
    }

    /// The preview records of workspace `id` in the zone.
    pub(crate) async fn preview_records(&self, id: WorkspaceId) -> Result<Vec<DnsRecord>, ProviderError> {
        let dns = &self.dns;
        let all = with_retry(self.config.retry, "list_dns", id, || dns.list_records("p")).await?;
        Ok(all.into_iter().filter(|r| self.hosts.preview_of(&r.name).is_some_and(|(w, _)| w == id)).collect())
    }

    /// Revokes the certificates of workspace `ws`'s preview names and
    /// deletes their records (before the workspace's own record and its
    /// servers go). `Err` while anything is left, to be retried.
    pub(crate) async fn release_previews(&self, ws: &Workspace) -> Result<(), ProviderError> {
        let records = self.preview_records(ws.id).await?;
        for record in records {
            self.release_preview_name(ws.id, &record.name).await?;
        }
        Ok(())
    }

    /// Revokes every certificate issued for preview name `name`, then
    /// deletes its record.
    pub(crate) async fn release_preview_name(&self, id: WorkspaceId, name: &str) -> Result<(), ProviderError> {
        if let Some(ca) = &self.origin_ca {
            let list = || super::metered::metered("origin_ca", "list_origin_certificates", ca.certificates_for(name));
            for certificate in with_retry(self.config.retry, "list_origin_certificates", id, list).await? {
                let revoke =
                    || super::metered::metered("origin_ca", "revoke_origin_certificate", ca.revoke(&certificate));
                with_retry(self.config.retry, "revoke_origin_certificate", id, revoke).await?;
            }
        }
        let dns = &self.dns;
        with_retry(self.config.retry, "delete_dns", id, || dns.delete_records(name)).await?;
        tracing::info!(workspace_id = %id, %name, "preview name released");
        Ok(())
    }
}
