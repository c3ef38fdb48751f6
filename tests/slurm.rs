//! A sweep on a real Slurm: planned with `sweep --slurm`, submitted with sbatch as a job array,
//! waited for, and merged with `sweep --collect`. The test uses a cluster that `sinfo` already
//! reaches; otherwise, as root with Debian's slurm-wlm and munge installed (`.ci/run` installs
//! them), it starts a single-node Slurm on this machine with `tests/slurm/start-slurm.sh`.
//! Without the Slurm tools it says so and passes: the script generation and the array tasks are
//! tested without Slurm in tests/study.rs.

use std::path::Path;
use std::process::Command;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_robust-snn"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn cluster_answers() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

#[test]
fn a_sweep_runs_as_a_slurm_job_array_and_is_collected() {
    if !have("sbatch") {
        eprintln!(
            "SKIPPED: no sbatch on this machine (apt-get install slurm-wlm munge; .ci/run does)"
        );
        return;
    }
    if !cluster_answers() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/start-slurm.sh");
        let o = Command::new("bash").arg(&script).output().unwrap();
        assert!(
            o.status.success(),
            "starting a local Slurm failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, common::tiny_sweep_base(4, 16)).unwrap();
    let out = dir.path().join("sweep");
    let o = bin()
        .args(["sweep", "--config", base.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--backend", "cpu"])
        .args(["--set", "snn.n=12,16", "--slurm"])
        .args([
            "--slurm-time",
            "00:10:00",
            "--slurm-cpus",
            "1",
            "--slurm-mem",
            "1G",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --wait: sbatch returns when every array task has ended, with the worst exit code
    let o = Command::new("timeout")
        .args(["600", "sbatch", "--wait", "--parsable"])
        .arg(out.join("sweep.sbatch"))
        .output()
        .unwrap();
    let logs = || -> String {
        std::fs::read_dir(out.join("slurm"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            })
            .unwrap_or_default()
    };
    assert!(
        o.status.success(),
        "sbatch --wait: {}{}\ntask logs:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        logs()
    );
    let log_text = logs();
    assert!(
        log_text.contains("sweep point 0:") && log_text.contains("sweep point 1:"),
        "each array task ran its own point:\n{log_text}"
    );
    let o = bin()
        .args(["sweep", "--collect", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 of 2 points finished"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(out.join("sweep.png").is_file());
}
