// One simulated chip as the GPU kernels see it, shared by the ensemble kernel
// (lif_ensemble.wgsl) and the ensemble learning kernel (learn_ensemble.wgsl), both compiled
// with rng.wgsl, lif_step.wgsl and this file prepended (src/engine/gpu/shaders.rs). It uses the
// storage arrays `net` (the shared nominal weights, vec4 rows) and `inst` (the per-chip blocks,
// vec4) that both kernels declare alike, and binds nothing itself. The CPU twin is
// `chip::Instance` with `engine::lif_step::NeuronConsts::from_instance`.
//
// A chip's block in `inst` (`instance_block` on the host): an InstanceInfo (2 vec4), the
// QuadConsts as 8 blocks of nq quads (field-major, in the struct's order), the input
// projection [ch][quad], then per extra synapse type k (KX of them) e^{-dt/tau_k} and 1/tau_k
// as two blocks of nq quads (from xb = 2 + (8 + C) nq). Effective recurrent weights and
// decoder are procedural: W_eff = (1 + sigma z) W with z from Philox keyed like the CPU
// (W_SLOW (pre, post/4) lane post%4, W_FAST (pre, post/4) lane post%4, w_extra(k) likewise,
// W_D (k, i/4) lane i%4).

// The head of a chip's block.
struct InstanceInfo {
    index: u32,
    sigma_w_slow: f32,
    sigma_w_fast: f32,
    sigma_d: f32,
    noise_std: f32,
    // tau_out is the same for every neuron: x~ is then updated per spike with these two
    shared_out: bool,
    decay_out: f32,
    inv_tau_out: f32,
}

fn instance_info(ib: u32) -> InstanceInfo {
    let a = inst[ib];
    let b = inst[ib + 1u];
    return InstanceInfo(bitcast<u32>(a.x), a.y, a.z, a.w, b.x, b.y > 0.5, b.z, b.w);
}

// The constants of quad q from the chip's blocks at pb.
fn quad_consts(pb: u32, nq: u32, q: u32) -> QuadConsts {
    let o = pb + q;
    return QuadConsts(inst[o], inst[o + nq], inst[o + 2u * nq], inst[o + 3u * nq],
        inst[o + 4u * nq], inst[o + 5u * nq], inst[o + 6u * nq], inst[o + 7u * nq]);
}

// (1 + sigma z) w with z = normal4(stream, a, b): a mismatched quad of a recurrent matrix.
fn mismatched(w: vec4<f32>, sigma: f32, index: u32, stream: u32, a: u32, b: u32, key: vec2<u32>) -> vec4<f32> {
    if sigma == 0.0 {
        return w;
    }
    let z = normal4_from_words(philox(vec4<u32>(index, stream, a, b), key));
    return (1.0 + sigma * z) * w;
}

// Step 6 for spike j onto quad q of the chip whose blocks start at pb: I_slow += W_slow_eff[j][q]
// / tau_slow with ws the quad of the kernel's W_slow (before the chip's factors G), when
// slow_on; I_fast += W_fast_eff[j][q] / tau_fast from the shared W_fast at off_fast, when fast_on.
fn propagate_spike(n: NeuronQuad, ws: vec4<f32>, slow_on: bool, fast_on: bool, j: u32, q: u32, nq: u32, pb: u32, info: InstanceInfo, key: vec2<u32>, off_fast: u32) -> NeuronQuad {
    var m = n;
    if slow_on {
        let w = mismatched(ws, info.sigma_w_slow, info.index, STREAM_W_SLOW, j, q, key);
        m.i_slow = m.i_slow + w * inst[pb + 5u * nq + q];
    }
    if fast_on {
        let w = mismatched(net[off_fast + j * nq + q], info.sigma_w_fast, info.index, STREAM_W_FAST, j, q, key);
        m.i_fast = m.i_fast + w * inst[pb + 3u * nq + q];
    }
    return m;
}

// Step 2 for the extra synapse types of owned quad m (quad q): I_k *= e^{-dt/tau_k,i}, the
// chip's decays from its extra-type blocks at xb.
fn decay_extra(m: u32, xb: u32, nq: u32, q: u32) {
    for (var k = 0u; k < KX; k++) {
        nrx[m][k] = nrx[m][k] * inst[xb + 2u * k * nq + q]; // I_k *= e^{-dt/tau_k,i}
    }
}

// Step 6 for spike j onto owned quad m (quad q) for the extra synapse types whose matrix is
// nonzero (bit k of `on`): I_k[i] += W_k_eff[j][i] / tau_k,i, with W_k [pre][quad] at vec4
// off + k N nq of `net`, W_k_eff = (1 + sigma z) W_k, z from stream w_extra(k) keyed
// (pre, post/4) lane post%4 and sigma W_slow's (an extra type is a slow synapse circuit).
fn propagate_extra(m: u32, j: u32, q: u32, nq: u32, n: u32, xb: u32, on: u32, off: u32, info: InstanceInfo, key: vec2<u32>) {
    for (var k = 0u; k < KX; k++) {
        if ((on >> k) & 1u) == 0u {
            continue;
        }
        // W_k_eff[j][q] = (1 + sigma z) W_k[j][q]
        let w = mismatched(net[off + (k * n + j) * nq + q], info.sigma_w_slow, info.index, STREAM_W_EXTRA0 + 2u * k, j, q, key);
        nrx[m][k] = nrx[m][k] + w * inst[xb + (2u * k + 1u) * nq + q]; // I_k += W_k_eff / tau_k
    }
}

