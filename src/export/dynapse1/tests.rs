//! Tests of the DYNAP-SE1 document, validator and emitters. Expectations are written by hand from
//! reference/dynapse1.md, not derived from the code under test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use super::doc::{
    self, BIAS_NAMES, Bias, CoreConfig, Doc, DocError, InputSpec, Leak, NeuronPlacement, Source,
    UnitWeight,
};
use super::emit;
use super::validate::{Rule, Violation, check_file, validate, warnings};

// ---------------------------------------------------------------------------------------------
// Fixture

fn biases(tau1: (u32, u32)) -> BTreeMap<String, Bias> {
    let mut m: BTreeMap<String, Bias> = BIAS_NAMES
        .iter()
        .map(|n| (n.to_string(), Bias::new(4, 80)))
        .collect();
    m.insert("IF_TAU1_N".into(), Bias::new(tau1.0, tau1.1));
    m.insert("IF_TAU2_N".into(), Bias::new(7, 255));
    m.insert("IF_DC_P".into(), Bias::new(0, 0));
    m.insert("R2R_P".into(), Bias::new(3, 85));
    m.insert("PS_WEIGHT_EXC_F_N".into(), Bias::new(7, 80));
    m
}

fn core(chip: u32, c: u32) -> CoreConfig {
    CoreConfig {
        chip,
        core: c,
        role: Some(format!("population on chip {chip} core {c}")),
        biases: biases((4, 80)),
        intended: [("tau_mem_ms".to_string(), 50.0)].into_iter().collect(),
    }
}

fn neuron(index: u32, chip: u32, c: u32, n: u32) -> NeuronPlacement {
    NeuronPlacement {
        index,
        chip,
        core: c,
        neuron: n,
        global_id: 1024 * chip + 256 * c + n,
        leak: Leak::Tau1,
        population: None,
        intended: BTreeMap::new(),
    }
}

fn conn(pre: Source, post: u32, syn_type: u32, count: u32) -> doc::Connection {
    doc::Connection {
        pre,
        post,
        syn_type,
        count,
        trained_weight: Some(count as f64 * 0.1),
    }
}

/// Neurons: [0] 261 = U0 C1 N5, [1] 262 = U0 C1 N6, [2] 2567 = U2 C2 N7, [3] 2568 = U2 C2 N8 (TAU2).
/// Input 0: tag (3, 10) -> chip 0, core mask 0b0010.
/// Connections: [0] in0->261 AMPA 4, [1] in0->262 AMPA 2, [2] 261->262 GABA_B 3, [3] 261->2567 NMDA 5,
/// [4] 262->2568 AMPA 1, [5] 2567->261 GABA_B 2, [6] 2568->2567 AMPA 10.
fn fixture() -> Doc {
    let mut d = Doc::new();
    d.cores = vec![core(0, 1), core(2, 2)];
    d.cores[0]
        .biases
        .get_mut("IF_TAU1_N")
        .unwrap()
        .caer_high_current = Some(true);
    d.neurons = vec![
        neuron(0, 0, 1, 5),
        neuron(1, 0, 1, 6),
        neuron(2, 2, 2, 7),
        neuron(3, 2, 2, 8),
    ];
    d.neurons[2].intended.insert("tau_mem_ms".into(), 50.0);
    d.neurons[3].leak = Leak::Tau2;
    d.inputs = vec![InputSpec {
        channel: 0,
        label: Some("ch0+".into()),
        tag_core: 3,
        tag_neuron: 10,
        target_chip: 0,
        core_mask: 0b0010,
        scale: 1.0,
    }];
    d.connections = vec![
        conn(Source::Input(0), 261, 3, 4),
        conn(Source::Input(0), 262, 3, 2),
        conn(Source::Neuron(261), 262, 0, 3),
        conn(Source::Neuron(261), 2567, 2, 5),
        conn(Source::Neuron(262), 2568, 3, 1),
        conn(Source::Neuron(2567), 261, 0, 2),
        conn(Source::Neuron(2568), 2567, 3, 10),
    ];
    d.outputs.neurons = vec![261, 262, 2567];
    d.outputs.weights = vec![vec![0.5, -0.25, 1.0]];
    d.outputs.output_names = vec!["xor".into()];
    d.outputs.tau_out_ms = 70.0;
    d.outputs.dt_ms = 1.0;
    d.outputs.gain = 1.0;
    d.quantisation.method = "round(|w|/unit), clip 1..64".into();
    for (chip, c, t) in [(0, 1, 3), (0, 1, 0), (2, 2, 2), (2, 2, 3), (2, 2, 0)] {
        d.quantisation.unit_weights.push(UnitWeight {
            chip,
            core: c,
            syn_type: t,
            unit: 0.1,
        });
    }
    d.quantisation.stats.insert("relative_error".into(), 0.05);
    d.mismatch_assumptions.cv.insert("tau_mem".into(), 0.2);
    d.provenance.insert("seed".into(), json!(42));
    d.provenance
        .insert("config".into(), json!({"task": "xor", "n": 320}));
    d.provenance.insert(
        "note".into(),
        json!("quote \" backslash \\ newline \n micro \u{b5} emoji \u{1F600}"),
    );
    d
}

