//! The analysis of one run kept current as its reports are stored: a report
//! arriving about in time order updates it in O(log n) (an authority's send costs
//! O(senders · log n); a report far older than the newest also shifts the sorted
//! vectors it goes into), and every read costs O(what it returns), never O(run).
//!
//! It equals the pure fold of [`super::Analyzer`] for any arrival order: a
//! receiver's report may come before the authority's, or long after the next round
//! began. What it keeps: per sender, its aggregates; per round kind, the sends
//! sorted by (time, seq) and every receiver's receipt times sorted, from which a
//! round's latencies are looked up on demand; per round only how many received it
//! and its slowest latency (for the counts of flagged rounds and the exact maximum);
//! the whole-run [`Distribution`] of first-receipt latencies; the winner reports by
//! problem round; and the [`Timeline`] counts.

use super::distribution::{self, Distribution, Summary};
use super::timeline::{Timeline, Window};
use super::{
    Analysis, NodeSummary, ROUND_KINDS, Round, RoundKind, SYNC_PHASES, WinnerRound, millis,
    percentile,
};
use crate::pb::Event;
use crate::report::Report;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Missing receivers, and receivers' latencies (the slowest), listed per round in
/// summaries and pages: no answer grows with senders × rounds (the rest are counted
/// in `missing_count` and `received_count`; one round asked for by number lists
/// them all).
pub const MISSING_SHOWN: usize = 20;
/// Event slots: 0 for anything unknown, 1..=17 for events 71..=87.
const EVENT_SLOTS: usize = 18;

fn slot(event: Event) -> usize {
    match event as i32 {
        value @ 71..=87 => (value - 70) as usize,
        _ => 0,
    }
}

fn event_of(slot: usize) -> Event {
    Event::try_from(slot as i32 + 70).unwrap_or(Event::Unspecified)
}

/// One sender's aggregates.
#[derive(Debug)]
struct Node {
    reports: u64,
    first: i64,
    /// (time, seq) of its latest report, whose event and message follow.
    latest: (i64, u64),
    last_event: Event,
    last_message: String,
    counts: [u64; EVENT_SLOTS],
    /// First time of each of [`SYNC_PHASES`], `i64::MAX` when not reached.
    phases: [i64; SYNC_PHASES.len()],
}

/// One authority send: one round.
#[derive(Debug)]
struct Sent {
    time: i64,
    seq: u64,
    sender: u32,
    message: Box<str>,
    /// Receivers with a receipt in the round's window.
    received: u32,
    /// The slowest of them, ns (-1: none).
    max: i64,
}

/// One round kind's state.
#[derive(Debug, Default)]
struct Kind {
    /// Sorted by (time, seq); a round's number is its index + 1.
    sends: Vec<Sent>,
    /// Per sender id, the sorted times of its received-events of this kind.
    receipts: Vec<Vec<i64>>,
    latencies: Distribution,
    /// How many rounds have each `received` count.
    by_received: Vec<u64>,
    /// Per sender id as a receiver: its latencies, bucket (as the distribution's)
    /// → count, for its own median and how many rounds it received.
    by_receiver: Vec<BTreeMap<u32, u32>>,
    /// Per sender id, how many rounds of this kind it sent.
    sent_by: Vec<u64>,
}

impl Kind {
    /// Counts `receiver`'s `latency` in (or, with `add` false, out of) the
    /// whole-run distribution and the receiver's own.
    fn count(&mut self, receiver: usize, latency: i64, add: bool) {
        if add {
            self.latencies.add(latency);
        } else {
            self.latencies.remove(latency);
        }
        if self.by_receiver.len() <= receiver {
            self.by_receiver.resize_with(receiver + 1, BTreeMap::new);
        }
        let bucket = distribution::bucket(latency.max(0) as u64) as u32;
        let own = &mut self.by_receiver[receiver];
        if add {
            *own.entry(bucket).or_insert(0) += 1;
        } else if let Some(count) = own.get_mut(&bucket) {
            *count -= 1;
            if *count == 0 {
                own.remove(&bucket);
            }
        }
    }

