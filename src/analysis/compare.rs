//! Two runs side by side, and whether a difference is beyond noise.
//!
//! Per round kind: both whole-run latency distributions, the difference of their
//! medians (b − a) with a 95% bootstrap interval, histograms on common bins and
//! quantile curves (for CDFs). Per node: sync time and phases, median block
//! latency, blocks missed. Per run: flagged rounds and disagreeing winner rounds.
//!
//! The intervals come from [`super::interval`] (a bootstrap over the receipts,
//! exact for the bucketed data), seeded by what is compared.

use super::distribution::Distribution;
use super::interval;
use super::live::LiveAnalysis;
use super::{NodeSummary, ROUND_KINDS, RoundKind};
use serde::Serialize;
use std::collections::BTreeMap;

pub use super::interval::{MIN_FOR_INTERVAL, RESAMPLES, median_delta_ci};

/// One run's whole-run figures of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dist {
    /// How many receipts.
    pub count: u64,
    /// The median, ms.
    pub p50_ms: Option<f64>,
    /// The 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// The 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// The slowest, ms (exact).
    pub max_ms: Option<f64>,
}

impl Dist {
    fn of(latencies: &Distribution) -> Dist {
        let summary = latencies.summary();
        Dist {
            count: summary.count,
            p50_ms: summary.p50_ms,
            p90_ms: summary.p90_ms,
            p99_ms: summary.p99_ms,
            max_ms: summary.max_ms,
        }
    }
}

/// Counts of both runs on common bins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histograms {
    /// Upper bounds of the 1-2-5 bins, ms.
    pub le_ms: Vec<f64>,
    /// Run a's count per bin.
    pub a: Vec<u64>,
    /// Run b's count per bin.
    pub b: Vec<u64>,
}

/// Each run's latency at 1%, 2%, … 99% (ms): its quantile function, for a CDF.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    /// Run a's.
    pub a: Vec<f64>,
    /// Run b's.
    pub b: Vec<f64>,
}

/// One round kind compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindComparison {
    /// Run a's distribution.
    pub a: Dist,
    /// Run b's.
    pub b: Dist,
    /// b's median − a's, ms.
    pub p50_delta_ms: Option<f64>,
    /// 95% interval of that difference; none with fewer than
    /// [`MIN_FOR_INTERVAL`] receipts on a side.
    pub p50_delta_ci95_ms: Option<[f64; 2]>,
    /// Whether the interval excludes 0: a difference beyond noise.
    pub real: bool,
    /// Both histograms on common bins.
    pub histogram: Histograms,
    /// Both quantile curves.
    pub quantiles: Quantiles,
}

/// One node in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSide {
    /// From its start to `INITIAL_SYNC_COMPLETED`, ms.
    pub synced_ms: Option<f64>,
    /// Each sync phase reached, ms since its start.
    pub phases_ms: BTreeMap<&'static str, f64>,
    /// Its median block latency, ms.
    pub block_p50_ms: Option<f64>,
    /// Block rounds it is missing from (see [`Round::missing`](super::Round::missing)):
    /// sent by others after its first report, never received; none if it never
    /// received a block.
    pub blocks_missed: u64,
}

/// One node in both runs (a side is null where it did not report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeComparison {
    /// The node.
    pub sender: String,
    /// In run a.
    pub a: Option<NodeSide>,
    /// In run b.
    pub b: Option<NodeSide>,
    /// b's sync time − a's, ms.
    pub synced_delta_ms: Option<f64>,
}

/// What needs attention in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flags {
    /// Rounds some node never received.
    pub rounds_flagged: usize,
    /// Winner rounds whose nodes named different winners.
    pub winners_disagreeing: usize,
}

/// Both runs' flags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BothFlags {
    /// Run a's.
    pub a: Flags,
    /// Run b's.
    pub b: Flags,
}

/// Two runs compared (the run descriptions are added by the caller).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Per round kind.
    pub kinds: BTreeMap<RoundKind, KindComparison>,
    /// Per node, in name order.
    pub nodes: Vec<NodeComparison>,
    /// Per run.
    pub flags: BothFlags,
}

