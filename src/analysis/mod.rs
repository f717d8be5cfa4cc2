//! The analysis a researcher used to do by hand in a spreadsheet, as pure functions
//! of one run's reports: per-node summaries and sync phases, propagation rounds
//! (how long the authority's messages took to reach each node, and who missed
//! them), and winner agreement (did every node name the same block winner?).
//!
//! Times are the nodes' own event times (`time_unix_nano`); durations are in
//! milliseconds.
//!
//! This module holds the definitions, as a fold over a run's reports
//! ([`Analyzer`]); [`live::LiveAnalysis`] keeps the same answers current as reports
//! are stored, so that reads never fold a run.
//!
//! # Layout
//! - [`check`]: the pass/fail gate: expectations on a run, regressions against a baseline.
//! - [`compare`]: two runs side by side, with bootstrap intervals for the differences.
//! - [`distribution`]: whole-run latency distributions (log buckets, exact max).
//! - [`interval`]: bootstrap intervals of quantiles and of their differences.
//! - [`live`]: the analysis kept current at ingest.
//! - [`sweep`]: a run's headline figures, and a series of runs against a label.
//! - [`timeline`]: counts per sender, event and time bucket, at four resolutions.

pub mod check;
pub mod compare;
pub mod distribution;
pub mod interval;
pub mod live;
pub mod sweep;
pub mod timeline;

use crate::pb::Event;
use crate::report::Report;
use serde::Serialize;
use std::collections::BTreeMap;

/// The events that mark a node's way to being in sync, in their usual order.
pub const SYNC_PHASES: [Event; 6] = [
    Event::Libp2pNodeIdKnown,
    Event::FirstPeerConnected,
    Event::RaConnected,
    Event::InitialSyncChaindbReceived,
    Event::InitialSyncChaindbVerified,
    Event::InitialSyncCompleted,
];

/// What the authority sends and what each node reports on receiving it.
pub const ROUND_KINDS: [(RoundKind, Event, Event); 3] = [
    (
        RoundKind::Problem,
        Event::RaNewProblemSent,
        Event::SimtaskReceived,
    ),
    (
        RoundKind::Block,
        Event::RaNewBlockSent,
        Event::NewBlockReceived,
    ),
    (
        RoundKind::Reveal,
        Event::RaCommitRevealSent,
        Event::RaCommitRevealed,
    ),
];

/// The kinds of propagation round.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RoundKind {
    /// `RA_NEW_PROBLEM_SENT` → `SIMTASK_RECEIVED`.
    Problem,
    /// `RA_NEW_BLOCK_SENT` → `NEW_BLOCK_RECEIVED`.
    Block,
    /// `RA_COMMIT_REVEAL_SENT` → `RA_COMMIT_REVEALED`.
    Reveal,
}

/// One sender's summary (`GET /api/nodes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSummary {
    /// The node.
    pub sender: String,
    /// How many reports it sent.
    pub reports: u64,
    /// Its start: its first `LIBP2P_NODE_ID_KNOWN`, else its first report.
    pub start_unix_nano: i64,
    /// Its latest report's time.
    pub last_unix_nano: i64,
    /// Its latest report's event (proto name).
    pub last_event: &'static str,
    /// Its latest report's message.
    pub last_message: String,
    /// Reports per event (proto names).
    pub counts: BTreeMap<&'static str, u64>,
    /// For each sync phase reached: ms from its start to the phase's first report.
    pub phases_ms: BTreeMap<&'static str, f64>,
}