/// Exactly one violation, with that rule and location.
#[track_caller]
fn assert_only(v: &[Violation], rule: Rule, at: &str) {
    assert_eq!(
        v.len(),
        1,
        "expected exactly one {rule:?} at {at}, got {v:#?}"
    );
    assert_eq!(v[0].rule, rule, "{v:#?}");
    assert_eq!(v[0].at, at, "{v:#?}");
    assert!(!v[0].message.is_empty());
}

fn tmp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dynapse1_tests_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

// ---------------------------------------------------------------------------------------------
// Validation

#[test]
fn valid_fixture_has_no_violations_and_no_warnings() {
    let d = fixture();
    assert_eq!(validate(&d), vec![]);
    assert_eq!(warnings(&d), vec![]);
}

#[test]
fn rule_schema_version() {
    let mut d = fixture();
    d.schema_version = "2.0".into();
    assert_only(&validate(&d), Rule::Schema, "schema_version");
}

#[test]
fn rule_conventions_synapse_codes() {
    let mut d = fixture();
    d.conventions
        .synapse_type_codes
        .insert("AMPA_FAST_EXC".into(), 0);
    d.conventions
        .synapse_type_codes
        .insert("GABA_B_SLOW_INH".into(), 3);
    assert_only(
        &validate(&d),
        Rule::Conventions,
        "conventions.synapse_type_codes",
    );
}

#[test]
fn rule_board_four_srams() {
    let mut d = fixture();
    d.board.usable_srams_per_neuron = 4;
    assert_only(&validate(&d), Rule::Board, "board.usable_srams_per_neuron");
}

#[test]
fn rule_id_range_neuron() {
    let mut d = fixture();
    d.neurons[3].neuron = 300;
    assert_only(&validate(&d), Rule::IdRange, "neurons[3].neuron");
}

#[test]
fn rule_id_range_chip() {
    let mut d = fixture();
    d.neurons[3].chip = 4;
    assert_only(&validate(&d), Rule::IdRange, "neurons[3].chip");
}

#[test]
fn rule_id_range_input_tag_and_mask() {
    let mut d = fixture();
    d.inputs[0].tag_neuron = 256;
    assert_only(&validate(&d), Rule::IdRange, "inputs[0].tag_neuron");
    let mut d = fixture();
    d.inputs[0].core_mask = 0;
    assert_only(&validate(&d), Rule::IdRange, "inputs[0].core_mask");
    let mut d = fixture();
    d.inputs[0].core_mask = 16;
    assert_only(&validate(&d), Rule::IdRange, "inputs[0].core_mask");
}

#[test]
fn rule_global_id_inconsistent() {
    let mut d = fixture();
    d.neurons[1].global_id = 999;
    assert_only(&validate(&d), Rule::GlobalId, "neurons[1].global_id");
}

#[test]
fn rule_duplicate_placement() {
    let mut d = fixture();
    d.neurons.push(neuron(4, 0, 1, 5));
    assert_only(&validate(&d), Rule::DuplicatePlacement, "neurons[4]");
    let mut d = fixture();
    d.neurons.push(neuron(2, 0, 1, 100)); // model index 2 placed twice
    assert_only(&validate(&d), Rule::DuplicatePlacement, "neurons[4]");
}

