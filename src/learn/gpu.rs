//! GPU training of W_slow by the local rule (docs/design.md §2 "Learning rule", §6): several networks
//! at once, one workgroup per network. The CPU twin is [`crate::learn::rule::Trainer::step`] /
//! [`crate::learn::train_trial`]; the shader is `shaders/learn.wgsl`, compiled with the shared
//! LIF step `shaders/lif_step.wgsl` prepended (see [`crate::engine::gpu::shaders`]).
//!
//! Per step (the CPU's order): the nominal network step with the feedback current of the
//! previous step, then `e = x - x~`, `F e`, `I_fb = k F e` for the next step and the exact
//! rank-1 update `W_slow[pre][post] += eta r_pre (F e)_post`, diagonal kept 0.
//!
//! W_slow of every network lives in a device buffer for the whole training (N² floats per
//! network): uploaded by [`GpuTrainer::new`] / [`GpuTrainer::upload`], read back only by
//! [`GpuTrainer::download`]. A trial uploads its inputs, targets and initial state (initial V
//! drawn on the host by the same [`initial_v`] as the CPU trainer, instance word
//! [`TRAIN_INSTANCE`]), runs K steps per dispatch (K planned by [`crate::engine::gpu::dispatch`] from the
//! sizes and the adapter; the results do not depend on it), and reads back the spike counts, x~
//! (T x Nc per network) and the loop check's status word once at the end.
//!
//! Networks are split into chunks by the adapter's limits (workgroups per dimension, storage
//! binding size); all chunks advance together, one submit per K steps.

use std::sync::Arc;
use std::time::Duration;

use crate::chip::instance::initial_v;
use crate::chip::rng::TRAIN_INSTANCE;
use crate::engine::EngineError;
use crate::engine::gpu::dispatch::{self, LoopCost, STATUS_OK, StepsPerDispatch, trips};
use crate::engine::gpu::shaders::{self, Shape};
use crate::engine::gpu::{GpuContext, compile_pipeline, create_buffer, entry, push_rows};
use crate::engine::lif_step::NeuronConsts;
use crate::engine::transpose;
use crate::learn::{TrainTrialStats, reconstruction_error};
use crate::snn::{Network, SnnParams};

/// Preferred workgroup size (shrunk for small networks, clamped to the device limits).
const PREFERRED_WG: u32 = 64;
const L_FAST: u32 = 1;

/// Longest wait for one dispatch or read-back.
const WAIT: Duration = Duration::from_secs(600);

/// The uniform block of `learn.wgsl` (field order and types must match `struct LearnJob`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct LearnUniform {
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
    probe: u32,
    off_status: u32,
    adapt_rho: f32,
}

/// Sizes shared by every network of a trainer (vec4 units unless noted).
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    nq: usize,
    nc: usize,
    ncq: usize,
    c_in: usize,
    fast: bool,
    /// Per network: W_fastᵀ (when `fast`), Dᵀ, Fᵀ, P.
    net_stride: usize,
    off_d: usize,
    off_ft: usize,
    off_proj: usize,
    /// W_slow per network: N rows of nq.
    ws_stride: usize,
    /// V, I_fast, I_slow, r, a, I_fb, x~.
    state_stride: usize,
}

impl Dims {
    fn new(net: &Network, fast: bool) -> Dims {
        let (n, nc, c_in) = (net.n, net.nc, net.n_in);
        let (nq, ncq) = (n.div_ceil(4), nc.div_ceil(4));
        let off_d = if fast { n * nq } else { 0 };
        let off_ft = off_d + n * ncq;
        let off_proj = off_ft + nc * nq;
        Dims {
            n,
            nq,
            nc,
            ncq,
            c_in,
            fast,
            net_stride: off_proj + c_in * nq,
            off_d,
            off_ft,
            off_proj,
            ws_stride: n * nq,
            state_stride: (crate::engine::gpu::shaders::STATE_BLOCKS + 1) * nq + ncq,
        }
    }

