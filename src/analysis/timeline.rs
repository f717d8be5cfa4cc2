//! Report counts per sender, per event, per time bucket, kept at four resolutions
//! (1 s, 16 s, 256 s, 4,096 s) so that any window is answered from the coarsest
//! level fine enough for it: a window of B buckets reads at most about 16·B level
//! buckets, whatever the run's length.

use std::collections::{BTreeMap, HashMap, HashSet};

/// (sender, event) series one window answers with counts of their own at most.
pub const MAX_SERIES: usize = 1_000;

/// Values by bucket number, sorted: a report of any age finds or adds its bucket in
/// O(log buckets) (a sorted vector would move every later bucket for a report
/// older than the rest: a node replaying its queue), and a window is one range.
#[derive(Debug)]
struct Buckets<T>(BTreeMap<i64, T>);

impl<T> Default for Buckets<T> {
    fn default() -> Self {
        Buckets(BTreeMap::new())
    }
}

impl<T> Buckets<T> {
    fn get_or_insert(&mut self, bucket: i64, new: impl FnOnce() -> T) -> &mut T {
        self.0.entry(bucket).or_insert_with(new)
    }

    /// The buckets numbered `from..to`.
    fn range(&self, from: i64, to: i64) -> std::collections::btree_map::Range<'_, i64, T> {
        self.0.range(from..to.max(from))
    }
}

const SECOND: i64 = 1_000_000_000;
/// The bucket widths of the levels, ns.
pub const LEVELS: [i64; 4] = [SECOND, 16 * SECOND, 256 * SECOND, 4096 * SECOND];
/// Bits of a cell key that hold the event index.
const EVENT_BITS: u32 = 5;

/// One level: bucket number → (sender << 5 | event, count), sorted by key.
type Level = Buckets<Vec<(u32, u32)>>;

/// `value / by` rounded up (`by` > 0).
fn ceil_div(value: i64, by: i64) -> i64 {
    -((-value).div_euclid(by))
}

/// A run's timeline counts.
#[derive(Debug, Default)]
pub struct Timeline {
    levels: [Level; 4],
    /// Finest-level bucket → the smallest and largest seq of its reports, so the
    /// reports of a narrow window can be read by seq range.
    seqs: Buckets<(u64, u64)>,
    span: Option<(i64, i64)>,
}

/// The counts of one window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    /// Its start (snapped down to the level's grid), ns.
    pub from: i64,
    /// Its end, `from + buckets * bucket_ns`.
    pub to: i64,
    /// Each bucket's width, ns.
    pub bucket_ns: i64,
    /// How many buckets.
    pub buckets: usize,
    /// (sender id, event index, counts per bucket) for every non-zero pair.
    pub counts: Vec<(u32, usize, Vec<u64>)>,
    /// The series past the busiest [`MAX_SERIES`], summed: (event index, counts).
    pub rest: Vec<(usize, Vec<u64>)>,
    /// How many reports fall in the window.
    pub total: u64,
}

impl Timeline {
    /// Counts one report.
    pub fn add(&mut self, time: i64, seq: u64, sender: u32, event: usize) {
        let key = sender << EVENT_BITS | event as u32;
        for (level, width) in self.levels.iter_mut().zip(LEVELS) {
            let bucket = time.div_euclid(width);
            if let Some(mut latest) = level.0.last_entry()
                && *latest.key() < bucket
            {
                // A new latest bucket: the one before is most likely complete, and
                // its cells lose their spare room (a late report regrows them).
                latest.get_mut().shrink_to_fit();
            }
            let cells = level.get_or_insert(bucket, Vec::new);
            match cells.binary_search_by_key(&key, |(cell, _)| *cell) {
                Ok(found) => cells[found].1 += 1,
                Err(at) => cells.insert(at, (key, 1)),
            }
        }
        let range = self
            .seqs
            .get_or_insert(time.div_euclid(LEVELS[0]), || (seq, seq));
        range.0 = range.0.min(seq);
        range.1 = range.1.max(seq);
        self.span = Some(match self.span {
            Some((low, high)) => (low.min(time), high.max(time)),
            None => (time, time),
        });
    }

    /// Estimated heap bytes: each level's cells, and the B-trees at half-full
    /// nodes of eleven slots.
    pub fn heap_bytes(&self) -> usize {
        let tree = |len: usize, entry: usize| len.div_ceil(6) * (16 + 11 * entry);
        let levels: usize = self
            .levels
            .iter()
            .map(|level| {
                let cells: usize = level.0.values().map(|cells| cells.capacity() * 8).sum();
                cells + tree(level.0.len(), 8 + 24)
            })
            .sum();
        levels + tree(self.seqs.0.len(), 8 + 16)
    }

