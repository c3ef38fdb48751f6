//! What a study writes: `instances.csv`, `summary.json`, `report.md` and `plots/`.

use super::StudyOutcome;
use super::evaluate::InstanceRow;
use super::stats::Quartiles;
use crate::error::Error;
use crate::report::StagedDir;

/// The paper's medians for Network ADS with W_fast on its audio task (docs/design.md §5),
/// shown beside ours for orientation: the tasks differ, so only the trend compares.
pub const PAPER_AUDIO: &[(&str, f64)] = &[
    ("unperturbed", 0.888),
    ("mismatch=0.05", 0.868),
    ("mismatch=0.1", 0.810),
    ("mismatch=0.2", 0.671),
    ("bits=4", 0.805),
    ("noise=0.1", 0.712),
    ("silence=0.4", 0.780),
];

fn q(x: &Quartiles) -> String {
    format!("{:.3} [{:.3}, {:.3}]", x.median, x.q25, x.q75)
}

/// One CSV line per (network, level, instance).
pub fn instances_csv(rows: &[InstanceRow]) -> String {
    let mut csv = String::from(
        "network,kind,value,level,instance,seed,accuracy,accuracy_recalibrated,mse,reconstruction_error,mean_rate_hz,mean_rate_hz_recalibrated,gain,recurrent_scale\n",
    );
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},\"{}\",{},{},{},{},{},{},{},{},{},{}\n",
            r.network,
            r.kind,
            r.value,
            r.level,
            r.instance,
            r.seed,
            r.accuracy,
            r.accuracy_recalibrated,
            r.mse,
            r.reconstruction_error,
            r.mean_rate_hz,
            r.mean_rate_hz_recalibrated,
            r.gain,
            r.recurrent_scale
        ));
    }
    csv
}

/// The whole study into `stage`.
pub fn write_all(
    stage: &StagedDir,
    outcome: &StudyOutcome,
    rows: &[InstanceRow],
) -> Result<(), Error> {
    let io = |p: &std::path::Path, e: std::io::Error| Error::io(p, e);
    let csv = instances_csv(rows);
    let p = stage.join("instances.csv");
    crate::report::write_atomic(&p, csv.as_bytes()).map_err(|e| io(&p, e))?;
    let p = stage.join("summary.json");
    crate::report::write_json(&p, outcome).map_err(|e| io(&p, e))?;
    let p = stage.join("report.md");
    crate::report::write_atomic(&p, markdown(outcome).as_bytes()).map_err(|e| io(&p, e))?;
    std::fs::create_dir_all(stage.join("plots")).map_err(|e| io(&stage.join("plots"), e))?;
    plots(stage, outcome, rows)?;
    if super::methods::compares_methods(outcome) {
        let p = stage.join("methods.md");
        crate::report::write_atomic(&p, super::methods::markdown(outcome).as_bytes())
            .map_err(|e| io(&p, e))?;
        super::methods::plots(stage, outcome, rows)?;
    }
    Ok(())
}

