//! [`Query`]: which reports of a run a read selects, and in what order.

use crate::pb::Event;
use crate::report::Report;

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
