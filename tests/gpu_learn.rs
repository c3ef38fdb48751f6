//! GPU training (`GpuTrainer`) vs the CPU trainer (`learn::train_trial`). Every test skips (with a
//! printed notice) when no wgpu adapter exists; lavapipe (mesa-vulkan-drivers) is enough. Shapes
//! are tiny: software adapters are slow.

mod common;

use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng, rngs::StdRng};
use robust_snn::engine::EngineError;
use robust_snn::engine::gpu::{GpuContext, GpuEngine};
use robust_snn::learn::GpuTrainer;
use robust_snn::learn::{TrainTrialStats, train_trial};
use robust_snn::snn::{Network, SnnParams};

fn context() -> Option<Arc<GpuContext>> {
    match GpuContext::new() {
        Ok(c) => {
            eprintln!("gpu_learn tests on {:?}", c.adapter_info());
            Some(Arc::new(c))
        }
        Err(e) => {
            eprintln!("SKIPPED: no usable wgpu adapter ({e})");
            None
        }
    }
}

fn test_net(n: usize, nc: usize, c: usize, use_fast: bool, seed: u64) -> Network {
    let p = SnnParams {
        n,
        use_fast,
        ..Default::default()
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0xabc);
    let w_in: Vec<f32> = (0..c * nc).map(|_| rng.random_range(-1.0..1.0)).collect();
    let w_out: Vec<f32> = (0..nc).map(|_| rng.random_range(-0.5..0.5)).collect();
    Network::init(p, w_in, w_out, nc, c, 1, seed).unwrap()
}

use robust_snn::engine::smooth_input;

/// A toy teacher: tau_j dh/dt = -h + W_inᵀ c, x = tanh(h), tau_j from 20 to 80 ms.
fn toy_teacher(net: &Network, input: &[f32]) -> Vec<f32> {
    let (nc, c) = (net.nc, net.n_in);
    let steps = input.len() / c;
    let mut h = vec![0f32; nc];
    let mut x = vec![0f32; steps * nc];
    for t in 0..steps {
        for j in 0..nc {
            let tau = 0.02 + 0.06 * j as f32 / nc as f32;
            let u: f32 = (0..c)
                .map(|ch| net.w_in_teacher[ch * nc + j] * input[t * c + ch])
                .sum();
            h[j] += 1e-3 / tau * (-h[j] + u);
            x[t * nc + j] = (3.0 * h[j]).tanh();
        }
    }
    x
}

/// (max |a - b|, max |b|).
fn max_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (d, b.iter().fold(0f32, |m, y| m.max(y.abs())))
}

