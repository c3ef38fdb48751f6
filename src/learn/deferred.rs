//! The local rule's update applied in blocks (`training.update_block`, docs/design.md §2,
//! "Learning rule"): instead of the dense rank-1 update `W[pre][post] += u[pre] v[post]` of the
//! N x N matrix at every step (u = eta r, v = F e), the last m <= M steps' vectors are kept and
//! applied as one matrix product, `W += Uᵀ V` (U, V: m x N), by `matrixmultiply`'s sgemm.
//!
//! Why this gives the per-step rule's network: the step reads W_slow only through the rows of the
//! neurons that spiked (a spike of j adds row j / tau_slow to I_slow). Those few rows are
//! reconstructed on the fly, `W[j][:] + sum_t u_t[j] v_t[:]` with the diagonal entry 0, so every
//! step sees the weights the per-step rule would have given it, up to float rounding (the block's
//! terms are summed in another order). With M = 1 nothing is ever pending when a row is read and
//! a block of one step is applied by the per-step rule's own loop, so M = 1 is the per-step rule
//! bit for bit.
//!
//! Cost per step: the per-step rule touches N² weights (memory-bound: 0.4 MB at N = 320); here the
//! product costs 2 N² M flops per M steps at the speed of a cache-blocked kernel, and each spike
//! adds an O(m N) reconstruction (a few spikes per step).

use rayon::prelude::*;

use crate::engine::EngineError;
use crate::engine::lif_step::add_spike_row;

/// The pending updates of the last m < M steps of one network (or one simulated chip).
#[derive(Clone, Debug)]
pub struct Deferred {
    n: usize,
    /// M: the steps in a block.
    block: usize,
    /// Pending steps m (< `block` between calls: a full block is flushed by the caller).
    m: usize,
    /// Row t = u_t = eta r_t (block x N).
    u: Vec<f32>,
    /// Row t = v_t = (F e)_t (block x N).
    v: Vec<f32>,
    /// Rows with a nonzero pending term (u_t[j] != 0 for some pending t): only these differ from
    /// W and only their diagonal entries are re-zeroed, as the per-step rule does.
    touched: Vec<bool>,
    /// A reconstructed row.
    row: Vec<f32>,
}

/// A simulated chip's running W_slow, for [`Deferred::flush_chip`] online.
pub struct ChipSlow<'a> {
    /// Its effective matrix (W_slow + dW) ∘ G, which the flush brings up to date.
    pub eff: &'a mut [f32],
    /// The W_slow the trial started from.
    pub w0: &'a [f32],
    /// Its W_slow factors G (None: all 1).
    pub g: Option<&'a [f32]>,
}

/// Networks of at least this many neurons flush on rayon's threads (as the per-step rule
/// updates them).
const PARALLEL_N: usize = 256;

impl Deferred {
    /// Blocks of `block` steps for an N x N matrix. `block` >= 1 (the config refuses 0 with the
    /// key named; here a 0 is an error too, not a panic).
    pub fn new(n: usize, block: usize) -> Result<Self, EngineError> {
        if block == 0 {
            return Err(EngineError::InvalidParams(
                "training.update_block must be >= 1, got 0".into(),
            ));
        }
        Ok(Deferred {
            n,
            block,
            m: 0,
            u: vec![0.0; block * n],
            v: vec![0.0; block * n],
            touched: vec![false; n],
            row: vec![0.0; n],
        })
    }

    /// M.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Steps recorded and not yet applied.
    pub fn pending(&self) -> usize {
        self.m
    }

    /// A block is complete: the caller flushes it now.
    pub fn is_full(&self) -> bool {
        self.m >= self.block
    }

    /// Records one step's update `W[pre][post] += eta r[pre] fe[post]`. The block must not be
    /// full (flush first).
    pub fn push(&mut self, eta: f32, r: &[f32], fe: &[f32]) {
        let n = self.n;
        assert!(
            self.m < self.block && r.len() == n && fe.len() == n,
            "Deferred::push: block full or vectors not N long"
        );
        let t = self.m;
        let (u, v) = (
            &mut self.u[t * n..(t + 1) * n],
            &mut self.v[t * n..(t + 1) * n],
        );
        for ((ui, &ri), touched) in u.iter_mut().zip(r).zip(&mut self.touched) {
            // the same product as the per-step rule's `a = eta * r[pre]`
            *ui = eta * ri;
            *touched |= *ui != 0.0;
        }
        v.copy_from_slice(fe);
        self.m += 1;
    }

