//! TLS between the edge and the agent: the agent makes its own key and a
//! certificate request for its workspace's name (the key never leaves the
//! VM), serves HTTPS with the certificate the control plane had signed, and
//! — given the edge's client CA — accepts only connections that present a
//! certificate from it, so scanning the VM's address reaches nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sam_core::secret::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Setting TLS up failed.
#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct TlsError(String);

/// A fresh ECDSA P-256 key (PEM, secret) and a certificate request made
/// with it (PEM). The request names no host: the authority issues the
/// certificate for the workspace's name, which the control plane chooses
/// (the agent learns it only from its grant).
pub fn certificate_request() -> Result<(SecretString, String), TlsError> {
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError(format!("key: {e}")))?;
    let params = rcgen::CertificateParams::default();
    let csr = params.serialize_request(&key).map_err(|e| TlsError(format!("request: {e}")))?;
    let pem = csr.pem().map_err(|e| TlsError(format!("request: {e}")))?;
    Ok((SecretString::new(key.serialize_pem()), pem))
}

/// The server side: `certificate` and `key` (PEM); with `client_ca` (PEM),
/// a client certificate from it is required.
pub fn server_config(
    certificate: &str,
    key: &SecretString,
    client_ca: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_with_names(certificate, key, client_ca).map(|(config, _)| config)
}

/// [`server_config`], and the [`ServerNames`] it serves: the workspace's
/// own name (`certificate`, also for any name without one of its own) and
/// the preview names added later.
pub fn server_config_with_names(
    certificate: &str,
    key: &SecretString,
    client_ca: Option<&str>,
) -> Result<(Arc<rustls::ServerConfig>, ServerNames), TlsError> {
    let names = ServerNames { default: certified_key(certificate, key)?, named: Arc::default() };
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                let cert = cert.map_err(|_| TlsError("the client CA is not PEM".into()))?;
                roots.add(cert).map_err(|e| TlsError(format!("client CA: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| TlsError(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(names.clone()));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), names))
}

fn certified_key(certificate: &str, key: &SecretString) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError("the certificate is not PEM".into()))?;
    if chain.is_empty() {
        return Err(TlsError("no certificate".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|_| TlsError("the key is not PEM".into()))?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    CertifiedKey::from_der(chain, key, &provider).map(Arc::new).map_err(|e| TlsError(format!("certificate: {e}")))
}

/// The names the agent serves TLS for: the workspace's own (the default,
/// for any name without a certificate of its own) and its preview names
/// (`p<port>-ws-<id>…`), each with its own certificate, added while the
/// agent runs. Cheap to clone (shared).
#[derive(Clone)]
pub struct ServerNames {
    default: Arc<CertifiedKey>,
    named: Arc<std::sync::RwLock<std::collections::HashMap<String, Arc<CertifiedKey>>>>,
}

impl std::fmt::Debug for ServerNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerNames").field("named", &self.names()).finish_non_exhaustive()
    }
}

impl ServerNames {
    /// Serves `hostname` with `certificate` (PEM) and `key` (PEM) from now on.
    pub fn add(&self, hostname: &str, certificate: &str, key: &SecretString) -> Result<(), TlsError> {
        let certified = certified_key(certificate, key)?;
        self.named
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hostname.to_ascii_lowercase(), certified);
        Ok(())
    }

    /// Whether `hostname` has a certificate of its own.
    pub fn has(&self, hostname: &str) -> bool {
        self.named
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&hostname.to_ascii_lowercase())
    }

    /// The names with a certificate of their own.
    pub fn names(&self) -> Vec<String> {
        self.named.read().unwrap_or_else(std::sync::PoisonError::into_inner).keys().cloned().collect()
    }
}

impl rustls::server::ResolvesServerCert for ServerNames {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = self.named.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let own = hello.server_name().and_then(|name| named.get(&name.to_ascii_lowercase()).cloned());
        Some(own.unwrap_or_else(|| self.default.clone()))
    }
}

/// A listener whose connections have completed a TLS handshake. Handshakes
/// run concurrently, each bounded in time, so a slow or hostile client
/// holds up no one; failed ones are logged and dropped.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// TLS over `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let acceptor_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Keystroke echoes are tiny writes: never hold them back.
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { accepted, local, acceptor_task })
    }
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener").field("local", &self.local).finish_non_exhaustive()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor task only ends when aborted, by our own drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
