//! The (trained or fresh) nominal Network ADS.

use serde::{Deserialize, Serialize};

use super::error::SnnError;
use super::init::init_weights;
use super::params::SnnParams;
use super::quantize::{QuantScope, quantize};
use super::synapse::{MAX_EXTRA_SYNAPSE_TYPES, SynapseType, validate_types};

/// A nominal Network ADS. All matrices row-major f32.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Network {
    pub params: SnnParams,
    /// Spiking neurons N (= params.n).
    pub n: usize,
    /// Teacher hidden size Nc.
    pub nc: usize,
    /// Input channels C.
    pub n_in: usize,
    /// Task outputs.
    pub n_out: usize,
    /// Decoder D, Nc x N: x~ = D r.
    pub d: Vec<f32>,
    /// Encoder F, N x Nc (= Dᵀ at init; mismatched independently of D on a chip).
    pub f: Vec<f32>,
    /// Fast weights, N x N, `[pre][post]` like W_slow: a spike of j adds row j / tau_fast to I_fast.
    pub w_fast: Vec<f32>,
    /// Slow weights, N x N, `[pre][post]`: I_slow += W_slowᵀ · s / tau_slow. The learned matrix.
    pub w_slow: Vec<f32>,
    /// Teacher input weights, C x Nc: the teacher's input current is W_in_teacherᵀ c.
    pub w_in_teacher: Vec<f32>,
    /// Teacher readout, Nc x n_out: y~ = W_out_teacherᵀ x~.
    pub w_out_teacher: Vec<f32>,
    /// An input projection N x C used as given instead of A · F · W_in_teacherᵀ. A deployed
    /// network (DYNAP-SE1 export) has integer-count input synapses that no F reproduces; on a
    /// chip instance its elements are mismatched one by one, as physical input synapses are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_override: Option<Vec<f32>>,
    /// How the network was trained; says whether D decodes the teacher (`nc` = the teacher's
    /// Nc) or reads the task output directly (`nc` = n_out, W_out_teacher = I).
    #[serde(default)]
    pub method: super::Method,
    /// Synapse types beyond W_fast and W_slow (at most [`MAX_EXTRA_SYNAPSE_TYPES`]), each its own
    /// time constant and `[pre][post]` matrix; their currents enter the membrane like I_slow
    /// (see [`super::synapse`]). Empty for Network ADS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_synapses: Vec<SynapseType>,
}

impl Network {
    /// A fresh network per docs/design.md §2 (see [`super::init`]); W_slow = 0.
    pub fn init(
        params: SnnParams,
        w_in_teacher: Vec<f32>,
        w_out_teacher: Vec<f32>,
        nc: usize,
        n_in: usize,
        n_out: usize,
        seed: u64,
    ) -> Result<Network, SnnError> {
        params.validate().map_err(SnnError::InvalidParams)?;
        if nc == 0 {
            return Err(SnnError::InvalidParams("nc must be > 0, got 0".into()));
        }
        let n = params.n;
        let iw = init_weights(&params, nc, seed);
        let net = Network {
            params,
            n,
            nc,
            n_in,
            n_out,
            d: iw.d,
            f: iw.f,
            w_fast: iw.w_fast,
            w_slow: vec![0.0; n * n],
            w_in_teacher,
            w_out_teacher,
            input_override: None,
            method: super::Method::Ads,
            extra_synapses: Vec::new(),
        };
        net.validate_shapes()?;
        Ok(net)
    }

    /// A network whose readout gives the task output directly (BPTT, reservoir): D is
    /// `readout` (n_out x N), W_out_teacher the identity, the input projection `input_proj`
    /// (N x C), the recurrence `w_rec` (`[pre][post]`) on the slow synapse type; W_fast = 0.
    pub fn direct(
        params: SnnParams,
        method: super::Method,
        n_in: usize,
        n_out: usize,
        input_proj: Vec<f32>,
        w_rec: Vec<f32>,
        readout: Vec<f32>,
    ) -> Result<Network, SnnError> {
        params.validate().map_err(SnnError::InvalidParams)?;
        let n = params.n;
        let mut eye = vec![0f32; n_out * n_out];
        for o in 0..n_out {
            eye[o * n_out + o] = 1.0;
        }
        let net = Network {
            params,
            n,
            nc: n_out,
            n_in,
            n_out,
            d: readout,
            f: vec![0.0; n * n_out],
            w_fast: vec![0.0; n * n],
            w_slow: w_rec,
            w_in_teacher: vec![0.0; n_in * n_out],
            w_out_teacher: eye,
            input_override: Some(input_proj),
            method,
            extra_synapses: Vec::new(),
        };
        net.validate_shapes()?;
        Ok(net)
    }

