//! The client nodes use: [`Client`] (one attempt, or through a [`RetryPolicy`]), the
//! non-blocking [`Reporter`], and the seed's helpers in Rust form.
//!
//! ```no_run
//! use perfstats::client::Client;
//! use perfstats::{Event, PerformanceData};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect_lazy("http://127.0.0.1:12345")?;
//! let report = PerformanceData::new(0, "1f", Event::NewBlockReceived, "block 17");
//! let ack = client.send_performance_stat_with_retries(report).await?;
//! println!("stored as #{} in run {}", ack.seq, ack.run);
//! # Ok(()) }
//! ```

pub mod http;
mod reporter;
mod retry;
pub mod terminal;

pub use reporter::{ReportError, Reporter, ReporterStats};
pub use retry::{Backoff, RetryPolicy, is_retryable, random_short_sleep};

use crate::pb::performance_stats_client::PerformanceStatsClient;
use crate::pb::{Ack, BatchAck, Event, PerformanceData};
use std::time::Duration;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

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

/// A connection to a perfstats server with the retry policy its `*_with_retries`
/// calls use. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    stub: PerformanceStatsClient<Channel>,
    policy: RetryPolicy,
    token: Option<MetadataValue<Ascii>>,
}

impl Client {
    /// A client for `addr` (e.g. `http://127.0.0.1:12345`) that connects on first
    /// use, so a server that is not up yet is a retryable failure, not an error here.
    pub fn connect_lazy(addr: &str) -> Result<Client, tonic::transport::Error> {
        let channel = Endpoint::from_shared(addr.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Client::from_channel(channel))
    }

    /// A client over an existing channel, with the seed's retry policy.
    pub fn from_channel(channel: Channel) -> Client {
        Client {
            stub: PerformanceStatsClient::new(channel),
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

    /// Sends one report, once (bounded by the policy's attempt timeout). An empty
    /// `report_id` is filled in by the server.
    pub async fn send_performance_stat(&self, report: PerformanceData) -> Result<Ack, Status> {
        RetryPolicy {
            max_retries: 0,
            ..self.policy
        }
        .run(|| self.attempt(report.clone()))
        .await
    }

    /// Sends one report through the retry policy; every attempt carries the same
    /// `report_id` (one is chosen here if empty), so it is stored at most once.
    pub async fn send_performance_stat_with_retries(
        &self,
        mut report: PerformanceData,
    ) -> Result<Ack, Status> {
        if report.report_id.is_empty() {
            report.report_id = uuid::Uuid::now_v7().to_string();
        }
        self.policy.run(|| self.attempt(report.clone())).await
    }

    /// Sends many reports in one `ReportStats` stream through the retry policy:
    /// all are stored or none. Reports without a `report_id` get one first.
    pub async fn send_batch_with_retries(
        &self,
        mut reports: Vec<PerformanceData>,
    ) -> Result<BatchAck, Status> {
        for report in &mut reports {
            if report.report_id.is_empty() {
                report.report_id = uuid::Uuid::now_v7().to_string();
            }
        }
        self.policy
            .run(|| {
                let mut stub = self.stub.clone();
                let request = self.request(tokio_stream::iter(reports.clone()));
                async move { Ok(stub.report_stats(request).await?.into_inner()) }
            })
            .await
    }

    async fn attempt(&self, report: PerformanceData) -> Result<Ack, Status> {
        Ok(self
            .stub
            .clone()
            .report_stat(self.request(report))
            .await?
            .into_inner())
    }
}
