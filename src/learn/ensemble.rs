//! Mismatch-ensemble training of the local rule (docs/design.md §2): each training trial runs on
//! E freshly drawn simulated chips, all from the same W_slow; each chip has its own neuron
//! constants, decoder, encoder (its feedback F e), effective W_slow (and W_fast in full mode),
//! noise and silenced neurons, and its own error and updates. W_slow then moves by the mean of
//! the E updates, so the rule descends the tracking error expected over chips rather than on the
//! one nominal chip (`../shared/reference/robustness.md` P3).

use rayon::prelude::*;

use super::deferred::{ChipSlow, Deferred};
use super::rule::{TrainTrialStats, Trainer};
use crate::chip::rng::Stream;
use crate::chip::{Instance, MismatchMode, Perturbation};
use crate::config::RobustTraining;
use crate::engine::EngineError;
use crate::snn::Network;

/// Training chips are drawn with the run's seed mixed with this, so that they never coincide
/// with the study's test or validation chips (which use the seed itself).
pub const TRAIN_CHIP_KEY: u64 = 0x7261_696e_6368_6970;

/// What one chip did in an ensemble trial.
#[derive(Clone, Debug, PartialEq)]
pub struct ChipTrial {
    pub index: u32,
    pub stats: TrainTrialStats,
    /// Its update was left out (its rate ran above `max_rate_hz`).
    pub skipped: bool,
}

/// The perturbation of training chip `e` of a trial at mismatch `sigma`: the first
/// `nominal` chips are the nominal network (no mismatch, noise or silencing). With
/// `r.cv_shape` the chips get that per-parameter spread, its largest CV equal to `sigma`.
pub fn chip_perturbation(r: &RobustTraining, sigma: f32, e: usize, nominal: usize) -> Perturbation {
    if e < nominal {
        return Perturbation::default();
    }
    Perturbation {
        mismatch: sigma,
        mode: if r.full {
            MismatchMode::Full
        } else {
            MismatchMode::Paper
        },
        noise: r.noise,
        silence: r.silence,
        // a per-parameter spread replaces `mismatch` and `mode`
        cv: r.cv_shape.map(|shape| shape.with_largest(sigma)),
        ..Perturbation::default()
    }
}

/// Mismatch sigma of the training chips after `done` of `total` training trials: from
/// `sigma_start` up to `sigma` over the first `ramp` fraction of training, then constant.
pub fn sigma_at(r: &RobustTraining, done: usize, total: usize) -> f32 {
    let ramp = (r.ramp * total as f32).max(0.0);
    if ramp <= 0.0 || done as f32 >= ramp {
        return r.sigma;
    }
    r.sigma_start + (r.sigma - r.sigma_start) * done as f32 / ramp
}

/// The chips of training trial `trial` (global sample index) of the network with seed `seed`.
pub fn draw_chips(
    net: &Network,
    r: &RobustTraining,
    seed: u64,
    trial: u32,
    sigma: f32,
) -> Vec<Instance> {
    let e_n = r.instances;
    let nominal = (r.nominal_share * e_n as f32).round() as usize;
    (0..e_n)
        .into_par_iter()
        .map(|e| {
            let p = chip_perturbation(r, sigma, e, nominal);
            let index = trial.wrapping_mul(e_n as u32).wrapping_add(e as u32);
            Instance::draw(net, &p, seed ^ TRAIN_CHIP_KEY, index)
        })
        .collect()
}

/// One trial of the rule on `chip`, from `net`'s W_slow: the chip's run and its update
/// dW = sum_t eta r (F_chip e)ᵀ (diagonal 0). With `online` the update is applied to the chip's
/// own effective W_slow (nominal + dW, times the chip's factors) as it runs, as in plain
/// training; without it the chip runs on `net`'s W_slow throughout (quantisation-aware
/// training: the running weights stay on their grid within a trial). The update is applied in
/// blocks of `update_block` steps ([`Deferred`]; 1: every step): online, the chip's spikes
/// propagate through its current effective rows `(W_slow + dW)[j] ∘ G[j]`, pending part included.
#[allow(clippy::too_many_arguments)]
pub fn chip_update(
    net: &Network,
    chip: &Instance,
    input: &[f32],
    target_x: &[f32],
    k: f32,
    eta: f32,
    trial_index: u32,
    online: bool,
    update_block: usize,
) -> Result<(Vec<f32>, TrainTrialStats), EngineError> {
    chip_run(
        net,
        chip,
        input,
        target_x,
        k,
        eta,
        trial_index,
        online,
        update_block,
        None,
    )
}

