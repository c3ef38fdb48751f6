//! The training driver: epochs of fresh trials through the local rule, the feedback-gain
//! schedule, validation reconstruction error after every epoch with the best weights kept,
//! checkpoints and resume, and several networks trained at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::rule::{TrainTrialStats, reconstruction_error, train_trial_deferred};
use crate::chip::Perturbation;
use crate::config::{RobustTraining, TrainingConfig};
use crate::engine::gpu::context::GpuContext;
use crate::engine::{CpuEngine, Engine, EngineError, EnsembleJob, Record};
use crate::learn::hardware::{ChipModel, OnChip};
use crate::learn::{GpuEnsembleTrainer, GpuTrainer};
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

/// Training record of one network.
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
    /// Hardware-aware training: the largest CAM use of any neuron of this network's running
    /// (on-chip) network at any re-quantisation of the training run.
    pub max_fan_in: Option<u64>,
    /// Hardware-aware training: the fixed W_slow connections, `[pre][post]` (None: not fixed).
    pub w_slow_mask: Option<Vec<bool>>,
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
        let trials: Vec<_> = (start..end)
            .into_par_iter()
            .map(|i| task.trial(split, i as u64))
            .collect();
        let inputs: Vec<Vec<f32>> = trials.iter().map(|t| t.input.clone()).collect();
        let job = EnsembleJob {
            net,
            perturbation: &none,
            seed,
            instances: 0..1,
            inputs: &inputs,
            trial_offset: start as u32,
            steps,
            record: Record {
                x: net.decodes_teacher(),
                spikes: false,
                v: false,
            },
        };
        let out = CpuEngine.simulate(&job)?;
        let per: Vec<(bool, bool, f64, f64)> = trials
            .par_iter()
            .zip(&out.trials[0])
            .map(|(trial, o)| {
                let (y_t, x_t) = teacher.forward(&trial.input, steps);
                // R is defined where x~ decodes the teacher (0 otherwise; see Method)
                let r = match o.x.as_deref() {
                    Some(x_hat) => reconstruction_error(&x_t, x_hat, teacher.nc) as f64,
                    None => 0.0,
                };
                let mse =
                    o.y.iter()
                        .zip(&trial.target)
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum::<f64>()
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
        spikes += out.trials[0]
            .iter()
            .map(|o| o.spike_counts.iter().map(|&c| c as u64).sum::<u64>())
            .sum::<u64>();
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

/// Options that are not part of the experiment config.
#[derive(Default)]
pub struct TrainOptions<'a> {
    /// Folder for per-epoch checkpoints (None: no checkpoints).
    pub checkpoint: Option<&'a Path>,
    /// Continue from the checkpoint instead of starting over.
    pub resume: bool,
    pub show_progress: bool,
    /// Run the learning rule on this GPU device instead of the CPU.
    pub gpu: Option<Arc<GpuContext>>,
    /// Hardware-aware training (`cfg.hardware`): the chip's constraints (for the DYNAP-SE1,
    /// `export::dynapse1::onchip::Dynapse1Chip`, which maps as the exporter does), and the
    /// per-parameter spread of the training chips (`[export.mismatch]`) when
    /// `cfg.hardware.dynap_mismatch`.
    pub chip: Option<(Arc<dyn ChipModel>, Option<crate::chip::MismatchCv>)>,
}

/// Where the rule runs. Both compute the same function (tests/gpu_learn.rs).
enum Rule {
    Cpu,
    Gpu(Box<GpuTrainer>),
    /// Quantisation-aware training on the CPU.
    CpuQat(Qat),
    /// Mismatch-ensemble training on the CPU: the config, the total number of trials, and QAT
    /// when it is combined with it (the chips then run the quantised networks).
    CpuEnsemble(RobustTraining, usize, Option<Qat>),
    /// Mismatch-ensemble training on the GPU (one trainer per network), as `CpuEnsemble`.
    GpuEnsemble(Vec<GpuEnsembleTrainer>, RobustTraining, usize, Option<Qat>),
}

/// The training chips' mismatch sigma and the rule's settings of ensemble trial `index` of
/// `total`.
fn ensemble_trial(
    r: &RobustTraining,
    total: usize,
    index: u32,
    k: f32,
    eta: f32,
) -> (f32, super::ensemble::TrialSettings) {
    let settings = super::ensemble::TrialSettings {
        k,
        eta,
        trial_index: index,
        max_rate_hz: r.max_rate_hz,
    };
    (
        super::ensemble::sigma_at(r, index as usize, total),
        settings,
    )
}

/// The figures of an ensemble trial: the mean over its chips.
fn ensemble_stats(runs: &[super::ensemble::ChipTrial]) -> TrainTrialStats {
    let m = runs.len().max(1) as f32;
    TrainTrialStats {
        spikes: runs.iter().map(|c| c.stats.spikes).sum(),
        mean_rate_hz: runs.iter().map(|c| c.stats.mean_rate_hz).sum::<f32>() / m,
        recon_error: runs.iter().map(|c| c.stats.recon_error).sum::<f32>() / m,
    }
}

/// Quantisation-aware training (docs/design.md §2): the fixed matrices of the scope (F, D,
/// W_fast) are quantised once, before training, and stay so; each network's W_slow is the float
/// shadow the rule updates, and the forward step runs its quantised copy, re-quantised every
/// `interval` trials (within a trial the running W_slow is fixed: re-quantising N² weights every
/// step would cost more than the step; eta = 1e-6 moves W_slow little within a trial).
struct Qat {
    bits: u32,
    /// Is W_slow rounded (the scope includes it and `bits` is below float)? When it is not,
    /// there is nothing to keep apart: the forward step runs on W_slow itself, updated every
    /// step as in plain training.
    w_slow: bool,
    interval: usize,
    /// The networks as they run: the fixed matrices and the quantised W_slow.
    running: Vec<Network>,
    /// Trials since the last re-quantisation.
    since: usize,
    /// Hardware-aware training: the running networks are the chip's ([`OnChip::running`])
    /// instead of `bits`-bit grids.
    chip: Option<ChipTraining>,
}

/// The chip constraints of hardware-aware training, one [`OnChip`] (its W_slow mask) per network.
struct ChipTraining {
    chips: Vec<OnChip>,
    /// Global trial index at whose re-quantisation the masks are fixed.
    fix_at: usize,
    /// Largest CAM use of any neuron of each running network so far.
    max_fan_in: Vec<u64>,
}

impl Qat {
    fn new(cfg: &TrainingConfig, nets: &[Network], chip: Option<&Arc<dyn ChipModel>>) -> Qat {
        let total = cfg.epochs * cfg.samples_per_epoch;
        Qat {
            bits: cfg.qat_bits,
            w_slow: chip.is_some()
                || (cfg.qat_scope.rounds()[3] && cfg.qat_bits < crate::snn::quantize::FLOAT_BITS),
            interval: cfg.qat_interval.max(1),
            running: nets.to_vec(),
            since: usize::MAX,
            chip: chip.map(|model| ChipTraining {
                chips: vec![OnChip::new(model.clone()); nets.len()],
                fix_at: ((cfg.hardware.mask_after * total as f32).ceil() as usize).max(1),
                max_fan_in: vec![0; nets.len()],
            }),
        }
    }

    /// The running networks for the shadows `nets` at global trial `index`: the chip's, with
    /// the masks fixed once `index` reaches `fix_at`.
    fn chip_running(
        &mut self,
        nets: &[Network],
        index: usize,
    ) -> Result<Vec<Network>, crate::Error> {
        let Some(c) = &mut self.chip else {
            return Ok(nets.to_vec());
        };
        let mut out = Vec::with_capacity(nets.len());
        for ((net, oc), most) in nets
            .iter()
            .zip(c.chips.iter_mut())
            .zip(c.max_fan_in.iter_mut())
        {
            let r = oc
                .running(net)
                .map_err(|e| crate::Error::Other(format!("hardware-aware training: {e}")))?;
            *most = (*most).max(r.fan_in.iter().copied().max().unwrap_or(0));
            if oc.mask().is_none() && index >= c.fix_at {
                oc.fix_mask(&r.net);
            }
            out.push(r.net);
        }
        Ok(out)
    }

    /// The running copies' W_slow from the shadows, when due (`index`: the global trial).
    fn refresh(&mut self, nets: &[Network], index: usize) -> Result<(), crate::Error> {
        if self.since < self.interval {
            return Ok(());
        }
        if self.chip.is_some() {
            self.running = self.chip_running(nets, index)?;
            self.since = 0;
            return Ok(());
        }
        for (run, net) in self.running.iter_mut().zip(nets) {
            run.w_slow = if self.w_slow {
                crate::snn::quantize::quantize(&net.w_slow, self.bits)
            } else {
                net.w_slow.clone()
            };
        }
        self.since = 0;
        Ok(())
    }
}

/// The nominal networks QAT starts from: the fixed matrices of `cfg.qat_scope` (all but W_slow)
/// on their `cfg.qat_bits`-bit grids; unchanged without QAT.
pub fn qat_start(net: Network, cfg: &TrainingConfig) -> Network {
    if cfg.qat_bits == 0 {
        return net;
    }
    let [f, d, w_fast, _] = cfg.qat_scope.rounds();
    net.quantized_parts(cfg.qat_bits, [f, d, w_fast, false])
}

impl Rule {
    /// One trial per network, all networks in lockstep. The CPU trainers apply the update in
    /// blocks of `block` steps (`training.update_block`); the GPU trainers every step.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &mut self,
        nets: &mut [Network],
        trials: &[(Vec<f32>, Vec<f32>)],
        k: f32,
        eta: f32,
        seeds: &[u64],
        index: u32,
        block: usize,
    ) -> Result<Vec<TrainTrialStats>, crate::Error> {
        match self {
            Rule::Cpu => nets
                .par_iter_mut()
                .zip(trials)
                .zip(seeds)
                .map(|((net, (input, x)), &seed)| {
                    train_trial_deferred(net, None, input, x, k, eta, seed, index, block)
                })
                .collect::<Result<_, _>>()
                .map_err(Into::into),
            Rule::CpuEnsemble(r, total, qat) => {
                let (sigma, at) = ensemble_trial(r, *total, index, k, eta);
                let r = &*r;
                let runs: Vec<Vec<super::ensemble::ChipTrial>> = match qat {
                    Some(q) if q.w_slow => {
                        q.refresh(nets, index as usize)?;
                        q.since += 1;
                        q.running
                            .par_iter()
                            .zip(nets.par_iter_mut())
                            .zip(trials)
                            .zip(seeds)
                            .map(|(((run, net), (input, x)), &seed)| {
                                let chips = super::ensemble::draw_chips(run, r, seed, index, sigma);
                                super::ensemble::train_trial_ensemble_shadow_deferred(
                                    run,
                                    &mut net.w_slow,
                                    &chips,
                                    input,
                                    x,
                                    &at,
                                    block,
                                )
                            })
                            .collect::<Result<_, _>>()?
                    }
                    _ => nets
                        .par_iter_mut()
                        .zip(trials)
                        .zip(seeds)
                        .map(|((net, (input, x)), &seed)| {
                            let chips = super::ensemble::draw_chips(net, r, seed, index, sigma);
                            super::ensemble::train_trial_ensemble_deferred(
                                net, &chips, input, x, &at, block,
                            )
                        })
                        .collect::<Result<_, _>>()?,
                };
                Ok(runs.iter().map(|r| ensemble_stats(r)).collect())
            }
            Rule::GpuEnsemble(trs, r, total, qat) => {
                let (sigma, at) = ensemble_trial(r, *total, index, k, eta);
                let mut out = Vec::with_capacity(nets.len());
                match qat {
                    Some(q) if q.w_slow => {
                        if q.since >= q.interval {
                            // re-quantise: the shadows to the host, their grids to the chips
                            for (tr, net) in trs.iter().zip(nets.iter_mut()) {
                                net.w_slow = tr.shadow()?;
                            }
                            q.refresh(nets, index as usize)?;
                            for (tr, run) in trs.iter_mut().zip(&q.running) {
                                tr.set_running_w_slow(&run.w_slow)?;
                            }
                        }
                        q.since += 1;
                        for (((tr, run), (input, x)), &seed) in
                            trs.iter_mut().zip(&q.running).zip(trials).zip(seeds)
                        {
                            let chips = super::ensemble::draw_chips(run, r, seed, index, sigma);
                            out.push(ensemble_stats(&tr.train_trial(run, &chips, input, x, &at)?));
                        }
                    }
                    // the chips read the network's parameters and fixed matrices only: its
                    // W_slow on the host may be behind the device's
                    _ => {
                        for (((tr, net), (input, x)), &seed) in
                            trs.iter_mut().zip(nets.iter()).zip(trials).zip(seeds)
                        {
                            let chips = super::ensemble::draw_chips(net, r, seed, index, sigma);
                            out.push(ensemble_stats(&tr.train_trial(net, &chips, input, x, &at)?));
                        }
                    }
                }
                Ok(out)
            }
            Rule::CpuQat(q) if !q.w_slow => nets
                .par_iter_mut()
                .zip(trials)
                .zip(seeds)
                .map(|((net, (input, x)), &seed)| {
                    train_trial_deferred(net, None, input, x, k, eta, seed, index, block)
                })
                .collect::<Result<_, _>>()
                .map_err(Into::into),
            Rule::CpuQat(q) => {
                q.refresh(nets, index as usize)?;
                q.since += 1;
                q.running
                    .par_iter_mut()
                    .zip(nets.par_iter_mut())
                    .zip(trials)
                    .zip(seeds)
                    .map(|(((run, net), (input, x)), &seed)| {
                        train_trial_deferred(
                            run,
                            Some(&mut net.w_slow),
                            input,
                            x,
                            k,
                            eta,
                            seed,
                            index,
                            block,
                        )
                    })
                    .collect::<Result<_, _>>()
                    .map_err(Into::into)
            }
            Rule::Gpu(tr) => {
                let inputs: Vec<&[f32]> = trials.iter().map(|t| t.0.as_slice()).collect();
                let targets: Vec<&[f32]> = trials.iter().map(|t| t.1.as_slice()).collect();
                let idx = vec![index; nets.len()];
                Ok(tr.train_trial(&inputs, &targets, k, eta, seeds, &idx)?)
            }
        }
    }

    /// Hardware-aware training's QAT state.
    fn chip_qat(&mut self) -> Option<&mut Qat> {
        match self {
            Rule::CpuQat(q)
            | Rule::CpuEnsemble(_, _, Some(q))
            | Rule::GpuEnsemble(_, _, _, Some(q))
                if q.chip.is_some() =>
            {
                Some(q)
            }
            _ => None,
        }
    }

    /// Under hardware-aware training, the networks the chip runs for the shadows `nets` (what
    /// validation measures and training keeps); `None` otherwise.
    fn on_chip(&mut self, nets: &[Network]) -> Result<Option<Vec<Network>>, crate::Error> {
        match self.chip_qat() {
            // index 0: validation never fixes a mask
            Some(q) => q.chip_running(nets, 0).map(Some),
            None => Ok(None),
        }
    }

    /// The fixed W_slow masks (`pre * N + post`) of hardware-aware training, per network.
    fn masks(&mut self) -> Vec<Option<Vec<u32>>> {
        let Some(c) = self.chip_qat().and_then(|q| q.chip.as_ref()) else {
            return Vec::new();
        };
        c.chips
            .iter()
            .map(|oc| {
                oc.mask().map(|m| {
                    m.iter()
                        .enumerate()
                        .filter(|(_, k)| **k)
                        .map(|(i, _)| i as u32)
                        .collect()
                })
            })
            .collect()
    }

    /// Bring the networks' W_slow up to date on the host.
    fn sync(&self, nets: &mut [Network]) -> Result<(), EngineError> {
        match self {
            Rule::Cpu | Rule::CpuQat(_) | Rule::CpuEnsemble(..) => Ok(()),
            Rule::Gpu(tr) => tr.download(nets),
            Rule::GpuEnsemble(trs, _, _, qat) => {
                let shadow = qat.as_ref().is_some_and(|q| q.w_slow);
                for (tr, net) in trs.iter().zip(nets.iter_mut()) {
                    net.w_slow = if shadow { tr.shadow()? } else { tr.w_slow()? };
                }
                Ok(())
            }
        }
    }
}

