//! The teacher: burn's forward pass against the plain-Rust one, burn's gradient against finite
//! differences, and a short training run that must lower the loss.

use burn::tensor::{Device, Tensor, TensorData};
use robust_snn::config::TeacherConfig;
use robust_snn::tasks::{Split, Task, Trial};
use robust_snn::teacher::model::{RateRnn, RnnShape, values};
use robust_snn::teacher::weights::{TeacherInit, TeacherWeights};

fn init(nc: usize, n_in: usize, n_out: usize, seed: u64) -> TeacherWeights {
    let mut w = TeacherWeights::init(
        nc,
        n_in,
        n_out,
        &TeacherInit {
            input_scale: 10.0,
            spectral_radius: 0.95,
            tau_init_min_ms: 10.0,
            tau_init_max_ms: 100.0,
        },
        seed,
    );
    // Non-trivial biases and time constants above the clamp so every term is exercised.
    for (j, b) in w.bias.iter_mut().enumerate() {
        *b = 0.1 * (j as f32 % 3.0 - 1.0);
    }
    for t in w.tau_ms.iter_mut() {
        *t = t.max(16.0);
    }
    w
}

fn shape(w: &TeacherWeights) -> RnnShape {
    RnnShape {
        nc: w.nc,
        n_in: w.n_in,
        n_out: w.n_out,
        dt_ms: 1.0,
        tau_min_ms: 15.0,
    }
}

fn input(steps: usize, channels: usize, phase: f32) -> Vec<f32> {
    (0..steps * channels)
        .map(|i| ((i as f32) * 0.05 + phase).sin() * 0.8)
        .collect()
}

#[test]
fn plain_forward_equals_burn_forward() {
    let w = init(24, 2, 1, 3);
    let steps = 300;
    let device = Device::flex();
    let model = RateRnn::from_weights(&w, &device);
    let inputs: Vec<Vec<f32>> = (0..3).map(|b| input(steps, 2, b as f32)).collect();
    let flat: Vec<f32> = inputs.concat();
    let x = Tensor::<3>::from_data(TensorData::new(flat, [3, steps, 2]), &device);
    let (y, acts) = model.forward(x, &shape(&w));
    let y = values(y).unwrap();
    let acts = values(acts).unwrap();
    for (b, inp) in inputs.iter().enumerate() {
        let (y_ref, a_ref) = w.forward(inp, steps);
        for t in 0..steps {
            assert!(
                (y[b * steps + t] - y_ref[t]).abs() <= 1e-5,
                "output differs at batch {b} step {t}: burn {} plain {}",
                y[b * steps + t],
                y_ref[t]
            );
            for j in 0..w.nc {
                let got = acts[(b * steps + t) * w.nc + j];
                assert!((got - a_ref[t * w.nc + j]).abs() <= 1e-5);
            }
        }
    }
}

