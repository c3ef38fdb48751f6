// Ensemble step of the LIF network (Network ADS and kin): one workgroup per (instance, trial)
// pair, K Euler steps per dispatch, state kept in registers within a dispatch and in storage
// between dispatches. The CPU twin is `engine::lif_step::step`; the step order is the same:
//
//   A  I = I_slow + I_fast + sum_k I_k + P c(t) + b   (P: folded input projection, N x C;
//                                                       I_k: the KX extra synapse types)
//      V += dt/tau_mem (V_rest - V + I);  I_fast *= e^{-dt/tau_fast};  I_slow *= e^{-dt/tau_slow}
//      I_k *= e^{-dt/tau_k};  r *= e^{-dt/tau_out};  V += noise_std z;  silenced: V = 0
//      s = V >= V_th;  V = V_reset, r += 1/tau_out where s;  spike bit set in the workgroup mask
//   B  for each spiking pre j, ascending (mask words, lowest bit first):
//        I_fast[i] += W_fast_eff[j -> i] / tau_fast_i,  I_slow[i] += W_slow_eff[j][i] / tau_slow_i
//        I_k[i] += W_k_eff[j][i] / tau_k,i  (each extra type k with a nonzero matrix)
//      x~ = x~ e^{-dt/tau_out} + sum_j D_eff[:, j] / tau_out      (shared tau_out: per spike)
//      x~ = D_eff r                                               (per-neuron tau_out: dense)
//   C  y = W_outᵀ x~ (sequential over k, like `network::readout`); optional records.
//
// Effective weights are procedural (chip.wgsl).
// Neuron i lives in quad q = i/4 (vec4 lanes); invocation `lid` owns quads lid, lid + WG, ...
// The host prepends `const WG, QPI, KPI, NW, NCQ, KX, KXA` (workgroup size, quads and k-quads
// per invocation, mask words, k-quads, extra synapse types), rng.wgsl, lif_step.wgsl and
// chip.wgsl (src/engine/gpu/shaders.rs).

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
    // the extra synapse types' matrices W_k [pre][quad] at off_extra + k N nq of `net`
    off_extra: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const F_SLOW: u32 = 1u;
const F_FAST: u32 = 2u;
const F_REC_X: u32 = 4u;
const F_REC_SPK: u32 = 8u;
const F_REC_V: u32 = 16u;
// bit F_EXTRA_SHIFT + k: extra synapse type k's matrix is nonzero
const F_EXTRA_SHIFT: u32 = 5u;

@group(0) @binding(0) var<uniform> job: Job;
// Shared nominal weights, vec4 rows: W_slow [pre][quad], W_fast [pre][quad] at off_fast,
// W_k [pre][quad] of each extra type at off_extra + k N nq, D_t [i][k-quad] at off_d,
// W_out_t [o][k-quad] at off_wout.
@group(0) @binding(1) var<storage, read> net: array<vec4<f32>>;
// Per instance (stride inst_stride): an InstanceInfo (2 vec4), the QuadConsts as 8 blocks of nq
// quads (field-major, in the struct's order), the input projection [ch][quad] (C x nq), then
// per extra type e^{-dt/tau_k} and 1/tau_k (2 KX blocks of nq).
@group(0) @binding(2) var<storage, read> inst: array<vec4<f32>>;
// Inputs [trial][t][ch].
@group(0) @binding(3) var<storage, read> inputs: array<f32>;
// Per pair (stride state_stride): V, I_fast, I_slow, r, a (STATE_BLOCKS blocks of nq), x~ (NCQ),
// the extra currents I_k (KX blocks of nq).
@group(0) @binding(4) var<storage, read_write> state: array<vec4<f32>>;
// Per pair (stride out_stride, u32 words): spike counts (4 nq), y [t][o], x~ [t][k],
// spike mask words [t][w], V [t][4 nq], the status word (loop_status).
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

// The input projection for add_input (lif_step.wgsl).
fn input_proj(i: u32) -> vec4<f32> {
    return inst[i];
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
    // the extra types with a nonzero matrix (bit k), their chip constants and their currents
    let extra_on = job.flags >> F_EXTRA_SHIFT;
    let xb = pb + (8u + job.c_in) * nq;
    let xsb = sb + STATE_BLOCKS * nq + NCQ;

    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            nrn[m] = chip_quad(job.t_start, sb, ob, pb, nq, q, index, trial, key, job.v_reset);
            load_extra(m, xsb, nq, q, job.t_start == 0u);
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
            // I = (I_slow + I_fast) + sum_k I_k + P c(t)
            let cur = add_input(add_extra_currents(nrn[m].i_slow + nrn[m].i_fast, m), in_base, job.c_in, pb + 8u * nq, nq, q);
            var n = noise_and_silence(lif_integrate(nrn[m], cur, c, job.v_rest, job.bias), c, info, q, nq, trial, t, key);
            decay_extra(m, xb, nq, q); // I_k *= e^{-dt/tau_k}, after I used the old I_k
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
        if slow_on || fast_on || extra_on != 0u {
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
                        let ws = select(vec4<f32>(0.0), net[j * nq + q], slow_on);
                        nrn[m] = propagate_spike(nrn[m], ws, slow_on, fast_on, j, q, nq, pb, info, key, job.off_fast);
                        // I_k[i] += W_k_eff[j][i] / tau_k,i
                        propagate_extra(m, j, q, nq, job.n, xb, extra_on, job.off_extra, info, key);
                    }
                }
            }
        }
        for (var m = 0u; m < KPI; m++) {
            let kq = lid + m * WG;
            if kq < NCQ {
                // step 7
                xs[kq] = decode_xs(xs[kq], kq, buf, sb + 3u * nq, nq, info, key, job.off_d);
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
    store_extra(lid, xsb, nq);
    end_dispatch(lid, ob + job.off_status, job.probe, s, job.t_start);
}