    /// This network with one more synapse type: time constant `tau_ms` and the N x N matrix `w`
    /// (`[pre][post]`). Refuses a time constant that is not finite and > 0, a matrix of the wrong
    /// size and a type beyond [`MAX_EXTRA_SYNAPSE_TYPES`].
    pub fn with_synapse_type(mut self, tau_ms: f32, w: Vec<f32>) -> Result<Self, SnnError> {
        if self.extra_synapses.len() >= MAX_EXTRA_SYNAPSE_TYPES {
            return Err(SnnError::InvalidParams(format!(
                "too many synapse types: a network has at most {MAX_EXTRA_SYNAPSE_TYPES} beyond \
                 W_fast and W_slow"
            )));
        }
        let t = SynapseType { tau_ms, w };
        t.validate(self.extra_synapses.len(), self.n)?;
        self.extra_synapses.push(t);
        Ok(self)
    }

    /// Refuses a network with synapse types beyond W_fast and W_slow, for `what` (a trainer or
    /// a mapping that knows only those two), with a message that says so.
    pub fn require_two_synapse_types(&self, what: &str) -> Result<(), SnnError> {
        if self.extra_synapses.is_empty() {
            return Ok(());
        }
        Err(SnnError::Unsupported(format!(
            "{what} supports only the synapse types W_fast and W_slow; this network has {} more \
             (tau {:?} ms)",
            self.extra_synapses.len(),
            self.extra_synapses
                .iter()
                .map(|t| t.tau_ms)
                .collect::<Vec<_>>()
        )))
    }

    /// A copy with every recurrent matrix (W_fast, W_slow and each extra type) scaled by `s`:
    /// the recurrence as a whole, e.g. for the study's per-level recalibration.
    pub fn scaled_recurrence(&self, s: f32) -> Network {
        let mut n = self.clone();
        n.w_fast.iter_mut().for_each(|w| *w *= s);
        n.w_slow.iter_mut().for_each(|w| *w *= s);
        for t in &mut n.extra_synapses {
            t.w.iter_mut().for_each(|w| *w *= s);
        }
        n
    }

    /// Whether the readout decodes the teacher's state (see [`super::Method`]).
    pub fn decodes_teacher(&self) -> bool {
        self.method.decodes_teacher()
    }

    /// Checks every matrix length against (N, Nc, C, n_out) and the parameters.
    pub fn validate_shapes(&self) -> Result<(), SnnError> {
        self.params.validate().map_err(SnnError::InvalidParams)?;
        if self.params.n != self.n {
            return Err(SnnError::InvalidParams(format!(
                "params.n ({}) differs from network n ({})",
                self.params.n, self.n
            )));
        }
        let (n, nc) = (self.n, self.nc);
        for (what, got, expected) in [
            ("d (Nc x N)", self.d.len(), nc * n),
            ("f (N x Nc)", self.f.len(), n * nc),
            ("w_fast (N x N)", self.w_fast.len(), n * n),
            ("w_slow (N x N)", self.w_slow.len(), n * n),
            (
                "w_in_teacher (C x Nc)",
                self.w_in_teacher.len(),
                self.n_in * nc,
            ),
            (
                "w_out_teacher (Nc x n_out)",
                self.w_out_teacher.len(),
                nc * self.n_out,
            ),
        ] {
            if got != expected {
                return Err(SnnError::Shape {
                    what: what.into(),
                    expected,
                    got,
                });
            }
        }
        if let Some(p) = &self.input_override
            && p.len() != n * self.n_in
        {
            return Err(SnnError::Shape {
                what: "input_override (N x C)".into(),
                expected: n * self.n_in,
                got: p.len(),
            });
        }
        validate_types(&self.extra_synapses, n)
    }

    /// The folded input projection P = A · F · W_in_teacherᵀ, N x C, so that F·u(t) = P c(t)
    /// (or [`Network::input_override`] when set).
    pub fn input_projection(&self) -> Vec<f32> {
        if let Some(p) = &self.input_override {
            return p.clone();
        }
        input_projection(
            &self.f,
            &self.w_in_teacher,
            self.n,
            self.nc,
            self.n_in,
            self.params.input_amplitude(),
        )
    }

    /// A copy with F, D, W_fast, W_slow and every extra synapse type each quantised to `bits`
    /// bits (per matrix).
    pub fn quantized(&self, bits: u32) -> Network {
        self.quantized_scope(bits, QuantScope::All)
    }

    /// A copy with the matrices of `scope` quantised to `bits` bits (per matrix); F stands for
    /// the input projection too (F itself, or the input override when set).
    pub fn quantized_scope(&self, bits: u32, scope: QuantScope) -> Network {
        self.quantized_parts(bits, scope.rounds())
    }

