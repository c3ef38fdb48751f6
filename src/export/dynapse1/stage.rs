//! `robust-snn export`: map the trained network of a run folder onto a DYNAP-SE1 board, validate
//! it, re-simulate the deployed network beside the float one on DYNAP-like chip ensembles, and
//! write `DIR/dynapse1/` in one staged step (nothing is written when any part fails).

use std::path::Path;

use serde::Serialize;

use super::deploy::{
    EnergyModel, PowerEstimate, cams_per_source, deployed_network, float_on_chip, power,
    rectify_input,
};
use super::doc::Doc;
use super::emit::emit_all;
use super::map::{MapOptions, MapReport, capacity, map_network};
use super::validate::validate;
use crate::backend::Resolved;
use crate::chip::Perturbation;
use crate::config::{Config, DynapMismatch, RunDir};
use crate::engine::{EnsembleJob, Record};
use crate::error::Error;
use crate::report::StagedDir;
use crate::report::plot::Group;
use crate::study::evaluate::{InstanceRow, LevelSummary, Prepared, StudySpec, evaluate_level};
use crate::study::levels::{Level, LevelKind, level};

/// The folder `export` writes inside the run folder.
pub const DIR_NAME: &str = "dynapse1";
/// The re-simulated deployed network (engine format), beside the chip files.
pub const DEPLOYED_FILE: &str = "deployed_network.safetensors";
/// Chips whose per-neuron spike counts feed the power estimate.
const POWER_INSTANCES: u32 = 8;

/// `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// The network fits the board and the document breaks no hardware rule.
    pub fits: bool,
    pub neurons_used: usize,
    pub cores_used: usize,
    pub chips_used: usize,
    pub inputs_used: usize,
    pub connections: usize,
    pub max_fan_in: u32,
    /// Neurons per fan-in bin of 8 CAM entries (0-7, 8-15, ...).
    pub fan_in_histogram: Vec<usize>,
    pub cam_budget: u32,
    pub pruned_weight_fraction: f64,
    pub relative_error_w_fast: f64,
    pub relative_error_w_slow: f64,
    pub relative_error_input: f64,
    /// Trained |w| mass (all three matrices, as post) dropped at each model neuron.
    pub dropped_mass_per_neuron: Vec<f64>,
    /// Median accuracy over the chip instances under the DYNAP-like mismatch, as trained
    /// (output gain 1): the float network, and the deployed one.
    pub float_accuracy: f64,
    pub deployed_accuracy: f64,
    /// The same after the per-level recalibration (output gain and recurrent scale).
    pub float_accuracy_recalibrated: f64,
    pub deployed_accuracy_recalibrated: f64,
    /// Without mismatch.
    pub float_accuracy_nominal: f64,
    pub deployed_accuracy_nominal: f64,
    pub float_rate_hz: f64,
    pub deployed_rate_hz: f64,
    /// Median over chips of the event-driven power of the deployed network under mismatch.
    pub estimated_power_uw: f64,
    pub power: PowerReport,
    pub mismatch: DynapMismatch,
    pub instances: u32,
    pub val_instances: u32,
    pub test_trials: usize,
    pub policy: PolicyReport,
    pub levels: Vec<LevelSummary>,
    pub backend: String,
    pub seconds: f64,
    pub notes: Vec<String>,
    /// Under hardware-aware training: the plain dense network of `DIR/plain/`, mapped post hoc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseComparison>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    pub cam_budget: u32,
    pub max_count: u32,
    pub input_max_count: u32,
    pub unit_quantile: f64,
    pub fast_cams: u32,
    /// The hardware-aware training policy (inputs, then W_fast, then W_slow; tied units).
    pub reserved: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PowerReport {
    pub model: EnergyModel,
    /// Median over chips.
    pub spikes_per_s: f64,
    pub synaptic_events_per_s: f64,
    pub instances: u32,
    pub trials: usize,
    pub assumption: String,
    /// Event (dynamic) power, µW = µJ per task second (median over chips).
    pub dynamic_uw: f64,
    /// Static power, µW (`export.static_power_uw`; 0 = not modelled).
    pub static_uw: f64,
    /// One inference is one trial of the task, this long (s).
    pub inference_s: f64,
    /// Energy of one inference, µJ: (dynamic + static) x `inference_s`.
    pub energy_per_inference_uj: f64,
    /// The figures the design brief quotes for this method on DYNAP-SE1, for comparison.
    pub design_brief: String,
}

