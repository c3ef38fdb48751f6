//! BPTT training of the teacher with Adam over mini-batches of fresh trials, validation every
//! epoch and the best model kept.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use super::model::{Perturb, RateRnn, RnnShape, values};
use super::weights::{TeacherError, TeacherInit, TeacherWeights};
use crate::config::TeacherConfig;
use crate::tasks::{Split, Task};

/// Keys the training-time perturbations apart from every other draw of the same seed.
const TRAIN_NOISE_KEY: u64 = 0x7EAC_0015_E000_0000;

/// One epoch of the learning curve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_mse: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// What training produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub weights: TeacherWeights,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub train_seconds: f64,
}

/// Accuracy and output MSE of a teacher over `n` trials of a split (plain-Rust forward, parallel).
pub fn evaluate(w: &TeacherWeights, task: &dyn Task, split: Split, n: usize) -> (f64, f64) {
    let results: Vec<(bool, f64)> = (0..n as u64)
        .into_par_iter()
        .map(|i| {
            let trial = task.trial(split, i);
            let (y, _) = w.forward(&trial.input, trial.steps);
            let mse = y
                .iter()
                .zip(&trial.target)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / y.len().max(1) as f64;
            (task.correct(&trial, &y), mse)
        })
        .collect();
    let acc = results.iter().filter(|r| r.0).count() as f64 / n.max(1) as f64;
    let mse = results.iter().map(|r| r.1).sum::<f64>() / n.max(1) as f64;
    (acc, mse)
}

/// A batch of trials as per-step inputs ([B, C] each) and the target [B, T, n_out].
pub fn batch(
    task: &dyn Task,
    split: Split,
    first: u64,
    size: usize,
    device: &Device,
) -> (Vec<Tensor<2>>, Tensor<3>) {
    let trials: Vec<_> = (0..size as u64)
        .into_par_iter()
        .map(|i| task.trial(split, first + i))
        .collect();
    let (t, c, o) = (task.steps(), task.channels(), task.outputs());
    let inputs = (0..t)
        .map(|s| {
            let mut step = Vec::with_capacity(size * c);
            for tr in &trials {
                step.extend_from_slice(&tr.input[s * c..(s + 1) * c]);
            }
            Tensor::from_data(TensorData::new(step, [size, c]), device)
        })
        .collect();
    let mut target = Vec::with_capacity(size * t * o);
    for tr in &trials {
        target.extend_from_slice(&tr.target);
    }
    (
        inputs,
        Tensor::from_data(TensorData::new(target, [size, t, o]), device),
    )
}

/// The fresh perturbation of one training batch (`None` when `param_noise` and `state_noise`
/// are both 0), drawn from `key` on the host so that training is reproducible on every backend.
pub fn batch_perturb(
    cfg: &TeacherConfig,
    shape: &RnnShape,
    batch: usize,
    steps: usize,
    key: u64,
    device: &Device,
) -> Option<Perturb> {
    if cfg.param_noise <= 0.0 && cfg.state_noise <= 0.0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(key);
    let mut factors = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut rng);
                1.0 + cfg.param_noise * z
            })
            .collect()
    };
    let (nc, n_in) = (shape.nc, shape.n_in);
    let w_in = Tensor::from_data(TensorData::new(factors(n_in * nc), [n_in, nc]), device);
    let w_rec = Tensor::from_data(TensorData::new(factors(nc * nc), [nc, nc]), device);
    let tau = Tensor::from_data(TensorData::new(factors(nc), [nc]), device);
    let state = (cfg.state_noise > 0.0).then(|| {
        (0..steps)
            .map(|_| {
                let v: Vec<f32> = (0..batch * nc)
                    .map(|_| {
                        let z: f32 = StandardNormal.sample(&mut rng);
                        cfg.state_noise * z
                    })
                    .collect();
                Tensor::from_data(TensorData::new(v, [batch, nc]), device)
            })
            .collect()
    });
    Some(Perturb {
        w_in,
        w_rec,
        tau,
        state,
    })
}

/// The training objective: output MSE plus small L2 penalties on W_rec, b, W_out and W_in,
/// and the activity penalty mean(tanh(h)²), on the (optionally perturbed) teacher.
pub fn loss(
    model: &RateRnn,
    inputs: &[Tensor<2>],
    target: Tensor<3>,
    shape: &RnnShape,
    cfg: &TeacherConfig,
    perturb: Option<&Perturb>,
) -> Tensor<1> {
    let (y, acts) = model.forward_steps(inputs, shape, cfg.activity > 0.0, perturb);
    let mut mse = (y - target).powi_scalar(2).mean();
    if let Some(acts) = acts {
        mse = mse + acts.powi_scalar(2).mean().mul_scalar(cfg.activity);
    }
    if cfg.l2_in > 0.0 {
        mse = mse + model.w_in.val().powi_scalar(2).mean().mul_scalar(cfg.l2_in);
    }
    mse + model
        .w_rec
        .val()
        .powi_scalar(2)
        .mean()
        .mul_scalar(cfg.l2_rec)
        + model
            .bias
            .val()
            .powi_scalar(2)
            .mean()
            .mul_scalar(cfg.l2_bias)
        + model
            .w_out
            .val()
            .powi_scalar(2)
            .mean()
            .mul_scalar(cfg.l2_out)
}

