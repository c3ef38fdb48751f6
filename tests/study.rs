//! Robustness studies and sweeps: exact reference levels, recalibration isolation, resumable
//! sweeps, and clear errors.

mod common;

use std::process::Command;

use robust_snn::chip::Perturbation;
use robust_snn::engine::CpuEngine;
use robust_snn::snn::{Network, SnnParams};
use robust_snn::study::evaluate::{
    Prepared, StudySpec, VALIDATION_INSTANCE_BASE, choose_gain, evaluate_level,
};
use robust_snn::study::levels::{Level, LevelKind};
use robust_snn::tasks::Task;
use robust_snn::tasks::xor::{XorParams, XorTask};
use robust_snn::teacher::weights::TeacherWeights;

fn setup() -> (TeacherWeights, XorTask, Network, StudySpec) {
    let teacher = common::random_teacher(12, 4);
    let task = XorTask::new(XorParams::default(), 3);
    let net = Network::init(
        SnnParams {
            n: 40,
            ..SnnParams::default()
        },
        teacher.w_in.clone(),
        teacher.w_out.clone(),
        12,
        1,
        1,
        2,
    )
    .unwrap();
    let spec = StudySpec {
        instances: 3,
        val_instances: 2,
        test_trials: 4,
        val_trials: 3,
        gain_min: 0.5,
        gain_max: 3.0,
        gain_steps: 6,
        recurrent_scales: vec![1.0, 0.5],
        seed: 11,
    };
    (teacher, task, net, spec)
}

fn level(kind: LevelKind, value: f64, p: Perturbation) -> Level {
    Level {
        kind,
        value,
        label: format!("{}={value}", kind.as_str()),
        perturbation: p,
    }
}

#[test]
fn zero_mismatch_level_reproduces_the_unperturbed_network_exactly() {
    let (teacher, task, net, spec) = setup();
    let data = Prepared::new(&task, &teacher, &spec);
    let none = level(LevelKind::None, 0.0, Perturbation::default());
    let zero = level(
        LevelKind::Mismatch,
        0.0,
        Perturbation {
            mismatch: 0.0,
            ..Perturbation::default()
        },
    );
    let (a, sa) =
        evaluate_level(&CpuEngine, &net, "n", &task, &data, &none, &spec, &|_| {}).unwrap();
    let (b, sb) =
        evaluate_level(&CpuEngine, &net, "n", &task, &data, &zero, &spec, &|_| {}).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.accuracy, x.mse, x.mean_rate_hz, x.reconstruction_error),
            (y.accuracy, y.mse, y.mean_rate_hz, y.reconstruction_error)
        );
    }
    assert_eq!(sa.accuracy, sb.accuracy);
    assert_eq!(sa.gain, sb.gain);
    assert_eq!(a.len(), 3);
}

#[test]
fn recalibration_sees_only_validation_trials_and_draws() {
    // The gain depends only on validation outputs: changing the test set changes nothing.
    let (teacher, task, net, spec) = setup();
    let lvl = level(
        LevelKind::Mismatch,
        0.2,
        Perturbation {
            mismatch: 0.2,
            ..Perturbation::default()
        },
    );
    let d1 = Prepared::new(&task, &teacher, &spec);
    let spec2 = StudySpec {
        test_trials: 7,
        instances: 5,
        ..spec.clone()
    };
    let d2 = Prepared::new(&task, &teacher, &spec2);
    let (_, s1) = evaluate_level(&CpuEngine, &net, "n", &task, &d1, &lvl, &spec, &|_| {}).unwrap();
    let (_, s2) = evaluate_level(&CpuEngine, &net, "n", &task, &d2, &lvl, &spec2, &|_| {}).unwrap();
    assert_eq!(
        (s1.gain, s1.recurrent_scale, s1.val_accuracy_at_gain),
        (s2.gain, s2.recurrent_scale, s2.val_accuracy_at_gain)
    );
    // Validation and test chips are disjoint instance ranges.
    assert!(spec2.instances < VALIDATION_INSTANCE_BASE);
    // choose_gain: a gain that makes the validation trials right is found, ties go to 1.
    let trials: Vec<_> = (0..4)
        .map(|i| task.trial(robust_snn::tasks::Split::Validation, i))
        .collect();
    let half: Vec<Vec<Vec<f32>>> = vec![
        trials
            .iter()
            .map(|t| t.target.iter().map(|v| v * 0.4).collect())
            .collect(),
    ];
    let (g, acc) = choose_gain(&task, &trials, &half, &[0.5, 1.0, 2.0, 3.0]);
    assert_eq!((g, acc), (2.0, 1.0));
    let exact: Vec<Vec<Vec<f32>>> = vec![trials.iter().map(|t| t.target.clone()).collect()];
    assert_eq!(choose_gain(&task, &trials, &exact, &[0.8, 1.0, 2.0]).0, 1.0);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_robust-snn"))
}

