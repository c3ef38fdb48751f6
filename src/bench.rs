//! Throughput benchmark of the ensemble engine: a synthetic Network ADS driven at a chosen
//! firing rate, timed after a warm-up with the work finished.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::chip::{MismatchMode, Perturbation};
use crate::engine::{Engine, EngineError, EnsembleJob, EnsembleOutput, Record};
use crate::snn::{Network, SnnParams};

/// What to measure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchSpec {
    pub instances: u32,
    pub neurons: usize,
    pub steps: usize,
    /// Relative mismatch sigma (paper mode).
    pub mismatch: f32,
    /// Target mean firing rate, Hz.
    pub rate_hz: f32,
    /// Teacher dimension Nc of the synthetic network.
    pub nc: usize,
    pub seed: u64,
}

/// `--json` output of `robust-snn bench`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    pub backend: String,
    pub instances: u32,
    pub neurons: usize,
    pub steps: usize,
    pub mismatch: f32,
    pub target_rate_hz: f32,
    pub mean_rate_hz: f64,
    /// Building the synthetic network and calibrating its bias to the target rate (not in
    /// `wall_seconds`).
    pub setup_seconds: f64,
    /// The timed simulation, host work (instance draws, uploads, read-back) included.
    pub wall_seconds: f64,
    /// Time the device spent in the simulation's compute passes, from GPU timestamp queries;
    /// `None` on the CPU and on adapters without timestamp queries.
    pub kernel_seconds: Option<f64>,
    pub neuron_steps_per_s: f64,
    pub synaptic_events_per_s: f64,
    pub synaptic_events: u64,
    pub threads: usize,
    /// The wgpu adapter (GPU runs only).
    pub adapter: Option<crate::backend::AdapterSummary>,
    /// Device memory the last job allocated (GPU runs only).
    pub device_bytes: Option<u64>,
}

/// A network with Network ADS structure (D, F, balanced W_fast) and a random, weak W_slow, so
/// both recurrent paths carry events, as in a trained network.
pub fn synthetic_network(spec: &BenchSpec) -> Result<Network, EngineError> {
    let params = SnnParams {
        n: spec.neurons,
        ..SnnParams::default()
    };
    let nc = spec.nc;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let w_in: Vec<f32> = (0..nc).map(|_| rng.random::<f32>() - 0.5).collect();
    let w_out: Vec<f32> = (0..nc).map(|_| 0.1 * (rng.random::<f32>() - 0.5)).collect();
    let mut net = Network::init(params, w_in, w_out, nc, 1, 1, spec.seed)?;
    let n = net.n;
    let scale = 0.02 / (n as f32).sqrt();
    for pre in 0..n {
        for post in 0..n {
            if pre != post {
                net.w_slow[pre * n + post] = scale * (rng.random::<f32>() - 0.5);
            }
        }
    }
    Ok(net)
}

fn rate_of(
    engine: &dyn Engine,
    net: &Network,
    pert: &Perturbation,
    seed: u64,
    steps: usize,
) -> Result<f64, EngineError> {
    let inputs = vec![vec![0.0f32; steps]];
    let job = EnsembleJob {
        net,
        perturbation: pert,
        seed,
        instances: 0..2,
        inputs: &inputs,
        trial_offset: 0,
        steps,
        record: Record::default(),
    };
    let out = engine.simulate(&job)?;
    Ok(total_spikes(&out) as f64 / (2.0 * net.n as f64 * steps as f64 * net.params.dt_s() as f64))
}

