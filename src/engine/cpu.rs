//! The CPU reference engine and the one neuron step shared with the trainer.
//!
//! # Units
//! Every `1/tau` factor and every decay `exp(-dt/tau)` uses seconds (dt = 0.001 s by default),
//! exactly like the paper's reference code: a spike adds `W / tau` (e.g. `W / 0.07`) to a
//! synaptic current, so the current's time integral (sum · dt) is W.
//!
//! # Step order ([`step`]), per neuron i
//! 1. `I = I_slow + I_fast + I_fb + P c(t) + b` (P = folded input projection, N x C)
//! 2. `V += dt/tau_mem_i (V_rest - V + I)`; `I_fast *= e^{-dt/tau_fast_i}`,
//!    `I_slow *= e^{-dt/tau_slow_i}`, `r *= e^{-dt/tau_out_i}` (old values used in 1.)
//! 3. `V += noise_std z` (membrane noise, key `(NOISE, trial, t ceil(N/4) + i/4)`, lane i%4)
//! 4. silenced neurons: `V = 0` (and they never spike)
//! 5. `s_i = V_i >= V_th_i`; `V_i = V_reset`, `r_i += 1/tau_out_i` where s_i
//! 6. event-driven propagation, for each spiking pre j (ascending):
//!    `I_fast[i] += W_fast[i][j] / tau_fast_i`, `I_slow[i] += W_slow[j][i] / tau_slow_i`
//! 7. readout: if tau_out is shared, `x~ = x~ e^{-dt/tau_out} + sum_j D[:, j] / tau_out`
//!    (per spike); otherwise `x~ = D r` (dense). The task output `y~ = W_out_teacherᵀ x~` is
//!    computed by the caller.

use rayon::prelude::*;

use super::{Engine, EngineError, EnsembleJob, EnsembleOutput, TrialOutput, validate_job};
use crate::chip::Instance;
use crate::chip::rng::{self, Stream};
use crate::snn::Network;
use crate::snn::network::readout;

/// Per-neuron constants of one chip (or the nominal network), precomputed for dt.
#[derive(Clone, Debug)]
pub struct NeuronConsts {
    pub n: usize,
    pub nc: usize,
    pub n_in: usize,
    /// dt / tau_mem_i.
    pub alpha: Vec<f32>,
    /// Threshold per neuron; `+inf` for silenced neurons.
    pub v_th: Vec<f32>,
    pub decay_fast: Vec<f32>,
    pub inv_tau_fast: Vec<f32>,
    pub decay_slow: Vec<f32>,
    pub inv_tau_slow: Vec<f32>,
    pub decay_out: Vec<f32>,
    pub inv_tau_out: Vec<f32>,
    /// `(e^{-dt/tau_out}, 1/tau_out)` when tau_out is the same for all neurons: the readout is
    /// then updated per spike; `None` means the dense `x~ = D r`.
    pub shared_out: Option<(f32, f32)>,
    pub v_rest: f32,
    pub v_reset: f32,
    pub bias: f32,
    /// Membrane noise std per step (voltage units).
    pub noise_std: f32,
    /// Silenced neurons (held at V = 0).
    pub silenced: Vec<u32>,
}

impl NeuronConsts {
    /// Builds the constants from per-neuron time constants in seconds.
    #[allow(clippy::too_many_arguments)]
    pub fn from_taus(
        net: &Network,
        tau_mem: &[f32],
        tau_fast: &[f32],
        tau_slow: &[f32],
        tau_out: &[f32],
        v_th: &[f32],
        silenced: &[bool],
        noise_std: f32,
    ) -> Self {
        let p = &net.params;
        let dt = p.dt_s();
        let decay = |t: &[f32]| t.iter().map(|&t| (-dt / t).exp()).collect::<Vec<f32>>();
        let inv = |t: &[f32]| t.iter().map(|&t| 1.0 / t).collect::<Vec<f32>>();
        let decay_out = decay(tau_out);
        let inv_tau_out = inv(tau_out);
        let shared_out = if tau_out.iter().all(|&t| t == tau_out[0]) && !tau_out.is_empty() {
            Some((decay_out[0], inv_tau_out[0]))
        } else {
            None
        };
        let silenced_idx: Vec<u32> = (0..net.n as u32)
            .filter(|&i| silenced[i as usize])
            .collect();
        let mut v_th = v_th.to_vec();
        for &i in &silenced_idx {
            v_th[i as usize] = f32::INFINITY;
        }
        NeuronConsts {
            n: net.n,
            nc: net.nc,
            n_in: net.n_in,
            alpha: tau_mem.iter().map(|&t| dt / t).collect(),
            v_th,
            decay_fast: decay(tau_fast),
            inv_tau_fast: inv(tau_fast),
            decay_slow: decay(tau_slow),
            inv_tau_slow: inv(tau_slow),
            decay_out,
            inv_tau_out,
            shared_out,
            v_rest: p.v_rest,
            v_reset: p.v_reset,
            bias: p.bias,
            noise_std,
            silenced: silenced_idx,
        }
    }

