//! The BPTT-trained LIF baseline (paper §6): an input layer of feed-forward LIF neurons, a
//! recurrent LIF layer and an exponential-synapse readout, trained end to end on the task
//! target by backpropagation through time with a surrogate gradient (burn, on the run's
//! device: `flex` on the CPU, wgpu on a GPU).
//!
//! The forward pass is the engine's neuron step ([`crate::engine::lif_step`]) in tensors, per
//! neuron i and step (no fast synapses, no adaptation):
//! 1. `V += dt/tau_mem (V_rest - V + I_syn + (W_inᵀ c)_i + b)`;
//!    `I_syn *= e^{-dt/tau_slow}`, `r *= e^{-dt/tau_out}`
//! 2. `s = H(V - V_th)`; where s: `V = V_reset`, `r += 1/tau_out`
//! 3. `I_syn += W_recᵀ s / tau_slow`; `y = W_outᵀ r`
//!
//! so the trained weights run unchanged on the engine (W_in -> the input projection, W_rec ->
//! W_slow, W_out -> the readout D). The surrogate replaces dH/dV by
//! `damping slope sigma'(slope (V - V_th))` (sigma the logistic); the reset is not differentiated
//! (the usual detached reset). [`SpikeFn::Smooth`] uses sigma itself in the forward pass, a
//! differentiable network whose exact gradient the tests compare with finite differences.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData, activation::sigmoid};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use super::{BaselineError, BaselineOutcome, EpochLog, baseline_params};
use crate::config::{BpttConfig, Config};
use crate::snn::{Method, Network, SnnParams};
use crate::tasks::{Split, Task};

const INIT_KEY: u64 = 0xB977_0001;
const V0_KEY: u64 = 0xB977_0002;

/// The trained weights (masked in the forward pass: entries outside the architecture stay 0),
/// each in its own unit (see [`LifShape::units`]) so that one Adam learning rate moves every
/// matrix by a similar relative amount: a readout weight acts on r (about rate x 1, in 1/s,
/// summed over N neurons) and a recurrent one on N presynaptic spike trains, an input weight on
/// one channel.
#[derive(Module, Debug)]
pub struct LifNet {
    /// C x N.
    pub w_in: Param<Tensor<2>>,
    /// N x N, `[pre][post]`, in units of 1 / sqrt(N_rec).
    pub w_rec: Param<Tensor<2>>,
    /// N x n_out, in units of tau_out / sqrt(N_rec).
    pub w_out: Param<Tensor<2>>,
}

/// How a spike is computed in the forward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpikeFn {
    /// Heaviside forward, surrogate gradient `damping slope sigma'(slope (V - V_th))` backward,
    /// detached reset (training). A damping below 1 keeps the gradient from growing through
    /// a thousand steps of recurrence (Bellec et al. 2018 use 0.3).
    Surrogate { slope: f32, damping: f32 },
    /// sigma(slope (V - V_th)) forward and backward, differentiated reset (gradient checks).
    Smooth { slope: f32 },
}

/// What the forward pass needs besides the weights: the architecture's masks and the neuron
/// constants, all nominal (the network is trained on the nominal chip).
#[derive(Clone, Debug)]
pub struct LifShape {
    pub n: usize,
    pub n_in: usize,
    pub n_out: usize,
    /// Neurons of the input layer (the first ones); 0: the input drives every neuron.
    pub input_neurons: usize,
    pub params: SnnParams,
}

impl LifShape {
    /// The units of (W_in, W_rec, W_out) of [`LifNet`].
    fn units(&self) -> (f32, f32, f32) {
        let n_rec = (self.n - self.input_neurons).max(1) as f32;
        (
            1.0,
            1.0 / n_rec.sqrt(),
            self.params.tau_out_ms * 1e-3 / n_rec.sqrt(),
        )
    }

    fn masks(&self) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (n, c, o, m) = (self.n, self.n_in, self.n_out, self.input_neurons);
        let mask_in = (0..c * n)
            .map(|k| (m == 0 || k % n < m) as u8 as f32)
            .collect();
        let mask_rec = (0..n * n)
            .map(|k| {
                let (j, i) = (k / n, k % n);
                (i != j && i >= m) as u8 as f32
            })
            .collect();
        let mask_out = (0..n * o).map(|k| (k / o >= m) as u8 as f32).collect();
        (mask_in, mask_rec, mask_out)
    }
}

