//! The teacher's weights as plain vectors, their initialisation, the reference forward pass and
//! the weights file.
//!
//! The plain-Rust forward pass is what the spiking network learns from (it needs tanh(h(t)) for
//! every training trial, far more often than the teacher is trained), so it is written without
//! burn and checked against burn's forward pass in the tests.

use std::collections::HashMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Errors reading or writing a teacher.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("teacher shape mismatch: {0}")]
    Shape(String),
    #[error("burn backend: {0}")]
    Backend(String),
}

/// The rate RNN of docs/design.md §3, as plain row-major vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct TeacherWeights {
    pub nc: usize,
    pub n_in: usize,
    pub n_out: usize,
    /// C x Nc: the input current of unit j is sum_c c_c w_in[c, j].
    pub w_in: Vec<f32>,
    /// Nc x Nc, [pre][post]: the recurrent current of unit j is sum_i tanh(h_i) w_rec[i, j].
    pub w_rec: Vec<f32>,
    /// Nc x n_out.
    pub w_out: Vec<f32>,
    pub bias: Vec<f32>,
    /// Per-unit time constants, ms.
    pub tau_ms: Vec<f32>,
    pub dt_ms: f32,
}

/// Initialisation constants (docs/design.md §3).
#[derive(Clone, Debug)]
pub struct TeacherInit {
    pub input_scale: f32,
    pub spectral_radius: f32,
    pub tau_init_min_ms: f32,
    pub tau_init_max_ms: f32,
}

impl TeacherWeights {
    /// W_in = s (U - 0.5); W_rec = 0.2 (U - 0.5) with zero diagonal rescaled to the requested
    /// spectral radius; W_out = 0.4 U - 0.2; tau linearly spaced; b = 0.
    pub fn init(nc: usize, n_in: usize, n_out: usize, init: &TeacherInit, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let w_in: Vec<f32> = (0..n_in * nc)
            .map(|_| init.input_scale * (rng.random::<f32>() - 0.5))
            .collect();
        let mut w_rec: Vec<f32> = (0..nc * nc)
            .map(|_| 0.2 * (rng.random::<f32>() - 0.5))
            .collect();
        for i in 0..nc {
            w_rec[i * nc + i] = 0.0;
        }
        let rho = spectral_radius(&w_rec, nc, &mut rng);
        if rho > 0.0 {
            let s = init.spectral_radius / rho;
            w_rec.iter_mut().for_each(|w| *w *= s);
        }
        let w_out: Vec<f32> = (0..nc * n_out)
            .map(|_| 0.4 * rng.random::<f32>() - 0.2)
            .collect();
        let tau_ms = (0..nc)
            .map(|j| {
                if nc == 1 {
                    init.tau_init_min_ms
                } else {
                    init.tau_init_min_ms
                        + (init.tau_init_max_ms - init.tau_init_min_ms) * j as f32 / (nc - 1) as f32
                }
            })
            .collect();
        Self {
            nc,
            n_in,
            n_out,
            w_in,
            w_rec,
            w_out,
            bias: vec![0.0; nc],
            tau_ms,
            dt_ms: 1.0,
        }
    }

    /// Run the teacher on one trial (`input` is steps x C). Returns (y: steps x n_out,
    /// tanh(h): steps x Nc). h starts at 0; at step t the input c(t) drives h(t), whose tanh
    /// gives the step's activation and output.
    pub fn forward(&self, input: &[f32], steps: usize) -> (Vec<f32>, Vec<f32>) {
        let (nc, c_in, n_out) = (self.nc, self.n_in, self.n_out);
        let mut h = vec![0.0f32; nc];
        let mut a = vec![0.0f32; nc];
        let mut drive = vec![0.0f32; nc];
        let mut ys = vec![0.0f32; steps * n_out];
        let mut acts = vec![0.0f32; steps * nc];
        let alpha: Vec<f32> = self.tau_ms.iter().map(|t| self.dt_ms / t).collect();
        for t in 0..steps {
            drive.copy_from_slice(&self.bias);
            for c in 0..c_in {
                let u = input[t * c_in + c];
                if u != 0.0 {
                    let row = &self.w_in[c * nc..(c + 1) * nc];
                    drive.iter_mut().zip(row).for_each(|(d, w)| *d += u * w);
                }
            }
            for (i, &ai) in a.iter().enumerate() {
                let row = &self.w_rec[i * nc..(i + 1) * nc];
                drive.iter_mut().zip(row).for_each(|(d, w)| *d += ai * w);
            }
            for j in 0..nc {
                h[j] += alpha[j] * (-h[j] + drive[j]);
                a[j] = h[j].tanh();
            }
            acts[t * nc..(t + 1) * nc].copy_from_slice(&a);
            for o in 0..n_out {
                ys[t * n_out + o] = a
                    .iter()
                    .enumerate()
                    .map(|(j, aj)| aj * self.w_out[j * n_out + o])
                    .sum();
            }
        }
        (ys, acts)
    }