    /// How many rounds `receiver` received, and its median latency (ns, nearest
    /// rank, within 0.4%).
    fn receiver(&self, receiver: usize) -> (u64, Option<f64>) {
        let Some(own) = self.by_receiver.get(receiver) else {
            return (0, None);
        };
        let received: u64 = own.values().map(|count| u64::from(*count)).sum();
        let rank = received.div_ceil(2).max(1);
        let mut seen = 0;
        let median = own.iter().find_map(|(bucket, count)| {
            seen += u64::from(*count);
            (seen >= rank).then(|| distribution::middle(*bucket as usize))
        });
        (received, median)
    }

    /// How many rounds of this kind `receiver` could have received: those others sent.
    fn receivable(&self, receiver: usize) -> u64 {
        self.sends.len() as u64 - self.sent_by.get(receiver).copied().unwrap_or(0)
    }

    /// The end of round `index`'s window: the next send's time.
    fn until(&self, index: usize) -> i64 {
        self.sends.get(index + 1).map_or(i64::MAX, |next| next.time)
    }

    /// `receiver`'s first receipt in `from..until`.
    fn first_in(&self, receiver: usize, from: i64, until: i64) -> Option<i64> {
        let times = self.receipts.get(receiver)?;
        if times.last().is_none_or(|last| *last < from) {
            return None; // the usual case for a new round: nothing received yet
        }
        let at = times.partition_point(|time| *time < from);
        times.get(at).copied().filter(|time| *time < until)
    }

    fn set_received(&mut self, index: usize, received: u32) {
        let old = std::mem::replace(&mut self.sends[index].received, received);
        self.by_received[old as usize] -= 1;
        let new = received as usize;
        if self.by_received.len() <= new {
            self.by_received.resize(new + 1, 0);
        }
        self.by_received[new] += 1;
    }

    fn set_max(&mut self, index: usize, max: i64) {
        let old = std::mem::replace(&mut self.sends[index].max, max);
        if old >= 0 {
            self.latencies.remove_max(old);
        }
        if max >= 0 {
            self.latencies.add_max(max);
        }
    }

    /// Round `index`'s slowest receiver, looked up again (after one left it).
    fn recompute_max(&mut self, index: usize) {
        let sent = &self.sends[index];
        let until = self.until(index);
        let max = (0..self.receipts.len())
            .filter(|receiver| *receiver != sent.sender as usize)
            .filter_map(|receiver| self.first_in(receiver, sent.time, until))
            .map(|time| time - sent.time)
            .max()
            .unwrap_or(-1);
        self.set_max(index, max);
    }

    /// A received-event of `receiver` at `time`.
    fn receive(&mut self, receiver: u32, time: i64) {
        let receiver = receiver as usize;
        if self.receipts.len() <= receiver {
            self.receipts.resize_with(receiver + 1, Vec::new);
        }
        let times = &self.receipts[receiver];
        // Reports mostly arrive in time order: check the end before searching.
        let at = match times.last() {
            Some(last) if *last < time => times.len(),
            _ => times.partition_point(|other| *other < time),
        };
        let round = match self.sends.last() {
            Some(last) if last.time <= time => self.sends.len(),
            _ => self.sends.partition_point(|sent| sent.time <= time),
        };
        let mut recompute = None;
        if let Some(index) = round.checked_sub(1)
            && self.sends[index].sender as usize != receiver
        {
            let start = self.sends[index].time;
            let until = self.until(index);
            let earlier = at > 0 && times[at - 1] >= start;
            let equal = times.get(at) == Some(&time);
            if !earlier && !equal {
                let latency = time - start;
                match times.get(at).copied().filter(|old| *old < until) {
                    Some(old) => {
                        // An earlier receipt than the one counted: it replaces it.
                        self.count(receiver, old - start, false);
                        self.count(receiver, latency, true);
                        if old - start == self.sends[index].max {
                            recompute = Some(index);
                        }
                    }
                    None => {
                        self.count(receiver, latency, true);
                        let received = self.sends[index].received + 1;
                        self.set_received(index, received);
                        if latency > self.sends[index].max {
                            self.set_max(index, latency);
                        }
                    }
                }
            }
        }
        self.receipts[receiver].insert(at, time);
        if let Some(index) = recompute {
            self.recompute_max(index);
        }
    }

