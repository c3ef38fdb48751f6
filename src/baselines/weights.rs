//! Fixed random weights of the FORCE and reservoir networks, drawn from the configured seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A sparse random recurrence, `[pre][post]` N x N: each synapse j -> i (j != i) exists with
/// probability `p` and has weight `gain z / sqrt(N p)`, z ~ N(0, 1); then the mean of each
/// neuron's input weights is removed (over its existing synapses), so the recurrence adds no net
/// drive (Nicola and Clopath's Ω).
pub fn sparse_recurrence(n: usize, p: f32, gain: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let scale = gain / ((n as f32 * p).max(1e-9)).sqrt();
    let mut w = vec![0f32; n * n];
    let mut exists = vec![false; n * n];
    for j in 0..n {
        for i in 0..n {
            if i != j && rng.random::<f32>() < p {
                let z: f32 = StandardNormal.sample(&mut rng);
                w[j * n + i] = scale * z;
                exists[j * n + i] = true;
            }
        }
    }
    for i in 0..n {
        let (mut sum, mut count) = (0f64, 0usize);
        for j in 0..n {
            if exists[j * n + i] {
                sum += w[j * n + i] as f64;
                count += 1;
            }
        }
        if count > 0 {
            let mean = (sum / count as f64) as f32;
            for j in 0..n {
                if exists[j * n + i] {
                    w[j * n + i] -= mean;
                }
            }
        }
    }
    w
}

/// A sparse Gaussian input projection, N x C: each entry exists with probability `p` and is
/// `gain z`.
pub fn sparse_input(n: usize, c: usize, p: f32, gain: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * c)
        .map(|_| {
            let keep = rng.random::<f32>() < p;
            let z: f32 = StandardNormal.sample(&mut rng);
            if keep { gain * z } else { 0.0 }
        })
        .collect()
}

/// A dense uniform matrix, `rows x cols`, entries `scale U(-1, 1)` (FORCE's feedback E).
pub fn uniform(rows: usize, cols: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..rows * cols)
        .map(|_| scale * (2.0 * rng.random::<f32>() - 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recurrence_has_the_asked_density_scale_and_zero_row_means() {
        let (n, p, g) = (400, 0.1f32, 1.5f32);
        let w = sparse_recurrence(n, p, g, 3);
        let nz = w.iter().filter(|&&x| x != 0.0).count() as f64;
        let density = nz / (n * (n - 1)) as f64;
        assert!((density - 0.1).abs() < 0.005, "density {density}");
        for i in 0..n {
            assert_eq!(w[i * n + i], 0.0);
            let s: f64 = (0..n).map(|j| w[j * n + i] as f64).sum();
            assert!(s.abs() < 1e-4, "column {i} sums to {s}");
        }
        // variance of an entry that exists: (g^2 / (N p)) (1 - 1/k) with k ~ 40 inputs
        let var = w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / nz;
        let want = (g * g) as f64 / (n as f64 * p as f64) * (1.0 - 1.0 / 40.0);
        assert!((var / want - 1.0).abs() < 0.05, "var {var} vs {want}");
        assert_eq!(w, sparse_recurrence(n, p, g, 3));
        assert_ne!(w, sparse_recurrence(n, p, g, 4));
    }
}
