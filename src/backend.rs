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
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(i: &wgpu::AdapterInfo) -> Self {
        Self {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend).to_lowercase(),
            device_type: format!("{:?}", i.device_type),
            driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        }
    }
}

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

/// The wgpu adapters visible under the environment's WGPU_BACKEND / WGPU_ADAPTER_NAME filters.
pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let mut list = pollster::block_on(instance.enumerate_adapters(backends));
    if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = name.to_lowercase();
        list.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
    // Prefer hardware adapters, then Vulkan over GL for software ones (lavapipe is the more
    // complete compute implementation).
    list.sort_by_key(|a| {
        let i = a.get_info();
        let hw = match i.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        let api = match i.backend {
            wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
            _ => 1,
        };
        (hw, api)
    });
    list
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
                    eprintln!("note: --backend auto found no GPU adapter{}; running on the CPU", filter_note());
                    Ok(Resolved::Cpu)
                }
            }
        }
    }
}

fn filter_note() -> String {
    let mut parts = Vec::new();
    if let Ok(v) = std::env::var("WGPU_ADAPTER_NAME") {
        parts.push(format!("WGPU_ADAPTER_NAME={v}"));
    }
    if let Ok(v) = std::env::var("WGPU_BACKEND") {
        parts.push(format!("WGPU_BACKEND={v}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" matching {}", parts.join(", "))
    }
}
