"""Brian2 re-simulation of a robust-snn NIR graph: the independent reference of tests/brian2.rs.

    python brian2_reference.py GRAPH.nir RUN.json OUT.json

GRAPH.nir is a graph written by `robust-snn export --format nir` (node names and semantics in
src/nir/export.rs). The network is built from the graph's parameters and metadata only; RUN.json
gives what a graph does not hold: the trial's input c(t) (`input`, T x C) and the initial
membrane potentials (`v0`, N). OUT.json receives the spike trains (`spikes`: [step, neuron]
pairs in time order), the membrane potentials after each step (`v`, T x N), the task output
(`y`, T x n_out) and a description of what was built (`info`).

The model (Brian2's numpy code generation, float32 state, dt from the graph):

    lif:  dv/dt = (v_leak - v + r_lif (I_ext(t, i) + sum_s I_s)) / tau_mem      (method "euler")
    syn s (every LI node feeding lif):  dI_s/dt = -I_s / tau_eff_s
    readout_filter:                     dr/dt  = -r / tau_eff_out
    tau_eff = dt / (1 - exp(-dt/tau)), so that Euler's one-step factor 1 - dt/tau_eff is the exact
    decay exp(-dt/tau) of the graph's spike convention (plain Euler would zero a 1 ms current
    in one 1 ms step).
    threshold  v >= v_threshold + adapt_beta a;  reset  v = v_reset, a += 1, r += r_out / tau_out
    a = adapt_rho a                          (every step, after the thresholder: the threshold
                                              reads the a of the previous step, as the engine)
    Synapses lif -> lif per type: on_pre  I_s_post += w r_s / tau_s_post  (no delay)
    I_ext(t, i) = (proj.weight c(t) + proj.bias)[i], a TimedArray
    y(t) = readout.weight decoder.weight r(t)

Brian2's schedule per step is groups (state update: every variable from the values of the
previous step), thresholds, [a = rho a], synapses, resets, end (monitors) - the engine's order:
1. the current is the synapse states of step t-1, 2. Euler and decays, 5. threshold and reset,
6. spikes into the synapse states (read from step t+1 on), 7. readout of the filter after the
spikes of step t.
"""

import json
import sys

import numpy as np


def fail(msg):
    sys.stderr.write(f"brian2_reference: {msg}\n")
    sys.exit(2)


