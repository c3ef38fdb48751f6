//! The pipeline's stages as the CLI runs them: each takes a validated config and a run folder.

use std::io::IsTerminal;
use std::path::Path;

use crate::backend::Resolved;
use crate::config::{Config, RunDir};
use crate::error::Error;
use crate::report::StagedDir;
use crate::report::plot::{Panel, Series};
use crate::tasks::Split;

/// Progress bars only on a terminal; plain per-epoch lines otherwise.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Write the resolved config next to the results, so a run folder says how it was made.
pub fn write_config(cfg: &Config, run: &RunDir) -> Result<(), Error> {
    let path = run.root.join("config.toml");
    crate::report::write_atomic(&path, cfg.to_toml().as_bytes()).map_err(|e| Error::io(&path, e))
}

/// `robust-snn task`: plots of a few trials of each split so a user sees what the network must do.
pub fn render_task(cfg: &Config, run: &RunDir, trials: usize) -> Result<std::path::PathBuf, Error> {
    let task = cfg.task();
    let stage = StagedDir::new(&run.task()).map_err(|e| Error::io(&run.task(), e))?;
    let mut panels = Vec::new();
    let mut csv = String::from("split,trial,label,step,channel,input\n");
    for i in 0..trials as u64 {
        let trial = task.trial(Split::Train, i);
        let t: Vec<f64> = (0..trial.steps)
            .map(|s| s as f64 * task.dt_ms() as f64)
            .collect();
        let mut series = Vec::new();
        for c in 0..trial.channels {
            let v: Vec<f64> = (0..trial.steps)
                .map(|s| trial.input[s * trial.channels + c] as f64)
                .collect();
            series.push(Series::new(format!("input {c}"), t.clone(), v));
        }
        for o in 0..trial.outputs {
            let v: Vec<f64> = (0..trial.steps)
                .map(|s| trial.target[s * trial.outputs + o] as f64)
                .collect();
            series.push(Series::new("target", t.clone(), v).dashed());
        }
        for s in 0..trial.steps {
            for c in 0..trial.channels {
                csv.push_str(&format!(
                    "train,{i},{},{s},{c},{}\n",
                    trial.label,
                    trial.input[s * trial.channels + c]
                ));
            }
        }
        panels.push(Panel {
            title: format!(
                "{} trial {i}: label {} (decision window {}-{} ms)",
                task.name(),
                trial.label,
                trial.window.0,
                trial.window.1
            ),
            x_label: "time (ms)".into(),
            y_label: String::new(),
            series,
            log_y: false,
        });
    }
    let png = stage.join("trials.png");
    crate::report::plot::panels(&png, &format!("Task: {}", task.name()), &panels, 1000, 240)?;
    crate::report::write_atomic(&stage.join("trials.csv"), csv.as_bytes())
        .map_err(|e| Error::io(&stage.join("trials.csv"), e))?;
    stage.commit().map_err(|e| Error::io(&run.task(), e))?;
    Ok(run.task().join("trials.png"))
}

/// `robust-snn teacher`.
pub fn teacher(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
) -> Result<crate::teacher::TeacherMetrics, Error> {
    std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    write_config(cfg, run)?;
    crate::teacher::run_stage(cfg, run, backend, interactive())
}

/// True when a stage's output folder is complete (its metrics file exists).
pub fn done(dir: &Path) -> bool {
    dir.join("metrics.json").is_file()
}

