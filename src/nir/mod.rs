//! NIR (Neuromorphic Intermediate Representation, <https://neuroir.org>): export a trained
//! network, or one mismatched chip instance of it, as a NIR graph (`robust-snn export --format
//! nir`), and import a recurrent graph trained elsewhere as an engine network (`robust-snn
//! import`).
//!
//! * [`graph`]: the graph model (nodes, edges, metadata);
//! * [`hdf5`]: `.nir` files in the layout of the Python package's `nir.write`;
//! * [`export`]: Network / Instance -> graph (node names and semantics documented there);
//! * [`import`]: graph -> Network, with the mapping's decisions.

pub mod export;
pub mod graph;
pub mod hdf5;
pub mod import;

use std::path::PathBuf;

use crate::chip::{Instance, MismatchMode, Perturbation};
use crate::config::{Config, RunDir};

/// Folder of the NIR files in a run folder (`DIR/nir/`).
pub const DIR_NAME: &str = "nir";
/// The nominal network's graph in [`DIR_NAME`].
pub const NETWORK_FILE: &str = "network.nir";

/// The file name of chip instance `k`'s graph.
pub fn instance_file(k: u32) -> String {
    format!("instance_{k}.nir")
}

#[derive(Debug, thiserror::Error)]
pub enum NirError {
    /// The file cannot be read or written, or is not a NIR graph.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// The graph is a NIR graph the engine cannot represent (or not as asked); names the node.
    #[error("{file}: node `{node}`: {reason}")]
    Unsupported {
        file: String,
        node: String,
        reason: String,
    },
    /// The graph as a whole does not fit (no recurrent population, shapes against the task...).
    #[error("{file}: {reason}")]
    Graph { file: String, reason: String },
    #[error(transparent)]
    Other(#[from] crate::Error),
}

/// What `export --format nir` wrote.
#[derive(Clone, Debug)]
pub struct ExportOutcome {
    pub files: Vec<PathBuf>,
    /// Things the graph cannot carry exactly (printed by the CLI).
    pub notices: Vec<String>,
}

/// `robust-snn export --format nir`: `DIR/nir/network.nir` from `DIR/snn/`, and with
/// `instance = Some(k)` also `DIR/nir/instance_k.nir`, chip k of the study's draws at mismatch
/// `sigma` (paper mode; the chip seed is the config's `seed`, like `evaluate`'s test chips
/// 0, 1, ...).
pub fn export_stage(
    cfg: &Config,
    run: &RunDir,
    instance: Option<u32>,
    sigma: f32,
) -> Result<ExportOutcome, NirError> {
    let path = run.network_file();
    if !path.is_file() {
        return Err(NirError::File {
            path: path.display().to_string(),
            message: format!(
                "no trained network; run `robust-snn train --out {}` first",
                run.root.display()
            ),
        });
    }
    let net = crate::snn::Network::load(&path).map_err(|e| NirError::Other(e.into()))?;
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(NirError::Graph {
            file: path.display().to_string(),
            reason: format!("--mismatch must be a finite sigma >= 0, got {sigma}"),
        });
    }
    let mut notices = Vec::new();
    if net.params.adapt_beta != 0.0 {
        notices.push(format!(
            "the network uses spike-frequency adaptation (adapt_beta = {}, adapt_rho = {}), \
             which NIR's LIF cannot express: it is stated in the graph's metadata only, and a \
             NIR simulator that ignores it runs a different network",
            net.params.adapt_beta, net.params.adapt_rho
        ));
    }
    let dir = run.root.join(DIR_NAME);
    // both graphs are built before anything is written
    let mut out = vec![(dir.join(NETWORK_FILE), export::network_graph(&net))];
    if let Some(k) = instance {
        let pert = Perturbation {
            mismatch: sigma,
            mode: MismatchMode::Paper,
            ..Default::default()
        };
        let inst = Instance::draw(&net, &pert, cfg.seed, k);
        out.push((
            dir.join(instance_file(k)),
            export::instance_graph(&net, &inst, &pert),
        ));
    }
    let mut files = Vec::new();
    for (p, g) in &out {
        hdf5::write(p, g)?;
        files.push(p.clone());
    }
    Ok(ExportOutcome { files, notices })
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
/// [`import`]) for the config's task, and writes `DIR/snn/` (network, metrics on the test
/// split, `import.json`) and `DIR/config.toml`; trains the config's teacher first when
/// `DIR/teacher/` lacks it (the study's data and comparisons use it). Every check runs before
/// anything is written.
pub fn import_stage(
    file: &std::path::Path,
    cfg: &Config,
    run: &RunDir,
    backend: &crate::backend::Resolved,
) -> Result<ImportOutcome, NirError> {
    let graph = hdf5::read(file)?;
    let task = cfg.task();
    let imported = import::import_graph(
        &graph,
        &file.display().to_string(),
        &cfg.snn,
        task.channels(),
        task.outputs(),
    )?;
    let net = imported.net;
    if task.dt_ms() != net.params.dt_ms {
        return Err(NirError::Graph {
            file: file.display().to_string(),
            reason: format!(
                "the task's dt ({} ms) differs from snn.dt_ms ({} ms)",
                task.dt_ms(),
                net.params.dt_ms
            ),
        });
    }
    let err = |e: crate::Error| NirError::Other(e);
    crate::stages::write_config(cfg, run).map_err(err)?;
    let teacher = crate::stages::ensure_teacher(cfg, run, backend).map_err(err)?;
    let test = crate::learn::trainer::evaluate(
        &net,
        &teacher,
        task.as_ref(),
        crate::tasks::Split::Test,
        cfg.training.test_trials,
        cfg.seed,
    )
    .map_err(|e| err(e.into()))?;
    let metrics = crate::stages::SnnMetrics {
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
            crate::stages::REGIME_TRIALS.min(cfg.training.test_trials),
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
    let io = |p: &std::path::Path, e: std::io::Error| NirError::Other(crate::Error::io(p, e));
    let stage = crate::report::StagedDir::new(&snn).map_err(|e| io(&snn, e))?;
    net.save(&stage.join(crate::config::NETWORK_FILE))
        .map_err(|e| NirError::Other(e.into()))?;
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
