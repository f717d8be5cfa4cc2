//! Applying the stream to the local store, in order, from the first message not
//! applied yet: a message's reports at the next seqs, one each, a run's start or
//! labels at the next seq, anything else as a hole there — so the seqs follow from
//! the stream alone and are the same on every server. After any failure (NATS
//! gone, the consumer's server killed, a missed heartbeat) it starts again from
//! the last position applied, so nothing is applied twice or skipped. The
//! position is recorded in the store at most every [`RECORD_EVERY`] (following
//! again from an older one re-reads messages whose seqs are applied, and skips
//! them). The answers of messages published here go to their waiters.

use super::entry::{self, Entry};
use super::{Cluster, SetupError};
use crate::error::Error;
use crate::report::Report;
use crate::store::StreamPosition;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages applied together at most.
const APPLY_BATCH: usize = 2048;
/// Bytes of messages one pull asks for at most (a message holds up to
/// `outbox::MESSAGE_BYTES`), so a chunk being applied holds this much at most.
const PULL_BYTES: usize = 8 * 1024 * 1024;
/// How often the position applied is recorded in the store at most.
const RECORD_EVERY: Duration = Duration::from_secs(1);
/// The consumer's heartbeat while idle: two missed and it is made again, so a
/// killed NATS server stalls applying for a few seconds at most.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the server keeps a consumer nobody pulls from.
const CONSUMER_INACTIVE: Duration = Duration::from_secs(30);
/// The longest pause between attempts to follow the stream again.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Follows the stream until the store is closed (or holds something else).
pub(super) async fn run(cluster: Arc<Cluster>) {
    let mut failures: u32 = 0;
    loop {
        let before = cluster.applier.applied();
        let stop = tokio::select! {
            stop = follow(&cluster) => stop,
            () = cluster.applier.closed() => Stop::Closed,
        };
        match stop {
            Stop::Refused(error) => {
                // Writes published now would never show here: refuse them.
                cluster
                    .ready
                    .store(false, std::sync::atomic::Ordering::Release);
                tracing::error!(%error, "cannot apply the stream to this store; writes stay unavailable");
                return;
            }
            Stop::Closed => return,
            Stop::Again(why) => {
                failures = if cluster.applier.applied() > before {
                    1
                } else {
                    failures.saturating_add(1)
                };
                tracing::warn!(
                    applied = cluster.applier.applied(),
                    "following the stream again: {why}"
                );
                let pause = Duration::from_millis(100).saturating_mul(failures);
                tokio::select! {
                    () = tokio::time::sleep(pause.min(MAX_PAUSE)) => {}
                    () = cluster.applier.closed() => return,
                }
            }
        }
    }
}

/// Why following stopped.
enum Stop {
    /// Follow again after a pause.
    Again(String),
    /// The store holds something else.
    Refused(Error),
    /// The store is closed: the server is shutting down.
    Closed,
}

