//! What perfstats writes into the shared stream, and how a message is read back:
//! a report on `<STREAM>.reports`, a run's start or new labels on `<STREAM>.runs`,
//! all JSON (readable with `nats stream view`).

use crate::labels::Labels;
use crate::pb::Event;
use crate::report::Report;
use async_nats::Subject;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The subjects of a stream's two kinds of message (cheap to clone, as every
/// publish does).
#[derive(Debug, Clone)]
pub struct Subjects {
    /// Where reports go.
    pub reports: Subject,
    /// Where runs start.
    pub runs: Subject,
}

impl Subjects {
    /// The subjects of the stream named `stream`.
    pub fn of(stream: &str) -> Subjects {
        Subjects {
            reports: Subject::from(format!("{stream}.reports")),
            runs: Subject::from(format!("{stream}.runs")),
        }
    }

    /// Every subject the stream takes.
    pub fn all(&self) -> Vec<String> {
        vec![self.reports.to_string(), self.runs.to_string()]
    }
}

/// A report as a stream message: everything but its seq and run, which its place
/// in the stream gives.
#[derive(Debug, Serialize, Deserialize)]
struct ReportMessage<'a> {
    time_unix_nano: i64,
    received_unix_nano: i64,
    sender: Cow<'a, str>,
    /// The proto name (`NEW_BLOCK_RECEIVED`).
    event: Cow<'a, str>,
    message: Cow<'a, str>,
    report_id: Cow<'a, str>,
}

/// A run's start as a stream message.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RunMessage {
    /// Its name; none for the default `run-<id>`.
    pub name: Option<String>,
    /// When it was started.
    pub started_unix_nano: i64,
    /// Its labels (absent in messages of releases before labels).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// A run's new labels as a stream message, replacing its old ones.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LabelsMessage {
    /// The run's first seq: the same on every server, where ids might not be.
    pub labels_of_run_from_seq: u64,
    /// Its labels.
    pub labels: Labels,
}

/// The body of `report`'s message.
pub fn encode_report(report: &Report) -> Vec<u8> {
    serde_json::to_vec(&ReportMessage {
        time_unix_nano: report.time_unix_nano,
        received_unix_nano: report.received_unix_nano,
        sender: Cow::Borrowed(&report.sender),
        event: Cow::Borrowed(report.event.as_str_name()),
        message: Cow::Borrowed(&report.message),
        report_id: Cow::Borrowed(&report.report_id),
    })
    .expect("a report always serialises")
}

/// The body of a run's message.
pub fn encode_run(name: Option<String>, labels: Labels, started_unix_nano: i64) -> Vec<u8> {
    serde_json::to_vec(&RunMessage {
        name,
        started_unix_nano,
        labels,
    })
    .expect("a run always serialises")
}

/// The body of a message giving the run whose reports start at `first_seq` new labels.
pub fn encode_labels(first_seq: u64, labels: Labels) -> Vec<u8> {
    serde_json::to_vec(&LabelsMessage {
        labels_of_run_from_seq: first_seq,
        labels,
    })
    .expect("labels always serialise")
}

/// One message of the stream, read.
#[derive(Debug)]
pub enum Entry {
    /// A report, with its seq (the message's) set.
    Report(Report),
    /// A run started here.
    Run(RunMessage),
    /// A run's labels replaced here.
    Labels(LabelsMessage),
    /// Something else (another subject, a body that does not parse): its seq
    /// holds nothing.
    Other(String),
}

/// Reads the message at stream sequence `seq` on `subject`.
pub fn decode(subjects: &Subjects, subject: &str, seq: u64, body: &[u8]) -> Entry {
    if subject == subjects.reports.as_str() {
        match serde_json::from_slice::<ReportMessage>(body) {
            Ok(message) => match Event::from_str_name(&message.event) {
                Some(event) => Entry::Report(Report {
                    seq,
                    run: 0,
                    time_unix_nano: message.time_unix_nano,
                    received_unix_nano: message.received_unix_nano,
                    sender: message.sender.into_owned(),
                    event,
                    message: message.message.into_owned(),
                    report_id: message.report_id.into_owned(),
                }),
                None => Entry::Other(format!("unknown event {:?}", message.event)),
            },
            Err(error) => Entry::Other(format!("not a report: {error}")),
        }
    } else if subject == subjects.runs.as_str() {
        if let Ok(labels) = serde_json::from_slice::<LabelsMessage>(body) {
            return Entry::Labels(labels);
        }
        match serde_json::from_slice::<RunMessage>(body) {
            Ok(run) => Entry::Run(run),
            Err(error) => Entry::Other(format!("not a run or labels: {error}")),
        }
    } else {
        Entry::Other(format!("unexpected subject {subject:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_written_at_its_seq() {
        let subjects = Subjects::of("PERFSTATS");
        let report = Report {
            seq: 0,
            run: 0,
            time_unix_nano: 17,
            received_unix_nano: 18,
            sender: "1f \"quoted\"".into(),
            event: Event::NewBlockReceived,
            message: "block 7 ✓".into(),
            report_id: "id-1".into(),
        };
        let body = encode_report(&report);
        match decode(&subjects, "PERFSTATS.reports", 42, &body) {
            Entry::Report(read) => assert_eq!(read, Report { seq: 42, ..report }),
            other => panic!("expected a report, got {other:?}"),
        }
    }

    #[test]
    fn runs_and_strangers_are_told_apart() {
        let subjects = Subjects::of("S");
        let run = encode_run(Some("b".into()), Labels::new(), 5);
        assert!(matches!(
            decode(&subjects, "S.runs", 1, &run),
            Entry::Run(RunMessage { name: Some(name), started_unix_nano: 5, .. }) if name == "b"
        ));
        // A run message of a release before labels reads with none.
        assert!(matches!(
            decode(&subjects, "S.runs", 1, br#"{"name":null,"started_unix_nano":7}"#),
            Entry::Run(RunMessage { name: None, started_unix_nano: 7, labels }) if labels.is_empty()
        ));
        let labels: Labels = [("netem_ms".to_string(), "40".to_string())].into();
        let message = encode_labels(9, labels.clone());
        assert!(matches!(
            decode(&subjects, "S.runs", 10, &message),
            Entry::Labels(LabelsMessage { labels_of_run_from_seq: 9, labels: read }) if read == labels
        ));
        assert!(matches!(
            decode(&subjects, "S.reports", 2, b"{}"),
            Entry::Other(_)
        ));
        assert!(matches!(
            decode(&subjects, "S.other", 3, &run),
            Entry::Other(_)
        ));
    }
}
