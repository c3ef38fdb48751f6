//! NIR export and import (`robust-snn export --format nir`, `robust-snn import`): the export
//! checked by the Python `nir` package and run by an independent numpy interpreter
//! (tests/python/nir_interp.py) against the CPU engine's step; a recurrent CubaLIF graph written
//! by Python's `nir` imported and evaluated; the importer's refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use robust_snn::chip::rng::Stream;
use robust_snn::chip::{Instance, MismatchMode, Perturbation};
use robust_snn::engine::lif_step::{NeuronConsts, State, StepWeights, step_with_types};
use robust_snn::snn::{Network, SnnParams, transpose};
use serde_json::{Value, json};

const SEED: u64 = 5;
const INSTANCE: u32 = 3;
const SIGMA: f32 = 0.2;
/// Steps compared spike for spike between the engine (f32) and the interpreter (f64).
const EXACT_STEPS: usize = 300;

fn bin(args: &[&str], extra: &[&Path]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robust-snn"));
    c.args(args);
    for p in extra {
        c.arg(p);
    }
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

fn run_py(py: &Path, script: &str, args: &[&Path]) {
    let o = Command::new(py)
        .arg(python_dir().join(script))
        .args(args)
        .current_dir(python_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{script} failed:\n{}", text(&o));
}

/// A seeded network of 20 neurons with every part the export writes: W_fast from the init,
/// a random W_slow, one extra synapse type, a bias and spike-frequency adaptation.
fn seeded_network() -> Network {
    let p = SnnParams {
        n: 20,
        bias: 0.1,
        input_gain: 3.0,
        fast_gain: 0.05,
        adapt_beta: 0.05,
        adapt_rho: 0.9,
        ..Default::default()
    };
    let (c, nc, o) = (2, 3, 2);
    let w_in: Vec<f32> = (0..c * nc)
        .map(|k| ((k * 37 % 11) as f32 - 5.0) * 0.4)
        .collect();
    let w_out: Vec<f32> = (0..nc * o).map(|k| (k as f32 - 2.5) * 0.3).collect();
    let mut net = Network::init(p, w_in, w_out, nc, c, o, 11).unwrap();
    let n = net.n;
    let ramp = |k: usize, a: usize, s: f32| s * (((k * a) % 23) as f32 - 11.0);
    net.w_slow = (0..n * n).map(|k| ramp(k, 7, 0.0008)).collect();
    net.with_synapse_type(20.0, (0..n * n).map(|k| ramp(k, 13, 0.0006)).collect())
        .unwrap()
}

/// A smooth input, T x C.
fn input(steps: usize, c: usize) -> Vec<Vec<f32>> {
    (0..steps)
        .map(|t| {
            (0..c)
                .map(|ch| 0.6 * (t as f32 / (40.0 + 17.0 * ch as f32)).sin())
                .collect()
        })
        .collect()
}

/// The CPU engine's step on `net` (or chip `inst` of it) from `v0`: spikes per step, task output.
fn engine_run(
    net: &Network,
    inst: Option<&Instance>,
    input: &[Vec<f32>],
    v0: &[f32],
) -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
    let n = net.n;
    let (consts, proj, d) = match inst {
        None => (
            NeuronConsts::nominal(net),
            net.input_projection(),
            net.d.clone(),
        ),
        Some(i) => (
            NeuronConsts::from_instance(net, i),
            i.input_proj.clone(),
            i.d.clone(),
        ),
    };
    let eff = |s: Stream, w: &[f32]| match inst {
        None => w.to_vec(),
        Some(i) => {
            let mut out = vec![0f32; n * n];
            i.effective_recurrent(s, w, &mut out);
            out
        }
    };
    let w_fast = eff(Stream::W_FAST, &net.w_fast);
    let w_slow = eff(Stream::W_SLOW, &net.w_slow);
    let extra: Vec<Vec<f32>> = net
        .extra_synapses
        .iter()
        .enumerate()
        .map(|(k, t)| eff(Stream::w_extra(k), &t.w))
        .collect();
    let extra_refs: Vec<Option<&[f32]>> = extra.iter().map(|w| Some(w.as_slice())).collect();
    let d_t = transpose(&d, net.nc, n);
    let proj_t = transpose(&proj, n, net.n_in);
    let w = StepWeights {
        w_fast: Some(&w_fast),
        w_slow: Some(&w_slow),
        d_t: &d_t,
        input_proj_t: &proj_t,
    };
    let mut st = State::new(n, net.nc);
    st.reset(v0);
    let (mut spikes, mut ys) = (Vec::new(), Vec::new());
    for (t, u) in input.iter().enumerate() {
        step_with_types(&consts, &w, &extra_refs, &mut st, u, t as u32, None);
        spikes.push(st.spikes.clone());
        let mut y = vec![0f32; net.n_out];
        net.readout(&st.x_hat, &mut y);
        ys.push(y);
    }
    (spikes, ys)
}

/// The interpreter's result file: spikes per step, outputs per step.
fn read_run(path: &Path) -> (Vec<Vec<u32>>, Vec<Vec<f64>>) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spikes = serde_json::from_value(v["spikes"].clone()).unwrap();
    let y = serde_json::from_value(v["y"].clone()).unwrap();
    (spikes, y)
}

