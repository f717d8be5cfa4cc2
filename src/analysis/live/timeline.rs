//! The timeline view of a run: windows counted per sender and event per bucket
//! (named here; the counts themselves are [`Timeline`](crate::analysis::timeline::Timeline)'s).

use super::{LiveAnalysis, event_at};
use crate::analysis::timeline::Window;
use std::collections::BTreeMap;

impl LiveAnalysis {
    /// The earliest and latest report time of the run.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.timeline.span()
    }

    /// Counts per sender and event in the window `from..to`, in about `buckets`
    /// buckets: (window, [(sender, [(event, counts)])]).
    pub fn timeline(&self, from: i64, to: i64, buckets: usize) -> (Window, Vec<SenderCounts>) {
        let window = self.timeline.window(from, to, buckets);
        let mut by_sender: BTreeMap<&str, SenderCounts> = BTreeMap::new();
        for (sender, index, counts) in &window.counts {
            let name = self.senders.name(*sender);
            let entry = by_sender.entry(name).or_insert_with(|| SenderCounts {
                sender: name.to_string(),
                total: 0,
                counts: BTreeMap::new(),
            });
            entry.total += counts.iter().sum::<u64>();
            entry
                .counts
                .insert(event_at(*index).as_str_name(), counts.clone());
        }
        let mut senders: Vec<SenderCounts> = by_sender.into_values().collect();
        if !window.rest.is_empty() {
            senders.push(SenderCounts {
                sender: String::new(),
                total: window.rest.iter().flat_map(|(_, counts)| counts).sum(),
                counts: window
                    .rest
                    .iter()
                    .map(|(index, counts)| (event_at(*index).as_str_name(), counts.clone()))
                    .collect(),
            });
        }
        (window, senders)
    }

    /// The smallest and largest seq of the reports in `from..to` (see
    /// [`Timeline::seqs`](crate::analysis::timeline::Timeline::seqs)).
    pub fn timeline_seqs(&self, from: i64, to: i64) -> Option<(u64, u64)> {
        self.timeline.seqs(from, to)
    }
}

/// One sender's counts in a timeline window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SenderCounts {
    /// The sender.
    pub sender: String,
    /// Its reports in the window.
    pub total: u64,
    /// Per event (proto name), counts per bucket.
    pub counts: BTreeMap<&'static str, Vec<u64>>,
}
