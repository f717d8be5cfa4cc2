//! Past one machine: perfstats servers sharing one replicated NATS JetStream
//! stream. Any server takes writes and publishes them to the stream (answering once
//! JetStream has them on a quorum of replicas); every server applies the stream,
//! in order, into its own store at the stream's sequences ([`materialise`]), so all
//! answer the same once caught up.
//!
//! Idempotency: each report is published with `Nats-Msg-Id` = its `report_id`, so
//! JetStream drops a second copy within the duplicate window (`--nats-dedupe-window`)
//! and answers with the original's sequence; beyond it the store still refuses a
//! second copy of an id when applying (its seq stays a hole). A `ReportStats` call
//! that fails part-way is made whole by the client's retry: the reports already in
//! the stream come back as duplicates, the rest are published. There is no atomic
//! batch: a failed call may leave some of its reports stored, never twice.

mod entry;
mod materialise;

pub use entry::Subjects;

use crate::error::Error;
use crate::report::{Report, now_unix_nano};
use crate::store::{Receipt, RunInfo, Store};
use async_nats::connection::State;
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::context::{GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The stream's name unless told otherwise.
pub const DEFAULT_STREAM: &str = "PERFSTATS";
/// Replicas of the stream unless told otherwise (fewer when fewer URLs are given).
pub const DEFAULT_REPLICAS: usize = 3;
/// How long JetStream remembers a `report_id` to drop a second copy.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(2 * 60 * 60);
/// How long a publish waits for JetStream's ack before the write answers
/// `UNAVAILABLE` (the client retries; a leader election takes a few seconds).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// Publishes of one call awaiting their acks at once.
const PUBLISH_WINDOW: usize = 1024;
/// Publishes of all calls awaiting their acks at once; past it a write answers
/// `RESOURCE_EXHAUSTED` (retryable) instead of queueing without bound.
const MAX_ACKS_IN_FLIGHT: usize = 16_384;
/// How often the stream's state is asked for (its last sequence, for the lag, and
/// whether it answers at all, for health).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often a run's start is published again (same message id, so at most one
/// run) when JetStream's ack does not come.
const RUN_PUBLISH_ATTEMPTS: usize = 3;
/// Setups in a row that must find the stream ending below what this store applied
/// before it is refused for good.
const SHORT_READINGS_TO_REFUSE: u32 = 3;
/// The stream metadata key holding the id a perfstats server gave the stream when
/// it made it: what a store records as the stream it holds.
const STREAM_ID_KEY: &str = "perfstats-stream-id";
/// How long `POST /api/runs` waits for its run to be applied here.
const RUN_APPLIED_DEADLINE: Duration = Duration::from_secs(10);
/// How long the start waits for the stream before serving without it.
const FIRST_CONTACT: Duration = Duration::from_secs(5);
/// How often whether the stream can take writes is looked at for health.
const STATUS_POLL: Duration = Duration::from_millis(200);

/// Which stream to share, and how it is made when it does not exist yet.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS servers (`nats://host:4222`); the client reconnects among them.
    pub urls: Vec<String>,
    /// The stream's name; its subjects are `<NAME>.reports` and `<NAME>.runs`.
    pub stream: String,
    /// Replicas of a stream made here (an existing stream keeps its own).
    pub replicas: usize,
    /// JetStream's duplicate window for a stream made here.
    pub dedupe_window: Duration,
}

impl ClusterConfig {
    /// The defaults for `urls`: stream `PERFSTATS`, 3 replicas (or one per URL
    /// when fewer), a 2 h duplicate window.
    pub fn new(urls: Vec<String>) -> ClusterConfig {
        let replicas = DEFAULT_REPLICAS.min(urls.len()).max(1);
        ClusterConfig {
            urls,
            stream: DEFAULT_STREAM.into(),
            replicas,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
        }
    }
}

