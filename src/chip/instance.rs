//! One simulated chip instance: a nominal network plus one draw of every enabled perturbation,
//! keyed by `(seed, instance index)` through [`super::rng`] (the layout is documented there).
//!
//! Mismatch (docs/design.md §5, paper §7.1), level sigma:
//! * per neuron `tau_mem, tau_slow, V_th ~ |N(mu, (sigma mu)²)|`, computed as
//!   `|mu (1 + sigma z)|` with z from the neuron's stream (floored at `1e-3 mu` for the time
//!   constants so that no division by zero can happen);
//! * per synapse `F, D, W_slow` multiplied by `(1 + sigma z)`;
//! * `MismatchMode::Full` also perturbs `tau_fast`, `tau_out` (per neuron) and `W_fast` (per
//!   synapse); `Paper` leaves them nominal, as the paper did.
//! * extra synapse type k (`Network::extra_synapses`): per neuron tau_k with tau_slow's sigma
//!   (stream `tau_extra(k)`), per synapse factors with W_slow's sigma (stream `w_extra(k)`,
//!   procedural like W_slow's): an extra type is a slow synapse circuit like W_slow's.
//!
//! The W_slow / W_fast factors are procedural: `Instance` stores only O(N·Nc + N·C) data; the
//! factors of a row are regenerated with [`Instance::fill_factors`] (one Philox call serves 4
//! synapses).
//!
//! Quantisation is a property of the nominal weights: `Instance::draw` expects the already
//! quantised network ([`Perturbation::nominal`]); the engine does this once per job.

use serde::{Deserialize, Serialize};

use super::rng::{self, Stream};
use crate::snn::network::input_projection;
use crate::snn::{Network, QuantScope};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum MismatchMode {
    /// tau_mem, tau_slow, V_th per neuron; F, D, W_slow per synapse (the paper's protocol).
    #[default]
    Paper,
    /// Paper plus tau_fast, tau_out per neuron and W_fast per synapse.
    Full,
}

/// The perturbations of a chip ensemble. `Default` = none.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Perturbation {
    /// Relative mismatch sigma (0.05, 0.1, 0.2, 0.3 in the paper).
    pub mismatch: f32,
    pub mode: MismatchMode,
    /// Weight quantisation to this many bits (per matrix, before mismatch).
    pub bits: Option<u32>,
    /// Which matrices `bits` rounds (all of them unless told).
    #[serde(default, skip_serializing_if = "QuantScope::is_all")]
    pub quant: QuantScope,
    /// Membrane noise std per step, in units of (V_th - V_reset) (nominal values).
    pub noise: f32,
    /// Fraction of silenced neurons, held at V = 0.
    pub silence: f32,
    /// Per-parameter relative sigmas; when set they replace `mismatch` and `mode` (the
    /// DYNAP-like model of the export's re-simulation, where each circuit has its own spread).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv: Option<MismatchCv>,
}

/// Relative mismatch sigma of each parameter: per neuron for the time constants and the
/// threshold, per synapse for the matrices.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MismatchCv {
    pub tau_mem: f32,
    pub tau_slow: f32,
    pub tau_fast: f32,
    pub tau_out: f32,
    pub v_th: f32,
    /// Input synapses: the encoder F, or each element of `Network::input_override`.
    pub w_in: f32,
    /// The decoder D (0 where the readout runs on a host in floating point).
    pub d: f32,
    pub w_slow: f32,
    pub w_fast: f32,
}

impl MismatchCv {
    /// The sigmas of one `mismatch` level in `mode`.
    pub fn uniform(sigma: f32, mode: MismatchMode) -> Self {
        let full = if mode == MismatchMode::Full {
            sigma
        } else {
            0.0
        };
        MismatchCv {
            tau_mem: sigma,
            tau_slow: sigma,
            tau_fast: full,
            tau_out: full,
            v_th: sigma,
            w_in: sigma,
            d: sigma,
            w_slow: sigma,
            w_fast: full,
        }
    }

    /// Every sigma, in field order.
    fn fields_mut(&mut self) -> [&mut f32; 9] {
        [
            &mut self.tau_mem,
            &mut self.tau_slow,
            &mut self.tau_fast,
            &mut self.tau_out,
            &mut self.v_th,
            &mut self.w_in,
            &mut self.d,
            &mut self.w_slow,
            &mut self.w_fast,
        ]
    }

