//! Group commit: every append queues its reports; a committer takes all that is
//! queued, stores it in one transaction, answers each caller, and repeats while
//! more is queued. So an acknowledged report is durable and concurrent callers
//! share commits. Who commits depends on the backend, as measured on 2 cores:
//! - SQLite: a dedicated committer thread. A commit writes WAL frames and takes
//!   tens of microseconds: done on a tokio worker it would stall that worker's
//!   network I/O, which cost more than the wake-up. The thread is woken once the
//!   tasks ready when a request was queued have run (a spawned task that yields
//!   once), so the requests that arrived together share one wake-up and one
//!   commit. Woken at every request instead, on a busy core it took 3–4 reports
//!   a commit and switched threads 0.6 times a report; now 20–24 and 0.12
//!   (issue 23, unary calls, 64 in flight, server pinned to one core).
//! - memory: the caller itself, when no other caller is committing (leader and
//!   followers). An in-memory append takes well under a microsecond, far less than
//!   waking another thread would.
//!
//! Every commit also updates the current run's analysis and tells the
//! [`CommitObserver`](super::CommitObserver) what it stored, before any caller is
//! answered: a client that reads after its ACK sees its report counted everywhere.
//!
//! No transaction holds more than [`MAX_COMMIT_REPORTS`] reports, and fewer when
//! reports cost more (an authority's send far older than the rest moves every
//! later round), so that no commit holds the writer (and every caller behind it)
//! for much more than [`COMMIT_TARGET`] whatever one call sends or in what order:
//! - an append of at most [`MAX_COMMIT_REPORTS`] is stored in one transaction,
//!   all or none; appends are gathered into one transaction up to a size set by
//!   the cost a report of the commit before;
//! - a longer append is stored a piece at a time: [`FIRST_PIECE`] reports first,
//!   then each piece at most twice the one before and sized by its own cost a
//!   report; the rest of it is queued again behind the requests that came
//!   meanwhile, and it is answered once its last piece is stored. A run start,
//!   labels or a hole met while it is unfinished waits behind it, so all of one
//!   append goes to one run.

use super::backend::{Inserted, Writer};
use super::runs::{RunRef, set_labels, start_run, start_stream_run};
use super::{Receipt, RunInfo, Shared, Store, closed};
use crate::error::Error;
use crate::labels::Labels;
use crate::report::Report;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

/// Rounds one caller commits for others before it hands the work to a fresh task,
/// so no caller waits long for its own answer under constant load.
const LEADER_ROUNDS: usize = 16;
/// Reports one transaction stores at most (about 2 ms of SQLite inserts and
/// analysis on the machine of the README's figures).
pub const MAX_COMMIT_REPORTS: usize = 1_024;
/// Reports of the first piece of an append longer than [`MAX_COMMIT_REPORTS`].
const FIRST_PIECE: usize = 64;
/// Reports one transaction stores at least, however costly they were.
const MIN_COMMIT_REPORTS: usize = 8;
/// How long one commit (inserts and analysis) should take at most.
pub const COMMIT_TARGET: std::time::Duration = std::time::Duration::from_millis(4);
/// How often an idle committer thread checks whether its store is gone.
const COMMITTER_IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the receipts of one append go.
type ReceiptsReply = oneshot::Sender<Result<Vec<Receipt>, Error>>;

/// An append whose reports, or a piece of them, are in the batch being stored.
struct Caller {
    reply: ReceiptsReply,
    /// How many of the batch's reports are its own (this piece).
    count: usize,
    /// The receipts of its pieces stored before.
    earlier: Vec<Receipt>,
    /// Its reports after this piece.
    later: Vec<Report>,
}

/// How many reports fit in [`COMMIT_TARGET`] at the cost a report of a commit of
/// `count` reports that took `took` (within the bounds of a transaction's size).
fn fit_in_target(count: usize, took: std::time::Duration) -> usize {
    let fit = count as f64 * COMMIT_TARGET.as_secs_f64() / took.as_secs_f64().max(1e-9);
    (fit as usize).clamp(MIN_COMMIT_REPORTS, MAX_COMMIT_REPORTS)
}

