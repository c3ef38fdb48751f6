//! Mismatch-ensemble training of W_slow on the GPU (docs/design.md §2, "Mismatch-ensemble
//! training"; §6): every chip of a training trial is one workgroup of `shaders/learn_ensemble.wgsl`,
//! all running the trial from the same W_slow, each accumulating its own update dW in a device
//! buffer; then `shaders/learn_reduce.wgsl` adds the mean of the kept chips' dW to W_slow (or,
//! in quantisation-aware training, to the float shadow). The CPU twin is
//! [`crate::learn::ensemble`]: [`GpuEnsembleTrainer::train_trial`] computes
//! [`crate::learn::ensemble::train_trial_ensemble`], and with a shadow
//! [`crate::learn::ensemble::train_trial_ensemble_shadow`] (tests/gpu_learn.rs compares them).
//!
//! The chips are drawn on the host by the same [`crate::learn::ensemble::draw_chips`] as on the
//! CPU; a chip's block (`chip.wgsl`: neuron constants, input projection, then its encoder
//! F_chipᵀ) is uploaded per trial. Its W_slow, W_fast and decoder factors are regenerated in
//! the shader from Philox, so no N x N data per chip crosses the bus; the device holds per chip
//! its dW (N² floats: the memory that limits E, see [`GpuEnsembleTrainer::chips_per_chunk`]),
//! its state and its x~ record. The chips are split into chunks by the adapter's limits
//! (workgroups per dimension, storage binding size); all chunks step together, one submit per K
//! steps, and the reduction runs chunk by chunk.

use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use super::ensemble::{ChipTrial, TrialSettings};
use super::gpu::{learn_loop_cost, learn_workgroup, read_learn_out, unpack_rows};
use crate::chip::Instance;
use crate::chip::rng::key_of;
use crate::engine::EngineError;
use crate::engine::gpu::dispatch::{self, StepsPerDispatch};
use crate::engine::gpu::layout::{instance_block, instance_block_len};
use crate::engine::gpu::shaders::{self, STATE_BLOCKS, Shape};
use crate::engine::gpu::{GpuContext, compile_pipeline, create_buffer, entry, push_rows};
use crate::engine::lif_step::NeuronConsts;
use crate::engine::transpose;
use crate::learn::TrainTrialStats;
use crate::snn::{Network, SnnParams};

/// Longest wait for one dispatch or read-back.
const WAIT: Duration = Duration::from_secs(600);
const L_FAST: u32 = 1;
const L_ONLINE: u32 = 2;
/// Workgroup size of the reduction (clamped to the device limits).
const REDUCE_WG: u32 = 64;

/// The uniform block of `learn_ensemble.wgsl` (field order and types must match
/// `struct LearnEnsembleJob`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    nq: u32,
    nc: u32,
    c_in: u32,
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
    off_f: u32,
    state_stride: u32,
    out_stride: u32,
    delta_stride: u32,
    v_rest: f32,
    v_reset: f32,
    bias: f32,
    k_fb: f32,
    eta: f32,
    adapt_beta: f32,
    adapt_rho: f32,
    probe: u32,
    off_status: u32,
}

/// The uniform block of `learn_reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceUniform {
    len: u32,
    chips: u32,
    stride: u32,
    scale: f32,
}

/// Sizes and offsets (vec4 units unless noted).
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    nq: usize,
    nc: usize,
    ncq: usize,
    c_in: usize,
    fast: bool,
    /// In the shared `net` buffer: W_slow at 0, W_fast, Dᵀ.
    off_fast: usize,
    off_d: usize,
    net_len: usize,
    /// Per chip: its block, then F_chipᵀ [k][quad] at `off_f`.
    off_f: usize,
    inst_stride: usize,
    /// V, I_fast, I_slow, r, a, I_fb, x~.
    state_stride: usize,
    /// dW: N rows of nq.
    delta_stride: usize,
}