/// Spike rasters identical for the first [`EXACT_STEPS`] steps, outputs close there. The engine
/// runs in f32 and the interpreter in f64: the states differ by rounding (~1e-6 relative), which
/// flips a spike only when a membrane ends a step within that distance of its threshold; once
/// one spike differs the trajectories part, so only a prefix is compared exactly.
fn assert_agree(
    what: &str,
    engine: &(Vec<Vec<u32>>, Vec<Vec<f32>>),
    interp: &(Vec<Vec<u32>>, Vec<Vec<f64>>),
) {
    let total: usize = engine.0[..EXACT_STEPS].iter().map(|s| s.len()).sum();
    assert!(
        total > 3 * EXACT_STEPS / 10,
        "{what}: only {total} spikes in {EXACT_STEPS} steps; the comparison would be weak"
    );
    for t in 0..EXACT_STEPS {
        assert_eq!(
            engine.0[t], interp.0[t],
            "{what}: spikes differ at step {t}"
        );
    }
    for t in 0..EXACT_STEPS {
        for (a, b) in engine.1[t].iter().zip(&interp.1[t]) {
            // f32 accumulation of O(100) terms of magnitude <= max |y|
            let tol = 1e-4 * (1.0 + b.abs());
            assert!(
                (*a as f64 - b).abs() <= tol,
                "{what}: output at step {t}: engine {a}, interpreter {b}"
            );
        }
    }
    eprintln!("{what}: {total} spikes in {EXACT_STEPS} steps, identical");
}

fn f32s(v: &[f32]) -> Value {
    json!(v.iter().map(|&x| x as f64).collect::<Vec<f64>>())
}

fn rows(m: &[f32], cols: usize) -> Value {
    json!(
        m.chunks(cols)
            .map(|r| r.iter().map(|&x| x as f64).collect::<Vec<f64>>())
            .collect::<Vec<_>>()
    )
}

