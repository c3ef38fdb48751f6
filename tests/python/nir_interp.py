"""A small, independent interpreter of NIR graphs (numpy, float64), for the tests.

Semantics (the ones robust-snn's export states in its metadata):
- edges into a node are summed; nodes are evaluated in breadth-first order from the Input
  node, and an edge whose source has not been evaluated yet in this step (a cycle) carries the
  source's value from the previous step;
- LI: x <- exp(-dt/tau) x + r u / tau (exact decay; an input u per step is a Dirac of area u);
- LIF: v <- v + dt/tau (v_leak - v + r u) (forward Euler); spike where v >= v_threshold
  (+ adapt_beta a when the graph's metadata sets adaptation), then v <- v_reset and
  a <- adapt_rho a + s; the node's output is the spike vector (0/1);
- CubaLIF: I <- exp(-dt/tau_syn) I + w_in u / tau_syn, then the LIF update with r I;
- Affine: W u + b; Linear: W u; Input: the input row; Output: the sum of its inputs.
"""

from collections import deque

import numpy as np
import nir


def _order(graph):
    start = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    assert len(start) == 1, "one Input node"
    seen, order, q = set(start), [], deque(start)
    while q:
        k = q.popleft()
        order.append(k)
        for a, b in graph.edges:
            if a == k and b not in seen:
                seen.add(b)
                q.append(b)
    return order


def simulate(graph, inputs, dt, v0=None, adapt_beta=0.0, adapt_rho=0.0):
    """Runs `graph` on `inputs` (T x C). Returns (spikes of the spiking node, T x N; outputs,
    T x n_out)."""
    order = _order(graph)
    nodes = graph.nodes
    val = {k: None for k in order}
    state = {}
    spiking = None
    for k in order:
        n = nodes[k]
        if isinstance(n, (nir.LIF, nir.CubaLIF)):
            size = len(n.v_threshold)
            spiking = k
            state[k] = {
                "v": np.zeros(size) if v0 is None else np.array(v0, dtype=float),
                "i": np.zeros(size),
                "a": np.zeros(size),
            }
        elif isinstance(n, nir.LI):
            state[k] = {"x": np.zeros(len(n.tau))}
    # every node's output starts at zero (the "previous step" of step 0)
    shapes = {}
    for k in order:
        n = nodes[k]
        if isinstance(n, (nir.Affine, nir.Linear)):
            shapes[k] = np.asarray(n.weight).shape[0]
        elif isinstance(n, (nir.LIF, nir.CubaLIF)):
            shapes[k] = len(n.v_threshold)
        elif isinstance(n, nir.LI):
            shapes[k] = len(n.tau)
        elif isinstance(n, nir.Input):
            shapes[k] = int(np.prod(n.input_type["input"]))
        elif isinstance(n, nir.Output):
            shapes[k] = int(np.prod(n.output_type["output"]))
        else:
            raise ValueError(f"node {k}: unsupported type {type(n).__name__}")
        val[k] = np.zeros(shapes[k])
    steps = inputs.shape[0]
    spikes, outs = [], []
    for t in range(steps):
        for k in order:
            n = nodes[k]
            u = 0.0
            for a, b in graph.edges:
                if b == k:
                    u = u + val[a]  # val[a] is this step's if a is done, else last step's
            if isinstance(n, nir.Input):
                out = np.asarray(inputs[t], dtype=float)
            elif isinstance(n, nir.Affine):
                out = np.asarray(n.weight, float) @ u + np.asarray(n.bias, float)
            elif isinstance(n, nir.Linear):
                out = np.asarray(n.weight, float) @ u
            elif isinstance(n, nir.LI):
                tau = np.asarray(n.tau, float)
                s = state[k]
                s["x"] = np.exp(-dt / tau) * s["x"] + np.asarray(n.r, float) * u / tau
                out = s["x"].copy()
            elif isinstance(n, (nir.LIF, nir.CubaLIF)):
                s = state[k]
                if isinstance(n, nir.CubaLIF):
                    ts = np.asarray(n.tau_syn, float)
                    s["i"] = np.exp(-dt / ts) * s["i"] + np.asarray(n.w_in, float) * u / ts
                    cur, tau = s["i"], np.asarray(n.tau_mem, float)
                else:
                    cur, tau = u, np.asarray(n.tau, float)
                s["v"] = s["v"] + dt / tau * (np.asarray(n.v_leak, float) - s["v"] + np.asarray(n.r, float) * cur)
                th = np.asarray(n.v_threshold, float) + adapt_beta * s["a"]
                fired = s["v"] >= th
                s["v"] = np.where(fired, np.asarray(n.v_reset, float), s["v"])
                if adapt_beta != 0.0:
                    s["a"] = adapt_rho * s["a"] + fired
                out = fired.astype(float)
            elif isinstance(n, nir.Output):
                out = u
            val[k] = out
        spikes.append(val[spiking].copy())
        outs.append(val[[k for k in order if isinstance(nodes[k], nir.Output)][0]].copy())
    return np.array(spikes), np.array(outs)


def adaptation(graph):
    """(adapt_beta, adapt_rho) from robust-snn's metadata (0, 0 when absent)."""
    md = graph.metadata or {}
    return float(md.get("adapt_beta", 0.0)), float(md.get("adapt_rho", 0.0))
