//! Driving one workspace: derive the next step from its stored state, perform
//! it through the ports, persist the resulting event; repeat until there is
//! nothing to do right now.

use std::net::Ipv4Addr;

use super::messages::{self, Placement};
use super::retry::with_retry;
use super::{Engine, EngineError};
use crate::cloud_init::{CloudInitParams, render};
use crate::domain::{UserId, Workspace, WorkspaceId};
use crate::lifecycle::{Effect, Event, ServerRef, WorkspaceStatus};
use crate::ports::{BootstrapToken, ProviderErrorKind, ServerSpec, StoreErrorKind};
use crate::secret::{SecretString, random_token, sha256_hex};

/// Where [`Engine::drive`] left a workspace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DriveOutcome {
    /// Nothing more to do now (running, stopped, waiting for the agent, or a
    /// retryable failure left for the reconciler).
    Settled(Box<Workspace>),
    /// The workspace was deleted and its row removed.
    Removed,
    /// Another engine (or task) holds the workspace's lease and is driving it.
    Busy,
}

/// What the stored state says must happen next.
enum Step {
    CreateServer,
    UpsertDns(Ipv4Addr),
    Cleanup,
    Nothing,
}

fn next_step(ws: &Workspace) -> Step {
    let lc = &ws.lifecycle;
    match lc.status {
        WorkspaceStatus::Creating => match (&lc.server, &lc.dns_record) {
            (None, _) => Step::CreateServer,
            (Some(server), None) => Step::UpsertDns(server.ipv4),
            (Some(_), Some(_)) => Step::Nothing,
        },
        WorkspaceStatus::Stopping | WorkspaceStatus::Deleting => Step::Cleanup,
        WorkspaceStatus::Error if lc.holds_resources() => Step::Cleanup,
        _ => Step::Nothing,
    }
}

/// Upper bound on steps in one drive: a full provisioning is three, a cleanup
/// two; the rest absorbs concurrent changes.
const MAX_STEPS: usize = 12;

pub(crate) fn lease_key(id: WorkspaceId) -> String {
    format!("workspace:{id}")
}

impl Engine {
    /// A lease holder name unique to one drive or pass: leases are re-entrant
    /// for their holder, so sharing a name between two concurrent tasks of
    /// this engine would let both drive one workspace.
    pub(crate) fn holder(&self, purpose: &str) -> String {
        format!("{}:{purpose}:{}", self.id, uuid::Uuid::new_v4().simple())
    }

    /// Performs whatever the workspace needs next, under its lease, until it is
    /// settled. Safe to call at any time, from any replica, any number of times.
    pub async fn drive(&self, owner: UserId, id: WorkspaceId) -> Result<DriveOutcome, EngineError> {
        let key = lease_key(id);
        let holder = self.holder("drive");
        let mut rounds = 0;
        loop {
            if !self.ports.store.try_acquire_lease(&key, &holder, self.config.lease_ttl, self.now()).await? {
                return Ok(DriveOutcome::Busy);
            }
            let outcome = self.drive_leased(owner, id, &key, &holder, None).await;
            if let Err(e) = self.ports.store.release_lease(&key, &holder).await {
                tracing::warn!(workspace_id = %id, error = %e, "lease release failed; it will expire");
            }
            // A user action recorded between our last look and the release
            // found the lease taken and left its work to us (its own drive
            // returned `Busy`): look once more rather than leave it for the
            // reconciler's next pass.
            rounds += 1;
            if let Ok(DriveOutcome::Settled(settled)) = &outcome
                && rounds < 3
                && let Some(now) = self.ports.store.get_workspace(owner, id).await?
                && now.version != settled.version
                && !matches!(next_step(&now), Step::Nothing)
            {
                continue;
            }
            return outcome;
        }
    }

