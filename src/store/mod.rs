//! The store: one writer thread that group-commits reports, runs, reads that never
//! wait for the writer, and the live feed of stored reports.
//!
//! Every append goes through a channel to the writer thread, which drains what is
//! queued, stores it in one transaction and only then answers each caller. So an
//! acknowledged report is durable, and many concurrent callers share one commit.

mod memory;
mod report;
mod sqlite;

pub use report::{Query, Receipt, Report, RunInfo};

use crate::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Reports stored in one transaction at most; more waiting callers go in the next one.
const MAX_BATCH: usize = 8192;
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
}

/// The writer-side operations a backend offers; called only on the writer thread.
trait Writer: Send {
    /// Every run, oldest first, with its report count.
    fn load_runs(&mut self) -> Result<Vec<RunInfo>, Error>;
    /// The highest seq stored so far (0 when empty).
    fn last_seq(&mut self) -> Result<u64, Error>;
    /// Records a new run and returns its id.
    fn create_run(&mut self, name: &str, started_unix_nano: i64) -> Result<u64, Error>;
    /// Stores `reports` (seq 0, run set) in one transaction, all or none. For each,
    /// `Ok(stored)` with its seq, or `Err((seq, run))` of the report that already
    /// holds its `report_id`.
    fn insert(&mut self, reports: Vec<Report>) -> Result<Vec<Inserted>, Error>;
}

/// What became of one report handed to [`Writer::insert`].
enum Inserted {
    New(Arc<Report>),
    Duplicate { seq: u64, run: u64 },
}

/// The read side of a backend: safe to call from any thread while the writer writes.
trait Reader: Send + Sync {
    /// Reports matching `query`, oldest first.
    fn query(&self, query: &Query) -> Result<Vec<Arc<Report>>, Error>;
}

enum Command {
    Append {
        reports: Vec<Report>,
        reply: oneshot::Sender<Result<Vec<Receipt>, Error>>,
    },
    NewRun {
        name: Option<String>,
        reply: oneshot::Sender<Result<RunInfo, Error>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// Runs as the writer last committed them; read by anyone without asking the writer.
#[derive(Debug, Default)]
struct Runs {
    all: Vec<RunInfo>,
}

impl Runs {
    fn current(&self) -> &RunInfo {
        self.all.last().expect("the store always has a run")
    }
}

/// A cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    commands: mpsc::UnboundedSender<Command>,
    reader: Arc<dyn Reader>,
    runs: Arc<RwLock<Runs>>,
    feed: broadcast::Sender<Arc<Report>>,
    evicted: Arc<AtomicU64>,
    last_seq: Arc<AtomicU64>,
}

impl Store {
    /// Opens (or creates) the store, picks the run to continue or starts the one
    /// asked for, and starts the writer thread.
    pub fn open(config: StoreConfig) -> Result<Store, Error> {
        let evicted = Arc::new(AtomicU64::new(0));
        let (mut writer, reader): (Box<dyn Writer>, Arc<dyn Reader>) = match &config.backend {
            Backend::Sqlite(path) => {
                let (writer, reader) = sqlite::open(path)?;
                (Box::new(writer), Arc::new(reader))
            }
            Backend::Memory { max_reports } => {
                let (writer, reader) = memory::open(*max_reports, evicted.clone());
                (Box::new(writer), Arc::new(reader))
            }
        };
        let mut runs = Runs {
            all: writer.load_runs()?,
        };
        if config.new_run.is_some() || runs.all.is_empty() {
            start_run(writer.as_mut(), &mut runs, config.new_run)?;
        }
        let last_seq = Arc::new(AtomicU64::new(writer.last_seq()?));
        let runs = Arc::new(RwLock::new(runs));
        let (commands, inbox) = mpsc::unbounded_channel();
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let shared = Shared {
            runs: runs.clone(),
            feed: feed.clone(),
            last_seq: last_seq.clone(),
        };
        std::thread::Builder::new()
            .name("perfstats-writer".into())
            .spawn(move || write_loop(writer, inbox, shared))
            .map_err(|error| Error::Unavailable(format!("store: cannot start writer: {error}")))?;
        Ok(Store {
            commands,
            reader,
            runs,
            feed,
            evicted,
            last_seq,
        })
    }

    /// Stores `reports` (their `seq` and `run` are assigned here) in one transaction,
    /// all or none, and answers once they are durable: one receipt each, in order.
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        let (reply, receipts) = oneshot::channel();
        self.send(Command::Append { reports, reply })?;
        receipts.await.map_err(|_| closed())?
    }

