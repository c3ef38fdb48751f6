//! The comparison of training methods in the paper's form (its §8 tables): accuracy, median
//! [IQR], of every method at every level, raw and recalibrated, with the paper's audio-task
//! figures alongside; the output MSE's increase over the unperturbed network; the paired tests
//! between the first network (Network ADS in `evaluate --compare`) and each other at 10 % and
//! 20 % mismatch and 4 bits; and plots with one box per method per level
//! (`methods.md`, `plots/methods_*.png`).

use serde::{Deserialize, Serialize};

use super::StudyOutcome;
use super::evaluate::{InstanceRow, LevelSummary};
use crate::error::Error;
use crate::report::StagedDir;
use crate::snn::Method;

/// Which method trained each network of a study.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkMethod {
    pub network: String,
    pub method: Method,
}

/// The paper's medians on its audio task (paper §8.1-8.4) per method and level, for
/// orientation only: a different task, input and network size.
pub fn paper_audio(method: Method, level: &str) -> Option<f64> {
    let table: &[(&str, [Option<f64>; 4])] = &[
        // level: [ADS (EBN), BPTT, FORCE, reservoir]
        (
            "unperturbed",
            [Some(0.888), Some(0.864), Some(0.944), Some(0.892)],
        ),
        (
            "mismatch=0.05",
            [Some(0.868), Some(0.866), Some(0.910), Some(0.523)],
        ),
        (
            "mismatch=0.1",
            [Some(0.810), Some(0.852), Some(0.799), Some(0.512)],
        ),
        (
            "mismatch=0.2",
            [Some(0.671), Some(0.768), Some(0.555), Some(0.502)],
        ),
        ("mismatch=0.3", [None, Some(0.618), None, Some(0.510)]),
        (
            "bits=6",
            [Some(0.855), Some(0.894), Some(0.894), Some(0.481)],
        ),
        (
            "bits=5",
            [Some(0.855), Some(0.889), Some(0.849), Some(0.519)],
        ),
        (
            "bits=4",
            [Some(0.805), Some(0.867), Some(0.693), Some(0.561)],
        ),
        (
            "bits=3",
            [Some(0.664), Some(0.707), Some(0.502), Some(0.556)],
        ),
        (
            "bits=2",
            [Some(0.519), Some(0.540), Some(0.597), Some(0.546)],
        ),
        (
            "noise=0.01",
            [Some(0.845), Some(0.889), Some(0.899), Some(0.853)],
        ),
        (
            "noise=0.05",
            [Some(0.794), Some(0.783), Some(0.874), Some(0.700)],
        ),
        (
            "noise=0.1",
            [Some(0.712), Some(0.556), Some(0.812), Some(0.482)],
        ),
        ("silence=0.4", [Some(0.780), None, None, None]),
    ];
    let col = match method {
        Method::Ads => 0,
        Method::Bptt => 1,
        Method::Force => 2,
        Method::Reservoir => 3,
        // the paper has no figures for a network trained elsewhere
        Method::Imported => return None,
    };
    table
        .iter()
        .find(|(l, _)| *l == level)
        .and_then(|(_, v)| v[col])
}

/// The paper's relative increase of the median output MSE over the unperturbed network at
/// 5 / 10 / 20 % mismatch (paper §8.1), in percent.
pub fn paper_mse_increase(method: Method, level: &str) -> Option<f64> {
    let v = match method {
        Method::Ads => [10.9, 59.5, 165.0],
        Method::Bptt => [23.5, 51.4, 178.0],
        Method::Force => [49.0, 243.0, 791.0],
        Method::Reservoir => [7.9e3, 3.9e4, 6.7e4],
        Method::Imported => return None,
    };
    match level {
        "mismatch=0.05" => Some(v[0]),
        "mismatch=0.1" => Some(v[1]),
        "mismatch=0.2" => Some(v[2]),
        _ => None,
    }
}

