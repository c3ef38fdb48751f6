//! `.nir` files: the HDF5 layout that the Python package's `nir.write` produces (nir 1.0.8),
//! written and read through libhdf5 (`hdf5-metno`).
//!
//! Layout (checked against files written by `nir.write`):
//! * `/version`: scalar variable-length UTF-8 string (`"1.0.8"`);
//! * `/node/type` = `"NIRGraph"`, `/node/edges`: `E x 2` variable-length strings
//!   (source, target), `/node/metadata/<key>`: scalar datasets (string, float64, int64);
//! * `/node/nodes/<name>/type`: the node type; `/node/nodes/<name>/<param>`: its arrays,
//!   gzip-compressed as `nir.write` does (`Input`/`Output` store their `shape` as int64).
//!
//! robust-snn writes every parameter array as float32 (the engine's own values, so nothing is
//! rounded); it reads any integer or float type.

use std::path::Path;

use h5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5_metno as h5;

use super::NirError;
use super::graph::{Graph, Meta, Node, Tensor};

/// The NIR version whose layout these files follow (`/version`).
pub const NIR_VERSION: &str = "1.0.8";

/// gzip level of the parameter arrays (h5py's default for `compression="gzip"`).
const GZIP_LEVEL: u8 = 4;

fn file_err(path: &Path, message: impl Into<String>) -> NirError {
    NirError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn vlen(s: &str) -> Result<VarLenUnicode, String> {
    s.parse::<VarLenUnicode>()
        .map_err(|e| format!("string {s:?}: {e}"))
}

fn write_str(g: &h5::Group, name: &str, s: &str) -> Result<(), String> {
    g.new_dataset::<VarLenUnicode>()
        .create(name)
        .and_then(|d| d.write_scalar(&vlen(s)?))
        .map_err(|e| format!("{name}: {e}"))
}

/// Writes `graph` to `path` atomically (a temporary file in the same folder, renamed at the
/// end), so a failure leaves no partial file.
pub fn write(path: &Path, graph: &Graph) -> Result<(), NirError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, format!("cannot create: {e}")))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "graph.nir".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let r = write_to(&tmp, graph);
    if let Err(m) = r {
        std::fs::remove_file(&tmp).ok();
        return Err(file_err(path, m));
    }
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, format!("cannot write: {e}")))
}

fn write_to(path: &Path, graph: &Graph) -> Result<(), String> {
    let f = h5::File::create(path).map_err(|e| format!("cannot create: {e}"))?;
    write_str(&f, "version", NIR_VERSION)?;
    let node = f.create_group("node").map_err(|e| e.to_string())?;
    write_str(&node, "type", "NIRGraph")?;
    let flat: Vec<VarLenUnicode> = graph
        .edges
        .iter()
        .flat_map(|(a, b)| [vlen(a), vlen(b)])
        .collect::<Result<_, _>>()?;
    node.new_dataset::<VarLenUnicode>()
        .shape([graph.edges.len(), 2])
        .create("edges")
        .and_then(|d| d.write_raw(&flat))
        .map_err(|e| format!("edges: {e}"))?;
    // nir.write skips an empty metadata dict
    if !graph.metadata.is_empty() {
        let md = node.create_group("metadata").map_err(|e| e.to_string())?;
        for (k, v) in &graph.metadata {
            let r = match v {
                Meta::Str(s) => write_str(&md, k, s),
                Meta::F64(x) => md
                    .new_dataset::<f64>()
                    .create(k.as_str())
                    .and_then(|d| d.write_scalar(x))
                    .map_err(|e| e.to_string()),
                Meta::I64(x) => md
                    .new_dataset::<i64>()
                    .create(k.as_str())
                    .and_then(|d| d.write_scalar(x))
                    .map_err(|e| e.to_string()),
            };
            r.map_err(|e| format!("metadata {k}: {e}"))?;
        }
    }
    let nodes = node.create_group("nodes").map_err(|e| e.to_string())?;
    for (name, n) in &graph.nodes {
        let g = nodes
            .create_group(name)
            .map_err(|e| format!("node {name}: {e}"))?;
        write_str(&g, "type", n.kind())?;
        match n {
            Node::Input { shape } | Node::Output { shape } => g
                .new_dataset::<i64>()
                .shape([shape.len()])
                .deflate(GZIP_LEVEL)
                .create("shape")
                .and_then(|d| d.write_raw(shape))
                .map_err(|e| format!("node {name}: shape: {e}"))?,
            Node::Other { kind } => return Err(format!("node {name}: cannot write type {kind}")),
            _ => {}
        }
        for (p, t) in n.params() {
            let data: Vec<f32> = t.data.iter().map(|&x| x as f32).collect();
            g.new_dataset::<f32>()
                .shape(t.shape.as_slice())
                .deflate(GZIP_LEVEL)
                .create(p)
                .and_then(|d| d.write_raw(&data))
                .map_err(|e| format!("node {name}: {p}: {e}"))?;
        }
    }
    f.close().map_err(|e| e.to_string())
}

