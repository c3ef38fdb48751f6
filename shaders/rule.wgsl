// The local learning rule's per-step pieces (docs/design.md §2, "Learning rule"), shared by the
// learning kernel (learn.wgsl: the nominal networks' W_slow) and the ensemble learning kernel
// (learn_ensemble.wgsl: each chip's update dW), both compiled with lif_step.wgsl and this file
// prepended (src/engine/gpu/shaders.rs). The CPU twin is `learn::rule::Trainer::forward_with`
// and `update`. It uses the kernel's `plastic` (read_write vec4 storage: the matrix the rule
// writes, [pre][post quad] per network or chip), `state`, and `encoder(i)` (vec4 i of the
// kernel's buffer holding Fᵀ [k][quad]); it binds nothing itself.

// r of this and the previous step (double-buffered) and e = x - x~ of this step.
var<workgroup> rs: array<array<vec4<f32>, NQ>, 2>;
var<workgroup> es: array<vec4<f32>, NCQ>;

// (F e) of quad q: sum_k F[i][k] e_k in ascending k, with Fᵀ [k][quad] from vec4 f0.
fn project_error(f0: u32, nq: u32, nc: u32, q: u32) -> vec4<f32> {
    var f = vec4<f32>(0.0);
    for (var kq = 0u; kq < NCQ; kq++) {
        let err = es[kq];
        for (var l = 0u; l < 4u; l++) {
            let k = 4u * kq + l;
            if k < nc {
                f = f + encoder(f0 + k * nq + q) * err[l];
            }
        }
    }
    return f;
}

// The rank-1 update plastic[w0 + pre nq + q] += eta r_pre (F e)_q for every pre with
// eta r_pre != 0 (r of this step, rs[buf]), on this invocation's quads; the diagonal stays 0.
fn rank1_update(lid: u32, buf: u32, w0: u32, n: u32, nq: u32, eta: f32, fe: array<vec4<f32>, QPI>) {
    for (var pre = 0u; pre < n; pre++) {
        let a = eta * rs[buf][pre / 4u][pre % 4u];
        if a == 0.0 {
            continue;
        }
        for (var m = 0u; m < QPI; m++) {
            let q = lid + m * WG;
            if q >= nq {
                continue;
            }
            let o = w0 + pre * nq + q;
            var w = plastic[o] + a * fe[m];
            if q == pre / 4u {
                w[pre % 4u] = 0.0;
            }
            plastic[o] = w;
        }
    }
}

// The end of a learning dispatch: the neurons' state, the feedback current (block STATE_BLOCKS
// from sb) and x~ (the block after it) into `state`, then the loop check into out[st].
fn end_learn_dispatch(lid: u32, sb: u32, ob: u32, nq: u32, i_fb: array<vec4<f32>, QPI>, st: u32, probe: u32, s: u32, t_start: u32) {
    store_state(lid, sb, ob, nq);
    for (var m = 0u; m < QPI; m++) {
        let q = lid + m * WG;
        if q < nq {
            state[sb + STATE_BLOCKS * nq + q] = i_fb[m];
        }
    }
    store_xs(lid, sb + (STATE_BLOCKS + 1u) * nq);
    end_dispatch(lid, st, probe, s, t_start);
}