/// What the design brief quotes (shared/reference/paper.md §9: attributed to the paper by third
/// parties, not found in its code, not verified).
pub const DESIGN_BRIEF_POWER: &str = "7.6 µW dynamic, 30 µW static (the design brief's figures \
    for this method on DYNAP-SE1; not found in the paper's code and not verified)";

/// The post-hoc mapped dense network beside a hardware-trained one (`DIR/plain/`'s network,
/// mapped with the greedy policy, re-simulated on the same chip draws).
#[derive(Clone, Debug, Serialize)]
pub struct DenseComparison {
    pub network: String,
    pub cores_used: usize,
    pub chips_used: usize,
    pub connections: usize,
    pub max_fan_in: u32,
    /// Neurons per fan-in bin of 8 CAM entries (0-7, 8-15, ...).
    pub fan_in_histogram: Vec<usize>,
    pub pruned_weight_fraction: f64,
    pub relative_error_w_fast: f64,
    pub relative_error_w_slow: f64,
    pub levels: Vec<LevelSummary>,
    pub estimated_power_uw: f64,
}

/// Where the default energies come from (also written into the report).
pub const ENERGY_NOTE: &str = "ASSUMPTION: the default energies (883 pJ per spike, 324 pJ per \
    synaptic event) are the order of magnitude reported for DYNAP-SE in Moradi et al., IEEE \
    TBioCAS 12(1), 2018, as recalled, not checked against the paper; static and FPGA input power \
    are not modelled unless export.static_power_uw is set. Measure on the board before relying \
    on them.";

/// An f32 from the config as the decimal the user wrote (0.99f32 as f64 is 0.9900000095..., which
/// would move a quantile's rank).
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// The mapper's options from `[export]`; a network trained for the chip
/// (`training.hardware`) is mapped with the policy it was trained under, so that the export
/// reproduces it.
pub fn map_options(cfg: &Config) -> MapOptions {
    let x = &cfg.export;
    MapOptions {
        cam_budget: x.cam_budget,
        max_count: x.max_count,
        input_max_count: x.input_max_count,
        unit_quantile: widen(x.unit_quantile),
        fast_cams: x.fast_cams,
        max_unit_current_a: x.max_unit_current_pa * 1e-12,
        mem_gain: x.mem_gain,
        syn_gain: x.syn_gain,
        policy: if cfg.training.hardware.enabled() {
            crate::export::dynapse1::map::FanInPolicy::Reserved
        } else {
            crate::export::dynapse1::map::FanInPolicy::Greedy
        },
    }
}

/// The re-simulation's sizes: the study's, with `export.instances` when set.
pub fn spec(cfg: &Config, backend: &Resolved) -> StudySpec {
    let instances = match cfg.export.instances {
        0 => cfg.evaluation.instances,
        n => n,
    };
    crate::study::spec_with_instances(cfg, backend, instances)
}

/// The two levels of the re-simulation: no mismatch, and DYNAP-like mismatch.
pub fn levels(m: &DynapMismatch) -> [Level; 2] {
    let dynap = Perturbation {
        cv: Some(m.cv()),
        ..Default::default()
    };
    let mut l = level(LevelKind::DynapMismatch, 0.0, dynap);
    l.label = "dynap_mismatch".into();
    [level(LevelKind::None, 0.0, Perturbation::default()), l]
}

/// Fails before any work when the configured network cannot fit the board (too many neurons or
/// inputs, or synapse types that a DYNAP-SE1 core does not have).
pub fn check_fits(cfg: &Config) -> Result<(), Error> {
    let extra = &cfg.training.reservoir.extra_tau_ms;
    if cfg.training.method == crate::snn::Method::Reservoir && !extra.is_empty() {
        return Err(Error::Other(format!(
            "the reservoir has synapse types beyond W_fast and W_slow \
             (training.reservoir.extra_tau_ms = {extra:?}); the DYNAP-SE1 mapping knows only \
             those two"
        )));
    }
    let tags = 2 * cfg.task().channels();
    if tags > 1022 {
        return Err(Error::Other(format!(
            "{} input channels need {tags} input tags (ON and OFF); a chip has 1022",
            tags / 2
        )));
    }
    let cap = capacity(tags);
    if cfg.snn.n > cap {
        return Err(Error::Other(format!(
            "snn.n = {} neurons do not fit a DYNAP-SE1 board: a recurrent network may use the \
             chips 0 and 2 only, since rule V10 forbids connections from the left chips {{0, 2}} \
             to the right chips {{1, 3}}, and they hold {cap} with {tags} input tags reserved \
             (2 chips x 4 cores x 256 neurons, minus neuron 0 of core 0 and the ON/OFF input tags \
             on each chip)",
            cfg.snn.n
        )));
    }
    Ok(())
}

