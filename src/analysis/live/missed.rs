//! Per round of one kind, how many expected receivers missed it, and how many
//! rounds some receiver missed, under the updates that eligibility brings: a node
//! that becomes expected in every round from some point on (its first receipt of
//! the kind, or an earlier first report arriving late) adds one to a whole range
//! of rounds at once. Each round keeps its own share of its count; above them, a
//! segment tree over chunks of [`CHUNK`] rounds whose nodes each keep an addend
//! for their whole span, the least count below them and how many rounds have it.
//! A range or point update and a point read cost O(log rounds + [`CHUNK`]); the
//! number of flagged rounds is read at the root. About 5 bytes a round: its share,
//! and the tree's 12 bytes a node over a chunk's 32 rounds.

use super::memory::{reserve, vec_bytes};

/// Unused leaves' count: never the least, never zero.
const UNUSED: i32 = i32::MAX / 4;
/// Rounds under one leaf of the tree.
const CHUNK: usize = 32;

/// One count per round, in the rounds' order.
#[derive(Debug, Default)]
pub(super) struct MissedCounts {
    /// Per round, its own share of its count (the rest is added above it).
    own: Vec<i32>,
    /// The leaves' offset: a power of two at least the chunks (0 while empty).
    size: usize,
    /// Per tree node: added to every count below it.
    add: Vec<i32>,
    /// Per tree node: the least count below it, its own `add` included.
    least: Vec<i32>,
    /// Per tree node: how many rounds below it have that least count.
    at_least: Vec<u32>,
}

impl MissedCounts {
    /// Heap bytes.
    pub(super) fn heap_bytes(&self) -> usize {
        vec_bytes(&self.own)
            + vec_bytes(&self.add)
            + vec_bytes(&self.least)
            + vec_bytes(&self.at_least)
    }

    /// The sum of the addends from the leaf of round `index`'s chunk up.
    fn above(&self, index: usize) -> i32 {
        let mut node = index / CHUNK + self.size;
        let mut sum = 0;
        while node > 0 {
            sum += self.add[node];
            node >>= 1;
        }
        sum
    }

    /// Round `index`'s count.
    pub(super) fn get(&self, index: usize) -> i32 {
        self.own[index] + self.above(index)
    }

    /// How many rounds have a count above zero (counts are never negative).
    pub(super) fn positive(&self) -> usize {
        let len = self.own.len();
        if len == 0 || self.least[1] > 0 {
            len
        } else {
            len - self.at_least[1] as usize
        }
    }

    /// Inserts a round with count `count` before round `at` (at the end: O(log
    /// rounds) amortised; elsewhere O(rounds), as the sends' own insertion).
    pub(super) fn insert(&mut self, at: usize, count: i32) {
        if at == self.own.len() && at / CHUNK < self.size {
            reserve(&mut self.own, 1);
            self.own.push(0);
            self.own[at] = count - self.above(at);
            self.refresh(at / CHUNK);
            self.pull_above(at / CHUNK + self.size);
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

    /// Adds `delta` to round `index`'s count. Usually O([`CHUNK`]): the walk up
    /// stops at the first node whose least count, and how many have it, stay the
    /// same.
    pub(super) fn add_at(&mut self, index: usize, delta: i32) {
        self.own[index] += delta;
        let mut node = index / CHUNK + self.size;
        let old = (self.least[node], self.at_least[node]);
        self.refresh(index / CHUNK);
        if old == (self.least[node], self.at_least[node]) {
            return;
        }
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

    /// Adds `delta` to the counts of rounds `from..to`: one by one in the chunks it
    /// covers in part, on the tree for the chunks it covers whole.
    pub(super) fn add_range(&mut self, from: usize, to: usize, delta: i32) {
        let len = self.own.len();
        debug_assert!(from <= to && to <= len, "{from}..{to} of {len}");
        if from >= to || delta == 0 {
            return;
        }
        let (first, last) = (from / CHUNK, (to - 1) / CHUNK);
        // A chunk is covered whole when the range holds every round it has.
        let whole_from = if from % CHUNK == 0 { first } else { first + 1 };
        let whole_to = if to % CHUNK == 0 || to == len {
            last + 1
        } else {
            last
        };
        for chunk in [first, last] {
            if (whole_from..whole_to).contains(&chunk) {
                continue;
            }
            let rounds = from.max(chunk * CHUNK)..to.min((chunk + 1) * CHUNK);
            self.own[rounds].iter_mut().for_each(|own| *own += delta);
            self.refresh(chunk);
            if first == last {
                break;
            }
        }
        if whole_from < whole_to {
            let (mut left, mut right) = (whole_from + self.size, whole_to + self.size);
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
        }
        self.pull_above(first + self.size);
        self.pull_above(last + self.size);
    }

    fn apply(&mut self, node: usize, delta: i32) {
        self.add[node] += delta;
        self.least[node] += delta;
    }

    /// Recomputes the leaf of `chunk` from its rounds' own shares.
    fn refresh(&mut self, chunk: usize) {
        let leaf = chunk + self.size;
        let rounds = &self.own[chunk * CHUNK..self.own.len().min((chunk + 1) * CHUNK)];
        (self.least[leaf], self.at_least[leaf]) = match rounds.iter().min() {
            Some(least) => (
                least + self.add[leaf],
                rounds.iter().filter(|own| *own == least).count() as u32,
            ),
            None => (UNUSED, 0),
        };
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
        let mut above = vec![0i32; 2 * self.size];
        for node in 1..2 * self.size {
            above[node] = above[node >> 1] + self.add[node];
        }
        (self.own.iter().enumerate())
            .map(|(index, own)| own + above[index / CHUNK + self.size])
            .collect()
    }

    /// A tree holding `counts`.
    fn build(&mut self, counts: &[i32]) {
        self.own = counts.to_vec();
        self.size = counts.len().div_ceil(CHUNK).next_power_of_two();
        let nodes = 2 * self.size;
        self.add = vec![0; nodes];
        self.least = vec![UNUSED; nodes];
        self.at_least = vec![0; nodes];
        for chunk in 0..counts.len().div_ceil(CHUNK) {
            self.refresh(chunk);
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
        for run in 0..300 {
            // Short runs, and long ones over several chunks and tree levels.
            let steps = if run % 3 == 0 { 1..1_200 } else { 1..80 };
            let (mut tree, mut plain) = (MissedCounts::default(), Vec::<i32>::new());
            for _ in 0..rng.random_range(steps) {
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
