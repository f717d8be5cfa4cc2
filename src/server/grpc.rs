//! The `perfstats.v1.PerformanceStats` gRPC service: validate, store, acknowledge.

use super::observe;
use crate::error::Error;
use crate::pb::performance_stats_server::PerformanceStats;
use crate::pb::{Ack, BatchAck, PerformanceData};
use crate::store::{Report, Store, now_unix_nano};
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};

/// Reports taken in one `ReportStats` stream at most; a node flushing its queue
/// sends far fewer. Larger streams are refused before anything is stored.
pub const MAX_STREAM_REPORTS: usize = 1_000_000;

/// The ingest service over a [`Store`].
pub struct Ingest {
    store: Store,
}

impl Ingest {
    /// The service storing into `store`.
    pub fn new(store: Store) -> Self {
        Ingest { store }
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
        observe(&self.store, started, &answer);
        Ok(Response::new(answer?))
    }

    async fn report_stats(
        &self,
        request: Request<Streaming<PerformanceData>>,
    ) -> Result<Response<BatchAck>, Status> {
        let started = Instant::now();
        let answer = self.store_stream(request.into_inner()).await;
        observe(&self.store, started, &answer);
        Ok(Response::new(answer?))
    }
}

impl Ingest {
    async fn store_one(&self, data: PerformanceData) -> Result<Ack, Error> {
        let report = Report::accept(data, now_unix_nano())?;
        let receipt = self
            .store
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

    async fn store_stream(
        &self,
        mut stream: Streaming<PerformanceData>,
    ) -> Result<BatchAck, Error> {
        let mut reports = Vec::new();
        while let Some(data) = stream
            .message()
            .await
            .map_err(|status| Error::BadRequest(format!("stream: {}", status.message())))?
        {
            let position = reports.len();
            if position == MAX_STREAM_REPORTS {
                return Err(Error::BadRequest(format!(
                    "stream: at most {MAX_STREAM_REPORTS} reports per ReportStats call; nothing was stored"
                )));
            }
            let report = Report::accept(data, now_unix_nano()).map_err(|invalid| {
                Error::BadRequest(format!(
                    "report {position} (counting from 0): {invalid}; nothing of this stream was stored"
                ))
            })?;
            reports.push(report);
        }
        if reports.is_empty() {
            return Ok(BatchAck {
                accepted: 0,
                duplicates: 0,
                run: self.store.current_run().name.to_string(),
            });
        }
        let receipts = self.store.append(reports).await?;
        let duplicates = receipts.iter().filter(|receipt| receipt.duplicate).count() as u64;
        Ok(BatchAck {
            accepted: receipts.len() as u64 - duplicates,
            duplicates,
            run: receipts[0].run.to_string(),
        })
    }
}
