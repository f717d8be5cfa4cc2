//! One receiver's receipt times of one round kind, sorted, in blocks of at most
//! [`BLOCK`] times each: a time arriving in order is pushed on the last block, and
//! an old one (a node replaying its queue after a partition) is inserted into the
//! one block that holds its place, moving at most 2·[`BLOCK`] times, where one
//! sorted vector would move every newer time. So a receipt costs O(log n) plus a
//! small constant whatever the arrival order. A block grows as a vector does, so a
//! receiver of few receipts holds little (8 bytes a time, up to twice that in a
//! block's spare room).

use super::memory::vec_bytes;

/// Times the last block takes before a new one starts; a block in the middle
/// grows to twice this and is then split in two.
const BLOCK: usize = 512;

/// Sorted times (repeats allowed) in blocks: every block is non-empty and sorted,
/// and no time of a block is greater than any time of the next.
#[derive(Debug, Default)]
pub(super) struct SortedTimes {
    blocks: Vec<Vec<i64>>,
}

impl SortedTimes {
    /// Whether it holds no time.
    pub(super) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The latest time.
    pub(super) fn last(&self) -> Option<i64> {
        self.blocks.last().and_then(|block| block.last().copied())
    }

    /// The earliest time at or after `from`.
    pub(super) fn first_from(&self, from: i64) -> Option<i64> {
        // Blocks before this one hold only times before `from`.
        let index = self
            .blocks
            .partition_point(|block| block[block.len() - 1] < from);
        let block = self.blocks.get(index)?;
        Some(block[block.partition_point(|time| *time < from)])
    }

    /// The latest time before `until`.
    pub(super) fn last_before(&self, until: i64) -> Option<i64> {
        // Blocks from this one on hold only times at or after `until`.
        let index = self.blocks.partition_point(|block| block[0] < until);
        let block = &self.blocks[index.checked_sub(1)?];
        Some(block[block.partition_point(|time| *time < until) - 1])
    }

    /// Heap bytes, spare room included.
    pub(super) fn heap_bytes(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(vec_bytes).sum();
        blocks + vec_bytes(&self.blocks)
    }

    /// Adds `time`.
    pub(super) fn insert(&mut self, time: i64) {
        let Some(last) = self.blocks.last_mut() else {
            return self.blocks.push(vec![time]);
        };
        if last[last.len() - 1] <= time {
            // In order: the usual case.
            if last.len() < BLOCK {
                last.push(time);
            } else {
                self.blocks.push(vec![time]);
            }
            return;
        }
        // The first block whose last time is after `time` (the last block is).
        let index = self
            .blocks
            .partition_point(|block| block[block.len() - 1] <= time);
        let block = &mut self.blocks[index];
        let at = block.partition_point(|other| *other <= time);
        block.insert(at, time);
        if block.len() >= 2 * BLOCK {
            let upper = block.split_off(BLOCK);
            block.shrink_to_fit();
            self.blocks.insert(index + 1, upper);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: one sorted vector.
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
        // In order, reversed, interleaved, with repeats: blocks fill, split and
        // hold repeats across their edges.
        let orders: [Vec<i64>; 4] = [
            (0..3_000).collect(),
            (0..3_000).rev().collect(),
            (0..3_000).map(|n| (n * 7_919) % 3_001).collect(),
            (0..3_000).map(|n| (n % 5) * 100 + n / 1_000).collect(),
        ];
        for order in orders {
            let mut times = SortedTimes::default();
            let mut sorted = Vec::new();
            check(&times, &sorted, 0);
            for (n, time) in order.iter().enumerate() {
                times.insert(*time);
                let at = sorted.partition_point(|other| other <= time);
                sorted.insert(at, *time);
                if n % 97 == 0 {
                    for probe in [-1, 0, *time, time + 1, 250, 1_500, 3_001] {
                        check(&times, &sorted, probe);
                    }
                }
            }
            for probe in -1..=3_001 {
                check(&times, &sorted, probe);
            }
            assert!(times.blocks.iter().all(|block| block.len() < 2 * BLOCK));
            let flat: Vec<i64> = times.blocks.concat();
            assert_eq!(flat, sorted);
        }
    }
}
