//! The client nodes use: [`Client`] (one attempt, or through a [`RetryPolicy`]), the
//! non-blocking [`Reporter`], and the seed's helpers in Rust form; and the terminal
//! commands' work ([`terminal`], [`import`]).
//!
//! A client takes one server's address or several, comma-separated: it sends to one
//! server while that works, and after a retryable failure (see [`is_retryable`])
//! the next attempt goes to the next server in the list.
//!
//! ```no_run
//! use perfstats::client::Client;
//! use perfstats::{Event, PerformanceData};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect_lazy("http://10.0.0.1:12345,http://10.0.0.2:12345")?;
//! let report = PerformanceData::new(0, "1f", Event::NewBlockReceived, "block 17");
//! let ack = client.send_performance_stat_with_retries(report).await?;
//! println!("stored as #{} in run {}", ack.seq, ack.run);
//! # Ok(()) }
//! ```

pub mod check;
pub mod http;
pub mod import;
mod reporter;
mod retry;
pub mod runs;
pub mod sweep;
pub mod terminal;

pub use reporter::{ReportError, Reporter, ReporterStats};
pub use retry::{Backoff, RetryPolicy, is_retryable, random_short_sleep};

use crate::pb::performance_stats_client::PerformanceStatsClient;
use crate::pb::{Ack, BatchAck, Event, PerformanceData};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where the server listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:12345";

impl PerformanceData {
    /// A report of `event` by `sender` at `time_unix_nano` (0: "use the server's
    /// time"), with a fresh UUIDv7 `report_id` so that retries are idempotent.
    pub fn new(
        time_unix_nano: i64,
        sender: impl Into<String>,
        event: Event,
        message: impl Into<String>,
    ) -> Self {
        PerformanceData {
            time_unix_nano,
            sender: sender.into(),
            event: event as i32,
            message: message.into(),
            report_id: uuid::Uuid::now_v7().to_string(),
        }
    }
}