/// Train a teacher for `task` on `device` (a plain burn device; autodiff is added here).
pub fn train(
    cfg: &TeacherConfig,
    task: &dyn Task,
    seed: u64,
    device: &Device,
    show_progress: bool,
) -> Result<TrainOutcome, TeacherError> {
    let start = Instant::now();
    let init = TeacherInit {
        input_scale: cfg.input_scale,
        spectral_radius: cfg.spectral_radius,
        tau_init_min_ms: cfg.tau_init_min_ms,
        tau_init_max_ms: cfg.tau_init_max_ms,
    };
    let shape = RnnShape {
        nc: cfg.hidden,
        n_in: task.channels(),
        n_out: task.outputs(),
        dt_ms: task.dt_ms(),
        tau_min_ms: cfg.tau_min_ms,
    };
    let mut initial = TeacherWeights::init(
        cfg.hidden,
        shape.n_in,
        shape.n_out,
        &init,
        seed ^ 0x7EAC_4E55,
    );
    initial.dt_ms = shape.dt_ms;
    let ad = device.clone().autodiff();
    let mut model = RateRnn::from_weights(&initial, &ad);
    let mut adam = AdamConfig::new();
    if cfg.grad_clip > 0.0 {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.grad_clip)));
    }
    let mut optim = adam.init();

    let total = (cfg.epochs * cfg.batches_per_epoch) as u64;
    let pb = crate::report::progress_bar(total, "teacher");
    if !show_progress {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut history = Vec::new();
    let mut best: Option<(f64, f64, TeacherWeights, usize)> = None;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut epoch_loss = 0.0;
        for b in 0..cfg.batches_per_epoch {
            let first = ((epoch - 1) * cfg.batches_per_epoch + b) as u64 * cfg.batch_size as u64;
            let (input, target) = batch(task, Split::Train, first, cfg.batch_size, &ad);
            let key = seed ^ TRAIN_NOISE_KEY ^ (first << 8);
            let perturb = batch_perturb(cfg, &shape, cfg.batch_size, input.len(), key, &ad);
            let l = loss(&model, &input, target, &shape, cfg, perturb.as_ref());
            let lv = values(l.clone())?[0] as f64;
            if !lv.is_finite() {
                return Err(TeacherError::Backend(format!(
                    "training diverged at epoch {epoch} (loss {lv}); lower teacher.learning_rate"
                )));
            }
            epoch_loss += lv;
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
            pb.inc(1);
            pb.set_message(format!("epoch {epoch} loss {lv:.4}"));
        }
        let weights = model.to_weights(&shape)?;
        let (val_accuracy, val_mse) = evaluate(&weights, task, Split::Validation, cfg.val_trials);
        let rec = EpochRecord {
            epoch,
            train_loss: epoch_loss / cfg.batches_per_epoch as f64,
            val_mse,
            val_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
        };
        pb.set_message(format!(
            "epoch {epoch} loss {:.4} val_acc {:.3}",
            rec.train_loss, val_accuracy
        ));
        if !show_progress {
            eprintln!(
                "teacher epoch {epoch}/{}: loss {:.5} val_mse {:.5} val_acc {:.3} ({:.1}s)",
                cfg.epochs, rec.train_loss, val_mse, val_accuracy, rec.seconds
            );
        }
        history.push(rec);
        let better = match &best {
            None => true,
            Some((acc, mse, _, _)) => {
                val_accuracy > *acc || (val_accuracy == *acc && val_mse < *mse)
            }
        };
        if better {
            best = Some((val_accuracy, val_mse, weights, epoch));
        }
        if val_accuracy >= cfg.target_val_accuracy as f64 && cfg.target_val_accuracy < 1.0 {
            break;
        }
    }
    pb.finish_and_clear();
    let (_, _, weights, best_epoch) =
        best.ok_or_else(|| TeacherError::Backend("no epoch ran".into()))?;
    Ok(TrainOutcome {
        weights,
        history,
        best_epoch,
        train_seconds: start.elapsed().as_secs_f64(),
    })
}
