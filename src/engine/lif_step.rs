//! The neuron model, once: per-neuron constants, the weights a step reads, the state, and [`step`],
//! a pure function of (constants, weights, input, state) -> (state, spikes). The CPU engine and the
//! trainer call it; `shaders/lif_step.wgsl` is its WGSL twin, with the same names.
//!
//! # Units
//! Every `1/tau` factor and every decay `exp(-dt/tau)` uses seconds (dt = 0.001 s by default),
//! exactly like the paper's reference code: a spike adds `W / tau` (e.g. `W / 0.07`) to a
//! synaptic current, so the current's time integral (sum · dt) is W.
//!
//! # Step order ([`step`] / [`step_with_types`]), per neuron i
//! 1. `I = I_slow + I_fast + I_fb + sum_k I_k + P c(t) + b` (P = folded input projection,
//!    N x C; I_k the currents of the extra synapse types, k ascending, added in that order)
//! 2. `V += dt/tau_mem_i (V_rest - V + I)`; `I_fast *= e^{-dt/tau_fast_i}`,
//!    `I_slow *= e^{-dt/tau_slow_i}`, `I_k *= e^{-dt/tau_k,i}`, `r *= e^{-dt/tau_out_i}`
//!    (old values used in 1.)
//! 3. `V += noise_std z` (membrane noise, key `(NOISE, trial, t ceil(N/4) + i/4)`, lane i%4)
//! 4. silenced neurons: `V = 0` (and they never spike)
//! 5. `s_i = V_i >= V_th_i + beta a_i`; `V_i = V_reset`, `r_i += 1/tau_out_i` where s_i; then
//!    `a_i = rho a_i + s_i` (spike-frequency adaptation; skipped when beta = 0)
//! 6. event-driven propagation, for each spiking pre j (ascending):
//!    `I_fast[i] += W_fast[j][i] / tau_fast_i`, `I_slow[i] += W_slow[j][i] / tau_slow_i`,
//!    `I_k[i] += W_k[j][i] / tau_k,i` for every extra type k
//!    (every recurrent matrix is pre-major, `[pre][post]`: a spike of j adds row j)
//! 7. readout: if tau_out is shared, `x~ = x~ e^{-dt/tau_out} + sum_j D[:, j] / tau_out`
//!    (per spike); otherwise `x~ = D r` (dense). The task output `y~ = W_out_teacherᵀ x~` is
//!    computed by the caller.

use crate::chip::Instance;
use crate::chip::rng::{self, Stream};
use crate::snn::Network;

/// Step 6 for one spike and one synapse type: `current[i] += row[i] / tau_i`, with `row` the
/// spiking neuron's row `W[j][:]` and `inv_tau` the post-synaptic 1/tau. Every propagation of a
/// spike through a matrix (the step's, and the learning rule's when it supplies W_slow's rows
/// itself) goes through here, so they round alike.
#[inline]
pub fn add_spike_row(current: &mut [f32], row: &[f32], inv_tau: &[f32]) {
    for ((acc, &wv), &it) in current.iter_mut().zip(row).zip(inv_tau) {
        *acc += wv * it;
    }
}

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
    /// Per extra synapse type k, `e^{-dt/tau_k,i}` and `1/tau_k,i` of every neuron (empty
    /// without extra types).
    pub decay_extra: Vec<Vec<f32>>,
    pub inv_tau_extra: Vec<Vec<f32>>,
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
    /// Spike-frequency adaptation: threshold `V_th + adapt_beta a`, `a <- adapt_rho a + s`.
    pub adapt_beta: f32,
    pub adapt_rho: f32,
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
            decay_extra: Vec::new(),
            inv_tau_extra: Vec::new(),
            shared_out,
            v_rest: p.v_rest,
            v_reset: p.v_reset,
            bias: p.bias,
            noise_std,
            silenced: silenced_idx,
            adapt_beta: p.adapt_beta,
            adapt_rho: p.adapt_rho,
        }
    }

    /// These constants with extra synapse types of per-neuron time constants `taus[k]` (in
    /// seconds, N each), decays and inverses computed as for tau_slow.
    pub fn with_extra_taus(mut self, dt_s: f32, taus: &[Vec<f32>]) -> Self {
        self.decay_extra = taus
            .iter()
            .map(|t| t.iter().map(|&t| (-dt_s / t).exp()).collect())
            .collect();
        self.inv_tau_extra = taus
            .iter()
            .map(|t| t.iter().map(|&t| 1.0 / t).collect())
            .collect();
        self
    }

    /// The nominal network: no mismatch, no noise, nothing silenced.
    pub fn nominal(net: &Network) -> Self {
        let p = &net.params;
        let n = net.n;
        let c = |ms: f32| vec![ms * 1e-3; n];
        let extra: Vec<Vec<f32>> = net.extra_synapses.iter().map(|t| c(t.tau_ms)).collect();
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
        .with_extra_taus(p.dt_s(), &extra)
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
        .with_extra_taus(net.params.dt_s(), &inst.tau_extra)
    }
}

