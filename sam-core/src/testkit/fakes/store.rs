use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    AccessToken, Credential, CredentialProvider, GithubInstallation, InstallationId, NewSession, NewUser, Session,
    Timestamp, User, UserId, Workspace, WorkspaceEvent, WorkspaceId,
};
use crate::lifecycle::WorkspaceStatus;
use crate::ports::{
    AccessTokenStore, BootstrapToken, BootstrapTokenStore, CHANGE_FEED_CAPACITY, ChangeFeed, CredentialRemoval,
    CredentialStore, InstallationStore, LeaseStore, StoreChange, StoreError, StoreErrorKind, UserStore,
    WebhookDeliveryStore, WorkspaceLimits, WorkspaceScan, WorkspaceStore,
};
use crate::testkit::lock;

/// An in-memory [`Store`](crate::ports::Store) with the same semantics a database has: one lock
/// around everything plays the role of a serialisable transaction, versions are
/// checked and bumped, tokens are consumed atomically; changes are announced
/// on its [`ChangeFeed`] after they are made.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    changes: tokio::sync::broadcast::Sender<StoreChange>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { state: Mutex::default(), changes: tokio::sync::broadcast::Sender::new(CHANGE_FEED_CAPACITY) }
    }
}

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<StoreChange> {
        self.changes.subscribe()
    }
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, User>,
    sessions: HashMap<String, Session>,
    access_tokens: BTreeMap<String, AccessToken>,
    credentials: BTreeMap<(UserId, CredentialProvider), Credential>,
    installations: HashMap<InstallationId, GithubInstallation>,
    workspaces: BTreeMap<WorkspaceId, Workspace>,
    events: HashMap<WorkspaceId, Vec<WorkspaceEvent>>,
    bootstrap: HashMap<String, (BootstrapToken, bool)>,
    leases: HashMap<String, (String, Timestamp)>,
    webhook_deliveries: HashMap<String, Timestamp>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes a credential behind the application's back, the way an
    /// operator editing the database would: no check for workspaces using it.
    /// For tests of what the engine does when a credential disappears.
    pub fn remove_credential(&self, owner: UserId, provider: CredentialProvider) -> bool {
        lock(&self.state).credentials.remove(&(owner, provider)).is_some()
    }

    /// Announces a change (no subscriber is not an error).
    fn changed(&self, change: StoreChange) {
        let _ = self.changes.send(change);
    }
}

fn not_found(what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::NotFound, format!("{what} not found"))
}

