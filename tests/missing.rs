//! Who can miss a round: a node is missing from a round only when it had reported
//! strictly before the round was sent and received at least one round of that kind
//! somewhere in the run (the round's sender never is). A sender that takes no part
//! in a kind's rounds, or a node that joins late, flags nothing it could not have
//! received. Each case is checked on the fold and on the live analysis, the live
//! one taking the reports in time order, reversed and shuffled (so a node's
//! eligibility often arrives after the rounds it reaches back to).

use perfstats::Event;
use perfstats::analysis::live::LiveAnalysis;
use perfstats::analysis::{self, Analysis, Round, RoundKind};
use perfstats::report::Report;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000_000_000_000;

/// One report before it is stored: (sender, event, ms after T0).
type Raw = (String, Event, i64);

/// Collects a run's reports in time order.
#[derive(Default)]
struct RunBuilder(Vec<Raw>);

impl RunBuilder {
    fn add(&mut self, sender: &str, event: Event, at_ms: i64) {
        self.0.push((sender.to_string(), event, at_ms));
    }

    /// The reports stored in time order, seqs 1, 2, ….
    fn reports(&self) -> Vec<Report> {
        let mut raw = self.0.clone();
        raw.sort_by_key(|(_, _, at)| *at);
        stored(raw)
    }
}

fn stored(raw: Vec<Raw>) -> Vec<Report> {
    raw.into_iter()
        .enumerate()
        .map(|(index, (sender, event, at_ms))| Report {
            seq: index as u64 + 1,
            run: 1,
            time_unix_nano: T0 + at_ms * MS,
            received_unix_nano: T0,
            sender,
            event,
            message: format!("at {at_ms} ms"),
            report_id: index.to_string(),
        })
        .collect()
}

/// The same reports stored in other orders: reversed, and shuffled three ways.
fn reorderings(reports: &[Report]) -> Vec<Vec<Report>> {
    let raw: Vec<Raw> = reports
        .iter()
        .map(|report| {
            let at_ms = (report.time_unix_nano - T0) / MS;
            (report.sender.clone(), report.event, at_ms)
        })
        .collect();
    let mut orders = vec![stored(raw.iter().rev().cloned().collect())];
    for seed in 0..3 {
        let mut shuffled = raw.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(seed));
        orders.push(stored(shuffled));
    }
    orders
}

fn live(reports: &[Report]) -> LiveAnalysis {
    let mut live = LiveAnalysis::default();
    for report in reports {
        live.add(report);
    }
    live
}

/// The fold's analysis of `reports`, once the live analysis is checked against it
/// in every order: rounds with their missing lists, flagged counts (and the
/// flagged pages), and each node's rounds missed.
fn analyse(reports: &[Report]) -> Analysis {
    let fold = analysis::analyse(reports);
    for order in std::iter::once(reports.to_vec()).chain(reorderings(reports)) {
        let live = live(&order);
        assert_eq!(live.rounds(), fold.rounds, "live rounds");
        assert_eq!(live.rounds_flagged(), fold.rounds_flagged, "live flagged");
        for kind in [RoundKind::Problem, RoundKind::Block, RoundKind::Reveal] {
            let paged: Vec<usize> = live
                .rounds_page(Some(kind), true, None, usize::MAX)
                .items
                .iter()
                .map(|round| round.number)
                .collect();
            let mut want: Vec<usize> = fold
                .rounds
                .iter()
                .filter(|round| round.kind == kind && round.missing_count > 0)
                .map(|round| round.number)
                .collect();
            want.reverse();
            assert_eq!(paged, want, "flagged {kind:?} rounds");
            for receiver in live.receivers(kind) {
                let name = &receiver.node.sender;
                assert_eq!(
                    receiver.missed,
                    missed(&fold, kind, name),
                    "{name} {kind:?}"
                );
            }
        }
    }
    fold
}

/// Rounds of `kind` whose missing list names `node`.
fn missed(analysis: &Analysis, kind: RoundKind, node: &str) -> u64 {
    analysis
        .rounds
        .iter()
        .filter(|round| round.kind == kind && round.missing.iter().any(|name| name == node))
        .count() as u64
}

fn blocks(analysis: &Analysis) -> Vec<&Round> {
    analysis
        .rounds
        .iter()
        .filter(|round| round.kind == RoundKind::Block)
        .collect()
}