    /// Drives a workspace whose lease `holder` already has, first applying
    /// `event` (from the reconciler) if given.
    pub(crate) async fn drive_leased(
        &self,
        owner: UserId,
        id: WorkspaceId,
        key: &str,
        holder: &str,
        mut event: Option<Event>,
    ) -> Result<DriveOutcome, EngineError> {
        for _ in 0..MAX_STEPS {
            if !self.ports.store.try_acquire_lease(key, holder, self.config.lease_ttl, self.now()).await? {
                return Ok(DriveOutcome::Busy);
            }
            let Some(ws) = self.ports.store.get_workspace(owner, id).await? else {
                return Ok(DriveOutcome::Removed);
            };
            if let Some(event) = event.take() {
                // A reconciler decision; if the state moved on meanwhile, drop it.
                if self.record(ws, &event).await? == Some(Recorded::Removed) {
                    return Ok(DriveOutcome::Removed);
                }
                continue;
            }
            let version = ws.version;
            let progressed = match next_step(&ws) {
                Step::Nothing => return Ok(DriveOutcome::Settled(Box::new(ws))),
                Step::CreateServer => self.create_server(ws).await?,
                Step::UpsertDns(ipv4) => self.upsert_dns(ws, ipv4).await?,
                Step::Cleanup => match self.cleanup(ws).await? {
                    Some(Recorded::Removed) => return Ok(DriveOutcome::Removed),
                    Some(Recorded::Saved) => true,
                    // Said why; retrying at once would fail the same way.
                    Some(Recorded::Blocked) => {
                        let ws = self.ports.store.get_workspace(owner, id).await?;
                        return Ok(ws.map_or(DriveOutcome::Removed, |ws| DriveOutcome::Settled(Box::new(ws))));
                    }
                    None => false,
                },
            };
            if !progressed {
                let Some(now) = self.ports.store.get_workspace(owner, id).await? else {
                    return Ok(DriveOutcome::Removed);
                };
                if now.version != version {
                    // Someone else (a user action, another replica) changed it
                    // while the step ran: look again instead of waiting for
                    // the reconciler, e.g. delete the server a restart just
                    // created for a workspace that is now being deleted.
                    continue;
                }
                // A retryable failure: leave it for the reconciler's next pass.
                return Ok(DriveOutcome::Settled(Box::new(now)));
            }
        }
        let ws = self.ports.store.get_workspace(owner, id).await?;
        Ok(ws.map_or(DriveOutcome::Removed, |ws| DriveOutcome::Settled(Box::new(ws))))
    }