#[test]
fn rule_core_without_biases() {
    let mut d = fixture();
    d.neurons.push(neuron(4, 3, 0, 9));
    assert_only(&validate(&d), Rule::CoreWithoutBiases, "neurons[4]");
}

#[test]
fn rule_shared_biases_two_sets_for_one_core() {
    let mut d = fixture();
    let mut again = core(0, 1);
    again.biases.insert("IF_THR_N".into(), Bias::new(5, 10));
    d.cores.push(again);
    assert_only(&validate(&d), Rule::SharedBiases, "cores[2]");
}

#[test]
fn rule_shared_biases_neuron_parameters_differ_from_core() {
    let mut d = fixture();
    d.neurons[2].intended.insert("tau_mem_ms".into(), 20.0);
    assert_only(
        &validate(&d),
        Rule::SharedBiases,
        "neurons[2].intended.tau_mem_ms",
    );
}

#[test]
fn rule_bias_set_missing_and_unknown_name() {
    let mut d = fixture();
    d.cores[1].biases.remove("IF_DC_P");
    let v = validate(&d);
    assert_only(&v, Rule::BiasSet, "cores[1].biases");
    assert!(v[0].message.contains("IF_DC_P"));
    let mut d = fixture();
    d.cores[0].biases.insert("IF_FOO".into(), Bias::new(1, 1));
    assert_only(&validate(&d), Rule::BiasSet, "cores[0].biases.IF_FOO");
}

#[test]
fn rule_bias_range_coarse_and_fine() {
    let mut d = fixture();
    d.cores[1].biases.get_mut("IF_THR_N").unwrap().coarse = 8;
    assert_only(&validate(&d), Rule::BiasRange, "cores[1].biases.IF_THR_N");
    let mut d = fixture();
    d.cores[0].biases.get_mut("PULSE_PWLK_P").unwrap().fine = 256;
    assert_only(
        &validate(&d),
        Rule::BiasRange,
        "cores[0].biases.PULSE_PWLK_P",
    );
}

#[test]
fn rule_unknown_reference() {
    let mut d = fixture();
    d.connections[4].post = 777;
    assert_only(&validate(&d), Rule::UnknownReference, "connections[4].post");
    let mut d = fixture();
    d.connections[0].pre = Source::Input(5);
    assert_only(&validate(&d), Rule::UnknownReference, "connections[0].pre");
    let mut d = fixture();
    d.connections[5].pre = Source::Neuron(3000);
    assert_only(&validate(&d), Rule::UnknownReference, "connections[5].pre");
    let mut d = fixture();
    d.outputs.neurons[0] = 12;
    assert_only(&validate(&d), Rule::UnknownReference, "outputs.neurons[0]");
}

#[test]
fn rule_synapse_type() {
    let mut d = fixture();
    d.connections[2].syn_type = 4;
    assert_only(&validate(&d), Rule::SynapseType, "connections[2].syn_type");
}

#[test]
fn rule_count_range() {
    let mut d = fixture();
    d.connections[2].count = 0;
    assert_only(&validate(&d), Rule::Count, "connections[2].count");
    let mut d = fixture();
    d.connections[2].count = 65;
    assert_only(&validate(&d), Rule::Count, "connections[2].count");
}

#[test]
fn rule_duplicate_connection() {
    let mut d = fixture();
    d.connections.push(d.connections[2].clone());
    assert_only(&validate(&d), Rule::DuplicateConnection, "connections[7]");
}

#[test]
fn rule_fan_in() {
    let mut d = fixture();
    // 2567 receives 5 (NMDA from 261) + 60 = 65 > 64.
    d.connections[6].count = 60;
    assert_only(&validate(&d), Rule::FanIn, "neurons[2]");
    // exactly 64 is allowed
    d.connections[6].count = 59;
    assert_eq!(validate(&d), vec![]);
    // a smaller budget is honoured
    d.board.cam_budget_per_neuron = 60;
    assert_only(&validate(&d), Rule::FanIn, "neurons[2]");
}

#[test]
fn rule_fan_in_counts_inputs() {
    let mut d = fixture();
    // 261 receives 4 (input) + 2 (GABA_B from 2567) = 6; push the input count to 63 -> 65.
    d.connections[0].count = 63;
    assert_only(&validate(&d), Rule::FanIn, "neurons[0]");
}

