//! The store: group commit of reports, runs, reads that never wait for writes, and
//! the live feed of stored reports.
//!
//! Group commit: every append queues its reports; a committer takes all that is
//! queued, stores it in one transaction, answers each caller, and repeats while
//! more is queued. So an acknowledged report is durable and concurrent callers
//! share commits. Who commits depends on the backend, as measured on 2 cores:
//! - SQLite: a dedicated committer thread, woken when the queue fills. A commit
//!   writes WAL frames and takes tens of microseconds: done on a tokio worker it
//!   would stall that worker's network I/O, which cost more than the wake-up.
//! - memory: the caller itself, when no other caller is committing (leader and
//!   followers). An in-memory append takes well under a microsecond, far less than
//!   waking another thread would.
//!
//! Every commit also updates the current run's [`LiveAnalysis`] and tells the
//! [`CommitObserver`] (the metrics) what it stored, before any caller is answered:
//! a client that reads after its ACK sees its report counted everywhere.
//!
//! Seqs are the store's own (1, 2, 3…) unless the caller gives them: a server
//! sharing a stream (`crate::cluster`) applies the stream's messages at the
//! stream's sequences, so seqs may have holes (run messages, duplicates beyond
//! the stream's window). [`Store::applied`] is the highest seq taken, hole or not.

mod analyses;
mod memory;
mod records;
mod sqlite;

pub use analyses::SharedAnalysis;
pub use records::{Query, Receipt, RunInfo};

use crate::analysis::live::LiveAnalysis;
use crate::error::Error;
use crate::report::{Report, now_unix_nano};
use analyses::Analyses;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{broadcast, oneshot, watch};

/// Reports the live feed buffers for a slow subscriber before it is skipped ahead.
const FEED_CAPACITY: usize = 4096;
/// Rounds one caller commits for others before it hands the work to a fresh task,
/// so no caller waits long for its own answer under constant load.
const LEADER_ROUNDS: usize = 16;
/// Reports read per step while an analysis is built from the store.
const SCAN_PAGE: usize = 50_000;
/// How often an idle committer thread checks whether its store is gone.
const COMMITTER_IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// Told what each commit stored (the metrics count it).
    pub observer: Arc<dyn CommitObserver>,
}