#[test]
fn a_perturbed_forward_is_the_forward_of_the_perturbed_weights() {
    // teacher.param_noise / state_noise: burn's forward with the batch's factors and state noise
    // equals the plain forward of a teacher whose W_in, W_rec and tau carry the same factors
    // (the state noise set to zero there: a one-step kick is checked separately below)
    use robust_snn::teacher::train::batch_perturb;
    let w = init(16, 2, 1, 5);
    let steps = 200;
    let device = Device::flex();
    let sh = shape(&w);
    let cfg = TeacherConfig {
        param_noise: 0.3,
        ..TeacherConfig::default()
    };
    assert!(batch_perturb(&TeacherConfig::default(), &sh, 1, steps, 1, &device).is_none());
    let p = batch_perturb(&cfg, &sh, 1, steps, 42, &device).unwrap();
    assert!(p.state.is_none());
    let (f_in, f_rec, f_tau) = (
        values(p.w_in.clone()).unwrap(),
        values(p.w_rec.clone()).unwrap(),
        values(p.tau.clone()).unwrap(),
    );
    // the factors are 1 + 0.3 z: mean near 1, spread near 0.3
    let mean = f_rec.iter().sum::<f32>() / f_rec.len() as f32;
    let sd = (f_rec.iter().map(|f| (f - mean).powi(2)).sum::<f32>() / f_rec.len() as f32).sqrt();
    assert!(
        (mean - 1.0).abs() < 0.05 && (sd - 0.3).abs() < 0.05,
        "{mean} {sd}"
    );
    let mut wp = w.clone();
    wp.w_in.iter_mut().zip(&f_in).for_each(|(x, f)| *x *= f);
    wp.w_rec.iter_mut().zip(&f_rec).for_each(|(x, f)| *x *= f);
    wp.tau_ms
        .iter_mut()
        .zip(&f_tau)
        .for_each(|(t, f)| *t = (t.max(15.0) * f).abs().max(1.0));
    let model = RateRnn::from_weights(&w, &device);
    let inp = input(steps, 2, 0.3);
    let per_step: Vec<Tensor<2>> = (0..steps)
        .map(|t| {
            Tensor::from_data(
                TensorData::new(inp[2 * t..2 * t + 2].to_vec(), [1, 2]),
                &device,
            )
        })
        .collect();
    let (y, _) = model.forward_steps(&per_step, &sh, false, Some(&p));
    let y = values(y).unwrap();
    let (y_ref, _) = wp.forward(&inp, steps);
    let (y_nom, _) = w.forward(&inp, steps);
    let moved = y_ref
        .iter()
        .zip(&y_nom)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        moved > 1e-2,
        "the perturbation should change the output ({moved})"
    );
    for t in 0..steps {
        assert!(
            (y[t] - y_ref[t]).abs() <= 1e-5,
            "step {t}: {} vs {}",
            y[t],
            y_ref[t]
        );
    }
    // state noise: a kick of n on h at step 0 only, from rest with zero input, gives
    // h(0) = n and y(0) = W_outᵀ tanh(n)
    let cfg = TeacherConfig {
        state_noise: 0.5,
        ..TeacherConfig::default()
    };
    let mut p = batch_perturb(&cfg, &sh, 1, 1, 7, &device).unwrap();
    assert_eq!(values(p.w_rec.clone()).unwrap(), vec![1.0; 16 * 16]);
    let kick = values(p.state.as_ref().unwrap()[0].clone()).unwrap();
    p.state = Some(vec![Tensor::from_data(
        TensorData::new(kick.clone(), [1, 16]),
        &device,
    )]);
    let zero = vec![Tensor::<2>::zeros([1, 2], &device)];
    let mut wb = w.clone();
    wb.bias.iter_mut().for_each(|b| *b = 0.0);
    let (y, _) = RateRnn::from_weights(&wb, &device).forward_steps(&zero, &sh, false, Some(&p));
    let want: f32 = (0..16).map(|j| kick[j].tanh() * w.w_out[j]).sum();
    assert!((values(y).unwrap()[0] - want).abs() <= 1e-5);
}

/// Loss of the plain forward in f64 accumulation, for finite differences.
fn mse(w: &TeacherWeights, inp: &[f32], target: &[f32], steps: usize) -> f64 {
    let (y, _) = w.forward(inp, steps);
    y.iter()
        .zip(target)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / y.len() as f64
}

#[test]
fn burn_gradient_matches_finite_differences() {
    let w = init(4, 1, 1, 11);
    let steps = 40;
    let inp = input(steps, 1, 0.3);
    let target: Vec<f32> = (0..steps).map(|t| (t as f32 * 0.1).cos() * 0.5).collect();
    let device = Device::flex().autodiff();
    let model = RateRnn::from_weights(&w, &device);
    let x = Tensor::<3>::from_data(TensorData::new(inp.clone(), [1, steps, 1]), &device);
    let tg = Tensor::<3>::from_data(TensorData::new(target.clone(), [1, steps, 1]), &device);
    let (y, _) = model.forward(x, &shape(&w));
    let loss = (y - tg).powi_scalar(2).mean();
    let grads = loss.backward();
    let g_rec = values(model.w_rec.val().grad(&grads).unwrap()).unwrap();
    let g_tau = values(model.tau_ms.val().grad(&grads).unwrap()).unwrap();
    let g_in = values(model.w_in.val().grad(&grads).unwrap()).unwrap();

    let eps = 2e-3f32;
    let check =
        |name: &str, analytic: &[f32], get: &dyn Fn(&mut TeacherWeights) -> &mut Vec<f32>| {
            let mut worst: f64 = 0.0;
            for (i, &g) in analytic.iter().enumerate() {
                let mut plus = w.clone();
                get(&mut plus)[i] += eps;
                let mut minus = w.clone();
                get(&mut minus)[i] -= eps;
                let fd = (mse(&plus, &inp, &target, steps) - mse(&minus, &inp, &target, steps))
                    / (2.0 * eps as f64);
                let scale = fd.abs().max(g.abs() as f64).max(1e-4);
                worst = worst.max((fd - g as f64).abs() / scale);
            }
            assert!(
                worst < 0.03,
                "{name}: worst relative gradient error {worst}"
            );
        };
    check("w_rec", &g_rec, &|w| &mut w.w_rec);
    check("tau_ms", &g_tau, &|w| &mut w.tau_ms);
    check("w_in", &g_in, &|w| &mut w.w_in);
}