/// Resumable state of a training run (all networks).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunState {
    seeds: Vec<u64>,
    epochs_done: usize,
    nets: Vec<CheckpointState>,
    /// Hardware-aware training: each network's fixed W_slow connections (`pre * N + post`),
    /// once fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    masks: Vec<Option<Vec<u32>>>,
}

/// Train `cfg.networks` networks (seeds `seed`, `seed + 1`, ...) at once, each on its own stream
/// of training trials, and return all of them, best (lowest validation R) first.
pub fn train_networks(
    make_net: &(dyn Fn(u64) -> Result<Network, crate::snn::SnnError> + Sync),
    teacher: &TeacherWeights,
    task: &dyn Task,
    cfg: &TrainingConfig,
    seed: u64,
    opts: &TrainOptions,
) -> Result<Vec<TrainedNetwork>, crate::Error> {
    let other = |m: String| crate::Error::Other(m);
    let io = |p: &Path, e: std::io::Error| crate::Error::io(p, e);
    let seeds: Vec<u64> = (0..cfg.networks as u64).map(|i| seed + i).collect();
    let mut nets: Vec<Network> = seeds
        .iter()
        .map(|&s| make_net(s).map(|n| qat_start(n, cfg)))
        .collect::<Result<_, _>>()?;
    // the rule (CPU and GPU trainers alike) learns W_slow beside W_fast; it has no step for
    // further synapse types, so a network with them is refused here, before any trainer exists
    for net in &nets {
        net.require_two_synapse_types("Network ADS training (the local rule)")?;
    }
    let mut best = nets.clone();
    let mut run = RunState {
        seeds: seeds.clone(),
        epochs_done: 0,
        nets: seeds
            .iter()
            .map(|&s| CheckpointState {
                network_seed: s,
                epochs_done: 0,
                history: Vec::new(),
                best_epoch: 0,
                best_val_r: f64::INFINITY,
                seconds: 0.0,
            })
            .collect(),
        masks: Vec::new(),
    };
    if let (Some(dir), true) = (opts.checkpoint, opts.resume) {
        let sp = dir.join("state.json");
        if sp.is_file() {
            let text = std::fs::read_to_string(&sp).map_err(|e| io(&sp, e))?;
            let loaded: RunState = serde_json::from_str(&text)
                .map_err(|e| other(format!("{}: corrupt checkpoint: {e}", sp.display())))?;
            if loaded.seeds != seeds {
                return Err(other(format!(
                    "{}: checkpoint trains network seeds {:?}, this run trains {:?}",
                    sp.display(),
                    loaded.seeds,
                    seeds
                )));
            }
            for (i, net) in nets.iter_mut().enumerate() {
                let cur = Network::load(&dir.join(format!("net{i}_current.safetensors")))?;
                if cur.n != net.n || cur.nc != net.nc || cur.params != net.params {
                    return Err(other(format!(
                        "{}: checkpoint network (N = {}, Nc = {}) does not match the config (N = {}, Nc = {})",
                        dir.display(),
                        cur.n,
                        cur.nc,
                        net.n,
                        net.nc
                    )));
                }
                *net = cur;
                best[i] = Network::load(&dir.join(format!("net{i}_best.safetensors")))?;
            }
            run = loaded;
        }
    }
    // On a GPU: the plain rule on the GPU trainer, mismatch-ensemble training (with QAT or
    // not) on the GPU ensemble trainer; QAT alone runs on the CPU trainer (it trains one
    // network per trial: the CPU is the faster place), with a notice.
    let total_trials = cfg.epochs * cfg.samples_per_epoch;
    let chip_model = match (&opts.chip, cfg.hardware.enabled()) {
        (Some((o, _)), true) => Some(o),
        (None, true) => {
            return Err(other(
                "training.hardware is set but the trainer was given no chip constraints".into(),
            ));
        }
        _ => None,
    };
    let mut qat =
        (cfg.qat_bits > 0 || chip_model.is_some()).then(|| Qat::new(cfg, &nets, chip_model));
    if let Some(c) = qat.as_mut().and_then(|q| q.chip.as_mut()) {
        for (oc, m) in c.chips.iter_mut().zip(&run.masks) {
            if let Some(m) = m {
                let n = nets[0].n;
                let mut mask = vec![false; n * n];
                for &i in m {
                    if let Some(slot) = mask.get_mut(i as usize) {
                        *slot = true;
                    }
                }
                oc.set_mask(mask);
            }
        }
        eprintln!(
            "training: hardware-aware training ({}; W_slow connections fixed after trial {})",
            chip_model.map_or(String::new(), |m| m.describe()),
            c.fix_at
        );
    }
    let mut robust = cfg.robust.clone();
    if let Some((_, cv)) = &opts.chip
        && cfg.hardware.enabled()
    {
        robust.cv_shape = *cv;
    }
    let mut rule = match (opts.gpu.as_ref(), cfg.robust.instances > 0, qat) {
        (Some(ctx), true, mut qat) => {
            let shadow = qat.as_ref().is_some_and(|q| q.w_slow);
            // the device holds the fixed matrices the chips run: under hardware-aware training
            // the chip's (its sparse W_fast and integer-count inputs), else the network's
            let base: Vec<Network> = match qat.as_mut() {
                Some(q) if q.chip.is_some() => q.chip_running(&nets, 0)?,
                _ => nets.clone(),
            };
            let trs = nets
                .iter()
                .zip(&base)
                .map(|(net, base)| {
                    if shadow {
                        // the fixed matrices are on their grids (qat_start, or the chip's); the
                        // first trial quantises W_slow from the shadow
                        GpuEnsembleTrainer::with_shadow(
                            ctx.clone(),
                            base,
                            &net.w_slow,
                            cfg.robust.instances,
                        )
                    } else {
                        GpuEnsembleTrainer::new(ctx.clone(), net, cfg.robust.instances)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(tr) = trs.first() {
                let (per_chunk, chunks) = tr.chunking();
                eprintln!(
                    "training: mismatch-ensemble trials of {} chips on the GPU ensemble trainer \
                     ({chunks} chunk(s) of up to {per_chunk} chips, {:.1} MiB of device memory \
                     per network)",
                    cfg.robust.instances,
                    tr.device_bytes() as f64 / (1 << 20) as f64
                );
            }
            Rule::GpuEnsemble(trs, robust.clone(), total_trials, qat)
        }
        (Some(ctx), false, None) => Rule::Gpu(Box::new(GpuTrainer::new(ctx.clone(), &nets)?)),
        (None, true, qat) => Rule::CpuEnsemble(robust.clone(), total_trials, qat),
        (gpu, false, Some(q)) => {
            if gpu.is_some() {
                eprintln!(
                    "training: quantisation-aware (or hardware-aware) training of one network runs \
                     on the CPU trainer (the GPU trainers implement the plain and the \
                     mismatch-ensemble rule); the other stages use the GPU"
                );
            }
            Rule::CpuQat(q)
        }
        (None, false, None) => Rule::Cpu,
    };
    if cfg.update_block > 1 && matches!(rule, Rule::Gpu(_) | Rule::GpuEnsemble(..)) {
        // the block is a CPU economy (docs/design.md §2): the GPU trainers compute the same rule
        // with the update every step, so they keep it rather than hand training to the CPU
        eprintln!(
            "training: the GPU trainer applies the update every step; training.update_block = {} \
             applies to the CPU trainers only",
            cfg.update_block
        );
    }

    let total = (cfg.epochs * cfg.samples_per_epoch) as u64;
    let pb = crate::report::progress_bar(total, "snn");
    if !opts.show_progress {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_position((run.epochs_done * cfg.samples_per_epoch) as u64);
    let total_samples = cfg.epochs * cfg.samples_per_epoch;
    let n_nets = nets.len();
    for epoch in run.epochs_done + 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut r_sum = vec![0f64; n_nets];
        let mut k = cfg.k;
        for s in 0..cfg.samples_per_epoch {
            let done = (epoch - 1) * cfg.samples_per_epoch + s;
            k = k_schedule(cfg.k, cfg.k_plateaus, cfg.k_min, done, total_samples);
            // Network i draws its trials from its own index range, so networks see different data.
            let trials: Vec<(Vec<f32>, Vec<f32>)> = (0..n_nets)
                .into_par_iter()
                .map(|i| {
                    let trial = task.trial(Split::Train, i as u64 * 1_000_000_000 + done as u64);
                    let (_, x) = teacher.forward(&trial.input, trial.steps);
                    (trial.input, x)
                })
                .collect();
            let stats = rule.train(
                &mut nets,
                &trials,
                k,
                cfg.eta,
                &seeds,
                done as u32,
                cfg.update_block,
            )?;
            for (acc, st) in r_sum.iter_mut().zip(&stats) {
                *acc += st.recon_error as f64;
            }
            pb.inc(1);
            if s % 10 == 0 {
                let st = &stats[0];
                pb.set_message(format!(
                    "epoch {epoch} R {:.3} rate {:.1} Hz k {k:.0}",
                    st.recon_error, st.mean_rate_hz
                ));
            }
        }
        rule.sync(&mut nets)?;
        let train_seconds = t0.elapsed().as_secs_f64();
        for (i, net) in nets.iter().enumerate() {
            if net.w_slow.iter().any(|w| !w.is_finite()) {
                return Err(other(format!(
                    "network {i}: W_slow diverged in epoch {epoch}; lower training.eta"
                )));
            }
        }
        // under hardware-aware training the network that counts is the chip's
        let chip_nets = rule.on_chip(&nets)?;
        let judged = chip_nets.as_deref().unwrap_or(&nets);
        let vals: Vec<EvalFigures> = judged
            .iter()
            .zip(&seeds)
            .map(|(net, &s)| evaluate(net, teacher, task, Split::Validation, cfg.val_trials, s))
            .collect::<Result<_, _>>()?;
        let seconds = t0.elapsed().as_secs_f64();
        for (i, val) in vals.iter().enumerate() {
            let state = &mut run.nets[i];
            let rec = EpochStats {
                epoch,
                k,
                train_r: r_sum[i] / cfg.samples_per_epoch as f64,
                val_r: val.reconstruction_error,
                val_accuracy: val.accuracy,
                mean_rate_hz: val.mean_rate_hz,
                seconds,
            };
            state.seconds += seconds;
            let line = format!(
                "net {i} epoch {epoch}/{}: train R {:.3}, val R {:.3}, val acc {:.3}, rate {:.1} Hz, k {:.0} ({:.0} s, {:.0} s training)",
                cfg.epochs,
                rec.train_r,
                rec.val_r,
                rec.val_accuracy,
                rec.mean_rate_hz,
                k,
                seconds,
                train_seconds
            );
            if opts.show_progress {
                pb.println(line);
            } else {
                eprintln!("{line}");
            }
            if rec.val_r < state.best_val_r {
                state.best_val_r = rec.val_r;
                state.best_epoch = epoch;
                best[i] = judged[i].clone();
            }
            state.history.push(rec);
            state.epochs_done = epoch;
        }
        run.epochs_done = epoch;
        run.masks = rule.masks();
        if let Some(dir) = opts.checkpoint {
            write_checkpoint(dir, &run, &nets, &best)?;
        }
    }
    pb.finish_and_clear();
    if let Some(q) = rule.chip_qat()
        && let Some(c) = &q.chip
    {
        let conns: Vec<String> = c
            .chips
            .iter()
            .map(|oc| {
                oc.mask().map_or("not fixed".into(), |m| {
                    m.iter().filter(|k| **k).count().to_string()
                })
            })
            .collect();
        eprintln!(
            "training: on-chip networks used at most {} CAM entries per neuron; W_slow connections \
             per network: {}",
            c.max_fan_in.iter().max().unwrap_or(&0),
            conns.join(", ")
        );
    }
    let chip_state: Vec<(Option<u64>, Option<Vec<bool>>)> =
        match rule.chip_qat().and_then(|q| q.chip.as_ref()) {
            Some(c) => c
                .chips
                .iter()
                .zip(&c.max_fan_in)
                .map(|(oc, &m)| (Some(m), oc.mask().map(<[bool]>::to_vec)))
                .collect(),
            None => vec![(None, None); n_nets],
        };
    let mut out: Vec<TrainedNetwork> = best
        .into_iter()
        .zip(run.nets)
        .zip(chip_state)
        .map(|((net, st), (max_fan_in, w_slow_mask))| TrainedNetwork {
            net,
            network_seed: st.network_seed,
            history: st.history,
            best_epoch: st.best_epoch,
            best_val_r: st.best_val_r,
            train_seconds: st.seconds,
            max_fan_in,
            w_slow_mask,
        })
        .collect();
    out.sort_by(|a, b| a.best_val_r.total_cmp(&b.best_val_r));
    Ok(out)
}

/// Write the checkpoint into a fresh folder and swap it in, so an interruption leaves either the
/// previous checkpoint or the new one, never a mix.
fn write_checkpoint(
    dir: &Path,
    run: &RunState,
    nets: &[Network],
    best: &[Network],
) -> Result<(), crate::Error> {
    let tmp = dir.with_extension("writing");
    let io = |p: &Path, e: std::io::Error| crate::Error::io(p, e);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    for (i, (n, b)) in nets.iter().zip(best).enumerate() {
        n.save(&tmp.join(format!("net{i}_current.safetensors")))?;
        b.save(&tmp.join(format!("net{i}_best.safetensors")))?;
    }
    crate::report::write_json(&tmp.join("state.json"), run)
        .map_err(|e| io(&tmp.join("state.json"), e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))
}