// The state of quad q at the start of trial `trial`: V_i = V_reset + u (V_th_i - V_reset),
// u = uniform4(INIT_V, trial, i/4)[i%4] (`Instance::initial_v`); silenced neurons at 0.
fn initial_quad(pb: u32, nq: u32, q: u32, index: u32, trial: u32, key: vec2<u32>, v_reset: f32) -> NeuronQuad {
    let u = uniform4_from_words(philox(vec4<u32>(index, STREAM_INIT_V, trial, q), key));
    let vth = inst[pb + nq + q];
    let v0 = v_reset + u * (vth - vec4<f32>(v_reset));
    let zero = vec4<f32>(0.0);
    return NeuronQuad(select(v0, zero, vth >= vec4<f32>(SILENT_TH)), zero, zero, zero, zero, vec4<u32>(0u));
}

// Quad q at the start of a dispatch: its initial state at step 0, else as the previous dispatch
// left it (`load_quad` from state block sb and counts at ob).
fn chip_quad(t_start: u32, sb: u32, ob: u32, pb: u32, nq: u32, q: u32, index: u32, trial: u32, key: vec2<u32>, v_reset: f32) -> NeuronQuad {
    if t_start != 0u {
        return load_quad(sb, ob, nq, q);
    }
    return initial_quad(pb, nq, q, index, trial, key, v_reset);
}

// Step 1's noise and step 4's silencing for one quad: V += noise_std z,
// z = normal4(NOISE, trial, t nq + q); silenced neurons (V_th = SILENT_TH) held at 0.
fn noise_and_silence(n: NeuronQuad, c: QuadConsts, info: InstanceInfo, q: u32, nq: u32, trial: u32, t: u32, key: vec2<u32>) -> NeuronQuad {
    var m = n;
    if info.noise_std > 0.0 {
        let z = normal4_from_words(philox(vec4<u32>(info.index, STREAM_NOISE, trial, t * nq + q), key));
        m.v = m.v + info.noise_std * z;
    }
    m.v = select(m.v, vec4<f32>(0.0), c.v_th >= vec4<f32>(SILENT_TH));
    return m;
}

// Step 7 for k-quad kq: the decoded x~ after this step's spikes (mask[buf]), from its value
// `x0` before the step. A shared tau_out updates it per spike,
//   x~ = x~ e^{-dt/tau_out} + sum_j D_eff[:, j] / tau_out,
// a per-neuron tau_out densely from the filtered spike trains r (block rb of `state`, ascending
// i, neurons with r = 0 skipped): x~ = D_eff r. D_t [i][k-quad] starts at vec4 off_d of `net`.
fn decode_xs(x0: vec4<f32>, kq: u32, buf: u32, rb: u32, nq: u32, info: InstanceInfo, key: vec2<u32>, off_d: u32) -> vec4<f32> {
    let k0 = 4u * kq;
    let sig_d = info.sigma_d;
    let index = info.index;
    if info.shared_out {
        var x = x0 * info.decay_out;
        for (var w = 0u; w < NW; w++) {
            var bits = spike_word(buf, w);
            while bits != 0u {
                let j = pop_spike(&bits, w);
                var d = net[off_d + j * NCQ + kq];
                if sig_d != 0.0 {
                    let jq = j / 4u;
                    let l = j % 4u;
                    let z = vec4<f32>(
                        normal_lane(philox(vec4<u32>(index, STREAM_W_D, k0, jq), key), l),
                        normal_lane(philox(vec4<u32>(index, STREAM_W_D, k0 + 1u, jq), key), l),
                        normal_lane(philox(vec4<u32>(index, STREAM_W_D, k0 + 2u, jq), key), l),
                        normal_lane(philox(vec4<u32>(index, STREAM_W_D, k0 + 3u, jq), key), l),
                    );
                    d = d * (1.0 + sig_d * z);
                }
                x = x + d * info.inv_tau_out;
            }
        }
        return x;
    }
    var x = vec4<f32>(0.0);
    for (var q = 0u; q < nq; q++) {
        let rq = state[rb + q];
        if all(rq == vec4<f32>(0.0)) {
            continue;
        }
        var z0 = vec4<f32>(0.0);
        var z1 = vec4<f32>(0.0);
        var z2 = vec4<f32>(0.0);
        var z3 = vec4<f32>(0.0);
        if sig_d != 0.0 {
            z0 = normal4_from_words(philox(vec4<u32>(index, STREAM_W_D, k0, q), key));
            z1 = normal4_from_words(philox(vec4<u32>(index, STREAM_W_D, k0 + 1u, q), key));
            z2 = normal4_from_words(philox(vec4<u32>(index, STREAM_W_D, k0 + 2u, q), key));
            z3 = normal4_from_words(philox(vec4<u32>(index, STREAM_W_D, k0 + 3u, q), key));
        }
        for (var l = 0u; l < 4u; l++) {
            let ri = rq[l];
            if ri == 0.0 {
                continue;
            }
            var d = net[off_d + (4u * q + l) * NCQ + kq];
            if sig_d != 0.0 {
                d = d * (1.0 + sig_d * vec4<f32>(z0[l], z1[l], z2[l], z3[l]));
            }
            x = x + d * ri;
        }
    }
    return x;
}