/// The stream as one server sees it: where its writes go, and how far it has
/// applied the stream. Cheap to share (`Arc`).
pub struct Cluster {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    config: ClusterConfig,
    subjects: Subjects,
    store: Store,
    /// The stream exists and the store is known to hold it.
    ready: AtomicBool,
    /// The stream answered its last request: it has a leader.
    answering: AtomicBool,
    /// The stream's last sequence as last seen (acks, messages, stream info).
    stream_last: AtomicU64,
    /// Whether the stream's state was ever seen (else the lag is unknown).
    seen: AtomicBool,
    /// Setups in a row that found the stream ending below what was applied.
    short_readings: std::sync::atomic::AtomicU32,
    /// Whether writes can go to the stream now (for health checks).
    writable: watch::Sender<bool>,
}

/// How far this server is behind the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStatus {
    /// Whether writes can reach the stream now.
    pub writable: bool,
    /// The highest stream sequence applied to the local store.
    pub applied: u64,
    /// The stream's last sequence as last seen minus `applied`; unknown until the
    /// stream was reached once.
    pub lag: Option<u64>,
}

/// Why setting up the stream failed.
enum SetupError {
    /// NATS or the stream cannot be reached now: try again.
    Unreachable(String),
    /// The store holds something else: trying again cannot help.
    Refused(Error),
}