/// A scalar string dataset, whichever string type the writer chose.
fn read_str(ds: &h5::Dataset) -> Result<String, String> {
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::VarLenUnicode) => ds
            .read_scalar::<VarLenUnicode>()
            .map(|s| s.as_str().to_string()),
        Ok(TypeDescriptor::VarLenAscii) => ds
            .read_scalar::<VarLenAscii>()
            .map(|s| s.as_str().to_string()),
        Ok(other) => return Err(format!("expected a string, found {other}")),
        Err(e) => return Err(e.to_string()),
    }
    .map_err(|e| e.to_string())
}

/// An `E x 2` string dataset (the edges).
fn read_str_array(ds: &h5::Dataset) -> Result<Vec<String>, String> {
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::VarLenUnicode) => ds
            .read_raw::<VarLenUnicode>()
            .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        Ok(TypeDescriptor::VarLenAscii) => ds
            .read_raw::<VarLenAscii>()
            .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
        Ok(other) => return Err(format!("expected strings, found {other}")),
        Err(e) => return Err(e.to_string()),
    }
    .map_err(|e| e.to_string())
}

fn read_tensor(ds: &h5::Dataset) -> Result<Tensor, String> {
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(
            TypeDescriptor::Float(_)
            | TypeDescriptor::Integer(_)
            | TypeDescriptor::Unsigned(_)
            | TypeDescriptor::Boolean,
        ) => {}
        Ok(other) => return Err(format!("expected numbers, found {other}")),
        Err(e) => return Err(e.to_string()),
    }
    let data = ds.read_raw::<f64>().map_err(|e| e.to_string())?;
    Ok(Tensor {
        shape: ds.shape(),
        data,
    })
}