    /// The nominal network: no mismatch, no noise, nothing silenced.
    pub fn nominal(net: &Network) -> Self {
        let p = &net.params;
        let n = net.n;
        let c = |ms: f32| vec![ms * 1e-3; n];
        NeuronConsts::from_taus(
            net,
            &c(p.tau_mem_ms),
            &c(p.tau_fast_ms),
            &c(p.tau_slow_ms),
            &c(p.tau_out_ms),
            &vec![p.v_th; n],
            &vec![false; n],
            0.0,
        )
    }

    /// One chip instance.
    pub fn from_instance(net: &Network, inst: &Instance) -> Self {
        NeuronConsts::from_taus(
            net,
            &inst.tau_mem,
            &inst.tau_fast,
            &inst.tau_slow,
            &inst.tau_out,
            &inst.v_th,
            &inst.silenced,
            inst.noise_std,
        )
    }
}

/// The weights one step reads. `None` = an all-zero matrix (skipped).
#[derive(Clone, Copy)]
pub struct StepWeights<'a> {
    /// W_fast transposed, `[pre][post]` (N x N).
    pub w_fast_t: Option<&'a [f32]>,
    /// W_slow, `[pre][post]` (N x N).
    pub w_slow: Option<&'a [f32]>,
    /// Decoder columns, `d_t[i][k] = D[k][i]` (N x Nc).
    pub d_t: &'a [f32],
    /// Input projection transposed, C x N.
    pub input_proj_t: &'a [f32],
}

/// Keys of the membrane noise of one trial.
#[derive(Clone, Copy, Debug)]
pub struct NoiseKey {
    pub seed: u64,
    pub instance: u32,
    pub trial: u32,
}

/// Dynamic state of one network during one trial. All vectors length N except `x_hat` (Nc).
#[derive(Clone, Debug)]
pub struct State {
    pub v: Vec<f32>,
    pub i_fast: Vec<f32>,
    pub i_slow: Vec<f32>,
    /// Error feedback current (training only; zero otherwise).
    pub i_fb: Vec<f32>,
    /// Filtered spike trains r (1/s).
    pub r: Vec<f32>,
    /// Decoded state x~.
    pub x_hat: Vec<f32>,
    /// Neurons that spiked in the last step, ascending.
    pub spikes: Vec<u32>,
    cur: Vec<f32>,
}

impl State {
    pub fn new(n: usize, nc: usize) -> Self {
        State {
            v: vec![0.0; n],
            i_fast: vec![0.0; n],
            i_slow: vec![0.0; n],
            i_fb: vec![0.0; n],
            r: vec![0.0; n],
            x_hat: vec![0.0; nc],
            spikes: Vec::with_capacity(n),
            cur: vec![0.0; n],
        }
    }

    /// Zeroes everything and sets V.
    pub fn reset(&mut self, v0: &[f32]) {
        self.v.copy_from_slice(v0);
        for x in [
            &mut self.i_fast,
            &mut self.i_slow,
            &mut self.i_fb,
            &mut self.r,
            &mut self.x_hat,
        ] {
            x.iter_mut().for_each(|v| *v = 0.0);
        }
        self.spikes.clear();
    }
}

