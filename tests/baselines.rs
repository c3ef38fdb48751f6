//! The baselines (BPTT-LIF, FORCE, reservoir) train, save and reload through the same network
//! file as Network ADS, and the study compares any mix of methods on identical chips.

mod common;

use std::process::Command;

use robust_snn::chip::Perturbation;
use robust_snn::config::Config;
use robust_snn::engine::{CpuEngine, Engine, EnsembleJob, Record};
use robust_snn::snn::{Method, Network};
use robust_snn::tasks::{Split, Task};

/// A small config for `method` on temporal XOR: 40 neurons, a few trials of each stage.
fn small_config(method: Method) -> Config {
    let mut cfg = Config::parse(
        &std::fs::read_to_string("configs/xor.toml").unwrap(),
        "configs/xor.toml",
    )
    .unwrap();
    for (k, v) in [
        ("teacher.hidden", "16"),
        ("snn.n", "40"),
        ("training.method", method.name()),
        ("training.val_trials", "4"),
        ("training.test_trials", "4"),
        ("training.bptt.input_neurons", "8"),
        ("training.bptt.epochs", "2"),
        ("training.bptt.batches_per_epoch", "2"),
        ("training.bptt.batch_size", "4"),
        ("training.force.epochs", "2"),
        ("training.force.samples_per_epoch", "3"),
        ("training.reservoir.train_trials", "6"),
    ] {
        cfg = cfg.with_override(k, v, "test").unwrap();
    }
    cfg
}

fn outputs(net: &Network, task: &dyn Task) -> Vec<Vec<f32>> {
    let inputs: Vec<Vec<f32>> = (0..3).map(|i| task.trial(Split::Test, i).input).collect();
    let out = CpuEngine
        .simulate(&EnsembleJob {
            net,
            perturbation: &Perturbation {
                mismatch: 0.2,
                ..Default::default()
            },
            seed: 5,
            instances: 0..2,
            inputs: &inputs,
            trial_offset: 0,
            steps: task.steps(),
            record: Record::default(),
        })
        .unwrap();
    out.trials.into_iter().flatten().map(|o| o.y).collect()
}

/// Each method's network, saved and reloaded, is the same network and gives the same outputs
/// on mismatched chips (the same code computes both, so equality is exact). Its readout has
/// the shape its method says, and training moved it off zero.
#[test]
fn each_methods_saved_network_reloads_to_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = common::random_teacher(16, 3);
    let device = burn::tensor::Device::flex();
    for method in [Method::Bptt, Method::Force, Method::Reservoir] {
        let cfg = small_config(method);
        let task = cfg.task();
        let out =
            robust_snn::baselines::train(&cfg, &teacher, task.as_ref(), &device, false).unwrap();
        let net = &out.net;
        assert_eq!(net.method, method);
        assert_eq!(net.n, 40);
        let nc = if method.decodes_teacher() { 16 } else { 1 };
        assert_eq!(net.nc, nc, "{method}: readout dimension");
        assert!(
            net.d.iter().any(|&w| w != 0.0),
            "{method}: readout untrained"
        );
        assert!(
            net.w_fast.iter().all(|&w| w == 0.0),
            "{method}: no fast synapses"
        );
        assert!(!out.history.is_empty());
        let path = dir.path().join(format!("{method}.safetensors"));
        net.save(&path).unwrap();
        let back = Network::load(&path).unwrap();
        assert_eq!(&back, net, "{method}: reloaded network differs");
        let (a, b) = (outputs(net, task.as_ref()), outputs(&back, task.as_ref()));
        assert_eq!(a, b, "{method}: reloaded outputs differ");
        assert!(
            a.iter().flatten().any(|&y| y != 0.0),
            "{method}: silent output"
        );
    }
}