fn provenance(doc: &mut Doc, cfg: &Config, run: &RunDir) {
    use serde_json::json;
    let p = &mut doc.provenance;
    p.insert("generator".into(), json!("robust-snn export"));
    p.insert("engine_version".into(), json!(env!("CARGO_PKG_VERSION")));
    p.insert("task".into(), json!(cfg.task().name()));
    p.insert("seed".into(), json!(cfg.seed));
    p.insert(
        "network_file".into(),
        json!(run.network_file().display().to_string()),
    );
    p.insert("config".into(), json!(cfg.to_toml()));
}

/// Median of per-chip power estimates of `net` under `level`.
/// One progress line of the re-simulation: `name`'s figures at level `l`.
fn level_line(name: &str, l: &Level, s: &LevelSummary) -> String {
    format!(
        "{name} {}: accuracy {:.3} [{:.3}, {:.3}], recalibrated {:.3}, rate {:.1} Hz",
        l.label,
        s.accuracy.median,
        s.accuracy.q25,
        s.accuracy.q75,
        s.accuracy_recalibrated.median,
        s.mean_rate_hz.median
    )
}

/// Neurons per fan-in bin of 8 CAM entries.
fn fan_in_histogram(doc: &Doc, n: usize) -> Vec<usize> {
    let cams = super::deploy::cams_per_target(doc, n);
    let most = cams.iter().copied().max().unwrap_or(0) as usize;
    let mut h = vec![0usize; most / 8 + 1];
    for c in cams {
        h[c as usize / 8] += 1;
    }
    h
}

/// Under hardware-aware training, `DIR/plain/`'s dense network mapped post hoc (the greedy
/// policy) and re-simulated on the same chips; `None` without hardware training or without
/// that network.
#[allow(clippy::too_many_arguments)]
fn dense_comparison(
    cfg: &Config,
    run: &RunDir,
    engine: &dyn crate::engine::Engine,
    task: &dyn crate::tasks::Task,
    data: &Prepared,
    spec: &StudySpec,
    levels: &[Level; 2],
    model: &EnergyModel,
) -> Result<Option<DenseComparison>, Error> {
    let path = run
        .root
        .join("plain")
        .join("snn")
        .join("network.safetensors");
    if !cfg.training.hardware.enabled() || !path.is_file() {
        return Ok(None);
    }
    let net = crate::snn::Network::load(&path)?;
    let opts = MapOptions {
        policy: super::map::FanInPolicy::Greedy,
        ..map_options(cfg)
    };
    let mapped = map_network(&net, &opts).map_err(|e| {
        Error::Other(format!(
            "{}: cannot map onto DYNAP-SE1: {e}",
            path.display()
        ))
    })?;
    let deployed = deployed_network(&net, &mapped.doc);
    let mut sums = Vec::new();
    for l in levels {
        let (_, s) = evaluate_level(engine, &deployed, "dense", task, data, l, spec, &|_| {})?;
        eprintln!("{}", level_line("dense (post-hoc mapped)", l, &s));
        sums.push(s);
    }
    let cams = cams_per_source(&mapped.doc, net.n);
    let (per_chip, _, _) = power_of(engine, &deployed, &levels[1], data, spec, &cams, model)?;
    let r = &mapped.report;
    let chips: std::collections::BTreeSet<u32> =
        mapped.doc.neurons.iter().map(|p| p.chip).collect();
    Ok(Some(DenseComparison {
        network: path.display().to_string(),
        cores_used: r.cores_used,
        chips_used: chips.len(),
        connections: r.connections,
        max_fan_in: r.max_fan_in,
        fan_in_histogram: fan_in_histogram(&mapped.doc, net.n),
        pruned_weight_fraction: r.pruned_weight_fraction,
        relative_error_w_fast: r.rel_error_fast,
        relative_error_w_slow: r.rel_error_slow,
        levels: sums,
        estimated_power_uw: median(&per_chip.iter().map(|p| p.total_uw).collect::<Vec<_>>()),
    }))
}