/// Applies the stream from the first sequence not applied yet, until something fails.
async fn follow(cluster: &Cluster) -> Stop {
    let stream = match cluster.setup().await {
        Ok(stream) => stream,
        Err(SetupError::Refused(error)) => return Stop::Refused(error),
        Err(SetupError::Unreachable(why)) => return Stop::Again(why),
    };
    let mut position = *cluster.position.lock().expect("position lock");
    // Recorded now, so that a store of the release before batches (whose
    // position is made up from its seqs) has it before its seqs and the stream's part.
    if let Err(error) = cluster.applier.record_position(position).await {
        return Stop::Again(format!("the store refused the position: {error}"));
    }
    let start = position.message + 1;
    let consumer = match stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: CONSUMER_INACTIVE,
            num_replicas: 1,
            memory_storage: true,
            ..Default::default()
        })
        .await
    {
        Ok(consumer) => consumer,
        Err(error) => return Stop::Again(format!("cannot make a consumer: {error}")),
    };
    let messages = match consumer
        .stream()
        .max_messages_per_batch(APPLY_BATCH)
        .max_bytes_per_batch(PULL_BYTES)
        .heartbeat(HEARTBEAT)
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(error) => return Stop::Again(format!("cannot pull: {error}")),
    };
    // Pulled on a task of its own, so that the consumer's heartbeats are read
    // while a chunk is being applied; at most two chunks wait.
    let (pulled, mut chunks) = tokio::sync::mpsc::channel(2);
    let puller = tokio::spawn(async move {
        let mut messages = messages.ready_chunks(APPLY_BATCH);
        while let Some(chunk) = messages.next().await {
            let failed = chunk.iter().any(Result::is_err);
            if pulled.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let _puller = AbortOnDrop(puller);
    let mut consumer_seq = 0;
    let mut recorded = Instant::now();
    while let Some(chunk) = chunks.recv().await {
        let mut messages = Vec::with_capacity(chunk.len());
        let mut broken = None;
        let mut next = position;
        for message in chunk {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    broken = Some(format!("pulling failed: {error}"));
                    break;
                }
            };
            let info = match message.info() {
                Ok(info) => info,
                Err(error) => {
                    broken = Some(format!("a message without its sequence: {error}"));
                    break;
                }
            };
            // The consumer delivers every message once, in order; a gap in its
            // own sequence means one was lost on the way: start again from the store.
            if info.consumer_sequence != consumer_seq + 1 {
                broken = Some(format!(
                    "delivery out of order (consumer sequence {} after {consumer_seq})",
                    info.consumer_sequence
                ));
                break;
            }
            consumer_seq = info.consumer_sequence;
            let stream_seq = info.stream_sequence;
            if stream_seq != next.message + 1 {
                // A message gone (purged, deleted): how many seqs it took is not
                // known, so nothing after it can be numbered as the servers that
                // applied it did.
                return Stop::Refused(Error::Unavailable(format!(
                    "stream {}: message {} is gone (purged or deleted) before this server \
                     applied it, so the reports after it cannot be given the seqs other \
                     servers gave them; this store stays as it is: keep the stream whole (no \
                     limits that drop messages), or start with another --db",
                    cluster.config.stream,
                    next.message + 1
                )));
            }
            cluster.note_stream_seq(stream_seq + info.pending);
            let entry = entry::decode(&cluster.subjects, &message.subject, &message.payload);
            let first_seq = next.seq + 1;
            next = StreamPosition {
                message: stream_seq,
                seq: next.seq + entry.seqs(),
            };
            messages.push(Message {
                first_seq,
                id: message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(NATS_MESSAGE_ID))
                    .map(|id| id.as_str().into()),
                entry,
            });
        }
        if let Err(error) = apply(cluster, messages).await {
            return if cluster.applier.is_closed() {
                Stop::Closed
            } else {
                Stop::Again(format!("the store refused: {error}"))
            };
        }
        position = next;
        *cluster.position.lock().expect("position lock") = position;
        cluster.applied_message.send_replace(position.message);
        if recorded.elapsed() >= RECORD_EVERY {
            recorded = Instant::now();
            if let Err(error) = cluster.applier.record_position(position).await {
                return Stop::Again(format!("the store refused the position: {error}"));
            }
        }
        if let Some(why) = broken {
            return Stop::Again(why);
        }
    }
    Stop::Again("the consumer ended".into())
}

/// One message of the stream, read: the first seq it takes, the id it was
/// published with, and what it holds.
struct Message {
    first_seq: u64,
    id: Option<Box<str>>,
    entry: Entry,
}

