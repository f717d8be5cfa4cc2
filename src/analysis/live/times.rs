//! One receiver's receipt times of one round kind: the distinct times, sorted, in
//! blocks of at most [`BLOCK`] times each (a repeated time adds nothing: every
//! question asked of them is about the first time from, or the last before, some
//! time). A block keeps its first and last time and, between them, the gap from
//! each time to the next as a LEB128 varint: exact nanoseconds in 1 byte for gaps
//! under 128 ns, 4 bytes under 0.27 s, 5 under 34 s, 10 at most, so a receipt of a
//! node that receives a round every second or so costs about 5 bytes, not 8.
//!
//! A time arriving in order is appended to the last block; an old one (a node
//! replaying its queue after a partition) goes into the one block that holds its
//! place, which is decoded, re-encoded and split in two when it reaches
//! 2·[`BLOCK`] times, where one sorted vector would move every newer time. Blocks
//! are found by binary search on their first and last times, and a time within a
//! block by decoding from whichever end is nearer (varints can be read backwards:
//! only a value's last byte lacks the high bit). So a receipt or a question costs
//! O(log n) plus at most [`BLOCK`] decoded gaps, whatever the arrival order.

use super::memory::vec_bytes;
use super::varint;

/// Times the last block takes before a new one starts; a block in the middle
/// grows to twice this and is then split in two.
const BLOCK: usize = 256;

/// Distinct sorted times: the first and last, and the gaps between them.
#[derive(Debug)]
struct Block {
    first: i64,
    last: i64,
    /// How many times.
    len: u32,
    /// The gap (> 0) from each time to the next, [`varint`]s.
    gaps: Vec<u8>,
}

impl Block {
    /// A block of the sorted distinct `times` (at least one), without spare room.
    fn of(times: &[i64]) -> Block {
        let mut gaps = Vec::new();
        for pair in times.windows(2) {
            varint::push(&mut gaps, pair[1].wrapping_sub(pair[0]) as u64);
        }
        gaps.shrink_to_fit();
        Block {
            first: times[0],
            last: times[times.len() - 1],
            len: times.len() as u32,
            gaps,
        }
    }

    /// Appends `time`, later than every time it holds.
    fn push(&mut self, time: i64) {
        varint::push(&mut self.gaps, time.wrapping_sub(self.last) as u64);
        self.last = time;
        self.len += 1;
    }

    /// Its times, earliest first.
    fn times(&self) -> impl Iterator<Item = i64> + '_ {
        let (mut time, mut at) = (self.first, 0);
        std::iter::once(self.first).chain(std::iter::from_fn(move || {
            time = time.wrapping_add(varint::read(&self.gaps, &mut at)? as i64);
            Some(time)
        }))
    }

    /// Its times, latest first.
    fn times_back(&self) -> impl Iterator<Item = i64> + '_ {
        let (mut time, mut end) = (self.last, self.gaps.len());
        std::iter::once(self.last).chain(std::iter::from_fn(move || {
            time = time.wrapping_sub(varint::read_back(&self.gaps, &mut end)? as i64);
            Some(time)
        }))
    }

    /// Its latest time before `time`, and its earliest at or after it.
    fn around(&self, time: i64) -> (Option<i64>, Option<i64>) {
        if time <= self.first {
            return (None, Some(self.first));
        }
        if time > self.last {
            return (Some(self.last), None);
        }
        // first < time <= last: both answers are in the block.
        let (from_first, to_last) = (
            i128::from(time) - i128::from(self.first),
            i128::from(self.last) - i128::from(time),
        );
        let (mut before, mut after) = (None, None);
        if from_first <= to_last {
            for other in self.times() {
                if other >= time {
                    after = Some(other);
                    break;
                }
                before = Some(other);
            }
        } else {
            for other in self.times_back() {
                if other < time {
                    before = Some(other);
                    break;
                }
                after = Some(other);
            }
        }
        (before, after)
    }
}

/// Distinct sorted times in blocks: every block is non-empty, and every time of a
/// block is before every time of the next.
#[derive(Debug, Default)]
pub(super) struct SortedTimes {
    blocks: Vec<Block>,
}

impl SortedTimes {
    /// Whether it holds no time.
    pub(super) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The latest time.
    pub(super) fn last(&self) -> Option<i64> {
        self.blocks.last().map(|block| block.last)
    }

    /// The earliest time at or after `from`.
    pub(super) fn first_from(&self, from: i64) -> Option<i64> {
        // Blocks before this one hold only times before `from`.
        let index = self.blocks.partition_point(|block| block.last < from);
        self.blocks.get(index)?.around(from).1
    }