/// A small task: reproduce the input's sign as a held level, delayed (needs memory).
struct HoldTask;

impl Task for HoldTask {
    fn name(&self) -> &'static str {
        "hold"
    }
    fn channels(&self) -> usize {
        1
    }
    fn outputs(&self) -> usize {
        1
    }
    fn steps(&self) -> usize {
        80
    }
    fn trial(&self, split: Split, index: u64) -> Trial {
        let seed = robust_snn::tasks::trial_seed(5, split, index);
        let sign = if seed.is_multiple_of(2) { 1.0 } else { -1.0 };
        let steps = self.steps();
        let input = (0..steps)
            .map(|t| if (5..20).contains(&t) { sign } else { 0.0 })
            .collect();
        let target = (0..steps)
            .map(|t| if t >= 40 { 0.8 * sign } else { 0.0 })
            .collect();
        Trial {
            input,
            target,
            label: sign as i32,
            steps,
            channels: 1,
            outputs: 1,
            window: (40, steps),
            events: vec![],
        }
    }
    fn decide(&self, trial: &Trial, output: &[f32]) -> Option<i32> {
        let m: f32 = output[trial.window.0..trial.window.1].iter().sum();
        Some(if m >= 0.0 { 1 } else { -1 })
    }
    fn labels(&self) -> &'static [i32] {
        &[-1, 1]
    }
}

#[test]
fn short_training_lowers_the_loss_by_a_large_factor() {
    let cfg = TeacherConfig {
        hidden: 12,
        epochs: 30,
        batches_per_epoch: 10,
        batch_size: 8,
        learning_rate: 0.01,
        val_trials: 20,
        test_trials: 20,
        ..TeacherConfig::default()
    };
    let task = HoldTask;
    let out = robust_snn::teacher::train::train(&cfg, &task, 7, &Device::flex(), false).unwrap();
    let first = out.history.first().unwrap().train_loss;
    let best_val = out
        .history
        .iter()
        .map(|r| r.val_mse)
        .fold(f64::INFINITY, f64::min);
    let (acc, mse) = robust_snn::teacher::train::evaluate(&out.weights, &task, Split::Test, 50);
    assert!(
        mse < first / 10.0,
        "test MSE {mse} is not 10x below the first epoch's loss {first} (best val {best_val})"
    );
    assert!(acc >= 0.95, "accuracy {acc}");
    assert!(out.weights.tau_ms.iter().all(|&t| t >= 15.0));
}

#[test]
fn weights_file_round_trips_and_rejects_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let w = init(8, 3, 2, 1);
    let path = dir.path().join("w.safetensors");
    w.save(&path).unwrap();
    let back = TeacherWeights::load(&path).unwrap();
    assert_eq!(w, back);
    std::fs::write(&path, b"not a tensor file at all").unwrap();
    let err = TeacherWeights::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("w.safetensors") && err.contains("safetensors"),
        "{err}"
    );
    let err = TeacherWeights::load(&dir.path().join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.safetensors") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn initial_recurrent_weights_have_the_requested_spectral_radius() {
    let w = init(64, 1, 1, 2);
    assert!((0..64).all(|i| w.w_rec[i * 64 + i] == 0.0));
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
    let rho = robust_snn::teacher::weights::spectral_radius(&w.w_rec, 64, &mut rng);
    assert!((rho - 0.95).abs() < 0.03, "spectral radius {rho}");
    // A matrix with known eigenvalues: diag(0.5, -0.9, 0.2) rotated is still radius 0.9.
    let m = [0.5, 0.0, 0.0, 0.0, -0.9, 0.0, 0.0, 0.0, 0.2];
    let rho = robust_snn::teacher::weights::spectral_radius(&m, 3, &mut rng);
    assert!((rho - 0.9).abs() < 1e-3, "{rho}");
}