/// The report that started this: a tool that sent 20 transaction reports into a
/// run flagged every round. An authority, five nodes that receive every block, and
/// a probe that sends 20 unrelated reports mid-run: no round is flagged, the probe
/// is missing from none, and it missed no block.
#[test]
fn a_probe_that_takes_no_part_flags_no_round() {
    let mut run = RunBuilder::default();
    run.add("ra", Event::Libp2pNodeIdKnown, 0);
    let nodes = ["n1", "n2", "n3", "n4", "n5"];
    for (index, node) in nodes.iter().enumerate() {
        run.add(node, Event::Libp2pNodeIdKnown, 1 + index as i64);
    }
    for round in 0..30 {
        let sent = 1_000 + round * 100;
        run.add("ra", Event::RaNewBlockSent, sent);
        for (index, node) in nodes.iter().enumerate() {
            run.add(node, Event::NewBlockReceived, sent + 10 + index as i64);
        }
    }
    for report in 0..20 {
        run.add("probe", Event::TransactionReceived, 1_500 + report * 50);
    }
    let reports = run.reports();
    let analysis = analyse(&reports);
    assert_eq!(analysis.rounds_total, 30);
    assert_eq!(analysis.rounds_flagged, 0);
    assert!(
        analysis.rounds.iter().all(|round| round.missing.is_empty()),
        "no one is missing from any round"
    );
    assert_eq!(missed(&analysis, RoundKind::Block, "probe"), 0);
    let probe = live(&reports)
        .receivers(RoundKind::Block)
        .into_iter()
        .find(|receiver| receiver.node.sender == "probe")
        .unwrap();
    assert_eq!((probe.received, probe.missed), (0, 0));
}

/// A node that joins after rounds 1–3 were sent misses nothing from before its
/// start, but is flagged for round 5, sent after it joined, which it never
/// received. A node whose first report is at the very nanosecond of round 6's send
/// is not expected in round 6 (the boundary: its first report must be strictly
/// earlier), yet is expected in round 7.
#[test]
fn a_late_joiner_misses_only_rounds_sent_after_it_started() {
    let mut run = RunBuilder::default();
    for (index, node) in ["ra", "n1", "n2"].into_iter().enumerate() {
        run.add(node, Event::Libp2pNodeIdKnown, index as i64);
    }
    for round in 1..=7 {
        let sent = round * 1_000;
        run.add("ra", Event::RaNewBlockSent, sent);
        run.add("n1", Event::NewBlockReceived, sent + 10);
        run.add("n2", Event::NewBlockReceived, sent + 20);
        if round >= 4 && round != 5 {
            run.add("late", Event::NewBlockReceived, sent + 30);
        }
        if round == 7 {
            run.add("edge", Event::NewBlockReceived, sent + 40);
        }
    }
    run.add("late", Event::Libp2pNodeIdKnown, 3_500);
    run.add("edge", Event::Libp2pNodeIdKnown, 6_000);
    let reports = run.reports();
    let analysis = analyse(&reports);
    let rounds = blocks(&analysis);
    assert_eq!(rounds.len(), 7);
    for round in &rounds {
        let want: &[&str] = if round.number == 5 { &["late"] } else { &[] };
        assert_eq!(round.missing, want, "round {}", round.number);
        assert_eq!(round.missing_count, want.len());
    }
    assert_eq!(analysis.rounds_flagged, 1);
    let live = live(&reports);
    let receivers = live.receivers(RoundKind::Block);
    let of = |name: &str| {
        let receiver = receivers
            .iter()
            .find(|receiver| receiver.node.sender == name)
            .unwrap();
        (receiver.received, receiver.missed)
    };
    assert_eq!(of("late"), (3, 1));
    assert_eq!(of("edge"), (1, 0));
    assert_eq!(of("n1"), (7, 0));
    assert_eq!(of("ra"), (0, 0), "the authority receives no blocks");

    // Had `edge` started 1 ms earlier, round 6 would have been flagged for it.
    let mut earlier = run;
    earlier.add("edge", Event::Libp2pNodeIdKnown, 5_999);
    let analysis = analyse(&earlier.reports());
    assert_eq!(blocks(&analysis)[5].missing, ["edge"]);
    assert_eq!(analysis.rounds_flagged, 2);
}

/// Nodes that never received a kind are missing from none of its rounds; among
/// those that do, a missed round is flagged with just its misser. Here `b` receives
/// blocks only: the problem round `a` missed names `a` alone, and the block round
/// `b` missed names `b` alone. The authority, which sends both kinds and receives
/// neither, is never missing.
#[test]
fn a_node_that_never_received_a_kind_is_not_missing_from_it() {
    let mut run = RunBuilder::default();
    for (index, node) in ["ra", "a", "b"].into_iter().enumerate() {
        run.add(node, Event::Libp2pNodeIdKnown, index as i64);
    }
    for round in 1..=4 {
        let sent = round * 1_000;
        run.add("ra", Event::RaNewProblemSent, sent);
        if round != 2 {
            run.add("a", Event::SimtaskReceived, sent + 10);
        }
        run.add("ra", Event::RaNewBlockSent, sent + 500);
        run.add("a", Event::NewBlockReceived, sent + 510);
        if round != 3 {
            run.add("b", Event::NewBlockReceived, sent + 520);
        }
    }
    let analysis = analyse(&run.reports());
    let flagged: Vec<(RoundKind, usize, Vec<String>)> = analysis
        .rounds
        .iter()
        .filter(|round| round.missing_count > 0)
        .map(|round| (round.kind, round.number, round.missing.clone()))
        .collect();
    assert_eq!(
        flagged,
        [
            (RoundKind::Problem, 2, vec!["a".to_string()]),
            (RoundKind::Block, 3, vec!["b".to_string()]),
        ]
    );
    assert_eq!(analysis.rounds_flagged, 2);
    assert_eq!(missed(&analysis, RoundKind::Problem, "b"), 0);
}
