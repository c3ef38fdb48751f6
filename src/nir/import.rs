//! A NIR graph as an engine network (`robust-snn import`).
//!
//! The engine runs one recurrent population of current-based LIF neurons with exponential
//! synapse types, an input projection into the membrane and a readout of filtered spike trains
//! (`src/engine/lif_step.rs`). A graph maps onto it when it has:
//!
//! * one `Input` and one `Output` node;
//! * one spiking population: a `LIF` or a `CubaLIF` node of N neurons with one `tau`
//!   (`tau_mem`), `v_leak`, `v_threshold` and `v_reset` for all neurons (`r` and `w_in` may differ
//!   per neuron: they are folded into the weights);
//! * the input: `Input -> Affine | Linear (N x C) -> population` (or `Input -> population` when
//!   C = N);
//! * recurrence, as synapse types: for a `LIF`, `population -> Linear | Affine(bias 0) -> LI ->
//!   population` (the LI is the exponential synapse: tau per type, `v_leak = 0`); for a
//!   `CubaLIF`, `population -> Linear | Affine(bias 0) -> population`, whose current passes the
//!   CubaLIF's own `tau_syn` filter. Node names `syn_fast` / `syn_slow` / `syn_k` (robust-snn's
//!   own export) keep their places; otherwise the first type is W_slow and the rest are extra
//!   types;
//! * the readout: `population -> ... -> Output`, a chain of `Linear` / `Affine(bias 0)` nodes and
//!   one `LI` (`v_leak = 0`, one tau): the composed matrix is the decoder D (a chain
//!   `LI -> Linear -> Linear`, robust-snn's export, keeps D and W_out_teacher apart; otherwise
//!   W_out_teacher = I, like the task-readout baselines).
//!
//! Semantics (the same as robust-snn's export, `super::export`): an LI node's input x per step
//! adds `r x / tau` to its state (a spike is a Dirac of area 1), states decay by `exp(-dt/tau)`;
//! the LIF membrane is forward Euler `v += dt/tau (v_leak - v + r I)`; a CubaLIF first updates
//! `I <- exp(-dt/tau_syn) I + w_in x / tau_syn`, then its membrane with `r I`.
//!
//! What the engine cannot represent exactly is refused with the node and the reason, or
//! converted with a notice that states the approximation:
//! * CubaLIF input: the engine puts the input into the membrane directly, the graph through
//!   `tau_syn`. The projection is scaled by the filter's DC gain, `r w_in / (tau_syn (1 -
//!   exp(-dt/tau_syn)))`, so the imported network equals the graph exactly on the input
//!   pre-filtered with `c'(t) = e c'(t-1) + (1 - e) c(t)`, `e = exp(-dt/tau_syn)`, and a constant
//!   input after the filter's transient (notice);
//! * a readout without an LI (raw spikes): filtered with the config's tau_out and `D = W dt`, so
//!   a steady rate gives the same mean output (notice);
//! * heterogeneous tau / v_leak / v_threshold / v_reset / bias, nonzero biases in the
//!   recurrence or the readout, an LI readout or synapse with `v_leak != 0`, a recurrent current
//!   into a LIF without an LI filter, an LI feeding a CubaLIF, several spiking populations, any
//!   other node type: refused.

use std::collections::BTreeSet;

use super::NirError;
use super::graph::{Graph, Node, Tensor};
use crate::snn::{Method, Network, SnnParams, SynapseType};

/// Relative tolerance of "the same value for every neuron": values written from f32 and read as
/// f64 (or computed per neuron in f32) differ by a few ulps at most.
const SAME_REL: f64 = 1e-6;

/// The network a graph maps to, and the approximations made on the way.
#[derive(Clone, Debug)]
pub struct Imported {
    pub net: Network,
    pub notices: Vec<String>,
    /// `(graph node, engine part)` for every node, e.g. `("syn_slow", "W_slow")`.
    pub mapping: Vec<(String, String)>,
}

struct Ctx<'a> {
    file: String,
    g: &'a Graph,
}

