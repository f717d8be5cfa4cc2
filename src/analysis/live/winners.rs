//! Winner agreement: `BLOCK_WINNER_FOUND` reports kept by problem round, so a late
//! report costs a search among the rounds, and how many rounds disagree. A round's
//! reports are packed in [`varint`]s: about 6 bytes a report (its time less the
//! round's first report's, its sender, the winner it names) where a tuple took 16
//! and its vector's spare room as many again, and a round 24 bytes besides.

use super::memory::{reserve, vec_bytes};
use super::{LiveAnalysis, Page, varint};
use crate::analysis::WinnerRound;
use crate::intern::Interner;
use std::collections::BTreeMap;

/// One winner report: (time, sender id, named winner id).
type WinnerReport = (i64, u32, u32);

/// One problem round's winner reports in arrival order, packed: the first
/// report's time (8 bytes), whether they name more than one winner (1 byte), then
/// per report the zigzag varint of its time less the first's, and its sender and
/// named winner ids as varints. No bytes: no report.
#[derive(Debug, Default, Clone)]
struct WinnerReports(Vec<u8>);

/// Bytes before the first report: its time, and whether the round disagrees.
const HEADER: usize = 9;

impl WinnerReports {
    const EMPTY: WinnerReports = WinnerReports(Vec::new());

    /// A round of `reports`, packed without spare room.
    fn of(reports: impl Iterator<Item = WinnerReport>) -> WinnerReports {
        let mut in_round = WinnerReports::EMPTY;
        reports.for_each(|report| in_round.push(report));
        in_round.0.shrink_to_fit();
        in_round
    }

    fn push(&mut self, (time, sender, name): WinnerReport) {
        let first = self.iter().next().map(|(.., first)| first);
        match first {
            None => {
                self.0.extend(time.to_le_bytes());
                self.0.push(0);
            }
            Some(first) if first != name => self.0[HEADER - 1] = 1,
            Some(_) => {}
        }
        let base = self.base();
        varint::push(&mut self.0, varint::zigzag(time.wrapping_sub(base)));
        varint::push(&mut self.0, sender.into());
        varint::push(&mut self.0, name.into());
    }

    fn base(&self) -> i64 {
        let first: [u8; 8] = self
            .0
            .get(..8)
            .and_then(|bytes| bytes.try_into().ok())
            .unwrap_or_default();
        i64::from_le_bytes(first)
    }

    /// The reports, in arrival order.
    fn iter(&self) -> impl Iterator<Item = WinnerReport> + '_ {
        let base = self.base();
        let mut at = HEADER;
        std::iter::from_fn(move || {
            let time = base.wrapping_add(varint::unzigzag(varint::read(&self.0, &mut at)?));
            let sender = varint::read(&self.0, &mut at)? as u32;
            let name = varint::read(&self.0, &mut at)? as u32;
            Some((time, sender, name))
        })
    }

    fn has_winners(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether its reports name more than one winner.
    fn disagrees(&self) -> bool {
        self.0.get(HEADER - 1) == Some(&1)
    }

    fn counts(&self) -> (usize, usize) {
        (
            usize::from(self.has_winners()),
            usize::from(self.disagrees()),
        )
    }
}

/// `BLOCK_WINNER_FOUND` reports by problem round: each round keeps its own, so a
/// report arriving late costs a search among the rounds, not a shift of them all.
#[derive(Debug, Default)]
pub(super) struct Winners {
    /// Sorted times of `RA_NEW_PROBLEM_SENT`.
    problems: Vec<i64>,
    /// `by_round[k]`: problem round k (0: before the first problem); one more than
    /// there are problems.
    by_round: Vec<WinnerReports>,
    /// The winner ids named.
    names: Interner,
    /// Problem rounds with winner reports.
    pub(super) with_winners: usize,
    /// Problem rounds whose reports name more than one winner.
    pub(super) disagreeing: usize,
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

    /// Estimated heap bytes.
    pub(super) fn heap_bytes(&self) -> usize {
        let reports: usize = self.by_round.iter().map(|round| vec_bytes(&round.0)).sum();
        reports + vec_bytes(&self.problems) + vec_bytes(&self.by_round)
    }

    /// Takes `sender`'s `BLOCK_WINNER_FOUND` at `time` naming winner `name`.
    pub(super) fn winner(&mut self, time: i64, sender: u32, name: &str) {
        if self.by_round.is_empty() {
            self.by_round.push(WinnerReports::EMPTY);
        }
        let name = self.names.intern(name);
        let round = self.round_of(time);
        let before = self.by_round[round].counts();
        let in_round = &mut self.by_round[round];
        in_round.push((time, sender, name));
        let after = in_round.counts();
        self.account(before, -1);
        self.account(after, 1);
    }

    /// Takes an authority's `RA_NEW_PROBLEM_SENT` at `time`: a new problem round.
    pub(super) fn problem(&mut self, time: i64) {
        if self.by_round.is_empty() {
            self.by_round.push(WinnerReports::EMPTY);
        }
        let round = self.problems.partition_point(|problem| *problem <= time);
        reserve(&mut self.problems, 1);
        self.problems.insert(round, time);
        // Round `round` is split at `time`: its reports go to either half.
        let old = std::mem::take(&mut self.by_round[round]);
        self.account(old.counts(), -1);
        let before = WinnerReports::of(old.iter().filter(|report| report.0 < time));
        let after = WinnerReports::of(old.iter().filter(|report| report.0 >= time));
        self.account(before.counts(), 1);
        self.account(after.counts(), 1);
        self.by_round[round] = before;
        reserve(&mut self.by_round, 1);
        self.by_round.insert(round + 1, after);
    }
}

impl LiveAnalysis {
    /// How many winner rounds named more than one winner.
    pub fn winners_disagreeing(&self) -> usize {
        self.winners.disagreeing
    }

    fn winner_round(&self, round: usize) -> Option<WinnerRound> {
        let in_round = self.winners.by_round.get(round)?;
        if !in_round.has_winners() {
            return None;
        }
        let mut by_winner: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, sender, name) in in_round.iter() {
            let senders = by_winner
                .entry(self.winners.names.name(name).to_string())
                .or_default();
            let sender = self.senders.name(sender);
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
        (0..self.winners.by_round.len())
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
        let by_round = &self.winners.by_round;
        let start = before.map_or(by_round.len(), |before| before.min(by_round.len()));
        let mut items = Vec::new();
        let mut next = None;
        for round in (0..start).rev() {
            let in_round = &by_round[round];
            if !in_round.has_winners() || (disagreeing && !in_round.disagrees()) {
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
}
