//! The agent behind the edge: it makes its own key and certificate request,
//! serves HTTPS with the certificate signed from it, and answers only
//! clients that present a certificate from the edge's client CA. Real TLS
//! on loopback, with test CAs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sam_agent::Agent;
use sam_agent::tls::{TlsListener, certificate_request, server_config};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Connects as a client trusting `origin_ca` for `name`, optionally with a
/// client certificate, and asks for `/health`; the response head, or why not.
async fn get_health(
    addr: std::net::SocketAddr,
    name: &str,
    origin_ca: &str,
    client: Option<(String, String)>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(origin_ca.as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response).into_owned();
    text.lines().next().map(str::to_owned).filter(|l| !l.is_empty()).ok_or_else(|| "no answer".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_its_name_to_the_edge_only() {
    sam_agent::ensure_tls_provider();
    let name = "ws-a.sam.test";
    let origin_ca = ca("test origin CA");
    let edge_ca = ca("test edge client CA");

    // The agent's side: its own key, a request; the origin CA signs it.
    let (key, csr) = certificate_request().unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    assert!(!csr.contains("PRIVATE KEY"));
    // As Cloudflare's Origin CA does: the names come from the issuing call.
    let mut request = CertificateSigningRequestParams::from_pem(&csr).unwrap();
    request.params.subject_alt_names = vec![rcgen::SanType::DnsName(name.try_into().unwrap())];
    let certificate = request.signed_by(&origin_ca).unwrap().pem();

    // The edge's client certificate.
    let edge_key = KeyPair::generate().unwrap();
    let mut edge_params = CertificateParams::new(vec!["edge.sam.test".to_owned()]).unwrap();
    edge_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let edge_cert = edge_params.signed_by(&edge_key, &edge_ca).unwrap().pem();
    let stranger_ca = ca("someone else");
    let stranger_key = KeyPair::generate().unwrap();
    let stranger_cert =
        CertificateParams::new(vec!["x".to_owned()]).unwrap().signed_by(&stranger_key, &stranger_ca).unwrap().pem();

    let config = server_config(&certificate, &key, Some(&edge_ca.pem())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let agent = Agent::new(
        sam_agent::AgentConfig::new(sam_core::domain::WorkspaceId::new()),
        Arc::new(sam_core::testkit::fakes::FakeTokenAuthority::new("sam-test", "k1")),
        Some(common::test_shell()),
    );
    let server =
        tokio::spawn(sam_agent::web::serve_tls(TlsListener::new(listener, config).unwrap(), Arc::clone(&agent)));

    let origin = origin_ca.pem();
    let edge = Some((edge_cert.clone(), edge_key.serialize_pem()));
    let head = get_health(addr, name, &origin, edge.clone()).await.expect("the edge is answered");
    assert!(head.contains("200"), "{head}");
    // Without the edge's client certificate: nothing.
    let refused = get_health(addr, name, &origin, None).await;
    assert!(refused.is_err(), "a client without the edge's certificate got {refused:?}");
    let refused = get_health(addr, name, &origin, Some((stranger_cert, stranger_key.serialize_pem()))).await;
    assert!(refused.is_err(), "a certificate from another CA got {refused:?}");
    // The certificate is for its own name only: the edge refuses it for another.
    let wrong = get_health(addr, "ws-b.sam.test", &origin, edge).await;
    assert!(wrong.as_ref().is_err_and(|e| e.contains("handshake")), "{wrong:?}");

    agent.shutdown("test");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
}
