//! A series of runs against one label's value (`netem_ms` = 0, 20, 40, 80): each
//! run's headline figures ([`RunFigures`], small enough to keep for hundreds of
//! runs), the order of the values, and how p50 moves with the value (a Theil–Sen
//! slope with Sen's 95% interval, so one odd run does not swing it).

use super::distribution::Distribution;
use super::interval::quantile_ci;
use super::live::LiveAnalysis;
use super::{ROUND_KINDS, RoundKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// Runs a slope needs (with distinct values) for its 95% interval; with fewer, the
/// slope is given without one.
pub const MIN_RUNS_FOR_SLOPE_INTERVAL: usize = 5;

/// One round kind's whole-run figures in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindFigures {
    /// How many receipts.
    pub count: u64,
    /// The median latency, ms.
    pub p50_ms: Option<f64>,
    /// The 95% bootstrap interval of the median (the one `compare` computes, for
    /// one run), ms; none with too few receipts.
    pub p50_ci95_ms: Option<[f64; 2]>,
    /// The 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// The 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// The slowest receipt, ms (exact).
    pub max_ms: Option<f64>,
}

/// How long the run's nodes took to sync (start to `INITIAL_SYNC_COMPLETED`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncFigures {
    /// Nodes that synced.
    pub nodes_synced: usize,
    /// The median node's sync time (nearest rank), ms.
    pub median_ms: Option<f64>,
    /// The slowest node's sync time, ms.
    pub slowest_ms: Option<f64>,
    /// The slowest node.
    pub slowest_node: Option<String>,
}

/// One run's headline figures: what a sweep shows and keeps per run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFigures {
    /// Per round kind.
    pub kinds: BTreeMap<RoundKind, KindFigures>,
    /// Rounds some node that could have received them never did.
    pub rounds_flagged: usize,
    /// Winner rounds whose nodes named different winners.
    pub winners_disagreeing: usize,
    /// Senders in the run.
    pub nodes: usize,
    /// Sync times.
    pub sync: SyncFigures,
}

impl RunFigures {
    /// The figures of one run's analysis.
    pub fn of(analysis: &LiveAnalysis) -> RunFigures {
        let kinds = ROUND_KINDS
            .iter()
            .map(|(kind, ..)| (*kind, kind_figures(analysis.distribution(*kind), *kind)))
            .collect();
        let nodes = analysis.nodes();
        let mut synced: Vec<(f64, &str)> = nodes
            .iter()
            .filter_map(|node| {
                let ms = node.phases_ms.get("EVENT_INITIAL_SYNC_COMPLETED")?;
                Some((*ms, node.sender.as_str()))
            })
            .collect();
        synced.sort_by(|a, b| a.0.total_cmp(&b.0));
        let median = match synced.len() {
            0 => None,
            n => Some(synced[n.div_ceil(2) - 1].0),
        };
        RunFigures {
            kinds,
            rounds_flagged: analysis.rounds_flagged(),
            winners_disagreeing: analysis.winners_disagreeing(),
            nodes: nodes.len(),
            sync: SyncFigures {
                nodes_synced: synced.len(),
                median_ms: median,
                slowest_ms: synced.last().map(|(ms, _)| *ms),
                slowest_node: synced.last().map(|(_, node)| node.to_string()),
            },
        }
    }
}

fn kind_figures(latencies: &Distribution, kind: RoundKind) -> KindFigures {
    let summary = latencies.summary();
    let seed = latencies.count() ^ (latencies.sum_ns() as u64) ^ (kind as u64) << 60;
    KindFigures {
        count: summary.count,
        p50_ms: summary.p50_ms,
        p50_ci95_ms: quantile_ci(latencies, 0.5, seed),
        p90_ms: summary.p90_ms,
        p99_ms: summary.p99_ms,
        max_ms: summary.max_ms,
    }
}

/// The order to show `values` in: numerically when every one parses as a number
/// (then `true`), else lexically; equal values keep their order. Indices into
/// `values`.
pub fn order(values: &[&str]) -> (Vec<usize>, bool) {
    let numbers: Option<Vec<f64>> = values.iter().map(|value| number(value)).collect();
    let mut indices: Vec<usize> = (0..values.len()).collect();
    match &numbers {
        Some(numbers) => indices.sort_by(|a, b| numbers[*a].total_cmp(&numbers[*b])),
        None => indices.sort_by(|a, b| values[*a].cmp(values[*b])),
    }
    (indices, numbers.is_some() && !values.is_empty())
}

