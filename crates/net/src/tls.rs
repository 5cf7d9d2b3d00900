//! Mutual TLS configuration (rustls, ring provider).
//!
//! The server requires a client certificate that chains to the federation CA and is valid now;
//! the client presents its site certificate and checks the server's against the same CA.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Errors building TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM that holds no certificate or key, or does not parse.
    #[error("{what}: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// tonic refused the endpoint.
    #[error("endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            detail: "no certificate found".to_string(),
        });
    }
    Ok(certs)
}

fn key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?
        .ok_or(TlsError::Pem {
            what,
            detail: "no private key found".to_string(),
        })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server TLS config: presents `cert_pem`/`key_pem` and requires client certificates signed by
/// the CA in `ca_pem`. Speaks HTTP/2 only (gRPC).
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in certs(ca_pem, "CA certificate")? {
        roots.add(ca)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(cert_pem, "server certificate")?,
            key(key_pem, "server key")?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connecting client channel to `url` (e.g. `https://127.0.0.1:7000`), presenting the
/// site certificate and expecting a server certificate for `server_name` signed by the CA.
pub fn client_channel(
    url: &str,
    server_name: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Channel, TlsError> {
    // Validate the PEM here so that a bad file is a clear error, not a handshake failure.
    certs(ca_pem, "CA certificate")?;
    certs(cert_pem, "site certificate")?;
    key(key_pem, "site key")?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
        .domain_name(server_name);
    let endpoint = Endpoint::from_shared(url.to_string())?
        .tls_config(tls)?
        .connect_timeout(std::time::Duration::from_secs(10));
    Ok(endpoint.connect_lazy())
}

/// What a TLS probe of the coordinator found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The handshake completed and the server kept the connection open: our certificate is
    /// accepted.
    Accepted,
    /// Nothing to say about certificates: the server is unreachable or slow.
    Unreachable(String),
    /// The server (or we) refused the TLS session; the reason names the failed check.
    Refused(String),
}

/// Opens one TLS connection to `addr` (`host:port`) as `gRPC` would, and reads briefly after
/// the handshake. With TLS 1.3 a server that rejects the client certificate says so only after
/// the client's side of the handshake is done, in an alert the client sees on its first read;
/// gRPC reports that as a reset connection, indistinguishable from a restarting server. This
/// probe tells the two apart, so a site with a foreign or expired certificate stops at once with
/// the reason instead of retrying.
pub async fn probe(
    addr: &str,
    server_name: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Probe, TlsError> {
    use tokio::io::AsyncReadExt;
    let mut roots = RootCertStore::empty();
    for ca in certs(ca_pem, "CA certificate")? {
        roots.add(ca)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            certs(cert_pem, "site certificate")?,
            key(key_pem, "site key")?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let Ok(name) = rustls::pki_types::ServerName::try_from(server_name.to_string()) else {
        return Ok(Probe::Refused(format!(
            "'{server_name}' is not a valid server name"
        )));
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Ok(Probe::Unreachable(e.to_string())),
        Err(_) => return Ok(Probe::Unreachable("connect timed out".into())),
    };
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(e) => return Ok(classify(&e)),
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(std::time::Duration::from_secs(2), tls.read(&mut buf)).await {
        // The server waits for the HTTP/2 preface (or sends its settings): accepted.
        Err(_) | Ok(Ok(1..)) => Ok(Probe::Accepted),
        Ok(Ok(0)) => Ok(Probe::Refused(
            "the server closed the connection right after the handshake".into(),
        )),
        Ok(Err(e)) => Ok(classify(&e)),
    }
}

fn classify(e: &std::io::Error) -> Probe {
    let text = e.to_string();
    let tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if tls || text.contains("alert") || text.contains("certificate") {
        Probe::Refused(text)
    } else {
        Probe::Unreachable(text)
    }
}
