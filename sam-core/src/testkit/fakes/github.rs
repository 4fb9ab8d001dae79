use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::domain::{InstallationId, NewUser, RepoFullName};
use crate::ports::{
    IdentityProvider, InstallationInfo, InstallationToken, Page, ProviderError, ProviderErrorKind, RepoAccess,
    Repository, TokenScope, UserTokens, VerifiedIdentity,
};
use crate::secret::{SecretString, pkce_challenge};
use crate::testkit::lock;

/// A fake GitHub: OAuth codes bound to a PKCE challenge and usable once,
/// user tokens that may expire and refresh with rotation, installations
/// visible to given users, per-user repository access and push permission,
/// paginated repositories, branches, and counted installation-token mints
/// with their scopes.
#[derive(Debug)]
pub struct FakeGithub {
    /// Faults injected into `installation_token` and `refresh`.
    pub faults: super::faults::FaultPlan,
    state: Mutex<GithubState>,
    mints: AtomicU64,
    page_size: usize,
}

#[derive(Debug, Default)]
struct GithubState {
    codes: HashMap<String, (String, NewUser)>,
    /// Access token → (GitHub user id, still valid).
    user_tokens: HashMap<String, (i64, bool)>,
    /// Refresh token → GitHub user id (removed when used).
    refresh_tokens: HashMap<String, i64>,
    /// Whether sign-ins hand out expiring tokens with a refresh token.
    expiring: bool,
    visible: HashMap<i64, Vec<InstallationId>>,
    installations: HashMap<InstallationId, InstallationInfo>,
    repositories: HashMap<InstallationId, Vec<Repository>>,
    branches: HashMap<String, Vec<String>>,
    /// (user, repository) pairs a user cannot see although the installation has it.
    hidden: BTreeSet<(i64, String)>,
    /// (user, repository) pairs a user may read but not push.
    read_only: BTreeSet<(i64, String)>,
    scopes: Vec<TokenScope>,
    refreshes: u64,
    next: u64,
}

impl GithubState {
    fn user_of(&self, token: &SecretString) -> Result<i64, ProviderError> {
        match self.user_tokens.get(token.expose()) {
            Some((user, true)) => Ok(*user),
            _ => Err(ProviderError::new(ProviderErrorKind::Unauthorized, "github: 401: Bad credentials")),
        }
    }

    fn tokens_for(&mut self, user: i64) -> UserTokens {
        self.next += 1;
        let access = format!("gho_fake_{user}_{}", self.next);
        self.user_tokens.insert(access.clone(), (user, true));
        if !self.expiring {
            return UserTokens::lasting(SecretString::new(access));
        }
        let refresh = format!("ghr_fake_{user}_{}", self.next);
        self.refresh_tokens.insert(refresh.clone(), user);
        let now = time::OffsetDateTime::now_utc();
        UserTokens {
            access_token: SecretString::new(access),
            expires_at: Some(now + time::Duration::hours(8)),
            refresh_token: Some(SecretString::new(refresh)),
            refresh_expires_at: Some(now + time::Duration::days(180)),
        }
    }

    /// `repository` as `user` sees it, with their push permission.
    fn seen(&self, user: i64, repository: &RepoFullName) -> Option<Repository> {
        let key = (user, repository.to_string());
        if self.hidden.contains(&key) {
            return None;
        }
        let ids = self.visible.get(&user)?;
        let repo =
            ids.iter().filter_map(|id| self.repositories.get(id)).flatten().find(|r| &r.full_name == repository)?;
        Some(Repository { push: !self.read_only.contains(&key), ..repo.clone() })
    }
}

fn not_found(what: &str) -> ProviderError {
    ProviderError::new(ProviderErrorKind::NotFound, format!("github: 404: {what} not found"))
}

impl FakeGithub {
    /// An empty fake with pages of `page_size` repositories.
    pub fn new(page_size: usize) -> Self {
        Self {
            faults: super::faults::FaultPlan::default(),
            state: Mutex::default(),
            mints: AtomicU64::new(0),
            page_size: page_size.max(1),
        }
    }

    /// From now on, sign-ins and refreshes hand out tokens that expire (8
    /// hours) with a single-use refresh token, as GitHub Apps do.
    pub fn expire_tokens(&self) {
        lock(&self.state).expiring = true;
    }

    /// The user approves the sign-in whose authorize URL carried
    /// `pkce_challenge`; returns the code GitHub would redirect back with.
    pub fn approve(&self, pkce_challenge: &str, profile: NewUser) -> String {
        let mut state = lock(&self.state);
        state.next += 1;
        let code = format!("code-{}", state.next);
        state.codes.insert(code.clone(), (pkce_challenge.to_owned(), profile));
        code
    }

    /// Adds an installation visible to the GitHub user `visible_to_github_id`,
    /// with repositories (each with branches `main` and `dev`).
    pub fn add_installation(&self, info: InstallationInfo, visible_to_github_id: i64, repositories: &[&str]) {
        let mut state = lock(&self.state);
        state.visible.entry(visible_to_github_id).or_default().push(info.id);
        let repos: Vec<Repository> = repositories
            .iter()
            .filter_map(|name| RepoFullName::new(*name).ok())
            .map(|full_name| Repository { full_name, private: true, default_branch: "main".into(), push: false })
            .collect();
        for repo in &repos {
            state.branches.insert(repo.full_name.to_string(), vec!["main".into(), "dev".into()]);
        }
        state.repositories.insert(info.id, repos);
        state.installations.insert(info.id, info);
    }

    /// Lets the GitHub user `github_id` also see installation `id`.
    pub fn share_installation(&self, id: InstallationId, github_id: i64) {
        lock(&self.state).visible.entry(github_id).or_default().push(id);
    }

