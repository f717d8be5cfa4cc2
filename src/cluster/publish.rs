//! Writes into the stream: reports (cut into pieces for the `outbox`, answered
//! once this server has applied every message holding them, with the store's
//! receipts), run starts and run labels (answered once applied here, so the answer
//! has the run).

use super::outbox::{self, Piece};
use super::waiters::Waiter;
use super::{Cluster, entry};
use crate::error::Error;
use crate::labels::Labels;
use crate::report::{Report, now_unix_nano};
use crate::store::{Receipt, RunInfo};
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;

/// Pieces of one call queued or awaiting their receipts at once (at most
/// [`outbox::MESSAGE_BYTES`] each).
const CALL_WINDOW: usize = 8;
/// Reports of all calls queued or awaiting their receipts at once, unless told
/// otherwise; past it a write answers `RESOURCE_EXHAUSTED` (retryable) instead of
/// queueing without bound.
pub const DEFAULT_MAX_AWAITING: usize = 65_536;
/// Publishes awaiting JetStream's ack at once (run messages and the outbox's
/// messages, which it keeps far below this).
pub(super) const MAX_ACKS_IN_FLIGHT: usize = 1024;
/// How often a run's start is published again (same message id, so at most one
/// run) when JetStream's ack does not come.
const RUN_PUBLISH_ATTEMPTS: usize = 3;
/// How long `POST /api/runs` (or a labels `PUT`) waits to be applied here.
const RUN_APPLIED_DEADLINE: Duration = Duration::from_secs(10);

/// A piece of a call on its way: its receipts to come (its share of the budget
/// travels with it, and is free again once it is answered).
type Outstanding = oneshot::Receiver<Result<Vec<Receipt>, Error>>;

/// One `append` call on its way: its receipts so far, and its pieces outstanding.
struct Call {
    receipts: Vec<Receipt>,
    outstanding: VecDeque<Outstanding>,
}

/// The receipts of one piece, once answered.
async fn receive(answer: Outstanding) -> Result<Vec<Receipt>, Error> {
    answer.await.map_err(|_| outbox::gone())?
}

impl Cluster {
    /// The error a failed publish answers; a stream that does not answer stops
    /// writes until the next probe finds it answering again.
    pub(super) fn publish_failed(&self, error: &jetstream::context::PublishError) -> Error {
        match error.kind() {
            PublishErrorKind::MaxAckPending => {
                return Error::Busy(format!(
                    "stream {}: {MAX_ACKS_IN_FLIGHT} messages await JetStream's ack; retry",
                    self.config.stream
                ));
            }
            PublishErrorKind::TimedOut | PublishErrorKind::StreamNotFound => {
                self.answering.store(false, Ordering::Release);
            }
            _ => {}
        }
        self.unavailable(error)
    }

