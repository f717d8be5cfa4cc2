//! perfstats as an OpenTelemetry OTLP logs receiver on its one port:
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export` over gRPC (here) and
//! `POST /v1/logs` over HTTP ([`http`]), both through [`LogsIngest`]. A request's
//! records become reports ([`crate::otlp::map_request`]); those that cannot are
//! refused one by one in a partial success, counted in `/metrics` by reason and
//! logged (the first problem, at most every [`LOG_INTERVAL`]); the others are
//! stored (or published, with `--nats`) before the answer. A store that cannot take
//! them, or a spent budget, answers `UNAVAILABLE` (503), which exporters retry; a
//! request over [`MAX_REQUEST_BYTES`] answers `INVALID_ARGUMENT` (413), which they
//! do not.

pub mod http;

use super::limits::Limits;
use super::observe;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::otlp::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    GRPC_PATH_PREFIX, LogsService, MAX_REQUEST_BYTES, Refusal, map_request,
};
use crate::report::now_unix_nano;
use crate::writes::Writes;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// How often refused records are logged at most (with how many went unlogged).
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a request holds of the `--max-stream-text` budget while it is mapped and
/// stored, per byte of its protobuf encoding: the decoded records and the reports
/// made of them take about this much more than the bytes they came in.
const HELD_BYTES_PER_ENCODED_BYTE: usize = 4;

/// The OTLP logs ingest, shared by the gRPC service and the HTTP handler. Cheap
/// to clone.
#[derive(Clone)]
pub struct LogsIngest {
    writes: Writes,
    metrics: Arc<Metrics>,
    limits: Arc<Limits>,
    problems: Arc<Mutex<ProblemLog>>,
}

/// When refused records were last logged, and how many were not since.
#[derive(Default)]
struct ProblemLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogsIngest {
    /// The ingest writing to `writes`, counting in `metrics`, holding requests
    /// within `limits`.
    pub fn new(writes: Writes, metrics: Arc<Metrics>, limits: Arc<Limits>) -> Self {
        LogsIngest {
            writes,
            metrics,
            limits,
            problems: Arc::default(),
        }
    }

    /// Maps `request`, stores what can be stored, and answers; counts the call in
    /// the ingest metrics.
    pub async fn export(
        &self,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, Error> {
        let started = Instant::now();
        let answer = self.store(request).await;
        observe(&self.metrics, started, &answer);
        answer
    }

    async fn store(
        &self,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, Error> {
        let held = request
            .encoded_len()
            .saturating_mul(HELD_BYTES_PER_ENCODED_BYTE);
        // Overload answers UNAVAILABLE: the status OTLP exporters retry.
        let _share = self.limits.stream_text(held).map_err(|busy| {
            Error::Unavailable(format!(
                "OTLP: the server holds as many requests as --max-stream-text allows; nothing \
                 of this request was stored, retry later ({busy})"
            ))
        })?;
        let mapped = map_request(&request, now_unix_nano());
        drop(request);
        let partial_success = mapped.partial_success();
        if let Some(partial) = &partial_success {
            self.count_refused(&mapped.refused, partial);
        }
        if !mapped.reports.is_empty() {
            self.writes
                .append(mapped.reports)
                .await
                .map_err(|error| match error {
                    Error::Busy(text) => Error::Unavailable(text),
                    other => other,
                })?;
        }
        Ok(ExportLogsServiceResponse { partial_success })
    }

    /// Counts each refused record by reason, and logs the first problem unless one
    /// was logged less than [`LOG_INTERVAL`] ago.
    fn count_refused(&self, refused: &[Refusal], partial: &ExportLogsPartialSuccess) {
        for refusal in refused {
            self.metrics.refused_log_record(refusal.invalid.field);
        }
        let mut log = self.problems.lock().expect("the problem log");
        let now = Instant::now();
        if log.last.is_some_and(|last| now - last < LOG_INTERVAL) {
            log.unlogged += refused.len() as u64;
            return;
        }
        tracing::warn!(
            unlogged_since_last = log.unlogged,
            "OTLP logs: {}",
            partial.error_message
        );
        *log = ProblemLog {
            last: Some(now),
            unlogged: 0,
        };
    }
}

#[tonic::async_trait]
impl LogsService for LogsIngest {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        Ok(Response::new(
            LogsIngest::export(self, request.into_inner()).await?,
        ))
    }
}

/// What an oversized gRPC request is told.
fn too_large() -> Error {
    Error::TooLarge(format!(
        "OTLP: the request is larger than {MAX_REQUEST_BYTES} bytes (after decompression); \
         nothing was stored: export smaller batches"
    ))
}

/// Whether `path` is the OTLP logs gRPC service's.
pub fn is_grpc_path(path: &str) -> bool {
    path.starts_with(GRPC_PATH_PREFIX)
}

/// Gives the answer to an OTLP gRPC request (see [`is_grpc_path`]) that was
/// oversized a status the exporters do not retry. tonic refuses a message over the
/// limit before the service sees it, with `OUT_OF_RANGE` (or `RESOURCE_EXHAUSTED`
/// when it decompresses past the limit), and OTLP exporters retry both;
/// [`LogsIngest`] answers neither itself, so on its path they mean the size and
/// become `INVALID_ARGUMENT`.
pub fn oversized_not_retried(
    metrics: &Metrics,
    response: axum::response::Response,
) -> axum::response::Response {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(tonic::Code::from);
    match code {
        Some(tonic::Code::OutOfRange | tonic::Code::ResourceExhausted) => {
            let error = too_large();
            metrics.rejected(error.reason());
            Status::from(error).into_http()
        }
        _ => response,
    }
}
