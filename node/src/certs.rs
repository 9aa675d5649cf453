//! A cluster CA and node certificates for the node-to-node mutual TLS
//! (`transport::tls`), as `boxoffice admin gen-certs` and the local
//! launchers (demo, tests, benchmarks) make them.
//!
//! Layout of a certificate directory:
//!
//! ```text
//! ca.pem            the cluster CA's certificate: every node trusts it
//! ca.key            the CA's private key: keep it offline in production
//! node-{id}.pem     node {id}'s certificate, for `region_config::CLUSTER_TLS_NAME`
//! node-{id}.key     node {id}'s private key (PKCS#8)
//! ```
//!
//! Keys are ECDSA P-256. The CA's certificate is rebuilt from fixed
//! parameters and its key, so a node added later is signed by the same CA
//! without parsing the old certificate. Private keys are written with mode
//! 0600. Nothing here runs on a node's serving path.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use region_config::{CLUSTER_TLS_NAME, NodeId, TlsConfig};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
/// How long the CA and node certificates are valid.
const CA_VALID_DAYS: i64 = 10 * 365;
const NODE_VALID_DAYS: i64 = 2 * 365;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // A day of slack for clocks that are a little behind.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// The CA's parameters: the same every time, so that its key alone can sign.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "boxoffice cluster CA");
    name.push(DnType::OrganizationName, "boxoffice");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// A certificate directory (see the module doc).
#[derive(Debug, Clone)]
pub struct CertDir {
    dir: PathBuf,
}

impl CertDir {
    /// Opens `dir`, creating it and a new CA in it if it has none.
    pub fn open_or_create(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let certs = CertDir { dir: dir.to_owned() };
        let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
        match (cert.is_file(), key.is_file()) {
            (true, true) => {}
            (false, false) => {
                let key = KeyPair::generate()?;
                let mut params = ca_params()?;
                validity(&mut params, CA_VALID_DAYS);
                let ca = params.self_signed(&key)?;
                write_private(&dir.join(CA_KEY), &key.serialize_pem())?;
                fs::write(dir.join(CA_CERT), ca.pem())?;
            }
            _ => anyhow::bail!(
                "{} has only one of {CA_CERT} and {CA_KEY}; restore the other or use an empty directory",
                dir.display()
            ),
        }
        Ok(certs)
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    fn node_paths(&self, node_id: NodeId) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("node-{node_id}.pem")),
            self.dir.join(format!("node-{node_id}.key")),
        )
    }

    /// Issues (or keeps, if present) node `node_id`'s certificate and key;
    /// the `[tls]` section that node runs with.
    pub fn node(&self, node_id: NodeId) -> anyhow::Result<TlsConfig> {
        let (cert_path, key_path) = self.node_paths(node_id);
        if !(cert_path.is_file() && key_path.is_file()) {
            let ca_key_pem = fs::read_to_string(self.dir.join(CA_KEY))
                .with_context(|| format!("cannot read the CA key in {}", self.dir.display()))?;
            let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&ca_key_pem)?);
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(vec![CLUSTER_TLS_NAME.to_owned()])?;
            params
                .distinguished_name
                .push(DnType::CommonName, format!("boxoffice node {node_id}"));
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            validity(&mut params, NODE_VALID_DAYS);
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&key_path, &key.serialize_pem())?;
            fs::write(&cert_path, cert.pem())?;
        }
        Ok(TlsConfig {
            ca_cert: self.ca_cert(),
            cert: cert_path,
            key: key_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_signs_node_certificates_now_and_later() {
        let dir = tempfile::tempdir().unwrap();
        let certs = CertDir::open_or_create(dir.path()).unwrap();
        let one = certs.node(1).unwrap();
        let ca_before = fs::read(certs.ca_cert()).unwrap();
        // Reopening keeps the CA; a later node gets its own key.
        let again = CertDir::open_or_create(dir.path()).unwrap();
        let two = again.node(2).unwrap();
        assert_eq!(fs::read(again.ca_cert()).unwrap(), ca_before);
        assert_ne!(fs::read(&one.key).unwrap(), fs::read(&two.key).unwrap());
        let mode = fs::metadata(&two.key).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
        // Both load as the TLS material of a node.
        for tls in [one, two] {
            transport::tls::ClusterTls::load(&tls.ca_cert, &tls.cert, &tls.key, CLUSTER_TLS_NAME).unwrap();
        }
        // Half a CA is refused rather than replaced.
        fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        assert!(CertDir::open_or_create(dir.path()).is_err());
    }
}