impl Cluster {
    /// Connects to NATS (reconnecting by itself from then on), makes the stream if
    /// it does not exist, and starts applying it to `store`. When NATS cannot be
    /// reached within a few seconds the server starts anyway: reads are served
    /// from the store, writes answer `UNAVAILABLE` until the stream is reached. An
    /// error here means the store holds reports of something else.
    pub async fn start(config: ClusterConfig, store: Store) -> Result<Arc<Cluster>, Error> {
        let client = async_nats::ConnectOptions::new()
            .name("perfstats")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(1000))
            })
            .connect(config.urls.clone())
            .await
            .map_err(|error| Error::BadRequest(format!("--nats: {error}")))?;
        // Acks wait at most PUBLISH_TIMEOUT, and an abandoned ack's slot is free
        // again as soon; past MAX_ACKS_IN_FLIGHT a publish fails at once.
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(PUBLISH_TIMEOUT)
            .ack_timeout(PUBLISH_TIMEOUT)
            .max_ack_inflight(MAX_ACKS_IN_FLIGHT)
            .backpressure_on_inflight(false)
            .build(client.clone());
        let cluster = Arc::new(Cluster {
            client,
            jetstream,
            subjects: Subjects::of(&config.stream),
            config,
            store,
            ready: AtomicBool::new(false),
            answering: AtomicBool::new(false),
            stream_last: AtomicU64::new(0),
            seen: AtomicBool::new(false),
            short_readings: std::sync::atomic::AtomicU32::new(0),
            writable: watch::channel(false).0,
        });
        match tokio::time::timeout(FIRST_CONTACT, cluster.setup()).await {
            Ok(Ok(_)) => {}
            Ok(Err(SetupError::Refused(error))) => return Err(error),
            Ok(Err(SetupError::Unreachable(why))) => {
                tracing::warn!("NATS: {why}; serving reads, writes wait for the stream");
            }
            Err(_) => tracing::warn!(
                "NATS: not reached within {FIRST_CONTACT:?}; serving reads, writes wait for the stream"
            ),
        }
        tokio::spawn(materialise::run(cluster.clone()));
        tokio::spawn(watch_writable(Arc::downgrade(&cluster)));
        tokio::spawn(probe(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// Finds the stream (making it when missing and this store is new) and checks
    /// the store holds it. On failure writes stop until it succeeds again.
    async fn setup(&self) -> Result<stream::Stream, SetupError> {
        let outcome = self.find_stream().await;
        self.ready.store(outcome.is_ok(), Ordering::Release);
        outcome
    }

    async fn find_stream(&self) -> Result<stream::Stream, SetupError> {
        let name = &self.config.stream;
        let unreachable = |error: &dyn std::fmt::Display| {
            SetupError::Unreachable(format!("stream {name}: {error}"))
        };
        let stream = match self.jetstream.get_stream(name).await {
            Ok(stream) => stream,
            Err(error) if is_not_found(&error.kind()) => {
                // Only a store that holds nothing yet may make the stream: one that
                // applied a stream would mix two histories (a stream made again
                // starts at seq 1), one of a server of its own has its own seqs.
                match self.store.source().await.map_err(SetupError::Refused)? {
                    (None, false) => {}
                    (None, true) => {
                        return Err(SetupError::Refused(Error::Unavailable(format!(
                            "--db: this database holds reports of a server of its own, not \
                             of NATS stream {name}: use another database file"
                        ))));
                    }
                    (Some(held), _) => {
                        return Err(SetupError::Unreachable(format!(
                            "stream {name} does not exist, but this store holds {held}: \
                             restore the stream, or start with another --db"
                        )));
                    }
                }
                let made = self
                    .jetstream
                    .create_stream(stream::Config {
                        name: name.clone(),
                        subjects: self.subjects.all(),
                        num_replicas: self.config.replicas,
                        duplicate_window: self.config.dedupe_window,
                        storage: stream::StorageType::File,
                        metadata: [(STREAM_ID_KEY.to_string(), uuid::Uuid::now_v7().to_string())]
                            .into(),
                        ..Default::default()
                    })
                    .await;
                // Another server may have made it meanwhile: look again next time.
                made.map_err(|error| unreachable(&error))?;
                self.jetstream
                    .get_stream(name)
                    .await
                    .map_err(|error| unreachable(&error))?
            }
            Err(error) => return Err(unreachable(&error)),
        };
        let info = stream.cached_info();
        if let Some(missing) = self
            .subjects
            .all()
            .into_iter()
            .find(|subject| !info.config.subjects.contains(subject))
        {
            return Err(SetupError::Refused(Error::BadRequest(format!(
                "--nats-stream: stream {name} exists without subject {missing}"
            ))));
        }
        if info.config.num_replicas != self.config.replicas
            || info.config.duplicate_window != self.config.dedupe_window
        {
            tracing::warn!(
                replicas = info.config.num_replicas,
                dedupe_window = ?info.config.duplicate_window,
                "stream {name} exists with its own replicas and duplicate window; the flags apply \
                 only to a stream this server makes"
            );
        }
        // Which stream this is: the id its maker gave it, else when it was made. A
        // stream deleted and made again restarts its sequences, which a store that
        // applied the old one must not mix in.
        let identity = match info.config.metadata.get(STREAM_ID_KEY) {
            Some(id) => format!("id {id}"),
            None => format!("created at {} ns", info.created.unix_timestamp_nanos()),
        };
        self.store
            .claim(Some(format!("NATS stream {name} ({identity})")))
            .await
            .map_err(SetupError::Refused)?;
        // The run a store makes when it opens empty is dated by the stream, the
        // same on every server (each store made it at its own start).
        self.store
            .date_first_run(info.created.unix_timestamp_nanos() as i64)
            .await
            .map_err(|error| unreachable(&error))?;
        let applied = self.store.applied();
        if info.state.last_sequence < applied {
            // Refused only when it stays so: one reading from a leader just elected
            // is not proof that the stream lost messages.
            let readings = self.short_readings.fetch_add(1, Ordering::AcqRel) + 1;
            let why = format!(
                "stream {name} ends at seq {}, but this store applied it up to seq {applied}",
                info.state.last_sequence
            );
            return Err(if readings >= SHORT_READINGS_TO_REFUSE {
                SetupError::Refused(Error::Unavailable(format!(
                    "{why}: the stream lost messages; start with another --db"
                )))
            } else {
                SetupError::Unreachable(why)
            });
        }
        self.short_readings.store(0, Ordering::Release);
        self.saw(info.state.last_sequence);
        self.answering.store(true, Ordering::Release);
        Ok(stream)
    }

    /// Notes that the stream has reached `seq`.
    fn saw(&self, seq: u64) {
        self.stream_last.fetch_max(seq, Ordering::AcqRel);
        self.seen.store(true, Ordering::Release);
    }

    /// Whether writes can go to the stream now.
    fn can_write(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.answering.load(Ordering::Acquire)
            && self.client.connection_state() == State::Connected
    }

    fn unavailable(&self, why: &dyn std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "stream {}: {why}; nothing was acknowledged that is not in the stream, retry",
            self.config.stream
        ))
    }

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
        if !self.can_write() {
            return Err(self.unavailable(&"writes cannot reach it now (NATS unreachable, no stream leader, or the stream refused by this store: see the log)"));
        }
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
        self.saw(ack.sequence);
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
    pub async fn new_run(&self, name: Option<String>) -> Result<RunInfo, Error> {
        if !self.can_write() {
            return Err(self.unavailable(&"writes cannot reach it now (NATS unreachable, no stream leader, or the stream refused by this store: see the log)"));
        }
        let name = name.map(|name| name.trim().to_string());
        if let Some(name) = &name {
            self.store.check_new_run_name(name)?;
        }
        // One id for every attempt: a start whose ack was lost is not a second run.
        let id = format!("run-{}", uuid::Uuid::now_v7());
        let body = entry::encode_run(name, now_unix_nano());
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
                    tracing::debug!(%error, attempt, "publishing a run's start again");
                }
                Err(error) => return Err(self.publish_failed(&error)),
            }
        };
        self.saw(ack.sequence);
        tokio::time::timeout(
            RUN_APPLIED_DEADLINE,
            self.store.applied_through(ack.sequence),
        )
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "the run is in the stream as seq {} but was not applied here within \
                 {RUN_APPLIED_DEADLINE:?}; it shows once this server catches up",
                ack.sequence
            ))
        })??;
        self.store
            .runs()
            .into_iter()
            .find(|run| run.first_seq == ack.sequence + 1)
            .ok_or_else(|| Error::Unavailable("the run was applied but is not found".into()))
    }

    /// The store this server applies the stream to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where this server stands against the stream.
    pub fn status(&self) -> StreamStatus {
        let applied = self.store.applied();
        StreamStatus {
            writable: self.can_write(),
            applied,
            lag: self.seen.load(Ordering::Acquire).then(|| {
                self.stream_last
                    .load(Ordering::Acquire)
                    .saturating_sub(applied)
            }),
        }
    }

    /// Whether writes can reach the stream, as it changes (checked a few times a
    /// second).
    pub fn writable(&self) -> watch::Receiver<bool> {
        self.writable.subscribe()
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .field("status", &self.status())
            .finish_non_exhaustive()
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

fn is_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(error)
        if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Asks for the stream's state every [`PROBE_EVERY`] until the cluster is gone:
/// its last sequence (so the lag shows even when nothing is applied here) and
/// whether it answers (so writes and health follow a stream without a leader).
async fn probe(cluster: std::sync::Weak<Cluster>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        if cluster.client.connection_state() != State::Connected {
            continue;
        }
        match cluster.jetstream.get_stream(&cluster.config.stream).await {
            Ok(stream) => {
                cluster.saw(stream.cached_info().state.last_sequence);
                cluster.answering.store(true, Ordering::Release);
            }
            Err(error) => {
                tracing::debug!(%error, "the stream does not answer");
                cluster.answering.store(false, Ordering::Release);
            }
        }
    }
}

/// Keeps [`Cluster::writable`] current until the cluster is gone. A task of its
/// own, not part of [`probe`]: a probe of a stream without a leader waits up to
/// [`PUBLISH_TIMEOUT`], and health must not lag what writes see meanwhile.
async fn watch_writable(cluster: std::sync::Weak<Cluster>) {
    loop {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let now = cluster.can_write();
        cluster.writable.send_if_modified(|was| {
            let changed = *was != now;
            *was = now;
            changed
        });
        drop(cluster);
        tokio::time::sleep(STATUS_POLL).await;
    }
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
