//! GPU engine vs the CPU reference. Every test skips (with a printed notice) when no wgpu adapter
//! exists; on Debian, lavapipe (mesa-vulkan-drivers) is enough. Shapes are small: software
//! adapters are slow.

use rand::{Rng, SeedableRng, rngs::StdRng};
use robust_snn::chip::rng::{self, Stream};
use robust_snn::chip::{MismatchMode, Perturbation};
use robust_snn::engine::gpu::{GpuEngine, StepsPerDispatch, dispatch};
use robust_snn::engine::{
    CpuEngine, Engine, EngineError, EnsembleJob, EnsembleOutput, Record, TrialOutput,
};
use robust_snn::snn::{Network, SnnParams};

fn engine() -> Option<GpuEngine> {
    match GpuEngine::new() {
        Ok(e) => {
            eprintln!("gpu_engine tests on {:?}", e.adapter());
            Some(e)
        }
        Err(e) => {
            eprintln!("SKIPPED: no usable wgpu adapter ({e})");
            None
        }
    }
}

fn test_net(n: usize, nc: usize, c: usize, n_out: usize, seed: u64) -> Network {
    let p = SnnParams {
        n,
        ..Default::default()
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0xabc);
    let w_in: Vec<f32> = (0..c * nc).map(|_| rng.random_range(-1.0..1.0)).collect();
    let w_out: Vec<f32> = (0..nc * n_out)
        .map(|_| rng.random_range(-0.5..0.5))
        .collect();
    let mut net = Network::init(p, w_in, w_out, nc, c, n_out, seed).unwrap();
    // a random nonzero W_slow (zero diagonal) so the slow path is exercised
    for pre in 0..n {
        for post in 0..n {
            if pre != post {
                net.w_slow[pre * n + post] = rng.random_range(-0.01..0.01);
            }
        }
    }
    net
}

use robust_snn::engine::smooth_input;

const ALL: Record = Record {
    x: true,
    spikes: true,
    v: true,
};

#[allow(clippy::too_many_arguments)]
fn run(
    e: &dyn Engine,
    net: &Network,
    pert: &Perturbation,
    seed: u64,
    instances: std::ops::Range<u32>,
    inputs: &[Vec<f32>],
    trial_offset: u32,
    steps: usize,
    record: Record,
) -> EnsembleOutput {
    e.simulate(&EnsembleJob {
        net,
        perturbation: pert,
        seed,
        instances,
        inputs,
        trial_offset,
        steps,
        record,
    })
    .unwrap()
}

#[test]
fn rng_words_and_normals_match_cpu() {
    let Some(e) = engine() else { return };
    let seed = 0x0123_4567_89ab_cdefu64;
    let count = 4096u32;
    for (instance, stream, a0) in [(3u32, Stream::NOISE, 0u32), (0xFFFF_FFFE, Stream::W_D, 91)] {
        let (words, normals) = e.rng_test_draws(seed, instance, stream, a0, count).unwrap();
        let mut worst = 0f32;
        for i in 0..count {
            let want = rng::draws(seed, instance, stream, a0 + i / 7, (i % 7) * 977);
            assert_eq!(words[i as usize], want, "philox words at {i}");
            let z = rng::normal4_from_draws(want);
            for (g, c) in normals[i as usize].iter().zip(z) {
                let rel = (g - c).abs() / c.abs().max(1e-3);
                worst = worst.max(rel);
                assert!(rel <= 1e-6, "normal at {i}: gpu {g} vs cpu {c}");
            }
        }
        eprintln!("worst relative normal difference {worst:e}");
    }
}

/// First step at which the spike lists differ (steps if never).
fn first_divergence(a: &TrialOutput, b: &TrialOutput, steps: usize) -> usize {
    let (sa, sb) = (a.spikes.as_ref().unwrap(), b.spikes.as_ref().unwrap());
    let at = |s: &[(u32, u32)], t: u32| -> Vec<u32> {
        s.iter().filter(|p| p.0 == t).map(|p| p.1).collect()
    };
    (0..steps as u32)
        .find(|&t| at(sa, t) != at(sb, t))
        .map_or(steps, |t| t as usize)
}

