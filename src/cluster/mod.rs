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
use async_nats::jetstream::{self, stream};
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
    /// The stream's last sequence as last seen (acks, messages, stream info).
    stream_last: AtomicU64,
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
    /// The stream's last sequence as last seen minus `applied`.
    pub lag: u64,
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
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(PUBLISH_TIMEOUT);
        let cluster = Arc::new(Cluster {
            client,
            jetstream,
            subjects: Subjects::of(&config.stream),
            config,
            store,
            ready: AtomicBool::new(false),
            stream_last: AtomicU64::new(0),
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
        Ok(cluster)
    }

    /// Finds the stream (making it if missing) and checks the store holds it.
    async fn setup(&self) -> Result<stream::Stream, SetupError> {
        let unreachable = |error: &dyn std::fmt::Display| {
            SetupError::Unreachable(format!("stream {}: {error}", self.config.stream))
        };
        let stream = self
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: self.subjects.all(),
                num_replicas: self.config.replicas,
                duplicate_window: self.config.dedupe_window,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|error| unreachable(&error))?;
        let info = stream.cached_info();
        if let Some(missing) = self
            .subjects
            .all()
            .into_iter()
            .find(|subject| !info.config.subjects.contains(subject))
        {
            return Err(SetupError::Refused(Error::BadRequest(format!(
                "--nats-stream: stream {} exists without subject {missing}",
                self.config.stream
            ))));
        }
        // The stream's name and creation time: a stream deleted and made again
        // restarts its sequences, which a store that applied the old one must not mix.
        let source = format!(
            "NATS stream {} created at {} ns",
            self.config.stream,
            info.created.unix_timestamp_nanos()
        );
        self.store
            .claim(Some(source))
            .await
            .map_err(SetupError::Refused)?;
        self.saw(info.state.last_sequence);
        self.ready.store(true, Ordering::Release);
        Ok(stream)
    }

    /// Notes that the stream has reached `seq`.
    fn saw(&self, seq: u64) {
        self.stream_last.fetch_max(seq, Ordering::AcqRel);
    }

    /// Whether writes can go to the stream now.
    fn can_write(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.client.connection_state() == State::Connected
    }

    fn unavailable(&self, why: &dyn std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "stream {}: {why}; nothing was acknowledged that is not in the stream, retry",
            self.config.stream
        ))
    }

    /// Publishes `reports` (validated, `report_id` set) and answers once JetStream
    /// has every one: a receipt each, with its stream sequence and whether
    /// JetStream already had its id (then the original's sequence).
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        if !self.can_write() {
            return Err(self.unavailable(&"NATS cannot be reached"));
        }
        let mut receipts = Vec::with_capacity(reports.len());
        let mut in_flight = VecDeque::with_capacity(PUBLISH_WINDOW.min(reports.len()));
        for report in &reports {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, report.report_id.as_str());
            let ack = self
                .jetstream
                .publish_with_headers(
                    self.subjects.reports.clone(),
                    headers,
                    entry::encode_report(report).into(),
                )
                .await
                .map_err(|error| self.unavailable(&error))?;
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
        let ack = ack.map_err(|error| self.unavailable(&error))?;
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
            return Err(self.unavailable(&"NATS cannot be reached"));
        }
        let name = name.map(|name| name.trim().to_string());
        if let Some(name) = &name {
            self.store.check_new_run_name(name)?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            format!("run-{}", uuid::Uuid::now_v7()).as_str(),
        );
        let ack = self
            .jetstream
            .publish_with_headers(
                self.subjects.runs.clone(),
                headers,
                entry::encode_run(name, now_unix_nano()).into(),
            )
            .await
            .map_err(|error| self.unavailable(&error))?
            .await
            .map_err(|error| self.unavailable(&error))?;
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
            lag: self
                .stream_last
                .load(Ordering::Acquire)
                .saturating_sub(applied),
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

/// Keeps [`Cluster::writable`] current until the cluster is gone.
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