impl StoreConfig {
    /// A store on `backend`, continuing its latest run, telling nobody what it commits.
    pub fn new(backend: Backend) -> StoreConfig {
        StoreConfig {
            backend,
            new_run: None,
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

/// The writer-side operations a backend offers; called only by whoever holds the
/// writer lock (the committer thread, or the committing caller).
trait Writer: Send {
    /// Every run, oldest first, with its report count.
    fn load_runs(&mut self) -> Result<Vec<RunInfo>, Error>;
    /// The highest seq taken so far, by a report or a hole (0 when empty).
    fn last_seq(&mut self) -> Result<u64, Error>;
    /// Records a new run whose reports start at `first_seq` and returns its id.
    fn create_run(
        &mut self,
        name: &str,
        started_unix_nano: i64,
        first_seq: u64,
    ) -> Result<u64, Error>;
    /// Stores `reports` (run set; seq 0 for the next free one, or a given seq above
    /// every seq taken) in one transaction, all or none: for each, whether it was
    /// new or a duplicate. A duplicate at a given seq leaves that seq a hole. Also
    /// returns the run of every report the backend evicted to stay within its
    /// bound (memory only).
    fn insert(&mut self, reports: Vec<Report>) -> Result<(Vec<Inserted>, Vec<u64>), Error>;
    /// Records that `seq` holds no report (a stream message that is not one).
    fn skip(&mut self, seq: u64) -> Result<(), Error>;
    /// Checks that this store holds what `source` describes (a stream and when it
    /// was created; `None`: reports of this server's own), recording a source in a
    /// store without reports; an error names both.
    fn claim(&mut self, source: Option<&str>) -> Result<(), Error>;
    /// The stream this store holds, if it recorded one, and whether it holds any
    /// report.
    fn source(&mut self) -> Result<(Option<String>, bool), Error>;
    /// Records that run `id` started at `started_unix_nano`.
    fn set_run_start(&mut self, id: u64, started_unix_nano: i64) -> Result<(), Error>;
}

/// What became of one report handed to [`Writer::insert`].
enum Inserted {
    New(Arc<Report>),
    Duplicate { seq: u64, run: u64 },
}

/// The read side of a backend: safe to call from any thread while the writer writes.
trait Reader: Send + Sync {
    /// Reports matching `query`, in its order; `seqs` is where the run's reports
    /// are (runs are contiguous seq ranges, so no index by run is needed).
    fn query(&self, query: &Query, seqs: std::ops::Range<u64>) -> Result<Vec<Arc<Report>>, Error>;
    /// Hands `visit` the reports with seqs in `seqs`, oldest first, at most `limit`
    /// of them, for the analysis: without their `report_id` and receive time, which
    /// it never reads. Returns the last seq handed over (0: none).
    fn scan(
        &self,
        seqs: std::ops::Range<u64>,
        limit: usize,
        visit: &mut dyn FnMut(Report),
    ) -> Result<u64, Error>;
}

/// Where the receipts of one append go.
type ReceiptsReply = oneshot::Sender<Result<Vec<Receipt>, Error>>;

/// A request waiting for the committer.
enum Pending {
    Append {
        reports: Vec<Report>,
        reply: ReceiptsReply,
    },
    NewRun {
        name: Option<String>,
        /// For a run taken from a stream: its message's seq and start time.
        at: Option<(u64, i64)>,
        reply: oneshot::Sender<Result<RunInfo, Error>>,
    },
    Skip {
        seq: u64,
        reply: oneshot::Sender<Result<(), Error>>,
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
    core: Arc<Core>,
}

/// What every handle shares.
struct Core {
    /// Requests waiting for the leader; `None` once the store is closed.
    queue: Mutex<Option<Vec<Pending>>>,
    /// Held by whoever commits.
    writer: Mutex<Box<dyn Writer>>,
    /// The committer thread (SQLite); unset when callers commit (memory).
    committer: std::sync::OnceLock<std::thread::Thread>,
    reader: Arc<dyn Reader>,
    runs: RwLock<Runs>,
    feed: broadcast::Sender<Arc<Report>>,
    last_seq: AtomicU64,
    /// The highest seq taken, by a report, a run message or a hole.
    applied: watch::Sender<u64>,
    /// Becomes true when the store is closed.
    closed: watch::Sender<bool>,
    observer: Arc<dyn CommitObserver>,
    analyses: Analyses,
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
            start_run(writer.as_mut(), &mut runs, config.new_run)?;
        }
        let taken = writer.last_seq()?;
        let last_seq = AtomicU64::new(taken);
        let current = runs.current().clone();
        let analysis = build_analysis(&reader, seq_range(&runs.all, current.id))?;
        let core = Arc::new(Core {
            queue: Mutex::new(Some(Vec::new())),
            writer: Mutex::new(writer),
            committer: std::sync::OnceLock::new(),
            reader,
            runs: RwLock::new(runs),
            feed: broadcast::channel(FEED_CAPACITY).0,
            last_seq,
            applied: watch::channel(taken).0,
            closed: watch::channel(false).0,
            observer: config.observer,
            analyses: Analyses::new(current.id, analysis),
        });
        if threaded {
            let weak = Arc::downgrade(&core);
            let thread = std::thread::Builder::new()
                .name("perfstats-commit".into())
                .spawn(move || commit_loop(weak))
                .map_err(|error| {
                    Error::Unavailable(format!("store: cannot start the committer: {error}"))
                })?;
            let _ = core.committer.set(thread.thread().clone());
        }
        Ok(Store { core })
    }

    /// Stores `reports` in one transaction, all or none, and answers once they are
    /// durable: one receipt each, in order. Their `run` is the current run's; a
    /// `seq` of 0 is assigned here, any other is kept (it must be above
    /// [`Store::applied`]: a stream's sequence).
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        let (reply, receipts) = oneshot::channel();
        self.enqueue(Pending::Append { reports, reply })?;
        receipts.await.map_err(|_| closed())?
    }

    /// Starts a new run (named `run-<id>` when no name is given) that becomes current.
    pub async fn new_run(&self, name: Option<String>) -> Result<RunInfo, Error> {
        let (reply, run) = oneshot::channel();
        self.enqueue(Pending::NewRun {
            name,
            at: None,
            reply,
        })?;
        run.await.map_err(|_| closed())?
    }

    /// Starts the run a stream's message at `seq` began at `started_unix_nano`: its
    /// reports are the seqs after `seq`. A name that is taken or breaks the rules
    /// becomes the default name, so every server applying the stream agrees.
    pub async fn new_run_at(
        &self,
        seq: u64,
        name: Option<String>,
        started_unix_nano: i64,
    ) -> Result<RunInfo, Error> {
        let (reply, run) = oneshot::channel();
        self.enqueue(Pending::NewRun {
            name,
            at: Some((seq, started_unix_nano)),
            reply,
        })?;
        run.await.map_err(|_| closed())?
    }

    /// Records that the stream's message at `seq` is no report and no run.
    pub async fn skip(&self, seq: u64) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.enqueue(Pending::Skip { seq, reply })?;
        done.await.map_err(|_| closed())?
    }