    /// Starts a new run (named `run-<id>` when no name is given) that becomes current.
    pub async fn new_run(&self, name: Option<String>) -> Result<RunInfo, Error> {
        let (reply, run) = oneshot::channel();
        self.send(Command::NewRun { name, reply })?;
        run.await.map_err(|_| closed())?
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Vec<RunInfo> {
        self.runs.read().expect("runs lock").all.clone()
    }

    /// The run new reports go to.
    pub fn current_run(&self) -> RunInfo {
        self.runs.read().expect("runs lock").current().clone()
    }

    /// The run named by `id_or_name` (its numeric id or its name), or the current run.
    pub fn resolve_run(&self, id_or_name: Option<&str>) -> Result<RunInfo, Error> {
        let runs = self.runs.read().expect("runs lock");
        let Some(wanted) = id_or_name.filter(|text| !text.is_empty()) else {
            return Ok(runs.current().clone());
        };
        runs.all
            .iter()
            .find(|run| &*run.name == wanted || run.id.to_string() == wanted)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("run: no run with id or name {wanted:?}")))
    }

    /// Reports matching `query`, oldest first, read without waiting for the writer.
    pub async fn query(&self, query: Query) -> Result<Vec<Arc<Report>>, Error> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || reader.query(&query))
            .await
            .map_err(|error| Error::Unavailable(format!("store: read failed: {error}")))?
    }

    /// Every report stored from now on, as soon as it is durable. A receiver that
    /// falls more than a few thousand reports behind gets `Lagged` and should catch
    /// up with [`Store::query`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Report>> {
        self.feed.subscribe()
    }

    /// The highest seq stored so far, in any run (0 when the store is empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// How many live-feed subscribers there are now.
    pub fn subscribers(&self) -> usize {
        self.feed.receiver_count()
    }

    /// Reports evicted so far by the memory backend's bound (always 0 with SQLite).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Stores everything queued before this call, then stops the writer. Appends
    /// after it fail with `UNAVAILABLE`.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Close { reply }).is_ok() {
            let _ = done.await;
        }
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| closed())
    }
}

fn closed() -> Error {
    Error::Unavailable("store: shutting down".into())
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_unix_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as i64)
}

fn start_run(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
) -> Result<RunInfo, Error> {
    let name = name.map(|name| name.trim().to_string());
    if let Some(name) = &name {
        if name.is_empty() || name.len() > 128 {
            return Err(Error::BadRequest("name: must be 1 to 128 bytes".into()));
        }
        if runs.all.iter().any(|run| *run.name == **name) {
            return Err(Error::Conflict(format!(
                "name: a run named {name:?} exists already"
            )));
        }
    }
    let next_id = runs.all.last().map_or(1, |run| run.id + 1);
    let name = name.unwrap_or_else(|| format!("run-{next_id}"));
    let started_unix_nano = now_unix_nano();
    let id = writer.create_run(&name, started_unix_nano)?;
    for run in &mut runs.all {
        run.current = false;
    }
    let run = RunInfo {
        id,
        name: name.into(),
        started_unix_nano,
        reports: 0,
        current: true,
    };
    runs.all.push(run.clone());
    Ok(run)
}

/// What the writer thread updates for everyone else to read.
struct Shared {
    runs: Arc<RwLock<Runs>>,
    feed: broadcast::Sender<Arc<Report>>,
    last_seq: Arc<AtomicU64>,
}

/// The writer thread: takes whatever is queued (up to `MAX_BATCH` reports), stores
/// it in one transaction, then answers every caller of that batch.
fn write_loop(
    mut writer: Box<dyn Writer>,
    mut inbox: mpsc::UnboundedReceiver<Command>,
    shared: Shared,
) {
    let Shared {
        runs,
        feed,
        last_seq,
    } = shared;
    let mut held: Option<Command> = None;
    loop {
        let Some(first) = held.take().or_else(|| inbox.blocking_recv()) else {
            return;
        };
        let (mut reports, mut waiting) = match first {
            Command::Append { reports, reply } => (reports, vec![(reply, 0)]),
            Command::NewRun { name, reply } => {
                let mut state = runs.write().expect("runs lock");
                let _ = reply.send(start_run(writer.as_mut(), &mut state, name));
                continue;
            }
            Command::Close { reply } => {
                let _ = reply.send(());
                return;
            }
        };
        waiting[0].1 = reports.len();
        while reports.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(Command::Append {
                    reports: more,
                    reply,
                }) => {
                    waiting.push((reply, more.len()));
                    reports.extend(more);
                }
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let (run_id, run_name) = {
            let state = runs.read().expect("runs lock");
            let current = state.current();
            (current.id, current.name.clone())
        };
        for report in &mut reports {
            report.run = run_id;
        }
        match writer.insert(reports) {
            Ok(inserted) => {
                let stored = inserted
                    .iter()
                    .filter(|outcome| matches!(outcome, Inserted::New(_)))
                    .count() as u64;
                let mut outcomes = inserted.into_iter();
                let state = runs.read().expect("runs lock");
                for (reply, count) in waiting {
                    let receipts = outcomes
                        .by_ref()
                        .take(count)
                        .map(|outcome| match outcome {
                            Inserted::New(report) => {
                                let receipt = Receipt {
                                    seq: report.seq,
                                    duplicate: false,
                                    run: run_name.clone(),
                                };
                                last_seq.fetch_max(report.seq, Ordering::AcqRel);
                                let _ = feed.send(report);
                                receipt
                            }
                            Inserted::Duplicate { seq, run } => Receipt {
                                seq,
                                duplicate: true,
                                run: state
                                    .all
                                    .iter()
                                    .find(|known| known.id == run)
                                    .map_or_else(|| run_name.clone(), |known| known.name.clone()),
                            },
                        })
                        .collect();
                    let _ = reply.send(Ok(receipts));
                }
                drop(state);
                if stored > 0 {
                    let mut state = runs.write().expect("runs lock");
                    if let Some(run) = state.all.iter_mut().find(|run| run.id == run_id) {
                        run.reports += stored;
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; reporting UNAVAILABLE to its callers");
                for (reply, _) in waiting {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