/// [`chip_update`], recording the chip's spikes as (step, neuron) in `raster` when given.
#[allow(clippy::too_many_arguments)]
fn chip_run(
    net: &Network,
    chip: &Instance,
    input: &[f32],
    target_x: &[f32],
    k: f32,
    eta: f32,
    trial_index: u32,
    online: bool,
    update_block: usize,
    mut raster: Option<&mut Vec<(u32, u32)>>,
) -> Result<(Vec<f32>, TrainTrialStats), EngineError> {
    let (n, nc, c) = (net.n, net.nc, net.n_in);
    let steps = input.len() / c.max(1);
    // the chip's recurrent weights: effective W_slow = W_slow o G (G its factors; None: all 1,
    // where w * 1 = w exactly, so the nominal chip skips the products)
    let factors: Option<Vec<f32>> = (chip.factor_sigma(Stream::W_SLOW) > 0.0).then(|| {
        let mut g = vec![1f32; n * n];
        for (pre, row) in g.chunks_mut(n).enumerate() {
            chip.fill_factors(Stream::W_SLOW, pre as u32, row);
        }
        g
    });
    let mut eff: Vec<f32> = match &factors {
        Some(g) => net.w_slow.iter().zip(g).map(|(w, g)| w * g).collect(),
        None => net.w_slow.clone(),
    };
    let mut w_fast = net.w_fast.clone();
    if chip.factor_sigma(Stream::W_FAST) > 0.0 {
        chip.effective_recurrent(Stream::W_FAST, &net.w_fast, &mut w_fast);
    }
    let mut delta = vec![0f32; n * n];
    // the chip's encoder F (its feedback F e) is the trainer's
    let mut tr = Trainer::on_chip(net, chip, trial_index)?;
    let mut pending = Deferred::new(n, update_block.min(steps.max(1)))?;
    let g = factors.as_deref();
    let mut x_hat = vec![0f32; steps * nc];
    let mut spikes = 0u64;
    for t in 0..steps {
        let (u, x) = (&input[t * c..(t + 1) * c], &target_x[t * nc..(t + 1) * nc]);
        if online {
            tr.forward_pending(&w_fast, &eff, g, &mut pending, u, x, k);
        } else {
            // the running weights do not change within the trial: nothing to reconstruct
            tr.forward_with(&w_fast, &eff, u, x, k);
        }
        spikes += tr.state.spikes.len() as u64;
        if let Some(r) = raster.as_deref_mut() {
            r.extend(tr.state.spikes.iter().map(|&j| (t as u32, j)));
        }
        x_hat[t * nc..(t + 1) * nc].copy_from_slice(&tr.state.x_hat);
        if eta == 0.0 {
            continue;
        }
        pending.push(eta, &tr.state.r, &tr.fe);
        if pending.is_full() {
            pending.flush_chip(
                &mut delta,
                online.then_some(ChipSlow {
                    eff: &mut eff,
                    w0: &net.w_slow,
                    g,
                }),
            );
        }
    }
    pending.flush_chip(
        &mut delta,
        online.then_some(ChipSlow {
            eff: &mut eff,
            w0: &net.w_slow,
            g,
        }),
    );
    Ok((
        delta,
        TrainTrialStats::of_trial(net, spikes, steps, target_x, &x_hat),
    ))
}

/// The rule's settings for one ensemble trial: feedback gain, learning rate, the trial's index
/// (it keys the initial V and the noise) and the rate guard (`max_rate_hz`, 0: none).
#[derive(Clone, Copy, Debug)]
pub struct TrialSettings {
    pub k: f32,
    pub eta: f32,
    pub trial_index: u32,
    pub max_rate_hz: f32,
}

impl TrialSettings {
    /// Is a chip's update kept: its rate stayed at or below `max_rate_hz` (0: no limit)?
    pub fn keeps(&self, s: &TrainTrialStats) -> bool {
        self.max_rate_hz <= 0.0 || s.mean_rate_hz <= self.max_rate_hz
    }
}