/// One propagation round: one authority message and who got it when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Round {
    /// What was propagated.
    pub kind: RoundKind,
    /// Which round of its kind this is, from 1.
    pub number: usize,
    /// Who sent it (the authority).
    pub sender: String,
    /// When it was sent.
    pub sent_unix_nano: i64,
    /// The sent report's message (e.g. the block).
    pub message: String,
    /// Each receiver's delay, ms from sending to its first matching report before
    /// the next round of the kind (in summaries and pages, the slowest
    /// [`live::MISSING_SHOWN`]; the percentiles below are over all).
    pub latency_ms: BTreeMap<String, f64>,
    /// How many receivers reported it.
    pub received_count: usize,
    /// The nodes missing from it (in summaries and pages, the first
    /// [`live::MISSING_SHOWN`] by name): those that never reported receiving it
    /// although they were expected to, having reported anything strictly before it
    /// was sent (by their first report's time) and received at least one round of
    /// its kind somewhere in the run. Its sender is never missing from it; a node
    /// that takes no part in rounds of the kind, or that started after the send,
    /// is not missing from it.
    pub missing: Vec<String>,
    /// How many nodes are missing from it (as `missing`, uncapped).
    pub missing_count: usize,
    /// The median latency (nearest rank), if anyone received it.
    pub p50_ms: Option<f64>,
    /// The 95th percentile latency (nearest rank).
    pub p95_ms: Option<f64>,
    /// The slowest receiver's latency.
    pub max_ms: Option<f64>,
}

/// The winners named in one problem round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WinnerRound {
    /// The problem round, from 1 (0: before the first `RA_NEW_PROBLEM_SENT`).
    pub round: usize,
    /// Whether every `BLOCK_WINNER_FOUND` of the round names the same winner.
    pub agree: bool,
    /// Each named winner (the report's message) and the nodes that named it.
    pub by_winner: BTreeMap<String, Vec<String>>,
}

/// `GET /api/analysis`: sync phases, the newest propagation and winner rounds, the
/// totals, and the whole-run latency distributions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// One entry per sender (all from the fold; in a summary the first few,
    /// slowest sync first: see [`live::NodeOrder::Sync`]).
    pub nodes: Vec<NodeSummary>,
    /// How many senders the run has.
    pub nodes_total: usize,
    /// Propagation rounds ordered by (time sent, kind): all from the fold, the
    /// newest few in a summary.
    pub rounds: Vec<Round>,
    /// How many propagation rounds the run has.
    pub rounds_total: usize,
    /// How many of them some node is missing from (see [`Round::missing`]).
    pub rounds_flagged: usize,
    /// Problem rounds with `BLOCK_WINNER_FOUND` reports, in round order (all, or the
    /// newest few).
    pub winners: Vec<WinnerRound>,
    /// How many such problem rounds the run has.
    pub winners_total: usize,
    /// How many of them named more than one winner.
    pub winners_disagreeing: usize,
    /// Per round kind, the latencies of every receipt of the run.
    pub distributions: BTreeMap<RoundKind, distribution::Summary>,
}

pub(crate) fn millis(from: i64, to: i64) -> f64 {
    (to - from) as f64 / 1e6
}

/// Folds one run's reports, in seq order, into the analysis, keeping only what it
/// needs: per-sender aggregates, and the reports of the events that propagation
/// rounds and winner rounds are made of. A run is never held in memory whole.
#[derive(Debug, Default)]
pub struct Analyzer {
    nodes: BTreeMap<String, NodeState>,
    kept: Vec<Report>,
}

/// One sender's aggregates so far.
#[derive(Debug)]
struct NodeState {
    reports: u64,
    first_unix_nano: i64,
    /// (time, seq) of its latest report, with that report's event and message.
    latest: (i64, u64),
    last_event: Event,
    last_message: String,
    counts: BTreeMap<&'static str, u64>,
    /// The first time of each sync phase reached.
    phases: BTreeMap<Event, i64>,
}

/// Whether rounds or winners are made of reports of `event`.
fn used_by_rounds(event: Event) -> bool {
    event == Event::BlockWinnerFound
        || ROUND_KINDS
            .iter()
            .any(|(_, sent, received)| event == *sent || event == *received)
}