fn compare_with_cpu(mode: MismatchMode) {
    let Some(e) = engine() else { return };
    let (n, nc, steps) = (96, 16, 1000);
    let net = test_net(n, nc, 2, 2, 5);
    let inputs: Vec<Vec<f32>> = (0..2).map(|s| smooth_input(steps, 2, 1.0, s)).collect();
    let pert = Perturbation {
        mismatch: 0.2,
        mode,
        noise: 0.01,
        silence: 0.2,
        ..Default::default()
    };
    let cpu = run(&CpuEngine, &net, &pert, 17, 2..8, &inputs, 5, steps, ALL);
    let gpu = run(&e, &net, &pert, 17, 2..8, &inputs, 5, steps, ALL);
    assert_eq!(gpu.neuron_steps, cpu.neuron_steps);
    assert_eq!(gpu.trials.len(), 6);
    let mut exact = 0;
    for (k, (gi, ci)) in gpu.trials.iter().zip(&cpu.trials).enumerate() {
        let (gc, cc): (u64, u64) = gi.iter().zip(ci).fold((0, 0), |acc, (g, c)| {
            (
                acc.0 + g.spike_counts.iter().map(|&x| x as u64).sum::<u64>(),
                acc.1 + c.spike_counts.iter().map(|&x| x as u64).sum::<u64>(),
            )
        });
        assert!(cc > 100, "instance {k}: the network should spike ({cc})");
        let rel = (gc as f64 - cc as f64).abs() / cc as f64;
        assert!(
            rel <= 0.02,
            "{mode:?} instance {k}: spikes gpu {gc} cpu {cc}"
        );
        for (j, (g, c)) in gi.iter().zip(ci).enumerate() {
            let div = first_divergence(g, c, steps);
            if div == steps {
                exact += 1;
                assert_eq!(g.spike_counts, c.spike_counts);
            }
            let yscale = c.y.iter().fold(1e-3f32, |m, y| m.max(y.abs()));
            for t in 0..div {
                for o in 0..2 {
                    let (a, b) = (g.y[t * 2 + o], c.y[t * 2 + o]);
                    assert!(
                        (a - b).abs() <= 1e-4 * yscale,
                        "{mode:?} inst {k} trial {j} t {t}: y {a} vs {b} (divergence at {div})"
                    );
                }
                let (gx, cx) = (g.x.as_ref().unwrap(), c.x.as_ref().unwrap());
                for kk in 0..nc {
                    let (a, b) = (gx[t * nc + kk], cx[t * nc + kk]);
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "x {a} vs {b}");
                }
                let (gv, cv) = (g.v.as_ref().unwrap(), c.v.as_ref().unwrap());
                for i in 0..n {
                    let (a, b) = (gv[t * n + i], cv[t * n + i]);
                    assert!((a - b).abs() <= 1e-4, "{mode:?} t {t} V[{i}] {a} vs {b}");
                }
            }
            eprintln!(
                "{mode:?} instance {k} trial {j}: spikes identical for {div} of {steps} steps"
            );
        }
    }
    eprintln!("{mode:?}: {exact} of 12 trials spike-identical for all {steps} steps");
    // on adapters that do not contract a * b + c into FMA (lavapipe does not) the whole output
    // is bit-identical; it is reported, not required
    eprintln!(
        "{mode:?}: outputs bit-identical to the CPU: {}",
        gpu.trials == cpu.trials
    );
    if exact == 12 {
        assert_eq!(gpu.synaptic_events, cpu.synaptic_events);
    } else {
        let rel = (gpu.synaptic_events as f64 - cpu.synaptic_events as f64).abs()
            / cpu.synaptic_events as f64;
        assert!(rel < 0.02);
    }
}

#[test]
fn ensemble_matches_cpu_paper_mode() {
    compare_with_cpu(MismatchMode::Paper);
}

#[test]
fn ensemble_matches_cpu_full_mode() {
    compare_with_cpu(MismatchMode::Full);
}