    /// The earliest and latest report time.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.span
    }

    /// The counts of the window `from..to` in about `buckets` buckets (the start
    /// snaps down, and the width up, to the grid of the level used).
    pub fn window(&self, from: i64, to: i64, buckets: usize) -> Window {
        let buckets = buckets.max(1) as i64;
        let wanted = to.saturating_sub(from).max(1).saturating_add(buckets - 1) / buckets;
        let level = LEVELS
            .iter()
            .rposition(|width| *width <= wanted)
            .unwrap_or(0);
        let width = LEVELS[level];
        let bucket_ns = ceil_div(wanted, width).max(1) * width;
        let from = from.div_euclid(width) * width;
        let count = to.saturating_sub(from).max(1).saturating_add(bucket_ns - 1) / bucket_ns;
        let to = from.saturating_add(count.saturating_mul(bucket_ns));
        let cells = self.levels[level].range(from / width, ceil_div(to, width));
        // The busiest MAX_SERIES (sender, event) series get counts of their own, the
        // rest are summed per event: the answer never grows with the senders.
        let mut totals: HashMap<u32, u64> = HashMap::new();
        for (_, bucket) in cells.clone() {
            for (key, n) in bucket {
                *totals.entry(*key).or_default() += u64::from(*n);
            }
        }
        let total = totals.values().sum();
        let kept: Option<HashSet<u32>> = (totals.len() > MAX_SERIES).then(|| {
            let mut busiest: Vec<(u64, u32)> = totals.iter().map(|(key, n)| (*n, *key)).collect();
            busiest.sort_unstable_by(|a, b| b.cmp(a));
            busiest
                .into_iter()
                .take(MAX_SERIES)
                .map(|(_, key)| key)
                .collect()
        });
        let mut by_key: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut rest: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for (bucket, bucket_cells) in cells {
            let index = ((bucket * width - from) / bucket_ns) as usize;
            for (key, n) in bucket_cells {
                let fresh = || vec![0; count as usize];
                let counts = if kept.as_ref().is_none_or(|kept| kept.contains(key)) {
                    by_key.entry(*key).or_insert_with(fresh)
                } else {
                    rest.entry((key & 31) as usize).or_insert_with(fresh)
                };
                counts[index] += u64::from(*n);
            }
        }
        Window {
            from,
            to,
            bucket_ns,
            buckets: count as usize,
            counts: by_key
                .into_iter()
                .map(|(key, counts)| (key >> EVENT_BITS, (key & 31) as usize, counts))
                .collect(),
            rest: rest.into_iter().collect(),
            total,
        }
    }

    /// The smallest and largest seq of the reports in `from..to`, if any: costs one
    /// step per non-empty second of the window, so ask only of windows known to
    /// hold few reports.
    pub fn seqs(&self, from: i64, to: i64) -> Option<(u64, u64)> {
        self.seqs
            .range(from.div_euclid(LEVELS[0]), ceil_div(to, LEVELS[0]))
            .map(|(_, range)| *range)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_what_falls_in_its_buckets() {
        let mut timeline = Timeline::default();
        // Sender 1 reports event 3 every 100 ms for 100 s; sender 2 once at 50 s.
        for i in 0..1_000i64 {
            timeline.add(i * SECOND / 10, i as u64 + 1, 1, 3);
        }
        timeline.add(50 * SECOND, 1_001, 2, 7);
        let all = timeline.window(0, 100 * SECOND, 10);
        assert_eq!((all.from, all.bucket_ns, all.buckets), (0, 10 * SECOND, 10));
        assert_eq!(all.total, 1_001);
        assert_eq!(all.counts[0], (1, 3, vec![100; 10]));
        assert_eq!(all.counts[1].2[5], 1);
        assert_eq!(timeline.seqs(all.from, all.to), Some((1, 1_001)));
        // A narrow window uses the finest level: 1 s buckets.
        let narrow = timeline.window(20 * SECOND + 5, 23 * SECOND, 100);
        assert_eq!(
            (narrow.from, narrow.bucket_ns, narrow.buckets),
            (20 * SECOND, SECOND, 3)
        );
        assert_eq!(narrow.total, 30);
        assert_eq!(timeline.seqs(narrow.from, narrow.to), Some((201, 230)));
        // A wide window over a coarse level.
        let wide = timeline.window(0, 4_000 * SECOND, 5);
        assert_eq!((wide.bucket_ns, wide.buckets), (1_024 * SECOND, 4));
        assert!(wide.rest.is_empty());
        assert_eq!(wide.total, 1_001);
        assert_eq!(timeline.span(), Some((0, 999 * SECOND / 10)));
    }

    #[test]
    fn past_the_busiest_series_the_rest_is_summed() {
        let mut timeline = Timeline::default();
        let senders = MAX_SERIES as u32 + 50;
        for sender in 0..senders {
            // Sender k reports k + 1 times: the 50 quietest go to the rest.
            for i in 0..=u64::from(sender) {
                timeline.add(SECOND + i as i64, u64::from(sender) * 10_000 + i, sender, 9);
            }
        }
        let window = timeline.window(0, 10 * SECOND, 10);
        assert_eq!(window.counts.len(), MAX_SERIES);
        assert!(window.counts.iter().all(|(sender, ..)| *sender >= 50));
        let rest: u64 = window.rest.iter().flat_map(|(_, counts)| counts).sum();
        assert_eq!(rest, (1..=50).sum::<u64>());
        assert_eq!(window.rest[0].0, 9);
        let counted: u64 = window.counts.iter().flat_map(|(_, _, counts)| counts).sum();
        assert_eq!(counted + rest, window.total);
    }
}
