//! [`AgentProbe`] over HTTP: `GET <workspace URL>/health`, the agent's own
//! health report, reached the way the browser reaches the workspace (through
//! the TLS edge in production). A `*.localhost` name (dev mode) is connected
//! to on loopback with its `Host` kept, as RFC 6761 lets an application do,
//! since the system resolver need not know such names (browsers do).

use async_trait::async_trait;
use reqwest::{Method, Url};
use sam_core::ports::{AgentHealth, AgentProbe, ProviderError, ProviderErrorKind};
use sam_core::secret::SecretString;
use serde::Deserialize;

use crate::http::{self, HttpClient, HttpConfig, Request, Response, RetryPolicy};

const PROVIDER: &str = "agent";

/// Probes agents at their workspace URL; one attempt, short timeouts.
#[derive(Debug, Clone)]
pub struct HttpAgentProbe {
    http: HttpClient,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    idle_seconds: u64,
    #[serde(default)]
    version: Option<String>,
}

impl HttpAgentProbe {
    /// A probe with 5 s timeouts and no retry (the reconciler asks again on
    /// its next pass).
    pub fn new() -> Result<Self, ProviderError> {
        let config = HttpConfig {
            request_timeout: std::time::Duration::from_secs(5),
            connect_timeout: std::time::Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            retry: RetryPolicy::never(),
            ..HttpConfig::default()
        };
        Ok(Self { http: HttpClient::new(PROVIDER, config)? })
    }
}

fn classify(response: &Response) -> Result<(), ProviderError> {
    if response.status.is_success() {
        return Ok(());
    }
    let kind = http::kind_for_status(response.status, &response.headers);
    Err(ProviderError::new(kind, format!("agent: health check answered {}", response.status.as_u16())))
}

/// The URL to connect to and the `Host` to send, for `workspace_url`.
fn target(workspace_url: &str) -> Result<(Url, Option<String>), ProviderError> {
    let invalid = || ProviderError::new(ProviderErrorKind::InvalidConfig, "agent: invalid workspace URL");
    let mut url = Url::parse(workspace_url.trim_end_matches('/')).map_err(|_| invalid())?;
    url.set_path("/health");
    let host = url.host_str().ok_or_else(invalid)?.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        let header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        url.set_host(Some("127.0.0.1")).map_err(|_| invalid())?;
        return Ok((url, Some(header)));
    }
    Ok((url, None))
}

#[async_trait]
impl AgentProbe for HttpAgentProbe {
    async fn health(&self, workspace_url: &str, credential: &SecretString) -> Result<AgentHealth, ProviderError> {
        let (url, host) = target(workspace_url)?;
        let mut request =
            Request::new(Method::GET, url).header("authorization", format!("Bearer {}", credential.expose()));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let response = self.http.send_once(&request, classify).await?;
        let health: Health = response.json(PROVIDER)?;
        Ok(AgentHealth { idle_seconds: health.idle_seconds, version: health.version })
    }
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn localhost_names_connect_to_loopback_and_keep_their_host() {
        let (url, host) = target("http://ws-abc.localhost:8081/").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8081/health");
        assert_eq!(host.as_deref(), Some("ws-abc.localhost:8081"));
        let (url, host) = target("https://ws-abc.sam.example.dev").unwrap();
        assert_eq!(url.as_str(), "https://ws-abc.sam.example.dev/health");
        assert_eq!(host, None);
        assert!(target("not a url").is_err());
    }
}