    /// Publishes `reports` (validated, `report_id` set) and answers once this server
    /// has applied them: a receipt each, with the seq every server stores it at,
    /// or, for a report whose id is stored already (sent again, or at once through
    /// another server), the original's seq and `duplicate`.
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        self.check_writable()?;
        let limit = outbox::message_limit(self);
        let mut call = Call {
            receipts: Vec::with_capacity(reports.len()),
            outstanding: VecDeque::new(),
        };
        let (mut body, mut count) = (Vec::new(), 0);
        for report in &reports {
            let before = body.len();
            if count > 0 {
                body.push(b',');
            }
            entry::encode_report(report, &mut body);
            if count > 0 && body.len() > limit {
                // It does not fit: it begins the next piece instead.
                let next = body[before + 1..].to_vec();
                body.truncate(before);
                self.queue(&mut call, std::mem::replace(&mut body, next), count)
                    .await?;
                count = 0;
            }
            count += 1;
        }
        if count > 0 {
            self.queue(&mut call, body, count).await?;
        }
        while let Some(piece) = call.outstanding.pop_front() {
            call.receipts.extend(receive(piece).await?);
        }
        Ok(call.receipts)
    }

    /// Queues one piece of `call` (within the budget; past it, after this call's
    /// own earlier pieces are answered), keeping at most [`CALL_WINDOW`] pieces of
    /// it outstanding.
    async fn queue(&self, call: &mut Call, body: Vec<u8>, count: usize) -> Result<(), Error> {
        let permit = loop {
            match (self.awaiting.clone())
                .try_acquire_many_owned(count.min(self.config.max_awaiting) as u32)
            {
                Ok(permit) => break permit,
                Err(_) => match call.outstanding.pop_front() {
                    Some(piece) => call.receipts.extend(receive(piece).await?),
                    None => {
                        return Err(Error::Busy(format!(
                            "stream {}: the budget of {} reports awaiting being applied here \
                             is spent; retry",
                            self.config.stream, self.config.max_awaiting
                        )));
                    }
                },
            }
        };
        let (reply, answer) = oneshot::channel();
        self.outbox
            .send(Piece {
                body,
                count,
                reply,
                budget: permit,
            })
            .map_err(|_| outbox::gone())?;
        call.outstanding.push_back(answer);
        if call.outstanding.len() == CALL_WINDOW {
            let piece = call.outstanding.pop_front().expect("a full window");
            call.receipts.extend(receive(piece).await?);
        }
        Ok(())
    }

    /// Starts a run for every server: publishes its start and answers once it is
    /// applied here (so the answer has its id).
    pub async fn new_run(&self, name: Option<String>, labels: Labels) -> Result<RunInfo, Error> {
        self.check_writable()?;
        let name = name.map(|name| name.trim().to_string());
        if let Some(name) = &name {
            self.store.check_new_run_name(name)?;
        }
        crate::labels::check(&labels)?;
        let body = entry::encode_run(name, labels, now_unix_nano());
        self.publish_run_message(body, "run").await
    }

    /// Replaces `run`'s labels on every server: publishes them and answers once
    /// they are applied here.
    pub async fn set_labels(&self, run: &RunInfo, labels: Labels) -> Result<RunInfo, Error> {
        self.check_writable()?;
        crate::labels::check(&labels)?;
        let body = entry::encode_labels(run.first_seq, labels);
        self.publish_run_message(body, "labels").await
    }

    /// Publishes `body` on the runs subject (under one message id for every
    /// attempt, so a message whose ack was lost is not applied twice) and answers
    /// what applying it here gave.
    async fn publish_run_message(&self, body: Vec<u8>, what: &str) -> Result<RunInfo, Error> {
        let id = format!("{what}-{}", uuid::Uuid::now_v7());
        let (reply, applied) = oneshot::channel();
        self.waiters.insert(&id, Waiter::Run(reply));
        let outcome = self.publish_and_wait(&id, body, what, applied).await;
        // Whatever happened, nobody waits any more.
        self.waiters.take(&id);
        outcome
    }

    async fn publish_and_wait(
        &self,
        id: &str,
        body: Vec<u8>,
        what: &str,
        applied: oneshot::Receiver<Result<RunInfo, Error>>,
    ) -> Result<RunInfo, Error> {
        let mut attempt = 0;
        let ack = loop {
            attempt += 1;
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, id);
            let published = match self
                .jetstream
                .publish_with_headers(self.subjects.runs.clone(), headers, body.clone().into())
                .await
            {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            match published {
                Ok(ack) => break ack,
                // Only a lost ack is worth another attempt, and only while the
                // stream still takes writes.
                Err(error)
                    if attempt < RUN_PUBLISH_ATTEMPTS
                        && matches!(
                            error.kind(),
                            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                        )
                        && self.can_write() =>
                {
                    tracing::debug!(%error, attempt, what, "publishing again");
                }
                Err(error) => return Err(self.publish_failed(&error)),
            }
        };
        self.note_stream_seq(ack.sequence);
        match tokio::time::timeout(RUN_APPLIED_DEADLINE, applied).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(outbox::gone()),
            Err(_) => Err(Error::Unavailable(format!(
                "the {what} message is in the stream (message {}) but was not applied here \
                 within {RUN_APPLIED_DEADLINE:?}; it shows once this server catches up",
                ack.sequence
            ))),
        }
    }
}