impl Dims {
    fn new(net: &Network, fast: bool) -> Dims {
        let (n, nc, c_in) = (net.n, net.nc, net.n_in);
        let (nq, ncq) = (n.div_ceil(4), nc.div_ceil(4));
        let off_fast = n * nq;
        let off_d = off_fast + if fast { n * nq } else { 0 };
        let off_f = instance_block_len(n, c_in);
        Dims {
            n,
            nq,
            nc,
            ncq,
            c_in,
            fast,
            off_fast,
            off_d,
            net_len: off_d + n * ncq,
            off_f,
            inst_stride: off_f + nc * nq,
            state_stride: (STATE_BLOCKS + 1) * nq + ncq,
            delta_stride: n * nq,
        }
    }

    /// u32 words of `out` per chip for a trial of `steps` steps: spike counts, x~, status.
    fn out_stride(&self, steps: usize) -> usize {
        self.off_status(steps) + 1
    }

    fn off_status(&self, steps: usize) -> usize {
        4 * self.nq + steps * self.nc
    }
}

/// The buffers of one chunk of chips.
struct Chunk {
    count: usize,
    inst: wgpu::Buffer,
    state: wgpu::Buffer,
    delta: wgpu::Buffer,
    keep: wgpu::Buffer,
    reduce_uni: wgpu::Buffer,
    reduce_bg: wgpu::BindGroup,
    /// The trial's `out` and the bind group (they grow with the trial length).
    io: Option<(usize, wgpu::Buffer, wgpu::BindGroup)>,
}

/// Trains one network's W_slow by mismatch-ensemble trials on the GPU; see the module docs.
pub struct GpuEnsembleTrainer {
    ctx: Arc<GpuContext>,
    pipe: wgpu::ComputePipeline,
    reduce_pipe: wgpu::ComputePipeline,
    uni: wgpu::Buffer,
    dims: Dims,
    params: SnnParams,
    consts: NeuronConsts,
    net_buf: wgpu::Buffer,
    /// Quantisation-aware training: the float W_slow the mean update moves (the chips run the
    /// fixed W_slow in `net_buf`).
    shadow: Option<wgpu::Buffer>,
    /// The trial's input and target, shared by every chip, and their capacity in steps.
    trial_io: Option<(usize, wgpu::Buffer, wgpu::Buffer)>,
    chunks: Vec<Chunk>,
    max_chips: usize,
    wg: u32,
    reduce_groups: u32,
    steps_request: StepsPerDispatch,
    k_steps: usize,
    dispatches: usize,
    device_bytes: u64,
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidJob(msg)
}

/// The chunks of `max_chips` chips, `per_chunk` each (the last may hold fewer): each with its
/// blocks, state, dW, keep mask and the reduction's bind group adding into `target`.
fn make_chunks(
    ctx: &GpuContext,
    reduce_pipe: &wgpu::ComputePipeline,
    target: &wgpu::Buffer,
    dims: &Dims,
    max_chips: usize,
    chips_per_chunk: usize,
    bytes: &mut u64,
) -> Result<Vec<Chunk>, EngineError> {
    let w_bytes = 16 * dims.delta_stride as u64;
    let ro = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let rw = ro | wgpu::BufferUsages::COPY_SRC;
    let mut chunks = Vec::new();
    let mut first = 0;
    while first < max_chips {
        let count = chips_per_chunk.min(max_chips - first);
        let c = count as u64;
        let inst = create_buffer(
            ctx,
            "learn_ensemble chips",
            16 * c * dims.inst_stride as u64,
            ro,
            bytes,
        )?;
        let state = create_buffer(
            ctx,
            "learn_ensemble state",
            16 * c * dims.state_stride as u64,
            ro,
            bytes,
        )?;
        let delta = create_buffer(
            ctx,
            "learn_ensemble dW",
            16 * c * dims.delta_stride as u64,
            rw,
            bytes,
        )?;
        let keep = create_buffer(ctx, "learn_ensemble keep", 4 * c, ro, bytes)?;
        let reduce_uni = create_buffer(
            ctx,
            "learn_reduce uniform",
            std::mem::size_of::<ReduceUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            bytes,
        )?;
        let reduce_bg = ctx.scoped("learn_reduce bind group", || {
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("learn_reduce"),
                layout: &reduce_pipe.get_bind_group_layout(0),
                entries: &[
                    entry(0, &reduce_uni),
                    entry(1, &keep),
                    entry(2, &delta),
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: target,
                            offset: 0,
                            size: std::num::NonZeroU64::new(w_bytes),
                        }),
                    },
                ],
            })
        })?;
        chunks.push(Chunk {
            count,
            inst,
            state,
            delta,
            keep,
            reduce_uni,
            reduce_bg,
            io: None,
        });
        first += count;
    }
    Ok(chunks)
}