/// The tables in the paper's form: median [inter-quartile range] over instances.
pub fn markdown(o: &StudyOutcome) -> String {
    let mut s = format!(
        "# Robustness study: {}\n\n{} chip instances per level (test draws), {} separate validation draws for the \
         gain recalibration, {} test trials and {} validation trials; seed {}; engine {}; {:.0} s.\n\n\
         Figures are median [25th, 75th percentile] over instances. **raw**: the network as trained. \
         **recalibrated**: one output gain and one scale of W_fast and W_slow per (network, level), chosen \
         on the validation trials and separate validation draws and applied to the test draws (the paper \
         re-tuned the gain the same way and scaled the recurrent weights by hand per level).\n\n",
        o.task,
        o.instances,
        o.val_instances,
        o.test_trials,
        o.val_trials,
        o.seed,
        o.backend,
        o.seconds
    );
    let mut networks: Vec<&str> = Vec::new();
    for l in &o.levels {
        if !networks.contains(&l.network.as_str()) {
            networks.push(&l.network);
        }
    }
    for net in networks {
        s.push_str(&format!("## Network `{net}`\n\n"));
        s.push_str("| level | accuracy (raw) | accuracy (recalibrated) | gain | recurrent scale | output MSE (raw) | reconstruction error R (raw) | rate (Hz, raw) | paper, audio task |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for l in o.levels.iter().filter(|l| l.network == net) {
            let paper = PAPER_AUDIO
                .iter()
                .find(|(k, _)| *k == l.level)
                .map(|(_, v)| format!("{v:.3}"))
                .unwrap_or_else(|| "–".into());
            s.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} |\n",
                l.level,
                q(&l.accuracy),
                q(&l.accuracy_recalibrated),
                l.gain,
                l.recurrent_scale,
                q(&l.mse),
                q(&l.reconstruction_error),
                q(&l.mean_rate_hz),
                paper
            ));
        }
        s.push('\n');
    }
    s.push_str(&sensitivity_markdown(o));
    s.push_str(&regime_markdown(o));
    s.push_str(
        "The paper's column: Büchel et al. 2021, Network ADS with W_fast on the \"Hey Snips\" audio task \
         (recalibrated medians). It is a different task, shown for the trend only.\n\n",
    );
    if !o.comparisons.is_empty() {
        s.push_str("## Paired comparisons\n\nPer level, each network against the first on identical instance draws: \
                    two-sided Wilcoxon signed-rank test of the per-instance accuracy, recalibrated and raw (W+: \
                    ranks where the other network is better).\n\n");
        s.push_str("| level | accuracy | baseline | other | median baseline | median other | W+ | W- | p | method |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for c in &o.comparisons {
            let metric = if c.metric == "accuracy" {
                "raw"
            } else {
                "recalibrated"
            };
            s.push_str(&format!(
                "| {} | {metric} | {} | {} | {:.3} | {:.3} | {:.1} | {:.1} | {:.2e} | {} |\n",
                c.level,
                c.baseline,
                c.other,
                c.median_baseline,
                c.median_other,
                c.test.w_plus,
                c.test.w_minus,
                c.test.p_value,
                c.test.method
            ));
        }
        s.push('\n');
    }
    s
}

/// The regime metrics of each network and the teacher's ceiling.
pub fn regime_markdown(o: &StudyOutcome) -> String {
    let mut s = String::new();
    if !o.regimes.is_empty() {
        s.push_str(
            "## Regime (nominal network, test trials)\n\n\
             Input and recurrent drive: RMS over neurons during input, in current thresholds \
             V_th - V_rest. Balance: <|I_in + I_slow + I_fast|> / <|I_in| + |I_slow| + |I_fast|> \
             (near 0: the currents cancel). Teacher: mean |x|, fraction with |x| > 0.9, ||W_in||.\n\n\
             | network | input drive | recurrent drive | balance | rate (Hz) | teacher mean abs x | teacher saturated | teacher W_in norm |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in &o.regimes {
            let g = &r.regime;
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.3} | {:.1} | {:.3} | {:.3} | {:.2} |\n",
                r.network,
                g.input_drive_thresholds,
                g.recurrent_drive_thresholds,
                g.balance_index,
                g.rate_hz,
                g.teacher_mean_abs_x,
                g.teacher_saturated_fraction,
                g.teacher_w_in_norm
            ));
        }
        s.push('\n');
    }
    if !o.teacher_ceiling.is_empty() {
        s.push_str(
            "## The teacher's ceiling\n\n\
             The rate teacher's own test accuracy with W_in and W_rec times (1 + sigma z) and every \
             tau from |N(tau, (sigma tau)²)|: what a student tracking it can at best reach.\n\n\
             | sigma | copies | teacher accuracy |\n|---|---|---|\n",
        );
        for c in &o.teacher_ceiling {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                c.sigma,
                c.draws,
                q(&c.accuracy)
            ));
        }
        s.push('\n');
    }
    s
}

