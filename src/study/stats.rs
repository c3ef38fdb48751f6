//! Summary statistics for robustness studies.
//!
//! A study evaluates a network on many simulated chip instances; per perturbation
//! level it reports the median and inter-quartile range (robust to the heavy tails
//! that broken instances produce), and compares two networks evaluated on the
//! *same* instance draws with a paired Wilcoxon signed-rank test (no normality
//! assumption on the per-instance accuracy differences).
//!
//! Only `std` and `serde` are used so that the numbers are reproducible without
//! an external statistics library.

use serde::{Deserialize, Serialize};

/// Median and quartiles of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quartiles {
    /// 50th percentile.
    pub median: f64,
    /// 25th percentile (lower quartile).
    pub q25: f64,
    /// 75th percentile (upper quartile).
    pub q75: f64,
}

impl Quartiles {
    /// Inter-quartile range `q75 - q25`.
    pub fn iqr(&self) -> f64 {
        self.q75 - self.q25
    }
}

/// Quantile of an ascending-sorted slice by linear interpolation between order statistics
/// (Hyndman & Fan type 7, numpy's default): h = (n-1) q, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]).
///
/// `q` is clamped to `[0, 1]` so that rounding in a caller's `q` cannot index out
/// of bounds; an empty slice or a NaN `q` gives NaN. The slice is not checked for
/// order (that would cost O(n) on every call); unsorted input gives a meaningless
/// but finite result.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    let n = sorted.len();
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    if lo + 1 >= n {
        return sorted[n - 1];
    }
    let frac = h - lo as f64;
    sorted[lo] + frac * (sorted[lo + 1] - sorted[lo])
}

/// Quartiles of any sample; NaNs are ignored; an empty sample gives NaNs.
///
/// Quantiles use [`quantile_sorted`] (type 7), so results match numpy's defaults.
pub fn quartiles(values: &[f64]) -> Quartiles {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    Quartiles {
        median: quantile_sorted(&sorted, 0.5),
        q25: quantile_sorted(&sorted, 0.25),
        q75: quantile_sorted(&sorted, 0.75),
    }
}

/// Arithmetic mean of a sample; NaNs are ignored (as in [`quartiles`], so that a
/// failed evaluation does not poison a whole level); an empty sample gives NaN.
pub fn mean(values: &[f64]) -> f64 {
    let (sum, count) = values
        .iter()
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, c), &v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Method string for the exact null distribution.
const METHOD_EXACT: &str = "exact";
/// Method string for the large-sample / tied case.
const METHOD_NORMAL: &str = "normal approximation (tie-corrected, continuity-corrected)";
/// Largest number of non-zero differences for which the exact distribution is used;
/// beyond it the normal approximation is accurate and the DP table grows as n^3.
const EXACT_MAX_N: usize = 25;

/// Result of a paired, two-sided Wilcoxon signed-rank test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wilcoxon {
    /// Pairs used, i.e. pairs where neither value is NaN (zero differences included).
    pub n_pairs: usize,
    /// Pairs with a non-zero difference; only these are ranked.
    pub n_nonzero: usize,
    /// Sum of the (average) ranks of `|a - b|` over pairs with `a > b`.
    pub w_plus: f64,
    /// Sum of the (average) ranks of `|a - b|` over pairs with `a < b`.
    pub w_minus: f64,
    /// Test statistic `min(W+, W-)`.
    pub statistic: f64,
    /// Normal-approximation z-score of `W+` (tie- and continuity-corrected);
    /// positive when `a` tends to exceed `b`. Reported for both methods so that the
    /// direction and size of the effect are visible; 0 when `n_nonzero = 0`.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Median of `a - b` over the used pairs (zeros included), as an effect size in
    /// the units of the data.
    pub median_difference: f64,
    /// `"exact"` or `"normal approximation (tie-corrected, continuity-corrected)"`.
    pub method: String,
}