fn tensor2(v: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, BaselineError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| BaselineError::Training {
            method: Method::Bptt,
            message: format!("reading a tensor back: {e:?}"),
        })
}

impl LifNet {
    /// Random initial weights from `seed` (readout small, so the first gradients reach every
    /// layer).
    pub fn init(shape: &LifShape, cfg: &BpttConfig, seed: u64, device: &Device) -> Self {
        let (n, c, o) = (shape.n, shape.n_in, shape.n_out);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut normal = |len: usize, std: f32| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    let z: f32 = StandardNormal.sample(&mut rng);
                    std * z
                })
                .collect()
        };
        let w_in = normal(c * n, cfg.input_scale);
        let w_rec = normal(n * n, cfg.rec_scale);
        let w_out = normal(n * o, 0.01);
        LifNet {
            w_in: Param::from_tensor(tensor2(w_in, c, n, device)),
            w_rec: Param::from_tensor(tensor2(w_rec, n, n, device)),
            w_out: Param::from_tensor(tensor2(w_out, n, o, device)),
        }
    }

    /// The masked weights in the engine's units (what the forward pass uses and the engine
    /// network gets).
    fn masked(&self, shape: &LifShape, device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let (mi, mr, mo) = shape.masks();
        let (ui, ur, uo) = shape.units();
        let (n, c, o) = (shape.n, shape.n_in, shape.n_out);
        (
            self.w_in
                .val()
                .mul(tensor2(mi, c, n, device))
                .mul_scalar(ui),
            self.w_rec
                .val()
                .mul(tensor2(mr, n, n, device))
                .mul_scalar(ur),
            self.w_out
                .val()
                .mul(tensor2(mo, n, o, device))
                .mul_scalar(uo),
        )
    }

    /// Runs the network over per-step inputs ([batch, C] each) from the membrane potentials
    /// `v0` ([batch, N]). Returns y ([batch, steps, n_out]) and the spike count per neuron summed
    /// over the batch and the steps ([N]).
    pub fn forward(
        &self,
        inputs: &[Tensor<2>],
        v0: Tensor<2>,
        shape: &LifShape,
        spike: SpikeFn,
    ) -> (Tensor<3>, Tensor<1>) {
        let device = v0.device();
        let [batch, n] = v0.dims();
        let p = &shape.params;
        let dt = p.dt_s();
        let alpha = dt / p.tau_mem_s();
        let decay_slow = (-dt / (p.tau_slow_ms * 1e-3)).exp();
        let inv_tau_slow = 1.0 / (p.tau_slow_ms * 1e-3);
        let decay_out = (-dt / (p.tau_out_ms * 1e-3)).exp();
        let inv_tau_out = 1.0 / (p.tau_out_ms * 1e-3);
        let (w_in, w_rec, w_out) = self.masked(shape, &device);
        let w_rec = w_rec.mul_scalar(inv_tau_slow);
        let mut v = v0;
        let mut i_syn = Tensor::<2>::zeros([batch, n], &device);
        let mut r = Tensor::<2>::zeros([batch, n], &device);
        let mut count = Tensor::<2>::zeros([batch, n], &device);
        let mut ys = Vec::with_capacity(inputs.len());
        for c_t in inputs {
            let cur = i_syn.clone() + c_t.clone().matmul(w_in.clone());
            v = v.clone() + (cur.add_scalar(p.v_rest + p.bias) - v).mul_scalar(alpha);
            i_syn = i_syn.mul_scalar(decay_slow);
            r = r.mul_scalar(decay_out);
            let x = v.clone().sub_scalar(p.v_th);
            let (s, s_reset) = match spike {
                SpikeFn::Surrogate { slope, damping } => {
                    let sg = logistic(x.clone(), slope).mul_scalar(damping);
                    let hard = x.greater_equal_elem(0.0).float();
                    let s = sg.clone() + (hard - sg).detach();
                    (s.clone(), s.detach())
                }
                SpikeFn::Smooth { slope } => {
                    let s = logistic(x, slope);
                    (s.clone(), s)
                }
            };
            // V = V_reset where s, else V
            v = v.clone() - (v.sub_scalar(p.v_reset)).mul(s_reset);
            r = r + s.clone().mul_scalar(inv_tau_out);
            i_syn = i_syn + s.clone().matmul(w_rec.clone());
            count = count + s;
            ys.push(r.clone().matmul(w_out.clone()));
        }
        (Tensor::stack(ys, 1), count.sum_dim(0).reshape([n]))
    }

    /// The engine network these weights are (exact for [`SpikeFn::Surrogate`]'s forward pass).
    pub fn to_network(&self, shape: &LifShape) -> Result<Network, BaselineError> {
        let device = self.w_in.val().device();
        let (w_in, w_rec, w_out) = self.masked(shape, &device);
        let (n, c, o) = (shape.n, shape.n_in, shape.n_out);
        let w_in = values(w_in)?;
        let w_out = values(w_out)?;
        Ok(Network::direct(
            shape.params.clone(),
            Method::Bptt,
            c,
            o,
            crate::snn::transpose(&w_in, c, n),
            values(w_rec)?,
            crate::snn::transpose(&w_out, n, o),
        )?)
    }
}

