//! Prometheus metrics (`GET /metrics`, OpenMetrics text via `prometheus-client`):
//! what was stored, refused and how fast, plus the current run's propagation
//! latencies from its whole-run distributions. The store tells it what it commits
//! through [`CommitObserver`] (of the store it knows only that trait); it never
//! imports the server.

use crate::analysis::RoundKind;
use crate::analysis::distribution::Distribution;
use crate::report::Report;
use crate::store::CommitObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// The `sender` label of the senders past the cap: empty, which no sender can be
/// (Prometheus reads it as "no sender label").
pub const OTHER_SENDERS: &str = "";

/// Sender label values kept by default before further senders fold into the rest.
pub const DEFAULT_MAX_SENDER_LABELS: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SenderLabel {
    sender: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

fn latency_buckets() -> Histogram {
    // 50 µs to ~26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// The service's counters and histograms. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    stored_by_event: Family<EventLabel, Counter>,
    stored_by_sender: Family<SenderLabel, Counter>,
    sender_labels: Mutex<HashSet<String>>,
    max_sender_labels: usize,
    duplicates: Counter,
    rejected: Family<ReasonLabel, Counter>,
    refused_log_records: Family<ReasonLabel, Counter>,
    ingest_seconds: Histogram,
    commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(DEFAULT_MAX_SENDER_LABELS)
    }
}

impl Metrics {
    /// Metrics that label at most `max_sender_labels` senders by name (the first
    /// seen); reports of any further sender count under [`OTHER_SENDERS`].
    pub fn new(max_sender_labels: usize) -> Self {
        Metrics {
            stored_by_event: Family::default(),
            stored_by_sender: Family::default(),
            sender_labels: Mutex::new(HashSet::new()),
            max_sender_labels,
            duplicates: Counter::default(),
            rejected: Family::default(),
            refused_log_records: Family::default(),
            ingest_seconds: latency_buckets(),
            commit_seconds: latency_buckets(),
        }
    }

