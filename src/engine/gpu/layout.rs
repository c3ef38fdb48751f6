//! How the ensemble kernel's buffers are laid out and packed (host side of the bindings of
//! `shaders/lif_ensemble.wgsl`), and how a pair's results are read back.
//!
//! # Buffers (all `vec4<f32>` unless noted; nq = ceil(N/4), ncq = ceil(Nc/4), nw = ceil(N/32))
//! * `net` (shared, read-only): W_slow `[pre][nq]`, W_fast `[pre][nq]` (only when W_fast is
//!   nonzero), the K extra synapse types' W_k `[pre][nq]` one after the other, Dᵀ `[i][ncq]`,
//!   W_outᵀ `[o][ncq]` — the nominal (quantised) weights.
//! * `inst` (per instance of the chunk, `2 + (8 + C + 2K) nq` vec4): the WGSL `InstanceInfo`
//!   (index, sigmas, noise std, the shared readout decay), the `QuadConsts` (alpha, V_th, decay
//!   and inverse of tau_fast, tau_slow, tau_out) as 8 blocks of nq quads, the folded input
//!   projection `[ch][nq]`, then per extra type k `e^{-dt/tau_k}` and `1/tau_k` (2 blocks of nq:
//!   2N floats per type). Drawn on the host with `Instance::draw`
//!   (so identical to the CPU); no N x N or Nc x N data per instance: the W_slow, W_fast, W_k
//!   and D mismatch factors are regenerated in the shader from Philox.
//! * `inputs` (f32, `[trial][t][ch]`), shared by all instances.
//! * `state` (per pair, `(STATE_BLOCKS + K) nq + ncq` vec4): V, I_fast, I_slow, r, a, x~, then
//!   the K extra currents I_k (N floats per type).
//! * `out` (per pair, u32 words): spike counts (4 nq), y `[t][n_out]`, then optionally x~
//!   `[t][Nc]`, spike masks `[t][nw]`, V `[t][4 nq]`; last, the status word of the loop check
//!   (see [`dispatch`]).
//!

use crate::chip::Instance;
use crate::engine::lif_step::NeuronConsts;
use crate::engine::{EnsembleJob, TrialOutput};

pub(super) const F_SLOW: u32 = 1;
pub(super) const F_FAST: u32 = 2;
pub(super) const F_REC_X: u32 = 4;
pub(super) const F_REC_SPK: u32 = 8;
pub(super) const F_REC_V: u32 = 16;
/// Bit `F_EXTRA_SHIFT + k` of the flags: extra synapse type k's matrix is nonzero.
pub(super) const F_EXTRA_SHIFT: u32 = 5;

/// The uniform block of `lif_ensemble.wgsl` (field order and types must match `struct Job`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct JobUniform {
    pub(super) n: u32,
    pub(super) nq: u32,
    pub(super) nc: u32,
    pub(super) c_in: u32,
    pub(super) n_out: u32,
    pub(super) steps: u32,
    pub(super) t_start: u32,
    pub(super) k_steps: u32,
    pub(super) n_trials: u32,
    pub(super) pair_start: u32,
    pub(super) chunk_inst0: u32,
    pub(super) trial_offset: u32,
    pub(super) flags: u32,
    pub(super) seed_lo: u32,
    pub(super) seed_hi: u32,
    pub(super) off_fast: u32,
    pub(super) v_rest: f32,
    pub(super) v_reset: f32,
    pub(super) bias: f32,
    pub(super) off_d: u32,
    pub(super) off_wout: u32,
    pub(super) inst_stride: u32,
    pub(super) state_stride: u32,
    pub(super) out_stride: u32,
    pub(super) off_y: u32,
    pub(super) off_x: u32,
    pub(super) off_spk: u32,
    pub(super) off_v: u32,
    pub(super) probe: u32,
    pub(super) off_status: u32,
    pub(super) adapt_beta: f32,
    pub(super) adapt_rho: f32,
    pub(super) off_extra: u32,
    /// Pads the block to a multiple of 16 bytes, as uniform blocks like it.
    pub(super) pad: [u32; 3],
}

/// Per-job layout: strides and offsets shared by the host and the shader.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    pub(super) n: usize,
    pub(super) nq: usize,
    pub(super) nc: usize,
    pub(super) ncq: usize,
    pub(super) nw: usize,
    pub(super) c_in: usize,
    pub(super) n_out: usize,
    pub(super) steps: usize,
    /// Synapse types beyond W_fast and W_slow.
    pub(super) kx: usize,
    /// vec4 per instance.
    pub(super) inst_stride: usize,
    /// vec4 per pair.
    pub(super) state_stride: usize,
    /// u32 words per pair.
    pub(super) out_stride: usize,
    pub(super) off_y: usize,
    pub(super) off_x: Option<usize>,
    pub(super) off_spk: Option<usize>,
    pub(super) off_v: Option<usize>,
    /// The loop check's status word.
    pub(super) off_status: usize,
}

