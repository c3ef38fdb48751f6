//! `robust-snn export`: the deployment of a (tiny) trained network to DYNAP-SE1, checked from the
//! files a user gets, and its bad-input errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use robust_snn::export::dynapse1::doc::{self, Doc, Source};
use robust_snn::export::dynapse1::emit::parse_caer_connection;
use robust_snn::export::dynapse1::validate;
use robust_snn::snn::Network;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robust-snn"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

/// A config small enough to train and re-simulate in seconds.
const TINY: &[&str] = &[
    "teacher.hidden=8",
    "teacher.epochs=1",
    "teacher.batches_per_epoch=1",
    "teacher.batch_size=2",
    "teacher.val_trials=4",
    "teacher.test_trials=4",
    "snn.n=40",
    "training.epochs=1",
    "training.samples_per_epoch=2",
    // a tiny network fires fast: keep every training chip so that W_slow moves
    "training.robust.max_rate_hz=0",
    "training.val_trials=2",
    "training.test_trials=2",
    "evaluation.test_trials=4",
    "evaluation.val_trials=2",
    "evaluation.val_instances=2",
    "evaluation.gain_steps=5",
    "evaluation.recurrent_scales=[1.0, 0.5]",
    "export.instances=3",
    "export.fast_cams=8",
];

fn export_cmd(out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args([
        "export",
        "--config",
        "configs/xor.toml",
        "--backend",
        "cpu",
        "--out",
    ])
    .arg(out);
    for s in TINY.iter().chain(extra) {
        c.args(["--set", s]);
    }
    c
}

fn sign(code: u32) -> f64 {
    if code == 2 || code == 3 { 1.0 } else { -1.0 }
}

#[test]
fn export_writes_a_valid_deployment_and_resimulates_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = export_cmd(&run, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The missing teacher and network were trained first.
    assert!(stderr.contains("training it first"), "{stderr}");
    let d = run.join("dynapse1");
    for f in [
        "network.json",
        "network.caer.txt",
        "biases.caer.txt",
        "samna_setup.py",
        "samna_biases.json",
        "readout.json",
        "report.json",
        "report.md",
        "deployed_network.safetensors",
        "instances.csv",
        "plots/accuracy.png",
        "plots/fan_in.png",
    ] {
        assert!(d.join(f).is_file(), "missing dynapse1/{f}");
    }

    // report.json carries the figures the issue names, consistent with the document.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    for k in [
        "fits",
        "neurons_used",
        "cores_used",
        "max_fan_in",
        "pruned_weight_fraction",
        "float_accuracy",
        "deployed_accuracy",
        "estimated_power_uw",
    ] {
        assert!(r.get(k).is_some(), "report.json lacks {k}");
    }
    assert_eq!(r["fits"], true);
    assert_eq!(r["neurons_used"], 40);
    // export.instances and evaluation.val_instances of the config.
    assert_eq!(
        (r["instances"].as_u64(), r["val_instances"].as_u64()),
        (Some(3), Some(2))
    );
    for k in ["float_accuracy", "deployed_accuracy"] {
        let a = r[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{k} = {a}");
    }
    assert!(r["estimated_power_uw"].as_f64().unwrap() >= 0.0);
    let dropped = r["dropped_mass_per_neuron"].as_array().unwrap();
    assert_eq!(dropped.len(), 40);
    assert!(dropped.iter().all(|x| x.as_f64().unwrap() >= 0.0));

    // The document reloads, passes the validator, and re-serialises to the same document.
    let doc: Doc = doc::load(d.join("network.json")).unwrap();
    assert!(validate::validate(&doc).is_empty());
    assert_eq!(doc::from_str(&doc.to_string_pretty()).unwrap(), doc);

    // Every count in 1..=64, every neuron's CAM total within 64; the report's maximum agrees.
    let mut fan_in: BTreeMap<u32, u32> = BTreeMap::new();
    for c in &doc.connections {
        assert!((1..=64).contains(&c.count), "count {}", c.count);
        *fan_in.entry(c.post).or_default() += c.count;
    }
    assert!(fan_in.values().all(|&t| t <= 64));
    assert_eq!(
        r["max_fan_in"].as_u64().unwrap(),
        *fan_in.values().max().unwrap() as u64
    );

    // Every non-comment line of the cAER connection file follows the netparser grammar, one
    // line per connection.
    let caer = std::fs::read_to_string(d.join("network.caer.txt")).unwrap();
    let lines: Vec<&str> = caer
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), doc.connections.len());
    for l in &lines {
        assert!(parse_caer_connection(l).is_some(), "bad cAER line {l:?}");
    }
    let biases = std::fs::read_to_string(d.join("biases.caer.txt")).unwrap();
    assert!(
        biases
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count()
            >= 25 * r["cores_used"].as_u64().unwrap() as usize
    );

    // The samna script is valid Python.
    if let Ok(o) = Command::new("python3").arg("--version").output()
        && o.status.success()
    {
        let c = Command::new("python3")
            .args(["-m", "py_compile"])
            .arg(d.join("samna_setup.py"))
            .output()
            .unwrap();
        assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    }

    // The re-simulated network is the document's: rebuild its matrices here from the counts,
    // the unit weights, the signs of the types and the input scales.
    let net = Network::load(&d.join("deployed_network.safetensors")).unwrap();
    let n = net.n;
    let c = net.n_in;
    let units: BTreeMap<(u32, u32, u32), f64> = doc
        .quantisation
        .unit_weights
        .iter()
        .map(|u| ((u.chip, u.core, u.syn_type), u.unit))
        .collect();
    let place: BTreeMap<u32, (usize, u32, u32)> = doc
        .neurons
        .iter()
        .map(|p| (p.global_id, (p.index as usize, p.chip, p.core)))
        .collect();
    let mut wf = vec![0f64; n * n];
    let mut ws = vec![0f64; n * n];
    let mut wi = vec![0f64; n * c];
    for con in &doc.connections {
        let (post, chip, core) = place[&con.post];
        let w = sign(con.syn_type) * con.count as f64 * units[&(chip, core, con.syn_type)];
        match con.pre {
            Source::Neuron(g) => {
                let pre = place[&g].0;
                if con.syn_type == 1 || con.syn_type == 3 {
                    wf[pre * n + post] += w;
                } else {
                    ws[pre * n + post] += w;
                }
            }
            Source::Input(j) => {
                let inp = &doc.inputs[j as usize];
                wi[post * c + inp.channel as usize] += inp.scale * w;
            }
        }
    }
    let close = |a: &[f32], b: &[f64], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (k, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x as f64 - y).abs() <= 1e-6 * y.abs().max(1e-6),
                "{what}[{k}]: simulated {x}, rebuilt {y}"
            );
        }
    };
    close(&net.w_fast, &wf, "w_fast");
    close(&net.w_slow, &ws, "w_slow");
    close(
        net.input_override.as_ref().unwrap(),
        &wi,
        "input projection",
    );
    assert!(wf.iter().any(|&x| x != 0.0) && ws.iter().any(|&x| x != 0.0));
}