/// The values the export must hold, straight from the network (and chip), in robust-snn's own
/// layouts; nir_check_export.py transposes what NIR stores `[out, in]`.
fn expected(net: &Network, inst: Option<&Instance>, input: &[Vec<f32>], v0: &[f32]) -> Value {
    let p = &net.params;
    let n = net.n;
    let nominal = |ms: f32| vec![ms * 1e-3; n];
    let eff = |s: Stream, w: &[f32]| match inst {
        None => w.to_vec(),
        Some(i) => {
            let mut out = vec![0f32; n * n];
            i.effective_recurrent(s, w, &mut out);
            out
        }
    };
    let (tau_mem, v_th, tau_fast, tau_slow, tau_out, tau_extra, proj, d) = match inst {
        None => (
            nominal(p.tau_mem_ms),
            vec![p.v_th; n],
            nominal(p.tau_fast_ms),
            nominal(p.tau_slow_ms),
            nominal(p.tau_out_ms),
            net.extra_synapses
                .iter()
                .map(|t| nominal(t.tau_ms))
                .collect::<Vec<_>>(),
            net.input_projection(),
            net.d.clone(),
        ),
        Some(i) => (
            i.tau_mem.clone(),
            i.v_th.clone(),
            i.tau_fast.clone(),
            i.tau_slow.clone(),
            i.tau_out.clone(),
            i.tau_extra.clone(),
            i.input_proj.clone(),
            i.d.clone(),
        ),
    };
    let metadata = match inst {
        None => json!({"method": "ads", "adapt_beta": 0.05, "adapt_rho": 0.9}),
        Some(_) => json!({
            "instance_seed": SEED, "instance_index": INSTANCE, "instance_sigma": SIGMA as f64,
            "instance_mode": "paper", "adapt_beta": 0.05
        }),
    };
    json!({
        "n": n, "c": net.n_in, "nc": net.nc, "n_out": net.n_out,
        "extra_types": net.extra_synapses.len(),
        "tau_mem": f32s(&tau_mem), "v_th": f32s(&v_th), "tau_fast": f32s(&tau_fast),
        "tau_slow": f32s(&tau_slow), "tau_out": f32s(&tau_out),
        "tau_extra": tau_extra.iter().map(|t| f32s(t)).collect::<Vec<_>>(),
        "proj": rows(&proj, net.n_in), "bias": p.bias as f64,
        "v_rest": p.v_rest as f64, "v_reset": p.v_reset as f64,
        "w_fast": rows(&eff(Stream::W_FAST, &net.w_fast), n),
        "w_slow": rows(&eff(Stream::W_SLOW, &net.w_slow), n),
        "w_extra": net.extra_synapses.iter().enumerate()
            .map(|(k, t)| rows(&eff(Stream::w_extra(k), &t.w), n)).collect::<Vec<_>>(),
        "d": rows(&d, n), "w_out_teacher": rows(&net.w_out_teacher, net.n_out),
        "dt_s": p.dt_s() as f64, "metadata": metadata,
        "input": input.iter().map(|u| f32s(u)).collect::<Vec<_>>(), "v0": f32s(v0),
    })
}

