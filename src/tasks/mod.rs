//! Benchmark tasks generated in code from a seed (docs/design.md §4).
//!
//! Every task yields [`Trial`]s that are a pure function of `(seed, split, index)`, so any
//! trial can be regenerated on demand (no data set on disk) and the train, validation and
//! test streams never overlap.

pub mod ecg;
pub mod xor;

use serde::{Deserialize, Serialize};

/// Which disjoint stream of trials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Trials used for fitting.
    Train,
    /// Trials used for model selection and early stopping.
    Validation,
    /// Held-out trials used only for the final numbers.
    Test,
}

impl Split {
    /// A per-split constant mixed into the seed; arbitrary odd values far apart in bit space.
    fn tag(self) -> u64 {
        match self {
            Split::Train => 0x5452_4149_4E00_0001,
            Split::Validation => 0x5641_4C49_4400_0003,
            Split::Test => 0x5445_5354_0000_0005,
        }
    }
}

/// One trial. Row-major time series.
#[derive(Clone, Debug)]
pub struct Trial {
    /// `steps * channels` values, `input[t * channels + c]`.
    pub input: Vec<f32>,
    /// `steps * outputs` values, `target[t * outputs + o]`.
    pub target: Vec<f32>,
    /// XOR: +1 when the signs differ, -1 when equal. ECG: 1 for a trial with an anomaly, 0 normal.
    pub label: i32,
    /// Number of time steps.
    pub steps: usize,
    /// Number of input channels.
    pub channels: usize,
    /// Number of output channels.
    pub outputs: usize,
    /// Half-open step range where the decision is read (XOR response window; ECG: whole trial).
    pub window: (usize, usize),
    /// Task-specific event annotations for plots/tests, e.g. pulse or beat intervals:
    /// `(start, end, kind)`, half-open in steps.
    pub events: Vec<(usize, usize, i32)>,
}

/// A task: a deterministic trial generator plus its decision rule.
pub trait Task: Send + Sync {
    /// Short identifier used in file names and reports.
    fn name(&self) -> &'static str;
    /// Number of input channels.
    fn channels(&self) -> usize;
    /// Number of output channels.
    fn outputs(&self) -> usize;
    /// Number of time steps per trial.
    fn steps(&self) -> usize;
    /// Duration of one step in milliseconds.
    fn dt_ms(&self) -> f32 {
        1.0
    }
    /// Deterministic: the same (split, index) always gives the same trial; splits are disjoint streams.
    fn trial(&self, split: Split, index: u64) -> Trial;
    /// The predicted label from a network output (steps * outputs), or None when the output makes no decision (counts as wrong).
    fn decide(&self, trial: &Trial, output: &[f32]) -> Option<i32>;
    /// Whether the output's decision matches the trial's label.
    fn correct(&self, trial: &Trial, output: &[f32]) -> bool {
        self.decide(trial, output) == Some(trial.label)
    }
    /// The set of labels (for balanced sampling / reports).
    fn labels(&self) -> &'static [i32];
}

/// The splitmix64 finaliser: a bijection on u64 with good avalanche.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derive the per-trial RNG seed from (global seed, split, index) with a splitmix64-style mixer
/// so streams are disjoint and independent. Use `rand::rngs::StdRng::seed_from_u64(trial_seed(..))`.
///
/// For a fixed `(seed, split)` the map from `index` is a bijection, so two indices of one
/// split never share a seed; across splits a collision needs a 64-bit coincidence.
pub fn trial_seed(seed: u64, split: Split, index: u64) -> u64 {
    let stream = splitmix64(splitmix64(seed) ^ split.tag());
    splitmix64(stream ^ index)
}

/// Gaussian smoothing (kernel sigma in steps, truncated at 4 sigma, normalised, edge-renormalised), used by both tasks.
///
/// Near the ends only the part of the kernel inside the signal is used and re-normalised, so a
/// constant signal stays constant. A non-finite or non-positive sigma returns the input unchanged.
pub fn gaussian_smooth(x: &[f32], sigma: f32) -> Vec<f32> {
    if !(sigma.is_finite() && sigma > 0.0) || x.is_empty() {
        return x.to_vec();
    }
    // Cap the radius at the signal length: a wider kernel adds nothing but cost.
    let radius = ((4.0 * sigma).ceil() as usize).min(x.len());
    let kernel: Vec<f32> = (0..=radius)
        .map(|k| {
            let u = k as f32 / sigma;
            (-0.5 * u * u).exp()
        })
        .collect();
    let n = x.len();
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(radius);
            let hi = (i + radius).min(n - 1);
            let mut acc = 0.0f32;
            let mut norm = 0.0f32;
            for (j, &xj) in x.iter().enumerate().take(hi + 1).skip(lo) {
                let w = kernel[i.abs_diff(j)];
                acc += w * xj;
                norm += w;
            }
            acc / norm
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_seed_differs_across_splits_and_indices() {
        let mut seen = std::collections::HashSet::new();
        for split in [Split::Train, Split::Validation, Split::Test] {
            for i in 0..1000 {
                assert!(seen.insert(trial_seed(7, split, i)), "{split:?} {i}");
            }
        }
        assert_ne!(
            trial_seed(1, Split::Train, 0),
            trial_seed(2, Split::Train, 0)
        );
        assert_eq!(trial_seed(3, Split::Test, 9), trial_seed(3, Split::Test, 9));
    }

    #[test]
    fn gaussian_smooth_preserves_constants_and_mass() {
        let c = vec![2.5f32; 50];
        for v in gaussian_smooth(&c, 3.0) {
            assert!((v - 2.5).abs() < 1e-5);
        }
        // An impulse far from the edges keeps its mass and gets the expected peak 1/(sqrt(2 pi) sigma).
        let mut x = vec![0.0f32; 200];
        x[100] = 1.0;
        let y = gaussian_smooth(&x, 5.0);
        let mass: f32 = y.iter().sum();
        assert!((mass - 1.0).abs() < 1e-4, "mass {mass}");
        let peak = 1.0 / ((2.0 * std::f32::consts::PI).sqrt() * 5.0);
        assert!((y[100] - peak).abs() < 1e-3, "peak {}", y[100]);
        assert!((y[105] - peak * (-0.5f32).exp()).abs() < 1e-3);
        // Truncated at 4 sigma.
        assert_eq!(y[79], 0.0);
        assert!(y[80] > 0.0);
        assert_eq!(gaussian_smooth(&x, 0.0), x);
        assert!(gaussian_smooth(&[], 2.0).is_empty());
    }
}