impl Analyzer {
    /// Takes the next report of the run (in seq order).
    pub fn add(&mut self, report: &Report) {
        if !self.nodes.contains_key(&report.sender) {
            self.nodes.insert(
                report.sender.clone(),
                NodeState {
                    reports: 0,
                    first_unix_nano: report.time_unix_nano,
                    latest: (i64::MIN, 0),
                    last_event: report.event,
                    last_message: String::new(),
                    counts: BTreeMap::new(),
                    phases: BTreeMap::new(),
                },
            );
        }
        let node = self.nodes.get_mut(&report.sender).expect("inserted above");
        node.reports += 1;
        node.first_unix_nano = node.first_unix_nano.min(report.time_unix_nano);
        if (report.time_unix_nano, report.seq) >= node.latest {
            node.latest = (report.time_unix_nano, report.seq);
            node.last_event = report.event;
            node.last_message.clone_from(&report.message);
        }
        *node.counts.entry(report.event.as_str_name()).or_insert(0) += 1;
        if SYNC_PHASES.contains(&report.event) {
            let first = node
                .phases
                .entry(report.event)
                .or_insert(report.time_unix_nano);
            *first = (*first).min(report.time_unix_nano);
        }
        if used_by_rounds(report.event) {
            self.kept.push(report.clone());
        }
    }

    /// One summary per sender, in sender order.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.nodes
            .iter()
            .map(|(sender, node)| {
                let start = node
                    .phases
                    .get(&Event::Libp2pNodeIdKnown)
                    .copied()
                    .unwrap_or(node.first_unix_nano);
                NodeSummary {
                    sender: sender.clone(),
                    reports: node.reports,
                    start_unix_nano: start,
                    last_unix_nano: node.latest.0,
                    last_event: node.last_event.as_str_name(),
                    last_message: node.last_message.clone(),
                    counts: node.counts.clone(),
                    phases_ms: node
                        .phases
                        .iter()
                        .map(|(phase, time)| (phase.as_str_name(), millis(start, *time)))
                        .collect(),
                }
            })
            .collect()
    }

    /// Every propagation round of every kind, ordered by the time it was sent.
    pub fn rounds(&self) -> Vec<Round> {
        let firsts: BTreeMap<&str, i64> = self
            .nodes
            .iter()
            .map(|(sender, node)| (sender.as_str(), node.first_unix_nano))
            .collect();
        rounds_among(&self.kept, &firsts)
    }

    /// `BLOCK_WINNER_FOUND` reports grouped by problem round and named winner.
    pub fn winners(&self) -> Vec<WinnerRound> {
        winners(&self.kept)
    }

    /// The whole analysis, every round and winner round included.
    pub fn finish(&self) -> Analysis {
        let rounds = self.rounds();
        let winners = self.winners();
        let mut distributions: BTreeMap<RoundKind, distribution::Distribution> = ROUND_KINDS
            .iter()
            .map(|(kind, ..)| (*kind, Default::default()))
            .collect();
        for round in &rounds {
            let latencies = distributions.get_mut(&round.kind).expect("every kind");
            let mut max = None;
            for ms in round.latency_ms.values() {
                // Exact: latencies are whole ns, far below 2^52.
                let ns = (ms * 1e6).round() as i64;
                latencies.add(ns);
                max = max.max(Some(ns));
            }
            if let Some(max) = max {
                latencies.add_max(max);
            }
        }
        let nodes = self.nodes();
        Analysis {
            nodes_total: nodes.len(),
            nodes,
            rounds_total: rounds.len(),
            rounds_flagged: rounds
                .iter()
                .filter(|round| round.missing_count > 0)
                .count(),
            rounds,
            winners_total: winners.len(),
            winners_disagreeing: winners.iter().filter(|round| !round.agree).count(),
            winners,
            distributions: distributions
                .into_iter()
                .map(|(kind, latencies)| (kind, latencies.summary()))
                .collect(),
        }
    }
}