#[test]
fn rule_fan_out() {
    // The source sits on a right chip (1), so none of its targets breaks V10.
    let mut d = fixture();
    for (chip, c) in [(1, 0), (1, 3), (3, 3)] {
        d.cores.push(core(chip, c));
    }
    d.neurons.push(neuron(4, 1, 0, 20)); // 1044, the source
    d.neurons.push(neuron(5, 3, 3, 30)); // 3870
    d.neurons.push(neuron(6, 1, 3, 40)); // 1832
    d.connections.push(conn(Source::Neuron(1044), 261, 3, 1)); // chip 0
    d.connections.push(conn(Source::Neuron(1044), 2568, 3, 1)); // chip 2
    d.connections.push(conn(Source::Neuron(1044), 1832, 3, 1)); // chip 1
    assert_eq!(validate(&d), vec![], "three chips are allowed");
    d.connections.push(conn(Source::Neuron(1044), 3870, 3, 1)); // chip 3
    assert_only(&validate(&d), Rule::FanOut, "neurons[4]");
}

#[test]
fn rule_input_target_chip_and_mask() {
    let mut d = fixture();
    d.connections[1].post = 2568; // chip 2, but input 0 targets chip 0
    assert_only(&validate(&d), Rule::InputTarget, "connections[1]");
    let mut d = fixture();
    d.inputs[0].core_mask = 0b0101; // cores 0 and 2; the posts are on core 1
    let v = validate(&d);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v.iter().all(|x| x.rule == Rule::InputTarget));
    assert_eq!(v[0].at, "connections[0]");
    assert_eq!(v[1].at, "connections[1]");
}

#[test]
fn rule_aliasing_between_chips() {
    let mut d = fixture();
    d.cores.push(core(1, 1));
    d.neurons.push(neuron(4, 1, 1, 6)); // 1286: same tag (1, 6) as 262 on chip 0
    // 262 already reaches chip 2 core 2 (-> 2568); now 1286 does too.
    d.connections.push(conn(Source::Neuron(1286), 2567, 3, 1));
    assert_only(&validate(&d), Rule::Aliasing, "connections[7]");
}

#[test]
fn same_tag_on_other_chip_without_shared_target_core_is_fine() {
    let mut d = fixture();
    d.cores.push(core(1, 1));
    d.neurons.push(neuron(4, 1, 1, 6)); // tag (1, 6) like 262, but reaches chip 0 core 1 only
    d.connections.push(conn(Source::Neuron(1286), 261, 3, 1));
    assert_eq!(validate(&d), vec![]);
}

#[test]
fn rule_aliasing_input_and_neuron() {
    let mut d = fixture();
    // the input now carries tag (1, 5), the tag of 261, which reaches chip 0 core 1 (-> 262).
    d.inputs[0].tag_core = 1;
    d.inputs[0].tag_neuron = 5;
    assert_only(&validate(&d), Rule::Aliasing, "connections[2]");
}

#[test]
fn rule_aliasing_two_inputs() {
    let mut d = fixture();
    let mut second = d.inputs[0].clone();
    second.channel = 1;
    d.inputs.push(second);
    assert_only(&validate(&d), Rule::Aliasing, "inputs[1]");
}

#[test]
fn rule_zero_tag_input() {
    let mut d = fixture();
    d.inputs[0].tag_core = 0;
    d.inputs[0].tag_neuron = 0;
    assert_only(&validate(&d), Rule::ZeroTagSource, "inputs[0]");
}

#[test]
fn rule_zero_tag_neuron_source() {
    let mut d = fixture();
    d.cores.push(core(2, 0));
    d.neurons.push(neuron(4, 2, 0, 0)); // 2048
    assert_eq!(validate(&d), vec![], "placing a neuron at (0, 0) is fine");
    d.connections.push(conn(Source::Neuron(2048), 2567, 3, 1));
    assert_only(&validate(&d), Rule::ZeroTagSource, "connections[7].pre");
}

#[test]
fn rule_readout_shape() {
    let mut d = fixture();
    d.outputs.weights[0].pop();
    assert_only(&validate(&d), Rule::ReadoutShape, "outputs.weights[0]");
    let mut d = fixture();
    d.outputs.tau_out_ms = 0.0;
    assert_only(&validate(&d), Rule::ReadoutShape, "outputs.tau_out_ms");
}

