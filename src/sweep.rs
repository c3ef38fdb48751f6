//! Parameter sweeps: the cartesian grid over config keys, each point a full pipeline run in its
//! own folder, finished points skipped, so an interrupted sweep resumes where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Resolved;
use crate::config::{Config, RunDir};
use crate::error::Error;

/// One swept key and its values, from `--set key=v1,v2,...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Parse `key=v1,v2,...`. Commas inside brackets or quotes do not split (so TOML arrays work).
pub fn parse_axis(arg: &str) -> Result<Axis, String> {
    let (key, rest) = arg
        .split_once('=')
        .ok_or_else(|| format!("--set {arg}: expected KEY=V1,V2,..."))?;
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("--set {arg}: `{key}` is not a config key"));
    }
    let (mut values, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, false);
    for ch in rest.chars() {
        match ch {
            '"' => quote = !quote,
            '[' if !quote => depth += 1,
            ']' if !quote => depth -= 1,
            ',' if !quote && depth == 0 => {
                values.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    values.push(cur.trim().to_string());
    if values.iter().any(|v| v.is_empty()) {
        return Err(format!("--set {arg}: empty value for `{key}`"));
    }
    Ok(Axis {
        key: key.to_string(),
        values,
    })
}

/// Every combination, the first axis varying slowest.
pub fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((axis.key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

/// Longest point folder name kept as it is. Filesystems refuse names over 255 bytes, and a sweep
/// that fixes many keys with `--set` (each one an axis of one value) easily passes that.
pub const MAX_POINT_NAME: usize = 200;

/// A folder name for a point: `key=value` pairs joined by `__`, filesystem-safe. A name longer
/// than [`MAX_POINT_NAME`] keeps its first part and ends in a hash of the whole name, so that two
/// points still get two folders and a rerun of the same sweep finds the same folder.
pub fn point_name(assign: &[(String, String)]) -> String {
    let raw: Vec<String> = assign.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let safe: String = raw
        .join("__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.len() <= MAX_POINT_NAME {
        return safe;
    }
    // the raw text is hashed, not the sanitised one: values that differ only in characters the
    // sanitiser replaces must still part
    let hash = fnv1a64(raw.join("__").as_bytes());
    let suffix = format!("__h{hash:016x}");
    // `safe` is ASCII, so any byte index is a char boundary
    format!("{}{suffix}", &safe[..MAX_POINT_NAME - suffix.len()])
}

/// 64-bit FNV-1a: a stable hash (the standard library's is randomised per process, which would
/// move a resumed sweep's folders).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What a finished point records (`points/<name>/point.json`, written last).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointRecord {
    pub name: String,
    pub assignments: Vec<(String, String)>,
    /// Flattened figures: `teacher.test_accuracy`, `snn.test_accuracy`, ...,
    /// `robustness.<level>.accuracy_recalibrated`.
    pub metrics: BTreeMap<String, f64>,
    pub seconds: f64,
}

/// The outcome of a sweep.
#[derive(Clone, Debug)]
pub struct SweepOutcome {
    pub points: Vec<PointRecord>,
    pub computed: usize,
    pub skipped: usize,
    pub csv: PathBuf,
}

/// A point's `key = value` assignments.
pub type Assignments = Vec<(String, String)>;

/// Build every point's config first, so a bad key or value fails before anything runs.
pub fn configs(
    base: &Config,
    file: &str,
    axes: &[Axis],
) -> Result<Vec<(Assignments, Config)>, Error> {
    grid(axes)
        .into_iter()
        .map(|assign| {
            let mut cfg = base.clone();
            for (k, v) in &assign {
                cfg = cfg.with_override(k, v, file)?;
            }
            Ok((assign, cfg))
        })
        .collect()
}

/// Run (or resume) a sweep into `out`. `max_points` stops after that many newly computed points
/// (None: all), which is how an interruption is simulated in the tests.
pub fn run_sweep(
    base: &Config,
    file: &str,
    out: &Path,
    axes: &[Axis],
    backend: &Resolved,
    metric: &str,
    max_points: Option<usize>,
) -> Result<SweepOutcome, Error> {
    let points = configs(base, file, axes)?;
    let io = |p: &Path, e: std::io::Error| Error::io(p, e);
    std::fs::create_dir_all(out.join("points")).map_err(|e| io(out, e))?;
    let pb = crate::report::progress_bar(points.len() as u64, "sweep");
    if !crate::stages::interactive() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (mut records, mut computed, mut skipped) = (Vec::new(), 0usize, 0usize);
    for (assign, cfg) in points {
        if let Some(rec) = finished_point(out, &assign) {
            skipped += 1;
            records.push(rec);
            pb.inc(1);
            continue;
        }
        if max_points.is_some_and(|m| computed >= m) {
            break;
        }
        let name = point_name(&assign);
        pb.set_message(name.clone());
        eprintln!("sweep point {}: {name}", records.len() + 1);
        records.push(compute_point(out, assign, &cfg, backend)?);
        computed += 1;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let csv = out.join("sweep.csv");
    write_csv(&csv, axes, &records)?;
    plot_metric(out, axes, &records, metric)?;
    Ok(SweepOutcome {
        points: records,
        computed,
        skipped,
        csv,
    })
}

/// The record of a finished point (its `point.json`, written last), if it is there.
fn finished_point(out: &Path, assign: &Assignments) -> Option<PointRecord> {
    let path = out
        .join("points")
        .join(point_name(assign))
        .join("point.json");
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<PointRecord>(&text).ok()
}

/// Runs one point's whole pipeline in `out/points/<name>/` and writes its `point.json` last.
fn compute_point(
    out: &Path,
    assign: Assignments,
    cfg: &Config,
    backend: &Resolved,
) -> Result<PointRecord, Error> {
    let name = point_name(&assign);
    let dir = out.join("points").join(&name);
    let record_path = dir.join("point.json");
    let t0 = std::time::Instant::now();
    let summary = crate::stages::pipeline(cfg, &RunDir::new(&dir), backend, false)?;
    let rec = PointRecord {
        name,
        assignments: assign,
        metrics: summary.flatten(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    crate::report::write_json(&record_path, &rec).map_err(|e| Error::io(&record_path, e))?;
    Ok(rec)
}

/// A sweep laid out for a cluster's array job (`DIR/sweep.json`, beside the resolved base
/// config `DIR/base.toml`): every array task rebuilds the same grid from these two files, so a
/// task needs only the sweep folder and its index, and the base config can be edited or moved
/// after submission without changing what runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepPlan {
    /// The config file the sweep was made from (for the record).
    pub config_file: String,
    pub axes: Vec<Axis>,
    /// The figure `--collect` plots against each swept key.
    pub metric: String,
}

/// Resources and paths of the Slurm array job `sweep --slurm` writes.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// `--partition` (None: the cluster's default).
    pub partition: Option<String>,
    /// `--time` of one point, as Slurm reads it (e.g. `04:00:00`).
    pub time: String,
    /// `--cpus-per-task`; the point's thread pool uses as many.
    pub cpus: u32,
    /// `--mem` of one point (e.g. `8G`).
    pub mem: String,
    /// The robust-snn binary every task runs (an absolute path the compute nodes see).
    pub binary: PathBuf,
    /// `--backend` of the points (cpu, gpu or auto).
    pub backend: String,
}

/// What `sweep --slurm` wrote.
#[derive(Clone, Debug)]
pub struct SlurmJob {
    pub script: PathBuf,
    /// Indices of the points the array runs (the unfinished ones).
    pub indices: Vec<usize>,
    pub points: usize,
}

const PLAN: &str = "sweep.json";
const BASE: &str = "base.toml";

/// Writes the plan and an sbatch job-array script, one array task per point not yet finished
/// (a resubmitted script made again after a partial run resumes; a task also skips its point
/// if it finds it finished). Every point's config is checked before anything is written.
pub fn write_slurm(
    base: &Config,
    file: &str,
    out: &Path,
    axes: &[Axis],
    metric: &str,
    opts: &SlurmOptions,
) -> Result<SlurmJob, Error> {
    let points = configs(base, file, axes)?;
    if opts.cpus == 0 {
        return Err(Error::Other("--slurm-cpus must be at least 1".into()));
    }
    for (what, v) in [("--slurm-time", &opts.time), ("--slurm-mem", &opts.mem)] {
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(Error::Other(format!(
                "{what} = {v:?}: expected one word such as 04:00:00 or 8G"
            )));
        }
    }
    let io = |p: &Path, e: std::io::Error| Error::io(p, e);
    std::fs::create_dir_all(out.join("slurm")).map_err(|e| io(out, e))?;
    let out = out.canonicalize().map_err(|e| io(out, e))?;
    let plan = SweepPlan {
        config_file: file.to_string(),
        axes: axes.to_vec(),
        metric: metric.to_string(),
    };
    let base_path = out.join(BASE);
    crate::report::write_atomic(&base_path, base.to_toml().as_bytes())
        .map_err(|e| io(&base_path, e))?;
    let plan_path = out.join(PLAN);
    crate::report::write_json(&plan_path, &plan).map_err(|e| io(&plan_path, e))?;
    let indices: Vec<usize> = points
        .iter()
        .enumerate()
        .filter(|(_, (assign, _))| finished_point(&out, assign).is_none())
        .map(|(i, _)| i)
        .collect();
    let script = out.join("sweep.sbatch");
    let text = sbatch_script(&out, &indices, opts);
    crate::report::write_atomic(&script, text.as_bytes()).map_err(|e| io(&script, e))?;
    Ok(SlurmJob {
        script,
        indices,
        points: points.len(),
    })
}

/// `'text'` for a POSIX shell, whatever the text holds.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The sbatch script of an array over `indices` of the sweep in `out` (absolute).
pub fn sbatch_script(out: &Path, indices: &[usize], opts: &SlurmOptions) -> String {
    let array = if indices.is_empty() {
        // nothing left: an array Slurm accepts that runs one task which finds its point done
        "0".to_string()
    } else {
        indices
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = String::from("#!/usr/bin/env bash\n");
    s.push_str("# robust-snn sweep as a Slurm job array: one array task per point.\n");
    s.push_str(
        "# Submit with `sbatch sweep.sbatch`; merge with `robust-snn sweep --collect DIR`.\n",
    );
    s.push_str("#SBATCH --job-name=robust-snn-sweep\n");
    s.push_str(&format!("#SBATCH --array={array}\n"));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus));
    s.push_str(&format!("#SBATCH --mem={}\n", opts.mem));
    s.push_str(&format!("#SBATCH --time={}\n", opts.time));
    // sbatch reads no shell quoting in #SBATCH lines: a path with spaces would break there, so
    // the log goes to the working directory, which sbatch sets with --chdir
    s.push_str(&format!(
        "#SBATCH --chdir={}\n",
        out.join("slurm").display()
    ));
    s.push_str("#SBATCH --output=%A_%a.out\n");
    if let Some(p) = &opts.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    s.push_str("set -euo pipefail\n");
    s.push_str(
        ": \"${SLURM_ARRAY_TASK_ID:?run this script with sbatch (or set SLURM_ARRAY_TASK_ID)}\"\n",
    );
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str(&format!(
        "exec {} sweep --out {} --point \"$SLURM_ARRAY_TASK_ID\" --backend {}\n",
        shell_quote(&opts.binary.display().to_string()),
        shell_quote(&out.display().to_string()),
        opts.backend
    ));
    s
}

/// The plan and base config an array task or `--collect` works from.
pub fn load_plan(out: &Path) -> Result<(Config, SweepPlan), Error> {
    let plan_path = out.join(PLAN);
    let text = std::fs::read_to_string(&plan_path).map_err(|e| {
        Error::Other(format!(
            "{}: {e} (is {} a folder written by `robust-snn sweep --slurm`?)",
            plan_path.display(),
            out.display()
        ))
    })?;
    let plan: SweepPlan = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: not a sweep plan: {e}", plan_path.display())))?;
    let base_path = out.join(BASE);
    let base_text = std::fs::read_to_string(&base_path).map_err(|e| Error::io(&base_path, e))?;
    let base = Config::parse(&base_text, &base_path.display().to_string())?;
    Ok((base, plan))
}

/// Runs point `index` of the planned sweep in `out` (an array task's work); a point found
/// finished is not run again. Returns its record and whether it was computed now.
pub fn run_planned_point(
    out: &Path,
    index: usize,
    backend: &Resolved,
) -> Result<(PointRecord, bool), Error> {
    let (base, plan) = load_plan(out)?;
    let file = out.join(BASE).display().to_string();
    let mut points = configs(&base, &file, &plan.axes)?;
    if index >= points.len() {
        return Err(Error::Other(format!(
            "--point {index}: the sweep in {} has {} points (0..{})",
            out.display(),
            points.len(),
            points.len()
        )));
    }
    let (assign, cfg) = points.swap_remove(index);
    if let Some(rec) = finished_point(out, &assign) {
        return Ok((rec, false));
    }
    eprintln!("sweep point {index}: {}", point_name(&assign));
    Ok((compute_point(out, assign, &cfg, backend)?, true))
}

/// Merges the finished points of the planned sweep in `out` into `sweep.csv` and its plot.
/// Returns the outcome and the names of the points not finished yet (those are left out).
pub fn collect(out: &Path) -> Result<(SweepOutcome, Vec<String>), Error> {
    let (base, plan) = load_plan(out)?;
    let file = out.join(BASE).display().to_string();
    let points = configs(&base, &file, &plan.axes)?;
    let (mut records, mut missing) = (Vec::new(), Vec::new());
    for (assign, _) in &points {
        match finished_point(out, assign) {
            Some(rec) => records.push(rec),
            None => missing.push(point_name(assign)),
        }
    }
    if records.is_empty() {
        return Err(Error::Other(format!(
            "{}: none of the {} points has finished yet (no points/*/point.json)",
            out.display(),
            points.len()
        )));
    }
    let csv = out.join("sweep.csv");
    write_csv(&csv, &plan.axes, &records)?;
    plot_metric(out, &plan.axes, &records, &plan.metric)?;
    let skipped = records.len();
    Ok((
        SweepOutcome {
            points: records,
            computed: 0,
            skipped,
            csv,
        },
        missing,
    ))
}

fn write_csv(path: &Path, axes: &[Axis], records: &[PointRecord]) -> Result<(), Error> {
    let mut metric_keys: Vec<&String> = Vec::new();
    for r in records {
        for k in r.metrics.keys() {
            if !metric_keys.contains(&k) {
                metric_keys.push(k);
            }
        }
    }
    let mut s = String::from("point");
    for a in axes {
        s.push_str(&format!(",{}", a.key));
    }
    for k in &metric_keys {
        s.push_str(&format!(",{k}"));
    }
    s.push_str(",seconds\n");
    for r in records {
        s.push_str(&r.name);
        for (_, v) in &r.assignments {
            s.push_str(&format!(",{}", v.replace(',', ";")));
        }
        for k in &metric_keys {
            match r.metrics.get(*k) {
                Some(v) => s.push_str(&format!(",{v}")),
                None => s.push(','),
            }
        }
        s.push_str(&format!(",{}\n", r.seconds));
    }
    crate::report::write_atomic(path, s.as_bytes()).map_err(|e| Error::io(path, e))
}

/// The chosen metric against each swept key (one panel per key; other keys' values averaged).
fn plot_metric(
    out: &Path,
    axes: &[Axis],
    records: &[PointRecord],
    metric: &str,
) -> Result<(), Error> {
    use crate::report::plot::{Panel, Series};
    let mut panels = Vec::new();
    for (ai, axis) in axes.iter().enumerate() {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (vi, v) in axis.values.iter().enumerate() {
            let vals: Vec<f64> = records
                .iter()
                .filter(|r| r.assignments.get(ai).map(|a| &a.1) == Some(v))
                .filter_map(|r| r.metrics.get(metric).copied())
                .collect();
            if vals.is_empty() {
                continue;
            }
            xs.push(v.parse::<f64>().unwrap_or(vi as f64));
            ys.push(vals.iter().sum::<f64>() / vals.len() as f64);
        }
        panels.push(Panel {
            title: format!("{metric} against {}", axis.key),
            x_label: axis.key.clone(),
            y_label: metric.to_string(),
            series: vec![Series::new(metric, xs, ys)],
            log_y: false,
        });
    }
    if panels.is_empty() {
        return Ok(());
    }
    crate::report::plot::panels(&out.join("sweep.png"), "Sweep", &panels, 900, 320)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_and_grid_is_cartesian() {
        let a = parse_axis("snn.n=100,200").unwrap();
        assert_eq!(a.values, vec!["100", "200"]);
        let b = parse_axis("evaluation.mismatch=[0.1,0.2],[0.3]").unwrap();
        assert_eq!(b.values, vec!["[0.1,0.2]", "[0.3]"]);
        let g = grid(&[a, b]);
        assert_eq!(g.len(), 4);
        assert_eq!(
            g[1],
            vec![
                ("snn.n".to_string(), "100".to_string()),
                ("evaluation.mismatch".to_string(), "[0.3]".to_string())
            ]
        );
        assert_eq!(
            point_name(&g[0]),
            "snn.n=100__evaluation.mismatch=_0.1_0.2_"
        );
        assert!(parse_axis("nokey").is_err());
        assert!(parse_axis("snn.n=1,,2").unwrap_err().contains("snn.n"));
    }

    #[test]
    fn the_sbatch_script_runs_each_unfinished_point_with_quoted_paths() {
        let opts = SlurmOptions {
            partition: Some("short".into()),
            time: "01:30:00".into(),
            cpus: 4,
            mem: "6G".into(),
            binary: PathBuf::from("/opt/it's here/robust-snn"),
            backend: "cpu".into(),
        };
        let s = sbatch_script(Path::new("/scratch/my sweep"), &[0, 2, 5], &opts);
        assert!(s.starts_with("#!/usr/bin/env bash\n"));
        for line in [
            "#SBATCH --array=0,2,5",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=6G",
            "#SBATCH --time=01:30:00",
            "#SBATCH --partition=short",
            "#SBATCH --chdir=/scratch/my sweep/slurm",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} missing from\n{s}");
        }
        // the binary's quote survives the shell: 'it'\''s' is it's
        assert!(
            s.contains("exec '/opt/it'\\''s here/robust-snn' sweep --out '/scratch/my sweep' --point \"$SLURM_ARRAY_TASK_ID\" --backend cpu"),
            "{s}"
        );
        // every #SBATCH line comes before the first command, or sbatch ignores it
        let first_cmd = s.lines().position(|l| l.starts_with("set -e")).unwrap();
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")));
        // nothing left to run still gives an array sbatch accepts
        assert!(sbatch_script(Path::new("/x"), &[], &opts).contains("#SBATCH --array=0\n"));
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // vectors of the FNV reference (Fowler, Noll, Vo): "" and "a"
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn long_point_names_fit_a_folder_and_stay_distinct() {
        let many = |last: &str| -> Vec<(String, String)> {
            let mut a: Vec<(String, String)> = (0..30)
                .map(|i| (format!("training.robust.key{i}"), format!("{i}.0")))
                .collect();
            a.push(("training.method".to_string(), last.to_string()));
            a
        };
        let (x, y) = (point_name(&many("force")), point_name(&many("reservoir")));
        assert_eq!(x.len(), MAX_POINT_NAME);
        assert_eq!(y.len(), MAX_POINT_NAME);
        assert_ne!(
            x, y,
            "the points differ only after the cut: the hash must part them"
        );
        assert_eq!(
            x,
            point_name(&many("force")),
            "the same point, the same folder"
        );
        // values the sanitiser maps to the same text still get different folders
        assert_ne!(point_name(&many("a b")), point_name(&many("a/b")));
        // a short name is unchanged
        let short = vec![("snn.n".to_string(), "320".to_string())];
        assert_eq!(point_name(&short), "snn.n=320");
    }
}
