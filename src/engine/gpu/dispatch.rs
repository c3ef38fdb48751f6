//! How many time steps one dispatch runs (K), for the ensemble and the learning shader alike.
//!
//! Both shaders keep the state in registers for K steps and in storage between dispatches, so
//! the result must not depend on K, and K must not depend on the machine's load: it is planned
//! here from the job's sizes and the adapter, never from wall time.
//!
//! # The loop limiter of Mesa's llvmpipe (and lavapipe, its Vulkan front end)
//! gallivm, the shader compiler of llvmpipe, gives every shader invocation one counter of loop
//! iterations, shared by *all* loops of the invocation and started at
//! [`LLVMPIPE_LOOP_LIMIT`] = 65 535 (`LP_MAX_TGSI_LOOP_ITERATIONS` in `lp_bld_limits.h`; the
//! counter is decremented in `lp_exec_endloop`, `lp_bld_ir_common.c`). When it reaches zero,
//! every loop of that invocation exits after its current iteration, silently: the time loop stops
//! early, spikes are propagated to only some targets, and the state stored for the next dispatch
//! is wrong. A long dispatch therefore gave results that depended on K, and since K was adapted
//! to wall time, on the load of the machine (issue 10). On such adapters K is bounded by
//! [`LoopCost`]: an upper bound, from the shader's loop structure, of the iterations one
//! invocation can spend in a dispatch (every neuron spiking at every step).
//!
//! Both shaders also *check* for a cut loop at their very end ([`PROBE_TRIPS`]: a loop of two
//! trips completes only while the counter is positive) and report it in a status word, so an
//! adapter with a limit this module does not know about gives an error, not wrong numbers.

use super::GpuContext;
use crate::engine::EngineError;

/// Loop iterations llvmpipe allows one shader invocation (`LP_MAX_TGSI_LOOP_ITERATIONS`).
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65_535;

/// Trips of the probe loop that ends both shaders (passed in the uniform block, so that the
/// shader compiler cannot unroll it away).
pub const PROBE_TRIPS: u32 = 2;

/// Neuron-steps (pairs x N x K) one dispatch aims at on adapters without a loop limit: about
/// 0.1 s at 5e10 neuron-steps/s, well inside the 2 s watchdog of desktop drivers, and few enough
/// dispatches per job that their overhead (~10 us each) is negligible.
pub const WORK_PER_DISPATCH: u64 = 1 << 32;

/// Status word value: the shader found no loop cut short.
pub const STATUS_OK: u32 = 0;

/// How K is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepsPerDispatch {
    /// Planned from the sizes and the adapter (the default).
    #[default]
    Auto,
    /// At most this many (>= 1), still within the adapter's loop limit.
    AtMost(usize),
    /// Exactly this many (>= 1), ignoring the loop limit: only to show that the shaders detect
    /// a cut loop (tests).
    Unchecked(usize),
}

/// The loop limit of the adapter's shader compiler, where one is known: llvmpipe (and anything
/// else that reports itself as a CPU adapter, whose compiler is most likely llvmpipe's too).
pub fn loop_limit(info: &wgpu::AdapterInfo) -> Option<u64> {
    loop_limit_of(
        &info.name,
        &info.driver,
        info.device_type == wgpu::DeviceType::Cpu,
    )
}

fn loop_limit_of(name: &str, driver: &str, cpu: bool) -> Option<u64> {
    let named = |s: &str| {
        let s = s.to_lowercase();
        s.contains("llvmpipe") || s.contains("lavapipe")
    };
    (cpu || named(name) || named(driver)).then_some(LLVMPIPE_LOOP_LIMIT)
}

/// Loop iterations one invocation may spend: `per_dispatch` once (set-up, persisting the state,
/// the probe) and `per_step` for every step, both upper bounds. Each kernel adds its own loops
/// to [`shared_loops`]' (the ensemble kernel's, with its loops over the extra synapse types,
/// are `ensemble_loop_cost` in `ensemble.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopCost {
    pub per_dispatch: u64,
    pub per_step: u64,
}

/// Iterations a `for` / `while` loop of `trips` trips spends: one per trip plus the pass that
/// finds the condition false (gallivm decrements at every back edge of the masked loop).
pub fn trips(n: u64) -> u64 {
    n + 1
}

