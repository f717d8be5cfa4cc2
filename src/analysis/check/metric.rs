//! What an expectation measures: the metrics (`block.p99`, `synced.max`,
//! `node.NAME.synced`, `nodes`, …), their units, and their values in a run.

use crate::analysis::live::LiveAnalysis;
use crate::analysis::{RoundKind, percentile};
use serde::Serialize;

/// What every metric may be, for error messages.
pub(super) const METRICS: &str = "KIND.STAT (KIND problem, block or reveal; STAT p50, p90, p99, max or \
    count), synced.STAT, node.NAME.synced, rounds_flagged, winners_disagreeing or nodes";
/// The sync phase `synced` measures.
const SYNCED: &str = "EVENT_INITIAL_SYNC_COMPLETED";

/// A figure of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// The median.
    P50,
    /// The 90th percentile.
    P90,
    /// The 99th percentile.
    P99,
    /// The largest value.
    Max,
    /// How many values.
    Count,
}

impl Stat {
    const ALL: [(&'static str, Stat); 5] = [
        ("p50", Stat::P50),
        ("p90", Stat::P90),
        ("p99", Stat::P99),
        ("max", Stat::Max),
        ("count", Stat::Count),
    ];

    fn parse(text: &str) -> Option<Stat> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, stat)| *stat)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, stat)| *stat == self)
            .expect("every stat")
            .0
    }

    /// The quantile it is, if it is one.
    pub fn fraction(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P99 => Some(0.99),
            Stat::Max | Stat::Count => None,
        }
    }
}

/// What an expectation measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// A figure of a round kind's latencies.
    Latency(RoundKind, Stat),
    /// A figure of the nodes' sync times.
    Synced(Stat),
    /// One node's sync time.
    NodeSynced(String),
    /// Rounds some node never received.
    RoundsFlagged,
    /// Winner rounds whose nodes named different winners.
    WinnersDisagreeing,
    /// Senders in the run.
    Nodes,
}

/// What a metric's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// A number of things.
    Count,
}

fn kind_named(text: &str) -> Option<RoundKind> {
    match text {
        "problem" => Some(RoundKind::Problem),
        "block" => Some(RoundKind::Block),
        "reveal" => Some(RoundKind::Reveal),
        _ => None,
    }
}

fn kind_name(kind: RoundKind) -> &'static str {
    match kind {
        RoundKind::Problem => "problem",
        RoundKind::Block => "block",
        RoundKind::Reveal => "reveal",
    }
}

impl Metric {
    /// The metric named `text`, if any.
    pub fn parse(text: &str) -> Option<Metric> {
        match text {
            "rounds_flagged" => return Some(Metric::RoundsFlagged),
            "winners_disagreeing" => return Some(Metric::WinnersDisagreeing),
            "nodes" => return Some(Metric::Nodes),
            _ => {}
        }
        if let Some(name) = text
            .strip_prefix("node.")
            .and_then(|rest| rest.strip_suffix(".synced"))
            .filter(|name| !name.is_empty())
        {
            return Some(Metric::NodeSynced(name.to_string()));
        }
        let (group, stat) = text.split_once('.')?;
        let stat = Stat::parse(stat)?;
        match group {
            "synced" => Some(Metric::Synced(stat)),
            kind => Some(Metric::Latency(kind_named(kind)?, stat)),
        }
    }

    /// Its name, as written in an expectation.
    pub fn name(&self) -> String {
        match self {
            Metric::Latency(kind, stat) => format!("{}.{}", kind_name(*kind), stat.name()),
            Metric::Synced(stat) => format!("synced.{}", stat.name()),
            Metric::NodeSynced(node) => format!("node.{node}.synced"),
            Metric::RoundsFlagged => "rounds_flagged".into(),
            Metric::WinnersDisagreeing => "winners_disagreeing".into(),
            Metric::Nodes => "nodes".into(),
        }
    }

    /// What its values are.
    pub fn unit(&self) -> Unit {
        match self {
            Metric::Latency(_, Stat::Count) | Metric::Synced(Stat::Count) => Unit::Count,
            Metric::RoundsFlagged | Metric::WinnersDisagreeing | Metric::Nodes => Unit::Count,
            Metric::Latency(..) | Metric::Synced(_) | Metric::NodeSynced(_) => Unit::Ms,
        }
    }

    /// Its value in `run` (ms or a count), or why it has none.
    pub fn measure(&self, run: &LiveAnalysis) -> Result<f64, String> {
        match self {
            Metric::Latency(kind, stat) => {
                let latencies = run.distribution(*kind);
                let no_receipts = || format!("no {} receipts in the run", kind_name(*kind));
                match stat {
                    Stat::Count => Ok(latencies.count() as f64),
                    Stat::Max => latencies
                        .max_ns()
                        .map(|ns| ns as f64 / 1e6)
                        .ok_or_else(no_receipts),
                    quantile => latencies
                        .quantile_ns(quantile.fraction().expect("a quantile"))
                        .map(|ns| ns / 1e6)
                        .ok_or_else(no_receipts),
                }
            }
            Metric::Synced(stat) => {
                let mut synced: Vec<f64> = run
                    .nodes()
                    .iter()
                    .filter_map(|node| node.phases_ms.get(SYNCED).copied())
                    .collect();
                synced.sort_by(f64::total_cmp);
                let value = match stat {
                    Stat::Count => return Ok(synced.len() as f64),
                    Stat::Max => synced.last().copied(),
                    quantile => percentile(&synced, quantile.fraction().expect("a quantile")),
                };
                value.ok_or_else(|| "no node reported INITIAL_SYNC_COMPLETED".to_string())
            }
            Metric::NodeSynced(name) => {
                let nodes = run.nodes();
                let node = nodes
                    .iter()
                    .find(|node| node.sender == *name)
                    .ok_or_else(|| format!("no node {name} in the run"))?;
                node.phases_ms
                    .get(SYNCED)
                    .copied()
                    .ok_or_else(|| format!("{name} never reported INITIAL_SYNC_COMPLETED"))
            }
            Metric::RoundsFlagged => Ok(run.rounds_flagged() as f64),
            Metric::WinnersDisagreeing => Ok(run.winners_disagreeing() as f64),
            Metric::Nodes => Ok(run.nodes().len() as f64),
        }
    }
}