#[test]
fn nominal_and_quantised_match_cpu_exactly_or_closely() {
    let Some(e) = engine() else { return };
    let net = test_net(40, 8, 2, 2, 9);
    let inputs: Vec<Vec<f32>> = (0..2).map(|s| smooth_input(300, 2, 1.0, s)).collect();
    for pert in [
        Perturbation::default(),
        Perturbation {
            bits: Some(3),
            ..Default::default()
        },
    ] {
        let cpu = run(&CpuEngine, &net, &pert, 8, 0..2, &inputs, 0, 300, ALL);
        let gpu = run(&e, &net, &pert, 8, 0..2, &inputs, 0, 300, ALL);
        for (gi, ci) in gpu.trials.iter().zip(&cpu.trials) {
            for (g, c) in gi.iter().zip(ci) {
                let div = first_divergence(g, c, 300);
                eprintln!("{pert:?}: spikes identical for {div} of 300 steps");
                assert_v_until_divergence(g, c, 40, div, &format!("{pert:?}"));
                // a short trial: 5 % of a total of at least 20 spikes
                let total: u32 = c.spike_counts.iter().sum();
                let gt: u32 = g.spike_counts.iter().sum();
                assert!(total > 20);
                assert!((gt as f64 - total as f64).abs() <= 0.05 * total as f64);
            }
        }
    }
}

/// V within 1e-4 of the CPU for the first `div` steps (see [`assert_agrees_with_cpu`]).
fn assert_v_until_divergence(g: &TrialOutput, c: &TrialOutput, n: usize, div: usize, what: &str) {
    let (gv, cv) = (g.v.as_ref().unwrap(), c.v.as_ref().unwrap());
    for t in 0..div {
        for i in 0..n {
            let (a, b) = (gv[t * n + i], cv[t * n + i]);
            assert!(
                (a - b).abs() <= 1e-4,
                "{what}: t {t} V[{i}] gpu {a} cpu {b}"
            );
        }
    }
}

#[test]
fn chunked_ensemble_equals_instances_one_by_one() {
    let Some(e) = engine() else { return };
    let net = test_net(72, 16, 2, 2, 3);
    let inputs: Vec<Vec<f32>> = (0..2).map(|s| smooth_input(200, 2, 1.0, s + 7)).collect();
    let pert = Perturbation {
        mismatch: 0.2,
        noise: 0.01,
        silence: 0.2,
        ..Default::default()
    };
    let rec = Record {
        x: true,
        spikes: true,
        v: false,
    };
    let whole = run(&e, &net, &pert, 4, 1..6, &inputs, 3, 200, rec);
    assert_eq!(e.last_stats().chunks, 1);
    let mut events = 0;
    for k in 1..6u32 {
        let one = run(&e, &net, &pert, 4, k..k + 1, &inputs, 3, 200, rec);
        assert_eq!(
            one.trials[0],
            whole.trials[(k - 1) as usize],
            "instance {k}"
        );
        events += one.synaptic_events;
    }
    assert_eq!(events, whole.synaptic_events);
    // 4 pairs per chunk (2 instances), and 1 pair per chunk (one instance split over chunks)
    for cap in [4usize, 3, 1] {
        let small = GpuEngine::new().unwrap().with_max_pairs_per_chunk(cap);
        let chunked = run(&small, &net, &pert, 4, 1..6, &inputs, 3, 200, rec);
        let st = small.last_stats();
        assert!(st.chunks > 1, "cap {cap}: {st:?}");
        assert_eq!(chunked, whole, "cap {cap}");
    }
}

#[test]
fn empty_jobs_and_errors() {
    let Some(e) = engine() else { return };
    let net = test_net(20, 4, 1, 1, 1);
    let inputs = vec![smooth_input(50, 1, 1.0, 1)];
    let pert = Perturbation::default();
    let a = run(&e, &net, &pert, 1, 3..3, &inputs, 0, 50, ALL);
    assert!(a.trials.is_empty());
    let a = run(&e, &net, &pert, 1, 0..2, &inputs[..0], 0, 50, ALL);
    assert_eq!(a.trials.len(), 2);
    let bad = vec![vec![0f32; 7]];
    let job = EnsembleJob {
        net: &net,
        perturbation: &pert,
        seed: 0,
        instances: 0..1,
        inputs: &bad,
        trial_offset: 0,
        steps: 50,
        record: Record::default(),
    };
    assert!(matches!(e.simulate(&job), Err(EngineError::Shape { .. })));
}

