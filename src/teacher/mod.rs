//! The rate-RNN teacher (docs/design.md §3): burn model, BPTT training, the plain-Rust forward
//! pass the spiking network learns from, and the `teacher` stage that writes `DIR/teacher/`.

pub mod ceiling;
pub mod model;
pub mod train;
pub mod weights;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::Resolved;
use crate::config::{Config, RunDir};
use crate::error::Error;
use crate::report::plot::{Panel, Series};
use crate::report::{StagedDir, write_json};
use crate::tasks::{Split, Task};
pub use weights::{TeacherError, TeacherWeights};

/// `DIR/teacher/metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TeacherMetrics {
    pub task: String,
    pub seed: u64,
    pub test_accuracy: f64,
    pub test_mse: f64,
    pub test_trials: usize,
    pub val_accuracy: f64,
    pub epochs: usize,
    pub best_epoch: usize,
    pub train_seconds: f64,
    pub backend: String,
    pub hidden: usize,
    pub tau_ms_min: f32,
    pub tau_ms_max: f32,
}

pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Train the teacher and write `DIR/teacher/` (weights, metrics.json, history.csv, plots/).
pub fn run_stage(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    show_progress: bool,
) -> Result<TeacherMetrics, Error> {
    let task = cfg.task();
    let device = backend.burn_device()?;
    let outcome = train::train(
        &cfg.teacher,
        task.as_ref(),
        cfg.seed,
        &device,
        show_progress,
    )?;
    let w = &outcome.weights;
    let (test_accuracy, test_mse) =
        train::evaluate(w, task.as_ref(), Split::Test, cfg.teacher.test_trials);
    let val_accuracy = outcome
        .history
        .get(outcome.best_epoch.saturating_sub(1))
        .map(|r| r.val_accuracy)
        .unwrap_or(0.0);
    let metrics = TeacherMetrics {
        task: task.name().to_string(),
        seed: cfg.seed,
        test_accuracy,
        test_mse,
        test_trials: cfg.teacher.test_trials,
        val_accuracy,
        epochs: outcome.history.len(),
        best_epoch: outcome.best_epoch,
        train_seconds: outcome.train_seconds,
        backend: backend.label(),
        hidden: w.nc,
        tau_ms_min: w.tau_ms.iter().cloned().fold(f32::INFINITY, f32::min),
        tau_ms_max: w.tau_ms.iter().cloned().fold(0.0, f32::max),
    };

    let stage = StagedDir::new(&run.teacher()).map_err(|e| Error::io(&run.teacher(), e))?;
    w.save(&stage.join(WEIGHTS_FILE))?;
    write_json(&stage.join("metrics.json"), &metrics)
        .map_err(|e| Error::io(&stage.join("metrics.json"), e))?;
    let mut csv = String::from("epoch,train_loss,val_mse,val_accuracy,seconds\n");
    for r in &outcome.history {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            r.epoch, r.train_loss, r.val_mse, r.val_accuracy, r.seconds
        ));
    }
    crate::report::write_atomic(&stage.join("history.csv"), csv.as_bytes())
        .map_err(|e| Error::io(&stage.join("history.csv"), e))?;
    std::fs::create_dir_all(stage.join("plots")).map_err(|e| Error::io(&stage.join("plots"), e))?;
    plot_history(&stage.join("plots/learning_curves.png"), &outcome.history)?;
    plot_trials(&stage.join("plots/test_trials.png"), w, task.as_ref(), 4)?;
    stage.commit().map_err(|e| Error::io(&run.teacher(), e))?;
    Ok(metrics)
}

/// Load `DIR/teacher/` and check it fits the config's task and teacher size.
pub fn load(cfg: &Config, run: &RunDir) -> Result<TeacherWeights, Error> {
    let path = run.teacher().join(WEIGHTS_FILE);
    let w = TeacherWeights::load(&path)?;
    let task = cfg.task();
    let problems: Vec<String> = [
        ("hidden units (teacher.hidden)", w.nc, cfg.teacher.hidden),
        ("input channels", w.n_in, task.channels()),
        ("outputs", w.n_out, task.outputs()),
    ]
    .iter()
    .filter(|(_, got, want)| got != want)
    .map(|(what, got, want)| format!("{what}: saved teacher has {got}, config needs {want}"))
    .collect();
    if problems.is_empty() {
        Ok(w)
    } else {
        Err(TeacherError::Shape(format!("{}: {}", path.display(), problems.join("; "))).into())
    }
}

fn plot_history(path: &Path, history: &[train::EpochRecord]) -> Result<(), Error> {
    let x: Vec<f64> = history.iter().map(|r| r.epoch as f64).collect();
    let panels = [
        Panel {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "MSE".into(),
            series: vec![
                Series::new(
                    "train loss",
                    x.clone(),
                    history.iter().map(|r| r.train_loss).collect(),
                ),
                Series::new(
                    "validation MSE",
                    x.clone(),
                    history.iter().map(|r| r.val_mse).collect(),
                ),
            ],
            log_y: true,
        },
        Panel {
            title: "Validation accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series: vec![Series::new(
                "validation",
                x,
                history.iter().map(|r| r.val_accuracy).collect(),
            )],
            log_y: false,
        },
    ];
    crate::report::plot::panels(path, "Teacher training", &panels, 900, 320)?;
    Ok(())
}

/// Input, target and teacher output for a few test trials, one panel each.
fn plot_trials(path: &Path, w: &TeacherWeights, task: &dyn Task, n: usize) -> Result<(), Error> {
    let mut panels = Vec::new();
    for i in 0..n as u64 {
        let trial = task.trial(Split::Test, i);
        let (y, _) = w.forward(&trial.input, trial.steps);
        let t: Vec<f64> = (0..trial.steps)
            .map(|s| s as f64 * task.dt_ms() as f64)
            .collect();
        let mut series = Vec::new();
        for c in 0..trial.channels {
            series.push(Series::new(
                format!("input {c}"),
                t.clone(),
                (0..trial.steps)
                    .map(|s| trial.input[s * trial.channels + c] as f64)
                    .collect(),
            ));
        }
        for o in 0..trial.outputs {
            series.push(
                Series::new(
                    "target",
                    t.clone(),
                    (0..trial.steps)
                        .map(|s| trial.target[s * trial.outputs + o] as f64)
                        .collect(),
                )
                .dashed(),
            );
            series.push(Series::new(
                "teacher output",
                t.clone(),
                (0..trial.steps)
                    .map(|s| y[s * trial.outputs + o] as f64)
                    .collect(),
            ));
        }
        let verdict = if task.correct(&trial, &y) {
            "correct"
        } else {
            "wrong"
        };
        panels.push(Panel {
            title: format!("test trial {i}: label {} ({verdict})", trial.label),
            x_label: "time (ms)".into(),
            y_label: "".into(),
            series,
            log_y: false,
        });
    }
    crate::report::plot::panels(path, "Teacher on test trials", &panels, 1000, 260)?;
    Ok(())
}