#[test]
fn gpu_training_matches_cpu() {
    let Some(ctx) = context() else { return };
    let (n, nc, c) = (48, 12, 2);
    let (k, eta, seed) = (100.0f32, 1e-4f32, 42u64);
    // with W_fast this tiny network fires fast (about 300 Hz, many updates per step); without
    // it, at about 10 Hz; the third case adds spike-frequency adaptation (beta 0.05, rho 0.95)
    for (use_fast, amp, beta) in [
        (true, 1.0f32, 0.0f32),
        (false, 2.0, 0.0),
        (false, 2.0, 0.05),
    ] {
        let mut net0 = test_net(n, nc, c, use_fast, 5);
        net0.params.adapt_beta = beta;
        net0.params.adapt_rho = 0.95;
        // two trials (100 + 60 steps): W_slow and the adaptive K carry over between them
        let trials: Vec<(Vec<f32>, Vec<f32>, u32)> = [(100usize, 7u64, 3u32), (60, 8, 4)]
            .iter()
            .map(|&(steps, s, j)| {
                let inp = smooth_input(steps, c, amp, s);
                let x = toy_teacher(&net0, &inp);
                (inp, x, j)
            })
            .collect();
        let mut cpu_net = net0.clone();
        let mut gpu_nets = vec![net0.clone()];
        let mut tr = GpuTrainer::new(ctx.clone(), &gpu_nets).unwrap();
        for (ti, (inp, x, j)) in trials.iter().enumerate() {
            let cs = train_trial(&mut cpu_net, inp, x, k, eta, seed, *j).unwrap();
            let t0 = Instant::now();
            let gs = tr
                .train_trial(&[inp], &[x], k, eta, &[seed], &[*j])
                .unwrap()
                .remove(0);
            let secs = t0.elapsed().as_secs_f64();
            tr.download(&mut gpu_nets).unwrap();
            let (d, scale) = max_diff(&gpu_nets[0].w_slow, &cpu_net.w_slow);
            eprintln!(
                "fast {use_fast}, beta {beta}, trial {ti} ({} steps): GPU {secs:.3} s ({} dispatches so far); \
                 spikes cpu {} gpu {}; R cpu {:.5} gpu {:.5}; W_slow max |diff| {d:.3e}, \
                 max |W| {scale:.3e}, relative {:.3e}",
                inp.len() / c,
                tr.dispatches(),
                cs.spikes,
                gs.spikes,
                cs.recon_error,
                gs.recon_error,
                d / scale
            );
            assert!(cs.spikes > 20, "the network should spike ({})", cs.spikes);
            assert!(scale > 0.0, "W_slow should change");
            let ds = (gs.spikes as f64 - cs.spikes as f64).abs();
            assert!(ds <= 0.02 * cs.spikes as f64, "spikes {gs:?} vs {cs:?}");
            let dr = (gs.recon_error - cs.recon_error).abs() / cs.recon_error.abs();
            if gs.spikes == cs.spikes {
                // the same spikes (as on adapters without FMA contraction, lavapipe among them):
                // W_slow differs by rounding only. Each element is a sum of at most 160 updates
                // eta r (F e), each within ~(Nc + 4) ULP of the CPU's with FMA or not. Rounding
                // errors of independent updates add like a random walk: sqrt(160) x 16 x 6e-8
                // ~ 1.2e-5 of the sum of |updates|; 1e-4 of max |W| is about 8x that (the
                // all-same-sign worst case, 160 x 16 x 6e-8 ~ 1.5e-4, does not occur: the
                // updates follow the sign of the error, which changes within a trial)
                assert!(d <= 1e-4 * scale, "W_slow differs by {d} (max |W| {scale})");
                assert!(
                    dr <= 1e-3,
                    "R gpu {} cpu {}",
                    gs.recon_error,
                    cs.recon_error
                );
            } else {
                // a spike flipped (FMA contraction, 2.5-ULP division): from then on the two runs
                // are two statistically equal trainings, and R, a mean over the trial, agrees to
                // a few per cent
                assert!(
                    dr <= 0.05,
                    "R gpu {} cpu {}",
                    gs.recon_error,
                    cs.recon_error
                );
            }
            assert!((0..n).all(|i| gpu_nets[0].w_slow[i * n + i] == 0.0));
        }
    }
}