/// The weights one step reads. `None` = an all-zero matrix (skipped).
#[derive(Clone, Copy)]
pub struct StepWeights<'a> {
    /// W_fast, `[pre][post]` (N x N), as the network stores it.
    pub w_fast: Option<&'a [f32]>,
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
    /// Currents of the extra synapse types (one N vector per type; sized by the first step).
    pub i_extra: Vec<Vec<f32>>,
    /// Error feedback current (training only; zero otherwise).
    pub i_fb: Vec<f32>,
    /// Filtered spike trains r (1/s).
    pub r: Vec<f32>,
    /// Adaptation variable a (spike-frequency adaptation; stays 0 when beta = 0).
    pub adapt: Vec<f32>,
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
            i_extra: Vec::new(),
            i_fb: vec![0.0; n],
            r: vec![0.0; n],
            adapt: vec![0.0; n],
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
            &mut self.adapt,
            &mut self.x_hat,
        ] {
            x.iter_mut().for_each(|v| *v = 0.0);
        }
        for x in &mut self.i_extra {
            x.iter_mut().for_each(|v| *v = 0.0);
        }
        self.spikes.clear();
    }
}

/// One Euler step (see the module docs for the order). `input_t` has C entries; `t` is the
/// step index (keys the noise); `noise` is used when `c.noise_std > 0`. A network with extra
/// synapse types steps with [`step_with_types`]; here their matrices are taken as zero.
pub fn step(
    c: &NeuronConsts,
    w: &StepWeights,
    st: &mut State,
    input_t: &[f32],
    t: u32,
    noise: Option<&NoiseKey>,
) {
    step_with_types(c, w, &[], st, input_t, t, noise);
}

/// [`step`] with the matrices of the extra synapse types: `extra[k]` is type k's `[pre][post]`
/// matrix (N x N), `None` (or absent) for an all-zero one. The types themselves (their decays
/// and `1/tau`) are `c.decay_extra` / `c.inv_tau_extra`; `st.i_extra` is sized to them.
pub fn step_with_types(
    c: &NeuronConsts,
    w: &StepWeights,
    extra: &[Option<&[f32]>],
    st: &mut State,
    input_t: &[f32],
    t: u32,
    noise: Option<&NoiseKey>,
) {
    let n = c.n;
    let kx = c.decay_extra.len();
    if st.i_extra.len() != kx {
        st.i_extra.resize_with(kx, || vec![0.0; n]);
    }
    // 1. input current (without the bias, added below): I_slow + I_fast + I_fb, then each
    // extra type's current in ascending k (the WGSL twin adds them in the same order)
    for ((cur, (a, b)), f) in st
        .cur
        .iter_mut()
        .zip(st.i_slow.iter().zip(&st.i_fast))
        .zip(&st.i_fb)
    {
        *cur = a + b + f;
    }
    for ik in &st.i_extra {
        for (cur, &x) in st.cur.iter_mut().zip(ik) {
            *cur += x;
        }
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
    for (ik, dk) in st.i_extra.iter_mut().zip(&c.decay_extra) {
        for (x, &d) in ik.iter_mut().zip(dk) {
            *x *= d;
        }
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
    // 5. threshold and reset (then the adaptation, only when it is on: beta = 0 is the plain
    // step exactly)
    st.spikes.clear();
    let beta = c.adapt_beta;
    for i in 0..n {
        let th = if beta != 0.0 {
            c.v_th[i] + beta * st.adapt[i]
        } else {
            c.v_th[i]
        };
        let spiked = st.v[i] >= th;
        if spiked {
            st.v[i] = c.v_reset;
            st.r[i] += c.inv_tau_out[i];
            st.spikes.push(i as u32);
        }
        if beta != 0.0 {
            st.adapt[i] = c.adapt_rho * st.adapt[i] + if spiked { 1.0 } else { 0.0 };
        }
    }
    // 6. event-driven propagation
    for &j in &st.spikes {
        let j = j as usize;
        if let Some(wf) = w.w_fast {
            add_spike_row(&mut st.i_fast, &wf[j * n..(j + 1) * n], &c.inv_tau_fast);
        }
        if let Some(ws) = w.w_slow {
            add_spike_row(&mut st.i_slow, &ws[j * n..(j + 1) * n], &c.inv_tau_slow);
        }
        for ((ik, wk), inv) in st.i_extra.iter_mut().zip(extra).zip(&c.inv_tau_extra) {
            if let Some(wk) = wk {
                add_spike_row(ik, &wk[j * n..(j + 1) * n], inv);
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