    /// The GitHub user `github_id` no longer sees installation `id` (they
    /// left the organization).
    pub fn unshare_installation(&self, id: InstallationId, github_id: i64) {
        if let Some(ids) = lock(&self.state).visible.get_mut(&github_id) {
            ids.retain(|i| *i != id);
        }
    }

    /// The user `github_id` cannot see `repository` (their teams do not grant it).
    pub fn hide_repository(&self, github_id: i64, repository: &str) {
        lock(&self.state).hidden.insert((github_id, repository.to_owned()));
    }

    /// The user `github_id` may read `repository` but not push to it.
    pub fn read_only(&self, github_id: i64, repository: &str) {
        lock(&self.state).read_only.insert((github_id, repository.to_owned()));
    }

    /// Every access token stops working (as 8 hours later); refresh tokens
    /// still do.
    pub fn expire_access_tokens(&self) {
        for (_, valid) in lock(&self.state).user_tokens.values_mut() {
            *valid = false;
        }
    }

    /// Every refresh token is dead.
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.state).refresh_tokens.clear();
    }

    /// How many refreshes succeeded.
    pub fn refreshes(&self) -> u64 {
        lock(&self.state).refreshes
    }

    /// How many installation tokens were minted.
    pub fn token_mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    /// The scopes installation tokens were minted for, in order.
    pub fn minted_scopes(&self) -> Vec<TokenScope> {
        lock(&self.state).scopes.clone()
    }
}

#[async_trait]
impl IdentityProvider for FakeGithub {
    fn authorize_url(&self, state: &str, pkce_challenge: &str, redirect_uri: &str) -> String {
        format!(
            "https://github.test/login/oauth/authorize?client_id=fake&state={state}&code_challenge={pkce_challenge}&code_challenge_method=S256&redirect_uri={redirect_uri}"
        )
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        _redirect_uri: &str,
    ) -> Result<VerifiedIdentity, ProviderError> {
        let mut state = lock(&self.state);
        let bad = || ProviderError::new(ProviderErrorKind::Unauthorized, "bad_verification_code");
        let (challenge, _) = state.codes.get(code).ok_or_else(bad)?;
        if *challenge != pkce_challenge(pkce_verifier.expose()) {
            return Err(bad());
        }
        let (_, profile) = state.codes.remove(code).ok_or_else(bad)?;
        let tokens = state.tokens_for(profile.github_id.0);
        Ok(VerifiedIdentity { profile, tokens })
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<UserTokens, ProviderError> {
        if let Some(kind) = self.faults.before("refresh")? {
            return Err(super::faults::injected("refresh", kind));
        }
        let mut state = lock(&self.state);
        let user = state.refresh_tokens.remove(refresh_token.expose()).ok_or_else(|| {
            ProviderError::new(ProviderErrorKind::Unauthorized, "github: OAuth error bad_refresh_token")
        })?;
        state.refreshes += 1;
        Ok(state.tokens_for(user))
    }
}

#[async_trait]
impl RepoAccess for FakeGithub {
    fn install_url(&self) -> String {
        "https://github.test/apps/sam-fake/installations/new".into()
    }

    async fn list_installations(&self, user_token: &SecretString) -> Result<Vec<InstallationInfo>, ProviderError> {
        let state = lock(&self.state);
        let user = state.user_of(user_token)?;
        let ids = state.visible.get(&user).cloned().unwrap_or_default();
        Ok(ids.iter().filter_map(|id| state.installations.get(id).cloned()).collect())
    }

    async fn list_repositories(
        &self,
        user_token: &SecretString,
        installation: InstallationId,
        page: u32,
    ) -> Result<Page<Repository>, ProviderError> {
        let state = lock(&self.state);
        let user = state.user_of(user_token)?;
        if !state.visible.get(&user).is_some_and(|ids| ids.contains(&installation)) {
            return Err(not_found("installation"));
        }
        let repos: Vec<Repository> = state
            .repositories
            .get(&installation)
            .into_iter()
            .flatten()
            .filter_map(|r| state.seen(user, &r.full_name))
            .collect();
        let start = (page.max(1) as usize - 1) * self.page_size;
        let items: Vec<Repository> = repos.iter().skip(start).take(self.page_size).cloned().collect();
        let next_page = (start + self.page_size < repos.len()).then_some(page.max(1) + 1);
        Ok(Page { items, next_page })
    }

    async fn repository(
        &self,
        user_token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Repository, ProviderError> {
        let state = lock(&self.state);
        let user = state.user_of(user_token)?;
        state.seen(user, repository).ok_or_else(|| not_found("repository"))
    }

    async fn list_branches(
        &self,
        user_token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, ProviderError> {
        let state = lock(&self.state);
        let user = state.user_of(user_token)?;
        state.seen(user, repository).ok_or_else(|| not_found("repository"))?;
        Ok(state.branches.get(repository.as_str()).cloned().unwrap_or_default())
    }

    async fn installation_token(
        &self,
        installation: InstallationId,
        scope: &TokenScope,
    ) -> Result<InstallationToken, ProviderError> {
        if let Some(kind) = self.faults.before("installation_token")? {
            return Err(super::faults::injected("installation_token", kind));
        }
        let mut state = lock(&self.state);
        let repos = state.repositories.get(&installation).ok_or_else(|| not_found("installation"))?;
        if !repos.iter().any(|r| r.full_name == scope.repository) {
            return Err(ProviderError::new(
                ProviderErrorKind::InvalidConfig,
                "github: 422: repository not accessible to the installation",
            ));
        }
        state.scopes.push(scope.clone());
        let n = self.mints.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(InstallationToken {
            token: SecretString::new(format!("ghs_fake_{installation}_{n}")),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
    }
}