    /// Checks that this store holds reports of `source` (a stream, see
    /// [`crate::cluster`]; `None`: this server's own), recording a stream in a store
    /// without reports; refuses a store filled from anything else, whose seqs
    /// would clash.
    pub async fn claim(&self, source: Option<String>) -> Result<(), Error> {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || {
            core.writer
                .lock()
                .expect("writer lock")
                .claim(source.as_deref())
        })
        .await
        .map_err(|error| Error::Unavailable(format!("store: claim failed: {error}")))?
    }

    /// Gives the first run, while it is the only one and has no reports, this start
    /// time: a stream's creation time, so that every server applying the stream
    /// shows the run it made when it opened empty the same way.
    pub async fn date_first_run(&self, started_unix_nano: i64) -> Result<(), Error> {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = core.writer.lock().expect("writer lock");
            let mut runs = core.runs.write().expect("runs lock");
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
        .map_err(|error| Error::Unavailable(format!("store: update failed: {error}")))?
    }

    /// The stream this store holds (as [`Store::claim`] recorded it), if any, and
    /// whether it holds any report.
    pub async fn source(&self) -> Result<(Option<String>, bool), Error> {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || core.writer.lock().expect("writer lock").source())
            .await
            .map_err(|error| Error::Unavailable(format!("store: read failed: {error}")))?
    }

    /// Completes once [`Store::close`] was called.
    pub async fn closed(&self) {
        let mut closed = self.core.closed.subscribe();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// The highest seq taken so far, by a report, a run's start or a hole.
    pub fn applied(&self) -> u64 {
        *self.core.applied.borrow()
    }

    /// Waits until [`Store::applied`] reaches `seq`.
    pub async fn applied_through(&self, seq: u64) -> Result<(), Error> {
        let mut applied = self.core.applied.subscribe();
        applied
            .wait_for(|applied| *applied >= seq)
            .await
            .map(drop)
            .map_err(|_| closed())
    }

    /// Whether [`Store::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.core.closed.borrow()
    }

    /// Checks that `name` may name a new run: the rules, and not taken.
    pub fn check_new_run_name(&self, name: &str) -> Result<(), Error> {
        check_run_name(name)?;
        if self
            .core
            .runs
            .read()
            .expect("runs lock")
            .all
            .iter()
            .any(|run| &*run.name == name)
        {
            return Err(Error::Conflict(format!(
                "name: a run named {name:?} exists already"
            )));
        }
        Ok(())
    }

    /// The run whose seqs hold `seq`.
    pub fn run_of(&self, seq: u64) -> Option<RunInfo> {
        let runs = self.core.runs.read().expect("runs lock");
        runs.all
            .iter()
            .rev()
            .find(|run| run.first_seq <= seq)
            .cloned()
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Vec<RunInfo> {
        self.core.runs.read().expect("runs lock").all.clone()
    }

    /// The run new reports go to.
    pub fn current_run(&self) -> RunInfo {
        self.core.runs.read().expect("runs lock").current().clone()
    }

    /// The run named by `id_or_name` (its numeric id or its name), or the current run.
    pub fn resolve_run(&self, id_or_name: Option<&str>) -> Result<RunInfo, Error> {
        let runs = self.core.runs.read().expect("runs lock");
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
        let seqs = seq_range(&self.core.runs.read().expect("runs lock").all, query.run);
        let reader = self.core.reader.clone();
        tokio::task::spawn_blocking(move || reader.query(&query, seqs))
            .await
            .map_err(|error| Error::Unavailable(format!("store: read failed: {error}")))?
    }

    /// Every report stored from now on, as soon as it is durable. A receiver that
    /// falls more than a few thousand reports behind gets `Lagged` and should catch
    /// up with [`Store::query`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Report>> {
        self.core.feed.subscribe()
    }

    /// The highest seq stored so far, in any run (0 when the store is empty).
    pub fn last_seq(&self) -> u64 {
        self.core.last_seq.load(Ordering::Acquire)
    }

    /// Run `run`'s analysis, kept current for the current run; an older run's is
    /// built from its reports the first time (O(run), once) and a few are kept.
    pub async fn analysis(&self, run: u64) -> Result<SharedAnalysis, Error> {
        let core = self.core.clone();
        self.core
            .analyses
            .get(run, move || {
                // Read here, not before: once a run is not current its range is final.
                let seqs = seq_range(&core.runs.read().expect("runs lock").all, run);
                build_analysis(&core.reader, seqs)
            })
            .await
    }

    /// How many live-feed subscribers there are now.
    pub fn subscribers(&self) -> usize {
        self.core.feed.receiver_count()
    }

    /// Stores everything queued before this call; appends after it fail with
    /// `UNAVAILABLE`.
    pub async fn close(&self) {
        self.core.closed.send_replace(true);
        let queued = self.core.queue.lock().expect("queue lock").take();
        if let Some(queued) = queued {
            let core = self.core.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let mut writer = core.writer.lock().expect("writer lock");
                core.commit(writer.as_mut(), queued);
            })
            .await;
        }
        if let Some(committer) = self.core.committer.get() {
            committer.unpark();
        }
    }

    fn enqueue(&self, pending: Pending) -> Result<(), Error> {
        self.core
            .queue
            .lock()
            .expect("queue lock")
            .as_mut()
            .ok_or_else(closed)?
            .push(pending);
        self.lead();
        Ok(())
    }

    /// Commits what is queued, or has it committed (see the module doc).
    fn lead(&self) {
        if let Some(committer) = self.core.committer.get() {
            return committer.unpark();
        }
        for _ in 0..LEADER_ROUNDS {
            if !self.core.commit_queued() {
                return;
            }
        }
        // Still busy after many rounds: let a fresh task carry on.
        let store = self.clone();
        tokio::spawn(async move { store.lead() });
    }
}

