//! `Reporter`: fire-and-forget reporting for a node's event loop.
//!
//! `report` never waits: it validates, takes a place among at most `capacity`
//! undelivered reports (or counts the report as dropped), and queues it. One
//! background task sends what is queued in batches through the client's retry
//! policy and, for a client of several servers, its failover (a retryable failure
//! moves the next attempt to the next server; see [`Client`]). `flush` and
//! `shutdown` wait, with a deadline, until everything accepted is settled
//! (delivered, or failed after the retries).

use super::Client;
use crate::event::{InvalidReport, validate};
use crate::pb::{Event, PerformanceData};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Reports sent in one `ReportStats` call at most.
const MAX_BATCH: usize = 1_000;

/// Why `report` did not queue a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// The report breaks a validation rule; the server would refuse it too.
    Invalid(InvalidReport),
    /// `capacity` reports are undelivered already; this one was dropped and counted.
    QueueFull,
    /// The reporter was shut down.
    Closed,
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Invalid(invalid) => invalid.fmt(f),
            ReportError::QueueFull => f.write_str("reporter queue full: report dropped"),
            ReportError::Closed => f.write_str("reporter shut down"),
        }
    }
}

impl std::error::Error for ReportError {}

/// What a reporter has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReporterStats {
    /// Reports queued by `report`.
    pub accepted: u64,
    /// Reports the server acknowledged.
    pub delivered: u64,
    /// Reports refused because the queue was full.
    pub dropped: u64,
    /// Reports given up on after the retry policy's last attempt.
    pub failed: u64,
}

#[derive(Debug)]
struct Counters {
    capacity: usize,
    pending: AtomicUsize,
    accepted: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Reports settled (delivered or failed), for `flush` to wait on.
    settled: watch::Sender<u64>,
}

/// A cloneable, non-blocking handle that reports events of one sender.
#[derive(Debug, Clone)]
pub struct Reporter {
    sender: Arc<str>,
    queue: mpsc::UnboundedSender<PerformanceData>,
    counters: Arc<Counters>,
}

impl Reporter {
    /// Starts the background delivery task (call inside a tokio runtime) for reports
    /// of `sender`, holding at most `capacity` undelivered reports.
    pub fn spawn(client: Client, sender: impl Into<String>, capacity: usize) -> Reporter {
        let (queue, inbox) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters {
            capacity,
            pending: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            settled: watch::Sender::new(0),
        });
        tokio::spawn(deliver(client, inbox, counters.clone()));
        Reporter {
            sender: sender.into().into(),
            queue,
            counters,
        }
    }

    /// Queues a report of `event` now, without waiting.
    pub fn report(&self, event: Event, message: impl Into<String>) -> Result<(), ReportError> {
        let now = crate::report::now_unix_nano();
        let report = PerformanceData::new(now, self.sender.as_ref(), event, message);
        validate(&report).map_err(ReportError::Invalid)?;
        let counters = &self.counters;
        let reserved =
            counters
                .pending
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                    (pending < counters.capacity).then_some(pending + 1)
                });
        if reserved.is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(ReportError::QueueFull);
        }
        // Counted before it is queued, so a `flush` that sees it accepted also
        // waits for it to settle.
        counters.accepted.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(report).is_err() {
            counters.accepted.fetch_sub(1, Ordering::AcqRel);
            counters.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(ReportError::Closed);
        }
        Ok(())
    }

    /// Waits until every report accepted before this call is delivered or failed;
    /// `Err` with the stats so far if `deadline` passes first.
    pub async fn flush(&self, deadline: Duration) -> Result<ReporterStats, ReporterStats> {
        let target = self.counters.accepted.load(Ordering::Acquire);
        let mut settled = self.counters.settled.subscribe();
        let waited = tokio::time::timeout(deadline, settled.wait_for(|done| *done >= target)).await;
        match waited {
            Ok(Ok(_)) => Ok(self.stats()),
            _ => Err(self.stats()),
        }
    }

    /// Flushes (with `deadline`) and stops this handle's share of the reporter; the
    /// background task ends when the last clone is gone.
    pub async fn shutdown(self, deadline: Duration) -> Result<ReporterStats, ReporterStats> {
        self.flush(deadline).await
    }

    /// What the reporter has done so far.
    pub fn stats(&self) -> ReporterStats {
        let counters = &self.counters;
        ReporterStats {
            accepted: counters.accepted.load(Ordering::Acquire),
            delivered: counters.delivered.load(Ordering::Acquire),
            dropped: counters.dropped.load(Ordering::Acquire),
            failed: counters.failed.load(Ordering::Acquire),
        }
    }
}

/// The background task: takes what is queued (up to `MAX_BATCH`), sends it through
/// the retry policy and failover of `client` (one report as a unary call, more as
/// one stream), settles it.
async fn deliver(
    client: Client,
    mut inbox: mpsc::UnboundedReceiver<PerformanceData>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let count = batch.len();
        let outcome = if count == 1 {
            client
                .send_performance_stat_with_retries(batch[0].clone())
                .await
                .map(drop)
        } else {
            client
                .send_batch_with_retries(std::mem::take(&mut batch))
                .await
                .map(drop)
        };
        batch.clear();
        let counter = match &outcome {
            Ok(()) => &counters.delivered,
            Err(status) => {
                tracing::warn!(count, %status, "reports not delivered after retries");
                &counters.failed
            }
        };
        counter.fetch_add(count as u64, Ordering::AcqRel);
        counters.pending.fetch_sub(count, Ordering::AcqRel);
        counters
            .settled
            .send_modify(|settled| *settled += count as u64);
    }
}
