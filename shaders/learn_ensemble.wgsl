// Mismatch-ensemble training of W_slow by the local rule (docs/design.md §2, "Mismatch-ensemble
// training"): one workgroup per simulated chip, all chips running the same training trial from
// the same W_slow, K steps per dispatch. The CPU twin is `learn::ensemble::chip_update`. Each
// chip has its own neuron constants, input projection, decoder, encoder F_chip, effective
// recurrent weights, noise and silenced neurons (chip.wgsl), and accumulates its own update
//
//   dW[pre][post] = sum_t eta r_pre (F_chip e)_post    (diagonal kept 0)
//
// in its `delta` block. Per step t, in the CPU's order:
//
//   A  I = (I_slow + I_fast) + I_fb + P c(t);  V += dt/tau_mem (V_rest - V + (I + b));  decays;
//      V += noise_std z;  silenced: V = 0;  s = V >= V_th + beta a;  V = V_reset, r += 1/tau_out
//      where s;  a = rho a + s;  r of this step into the workgroup (rs[t & 1])
//   B  for each spiking pre j, ascending:
//        I_slow[i] += W_slow_eff[j][i] / tau_slow_i,  W_slow_eff = (W_slow + dW) o G  (online)
//                                                     W_slow_eff = W_slow o G         (offline)
//        I_fast[i] += W_fast_eff[j][i] / tau_fast_i
//      x~ of this step (decode_xs);  e = x(t) - x~ into the workgroup (es)
//   C  per owned neuron: (F_chip e)_i = sum_k F_chip[i][k] e_k (ascending k);  I_fb = k (F e),
//      used at t+1;  for every pre with a = eta r_pre != 0:  dW[pre][i] += a (F e)_i, dW[pre][pre] = 0
//
// G are the chip's W_slow factors (1 + sigma z), regenerated from Philox (chip.wgsl). Online
// (plain ensemble training) the chip runs on its own updated weights as it learns, like the CPU's
// `chip_update(.., online = true)`; offline (quantisation-aware) it runs the fixed W_slow of the
// trial. The mean of the kept chips' dW is added by learn_reduce.wgsl after the trial.
// Invocation `lid` owns neuron quads lid, lid + WG, ... and k-quads likewise, and writes only its
// own columns of dW, so the update needs no atomics.
// The host prepends `const WG, QPI, KPI, NW, NCQ, NQ, STATE_BLOCKS`, rng.wgsl, lif_step.wgsl,
// chip.wgsl and rule.wgsl (src/engine/gpu/shaders.rs).

struct LearnEnsembleJob {
    n: u32,
    nq: u32,
    nc: u32,
    c_in: u32,
    // the trial's index: it keys the initial V and the noise, as on the CPU
    trial: u32,
    steps: u32,
    t_start: u32,
    k_steps: u32,
    flags: u32,
    seed_lo: u32,
    seed_hi: u32,
    off_fast: u32,
    off_d: u32,
    inst_stride: u32,
    // F_chip transposed [k][quad] within a chip's block
    off_f: u32,
    state_stride: u32,
    out_stride: u32,
    delta_stride: u32,
    v_rest: f32,
    v_reset: f32,
    bias: f32,
    k_fb: f32,
    eta: f32,
    // spike-frequency adaptation: threshold V_th + adapt_beta a, a <- adapt_rho a + s
    adapt_beta: f32,
    adapt_rho: f32,
    // trips of the loop check (PROBE_TRIPS) and the status word's offset in a chip's `out`
    probe: u32,
    off_status: u32,
}

const L_FAST: u32 = 1u;
const L_ONLINE: u32 = 2u;

@group(0) @binding(0) var<uniform> job: LearnEnsembleJob;
// Shared nominal weights, vec4 rows: W_slow [pre][quad] (the trial's), W_fast [pre][quad] at
// off_fast (when L_FAST), D_t [i][k-quad] at off_d.
@group(0) @binding(1) var<storage, read> net: array<vec4<f32>>;
// Per chip (stride inst_stride): its block (chip.wgsl), then F_chipᵀ [k][quad] at off_f.
@group(0) @binding(2) var<storage, read> inst: array<vec4<f32>>;
// The trial's input [t][ch], the same for every chip.
@group(0) @binding(3) var<storage, read> inputs: array<f32>;
// The teacher's activations x [t][k-quad], padded with 0.
@group(0) @binding(4) var<storage, read> targets: array<vec4<f32>>;
// Per chip (stride state_stride): V, I_fast, I_slow, r, a (STATE_BLOCKS blocks of nq), I_fb (nq), x~ (NCQ).
@group(0) @binding(5) var<storage, read_write> state: array<vec4<f32>>;
// Per chip (stride out_stride, u32 words): spike counts (4 nq), x~ [t][k] (f32 bits), the status word.
@group(0) @binding(6) var<storage, read_write> out: array<u32>;
// Per chip (stride delta_stride = N nq): its accumulated update dW [pre][post quad], the matrix
// the rule writes.
@group(0) @binding(7) var<storage, read_write> plastic: array<vec4<f32>>;