/// The BPTT input layer: only its neurons receive the input, nothing projects into it, and the
/// readout ignores it.
#[test]
fn the_bptt_input_layer_is_feed_forward() {
    let cfg = small_config(Method::Bptt);
    let task = cfg.task();
    let teacher = common::random_teacher(16, 3);
    let out = robust_snn::baselines::train(
        &cfg,
        &teacher,
        task.as_ref(),
        &burn::tensor::Device::flex(),
        false,
    )
    .unwrap();
    let (net, m) = (&out.net, 8);
    let p = net.input_projection();
    for (i, &pi) in p.iter().enumerate() {
        assert_eq!(pi != 0.0, i < m, "input into neuron {i}");
        for j in 0..net.n {
            if i < m || i == j {
                assert_eq!(net.w_slow[j * net.n + i], 0.0, "synapse {j} -> {i}");
            }
        }
        if i < m {
            assert_eq!(net.d[i], 0.0, "readout of input neuron {i}");
        }
    }
    assert!(
        net.w_slow[net.n + m] != 0.0,
        "input layer -> recurrent layer"
    );
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_robust-snn"))
}

const TINY: &[&str] = &[
    "--set",
    "teacher.hidden=16",
    "--set",
    "teacher.epochs=1",
    "--set",
    "teacher.batches_per_epoch=1",
    "--set",
    "teacher.batch_size=2",
    "--set",
    "teacher.val_trials=2",
    "--set",
    "teacher.test_trials=2",
    "--set",
    "snn.n=40",
    "--set",
    "training.epochs=1",
    "--set",
    "training.samples_per_epoch=2",
    "--set",
    "training.robust.instances=0",
    "--set",
    "training.val_trials=2",
    "--set",
    "training.test_trials=2",
    "--set",
    "training.bptt.epochs=1",
    "--set",
    "training.bptt.batches_per_epoch=1",
    "--set",
    "training.bptt.batch_size=2",
    "--set",
    "training.force.epochs=1",
    "--set",
    "training.force.samples_per_epoch=2",
    "--set",
    "training.reservoir.train_trials=4",
    "--set",
    "evaluation.instances=3",
    "--set",
    "evaluation.val_instances=2",
    "--set",
    "evaluation.test_trials=3",
    "--set",
    "evaluation.val_trials=2",
    "--set",
    "evaluation.mismatch=[0.1,0.2]",
    "--set",
    "evaluation.bits=[4]",
    "--set",
    "evaluation.noise=[]",
    "--set",
    "evaluation.silence=[]",
    "--set",
    "evaluation.bits_paper=[]",
    "--set",
    "evaluation.sensitivity_sigma=0",
    "--set",
    "evaluation.sensitivity_bits=0",
    "--set",
    "evaluation.teacher_draws=0",
    "--set",
    "evaluation.recurrent_scales=[1.0]",
];

/// `train --method` writes the usual `DIR/snn/` for every method; `evaluate --compare` puts all
/// four side by side and writes the method comparison in the paper's form.
#[test]
fn evaluate_compares_every_method_on_identical_chips() {
    let dir = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for method in ["ads", "bptt", "force", "reservoir"] {
        let run = dir.path().join(method);
        let run_s = run.display().to_string();
        let out = bin()
            .args([
                "train",
                "--config",
                "configs/xor.toml",
                "--out",
                &run_s,
                "--backend",
                "cpu",
                "--method",
                method,
            ])
            .args(TINY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("snn/metrics.json")).unwrap())
                .unwrap();
        assert_eq!(m["method"], method);
        // R only where the readout decodes the teacher
        assert_eq!(
            m["reconstruction_error"].is_null(),
            method == "bptt" || method == "reservoir",
            "{method}: {}",
            m["reconstruction_error"]
        );
        for f in [
            "network.safetensors",
            "history.csv",
            "plots/output.png",
            "plots/training.png",
        ] {
            assert!(
                run.join("snn").join(f).is_file(),
                "{method}: missing snn/{f}"
            );
        }
        dirs.push(run_s);
    }
    let out = bin()
        .args([
            "evaluate",
            "--out",
            &dirs[0],
            "--backend",
            "cpu",
            "--compare",
        ])
        .args(&dirs[1..])
        .args(TINY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rob = std::path::Path::new(&dirs[0]).join("robustness");
    let md = std::fs::read_to_string(rob.join("methods.md")).unwrap();
    for label in ["Network ADS", "BPTT-LIF", "FORCE", "Reservoir"] {
        assert!(md.contains(label), "methods.md lacks {label}");
    }
    assert!(md.contains("## Paired tests"), "{md}");
    for level in ["mismatch=0.1", "mismatch=0.2", "bits=4"] {
        assert!(
            md.lines()
                .filter(|l| l.starts_with(&format!("| {level} |")))
                .count()
                >= 3,
            "paired tests at {level} against the three baselines: {md}"
        );
    }
    // the paper's audio figures stand beside ours, e.g. BPTT at 20 % mismatch
    assert!(md.contains("0.768"), "{md}");
    for f in ["methods_mismatch.png", "methods_bits.png"] {
        assert!(rob.join("plots").join(f).is_file(), "missing plots/{f}");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rob.join("summary.json")).unwrap()).unwrap();
    let methods: Vec<&str> = s["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["ads", "bptt", "force", "reservoir"]);
    // every network ran on the same instances of every level
    let csv = std::fs::read_to_string(rob.join("instances.csv")).unwrap();
    let count = |net: &str| {
        csv.lines()
            .filter(|l| l.starts_with(&format!("{net},")))
            .count()
    };
    assert_eq!(count("ads"), count("bptt"));
    assert_eq!(count("ads"), count("reservoir"));
}