/// A label value as a number, if it is a finite one.
pub fn number(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
}

/// How much y grows per unit of x.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slope {
    /// The Theil–Sen estimate: the median of the slopes between every two points
    /// with different x, ms per unit.
    pub per_unit_ms: f64,
    /// Sen's 95% interval for it; none with fewer than
    /// [`MIN_RUNS_FOR_SLOPE_INTERVAL`] points.
    pub ci95_ms: Option<[f64; 2]>,
    /// Points it is made of.
    pub runs: usize,
}

/// The Theil–Sen slope of `points` (x, y) with Sen's (1968) distribution-free 95%
/// interval, from the variance of Kendall's S with ties in x; `None` when no two
/// points have different x.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<Slope> {
    let mut slopes = Vec::new();
    for (i, (x1, y1)) in points.iter().enumerate() {
        for (x2, y2) in &points[i + 1..] {
            if x1 != x2 {
                slopes.push((y2 - y1) / (x2 - x1));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let pairs = slopes.len();
    let median = if pairs % 2 == 1 {
        slopes[pairs / 2]
    } else {
        (slopes[pairs / 2 - 1] + slopes[pairs / 2]) / 2.0
    };
    let n = points.len() as f64;
    let mut xs: Vec<f64> = points.iter().map(|(x, _)| *x).collect();
    xs.sort_by(f64::total_cmp);
    let ties: f64 = xs
        .chunk_by(|a, b| a == b)
        .map(|group| group.len() as f64)
        .filter(|t| *t > 1.0)
        .map(|t| t * (t - 1.0) * (2.0 * t + 5.0))
        .sum();
    let variance = (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0;
    let spread = 1.959_964 * variance.sqrt();
    let (low, high) = (
        ((pairs as f64 - spread) / 2.0).round(),
        ((pairs as f64 + spread) / 2.0).round() + 1.0,
    );
    let ci95_ms = (points.len() >= MIN_RUNS_FOR_SLOPE_INTERVAL && low >= 1.0).then(|| {
        [
            slopes[low as usize - 1],
            slopes[(high as usize).min(pairs) - 1],
        ]
    });
    Some(Slope {
        per_unit_ms: median,
        ci95_ms,
        runs: points.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_order_as_numbers_only_when_all_are() {
        assert_eq!(order(&["40", "0", "8", "20.5"]), (vec![1, 2, 3, 0], true));
        assert_eq!(order(&["v1.10", "v1.9", "v1.2"]), (vec![0, 2, 1], false));
        assert_eq!(order(&["10", "9", "x"]), (vec![0, 1, 2], false));
        assert!(!order(&["1e1", "-2", "nan"]).1, "NaN is no number here");
    }

    #[test]
    fn the_slope_of_a_line_is_its_slope_and_an_outlier_does_not_swing_it() {
        let line: Vec<(f64, f64)> = [0.0, 20.0, 40.0, 80.0, 0.0, 20.0, 40.0, 80.0]
            .iter()
            .enumerate()
            .map(|(i, x)| (*x, 10.0 + 0.98 * x + if i < 4 { 0.3 } else { -0.3 }))
            .collect();
        let slope = theil_sen(&line).unwrap();
        assert!((slope.per_unit_ms - 0.98).abs() < 0.01, "{slope:?}");
        let [low, high] = slope.ci95_ms.unwrap();
        assert!(
            low <= 0.98 && 0.98 <= high && high - low < 0.05,
            "{slope:?}"
        );
        let mut odd = line.clone();
        odd[2].1 += 500.0;
        let robust = theil_sen(&odd).unwrap();
        assert!((robust.per_unit_ms - 0.98).abs() < 0.05, "{robust:?}");
    }

    #[test]
    fn few_points_give_a_slope_without_an_interval() {
        let four = [(0.0, 1.0), (20.0, 21.0), (40.0, 41.0), (80.0, 81.0)];
        let slope = theil_sen(&four).unwrap();
        assert_eq!(
            (slope.per_unit_ms, slope.ci95_ms, slope.runs),
            (1.0, None, 4)
        );
        assert!(theil_sen(&[(5.0, 1.0), (5.0, 2.0)]).is_none());
    }
}
