//! The experiment file: one TOML document describes a whole run.
//!
//! Every field has a default (see `configs/xor.toml` for the commented reference), unknown keys are
//! rejected by serde, and [`Config::validate`] checks values so that a bad file fails before any
//! work starts, with a message naming the file, the key and the reason.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::snn::params::SnnParams;
use crate::tasks::Task;
use crate::tasks::ecg::{EcgParams, EcgTask};
use crate::tasks::xor::{XorParams, XorTask};

/// The shipped configs, embedded so the binary runs without the repository beside it.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("configs/xor.toml", include_str!("../configs/xor.toml")),
    ("configs/ecg.toml", include_str!("../configs/ecg.toml")),
    (
        "configs/xor-plain.toml",
        include_str!("../configs/xor-plain.toml"),
    ),
    (
        "configs/ecg-plain.toml",
        include_str!("../configs/ecg-plain.toml"),
    ),
    (
        "configs/xor-dynapse1.toml",
        include_str!("../configs/xor-dynapse1.toml"),
    ),
    (
        "configs/ecg-dynapse1.toml",
        include_str!("../configs/ecg-dynapse1.toml"),
    ),
];

/// A config that could not be read or is invalid. The message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {}", .problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
}

/// The whole experiment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Drives every random draw of the run (task streams, initialisation, instances).
    pub seed: u64,
    pub task: TaskConfig,
    pub teacher: TeacherConfig,
    pub snn: SnnParams,
    pub training: TrainingConfig,
    pub evaluation: EvaluationConfig,
    pub export: ExportConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            task: TaskConfig::default(),
            teacher: TeacherConfig::default(),
            snn: SnnParams::default(),
            training: TrainingConfig::default(),
            evaluation: EvaluationConfig::default(),
            export: ExportConfig::default(),
        }
    }
}

/// Which task, and its parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// `xor` (temporal XOR) or `ecg` (ECG anomaly detection).
    pub kind: TaskKind,
    pub xor: XorParams,
    pub ecg: EcgParams,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            kind: TaskKind::Xor,
            xor: XorParams::default(),
            ecg: EcgParams::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Xor,
    Ecg,
}

/// The rate-RNN teacher and its BPTT training (docs/design.md §3).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// Hidden units Nc.
    pub hidden: usize,
    /// Lower bound on every unit's time constant (clamped after each optimiser step).
    pub tau_min_ms: f32,
    /// Initial time constants are linearly spaced from `tau_init_min_ms` to `tau_init_max_ms`.
    pub tau_init_min_ms: f32,
    pub tau_init_max_ms: f32,
    /// W_in = input_scale * (U(0,1) - 0.5).
    pub input_scale: f32,
    /// Initial spectral radius of W_rec.
    pub spectral_radius: f32,
    pub epochs: usize,
    /// Optimiser steps per epoch, each on `batch_size` fresh training trials.
    pub batches_per_epoch: usize,
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Gradients are clipped to this global L2 norm (0 disables clipping).
    pub grad_clip: f32,
    /// L2 penalties: coefficient times the mean square of W_rec, b and W_out.
    pub l2_rec: f32,
    pub l2_bias: f32,
    pub l2_out: f32,
    /// L2 on W_in (mean square): bounds the input drive the spiking network must reproduce.
    pub l2_in: f32,
    /// Activity penalty: coefficient times mean(tanh(h)²) over units, steps and trials; keeps
    /// the units out of saturation.
    pub activity: f32,
    /// Each training batch runs on a teacher whose W_in, W_rec entries and time constants are
    /// multiplied by fresh (1 + param_noise z), z ~ N(0, 1): the solution must hold under
    /// relative parameter errors, as the spiking network's decoded dynamics see them.
    pub param_noise: f32,
    /// Gaussian noise of this std added to every unit's h each step during training (a proxy
    /// for the spike noise of the student).
    pub state_noise: f32,
    pub val_trials: usize,
    pub test_trials: usize,
    /// Stop early once validation accuracy reaches this value (1.0 never stops early).
    pub target_val_accuracy: f32,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            tau_min_ms: 15.0,
            tau_init_min_ms: 10.0,
            tau_init_max_ms: 100.0,
            input_scale: 10.0,
            spectral_radius: 0.95,
            epochs: 40,
            batches_per_epoch: 10,
            batch_size: 32,
            learning_rate: 3e-3,
            grad_clip: 1.0,
            l2_rec: 1e-4,
            l2_bias: 1e-4,
            l2_out: 1e-4,
            l2_in: 0.0,
            activity: 0.0,
            param_noise: 0.0,
            state_noise: 0.0,
            val_trials: 200,
            test_trials: 1000,
            target_val_accuracy: 1.0,
        }
    }
}

