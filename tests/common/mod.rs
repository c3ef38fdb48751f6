//! Fixtures shared by the integration tests.

// Each test crate compiles this module and uses a subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use robust_snn::export::dynapse1::doc::{Doc, Source};
use robust_snn::tasks::xor::{XorParams, XorTask};
use robust_snn::teacher::weights::{TeacherInit, TeacherWeights};

/// An untrained one-input, one-output teacher with `hidden` units (the default initialisation).
pub fn random_teacher(hidden: usize, seed: u64) -> TeacherWeights {
    TeacherWeights::init(
        hidden,
        1,
        1,
        &TeacherInit {
            input_scale: 10.0,
            spectral_radius: 0.95,
            tau_init_min_ms: 15.0,
            tau_init_max_ms: 100.0,
        },
        seed,
    )
}

/// Temporal XOR with trials of `duration_ms`.
pub fn xor_task(duration_ms: usize, seed: u64) -> XorTask {
    XorTask::new(
        XorParams {
            duration_ms,
            ..XorParams::default()
        },
        seed,
    )
}

/// Sign of a DYNAP-SE1 synapse type code: NMDA (2) and AMPA (3) excite, GABA_B (0) and GABA_A
/// (1) inhibit.
pub fn sign(code: u32) -> f64 {
    if code == 2 || code == 3 { 1.0 } else { -1.0 }
}

/// One connection as a file states it: source (a neuron's (chip, core, neuron), or an input's
/// (target chip, tag core, tag neuron)), whether the source is an input, target, type, count.
pub type FileConn = ((u32, u32, u32), bool, (u32, u32, u32), u32, u32);

/// The document's connections as [`FileConn`]s.
pub fn doc_conns(doc: &Doc) -> Vec<FileConn> {
    doc.connections
        .iter()
        .map(|con| {
            let addr = |g: u32| {
                let q = doc.neurons.iter().find(|q| q.global_id == g).unwrap();
                (q.chip, q.core, q.neuron)
            };
            let (pre, is_input) = match con.pre {
                Source::Neuron(g) => (addr(g), false),
                Source::Input(j) => {
                    let i = &doc.inputs[j as usize];
                    ((i.target_chip, i.tag_core, i.tag_neuron), true)
                }
            };
            (pre, is_input, addr(con.post), con.syn_type, con.count)
        })
        .collect()
}

/// W_fast, W_slow (N x N `[pre][post]`) and the rectified input projection (N x C) rebuilt here
/// from `conns` with the document's placement, input list and unit weights:
/// sign(type) x count x unit (x the input's scale).
pub fn rebuild(doc: &Doc, conns: &[FileConn], n: usize, c: usize) -> [Vec<f64>; 3] {
    let units: BTreeMap<(u32, u32, u32), f64> = doc
        .quantisation
        .unit_weights
        .iter()
        .map(|u| ((u.chip, u.core, u.syn_type), u.unit))
        .collect();
    let model: BTreeMap<(u32, u32, u32), usize> = doc
        .neurons
        .iter()
        .map(|p| ((p.chip, p.core, p.neuron), p.index as usize))
        .collect();
    let input: BTreeMap<(u32, u32, u32), (usize, f64)> = doc
        .inputs
        .iter()
        .map(|i| {
            (
                (i.target_chip, i.tag_core, i.tag_neuron),
                (i.channel as usize, i.scale),
            )
        })
        .collect();
    let (mut wf, mut ws, mut wi) = (vec![0f64; n * n], vec![0f64; n * n], vec![0f64; n * c]);
    for &(pre, is_input, post_addr, ty, count) in conns {
        let post = model[&post_addr];
        let w = sign(ty) * count as f64 * units[&(post_addr.0, post_addr.1, ty)];
        if is_input {
            let (ch, scale) = input[&pre];
            wi[post * c + ch] += scale * w;
        } else if ty == 1 || ty == 3 {
            wf[model[&pre] * n + post] += w;
        } else {
            ws[model[&pre] * n + post] += w;
        }
    }
    [wf, ws, wi]
}

