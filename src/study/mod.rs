//! Robustness studies: Monte-Carlo chip ensembles per perturbation level, recalibration, paired
//! comparisons of networks on identical draws, parameter sweeps, and their reports.

pub mod evaluate;
pub mod levels;
pub mod methods;
pub mod report;
pub mod stats;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Resolved;
use crate::config::{Config, RunDir};
use crate::error::Error;
use crate::report::StagedDir;
use crate::tasks::Split;
use evaluate::{InstanceRow, LevelSummary, Prepared, StudySpec};
use levels::{Level, LevelLists};

/// Default ensemble sizes when the config leaves them at 0.
pub const DEFAULT_INSTANCES_GPU: u32 = 1000;
pub const DEFAULT_INSTANCES_CPU: u32 = 32;

/// A paired comparison of one network against the first, per level.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    pub level: String,
    pub baseline: String,
    pub other: String,
    pub metric: String,
    pub median_baseline: f64,
    pub median_other: f64,
    pub test: stats::Wilcoxon,
}

/// Everything a study produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyOutcome {
    pub task: String,
    pub seed: u64,
    pub backend: String,
    pub instances: u32,
    pub val_instances: u32,
    pub test_trials: usize,
    pub val_trials: usize,
    pub levels: Vec<LevelSummary>,
    pub comparisons: Vec<Comparison>,
    /// The regime metrics of each network (nominal, on the test trials).
    #[serde(default)]
    pub regimes: Vec<NetworkRegime>,
    /// The teacher's own accuracy under relative perturbation of its parameters.
    #[serde(default)]
    pub teacher_ceiling: Vec<CeilingSummary>,
    /// The training method of each network, in the study's order.
    #[serde(default)]
    pub methods: Vec<methods::NetworkMethod>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRegime {
    pub network: String,
    pub regime: crate::learn::regime::Regime,
}

/// The teacher's test accuracy over perturbed copies at one sigma.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CeilingSummary {
    pub sigma: f64,
    pub draws: usize,
    pub accuracy: stats::Quartiles,
}

/// The study's sizes with the defaults resolved for the backend.
pub fn spec_for(cfg: &Config, backend: &Resolved) -> StudySpec {
    spec_with_instances(cfg, backend, cfg.evaluation.instances)
}

/// As [`spec_for`] with `instances` test chips per level (0: the backend's default).
pub fn spec_with_instances(cfg: &Config, backend: &Resolved, instances: u32) -> StudySpec {
    let e = &cfg.evaluation;
    let instances = match (instances, backend.is_gpu()) {
        (0, true) => DEFAULT_INSTANCES_GPU,
        (0, false) => DEFAULT_INSTANCES_CPU,
        (n, _) => n,
    };
    let val_instances = if e.val_instances == 0 {
        (instances / 4).max(4)
    } else {
        e.val_instances
    };
    StudySpec {
        instances,
        val_instances,
        test_trials: e.test_trials,
        val_trials: e.val_trials,
        gain_min: e.gain_min,
        gain_max: e.gain_max,
        gain_steps: e.gain_steps,
        recurrent_scales: e.recurrent_scales.clone(),
        seed: cfg.seed,
    }
}

/// The levels the config asks for.
pub fn levels_for(cfg: &Config) -> Vec<Level> {
    let e = &cfg.evaluation;
    levels::levels(&LevelLists {
        mismatch: &e.mismatch,
        mismatch_full: &e.mismatch_full,
        bits: &e.bits,
        noise: &e.noise,
        silence: &e.silence,
        bits_paper: &e.bits_paper,
        sensitivity_sigma: e.sensitivity_sigma,
        sensitivity_bits: e.sensitivity_bits,
        grid: e.grid,
    })
}