fn power_of(
    engine: &dyn crate::engine::Engine,
    net: &crate::snn::Network,
    level: &Level,
    data: &Prepared,
    spec: &StudySpec,
    cams: &[u64],
    model: &EnergyModel,
) -> Result<(Vec<PowerEstimate>, u32, usize), Error> {
    let instances = spec.instances.min(POWER_INSTANCES);
    let trials = data.test.len().min(20);
    let inputs: Vec<Vec<f32>> = data.test[..trials]
        .iter()
        .map(|t| t.input.clone())
        .collect();
    let steps = data.test.first().map(|t| t.steps).unwrap_or(0);
    let out = engine.simulate(&EnsembleJob {
        net,
        perturbation: &level.perturbation,
        seed: spec.seed,
        instances: 0..instances,
        inputs: &inputs,
        trial_offset: 0,
        steps,
        record: Record::default(),
    })?;
    let seconds = (trials * steps) as f64 * net.params.dt_s() as f64;
    let per_chip = out
        .trials
        .iter()
        .map(|inst| {
            let mut counts = vec![0u64; net.n];
            for t in inst {
                for (c, &k) in counts.iter_mut().zip(&t.spike_counts) {
                    *c += k as u64;
                }
            }
            power(&counts, cams, seconds, model)
        })
        .collect();
    Ok((per_chip, instances, trials))
}

fn median(v: &[f64]) -> f64 {
    crate::study::stats::quartiles(v).median
}

