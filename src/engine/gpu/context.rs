//! The wgpu device the GPU engine runs on: adapter choice, limits, and error plumbing.
//!
//! Adapter choice: `WGPU_BACKEND` (comma list, e.g. `vulkan`, `gl`) restricts the backends,
//! `WGPU_ADAPTER_NAME` keeps adapters whose name contains the value (case-insensitive); of
//! what remains, hardware adapters come first, then Vulkan/Metal/DX12 before GL. No adapter is a
//! clear `EngineError::Backend`, never a panic.
//!
//! Errors: every allocation / submission runs inside out-of-memory and validation error scopes
//! ([`GpuContext::scoped`]); uncaptured errors and device loss are recorded (not panicked on) and
//! turned into `EngineError::Backend` at the next check; waits use a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::EngineError;

/// The adapter a context runs on, as recorded in metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GpuAdapterInfo {
    pub name: String,
    /// Lower-case backend name (`vulkan`, `gl`, ...).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu`, ...
    pub device_type: String,
    pub driver: String,
}

impl From<&wgpu::AdapterInfo> for GpuAdapterInfo {
    fn from(i: &wgpu::AdapterInfo) -> Self {
        GpuAdapterInfo {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend).to_lowercase(),
            device_type: format!("{:?}", i.device_type),
            driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        }
    }
}

/// A device + queue, with the adapter's own limits and sticky error state. One per process: the
/// ensemble engine, the trainer and burn's wgpu runtime (through [`GpuContext::wgpu_setup`]) all
/// run on it.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// First uncaptured error or device-lost message (sticky).
    fault: Arc<Mutex<Option<String>>>,
    /// Timestamp queries around each dispatch's compute pass, where the device has them.
    timer: Option<Mutex<PassTimer>>,
    /// Device nanoseconds of every timed compute pass so far (see [`GpuContext::kernel_ns`]).
    kernel_ns: AtomicU64,
}

/// A two-entry timestamp query set (start and end of one compute pass) and the buffer its
/// values resolve into.
struct PassTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

fn backend_err(msg: impl Into<String>) -> EngineError {
    EngineError::Backend(msg.into())
}

/// Adapters visible under `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`, best first.
pub fn candidate_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let mut list = pollster::block_on(instance.enumerate_adapters(backends));
    if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = name.to_lowercase();
        list.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
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

pub fn filter_note() -> String {
    let parts: Vec<String> = ["WGPU_BACKEND", "WGPU_ADAPTER_NAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" matching {}", parts.join(", "))
    }
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuContext({} on {:?})",
            self.info.name, self.info.backend
        )
    }
}

