// The mean update of a mismatch-ensemble trial (CPU twin: the mean in
// `learn::ensemble::ensemble_update` and `apply_mean`): for every element i of W_slow (vec4 of
// [pre][post quad]),
//
//   W[i] += scale * sum_{e kept} dW_e[i]        (scale = 1 / number of kept chips of the trial)
//
// over this chunk's chips e in ascending order; a chunk at a time, so the chunks of a trial add
// their parts in turn. dW has a zero diagonal, so W's stays 0. The host prepends `const WG`.

struct ReduceJob {
    // vec4 elements of W_slow (N nq), chips of this chunk, vec4 per chip's dW, 1 / kept
    len: u32,
    chips: u32,
    stride: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> job: ReduceJob;
// Per chip of the chunk: 1 when its update is kept (its rate stayed within the limit), else 0.
@group(0) @binding(1) var<storage, read> keep: array<u32>;
@group(0) @binding(2) var<storage, read> delta: array<vec4<f32>>;
// The W_slow the mean moves: the shared weights' first N nq vec4 (plain) or the float shadow (QAT).
@group(0) @binding(3) var<storage, read_write> target_w: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn learn_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let step = groups.x * WG;
    for (var i = gid.x; i < job.len; i += step) {
        var m = vec4<f32>(0.0);
        for (var e = 0u; e < job.chips; e++) {
            if keep[e] != 0u {
                m = m + delta[e * job.stride + i];
            }
        }
        target_w[i] = target_w[i] + m * job.scale;
    }
}