/// A request waiting for the committer.
pub(super) enum Pending {
    Append {
        reports: Vec<Report>,
        reply: ReceiptsReply,
        /// The receipts of the pieces of this append already stored.
        earlier: Vec<Receipt>,
        /// The size of its next piece, once it is being stored in pieces.
        piece: usize,
    },
    NewRun {
        name: Option<String>,
        labels: Labels,
        /// For a run taken from a stream: its message's seq and start time.
        at: Option<(u64, i64)>,
        reply: oneshot::Sender<Result<RunInfo, Error>>,
    },
    Label {
        run: RunRef,
        labels: Labels,
        /// For a stream's message: its seq, which holds nothing else.
        at: Option<u64>,
        reply: oneshot::Sender<Result<RunInfo, Error>>,
    },
    Skip {
        seq: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

impl Store {
    /// Queues the request `pending` makes of a reply channel, sees that it gets
    /// committed, and waits for the answer.
    pub(super) async fn request<T>(
        &self,
        pending: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Pending,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(pending(reply))?;
        answer.await.map_err(|_| closed())?
    }

    /// Queues `pending` and sees that it gets committed.
    fn enqueue(&self, pending: Pending) -> Result<(), Error> {
        self.shared
            .queue
            .lock()
            .expect("queue lock")
            .as_mut()
            .ok_or_else(closed)?
            .push(pending);
        self.ensure_committing();
        Ok(())
    }

    /// Commits what is queued in this task, or wakes the committer thread (see the
    /// module doc).
    fn ensure_committing(&self) {
        if self.shared.committer.get().is_some() {
            return self.wake_committer();
        }
        for _ in 0..LEADER_ROUNDS {
            if !self.shared.commit_queued() {
                return;
            }
        }
        // Still busy after many rounds: let a fresh task carry on.
        let store = self.clone();
        tokio::spawn(async move { store.ensure_committing() });
    }

    /// Wakes the committer thread once the tasks that are ready now have run, so
    /// that the requests that arrived together are committed together: one
    /// wake-up, and one thread switch each way, a batch rather than a request.
    /// Outside a tokio runtime it wakes it at once.
    fn wake_committer(&self) {
        if self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            return; // the wake-up on its way will find this request queued
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let wake = WakeOnDrop(self.shared.clone());
                runtime.spawn(async move {
                    tokio::task::yield_now().await;
                    drop(wake);
                });
            }
            Err(_) => self.shared.wake_now(),
        }
    }
}

/// Wakes the committer thread when dropped: after its task's yield, or when the
/// task is dropped unrun (its runtime shutting down), so that a wake-up is never
/// lost and `wake_pending` never stays set.
struct WakeOnDrop(std::sync::Arc<Shared>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.wake_now();
    }
}

/// The committer thread: commits whatever is queued, then sleeps until woken.
/// Ends when the store is closed or every handle to it is gone.
pub(super) fn commit_loop(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        while shared.commit_queued() {}
        if shared.queue.lock().expect("queue lock").is_none() {
            return;
        }
        drop(shared);
        std::thread::park_timeout(COMMITTER_IDLE_CHECK);
    }
}

impl Shared {
    /// Wakes the committer thread (if there is one) now.
    pub(super) fn wake_now(&self) {
        self.wake_pending.swap(false, Ordering::AcqRel);
        if let Some(committer) = self.committer.get() {
            committer.unpark();
        }
    }

    /// Notes that every seq up to `seq` is applied (a report, a run's start or a
    /// hole), waking whoever waits for it.
    fn mark_applied(&self, seq: u64) {
        self.applied.send_if_modified(|applied| {
            let advanced = seq > *applied;
            *applied = (*applied).max(seq);
            advanced
        });
    }

