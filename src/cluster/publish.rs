//! Writes into the stream: reports (answered once JetStream has every one), run
//! starts and run labels (answered once applied here, so the answer has the run).

use super::{Cluster, entry};
use crate::error::Error;
use crate::labels::Labels;
use crate::report::{Report, now_unix_nano};
use crate::store::{Receipt, RunInfo};
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Publishes of one call awaiting their acks at once.
const PUBLISH_WINDOW: usize = 1024;
/// Publishes of all calls awaiting their acks at once; past it a write answers
/// `RESOURCE_EXHAUSTED` (retryable) instead of queueing without bound.
pub(super) const MAX_ACKS_IN_FLIGHT: usize = 16_384;
/// How often a run's start is published again (same message id, so at most one
/// run) when JetStream's ack does not come.
const RUN_PUBLISH_ATTEMPTS: usize = 3;
/// How long `POST /api/runs` (or a labels `PUT`) waits to be applied here.
const RUN_APPLIED_DEADLINE: Duration = Duration::from_secs(10);

impl Cluster {
    /// The error a failed publish answers; a stream that does not answer stops
    /// writes until the next probe finds it answering again.
    fn publish_failed(&self, error: &jetstream::context::PublishError) -> Error {
        match error.kind() {
            PublishErrorKind::MaxAckPending => {
                return Error::Busy(format!(
                    "stream {}: {MAX_ACKS_IN_FLIGHT} reports await JetStream's ack; retry",
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

    /// Publishes `reports` (validated, `report_id` set) and answers once JetStream
    /// has every one: a receipt each, with its stream sequence and whether
    /// JetStream already had its id (then the original's sequence).
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        self.check_writable()?;
        let mut receipts = Vec::with_capacity(reports.len());
        let mut in_flight = VecDeque::with_capacity(PUBLISH_WINDOW.min(reports.len()));
        for report in &reports {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, message_id(&report.report_id).as_ref());
            let ack = self
                .jetstream
                .publish_with_headers(
                    self.subjects.reports.clone(),
                    headers,
                    entry::encode_report(report).into(),
                )
                .await
                .map_err(|error| self.publish_failed(&error))?;
            in_flight.push_back(ack);
            if in_flight.len() == PUBLISH_WINDOW {
                let ack = in_flight.pop_front().expect("a full window");
                receipts.push(self.receipt(ack.await)?);
            }
        }
        for ack in in_flight {
            receipts.push(self.receipt(ack.await)?);
        }
        Ok(receipts)
    }

    fn receipt(
        &self,
        ack: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
    ) -> Result<Receipt, Error> {
        let ack = ack.map_err(|error| self.publish_failed(&error))?;
        self.note_stream_seq(ack.sequence);
        // The run is the one holding the seq here; for a seq not applied here yet,
        // the current run (a run started elsewhere meanwhile may take it).
        let run = self
            .store
            .run_of(ack.sequence)
            .unwrap_or_else(|| self.store.current_run());
        Ok(Receipt {
            seq: ack.sequence,
            duplicate: ack.duplicate,
            run: run.name,
        })
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
        let seq = self.publish_run_message(body, "run").await?;
        self.store
            .runs()
            .into_iter()
            .find(|run| run.first_seq == seq + 1)
            .ok_or_else(|| Error::Unavailable("the run was applied but is not found".into()))
    }

    /// Replaces `run`'s labels on every server: publishes them and answers once
    /// they are applied here.
    pub async fn set_labels(&self, run: &RunInfo, labels: Labels) -> Result<RunInfo, Error> {
        self.check_writable()?;
        crate::labels::check(&labels)?;
        let body = entry::encode_labels(run.first_seq, labels);
        self.publish_run_message(body, "labels").await?;
        self.store.resolve_run(Some(&run.id.to_string()))
    }

    /// Publishes `body` on the runs subject (under one message id for every
    /// attempt, so a message whose ack was lost is not applied twice) and waits
    /// until this server has applied it; answers its stream seq.
    async fn publish_run_message(&self, body: Vec<u8>, what: &str) -> Result<u64, Error> {
        let id = format!("{what}-{}", uuid::Uuid::now_v7());
        let mut attempt = 0;
        let ack = loop {
            attempt += 1;
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, id.as_str());
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
        tokio::time::timeout(
            RUN_APPLIED_DEADLINE,
            self.applier.applied_through(ack.sequence),
        )
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "the {what} message is in the stream as seq {} but was not applied here \
                 within {RUN_APPLIED_DEADLINE:?}; it shows once this server catches up",
                ack.sequence
            ))
        })??;
        Ok(ack.sequence)
    }
}

/// The id a report is published with: its `report_id` when that is plain printable
/// ASCII, else (and for ids that look hex-encoded themselves) `hex:` and its bytes
/// in hex, so that no id can smuggle a line break into the message's headers and
/// distinct ids stay distinct.
fn message_id(report_id: &str) -> Cow<'_, str> {
    if report_id.bytes().all(|byte| byte.is_ascii_graphic()) && !report_id.starts_with("hex:") {
        return Cow::Borrowed(report_id);
    }
    let mut encoded = String::with_capacity(4 + 2 * report_id.len());
    encoded.push_str("hex:");
    for byte in report_id.bytes() {
        encoded.push_str(&format!("{byte:02x}"));
    }
    Cow::Owned(encoded)
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_ids_carry_no_line_breaks_and_stay_distinct() {
        assert_eq!(message_id("01a2-uuid"), "01a2-uuid");
        assert_eq!(
            message_id("a\r\nNats-Expected-Stream: x"),
            "hex:610d0a4e6174732d45787065637465642d53747265616d3a2078"
        );
        assert_eq!(message_id("with space"), "hex:77697468207370616365");
        assert_ne!(message_id("hex:41"), message_id("A"));
        assert_eq!(message_id("hex:41"), "hex:6865783a3431");
    }
}
