//! The spiking-network training driver: schedule, resume, and the `train` command's errors.

mod common;

use std::process::Command;

use robust_snn::config::TrainingConfig;
use robust_snn::learn::trainer::{TrainOptions, k_schedule, train_networks};
use robust_snn::snn::{Network, SnnParams};
use robust_snn::tasks::xor::XorTask;
use robust_snn::teacher::weights::TeacherWeights;

#[test]
fn k_schedule_steps_down_in_equal_plateaus_with_a_floor() {
    // Audio reference: k0 = 200, 8 plateaus of 25, floor 25, over 800 trials.
    let ks: Vec<f32> = (0..800)
        .step_by(100)
        .map(|d| k_schedule(200.0, 8, 25.0, d, 800))
        .collect();
    assert_eq!(
        ks,
        vec![200.0, 175.0, 150.0, 125.0, 100.0, 75.0, 50.0, 25.0]
    );
    assert_eq!(k_schedule(200.0, 8, 25.0, 799, 800), 25.0);
    assert_eq!(k_schedule(200.0, 8, 60.0, 799, 800), 60.0);
    assert_eq!(k_schedule(75.0, 1, 25.0, 799, 800), 75.0);
}

fn small_setup() -> (TeacherWeights, XorTask, SnnParams, TrainingConfig) {
    let teacher = common::random_teacher(16, 3);
    let task = common::xor_task(1000, 5);
    let params = SnnParams {
        n: 48,
        ..SnnParams::default()
    };
    let cfg = TrainingConfig {
        epochs: 2,
        samples_per_epoch: 3,
        eta: 1e-5,
        k: 100.0,
        val_trials: 2,
        test_trials: 2,
        ..TrainingConfig::default()
    };
    (teacher, task, params, cfg)
}