    /// These sigmas scaled so that the largest equals `sigma` (all zero when they all are).
    pub fn with_largest(&self, sigma: f32) -> Self {
        let mut out = *self;
        let m = out.fields_mut().into_iter().fold(0f32, |m, x| m.max(*x));
        for x in out.fields_mut() {
            *x = if m > 0.0 { *x * sigma / m } else { 0.0 };
        }
        out
    }

    /// The parameters the sensitivity table mismatches one at a time, in its order.
    pub const SENSITIVITY: [&'static str; 8] = [
        "tau_mem", "tau_slow", "v_th", "w_in", "d", "w_slow", "w_fast", "tau_fast",
    ];

    /// Only `name` (a field name) mismatched, at `sigma`; `None` for an unknown name.
    pub fn only(name: &str, sigma: f32) -> Option<Self> {
        let mut cv = MismatchCv::default();
        let slot = match name {
            "tau_mem" => &mut cv.tau_mem,
            "tau_slow" => &mut cv.tau_slow,
            "tau_fast" => &mut cv.tau_fast,
            "tau_out" => &mut cv.tau_out,
            "v_th" => &mut cv.v_th,
            "w_in" => &mut cv.w_in,
            "d" => &mut cv.d,
            "w_slow" => &mut cv.w_slow,
            "w_fast" => &mut cv.w_fast,
            _ => return None,
        };
        *slot = sigma;
        Some(cv)
    }

    fn fields(&self) -> [(&'static str, f32); 9] {
        [
            ("tau_mem", self.tau_mem),
            ("tau_slow", self.tau_slow),
            ("tau_fast", self.tau_fast),
            ("tau_out", self.tau_out),
            ("v_th", self.v_th),
            ("w_in", self.w_in),
            ("d", self.d),
            ("w_slow", self.w_slow),
            ("w_fast", self.w_fast),
        ]
    }

    /// Every sigma finite and >= 0; the message names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in self.fields() {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("cv.{name} must be >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

impl Perturbation {
    /// The nominal network this perturbation's chips start from: `net` itself, or its copy
    /// quantised to `bits` over `quant`. The engines call it once per job.
    pub fn nominal<'a>(&self, net: &'a Network) -> std::borrow::Cow<'a, Network> {
        match self.bits {
            Some(b) => std::borrow::Cow::Owned(net.quantized_scope(b, self.quant)),
            None => std::borrow::Cow::Borrowed(net),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.mismatch.is_finite() && self.mismatch >= 0.0) {
            return Err(format!("mismatch must be >= 0, got {}", self.mismatch));
        }
        if let Some(cv) = &self.cv {
            cv.validate()?;
        }
        if let Some(b) = self.bits
            && !(1..=24).contains(&b)
        {
            return Err(format!("bits must be in 1..=24, got {b}"));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(format!("noise must be >= 0, got {}", self.noise));
        }
        if !(0.0..=1.0).contains(&self.silence) {
            return Err(format!("silence must be in [0, 1], got {}", self.silence));
        }
        Ok(())
    }

    /// The sigma of every parameter: `cv` when set, else `mismatch` in `mode`.
    pub fn cvs(&self) -> MismatchCv {
        self.cv
            .unwrap_or_else(|| MismatchCv::uniform(self.mismatch.max(0.0), self.mode))
    }

    /// Number of silenced neurons: floor(silence * n) (with a 1e-4 tolerance for the f32
    /// representation of `silence`, so 0.7 * 10 gives 7).
    pub fn n_silenced(&self, n: usize) -> usize {
        ((self.silence as f64 * n as f64 + 1e-4).floor() as usize).min(n)
    }
}