impl GpuEnsembleTrainer {
    /// A trainer of `net` (its W_slow is uploaded) for trials of at most `max_chips` chips,
    /// online like [`crate::learn::ensemble::train_trial_ensemble`]: each chip runs on its own
    /// updated weights, and W_slow moves by the mean update.
    pub fn new(ctx: Arc<GpuContext>, net: &Network, max_chips: usize) -> Result<Self, EngineError> {
        Self::build(ctx, net, max_chips, None, usize::MAX)
    }

    /// A trainer for quantisation-aware ensemble training, like
    /// [`crate::learn::ensemble::train_trial_ensemble_shadow`]: the chips run `running` (its
    /// W_slow fixed within a trial, see [`GpuEnsembleTrainer::set_running_w_slow`]) and the mean
    /// update moves the float `shadow` W_slow (N x N).
    pub fn with_shadow(
        ctx: Arc<GpuContext>,
        running: &Network,
        shadow: &[f32],
        max_chips: usize,
    ) -> Result<Self, EngineError> {
        Self::build(ctx, running, max_chips, Some(shadow), usize::MAX)
    }

    /// As [`GpuEnsembleTrainer::new`] with at most `max_per_chunk` (>= 1) chips per chunk (to
    /// test the chunked path; the adapter's limits may give fewer).
    pub fn with_max_chips_per_chunk(
        ctx: Arc<GpuContext>,
        net: &Network,
        max_chips: usize,
        max_per_chunk: usize,
    ) -> Result<Self, EngineError> {
        Self::build(ctx, net, max_chips, None, max_per_chunk)
    }