impl GpuContext {
    /// Picks the best adapter (see the module docs) and opens a device with its own limits.
    pub fn new() -> Result<Self, EngineError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = candidate_adapters(&instance);
        let Some(adapter) = adapters.into_iter().next() else {
            return Err(backend_err(format!(
                "no wgpu adapter found{} (install a Vulkan driver, e.g. Debian's \
                 mesa-vulkan-drivers, or use the CPU engine)",
                filter_note()
            )));
        };
        Self::open(instance, adapter)
    }

    /// Opens a device on `adapter` (enumerated from `instance`), requesting the adapter's own
    /// limits and features. The features are what burn's wgpu runtime (cubecl) asks of a device it
    /// opens itself, so that the same device can be handed to it: all of the adapter's, less
    /// `MAPPABLE_PRIMARY_BUFFERS` (which makes mapped buffers slow on discrete GPUs).
    pub fn open(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Self, EngineError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(
            adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("robust-snn"),
                required_features: adapter
                    .features()
                    .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            }),
        )
        .map_err(|e| backend_err(format!("request_device on {}: {e}", info.name)))?;
        let fault = Arc::new(Mutex::new(None::<String>));
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut g = f.lock().unwrap_or_else(|p| p.into_inner());
            g.get_or_insert_with(|| format!("uncaptured wgpu error: {e}"));
        }));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut g = f.lock().unwrap_or_else(|p| p.into_inner());
            g.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
        });
        let limits = device.limits();
        // every device open is logged, so that "one device per process" can be seen (and tested)
        eprintln!(
            "gpu: opened a device on {} ({:?}, {} {})",
            info.name, info.backend, info.driver, info.driver_info
        );
        // timing costs one small read-back per dispatch; every dispatch already waits for its
        // pass, so it adds no stall of its own
        let timer = device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                Mutex::new(PassTimer {
                    set: device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("pass timer"),
                        ty: wgpu::QueryType::Timestamp,
                        count: 2,
                    }),
                    resolve: device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("pass timer resolve"),
                        size: 2 * wgpu::QUERY_SIZE as u64,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    }),
                })
            });
        Ok(GpuContext {
            device,
            queue,
            instance,
            adapter,
            info,
            limits,
            fault,
            timer,
            kernel_ns: AtomicU64::new(0),
        })
    }

    /// Device time, in nanoseconds, of every compute pass [`GpuContext::dispatch`] has run on
    /// this context, from GPU timestamp queries; `None` when the device cannot time its passes.
    /// Take the difference around a job to time it (jobs sharing the context at the same time
    /// add up).
    pub fn kernel_ns(&self) -> Option<u64> {
        self.timer
            .as_ref()
            .map(|_| self.kernel_ns.load(Ordering::Relaxed))
    }

    pub fn adapter_info(&self) -> GpuAdapterInfo {
        GpuAdapterInfo::from(&self.info)
    }

    /// The handles burn's wgpu runtime needs to run on this device instead of opening its own.
    pub fn wgpu_setup(&self) -> (wgpu::Instance, wgpu::Adapter, wgpu::Device, wgpu::Queue) {
        (
            self.instance.clone(),
            self.adapter.clone(),
            self.device.clone(),
            self.queue.clone(),
        )
    }

    pub fn raw_adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device's limits (= the adapter's).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Fails when the device was lost or an uncaptured error was reported.
    pub fn check_fault(&self) -> Result<(), EngineError> {
        let g = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(m) => Err(backend_err(m.clone())),
            None => Ok(()),
        }
    }

    /// Runs `f` inside out-of-memory and validation error scopes; a captured error becomes
    /// `EngineError::Backend("<what>: ...")`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, EngineError> {
        self.check_fault()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(backend_err(format!("{what}: out of device memory: {e}")));
        }
        if let Some(e) = v {
            return Err(backend_err(format!("{what}: {e}")));
        }
        self.check_fault()?;
        Ok(out)
    }

    /// Blocks until `idx` has finished (or `timeout` passed, or the device is lost).
    pub fn wait(&self, idx: wgpu::SubmissionIndex, timeout: Duration) -> Result<(), EngineError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(idx),
                timeout: Some(timeout),
            })
            .map_err(|e| backend_err(format!("waiting for the GPU: {e}")))?;
        self.check_fault()
    }

    /// One dispatch of K steps: writes the uniform block `uniform` into `uni`, runs `pipe` over
    /// `groups` (a bind group and its workgroup count each) in one compute pass, and waits for it.
    pub fn dispatch(
        &self,
        what: &str,
        uni: &wgpu::Buffer,
        uniform: &[u8],
        pipe: &wgpu::ComputePipeline,
        groups: &[(&wgpu::BindGroup, u32)],
        timeout: Duration,
    ) -> Result<(), EngineError> {
        // one pass at a time uses the query set: held until its values are read
        let timer = self
            .timer
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()));
        let idx = self.scoped(what, || {
            self.queue.write_buffer(uni, 0, uniform);
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: timer.as_ref().map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
                });
                pass.set_pipeline(pipe);
                for (bg, count) in groups {
                    pass.set_bind_group(0, *bg, &[]);
                    pass.dispatch_workgroups(*count, 1, 1);
                }
            }
            if let Some(t) = &timer {
                enc.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
            }
            self.queue.submit([enc.finish()])
        })?;
        self.wait(idx, timeout)?;
        if let Some(t) = &timer {
            let raw = self.read_back(&t.resolve, 2 * wgpu::QUERY_SIZE as u64, timeout)?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
            // ticks to ns by the queue's period; a counter that wrapped or a pass the driver
            // did not time (both ticks 0) adds nothing rather than garbage
            let ns =
                ticks[1].saturating_sub(ticks[0]) as f64 * self.queue.get_timestamp_period() as f64;
            self.kernel_ns
                .fetch_add(ns.round() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `bytes` bytes of `buf` (COPY_SRC) into host memory via a staging buffer.
    pub fn read_back(
        &self,
        buf: &wgpu::Buffer,
        bytes: u64,
        timeout: Duration,
    ) -> Result<Vec<u8>, EngineError> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.scoped("allocating the read-back buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let idx = self.scoped("copying results", || {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            enc.copy_buffer_to_buffer(buf, 0, &staging, 0, bytes);
            self.queue.submit([enc.finish()])
        })?;
        let done = Arc::new(Mutex::new(None));
        let d = done.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            *d.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        });
        self.wait(idx, timeout)?;
        // the map callback runs during a poll after the copy finished
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(timeout),
            })
            .map_err(|e| backend_err(format!("mapping results: {e}")))?;
        let r = done.lock().unwrap_or_else(|p| p.into_inner()).take();
        match r {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(backend_err(format!("mapping results: {e}"))),
            None => return Err(backend_err("mapping results: callback never ran")),
        }
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| backend_err(format!("mapping results: {e}")))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}