#[test]
fn rule_chip_direction_left_to_right_is_an_error() {
    // 2021 ctxctl_contrib raises on a physical neuron of chip 0 or 2 projecting to chip 1 or 3.
    let with_chip1 = || {
        let mut d = fixture();
        d.cores.push(core(1, 0));
        d.neurons.push(neuron(4, 1, 0, 20)); // 1044 on chip 1
        d.quantisation.unit_weights.push(UnitWeight {
            chip: 1,
            core: 0,
            syn_type: 3,
            unit: 0.1,
        });
        d
    };
    let mut d = with_chip1();
    d.connections.push(conn(Source::Neuron(261), 1044, 3, 1)); // chip 0 -> chip 1
    let v = validate(&d);
    assert_only(&v, Rule::ChipDirection, "connections[7]");
    assert!(Rule::ChipDirection.is_error());
    for part in ["neuron 261 on chip 0", "neuron 1044 on chip 1", "V10"] {
        assert!(v[0].message.contains(part), "{part}: {}", v[0].message);
    }
    assert!(warnings(&d).iter().all(|w| w.rule != Rule::ChipDirection));
    // chip 2 -> chip 3 likewise
    let mut d = with_chip1();
    d.cores.push(core(3, 1));
    d.neurons.push(neuron(5, 3, 1, 9)); // 3337 on chip 3
    d.connections.push(conn(Source::Neuron(2567), 3337, 2, 1));
    assert_only(&validate(&d), Rule::ChipDirection, "connections[7]");
    // right -> left and right -> right are allowed
    let mut d = with_chip1();
    d.connections.push(conn(Source::Neuron(1044), 261, 3, 1)); // chip 1 -> chip 0
    assert_eq!(validate(&d), vec![]);
    // FPGA inputs are exempt (ctxctl_contrib checks only `pre.is_spike_gen is False`): an
    // input aimed at chip 1 is fine
    let mut d = with_chip1();
    d.inputs.push(InputSpec {
        channel: 1,
        label: None,
        tag_core: 3,
        tag_neuron: 11,
        target_chip: 1,
        core_mask: 0b0001,
        scale: 1.0,
    });
    d.connections.push(conn(Source::Input(1), 1044, 3, 1));
    assert_eq!(validate(&d), vec![]);
}

#[test]
fn warning_core_mask_extra() {
    let mut d = fixture();
    d.inputs[0].core_mask = 0b1010;
    let w = warnings(&d);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        (w[0].rule, w[0].at.as_str()),
        (Rule::CoreMaskExtra, "inputs[0].core_mask")
    );
    assert!(!w[0].rule.is_error());
}

// ---------------------------------------------------------------------------------------------
// Serialisation and file errors

#[test]
fn json_round_trip_is_lossless() {
    let d = fixture();
    let text = d.to_string_pretty();
    let back: Doc = text.parse().unwrap();
    assert_eq!(back, d);
    assert_eq!(doc::from_str(&text).unwrap(), d);
    let path = tmp_path("round_trip.json");
    d.save(&path).unwrap();
    assert_eq!(doc::load(&path).unwrap(), d);
    assert_eq!(check_file(&path).unwrap(), vec![]);
}

#[test]
fn written_json_follows_the_schema_names() {
    let v: Value = serde_json::from_str(&fixture().to_string_pretty()).unwrap();
    assert_eq!(v["format"], "dynapse1-network");
    assert_eq!(v["schema_version"], "1.0");
    assert_eq!(v["conventions"]["synapse_type_codes"]["AMPA_FAST_EXC"], 3);
    assert_eq!(v["conventions"]["synapse_type_codes"]["GABA_B_SLOW_INH"], 0);
    assert_eq!(
        v["conventions"]["coarse_convention"],
        "samna_ctxctl_7_is_max"
    );
    assert_eq!(v["board"]["cams_per_neuron"], 64);
    assert_eq!(v["board"]["usable_srams_per_neuron"], 3);
    assert_eq!(v["cores"][0]["biases"].as_object().unwrap().len(), 25);
    assert_eq!(
        v["cores"][0]["biases"]["IF_TAU2_N"],
        json!({"coarse": 7, "fine": 255})
    );
    assert_eq!(v["neurons"][3]["leak"], "TAU2");
    assert_eq!(v["neurons"][0]["global_id"], 261);
    assert_eq!(v["connections"][0]["pre"], json!({"input": 0}));
    assert_eq!(v["connections"][2]["pre"], json!({"neuron": 261}));
}

