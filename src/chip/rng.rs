//! Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
//! numbers: as easy as 1, 2, 3", SC 2011), plus the conversions this project uses.
//!
//! Every random quantity of a simulated chip is a pure function of
//! `(seed, instance, stream, a, b)`, so the CPU engine and the WGSL shader draw identical values
//! without sharing state. **The GPU shader reimplements this file bit for bit; keep the layout.**
//!
//! # Layout
//!
//! * key     = `[seed as u32, (seed >> 32) as u32]` (low half first)
//! * counter = `[instance, stream, a, b]`
//! * output  = Philox4x32-10(counter, key) -> `[u32; 4]` ("lanes" 0..4)
//!
//! Philox4x32-10 round: `(hi0, lo0) = mulhilo(0xD2511F53, c0)`, `(hi1, lo1) = mulhilo(0xCD9E8D57, c2)`,
//! `c = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]`; between rounds the key is bumped by the Weyl
//! constants `k0 += 0x9E3779B9`, `k1 += 0xBB67AE85` (wrapping). 10 rounds, 9 bumps.
//!
//! Conversions (all in f32, chosen to be exact in WGSL too):
//!
//! * uniform: `u -> ((u >> 9) as f32 + 0.5) * 2^-23`, strictly inside (0, 1). (The `>> 8`,
//!   `2^-24` variant is *not* used: `(2^24 - 1) + 0.5` is not representable in f32 and rounds to
//!   `2^24`, which would give exactly 1.0.)
//! * normal (Box-Muller): from uniforms `(u1, u2)`:
//!   `rho = sqrt(-2 ln u1)`, `z1 = rho * cos(2 pi u2)`, `z2 = rho * sin(2 pi u2)`.
//!   `normal4` returns `[z(l0,l1) cos, z(l0,l1) sin, z(l2,l3) cos, z(l2,l3) sin]`.
//!   `ln`, `cos`, `sin` are the explicit polynomials [`ln_f32`] and [`cos_sin_turns`] (only
//!   bit ops, `+ - * /`, `sqrt`, `round`), fast on the CPU and reproducible in WGSL: with the same
//!   operation order the normals match bit for bit unless the shader compiler contracts
//!   `a * b + c` into FMA (then ~1 ulp). The u32 draws are always bit-identical.
//!
//! # Who uses which counter (`a`, `b`; `lane` = index into the 4 outputs)
//!
//! | quantity | stream | a | b | lane |
//! |---|---|---|---|---|
//! | per-neuron parameter of neuron i (tau_mem, tau_slow, V_th, tau_fast, tau_out) | its stream | i / 4 | 0 | i % 4 |
//! | F[i][k] factor (N x Nc) | W_F | i | k / 4 | k % 4 |
//! | D[k][i] factor (Nc x N) | W_D | k | i / 4 | i % 4 |
//! | W_slow[pre][post] factor | W_SLOW | pre | post / 4 | post % 4 |
//! | W_fast[pre][post] factor | W_FAST | pre | post / 4 | post % 4 |
//! | silencing rank of neuron i (raw u32) | SILENCE | i / 4 | 0 | i % 4 |
//! | initial V of neuron i in trial j (uniform) | INIT_V | j | i / 4 | i % 4 |
//! | membrane noise of neuron i at step t in trial j | NOISE | j | t * ceil(N/4) + i / 4 | i % 4 |
//! | tau of extra synapse type k of neuron i | `tau_extra(k)` = 16 + 2k | i / 4 | 0 | i % 4 |
//! | W_extra_k[pre][post] factor | `w_extra(k)` = 17 + 2k | pre | post / 4 | post % 4 |
//!
//! Streams 12-15 are unused; the extra synapse types start at 16 so that the streams of every
//! existing quantity (and so every existing draw) stay as they were.
//!
//! Normal-distributed quantities use `normal4`, uniform ones `uniform4`, the silencing rank uses
//! the raw `draws`. The `instance` word is always the chip instance index (the trainer uses
//! [`TRAIN_INSTANCE`]).

/// Which random quantity is drawn; the second counter word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream(pub u32);