    /// A sent-event: a new round, which may split the window of the one before.
    fn send(&mut self, time: i64, seq: u64, sender: u32, message: &str) {
        let at = match self.sends.last() {
            Some(last) if (last.time, last.seq) < (time, seq) => self.sends.len(),
            _ => self
                .sends
                .partition_point(|sent| (sent.time, sent.seq) < (time, seq)),
        };
        let old_until = self.sends.get(at).map_or(i64::MAX, |next| next.time);
        self.sends.insert(
            at,
            Sent {
                time,
                seq,
                sender,
                message: message.into(),
                received: 0,
                max: -1,
            },
        );
        if self.by_received.is_empty() {
            self.by_received.push(0);
        }
        self.by_received[0] += 1;
        if self.sent_by.len() <= sender as usize {
            self.sent_by.resize(sender as usize + 1, 0);
        }
        self.sent_by[sender as usize] += 1;
        // The round before now ends at `time`: receipts from `time` on leave it.
        if let Some(previous) = at.checked_sub(1) {
            let (start, origin) = (self.sends[previous].time, self.sends[previous].sender);
            let mut left = 0;
            for receiver in 0..self.receipts.len() {
                if receiver == origin as usize {
                    continue;
                }
                if let Some(first) = self.first_in(receiver, start, old_until)
                    && first >= time
                {
                    self.count(receiver, first - start, false);
                    left += 1;
                }
            }
            if left > 0 {
                let received = self.sends[previous].received - left;
                self.set_received(previous, received);
                self.recompute_max(previous);
            }
        }
        let until = self.until(at);
        let (mut received, mut max) = (0, -1);
        for receiver in 0..self.receipts.len() {
            if receiver == sender as usize {
                continue;
            }
            if let Some(first) = self.first_in(receiver, time, until) {
                self.count(receiver, first - time, true);
                received += 1;
                max = max.max(first - time);
            }
        }
        self.set_received(at, received);
        self.set_max(at, max);
    }

    /// Rounds whose every other sender of the run (`senders` in all) received them.
    fn complete(&self, senders: usize) -> u64 {
        senders
            .checked_sub(1)
            .and_then(|all| self.by_received.get(all))
            .copied()
            .unwrap_or(0)
    }
}

/// One problem round's winner reports, and what they add up to.
#[derive(Debug, Default, Clone)]
struct Span {
    /// (time, sender, named winner id), in arrival order.
    reports: Vec<(i64, u32, u32)>,
    /// The first winner named (`u32::MAX`: none yet).
    first: u32,
    /// Whether another winner was named too.
    disagrees: bool,
}

impl Span {
    const EMPTY: Span = Span {
        reports: Vec::new(),
        first: u32::MAX,
        disagrees: false,
    };

    fn of(reports: Vec<(i64, u32, u32)>) -> Span {
        let mut span = Span::EMPTY;
        for &(_, _, name) in &reports {
            span.name(name);
        }
        span.reports = reports;
        span
    }

    fn name(&mut self, name: u32) {
        if self.first == u32::MAX {
            self.first = name;
        } else if self.first != name {
            self.disagrees = true;
        }
    }

    fn has_winners(&self) -> bool {
        self.first != u32::MAX
    }

    fn counts(&self) -> (usize, usize) {
        (usize::from(self.has_winners()), usize::from(self.disagrees))
    }
}

