//! Initialisation of Network ADS (docs/design.md §2, paper §2.2), computed in f64 and stored as f32.
//!
//! ```text
//! lambda  = 1 / tau_mem            (1/s; tau_mem in seconds)
//! D0      = randn(Nc, N) / Nc      (StdRng::seed_from_u64(seed), StandardNormal, row-major order)
//! T_i     = (nu lambda + mu lambda² + (sum_k |D0[k,i]|)²) / 2
//! D[:,i]  = tau_mem (V_th - V_rest) D0[:,i] / T_i
//! F       = Dᵀ
//! W_fast  = -c (D0ᵀ D0 + mu lambda² I)[i,:] / T_i, diagonal 0   (all zero when use_fast = false)
//! ```

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use super::params::SnnParams;

/// The fixed matrices of a fresh network.
pub struct InitWeights {
    /// Nc x N.
    pub d: Vec<f32>,
    /// N x Nc (= Dᵀ).
    pub f: Vec<f32>,
    /// N x N, `[pre][post]`.
    pub w_fast: Vec<f32>,
    /// Per-neuron theoretical thresholds T_i.
    pub t: Vec<f64>,
}

/// Computes D, F, W_fast for `params` and `nc` with the given seed.
pub fn init_weights(params: &SnnParams, nc: usize, seed: u64) -> InitWeights {
    let n = params.n;
    let mut rng = StdRng::seed_from_u64(seed);
    let d0: Vec<f64> = (0..nc * n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z / nc as f64
        })
        .collect();
    let tau_mem = params.tau_mem_s() as f64;
    let lambda = 1.0 / tau_mem;
    let (mu, nu) = (params.mu as f64, params.nu as f64);
    let t: Vec<f64> = (0..n)
        .map(|i| {
            let l1: f64 = (0..nc).map(|k| d0[k * n + i].abs()).sum();
            (nu * lambda + mu * lambda * lambda + l1 * l1) / 2.0
        })
        .collect();
    let a = (params.v_th - params.v_rest) as f64;
    let mut d = vec![0f32; nc * n];
    let mut f = vec![0f32; n * nc];
    for k in 0..nc {
        for i in 0..n {
            let v = (tau_mem * a * d0[k * n + i] / t[i]) as f32;
            d[k * n + i] = v;
            f[i * nc + k] = v;
        }
    }
    let mut w_fast = vec![0f32; n * n];
    if params.use_fast && params.fast_gain != 0.0 {
        let c = params.fast_gain as f64;
        // Columns of D0 as contiguous rows for the Gram matrix.
        let mut cols = vec![0f64; n * nc];
        for k in 0..nc {
            for i in 0..n {
                cols[i * nc + k] = d0[k * n + i];
            }
        }
        for i in 0..n {
            let ci = &cols[i * nc..(i + 1) * nc];
            for j in 0..n {
                if i == j {
                    continue;
                }
                let cj = &cols[j * nc..(j + 1) * nc];
                let omega: f64 = ci.iter().zip(cj).map(|(x, y)| x * y).sum();
                // synapse j -> i, scaled by the post neuron's T_i
                w_fast[j * n + i] = (-c * omega / t[i]) as f32;
            }
        }
    }
    InitWeights { d, f, w_fast, t }
}
