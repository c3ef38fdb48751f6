//! The `robust-snn` command line: parse, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use robust_snn::backend::{self, BackendChoice};
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
    /// Train the spiking network (Network ADS on the teacher's dynamics, or a baseline with
    /// --method bptt|force|reservoir) and write DIR/snn/ (trains the teacher first when
    /// DIR/teacher/ is missing).
    Train(TrainArgs),
    /// Run the whole pipeline: teacher, spiking network, robustness study and report
    /// (finished stages are kept).
    Run(TrainArgs),
    /// Robustness study of DIR/snn/ on Monte-Carlo chip ensembles (mismatch, quantisation,
    /// noise, silencing; [evaluation] section, each key settable with --set); writes
    /// DIR/robustness/.
    Evaluate(EvaluateArgs),
    /// Sweep config keys over a cartesian grid, each point a full pipeline run in
    /// DIR/points/<point>/; finished points are skipped, so an interrupted sweep resumes.
    Sweep(SweepArgs),
    /// Deploy DIR/snn/ to a DYNAP-SE1 board: map, validate, re-simulate the deployed network on
    /// DYNAP-like chips beside the float one, and write DIR/dynapse1/ (trains what is missing;
    /// [export] section). `--check FILE` only validates an export document (ours or
    /// hand-written) and lists each violation with its location.
    Export(ExportArgs),
    /// Bring a recurrent spiking network trained elsewhere (a NIR graph: LIF / CubaLIF / LI /
    /// Affine / Linear nodes) into DIR/snn/ as an engine network, so `evaluate` runs the chip
    /// study on it (trains the config's teacher when DIR/teacher/ is missing: the study's data
    /// need it). Prints every approximation; refuses what the engine cannot represent.
    Import(ImportArgs),
    /// Measure ensemble simulation throughput (neuron-steps/s, synaptic events/s).
    Bench(BenchArgs),
}

#[derive(Args)]
struct Common {
    /// Experiment file (TOML). configs/xor.toml, configs/ecg.toml and their -plain twins are
    /// embedded in the binary and work without the repository. Default: DIR/config.toml when it exists,
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
    /// How to train the spiking network (overrides training.method): Network ADS, or one of
    /// the baselines it is compared with.
    #[arg(long, value_enum)]
    method: Option<robust_snn::snn::Method>,
}

#[derive(Args)]
struct EvaluateArgs {
    #[command(flatten)]
    common: Common,
    /// Other run folders whose trained networks are evaluated on the identical instance draws
    /// and compared with this one (paired Wilcoxon signed-rank test per level).
    #[arg(long, num_args = 1.., value_name = "DIR")]
    compare: Vec<PathBuf>,
}

