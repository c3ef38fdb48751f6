// Training of W_slow by the local rule of Network ADS (docs/design.md §2, "Learning rule"): one
// workgroup per network, K steps per dispatch, W_slow of every network in a storage buffer for
// the whole training. The CPU twin is `learn::rule::Trainer::step` (with `engine::lif_step::step`);
// the nominal network (no mismatch, no noise, nothing silenced), so every neuron constant is one
// scalar. Per step t, in the CPU's order:
//
//   A  I = (I_slow + I_fast) + I_fb + P c(t);  V += dt/tau_mem (V_rest - V + (I + b));
//      I_fast *= e^{-dt/tau_fast};  I_slow *= e^{-dt/tau_slow};  r *= e^{-dt/tau_out}
//      s = V >= V_th + beta a;  V = V_reset, r += 1/tau_out where s; a = rho a + s   (add_input, lif_integrate, lif_fire)
//      r of this step into the workgroup (rs[t & 1])
//   B  for each spiking pre j, ascending: I_fast += W_fast[j][i] / tau_fast, I_slow +=
//      W_slow[j][i] / tau_slow;  x~ = x~ e^{-dt/tau_out} + sum_j D[:, j] / tau_out;
//      e = x(t) - x~ into the workgroup (es)
//   C  per owned neuron: (F e)_i = sum_k F[i][k] e_k (ascending k);  I_fb = k (F e) (used at t+1)
//      for every pre with a = eta r_pre != 0:  W_slow[pre][i] += a (F e)_i;  W_slow[pre][pre] = 0
//
// Invocation `lid` owns neuron quads lid, lid + WG, ... and k-quads likewise. It reads and
// writes only its own columns of W_slow, so the rank-1 update needs no atomics or barriers;
// rs and the masks are double-buffered, so two barriers per step suffice.
// The host prepends `const WG, QPI, KPI, NW, NCQ, NQ`, lif_step.wgsl (the step functions, the
// masks, x~, the state load/store and the loop check) and rule.wgsl (F e, the rank-1 update, the
// end of a dispatch; src/engine/gpu/shaders.rs).

struct LearnJob {
    n: u32,
    nq: u32,
    nc: u32,
    c_in: u32,
    steps: u32,
    t_start: u32,
    k_steps: u32,
    flags: u32,
    net_stride: u32,
    off_d: u32,
    off_ft: u32,
    off_proj: u32,
    state_stride: u32,
    out_stride: u32,
    ws_stride: u32,
    // spike-frequency adaptation: threshold V_th + adapt_beta a, a <- adapt_rho a + s
    adapt_beta: f32,
    v_rest: f32,
    v_reset: f32,
    bias: f32,
    alpha: f32,
    v_th: f32,
    dec_fast: f32,
    inv_fast: f32,
    dec_slow: f32,
    inv_slow: f32,
    dec_out: f32,
    inv_out: f32,
    k_fb: f32,
    eta: f32,
    // trips of the loop check (PROBE_TRIPS) and the status word's offset in a network's `out`
    probe: u32,
    off_status: u32,
    adapt_rho: f32,
}

const L_FAST: u32 = 1u;

@group(0) @binding(0) var<uniform> job: LearnJob;
// Per network (stride net_stride vec4): W_fast [pre][quad] (when L_FAST), Dᵀ [i][k-quad] at
// off_d, Fᵀ [k][quad] at off_ft, the input projection P [ch][quad] at off_proj.
@group(0) @binding(1) var<storage, read> nets: array<vec4<f32>>;
// Per network [t][ch] (stride steps * c_in).
@group(0) @binding(2) var<storage, read> inputs: array<f32>;
// Teacher activations x, per network [t][k-quad] (stride steps * NCQ), padded with 0.
@group(0) @binding(3) var<storage, read> targets: array<vec4<f32>>;
// W_slow per network (stride ws_stride = N nq): [pre][post quad], the matrix the rule writes.
@group(0) @binding(4) var<storage, read_write> plastic: array<vec4<f32>>;
// Per network (stride state_stride): V, I_fast, I_slow, r, a (STATE_BLOCKS blocks of nq), I_fb (nq), x~ (NCQ).
@group(0) @binding(5) var<storage, read_write> state: array<vec4<f32>>;
// Per network (stride out_stride, u32 words): spike counts (4 nq), x~ [t][k] (f32 bits), the
// status word (loop_status).
@group(0) @binding(6) var<storage, read_write> out: array<u32>;