#[test]
fn networks_trained_together_equal_each_alone() {
    let Some(ctx) = context() else { return };
    let (n, nc, c, steps) = (40, 8, 2, 80);
    let nets: Vec<Network> = (0..3).map(|s| test_net(n, nc, c, true, 10 + s)).collect();
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|s| smooth_input(steps, c, 1.0, 20 + s))
        .collect();
    let targets: Vec<Vec<f32>> = nets
        .iter()
        .zip(&inputs)
        .map(|(net, inp)| toy_teacher(net, inp))
        .collect();
    let seeds = [1u64, 2, 3];
    let trial_idx = [0u32, 5, 9];
    let (k, eta) = (100.0, 1e-4);
    let inp: Vec<&[f32]> = inputs.iter().map(|v| &v[..]).collect();
    let tgt: Vec<&[f32]> = targets.iter().map(|v| &v[..]).collect();

    let run = |cap: usize| -> (Vec<Network>, Vec<TrainTrialStats>, (usize, usize)) {
        let mut out = nets.clone();
        let mut tr = GpuTrainer::with_max_nets_per_chunk(ctx.clone(), &out, cap).unwrap();
        let st = tr
            .train_trial(&inp, &tgt, k, eta, &seeds, &trial_idx)
            .unwrap();
        tr.download(&mut out).unwrap();
        (out, st, tr.chunking())
    };
    let (together, st_together, chunking) = run(usize::MAX);
    assert_eq!(chunking, (3, 1));
    let (chunked, st_chunked, chunking) = run(2);
    assert_eq!(chunking, (2, 2));
    assert_eq!(st_chunked, st_together);
    for i in 0..3 {
        assert_eq!(chunked[i].w_slow, together[i].w_slow, "net {i} chunked");
        let mut alone = vec![nets[i].clone()];
        let mut tr = GpuTrainer::new(ctx.clone(), &alone).unwrap();
        let st = tr
            .train_trial(&[inp[i]], &[tgt[i]], k, eta, &[seeds[i]], &[trial_idx[i]])
            .unwrap();
        tr.download(&mut alone).unwrap();
        assert_eq!(st[0], st_together[i], "net {i} stats");
        assert_eq!(alone[0].w_slow, together[i].w_slow, "net {i} W_slow");
        assert!(st[0].spikes > 20);
        assert!(together[i].w_slow.iter().any(|&w| w != 0.0));
    }
    assert_ne!(together[0].w_slow, together[1].w_slow);
    // upload restores weights: training again from the originals repeats the result
    let mut again = nets.clone();
    let mut tr = GpuTrainer::new(ctx.clone(), &again).unwrap();
    tr.train_trial(&inp, &tgt, k, eta, &seeds, &trial_idx)
        .unwrap();
    tr.upload(&nets).unwrap();
    let st = tr
        .train_trial(&inp, &tgt, k, eta, &seeds, &trial_idx)
        .unwrap();
    tr.download(&mut again).unwrap();
    assert_eq!(st, st_together);
    for i in 0..3 {
        assert_eq!(again[i].w_slow, together[i].w_slow);
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(ctx) = context() else { return };
    // a trainer on the context of an existing engine
    let engine = GpuEngine::with_shared_context(ctx);
    let ctx = engine.shared_context();
    let net = test_net(24, 4, 2, true, 1);
    let inp = smooth_input(10, 2, 1.0, 1);
    let tgt = vec![0.1f32; 10 * 4];
    assert!(matches!(
        GpuTrainer::new(ctx.clone(), &[]),
        Err(EngineError::InvalidJob(_))
    ));
    let other = test_net(28, 4, 2, true, 1);
    assert!(matches!(
        GpuTrainer::new(ctx.clone(), &[net.clone(), other.clone()]),
        Err(EngineError::InvalidParams(_))
    ));
    let mut broken = net.clone();
    broken.w_slow.pop();
    assert!(matches!(
        GpuTrainer::new(ctx.clone(), &[broken]),
        Err(EngineError::Shape { .. })
    ));
    let mut tr = GpuTrainer::new(ctx.clone(), &[net.clone(), net.clone()]).unwrap();
    let ok = |tr: &mut GpuTrainer, i: &[&[f32]], t: &[&[f32]], k: f32, s: &[u64], j: &[u32]| {
        tr.train_trial(i, t, k, 1e-4, s, j)
    };
    let shape = |r: Result<Vec<TrainTrialStats>, EngineError>| {
        assert!(matches!(r, Err(EngineError::Shape { .. })), "{r:?}");
    };
    // one network's data missing
    shape(ok(&mut tr, &[&inp], &[&tgt], 10.0, &[1, 2], &[0, 1]));
    shape(ok(&mut tr, &[&inp, &inp], &[&tgt], 10.0, &[1, 2], &[0, 1]));
    shape(ok(
        &mut tr,
        &[&inp, &inp],
        &[&tgt, &tgt],
        10.0,
        &[1],
        &[0, 1],
    ));
    shape(ok(
        &mut tr,
        &[&inp, &inp],
        &[&tgt, &tgt],
        10.0,
        &[1, 2],
        &[0],
    ));
    // input not T x C, different T, target not T x Nc
    shape(ok(
        &mut tr,
        &[&inp, &inp[..19]],
        &[&tgt, &tgt],
        10.0,
        &[1, 2],
        &[0, 1],
    ));
    shape(ok(
        &mut tr,
        &[&inp, &inp[..18]],
        &[&tgt, &tgt],
        10.0,
        &[1, 2],
        &[0, 1],
    ));
    shape(ok(
        &mut tr,
        &[&inp, &inp],
        &[&tgt, &tgt[..36]],
        10.0,
        &[1, 2],
        &[0, 1],
    ));
    let r = ok(
        &mut tr,
        &[&inp, &inp],
        &[&tgt, &tgt],
        f32::NAN,
        &[1, 2],
        &[0, 1],
    );
    assert!(matches!(r, Err(EngineError::InvalidParams(_))), "{r:?}");
    // download into the wrong networks
    let mut one = vec![net.clone()];
    assert!(matches!(
        tr.download(&mut one),
        Err(EngineError::Shape { .. })
    ));
    let mut wrong = vec![other.clone(), other];
    assert!(matches!(
        tr.download(&mut wrong),
        Err(EngineError::Shape { .. })
    ));
    // empty trials are fine (no steps, like the CPU trainer), and a good one still works
    let st = ok(&mut tr, &[&[], &[]], &[&[], &[]], 10.0, &[1, 2], &[0, 1]).unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].spikes, 0);
    let st = ok(
        &mut tr,
        &[&inp, &inp],
        &[&tgt, &tgt],
        10.0,
        &[1, 2],
        &[0, 1],
    )
    .unwrap();
    assert_eq!(st.len(), 2);
    let mut nets = vec![net.clone(), net];
    tr.download(&mut nets).unwrap();
}

