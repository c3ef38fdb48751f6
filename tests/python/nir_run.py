"""Runs a NIR graph with the numpy interpreter (nir_interp.py).

usage: nir_run.py GRAPH.nir IN.json OUT.json

IN.json: {"input": T x C, "v0": N or null, "dt": seconds}. OUT.json: the spike raster (indices of
the spiking neurons per step) and the outputs (T x n_out).
"""

import json
import sys

import numpy as np
import nir

from nir_interp import adaptation, simulate

g = nir.read(sys.argv[1], type_check=True)
a = json.load(open(sys.argv[2]))
beta, rho = adaptation(g)
spikes, y = simulate(g, np.asarray(a["input"], dtype=float), a["dt"], v0=a["v0"],
                     adapt_beta=beta, adapt_rho=rho)
json.dump({"spikes": [np.flatnonzero(s).tolist() for s in spikes], "y": y.tolist()},
          open(sys.argv[3], "w"))
print(f"ok: {int(spikes.sum())} spikes")
