//! Bootstrap intervals of latency quantiles: of one run's q-quantile, and of the
//! difference of two runs' q-quantiles (b − a).
//!
//! The intervals are percentile bootstraps over the receipts. They need no
//! assumption about the latencies' shape (they are skewed and heavy-tailed, so a
//! t-interval of means would mislead), and they are exact for the bucketed data
//! without resampling every receipt: the q-quantile (nearest rank) of a resample of
//! n values is its k-th smallest value, k = ⌈q·n⌉, which is the value at the
//! fraction U₍ₖ₎ of the quantile function, where U₍ₖ₎, the k-th smallest of n
//! uniforms, is Beta(k, n − k + 1) distributed. So each of the [`RESAMPLES`]
//! replicates is one Beta draw and one binary search per run, whatever the runs'
//! lengths.
//!
//! Only quantiles strictly inside (0, 1) have intervals: a resample never holds a
//! value above the sample's largest, so the bootstrap of a maximum is degenerate
//! (its interval ends at the observed maximum whatever the truth).

use super::distribution::Distribution;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution as _};

/// Bootstrap replicates per interval.
pub const RESAMPLES: usize = 4_000;
/// Receipts each run needs for an interval; with fewer, none is given.
pub const MIN_FOR_INTERVAL: u64 = 10;

/// [`RESAMPLES`] draws (ns) of the q-quantile of a resample of `latencies`.
fn resampled_quantiles(latencies: &Distribution, q: f64, rng: &mut StdRng) -> Vec<f64> {
    let quantile = latencies.cumulative();
    let n = latencies.count();
    let k = ((q * n as f64).ceil() as u64).clamp(1, n);
    let beta = Beta::new(k as f64, (n - k + 1) as f64).expect("k and n - k + 1 are positive");
    (0..RESAMPLES)
        .map(|_| {
            let fraction: f64 = beta.sample(rng);
            let rank = ((fraction * n as f64).ceil() as u64).clamp(1, n);
            let at = quantile.partition_point(|(seen, _)| *seen < rank);
            quantile[at.min(quantile.len() - 1)].1
        })
        .collect()
}

/// The 2.5th and 97.5th percentiles of `replicates` (ns), in ms.
fn central_95_ms(mut replicates: Vec<f64>) -> [f64; 2] {
    replicates.sort_by(f64::total_cmp);
    let at = |fraction: f64| {
        replicates[((fraction * RESAMPLES as f64) as usize).min(RESAMPLES - 1)] / 1e6
    };
    [at(0.025), at(0.975)]
}

/// Whether `q` is a fraction strictly between 0 and 1.
fn inside(q: f64) -> bool {
    q > 0.0 && q < 1.0
}