#[test]
fn a_training_run_on_the_gpu_follows_the_cpu_run_over_epochs() {
    // The trainer's whole loop (several trials per epoch, weights kept on the device between
    // trials and synced per epoch, validation between epochs) on both rules from one seed, at
    // the default XOR size (N = 320, Nc = 64, 1000-step trials): dispatches of this size that
    // llvmpipe's loop limit once cut short (engine::gpu::dispatch).
    use robust_snn::config::TrainingConfig;
    let Some(ctx) = context() else { return };
    let teacher = common::random_teacher(64, 3);
    let task = common::xor_task(1000, 5);
    let params = SnnParams {
        n: 320,
        ..SnnParams::default()
    };
    let plain = TrainingConfig {
        epochs: 2,
        samples_per_epoch: 2,
        eta: 1e-6,
        k: 75.0,
        val_trials: 2,
        test_trials: 2,
        ..TrainingConfig::default()
    };
    // mismatch-ensemble training (the GPU ensemble trainer), alone and with 4-bit QAT
    let robust = TrainingConfig {
        robust: RobustTraining {
            instances: 3,
            sigma: 0.1,
            sigma_start: 0.02,
            ramp: 0.5,
            nominal_share: 0.34,
            silence: 0.2,
            max_rate_hz: 100.0,
            ..RobustTraining::default()
        },
        ..plain.clone()
    };
    let robust_qat = TrainingConfig {
        qat_bits: 4,
        ..robust.clone()
    };
    // hardware-aware: the chips run the DYNAP-SE1 network the exporter writes
    let hardware = TrainingConfig {
        hardware: robust_snn::config::HardwareTraining {
            target: robust_snn::config::HardwareTarget::Dynapse1,
            mask_after: 0.5,
            dynap_mismatch: true,
        },
        ..robust.clone()
    };
    let dynapse1: Arc<dyn robust_snn::learn::hardware::ChipModel> =
        Arc::new(robust_snn::export::dynapse1::onchip::Dynapse1Chip::new(
            robust_snn::export::dynapse1::map::MapOptions {
                input_max_count: 8,
                ..Default::default()
            },
        ));
    let dynap_cv = robust_snn::config::DynapMismatch::default().cv();
    for (what, cfg, chip) in [
        ("plain", plain, None),
        ("ensemble", robust, None),
        ("ensemble + QAT", robust_qat, None),
        (
            "ensemble, hardware-aware",
            hardware,
            Some((dynapse1, Some(dynap_cv))),
        ),
    ] {
        eprintln!("-- {what}");
        follows_the_cpu_run(&ctx, &teacher, &task, &params, &cfg, chip);
    }
}

