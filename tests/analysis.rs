//! The analysis kept current at ingest equals the pure fold, whatever the arrival
//! order: random runs where a receiver's report may arrive before the authority's
//! send, long after the next round began, twice, or at the same time as a send.

use perfstats::Event;
use perfstats::analysis::live::{LiveAnalysis, MISSING_SHOWN};
use perfstats::analysis::{self, Round, RoundKind};
use perfstats::report::Report;
use proptest::prelude::*;

const SENDERS: [&str; 6] = ["ra", "1f", "2f", "3f", "4l", "rb"];
const EVENTS: [Event; 10] = [
    Event::RaNewProblemSent,
    Event::SimtaskReceived,
    Event::RaNewBlockSent,
    Event::NewBlockReceived,
    Event::RaCommitRevealSent,
    Event::RaCommitRevealed,
    Event::BlockWinnerFound,
    Event::Libp2pNodeIdKnown,
    Event::InitialSyncCompleted,
    Event::TransactionReceived,
];
const MS: i64 = 1_000_000;

/// A run in arrival order: seqs follow the order, times are anywhere in 2 s (on a
/// coarse grid, so equal times happen).
fn run() -> impl Strategy<Value = Vec<Report>> {
    prop::collection::vec(
        (0..SENDERS.len(), 0..EVENTS.len(), 0..400i64, 0..3usize),
        0..300,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(index, (sender, event, time, message))| Report {
                seq: index as u64 + 1,
                run: 1,
                time_unix_nano: 1_700_000_000_000_000_000 + time * 5 * MS + (time % 7),
                received_unix_nano: 0,
                sender: SENDERS[sender].into(),
                event: EVENTS[event],
                message: ["x", "y", "z"][message].into(),
                report_id: index.to_string(),
            })
            .collect()
    })
}

fn live(reports: &[Report]) -> LiveAnalysis {
    let mut live = LiveAnalysis::default();
    for report in reports {
        live.add(report);
    }
    live
}