/// One simulated chip. Time constants in seconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub seed: u64,
    pub index: u32,
    pub n: usize,
    pub nc: usize,
    pub n_in: usize,
    pub tau_mem: Vec<f32>,
    pub tau_slow: Vec<f32>,
    pub v_th: Vec<f32>,
    pub tau_fast: Vec<f32>,
    pub tau_out: Vec<f32>,
    /// Per extra synapse type k (`Network::extra_synapses`), tau_k of every neuron (s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tau_extra: Vec<Vec<f32>>,
    pub silenced: Vec<bool>,
    /// Folded input projection with the mismatched F, N x C (A · F_inst · W_in_teacherᵀ).
    pub input_proj: Vec<f32>,
    /// Mismatched decoder, Nc x N.
    pub d: Vec<f32>,
    /// Per-synapse relative sigma of D (the GPU regenerates D's factors from it).
    /// Sigma of the input synapses F (already folded into `input_proj`).
    #[serde(default)]
    pub w_in_sigma: f32,
    pub d_sigma: f32,
    /// Per-synapse relative sigma of W_slow (0 = nominal).
    pub w_slow_sigma: f32,
    /// Per-synapse relative sigma of W_fast (0 unless `MismatchMode::Full`).
    pub w_fast_sigma: f32,
    /// Membrane noise std per step, in voltage units.
    pub noise_std: f32,
}

#[inline]
fn perturbed(mu: f32, sigma: f32, z: f32) -> f32 {
    if sigma == 0.0 {
        mu
    } else {
        (mu * (1.0 + sigma * z)).abs()
    }
}

#[inline]
fn perturbed_tau(mu: f32, sigma: f32, z: f32) -> f32 {
    perturbed(mu, sigma, z).max(1e-3 * mu)
}

impl Instance {
    /// Draws instance `index` of `net` (already quantised if quantisation is wanted).
    /// `pert` should be validated; invalid values are clamped into range here.
    pub fn draw(net: &Network, pert: &Perturbation, seed: u64, index: u32) -> Instance {
        let (n, nc, c) = (net.n, net.nc, net.n_in);
        let p = &net.params;
        let cv = pert.cvs();
        let per_neuron = |stream: Stream, mu: f32, sig: f32, tau: bool| -> Vec<f32> {
            (0..n as u32)
                .map(|i| {
                    let z = if sig == 0.0 {
                        0.0
                    } else {
                        rng::neuron_normal(seed, index, stream, i)
                    };
                    if tau {
                        perturbed_tau(mu, sig, z)
                    } else {
                        perturbed(mu, sig, z)
                    }
                })
                .collect()
        };
        let tau_mem = per_neuron(Stream::TAU_MEM, p.tau_mem_s(), cv.tau_mem, true);
        let tau_slow = per_neuron(Stream::TAU_SLOW, p.tau_slow_ms * 1e-3, cv.tau_slow, true);
        let v_th = per_neuron(Stream::V_TH, p.v_th, cv.v_th, false);
        let tau_fast = per_neuron(Stream::TAU_FAST, p.tau_fast_ms * 1e-3, cv.tau_fast, true);
        let tau_out = per_neuron(Stream::TAU_OUT, p.tau_out_ms * 1e-3, cv.tau_out, true);
        let tau_extra = net
            .extra_synapses
            .iter()
            .enumerate()
            .map(|(k, t)| per_neuron(Stream::tau_extra(k), t.tau_ms * 1e-3, cv.tau_slow, true))
            .collect();

        // Per-synapse F (N x Nc) and D (Nc x N); a given input projection (N x C) is mismatched
        // per element instead of through F.
        let mismatched = |m: &[f32], cols: usize, stream: Stream, sigma: f32| -> Vec<f32> {
            let mut out = m.to_vec();
            if sigma > 0.0 && cols > 0 {
                let mut row = vec![0f32; cols];
                for (r, chunk) in out.chunks_mut(cols).enumerate() {
                    rng::fill_factors_row(seed, index, stream, r as u32, sigma, &mut row);
                    for (x, fac) in chunk.iter_mut().zip(&row) {
                        *x *= fac;
                    }
                }
            }
            out
        };
        let d = mismatched(&net.d, n, Stream::W_D, cv.d);
        let input_proj = match &net.input_override {
            Some(p0) => mismatched(p0, c, Stream::W_F, cv.w_in),
            None => {
                let f = mismatched(&net.f, nc, Stream::W_F, cv.w_in);
                input_projection(&f, &net.w_in_teacher, n, nc, c, p.input_amplitude())
            }
        };

        let silenced = silenced_set(seed, index, n, pert.n_silenced(n));
        Instance {
            seed,
            index,
            n,
            nc,
            n_in: c,
            tau_mem,
            tau_slow,
            v_th,
            tau_fast,
            tau_out,
            tau_extra,
            silenced,
            input_proj,
            d,
            d_sigma: cv.d,
            w_in_sigma: cv.w_in,
            w_slow_sigma: cv.w_slow,
            w_fast_sigma: cv.w_fast,
            noise_std: pert.noise.max(0.0) * (p.v_th - p.v_reset),
        }
    }

