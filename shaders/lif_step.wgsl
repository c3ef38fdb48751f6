// The LIF step shared by the ensemble kernel (lif_ensemble.wgsl) and the learning kernel
// (learn.wgsl), both compiled with this file prepended (src/engine/gpu/shaders.rs). It uses the
// host's constants WG, QPI, KPI, NW, NCQ and STATE_BLOCKS, the storage arrays `inputs` (f32), `state` (vec4)
// and `out` (u32) that both kernels declare alike, and the kernel's `input_proj(i)` (vec4 i of
// its buffer holding the input projection); it binds nothing itself. The CPU twin is
// `engine::lif_step::step` (step numbers below are its, docs/design.md §2); names follow it.

// V_th of silenced and padding neurons (f32::MAX on the host): never spike, held at 0.
const SILENT_TH: f32 = 3.0e38;

// Spike masks of this and the previous step (bit i % 32 of word i / 32) and the decoded x~.
var<workgroup> mask: array<array<atomic<u32>, NW>, 2>;
var<workgroup> xs: array<vec4<f32>, NCQ>;

// The per-neuron constants of one quad (twin of `NeuronConsts`' per-neuron vectors, same names):
// alpha = dt/tau_mem, V_th, and e^{-dt/tau}, 1/tau of the fast and slow synapses and the readout.
struct QuadConsts {
    alpha: vec4<f32>,
    v_th: vec4<f32>,
    decay_fast: vec4<f32>,
    inv_tau_fast: vec4<f32>,
    decay_slow: vec4<f32>,
    inv_tau_slow: vec4<f32>,
    decay_out: vec4<f32>,
    inv_tau_out: vec4<f32>,
}

// The dynamic state of one quad (twin of `State`'s per-neuron vectors) and its spike counts.
struct NeuronQuad {
    v: vec4<f32>,
    i_fast: vec4<f32>,
    i_slow: vec4<f32>,
    r: vec4<f32>,
    adapt: vec4<f32>,
    count: vec4<u32>,
}

// `load_quad`/`store_quad` keep STATE_BLOCKS (host constant, = 5) blocks of nq quads from `sb`:
// V, I_fast, I_slow, r, a. A kernel's own blocks start at sb + STATE_BLOCKS * nq.

// The quads this invocation owns (lid, lid + WG, ...), held in registers within a dispatch.
var<private> nrn: array<NeuronQuad, QPI>;

// ---- Extra synapse types (`Network::extra_synapses`, docs/design.md "Synapse types"). The host
// sets KX, their number (0 for Network ADS and in the learning kernels), and KXA = max(KX, 1)
// (WGSL has no zero-length array). With KX = 0 every loop over k below has no trip and a
// constant bound, so the compiler drops it: the kernels are the ones without the types.
// The currents I_k of the owned quads, in registers within a dispatch like `nrn`
// (nrx[m][k] is quad m's I_k), in `state` between dispatches (KX blocks of nq quads from xsb).
var<private> nrx: array<array<vec4<f32>, KXA>, QPI>;

// Step 1's recurrent current with the extra types of owned quad m: cur + I_0 + I_1 + ...
// (ascending k, the CPU's order of additions).
fn add_extra_currents(cur: vec4<f32>, m: u32) -> vec4<f32> {
    var c = cur;
    for (var k = 0u; k < KX; k++) {
        c = c + nrx[m][k]; // I += I_k
    }
    return c;
}

// Owned quad m's extra currents at the start of a dispatch: 0 at the start of the trial
// (`fresh`), else as the previous dispatch left them in block xsb of `state`.
fn load_extra(m: u32, xsb: u32, nq: u32, q: u32, fresh: bool) {
    for (var k = 0u; k < KX; k++) {
        nrx[m][k] = select(state[xsb + k * nq + q], vec4<f32>(0.0), fresh); // I_k(0) = 0
    }
}

// Every owned quad's extra currents into block xsb of `state` (the end of a dispatch).
fn store_extra(lid: u32, xsb: u32, nq: u32) {
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            for (var k = 0u; k < KX; k++) {
                state[xsb + k * nq + q] = nrx[m][k];
            }
        }
    }
}