#[derive(Args)]
struct SweepArgs {
    /// Base experiment file (TOML).
    #[arg(long, short, default_value = "configs/xor.toml")]
    config: PathBuf,
    /// Sweep folder.
    #[arg(long, short, required_unless_present = "collect")]
    out: Option<PathBuf>,
    /// A swept key and its values, e.g. --set snn.n=160,320 (repeatable; the grid is the
    /// cartesian product).
    #[arg(long = "set", value_name = "KEY=V1,V2,...", required_unless_present_any = ["collect", "point"])]
    set: Vec<String>,
    /// Write DIR/sweep.sbatch, a Slurm job array with one task per unfinished point, instead of
    /// running the points here (submit it with sbatch; merge the results with --collect DIR).
    #[arg(long)]
    slurm: bool,
    /// Slurm partition of the array (default: the cluster's).
    #[arg(long, requires = "slurm")]
    slurm_partition: Option<String>,
    /// Slurm time limit of one point.
    #[arg(long, default_value = "04:00:00", requires = "slurm")]
    slurm_time: String,
    /// CPUs of one point (its thread pool uses them all).
    #[arg(long, default_value_t = 2, requires = "slurm")]
    slurm_cpus: u32,
    /// Memory of one point.
    #[arg(long, default_value = "8G", requires = "slurm")]
    slurm_mem: String,
    /// The robust-snn binary the compute nodes run (default: this one).
    #[arg(long, requires = "slurm")]
    slurm_binary: Option<PathBuf>,
    /// Run only point I of the sweep planned in --out by --slurm (what an array task does).
    #[arg(long, value_name = "I", conflicts_with_all = ["slurm", "set", "collect"])]
    point: Option<usize>,
    /// Merge the finished points of the sweep planned in DIR into DIR/sweep.csv and its plot.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["slurm", "set", "point", "out"])]
    collect: Option<PathBuf>,
    /// The figure plotted against each swept key (a column of sweep.csv).
    #[arg(long, default_value = "snn.test_accuracy")]
    metric: String,
    /// Stop after computing this many new points (the rest run on the next call).
    #[arg(long)]
    max_points: Option<usize>,
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    common: Common,
    /// What to export: the DYNAP-SE1 deployment (DIR/dynapse1/), or the trained network as a
    /// NIR graph (DIR/nir/network.nir; exports DIR/snn/ as it is, trains nothing).
    #[arg(long, value_enum, default_value_t = ExportFormat::Dynapse1)]
    format: ExportFormat,
    /// Only validate this network.json against the DYNAP-SE1 rules (fan-in, fan-out, aliasing,
    /// id ranges, shared biases, bias ranges, ...); exits non-zero on any violation.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// (nir) Also write chip instance K of the robustness study's draws (chip seed = the
    /// config's seed) as DIR/nir/instance_K.nir: per-neuron parameters, effective matrices.
    #[arg(long, value_name = "K")]
    instance: Option<u32>,
    /// (nir) Relative mismatch sigma of --instance (paper mode).
    #[arg(
        long,
        value_name = "SIGMA",
        default_value_t = 0.2,
        requires = "instance"
    )]
    mismatch: f32,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// DYNAP-SE1 deployment ([export] section).
    Dynapse1,
    /// NIR graph (HDF5, readable by the Python `nir` package).
    Nir,
}

