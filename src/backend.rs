//! Which compute backend a command runs on: `--backend cpu|gpu|auto`, one flag for the whole CLI.
//!
//! `auto` takes a hardware GPU adapter when one exists and otherwise the CPU. `gpu` takes any
//! adapter wgpu offers, software ones (llvmpipe, lavapipe) included, so that the GPU path can be
//! exercised on machines without a GPU. `WGPU_BACKEND` (vulkan, gl, metal, dx12) and
//! `WGPU_ADAPTER_NAME` (a case-insensitive substring of the adapter name) are honoured.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// A hardware GPU when one exists, else the CPU (with a notice).
    #[default]
    Auto,
    /// The CPU (reference) path.
    Cpu,
    /// A wgpu adapter, software adapters included; fails when there is none.
    Gpu,
}

use crate::engine::gpu::GpuEngine;
/// An adapter as recorded in outputs' metadata.
pub use crate::engine::gpu::context::GpuAdapterInfo as AdapterSummary;
use crate::engine::gpu::context::{GpuContext, candidate_adapters, filter_note};
use crate::engine::{CpuEngine, Engine};

/// Where work will run, resolved once per process: the value that hands out the ensemble engine,
/// the GPU context the trainer runs on, and burn's device for the teacher. On a GPU it holds the
/// process's one wgpu device.
#[derive(Clone, Debug)]
pub enum Resolved {
    Cpu,
    Gpu(Arc<GpuHandle>),
}

/// The process's wgpu device, shared by every GPU consumer.
pub struct GpuHandle {
    ctx: Arc<GpuContext>,
    /// burn's device on `ctx`, registered with burn's wgpu runtime on first use (a registration
    /// is a new runtime, so it must happen once).
    burn: Mutex<Option<burn::tensor::Device>>,
}

impl std::fmt::Debug for GpuHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuHandle({:?})", self.ctx)
    }
}

impl Resolved {
    pub fn is_gpu(&self) -> bool {
        matches!(self, Resolved::Gpu(_))
    }

    /// A short label for metadata: `cpu` or `gpu:<adapter name> (<api>)`.
    pub fn label(&self) -> String {
        match self {
            Resolved::Cpu => "cpu".to_string(),
            Resolved::Gpu(g) => {
                let a = g.ctx.adapter_info();
                format!("gpu:{} ({})", a.name, a.backend)
            }
        }
    }

    /// The GPU context (for the trainer), `None` on the CPU.
    pub fn gpu_context(&self) -> Option<Arc<GpuContext>> {
        match self {
            Resolved::Cpu => None,
            Resolved::Gpu(g) => Some(g.ctx.clone()),
        }
    }

    /// The ensemble engine: the CPU reference, or the GPU engine on the process's device.
    pub fn engine(&self) -> Box<dyn Engine> {
        match self {
            Resolved::Cpu => Box::new(CpuEngine),
            Resolved::Gpu(g) => Box::new(GpuEngine::with_shared_context(g.ctx.clone())),
        }
    }

    /// burn's device: `flex` (CPU) or burn's wgpu runtime on the process's device.
    pub fn burn_device(&self) -> Result<burn::tensor::Device, BackendError> {
        match self {
            Resolved::Cpu => Ok(burn::tensor::Device::flex()),
            Resolved::Gpu(g) => {
                let mut slot = g.burn.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(d) = slot.as_ref() {
                    return Ok(d.clone());
                }
                let (instance, adapter, device, queue) = g.ctx.wgpu_setup();
                let backend = adapter.get_info().backend;
                let setup = burn::tensor::wgpu::WgpuSetup {
                    instance,
                    adapter,
                    device,
                    queue,
                    backend,
                };
                let d = burn::tensor::Device::wgpu_options()
                    .setup(setup)
                    .init()
                    .map_err(|e| BackendError::Burn(e.to_string()))?;
                *slot = Some(d.clone());
                Ok(d)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "--backend gpu: no wgpu adapter found{filter} (install a Vulkan driver, e.g. Debian's \
         mesa-vulkan-drivers, or use --backend cpu)"
    )]
    NoAdapter { filter: String },
    #[error("opening the GPU device: {0}")]
    Open(String),
    #[error("handing the GPU device to burn's wgpu runtime: {0}")]
    Burn(String),
}

fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    !matches!(info.device_type, wgpu::DeviceType::Cpu)
}

/// Opens the process's device on `adapter` (which says so on stderr).
fn open(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Resolved, BackendError> {
    let ctx = GpuContext::open(instance, adapter).map_err(|e| BackendError::Open(e.to_string()))?;
    Ok(Resolved::Gpu(Arc::new(GpuHandle {
        ctx: Arc::new(ctx),
        burn: Mutex::new(None),
    })))
}

/// Decide where to run, opening the GPU device when there is one. `auto` prints a one-line
/// notice when it falls back to the CPU.
pub fn resolve(choice: BackendChoice) -> Result<Resolved, BackendError> {
    if choice == BackendChoice::Cpu {
        return Ok(Resolved::Cpu);
    }
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = candidate_adapters(&instance);
    match choice {
        BackendChoice::Cpu => Ok(Resolved::Cpu),
        BackendChoice::Gpu => match adapters.into_iter().next() {
            Some(a) => open(instance, a),
            None => Err(BackendError::NoAdapter {
                filter: filter_note(),
            }),
        },
        BackendChoice::Auto => match adapters.into_iter().find(|a| is_hardware(&a.get_info())) {
            Some(a) => open(instance, a),
            None => {
                eprintln!(
                    "note: --backend auto found no GPU adapter{}; running on the CPU",
                    filter_note()
                );
                Ok(Resolved::Cpu)
            }
        },
    }
}
