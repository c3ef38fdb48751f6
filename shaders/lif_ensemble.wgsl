// Ensemble step of the LIF network (Network ADS and kin): one workgroup per (instance, trial)
// pair, K Euler steps per dispatch, state kept in registers within a dispatch and in storage
// between dispatches. The CPU twin is `engine::lif_step::step`; the step order is the same:
//
//   A  I = I_slow + I_fast + P c(t) + b                    (P: folded input projection, N x C)
//      V += dt/tau_mem (V_rest - V + I);  I_fast *= e^{-dt/tau_fast};  I_slow *= e^{-dt/tau_slow}
//      r *= e^{-dt/tau_out};  V += noise_std z;  silenced: V = 0
//      s = V >= V_th;  V = V_reset, r += 1/tau_out where s;  spike bit set in the workgroup mask
//   B  for each spiking pre j, ascending (mask words, lowest bit first):
//        I_fast[i] += W_fast_eff[j -> i] / tau_fast_i,  I_slow[i] += W_slow_eff[j][i] / tau_slow_i
//      x~ = x~ e^{-dt/tau_out} + sum_j D_eff[:, j] / tau_out      (shared tau_out: per spike)
//      x~ = D_eff r                                               (per-neuron tau_out: dense)
//   C  y = W_outᵀ x~ (sequential over k, like `network::readout`); optional records.
//
// Effective weights are procedural: W_eff = (1 + sigma z) W with z from Philox keyed like the
// CPU (W_SLOW (pre, post/4) lane post%4, W_FAST (pre, post/4) lane post%4, W_D (k, i/4) lane i%4).
// Neuron i lives in quad q = i/4 (vec4 lanes); invocation `lid` owns quads lid, lid + WG, ...
// The host prepends `const WG, QPI, KPI, NW, NCQ` (workgroup size, quads and k-quads per
// invocation, mask words, k-quads), rng.wgsl and lif_step.wgsl (src/engine/gpu/shaders.rs).

struct Job {
    n: u32,
    nq: u32,
    nc: u32,
    c_in: u32,
    n_out: u32,
    steps: u32,
    t_start: u32,
    k_steps: u32,
    n_trials: u32,
    pair_start: u32,
    chunk_inst0: u32,
    trial_offset: u32,
    flags: u32,
    seed_lo: u32,
    seed_hi: u32,
    off_fast: u32,
    v_rest: f32,
    v_reset: f32,
    bias: f32,
    off_d: u32,
    off_wout: u32,
    inst_stride: u32,
    state_stride: u32,
    out_stride: u32,
    off_y: u32,
    off_x: u32,
    off_spk: u32,
    off_v: u32,
    // trips of the loop check (PROBE_TRIPS) and the status word's offset in a pair's `out`
    probe: u32,
    off_status: u32,
    // spike-frequency adaptation: threshold V_th + adapt_beta a, a <- adapt_rho a + s
    adapt_beta: f32,
    adapt_rho: f32,
}

const F_SLOW: u32 = 1u;
const F_FAST: u32 = 2u;
const F_REC_X: u32 = 4u;
const F_REC_SPK: u32 = 8u;
const F_REC_V: u32 = 16u;

@group(0) @binding(0) var<uniform> job: Job;
// Shared nominal weights, vec4 rows: W_slow [pre][quad], W_fast [pre][quad] at off_fast,
// D_t [i][k-quad] at off_d, W_out_t [o][k-quad] at off_wout.
@group(0) @binding(1) var<storage, read> net: array<vec4<f32>>;
// Per instance (stride inst_stride): an InstanceInfo (2 vec4), the QuadConsts as 8 blocks of nq
// quads (field-major, in the struct's order), then the input projection [ch][quad] (C x nq).
@group(0) @binding(2) var<storage, read> inst: array<vec4<f32>>;
// Inputs [trial][t][ch].
@group(0) @binding(3) var<storage, read> inputs: array<f32>;
// Per pair (stride state_stride): V, I_fast, I_slow, r, a (STATE_BLOCKS blocks of nq), x~ (NCQ).
@group(0) @binding(4) var<storage, read_write> state: array<vec4<f32>>;
// Per pair (stride out_stride, u32 words): spike counts (4 nq), y [t][o], x~ [t][k],
// spike mask words [t][w], V [t][4 nq], the status word (loop_status).
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