/// The committer thread: commits whatever is queued, then sleeps until woken.
/// Ends when the store is closed or every handle to it is gone.
fn commit_loop(core: std::sync::Weak<Core>) {
    loop {
        let Some(core) = core.upgrade() else { return };
        while core.commit_queued() {}
        if core.queue.lock().expect("queue lock").is_none() {
            return;
        }
        drop(core);
        std::thread::park_timeout(COMMITTER_IDLE_CHECK);
    }
}

fn closed() -> Error {
    Error::Unavailable("store: shutting down".into())
}

/// Where run `run`'s reports are: runs are contiguous seq ranges.
fn seq_range(runs: &[RunInfo], run: u64) -> std::ops::Range<u64> {
    let mut from_here = runs.iter().skip_while(|info| info.id != run);
    match from_here.next() {
        Some(info) => info.first_seq..from_here.next().map_or(u64::MAX, |next| next.first_seq),
        None => 0..0,
    }
}

/// The analysis of the reports in `seqs`, read page by page on one thread while
/// this one folds them in (on 2 cores, about twice as fast as one after the other).
fn build_analysis(
    reader: &Arc<dyn Reader>,
    seqs: std::ops::Range<u64>,
) -> Result<LiveAnalysis, Error> {
    let (pages, received) = std::sync::mpsc::sync_channel::<Vec<Report>>(2);
    let scanner = {
        let reader = reader.clone();
        std::thread::Builder::new()
            .name("perfstats-scan".into())
            .spawn(move || -> Result<(), Error> {
                let mut from = seqs.start;
                while from < seqs.end {
                    let mut page = Vec::with_capacity(SCAN_PAGE);
                    let last = reader.scan(from..seqs.end, SCAN_PAGE, &mut |report| {
                        page.push(report);
                    })?;
                    if last == 0 || pages.send(page).is_err() {
                        break;
                    }
                    from = last + 1;
                }
                Ok(())
            })
            .map_err(|error| Error::Unavailable(format!("analysis: cannot scan: {error}")))?
    };
    let mut analysis = LiveAnalysis::default();
    for page in received {
        for report in &page {
            analysis.add(report);
        }
    }
    scanner
        .join()
        .map_err(|_| Error::Unavailable("analysis: the scan failed".into()))??;
    Ok(analysis)
}

