//! Past one machine: perfstats servers sharing one replicated NATS JetStream
//! stream. Any server takes writes and publishes them to the stream, many reports
//! a message (`outbox`); every server applies the stream, in order, into its own
//! store (`materialise`), so all answer the same once caught up. A message's
//! reports take the next store seqs in order, one each (a run's start, labels, or
//! anything else one), so every server stores every report at the same seq. A
//! write is answered once JetStream has it on a quorum of replicas *and* this
//! server has applied it, with what its store said: the seq, and whether the
//! report's id was stored already (`duplicate`, with the original's seq).
//!
//! Idempotency is the store's: a report whose id is stored already is refused when
//! applying (its seq stays a hole), alike on every server, whenever it was sent.
//! Each message carries a `Nats-Msg-Id` of its own, so JetStream drops a message
//! published twice within the duplicate window (`--nats-dedupe-window`). A
//! `ReportStats` call that fails part-way is made whole by the client's retry:
//! the reports already stored come back as duplicates. There is no atomic batch: a
//! failed call may leave some of its reports stored, never twice.
//!
//! # Layout
//! - `connect`: how this server connects to NATS (TLS, credentials) and says why
//!   NATS refuses it.
//! - `setup`: finding or making the stream, and checking this store holds it.
//! - `publish`: writes and run starts into the stream, answered once applied here.
//! - `outbox`: joining queued reports of many calls into messages, and publishing them.
//! - `waiters`: who waits for a message published here, until it is applied.
//! - `materialise`: applying the stream to the local store, in order.
//! - `health`: probing the stream and keeping writability current.
//! - `frozen`: leaving a NATS server that stopped answering for another.
//! - `overview`: the stream and this server as `/api/cluster` shows them.
//! - `entry`: the message format on the stream's subjects.

mod connect;
mod entry;
mod frozen;
mod health;
mod materialise;
mod outbox;
mod overview;
mod publish;
mod setup;
mod waiters;

pub use connect::NatsAccess;
pub use entry::Subjects;
pub use overview::{ClusterOverview, Health, PeerOverview, ServerOverview, StreamOverview};
pub use publish::DEFAULT_MAX_AWAITING;

use crate::error::Error;
use crate::store::{Applier, Store, StreamPosition};
use async_nats::connection::State;
use async_nats::jetstream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};

/// The stream's name unless told otherwise.
pub const DEFAULT_STREAM: &str = "PERFSTATS";
/// Replicas of the stream unless told otherwise (fewer when fewer URLs are given).
pub const DEFAULT_REPLICAS: usize = 3;
/// How long JetStream remembers a message's id to drop a second copy of it (the
/// store drops a second copy of a report whenever it comes).
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(2 * 60);
/// How long a publish waits for JetStream's ack before the write answers
/// `UNAVAILABLE` (the client retries; a leader election takes a few seconds).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the start waits for the stream before serving without it.
const FIRST_CONTACT: Duration = Duration::from_secs(5);
/// Messages this server may be behind the stream and still take writes: its
/// writes are answered once applied here, so a server catching up refuses them
/// (and says so in health) rather than keep callers waiting.
const MAX_WRITE_LAG: u64 = 1000;

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
    /// Reports of all calls queued or awaiting being applied here at once; past
    /// it a write answers `RESOURCE_EXHAUSTED`.
    pub max_awaiting: usize,
    /// TLS and credentials towards NATS.
    pub access: NatsAccess,
}