/// Training of the spiking network with the local rule (docs/design.md §2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// How the spiking network is trained: "ads" (Network ADS and its local rule, everything
    /// below), or one of the baselines "bptt", "force", "reservoir" (their own sections).
    pub method: crate::snn::Method,
    pub epochs: usize,
    /// Fresh training trials per epoch (batch size 1, as in the reference).
    pub samples_per_epoch: usize,
    /// Learning rate eta of the W_slow update.
    pub eta: f32,
    /// Initial error-feedback gain k.
    pub k: f32,
    /// Number of equal plateaus k steps down through (1 = constant k).
    pub k_plateaus: usize,
    /// k never drops below this.
    pub k_min: f32,
    pub val_trials: usize,
    pub test_trials: usize,
    /// Networks trained at once, with seeds seed, seed+1, ...; the best on validation is kept.
    pub networks: usize,
    /// Quantisation-aware training to this many bits (0: off; 32: the float network through
    /// the QAT path). The fixed matrices of `qat_scope` are quantised once, W_slow is a float
    /// shadow that the rule updates, and the forward step runs its quantised copy.
    pub qat_bits: u32,
    /// Which matrices QAT quantises: "all" (F, D, W_fast, W_slow) or "paper" (W_fast in float).
    pub qat_scope: crate::snn::QuantScope,
    /// Training trials between re-quantisations of the shadow W_slow.
    pub qat_interval: usize,
    /// Steps whose W_slow updates the CPU trainers apply at once, as one matrix product
    /// (`learn::deferred`; the spiking rows are reconstructed, so the network runs the same
    /// weights to rounding). 1: every step, as the GPU trainers do.
    pub update_block: usize,
    /// Mismatch-ensemble training (`[training.robust]`).
    pub robust: RobustTraining,
    /// The plain recipe that `run` trains beside a robust one and compares it with
    /// (`[training.plain]`).
    pub plain: PlainComparison,
    /// Hardware-aware training (`[training.hardware]`).
    pub hardware: HardwareTraining,
    /// The BPTT-trained LIF baseline (`[training.bptt]`).
    pub bptt: BpttConfig,
    /// The FORCE baseline (`[training.force]`).
    pub force: ForceConfig,
    /// The reservoir baseline (`[training.reservoir]`).
    pub reservoir: ReservoirConfig,
}

/// BPTT-trained LIF network (docs/design.md §2, "Baselines"): input layer, recurrent layer and
/// exponential-synapse readout trained end to end on the task target with a surrogate gradient.
/// The neurons are `[snn]`'s (tau_mem, tau_slow as the synapse, tau_out as the readout filter,
/// V_th, V_rest, V_reset, bias), without fast synapses or adaptation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BpttConfig {
    /// Neurons of the input layer (the first ones of the population): only they receive the
    /// input, they project to the recurrent layer and have no recurrent input; 0 = the input
    /// drives the recurrent layer directly.
    pub input_neurons: usize,
    pub epochs: usize,
    /// Adam steps per epoch, each on `batch_size` fresh trials.
    pub batches_per_epoch: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Per-tensor gradient norm clip (0 = off).
    pub grad_clip: f32,
    /// The surrogate: dS/dV = damping slope sigma'(slope (V - V_th)) (sigma the logistic).
    pub surrogate_slope: f32,
    pub surrogate_damping: f32,
    /// L2 penalty (mean square) on the input, recurrent and readout weights.
    pub l2: f32,
    /// Penalty on (rate - rate_target_hz)² in Hz², averaged over neurons (0 = off).
    pub rate_penalty: f32,
    pub rate_target_hz: f32,
    /// Initial weight scale: input N(0, input_scale²), recurrent N(0, rec_scale² / N_rec).
    pub input_scale: f32,
    pub rec_scale: f32,
}

impl Default for BpttConfig {
    fn default() -> Self {
        Self {
            input_neurons: 32,
            epochs: 20,
            batches_per_epoch: 10,
            batch_size: 16,
            learning_rate: 5e-3,
            grad_clip: 1.0,
            surrogate_slope: 10.0,
            surrogate_damping: 0.1,
            l2: 1e-5,
            rate_penalty: 1e-5,
            rate_target_hz: 20.0,
            input_scale: 2.0,
            rec_scale: 0.1,
        }
    }
}

/// FORCE (Nicola and Clopath 2017; paper §6): an LIF network with a fixed sparse random
/// recurrence Ω and a fixed random feedback E learns a decoder φ with recursive least squares so
/// that x~ = φᵀ r follows the teacher's state while E x~ is fed back; for evaluation the feedback
/// is folded into the recurrent weights, W = Ω + φ Eᵀ. The input is the teacher's W_in c through
/// the same encoder as Network ADS.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ForceConfig {
    pub epochs: usize,
    pub samples_per_epoch: usize,
    /// Connection probability of Ω.
    pub p: f32,
    /// Gain G of Ω: entries G z / sqrt(N p), z ~ N(0, 1), each row's mean removed.
    pub gain: f32,
    /// Feedback strength Q: E ~ Q U(-1, 1).
    pub feedback: f32,
    /// RLS regulariser: P starts as I / alpha.
    pub alpha: f32,
    /// Steps between RLS updates.
    pub update_every: usize,
    /// Constant bias current of the FORCE neurons (replaces `snn.bias`): keeps them firing.
    pub bias: f32,
}

impl Default for ForceConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            samples_per_epoch: 100,
            p: 0.1,
            gain: 0.05,
            feedback: 3.0,
            alpha: 1.0,
            update_every: 2,
            bias: 0.5,
        }
    }
}

/// Liquid state machine (paper §6): a fixed sparse random recurrent LIF network; a ridge
/// regression fits the readout of its filtered spike trains to the task target.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReservoirConfig {
    /// Training trials the readout is fitted on.
    pub train_trials: usize,
    /// Connection probability of the recurrence.
    pub p: f32,
    /// Gain of the recurrence: entries gain z / sqrt(N p), each row's mean removed.
    pub gain: f32,
    /// Connection probability of the input projection.
    pub input_p: f32,
    /// Input weights input_gain z, z ~ N(0, 1).
    pub input_gain: f32,
    /// Ridge penalty relative to the mean diagonal of the feature covariance.
    pub ridge: f64,
    /// Constant bias current of the reservoir neurons (replaces `snn.bias`).
    pub bias: f32,
    /// Time constants (ms) of further synapse types: each gets its own fixed sparse random
    /// recurrence drawn like the slow one (`p`, `gain`), so the reservoir mixes timescales
    /// (a multi-timescale reservoir). Empty: the slow synapse type only.
    pub extra_tau_ms: Vec<f32>,
}

