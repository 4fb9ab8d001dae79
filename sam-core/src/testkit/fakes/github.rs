use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::domain::{InstallationId, NewUser, RepoFullName};
use crate::ports::{
    IdentityProvider, InstallationInfo, InstallationToken, Page, ProviderError, ProviderErrorKind, RepoAccess,
    Repository, VerifiedIdentity,
};
use crate::secret::{SecretString, pkce_challenge};
use crate::testkit::lock;

/// A fake GitHub: OAuth codes bound to a PKCE challenge and usable once,
/// installations visible to given user tokens, paginated repositories,
/// branches, and counted installation-token mints.
#[derive(Debug)]
pub struct FakeGithub {
    /// Faults injected into `installation_token`.
    pub faults: super::faults::FaultPlan,
    state: Mutex<GithubState>,
    mints: AtomicU64,
    page_size: usize,
}

#[derive(Debug, Default)]
struct GithubState {
    codes: HashMap<String, (String, NewUser)>,
    user_tokens: HashMap<String, Vec<InstallationId>>,
    installations: HashMap<InstallationId, InstallationInfo>,
    repositories: HashMap<InstallationId, Vec<Repository>>,
    branches: HashMap<String, Vec<String>>,
    next: u64,
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

    /// The user approves the sign-in whose authorize URL carried
    /// `pkce_challenge`; returns the code GitHub would redirect back with.
    pub fn approve(&self, pkce_challenge: &str, profile: NewUser) -> String {
        let mut state = lock(&self.state);
        state.next += 1;
        let code = format!("code-{}", state.next);
        let access = format!("gho_fake_{}", profile.github_id);
        state.user_tokens.entry(access).or_default();
        state.codes.insert(code.clone(), (pkce_challenge.to_owned(), profile));
        code
    }

    /// Adds an installation visible to the user token `gho_fake_<github id>`,
    /// with repositories (each with branches `main` and `dev`).
    pub fn add_installation(&self, info: InstallationInfo, visible_to_github_id: i64, repositories: &[&str]) {
        let mut state = lock(&self.state);
        state.user_tokens.entry(format!("gho_fake_{visible_to_github_id}")).or_default().push(info.id);
        let repos: Vec<Repository> = repositories
            .iter()
            .filter_map(|name| RepoFullName::new(*name).ok())
            .map(|full_name| Repository { full_name, private: true, default_branch: "main".into() })
            .collect();
        for repo in &repos {
            state.branches.insert(repo.full_name.to_string(), vec!["main".into(), "dev".into()]);
        }
        state.repositories.insert(info.id, repos);
        state.installations.insert(info.id, info);
    }

    /// How many installation tokens were minted.
    pub fn token_mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    fn unknown_installation(id: InstallationId) -> ProviderError {
        ProviderError::new(ProviderErrorKind::NotFound, format!("installation {id} not found"))
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
        let access_token = SecretString::new(format!("gho_fake_{}", profile.github_id));
        Ok(VerifiedIdentity { profile, access_token })
    }
}

#[async_trait]
impl RepoAccess for FakeGithub {
    fn install_url(&self) -> String {
        "https://github.test/apps/sam-fake/installations/new".into()
    }

    async fn list_installations(&self, user_token: &SecretString) -> Result<Vec<InstallationInfo>, ProviderError> {
        let state = lock(&self.state);
        let ids = state
            .user_tokens
            .get(user_token.expose())
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Unauthorized, "bad credentials"))?;
        Ok(ids.iter().filter_map(|id| state.installations.get(id).cloned()).collect())
    }

    async fn list_repositories(
        &self,
        installation: InstallationId,
        page: u32,
    ) -> Result<Page<Repository>, ProviderError> {
        let state = lock(&self.state);
        let repos = state.repositories.get(&installation).ok_or_else(|| Self::unknown_installation(installation))?;
        let start = (page.max(1) as usize - 1) * self.page_size;
        let items: Vec<Repository> = repos.iter().skip(start).take(self.page_size).cloned().collect();
        let next_page = (start + self.page_size < repos.len()).then_some(page.max(1) + 1);
        Ok(Page { items, next_page })
    }

    async fn list_branches(
        &self,
        installation: InstallationId,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, ProviderError> {
        let state = lock(&self.state);
        let repos = state.repositories.get(&installation).ok_or_else(|| Self::unknown_installation(installation))?;
        if !repos.iter().any(|r| &r.full_name == repository) {
            return Err(ProviderError::new(ProviderErrorKind::NotFound, format!("repository {repository} not found")));
        }
        Ok(state.branches.get(repository.as_str()).cloned().unwrap_or_default())
    }

    async fn installation_token(&self, installation: InstallationId) -> Result<InstallationToken, ProviderError> {
        if let Some(kind) = self.faults.before("installation_token")? {
            return Err(super::faults::injected("installation_token", kind));
        }
        if !lock(&self.state).installations.contains_key(&installation) {
            return Err(Self::unknown_installation(installation));
        }
        let n = self.mints.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(InstallationToken {
            token: SecretString::new(format!("ghs_fake_{installation}_{n}")),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
    }
}
