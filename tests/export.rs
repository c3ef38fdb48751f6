//! `robust-snn export`: the deployment of a (tiny) trained network to DYNAP-SE1, checked from the
//! files a user gets, and its bad-input errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

mod common;

use common::{FileConn, doc_conns, rebuild};
use robust_snn::export::dynapse1::doc::{self, Doc};
use robust_snn::export::dynapse1::emit::parse_caer_connection;
use robust_snn::export::dynapse1::validate;
use robust_snn::snn::Network;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robust-snn"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

/// A config small enough to train and re-simulate in seconds: 40 neurons.
const TINY: &[&str] = &["snn.n=40"];

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
    for s in common::TINY_EXPORT.iter().chain(TINY).chain(extra) {
        c.args(["--set", s]);
    }
    c
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
    let [wf, ws, wi] = rebuild(&doc, &doc_conns(&doc), net.n, net.n_in);
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

/// Rule V10 keeps a recurrent network on the left chips {0, 2}: 2 x (1023 - 2) = 2042 neurons
/// with XOR's two input tags. 2100 would have fit four chips; it is refused before any work, by
/// the rule and the sizes.
#[test]
fn a_network_that_needs_a_right_chip_fails_before_any_work_naming_v10() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = export_cmd(&run, &["snn.n=2100"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "snn.n = 2100",
        "do not fit",
        "V10",
        "chips 0 and 2",
        "hold 2042",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
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

/// The trained network is the one on the chip: trained for the DYNAP-SE1 (by `run`, which also
/// trains the plain dense network), it exports with nothing pruned and no rounding error, every
/// neuron within the CAM budget, and the document, the cAER file and the samna script all
/// rebuild (here, from counts x units) the matrices the training forward pass ran. The report
/// sets the post-hoc mapped dense network beside it.
#[test]
fn a_hardware_trained_network_is_exported_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut cmd = bin();
    cmd.args([
        "run",
        "--config",
        "configs/xor-dynapse1.toml",
        "--backend",
        "cpu",
        "--out",
    ])
    .arg(&run);
    // two epochs, the mask fixed halfway, so the exported network trained with a fixed mask
    for s in common::TINY_EXPORT.iter().chain(TINY).chain(&[
        "training.epochs=2",
        "training.samples_per_epoch=4",
        "training.hardware.mask_after=0.5",
        "training.plain.epochs=1",
        "training.plain.samples_per_epoch=2",
        "export.cam_budget=40",
        // a small study: the export is what this test is about
        "evaluation.instances=2",
        "evaluation.mismatch=[0.2]",
        "evaluation.bits=[]",
        "evaluation.noise=[]",
        "evaluation.silence=[]",
        "evaluation.bits_paper=[]",
        "evaluation.sensitivity_sigma=0",
        "evaluation.sensitivity_bits=0",
        "evaluation.teacher_draws=0",
    ]) {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("hardware-aware training"), "{stderr}");
    let d = run.join("dynapse1");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["pruned_weight_fraction"].as_f64(), Some(0.0), "{r}");
    for k in [
        "relative_error_w_fast",
        "relative_error_w_slow",
        "relative_error_input",
    ] {
        // f32 storage of count x unit: a few ulps
        assert!(r[k].as_f64().unwrap() < 1e-6, "{k} = {}", r[k]);
    }
    assert!(r["max_fan_in"].as_u64().unwrap() <= 40);
    let hist: u64 = r["fan_in_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(hist, 40, "every neuron is in the fan-in histogram");
    // power: dynamic + static, per inference = power x trial length (XOR: 1 s)
    let pw = &r["power"];
    let total = r["estimated_power_uw"].as_f64().unwrap();
    let (dy, st) = (
        pw["dynamic_uw"].as_f64().unwrap(),
        pw["static_uw"].as_f64().unwrap(),
    );
    assert!((dy + st - total).abs() <= 1e-9 * total.max(1.0));
    assert!((pw["inference_s"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(
        (pw["energy_per_inference_uj"].as_f64().unwrap() - total).abs() <= 1e-9 * total.max(1.0)
    );
    // the dense network beside it, mapped post hoc on the same chips
    let dense = &r["dense"];
    assert_eq!(dense["levels"].as_array().unwrap().len(), 2, "{r}");
    assert!(dense["pruned_weight_fraction"].as_f64().unwrap() >= 0.0);
    let md = std::fs::read_to_string(d.join("report.md")).unwrap();
    assert!(md.contains("Hardware-trained beside the post-hoc mapped dense network"));

    let trained = Network::load(&run.join("snn").join("network.safetensors")).unwrap();
    let (n, c) = (trained.n, trained.n_in);
    let p = trained
        .input_override
        .as_ref()
        .expect("an on-chip input projection");
    assert!(trained.w_slow.iter().any(|&w| w != 0.0));
    let doc: Doc = doc::load(d.join("network.json")).unwrap();
    assert!(validate::validate(&doc).is_empty());

    let from_doc = doc_conns(&doc);
    let caer = std::fs::read_to_string(d.join("network.caer.txt")).unwrap();
    let from_caer: Vec<FileConn> = caer
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (pre, ty, count, post) = parse_caer_connection(l).unwrap();
            // an FPGA source (chip 4) is the input tag on the target's chip
            let is_input = pre.0 == 4;
            let pre = if is_input {
                (post.0, pre.1, pre.2)
            } else {
                pre
            };
            (pre, is_input, post, ty, count)
        })
        .collect();
    let samna = std::fs::read_to_string(d.join("samna_setup.py")).unwrap();
    let conns_block = samna
        .split("CONNECTIONS = [\n")
        .nth(1)
        .unwrap()
        .split("\n]")
        .next()
        .unwrap();
    let from_samna: Vec<FileConn> = conns_block
        .lines()
        .map(|l| {
            let f: Vec<String> = l
                .trim()
                .trim_start_matches('(')
                .trim_end_matches("),")
                .split(", ")
                .map(|x| x.trim_matches('"').to_string())
                .collect();
            let u = |i: usize| f[i].parse::<u32>().unwrap();
            let ty = match f[7].as_str() {
                "GABA_B" => 0,
                "GABA_A" => 1,
                "NMDA" => 2,
                "AMPA" => 3,
                other => panic!("synapse type {other}"),
            };
            (
                (u(0), u(1), u(2)),
                f[3] == "True",
                (u(4), u(5), u(6)),
                ty,
                u(8),
            )
        })
        .collect();
    assert_eq!(from_caer.len(), doc.connections.len());
    assert_eq!(from_samna.len(), doc.connections.len());

    for (what, conns) in [
        ("network.json", &from_doc),
        ("network.caer.txt", &from_caer),
        ("samna_setup.py", &from_samna),
    ] {
        let [wf, ws, wi] = rebuild(&doc, conns, n, 2 * c);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1e-9);
        for k in 0..n * n {
            assert!(
                close(wf[k], trained.w_fast[k] as f64),
                "{what}: w_fast[{k}]"
            );
            assert!(
                close(ws[k], trained.w_slow[k] as f64),
                "{what}: w_slow[{k}]"
            );
        }
        // ON channel 2k carries +P, OFF channel 2k + 1 carries -P
        for post in 0..n {
            for ch in 0..c {
                let want = p[post * c + ch] as f64;
                assert!(
                    close(wi[post * 2 * c + 2 * ch], want),
                    "{what}: input {post} on"
                );
                assert!(
                    close(wi[post * 2 * c + 2 * ch + 1], -want),
                    "{what}: input {post} off"
                );
            }
        }
    }
}

/// A hand-written document with a connection from chip 0 to chip 1 is refused by
/// `export --check`, naming the rule, the connection and both chips; the same connection the
/// other way (chip 1 -> chip 0) passes.
#[test]
fn check_refuses_a_left_to_right_connection_naming_v10() {
    use robust_snn::export::dynapse1::doc::{
        BIAS_NAMES, Bias, Connection, CoreConfig, NeuronPlacement,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut d = Doc::new();
    for chip in [0, 1] {
        d.cores.push(CoreConfig {
            chip,
            core: 1,
            role: None,
            biases: BIAS_NAMES
                .iter()
                .map(|n| (n.to_string(), Bias::new(3, 100)))
                .collect(),
            intended: Default::default(),
        });
        d.neurons.push(NeuronPlacement {
            index: chip,
            chip,
            core: 1,
            neuron: 5,
            global_id: 1024 * chip + 256 + 5,
            leak: Default::default(),
            population: None,
            intended: Default::default(),
        });
    }
    let connect = |pre: u32, post: u32| Connection {
        pre: doc::Source::Neuron(pre),
        post,
        syn_type: 3,
        count: 2,
        trained_weight: None,
    };
    let check = |d: &Doc, name: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, d.to_string_pretty()).unwrap();
        let o = bin().args(["export", "--check"]).arg(&f).output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), text)
    };
    d.connections = vec![connect(1285, 261)]; // chip 1 -> chip 0: allowed
    let (ok, text) = check(&d, "right_to_left.json");
    assert!(ok, "{text}");
    d.connections = vec![connect(261, 1285)]; // chip 0 -> chip 1
    let (ok, text) = check(&d, "left_to_right.json");
    assert!(!ok, "{text}");
    for part in [
        "ChipDirection at connections[0]",
        "V10",
        "neuron 261 on chip 0",
        "neuron 1285 on chip 1",
        "1 rule violation",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
}