    /// This chip's encoder F (N x Nc): the nominal F times the same W_F factors that its
    /// `input_proj` was folded from (what a neuron physically receives as feedback F e).
    pub fn effective_f(&self, net: &Network) -> Vec<f32> {
        let nc = net.nc;
        let mut out = net.f.clone();
        if self.w_in_sigma > 0.0 && nc > 0 {
            let mut row = vec![0f32; nc];
            for (i, chunk) in out.chunks_mut(nc).enumerate() {
                rng::fill_factors_row(
                    self.seed,
                    self.index,
                    Stream::W_F,
                    i as u32,
                    self.w_in_sigma,
                    &mut row,
                );
                for (x, fac) in chunk.iter_mut().zip(&row) {
                    *x *= fac;
                }
            }
        }
        out
    }

    /// The mismatch sigma of the recurrent matrix whose factors come from `stream`
    /// ([`Stream::W_SLOW`], [`Stream::W_FAST`] or an extra type's [`Stream::w_extra`], which
    /// shares W_slow's sigma; 0 for any other stream).
    pub fn factor_sigma(&self, stream: Stream) -> f32 {
        if stream == Stream::W_SLOW || stream.extra_type().is_some() {
            self.w_slow_sigma
        } else if stream == Stream::W_FAST {
            self.w_fast_sigma
        } else {
            0.0
        }
    }

    /// `out[post] = 1 + sigma z(stream, pre, post)`: the mismatch factors of row `pre` (the
    /// synapses pre -> post) of the recurrent matrix `stream` (W_SLOW, W_FAST or `w_extra(k)`).
    pub fn fill_factors(&self, stream: Stream, pre: u32, out: &mut [f32]) {
        rng::fill_factors_row(
            self.seed,
            self.index,
            stream,
            pre,
            self.factor_sigma(stream),
            out,
        );
    }

    /// The effective recurrent matrix of this chip, `[pre][post]` like the nominal one, into
    /// `out` (N x N scratch): the nominal weights times the factors of `stream`.
    pub fn effective_recurrent(&self, stream: Stream, nominal: &[f32], out: &mut [f32]) {
        let n = self.n;
        let sigma = self.factor_sigma(stream);
        for pre in 0..n {
            let src = &nominal[pre * n..(pre + 1) * n];
            let dst = &mut out[pre * n..(pre + 1) * n];
            if sigma == 0.0 || src.iter().all(|&w| w == 0.0) {
                dst.copy_from_slice(src);
                continue;
            }
            self.fill_factors(stream, pre as u32, dst);
            for (o, w) in dst.iter_mut().zip(src) {
                *o *= w;
            }
        }
    }

    /// Initial membrane potentials of trial `trial`: `V_i = V_reset + u (V_th_i - V_reset)`,
    /// `u = uniform4(seed, index, INIT_V, trial, i/4)[i%4]`; silenced neurons start at 0.
    pub fn initial_v(&self, v_reset: f32, trial: u32, out: &mut [f32]) {
        initial_v(self.seed, self.index, trial, v_reset, &self.v_th, out);
        for (v, &s) in out.iter_mut().zip(&self.silenced) {
            if s {
                *v = 0.0;
            }
        }
    }

    /// Indices of the silenced neurons, ascending.
    pub fn silenced_indices(&self) -> Vec<u32> {
        (0..self.n as u32)
            .filter(|&i| self.silenced[i as usize])
            .collect()
    }
}

/// `V_i = v_reset + u_i (v_th_i - v_reset)`, `u_i = uniform4(seed, instance, INIT_V, trial, i/4)[i%4]`.
pub fn initial_v(
    seed: u64,
    instance: u32,
    trial: u32,
    v_reset: f32,
    v_th: &[f32],
    out: &mut [f32],
) {
    for (q, chunk) in out.chunks_mut(4).enumerate() {
        let u = rng::uniform4(seed, instance, Stream::INIT_V, trial, q as u32);
        for (l, v) in chunk.iter_mut().enumerate() {
            let i = 4 * q + l;
            *v = v_reset + u[l] * (v_th[i] - v_reset);
        }
    }
}