/// The loops both kernels share (`lif_step.wgsl` and the step skeleton), for `shape` with N
/// neurons and C input channels, every neuron spiking at every step: the per-dispatch cost
/// (loading and persisting the state, clearing both masks, the time loop's last test), and per
/// step the time loop itself, integrate-and-fire over the quads and inputs and clearing a mask;
/// with `spike_walk`, one walk over the spike masks (`for w < NW { while bits != 0 }`: one trip
/// per spike, N spikes in all), which each kernel's propagation and x~ update make in its own
/// nesting.
pub struct SharedLoops {
    pub cost: LoopCost,
    pub spike_walk: u64,
}

pub fn shared_loops(shape: &super::shaders::Shape, n: u64, c: u64) -> SharedLoops {
    let (qpi, kpi, nw, wg) = (
        shape.qpi as u64,
        shape.kpi as u64,
        shape.nw as u64,
        shape.wg as u64,
    );
    let words = trips(nw.div_ceil(wg));
    let spike_walk = trips(nw) + nw + n;
    let integrate = trips(qpi) + qpi * trips(c);
    SharedLoops {
        cost: LoopCost {
            per_dispatch: 2 * trips(qpi) + 2 * trips(kpi) + 2 * words + 1,
            per_step: 1 + integrate + words,
        },
        spike_walk,
    }
}

/// K for a job of `steps` steps whose dispatches do `work_per_step` neuron-steps per step.
pub fn plan(
    ctx: &GpuContext,
    request: StepsPerDispatch,
    cost: LoopCost,
    work_per_step: u64,
    steps: usize,
) -> usize {
    let steps = steps.max(1);
    let by_loops = loop_limit(ctx.raw_adapter_info()).map(|limit| {
        let fixed = cost.per_dispatch + trips(PROBE_TRIPS as u64);
        (limit.saturating_sub(fixed) / cost.per_step.max(1)).max(1) as usize
    });
    let k = match request {
        StepsPerDispatch::Unchecked(k) => return k.clamp(1, steps),
        StepsPerDispatch::AtMost(k) => k.max(1),
        StepsPerDispatch::Auto => (WORK_PER_DISPATCH / work_per_step.max(1)).max(1) as usize,
    };
    k.min(by_loops.unwrap_or(usize::MAX)).min(steps)
}

/// The error for a status word that reports a cut loop.
pub fn cut_short_error(ctx: &GpuContext, shader: &str, status: u32, k: usize) -> String {
    let a = ctx.adapter_info();
    format!(
        "{shader}: the shader compiler of {} ({}) cut a loop short in a dispatch of {k} steps \
         (the time loop stopped at step {} of the job); llvmpipe allows {LLVMPIPE_LOOP_LIMIT} loop \
         iterations per invocation. The results of that dispatch are wrong and were discarded",
        a.name,
        a.backend,
        status.saturating_sub(1)
    )
}

/// The dispatch loop both kernels run: `steps` steps from step 0 as dispatches of at most `k`
/// steps each, in order; `uniform(t_start, k)` gives each dispatch's uniform block, written into
/// `uni` before it runs `pipe` over `groups`. Returns the number of dispatches.
#[allow(clippy::too_many_arguments)]
pub fn run_steps(
    ctx: &GpuContext,
    what: &str,
    uni: &wgpu::Buffer,
    pipe: &wgpu::ComputePipeline,
    groups: &[(&wgpu::BindGroup, u32)],
    steps: usize,
    k: usize,
    timeout: std::time::Duration,
    mut uniform: impl FnMut(u32, u32) -> Vec<u8>,
) -> Result<usize, EngineError> {
    let k = k.max(1);
    let mut dispatches = 0;
    let mut t = 0usize;
    while t < steps {
        let kst = k.min(steps - t);
        ctx.dispatch(
            what,
            uni,
            &uniform(t as u32, kst as u32),
            pipe,
            groups,
            timeout,
        )?;
        dispatches += 1;
        t += kst;
    }
    Ok(dispatches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_limit_applies_to_llvmpipe_and_cpu_adapters_only() {
        let lp = "llvmpipe (LLVM 15.0.6, 256 bits)";
        assert_eq!(loop_limit_of(lp, "llvmpipe", true), Some(65_535));
        assert_eq!(loop_limit_of("llvmpipe (LLVM 19)", "", false), Some(65_535));
        assert_eq!(loop_limit_of("SwiftShader Device", "", true), Some(65_535));
        assert_eq!(loop_limit_of("NVIDIA H200", "NVIDIA", false), None);
        assert_eq!(
            loop_limit_of("Intel(R) Graphics", "Intel open-source Mesa", false),
            None
        );
    }

    #[test]
    fn a_loop_of_n_trips_costs_n_plus_one() {
        assert_eq!(trips(0), 1);
        assert_eq!(trips(7), 8);
    }
}