#[test]
fn per_parameter_cv_and_input_override_match_cpu() {
    // The export's re-simulation: a given input projection mismatched per element and one
    // sigma per parameter (the decoder both nominal and perturbed).
    let Some(e) = engine() else { return };
    let mut net = test_net(40, 8, 2, 2, 11);
    net.input_override = Some(net.input_projection().iter().map(|p| 1.3 * p).collect());
    let inputs: Vec<Vec<f32>> = (0..2).map(|s| smooth_input(300, 2, 1.0, s + 3)).collect();
    for d in [0.0, 0.1] {
        let pert = Perturbation {
            cv: Some(robust_snn::chip::MismatchCv {
                tau_mem: 0.2,
                tau_slow: 0.15,
                tau_fast: 0.1,
                tau_out: 0.0,
                v_th: 0.05,
                w_in: 0.3,
                d,
                w_slow: 0.25,
                w_fast: 0.3,
            }),
            ..Default::default()
        };
        let cpu = run(&CpuEngine, &net, &pert, 6, 0..3, &inputs, 0, 300, ALL);
        let gpu = run(&e, &net, &pert, 6, 0..3, &inputs, 0, 300, ALL);
        for (gi, ci) in gpu.trials.iter().zip(&cpu.trials) {
            for (g, c) in gi.iter().zip(ci) {
                let div = first_divergence(g, c, 300);
                eprintln!("d = {d}: spikes identical for {div} of 300 steps");
                assert_v_until_divergence(g, c, 40, div, &format!("d = {d}"));
                // a short trial: 5 % of a total of at least 20 spikes
                let total: u32 = c.spike_counts.iter().sum();
                let gt: u32 = g.spike_counts.iter().sum();
                assert!(total > 20, "the network should spike ({total})");
                assert!((gt as f64 - total as f64).abs() <= 0.05 * total as f64);
                let (gx, cx) = (g.x.as_ref().unwrap(), c.x.as_ref().unwrap());
                for t in 0..div {
                    for k in 0..8 {
                        let (a, b) = (gx[t * 8 + k], cx[t * 8 + k]);
                        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "x {a} vs {b}");
                    }
                }
            }
        }
    }
}

#[test]
fn spike_frequency_adaptation_matches_cpu_and_brakes_the_rate() {
    // The WGSL twin of the adaptive threshold V_th + beta a, a <- rho a + s, on mismatched chips
    // (20 %): V within 1e-4 until the spikes part, counts within 2 %, and the brake visible in
    // both engines (fewer spikes than with beta = 0).
    let Some(e) = engine() else { return };
    let (n, steps) = (96, 1000);
    let mut net = test_net(n, 16, 2, 2, 5);
    let inputs: Vec<Vec<f32>> = (0..2).map(|s| smooth_input(steps, 2, 1.0, s)).collect();
    let pert = Perturbation {
        mismatch: 0.2,
        noise: 0.01,
        ..Default::default()
    };
    let plain = run(&CpuEngine, &net, &pert, 17, 0..3, &inputs, 0, steps, ALL);
    net.params.adapt_beta = 0.05;
    net.params.adapt_rho = 0.95;
    let cpu = run(&CpuEngine, &net, &pert, 17, 0..3, &inputs, 0, steps, ALL);
    let gpu = run(&e, &net, &pert, 17, 0..3, &inputs, 0, steps, ALL);
    let total = |o: &EnsembleOutput| -> u64 {
        o.trials
            .iter()
            .flatten()
            .map(|t| t.spike_counts.iter().map(|&c| c as u64).sum::<u64>())
            .sum()
    };
    let (p, c, g) = (total(&plain), total(&cpu), total(&gpu));
    eprintln!("spikes: beta = 0 {p}, beta = 0.05 cpu {c} gpu {g}");
    assert!(
        (c as f64) < 0.9 * p as f64,
        "adaptation should brake ({c} vs {p})"
    );
    for (gi, ci) in gpu.trials.iter().zip(&cpu.trials) {
        for (g, c) in gi.iter().zip(ci) {
            assert_agrees_with_cpu(g, c, n, steps, "adaptation");
        }
    }
}

