//! Monte-Carlo robustness study: for each level, one ensemble of independently drawn chip
//! instances over a fixed test set, with the output gain recalibrated per level on separate
//! validation trials and separate validation draws (the paper's protocol).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::levels::Level;
use super::stats::{Quartiles, quartiles};
use crate::engine::{Engine, EngineError, EnsembleJob, Record};
use crate::learn::reconstruction_error;
use crate::snn::Network;
use crate::tasks::{Split, Task, Trial};
use crate::teacher::TeacherWeights;

/// Validation draws use instance indices from here on, test draws from 0: the two sets of chips
/// never overlap, so recalibration never sees a test chip.
pub const VALIDATION_INSTANCE_BASE: u32 = 0x4000_0000;

/// Sizes and the gain grid of a study.
#[derive(Clone, Debug)]
pub struct StudySpec {
    pub instances: u32,
    pub val_instances: u32,
    pub test_trials: usize,
    pub val_trials: usize,
    pub gain_min: f32,
    pub gain_max: f32,
    pub gain_steps: usize,
    /// Candidate scale factors of W_fast and W_slow for the recalibration (1 = none).
    pub recurrent_scales: Vec<f32>,
    /// Chip seed: keys every instance draw.
    pub seed: u64,
}

/// One row of `instances.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceRow {
    pub network: String,
    pub kind: String,
    pub value: f64,
    pub level: String,
    pub instance: u32,
    pub seed: u64,
    pub accuracy: f64,
    pub accuracy_recalibrated: f64,
    pub mse: f64,
    pub reconstruction_error: f64,
    pub mean_rate_hz: f64,
    pub mean_rate_hz_recalibrated: f64,
    pub gain: f32,
    pub recurrent_scale: f32,
}

/// One level of `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LevelSummary {
    pub network: String,
    pub kind: String,
    pub value: f64,
    pub level: String,
    pub instances: usize,
    pub accuracy: Quartiles,
    pub accuracy_recalibrated: Quartiles,
    pub mse: Quartiles,
    pub reconstruction_error: Quartiles,
    pub mean_rate_hz: Quartiles,
    /// The recalibrated output gain and recurrent scale, and the validation accuracy they reached.
    pub gain: f32,
    pub recurrent_scale: f32,
    pub val_accuracy_at_gain: f64,
}

/// Test and validation trials with the teacher's activations, shared by every level.
pub struct Prepared {
    pub test: Vec<Trial>,
    pub test_x: Vec<Vec<f32>>,
    pub val: Vec<Trial>,
}

impl Prepared {
    pub fn new(task: &dyn Task, teacher: &TeacherWeights, spec: &StudySpec) -> Self {
        let test: Vec<Trial> = (0..spec.test_trials as u64)
            .into_par_iter()
            .map(|i| task.trial(Split::Test, i))
            .collect();
        let test_x = test
            .par_iter()
            .map(|t| teacher.forward(&t.input, t.steps).1)
            .collect();
        let val = (0..spec.val_trials as u64)
            .into_par_iter()
            .map(|i| task.trial(Split::Validation, i))
            .collect();
        Prepared { test, test_x, val }
    }
}

/// The gain grid: `steps` values spaced evenly in [min, max], plus 1 (no recalibration).
pub fn gain_grid(min: f32, max: f32, steps: usize) -> Vec<f32> {
    let mut g: Vec<f32> = (0..steps.max(1))
        .map(|i| {
            if steps <= 1 {
                min
            } else {
                min + (max - min) * i as f32 / (steps - 1) as f32
            }
        })
        .collect();
    if !g.contains(&1.0) {
        g.push(1.0);
    }
    g.sort_by(f32::total_cmp);
    g
}

/// The gain with the best accuracy over the validation outputs; ties go to the gain closest to
/// 1. It takes only validation trials and their outputs: test data cannot reach it.
pub fn choose_gain(
    task: &dyn Task,
    trials: &[Trial],
    outputs: &[Vec<Vec<f32>>],
    grid: &[f32],
) -> (f32, f64) {
    let n = (outputs.len() * trials.len()).max(1) as f64;
    let scores: Vec<(f32, f64)> = grid
        .par_iter()
        .map(|&g| {
            let mut correct = 0usize;
            let mut scaled = Vec::new();
            for inst in outputs {
                for (trial, y) in trials.iter().zip(inst) {
                    scaled.clear();
                    scaled.extend(y.iter().map(|v| v * g));
                    correct += task.correct(trial, &scaled) as usize;
                }
            }
            (g, correct as f64 / n)
        })
        .collect();
    scores
        .into_iter()
        .fold((1.0f32, f64::NEG_INFINITY), |best, (g, acc)| {
            if acc > best.1 || (acc == best.1 && (g - 1.0).abs() < (best.0 - 1.0).abs()) {
                (g, acc)
            } else {
                best
            }
        })
}