#[async_trait]
impl AccessTokenStore for MemoryStore {
    async fn insert_access_token(&self, token: &AccessToken, limit: u32) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let owned = state.access_tokens.values().filter(|t| t.user_id == token.user_id).count();
        if owned >= limit as usize {
            return Err(StoreError::new(StoreErrorKind::QuotaExceeded, "access token limit reached"));
        }
        if state.access_tokens.values().any(|t| t.id == token.id) || state.access_tokens.contains_key(&token.token_hash)
        {
            return Err(StoreError::new(StoreErrorKind::Other, "access token exists"));
        }
        state.access_tokens.insert(token.token_hash.clone(), token.clone());
        Ok(())
    }

    async fn list_access_tokens(&self, owner: UserId) -> Result<Vec<AccessToken>, StoreError> {
        let mut tokens: Vec<AccessToken> =
            lock(&self.state).access_tokens.values().filter(|t| t.user_id == owner).cloned().collect();
        tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(tokens)
    }

    async fn find_access_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<AccessToken>, StoreError> {
        Ok(lock(&self.state).access_tokens.get(token_hash).filter(|t| t.is_live(now)).cloned())
    }

    async fn touch_access_token(&self, token_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        if let Some(token) = lock(&self.state).access_tokens.get_mut(token_hash) {
            token.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn delete_access_token(&self, owner: UserId, id: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let before = state.access_tokens.len();
        state.access_tokens.retain(|_, t| !(t.user_id == owner && t.id == id));
        Ok(state.access_tokens.len() < before)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn upsert_user(&self, profile: &NewUser, now: Timestamp) -> Result<User, StoreError> {
        let mut state = lock(&self.state);
        let existing = state.users.values_mut().find(|u| u.github_id == profile.github_id);
        let user = match existing {
            Some(user) => {
                user.login.clone_from(&profile.login);
                user.name.clone_from(&profile.name);
                user.email.clone_from(&profile.email);
                user.avatar_url.clone_from(&profile.avatar_url);
                user.updated_at = now;
                user.clone()
            }
            None => {
                let user = User {
                    id: UserId::new(),
                    github_id: profile.github_id,
                    login: profile.login.clone(),
                    name: profile.name.clone(),
                    email: profile.email.clone(),
                    avatar_url: profile.avatar_url.clone(),
                    created_at: now,
                    updated_at: now,
                };
                state.users.insert(user.id, user.clone());
                user
            }
        };
        Ok(user)
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(lock(&self.state).users.get(&id).cloned())
    }

    async fn create_session(&self, session: &NewSession, now: Timestamp) -> Result<Session, StoreError> {
        let mut state = lock(&self.state);
        if !state.users.contains_key(&session.user_id) {
            return Err(not_found("user"));
        }
        let stored = Session {
            id_hash: session.id_hash.clone(),
            user_id: session.user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: session.expires_at,
        };
        state.sessions.insert(stored.id_hash.clone(), stored.clone());
        Ok(stored)
    }

    async fn get_session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError> {
        Ok(lock(&self.state).sessions.get(id_hash).filter(|s| s.expires_at > now).cloned())
    }

    async fn touch_session(&self, id_hash: &str, now: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        match state.sessions.get_mut(id_hash).filter(|s| s.expires_at > now) {
            Some(session) => {
                session.last_seen_at = now;
                session.expires_at = expires_at;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let removed = lock(&self.state).sessions.remove(id_hash);
        if let Some(session) = removed {
            self.changed(StoreChange::SignIns(session.user_id));
        }
        Ok(())
    }

    async fn delete_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let removed = {
            let mut state = lock(&self.state);
            let before = state.sessions.len();
            state.sessions.retain(|_, s| s.user_id != user);
            (before - state.sessions.len()) as u64
        };
        if removed > 0 {
            self.changed(StoreChange::SignIns(user));
        }
        Ok(removed)
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn put_credential(&self, credential: &Credential) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if !state.users.contains_key(&credential.user_id) {
            return Err(not_found("user"));
        }
        state.credentials.insert((credential.user_id, credential.provider), credential.clone());
        Ok(())
    }

    async fn replace_credential_if(&self, credential: &Credential, expected: &[u8]) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        match state.credentials.get_mut(&(credential.user_id, credential.provider)) {
            Some(stored) if stored.ciphertext == expected => {
                stored.ciphertext.clone_from(&credential.ciphertext);
                stored.validated_at = credential.validated_at;
                stored.updated_at = credential.updated_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_credential(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<Option<Credential>, StoreError> {
        Ok(lock(&self.state).credentials.get(&(owner, provider)).cloned())
    }

    async fn list_credentials(&self, owner: UserId) -> Result<Vec<Credential>, StoreError> {
        Ok(lock(&self.state).credentials.values().filter(|c| c.user_id == owner).cloned().collect())
    }

    async fn delete_credential_unless_in_use(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<CredentialRemoval, StoreError> {
        let mut state = lock(&self.state);
        let workspaces = state
            .workspaces
            .values()
            .filter(|w| w.owner == owner && (w.status().is_active() || w.lifecycle.holds_resources()))
            .count() as u64;
        if workspaces > 0 {
            return Ok(CredentialRemoval::InUse { workspaces });
        }
        Ok(match state.credentials.remove(&(owner, provider)) {
            Some(_) => CredentialRemoval::Removed,
            None => CredentialRemoval::NotFound,
        })
    }

    async fn list_all_credentials(&self, provider: CredentialProvider) -> Result<Vec<Credential>, StoreError> {
        Ok(lock(&self.state).credentials.values().filter(|c| c.provider == provider).cloned().collect())
    }
}

#[async_trait]
impl InstallationStore for MemoryStore {
    async fn upsert_installation(&self, installation: &GithubInstallation) -> Result<(), StoreError> {
        lock(&self.state).installations.insert(installation.id, installation.clone());
        Ok(())
    }

    async fn get_installation(&self, id: InstallationId) -> Result<Option<GithubInstallation>, StoreError> {
        Ok(lock(&self.state).installations.get(&id).cloned())
    }

    async fn mark_installation_removed(&self, id: InstallationId, at: Timestamp) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        match state.installations.get_mut(&id) {
            Some(installation) => {
                installation.removed_at = Some(at);
                installation.updated_at = at;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl WorkspaceStore for MemoryStore {
    async fn insert_workspace(
        &self,
        workspace: &Workspace,
        event: Option<&WorkspaceEvent>,
        limits: WorkspaceLimits,
    ) -> Result<Workspace, StoreError> {
        let mut state = lock(&self.state);
        if !state.users.contains_key(&workspace.owner) {
            return Err(not_found("user"));
        }
        if state.workspaces.contains_key(&workspace.id) {
            return Err(StoreError::new(StoreErrorKind::Other, "workspace id already exists"));
        }
        let mine = state.workspaces.values().filter(|w| w.owner == workspace.owner);
        let mut active = 0u32;
        for existing in mine {
            if existing.spec.name == workspace.spec.name {
                return Err(StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name already exists"));
            }
            if existing.status().is_active() {
                active += 1;
            }
        }
        if let Some(provider) = limits.required_credential
            && !state.credentials.contains_key(&(workspace.owner, provider))
        {
            return Err(StoreError::new(StoreErrorKind::CredentialMissing, "no credential for the workspace's cloud"));
        }
        if workspace.status().is_active() && active >= limits.max_active_per_user {
            return Err(StoreError::new(
                StoreErrorKind::QuotaExceeded,
                format!("at most {} active workspaces per user", limits.max_active_per_user),
            ));
        }
        let mut stored = workspace.clone();
        stored.version = 1;
        state.workspaces.insert(stored.id, stored.clone());
        state.events.insert(stored.id, event.into_iter().cloned().collect());
        drop(state);
        self.changed(StoreChange::Workspaces(stored.owner));
        Ok(stored)
    }

    async fn get_workspace(&self, owner: UserId, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        Ok(lock(&self.state).workspaces.get(&id).filter(|w| w.owner == owner).cloned())
    }

    async fn list_workspaces(
        &self,
        owner: UserId,
        status: Option<WorkspaceStatus>,
    ) -> Result<Vec<Workspace>, StoreError> {
        let state = lock(&self.state);
        let mut found: Vec<Workspace> = state
            .workspaces
            .values()
            .filter(|w| w.owner == owner && status.is_none_or(|s| w.status() == s))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(found)
    }

    async fn update_workspace(
        &self,
        workspace: &Workspace,
        events: &[WorkspaceEvent],
    ) -> Result<Workspace, StoreError> {
        let mut state = lock(&self.state);
        let current = state
            .workspaces
            .get_mut(&workspace.id)
            .filter(|w| w.owner == workspace.owner)
            .ok_or_else(|| not_found("workspace"))?;
        if current.version != workspace.version {
            return Err(StoreError::new(
                StoreErrorKind::StaleVersion,
                format!("workspace changed (version {} now, {} expected)", current.version, workspace.version),
            ));
        }
        let mut stored = workspace.clone();
        stored.version += 1;
        // Heartbeat fields are written by `record_heartbeat` alone; a lifecycle
        // update computed from an older read must not roll them back.
        stored.last_activity_at = current.last_activity_at;
        stored.last_heartbeat_at = current.last_heartbeat_at;
        *current = stored.clone();
        state.events.entry(stored.id).or_default().extend(events.iter().cloned());
        drop(state);
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
        let mut state = lock(&self.state);
        match state.workspaces.get_mut(&id).filter(|w| w.owner == owner) {
            Some(w) => {
                w.last_heartbeat_at = Some(at);
                let before = w.last_activity_at;
                w.last_activity_at = Some(last_activity_at.max(w.last_activity_at.unwrap_or(last_activity_at)));
                let active = w.last_activity_at != before;
                drop(state);
                // Only new activity is news: a heartbeat alone changes nothing a view shows.
                if active {
                    self.changed(StoreChange::Workspaces(owner));
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_workspace(&self, owner: UserId, id: WorkspaceId, expected_version: u64) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let current = state.workspaces.get(&id).filter(|w| w.owner == owner).ok_or_else(|| not_found("workspace"))?;
        if current.version != expected_version {
            return Err(StoreError::new(StoreErrorKind::StaleVersion, "workspace changed since it was read"));
        }
        state.workspaces.remove(&id);
        state.events.remove(&id);
        state.bootstrap.retain(|_, (t, _)| t.workspace_id != id);
        drop(state);
        self.changed(StoreChange::Workspaces(owner));
        Ok(())
    }

    async fn list_workspace_events(&self, owner: UserId, id: WorkspaceId) -> Result<Vec<WorkspaceEvent>, StoreError> {
        let state = lock(&self.state);
        if state.workspaces.get(&id).is_none_or(|w| w.owner != owner) {
            return Err(not_found("workspace"));
        }
        Ok(state.events.get(&id).cloned().unwrap_or_default())
    }

    async fn scan_workspaces(&self, scan: &WorkspaceScan) -> Result<Vec<Workspace>, StoreError> {
        let state = lock(&self.state);
        let start = match scan.after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        Ok(state
            .workspaces
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, w)| w)
            .filter(|w| scan.statuses.is_empty() || scan.statuses.contains(&w.status()))
            .take(scan.limit as usize)
            .cloned()
            .collect())
    }

    async fn count_workspaces_by_status(&self) -> Result<Vec<(WorkspaceStatus, u64)>, StoreError> {
        let state = lock(&self.state);
        let mut counts: Vec<(WorkspaceStatus, u64)> = Vec::new();
        for ws in state.workspaces.values() {
            match counts.iter_mut().find(|(s, _)| *s == ws.status()) {
                Some((_, n)) => *n += 1,
                None => counts.push((ws.status(), 1)),
            }
        }
        Ok(counts)
    }
}

#[async_trait]
impl BootstrapTokenStore for MemoryStore {
    async fn create_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.workspaces.get(&token.workspace_id).is_none_or(|w| w.owner != token.owner) {
            return Err(not_found("workspace"));
        }
        state.bootstrap.insert(token.token_hash.clone(), (token.clone(), false));
        Ok(())
    }

    async fn find_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError> {
        match lock(&self.state).bootstrap.get(token_hash) {
            Some((token, used)) if !*used && token.expires_at > now => Ok(Some(token.clone())),
            _ => Ok(None),
        }
    }

    async fn redeem_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError> {
        let mut state = lock(&self.state);
        match state.bootstrap.get_mut(token_hash) {
            Some((token, used)) if !*used && token.expires_at > now => {
                *used = true;
                Ok(Some(token.clone()))
            }
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn try_acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let free = match state.leases.get(key) {
            Some((current, until)) => current == holder || *until <= now,
            None => true,
        };
        if free {
            state.leases.insert(key.to_owned(), (holder.to_owned(), now + ttl));
        }
        Ok(free)
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.leases.get(key).is_some_and(|(current, _)| current == holder) {
            state.leases.remove(key);
        }
        Ok(())
    }
}

#[async_trait]
impl WebhookDeliveryStore for MemoryStore {
    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        state.webhook_deliveries.retain(|_, received| *received >= forget_before);
        if state.webhook_deliveries.contains_key(delivery_id) {
            return Ok(false);
        }
        state.webhook_deliveries.insert(delivery_id.to_owned(), now);
        Ok(true)
    }

    async fn webhook_delivery_seen(&self, delivery_id: &str, forget_before: Timestamp) -> Result<bool, StoreError> {
        Ok(lock(&self.state).webhook_deliveries.get(delivery_id).is_some_and(|received| *received >= forget_before))
    }
}