    /// u32 words of `out` per network for a trial of `steps` steps: spike counts, x~, status.
    fn out_stride(&self, steps: usize) -> usize {
        self.off_status(steps) + 1
    }

    /// Offset of the loop check's status word in a network's `out`.
    fn off_status(&self, steps: usize) -> usize {
        4 * self.nq + steps * self.nc
    }

    /// Upper bound of the loop iterations one `learn` invocation spends (see [`learn_loop_cost`]).
    fn loop_cost(&self, wg: u32) -> LoopCost {
        learn_loop_cost(&Shape::new(self.n, self.nc, wg), self.c_in, false)
    }
}

/// Upper bound of the loop iterations one invocation of a learning kernel (`shaders/learn.wgsl`,
/// `shaders/learn_ensemble.wgsl`) spends (see [`crate::engine::gpu::dispatch`]), every neuron
/// spiking at every step; it follows the kernels' loops one by one (a loop of n trips costs
/// n + 1), counting those the compiler may unroll. `dense_decode`: x~ may be decoded densely
/// (a chip with per-neuron tau_out, `chip.wgsl`'s `decode_xs`).
pub(super) fn learn_loop_cost(shape: &Shape, c_in: usize, dense_decode: bool) -> LoopCost {
    let (n, nq, ncq, qpi, kpi) = (
        4 * shape.nq as u64,
        shape.nq as u64,
        shape.ncq as u64,
        shape.qpi as u64,
        shape.kpi as u64,
    );
    let dispatch::SharedLoops { cost, spike_walk } = dispatch::shared_loops(shape, n, c_in as u64);
    // propagation: per owned quad, a walk over the spikes
    let propagate = trips(qpi) + qpi * spike_walk;
    let per_kq = if dense_decode {
        spike_walk.max(trips(nq) + nq * trips(4))
    } else {
        spike_walk
    };
    let decode = trips(kpi) + kpi * per_kq;
    let record = trips(kpi) + kpi * trips(4);
    let feedback = trips(qpi) + qpi * (trips(ncq) + ncq * trips(4));
    let update = trips(n) + n * trips(qpi);
    LoopCost {
        // + persisting I_fb
        per_dispatch: cost.per_dispatch + trips(qpi),
        per_step: cost.per_step + propagate + decode + record + feedback + update,
    }
}

/// One network's or chip's `out` block of a learning kernel (u32 words: spike counts of 4 nq
/// neurons, x~ [t][k] as f32 bits up to `off_status`, the loop check's status word): its spike
/// total over the `n` neurons and x~. A cut dispatch is an error: the weights were updated in
/// place, so it cannot be redone.
pub(super) fn read_learn_out(
    ctx: &GpuContext,
    shader: &str,
    w: &[u32],
    n: usize,
    off_status: usize,
    k_plan: usize,
) -> Result<(u64, Vec<f32>), EngineError> {
    if w[off_status] != STATUS_OK {
        return Err(EngineError::Backend(dispatch::cut_short_error(
            ctx,
            shader,
            w[off_status],
            k_plan,
        )));
    }
    let nq = n.div_ceil(4);
    let spikes = w[..n].iter().map(|&x| x as u64).sum();
    let x_hat = w[4 * nq..off_status]
        .iter()
        .map(|&x| f32::from_bits(x))
        .collect();
    Ok((spikes, x_hat))
}

/// An N x N matrix from its vec4 rows of nq (as `push_rows` packs it) into `out`.
pub(super) fn unpack_rows(vals: &[f32], n: usize, out: &mut [f32]) {
    let nq = n.div_ceil(4);
    for pre in 0..n {
        out[pre * n..(pre + 1) * n].copy_from_slice(&vals[4 * pre * nq..4 * pre * nq + n]);
    }
}