/// sigma(slope x), its argument clamped to +-30: far from threshold the logistic's backward
/// pass (e^{-z} / (1 + e^{-z})²) overflows to inf / inf in f32, and there the surrogate is 0
/// (to 1e-13) anyway.
fn logistic(x: Tensor<2>, slope: f32) -> Tensor<2> {
    sigmoid(x.mul_scalar(slope).clamp(-LOGISTIC_CLAMP, LOGISTIC_CLAMP))
}

const LOGISTIC_CLAMP: f32 = 30.0;

/// Initial membrane potentials U(V_reset, V_th) of a batch, as the engine draws them per trial.
fn initial_v(shape: &LifShape, batch: usize, key: u64, device: &Device) -> Tensor<2> {
    let p = &shape.params;
    let mut rng = StdRng::seed_from_u64(key);
    let u = Uniform::new(p.v_reset, p.v_th).expect("V_reset < V_th is validated");
    let v: Vec<f32> = (0..batch * shape.n).map(|_| u.sample(&mut rng)).collect();
    tensor2(v, batch, shape.n, device)
}

/// The training objective: output MSE, L2 on the weights, and the rate penalty.
pub fn loss(
    model: &LifNet,
    inputs: &[Tensor<2>],
    target: Tensor<3>,
    v0: Tensor<2>,
    shape: &LifShape,
    cfg: &BpttConfig,
    spike: SpikeFn,
) -> Tensor<1> {
    let [batch, _] = v0.dims();
    let (y, counts) = model.forward(inputs, v0, shape, spike);
    let mut l = (y - target).powi_scalar(2).mean();
    if cfg.l2 > 0.0 {
        let device = model.w_in.val().device();
        let (w_in, w_rec, w_out) = model.masked(shape, &device);
        l = l
            + (w_in.powi_scalar(2).mean()
                + w_rec.powi_scalar(2).mean()
                + w_out.powi_scalar(2).mean())
            .mul_scalar(cfg.l2);
    }
    if cfg.rate_penalty > 0.0 {
        let secs = inputs.len() as f32 * shape.params.dt_s() * batch as f32;
        let rate = counts.div_scalar(secs.max(1e-9));
        l = l + rate
            .sub_scalar(cfg.rate_target_hz)
            .powi_scalar(2)
            .mean()
            .mul_scalar(cfg.rate_penalty);
    }
    l
}