/// A base config for sweeps whose every point trains and evaluates in a second or two: a tiny
/// teacher, `n` neurons, one training trial, 2 chips at one mismatch level.
pub fn tiny_sweep_base(seed: u64, n: usize) -> String {
    format!(
        "seed = {seed}\n[teacher]\nhidden = 8\nepochs = 1\nbatches_per_epoch = 1\nbatch_size = 2\nval_trials = 2\ntest_trials = 2\n\
         [snn]\nn = {n}\n[training]\nepochs = 1\nsamples_per_epoch = 1\nval_trials = 1\ntest_trials = 2\n\
         [evaluation]\ninstances = 2\nval_instances = 1\ntest_trials = 2\nval_trials = 2\nmismatch = [0.1]\nbits = []\nnoise = []\nsilence = []\ngain_steps = 3\nrecurrent_scales = [1.0]\n"
    )
}

/// The Python interpreter of the tests' Python peers (tests/python/requirements.txt), if it can
/// import every module in `modules`.
///
/// `ROBUST_SNN_PYTHON` (set by `.ci/run` after a successful install) makes the peers required:
/// a missing module then fails the test. Without it, the venv of `tests/python/setup-venv.sh`
/// (`/var/tmp/robust-snn-venv`) or `python3` is tried, and the test skips with a message that
/// says how to install them.
pub fn python_peer(test: &str, modules: &[&str]) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    use std::process::Command;
    let required = std::env::var_os("ROBUST_SNN_PYTHON").map(PathBuf::from);
    let candidates: Vec<PathBuf> = match &required {
        Some(p) => vec![p.clone()],
        None => vec![
            PathBuf::from("/var/tmp/robust-snn-venv/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    let import = format!("import {}", modules.join(", "));
    let mut last = String::new();
    for py in candidates {
        match Command::new(&py).args(["-c", &import]).output() {
            Ok(o) if o.status.success() => return Some(py),
            Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => last = format!("{}: {e}", py.display()),
        }
    }
    if let Some(p) = required {
        panic!(
            "{test}: ROBUST_SNN_PYTHON={} cannot `{import}`: {last}",
            p.display()
        );
    }
    eprintln!(
        "SKIPPED {test}: no Python with `{import}` ({last}); install them with \
         `bash tests/python/setup-venv.sh` and set ROBUST_SNN_PYTHON to the path it prints"
    );
    None
}

/// A network spread over two chips, mapped by the library without training: 1100 neurons (1019
/// fit chip 0 beside the input tags, the rest go to chip 2), the initial dense W_fast, a sparse
/// random W_slow of both signs and 2 input channels (ON and OFF inputs on both chips).
pub fn two_chip_doc() -> Doc {
    use robust_snn::export::dynapse1::map::{MapOptions, map_network};
    use robust_snn::snn::{Network, SnnParams};
    // xorshift, uniform in [-1, 1): deterministic on every machine
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let (n, nc, n_in) = (1100, 4, 2);
    let w_in: Vec<f32> = (0..n_in * nc).map(|_| next()).collect();
    let w_out: Vec<f32> = (0..nc).map(|_| next()).collect();
    let params = SnnParams {
        n,
        ..Default::default()
    };
    let mut net = Network::init(params, w_in, w_out, nc, n_in, 1, 3).unwrap();
    net.w_slow = (0..n * n)
        .map(|_| {
            let x = next();
            if x.abs() > 0.99 { x } else { 0.0 }
        })
        .collect();
    map_network(&net, &MapOptions::default()).unwrap().doc
}

/// `--set` overrides that make `robust-snn export` (or `run`) of an XOR config train and
/// re-simulate in seconds: a tiny teacher, one short training epoch, a few chips and trials.
/// Add `snn.n=...` to choose the network size (the tests/export.rs tests use 40).
pub const TINY_EXPORT: &[&str] = &[
    "teacher.hidden=8",
    "teacher.epochs=1",
    "teacher.batches_per_epoch=1",
    "teacher.batch_size=2",
    "teacher.val_trials=4",
    "teacher.test_trials=4",
    "training.epochs=1",
    "training.samples_per_epoch=2",
    // a tiny network fires fast: keep every training chip so that W_slow moves
    "training.robust.max_rate_hz=0",
    "training.val_trials=2",
    "training.test_trials=2",
    "evaluation.test_trials=4",
    "evaluation.val_trials=2",
    "evaluation.val_instances=2",
    "evaluation.gain_steps=5",
    "evaluation.recurrent_scales=[1.0, 0.5]",
    "export.instances=3",
    "export.fast_cams=8",
];