/// `DIR/snn/metrics.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SnnMetrics {
    pub task: String,
    /// How the network was trained (`training.method`).
    #[serde(default)]
    pub method: crate::snn::Method,
    pub seed: u64,
    pub network_seed: u64,
    pub n: usize,
    pub nc: usize,
    pub use_fast: bool,
    pub test_accuracy: f64,
    pub teacher_test_accuracy: f64,
    /// Test reconstruction error R = sum_k var(x_k - x~_k) / sum_k var(x_k), mean over trials
    /// (None for methods whose readout is the task output: BPTT, reservoir).
    pub reconstruction_error: Option<f64>,
    pub test_mse: f64,
    pub mean_rate_hz: f64,
    pub test_trials: usize,
    pub best_epoch: usize,
    /// Network ADS: the best validation R; the baselines keep the best validation accuracy.
    pub best_val_r: Option<f64>,
    #[serde(default)]
    pub best_val_accuracy: Option<f64>,
    pub epochs: usize,
    pub train_seconds: f64,
    pub networks_trained: usize,
    pub backend: String,
    /// Input drive, balance and teacher saturation of the trained network (test trials).
    #[serde(default)]
    pub regime: crate::learn::regime::Regime,
}

pub use crate::config::NETWORK_FILE;

/// Test trials the regime metrics of a trained network are measured on.
pub const REGIME_TRIALS: usize = 100;

/// The teacher of a run folder, trained first when it is missing.
pub fn ensure_teacher(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
) -> Result<crate::teacher::TeacherWeights, Error> {
    if !run.teacher().join(crate::teacher::WEIGHTS_FILE).is_file() {
        eprintln!(
            "no teacher in {}: training it first",
            run.teacher().display()
        );
        let m = teacher(cfg, run, backend)?;
        eprintln!("teacher: test accuracy {:.4}", m.test_accuracy);
    }
    crate::teacher::load(cfg, run)
}

/// `robust-snn train`: the teacher when `DIR/teacher/` lacks it, then the spiking network.
/// Returns the teacher's metrics when it was trained now, and the network's.
pub fn train(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    resume: bool,
) -> Result<(Option<crate::teacher::TeacherMetrics>, SnnMetrics), Error> {
    let teacher_m = if run.teacher().join(crate::teacher::WEIGHTS_FILE).is_file() {
        None
    } else {
        Some(teacher(cfg, run, backend)?)
    };
    Ok((teacher_m, train_snn(cfg, run, backend, resume)?))
}

/// `robust-snn export`: the DYNAP-SE1 deployment of `DIR/snn/` (`DIR/dynapse1/`), training the
/// teacher and the spiking network first when they are missing. Fails before anything is written
/// when the network cannot fit a board.
pub fn export(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    show_progress: bool,
) -> Result<crate::export::dynapse1::stage::ExportReport, Error> {
    crate::export::dynapse1::stage::check_fits(cfg)?;
    std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    if !run.network_file().is_file() {
        eprintln!(
            "no trained network in {}: training it first",
            run.snn().display()
        );
        train_snn(cfg, run, backend, false)?;
    }
    crate::export::dynapse1::stage::export(cfg, run, backend, show_progress)
}

