//! The CPU reference engine: chip ensembles stepped with [`step`] (rayon over instances).

use rayon::prelude::*;

use super::lif_step::{NeuronConsts, NoiseKey, State, StepWeights, step_with_types};
use super::{
    Engine, EngineError, EnsembleJob, EnsembleOutput, TrialOutput, transpose, validate_job,
};
use crate::chip::Instance;
use crate::chip::rng::Stream;
use crate::snn::Network;
use crate::snn::network::readout;

/// The CPU reference engine: rayon over instances (and over trials when there are fewer
/// instances than threads). Per worker, the effective (mismatched) W_slow / W_fast (and each
/// extra synapse type's matrix) of the current instance is materialised once into reused N x N
/// scratch.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

#[derive(Default)]
struct Scratch {
    w_slow: Vec<f32>,
    w_fast: Vec<f32>,
    w_extra: Vec<Vec<f32>>,
}

/// The recurrent matrix (`[pre][post]`) a step of instance `inst` reads: `None` when it is all
/// zero, the nominal one when its mismatch is off, else the mismatched one built in `scratch`.
fn effective<'a>(
    nonzero: bool,
    nominal: &'a [f32],
    inst: &Instance,
    stream: Stream,
    scratch: &'a mut Vec<f32>,
) -> Option<&'a [f32]> {
    if !nonzero {
        return None;
    }
    if inst.factor_sigma(stream) == 0.0 {
        return Some(nominal);
    }
    scratch.resize(nominal.len(), 0.0);
    inst.effective_recurrent(stream, nominal, scratch);
    Some(scratch)
}

