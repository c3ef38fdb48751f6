//! Simulation engines for chip ensembles. [`cpu::CpuEngine`] is the reference (and the CPU twin
//! of the GPU shader); the neuron step itself is [`lif_step::step`], shared with the trainer.

pub mod cpu;
pub mod gpu;
pub mod lif_step;

use std::ops::Range;

use crate::chip::Perturbation;
use crate::snn::Network;

pub use crate::snn::transpose;
pub use cpu::CpuEngine;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum EngineError {
    #[error("shape mismatch in {what}: expected {expected} elements, got {got}")]
    Shape {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("invalid perturbation: {0}")]
    InvalidPerturbation(String),
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    #[error("invalid job: {0}")]
    InvalidJob(String),
    #[error("engine failure: {0}")]
    Backend(String),
}

/// A network that does not fit together is an engine job's shape or parameter error.
impl From<crate::snn::SnnError> for EngineError {
    fn from(e: crate::snn::SnnError) -> Self {
        match e {
            crate::snn::SnnError::Shape {
                what,
                expected,
                got,
            } => EngineError::Shape {
                what,
                expected,
                got,
            },
            crate::snn::SnnError::InvalidParams(m) => EngineError::InvalidParams(m),
            crate::snn::SnnError::Unsupported(m) => EngineError::InvalidJob(m),
        }
    }
}

/// What to record per trial besides the task output y and the spike counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Decoded state x~, T x Nc.
    pub x: bool,
    /// Spike list (t, neuron).
    pub spikes: bool,
    /// Membrane potential after reset, T x N.
    pub v: bool,
}

/// An ensemble: instances `instances` of `net` under `perturbation`, each run on every input.
pub struct EnsembleJob<'a> {
    pub net: &'a Network,
    pub perturbation: &'a Perturbation,
    /// Chip seed: keys every per-instance draw (see `crate::chip::rng`).
    pub seed: u64,
    pub instances: Range<u32>,
    /// Per trial, T x C row-major (T = `steps`).
    pub inputs: &'a [Vec<f32>],
    /// Trial `j` of `inputs` uses the trial index `trial_offset + j` for its random draws
    /// (initial V, membrane noise), so chunked batches stay distinct and reproducible.
    pub trial_offset: u32,
    pub steps: usize,
    pub record: Record,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrialOutput {
    /// T x n_out.
    pub y: Vec<f32>,
    /// T x Nc.
    pub x: Option<Vec<f32>>,
    /// (t, neuron), in time order and ascending neuron index within a step.
    pub spikes: Option<Vec<(u32, u32)>>,
    /// T x N.
    pub v: Option<Vec<f32>>,
    /// Per neuron.
    pub spike_counts: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnsembleOutput {
    /// `[instance - instances.start][trial]`.
    pub trials: Vec<Vec<TrialOutput>>,
    /// Sum over spikes of the presynaptic neuron's nonzero outgoing recurrent synapses
    /// (W_fast, W_slow and every extra synapse type), i.e. synaptic events actually propagated.
    pub synaptic_events: u64,
    /// instances x trials x N x steps.
    pub neuron_steps: u64,
}

pub trait Engine {
    fn name(&self) -> String;
    fn simulate(&self, job: &EnsembleJob) -> Result<EnsembleOutput, EngineError>;
}

/// Checks a job's shapes and perturbation (shared by every engine).
pub fn validate_job(job: &EnsembleJob) -> Result<(), EngineError> {
    job.net.validate_shapes()?;
    job.perturbation
        .validate()
        .map_err(EngineError::InvalidPerturbation)?;
    if job.instances.start > job.instances.end {
        return Err(EngineError::InvalidJob(format!(
            "empty-reversed instance range {:?}",
            job.instances
        )));
    }
    if (job.trial_offset as u64) + (job.inputs.len() as u64) > u32::MAX as u64 {
        return Err(EngineError::InvalidJob("trial index overflows u32".into()));
    }
    let nq = job.net.n.div_ceil(4) as u64;
    if (job.steps as u64) * nq > u32::MAX as u64 {
        return Err(EngineError::InvalidJob(format!(
            "steps x ceil(N/4) = {} overflows the u32 noise counter",
            job.steps as u64 * nq
        )));
    }
    let want = job.steps * job.net.n_in;
    for (j, inp) in job.inputs.iter().enumerate() {
        if inp.len() != want {
            return Err(EngineError::Shape {
                what: format!("input of trial {j} (T x C)"),
                expected: want,
                got: inp.len(),
            });
        }
    }
    Ok(())
}

/// Per presynaptic neuron, its nonzero outgoing recurrent synapses (W_fast, W_slow and every
/// extra synapse type, all `[pre][post]`): what one spike propagates, so both engines count
/// synaptic events the same way.
pub fn outdegree(net: &Network) -> Vec<u32> {
    let n = net.n;
    (0..n)
        .map(|j| {
            let nonzero = |m: &[f32]| m[j * n..(j + 1) * n].iter().filter(|&&w| w != 0.0).count();
            let extra: usize = net.extra_synapses.iter().map(|t| nonzero(&t.w)).sum();
            (nonzero(&net.w_fast) + nonzero(&net.w_slow) + extra) as u32
        })
        .collect()
}

/// A smooth random drive, T x C: a sum of three sinusoids (0.5-4 Hz) per channel. Tests and
/// benchmarks use it to make networks spike without a task.
pub fn smooth_input(steps: usize, c: usize, amp: f32, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let comps: Vec<(f32, f32, f32)> = (0..c * 3)
        .map(|_| {
            (
                rng.random_range(0.5..4.0f32),
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(0.3..1.0f32),
            )
        })
        .collect();
    let mut x = vec![0f32; steps * c];
    for t in 0..steps {
        for ch in 0..c {
            let ts = t as f32 * 1e-3;
            x[t * c + ch] = amp
                * comps[ch * 3..ch * 3 + 3]
                    .iter()
                    .map(|(f, ph, a)| a * (std::f32::consts::TAU * f * ts + ph).sin())
                    .sum::<f32>();
        }
    }
    x
}