pub fn train(
    cfg: &Config,
    teacher: &crate::teacher::TeacherWeights,
    task: &dyn Task,
    device: &Device,
    show_progress: bool,
) -> Result<BaselineOutcome, BaselineError> {
    let bc = &cfg.training.bptt;
    let fail = |message: String| BaselineError::Training {
        method: Method::Bptt,
        message,
    };
    let shape = LifShape {
        n: cfg.snn.n,
        n_in: task.channels(),
        n_out: task.outputs(),
        input_neurons: bc.input_neurons,
        params: baseline_params(&cfg.snn, cfg.snn.bias),
    };
    let ad = device.clone().autodiff();
    let mut model = LifNet::init(&shape, bc, cfg.seed ^ INIT_KEY, &ad);
    let mut adam = AdamConfig::new();
    if bc.grad_clip > 0.0 {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(bc.grad_clip)));
    }
    let mut optim = adam.init();
    let spike = SpikeFn::Surrogate {
        slope: bc.surrogate_slope,
        damping: bc.surrogate_damping,
    };
    let mut log = EpochLog::new(
        Method::Bptt,
        bc.epochs,
        (bc.epochs * bc.batches_per_epoch) as u64,
        show_progress,
    );
    for epoch in 1..=bc.epochs {
        let te = Instant::now();
        let mut epoch_loss = 0.0;
        for b in 0..bc.batches_per_epoch {
            let first = ((epoch - 1) * bc.batches_per_epoch + b) as u64 * bc.batch_size as u64;
            let (inputs, target) =
                crate::teacher::train::batch(task, Split::Train, first, bc.batch_size, &ad);
            let v0 = initial_v(&shape, bc.batch_size, cfg.seed ^ V0_KEY ^ (first << 8), &ad);
            let l = loss(&model, &inputs, target, v0, &shape, bc, spike);
            let lv = values(l.clone())?[0] as f64;
            if !lv.is_finite() {
                return Err(fail(format!(
                    "diverged at epoch {epoch} (loss {lv}); lower training.bptt.learning_rate"
                )));
            }
            epoch_loss += lv;
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(bc.learning_rate, model, grads);
            log.pb().inc(1);
            log.pb().set_message(format!("epoch {epoch} loss {lv:.4}"));
        }
        let net = model.to_network(&shape)?;
        log.epoch_done(
            &net,
            epoch,
            epoch_loss / bc.batches_per_epoch as f64,
            "loss",
            te,
            teacher,
            task,
            cfg.training.val_trials,
            cfg.seed,
        )?;
    }
    log.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(input_neurons: usize) -> (LifShape, BpttConfig) {
        let params = SnnParams {
            n: 6,
            use_fast: false,
            adapt_beta: 0.0,
            ..Default::default()
        };
        (
            LifShape {
                n: 6,
                n_in: 2,
                n_out: 1,
                input_neurons,
                params,
            },
            BpttConfig {
                l2: 1e-3,
                rate_penalty: 1e-4,
                input_scale: 3.0,
                rec_scale: 2.0,
                ..Default::default()
            },
        )
    }

    fn inputs(steps: usize, device: &Device) -> (Vec<Tensor<2>>, Tensor<3>) {
        let (b, c) = (2, 2);
        let xs = (0..steps)
            .map(|t| {
                let v: Vec<f32> = (0..b * c)
                    .map(|k| ((t * 3 + k * 5) % 7) as f32 / 3.0 - 1.0)
                    .collect();
                tensor2(v, b, c, device)
            })
            .collect();
        let target: Vec<f32> = (0..b * steps).map(|k| (k % 9) as f32 / 4.0 - 1.0).collect();
        (
            xs,
            Tensor::from_data(TensorData::new(target, [b, steps, 1]), device),
        )
    }

    fn loss_of(model: &LifNet, shape: &LifShape, cfg: &BpttConfig, device: &Device) -> f64 {
        let (xs, target) = inputs(30, device);
        let v0 = initial_v(shape, 2, 9, device);
        let l = loss(
            model,
            &xs,
            target,
            v0,
            shape,
            cfg,
            SpikeFn::Smooth { slope: 4.0 },
        );
        values(l).unwrap()[0] as f64
    }

    /// Autodiff through time of the smooth (surrogate) network equals a central finite
    /// difference of the same loss, for weights of every matrix.
    #[test]
    fn bptt_gradient_matches_finite_differences_of_the_surrogate_loss() {
        let dev = Device::flex();
        let ad = dev.clone().autodiff();
        let (shape, cfg) = tiny(2);
        let model = LifNet::init(&shape, &cfg, 5, &ad);
        let (xs, target) = inputs(30, &ad);
        let v0 = initial_v(&shape, 2, 9, &ad);
        let l = loss(
            &model,
            &xs,
            target,
            v0,
            &shape,
            &cfg,
            SpikeFn::Smooth { slope: 4.0 },
        );
        let grads = l.backward();
        let g_in = values(model.w_in.grad(&grads).unwrap()).unwrap();
        let g_rec = values(model.w_rec.grad(&grads).unwrap()).unwrap();
        let g_out = values(model.w_out.grad(&grads).unwrap()).unwrap();
        let base = LifNet::init(&shape, &cfg, 5, &dev);
        let w_in = values(base.w_in.val()).unwrap();
        let w_rec = values(base.w_rec.val()).unwrap();
        let w_out = values(base.w_out.val()).unwrap();
        let h = 1e-2f32;
        let n = shape.n;
        // (matrix, index): an input weight into the input layer, recurrent weights from the
        // input layer and within the recurrent layer, a readout weight
        let checks = [(0usize, 1usize), (1, 3), (1, 4 * n + 5), (2, 4)];
        for (mat, idx) in checks {
            let eval = |delta: f32| {
                let (mut a, mut b, mut c) = (w_in.clone(), w_rec.clone(), w_out.clone());
                match mat {
                    0 => a[idx] += delta,
                    1 => b[idx] += delta,
                    _ => c[idx] += delta,
                }
                let m = LifNet {
                    w_in: Param::from_tensor(tensor2(a, 2, n, &dev)),
                    w_rec: Param::from_tensor(tensor2(b, n, n, &dev)),
                    w_out: Param::from_tensor(tensor2(c, n, 1, &dev)),
                };
                loss_of(&m, &shape, &cfg, &dev)
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h as f64);
            let g = [&g_in, &g_rec, &g_out][mat][idx] as f64;
            assert!(
                (g - fd).abs() <= 2e-2 * fd.abs().max(1e-3),
                "matrix {mat} index {idx}: autodiff {g} vs finite difference {fd}"
            );
        }
        // masked entries get no gradient: the recurrent layer's weight into the input layer
        assert_eq!(g_rec[3 * n + 1], 0.0);
        assert_eq!(g_out[0], 0.0);
    }

    /// The engine simulates the trained weights exactly as the training forward pass does.
    #[test]
    fn the_engine_runs_what_bptt_trained() {
        use crate::engine::{CpuEngine, Engine, EnsembleJob, Record};
        let dev = Device::flex();
        let (shape, cfg) = tiny(0);
        let model = LifNet::init(&shape, &cfg, 11, &dev);
        let mut net = model.to_network(&shape).unwrap();
        // readout large enough to see
        net.d.iter_mut().for_each(|w| *w *= 100.0);
        let uo = shape.units().2;
        let model = LifNet {
            w_out: Param::from_tensor(tensor2(
                crate::snn::transpose(&net.d, 1, shape.n)
                    .into_iter()
                    .map(|w| w / uo)
                    .collect(),
                shape.n,
                1,
                &dev,
            )),
            ..model
        };
        let steps = 40;
        let (xs, _) = inputs(steps, &dev);
        // the engine's initial potentials of trial 0 and 1, instance 0
        let mut v0 = vec![0f32; 2 * shape.n];
        let th = vec![net.params.v_th; shape.n];
        for b in 0..2 {
            crate::chip::instance::initial_v(
                3,
                0,
                b as u32,
                0.0,
                &th,
                &mut v0[b * shape.n..(b + 1) * shape.n],
            );
        }
        let (y, counts) = model.forward(
            &xs,
            tensor2(v0, 2, shape.n, &dev),
            &shape,
            SpikeFn::Surrogate {
                slope: 5.0,
                damping: 0.3,
            },
        );
        let y = values(y).unwrap();
        let total: f32 = values(counts).unwrap().iter().sum();
        let per_trial: Vec<Vec<f32>> = (0..2)
            .map(|b| {
                (0..steps)
                    .flat_map(|t| values(xs[t].clone()).unwrap()[b * 2..b * 2 + 2].to_vec())
                    .collect()
            })
            .collect();
        let out = CpuEngine
            .simulate(&EnsembleJob {
                net: &net,
                perturbation: &Default::default(),
                seed: 3,
                instances: 0..1,
                inputs: &per_trial,
                trial_offset: 0,
                steps,
                record: Record::default(),
            })
            .unwrap();
        let mut spikes = 0u32;
        for b in 0..2 {
            let o = &out.trials[0][b];
            spikes += o.spike_counts.iter().sum::<u32>();
            for t in 0..steps {
                let (a, e) = (y[b * steps + t], o.y[t]);
                assert!(
                    (a - e).abs() <= 1e-3 * e.abs().max(1.0),
                    "trial {b} step {t}: {a} vs {e}"
                );
            }
        }
        assert!(spikes > 0, "the check needs spikes");
        assert_eq!(total, spikes as f32);
    }
}