#[derive(Args)]
struct ImportArgs {
    /// The NIR graph (.nir, as `nir.write` writes it).
    file: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct BenchArgs {
    /// Ensemble sizes (chip instances), one run each: --instances 64,1000,10000.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    instances: Vec<u32>,
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
    /// cpu, gpu or auto; several (--backend cpu,gpu) run every size on each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu")]
    backend: Vec<BackendChoice>,
    /// Print one JSON object per run (JSON lines) instead of a sentence.
    #[arg(long)]
    json: bool,
    /// Also write DIR/bench.jsonl (every run) and DIR/throughput.png (throughput against
    /// ensemble size per backend).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
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
        cfg.check_memory(&file)?;
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

fn print_snn(m: &stages::SnnMetrics, run: &RunDir) {
    println!(
        "spiking network ({}, {}, N = {}): test accuracy {:.4} (teacher {:.4}) on {} trials, R {}, {:.1} Hz, {} epochs in {:.0} s -> {}",
        m.task,
        m.method,
        m.n,
        m.test_accuracy,
        m.teacher_test_accuracy,
        m.test_trials,
        stages::r_text(m.reconstruction_error),
        m.mean_rate_hz,
        m.epochs,
        m.train_seconds,
        run.snn().display()
    );
}

fn print_study(o: &robust_snn::study::StudyOutcome, run: &RunDir) {
    println!(
        "robustness ({} instances per level, {:.0} s) -> {}",
        o.instances,
        o.seconds,
        run.robustness().join("report.md").display()
    );
    for l in &o.levels {
        println!(
            "  {:<24} accuracy {:.3} [{:.3}, {:.3}]  recalibrated {:.3} [{:.3}, {:.3}]",
            format!("{} {}", l.network, l.level),
            l.accuracy.median,
            l.accuracy.q25,
            l.accuracy.q75,
            l.accuracy_recalibrated.median,
            l.accuracy_recalibrated.q25,
            l.accuracy_recalibrated.q75
        );
    }
}

fn print_export(r: &robust_snn::export::dynapse1::stage::ExportReport, run: &RunDir) {
    println!(
        "DYNAP-SE1 export: {} neurons on {} cores, {} connections, max fan-in {} CAMs, {:.1} % of |w| pruned -> {}",
        r.neurons_used,
        r.cores_used,
        r.connections,
        r.max_fan_in,
        100.0 * r.pruned_weight_fraction,
        run.root
            .join(robust_snn::export::dynapse1::stage::DIR_NAME)
            .display()
    );
    println!(
        "  accuracy under DYNAP-like mismatch ({} chips): float {:.3}, deployed {:.3} (recalibrated {:.3} / {:.3}); no mismatch: {:.3} / {:.3}; power ~{:.1} uW",
        r.instances,
        r.float_accuracy,
        r.deployed_accuracy,
        r.float_accuracy_recalibrated,
        r.deployed_accuracy_recalibrated,
        r.float_accuracy_nominal,
        r.deployed_accuracy_nominal,
        r.estimated_power_uw
    );
}

/// `export --check FILE`: the validator alone.
fn check_export(file: &std::path::Path) -> anyhow::Result<()> {
    use robust_snn::export::dynapse1::validate;
    let violations = validate::check_file(file)?;
    let doc = robust_snn::export::dynapse1::doc::load(file)?;
    for w in validate::warnings(&doc) {
        eprintln!("warning: {w}");
    }
    if violations.is_empty() {
        println!(
            "{}: valid DYNAP-SE1 export (no rule violated)",
            file.display()
        );
        return Ok(());
    }
    for v in &violations {
        println!("{}: {v}", file.display());
    }
    anyhow::bail!("{}: {} rule violation(s)", file.display(), violations.len())
}

/// Config, backend and run folder of `train` and `run`.
fn train_setup(a: &TrainArgs) -> anyhow::Result<(Config, backend::Resolved, RunDir)> {
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
    if let Some(m) = a.method {
        cfg = cfg.with_override("training.method", m.name(), "--method")?;
    }
    let resolved = backend::resolve(a.common.backend)?;
    Ok((cfg, resolved, RunDir::new(out)))
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
        Command::Train(a) => {
            let (cfg, resolved, run) = train_setup(&a)?;
            let (teacher_m, m) = stages::train(&cfg, &run, &resolved, a.resume)
                .context("training the spiking network")?;
            if let Some(t) = &teacher_m {
                print_teacher(t, &run);
            }
            print_snn(&m, &run);
        }
        Command::Run(a) => {
            let (cfg, resolved, run) = train_setup(&a)?;
            let s = stages::pipeline(&cfg, &run, &resolved, a.resume)
                .context("running the pipeline")?;
            if let Some(m) = &s.teacher {
                print_teacher(m, &run);
            }
            if let Some(m) = &s.snn {
                print_snn(m, &run);
            }
            print_study(&s.robustness, &run);
            if let Some(x) = &s.export {
                print_export(x, &run);
            }
        }
        Command::Evaluate(a) => {
            let cfg = a.common.load()?;
            let resolved = backend::resolve(a.common.backend)?;
            let run = RunDir::new(&a.common.out);
            // the plain network `run` trained beside a robust one is compared as `run` does
            let mut compare = stages::trained_plain(&cfg, &run)
                .into_iter()
                .collect::<Vec<_>>();
            compare.extend(a.compare.iter().cloned());
            let o = robust_snn::study::run_study(
                &cfg,
                &run,
                &resolved,
                &compare,
                stages::interactive(),
            )
            .context("running the robustness study")?;
            print_study(&o, &run);
        }
        Command::Sweep(a) => sweep(&a)?,
        Command::Export(e) if e.format == ExportFormat::Nir => {
            if e.check.is_some() {
                anyhow::bail!("export --check validates DYNAP-SE1 documents, not --format nir");
            }
            let cfg = e.common.load()?;
            let run = RunDir::new(&e.common.out);
            let o = robust_snn::nir::export_stage(&cfg, &run, e.instance, e.mismatch)
                .context("exporting to NIR")?;
            for n in &o.notices {
                eprintln!("notice: {n}");
            }
            for f in &o.files {
                println!("NIR graph -> {}", f.display());
            }
        }
        Command::Export(e) if e.instance.is_some() => {
            anyhow::bail!("export --instance K needs --format nir")
        }
        Command::Import(a) => {
            let cfg = a.common.load()?;
            let resolved = backend::resolve(a.common.backend)?;
            let run = RunDir::new(&a.common.out);
            let o = robust_snn::stages::import_nir(&a.file, &cfg, &run, &resolved)
                .context("importing a NIR graph")?;
            for n in &o.notices {
                eprintln!("notice: {n}");
            }
            println!(
                "imported {} (N = {}, C = {}, outputs {}, {} synapse type(s)): test accuracy {:.4} on {} trials, {:.1} Hz -> {}",
                a.file.display(),
                o.n,
                o.n_in,
                o.n_out,
                o.synapse_types,
                o.test_accuracy,
                o.test_trials,
                o.mean_rate_hz,
                run.network_file().display()
            );
        }
        Command::Export(e) => match &e.check {
            Some(file) => check_export(file)?,
            None => {
                let cfg = e.common.load()?;
                let resolved = backend::resolve(e.common.backend)?;
                let run = RunDir::new(&e.common.out);
                let r = stages::export(&cfg, &run, &resolved, stages::interactive())
                    .context("exporting to DYNAP-SE1")?;
                print_export(&r, &run);
            }
        },
        Command::Bench(b) => bench(&b)?,
    }
    Ok(())
}

/// `robust-snn bench`: every (backend, size) pair, one after another on one engine per backend,
/// printed as each finishes; with `--out`, the JSON lines and the throughput plot.
fn bench(b: &BenchArgs) -> anyhow::Result<()> {
    use robust_snn::bench::{BenchResult, BenchSpec};
    if b.instances.is_empty() || b.backend.is_empty() {
        anyhow::bail!("bench: --instances and --backend need at least one value");
    }
    let spec_for = |instances: u32| BenchSpec {
        instances,
        neurons: b.neurons,
        steps: b.steps,
        mismatch: b.mismatch,
        rate_hz: b.rate,
        nc: b.nc,
        seed: b.seed,
    };
    // every size is checked before anything runs, so a bad size fails at once, not after an hour
    for &i in &b.instances {
        robust_snn::bench::check_sizes(&spec_for(i)).map_err(anyhow::Error::msg)?;
    }
    if let Some(dir) = &b.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut results: Vec<BenchResult> = Vec::new();
    for &choice in &b.backend {
        let resolved = backend::resolve(choice)?;
        let gpu = resolved
            .gpu_context()
            .map(robust_snn::engine::gpu::GpuEngine::with_shared_context);
        for &instances in &b.instances {
            let spec = spec_for(instances);
            let r = match &gpu {
                None => robust_snn::bench::run(&robust_snn::engine::CpuEngine, &spec)?,
                Some(gpu) => {
                    let mut r = robust_snn::bench::run(gpu, &spec)?;
                    r.adapter = Some(gpu.adapter());
                    r.device_bytes = Some(gpu.device_bytes());
                    r.kernel_seconds = gpu.last_stats().kernel_seconds;
                    r
                }
            };
            if b.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let kernel = r
                    .kernel_seconds
                    .map(|k| format!(", {k:.2} s in kernels"))
                    .unwrap_or_default();
                println!(
                    "{}: {} instances x {} neurons x {} steps at {:.0} % mismatch, {:.1} Hz: {:.3e} neuron-steps/s, {:.3e} synaptic events/s ({:.2} s{kernel}; setup {:.2} s)",
                    r.backend,
                    r.instances,
                    r.neurons,
                    r.steps,
                    r.mismatch * 100.0,
                    r.mean_rate_hz,
                    r.neuron_steps_per_s,
                    r.synaptic_events_per_s,
                    r.wall_seconds,
                    r.setup_seconds
                );
            }
            results.push(r);
            // written after every run: an interrupted sweep keeps what it measured
            if let Some(dir) = &b.out {
                let path = dir.join("bench.jsonl");
                std::fs::write(&path, robust_snn::bench::to_json_lines(&results)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    if let Some(dir) = &b.out {
        robust_snn::bench::plot_throughput(&results, &dir.join("throughput.png"))?;
        eprintln!(
            "wrote {} and {}",
            dir.join("bench.jsonl").display(),
            dir.join("throughput.png").display()
        );
    }
    Ok(())
}

/// `robust-snn sweep`: here, point by point; or planned as a Slurm array (`--slurm`), one
/// planned point (`--point`, what an array task runs) or the merge of a planned one (`--collect`).
fn sweep(a: &SweepArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.collect {
        let (o, missing) = robust_snn::sweep::collect(dir).context("collecting the sweep")?;
        println!(
            "sweep: {} of {} points finished -> {}",
            o.points.len(),
            o.points.len() + missing.len(),
            o.csv.display()
        );
        for m in &missing {
            eprintln!("not finished yet: {m}");
        }
        return Ok(());
    }
    let out = a
        .out
        .as_ref()
        .context("sweep: --out DIR is required (except with --collect DIR)")?;
    if let Some(i) = a.point {
        let resolved = backend::resolve(a.backend)?;
        let (rec, computed) = robust_snn::sweep::run_planned_point(out, i, &resolved)
            .with_context(|| format!("running point {i} of the sweep in {}", out.display()))?;
        println!(
            "sweep point {i}: {} {}",
            rec.name,
            if computed {
                "computed"
            } else {
                "was already finished"
            }
        );
        return Ok(());
    }
    let file = a.config.display().to_string();
    let cfg = Config::load(&a.config)?;
    let axes = a
        .set
        .iter()
        .map(|s| robust_snn::sweep::parse_axis(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    // Every point's config is checked before anything is written.
    robust_snn::sweep::configs(&cfg, &file, &axes)?;
    if a.slurm {
        let binary = match &a.slurm_binary {
            Some(b) => b.clone(),
            None => std::env::current_exe().context("locating this binary for the Slurm script")?,
        };
        let opts = robust_snn::sweep::SlurmOptions {
            partition: a.slurm_partition.clone(),
            time: a.slurm_time.clone(),
            cpus: a.slurm_cpus,
            mem: a.slurm_mem.clone(),
            binary,
            backend: format!("{:?}", a.backend).to_lowercase(),
        };
        let job = robust_snn::sweep::write_slurm(&cfg, &file, out, &axes, &a.metric, &opts)
            .context("writing the Slurm sweep")?;
        println!(
            "sweep: {} points, {} to run -> {}\nsubmit with: sbatch {}\nthen merge with: robust-snn sweep --collect {}",
            job.points,
            job.indices.len(),
            job.script.display(),
            job.script.display(),
            out.display()
        );
        return Ok(());
    }
    let resolved = backend::resolve(a.backend)?;
    let o =
        robust_snn::sweep::run_sweep(&cfg, &file, out, &axes, &resolved, &a.metric, a.max_points)
            .context("running the sweep")?;
    println!(
        "sweep: {} points ({} computed now, {} already done) -> {}",
        o.points.len(),
        o.computed,
        o.skipped,
        o.csv.display()
    );
    Ok(())
}