def main(argv):
    if len(argv) != 4:
        fail("usage: brian2_reference.py GRAPH.nir RUN.json OUT.json")
    graph_path, run_path, out_path = argv[1:]

    import nir

    g = nir.read(graph_path)
    nodes, edges, meta = g.nodes, set(map(tuple, g.edges)), g.metadata

    def node(name, kind):
        if name not in nodes:
            fail(f"{graph_path}: no node `{name}`")
        nd = nodes[name]
        if not isinstance(nd, kind):
            fail(f"{graph_path}: node `{name}` is {type(nd).__name__}, expected {kind.__name__}")
        return nd

    def edge(a, b):
        if (a, b) not in edges:
            fail(f"{graph_path}: no edge {a} -> {b}")

    f32 = np.float32
    lif = node("lif", nir.LIF)
    proj = node("proj", nir.Affine)
    filt = node("readout_filter", nir.LI)
    dec = node("decoder", nir.Linear)
    ro = node("readout", nir.Linear)
    node("input", nir.Input)
    node("output", nir.Output)
    for a, b in [("input", "proj"), ("proj", "lif"), ("lif", "readout_filter"),
                 ("readout_filter", "decoder"), ("decoder", "readout"), ("readout", "output")]:
        edge(a, b)
    # the synapse types: every LI node that feeds lif, fed by a Linear that lif feeds
    syn = []
    for s in sorted(nodes):
        if s == "readout_filter" or not isinstance(nodes[s], nir.LI) or (s, "lif") not in edges:
            continue
        pres = [w for (w, t) in edges if t == s]
        if len(pres) != 1 or not isinstance(nodes[pres[0]], nir.Linear) \
                or ("lif", pres[0]) not in edges:
            fail(f"{graph_path}: synapse node `{s}` is not fed by one Linear from lif")
        syn.append((s, pres[0]))
    into_lif = sorted(a for (a, b) in edges if b == "lif")
    if into_lif != sorted(["proj"] + [s for s, _ in syn]):
        fail(f"{graph_path}: unexpected inputs of lif: {into_lif}")
    for s in [s for s, _ in syn] + ["readout_filter"]:
        if np.any(np.asarray(nodes[s].v_leak) != 0):
            fail(f"{graph_path}: LI node `{s}` has v_leak != 0 (only pure decay is modelled)")

    if meta.get("threshold") != ">=":
        fail(f"{graph_path}: metadata threshold is {meta.get('threshold')!r}, expected '>='")
    dt_s = float(meta["dt_s"])
    beta = f32(meta.get("adapt_beta", 0.0))
    rho = f32(meta.get("adapt_rho", 0.0))

    run = json.load(open(run_path))
    c = np.asarray(run["input"], dtype=f32)
    v0 = np.asarray(run["v0"], dtype=f32)
    n = np.asarray(lif.tau).shape[0]
    steps = c.shape[0]
    if v0.shape != (n,):
        fail(f"{run_path}: v0 has {v0.shape[0]} values, the graph {n} neurons")

    from brian2 import (
        NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, defaultclock, ms,
        prefs, second, start_scope, Network,
    )
    import brian2

    prefs.codegen.target = "numpy"  # no compiler needed
    prefs.core.default_float_dtype = np.float32
    start_scope()
    defaultclock.dt = dt_s * second

    def tau_eff(tau):
        tau = np.asarray(tau, dtype=np.float64)
        return dt_s / -np.expm1(-dt_s / tau)

    # the input current of every neuron at every step (float32, like the engine's)
    w_in = np.asarray(proj.weight, dtype=f32)
    i_ext = (c @ w_in.T + np.asarray(proj.bias, dtype=f32)).astype(f32)
    I_ext = TimedArray(i_ext, dt=dt_s * second)

    currents = [f"I_{s}" for s, _ in syn]
    eqs = [
        "dv/dt = (v_leak - v + r_lif * (I_ext(t, i)"
        + "".join(f" + {x}" for x in currents)
        + ")) / tau_mem : 1",
        "dr/dt = -r / tau_eff_out : 1",
        "a : 1",
        "tau_mem : second (constant)",
        "v_leak : 1 (constant)",
        "r_lif : 1 (constant)",
        "v_th : 1 (constant)",
        "v_reset : 1 (constant)",
        "tau_out : second (constant)",
        "tau_eff_out : second (constant)",
        "r_out : 1 (constant)",
    ]
    for (s, _), x in zip(syn, currents):
        eqs += [
            f"d{x}/dt = -{x} / tau_eff_{s} : 1",
            f"tau_{s} : second (constant)",
            f"tau_eff_{s} : second (constant)",
            f"r_{s} : 1 (constant)",
        ]
    G = NeuronGroup(
        n,
        "\n".join(eqs),
        threshold="v >= v_th + beta * a",
        reset="v = v_reset\na += 1\nr += r_out / tau_out * second",
        method="euler",
        namespace={"I_ext": I_ext, "beta": float(beta), "rho": float(rho)},
        name="lif",
    )
    G.tau_mem = np.asarray(lif.tau, dtype=np.float64) * second
    G.v_leak = np.asarray(lif.v_leak)
    G.r_lif = np.asarray(lif.r)
    G.v_th = np.asarray(lif.v_threshold)  # +inf: a silenced neuron never spikes
    G.v_reset = np.asarray(lif.v_reset)
    G.tau_out = np.asarray(filt.tau, dtype=np.float64) * second
    G.tau_eff_out = tau_eff(filt.tau) * second
    G.r_out = np.asarray(filt.r)
    G.v = v0
    # a <- rho a after the thresholder read a: with `a += 1` at the reset, a = rho a + s
    G.run_regularly("a = rho * a", when="after_thresholds", name="adaptation")
    objs = [G]
    for s, wname in syn:
        li = nodes[s]
        setattr(G, f"tau_{s}", np.asarray(li.tau, dtype=np.float64) * second)
        setattr(G, f"tau_eff_{s}", tau_eff(li.tau) * second)
        setattr(G, f"r_{s}", np.asarray(li.r))
        w = np.asarray(nodes[wname].weight, dtype=f32)  # [post, pre]
        post, pre = np.nonzero(w)
        S = Synapses(G, G, "w : 1 (constant)",
                     on_pre=f"I_{s}_post += w * r_{s}_post / tau_{s}_post * second",
                     name=f"syn_{s}")
        if len(pre):
            S.connect(i=pre, j=post)
            S.w = w[post, pre]
        objs.append(S)
    spk = SpikeMonitor(G)
    mon = StateMonitor(G, ["v", "r"], record=True, when="end")
    net = Network(objs + [spk, mon])
    order = [(o.name, o.when, o.order) for o in net.sorted_objects]
    # the engine's step order needs this schedule: Euler and decays (from the previous step's
    # values), the threshold test, a <- rho a, the spikes into the currents, the reset, records
    names = [o.name for o in net.sorted_objects]
    want = ["lif_stateupdater", "lif_spike_thresholder", "adaptation"] \
        + [f"syn_{s}_pre" for s, _ in syn] + ["lif_spike_resetter", "statemonitor"]
    if [x for x in names if x in want] != want:
        fail(f"Brian2's schedule is {order}, not the engine's step order {want}")
    # an explicit (empty) run namespace: names resolve in the groups only, never in locals
    net.run(steps * dt_s * second, namespace={})

    step = np.round(np.asarray(spk.t / second) / dt_s).astype(np.int64)
    idx = np.asarray(spk.i, dtype=np.int64)
    o = np.lexsort((idx, step))
    r = np.asarray(mon.r, dtype=f32)  # N x T, after the step's spikes
    m = (np.asarray(ro.weight, dtype=f32) @ np.asarray(dec.weight, dtype=f32)).astype(f32)
    y = (r.T @ m.T).astype(f32)  # T x n_out
    json.dump(
        {
            "spikes": np.stack([step[o], idx[o]], axis=1).tolist(),
            "v": np.asarray(mon.v, dtype=f32).T.tolist(),
            "y": y.tolist(),
            "info": {
                "brian2": brian2.__version__,
                "nir": nir.__version__ if hasattr(nir, "__version__") else "",
                "n": int(n),
                "steps": int(steps),
                "synapse_types": [s for s, _ in syn],
                "synapses": {s: int(np.count_nonzero(nodes[w].weight)) for s, w in syn},
                "adapt_beta": float(beta),
                "adapt_rho": float(rho),
                "schedule": [list(map(str, x)) for x in order],
                "dtype": str(np.asarray(G.v[:]).dtype),
            },
        },
        open(out_path, "w"),
    )


if __name__ == "__main__":
    main(sys.argv)
