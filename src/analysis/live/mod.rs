//! The analysis of one run kept current as its reports are stored: a report
//! arriving about in time order updates it in O(log n) (an authority's send costs
//! O(senders · log n); an authority's send far older than the newest also shifts
//! the later rounds, O(rounds); a node's first receipt of a kind, or a report
//! older than its first, also corrects each of its own sends of that kind once,
//! and a sender of rounds of a kind that starts receiving that kind looks through
//! its sends once, O(rounds)), and every read costs O(what it returns), never
//! O(run). It holds about 8 bytes a report of a testnet's run (`cargo bench
//! --bench long_run` prints the figure by part).
//!
//! It equals the pure fold of [`super::Analyzer`] for any arrival order: a
//! receiver's report may come before the authority's, or long after the next round
//! began. What it keeps: per sender, its aggregates; per round kind, the sends
//! sorted by (time, seq) and every receiver's receipt times sorted, from which a
//! round's latencies are looked up on demand; per round only how many expected
//! receivers missed it and its slowest latency (for the counts of flagged rounds and
//! the exact maximum);
//! the whole-run [`Distribution`](super::distribution::Distribution) of first-receipt latencies; the winner reports by
//! problem round; and the [`Timeline`] counts.
//!
//! # Layout
//! - `nodes`: per sender, its aggregates and summary; pages of summaries.
//! - `rounds`: per round kind, the sends and receipts; rounds and receivers.
//! - `missed`: per round, how many expected receivers missed it, under range updates.
//! - `winners`: winner reports by problem round, and agreement.
//! - `timeline`: windows of the run counted per sender and event.
//! - `times`: one receiver's receipt times, sorted in blocks.
//! - `varint`: the variable-length integers `times` and `winners` pack.
//! - `memory`: what the parts hold on the heap.

mod memory;
mod missed;
mod nodes;
mod rounds;
mod timeline;
mod times;
mod varint;
mod winners;

pub use nodes::{NodeOrder, NodesPage};
pub use rounds::Receiver;
pub use timeline::SenderCounts;

use super::timeline::Timeline;
use super::{Analysis, ROUND_KINDS, RoundKind};
use crate::intern::Interner;
use crate::pb::Event;
use crate::report::Report;
use nodes::Node;
use rounds::KindRounds;
use winners::Winners;

/// Missing receivers, and receivers' latencies (the slowest), listed per round in
/// summaries and pages: no answer grows with senders × rounds (the rest are counted
/// in `missing_count` and `received_count`; one round asked for by number lists
/// them all).
pub const MISSING_SHOWN: usize = 20;
/// Event indexes: 0 for anything unknown, 1..=17 for events 71..=87.
const EVENT_INDEXES: usize = 18;

/// The index of `event` in per-event arrays.
fn event_index(event: Event) -> usize {
    match event as i32 {
        value @ 71..=87 => (value - 70) as usize,
        _ => 0,
    }
}

/// The event at `index` of per-event arrays.
fn event_at(index: usize) -> Event {
    Event::try_from(index as i32 + 70).unwrap_or(Event::Unspecified)
}

/// One run's analysis, kept current.
#[derive(Debug, Default)]
pub struct LiveAnalysis {
    senders: Interner,
    /// Sender ids in name order.
    sorted: Vec<u32>,
    nodes: Vec<Node>,
    /// (sync time in ns, name, sender id) of the nodes that completed their
    /// initial sync, slowest first, then by name: a B-tree, so that a node's sync
    /// costs O(log senders) however many there are.
    by_sync: std::collections::BTreeSet<(std::cmp::Reverse<i64>, std::sync::Arc<str>, u32)>,
    kinds: [KindRounds; 3],
    winners: Winners,
    timeline: Timeline,
    reports: u64,
}

/// One page of rounds or winner rounds, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The `before` of the following page; `None` on the last one.
    pub next: Option<usize>,
}

fn kind_index(kind: RoundKind) -> usize {
    match kind {
        RoundKind::Problem => 0,
        RoundKind::Block => 1,
        RoundKind::Reveal => 2,
    }
}

impl LiveAnalysis {
    /// The id of `sender`, kept in name order in `sorted` when it is new.
    fn sender_id(&mut self, sender: &str) -> u32 {
        let known = self.senders.len();
        let id = self.senders.intern(sender);
        if self.senders.len() > known {
            let senders = &self.senders;
            let at = self
                .sorted
                .partition_point(|other| **senders.name(*other) < *sender);
            self.sorted.insert(at, id);
        }
        id
    }

    /// Takes one stored report of the run (any order; seqs increase with arrival).
    pub fn add(&mut self, report: &Report) {
        self.reports += 1;
        let sender = self.sender_id(&report.sender);
        let time = report.time_unix_nano;
        if self.nodes.len() <= sender as usize {
            self.nodes.push(Node::new(time, report.event));
        }
        let node = &mut self.nodes[sender as usize];
        let (old_first, old_sync) = (node.first(), node.sync_ns());
        node.add(report);
        let (first, sync) = (node.first(), node.sync_ns());
        self.sync_moved(sender, old_sync, sync);
        if first < old_first {
            // It reported earlier than it was known to: it is expected in the
            // rounds sent in between.
            for kind in &mut self.kinds {
                kind.first_moved(sender, old_first, first);
            }
        }
        let nodes = &self.nodes;
        for (index, (_, sent, received)) in ROUND_KINDS.iter().enumerate() {
            if report.event == *sent {
                let firsts = |id: usize| nodes[id].first();
                self.kinds[index].send(time, report.seq, sender, &report.message, firsts);
            } else if report.event == *received {
                self.kinds[index].receive(sender, time, first);
            }
        }
        match report.event {
            Event::RaNewProblemSent => self.winners.problem(time),
            Event::BlockWinnerFound => self.winners.winner(time, sender, &report.message),
            _ => {}
        }
        self.timeline
            .add(time, report.seq, sender, event_index(report.event));
    }

    /// How many reports it has taken.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// What `/api/analysis` shows: the first `nodes` nodes in sync order (slowest
    /// first), the newest `recent` rounds and winner rounds, the totals, and the
    /// whole-run distributions.
    pub fn summary(&self, recent: usize, nodes: usize) -> Analysis {
        let mut winners = self.winners_page(false, None, recent).items;
        winners.reverse();
        let nodes = self.nodes_page(NodeOrder::Sync, 0, nodes);
        Analysis {
            nodes: nodes.nodes,
            nodes_total: nodes.total,
            rounds: self.recent_rounds(recent),
            rounds_total: self.rounds_total(),
            rounds_flagged: self.rounds_flagged(),
            winners,
            winners_total: self.winners.with_winners,
            winners_disagreeing: self.winners.disagreeing,
            distributions: self.distributions(),
        }
    }
}