fn start_run(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
) -> Result<RunInfo, Error> {
    let first_seq = writer.last_seq()? + 1;
    start_run_at(writer, runs, name, now_unix_nano(), first_seq)
}

/// Starts the run of a stream's message at `seq`; see [`Store::new_run_at`].
fn start_stream_run(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
    (seq, started_unix_nano): (u64, i64),
) -> Result<RunInfo, Error> {
    let usable = name.filter(|name| {
        let name = name.trim();
        check_run_name(name).is_ok() && !runs.all.iter().any(|run| &*run.name == name)
    });
    start_run_at(writer, runs, usable, started_unix_nano, seq + 1)
}

fn start_run_at(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
    started_unix_nano: i64,
    first_seq: u64,
) -> Result<RunInfo, Error> {
    let taken = |name: &str| runs.all.iter().any(|run| &*run.name == name);
    let next_id = runs.all.last().map_or(1, |run| run.id + 1);
    let name = match name.map(|name| name.trim().to_string()) {
        Some(name) => {
            check_run_name(&name)?;
            if taken(&name) {
                return Err(Error::Conflict(format!(
                    "name: a run named {name:?} exists already"
                )));
            }
            name
        }
        None => (0..)
            .map(|extra| match extra {
                0 => format!("run-{next_id}"),
                _ => format!("run-{next_id}-{extra}"),
            })
            .find(|name| !taken(name))
            .expect("some suffix is free"),
    };
    let id = writer.create_run(&name, started_unix_nano, first_seq)?;
    for run in &mut runs.all {
        run.current = false;
    }
    let run = RunInfo {
        id,
        name: name.into(),
        started_unix_nano,
        reports: 0,
        evicted: 0,
        first_seq,
        current: true,
    };
    runs.all.push(run.clone());
    Ok(run)
}

/// A run name is 1 to 128 characters, not all digits (those name run ids), and
/// has no control characters, quotes or backslashes (it ends up in file names).
fn check_run_name(name: &str) -> Result<(), Error> {
    let refuse = |rule: &str| Err(Error::BadRequest(format!("name: {rule}")));
    if name.is_empty() || name.chars().count() > 128 {
        return refuse("must be 1 to 128 characters");
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return refuse("must not be all digits (numbers name run ids)");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return refuse("must not contain control characters, quotes or backslashes");
    }
    Ok(())
}

impl Core {
    /// Notes that seqs up to `seq` are taken.
    fn taken(&self, seq: u64) {
        self.applied.send_if_modified(|applied| {
            let advanced = seq > *applied;
            *applied = (*applied).max(seq);
            advanced
        });
    }

    /// Commits what is queued unless someone else holds the writer; true when more
    /// was queued meanwhile (the caller should call again). Whoever holds the
    /// writer checks the queue again after letting go, so nothing is left behind.
    fn commit_queued(&self) -> bool {
        {
            let Ok(mut writer) = self.writer.try_lock() else {
                return false;
            };
            let queued = self
                .queue
                .lock()
                .expect("queue lock")
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            if !queued.is_empty() {
                self.commit(writer.as_mut(), queued);
            }
        }
        self.queue
            .lock()
            .expect("queue lock")
            .as_ref()
            .is_some_and(|queue| !queue.is_empty())
    }