/// Paired two-sided Wilcoxon signed-rank test of a - b. Pairs with a NaN are dropped; zero differences are dropped (Wilcoxon's convention); tied |differences| get average ranks.
/// p-value: exact (enumerate the null distribution of W+ by dynamic programming over ranks) when n_nonzero <= 25 and there are no ties among |d|; otherwise the normal approximation with the tie-corrected variance n(n+1)(2n+1)/24 - sum(t^3 - t)/48 and a continuity correction of 0.5. All differences zero (or n_nonzero = 0): p = 1.
///
/// Returns `Err` when the slices have different lengths, because pairing would be
/// ambiguous.
pub fn wilcoxon_signed_rank(a: &[f64], b: &[f64]) -> Result<Wilcoxon, String> {
    if a.len() != b.len() {
        return Err(format!(
            "wilcoxon_signed_rank: paired samples differ in length (a has {}, b has {})",
            a.len(),
            b.len()
        ));
    }
    let diffs: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
        .map(|(x, y)| x - y)
        .collect();
    let n_pairs = diffs.len();
    let median_difference = quartiles(&diffs).median;

    // Infinite inputs can yield inf - inf = NaN; such a pair carries no sign, so it
    // is treated like a zero difference rather than poisoning the ranking.
    let mut nonzero: Vec<f64> = diffs
        .iter()
        .copied()
        .filter(|d| *d != 0.0 && !d.is_nan())
        .collect();
    let n = nonzero.len();
    if n == 0 {
        return Ok(Wilcoxon {
            n_pairs,
            n_nonzero: 0,
            w_plus: 0.0,
            w_minus: 0.0,
            statistic: 0.0,
            z: 0.0,
            p_value: 1.0,
            median_difference,
            method: METHOD_EXACT.to_string(),
        });
    }

    nonzero.sort_by(|x, y| x.abs().total_cmp(&y.abs()));
    let mut w_plus = 0.0;
    let mut w_minus = 0.0;
    // Sum of t^3 - t over tie groups: it both lowers the variance and, when non-zero,
    // rules out the exact distribution (which assumes integer ranks 1..n).
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && nonzero[j].abs() == nonzero[i].abs() {
            j += 1;
        }
        // Positions i..j (0-based) hold ranks i+1..=j; ties share their average.
        let rank = (i + 1 + j) as f64 / 2.0;
        for d in &nonzero[i..j] {
            if *d > 0.0 {
                w_plus += rank;
            } else {
                w_minus += rank;
            }
        }
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let statistic = w_plus.min(w_minus);

    let nf = n as f64;
    let mean_w = nf * (nf + 1.0) / 4.0;
    let var_w = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    let dev = w_plus - mean_w;
    // The correction moves W+ half a step toward the mean but never past it, so a
    // statistic at the centre does not get a spurious non-zero z.
    let corrected = dev.signum() * (dev.abs() - 0.5).max(0.0);
    let z = if var_w > 0.0 && dev != 0.0 {
        corrected / var_w.sqrt()
    } else {
        0.0
    };

    let (p_value, method) = if n <= EXACT_MAX_N && tie_term == 0.0 {
        (exact_two_sided_p(n, statistic), METHOD_EXACT)
    } else {
        let p = erfc(z.abs() / std::f64::consts::SQRT_2);
        (p.min(1.0), METHOD_NORMAL)
    };

    Ok(Wilcoxon {
        n_pairs,
        n_nonzero: n,
        w_plus,
        w_minus,
        statistic,
        z,
        p_value,
        median_difference,
        method: method.to_string(),
    })
}

