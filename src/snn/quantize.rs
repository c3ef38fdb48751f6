//! Post-training uniform weight quantisation (paper §7.2):
//! `delta = (max - min) / (2^b - 1)`, `M_q = delta * round(M / delta)`.
//!
//! The grid is anchored at 0 (zero weights, e.g. the zero diagonals, stay exactly 0). The integer
//! level is clamped to `[round(min/delta), round(min/delta) + 2^b - 1]`, which only guards
//! against floating-point ties, so a matrix never holds more than `2^b` distinct values.
//! A matrix whose entries are all equal (including an all-zero one) is returned unchanged.

/// Which matrices a quantisation rounds (each on its own grid).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum QuantScope {
    /// F (or the input override), D, W_fast and W_slow: all weights.
    #[default]
    All,
    /// The paper's code: F, D and W_slow; W_fast stays in float (its quantisation never took
    /// effect there), so our figure can be set beside the paper's.
    Paper,
    /// Only the encoder F (the input projection), for the sensitivity table.
    F,
    /// Only the decoder D.
    D,
    /// Only W_fast.
    WFast,
    /// Only W_slow.
    WSlow,
}

impl QuantScope {
    pub fn is_all(&self) -> bool {
        *self == QuantScope::All
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            QuantScope::All => "all",
            QuantScope::Paper => "paper",
            QuantScope::F => "f",
            QuantScope::D => "d",
            QuantScope::WFast => "w_fast",
            QuantScope::WSlow => "w_slow",
        }
    }
    /// Does the scope round (F, D, W_fast, W_slow)?
    pub fn rounds(&self) -> [bool; 4] {
        match self {
            QuantScope::All => [true; 4],
            QuantScope::Paper => [true, true, false, true],
            QuantScope::F => [true, false, false, false],
            QuantScope::D => [false, true, false, false],
            QuantScope::WFast => [false, false, true, false],
            QuantScope::WSlow => [false, false, false, true],
        }
    }
}

/// Bits at and above which a "quantisation" is the float matrix itself (f32 has a 24-bit
/// significand; 32 is the conventional "float" setting of quantisation-aware training).
pub const FLOAT_BITS: u32 = 32;

/// Quantises `m` to `bits` bits (per matrix). `bits == 0`, `bits >= FLOAT_BITS` or an empty
/// matrix returns `m` unchanged.
pub fn quantize(m: &[f32], bits: u32) -> Vec<f32> {
    if m.is_empty() || bits == 0 || bits >= FLOAT_BITS {
        return m.to_vec();
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in m {
        lo = lo.min(x as f64);
        hi = hi.max(x as f64);
    }
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return m.to_vec();
    }
    let levels = (2f64).powi(bits.min(31) as i32) - 1.0;
    let delta = (hi - lo) / levels;
    let k_min = (lo / delta).round();
    let k_max = k_min + levels;
    m.iter()
        .map(|&x| {
            // `+ 0.0` turns -0.0 into +0.0 (so 0 is one level, not two bit patterns)
            (delta * ((x as f64) / delta).round().clamp(k_min, k_max)) as f32 + 0.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn distinct(v: &[f32]) -> usize {
        v.iter().map(|x| x.to_bits()).collect::<HashSet<_>>().len()
    }

    #[test]
    fn at_most_two_pow_b_values() {
        let m: Vec<f32> = (0..5000)
            .map(|i| ((i as f32 * 0.7311).sin() * 3.1 + 0.37 * (i % 7) as f32) - 0.5)
            .collect();
        for b in 1..=8 {
            let q = quantize(&m, b);
            assert!(distinct(&q) <= 1 << b, "bits {b}: {}", distinct(&q));
            assert!(distinct(&q) >= (1 << b) - 1, "bits {b} uses the range");
            let lo = m.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = m.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let delta = (hi - lo) / ((1 << b) - 1) as f32;
            for (a, c) in m.iter().zip(&q) {
                assert!((a - c).abs() <= 0.5 * delta + 1e-5);
            }
        }
    }

    #[test]
    fn equal_and_zero_preserved() {
        assert_eq!(quantize(&[0.3; 9], 3), vec![0.3; 9]);
        assert_eq!(quantize(&[0.0; 9], 3), vec![0.0; 9]);
        let q = quantize(&[0.0, 1.0, -0.77, 0.31], 2);
        assert_eq!(q[0], 0.0);
        // delta = 1.77 / 3 = 0.59: 1.0 -> 2*0.59, -0.77 -> -1*0.59, 0.31 -> 1*0.59
        let d = 1.77f64 / 3.0;
        assert!((q[1] as f64 - 2.0 * d).abs() < 1e-6);
        assert!((q[2] as f64 + d).abs() < 1e-6);
        assert!((q[3] as f64 - d).abs() < 1e-6);
    }
}
