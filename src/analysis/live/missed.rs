//! Per round of one kind, how many expected receivers missed it, and how many
//! rounds some receiver missed, under the updates that eligibility brings: a node
//! that becomes expected in every round from some point on (its first receipt of
//! the kind, or an earlier first report arriving late) adds one to a whole range
//! of rounds at once. A segment tree whose nodes each keep an addend for their
//! whole span, the least count below them and how many rounds have it: a range
//! or point update and a point read cost O(log rounds); the number of flagged
//! rounds is read at the root.

use super::memory::vec_bytes;

/// Unused leaves' count: never the least, never zero.
const UNUSED: i32 = i32::MAX / 4;

/// One count per round, in the rounds' order.
#[derive(Debug, Default)]
pub(super) struct MissedCounts {
    /// How many rounds.
    len: usize,
    /// The leaves' offset: a power of two at least `len` (0 while empty).
    size: usize,
    /// Per tree node: added to every count below it (a leaf's own share).
    add: Vec<i32>,
    /// Per tree node: the least count below it, its own `add` included.
    least: Vec<i32>,
    /// Per tree node: how many rounds below it have that least count.
    at_least: Vec<u32>,
}

impl MissedCounts {
    /// Heap bytes.
    pub(super) fn heap_bytes(&self) -> usize {
        vec_bytes(&self.add) + vec_bytes(&self.least) + vec_bytes(&self.at_least)
    }

    /// Round `index`'s count.
    pub(super) fn get(&self, index: usize) -> i32 {
        let mut node = index + self.size;
        let mut count = 0;
        while node > 0 {
            count += self.add[node];
            node >>= 1;
        }
        count
    }

    /// How many rounds have a count above zero (counts are never negative).
    pub(super) fn positive(&self) -> usize {
        if self.len == 0 || self.least[1] > 0 {
            self.len
        } else {
            self.len - self.at_least[1] as usize
        }
    }

    /// Inserts a round with count `count` before round `at` (at the end: O(log
    /// rounds) amortised; elsewhere O(rounds), as the sends' own insertion).
    pub(super) fn insert(&mut self, at: usize, count: i32) {
        if at == self.len && self.len < self.size {
            self.len += 1;
            let leaf = at + self.size;
            self.add[leaf] = 0;
            self.least[leaf] = 0;
            self.at_least[leaf] = 1;
            self.pull_above(leaf);
            self.add_at(at, count - self.get(at));
        } else {
            let mut counts = self.counts();
            counts.insert(at, count);
            self.build(&counts);
        }
    }

    /// Sets round `index`'s count.
    pub(super) fn set(&mut self, index: usize, count: i32) {
        self.add_at(index, count - self.get(index));
    }

    /// Adds `delta` to round `index`'s count. Usually O(1): the walk up stops at
    /// the first node whose least count, and how many have it, stay the same.
    pub(super) fn add_at(&mut self, index: usize, delta: i32) {
        let mut node = index + self.size;
        self.apply(node, delta);
        node >>= 1;
        while node > 0 {
            let pulled = self.pulled(node);
            if pulled == (self.least[node], self.at_least[node]) {
                break;
            }
            (self.least[node], self.at_least[node]) = pulled;
            node >>= 1;
        }
    }

    /// Adds `delta` to the counts of rounds `from..to`.
    pub(super) fn add_range(&mut self, from: usize, to: usize, delta: i32) {
        debug_assert!(from <= to && to <= self.len, "{from}..{to} of {}", self.len);
        if from >= to || delta == 0 {
            return;
        }
        let (mut left, mut right) = (from + self.size, to + self.size);
        while left < right {
            if left & 1 == 1 {
                self.apply(left, delta);
                left += 1;
            }
            if right & 1 == 1 {
                right -= 1;
                self.apply(right, delta);
            }
            left >>= 1;
            right >>= 1;
        }
        self.pull_above(from + self.size);
        self.pull_above(to - 1 + self.size);
    }

    fn apply(&mut self, node: usize, delta: i32) {
        self.add[node] += delta;
        self.least[node] += delta;
    }

    /// An inner node's least count and how many rounds have it, from its children.
    fn pulled(&self, node: usize) -> (i32, u32) {
        let (left, right) = (self.least[2 * node], self.least[2 * node + 1]);
        let least = left.min(right);
        if least >= UNUSED {
            return (UNUSED, 0);
        }
        let mut at_least = 0;
        if left == least {
            at_least += self.at_least[2 * node];
        }
        if right == least {
            at_least += self.at_least[2 * node + 1];
        }
        (least + self.add[node], at_least)
    }

    /// Recomputes every ancestor of `node` from its children.
    fn pull_above(&mut self, mut node: usize) {
        node >>= 1;
        while node > 0 {
            (self.least[node], self.at_least[node]) = self.pulled(node);
            node >>= 1;
        }
    }

    /// Every round's count, in order.
    fn counts(&self) -> Vec<i32> {
        let mut counts = Vec::with_capacity(self.len + 1);
        let mut above = vec![0i32; 2 * self.size];
        for node in 1..2 * self.size {
            above[node] = above[node >> 1] + self.add[node];
            if node >= self.size && node - self.size < self.len {
                counts.push(above[node]);
            }
        }
        counts
    }

    /// A tree holding `counts`.
    fn build(&mut self, counts: &[i32]) {
        self.len = counts.len();
        self.size = counts.len().next_power_of_two();
        let nodes = 2 * self.size;
        self.add = vec![0; nodes];
        self.least = vec![UNUSED; nodes];
        self.at_least = vec![0; nodes];
        for (index, count) in counts.iter().enumerate() {
            let leaf = index + self.size;
            self.add[leaf] = *count;
            self.least[leaf] = *count;
            self.at_least[leaf] = 1;
        }
        for node in (1..self.size).rev() {
            (self.least[node], self.at_least[node]) = self.pulled(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Random inserts (mostly at the end), range adds and sets agree with a plain
    /// vector of counts at every step, in every read.
    #[test]
    fn matches_a_plain_vector() {
        let mut rng = StdRng::seed_from_u64(19);
        for _ in 0..200 {
            let (mut tree, mut plain) = (MissedCounts::default(), Vec::<i32>::new());
            for _ in 0..rng.random_range(1..80) {
                match rng.random_range(0..10) {
                    0..=3 => {
                        let at = if rng.random_bool(0.8) {
                            plain.len()
                        } else {
                            rng.random_range(0..=plain.len())
                        };
                        let count = rng.random_range(0..3);
                        tree.insert(at, count);
                        plain.insert(at, count);
                    }
                    4..=6 if !plain.is_empty() => {
                        let from = rng.random_range(0..plain.len());
                        let to = rng.random_range(from..=plain.len());
                        tree.add_range(from, to, 1);
                        plain[from..to].iter_mut().for_each(|count| *count += 1);
                    }
                    7..=9 if !plain.is_empty() => {
                        let index = rng.random_range(0..plain.len());
                        let count = if rng.random_bool(0.5) {
                            0
                        } else {
                            rng.random_range(0..4)
                        };
                        tree.set(index, count);
                        plain[index] = count;
                    }
                    _ => {}
                }
                let counts: Vec<i32> = (0..plain.len()).map(|index| tree.get(index)).collect();
                assert_eq!(counts, plain);
                assert_eq!(tree.counts(), plain);
                let positive = plain.iter().filter(|count| **count > 0).count();
                assert_eq!(tree.positive(), positive, "{plain:?}");
            }
        }
    }
}
