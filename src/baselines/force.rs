//! The FORCE baseline (Nicola and Clopath 2017, as the paper ran it, §6): an LIF network with a
//! fixed sparse random recurrence Ω (on the slow synapse type) and a fixed random feedback E
//! (N x Nc) learns a decoder φ (N x Nc) online with recursive least squares, so that
//! `x~ = φᵀ r` follows the teacher's state x(t) while `E x~` is fed back as a current. Trained,
//! the feedback is folded into the recurrence, `W[j][i] = Ω[j][i] + Σ_k φ[j][k] E[i][k]`; with
//! tau_slow = tau_out the folded network computes exactly the trained dynamics (the slow
//! current of a spike train and its filtered trace r obey the same recursion), so the engine
//! and the study see FORCE as an ordinary network whose D = φᵀ.

use std::time::Instant;

use super::{BaselineError, BaselineOutcome, EpochLog, baseline_params, sim};
use crate::config::Config;
use crate::snn::{Method, Network};
use crate::tasks::{Split, Task};
use crate::teacher::TeacherWeights;

const RECURRENCE_KEY: u64 = 0xF0CE_0001;
const FEEDBACK_KEY: u64 = 0xF0CE_0002;

/// Recursive least squares for a linear readout `z = φᵀ r` (φ is k x m): the inverse
/// correlation estimate P (k x k, f64) and the weights.
#[derive(Clone, Debug)]
pub struct Rls {
    pub k: usize,
    pub m: usize,
    /// P, row-major k x k.
    pub p: Vec<f64>,
    /// φ, row-major k x m.
    pub phi: Vec<f64>,
    pr: Vec<f64>,
}

impl Rls {
    /// P = I / alpha, φ = 0.
    pub fn new(k: usize, m: usize, alpha: f64) -> Self {
        let mut p = vec![0f64; k * k];
        for i in 0..k {
            p[i * k + i] = 1.0 / alpha;
        }
        Rls {
            k,
            m,
            p,
            phi: vec![0.0; k * m],
            pr: vec![0.0; k],
        }
    }

    /// z = φᵀ r.
    pub fn output(&self, r: &[f32], z: &mut [f64]) {
        z.iter_mut().for_each(|v| *v = 0.0);
        for (i, &ri) in r.iter().enumerate() {
            if ri != 0.0 {
                let row = &self.phi[i * self.m..(i + 1) * self.m];
                for (zk, &w) in z.iter_mut().zip(row) {
                    *zk += ri as f64 * w;
                }
            }
        }
    }

    /// One RLS step with input r and error e = z - target (computed before the step):
    /// `P <- P - (P r)(P r)ᵀ / (1 + rᵀ P r)`, `φ <- φ - (P_new r) eᵀ`, where
    /// `P_new r = P r / (1 + rᵀ P r)` (P symmetric).
    pub fn update(&mut self, r: &[f32], e: &[f64]) {
        let k = self.k;
        for i in 0..k {
            let row = &self.p[i * k..(i + 1) * k];
            self.pr[i] = row.iter().zip(r).map(|(&p, &x)| p * x as f64).sum::<f64>();
        }
        let rpr: f64 = self.pr.iter().zip(r).map(|(&a, &x)| a * x as f64).sum();
        let c = 1.0 / (1.0 + rpr);
        for i in 0..k {
            let ci = c * self.pr[i];
            if ci == 0.0 {
                continue;
            }
            let row = &mut self.p[i * k..(i + 1) * k];
            for (pij, &prj) in row.iter_mut().zip(&self.pr) {
                *pij -= ci * prj;
            }
            let w = &mut self.phi[i * self.m..(i + 1) * self.m];
            for (wk, &ek) in w.iter_mut().zip(e) {
                *wk -= ci * ek;
            }
        }
    }
}

/// The folded network: W = Ω + φ Eᵀ on the slow synapse type, D = φᵀ.
fn folded(base: &Network, omega: &[f32], e: &[f32], rls: &Rls) -> Network {
    let (n, nc) = (base.n, base.nc);
    let mut net = base.clone();
    for j in 0..n {
        let phi_j = &rls.phi[j * nc..(j + 1) * nc];
        for i in 0..n {
            let e_i = &e[i * nc..(i + 1) * nc];
            let fb: f64 = phi_j.iter().zip(e_i).map(|(&p, &q)| p * q as f64).sum();
            net.w_slow[j * n + i] = omega[j * n + i] + fb as f32;
        }
        for (k, &w) in phi_j.iter().enumerate() {
            net.d[k * n + j] = w as f32;
        }
    }
    net
}

