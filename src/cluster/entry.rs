//! What perfstats writes into the shared stream, and how a message is read back:
//! reports on `<STREAM>.reports` (a batch, `{"reports":[…]}`, or one report as
//! releases before batches wrote them), a run's start or new labels on
//! `<STREAM>.runs`, all JSON (readable with `nats stream view`).

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

/// A batch of reports as a stream message: each takes the next seq, in order.
#[derive(Debug, Deserialize)]
struct BatchMessage<'a> {
    #[serde(borrow)]
    reports: Vec<ReportMessage<'a>>,
}

/// How a batch message begins (and a single report's message never does).
const BATCH_PREFIX: &[u8] = br#"{"reports":["#;
/// How a batch message ends.
const BATCH_SUFFIX: &[u8] = b"]}";
/// The bytes a batch message holds besides its reports' encodings and commas.
pub const BATCH_OVERHEAD: usize = BATCH_PREFIX.len() + BATCH_SUFFIX.len();

/// Appends `report`'s encoding (one element of a batch) to `out`.
pub fn encode_report(report: &Report, out: &mut Vec<u8>) {
    serde_json::to_writer(
        out,
        &ReportMessage {
            time_unix_nano: report.time_unix_nano,
            received_unix_nano: report.received_unix_nano,
            sender: Cow::Borrowed(&report.sender),
            event: Cow::Borrowed(report.event.as_str_name()),
            message: Cow::Borrowed(&report.message),
            report_id: Cow::Borrowed(&report.report_id),
        },
    )
    .expect("a report always serialises");
}

/// The body of a batch message from encoded reports ([`encode_report`]), each a
/// comma-separated list of one or more reports.
pub fn encode_batch<'a>(parts: impl IntoIterator<Item = &'a [u8]>, size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + BATCH_OVERHEAD);
    body.extend_from_slice(BATCH_PREFIX);
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(part);
    }
    body.extend_from_slice(BATCH_SUFFIX);
    body
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
    /// Reports, in order (seq and run unset: the applier gives them).
    Reports(Vec<Report>),
    /// A run started here.
    Run(RunMessage),
    /// A run's labels replaced here.
    Labels(LabelsMessage),
    /// Something else (another subject, a body that does not parse): its seqs
    /// hold nothing.
    Other(String),
    /// A batch with a report this release cannot read (an event of a later
    /// release, say): it takes a seq a report all the same, so that servers that
    /// read it and servers that cannot agree on the seqs after it; here they are
    /// holes.
    Unreadable {
        /// Why.
        why: String,
        /// Its reports.
        seqs: u64,
    },
}

impl Entry {
    /// How many seqs the message takes: one a report, else one.
    pub fn seqs(&self) -> u64 {
        match self {
            Entry::Reports(reports) => reports.len() as u64,
            Entry::Unreadable { seqs, .. } => *seqs,
            _ => 1,
        }
    }
}

impl ReportMessage<'_> {
    fn into_report(self) -> Result<Report, String> {
        let event = Event::from_str_name(&self.event)
            .ok_or_else(|| format!("unknown event {:?}", self.event))?;
        Ok(Report {
            seq: 0,
            run: 0,
            time_unix_nano: self.time_unix_nano,
            received_unix_nano: self.received_unix_nano,
            sender: self.sender.into_owned(),
            event,
            message: self.message.into_owned(),
            report_id: self.report_id.into_owned(),
        })
    }
}

/// How many reports a batch message holds, when its JSON says so (one or more).
fn batch_len(body: &[u8]) -> Option<u64> {
    if !body.starts_with(BATCH_PREFIX) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let len = value["reports"].as_array()?.len() as u64;
    (len > 0).then_some(len)
}