/// How to reach a server over TLS (`https://` addresses): the CA that signed the
/// server's certificate, and for mutual TLS this client's certificate and key, all
/// PEM. There are no built-in roots: the CA is required.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA certificate(s) the server's certificate must chain to.
    pub ca: Option<Vec<u8>>,
    /// This client's certificate chain and private key, for a server with `--client-ca`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Trusts the CA(s) in `ca_pem`.
    pub fn with_ca(ca_pem: impl Into<Vec<u8>>) -> ClientTls {
        ClientTls {
            ca: Some(ca_pem.into()),
            identity: None,
        }
    }

    /// The same, also presenting this certificate chain and key (mutual TLS).
    pub fn with_identity(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> ClientTls {
        self.identity = Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// From the files of `--ca`, `--cert` and `--key` (cert and key go together);
    /// errors name the flag and the file.
    pub fn from_files(
        ca: Option<&Path>,
        certificate: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<ClientTls, String> {
        use crate::pem::read;
        let identity = match (certificate, key) {
            (Some(certificate), Some(key)) => {
                Some((read(certificate, "--cert")?, read(key, "--key")?))
            }
            (None, None) => None,
            _ => return Err("--cert and --key go together".into()),
        };
        Ok(ClientTls {
            ca: ca.map(|path| read(path, "--ca")).transpose()?,
            identity,
        })
    }

    /// Whether anything is set.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }

    /// Checks the PEM texts parse, so that mistakes show before the first call.
    pub fn check(&self) -> Result<(), String> {
        use crate::pem::{certificates, private_key, roots};
        match &self.ca {
            Some(ca) => drop(roots(ca, "--ca")?),
            None => {
                return Err(
                    "https:// needs the CA that signed the server's certificate (--ca PEM)".into(),
                );
            }
        }
        if let Some((certificate, key)) = &self.identity {
            certificates(certificate, "--cert")?;
            private_key(key, "--key")?;
        }
        Ok(())
    }

    /// The rustls client configuration (ring provider), offering `alpn`.
    pub(crate) fn rustls(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, String> {
        use crate::pem::{certificates, private_key, provider, roots};
        let roots = match &self.ca {
            Some(ca) => roots(ca, "--ca")?,
            None => rustls::RootCertStore::empty(),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((certificate, key)) => builder
                .with_client_auth_cert(
                    certificates(certificate, "--cert")?,
                    private_key(key, "--key")?,
                )
                .map_err(|error| format!("--cert/--key: {error}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(config)
    }
}

/// The addresses of a comma-separated `list`, trimmed, in order; an empty entry is
/// refused, naming its position.
pub(crate) fn addresses(list: &str) -> Result<Vec<&str>, String> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    let count = entries.len();
    match entries.iter().position(|entry| entry.is_empty()) {
        None => Ok(entries),
        Some(_) if count == 1 => Err("no address given (empty)".into()),
        Some(index) => Err(format!(
            "{list:?}: entry {} of {count} is empty (addresses are separated by single commas)",
            index + 1
        )),
    }
}

/// An error and its causes, `a: b: c`.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text = format!("{text}: {next}");
        cause = next.source();
    }
    text
}

/// Why [`Client::connect_lazy`] or [`Client::connect_lazy_with_tls`] could not make
/// a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError(pub String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// A connection to one perfstats server, or to several for failover, with the retry
/// policy its `*_with_retries` calls use. Cheap to clone; clones share the
/// connections and the choice of server.
///
/// With several servers every call goes to the current one; an attempt that fails
/// in a way [`is_retryable`] accepts (unreachable, timed out, busy, aborted, a broken
/// connection) moves the current server to the next in the list (after the last,
/// the first), so the next attempt, of this call or another, goes there. Other
/// failures (`INVALID_ARGUMENT`…) do not move it.
#[derive(Debug, Clone)]
pub struct Client {
    stubs: Arc<[PerformanceStatsClient<Channel>]>,
    /// The index in `stubs` of the server calls go to; always less than its length.
    current: Arc<AtomicUsize>,
    policy: RetryPolicy,
    token: Option<MetadataValue<Ascii>>,
}

impl Client {
    /// A client for `addr` (e.g. `http://127.0.0.1:12345`), or for several servers
    /// given as a comma-separated list (`http://10.0.0.1:12345,http://10.0.0.2:12345`;
    /// spaces around entries are ignored, an empty entry is refused), that connects
    /// on first use, so a server that is not up yet is a retryable failure, not an
    /// error here.
    pub fn connect_lazy(addr: &str) -> Result<Client, ConnectError> {
        let channels = addresses(addr)
            .map_err(ConnectError)?
            .into_iter()
            .map(|one| {
                let endpoint = Endpoint::from_shared(one.to_string())
                    .map_err(|error| ConnectError(format!("{one}: {}", with_causes(&error))))?;
                Ok(endpoint
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    .connect_lazy())
            })
            .collect::<Result<Vec<_>, ConnectError>>()?;
        Ok(Client::from_channels(channels))
    }

    /// A client for `addr` (one address or a comma-separated list, as for
    /// [`Client::connect_lazy`]) that connects on first use, over TLS for an
    /// `https://` address (`tls` must then name the CA; an identity adds mutual
    /// TLS). An `http://` address with TLS settings is refused rather than sent in
    /// the clear. Errors name the address (or the empty entry) at fault.
    pub fn connect_lazy_with_tls(addr: &str, tls: &ClientTls) -> Result<Client, ConnectError> {
        let channels = addresses(addr)
            .map_err(ConnectError)?
            .into_iter()
            .map(|one| Self::tls_channel(one, tls))
            .collect::<Result<Vec<_>, ConnectError>>()?;
        Ok(Client::from_channels(channels))
    }

    /// The lazily connected channel to one address, with `tls` for `https://`.
    fn tls_channel(addr: &str, tls: &ClientTls) -> Result<Channel, ConnectError> {
        let failed = |error: &dyn std::fmt::Display| ConnectError(format!("{addr}: {error}"));
        let endpoint = Endpoint::from_shared(addr.to_string())
            .map_err(|error| failed(&error))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let https = endpoint.uri().scheme_str() == Some("https");
        let endpoint = match (https, tls.is_empty()) {
            (false, true) => endpoint,
            (false, false) => {
                return Err(failed(
                    &"TLS settings (--ca/--cert/--key) need an https:// address",
                ));
            }
            (true, _) => {
                tls.check().map_err(|error| failed(&error))?;
                let mut config = ClientTlsConfig::new();
                if let Some(ca) = &tls.ca {
                    config = config.ca_certificate(Certificate::from_pem(ca));
                }
                if let Some((certificate, key)) = &tls.identity {
                    config = config.identity(Identity::from_pem(certificate, key));
                }
                endpoint
                    .tls_config(config)
                    .map_err(|error| failed(&with_causes(&error)))?
            }
        };
        Ok(endpoint.connect_lazy())
    }

    /// A client over an existing channel (one server), with the seed's retry policy.
    pub fn from_channel(channel: Channel) -> Client {
        Client::from_channels(vec![channel])
    }

    /// A client over one channel per server, in failover order (at least one).
    fn from_channels(channels: Vec<Channel>) -> Client {
        debug_assert!(!channels.is_empty());
        Client {
            stubs: channels
                .into_iter()
                .map(PerformanceStatsClient::new)
                .collect(),
            current: Arc::new(AtomicUsize::new(0)),
            policy: RetryPolicy::default(),
            token: None,
        }
    }

    /// The same client sending `authorization: Bearer <token>` with every call
    /// (for a server started with `--token`).
    pub fn with_token(mut self, token: &str) -> Result<Client, Status> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("token: must be printable ASCII"))?;
        self.token = Some(value);
        Ok(self)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }

    /// The same client with another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Client {
        self.policy = policy;
        self
    }

    /// The retry policy of this client.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends one report, once (bounded by the policy's attempt timeout), to the
    /// current server. An empty `report_id` is filled in by the server.
    pub async fn send_performance_stat(&self, report: PerformanceData) -> Result<Ack, Status> {
        let once = RetryPolicy {
            max_retries: 0,
            ..self.policy
        };
        self.call(&once, |stub| self.report_stat(stub, report.clone()))
            .await
    }

    /// Sends one report through the retry policy, moving to the next server after
    /// a retryable failure; every attempt carries the same `report_id` (one is
    /// chosen here if empty), so it is stored at most once.
    pub async fn send_performance_stat_with_retries(
        &self,
        mut report: PerformanceData,
    ) -> Result<Ack, Status> {
        if report.report_id.is_empty() {
            report.report_id = uuid::Uuid::now_v7().to_string();
        }
        self.call(&self.policy, |stub| self.report_stat(stub, report.clone()))
            .await
    }

    /// Sends many reports in one `ReportStats` stream through the retry policy
    /// (moving to the next server after a retryable failure). Reports without a
    /// `report_id` get one first, the same for every attempt, so each is stored
    /// once: a server may have stored part of a failed call (servers sharing a
    /// stream; one server storing a call of more than 1,024 reports in pieces when
    /// a commit fails), which the retry completes (those come back as duplicates).
    pub async fn send_batch_with_retries(
        &self,
        mut reports: Vec<PerformanceData>,
    ) -> Result<BatchAck, Status> {
        for report in &mut reports {
            if report.report_id.is_empty() {
                report.report_id = uuid::Uuid::now_v7().to_string();
            }
        }
        self.call(&self.policy, |mut stub| {
            let request = self.request(tokio_stream::iter(reports.clone()));
            async move { Ok(stub.report_stats(request).await?.into_inner()) }
        })
        .await
    }

    /// Runs `attempt` through `policy`, each time on the current server's stub; a
    /// retryable failure moves the current server on from the one that attempt used,
    /// unless another call has moved it meanwhile.
    async fn call<T, F, Fut>(&self, policy: &RetryPolicy, mut attempt: F) -> Result<T, Status>
    where
        F: FnMut(PerformanceStatsClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let used = AtomicUsize::new(0);
        policy
            .run_observed(
                || {
                    let index = self.current.load(Ordering::Acquire);
                    used.store(index, Ordering::Relaxed);
                    attempt(self.stubs[index].clone())
                },
                |status| {
                    if is_retryable(status) {
                        self.move_on_from(used.load(Ordering::Relaxed), status);
                    }
                },
            )
            .await
    }

    /// Makes the server after `failed` the current one, if `failed` still is.
    fn move_on_from(&self, failed: usize, status: &Status) {
        let count = self.stubs.len();
        if count < 2 {
            return;
        }
        let next = (failed + 1) % count;
        if self
            .current
            .compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::debug!(
                failed,
                next,
                code = ?status.code(),
                "perfstats server failed; moving to the next"
            );
        }
    }

    async fn report_stat(
        &self,
        mut stub: PerformanceStatsClient<Channel>,
        report: PerformanceData,
    ) -> Result<Ack, Status> {
        Ok(stub.report_stat(self.request(report)).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::addresses;

    #[test]
    fn address_lists_are_split_trimmed_and_checked() {
        assert_eq!(addresses("http://a:1").unwrap(), ["http://a:1"]);
        assert_eq!(
            addresses(" http://a:1 ,http://b:2\t").unwrap(),
            ["http://a:1", "http://b:2"]
        );
        let error = addresses("http://a:1,,http://b:2").unwrap_err();
        assert!(error.contains("entry 2 of 3 is empty"), "{error}");
        assert!(
            addresses("http://a:1, ")
                .unwrap_err()
                .contains("entry 2 of 2")
        );
        assert!(addresses("").unwrap_err().contains("no address"));
    }
}