fn follows_the_cpu_run(
    ctx: &Arc<GpuContext>,
    teacher: &robust_snn::teacher::TeacherWeights,
    task: &robust_snn::tasks::xor::XorTask,
    params: &SnnParams,
    cfg: &robust_snn::config::TrainingConfig,
    chip: Option<(
        Arc<dyn robust_snn::learn::hardware::ChipModel>,
        Option<robust_snn::chip::MismatchCv>,
    )>,
) {
    use robust_snn::learn::trainer::{TrainOptions, train_networks};
    let make = |seed: u64| {
        Network::init(
            params.clone(),
            teacher.w_in.clone(),
            teacher.w_out.clone(),
            64,
            1,
            1,
            seed,
        )
    };
    let run = |gpu| {
        train_networks(
            &make,
            teacher,
            task,
            cfg,
            9,
            &TrainOptions {
                checkpoint: None,
                resume: false,
                show_progress: false,
                gpu,
                chip: chip.clone(),
            },
        )
        .unwrap()
    };
    let cpu = run(None);
    let gpu = run(Some(ctx.clone()));
    assert_eq!(cpu[0].history.len(), gpu[0].history.len());
    // Same spikes in every epoch (adapters without FMA contraction, lavapipe among them): the
    // runs differ by rounding only, R to 1e-3 and W_slow to 1e-3 of max |W| (sums of ~4000
    // rank-1 updates, each within ~(Nc + 4) ULP). Otherwise a spike flipped somewhere and the
    // runs are two statistically equal trainings: R, a mean over trials, within 5 %.
    let same_spikes = cpu[0]
        .history
        .iter()
        .zip(&gpu[0].history)
        .all(|(c, g)| c.mean_rate_hz == g.mean_rate_hz && c.val_accuracy == g.val_accuracy);
    let tol = if same_spikes { 1e-3 } else { 0.05 };
    for (c, g) in cpu[0].history.iter().zip(&gpu[0].history) {
        eprintln!(
            "epoch {}: train R cpu {:.5} gpu {:.5}, val R cpu {:.5} gpu {:.5}",
            c.epoch, c.train_r, g.train_r, c.val_r, g.val_r
        );
        assert!((c.train_r - g.train_r).abs() <= tol * c.train_r, "train R");
        assert!((c.val_r - g.val_r).abs() <= tol * c.val_r, "val R");
    }
    let scale = cpu[0].net.w_slow.iter().fold(0f32, |m, w| m.max(w.abs()));
    assert!(scale > 0.0, "training changed nothing");
    let diff = cpu[0]
        .net
        .w_slow
        .iter()
        .zip(&gpu[0].net.w_slow)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("W_slow max |diff| {diff:e} of max |w| {scale:e} (same spikes: {same_spikes})");
    if same_spikes {
        assert!(diff <= 1e-3 * scale, "W_slow diverged: {diff} of {scale}");
    }
}

#[test]
fn training_does_not_depend_on_steps_per_dispatch() {
    // Two trials of the rule at several K: on one adapter the same shader gives the same bits
    // whatever the dispatch boundaries (the state and W_slow cross them through f32 storage), so
    // W_slow and the statistics are compared exactly.
    use robust_snn::engine::gpu::StepsPerDispatch;
    let Some(ctx) = context() else { return };
    let (n, nc, c, steps) = (96, 16, 2, 300);
    let net0 = test_net(n, nc, c, true, 17);
    let trials: Vec<(Vec<f32>, Vec<f32>)> = [21u64, 22]
        .iter()
        .map(|&s| {
            let inp = smooth_input(steps, c, 1.0, s);
            let x = toy_teacher(&net0, &inp);
            (inp, x)
        })
        .collect();
    let mut first: Option<(Vec<f32>, Vec<TrainTrialStats>)> = None;
    for k in [1usize, 2, 7, 64, 150, 170, 500, 1000] {
        let mut nets = vec![net0.clone()];
        let mut tr = GpuTrainer::new(ctx.clone(), &nets)
            .unwrap()
            .with_steps_per_dispatch(StepsPerDispatch::AtMost(k));
        let mut stats = Vec::new();
        for (j, (inp, x)) in trials.iter().enumerate() {
            stats.extend(
                tr.train_trial(&[inp], &[x], 100.0, 1e-4, &[3], &[j as u32])
                    .unwrap(),
            );
        }
        tr.download(&mut nets).unwrap();
        eprintln!(
            "K requested {k}: {} steps per dispatch, {} dispatches, spikes {:?}",
            tr.steps_per_dispatch(),
            tr.dispatches(),
            stats.iter().map(|s| s.spikes).collect::<Vec<_>>()
        );
        assert!(tr.steps_per_dispatch() <= k);
        assert_eq!(tr.dispatches(), 2 * steps.div_ceil(tr.steps_per_dispatch()));
        assert!(stats[0].spikes > 20, "the network should spike");
        let w = nets.remove(0).w_slow;
        assert!(w.iter().any(|&x| x != 0.0), "W_slow should change");
        match &first {
            None => first = Some((w, stats)),
            Some((w0, s0)) => {
                assert!(*w0 == w, "K = {k} changed W_slow");
                assert_eq!(*s0, stats, "K = {k} changed the statistics");
            }
        }
    }
}

