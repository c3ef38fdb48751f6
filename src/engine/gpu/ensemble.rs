//! The GPU ensemble engine: [`GpuEngine`], its pipelines, chunking and the dispatch loop of
//! `shaders/lif_ensemble.wgsl` (the buffers it fills are described in [`super::layout`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rayon::prelude::*;

use super::context::{GpuAdapterInfo, GpuContext};
use super::dispatch::{self, LoopCost, STATUS_OK, StepsPerDispatch, trips};
use super::layout::*;
use super::shaders::{self, Shape};
use super::{compile_pipeline, create_buffer, entry};
use crate::chip::Instance;
use crate::chip::rng::Stream;
use crate::engine::{Engine, EngineError, EnsembleJob, EnsembleOutput, TrialOutput, validate_job};

/// Preferred workgroup size (clamped to the device limits).
const PREFERRED_WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RngTestUniform {
    key: [u32; 2],
    instance: u32,
    stream: u32,
    a0: u32,
    count: u32,
    _pad: [u32; 2],
}

/// Raw Philox words and `normal4` values from the WGSL test kernel.
pub type RngDraws = (Vec<[u32; 4]>, Vec<[f32; 4]>);

/// Upper bound of the loop iterations one `lif_ensemble` invocation spends (see [`dispatch`]),
/// every neuron spiking at every step; it follows the loops of `shaders/lif_ensemble.wgsl` one
/// by one (a loop of n trips costs n + 1). Loops with a constant trip count may be unrolled by
/// the compiler and cost nothing; they are counted anyway.
fn ensemble_loop_cost(shape: &Shape, lay: &Layout, flags: u32) -> LoopCost {
    let (kpi, nw, ncq, wg) = (
        shape.kpi as u64,
        shape.nw as u64,
        shape.ncq as u64,
        shape.wg as u64,
    );
    let (n, nq) = (lay.n as u64, lay.nq as u64);
    // counted with the propagation even when W_slow and W_fast are zero (an upper bound)
    let dispatch::SharedLoops { cost, spike_walk } =
        dispatch::shared_loops(shape, n, lay.c_in as u64);
    let qpi = shape.qpi as u64;
    // the extra synapse types: a loop over the KX types per owned quad when loading and storing
    // the currents (per dispatch), adding them to I and decaying them (per step), and per spike
    // and owned quad in the propagation. With KX = 0 those loops have a constant bound of no
    // trip and the compiler drops them (the kernel without the types), so they cost nothing.
    let kx = shape.kx as u64;
    let per_type_loop = if kx > 0 { trips(kx) } else { 0 };
    // (store_extra's own loop over the owned quads is counted even then)
    let extra_dispatch = trips(qpi) + 2 * qpi * per_type_loop;
    let extra_step = 2 * qpi * per_type_loop;
    // propagation: per spike, over the owned quads (and per quad over the extra types)
    let propagate = spike_walk + n * (trips(qpi) + qpi * per_type_loop);
    // x~: per spike with a shared tau_out, dense over the quads otherwise (the larger)
    let decode = trips(kpi) + kpi * spike_walk.max(trips(nq) + nq * trips(4));
    let outs = (lay.n_out as u64).div_ceil(wg);
    let readout = trips(outs) + outs * (trips(ncq) + ncq * trips(4));
    let rec_x = if flags & F_REC_X != 0 {
        trips(kpi) + kpi * trips(4)
    } else {
        0
    };
    // the spike record: words lid, lid + WG, ...
    let rec_spk = if flags & F_REC_SPK != 0 {
        trips(nw.div_ceil(wg))
    } else {
        0
    };
    LoopCost {
        per_dispatch: cost.per_dispatch + extra_dispatch,
        per_step: cost.per_step + extra_step + propagate + decode + readout + rec_x + rec_spk,
    }
}

/// What the last `simulate` call did (for benchmarks and metadata).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuRunStats {
    pub chunks: usize,
    pub pairs_per_chunk: usize,
    pub dispatches: usize,
    /// Bytes of every buffer the job allocated (device and staging).
    pub device_bytes: u64,
    /// Workgroup size used.
    pub workgroup_size: u32,
    /// Steps per dispatch (K) of the last chunk.
    pub steps_per_dispatch: usize,
    /// Device time of the job's compute passes (GPU timestamp queries); `None` where the
    /// adapter cannot time them.
    pub kernel_seconds: Option<f64>,
}

/// The GPU engine. Holds the device and the compiled pipelines (one per shader shape).
pub struct GpuEngine {
    ctx: Arc<GpuContext>,
    pipelines: Mutex<HashMap<Shape, wgpu::ComputePipeline>>,
    max_pairs_override: Option<usize>,
    workgroup_override: Option<u32>,
    steps_request: StepsPerDispatch,
    last_bytes: AtomicU64,
    stats: Mutex<GpuRunStats>,
}