    /// The current row j as the per-step rule would hold it: `out = base[j] + c` with
    /// `c = sum_t u_t[j] v_t` (t ascending), `c` times `g[j]` element-wise when `g` is given (a
    /// chip's W_slow factors: `base` is then the chip's effective matrix), and `out[j] = 0` when
    /// row j has a pending term.
    pub fn row(&self, j: usize, base: &[f32], g: Option<&[f32]>, out: &mut [f32]) {
        let n = self.n;
        let b = &base[j * n..(j + 1) * n];
        if !self.touched[j] {
            out.copy_from_slice(b);
            return;
        }
        out.fill(0.0);
        for t in 0..self.m {
            let a = self.u[t * n + j];
            if a != 0.0 {
                for (o, &f) in out.iter_mut().zip(&self.v[t * n..(t + 1) * n]) {
                    *o += a * f;
                }
            }
        }
        match g {
            Some(g) => {
                for ((o, &w), &gi) in out.iter_mut().zip(b).zip(&g[j * n..(j + 1) * n]) {
                    *o = w + *o * gi;
                }
            }
            None => {
                for (o, &w) in out.iter_mut().zip(b) {
                    *o += w;
                }
            }
        }
        out[j] = 0.0;
    }

    /// The slow synapses' event-driven propagation of one step (`engine::lif_step` step 6, which
    /// the trainer runs with `w_slow: None`): for each spiking j in ascending order,
    /// `i_slow[i] += row_j[i] * inv_tau_slow[i]` with the current row j of [`Deferred::row`],
    /// the same arithmetic in the same order as the step's own propagation, so nothing pending
    /// means exactly the step's result.
    pub fn propagate(
        &mut self,
        spikes: &[u32],
        base: &[f32],
        g: Option<&[f32]>,
        inv_tau_slow: &[f32],
        i_slow: &mut [f32],
    ) {
        let n = self.n;
        let mut row = std::mem::take(&mut self.row);
        for &j in spikes {
            let j = j as usize;
            let r: &[f32] = if self.touched[j] {
                self.row(j, base, g, &mut row);
                &row
            } else {
                &base[j * n..(j + 1) * n]
            };
            add_spike_row(i_slow, r, inv_tau_slow);
        }
        self.row = row;
    }

    /// Applies the pending block to `w` (N x N, `[pre][post]`): `w += Uᵀ V` as one product (one
    /// pending step: the per-step rule's loop, bit for bit), the touched rows' diagonal entries
    /// set to 0. Nothing is pending afterwards.
    pub fn flush(&mut self, w: &mut [f32]) {
        let n = self.n;
        assert_eq!(w.len(), n * n, "Deferred::flush: W is not N x N");
        if self.m == 0 || n == 0 {
            self.clear();
            return;
        }
        let (m, u, v, touched) = (self.m, &self.u, &self.v, &self.touched);
        let parallel = n >= PARALLEL_N;
        if m == 1 {
            // the per-step rule's update (learn::rule::Trainer::update)
            let (u, v) = (&u[..n], &v[..n]);
            let update = |(pre, row): (usize, &mut [f32])| {
                let a = u[pre];
                if a != 0.0 {
                    for (w, &f) in row.iter_mut().zip(v) {
                        *w += a * f;
                    }
                    row[pre] = 0.0;
                }
            };
            if parallel {
                w.par_chunks_mut(n).enumerate().for_each(update);
            } else {
                w.chunks_mut(n).enumerate().for_each(update);
            }
        } else {
            // one product per block of rows (one block per thread)
            let rows = if parallel {
                n.div_ceil(rayon::current_num_threads().max(1))
            } else {
                n
            };
            let product = |(b, chunk): (usize, &mut [f32])| {
                let r0 = b * rows;
                gemm_acc(&u[..m * n], &v[..m * n], n, m, r0, chunk);
                for (i, wrow) in chunk.chunks_mut(n).enumerate() {
                    if touched[r0 + i] {
                        wrow[r0 + i] = 0.0;
                    }
                }
            };
            if parallel {
                w.par_chunks_mut(rows * n).enumerate().for_each(product);
            } else {
                w.chunks_mut(rows * n).enumerate().for_each(product);
            }
        }
        self.clear();
    }