/// One Euler step (see the module docs for the order). `input_t` has C entries; `t` is the
/// step index (keys the noise); `noise` is used when `c.noise_std > 0`.
pub fn step(
    c: &NeuronConsts,
    w: &StepWeights,
    st: &mut State,
    input_t: &[f32],
    t: u32,
    noise: Option<&NoiseKey>,
) {
    let n = c.n;
    // 1. input current (without the bias, added below)
    for ((cur, (a, b)), f) in st
        .cur
        .iter_mut()
        .zip(st.i_slow.iter().zip(&st.i_fast))
        .zip(&st.i_fb)
    {
        *cur = a + b + f;
    }
    for (ch, &u) in input_t.iter().enumerate() {
        if u != 0.0 {
            let p = &w.input_proj_t[ch * n..(ch + 1) * n];
            for (cur, &pi) in st.cur.iter_mut().zip(p) {
                *cur += u * pi;
            }
        }
    }
    // 2. membrane and decays
    let (v_rest, bias) = (c.v_rest, c.bias);
    for ((v, &cur), &a) in st.v.iter_mut().zip(&st.cur).zip(&c.alpha) {
        *v += a * (v_rest - *v + (cur + bias));
    }
    for (x, &d) in st.i_fast.iter_mut().zip(&c.decay_fast) {
        *x *= d;
    }
    for (x, &d) in st.i_slow.iter_mut().zip(&c.decay_slow) {
        *x *= d;
    }
    for (x, &d) in st.r.iter_mut().zip(&c.decay_out) {
        *x *= d;
    }
    // 3. membrane noise
    if c.noise_std > 0.0
        && let Some(key) = noise
    {
        let nq = n.div_ceil(4) as u32;
        let rk = rng::key_of(key.seed);
        for (q, chunk) in st.v.chunks_mut(4).enumerate() {
            let d = rng::philox4x32_10(
                [key.instance, Stream::NOISE.0, key.trial, t * nq + q as u32],
                rk,
            );
            let z = rng::normal4_from_draws(d);
            for (v, zl) in chunk.iter_mut().zip(z) {
                *v += c.noise_std * zl;
            }
        }
    }
    // 4. silencing
    for &j in &c.silenced {
        st.v[j as usize] = 0.0;
    }
    // 5. threshold and reset
    st.spikes.clear();
    for i in 0..n {
        if st.v[i] >= c.v_th[i] {
            st.v[i] = c.v_reset;
            st.r[i] += c.inv_tau_out[i];
            st.spikes.push(i as u32);
        }
    }
    // 6. event-driven propagation
    for &j in &st.spikes {
        let j = j as usize;
        if let Some(wf) = w.w_fast_t {
            let row = &wf[j * n..(j + 1) * n];
            for ((acc, &wv), &it) in st.i_fast.iter_mut().zip(row).zip(&c.inv_tau_fast) {
                *acc += wv * it;
            }
        }
        if let Some(ws) = w.w_slow {
            let row = &ws[j * n..(j + 1) * n];
            for ((acc, &wv), &it) in st.i_slow.iter_mut().zip(row).zip(&c.inv_tau_slow) {
                *acc += wv * it;
            }
        }
    }
    // 7. readout
    let nc = c.nc;
    match c.shared_out {
        Some((decay, inv)) => {
            st.x_hat.iter_mut().for_each(|x| *x *= decay);
            for &j in &st.spikes {
                let col = &w.d_t[j as usize * nc..(j as usize + 1) * nc];
                for (x, &d) in st.x_hat.iter_mut().zip(col) {
                    *x += d * inv;
                }
            }
        }
        None => dense_readout(w.d_t, &st.r, nc, &mut st.x_hat),
    }
}

/// x = D r with `d_t` = Dᵀ (N x Nc), skipping neurons with r = 0.
pub fn dense_readout(d_t: &[f32], r: &[f32], nc: usize, x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = 0.0);
    for (i, &ri) in r.iter().enumerate() {
        if ri != 0.0 {
            let col = &d_t[i * nc..(i + 1) * nc];
            for (xk, &d) in x.iter_mut().zip(col) {
                *xk += d * ri;
            }
        }
    }
}

/// Row-major transpose of a rows x cols matrix.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// The CPU reference engine: rayon over instances (and over trials when there are fewer
/// instances than threads). Per worker, the effective (mismatched) W_slow / W_fast of the
/// current instance is materialised once into reused N x N scratch.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

#[derive(Default)]
struct Scratch {
    w_slow: Vec<f32>,
    w_fast_t: Vec<f32>,
}

struct TrialCtx<'a> {
    net: &'a Network,
    inst: &'a Instance,
    consts: &'a NeuronConsts,
    w: StepWeights<'a>,
    outdeg: &'a [u32],
    steps: usize,
    record: super::Record,
}