    /// Counts newly stored reports by event and by sender.
    pub fn stored<'a>(&self, reports: impl IntoIterator<Item = &'a Report>) {
        let mut by_event: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut by_sender: BTreeMap<&str, u64> = BTreeMap::new();
        for report in reports {
            *by_event.entry(report.event.as_str_name()).or_default() += 1;
            *by_sender.entry(&report.sender).or_default() += 1;
        }
        for (event, count) in by_event {
            self.stored_by_event
                .get_or_create(&EventLabel { event })
                .inc_by(count);
        }
        let mut labelled = self.sender_labels.lock().expect("sender labels");
        for (sender, count) in by_sender {
            let known = labelled.contains(sender);
            let sender = if known || labelled.len() < self.max_sender_labels {
                if !known {
                    labelled.insert(sender.to_string());
                }
                sender
            } else {
                // No sender is empty (validation refuses it), so the rest cannot
                // collide with a real sender, not even one named "other".
                OTHER_SENDERS
            };
            self.stored_by_sender
                .get_or_create(&SenderLabel {
                    sender: sender.to_string(),
                })
                .inc_by(count);
        }
    }

    /// Counts reports answered as duplicates.
    pub fn duplicates(&self, count: u64) {
        self.duplicates.inc_by(count);
    }

    /// Counts one refused request, by reason (the invalid field, `unauthenticated`,
    /// `unavailable`).
    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts one OTLP log record refused on its own (answered in a partial
    /// success while the rest of its request was stored), by the field whose rule
    /// it broke.
    pub fn refused_log_record(&self, reason: &str) {
        self.refused_log_records
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records one ingest call's time from arrival to answer.
    pub fn ingest(&self, elapsed: Duration) {
        self.ingest_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records one store commit's time.
    pub fn commit(&self, elapsed: Duration) {
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    /// The exposition: every metric, with the SSE subscriber count and the current
    /// run's propagation latencies (its whole-run distributions, O(buckets) each).
    pub fn encode(&self, gauges: Gauges, propagation: &[(RoundKind, &Distribution)]) -> String {
        let mut registry = Registry::default();
        registry.register(
            "perfstats_reports_stored",
            "Reports stored, by event",
            self.stored_by_event.clone(),
        );
        registry.register(
            "perfstats_reports_stored_by_sender",
            "Reports stored, by sender (senders past the label cap count as 'other')",
            self.stored_by_sender.clone(),
        );
        registry.register(
            "perfstats_duplicates",
            "Reports whose report_id was already stored (acknowledged, not stored again)",
            self.duplicates.clone(),
        );
        registry.register(
            "perfstats_rejected",
            "Refused requests, by reason (the invalid field, unauthenticated, unavailable)",
            self.rejected.clone(),
        );
        registry.register(
            "perfstats_otlp_refused_log_records",
            "OTLP log records refused one by one (a partial success; the rest of the request was stored), by the field whose rule each broke",
            self.refused_log_records.clone(),
        );
        registry.register(
            "perfstats_ingest_latency_seconds",
            "Time from a report call's arrival to its answer",
            self.ingest_seconds.clone(),
        );
        registry.register(
            "perfstats_commit_latency_seconds",
            "Time of one store commit (one batch of reports)",
            self.commit_seconds.clone(),
        );
        let held = Gauge::<i64>::default();
        held.set(gauges.stream_text_bytes as i64);
        registry.register(
            "perfstats_stream_text_bytes",
            "Bytes reserved by open ReportStats calls for the reports they hold (counts against --max-stream-text)",
            held,
        );
        let answers = Gauge::<i64>::default();
        answers.set(gauges.answer_bytes as i64);
        registry.register(
            "perfstats_answer_bytes",
            "Bytes of JSON answers being written (counts against --max-answer-bytes)",
            answers,
        );
        let gauge = Gauge::<i64>::default();
        gauge.set(gauges.subscribers as i64);
        registry.register(
            "perfstats_sse_subscribers",
            "Open live-stream (SSE) subscribers",
            gauge,
        );
        if let Some(heap) = gauges.heap {
            for (name, help, bytes) in [
                (
                    "perfstats_heap_in_use_bytes",
                    "Heap bytes allocated and not freed (the allocator's own count, read every 10 s)",
                    heap.in_use,
                ),
                (
                    "perfstats_heap_free_bytes",
                    "Heap bytes freed and kept by the allocator for reuse, read every 10 s (in the RSS once touched, unless trimmed: after budgeted work lets go of 16 MiB, or after the RSS grew by 16 MiB and then held still)",
                    heap.free,
                ),
            ] {
                let gauge = Gauge::<i64>::default();
                gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
                registry.register(name, help, gauge);
            }
        }
        if let Some(stream) = gauges.stream {
            let gauge = |value: u64| {
                let gauge = Gauge::<i64>::default();
                gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
                gauge
            };
            registry.register(
                "perfstats_stream_applied_seq",
                "The highest sequence of the shared stream applied to this server's store",
                gauge(stream.applied),
            );
            if let Some(lag) = stream.lag {
                registry.register(
                    "perfstats_stream_lag",
                    "Messages of the shared stream not applied here yet (its last sequence as last seen minus the applied one; absent until the stream was reached)",
                    gauge(lag),
                );
            }
            registry.register(
                "perfstats_stream_writable",
                "1 while writes can reach the shared stream, else 0 (writes answer UNAVAILABLE)",
                gauge(u64::from(stream.writable)),
            );
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        let end = text.len() - "# EOF\n".len();
        text.truncate(end);
        encode_propagation(&mut text, propagation);
        text.push_str("# EOF\n");
        text
    }
}

/// What is going on at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Open live-stream (SSE) subscribers.
    pub subscribers: usize,
    /// Bytes of text reserved by open `ReportStats` calls.
    pub stream_text_bytes: usize,
    /// Bytes of answers being written.
    pub answer_bytes: usize,
    /// Where this server stands against the shared stream (`--nats`), if any.
    pub stream: Option<crate::cluster::StreamStatus>,
    /// The allocator's in-use and kept-free bytes, where it tells them.
    pub heap: Option<crate::heap::HeapStats>,
}

/// The propagation histogram's bucket bounds, seconds.
const PROPAGATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// Writes `perfstats_propagation_latency_seconds` by kind: cumulative buckets (a
/// log bucket of the distribution straddling a bound counts by its middle, within
/// 0.4%), the exact count and sum.
fn encode_propagation(text: &mut String, propagation: &[(RoundKind, &Distribution)]) {
    use std::fmt::Write;
    let name = "perfstats_propagation_latency_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} The current run's propagation latencies (authority message to each node), by round kind."
    );
    let _ = writeln!(text, "# TYPE {name} histogram");
    let _ = writeln!(text, "# UNIT {name} seconds");
    for (kind, latencies) in propagation {
        let kind = match kind {
            RoundKind::Problem => "problem",
            RoundKind::Block => "block",
            RoundKind::Reveal => "reveal",
        };
        let _ = writeln!(
            text,
            "{name}_sum{{kind=\"{kind}\"}} {}",
            latencies.sum_ns() as f64 / 1e9
        );
        let _ = writeln!(
            text,
            "{name}_count{{kind=\"{kind}\"}} {}",
            latencies.count()
        );
        for bound in PROPAGATION_BUCKETS {
            let count = latencies.count_at_most((bound * 1e9) as u64);
            let _ = writeln!(
                text,
                "{name}_bucket{{le=\"{bound}\",kind=\"{kind}\"}} {count}"
            );
        }
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"+Inf\",kind=\"{kind}\"}} {}",
            latencies.count()
        );
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, stored: &[&Report], duplicates: u64, elapsed: Duration) {
        self.stored(stored.iter().copied());
        self.duplicates(duplicates);
        self.commit(elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::Event;

    fn report(sender: &str, event: Event) -> Report {
        Report {
            seq: 1,
            run: 1,
            time_unix_nano: 1,
            received_unix_nano: 1,
            sender: sender.into(),
            event,
            message: "m".into(),
            report_id: "id".into(),
        }
    }

    #[test]
    fn senders_past_the_cap_fold_into_other() {
        let metrics = Metrics::new(2);
        let reports = [
            report("a", Event::NewBlockReceived),
            report("b", Event::NewBlockReceived),
            report("c", Event::SimtaskReceived),
            report("other", Event::SimtaskReceived),
            report("a", Event::SimtaskReceived),
        ];
        metrics.stored(&reports);
        let mut latencies = Distribution::default();
        latencies.add(20_000_000);
        latencies.add(40_000_000);
        latencies.add_max(40_000_000);
        let gauges = Gauges {
            subscribers: 3,
            stream_text_bytes: 7,
            answer_bytes: 9,
            stream: None,
            heap: Some(crate::heap::HeapStats {
                in_use: 1_000,
                free: 24,
            }),
        };
        let text = metrics.encode(gauges, &[(RoundKind::Block, &latencies)]);
        assert!(
            text.contains("perfstats_heap_in_use_bytes 1000\n"),
            "{text}"
        );
        assert!(text.contains("perfstats_heap_free_bytes 24\n"), "{text}");
        assert!(
            text.contains("perfstats_propagation_latency_seconds_count{kind=\"block\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "perfstats_propagation_latency_seconds_bucket{le=\"0.02\",kind=\"block\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("perfstats_propagation_latency_seconds_sum{kind=\"block\"} 0.06"),
            "{text}"
        );
        assert!(
            text.contains("perfstats_reports_stored_by_sender_total{sender=\"a\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("perfstats_reports_stored_by_sender_total{sender=\"\"} 2"),
            "{text}"
        );
        assert!(!text.contains("sender=\"c\""), "{text}");
        assert!(
            !text.contains("sender=\"other\""),
            "a sender named other is one of the rest, not a bucket of its own: {text}"
        );
        assert!(
            text.contains("perfstats_reports_stored_total{event=\"EVENT_SIMTASK_RECEIVED\"} 3"),
            "{text}"
        );
        assert!(text.contains("perfstats_sse_subscribers 3"), "{text}");
        assert!(text.contains("perfstats_stream_text_bytes 7"), "{text}");
        assert!(text.contains("perfstats_answer_bytes 9"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
