//! Which compute backend a command runs on: `--backend cpu|gpu|auto`, one flag for the whole CLI.
//!
//! `auto` takes a hardware GPU adapter when one exists and otherwise the CPU. `gpu` takes any
//! adapter wgpu offers, software ones (llvmpipe, lavapipe) included, so that the GPU path can be
//! exercised on machines without a GPU. `WGPU_BACKEND` (vulkan, gl, metal, dx12) and
//! `WGPU_ADAPTER_NAME` (a case-insensitive substring of the adapter name) are honoured.

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

/// An adapter as recorded in outputs' metadata.
pub use crate::engine::gpu::context::GpuAdapterInfo as AdapterSummary;
use crate::engine::gpu::context::{candidate_adapters, filter_note};

/// Where work will run.
#[derive(Clone, Debug)]
pub enum Resolved {
    Cpu,
    Gpu(AdapterSummary),
}

impl Resolved {
    pub fn is_gpu(&self) -> bool {
        matches!(self, Resolved::Gpu(_))
    }
    /// A short label for metadata: `cpu` or `gpu:<adapter name> (<api>)`.
    pub fn label(&self) -> String {
        match self {
            Resolved::Cpu => "cpu".to_string(),
            Resolved::Gpu(a) => format!("gpu:{} ({})", a.name, a.backend),
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
}

/// The wgpu adapters visible under the environment's WGPU_BACKEND / WGPU_ADAPTER_NAME filters,
/// best first (hardware, then Vulkan/Metal/DX12 before GL).
pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    candidate_adapters(&instance)
}

fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    !matches!(info.device_type, wgpu::DeviceType::Cpu)
}

/// Decide where to run. `auto` prints a one-line notice when it falls back to the CPU.
pub fn resolve(choice: BackendChoice) -> Result<Resolved, BackendError> {
    match choice {
        BackendChoice::Cpu => Ok(Resolved::Cpu),
        BackendChoice::Gpu => match adapters().first() {
            Some(a) => Ok(Resolved::Gpu(AdapterSummary::from(&a.get_info()))),
            None => Err(BackendError::NoAdapter {
                filter: filter_note(),
            }),
        },
        BackendChoice::Auto => {
            let found = adapters().into_iter().find(|a| is_hardware(&a.get_info()));
            match found {
                Some(a) => Ok(Resolved::Gpu(AdapterSummary::from(&a.get_info()))),
                None => {
                    eprintln!(
                        "note: --backend auto found no GPU adapter{}; running on the CPU",
                        filter_note()
                    );
                    Ok(Resolved::Cpu)
                }
            }
        }
    }
}