impl Layout {
    pub(super) fn new(job: &EnsembleJob) -> Layout {
        let net = job.net;
        let (n, nc, c_in, n_out, steps) = (net.n, net.nc, net.n_in, net.n_out, job.steps);
        let (nq, ncq, nw) = (n.div_ceil(4), nc.div_ceil(4), n.div_ceil(32));
        let kx = net.extra_synapses.len();
        let mut off = 4 * nq;
        let off_y = off;
        off += steps * n_out;
        let mut take = |on: bool, width: usize| {
            on.then(|| {
                let o = off;
                off += steps * width;
                o
            })
        };
        let off_x = take(job.record.x, nc);
        let off_spk = take(job.record.spikes, nw);
        let off_v = take(job.record.v, 4 * nq);
        let off_status = off;
        off += 1;
        Layout {
            n,
            nq,
            nc,
            ncq,
            nw,
            c_in,
            n_out,
            steps,
            kx,
            inst_stride: instance_block_len(n, c_in) + 2 * kx * nq,
            state_stride: (super::shaders::STATE_BLOCKS + kx) * nq + ncq,
            out_stride: off,
            off_y,
            off_x,
            off_spk,
            off_v,
            off_status,
        }
    }
}

pub(super) fn vec4_bytes(v: &[[f32; 4]]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Offsets (vec4) of the parts of the shared weights buffer.
#[derive(Clone, Copy, Debug)]
pub(super) struct NetOffsets {
    pub(super) fast: u32,
    /// The extra synapse types' matrices, type k at `extra + k N nq`.
    pub(super) extra: u32,
    pub(super) d: u32,
    pub(super) wout: u32,
}

/// The shared weights as vec4 rows, and where each part starts.
pub(super) fn net_buffer(
    net: &crate::snn::Network,
    lay: &Layout,
    slow_on: bool,
    fast_on: bool,
) -> (Vec<[f32; 4]>, NetOffsets) {
    let (n, nq, nc, ncq) = (lay.n, lay.nq, lay.nc, lay.ncq);
    let mut data: Vec<[f32; 4]> = Vec::new();
    let rows = |m: &[f32], data: &mut Vec<[f32; 4]>| {
        for pre in 0..n {
            let row = &m[pre * n..(pre + 1) * n];
            for q in 0..nq {
                let mut v = [0f32; 4];
                for (l, x) in v.iter_mut().enumerate() {
                    if 4 * q + l < n {
                        *x = row[4 * q + l];
                    }
                }
                data.push(v);
            }
        }
    };
    if slow_on {
        rows(&net.w_slow, &mut data);
    }
    let off_fast = data.len() as u32;
    if fast_on {
        rows(&net.w_fast, &mut data);
    }
    // every type, zero ones too, so that type k is at a fixed stride (a zero one is flagged off
    // and never read)
    let off_extra = data.len() as u32;
    for t in &net.extra_synapses {
        rows(&t.w, &mut data);
    }
    let off_d = data.len() as u32;
    // D_t[i][k] = D[k][i]
    for i in 0..n {
        for kq in 0..ncq {
            let mut v = [0f32; 4];
            for (l, x) in v.iter_mut().enumerate() {
                let k = 4 * kq + l;
                if k < nc {
                    *x = net.d[k * n + i];
                }
            }
            data.push(v);
        }
    }
    let off_wout = data.len() as u32;
    for o in 0..lay.n_out {
        for kq in 0..ncq {
            let mut v = [0f32; 4];
            for (l, x) in v.iter_mut().enumerate() {
                let k = 4 * kq + l;
                if k < nc {
                    *x = net.w_out_teacher[k * lay.n_out + o];
                }
            }
            data.push(v);
        }
    }
    (
        data,
        NetOffsets {
            fast: off_fast,
            extra: off_extra,
            d: off_d,
            wout: off_wout,
        },
    )
}

/// vec4 of one instance's block (see [`instance_block`]) for N neurons and C input channels,
/// without extra synapse types (each adds `2 ceil(N/4)`; see [`Layout`]).
pub(crate) fn instance_block_len(n: usize, c_in: usize) -> usize {
    2 + (8 + c_in) * n.div_ceil(4)
}

/// One instance's block of the `inst` buffer: `InstanceInfo` (2 vec4), the `QuadConsts` fields
/// as blocks of nq quads in the struct's order, the input projection `[ch][quad]` (the structs
/// are in `shaders/lif_ensemble.wgsl` and `shaders/lif_step.wgsl`), then for each extra synapse
/// type `e^{-dt/tau_k}` and `1/tau_k` as blocks of nq quads (`out` must hold them).
pub(crate) fn instance_block(net: &crate::snn::Network, inst: &Instance, out: &mut [[f32; 4]]) {
    let c = NeuronConsts::from_instance(net, inst);
    let (n, nq, c_in) = (net.n, net.n.div_ceil(4), net.n_in);
    let (shared, dec, inv) = match c.shared_out {
        Some((d, i)) => (1.0, d, i),
        None => (0.0, 0.0, 0.0),
    };
    out[0] = [
        f32::from_bits(inst.index),
        inst.w_slow_sigma,
        inst.w_fast_sigma,
        inst.d_sigma,
    ];
    out[1] = [c.noise_std, shared, dec, inv];
    let v_th: Vec<f32> = c
        .v_th
        .iter()
        .map(|&v| if v.is_finite() { v } else { f32::MAX })
        .collect();
    // QuadConsts, field by field; padding neurons never fire (V_th = f32::MAX = SILENT_TH)
    let params: [(&[f32], f32); 8] = [
        (&c.alpha, 0.0),
        (&v_th, f32::MAX),
        (&c.decay_fast, 0.0),
        (&c.inv_tau_fast, 0.0),
        (&c.decay_slow, 0.0),
        (&c.inv_tau_slow, 0.0),
        (&c.decay_out, 0.0),
        (&c.inv_tau_out, 0.0),
    ];
    let base = 2;
    for (pi, (vals, pad)) in params.iter().enumerate() {
        for q in 0..nq {
            let mut v = [*pad; 4];
            for (l, x) in v.iter_mut().enumerate() {
                if 4 * q + l < n {
                    *x = vals[4 * q + l];
                }
            }
            out[base + pi * nq + q] = v;
        }
    }
    let pb = base + 8 * nq;
    for ch in 0..c_in {
        for q in 0..nq {
            let mut v = [0f32; 4];
            for (l, x) in v.iter_mut().enumerate() {
                let i = 4 * q + l;
                if i < n {
                    *x = inst.input_proj[i * c_in + ch];
                }
            }
            out[pb + ch * nq + q] = v;
        }
    }
    // the extra types' decays and inverse time constants; padding neurons never spike, 0
    let xb = pb + c_in * nq;
    let extra = c.decay_extra.iter().zip(&c.inv_tau_extra);
    for (k, (dec, inv)) in extra.enumerate() {
        for (b, vals) in [dec, inv].into_iter().enumerate() {
            for q in 0..nq {
                let mut v = [0f32; 4];
                for (l, x) in v.iter_mut().enumerate() {
                    if 4 * q + l < n {
                        *x = vals[4 * q + l];
                    }
                }
                out[xb + (2 * k + b) * nq + q] = v;
            }
        }
    }
}

fn f32s(w: &[u32]) -> Vec<f32> {
    w.iter().map(|&x| f32::from_bits(x)).collect()
}

/// One pair's `out` words into a `TrialOutput`.
pub(super) fn parse_pair(w: &[u32], lay: &Layout) -> TrialOutput {
    let (n, nq, nc, nw, steps) = (lay.n, lay.nq, lay.nc, lay.nw, lay.steps);
    let y = f32s(&w[lay.off_y..lay.off_y + steps * lay.n_out]);
    let x = lay.off_x.map(|o| f32s(&w[o..o + steps * nc]));
    let spikes = lay.off_spk.map(|o| {
        let mut s = Vec::new();
        for t in 0..steps {
            for (wi, &word) in w[o + t * nw..o + (t + 1) * nw].iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    let j = wi * 32 + b as usize;
                    if j < n {
                        s.push((t as u32, j as u32));
                    }
                }
            }
        }
        s
    });
    let v = lay.off_v.map(|o| {
        let mut v = Vec::with_capacity(steps * n);
        for t in 0..steps {
            let row = &w[o + t * 4 * nq..o + t * 4 * nq + n];
            v.extend(row.iter().map(|&x| f32::from_bits(x)));
        }
        v
    });
    TrialOutput {
        y,
        x,
        spikes,
        v,
        spike_counts: w[..n].to_vec(),
    }
}
