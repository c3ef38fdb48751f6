//! Online training of W_slow on the nominal network (docs/design.md §2, "Learning rule"):
//!
//! ```text
//! e      = x - x~                  (x = teacher tanh(h), after this step's x~)
//! I_fb   = k F e                   enters the input current at the NEXT step
//! W_slow += eta r (F e)ᵀ           dW[pre][post] = eta r_pre (F e)_post, diagonal kept 0
//! ```
//!
//! The network step is [`crate::engine::lif_step::step`] (the same function the engine runs); the
//! trainer adds the feedback current and the update. The initial V of trial `j` is drawn like a
//! chip instance's, with instance word [`TRAIN_INSTANCE`]: `uniform4(seed, TRAIN_INSTANCE,
//! INIT_V, j, i/4)[i%4]`.
//!
//! A trial applies the update in blocks of `training.update_block` steps ([`Deferred`]): the step
//! then runs without W_slow and the trainer propagates the spikes through W_slow's current rows
//! itself ([`Trainer::forward_pending`]); one step per block is the per-step rule bit for bit.

use rayon::prelude::*;

use super::deferred::Deferred;
use crate::chip::Instance;
use crate::chip::instance::initial_v;
use crate::chip::rng::TRAIN_INSTANCE;
use crate::engine::EngineError;
use crate::engine::lif_step::{NeuronConsts, NoiseKey, State, StepWeights, step};
use crate::engine::transpose;
use crate::snn::Network;

#[derive(Clone, Debug, PartialEq)]
pub struct TrainTrialStats {
    pub spikes: u64,
    pub mean_rate_hz: f32,
    /// Reconstruction error R of the trial (with the feedback on, as seen during training).
    pub recon_error: f32,
}

/// Step-level trainer for one trial. Holds the step constants and the matrices derived from
/// the network that training does not change (W_fast, D, F, input projection); build a new one
/// if those change.
pub struct Trainer {
    pub consts: NeuronConsts,
    pub state: State,
    /// Last error e = x - x~ (Nc).
    pub err: Vec<f32>,
    /// Last projected error F e (N).
    pub fe: Vec<f32>,
    /// Steps done.
    pub t: u32,
    /// W_fast is nonzero (else the step skips it).
    fast: bool,
    d_t: Vec<f32>,
    input_proj_t: Vec<f32>,
    /// The encoder transposed, `f_t[k][i] = F[i][k]` (Nc x N): F e is summed over k for all
    /// neurons side by side (see [`Trainer::feedback`]).
    f_t: Vec<f32>,
    /// Membrane noise keys (a chip with noise; None on the nominal network).
    noise: Option<NoiseKey>,
}

impl Trainer {
    pub fn new(net: &Network, seed: u64, trial_index: u32) -> Result<Self, EngineError> {
        net.validate_shapes()?;
        let (n, nc) = (net.n, net.nc);
        let consts = NeuronConsts::nominal(net);
        let mut v0 = vec![0f32; n];
        initial_v(
            seed,
            TRAIN_INSTANCE,
            trial_index,
            net.params.v_reset,
            &consts.v_th,
            &mut v0,
        );
        let (d_t, proj_t) = (
            transpose(&net.d, nc, n),
            transpose(&net.input_projection(), n, net.n_in),
        );
        let f_t = transpose(&net.f, n, nc);
        Ok(Trainer::with_parts(
            net,
            consts,
            &v0,
            [d_t, proj_t, f_t],
            None,
        ))
    }

    /// The trainer of one trial from its parts: constants, initial V, the decoder Dᵀ (N x Nc),
    /// input projection transposed (C x N) and encoder transposed (Nc x N), and the noise keys.
    fn with_parts(
        net: &Network,
        consts: NeuronConsts,
        v0: &[f32],
        [d_t, input_proj_t, f_t]: [Vec<f32>; 3],
        noise: Option<NoiseKey>,
    ) -> Self {
        let (n, nc) = (net.n, net.nc);
        let mut state = State::new(n, nc);
        state.reset(v0);
        Trainer {
            state,
            err: vec![0.0; nc],
            fe: vec![0.0; n],
            t: 0,
            fast: net.w_fast.iter().any(|&w| w != 0.0),
            d_t,
            input_proj_t,
            f_t,
            consts,
            noise,
        }
    }