#[test]
fn a_dispatch_cut_short_by_the_loop_limit_is_an_error() {
    // One dispatch of a whole 300-step trial at N = 320 needs about 4e5 loop iterations per
    // invocation; llvmpipe allows 65535 and then silently ends every loop. The shader's loop
    // check must turn that into an error (W_slow is updated in place: no silent wrong weights).
    // On an adapter without such a limit the same dispatch must equal the planned ones.
    use robust_snn::engine::gpu::{StepsPerDispatch, dispatch};
    let Some(ctx) = context() else { return };
    let (n, nc, c, steps) = (320, 16, 1, 300);
    let net0 = test_net(n, nc, c, true, 19);
    let inp = smooth_input(steps, c, 1.0, 5);
    let x = toy_teacher(&net0, &inp);
    let train = |req| {
        let mut nets = vec![net0.clone()];
        let mut tr = GpuTrainer::new(ctx.clone(), &nets)
            .unwrap()
            .with_steps_per_dispatch(req);
        let st = tr.train_trial(&[&inp], &[&x], 100.0, 1e-4, &[3], &[0]);
        st.map(|st| {
            tr.download(&mut nets).unwrap();
            (st, nets.remove(0).w_slow)
        })
    };
    let planned = train(StepsPerDispatch::Auto).unwrap();
    let limited = dispatch::loop_limit(ctx.raw_adapter_info()).is_some();
    match train(StepsPerDispatch::Unchecked(steps)) {
        Err(EngineError::Backend(m)) if limited => {
            eprintln!("one dispatch of {steps} steps: {m}");
            assert!(m.contains("cut a loop short"), "{m}");
        }
        Ok(one) if !limited => assert!(one == planned, "one dispatch changed the training"),
        other => panic!("loop limit {limited}: {:?}", other.map(|o| o.0)),
    }
}

// ---- mismatch-ensemble training: GpuEnsembleTrainer vs learn::ensemble (the CPU twin)

use robust_snn::chip::Instance;
use robust_snn::config::RobustTraining;
use robust_snn::learn::GpuEnsembleTrainer;
use robust_snn::learn::ensemble::{
    ChipTrial, TrialSettings, draw_chips, train_trial_ensemble, train_trial_ensemble_shadow,
};

/// A network with a nonzero W_slow, so that its mismatch (and online learning) matters.
fn ensemble_net(use_fast: bool) -> Network {
    let mut net = test_net(48, 12, 2, use_fast, 5);
    let n = net.n;
    for (i, w) in net.w_slow.iter_mut().enumerate() {
        if i / n != i % n {
            *w = ((i as f32) * 0.37).sin() * 0.02;
        }
    }
    net
}

/// Compares the GPU's and the CPU's chips and weights after one trial. The chips run the same
/// function in two compilers: when every chip spikes alike (lavapipe does not contract FMAs),
/// the weights differ by rounding only: each element of the mean update is a sum of at most
/// T = 100 rank-1 terms per chip, each within ~(Nc + 4) ULP of the CPU's; like the single-network
/// test (gpu_training_matches_cpu) 1e-4 of the largest update bounds that with a wide margin,
/// plus the rounding of W = W0 + mean itself (2 ULP of |W0|). A flipped spike makes two
/// statistically equal trials: R then agrees to a few per cent.
fn compare_ensemble(
    what: &str,
    w0: &[f32],
    (gpu_w, gpu): (&[f32], &[ChipTrial]),
    (cpu_w, cpu): (&[f32], &[ChipTrial]),
) {
    assert_eq!(gpu.len(), cpu.len());
    let same_spikes = gpu
        .iter()
        .zip(cpu)
        .all(|(g, c)| g.stats.spikes == c.stats.spikes);
    for (g, c) in gpu.iter().zip(cpu) {
        assert_eq!(g.index, c.index);
        assert!(c.stats.spikes > 20, "{what}: chip {} should spike", c.index);
        let ds = (g.stats.spikes as f64 - c.stats.spikes as f64).abs();
        assert!(ds <= 0.02 * c.stats.spikes as f64, "{what}: {g:?} vs {c:?}");
        let dr = (g.stats.recon_error - c.stats.recon_error).abs() / c.stats.recon_error;
        assert!(
            dr <= if same_spikes { 1e-3 } else { 0.05 },
            "{what}: {g:?} vs {c:?}"
        );
    }
    let max_dw = cpu_w
        .iter()
        .zip(w0)
        .fold(0f64, |m, (&w, &a)| m.max((w as f64 - a as f64).abs()));
    let max_w0 = w0.iter().fold(0f32, |m, w| m.max(w.abs())) as f64;
    assert!(max_dw > 0.0, "{what}: the trial should move W_slow");
    let d = gpu_w
        .iter()
        .zip(cpu_w)
        .fold(0f64, |m, (&g, &c)| m.max((g as f64 - c as f64).abs()));
    eprintln!(
        "{what}: spikes {:?} (same: {same_spikes}); max |dW| {max_dw:.3e}, max |GPU - CPU| {d:.3e}",
        gpu.iter().map(|c| c.stats.spikes).collect::<Vec<_>>()
    );
    if same_spikes {
        let tol = 1e-4 * max_dw + 2.0 * f32::EPSILON as f64 * max_w0;
        assert!(d <= tol, "{what}: W_slow differs by {d} (tolerance {tol})");
    } else {
        // two equal trainings: the updates still agree in direction and size
        let (mut dot, mut gg, mut cc) = (0f64, 0f64, 0f64);
        for ((&g, &c), &a) in gpu_w.iter().zip(cpu_w).zip(w0) {
            let (x, y) = (g as f64 - a as f64, c as f64 - a as f64);
            dot += x * y;
            gg += x * x;
            cc += y * y;
        }
        let corr = dot / (gg.sqrt() * cc.sqrt());
        assert!(corr > 0.9, "{what}: updates correlate {corr}");
    }
}

