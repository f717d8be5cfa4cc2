//! TLS on the one port: rustls (the `ring` provider) terminates TLS for every
//! accepted connection, each in its own task with a deadline, so a slow or silent
//! handshake never holds up the accept loop; tonic then serves gRPC and HTTP on the
//! decrypted stream as it does on plain TCP. ALPN offers `h2` (gRPC, browsers) and
//! `http/1.1` (scripts, the terminal commands).
//!
//! With a client CA (`--client-ca`) a client certificate is optional in the
//! handshake but verified against that CA when presented; [`super::auth`] then
//! requires one for writes. A client that speaks plaintext to this port is answered
//! in plaintext with a clear refusal (HTTP 400, or gRPC `FAILED_PRECONDITION`)
//! rather than a dropped connection.

use crate::pem::{certificates, private_key, provider, read, roots};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client has for its TLS handshake (or, in plaintext, for its request).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plaintext client of the TLS port is told.
pub const PLAINTEXT_REFUSAL: &str = "this perfstats server requires TLS: use an https:// address (with --ca, the CA that signed its certificate)";

/// The server's TLS settings: its certificate and key, and optionally the CA that
/// client certificates must chain to.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_certificates: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_certificates", &self.client_certificates)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From PEM texts: the certificate chain (leaf first), its private key, and
    /// optionally the CA(s) that client certificates must chain to.
    pub fn from_pem(
        certificate_chain: &[u8],
        key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<ServerTls, String> {
        Self::build(
            certificates(certificate_chain, "--tls-cert")?,
            private_key(key, "--tls-key")?,
            client_ca.map(|pem| roots(pem, "--client-ca")).transpose()?,
        )
    }

    /// From PEM files (`--tls-cert`, `--tls-key`, `--client-ca`); errors name the
    /// flag and the file.
    pub fn from_files(
        certificate_chain: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, String> {
        let name = |flag: &str, path: &Path| format!("{flag} {}", path.display());
        let chain = certificates(
            &read(certificate_chain, "--tls-cert")?,
            &name("--tls-cert", certificate_chain),
        )?;
        let key = private_key(&read(key, "--tls-key")?, &name("--tls-key", key))?;
        let client_ca = match client_ca {
            Some(path) => Some(roots(
                &read(path, "--client-ca")?,
                &name("--client-ca", path),
            )?),
            None => None,
        };
        Self::build(chain, key, client_ca)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Option<rustls::RootCertStore>,
    ) -> Result<ServerTls, String> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?;
        let client_certificates = client_ca.is_some();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|error| format!("--client-ca: {error}"))?,
            ),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|error| format!("--tls-cert/--tls-key: {error}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            client_certificates,
        })
    }

    /// Whether writes need a verified client certificate (a client CA was given).
    pub fn client_certificates(&self) -> bool {
        self.client_certificates
    }
}

/// Whether the connection a request came on presented a client certificate that
/// verified against the client CA (rustls reports peer certificates only then).
pub fn has_client_certificate(extensions: &axum::http::Extensions) -> bool {
    extensions
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .is_some_and(|certificates| !certificates.is_empty())
}

type Accepted = Result<TlsStream<TcpStream>, std::io::Error>;

/// The TLS connections accepted on `listener`, until `stop` turns true or the
/// stream is dropped. Each handshake runs in its own task, bounded by
/// [`HANDSHAKE_TIMEOUT`]; failed handshakes are logged and dropped.
pub fn incoming(
    listener: TcpListener,
    tls: &ServerTls,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<Accepted> {
    let acceptor = TlsAcceptor::from(tls.config.clone());
    let (sender, receiver) = mpsc::channel::<Accepted>(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = sender.closed() => break,
                _ = stop.wait_for(|stopping| *stopping) => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match handshake(tcp, &acceptor).await {
                    Ok(Some(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::debug!("TLS handshake with {peer}: {error}"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// The TLS handshake of one connection; `None` when it was not TLS at all (then it
/// has been answered with [`PLAINTEXT_REFUSAL`]) or closed before a byte.
async fn handshake(
    tcp: TcpStream,
    acceptor: &TlsAcceptor,
) -> Result<Option<TlsStream<TcpStream>>, String> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Err(_) => return Err("nothing sent before the deadline".into()),
        Ok(Err(error)) => return Err(error.to_string()),
        Ok(Ok(0)) => return Ok(None),
        // 0x16: a TLS handshake record.
        Ok(Ok(_)) if first[0] == 0x16 => {}
        Ok(Ok(_)) => {
            refuse_plaintext(tcp, deadline).await;
            return Ok(None);
        }
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Err(_) => Err("timed out".into()),
        Ok(Err(error)) => Err(error.to_string()),
        Ok(Ok(stream)) => Ok(Some(stream)),
    }
}

/// Answers every request of a plaintext connection (HTTP/1.1, or HTTP/2 with prior
/// knowledge as gRPC clients use) with [`PLAINTEXT_REFUSAL`], until the deadline.
async fn refuse_plaintext(tcp: TcpStream, deadline: tokio::time::Instant) {
    let service = hyper::service::service_fn(
        |request: hyper::Request<hyper::body::Incoming>| async move {
            let response: Response = if super::http::is_grpc(request.headers()) {
                tonic::Status::failed_precondition(PLAINTEXT_REFUSAL)
                    .into_http::<axum::body::Body>()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONNECTION, "close")],
                    format!("{PLAINTEXT_REFUSAL}\n"),
                )
                    .into_response()
            };
            Ok::<_, std::convert::Infallible>(response)
        },
    );
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    let _ = tokio::time::timeout_at(deadline, connection).await;
}