impl Stream {
    pub const TAU_MEM: Stream = Stream(0);
    pub const TAU_SLOW: Stream = Stream(1);
    pub const V_TH: Stream = Stream(2);
    pub const TAU_FAST: Stream = Stream(3);
    pub const TAU_OUT: Stream = Stream(4);
    pub const W_F: Stream = Stream(5);
    pub const W_D: Stream = Stream(6);
    pub const W_SLOW: Stream = Stream(7);
    pub const W_FAST: Stream = Stream(8);
    pub const SILENCE: Stream = Stream(9);
    pub const INIT_V: Stream = Stream(10);
    pub const NOISE: Stream = Stream(11);
    /// The first stream of the extra synapse types; type k uses `16 + 2k` and `17 + 2k`.
    const EXTRA_BASE: u32 = 16;

    /// Per-neuron time constant of extra synapse type `k` (`16 + 2k`).
    pub const fn tau_extra(k: usize) -> Stream {
        Stream(Self::EXTRA_BASE + 2 * k as u32)
    }

    /// Per-synapse factors of extra synapse type `k` (`17 + 2k`).
    pub const fn w_extra(k: usize) -> Stream {
        Stream(Self::EXTRA_BASE + 1 + 2 * k as u32)
    }

    /// The extra synapse type whose weight factors this stream draws (`w_extra(k)` -> `k`).
    pub fn extra_type(self) -> Option<usize> {
        (self.0 >= Self::EXTRA_BASE && (self.0 - Self::EXTRA_BASE) % 2 == 1)
            .then(|| ((self.0 - Self::EXTRA_BASE) / 2) as usize)
    }
}

/// Instance word used by the trainer (nominal network, not a chip instance).
pub const TRAIN_INSTANCE: u32 = 0xFFFF_FFFE;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The key for a 64-bit seed: low half first.
#[inline]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Four raw u32 draws for `(seed, instance, stream, a, b)`; see the module docs for the layout.
#[inline]
pub fn draws(seed: u64, instance: u32, stream: Stream, a: u32, b: u32) -> [u32; 4] {
    philox4x32_10([instance, stream.0, a, b], key_of(seed))
}

/// u32 -> f32 uniform strictly inside (0, 1): `((u >> 9) + 0.5) * 2^-23` (exact in f32).
#[inline(always)]
pub fn to_uniform(u: u32) -> f32 {
    ((u >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// Natural log of `u` in (0, 1] with only bit operations, `+`, `*` and one division, so the
/// identical sequence of f32 operations can be written in WGSL: `u = m 2^e` with
/// `m` in [sqrt(1/2), sqrt(2)), `s = (m - 1)/(m + 1)`,
/// `ln u = e ln2 + 2 s (1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9)` (|error| < 2e-7 absolute).
#[inline(always)]
pub fn ln_f32(u: f32) -> f32 {
    let bits = u.to_bits();
    // exponent relative to sqrt(1/2): shift the mantissa boundary
    let adj = bits.wrapping_sub(0x3F35_04F3); // bits of sqrt(0.5)
    let e = (adj as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e as f32 * std::f32::consts::LN_2 + 2.0 * s * p
}

/// `(cos 2 pi x, sin 2 pi x)` for x in [0, 1] with `+`, `*` and selects only (WGSL-portable):
/// `q = u32(4x + 0.5)` (truncation), `f = x - q/4` in [-1/8, 1/8] turns, `a = 2 pi f`, Taylor
/// polynomials to a⁸ / a⁹ (error < 1e-9 before rounding), then rotation by the quadrant q mod 4.
#[inline(always)]
pub fn cos_sin_turns(x: f32) -> (f32, f32) {
    let qi = (4.0 * x + 0.5) as u32;
    let q = qi as f32;
    let a = std::f32::consts::TAU * (x - 0.25 * q);
    let a2 = a * a;
    let c = 1.0 + a2 * (-0.5 + a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 + a2 * (1.0 / 40320.0))));
    let s = a
        * (1.0
            + a2 * (-1.0 / 6.0
                + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5040.0 + a2 * (1.0 / 362_880.0)))));
    // quadrant 0: (c, s); 1: (-s, c); 2: (-c, -s); 3: (s, -c)
    let (x0, y0) = if qi & 1 == 1 { (s, c) } else { (c, s) };
    let sx = if (qi + 1) & 2 == 2 { -1.0 } else { 1.0 };
    let sy = if qi & 2 == 2 { -1.0 } else { 1.0 };
    (sx * x0, sy * y0)
}

