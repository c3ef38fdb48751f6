//! Rockpool 2.5's DYNAP-SE1 rules as a second validator of `network.json`
//! (tests/python/rockpool_check.py runs `VirtualDynapseV1.validate_connections` offline: fan-in
//! 64, fan-out 3 chips, conservative aliasing). Every document our validator accepts must pass
//! Rockpool too (result 0), and each seeded violation must get Rockpool's bit for it and our
//! rule for it, so that the two validators agree.
//!
//! Known differences, by design: Rockpool has no V10 (left -> right chips) and no checks of
//! biases, ids or synapse types; it sees one signed value per (pre, post) pair.
//!
//! The exports are the XOR configs at their network size (N = 320) with training cut to one
//! epoch of two trials and a three-chip re-simulation (`common::TINY_EXPORT`), so each takes
//! seconds; the hardware rules do not depend on how long the network trained.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use robust_snn::export::dynapse1::doc::{
    self, BIAS_NAMES, Bias, Connection, CoreConfig, Doc, InputSpec, NeuronPlacement, Source,
};
use robust_snn::export::dynapse1::validate::{Rule, validate};

/// The Rockpool result of each file, in order.
fn rockpool(py: &Path, files: &[PathBuf]) -> Vec<u64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/rockpool_check.py");
    let o = Command::new(py)
        .arg("-B")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), files.len(), "{stdout}");
    results
        .iter()
        .zip(files)
        .map(|(r, f)| {
            assert_eq!(r["file"].as_str(), f.to_str(), "{r}");
            assert!(r["pairs"].as_u64().unwrap() > 0, "{r}");
            r["result"].as_u64().unwrap()
        })
        .collect()
}

/// `robust-snn export` of `config` at N = 320, cut short; returns its network.json.
fn export(config: &str, run: &Path) -> PathBuf {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robust-snn"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c.args(["export", "--config", config, "--backend", "cpu", "--out"])
        .arg(run);
    for s in common::TINY_EXPORT.iter().chain(&["snn.n=320"]) {
        c.args(["--set", s]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{config}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run.join("dynapse1").join("network.json")
}

fn write(dir: &Path, name: &str, d: &Doc) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, d.to_string_pretty()).unwrap();
    f
}

fn neuron(index: u32, chip: u32, core: u32, n: u32) -> NeuronPlacement {
    NeuronPlacement {
        index,
        chip,
        core,
        neuron: n,
        global_id: 1024 * chip + 256 * core + n,
        leak: Default::default(),
        population: None,
        intended: Default::default(),
    }
}

fn conn(pre: Source, post: u32, syn_type: u32, count: u32) -> Connection {
    Connection {
        pre,
        post,
        syn_type,
        count,
        trained_weight: None,
    }
}

/// A small valid document on all four chips, with one FPGA input and one pair of both signs:
/// neurons [0] 261 (chip 0, tag (1, 5)), [1] 262 (chip 0), [2] 2311 (chip 2), [3] 1044 (chip 1),
/// [4] 3102 (chip 3), [5] 1045 (chip 1); input 0 with tag (3, 10) to chip 0 core 1.
fn base() -> Doc {
    let mut d = Doc::new();
    for (chip, core) in [(0, 1), (1, 0), (2, 1), (3, 0)] {
        d.cores.push(CoreConfig {
            chip,
            core,
            role: None,
            biases: BIAS_NAMES
                .iter()
                .map(|n| (n.to_string(), Bias::new(3, 100)))
                .collect(),
            intended: Default::default(),
        });
    }
    d.neurons = vec![
        neuron(0, 0, 1, 5),
        neuron(1, 0, 1, 6),
        neuron(2, 2, 1, 7),
        neuron(3, 1, 0, 20),
        neuron(4, 3, 0, 30),
        neuron(5, 1, 0, 21),
    ];
    d.inputs = vec![InputSpec {
        channel: 0,
        label: None,
        tag_core: 3,
        tag_neuron: 10,
        target_chip: 0,
        core_mask: 0b0010,
        scale: 1.0,
    }];
    d.connections = vec![
        conn(Source::Input(0), 261, 3, 4),
        conn(Source::Input(0), 262, 3, 2),
        conn(Source::Neuron(261), 262, 0, 3), // GABA_B 3 and AMPA 2: one pair, both signs
        conn(Source::Neuron(261), 262, 3, 2),
        conn(Source::Neuron(261), 2311, 2, 5), // chip 0 -> chip 2 (left -> left)
        conn(Source::Neuron(2311), 261, 0, 2), // and back
        conn(Source::Neuron(1044), 261, 3, 1), // right -> left
        conn(Source::Neuron(3102), 1045, 3, 1), // right -> right
    ];
    d
}

