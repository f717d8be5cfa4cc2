//! A look at one NATS server after an attempt to connect failed without saying
//! why (the client reports only "IO error" or "TLS error"): its `INFO` line says
//! whether it wants TLS and client certificates, and a TLS handshake of our own
//! says whether its certificate verifies against `--nats-ca`. No credentials are
//! sent.

use async_nats::ServerAddr;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long each step of a look may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest `INFO` line read (a cluster's lists its URLs).
const MAX_INFO: u64 = 64 * 1024;

/// What a look at one NATS server found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Finding {
    /// Nothing wrong with TLS.
    Fine,
    /// It cannot be reached (or does not answer like NATS): no refusal.
    Unreachable,
    /// It requires TLS and no `--nats-ca` was given.
    TlsRequired,
    /// `--nats-ca` was given and it offers no TLS.
    NoTls,
    /// It verifies clients' certificates and none was given.
    ClientCertificateRequired,
    /// Its certificate does not verify against `--nats-ca`: why.
    ServerCertificate(String),
    /// It refused this server's client certificate: why.
    ClientCertificateRefused(String),
    /// Another TLS failure: why.
    Handshake(String),
}

/// The TLS-related fields of a NATS server's `INFO`.
#[derive(serde::Deserialize, Default)]
struct Info {
    #[serde(default)]
    tls_required: bool,
    #[serde(default)]
    tls_available: bool,
    #[serde(default)]
    tls_verify: bool,
}

async fn step<T>(future: impl Future<Output = std::io::Result<T>>) -> Option<T> {
    tokio::time::timeout(STEP_TIMEOUT, future).await.ok()?.ok()
}

/// Looks at `url` as this server connects to it: with `tls` (from `--nats-ca`)
/// and, when `identity`, a client certificate.
pub(super) async fn tls(
    url: &ServerAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    identity: bool,
) -> Finding {
    let Some(stream) = step(TcpStream::connect((url.host(), url.port()))).await else {
        return Finding::Unreachable;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let read = step((&mut reader).take(MAX_INFO).read_line(&mut line)).await;
    let Some(info) = read
        .and_then(|_| line.trim_end().strip_prefix("INFO "))
        .and_then(|json| serde_json::from_str::<Info>(json).ok())
    else {
        return Finding::Unreachable;
    };
    let Some(tls) = tls else {
        return if info.tls_required || url.tls_required() {
            Finding::TlsRequired
        } else {
            Finding::Fine
        };
    };
    if !info.tls_required && !info.tls_available {
        return Finding::NoTls;
    }
    if info.tls_verify && !identity {
        return Finding::ClientCertificateRequired;
    }
    let Ok(name) = ServerName::try_from(url.host().to_string()) else {
        return Finding::Handshake(format!("{} is not a valid TLS server name", url.host()));
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut stream = match tokio::time::timeout(
        STEP_TIMEOUT,
        connector.connect(name, reader.into_inner()),
    )
    .await
    {
        Err(_) => return Finding::Unreachable,
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return handshake_failure(error, false),
    };
    // With TLS 1.3 a refused client certificate shows on the first read.
    let mut answer = [0u8; 64];
    let exchange = async {
        stream.write_all(b"PING\r\n").await?;
        stream.read(&mut answer).await
    };
    match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
        Ok(Err(error)) => handshake_failure(error, true),
        _ => Finding::Fine,
    }
}

/// What a TLS error says: the server's certificate, or ours, or something else.
fn handshake_failure(error: std::io::Error, after_handshake: bool) -> Finding {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return if after_handshake {
            Finding::Fine
        } else {
            Finding::Handshake(error.to_string())
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(_) => Finding::ServerCertificate(tls.to_string()),
        rustls::Error::AlertReceived(_) if after_handshake => {
            Finding::ClientCertificateRefused(tls.to_string())
        }
        rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::CertificateUnknown,
        ) => Finding::ClientCertificateRefused(tls.to_string()),
        _ => Finding::Handshake(tls.to_string()),
    }
}