// The input projection for add_input (lif_step.wgsl) and the encoder for project_error (rule.wgsl).
fn input_proj(i: u32) -> vec4<f32> {
    return inst[i];
}

fn encoder(i: u32) -> vec4<f32> {
    return inst[i];
}

@compute @workgroup_size(WG)
fn learn_ensemble(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let e = wid.x;
    let ib = e * job.inst_stride;
    let info = instance_info(ib);
    let index = info.index;
    let nq = job.nq;
    let pb = ib + 2u;
    let fb = ib + job.off_f;
    let sb = e * job.state_stride;
    let ob = e * job.out_stride;
    let db = e * job.delta_stride;
    let key = vec2<u32>(job.seed_lo, job.seed_hi);
    let fast_on = (job.flags & L_FAST) != 0u;
    let online = (job.flags & L_ONLINE) != 0u;

    var i_fb: array<vec4<f32>, QPI>;
    var fe: array<vec4<f32>, QPI>;
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            nrn[m] = chip_quad(job.t_start, sb, ob, pb, nq, q, index, job.trial, key, job.v_reset);
            // the feedback current starts at 0 with the trial
            i_fb[m] = select(vec4<f32>(0.0), state[sb + STATE_BLOCKS * nq + q], job.t_start != 0u);
        }
    }
    load_xs(lid, sb + (STATE_BLOCKS + 1u) * nq, job.t_start == 0u);
    begin_dispatch(lid);

    var s = 0u;
    for (; s < job.k_steps; s++) {
        let t = job.t_start + s;
        let buf = t & 1u;
        // ---- A: integrate and fire (with the feedback current of the previous step)
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q >= nq {
                continue;
            }
            let c = quad_consts(pb, nq, q);
            let base = (nrn[m].i_slow + nrn[m].i_fast) + i_fb[m];
            let cur = add_input(base, t * job.c_in, job.c_in, pb + 8u * nq, nq, q);
            var n = noise_and_silence(lif_integrate(nrn[m], cur, c, job.v_rest, job.bias), c, info, q, nq, job.trial, t, key);
            n = lif_fire(q, buf, n, c, job.v_reset, job.adapt_beta, job.adapt_rho);
            nrn[m] = n;
            rs[buf][q] = n.r;
            if !info.shared_out {
                state[sb + 3u * nq + q] = n.r;
            }
        }
        storageBarrier();
        workgroupBarrier();
        // ---- B: event-driven propagation on the chip's weights, its x~ and its error
        clear_mask(lid, buf ^ 1u); // last read in the previous step
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q >= nq {
                continue;
            }
            // the spikes in ascending order (the CPU's order of additions per neuron)
            for (var w = 0u; w < NW; w++) {
                var bits = spike_word(buf, w);
                while bits != 0u {
                    let j = pop_spike(&bits, w);
                    // online, the chip runs on its own W_slow + dW of this trial
                    var ws = net[j * nq + q];
                    if online {
                        ws = ws + plastic[db + j * nq + q];
                    }
                    nrn[m] = propagate_spike(nrn[m], ws, true, fast_on, j, q, nq, pb, info, key, job.off_fast);
                }
            }
        }
        for (var m = 0u; m < KPI; m++) {
            let kq = lid + m * WG;
            if kq < NCQ {
                let x = decode_xs(xs[kq], kq, buf, sb + 3u * nq, nq, info, key, job.off_d);
                xs[kq] = x;
                es[kq] = targets[t * NCQ + kq] - x;
            }
        }
        record_xs(lid, ob + 4u * nq + t * job.nc, job.nc);
        // r in `state` (per-neuron tau_out) is read by every invocation above and written by its
        // owner in the next step's A; es is read by every invocation below
        storageBarrier();
        workgroupBarrier();
        // ---- C: F_chip e, the next feedback current, and the rank-1 update of dW
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q < nq {
                fe[m] = project_error(fb, nq, job.nc, q);
                i_fb[m] = job.k_fb * fe[m];
            }
        }
        rank1_update(lid, buf, db, job.n, nq, job.eta, fe);
    }

    // persist the state and the feedback current for the next dispatch
    end_learn_dispatch(lid, sb, ob, nq, i_fb, ob + job.off_status, job.probe, s, job.t_start);
}