/// `BLOCK_WINNER_FOUND` reports by problem round: each round keeps its own, so a
/// report arriving late costs a search among the rounds, not a shift of them all.
#[derive(Debug, Default)]
struct Winners {
    /// Sorted times of `RA_NEW_PROBLEM_SENT`.
    problems: Vec<i64>,
    /// `spans[k]`: problem round k (0: before the first problem); one more than
    /// there are problems.
    spans: Vec<Span>,
    names: Vec<Arc<str>>,
    name_ids: HashMap<Arc<str>, u32>,
    with_winners: usize,
    disagreeing: usize,
}

impl Winners {
    fn account(&mut self, (with, disagree): (usize, usize), sign: isize) {
        self.with_winners = self.with_winners.wrapping_add_signed(sign * with as isize);
        self.disagreeing = self
            .disagreeing
            .wrapping_add_signed(sign * disagree as isize);
    }

    /// The problem round a report at `time` belongs to.
    fn round_of(&self, time: i64) -> usize {
        match self.problems.last() {
            Some(last) if *last <= time => self.problems.len(),
            _ => self.problems.partition_point(|problem| *problem <= time),
        }
    }

    fn winner(&mut self, time: i64, sender: u32, name: &str) {
        if self.spans.is_empty() {
            self.spans.push(Span::EMPTY);
        }
        let name = match self.name_ids.get(name) {
            Some(id) => *id,
            None => {
                let id = self.names.len() as u32;
                let name: Arc<str> = name.into();
                self.names.push(name.clone());
                self.name_ids.insert(name, id);
                id
            }
        };
        let round = self.round_of(time);
        let before = self.spans[round].counts();
        let span = &mut self.spans[round];
        span.reports.push((time, sender, name));
        span.name(name);
        let after = span.counts();
        self.account(before, -1);
        self.account(after, 1);
    }

    fn problem(&mut self, time: i64) {
        if self.spans.is_empty() {
            self.spans.push(Span::EMPTY);
        }
        let round = self.problems.partition_point(|problem| *problem <= time);
        self.problems.insert(round, time);
        // Round `round` is split at `time`: its reports go to either half.
        let old = std::mem::take(&mut self.spans[round]);
        self.account(old.counts(), -1);
        let (before, after): (Vec<_>, Vec<_>) =
            old.reports.into_iter().partition(|report| report.0 < time);
        let (before, after) = (Span::of(before), Span::of(after));
        self.account(before.counts(), 1);
        self.account(after.counts(), 1);
        self.spans[round] = before;
        self.spans.insert(round + 1, after);
    }
}

