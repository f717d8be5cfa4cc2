//! A latency distribution that takes values in and out: counts in log-spaced
//! buckets (each bucket spans 1/128 of its lower bound, so a quantile read from it
//! is within 0.4% of the true value), the exact sum, and the exact maximum.
//!
//! Values go out as well as in because the incremental analysis revises a
//! receiver's latency when an earlier report or an out-of-order send arrives.

use serde::Serialize;
use std::collections::BTreeMap;

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 128;
/// Mantissa bits kept above the leading one.
const MANTISSA_BITS: u32 = 7;

/// The bucket holding `value` (ns).
pub(crate) fn bucket(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let top = 63 - value.leading_zeros(); // ≥ 7
    let shift = top - MANTISSA_BITS;
    let mantissa = (value >> shift) as usize & (LINEAR as usize - 1);
    LINEAR as usize + (shift as usize) * LINEAR as usize + mantissa
}

/// The smallest value of bucket `index` and the first value past it.
fn bounds(index: usize) -> (u64, u64) {
    if index < LINEAR as usize {
        return (index as u64, index as u64 + 1);
    }
    let shift = (index - LINEAR as usize) / LINEAR as usize;
    let mantissa = ((index - LINEAR as usize) % LINEAR as usize) as u64;
    let low = (LINEAR + mantissa) << shift;
    (low, low.saturating_add(1 << shift))
}

/// The value a bucket stands for: exact below 128 ns, else its middle.
pub(crate) fn middle(index: usize) -> f64 {
    let (low, high) = bounds(index);
    if high - low == 1 {
        low as f64
    } else {
        (low as f64 + high as f64) / 2.0
    }
}

/// Whole-run latencies of one round kind, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    counts: Vec<u64>,
    count: u64,
    sum: i128,
    /// Each round's maximum (its slowest receiver) as a multiset: the largest is
    /// the overall maximum, and it stays exact when a round's values change.
    maxima: BTreeMap<u64, u64>,
}

/// The whole-run figures of one distribution (`/api/analysis` `distributions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// How many values.
    pub count: u64,
    /// The median (nearest rank), ms.
    pub p50_ms: Option<f64>,
    /// The 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// The 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// The largest value, exact, ms.
    pub max_ms: Option<f64>,
    /// Per-bin counts (not cumulative) of 1-2-5 bins per decade, from the first to
    /// the last non-empty one; a bin holds values above the previous `le_ms` and up
    /// to its own.
    pub histogram: Vec<Bin>,
}

/// One histogram bin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    /// Its upper bound, ms.
    pub le_ms: f64,
    /// How many values fall in it.
    pub count: u64,
}

/// The 1-2-5 bin bounds in ns, from 1 µs to 10,000 s.
fn bin_bounds() -> impl Iterator<Item = u64> {
    (3..13u32).flat_map(|exponent| [1, 2, 5].map(|step| step * 10u64.pow(exponent)))
}

impl Distribution {
    /// Takes in one value (ns; negative values count as 0).
    pub fn add(&mut self, value: i64) {
        let value = value.max(0) as u64;
        let index = bucket(value);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += 1;
        self.count += 1;
        self.sum += i128::from(value);
    }

    /// Takes out one value added before.
    pub fn remove(&mut self, value: i64) {
        let value = value.max(0) as u64;
        let index = bucket(value);
        if let Some(slot) = self.counts.get_mut(index).filter(|count| **count > 0) {
            *slot -= 1;
            self.count -= 1;
            self.sum -= i128::from(value);
        }
    }

    /// Counts one round's maximum `value`, so the overall maximum is exact.
    pub fn add_max(&mut self, value: i64) {
        *self.maxima.entry(value.max(0) as u64).or_insert(0) += 1;
    }

    /// Takes out one round's maximum counted before.
    pub fn remove_max(&mut self, value: i64) {
        let value = value.max(0) as u64;
        if let Some(count) = self.maxima.get_mut(&value) {
            *count -= 1;
            if *count == 0 {
                self.maxima.remove(&value);
            }
        }
    }