impl Ctx<'_> {
    fn unsupported(&self, node: &str, reason: impl Into<String>) -> NirError {
        NirError::Unsupported {
            file: self.file.clone(),
            node: node.to_string(),
            reason: reason.into(),
        }
    }

    fn graph_err(&self, reason: impl Into<String>) -> NirError {
        NirError::Graph {
            file: self.file.clone(),
            reason: reason.into(),
        }
    }

    /// A per-element parameter of `len` values.
    fn check_len(&self, node: &str, what: &str, t: &Tensor, len: usize) -> Result<(), NirError> {
        if t.len() != len {
            return Err(self.unsupported(
                node,
                format!(
                    "{what} has {} values (shape {:?}), expected {len}",
                    t.len(),
                    t.shape
                ),
            ));
        }
        if let Some(x) = t.data.iter().find(|x| x.is_nan()) {
            return Err(self.unsupported(node, format!("{what} holds {x}")));
        }
        Ok(())
    }

    /// The one value of a parameter that must be the same for every neuron.
    fn same(&self, node: &str, what: &str, t: &Tensor) -> Result<f64, NirError> {
        let x0 = t.data[0];
        let tol = SAME_REL * x0.abs().max(1e-30);
        if let Some((i, x)) = t
            .data
            .iter()
            .enumerate()
            .find(|(_, x)| !((**x - x0).abs() <= tol || **x == x0))
        {
            return Err(self.unsupported(
                node,
                format!(
                    "{what} differs between neurons ({x0} at 0, {x} at {i}); the engine has one \
                     {what} for the population"
                ),
            ));
        }
        Ok(x0)
    }

    /// A time constant in seconds, the same for every neuron, finite and > 0.
    fn tau(&self, node: &str, what: &str, t: &Tensor) -> Result<f64, NirError> {
        let tau = self.same(node, what, t)?;
        if !(tau.is_finite() && tau > 0.0) {
            return Err(self.unsupported(node, format!("{what} must be > 0 s, got {tau}")));
        }
        Ok(tau)
    }

    /// A weight matrix `[out, in]` of the expected shape.
    fn matrix(&self, node: &str, w: &Tensor, rows: usize, cols: usize) -> Result<(), NirError> {
        if w.shape != [rows, cols] {
            return Err(self.unsupported(
                node,
                format!("weight has shape {:?}, expected [{rows}, {cols}]", w.shape),
            ));
        }
        if w.data.iter().any(|x| !x.is_finite()) {
            return Err(self.unsupported(node, "weight holds a non-finite value"));
        }
        Ok(())
    }

    fn node(&self, name: &str) -> &Node {
        &self.g.nodes[name]
    }

    /// The weight of a Linear, or of an Affine whose bias is zero (`where_` says where it sits,
    /// for the error).
    fn weight_no_bias<'g>(
        &self,
        name: &str,
        node: &'g Node,
        where_: &str,
    ) -> Result<&'g Tensor, NirError> {
        match node {
            Node::Linear { weight } => Ok(weight),
            Node::Affine { weight, bias } => {
                if bias.data.iter().any(|&b| b != 0.0) {
                    return Err(self.unsupported(
                        name,
                        format!("nonzero bias in the {where_}: the engine's {where_} has none"),
                    ));
                }
                Ok(weight)
            }
            other => Err(self.unsupported(
                name,
                format!(
                    "a {} node in the {where_}, where the engine expects Linear or Affine",
                    other.kind()
                ),
            )),
        }
    }
}

/// The population's parameters, read from a LIF or CubaLIF node.
struct Population {
    name: String,
    n: usize,
    cuba: bool,
    tau_mem: f64,
    v_leak: f64,
    v_threshold: f64,
    v_reset: f64,
    r: Vec<f64>,
    /// CubaLIF: tau_syn and w_in (1 for a LIF).
    tau_syn: f64,
    w_in: Vec<f64>,
}

fn population(cx: &Ctx, name: &str) -> Result<Population, NirError> {
    let (cuba, tau, r, v_leak, v_th, v_reset, syn) = match cx.node(name) {
        Node::Lif {
            tau,
            r,
            v_leak,
            v_threshold,
            v_reset,
        } => (false, tau, r, v_leak, v_threshold, v_reset, None),
        Node::CubaLif {
            tau_syn,
            tau_mem,
            r,
            v_leak,
            v_threshold,
            v_reset,
            w_in,
        } => (
            true,
            tau_mem,
            r,
            v_leak,
            v_threshold,
            v_reset,
            Some((tau_syn, w_in)),
        ),
        _ => unreachable!("population() is called on spiking nodes"),
    };
    let n = tau.len();
    if n == 0 {
        return Err(cx.unsupported(name, "a population of 0 neurons"));
    }
    let tau_name = if cuba { "tau_mem" } else { "tau" };
    for (what, t) in [
        (tau_name, tau),
        ("r", r),
        ("v_leak", v_leak),
        ("v_threshold", v_th),
        ("v_reset", v_reset),
    ] {
        cx.check_len(name, what, t, n)?;
    }
    let tau_mem = cx.tau(name, tau_name, tau)?;
    let v_leak = cx.same(name, "v_leak", v_leak)?;
    let v_threshold = cx.same(name, "v_threshold", v_th)?;
    let v_reset = cx.same(name, "v_reset", v_reset)?;
    for (what, x) in [
        ("v_leak", v_leak),
        ("v_threshold", v_threshold),
        ("v_reset", v_reset),
    ] {
        if !x.is_finite() {
            return Err(cx.unsupported(name, format!("{what} must be finite, got {x}")));
        }
    }
    if r.data.iter().any(|x| !x.is_finite()) {
        return Err(cx.unsupported(name, "r holds a non-finite value"));
    }
    let (tau_syn, w_in) = match syn {
        Some((ts, wi)) => {
            cx.check_len(name, "tau_syn", ts, n)?;
            cx.check_len(name, "w_in", wi, n)?;
            if wi.data.iter().any(|x| !x.is_finite()) {
                return Err(cx.unsupported(name, "w_in holds a non-finite value"));
            }
            (cx.tau(name, "tau_syn", ts)?, wi.data.clone())
        }
        None => (0.0, vec![1.0; n]),
    };
    Ok(Population {
        name: name.to_string(),
        n,
        cuba,
        tau_mem,
        v_leak,
        v_threshold,
        v_reset,
        r: r.data.clone(),
        tau_syn,
        w_in,
    })
}