const TINY: &[&str] = &[
    "--set",
    "teacher.hidden=8",
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
    "snn.n=24",
    "--set",
    "training.epochs=1",
    "--set",
    "training.samples_per_epoch=1",
    "--set",
    "training.val_trials=1",
    "--set",
    "training.test_trials=2",
];

#[test]
fn sweep_resumes_after_an_interruption_computing_each_point_once() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny base config written out, so the sweep's --set only names the swept keys.
    let base = dir.path().join("base.toml");
    std::fs::write(&base, common::tiny_sweep_base(2, 24)).unwrap();
    let out = dir.path().join("sweep");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "sweep",
            "--config",
            base.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--backend",
            "cpu",
            "--set",
            "snn.n=16,24",
            "--set",
            "training.eta=1e-6,2e-6",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let o = bin().args(args(&["--max-points", "3"])).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let points = out.join("points");
    let done = |p: &std::path::Path| -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("point.json").is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().to_string(),
                    std::fs::metadata(e.path().join("point.json"))
                        .unwrap()
                        .modified()
                        .unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let first = done(&points);
    assert_eq!(
        first.len(),
        3,
        "the interrupted sweep should have finished 3 points"
    );
    let o = bin().args(args(&[])).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("1 computed now, 3 already done"),
        "{stdout}"
    );
    let second = done(&points);
    assert_eq!(second.len(), 4);
    for (name, t) in &first {
        assert_eq!(
            second.iter().find(|(n, _)| n == name).unwrap().1,
            *t,
            "{name} was recomputed"
        );
    }
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().next().unwrap().contains("snn.test_accuracy"));
    assert!(out.join("sweep.png").is_file());
}