fn run_trial(ctx: &TrialCtx, input: &[f32], trial: u32) -> (TrialOutput, u64) {
    let (n, nc, c_in, n_out) = (ctx.net.n, ctx.net.nc, ctx.net.n_in, ctx.net.n_out);
    let steps = ctx.steps;
    let mut st = State::new(n, nc);
    let mut v0 = vec![0f32; n];
    ctx.inst.initial_v(ctx.net.params.v_reset, trial, &mut v0);
    st.reset(&v0);
    let key = NoiseKey {
        seed: ctx.inst.seed,
        instance: ctx.inst.index,
        trial,
    };
    let mut y = vec![0f32; steps * n_out];
    let mut xs = ctx.record.x.then(|| vec![0f32; steps * nc]);
    let mut vs = ctx.record.v.then(|| vec![0f32; steps * n]);
    let mut spikes = ctx.record.spikes.then(Vec::new);
    let mut counts = vec![0u32; n];
    let mut events = 0u64;
    for t in 0..steps {
        step(
            ctx.consts,
            &ctx.w,
            &mut st,
            &input[t * c_in..(t + 1) * c_in],
            t as u32,
            Some(&key),
        );
        for &j in &st.spikes {
            counts[j as usize] += 1;
            events += ctx.outdeg[j as usize] as u64;
        }
        if let Some(sp) = spikes.as_mut() {
            sp.extend(st.spikes.iter().map(|&j| (t as u32, j)));
        }
        readout(
            &ctx.net.w_out_teacher,
            nc,
            n_out,
            &st.x_hat,
            &mut y[t * n_out..(t + 1) * n_out],
        );
        if let Some(x) = xs.as_mut() {
            x[t * nc..(t + 1) * nc].copy_from_slice(&st.x_hat);
        }
        if let Some(v) = vs.as_mut() {
            v[t * n..(t + 1) * n].copy_from_slice(&st.v);
        }
    }
    (
        TrialOutput {
            y,
            x: xs,
            spikes,
            v: vs,
            spike_counts: counts,
        },
        events,
    )
}

impl Engine for CpuEngine {
    fn name(&self) -> String {
        format!("cpu (rayon, {} threads)", rayon::current_num_threads())
    }

