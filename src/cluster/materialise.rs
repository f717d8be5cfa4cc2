//! Applying the stream to the local store, in order, from the first sequence not
//! applied yet: reports at their stream sequences, runs where their messages are,
//! anything else as a hole. After any failure (NATS gone, the consumer's server
//! killed, a missed heartbeat) it starts again from what the store has applied,
//! so nothing is applied twice or skipped.

use super::entry::{self, Entry};
use super::{Cluster, SetupError};
use crate::error::Error;
use crate::report::Report;
use crate::store::Applier;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Messages applied in one store commit at most.
const APPLY_BATCH: usize = 2048;
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
    let start = cluster.applier.applied() + 1;
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
    while let Some(chunk) = chunks.recv().await {
        let mut entries = Vec::with_capacity(chunk.len());
        let mut broken = None;
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
            let seq = info.stream_sequence;
            cluster.note_stream_seq(seq + info.pending);
            entries.push((
                seq,
                entry::decode(&cluster.subjects, &message.subject, seq, &message.payload),
            ));
        }
        if let Err(error) = apply(&cluster.applier, entries).await {
            return if cluster.applier.is_closed() {
                Stop::Closed
            } else {
                Stop::Again(format!("the store refused: {error}"))
            };
        }
        if let Some(why) = broken {
            return Stop::Again(why);
        }
    }
    Stop::Again("the consumer ended".into())
}

/// Stops the task it holds when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies `entries` (in stream order) through `applier`: runs of reports in one commit each.
async fn apply(applier: &Applier, entries: Vec<(u64, Entry)>) -> Result<(), Error> {
    let mut reports: Vec<Report> = Vec::new();
    for (seq, entry) in entries {
        if seq <= applier.applied() {
            continue;
        }
        match entry {
            Entry::Report(report) => reports.push(report),
            Entry::Run(run) => {
                flush(applier, &mut reports).await?;
                applier
                    .new_run_at(seq, run.name, run.labels, run.started_unix_nano)
                    .await?;
            }
            Entry::Labels(message) => {
                flush(applier, &mut reports).await?;
                match applier
                    .label_at(seq, message.labels_of_run_from_seq, message.labels)
                    .await
                {
                    Ok(_) => {}
                    // Refused alike by every server: the seq is applied as a hole.
                    Err(refused @ (Error::NotFound(_) | Error::BadRequest(_))) => {
                        tracing::warn!(seq, "labels in the stream not applied: {refused}");
                    }
                    Err(error) => return Err(error),
                }
            }
            Entry::Other(why) => {
                flush(applier, &mut reports).await?;
                tracing::warn!(seq, "stream message is neither a report nor a run: {why}");
                applier.skip(seq).await?;
            }
        }
    }
    flush(applier, &mut reports).await
}

async fn flush(applier: &Applier, reports: &mut Vec<Report>) -> Result<(), Error> {
    if !reports.is_empty() {
        applier.append(std::mem::take(reports)).await?;
    }
    Ok(())
}
