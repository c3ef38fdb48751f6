//! A robust-snn network (nominal, or one mismatched chip instance) as a NIR graph.
//!
//! Node names are a contract (the Brian2 reference test and `robust-snn import` read them):
//!
//! ```text
//! input: Input([C]) -> proj: Affine(P [N x C], bias b) -> lif
//! lif: LIF(tau = tau_mem_i [s], r = 1, v_leak = V_rest, v_threshold = V_th_i, v_reset = V_reset)
//! lif -> w_fast: Linear(W_fastᵀ [post, pre]) -> syn_fast: LI(tau_fast_i, r = 1, v_leak = 0) -> lif
//! lif -> w_slow: Linear(W_slowᵀ)            -> syn_slow: LI(tau_slow_i, r = 1, v_leak = 0) -> lif
//! lif -> w_syn_k: Linear(W_kᵀ)              -> syn_k: LI(tau_k,i, r = 1, v_leak = 0) -> lif   (k = 0, 1, ...)
//! lif -> readout_filter: LI(tau_out_i, r = 1, v_leak = 0) -> decoder: Linear(D [Nc x N])
//!     -> readout: Linear(W_out_teacherᵀ [n_out x Nc]) -> output: Output([n_out])
//! ```
//!
//! Every synapse type is written, even one whose matrix is all zero (W_fast of a baseline), so a
//! reader finds the same nodes in every export. An instance's silenced neurons get
//! `v_threshold = +inf` (they never spike; the engine also holds their V at 0, which nothing
//! downstream can observe). The graph's `metadata` carries what NIR does not pin down: dt, the
//! spike convention, `>=` thresholds, the Euler step, the step order and the spike-frequency
//! adaptation (which NIR's LIF cannot express).

use super::graph::{Graph, Node, Tensor};
use crate::chip::rng::Stream;
use crate::chip::{Instance, Perturbation};
use crate::snn::Network;

/// The spike convention of every LI node (metadata `spike_convention`).
pub const SPIKE_CONVENTION: &str = "a spike adds w/tau to the LI node's state: a Dirac of area 1 \
    (an LI node's input x per step adds r x / tau); LI states decay by exp(-dt/tau) per step";
/// How the LIF node is integrated (metadata `lif_integration`).
pub const LIF_INTEGRATION: &str = "forward Euler: v += dt/tau (v_leak - v + r I)";
/// The order of one step (metadata `step_order`), as `src/engine/lif_step.rs` runs it.
pub const STEP_ORDER: &str = "per step t: 1. I = proj(c(t)) + syn_fast + syn_slow + sum_k syn_k \
    (the LI states after step t-1); 2. lif: v += dt/tau (v_leak - v + r I); every LI state \
    *= exp(-dt/tau); 3. (instance only) v += noise_std z; 4. (instance only) silenced neurons: \
    v = 0; 5. spike where v >= v_threshold + adapt_beta a, then v = v_reset, a = adapt_rho a + s; \
    6. each spike s_j(t) adds W[:, j] r / tau to the synapse LI nodes and r / tau to \
    readout_filter (used by lif from step t+1); 7. output = readout(decoder(readout_filter))";

/// The per-neuron values and effective matrices one graph is built from.
struct Arrays {
    tau_mem: Vec<f32>,
    v_th: Vec<f32>,
    tau_fast: Vec<f32>,
    tau_slow: Vec<f32>,
    tau_out: Vec<f32>,
    tau_extra: Vec<Vec<f32>>,
    proj: Vec<f32>,
    w_fast: Vec<f32>,
    w_slow: Vec<f32>,
    w_extra: Vec<Vec<f32>>,
    d: Vec<f32>,
}

/// The nominal network as a NIR graph.
pub fn network_graph(net: &Network) -> Graph {
    let p = &net.params;
    let n = net.n;
    // the same f32 expressions as NeuronConsts::nominal, so the taus are the engine's own
    let s = |ms: f32| vec![ms * 1e-3; n];
    let a = Arrays {
        tau_mem: s(p.tau_mem_ms),
        v_th: vec![p.v_th; n],
        tau_fast: s(p.tau_fast_ms),
        tau_slow: s(p.tau_slow_ms),
        tau_out: s(p.tau_out_ms),
        tau_extra: net.extra_synapses.iter().map(|t| s(t.tau_ms)).collect(),
        proj: net.input_projection(),
        w_fast: net.w_fast.clone(),
        w_slow: net.w_slow.clone(),
        w_extra: net.extra_synapses.iter().map(|t| t.w.clone()).collect(),
        d: net.d.clone(),
    };
    build(net, &a)
}