#[test]
fn a_768_neuron_ensemble_with_long_dispatches_matches_cpu() {
    // The audio-sized network over 1000 steps: the dispatches that llvmpipe's loop limit once
    // cut short (engine::gpu::dispatch) at this size.
    let Some(e) = engine() else { return };
    let net = test_net(768, 32, 2, 1, 21);
    let inputs = vec![smooth_input(1000, 2, 1.0, 8)];
    let pert = Perturbation {
        mismatch: 0.1,
        ..Default::default()
    };
    let rec = Record {
        x: false,
        spikes: true,
        v: false,
    };
    let cpu = run(&CpuEngine, &net, &pert, 3, 0..2, &inputs, 0, 1000, rec);
    let gpu = run(&e, &net, &pert, 3, 0..2, &inputs, 0, 1000, rec);
    for (gi, ci) in gpu.trials.iter().zip(&cpu.trials) {
        let (g, c) = (&gi[0], &ci[0]);
        let total: u32 = c.spike_counts.iter().sum();
        assert!(total > 1000, "the network should spike ({total})");
        let div = first_divergence(g, c, 1000);
        eprintln!("spikes identical for {div} of 1000 steps ({total} spikes)");
        assert_agrees_with_cpu(g, c, 768, 1000, "N = 768");
    }
}

/// Whether the adapter's shader compiler has llvmpipe's loop limit (see `engine::gpu::dispatch`).
fn has_loop_limit(e: &GpuEngine) -> bool {
    dispatch::loop_limit(e.context().raw_adapter_info()).is_some()
}

#[test]
fn results_do_not_depend_on_steps_per_dispatch() {
    // The same job cut into dispatches of K steps for several K: on one adapter the same shader
    // must give the same bits (the state crosses a dispatch boundary through f32 storage, which
    // is exact), so the outputs are compared exactly; each is also compared with the CPU.
    let Some(e) = engine() else { return };
    let (n, nc, steps) = (320, 16, 1000);
    let net = test_net(n, nc, 2, 2, 13);
    let inputs = vec![smooth_input(steps, 2, 1.0, 4)];
    let pert = Perturbation {
        mismatch: 0.2,
        noise: 0.01,
        silence: 0.1,
        ..Default::default()
    };
    let cpu = run(&CpuEngine, &net, &pert, 7, 0..2, &inputs, 0, steps, ALL);
    let mut first: Option<EnsembleOutput> = None;
    for k in [1usize, 2, 7, 64, 150, 170, 500, 1000] {
        let ek = GpuEngine::with_shared_context(e.shared_context())
            .with_steps_per_dispatch(StepsPerDispatch::AtMost(k));
        let out = run(&ek, &net, &pert, 7, 0..2, &inputs, 0, steps, ALL);
        let st = ek.last_stats();
        eprintln!(
            "K requested {k}: {} steps per dispatch, {} dispatches",
            st.steps_per_dispatch, st.dispatches
        );
        assert!(st.steps_per_dispatch <= k);
        assert_eq!(st.dispatches, steps.div_ceil(st.steps_per_dispatch));
        for (gi, ci) in out.trials.iter().zip(&cpu.trials) {
            assert_agrees_with_cpu(&gi[0], &ci[0], n, steps, &format!("K {k}"));
        }
        match &first {
            None => first = Some(out),
            Some(f) => assert!(*f == out, "K = {k} changed the output"),
        }
    }
}