fn run_ensemble(
    engine: &dyn Engine,
    net: &Network,
    level: &Level,
    seed: u64,
    instances: std::ops::Range<u32>,
    trials: &[Trial],
    record_x: bool,
) -> Result<crate::engine::EnsembleOutput, EngineError> {
    let inputs: Vec<Vec<f32>> = trials.iter().map(|t| t.input.clone()).collect();
    let steps = trials.first().map(|t| t.steps).unwrap_or(0);
    engine.simulate(&EnsembleJob {
        net,
        perturbation: &level.perturbation,
        seed,
        instances,
        inputs: &inputs,
        trial_offset: 0,
        steps,
        record: Record {
            x: record_x,
            spikes: false,
            v: false,
        },
    })
}

/// The network with W_fast and W_slow scaled by `s` (the paper's per-level "safe scaling").
pub fn scaled(net: &Network, s: f32) -> Network {
    net.scaled_recurrence(s)
}

/// Per-instance figures of a test ensemble.
struct TestFigures {
    /// Accuracy at each requested gain, in order.
    accuracy: Vec<f64>,
    /// Output MSE at the first gain.
    mse: f64,
    /// Reconstruction error (0 when x~ was not recorded).
    r: f64,
    rate_hz: f64,
}

/// Score one test ensemble at several output gains: a gain only rescales y, so one simulation
/// serves the raw and the recalibrated figures.
fn score_test(
    task: &dyn Task,
    net: &Network,
    data: &Prepared,
    out: &crate::engine::EnsembleOutput,
    gains: &[f32],
) -> Vec<TestFigures> {
    let steps = data.test.first().map(|t| t.steps).unwrap_or(0);
    let secs = steps as f64 * net.params.dt_s() as f64;
    out.trials
        .par_iter()
        .map(|inst| {
            let mut correct = vec![0usize; gains.len()];
            let (mut mse, mut r, mut spikes) = (0f64, 0f64, 0u64);
            let mut scaled = Vec::new();
            for ((trial, o), x) in data.test.iter().zip(inst).zip(&data.test_x) {
                for (gi, &g) in gains.iter().enumerate() {
                    scaled.clear();
                    scaled.extend(o.y.iter().map(|v| v * g));
                    correct[gi] += task.correct(trial, &scaled) as usize;
                    if gi == 0 {
                        mse += scaled
                            .iter()
                            .zip(&trial.target)
                            .map(|(a, b)| ((a - b) as f64).powi(2))
                            .sum::<f64>()
                            / scaled.len().max(1) as f64;
                    }
                }
                if let Some(xh) = o.x.as_deref().filter(|_| net.decodes_teacher()) {
                    r += reconstruction_error(x, xh, net.nc) as f64;
                }
                spikes += o.spike_counts.iter().map(|&c| c as u64).sum::<u64>();
            }
            let nt = data.test.len().max(1) as f64;
            TestFigures {
                accuracy: correct.iter().map(|&c| c as f64 / nt).collect(),
                mse: mse / nt,
                r: r / nt,
                rate_hz: spikes as f64 / (nt * net.n as f64 * secs),
            }
        })
        .collect()
}