    /// Commits what is queued unless someone else holds the writer; true when more
    /// was queued meanwhile (the caller should call again). Whoever holds the
    /// writer checks the queue again after letting go, so nothing is left behind.
    pub(super) fn commit_queued(&self) -> bool {
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

    /// Sizes the next transaction from this one (`count` reports in `took`): as
    /// many as fit in [`COMMIT_TARGET`] at its cost a report, shrinking only when it
    /// took longer (a small commit's fixed cost says nothing of its reports').
    fn size_next_piece(&self, count: usize, took: std::time::Duration) {
        let fit = fit_in_target(count, took);
        let piece = self.piece.load(Ordering::Relaxed);
        let next = if took > COMMIT_TARGET {
            fit
        } else {
            fit.max(piece)
        };
        self.piece.store(next, Ordering::Relaxed);
    }

    /// Handles `queued` in order (see the module doc): the rest of a long append
    /// goes back on the queue, behind what came meanwhile; while the store closes,
    /// it is stored here and now.
    pub(super) fn commit(&self, writer: &mut dyn Writer, queued: Vec<Pending>) {
        let mut rest = self.commit_in_order(writer, queued);
        while !rest.is_empty() {
            if let Some(queue) = self.queue.lock().expect("queue lock").as_mut() {
                queue.extend(rest);
                return;
            }
            rest = self.commit_in_order(writer, rest);
        }
    }

    /// Handles `queued` in order: runs of appends are stored in transactions of a
    /// bounded size, then their callers are answered. Returns the rest of the
    /// appends stored in pieces, and whatever must wait behind them.
    fn commit_in_order(&self, writer: &mut dyn Writer, queued: Vec<Pending>) -> Vec<Pending> {
        let mut reports = Vec::new();
        let mut waiting = Vec::new();
        let mut rest = Vec::new();
        let mut queued = queued.into_iter();
        while let Some(pending) = queued.next() {
            if !matches!(pending, Pending::Append { .. }) {
                self.store_batch(
                    writer,
                    std::mem::take(&mut reports),
                    std::mem::take(&mut waiting),
                    &mut rest,
                );
                if !rest.is_empty() {
                    // An append stored in pieces is unfinished: this and what
                    // follows wait behind it, so all of it goes to one run.
                    rest.push(pending);
                    rest.extend(queued);
                    break;
                }
            }
            match pending {
                Pending::Append {
                    reports: mut more,
                    reply,
                    earlier,
                    piece,
                } => {
                    let size = if !earlier.is_empty() {
                        piece
                    } else if more.len() > MAX_COMMIT_REPORTS {
                        FIRST_PIECE // slow start: costly reports found out early
                    } else {
                        more.len()
                    };
                    let later = more.split_off(more.len().min(size));
                    if !reports.is_empty()
                        && reports.len() + more.len() > self.piece.load(Ordering::Relaxed)
                    {
                        self.store_batch(
                            writer,
                            std::mem::take(&mut reports),
                            std::mem::take(&mut waiting),
                            &mut rest,
                        );
                    }
                    waiting.push(Caller {
                        reply,
                        count: more.len(),
                        earlier,
                        later,
                    });
                    reports.extend(more);
                }
                Pending::NewRun {
                    name,
                    labels,
                    at,
                    reply,
                } => {
                    let mut runs = self.runs.write().expect("runs lock");
                    let started = match at {
                        None => start_run(writer, &mut runs, name, labels),
                        Some(at) => start_stream_run(writer, &mut runs, name, labels, at),
                    };
                    drop(runs);
                    if let Ok(run) = &started {
                        self.analyses.start(run.id);
                        self.mark_applied(run.first_seq - 1);
                    }
                    let _ = reply.send(started);
                }
                Pending::Label {
                    run,
                    labels,
                    at,
                    reply,
                } => {
                    let mut runs = self.runs.write().expect("runs lock");
                    let labelled = set_labels(writer, &mut runs, run, labels);
                    drop(runs);
                    // A stream's message holds no report or run: its seq is a
                    // hole, whether or not its labels could be applied.
                    let skipped = at.map_or(Ok(()), |seq| {
                        writer.skip(seq).map(|()| self.mark_applied(seq))
                    });
                    let _ = reply.send(skipped.and(labelled));
                }
                Pending::Skip { seq, reply } => {
                    let skipped = writer.skip(seq);
                    if skipped.is_ok() {
                        self.mark_applied(seq);
                    }
                    let _ = reply.send(skipped);
                }
            }
        }
        self.store_batch(writer, reports, waiting, &mut rest);
        rest
    }

    /// Stores `reports` in one transaction and answers each of `waiting` whose
    /// append is then all stored; the rest of the others goes to `rest`.
    fn store_batch(
        &self,
        writer: &mut dyn Writer,
        mut reports: Vec<Report>,
        waiting: Vec<Caller>,
        rest: &mut Vec<Pending>,
    ) {
        if waiting.is_empty() {
            return;
        }
        let current = self.runs.read().expect("runs lock").current().clone();
        let given = reports.iter().map(|report| report.seq).max().unwrap_or(0);
        for report in &mut reports {
            report.run = current.id;
        }
        let count = reports.len();
        let started = std::time::Instant::now();
        let outcome = writer.insert(reports);
        let elapsed = started.elapsed();
        let (inserted, evicted) = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, "commit failed; answering UNAVAILABLE");
                for caller in waiting {
                    let _ = caller.reply.send(Err(error.clone()));
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
        let took = started.elapsed();
        self.size_next_piece(count, took);
        // A piece of a long append: its next one sized by this commit's cost a
        // report, at most twice this one.
        let fit = fit_in_target(count, took);
        self.observer
            .committed(&stored, (inserted.len() - stored.len()) as u64, elapsed);
        let newest = stored.iter().map(|report| report.seq).max().unwrap_or(0);
        self.mark_applied(newest.max(given));
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
            for caller in waiting {
                let mut receipts = caller.earlier;
                receipts.extend(outcomes.by_ref().take(caller.count).map(
                    |outcome| match outcome {
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
                    },
                ));
                if caller.later.is_empty() {
                    let _ = caller.reply.send(Ok(receipts));
                } else {
                    rest.push(Pending::Append {
                        reports: caller.later,
                        reply: caller.reply,
                        earlier: receipts,
                        piece: fit.min(2 * caller.count).max(MIN_COMMIT_REPORTS),
                    });
                }
            }
        }
    }
}