impl Default for ReservoirConfig {
    fn default() -> Self {
        Self {
            train_trials: 500,
            p: 0.1,
            gain: 0.11,
            input_p: 0.5,
            input_gain: 1.5,
            ridge: 1e-4,
            bias: 0.3,
            extra_tau_ms: Vec::new(),
        }
    }
}

/// The chip a network is trained for.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HardwareTarget {
    /// Float weights, dense connectivity; the export maps the network afterwards.
    #[default]
    None,
    /// Trained inside the DYNAP-SE1's constraints (`[export]`'s CAM budget and counts).
    Dynapse1,
}

/// Hardware-aware training (docs/design.md §2, "Hardware-aware training"): the forward step runs
/// the network the exporter writes (integer counts x per-(core, type) units, at most
/// `export.cam_budget` CAM entries per neuron, inputs first, W_fast within `export.fast_cams`,
/// W_slow in the rest), the rule updates a float shadow of W_slow, and the W_slow connectivity
/// is fixed after the first `mask_after` fraction of training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HardwareTraining {
    pub target: HardwareTarget,
    /// Fraction of the training trials during which W_slow's connections are the largest shadow
    /// weights that fit (re-chosen at every re-quantisation); then they are fixed.
    pub mask_after: f32,
    /// The training chips of `[training.robust]` get `[export.mismatch]`'s per-parameter spread,
    /// scaled so that the largest CV equals the ramp's current sigma.
    pub dynap_mismatch: bool,
}

impl Default for HardwareTraining {
    fn default() -> Self {
        Self {
            target: HardwareTarget::None,
            mask_after: 0.25,
            dynap_mismatch: true,
        }
    }
}

impl HardwareTraining {
    pub fn enabled(&self) -> bool {
        self.target != HardwareTarget::None
    }
}

/// The plain recipe beside the robust one: `run` also trains the network with mismatch-ensemble
/// training and QAT off (every other `[training]` key as given, the training length below) into
/// `DIR/plain/`, and the study evaluates both on identical chip draws with a paired test.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlainComparison {
    /// Train and compare the plain network (only when the recipe is not plain already).
    pub compare: bool,
    /// Training length of the plain network (epochs x fresh trials per epoch).
    pub epochs: usize,
    pub samples_per_epoch: usize,
}

impl Default for PlainComparison {
    fn default() -> Self {
        Self {
            compare: false,
            epochs: 20,
            samples_per_epoch: 500,
        }
    }
}

impl TrainingConfig {
    /// Whether this recipe trains under simulated imperfections (ensemble or QAT).
    pub fn is_robust(&self) -> bool {
        self.robust.instances > 0 || self.qat_bits > 0 || self.hardware.enabled()
    }

    /// The plain recipe of [`PlainComparison`]: ensemble training and QAT off, its own length.
    pub fn plain_recipe(&self) -> TrainingConfig {
        TrainingConfig {
            epochs: self.plain.epochs,
            samples_per_epoch: self.plain.samples_per_epoch,
            qat_bits: 0,
            robust: RobustTraining {
                instances: 0,
                ..self.robust.clone()
            },
            plain: PlainComparison {
                compare: false,
                ..self.plain.clone()
            },
            hardware: HardwareTraining::default(),
            ..self.clone()
        }
    }
}

/// Mismatch-ensemble training of the local rule (docs/design.md §2): every training trial runs
/// on `instances` freshly drawn simulated chips from the same W_slow, and W_slow moves by the
/// mean of their updates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RobustTraining {
    /// Chips per training trial (0: off, the plain rule on the nominal network).
    pub instances: usize,
    /// Mismatch sigma of the training chips (paper mode unless `full`) ...
    pub sigma: f32,
    /// ... reached from this sigma over the first `ramp` fraction of the training trials.
    pub sigma_start: f32,
    pub ramp: f32,
    /// Full-mode mismatch (W_fast, tau_fast, tau_out too).
    pub full: bool,
    /// Fraction of each trial's chips that are the nominal network.
    pub nominal_share: f32,
    /// Membrane noise of the training chips (units of V_th - V_reset).
    pub noise: f32,
    /// Fraction of silenced neurons on the training chips.
    pub silence: f32,
    /// A chip whose rate in the trial exceeds this (Hz) is left out of the mean (0: none).
    pub max_rate_hz: f32,
    /// Per-parameter spread of the training chips, set by the trainer (not a config key):
    /// `[export.mismatch]` under hardware-aware training; the chips then get these CVs scaled so
    /// that the largest equals the ramp's sigma, instead of one sigma in `full`'s mode.
    #[serde(skip)]
    pub cv_shape: Option<crate::chip::MismatchCv>,
}

impl Default for RobustTraining {
    fn default() -> Self {
        Self {
            instances: 0,
            sigma: 0.2,
            sigma_start: 0.05,
            ramp: 0.25,
            full: false,
            nominal_share: 0.125,
            noise: 0.0,
            silence: 0.0,
            max_rate_hz: 100.0,
            cv_shape: None,
        }
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            samples_per_epoch: 500,
            eta: 1e-6,
            k: 75.0,
            k_plateaus: 1,
            k_min: 25.0,
            val_trials: 200,
            test_trials: 1000,
            networks: 1,
            qat_bits: 0,
            qat_scope: crate::snn::QuantScope::All,
            qat_interval: 1,
            update_block: 1,
            robust: RobustTraining::default(),
            plain: PlainComparison::default(),
            hardware: HardwareTraining::default(),
            method: crate::snn::Method::Ads,
            bptt: BpttConfig::default(),
            force: ForceConfig::default(),
            reservoir: ReservoirConfig::default(),
        }
    }
}

