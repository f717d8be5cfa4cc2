//! Runs: one experiment's reports each, as contiguous seq ranges. What a run is
//! ([`RunInfo`]), the list the committer keeps and readers share, and the rules for
//! starting one (names, ids, where its seqs begin).

use super::backend::Writer;
use crate::error::Error;
use crate::labels::Labels;
use crate::report::now_unix_nano;
use serde::Serialize;
use std::sync::Arc;

/// A run: one experiment's worth of reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// Its id, from 1.
    pub id: u64,
    /// Its name, unique in the store.
    pub name: Arc<str>,
    /// When it was started.
    pub started_unix_nano: i64,
    /// How many reports it holds.
    pub reports: u64,
    /// How many of its reports the memory bound evicted (always 0 with SQLite).
    pub evicted: u64,
    /// The seq its first report has or will have: a run's reports are the
    /// contiguous seqs from here to the next run's `first_seq`.
    #[serde(skip)]
    pub first_seq: u64,
    /// Whether new reports go to it.
    pub current: bool,
    /// What was changed for it (`netem_ms=40`), by key.
    pub labels: Labels,
}

/// Runs as the writer last committed them; read by anyone without asking the writer.
#[derive(Debug, Default)]
pub(super) struct Runs {
    pub(super) all: Vec<RunInfo>,
}

impl Runs {
    /// The run new reports go to: always the newest.
    pub(super) fn current(&self) -> &RunInfo {
        self.all.last().expect("the store always has a run")
    }

    /// Where run `run`'s reports are: runs are contiguous seq ranges.
    pub(super) fn seqs(&self, run: u64) -> std::ops::Range<u64> {
        let mut from_here = self.all.iter().skip_while(|info| info.id != run);
        match from_here.next() {
            Some(info) => info.first_seq..from_here.next().map_or(u64::MAX, |next| next.first_seq),
            None => 0..0,
        }
    }

    /// Whether a run has this name.
    fn is_taken(&self, name: &str) -> bool {
        self.all.iter().any(|run| &*run.name == name)
    }

    /// Checks that `name` may name a new run: the rules, and not taken.
    pub(super) fn check_new_name(&self, name: &str) -> Result<(), Error> {
        check_run_name(name)?;
        if self.is_taken(name) {
            return Err(Error::Conflict(format!(
                "name: a run named {name:?} exists already"
            )));
        }
        Ok(())
    }
}

/// Starts a run named `name` (or `run-<id>`) whose reports are the seqs after the
/// last one taken.
pub(super) fn start_run(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
    labels: Labels,
) -> Result<RunInfo, Error> {
    crate::labels::check(&labels)?;
    let first_seq = writer.last_seq()? + 1;
    start_run_at(writer, runs, name, labels, now_unix_nano(), first_seq)
}

/// Starts the run of a stream's message at `seq`; see [`super::Applier::new_run_at`].
pub(super) fn start_stream_run(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
    labels: Labels,
    (seq, started_unix_nano): (u64, i64),
) -> Result<RunInfo, Error> {
    let usable = name.filter(|name| runs.check_new_name(name.trim()).is_ok());
    // Labels that break the rules are dropped, as a bad name is, so that every
    // server applying the stream agrees.
    let labels = match crate::labels::check(&labels) {
        Ok(()) => labels,
        Err(_) => Labels::new(),
    };
    start_run_at(writer, runs, usable, labels, started_unix_nano, seq + 1)
}

/// Replaces the labels of the run `run` finds (by id, or by first seq for a
/// stream's message, which every server agrees on).
pub(super) fn set_labels(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    run: RunRef,
    labels: Labels,
) -> Result<RunInfo, Error> {
    crate::labels::check(&labels)?;
    let found = runs
        .all
        .iter_mut()
        .find(|info| match run {
            RunRef::Id(id) => info.id == id,
            RunRef::FirstSeq(seq) => info.first_seq == seq,
        })
        .ok_or_else(|| Error::NotFound(format!("run: no run {run:?}")))?;
    writer.set_labels(found.id, &labels)?;
    found.labels = labels;
    Ok(found.clone())
}

/// How a request names a run: by id here, by first seq in a stream's message.
#[derive(Debug, Clone, Copy)]
pub enum RunRef {
    /// This store's id.
    Id(u64),
    /// The seq its reports start at (a stream's, the same on every server).
    FirstSeq(u64),
}

fn start_run_at(
    writer: &mut dyn Writer,
    runs: &mut Runs,
    name: Option<String>,
    labels: Labels,
    started_unix_nano: i64,
    first_seq: u64,
) -> Result<RunInfo, Error> {
    let next_id = runs.all.last().map_or(1, |run| run.id + 1);
    let name = match name.map(|name| name.trim().to_string()) {
        Some(name) => {
            runs.check_new_name(&name)?;
            name
        }
        None => (0..)
            .map(|extra| match extra {
                0 => format!("run-{next_id}"),
                _ => format!("run-{next_id}-{extra}"),
            })
            .find(|name| !runs.is_taken(name))
            .expect("some suffix is free"),
    };
    let id = writer.create_run(&name, started_unix_nano, first_seq, &labels)?;
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
        labels,
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
