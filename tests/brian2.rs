//! Brian2 as an independent reference simulator of the CPU engine.
//!
//! A network of the default XOR shape (configs/xor.toml: N = 320, the robust recipe's
//! spike-frequency adaptation) with a seeded random W_slow of a trained one's magnitude is saved
//! as a run folder, exported with `robust-snn export --format nir --instance K --mismatch 0.2`,
//! and each graph (the nominal network and chip instance K) is re-simulated by Brian2 2.9 from
//! the graph alone (tests/python/brian2_reference.py, numpy code generation, float32) on the
//! input of XOR trial 0, starting from the engine's initial membrane potentials. The spike
//! trains, membrane potentials and task output are compared with the CPU engine's.

mod common;

use std::path::Path;
use std::process::Command;

use robust_snn::chip::{Instance, MismatchMode, Perturbation};
use robust_snn::config::Config;
use robust_snn::engine::{CpuEngine, Engine, EnsembleJob, Record, TrialOutput};
use robust_snn::snn::Network;
use robust_snn::tasks::Split;

/// Chip instance of the mismatched case and its sigma (the study's 20 % level).
const INSTANCE: u32 = 3;
const SIGMA: f32 = 0.2;

/// xorshift64, uniform in [-1, 1): the same weights on every machine.
fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The network: configs/xor.toml's snn section, random teacher weights of the teacher's
/// initial magnitude (W_in = input_scale (U - 0.5)), and a dense random W_slow of standard
/// deviation 0.0055, that of the ADS-trained N = 320 ECG network (|W| <= 0.0095 here, 0.05 there).
fn network(cfg: &Config) -> Network {
    let task = cfg.task();
    let (nc, c, o) = (cfg.teacher.hidden, task.channels(), task.outputs());
    let mut u = uniform(0x9E37_79B9_7F4A_7C15);
    let w_in: Vec<f32> = (0..c * nc)
        .map(|_| cfg.teacher.input_scale * 0.5 * u())
        .collect();
    let w_out: Vec<f32> = (0..nc * o).map(|_| 0.2 * u()).collect();
    let mut net = Network::init(cfg.snn.clone(), w_in, w_out, nc, c, o, cfg.seed).unwrap();
    let n = net.n;
    net.w_slow = (0..n * n).map(|_| 0.0095 * u()).collect();
    net
}

/// What one simulator produced for one trial.
struct Run {
    /// (step, neuron), in time order, ascending neuron within a step.
    spikes: Vec<(u32, u32)>,
    /// T x N, after the step's reset.
    v: Vec<f32>,
    /// T x n_out.
    y: Vec<f32>,
}

fn engine_run(net: &Network, pert: &Perturbation, seed: u64, index: u32, input: &[f32]) -> Run {
    let steps = input.len() / net.n_in;
    let job = EnsembleJob {
        net,
        perturbation: pert,
        seed,
        instances: index..index + 1,
        inputs: &[input.to_vec()],
        trial_offset: 0,
        steps,
        record: Record {
            x: false,
            spikes: true,
            v: true,
        },
    };
    let mut out = CpuEngine.simulate(&job).unwrap();
    let TrialOutput { y, spikes, v, .. } = out.trials.remove(0).remove(0);
    Run {
        spikes: spikes.unwrap(),
        v: v.unwrap(),
        y,
    }
}