/// 95% percentile-bootstrap interval (ms) of one run's q-quantile (`q` in (0, 1)),
/// from [`RESAMPLES`] replicates seeded by `seed`; `None` when the run has fewer
/// than [`MIN_FOR_INTERVAL`] values or `q` is outside (0, 1).
pub fn quantile_ci(latencies: &Distribution, q: f64, seed: u64) -> Option<[f64; 2]> {
    if latencies.count() < MIN_FOR_INTERVAL || !inside(q) {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    Some(central_95_ms(resampled_quantiles(latencies, q, &mut rng)))
}

/// 95% percentile-bootstrap interval (ms) of quantile(b) − quantile(a) at `q` in
/// (0, 1), the two runs resampled independently, from [`RESAMPLES`] replicates
/// seeded by `seed`; `None` when either side has fewer than [`MIN_FOR_INTERVAL`]
/// values or `q` is outside (0, 1).
pub fn quantile_delta_ci(
    a: &Distribution,
    b: &Distribution,
    q: f64,
    seed: u64,
) -> Option<[f64; 2]> {
    if a.count() < MIN_FOR_INTERVAL || b.count() < MIN_FOR_INTERVAL || !inside(q) {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let from_a = resampled_quantiles(a, q, &mut rng);
    let from_b = resampled_quantiles(b, q, &mut rng);
    Some(central_95_ms(
        from_b.iter().zip(&from_a).map(|(b, a)| b - a).collect(),
    ))
}

/// 95% interval (ms) of median(b) − median(a): [`quantile_delta_ci`] at 0.5.
pub fn median_delta_ci(a: &Distribution, b: &Distribution, seed: u64) -> Option<[f64; 2]> {
    quantile_delta_ci(a, b, 0.5, seed)
}

/// A seed that depends only on what is compared (both distributions and `salt`,
/// e.g. the round kind), so one comparison always gives the same interval.
pub fn seed(a: &Distribution, b: &Distribution, salt: u64) -> u64 {
    let mix = |value: u64, into: u64| (into ^ value).wrapping_mul(0x100_0000_01b3);
    [
        a.count(),
        b.count(),
        a.sum_ns() as u64,
        b.sum_ns() as u64,
        salt,
    ]
    .into_iter()
    .fold(0xcbf2_9ce4_8422_2325, |hash, value| mix(value, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    /// The standard normal's 90th and 99th percentiles.
    const Z90: f64 = 1.281_551_565_5;
    const Z99: f64 = 2.326_347_874;

    /// `n` log-normal latencies around `median_ms` with log-sd `sigma` (skewed,
    /// heavy-tailed); its q-quantile is `median_ms · exp(sigma · z_q)`.
    fn sample(rng: &mut StdRng, n: usize, median_ms: f64, sigma: f64) -> Distribution {
        let normal = rand_distr::Normal::<f64>::new(0.0, sigma).unwrap();
        let mut latencies = Distribution::default();
        let mut max = 0;
        for _ in 0..n {
            let value = (median_ms * MS * normal.sample(rng).exp()) as i64;
            latencies.add(value);
            max = max.max(value);
        }
        latencies.add_max(max);
        latencies
    }

    /// How many of `trials` intervals of samples of `n` hold the true q-quantile.
    fn coverage(q: f64, z: f64, n: usize, trials: u64) -> u64 {
        let mut rng = StdRng::seed_from_u64(40 + n as u64);
        let truth = 40.0 * (0.6 * z).exp();
        (0..trials)
            .filter(|trial| {
                let latencies = sample(&mut rng, n, 40.0, 0.6);
                let [low, high] = quantile_ci(&latencies, q, *trial).unwrap();
                low <= truth && truth <= high
            })
            .count() as u64
    }

    #[test]
    fn one_runs_interval_holds_the_true_quantile_about_95_times_in_100() {
        // 200 trials of a 95% interval: about 190 hold the truth; fewer than 178
        // means it is too narrow (or off-centre), all 200 that it is too wide.
        for (q, z, n) in [(0.5, 0.0, 400), (0.9, Z90, 400), (0.99, Z99, 3_000)] {
            let held = coverage(q, z, n, 200);
            assert!((178..200).contains(&held), "q = {q}: {held} of 200");
        }
    }

    #[test]
    fn a_known_shift_of_the_90th_percentile_is_found_within_its_interval() {
        let mut rng = StdRng::seed_from_u64(5);
        let a = sample(&mut rng, 3_000, 50.0, 0.4);
        let b = sample(&mut rng, 3_000, 50.0, 0.6);
        let shift = 50.0 * ((0.6 * Z90).exp() - (0.4 * Z90).exp());
        let [low, high] = quantile_delta_ci(&a, &b, 0.9, 6).unwrap();
        assert!(low <= shift && shift <= high, "{shift} in [{low}, {high}]");
        assert!(low > 0.0, "a wider tail is beyond noise: [{low}, {high}]");
        let medians = quantile_delta_ci(&a, &b, 0.5, 6).unwrap();
        assert!(
            medians[0] <= 0.0 && 0.0 <= medians[1],
            "same medians: {medians:?}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_interval_and_other_seeds_others() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = sample(&mut rng, 500, 40.0, 0.6);
        let b = sample(&mut rng, 500, 44.0, 0.6);
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(quantile_ci(&a, q, 1), quantile_ci(&a, q, 1));
            assert_eq!(
                quantile_delta_ci(&a, &b, q, 1),
                quantile_delta_ci(&a, &b, q, 1)
            );
            // The ends fall on bucket values, so two seeds may agree; ten may not.
            let seeded: Vec<_> = (0..10)
                .map(|seed| quantile_delta_ci(&a, &b, q, seed))
                .collect();
            assert!(
                seeded.iter().any(|interval| *interval != seeded[0]),
                "q = {q}: {seeded:?}"
            );
        }
        assert_eq!(seed(&a, &b, 1), seed(&a, &b, 1));
        assert_ne!(seed(&a, &b, 1), seed(&b, &a, 1));
        assert_ne!(seed(&a, &b, 1), seed(&a, &b, 2));
    }

    /// The median's interval is what `compare` gave before the bootstrap was
    /// generalised to any quantile (pinned from that code), so comparisons made
    /// before and after agree.
    #[test]
    fn the_median_interval_is_unchanged_by_the_generalisation() {
        let mut rng = StdRng::seed_from_u64(11);
        let normal = rand_distr::Normal::<f64>::new(0.0, 0.6).unwrap();
        let (mut a, mut b) = (Distribution::default(), Distribution::default());
        for _ in 0..500 {
            a.add((40e6 * normal.sample(&mut rng).exp()) as i64);
        }
        for _ in 0..300 {
            b.add((45e6 * normal.sample(&mut rng).exp()) as i64);
        }
        assert_eq!(median_delta_ci(&a, &b, 7), Some([4.980736, 14.41792]));
        assert_eq!(
            quantile_delta_ci(&a, &b, 0.5, 7),
            median_delta_ci(&a, &b, 7)
        );
    }

    #[test]
    fn too_few_values_or_a_quantile_outside_0_1_give_none() {
        let mut rng = StdRng::seed_from_u64(3);
        let few = sample(&mut rng, 9, 10.0, 0.6);
        let enough = sample(&mut rng, 10, 10.0, 0.6);
        assert_eq!(quantile_ci(&few, 0.5, 1), None);
        assert!(quantile_ci(&enough, 0.5, 1).is_some());
        assert_eq!(quantile_delta_ci(&few, &enough, 0.5, 1), None);
        assert_eq!(quantile_delta_ci(&enough, &few, 0.5, 1), None);
        for q in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert_eq!(quantile_ci(&enough, q, 1), None, "{q}");
            assert_eq!(quantile_delta_ci(&enough, &enough, q, 1), None, "{q}");
        }
        let [low, high] = quantile_ci(&enough, 0.99, 1).unwrap();
        assert!(low <= high);
    }
}