// The input projection for add_input (lif_step.wgsl) and the encoder for project_error (rule.wgsl).
fn input_proj(i: u32) -> vec4<f32> {
    return nets[i];
}

fn encoder(i: u32) -> vec4<f32> {
    return nets[i];
}

// The nominal network's constants for quad q: one value per field; padding neurons never fire.
fn nominal_consts(q: u32) -> QuadConsts {
    let i0 = 4u * q;
    let pad = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u) >= vec4<u32>(job.n);
    let v_th = select(vec4<f32>(job.v_th), vec4<f32>(SILENT_TH), pad);
    return QuadConsts(vec4<f32>(job.alpha), v_th, vec4<f32>(job.dec_fast), vec4<f32>(job.inv_fast),
        vec4<f32>(job.dec_slow), vec4<f32>(job.inv_slow), vec4<f32>(job.dec_out), vec4<f32>(job.inv_out));
}

@compute @workgroup_size(WG)
fn learn(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let g = wid.x;
    let nq = job.nq;
    let nb = g * job.net_stride;
    let sb = g * job.state_stride;
    let ob = g * job.out_stride;
    let wb = g * job.ws_stride;
    let fast_on = (job.flags & L_FAST) != 0u;

    var i_fb: array<vec4<f32>, QPI>;
    var fe: array<vec4<f32>, QPI>;
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            // the host uploads the trial's initial state; the counts start at 0
            nrn[m] = load_quad(sb, ob, nq, q);
            nrn[m].count = select(nrn[m].count, vec4<u32>(0u), job.t_start == 0u);
            i_fb[m] = state[sb + STATE_BLOCKS * nq + q];
        }
    }
    load_xs(lid, sb + (STATE_BLOCKS + 1u) * nq, false);
    begin_dispatch(lid);

    // K steps of the trial; s stays in scope for the loop check
    var s = 0u;
    for (; s < job.k_steps; s++) {
        let t = job.t_start + s;
        let buf = t & 1u;
        // ---- A: integrate and fire (with the feedback current of the previous step)
        let in_base = (g * job.steps + t) * job.c_in;
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q < nq {
                let c = nominal_consts(q);
                let base = (nrn[m].i_slow + nrn[m].i_fast) + i_fb[m];
                let cur = add_input(base, in_base, job.c_in, nb + job.off_proj, nq, q);
                nrn[m] = lif_fire(q, buf, lif_integrate(nrn[m], cur, c, job.v_rest, job.bias), c, job.v_reset, job.adapt_beta, job.adapt_rho);
                rs[buf][q] = nrn[m].r;
            }
        }
        workgroupBarrier();
        // ---- B: event-driven propagation, readout, error
        clear_mask(lid, buf ^ 1u); // last read in the previous step
        // per owned quad, the spikes in ascending order (the CPU's order of additions per neuron)
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q >= nq {
                continue;
            }
            for (var w = 0u; w < NW; w++) {
                var bits = spike_word(buf, w);
                while bits != 0u {
                    let j = pop_spike(&bits, w);
                    if fast_on {
                        nrn[m].i_fast = nrn[m].i_fast + nets[nb + j * nq + q] * job.inv_fast;
                    }
                    nrn[m].i_slow = nrn[m].i_slow + plastic[wb + j * nq + q] * job.inv_slow;
                }
            }
        }
        for (var m = 0u; m < KPI; m++) {
            let kq = lid + m * WG;
            if kq < NCQ {
                // x~ = x~ e^{-dt/tau_out} + sum_j D[:, j] / tau_out;  e = x - x~
                var x = xs[kq] * job.dec_out;
                for (var w = 0u; w < NW; w++) {
                    var bits = spike_word(buf, w);
                    while bits != 0u {
                        x = x + nets[nb + job.off_d + pop_spike(&bits, w) * NCQ + kq] * job.inv_out;
                    }
                }
                xs[kq] = x;
                es[kq] = targets[(g * job.steps + t) * NCQ + kq] - x;
            }
        }
        record_xs(lid, ob + 4u * nq + t * job.nc, job.nc);
        workgroupBarrier();
        // ---- C: F e, the next feedback current, and the rank-1 update of W_slow
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q < nq {
                fe[m] = project_error(nb + job.off_ft, nq, job.nc, q);
                i_fb[m] = job.k_fb * fe[m];
            }
        }
        rank1_update(lid, buf, wb, job.n, nq, job.eta, fe);
    }

    // persist the state and the feedback current for the next dispatch
    end_learn_dispatch(lid, sb, ob, nq, i_fb, ob + job.off_status, job.probe, s, job.t_start);
}