/// `robust-snn train`: the spiking network learns the teacher's dynamics; writes `DIR/snn/`.
pub fn train_snn(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    resume: bool,
) -> Result<SnnMetrics, Error> {
    std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    write_config(cfg, run)?;
    let teacher = ensure_teacher(cfg, run, backend)?;
    let task = cfg.task();
    if cfg.training.method != crate::snn::Method::Ads {
        return train_baseline(cfg, run, backend, &teacher, task.as_ref());
    }
    let make = |seed: u64| {
        crate::snn::Network::init(
            cfg.snn.clone(),
            teacher.w_in.clone(),
            teacher.w_out.clone(),
            teacher.nc,
            teacher.n_in,
            teacher.n_out,
            seed,
        )
    };
    let ck = run.root.join(".snn-checkpoint");
    if !resume && ck.exists() {
        std::fs::remove_dir_all(&ck).map_err(|e| Error::io(&ck, e))?;
    }
    let gpu = backend.gpu_context();
    let opts = crate::learn::trainer::TrainOptions {
        checkpoint: Some(&ck),
        resume,
        show_progress: interactive(),
        gpu,
        chip: cfg.training.hardware.enabled().then(|| {
            (
                std::sync::Arc::new(crate::export::dynapse1::onchip::Dynapse1Chip::new(
                    crate::export::dynapse1::stage::map_options(cfg),
                )) as std::sync::Arc<dyn crate::learn::hardware::ChipModel>,
                cfg.training
                    .hardware
                    .dynap_mismatch
                    .then(|| cfg.export.mismatch.cv()),
            )
        }),
    };
    let nets = crate::learn::trainer::train_networks(
        &make,
        &teacher,
        task.as_ref(),
        &cfg.training,
        cfg.seed,
        &opts,
    )?;
    let best = &nets[0];
    let test = crate::learn::trainer::evaluate(
        &best.net,
        &teacher,
        task.as_ref(),
        Split::Test,
        cfg.training.test_trials,
        cfg.seed,
    )?;
    let metrics = SnnMetrics {
        task: task.name().to_string(),
        seed: cfg.seed,
        network_seed: best.network_seed,
        n: best.net.n,
        nc: best.net.nc,
        method: crate::snn::Method::Ads,
        use_fast: cfg.snn.use_fast,
        test_accuracy: test.accuracy,
        teacher_test_accuracy: test.teacher_accuracy,
        reconstruction_error: Some(test.reconstruction_error),
        test_mse: test.mse,
        mean_rate_hz: test.mean_rate_hz,
        test_trials: test.trials,
        best_epoch: best.best_epoch,
        best_val_r: Some(best.best_val_r),
        best_val_accuracy: best
            .history
            .get(best.best_epoch.wrapping_sub(1))
            .map(|h| h.val_accuracy),
        epochs: best.history.len(),
        train_seconds: nets.iter().map(|n| n.train_seconds).fold(0.0, f64::max),
        networks_trained: nets.len(),
        backend: backend.label(),
        regime: crate::learn::regime::regime(
            &best.net,
            &teacher,
            task.as_ref(),
            Split::Test,
            REGIME_TRIALS.min(cfg.training.test_trials),
            cfg.seed,
        ),
    };
    let g = &metrics.regime;
    eprintln!(
        "regime: input drive {:.2} thresholds, recurrent {:.2}, balance {:.3}; teacher mean |x| {:.3}, {:.1} % saturated, ||W_in|| {:.2}",
        g.input_drive_thresholds,
        g.recurrent_drive_thresholds,
        g.balance_index,
        g.teacher_mean_abs_x,
        100.0 * g.teacher_saturated_fraction,
        g.teacher_w_in_norm
    );
    let stage = StagedDir::new(&run.snn()).map_err(|e| Error::io(&run.snn(), e))?;
    best.net
        .save(&stage.join(NETWORK_FILE))
        .map_err(|e| Error::Other(e.to_string()))?;
    crate::report::write_json(&stage.join("metrics.json"), &metrics)
        .map_err(|e| Error::io(&stage.join("metrics.json"), e))?;
    let mut csv =
        String::from("network_seed,epoch,k,train_r,val_r,val_accuracy,mean_rate_hz,seconds\n");
    for n in &nets {
        for h in &n.history {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                n.network_seed,
                h.epoch,
                h.k,
                h.train_r,
                h.val_r,
                h.val_accuracy,
                h.mean_rate_hz,
                h.seconds
            ));
        }
    }
    crate::report::write_atomic(&stage.join("history.csv"), csv.as_bytes())
        .map_err(|e| Error::io(&stage.join("history.csv"), e))?;
    std::fs::create_dir_all(stage.join("plots")).map_err(|e| Error::io(&stage.join("plots"), e))?;
    snn_plots(&stage, &best.net, &teacher, task.as_ref(), &nets, cfg.seed)?;
    stage.commit().map_err(|e| Error::io(&run.snn(), e))?;
    let _ = std::fs::remove_dir_all(&ck);
    Ok(metrics)
}

/// R for a log line: its value, or "n/a" where the readout does not decode the teacher.
pub fn r_text(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.3}"))
}

