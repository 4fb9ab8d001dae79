//! The local edge of `sam-server dev --tls`: plays Cloudflare's part in
//! front of the control plane and the workspaces, so the production
//! topology runs on one machine.
//!
//! Browser side: HTTPS with a certificate for the name asked for, made by
//! the local CA ([`LocalCa`]). Workspace side, for each request to
//! `ws-<id>.localhost`, as the zone's settings say:
//!
//! - the name's record at the emulated Cloudflare must be proxied (a "DNS
//!   only" name never reaches the edge: refused here with 403);
//! - SSL mode `strict`: TLS to the agent, its certificate verified against
//!   the emulated Origin CA for that name (else **526**); `full`: TLS without
//!   verification; `flexible`/`off`: plain HTTP to the agent;
//! - Authenticated Origin Pulls (`tls_client_auth` on): the edge presents
//!   its origin-pull client certificate; an agent that refuses the
//!   handshake gives **525**, one that cannot be reached **521**, one that
//!   says nothing within 100 s **524** (Cloudflare's codes and meanings);
//! - then bytes both ways, so WebSockets pass unchanged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sam_providers::emulators::CloudflareEmulator;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::local_ca::LocalCa;
use super::proxy::{self, Routes};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Cloudflare answers 524 when the origin says nothing for 100 s.
const ORIGIN_TIMEOUT: Duration = Duration::from_secs(100);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Certificates for the names browsers ask for, made on first use.
#[derive(Debug)]
struct NamedCertificates {
    ca: LocalCa,
    zone: String,
    made: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for NamedCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().unwrap_or("localhost").to_ascii_lowercase();
        // Only names of the zone: the edge has no certificate for others.
        if name != self.zone && !name.ends_with(&format!(".{}", self.zone)) {
            return None;
        }
        let mut made = self.made.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = made.get(&name) {
            return Some(key.clone());
        }
        match self.ca.server_certificate(&name) {
            Ok(key) => {
                made.insert(name, key.clone());
                Some(key)
            }
            Err(error) => {
                tracing::warn!(%name, %error, "edge: no certificate");
                None
            }
        }
    }
}

/// Accepts full TLS for the "Full" SSL mode: any certificate, as the real
/// edge does in that mode.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The edge: its browser-side TLS, and how it reaches agents.
pub struct LocalEdge {
    acceptor: TlsAcceptor,
    /// Strict mode, with and without the origin-pull certificate.
    strict: [TlsConnector; 2],
    /// Full mode, with and without it.
    full: [TlsConnector; 2],
    cloudflare: CloudflareEmulator,
    routes: Routes,
}

impl std::fmt::Debug for LocalEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEdge").finish_non_exhaustive()
    }
}