/// The export stage. Trains the teacher and the spiking network first when the run folder lacks
/// them.
pub fn export(
    cfg: &Config,
    run: &RunDir,
    backend: &Resolved,
    show_progress: bool,
) -> Result<ExportReport, Error> {
    let t0 = std::time::Instant::now();
    check_fits(cfg)?;
    let net_path = run.network_file();
    if !net_path.is_file() {
        return Err(Error::Other(format!(
            "{}: no trained network to export (`robust-snn train` first)",
            net_path.display()
        )));
    }
    let net = crate::snn::Network::load(&net_path)?;
    let teacher = crate::teacher::load(cfg, run)?;
    let task = cfg.task();

    let mapped = map_network(&net, &map_options(cfg)).map_err(|e| {
        Error::Other(format!(
            "{}: cannot map onto DYNAP-SE1: {e}",
            net_path.display()
        ))
    })?;
    let mut doc = mapped.doc;
    let rep: MapReport = mapped.report;
    provenance(&mut doc, cfg, run);
    let m = &cfg.export.mismatch;
    doc.mismatch_assumptions.cv = [
        ("tau_mem", m.tau_mem),
        ("tau_fast", m.tau_fast),
        ("tau_slow", m.tau_slow),
        ("v_th", m.v_th),
        ("w_in", m.w_in),
        ("w_fast", m.w_fast),
        ("w_slow", m.w_slow),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), (*v as f64 * 1e6).round() / 1e6))
    .collect();
    doc.mismatch_assumptions.notes.push(
        "re-simulation: per neuron tau = |mu (1 + cv z)| (floored at 1e-3 mu) and V_th = |mu (1 + cv z)|; per synapse w (1 + cv z); z standard normal from the seeded Philox streams; the readout runs on the host, unperturbed"
            .into(),
    );
    let violations = validate(&doc);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().take(10).map(|v| v.to_string()).collect();
        return Err(Error::Other(format!(
            "the mapped network breaks {} hardware rule(s), nothing written: {}",
            violations.len(),
            list.join("; ")
        )));
    }
    let emitted = emit_all(&doc).map_err(|e| Error::Other(e.to_string()))?;

    // Re-simulation: float and deployed networks on the same chip draws.
    let spec = spec(cfg, backend);
    let engine = backend.engine();
    let mut data = Prepared::new(task.as_ref(), &teacher, &spec);
    // The chip sees every input channel as two non-negative event rates.
    for t in data.test.iter_mut().chain(data.val.iter_mut()) {
        t.input = rectify_input(&t.input, t.channels);
        t.channels *= 2;
    }
    let levels = levels(&cfg.export.mismatch);
    let float = float_on_chip(&net);
    let deployed = deployed_network(&net, &doc);
    let nets = [("float", &float), ("deployed", &deployed)];
    let pb =
        crate::report::progress_bar((spec.instances + spec.val_instances) as u64 * 4, "export");
    if !show_progress {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let tick = |k: u64| pb.inc(k);
    let mut rows: Vec<InstanceRow> = Vec::new();
    let mut sums: Vec<LevelSummary> = Vec::new();
    for (name, n) in nets {
        for l in &levels {
            pb.set_message(format!("{name}: {}", l.label));
            let (r, s) = evaluate_level(
                engine.as_ref(),
                n,
                name,
                task.as_ref(),
                &data,
                l,
                &spec,
                &tick,
            )?;
            let line = level_line(name, l, &s);
            if show_progress {
                pb.println(line);
            } else {
                eprintln!("{line}");
            }
            rows.extend(r);
            sums.push(s);
        }
    }
    pb.finish_and_clear();
    let model = EnergyModel {
        energy_per_spike_pj: cfg.export.energy_per_spike_pj,
        energy_per_synaptic_event_pj: cfg.export.energy_per_synaptic_event_pj,
        static_power_uw: cfg.export.static_power_uw,
    };
    let cams = cams_per_source(&doc, net.n);
    let (per_chip, p_inst, p_trials) = power_of(
        engine.as_ref(),
        &deployed,
        &levels[1],
        &data,
        &spec,
        &cams,
        &model,
    )?;
    let col =
        |f: &dyn Fn(&PowerEstimate) -> f64| median(&per_chip.iter().map(f).collect::<Vec<_>>());
    let inference_s =
        data.test.first().map_or(0, |t| t.steps) as f64 * widen(net.params.dt_ms) * 1e-3;
    let dense = dense_comparison(
        cfg,
        run,
        engine.as_ref(),
        task.as_ref(),
        &data,
        &spec,
        &levels,
        &model,
    )?;
    let find = |net: &str, kind: &str| sums.iter().find(|s| s.network == net && s.kind == kind);
    let (ff, fd, nf, nd) = (
        find("float", "dynap_mismatch"),
        find("deployed", "dynap_mismatch"),
        find("float", "none"),
        find("deployed", "none"),
    );
    let acc =
        |s: Option<&LevelSummary>, f: &dyn Fn(&LevelSummary) -> f64| s.map(f).unwrap_or(f64::NAN);
    let chips: std::collections::BTreeSet<u32> = doc.neurons.iter().map(|p| p.chip).collect();
    let mut notes = rep.notes.clone();
    if rep.rel_error_fast >= 0.99 && net.params.use_fast {
        notes.push(
            "W_fast is (almost) entirely lost in the mapping: raise export.fast_cams or lower export.unit_quantile"
                .into(),
        );
    }
    let report = ExportReport {
        fits: true,
        neurons_used: rep.neurons_used,
        cores_used: rep.cores_used,
        chips_used: chips.len(),
        inputs_used: rep.inputs_used,
        connections: rep.connections,
        max_fan_in: rep.max_fan_in,
        fan_in_histogram: fan_in_histogram(&doc, net.n),
        cam_budget: cfg.export.cam_budget,
        pruned_weight_fraction: rep.pruned_weight_fraction,
        relative_error_w_fast: rep.rel_error_fast,
        relative_error_w_slow: rep.rel_error_slow,
        relative_error_input: rep.rel_error_input,
        dropped_mass_per_neuron: rep.dropped_mass.clone(),
        float_accuracy: acc(ff, &|s| s.accuracy.median),
        deployed_accuracy: acc(fd, &|s| s.accuracy.median),
        float_accuracy_recalibrated: acc(ff, &|s| s.accuracy_recalibrated.median),
        deployed_accuracy_recalibrated: acc(fd, &|s| s.accuracy_recalibrated.median),
        float_accuracy_nominal: acc(nf, &|s| s.accuracy.median),
        deployed_accuracy_nominal: acc(nd, &|s| s.accuracy.median),
        float_rate_hz: acc(ff, &|s| s.mean_rate_hz.median),
        deployed_rate_hz: acc(fd, &|s| s.mean_rate_hz.median),
        estimated_power_uw: col(&|p| p.total_uw),
        power: PowerReport {
            model,
            spikes_per_s: col(&|p| p.spikes_per_s),
            synaptic_events_per_s: col(&|p| p.synaptic_events_per_s),
            instances: p_inst,
            trials: p_trials,
            assumption: ENERGY_NOTE.into(),
            dynamic_uw: col(&|p| p.total_uw) - model.static_power_uw,
            static_uw: model.static_power_uw,
            inference_s,
            energy_per_inference_uj: col(&|p| p.total_uw) * inference_s,
            design_brief: DESIGN_BRIEF_POWER.into(),
        },
        mismatch: cfg.export.mismatch,
        instances: spec.instances,
        val_instances: spec.val_instances,
        test_trials: spec.test_trials,
        policy: PolicyReport {
            cam_budget: cfg.export.cam_budget,
            max_count: cfg.export.max_count,
            input_max_count: cfg.export.input_max_count,
            unit_quantile: widen(cfg.export.unit_quantile),
            fast_cams: cfg.export.fast_cams,
            reserved: cfg.training.hardware.enabled(),
        },
        levels: sums.clone(),
        backend: engine.name(),
        seconds: t0.elapsed().as_secs_f64(),
        notes,
        dense,
    };

    let target = run.root.join(DIR_NAME);
    let stage = StagedDir::new(&target).map_err(|e| Error::io(&target, e))?;
    emitted
        .write_all(stage.path())
        .map_err(|e| Error::io(stage.path(), e))?;
    deployed.save(&stage.join(DEPLOYED_FILE))?;
    let io = |p: &Path, e: std::io::Error| Error::io(p, e);
    let p = stage.join("report.json");
    crate::report::write_json(&p, &report).map_err(|e| io(&p, e))?;
    let p = stage.join("report.md");
    crate::report::write_atomic(&p, markdown(&report, &rep).as_bytes()).map_err(|e| io(&p, e))?;
    let p = stage.join("instances.csv");
    crate::report::write_atomic(&p, crate::study::report::instances_csv(&rows).as_bytes())
        .map_err(|e| io(&p, e))?;
    std::fs::create_dir_all(stage.join("plots")).map_err(|e| io(&stage.join("plots"), e))?;
    plots(&stage, &rows, &doc, &rep)?;
    stage.commit().map_err(|e| Error::io(&target, e))?;
    Ok(report)
}