fn robust_chips(full: bool, instances: usize) -> RobustTraining {
    RobustTraining {
        instances,
        sigma: 0.2,
        sigma_start: 0.2,
        full,
        nominal_share: 0.25,
        noise: 0.02,
        silence: 0.1,
        ..RobustTraining::default()
    }
}

fn at(trial_index: u32, max_rate_hz: f32) -> TrialSettings {
    TrialSettings {
        k: 100.0,
        eta: 1e-4,
        trial_index,
        max_rate_hz,
    }
}

/// Two trials (W_slow carries over between them) of 4 chips: one nominal, three mismatched with
/// noise and silenced neurons; paper mode (procedural W_slow factors, shared tau_out) with
/// W_fast and adaptation, and full mode (W_fast factors, per-neuron tau_out: the dense decoder).
#[test]
fn gpu_ensemble_training_matches_cpu() {
    let Some(ctx) = context() else { return };
    for (full, use_fast, beta) in [
        (false, true, 0.05f32),
        (true, true, 0.0),
        (false, false, 0.0),
    ] {
        let mut net = ensemble_net(use_fast);
        net.params.adapt_beta = beta;
        net.params.adapt_rho = 0.95;
        let r = robust_chips(full, 4);
        let w0 = net.w_slow.clone();
        let mut cpu = net.clone();
        let mut tr = GpuEnsembleTrainer::new(ctx.clone(), &net, 4).unwrap();
        let mut prev = w0.clone();
        for (trial, steps, s) in [(3u32, 100usize, 7u64), (4, 60, 8)] {
            let input = smooth_input(steps, 2, 2.0, s);
            let x = toy_teacher(&net, &input);
            let chips: Vec<Instance> = draw_chips(&net, &r, 11, trial, 0.2);
            assert_eq!(chips[0].tau_mem[0], net.params.tau_mem_s());
            // the CPU runs from the GPU's weights of the previous trial, so that each trial
            // is compared on its own
            cpu.w_slow = prev.clone();
            let c = train_trial_ensemble(&mut cpu, &chips, &input, &x, &at(trial, 0.0)).unwrap();
            let g = tr
                .train_trial(&net, &chips, &input, &x, &at(trial, 0.0))
                .unwrap();
            let gw = tr.w_slow().unwrap();
            let what = format!("full {full}, fast {use_fast}, beta {beta}, trial {trial}");
            compare_ensemble(&what, &prev, (&gw, &g), (&cpu.w_slow, &c));
            assert!((0..net.n).all(|i| gw[i * net.n + i] == 0.0));
            prev = gw;
        }
    }
}