/// The `k` neurons with the smallest raw draws `draws(seed, index, SILENCE, i/4, 0)[i%4]`
/// (ties by index).
pub fn silenced_set(seed: u64, index: u32, n: usize, k: usize) -> Vec<bool> {
    let mut mask = vec![false; n];
    if k == 0 {
        return mask;
    }
    let mut keyed: Vec<(u32, u32)> = (0..n as u32)
        .map(|i| {
            (
                rng::draws(seed, index, Stream::SILENCE, i / 4, 0)[(i % 4) as usize],
                i,
            )
        })
        .collect();
    keyed.sort_unstable();
    for &(_, i) in &keyed[..k] {
        mask[i as usize] = true;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snn::SnnParams;

    fn net(n: usize) -> Network {
        let p = SnnParams {
            n,
            ..Default::default()
        };
        Network::init(p, vec![1.0; 8], vec![1.0; 8], 8, 1, 1, 3).unwrap()
    }

    fn mean_cv(v: &[f32]) -> (f64, f64) {
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        (m, var.sqrt() / m)
    }

    #[test]
    fn mismatch_statistics_and_reproducibility() {
        let net = net(100);
        let pert = Perturbation {
            mismatch: 0.2,
            ..Default::default()
        };
        let insts: Vec<Instance> = (0..300)
            .map(|k| Instance::draw(&net, &pert, 11, k))
            .collect();
        let all = |f: &dyn Fn(&Instance) -> &Vec<f32>| -> Vec<f32> {
            insts.iter().flat_map(|i| f(i).iter().copied()).collect()
        };
        for (name, v, mu) in [
            ("tau_mem", all(&|i| &i.tau_mem), 0.05),
            ("tau_slow", all(&|i| &i.tau_slow), 0.07),
            ("v_th", all(&|i| &i.v_th), 1.0),
        ] {
            let (m, cv) = mean_cv(&v);
            assert!((m / mu - 1.0).abs() < 0.01, "{name} mean {m}");
            assert!((cv / 0.2 - 1.0).abs() < 0.03, "{name} cv {cv}");
        }
        // Paper mode: tau_fast / tau_out nominal
        assert!(insts[0].tau_out.iter().all(|&t| t == 0.07f32));
        assert!(insts[0].tau_fast.iter().all(|&t| t == 0.001f32));
        // per-synapse factors: D relative deviations
        let rel: Vec<f32> = insts
            .iter()
            .flat_map(|i| i.d.iter().zip(&net.d).map(|(a, b)| a / b))
            .collect();
        let (m, cv) = mean_cv(&rel);
        assert!(
            (m - 1.0).abs() < 0.005 && (cv / 0.2 - 1.0).abs() < 0.03,
            "D {m} {cv}"
        );
        let mut row = vec![0f32; 100];
        let facs: Vec<f32> = insts
            .iter()
            .flat_map(|i| {
                i.fill_factors(Stream::W_SLOW, 5, &mut row);
                row.clone()
            })
            .collect();
        let (m, cv) = mean_cv(&facs);
        assert!(
            (m - 1.0).abs() < 0.005 && (cv / 0.2 - 1.0).abs() < 0.03,
            "Wslow {m} {cv}"
        );
        // identical when drawn twice, different across instances
        assert_eq!(Instance::draw(&net, &pert, 11, 7), insts[7]);
        assert_ne!(insts[7].tau_mem, insts[8].tau_mem);
        // Full mode perturbs tau_out and W_fast
        let full = Perturbation {
            mode: MismatchMode::Full,
            ..pert.clone()
        };
        let fi = Instance::draw(&net, &full, 11, 7);
        assert_eq!(fi.tau_mem, insts[7].tau_mem);
        let (_, cv) = mean_cv(&fi.tau_out);
        assert!(cv > 0.1);
        assert_eq!(fi.w_fast_sigma, 0.2);
    }

    #[test]
    fn zero_sigma_is_nominal() {
        let net = net(20);
        let inst = Instance::draw(&net, &Perturbation::default(), 1, 0);
        assert!(inst.tau_mem.iter().all(|&t| t == 0.05f32));
        assert!(inst.v_th.iter().all(|&t| t == 1.0));
        assert_eq!(inst.d, net.d);
        assert_eq!(inst.input_proj, net.input_projection());
        assert!(inst.silenced.iter().all(|&s| !s));
    }

    #[test]
    fn a_cv_shape_scales_to_its_largest_sigma() {
        let shape = MismatchCv {
            tau_mem: 0.2,
            w_fast: 0.3,
            ..MismatchCv::default()
        };
        let c = shape.with_largest(0.15);
        assert!((c.w_fast - 0.15).abs() < 1e-7 && (c.tau_mem - 0.1).abs() < 1e-7);
        assert_eq!((c.v_th, c.d), (0.0, 0.0));
        assert_eq!(
            MismatchCv::default().with_largest(0.2),
            MismatchCv::default()
        );
    }

    #[test]
    fn silencing_count_and_set() {
        let n = 37;
        for &(p, want) in &[(0.4f32, 14usize), (0.7, 25), (0.0, 0), (1.0, 37)] {
            let pert = Perturbation {
                silence: p,
                ..Default::default()
            };
            assert_eq!(pert.n_silenced(n), want);
            let inst = Instance::draw(&net(n), &pert, 9, 4);
            assert_eq!(inst.silenced.iter().filter(|&&s| s).count(), want);
            // the silenced ones are exactly those with the smallest draws
            let mut u: Vec<(u32, usize)> = (0..n)
                .map(|i| {
                    (
                        rng::draws(9, 4, Stream::SILENCE, (i / 4) as u32, 0)[i % 4],
                        i,
                    )
                })
                .collect();
            u.sort();
            for (rank, &(_, i)) in u.iter().enumerate() {
                assert_eq!(inst.silenced[i], rank < want);
            }
        }
        assert_eq!(
            Perturbation {
                silence: 0.1,
                ..Default::default()
            }
            .n_silenced(10),
            1
        );
    }

    #[test]
    fn perturbation_validation() {
        assert!(Perturbation::default().validate().is_ok());
        let bad = Perturbation {
            silence: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("silence"));
        let bad = Perturbation {
            bits: Some(0),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("bits"));
    }

    #[test]
    fn uniform_cv_draws_exactly_what_the_mismatch_level_draws() {
        let net = net(40);
        for mode in [MismatchMode::Paper, MismatchMode::Full] {
            let level = Perturbation {
                mismatch: 0.15,
                mode,
                ..Default::default()
            };
            let cv = Perturbation {
                cv: Some(MismatchCv::uniform(0.15, mode)),
                ..Default::default()
            };
            assert_eq!(
                Instance::draw(&net, &level, 4, 9),
                Instance::draw(&net, &cv, 4, 9)
            );
        }
    }

    #[test]
    fn per_parameter_cv_perturbs_only_its_parameter() {
        let net = net(40);
        let nominal = Instance::draw(&net, &Perturbation::default(), 4, 2);
        let only = |cv: MismatchCv| {
            Instance::draw(
                &net,
                &Perturbation {
                    cv: Some(cv),
                    ..Default::default()
                },
                4,
                2,
            )
        };
        let a = only(MismatchCv {
            tau_mem: 0.3,
            ..Default::default()
        });
        assert_ne!(a.tau_mem, nominal.tau_mem);
        assert_eq!(
            (&a.tau_slow, &a.v_th, &a.d, &a.input_proj),
            (
                &nominal.tau_slow,
                &nominal.v_th,
                &nominal.d,
                &nominal.input_proj
            )
        );
        assert_eq!((a.w_slow_sigma, a.w_fast_sigma, a.d_sigma), (0.0, 0.0, 0.0));
        // The same draw of tau_mem as a plain 0.3 level: one stream per parameter.
        let level = Instance::draw(
            &net,
            &Perturbation {
                mismatch: 0.3,
                ..Default::default()
            },
            4,
            2,
        );
        assert_eq!(a.tau_mem, level.tau_mem);
        let b = only(MismatchCv {
            w_in: 0.2,
            w_slow: 0.1,
            ..Default::default()
        });
        assert_eq!(b.d, nominal.d, "the decoder stays nominal when cv.d = 0");
        assert_ne!(b.input_proj, nominal.input_proj);
        assert_eq!((b.w_slow_sigma, b.d_sigma), (0.1, 0.0));
    }

    #[test]
    fn an_input_override_is_used_as_given_and_mismatched_per_element() {
        let mut net = net(12);
        let c = net.n_in;
        let p: Vec<f32> = (0..12 * c).map(|k| 0.5 + k as f32).collect();
        net.input_override = Some(p.clone());
        let nominal = Instance::draw(&net, &Perturbation::default(), 8, 1);
        assert_eq!(nominal.input_proj, p);
        let pert = Perturbation {
            cv: Some(MismatchCv {
                w_in: 0.25,
                ..Default::default()
            }),
            ..Default::default()
        };
        let inst = Instance::draw(&net, &pert, 8, 1);
        let mut fac = vec![0f32; c];
        for i in 0..12 {
            // p (1 + sigma z) with z from input synapse (i, ch)'s own normal.
            rng::fill_factors_row(8, 1, Stream::W_F, i as u32, 0.25, &mut fac);
            for ch in 0..c {
                assert_eq!(inst.input_proj[i * c + ch], p[i * c + ch] * fac[ch]);
            }
        }
        // F plays no part any more.
        net.f.iter_mut().for_each(|x| *x *= 3.0);
        assert_eq!(
            Instance::draw(&net, &pert, 8, 1).input_proj,
            inst.input_proj
        );
    }

    #[test]
    fn extra_synapse_types_draw_their_own_streams_and_leave_the_rest_unchanged() {
        let plain = net(100);
        let w: Vec<f32> = (0..100 * 100).map(|k| 0.001 * (k % 13) as f32).collect();
        let typed = plain
            .clone()
            .with_synapse_type(40.0, w.clone())
            .unwrap()
            .with_synapse_type(300.0, w)
            .unwrap();
        let pert = Perturbation {
            mismatch: 0.2,
            ..Default::default()
        };
        let insts: Vec<Instance> = (0..200)
            .map(|k| Instance::draw(&typed, &pert, 11, k))
            .collect();
        for (k, tau_ms) in [(0usize, 40f32), (1, 300.0)] {
            let mu = tau_ms as f64 * 1e-3;
            let v: Vec<f32> = insts
                .iter()
                .flat_map(|i| i.tau_extra[k].iter().copied())
                .collect();
            let (m, cv) = mean_cv(&v);
            assert!((m / mu - 1.0).abs() < 0.01, "type {k} mean {m}");
            assert!((cv / 0.2 - 1.0).abs() < 0.03, "type {k} cv {cv}");
            // tau_k of neuron i is |mu (1 + 0.2 z)| with z from stream tau_extra(k)
            let z = rng::neuron_normal(11, 3, Stream::tau_extra(k), 7);
            assert_eq!(
                insts[3].tau_extra[k][7],
                perturbed_tau(tau_ms * 1e-3, 0.2, z)
            );
        }
        // the two types draw different taus, and neither is tau_slow's draw
        assert_ne!(insts[0].tau_extra[0], insts[0].tau_extra[1]);
        let scaled: Vec<f32> = insts[0].tau_slow.iter().map(|t| t * 0.04 / 0.07).collect();
        assert_ne!(insts[0].tau_extra[0], scaled);
        // the synapse factors: W_slow's sigma, the type's own stream
        let inst = &insts[5];
        assert_eq!(inst.factor_sigma(Stream::w_extra(1)), inst.w_slow_sigma);
        let (mut a, mut b) = (vec![0f32; 100], vec![0f32; 100]);
        inst.fill_factors(Stream::w_extra(1), 4, &mut a);
        rng::fill_factors_row(11, 5, Stream(19), 4, 0.2, &mut b);
        assert_eq!(a, b);
        inst.fill_factors(Stream::W_SLOW, 4, &mut b);
        assert_ne!(a, b);
        // every other draw is the one of the same network without the types
        let mut without = Instance::draw(&typed, &pert, 11, 5);
        without.tau_extra.clear();
        assert_eq!(without, Instance::draw(&plain, &pert, 11, 5));
        // no mismatch: the nominal tau of each type
        let nominal = Instance::draw(&typed, &Perturbation::default(), 11, 5);
        assert!(nominal.tau_extra[1].iter().all(|&t| t == 300f32 * 1e-3));
    }
}