/// A method the build does not know, and a baseline asked for with an ADS-only recipe, are
/// refused with the key named.
#[test]
fn bad_method_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r").display().to_string();
    for (set, expect) in [
        ("training.method=lstm", "training.method"),
        ("training.qat_bits=4", "hardware-aware training and QAT"),
        (
            "training.bptt.input_neurons=40",
            "training.bptt.input_neurons",
        ),
    ] {
        let out = bin()
            .args([
                "train",
                "--config",
                "configs/xor.toml",
                "--out",
                &run,
                "--method",
                "bptt",
                "--set",
                set,
            ])
            .args(TINY)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{set} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{set}: {err}");
        assert!(!std::path::Path::new(&run).join("snn").exists());
    }
}

/// "imported" names how a stored network came in (`robust-snn import`), not a way to train one.
#[test]
fn training_method_imported_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let out = bin()
        .args(["train", "--config", "configs/xor.toml", "--out"])
        .arg(&run)
        .args(["--set", "training.method=imported"])
        .args(TINY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("training.method = \"imported\"") && err.contains("robust-snn import"),
        "{err}"
    );
    assert!(!run.join("teacher").exists() && !run.join("snn").exists());
}

/// `run` with a baseline: the whole pipeline (study, export) on the baseline's network, and no
/// plain Network ADS twin beside it (that comparison belongs to the ADS recipes).
#[test]
fn run_with_a_baseline_runs_the_pipeline_without_a_plain_twin() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    let out = bin()
        .args([
            "run",
            "--config",
            "configs/xor.toml",
            "--out",
            &run_s,
            "--backend",
            "cpu",
            "--method",
            "reservoir",
            "--set",
            "export.instances=2",
        ])
        .args(TINY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "snn/metrics.json",
        "robustness/summary.json",
        "dynapse1/network.json",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    assert!(
        !run.join("plain").exists(),
        "a plain twin was trained for a baseline"
    );
    let net = Network::load(&run.join("snn/network.safetensors")).unwrap();
    assert_eq!(net.method, Method::Reservoir);
}