/// The 1-2-5 bins (ns) covering both distributions' values.
fn common_bins(a: &Distribution, b: &Distribution) -> Histograms {
    let bounds: Vec<u64> = (3..13u32)
        .flat_map(|exponent| [1, 2, 5].map(|step| step * 10u64.pow(exponent)))
        .collect();
    let counts = |latencies: &Distribution| {
        let mut below = 0;
        let mut counts: Vec<u64> = bounds
            .iter()
            .map(|bound| {
                let at_most = latencies.count_at_most(*bound);
                let count = at_most - below;
                below = at_most;
                count
            })
            .collect();
        if let Some(last) = counts.last_mut() {
            *last += latencies.count() - below;
        }
        counts
    };
    let (in_a, in_b) = (counts(a), counts(b));
    let used = |index: &usize| in_a[*index] + in_b[*index] > 0;
    let first = (0..bounds.len()).find(used);
    let last = (0..bounds.len()).rev().find(used);
    match (first, last) {
        (Some(first), Some(last)) => Histograms {
            le_ms: bounds[first..=last]
                .iter()
                .map(|ns| *ns as f64 / 1e6)
                .collect(),
            a: in_a[first..=last].to_vec(),
            b: in_b[first..=last].to_vec(),
        },
        _ => Histograms {
            le_ms: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
        },
    }
}

fn quantiles(latencies: &Distribution) -> Vec<f64> {
    (1..=99)
        .filter_map(|percent| latencies.quantile_ns(f64::from(percent) / 100.0))
        .map(|ns| ns / 1e6)
        .collect()
}

fn side(node: &NodeSummary, block: &super::live::Receiver) -> NodeSide {
    NodeSide {
        synced_ms: node.phases_ms.get("EVENT_INITIAL_SYNC_COMPLETED").copied(),
        phases_ms: node.phases_ms.clone(),
        block_p50_ms: block.median_ms,
        blocks_missed: block.missed,
    }
}

