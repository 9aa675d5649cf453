//! Mutual TLS between nodes: who may speak gRPC to a node.
//!
//! Every node holds a certificate signed by the cluster's CA for one name
//! that all nodes share (the caller passes it to [`ClusterTls::load`]; the
//! node uses `region_config::CLUSTER_TLS_NAME`). As a server a node accepts a connection only from a
//! client presenting such a certificate; as a client it accepts a peer only
//! if the peer's certificate is signed by the same CA for that name. So
//! membership of the cluster is proven by the CA's signature, not by a
//! network address: a process that reaches the gRPC port without a node
//! certificate is refused during the TLS handshake, before any message is
//! decoded, let alone handed to a group.
//!
//! rustls with the *ring* provider does the cryptography; [`install_crypto_provider`]
//! makes it the process default so that every other rustls user (the HTTP
//! client of webhooks) agrees.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// How long a peer may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes *ring* the process's rustls provider; harmless when called again.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A node's TLS material, ready for the gRPC server and its clients.
#[derive(Clone)]
pub struct ClusterTls {
    pub server: ServerTlsConfig,
    pub client: ClientTlsConfig,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no PEM {what}")]
    NotPem { path: String, what: &'static str },
}

fn read(path: &Path, what: &'static str, marker: &str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains(marker) {
        return Err(TlsError::NotPem {
            path: path.display().to_string(),
            what,
        });
    }
    Ok(bytes)
}

impl ClusterTls {
    /// Reads the CA certificate, this node's certificate and its key (PEM),
    /// for peers named `server_name`.
    pub fn load(ca_cert: &Path, cert: &Path, key: &Path, server_name: &str) -> Result<Self, TlsError> {
        install_crypto_provider();
        let ca = Certificate::from_pem(read(ca_cert, "certificate", "BEGIN CERTIFICATE")?);
        let identity = Identity::from_pem(
            read(cert, "certificate", "BEGIN CERTIFICATE")?,
            read(key, "private key", "PRIVATE KEY")?,
        );
        let server = ServerTlsConfig::new()
            .identity(identity.clone())
            .client_ca_root(ca.clone())
            .timeout(HANDSHAKE_TIMEOUT);
        let client = ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(identity)
            .domain_name(server_name.to_owned());
        Ok(ClusterTls { server, client })
    }
}