/// GPU vs CPU for one trial on any conformant adapter: V within 1e-4 (a few ULP of |V| <= 2
/// accumulated over the steps, FMA or not) until the first step whose spikes differ (from then
/// on the trajectories part, as two rounding modes of a chaotic system do), and the spike count
/// within 2 % over the whole trial (the divergent part is a statistically equal run).
fn assert_agrees_with_cpu(g: &TrialOutput, c: &TrialOutput, n: usize, steps: usize, what: &str) {
    let div = first_divergence(g, c, steps);
    if g.v.is_some() && c.v.is_some() {
        assert_v_until_divergence(g, c, n, div, what);
    }
    let (gt, ct): (u32, u32) = (g.spike_counts.iter().sum(), c.spike_counts.iter().sum());
    assert!(ct > 100, "{what}: the network should spike ({ct})");
    assert!(
        (gt as f64 - ct as f64).abs() <= 0.02 * ct as f64,
        "{what}: spikes gpu {gt} cpu {ct} (identical for {div} of {steps} steps)"
    );
}

#[test]
fn the_planned_dispatch_fits_the_loop_limit_even_when_every_neuron_spikes() {
    // The worst case of the loop budget (engine::gpu::dispatch): every neuron spikes at every
    // step, so every spike loop runs its longest. The planned K must never be cut short (no
    // halving re-run: exactly ceil(T / K) dispatches), and on an adapter with the loop limit a
    // dispatch of the whole job must be (the shader's check turns it into an error).
    let Some(e) = engine() else { return };
    let (n, steps) = (768, 400);
    let mut net = test_net(n, 32, 2, 1, 23);
    net.params.bias = 1e3;
    net.w_fast.iter_mut().for_each(|w| *w = 0.0);
    let inputs = vec![smooth_input(steps, 2, 1.0, 9)];
    let pert = Perturbation::default();
    let rec = Record::default();
    let out = run(&e, &net, &pert, 5, 0..1, &inputs, 0, steps, rec);
    let st = e.last_stats();
    eprintln!(
        "saturated N = {n}: K = {}, {} dispatches",
        st.steps_per_dispatch, st.dispatches
    );
    let counts = &out.trials[0][0].spike_counts;
    assert!(
        counts.iter().all(|&c| c as usize == steps),
        "every neuron spikes every step"
    );
    assert_eq!(st.dispatches, steps.div_ceil(st.steps_per_dispatch));
    let whole = GpuEngine::with_shared_context(e.shared_context())
        .with_steps_per_dispatch(StepsPerDispatch::Unchecked(steps));
    let job = EnsembleJob {
        net: &net,
        perturbation: &pert,
        seed: 5,
        instances: 0..1,
        inputs: &inputs,
        trial_offset: 0,
        steps,
        record: rec,
    };
    match whole.simulate(&job) {
        Err(EngineError::Backend(m)) if has_loop_limit(&e) => {
            eprintln!("one dispatch of {steps} steps: {m}");
            assert!(m.contains("cut a loop short"), "{m}");
        }
        Ok(o) if !has_loop_limit(&e) => assert!(o == out, "one dispatch changed the output"),
        other => panic!(
            "loop limit {}: one dispatch of {steps} steps gave {:?}",
            has_loop_limit(&e),
            other.map(|o| o.synaptic_events)
        ),
    }
}