#[test]
fn non_json_file_is_a_doc_error_naming_the_file() {
    let path = tmp_path("not_json.json");
    std::fs::write(&path, "this is { not json").unwrap();
    let err = check_file(&path).unwrap_err();
    assert!(matches!(err, DocError::Json { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn missing_file_is_a_doc_error_naming_the_file() {
    let path = tmp_path("does_not_exist.json");
    let err = Doc::load(&path).unwrap_err();
    assert!(matches!(err, DocError::Io { .. }));
    assert!(err.to_string().contains("does_not_exist.json"));
}

fn broken_file(name: &str, edit: impl FnOnce(&mut Value)) -> (PathBuf, DocError) {
    let mut v: Value = serde_json::from_str(&fixture().to_string_pretty()).unwrap();
    edit(&mut v);
    let path = tmp_path(name);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let err = check_file(&path).unwrap_err();
    (path, err)
}

#[track_caller]
fn assert_field_error(path: &std::path::Path, err: &DocError, want: &str) {
    match err {
        DocError::Field { file, field, .. } => {
            assert_eq!(file, &path.display().to_string());
            assert_eq!(field, want);
        }
        other => panic!("expected a Field error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains(want),
        "{text}"
    );
}

#[test]
fn missing_top_level_field_names_file_and_field() {
    let (path, err) = broken_file("no_board.json", |v| {
        v.as_object_mut().unwrap().remove("board");
    });
    assert_field_error(&path, &err, "board");
}

#[test]
fn missing_nested_fields_name_their_path() {
    let (path, err) = broken_file("no_fine.json", |v| {
        v["cores"][1]["biases"]["IF_THR_N"]
            .as_object_mut()
            .unwrap()
            .remove("fine");
    });
    assert_field_error(&path, &err, "cores[1].biases.IF_THR_N.fine");
    let (path, err) = broken_file("no_count.json", |v| {
        v["connections"][3].as_object_mut().unwrap().remove("count");
    });
    assert_field_error(&path, &err, "connections[3].count");
    let (path, err) = broken_file("no_cams.json", |v| {
        v["board"]
            .as_object_mut()
            .unwrap()
            .remove("cams_per_neuron");
    });
    assert_field_error(&path, &err, "board.cams_per_neuron");
}

#[test]
fn invalid_and_unknown_fields_name_their_path() {
    let (path, err) = broken_file("bad_chip.json", |v| {
        v["neurons"][2]["chip"] = json!("two");
    });
    assert_field_error(&path, &err, "neurons[2]");
    let (path, err) = broken_file("typo.json", |v| {
        v["neurons"][0]["leek"] = json!("TAU2");
    });
    assert_field_error(&path, &err, "neurons[0].leek");
}

#[test]
fn optional_sections_may_be_absent() {
    let mut v: Value = serde_json::from_str(&fixture().to_string_pretty()).unwrap();
    for k in [
        "inputs",
        "outputs",
        "quantisation",
        "mismatch_assumptions",
        "provenance",
    ] {
        v.as_object_mut().unwrap().remove(k);
    }
    v["connections"] = json!([]);
    let d = doc::from_str(&v.to_string()).unwrap();
    assert!(d.inputs.is_empty() && d.provenance.is_empty());
    assert_eq!(validate(&d), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Emitters

#[test]
fn hand_parser_accepts_documented_examples_and_rejects_others() {
    assert_eq!(
        emit::parse_caer_connection("U00-C01-N005->3-08-U02-C03-N006"),
        Some(((0, 1, 5), 3, 8, (2, 3, 6)))
    );
    assert_eq!(
        emit::parse_caer_connection("U04-C01-N005->0-64-U02-C03-N006"),
        Some(((4, 1, 5), 0, 64, (2, 3, 6)))
    );
    for bad in [
        "U0-C01-N005->3-08-U02-C03-N006",
        "U00-C01-N005->4-08-U02-C03-N006",
        "U00-C01-N005->3-65-U02-C03-N006",
        "U00-C01-N005->3-00-U02-C03-N006",
        "U00-C01-N005->3-08-U04-C03-N006",
        "U00-C01-N256->3-08-U02-C03-N006",
        "U00-C01-N005->3-08-U02-C03-N006 ",
        "U00_C01_N005->U00_C01_N002",
    ] {
        assert_eq!(emit::parse_caer_connection(bad), None, "{bad}");
    }
}

#[test]
fn caer_connection_text_matches_the_grammar() {
    let d = fixture();
    let text = emit::caer_connections(&d);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), d.connections.len());
    for l in &lines {
        assert!(
            emit::parse_caer_connection(l).is_some(),
            "line does not match the netparser grammar: {l:?}"
        );
    }
    assert_eq!(lines[0], "U04-C03-N010->3-04-U00-C01-N005");
    assert_eq!(lines[2], "U00-C01-N005->0-03-U00-C01-N006");
    assert_eq!(lines[3], "U00-C01-N005->2-05-U02-C02-N007");
    assert_eq!(lines[6], "U02-C02-N008->3-10-U02-C02-N007");
    // the header states the conventions
    assert!(text.starts_with('#'));
    assert!(text.contains("0 GABA_B") && text.contains("3 AMPA") && text.contains("U04"));
    // every comment line is one line (the provenance note has a newline in it)
    assert!(
        text.lines()
            .all(|l| l.starts_with('#') || emit::parse_caer_connection(l).is_some())
    );
}

#[test]
fn caer_bias_text() {
    let d = fixture();
    let text = emit::caer_biases(&d);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2 * 25 + 1);
    // samna (4, 80) -> cAER coarse 3; IF_TAU1_N of core 0/1 has an explicit high-current flag.
    assert!(lines.contains(&"U0-C1-IF_TAU1_N-3-80-true"));
    assert!(lines.contains(&"U2-C2-IF_TAU1_N-3-80-false"));
    assert!(lines.contains(&"U2-C2-IF_TAU2_N-0-255-true"));
    assert!(lines.contains(&"U0-C1-R2R_P-4-85-true"));
    assert!(lines.contains(&"U0-C1-IF_DC_P-7-0-true"));
    assert_eq!(*lines.last().unwrap(), "U02-C02-N008-TAU2");
    for l in &lines[..50] {
        let parts: Vec<&str> = l.split('-').collect();
        assert_eq!(parts.len(), 6, "{l}");
        assert!(parts[0].starts_with('U') && parts[1].starts_with('C'));
        assert!(BIAS_NAMES.contains(&parts[2]), "{l}");
        assert!(parts[3].parse::<u32>().unwrap() <= 7);
        assert!(parts[4].parse::<u32>().unwrap() <= 255);
        assert!(parts[5] == "true" || parts[5] == "false");
    }
    let mut identity = d.clone();
    identity.conventions.caer_coarse_mapping = super::CaerCoarseMapping::Identity;
    assert!(
        emit::caer_biases(&identity)
            .lines()
            .any(|l| l == "U0-C1-R2R_P-3-85-true")
    );
}

#[test]
fn samna_bias_json_lists_every_bias() {
    let d = fixture();
    let v: Value = serde_json::from_str(&emit::samna_bias_json(&d)).unwrap();
    let params = v["parameters"].as_array().unwrap();
    assert_eq!(params.len(), 50);
    assert!(params.contains(&json!({"chip": 0, "core": 1, "parameter_name": "IF_TAU2_N", "coarse_value": 7, "fine_value": 255})));
    assert!(params.contains(&json!({"chip": 2, "core": 2, "parameter_name": "R2R_P", "coarse_value": 3, "fine_value": 85})));
}

#[test]
fn readout_json_has_neurons_and_weights() {
    let d = fixture();
    let v: Value = serde_json::from_str(&emit::readout_json(&d)).unwrap();
    assert_eq!(
        v["neurons"][2],
        json!({"global_id": 2567, "chip": 2, "core": 2, "neuron": 7, "model_index": 2})
    );
    assert_eq!(v["weights"], json!([[0.5, -0.25, 1.0]]));
    assert_eq!(v["tau_out_ms"], 70.0);
    assert_eq!(v["output_names"], json!(["xor"]));
}

#[test]
fn emit_all_refuses_invalid_documents() {
    let mut d = fixture();
    assert_eq!(emit::emit_all(&d).unwrap().files.len(), 6);
    d.connections[2].count = 0;
    let err = emit::emit_all(&d).unwrap_err();
    let emit::EmitError::Invalid(v) = &err;
    assert_eq!(v[0].rule, Rule::Count);
    assert!(err.to_string().contains("connections[2].count"));
}

fn python3() -> Option<&'static str> {
    Command::new("python3")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3")
}

#[test]
fn samna_script_compiles_with_python() {
    let Some(py) = python3() else {
        eprintln!("python3 not found: skipping py_compile");
        return;
    };
    let path = tmp_path("samna_network_compile.py");
    std::fs::write(&path, emit::samna_script(&fixture())).unwrap();
    let out = Command::new(py)
        .args(["-m", "py_compile"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "py_compile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the script's `apply(model)` against stub samna / NetworkGenerator modules that record the
/// calls, and checks them against the document.
#[test]
fn samna_script_builds_the_same_network_with_stubs() {
    let Some(py) = python3() else {
        eprintln!("python3 not found: skipping");
        return;
    };
    let d = fixture();
    let dir = tmp_path("samna_stub");
    std::fs::create_dir_all(dir.join("samna")).unwrap();
    std::fs::write(dir.join("samna/__init__.py"), "").unwrap();
    std::fs::write(
        dir.join("samna/dynapse1.py"),
        "class Dynapse1SynType:\n    GABA_B = 0\n    GABA_A = 1\n    NMDA = 2\n    AMPA = 3\n\n\
         class Dynapse1Parameter:\n    def __init__(self, name, coarse, fine):\n        self.t = (name, coarse, fine)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("NetworkGenerator.py"),
        "CALLS = []\n\n\
         class Neuron:\n    def __init__(self, chip, core, neuron, is_spike_gen=False):\n        self.t = (chip, core, neuron, is_spike_gen)\n\n\
         class NetworkGenerator:\n    def add_connection(self, pre, post, syn):\n        CALLS.append([list(pre.t), list(post.t), syn])\n\
         \x20   def make_dynapse1_configuration(self):\n        return 'config'\n",
    )
    .unwrap();
    // the 2021 layout needs its utilities module too (the script opens the board with it)
    std::fs::write(dir.join("Dynapse1Utils.py"), "").unwrap();
    std::fs::write(dir.join("samna_network.py"), emit::samna_script(&d)).unwrap();
    std::fs::write(
        dir.join("driver.py"),
        "import json\nimport samna_network as net\nimport NetworkGenerator as ng\n\n\
         class Model:\n    def __init__(self):\n        self.params = []\n        self.configs = []\n\
         \x20   def apply_configuration(self, c):\n        self.configs.append(c)\n\
         \x20   def update_single_parameter(self, p, chip, core):\n        self.params.append([chip, core] + list(p.t))\n\n\
         m = Model()\nnet.apply(m)\n\
         print(json.dumps({'calls': ng.CALLS, 'params': m.params, 'configs': m.configs, 'provenance': net.PROVENANCE}))\n",
    )
    .unwrap();
    let out = Command::new(py)
        .arg("driver.py")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let calls = v["calls"].as_array().unwrap();
    let total: u32 = d.connections.iter().map(|c| c.count).sum();
    assert_eq!(calls.len(), total as usize);
    // first connection: input 0 (tag core 3, neuron 10) -> U0 C1 N5, AMPA, 4 times
    for c in &calls[..4] {
        assert_eq!(c, &json!([[0, 3, 10, true], [0, 1, 5, false], 3]));
    }
    // 2568 -> 2567 AMPA x10 are the last calls
    assert_eq!(
        calls[total as usize - 1],
        json!([[2, 2, 8, false], [2, 2, 7, false], 3])
    );
    let params = v["params"].as_array().unwrap();
    assert_eq!(params.len(), 50);
    assert!(params.contains(&json!([2, 2, "IF_TAU2_N", 7, 255])));
    assert_eq!(v["configs"], json!(["config"]));
    assert_eq!(
        v["provenance"],
        serde_json::to_value(&d.provenance).unwrap()
    );
}