#[test]
fn export_is_read_by_python_nir_and_runs_like_the_engine() {
    let Some(py) = common::python_peer("nir export", &["nir", "numpy", "h5py"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let net = seeded_network();
    let run = robust_snn::config::RunDir::new(dir.path());
    std::fs::create_dir_all(run.snn()).unwrap();
    net.save(&run.network_file()).unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, common::tiny_sweep_base(SEED, 20)).unwrap();
    let o = bin(
        &[
            "export",
            "--format",
            "nir",
            "--instance",
            "3",
            "--mismatch",
            "0.2",
            "--config",
        ],
        &[&cfg, Path::new("--out"), dir.path()],
    );
    assert!(o.status.success(), "export failed:\n{}", text(&o));
    // adaptation cannot be expressed by NIR's LIF: the export says so
    assert!(
        text(&o).contains("spike-frequency adaptation"),
        "{}",
        text(&o)
    );

    let steps = 500;
    let u = input(steps, net.n_in);
    let v0: Vec<f32> = (0..net.n).map(|i| 0.9 * (i % 7) as f32 / 7.0).collect();
    let pert = Perturbation {
        mismatch: SIGMA,
        mode: MismatchMode::Paper,
        ..Default::default()
    };
    let inst = Instance::draw(&net, &pert, SEED, INSTANCE);
    for (what, file, chip) in [
        ("nominal", "network.nir", None),
        ("instance 3", "instance_3.nir", Some(&inst)),
    ] {
        let graph = dir.path().join("nir").join(file);
        assert!(graph.is_file(), "{} missing", graph.display());
        let exp = dir.path().join(format!("{file}.expected.json"));
        let out = dir.path().join(format!("{file}.run.json"));
        std::fs::write(&exp, expected(&net, chip, &u, &v0).to_string()).unwrap();
        run_py(&py, "nir_check_export.py", &[&graph, &exp, &out]);
        let engine = engine_run(&net, chip, &u, &v0);
        assert_agree(what, &engine, &read_run(&out));
    }
}

#[test]
fn python_cubalif_graph_is_imported_evaluated_and_runs_like_the_graph() {
    let Some(py) = common::python_peer("nir import", &["nir", "numpy", "h5py"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_py(&py, "nir_make_graphs.py", &[dir.path()]);
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, common::tiny_sweep_base(SEED, 12)).unwrap();
    let out = dir.path().join("run");
    let o = bin(
        &["import"],
        &[
            &dir.path().join("cuba.nir"),
            Path::new("--config"),
            &cfg,
            Path::new("--out"),
            &out,
        ],
    );
    assert!(o.status.success(), "import failed:\n{}", text(&o));
    // the CubaLIF's input filter is the one approximation, and it is stated
    assert!(
        text(&o).contains("notice:") && text(&o).contains("DC gain"),
        "{}",
        text(&o)
    );
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("snn/import.json")).unwrap())
            .unwrap();
    assert!(record["mapping"].to_string().contains("W_slow"), "{record}");

    let o = bin(&["evaluate", "--config"], &[&cfg, Path::new("--out"), &out]);
    assert!(o.status.success(), "evaluate failed:\n{}", text(&o));
    assert!(out.join("robustness/report.md").is_file(), "{}", text(&o));

    // the imported network against the graph: the engine gets the input through the CubaLIF's
    // filter (c' = e c' + (1 - e) c), the interpreter the raw input
    let net = Network::load(&out.join("snn/network.safetensors")).unwrap();
    assert_eq!(net.method, robust_snn::snn::Method::Imported);
    let steps = 400;
    let raw: Vec<Vec<f32>> = (0..steps)
        .map(|t| vec![if (20..200).contains(&t) { 1.0 } else { 0.3 }])
        .collect();
    let e = (-0.001f64 / 0.010).exp();
    let mut c = 0f64;
    let filtered: Vec<Vec<f32>> = raw
        .iter()
        .map(|u| {
            c = e * c + (1.0 - e) * u[0] as f64;
            vec![c as f32]
        })
        .collect();
    let v0 = vec![0f32; net.n];
    let engine = engine_run(&net, None, &filtered, &v0);
    let inp = dir.path().join("in.json");
    let res = dir.path().join("interp.json");
    std::fs::write(
        &inp,
        json!({"input": raw.iter().map(|u| f32s(u)).collect::<Vec<_>>(), "v0": null, "dt": 0.001})
            .to_string(),
    )
    .unwrap();
    run_py(
        &py,
        "nir_run.py",
        &[&dir.path().join("cuba.nir"), &inp, &res],
    );
    let interp = read_run(&res);
    let total: usize = engine.0.iter().map(|s| s.len()).sum();
    assert!(total > 40, "only {total} spikes");
    for t in 0..steps {
        assert_eq!(engine.0[t], interp.0[t], "spikes differ at step {t}");
        let (a, b) = (engine.1[t][0] as f64, interp.1[t][0]);
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "output at step {t}: {a} vs {b}"
        );
    }

    // refusals: the node and the reason, nothing written
    for (file, needles) in [
        ("unknown.nir", &["node `thr`", "Threshold"][..]),
        (
            "shape.nir",
            &["node `w_in`", "shape [12, 2]", "expected [12, 1]"][..],
        ),
    ] {
        let bad_out = dir.path().join(format!("out-{file}"));
        let o = bin(
            &["import"],
            &[
                &dir.path().join(file),
                Path::new("--config"),
                &cfg,
                Path::new("--out"),
                &bad_out,
            ],
        );
        assert!(!o.status.success(), "{file} was accepted");
        for n in needles {
            assert!(text(&o).contains(n), "{file}: no {n:?} in:\n{}", text(&o));
        }
        assert!(!bad_out.exists(), "{file}: something was written");
    }
}

#[test]
fn import_refuses_missing_and_non_nir_files_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, common::tiny_sweep_base(SEED, 12)).unwrap();
    let junk = dir.path().join("junk.nir");
    std::fs::write(&junk, "this is not HDF5\n").unwrap();
    let missing = dir.path().join("missing.nir");
    for (file, needle) in [(&missing, "no such file"), (&junk, "not an HDF5")] {
        let out = dir.path().join("out");
        let o = bin(
            &["import"],
            &[file, Path::new("--config"), &cfg, Path::new("--out"), &out],
        );
        assert!(!o.status.success());
        let t = text(&o);
        assert!(
            t.contains(&file.display().to_string()) && t.contains(needle),
            "{t}"
        );
        assert!(!t.contains("panicked"), "{t}");
        assert!(
            !out.exists(),
            "something was written for {}",
            file.display()
        );
    }
}
