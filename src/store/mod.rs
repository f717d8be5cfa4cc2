//! The store: runs of reports, reads that never wait for writes, each run's live
//! analysis, and the live feed of stored reports. [`Store`] is its whole public
//! face for the server: reads, [`Store::append`] and [`Store::new_run`]; a server
//! sharing a stream applies it through [`Applier`], which adds the stream's own
//! operations (seqs given, holes, which stream the store holds).
//!
//! Seqs are the store's own (1, 2, 3…) unless the caller gives them: a server
//! sharing a stream applies the stream's messages at the stream's sequences, so
//! seqs may have holes (run messages, duplicates beyond the stream's window).
//!
//! # Layout
//! - `committer`: group commit (who commits, transactions sized to their cost,
//!   answers).
//! - `backend`: what a backend offers; `sqlite` (with its schema migrations) and
//!   `memory` are the two.
//! - `checkpoint`: SQLite's WAL copied into the database beside the writer.
//! - `runs`: runs as contiguous seq ranges, and the rules for starting one.
//! - `query`: which reports a read selects.
//! - `analyses`: each run's live analysis, built from the store when first asked.
//! - `figures`: finished runs' headline figures, kept for many runs (sweeps).
//! - `applier`: what applying a replicated stream needs, and nothing else.

mod analyses;
mod applier;
mod backend;
mod checkpoint;
mod committer;
mod figures;
mod memory;
mod query;
mod runs;
mod sqlite;

pub use analyses::SharedAnalysis;
pub use applier::Applier;
pub use backend::StreamPosition;
pub use committer::MAX_COMMIT_REPORTS;
pub use figures::FIGURES_KEPT;
pub use query::Query;
pub use runs::{RunInfo, RunRef};
pub use sqlite::SCHEMA_VERSION;

use crate::analysis::sweep::RunFigures;
use crate::error::Error;
use crate::labels::Labels;
use crate::report::Report;
use analyses::{Analyses, build_analysis};
use backend::{Reader, Writer};
use committer::{Pending, commit_loop};
use figures::Figures;
use runs::{Runs, start_run};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{broadcast, watch};

/// Reports the live feed buffers for a slow subscriber before it is skipped ahead.
const FEED_CAPACITY: usize = 4096;

/// Where reports are kept.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite database file in WAL mode: everything is kept, across restarts.
    Sqlite(PathBuf),
    /// RAM only, keeping the newest `max_reports`; gone when the process ends.
    Memory {
        /// Oldest reports are evicted beyond this many.
        max_reports: usize,
    },
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where reports are kept.
    pub backend: Backend,
    /// Start a new run with this name instead of continuing the latest one.
    pub new_run: Option<String>,
    /// The labels of that new run.
    pub new_run_labels: Labels,
    /// Told what each commit stored (the metrics count it).
    pub observer: Arc<dyn CommitObserver>,
}

impl StoreConfig {
    /// A store on `backend`, continuing its latest run, telling nobody what it commits.
    pub fn new(backend: Backend) -> StoreConfig {
        StoreConfig {
            backend,
            new_run: None,
            new_run_labels: Labels::new(),
            observer: Arc::new(()),
        }
    }
}

/// Who hears what the store committed, before callers are answered. Called on the
/// committing thread: keep it quick.
pub trait CommitObserver: Send + Sync + std::fmt::Debug {
    /// `stored` were newly stored, `duplicates` answered as already stored, in one
    /// commit that took `elapsed`.
    fn committed(&self, stored: &[&Report], duplicates: u64, elapsed: std::time::Duration);
}

/// An observer that ignores everything.
impl CommitObserver for () {
    fn committed(&self, _: &[&Report], _: u64, _: std::time::Duration) {}
}

/// What the store says of one appended report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its seq (the original one for a duplicate).
    pub seq: u64,
    /// Whether its `report_id` was stored already, so nothing was stored now.
    pub duplicate: bool,
    /// The name of its run.
    pub run: Arc<str>,
}

/// A cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// What every handle to one store shares.
struct Shared {
    /// Requests waiting to be committed; `None` once the store is closed.
    queue: Mutex<Option<Vec<Pending>>>,
    /// Held by whoever commits.
    writer: Mutex<Box<dyn Writer>>,
    /// The committer thread (SQLite); unset when callers commit (memory).
    committer: std::sync::OnceLock<std::thread::Thread>,
    /// Whether a wake-up of the committer thread is on its way (see `committer`).
    wake_pending: std::sync::atomic::AtomicBool,
    reader: Arc<dyn Reader>,
    runs: RwLock<Runs>,
    feed: broadcast::Sender<Arc<Report>>,
    /// The highest seq taken (as `Store::last_seq` tells).
    last_seq: AtomicU64,
    /// Reports the next transaction may hold (see `committer`).
    piece: std::sync::atomic::AtomicUsize,
    /// The highest seq applied: a report, a run's start or a hole.
    applied: watch::Sender<u64>,
    /// Becomes true when the store is closed.
    closed: watch::Sender<bool>,
    observer: Arc<dyn CommitObserver>,
    analyses: Analyses,
    figures: Figures,
}