#[test]
fn one_and_three_synapse_types_simulate_the_same_on_cpu_and_gpu() {
    // The WGSL twin of the extra synapse types (Network::extra_synapses) on mismatched chips
    // (20 %, so every type's tau and factors are drawn) with membrane noise: one type (W_slow
    // alone, W_fast zero) and three (W_fast, W_slow and a 40 ms type). The tolerances are
    // assert_agrees_with_cpu's: V within 1e-4 until the spike trains part, counts within 2 %.
    let Some(e) = engine() else { return };
    let (n, nc, steps) = (64, 8, 600);
    // test_net's W_fast at a tenth: at full strength it drives every chip to saturation
    // (~500 Hz), where spike timing hardly matters; this one fires at tens of Hz
    let mut base = test_net(n, nc, 2, 2, 31);
    base.w_fast.iter_mut().for_each(|w| *w *= 0.1);
    let mut one = base.clone();
    one.w_fast.iter_mut().for_each(|w| *w = 0.0);
    let mut rng = StdRng::seed_from_u64(77);
    let w40: Vec<f32> = (0..n * n)
        .map(|k| {
            if k / n == k % n {
                0.0
            } else {
                rng.random_range(-0.01..0.01)
            }
        })
        .collect();
    let three = base.clone().with_synapse_type(40.0, w40).unwrap();
    let inputs: Vec<Vec<f32>> = (0..2)
        .map(|s| smooth_input(steps, 2, 0.5, s + 11))
        .collect();
    let pert = Perturbation {
        mismatch: 0.2,
        noise: 0.01,
        ..Default::default()
    };
    let mut outs = Vec::new();
    for (what, net) in [("one type", &one), ("three types", &three)] {
        let cpu = run(&CpuEngine, net, &pert, 19, 0..3, &inputs, 0, steps, ALL);
        let gpu = run(&e, net, &pert, 19, 0..3, &inputs, 0, steps, ALL);
        for (k, (gi, ci)) in gpu.trials.iter().zip(&cpu.trials).enumerate() {
            for (j, (g, c)) in gi.iter().zip(ci).enumerate() {
                let div = first_divergence(g, c, steps);
                eprintln!("{what} chip {k} trial {j}: spikes identical for {div} of {steps} steps");
                assert_agrees_with_cpu(g, c, n, steps, &format!("{what} chip {k} trial {j}"));
            }
        }
        // both count every type's propagated synapses alike
        let rel = (gpu.synaptic_events as f64 - cpu.synaptic_events as f64).abs()
            / cpu.synaptic_events as f64;
        assert!(rel <= 0.02, "{what}: synaptic events {rel}");
        let identical = gpu.trials == cpu.trials;
        if identical {
            assert_eq!(gpu.synaptic_events, cpu.synaptic_events);
        }
        // on adapters that do not contract a * b + c into FMA (lavapipe does not) the whole
        // output is bit-identical; it is reported, not required
        eprintln!("{what}: outputs bit-identical to the CPU: {identical}");
        outs.push((cpu, gpu));
    }
    let (three_cpu, three_gpu) = &outs[1];
    // the third type's currents persist across dispatches: dispatches of 7 steps give the same
    // bits as the planned ones
    let short = GpuEngine::with_shared_context(e.shared_context())
        .with_steps_per_dispatch(StepsPerDispatch::AtMost(7));
    let cut = run(&short, &three, &pert, 19, 0..3, &inputs, 0, steps, ALL);
    assert!(short.last_stats().dispatches >= steps / 7);
    assert!(
        cut == *three_gpu,
        "dispatches of 7 steps changed the output"
    );
    // and the third type matters: without it (the same W_fast and W_slow) every chip spikes
    // differently, on both engines
    let two_gpu = run(&e, &base, &pert, 19, 0..3, &inputs, 0, steps, ALL);
    let two_cpu = run(&CpuEngine, &base, &pert, 19, 0..3, &inputs, 0, steps, ALL);
    for k in 0..3 {
        for j in 0..2 {
            let (with, without) = (&three_gpu.trials[k][j], &two_gpu.trials[k][j]);
            assert_ne!(with.spikes, without.spikes, "gpu chip {k} trial {j}");
            assert_ne!(
                three_cpu.trials[k][j].spikes, two_cpu.trials[k][j].spikes,
                "cpu chip {k} trial {j}"
            );
            let (a, b): (u32, u32) = (
                with.spike_counts.iter().sum(),
                without.spike_counts.iter().sum(),
            );
            eprintln!("chip {k} trial {j}: {a} spikes with the 40 ms type, {b} without");
        }
    }
}