    fn build(
        ctx: Arc<GpuContext>,
        net: &Network,
        max_chips: usize,
        shadow: Option<&[f32]>,
        max_per_chunk: usize,
    ) -> Result<Self, EngineError> {
        net.validate_shapes()?;
        if net.n == 0 || net.nc == 0 || net.n_in == 0 || max_chips == 0 {
            return Err(invalid(format!(
                "N, Nc, C and the chips per trial must be positive (N {}, Nc {}, C {}, chips {max_chips})",
                net.n, net.nc, net.n_in
            )));
        }
        let fast = net.w_fast.iter().any(|&w| w != 0.0);
        let dims = Dims::new(net, fast);
        let limits = ctx.limits().clone();
        let wg = learn_workgroup(&limits, dims.nq, dims.ncq)?;
        let bind = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if 16 * dims.net_len as u64 > bind {
            return Err(invalid(format!(
                "the shared weights of N = {} need {} bytes; the adapter's largest storage \
                 binding is {bind} bytes",
                dims.n,
                16 * dims.net_len
            )));
        }
        let chips_per_chunk = Self::chips_per_chunk_for(&ctx, &dims, max_per_chunk)?;
        let reduce_wg = REDUCE_WG
            .min(limits.max_compute_workgroup_size_x)
            .min(limits.max_compute_invocations_per_workgroup)
            .max(1);
        let reduce_groups = (dims.delta_stride as u64)
            .div_ceil(reduce_wg as u64)
            .min(limits.max_compute_workgroups_per_dimension as u64)
            .max(1) as u32;
        // the reduction's loops on llvmpipe: elements per invocation x (chips + 1)
        if let Some(limit) = dispatch::loop_limit(ctx.raw_adapter_info()) {
            let per_inv =
                (dims.delta_stride as u64).div_ceil(reduce_groups as u64 * reduce_wg as u64);
            let cost = dispatch::trips(per_inv) + per_inv * dispatch::trips(chips_per_chunk as u64);
            if cost > limit {
                return Err(invalid(format!(
                    "the reduction of {chips_per_chunk} chips of N = {} needs {cost} loop \
                     iterations per invocation; this adapter allows {limit}",
                    dims.n
                )));
            }
        }
        let shape = Shape::new(dims.n, dims.nc, wg);
        let pipe = compile_pipeline(&ctx, &shaders::learn_ensemble(&shape), "learn_ensemble")?;
        let reduce_pipe =
            compile_pipeline(&ctx, &shaders::learn_reduce(reduce_wg), "learn_reduce")?;

        let mut bytes = 0u64;
        let ro = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let rw = ro | wgpu::BufferUsages::COPY_SRC;
        let uni = create_buffer(
            &ctx,
            "learn_ensemble uniform",
            std::mem::size_of::<Uniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            &mut bytes,
        )?;
        let (n, nc) = (dims.n, dims.nc);
        let mut data = Vec::with_capacity(dims.net_len);
        push_rows(&net.w_slow, n, n, &mut data);
        if fast {
            push_rows(&net.w_fast, n, n, &mut data);
        }
        push_rows(&transpose(&net.d, nc, n), n, nc, &mut data);
        debug_assert_eq!(data.len(), dims.net_len);
        let net_buf = create_buffer(
            &ctx,
            "learn_ensemble net",
            16 * dims.net_len as u64,
            rw,
            &mut bytes,
        )?;
        ctx.scoped("uploading the network", || {
            ctx.queue
                .write_buffer(&net_buf, 0, bytemuck::cast_slice(&data))
        })?;
        let w_bytes = 16 * dims.delta_stride as u64;
        let shadow_buf = match shadow {
            Some(w) => {
                if w.len() != n * n {
                    return Err(EngineError::Shape {
                        what: "the shadow W_slow (N x N)".into(),
                        expected: n * n,
                        got: w.len(),
                    });
                }
                let b = create_buffer(&ctx, "learn_ensemble shadow", w_bytes, rw, &mut bytes)?;
                Some(b)
            }
            None => None,
        };
        let target = shadow_buf.as_ref().unwrap_or(&net_buf);
        let chunks = make_chunks(
            &ctx,
            &reduce_pipe,
            target,
            &dims,
            max_chips,
            chips_per_chunk,
            &mut bytes,
        )?;
        let mut tr = GpuEnsembleTrainer {
            ctx,
            pipe,
            reduce_pipe,
            uni,
            dims,
            params: net.params.clone(),
            consts: NeuronConsts::nominal(net),
            net_buf,
            shadow: shadow_buf,
            trial_io: None,
            chunks,
            max_chips,
            wg,
            reduce_groups,
            steps_request: StepsPerDispatch::Auto,
            k_steps: 0,
            dispatches: 0,
            device_bytes: bytes,
        };
        if let Some(w) = shadow {
            tr.set_shadow(w)?;
        }
        Ok(tr)
    }

    /// Chips per chunk on `ctx` for networks like `net`: the most whose dW, state and blocks
    /// each fit one storage binding and whose workgroups fit one dispatch dimension. dW (N²
    /// floats per chip) is what limits it: e.g. N = 320 needs 400 KiB per chip.
    pub fn chips_per_chunk(ctx: &GpuContext, net: &Network) -> Result<usize, EngineError> {
        let fast = net.w_fast.iter().any(|&w| w != 0.0);
        Self::chips_per_chunk_for(ctx, &Dims::new(net, fast), usize::MAX)
    }