pub fn train(
    cfg: &Config,
    teacher: &TeacherWeights,
    task: &dyn Task,
    show_progress: bool,
) -> Result<BaselineOutcome, BaselineError> {
    let fc = &cfg.training.force;
    let fail = |message: String| BaselineError::Training {
        method: Method::Force,
        message,
    };
    if cfg.snn.tau_slow_ms != cfg.snn.tau_out_ms {
        return Err(fail(format!(
            "the feedback folds into the slow synapses only when snn.tau_slow_ms equals snn.tau_out_ms (got {} and {})",
            cfg.snn.tau_slow_ms, cfg.snn.tau_out_ms
        )));
    }
    let params = baseline_params(&cfg.snn, fc.bias);
    let (nc, n) = (teacher.nc, params.n);
    // the encoder F of Network ADS's initialisation carries the teacher's input, as in the paper
    let mut base = Network::init(
        params,
        teacher.w_in.clone(),
        teacher.w_out.clone(),
        nc,
        teacher.n_in,
        teacher.n_out,
        cfg.seed,
    )?;
    base.method = Method::Force;
    base.w_fast.iter_mut().for_each(|w| *w = 0.0);
    base.d.iter_mut().for_each(|w| *w = 0.0);
    let omega = super::weights::sparse_recurrence(n, fc.p, fc.gain, cfg.seed ^ RECURRENCE_KEY);
    let e = super::weights::uniform(n, nc, fc.feedback, cfg.seed ^ FEEDBACK_KEY);
    base.w_slow = omega.clone();
    let mut rls = Rls::new(n, nc, fc.alpha as f64);
    let steps = task.steps();
    let total = (fc.epochs * fc.samples_per_epoch) as u64;
    let mut log = EpochLog::new(Method::Force, fc.epochs, total, show_progress);
    let (mut z, mut err) = (vec![0f64; nc], vec![0f64; nc]);
    for epoch in 1..=fc.epochs {
        let te = Instant::now();
        let (mut sq, mut count) = (0f64, 0usize);
        for s in 0..fc.samples_per_epoch {
            let index = ((epoch - 1) * fc.samples_per_epoch + s) as u64;
            let trial = task.trial(Split::Train, index);
            let (_, x) = teacher.forward(&trial.input, steps);
            sim::run_with_hook(
                &base,
                &trial.input,
                steps,
                index as u32,
                cfg.seed,
                |t, st| {
                    rls.output(&st.r, &mut z);
                    let target = &x[t * nc..(t + 1) * nc];
                    for k in 0..nc {
                        err[k] = z[k] - target[k] as f64;
                        sq += err[k] * err[k];
                    }
                    count += nc;
                    if t % fc.update_every == 0 {
                        rls.update(&st.r, &err);
                        rls.output(&st.r, &mut z);
                    }
                    // the next step's feedback E x~
                    for (i, fb) in st.i_fb.iter_mut().enumerate() {
                        let e_i = &e[i * nc..(i + 1) * nc];
                        *fb = e_i.iter().zip(&z).map(|(&a, &b)| a as f64 * b).sum::<f64>() as f32;
                    }
                },
            );
            log.pb().inc(1);
        }
        if rls.phi.iter().any(|w| !w.is_finite()) {
            return Err(fail(format!(
                "the decoder diverged in epoch {epoch}; raise training.force.alpha"
            )));
        }
        let net = folded(&base, &omega, &e, &rls);
        log.epoch_done(
            &net,
            epoch,
            sq / count.max(1) as f64,
            "decoding MSE",
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
    use nalgebra::{DMatrix, DVector};

    /// One RLS step from (P0, φ0) equals its closed form: P1 = (P0⁻¹ + r rᵀ)⁻¹ (explicit
    /// inverse), φ1 = φ0 - P1 r eᵀ with e = φ0ᵀ r - target.
    #[test]
    fn one_rls_step_equals_the_closed_form() {
        let (k, m) = (3, 2);
        let mut rls = Rls::new(k, m, 0.5);
        rls.phi = vec![0.1, -0.2, 0.3, 0.0, -0.1, 0.4];
        // a non-diagonal P0: one step from I/alpha first
        rls.update(&[0.5, -1.0, 2.0], &[0.3, -0.7]);
        let p0 = DMatrix::from_row_slice(k, k, &rls.p);
        let phi0 = DMatrix::from_row_slice(k, m, &rls.phi);
        let r = [1.5f32, 0.25, -0.75];
        let target = [0.2f64, -0.4];
        let mut z = vec![0f64; m];
        rls.output(&r, &mut z);
        let e: Vec<f64> = z.iter().zip(&target).map(|(a, b)| a - b).collect();
        rls.update(&r, &e);
        let rv = DVector::from_iterator(k, r.iter().map(|&x| x as f64));
        let p1 = (p0.clone().try_inverse().unwrap() + &rv * rv.transpose())
            .try_inverse()
            .unwrap();
        let ev = DVector::from_row_slice(&e);
        let phi1 = phi0 - &p1 * &rv * ev.transpose();
        for i in 0..k {
            for j in 0..k {
                assert!((rls.p[i * k + j] - p1[(i, j)]).abs() < 1e-12);
            }
            for c in 0..m {
                assert!((rls.phi[i * m + c] - phi1[(i, c)]).abs() < 1e-12);
            }
        }
        // and the new decoder moves the output toward the target on that input
        rls.output(&r, &mut z);
        let before: f64 = e.iter().map(|x| x * x).sum();
        let after: f64 = z.iter().zip(&target).map(|(a, b)| (a - b).powi(2)).sum();
        assert!(after < before);
    }
}
