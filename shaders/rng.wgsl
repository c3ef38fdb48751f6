// Counter-based random numbers, bit for bit the twin of src/chip/rng.rs (read its module docs).
//
//   key     = (seed lo, seed hi)
//   counter = (instance, stream, a, b)
//   words   = Philox4x32-10(counter, key)
//   uniform = ((u >> 9) + 0.5) * 2^-23                      strictly inside (0, 1)
//   normal  = Box-Muller: rho = sqrt(-2 ln u1), (rho cos 2 pi u2, rho sin 2 pi u2),
//             with the same portable ln / cos / sin polynomials and operation order as the CPU.
// Every f32 constant is written as the exact f32 the Rust code uses (hex float literals).

const STREAM_W_SLOW: u32 = 7u;
const STREAM_W_FAST: u32 = 8u;
const STREAM_W_D: u32 = 6u;
const STREAM_INIT_V: u32 = 10u;
const STREAM_NOISE: u32 = 11u;
// W_extra_k's factors: stream w_extra(k) = STREAM_W_EXTRA0 + 2k (`Stream::w_extra`; the
// per-neuron tau_k, stream 16 + 2k, is drawn on the host)
const STREAM_W_EXTRA0: u32 = 17u;

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// (hi, lo) of the 64-bit product a * b, from 16-bit halves (WGSL has no u64).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let cross = (ll >> 16u) + (hl & 0xFFFFu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    return vec2<u32>(hi, a * b);
}

// One Philox round: c = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0].
fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let p0 = mulhilo(PHILOX_M0, c.x);
    let p1 = mulhilo(PHILOX_M1, c.z);
    return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

// Philox4x32-10, the key bumped by (W0, W1) before each round after the first. The ten rounds
// are written out: a loop here would spend llvmpipe's per-invocation loop budget at every
// random draw (src/engine/gpu/dispatch.rs).
fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    let w = vec2<u32>(PHILOX_W0, PHILOX_W1);
    var c = philox_round(counter, key);
    c = philox_round(c, key + w);
    c = philox_round(c, key + 2u * w);
    c = philox_round(c, key + 3u * w);
    c = philox_round(c, key + 4u * w);
    c = philox_round(c, key + 5u * w);
    c = philox_round(c, key + 6u * w);
    c = philox_round(c, key + 7u * w);
    c = philox_round(c, key + 8u * w);
    return philox_round(c, key + 9u * w);
}

fn to_uniform(u: u32) -> f32 {
    return (f32(u >> 9u) + 0.5) * 0x1p-23f;
}

// ln u = e ln2 + 2 s (1 + s^2/3 + s^4/5 + s^6/7 + s^8/9),  u = m 2^e, s = (m - 1)/(m + 1)
fn ln_f32(u: f32) -> f32 {
    let bits = bitcast<u32>(u);
    let adj = bits - 0x3F3504F3u;
    let e = bitcast<i32>(adj) >> 23u;
    let m = bitcast<f32>(bits - (bitcast<u32>(e) << 23u));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = 1.0 + s2 * (0x1.555556p-2f + s2 * (0x1.99999ap-3f + s2 * (0x1.24924ap-3f + s2 * 0x1.c71c72p-4f)));
    return f32(e) * 0x1.62e43p-1f + 2.0 * s * p;
}

// (cos 2 pi x, sin 2 pi x): quadrant q = trunc(4x + 1/2), a = 2 pi (x - q/4), Taylor to a^8/a^9.
fn cos_sin_turns(x: f32) -> vec2<f32> {
    let qi = u32(4.0 * x + 0.5);
    let q = f32(qi);
    let a = 0x1.921fb6p+2f * (x - 0.25 * q);
    let a2 = a * a;
    let c = 1.0 + a2 * (-0.5 + a2 * (0x1.555556p-5f + a2 * (-0x1.6c16c2p-10f + a2 * 0x1.a01a02p-16f)));
    let s = a * (1.0 + a2 * (-0x1.555556p-3f + a2 * (0x1.111112p-7f + a2 * (-0x1.a01a02p-13f + a2 * 0x1.71de3ap-19f))));
    let odd = (qi & 1u) == 1u;
    let x0 = select(c, s, odd);
    let y0 = select(s, c, odd);
    let sx = select(1.0, -1.0, ((qi + 1u) & 2u) == 2u);
    let sy = select(1.0, -1.0, (qi & 2u) == 2u);
    return vec2<f32>(sx * x0, sy * y0);
}

fn box_muller(u1: f32, u2: f32) -> vec2<f32> {
    let rho = sqrt(-2.0 * ln_f32(u1));
    let cs = cos_sin_turns(u2);
    return vec2<f32>(rho * cs.x, rho * cs.y);
}

// Four standard normals: Box-Muller on lanes (0, 1) and (2, 3).
fn normal4_from_words(d: vec4<u32>) -> vec4<f32> {
    let a = box_muller(to_uniform(d.x), to_uniform(d.y));
    let b = box_muller(to_uniform(d.z), to_uniform(d.w));
    return vec4<f32>(a.x, a.y, b.x, b.y);
}

fn uniform4_from_words(d: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(to_uniform(d.x), to_uniform(d.y), to_uniform(d.z), to_uniform(d.w));
}

// Lane l of normal4_from_words(d), computing only the Box-Muller pair it belongs to.
fn normal_lane(d: vec4<u32>, l: u32) -> f32 {
    let hi = l >= 2u;
    let u1 = to_uniform(select(d.x, d.z, hi));
    let u2 = to_uniform(select(d.y, d.w, hi));
    let z = box_muller(u1, u2);
    return select(z.x, z.y, (l & 1u) == 1u);
}