    /// A trainer for trial `trial_index` on chip `inst` of `net`: the chip's neuron constants,
    /// decoder, encoder F, input projection, initial V and membrane noise (its recurrent weights
    /// are passed to [`Trainer::forward_with`]).
    pub fn on_chip(net: &Network, inst: &Instance, trial_index: u32) -> Result<Self, EngineError> {
        net.validate_shapes()?;
        let (n, nc) = (net.n, net.nc);
        let consts = NeuronConsts::from_instance(net, inst);
        let mut v0 = vec![0f32; n];
        inst.initial_v(net.params.v_reset, trial_index, &mut v0);
        let noise = (inst.noise_std > 0.0).then_some(NoiseKey {
            seed: inst.seed,
            instance: inst.index,
            trial: trial_index,
        });
        let (d_t, proj_t) = (
            transpose(&inst.d, nc, n),
            transpose(&inst.input_proj, n, net.n_in),
        );
        let f_t = transpose(&inst.effective_f(net), n, nc);
        Ok(Trainer::with_parts(
            net,
            consts,
            &v0,
            [d_t, proj_t, f_t],
            noise,
        ))
    }

    /// One training step: network step (with the feedback current of the previous step), then
    /// e, F e, the next feedback current k F e, and `W_slow += eta r (F e)ᵀ` (zero diagonal).
    pub fn step(&mut self, net: &mut Network, input_t: &[f32], target_t: &[f32], k: f32, eta: f32) {
        self.forward(net, input_t, target_t, k);
        self.update(&mut net.w_slow, eta);
    }

    /// The step of quantisation-aware training: the network `net` (its fixed matrices and its
    /// W_slow on their grids) runs; the update goes into the float `shadow` of W_slow.
    pub fn step_shadow(
        &mut self,
        net: &Network,
        shadow: &mut [f32],
        input_t: &[f32],
        target_t: &[f32],
        k: f32,
        eta: f32,
    ) {
        self.forward(net, input_t, target_t, k);
        self.update(shadow, eta);
    }

    /// The network step, e = x - x~, F e and the next feedback current k F e.
    fn forward(&mut self, net: &Network, input_t: &[f32], target_t: &[f32], k: f32) {
        self.forward_with(&net.w_fast, &net.w_slow, input_t, target_t, k);
    }

    /// [`Trainer::forward`] with explicit recurrent weights (`[pre][post]`): a chip's effective
    /// ones.
    pub fn forward_with(
        &mut self,
        w_fast: &[f32],
        w_slow: &[f32],
        input_t: &[f32],
        target_t: &[f32],
        k: f32,
    ) {
        self.network_step(w_fast, Some(w_slow), input_t);
        self.feedback(target_t, k);
    }