/// The workgroup size of a learning kernel for `nq` quads and `ncq` k-quads: no more invocations
/// than quads (or k-quads), within the adapter's limits; and a check that its workgroup memory
/// fits (rs for two steps, es and x~, the two spike masks, the loop check's word).
pub(super) fn learn_workgroup(
    limits: &wgpu::Limits,
    nq: usize,
    ncq: usize,
) -> Result<u32, EngineError> {
    let wg = PREFERRED_WG
        .min(nq.max(ncq).next_power_of_two() as u32)
        .min(limits.max_compute_workgroup_size_x)
        .min(limits.max_compute_invocations_per_workgroup)
        .max(1);
    let wg_mem = 2 * 16 * nq + 2 * 16 * ncq + 2 * 4 * nq.div_ceil(8) + 4;
    if wg_mem as u64 > limits.max_compute_workgroup_storage_size as u64 {
        return Err(invalid(format!(
            "N = {} (padded), Nc = {} (padded) need {wg_mem} bytes of workgroup memory; the \
             adapter allows {}",
            4 * nq,
            4 * ncq,
            limits.max_compute_workgroup_storage_size
        )));
    }
    Ok(wg)
}

/// The per-network constant block (`nets` buffer), `dims.net_stride` vec4.
fn net_block(net: &Network, dims: &Dims, out: &mut Vec<[f32; 4]>) {
    let (n, nc, c_in) = (dims.n, dims.nc, dims.c_in);
    if dims.fast {
        push_rows(&net.w_fast, n, n, out);
    }
    push_rows(&transpose(&net.d, nc, n), n, nc, out);
    push_rows(&transpose(&net.f, n, nc), nc, n, out);
    push_rows(&transpose(&net.input_projection(), n, c_in), c_in, n, out);
}

/// The buffers of one chunk of networks; the trial-sized ones grow on demand.
struct Chunk {
    first: usize,
    count: usize,
    nets: wgpu::Buffer,
    wslow: wgpu::Buffer,
    state: wgpu::Buffer,
    io: Option<ChunkIo>,
}

struct ChunkIo {
    steps_cap: usize,
    inputs: wgpu::Buffer,
    targets: wgpu::Buffer,
    out: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Trains W_slow of several networks at once on the GPU; see the module docs.
pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    pipe: wgpu::ComputePipeline,
    uni: wgpu::Buffer,
    dims: Dims,
    params: SnnParams,
    consts: NeuronConsts,
    n_nets: usize,
    chunks: Vec<Chunk>,
    wg: u32,
    steps_request: StepsPerDispatch,
    /// Steps per dispatch of the last trial.
    k_steps: usize,
    dispatches: usize,
    device_bytes: u64,
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidJob(msg)
}

impl GpuTrainer {
    /// A trainer for `nets` (at least one), which must share N, Nc, C and the parameters; each
    /// keeps its own D, F, W_fast and W_slow. W_slow is uploaded here.
    pub fn new(ctx: Arc<GpuContext>, nets: &[Network]) -> Result<Self, EngineError> {
        Self::with_max_nets_per_chunk(ctx, nets, usize::MAX)
    }