/// One recurrent synapse type found in the graph.
struct SynType {
    /// The LI node (LIF) or the weight node (CubaLIF) that names the type.
    name: String,
    weight_node: String,
    tau_s: f64,
    /// `[pre][post]`, every per-neuron factor folded in.
    w: Vec<f32>,
}

/// Maps `g` (read from `file`) onto an engine network with the config's parameters `base`
/// (dt, and the keys a graph does not set) for a task of `channels` inputs and `outputs`
/// outputs.
pub fn import_graph(
    g: &Graph,
    file: &str,
    base: &SnnParams,
    channels: usize,
    outputs: usize,
) -> Result<Imported, NirError> {
    let cx = Ctx {
        file: file.to_string(),
        g,
    };
    // structure: node types, dangling edges, one input, one output, one population
    for (name, node) in &g.nodes {
        if let Node::Other { kind } = node {
            return Err(cx.unsupported(
                name,
                format!(
                    "node type {kind} is not supported (the engine reads Input, Output, Affine, \
                     Linear, LI, LIF and CubaLIF)"
                ),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (a, b) in &g.edges {
        for end in [a, b] {
            if !g.nodes.contains_key(end) {
                return Err(cx.graph_err(format!("edge ({a} -> {b}): no node named `{end}`")));
            }
        }
        if !seen.insert((a, b)) {
            return Err(cx.graph_err(format!("edge ({a} -> {b}) appears twice")));
        }
    }
    let of_kind = |pred: fn(&Node) -> bool| -> Vec<String> {
        g.nodes
            .iter()
            .filter(|(_, n)| pred(n))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let one = |what: &str, names: Vec<String>| -> Result<String, NirError> {
        match names.len() {
            1 => Ok(names.into_iter().next().unwrap_or_default()),
            0 => Err(cx.graph_err(format!("the graph has no {what}"))),
            _ => Err(cx.graph_err(format!(
                "the graph has {} {what}s ({}); the engine has one",
                names.len(),
                names.join(", ")
            ))),
        }
    };
    let input = one("Input node", of_kind(|n| matches!(n, Node::Input { .. })))?;
    let output = one("Output node", of_kind(|n| matches!(n, Node::Output { .. })))?;
    let pops = of_kind(|n| matches!(n, Node::Lif { .. } | Node::CubaLif { .. }));
    if pops.is_empty() {
        return Err(cx.graph_err(
            "the graph has no spiking population (LIF or CubaLIF node): the engine runs a \
             recurrent LIF population",
        ));
    }
    let pop_name = one("spiking population (LIF / CubaLIF node)", pops)?;
    let pop = population(&cx, &pop_name)?;
    let n = pop.n;
    let dt_s = base.dt_s() as f64;

    let c = match cx.node(&input) {
        Node::Input { shape } => shape.iter().product::<i64>().max(0) as usize,
        _ => unreachable!(),
    };
    let n_out_graph = match cx.node(&output) {
        Node::Output { shape } => shape.iter().product::<i64>().max(0) as usize,
        _ => unreachable!(),
    };
    if c != channels {
        return Err(cx.unsupported(
            &input,
            format!("{c} input channels, the config's task has {channels}"),
        ));
    }
    if n_out_graph != outputs {
        return Err(cx.unsupported(
            &output,
            format!("{n_out_graph} outputs, the config's task has {outputs}"),
        ));
    }

    let mut notices = Vec::new();
    let mut mapping: Vec<(String, String)> = vec![
        (input.clone(), "task input".into()),
        (pop_name.clone(), "population".into()),
        (output.clone(), "task output".into()),
    ];
    // per post neuron, what scales a current entering the population: r (and w_in for a
    // CubaLIF, whose inputs pass its synaptic filter first)
    let gain: Vec<f64> = pop.r.iter().zip(&pop.w_in).map(|(r, w)| r * w).collect();

    // --- edges into the population: the input projection and the synapse types
    let mut proj: Option<(Vec<f32>, f64)> = None;
    let mut types: Vec<SynType> = Vec::new();
    let mut used: BTreeSet<String> = [input.clone(), pop_name.clone(), output.clone()].into();
    for src in g.inputs_of(&pop_name) {
        if src == input {
            if c != n {
                return Err(cx.unsupported(
                    &input,
                    format!("feeds {pop_name} directly with {c} channels for {n} neurons"),
                ));
            }
            let mut p = vec![0f32; n * c];
            for i in 0..n {
                p[i * c + i] = 1.0;
            }
            add_projection(&cx, &mut proj, &input, p, 0.0)?;
            continue;
        }
        let srcs_of_src = g.inputs_of(src);
        let node = cx.node(src);
        match node {
            Node::Affine { .. } | Node::Linear { .. } if srcs_of_src == [input.as_str()] => {
                let (w, b) = match node {
                    Node::Affine { weight, bias } => (weight, Some(bias)),
                    Node::Linear { weight } => (weight, None),
                    _ => unreachable!(),
                };
                cx.matrix(src, w, n, c)?;
                if let Some(b) = b {
                    cx.check_len(src, "bias", b, n)?;
                }
                if g.outputs_of(src) != [pop_name.as_str()] {
                    return Err(cx.unsupported(
                        src,
                        format!("the input projection feeds other nodes than {pop_name}"),
                    ));
                }
                // the current each neuron's membrane sees per unit of input, and the bias
                let mut p = vec![0f32; n * c];
                let mut bias = vec![0f64; n];
                let k = if pop.cuba {
                    let e = (-dt_s / pop.tau_syn).exp();
                    1.0 / (pop.tau_syn * (1.0 - e))
                } else {
                    1.0
                };
                for i in 0..n {
                    for ch in 0..c {
                        p[i * c + ch] = (gain[i] * k * w.data[i * c + ch]) as f32;
                    }
                    bias[i] = b.map_or(0.0, |b| gain[i] * k * b.data[i]);
                }
                let bias_t = Tensor {
                    shape: vec![n],
                    data: bias,
                };
                let b0 = cx.same(src, "bias (times the population's r)", &bias_t)?;
                if pop.cuba {
                    let e = (-dt_s / pop.tau_syn).exp();
                    notices.push(format!(
                        "{src} -> {pop_name}: the CubaLIF filters its input with tau_syn = {} ms; \
                         the engine puts the input into the membrane directly, so the projection \
                         is scaled by the filter's DC gain r w_in / (tau_syn (1 - e)), e = \
                         exp(-dt/tau_syn) = {e:.6}: exact for the input pre-filtered as c'(t) = \
                         e c'(t-1) + (1 - e) c(t), and for a constant input after the filter's \
                         transient (about {} ms)",
                        pop.tau_syn * 1e3,
                        (3.0 * pop.tau_syn * 1e3).round()
                    ));
                }
                add_projection(&cx, &mut proj, src, p, b0)?;
                used.insert(src.to_string());
                mapping.push((src.to_string(), "input projection (input_override)".into()));
            }
            Node::Affine { .. } | Node::Linear { .. } if srcs_of_src == [pop_name.as_str()] => {
                if !pop.cuba {
                    return Err(cx.unsupported(
                        src,
                        format!(
                            "feeds the LIF {pop_name} from its own spikes without a synapse \
                             filter (a one-step current); the engine's recurrent synapses are \
                             exponential: put an LI node between, as robust-snn's export does"
                        ),
                    ));
                }
                let w = cx.weight_no_bias(src, node, "recurrence")?;
                cx.matrix(src, w, n, n)?;
                if g.outputs_of(src) != [pop_name.as_str()] {
                    return Err(cx.unsupported(src, "the recurrent weights feed other nodes too"));
                }
                types.push(SynType {
                    name: src.to_string(),
                    weight_node: src.to_string(),
                    tau_s: pop.tau_syn,
                    w: fold_recurrent(w, n, &gain),
                });
                used.insert(src.to_string());
            }
            Node::Li { tau, r, v_leak } => {
                if pop.cuba {
                    return Err(cx.unsupported(
                        src,
                        format!(
                            "an LI filter feeding the CubaLIF {pop_name}, whose own tau_syn \
                             filters it again; the engine has one exponential per synapse type"
                        ),
                    ));
                }
                for (what, t) in [("tau", tau), ("r", r), ("v_leak", v_leak)] {
                    cx.check_len(src, what, t, n)?;
                }
                if v_leak.data.iter().any(|&v| v != 0.0) {
                    return Err(cx.unsupported(
                        src,
                        "a synapse LI with v_leak != 0 (a constant current the engine's synapses \
                         do not have)",
                    ));
                }
                let tau_s = cx.tau(src, "tau", tau)?;
                let wsrc = g.inputs_of(src);
                let [wname] = wsrc.as_slice() else {
                    return Err(cx.unsupported(
                        src,
                        format!(
                            "a synapse LI needs exactly one input (the weights from \
                             {pop_name}), it has {}",
                            wsrc.len()
                        ),
                    ));
                };
                let wnode = cx.node(wname);
                let w = cx.weight_no_bias(wname, wnode, "recurrence")?;
                if g.inputs_of(wname) != [pop_name.as_str()] {
                    return Err(cx.unsupported(
                        wname,
                        format!("recurrent weights must take their input from {pop_name} alone"),
                    ));
                }
                if g.outputs_of(wname) != [src] || g.outputs_of(src) != [pop_name.as_str()] {
                    return Err(
                        cx.unsupported(src, format!("a synapse type must feed {pop_name} alone"))
                    );
                }
                cx.matrix(wname, w, n, n)?;
                let g2: Vec<f64> = gain.iter().zip(&r.data).map(|(a, b)| a * b).collect();
                types.push(SynType {
                    name: src.to_string(),
                    weight_node: wname.to_string(),
                    tau_s,
                    w: fold_recurrent(w, n, &g2),
                });
                used.insert(src.to_string());
                used.insert(wname.to_string());
            }
            other => {
                return Err(cx.unsupported(
                    src,
                    format!(
                        "a {} node feeding {pop_name} that is neither the input projection nor a \
                         recurrent synapse type",
                        other.kind()
                    ),
                ));
            }
        }
    }
    let Some((proj, bias)) = proj else {
        return Err(cx.graph_err(format!(
            "no input reaches {pop_name} (Input -> Affine -> {pop_name})"
        )));
    };
    if types.is_empty() {
        return Err(cx.graph_err(format!(
            "{pop_name} has no recurrence: the engine imports a recurrent population"
        )));
    }
    for (a, b) in &g.edges {
        if b == &input {
            return Err(cx.unsupported(&input, format!("an edge into the Input node (from {a})")));
        }
    }
    let other_input_targets: Vec<&str> = g
        .outputs_of(&input)
        .into_iter()
        .filter(|t| !used.contains(*t))
        .collect();
    if let Some(t) = other_input_targets.first() {
        return Err(cx.unsupported(t, "the input feeds a node outside the input projection"));
    }

    // --- the readout: population -> ... -> output
    let readout_starts: Vec<&str> = g
        .outputs_of(&pop_name)
        .into_iter()
        .filter(|t| !used.contains(*t))
        .collect();
    let start = match readout_starts.as_slice() {
        [s] => s.to_string(),
        [] => return Err(cx.graph_err(format!("no readout from {pop_name} to {output}"))),
        many => {
            return Err(cx.unsupported(
                &pop_name,
                format!(
                    "its spikes feed several nodes besides its synapse types ({}); the engine \
                     has one readout",
                    many.join(", ")
                ),
            ));
        }
    };
    let readout = readout_chain(&cx, &pop, &start, &output, base, &mut notices)?;
    for name in &readout.nodes {
        used.insert(name.clone());
    }
    if let Some(stray) = g.nodes.keys().find(|k| !used.contains(*k)) {
        return Err(cx.unsupported(
            stray,
            "not connected to the input, the population's synapses or the readout",
        ));
    }
    for (name, part) in &readout.mapping {
        mapping.push((name.clone(), part.clone()));
    }

    // --- synapse types onto W_fast, W_slow and the extra types
    let named = |t: &SynType, names: &[&str]| names.contains(&t.name.as_str());
    let fast = types.iter().position(|t| named(t, &["syn_fast"]));
    let slow = types
        .iter()
        .position(|t| named(t, &["syn_slow"]))
        .or_else(|| (0..types.len()).find(|&i| Some(i) != fast));
    let mut params = base.clone();
    params.n = n;
    params.tau_mem_ms = (pop.tau_mem * 1e3) as f32;
    params.v_rest = pop.v_leak as f32;
    params.v_th = pop.v_threshold as f32;
    params.v_reset = pop.v_reset as f32;
    params.bias = bias as f32;
    params.tau_out_ms = (readout.tau_s * 1e3) as f32;
    let (mut w_fast, mut w_slow) = (vec![0f32; n * n], vec![0f32; n * n]);
    if let Some(i) = fast {
        params.tau_fast_ms = (types[i].tau_s * 1e3) as f32;
        w_fast = types[i].w.clone();
        mapping.push((types[i].weight_node.clone(), "W_fast".into()));
        if types[i].weight_node != types[i].name {
            mapping.push((types[i].name.clone(), "tau_fast".into()));
        }
    }
    if let Some(i) = slow {
        params.tau_slow_ms = (types[i].tau_s * 1e3) as f32;
        w_slow = types[i].w.clone();
        mapping.push((types[i].weight_node.clone(), "W_slow".into()));
        if types[i].weight_node != types[i].name {
            mapping.push((types[i].name.clone(), "tau_slow".into()));
        }
    }
    params.use_fast = w_fast.iter().any(|&w| w != 0.0);
    // our own export says which adaptation the network ran with
    if let (Some(b), Some(r)) = (
        g.metadata.get("adapt_beta").and_then(|m| m.as_f64()),
        g.metadata.get("adapt_rho").and_then(|m| m.as_f64()),
    ) {
        params.adapt_beta = b as f32;
        params.adapt_rho = r as f32;
    } else {
        params.adapt_beta = 0.0;
    }
    if let Some(dt) = g.metadata.get("dt_s").and_then(|m| m.as_f64())
        && ((dt - dt_s).abs() > 1e-9)
    {
        notices.push(format!(
            "the graph's metadata says dt_s = {dt}; the engine steps with the config's dt = \
             {dt_s} s (its LI/CubaLIF filters are exact at any dt, the LIF Euler step is not)"
        ));
    }
    params
        .validate()
        .map_err(|e| cx.unsupported(&pop_name, format!("as engine parameters: {e}")))?;
    let mut extra = Vec::new();
    for (i, t) in types.iter().enumerate() {
        if Some(i) == fast || Some(i) == slow {
            continue;
        }
        mapping.push((
            t.weight_node.clone(),
            format!("extra synapse type {}", extra.len()),
        ));
        extra.push(SynapseType {
            tau_ms: (t.tau_s * 1e3) as f32,
            w: t.w.clone(),
        });
    }
    if extra.len() > crate::snn::MAX_EXTRA_SYNAPSE_TYPES {
        return Err(cx.unsupported(
            &pop_name,
            format!(
                "{} synapse types; the engine has at most {}",
                types.len(),
                crate::snn::MAX_EXTRA_SYNAPSE_TYPES + 2
            ),
        ));
    }
    let nc = readout.nc;
    let net = Network {
        params,
        n,
        nc,
        n_in: c,
        n_out: outputs,
        d: readout.d,
        f: vec![0.0; n * nc],
        w_fast,
        w_slow,
        w_in_teacher: vec![0.0; c * nc],
        w_out_teacher: readout.w_out_teacher,
        input_override: Some(proj),
        method: Method::Imported,
        extra_synapses: extra,
    };
    net.validate_shapes()
        .map_err(|e| cx.graph_err(format!("as an engine network: {e}")))?;
    Ok(Imported {
        net,
        notices,
        mapping,
    })
}

fn add_projection(
    cx: &Ctx,
    slot: &mut Option<(Vec<f32>, f64)>,
    name: &str,
    p: Vec<f32>,
    bias: f64,
) -> Result<(), NirError> {
    if slot.is_some() {
        return Err(cx.unsupported(name, "a second input projection (the engine has one)"));
    }
    *slot = Some((p, bias));
    Ok(())
}

/// NIR's `[post, pre]` weights as the engine's `[pre][post]`, times the post neuron's `gain`.
fn fold_recurrent(w: &Tensor, n: usize, gain: &[f64]) -> Vec<f32> {
    let mut out = vec![0f32; n * n];
    for post in 0..n {
        for pre in 0..n {
            out[pre * n + post] = (gain[post] * w.data[post * n + pre]) as f32;
        }
    }
    out
}

struct Readout {
    nodes: Vec<String>,
    mapping: Vec<(String, String)>,
    tau_s: f64,
    nc: usize,
    d: Vec<f32>,
    w_out_teacher: Vec<f32>,
}

/// Follows the chain from `start` to `output` and composes it into the engine's readout.
fn readout_chain(
    cx: &Ctx,
    pop: &Population,
    start: &str,
    output: &str,
    base: &SnnParams,
    notices: &mut Vec<String>,
) -> Result<Readout, NirError> {
    let g = cx.g;
    let n = pop.n;
    // M (rows x n, row-major, f64), the composed readout so far
    let mut rows = n;
    let mut m: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    let mut tau: Option<(String, f64)> = None;
    // (node, matrix) of the Linear nodes after the LI, for keeping D and W_out apart
    let mut after_li: Vec<(String, Tensor)> = Vec::new();
    let mut before_li = 0usize;
    let mut nodes = Vec::new();
    let mut mapping = Vec::new();
    let mut cur = start.to_string();
    let mut prev = pop.name.clone();
    loop {
        if cur == output {
            break;
        }
        if nodes.contains(&cur) || nodes.len() > g.nodes.len() {
            return Err(cx.unsupported(&cur, "the readout loops back"));
        }
        let ins = g.inputs_of(&cur);
        if ins != [prev.as_str()] {
            return Err(cx.unsupported(
                &cur,
                format!(
                    "a readout node must have one input ({prev}); it has {}",
                    ins.join(", ")
                ),
            ));
        }
        match cx.node(&cur) {
            Node::Li { tau: t, r, v_leak } => {
                if let Some((first, _)) = &tau {
                    return Err(cx.unsupported(
                        &cur,
                        format!("a second LI filter in the readout (after {first}); the engine filters once"),
                    ));
                }
                for (what, x) in [("tau", t), ("r", r), ("v_leak", v_leak)] {
                    cx.check_len(&cur, what, x, rows)?;
                }
                if v_leak.data.iter().any(|&v| v != 0.0) {
                    return Err(cx.unsupported(
                        &cur,
                        "a readout LI with v_leak != 0 adds an offset the engine's readout does \
                         not have",
                    ));
                }
                let ts = cx.tau(&cur, "tau", t)?;
                // an LI is linear: with one tau it commutes with the matrices, and its r
                // scales its rows
                for (row, &ri) in m.chunks_mut(n).zip(&r.data) {
                    row.iter_mut().for_each(|x| *x *= ri);
                }
                tau = Some((cur.clone(), ts));
                mapping.push((cur.clone(), "readout filter (tau_out)".to_string()));
            }
            node @ (Node::Linear { .. } | Node::Affine { .. }) => {
                let w = cx.weight_no_bias(&cur, node, "readout")?;
                let out = w.shape.first().copied().unwrap_or(0);
                cx.matrix(&cur, w, out, rows)?;
                let mut next = vec![0f64; out * n];
                for o in 0..out {
                    for k in 0..rows {
                        let wk = w.data[o * rows + k];
                        if wk != 0.0 {
                            for j in 0..n {
                                next[o * n + j] += wk * m[k * n + j];
                            }
                        }
                    }
                }
                m = next;
                rows = out;
                if tau.is_some() {
                    after_li.push((cur.clone(), w.clone()));
                } else {
                    before_li += 1;
                }
                mapping.push((cur.clone(), "readout weights".to_string()));
            }
            other => {
                return Err(cx.unsupported(
                    &cur,
                    format!(
                        "a {} node in the readout (the engine reads out through Linear / \
                         Affine nodes and one LI)",
                        other.kind()
                    ),
                ));
            }
        }
        nodes.push(cur.clone());
        let outs = g.outputs_of(&cur);
        let [next] = outs.as_slice() else {
            return Err(cx.unsupported(
                &cur,
                format!("a readout node must feed one node; it feeds {}", outs.len()),
            ));
        };
        prev = cur.clone();
        cur = next.to_string();
    }
    if g.inputs_of(output) != [prev.as_str()] {
        return Err(cx.unsupported(
            output,
            "the output must have exactly one input, the readout",
        ));
    }
    let tau_s = match &tau {
        Some((_, t)) => *t,
        None => {
            let t = base.tau_out_ms as f64 * 1e-3;
            let dt = base.dt_s() as f64;
            m.iter_mut().for_each(|x| *x *= dt);
            notices.push(format!(
                "the readout reads raw spikes; the engine reads spike trains filtered with \
                 tau_out = {} ms (the config's), so D = W dt: a steady rate gives the same mean \
                 output, single steps are smoothed",
                t * 1e3
            ));
            t
        }
    };
    let out_rows = rows;
    // robust-snn's own layout (LI -> decoder -> readout): D and W_out_teacher kept apart
    if before_li == 0 && after_li.len() == 2 {
        let r = match cx.node(&tau.as_ref().map(|t| t.0.clone()).unwrap_or_default()) {
            Node::Li { r, .. } => r.data.clone(),
            _ => vec![1.0; n],
        };
        let (dec, ro) = (&after_li[0].1, &after_li[1].1);
        let nc = dec.shape[0];
        let mut d = vec![0f32; nc * n];
        for k in 0..nc {
            for j in 0..n {
                d[k * n + j] = (dec.data[k * n + j] * r[j]) as f32;
            }
        }
        // W_out_teacher is Nc x n_out: the transpose of the readout's [n_out, Nc]
        let mut w_out = vec![0f32; nc * out_rows];
        for o in 0..out_rows {
            for k in 0..nc {
                w_out[k * out_rows + o] = ro.data[o * nc + k] as f32;
            }
        }
        if tau.is_none() {
            unreachable!("after_li is only filled after an LI");
        }
        return Ok(Readout {
            nodes,
            mapping,
            tau_s,
            nc,
            d,
            w_out_teacher: w_out,
        });
    }
    let mut eye = vec![0f32; out_rows * out_rows];
    for o in 0..out_rows {
        eye[o * out_rows + o] = 1.0;
    }
    Ok(Readout {
        nodes,
        mapping,
        tau_s,
        nc: out_rows,
        d: m.iter().map(|&x| x as f32).collect(),
        w_out_teacher: eye,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nir::export::network_graph;

    fn net() -> Network {
        let p = SnnParams {
            n: 10,
            bias: 0.2,
            adapt_beta: 0.03,
            ..Default::default()
        };
        let mut net =
            Network::init(p, vec![0.4, -0.3, 0.2, 0.7], vec![0.5, -1.0], 2, 2, 1, 3).unwrap();
        net.w_slow = (0..100)
            .map(|k| 0.01 * ((k * 7 % 13) as f32 - 6.0))
            .collect();
        net.with_synapse_type(
            25.0,
            (0..100).map(|k| 0.02 * ((k % 5) as f32 - 2.0)).collect(),
        )
        .unwrap()
    }

    /// Our own export, written to HDF5, read back and imported, is the network again: every
    /// matrix bit for bit (the input projection as an override), the parameters as trained.
    #[test]
    fn own_export_round_trips_through_a_file() {
        let net = net();
        let g = network_graph(&net);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.nir");
        crate::nir::hdf5::write(&path, &g).unwrap();
        let back = crate::nir::hdf5::read(&path).unwrap();
        assert_eq!(back, g);
        let imp = import_graph(&back, "g.nir", &SnnParams::default(), 2, 1).unwrap();
        assert!(imp.notices.is_empty(), "{:?}", imp.notices);
        let m = &imp.net;
        assert_eq!(m.w_fast, net.w_fast);
        assert_eq!(m.w_slow, net.w_slow);
        assert_eq!(m.extra_synapses, net.extra_synapses);
        assert_eq!(m.d, net.d);
        assert_eq!(m.w_out_teacher, net.w_out_teacher);
        assert_eq!(m.nc, net.nc);
        assert_eq!(m.input_projection(), net.input_projection());
        let (a, b) = (&m.params, &net.params);
        assert_eq!(
            (a.tau_mem_ms, a.tau_fast_ms, a.tau_slow_ms, a.tau_out_ms),
            (b.tau_mem_ms, b.tau_fast_ms, b.tau_slow_ms, b.tau_out_ms)
        );
        assert_eq!(
            (a.v_th, a.v_rest, a.v_reset, a.bias),
            (b.v_th, b.v_rest, b.v_reset, b.bias)
        );
        assert_eq!((a.adapt_beta, a.adapt_rho), (b.adapt_beta, b.adapt_rho));
        assert_eq!(m.method, Method::Imported);
    }

    fn refusal(g: &Graph) -> String {
        import_graph(g, "x.nir", &SnnParams::default(), 2, 1)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn what_the_engine_cannot_represent_is_refused_by_node() {
        let base = network_graph(&net());
        let mut g = base.clone();
        if let Some(Node::Lif { tau, .. }) = g.nodes.get_mut("lif") {
            tau.data[3] *= 1.5;
        }
        let e = refusal(&g);
        assert!(
            e.contains("node `lif`") && e.contains("tau differs between neurons"),
            "{e}"
        );

        let mut g = base.clone();
        if let Some(Node::Li { v_leak, .. }) = g.nodes.get_mut("readout_filter") {
            v_leak.data[0] = 0.1;
        }
        let e = refusal(&g);
        assert!(
            e.contains("node `readout_filter`") && e.contains("v_leak"),
            "{e}"
        );

        // recurrent weights straight into a LIF (no synapse filter)
        let mut g = base.clone();
        g.edges
            .retain(|(a, b)| (a, b) != (&"syn_slow".to_string(), &"lif".to_string()));
        g.edges
            .retain(|(a, b)| (a, b) != (&"w_slow".to_string(), &"syn_slow".to_string()));
        g.nodes.remove("syn_slow");
        g.connect("w_slow", "lif");
        let e = refusal(&g);
        assert!(
            e.contains("node `w_slow`") && e.contains("without a synapse filter"),
            "{e}"
        );

        let mut g = base.clone();
        g.nodes.insert(
            "decoder".into(),
            Node::Affine {
                weight: match &base.nodes["decoder"] {
                    Node::Linear { weight } => weight.clone(),
                    _ => unreachable!(),
                },
                bias: Tensor::filled(2, 0.5),
            },
        );
        let e = refusal(&g);
        assert!(
            e.contains("node `decoder`") && e.contains("nonzero bias"),
            "{e}"
        );

        let mut g = base.clone();
        g.connect("lif", "ghost");
        let e = refusal(&g);
        assert!(e.contains("no node named `ghost`"), "{e}");

        let e = import_graph(&base, "x.nir", &SnnParams::default(), 3, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node `input`") && e.contains("task has 3"),
            "{e}"
        );

        let mut g = base.clone();
        g.nodes
            .insert("lif".into(), Node::Other { kind: "IF".into() });
        let e = refusal(&g);
        assert!(
            e.contains("node `lif`") && e.contains("IF is not supported"),
            "{e}"
        );
    }
}