/// Box-Muller: two standard normals from two uniforms in (0, 1), f32 math:
/// `rho = sqrt(-2 ln u1)`, `(z1, z2) = rho (cos 2 pi u2, sin 2 pi u2)`, with [`ln_f32`] and
/// [`cos_sin_turns`] (portable polynomials instead of the platform's transcendentals).
#[inline(always)]
pub fn box_muller(u1: f32, u2: f32) -> (f32, f32) {
    let rho = (-2.0 * ln_f32(u1)).sqrt();
    let (c, s) = cos_sin_turns(u2);
    (rho * c, rho * s)
}

/// Four uniforms in (0, 1) for `(seed, instance, stream, a, b)`.
#[inline]
pub fn uniform4(seed: u64, instance: u32, stream: Stream, a: u32, b: u32) -> [f32; 4] {
    draws(seed, instance, stream, a, b).map(to_uniform)
}

/// Four standard normals (two Box-Muller pairs: lanes (0,1) and (2,3)).
#[inline]
pub fn normal4(seed: u64, instance: u32, stream: Stream, a: u32, b: u32) -> [f32; 4] {
    normal4_from_draws(draws(seed, instance, stream, a, b))
}

/// Box-Muller applied to four raw draws.
#[inline(always)]
pub fn normal4_from_draws(d: [u32; 4]) -> [f32; 4] {
    let (z0, z1) = box_muller(to_uniform(d[0]), to_uniform(d[1]));
    let (z2, z3) = box_muller(to_uniform(d[2]), to_uniform(d[3]));
    [z0, z1, z2, z3]
}

/// One standard normal for a per-neuron quantity: `normal4(seed, instance, stream, i/4, 0)[i%4]`.
#[inline]
pub fn neuron_normal(seed: u64, instance: u32, stream: Stream, i: u32) -> f32 {
    normal4(seed, instance, stream, i / 4, 0)[(i % 4) as usize]
}

