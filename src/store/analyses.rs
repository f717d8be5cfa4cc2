//! Each run's [`LiveAnalysis`], held by the store: the current run's is updated at
//! every commit; an older run's is built once from its reports when first asked
//! for, and the few most recently asked for are kept. Builds run one at a time, in
//! a task of their own: a caller that goes away does not start a second build of
//! the same run, and a build whose run was pushed out of the cache meanwhile is
//! skipped. [`build_analysis`] builds one from the store's reports.

use super::backend::Reader;
use crate::analysis::live::LiveAnalysis;
use crate::error::Error;
use crate::report::Report;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{OnceCell, Semaphore};

/// Older runs whose analysis is kept after being built (enough to compare two).
const OLDER_KEPT: usize = 2;
/// Reports read per step while an analysis is built from the store.
const SCAN_PAGE: usize = 50_000;

/// One run's analysis, shared by the committer and readers.
pub type SharedAnalysis = Arc<RwLock<LiveAnalysis>>;

/// An older run's analysis, built by the first reader that asks.
type Building = Arc<OnceCell<SharedAnalysis>>;

/// The analyses the store holds.
pub(super) struct Analyses {
    current: Mutex<(u64, SharedAnalysis)>,
    older: Arc<Mutex<VecDeque<(u64, Building)>>>,
    /// One build at a time: each is O(run) of CPU and memory.
    builds: Arc<Semaphore>,
}

impl Analyses {
    /// Starts with `analysis` as run `run`'s, the current one.
    pub(super) fn new(run: u64, analysis: LiveAnalysis) -> Analyses {
        Analyses {
            current: Mutex::new((run, Arc::new(RwLock::new(analysis)))),
            older: Arc::new(Mutex::new(VecDeque::new())),
            builds: Arc::new(Semaphore::new(1)),
        }
    }

    /// The current run's analysis (the committer updates it).
    pub(super) fn current(&self) -> (u64, SharedAnalysis) {
        let current = self.current.lock().expect("analyses lock");
        (current.0, current.1.clone())
    }

    /// Makes a new, empty run current; the one before is kept as the newest older.
    pub(super) fn start(&self, run: u64) {
        let fresh = Arc::new(RwLock::new(LiveAnalysis::default()));
        let (old_run, old) = std::mem::replace(
            &mut *self.current.lock().expect("analyses lock"),
            (run, fresh),
        );
        self.keep(old_run, Arc::new(OnceCell::new_with(Some(old))));
    }

    fn keep(&self, run: u64, building: Building) {
        let mut older = self.older.lock().expect("analyses lock");
        older.retain(|(kept, _)| *kept != run);
        older.push_front((run, building));
        older.truncate(OLDER_KEPT);
    }

    /// Run `run`'s analysis if it is current or kept and built, without building it.
    pub(super) fn built(&self, run: u64) -> Option<SharedAnalysis> {
        let current = self.current();
        if current.0 == run {
            return Some(current.1);
        }
        let older = self.older.lock().expect("analyses lock");
        older
            .iter()
            .find(|(kept, _)| *kept == run)
            .and_then(|(_, building)| building.get().cloned())
    }

    /// Runs `build` (on the blocking pool) in the turn of analysis builds, without
    /// keeping what it builds: for figures of a run nobody reads whole. The build
    /// holds its turn until it ends, even if the caller goes away meanwhile.
    pub(super) async fn build_once<T: Send + 'static>(
        &self,
        build: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let turn = self
            .builds
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            build()
        })
        .await
        .map_err(|error| Error::Unavailable(format!("analysis: building failed: {error}")))?
    }

    /// Run `run`'s analysis, from `build` (run on the blocking pool) the first time.
    pub(super) async fn get(
        &self,
        run: u64,
        build: impl FnOnce() -> Result<LiveAnalysis, Error> + Send + 'static,
    ) -> Result<SharedAnalysis, Error> {
        {
            let current = self.current.lock().expect("analyses lock");
            if current.0 == run {
                return Ok(current.1.clone());
            }
        }
        let building = {
            let older = self.older.lock().expect("analyses lock");
            older
                .iter()
                .find(|(kept, _)| *kept == run)
                .map(|(_, building)| building.clone())
        };
        let building = building.unwrap_or_else(|| {
            let building: Building = Arc::new(OnceCell::new());
            self.keep(run, building.clone());
            building
        });
        let (older, builds) = (self.older.clone(), self.builds.clone());
        let task = tokio::spawn(async move {
            building
                .get_or_try_init(|| async {
                    let _turn = builds.acquire().await.expect("never closed");
                    let wanted = older
                        .lock()
                        .expect("analyses lock")
                        .iter()
                        .any(|(kept, cell)| *kept == run && Arc::ptr_eq(cell, &building));
                    if !wanted {
                        return Err(Error::Unavailable(format!(
                            "analysis: run {run} was pushed out of the cache while waiting; ask again"
                        )));
                    }
                    tokio::task::spawn_blocking(build)
                        .await
                        .map_err(|error| {
                            Error::Unavailable(format!("analysis: building failed: {error}"))
                        })?
                        .map(|analysis| Arc::new(RwLock::new(analysis)))
                })
                .await
                .cloned()
        });
        task.await
            .map_err(|error| Error::Unavailable(format!("analysis: building failed: {error}")))?
    }
}

/// The analysis of the reports in `seqs`, read page by page on one thread while
/// this one folds them in (on 2 cores, about twice as fast as one after the other).
pub(super) fn build_analysis(
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