fn plots(stage: &StagedDir, rows: &[InstanceRow], doc: &Doc, rep: &MapReport) -> Result<(), Error> {
    let group = |net: &str, kind: &str, f: &dyn Fn(&InstanceRow) -> f64| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.network == net && r.kind == kind)
            .map(f)
            .collect()
    };
    let mk = |f: &dyn Fn(&InstanceRow) -> f64| -> Vec<Group> {
        vec![
            ("float, no mismatch".into(), group("float", "none", f)),
            ("deployed, no mismatch".into(), group("deployed", "none", f)),
            (
                "float, DYNAP mismatch".into(),
                group("float", "dynap_mismatch", f),
            ),
            (
                "deployed, DYNAP mismatch".into(),
                group("deployed", "dynap_mismatch", f),
            ),
        ]
    };
    crate::report::plot::boxes(
        &stage.join("plots/accuracy.png"),
        "Float vs deployed (DYNAP-SE1) network: accuracy per chip instance",
        "",
        "accuracy",
        &mk(&|r| r.accuracy),
        Some((
            "as trained",
            "recalibrated",
            &mk(&|r| r.accuracy_recalibrated),
        )),
    )?;
    let mut fan_in: std::collections::BTreeMap<u32, u32> = Default::default();
    for c in &doc.connections {
        *fan_in.entry(c.post).or_default() += c.count;
    }
    let mut used: Vec<f64> = doc
        .neurons
        .iter()
        .map(|p| *fan_in.get(&p.global_id).unwrap_or(&0) as f64)
        .collect();
    used.sort_by(f64::total_cmp);
    crate::report::plot::histogram(
        &stage.join("plots/fan_in.png"),
        &format!(
            "CAM entries used per neuron (budget {}, max {})",
            doc.board.cam_budget_per_neuron, rep.max_fan_in
        ),
        "CAM entries",
        &used,
        32,
    )?;
    crate::report::plot::histogram(
        &stage.join("plots/dropped_mass.png"),
        "Trained |w| mass dropped per neuron (pruned or rounded to 0)",
        "dropped |w| mass",
        &rep.dropped_mass,
        32,
    )?;
    Ok(())
}