/// One run's analysis, kept current.
#[derive(Debug, Default)]
pub struct LiveAnalysis {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    /// Sender ids in name order.
    sorted: Vec<u32>,
    nodes: Vec<Node>,
    kinds: [Kind; 3],
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
    fn sender_id(&mut self, sender: &str) -> u32 {
        if let Some(id) = self.ids.get(sender) {
            return *id;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = sender.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        let at = self
            .sorted
            .partition_point(|other| *self.names[*other as usize] < *sender);
        self.sorted.insert(at, id);
        id
    }

    /// Takes one stored report of the run (any order; seqs increase with arrival).
    pub fn add(&mut self, report: &Report) {
        self.reports += 1;
        let sender = self.sender_id(&report.sender);
        let time = report.time_unix_nano;
        if self.nodes.len() <= sender as usize {
            self.nodes.push(Node {
                reports: 0,
                first: time,
                latest: (i64::MIN, 0),
                last_event: report.event,
                last_message: String::new(),
                counts: [0; EVENT_SLOTS],
                phases: [i64::MAX; SYNC_PHASES.len()],
            });
        }
        let node = &mut self.nodes[sender as usize];
        node.reports += 1;
        node.first = node.first.min(time);
        if (time, report.seq) >= node.latest {
            node.latest = (time, report.seq);
            node.last_event = report.event;
            node.last_message.clone_from(&report.message);
        }
        node.counts[slot(report.event)] += 1;
        if let Some(phase) = SYNC_PHASES.iter().position(|phase| *phase == report.event) {
            node.phases[phase] = node.phases[phase].min(time);
        }
        for (index, (_, sent, received)) in ROUND_KINDS.iter().enumerate() {
            if report.event == *sent {
                self.kinds[index].send(time, report.seq, sender, &report.message);
            } else if report.event == *received {
                self.kinds[index].receive(sender, time);
            }
        }
        match report.event {
            Event::RaNewProblemSent => self.winners.problem(time),
            Event::BlockWinnerFound => self.winners.winner(time, sender, &report.message),
            _ => {}
        }
        self.timeline
            .add(time, report.seq, sender, slot(report.event));
    }

    /// How many reports it has taken.
    pub fn reports(&self) -> u64 {
        self.reports
    }

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
                    sender: self.names[*id as usize].to_string(),
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
                        .map(|(slot, count)| (event_of(slot).as_str_name(), *count))
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

    /// Round `number` (from 1) of `kind`, listing at most `shown` missing receivers
    /// and the `shown` slowest receivers' latencies.
    pub fn round(&self, kind: RoundKind, number: usize, shown: usize) -> Option<Round> {
        let state = &self.kinds[kind_index(kind)];
        let index = number.checked_sub(1)?;
        let sent = state.sends.get(index)?;
        let until = state.until(index);
        let mut latency_ms = BTreeMap::new();
        let mut missing = Vec::new();
        let mut missing_count = 0;
        for id in &self.sorted {
            if *id == sent.sender {
                continue;
            }
            let name = &self.names[*id as usize];
            match state.first_in(*id as usize, sent.time, until) {
                Some(time) => {
                    latency_ms.insert(name.to_string(), millis(sent.time, time));
                }
                None => {
                    missing_count += 1;
                    if missing.len() < shown {
                        missing.push(name.to_string());
                    }
                }
            }
        }
        let mut sorted: Vec<f64> = latency_ms.values().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let received_count = sorted.len();
        if received_count > shown {
            let threshold = sorted[received_count - shown];
            let mut room = shown
                - sorted[received_count - shown..]
                    .iter()
                    .filter(|ms| **ms > threshold)
                    .count();
            latency_ms.retain(|_, ms| {
                if *ms > threshold {
                    true
                } else if *ms == threshold && room > 0 {
                    room -= 1;
                    true
                } else {
                    false
                }
            });
        }
        Some(Round {
            kind,
            number,
            sender: self.names[sent.sender as usize].to_string(),
            sent_unix_nano: sent.time,
            message: sent.message.to_string(),
            latency_ms,
            missing,
            missing_count,
            received_count,
            p50_ms: percentile(&sorted, 0.50),
            p95_ms: percentile(&sorted, 0.95),
            max_ms: sorted.last().copied(),
        })
    }

    fn flagged(&self, kind: usize, index: usize) -> bool {
        (self.kinds[kind].sends[index].received as usize) < self.names.len().saturating_sub(1)
    }

    /// Every round, ordered by (time sent, kind), missing lists complete: what the
    /// fold gives (for tests and small runs).
    pub fn rounds(&self) -> Vec<Round> {
        let mut rounds: Vec<Round> = ROUND_KINDS
            .iter()
            .enumerate()
            .flat_map(|(index, (kind, ..))| {
                (1..=self.kinds[index].sends.len())
                    .filter_map(|number| self.round(*kind, number, usize::MAX))
            })
            .collect();
        rounds.sort_by_key(|round| (round.sent_unix_nano, round.kind));
        rounds
    }

    /// The newest `count` rounds of all kinds, oldest first by (time sent, kind).
    pub fn recent_rounds(&self, count: usize) -> Vec<Round> {
        // Each kind's newest `count` hold the newest `count` of all.
        let mut candidates: Vec<(i64, RoundKind, u64, usize)> = Vec::new();
        for (index, (kind, ..)) in ROUND_KINDS.iter().enumerate() {
            let sends = &self.kinds[index].sends;
            for number in sends.len().saturating_sub(count) + 1..=sends.len() {
                let sent = &sends[number - 1];
                candidates.push((sent.time, *kind, sent.seq, number));
            }
        }
        candidates.sort_unstable();
        let skip = candidates.len().saturating_sub(count);
        candidates[skip..]
            .iter()
            .filter_map(|(_, kind, _, number)| self.round(*kind, *number, MISSING_SHOWN))
            .collect()
    }

    /// Rounds newest first by number (of `kind`, or of every kind, the later kind
    /// first within a number), only flagged ones if asked, numbered below `before`.
    pub fn rounds_page(
        &self,
        kind: Option<RoundKind>,
        flagged: bool,
        before: Option<usize>,
        limit: usize,
    ) -> Page<Round> {
        let kinds: Vec<usize> = match kind {
            Some(kind) => vec![kind_index(kind)],
            None => vec![2, 1, 0],
        };
        let top = kinds
            .iter()
            .map(|kind| self.kinds[*kind].sends.len())
            .max()
            .unwrap_or(0);
        let start = before.map_or(top, |before| before.saturating_sub(1).min(top));
        let mut items = Vec::new();
        let mut next = None;
        for number in (1..=start).rev() {
            let matching: Vec<usize> = kinds
                .iter()
                .copied()
                .filter(|kind| {
                    number <= self.kinds[*kind].sends.len()
                        && (!flagged || self.flagged(*kind, number - 1))
                })
                .collect();
            if matching.is_empty() {
                continue;
            }
            if items.len() >= limit {
                next = Some(number + 1);
                break;
            }
            for kind in matching {
                items.extend(self.round(ROUND_KINDS[kind].0, number, MISSING_SHOWN));
            }
        }
        Page { items, next }
    }

    /// How many rounds, of every kind.
    pub fn rounds_total(&self) -> usize {
        self.kinds.iter().map(|kind| kind.sends.len()).sum()
    }

    /// How many winner rounds named more than one winner.
    pub fn winners_disagreeing(&self) -> usize {
        self.winners.disagreeing
    }

    /// How many rounds some other sender of the run never received.
    pub fn rounds_flagged(&self) -> usize {
        let senders = self.names.len();
        self.kinds
            .iter()
            .map(|kind| kind.sends.len() - kind.complete(senders) as usize)
            .sum()
    }

    fn winner_round(&self, round: usize) -> Option<WinnerRound> {
        let span = self.winners.spans.get(round)?;
        if !span.has_winners() {
            return None;
        }
        let mut by_winner: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for &(_, sender, name) in &span.reports {
            let senders = by_winner
                .entry(self.winners.names[name as usize].to_string())
                .or_default();
            let sender = &self.names[sender as usize];
            if !senders.iter().any(|named| **named == **sender) {
                senders.push(sender.to_string());
            }
        }
        by_winner.values_mut().for_each(|senders| senders.sort());
        Some(WinnerRound {
            round,
            agree: by_winner.len() <= 1,
            by_winner,
        })
    }

    /// Every problem round with winner reports, in round order.
    pub fn winners(&self) -> Vec<WinnerRound> {
        (0..self.winners.spans.len())
            .filter_map(|round| self.winner_round(round))
            .collect()
    }

    /// Winner rounds newest first, only disagreeing ones if asked, numbered below
    /// `before`.
    pub fn winners_page(
        &self,
        disagreeing: bool,
        before: Option<usize>,
        limit: usize,
    ) -> Page<WinnerRound> {
        let spans = &self.winners.spans;
        let start = before.map_or(spans.len(), |before| before.min(spans.len()));
        let mut items = Vec::new();
        let mut next = None;
        for round in (0..start).rev() {
            let span = &spans[round];
            if !span.has_winners() || (disagreeing && !span.disagrees) {
                continue;
            }
            if items.len() >= limit {
                next = Some(round + 1);
                break;
            }
            items.extend(self.winner_round(round));
        }
        Page { items, next }
    }

    /// The whole-run latency distribution of `kind` (ns).
    pub fn distribution(&self, kind: RoundKind) -> &Distribution {
        &self.kinds[kind_index(kind)].latencies
    }

    /// The whole-run distributions' figures, by kind.
    pub fn distributions(&self) -> BTreeMap<RoundKind, Summary> {
        ROUND_KINDS
            .iter()
            .map(|(kind, ..)| (*kind, self.distribution(*kind).summary()))
            .collect()
    }

    /// What `/api/analysis` shows: nodes, the newest `recent` rounds and winner
    /// rounds, the totals, and the whole-run distributions.
    pub fn summary(&self, recent: usize) -> Analysis {
        let mut winners = self.winners_page(false, None, recent).items;
        winners.reverse();
        Analysis {
            nodes: self.nodes(),
            rounds: self.recent_rounds(recent),
            rounds_total: self.rounds_total(),
            rounds_flagged: self.rounds_flagged(),
            winners,
            winners_total: self.winners.with_winners,
            winners_disagreeing: self.winners.disagreeing,
            distributions: self.distributions(),
        }
    }

    /// Every sender's sync phases and how it received rounds of `kind`, by name.
    pub fn receivers(&self, kind: RoundKind) -> Vec<Receiver> {
        let state = &self.kinds[kind_index(kind)];
        let nodes = self.nodes();
        self.sorted
            .iter()
            .zip(nodes)
            .map(|(id, node)| {
                let (received, median) = state.receiver(*id as usize);
                Receiver {
                    received,
                    missed: state.receivable(*id as usize).saturating_sub(received),
                    median_ms: median.map(|ns| ns / 1e6),
                    node,
                }
            })
            .collect()
    }

    /// The earliest and latest report time of the run.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.timeline.span()
    }