    /// Handles `queued` in order: runs of appends are stored in one transaction
    /// each, then every caller is answered.
    fn commit(&self, writer: &mut dyn Writer, queued: Vec<Pending>) {
        let mut reports = Vec::new();
        let mut waiting = Vec::new();
        for pending in queued {
            match pending {
                Pending::Append {
                    reports: more,
                    reply,
                } => {
                    waiting.push((reply, more.len()));
                    reports.extend(more);
                }
                Pending::NewRun { name, at, reply } => {
                    self.append(
                        writer,
                        std::mem::take(&mut reports),
                        std::mem::take(&mut waiting),
                    );
                    let mut runs = self.runs.write().expect("runs lock");
                    let started = match at {
                        None => start_run(writer, &mut runs, name),
                        Some(at) => start_stream_run(writer, &mut runs, name, at),
                    };
                    drop(runs);
                    if let Ok(run) = &started {
                        self.analyses.start(run.id);
                        self.taken(run.first_seq - 1);
                    }
                    let _ = reply.send(started);
                }
                Pending::Skip { seq, reply } => {
                    self.append(
                        writer,
                        std::mem::take(&mut reports),
                        std::mem::take(&mut waiting),
                    );
                    let skipped = writer.skip(seq);
                    if skipped.is_ok() {
                        self.taken(seq);
                    }
                    let _ = reply.send(skipped);
                }
            }
        }
        self.append(writer, reports, waiting);
    }

    /// Stores `reports` in one transaction and answers each of `waiting` (a reply
    /// and how many of the reports are its own).
    fn append(
        &self,
        writer: &mut dyn Writer,
        mut reports: Vec<Report>,
        waiting: Vec<(ReceiptsReply, usize)>,
    ) {
        if waiting.is_empty() {
            return;
        }
        let current = self.runs.read().expect("runs lock").current().clone();
        let given = reports.iter().map(|report| report.seq).max().unwrap_or(0);
        for report in &mut reports {
            report.run = current.id;
        }
        let started = std::time::Instant::now();
        let outcome = writer.insert(reports);
        let elapsed = started.elapsed();
        let (inserted, evicted) = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, "commit failed; answering UNAVAILABLE");
                for (reply, _) in waiting {
                    let _ = reply.send(Err(error.clone()));
                }
                return;
            }
        };
        let stored: Vec<&Report> = inserted
            .iter()
            .filter_map(|outcome| match outcome {
                Inserted::New(report) => Some(report.as_ref()),
                Inserted::Duplicate { .. } => None,
            })
            .collect();
        // Counts, analysis and metrics first, so that whoever is answered below
        // and reads at once sees its reports everywhere.
        if !stored.is_empty() || !evicted.is_empty() {
            let mut runs = self.runs.write().expect("runs lock");
            for run in &mut runs.all {
                if run.id == current.id {
                    run.reports += stored.len() as u64;
                }
                let gone = evicted.iter().filter(|id| **id == run.id).count() as u64;
                run.reports -= gone;
                run.evicted += gone;
            }
        }
        if !stored.is_empty() {
            let (run, analysis) = self.analyses.current();
            if run == current.id {
                let mut analysis = analysis.write().expect("analysis lock");
                for report in &stored {
                    analysis.add(report);
                }
            }
        }
        self.observer
            .committed(&stored, (inserted.len() - stored.len()) as u64, elapsed);
        let newest = stored.iter().map(|report| report.seq).max().unwrap_or(0);
        self.taken(newest.max(given));
        drop(stored);
        let mut outcomes = inserted.into_iter();
        {
            let runs = self.runs.read().expect("runs lock");
            let run_name = |id: u64| {
                runs.all
                    .iter()
                    .find(|run| run.id == id)
                    .map_or_else(|| current.name.clone(), |run| run.name.clone())
            };
            for (reply, count) in waiting {
                let receipts = outcomes
                    .by_ref()
                    .take(count)
                    .map(|outcome| match outcome {
                        Inserted::New(report) => {
                            let receipt = Receipt {
                                seq: report.seq,
                                duplicate: false,
                                run: current.name.clone(),
                            };
                            self.last_seq.fetch_max(report.seq, Ordering::AcqRel);
                            let _ = self.feed.send(report);
                            receipt
                        }
                        Inserted::Duplicate { seq, run } => Receipt {
                            seq,
                            duplicate: true,
                            run: run_name(run),
                        },
                    })
                    .collect();
                let _ = reply.send(Ok(receipts));
            }
        }
    }
}
