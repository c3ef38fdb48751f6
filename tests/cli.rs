//! The command line as a user meets it: bad input fails clearly without writing, and the
//! stages write what the README promises.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_robust-snn"))
}

fn run_fail(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(!out.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn config_errors_name_file_key_and_reason_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.display().to_string();
    let cases = [
        (
            "neg.toml",
            "[teacher]\ntau_min_ms = -5.0\n",
            "teacher.tau_min_ms must be > 0, got -5",
        ),
        (
            "unknown.toml",
            "[teacher]\nhiden = 3\n",
            "unknown field `hiden`",
        ),
        (
            "kind.toml",
            "[task]\nkind = \"mnist\"\n",
            "unknown variant `mnist`",
        ),
        ("syntax.toml", "[teacher\nhidden = 3\n", "line 1"),
        ("type.toml", "seed = \"one\"\n", "line 1"),
        ("snn.toml", "[snn]\ntau_mem_ms = -1.0\n", "snn.tau_mem_ms"),
        (
            "xor.toml",
            "[task.xor]\nmin_pulse_ms = 200.0\n",
            "task.xor.",
        ),
    ];
    for (name, text, want) in cases {
        let cfg = write(dir.path(), name, text);
        for cmd in ["teacher", "task", "run"] {
            let err = run_fail(&[cmd, "--config", &cfg, "--out", &out_s, "--backend", "cpu"]);
            assert!(
                err.contains(name),
                "{cmd} {name}: error does not name the file: {err}"
            );
            assert!(
                err.contains(want),
                "{cmd} {name}: expected `{want}` in: {err}"
            );
            assert!(!out.exists(), "{cmd} {name}: output folder was created");
        }
    }
    let err = run_fail(&[
        "teacher",
        "--config",
        "/nonexistent/x.toml",
        "--out",
        &out_s,
    ]);
    assert!(
        err.contains("/nonexistent/x.toml") && err.contains("cannot read"),
        "{err}"
    );
    let err = run_fail(&["teacher", "--set", "teacher.nope=3", "--out", &out_s]);
    assert!(err.contains("teacher.nope"), "{err}");
    let err = run_fail(&["teacher", "--set", "teacher.epochs=-3", "--out", &out_s]);
    assert!(err.contains("teacher.epochs"), "{err}");
    assert!(!out.exists());
}

#[test]
fn task_and_teacher_stages_write_their_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.display().to_string();
    let ok = bin()
        .args(["task", "--config", "configs/ecg.toml", "--out", &out_s])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let png = std::fs::read(out.join("task/trials.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let ok = bin()
        .args([
            "teacher",
            "--config",
            "configs/xor.toml",
            "--out",
            &out_s,
            "--backend",
            "cpu",
            "--set",
            "teacher.hidden=8",
            "--set",
            "teacher.epochs=1",
            "--set",
            "teacher.batches_per_epoch=1",
            "--set",
            "teacher.batch_size=2",
            "--set",
            "teacher.val_trials=4",
            "--set",
            "teacher.test_trials=4",
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("teacher/metrics.json")).unwrap())
            .unwrap();
    for key in [
        "test_accuracy",
        "test_mse",
        "val_accuracy",
        "epochs",
        "train_seconds",
        "seed",
    ] {
        assert!(m.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(m["epochs"], 1);
    for f in [
        "weights.safetensors",
        "history.csv",
        "plots/learning_curves.png",
        "plots/test_trials.png",
    ] {
        assert!(out.join("teacher").join(f).is_file(), "missing teacher/{f}");
    }
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        cfg.contains("hidden = 8"),
        "resolved config not written: {cfg}"
    );
    // No staging folders left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn help_texts_describe_every_subcommand() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["task", "teacher", "run"] {
        assert!(text.contains(sub), "--help lacks {sub}: {text}");
    }
    let out = bin().args(["teacher", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--backend") && text.contains("--config") && text.contains("--set"));
}

#[test]
fn export_check_rejects_bad_documents_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notjson.json");
    std::fs::write(&bad, "this is not json").unwrap();
    let err = run_fail(&["export", "--check", bad.to_str().unwrap()]);
    assert!(err.contains("notjson.json"), "{err}");
    let partial = dir.path().join("partial.json");
    std::fs::write(
        &partial,
        r#"{"format": "dynapse1-network", "schema_version": "1.0"}"#,
    )
    .unwrap();
    let err = run_fail(&["export", "--check", partial.to_str().unwrap()]);
    assert!(
        err.contains("partial.json") && err.contains("conventions"),
        "{err}"
    );
    // A document with a neuron on an impossible core: the violation names where it is.
    let mut doc = robust_snn::export::dynapse1::doc::Doc::new();
    let text = doc.to_string_pretty();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["neurons"] = serde_json::json!([{"index": 0, "chip": 0, "core": 7, "neuron": 3, "global_id": 1795, "leak": "TAU1"}]);
    let p = dir.path().join("bad_core.json");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let out = bin()
        .args(["export", "--check", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("neurons[0]"), "{text}");
    doc.neurons.clear();
}

#[test]
fn no_adapter_gpu_fails_clearly_and_auto_falls_back_to_the_cpu() {
    let small = [
        "--instances",
        "2",
        "--neurons",
        "32",
        "--steps",
        "50",
        "--nc",
        "8",
    ];
    let out = bin()
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .args(["bench", "--backend", "gpu"])
        .args(small)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no wgpu adapter")
            && err.contains("WGPU_ADAPTER_NAME=no-such-adapter-anywhere"),
        "{err}"
    );
    let out = bin()
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .args(["bench", "--backend", "auto", "--json"])
        .args(small)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running on the CPU"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["backend"].as_str().unwrap().starts_with("cpu"), "{r}");
    for k in [
        "neuron_steps_per_s",
        "synaptic_events_per_s",
        "mean_rate_hz",
        "backend",
    ] {
        assert!(r.get(k).is_some(), "bench JSON lacks {k}");
    }
}

#[test]
fn bench_sweeps_sizes_into_json_lines_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("bench");
    let out = bin()
        .args(["bench", "--backend", "cpu", "--json", "--instances", "2,3"])
        .args(["--neurons", "32", "--steps", "50", "--nc", "8"])
        .args(["--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let file = std::fs::read_to_string(out_dir.join("bench.jsonl")).unwrap();
    let saved: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed, saved, "stdout and bench.jsonl carry the same runs");
    let sizes: Vec<u64> = saved
        .iter()
        .map(|r| r["instances"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![2, 3], "one run per size, in order");
    for r in &saved {
        // throughput is what was simulated over the wall time it took
        let ns = r["neuron_steps_per_s"].as_f64().unwrap();
        let wall = r["wall_seconds"].as_f64().unwrap();
        let e = r["instances"].as_f64().unwrap();
        assert!((ns * wall / (e * 32.0 * 50.0) - 1.0).abs() < 1e-6, "{r}");
        assert!(r["setup_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["kernel_seconds"].is_null(),
            "the CPU has no kernel time: {r}"
        );
    }
    let png = std::fs::read(out_dir.join("throughput.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // a bad size in the list fails before anything runs or is written
    let none = dir.path().join("none");
    let out = bin()
        .args(["bench", "--backend", "cpu", "--instances", "2,100000000"])
        .args(["--out", none.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!none.exists(), "nothing may be written");
}

#[test]
fn sizes_beyond_the_machine_fail_at_once_and_write_nothing() {
    // N = 2e9 (a typo for 2000): the limit is checked before the teacher trains or the run
    // folder (config.toml) is written
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let train_with_n = |n: &str| {
        bin()
            .args(["train", "--config", "configs/xor.toml", "--backend", "cpu"])
            .args(["--out", run.to_str().unwrap()])
            .args(["--set", &format!("snn.n={n}")])
            .output()
            .unwrap()
    };
    let out = train_with_n("2000000000");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("snn.n") && err.contains("2000000000") && err.contains("65536"),
        "{err}"
    );
    assert!(!run.exists(), "nothing may be written");
    // an N within the fixed limit but beyond this machine's memory
    let out = train_with_n("65536");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    if robust_snn::limits::available_memory().is_some_and(|m| m < 1 << 40) {
        assert!(
            err.contains("snn.n = 65536") && err.contains("available"),
            "{err}"
        );
    }
    assert!(!run.exists(), "nothing may be written");
    // 1e8 instances of the benchmark: their outputs alone exceed the memory
    let out = bin()
        .args(["bench", "--backend", "cpu", "--instances", "100000000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    if robust_snn::limits::available_memory().is_some_and(|m| m < 1 << 40) {
        assert!(
            err.contains("--instances = 100000000") && err.contains("available"),
            "{err}"
        );
    }
}

/// `run --backend gpu` opens one wgpu device for the teacher (burn), the trainer, the study and
/// the export: every open is logged, so the log shows one.
#[test]
fn run_on_the_gpu_opens_one_device() {
    if robust_snn::engine::gpu::context::GpuContext::new().is_err() {
        eprintln!("skipped: no wgpu adapter on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_s = dir.path().join("run").to_string_lossy().to_string();
    let mut args = vec![
        "run",
        "--config",
        "configs/xor.toml",
        "--out",
        &out_s,
        "--backend",
        "gpu",
    ];
    for kv in [
        "teacher.hidden=8",
        "teacher.epochs=1",
        "teacher.batches_per_epoch=1",
        "teacher.batch_size=2",
        "teacher.val_trials=4",
        "teacher.test_trials=4",
        "snn.n=32",
        "training.epochs=1",
        "training.samples_per_epoch=2",
        "training.val_trials=2",
        "training.test_trials=2",
        "training.plain.epochs=1",
        "training.plain.samples_per_epoch=2",
        "evaluation.instances=2",
        "evaluation.val_instances=2",
        "evaluation.test_trials=2",
        "evaluation.val_trials=2",
        "evaluation.mismatch=[0.1]",
        "evaluation.bits=[]",
        "evaluation.noise=[]",
        "evaluation.silence=[]",
    ] {
        args.push("--set");
        args.push(kv);
    }
    let out = bin().args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("gpu: opened a device").count(), 1, "{err}");
    // the default recipe is robust: its mismatch-ensemble rule runs on the GPU ensemble
    // trainer, the plain comparison's on the GPU trainer
    assert!(err.contains("on the GPU ensemble trainer"), "{err}");
    assert!(!err.contains("CPU trainer"), "{err}");
    let m = std::fs::read_to_string(dir.path().join("run/snn/metrics.json")).unwrap();
    assert!(m.contains("\"backend\": \"gpu:"), "{m}");
    let m = std::fs::read_to_string(dir.path().join("run/teacher/metrics.json")).unwrap();
    assert!(m.contains("\"backend\": \"gpu:"), "{m}");
}