/// `training.reservoir.extra_tau_ms` makes a multi-timescale reservoir: each type its own fixed
/// sparse recurrence from the seed, kept through the network file (the reloaded network gives
/// the same outputs on mismatched chips), and changing what the reservoir computes.
#[test]
fn a_multi_timescale_reservoir_keeps_its_synapse_types() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = common::random_teacher(16, 3);
    let device = burn::tensor::Device::flex();
    let cfg = small_config(Method::Reservoir)
        .with_override("training.reservoir.extra_tau_ms", "[30.0, 300.0]", "test")
        .unwrap();
    let task = cfg.task();
    let out = robust_snn::baselines::train(&cfg, &teacher, task.as_ref(), &device, false).unwrap();
    let net = &out.net;
    let taus: Vec<f32> = net.extra_synapses.iter().map(|t| t.tau_ms).collect();
    assert_eq!(taus, vec![30.0, 300.0]);
    // sparse (p = 0.1 of the 40 x 39 synapses, zero diagonal), and not the slow recurrence
    for t in &net.extra_synapses {
        let nonzero = t.w.iter().filter(|&&w| w != 0.0).count();
        assert!((80..=250).contains(&nonzero), "{nonzero} synapses");
        assert!((0..40).all(|i| t.w[i * 40 + i] == 0.0));
        assert_ne!(t.w, net.w_slow);
    }
    assert_ne!(net.extra_synapses[0].w, net.extra_synapses[1].w);
    // drawn from the configured seed: the untrained reservoir has the same types
    let fresh = robust_snn::baselines::reservoir::init(&cfg, task.channels(), 1, cfg.seed).unwrap();
    assert_eq!(fresh.extra_synapses, net.extra_synapses);
    let path = dir.path().join("reservoir.safetensors");
    net.save(&path).unwrap();
    let back = Network::load(&path).unwrap();
    assert_eq!(&back, net);
    let (a, b) = (outputs(net, task.as_ref()), outputs(&back, task.as_ref()));
    assert_eq!(a, b, "reloaded outputs differ");
    assert!(a.iter().flatten().any(|&y| y != 0.0), "silent output");
    let mut without = net.clone();
    without.extra_synapses.clear();
    assert_ne!(
        outputs(&without, task.as_ref()),
        a,
        "the types change nothing"
    );
    // a time constant that is not > 0 is refused by name
    let e = small_config(Method::Reservoir)
        .with_override("training.reservoir.extra_tau_ms", "[40.0, 0.0]", "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("training.reservoir.extra_tau_ms[1] must be > 0"),
        "{e}"
    );
}

/// The local rule and the DYNAP-SE1 mapping know W_fast and W_slow only: a network with further
/// synapse types is refused with a message saying so, and `run` skips the export of a
/// multi-timescale reservoir with that reason.
#[test]
fn extra_synapse_types_are_refused_by_the_local_rule_and_the_dynapse1_mapping() {
    let teacher = common::random_teacher(16, 3);
    let cfg = small_config(Method::Ads);
    let task = cfg.task();
    let make = |seed: u64| {
        let net = Network::init(
            cfg.snn.clone(),
            teacher.w_in.clone(),
            teacher.w_out.clone(),
            teacher.nc,
            teacher.n_in,
            teacher.n_out,
            seed,
        )?;
        net.with_synapse_type(40.0, vec![0.001; 40 * 40])
    };
    let opts = robust_snn::learn::trainer::TrainOptions::default();
    let Err(e) = robust_snn::learn::trainer::train_networks(
        &make,
        &teacher,
        task.as_ref(),
        &cfg.training,
        cfg.seed,
        &opts,
    ) else {
        panic!("the rule trained a network with an extra synapse type");
    };
    let e = e.to_string();
    assert!(
        e.contains("Network ADS training (the local rule) supports only the synapse types"),
        "{e}"
    );
    let e = robust_snn::export::dynapse1::map::map_network(
        &make(1).unwrap(),
        &robust_snn::export::dynapse1::map::MapOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("the DYNAP-SE1 mapping supports only"), "{e}");
    let multi = small_config(Method::Reservoir)
        .with_override("training.reservoir.extra_tau_ms", "[40.0]", "test")
        .unwrap();
    let e = robust_snn::export::dynapse1::stage::check_fits(&multi)
        .unwrap_err()
        .to_string();
    assert!(e.contains("training.reservoir.extra_tau_ms"), "{e}");
    robust_snn::export::dynapse1::stage::check_fits(&small_config(Method::Reservoir)).unwrap();
    // `run` trains and studies the multi-timescale reservoir, then skips the export with that
    // reason, as it does for a network too large for the board
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = bin()
        .args(["run", "--config", "configs/xor.toml", "--out"])
        .arg(&run)
        .args(["--backend", "cpu", "--method", "reservoir"])
        .args(["--set", "training.reservoir.extra_tau_ms=[40.0]"])
        .args(TINY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("DYNAP-SE1 export skipped: the reservoir has synapse types beyond"),
        "{err}"
    );
    assert!(run.join("robustness/summary.json").is_file());
    assert!(!run.join("dynapse1").exists());
    let net = Network::load(&run.join("snn/network.safetensors")).unwrap();
    assert_eq!(net.extra_synapses.len(), 1);
}