/// The robustness study (docs/design.md §5).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Chip instances per level (test draws). 0: 1000 on a GPU, 32 on the CPU.
    pub instances: u32,
    /// Separate validation draws per level for the gain recalibration. 0: a quarter of
    /// `instances`, at least 4.
    pub val_instances: u32,
    /// Fixed test trials every instance runs.
    pub test_trials: usize,
    /// Validation trials for the gain recalibration.
    pub val_trials: usize,
    /// Mismatch levels sigma in the paper's mode.
    pub mismatch: Vec<f32>,
    /// Mismatch levels in the full mode (W_fast, tau_fast and tau_out too).
    pub mismatch_full: Vec<f32>,
    /// Weight quantisation levels in bits.
    pub bits: Vec<u32>,
    /// Membrane noise levels (std in units of V_th - V_reset).
    pub noise: Vec<f32>,
    /// Silenced fractions.
    pub silence: Vec<f32>,
    /// Quantisation levels in the paper's scope: F, D and W_slow rounded, W_fast in float (as
    /// the paper's code ran), beside `bits` (all weights).
    pub bits_paper: Vec<u32>,
    /// The sensitivity table: each of tau_mem, tau_slow, V_th, F, D, W_slow, W_fast, tau_fast
    /// mismatched alone at this sigma (0: no such levels) ...
    pub sensitivity_sigma: f32,
    /// ... and each of F, D, W_fast, W_slow quantised alone to this many bits (0: none).
    pub sensitivity_bits: u32,
    /// Perturbed copies of the teacher per `mismatch` sigma for its accuracy ceiling (0: none).
    pub teacher_draws: usize,
    /// Also evaluate every combination of two or more kinds.
    pub grid: bool,
    /// Output-gain grid for the recalibration.
    pub gain_min: f32,
    pub gain_max: f32,
    pub gain_steps: usize,
    /// Candidate scale factors of W_fast and W_slow, chosen per level on the validation draws
    /// together with the gain (the paper scaled them by hand: 0.9 / 0.8 / 0.5 / 0.2 at 5 / 10 /
    /// 20 / 30 % mismatch). [1.0] disables it.
    pub recurrent_scales: Vec<f32>,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            instances: 0,
            val_instances: 0,
            test_trials: 100,
            val_trials: 50,
            mismatch: vec![0.05, 0.1, 0.2, 0.3],
            mismatch_full: vec![],
            bits: vec![2, 3, 4, 5, 6],
            noise: vec![0.01, 0.05, 0.1],
            silence: vec![0.4],
            bits_paper: vec![4],
            sensitivity_sigma: 0.2,
            sensitivity_bits: 4,
            teacher_draws: 16,
            grid: false,
            gain_min: 0.5,
            gain_max: 5.5,
            gain_steps: 100,
            recurrent_scales: vec![1.0, 0.9, 0.8, 0.65, 0.5, 0.35, 0.2],
        }
    }
}

/// DYNAP-SE1 deployment (docs/design.md §7): quantisation and pruning policy, nominal bias
/// mapping, the re-simulation of the deployed network and the power estimate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// CAM entries a neuron may use, inputs included (the chip has 64).
    pub cam_budget: u32,
    /// Count given to a weight at the unit quantile of its (core, synapse type) (1..=64).
    pub max_count: u32,
    /// The same for input connections (they scale through the host's input encoding).
    pub input_max_count: u32,
    /// The unit weight of a (core, type) is this quantile of its |w| divided by `max_count`;
    /// larger weights are clipped to `max_count`. 1.0: the largest weight sets the unit.
    pub unit_quantile: f32,
    /// CAM entries per neuron kept for W_fast before the other weights compete for the rest
    /// (W_fast's entries are many and small; ranked with W_slow by |w| they would all be pruned).
    pub fast_cams: u32,
    /// Nominal current of the largest unit weight on the board, pA (ASSUMPTION: uncalibrated).
    pub max_unit_current_pa: f64,
    /// DPI gains I_th / I_tau of the membrane and of the synapses.
    pub mem_gain: f64,
    pub syn_gain: f64,
    /// Chip instances of the re-simulation (0: as `evaluation.instances`).
    pub instances: u32,
    /// Relative mismatch of the re-simulated chips, per parameter.
    pub mismatch: DynapMismatch,
    /// Energy per spike a neuron emits (generation, encoding, routing), pJ. ASSUMPTION.
    pub energy_per_spike_pj: f64,
    /// Energy per synaptic event (one CAM match driving a synapse pulse), pJ. ASSUMPTION.
    pub energy_per_synaptic_event_pj: f64,
    /// Static power of the used cores, µW, added to the event power (0: not modelled).
    pub static_power_uw: f64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            cam_budget: 64,
            max_count: 4,
            input_max_count: 16,
            unit_quantile: 1.0,
            fast_cams: 16,
            max_unit_current_pa: 100.0,
            mem_gain: 2.0,
            syn_gain: 1.0,
            instances: 0,
            mismatch: DynapMismatch::default(),
            energy_per_spike_pj: 883.0,
            energy_per_synaptic_event_pj: 324.0,
            static_power_uw: 0.0,
        }
    }
}

