//! Per sender: its aggregates (counts by event, latest report, sync phases) and
//! the summary `/api/nodes` shows.

use super::{EVENT_INDEXES, LiveAnalysis, event_at, event_index};
use crate::analysis::{NodeSummary, SYNC_PHASES, millis};
use crate::pb::Event;
use crate::report::Report;

/// One sender's aggregates.
#[derive(Debug)]
pub(super) struct Node {
    reports: u64,
    first: i64,
    /// (time, seq) of its latest report, whose event and message follow.
    latest: (i64, u64),
    last_event: Event,
    last_message: String,
    counts: [u64; EVENT_INDEXES],
    /// First time of each of [`SYNC_PHASES`], `i64::MAX` when not reached.
    phases: [i64; SYNC_PHASES.len()],
}

impl Node {
    /// A sender first seen with a report at `time` of `event`.
    pub(super) fn new(time: i64, event: Event) -> Node {
        Node {
            reports: 0,
            first: time,
            latest: (i64::MIN, 0),
            last_event: event,
            last_message: String::new(),
            counts: [0; EVENT_INDEXES],
            phases: [i64::MAX; SYNC_PHASES.len()],
        }
    }

    /// Its first report's time.
    pub(super) fn first(&self) -> i64 {
        self.first
    }

    /// Takes one of its reports, in any order.
    pub(super) fn add(&mut self, report: &Report) {
        let time = report.time_unix_nano;
        self.reports += 1;
        self.first = self.first.min(time);
        if (time, report.seq) >= self.latest {
            self.latest = (time, report.seq);
            self.last_event = report.event;
            self.last_message.clone_from(&report.message);
        }
        self.counts[event_index(report.event)] += 1;
        if let Some(phase) = SYNC_PHASES.iter().position(|phase| *phase == report.event) {
            self.phases[phase] = self.phases[phase].min(time);
        }
    }
}

impl LiveAnalysis {
    /// One summary per sender, in sender order.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        self.sorted
            .iter()
            .map(|id| {
                let node = &self.nodes[*id as usize];
                let start = match node.phases[0] {
                    i64::MAX => node.first,
                    known => known,
                };
                NodeSummary {
                    sender: self.senders.name(*id).to_string(),
                    reports: node.reports,
                    start_unix_nano: start,
                    last_unix_nano: node.latest.0,
                    last_event: node.last_event.as_str_name(),
                    last_message: node.last_message.clone(),
                    counts: node
                        .counts
                        .iter()
                        .enumerate()
                        .filter(|(_, count)| **count > 0)
                        .map(|(index, count)| (event_at(index).as_str_name(), *count))
                        .collect(),
                    phases_ms: SYNC_PHASES
                        .iter()
                        .zip(node.phases)
                        .filter(|(_, time)| *time != i64::MAX)
                        .map(|(phase, time)| (phase.as_str_name(), millis(start, time)))
                        .collect(),
                }
            })
            .collect()
    }
}