/// The readable report.
pub fn markdown(r: &ExportReport, rep: &MapReport) -> String {
    let mut s = String::new();
    s.push_str("# DYNAP-SE1 export\n\n");
    s.push_str(&format!(
        "The network fits one board: {} neurons on {} cores of {} chip(s), {} FPGA input(s), {} connections. \
         Every neuron uses at most {} of its {} CAM entries; no hardware rule is broken \
         (`robust-snn export --check network.json` repeats the check).\n\n",
        r.neurons_used, r.cores_used, r.chips_used, r.inputs_used, r.connections, r.max_fan_in, r.cam_budget
    ));
    s.push_str("## What the mapping gave up\n\n");
    let order = if r.policy.reserved {
        format!(
            "inputs first, then W_fast within {} CAMs, then W_slow, each by decreasing |w|, within {} \
             CAMs per neuron (the policy the network was trained under; AMPA and GABA_A units tied)",
            r.policy.fast_cams, r.policy.cam_budget
        )
    } else {
        format!(
            "W_fast first within {} CAMs, then the largest |w| within {} CAMs per neuron",
            r.policy.fast_cams, r.policy.cam_budget
        )
    };
    s.push_str(&format!(
        "Policy: unit weight = {}-quantile of |w| / {} per (core, synapse type), inputs up to {} entries \
         through their encoding scale; {order}.\n\n",
        r.policy.unit_quantile,
        r.policy.max_count,
        r.policy.input_max_count,
    ));
    s.push_str("| Quantity | Value |\n|---|---|\n");
    s.push_str(&format!(
        "| trained \\|w\\| mass dropped (pruned or rounded to 0) | {:.1} % |\n",
        100.0 * r.pruned_weight_fraction
    ));
    s.push_str(&format!(
        "| relative error ‖W_eff − W‖/‖W‖, W_fast | {:.3} |\n",
        r.relative_error_w_fast
    ));
    s.push_str(&format!(
        "| relative error, W_slow | {:.3} |\n",
        r.relative_error_w_slow
    ));
    s.push_str(&format!(
        "| relative error, input projection | {:.3} |\n",
        r.relative_error_input
    ));
    let worst = rep.dropped_mass.iter().copied().fold(0.0f64, f64::max);
    s.push_str(&format!(
        "| largest \\|w\\| mass dropped at one neuron | {worst:.4} |\n\n"
    ));
    s.push_str("## Re-simulation\n\n");
    s.push_str(&format!(
        "{} chip instances per row ({} validation chips for the recalibration), {} test trials, backend {}. \
         DYNAP-like mismatch, relative sigma per parameter: tau_mem {}, tau_fast {}, tau_slow {}, V_th {}, \
         input synapses {}, W_fast {}, W_slow {} (the readout runs on the host, unperturbed).\n\n",
        r.instances,
        r.val_instances,
        r.test_trials,
        r.backend,
        r.mismatch.tau_mem,
        r.mismatch.tau_fast,
        r.mismatch.tau_slow,
        r.mismatch.v_th,
        r.mismatch.w_in,
        r.mismatch.w_fast,
        r.mismatch.w_slow
    ));
    s.push_str("| Network | Level | Accuracy, median [IQR] | Recalibrated | Rate (Hz) |\n|---|---|---|---|---|\n");
    for l in &r.levels {
        s.push_str(&format!(
            "| {} | {} | {:.3} [{:.3}, {:.3}] | {:.3} (gain {:.2}, scale {:.2}) | {:.1} |\n",
            l.network,
            l.level,
            l.accuracy.median,
            l.accuracy.q25,
            l.accuracy.q75,
            l.accuracy_recalibrated.median,
            l.gain,
            l.recurrent_scale,
            l.mean_rate_hz.median
        ));
    }
    s.push_str("\n## Power estimate\n\n");
    s.push_str(&format!(
        "{:.1} µW (median over {} chips, {} trials each): {:.0} spikes/s and {:.0} synaptic events/s at \
         {} pJ per spike and {} pJ per synaptic event, plus {} µW static.\n\n{}\n",
        r.estimated_power_uw,
        r.power.instances,
        r.power.trials,
        r.power.spikes_per_s,
        r.power.synaptic_events_per_s,
        r.power.model.energy_per_spike_pj,
        r.power.model.energy_per_synaptic_event_pj,
        r.power.model.static_power_uw,
        r.power.assumption
    ));
    s.push_str(&format!(
        "\nDynamic {:.1} µW and static {:.1} µW (µJ per task second); one inference ({:.2} s of \
         input) costs {:.1} µJ. For comparison: {}.\n",
        r.power.dynamic_uw,
        r.power.static_uw,
        r.power.inference_s,
        r.power.energy_per_inference_uj,
        r.power.design_brief
    ));
    if let Some(d) = &r.dense {
        let lvl = |levels: &[LevelSummary], kind: &str, f: &dyn Fn(&LevelSummary) -> String| {
            levels.iter().find(|l| l.kind == kind).map_or("-".into(), f)
        };
        let own: Vec<LevelSummary> = r
            .levels
            .iter()
            .filter(|l| l.network == "deployed")
            .cloned()
            .collect();
        let raw = |l: &LevelSummary| {
            format!(
                "{:.3} [{:.3}, {:.3}]",
                l.accuracy.median, l.accuracy.q25, l.accuracy.q75
            )
        };
        let recal = |l: &LevelSummary| format!("{:.3}", l.accuracy_recalibrated.median);
        let rate = |l: &LevelSummary| format!("{:.1}", l.mean_rate_hz.median);
        let hist = |h: &[usize]| {
            h.iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| {
                    let (lo, hi) = (8 * i as u32, (8 * i as u32 + 7).min(r.cam_budget));
                    if lo >= hi {
                        format!("{lo}: {c}")
                    } else {
                        format!("{lo}-{hi}: {c}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str("\n## Hardware-trained beside the post-hoc mapped dense network\n\n");
        s.push_str(&format!(
            "The dense network is `{}` (the plain recipe), mapped with the greedy post-hoc policy; \
             both re-simulated on the same chip draws.\n\n",
            d.network
        ));
        s.push_str("| | hardware-trained | dense, mapped post hoc |\n|---|---|---|\n");
        let mut rows: Vec<(&str, String, String)> = vec![
            (
                "cores / chips used",
                format!("{} / {}", r.cores_used, r.chips_used),
                format!("{} / {}", d.cores_used, d.chips_used),
            ),
            (
                "connections",
                r.connections.to_string(),
                d.connections.to_string(),
            ),
            (
                "max fan-in (CAM entries)",
                r.max_fan_in.to_string(),
                d.max_fan_in.to_string(),
            ),
            (
                "fan-in histogram (entries: neurons)",
                hist(&r.fan_in_histogram),
                hist(&d.fan_in_histogram),
            ),
            (
                "trained \\|w\\| mass dropped",
                format!("{:.1} %", 100.0 * r.pruned_weight_fraction),
                format!("{:.1} %", 100.0 * d.pruned_weight_fraction),
            ),
            (
                "relative error W_fast / W_slow",
                format!(
                    "{:.3} / {:.3}",
                    r.relative_error_w_fast, r.relative_error_w_slow
                ),
                format!(
                    "{:.3} / {:.3}",
                    d.relative_error_w_fast, d.relative_error_w_slow
                ),
            ),
        ];
        type Cell<'a> = &'a dyn Fn(&LevelSummary) -> String;
        let per_level: [(&str, &str, Cell); 4] = [
            ("accuracy, nominal chip", "none", &raw),
            ("accuracy, DYNAP-like mismatch", "dynap_mismatch", &raw),
            (
                "recalibrated, DYNAP-like mismatch",
                "dynap_mismatch",
                &recal,
            ),
            ("rate under mismatch (Hz)", "dynap_mismatch", &rate),
        ];
        for (name, kind, f) in per_level {
            rows.push((name, lvl(&own, kind, f), lvl(&d.levels, kind, f)));
        }
        rows.push((
            "power (µW)",
            format!("{:.1}", r.estimated_power_uw),
            format!("{:.1}", d.estimated_power_uw),
        ));
        for (k, a, b) in rows {
            s.push_str(&format!("| {k} | {a} | {b} |\n"));
        }
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s.push_str(
        "\n## Files\n\n- `network.json`: the versioned document (conventions, biases, placement, connections, readout, provenance)\n\
         - `network.caer.txt`, `biases.caer.txt`: cAER netparser connections and biases\n\
         - `samna_setup.py`, `samna_biases.json`: the same network for samna\n\
         - `readout.json`: the host readout\n\
         - `deployed_network.safetensors`: the network the re-simulation ran\n\
         - `instances.csv`, `plots/`: per-chip figures\n",
    );
    s
}