// Step 1's input term for quad q: cur + sum_ch c_ch(t) P[ch][q], with c(t) = inputs[in_base..]
// and P [ch][quad] from vec4 p0 of the kernel's projection buffer; silent channels skipped.
fn add_input(cur: vec4<f32>, in_base: u32, c_in: u32, p0: u32, nq: u32, q: u32) -> vec4<f32> {
    var c = cur;
    for (var ch = 0u; ch < c_in; ch++) {
        let u = inputs[in_base + ch];
        if u != 0.0 {
            c = c + u * input_proj(p0 + ch * nq + q);
        }
    }
    return c;
}

// Step 2 for one quad: V += dt/tau_mem (V_rest - V + (I + b)); I_fast, I_slow and r decay.
fn lif_integrate(n: NeuronQuad, cur: vec4<f32>, c: QuadConsts, v_rest: f32, bias: f32) -> NeuronQuad {
    let v = n.v + c.alpha * ((vec4<f32>(v_rest) - n.v) + (cur + bias));
    return NeuronQuad(v, n.i_fast * c.decay_fast, n.i_slow * c.decay_slow, n.r * c.decay_out, n.adapt, n.count);
}

// Step 5 for quad q: s = V >= V_th + beta a; V = V_reset, r += 1/tau_out, count += 1 where s;
// the spike bits into mask[buf]; then a = rho a + s when beta != 0 (else a stays 0 and the
// threshold is V_th exactly, as on the CPU).
fn lif_fire(q: u32, buf: u32, n: NeuronQuad, c: QuadConsts, v_reset: f32, beta: f32, rho: f32) -> NeuronQuad {
    let spk = n.v >= c.v_th + beta * n.adapt;
    let one = select(vec4<u32>(0u), vec4<u32>(1u), spk);
    let bits = one.x | (one.y << 1u) | (one.z << 2u) | (one.w << 3u);
    if bits != 0u {
        atomicOr(&mask[buf][q / 8u], bits << ((q % 8u) * 4u));
    }
    let v = select(n.v, vec4<f32>(v_reset), spk);
    let r = n.r + select(vec4<f32>(0.0), c.inv_tau_out, spk);
    let a = select(n.adapt, rho * n.adapt + select(vec4<f32>(0.0), vec4<f32>(1.0), spk), beta != 0.0);
    return NeuronQuad(v, n.i_fast, n.i_slow, r, a, n.count + one);
}

// Step 6's walk over the spikes of one mask word: removes the lowest set bit of `bits` (a copy of
// spike_word(buf, w)) and returns its neuron, so the spikes come out ascending.
fn pop_spike(bits: ptr<function, u32>, w: u32) -> u32 {
    let j = w * 32u + firstTrailingBit(*bits);
    *bits = *bits & (*bits - 1u);
    return j;
}

// Zeroes mask[b] (all invocations of the workgroup together).
fn clear_mask(lid: u32, b: u32) {
    for (var w = lid; w < NW; w += WG) {
        atomicStore(&mask[b][w], 0u);
    }
}

// Word w of mask[buf]; the spiking neurons are w * 32 + its set bits (lowest first).
fn spike_word(buf: u32, w: u32) -> u32 {
    return atomicLoad(&mask[buf][w]);
}

// ---- Loop check (src/engine/gpu/dispatch.rs). llvmpipe gives an invocation 65535 loop
// iterations in all, then ends every loop after its current iteration without a word. The
// host plans K to stay inside that budget; this checks it. A loop of `trips` (>= 2, from the
// uniform block so that it cannot be unrolled) trips completes only while the budget lasts.
const NOT_CUT: u32 = 0xFFFFFFFFu;
var<workgroup> loop_cut: atomic<u32>;

// Before the first barrier.
fn loop_check_init(lid: u32) {
    if lid == 0u {
        atomicStore(&loop_cut, NOT_CUT);
    }
}