impl LocalEdge {
    /// An edge for the names of `zone`, with certificates from `browser_ca`,
    /// trusting the emulated Origin CA for agents and presenting `client`
    /// (the origin-pull certificate) when the zone asks for it.
    pub fn new(
        browser_ca: LocalCa,
        zone: &str,
        client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        cloudflare: CloudflareEmulator,
        routes: Routes,
    ) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        let provider = provider();
        let resolver = NamedCertificates { ca: browser_ca, zone: zone.to_ascii_lowercase(), made: Mutex::default() };
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        server.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(cloudflare.origin_ca_pem().as_bytes()) {
            roots.add(cert?)?;
        }
        let roots = Arc::new(roots);
        let (chain, key) = client;
        let connector = |verify_strictly: bool, present: bool| -> anyhow::Result<TlsConnector> {
            let builder =
                rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
            let builder = if verify_strictly {
                builder.with_root_certificates(roots.clone())
            } else {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            };
            let mut config = if present {
                builder.with_client_auth_cert(chain.clone(), key.clone_key())?
            } else {
                builder.with_no_client_auth()
            };
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(TlsConnector::from(Arc::new(config)))
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            strict: [connector(true, false)?, connector(true, true)?],
            full: [connector(false, false)?, connector(false, true)?],
            cloudflare,
            routes,
        })
    }

    /// HTTPS for the control plane at `upstream` (plain HTTP on loopback,
    /// as behind any TLS-terminating proxy).
    pub async fn serve_control_plane(self: Arc<Self>, listener: TcpListener, upstream: SocketAddr) {
        loop {
            let Some(socket) = proxy::accept_tcp(&listener).await else { continue };
            let edge = self.clone();
            tokio::spawn(async move {
                let Some(mut browser) = edge.accept(socket).await else { return };
                if let Ok(mut upstream) = TcpStream::connect(upstream).await {
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut browser, &mut upstream).await;
                }
            });
        }
    }

    /// HTTPS for the workspaces: each request goes to its agent as the
    /// zone's settings say.
    pub async fn serve_workspaces(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Some(socket) = proxy::accept_tcp(&listener).await else { continue };
            let edge = self.clone();
            tokio::spawn(async move {
                if let Some(browser) = edge.accept(socket).await {
                    edge.to_agent(browser).await;
                }
            });
        }
    }

    async fn accept(&self, socket: TcpStream) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(%error, "edge: browser handshake failed");
                None
            }
            Err(_) => None,
        }
    }

    async fn to_agent<B: AsyncRead + AsyncWrite + Unpin>(&self, mut browser: B) {
        let Some(head) = proxy::read_head(&mut browser).await else { return };
        let answer = |status: &str, body: String| proxy::plain_response(status, &body);
        let Some(host) = proxy::host_of(&head) else {
            let _ = browser.write_all(answer("400 Bad Request", "No Host header.".into()).as_bytes()).await;
            return;
        };
        let proxied = self.cloudflare.records().iter().any(|r| r.name == host && r.proxied);
        if !proxied {
            let body = format!("{host} is not proxied through the edge (its DNS record is \"DNS only\" or missing).");
            let _ = browser.write_all(answer("403 Forbidden", body).as_bytes()).await;
            return;
        }
        let Some(port) = self.routes.get(&host) else {
            let _ = browser.write_all(answer("404 Not Found", proxy::NO_WORKSPACE.into()).as_bytes()).await;
            return;
        };
        let tcp = match tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(("127.0.0.1", port))).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(_)) | Err(_) => {
                let body =
                    format!("Error 521: the workspace agent for {host} refused the connection (web server is down).");
                let _ = browser.write_all(answer("521 Web Server Is Down", body).as_bytes()).await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        let setting = |id: &str| self.cloudflare.zone_setting(id).unwrap_or_default();
        let present = usize::from(setting("tls_client_auth") == "on");
        let connector = match setting("ssl").as_str() {
            "strict" => Some(&self.strict[present]),
            "full" => Some(&self.full[present]),
            _ => None,
        };
        let Some(connector) = connector else {
            // Flexible or off: plain HTTP to the origin.
            relay(browser, tcp, &head, &host).await;
            return;
        };
        let Ok(name) = ServerName::try_from(host.clone()) else {
            let _ =
                browser.write_all(answer("400 Bad Request", format!("{host} is not a host name.")).as_bytes()).await;
            return;
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(agent)) => relay(browser, agent, &head, &host).await,
            Ok(Err(error)) => {
                let invalid = error
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
                let (status, body) = if invalid {
                    (
                        "526 Invalid SSL Certificate",
                        format!(
                            "Error 526: the workspace agent's certificate is not valid for {host} ({error}). \
                             The edge accepts only a current Origin CA certificate for the workspace's own name."
                        ),
                    )
                } else {
                    (
                        "525 SSL Handshake Failed",
                        format!("Error 525: TLS with the workspace agent for {host} failed ({error})."),
                    )
                };
                tracing::info!(%host, %error, "edge: TLS to the agent failed");
                let _ = browser.write_all(answer(status, body).as_bytes()).await;
            }
            Err(_) => {
                let body = format!("Error 525: TLS with the workspace agent for {host} timed out.");
                let _ = browser.write_all(answer("525 SSL Handshake Failed", body).as_bytes()).await;
            }
        }
    }
}

/// Sends the request head, waits for the first bytes of the answer (a
/// refused client certificate shows up here, after the handshake), then
/// pipes both ways.
async fn relay<B, A>(mut browser: B, mut agent: A, head: &[u8], host: &str)
where
    B: AsyncRead + AsyncWrite + Unpin,
    A: AsyncRead + AsyncWrite + Unpin,
{
    if agent.write_all(head).await.is_err() || agent.flush().await.is_err() {
        return;
    }
    let mut first = vec![0u8; 16 * 1024];
    let failure = match tokio::time::timeout(ORIGIN_TIMEOUT, agent.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {
            if browser.write_all(&first[..n]).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut browser, &mut agent).await;
            }
            return;
        }
        Ok(Ok(_)) => (
            "520 Unknown Error",
            format!("Error 520: the workspace agent for {host} closed the connection without an answer."),
        ),
        Ok(Err(error)) => (
            "525 SSL Handshake Failed",
            format!("Error 525: the workspace agent for {host} refused the edge ({error})."),
        ),
        Err(_) => (
            "524 A Timeout Occurred",
            format!("Error 524: the workspace agent for {host} did not answer within 100 s."),
        ),
    };
    tracing::info!(%host, status = failure.0, "edge: the agent did not answer");
    let _ = browser.write_all(proxy::plain_response(failure.0, &failure.1).as_bytes()).await;
}