/// Per-parameter relative sigma of a DYNAP-SE1 chip (the readout runs on the host, unperturbed).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DynapMismatch {
    pub tau_mem: f32,
    pub tau_fast: f32,
    pub tau_slow: f32,
    pub v_th: f32,
    pub w_in: f32,
    pub w_fast: f32,
    pub w_slow: f32,
}

impl Default for DynapMismatch {
    fn default() -> Self {
        Self {
            tau_mem: 0.2,
            tau_fast: 0.2,
            tau_slow: 0.2,
            v_th: 0.2,
            w_in: 0.2,
            w_fast: 0.2,
            w_slow: 0.2,
        }
    }
}

impl DynapMismatch {
    /// The engine's per-parameter sigmas: decoder and readout filter are host-side, so nominal.
    pub fn cv(&self) -> crate::chip::MismatchCv {
        crate::chip::MismatchCv {
            tau_mem: self.tau_mem,
            tau_slow: self.tau_slow,
            tau_fast: self.tau_fast,
            tau_out: 0.0,
            v_th: self.v_th,
            w_in: self.w_in,
            d: 0.0,
            w_slow: self.w_slow,
            w_fast: self.w_fast,
        }
    }
}

impl Config {
    /// Read and validate a config file. `name` is what errors call the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                // A path that names a shipped config still works without the repository.
                if let Some((_, text)) = EMBEDDED.iter().find(|(p, _)| Path::new(p) == path) {
                    text.to_string()
                } else {
                    return Err(ConfigError::Read { file, source });
                }
            }
        };
        Self::parse(&text, &file)
    }

    /// Parse and validate TOML text.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: format_toml_error(&e, text),
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Check every value; all problems are reported at once.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        let t = &self.teacher;
        positive(&mut p, "teacher.hidden", t.hidden as f64);
        positive(&mut p, "teacher.tau_min_ms", t.tau_min_ms as f64);
        positive(&mut p, "teacher.tau_init_min_ms", t.tau_init_min_ms as f64);
        positive(&mut p, "teacher.tau_init_max_ms", t.tau_init_max_ms as f64);
        if t.tau_init_max_ms < t.tau_init_min_ms {
            p.push(format!(
                "teacher.tau_init_max_ms must be >= teacher.tau_init_min_ms ({}), got {}",
                t.tau_init_min_ms, t.tau_init_max_ms
            ));
        }
        non_negative(&mut p, "teacher.input_scale", t.input_scale as f64);
        positive(&mut p, "teacher.spectral_radius", t.spectral_radius as f64);
        positive(&mut p, "teacher.epochs", t.epochs as f64);
        positive(
            &mut p,
            "teacher.batches_per_epoch",
            t.batches_per_epoch as f64,
        );
        positive(&mut p, "teacher.batch_size", t.batch_size as f64);
        positive(&mut p, "teacher.learning_rate", t.learning_rate);
        non_negative(&mut p, "teacher.grad_clip", t.grad_clip as f64);
        non_negative(&mut p, "teacher.l2_rec", t.l2_rec as f64);
        non_negative(&mut p, "teacher.l2_bias", t.l2_bias as f64);
        non_negative(&mut p, "teacher.l2_out", t.l2_out as f64);
        non_negative(&mut p, "teacher.l2_in", t.l2_in as f64);
        non_negative(&mut p, "teacher.activity", t.activity as f64);
        non_negative(&mut p, "teacher.param_noise", t.param_noise as f64);
        non_negative(&mut p, "teacher.state_noise", t.state_noise as f64);
        positive(&mut p, "teacher.val_trials", t.val_trials as f64);
        positive(&mut p, "teacher.test_trials", t.test_trials as f64);
        in_unit(
            &mut p,
            "teacher.target_val_accuracy",
            t.target_val_accuracy as f64,
        );

        let r = &self.training;
        positive(&mut p, "training.epochs", r.epochs as f64);
        positive(
            &mut p,
            "training.samples_per_epoch",
            r.samples_per_epoch as f64,
        );
        non_negative(&mut p, "training.eta", r.eta as f64);
        non_negative(&mut p, "training.k", r.k as f64);
        positive(&mut p, "training.k_plateaus", r.k_plateaus as f64);
        non_negative(&mut p, "training.k_min", r.k_min as f64);
        positive(&mut p, "training.val_trials", r.val_trials as f64);
        positive(&mut p, "training.test_trials", r.test_trials as f64);
        positive(&mut p, "training.networks", r.networks as f64);
        if r.qat_bits > crate::snn::quantize::FLOAT_BITS {
            p.push(format!(
                "training.qat_bits must be in 0..=32 (0: off, 32: float), got {}",
                r.qat_bits
            ));
        }
        if !matches!(
            r.qat_scope,
            crate::snn::QuantScope::All | crate::snn::QuantScope::Paper
        ) {
            p.push(format!(
                "training.qat_scope must be \"all\" or \"paper\", got \"{}\"",
                r.qat_scope.as_str()
            ));
        }
        positive(&mut p, "training.qat_interval", r.qat_interval as f64);
        if r.update_block == 0 {
            p.push("training.update_block must be >= 1 (1: the update every step), got 0".into());
        }
        let rb = &r.robust;
        for (key, v) in [
            ("training.robust.sigma", rb.sigma),
            ("training.robust.sigma_start", rb.sigma_start),
            ("training.robust.noise", rb.noise),
            ("training.robust.max_rate_hz", rb.max_rate_hz),
        ] {
            non_negative(&mut p, key, v as f64);
        }
        for (key, v) in [
            ("training.robust.ramp", rb.ramp),
            ("training.robust.nominal_share", rb.nominal_share),
            ("training.robust.silence", rb.silence),
        ] {
            in_unit(&mut p, key, v as f64);
        }
        in_unit(
            &mut p,
            "training.hardware.mask_after",
            r.hardware.mask_after as f64,
        );
        if r.hardware.enabled() && r.qat_bits > 0 {
            p.push(format!(
                "training.hardware.target = \"dynapse1\" quantises to the chip's counts itself; \
                 set training.qat_bits = 0 (got {})",
                r.qat_bits
            ));
        }
        let b = &r.bptt;
        for (key, v) in [
            ("training.bptt.epochs", b.epochs as f64),
            (
                "training.bptt.batches_per_epoch",
                b.batches_per_epoch as f64,
            ),
            ("training.bptt.batch_size", b.batch_size as f64),
            ("training.bptt.learning_rate", b.learning_rate),
            ("training.bptt.surrogate_slope", b.surrogate_slope as f64),
            (
                "training.bptt.surrogate_damping",
                b.surrogate_damping as f64,
            ),
            ("training.bptt.input_scale", b.input_scale as f64),
        ] {
            positive(&mut p, key, v);
        }
        for (key, v) in [
            ("training.bptt.grad_clip", b.grad_clip),
            ("training.bptt.l2", b.l2),
            ("training.bptt.rate_penalty", b.rate_penalty),
            ("training.bptt.rate_target_hz", b.rate_target_hz),
            ("training.bptt.rec_scale", b.rec_scale),
        ] {
            non_negative(&mut p, key, v as f64);
        }
        // only a BPTT network has an input layer; other methods ignore the key
        if r.method == crate::snn::Method::Bptt && b.input_neurons >= self.snn.n {
            p.push(format!(
                "training.bptt.input_neurons ({}) must be smaller than snn.n ({}): the rest is the recurrent layer",
                b.input_neurons, self.snn.n
            ));
        }
        let f = &r.force;
        for (key, v) in [
            ("training.force.epochs", f.epochs as f64),
            (
                "training.force.samples_per_epoch",
                f.samples_per_epoch as f64,
            ),
            ("training.force.alpha", f.alpha as f64),
            ("training.force.update_every", f.update_every as f64),
        ] {
            positive(&mut p, key, v);
        }
        for (key, v) in [
            ("training.force.gain", f.gain),
            ("training.force.feedback", f.feedback),
        ] {
            non_negative(&mut p, key, v as f64);
        }
        if !f.bias.is_finite() {
            p.push(format!(
                "training.force.bias must be finite, got {}",
                f.bias
            ));
        }
        in_unit(&mut p, "training.force.p", f.p as f64);
        let v = &r.reservoir;
        positive(
            &mut p,
            "training.reservoir.train_trials",
            v.train_trials as f64,
        );
        positive(&mut p, "training.reservoir.ridge", v.ridge);
        for (key, x) in [
            ("training.reservoir.gain", v.gain),
            ("training.reservoir.input_gain", v.input_gain),
        ] {
            non_negative(&mut p, key, x as f64);
        }
        if !v.bias.is_finite() {
            p.push(format!(
                "training.reservoir.bias must be finite, got {}",
                v.bias
            ));
        }
        in_unit(&mut p, "training.reservoir.p", v.p as f64);
        in_unit(&mut p, "training.reservoir.input_p", v.input_p as f64);
        for (k, &tau) in v.extra_tau_ms.iter().enumerate() {
            positive(
                &mut p,
                &format!("training.reservoir.extra_tau_ms[{k}]"),
                tau as f64,
            );
        }
        if v.extra_tau_ms.len() > crate::snn::MAX_EXTRA_SYNAPSE_TYPES {
            p.push(format!(
                "training.reservoir.extra_tau_ms lists {} synapse types; a network has at most {}",
                v.extra_tau_ms.len(),
                crate::snn::MAX_EXTRA_SYNAPSE_TYPES
            ));
        }
        if r.method == crate::snn::Method::Imported {
            p.push(
                "training.method = \"imported\": an imported network is not trained here; \
                 bring it in with `robust-snn import FILE.nir` and choose ads, bptt, force or \
                 reservoir to train one"
                    .to_string(),
            );
        }
        if r.method != crate::snn::Method::Ads && (r.hardware.enabled() || r.qat_bits > 0) {
            p.push(format!(
                "training.method = \"{}\": hardware-aware training and QAT are Network ADS recipes; \
                 set training.method = \"ads\" or turn them off",
                r.method
            ));
        }
        positive(&mut p, "training.plain.epochs", r.plain.epochs as f64);
        positive(
            &mut p,
            "training.plain.samples_per_epoch",
            r.plain.samples_per_epoch as f64,
        );

        let e = &self.evaluation;
        positive(&mut p, "evaluation.test_trials", e.test_trials as f64);
        positive(&mut p, "evaluation.val_trials", e.val_trials as f64);
        for (key, list) in [
            ("evaluation.mismatch", &e.mismatch),
            ("evaluation.mismatch_full", &e.mismatch_full),
            ("evaluation.noise", &e.noise),
        ] {
            for &v in list.iter() {
                non_negative(&mut p, key, v as f64);
            }
        }
        for &v in &e.silence {
            in_unit(&mut p, "evaluation.silence", v as f64);
        }
        for (key, list) in [
            ("evaluation.bits", &e.bits),
            ("evaluation.bits_paper", &e.bits_paper),
        ] {
            for &b in list.iter() {
                if !(1..=16).contains(&b) {
                    p.push(format!("{key} must be in 1..=16, got {b}"));
                }
            }
        }
        if e.sensitivity_bits > 16 {
            p.push(format!(
                "evaluation.sensitivity_bits must be in 0..=16 (0: off), got {}",
                e.sensitivity_bits
            ));
        }
        non_negative(
            &mut p,
            "evaluation.sensitivity_sigma",
            e.sensitivity_sigma as f64,
        );
        positive(&mut p, "evaluation.gain_min", e.gain_min as f64);
        if e.gain_max < e.gain_min {
            p.push(format!(
                "evaluation.gain_max must be >= evaluation.gain_min ({}), got {}",
                e.gain_min, e.gain_max
            ));
        }
        positive(&mut p, "evaluation.gain_steps", e.gain_steps as f64);
        for &v in &e.recurrent_scales {
            non_negative(&mut p, "evaluation.recurrent_scales", v as f64);
        }
        let x = &self.export;
        if !(1..=64).contains(&x.cam_budget) {
            p.push(format!(
                "export.cam_budget must be in 1..=64, got {}",
                x.cam_budget
            ));
        }
        for (k, v) in [
            ("max_count", x.max_count),
            ("input_max_count", x.input_max_count),
        ] {
            if !(1..=64).contains(&v) {
                p.push(format!("export.{k} must be in 1..=64, got {v}"));
            }
        }
        if !(x.unit_quantile > 0.0 && x.unit_quantile <= 1.0) {
            p.push(format!(
                "export.unit_quantile must be in (0, 1], got {}",
                x.unit_quantile
            ));
        }
        if x.fast_cams > x.cam_budget {
            p.push(format!(
                "export.fast_cams must be <= export.cam_budget ({}), got {}",
                x.cam_budget, x.fast_cams
            ));
        }
        positive(&mut p, "export.max_unit_current_pa", x.max_unit_current_pa);
        positive(&mut p, "export.mem_gain", x.mem_gain);
        positive(&mut p, "export.syn_gain", x.syn_gain);
        non_negative(&mut p, "export.energy_per_spike_pj", x.energy_per_spike_pj);
        non_negative(
            &mut p,
            "export.energy_per_synaptic_event_pj",
            x.energy_per_synaptic_event_pj,
        );
        non_negative(&mut p, "export.static_power_uw", x.static_power_uw);
        let m = &x.mismatch;
        for (k, v) in [
            ("tau_mem", m.tau_mem),
            ("tau_fast", m.tau_fast),
            ("tau_slow", m.tau_slow),
            ("v_th", m.v_th),
            ("w_in", m.w_in),
            ("w_fast", m.w_fast),
            ("w_slow", m.w_slow),
        ] {
            non_negative(&mut p, &format!("export.mismatch.{k}"), v as f64);
        }
        if let Err(m) = self.snn.validate() {
            p.push(format!("snn.{m}"));
        }
        for (key, v) in [("snn.n", self.snn.n), ("teacher.hidden", t.hidden)] {
            if v > crate::limits::MAX_NEURONS {
                p.push(format!(
                    "{key} must be <= {} (the engines index N x N matrices with 32-bit words), \
                     got {v}",
                    crate::limits::MAX_NEURONS
                ));
            }
        }
        for (key, v) in [
            ("evaluation.instances", e.instances),
            ("evaluation.val_instances", e.val_instances),
            ("export.instances", x.instances),
        ] {
            if v as u64 > crate::limits::MAX_INSTANCES {
                p.push(format!(
                    "{key} must be <= {} (validation chips are drawn from instance 2^30 on), \
                     got {v}",
                    crate::limits::MAX_INSTANCES
                ));
            }
        }
        if let Err(m) = self.task.xor.validate() {
            p.push(format!("task.xor.{m}"));
        }
        if let Err(m) = self.task.ecg.validate() {
            p.push(format!("task.ecg.{m}"));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                problems: p,
            })
        }
    }

    /// Checks that the run's largest data fit this machine's memory (see [`crate::limits`]):
    /// the N x N weight matrices of the networks trained at once (each held about three times:
    /// current, best and checkpoint, plus one mismatched copy per study thread). Call before any
    /// work; `file` names the config in the error.
    pub fn check_memory(&self, file: &str) -> Result<(), ConfigError> {
        use crate::limits::check_memory;
        let av = crate::limits::available_memory();
        let (n, nc) = (self.snn.n as f64, self.teacher.hidden as f64);
        let per_net = 4.0 * (2.0 * n * n + 2.0 * n * nc);
        let copies = 3.0 * self.training.networks.max(1) as f64;
        let threads = rayon::current_num_threads() as f64;
        let weights = copies * per_net + threads * 4.0 * n * n;
        check_memory(
            "snn.n",
            self.snn.n,
            "the N x N weight matrices of training and evaluation",
            weights,
            av,
        )
        .map_err(|m| ConfigError::Invalid {
            file: file.to_string(),
            problems: vec![m],
        })
    }

    /// The configured task, seeded from the global seed.
    pub fn task(&self) -> Box<dyn Task> {
        match self.task.kind {
            TaskKind::Xor => Box::new(XorTask::new(self.task.xor.clone(), self.seed)),
            TaskKind::Ecg => Box::new(EcgTask::new(self.task.ecg.clone(), self.seed)),
        }
    }

    /// The resolved config as TOML (written into every run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not serialise: {e}\n"))
    }

    /// Replace one value given as a dotted key (`teacher.epochs`) and a TOML literal or bare
    /// string; the result is validated like a file.
    pub fn with_override(&self, key: &str, value: &str, file: &str) -> Result<Self, ConfigError> {
        let mut doc: toml::Value = toml::Value::try_from(self).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let parsed = parse_literal(value);
        let mut cur = &mut doc;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let table = cur.as_table_mut().ok_or_else(|| ConfigError::Parse {
                file: file.to_string(),
                message: format!("{key}: not a config key"),
            })?;
            if i + 1 == parts.len() {
                if !table.contains_key(*part) {
                    return Err(ConfigError::Parse {
                        file: file.to_string(),
                        message: format!("{key}: unknown config key"),
                    });
                }
                table.insert(part.to_string(), parsed.clone());
                break;
            }
            cur = table.get_mut(*part).ok_or_else(|| ConfigError::Parse {
                file: file.to_string(),
                message: format!("{key}: unknown config key"),
            })?;
        }
        let text = toml::to_string(&doc).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, file).map_err(|e| match e {
            ConfigError::Parse { file, message } => ConfigError::Parse {
                file,
                message: format!("{key} = {value}: {message}"),
            },
            other => other,
        })
    }
}