/// Quantisation-aware ensemble training: the chips run the 4-bit network with W_slow fixed
/// within the trial, and the mean update moves the float shadow.
#[test]
fn gpu_qat_ensemble_moves_the_shadow_like_the_cpu() {
    let Some(ctx) = context() else { return };
    let net = ensemble_net(true);
    let running = net.quantized(4);
    let r = robust_chips(false, 3);
    let chips = draw_chips(&running, &r, 11, 5, 0.2);
    let input = smooth_input(100, 2, 2.0, 9);
    let x = toy_teacher(&net, &input);
    let mut shadow = net.w_slow.clone();
    let c = train_trial_ensemble_shadow(&running, &mut shadow, &chips, &input, &x, &at(5, 0.0))
        .unwrap();
    let mut tr = GpuEnsembleTrainer::with_shadow(ctx.clone(), &running, &net.w_slow, 3).unwrap();
    let g = tr
        .train_trial(&running, &chips, &input, &x, &at(5, 0.0))
        .unwrap();
    compare_ensemble(
        "qat",
        &net.w_slow,
        (&tr.shadow().unwrap(), &g),
        (&shadow, &c),
    );
    // the running weights stay on their grid
    assert_eq!(tr.w_slow().unwrap(), running.w_slow);
    // a new running W_slow is what the chips run next
    let requantised = robust_snn::snn::quantize::quantize(&shadow, 4);
    tr.set_running_w_slow(&requantised).unwrap();
    assert_eq!(tr.w_slow().unwrap(), requantised);
}

/// Chunks (5 chips in chunks of 2) give the same chips and, up to the order of the mean's sum,
/// the same weights; a rate limit below every chip's rate leaves W_slow where it was, as on the
/// CPU.
#[test]
fn chunked_ensemble_training_equals_one_chunk_and_the_rate_guard_holds() {
    let Some(ctx) = context() else { return };
    let net = ensemble_net(true);
    let r = robust_chips(false, 5);
    let chips = draw_chips(&net, &r, 11, 2, 0.2);
    let input = smooth_input(80, 2, 2.0, 3);
    let x = toy_teacher(&net, &input);
    let mut one = GpuEnsembleTrainer::new(ctx.clone(), &net, 5).unwrap();
    assert_eq!(one.chunking(), (5, 1));
    let mut chunked =
        GpuEnsembleTrainer::with_max_chips_per_chunk(ctx.clone(), &net, 5, 2).unwrap();
    assert_eq!(chunked.chunking(), (2, 3));
    let a = one
        .train_trial(&net, &chips, &input, &x, &at(2, 0.0))
        .unwrap();
    let b = chunked
        .train_trial(&net, &chips, &input, &x, &at(2, 0.0))
        .unwrap();
    assert_eq!(a, b);
    let (wa, wb) = (one.w_slow().unwrap(), chunked.w_slow().unwrap());
    let max_dw = wa
        .iter()
        .zip(&net.w_slow)
        .fold(0f32, |m, (w, v)| m.max((w - v).abs()));
    let (d, _) = max_diff(&wa, &wb);
    // the mean of 5 updates summed in another order: a few ULP of the largest
    assert!(d <= 8.0 * f32::EPSILON * (max_dw + 0.02), "{d}");
    // fewer chips than the capacity use the first chunks only
    chunked.set_running_w_slow(&net.w_slow).unwrap();
    let few = chunked
        .train_trial(&net, &chips[..3], &input, &x, &at(2, 0.0))
        .unwrap();
    assert_eq!(few[..], a[..3]);

    let mut guarded = GpuEnsembleTrainer::new(ctx.clone(), &net, 5).unwrap();
    let g = guarded
        .train_trial(&net, &chips, &input, &x, &at(2, 1e-3))
        .unwrap();
    assert!(g.iter().all(|c| c.skipped));
    assert_eq!(guarded.w_slow().unwrap(), net.w_slow);
    let mut cpu = net.clone();
    let c = train_trial_ensemble(&mut cpu, &chips, &input, &x, &at(2, 1e-3)).unwrap();
    assert!(c.iter().all(|c| c.skipped));

    // bad input is an error, not a panic
    assert!(
        guarded
            .train_trial(&net, &[], &input, &x, &at(2, 0.0))
            .is_err()
    );
    let six: Vec<Instance> = draw_chips(&net, &robust_chips(false, 6), 11, 2, 0.2);
    assert!(
        guarded
            .train_trial(&net, &six, &input, &x, &at(2, 0.0))
            .is_err()
    );
    assert!(
        guarded
            .train_trial(&net, &chips, &input[1..], &x, &at(2, 0.0))
            .is_err()
    );
}