/// The exports of both XOR configs, a mapped two-chip network and a hand-built four-chip one all
/// pass our validator, and Rockpool 2.5 finds nothing wrong with any of them.
#[test]
fn rockpool_accepts_every_document_our_validator_accepts() {
    let Some(py) = common::python_peer("rockpool_accepts_every_document", &["numpy", "rockpool"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        export("configs/xor.toml", &dir.path().join("xor")),
        export(
            "configs/xor-dynapse1.toml",
            &dir.path().join("xor-dynapse1"),
        ),
        write(dir.path(), "two_chips.json", &common::two_chip_doc()),
        write(dir.path(), "base.json", &base()),
    ];
    for f in &files {
        let d = doc::load(f).unwrap();
        assert_eq!(validate(&d), vec![], "{}", f.display());
    }
    // the exports are the networks asked for: 320 neurons, with inputs
    for f in &files[..2] {
        let d = doc::load(f).unwrap();
        assert_eq!(d.neurons.len(), 320, "{}", f.display());
        assert!(!d.inputs.is_empty() && !d.connections.is_empty());
    }
    assert_eq!(rockpool(&py, &files), vec![0; files.len()]);
}

/// Each seeded violation: our validator reports only its rule, Rockpool only its bit (1 fan-in,
/// 2 fan-out, 4 aliasing). A left -> right connection is ours alone (Rockpool has no V10).
#[test]
fn seeded_violations_get_the_same_verdict_from_both_validators() {
    let Some(py) = common::python_peer("seeded_violations", &["numpy", "rockpool"]) else {
        return;
    };
    let mut cases: Vec<(&str, Doc, Rule, u64)> = Vec::new();

    // 262 receives 2 (input) + 3 + 2 = 7 CAM entries; 58 more from 2311 make 65
    let mut d = base();
    d.connections.push(conn(Source::Neuron(2311), 262, 2, 58));
    cases.push(("fan_in_65", d, Rule::FanIn, 1));

    // 1044 (chip 1, so V10 allows every direction) reaches chip 0 already; add chips 2, 1, 3
    let mut d = base();
    for post in [2311, 1045, 3102] {
        d.connections.push(conn(Source::Neuron(1044), post, 3, 1));
    }
    cases.push(("four_target_chips", d, Rule::FanOut, 2));

    // 2309 on chip 2 has the tag (1, 5) of 261 on chip 0, and both reach chip 0 core 1
    let mut d = base();
    d.neurons.push(neuron(6, 2, 1, 5));
    d.connections.push(conn(Source::Neuron(2309), 262, 3, 1));
    cases.push(("cross_chip_alias", d, Rule::Aliasing, 4));

    // the input now carries tag (1, 5) too, into chip 0 core 1 where 261's events arrive
    let mut d = base();
    d.inputs[0].tag_core = 1;
    d.inputs[0].tag_neuron = 5;
    cases.push(("input_alias", d, Rule::Aliasing, 4));

    // chip 0 -> chip 1: V10, which Rockpool does not have
    let mut d = base();
    d.connections.push(conn(Source::Neuron(261), 1045, 3, 1));
    cases.push(("left_to_right", d, Rule::ChipDirection, 0));

    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![write(dir.path(), "base.json", &base())];
    assert_eq!(validate(&base()), vec![]);
    for (name, d, rule, _) in &cases {
        let v = validate(d);
        assert!(!v.is_empty(), "{name}: our validator accepts it");
        assert!(v.iter().all(|x| x.rule == *rule), "{name}: {v:#?}");
        files.push(write(dir.path(), &format!("{name}.json"), d));
    }
    let got = rockpool(&py, &files);
    let want: Vec<u64> = std::iter::once(0)
        .chain(cases.iter().map(|c| c.3))
        .collect();
    let names: Vec<&str> = std::iter::once("base")
        .chain(cases.iter().map(|c| c.0))
        .collect();
    assert_eq!(got, want, "{names:?}");
}