/// The mean update of one ensemble trial: every chip runs the trial from `net`'s W_slow (in
/// parallel, `online` and `update_block` as in [`chip_update`]), and the updates of the chips
/// whose rate stayed at or below `max_rate_hz` (0: no limit) are averaged (None when every chip
/// was left out).
pub fn ensemble_update(
    net: &Network,
    chips: &[Instance],
    input: &[f32],
    target_x: &[f32],
    t: &TrialSettings,
    online: bool,
    update_block: usize,
) -> Result<(Option<Vec<f32>>, Vec<ChipTrial>), EngineError> {
    let c = net.n_in.max(1);
    if !input.len().is_multiple_of(c) || target_x.len() != (input.len() / c) * net.nc {
        return Err(EngineError::Shape {
            what: "ensemble training trial (T x C input, T x Nc target)".into(),
            expected: (input.len() / c) * net.nc,
            got: target_x.len(),
        });
    }
    let runs: Vec<(Vec<f32>, TrainTrialStats)> = chips
        .par_iter()
        .map(|chip| {
            chip_update(
                net,
                chip,
                input,
                target_x,
                t.k,
                t.eta,
                t.trial_index,
                online,
                update_block,
            )
        })
        .collect::<Result<_, _>>()?;
    let keep = |s: &TrainTrialStats| t.keeps(s);
    let kept = runs.iter().filter(|r| keep(&r.1)).count();
    let mean = (kept > 0).then(|| {
        let scale = 1.0 / kept as f32;
        let mut m = vec![0f32; net.n * net.n];
        for r in runs.iter().filter(|r| keep(&r.1)) {
            for (a, d) in m.iter_mut().zip(&r.0) {
                *a += d;
            }
        }
        m.iter_mut().for_each(|a| *a *= scale);
        m
    });
    let trials = chips
        .iter()
        .zip(runs)
        .map(|(chip, (_, stats))| ChipTrial {
            index: chip.index,
            skipped: !keep(&stats),
            stats,
        })
        .collect();
    Ok((mean, trials))
}

/// `w_slow += mean` off the diagonal (which stays 0).
fn apply_mean(w_slow: &mut [f32], n: usize, mean: Option<Vec<f32>>) {
    if let Some(m) = mean {
        for (i, (w, d)) in w_slow.iter_mut().zip(m).enumerate() {
            if i / n != i % n {
                *w += d;
            }
        }
    }
}

/// One ensemble trial: `W_slow += ` the [`ensemble_update`] of the chips (online updates).
pub fn train_trial_ensemble(
    net: &mut Network,
    chips: &[Instance],
    input: &[f32],
    target_x: &[f32],
    t: &TrialSettings,
) -> Result<Vec<ChipTrial>, EngineError> {
    train_trial_ensemble_deferred(net, chips, input, target_x, t, 1)
}

/// [`train_trial_ensemble`] with each chip's update applied in blocks of `update_block` steps.
pub fn train_trial_ensemble_deferred(
    net: &mut Network,
    chips: &[Instance],
    input: &[f32],
    target_x: &[f32],
    t: &TrialSettings,
    update_block: usize,
) -> Result<Vec<ChipTrial>, EngineError> {
    let (mean, trials) = ensemble_update(net, chips, input, target_x, t, true, update_block)?;
    apply_mean(&mut net.w_slow, net.n, mean);
    Ok(trials)
}

/// One ensemble trial of quantisation-aware training: the chips are drawn from and run on
/// `running` (the quantised network, W_slow fixed within the trial), and the mean update moves
/// the float `shadow` W_slow.
pub fn train_trial_ensemble_shadow(
    running: &Network,
    shadow: &mut [f32],
    chips: &[Instance],
    input: &[f32],
    target_x: &[f32],
    t: &TrialSettings,
) -> Result<Vec<ChipTrial>, EngineError> {
    train_trial_ensemble_shadow_deferred(running, shadow, chips, input, target_x, t, 1)
}