/// The emitted samna_setup.py against recording stand-ins of samna.dynapse1 and of both
/// ctxctl_contrib layouts (tests/python/samna_stub): every CONNECTIONS row is `count`
/// add_connection calls with the document's neurons (inputs as spike generators on chip 0),
/// the biases go out as (name, coarse, fine) for every used core, no call goes from a left to a
/// right chip, and the board is opened with each layout's own open_dynapse1 signature. Without
/// either layout the script exits naming both and PYTHONPATH.
#[test]
fn samna_script_drives_both_ctxctl_layouts_as_the_document_says() {
    // the driver and the stand-ins need the standard library only
    let Some(py) = common::python_peer("samna_script_drives_both_ctxctl_layouts", &["json"]) else {
        return;
    };
    let doc = common::two_chip_doc();
    assert!(validate::validate(&doc).is_empty());
    let chips: std::collections::BTreeSet<u32> = doc.neurons.iter().map(|p| p.chip).collect();
    assert_eq!(chips, [0, 2].into());
    assert!(doc.inputs.iter().any(|i| i.target_chip == 2));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("samna_setup.py");
    std::fs::write(&script, robust_snn::export::dynapse1::samna_script(&doc)).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/samna_contract.py");
    let run = |layout: &str| -> serde_json::Value {
        let o = Command::new(&py)
            .arg("-B") // no __pycache__ in tests/python
            .arg(&driver)
            .arg(&script)
            .arg(layout)
            .args(["--device-name", "board7"])
            .args(["--sender-port", "15001", "--receiver-port", "15002"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{layout}: {stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };

    // expected calls, from the document: `count` times (pre, post, type name) in its order
    let names = ["GABA_B", "GABA_A", "NMDA", "AMPA"];
    let place = |g: u32| {
        let p = doc.neuron_by_gid(g).unwrap();
        serde_json::json!([p.chip, p.core, p.neuron, false])
    };
    let mut want_calls = Vec::new();
    for c in &doc.connections {
        let pre = match c.pre {
            doc::Source::Neuron(g) => place(g),
            doc::Source::Input(j) => {
                let i = &doc.inputs[j as usize];
                serde_json::json!([0, i.tag_core, i.tag_neuron, true])
            }
        };
        for _ in 0..c.count {
            want_calls.push(serde_json::json!([
                pre,
                place(c.post),
                names[c.syn_type as usize]
            ]));
        }
    }
    let mut want_params: Vec<String> = Vec::new();
    for core in &doc.cores {
        for (name, b) in &core.biases {
            want_params.push(format!(
                "{} {} {name} {} {}",
                core.chip, core.core, b.coarse, b.fine
            ));
        }
    }
    want_params.sort();
    assert_eq!(want_params.len(), 25 * doc.cores.len());

    for (layout, generator, utils) in [
        ("2022", "netgen", "dynapse1utils"),
        ("2022pkg", "netgen", "dynapse.dynapse1utils"),
        ("2021", "NetworkGenerator", "Dynapse1Utils"),
    ] {
        let v = run(layout);
        assert_eq!(
            v["stdlib_only"], true,
            "{layout}: {}",
            v["module_level_imports"]
        );
        assert_eq!(
            (v["generator_module"].as_str(), v["utils_module"].as_str()),
            (Some(generator), Some(utils)),
            "{layout}"
        );
        let calls = v["calls"].as_array().unwrap();
        assert_eq!(calls.len(), want_calls.len(), "{layout}");
        assert_eq!(calls, &want_calls, "{layout}");
        for c in calls {
            let (pre, post) = (&c[0], &c[1]);
            let left_to_right = pre[3] == false
                && pre[0].as_u64().unwrap() % 2 == 0
                && post[0].as_u64().unwrap() % 2 == 1;
            assert!(!left_to_right, "{layout}: {c}");
        }
        assert_eq!(v["left_to_right"], serde_json::json!([]), "{layout}");
        let mut params: Vec<String> = v["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {}",
                    p[0],
                    p[1],
                    p[2].as_str().unwrap(),
                    p[3],
                    p[4]
                )
            })
            .collect();
        params.sort();
        assert_eq!(params, want_params, "{layout}");
        assert_eq!(v["configs_applied"], 1, "{layout}");
        assert_eq!(v["config_is_generators"], true, "{layout}");
        let opened = &v["opened"];
        let want_open = if layout == "2021" {
            serde_json::json!([{"args": ["board7"], "kwargs":
                {"gui": false, "sender_port": 15001, "receiver_port": 15002}}])
        } else {
            serde_json::json!([{"args": [], "kwargs": {"gui": false, "select_device": false,
                "sender_port": 15001, "receiver_port": 15002}}])
        };
        assert_eq!(opened, &want_open, "{layout}");
    }

    let v = run("none");
    let exit = v["exit"].as_str().expect("the script exits with a message");
    for part in [
        "2022: netgen.py and dynapse1utils.py",
        "2021: NetworkGenerator.py and Dynapse1Utils.py",
        "PYTHONPATH",
    ] {
        assert!(exit.contains(part), "{part}: {exit}");
    }
}