/// Reads a `.nir` file. Anything that is not a NIR graph in `nir.write`'s layout (no such file,
/// not HDF5, missing groups or parameters, wrong types) is an error naming the file and the
/// part that is wrong. Node types robust-snn does not use come back as [`Node::Other`].
pub fn read(path: &Path) -> Result<Graph, NirError> {
    if !path.is_file() {
        return Err(file_err(path, "no such file"));
    }
    let f =
        h5::File::open(path).map_err(|e| file_err(path, format!("not an HDF5 (NIR) file: {e}")))?;
    let node = f
        .group("node")
        .map_err(|_| file_err(path, "not a NIR file: no group `node`"))?;
    let ty = node
        .dataset("type")
        .map_err(|e| e.to_string())
        .and_then(|d| read_str(&d))
        .map_err(|e| file_err(path, format!("node/type: {e}")))?;
    if ty != "NIRGraph" {
        return Err(file_err(
            path,
            format!("node/type is {ty:?}, expected \"NIRGraph\""),
        ));
    }
    let mut g = Graph::default();
    let edges_ds = node
        .dataset("edges")
        .map_err(|_| file_err(path, "not a NIR graph: no node/edges"))?;
    let shape = edges_ds.shape();
    let flat = read_str_array(&edges_ds).map_err(|e| file_err(path, format!("node/edges: {e}")))?;
    if !(flat.is_empty() || (shape.len() == 2 && shape[1] == 2)) {
        return Err(file_err(
            path,
            format!("node/edges has shape {shape:?}, expected (E, 2)"),
        ));
    }
    g.edges = flat
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    if let Ok(md) = node.group("metadata") {
        for ds in md.datasets().map_err(|e| file_err(path, e.to_string()))? {
            let key = ds.name().rsplit('/').next().unwrap_or_default().to_string();
            let v = match ds.dtype().and_then(|t| t.to_descriptor()) {
                Ok(TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii) => {
                    read_str(&ds).ok().map(Meta::Str)
                }
                Ok(TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) if ds.is_scalar() => {
                    ds.read_scalar::<i64>().ok().map(Meta::I64)
                }
                Ok(TypeDescriptor::Float(_)) if ds.is_scalar() => {
                    ds.read_scalar::<f64>().ok().map(Meta::F64)
                }
                // arrays and other types: not needed by the importer
                _ => None,
            };
            if let Some(v) = v {
                g.metadata.insert(key, v);
            }
        }
    }
    let nodes = node
        .group("nodes")
        .map_err(|_| file_err(path, "not a NIR graph: no node/nodes"))?;
    for name in nodes
        .member_names()
        .map_err(|e| file_err(path, e.to_string()))?
    {
        let at = format!("node/nodes/{name}");
        let gn = nodes
            .group(&name)
            .map_err(|_| file_err(path, format!("{at} is not a group")))?;
        let kind = gn
            .dataset("type")
            .map_err(|e| e.to_string())
            .and_then(|d| read_str(&d))
            .map_err(|e| file_err(path, format!("{at}/type: {e}")))?;
        let p = |key: &str| -> Result<Tensor, NirError> {
            let ds = gn
                .dataset(key)
                .map_err(|_| file_err(path, format!("{at} ({kind}): missing parameter `{key}`")))?;
            read_tensor(&ds).map_err(|e| file_err(path, format!("{at}/{key}: {e}")))
        };
        let shape_of = |t: Tensor| t.data.iter().map(|&x| x as i64).collect::<Vec<i64>>();
        // v_reset is optional in NIR (nir.read substitutes zeros)
        let reset_or_zero = |like: &Tensor| -> Result<Tensor, NirError> {
            if gn.link_exists("v_reset") {
                p("v_reset")
            } else {
                Ok(Tensor {
                    shape: like.shape.clone(),
                    data: vec![0.0; like.len()],
                })
            }
        };
        let n = match kind.as_str() {
            "Input" => Node::Input {
                shape: shape_of(p("shape")?),
            },
            "Output" => Node::Output {
                shape: shape_of(p("shape")?),
            },
            "Affine" => Node::Affine {
                weight: p("weight")?,
                bias: p("bias")?,
            },
            "Linear" => Node::Linear {
                weight: p("weight")?,
            },
            "LIF" => {
                let v_threshold = p("v_threshold")?;
                Node::Lif {
                    tau: p("tau")?,
                    r: p("r")?,
                    v_leak: p("v_leak")?,
                    v_reset: reset_or_zero(&v_threshold)?,
                    v_threshold,
                }
            }
            "LI" => Node::Li {
                tau: p("tau")?,
                r: p("r")?,
                v_leak: p("v_leak")?,
            },
            "CubaLIF" => {
                let v_threshold = p("v_threshold")?;
                Node::CubaLif {
                    tau_syn: p("tau_syn")?,
                    tau_mem: p("tau_mem")?,
                    r: p("r")?,
                    v_leak: p("v_leak")?,
                    v_reset: reset_or_zero(&v_threshold)?,
                    v_threshold,
                    w_in: p("w_in")?,
                }
            }
            _ => Node::Other { kind },
        };
        g.nodes.insert(name, n);
    }
    Ok(g)
}
