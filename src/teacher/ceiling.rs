//! The teacher's own accuracy when its parameters are perturbed: the ceiling any spiking student
//! of it can reach on a mismatched chip. A student reproduces the teacher's dynamics; a chip's
//! mismatch shows in the decoded dynamics roughly as relative errors of the teacher's input
//! weights, recurrent weights and time constants, so a teacher that fails at 20 % relative
//! error leaves the student nothing to track.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::TeacherWeights;
use super::train::evaluate;
use crate::tasks::{Split, Task};

/// The teacher's accuracy on test trials at one relative sigma, per perturbed draw.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CeilingLevel {
    pub sigma: f64,
    /// Accuracy of each perturbed copy (draw d is keyed by (seed, sigma index, d)).
    pub accuracies: Vec<f64>,
}

/// A copy of `w` with W_in and W_rec times (1 + sigma z) per entry and every tau drawn from
/// |N(tau, (sigma tau)²)| (kept >= dt): the paper-mode mismatch applied to the rate network.
pub fn perturbed(w: &TeacherWeights, sigma: f32, rng: &mut StdRng) -> TeacherWeights {
    let mut p = w.clone();
    let mut z = || -> f32 { StandardNormal.sample(&mut *rng) };
    for x in p.w_in.iter_mut().chain(p.w_rec.iter_mut()) {
        *x *= 1.0 + sigma * z();
    }
    for t in p.tau_ms.iter_mut() {
        *t = (*t * (1.0 + sigma * z())).abs().max(p.dt_ms);
    }
    p
}

/// The teacher's test accuracy over `draws` perturbed copies per sigma, `trials` test trials
/// each (the same trials for every copy).
pub fn ceiling(
    w: &TeacherWeights,
    task: &dyn Task,
    sigmas: &[f32],
    draws: usize,
    trials: usize,
    seed: u64,
) -> Vec<CeilingLevel> {
    sigmas
        .iter()
        .enumerate()
        .map(|(si, &sigma)| {
            let accuracies = (0..draws)
                .into_par_iter()
                .map(|d| {
                    let key = seed ^ 0x7ea_c4e2 ^ ((si as u64) << 40) ^ d as u64;
                    let mut rng = StdRng::seed_from_u64(key);
                    evaluate(&perturbed(w, sigma, &mut rng), task, Split::Test, trials).0
                })
                .collect();
            CeilingLevel {
                // through the shortest decimal form, so 0.2 stays 0.2
                sigma: sigma.to_string().parse().unwrap_or(sigma as f64),
                accuracies,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::weights::TeacherInit;

    fn teacher() -> TeacherWeights {
        let init = TeacherInit {
            input_scale: 2.0,
            spectral_radius: 0.9,
            tau_init_min_ms: 10.0,
            tau_init_max_ms: 50.0,
        };
        TeacherWeights::init(8, 1, 1, &init, 3)
    }

    #[test]
    fn sigma_zero_is_the_teacher_and_draws_are_reproducible() {
        let w = teacher();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(perturbed(&w, 0.0, &mut rng), w);
        let a = perturbed(&w, 0.2, &mut StdRng::seed_from_u64(5));
        let b = perturbed(&w, 0.2, &mut StdRng::seed_from_u64(5));
        assert_eq!(a, b);
        // relative errors of the right size: the std of w'/w - 1 over the entries is ~ sigma
        let r: Vec<f64> = w
            .w_rec
            .iter()
            .zip(&a.w_rec)
            .filter(|(x, _)| **x != 0.0)
            .map(|(x, y)| (*y / *x - 1.0) as f64)
            .collect();
        let sd = (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64).sqrt();
        assert!((sd - 0.2).abs() < 0.04, "{sd}");
        assert!(a.tau_ms.iter().all(|&t| t >= a.dt_ms));
    }
}
