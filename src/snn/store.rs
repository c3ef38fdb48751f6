//! The trained network on disk: one safetensors file with every matrix and the parameters as
//! JSON metadata, so a network file is self-contained.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{Network, SnnParams};

/// Metadata key naming how the matrices are laid out.
const LAYOUT_KEY: &str = "layout";
/// Both recurrent matrices `[pre][post]`. Files without the key were written when W_fast was
/// stored `[post][pre]`; they are converted on load.
const LAYOUT: &str = "recurrent pre-major";
/// Metadata key naming the training method (files without it hold Network ADS).
const METHOD_KEY: &str = "method";
/// Metadata key listing the time constants (ms) of the synapse types beyond W_fast and W_slow,
/// as a JSON list; type k's matrix is the tensor [`extra_tensor`]`(k)`. Files without the key
/// have no further types.
const EXTRA_TAU_KEY: &str = "extra_synapse_tau_ms";

/// The tensor name of extra synapse type `k` (N x N, `[pre][post]`).
fn extra_tensor(k: usize) -> String {
    format!("w_extra_{k}")
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Serialise named f32 matrices with metadata into safetensors bytes.
pub fn to_bytes(
    tensors: &[(&str, &[f32], Vec<usize>)],
    meta: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, data, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
                .map(|v| (name.to_string(), v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
}

/// Read every f32 tensor and the metadata of a safetensors file.
#[allow(clippy::type_complexity)]
pub fn read_tensors(
    path: &Path,
) -> Result<
    (
        HashMap<String, (Vec<f32>, Vec<usize>)>,
        HashMap<String, String>,
    ),
    StoreError,
> {
    let data = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(&data)
        .map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(&data)
        .map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(err(
                path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name, (v, view.shape().to_vec()));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

impl Network {
    /// Write the network (atomically).
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let (n, nc, c, o) = (self.n, self.nc, self.n_in, self.n_out);
        let mut meta = HashMap::new();
        meta.insert(
            "params".to_string(),
            serde_json::to_string(&self.params).map_err(|e| err(path, e.to_string()))?,
        );
        meta.insert("model".to_string(), "robust-snn Network ADS".to_string());
        meta.insert(METHOD_KEY.to_string(), self.method.name().to_string());
        meta.insert(LAYOUT_KEY.to_string(), LAYOUT.to_string());
        let names: Vec<String> = (0..self.extra_synapses.len()).map(extra_tensor).collect();
        if !self.extra_synapses.is_empty() {
            let taus: Vec<f32> = self.extra_synapses.iter().map(|t| t.tau_ms).collect();
            meta.insert(
                EXTRA_TAU_KEY.to_string(),
                serde_json::to_string(&taus).map_err(|e| err(path, e.to_string()))?,
            );
        }
        let mut tensors: Vec<(&str, &[f32], Vec<usize>)> = vec![
            ("d", &self.d, vec![nc, n]),
            ("f", &self.f, vec![n, nc]),
            ("w_fast", &self.w_fast, vec![n, n]),
            ("w_slow", &self.w_slow, vec![n, n]),
            ("w_in_teacher", &self.w_in_teacher, vec![c, nc]),
            ("w_out_teacher", &self.w_out_teacher, vec![nc, o]),
        ];
        if let Some(p) = &self.input_override {
            tensors.push(("input_override", p, vec![n, c]));
        }
        for (name, t) in names.iter().zip(&self.extra_synapses) {
            tensors.push((name.as_str(), t.w.as_slice(), vec![n, n]));
        }
        let bytes = to_bytes(&tensors, meta).map_err(|m| err(path, m))?;
        crate::report::write_atomic(path, &bytes).map_err(|e| err(path, e.to_string()))
    }

    /// Read a network written by [`save`](Self::save), checking every shape.
    pub fn load(path: &Path) -> Result<Network, StoreError> {
        let (mut t, meta) = read_tensors(path)?;
        let params: SnnParams = serde_json::from_str(
            meta.get("params")
                .ok_or_else(|| err(path, "missing `params` metadata"))?,
        )
        .map_err(|e| err(path, format!("bad `params` metadata: {e}")))?;
        let mut take = |name: &str| {
            t.remove(name)
                .ok_or_else(|| err(path, format!("missing tensor `{name}`")))
        };
        let (d, ds) = take("d")?;
        let (f, _) = take("f")?;
        let (mut w_fast, _) = take("w_fast")?;
        let (w_slow, _) = take("w_slow")?;
        let (w_in_teacher, ws) = take("w_in_teacher")?;
        let (w_out_teacher, wo) = take("w_out_teacher")?;
        let input_override = t.remove("input_override").map(|(p, _)| p);
        let extra_synapses = read_extra_types(path, &meta, &mut t)?;
        let method = match meta.get(METHOD_KEY) {
            None => super::Method::Ads,
            Some(m) => super::Method::parse(m).ok_or_else(|| {
                err(
                    path,
                    format!("unknown training method `{m}` (this build knows ads, bptt, force, reservoir)"),
                )
            })?,
        };
        if ds.len() != 2 || ws.len() != 2 || wo.len() != 2 {
            return Err(err(path, "matrices must be 2-D"));
        }
        match meta.get(LAYOUT_KEY).map(String::as_str) {
            Some(LAYOUT) => {}
            // written before the layout was recorded: W_fast was then stored `[post][pre]`
            None if w_fast.len() == ds[1] * ds[1] => {
                w_fast = super::transpose(&w_fast, ds[1], ds[1]);
            }
            None => {}
            Some(other) => {
                return Err(err(
                    path,
                    format!("unknown matrix layout `{other}` (this build reads `{LAYOUT}`)"),
                ));
            }
        }
        let net = Network {
            n: ds[1],
            nc: ds[0],
            n_in: ws[0],
            n_out: wo[1],
            params,
            d,
            f,
            w_fast,
            w_slow,
            w_in_teacher,
            w_out_teacher,
            input_override,
            method,
            extra_synapses,
        };
        net.validate_shapes()
            .map_err(|e| err(path, e.to_string()))?;
        Ok(net)
    }
}

/// The extra synapse types of a file: the time constants from [`EXTRA_TAU_KEY`], type k's
/// matrix from tensor `w_extra_<k>`. A list that does not parse, a listed type without its
/// tensor, or a `w_extra_*` tensor that the list does not name is an error (a file cut or
/// edited by hand), never a silently different network.
fn read_extra_types(
    path: &Path,
    meta: &HashMap<String, String>,
    t: &mut HashMap<String, (Vec<f32>, Vec<usize>)>,
) -> Result<Vec<super::SynapseType>, StoreError> {
    let taus: Vec<f32> = match meta.get(EXTRA_TAU_KEY) {
        None => Vec::new(),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            err(
                path,
                format!("bad `{EXTRA_TAU_KEY}` metadata (a JSON list of ms expected): {e}"),
            )
        })?,
    };
    let mut types = Vec::with_capacity(taus.len());
    for (k, &tau_ms) in taus.iter().enumerate() {
        let name = extra_tensor(k);
        let (w, _) = t.remove(&name).ok_or_else(|| {
            err(
                path,
                format!(
                    "missing tensor `{name}`: `{EXTRA_TAU_KEY}` lists {} synapse types",
                    taus.len()
                ),
            )
        })?;
        types.push(super::SynapseType { tau_ms, w });
    }
    let mut stray: Vec<&String> = t.keys().filter(|k| k.starts_with("w_extra_")).collect();
    stray.sort();
    if let Some(name) = stray.first() {
        return Err(err(
            path,
            format!(
                "tensor `{name}` is not listed in `{EXTRA_TAU_KEY}` ({} synapse types listed)",
                taus.len()
            ),
        ));
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Network {
        let p = SnnParams {
            n: 6,
            ..Default::default()
        };
        Network::init(p, vec![0.5; 2 * 3], vec![1.0; 3], 3, 2, 1, 7).unwrap()
    }

    #[test]
    fn round_trip_keeps_every_matrix() {
        let mut net = small();
        net.w_slow[1] = 0.25; // an asymmetric entry in each recurrent matrix
        net.w_fast[2] = -0.75;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("net.safetensors");
        net.save(&p).unwrap();
        let back = Network::load(&p).unwrap();
        assert_eq!(back.w_fast, net.w_fast);
        assert_eq!(back.w_slow, net.w_slow);
        assert_eq!(back.d, net.d);
        assert_eq!(back.f, net.f);
    }

    /// A file written before the layout key existed held W_fast `[post][pre]`: it loads as the
    /// transpose, so old run folders give the same network.
    #[test]
    fn files_without_the_layout_key_hold_w_fast_post_major() {
        let mut net = small();
        net.w_fast[1] = 0.5; // synapse 0 -> 1
        let n = net.n;
        let old = crate::snn::transpose(&net.w_fast, n, n);
        let mut meta = HashMap::new();
        meta.insert(
            "params".to_string(),
            serde_json::to_string(&net.params).unwrap(),
        );
        let tensors: Vec<(&str, &[f32], Vec<usize>)> = vec![
            ("d", &net.d, vec![net.nc, n]),
            ("f", &net.f, vec![n, net.nc]),
            ("w_fast", &old, vec![n, n]),
            ("w_slow", &net.w_slow, vec![n, n]),
            ("w_in_teacher", &net.w_in_teacher, vec![net.n_in, net.nc]),
            ("w_out_teacher", &net.w_out_teacher, vec![net.nc, net.n_out]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.safetensors");
        std::fs::write(&p, to_bytes(&tensors, meta.clone()).unwrap()).unwrap();
        let back = Network::load(&p).unwrap();
        assert_eq!(back.w_fast[1], 0.5);
        assert_eq!(back.w_fast, net.w_fast);

        meta.insert(LAYOUT_KEY.to_string(), "something else".to_string());
        std::fs::write(&p, to_bytes(&tensors, meta).unwrap()).unwrap();
        let e = Network::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("unknown matrix layout") && e.contains("old.safetensors"),
            "{e}"
        );
    }

    #[test]
    fn round_trip_keeps_two_synapse_types_and_refuses_broken_entries() {
        let net = small();
        let n = net.n;
        let w0: Vec<f32> = (0..n * n).map(|k| 0.01 * k as f32 - 0.1).collect();
        let w1: Vec<f32> = (0..n * n).map(|k| -0.02 * (k % 7) as f32).collect();
        let net = net
            .with_synapse_type(40.0, w0.clone())
            .unwrap()
            .with_synapse_type(250.5, w1.clone())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("net.safetensors");
        net.save(&p).unwrap();
        let back = Network::load(&p).unwrap();
        assert_eq!(back.extra_synapses.len(), 2);
        assert_eq!(
            (back.extra_synapses[0].tau_ms, back.extra_synapses[1].tau_ms),
            (40.0, 250.5)
        );
        assert_eq!(back.extra_synapses[0].w, w0);
        assert_eq!(back.extra_synapses[1].w, w1);
        assert_eq!(back, net);

        // the file as written, then with one entry broken at a time
        let (tensors, meta) = read_tensors(&p).unwrap();
        assert_eq!(meta[EXTRA_TAU_KEY], "[40.0,250.5]");
        let write = |drop: Option<&str>, meta: &HashMap<String, String>| {
            let list: Vec<(&str, &[f32], Vec<usize>)> = tensors
                .iter()
                .filter(|(name, _)| Some(name.as_str()) != drop)
                .map(|(name, (v, s))| (name.as_str(), v.as_slice(), s.clone()))
                .collect();
            std::fs::write(&p, to_bytes(&list, meta.clone()).unwrap()).unwrap();
            Network::load(&p).map_err(|e| e.to_string())
        };
        let e = write(Some("w_extra_1"), &meta).unwrap_err();
        assert!(e.contains("missing tensor `w_extra_1`"), "{e}");
        let mut corrupt = meta.clone();
        corrupt.insert(EXTRA_TAU_KEY.into(), "[40.0, oops]".into());
        let e = write(None, &corrupt).unwrap_err();
        assert!(e.contains("bad `extra_synapse_tau_ms` metadata"), "{e}");
        let mut missing = meta.clone();
        missing.remove(EXTRA_TAU_KEY);
        let e = write(None, &missing).unwrap_err();
        assert!(
            e.contains("`w_extra_0` is not listed in `extra_synapse_tau_ms`"),
            "{e}"
        );
        let mut bad_tau = meta.clone();
        bad_tau.insert(EXTRA_TAU_KEY.into(), "[40.0, -1.0]".into());
        let e = write(None, &bad_tau).unwrap_err();
        assert!(
            e.contains("extra synapse type 1") && e.contains("tau_ms"),
            "{e}"
        );
        // and a network without extra types writes neither the key nor a tensor
        small().save(&p).unwrap();
        let (t, m) = read_tensors(&p).unwrap();
        assert!(!m.contains_key(EXTRA_TAU_KEY));
        assert!(!t.keys().any(|k| k.starts_with("w_extra_")));
    }
}
