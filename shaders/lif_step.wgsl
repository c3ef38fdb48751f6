// The LIF step shared by the ensemble kernel (lif_ensemble.wgsl) and the learning kernel
// (learn.wgsl), both compiled with this file prepended (src/engine/gpu/shaders.rs). It uses the
// host's constants WG, NW and NCQ and the storage arrays `state` (vec4) and `out` (u32) that
// both kernels declare alike; it binds nothing itself. The CPU twin is `engine::cpu::step`; names
// follow it.

// V_th of silenced and padding neurons (f32::MAX on the host): never spike, held at 0.
const SILENT_TH: f32 = 3.0e38;

// Spike masks of this and the previous step (bit i % 32 of word i / 32) and the decoded x~.
var<workgroup> mask: array<array<atomic<u32>, NW>, 2>;
var<workgroup> xs: array<vec4<f32>, NCQ>;

// Step 2 of `engine::cpu::step` for one quad: V += dt/tau_mem (V_rest - V + (I + b)).
fn lif_membrane(v: vec4<f32>, cur: vec4<f32>, alpha: vec4<f32>, v_rest: f32, bias: f32) -> vec4<f32> {
    return v + alpha * ((vec4<f32>(v_rest) - v) + (cur + bias));
}

struct Fired {
    v: vec4<f32>,
    r: vec4<f32>,
    // 1 where the neuron spiked
    one: vec4<u32>,
}

// Step 5 for quad q: s = V >= V_th; V = V_reset, r += 1/tau_out where s; spike bits into mask[buf].
fn lif_fire(q: u32, buf: u32, vv: vec4<f32>, rr: vec4<f32>, vth: vec4<f32>, v_reset: f32, inv_out: vec4<f32>) -> Fired {
    let spk = vv >= vth;
    let one = select(vec4<u32>(0u), vec4<u32>(1u), spk);
    let bits = one.x | (one.y << 1u) | (one.z << 2u) | (one.w << 3u);
    if bits != 0u {
        atomicOr(&mask[buf][q / 8u], bits << ((q % 8u) * 4u));
    }
    return Fired(select(vv, vec4<f32>(v_reset), spk), rr + select(vec4<f32>(0.0), inv_out, spk), one);
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


// ---- The state between dispatches. Both kernels keep, per pair or network, V, I_fast, I_slow
// and r as blocks of nq quads from `sb` in `state` (then kernel-specific blocks), x~ from `xb`,
// and the spike counts as u32 words 4q.. from `ob` in `out`.
struct NeuronQuad {
    v: vec4<f32>,
    i_fast: vec4<f32>,
    i_slow: vec4<f32>,
    r: vec4<f32>,
    count: vec4<u32>,
}

fn load_quad(sb: u32, ob: u32, nq: u32, q: u32) -> NeuronQuad {
    let c0 = ob + 4u * q;
    return NeuronQuad(
        state[sb + q],
        state[sb + nq + q],
        state[sb + 2u * nq + q],
        state[sb + 3u * nq + q],
        vec4<u32>(out[c0], out[c0 + 1u], out[c0 + 2u], out[c0 + 3u]),
    );
}

fn store_quad(sb: u32, ob: u32, nq: u32, q: u32, n: NeuronQuad) {
    state[sb + q] = n.v;
    state[sb + nq + q] = n.i_fast;
    state[sb + 2u * nq + q] = n.i_slow;
    state[sb + 3u * nq + q] = n.r;
    let c0 = ob + 4u * q;
    out[c0] = n.count.x;
    out[c0 + 1u] = n.count.y;
    out[c0 + 2u] = n.count.z;
    out[c0 + 3u] = n.count.w;
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