    fn simulate(&self, job: &EnsembleJob) -> Result<EnsembleOutput, EngineError> {
        validate_job(job)?;
        let qnet;
        let net = match job.perturbation.bits {
            Some(b) => {
                qnet = job.net.quantized(b);
                &qnet
            }
            None => job.net,
        };
        let (n, nc, c_in) = (net.n, net.nc, net.n_in);
        let (w_fast_t_nom, outdeg) = super::fast_t_and_outdegree(net);
        let slow_nonzero = net.w_slow.iter().any(|&w| w != 0.0);
        let n_inst = job.instances.len();
        let par_trials = n_inst < rayon::current_num_threads() && job.inputs.len() > 1;

        let per_instance: Vec<(Vec<TrialOutput>, u64)> = job
            .instances
            .clone()
            .into_par_iter()
            .map_init(Scratch::default, |scr, idx| {
                let inst = Instance::draw(net, job.perturbation, job.seed, idx);
                let consts = NeuronConsts::from_instance(net, &inst);
                let d_t = transpose(&inst.d, nc, n);
                let input_proj_t = transpose(&inst.input_proj, n, c_in);
                let w_slow: Option<&[f32]> = if !slow_nonzero {
                    None
                } else if inst.w_slow_sigma == 0.0 {
                    Some(&net.w_slow)
                } else {
                    scr.w_slow.resize(n * n, 0.0);
                    inst.effective_w_slow(&net.w_slow, &mut scr.w_slow);
                    Some(&scr.w_slow)
                };
                let w_fast_t: Option<&[f32]> = match &w_fast_t_nom {
                    None => None,
                    Some(m) if inst.w_fast_sigma == 0.0 => Some(m),
                    Some(m) => {
                        scr.w_fast_t.resize(n * n, 0.0);
                        inst.effective_w_fast_t(m, &mut scr.w_fast_t);
                        Some(&scr.w_fast_t)
                    }
                };
                let ctx = TrialCtx {
                    net,
                    inst: &inst,
                    consts: &consts,
                    w: StepWeights {
                        w_fast_t,
                        w_slow,
                        d_t: &d_t,
                        input_proj_t: &input_proj_t,
                    },
                    outdeg: &outdeg,
                    steps: job.steps,
                    record: job.record,
                };
                let run = |(j, inp): (usize, &Vec<f32>)| {
                    run_trial(&ctx, inp, job.trial_offset + j as u32)
                };
                let outs: Vec<(TrialOutput, u64)> = if par_trials {
                    job.inputs.par_iter().enumerate().map(run).collect()
                } else {
                    job.inputs.iter().enumerate().map(run).collect()
                };
                let events = outs.iter().map(|o| o.1).sum();
                (outs.into_iter().map(|o| o.0).collect(), events)
            })
            .collect();
        let synaptic_events = per_instance.iter().map(|p| p.1).sum();
        Ok(EnsembleOutput {
            trials: per_instance.into_iter().map(|p| p.0).collect(),
            synaptic_events,
            neuron_steps: (n_inst * job.inputs.len() * n * job.steps) as u64,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chip::{MismatchMode, Perturbation};
    use crate::engine::Record;
    use crate::snn::SnnParams;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// A small network with random teacher weights (C x Nc in U(-1,1)*win, Nc x n_out).
    pub(crate) fn test_net(p: SnnParams, nc: usize, c: usize, n_out: usize, seed: u64) -> Network {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xabc);
        let w_in: Vec<f32> = (0..c * nc).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w_out: Vec<f32> = (0..nc * n_out)
            .map(|_| rng.random_range(-0.5..0.5))
            .collect();
        Network::init(p, w_in, w_out, nc, c, n_out, seed).unwrap()
    }

    pub(crate) use crate::engine::smooth_input;

    fn one_neuron() -> Network {
        let p = SnnParams {
            n: 1,
            ..Default::default()
        };
        test_net(p, 1, 1, 1, 1)
    }

    #[test]
    fn euler_step_by_hand() {
        let net = one_neuron();
        let c = NeuronConsts::nominal(&net);
        assert_eq!(c.alpha[0], 0.001f32 / 0.05);
        let mut st = State::new(1, 1);
        st.v[0] = 0.2;
        st.i_slow[0] = 0.3;
        st.i_fast[0] = -0.1;
        st.i_fb[0] = 0.05;
        st.r[0] = 10.0;
        let mut c2 = c.clone();
        c2.bias = 0.1;
        let p = [0.25f32];
        let w = StepWeights {
            w_fast_t: None,
            w_slow: None,
            d_t: &[0.0],
            input_proj_t: &p,
        };
        step(&c2, &w, &mut st, &[2.0], 0, None);
        // I = 0.3 - 0.1 + 0.05 + 0.25*2 + 0.1 = 0.85
        // V = 0.2 + 0.02 * (0.5 - 0.2 + 0.85) = 0.223
        assert!((st.v[0] - 0.223).abs() < 1e-6, "{}", st.v[0]);
        assert!(st.spikes.is_empty());
        // decays: e^{-1} (tau_fast 1 ms), e^{-1/70}
        assert!((st.i_fast[0] - (-0.036_787_94)).abs() < 1e-7);
        assert!((st.i_slow[0] - 0.295_744_9).abs() < 1e-6);
        assert!((st.r[0] - 9.858_164).abs() < 1e-5);
    }

    #[test]
    fn threshold_and_reset() {
        let net = one_neuron();
        let c = NeuronConsts::nominal(&net);
        let p = [1.0f32];
        let w = StepWeights {
            w_fast_t: None,
            w_slow: None,
            d_t: &[0.0],
            input_proj_t: &p,
        };
        let mut st = State::new(1, 1);
        // below: V = 0.5, I = 0 stays 0.5
        st.v[0] = 0.5;
        step(&c, &w, &mut st, &[0.0], 0, None);
        assert_eq!(st.v[0], 0.5);
        assert!(st.spikes.is_empty());
        // crossing: V = 0.99 + 0.02 (0.5 - 0.99 + 1.5) = 1.0102 -> spike, reset to 0
        st.v[0] = 0.99;
        step(&c, &w, &mut st, &[1.5], 1, None);
        assert_eq!(st.spikes, vec![0]);
        assert_eq!(st.v[0], 0.0);
        assert!((st.r[0] - 1.0 / 0.07).abs() < 1e-4);
        // exactly at threshold: V = 1 + 0.02 (0.5 - 1 + 0.5) = 1 -> spikes (>=)
        st.v[0] = 1.0;
        step(&c, &w, &mut st, &[0.5], 2, None);
        assert_eq!(st.spikes, vec![0]);
        assert_eq!(st.v[0], 0.0);
    }

    /// Integral (sum * dt) of the fast / slow current and of r after one spike.
    fn kernel_integrals(dt_ms: f32, w: f32) -> (f64, f64, f64) {
        let p = SnnParams {
            n: 2,
            dt_ms,
            use_fast: false,
            ..Default::default()
        };
        let mut net = test_net(p, 1, 1, 1, 2);
        // synapse 0 -> 1 in both matrices
        net.w_fast = vec![0.0, 0.0, w, 0.0]; // [post][pre]: w_fast[1][0]
        net.w_slow = vec![0.0, 2.0 * w, 0.0, 0.0]; // [pre][post]: w_slow[0][1]
        let mut c = NeuronConsts::nominal(&net);
        c.v_th[1] = f32::INFINITY;
        let wf = transpose(&net.w_fast, 2, 2);
        let w = StepWeights {
            w_fast_t: Some(&wf),
            w_slow: Some(&net.w_slow),
            d_t: &[0.0, 0.0],
            input_proj_t: &[0.0, 0.0],
        };
        let mut st = State::new(2, 1);
        st.v[0] = 5.0;
        let dt = dt_ms as f64 * 1e-3;
        let (mut f, mut s, mut r) = (0f64, 0f64, 0f64);
        let steps = (2000.0 / dt_ms) as usize;
        for t in 0..steps {
            step(&c, &w, &mut st, &[0.0], t as u32, None);
            if t > 0 {
                assert!(st.spikes.is_empty());
            }
            f += st.i_fast[1] as f64 * dt;
            s += st.i_slow[1] as f64 * dt;
            r += st.r[0] as f64 * dt;
        }
        (f, s, r)
    }

    #[test]
    fn synaptic_kernels_integrate_to_weight() {
        // discrete sum: w (dt/tau) / (1 - e^{-dt/tau})
        let disc = |dt: f64, tau: f64| (dt / tau) / (1.0 - (-dt / tau).exp());
        let (f, s, r) = kernel_integrals(1.0, 0.3);
        assert!((f / (0.3 * disc(1.0, 1.0)) - 1.0).abs() < 1e-4, "fast {f}");
        assert!((s / (0.6 * disc(1.0, 70.0)) - 1.0).abs() < 1e-4, "slow {s}");
        assert!((r / disc(1.0, 70.0) - 1.0).abs() < 1e-4, "r {r}");
        // continuum limit: dt = 0.01 ms -> the integrals are the weights (and 1)
        let (f, s, r) = kernel_integrals(0.01, 0.3);
        assert!((f - 0.3).abs() < 0.003, "fast {f}");
        assert!((s - 0.6).abs() < 0.003, "slow {s}");
        assert!((r - 1.0).abs() < 0.003, "r {r}");
    }

    fn job_run(
        net: &Network,
        pert: &Perturbation,
        seed: u64,
        instances: std::ops::Range<u32>,
        inputs: &[Vec<f32>],
        steps: usize,
        record: Record,
    ) -> EnsembleOutput {
        CpuEngine
            .simulate(&EnsembleJob {
                net,
                perturbation: pert,
                seed,
                instances,
                inputs,
                trial_offset: 0,
                steps,
                record,
            })
            .unwrap()
    }

    fn drive_net(n: usize) -> (Network, Vec<Vec<f32>>) {
        let p = SnnParams {
            n,
            ..Default::default()
        };
        let net = test_net(p, 8, 2, 2, 5);
        let inputs = (0..3).map(|s| smooth_input(300, 2, 1.0, s)).collect();
        (net, inputs)
    }

    const ALL: Record = Record {
        x: true,
        spikes: true,
        v: true,
    };

    #[test]
    fn network_spikes_and_is_deterministic() {
        let (net, inputs) = drive_net(60);
        let pert = Perturbation {
            mismatch: 0.2,
            noise: 0.01,
            ..Default::default()
        };
        let a = job_run(&net, &pert, 3, 0..3, &inputs, 300, ALL);
        let b = job_run(&net, &pert, 3, 0..3, &inputs, 300, ALL);
        assert_eq!(a, b);
        let total: u32 = a.trials[0][0].spike_counts.iter().sum();
        assert!(total > 20, "network should spike, got {total}");
        let c = job_run(&net, &pert, 4, 0..3, &inputs, 300, ALL);
        assert_ne!(a.trials[0][0].y, c.trials[0][0].y);
        assert_ne!(a.trials[0][0].y, a.trials[1][0].y);
        assert_eq!(a.neuron_steps, 3 * 3 * 60 * 300);
        assert!(a.synaptic_events > 0);
        // a sub-range reproduces the same instances
        let d = job_run(&net, &pert, 3, 1..2, &inputs, 300, ALL);
        assert_eq!(d.trials[0], a.trials[1]);
    }

    /// Dense, non-event-driven reference of the nominal network (independent code path).
    fn naive_nominal(
        net: &Network,
        input: &[f32],
        steps: usize,
        v0: &[f32],
    ) -> (Vec<f32>, Vec<(u32, u32)>) {
        let (n, nc, cin) = (net.n, net.nc, net.n_in);
        let p = &net.params;
        let dt = 1e-3f32;
        let (tm, tf, ts, to) = (0.05f32, 0.001f32, 0.07f32, 0.07f32);
        let proj = net.input_projection();
        let mut v = v0.to_vec();
        let (mut i_f, mut i_s, mut r) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        let mut xs = vec![0f32; steps * nc];
        let mut spikes = vec![];
        for t in 0..steps {
            let mut s = vec![0f32; n];
            for i in 0..n {
                let u: f32 = (0..cin)
                    .map(|ch| proj[i * cin + ch] * input[t * cin + ch])
                    .sum();
                let cur = i_s[i] + i_f[i] + u + p.bias;
                v[i] += dt / tm * (p.v_rest - v[i] + cur);
                if v[i] >= p.v_th {
                    s[i] = 1.0;
                    v[i] = p.v_reset;
                    spikes.push((t as u32, i as u32));
                }
            }
            let (nf, ns): (Vec<f32>, Vec<f32>) = (0..n)
                .map(|i| {
                    let wf: f32 = (0..n).map(|j| net.w_fast[i * n + j] * s[j]).sum();
                    let ws: f32 = (0..n).map(|j| net.w_slow[j * n + i] * s[j]).sum();
                    (
                        i_f[i] * (-dt / tf).exp() + wf / tf,
                        i_s[i] * (-dt / ts).exp() + ws / ts,
                    )
                })
                .unzip();
            i_f = nf;
            i_s = ns;
            for i in 0..n {
                r[i] = r[i] * (-dt / to).exp() + s[i] / to;
            }
            for k in 0..nc {
                xs[t * nc + k] = (0..n).map(|i| net.d[k * n + i] * r[i]).sum();
            }
        }
        (xs, spikes)
    }

    #[test]
    fn zero_sigma_equals_nominal_and_dense_reference() {
        let (mut net, inputs) = drive_net(40);
        // a nonzero W_slow so the slow path is exercised
        let mut rng = StdRng::seed_from_u64(9);
        for pre in 0..40 {
            for post in 0..40 {
                if pre != post {
                    net.w_slow[pre * 40 + post] = rng.random_range(-0.01..0.01);
                }
            }
        }
        let nominal = job_run(&net, &Perturbation::default(), 8, 0..2, &inputs, 300, ALL);
        for mode in [MismatchMode::Paper, MismatchMode::Full] {
            let z = Perturbation {
                mismatch: 0.0,
                mode,
                ..Default::default()
            };
            assert_eq!(job_run(&net, &z, 8, 0..2, &inputs, 300, ALL), nominal);
        }
        let inst = Instance::draw(&net, &Perturbation::default(), 8, 1);
        let mut v0 = vec![0f32; 40];
        inst.initial_v(0.0, 2, &mut v0);
        let (xs, spikes) = naive_nominal(&net, &inputs[2], 300, &v0);
        let out = &nominal.trials[1][2];
        assert!(spikes.len() > 20);
        assert_eq!(out.spikes.as_ref().unwrap(), &spikes);
        for (a, b) in out.x.as_ref().unwrap().iter().zip(&xs) {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    /// x~ recomputed densely from the recorded spikes: r_i(t) = r_i(t-1) e^{-dt/tau_i} + s/tau_i.
    fn dense_from_spikes(inst: &Instance, out: &TrialOutput, steps: usize) -> Vec<f32> {
        let (n, nc) = (inst.n, inst.nc);
        let mut r = vec![0f64; n];
        let mut xs = vec![0f32; steps * nc];
        let sp = out.spikes.as_ref().unwrap();
        let mut idx = 0;
        for t in 0..steps {
            for (ri, &tau) in r.iter_mut().zip(&inst.tau_out) {
                *ri *= (-1e-3 / tau as f64).exp();
            }
            while idx < sp.len() && sp[idx].0 as usize == t {
                let i = sp[idx].1 as usize;
                r[i] += 1.0 / inst.tau_out[i] as f64;
                idx += 1;
            }
            for k in 0..nc {
                xs[t * nc + k] =
                    (0..n).map(|i| inst.d[k * n + i] as f64 * r[i]).sum::<f64>() as f32;
            }
        }
        xs
    }

    #[test]
    fn event_driven_readout_equals_dense() {
        let (net, inputs) = drive_net(50);
        for mode in [MismatchMode::Paper, MismatchMode::Full] {
            let pert = Perturbation {
                mismatch: 0.2,
                mode,
                ..Default::default()
            };
            let out = job_run(&net, &pert, 21, 3..4, &inputs[..1], 300, ALL);
            let inst = Instance::draw(&net, &pert, 21, 3);
            assert_eq!(
                NeuronConsts::from_instance(&net, &inst)
                    .shared_out
                    .is_some(),
                mode == MismatchMode::Paper
            );
            let o = &out.trials[0][0];
            assert!(o.spikes.as_ref().unwrap().len() > 20);
            let xs = dense_from_spikes(&inst, o, 300);
            let scale = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
            for (a, b) in o.x.as_ref().unwrap().iter().zip(&xs) {
                assert!((a - b).abs() < 1e-4 * scale, "{mode:?}: {a} vs {b}");
            }
            // y = W_outᵀ x
            let x = o.x.as_ref().unwrap();
            for t in [10, 150, 299] {
                for oi in 0..2 {
                    let want: f32 = (0..8)
                        .map(|k| x[t * 8 + k] * net.w_out_teacher[k * 2 + oi])
                        .sum();
                    assert!((o.y[t * 2 + oi] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn silenced_neurons_never_spike() {
        let (net, inputs) = drive_net(50);
        let pert = Perturbation {
            silence: 0.4,
            ..Default::default()
        };
        let out = job_run(&net, &pert, 5, 0..3, &inputs, 300, ALL);
        for (k, per) in out.trials.iter().enumerate() {
            let inst = Instance::draw(&net, &pert, 5, k as u32);
            let sil = inst.silenced_indices();
            assert_eq!(sil.len(), 20);
            for o in per {
                for &i in &sil {
                    assert_eq!(o.spike_counts[i as usize], 0);
                    let v = o.v.as_ref().unwrap();
                    assert!((0..300).all(|t| v[t * 50 + i as usize] == 0.0));
                }
                let active: u32 = o.spike_counts.iter().sum();
                assert!(active > 10, "the others still spike");
            }
        }
    }

    #[test]
    fn membrane_noise_has_requested_std() {
        let p = SnnParams {
            n: 200,
            tau_mem_ms: 1e9,
            use_fast: false,
            ..Default::default()
        };
        let net = test_net(p, 4, 1, 1, 3);
        let steps = 200;
        let inputs = vec![vec![0f32; steps]];
        for sigma in [0.01f32, 0.05] {
            let pert = Perturbation {
                noise: sigma,
                ..Default::default()
            };
            let out = job_run(&net, &pert, 2, 0..1, &inputs, steps, ALL);
            let o = &out.trials[0][0];
            let v = o.v.as_ref().unwrap();
            let spiked: std::collections::HashSet<(u32, u32)> =
                o.spikes.as_ref().unwrap().iter().copied().collect();
            let mut d = vec![];
            for t in 1..steps {
                for i in 0..200 {
                    if !spiked.contains(&(t as u32, i as u32)) {
                        d.push((v[t * 200 + i] - v[(t - 1) * 200 + i]) as f64);
                    }
                }
            }
            let m = d.iter().sum::<f64>() / d.len() as f64;
            let sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
            assert!(
                (sd / sigma as f64 - 1.0).abs() < 0.02,
                "sigma {sigma}: sd {sd}"
            );
            assert!(m.abs() < 0.02 * sigma as f64);
        }
    }

    #[test]
    fn quantised_job_and_errors() {
        let (net, inputs) = drive_net(30);
        let q = net.quantized(3);
        for m in [&q.d, &q.f, &q.w_fast, &q.w_slow] {
            let set: std::collections::HashSet<u32> = m.iter().map(|x| x.to_bits()).collect();
            assert!(set.len() <= 8);
        }
        let pert = Perturbation {
            bits: Some(3),
            ..Default::default()
        };
        let a = job_run(&net, &pert, 1, 0..1, &inputs, 300, Record::default());
        let b = job_run(
            &q,
            &Perturbation::default(),
            1,
            0..1,
            &inputs,
            300,
            Record::default(),
        );
        assert_eq!(a, b);
        // bad shapes and perturbations are errors, not panics
        let bad_in = vec![vec![0f32; 10]];
        let job = EnsembleJob {
            net: &net,
            perturbation: &Perturbation::default(),
            seed: 0,
            instances: 0..1,
            inputs: &bad_in,
            trial_offset: 0,
            steps: 300,
            record: Record::default(),
        };
        assert!(matches!(
            CpuEngine.simulate(&job),
            Err(EngineError::Shape { .. })
        ));
        let bad = Perturbation {
            silence: -0.1,
            ..Default::default()
        };
        let job = EnsembleJob {
            perturbation: &bad,
            inputs: &inputs,
            ..job
        };
        assert!(matches!(
            CpuEngine.simulate(&job),
            Err(EngineError::InvalidPerturbation(_))
        ));
    }
}