    /// Check internal consistency (lengths, finite values, positive taus).
    pub fn check(&self) -> Result<(), TeacherError> {
        let want = [
            ("w_in", self.w_in.len(), self.n_in * self.nc),
            ("w_rec", self.w_rec.len(), self.nc * self.nc),
            ("w_out", self.w_out.len(), self.nc * self.n_out),
            ("bias", self.bias.len(), self.nc),
            ("tau_ms", self.tau_ms.len(), self.nc),
        ];
        for (name, got, expected) in want {
            if got != expected {
                return Err(TeacherError::Shape(format!(
                    "{name} has {got} values, expected {expected}"
                )));
            }
        }
        let all = [
            &self.w_in,
            &self.w_rec,
            &self.w_out,
            &self.bias,
            &self.tau_ms,
        ];
        if all.iter().any(|v| v.iter().any(|x| !x.is_finite())) {
            return Err(TeacherError::Shape("non-finite weight".into()));
        }
        if self.tau_ms.iter().any(|&t| t <= 0.0) {
            return Err(TeacherError::Shape("non-positive time constant".into()));
        }
        Ok(())
    }

    /// Write the weights as a safetensors file (f32, named w_in, w_rec, w_out, bias, tau_ms).
    pub fn save(&self, path: &Path) -> Result<(), TeacherError> {
        let shapes: [(&str, &Vec<f32>, Vec<usize>); 5] = [
            ("w_in", &self.w_in, vec![self.n_in, self.nc]),
            ("w_rec", &self.w_rec, vec![self.nc, self.nc]),
            ("w_out", &self.w_out, vec![self.nc, self.n_out]),
            ("bias", &self.bias, vec![self.nc]),
            ("tau_ms", &self.tau_ms, vec![self.nc]),
        ];
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = shapes
            .iter()
            .map(|(n, v, s)| (n.to_string(), bytemuck::cast_slice(v).to_vec(), s.clone()))
            .collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"),
                )
            })
            .collect();
        let mut meta = HashMap::new();
        meta.insert("dt_ms".to_string(), self.dt_ms.to_string());
        meta.insert("model".to_string(), "robust-snn rate teacher".to_string());
        let data = safetensors::serialize(views, Some(meta)).map_err(|e| TeacherError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        crate::report::write_atomic(path, &data).map_err(|e| TeacherError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Read a weights file written by [`save`](Self::save), checking every shape.
    pub fn load(path: &Path) -> Result<Self, TeacherError> {
        let err = |message: String| TeacherError::File {
            path: path.display().to_string(),
            message,
        };
        let data = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let (_, meta) = SafeTensors::read_metadata(&data)
            .map_err(|e| err(format!("not a safetensors weights file: {e}")))?;
        let st = SafeTensors::deserialize(&data)
            .map_err(|e| err(format!("not a safetensors weights file: {e}")))?;
        let get = |name: &str| -> Result<(Vec<f32>, Vec<usize>), TeacherError> {
            let t = st
                .tensor(name)
                .map_err(|_| err(format!("missing tensor `{name}`")))?;
            if t.dtype() != Dtype::F32 {
                return Err(err(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    t.dtype()
                )));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok((v, t.shape().to_vec()))
        };
        let (w_in, s_in) = get("w_in")?;
        let (w_rec, s_rec) = get("w_rec")?;
        let (w_out, s_out) = get("w_out")?;
        let (bias, _) = get("bias")?;
        let (tau_ms, _) = get("tau_ms")?;
        if s_in.len() != 2 || s_rec.len() != 2 || s_out.len() != 2 {
            return Err(err("weight matrices must be 2-D".into()));
        }
        let dt_ms = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("dt_ms"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        let w = Self {
            nc: s_rec[0],
            n_in: s_in[0],
            n_out: s_out[1],
            w_in,
            w_rec,
            w_out,
            bias,
            tau_ms,
            dt_ms,
        };
        w.check().map_err(|e| err(e.to_string()))?;
        Ok(w)
    }
}

/// Spectral radius of a square matrix from the growth rate of repeated products
/// (Gelfand: rho = lim ||A^k v||^(1/k)), which needs no eigen-solver and is exact enough to
/// set an initial scale.
pub fn spectral_radius(m: &[f32], n: usize, rng: &mut StdRng) -> f32 {
    if n == 0 {
        return 0.0;
    }
    let mut v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
    let mut next = vec![0.0f64; n];
    let (burn_in, measure) = (200, 800);
    let mut log_growth = 0.0;
    for it in 0..burn_in + measure {
        next.iter_mut().for_each(|x| *x = 0.0);
        for i in 0..n {
            for j in 0..n {
                next[i] += m[i * n + j] as f64 * v[j];
            }
        }
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        if it >= burn_in {
            log_growth += norm.ln();
        }
        for (a, b) in v.iter_mut().zip(&next) {
            *a = b / norm;
        }
    }
    (log_growth / measure as f64).exp() as f32
}