/// `training.method` other than ADS: train the baseline and write `DIR/snn/` in the same
/// layout (network, metrics, history, plots).
fn train_baseline(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    teacher: &crate::teacher::TeacherWeights,
    task: &dyn crate::tasks::Task,
) -> Result<SnnMetrics, Error> {
    let device = backend
        .burn_device()
        .map_err(|e| Error::Other(e.to_string()))?;
    let out = crate::baselines::train(cfg, teacher, task, &device, interactive())
        .map_err(|e| Error::Other(e.to_string()))?;
    let net = &out.net;
    let test = crate::learn::trainer::evaluate(
        net,
        teacher,
        task,
        Split::Test,
        cfg.training.test_trials,
        cfg.seed,
    )?;
    let best = out.history.iter().find(|h| h.epoch == out.best_epoch);
    let metrics = SnnMetrics {
        task: task.name().to_string(),
        method: net.method,
        seed: cfg.seed,
        network_seed: cfg.seed,
        n: net.n,
        nc: net.nc,
        use_fast: false,
        test_accuracy: test.accuracy,
        teacher_test_accuracy: test.teacher_accuracy,
        reconstruction_error: net.decodes_teacher().then_some(test.reconstruction_error),
        test_mse: test.mse,
        mean_rate_hz: test.mean_rate_hz,
        test_trials: test.trials,
        best_epoch: out.best_epoch,
        best_val_r: None,
        best_val_accuracy: best.map(|h| h.val_accuracy),
        epochs: out.history.len(),
        train_seconds: out.train_seconds,
        networks_trained: 1,
        backend: backend.label(),
        regime: crate::learn::regime::regime(
            net,
            teacher,
            task,
            Split::Test,
            REGIME_TRIALS.min(cfg.training.test_trials),
            cfg.seed,
        ),
    };
    let stage = StagedDir::new(&run.snn()).map_err(|e| Error::io(&run.snn(), e))?;
    net.save(&stage.join(NETWORK_FILE))
        .map_err(|e| Error::Other(e.to_string()))?;
    crate::report::write_json(&stage.join("metrics.json"), &metrics)
        .map_err(|e| Error::io(&stage.join("metrics.json"), e))?;
    let mut csv = String::from("epoch,train_loss,val_accuracy,val_mse,mean_rate_hz,seconds\n");
    for h in &out.history {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            h.epoch, h.train_loss, h.val_accuracy, h.val_mse, h.mean_rate_hz, h.seconds
        ));
    }
    crate::report::write_atomic(&stage.join("history.csv"), csv.as_bytes())
        .map_err(|e| Error::io(&stage.join("history.csv"), e))?;
    std::fs::create_dir_all(stage.join("plots")).map_err(|e| Error::io(&stage.join("plots"), e))?;
    snn_plots(&stage, net, teacher, task, &[], cfg.seed)?;
    let e: Vec<f64> = out.history.iter().map(|h| h.epoch as f64).collect();
    let panel = Panel {
        title: format!("{} training: validation accuracy", net.method.label()),
        x_label: "epoch".into(),
        y_label: "accuracy".into(),
        series: vec![Series::new(
            "validation accuracy",
            e,
            out.history.iter().map(|h| h.val_accuracy).collect(),
        )],
        log_y: false,
    };
    crate::report::plot::panels(
        &stage.join("plots/training.png"),
        &format!("{} training", net.method.label()),
        &[panel],
        900,
        360,
    )?;
    stage.commit().map_err(|e| Error::io(&run.snn(), e))?;
    Ok(metrics)
}