    /// As [`GpuTrainer::new`], with at most `max_per_chunk` (>= 1) networks per chunk (to test
    /// the chunked path; the adapter's limits may give fewer).
    pub fn with_max_nets_per_chunk(
        ctx: Arc<GpuContext>,
        nets: &[Network],
        max_per_chunk: usize,
    ) -> Result<Self, EngineError> {
        let Some(first) = nets.first() else {
            return Err(invalid("GpuTrainer needs at least one network".into()));
        };
        for (i, net) in nets.iter().enumerate() {
            net.validate_shapes()?;
            if (net.n, net.nc, net.n_in) != (first.n, first.nc, first.n_in)
                || net.params != first.params
            {
                return Err(EngineError::InvalidParams(format!(
                    "network {i} (N {}, Nc {}, C {}) differs from network 0 (N {}, Nc {}, C {}) \
                     in its sizes or parameters; a GpuTrainer's networks must share them",
                    net.n, net.nc, net.n_in, first.n, first.nc, first.n_in
                )));
            }
        }
        if first.n == 0 || first.nc == 0 || first.n_in == 0 {
            return Err(invalid(format!(
                "N, Nc and C must be positive (N {}, Nc {}, C {})",
                first.n, first.nc, first.n_in
            )));
        }
        let fast = nets.iter().any(|net| net.w_fast.iter().any(|&w| w != 0.0));
        let dims = Dims::new(first, fast);
        let consts = NeuronConsts::nominal(first);
        let limits = ctx.limits().clone();

        let wg = learn_workgroup(&limits, dims.nq, dims.ncq)?;
        let bind = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let per_net = [
            ("W_slow", 16 * dims.ws_stride as u64),
            ("the constant weights", 16 * dims.net_stride as u64),
            ("the state", 16 * dims.state_stride as u64),
        ];
        let mut per_chunk =
            (limits.max_compute_workgroups_per_dimension as u64).min(max_per_chunk.max(1) as u64);
        for (what, b) in per_net {
            if b > bind {
                return Err(invalid(format!(
                    "{what} of one network need {b} bytes; the adapter's largest storage \
                     binding is {bind} bytes"
                )));
            }
            per_chunk = per_chunk.min(bind / b);
        }
        if (dims.n as u64) * (dims.nq as u64) * per_chunk > u32::MAX as u64 {
            per_chunk = (u32::MAX as u64 / (dims.n as u64 * dims.nq as u64)).max(1);
        }
        let per_chunk = per_chunk as usize;

        let src = shaders::learn(&Shape::new(dims.n, dims.nc, wg));
        let pipe = compile_pipeline(&ctx, &src, "learn")?;

        let mut bytes = 0u64;
        let uni = create_buffer(
            &ctx,
            "learn uniform",
            std::mem::size_of::<LearnUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            &mut bytes,
        )?;
        let mut chunks = Vec::new();
        let ro = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let rw = ro | wgpu::BufferUsages::COPY_SRC;
        let mut first_net = 0;
        while first_net < nets.len() {
            let count = per_chunk.min(nets.len() - first_net);
            let mut data = Vec::with_capacity(count * dims.net_stride);
            for net in &nets[first_net..first_net + count] {
                net_block(net, &dims, &mut data);
            }
            debug_assert_eq!(data.len(), count * dims.net_stride);
            let nets_buf =
                create_buffer(&ctx, "learn nets", 16 * data.len() as u64, ro, &mut bytes)?;
            ctx.scoped("uploading the networks", || {
                ctx.queue
                    .write_buffer(&nets_buf, 0, bytemuck::cast_slice(&data))
            })?;
            let wslow = create_buffer(
                &ctx,
                "learn W_slow",
                16 * (count * dims.ws_stride) as u64,
                rw,
                &mut bytes,
            )?;
            let state = create_buffer(
                &ctx,
                "learn state",
                16 * (count * dims.state_stride) as u64,
                ro,
                &mut bytes,
            )?;
            chunks.push(Chunk {
                first: first_net,
                count,
                nets: nets_buf,
                wslow,
                state,
                io: None,
            });
            first_net += count;
        }
        let mut tr = GpuTrainer {
            ctx,
            pipe,
            uni,
            dims,
            params: first.params.clone(),
            consts,
            n_nets: nets.len(),
            chunks,
            wg,
            steps_request: StepsPerDispatch::Auto,
            k_steps: 0,
            dispatches: 0,
            device_bytes: bytes,
        };
        tr.upload(nets)?;
        Ok(tr)
    }

    /// Number of networks trained.
    pub fn len(&self) -> usize {
        self.n_nets
    }