impl Store {
    /// Opens (or creates) the store and picks the run to continue, or starts the
    /// one asked for.
    pub fn open(config: StoreConfig) -> Result<Store, Error> {
        let threaded = matches!(config.backend, Backend::Sqlite(_));
        let (mut writer, reader): (Box<dyn Writer>, Arc<dyn Reader>) = match &config.backend {
            Backend::Sqlite(path) => {
                let (writer, reader) = sqlite::open(path)?;
                (Box::new(writer), Arc::new(reader))
            }
            Backend::Memory { max_reports } => {
                let (writer, reader) = memory::open(*max_reports);
                (Box::new(writer), Arc::new(reader))
            }
        };
        let mut runs = Runs {
            all: writer.load_runs()?,
        };
        if config.new_run.is_some()
            && let (Some(held), _) = writer.source()?
        {
            // A stream's database gets runs from the stream only.
            return Err(Error::Unavailable(format!(
                "--new-run: this database holds {held}; start runs with POST /api/runs"
            )));
        }
        if config.new_run.is_some() || runs.all.is_empty() {
            start_run(
                writer.as_mut(),
                &mut runs,
                config.new_run,
                config.new_run_labels,
            )?;
        }
        let last = writer.last_seq()?;
        let last_seq = AtomicU64::new(last);
        let current = runs.current().clone();
        let analysis = build_analysis(&reader, runs.seqs(current.id))?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Some(Vec::new())),
            writer: Mutex::new(writer),
            committer: std::sync::OnceLock::new(),
            wake_pending: std::sync::atomic::AtomicBool::new(false),
            reader,
            runs: RwLock::new(runs),
            feed: broadcast::channel(FEED_CAPACITY).0,
            last_seq,
            piece: std::sync::atomic::AtomicUsize::new(MAX_COMMIT_REPORTS),
            applied: watch::channel(last).0,
            closed: watch::channel(false).0,
            observer: config.observer,
            analyses: Analyses::new(current.id, analysis),
            figures: Figures::default(),
        });
        if threaded {
            let weak = Arc::downgrade(&shared);
            let thread = std::thread::Builder::new()
                .name("perfstats-commit".into())
                .spawn(move || commit_loop(weak))
                .map_err(|error| {
                    Error::Unavailable(format!("store: cannot start the committer: {error}"))
                })?;
            let _ = shared.committer.set(thread.thread().clone());
        }
        Ok(Store { shared })
    }

    /// Stores `reports` and answers once they are durable: one receipt each, in
    /// order. Their `run` is the current run's; a `seq` of 0 is assigned here, any
    /// other is kept (it must be above [`Applier::applied`]: a stream's sequence).
    /// Up to [`MAX_COMMIT_REPORTS`] are stored in one transaction, all or none; a
    /// longer append a piece at a time, other callers' commits between its pieces
    /// (all of it in one run). When a piece fails (a full disk), the call gets the
    /// error and the pieces before it stay stored: a retry with the same report
    /// ids finds them duplicates.
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        self.request(|reply| Pending::Append {
            reports,
            reply,
            earlier: Vec::new(),
            piece: 0,
        })
        .await
    }

    /// Starts a new run (named `run-<id>` when no name is given) with `labels`,
    /// which becomes current.
    pub async fn new_run(&self, name: Option<String>, labels: Labels) -> Result<RunInfo, Error> {
        self.request(|reply| Pending::NewRun {
            name,
            labels,
            at: None,
            reply,
        })
        .await
    }

    /// Replaces run `run`'s labels (by id), answering the run as it now is.
    pub async fn set_labels(&self, run: u64, labels: Labels) -> Result<RunInfo, Error> {
        self.request(|reply| Pending::Label {
            run: RunRef::Id(run),
            labels,
            at: None,
            reply,
        })
        .await
    }

    /// Completes once [`Store::close`] was called.
    pub async fn closed(&self) {
        let mut closed = self.shared.closed.subscribe();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Whether [`Store::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.shared.closed.borrow()
    }

    /// Checks that `name` may name a new run: the rules, and not taken.
    pub fn check_new_run_name(&self, name: &str) -> Result<(), Error> {
        self.shared
            .runs
            .read()
            .expect("runs lock")
            .check_new_name(name)
    }

    /// The run whose seqs hold `seq`.
    pub fn run_of(&self, seq: u64) -> Option<RunInfo> {
        let runs = self.shared.runs.read().expect("runs lock");
        runs.all
            .iter()
            .rev()
            .find(|run| run.first_seq <= seq)
            .cloned()
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Vec<RunInfo> {
        self.shared.runs.read().expect("runs lock").all.clone()
    }

    /// The run new reports go to.
    pub fn current_run(&self) -> RunInfo {
        self.shared
            .runs
            .read()
            .expect("runs lock")
            .current()
            .clone()
    }

    /// The run named by `id_or_name` (its numeric id or its name), or the current run.
    pub fn resolve_run(&self, id_or_name: Option<&str>) -> Result<RunInfo, Error> {
        let runs = self.shared.runs.read().expect("runs lock");
        let Some(wanted) = id_or_name.filter(|text| !text.is_empty()) else {
            return Ok(runs.current().clone());
        };
        runs.all
            .iter()
            .find(|run| &*run.name == wanted || run.id.to_string() == wanted)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("run: no run with id or name {wanted:?}")))
    }

    /// Reports matching `query`, in its order, read without waiting for writes.
    pub async fn query(&self, query: Query) -> Result<Vec<Arc<Report>>, Error> {
        let seqs = self.shared.runs.read().expect("runs lock").seqs(query.run);
        let reader = self.shared.reader.clone();
        tokio::task::spawn_blocking(move || reader.query(&query, seqs))
            .await
            .map_err(|error| Error::Unavailable(format!("store: read failed: {error}")))?
    }

    /// Every report stored from now on, as soon as it is durable. A receiver that
    /// falls more than a few thousand reports behind gets `Lagged` and should catch
    /// up with [`Store::query`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Report>> {
        self.shared.feed.subscribe()
    }

    /// The highest seq stored so far, in any run (0 when the store is empty).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Run `run`'s analysis, kept current for the current run; an older run's is
    /// built from its reports the first time (O(run), once) and a few are kept.
    pub async fn analysis(&self, run: u64) -> Result<SharedAnalysis, Error> {
        let shared = self.shared.clone();
        self.shared
            .analyses
            .get(run, move || {
                // Read here, not before: once a run is not current its range is final.
                let seqs = shared.runs.read().expect("runs lock").seqs(run);
                build_analysis(&shared.reader, seqs)
            })
            .await
    }

    /// Run `run`'s headline figures: the current run's from its live analysis; a
    /// finished run's kept once computed (its analysis is used when built, else
    /// built once for them and dropped: O(run) of CPU, once).
    pub async fn figures(&self, run: u64) -> Result<Arc<RunFigures>, Error> {
        let evicted = {
            let runs = self.shared.runs.read().expect("runs lock");
            runs.all
                .iter()
                .find(|info| info.id == run)
                .map_or(0, |info| info.evicted)
        };
        if let Some(kept) = self.shared.figures.get(run, evicted) {
            return Ok(kept);
        }
        let current = self.current_run().id == run;
        let figures = match self.shared.analyses.built(run) {
            Some(analysis) => tokio::task::spawn_blocking(move || {
                RunFigures::of(&analysis.read().expect("analysis lock"))
            })
            .await
            .map_err(|error| Error::Unavailable(format!("figures failed: {error}")))?,
            None => {
                let shared = self.shared.clone();
                self.shared
                    .analyses
                    .build_once(move || {
                        let seqs = shared.runs.read().expect("runs lock").seqs(run);
                        build_analysis(&shared.reader, seqs)
                            .map(|analysis| RunFigures::of(&analysis))
                    })
                    .await?
            }
        };
        let figures = Arc::new(figures);
        // Only a finished run's are final; `current` was read before they were
        // computed, so a run that ended meanwhile is just not kept this time.
        if !current {
            self.shared.figures.keep(run, evicted, figures.clone());
        }
        Ok(figures)
    }

    /// How many live-feed subscribers there are now.
    pub fn subscribers(&self) -> usize {
        self.shared.feed.receiver_count()
    }

    /// Stores everything queued before this call; appends after it fail with
    /// `UNAVAILABLE`.
    pub async fn close(&self) {
        self.shared.closed.send_replace(true);
        let queued = self.shared.queue.lock().expect("queue lock").take();
        if let Some(queued) = queued {
            let shared = self.shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut writer = shared.writer.lock().expect("writer lock");
                shared.commit(writer.as_mut(), queued);
            })
            .await;
        }
        self.shared.wake_now();
    }

    /// What a server applying a replicated stream needs of this store.
    pub fn applier(&self) -> Applier {
        Applier::new(self.clone())
    }
}

fn closed() -> Error {
    Error::Unavailable("store: shutting down".into())
}
