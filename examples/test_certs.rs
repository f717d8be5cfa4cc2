//! Test certificates made on the spot with `rcgen` (nothing checked in, nothing
//! downloaded): a CA, a server certificate for `localhost` and `127.0.0.1` signed by
//! it, a server certificate it signed for another name only, a client certificate
//! signed by it, and a client certificate of another CA.
//! `tests/tls.rs` uses the functions; the browser tests run the example:
//!
//! ```sh
//! cargo run --release --example test_certs -- DIR   # writes DIR/{ca,server,elsewhere,client,stranger}.{pem,key}
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// One certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

/// Everything a TLS test needs.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA that signed `server` and `client`.
    pub ca: Pair,
    /// For `localhost` and `127.0.0.1`.
    pub server: Pair,
    /// Signed by `ca` too, but for `other.example` only: served on 127.0.0.1, a
    /// client that checks the name refuses it.
    pub elsewhere: Pair,
    /// A client certificate signed by `ca`.
    pub client: Pair,
    /// A client certificate signed by another CA.
    pub stranger: Pair,
}

fn ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, Pair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let key_pem = key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(params, key).unwrap();
    let pair = Pair {
        cert: issuer.pem(),
        key: key_pem,
    };
    (issuer, pair)
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Pair {
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A fresh set of test certificates.
pub fn make() -> TestCerts {
    let (issuer, ca_pair) = ca("perfstats test CA");
    let (other, _) = ca("another CA");
    TestCerts {
        server: leaf(
            &issuer,
            "perfstats test server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        elsewhere: leaf(
            &issuer,
            "perfstats server elsewhere",
            &["other.example"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(&issuer, "node-1f", &[], ExtendedKeyUsagePurpose::ClientAuth),
        stranger: leaf(&other, "stranger", &[], ExtendedKeyUsagePurpose::ClientAuth),
        ca: ca_pair,
    }
}

/// Writes `DIR/{ca,server,elsewhere,client,stranger}.{pem,key}`.
pub fn write(certs: &TestCerts, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, pair) in [
        ("ca", &certs.ca),
        ("server", &certs.server),
        ("elsewhere", &certs.elsewhere),
        ("client", &certs.client),
        ("stranger", &certs.stranger),
    ] {
        std::fs::write(dir.join(format!("{name}.pem")), &pair.cert)?;
        std::fs::write(dir.join(format!("{name}.key")), &pair.key)?;
    }
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let dir = std::env::args_os().nth(1).expect("usage: test_certs DIR");
    write(&make(), std::path::Path::new(&dir)).expect("writing the certificates");
}
