//! Reports on their way into the stream: calls queue pieces of their reports
//! (already encoded), and one task joins whatever is queued — pieces of many calls
//! — into one message of at most [`message_limit`] bytes, the way the SQLite
//! committer gathers a commit. Up to [`MESSAGES_IN_FLIGHT`] messages await
//! JetStream's ack at once; while they do, the next message fills. A lone report
//! on an idle server goes out at once, in a message of its own.

use super::waiters::{PieceReply, PieceWaiter, Waiter};
use super::{Cluster, entry};
use crate::error::Error;
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// The most bytes of reports in one message (NATS's default payload limit is
/// 1 MiB; a server configured lower lowers it).
pub(super) const MESSAGE_BYTES: usize = 256 * 1024;
/// Room left for the message's headers and framing under NATS's payload limit.
const HEADROOM: usize = 4096;
/// Messages of reports awaiting JetStream's ack at once, from this server.
pub(super) const MESSAGES_IN_FLIGHT: usize = 16;
/// How long a published message may take to be applied here, once JetStream
/// has it, before its calls are answered `UNAVAILABLE` (a retry finds them
/// stored: duplicates, with their seqs).
pub(super) const APPLY_DEADLINE: Duration = Duration::from_secs(10);

/// Part of one call's reports, queued for a message.
pub(super) struct Piece {
    /// The reports' encodings ([`entry::encode_report`]), comma-separated.
    pub body: Vec<u8>,
    /// How many reports.
    pub count: usize,
    /// Where their receipts go.
    pub reply: PieceReply,
    /// Their share of the budget of reports awaiting: held until they are
    /// answered, even when their caller is gone.
    pub budget: OwnedSemaphorePermit,
}

/// The most bytes of reports one message holds: [`MESSAGE_BYTES`], or less
/// when the NATS server allows less.
pub(super) fn message_limit(cluster: &Cluster) -> usize {
    match cluster.client.server_info().max_payload {
        // Not connected yet: nothing is published anyway.
        0 => MESSAGE_BYTES,
        allowed => MESSAGE_BYTES
            .min(allowed.saturating_sub(HEADROOM + entry::BATCH_OVERHEAD))
            .max(1),
    }
}

/// Joins queued pieces into messages and publishes them, until the cluster is
/// gone.
pub(super) async fn run(cluster: Weak<Cluster>, mut queue: mpsc::UnboundedReceiver<Piece>) {
    let in_flight = Arc::new(Semaphore::new(MESSAGES_IN_FLIGHT));
    let mut carried: Option<Piece> = None;
    loop {
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let first = match carried.take() {
            Some(piece) => piece,
            None => match queue.recv().await {
                Some(piece) => piece,
                None => return,
            },
        };
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let limit = message_limit(&cluster);
        let mut size = first.body.len();
        let mut pieces = vec![first];
        while let Ok(piece) = queue.try_recv() {
            if size + 1 + piece.body.len() > limit {
                carried = Some(piece);
                break;
            }
            size += 1 + piece.body.len();
            pieces.push(piece);
        }
        cluster.publish_batch(pieces, size, permit).await;
    }
}

impl Cluster {
    /// Publishes `pieces` as one message and waits for their receipts on a task of
    /// its own, which holds `permit` until JetStream's ack.
    async fn publish_batch(
        self: &Arc<Cluster>,
        pieces: Vec<Piece>,
        size: usize,
        permit: OwnedSemaphorePermit,
    ) {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let body = entry::encode_batch(pieces.iter().map(|piece| piece.body.as_slice()), size);
        self.waiters.insert(
            &id,
            Waiter::Reports(
                pieces
                    .into_iter()
                    .map(|piece| PieceWaiter {
                        count: piece.count,
                        reply: piece.reply,
                        _budget: Some(piece.budget),
                    })
                    .collect(),
            ),
        );
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, id.as_str());
        // Sent here, in the queue's order; acked on a task of its own.
        let sent = self
            .jetstream
            .publish_with_headers(self.subjects.reports.clone(), headers, body.into())
            .await;
        let cluster = self.clone();
        tokio::spawn(async move {
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            drop(permit);
            match acked {
                Ok(ack) => {
                    cluster.note_stream_seq(ack.sequence);
                    let applied =
                        tokio::time::timeout(APPLY_DEADLINE, cluster.applied_through(ack.sequence))
                            .await;
                    if let Some(waiter) = cluster.waiters.take(&id) {
                        let why = match applied {
                            Err(_) => format!(
                                "the reports are in the stream (message {}) but were not applied \
                                 here within {APPLY_DEADLINE:?}",
                                ack.sequence
                            ),
                            Ok(()) => format!(
                                "the reports are in the stream (message {}) but were applied \
                                 here only in part before a failure (retry: what is stored \
                                 comes back as duplicates)",
                                ack.sequence
                            ),
                        };
                        waiter.fail(&cluster.unavailable(&why));
                    }
                }
                Err(error) => {
                    let error = cluster.publish_failed(&error);
                    if let Some(waiter) = cluster.waiters.take(&id) {
                        waiter.fail(&error);
                    }
                }
            }
        });
    }
}

/// The error of a call whose pieces could not be queued: the cluster is gone.
pub(super) fn gone() -> Error {
    Error::Unavailable("the server is shutting down".into())
}