fn snn_plots(
    stage: &StagedDir,
    net: &crate::snn::Network,
    teacher: &crate::teacher::TeacherWeights,
    task: &dyn crate::tasks::Task,
    nets: &[crate::learn::trainer::TrainedNetwork],
    seed: u64,
) -> Result<(), Error> {
    use crate::engine::{CpuEngine, Engine, EnsembleJob, Record};
    let trial = task.trial(Split::Test, 0);
    let none = crate::chip::Perturbation::default();
    let inputs = vec![trial.input.clone()];
    let job = EnsembleJob {
        net,
        perturbation: &none,
        seed,
        instances: 0..1,
        inputs: &inputs,
        trial_offset: 0,
        steps: trial.steps,
        record: Record {
            x: net.decodes_teacher(),
            spikes: true,
            v: false,
        },
    };
    let out = CpuEngine
        .simulate(&job)
        .map_err(|e| Error::Other(e.to_string()))?;
    let o = &out.trials[0][0];
    let (_, x_t) = teacher.forward(&trial.input, trial.steps);
    let t: Vec<f64> = (0..trial.steps)
        .map(|s| s as f64 * task.dt_ms() as f64)
        .collect();
    let nc = teacher.nc;
    let x_hat = o.x.as_deref().unwrap_or(&[]);
    let dims: Vec<usize> = (0..nc).step_by((nc / 4).max(1)).take(4).collect();
    let mut panels = Vec::new();
    // x~ decodes the teacher only for ADS and FORCE
    let dims = if net.decodes_teacher() {
        dims
    } else {
        Vec::new()
    };
    for &k in &dims {
        panels.push(Panel {
            title: format!("dimension {k}"),
            x_label: "time (ms)".into(),
            y_label: String::new(),
            series: vec![
                Series::new(
                    "teacher x",
                    t.clone(),
                    (0..trial.steps).map(|s| x_t[s * nc + k] as f64).collect(),
                )
                .dashed(),
                Series::new(
                    "spiking x~",
                    t.clone(),
                    (0..trial.steps).map(|s| x_hat[s * nc + k] as f64).collect(),
                ),
            ],
            log_y: false,
        });
    }
    if !panels.is_empty() {
        crate::report::plot::panels(
            &stage.join("plots/dynamics.png"),
            "Teacher dynamics x vs spiking reconstruction x~ (test trial 0)",
            &panels,
            1000,
            220,
        )?;
    }
    let spikes: Vec<(f64, u32)> = o
        .spikes
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|&(s, i)| (s as f64 * task.dt_ms() as f64, i))
        .collect();
    crate::report::plot::raster(
        &stage.join("plots/raster.png"),
        "Spike raster (test trial 0)",
        &spikes,
        net.n as u32,
        trial.steps as f64,
    )?;
    let n_out = trial.outputs;
    let mut out_panels = Vec::new();
    for i in 0..3u64 {
        let tr = task.trial(Split::Test, i);
        let inputs = vec![tr.input.clone()];
        let job = EnsembleJob {
            inputs: &inputs,
            trial_offset: i as u32,
            record: Record::default(),
            instances: 0..1,
            ..job
        };
        let res = CpuEngine
            .simulate(&job)
            .map_err(|e| Error::Other(e.to_string()))?;
        let (yt, _) = teacher.forward(&tr.input, tr.steps);
        let y = &res.trials[0][0].y;
        let verdict = if task.correct(&tr, y) {
            "correct"
        } else {
            "wrong"
        };
        out_panels.push(Panel {
            title: format!("test trial {i}, label {} ({verdict})", tr.label),
            x_label: "time (ms)".into(),
            y_label: String::new(),
            series: vec![
                Series::new(
                    "target",
                    t.clone(),
                    (0..tr.steps).map(|s| tr.target[s * n_out] as f64).collect(),
                )
                .dashed(),
                Series::new(
                    "teacher",
                    t.clone(),
                    (0..tr.steps).map(|s| yt[s * n_out] as f64).collect(),
                ),
                Series::new(
                    "spiking network",
                    t.clone(),
                    (0..tr.steps).map(|s| y[s * n_out] as f64).collect(),
                ),
            ],
            log_y: false,
        });
    }
    crate::report::plot::panels(
        &stage.join("plots/output.png"),
        "Task output: spiking network vs teacher vs target",
        &out_panels,
        1000,
        240,
    )?;
    if nets.is_empty() {
        return Ok(());
    }
    let mut series = Vec::new();
    for n in nets {
        let e: Vec<f64> = n.history.iter().map(|h| h.epoch as f64).collect();
        series.push(Series::new(
            format!("val R (seed {})", n.network_seed),
            e.clone(),
            n.history.iter().map(|h| h.val_r).collect(),
        ));
        series.push(
            Series::new(
                format!("train R (seed {})", n.network_seed),
                e,
                n.history.iter().map(|h| h.train_r).collect(),
            )
            .dashed(),
        );
    }
    let panel = Panel {
        title: "Reconstruction error R over training".into(),
        x_label: "epoch".into(),
        y_label: "R".into(),
        series,
        log_y: true,
    };
    crate::report::plot::panels(
        &stage.join("plots/training.png"),
        "Network ADS training",
        &[panel],
        900,
        360,
    )?;
    Ok(())
}

