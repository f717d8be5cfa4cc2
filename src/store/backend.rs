//! What a backend (SQLite, memory) offers the store: a [`Writer`] used only by
//! whoever commits, and a [`Reader`] any thread may use while the writer writes.

use super::{Query, RunInfo};
use crate::error::Error;
use crate::labels::Labels;
use crate::report::Report;
use std::sync::Arc;

/// The writer-side operations a backend offers; called only by whoever holds the
/// writer lock (the committer thread, or the committing caller).
pub(super) trait Writer: Send {
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
        labels: &Labels,
    ) -> Result<u64, Error>;
    /// Replaces run `id`'s labels.
    fn set_labels(&mut self, id: u64, labels: &Labels) -> Result<(), Error>;
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
    /// How far the stream this store holds is applied, as last recorded: every
    /// message through a stream seq, and the highest store seq they took. `None`
    /// in a store that a release before batched messages claimed (there the two
    /// were one) or that holds no stream.
    fn stream_position(&mut self) -> Result<Option<StreamPosition>, Error>;
    /// Records `position` (it may lag what is applied, never lead it).
    fn set_stream_position(&mut self, position: StreamPosition) -> Result<(), Error>;
}

/// How far a stream is applied to a store: every message through stream seq
/// `message`, which took store seqs through `seq` (a batch of reports takes one a
/// report; a run's start, labels or anything else one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamPosition {
    /// The stream seq of the last message applied.
    pub message: u64,
    /// The last store seq those messages took.
    pub seq: u64,
}

/// What became of one report handed to [`Writer::insert`].
pub(super) enum Inserted {
    New(Arc<Report>),
    Duplicate { seq: u64, run: u64 },
}

/// The read side of a backend: safe to call from any thread while the writer writes.
pub(super) trait Reader: Send + Sync {
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