    pub fn is_empty(&self) -> bool {
        self.n_nets == 0
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Networks per chunk (the first chunk's size) and the number of chunks.
    pub fn chunking(&self) -> (usize, usize) {
        (self.chunks[0].count, self.chunks.len())
    }

    /// How many steps a dispatch runs (default: planned, see [`crate::engine::gpu::dispatch`]). The results do not
    /// depend on it.
    pub fn with_steps_per_dispatch(mut self, k: StepsPerDispatch) -> Self {
        self.steps_request = k;
        self
    }

    /// Steps per dispatch (K) of the last trial.
    pub fn steps_per_dispatch(&self) -> usize {
        self.k_steps
    }

    pub fn workgroup_size(&self) -> u32 {
        self.wg
    }

    /// Dispatches issued so far (one per K steps, all chunks together).
    pub fn dispatches(&self) -> usize {
        self.dispatches
    }

    /// Bytes of the device buffers currently allocated.
    pub fn device_bytes(&self) -> u64 {
        self.device_bytes
    }

    fn check_nets(&self, nets: &[Network], what: &str) -> Result<(), EngineError> {
        if nets.len() != self.n_nets {
            return Err(EngineError::Shape {
                what: format!("{what}: networks"),
                expected: self.n_nets,
                got: nets.len(),
            });
        }
        for net in nets {
            net.validate_shapes()?;
            if (net.n, net.nc, net.n_in) != (self.dims.n, self.dims.nc, self.dims.c_in) {
                return Err(EngineError::Shape {
                    what: format!("{what}: W_slow (N x N)"),
                    expected: self.dims.n * self.dims.n,
                    got: net.n * net.n,
                });
            }
        }
        Ok(())
    }

    /// Replaces the device W_slow of every network by `nets[i].w_slow` (e.g. to restore the best
    /// weights). Only W_slow is read; the other matrices stay those given to `new`.
    pub fn upload(&mut self, nets: &[Network]) -> Result<(), EngineError> {
        self.check_nets(nets, "GpuTrainer::upload")?;
        let n = self.dims.n;
        for ch in &self.chunks {
            let mut data = Vec::with_capacity(ch.count * self.dims.ws_stride);
            for net in &nets[ch.first..ch.first + ch.count] {
                push_rows(&net.w_slow, n, n, &mut data);
            }
            self.ctx.scoped("uploading W_slow", || {
                self.ctx
                    .queue
                    .write_buffer(&ch.wslow, 0, bytemuck::cast_slice(&data))
            })?;
        }
        Ok(())
    }

    /// Copies the current W_slow of every network back into `nets` (same order as `new`).
    pub fn download(&self, nets: &mut [Network]) -> Result<(), EngineError> {
        self.check_nets(nets, "GpuTrainer::download")?;
        let (n, nq) = (self.dims.n, self.dims.nq);
        for ch in &self.chunks {
            let raw = self.ctx.read_back(
                &ch.wslow,
                16 * (ch.count * self.dims.ws_stride) as u64,
                WAIT,
            )?;
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&raw);
            for (k, net) in nets[ch.first..ch.first + ch.count].iter_mut().enumerate() {
                let base = 4 * k * self.dims.ws_stride;
                unpack_rows(&vals[base..base + 4 * n * nq], n, &mut net.w_slow);
            }
        }
        Ok(())
    }

    /// Makes sure every chunk's trial buffers hold `steps` steps.
    fn ensure_io(&mut self, steps: usize) -> Result<(), EngineError> {
        let d = self.dims;
        let limits = self.ctx.limits();
        let bind = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        for ch in &mut self.chunks {
            if ch.io.as_ref().is_some_and(|io| io.steps_cap >= steps) {
                continue;
            }
            let cnt = ch.count as u64;
            let sizes = [
                ("the inputs", 4 * cnt * (steps * d.c_in) as u64),
                ("the targets", 16 * cnt * (steps * d.ncq) as u64),
                ("the x~ record", 4 * cnt * d.out_stride(steps) as u64),
            ];
            for (what, b) in sizes {
                if b > bind || b / 4 > u32::MAX as u64 {
                    return Err(invalid(format!(
                        "{what} of a {steps}-step trial for {cnt} networks need {b} bytes; the \
                         adapter's largest storage binding is {bind} bytes (shorter trials)"
                    )));
                }
            }
            if let Some(old) = ch.io.take() {
                self.device_bytes -= [&old.inputs, &old.targets, &old.out]
                    .iter()
                    .map(|b| b.size())
                    .sum::<u64>();
            }
            let ctx = &self.ctx;
            let ro = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
            let bytes = &mut self.device_bytes;
            let inputs = create_buffer(ctx, "learn inputs", sizes[0].1, ro, bytes)?;
            let targets = create_buffer(ctx, "learn targets", sizes[1].1, ro, bytes)?;
            let out = create_buffer(
                ctx,
                "learn out",
                sizes[2].1,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                bytes,
            )?;
            let bind_group = ctx.scoped("learn bind group", || {
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("learn"),
                    layout: &self.pipe.get_bind_group_layout(0),
                    entries: &[
                        entry(0, &self.uni),
                        entry(1, &ch.nets),
                        entry(2, &inputs),
                        entry(3, &targets),
                        entry(4, &ch.wslow),
                        entry(5, &ch.state),
                        entry(6, &out),
                    ],
                })
            })?;
            ch.io = Some(ChunkIo {
                steps_cap: steps,
                inputs,
                targets,
                out,
                bind_group,
            });
        }
        Ok(())
    }

    /// One trial per network: `inputs[i]` (T x C) and `targets[i]` (T x Nc, the teacher's
    /// tanh(h)) with feedback gain `k` and learning rate `eta`; the initial V of network i is
    /// drawn from `(seeds[i], TRAIN_INSTANCE, trial_indices[i])` like the CPU trainer's. All
    /// networks' trials must have the same T. Returns the statistics per network, as
    /// [`crate::learn::train_trial`] does.
    pub fn train_trial(
        &mut self,
        inputs: &[&[f32]],
        targets: &[&[f32]],
        k: f32,
        eta: f32,
        seeds: &[u64],
        trial_indices: &[u32],
    ) -> Result<Vec<TrainTrialStats>, EngineError> {
        let d = self.dims;
        let m = self.n_nets;
        for (what, len) in [
            ("inputs", inputs.len()),
            ("targets", targets.len()),
            ("seeds", seeds.len()),
            ("trial indices", trial_indices.len()),
        ] {
            if len != m {
                return Err(EngineError::Shape {
                    what: format!("GpuTrainer::train_trial: {what} (one per network)"),
                    expected: m,
                    got: len,
                });
            }
        }
        let steps = inputs[0].len() / d.c_in;
        for (i, (inp, tgt)) in inputs.iter().zip(targets).enumerate() {
            if inp.len() != steps * d.c_in {
                return Err(EngineError::Shape {
                    what: format!("training input of network {i} (T x C, T = {steps})"),
                    expected: steps * d.c_in,
                    got: inp.len(),
                });
            }
            if tgt.len() != steps * d.nc {
                return Err(EngineError::Shape {
                    what: format!("training target of network {i} (T x Nc)"),
                    expected: steps * d.nc,
                    got: tgt.len(),
                });
            }
        }
        if !(k.is_finite() && eta.is_finite()) {
            return Err(EngineError::InvalidParams(format!(
                "k and eta must be finite, got k {k}, eta {eta}"
            )));
        }
        if steps == 0 {
            return Ok(targets
                .iter()
                .map(|t| TrainTrialStats {
                    spikes: 0,
                    mean_rate_hz: 0.0,
                    recon_error: reconstruction_error(t, &[], d.nc),
                })
                .collect());
        }
        self.ensure_io(steps)?;

        // upload the trial: inputs, padded targets, initial state
        let c = &self.consts;
        let mut v0 = vec![0f32; d.n];
        for ch in &self.chunks {
            let Some(io) = ch.io.as_ref() else {
                return Err(EngineError::Backend("trial buffers missing".into()));
            };
            let r = ch.first..ch.first + ch.count;
            let inp: Vec<f32> = inputs[r.clone()]
                .iter()
                .flat_map(|x| x.iter())
                .copied()
                .collect();
            let mut tgt = Vec::with_capacity(ch.count * steps * d.ncq);
            let mut state = vec![[0f32; 4]; ch.count * d.state_stride];
            for (kk, i) in r.enumerate() {
                push_rows(targets[i], steps, d.nc, &mut tgt);
                initial_v(
                    seeds[i],
                    TRAIN_INSTANCE,
                    trial_indices[i],
                    c.v_reset,
                    &c.v_th,
                    &mut v0,
                );
                let blk = &mut state[kk * d.state_stride..kk * d.state_stride + d.nq];
                for (q, v4) in blk.iter_mut().enumerate() {
                    for (l, x) in v4.iter_mut().enumerate() {
                        if let Some(&v) = v0.get(4 * q + l) {
                            *x = v;
                        }
                    }
                }
            }
            self.ctx.scoped("uploading the trial", || {
                let q = &self.ctx.queue;
                q.write_buffer(&io.inputs, 0, bytemuck::cast_slice(&inp));
                q.write_buffer(&io.targets, 0, bytemuck::cast_slice(&tgt));
                q.write_buffer(&ch.state, 0, bytemuck::cast_slice(&state));
            })?;
        }

        let out_stride = d.out_stride(steps);
        let mut uni = LearnUniform {
            n: d.n as u32,
            nq: d.nq as u32,
            nc: d.nc as u32,
            c_in: d.c_in as u32,
            steps: steps as u32,
            flags: if d.fast { L_FAST } else { 0 },
            net_stride: d.net_stride as u32,
            off_d: d.off_d as u32,
            off_ft: d.off_ft as u32,
            off_proj: d.off_proj as u32,
            state_stride: d.state_stride as u32,
            out_stride: out_stride as u32,
            ws_stride: d.ws_stride as u32,
            v_rest: c.v_rest,
            v_reset: c.v_reset,
            bias: c.bias,
            adapt_beta: c.adapt_beta,
            adapt_rho: c.adapt_rho,
            alpha: c.alpha[0],
            v_th: c.v_th[0],
            dec_fast: c.decay_fast[0],
            inv_fast: c.inv_tau_fast[0],
            dec_slow: c.decay_slow[0],
            inv_slow: c.inv_tau_slow[0],
            dec_out: c.decay_out[0],
            inv_out: c.inv_tau_out[0],
            k_fb: k,
            eta,
            probe: dispatch::PROBE_TRIPS,
            off_status: d.off_status(steps) as u32,
            ..Default::default()
        };
        let work = (m * d.n) as u64;
        let k_plan = dispatch::plan(
            &self.ctx,
            self.steps_request,
            d.loop_cost(self.wg),
            work,
            steps,
        );
        self.k_steps = k_plan;
        let groups: Vec<(&wgpu::BindGroup, u32)> = self
            .chunks
            .iter()
            .filter_map(|ch| ch.io.as_ref().map(|io| (&io.bind_group, ch.count as u32)))
            .collect();
        self.dispatches += dispatch::run_steps(
            &self.ctx,
            "learn dispatch",
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

        // read back spike counts and x~, statistics as the CPU trainer computes them
        let secs = steps as f32 * self.params.dt_s();
        let mut stats = Vec::with_capacity(m);
        for ch in &self.chunks {
            let Some(io) = ch.io.as_ref() else {
                return Err(EngineError::Backend("trial buffers missing".into()));
            };
            let raw = self
                .ctx
                .read_back(&io.out, 4 * (ch.count * out_stride) as u64, WAIT)?;
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
            let off_status = d.off_status(steps);
            for kk in 0..ch.count {
                let w = &words[kk * out_stride..(kk + 1) * out_stride];
                let (spikes, x_hat) =
                    read_learn_out(&self.ctx, "learn", w, d.n, off_status, k_plan)?;
                stats.push(TrainTrialStats {
                    spikes,
                    mean_rate_hz: spikes as f32 / (d.n as f32 * secs),
                    recon_error: reconstruction_error(targets[ch.first + kk], &x_hat, d.nc),
                });
            }
        }
        Ok(stats)
    }
}