fn brian2_run(py: &Path, graph: &Path, input: &[f32], c: usize, v0: &[f32], dir: &Path) -> Run {
    let run = dir.join(format!(
        "{}.run.json",
        graph.file_stem().unwrap().to_string_lossy()
    ));
    let out = run.with_extension("out.json");
    let rows: Vec<&[f32]> = input.chunks(c).collect();
    std::fs::write(
        &run,
        serde_json::to_vec(&serde_json::json!({ "input": rows, "v0": v0 })).unwrap(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/brian2_reference.py");
    let o = Command::new(py)
        .arg(&script)
        .arg(graph)
        .arg(&run)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "brian2_reference.py on {} failed:\n{}",
        graph.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    eprintln!("{}: {}", graph.display(), j["info"]);
    let flat = |k: &str| -> Vec<f32> {
        j[k].as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let spikes = j["spikes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = p.as_array().unwrap();
            (p[0].as_u64().unwrap() as u32, p[1].as_u64().unwrap() as u32)
        })
        .collect();
    Run {
        spikes,
        v: flat("v"),
        y: flat("y"),
    }
}
/// How close a neuron's V must have come to its threshold for a spike that one simulator fires
/// and the other does not to count as a rounding split: a split needs the two runs' V to
/// straddle the threshold, so its margin is below their discrepancy near the threshold
/// (measured `max_dv_near`: 1.8e-5 nominal, 2.4e-5 instance; V's error accumulates over its 50-step memory from the
/// rounding of currents of magnitude ~100 under the 1 ms fast synapses), and 2e-4 leaves a factor
/// of ten. A model difference splits with larger margins: measured on this network's graphs,
/// Euler decay without tau_eff 0.02 / 0.06 (nominal / instance), the decayed currents in step 1
/// 0.01 - 0.05, the adaptation updated before the threshold test 7e-5 / 9e-4 (only the
/// instance's is caught by the margin).
const SPLIT_MARGIN: f32 = 2e-4;
/// Relative agreement of V (|dV| / max(1, |V|)) while the rasters agree: rounding of two f32
/// computations with different expression and summation orders (measured 2.8e-5 nominal);
/// the model differences above give 0.05 - 0.1.
const V_REL: f32 = 2e-4;
/// Agreement of the task output while the rasters agree, relative to max |y|: the engine updates
/// x~ per spike (shared tau_out), Brian2's side computes W_out D r densely, both f32 over ~70
/// steps of filter memory (measured 1e-5 relative); a readout filter with plain Euler decay
/// instead of exp(-dt/tau) is off by 1e-4 per step of its 70-step memory, ~0.7 %.
const Y_REL: f32 = 2e-4;
/// Engine spikes the rasters must share before any split: the first steps of activity, where V
/// has not yet accumulated current rounding (a split there would take a crossing within ~1e-7 of
/// the threshold). Activity starts with the first input pulse (step ~300) at ~20 spikes a step.
const MIN_SHARED_SPIKES: usize = 100;

/// The comparison of one case (all fields are printed; some only through Debug).
#[allow(dead_code)]
#[derive(Debug)]
struct Cmp {
    spikes_engine: usize,
    spikes_brian2: usize,
    /// Steps 0..identical have the same spiking neurons in both.
    identical: usize,
    /// Engine spikes in those steps.
    spikes_identical: usize,
    /// max |dV| / max(1, |V|) over those steps (neurons that can spike).
    max_dv_rel: f32,
    /// max |dV| over those steps where the engine's V is within 0.5 of the threshold.
    max_dv_near: f32,
    /// max |dV| / margin over those steps and the neurons below their threshold by a margin
    /// under 1e-2: how close rounding came to splitting the rasters (a split needs >= 1).
    closest: f32,
    /// max |y_engine - y_brian2| over those steps, and over the whole trial.
    max_dy_identical: f32,
    max_dy: f32,
    /// max |y_engine|.
    y_scale: f32,
    /// At the first differing step: (neuron, which side spiked, margin of the other side).
    split: Vec<(u32, &'static str, f32)>,
    /// sum_i |count_engine(i) - count_brian2(i)| / total engine spikes, over the whole trial.
    count_l1: f32,
}

#[allow(clippy::too_many_arguments)]
fn compare(
    a: &Run,
    b: &Run,
    n: usize,
    n_out: usize,
    steps: usize,
    v_th: &[f32],
    beta: f32,
    rho: f32,
) -> Cmp {
    let per_step = |r: &Run| {
        let mut s = vec![Vec::new(); steps];
        for &(t, i) in &r.spikes {
            s[t as usize].push(i);
        }
        s
    };
    let (sa, sb) = (per_step(a), per_step(b));
    let identical = (0..steps).find(|&t| sa[t] != sb[t]).unwrap_or(steps);
    // the adaptation variable as the engine's step 5 updates it, from the common history: the
    // threshold of step t is v_th + beta a(t-1)
    let mut adapt = vec![0f32; n];
    let (mut max_dv_rel, mut max_dv_near, mut closest) = (0f32, 0f32, 0f32);
    for (t, spiking) in sa.iter().enumerate().take(identical) {
        for i in (0..n).filter(|&i| v_th[i].is_finite()) {
            let (va, vb) = (a.v[t * n + i], b.v[t * n + i]);
            max_dv_rel = max_dv_rel.max((va - vb).abs() / va.abs().max(1.0));
            let margin = v_th[i] + beta * adapt[i] - va;
            if margin.abs() < 0.5 {
                max_dv_near = max_dv_near.max((va - vb).abs());
            }
            if margin > 0.0 && margin < 1e-2 {
                closest = closest.max((va - vb).abs() / margin);
            }
        }
        for (i, x) in adapt.iter_mut().enumerate() {
            let s = if spiking.contains(&(i as u32)) {
                1.0
            } else {
                0.0
            };
            *x = rho * *x + s;
        }
    }
    let mut split = Vec::new();
    if identical < steps {
        let t = identical;
        for i in 0..n as u32 {
            let (ia, ib) = (sa[t].contains(&i), sb[t].contains(&i));
            if ia != ib {
                // V after the step of the side that did not spike is its V at the threshold test
                let other = if ia { b } else { a };
                let k = i as usize;
                let margin = v_th[k] + beta * adapt[k] - other.v[t * n + k];
                split.push((i, if ia { "engine" } else { "brian2" }, margin));
            }
        }
    }
    let dy = |t: usize| {
        (0..n_out)
            .map(|o| (a.y[t * n_out + o] - b.y[t * n_out + o]).abs())
            .fold(0f32, f32::max)
    };
    let count = |r: &Run| {
        let mut c = vec![0i64; n];
        for &(_, i) in &r.spikes {
            c[i as usize] += 1;
        }
        c
    };
    let (ca, cb) = (count(a), count(b));
    let l1: i64 = ca.iter().zip(&cb).map(|(x, y)| (x - y).abs()).sum();
    Cmp {
        spikes_engine: a.spikes.len(),
        spikes_brian2: b.spikes.len(),
        identical,
        spikes_identical: sa[..identical].iter().map(Vec::len).sum(),
        max_dv_rel,
        max_dv_near,
        closest,
        max_dy_identical: (0..identical).map(dy).fold(0f32, f32::max),
        max_dy: (0..steps).map(dy).fold(0f32, f32::max),
        y_scale: a.y.iter().fold(0f32, |m, y| m.max(y.abs())),
        split,
        count_l1: l1 as f32 / a.spikes.len().max(1) as f32,
    }
}

/// The network of configs/xor.toml, exported to NIR (nominal and chip instance INSTANCE at
/// 20 % mismatch), re-simulated by Brian2 from the graphs: spike for spike, V and y to rounding.
///
/// What may differ is rounding: both sides are f32, with different expression and summation
/// orders (Brian2's Euler `dt*(...)/tau`, its tau_eff decays, numpy's input product, the
/// on_pre sums; the engine's dt/tau factor, exp decays, ascending-pre sums). Such differences
/// part the rasters only where a crossing lands within them of a threshold. Measured here, the
/// rasters agree over the whole trial in both cases, but the closest approach came within 0.6
/// of a split (|dV| / margin), so on another machine (another libm exp, another numpy SIMD
/// path) a split is possible. After a split the runs are different trajectories of a network in
/// which one spike more or less changes the rest (measured: one extra spike at step 0 changed
/// the instance's total spike count by +54 %, the nominal's by -1 %), so nothing after a split is
/// compared spike for spike or count for count. The test asserts: the rasters agree until the
/// end, or until a split whose every differing neuron was within SPLIT_MARGIN of its threshold
/// on the side that did not spike, after at least MIN_SHARED_SPIKES shared spikes; V and y agree
/// to rounding until then.
#[test]
fn brian2_reproduces_the_cpu_engine_on_the_nir_export() {
    let Some(py) = common::python_peer("brian2 reference", &["brian2", "nir", "numpy"]) else {
        return;
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/xor.toml");
    let cfg = Config::load(&config).unwrap();
    let net = network(&cfg);
    assert_eq!(
        (net.n, net.params.adapt_beta, net.params.adapt_rho),
        (320, 0.01, 0.99),
        "configs/xor.toml's snn section changed; this test's measured figures are for it"
    );
    let dir = tempfile::tempdir().unwrap();
    let run = robust_snn::config::RunDir::new(dir.path());
    std::fs::create_dir_all(run.snn()).unwrap();
    net.save(&run.network_file()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_robust-snn"))
        .args(["export", "--format", "nir", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path())
        .args(["--instance", &INSTANCE.to_string()])
        .args(["--mismatch", &SIGMA.to_string()])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "export --format nir failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let trial = cfg.task().trial(Split::Test, 0);
    let (n, c) = (net.n, net.n_in);
    let nominal = Perturbation::default();
    let paper = Perturbation {
        mismatch: SIGMA,
        mode: MismatchMode::Paper,
        ..Default::default()
    };
    let cases = [
        ("nominal", &nominal, 0, "network.nir".to_string()),
        (
            "instance",
            &paper,
            INSTANCE,
            format!("instance_{INSTANCE}.nir"),
        ),
    ];
    for (name, pert, index, file) in cases {
        // the engine's initial V of trial 0 on this chip (nominal: chip 0 without mismatch)
        let inst = Instance::draw(&net, pert, cfg.seed, index);
        let mut v0 = vec![0f32; n];
        inst.initial_v(net.params.v_reset, 0, &mut v0);
        let mut v_th = inst.v_th.clone();
        for (v, &s) in v_th.iter_mut().zip(&inst.silenced) {
            if s {
                *v = f32::INFINITY;
            }
        }
        if index != 0 {
            // the instance case is a mismatched chip: per-neuron time constants and thresholds
            let spread = |x: &[f32]| x.iter().any(|&t| (t - x[0]).abs() > 1e-3 * x[0].abs());
            assert!(spread(&inst.tau_mem) && spread(&inst.tau_slow) && spread(&inst.v_th));
        }
        let a = engine_run(&net, pert, cfg.seed, index, &trial.input);
        let graph = dir.path().join("nir").join(&file);
        let b = brian2_run(&py, &graph, &trial.input, c, &v0, dir.path());
        let (beta, rho) = (net.params.adapt_beta, net.params.adapt_rho);
        let cmp = compare(&a, &b, n, net.n_out, trial.steps, &v_th, beta, rho);
        eprintln!("{name}: {cmp:#?}");
        // an active network (mean rate > 20 Hz), else agreement would say little
        assert!(
            cmp.spikes_engine > 20 * n,
            "{name}: only {} spikes",
            cmp.spikes_engine
        );
        assert!(
            cmp.spikes_identical >= MIN_SHARED_SPIKES,
            "{name}: the rasters part at step {} after {} of {} spikes: {:?}",
            cmp.identical,
            cmp.spikes_identical,
            cmp.spikes_engine,
            cmp.split
        );
        for &(i, side, margin) in &cmp.split {
            assert!(
                margin.abs() <= SPLIT_MARGIN,
                "{name}: step {}: neuron {i} spiked in {side} only, the other side {margin} \
                 below its threshold: a model difference, not rounding",
                cmp.identical
            );
        }
        assert!(
            cmp.max_dv_rel <= V_REL,
            "{name}: V differs by {} (relative) before any spike differs",
            cmp.max_dv_rel
        );
        assert!(
            cmp.max_dy_identical <= Y_REL * cmp.y_scale,
            "{name}: y differs by {} (max |y| {}) before any spike differs",
            cmp.max_dy_identical,
            cmp.y_scale
        );
    }
}