/// `robust-snn evaluate`: the study of `DIR/snn/` (and of `compare` run folders on the same
/// draws); writes `DIR/robustness/`.
pub fn run_study(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    compare: &[PathBuf],
    show_progress: bool,
) -> Result<StudyOutcome, Error> {
    let t0 = std::time::Instant::now();
    let teacher = crate::teacher::load(cfg, run)?;
    let mut nets = vec![(name_of(&run.root), load_net(&run.root)?)];
    for dir in compare {
        let net = load_net(dir)?;
        let nc_fits = !net.decodes_teacher() || net.nc == teacher.nc;
        if !nc_fits || net.n_in != teacher.n_in || net.n_out != teacher.n_out {
            return Err(Error::Other(format!(
                "{}: network (Nc = {}, C = {}) does not fit this run's teacher (Nc = {}, C = {}); compare networks trained on the same teacher",
                dir.display(),
                net.nc,
                net.n_in,
                teacher.nc,
                teacher.n_in
            )));
        }
        nets.push((name_of(dir), net));
    }
    let task = cfg.task();
    let spec = spec_for(cfg, backend);
    let levels = levels_for(cfg);
    let engine = backend.engine();
    let data = Prepared::new(task.as_ref(), &teacher, &spec);
    let per_level = (spec.instances + spec.val_instances) as u64;
    let pb = crate::report::progress_bar(
        per_level * levels.len() as u64 * nets.len() as u64,
        "robustness",
    );
    if !show_progress {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let tick = |n: u64| pb.inc(n);
    let mut rows: Vec<InstanceRow> = Vec::new();
    let mut summaries: Vec<LevelSummary> = Vec::new();
    for (name, net) in &nets {
        for level in &levels {
            pb.set_message(format!("{name}: {}", level.label));
            let (r, s) = evaluate::evaluate_level(
                engine.as_ref(),
                net,
                name,
                task.as_ref(),
                &data,
                level,
                &spec,
                &tick,
            )?;
            let line = format!(
                "{name} {}: accuracy {:.3} [{:.3}, {:.3}], recalibrated {:.3} (gain {:.2}, recurrent scale {:.2}), rate {:.1} Hz",
                level.label,
                s.accuracy.median,
                s.accuracy.q25,
                s.accuracy.q75,
                s.accuracy_recalibrated.median,
                s.gain,
                s.recurrent_scale,
                s.mean_rate_hz.median
            );
            if show_progress {
                pb.println(line);
            } else {
                eprintln!("{line}");
            }
            rows.extend(r);
            summaries.push(s);
        }
    }
    pb.finish_and_clear();
    let comparisons =
        compare_networks(&rows, &nets.iter().map(|n| n.0.clone()).collect::<Vec<_>>());
    let regimes = nets
        .iter()
        .map(|(name, net)| NetworkRegime {
            network: name.clone(),
            regime: crate::learn::regime::regime(
                net,
                &teacher,
                task.as_ref(),
                Split::Test,
                spec.test_trials,
                cfg.seed,
            ),
        })
        .collect();
    let sigmas: Vec<f32> = cfg
        .evaluation
        .mismatch
        .iter()
        .copied()
        .filter(|&s| s > 0.0)
        .collect();
    let teacher_ceiling = crate::teacher::ceiling::ceiling(
        &teacher,
        task.as_ref(),
        &sigmas,
        cfg.evaluation.teacher_draws,
        spec.test_trials,
        cfg.seed,
    )
    .into_iter()
    .map(|c| CeilingSummary {
        sigma: c.sigma,
        draws: c.accuracies.len(),
        accuracy: stats::quartiles(&c.accuracies),
    })
    .filter(|c| c.draws > 0)
    .collect();
    let outcome = StudyOutcome {
        task: task.name().to_string(),
        seed: cfg.seed,
        backend: engine.name(),
        instances: spec.instances,
        val_instances: spec.val_instances,
        test_trials: spec.test_trials,
        val_trials: spec.val_trials,
        levels: summaries,
        comparisons,
        regimes,
        teacher_ceiling,
        methods: nets
            .iter()
            .map(|(name, net)| methods::NetworkMethod {
                network: name.clone(),
                method: net.method,
            })
            .collect(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let stage = StagedDir::new(&run.robustness()).map_err(|e| Error::io(&run.robustness(), e))?;
    report::write_all(&stage, &outcome, &rows)?;
    stage
        .commit()
        .map_err(|e| Error::io(&run.robustness(), e))?;
    Ok(outcome)
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string())
}

fn load_net(dir: &Path) -> Result<crate::snn::Network, Error> {
    let path = dir.join("snn").join(crate::config::NETWORK_FILE);
    if !path.is_file() {
        return Err(Error::Other(format!(
            "{}: no trained network; run `robust-snn train --out {}` first",
            path.display(),
            dir.display()
        )));
    }
    Ok(crate::snn::Network::load(&path)?)
}

/// Per level, each network against the first on the same instance draws: a paired Wilcoxon
/// signed-rank test of the per-instance recalibrated accuracy, then one of the raw accuracy (the
/// network as trained, without the per-level rescaling).
pub fn compare_networks(rows: &[InstanceRow], names: &[String]) -> Vec<Comparison> {
    let mut out = compare_on(rows, names, "accuracy_recalibrated", |r| {
        r.accuracy_recalibrated
    });
    out.extend(compare_on(rows, names, "accuracy", |r| r.accuracy));
    out
}

fn compare_on(
    rows: &[InstanceRow],
    names: &[String],
    metric: &str,
    value: impl Fn(&InstanceRow) -> f64,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    let Some(base) = names.first() else {
        return out;
    };
    let mut levels: Vec<&str> = Vec::new();
    for r in rows {
        if !levels.contains(&r.level.as_str()) {
            levels.push(r.level.as_str());
        }
    }
    for other in names.iter().skip(1) {
        for level in &levels {
            let pick = |n: &str| -> Vec<(u32, f64)> {
                let mut v: Vec<(u32, f64)> = rows
                    .iter()
                    .filter(|r| r.network == n && r.level == *level)
                    .map(|r| (r.instance, value(r)))
                    .collect();
                v.sort_by_key(|x| x.0);
                v
            };
            let (a, b) = (pick(base), pick(other));
            let a: Vec<f64> = a.iter().map(|x| x.1).collect();
            let b: Vec<f64> = b.iter().map(|x| x.1).collect();
            if let Ok(test) = stats::wilcoxon_signed_rank(&b, &a) {
                out.push(Comparison {
                    level: level.to_string(),
                    baseline: base.clone(),
                    other: other.clone(),
                    metric: metric.into(),
                    median_baseline: stats::quartiles(&a).median,
                    median_other: stats::quartiles(&b).median,
                    test,
                });
            }
        }
    }
    out
}