/// Reads a message on `subject`. A batch with one unreadable report is read as
/// nothing ([`Entry::Other`]), alike on every server.
pub fn decode(subjects: &Subjects, subject: &str, body: &[u8]) -> Entry {
    if subject == subjects.reports.as_str() {
        let reports = if body.starts_with(BATCH_PREFIX) {
            serde_json::from_slice::<BatchMessage>(body)
                .map_err(|error| format!("not a batch of reports: {error}"))
                .and_then(|batch| {
                    batch
                        .reports
                        .into_iter()
                        .map(ReportMessage::into_report)
                        .collect::<Result<Vec<_>, _>>()
                })
        } else {
            serde_json::from_slice::<ReportMessage>(body)
                .map_err(|error| format!("not a report: {error}"))
                .and_then(|message| Ok(vec![message.into_report()?]))
        };
        match reports {
            Ok(reports) if !reports.is_empty() => Entry::Reports(reports),
            Ok(_) => Entry::Other("an empty batch".into()),
            Err(why) => match batch_len(body) {
                Some(seqs) => Entry::Unreadable { why, seqs },
                None => Entry::Other(why),
            },
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

    fn report(id: &str, message: &str) -> Report {
        Report {
            seq: 0,
            run: 0,
            time_unix_nano: 17,
            received_unix_nano: 18,
            sender: "1f \"quoted\"".into(),
            event: Event::NewBlockReceived,
            message: message.into(),
            report_id: id.into(),
        }
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let subjects = Subjects::of("PERFSTATS");
        let reports = [report("id-1", "block 7 ✓"), report("id-2", "]}")];
        let (mut first, mut second) = (Vec::new(), Vec::new());
        encode_report(&reports[0], &mut first);
        encode_report(&reports[1], &mut second);
        let body = encode_batch([first.as_slice(), second.as_slice()], 0);
        match decode(&subjects, "PERFSTATS.reports", &body) {
            Entry::Reports(read) => assert_eq!(read, reports),
            other => panic!("expected reports, got {other:?}"),
        }
    }

    #[test]
    fn a_single_report_of_a_release_before_batches_reads_as_one() {
        let subjects = Subjects::of("PERFSTATS");
        let mut body = Vec::new();
        encode_report(&report("id-1", "m"), &mut body);
        match decode(&subjects, "PERFSTATS.reports", &body) {
            Entry::Reports(read) => assert_eq!(read, [report("id-1", "m")]),
            other => panic!("expected one report, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_with_an_unknown_event_is_read_as_nothing() {
        let subjects = Subjects::of("S");
        let mut good = Vec::new();
        encode_report(&report("a", "m"), &mut good);
        let bad = String::from_utf8(good.clone())
            .unwrap()
            .replace("NEW_BLOCK_RECEIVED", "NO_SUCH_EVENT");
        let body = encode_batch([good.as_slice(), bad.as_bytes()], 0);
        assert!(
            matches!(decode(&subjects, "S.reports", &body), Entry::Unreadable { why, seqs: 2 } if why.contains("NO_SUCH_EVENT"))
        );
        assert!(matches!(
            decode(&subjects, "S.reports", br#"{"reports":[]}"#),
            Entry::Other(_)
        ));
    }

    #[test]
    fn runs_and_strangers_are_told_apart() {
        let subjects = Subjects::of("S");
        let run = encode_run(Some("b".into()), Labels::new(), 5);
        assert!(matches!(
            decode(&subjects, "S.runs", &run),
            Entry::Run(RunMessage { name: Some(name), started_unix_nano: 5, .. }) if name == "b"
        ));
        // A run message of a release before labels reads with none.
        assert!(matches!(
            decode(&subjects, "S.runs", br#"{"name":null,"started_unix_nano":7}"#),
            Entry::Run(RunMessage { name: None, started_unix_nano: 7, labels }) if labels.is_empty()
        ));
        let labels: Labels = [("netem_ms".to_string(), "40".to_string())].into();
        let message = encode_labels(9, labels.clone());
        assert!(matches!(
            decode(&subjects, "S.runs", &message),
            Entry::Labels(LabelsMessage { labels_of_run_from_seq: 9, labels: read }) if read == labels
        ));
        assert!(matches!(
            decode(&subjects, "S.reports", b"{}"),
            Entry::Other(_)
        ));
        assert!(matches!(
            decode(&subjects, "S.other", &run),
            Entry::Other(_)
        ));
    }
}
