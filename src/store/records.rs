//! What the store answers besides reports: a run, a receipt, and the query that
//! selects reports.

use crate::pb::Event;
use crate::report::Report;
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

/// Which reports to read: those of one run between two seqs, oldest or newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The run's id.
    pub run: u64,
    /// Only this sender's reports.
    pub sender: Option<String>,
    /// Only this event.
    pub event: Option<Event>,
    /// Only reports whose message or sender contains this text.
    pub text: Option<String>,
    /// Only reports with a larger seq.
    pub after: u64,
    /// Only reports with a smaller seq.
    pub before: Option<u64>,
    /// Only reports whose time is in this range (`from..to`, ns).
    pub time: Option<(i64, i64)>,
    /// Newest first (else oldest first).
    pub descending: bool,
    /// At most this many.
    pub limit: usize,
}

impl Query {
    /// Whether `report` is one this query selects (ignoring seqs, order and `limit`).
    pub fn matches(&self, report: &Report) -> bool {
        report.run == self.run
            && self.sender.as_ref().is_none_or(|s| *s == report.sender)
            && self.event.is_none_or(|e| e == report.event)
            && self.text.as_ref().is_none_or(|t| {
                report.message.contains(t.as_str()) || report.sender.contains(t.as_str())
            })
            && self
                .time
                .is_none_or(|(from, to)| (from..to).contains(&report.time_unix_nano))
    }
}