    /// The latest time before `until`.
    pub(super) fn last_before(&self, until: i64) -> Option<i64> {
        // Blocks from this one on hold only times at or after `until`.
        let index = self.blocks.partition_point(|block| block.first < until);
        self.blocks[index.checked_sub(1)?].around(until).0
    }

    /// Heap bytes, spare room included.
    pub(super) fn heap_bytes(&self) -> usize {
        let gaps: usize = self.blocks.iter().map(|block| vec_bytes(&block.gaps)).sum();
        gaps + vec_bytes(&self.blocks)
    }

    /// Adds `time` (nothing if it holds it already).
    pub(super) fn insert(&mut self, time: i64) {
        let Some(last) = self.blocks.last_mut() else {
            return self.blocks.push(Block::of(&[time]));
        };
        if last.last < time {
            // In order: the usual case.
            if (last.len as usize) < BLOCK {
                last.push(time);
            } else {
                last.gaps.shrink_to_fit();
                self.blocks.push(Block::of(&[time]));
            }
            return;
        }
        if last.last == time {
            return;
        }
        // The first block whose last time is at or after `time` (the last block is).
        let index = self.blocks.partition_point(|block| block.last < time);
        let mut times: Vec<i64> = self.blocks[index].times().collect();
        let Err(at) = times.binary_search(&time) else {
            return;
        };
        times.insert(at, time);
        if times.len() >= 2 * BLOCK {
            self.blocks[index] = Block::of(&times[..BLOCK]);
            self.blocks.insert(index + 1, Block::of(&times[BLOCK..]));
        } else {
            self.blocks[index] = Block::of(&times);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: one sorted vector of distinct times.
    fn check(times: &SortedTimes, sorted: &[i64], probe: i64) {
        let at = sorted.partition_point(|time| *time < probe);
        assert_eq!(
            times.first_from(probe),
            sorted.get(at).copied(),
            "from {probe}"
        );
        let before = at.checked_sub(1).map(|at| sorted[at]);
        assert_eq!(times.last_before(probe), before, "before {probe}");
        assert_eq!(times.last(), sorted.last().copied());
        assert_eq!(times.is_empty(), sorted.is_empty());
    }

    #[test]
    fn agrees_with_one_sorted_vector_in_any_arrival_order() {
        const SECOND: i64 = 1_000_000_000;
        // In order, reversed, interleaved, with repeats, with gaps of nanoseconds
        // to seconds and the extremes: blocks fill, split and take repeats at
        // their edges, and gaps take 1 to 10 bytes.
        let orders: [Vec<i64>; 6] = [
            (0..3_000).collect(),
            (0..3_000).rev().collect(),
            (0..3_000).map(|n| (n * 7_919) % 3_001).collect(),
            (0..3_000).map(|n| (n % 5) * 100 + n / 1_000).collect(),
            (0..3_000)
                .map(|n| (n * 7_919) % 3_001 * (SECOND + 7) + (n % 3) * 130)
                .collect(),
            (0..3_000)
                .map(|n| match n % 4 {
                    0 => i64::MIN + n,
                    1 => i64::MAX - n,
                    _ => (n * 104_729 % 3_001) * 3 * SECOND,
                })
                .collect(),
        ];
        for order in orders {
            let mut times = SortedTimes::default();
            let mut sorted = Vec::new();
            check(&times, &sorted, 0);
            let mut probes = vec![i64::MIN, i64::MAX, -1, 0, 250, 1_500, 3_001];
            for (n, time) in order.iter().enumerate() {
                times.insert(*time);
                if let Err(at) = sorted.binary_search(time) {
                    sorted.insert(at, *time);
                }
                probes.extend([*time, time.saturating_sub(1), time.saturating_add(1)]);
                if n % 97 == 0 {
                    for probe in &probes {
                        check(&times, &sorted, *probe);
                    }
                }
            }
            for probe in probes.iter().chain(&(-1..=3_001).collect::<Vec<_>>()) {
                check(&times, &sorted, *probe);
            }
            assert!(
                times
                    .blocks
                    .iter()
                    .all(|block| (block.len as usize) < 2 * BLOCK)
            );
            let flat: Vec<i64> = times.blocks.iter().flat_map(Block::times).collect();
            assert_eq!(flat, sorted);
            for block in &times.blocks {
                let mut back: Vec<i64> = block.times_back().collect();
                back.reverse();
                assert_eq!(back, block.times().collect::<Vec<_>>());
                assert_eq!(back.len(), block.len as usize);
            }
        }
    }
}