/// What `run` produced, stage by stage.
#[derive(Clone, Debug)]
pub struct PipelineSummary {
    pub teacher: Option<crate::teacher::TeacherMetrics>,
    pub snn: Option<SnnMetrics>,
    pub robustness: crate::study::StudyOutcome,
    /// None when the network does not fit a DYNAP-SE1 board (the export is then skipped).
    pub export: Option<crate::export::dynapse1::stage::ExportReport>,
}

impl PipelineSummary {
    /// Flat figures for sweep tables: `teacher.test_accuracy`, `snn.test_accuracy`, ...,
    /// `robustness.<level>.accuracy_recalibrated`.
    pub fn flatten(&self) -> std::collections::BTreeMap<String, f64> {
        let mut m = std::collections::BTreeMap::new();
        if let Some(t) = &self.teacher {
            m.insert("teacher.test_accuracy".into(), t.test_accuracy);
        }
        if let Some(s) = &self.snn {
            m.insert("snn.test_accuracy".into(), s.test_accuracy);
            if let Some(r) = s.reconstruction_error {
                m.insert("snn.reconstruction_error".into(), r);
            }
            m.insert("snn.mean_rate_hz".into(), s.mean_rate_hz);
        }
        if let Some(x) = &self.export {
            m.insert("export.float_accuracy".into(), x.float_accuracy);
            m.insert("export.deployed_accuracy".into(), x.deployed_accuracy);
            m.insert(
                "export.deployed_accuracy_recalibrated".into(),
                x.deployed_accuracy_recalibrated,
            );
            m.insert(
                "export.pruned_weight_fraction".into(),
                x.pruned_weight_fraction,
            );
            m.insert("export.estimated_power_uw".into(), x.estimated_power_uw);
        }
        for l in &self.robustness.levels {
            m.insert(
                format!("robustness.{}.accuracy", l.level),
                l.accuracy.median,
            );
            m.insert(
                format!("robustness.{}.accuracy_recalibrated", l.level),
                l.accuracy_recalibrated.median,
            );
        }
        m
    }
}