    /// A copy with F, D, W_fast, W_slow quantised to `bits` bits where `parts` says so (in that
    /// order). The extra synapse types follow W_slow's flag, each on its own grid: they are
    /// slow recurrent synapses like W_slow, so every scope that rounds W_slow rounds them.
    pub fn quantized_parts(&self, bits: u32, parts: [bool; 4]) -> Network {
        let [f, d, w_fast, w_slow] = parts;
        let mut q = self.clone();
        if d {
            q.d = quantize(&self.d, bits);
        }
        if f {
            q.f = quantize(&self.f, bits);
            q.input_override = self.input_override.as_deref().map(|p| quantize(p, bits));
        }
        if w_fast {
            q.w_fast = quantize(&self.w_fast, bits);
        }
        if w_slow {
            q.w_slow = quantize(&self.w_slow, bits);
            for (t, src) in q.extra_synapses.iter_mut().zip(&self.extra_synapses) {
                t.w = quantize(&src.w, bits);
            }
        }
        q
    }

    /// Task output for a decoded state: y = W_out_teacherᵀ x, written into `y` (n_out).
    pub fn readout(&self, x: &[f32], y: &mut [f32]) {
        readout(&self.w_out_teacher, self.nc, self.n_out, x, y);
    }
}

/// P[i][ch] = a * sum_k f[i][k] * w_in[ch][k]; f is N x Nc, w_in is C x Nc, P is N x C.
pub fn input_projection(
    f: &[f32],
    w_in: &[f32],
    n: usize,
    nc: usize,
    c: usize,
    a: f32,
) -> Vec<f32> {
    let mut p = vec![0f32; n * c];
    for i in 0..n {
        let fi = &f[i * nc..(i + 1) * nc];
        for ch in 0..c {
            let wc = &w_in[ch * nc..(ch + 1) * nc];
            let s: f64 = fi.iter().zip(wc).map(|(x, y)| *x as f64 * *y as f64).sum();
            p[i * c + ch] = (a as f64 * s) as f32;
        }
    }
    p
}