/// Compares run `a` with run `b` (deltas are b − a).
pub fn compare(a: &LiveAnalysis, b: &LiveAnalysis) -> Comparison {
    let kinds = ROUND_KINDS
        .iter()
        .map(|(kind, ..)| {
            let (in_a, in_b) = (a.distribution(*kind), b.distribution(*kind));
            let interval = median_delta_ci(in_a, in_b, interval::seed(in_a, in_b, *kind as u64));
            let (dist_a, dist_b) = (Dist::of(in_a), Dist::of(in_b));
            let delta = dist_b.p50_ms.zip(dist_a.p50_ms).map(|(b, a)| b - a);
            (
                *kind,
                KindComparison {
                    p50_delta_ms: delta,
                    p50_delta_ci95_ms: interval,
                    real: interval.is_some_and(|[low, high]| low > 0.0 || high < 0.0),
                    histogram: common_bins(in_a, in_b),
                    quantiles: Quantiles {
                        a: quantiles(in_a),
                        b: quantiles(in_b),
                    },
                    a: dist_a,
                    b: dist_b,
                },
            )
        })
        .collect();
    let mut nodes: BTreeMap<String, NodeComparison> = BTreeMap::new();
    for (run, analysis) in [(0, a), (1, b)] {
        for receiver in analysis.receivers(RoundKind::Block) {
            let entry = nodes
                .entry(receiver.node.sender.clone())
                .or_insert_with(|| NodeComparison {
                    sender: receiver.node.sender.clone(),
                    a: None,
                    b: None,
                    synced_delta_ms: None,
                });
            let side = Some(side(&receiver.node, &receiver));
            if run == 0 {
                entry.a = side;
            } else {
                entry.b = side;
            }
        }
    }
    for node in nodes.values_mut() {
        let synced = |side: &Option<NodeSide>| side.as_ref().and_then(|side| side.synced_ms);
        node.synced_delta_ms = synced(&node.b).zip(synced(&node.a)).map(|(b, a)| b - a);
    }
    let flags = |analysis: &LiveAnalysis| Flags {
        rounds_flagged: analysis.rounds_flagged(),
        winners_disagreeing: analysis.winners_disagreeing(),
    };
    Comparison {
        kinds,
        nodes: nodes.into_values().collect(),
        flags: BothFlags {
            a: flags(a),
            b: flags(b),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::Distribution as _;

    const MS: f64 = 1e6;

    /// `n` log-normal latencies around `median_ms` (skewed, heavy-tailed).
    fn sample(rng: &mut StdRng, n: usize, median_ms: f64) -> Distribution {
        let normal = rand_distr::Normal::<f64>::new(0.0, 0.6).unwrap();
        let mut latencies = Distribution::default();
        let mut max = 0;
        for _ in 0..n {
            let value = (median_ms * MS * normal.sample(rng).exp()) as i64;
            latencies.add(value);
            max = max.max(value);
        }
        latencies.add_max(max);
        latencies
    }

    #[test]
    fn a_known_shift_is_found_within_its_interval() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = sample(&mut rng, 2_000, 50.0);
        let b = sample(&mut rng, 2_000, 90.0);
        let [low, high] = median_delta_ci(&a, &b, 9).unwrap();
        assert!(
            low <= 40.0 && 40.0 <= high,
            "[{low}, {high}] holds the shift of 40 ms"
        );
        assert!(
            low > 0.0,
            "a 40 ms shift of 50 ms medians is beyond noise: [{low}, {high}]"
        );
        assert!(
            high - low < 20.0,
            "2,000 receipts a side pin it down: [{low}, {high}]"
        );
    }

    #[test]
    fn one_distribution_twice_gives_an_interval_holding_zero_most_of_the_time() {
        let mut rng = StdRng::seed_from_u64(2);
        let trials = 200;
        let mut holding = 0;
        for trial in 0..trials {
            let a = sample(&mut rng, 300, 40.0);
            let b = sample(&mut rng, 300, 40.0);
            let [low, high] = median_delta_ci(&a, &b, trial).unwrap();
            if low <= 0.0 && 0.0 <= high {
                holding += 1;
            }
        }
        // A 95% interval: about 190 of 200; fewer than 180 means it is too narrow.
        assert!(holding >= 180, "{holding} of {trials} intervals held 0");
        assert!(holding < trials, "every interval held 0: suspiciously wide");
    }

    #[test]
    fn tiny_samples_give_no_interval_and_do_not_panic() {
        let mut rng = StdRng::seed_from_u64(3);
        let empty = Distribution::default();
        let few = sample(&mut rng, 5, 10.0);
        let enough = sample(&mut rng, 50, 10.0);
        assert_eq!(median_delta_ci(&empty, &enough, 1), None);
        assert_eq!(median_delta_ci(&few, &enough, 1), None);
        let mut one_value = Distribution::default();
        for _ in 0..20 {
            one_value.add(5_000_000);
        }
        assert_eq!(median_delta_ci(&one_value, &one_value, 1), Some([0.0, 0.0]));
    }

    #[test]
    fn a_run_compared_with_itself_differs_by_nothing() {
        let mut live = LiveAnalysis::default();
        let mut seq = 0;
        let mut add = |sender: &str, event: crate::pb::Event, ms: i64| {
            seq += 1;
            live.add(&crate::report::Report {
                seq,
                run: 1,
                time_unix_nano: ms * 1_000_000,
                received_unix_nano: 0,
                sender: sender.into(),
                event,
                message: "m".into(),
                report_id: seq.to_string(),
            });
        };
        for round in 0..30 {
            add("ra", crate::pb::Event::RaNewBlockSent, round * 1_000);
            for (index, node) in ["a", "b", "c"].iter().enumerate() {
                add(
                    node,
                    crate::pb::Event::NewBlockReceived,
                    round * 1_000 + 10 + index as i64 * 7 + round % 5,
                );
            }
        }
        let comparison = compare(&live, &live);
        let block = &comparison.kinds[&RoundKind::Block];
        assert_eq!(block.p50_delta_ms, Some(0.0));
        let [low, high] = block.p50_delta_ci95_ms.unwrap();
        assert!(low <= 0.0 && 0.0 <= high);
        assert!(!block.real);
        assert_eq!(block.a.count, 90);
        assert_eq!(comparison.nodes.len(), 4);
        assert!(comparison.nodes.iter().all(|node| node.a == node.b));
        assert_eq!(comparison.nodes[0].a.as_ref().unwrap().blocks_missed, 0);
        assert_eq!(comparison.kinds[&RoundKind::Reveal].p50_delta_ci95_ms, None);
    }
}
