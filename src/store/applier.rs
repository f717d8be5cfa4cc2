//! [`Applier`]: what a server sharing a replicated stream (`crate::cluster`) needs
//! of its store, and nothing else. It applies the stream's messages at the seqs
//! the stream's order gives them (reports, run starts, holes), records which stream
//! the store holds and how far it is applied ([`StreamPosition`]).

use super::committer::Pending;
use super::{Receipt, RunInfo, RunRef, Shared, Store, StreamPosition, closed};
use crate::error::Error;
use crate::labels::Labels;
use crate::report::Report;
use std::sync::Arc;

/// A handle to a store for applying a stream to it (see the module doc).
#[derive(Clone)]
pub struct Applier {
    store: Store,
}

impl Applier {
    /// The applier of `store`.
    pub(super) fn new(store: Store) -> Applier {
        Applier { store }
    }

    /// Stores `reports` at the seqs they carry (each above [`Applier::applied`]),
    /// as [`Store::append`] does (in pieces past 1,024 reports, in order).
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        self.store.append(reports).await
    }

    /// Starts the run a stream's message at `seq` began at `started_unix_nano`: its
    /// reports are the seqs after `seq`. A name that is taken or breaks the rules
    /// becomes the default name, and labels that break the rules none, so every
    /// server applying the stream agrees.
    pub async fn new_run_at(
        &self,
        seq: u64,
        name: Option<String>,
        labels: Labels,
        started_unix_nano: i64,
    ) -> Result<RunInfo, Error> {
        self.store
            .request(|reply| Pending::NewRun {
                name,
                labels,
                at: Some((seq, started_unix_nano)),
                reply,
            })
            .await
    }

    /// Applies a stream's message at `seq` that replaces the labels of the run
    /// whose reports start at `first_seq`; `seq` holds nothing else and is
    /// recorded as applied even when the labels are refused (`NOT_FOUND`: a run
    /// this store lacks; `INVALID_ARGUMENT`: labels that break the rules), as every
    /// server applying the stream refuses them alike.
    pub async fn label_at(
        &self,
        seq: u64,
        first_seq: u64,
        labels: Labels,
    ) -> Result<RunInfo, Error> {
        self.store
            .request(|reply| Pending::Label {
                run: RunRef::FirstSeq(first_seq),
                labels,
                at: Some(seq),
                reply,
            })
            .await
    }

    /// Records that the stream's message at `seq` is no report and no run.
    pub async fn skip(&self, seq: u64) -> Result<(), Error> {
        self.store
            .request(|reply| Pending::Skip { seq, reply })
            .await
    }

    /// Checks that this store holds reports of `source` (a stream and when it was
    /// made; `None`: this server's own), recording a stream in a store without
    /// reports; refuses a store filled from anything else, whose seqs would clash.
    pub async fn claim(&self, source: Option<String>) -> Result<(), Error> {
        self.with_writer("claim", move |shared| {
            let mut writer = shared.writer.lock().expect("writer lock");
            writer.claim(source.as_deref())
        })
        .await
    }

    /// The stream this store holds (as [`Applier::claim`] recorded it), if any, and
    /// whether it holds any report.
    pub async fn source(&self) -> Result<(Option<String>, bool), Error> {
        self.with_writer("read", |shared| {
            shared.writer.lock().expect("writer lock").source()
        })
        .await
    }

    /// How far the stream is applied, as last recorded ([`Applier::record_position`]).
    /// A store a release before batched messages claimed has none recorded: there
    /// every message took the seq of its own stream seq, so it is `applied()` for both.
    pub async fn stream_position(&self) -> Result<StreamPosition, Error> {
        let applied = self.applied();
        self.with_writer("read", move |shared| {
            let recorded = shared
                .writer
                .lock()
                .expect("writer lock")
                .stream_position()?;
            Ok(recorded.unwrap_or(StreamPosition {
                message: applied,
                seq: applied,
            }))
        })
        .await
    }

    /// Records how far the stream is applied: `position` must not lead what is
    /// durable here (it may lag: following again from it re-reads messages whose
    /// seqs are applied already, and skips them).
    pub async fn record_position(&self, position: StreamPosition) -> Result<(), Error> {
        self.with_writer("update", move |shared| {
            shared
                .writer
                .lock()
                .expect("writer lock")
                .set_stream_position(position)
        })
        .await
    }

    /// Gives the first run, while it is the only one and has no reports, this start
    /// time: a stream's creation time, so that every server applying the stream
    /// shows the run it made when it opened empty the same way.
    pub async fn date_first_run(&self, started_unix_nano: i64) -> Result<(), Error> {
        self.with_writer("update", move |shared| {
            let mut writer = shared.writer.lock().expect("writer lock");
            let mut runs = shared.runs.write().expect("runs lock");
            match runs.all.as_mut_slice() {
                [only]
                    if only.reports == 0
                        && only.evicted == 0
                        && only.started_unix_nano != started_unix_nano =>
                {
                    writer.set_run_start(only.id, started_unix_nano)?;
                    only.started_unix_nano = started_unix_nano;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
        .await
    }

    /// The highest seq applied so far: a report, a run's start or a hole.
    pub fn applied(&self) -> u64 {
        *self.store.shared.applied.borrow()
    }

    /// Waits until [`Applier::applied`] reaches `seq`.
    pub async fn applied_through(&self, seq: u64) -> Result<(), Error> {
        let mut applied = self.store.shared.applied.subscribe();
        applied
            .wait_for(|applied| *applied >= seq)
            .await
            .map(drop)
            .map_err(|_| closed())
    }

    /// Completes once the store is closed (the server is shutting down).
    pub async fn closed(&self) {
        self.store.closed().await
    }

    /// Whether the store is closed.
    pub fn is_closed(&self) -> bool {
        self.store.is_closed()
    }

    /// Runs `work` with the writer's state on the blocking pool: it takes the
    /// writer lock, which a commit may hold. `what` names it if the task fails.
    /// Then it commits what was queued meanwhile (a committer that found the
    /// writer held went back to sleep: whoever holds the writer looks again).
    async fn with_writer<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&Shared) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let shared: Arc<Shared> = self.store.shared.clone();
        tokio::task::spawn_blocking(move || {
            let result = work(&shared);
            while shared.commit_queued() {}
            result
        })
        .await
        .map_err(|error| Error::Unavailable(format!("store: {what} failed: {error}")))?
    }
}
