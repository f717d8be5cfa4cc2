//! The `perfstats.v1.PerformanceStats` gRPC service: validate, store, acknowledge;
//! and the rule that every gRPC call on the port is a `POST`.

use super::observe;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::pb::performance_stats_server::PerformanceStats;
use crate::pb::{Ack, BatchAck, PerformanceData};
use crate::report::{Report, now_unix_nano};
use crate::server::limits::{Limits, Share};
use crate::writes::Writes;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};

/// Path prefixes of the gRPC services on the one port: ingest, OTLP logs, and
/// `grpc.*` (health, reflection).
const GRPC_PATH_PREFIXES: [&str; 3] = [
    "/perfstats.v1.",
    "/opentelemetry.proto.collector.logs.v1.",
    "/grpc.",
];

/// The answer to a gRPC method called with anything but `POST` (405,
/// `Allow: POST`), before anything is decoded, or `None` to let it through. tonic
/// dispatches on the path alone, so without it a write sent as `GET` or `OPTIONS`
/// would be stored while rules written for writes (browser checks, say) see a read.
pub fn refusal_unless_post(request: &axum::extract::Request) -> Option<axum::response::Response> {
    let path = request.uri().path();
    if request.method() == Method::POST
        || !GRPC_PATH_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
    {
        return None;
    }
    let refusal = format!(
        "{path}: gRPC methods are called with POST, not {}",
        request.method()
    );
    Some(
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            refusal,
        )
            .into_response(),
    )
}

/// Reports taken in one `ReportStats` stream at most; a node flushing its queue
/// sends far fewer. Larger streams are refused before anything is stored.
pub const MAX_STREAM_REPORTS: usize = 100_000;
/// Text (senders and messages) taken in one `ReportStats` stream at most, so one
/// stream cannot hold unbounded memory while it is collected.
pub const MAX_STREAM_BYTES: usize = 64 << 20;

/// The ingest service, writing to [`Writes`].
pub struct Ingest {
    writes: Writes,
    metrics: Arc<Metrics>,
    limits: Arc<Limits>,
}

impl Ingest {
    /// The service writing to `writes`, counting refusals and latencies in
    /// `metrics`, holding open streams' text within `limits`.
    pub fn new(writes: Writes, metrics: Arc<Metrics>, limits: Arc<Limits>) -> Self {
        Ingest {
            writes,
            metrics,
            limits,
        }
    }
}

#[tonic::async_trait]
impl PerformanceStats for Ingest {
    async fn report_stat(
        &self,
        request: Request<PerformanceData>,
    ) -> Result<Response<Ack>, Status> {
        let started = Instant::now();
        let answer = self.store_one(request.into_inner()).await;
        observe(&self.metrics, started, &answer);
        Ok(Response::new(answer?))
    }

    async fn report_stats(
        &self,
        request: Request<Streaming<PerformanceData>>,
    ) -> Result<Response<BatchAck>, Status> {
        let started = Instant::now();
        let answer = match collect(request.into_inner(), &self.limits).await {
            // The text's share of the budget is held until the reports are stored.
            Ok((reports, _text)) => self.store_batch(reports).await,
            Err(Collect::Refused(error)) => Err(error),
            Err(Collect::Broken(status)) => {
                // The stream itself failed (too large a message, a dropped
                // connection): its status goes back as it is.
                self.metrics.rejected("stream");
                return Err(status);
            }
        };
        observe(&self.metrics, started, &answer);
        Ok(Response::new(answer?))
    }
}

impl Ingest {
    async fn store_one(&self, data: PerformanceData) -> Result<Ack, Error> {
        let report = Report::accept(data, now_unix_nano())?;
        let receipt = self
            .writes
            .append(vec![report])
            .await?
            .pop()
            .ok_or_else(|| Error::Unavailable("store: no receipt".into()))?;
        Ok(Ack {
            seq: receipt.seq,
            duplicate: receipt.duplicate,
            run: receipt.run.to_string(),
        })
    }

    async fn store_batch(&self, reports: Vec<Report>) -> Result<BatchAck, Error> {
        if reports.is_empty() {
            return Ok(BatchAck {
                accepted: 0,
                duplicates: 0,
                run: self.writes.current_run().name.to_string(),
            });
        }
        let receipts = self.writes.append(reports).await?;
        let duplicates = receipts.iter().filter(|receipt| receipt.duplicate).count() as u64;
        Ok(BatchAck {
            accepted: receipts.len() as u64 - duplicates,
            duplicates,
            run: receipts[0].run.to_string(),
        })
    }
}

/// Why a stream was not collected.
enum Collect {
    /// A report or the stream's size broke a rule.
    Refused(Error),
    /// The stream itself failed.
    Broken(Status),
}

/// Bytes reserved from the global budget at a time while a stream is collected.
const TEXT_RESERVATION: usize = 1 << 20;
/// What the allocator keeps beside each heap block (its header and rounding), as
/// glibc's malloc does for small blocks: counted for each string a report holds.
const ALLOCATION_OVERHEAD: usize = 16;

/// The heap a report's strings hold, as the allocator counts it.
fn heap_bytes(report: &Report) -> usize {
    [&report.sender, &report.message, &report.report_id]
        .iter()
        .map(|text| text.capacity() + ALLOCATION_OVERHEAD)
        .sum()
}

/// Reads and validates every report of a stream; nothing is stored yet. What its
/// reports hold (their structures, as the growing list reserves them, and their
/// ids, senders and messages) counts against `limits` (all open streams together)
/// while the returned share is held: a stream of tiny reports costs its ~200 bytes
/// each, not its few bytes of text.
async fn collect(
    mut stream: Streaming<PerformanceData>,
    limits: &Limits,
) -> Result<(Vec<Report>, Option<Share>), Collect> {
    let mut reports: Vec<Report> = Vec::new();
    let (mut text, mut heap) = (0, 0);
    let mut reserved = 0;
    let mut held: Option<Share> = None;
    while let Some(data) = stream.message().await.map_err(Collect::Broken)? {
        let position = reports.len();
        text += data.sender.len() + data.message.len();
        // What the reports so far hold, and this one's text and slot, which it is
        // about to (the list doubles when full, as Vec does).
        let slots = match reports.len() == reports.capacity() {
            true => (reports.capacity() * 2).max(4),
            false => reports.capacity(),
        };
        let bytes = slots * std::mem::size_of::<Report>()
            + heap
            + data.sender.len()
            + data.message.len()
            + ALLOCATION_OVERHEAD * 3;
        while bytes > reserved {
            let share = limits
                .stream_text(TEXT_RESERVATION)
                .map_err(Collect::Refused)?;
            reserved += TEXT_RESERVATION;
            match &mut held {
                Some(held) => held.merge(share),
                None => held = Some(share),
            }
        }
        if position == MAX_STREAM_REPORTS || text > MAX_STREAM_BYTES {
            return Err(Collect::Refused(Error::BadRequest(format!(
                "stream: at most {MAX_STREAM_REPORTS} reports and {MAX_STREAM_BYTES} bytes of text per \
                 ReportStats call; nothing was stored"
            ))));
        }
        let report = Report::accept(data, now_unix_nano()).map_err(|invalid| {
            Collect::Refused(Error::BadRequest(format!(
                "report {position} (counting from 0): {invalid}; nothing of this stream was stored"
            )))
        })?;
        heap += heap_bytes(&report);
        reports.push(report);
    }
    Ok((reports, held))
}