/// Stops the task it holds when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies `messages` (in stream order): runs of reports in one append each; the
/// answers of messages published here go to their waiters. Seqs applied already
/// (following again from an older position) are passed over.
async fn apply(cluster: &Cluster, messages: Vec<Message>) -> Result<(), Error> {
    let applier = &cluster.applier;
    let mut batch = Batch::default();
    for Message {
        first_seq,
        id,
        entry,
    } in messages
    {
        let applied = applier.applied();
        if first_seq + entry.seqs() - 1 <= applied {
            continue;
        }
        match entry {
            Entry::Reports(reports) => {
                // Partly applied before (a failure between two of its pieces): the
                // rest is applied; its waiter, if any, is not answered here, and its
                // publisher's deadline answers it UNAVAILABLE (a retry finds duplicates).
                let whole = first_seq > applied;
                let before = batch.reports.len();
                batch.reports.extend(
                    reports
                        .into_iter()
                        .zip(first_seq..)
                        .filter(|(_, seq)| *seq > applied)
                        .map(|(report, seq)| Report { seq, ..report }),
                );
                batch
                    .owners
                    .push((id.filter(|_| whole), batch.reports.len() - before));
            }
            Entry::Run(run) => {
                batch.flush(cluster).await?;
                let made = applier
                    .new_run_at(first_seq, run.name, run.labels, run.started_unix_nano)
                    .await?;
                if let Some(waiter) = id.and_then(|id| cluster.waiters.take(&id)) {
                    waiter.deliver_run(Ok(made));
                }
            }
            Entry::Labels(message) => {
                batch.flush(cluster).await?;
                let labelled = match applier
                    .label_at(first_seq, message.labels_of_run_from_seq, message.labels)
                    .await
                {
                    Ok(run) => Ok(run),
                    // Refused alike by every server: the seq is applied as a hole.
                    Err(refused @ (Error::NotFound(_) | Error::BadRequest(_))) => {
                        tracing::warn!(
                            seq = first_seq,
                            "labels in the stream not applied: {refused}"
                        );
                        Err(refused)
                    }
                    Err(error) => return Err(error),
                };
                if let Some(waiter) = id.and_then(|id| cluster.waiters.take(&id)) {
                    waiter.deliver_run(labelled);
                }
            }
            Entry::Unreadable { why, seqs } => {
                batch.flush(cluster).await?;
                tracing::warn!(
                    seq = first_seq,
                    seqs,
                    "a batch in the stream that this release cannot read is applied as holes: {why}"
                );
                applier.skip(first_seq + seqs - 1).await?;
                if let Some(waiter) = id.and_then(|id| cluster.waiters.take(&id)) {
                    waiter.fail(&Error::Unavailable(format!(
                        "the stream's message could not be read: {why}"
                    )));
                }
            }
            Entry::Other(why) => {
                batch.flush(cluster).await?;
                tracing::warn!(
                    seq = first_seq,
                    "stream message is neither reports nor a run: {why}"
                );
                applier.skip(first_seq).await?;
                if let Some(waiter) = id.and_then(|id| cluster.waiters.take(&id)) {
                    waiter.fail(&Error::Unavailable(format!(
                        "the stream's message could not be read: {why}"
                    )));
                }
            }
        }
    }
    batch.flush(cluster).await
}

/// Reports of consecutive messages, applied in one append.
#[derive(Default)]
struct Batch {
    reports: Vec<Report>,
    /// For each message in it, in order: its id when it is answered here (whole),
    /// and how many of the reports are its.
    owners: Vec<(Option<Box<str>>, usize)>,
}

impl Batch {
    /// Applies the reports gathered so far and answers their waiters.
    async fn flush(&mut self, cluster: &Cluster) -> Result<(), Error> {
        if self.reports.is_empty() {
            self.owners.clear();
            return Ok(());
        }
        let owners = std::mem::take(&mut self.owners);
        match cluster
            .applier
            .append(std::mem::take(&mut self.reports))
            .await
        {
            Ok(receipts) => {
                let mut receipts = receipts.into_iter();
                for (id, count) in owners {
                    let mine: Vec<_> = receipts.by_ref().take(count).collect();
                    let waiter = id.and_then(|id| cluster.waiters.take(&id));
                    match waiter {
                        Some(waiter) => waiter.deliver(mine),
                        None => drop(mine),
                    }
                }
                Ok(())
            }
            Err(error) => {
                for (id, _) in owners {
                    if let Some(waiter) = id.and_then(|id| cluster.waiters.take(&id)) {
                        waiter.fail(&error);
                    }
                }
                Err(error)
            }
        }
    }
}