/// The families of levels the tables and plots group (title, level kinds).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("Mismatch (paper mode)", "mismatch", &["none", "mismatch"]),
    ("Weight quantisation", "bits", &["none", "bits"]),
    ("Membrane noise", "noise", &["none", "noise"]),
    ("Silenced neurons", "silence", &["none", "silence"]),
];

/// Levels at which the paired tests are tabulated.
const PAIRED_LEVELS: &[&str] = &["mismatch=0.1", "mismatch=0.2", "bits=4"];

fn q(l: &LevelSummary, recal: bool) -> String {
    let x = if recal {
        &l.accuracy_recalibrated
    } else {
        &l.accuracy
    };
    format!("{:.3} [{:.3}, {:.3}]", x.median, x.q25, x.q75)
}

fn name_of(o: &StudyOutcome, network: &str) -> String {
    match o.methods.iter().find(|m| m.network == network) {
        Some(m) => format!("{} (`{network}`)", m.method.label()),
        None => format!("`{network}`"),
    }
}

/// Whether the study compares more than one method.
pub fn compares_methods(o: &StudyOutcome) -> bool {
    let mut seen: Vec<Method> = Vec::new();
    for m in &o.methods {
        if !seen.contains(&m.method) {
            seen.push(m.method);
        }
    }
    seen.len() > 1
}

/// `methods.md`.
pub fn markdown(o: &StudyOutcome) -> String {
    let networks: Vec<&NetworkMethod> = o.methods.iter().collect();
    let mut s = format!(
        "# Training methods on identical chips: {}\n\n{} chip instances per level, every network on the \
         same instance draws (seed {}), {} test trials; engine {}. Figures are median [25th, 75th \
         percentile] over instances; **raw** is the network as trained, **recalibrated** after the \
         per-level output gain and recurrent scale chosen on separate validation draws. The paper's \
         column is its audio task (\"Hey Snips\", 768 neurons, 16 channels; paper §8): a different \
         task, shown only for the trend.\n\n",
        o.task, o.instances, o.seed, o.test_trials, o.backend
    );
    for (title, _, kinds) in FAMILIES {
        let levels: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for l in o.levels.iter().filter(|l| kinds.contains(&l.kind.as_str())) {
                if !v.contains(&l.level.as_str()) {
                    v.push(&l.level);
                }
            }
            v
        };
        if levels.len() < 2 {
            continue;
        }
        s.push_str(&format!("## {title}: accuracy\n\n| method | level | raw | recalibrated | paper, audio |\n|---|---|---|---|---|\n"));
        for nm in &networks {
            for level in &levels {
                if let Some(l) = o
                    .levels
                    .iter()
                    .find(|l| l.network == nm.network && l.level == *level)
                {
                    s.push_str(&format!(
                        "| {} | {} | {} | {} | {} |\n",
                        name_of(o, &nm.network),
                        level,
                        q(l, false),
                        q(l, true),
                        paper_audio(nm.method, level)
                            .map_or_else(|| "–".to_string(), |p| format!("{p:.3}"))
                    ));
                }
            }
        }
        s.push('\n');
    }
    // output MSE relative to the unperturbed network
    let mismatch: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for l in o.levels.iter().filter(|l| l.kind == "mismatch") {
            if !v.contains(&l.level.as_str()) {
                v.push(&l.level);
            }
        }
        v
    };
    if !mismatch.is_empty() {
        s.push_str("## Output MSE under mismatch (raw, median), and its increase over the unperturbed network\n\n| method | unperturbed |");
        for l in &mismatch {
            s.push_str(&format!(" {l} |"));
        }
        s.push_str("\n|---|---|");
        for _ in &mismatch {
            s.push_str("---|");
        }
        s.push('\n');
        for nm in &networks {
            let base = o
                .levels
                .iter()
                .find(|l| l.network == nm.network && l.kind == "none")
                .map(|l| l.mse.median);
            s.push_str(&format!(
                "| {} | {} |",
                name_of(o, &nm.network),
                base.map_or_else(|| "–".to_string(), |b| format!("{b:.4}"))
            ));
            for level in &mismatch {
                let cell = o
                    .levels
                    .iter()
                    .find(|l| l.network == nm.network && l.level == *level)
                    .map(|l| {
                        let rel = base
                            .filter(|&b| b > 0.0)
                            .map(|b| format!(" ({:+.0} %", 100.0 * (l.mse.median / b - 1.0)))
                            .unwrap_or_default();
                        let paper = paper_mse_increase(nm.method, level)
                            .map(|p| format!("; paper {p:+.0} %"))
                            .unwrap_or_default();
                        let close = if rel.is_empty() { "" } else { ")" };
                        format!("{:.4}{rel}{paper}{close}", l.mse.median)
                    })
                    .unwrap_or_else(|| "–".to_string());
                s.push_str(&format!(" {cell} |"));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    // paired tests
    let first = networks.first().map(|n| n.network.as_str()).unwrap_or("");
    let mut rows = String::new();
    for c in &o.comparisons {
        if !PAIRED_LEVELS.contains(&c.level.as_str()) || c.baseline != first {
            continue;
        }
        rows.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:+.3} | {:.2e} | {} |\n",
            c.level,
            name_of(o, &c.other),
            c.metric,
            c.median_baseline,
            c.median_other,
            c.test.median_difference,
            c.test.p_value,
            c.test.n_pairs
        ));
    }
    if !rows.is_empty() {
        s.push_str(&format!(
            "## Paired tests: {} against each other method\n\nWilcoxon signed-rank on the same chip instances (two-sided). The median difference is the other method minus {} (negative: {} is better).\n\n| level | other method | metric | median {} | median other | median difference | p | pairs |\n|---|---|---|---|---|---|---|---|\n",
            name_of(o, first),
            name_of(o, first),
            name_of(o, first),
            name_of(o, first)
        ));
        s.push_str(&rows);
        s.push('\n');
    }
    s
}

