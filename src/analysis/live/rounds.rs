//! Rounds: per round kind, the authority's sends sorted by (time, seq) and every
//! receiver's receipt times sorted, from which a round's latencies are looked up on
//! demand; per round how many received it and its slowest latency; the whole-run
//! distribution of first-receipt latencies; and each sender as a receiver.

use super::{LiveAnalysis, MISSING_SHOWN, Page, kind_index};
use crate::analysis::distribution::{self, Distribution, Summary};
use crate::analysis::{NodeSummary, ROUND_KINDS, Round, RoundKind, millis, percentile};
use std::collections::BTreeMap;

/// One authority send: one round.
#[derive(Debug)]
struct AuthoritySend {
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
pub(super) struct KindRounds {
    /// Sorted by (time, seq); a round's number is its index + 1.
    sends: Vec<AuthoritySend>,
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
    pub(super) fn receive(&mut self, receiver: u32, time: i64) {
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
    pub(super) fn send(&mut self, time: i64, seq: u64, sender: u32, message: &str) {
        let at = match self.sends.last() {
            Some(last) if (last.time, last.seq) < (time, seq) => self.sends.len(),
            _ => self
                .sends
                .partition_point(|sent| (sent.time, sent.seq) < (time, seq)),
        };
        let old_until = self.sends.get(at).map_or(i64::MAX, |next| next.time);
        self.sends.insert(
            at,
            AuthoritySend {
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

impl LiveAnalysis {
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
            let name = self.senders.name(*id);
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
            sender: self.senders.name(sent.sender).to_string(),
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
        (self.kinds[kind].sends[index].received as usize) < self.senders.len().saturating_sub(1)
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

    /// How many rounds some other sender of the run never received.
    pub fn rounds_flagged(&self) -> usize {
        let senders = self.senders.len();
        self.kinds
            .iter()
            .map(|kind| kind.sends.len() - kind.complete(senders) as usize)
            .sum()
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
                Receiver {
                    received,
                    missed: state.receivable(*id as usize).saturating_sub(received),
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
    /// Rounds of the kind others sent that it never received.
    pub missed: u64,
    /// Its median latency, ms (within 0.4%).
    pub median_ms: Option<f64>,
}