#[test]
fn the_planned_dispatch_fits_the_loop_limit_with_the_most_synapse_types() {
    // The loop budget with every extra synapse type (engine::gpu::dispatch): every neuron
    // spikes at every step and each of the 8 types propagates every spike, with 4 quads per
    // invocation (workgroup 8, N = 128) so the loops over the types nest inside the loops over
    // the owned quads. The planned K must never be cut short; on an adapter with the loop
    // limit, one dispatch of the whole job must be. No mismatch: the factors are no loops, and
    // without them the test stays quick on a software adapter.
    let Some(e) = engine() else { return };
    let e = GpuEngine::with_shared_context(e.shared_context()).with_workgroup_size(8);
    let (n, steps) = (128, 300);
    let mut net = test_net(n, 8, 2, 1, 29);
    net.params.bias = 1e3;
    net.w_fast.iter_mut().for_each(|w| *w = 0.0);
    for k in 0..robust_snn::snn::MAX_EXTRA_SYNAPSE_TYPES {
        let w = net.w_slow.iter().map(|w| 0.1 * w).collect();
        net = net.with_synapse_type(5.0 + 10.0 * k as f32, w).unwrap();
    }
    let inputs = vec![smooth_input(steps, 2, 1.0, 9)];
    let pert = Perturbation::default();
    let rec = Record::default();
    let out = run(&e, &net, &pert, 5, 0..1, &inputs, 0, steps, rec);
    let st = e.last_stats();
    eprintln!(
        "saturated N = {n}, 8 types: K = {}, {} dispatches",
        st.steps_per_dispatch, st.dispatches
    );
    let o = &out.trials[0][0];
    assert!(
        o.spike_counts.iter().all(|&c| c as usize == steps),
        "every neuron spikes every step"
    );
    assert_eq!(st.dispatches, steps.div_ceil(st.steps_per_dispatch));
    // the events of all nine recurrent matrices, counted as the CPU counts them
    let cpu = run(&CpuEngine, &net, &pert, 5, 0..1, &inputs, 0, steps, rec);
    assert_eq!(out.synaptic_events, cpu.synaptic_events);
    let whole = GpuEngine::with_shared_context(e.shared_context())
        .with_workgroup_size(8)
        .with_steps_per_dispatch(StepsPerDispatch::Unchecked(steps));
    let job = EnsembleJob {
        net: &net,
        perturbation: &pert,
        seed: 5,
        instances: 0..1,
        inputs: &inputs,
        trial_offset: 0,
        steps,
        record: rec,
    };
    match whole.simulate(&job) {
        Err(EngineError::Backend(m)) if has_loop_limit(&e) => {
            assert!(m.contains("cut a loop short"), "{m}");
        }
        Ok(o) if !has_loop_limit(&e) => assert!(o == out, "one dispatch changed the output"),
        other => panic!(
            "loop limit {}: one dispatch of {steps} steps gave {:?}",
            has_loop_limit(&e),
            other.map(|o| o.synaptic_events)
        ),
    }
}

#[test]
fn kernel_time_is_reported_where_the_adapter_times_its_dispatches() {
    let Some(gpu) = engine() else { return };
    let net = test_net(32, 8, 1, 1, 5);
    let pert = Perturbation {
        mismatch: 0.2,
        ..Perturbation::default()
    };
    // two jobs, each timed by its own passes only
    let timed = |steps: usize| {
        let inputs = vec![smooth_input(steps, 1, 1.0, 9)];
        let t0 = std::time::Instant::now();
        run(
            &gpu,
            &net,
            &pert,
            3,
            0..4,
            &inputs,
            0,
            steps,
            Record::default(),
        );
        (t0.elapsed().as_secs_f64(), gpu.last_stats().kernel_seconds)
    };
    let (wall_short, short) = timed(75);
    let (wall_long, long) = timed(300);
    let can_time = gpu
        .context()
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY);
    assert_eq!(
        short.is_some(),
        can_time,
        "kernel time exactly where timestamps exist"
    );
    if let (Some(s), Some(l)) = (short, long) {
        eprintln!("kernel {s:.4} s of {wall_short:.4} s wall; {l:.4} s of {wall_long:.4} s");
        // the passes run inside the job's wall time, and do take time
        assert!(s > 0.0 && s <= wall_short, "{s} vs wall {wall_short}");
        assert!(l > 0.0 && l <= wall_long, "{l} vs wall {wall_long}");
        // (no ratio between the two: timings on a shared machine are for benchmarks, not tests)
    }
}