    fn chips_per_chunk_for(
        ctx: &GpuContext,
        d: &Dims,
        max_per_chunk: usize,
    ) -> Result<usize, EngineError> {
        let limits = ctx.limits();
        let bind = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let mut per_chunk =
            (limits.max_compute_workgroups_per_dimension as u64).min(max_per_chunk.max(1) as u64);
        for (what, b) in [
            ("the update dW", 16 * d.delta_stride as u64),
            ("the constants", 16 * d.inst_stride as u64),
            ("the state", 16 * d.state_stride as u64),
        ] {
            if b > bind {
                return Err(invalid(format!(
                    "{what} of one chip of N = {} need {b} bytes; the adapter's largest storage \
                     binding is {bind} bytes",
                    d.n
                )));
            }
            per_chunk = per_chunk.min(bind / b);
        }
        // vec4 indices within a chunk's dW stay u32
        per_chunk = per_chunk.min((u32::MAX as u64 / d.delta_stride as u64).max(1));
        Ok(per_chunk as usize)
    }

    /// How many steps a dispatch runs (default: planned); the results do not depend on it.
    pub fn with_steps_per_dispatch(mut self, k: StepsPerDispatch) -> Self {
        self.steps_request = k;
        self
    }

    /// Chips per chunk and the number of chunks.
    pub fn chunking(&self) -> (usize, usize) {
        (self.chunks[0].count, self.chunks.len())
    }

    pub fn max_chips(&self) -> usize {
        self.max_chips
    }

    pub fn steps_per_dispatch(&self) -> usize {
        self.k_steps
    }

    pub fn dispatches(&self) -> usize {
        self.dispatches
    }

    pub fn device_bytes(&self) -> u64 {
        self.device_bytes
    }

    fn upload_w(&self, buf: &wgpu::Buffer, w: &[f32], what: &str) -> Result<(), EngineError> {
        let n = self.dims.n;
        if w.len() != n * n {
            return Err(EngineError::Shape {
                what: format!("{what} (N x N)"),
                expected: n * n,
                got: w.len(),
            });
        }
        let mut data = Vec::with_capacity(self.dims.delta_stride);
        push_rows(w, n, n, &mut data);
        self.ctx.scoped(&format!("uploading {what}"), || {
            self.ctx
                .queue
                .write_buffer(buf, 0, bytemuck::cast_slice(&data))
        })
    }

    fn download_w(&self, buf: &wgpu::Buffer) -> Result<Vec<f32>, EngineError> {
        let n = self.dims.n;
        let raw = self
            .ctx
            .read_back(buf, 16 * self.dims.delta_stride as u64, WAIT)?;
        let mut w = vec![0f32; n * n];
        unpack_rows(&bytemuck::pod_collect_to_vec::<u8, f32>(&raw), n, &mut w);
        Ok(w)
    }

    /// The W_slow the chips run (without a shadow: the trained one), N x N.
    pub fn w_slow(&self) -> Result<Vec<f32>, EngineError> {
        self.download_w(&self.net_buf)
    }

    /// Replaces the W_slow the chips run (e.g. the best weights, or the re-quantised shadow).
    pub fn set_running_w_slow(&mut self, w: &[f32]) -> Result<(), EngineError> {
        self.upload_w(&self.net_buf, w, "W_slow")
    }

    /// The float shadow W_slow of quantisation-aware training (an error without one).
    pub fn shadow(&self) -> Result<Vec<f32>, EngineError> {
        match &self.shadow {
            Some(b) => self.download_w(b),
            None => Err(invalid("this ensemble trainer has no shadow W_slow".into())),
        }
    }

    pub fn set_shadow(&mut self, w: &[f32]) -> Result<(), EngineError> {
        match &self.shadow {
            Some(b) => self.upload_w(b, w, "the shadow W_slow"),
            None => Err(invalid("this ensemble trainer has no shadow W_slow".into())),
        }
    }

