//! The reservoir baseline (liquid state machine, paper §6): a fixed sparse random recurrent LIF
//! network driven by a sparse random input projection; only the linear readout of its filtered
//! spike trains is trained, by ridge regression on the task target over every step of the
//! training trials. The penalty is chosen on the validation trials from a grid around
//! `training.reservoir.ridge`.
//!
//! With `training.reservoir.extra_tau_ms` the reservoir has further synapse types
//! (`Network::extra_synapses`), each with its own fixed sparse random recurrence drawn like the
//! slow one: a multi-timescale reservoir, whose filtered spike trains carry more of the input's
//! history.

use std::time::Instant;

use super::ridge::NormalEquations;
use super::{BaselineEpoch, BaselineError, BaselineOutcome, baseline_params, sim, weights};
use crate::config::Config;
use crate::snn::{Method, Network};
use crate::tasks::{Split, Task};

/// Keys the reservoir's fixed weights apart from every other draw of the seed.
const RECURRENCE_KEY: u64 = 0x5E5E_0001;
const INPUT_KEY: u64 = 0x5E5E_0002;
/// Extra synapse type k's recurrence is keyed `seed ^ (EXTRA_KEY + k)`.
const EXTRA_KEY: u64 = 0x5E5E_0100;
/// Multiples of the configured relative penalty tried on validation.
const RIDGE_GRID: [f64; 5] = [0.01, 0.1, 1.0, 10.0, 100.0];
/// Trials simulated at once (bounds the recorded features: chunk x T x N floats).
const CHUNK: usize = 16;

/// The untrained reservoir (readout zero).
pub fn init(cfg: &Config, n_in: usize, n_out: usize, seed: u64) -> Result<Network, BaselineError> {
    let rc = &cfg.training.reservoir;
    let params = baseline_params(&cfg.snn, rc.bias);
    let n = params.n;
    let w_rec = weights::sparse_recurrence(n, rc.p, rc.gain, seed ^ RECURRENCE_KEY);
    let input = weights::sparse_input(n, n_in, rc.input_p, rc.input_gain, seed ^ INPUT_KEY);
    let mut net = Network::direct(
        params,
        Method::Reservoir,
        n_in,
        n_out,
        input,
        w_rec,
        vec![0.0; n_out * n],
    )?;
    for (k, &tau_ms) in rc.extra_tau_ms.iter().enumerate() {
        let w = weights::sparse_recurrence(n, rc.p, rc.gain, seed ^ (EXTRA_KEY + k as u64));
        net = net.with_synapse_type(tau_ms, w)?;
    }
    Ok(net)
}

/// Task outputs (steps x n_out) of the readout `w` (N x n_out, row-major) on features r(t).
fn outputs(r: &[f32], w: &[f64], n: usize, n_out: usize) -> Vec<f32> {
    r.chunks_exact(n)
        .flat_map(|rt| {
            (0..n_out).map(move |o| {
                rt.iter()
                    .enumerate()
                    .map(|(i, &x)| x as f64 * w[i * n_out + o])
                    .sum::<f64>() as f32
            })
        })
        .collect()
}

pub fn train(
    cfg: &Config,
    task: &dyn Task,
    show_progress: bool,
) -> Result<BaselineOutcome, BaselineError> {
    let t0 = Instant::now();
    let rc = &cfg.training.reservoir;
    let (c, n_out, steps) = (task.channels(), task.outputs(), task.steps());
    let mut net = init(cfg, c, n_out, cfg.seed)?;
    let n = net.n;
    let pb = crate::report::progress_bar(
        (rc.train_trials + cfg.training.val_trials) as u64,
        "reservoir",
    );
    if !show_progress {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut ne = NormalEquations::new(n, n_out);
    let mut spikes = 0u64;
    for start in (0..rc.train_trials).step_by(CHUNK) {
        let end = (start + CHUNK).min(rc.train_trials);
        let trials: Vec<_> = (start..end)
            .map(|i| task.trial(Split::Train, i as u64))
            .collect();
        let inputs: Vec<Vec<f32>> = trials.iter().map(|t| t.input.clone()).collect();
        let (feats, count) = sim::features(&net, &inputs, steps, start as u32, cfg.seed)?;
        spikes += count;
        for (tr, r) in trials.iter().zip(&feats) {
            ne.add(r, &tr.target, steps);
        }
        pb.inc((end - start) as u64);
    }
    // validation features once: the readout is linear, so every penalty is scored on them
    let val: Vec<_> = (0..cfg.training.val_trials)
        .map(|i| task.trial(Split::Validation, i as u64))
        .collect();
    let mut val_feats = Vec::with_capacity(val.len());
    for (ci, chunk) in val.chunks(CHUNK).enumerate() {
        let inputs: Vec<Vec<f32>> = chunk.iter().map(|t| t.input.clone()).collect();
        val_feats.extend(sim::features(&net, &inputs, steps, (ci * CHUNK) as u32, cfg.seed)?.0);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let scale = ne.mean_diagonal().max(1e-12);
    let mut best: Option<(f64, f64, f64, Vec<f64>)> = None;
    for mult in RIDGE_GRID {
        let lambda = rc.ridge * mult * scale;
        let Some(w) = ne.solve(lambda) else {
            continue;
        };
        let (mut correct, mut mse) = (0usize, 0f64);
        for (tr, r) in val.iter().zip(&val_feats) {
            let y = outputs(r, &w, n, n_out);
            correct += task.correct(tr, &y) as usize;
            mse += y
                .iter()
                .zip(&tr.target)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / y.len().max(1) as f64;
        }
        let acc = correct as f64 / val.len().max(1) as f64;
        let mse = mse / val.len().max(1) as f64;
        if !show_progress {
            eprintln!(
                "reservoir: ridge {:.3e} (relative {:.1e}): val accuracy {acc:.3}, val MSE {mse:.4}",
                lambda,
                rc.ridge * mult
            );
        }
        if best
            .as_ref()
            .is_none_or(|b| acc > b.0 || (acc == b.0 && mse < b.1))
        {
            best = Some((acc, mse, lambda, w));
        }
    }
    let (val_accuracy, val_mse, lambda, w) = best.ok_or_else(|| BaselineError::Training {
        method: Method::Reservoir,
        message: "the ridge system could not be solved at any penalty (no spikes?)".into(),
    })?;
    for i in 0..n {
        for o in 0..n_out {
            net.d[o * n + i] = w[i * n_out + o] as f32;
        }
    }
    let secs = steps as f64 * net.params.dt_s() as f64;
    let rate = spikes as f64 / (rc.train_trials.max(1) as f64 * n as f64 * secs);
    eprintln!(
        "reservoir: readout fitted on {} steps, ridge {lambda:.3e}; val accuracy {val_accuracy:.3}",
        ne.rows
    );
    Ok(BaselineOutcome {
        net,
        history: vec![BaselineEpoch {
            epoch: 1,
            train_loss: val_mse,
            val_accuracy,
            val_mse,
            mean_rate_hz: rate,
            seconds: t0.elapsed().as_secs_f64(),
        }],
        best_epoch: 1,
        train_seconds: t0.elapsed().as_secs_f64(),
    })
}