// The head of an instance's block (`instance_block` on the host).
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

// The constants of quad q from the instance's blocks at pb.
fn quad_consts(pb: u32, nq: u32, q: u32) -> QuadConsts {
    let o = pb + q;
    return QuadConsts(inst[o], inst[o + nq], inst[o + 2u * nq], inst[o + 3u * nq],
        inst[o + 4u * nq], inst[o + 5u * nq], inst[o + 6u * nq], inst[o + 7u * nq]);
}

// The input projection for add_input (lif_step.wgsl).
fn input_proj(i: u32) -> vec4<f32> {
    return inst[i];
}

// (1 + sigma z) w with z = normal4(stream, a, b): a mismatched quad of a recurrent matrix.
fn mismatched(w: vec4<f32>, sigma: f32, index: u32, stream: u32, a: u32, b: u32, key: vec2<u32>) -> vec4<f32> {
    if sigma == 0.0 {
        return w;
    }
    let z = normal4_from_words(philox(vec4<u32>(index, stream, a, b), key));
    return (1.0 + sigma * z) * w;
}

@compute @workgroup_size(WG)
fn lif_ensemble(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let p = wid.x;
    let g = job.pair_start + p;
    let trial_local = g % job.n_trials;
    let ib = (g / job.n_trials - job.chunk_inst0) * job.inst_stride;
    let info = instance_info(ib);
    let index = info.index;
    let nq = job.nq;
    let pb = ib + 2u;
    let sb = p * job.state_stride;
    let ob = p * job.out_stride;
    let key = vec2<u32>(job.seed_lo, job.seed_hi);
    let trial = job.trial_offset + trial_local;
    let slow_on = (job.flags & F_SLOW) != 0u;
    let fast_on = (job.flags & F_FAST) != 0u;

    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q >= nq {
            continue;
        }
        if job.t_start != 0u {
            nrn[m] = load_quad(sb, ob, nq, q);
        } else {
            // V_i = V_reset + u (V_th_i - V_reset), u = uniform4(INIT_V, trial, i/4)[i%4]
            let u = uniform4_from_words(philox(vec4<u32>(index, STREAM_INIT_V, trial, q), key));
            let vth = inst[pb + nq + q];
            let v0 = job.v_reset + u * (vth - vec4<f32>(job.v_reset));
            let zero = vec4<f32>(0.0);
            nrn[m] = NeuronQuad(select(v0, zero, vth >= vec4<f32>(SILENT_TH)), zero, zero, zero, zero, vec4<u32>(0u));
        }
    }
    load_xs(lid, sb + STATE_BLOCKS * nq, job.t_start == 0u);
    begin_dispatch(lid);

    var s = 0u;
    for (; s < job.k_steps; s++) {
        let t = job.t_start + s;
        let buf = t & 1u;
        // ---- A: integrate and fire (steps 1-5)
        let in_base = (trial_local * job.steps + t) * job.c_in;
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q >= nq {
                continue;
            }
            let c = quad_consts(pb, nq, q);
            let cur = add_input(nrn[m].i_slow + nrn[m].i_fast, in_base, job.c_in, pb + 8u * nq, nq, q);
            var n = lif_integrate(nrn[m], cur, c, job.v_rest, job.bias);
            if info.noise_std > 0.0 {
                let z = normal4_from_words(philox(vec4<u32>(index, STREAM_NOISE, trial, t * nq + q), key));
                n.v = n.v + info.noise_std * z;
            }
            n.v = select(n.v, vec4<f32>(0.0), c.v_th >= vec4<f32>(SILENT_TH));
            n = lif_fire(q, buf, n, c, job.v_reset, job.adapt_beta, job.adapt_rho);
            nrn[m] = n;
            if !info.shared_out {
                state[sb + 3u * nq + q] = n.r;
            }
            if (job.flags & F_REC_V) != 0u {
                let o = ob + job.off_v + t * 4u * nq + 4u * q;
                out[o] = bitcast<u32>(n.v.x);
                out[o + 1u] = bitcast<u32>(n.v.y);
                out[o + 2u] = bitcast<u32>(n.v.z);
                out[o + 3u] = bitcast<u32>(n.v.w);
            }
        }
        storageBarrier();
        workgroupBarrier();
        // ---- B: event-driven propagation (step 6) and readout (step 7)
        clear_mask(lid, buf ^ 1u); // last read in the previous step
        if slow_on || fast_on {
            for (var w = 0u; w < NW; w++) {
                var bits = spike_word(buf, w);
                while bits != 0u {
                    let j = pop_spike(&bits, w);
                    for (var m = 0u; m < QPI; m++) {
                        let q = lid + m * WG;
                        if q >= nq {
                            continue;
                        }
                        // I_slow[i] += W_slow_eff[j][i] / tau_slow_i, I_fast likewise
                        if slow_on {
                            let ws = mismatched(net[j * nq + q], info.sigma_w_slow, index, STREAM_W_SLOW, j, q, key);
                            nrn[m].i_slow = nrn[m].i_slow + ws * inst[pb + 5u * nq + q];
                        }
                        if fast_on {
                            let wf = mismatched(net[job.off_fast + j * nq + q], info.sigma_w_fast, index, STREAM_W_FAST, j, q, key);
                            nrn[m].i_fast = nrn[m].i_fast + wf * inst[pb + 3u * nq + q];
                        }
                    }
                }
            }
        }
        for (var m = 0u; m < KPI; m++) {
            let kq = lid + m * WG;
            if kq >= NCQ {
                continue;
            }
            let k0 = 4u * kq;
            let sig_d = info.sigma_d;
            if info.shared_out {
                // x~ = x~ e^{-dt/tau_out} + sum_j D_eff[:, j] / tau_out
                var x = xs[kq] * info.decay_out;
                for (var w = 0u; w < NW; w++) {
                    var bits = spike_word(buf, w);
                    while bits != 0u {
                        let j = pop_spike(&bits, w);
                        var d = net[job.off_d + j * NCQ + kq];
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
                xs[kq] = x;
            } else {
                // x~ = D_eff r (dense, ascending i, neurons with r = 0 skipped)
                var x = vec4<f32>(0.0);
                for (var q = 0u; q < nq; q++) {
                    let rq = state[sb + 3u * nq + q];
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
                        var d = net[job.off_d + (4u * q + l) * NCQ + kq];
                        if sig_d != 0.0 {
                            d = d * (1.0 + sig_d * vec4<f32>(z0[l], z1[l], z2[l], z3[l]));
                        }
                        x = x + d * ri;
                    }
                }
                xs[kq] = x;
            }
        }
        // r in `state` (per-neuron tau_out) is read by every invocation above and written by
        // its owner in the next step's A
        storageBarrier();
        workgroupBarrier();
        // ---- C: task output and records
        for (var o = lid; o < job.n_out; o += WG) {
            var y = 0.0;
            for (var kq = 0u; kq < NCQ; kq++) {
                let x = xs[kq];
                let wo = net[job.off_wout + o * NCQ + kq];
                for (var l = 0u; l < 4u; l++) {
                    if 4u * kq + l < job.nc {
                        y = y + x[l] * wo[l];
                    }
                }
            }
            out[ob + job.off_y + t * job.n_out + o] = bitcast<u32>(y);
        }
        if (job.flags & F_REC_X) != 0u {
            record_xs(lid, ob + job.off_x + t * job.nc, job.nc);
        }
        if (job.flags & F_REC_SPK) != 0u {
            for (var w = lid; w < NW; w += WG) {
                out[ob + job.off_spk + t * NW + w] = spike_word(buf, w);
            }
        }
    }

    // persist the state for the next dispatch
    store_state(lid, sb, ob, nq);
    store_xs(lid, sb + STATE_BLOCKS * nq);
    end_dispatch(lid, ob + job.off_status, job.probe, s, job.t_start);
}