/// `plots/methods_<family>.png`: one box per (level, method), raw beside recalibrated.
pub fn plots(stage: &StagedDir, o: &StudyOutcome, rows: &[InstanceRow]) -> Result<(), Error> {
    let short = |network: &str| -> String {
        o.methods
            .iter()
            .find(|m| m.network == network)
            // one letter, so that a level's boxes keep readable tick labels
            .map_or_else(
                || network.to_string(),
                |m| m.method.name()[..1].to_uppercase(),
            )
    };
    for (title, file, kinds) in FAMILIES {
        let group = |f: &dyn Fn(&InstanceRow) -> f64| -> Vec<(String, Vec<f64>)> {
            let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
            for r in rows.iter().filter(|r| kinds.contains(&r.kind.as_str())) {
                let value = if r.kind == "none" {
                    "0".to_string()
                } else {
                    format!("{}", r.value)
                };
                let label = format!("{value} {}", short(&r.network));
                match groups.iter_mut().find(|g| g.0 == label) {
                    Some(g) => g.1.push(f(r)),
                    None => groups.push((label, vec![f(r)])),
                }
            }
            // by level, then by the study's network order
            let order = |label: &str| -> (f64, usize) {
                let (v, m) = label.split_once(' ').unwrap_or((label, ""));
                let idx = o
                    .methods
                    .iter()
                    .position(|x| short(&x.network) == m)
                    .unwrap_or(usize::MAX);
                (v.parse().unwrap_or(f64::INFINITY), idx)
            };
            groups.sort_by(|a, b| {
                order(&a.0)
                    .partial_cmp(&order(&b.0))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            groups
        };
        let raw = group(&|r| r.accuracy);
        if raw.len() <= o.methods.len() {
            continue;
        }
        let recal = group(&|r| r.accuracy_recalibrated);
        crate::report::plot::boxes(
            &stage.join(&format!("plots/methods_{file}.png")),
            &format!(
                "{title}: accuracy per chip instance (A = Network ADS, B = BPTT-LIF, F = FORCE, R = reservoir)"
            ),
            &format!("{file} level, method"),
            "accuracy per instance",
            &raw,
            Some(("raw", "recalibrated", &recal)),
        )?;
    }
    Ok(())
}