/// The sensitivity table: which single imperfection costs most. One row per parameter
/// mismatched alone and per matrix quantised alone, with the accuracy lost against the
/// unperturbed network (recalibrated medians), most costly first.
pub fn sensitivity_markdown(o: &StudyOutcome) -> String {
    let mut s = String::new();
    let mut networks: Vec<&str> = Vec::new();
    for l in &o.levels {
        if !networks.contains(&l.network.as_str()) {
            networks.push(&l.network);
        }
    }
    for net in networks {
        let of = |kind: &str| -> Vec<&super::evaluate::LevelSummary> {
            o.levels
                .iter()
                .filter(|l| l.network == net && l.kind == kind)
                .collect()
        };
        let mut rows: Vec<(&str, &super::evaluate::LevelSummary)> = of("only_mismatch")
            .into_iter()
            .map(|l| ("mismatch", l))
            .chain(of("only_bits").into_iter().map(|l| ("bits", l)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let base = of("none")
            .first()
            .map(|l| l.accuracy_recalibrated.median)
            .unwrap_or(f64::NAN);
        rows.sort_by(|a, b| {
            a.1.accuracy_recalibrated
                .median
                .total_cmp(&b.1.accuracy_recalibrated.median)
        });
        s.push_str(&format!(
            "## Sensitivity of `{net}`: one imperfection at a time\n\n\
             Each parameter mismatched alone (paper-mode distributions) and each matrix quantised \
             alone, everything else nominal; most costly first. Cost = unperturbed recalibrated \
             median ({base:.3}) minus the level's.\n\n\
             | imperfection | what | at | accuracy (raw) | accuracy (recalibrated) | cost | rate (Hz, raw) |\n\
             |---|---|---|---|---|---|---|\n"
        ));
        for (what, l) in rows {
            let target = super::levels::sensitivity_target(&l.level).unwrap_or("?");
            let at = if what == "bits" {
                format!("{} bits", l.value)
            } else {
                format!("sigma {}", l.value)
            };
            s.push_str(&format!(
                "| {target} | {what} | {at} | {} | {} | {:.3} | {} |
",
                q(&l.accuracy),
                q(&l.accuracy_recalibrated),
                base - l.accuracy_recalibrated.median,
                q(&l.mean_rate_hz)
            ));
        }
        s.push('\n');
    }
    s
}

fn plots(stage: &StagedDir, o: &StudyOutcome, rows: &[InstanceRow]) -> Result<(), Error> {
    let first = o
        .levels
        .first()
        .map(|l| l.network.clone())
        .unwrap_or_default();
    let of = |kinds: &[&str], f: &dyn Fn(&InstanceRow) -> f64| -> Vec<(String, Vec<f64>)> {
        let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.network == first && kinds.contains(&r.kind.as_str()))
        {
            let label = if r.kind == "none" {
                "0".to_string()
            } else {
                format!("{}", r.value)
            };
            match groups.iter_mut().find(|g| g.0 == label) {
                Some(g) => g.1.push(f(r)),
                None => groups.push((label, vec![f(r)])),
            }
        }
        groups
    };
    let figures = [
        (
            "accuracy_vs_mismatch.png",
            "Accuracy against mismatch (paper mode)",
            "mismatch sigma",
            vec!["none", "mismatch"],
        ),
        (
            "accuracy_vs_mismatch_full.png",
            "Accuracy against mismatch (full mode)",
            "mismatch sigma",
            vec!["none", "mismatch_full"],
        ),
        (
            "accuracy_vs_bits.png",
            "Accuracy against weight precision",
            "bits (0 = full precision)",
            vec!["none", "bits"],
        ),
        (
            "accuracy_vs_noise.png",
            "Accuracy against membrane noise",
            "noise sigma",
            vec!["none", "noise"],
        ),
        (
            "intact_vs_silenced.png",
            "Intact versus silenced neurons",
            "silenced fraction",
            vec!["none", "silence"],
        ),
    ];
    for (file, title, x_label, kinds) in figures {
        let raw = of(&kinds, &|r| r.accuracy);
        if raw.len() < 2 {
            continue;
        }
        let recal = of(&kinds, &|r| r.accuracy_recalibrated);
        crate::report::plot::boxes(
            &stage.join(&format!("plots/{file}")),
            title,
            x_label,
            "accuracy per instance",
            &raw,
            Some(("raw", "recalibrated", &recal)),
        )?;
    }
    // the sensitivity chart: one box per imperfection, raw and recalibrated
    let by_target = |f: &dyn Fn(&InstanceRow) -> f64| -> Vec<(String, Vec<f64>)> {
        let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.network == first && (r.kind == "only_mismatch" || r.kind == "only_bits"))
        {
            let t = super::levels::sensitivity_target(&r.level).unwrap_or("?");
            let label = if r.kind == "only_bits" {
                format!("{t} {}b", r.value)
            } else {
                t.to_string()
            };
            match groups.iter_mut().find(|g| g.0 == label) {
                Some(g) => g.1.push(f(r)),
                None => groups.push((label, vec![f(r)])),
            }
        }
        groups
    };
    let raw = by_target(&|r| r.accuracy);
    if !raw.is_empty() {
        let recal = by_target(&|r| r.accuracy_recalibrated);
        crate::report::plot::boxes(
            &stage.join("plots/sensitivity.png"),
            "One imperfection at a time",
            "mismatched parameter (sigma) / quantised matrix (bits)",
            "accuracy per instance",
            &raw,
            Some(("raw", "recalibrated", &recal)),
        )?;
    }
    // the first network beside the second on identical chips, level by level (a robust recipe
    // against its plain comparison, or `--compare`)
    if let Some(second) = o.comparisons.first().map(|c| c.other.clone()) {
        let main_kinds = [
            "none",
            "mismatch",
            "mismatch_full",
            "bits",
            "bits_paper",
            "noise",
            "silence",
        ];
        let by_level = |net: &str, f: &dyn Fn(&InstanceRow) -> f64| -> Vec<(String, Vec<f64>)> {
            let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
            for r in rows
                .iter()
                .filter(|r| r.network == net && main_kinds.contains(&r.kind.as_str()))
            {
                match groups.iter_mut().find(|g| g.0 == r.level) {
                    Some(g) => g.1.push(f(r)),
                    None => groups.push((r.level.clone(), vec![f(r)])),
                }
            }
            groups
        };
        for (file, what, f) in [
            (
                "comparison.png",
                "recalibrated",
                &(|r: &InstanceRow| r.accuracy_recalibrated) as &dyn Fn(&InstanceRow) -> f64,
            ),
            ("comparison_raw.png", "raw", &|r: &InstanceRow| r.accuracy),
        ] {
            let (a, b) = (by_level(&first, f), by_level(&second, f));
            if a.is_empty() || a.len() != b.len() {
                continue;
            }
            crate::report::plot::boxes(
                &stage.join(&format!("plots/{file}")),
                &format!("{first} against {second} on identical chips ({what} accuracy)"),
                "level",
                "accuracy per instance",
                &a,
                Some((first.as_str(), second.as_str(), &b)),
            )?;
        }
    }
    let all: Vec<f64> = rows
        .iter()
        .filter(|r| r.network == first && r.kind != "none")
        .map(|r| r.accuracy_recalibrated)
        .collect();
    crate::report::plot::histogram(
        &stage.join("plots/accuracy_distribution.png"),
        "Per-instance recalibrated accuracy, all perturbed levels",
        "accuracy",
        &all,
        20,
    )?;
    Ok(())
}