#[test]
fn a_slurm_sweep_plans_an_array_whose_tasks_run_the_points_and_collect_merges_them() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, common::tiny_sweep_base(3, 16)).unwrap();
    // a space in the folder: the script must quote it
    let out = dir.path().join("my sweep");
    let plan = |extra: &[&str]| {
        bin()
            .args(["sweep", "--config", base.to_str().unwrap()])
            .args(["--out", out.to_str().unwrap(), "--backend", "cpu"])
            .args(["--set", "training.eta=1e-6,2e-6", "--slurm"])
            .args(["--slurm-time", "00:10:00", "--slurm-cpus", "1"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = plan(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = out.join("sweep.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --array=0,1\n"), "{text}");
    assert!(text.contains("#SBATCH --time=00:10:00\n"), "{text}");
    assert!(
        !out.join("points").exists(),
        "planning runs no point: {text}"
    );
    // what Slurm would do for each array task: run the script with its index
    let task = |i: usize| {
        std::process::Command::new("bash")
            .arg(&script)
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .output()
            .unwrap()
    };
    let o = task(1);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // one point finished: collect merges it and names the other
    let collect = || {
        bin()
            .args(["sweep", "--collect", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = collect();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 of 2 points finished"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("training.eta=1e-6"));
    // planned again, the array holds only the unfinished point: a resubmission resumes
    let o = plan(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --array=0\n"), "{text}");
    let point1 = out
        .join("points")
        .join("training.eta=2e-6")
        .join("point.json");
    let t1 = std::fs::metadata(&point1).unwrap().modified().unwrap();
    for i in [0, 1] {
        let o = task(i);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        std::fs::metadata(&point1).unwrap().modified().unwrap(),
        t1,
        "a finished point is not run again"
    );
    let o = collect();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .starts_with("point,training.eta,")
    );
    assert!(out.join("sweep.png").is_file());
    // an index past the grid and a folder without a plan fail by name
    let o = task(7);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--point 7"));
    let o = bin()
        .args(["sweep", "--collect", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sweep.json"));
}

#[test]
fn malformed_set_keys_and_values_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let o_s = out.to_str().unwrap();
    for (set, want) in [
        ("snn.nn=1,2", "snn.nn"),
        ("snn.n=ten,20", "snn.n"),
        ("snn.n=-3", "snn.n"),
        ("nokey", "nokey"),
        ("evaluation.silence=[1.5]", "evaluation.silence"),
    ] {
        let o = bin()
            .args(["sweep", "--out", o_s, "--backend", "cpu", "--set", set])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{set} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{set}: {err}");
        assert!(!out.exists(), "{set}: wrote output");
    }
    let _ = TINY;
}

#[test]
fn evaluate_writes_the_study_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    let mut args: Vec<&str> = vec![
        "run",
        "--config",
        "configs/xor.toml",
        "--out",
        r,
        "--backend",
        "cpu",
    ];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&[
        // the default recipe is robust: `run` trains the plain one beside it (briefly here)
        "--set",
        "training.plain.epochs=1",
        "--set",
        "training.plain.samples_per_epoch=1",
        "--set",
        "evaluation.instances=3",
        "--set",
        "evaluation.val_instances=2",
        "--set",
        "evaluation.test_trials=2",
        "--set",
        "evaluation.val_trials=2",
        "--set",
        "evaluation.mismatch=[0.2]",
        "--set",
        "evaluation.bits=[4]",
        "--set",
        "evaluation.noise=[0.05]",
        "--set",
        "evaluation.silence=[0.4]",
        "--set",
        "evaluation.gain_steps=3",
        "--set",
        "evaluation.recurrent_scales=[1.0]",
        "--set",
        "evaluation.bits_paper=[4]",
        "--set",
        "evaluation.sensitivity_sigma=0.2",
        "--set",
        "evaluation.sensitivity_bits=4",
        "--set",
        "evaluation.teacher_draws=2",
    ]);
    let o = bin().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rob = run.join("robustness");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rob.join("summary.json")).unwrap()).unwrap();
    let levels = summary["levels"].as_array().unwrap();
    // 5 kinds, the paper-scope bits, 8 parameters mismatched alone, 4 matrices quantised alone;
    // for the robust network and the plain one, compared level by level
    assert_eq!(levels.len(), 2 * (5 + 1 + 8 + 4));
    assert_eq!(summary["regimes"].as_array().unwrap().len(), 2);
    // ... on the recalibrated and on the raw accuracy
    let comps = summary["comparisons"].as_array().unwrap();
    assert_eq!(comps.len(), 2 * 18);
    for metric in ["accuracy_recalibrated", "accuracy"] {
        assert_eq!(comps.iter().filter(|c| c["metric"] == metric).count(), 18);
    }
    assert!(run.join("plain/snn/network.safetensors").is_file());
    let plain_cfg = std::fs::read_to_string(run.join("plain/config.toml")).unwrap();
    assert!(
        plain_cfg.contains("[training.robust]\ninstances = 0\n"),
        "{plain_cfg}"
    );
    let ceiling = summary["teacher_ceiling"].as_array().unwrap();
    assert_eq!(ceiling.len(), 1);
    assert_eq!(ceiling[0]["sigma"], 0.2);
    assert_eq!(ceiling[0]["draws"], 2);
    for l in levels {
        for k in [
            "kind",
            "value",
            "instances",
            "accuracy",
            "accuracy_recalibrated",
            "mse",
            "mean_rate_hz",
        ] {
            assert!(l.get(k).is_some(), "summary level lacks {k}");
        }
        for k in ["median", "q25", "q75"] {
            assert!(l["accuracy"].get(k).is_some());
        }
    }
    let csv = std::fs::read_to_string(rob.join("instances.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 18 * 3);
    let md = std::fs::read_to_string(rob.join("report.md")).unwrap();
    assert!(md.contains("median") && md.contains("recalibrated") && md.contains("mismatch=0.2"));
    for section in [
        "## Sensitivity of",
        "## Regime",
        "## The teacher's ceiling",
        "| v_th | mismatch |",
        "| w_slow | bits |",
    ] {
        assert!(md.contains(section), "report.md lacks {section}");
    }
    for f in [
        "accuracy_vs_mismatch.png",
        "accuracy_vs_bits.png",
        "accuracy_vs_noise.png",
        "intact_vs_silenced.png",
        "accuracy_distribution.png",
        "sensitivity.png",
        // the robust network beside the plain one
        "comparison.png",
        "comparison_raw.png",
    ] {
        assert!(rob.join("plots").join(f).is_file(), "missing {f}");
    }
    // --compare: the same network twice gives identical figures and p = 1.
    let o = bin()
        .args([
            "evaluate",
            "--out",
            r,
            "--backend",
            "cpu",
            "--set",
            "training.plain.compare=false",
            "--compare",
            r,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rob.join("summary.json")).unwrap()).unwrap();
    let comps = summary["comparisons"].as_array().unwrap();
    // two comparisons (recalibrated, raw) per level of the second network
    assert_eq!(comps.len(), summary["levels"].as_array().unwrap().len());
    assert!(
        comps
            .iter()
            .all(|c| c["test"]["p_value"].as_f64() == Some(1.0))
    );
}

#[test]
fn gpu_study_level_gives_the_cpu_figures() {
    let gpu = match robust_snn::engine::gpu::GpuEngine::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipping: no wgpu adapter ({e})");
            return;
        }
    };
    let (teacher, task, net, spec) = setup();
    let data = Prepared::new(&task, &teacher, &spec);
    let lvl = level(
        LevelKind::Mismatch,
        0.2,
        Perturbation {
            mismatch: 0.2,
            noise: 0.01,
            silence: 0.1,
            ..Perturbation::default()
        },
    );
    let (c, sc) =
        evaluate_level(&CpuEngine, &net, "n", &task, &data, &lvl, &spec, &|_| {}).unwrap();
    let (g, sg) = evaluate_level(&gpu, &net, "n", &task, &data, &lvl, &spec, &|_| {}).unwrap();
    assert_eq!(c.len(), g.len());
    // The same chip draws on both engines. On adapters that round like the CPU (lavapipe) the
    // figures are equal; on any other, spike trains part after a rounding difference (FMA
    // contraction, 2.5-ULP division) and a trial near its decision boundary may flip: with 4
    // test trials per instance, at most one flip (0.25); the rate, a mean over N x T
    // neuron-steps of a statistically equal run, within 2 %.
    for (a, b) in c.iter().zip(&g) {
        assert_eq!(a.instance, b.instance);
        assert!(
            (a.accuracy - b.accuracy).abs() <= 0.25,
            "instance {}: {} vs {}",
            a.instance,
            a.accuracy,
            b.accuracy
        );
        let rel = (a.mean_rate_hz - b.mean_rate_hz).abs() / a.mean_rate_hz.max(1e-9);
        assert!(
            rel <= 0.02,
            "instance {}: rate {} vs {}",
            a.instance,
            a.mean_rate_hz,
            b.mean_rate_hz
        );
    }
    eprintln!("cpu {:?} / gpu {:?}", sc.accuracy, sg.accuracy);
}