    /// Counts per sender and event in the window `from..to`, in about `buckets`
    /// buckets: (window, [(sender, [(event, counts)])]).
    pub fn timeline(&self, from: i64, to: i64, buckets: usize) -> (Window, Vec<SenderCounts>) {
        let window = self.timeline.window(from, to, buckets);
        let mut by_sender: BTreeMap<&str, SenderCounts> = BTreeMap::new();
        for (sender, slot, counts) in &window.counts {
            let name = &self.names[*sender as usize];
            let entry = by_sender.entry(name).or_insert_with(|| SenderCounts {
                sender: name.to_string(),
                total: 0,
                counts: BTreeMap::new(),
            });
            entry.total += counts.iter().sum::<u64>();
            entry
                .counts
                .insert(event_of(*slot).as_str_name(), counts.clone());
        }
        let mut senders: Vec<SenderCounts> = by_sender.into_values().collect();
        if !window.rest.is_empty() {
            senders.push(SenderCounts {
                sender: String::new(),
                total: window.rest.iter().flat_map(|(_, counts)| counts).sum(),
                counts: window
                    .rest
                    .iter()
                    .map(|(slot, counts)| (event_of(*slot).as_str_name(), counts.clone()))
                    .collect(),
            });
        }
        (window, senders)
    }

    /// The smallest and largest seq of the reports in `from..to` (see
    /// [`Timeline::seqs`]).
    pub fn timeline_seqs(&self, from: i64, to: i64) -> Option<(u64, u64)> {
        self.timeline.seqs(from, to)
    }
}

/// One sender as a receiver of one round kind (see [`LiveAnalysis::receivers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Its summary, sync phases included.
    pub node: NodeSummary,
    /// Rounds of the kind it received.
    pub received: u64,
    /// Rounds of the kind others sent that it never received.
    pub missed: u64,
    /// Its median latency, ms (within 0.4%).
    pub median_ms: Option<f64>,
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