    /// Applies the pending block to one simulated chip (learn::ensemble::chip_update): its
    /// update `delta += Uᵀ V`, and, when it runs `online` on its own weights, its effective
    /// matrix: one pending step `eff += (u vᵀ) ∘ g` (the per-step loop, bit for bit), a longer
    /// block `eff = (w0 + delta) ∘ g` on the touched rows (recomputed rather than accumulated:
    /// one rounding instead of one per block). Touched rows' diagonal entries are 0 in both.
    pub fn flush_chip(&mut self, delta: &mut [f32], online: Option<ChipSlow>) {
        let n = self.n;
        assert_eq!(
            delta.len(),
            n * n,
            "Deferred::flush_chip: delta is not N x N"
        );
        if self.m == 0 || n == 0 {
            self.clear();
            return;
        }
        let m = self.m;
        if m == 1 {
            // the per-step loop of chip_update, fused over delta and eff
            let (u, v) = (&self.u[..n], &self.v[..n]);
            let mut eff = online.map(|c| (c.eff, c.g));
            for pre in 0..n {
                let a = u[pre];
                if a == 0.0 {
                    continue;
                }
                let row = pre * n..(pre + 1) * n;
                match eff.as_mut() {
                    Some((eff, g)) => {
                        let e = &mut eff[row.clone()];
                        let d = &mut delta[row.clone()];
                        match g {
                            Some(g) => {
                                for (((d, e), &gi), &f) in
                                    d.iter_mut().zip(e.iter_mut()).zip(&g[row.clone()]).zip(v)
                                {
                                    let dw = a * f;
                                    *d += dw;
                                    *e += dw * gi;
                                }
                            }
                            None => {
                                for ((d, e), &f) in d.iter_mut().zip(e.iter_mut()).zip(v) {
                                    let dw = a * f;
                                    *d += dw;
                                    *e += dw;
                                }
                            }
                        }
                        eff[pre * n + pre] = 0.0;
                    }
                    None => {
                        for (d, &f) in delta[row].iter_mut().zip(v) {
                            *d += a * f;
                        }
                    }
                }
                delta[pre * n + pre] = 0.0;
            }
        } else {
            gemm_acc(&self.u[..m * n], &self.v[..m * n], n, m, 0, delta);
            for j in (0..n).filter(|&j| self.touched[j]) {
                delta[j * n + j] = 0.0;
            }
            if let Some(ChipSlow { eff, w0, g }) = online {
                for j in (0..n).filter(|&j| self.touched[j]) {
                    let row = j * n..(j + 1) * n;
                    let (e, d, w) = (&mut eff[row.clone()], &delta[row.clone()], &w0[row.clone()]);
                    match g {
                        Some(g) => {
                            for (((e, &d), &w), &gi) in e.iter_mut().zip(d).zip(w).zip(&g[row]) {
                                *e = (w + d) * gi;
                            }
                        }
                        None => {
                            for ((e, &d), &w) in e.iter_mut().zip(d).zip(w) {
                                *e = w + d;
                            }
                        }
                    }
                    eff[j * n + j] = 0.0;
                }
            }
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.m = 0;
        self.touched.fill(false);
    }
}

/// `c += (Uᵀ V)[r0..r0 + rows]` for the rows `c` holds (`c`: rows x N, `[pre][post]`), with
/// U, V the m x N blocks: one sgemm, C (rows x N) += A (rows x m) B (m x N) where
/// A[i][t] = U[t][r0 + i] (U read transposed through its strides) and B = V.
fn gemm_acc(u: &[f32], v: &[f32], n: usize, m: usize, r0: usize, c: &mut [f32]) {
    let rows = c.len() / n.max(1);
    assert!(
        u.len() == m * n && v.len() == m * n && c.len() == rows * n && r0 + rows <= n,
        "gemm_acc: inconsistent sizes"
    );
    if rows == 0 || m == 0 || n == 0 {
        return;
    }
    // SAFETY: A's elements (i, t) for i < rows, t < m are at r0 + i + t n <= (n - 1) + (m - 1) n
    // < m n = u.len(); B's (t, k) at t n + k < m n = v.len(); C's (i, k) at i n + k < rows n =
    // c.len(). C is a distinct &mut slice (no aliasing with A or B) and its strides (n, 1) make
    // distinct elements distinct.
    unsafe {
        matrixmultiply::sgemm(
            rows,
            m,
            n,
            1.0,
            u.as_ptr().add(r0),
            1,
            n as isize,
            v.as_ptr(),
            n as isize,
            1,
            1.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// A block of m random steps: u with some exact zeros (neurons that never spiked), v signed.
    fn random_block(n: usize, m: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let us = (0..m)
            .map(|_| {
                (0..n)
                    .map(|i| {
                        if i % 7 == 3 {
                            0.0
                        } else {
                            rng.random_range(0.0..50.0f32)
                        }
                    })
                    .collect()
            })
            .collect();
        let vs = (0..m)
            .map(|_| (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect())
            .collect();
        (us, vs)
    }

    fn random_w(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n * n)
            .map(|k| {
                if k / n == k % n {
                    0.0
                } else {
                    rng.random_range(-0.05..0.05f32)
                }
            })
            .collect()
    }

    /// The per-step rule (`w += eta r feᵀ`, zero diagonal), step by step in f32.
    fn per_step(w: &mut [f32], n: usize, eta: f32, r: &[f32], fe: &[f32]) {
        for pre in 0..n {
            let a = eta * r[pre];
            if a != 0.0 {
                for post in 0..n {
                    w[pre * n + post] += a * fe[post];
                }
                w[pre * n + pre] = 0.0;
            }
        }
    }

    /// The flushed product equals the f64 sum of the block's rank-1 terms. Bound: the sgemm
    /// computes each entry as a sum of m + 1 f32 terms (W and the m products) in some order with
    /// or without fused multiply-adds; each product and each of the m additions rounds once,
    /// so the error is at most (m + 1) eps (|W| + sum_t |u_t v_t|) to first order (Higham,
    /// Accuracy and Stability, §3.1). We allow (m + 2) eps of that sum.
    #[test]
    fn the_flushed_product_is_the_sum_of_the_rank_one_updates() {
        let eta = 1e-3f32;
        for (n, m, par) in [(40, 32, false), (300, 17, true), (13, 2, false)] {
            let (us, vs) = random_block(n, m, n as u64);
            let w0 = random_w(n, 5);
            let mut d = Deferred::new(n, m).unwrap();
            for (r, fe) in us.iter().zip(&vs) {
                d.push(eta, r, fe);
            }
            assert!(d.is_full());
            assert_eq!(n >= PARALLEL_N, par);
            let mut w = w0.clone();
            d.flush(&mut w);
            assert_eq!(d.pending(), 0);
            let mut moved = 0;
            for pre in 0..n {
                for post in 0..n {
                    let k = pre * n + post;
                    let touched = us.iter().any(|r| eta * r[pre] != 0.0);
                    if pre == post {
                        assert_eq!(w[k], 0.0);
                        continue;
                    }
                    let (mut want, mut mag) = (w0[k] as f64, (w0[k] as f64).abs());
                    for (r, fe) in us.iter().zip(&vs) {
                        let term = (eta * r[pre]) as f64 * fe[post] as f64;
                        want += term;
                        mag += term.abs();
                    }
                    let tol = (m + 2) as f64 * f32::EPSILON as f64 * mag;
                    assert!(
                        (w[k] as f64 - want).abs() <= tol,
                        "n {n} m {m} [{pre}][{post}]: {} vs {want} (tol {tol})",
                        w[k]
                    );
                    if !touched {
                        assert_eq!(w[k], w0[k]);
                    }
                    moved += (w[k] != w0[k]) as usize;
                }
            }
            assert!(moved > n * n / 2, "the block changed W");
        }
    }

    /// Mid-block, the reconstructed row j is the row of the matrix the per-step rule has
    /// updated step by step (to rounding: the two sum the same terms in another order), and its
    /// diagonal entry is 0; with a chip's factors it is that row's effective weights.
    #[test]
    fn the_reconstructed_row_is_the_per_step_row() {
        let (n, m, eta) = (50, 9, 1e-3f32);
        let (us, vs) = random_block(n, m, 3);
        let w0 = random_w(n, 4);
        let mut rng = StdRng::seed_from_u64(8);
        let g: Vec<f32> = (0..n * n).map(|_| rng.random_range(0.7..1.3f32)).collect();
        let eff0: Vec<f32> = w0.iter().zip(&g).map(|(w, g)| w * g).collect();
        let mut d = Deferred::new(n, 16).unwrap();
        let mut w = w0.clone();
        let mut out = vec![0f32; n];
        for (r, fe) in us.iter().zip(&vs) {
            d.push(eta, r, fe);
            per_step(&mut w, n, eta, r, fe);
        }
        assert_eq!(d.pending(), m);
        for j in 0..n {
            let touched = us.iter().any(|r| eta * r[j] != 0.0);
            let mag: Vec<f64> = (0..n)
                .map(|i| {
                    (w0[j * n + i] as f64).abs()
                        + us.iter()
                            .zip(&vs)
                            .map(|(r, fe)| ((eta * r[j]) as f64 * fe[i] as f64).abs())
                            .sum::<f64>()
                })
                .collect();
            d.row(j, &w0, None, &mut out);
            for i in 0..n {
                let tol = 2.0 * (m + 2) as f64 * f32::EPSILON as f64 * mag[i];
                assert!(
                    (out[i] as f64 - w[j * n + i] as f64).abs() <= tol,
                    "row {j}[{i}]: {} vs {}",
                    out[i],
                    w[j * n + i]
                );
            }
            assert_eq!(out[j], 0.0);
            if !touched {
                assert_eq!(&out[..], &w0[j * n..(j + 1) * n]);
            }
            // a chip: (W + pending)[j] ∘ g[j]
            d.row(j, &eff0, Some(&g), &mut out);
            for i in (0..n).filter(|&i| i != j) {
                let want = w[j * n + i] as f64 * g[j * n + i] as f64;
                let tol = 4.0 * (m + 2) as f64 * f32::EPSILON as f64 * mag[i] * 1.3;
                assert!((out[i] as f64 - want).abs() <= tol, "chip row {j}[{i}]");
            }
            assert_eq!(out[j], 0.0);
        }
        // some rows had nothing pending (u = 0): they are W's rows themselves
        assert!((0..n).any(|j| us.iter().all(|r| r[j] == 0.0)));
    }

    /// A block of one step is the per-step rule bit for bit, on a network and on a chip.
    #[test]
    fn a_block_of_one_step_is_the_per_step_rule() {
        for n in [30, 260] {
            let (us, vs) = random_block(n, 5, 11);
            let mut rng = StdRng::seed_from_u64(2);
            let g: Vec<f32> = (0..n * n).map(|_| rng.random_range(0.7..1.3f32)).collect();
            let (mut w, mut want) = (random_w(n, 1), random_w(n, 1));
            let mut d = Deferred::new(n, 1).unwrap();
            let w0 = random_w(n, 1);
            let mut eff: Vec<f32> = w0.iter().zip(&g).map(|(w, g)| w * g).collect();
            let mut eff_want = eff.clone();
            let (mut delta, mut delta_want) = (vec![0f32; n * n], vec![0f32; n * n]);
            let mut dc = Deferred::new(n, 1).unwrap();
            for (r, fe) in us.iter().zip(&vs) {
                d.push(1e-3, r, fe);
                assert!(d.is_full());
                d.flush(&mut w);
                per_step(&mut want, n, 1e-3, r, fe);
                assert_eq!(w, want);
                dc.push(1e-3, r, fe);
                dc.flush_chip(
                    &mut delta,
                    Some(ChipSlow {
                        eff: &mut eff,
                        w0: &w0,
                        g: Some(&g),
                    }),
                );
                for pre in 0..n {
                    let a = 1e-3f32 * r[pre];
                    if a == 0.0 {
                        continue;
                    }
                    for post in 0..n {
                        let dw = a * fe[post];
                        delta_want[pre * n + post] += dw;
                        eff_want[pre * n + post] += dw * g[pre * n + post];
                    }
                    delta_want[pre * n + pre] = 0.0;
                    eff_want[pre * n + pre] = 0.0;
                }
                assert_eq!(delta, delta_want);
                assert_eq!(eff, eff_want);
            }
        }
    }

    /// A chip's longer block: delta is the product, eff is (w0 + delta) ∘ g on the touched rows.
    #[test]
    fn a_chip_block_updates_delta_and_the_effective_matrix() {
        let (n, m, eta) = (24, 6, 1e-3f32);
        let (us, vs) = random_block(n, m, 21);
        let w0 = random_w(n, 7);
        let g: Vec<f32> = (0..n * n)
            .map(|k| 0.8 + 0.4 * ((k % 11) as f32 / 11.0))
            .collect();
        let mut eff: Vec<f32> = w0.iter().zip(&g).map(|(w, g)| w * g).collect();
        let eff0 = eff.clone();
        let mut delta = vec![0f32; n * n];
        let mut d = Deferred::new(n, m).unwrap();
        let mut plain = Deferred::new(n, m).unwrap();
        let mut want = vec![0f32; n * n];
        for (r, fe) in us.iter().zip(&vs) {
            d.push(eta, r, fe);
            plain.push(eta, r, fe);
        }
        d.flush_chip(
            &mut delta,
            Some(ChipSlow {
                eff: &mut eff,
                w0: &w0,
                g: Some(&g),
            }),
        );
        plain.flush(&mut want);
        assert_eq!(delta, want, "delta is the block's product");
        for j in 0..n {
            let touched = us.iter().any(|r| eta * r[j] != 0.0);
            for i in 0..n {
                let k = j * n + i;
                let e = if !touched {
                    eff0[k]
                } else if i == j {
                    0.0
                } else {
                    (w0[k] + delta[k]) * g[k]
                };
                assert_eq!(eff[k], e, "[{j}][{i}]");
            }
        }
        assert!(Deferred::new(5, 0).is_err());
    }
}