#[test]
fn a_network_too_large_for_the_board_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = export_cmd(&run, &["snn.n=5000"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("snn.n = 5000") && err.contains("do not fit"),
        "{err}"
    );
    // Nothing trained, nothing written at all.
    assert!(!run.exists());
}

#[test]
fn bad_export_settings_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    for (set, key) in [
        ("export.cam_budget=65", "export.cam_budget"),
        ("export.unit_quantile=0", "export.unit_quantile"),
        ("export.mismatch.tau_mem=-0.1", "export.mismatch.tau_mem"),
        ("export.fast_cams=70", "export.fast_cams"),
    ] {
        let out = export_cmd(&run, &[set]).output().unwrap();
        assert!(!out.status.success(), "{set} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{set}: {err}");
    }
    assert!(!run.exists());
}

#[test]
fn check_rejects_a_bias_out_of_range_with_its_location() {
    // A valid hand-built document (one core, no neurons), then one fine value pushed past 255.
    let dir = tempfile::tempdir().unwrap();
    let mut doc = Doc::new();
    doc.cores
        .push(robust_snn::export::dynapse1::doc::CoreConfig {
            chip: 0,
            core: 1,
            role: None,
            biases: robust_snn::export::dynapse1::doc::BIAS_NAMES
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        robust_snn::export::dynapse1::doc::Bias::new(3, 100),
                    )
                })
                .collect(),
            intended: Default::default(),
        });
    let ok = dir.path().join("ok.json");
    std::fs::write(&ok, doc.to_string_pretty()).unwrap();
    let o = bin().args(["export", "--check"]).arg(&ok).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let name = robust_snn::export::dynapse1::doc::BIAS_NAMES[0];
    doc.cores[0].biases.get_mut(name).unwrap().fine = 300;
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, doc.to_string_pretty()).unwrap();
    let o = bin()
        .args(["export", "--check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        text.contains(name) && text.contains("300") && text.contains("cores[0]"),
        "{text}"
    );
}
