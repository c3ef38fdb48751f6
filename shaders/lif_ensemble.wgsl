// Ensemble step of the LIF network (Network ADS and kin): one workgroup per (instance, trial)
// pair, K Euler steps per dispatch, state kept in registers within a dispatch and in storage
// between dispatches. The CPU twin is `engine::cpu::step`; the step order is the same:
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
    _pad0: u32,
    _pad1: u32,
}

const F_SLOW: u32 = 1u;
const F_FAST: u32 = 2u;
const F_REC_X: u32 = 4u;
const F_REC_SPK: u32 = 8u;
const F_REC_V: u32 = 16u;

@group(0) @binding(0) var<uniform> job: Job;
// Shared nominal weights, vec4 rows: W_slow [pre][quad], W_fast_t [pre][quad] at off_fast,
// D_t [i][k-quad] at off_d, W_out_t [o][k-quad] at off_wout.
@group(0) @binding(1) var<storage, read> net: array<vec4<f32>>;
// Per instance (stride inst_stride): info0 (index, sigma W_slow, sigma W_fast, sigma D),
// info1 (noise std, shared tau_out?, e^{-dt/tau_out}, 1/tau_out), then per quad:
// alpha, V_th, e^{-dt/tau_fast}, 1/tau_fast, e^{-dt/tau_slow}, 1/tau_slow, e^{-dt/tau_out},
// 1/tau_out (8 x nq), then the input projection [ch][quad] (C x nq).
@group(0) @binding(2) var<storage, read> inst: array<vec4<f32>>;
// Inputs [trial][t][ch].
@group(0) @binding(3) var<storage, read> inputs: array<f32>;
// Per pair (stride state_stride): V, I_fast, I_slow, r (nq each), x~ (NCQ).
@group(0) @binding(4) var<storage, read_write> state: array<vec4<f32>>;
// Per pair (stride out_stride, u32 words): spike counts (4 nq), y [t][o], x~ [t][k],
// spike mask words [t][w], V [t][4 nq], the status word (loop_status).
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WG)
fn lif_ensemble(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let p = wid.x;
    let g = job.pair_start + p;
    let trial_local = g % job.n_trials;
    let ib = (g / job.n_trials - job.chunk_inst0) * job.inst_stride;
    let info0 = inst[ib];
    let info1 = inst[ib + 1u];
    let index = bitcast<u32>(info0.x);
    let sig_slow = info0.y;
    let sig_fast = info0.z;
    let sig_d = info0.w;
    let noise_std = info1.x;
    let shared_out = info1.y > 0.5;
    let dec_shared = info1.z;
    let inv_shared = info1.w;
    let nq = job.nq;
    let pb = ib + 2u;
    let sb = p * job.state_stride;
    let ob = p * job.out_stride;
    let key = vec2<u32>(job.seed_lo, job.seed_hi);
    let trial = job.trial_offset + trial_local;
    let slow_on = (job.flags & F_SLOW) != 0u;
    let fast_on = (job.flags & F_FAST) != 0u;

    var v: array<vec4<f32>, QPI>;
    var i_f: array<vec4<f32>, QPI>;
    var i_s: array<vec4<f32>, QPI>;
    var r: array<vec4<f32>, QPI>;
    var cnt: array<vec4<u32>, QPI>;
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q >= nq {
            continue;
        }
        if job.t_start == 0u {
            // V_i = V_reset + u (V_th_i - V_reset), u = uniform4(INIT_V, trial, i/4)[i%4]
            let u = uniform4_from_words(philox(vec4<u32>(index, STREAM_INIT_V, trial, q), key));
            let vth = inst[pb + nq + q];
            let v0 = job.v_reset + u * (vth - vec4<f32>(job.v_reset));
            v[m] = select(v0, vec4<f32>(0.0), vth >= vec4<f32>(SILENT_TH));
            i_f[m] = vec4<f32>(0.0);
            i_s[m] = vec4<f32>(0.0);
            r[m] = vec4<f32>(0.0);
            cnt[m] = vec4<u32>(0u);
        } else {
            let nqd = load_quad(sb, ob, nq, q);
            v[m] = nqd.v;
            i_f[m] = nqd.i_fast;
            i_s[m] = nqd.i_slow;
            r[m] = nqd.r;
            cnt[m] = nqd.count;
        }
    }
    load_xs(lid, sb + 4u * nq, job.t_start == 0u);
    begin_dispatch(lid);

    var s = 0u;
    for (; s < job.k_steps; s++) {
        let t = job.t_start + s;
        let buf = t & 1u;
        // ---- A: integrate and fire
        let in_base = (trial_local * job.steps + t) * job.c_in;
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q >= nq {
                continue;
            }
            var cur = i_s[m] + i_f[m];
            for (var ch = 0u; ch < job.c_in; ch++) {
                let u = inputs[in_base + ch];
                if u != 0.0 {
                    cur = cur + u * inst[pb + (8u + ch) * nq + q];
                }
            }
            var vv = lif_membrane(v[m], cur, inst[pb + q], job.v_rest, job.bias);
            i_f[m] = i_f[m] * inst[pb + 2u * nq + q];
            i_s[m] = i_s[m] * inst[pb + 4u * nq + q];
            var rr = r[m] * inst[pb + 6u * nq + q];
            if noise_std > 0.0 {
                let z = normal4_from_words(philox(vec4<u32>(index, STREAM_NOISE, trial, t * nq + q), key));
                vv = vv + noise_std * z;
            }
            let vth = inst[pb + nq + q];
            vv = select(vv, vec4<f32>(0.0), vth >= vec4<f32>(SILENT_TH));
            let fired = lif_fire(q, buf, vv, rr, vth, job.v_reset, inst[pb + 7u * nq + q]);
            vv = fired.v;
            rr = fired.r;
            cnt[m] = cnt[m] + fired.one;
            v[m] = vv;
            r[m] = rr;
            if !shared_out {
                state[sb + 3u * nq + q] = rr;
            }
            if (job.flags & F_REC_V) != 0u {
                let o = ob + job.off_v + t * 4u * nq + 4u * q;
                out[o] = bitcast<u32>(vv.x);
                out[o + 1u] = bitcast<u32>(vv.y);
                out[o + 2u] = bitcast<u32>(vv.z);
                out[o + 3u] = bitcast<u32>(vv.w);
            }
        }
        storageBarrier();
        workgroupBarrier();
        // ---- B: event-driven propagation and readout
        clear_mask(lid, buf ^ 1u); // last read in the previous step
        if slow_on || fast_on {
            for (var w = 0u; w < NW; w++) {
                var bits = spike_word(buf, w);
                while bits != 0u {
                    let j = w * 32u + firstTrailingBit(bits);
                    bits = bits & (bits - 1u);
                    for (var m = 0u; m < QPI; m++) {
                        let q = lid + m * WG;
                        if q >= nq {
                            continue;
                        }
                        if slow_on {
                            var ws = net[j * nq + q];
                            if sig_slow != 0.0 {
                                let z = normal4_from_words(philox(vec4<u32>(index, STREAM_W_SLOW, j, q), key));
                                ws = (1.0 + sig_slow * z) * ws;
                            }
                            i_s[m] = i_s[m] + ws * inst[pb + 5u * nq + q];
                        }
                        if fast_on {
                            var wf = net[job.off_fast + j * nq + q];
                            if sig_fast != 0.0 {
                                let z = normal4_from_words(philox(vec4<u32>(index, STREAM_W_FAST, j, q), key));
                                wf = (1.0 + sig_fast * z) * wf;
                            }
                            i_f[m] = i_f[m] + wf * inst[pb + 3u * nq + q];
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
            if shared_out {
                // x~ = x~ e^{-dt/tau_out} + sum_j D_eff[:, j] / tau_out
                var x = xs[kq] * dec_shared;
                for (var w = 0u; w < NW; w++) {
                    var bits = spike_word(buf, w);
                    while bits != 0u {
                        let j = w * 32u + firstTrailingBit(bits);
                        bits = bits & (bits - 1u);
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
                        x = x + d * inv_shared;
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
            for (var m = 0u; m < KPI; m++) {
                let kq = lid + m * WG;
                if kq >= NCQ {
                    continue;
                }
                let x = xs[kq];
                for (var l = 0u; l < 4u; l++) {
                    let k = 4u * kq + l;
                    if k < job.nc {
                        out[ob + job.off_x + t * job.nc + k] = bitcast<u32>(x[l]);
                    }
                }
            }
        }
        if (job.flags & F_REC_SPK) != 0u {
            for (var w = lid; w < NW; w += WG) {
                out[ob + job.off_spk + t * NW + w] = spike_word(buf, w);
            }
        }
    }

    // persist the state for the next dispatch
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            store_quad(sb, ob, nq, q, NeuronQuad(v[m], i_f[m], i_s[m], r[m], cnt[m]));
        }
    }
    store_xs(lid, sb + 4u * nq);
    end_dispatch(lid, ob + job.off_status, job.probe, s, job.t_start);
}
