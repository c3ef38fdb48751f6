//! Regime metrics of a trained network (docs/design.md §2): how hard the input drives the
//! neurons, how well the currents balance, how saturated the teacher is. They say which
//! imperfection a network will be fragile to before any chip is drawn
//! (`../shared/reference/robustness.md` §2.2: a network whose slow currents must cancel inputs
//! many thresholds strong loses the cancellation to a small relative error).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::lif_step::{NeuronConsts, State, StepWeights, step};
use crate::engine::transpose;
use crate::snn::Network;
use crate::tasks::{Split, Task};
use crate::teacher::TeacherWeights;

/// A step counts as "during input" when some channel's |c(t)| exceeds this fraction of the
/// largest |c| of the trial (XOR: inside a pulse).
pub const INPUT_ACTIVE_FRACTION: f32 = 0.1;

/// The regime of the nominal network on test trials.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Regime {
    /// RMS over neurons of the input current P c(t), in current thresholds a = V_th - V_rest,
    /// averaged over the steps during input.
    pub input_drive_thresholds: f64,
    /// The same for the recurrent current I_slow + I_fast during input: what must cancel it.
    pub recurrent_drive_thresholds: f64,
    /// Balance index <|I_in + I_slow + I_fast|> / <|I_in| + |I_slow| + |I_fast|> over every
    /// neuron and step: 1 when the currents add up, near 0 when they cancel.
    pub balance_index: f64,
    /// The teacher's mean |x| and the fraction of its activations with |x| > 0.9.
    pub teacher_mean_abs_x: f64,
    pub teacher_saturated_fraction: f64,
    /// Frobenius norm of the teacher's input weights W_in.
    pub teacher_w_in_norm: f64,
    /// Mean firing rate (Hz) of the nominal network on these trials.
    pub rate_hz: f64,
    pub trials: usize,
}

#[derive(Default)]
struct Sums {
    drive_in: f64,
    drive_rec: f64,
    active_steps: u64,
    abs_sum: f64,
    sum_abs: f64,
    x_abs: f64,
    x_sat: u64,
    x_count: u64,
    spikes: u64,
}

impl Sums {
    fn add(mut self, o: Sums) -> Sums {
        self.drive_in += o.drive_in;
        self.drive_rec += o.drive_rec;
        self.active_steps += o.active_steps;
        self.abs_sum += o.abs_sum;
        self.sum_abs += o.sum_abs;
        self.x_abs += o.x_abs;
        self.x_sat += o.x_sat;
        self.x_count += o.x_count;
        self.spikes += o.spikes;
        self
    }
}

