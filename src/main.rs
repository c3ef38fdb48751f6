//! The `robust-snn` command line: parse, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use robust_snn::backend::{self, BackendChoice, Resolved};
use robust_snn::config::{Config, RunDir};
use robust_snn::stages;

/// Train spiking neural networks that survive mismatched mixed-signal neuromorphic chips
/// (Büchel et al., Sci. Rep. 2021): a rate-RNN teacher, a spiking Network ADS that learns its
/// dynamics with a local rule, Monte-Carlo chip ensembles, and DYNAP-SE1 export.
#[derive(Parser)]
#[command(name = "robust-snn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plot a few trials of the configured task (input, target, label) into DIR/task/.
    Task(Common),
    /// Train the rate-RNN teacher with BPTT (burn) and write DIR/teacher/.
    Teacher(Common),
    /// Train the spiking Network ADS on the teacher's dynamics and write DIR/snn/
    /// (trains the teacher first when DIR/teacher/ is missing).
    Train(TrainArgs),
    /// Run the whole pipeline as far as it exists: teacher, then spiking network.
    Run(TrainArgs),
    /// Measure ensemble simulation throughput (neuron-steps/s, synaptic events/s).
    Bench(BenchArgs),
}

#[derive(Args)]
struct Common {
    /// Experiment file (TOML). configs/xor.toml and configs/ecg.toml are embedded in the
    /// binary and work without the repository. Default: DIR/config.toml when it exists,
    /// else configs/xor.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Run folder that receives the results.
    #[arg(long, short, default_value = "runs/xor")]
    out: PathBuf,
    /// Where to compute: auto (a hardware GPU if present, else the CPU), cpu, or gpu (any
    /// wgpu adapter, software ones included).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Override a config value, e.g. --set teacher.epochs=5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    common: Common,
    /// Continue an interrupted spiking-network training from its last epoch checkpoint.
    #[arg(long)]
    resume: bool,
    /// Train this many networks at once (seeds seed, seed+1, ...) and keep the best on
    /// validation (overrides training.networks).
    #[arg(long)]
    networks: Option<usize>,
}

#[derive(Args)]
struct BenchArgs {
    /// Ensemble size (chip instances).
    #[arg(long, default_value_t = 64)]
    instances: u32,
    /// Neurons per network.
    #[arg(long, default_value_t = 768)]
    neurons: usize,
    /// Simulated time steps (1 ms each).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Relative mismatch sigma (0.2 = 20 %).
    #[arg(long, default_value_t = 0.2)]
    mismatch: f32,
    /// Target mean firing rate in Hz (a bias current is calibrated to reach it).
    #[arg(long, default_value_t = 5.0)]
    rate: f32,
    /// Teacher dimension of the synthetic network.
    #[arg(long, default_value_t = 128)]
    nc: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// cpu, gpu or auto.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    backend: BackendChoice,
    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn load(&self) -> anyhow::Result<Config> {
        let path = match &self.config {
            Some(p) => p.clone(),
            None if self.out.join("config.toml").is_file() => self.out.join("config.toml"),
            None => PathBuf::from("configs/xor.toml"),
        };
        let file = path.display().to_string();
        let mut cfg = Config::load(&path)?;
        for kv in &self.set {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
            cfg = cfg.with_override(k.trim(), v.trim(), &file)?;
        }
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_teacher(m: &robust_snn::teacher::TeacherMetrics, run: &RunDir) {
    println!(
        "teacher ({}): test accuracy {:.4} on {} trials, test MSE {:.5}, {} epochs in {:.1} s -> {}",
        m.task,
        m.test_accuracy,
        m.test_trials,
        m.test_mse,
        m.epochs,
        m.train_seconds,
        run.teacher().display()
    );
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Task(c) => {
            let cfg = c.load()?;
            let run = RunDir::new(&c.out);
            let png = stages::render_task(&cfg, &run, 4).context("rendering the task")?;
            println!("wrote {}", png.display());
        }
        Command::Teacher(c) => {
            let cfg = c.load()?;
            let resolved = backend::resolve(c.backend)?;
            let run = RunDir::new(&c.out);
            let m = stages::teacher(&cfg, &run, &resolved).context("training the teacher")?;
            print_teacher(&m, &run);
        }
        Command::Train(a) | Command::Run(a) => {
            let out = &a.common.out;
            if a.common.config.is_none()
                && !out.join("config.toml").is_file()
                && !out
                    .join("teacher")
                    .join(robust_snn::teacher::WEIGHTS_FILE)
                    .is_file()
            {
                anyhow::bail!(
                    "{}: no teacher/ and no config.toml in this run folder; pass --config FILE",
                    out.display()
                );
            }
            let mut cfg = a.common.load()?;
            if let Some(n) = a.networks {
                cfg = cfg.with_override("training.networks", &n.to_string(), "--networks")?;
            }
            let resolved = backend::resolve(a.common.backend)?;
            let run = RunDir::new(&a.common.out);
            if !run
                .teacher()
                .join(robust_snn::teacher::WEIGHTS_FILE)
                .is_file()
            {
                let m = stages::teacher(&cfg, &run, &resolved).context("training the teacher")?;
                print_teacher(&m, &run);
            }
            let m = stages::train_snn(&cfg, &run, &resolved, a.resume)
                .context("training the spiking network")?;
            println!(
                "spiking network ({}, N = {}): test accuracy {:.4} (teacher {:.4}) on {} trials, R {:.3}, {:.1} Hz, {} epochs in {:.0} s -> {}",
                m.task,
                m.n,
                m.test_accuracy,
                m.teacher_test_accuracy,
                m.test_trials,
                m.reconstruction_error,
                m.mean_rate_hz,
                m.epochs,
                m.train_seconds,
                run.snn().display()
            );
        }
        Command::Bench(b) => {
            let resolved = backend::resolve(b.backend)?;
            let spec = robust_snn::bench::BenchSpec {
                instances: b.instances,
                neurons: b.neurons,
                steps: b.steps,
                mismatch: b.mismatch,
                rate_hz: b.rate,
                nc: b.nc,
                seed: b.seed,
            };
            let r = match &resolved {
                Resolved::Cpu => robust_snn::bench::run(&robust_snn::engine::CpuEngine, &spec)?,
                Resolved::Gpu(_) => {
                    let gpu = robust_snn::engine::gpu::GpuEngine::new()?;
                    let mut r = robust_snn::bench::run(&gpu, &spec)?;
                    r.adapter = Some(gpu.adapter());
                    r.device_bytes = Some(gpu.device_bytes());
                    r
                }
            };
            if b.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: {} instances x {} neurons x {} steps at {:.0} % mismatch, {:.1} Hz: {:.3e} neuron-steps/s, {:.3e} synaptic events/s ({:.2} s)",
                    r.backend,
                    r.instances,
                    r.neurons,
                    r.steps,
                    r.mismatch * 100.0,
                    r.mean_rate_hz,
                    r.neuron_steps_per_s,
                    r.synaptic_events_per_s,
                    r.wall_seconds
                );
            }
        }
    }
    Ok(())
}