/// Fills `out[j] = 1 + sigma * z(stream, row, j)` with
/// `z(stream, row, j) = normal4(seed, instance, stream, row, j / 4)[j % 4]`:
/// the procedural per-synapse mismatch factors of one matrix row (one Philox call per 4 synapses).
pub fn fill_factors_row(
    seed: u64,
    instance: u32,
    stream: Stream,
    row: u32,
    sigma: f32,
    out: &mut [f32],
) {
    const B: usize = 8; // Philox blocks per batch (32 synapses), for the auto-vectoriser
    let key = key_of(seed);
    let mut z = [0f32; 4 * B];
    for (batch, chunk) in out.chunks_mut(4 * B).enumerate() {
        let mut d = [[0u32; 4]; B];
        for (k, dk) in d.iter_mut().enumerate() {
            *dk = philox4x32_10([instance, stream.0, row, (batch * B + k) as u32], key);
        }
        for (k, dk) in d.iter().enumerate() {
            let n4 = normal4_from_draws(*dk);
            z[4 * k..4 * k + 4].copy_from_slice(&n4);
        }
        for (o, &zl) in chunk.iter_mut().zip(&z) {
            *o = 1.0 + sigma * zl;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer_vectors() {
        // Random123 kat_vectors: "philox4x32 10 <ctr x4> <key x2> <out x4>".
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([0xffff_ffff; 4], [0xffff_ffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn key_and_counter_layout() {
        let seed = 0x0123_4567_89ab_cdefu64;
        assert_eq!(key_of(seed), [0x89ab_cdef, 0x0123_4567]);
        assert_eq!(
            draws(seed, 3, Stream::NOISE, 7, 9),
            philox4x32_10([3, 11, 7, 9], [0x89ab_cdef, 0x0123_4567])
        );
    }

    #[test]
    fn portable_transcendentals_match_std() {
        let mut worst_ln = 0f32;
        let mut worst_cs = 0f32;
        for k in 0..100_000u32 {
            let u = to_uniform(k.wrapping_mul(2_654_435_761));
            worst_ln = worst_ln.max((ln_f32(u) - (u as f64).ln() as f32).abs());
            let (c, s) = cos_sin_turns(u);
            let a = std::f64::consts::TAU * u as f64;
            worst_cs = worst_cs.max((c - a.cos() as f32).abs().max((s - a.sin() as f32).abs()));
        }
        assert!(worst_ln < 2e-6, "ln {worst_ln}"); // |ln u| up to 16: ~1 ulp
        assert!(worst_cs < 5e-7, "cos/sin {worst_cs}");
        assert_eq!(ln_f32(1.0), 0.0);
        assert!((ln_f32(to_uniform(0)) - (to_uniform(0) as f64).ln() as f32).abs() < 2e-6);
        let (c, s) = cos_sin_turns(1.0);
        assert!((c - 1.0).abs() < 1e-7 && s.abs() < 1e-6);
    }

    #[test]
    fn uniform_bounds_are_open() {
        assert!(to_uniform(0) > 0.0);
        assert!(to_uniform(u32::MAX) < 1.0);
        assert_eq!(to_uniform(0), 0.5 / 8_388_608.0);
        assert_eq!(to_uniform(u32::MAX), 1.0 - 0.5 / 8_388_608.0);
    }

    #[test]
    fn normal_moments() {
        let n = 200_000u32;
        let (mut s, mut s2, mut s4) = (0f64, 0f64, 0f64);
        for a in 0..n / 4 {
            for z in normal4(42, 0, Stream::NOISE, a, 0) {
                let z = z as f64;
                s += z;
                s2 += z * z;
                s4 += z * z * z * z;
            }
        }
        let m = s / n as f64;
        let v = s2 / n as f64 - m * m;
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((v - 1.0).abs() < 0.015, "var {v}");
        assert!((s4 / n as f64 - 3.0).abs() < 0.1, "kurtosis");
        let u: f64 = (0..n / 4)
            .flat_map(|a| uniform4(1, 2, Stream::INIT_V, a, 5))
            .map(|x| x as f64)
            .sum::<f64>()
            / n as f64;
        assert!((u - 0.5).abs() < 0.005, "uniform mean {u}");
    }

    #[test]
    fn the_extra_type_streams_follow_every_existing_stream() {
        // every existing stream keeps its number (so every existing draw is unchanged) and the
        // extra types' streams collide with none of them nor with each other
        let old = [
            Stream::TAU_MEM,
            Stream::TAU_SLOW,
            Stream::V_TH,
            Stream::TAU_FAST,
            Stream::TAU_OUT,
            Stream::W_F,
            Stream::W_D,
            Stream::W_SLOW,
            Stream::W_FAST,
            Stream::SILENCE,
            Stream::INIT_V,
            Stream::NOISE,
        ];
        assert_eq!(old.map(|s| s.0), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let mut seen: std::collections::HashSet<u32> = old.iter().map(|s| s.0).collect();
        for k in 0..crate::snn::MAX_EXTRA_SYNAPSE_TYPES {
            assert_eq!(Stream::tau_extra(k).0, 16 + 2 * k as u32);
            assert_eq!(Stream::w_extra(k).0, 17 + 2 * k as u32);
            assert!(seen.insert(Stream::tau_extra(k).0));
            assert!(seen.insert(Stream::w_extra(k).0));
            assert_eq!(Stream::w_extra(k).extra_type(), Some(k));
            assert_eq!(Stream::tau_extra(k).extra_type(), None);
        }
        assert!(old.iter().all(|s| s.extra_type().is_none()));
    }

    #[test]
    fn factors_row_matches_keyed_normals() {
        let mut row = vec![0.0; 10];
        fill_factors_row(5, 2, Stream::W_SLOW, 3, 0.2, &mut row);
        for (j, f) in row.iter().enumerate() {
            let z = normal4(5, 2, Stream::W_SLOW, 3, j as u32 / 4)[j % 4];
            assert_eq!(*f, 1.0 + 0.2 * z);
        }
    }
}
