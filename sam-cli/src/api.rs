//! The control plane's REST API with a personal access token.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use sam_core::api::{CreateWorkspace, Me, TerminalTokenRequest, TerminalTokenResponse};
use sam_core::domain::WorkspaceId;
use sam_core::lifecycle::WorkspaceStatus;
use serde_json::Value;

use crate::config::Login;

/// A workspace as the API shows it: the server's own type.
pub use sam_core::api::WorkspaceView as Workspace;

/// The API of one control plane.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A `*.localhost` name is loopback (browsers know; resolvers may not).
pub fn loopback_alias(url: &reqwest::Url) -> Option<std::net::SocketAddr> {
    let host = url.host_str()?;
    (host == "localhost" || host.ends_with(".localhost"))
        .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], url.port_or_known_default().unwrap_or(80))))
}

impl Api {
    pub fn new(login: &Login) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("sam-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base: login.url.clone(), token: login.token.clone() })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("reaching {}", self.base))?;
        let status = response.status();
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            response.json().await.unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"].as_str().unwrap_or("no details");
        match status.as_u16() {
            401 => bail!("the token was refused (revoked or expired?): run sam login again"),
            403 if body["error"] == "insufficient_scope" => bail!("{message}"),
            _ => bail!("{} ({status})", message),
        }
    }

    /// The login of the token's user.
    pub async fn me(&self) -> anyhow::Result<String> {
        let me: Me = serde_json::from_value(self.call(reqwest::Method::GET, "/api/auth/me", None).await?)?;
        Ok(me.login)
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Workspace>> {
        Ok(serde_json::from_value(self.call(reqwest::Method::GET, "/api/workspaces", None).await?)?)
    }

    /// A workspace by name, else by id.
    pub async fn find(&self, name_or_id: &str) -> anyhow::Result<Workspace> {
        let list = self.list().await?;
        list.iter()
            .find(|w| w.name == name_or_id)
            .or_else(|| list.iter().find(|w| w.id.to_string() == name_or_id))
            .cloned()
            .ok_or_else(|| anyhow!("no workspace named {name_or_id:?} (sam list shows them)"))
    }

    pub async fn get(&self, id: WorkspaceId) -> anyhow::Result<Workspace> {
        Ok(serde_json::from_value(self.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), None).await?)?)
    }

    pub async fn create(
        &self,
        name: &str,
        repository: &str,
        branch: &str,
        size: &str,
        location: &str,
        idle_timeout_seconds: Option<u64>,
    ) -> anyhow::Result<Workspace> {
        let body = CreateWorkspace {
            name: name.to_owned(),
            repository: repository.to_owned(),
            branch: branch.to_owned(),
            vm_size: size.to_owned(),
            vm_location: location.to_owned(),
            installation_id: None,
            idle_timeout_seconds,
        };
        let body = serde_json::to_value(body)?;
        Ok(serde_json::from_value(self.call(reqwest::Method::POST, "/api/workspaces", Some(body)).await?)?)
    }

    /// Follows a workspace until it runs (or fails), printing each status.
    pub async fn wait_running(&self, id: WorkspaceId) -> anyhow::Result<Workspace> {
        let started = std::time::Instant::now();
        let mut last = None;
        loop {
            let ws = self.get(id).await?;
            if Some(ws.status) != last {
                eprintln!("  {:>5.1} s  {}", started.elapsed().as_secs_f64(), ws.status);
                last = Some(ws.status);
            }
            match ws.status {
                WorkspaceStatus::Running => return Ok(ws),
                WorkspaceStatus::Error | WorkspaceStatus::Stopped | WorkspaceStatus::Deleting => {
                    bail!("{} is {}: {}", ws.name, ws.status, ws.error_message.unwrap_or_default())
                }
                _ => {}
            }
            if started.elapsed() > Duration::from_secs(15 * 60) {
                bail!("{} is still {} after 15 minutes", ws.name, ws.status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn action(&self, id: WorkspaceId, action: &str) -> anyhow::Result<Workspace> {
        let path = format!("/api/workspaces/{id}/{action}");
        Ok(serde_json::from_value(self.call(reqwest::Method::POST, &path, None).await?)?)
    }

    pub async fn delete(&self, id: WorkspaceId) -> anyhow::Result<Workspace> {
        Ok(serde_json::from_value(self.call(reqwest::Method::DELETE, &format!("/api/workspaces/{id}"), None).await?)?)
    }

    /// A one-time URL that opens the terminal (valid for a minute).
    pub async fn terminal_url(&self, id: WorkspaceId) -> anyhow::Result<String> {
        let body = serde_json::to_value(TerminalTokenRequest { workspace_id: id.to_string() })?;
        let access: TerminalTokenResponse =
            serde_json::from_value(self.call(reqwest::Method::POST, "/api/terminal/token", Some(body)).await?)
                .context("the terminal token's answer")?;
        Ok(access.url)
    }

    /// Signs in to the workspace's agent with a fresh terminal token, as the
    /// browser does (its callback sets the terminal cookie): returns the
    /// workspace's origin and the cookie (`name=value`).
    pub async fn terminal_cookie(&self, id: WorkspaceId) -> anyhow::Result<(reqwest::Url, String)> {
        let url = reqwest::Url::parse(&self.terminal_url(id).await?).context("the terminal URL")?;
        let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let (Some(addr), Some(host)) = (loopback_alias(&url), url.host_str()) {
            client = client.resolve(host, addr);
        }
        let response = client.build()?.get(url.clone()).send().await.context("reaching the workspace")?;
        if !response.status().is_success() {
            bail!("the workspace refused the terminal sign-in ({})", response.status());
        }
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the workspace set no terminal cookie"))?;
        let mut origin = url;
        origin.set_path("/");
        origin.set_query(None);
        Ok((origin, cookie))
    }
}
