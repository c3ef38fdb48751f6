//! The NIR graph model: the node types robust-snn writes and reads, their parameters as NIR
//! 1.0 names them (`nir.LIF(tau, r, v_leak, v_threshold, v_reset)` and so on), the edges and
//! the graph's metadata. Parameters are held in f64 (what NIR files usually carry); robust-snn's
//! own f32 values pass through unchanged.

use std::collections::BTreeMap;

/// A dense row-major array and its shape (`[out, in]` for a weight matrix, `[N]` per neuron).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn vector(v: &[f32]) -> Tensor {
        Tensor {
            shape: vec![v.len()],
            data: v.iter().map(|&x| x as f64).collect(),
        }
    }

    pub fn filled(n: usize, x: f64) -> Tensor {
        Tensor {
            shape: vec![n],
            data: vec![x; n],
        }
    }

    /// A `rows x cols` matrix from row-major f32 values.
    pub fn matrix(rows: usize, cols: usize, m: &[f32]) -> Tensor {
        debug_assert_eq!(m.len(), rows * cols);
        Tensor {
            shape: vec![rows, cols],
            data: m.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The transpose of the `rows x cols` row-major `m`, as a `cols x rows` matrix: robust-snn's
    /// `[pre][post]` recurrent matrices become NIR's `[out, in]`.
    pub fn transposed(rows: usize, cols: usize, m: &[f32]) -> Tensor {
        Tensor::matrix(cols, rows, &crate::snn::transpose(m, rows, cols))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One NIR node. `Other` is a node type robust-snn does not read (kept by name for errors).
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Input {
        shape: Vec<i64>,
    },
    Output {
        shape: Vec<i64>,
    },
    Affine {
        weight: Tensor,
        bias: Tensor,
    },
    Linear {
        weight: Tensor,
    },
    /// `tau dv/dt = (v_leak - v) + r I`; spike and reset to `v_reset` at `v_threshold`.
    Lif {
        tau: Tensor,
        r: Tensor,
        v_leak: Tensor,
        v_threshold: Tensor,
        v_reset: Tensor,
    },
    /// `tau dv/dt = (v_leak - v) + r I`, no spike.
    Li {
        tau: Tensor,
        r: Tensor,
        v_leak: Tensor,
    },
    /// `tau_syn dI/dt = -I + w_in S`, then the LIF equation with `r I`.
    CubaLif {
        tau_syn: Tensor,
        tau_mem: Tensor,
        r: Tensor,
        v_leak: Tensor,
        v_threshold: Tensor,
        v_reset: Tensor,
        w_in: Tensor,
    },
    Other {
        kind: String,
    },
}

impl Node {
    /// The NIR type name (`node/nodes/<name>/type`).
    pub fn kind(&self) -> &str {
        match self {
            Node::Input { .. } => "Input",
            Node::Output { .. } => "Output",
            Node::Affine { .. } => "Affine",
            Node::Linear { .. } => "Linear",
            Node::Lif { .. } => "LIF",
            Node::Li { .. } => "LI",
            Node::CubaLif { .. } => "CubaLIF",
            Node::Other { kind } => kind,
        }
    }

    /// The parameter arrays in the order NIR's `to_dict` lists them (names as in the file).
    pub fn params(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Node::Input { .. } | Node::Output { .. } | Node::Other { .. } => Vec::new(),
            Node::Affine { weight, bias } => vec![("weight", weight), ("bias", bias)],
            Node::Linear { weight } => vec![("weight", weight)],
            Node::Lif {
                tau,
                r,
                v_leak,
                v_threshold,
                v_reset,
            } => vec![
                ("tau", tau),
                ("r", r),
                ("v_leak", v_leak),
                ("v_threshold", v_threshold),
                ("v_reset", v_reset),
            ],
            Node::Li { tau, r, v_leak } => vec![("tau", tau), ("r", r), ("v_leak", v_leak)],
            Node::CubaLif {
                tau_syn,
                tau_mem,
                r,
                v_leak,
                v_threshold,
                v_reset,
                w_in,
            } => vec![
                ("tau_syn", tau_syn),
                ("tau_mem", tau_mem),
                ("r", r),
                ("v_leak", v_leak),
                ("v_threshold", v_threshold),
                ("v_reset", v_reset),
                ("w_in", w_in),
            ],
        }
    }
}

/// A metadata value (`node/metadata/<key>`).
#[derive(Clone, Debug, PartialEq)]
pub enum Meta {
    Str(String),
    F64(f64),
    I64(i64),
}

impl Meta {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Meta::F64(x) => Some(*x),
            Meta::I64(x) => Some(*x as f64),
            Meta::Str(_) => None,
        }
    }
}

impl std::fmt::Display for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Meta::Str(s) => f.write_str(s),
            Meta::F64(x) => write!(f, "{x}"),
            Meta::I64(x) => write!(f, "{x}"),
        }
    }
}

/// A NIR graph: named nodes, directed edges `(source, target)` (several edges into one node are
/// summed; cycles allowed) and free-form metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    pub edges: Vec<(String, String)>,
    pub metadata: BTreeMap<String, Meta>,
}

impl Graph {
    pub fn add(&mut self, name: &str, node: Node) {
        self.nodes.insert(name.to_string(), node);
    }

    pub fn connect(&mut self, from: &str, to: &str) {
        self.edges.push((from.to_string(), to.to_string()));
    }

    pub fn meta_str(&mut self, key: &str, v: impl Into<String>) {
        self.metadata.insert(key.to_string(), Meta::Str(v.into()));
    }

    pub fn meta_f64(&mut self, key: &str, v: f64) {
        self.metadata.insert(key.to_string(), Meta::F64(v));
    }

    pub fn meta_i64(&mut self, key: &str, v: i64) {
        self.metadata.insert(key.to_string(), Meta::I64(v));
    }

    /// Sources of the edges into `node`, in file order.
    pub fn inputs_of(&self, node: &str) -> Vec<&str> {
        self.edges
            .iter()
            .filter(|(_, t)| t == node)
            .map(|(s, _)| s.as_str())
            .collect()
    }

    /// Targets of the edges out of `node`, in file order.
    pub fn outputs_of(&self, node: &str) -> Vec<&str> {
        self.edges
            .iter()
            .filter(|(s, _)| s == node)
            .map(|(_, t)| t.as_str())
            .collect()
    }
}
