"""Writes NIR graphs with the Python `nir` package for robust-snn's importer tests.

usage: nir_make_graphs.py OUTDIR

- cuba.nir: a recurrent CubaLIF network as snnTorch / Norse / Rockpool describe one:
  input(1) -> Affine -> CubaLIF(12) <-> Linear (recurrence), CubaLIF -> Affine(1 x 12, bias 0)
  -> LI(1) -> output(1); per-neuron r and w_in (folded into the weights by the importer);
- unknown.nir: the same with a Threshold node in the readout (a type the engine lacks);
- shape.nir: the input Affine with 2 columns for a 1-channel input (written without nir's
  type check, as a broken exporter would).
"""

import sys

import numpy as np
import nir

out = sys.argv[1]
rng = np.random.default_rng(7)
n = 12
tau_syn, tau_mem, dt = 0.010, 0.020, 0.001


def cuba():
    return nir.CubaLIF(
        tau_syn=np.full(n, tau_syn),
        tau_mem=np.full(n, tau_mem),
        r=rng.uniform(0.8, 1.2, n),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
        v_reset=np.zeros(n),
        w_in=rng.uniform(0.5, 1.5, n),
    )


def graph(readout_extra=None, w_in_cols=1, type_check=True):
    w_rec = rng.normal(0.0, 0.003, (n, n))
    np.fill_diagonal(w_rec, 0.0)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1])}),
        "w_in": nir.Affine(weight=rng.uniform(0.0008, 0.0025, (n, w_in_cols)), bias=np.zeros(n)),
        "cuba": cuba(),
        "w_rec": nir.Linear(weight=w_rec),
        "w_out": nir.Affine(weight=rng.normal(0.0, 0.5, (1, n)), bias=np.zeros(1)),
        "li_out": nir.LI(tau=np.full(1, 0.05), r=np.ones(1), v_leak=np.zeros(1)),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "w_in"), ("w_in", "cuba"), ("cuba", "w_rec"), ("w_rec", "cuba"),
             ("cuba", "w_out"), ("w_out", "li_out"), ("li_out", "output")]
    if readout_extra is not None:
        nodes["thr"] = readout_extra
        edges = [e for e in edges if e != ("li_out", "output")] + [("li_out", "thr"), ("thr", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt_s": dt}, type_check=type_check)


nir.write(f"{out}/cuba.nir", graph())
nir.write(f"{out}/unknown.nir", graph(readout_extra=nir.Threshold(threshold=np.zeros(1))))
nir.write(f"{out}/shape.nir", graph(w_in_cols=2, type_check=False))
# the importer's own reading must agree with nir.read's
g = nir.read(f"{out}/cuba.nir")
assert isinstance(g.nodes["cuba"], nir.CubaLIF)
print("ok")
