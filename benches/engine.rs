//! Criterion benchmark of the ensemble engines: a synthetic Network ADS at 20 % mismatch driven
//! at a few Hz (see `robust_snn::bench`). Throughput is reported in neuron-steps.
//!
//! `cargo bench --bench engine` (set ROBUST_SNN_BENCH_INSTANCES / _NEURONS / _STEPS to resize).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use robust_snn::bench::{BenchSpec, prepare};
use robust_snn::engine::{CpuEngine, Engine, EnsembleJob, Record};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn engines(c: &mut Criterion) {
    let spec = BenchSpec {
        instances: env_or("ROBUST_SNN_BENCH_INSTANCES", 64) as u32,
        neurons: env_or("ROBUST_SNN_BENCH_NEURONS", 768),
        steps: env_or("ROBUST_SNN_BENCH_STEPS", 1000),
        mismatch: 0.2,
        rate_hz: 5.0,
        nc: 128,
        seed: 1,
    };
    let (net, pert) = prepare(&CpuEngine, &spec).expect("benchmark network");
    let inputs = vec![vec![0.0f32; spec.steps]];
    let job = EnsembleJob {
        net: &net,
        perturbation: &pert,
        seed: spec.seed,
        instances: 0..spec.instances,
        inputs: &inputs,
        trial_offset: 0,
        steps: spec.steps,
        record: Record::default(),
    };
    let mut group = c.benchmark_group("ensemble");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        spec.instances as u64 * spec.neurons as u64 * spec.steps as u64,
    ));
    let name = format!("cpu/{}x{}x{}", spec.instances, spec.neurons, spec.steps);
    group.bench_function(name, |b| {
        b.iter(|| CpuEngine.simulate(&job).expect("simulate"))
    });
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