// At the very end, in uniform control flow: NOT_CUT if no invocation of the workgroup lost a
// loop iteration, else the fewest steps an invocation's time loop completed.
fn loop_check(trips: u32, steps_done: u32) -> u32 {
    var n = 0u;
    for (var z = 0u; z < trips; z++) {
        n++;
    }
    if n != trips {
        atomicMin(&loop_cut, steps_done);
    }
    workgroupBarrier();
    return atomicLoad(&loop_cut);
}

// The sticky status word of a job: 0 while no dispatch was cut, else 1 + the step at which the
// first cut dispatch's time loop ended.
fn loop_status(prev: u32, first_dispatch: bool, t_start: u32, cut: u32) -> u32 {
    let before = select(prev, 0u, first_dispatch);
    return select(before, 1u + t_start + cut, before == 0u && cut != NOT_CUT);
}


// ---- The state between dispatches. Both kernels keep, per pair or network, V, I_fast, I_slow,
// r and a as STATE_BLOCKS blocks of nq quads from `sb` in `state` (then kernel-specific blocks), x~ from `xb`,
// and the spike counts as u32 words 4q.. from `ob` in `out`.
fn load_quad(sb: u32, ob: u32, nq: u32, q: u32) -> NeuronQuad {
    let c0 = ob + 4u * q;
    return NeuronQuad(
        state[sb + q],
        state[sb + nq + q],
        state[sb + 2u * nq + q],
        state[sb + 3u * nq + q],
        state[sb + 4u * nq + q],
        vec4<u32>(out[c0], out[c0 + 1u], out[c0 + 2u], out[c0 + 3u]),
    );
}

fn store_quad(sb: u32, ob: u32, nq: u32, q: u32, n: NeuronQuad) {
    state[sb + q] = n.v;
    state[sb + nq + q] = n.i_fast;
    state[sb + 2u * nq + q] = n.i_slow;
    state[sb + 3u * nq + q] = n.r;
    state[sb + 4u * nq + q] = n.adapt;
    let c0 = ob + 4u * q;
    out[c0] = n.count.x;
    out[c0 + 1u] = n.count.y;
    out[c0 + 2u] = n.count.z;
    out[c0 + 3u] = n.count.w;
}

// Every owned quad into `state` and `out` (the end of a dispatch).
fn store_state(lid: u32, sb: u32, ob: u32, nq: u32) {
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            store_quad(sb, ob, nq, q, nrn[m]);
        }
    }
}

// x~ of the owned k-quads into out[o0 + k] (f32 bits): the record of one step.
fn record_xs(lid: u32, o0: u32, nc: u32) {
    for (var m = 0u; m < KPI; m++) {
        let kq = lid + m * WG;
        if kq >= NCQ {
            continue;
        }
        let x = xs[kq];
        for (var l = 0u; l < 4u; l++) {
            let k = 4u * kq + l;
            if k < nc {
                out[o0 + k] = bitcast<u32>(x[l]);
            }
        }
    }
}

// x~ of this invocation's k-quads from `xb` (zero when `fresh`), before the first barrier.
fn load_xs(lid: u32, xb: u32, fresh: bool) {
    for (var m = 0u; m < KPI; m++) {
        let kq = lid + m * WG;
        if kq < NCQ {
            xs[kq] = select(state[xb + kq], vec4<f32>(0.0), fresh);
        }
    }
}

fn store_xs(lid: u32, xb: u32) {
    for (var m = 0u; m < KPI; m++) {
        let kq = lid + m * WG;
        if kq < NCQ {
            state[xb + kq] = xs[kq];
        }
    }
}

// Start of a dispatch: both spike masks cleared, the loop check armed, then a barrier.
fn begin_dispatch(lid: u32) {
    clear_mask(lid, 0u);
    clear_mask(lid, 1u);
    loop_check_init(lid);
    workgroupBarrier();
}

// End of a dispatch (uniform control flow): the loop check into the status word out[st].
fn end_dispatch(lid: u32, st: u32, trips: u32, steps_done: u32, t_start: u32) {
    let cut = loop_check(trips, steps_done);
    if lid == 0u {
        out[st] = loop_status(out[st], t_start == 0u, t_start, cut);
    }
}