/// The regime of `net` (nominal: no mismatch, no noise, no feedback) on `trials` trials of
/// `split`; `seed` keys the initial membrane potentials as the engines do.
pub fn regime(
    net: &Network,
    teacher: &TeacherWeights,
    task: &dyn Task,
    split: Split,
    trials: usize,
    seed: u64,
) -> Regime {
    let (n, nc, c_in) = (net.n, net.nc, net.n_in);
    let steps = task.steps();
    let consts = NeuronConsts::nominal(net);
    let proj = net.input_projection();
    let proj_t = transpose(&proj, n, c_in);
    let d_t = transpose(&net.d, nc, n);
    let fast = net.w_fast.iter().any(|&w| w != 0.0);
    let w = StepWeights {
        w_fast: fast.then_some(&net.w_fast[..]),
        w_slow: Some(&net.w_slow),
        d_t: &d_t,
        input_proj_t: &proj_t,
    };
    let a = (net.params.v_th - net.params.v_rest)
        .abs()
        .max(f32::EPSILON) as f64;
    let sums = (0..trials)
        .into_par_iter()
        .map(|j| {
            let trial = task.trial(split, j as u64);
            let (_, x) = teacher.forward(&trial.input, steps);
            let mut s = Sums::default();
            for &v in &x {
                s.x_abs += v.abs() as f64;
                s.x_sat += (v.abs() > 0.9) as u64;
            }
            s.x_count = x.len() as u64;
            let mut st = State::new(n, nc);
            let mut v0 = vec![0f32; n];
            crate::chip::instance::initial_v(
                seed,
                0,
                j as u32,
                net.params.v_reset,
                &consts.v_th,
                &mut v0,
            );
            st.reset(&v0);
            let peak = trial.input.iter().fold(0f32, |m, &u| m.max(u.abs()));
            let mut i_in = vec![0f32; n];
            for t in 0..steps {
                let c = &trial.input[t * c_in..(t + 1) * c_in];
                i_in.iter_mut().for_each(|x| *x = 0.0);
                for (ch, &u) in c.iter().enumerate() {
                    if u != 0.0 {
                        for (x, &p) in i_in.iter_mut().zip(&proj_t[ch * n..(ch + 1) * n]) {
                            *x += u * p;
                        }
                    }
                }
                let active =
                    peak > 0.0 && c.iter().any(|&u| u.abs() > INPUT_ACTIVE_FRACTION * peak);
                let (mut sq_in, mut sq_rec) = (0f64, 0f64);
                for ((&ii, &is), &iff) in i_in.iter().zip(&st.i_slow).zip(&st.i_fast) {
                    let (ii, is, iff) = (ii as f64, is as f64, iff as f64);
                    sq_in += ii * ii;
                    sq_rec += (is + iff) * (is + iff);
                    s.abs_sum += (ii + is + iff).abs();
                    s.sum_abs += ii.abs() + is.abs() + iff.abs();
                }
                if active {
                    s.drive_in += (sq_in / n as f64).sqrt() / a;
                    s.drive_rec += (sq_rec / n as f64).sqrt() / a;
                    s.active_steps += 1;
                }
                step(&consts, &w, &mut st, c, t as u32, None);
                s.spikes += st.spikes.len() as u64;
            }
            s
        })
        .reduce(Sums::default, Sums::add);
    let per = |x: f64, k: u64| if k > 0 { x / k as f64 } else { 0.0 };
    let secs = (trials * steps) as f64 * net.params.dt_s() as f64;
    Regime {
        input_drive_thresholds: per(sums.drive_in, sums.active_steps),
        recurrent_drive_thresholds: per(sums.drive_rec, sums.active_steps),
        balance_index: if sums.sum_abs > 0.0 {
            sums.abs_sum / sums.sum_abs
        } else {
            0.0
        },
        teacher_mean_abs_x: per(sums.x_abs, sums.x_count),
        teacher_saturated_fraction: per(sums.x_sat as f64, sums.x_count),
        teacher_w_in_norm: teacher
            .w_in
            .iter()
            .map(|&w| (w as f64).powi(2))
            .sum::<f64>()
            .sqrt(),
        rate_hz: if secs > 0.0 {
            sums.spikes as f64 / (n as f64 * secs)
        } else {
            0.0
        },
        trials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snn::SnnParams;
    use crate::tasks::xor::{XorParams, XorTask};
    use crate::teacher::weights::TeacherInit;

    fn setup(input_gain: f32) -> (Network, TeacherWeights, XorTask) {
        let task = XorTask::new(XorParams::default(), 42);
        let init = TeacherInit {
            input_scale: 4.0,
            spectral_radius: 0.9,
            tau_init_min_ms: 10.0,
            tau_init_max_ms: 50.0,
        };
        let teacher = TeacherWeights::init(8, 1, 1, &init, 3);
        let p = SnnParams {
            n: 24,
            input_gain,
            use_fast: false,
            ..Default::default()
        };
        let net =
            Network::init(p, teacher.w_in.clone(), teacher.w_out.clone(), 8, 1, 1, 5).unwrap();
        (net, teacher, task)
    }

    #[test]
    fn without_recurrence_nothing_cancels_and_the_drive_scales_with_the_input_gain() {
        let (net, teacher, task) = setup(10.0);
        let g = regime(&net, &teacher, &task, Split::Test, 3, 1);
        // W_slow = 0 and no W_fast: no recurrent current, so every |sum| equals its sum of |.|
        assert_eq!(g.recurrent_drive_thresholds, 0.0);
        assert!((g.balance_index - 1.0).abs() < 1e-9, "{}", g.balance_index);
        assert!(g.input_drive_thresholds > 0.0);
        // the input current is linear in the amplitude A = input_gain / tau_mem
        let (net2, _, _) = setup(5.0);
        let h = regime(&net2, &teacher, &task, Split::Test, 3, 1);
        let ratio = g.input_drive_thresholds / h.input_drive_thresholds;
        assert!((ratio - 2.0).abs() < 1e-4, "{ratio}");
        // the teacher's figures do not depend on the student
        assert_eq!(g.teacher_mean_abs_x, h.teacher_mean_abs_x);
        assert!((0.0..=1.0).contains(&g.teacher_saturated_fraction));
        let norm: f64 = teacher
            .w_in
            .iter()
            .map(|&w| (w as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((g.teacher_w_in_norm - norm).abs() < 1e-9);
    }
}