impl ClusterConfig {
    /// The defaults for `urls`: stream `PERFSTATS`, 3 replicas (or one per URL
    /// when fewer), a 2 min duplicate window.
    pub fn new(urls: Vec<String>) -> ClusterConfig {
        let replicas = DEFAULT_REPLICAS.min(urls.len()).max(1);
        ClusterConfig {
            urls,
            stream: DEFAULT_STREAM.into(),
            replicas,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            max_awaiting: DEFAULT_MAX_AWAITING,
            access: NatsAccess::default(),
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
    /// The local store, for reads.
    store: Store,
    /// The local store, for applying the stream.
    applier: Applier,
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
    /// How far the stream is applied here (kept by `materialise`).
    position: Mutex<StreamPosition>,
    /// The stream seq of the last message applied here.
    applied_message: watch::Sender<u64>,
    /// Pieces of reports on their way to the `outbox`.
    outbox: mpsc::UnboundedSender<outbox::Piece>,
    /// Who waits for messages published here.
    waiters: waiters::Waiters,
    /// The budget of reports queued or awaiting being applied here.
    awaiting: Arc<Semaphore>,
    /// Why NATS refuses this server (credentials, TLS), while it does.
    refusal: Arc<connect::Refusal>,
    /// The stream's state as the probe last got it, for `/api/cluster`.
    sighting: std::sync::Mutex<overview::Sighting>,
}

/// How far this server is behind the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStatus {
    /// Whether writes can reach the stream now.
    pub writable: bool,
    /// The stream sequence of the last message applied to the local store.
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
    /// error here means the store holds reports of something else, or a `--nats-*`
    /// flag that cannot work (a missing file, flags that do not go together).
    pub async fn start(config: ClusterConfig, store: Store) -> Result<Arc<Cluster>, Error> {
        let (client, refusal) = connect::connect(&config.urls, &config.access).await?;
        // Acks wait at most PUBLISH_TIMEOUT, and an abandoned ack's slot is free
        // again as soon; past MAX_ACKS_IN_FLIGHT a publish fails at once.
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(PUBLISH_TIMEOUT)
            .ack_timeout(PUBLISH_TIMEOUT)
            .max_ack_inflight(publish::MAX_ACKS_IN_FLIGHT)
            .backpressure_on_inflight(false)
            .build(client.clone());
        let applier = store.applier();
        let position = applier.stream_position().await?;
        let (outbox, queue) = mpsc::unbounded_channel();
        let cluster = Arc::new(Cluster {
            client,
            jetstream,
            subjects: Subjects::of(&config.stream),
            awaiting: Arc::new(Semaphore::new(config.max_awaiting)),
            config,
            applier,
            store,
            position: Mutex::new(position),
            applied_message: watch::channel(position.message).0,
            outbox,
            waiters: waiters::Waiters::default(),
            ready: AtomicBool::new(false),
            answering: AtomicBool::new(false),
            stream_last: AtomicU64::new(0),
            seen: AtomicBool::new(false),
            short_readings: std::sync::atomic::AtomicU32::new(0),
            writable: watch::channel(false).0,
            refusal,
            sighting: Default::default(),
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
        tokio::spawn(outbox::run(Arc::downgrade(&cluster), queue));
        tokio::spawn(health::watch_writable(Arc::downgrade(&cluster)));
        tokio::spawn(health::probe(Arc::downgrade(&cluster)));
        tokio::spawn(frozen::unstick(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// Notes that the stream has reached `seq`.
    fn note_stream_seq(&self, seq: u64) {
        self.stream_last.fetch_max(seq, Ordering::AcqRel);
        self.seen.store(true, Ordering::Release);
    }

    /// Whether writes can go to the stream now: it answers, and this server is not
    /// catching up.
    fn can_write(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.answering.load(Ordering::Acquire)
            && self.client.connection_state() == State::Connected
            && self.status_lag().is_none_or(|lag| lag <= MAX_WRITE_LAG)
    }

    /// The stream's last seq as last seen minus the last applied here, once seen.
    fn status_lag(&self) -> Option<u64> {
        let applied = *self.applied_message.borrow();
        self.seen.load(Ordering::Acquire).then(|| {
            self.stream_last
                .load(Ordering::Acquire)
                .saturating_sub(applied)
        })
    }

    /// Waits until this server has applied the stream's message at `seq`.
    async fn applied_through(&self, seq: u64) {
        let mut applied = self.applied_message.subscribe();
        let _ = applied.wait_for(|applied| *applied >= seq).await;
    }

    fn unavailable(&self, why: &dyn std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "stream {}: {why}; nothing was acknowledged that is not in the stream, retry",
            self.config.stream
        ))
    }

    /// Refuses a write while the stream cannot take it.
    fn check_writable(&self) -> Result<(), Error> {
        if self.can_write() {
            return Ok(());
        }
        if let Some(lag) = self.status_lag().filter(|lag| *lag > MAX_WRITE_LAG) {
            return Err(self.unavailable(&format_args!(
                "this server is {lag} messages behind it (catching up): write through another \
                 server, or retry"
            )));
        }
        if let Some(reason) = self.refusal.reason() {
            return Err(self.unavailable(&reason));
        }
        Err(self.unavailable(
            &"writes cannot reach it now (NATS unreachable, no stream leader, or the stream \
              refused by this store: see the log)",
        ))
    }

    /// The store this server applies the stream to, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where this server stands against the stream.
    pub fn status(&self) -> StreamStatus {
        StreamStatus {
            writable: self.can_write(),
            applied: *self.applied_message.borrow(),
            lag: self.status_lag(),
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