/// Run the test draws in chunks so recorded x~ (trials x T x Nc per instance) stays bounded, and
/// score them at each of `gains`.
#[allow(clippy::too_many_arguments)]
fn test_figures(
    engine: &dyn Engine,
    net: &Network,
    task: &dyn Task,
    data: &Prepared,
    level: &Level,
    spec: &StudySpec,
    gains: &[f32],
    record_x: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<TestFigures>, EngineError> {
    let steps = data.test.first().map(|t| t.steps).unwrap_or(0);
    // x~ is recorded only where it decodes the teacher (R is undefined otherwise)
    let record_x = record_x && net.decodes_teacher();
    let per_instance = (data.test.len() * steps * net.nc * 4).max(1);
    let chunk = ((256usize << 20) / per_instance).clamp(1, spec.instances.max(1) as usize) as u32;
    let mut figures = Vec::with_capacity(spec.instances as usize);
    let mut start = 0u32;
    while start < spec.instances {
        let end = (start + chunk).min(spec.instances);
        let out = run_ensemble(
            engine,
            net,
            level,
            spec.seed,
            start..end,
            &data.test,
            record_x,
        )?;
        figures.extend(score_test(task, net, data, &out, gains));
        progress((end - start) as u64);
        start = end;
    }
    Ok(figures)
}

/// Evaluate one network at one level: validation draws choose the output gain and the recurrent
/// scale, test draws are scored raw (as trained) and recalibrated. `progress` is told how many
/// instances finished.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_level(
    engine: &dyn Engine,
    net: &Network,
    name: &str,
    task: &dyn Task,
    data: &Prepared,
    level: &Level,
    spec: &StudySpec,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<InstanceRow>, LevelSummary), EngineError> {
    let grid = gain_grid(spec.gain_min, spec.gain_max, spec.gain_steps);
    let val_range = VALIDATION_INSTANCE_BASE..VALIDATION_INSTANCE_BASE + spec.val_instances;
    let scales: Vec<f32> = if spec.recurrent_scales.is_empty() {
        vec![1.0]
    } else {
        spec.recurrent_scales.clone()
    };
    // (accuracy, -|1 - scale|): prefer the better accuracy, then the smaller intervention.
    let mut best: Option<(f64, f32, f32)> = None;
    for &sc in &scales {
        let candidate = scaled(net, sc);
        let val_out = run_ensemble(
            engine,
            &candidate,
            level,
            spec.seed,
            val_range.clone(),
            &data.val,
            false,
        )?;
        let val_y: Vec<Vec<Vec<f32>>> = val_out
            .trials
            .into_iter()
            .map(|inst| inst.into_iter().map(|o| o.y).collect())
            .collect();
        let (g, acc) = choose_gain(task, &data.val, &val_y, &grid);
        let better = match best {
            None => true,
            Some((a, _, s)) => acc > a || (acc == a && (sc - 1.0).abs() < (s - 1.0).abs()),
        };
        if better {
            best = Some((acc, g, sc));
        }
    }
    progress(spec.val_instances as u64);
    let (val_acc, gain, scale) = best.unwrap_or((0.0, 1.0, 1.0));

    // The raw figures are the network as trained (gain 1). With an unchanged recurrent scale the
    // recalibrated network is the same network, so its outputs are the raw ones rescaled.
    let (raw, recal) = if scale == 1.0 {
        let both = test_figures(
            engine,
            net,
            task,
            data,
            level,
            spec,
            &[1.0, gain],
            true,
            progress,
        )?;
        let recal: Vec<(f64, f64)> = both.iter().map(|f| (f.accuracy[1], f.rate_hz)).collect();
        (both, recal)
    } else {
        let raw = test_figures(engine, net, task, data, level, spec, &[1.0], true, &|_| {})?;
        let recal = test_figures(
            engine,
            &scaled(net, scale),
            task,
            data,
            level,
            spec,
            &[gain],
            false,
            progress,
        )?
        .iter()
        .map(|f| (f.accuracy[0], f.rate_hz))
        .collect();
        (raw, recal)
    };
    let rows: Vec<InstanceRow> = raw
        .iter()
        .zip(&recal)
        .enumerate()
        .map(|(i, (r, c))| InstanceRow {
            network: name.to_string(),
            kind: level.kind.as_str().to_string(),
            value: level.value,
            level: level.label.clone(),
            instance: i as u32,
            seed: spec.seed,
            accuracy: r.accuracy[0],
            accuracy_recalibrated: c.0,
            mse: r.mse,
            reconstruction_error: r.r,
            mean_rate_hz: r.rate_hz,
            mean_rate_hz_recalibrated: c.1,
            gain,
            recurrent_scale: scale,
        })
        .collect();
    let col = |f: &dyn Fn(&InstanceRow) -> f64| -> Quartiles {
        quartiles(&rows.iter().map(f).collect::<Vec<f64>>())
    };
    let summary = LevelSummary {
        network: name.to_string(),
        kind: level.kind.as_str().to_string(),
        value: level.value,
        level: level.label.clone(),
        instances: rows.len(),
        accuracy: col(&|r| r.accuracy),
        accuracy_recalibrated: col(&|r| r.accuracy_recalibrated),
        mse: col(&|r| r.mse),
        reconstruction_error: col(&|r| r.reconstruction_error),
        mean_rate_hz: col(&|r| r.mean_rate_hz),
        gain,
        recurrent_scale: scale,
        val_accuracy_at_gain: val_acc,
    };
    Ok((rows, summary))
}