    /// [`Trainer::forward_with`] while the update of W_slow is deferred in `pending`: the step
    /// runs without W_slow (it still decays I_slow) and the slow synapses' propagation is done
    /// here through the current rows of the spiking neurons, `base[j] + pending[j]` (times the
    /// chip's factors `g[j]` when given; `base` is then the chip's effective matrix), in the
    /// step's own order and arithmetic ([`Deferred::propagate`]). The step computes nothing
    /// from I_slow after its propagation, so with nothing pending this is `forward_with` bit
    /// for bit.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_pending(
        &mut self,
        w_fast: &[f32],
        base: &[f32],
        g: Option<&[f32]>,
        pending: &mut Deferred,
        input_t: &[f32],
        target_t: &[f32],
        k: f32,
    ) {
        self.network_step(w_fast, None, input_t);
        pending.propagate(
            &self.state.spikes,
            base,
            g,
            &self.consts.inv_tau_slow,
            &mut self.state.i_slow,
        );
        self.feedback(target_t, k);
    }

    /// One training step with the update deferred: [`Trainer::forward_pending`] on `net`, this
    /// step's `eta r (F e)ᵀ` recorded in `pending`, and the block applied to `net.w_slow` when
    /// it is full.
    pub fn step_deferred(
        &mut self,
        net: &mut Network,
        pending: &mut Deferred,
        input_t: &[f32],
        target_t: &[f32],
        k: f32,
        eta: f32,
    ) {
        self.forward_pending(
            &net.w_fast,
            &net.w_slow,
            None,
            pending,
            input_t,
            target_t,
            k,
        );
        self.defer(pending, &mut net.w_slow, eta);
    }

    /// [`Trainer::step_shadow`] with the update deferred: the running `net` is fixed within the
    /// trial, so only the shadow's accumulation waits for the block.
    #[allow(clippy::too_many_arguments)]
    pub fn step_shadow_deferred(
        &mut self,
        net: &Network,
        shadow: &mut [f32],
        pending: &mut Deferred,
        input_t: &[f32],
        target_t: &[f32],
        k: f32,
        eta: f32,
    ) {
        self.forward(net, input_t, target_t, k);
        self.defer(pending, shadow, eta);
    }

    /// Records this step's update in `pending` (nothing when eta = 0, as the per-step rule) and
    /// applies the block to `w` when it is full.
    fn defer(&self, pending: &mut Deferred, w: &mut [f32], eta: f32) {
        if eta != 0.0 {
            pending.push(eta, &self.state.r, &self.fe);
            if pending.is_full() {
                pending.flush(w);
            }
        }
    }

    /// The network step (engine::lif_step::step) with the trainer's constants, state and noise.
    fn network_step(&mut self, w_fast: &[f32], w_slow: Option<&[f32]>, input_t: &[f32]) {
        let w = StepWeights {
            w_fast: self.fast.then_some(w_fast),
            w_slow,
            d_t: &self.d_t,
            input_proj_t: &self.input_proj_t,
        };
        step(
            &self.consts,
            &w,
            &mut self.state,
            input_t,
            self.t,
            self.noise.as_ref(),
        );
        self.t += 1;
    }

    /// e = x - x~ (after the step), F e (ascending k) and the next step's feedback k F e.
    fn feedback(&mut self, target_t: &[f32], k: f32) {
        for ((e, &x), &xh) in self.err.iter_mut().zip(target_t).zip(&self.state.x_hat) {
            *e = x - xh;
        }
        feedback_projection(&self.f_t, &self.err, &mut self.fe);
        for (fb, &fe) in self.state.i_fb.iter_mut().zip(&self.fe) {
            *fb = k * fe;
        }
    }

    /// `w += eta r (F e)ᵀ` with a zero diagonal (w: N x N, `[pre][post]`).
    fn update(&self, w_slow: &mut [f32], eta: f32) {
        let n = self.fe.len();
        if eta != 0.0 {
            let (r, fe) = (&self.state.r, &self.fe);
            let update = |(pre, row): (usize, &mut [f32])| {
                let a = eta * r[pre];
                if a != 0.0 {
                    for (w, &f) in row.iter_mut().zip(fe) {
                        *w += a * f;
                    }
                    row[pre] = 0.0;
                }
            };
            if n >= 256 {
                w_slow.par_chunks_mut(n).enumerate().for_each(update);
            } else {
                w_slow.chunks_mut(n).enumerate().for_each(update);
            }
        }
    }
}

