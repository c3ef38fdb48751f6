//! Ridge regression by its normal equations: `W = (XᵀX + λ I)⁻¹ XᵀY`, accumulated over chunks of
//! rows so that the design matrix of a whole training set never has to be held.

use nalgebra::{DMatrix, linalg::Cholesky};

/// Accumulated `XᵀX` (k x k) and `XᵀY` (k x m) in f64.
#[derive(Clone, Debug)]
pub struct NormalEquations {
    pub xtx: DMatrix<f64>,
    pub xty: DMatrix<f64>,
    pub rows: usize,
}

impl NormalEquations {
    pub fn new(k: usize, m: usize) -> Self {
        NormalEquations {
            xtx: DMatrix::zeros(k, k),
            xty: DMatrix::zeros(k, m),
            rows: 0,
        }
    }

    /// Adds `rows` rows: `x` is rows x k, `y` rows x m, both row-major f32.
    pub fn add(&mut self, x: &[f32], y: &[f32], rows: usize) {
        let (k, m) = (self.xtx.nrows(), self.xty.ncols());
        let xm = DMatrix::from_row_iterator(rows, k, x.iter().map(|&v| v as f64));
        let ym = DMatrix::from_row_iterator(rows, m, y.iter().map(|&v| v as f64));
        self.xtx += xm.tr_mul(&xm);
        self.xty += xm.tr_mul(&ym);
        self.rows += rows;
    }

    /// The solution for penalty `lambda`, k x m row-major. `lambda` must be > 0 (then the
    /// system is positive definite).
    pub fn solve(&self, lambda: f64) -> Option<Vec<f64>> {
        let k = self.xtx.nrows();
        let a = &self.xtx + DMatrix::<f64>::identity(k, k) * lambda;
        let w = Cholesky::new(a)?.solve(&self.xty);
        Some(w.transpose().as_slice().to_vec())
    }

    /// The mean of XᵀX's diagonal: the feature scale a relative penalty refers to.
    pub fn mean_diagonal(&self) -> f64 {
        let k = self.xtx.nrows().max(1);
        self.xtx.diagonal().sum() / k as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accumulated solution equals the normal-equation solution computed in one piece by
    /// explicit inversion, and reduces to least squares on an exactly solvable system.
    #[test]
    fn ridge_equals_the_normal_equation_solution() {
        let (rows, k, m) = (7, 3, 2);
        let x: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7 + 3) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let y: Vec<f32> = (0..rows * m)
            .map(|i| ((i * 5 + 1) % 9) as f32 / 4.0 - 1.0)
            .collect();
        let mut ne = NormalEquations::new(k, m);
        ne.add(&x[..3 * k], &y[..3 * m], 3);
        ne.add(&x[3 * k..], &y[3 * m..], rows - 3);
        let lambda = 0.3;
        let w = ne.solve(lambda).unwrap();
        let xm = DMatrix::from_row_slice(rows, k, &x.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let ym = DMatrix::from_row_slice(rows, m, &y.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let inv = (xm.transpose() * &xm + DMatrix::identity(k, k) * lambda)
            .try_inverse()
            .unwrap();
        let want = inv * xm.transpose() * ym;
        for r in 0..k {
            for c in 0..m {
                assert!((w[r * m + c] - want[(r, c)]).abs() < 1e-10);
            }
        }
        // y = x w* exactly: a vanishing penalty recovers w*
        let w_star = [0.5f32, -1.0, 2.0];
        let y1: Vec<f32> = (0..rows)
            .map(|r| (0..k).map(|c| x[r * k + c] * w_star[c]).sum())
            .collect();
        let mut ne1 = NormalEquations::new(k, 1);
        ne1.add(&x, &y1, rows);
        let w1 = ne1.solve(1e-9).unwrap();
        for c in 0..k {
            assert!((w1[c] - w_star[c] as f64).abs() < 1e-5, "{w1:?}");
        }
    }
}
