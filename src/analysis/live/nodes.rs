//! Per sender: its aggregates (counts by event, latest report, sync phases), the
//! summary `/api/nodes` shows, and the pages of summaries in sender order or
//! slowest sync first, so that no answer grows with the senders.

use super::memory::{btree_bytes, vec_bytes};
use super::{EVENT_INDEXES, LiveAnalysis, event_at, event_index};
use crate::analysis::{NodeSummary, SYNC_PHASES, millis};
use crate::pb::Event;
use crate::report::Report;
use serde::Deserialize;
use std::cmp::Reverse;
use std::mem::size_of;

/// The order of a page of nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeOrder {
    /// The nodes that completed their initial sync, slowest first (by the time
    /// from their start to `INITIAL_SYNC_COMPLETED`, then by name), then every
    /// other node by name.
    #[default]
    Sync,
    /// By name.
    Sender,
}

/// A page of node summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct NodesPage {
    /// The summaries, in the order asked for.
    pub nodes: Vec<NodeSummary>,
    /// How many senders the run has.
    pub total: usize,
    /// The `offset` of the following page; `None` on the last one.
    pub next: Option<usize>,
}

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

    /// Its start: its first `LIBP2P_NODE_ID_KNOWN`, else its first report.
    fn start(&self) -> i64 {
        match self.phases[0] {
            i64::MAX => self.first,
            known => known,
        }
    }

    /// How long it took from its start to complete its initial sync (ns), if it did.
    pub(super) fn sync_ns(&self) -> Option<i64> {
        let synced = self.phases[SYNC_PHASES.len() - 1];
        (synced != i64::MAX).then(|| synced.saturating_sub(self.start()))
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
            .map(|id| self.node_summary(*id))
            .collect()
    }

    /// At most `limit` summaries in `order` from the `offset`-th on: O(offset +
    /// limit).
    pub fn nodes_page(&self, order: NodeOrder, offset: usize, limit: usize) -> NodesPage {
        let total = self.sorted.len();
        let ids: Vec<u32> = match order {
            NodeOrder::Sender => self
                .sorted
                .iter()
                .skip(offset)
                .take(limit)
                .copied()
                .collect(),
            NodeOrder::Sync => {
                let synced = self
                    .by_sync
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|(_, _, id)| *id);
                let shown = synced.len();
                let rest = self
                    .sorted
                    .iter()
                    .filter(|id| self.nodes[**id as usize].sync_ns().is_none())
                    .skip(offset.saturating_sub(self.by_sync.len()))
                    .take(limit - shown)
                    .copied();
                synced.chain(rest).collect()
            }
        };
        let end = offset.saturating_add(ids.len());
        NodesPage {
            nodes: ids.iter().map(|id| self.node_summary(*id)).collect(),
            total,
            next: (end < total && !ids.is_empty()).then_some(end),
        }
    }

    /// Keeps `sender` in its place in the sync order after its sync time went
    /// from `old` to `new` (each `None`: not synced).
    pub(super) fn sync_moved(&mut self, sender: u32, old: Option<i64>, new: Option<i64>) {
        if old == new {
            return;
        }
        let name = self.senders.name(sender).clone();
        if let Some(old) = old {
            let removed = self.by_sync.remove(&(Reverse(old), name.clone(), sender));
            debug_assert!(removed, "{name} was in the sync order");
        }
        if let Some(new) = new {
            self.by_sync.insert((Reverse(new), name, sender));
        }
    }

    /// Estimated heap bytes of the senders' names, aggregates and orders.
    pub(super) fn nodes_heap_bytes(&self) -> usize {
        let names: usize = self
            .sorted
            .iter()
            .map(|id| 16 + self.senders.name(*id).len())
            .sum();
        let messages: usize = self
            .nodes
            .iter()
            .map(|node| node.last_message.capacity())
            .sum();
        // The interner's map: a name and an id a slot, at 7/8 load.
        let map = self.senders.len() * 8 / 7 * (size_of::<std::sync::Arc<str>>() + 5);
        names
            + messages
            + map
            + vec_bytes(&self.sorted)
            + vec_bytes(&self.nodes)
            + btree_bytes::<(Reverse<i64>, std::sync::Arc<str>, u32), ()>(self.by_sync.len())
    }

    /// The summary of sender `id`.
    fn node_summary(&self, id: u32) -> NodeSummary {
        let node = &self.nodes[id as usize];
        let start = node.start();
        NodeSummary {
            sender: self.senders.name(id).to_string(),
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
    }
}
