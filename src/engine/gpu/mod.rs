//! The GPU ensemble engine (wgpu + WGSL, docs/design.md §6). [`GpuEngine`] computes the same function
//! as [`crate::engine::CpuEngine`] (its CPU twin is [`crate::engine::lif_step::step`]); the shader is
//! `shaders/lif_ensemble.wgsl`, the random numbers `shaders/rng.wgsl` (twin of
//! [`crate::chip::rng`]).
//!
//! # Work decomposition
//! One workgroup per (instance, trial) pair; an invocation owns neuron quads `lid, lid + WG, ...`
//! (4 neurons per `vec4`, one Philox call per quad). The time loop runs inside the shader for K
//! steps per dispatch (K planned by [`dispatch`] from the sizes and the adapter, never from wall
//! time, so that the results do not depend on the machine's load); the state stays in storage
//! buffers between dispatches and results are read back once per chunk.
//!
//! # Chunking
//! The (instance, trial) pairs are processed in chunks of P consecutive pairs (instance-major),
//! P = the largest value such that one workgroup per pair fits `max_compute_workgroups_per_dimension`
//! and the state, out and inst buffers of a chunk each fit `min(max_storage_buffer_binding_size,
//! max_buffer_size)` (see [`GpuEngine::pairs_per_chunk`]). Never a hard-coded size.
//!
//! # Files
//! [`context`]: the device; [`dispatch`]: the plan of K and the dispatch loop (both kernels);
//! `layout`: the ensemble kernel's buffers, packing and read-back; [`ensemble`]: the engine;
//! [`shaders`]: the sources as the pipelines compile them. The learning kernel's host side is
//! `learn/gpu.rs`.

pub mod context;
pub mod dispatch;
pub mod ensemble;
pub(crate) mod layout;
pub mod shaders;

pub use context::{GpuAdapterInfo, GpuContext};
pub use dispatch::StepsPerDispatch;
pub use ensemble::{GpuEngine, GpuRunStats, RngDraws};

use crate::engine::EngineError;

/// Compiles `src` into a compute pipeline with entry point `entry` (auto layout).
pub(crate) fn compile_pipeline(
    ctx: &GpuContext,
    src: &str,
    entry: &str,
) -> Result<wgpu::ComputePipeline, EngineError> {
    let dev = &ctx.device;
    ctx.scoped(&format!("compiling {entry}"), || {
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(entry),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    })
}

/// Allocates a buffer of at least `size` bytes (rounded up to 16), adding its size to `bytes`.
pub(crate) fn create_buffer(
    ctx: &GpuContext,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
    bytes: &mut u64,
) -> Result<wgpu::Buffer, EngineError> {
    let size = size.max(16).next_multiple_of(16);
    let b = ctx.scoped(&format!("allocating {label} ({size} bytes)"), || {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    })?;
    *bytes += size;
    Ok(b)
}

/// Pads row-major `rows x cols` into vec4 rows of `ceil(cols/4)` (zeros in the padding): a
/// matrix as the kernels read it.
pub(crate) fn push_rows(m: &[f32], rows: usize, cols: usize, out: &mut Vec<[f32; 4]>) {
    for row in m.chunks_exact(cols).take(rows) {
        for c4 in row.chunks(4) {
            let mut v = [0f32; 4];
            v[..c4.len()].copy_from_slice(c4);
            out.push(v);
        }
    }
}

pub(crate) fn entry(binding: u32, b: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: b.as_entire_binding(),
    }
}
