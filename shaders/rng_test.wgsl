// Test kernel for rng.wgsl: for counter i, words[i] = Philox(counter(i), key) and
// normals[i] = normal4(words[i]), with counter(i) = (instance, stream, a0 + i / 7, i % 7 * 977).

struct RngTestParams {
    key: vec2<u32>,
    instance: u32,
    stream: u32,
    a0: u32,
    count: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> tp: RngTestParams;
@group(0) @binding(1) var<storage, read_write> words: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> normals: array<vec4<f32>>;

@compute @workgroup_size(64)
fn rng_test(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= tp.count {
        return;
    }
    let d = philox(vec4<u32>(tp.instance, tp.stream, tp.a0 + i / 7u, (i % 7u) * 977u), tp.key);
    words[i] = d;
    normals[i] = normal4_from_words(d);
}
