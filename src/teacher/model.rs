//! The teacher as a burn module: the same Euler dynamics as [`TeacherWeights::forward`], on any
//! burn device, differentiable for BPTT.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use super::weights::{TeacherError, TeacherWeights};

/// tau_j dh_j/dt = -h_j + (W_inᵀ c)_j + b_j + (W_recᵀ tanh h)_j ;  y = W_outᵀ tanh h.
#[derive(Module, Debug)]
pub struct RateRnn {
    pub w_in: Param<Tensor<2>>,
    pub w_rec: Param<Tensor<2>>,
    pub w_out: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
    pub tau_ms: Param<Tensor<1>>,
}

/// A training-time perturbation of the teacher: relative factors on W_in, W_rec and tau (the
/// perturbed tau is `|tau (1 + sigma z)|`, kept >= dt, as [`crate::teacher::ceiling::perturbed`]
/// draws it), and optional per-step additive noise on h ([batch, Nc] per step).
#[derive(Clone, Debug)]
pub struct Perturb {
    pub w_in: Tensor<2>,
    pub w_rec: Tensor<2>,
    pub tau: Tensor<1>,
    pub state: Option<Vec<Tensor<2>>>,
}

/// Shapes and constants that are not trained.
#[derive(Clone, Debug)]
pub struct RnnShape {
    pub nc: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub dt_ms: f32,
    pub tau_min_ms: f32,
}

fn tensor2(v: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), device)
}

fn tensor1(v: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// A tensor's values as f32, whatever device holds it.
pub fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TeacherError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| TeacherError::Backend(format!("{e:?}")))
}

impl RateRnn {
    pub fn from_weights(w: &TeacherWeights, device: &Device) -> Self {
        Self {
            w_in: Param::from_tensor(tensor2(&w.w_in, w.n_in, w.nc, device)),
            w_rec: Param::from_tensor(tensor2(&w.w_rec, w.nc, w.nc, device)),
            w_out: Param::from_tensor(tensor2(&w.w_out, w.nc, w.n_out, device)),
            bias: Param::from_tensor(tensor1(&w.bias, device)),
            tau_ms: Param::from_tensor(tensor1(&w.tau_ms, device)),
        }
    }

    /// Read the weights back. Time constants are reported as the forward pass uses them:
    /// clamped at the lower bound.
    pub fn to_weights(&self, shape: &RnnShape) -> Result<TeacherWeights, TeacherError> {
        Ok(TeacherWeights {
            nc: shape.nc,
            n_in: shape.n_in,
            n_out: shape.n_out,
            w_in: values(self.w_in.val())?,
            w_rec: values(self.w_rec.val())?,
            w_out: values(self.w_out.val())?,
            bias: values(self.bias.val())?,
            tau_ms: values(self.tau_ms.val().clamp_min(shape.tau_min_ms))?,
            dt_ms: shape.dt_ms,
        })
    }

    /// `input` is [batch, steps, C]. Returns (y [batch, steps, n_out], tanh(h) [batch, steps, Nc]).
    pub fn forward(&self, input: Tensor<3>, shape: &RnnShape) -> (Tensor<3>, Tensor<3>) {
        let [batch, steps, c] = input.dims();
        let per_step: Vec<Tensor<2>> = (0..steps)
            .map(|t| input.clone().slice_dim(1, t..t + 1).reshape([batch, c]))
            .collect();
        let (y, acts) = self.forward_steps(&per_step, shape, true, None);
        (y, acts.expect("activations requested"))
    }

    /// The dynamics over per-step inputs ([batch, C] each). Inputs come as separate tensors
    /// rather than slices of one [batch, steps, C] tensor because the gradient of a slice is a
    /// full-size tensor: slicing a tracked tensor every step makes BPTT quadratic in memory
    /// traffic. The time constant is clamped at `tau_min_ms` inside the forward pass, so the
    /// constraint holds for every evaluated model whatever the optimiser does to the raw
    /// parameter. With `perturb`, the dynamics run on the perturbed parameters (gradients still
    /// reach the nominal ones through the fixed factors).
    pub fn forward_steps(
        &self,
        inputs: &[Tensor<2>],
        shape: &RnnShape,
        want_acts: bool,
        perturb: Option<&Perturb>,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        let nc = shape.nc;
        let Some(first) = inputs.first() else {
            let device = self.w_in.val().device();
            return (
                Tensor::zeros([0, 0, shape.n_out], &device),
                want_acts.then(|| Tensor::zeros([0, 0, nc], &device)),
            );
        };
        let [batch, _] = first.dims();
        let device = first.device();
        // h += alpha (drive - h) = beta h + alpha (W_inᵀ c + b) + (alpha W_recᵀ) tanh(h).
        let mut tau = self.tau_ms.val().clamp_min(shape.tau_min_ms);
        let (mut w_in, mut w_rec) = (self.w_in.val(), self.w_rec.val());
        if let Some(p) = perturb {
            tau = tau.mul(p.tau.clone()).abs().clamp_min(shape.dt_ms);
            w_in = w_in.mul(p.w_in.clone());
            w_rec = w_rec.mul(p.w_rec.clone());
        }
        let alpha = tau.recip().mul_scalar(shape.dt_ms).reshape([1, nc]);
        let beta = alpha.clone().neg().add_scalar(1.0);
        let w_in_a = w_in.mul(alpha.clone());
        let w_rec_a = w_rec.mul(alpha.clone());
        let bias_a = self.bias.val().reshape([1, nc]).mul(alpha);
        let w_out = self.w_out.val();
        let mut h = Tensor::<2>::zeros([batch, nc], &device);
        let mut a = Tensor::<2>::zeros([batch, nc], &device);
        let mut ys = Vec::with_capacity(inputs.len());
        let mut acts = Vec::with_capacity(if want_acts { inputs.len() } else { 0 });
        let state_noise = perturb.and_then(|p| p.state.as_ref());
        for (t, c_t) in inputs.iter().enumerate() {
            h = h.mul(beta.clone())
                + c_t.clone().matmul(w_in_a.clone())
                + a.matmul(w_rec_a.clone())
                + bias_a.clone();
            if let Some(noise) = state_noise.and_then(|n| n.get(t)) {
                h = h + noise.clone();
            }
            a = h.clone().tanh();
            ys.push(a.clone().matmul(w_out.clone()));
            if want_acts {
                acts.push(a.clone());
            }
        }
        let y: Tensor<3> = Tensor::stack(ys, 1);
        (y, want_acts.then(|| Tensor::stack(acts, 1)))
    }
}