/// `fe = F e` from the transposed encoder `f_t` (Nc x N): each `fe[i]` is the sum of its
/// products `F[i][k] e[k]` in ascending k from the neutral element `Iterator::sum` starts from,
/// i.e. exactly `F[i].iter().zip(e).map(|(a, b)| a * b).sum()` (docs/design.md §2, step 8, and
/// the WGSL twin), but with k outer the N sums advance side by side and vectorise: one row's
/// sum alone is a chain of Nc dependent additions (a third of a training step's time at
/// N = 320, Nc = 64 with the update every step, measured with perf).
fn feedback_projection(f_t: &[f32], e: &[f32], fe: &mut [f32]) {
    // neurons per block: the block's sums stay in registers over the whole k loop
    const BLOCK: usize = 32;
    let zero: f32 = std::iter::empty::<f32>().sum();
    let n = fe.len();
    let full = n / BLOCK * BLOCK;
    let (blocks, rest) = fe.split_at_mut(full);
    for (b, out) in blocks.chunks_exact_mut(BLOCK).enumerate() {
        let i0 = b * BLOCK;
        // a fixed-size array, so that it lives in registers
        let mut acc = [zero; BLOCK];
        for (k, &ek) in e.iter().enumerate() {
            let col: &[f32; BLOCK] = f_t[k * n + i0..k * n + i0 + BLOCK]
                .try_into()
                .expect("a block of BLOCK columns");
            for (a, &f) in acc.iter_mut().zip(col) {
                *a += f * ek;
            }
        }
        out.copy_from_slice(&acc);
    }
    rest.fill(zero);
    for (k, &ek) in e.iter().enumerate() {
        for (a, &f) in rest.iter_mut().zip(&f_t[k * n + full..(k + 1) * n]) {
            *a += f * ek;
        }
    }
}

/// Trains `net.w_slow` on one trial (input T x C, teacher activations T x Nc) with feedback
/// gain `k` and learning rate `eta`.
#[allow(clippy::too_many_arguments)]
pub fn train_trial(
    net: &mut Network,
    input: &[f32],
    target_x: &[f32],
    k: f32,
    eta: f32,
    seed: u64,
    trial_index: u32,
) -> Result<TrainTrialStats, EngineError> {
    train_trial_deferred(net, None, input, target_x, k, eta, seed, trial_index, 1)
}

/// As [`train_trial`], quantisation-aware: `net` runs as it is (its matrices on their grids) and
/// the rule's updates go into `shadow`, the float W_slow it was quantised from.
#[allow(clippy::too_many_arguments)]
pub fn train_trial_shadow(
    net: &mut Network,
    shadow: &mut [f32],
    input: &[f32],
    target_x: &[f32],
    k: f32,
    eta: f32,
    seed: u64,
    trial_index: u32,
) -> Result<TrainTrialStats, EngineError> {
    train_trial_deferred(
        net,
        Some(shadow),
        input,
        target_x,
        k,
        eta,
        seed,
        trial_index,
        1,
    )
}

/// As [`train_trial`] (or, with `shadow`, [`train_trial_shadow`]) with the update applied in
/// blocks of `update_block` steps ([`Deferred`]; 1: every step, bit for bit the per-step rule).
/// A block longer than the trial is the trial.
#[allow(clippy::too_many_arguments)]
pub fn train_trial_deferred(
    net: &mut Network,
    mut shadow: Option<&mut [f32]>,
    input: &[f32],
    target_x: &[f32],
    k: f32,
    eta: f32,
    seed: u64,
    trial_index: u32,
    update_block: usize,
) -> Result<TrainTrialStats, EngineError> {
    net.validate_shapes()?;
    if let Some(w) = shadow.as_deref()
        && w.len() != net.w_slow.len()
    {
        return Err(EngineError::Shape {
            what: "the float shadow of W_slow".into(),
            expected: net.w_slow.len(),
            got: w.len(),
        });
    }
    let (nc, c) = (net.nc, net.n_in);
    if c == 0 || !input.len().is_multiple_of(c) {
        return Err(EngineError::Shape {
            what: "training input (T x C)".into(),
            expected: (input.len() / c.max(1)) * c,
            got: input.len(),
        });
    }
    let steps = input.len() / c;
    if target_x.len() != steps * nc {
        return Err(EngineError::Shape {
            what: "training target (T x Nc)".into(),
            expected: steps * nc,
            got: target_x.len(),
        });
    }
    if !(k.is_finite() && eta.is_finite()) {
        return Err(EngineError::InvalidParams(format!(
            "k and eta must be finite, got k {k}, eta {eta}"
        )));
    }
    let mut tr = Trainer::new(net, seed, trial_index)?;
    // the pending block holds at most the trial (a larger M allocates nothing more)
    let mut pending = Deferred::new(net.n, update_block.min(steps.max(1)))?;
    let mut x_hat = vec![0f32; steps * nc];
    let mut spikes = 0u64;
    for t in 0..steps {
        let (u, x) = (&input[t * c..(t + 1) * c], &target_x[t * nc..(t + 1) * nc]);
        match shadow.as_deref_mut() {
            None => tr.step_deferred(net, &mut pending, u, x, k, eta),
            Some(w) => tr.step_shadow_deferred(net, w, &mut pending, u, x, k, eta),
        }
        spikes += tr.state.spikes.len() as u64;
        x_hat[t * nc..(t + 1) * nc].copy_from_slice(&tr.state.x_hat);
    }
    // the trial's last, partial block
    match shadow {
        None => pending.flush(&mut net.w_slow),
        Some(w) => pending.flush(w),
    }
    Ok(TrainTrialStats::of_trial(
        net, spikes, steps, target_x, &x_hat,
    ))
}

