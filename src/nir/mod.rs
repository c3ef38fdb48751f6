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
