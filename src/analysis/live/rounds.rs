//! Rounds: per round kind, the authority's sends sorted by (time, seq) and every
//! receiver's receipt times sorted, from which a round's latencies are looked up on
//! demand; per round how many expected receivers missed it and its slowest
//! latency; the whole-run distribution of first-receipt latencies; and each sender
//! as a receiver.
//!
//! A receiver is expected in a round (and missing from it when it has no receipt in
//! the round's window) when it is not the round's sender, has received some round
//! of the kind, and its first report is strictly older than the send (see
//! [`Round::missing`]). Both conditions reach back: a node's first receipt of a
//! kind makes it expected in every round sent after its first report, and a report
//! older than a node's first moves its start back over earlier rounds. Each is one
//! range update of [`MissedCounts`] plus a correction for each of the node's own
//! sends in the range and the one round of the range it can have received, so a
//! report still costs O(log n) (plus its sender's own sends in the range, each
//! corrected once per kind).

use super::memory::{btree_bytes, reserve, vec_bytes};
use super::missed::MissedCounts;
use super::times::SortedTimes;
use super::{LiveAnalysis, MISSING_SHOWN, Page, kind_index, varint};
use crate::analysis::distribution::{self, Distribution, Summary};
use crate::analysis::{NodeSummary, ROUND_KINDS, Round, RoundKind, millis, percentile};
use std::collections::BTreeMap;

/// One authority send: one round.
#[derive(Debug)]
struct AuthoritySend {
    time: i64,
    seq: u64,
    /// The slowest of them, ns (-1: none).
    max: i64,
    /// Where its sender and message start in [`KindRounds::messages`].
    record: u64,
}

/// One round kind's state.
#[derive(Debug, Default)]
pub(super) struct KindRounds {
    /// Sorted by (time, seq); a round's number is its index + 1.
    sends: Vec<AuthoritySend>,
    /// Each send's sender id and message, one after another in arrival order: the
    /// id and the message's length as varints, then its bytes. One buffer, not an
    /// allocation a send, and a send's fixed part stays 32 bytes.
    messages: Vec<u8>,
    /// Per sender id, the sorted times of its received-events of this kind.
    receipts: Vec<SortedTimes>,
    latencies: Distribution,
    /// Per round (as `sends`), how many expected receivers have no receipt in its
    /// window.
    missed: MissedCounts,
    /// Per sender id as a receiver: its latencies, bucket (as the distribution's)
    /// → count, for its own median and how many rounds it received.
    by_receiver: Vec<BTreeMap<u32, u32>>,
    /// Per sender id, how many rounds of this kind it sent.
    sends_by: Vec<u32>,
    /// Per sender id that receives this kind, the (time, seq) of each round of this
    /// kind it sent, sorted (only a receiver's own sends are ever looked up; an
    /// authority that receives nothing keeps none).
    sent_by: Vec<Vec<(i64, u64)>>,
}

impl KindRounds {
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