struct TrialCtx<'a> {
    net: &'a Network,
    inst: &'a Instance,
    consts: &'a NeuronConsts,
    w: StepWeights<'a>,
    /// The effective matrix of each extra synapse type (`None`: all zero).
    extra: &'a [Option<&'a [f32]>],
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
        step_with_types(
            ctx.consts,
            &ctx.w,
            ctx.extra,
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
        let nominal = job.perturbation.nominal(job.net);
        let net: &crate::snn::Network = &nominal;
        let (n, nc, c_in) = (net.n, net.nc, net.n_in);
        let outdeg = super::outdegree(net);
        let fast_nonzero = net.w_fast.iter().any(|&w| w != 0.0);
        let slow_nonzero = net.w_slow.iter().any(|&w| w != 0.0);
        let extra_nonzero: Vec<bool> = net.extra_synapses.iter().map(|t| t.is_nonzero()).collect();
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
                let w_slow = effective(
                    slow_nonzero,
                    &net.w_slow,
                    &inst,
                    Stream::W_SLOW,
                    &mut scr.w_slow,
                );
                let w_fast = effective(
                    fast_nonzero,
                    &net.w_fast,
                    &inst,
                    Stream::W_FAST,
                    &mut scr.w_fast,
                );
                scr.w_extra.resize_with(extra_nonzero.len(), Vec::new);
                let extra: Vec<Option<&[f32]>> = net
                    .extra_synapses
                    .iter()
                    .zip(&extra_nonzero)
                    .zip(scr.w_extra.iter_mut())
                    .enumerate()
                    .map(|(k, ((t, &nz), buf))| effective(nz, &t.w, &inst, Stream::w_extra(k), buf))
                    .collect();
                let ctx = TrialCtx {
                    net,
                    inst: &inst,
                    consts: &consts,
                    w: StepWeights {
                        w_fast,
                        w_slow,
                        d_t: &d_t,
                        input_proj_t: &input_proj_t,
                    },
                    extra: &extra,
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
    use crate::chip::{MismatchCv, MismatchMode, Perturbation};
    use crate::engine::Record;
    use crate::engine::lif_step::step;
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

    /// The weights of a one-neuron network with only an input projection.
    fn input_only(p: &[f32]) -> StepWeights<'_> {
        StepWeights {
            w_fast: None,
            w_slow: None,
            d_t: &[0.0],
            input_proj_t: p,
        }
    }

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
        let w = input_only(&p);
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
        let w = input_only(&p);
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

    #[test]
    fn adaptation_raises_the_threshold_by_beta_a_by_hand() {
        let mut net = one_neuron();
        net.params.adapt_beta = 0.5;
        net.params.adapt_rho = 0.9;
        let c = NeuronConsts::nominal(&net);
        let p = [1.0f32];
        let w = input_only(&p);
        // an input u = V - V_rest holds V where it is: V += 0.02 (0.5 - V + u) = V
        let hold = |v: f32| v - 0.5;
        let mut st = State::new(1, 1);
        // a = 0: the plain threshold 1; V = 1.0 spikes, then a = 0.9 * 0 + 1 = 1
        st.v[0] = 1.0;
        step(&c, &w, &mut st, &[hold(1.0)], 0, None);
        assert_eq!(st.spikes, vec![0]);
        assert_eq!(st.adapt[0], 1.0);
        // threshold 1 + 0.5 * 1 = 1.5: V = 1.2 does not spike; a = 0.9
        st.v[0] = 1.2;
        step(&c, &w, &mut st, &[hold(1.2)], 1, None);
        assert!(st.spikes.is_empty());
        assert!((st.v[0] - 1.2).abs() < 1e-6);
        assert!((st.adapt[0] - 0.9).abs() < 1e-7);
        // threshold 1 + 0.5 * 0.9 = 1.45: V = 1.44 stays, then a = 0.81 and 1.41 < 1.44 fires
        st.v[0] = 1.44;
        step(&c, &w, &mut st, &[hold(1.44)], 2, None);
        assert!(st.spikes.is_empty());
        assert!((st.adapt[0] - 0.81).abs() < 1e-6);
        step(&c, &w, &mut st, &[hold(1.44)], 3, None);
        assert_eq!(st.spikes, vec![0]);
        assert!((st.adapt[0] - (0.9 * 0.81 + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn adaptation_with_beta_zero_is_the_plain_step() {
        // beta = 0 with any rho and any adaptation state gives the trajectory of the step with
        // adaptation absent (a = 0), spike for spike, V bit for bit
        let p = SnnParams {
            n: 64,
            ..Default::default()
        };
        let mut net = test_net(p, 8, 2, 1, 3);
        for (k, w) in net.w_slow.iter_mut().enumerate() {
            if k / 64 != k % 64 {
                *w = 0.004 * ((k * 7919 % 13) as f32 - 6.0);
            }
        }
        let plain = NeuronConsts::nominal(&net);
        net.params.adapt_rho = 0.5;
        let off = NeuronConsts::nominal(&net);
        assert_eq!(off.adapt_beta, 0.0);
        let d_t = transpose(&net.d, net.nc, net.n);
        let input_proj_t = transpose(&net.input_projection(), net.n, net.n_in);
        let w = StepWeights {
            w_fast: Some(&net.w_fast),
            w_slow: Some(&net.w_slow),
            d_t: &d_t,
            input_proj_t: &input_proj_t,
        };
        let input = smooth_input(400, 2, 1.0, 9);
        let (mut a, mut b) = (State::new(64, 8), State::new(64, 8));
        b.adapt
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as f32);
        let mut spikes = 0;
        for t in 0..400 {
            step(&plain, &w, &mut a, &input[2 * t..2 * t + 2], t as u32, None);
            step(&off, &w, &mut b, &input[2 * t..2 * t + 2], t as u32, None);
            assert_eq!(a.spikes, b.spikes, "step {t}");
            assert_eq!(a.v, b.v, "step {t}");
            spikes += a.spikes.len();
        }
        assert!(spikes > 100, "the network should spike ({spikes})");
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
        net.w_fast = vec![0.0, w, 0.0, 0.0]; // [pre][post]: w_fast[0][1]
        net.w_slow = vec![0.0, 2.0 * w, 0.0, 0.0]; // [pre][post]: w_slow[0][1]
        let mut c = NeuronConsts::nominal(&net);
        c.v_th[1] = f32::INFINITY;
        let w = StepWeights {
            w_fast: Some(&net.w_fast),
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
                    let wf: f32 = (0..n).map(|j| net.w_fast[j * n + i] * s[j]).sum();
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

    /// An extra synapse type is the slow synapse again with its own tau and matrix: with
    /// tau = tau_slow and W_slow's matrix (W_slow itself then zero) every output is the one of
    /// W_slow alone, bit for bit, on mismatched chips with membrane noise; another tau changes
    /// them.
    #[test]
    fn a_further_synapse_type_with_tau_slow_and_w_slow_is_w_slow() {
        let (mut net, inputs) = drive_net(40);
        let mut rng = StdRng::seed_from_u64(9);
        for pre in 0..40 {
            for post in 0..40 {
                if pre != post {
                    net.w_slow[pre * 40 + post] = rng.random_range(-0.02..0.02);
                }
            }
        }
        // tau_mem, V_th, input and decoder mismatch and membrane noise; tau_slow and W_slow stay
        // nominal because the extra type draws them from its own streams (a different chip)
        let pert = Perturbation {
            cv: Some(MismatchCv {
                tau_mem: 0.2,
                v_th: 0.2,
                w_in: 0.2,
                d: 0.2,
                ..Default::default()
            }),
            noise: 0.02,
            ..Default::default()
        };
        let tau_slow = net.params.tau_slow_ms;
        let mut moved = net.clone();
        moved.w_slow = vec![0.0; 40 * 40];
        let typed = moved
            .clone()
            .with_synapse_type(tau_slow, net.w_slow.clone())
            .unwrap();
        let a = job_run(&net, &pert, 13, 0..3, &inputs, 300, ALL);
        let b = job_run(&typed, &pert, 13, 0..3, &inputs, 300, ALL);
        let spikes: u32 = a.trials[0][0].spike_counts.iter().sum();
        assert!(spikes > 50, "the network should spike ({spikes})");
        assert_eq!(a, b);
        // the matrix matters (the same net without it spikes differently) ...
        let none = job_run(&moved, &pert, 13, 0..3, &inputs, 300, ALL);
        assert_ne!(none.trials[0][0].spikes, a.trials[0][0].spikes);
        // ... and so does its time constant
        let slower = moved
            .with_synapse_type(4.0 * tau_slow, net.w_slow.clone())
            .unwrap();
        let c = job_run(&slower, &pert, 13, 0..3, &inputs, 300, ALL);
        for (ci, ai) in c.trials.iter().zip(&a.trials) {
            assert_ne!(ci[0].v, ai[0].v);
            assert_ne!(ci[0].spikes, ai[0].spikes);
        }
    }

    #[test]
    fn an_extra_synapse_kernel_integrates_to_its_weight() {
        // neuron 0 spikes once; the current of type 0 onto neuron 1 then decays with its tau:
        // sum I dt = w (dt/tau) / (1 - e^{-dt/tau}) (-> w as dt -> 0), independently of
        // W_slow's tau
        let p = SnnParams {
            n: 2,
            use_fast: false,
            ..Default::default()
        };
        let net = test_net(p, 1, 1, 1, 2)
            .with_synapse_type(25.0, vec![0.0, 0.4, 0.0, 0.0])
            .unwrap();
        let mut c = NeuronConsts::nominal(&net);
        c.v_th[1] = f32::INFINITY;
        assert_eq!(c.inv_tau_extra, vec![vec![40.0f32, 40.0]]);
        let w = StepWeights {
            w_fast: None,
            w_slow: None,
            d_t: &[0.0, 0.0],
            input_proj_t: &[0.0, 0.0],
        };
        let extra = [Some(&net.extra_synapses[0].w[..])];
        let mut st = State::new(2, 1);
        st.v[0] = 5.0;
        let mut sum = 0f64;
        for t in 0..2000 {
            step_with_types(&c, &w, &extra, &mut st, &[0.0], t, None);
            if t == 0 {
                assert_eq!(st.spikes, vec![0]);
                assert_eq!(st.i_extra[0], vec![0.0, 0.4 * 40.0]);
            }
            sum += st.i_extra[0][1] as f64 * 1e-3;
        }
        let disc = (1.0f64 / 25.0) / (1.0 - (-1.0f64 / 25.0).exp());
        assert!((sum / (0.4 * disc) - 1.0).abs() < 1e-4, "{sum}");
        // the current reaches the membrane like I_slow: one step of V with I_0 only
        let mut st = State::new(2, 1);
        st.i_extra = vec![vec![0.0, 0.3]];
        step_with_types(&c, &w, &extra, &mut st, &[0.0], 0, None);
        // V = 0 + dt/tau_mem (V_rest - 0 + I + b) = 0.02 (0.5 + 0.3)
        assert!((st.v[1] - 0.02 * 0.8).abs() < 1e-7, "{}", st.v[1]);
        assert!((st.i_extra[0][1] - 0.3 * (-0.04f32).exp()).abs() < 1e-7);
    }
}
