//! The training driver: epochs of fresh trials through the local rule, the feedback-gain
//! schedule, validation reconstruction error after every epoch with the best weights kept,
//! checkpoints and resume, and several networks trained at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::rule::{reconstruction_error, train_trial};
use crate::chip::Perturbation;
use crate::config::TrainingConfig;
use crate::engine::{CpuEngine, Engine, EngineError, EnsembleJob, Record};
use crate::snn::Network;
use crate::tasks::{Split, Task};
use crate::teacher::TeacherWeights;

/// One epoch of one network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    /// Feedback gain at the end of the epoch.
    pub k: f32,
    /// Mean R over the epoch's training trials (feedback on).
    pub train_r: f64,
    /// Mean R over the validation trials (feedback off, as at test time).
    pub val_r: f64,
    pub val_accuracy: f64,
    pub mean_rate_hz: f64,
    pub seconds: f64,
}

/// Resumable state of one network's training.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CheckpointState {
    network_seed: u64,
    epochs_done: usize,
    history: Vec<EpochStats>,
    best_epoch: usize,
    best_val_r: f64,
    seconds: f64,
}

/// A trained network and how it got there.
#[derive(Clone, Debug)]
pub struct TrainedNetwork {
    /// The weights with the lowest validation R.
    pub net: Network,
    pub network_seed: u64,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    pub best_val_r: f64,
    pub train_seconds: f64,
}

/// Figures of a network over a set of trials (nominal, no feedback).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalFigures {
    pub accuracy: f64,
    /// Mean over trials of the per-trial reconstruction error R.
    pub reconstruction_error: f64,
    pub mse: f64,
    pub mean_rate_hz: f64,
    pub teacher_accuracy: f64,
    pub trials: usize,
}

/// The feedback gain after `done` of `total` training trials: `k` stepped down in `plateaus`
/// equal plateaus of k/plateaus, never below `k_min` (a single plateau keeps k constant).
pub fn k_schedule(k: f32, plateaus: usize, k_min: f32, done: usize, total: usize) -> f32 {
    if plateaus <= 1 || total == 0 {
        return k;
    }
    let level = (done * plateaus / total).min(plateaus - 1);
    (k - level as f32 * k / plateaus as f32).max(k_min)
}

/// Run the nominal network (no feedback) on `n` trials of `split` and score it against the task
/// and the teacher, in chunks so memory stays bounded.
pub fn evaluate(
    net: &Network,
    teacher: &TeacherWeights,
    task: &dyn Task,
    split: Split,
    n: usize,
    seed: u64,
) -> Result<EvalFigures, EngineError> {
    let chunk = 64usize;
    let (mut correct, mut teacher_correct) = (0usize, 0usize);
    let (mut r_sum, mut mse_sum, mut spikes) = (0f64, 0f64, 0u64);
    let steps = task.steps();
    let none = Perturbation::default();
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let trials: Vec<_> = (start..end).into_par_iter().map(|i| task.trial(split, i as u64)).collect();
        let inputs: Vec<Vec<f32>> = trials.iter().map(|t| t.input.clone()).collect();
        let job = EnsembleJob {
            net,
            perturbation: &none,
            seed,
            instances: 0..1,
            inputs: &inputs,
            trial_offset: start as u32,
            steps,
            record: Record { x: true, spikes: false, v: false },
        };
        let out = CpuEngine.simulate(&job)?;
        let per: Vec<(bool, bool, f64, f64)> = trials
            .par_iter()
            .zip(&out.trials[0])
            .map(|(trial, o)| {
                let (y_t, x_t) = teacher.forward(&trial.input, steps);
                let x_hat = o.x.as_deref().unwrap_or(&[]);
                let r = reconstruction_error(&x_t, x_hat, teacher.nc) as f64;
                let mse = o.y.iter().zip(&trial.target).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>()
                    / o.y.len().max(1) as f64;
                (task.correct(trial, &o.y), task.correct(trial, &y_t), r, mse)
            })
            .collect();
        for (c, tc, r, m) in per {
            correct += c as usize;
            teacher_correct += tc as usize;
            r_sum += r;
            mse_sum += m;
        }
        spikes += out.trials[0].iter().map(|o| o.spike_counts.iter().map(|&c| c as u64).sum::<u64>()).sum::<u64>();
    }
    let nf = n.max(1) as f64;
    let secs = steps as f64 * net.params.dt_s() as f64;
    Ok(EvalFigures {
        accuracy: correct as f64 / nf,
        reconstruction_error: r_sum / nf,
        mse: mse_sum / nf,
        mean_rate_hz: spikes as f64 / (nf * net.n as f64 * secs),
        teacher_accuracy: teacher_correct as f64 / nf,
        trials: n,
    })
}