/// Chip instance `inst` of `net` (drawn with `pert`) as a NIR graph: per-neuron parameters,
/// the mismatched input projection, decoder and recurrent matrices; the metadata names the draw.
pub fn instance_graph(net: &Network, inst: &Instance, pert: &Perturbation) -> Graph {
    let n = net.n;
    let eff = |stream: Stream, w: &[f32]| {
        let mut out = vec![0f32; n * n];
        inst.effective_recurrent(stream, w, &mut out);
        out
    };
    let mut v_th = inst.v_th.clone();
    for (v, &s) in v_th.iter_mut().zip(&inst.silenced) {
        if s {
            *v = f32::INFINITY;
        }
    }
    let a = Arrays {
        tau_mem: inst.tau_mem.clone(),
        v_th,
        tau_fast: inst.tau_fast.clone(),
        tau_slow: inst.tau_slow.clone(),
        tau_out: inst.tau_out.clone(),
        tau_extra: inst.tau_extra.clone(),
        proj: inst.input_proj.clone(),
        w_fast: eff(Stream::W_FAST, &net.w_fast),
        w_slow: eff(Stream::W_SLOW, &net.w_slow),
        w_extra: net
            .extra_synapses
            .iter()
            .enumerate()
            .map(|(k, t)| eff(Stream::w_extra(k), &t.w))
            .collect(),
        d: inst.d.clone(),
    };
    let mut g = build(net, &a);
    g.meta_i64("instance_seed", inst.seed as i64);
    g.meta_i64("instance_index", inst.index as i64);
    g.meta_f64("instance_sigma", pert.mismatch as f64);
    g.meta_str(
        "instance_mode",
        match pert.mode {
            crate::chip::MismatchMode::Paper => "paper",
            crate::chip::MismatchMode::Full => "full",
        },
    );
    g.meta_f64("instance_noise_std", inst.noise_std as f64);
    g.meta_i64(
        "instance_silenced",
        inst.silenced.iter().filter(|&&s| s).count() as i64,
    );
    g
}

/// The LI node of a synapse type or the readout filter: `r = 1`, `v_leak = 0`.
fn filter(tau: &[f32]) -> Node {
    let n = tau.len();
    Node::Li {
        tau: Tensor::vector(tau),
        r: Tensor::filled(n, 1.0),
        v_leak: Tensor::filled(n, 0.0),
    }
}

fn build(net: &Network, a: &Arrays) -> Graph {
    let p = &net.params;
    let (n, nc, c, o) = (net.n, net.nc, net.n_in, net.n_out);
    let mut g = Graph::default();
    g.add(
        "input",
        Node::Input {
            shape: vec![c as i64],
        },
    );
    g.add(
        "proj",
        Node::Affine {
            weight: Tensor::matrix(n, c, &a.proj),
            bias: Tensor::filled(n, p.bias as f64),
        },
    );
    g.add(
        "lif",
        Node::Lif {
            tau: Tensor::vector(&a.tau_mem),
            r: Tensor::filled(n, 1.0),
            v_leak: Tensor::filled(n, p.v_rest as f64),
            v_threshold: Tensor::vector(&a.v_th),
            v_reset: Tensor::filled(n, p.v_reset as f64),
        },
    );
    g.connect("input", "proj");
    g.connect("proj", "lif");
    let mut types: Vec<(String, String, &[f32], &[f32])> = vec![
        ("w_fast".into(), "syn_fast".into(), &a.w_fast, &a.tau_fast),
        ("w_slow".into(), "syn_slow".into(), &a.w_slow, &a.tau_slow),
    ];
    for (k, (w, tau)) in a.w_extra.iter().zip(&a.tau_extra).enumerate() {
        types.push((format!("w_syn_{k}"), format!("syn_{k}"), w, tau));
    }
    for (wn, sn, w, tau) in types {
        // [pre][post] -> NIR's [out = post, in = pre]
        g.add(
            &wn,
            Node::Linear {
                weight: Tensor::transposed(n, n, w),
            },
        );
        g.add(&sn, filter(tau));
        g.connect("lif", &wn);
        g.connect(&wn, &sn);
        g.connect(&sn, "lif");
    }
    g.add("readout_filter", filter(&a.tau_out));
    g.add(
        "decoder",
        Node::Linear {
            weight: Tensor::matrix(nc, n, &a.d),
        },
    );
    g.add(
        "readout",
        Node::Linear {
            weight: Tensor::transposed(nc, o, &net.w_out_teacher),
        },
    );
    g.add(
        "output",
        Node::Output {
            shape: vec![o as i64],
        },
    );
    g.connect("lif", "readout_filter");
    g.connect("readout_filter", "decoder");
    g.connect("decoder", "readout");
    g.connect("readout", "output");

    g.meta_f64("dt_s", p.dt_s() as f64);
    g.meta_str("spike_convention", SPIKE_CONVENTION);
    g.meta_str("threshold", ">=");
    g.meta_str("lif_integration", LIF_INTEGRATION);
    g.meta_str("step_order", STEP_ORDER);
    g.meta_f64("adapt_beta", p.adapt_beta as f64);
    g.meta_f64("adapt_rho", p.adapt_rho as f64);
    g.meta_str(
        "adaptation",
        "spike-frequency adaptation, which NIR's LIF cannot express: the threshold is \
         v_threshold + adapt_beta a with a <- adapt_rho a + s every step (a = 0 at the start; \
         off when adapt_beta = 0)",
    );
    g.meta_str("method", net.method.name());
    g.meta_str(
        "producer",
        concat!("robust-snn ", env!("CARGO_PKG_VERSION")),
    );
    g.meta_i64("n_synapse_types", 2 + net.extra_synapses.len() as i64);
    g
}