/// A freshly initialised network of `small_setup`'s shape (Nc = 16, one input and output).
fn network(
    teacher: &TeacherWeights,
    params: &SnnParams,
    seed: u64,
) -> Result<Network, robust_snn::snn::SnnError> {
    Network::init(
        params.clone(),
        teacher.w_in.clone(),
        teacher.w_out.clone(),
        16,
        1,
        1,
        seed,
    )
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let (teacher, task, params, cfg) = small_setup();
    let make = |seed: u64| network(&teacher, &params, seed);
    let straight = train_networks(
        &make,
        &teacher,
        &task,
        &cfg,
        9,
        &TrainOptions {
            checkpoint: None,
            resume: false,
            show_progress: false,
            gpu: None,
            chip: None,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // "Interrupted" after one epoch: a run configured for 1 epoch leaves its checkpoint.
    let one = TrainingConfig {
        epochs: 1,
        ..cfg.clone()
    };
    train_networks(
        &make,
        &teacher,
        &task,
        &one,
        9,
        &TrainOptions {
            checkpoint: Some(dir.path()),
            resume: false,
            show_progress: false,
            gpu: None,
            chip: None,
        },
    )
    .unwrap();
    let resumed = train_networks(
        &make,
        &teacher,
        &task,
        &cfg,
        9,
        &TrainOptions {
            checkpoint: Some(dir.path()),
            resume: true,
            show_progress: false,
            gpu: None,
            chip: None,
        },
    )
    .unwrap();
    assert_eq!(resumed[0].history.len(), 2);
    // Everything but the wall time of each epoch must be identical.
    let figures =
        |h: &[robust_snn::learn::trainer::EpochStats]| -> Vec<(usize, f32, f64, f64, f64, f64)> {
            h.iter()
                .map(|e| {
                    (
                        e.epoch,
                        e.k,
                        e.train_r,
                        e.val_r,
                        e.val_accuracy,
                        e.mean_rate_hz,
                    )
                })
                .collect()
        };
    assert_eq!(figures(&straight[0].history), figures(&resumed[0].history));
    assert_eq!(straight[0].net.w_slow, resumed[0].net.w_slow);
    assert!(
        straight[0].net.w_slow.iter().any(|&w| w != 0.0),
        "training changed nothing"
    );
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_robust-snn"))
}

#[test]
fn train_rejects_missing_teacher_and_config_incompatible_and_corrupt_teachers() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    // No teacher and no config.
    let out = bin()
        .args(["train", "--out", &run_s, "--backend", "cpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no teacher") && err.contains("--config"),
        "{err}"
    );
    assert!(!run.exists());

    // `train` with this config into `run` must fail; its stderr.
    let train_fails = |config: &str| -> String {
        let out = bin()
            .args([
                "train",
                "--config",
                config,
                "--out",
                &run_s,
                "--backend",
                "cpu",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    // A saved teacher of the wrong size.
    let w = common::random_teacher(8, 1);
    std::fs::create_dir_all(run.join("teacher")).unwrap();
    let wpath = run.join("teacher/weights.safetensors");
    w.save(&wpath).unwrap();
    let err = train_fails("configs/xor.toml");
    assert!(
        err.contains("teacher.hidden") && err.contains("has 8") && err.contains("needs 64"),
        "{err}"
    );
    assert!(!run.join("snn").exists());

    // A corrupt weights file.
    std::fs::write(&wpath, b"garbage").unwrap();
    let err = train_fails("configs/xor.toml");
    assert!(
        err.contains("weights.safetensors") && err.contains("not a safetensors"),
        "{err}"
    );
    assert!(!run.join("snn").exists());

    // Negative sigma-like values in the SNN config are rejected before anything runs.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[snn]\ntau_slow_ms = -70.0\n").unwrap();
    let err = train_fails(bad.to_str().unwrap());
    assert!(err.contains("snn.tau_slow_ms"), "{err}");
}

#[test]
fn train_stage_writes_network_metrics_and_plots() {
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
            "--set",
            "teacher.hidden=16",
            "--set",
            "teacher.epochs=1",
            "--set",
            "teacher.batches_per_epoch=2",
            "--set",
            "teacher.batch_size=4",
            "--set",
            "teacher.val_trials=4",
            "--set",
            "teacher.test_trials=4",
            "--set",
            "snn.n=40",
            "--set",
            "training.epochs=1",
            "--set",
            "training.samples_per_epoch=2",
            "--set",
            "training.val_trials=2",
            "--set",
            "training.test_trials=3",
            // the stage's files are the subject here, not the plain comparison of `run`
            "--set",
            "training.plain.compare=false",
            "--networks",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("snn/metrics.json")).unwrap())
            .unwrap();
    for key in [
        "test_accuracy",
        "teacher_test_accuracy",
        "reconstruction_error",
        "mean_rate_hz",
        "train_seconds",
        "epochs",
    ] {
        assert!(m.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(m["networks_trained"], 2);
    assert_eq!(m["n"], 40);
    for f in [
        "network.safetensors",
        "history.csv",
        "plots/dynamics.png",
        "plots/raster.png",
        "plots/output.png",
        "plots/training.png",
    ] {
        assert!(run.join("snn").join(f).is_file(), "missing snn/{f}");
    }
    let net = Network::load(&run.join("snn/network.safetensors")).unwrap();
    assert_eq!((net.n, net.nc), (40, 16));
    assert!(
        !run.join(".snn-checkpoint").exists(),
        "checkpoint left behind"
    );
}

fn train_with(cfg: &TrainingConfig) -> Vec<robust_snn::learn::trainer::TrainedNetwork> {
    let (teacher, task, params, _) = small_setup();
    let make = |seed: u64| network(&teacher, &params, seed);
    train_networks(
        &make,
        &teacher,
        &task,
        cfg,
        9,
        &TrainOptions {
            checkpoint: None,
            resume: false,
            show_progress: false,
            gpu: None,
            chip: None,
        },
    )
    .unwrap()
}

fn distinct(v: &[f32]) -> usize {
    v.iter()
        .map(|x| x.to_bits())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// b = 32 is the float network: the QAT path (shadow W_slow, a running copy re-quantised every
/// trial) then trains exactly what plain training trains.
#[test]
fn quantisation_aware_training_at_32_bits_equals_plain_training() {
    let (_, _, _, cfg) = small_setup();
    let plain = train_with(&cfg);
    let qat = train_with(&TrainingConfig {
        qat_bits: 32,
        ..cfg.clone()
    });
    assert!(plain[0].net.w_slow.iter().any(|&w| w != 0.0));
    assert_eq!(plain[0].net.w_slow, qat[0].net.w_slow);
    let figures = |t: &robust_snn::learn::trainer::TrainedNetwork| -> Vec<(f64, f64, f64)> {
        t.history
            .iter()
            .map(|h| (h.train_r, h.val_r, h.val_accuracy))
            .collect()
    };
    assert_eq!(figures(&plain[0]), figures(&qat[0]));
}

/// At 4 bits the fixed matrices are on their 16-level grids before training and stay there, the
/// network that ran had its W_slow on its grid, and the float shadow moved off it.
#[test]
fn quantised_matrices_stay_on_their_grid_through_training() {
    let (teacher, _, params, cfg) = small_setup();
    let cfg = TrainingConfig { qat_bits: 4, ..cfg };
    let trained = train_with(&cfg);
    let net = &trained[0].net;
    let fresh = network(&teacher, &params, trained[0].network_seed).unwrap();
    let q = fresh.quantized(4);
    assert_eq!(net.f, q.f);
    assert_eq!(net.d, q.d);
    assert_eq!(net.w_fast, q.w_fast);
    for m in [&net.f, &net.d, &net.w_fast] {
        assert!(distinct(m) <= 16, "{}", distinct(m));
        // on the grid: quantising again changes nothing
        assert_eq!(&robust_snn::snn::quantize::quantize(m, 4), m);
    }
    // the shadow is float (more than 16 values); what ran was its 4-bit copy
    assert!(distinct(&net.w_slow) > 16);
    assert!(distinct(&robust_snn::snn::quantize::quantize(&net.w_slow, 4)) <= 16);
    // and the shadow differs from what plain training gives (the forward step was quantised)
    let plain = train_with(&TrainingConfig { qat_bits: 0, ..cfg });
    assert_ne!(plain[0].net.w_slow, net.w_slow);
}

/// QAT inside mismatch-ensemble training: at 32 bits it is ensemble training itself; at 4 bits
/// the fixed matrices stay on their grids, the shadow is float and differs from ensemble
/// training without QAT.
#[test]
fn quantisation_aware_ensemble_training_keeps_the_grid_and_equals_ensemble_training_at_32_bits() {
    let (_, _, _, cfg) = small_setup();
    let cfg = TrainingConfig {
        robust: robust_snn::config::RobustTraining {
            instances: 2,
            nominal_share: 0.5,
            sigma: 0.1,
            max_rate_hz: 0.0,
            ..Default::default()
        },
        ..cfg
    };
    let ens = train_with(&cfg);
    assert!(
        distinct(&ens[0].net.w_slow) > 16,
        "ensemble training moved W_slow"
    );
    let q32 = train_with(&TrainingConfig {
        qat_bits: 32,
        ..cfg.clone()
    });
    assert_eq!(ens[0].net.w_slow, q32[0].net.w_slow);
    let q4 = train_with(&TrainingConfig {
        qat_bits: 4,
        ..cfg.clone()
    });
    let net = &q4[0].net;
    for m in [&net.f, &net.d, &net.w_fast] {
        assert!(distinct(m) <= 16, "{}", distinct(m));
        assert_eq!(&robust_snn::snn::quantize::quantize(m, 4), m);
    }
    assert!(distinct(&net.w_slow) > 16);
    assert_ne!(ens[0].net.w_slow, net.w_slow);
}

/// Hardware-aware training: every running (on-chip) network of the run fits the CAM budget, the
/// W_slow connections are fixed once and the kept network uses only them, and it is exactly
/// the network the exporter writes for it (rebuilt here from the document's counts x units).
#[test]
fn hardware_aware_training_stays_on_the_chip() {
    use robust_snn::config::{HardwareTarget, HardwareTraining};
    use robust_snn::export::dynapse1::map::{FanInPolicy, MapOptions, map_network};
    let (teacher, task, params, mut cfg) = small_setup();
    cfg.epochs = 3;
    cfg.eta = 1e-4; // W_slow grows large enough to compete for the budget
    cfg.hardware = HardwareTraining {
        target: HardwareTarget::Dynapse1,
        mask_after: 0.4,
        dynap_mismatch: true,
    };
    let opts = MapOptions {
        cam_budget: 30,
        fast_cams: 8,
        input_max_count: 4,
        policy: FanInPolicy::Reserved,
        ..MapOptions::default()
    };
    let make = |seed: u64| network(&teacher, &params, seed);
    let dir = tempfile::tempdir().unwrap();
    let train = |resume: bool| {
        train_networks(
            &make,
            &teacher,
            &task,
            &cfg,
            4,
            &TrainOptions {
                checkpoint: Some(dir.path()),
                resume,
                chip: Some((
                    std::sync::Arc::new(robust_snn::export::dynapse1::onchip::Dynapse1Chip::new(
                        opts.clone(),
                    )),
                    None,
                )),
                ..TrainOptions::default()
            },
        )
        .unwrap()
    };
    let nets = train(false);
    let t = &nets[0];
    // the checkpoint keeps the fixed mask, and a resumed run restores it
    let resumed = train(true);
    assert_eq!(resumed[0].w_slow_mask, t.w_slow_mask);
    assert_eq!(resumed[0].net.w_slow, t.net.w_slow);
    assert!(t.max_fan_in.unwrap() <= 30, "{:?}", t.max_fan_in);
    let mask = t.w_slow_mask.as_ref().expect("the mask was fixed");
    let n = t.net.n;
    assert!(mask.iter().any(|&m| m));
    assert!(
        t.best_epoch >= 2,
        "the kept network was trained with the mask fixed"
    );
    for (k, (&w, &m)) in t.net.w_slow.iter().zip(mask).enumerate() {
        assert!(m || w == 0.0, "W_slow[{k}] = {w} outside the fixed mask");
    }
    // the exporter maps the kept network onto itself
    let mapped = map_network(&t.net, &opts).unwrap();
    assert_eq!(mapped.report.pruned_weight_fraction, 0.0);
    // rebuilt here from the document's counts x units x signs
    let [wf, ws, _] = common::rebuild(&mapped.doc, &common::doc_conns(&mapped.doc), n, 2);
    let mut cams = vec![0u32; n];
    for c in &mapped.doc.connections {
        let post = mapped
            .doc
            .neurons
            .iter()
            .find(|p| p.global_id == c.post)
            .unwrap();
        cams[post.index as usize] += c.count;
    }
    assert!(cams.iter().all(|&x| x <= 30));
    let close = |a: f64, b: f32| (a - b as f64).abs() <= 1e-6 * (b as f64).abs().max(1e-9);
    for k in 0..n * n {
        assert!(close(wf[k], t.net.w_fast[k]), "w_fast[{k}]");
        assert!(close(ws[k], t.net.w_slow[k]), "w_slow[{k}]");
    }
}

/// `training.update_block`: blocks of 32 steps train what the per-step rule trains, to rounding,
/// through every CPU trainer (plain, quantisation-aware, mismatch-ensemble with and without QAT):
/// W_slow within 1e-4 of its largest entry and the same validation accuracy. The two are not
/// bit-identical (the block is applied as one product), which shows the block was used. The key
/// is refused at 0, by name.
#[test]
fn a_deferred_update_trains_what_the_per_step_rule_trains() {
    let (_, _, _, cfg) = small_setup();
    let ensemble = robust_snn::config::RobustTraining {
        instances: 2,
        nominal_share: 0.5,
        sigma: 0.1,
        max_rate_hz: 0.0,
        ..Default::default()
    };
    for (what, cfg) in [
        ("plain", cfg.clone()),
        (
            "QAT 4 bits",
            TrainingConfig {
                qat_bits: 4,
                ..cfg.clone()
            },
        ),
        (
            "ensemble",
            TrainingConfig {
                robust: ensemble.clone(),
                ..cfg.clone()
            },
        ),
        (
            "ensemble QAT 4 bits",
            TrainingConfig {
                robust: ensemble.clone(),
                qat_bits: 4,
                ..cfg.clone()
            },
        ),
    ] {
        let per_step = train_with(&cfg);
        let deferred = train_with(&TrainingConfig {
            update_block: 32,
            ..cfg.clone()
        });
        let (a, b) = (&per_step[0].net.w_slow, &deferred[0].net.w_slow);
        let largest = a.iter().fold(0f32, |m, &x| m.max(x.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(largest > 0.0, "{what}: W_slow learned");
        assert!(
            worst <= 1e-4 * largest,
            "{what}: |diff| {worst} of {largest}"
        );
        assert!(a != b, "{what}: the block was applied as a product");
        let acc = |t: &robust_snn::learn::trainer::TrainedNetwork| -> Vec<f64> {
            t.history.iter().map(|h| h.val_accuracy).collect()
        };
        assert_eq!(acc(&per_step[0]), acc(&deferred[0]), "{what}");
    }
    let err = robust_snn::config::Config::parse("[training]\nupdate_block = 0\n", "zero.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("zero.toml") && err.contains("training.update_block must be >= 1"),
        "{err}"
    );
    let ok = robust_snn::config::Config::parse("[training]\nupdate_block = 64\n", "ok.toml");
    assert_eq!(ok.unwrap().training.update_block, 64);
}
