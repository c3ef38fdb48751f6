"""Rockpool 2.5's DYNAP-SE1 connection validator as a second opinion on network.json files.

    python rockpool_check.py FILE [FILE ...]

For each file, prints one JSON line {"file", "result", "neurons", "channels", "pairs"}; result
is VirtualDynapseV1.validate_connections' bitmask: 0 valid, 1 fan-in > 64, 2 a neuron reaches
more than 3 chips, 4 connection aliasing.

The document becomes Rockpool's input as Rockpool 2.5 documents it:
- a signed count matrix pre x post over global ids 1024 chip + 256 core + neuron, AMPA/NMDA
  entries +count, GABA_A/GABA_B -count. Rockpool keeps one value per pair, so a pair with both
  signs (W_fast and W_slow of opposite sign) becomes +-(all its CAM entries), the sign the
  larger part's: Rockpool counts |value| and its three rules ignore the sign;
- the FPGA inputs as external connections, one row per tag id 256 tag_core + tag_neuron
  (channels_ext): an input sent to several chips is one channel with one tag, as the FPGA sees
  it.

VirtualDynapseV1 starts a NEST process when constructed, so validate_connections is called
unbound on a namespace with the attributes it reads (no NEST needed).
"""
import json
import sys
import types

import numpy as np
from rockpool.devices.dynapse import params
from rockpool.devices.dynapse.virtual_dynapse import VirtualDynapseV1

EXCITATORY = {2, 3}  # NMDA, AMPA (network.json conventions.synapse_type_codes)


def validator():
    me = types.SimpleNamespace(
        num_chips=params.NUM_CHIPS,
        num_cores=params.NUM_CHIPS * params.NUM_CORES_CHIP,
        num_neurons_core=params.NUM_NEURONS_CORE,
        num_neurons_chip=params.NUM_CORES_CHIP * params.NUM_NEURONS_CORE,
        start_print="VirtualDynapseV1: ",
        weight_resolution=1,
    )
    me._get_connection_counts = types.MethodType(VirtualDynapseV1._get_connection_counts, me)
    return me


def signed(parts):
    """One signed value for a pair from its [excitatory, inhibitory] CAM counts."""
    exc, inh = parts
    return exc + inh if exc >= inh else -(exc + inh)


def check(doc):
    gids = sorted({n["global_id"] for n in doc["neurons"]})
    col = {g: k for k, g in enumerate(gids)}
    inputs = doc.get("inputs", [])
    tags = sorted({256 * i["tag_core"] + i["tag_neuron"] for i in inputs})
    row_ext = {t: k for k, t in enumerate(tags)}
    rec, ext = {}, {}
    for c in doc["connections"]:
        part = 0 if c["syn_type"] in EXCITATORY else 1
        if "neuron" in c["pre"]:
            key, table = (col[c["pre"]["neuron"]], col[c["post"]]), rec
        else:
            i = inputs[c["pre"]["input"]]
            key, table = (row_ext[256 * i["tag_core"] + i["tag_neuron"]], col[c["post"]]), ext
        table.setdefault(key, [0, 0])[part] += c["count"]
    w_rec = np.zeros((len(gids), len(gids)))
    for (i, j), parts in rec.items():
        w_rec[i, j] = signed(parts)
    kwargs = {}
    if tags:
        w_ext = np.zeros((len(tags), len(gids)))
        for (i, j), parts in ext.items():
            w_ext[i, j] = signed(parts)
        kwargs = {"connections_ext": w_ext, "channels_ext": np.array(tags)}
    ids = np.array(gids)
    result = VirtualDynapseV1.validate_connections(
        validator(), w_rec, neurons_pre=ids, neurons_post=ids, verbose=False, **kwargs
    )
    return {"result": int(result), "neurons": len(gids), "channels": len(tags),
            "pairs": len(rec) + len(ext)}


def main():
    for path in sys.argv[1:]:
        with open(path) as f:
            out = check(json.load(f))
        out["file"] = path
        print(json.dumps(out))


if __name__ == "__main__":
    main()