    /// Applies `event`, persists it, and performs the cleanup effects it asks
    /// for at once (so a server created behind our back by a lost response is
    /// removed immediately, not only by the orphan sweep). `None` when the event
    /// no longer applies or the row changed meanwhile.
    async fn record(&self, mut ws: Workspace, event: &Event) -> Result<Option<Recorded>, EngineError> {
        let now = self.now();
        let (entry, effects) = match ws.apply(event, now) {
            Ok(applied) => applied,
            Err(e) => {
                tracing::debug!(workspace_id = %ws.id, event = event.name(), why = e.why, "event no longer applies");
                return Ok(None);
            }
        };
        let saved = match self.ports.store.update_workspace(&ws, &[entry]).await {
            Ok(saved) => saved,
            Err(e) if matches!(e.kind(), StoreErrorKind::StaleVersion | StoreErrorKind::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(
            workspace_id = %saved.id,
            event = event.name(),
            status = %saved.status(),
            reason = %saved.lifecycle.reason,
            "workspace transition"
        );
        if effects.contains(&Effect::RemoveWorkspace) {
            return match self.ports.store.delete_workspace(saved.owner, saved.id, saved.version).await {
                Ok(()) => {
                    tracing::info!(workspace_id = %saved.id, "workspace removed");
                    Ok(Some(Recorded::Removed))
                }
                Err(e) if e.kind() == StoreErrorKind::StaleVersion => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        if effects.contains(&Effect::DeleteServer) || effects.contains(&Effect::DeleteDns) {
            // At once; if it fails, the state-derived cleanup step repeats it.
            return Ok(Some(Box::pin(self.cleanup(saved)).await?.unwrap_or(Recorded::Saved)));
        }
        Ok(Some(Recorded::Saved))
    }

    async fn fail_provisioning(&self, ws: Workspace, message: String) -> Result<bool, EngineError> {
        tracing::warn!(workspace_id = %ws.id, message = %message, "provisioning failed");
        Ok(self.record(ws, &Event::ProvisioningFailed { message }).await?.is_some())
    }

    async fn create_server(&self, ws: Workspace) -> Result<bool, EngineError> {
        let token = match self.cloud_token(ws.owner).await {
            Ok(token) => token,
            Err(message) => return self.fail_provisioning(ws, message).await,
        };
        // The firewall first: a server must never run without it.
        let firewall = match self.ensure_firewall(&token, ws.id).await {
            Ok(firewall) => firewall,
            Err(e) if e.is_retryable() => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "firewall not ready; server creation deferred");
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "firewall failed");
                return self.fail_provisioning(ws, messages::firewall_failure(&e)).await;
            }
        };
        let bootstrap = match random_token() {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(workspace_id = %ws.id, error = %e, "no randomness for a bootstrap token");
                return Ok(false);
            }
        };
        let now = self.now();
        self.ports
            .store
            .create_bootstrap_token(&BootstrapToken {
                token_hash: sha256_hex(bootstrap.expose().as_bytes()),
                workspace_id: ws.id,
                owner: ws.owner,
                created_at: now,
                expires_at: now + self.config.bootstrap_token_ttl,
            })
            .await?;
        let user_data = match render(&CloudInitParams {
            control_plane_url: &self.config.control_plane_url,
            bootstrap_token: bootstrap.expose(),
            agent_sha256: self.config.agent_sha256_amd64.as_deref(),
            agent_sha256_arm64: self.config.agent_sha256_arm64.as_deref(),
            agent_tls: self.origin_ca.is_some(),
        }) {
            Ok(data) => data,
            Err(e) => return self.fail_provisioning(ws, format!("SAM is misconfigured: {e}")).await,
        };
        let spec = ServerSpec {
            workspace_id: ws.id,
            deployment: self.config.deployment.clone(),
            name: ws.id.dns_label(),
            size: ws.spec.vm_size,
            architectures: self.config.server_architectures(),
            location: ws.spec.vm_location.to_string(),
            image: self.config.server_image.clone(),
            user_data,
            labels: Default::default(),
            firewall,
        };
        let compute = &self.compute;
        let created =
            with_retry(self.config.retry, "create_server", ws.id, || compute.create_server(&token, &spec)).await;
        let server = match created {
            Ok(server) => server,
            // Capacity shortages last minutes to hours; after the in-step
            // retries the user is better served by "try another location".
            Err(e) if e.is_retryable() && e.kind() != ProviderErrorKind::Capacity => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "server creation deferred");
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "server creation failed");
                let placement = Placement { size: ws.spec.vm_size.as_str(), location: ws.spec.vm_location.as_str() };
                let message = messages::provider_failure(&e, Some(placement));
                return self.fail_provisioning(ws, message).await;
            }
        };
        let ipv4 = match server.public_ipv4 {
            Some(ip) => ip,
            None => match self.wait_for_address(&token, &ws, &server.id).await {
                Some(ip) => ip,
                None => return Ok(false),
            },
        };
        tracing::info!(workspace_id = %ws.id, server_id = %server.id, "server created");
        Ok(self.record(ws, &Event::ServerCreated(ServerRef { id: server.id, ipv4 })).await?.is_some())
    }

    async fn wait_for_address(
        &self,
        token: &SecretString,
        ws: &Workspace,
        id: &crate::domain::ServerId,
    ) -> Option<Ipv4Addr> {
        let compute = &self.compute;
        match with_retry(self.config.retry, "get_server", ws.id, || compute.get_server(token, id)).await {
            Ok(Some(server)) => server.public_ipv4,
            _ => None,
        }
    }

    async fn upsert_dns(&self, ws: Workspace, ipv4: Ipv4Addr) -> Result<bool, EngineError> {
        let name = self.config.hostname(&ws.id);
        let dns = &self.dns;
        match with_retry(self.config.retry, "upsert_dns", ws.id, || {
            dns.upsert_a_record(&name, ipv4, &self.config.deployment)
        })
        .await
        {
            Ok(record) => Ok(self.record(ws, &Event::DnsRecordSet { record_id: record.id }).await?.is_some()),
            Err(e) if e.is_retryable() => Ok(false),
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "DNS record failed");
                self.fail_provisioning(ws, messages::dns_failure(&e)).await
            }
        }
    }

    /// Removes the workspace's servers and DNS record, then records that.
    async fn cleanup(&self, ws: Workspace) -> Result<Option<Recorded>, EngineError> {
        if let Err(blocked) = self.release_resources(&ws, None).await {
            // Say why on the workspace (once per distinct reason); a failed
            // workspace keeps its own message, the log says the rest.
            return match blocked {
                Some(message)
                    if matches!(ws.status(), WorkspaceStatus::Stopping | WorkspaceStatus::Deleting)
                        && ws.lifecycle.error_message.as_deref() != Some(message.as_str()) =>
                {
                    let recorded = self.record(ws, &Event::CleanupBlocked { message }).await?;
                    Ok(recorded.map(|_| Recorded::Blocked))
                }
                _ => Ok(None),
            };
        }
        let event = if ws.status() == WorkspaceStatus::Deleting { Event::CleanupFinished } else { Event::StopFinished };
        self.record(ws, &event).await
    }

    /// Revokes the agent's origin certificates, deletes the workspace's DNS
    /// records (its previews' and its own), then every server labelled for it
    /// (and the recorded one). DNS goes first: a server is deleted only once
    /// no record points at it, so its address, which the provider may give to
    /// someone else, is never left behind a `ws-<id>` name. `true` when both
    /// are confirmed gone; otherwise what the user should know, if anything
    /// (a record that cannot be deleted), everything being retried.
    pub(crate) async fn release_resources(
        &self,
        ws: &Workspace,
        token: Option<&SecretString>,
    ) -> Result<(), Option<String>> {
        let name = self.config.hostname(&ws.id);
        if let Some(ca) = &self.origin_ca {
            // The recorded certificate, and any a lost answer or a restart
            // left unrecorded: every one issued for the name.
            let list = || super::metered::metered("origin_ca", "list_origin_certificates", ca.certificates_for(&name));
            let mut ids = match with_retry(self.config.retry, "list_origin_certificates", ws.id, list).await {
                Ok(ids) => ids,
                Err(e) if e.kind().is_retryable() => {
                    tracing::warn!(workspace_id = %ws.id, error = %e, "origin certificates not listed; retried");
                    return Err(None);
                }
                // A refusal (the token lost the permission) will not pass:
                // the recorded certificate is still revoked below, and the
                // server and record are released regardless.
                Err(e) => {
                    tracing::warn!(workspace_id = %ws.id, error = %e, "origin certificates cannot be listed; releasing the rest");
                    Vec::new()
                }
            };
            ids.extend(
                ws.lifecycle.origin_certificate.iter().filter(|id| !ids.contains(id)).cloned().collect::<Vec<_>>(),
            );
            for id in &ids {
                let revoke = || super::metered::metered("origin_ca", "revoke_origin_certificate", ca.revoke(id));
                match with_retry(self.config.retry, "revoke_origin_certificate", ws.id, revoke).await {
                    Ok(()) => {}
                    Err(e) if e.kind().is_retryable() => {
                        tracing::warn!(workspace_id = %ws.id, error = %e, "origin certificate not revoked; retried");
                        return Err(None);
                    }
                    // Refused for good: it expires by itself, and only
                    // Cloudflare's edge trusts it; the rest is released.
                    Err(e) => tracing::warn!(workspace_id = %ws.id, certificate = %id, error = %e,
                        "origin certificate cannot be revoked"),
                }
            }
        }
        // Preview names point at the same address: they go first too.
        if let Err(e) = self.release_previews(ws).await {
            tracing::warn!(workspace_id = %ws.id, error = %e, "preview names not released; the server is kept, retried");
            return Err((!e.is_retryable()).then(|| messages::cleanup_blocked(&format!("p<port>-{name}"), &e)));
        }
        let dns = &self.dns;
        if let Err(e) = with_retry(self.config.retry, "delete_dns", ws.id, || dns.delete_records(&name)).await {
            tracing::warn!(
                workspace_id = %ws.id,
                error = %e,
                "DNS record deletion failed; the server is kept until the record is gone, and both are retried"
            );
            return Err(Some(messages::cleanup_blocked(&name, &e)));
        }
        let deleted = match token {
            Some(token) => self.delete_servers(ws, token).await,
            None => match self.cloud_token(ws.owner).await {
                Ok(token) => self.delete_servers(ws, &token).await,
                Err(message) => {
                    tracing::warn!(workspace_id = %ws.id, message = %message, "cannot delete servers without the cloud token");
                    false
                }
            },
        };
        if deleted { Ok(()) } else { Err(None) }
    }

    async fn delete_servers(&self, ws: &Workspace, token: &SecretString) -> bool {
        let compute = &self.compute;
        let found =
            match with_retry(self.config.retry, "find_servers", ws.id, || compute.find_servers(token, ws.id)).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(workspace_id = %ws.id, error = %e, "server lookup failed; will retry");
                    return false;
                }
            };
        let mut ids: Vec<_> = found.into_iter().map(|s| s.id).collect();
        if let Some(recorded) = &ws.lifecycle.server
            && !ids.contains(&recorded.id)
        {
            ids.push(recorded.id.clone());
        }
        let mut all = true;
        for id in ids {
            match with_retry(self.config.retry, "delete_server", ws.id, || compute.delete_server(token, &id)).await {
                Ok(()) => tracing::info!(workspace_id = %ws.id, server_id = %id, "server deleted"),
                Err(e) => {
                    tracing::warn!(workspace_id = %ws.id, server_id = %id, error = %e, "server deletion failed; will retry");
                    all = false;
                }
            }
        }
        all
    }
}

/// The result of persisting an event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Recorded {
    Saved,
    Removed,
    /// Saved why cleanup cannot finish yet.
    Blocked,
}