/// Read a stage's metrics file when the stage already ran.
fn read_metrics<T: serde::de::DeserializeOwned>(dir: &Path) -> Option<T> {
    std::fs::read_to_string(dir.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Run folder of the plain network that a robust recipe is compared with.
pub const PLAIN_DIR: &str = "plain";

/// `[training.plain] compare` with a robust recipe: the plain network, trained on the same teacher
/// into `DIR/plain/` (skipped when it is complete). Returns its folder for the study.
fn plain_comparison(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    resume: bool,
) -> Result<Option<std::path::PathBuf>, Error> {
    let Some(plain_run) = plain_run(cfg, run) else {
        return Ok(None);
    };
    let mut plain_cfg = cfg.clone();
    plain_cfg.training = cfg.training.plain_recipe();
    if !done(&plain_run.snn()) || resume {
        // the same teacher: the two networks learn the same dynamics
        let src = run.teacher();
        let dst = plain_run.teacher();
        std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
        for entry in std::fs::read_dir(&src).map_err(|e| Error::io(&src, e))? {
            let entry = entry.map_err(|e| Error::io(&src, e))?;
            if entry.path().is_file() {
                let to = dst.join(entry.file_name());
                std::fs::copy(entry.path(), &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        eprintln!(
            "plain recipe for comparison (ensemble training and QAT off) into {}",
            plain_run.root.display()
        );
        let m = train_snn(&plain_cfg, &plain_run, backend, resume)?;
        eprintln!(
            "plain spiking network: test accuracy {:.4}, R {}, {:.1} Hz ({:.0} s)",
            m.test_accuracy,
            r_text(m.reconstruction_error),
            m.mean_rate_hz,
            m.train_seconds
        );
    }
    Ok(Some(plain_run.root))
}

/// `DIR/plain/` when `[training.plain] compare` is on for a robust recipe and its network is
/// trained (what `evaluate` adds to its comparison, as `run` does).
pub fn trained_plain(cfg: &Config, run: &RunDir) -> Option<std::path::PathBuf> {
    plain_run(cfg, run)
        .filter(|p| p.network_file().is_file())
        .map(|p| p.root)
}

/// The plain network's run folder when the config asks for the comparison.
fn plain_run(cfg: &Config, run: &RunDir) -> Option<RunDir> {
    // the plain recipe is Network ADS's; a baseline has no plain twin
    (cfg.training.method == crate::snn::Method::Ads
        && cfg.training.plain.compare
        && cfg.training.is_robust())
    .then(|| RunDir::new(run.root.join(PLAIN_DIR)))
}

/// The whole pipeline: teacher and spiking network (each skipped when its folder is complete),
/// then the robustness study and its report, then the DYNAP-SE1 export (skipped with a notice
/// when the network cannot fit a board).
pub fn pipeline(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    resume: bool,
) -> Result<PipelineSummary, Error> {
    std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    write_config(cfg, run)?;
    let teacher_m = if done(&run.teacher()) {
        read_metrics(&run.teacher())
    } else {
        let m = teacher(cfg, run, backend)?;
        eprintln!(
            "teacher: test accuracy {:.4} ({:.0} s)",
            m.test_accuracy, m.train_seconds
        );
        Some(m)
    };
    let snn_m = if done(&run.snn()) && !resume {
        read_metrics(&run.snn())
    } else {
        let m = train_snn(cfg, run, backend, resume)?;
        eprintln!(
            "spiking network ({}): test accuracy {:.4}, R {}, {:.1} Hz ({:.0} s)",
            m.method,
            m.test_accuracy,
            r_text(m.reconstruction_error),
            m.mean_rate_hz,
            m.train_seconds
        );
        Some(m)
    };
    let compare = match plain_comparison(cfg, run, backend, resume)? {
        Some(dir) => vec![dir],
        None => Vec::new(),
    };
    let robustness = crate::study::run_study(cfg, run, backend, &compare, interactive())?;
    let export = match crate::export::dynapse1::stage::check_fits(cfg) {
        Ok(()) => Some(export(cfg, run, backend, interactive())?),
        Err(e) => {
            eprintln!("DYNAP-SE1 export skipped: {e}");
            None
        }
    };
    Ok(PipelineSummary {
        teacher: teacher_m,
        snn: snn_m,
        robustness,
        export,
    })
}

/// What `robust-snn import` brought in.
#[derive(Clone, Debug)]
pub struct ImportOutcome {
    pub n: usize,
    pub n_in: usize,
    pub n_out: usize,
    /// W_fast, W_slow and the extra types that are not all zero.
    pub synapse_types: usize,
    pub test_accuracy: f64,
    pub test_trials: usize,
    pub mean_rate_hz: f64,
    pub notices: Vec<String>,
}

/// `DIR/snn/import.json`: where an imported network came from and how its nodes were mapped.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ImportRecord {
    pub source: String,
    pub producer: Option<String>,
    pub notices: Vec<String>,
    /// `[graph node, engine part]`.
    pub mapping: Vec<(String, String)>,
}

/// `robust-snn import FILE --out DIR`: reads the graph, maps it onto an engine network (see
/// [`crate::nir::import`]) for the config's task, and writes `DIR/snn/` (network, metrics on the test
/// split, `import.json`) and `DIR/config.toml`; trains the config's teacher first when
/// `DIR/teacher/` lacks it (the study's data and comparisons use it). Every check runs before
/// anything is written.
pub fn import_nir(
    file: &std::path::Path,
    cfg: &Config,
    run: &RunDir,
    backend: &crate::backend::Resolved,
) -> Result<ImportOutcome, crate::nir::NirError> {
    let graph = crate::nir::hdf5::read(file)?;
    let task = cfg.task();
    let imported = crate::nir::import::import_graph(
        &graph,
        &file.display().to_string(),
        &cfg.snn,
        task.channels(),
        task.outputs(),
    )?;
    let net = imported.net;
    if task.dt_ms() != net.params.dt_ms {
        return Err(crate::nir::NirError::Graph {
            file: file.display().to_string(),
            reason: format!(
                "the task's dt ({} ms) differs from snn.dt_ms ({} ms)",
                task.dt_ms(),
                net.params.dt_ms
            ),
        });
    }
    let err = |e: crate::Error| crate::nir::NirError::Other(e);
    write_config(cfg, run).map_err(err)?;
    let teacher = ensure_teacher(cfg, run, backend).map_err(err)?;
    let test = crate::learn::trainer::evaluate(
        &net,
        &teacher,
        task.as_ref(),
        crate::tasks::Split::Test,
        cfg.training.test_trials,
        cfg.seed,
    )
    .map_err(|e| err(e.into()))?;
    let metrics = SnnMetrics {
        task: task.name().to_string(),
        method: net.method,
        seed: cfg.seed,
        network_seed: cfg.seed,
        n: net.n,
        nc: net.nc,
        use_fast: net.params.use_fast,
        test_accuracy: test.accuracy,
        teacher_test_accuracy: test.teacher_accuracy,
        reconstruction_error: None,
        test_mse: test.mse,
        mean_rate_hz: test.mean_rate_hz,
        test_trials: test.trials,
        best_epoch: 0,
        best_val_r: None,
        best_val_accuracy: None,
        epochs: 0,
        train_seconds: 0.0,
        networks_trained: 0,
        backend: backend.label(),
        regime: crate::learn::regime::regime(
            &net,
            &teacher,
            task.as_ref(),
            crate::tasks::Split::Test,
            REGIME_TRIALS.min(cfg.training.test_trials),
            cfg.seed,
        ),
    };
    let record = ImportRecord {
        source: file.display().to_string(),
        producer: graph.metadata.get("producer").map(|m| m.to_string()),
        notices: imported.notices.clone(),
        mapping: imported.mapping.clone(),
    };
    let snn = run.snn();
    let io = |p: &std::path::Path, e: std::io::Error| {
        crate::nir::NirError::Other(crate::Error::io(p, e))
    };
    let stage = crate::report::StagedDir::new(&snn).map_err(|e| io(&snn, e))?;
    net.save(&stage.join(crate::config::NETWORK_FILE))
        .map_err(|e| crate::nir::NirError::Other(e.into()))?;
    crate::report::write_json(&stage.join("metrics.json"), &metrics)
        .map_err(|e| io(&stage.join("metrics.json"), e))?;
    crate::report::write_json(&stage.join("import.json"), &record)
        .map_err(|e| io(&stage.join("import.json"), e))?;
    stage.commit().map_err(|e| io(&snn, e))?;
    let nonzero = |w: &[f32]| w.iter().any(|&x| x != 0.0);
    Ok(ImportOutcome {
        n: net.n,
        n_in: net.n_in,
        n_out: net.n_out,
        synapse_types: [nonzero(&net.w_fast), nonzero(&net.w_slow)]
            .into_iter()
            .chain(net.extra_synapses.iter().map(|t| t.is_nonzero()))
            .filter(|&b| b)
            .count(),
        test_accuracy: test.accuracy,
        test_trials: test.trials,
        mean_rate_hz: test.mean_rate_hz,
        notices: imported.notices,
    })
}