    /// Estimated heap bytes: the buckets, and the maxima's B-tree at half-full
    /// nodes of eleven slots.
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * 8 + self.maxima.len().div_ceil(6) * (16 + 11 * 16)
    }

    /// How many values are in.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact sum of the values, ns.
    pub fn sum_ns(&self) -> i128 {
        self.sum
    }

    /// The exact largest value, ns.
    pub fn max_ns(&self) -> Option<u64> {
        self.maxima.last_key_value().map(|(value, _)| *value)
    }

    /// The nearest-rank quantile (`fraction` in 0..=1), ns: exact below 128 ns,
    /// else the middle of its bucket (within 0.4%), never above the maximum.
    pub fn quantile_ns(&self, fraction: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((fraction * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let max = self.max_ns().map_or(f64::MAX, |max| max as f64);
                return Some(middle(index).min(max));
            }
        }
        None
    }

    /// The non-empty buckets as (values up to and including it, its value in ns),
    /// in order: the quantile function, for resampling.
    pub fn cumulative(&self) -> Vec<(u64, f64)> {
        let mut seen = 0;
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| {
                seen += count;
                (seen, middle(index))
            })
            .collect()
    }

    /// How many values are at most `bound` ns (a bucket straddling the bound counts
    /// as below it when its middle is).
    pub fn count_at_most(&self, bound: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(index, _)| {
                let (low, high) = bounds(*index);
                low + (high - low) / 2 <= bound
            })
            .map(|(_, count)| count)
            .sum()
    }

    /// The figures the API shows.
    pub fn summary(&self) -> Summary {
        let ms = |ns: f64| ns / 1e6;
        let mut histogram = Vec::new();
        let mut below = 0;
        for bound in bin_bounds() {
            let at_most = self.count_at_most(bound);
            histogram.push(Bin {
                le_ms: ms(bound as f64),
                count: at_most - below,
            });
            below = at_most;
        }
        if let Some(last) = histogram.last_mut() {
            last.count += self.count - below;
        }
        let first = histogram.iter().position(|bin| bin.count > 0);
        let last = histogram.iter().rposition(|bin| bin.count > 0);
        let histogram = match (first, last) {
            (Some(first), Some(last)) => histogram[first..=last].to_vec(),
            _ => Vec::new(),
        };
        Summary {
            count: self.count,
            p50_ms: self.quantile_ns(0.50).map(ms),
            p90_ms: self.quantile_ns(0.90).map(ms),
            p99_ms: self.quantile_ns(0.99).map(ms),
            max_ms: self.max_ns().map(|max| ms(max as f64)),
            histogram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_within_their_bounds() {
        let mut last = 0;
        for value in (0..5_000u64).chain([1 << 20, 123_456_789, u64::MAX / 3, i64::MAX as u64]) {
            let index = bucket(value);
            let (low, high) = bounds(index);
            assert!(
                low <= value && value < high.max(low + 1),
                "{value}: {low}..{high}"
            );
            assert!(index >= last || value > 5_000);
            last = index;
            assert!((high - low) as f64 <= (low as f64 / 128.0).max(1.0));
        }
    }

    #[test]
    fn quantiles_are_within_half_a_percent_and_max_is_exact() {
        let mut distribution = Distribution::default();
        let values: Vec<i64> = (1..=10_000).map(|i| i * 7_919 + 3).collect();
        for value in &values {
            distribution.add(*value);
        }
        distribution.add_max(*values.last().unwrap());
        for fraction in [0.5, 0.9, 0.99] {
            let rank = (fraction * values.len() as f64).ceil() as usize;
            let exact = values[rank - 1] as f64;
            let got = distribution.quantile_ns(fraction).unwrap();
            assert!(
                (got - exact).abs() / exact < 0.004,
                "{fraction}: {got} vs {exact}"
            );
        }
        assert_eq!(distribution.max_ns(), Some(*values.last().unwrap() as u64));
        for value in &values[..5_000] {
            distribution.remove(*value);
        }
        assert_eq!(distribution.count(), 5_000);
        let exact_median = values[5_000 + 2_500 - 1] as f64;
        let got = distribution.quantile_ns(0.5).unwrap();
        assert!((got - exact_median).abs() / exact_median < 0.004);
    }

    #[test]
    fn the_histogram_spans_the_non_empty_bins_and_counts_everything() {
        let mut distribution = Distribution::default();
        for ms in [3, 3, 40, 700] {
            distribution.add(ms * 1_000_000);
        }
        let summary = distribution.summary();
        assert_eq!(summary.histogram.first().unwrap().le_ms, 5.0);
        assert_eq!(summary.histogram.last().unwrap().le_ms, 1000.0);
        assert_eq!(
            summary.histogram.iter().map(|bin| bin.count).sum::<u64>(),
            4
        );
        assert_eq!(summary.histogram[0].count, 2);
        assert!(Distribution::default().summary().histogram.is_empty());
        assert_eq!(Distribution::default().summary().p50_ms, None);
    }
}