/// Exact two-sided p-value `2 P(W+ <= statistic)` under H0 for untied ranks `1..=n`.
///
/// Under H0 each rank enters W+ independently with probability 1/2, so the number
/// of sign assignments with W+ = k is the number of subsets of `{1..n}` summing to
/// k, counted by the subset-sum DP. Counts are at most 2^25, exact in f64.
fn exact_two_sided_p(n: usize, statistic: f64) -> f64 {
    let max_sum = n * (n + 1) / 2;
    let mut counts = vec![0.0f64; max_sum + 1];
    counts[0] = 1.0;
    for rank in 1..=n {
        // Descending so each rank is used at most once per subset.
        for k in (rank..=max_sum).rev() {
            counts[k] += counts[k - rank];
        }
    }
    // Without ties the ranks are integers, so the statistic is integral; floor
    // guards against any representation noise in the rank sums.
    let s = statistic.floor() as usize;
    let below: f64 = counts[..=s.min(max_sum)].iter().sum();
    let total = 2f64.powi(n as i32);
    (2.0 * below / total).min(1.0)
}

/// Complementary error function, accurate to a few 1e-15 relative for x >= 0.
///
/// Two regimes avoid cancellation: for small x the all-positive series
/// `erf(x) = 2/sqrt(pi) exp(-x^2) sum 2^k x^(2k+1) / (2k+1)!!` (erfc > 0.03 there,
/// so `1 - erf` keeps its relative accuracy); for large x the Laplace continued
/// fraction (under ~100 terms for x >= 1.5), which gives erfc directly and so
/// stays accurate for tiny p-values.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let two_over_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI;
    if x < 1.5 {
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut k = 0.0;
        while term > 1e-17 * sum {
            k += 1.0;
            term *= 2.0 * x2 / (2.0 * k + 1.0);
            sum += term;
        }
        return 1.0 - two_over_sqrt_pi * (-x2).exp() * sum;
    }
    // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
    // evaluated with the modified Lentz algorithm.
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..1000 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = TINY;
        }
        c = x + a / c;
        if c == 0.0 {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    two_over_sqrt_pi / 2.0 * (-x * x).exp() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn quartiles_of_four() {
        // Type 7: h = 3q; q25 -> h=0.75 -> 1 + 0.75; q75 -> h=2.25 -> 3 + 0.25.
        let q = quartiles(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            q,
            Quartiles {
                median: 2.5,
                q25: 1.75,
                q75: 3.25
            }
        );
        assert_eq!(q.iqr(), 1.5);
    }

    #[test]
    fn quartiles_of_single_value() {
        let q = quartiles(&[7.0]);
        assert_eq!((q.median, q.q25, q.q75), (7.0, 7.0, 7.0));
    }

    #[test]
    fn quartiles_of_three_unsorted() {
        // Sorted [1,2,3]: h = 2q -> q25 = 1.5, median = 2, q75 = 2.5.
        let q = quartiles(&[3.0, 1.0, 2.0]);
        assert_eq!((q.median, q.q25, q.q75), (2.0, 1.5, 2.5));
    }

    #[test]
    fn quartiles_unsorted_matches_sorted() {
        let q = quartiles(&[10.0, -2.0, 4.0, 8.0, 0.0]);
        // Sorted [-2,0,4,8,10]: h = 4q -> q25 = 0, median = 4, q75 = 8.
        assert_eq!((q.median, q.q25, q.q75), (4.0, 0.0, 8.0));
    }

    #[test]
    fn quartiles_ignore_nan() {
        let q = quartiles(&[f64::NAN, 4.0, 1.0, f64::NAN, 3.0, 2.0]);
        assert_eq!((q.median, q.q25, q.q75), (2.5, 1.75, 3.25));
    }

    #[test]
    fn quartiles_of_empty_or_all_nan_are_nan() {
        for q in [quartiles(&[]), quartiles(&[f64::NAN, f64::NAN])] {
            assert!(q.median.is_nan() && q.q25.is_nan() && q.q75.is_nan());
        }
    }

    #[test]
    fn quantile_sorted_hand_values() {
        let x = [10.0, 20.0, 40.0, 80.0, 160.0];
        // n-1 = 4.
        assert_eq!(quantile_sorted(&x, 0.0), 10.0);
        assert_eq!(quantile_sorted(&x, 1.0), 160.0);
        // h = 0.4 -> 10 + 0.4 * 10 = 14.
        assert!(close(quantile_sorted(&x, 0.1), 14.0, 1e-12));
        // h = 3.6 -> 80 + 0.6 * 80 = 128.
        assert!(close(quantile_sorted(&x, 0.9), 128.0, 1e-12));
        // h = 1.2 -> 20 + 0.2 * 20 = 24.
        assert!(close(quantile_sorted(&x, 0.3), 24.0, 1e-12));
        // h = 2 exactly.
        assert_eq!(quantile_sorted(&x, 0.5), 40.0);
        // Out-of-range q is clamped, NaN q and empty input give NaN.
        assert_eq!(quantile_sorted(&x, 1.5), 160.0);
        assert_eq!(quantile_sorted(&x, -0.5), 10.0);
        assert!(quantile_sorted(&x, f64::NAN).is_nan());
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert_eq!(quantile_sorted(&[3.0], 0.7), 3.0);
    }

    #[test]
    fn mean_ignores_nan() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert_eq!(mean(&[1.0, f64::NAN, 5.0]), 3.0);
        assert!(mean(&[]).is_nan());
        assert!(mean(&[f64::NAN]).is_nan());
    }

    #[test]
    fn erfc_matches_reference_values() {
        // Reference values from mpmath (computed at 30 digits, rounded to f64).
        let cases = [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            // Either side of the switch from series to continued fraction.
            (1.4999, 0.033_906_748_337_704_73),
            (1.5, 0.033_894_853_524_689_274),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (10.0, 2.088_487_583_762_545e-45),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                (got - want).abs() <= 1e-14 * want,
                "erfc({x}) = {got}, want {want}"
            );
        }
        assert!(close(erfc(-1.0), 2.0 - 0.157_299_207_050_285_13, 1e-15));
    }

    #[test]
    fn wilcoxon_small_exact_by_hand() {
        // d = a - b = [1.5, -0.5, 2, 3, 4, -1, 5, 6].
        // |d| ranked: 0.5->1(-), 1->2(-), 1.5->3(+), 2->4(+), 3->5(+), 4->6(+), 5->7(+), 6->8(+).
        // W- = 1 + 2 = 3, W+ = 36 - 3 = 33, statistic = 3.
        // Subsets of {1..8} with sum <= 3: {}, {1}, {2}, {3}, {1,2} -> 5 of 256.
        // p = 2 * 5 / 256 = 0.0390625.
        let b = [1.0, 2.0, 0.5, -3.0, 10.0, 4.0, 0.0, 2.5];
        let d = [1.5, -0.5, 2.0, 3.0, 4.0, -1.0, 5.0, 6.0];
        let a: Vec<f64> = b.iter().zip(d).map(|(x, y)| x + y).collect();
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert_eq!(w.n_pairs, 8);
        assert_eq!(w.n_nonzero, 8);
        assert_eq!(w.w_plus, 33.0);
        assert_eq!(w.w_minus, 3.0);
        assert_eq!(w.statistic, 3.0);
        assert_eq!(w.method, "exact");
        assert!(close(w.p_value, 10.0 / 256.0, 1e-15), "p = {}", w.p_value);
        assert!(w.z > 0.0);
        // Sorted d: [-1,-0.5,1.5,2,3,4,5,6] -> median (2+3)/2.
        assert_eq!(w.median_difference, 2.5);
    }

    #[test]
    fn wilcoxon_exact_all_positive() {
        // Only the empty subset has W- = 0: p = 2 / 2^10.
        let a: Vec<f64> = (1..=10).map(f64::from).collect();
        let b = vec![0.0; 10];
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert_eq!((w.w_plus, w.w_minus), (55.0, 0.0));
        assert!(close(w.p_value, 2.0 / 1024.0, 1e-15));
    }

    #[test]
    fn wilcoxon_exact_matches_brute_force_enumeration() {
        // Brute force over all 2^n sign patterns of ranks 1..n, independent of the DP.
        let n = 12usize;
        // A fixed pattern of signs for distinct magnitudes 1..n.
        let signs = [
            1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0,
        ];
        let a: Vec<f64> = (0..n).map(|i| signs[i] * (i + 1) as f64).collect();
        let b = vec![0.0; n];
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        let stat = w.statistic;
        let mut hits = 0u32;
        for mask in 0u32..(1 << n) {
            let wp: u32 = (0..n as u32)
                .filter(|r| mask & (1 << r) != 0)
                .map(|r| r + 1)
                .sum();
            if f64::from(wp) <= stat {
                hits += 1;
            }
        }
        let want = (2.0 * f64::from(hits) / f64::from(1u32 << n)).min(1.0);
        assert_eq!(w.method, "exact");
        assert!(close(w.p_value, want, 1e-15), "{} vs {want}", w.p_value);
    }

    #[test]
    fn wilcoxon_normal_approximation_with_ties_by_hand() {
        // d = [1, -1, 2, 2, 3, 3, 3, -4, 5, 6, 0]; the zero is dropped -> n = 10.
        // Ranks: |1|,|1| -> 1.5; 2,2 -> 3.5; 3,3,3 -> 6; 4 -> 8; 5 -> 9; 6 -> 10.
        // W- = 1.5 (the -1) + 8 (the -4) = 9.5; W+ = 55 - 9.5 = 45.5.
        // Mean = 10*11/4 = 27.5.
        // Var = 10*11*21/24 - [(2^3-2) + (2^3-2) + (3^3-3)]/48 = 96.25 - 36/48 = 95.5.
        // z = (45.5 - 27.5 - 0.5)/sqrt(95.5) = 17.5/sqrt(95.5).
        // p = erfc(z/sqrt 2) = 0.0733324933422639249 (mpmath, 30 digits).
        let d = [1.0, -1.0, 2.0, 2.0, 3.0, 3.0, 3.0, -4.0, 5.0, 6.0, 0.0];
        let b = vec![100.0; d.len()];
        let a: Vec<f64> = b.iter().zip(d).map(|(x, y)| x + y).collect();
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert_eq!(w.n_pairs, 11);
        assert_eq!(w.n_nonzero, 10);
        assert_eq!((w.w_plus, w.w_minus, w.statistic), (45.5, 9.5, 9.5));
        assert_eq!(
            w.method,
            "normal approximation (tie-corrected, continuity-corrected)"
        );
        assert!(close(w.z, 17.5 / 95.5f64.sqrt(), 1e-12));
        assert!(close(w.z, 1.790_755_785_338_278, 1e-12));
        assert!(
            close(w.p_value, 0.073_332_493_342_263_92, 1e-9),
            "p = {}",
            w.p_value
        );
        assert_eq!(w.median_difference, 2.0);
    }

    #[test]
    fn wilcoxon_large_sample_uses_normal_approximation() {
        // n = 30 > 25, no ties, all positive: W+ = 465, mean 232.5,
        // var = 30*31*61/24 = 2363.75, z = (465 - 232.5 - 0.5)/sqrt(2363.75) = 232/sqrt(2363.75).
        let a: Vec<f64> = (1..=30).map(f64::from).collect();
        let b = vec![0.0; 30];
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert!(w.method.starts_with("normal"));
        assert!(close(w.z, 232.0 / 2363.75f64.sqrt(), 1e-12));
    }

    #[test]
    fn wilcoxon_swapping_keeps_p_and_swaps_sums() {
        let a = [0.3, 1.2, 0.9, 2.5, 0.1, 1.7, 0.8, 1.1, 2.0, 0.4];
        let b = [0.5, 0.7, 0.2, 1.0, 0.6, 0.9, 0.85, 0.3, 1.2, 0.45];
        let ab = wilcoxon_signed_rank(&a, &b).unwrap();
        let ba = wilcoxon_signed_rank(&b, &a).unwrap();
        assert_eq!(ab.p_value, ba.p_value);
        assert_eq!(ab.w_plus, ba.w_minus);
        assert_eq!(ab.w_minus, ba.w_plus);
        assert_eq!(ab.statistic, ba.statistic);
        assert_eq!(ab.z, -ba.z);
        assert!(ab.w_plus != ab.w_minus);

        // Same with ties, through the normal approximation.
        let a = [1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 1.0, 0.0, 4.0, 4.0];
        let b = [0.0, 0.0, 4.0, 1.0, 3.0, 4.0, 0.0, 1.0, 2.0, 1.0];
        let ab = wilcoxon_signed_rank(&a, &b).unwrap();
        let ba = wilcoxon_signed_rank(&b, &a).unwrap();
        assert!(ab.method.starts_with("normal"));
        assert_eq!(ab.p_value, ba.p_value);
        assert_eq!((ab.w_plus, ab.w_minus), (ba.w_minus, ba.w_plus));
    }

    #[test]
    fn wilcoxon_all_equal_pairs_give_p_one() {
        let a = [0.9, 0.8, 0.7, 0.6];
        let w = wilcoxon_signed_rank(&a, &a).unwrap();
        assert_eq!(w.p_value, 1.0);
        assert_eq!(w.n_pairs, 4);
        assert_eq!(w.n_nonzero, 0);
        assert_eq!((w.w_plus, w.w_minus, w.statistic), (0.0, 0.0, 0.0));
        assert_eq!(w.median_difference, 0.0);

        let empty = wilcoxon_signed_rank(&[], &[]).unwrap();
        assert_eq!(empty.p_value, 1.0);
        assert!(empty.median_difference.is_nan());
    }

    #[test]
    fn wilcoxon_single_difference_is_not_significant() {
        // n = 1: W- = 0 with probability 1/2, so p = 2 * 1/2 = 1.
        let w = wilcoxon_signed_rank(&[2.0], &[1.0]).unwrap();
        assert_eq!(w.p_value, 1.0);
    }

    #[test]
    fn wilcoxon_drops_nan_pairs() {
        // Same as the hand example plus NaN pairs and a zero difference.
        let a = [1.5, -0.5, f64::NAN, 2.0, 3.0, 4.0, 7.0, -1.0, 5.0, 1.0, 6.0];
        let b = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, f64::NAN, 0.0, 0.0, 1.0, 0.0];
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert_eq!(w.n_pairs, 9);
        assert_eq!(w.n_nonzero, 8);
        assert_eq!((w.w_plus, w.w_minus), (33.0, 3.0));
        assert!(close(w.p_value, 10.0 / 256.0, 1e-15));
    }

    #[test]
    fn wilcoxon_strong_shift_is_highly_significant() {
        // Deterministic LCG noise; a exceeds b by 1 +- 0.25 on every pair.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let b: Vec<f64> = (0..30).map(|_| next()).collect();
        let a: Vec<f64> = b.iter().map(|x| x + 0.75 + 0.5 * next()).collect();
        let w = wilcoxon_signed_rank(&a, &b).unwrap();
        assert_eq!(w.n_nonzero, 30);
        assert_eq!(w.w_minus, 0.0);
        assert!(w.p_value < 1e-4, "p = {}", w.p_value);
        assert!(w.median_difference > 0.75 && w.median_difference < 1.25);
    }

    #[test]
    fn wilcoxon_length_mismatch_names_both_lengths() {
        let err = wilcoxon_signed_rank(&[1.0, 2.0, 3.0], &[1.0, 2.0]).unwrap_err();
        assert!(err.contains('3') && err.contains('2'), "{err}");
    }

    #[test]
    fn serde_types_are_serializable() {
        // Compile-time check that the derives exist; no JSON crate is a dependency here.
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<Quartiles>();
        assert_serde::<Wilcoxon>();
    }
}
