//! The stored shapes: a report, a run, a receipt, and the query that selects reports.

use crate::pb::Event;
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// One stored report, as the HTTP API shows it (`event` as its proto name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Position in the store, from 1; assigned when stored.
    pub seq: u64,
    /// The id of the run it belongs to; assigned when stored.
    pub run: u64,
    /// When the event happened (the server's receive time when the node sent 0).
    pub time_unix_nano: i64,
    /// When the server received it.
    pub received_unix_nano: i64,
    /// The reporting node.
    pub sender: String,
    /// What happened.
    #[serde(serialize_with = "event_name")]
    pub event: Event,
    /// Free text about the event.
    pub message: String,
    /// The client's idempotency key (or one the server chose).
    pub report_id: String,
}

/// Lets code over reports take `&[Report]` and `&[Arc<Report>]` alike.
impl AsRef<Report> for Report {
    fn as_ref(&self) -> &Report {
        self
    }
}

fn event_name<S: Serializer>(event: &Event, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(event.as_str_name())
}

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

/// Which reports to read: those of one run after a seq, oldest first.
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
    /// At most this many.
    pub limit: usize,
}

impl Query {
    /// Whether `report` is one this query selects (ignoring `after` and `limit`).
    pub fn matches(&self, report: &Report) -> bool {
        report.run == self.run
            && self.sender.as_ref().is_none_or(|s| *s == report.sender)
            && self.event.is_none_or(|e| e == report.event)
            && self.text.as_ref().is_none_or(|t| {
                report.message.contains(t.as_str()) || report.sender.contains(t.as_str())
            })
    }
}

impl Report {
    /// Validates a wire report and turns it into one ready to store: a zero time is
    /// stamped with `received_unix_nano`, an empty `report_id` gets a fresh UUIDv7.
    pub fn accept(
        data: crate::pb::PerformanceData,
        received_unix_nano: i64,
    ) -> Result<Report, crate::event::InvalidReport> {
        let event = crate::event::validate(&data)?;
        Ok(Report {
            seq: 0,
            run: 0,
            time_unix_nano: if data.time_unix_nano == 0 {
                received_unix_nano
            } else {
                data.time_unix_nano
            },
            received_unix_nano,
            sender: data.sender,
            event,
            message: data.message,
            report_id: if data.report_id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                data.report_id
            },
        })
    }
}