fn capped(mut round: Round) -> Round {
    round.missing.truncate(MISSING_SHOWN);
    // The slowest MISSING_SHOWN latencies (runs here have fewer receivers).
    assert!(round.latency_ms.len() <= MISSING_SHOWN);
    round
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_500))]

    #[test]
    fn incremental_equals_the_fold_for_any_arrival_order(reports in run()) {
        let fold = analysis::analyse(&reports);
        let live = live(&reports);
        prop_assert_eq!(live.nodes(), fold.nodes.clone());
        prop_assert_eq!(live.rounds(), fold.rounds.clone());
        prop_assert_eq!(live.winners(), fold.winners.clone());
        let summary = live.summary(usize::MAX);
        prop_assert_eq!(summary.rounds_total, fold.rounds_total);
        prop_assert_eq!(summary.rounds_flagged, fold.rounds_flagged);
        prop_assert_eq!(summary.winners_total, fold.winners_total);
        prop_assert_eq!(summary.winners_disagreeing, fold.winners_disagreeing);
        prop_assert_eq!(&summary.distributions, &fold.distributions);
        // Each node as a receiver (what compare shows): rounds received and missed
        // exactly, its median within the buckets' 0.4%.
        for kind in [RoundKind::Problem, RoundKind::Block, RoundKind::Reveal] {
            for receiver in live.receivers(kind) {
                let sender = receiver.node.sender.as_str();
                let rounds = fold.rounds.iter().filter(|round| round.kind == kind);
                let mut latencies: Vec<f64> = rounds.clone()
                    .filter_map(|round| round.latency_ms.get(sender).copied())
                    .collect();
                latencies.sort_by(f64::total_cmp);
                let missed = rounds.filter(|round| round.missing.iter().any(|name| name == sender)).count();
                prop_assert_eq!(receiver.received, latencies.len() as u64, "{} {:?}", sender, kind);
                prop_assert_eq!(receiver.missed, missed as u64, "{} {:?}", sender, kind);
                let rank = latencies.len().div_ceil(2).max(1);
                match (latencies.get(rank - 1), receiver.median_ms) {
                    (Some(want), Some(got)) => prop_assert!((got - want).abs() <= want * 0.004 + 1e-6, "{got} vs {want}"),
                    (None, None) => {}
                    other => prop_assert!(false, "{other:?}"),
                }
            }
        }
        // Exact counts and maxima; quantiles within 1% of the exact nearest rank.
        for (kind, distribution) in &fold.distributions {
            let mut exact: Vec<f64> = fold.rounds.iter()
                .filter(|round| round.kind == *kind)
                .flat_map(|round| round.latency_ms.values().copied())
                .collect();
            exact.sort_by(f64::total_cmp);
            prop_assert_eq!(distribution.count, exact.len() as u64);
            prop_assert_eq!(distribution.max_ms, exact.last().copied());
            for (fraction, got) in [(0.5, distribution.p50_ms), (0.9, distribution.p90_ms), (0.99, distribution.p99_ms)] {
                let rank = ((fraction * exact.len() as f64).ceil() as usize).max(1);
                match (exact.get(rank - 1), got) {
                    (Some(want), Some(got)) => prop_assert!(
                        (got - want).abs() <= want * 0.01 + 1e-6,
                        "{kind:?} p{fraction}: {got} vs {want}"
                    ),
                    (None, None) => {}
                    other => prop_assert!(false, "{other:?}"),
                }
            }
        }
    }

    #[test]
    fn pages_and_recent_views_are_slices_of_the_whole(reports in run(), limit in 1..7usize) {
        let fold = analysis::analyse(&reports);
        let live = live(&reports);
        // The newest few rounds, as the fold orders them.
        let recent = live.recent_rounds(limit);
        let skip = fold.rounds.len().saturating_sub(limit);
        let want: Vec<Round> = fold.rounds[skip..].iter().cloned().map(capped).collect();
        prop_assert_eq!(recent, want);
        // Flagged block rounds, paged newest first, are exactly the fold's.
        for kind in [RoundKind::Problem, RoundKind::Block, RoundKind::Reveal] {
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = live.rounds_page(Some(kind), true, before, limit);
                prop_assert!(page.items.len() <= limit);
                paged.extend(page.items);
                match page.next {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            let mut want: Vec<Round> = fold.rounds.iter()
                .filter(|round| round.kind == kind && round.missing_count > 0)
                .cloned().map(capped).collect();
            want.sort_by_key(|round| std::cmp::Reverse(round.number));
            prop_assert_eq!(paged, want);
        }
        // Every round of every kind, paged: each exactly once.
        let mut all = 0;
        let mut before = None;
        loop {
            let page = live.rounds_page(None, false, before, limit);
            all += page.items.len();
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        prop_assert_eq!(all, fold.rounds_total);
        // Disagreeing winner rounds, paged.
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = live.winners_page(true, before, limit);
            paged.extend(page.items);
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        let mut want: Vec<_> = fold.winners.iter().filter(|round| !round.agree).cloned().collect();
        want.reverse();
        prop_assert_eq!(paged, want);
        // The timeline counts every report once.
        if let Some((from, to)) = live.span() {
            let (window, senders) = live.timeline(from, to + 1, 7);
            prop_assert_eq!(window.total, reports.len() as u64);
            let counted: u64 = senders.iter().map(|sender| sender.total).sum();
            prop_assert_eq!(counted, reports.len() as u64);
        }
    }
}

/// A round's list of missing receivers is capped in views, not in its count, and
/// the round asked for by number lists them all.
#[test]
fn missing_lists_are_capped_but_counted() {
    let mut reports = Vec::new();
    let mut add = |sender: String, event: Event, time: i64| {
        let seq = reports.len() as u64 + 1;
        reports.push(Report {
            seq,
            run: 1,
            time_unix_nano: time,
            received_unix_nano: 0,
            sender,
            event,
            message: "m".into(),
            report_id: seq.to_string(),
        });
    };
    for node in 0..100 {
        add(format!("n{node:03}"), Event::Libp2pNodeIdKnown, 1);
    }
    add("ra".into(), Event::RaNewBlockSent, 10);
    add("n000".into(), Event::NewBlockReceived, 15);
    // A second round every node receives, node k after k + 1 ns.
    add("ra".into(), Event::RaNewBlockSent, 1_000);
    for node in 0..100 {
        add(format!("n{node:03}"), Event::NewBlockReceived, 1_001 + node);
    }
    let live = live(&reports);
    let summary = live.summary(10);
    let everyone = &summary.rounds[1];
    assert_eq!(
        (everyone.received_count, everyone.latency_ms.len()),
        (100, MISSING_SHOWN)
    );
    assert!(everyone.latency_ms.contains_key("n099") && !everyone.latency_ms.contains_key("n079"));
    assert_eq!(everyone.max_ms, Some(100e-6));
    assert_eq!(
        everyone.p50_ms,
        Some(50e-6),
        "over all 100, not the 20 shown"
    );
    let round = &summary.rounds[0];
    assert_eq!(
        (round.missing_count, round.missing.len()),
        (99, MISSING_SHOWN)
    );
    assert_eq!(round.missing[0], "n001");
    assert_eq!(summary.rounds_flagged, 1);
    let whole = live.round(RoundKind::Block, 1, usize::MAX).unwrap();
    assert_eq!(whole.missing.len(), 99);
    assert_eq!(whole.received_count, 1);
    assert_eq!(whole.latency_ms["n000"], 5e-6);
}