    /// Makes sure the trial buffers hold `steps` steps (and rebuilds the bind groups).
    fn ensure_io(&mut self, steps: usize) -> Result<(), EngineError> {
        let d = self.dims;
        if self.trial_io.as_ref().is_some_and(|io| io.0 >= steps) {
            return Ok(());
        }
        let limits = self.ctx.limits();
        let bind = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let out_bytes = |c: usize| 4 * (c * d.out_stride(steps)) as u64;
        // a long trial's x~ record may outgrow a chunk's binding: fewer chips per chunk
        let fit = (bind / out_bytes(1).max(1)) as usize;
        if (1..self.chunks[0].count).contains(&fit) {
            for ch in self.chunks.drain(..) {
                let io = ch.io.as_ref().map_or(0, |io| io.1.size());
                self.device_bytes -= ch.inst.size()
                    + ch.state.size()
                    + ch.delta.size()
                    + ch.keep.size()
                    + ch.reduce_uni.size()
                    + io;
            }
            let target = self.shadow.as_ref().unwrap_or(&self.net_buf);
            self.chunks = make_chunks(
                &self.ctx,
                &self.reduce_pipe,
                target,
                &d,
                self.max_chips,
                fit,
                &mut self.device_bytes,
            )?;
            // every chunk needs its trial buffers again
            self.trial_io = None;
        }
        let sizes = [
            ("the input", 4 * (steps * d.c_in) as u64),
            ("the target", 16 * (steps * d.ncq) as u64),
            ("the x~ record", out_bytes(self.chunks[0].count)),
        ];
        for (what, b) in sizes {
            if b > bind || b / 4 > u32::MAX as u64 {
                return Err(invalid(format!(
                    "{what} of a {steps}-step trial needs {b} bytes; the adapter's largest \
                     storage binding is {bind} bytes (shorter trials)"
                )));
            }
        }
        let ctx = self.ctx.clone();
        let ro = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        if let Some((_, a, b)) = self.trial_io.take() {
            self.device_bytes -= a.size() + b.size();
        }
        let inputs = create_buffer(
            &ctx,
            "learn_ensemble input",
            sizes[0].1,
            ro,
            &mut self.device_bytes,
        )?;
        let targets = create_buffer(
            &ctx,
            "learn_ensemble target",
            sizes[1].1,
            ro,
            &mut self.device_bytes,
        )?;
        for ch in &mut self.chunks {
            if let Some((_, old, _)) = ch.io.take() {
                self.device_bytes -= old.size();
            }
            let out = create_buffer(
                &ctx,
                "learn_ensemble out",
                out_bytes(ch.count),
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                &mut self.device_bytes,
            )?;
            let bg = ctx.scoped("learn_ensemble bind group", || {
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("learn_ensemble"),
                    layout: &self.pipe.get_bind_group_layout(0),
                    entries: &[
                        entry(0, &self.uni),
                        entry(1, &self.net_buf),
                        entry(2, &ch.inst),
                        entry(3, &inputs),
                        entry(4, &targets),
                        entry(5, &ch.state),
                        entry(6, &out),
                        entry(7, &ch.delta),
                    ],
                })
            })?;
            ch.io = Some((steps, out, bg));
        }
        self.trial_io = Some((steps, inputs, targets));
        Ok(())
    }

    /// One ensemble trial of `net` (the network the chips were drawn from; only its parameters
    /// and fixed matrices are read, W_slow is the device's) on `chips` (at most
    /// [`GpuEnsembleTrainer::max_chips`], all drawn with one seed): `input` (T x C) and
    /// `target_x` (T x Nc). Without a shadow, each chip runs online and W_slow moves by the
    /// mean update of the chips whose rate stayed within `t.max_rate_hz`; with a shadow, the
    /// chips run the fixed W_slow and the mean moves the shadow. Returns what each chip did, as
    /// the CPU's [`crate::learn::ensemble::ensemble_update`] does.
    pub fn train_trial(
        &mut self,
        net: &Network,
        chips: &[Instance],
        input: &[f32],
        target_x: &[f32],
        t: &TrialSettings,
    ) -> Result<Vec<ChipTrial>, EngineError> {
        let d = self.dims;
        let (n, nq, nc) = (d.n, d.nq, d.nc);
        if (net.n, net.nc, net.n_in) != (d.n, d.nc, d.c_in) || net.params != self.params {
            return Err(EngineError::InvalidParams(format!(
                "network N {}, Nc {}, C {} differs from the trainer's N {n}, Nc {nc}, C {} in its \
                 sizes or parameters",
                net.n, net.nc, net.n_in, d.c_in
            )));
        }
        if chips.is_empty() || chips.len() > self.max_chips {
            return Err(invalid(format!(
                "an ensemble trial needs 1 to {} chips, got {}",
                self.max_chips,
                chips.len()
            )));
        }
        let seed = chips[0].seed;
        if let Some(c) = chips.iter().find(|c| c.seed != seed || c.n != n) {
            return Err(invalid(format!(
                "chip {} (seed {}, N {}) differs from chip {} (seed {seed}, N {n}): the chips \
                 of a trial share the seed and the network",
                c.index, c.seed, c.n, chips[0].index
            )));
        }
        let steps = input.len() / d.c_in;
        if input.len() != steps * d.c_in || target_x.len() != steps * nc {
            return Err(EngineError::Shape {
                what: "ensemble training trial (T x C input, T x Nc target)".into(),
                expected: steps * nc,
                got: target_x.len(),
            });
        }
        if !(t.k.is_finite() && t.eta.is_finite()) {
            return Err(EngineError::InvalidParams(format!(
                "k and eta must be finite, got k {}, eta {}",
                t.k, t.eta
            )));
        }
        if steps == 0 {
            return Err(invalid(
                "an ensemble training trial needs at least one step".into(),
            ));
        }
        self.ensure_io(steps)?;

        // the chips' blocks, each followed by its encoder F_chipᵀ
        let blocks: Vec<Vec<[f32; 4]>> = chips
            .par_iter()
            .map(|chip| {
                let mut blk = vec![[0f32; 4]; d.inst_stride];
                instance_block(net, chip, &mut blk[..d.off_f]);
                let mut f = Vec::with_capacity(nc * nq);
                push_rows(&transpose(&chip.effective_f(net), n, nc), nc, n, &mut f);
                blk[d.off_f..].copy_from_slice(&f);
                blk
            })
            .collect();
        // x~ is decoded densely on a chip whose tau_out differs per neuron (InstanceInfo's
        // shared_out flag, vec4 1 lane 1 of its block, is 0)
        let dense_decode = blocks.iter().any(|b| b[1][1] == 0.0);
        let mut tgt = Vec::with_capacity(steps * d.ncq);
        push_rows(target_x, steps, nc, &mut tgt);
        let Some((_, inputs, targets)) = self.trial_io.as_ref() else {
            return Err(EngineError::Backend("trial buffers missing".into()));
        };
        let mut used = Vec::new();
        let mut first = 0;
        for ch in &self.chunks {
            if first >= chips.len() {
                break;
            }
            let count = ch.count.min(chips.len() - first);
            used.push((first, count));
            first += count;
        }
        self.ctx.scoped("uploading the trial", || {
            let q = &self.ctx.queue;
            q.write_buffer(inputs, 0, bytemuck::cast_slice(input));
            q.write_buffer(targets, 0, bytemuck::cast_slice(&tgt));
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            for (ch, &(first, count)) in self.chunks.iter().zip(&used) {
                let flat: Vec<[f32; 4]> = blocks[first..first + count].concat();
                q.write_buffer(&ch.inst, 0, bytemuck::cast_slice(&flat));
                enc.clear_buffer(&ch.delta, 0, Some(16 * (count * d.delta_stride) as u64));
            }
            q.submit([enc.finish()]);
        })?;

        let c = &self.consts;
        let out_stride = d.out_stride(steps);
        let key = key_of(seed);
        let mut uni = Uniform {
            n: n as u32,
            nq: nq as u32,
            nc: nc as u32,
            c_in: d.c_in as u32,
            trial: t.trial_index,
            steps: steps as u32,
            flags: if d.fast { L_FAST } else { 0 }
                | if self.shadow.is_none() { L_ONLINE } else { 0 },
            seed_lo: key[0],
            seed_hi: key[1],
            off_fast: d.off_fast as u32,
            off_d: d.off_d as u32,
            inst_stride: d.inst_stride as u32,
            off_f: d.off_f as u32,
            state_stride: d.state_stride as u32,
            out_stride: out_stride as u32,
            delta_stride: d.delta_stride as u32,
            v_rest: c.v_rest,
            v_reset: c.v_reset,
            bias: c.bias,
            k_fb: t.k,
            eta: t.eta,
            adapt_beta: c.adapt_beta,
            adapt_rho: c.adapt_rho,
            probe: dispatch::PROBE_TRIPS,
            off_status: d.off_status(steps) as u32,
            ..Default::default()
        };
        let cost = learn_loop_cost(&Shape::new(n, nc, self.wg), d.c_in, dense_decode);
        let work = (chips.len() * n) as u64;
        let k_plan = dispatch::plan(&self.ctx, self.steps_request, cost, work, steps);
        self.k_steps = k_plan;
        let groups: Vec<(&wgpu::BindGroup, u32)> = self
            .chunks
            .iter()
            .zip(&used)
            .filter_map(|(ch, &(_, count))| ch.io.as_ref().map(|io| (&io.2, count as u32)))
            .collect();
        self.dispatches += dispatch::run_steps(
            &self.ctx,
            "learn_ensemble dispatch",
            &self.uni,
            &self.pipe,
            &groups,
            steps,
            k_plan,
            WAIT,
            |t_start, k| {
                uni.t_start = t_start;
                uni.k_steps = k;
                bytemuck::bytes_of(&uni).to_vec()
            },
        )?;

        // what each chip did, and which chips are kept
        let mut trials = Vec::with_capacity(chips.len());
        let off_status = d.off_status(steps);
        for (ch, &(first, count)) in self.chunks.iter().zip(&used) {
            let Some((_, out, _)) = ch.io.as_ref() else {
                return Err(EngineError::Backend("trial buffers missing".into()));
            };
            let raw = self
                .ctx
                .read_back(out, 4 * (count * out_stride) as u64, WAIT)?;
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
            for (kk, chip) in chips[first..first + count].iter().enumerate() {
                let w = &words[kk * out_stride..(kk + 1) * out_stride];
                let (spikes, x_hat) =
                    read_learn_out(&self.ctx, "learn_ensemble", w, n, off_status, k_plan)?;
                let stats = TrainTrialStats::of_trial(net, spikes, steps, target_x, &x_hat);
                trials.push(ChipTrial {
                    index: chip.index,
                    skipped: !t.keeps(&stats),
                    stats,
                });
            }
        }

        // the mean of the kept chips' dW into W_slow (or the shadow), chunk by chunk
        let kept = trials.iter().filter(|c| !c.skipped).count();
        if kept > 0 {
            self.ctx.scoped("adding the mean update", || {
                let q = &self.ctx.queue;
                let mut enc = self.ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.reduce_pipe);
                    for (ch, &(first, count)) in self.chunks.iter().zip(&used) {
                        let keep: Vec<u32> = trials[first..first + count]
                            .iter()
                            .map(|c| !c.skipped as u32)
                            .collect();
                        q.write_buffer(&ch.keep, 0, bytemuck::cast_slice(&keep));
                        let ru = ReduceUniform {
                            len: d.delta_stride as u32,
                            chips: count as u32,
                            stride: d.delta_stride as u32,
                            scale: 1.0 / kept as f32,
                        };
                        q.write_buffer(&ch.reduce_uni, 0, bytemuck::bytes_of(&ru));
                        pass.set_bind_group(0, &ch.reduce_bg, &[]);
                        pass.dispatch_workgroups(self.reduce_groups, 1, 1);
                    }
                }
                q.submit([enc.finish()]);
            })?;
        }
        Ok(trials)
    }
}