/// Folds `reports` (one run's, in seq order) into an [`Analyzer`].
pub fn analyzer(reports: &[impl AsRef<Report>]) -> Analyzer {
    let mut analyzer = Analyzer::default();
    for report in reports {
        analyzer.add(report.as_ref());
    }
    analyzer
}

/// One summary per sender, in sender order. `reports` are one run's, in seq order.
pub fn nodes(reports: &[impl AsRef<Report>]) -> Vec<NodeSummary> {
    analyzer(reports).nodes()
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// Every propagation round of every kind, ordered by the time it was sent.
pub fn rounds(reports: &[impl AsRef<Report>]) -> Vec<Round> {
    analyzer(reports).rounds()
}

/// The rounds in `reports`, with the whole run's senders as possible receivers:
/// `firsts` gives each one's first report time.
fn rounds_among(reports: &[impl AsRef<Report>], firsts: &BTreeMap<&str, i64>) -> Vec<Round> {
    let mut rounds = Vec::new();
    for (kind, sent_event, received_event) in ROUND_KINDS {
        let mut sent: Vec<&Report> = reports
            .iter()
            .map(AsRef::as_ref)
            .filter(|report| report.event == sent_event)
            .collect();
        sent.sort_by_key(|report| (report.time_unix_nano, report.seq));
        // Each receiver's received-event times, sorted.
        let mut received: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for report in reports.iter().map(AsRef::as_ref) {
            if report.event == received_event {
                received
                    .entry(&report.sender)
                    .or_default()
                    .push(report.time_unix_nano);
            }
        }
        for times in received.values_mut() {
            times.sort_unstable();
        }
        for (index, origin) in sent.iter().enumerate() {
            let until = sent
                .get(index + 1)
                .map_or(i64::MAX, |next| next.time_unix_nano);
            let mut latency_ms = BTreeMap::new();
            let mut missing = Vec::new();
            for (receiver, first_report) in firsts.iter().filter(|(s, _)| **s != origin.sender) {
                let first = received.get(receiver).and_then(|times| {
                    let at = times.partition_point(|time| *time < origin.time_unix_nano);
                    times.get(at).copied().filter(|time| *time < until)
                });
                match first {
                    Some(time) => {
                        latency_ms
                            .insert(receiver.to_string(), millis(origin.time_unix_nano, time));
                    }
                    // Expected: it had reported before the send, and it receives
                    // rounds of this kind.
                    None if *first_report < origin.time_unix_nano
                        && received.contains_key(receiver) =>
                    {
                        missing.push(receiver.to_string())
                    }
                    None => {}
                }
            }
            let mut sorted: Vec<f64> = latency_ms.values().copied().collect();
            sorted.sort_by(f64::total_cmp);
            rounds.push(Round {
                kind,
                number: index + 1,
                sender: origin.sender.clone(),
                sent_unix_nano: origin.time_unix_nano,
                message: origin.message.clone(),
                latency_ms,
                missing_count: missing.len(),
                received_count: sorted.len(),
                missing,
                p50_ms: percentile(&sorted, 0.50),
                p95_ms: percentile(&sorted, 0.95),
                max_ms: sorted.last().copied(),
            });
        }
    }
    rounds.sort_by_key(|round| (round.sent_unix_nano, round.kind));
    rounds
}

/// `BLOCK_WINNER_FOUND` reports grouped by problem round and named winner.
pub fn winners(reports: &[impl AsRef<Report>]) -> Vec<WinnerRound> {
    let mut problems: Vec<i64> = reports
        .iter()
        .map(AsRef::as_ref)
        .filter(|report| report.event == Event::RaNewProblemSent)
        .map(|report| report.time_unix_nano)
        .collect();
    problems.sort_unstable();
    let mut rounds: BTreeMap<usize, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for report in reports.iter().map(AsRef::as_ref) {
        if report.event == Event::BlockWinnerFound {
            let round = problems.partition_point(|time| *time <= report.time_unix_nano);
            let names = rounds
                .entry(round)
                .or_default()
                .entry(report.message.clone())
                .or_default();
            if !names.contains(&report.sender) {
                names.push(report.sender.clone());
            }
        }
    }
    rounds
        .into_iter()
        .map(|(round, mut by_winner)| {
            by_winner.values_mut().for_each(|names| names.sort());
            WinnerRound {
                round,
                agree: by_winner.len() <= 1,
                by_winner,
            }
        })
        .collect()
}

/// The whole analysis of one run's reports.
pub fn analyse(reports: &[impl AsRef<Report>]) -> Analysis {
    analyzer(reports).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const T0: i64 = 1_700_000_000_000_000_000;

    /// A run shaped like the original network: authority `ra`, full nodes 1f–3f,
    /// light nodes 4l–6l; three block rounds with known latencies; 5l misses block
    /// 2; in problem round 2, 3f names another winner.
    fn network() -> Vec<Report> {
        let mut reports = Vec::new();
        let mut add = |at_ms: i64, sender: &str, event: Event, message: &str| {
            reports.push(Report {
                seq: reports.len() as u64 + 1,
                run: 1,
                time_unix_nano: T0 + at_ms * MS,
                received_unix_nano: T0 + at_ms * MS + MS,
                sender: sender.into(),
                event,
                message: message.into(),
                report_id: format!("r{}", reports.len()),
            });
        };
        let nodes = ["1f", "2f", "3f", "4l", "5l", "6l"];
        add(0, "ra", Event::Libp2pNodeIdKnown, "ra id");
        for (i, node) in nodes.iter().enumerate() {
            let start = 10 + i as i64 * 5;
            add(start, node, Event::Libp2pNodeIdKnown, "id");
            add(start + 20, node, Event::FirstPeerConnected, "ra");
            add(
                start + 100 * (i as i64 + 1),
                node,
                Event::InitialSyncCompleted,
                "synced",
            );
        }
        for round in 0..3i64 {
            let base = 1_000 + round * 1_000;
            add(
                base,
                "ra",
                Event::RaNewProblemSent,
                &format!("problem {round}"),
            );
            for (i, node) in nodes.iter().enumerate() {
                add(base + 10 + i as i64, node, Event::SimtaskReceived, "task");
            }
            add(
                base + 500,
                "ra",
                Event::RaNewBlockSent,
                &format!("block {round}"),
            );
            for (i, node) in nodes.iter().enumerate() {
                if round == 1 && *node == "5l" {
                    continue;
                }
                // Latency: 20 ms + 10 ms per node index, + round.
                add(
                    base + 500 + 20 + 10 * i as i64 + round,
                    node,
                    Event::NewBlockReceived,
                    "block",
                );
            }
            for node in &nodes {
                let winner = if round == 1 && *node == "3f" {
                    "2f"
                } else {
                    "1f"
                };
                add(base + 600, node, Event::BlockWinnerFound, winner);
            }
        }
        reports
    }

    #[test]
    fn sync_phases_are_measured_from_each_nodes_start() {
        let nodes = nodes(&network());
        assert_eq!(nodes.len(), 7);
        let ra = &nodes[6];
        assert_eq!(ra.sender, "ra");
        assert_eq!(ra.counts["EVENT_RA_NEW_BLOCK_SENT"], 3);
        let third = nodes.iter().find(|node| node.sender == "3f").unwrap();
        assert_eq!(third.start_unix_nano, T0 + 20 * MS);
        assert_eq!(third.phases_ms["EVENT_LIBP2P_NODE_ID_KNOWN"], 0.0);
        assert_eq!(third.phases_ms["EVENT_FIRST_PEER_CONNECTED"], 20.0);
        assert_eq!(third.phases_ms["EVENT_INITIAL_SYNC_COMPLETED"], 300.0);
        assert!(!third.phases_ms.contains_key("EVENT_RA_CONNECTED"));
        assert_eq!(third.last_event, "EVENT_BLOCK_WINNER_FOUND");
        let slowest = nodes
            .iter()
            .max_by(|a, b| {
                let sync = |n: &NodeSummary| {
                    n.phases_ms
                        .get("EVENT_INITIAL_SYNC_COMPLETED")
                        .copied()
                        .unwrap_or(0.0)
                };
                sync(a).total_cmp(&sync(b))
            })
            .unwrap();
        assert_eq!(slowest.sender, "6l");
    }

    #[test]
    fn block_rounds_have_exact_latencies_and_the_missing_node() {
        let rounds = rounds(&network());
        let blocks: Vec<&Round> = rounds
            .iter()
            .filter(|r| r.kind == RoundKind::Block)
            .collect();
        assert_eq!(blocks.len(), 3);
        let second = blocks[1];
        assert_eq!(
            (
                second.number,
                second.message.as_str(),
                second.sender.as_str()
            ),
            (2, "block 1", "ra")
        );
        let expected: BTreeMap<String, f64> = [
            ("1f", 21.0),
            ("2f", 31.0),
            ("3f", 41.0),
            ("4l", 51.0),
            ("6l", 71.0),
        ]
        .into_iter()
        .map(|(node, ms)| (node.to_string(), ms))
        .collect();
        assert_eq!(second.latency_ms, expected);
        assert_eq!(second.missing, ["5l"]);
        assert_eq!(
            (second.p50_ms, second.p95_ms, second.max_ms),
            (Some(41.0), Some(71.0), Some(71.0))
        );
        assert!(blocks[0].missing.is_empty() && blocks[2].missing.is_empty());
        assert_eq!(blocks[2].latency_ms["5l"], 62.0);
        // Problem rounds: 10 ms + node index.
        let problem = rounds
            .iter()
            .find(|r| r.kind == RoundKind::Problem)
            .unwrap();
        assert_eq!(problem.latency_ms["1f"], 10.0);
        assert_eq!(problem.latency_ms["6l"], 15.0);
        // No reveal was ever sent: no reveal rounds.
        assert!(rounds.iter().all(|r| r.kind != RoundKind::Reveal));
        // Ordered by time sent.
        assert!(
            rounds
                .windows(2)
                .all(|w| w[0].sent_unix_nano <= w[1].sent_unix_nano)
        );
    }

    #[test]
    fn a_report_after_the_next_send_counts_for_that_round() {
        let mut reports = network();
        // 5l reports the second block (which it missed) only after the third was
        // sent at 3,500 ms: that report is its first after the third send, so the
        // second block stays missing for 5l and the third reached it after 5 ms.
        let mut late = reports.last().unwrap().clone();
        late.seq += 1;
        late.sender = "5l".into();
        late.event = Event::NewBlockReceived;
        late.time_unix_nano = T0 + 3_505 * MS;
        reports.push(late);
        let rounds = rounds(&reports);
        let blocks: Vec<&Round> = rounds
            .iter()
            .filter(|r| r.kind == RoundKind::Block)
            .collect();
        assert_eq!(blocks[1].missing, ["5l"]);
        assert_eq!(blocks[2].latency_ms["5l"], 5.0);
    }

    #[test]
    fn the_disagreeing_round_stands_out() {
        let winners = winners(&network());
        assert_eq!(winners.len(), 3);
        assert!(winners[0].agree && winners[2].agree);
        let second = &winners[1];
        assert_eq!(second.round, 2);
        assert!(!second.agree);
        assert_eq!(second.by_winner["1f"], ["1f", "2f", "4l", "5l", "6l"]);
        assert_eq!(second.by_winner["2f"], ["3f"]);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(10.0));
        assert_eq!(percentile(&values, 0.95), Some(19.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn exactly_the_sync_phases_have_labels() {
        for event in Event::all() {
            assert_eq!(
                event.phase_label().is_some(),
                SYNC_PHASES.contains(&event),
                "{event}"
            );
        }
    }
}