/// Find the bias current that gives the target rate (bisection on short runs).
pub fn calibrate(
    engine: &dyn Engine,
    net: &mut Network,
    pert: &Perturbation,
    spec: &BenchSpec,
) -> Result<f64, EngineError> {
    let (mut lo, mut hi) = (0.0f32, 5.0f32);
    let mut rate = 0.0;
    for _ in 0..18 {
        let mid = 0.5 * (lo + hi);
        net.params.bias = mid;
        rate = rate_of(engine, net, pert, spec.seed, 400)?;
        if (rate - spec.rate_hz as f64).abs() < 0.05 * spec.rate_hz as f64 {
            break;
        }
        if rate < spec.rate_hz as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(rate)
}

/// Spikes of every trial of every instance.
pub fn total_spikes(out: &EnsembleOutput) -> u64 {
    out.trials
        .iter()
        .flatten()
        .map(|o| o.spike_counts.iter().map(|&c| c as u64).sum::<u64>())
        .sum()
}

/// The benchmark's network and perturbation, with the bias calibrated on `engine` to the
/// requested rate.
pub fn prepare(
    engine: &dyn Engine,
    spec: &BenchSpec,
) -> Result<(Network, Perturbation), EngineError> {
    if spec.instances == 0 || spec.neurons == 0 || spec.steps == 0 {
        return Err(EngineError::InvalidJob(
            "instances, neurons and steps must be > 0".into(),
        ));
    }
    check_sizes(spec).map_err(EngineError::InvalidJob)?;
    if !(spec.rate_hz > 0.0 && spec.rate_hz.is_finite()) {
        return Err(EngineError::InvalidJob(format!(
            "rate must be > 0 Hz, got {}",
            spec.rate_hz
        )));
    }
    let pert = Perturbation {
        mismatch: spec.mismatch,
        mode: MismatchMode::Paper,
        ..Perturbation::default()
    };
    pert.validate().map_err(EngineError::InvalidPerturbation)?;
    let mut net = synthetic_network(spec)?;
    calibrate(engine, &mut net, &pert, spec)?;
    Ok((net, pert))
}

/// The sizes of `spec` against the fixed limits and this machine's memory (see
/// [`crate::limits`]): the weights (N x N, one mismatched copy per thread) and the outputs kept
/// for every instance (spike counts and the readout of every step).
pub fn check_sizes(spec: &BenchSpec) -> Result<(), String> {
    use crate::limits::{MAX_INSTANCES, MAX_NEURONS, available_memory, check_memory};
    if spec.neurons > MAX_NEURONS {
        return Err(format!(
            "--neurons = {}: at most {MAX_NEURONS} (the engines index N x N matrices with 32-bit \
             words)",
            spec.neurons
        ));
    }
    if spec.instances as u64 > MAX_INSTANCES {
        return Err(format!(
            "--instances = {}: at most {MAX_INSTANCES}",
            spec.instances
        ));
    }
    let av = available_memory();
    let n = spec.neurons as f64;
    let threads = rayon::current_num_threads() as f64;
    let weights = 4.0 * (2.0 + threads) * n * n + 8.0 * n * spec.nc as f64;
    check_memory(
        "--neurons",
        spec.neurons,
        "the weight matrices",
        weights,
        av,
    )?;
    let outputs = 4.0 * spec.instances as f64 * (n + spec.steps as f64);
    check_memory(
        "--instances",
        spec.instances,
        &format!(
            "the outputs of {} steps ({} neurons' spike counts and one readout value per step \
             for every instance)",
            spec.steps, spec.neurons
        ),
        outputs,
        av,
    )
}

/// Run the benchmark on `engine`.
pub fn run(engine: &dyn Engine, spec: &BenchSpec) -> Result<BenchResult, EngineError> {
    let t_setup = Instant::now();
    let (net, pert) = prepare(engine, spec)?;
    let setup_seconds = t_setup.elapsed().as_secs_f64();
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
    // Warm-up: caches, thread pool, (on a GPU) pipelines.
    let warm = EnsembleJob {
        instances: 0..spec.instances.min(4),
        steps: spec.steps.min(100),
        inputs: &inputs,
        ..job
    };
    let warm_inputs = vec![vec![0.0f32; spec.steps.min(100)]];
    engine.simulate(&EnsembleJob {
        inputs: &warm_inputs,
        ..warm
    })?;
    let t0 = Instant::now();
    let out = engine.simulate(&job)?;
    let wall = t0.elapsed().as_secs_f64();
    let spikes = total_spikes(&out);
    let neuron_steps = spec.instances as f64 * spec.neurons as f64 * spec.steps as f64;
    Ok(BenchResult {
        backend: engine.name(),
        instances: spec.instances,
        neurons: spec.neurons,
        steps: spec.steps,
        mismatch: spec.mismatch,
        target_rate_hz: spec.rate_hz,
        mean_rate_hz: spikes as f64 / (neuron_steps * net.params.dt_s() as f64),
        setup_seconds,
        wall_seconds: wall,
        kernel_seconds: None,
        neuron_steps_per_s: neuron_steps / wall,
        synaptic_events_per_s: out.synaptic_events as f64 / wall,
        synaptic_events: out.synaptic_events,
        threads: rayon::current_num_threads(),
        adapter: None,
        device_bytes: None,
    })
}

/// One JSON object per line, in order.
pub fn to_json_lines(results: &[BenchResult]) -> Result<String, serde_json::Error> {
    let mut text = String::new();
    for r in results {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    Ok(text)
}

/// Throughput against ensemble size, one line per backend (and network size, when several),
/// wall time solid and, where the adapter timed its kernels, kernel time dashed. The x axis is
/// log10 of the ensemble size: the sizes of interest span 64 to 10 000.
pub fn plot_throughput(
    results: &[BenchResult],
    path: &std::path::Path,
) -> Result<(), crate::report::plot::PlotError> {
    use crate::report::plot::{Panel, Series, panels};
    let mut keys: Vec<(String, usize)> = Vec::new();
    for r in results {
        let k = (r.backend.clone(), r.neurons);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let several_n = keys.iter().any(|k| k.1 != keys[0].1);
    let mut series = Vec::new();
    for (backend, n) in &keys {
        let mut rows: Vec<&BenchResult> = results
            .iter()
            .filter(|r| &r.backend == backend && r.neurons == *n)
            .collect();
        rows.sort_by_key(|r| r.instances);
        let label = if several_n {
            format!("{backend}, N = {n}")
        } else {
            backend.clone()
        };
        let x: Vec<f64> = rows.iter().map(|r| (r.instances as f64).log10()).collect();
        series.push(Series::new(
            format!("{label} (wall)"),
            x.clone(),
            rows.iter().map(|r| r.neuron_steps_per_s).collect(),
        ));
        if rows.iter().any(|r| r.kernel_seconds.is_some()) {
            let y = rows
                .iter()
                .map(|r| match r.kernel_seconds {
                    Some(k) if k > 0.0 => r.neuron_steps_per_s * r.wall_seconds / k,
                    _ => f64::NAN,
                })
                .collect();
            series.push(Series::new(format!("{label} (kernel)"), x, y).dashed());
        }
    }
    let first = results.first();
    let title = match first {
        Some(r) => format!(
            "Ensemble throughput: {} steps, {:.0} % mismatch, {:.0} Hz target",
            r.steps,
            r.mismatch * 100.0,
            r.target_rate_hz
        ),
        None => "Ensemble throughput".to_string(),
    };
    let panel = Panel {
        title: "neuron-steps per second against ensemble size".into(),
        x_label: "log10(chip instances)".into(),
        y_label: "neuron-steps / s".into(),
        series,
        log_y: true,
    };
    panels(path, &title, &[panel], 900, 520)
}