/// [`train_trial_ensemble_shadow`] with each chip's update accumulated in blocks of
/// `update_block` steps (the chips' running weights are fixed within the trial, so only the
/// accumulation waits).
pub fn train_trial_ensemble_shadow_deferred(
    running: &Network,
    shadow: &mut [f32],
    chips: &[Instance],
    input: &[f32],
    target_x: &[f32],
    t: &TrialSettings,
    update_block: usize,
) -> Result<Vec<ChipTrial>, EngineError> {
    let (mean, trials) = ensemble_update(running, chips, input, target_x, t, false, update_block)?;
    apply_mean(shadow, running.n, mean);
    Ok(trials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snn::SnnParams;

    fn setup() -> (Network, Vec<f32>, Vec<f32>) {
        let p = SnnParams {
            n: 24,
            ..Default::default()
        };
        let nc = 4;
        let w_in: Vec<f32> = (0..nc).map(|k| (k as f32 * 0.7).sin() * 3.0).collect();
        let w_out: Vec<f32> = (0..nc).map(|k| (k as f32 * 1.3).cos()).collect();
        let mut net = Network::init(p, w_in, w_out, nc, 1, 1, 3).unwrap();
        // a nonzero W_slow so that its mismatch matters
        for (i, w) in net.w_slow.iter_mut().enumerate() {
            if i / 24 != i % 24 {
                *w = ((i as f32) * 0.37).sin() * 0.02;
            }
        }
        let steps = 200;
        let input: Vec<f32> = (0..steps)
            .map(|t| if (40..90).contains(&t) { 1.0 } else { 0.0 })
            .collect();
        let target: Vec<f32> = (0..steps * nc)
            .map(|i| ((i / nc) as f32 * 0.03 + (i % nc) as f32).sin() * 0.5)
            .collect();
        (net, input, target)
    }

    /// The settings of trial 7.
    fn at(k: f32, eta: f32, max_rate_hz: f32) -> TrialSettings {
        TrialSettings {
            k,
            eta,
            trial_index: 7,
            max_rate_hz,
        }
    }

    fn robust(e: usize) -> RobustTraining {
        RobustTraining {
            instances: e,
            sigma: 0.2,
            sigma_start: 0.2,
            nominal_share: 0.0,
            noise: 0.02,
            ..RobustTraining::default()
        }
    }

    /// The averaged update equals the mean of the per-chip updates, each computed alone from
    /// the same W_slow.
    #[test]
    fn the_ensemble_update_is_the_mean_of_the_updates_one_by_one() {
        let (net, input, target) = setup();
        let chips = draw_chips(&net, &robust(3), 1, 7, 0.2);
        let (eta, k) = (1e-4, 50.0);
        let mut together = net.clone();
        train_trial_ensemble(&mut together, &chips, &input, &target, &at(k, eta, 0.0)).unwrap();
        let mut mean = vec![0f64; net.n * net.n];
        // f32 rounding scale of each entry: |w0| + sum of the chips' |dW|
        let mut scale: Vec<f64> = net.w_slow.iter().map(|w| w.abs() as f64).collect();
        for chip in &chips {
            let mut alone = net.clone();
            let one = std::slice::from_ref(chip);
            train_trial_ensemble(&mut alone, one, &input, &target, &at(k, eta, 0.0)).unwrap();
            for ((m, sc), (a, w0)) in mean
                .iter_mut()
                .zip(&mut scale)
                .zip(alone.w_slow.iter().zip(&net.w_slow))
            {
                *m += (a - w0) as f64 / chips.len() as f64;
                *sc += ((a - w0) as f64).abs();
            }
        }
        let mut moved = 0;
        for (i, (&t, &w0)) in together.w_slow.iter().zip(&net.w_slow).enumerate() {
            let want = w0 as f64 + mean[i];
            // the sums run in f32 in another order: a few ulps of the largest term
            let tol = 8.0 * f32::EPSILON as f64 * scale[i] + 1e-12;
            assert!(
                (t as f64 - want).abs() <= tol,
                "{i}: {t} vs {want} (tol {tol})"
            );
            moved += (t != w0) as usize;
        }
        assert!(moved > net.n, "the trial changed W_slow");
        for i in 0..net.n {
            assert_eq!(together.w_slow[i * net.n + i], 0.0);
        }
    }

    #[test]
    fn chips_differ_are_reproducible_and_the_nominal_share_is_nominal() {
        let (net, _, _) = setup();
        let r = RobustTraining {
            nominal_share: 0.25,
            ..robust(4)
        };
        let a = draw_chips(&net, &r, 1, 3, 0.2);
        assert_eq!(a, draw_chips(&net, &r, 1, 3, 0.2));
        assert_ne!(a[1].tau_mem, a[2].tau_mem);
        assert!(
            a[0].tau_mem
                .iter()
                .all(|&t| t == net.params.tau_mem_ms * 1e-3)
        );
        assert_ne!(a, draw_chips(&net, &r, 1, 4, 0.2));
        // the ramp
        let r = RobustTraining {
            sigma_start: 0.05,
            sigma: 0.25,
            ramp: 0.5,
            ..robust(2)
        };
        assert_eq!(sigma_at(&r, 0, 100), 0.05);
        assert!((sigma_at(&r, 25, 100) - 0.15).abs() < 1e-6);
        assert_eq!(sigma_at(&r, 50, 100), 0.25);
        assert_eq!(sigma_at(&r, 99, 100), 0.25);
    }

    #[test]
    fn the_qat_ensemble_runs_the_quantised_weights_and_moves_the_float_shadow() {
        // the chips run the 4-bit network with W_slow fixed within the trial; the shadow moves
        // by the mean of the chips' updates, each computed on its own (offline) by chip_update
        let (net, input, target) = setup();
        let running = net.quantized(4);
        let chips = draw_chips(&running, &robust(3), 1, 7, 0.2);
        let (k, eta) = (50.0, 1e-4);
        let mut shadow = net.w_slow.clone();
        train_trial_ensemble_shadow(
            &running,
            &mut shadow,
            &chips,
            &input,
            &target,
            &at(k, eta, 0.0),
        )
        .unwrap();
        let mut want: Vec<f64> = net.w_slow.iter().map(|&w| w as f64).collect();
        for chip in &chips {
            let (d, _) = chip_update(&running, chip, &input, &target, k, eta, 7, false, 1).unwrap();
            // offline: the same chip run online on the same weights updates differently
            let (d_on, _) =
                chip_update(&running, chip, &input, &target, k, eta, 7, true, 1).unwrap();
            assert_ne!(d, d_on);
            for (w, x) in want.iter_mut().zip(&d) {
                *w += *x as f64 / chips.len() as f64;
            }
        }
        for (i, (&got, &w)) in shadow.iter().zip(&want).enumerate() {
            let tol = 8.0 * f32::EPSILON as f64 * (w.abs() + 1e-3) + 1e-12;
            if i / net.n == i % net.n {
                assert_eq!(got, 0.0);
            } else {
                assert!((got as f64 - w).abs() <= tol, "{i}: {got} vs {w}");
            }
        }
        assert_ne!(shadow, net.w_slow);
        assert_ne!(shadow, crate::snn::quantize::quantize(&shadow, 4));
    }

    /// The per-step rule on one chip as chip_update computed it before the update was deferred
    /// (the step propagating through the effective W_slow itself, dW applied every step): the
    /// reference of the deferred update. Returns dW and the spikes as (step, neuron).
    #[allow(clippy::too_many_arguments)]
    fn per_step_chip(
        net: &Network,
        chip: &Instance,
        input: &[f32],
        target_x: &[f32],
        k: f32,
        eta: f32,
        trial_index: u32,
        online: bool,
    ) -> (Vec<f32>, Vec<(u32, u32)>) {
        let (n, nc, c) = (net.n, net.nc, net.n_in);
        let steps = input.len() / c;
        let mut factors = vec![1f32; n * n];
        if chip.factor_sigma(Stream::W_SLOW) > 0.0 {
            for (pre, row) in factors.chunks_mut(n).enumerate() {
                chip.fill_factors(Stream::W_SLOW, pre as u32, row);
            }
        }
        let mut eff: Vec<f32> = net
            .w_slow
            .iter()
            .zip(&factors)
            .map(|(w, g)| w * g)
            .collect();
        let mut w_fast = net.w_fast.clone();
        if chip.factor_sigma(Stream::W_FAST) > 0.0 {
            chip.effective_recurrent(Stream::W_FAST, &net.w_fast, &mut w_fast);
        }
        let mut delta = vec![0f32; n * n];
        let mut tr = Trainer::on_chip(net, chip, trial_index).unwrap();
        let mut raster = vec![];
        for t in 0..steps {
            let (u, x) = (&input[t * c..(t + 1) * c], &target_x[t * nc..(t + 1) * nc]);
            tr.forward_with(&w_fast, &eff, u, x, k);
            raster.extend(tr.state.spikes.iter().map(|&j| (t as u32, j)));
            for pre in 0..n {
                let a = eta * tr.state.r[pre];
                if a == 0.0 {
                    continue;
                }
                for post in 0..n {
                    let dw = a * tr.fe[post];
                    delta[pre * n + post] += dw;
                    if online {
                        eff[pre * n + post] += dw * factors[pre * n + post];
                    }
                }
                delta[pre * n + pre] = 0.0;
                eff[pre * n + pre] = 0.0;
            }
        }
        (delta, raster)
    }

    /// A 320-neuron network with a trained W_slow, a 200-step trial and four training chips at
    /// 20 % mismatch with membrane noise (the first nominal).
    fn large_setup() -> (Network, Vec<f32>, Vec<f32>, Vec<Instance>) {
        use crate::engine::cpu::tests::{smooth_input, test_net};
        let mut net = test_net(
            SnnParams {
                n: 320,
                ..Default::default()
            },
            64,
            2,
            1,
            12,
        );
        // a W_slow of the size training gives it, so that its mismatch and its update matter
        for trial in 0..2 {
            let inp = smooth_input(1000, 2, 1.0, 40 + trial);
            let x = smooth_input(1000, 64, 0.5, 50 + trial);
            crate::learn::train_trial(&mut net, &inp, &x, 500.0, 2e-5, 3, trial as u32).unwrap();
        }
        assert!(net.w_slow.iter().any(|&w| w != 0.0));
        let input = smooth_input(200, 2, 1.0, 61);
        let target = smooth_input(200, 64, 0.5, 62);
        let r = RobustTraining {
            nominal_share: 0.25,
            ..robust(4)
        };
        let chips = draw_chips(&net, &r, 1, 7, 0.2);
        (net, input, target, chips)
    }

    /// A block of one step is the per-step rule on every chip, online and offline, bit for bit.
    #[test]
    fn a_block_of_one_step_is_the_per_step_rule_on_every_chip() {
        let (net, input, target, chips) = large_setup();
        let (k, eta) = (500.0, 1e-4);
        for online in [true, false] {
            for chip in &chips {
                let (d_ref, s_ref) = per_step_chip(&net, chip, &input, &target, k, eta, 7, online);
                let mut s = vec![];
                let (d, _) = chip_run(
                    &net,
                    chip,
                    &input,
                    &target,
                    k,
                    eta,
                    7,
                    online,
                    1,
                    Some(&mut s),
                )
                .unwrap();
                assert!(s_ref.len() > 200);
                assert_eq!(s, s_ref, "chip {} online {online}", chip.index);
                assert!(d == d_ref, "chip {} online {online}: dW", chip.index);
            }
        }
    }

    /// M = 32 on mismatched chips over 200 steps: each chip's spikes are the per-step rule's and
    /// its dW is within 1e-4 of its largest entry; so is the trained W_slow's change. Without
    /// the spiking rows' pending part the chips would run on stale weights and part ways.
    #[test]
    fn a_block_of_32_steps_keeps_every_chips_spikes_and_update() {
        let (net, input, target, chips) = large_setup();
        let (k, eta) = (500.0, 1e-4);
        let close = |a: &[f32], b: &[f32], what: &str| {
            let largest = b.iter().fold(0f32, |m, &x| m.max(x.abs()));
            let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(largest > 0.0, "{what}: nothing learned");
            assert!(
                worst <= 1e-4 * largest,
                "{what}: |diff| {worst} of {largest}"
            );
        };
        for chip in &chips {
            let (d_ref, s_ref) = per_step_chip(&net, chip, &input, &target, k, eta, 7, true);
            let mut s = vec![];
            let (d, _) = chip_run(
                &net,
                chip,
                &input,
                &target,
                k,
                eta,
                7,
                true,
                32,
                Some(&mut s),
            )
            .unwrap();
            assert_eq!(s.len(), s_ref.len(), "chip {}: spike counts", chip.index);
            assert!(s == s_ref, "chip {}: spikes", chip.index);
            close(&d, &d_ref, &format!("chip {} dW", chip.index));
        }
        // through the ensemble trainer
        let at = at(k, eta, 0.0);
        let (mut per_step, mut deferred) = (net.clone(), net.clone());
        let a = train_trial_ensemble(&mut per_step, &chips, &input, &target, &at).unwrap();
        let b =
            train_trial_ensemble_deferred(&mut deferred, &chips, &input, &target, &at, 32).unwrap();
        assert_eq!(a, b, "the chips' figures");
        let moved = |w: &Network| -> Vec<f32> {
            w.w_slow
                .iter()
                .zip(&net.w_slow)
                .map(|(a, b)| a - b)
                .collect()
        };
        close(&moved(&deferred), &moved(&per_step), "W_slow's change");
    }

    #[test]
    fn a_runaway_chip_is_left_out() {
        let (net, input, target) = setup();
        let chips = draw_chips(&net, &robust(2), 1, 7, 0.2);
        let mut w = net.clone();
        let out =
            train_trial_ensemble(&mut w, &chips, &input, &target, &at(50.0, 1e-4, 1e-3)).unwrap();
        // every chip fires above 0.001 Hz: all left out, nothing moves
        assert!(out.iter().all(|c| c.skipped));
        assert_eq!(w.w_slow, net.w_slow);
    }
}