    /// Estimated heap bytes by part.
    pub(super) fn heap_parts(&self) -> [(&'static str, usize); 6] {
        let receipts: usize = self.receipts.iter().map(SortedTimes::heap_bytes).sum();
        let sent_by: usize = self.sent_by.iter().map(vec_bytes).sum();
        let by_receiver: usize = self
            .by_receiver
            .iter()
            .map(|own| btree_bytes::<u32, u32>(own.len()))
            .sum();
        [
            ("receipts", receipts + vec_bytes(&self.receipts)),
            (
                "sends",
                vec_bytes(&self.sends) + vec_bytes(&self.messages) + vec_bytes(&self.sends_by),
            ),
            ("sent_by", sent_by + vec_bytes(&self.sent_by)),
            ("missed", self.missed.heap_bytes()),
            ("by_receiver", by_receiver + vec_bytes(&self.by_receiver)),
            ("latency maxima", self.latencies.heap_bytes()),
        ]
    }

    /// The sender id of `sent`.
    fn sender(&self, sent: &AuthoritySend) -> u32 {
        let mut at = sent.record as usize;
        varint::read(&self.messages, &mut at).unwrap_or_default() as u32
    }

    /// The message of `sent` (whole UTF-8: it was stored from a `str`).
    fn message(&self, sent: &AuthoritySend) -> String {
        let mut at = sent.record as usize;
        varint::read(&self.messages, &mut at);
        let len = varint::read(&self.messages, &mut at).unwrap_or_default() as usize;
        String::from_utf8_lossy(&self.messages[at..at + len]).into_owned()
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

    /// Whether `receiver` has received any round of this kind.
    fn receives(&self, receiver: usize) -> bool {
        self.receipts
            .get(receiver)
            .is_some_and(|times| !times.is_empty())
    }

    /// Whether `receiver`, whose first report was at `first`, is expected in a
    /// round sent at `sent` (by another sender).
    fn expects(&self, receiver: usize, first: i64, sent: i64) -> bool {
        first < sent && self.receives(receiver)
    }

    /// The first round sent after `first`: the first a node whose first report was
    /// at `first` can miss.
    fn after(&self, first: i64) -> usize {
        self.sends.partition_point(|sent| sent.time <= first)
    }

    /// Whether `receiver` (first report at `first`) missed round `index`.
    fn misses(&self, receiver: usize, first: i64, index: usize) -> bool {
        let sent = &self.sends[index];
        self.sender(sent) as usize != receiver
            && self.expects(receiver, first, sent.time)
            && self
                .first_in(receiver, sent.time, self.until(index))
                .is_none()
    }

    /// How many rounds `receiver` (first report at `first`, `received` rounds
    /// received) missed: of the rounds sent after its first report, those it
    /// neither sent nor received, once it receives the kind at all.
    fn missed_by(&self, receiver: usize, first: i64, received: u64) -> u64 {
        if !self.receives(receiver) {
            return 0;
        }
        let from = self.after(first);
        let own = self.sent_by.get(receiver).map_or(0, |sent| {
            sent.len() - sent.partition_point(|(time, _)| *time <= first)
        });
        // Of the rounds before `from`, only the one whose window holds its first
        // report can have reached it: its receipts are all at or after `first`.
        let before = from.checked_sub(1).is_some_and(|index| {
            let sent = &self.sends[index];
            self.sender(sent) as usize != receiver
                && self
                    .first_in(receiver, sent.time, self.until(index))
                    .is_some()
        });
        (self.sends.len() - from - own) as u64 - (received - u64::from(before))
    }

    /// `receiver` (first report at `first`) is now expected in rounds `from..to`,
    /// where it was not before: one more missing in each, less where it is not
    /// after all. `received` is the round of the range it can have received (the
    /// only one); its own sends in the range are found from `sent_by`.
    fn expect_in(
        &mut self,
        receiver: usize,
        first: i64,
        from: usize,
        to: usize,
        received: Option<usize>,
    ) {
        if from >= to {
            return;
        }
        self.missed.add_range(from, to, 1);
        let (low, high) = (self.sends[from].time, self.sends[to - 1].time);
        let mut exceptions: Vec<usize> = received.into_iter().collect();
        if let Some(sent) = self.sent_by.get(receiver) {
            let start = sent.partition_point(|(time, _)| *time < low);
            let end = sent.partition_point(|(time, _)| *time <= high);
            exceptions.extend(
                sent[start..end]
                    .iter()
                    .map(|key| self.sends.partition_point(|s| (s.time, s.seq) < *key)),
            );
        }
        exceptions.sort_unstable();
        exceptions.dedup();
        for index in exceptions {
            if (from..to).contains(&index) && !self.misses(receiver, first, index) {
                self.missed.add_at(index, -1);
            }
        }
    }

    /// `receiver`'s first report moved back from `old` to `new`: it is now
    /// expected in the rounds sent in `new + 1..=old`, if it receives the kind.
    pub(super) fn first_moved(&mut self, receiver: u32, old: i64, new: i64) {
        let receiver = receiver as usize;
        if !self.receives(receiver) {
            return;
        }
        let (from, to) = (self.after(new), self.after(old));
        // Its receipts are all at or after `old`: only the last round of the range
        // can hold one in its window.
        self.expect_in(receiver, new, from, to, to.checked_sub(1));
    }

    /// The end of round `index`'s window: the next send's time.
    fn until(&self, index: usize) -> i64 {
        self.sends.get(index + 1).map_or(i64::MAX, |next| next.time)
    }

    /// `receiver`'s first receipt in `from..until`.
    fn first_in(&self, receiver: usize, from: i64, until: i64) -> Option<i64> {
        let times = self.receipts.get(receiver)?;
        if times.last().is_none_or(|last| last < from) {
            return None; // the usual case for a new round: nothing received yet
        }
        times.first_from(from).filter(|time| *time < until)
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
        let origin = self.sender(sent) as usize;
        let until = self.until(index);
        let max = (0..self.receipts.len())
            .filter(|receiver| *receiver != origin)
            .filter_map(|receiver| self.first_in(receiver, sent.time, until))
            .map(|time| time - sent.time)
            .max()
            .unwrap_or(-1);
        self.set_max(index, max);
    }

    /// A received-event of `receiver` (whose first report was at `first`) at
    /// `time`.
    pub(super) fn receive(&mut self, receiver: u32, time: i64, first: i64) {
        let receiver = receiver as usize;
        if self.receipts.len() <= receiver {
            self.receipts
                .resize_with(receiver + 1, SortedTimes::default);
        }
        let times = &self.receipts[receiver];
        let receives = !times.is_empty();
        let round = match self.sends.last() {
            Some(last) if last.time <= time => self.sends.len(),
            _ => self.sends.partition_point(|sent| sent.time <= time),
        };
        let mut recompute = None;
        if let Some(index) = round.checked_sub(1)
            && self.sender(&self.sends[index]) as usize != receiver
        {
            let start = self.sends[index].time;
            let until = self.until(index);
            let earlier = times
                .last_before(time)
                .is_some_and(|before| before >= start);
            let next = times.first_from(time);
            if !earlier && next != Some(time) {
                let latency = time - start;
                match next.filter(|old| *old < until) {
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
                        if receives && first < start {
                            self.missed.add_at(index, -1);
                        }
                        if latency > self.sends[index].max {
                            self.set_max(index, latency);
                        }
                    }
                }
            }
        }
        self.receipts[receiver].insert(time);
        if let Some(index) = recompute {
            self.recompute_max(index);
        }
        if !receives {
            // Its first receipt of the kind: its own sends are looked up from now
            // on, and it is expected in every round sent after its first report.
            if self.sends_by.get(receiver).is_some_and(|sent| *sent > 0) {
                if self.sent_by.len() <= receiver {
                    self.sent_by.resize_with(receiver + 1, Vec::new);
                }
                self.sent_by[receiver] = (self.sends.iter())
                    .filter(|sent| self.sender(sent) as usize == receiver)
                    .map(|sent| (sent.time, sent.seq))
                    .collect();
            }
            let from = self.after(first);
            self.expect_in(
                receiver,
                first,
                from,
                self.sends.len(),
                round.checked_sub(1),
            );
        }
    }

    /// A sent-event: a new round, which may split the window of the one before.
    /// `firsts` gives each sender id's first report time.
    pub(super) fn send(
        &mut self,
        time: i64,
        seq: u64,
        sender: u32,
        message: &str,
        firsts: impl Fn(usize) -> i64,
    ) {
        let at = match self.sends.last() {
            Some(last) if (last.time, last.seq) < (time, seq) => self.sends.len(),
            _ => self
                .sends
                .partition_point(|sent| (sent.time, sent.seq) < (time, seq)),
        };
        let old_until = self.sends.get(at).map_or(i64::MAX, |next| next.time);
        let record = self.messages.len() as u64;
        reserve(&mut self.messages, 10 + message.len());
        varint::push(&mut self.messages, sender.into());
        varint::push(&mut self.messages, message.len() as u64);
        self.messages.extend_from_slice(message.as_bytes());
        reserve(&mut self.sends, 1);
        self.sends.insert(
            at,
            AuthoritySend {
                time,
                seq,
                max: -1,
                record,
            },
        );
        self.missed.insert(at, 0);
        let sender_index = sender as usize;
        if self.sends_by.len() <= sender_index {
            self.sends_by.resize(sender_index + 1, 0);
        }
        self.sends_by[sender_index] += 1;
        if self.receives(sender_index) {
            if self.sent_by.len() <= sender_index {
                self.sent_by.resize_with(sender_index + 1, Vec::new);
            }
            let own = &mut self.sent_by[sender_index];
            let key = (time, seq);
            match own.last() {
                Some(last) if *last > key => {
                    let position = own.partition_point(|other| *other < key);
                    own.insert(position, key);
                }
                _ => own.push(key),
            }
        }
        // The round before now ends at `time`: receipts from `time` on leave it,
        // and their receivers, if expected there, missed it.
        if let Some(previous) = at.checked_sub(1) {
            let start = self.sends[previous].time;
            let origin = self.sender(&self.sends[previous]);
            let (mut left, mut missed) = (0, 0);
            for receiver in 0..self.receipts.len() {
                if receiver == origin as usize {
                    continue;
                }
                match self.first_in(receiver, start, old_until) {
                    Some(first) if first < time => continue,
                    Some(first) => {
                        self.count(receiver, first - start, false);
                        left += 1;
                    }
                    None => {}
                }
                if self.expects(receiver, firsts(receiver), start) {
                    missed += 1;
                }
            }
            self.missed.set(previous, missed);
            if left > 0 {
                self.recompute_max(previous);
            }
        }
        let until = self.until(at);
        let (mut missed, mut max) = (0, -1);
        for receiver in 0..self.receipts.len() {
            if receiver == sender as usize {
                continue;
            }
            match self.first_in(receiver, time, until) {
                Some(first) => {
                    self.count(receiver, first - time, true);
                    max = max.max(first - time);
                }
                None if self.expects(receiver, firsts(receiver), time) => missed += 1,
                None => {}
            }
        }
        self.missed.set(at, missed);
        self.set_max(at, max);
    }
}

impl LiveAnalysis {
    /// Round `number` (from 1) of `kind`, listing at most `shown` missing receivers
    /// and the `shown` slowest receivers' latencies.
    pub fn round(&self, kind: RoundKind, number: usize, shown: usize) -> Option<Round> {
        let state = &self.kinds[kind_index(kind)];
        let index = number.checked_sub(1)?;
        let sent = state.sends.get(index)?;
        let origin = state.sender(sent);
        let until = state.until(index);
        let mut latency_ms = BTreeMap::new();
        let mut missing = Vec::new();
        let mut missing_count = 0;
        for id in &self.sorted {
            if *id == origin {
                continue;
            }
            let name = self.senders.name(*id);
            let first = self.nodes[*id as usize].first();
            match state.first_in(*id as usize, sent.time, until) {
                Some(time) => {
                    latency_ms.insert(name.to_string(), millis(sent.time, time));
                }
                None if state.expects(*id as usize, first, sent.time) => {
                    missing_count += 1;
                    if missing.len() < shown {
                        missing.push(name.to_string());
                    }
                }
                None => {}
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
            sender: self.senders.name(origin).to_string(),
            sent_unix_nano: sent.time,
            message: state.message(sent),
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
        self.kinds[kind].missed.get(index) > 0
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

    /// How many rounds some node is missing from (see [`Round::missing`]).
    pub fn rounds_flagged(&self) -> usize {
        self.kinds.iter().map(|kind| kind.missed.positive()).sum()
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

    /// Every sender's sync phases and how it received rounds of `kind`, by name.
    pub fn receivers(&self, kind: RoundKind) -> Vec<Receiver> {
        let state = &self.kinds[kind_index(kind)];
        let nodes = self.nodes();
        self.sorted
            .iter()
            .zip(nodes)
            .map(|(id, node)| {
                let (received, median) = state.receiver(*id as usize);
                let first = self.nodes[*id as usize].first();
                Receiver {
                    received,
                    missed: state.missed_by(*id as usize, first, received),
                    median_ms: median.map(|ns| ns / 1e6),
                    node,
                }
            })
            .collect()
    }
}

/// One sender as a receiver of one round kind (see [`LiveAnalysis::receivers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Its summary, sync phases included.
    pub node: NodeSummary,
    /// Rounds of the kind it received.
    pub received: u64,
    /// Rounds of the kind it is missing from (see [`Round::missing`]): none when
    /// it never received the kind; else those sent by others after its first
    /// report that it never received.
    pub missed: u64,
    /// Its median latency, ms (within 0.4%).
    pub median_ms: Option<f64>,
}