/// Where a network's checkpoint lives.
fn checkpoint_dir(root: &Path, index: usize) -> PathBuf {
    root.join(format!("net{index}"))
}

/// Options that are not part of the experiment config.
pub struct TrainOptions<'a> {
    /// Folder for per-epoch checkpoints (None: no checkpoints).
    pub checkpoint: Option<&'a Path>,
    /// Continue from the checkpoint instead of starting over.
    pub resume: bool,
    pub show_progress: bool,
}

/// Train `cfg.networks` networks (seeds `seed`, `seed + 1`, ...) in parallel and return all of
/// them, best (lowest validation R) first.
pub fn train_networks(
    make_net: &(dyn Fn(u64) -> Result<Network, EngineError> + Sync),
    teacher: &TeacherWeights,
    task: &dyn Task,
    cfg: &TrainingConfig,
    seed: u64,
    opts: &TrainOptions,
) -> Result<Vec<TrainedNetwork>, crate::Error> {
    let total = (cfg.networks * cfg.epochs * cfg.samples_per_epoch) as u64;
    let pb = crate::report::progress_bar(total, "snn");
    if !opts.show_progress {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress = AtomicU64::new(0);
    let mut nets: Vec<TrainedNetwork> = (0..cfg.networks)
        .into_par_iter()
        .map(|i| train_one(make_net, teacher, task, cfg, seed + i as u64, i, opts, &pb, &progress))
        .collect::<Result<_, _>>()?;
    pb.finish_and_clear();
    nets.sort_by(|a, b| a.best_val_r.total_cmp(&b.best_val_r));
    Ok(nets)
}

#[allow(clippy::too_many_arguments)]
fn train_one(
    make_net: &(dyn Fn(u64) -> Result<Network, EngineError> + Sync),
    teacher: &TeacherWeights,
    task: &dyn Task,
    cfg: &TrainingConfig,
    network_seed: u64,
    index: usize,
    opts: &TrainOptions,
    pb: &indicatif::ProgressBar,
    progress: &AtomicU64,
) -> Result<TrainedNetwork, crate::Error> {
    let io = |p: &Path, e: std::io::Error| crate::Error::io(p, e);
    let mut net = make_net(network_seed)?;
    let mut best = net.clone();
    let mut state = CheckpointState {
        network_seed,
        epochs_done: 0,
        history: Vec::new(),
        best_epoch: 0,
        best_val_r: f64::INFINITY,
        seconds: 0.0,
    };
    let ck = opts.checkpoint.map(|root| checkpoint_dir(root, index));
    if let (Some(dir), true) = (&ck, opts.resume) {
        let sp = dir.join("state.json");
        if sp.is_file() {
            let text = std::fs::read_to_string(&sp).map_err(|e| io(&sp, e))?;
            let loaded: CheckpointState = serde_json::from_str(&text)
                .map_err(|e| crate::Error::Other(format!("{}: corrupt checkpoint: {e}", sp.display())))?;
            if loaded.network_seed != network_seed {
                return Err(crate::Error::Other(format!(
                    "{}: checkpoint is for network seed {}, this run trains seed {network_seed}",
                    sp.display(),
                    loaded.network_seed
                )));
            }
            let cur = Network::load(&dir.join("current.safetensors")).map_err(|e| crate::Error::Other(e.to_string()))?;
            let b = Network::load(&dir.join("best.safetensors")).map_err(|e| crate::Error::Other(e.to_string()))?;
            if cur.n != net.n || cur.nc != net.nc || cur.params != net.params {
                return Err(crate::Error::Other(format!(
                    "{}: checkpoint network (N = {}, Nc = {}) does not match the config (N = {}, Nc = {})",
                    dir.display(),
                    cur.n,
                    cur.nc,
                    net.n,
                    net.nc
                )));
            }
            net = cur;
            best = b;
            state = loaded;
            progress.fetch_add((state.epochs_done * cfg.samples_per_epoch) as u64, Ordering::Relaxed);
            pb.set_position(progress.load(Ordering::Relaxed));
        }
    }

    let total_samples = cfg.epochs * cfg.samples_per_epoch;
    // Distinct training streams per network: network i draws trials from its own index range.
    let stream = index as u64 * 1_000_000_000;
    for epoch in state.epochs_done + 1..=cfg.epochs {
        let t0 = Instant::now();
        let (mut r_sum, mut rate_sum) = (0f64, 0f64);
        let mut k = cfg.k;
        for s in 0..cfg.samples_per_epoch {
            let done = (epoch - 1) * cfg.samples_per_epoch + s;
            k = k_schedule(cfg.k, cfg.k_plateaus, cfg.k_min, done, total_samples);
            let trial = task.trial(Split::Train, stream + done as u64);
            let (_, x) = teacher.forward(&trial.input, trial.steps);
            let st = train_trial(&mut net, &trial.input, &x, k, cfg.eta, network_seed, done as u32)?;
            r_sum += st.recon_error as f64;
            rate_sum += st.mean_rate_hz as f64;
            let p = progress.fetch_add(1, Ordering::Relaxed) + 1;
            pb.set_position(p);
            if s % 10 == 0 {
                pb.set_message(format!(
                    "net {index} epoch {epoch} R {:.3} rate {:.1} Hz k {k:.0}",
                    st.recon_error, st.mean_rate_hz
                ));
            }
        }
        if net.w_slow.iter().any(|w| !w.is_finite()) {
            return Err(crate::Error::Other(format!(
                "network {index}: W_slow diverged in epoch {epoch}; lower training.eta"
            )));
        }
        let val = evaluate(&net, teacher, task, Split::Validation, cfg.val_trials, network_seed)?;
        let n_s = cfg.samples_per_epoch as f64;
        let rec = EpochStats {
            epoch,
            k,
            train_r: r_sum / n_s,
            val_r: val.reconstruction_error,
            val_accuracy: val.accuracy,
            mean_rate_hz: val.mean_rate_hz,
            seconds: t0.elapsed().as_secs_f64(),
        };
        state.seconds += rec.seconds;
        let line = format!(
            "net {index} epoch {epoch}/{}: train R {:.3}, val R {:.3}, val acc {:.3}, rate {:.1} Hz, k {:.0} ({:.0} s)",
            cfg.epochs, rec.train_r, rec.val_r, rec.val_accuracy, rec.mean_rate_hz, k, rec.seconds
        );
        if opts.show_progress {
            pb.println(line);
        } else {
            eprintln!("{line}");
        }
        let _ = rate_sum;
        if rec.val_r < state.best_val_r {
            state.best_val_r = rec.val_r;
            state.best_epoch = epoch;
            best = net.clone();
        }
        state.history.push(rec);
        state.epochs_done = epoch;
        if let Some(dir) = &ck {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            net.save(&dir.join("current.safetensors")).map_err(|e| crate::Error::Other(e.to_string()))?;
            best.save(&dir.join("best.safetensors")).map_err(|e| crate::Error::Other(e.to_string()))?;
            crate::report::write_json(&dir.join("state.json"), &state).map_err(|e| io(&dir.join("state.json"), e))?;
        }
    }
    Ok(TrainedNetwork {
        net: best,
        network_seed,
        history: state.history,
        best_epoch: state.best_epoch,
        best_val_r: state.best_val_r,
        train_seconds: state.seconds,
    })
}
