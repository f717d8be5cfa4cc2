//! PEM files and the one crypto provider, for both ends of a TLS connection: the
//! server's certificate and key (`--tls-cert`, `--tls-key`, `--client-ca`) and a
//! client's CA and identity (`--ca`, `--cert`, `--key`). Every error names the flag
//! and says what was wrong.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The one crypto provider used, server and client side.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM text; at least one.
pub(crate) fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{what}: not a PEM certificate file: {error}"))?;
    if certificates.is_empty() {
        return Err(format!(
            "{what}: no PEM certificate (BEGIN CERTIFICATE) found"
        ));
    }
    Ok(certificates)
}

/// The first private key in a PEM text (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|error| format!("{what}: no PEM private key found: {error}"))
}

/// A root store of the certificates in `pem`.
pub(crate) fn roots(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(pem, what)? {
        roots
            .add(certificate)
            .map_err(|error| format!("{what}: not a usable CA certificate: {error}"))?;
    }
    Ok(roots)
}

/// Reads a file named by a flag, saying which flag and file when it cannot.
pub(crate) fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("{flag} {}: {error}", path.display()))
}