impl GpuEngine {
    /// Opens the best adapter (see [`context`]) or fails with `EngineError::Backend`.
    pub fn new() -> Result<Self, EngineError> {
        Ok(Self::with_context(GpuContext::new()?))
    }

    pub fn with_context(ctx: GpuContext) -> Self {
        Self::with_shared_context(Arc::new(ctx))
    }

    /// An engine on a context shared with others (e.g. the GPU trainer).
    pub fn with_shared_context(ctx: Arc<GpuContext>) -> Self {
        GpuEngine {
            ctx,
            pipelines: Mutex::new(HashMap::new()),
            max_pairs_override: None,
            workgroup_override: None,
            steps_request: StepsPerDispatch::Auto,
            last_bytes: AtomicU64::new(0),
            stats: Mutex::new(GpuRunStats::default()),
        }
    }

    /// Caps the (instance, trial) pairs per chunk below what the limits allow (testing the
    /// chunked path; `n >= 1`).
    pub fn with_max_pairs_per_chunk(mut self, n: usize) -> Self {
        self.max_pairs_override = Some(n.max(1));
        self
    }

    /// How many steps a dispatch runs (default: planned, see [`dispatch`]). The results do not
    /// depend on it.
    pub fn with_steps_per_dispatch(mut self, k: StepsPerDispatch) -> Self {
        self.steps_request = k;
        self
    }

    /// Requests a workgroup size (clamped to the device limits); default 64.
    pub fn with_workgroup_size(mut self, wg: u32) -> Self {
        self.workgroup_override = Some(wg.max(1));
        self
    }

    pub fn adapter(&self) -> GpuAdapterInfo {
        self.ctx.adapter_info()
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The context, to share it with the GPU trainer or another engine.
    pub fn shared_context(&self) -> Arc<GpuContext> {
        self.ctx.clone()
    }

    /// Bytes of every buffer allocated by the last job.
    pub fn device_bytes(&self) -> u64 {
        self.last_bytes.load(Ordering::Relaxed)
    }

    pub fn last_stats(&self) -> GpuRunStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn binding_limit(&self) -> u64 {
        let l = self.ctx.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }

    fn workgroup_size(&self) -> u32 {
        let l = self.ctx.limits();
        self.workgroup_override
            .unwrap_or(PREFERRED_WG)
            .min(l.max_compute_workgroup_size_x)
            .min(l.max_compute_invocations_per_workgroup)
            .max(1)
    }

    /// Pairs per chunk for `job` from the device limits (and the test override).
    pub fn pairs_per_chunk(&self, job: &EnsembleJob) -> Result<usize, EngineError> {
        let lay = Layout::new(job);
        self.pairs_for(&lay, job.inputs.len().max(1))
    }

    fn pairs_for(&self, lay: &Layout, n_trials: usize) -> Result<usize, EngineError> {
        let bind = self.binding_limit();
        let state_b = 16 * lay.state_stride as u64;
        let out_b = 4 * lay.out_stride as u64;
        let inst_b = 16 * lay.inst_stride as u64;
        let mut p = (self.ctx.limits().max_compute_workgroups_per_dimension as u64)
            .min(bind / state_b)
            .min(bind / out_b);
        // chunks are instance-aligned when p >= n_trials (then p is a multiple of n_trials),
        // else they split one instance's trials: a chunk holds max(1, p / n_trials) instances
        let max_inst = bind / inst_b;
        if max_inst == 0 {
            p = 0;
        } else {
            p = p.min(max_inst.saturating_mul(n_trials as u64).max(1));
        }
        if let Some(o) = self.max_pairs_override {
            p = p.min(o as u64);
        }
        let nt = n_trials as u64;
        if p >= nt {
            p -= p % nt;
        }
        if p == 0 {
            return Err(EngineError::InvalidJob(format!(
                "one (instance, trial) pair needs {out_b} bytes of output, {state_b} of state and \
                 {inst_b} of instance data; the adapter's largest storage binding is {bind} bytes \
                 (record less, or fewer steps per job)"
            )));
        }
        Ok(p as usize)
    }

    fn pipeline(&self, shape: Shape) -> Result<wgpu::ComputePipeline, EngineError> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&shape) {
            return Ok(p.clone());
        }
        let p = self.compile(&shaders::ensemble(&shape), "lif_ensemble")?;
        cache.insert(shape, p.clone());
        Ok(p)
    }

    fn compile(&self, src: &str, entry: &str) -> Result<wgpu::ComputePipeline, EngineError> {
        compile_pipeline(&self.ctx, src, entry)
    }

    fn buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
        bytes: &mut u64,
    ) -> Result<wgpu::Buffer, EngineError> {
        create_buffer(&self.ctx, label, size, usage, bytes)
    }

    /// Runs the WGSL Philox / Box-Muller test kernel: for `i < count`, the counter is
    /// `(instance, stream, a0 + i / 7, (i % 7) * 977)`; returns the raw words and `normal4`.
    /// (Used by the tests to compare with `crate::chip::rng`.)
    pub fn rng_test_draws(
        &self,
        seed: u64,
        instance: u32,
        stream: Stream,
        a0: u32,
        count: u32,
    ) -> Result<RngDraws, EngineError> {
        let pipe = self.compile(&shaders::rng_test(), "rng_test")?;
        let mut bytes = 0;
        let st = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let size = 16 * count.max(1) as u64;
        let words = self.buffer("rng words", size, st, &mut bytes)?;
        let normals = self.buffer("rng normals", size, st, &mut bytes)?;
        let uni = self.buffer(
            "rng uniform",
            32,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            &mut bytes,
        )?;
        let u = RngTestUniform {
            key: crate::chip::rng::key_of(seed),
            instance,
            stream: stream.0,
            a0,
            count,
            _pad: [0; 2],
        };
        let dev = &self.ctx.device;
        let idx = self.ctx.scoped("rng test dispatch", || {
            self.ctx.queue.write_buffer(&uni, 0, bytemuck::bytes_of(&u));
            let bg = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipe.get_bind_group_layout(0),
                entries: &[entry(0, &uni), entry(1, &words), entry(2, &normals)],
            });
            let mut enc = dev.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipe);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(count.div_ceil(64), 1, 1);
            }
            self.ctx.queue.submit([enc.finish()])
        })?;
        let t = Duration::from_secs(120);
        self.ctx.wait(idx, t)?;
        let w = self.ctx.read_back(&words, 16 * count as u64, t)?;
        let z = self.ctx.read_back(&normals, 16 * count as u64, t)?;
        Ok((
            bytemuck::pod_collect_to_vec(&w),
            bytemuck::pod_collect_to_vec(&z),
        ))
    }
}

