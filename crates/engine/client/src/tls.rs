//! TLS to a TCP daemon, as the docker CLI's `--tlsverify`: the daemon's
//! certificate is checked against a given CA, and the client presents its
//! own certificate when one is given.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// A TLS connector trusting the CA certificates in `ca` (PEM), presenting
/// `cert` and `key` (PEM) when both are given.
pub fn connector(ca: &Path, client: Option<(&Path, &Path)>) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca, "CA certificate (--tlscacert)")? {
        roots
            .add(c)
            .map_err(|e| tls_err(format!("CA certificate {}: {e}", ca.display())))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(format!("setup: {e}")))?
    .with_root_certificates(roots);
    let cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = read_certs(cert, "certificate (--tlscert)")?;
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_err(format!("read key (--tlskey) {}: {e}", key.display())))?;
            builder.with_client_auth_cert(certs, k).map_err(|e| {
                tls_err(format!(
                    "certificate {} and key {} do not fit together: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect())
        .map_err(|e| tls_err(format!("read {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{what} {} holds no CERTIFICATE block",
            path.display()
        )));
    }
    Ok(certs)
}

fn tls_err(msg: String) -> Error {
    Error::Tls(msg)
}
