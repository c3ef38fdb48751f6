"""Checks a robust-snn NIR export with the Python `nir` package, then runs it.

usage: nir_check_export.py GRAPH.nir EXPECTED.json OUT.json

EXPECTED.json (written by tests/nir.rs from the network, in robust-snn's own layouts): sizes,
per-neuron values, matrices ([pre][post] recurrent, D as Nc x N, W_out_teacher as Nc x n_out),
metadata to find, the input (T x C) and the initial membrane potentials. The graph must have
exactly robust-snn's node names, edges, shapes and values (compared in float32, the engine's
precision, where an exact equality is expected). OUT.json receives the numpy interpreter's
spike raster and outputs on that input.
"""

import json
import sys

import numpy as np
import nir

from nir_interp import adaptation, simulate

path, expected_path, out_path = sys.argv[1:4]
e = json.load(open(expected_path))
g = nir.read(path, type_check=True)

k = e["extra_types"]
syn = [("w_fast", "syn_fast"), ("w_slow", "syn_slow")] + [(f"w_syn_{i}", f"syn_{i}") for i in range(k)]
names = {"input", "proj", "lif", "readout_filter", "decoder", "readout", "output"}
edges = {("input", "proj"), ("proj", "lif"), ("lif", "readout_filter"),
         ("readout_filter", "decoder"), ("decoder", "readout"), ("readout", "output")}
for w, s in syn:
    names |= {w, s}
    edges |= {("lif", w), (w, s), (s, "lif")}
assert set(g.nodes) == names, f"nodes {sorted(g.nodes)} != {sorted(names)}"
assert set(map(tuple, g.edges)) == edges, f"edges {sorted(g.edges)}"
assert len(g.edges) == len(edges), "duplicate edges"


def same(what, got, want):
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=what)


n, c, nc, o = e["n"], e["c"], e["nc"], e["n_out"]
N = g.nodes
assert isinstance(N["input"], nir.Input) and list(N["input"].input_type["input"]) == [c]
assert isinstance(N["output"], nir.Output) and list(N["output"].output_type["output"]) == [o]
assert isinstance(N["proj"], nir.Affine)
same("proj.weight", N["proj"].weight, e["proj"])
same("proj.bias", N["proj"].bias, [e["bias"]] * n)
lif = N["lif"]
assert isinstance(lif, nir.LIF)
same("lif.tau", lif.tau, e["tau_mem"])
same("lif.r", lif.r, [1.0] * n)
same("lif.v_leak", lif.v_leak, [e["v_rest"]] * n)
same("lif.v_threshold", lif.v_threshold, [float(x) for x in e["v_th"]])
same("lif.v_reset", lif.v_reset, [e["v_reset"]] * n)
mats = [e["w_fast"], e["w_slow"]] + e["w_extra"]
taus = [e["tau_fast"], e["tau_slow"]] + e["tau_extra"]
for (w, s), m, tau in zip(syn, mats, taus):
    assert isinstance(N[w], nir.Linear) and isinstance(N[s], nir.LI), (w, s)
    # robust-snn stores [pre][post]; NIR's weight is [out = post, in = pre]
    same(f"{w}.weight", N[w].weight, np.asarray(m, dtype=np.float32).T)
    same(f"{s}.tau", N[s].tau, tau)
    same(f"{s}.r", N[s].r, [1.0] * n)
    same(f"{s}.v_leak", N[s].v_leak, [0.0] * n)
same("readout_filter.tau", N["readout_filter"].tau, e["tau_out"])
same("decoder.weight", N["decoder"].weight, e["d"])
same("readout.weight", N["readout"].weight, np.asarray(e["w_out_teacher"], dtype=np.float32).T)
md = g.metadata
assert abs(float(md["dt_s"]) - e["dt_s"]) < 1e-12, md["dt_s"]
assert md["threshold"] == ">="
assert "Dirac" in md["spike_convention"] and "exp(-dt/tau)" in md["spike_convention"]
assert md["lif_integration"].startswith("forward Euler")
assert md["producer"].startswith("robust-snn ")
for key, want in e.get("metadata", {}).items():
    got = md[key]
    if isinstance(want, float):
        assert abs(float(got) - want) < 1e-6, (key, got, want)
    else:
        assert got == want or int(got) == want, (key, got, want)

beta, rho = adaptation(g)
spikes, y = simulate(g, np.asarray(e["input"], dtype=float), float(md["dt_s"]),
                     v0=e["v0"], adapt_beta=beta, adapt_rho=rho)
json.dump({"spikes": [np.flatnonzero(s).tolist() for s in spikes], "y": y.tolist()},
          open(out_path, "w"))
print(f"ok: {len(g.nodes)} nodes, {len(g.edges)} edges, {int(spikes.sum())} spikes")