impl Engine for GpuEngine {
    fn name(&self) -> String {
        let a = self.ctx.adapter_info();
        format!("gpu ({}, {})", a.name, a.backend)
    }

    fn simulate(&self, job: &EnsembleJob) -> Result<EnsembleOutput, EngineError> {
        validate_job(job)?;
        let kernel_ns_before = self.ctx.kernel_ns();
        let nominal = job.perturbation.nominal(job.net);
        let net: &crate::snn::Network = &nominal;
        let lay = Layout::new(job);
        let (n, nq, nc, n_out, steps) = (lay.n, lay.nq, lay.nc, lay.n_out, lay.steps);
        let n_inst = job.instances.len();
        let n_trials = job.inputs.len();
        let n_pairs = n_inst * n_trials;
        let neuron_steps = (n_pairs * n * steps) as u64;
        let empty_trial = || TrialOutput {
            y: vec![],
            x: job.record.x.then(Vec::new),
            spikes: job.record.spikes.then(Vec::new),
            v: job.record.v.then(Vec::new),
            spike_counts: vec![0; n],
        };
        if n_pairs == 0 || steps == 0 {
            self.last_bytes.store(0, Ordering::Relaxed);
            return Ok(EnsembleOutput {
                trials: (0..n_inst)
                    .map(|_| (0..n_trials).map(|_| empty_trial()).collect())
                    .collect(),
                synaptic_events: 0,
                neuron_steps,
            });
        }

        // nominal weights and the synaptic-event count per presynaptic spike (as CpuEngine)
        let outdeg: Vec<u64> = crate::engine::outdegree(net)
            .into_iter()
            .map(u64::from)
            .collect();
        let slow_on = net.w_slow.iter().any(|&w| w != 0.0);
        let fast_on = net.w_fast.iter().any(|&w| w != 0.0);

        // shapes and limits
        let limits = self.ctx.limits().clone();
        let wg = self.workgroup_size();
        let shape = Shape::new(n, nc, wg).with_extra_types(lay.kx);
        // the two spike masks, x~ and the loop check's word
        let wg_mem = 4 * 2 * lay.nw as u64 + 16 * lay.ncq as u64 + 4;
        if wg_mem > limits.max_compute_workgroup_storage_size as u64 {
            return Err(EngineError::InvalidJob(format!(
                "N = {n}, Nc = {nc} need {wg_mem} bytes of workgroup memory; the adapter allows {}",
                limits.max_compute_workgroup_storage_size
            )));
        }
        let bind = self.binding_limit();
        let (net_data, offs) = net_buffer(net, &lay, slow_on, fast_on);
        let in_len = n_trials * steps * lay.c_in;
        for (what, b) in [
            ("the shared weights", 16 * net_data.len() as u64),
            ("the inputs", 4 * in_len as u64),
        ] {
            if b > bind {
                return Err(EngineError::InvalidJob(format!(
                    "{what} need {b} bytes; the adapter's largest storage binding is {bind} bytes"
                )));
            }
        }
        if in_len as u64 > u32::MAX as u64 {
            return Err(EngineError::InvalidJob(
                "trials x steps x C overflows the u32 input index".into(),
            ));
        }
        let pairs_chunk = self.pairs_for(&lay, n_trials)?.min(n_pairs);
        let inst_chunk = (pairs_chunk / n_trials).max(1).min(n_inst);
        let pipe = self.pipeline(shape)?;

        // buffers (reused by every chunk)
        let mut bytes = 0u64;
        let ro = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let net_buf = self.buffer("net", 16 * net_data.len() as u64, ro, &mut bytes)?;
        let in_buf = self.buffer("inputs", 4 * in_len as u64, ro, &mut bytes)?;
        let inst_buf = self.buffer(
            "instances",
            16 * (inst_chunk * lay.inst_stride) as u64,
            ro,
            &mut bytes,
        )?;
        let state_buf = self.buffer(
            "state",
            16 * (pairs_chunk * lay.state_stride) as u64,
            wgpu::BufferUsages::STORAGE,
            &mut bytes,
        )?;
        let out_bytes = 4 * (pairs_chunk * lay.out_stride) as u64;
        let out_buf = self.buffer(
            "out",
            out_bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            &mut bytes,
        )?;
        let uni_buf = self.buffer(
            "job uniform",
            std::mem::size_of::<JobUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            &mut bytes,
        )?;
        bytes += out_bytes.next_multiple_of(16); // the read-back staging buffer
        let inputs_flat: Vec<f32> = job.inputs.iter().flatten().copied().collect();
        let bind_group = self.ctx.scoped("uploading the job", || {
            self.ctx
                .queue
                .write_buffer(&net_buf, 0, vec4_bytes(&net_data));
            if !inputs_flat.is_empty() {
                self.ctx
                    .queue
                    .write_buffer(&in_buf, 0, bytemuck::cast_slice(&inputs_flat));
            }
            self.ctx
                .device
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("lif_ensemble"),
                    layout: &pipe.get_bind_group_layout(0),
                    entries: &[
                        entry(0, &uni_buf),
                        entry(1, &net_buf),
                        entry(2, &inst_buf),
                        entry(3, &in_buf),
                        entry(4, &state_buf),
                        entry(5, &out_buf),
                    ],
                })
        })?;

        let p = &net.params;
        // validate_job bounds the types (MAX_EXTRA_SYNAPSE_TYPES), so their bits fit the flags
        let mut flags = net
            .extra_synapses
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_nonzero())
            .fold(0u32, |f, (k, _)| f | 1 << (F_EXTRA_SHIFT + k as u32));
        for (on, f) in [
            (slow_on, F_SLOW),
            (fast_on, F_FAST),
            (job.record.x, F_REC_X),
            (job.record.spikes, F_REC_SPK),
            (job.record.v, F_REC_V),
        ] {
            if on {
                flags |= f;
            }
        }
        let u32_of = |x: usize| x as u32;
        let mut uni = JobUniform {
            n: u32_of(n),
            nq: u32_of(nq),
            nc: u32_of(nc),
            c_in: u32_of(lay.c_in),
            n_out: u32_of(n_out),
            steps: u32_of(steps),
            n_trials: u32_of(n_trials),
            trial_offset: job.trial_offset,
            flags,
            seed_lo: job.seed as u32,
            seed_hi: (job.seed >> 32) as u32,
            off_fast: offs.fast,
            off_extra: offs.extra,
            v_rest: p.v_rest,
            v_reset: p.v_reset,
            bias: p.bias,
            adapt_beta: p.adapt_beta,
            adapt_rho: p.adapt_rho,
            off_d: offs.d,
            off_wout: offs.wout,
            inst_stride: u32_of(lay.inst_stride),
            state_stride: u32_of(lay.state_stride),
            out_stride: u32_of(lay.out_stride),
            off_y: u32_of(lay.off_y),
            off_x: u32_of(lay.off_x.unwrap_or(0)),
            off_spk: u32_of(lay.off_spk.unwrap_or(0)),
            off_v: u32_of(lay.off_v.unwrap_or(0)),
            probe: dispatch::PROBE_TRIPS,
            off_status: u32_of(lay.off_status),
            ..Default::default()
        };
        let cost = ensemble_loop_cost(&shape, &lay, flags);

        let mut trials: Vec<Vec<TrialOutput>> = Vec::with_capacity(n_inst);
        let mut events = 0u64;
        let mut dispatches = 0usize;
        let mut chunks = 0usize;
        let mut k_used = 0usize;
        let mut p0 = 0usize;
        while p0 < n_pairs {
            // never cross an instance boundary inside a chunk smaller than one instance
            let end = if pairs_chunk < n_trials {
                (p0 / n_trials + 1) * n_trials
            } else {
                n_pairs
            };
            let p1 = (p0 + pairs_chunk).min(end);
            let i0 = p0 / n_trials;
            let i1 = (p1 - 1) / n_trials + 1;
            // instance draws on the host (identical to the CPU engine's)
            let mut inst_data = vec![[0f32; 4]; (i1 - i0) * lay.inst_stride];
            inst_data
                .par_chunks_mut(lay.inst_stride)
                .enumerate()
                .for_each(|(k, blk)| {
                    let idx = job.instances.start + (i0 + k) as u32;
                    let inst = Instance::draw(net, job.perturbation, job.seed, idx);
                    instance_block(net, &inst, blk);
                });
            self.ctx.scoped("uploading instances", || {
                self.ctx
                    .queue
                    .write_buffer(&inst_buf, 0, vec4_bytes(&inst_data));
            })?;
            uni.pair_start = p0 as u32;
            uni.chunk_inst0 = i0 as u32;
            let work = ((p1 - p0) * n) as u64;
            let mut k_steps = dispatch::plan(&self.ctx, self.steps_request, cost, work, steps);
            // the whole chunk, again with half the steps per dispatch if a loop was cut short
            // on an adapter whose limit the plan does not know
            let words = loop {
                dispatches += dispatch::run_steps(
                    &self.ctx,
                    "ensemble dispatch",
                    &uni_buf,
                    &pipe,
                    &[(&bind_group, (p1 - p0) as u32)],
                    steps,
                    k_steps,
                    Duration::from_secs(600),
                    |t_start, k| {
                        uni.t_start = t_start;
                        uni.k_steps = k;
                        bytemuck::bytes_of(&uni).to_vec()
                    },
                )?;
                let raw = self.ctx.read_back(
                    &out_buf,
                    4 * ((p1 - p0) * lay.out_stride) as u64,
                    Duration::from_secs(600),
                )?;
                let words: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
                let cut = (0..p1 - p0)
                    .map(|pl| words[pl * lay.out_stride + lay.off_status])
                    .find(|&st| st != STATUS_OK);
                match cut {
                    None => break words,
                    Some(st) => {
                        let unchecked =
                            matches!(self.steps_request, StepsPerDispatch::Unchecked(_));
                        if unchecked || k_steps == 1 {
                            return Err(EngineError::Backend(dispatch::cut_short_error(
                                &self.ctx,
                                "lif_ensemble",
                                st,
                                k_steps,
                            )));
                        }
                        k_steps /= 2;
                    }
                }
            };
            k_used = k_steps;

            for pl in 0..(p1 - p0) {
                let g = p0 + pl;
                let (ii, tj) = (g / n_trials, g % n_trials);
                let w = &words[pl * lay.out_stride..(pl + 1) * lay.out_stride];
                let o = parse_pair(w, &lay);
                events += o
                    .spike_counts
                    .iter()
                    .zip(&outdeg)
                    .map(|(&c, &d)| c as u64 * d)
                    .sum::<u64>();
                if tj == 0 {
                    trials.push(Vec::with_capacity(n_trials));
                }
                debug_assert_eq!(trials.len(), ii + 1);
                trials[ii].push(o);
            }
            chunks += 1;
            p0 = p1;
        }
        self.last_bytes.store(bytes, Ordering::Relaxed);
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = GpuRunStats {
            chunks,
            pairs_per_chunk: pairs_chunk,
            dispatches,
            device_bytes: bytes,
            workgroup_size: wg,
            steps_per_dispatch: k_used,
            kernel_seconds: self
                .ctx
                .kernel_ns()
                .zip(kernel_ns_before)
                .map(|(after, before)| after.saturating_sub(before) as f64 * 1e-9),
        };
        Ok(EnsembleOutput {
            trials,
            synaptic_events: events,
            neuron_steps,
        })
    }
}