/// A value from the command line: a TOML literal where it parses as one, else a bare string.
fn parse_literal(value: &str) -> toml::Value {
    let wrapped = format!("v = {value}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

/// toml's messages carry a multi-line source excerpt; keep the line/column and reason on one line.
fn format_toml_error(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!("line {line_no} (`{line}`): {msg}")
        }
        None => msg,
    }
}

fn positive(p: &mut Vec<String>, key: &str, v: f64) {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        p.push(format!("{key} must be > 0, got {v}"));
    }
}

fn non_negative(p: &mut Vec<String>, key: &str, v: f64) {
    if v.is_nan() || v < 0.0 || !v.is_finite() {
        p.push(format!("{key} must be >= 0, got {v}"));
    }
}

fn in_unit(p: &mut Vec<String>, key: &str, v: f64) {
    if !(0.0..=1.0).contains(&v) {
        p.push(format!("{key} must be in [0, 1], got {v}"));
    }
}

/// The trained spiking network's file in `DIR/snn/`.
pub const NETWORK_FILE: &str = "network.safetensors";

/// Where a run writes: `DIR/config.toml`, `DIR/teacher/`, `DIR/snn/`, ...
#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn teacher(&self) -> PathBuf {
        self.root.join("teacher")
    }
    pub fn snn(&self) -> PathBuf {
        self.root.join("snn")
    }
    /// `DIR/snn/network.safetensors`.
    pub fn network_file(&self) -> PathBuf {
        self.snn().join(NETWORK_FILE)
    }
    pub fn task(&self) -> PathBuf {
        self.root.join("task")
    }
    pub fn robustness(&self) -> PathBuf {
        self.root.join("robustness")
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    fn shipped(name: &str) -> Config {
        let (_, text) = EMBEDDED.iter().find(|(p, _)| *p == name).unwrap();
        Config::parse(text, name).unwrap()
    }

    /// A robust shipped config with the robust recipe's teacher, neuron and ensemble keys
    /// changed back to the plain recipe's.
    fn plain_twin(robust: &Config) -> Config {
        let mut c = robust.clone();
        c.teacher.input_scale = 10.0;
        c.teacher.param_noise = 0.0;
        c.teacher.state_noise = 0.0;
        c.snn.adapt_beta = 0.0;
        c.training.robust = RobustTraining::default();
        c
    }

    #[test]
    fn every_shipped_config_is_valid_and_each_plain_twin_is_its_robust_config_with_the_recipe_off()
    {
        for (name, _) in EMBEDDED {
            shipped(name);
        }
        let robust = shipped("configs/xor.toml");
        let plain = shipped("configs/xor-plain.toml");
        assert!(robust.training.is_robust() && robust.training.plain.compare);
        assert!(!plain.training.is_robust());
        // the plain file is the robust one with exactly these keys changed back
        let mut want = plain_twin(&robust);
        want.training.epochs = 20;
        want.training.samples_per_epoch = 500;
        want.training.plain.compare = false;
        assert_eq!(plain, want);
        // and the comparison network of `run` is trained with the plain training recipe
        let p = robust.training.plain_recipe();
        assert!(!p.is_robust());
        assert_eq!((p.epochs, p.samples_per_epoch), (20, 500));

        // ECG likewise, with its shorter training
        let robust = shipped("configs/ecg.toml");
        let plain = shipped("configs/ecg-plain.toml");
        assert!(robust.training.is_robust() && robust.training.plain.compare);
        assert!(!plain.training.is_robust());
        let mut want = plain_twin(&robust);
        want.training.plain = PlainComparison::default();
        assert_eq!(plain, want);
        let p = robust.training.plain_recipe();
        assert!(!p.is_robust());
        assert_eq!((p.epochs, p.samples_per_epoch), (8, 250));
    }

    #[test]
    fn each_dynapse1_config_is_its_robust_config_trained_for_the_chip() {
        for (robust, chip) in [
            ("configs/xor.toml", "configs/xor-dynapse1.toml"),
            ("configs/ecg.toml", "configs/ecg-dynapse1.toml"),
        ] {
            let robust = shipped(robust);
            let chip = shipped(chip);
            assert!(chip.training.hardware.enabled());
            let mut want = robust.clone();
            want.training.hardware = HardwareTraining {
                target: HardwareTarget::Dynapse1,
                ..HardwareTraining::default()
            };
            want.export.input_max_count = 8;
            if want.task.kind == TaskKind::Ecg {
                // the chip's ECG network needs the tighter rate guard (README, DYNAP-SE1 export)
                want.training.robust.max_rate_hz = 20.0;
            }
            assert_eq!(chip, want);
            // its comparison network is the plain dense one
            assert!(!chip.training.plain_recipe().hardware.enabled());
        }
    }
}