/// y[o] = sum_k x[k] w_out[k][o].
#[inline]
pub fn readout(w_out: &[f32], nc: usize, n_out: usize, x: &[f32], y: &mut [f32]) {
    y.iter_mut().for_each(|v| *v = 0.0);
    for k in 0..nc {
        let xk = x[k];
        let row = &w_out[k * n_out..(k + 1) * n_out];
        for (yo, w) in y.iter_mut().zip(row) {
            *yo += xk * w;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn small(use_fast: bool) -> Network {
        let p = SnnParams {
            n: 12,
            use_fast,
            ..Default::default()
        };
        Network::init(p, vec![0.5; 2 * 3], vec![1.0; 3], 3, 2, 1, 7).unwrap()
    }

    #[test]
    fn init_matches_formulas() {
        let net = small(true);
        let (n, nc) = (net.n, net.nc);
        // F = Dᵀ, W_slow = 0, zero diagonal of W_fast
        for k in 0..nc {
            for i in 0..n {
                assert_eq!(net.f[i * nc + k], net.d[k * n + i]);
            }
        }
        assert!(net.w_slow.iter().all(|&w| w == 0.0));
        for i in 0..n {
            assert_eq!(net.w_fast[i * n + i], 0.0);
        }
        // Recompute D0 from the same seed and check D and W_fast directly.
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let d0: Vec<f64> = (0..nc * n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z / 3.0
            })
            .collect();
        let (lambda, mu, nu) = (20.0f64, 5e-4f64, 1e-4f64);
        for i in 0..n {
            let l1: f64 = (0..nc).map(|k| d0[k * n + i].abs()).sum();
            let t = (nu * lambda + mu * lambda * lambda + l1 * l1) / 2.0;
            for k in 0..nc {
                let want = 0.05 * 0.5 * d0[k * n + i] / t;
                assert!((net.d[k * n + i] as f64 - want).abs() < 1e-6 * want.abs().max(1e-3));
            }
            for j in 0..n {
                if i != j {
                    let om: f64 = (0..nc).map(|k| d0[k * n + i] * d0[k * n + j]).sum();
                    let want = -0.5 * om / t;
                    // synapse j -> i (pre-major), scaled by the post neuron's T_i
                    assert!((net.w_fast[j * n + i] as f64 - want).abs() < 1e-6);
                }
            }
        }
        assert!(small(false).w_fast.iter().all(|&w| w == 0.0));
    }

    #[test]
    fn input_projection_folds_a_f_win() {
        let net = small(true);
        let p = net.input_projection();
        let a = 200.0f64;
        for i in 0..net.n {
            for ch in 0..2 {
                let s: f64 = (0..3).map(|k| net.f[i * 3 + k] as f64 * 0.5).sum();
                assert!((p[i * 2 + ch] as f64 - a * s).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn shape_errors_are_reported() {
        let mut net = small(true);
        net.w_slow.pop();
        assert!(matches!(net.validate_shapes(), Err(SnnError::Shape { .. })));
        let p = SnnParams {
            n: 4,
            ..Default::default()
        };
        assert!(Network::init(p, vec![0.0; 5], vec![0.0; 3], 3, 2, 1, 1).is_err());
    }

    /// A matrix for the extra types of `small`: distinct values, so a quantisation shows.
    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n * n)
            .map(|k| scale * ((k * 37 % 101) as f32 - 50.0))
            .collect()
    }

    #[test]
    fn synapse_types_are_added_and_bad_ones_refused_by_name() {
        let net = small(true);
        let n = net.n;
        let two = net
            .clone()
            .with_synapse_type(40.0, ramp(n, 0.01))
            .unwrap()
            .with_synapse_type(200.0, ramp(n, -0.02))
            .unwrap();
        assert_eq!(two.extra_synapses.len(), 2);
        assert_eq!(two.extra_synapses[1].tau_ms, 200.0);
        assert_eq!(two.extra_synapses[1].w, ramp(n, -0.02));
        two.validate_shapes().unwrap();

        for tau in [0.0, -5.0, f32::NAN, f32::INFINITY] {
            let e = net
                .clone()
                .with_synapse_type(tau, ramp(n, 0.01))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("tau_ms") && e.contains("extra synapse type 0"),
                "{e}"
            );
        }
        let e = two
            .clone()
            .with_synapse_type(10.0, vec![0.0; n * n - 1])
            .unwrap_err();
        assert_eq!(
            e,
            SnnError::Shape {
                what: "extra synapse type 2: w (N x N)".into(),
                expected: n * n,
                got: n * n - 1
            }
        );
        let mut full = net.clone();
        for k in 0..crate::snn::MAX_EXTRA_SYNAPSE_TYPES {
            full = full
                .with_synapse_type(10.0 + k as f32, ramp(n, 0.01))
                .unwrap();
        }
        let e = full
            .clone()
            .with_synapse_type(99.0, ramp(n, 0.01))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too many synapse types"), "{e}");
        // a network built (or loaded) around the constructor is checked the same way
        full.extra_synapses.push(full.extra_synapses[0].clone());
        let e = full.validate_shapes().unwrap_err().to_string();
        assert!(e.contains("too many synapse types"), "{e}");
        let mut bad = two.clone();
        bad.extra_synapses[1].tau_ms = 0.0;
        let e = bad.validate_shapes().unwrap_err().to_string();
        assert!(
            e.contains("extra synapse type 1") && e.contains("tau_ms"),
            "{e}"
        );
    }

    #[test]
    fn quantisation_and_scaling_reach_the_synapse_types() {
        let mut net = small(true);
        let n = net.n;
        net.w_slow = ramp(n, 0.003);
        let net = net.with_synapse_type(40.0, ramp(n, 0.01)).unwrap();
        let w = &net.extra_synapses[0].w;
        // every scope that rounds W_slow rounds the extra types (each on its own grid), the
        // others leave them in float
        for (scope, rounds) in [
            (QuantScope::All, true),
            (QuantScope::Paper, true),
            (QuantScope::WSlow, true),
            (QuantScope::WFast, false),
            (QuantScope::F, false),
            (QuantScope::D, false),
        ] {
            let q = net.quantized_scope(2, scope);
            let got = &q.extra_synapses[0].w;
            if rounds {
                assert_eq!(got, &quantize(w, 2), "{scope:?}");
                let distinct: std::collections::HashSet<u32> =
                    got.iter().map(|x| x.to_bits()).collect();
                assert!(distinct.len() <= 4, "{scope:?}: {}", distinct.len());
            } else {
                assert_eq!(got, w, "{scope:?}");
            }
        }
        let s = net.scaled_recurrence(0.5);
        for (a, b) in s.extra_synapses[0].w.iter().zip(w) {
            assert_eq!(*a, 0.5 * b);
        }
        for (a, b) in s.w_slow.iter().zip(&net.w_slow) {
            assert_eq!(*a, 0.5 * b);
        }
        for (a, b) in s.w_fast.iter().zip(&net.w_fast) {
            assert_eq!(*a, 0.5 * b);
        }
        let e = net.require_two_synapse_types("the test").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the test supports only the synapse types W_fast and W_slow; this network has 1 \
             more (tau [40.0] ms)"
        );
        assert!(small(true).require_two_synapse_types("the test").is_ok());
    }
}