impl TrainTrialStats {
    /// The figures of one trial of `steps` steps of `net` with `spikes` spikes in all and the
    /// decoded x~ (T x Nc) against the teacher's x.
    pub fn of_trial(
        net: &Network,
        spikes: u64,
        steps: usize,
        target_x: &[f32],
        x_hat: &[f32],
    ) -> Self {
        let secs = steps as f32 * net.params.dt_s();
        TrainTrialStats {
            spikes,
            mean_rate_hz: if steps == 0 {
                0.0
            } else {
                spikes as f32 / (net.n as f32 * secs)
            },
            recon_error: reconstruction_error(target_x, x_hat, net.nc),
        }
    }
}

/// R = sum_k var_t(x_k - x~_k) / sum_k var_t(x_k) over T x Nc arrays (population variances).
/// Returns 0 when both sums are 0 and +inf when only the denominator is 0.
pub fn reconstruction_error(x: &[f32], x_hat: &[f32], nc: usize) -> f32 {
    if nc == 0 || x.is_empty() || x.len() != x_hat.len() {
        return f32::NAN;
    }
    let t = (x.len() / nc) as f64;
    let (mut num, mut den) = (0f64, 0f64);
    for k in 0..nc {
        let (mut sx, mut sx2, mut se, mut se2) = (0f64, 0f64, 0f64, 0f64);
        for (a, b) in x.chunks_exact(nc).zip(x_hat.chunks_exact(nc)) {
            let xv = a[k] as f64;
            let e = xv - b[k] as f64;
            sx += xv;
            sx2 += xv * xv;
            se += e;
            se2 += e * e;
        }
        den += (sx2 / t - (sx / t).powi(2)).max(0.0);
        num += (se2 / t - (se / t).powi(2)).max(0.0);
    }
    if den == 0.0 {
        if num == 0.0 { 0.0 } else { f32::INFINITY }
    } else {
        (num / den) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::tests::{smooth_input, test_net};
    use crate::snn::SnnParams;

    fn params(n: usize) -> SnnParams {
        SnnParams {
            n,
            ..Default::default()
        }
    }

    #[test]
    fn update_equals_eta_r_fe_outer_product() {
        let mut net = test_net(params(12), 3, 1, 1, 4);
        let (n, nc) = (12, 3);
        let mut tr = Trainer::new(&net, 1, 0).unwrap();
        for i in 0..5 {
            tr.state.v[i] = 1.5; // spike at step 1
        }
        let (k, eta) = (30.0f32, 0.01f32);
        let targets = [[0.3f32, -0.2, 0.5], [0.1, 0.4, -0.3]];
        let mut changed = false;
        for (t, target) in targets.iter().enumerate() {
            let before = net.w_slow.clone();
            tr.step(&mut net, &[0.7], target, k, eta);
            if t == 0 {
                assert_eq!(tr.state.spikes, vec![0, 1, 2, 3, 4]);
            }
            let e: Vec<f32> = (0..nc).map(|j| target[j] - tr.state.x_hat[j]).collect();
            let fe: Vec<f32> = (0..n)
                .map(|i| (0..nc).map(|j| net.f[i * nc + j] * e[j]).sum())
                .collect();
            for pre in 0..n {
                for post in 0..n {
                    let want = if pre == post {
                        0.0
                    } else {
                        before[pre * n + post] + eta * tr.state.r[pre] * fe[post]
                    };
                    let got = net.w_slow[pre * n + post];
                    assert!(
                        (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                    changed |= got != 0.0;
                }
            }
            for (fb, f) in tr.state.i_fb.iter().zip(&fe) {
                assert!((fb - k * f).abs() < 1e-6);
            }
        }
        assert!(changed);
    }

    /// F e summed neuron by neuron along k (the rule as written) and all neurons at once along
    /// k agree bit for bit, signed zeros included.
    #[test]
    fn the_feedback_projection_is_each_rows_ordered_sum() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(4);
        for (n, nc) in [(320, 64), (37, 5), (8, 1), (3, 0)] {
            let mut f: Vec<f32> = (0..n * nc).map(|_| rng.random_range(-3.0..3.0)).collect();
            let mut e: Vec<f32> = (0..nc).map(|_| rng.random_range(-1.0..1.0)).collect();
            // signed zeros and cancellations: rows of -0 products, an all-zero error entry
            if nc > 1 {
                e[1] = -0.0;
                for (k, x) in f[..nc].iter_mut().enumerate() {
                    *x = if k % 2 == 0 { 0.0 } else { -0.0 };
                }
            }
            let want: Vec<f32> = (0..n)
                .map(|i| {
                    f[i * nc..(i + 1) * nc]
                        .iter()
                        .zip(&e)
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect();
            let mut got = vec![f32::NAN; n];
            feedback_projection(&crate::engine::transpose(&f, n, nc), &e, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "n {n} nc {nc}");
        }
    }

    #[test]
    fn feedback_acts_at_the_next_step() {
        let net0 = test_net(params(12), 3, 1, 1, 4);
        let run = |k: f32| {
            let mut net = net0.clone();
            let mut tr = Trainer::new(&net, 1, 0).unwrap();
            tr.step(&mut net, &[0.2], &[0.5, 0.5, 0.5], k, 0.0);
            let v1 = tr.state.v.clone();
            tr.step(&mut net, &[0.2], &[0.5, 0.5, 0.5], k, 0.0);
            (v1, tr.state.v.clone())
        };
        let (a1, a2) = run(0.0);
        let (b1, b2) = run(100.0);
        assert_eq!(a1, b1);
        assert_ne!(a2, b2);
    }

    #[test]
    fn trainer_without_feedback_equals_engine() {
        use crate::chip::Perturbation;
        use crate::chip::rng::TRAIN_INSTANCE;
        use crate::engine::{CpuEngine, Engine, EnsembleJob, Record};
        let net = test_net(params(40), 4, 2, 1, 6);
        let input = smooth_input(200, 2, 1.0, 3);
        let out = CpuEngine
            .simulate(&EnsembleJob {
                net: &net,
                perturbation: &Perturbation::default(),
                seed: 77,
                instances: TRAIN_INSTANCE..TRAIN_INSTANCE + 1,
                inputs: std::slice::from_ref(&input),
                trial_offset: 5,
                steps: 200,
                record: Record {
                    x: true,
                    spikes: true,
                    v: false,
                },
            })
            .unwrap();
        let o = &out.trials[0][0];
        let mut n2 = net.clone();
        let mut tr = Trainer::new(&n2, 77, 5).unwrap();
        let mut spikes = vec![];
        for t in 0..200 {
            tr.step(&mut n2, &input[2 * t..2 * t + 2], &[0.0; 4], 0.0, 0.0);
            spikes.extend(tr.state.spikes.iter().map(|&j| (t as u32, j)));
            assert_eq!(
                &tr.state.x_hat[..],
                &o.x.as_ref().unwrap()[4 * t..4 * t + 4]
            );
        }
        assert!(spikes.len() > 10);
        assert_eq!(&spikes, o.spikes.as_ref().unwrap());
    }

    /// A toy teacher: tau_j dh/dt = -h + W_inᵀ c, x = tanh(h), tau_j from 30 to 150 ms.
    fn toy_teacher(net: &Network, input: &[f32]) -> Vec<f32> {
        let (nc, c) = (net.nc, net.n_in);
        let steps = input.len() / c;
        let mut h = vec![0f32; nc];
        let mut x = vec![0f32; steps * nc];
        for t in 0..steps {
            for j in 0..nc {
                let tau = 0.03 + 0.12 * j as f32 / nc as f32;
                let u: f32 = (0..c)
                    .map(|ch| net.w_in_teacher[ch * nc + j] * input[t * c + ch])
                    .sum();
                h[j] += 1e-3 / tau * (-h[j] + u);
                x[t * nc + j] = h[j].tanh();
            }
        }
        x
    }

    fn eval_r(net: &Network, input: &[f32], target: &[f32]) -> f32 {
        let mut n2 = net.clone();
        train_trial(&mut n2, input, target, 0.0, 0.0, 9, 1000)
            .unwrap()
            .recon_error
    }

    #[test]
    fn short_training_lowers_validation_error() {
        let net0 = test_net(params(320), 64, 2, 1, 12);
        let val_in = smooth_input(1000, 2, 1.0, 500);
        let val_x = toy_teacher(&net0, &val_in);
        let r0 = eval_r(&net0, &val_in, &val_x);
        let mut net = net0.clone();
        for tr in 0..10u32 {
            let inp = smooth_input(1000, 2, 1.0, tr as u64);
            let x = toy_teacher(&net, &inp);
            let st = train_trial(&mut net, &inp, &x, 500.0, 1e-5, 3, tr).unwrap();
            assert!(st.mean_rate_hz > 1.0 && st.mean_rate_hz < 50.0);
        }
        let r1 = eval_r(&net, &val_in, &val_x);
        assert!(r1 < 0.95 * r0, "R {r0} -> {r1}");
        assert!(net.w_slow.iter().any(|&w| w != 0.0));
        assert!((0..320).all(|i| net.w_slow[i * 320 + i] == 0.0));
    }

    /// One trial of `steps` steps from `net0`, step by step: the per-step rule
    /// ([`Trainer::step`], the step propagating through W_slow itself) when `block` is None,
    /// else the update deferred in blocks of that many steps. Returns the trained W_slow and the
    /// spikes as (step, neuron).
    fn trial_by_steps(
        net0: &Network,
        input: &[f32],
        target: &[f32],
        (k, eta): (f32, f32),
        block: Option<usize>,
    ) -> (Vec<f32>, Vec<(u32, u32)>) {
        let (c, nc) = (net0.n_in, net0.nc);
        let steps = input.len() / c;
        let mut net = net0.clone();
        let mut tr = Trainer::new(&net, 3, 0).unwrap();
        let mut pending = block.map(|m| Deferred::new(net.n, m).unwrap());
        let mut spikes = vec![];
        for t in 0..steps {
            let (u, x) = (&input[t * c..(t + 1) * c], &target[t * nc..(t + 1) * nc]);
            match pending.as_mut() {
                None => tr.step(&mut net, u, x, k, eta),
                Some(p) => tr.step_deferred(&mut net, p, u, x, k, eta),
            }
            spikes.extend(tr.state.spikes.iter().map(|&j| (t as u32, j)));
        }
        if let Some(p) = pending.as_mut() {
            p.flush(&mut net.w_slow);
        }
        (net.w_slow, spikes)
    }

    /// The trial's teacher-like target and input for a network with `c` inputs.
    fn trial_data(net: &Network, steps: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let input = smooth_input(steps, net.n_in, 1.0, seed);
        let target = toy_teacher(net, &input);
        (input, target)
    }

    /// M = 1 is the per-step rule bit for bit: the same spikes and the same W_slow, with the
    /// step run without W_slow and the trainer's own propagation.
    #[test]
    fn a_block_of_one_step_is_the_per_step_rule_bit_for_bit() {
        let net0 = test_net(params(64), 16, 2, 1, 5);
        let (input, target) = trial_data(&net0, 300, 7);
        let (w_ref, s_ref) = trial_by_steps(&net0, &input, &target, (300.0, 1e-4), None);
        let (w, s) = trial_by_steps(&net0, &input, &target, (300.0, 1e-4), Some(1));
        assert!(s_ref.len() > 300, "{} spikes", s_ref.len());
        assert!(w_ref.iter().any(|&w| w != 0.0));
        assert_eq!(s, s_ref);
        assert_eq!(
            w.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            w_ref.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // and through train_trial_deferred, as the trainer runs it
        let mut net = net0.clone();
        let st =
            train_trial_deferred(&mut net, None, &input, &target, 300.0, 1e-4, 3, 0, 1).unwrap();
        assert_eq!(st.spikes, s_ref.len() as u64);
        assert_eq!(net.w_slow, w_ref);
    }

    /// M = 32 over 2000 steps of a 320-neuron network: the spikes of the per-step rule and a
    /// W_slow within 1e-4 of its largest entry. The spiking rows' pending part matters: without
    /// it (the step reading the last flushed W_slow) the spikes part ways.
    #[test]
    fn a_block_of_32_steps_keeps_the_spikes_and_the_weights() {
        let net0 = test_net(params(320), 64, 2, 1, 12);
        let (input, target) = trial_data(&net0, 2000, 21);
        let ke = (500.0, 2e-5);
        let (w_ref, s_ref) = trial_by_steps(&net0, &input, &target, ke, None);
        let (w, s) = trial_by_steps(&net0, &input, &target, ke, Some(32));
        let largest = w_ref.iter().fold(0f32, |m, &x| m.max(x.abs()));
        let worst = w
            .iter()
            .zip(&w_ref)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(s_ref.len() > 3000, "{} spikes", s_ref.len());
        assert!(largest > 1e-3, "W_slow learned: largest {largest}");
        assert_eq!(s.len(), s_ref.len(), "spike counts");
        assert!(s == s_ref, "first different spike: {:?}", {
            s.iter().zip(&s_ref).find(|(a, b)| a != b)
        });
        assert!(worst <= 1e-4 * largest, "|dW| {worst} of {largest}");
    }

    /// Targets: a smooth trajectory, T x Nc.
    fn smooth_target(steps: usize, nc: usize, amp: f32, seed: u64) -> Vec<f32> {
        smooth_input(steps, nc, amp, seed)
    }

    #[test]
    fn high_gain_feedback_tracks_target() {
        let mut net = test_net(params(320), 64, 1, 1, 8);
        let steps = 1000;
        let target = smooth_target(steps, 64, 0.5, 11);
        let input = vec![0f32; steps];
        // With W_slow = 0 and eta = 0 only the feedback k F e drives the network: the error
        // shrinks as the gain grows (at N = 320, Nc = 64, amplitude ~0.5 per dimension).
        let mut last = f32::INFINITY;
        for k in [1000.0f32, 2000.0, 5000.0, 10000.0] {
            let st = train_trial(&mut net, &input, &target, k, 0.0, 1, 0).unwrap();
            assert!(
                st.recon_error < last,
                "k {k}: R {} !< {last}",
                st.recon_error
            );
            last = st.recon_error;
            if k >= 5000.0 {
                assert!(st.recon_error < 0.1, "k {k}: R {}", st.recon_error);
            }
        }
        assert!(net.w_slow.iter().all(|&w| w == 0.0));
    }
}
