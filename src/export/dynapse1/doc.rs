//! The DYNAP-SE1 export document: a self-describing, versioned JSON description of a network placed
//! on a DYNAP-SE1 board (docs/design.md §7, reference/dynapse1.md §6.2).
//!
//! Conventions (also written into every document, in [`Conventions`]):
//! - ids: global id = 1024*chip + 256*core + neuron; chip 0..=3, core 0..=3, neuron 0..=255;
//! - synapse type codes (2-bit CAM type, samna `Dynapse1SynType` order):
//!   0 = GABA_B (slow inhibitory, subtractive in the simulators),
//!   1 = GABA_A (fast inhibitory, shunting in the simulators; unconfirmed on hardware),
//!   2 = NMDA (slow excitatory, gated by IF_NMDA_N), 3 = AMPA (fast excitatory);
//! - biases: (coarse 0..=7, fine 0..=255) in the samna / ctxctl / Rockpool convention, where coarse 7
//!   is the LARGEST current; nominal current = I_max[coarse] * fine / 255 (uncalibrated);
//! - a connection is `count` CAM entries (1..=64) of one synapse type from one source; its effective
//!   weight is count x the post core's PS_WEIGHT_<type> bias.
//!
//! Connections name their source as `{"neuron": <global id>}` or `{"input": <index into inputs>}` and
//! their target by global id. SRAM contents (fan-out routing) are derived, never stored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Value of [`Doc::format`].
pub const FORMAT: &str = "dynapse1-network";
/// Value of [`Doc::schema_version`] written and understood by this module.
pub const SCHEMA_VERSION: &str = "1.0";

pub const N_CHIPS: u32 = 4;
pub const CORES_PER_CHIP: u32 = 4;
pub const NEURONS_PER_CORE: u32 = 256;
pub const CAMS_PER_NEURON: u32 = 64;
/// SRAM entries usable for routing: 4 minus entry 0, reserved for monitoring over USB.
pub const USABLE_SRAMS: u32 = 3;
/// Chip id the cAER netparser uses for FPGA spike-generator (virtual) sources.
pub const FPGA_CHIP: u32 = 4;

/// The 25 per-core bias names, in alphabetical order.
pub const BIAS_NAMES: [&str; 25] = [
    "IF_AHTAU_N",
    "IF_AHTHR_N",
    "IF_AHW_P",
    "IF_BUF_P",
    "IF_CASC_N",
    "IF_DC_P",
    "IF_NMDA_N",
    "IF_RFR_N",
    "IF_TAU1_N",
    "IF_TAU2_N",
    "IF_THR_N",
    "NPDPIE_TAU_F_P",
    "NPDPIE_TAU_S_P",
    "NPDPIE_THR_F_P",
    "NPDPIE_THR_S_P",
    "NPDPII_TAU_F_P",
    "NPDPII_TAU_S_P",
    "NPDPII_THR_F_P",
    "NPDPII_THR_S_P",
    "PS_WEIGHT_EXC_F_N",
    "PS_WEIGHT_EXC_S_N",
    "PS_WEIGHT_INH_F_N",
    "PS_WEIGHT_INH_S_N",
    "PULSE_PWLK_P",
    "R2R_P",
];

/// Nominal maximum current per coarse value (samna/Rockpool BiasGen, coarse 7 = largest), amperes.
pub const COARSE_IMAX_A: [f64; 8] = [
    15e-12, 105e-12, 820e-12, 6.5e-9, 50e-9, 400e-9, 3.2e-6, 24e-6,
];

/// Nominal (uncalibrated) bias current I_max[coarse] * fine / 255, or None when out of range.
pub fn nominal_current_a(coarse: u32, fine: u32) -> Option<f64> {
    if coarse > 7 || fine > 255 {
        return None;
    }
    Some(COARSE_IMAX_A[coarse as usize] * fine as f64 / 255.0)
}

/// Global id of a physical neuron: 1024*chip + 256*core + neuron.
pub fn global_id(chip: u32, core: u32, neuron: u32) -> u32 {
    1024 * chip + 256 * core + neuron
}

/// The four DYNAP-SE1 synapse types with their 2-bit hardware code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SynType {
    /// code 0: slow inhibitory (ctxctl SLOW_INH), subtractive in the simulators.
    GabaB = 0,
    /// code 1: fast inhibitory (ctxctl FAST_INH), shunting in the simulators.
    GabaA = 1,
    /// code 2: slow excitatory (ctxctl SLOW_EXC), NMDA-gated.
    Nmda = 2,
    /// code 3: fast excitatory (ctxctl FAST_EXC).
    Ampa = 3,
}

impl SynType {
    pub const ALL: [SynType; 4] = [SynType::GabaB, SynType::GabaA, SynType::Nmda, SynType::Ampa];

    pub fn from_code(code: u32) -> Option<SynType> {
        SynType::ALL.get(code as usize).copied()
    }
    pub fn code(self) -> u32 {
        self as u32
    }
    /// samna `Dynapse1SynType` member name.
    pub fn samna_name(self) -> &'static str {
        match self {
            SynType::GabaB => "GABA_B",
            SynType::GabaA => "GABA_A",
            SynType::Nmda => "NMDA",
            SynType::Ampa => "AMPA",
        }
    }
    /// ctxctl `DynapseCamType` member name.
    pub fn ctxctl_name(self) -> &'static str {
        match self {
            SynType::GabaB => "SLOW_INH",
            SynType::GabaA => "FAST_INH",
            SynType::Nmda => "SLOW_EXC",
            SynType::Ampa => "FAST_EXC",
        }
    }
    /// The per-core bias that sets this type's unit weight.
    pub fn weight_bias(self) -> &'static str {
        match self {
            SynType::GabaB => "PS_WEIGHT_INH_S_N",
            SynType::GabaA => "PS_WEIGHT_INH_F_N",
            SynType::Nmda => "PS_WEIGHT_EXC_S_N",
            SynType::Ampa => "PS_WEIGHT_EXC_F_N",
        }
    }
}

/// How a coarse value is written into the cAER bias text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CaerCoarseMapping {
    /// coarse_cAER = 7 - coarse (cAER/libcaer: 0 is the largest). Inferred, not hardware-checked.
    #[default]
    SevenMinus,
    /// coarse written unchanged.
    Identity,
}

/// Statements that make the file self-describing. [`Conventions::default`] is what this module
/// reads and writes; the validator rejects documents whose machine-relevant conventions differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conventions {
    /// "samna_ctxctl_7_is_max": coarse 7 is the largest current.
    pub coarse_convention: String,
    /// "coarse_fine": every pair is written (coarse, fine).
    pub bias_value_order: String,
    /// Name -> 2-bit CAM code: GABA_B_SLOW_INH 0, GABA_A_FAST_INH 1, NMDA_SLOW_EXC 2, AMPA_FAST_EXC 3.
    pub synapse_type_codes: BTreeMap<String, u32>,
    /// "1024*chip + 256*core + neuron".
    pub neuron_uid: String,
    /// What each synapse type carries in this export (free text per type name; e.g. which
    /// inhibitory type holds the negative weights and why).
    pub synapse_usage: BTreeMap<String, String>,
    /// How connections are counted: "count = number of CAM entries; weight = count * PS_WEIGHT of the post core".
    pub weight_model: String,
    /// Aliasing policy of the validator: "conservative" (no two sources share a tag in a target core).
    pub aliasing_policy: String,
    /// How the cAER bias emitter converts coarse values.
    pub caer_coarse_mapping: CaerCoarseMapping,
    /// Facts that are open on hardware and that the reader must check.
    pub open_on_hardware: Vec<String>,
}

impl Default for Conventions {
    fn default() -> Self {
        let codes = [
            ("GABA_B_SLOW_INH", 0),
            ("GABA_A_FAST_INH", 1),
            ("NMDA_SLOW_EXC", 2),
            ("AMPA_FAST_EXC", 3),
        ];
        let usage = [
            (
                "AMPA",
                "fast excitatory: positive weights (input and recurrent) unless stated otherwise",
            ),
            (
                "NMDA",
                "slow excitatory: positive slow recurrent weights if the mapper uses it (gated by IF_NMDA_N)",
            ),
            (
                "GABA_A",
                "fast inhibitory, shunting (acts on the leak) in the simulators: not used for linear negative weights unless stated otherwise",
            ),
            (
                "GABA_B",
                "slow inhibitory, subtractive in the simulators: negative weights unless stated otherwise",
            ),
        ];
        Conventions {
            coarse_convention: "samna_ctxctl_7_is_max".into(),
            bias_value_order: "coarse_fine".into(),
            synapse_type_codes: codes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            neuron_uid: "1024*chip + 256*core + neuron".into(),
            synapse_usage: usage.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            weight_model: "count = number of CAM entries (1..64) from one source with one type; \
                           effective weight = count * PS_WEIGHT_<type> of the post neuron's core"
                .into(),
            aliasing_policy: "conservative: within one target core, one (core, neuron) tag comes from one source only".into(),
            caer_coarse_mapping: CaerCoarseMapping::SevenMinus,
            open_on_hardware: vec![
                "which inhibitory type shunts (simulators: GABA_A) needs a one-neuron test".into(),
                "cAER coarse = 7 - samna coarse is inferred; check one bias both ways".into(),
                "bias-to-physics values (intended, nominal currents) are uncalibrated".into(),
                "whether samna reserves SRAM 0; this export uses 3 SRAMs per neuron".into(),
                "some netparser builds clamp cam_slots to 1 and drop duplicate lines".into(),
            ],
        }
    }
}

/// Board resources. The validator requires the DYNAP-SE1 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub n_chips: u32,
    pub cores_per_chip: u32,
    pub neurons_per_core: u32,
    /// CAM entries per neuron (fan-in), 64.
    pub cams_per_neuron: u32,
    /// SRAM entries usable for routing (fan-out target chips), 3.
    pub usable_srams_per_neuron: u32,
    /// CAM budget the mapper used per neuron (1..=64); fan-in is checked against it.
    pub cam_budget_per_neuron: u32,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            n_chips: N_CHIPS,
            cores_per_chip: CORES_PER_CHIP,
            neurons_per_core: NEURONS_PER_CORE,
            cams_per_neuron: CAMS_PER_NEURON,
            usable_srams_per_neuron: USABLE_SRAMS,
            cam_budget_per_neuron: CAMS_PER_NEURON,
        }
    }
}

/// One bias value, samna convention (coarse 7 = largest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bias {
    pub coarse: u32,
    pub fine: u32,
    /// cAER "current level" flag; absent = default (false for IF_AHTAU_N and IF_TAU1_N, else true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caer_high_current: Option<bool>,
}

impl Bias {
    pub fn new(coarse: u32, fine: u32) -> Self {
        Bias {
            coarse,
            fine,
            caer_high_current: None,
        }
    }
}

/// One core's shared parameter set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    pub chip: u32,
    pub core: u32,
    /// Free text, e.g. "recurrent population A".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// All 25 biases, by name.
    pub biases: BTreeMap<String, Bias>,
    /// Intended physical values (informational, uncalibrated), e.g. tau_mem_ms, tau_syn_ampa_ms,
    /// unit_weight_ampa, v_th. Neurons that state their own `intended` values must agree with these.
    #[serde(default)]
    pub intended: BTreeMap<String, f64>,
}

/// Leak bias a neuron uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Leak {
    #[default]
    #[serde(rename = "TAU1")]
    Tau1,
    #[serde(rename = "TAU2")]
    Tau2,
}

/// Placement of one model neuron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronPlacement {
    /// Index of the neuron in the trained model.
    pub index: u32,
    pub chip: u32,
    pub core: u32,
    pub neuron: u32,
    /// Must equal 1024*chip + 256*core + neuron. Connections refer to neurons by it.
    pub global_id: u32,
    #[serde(default)]
    pub leak: Leak,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<String>,
    /// The model's own parameters for this neuron (same keys as the core's `intended`); they must
    /// equal the core's values, since biases are shared per core.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intended: BTreeMap<String, f64>,
}

/// One FPGA spike-generator virtual neuron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Task input channel this virtual neuron encodes (free numbering of the mapper).
    pub channel: u32,
    /// Free text, e.g. "ch0+" for an up-spike train.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// CAM tag (core part) the event carries.
    pub tag_core: u32,
    /// CAM tag (neuron part) the event carries.
    pub tag_neuron: u32,
    /// The one chip the event is sent to.
    pub target_chip: u32,
    /// Cores of `target_chip` the event is broadcast to (bit k = core k), 1..=15.
    pub core_mask: u32,
    /// Host-side encoding gain (> 0): the event rate of this virtual neuron is `scale` times the
    /// channel's model input, so an input connection's effective weight is
    /// `scale * count * unit`. It lets inputs share a core's unit weight with the recurrent
    /// synapses of the same type. 1 when absent.
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Source of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A physical neuron, by global id.
    Neuron(u32),
    /// An FPGA virtual neuron, by index into `inputs`.
    Input(u32),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Neuron(id) => write!(f, "neuron {id}"),
            Source::Input(i) => write!(f, "input {i}"),
        }
    }
}

/// `count` CAM entries of one type on `post`, all listening to `pre`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub pre: Source,
    /// Global id of the target neuron.
    pub post: u32,
    /// Hardware code 0..=3 (see [`SynType`]).
    pub syn_type: u32,
    /// CAM entries, 1..=64.
    pub count: u32,
    /// The trained weight before quantisation (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_weight: Option<f64>,
}

/// Host-side linear readout of filtered spike trains: y[o] = gain * sum_k weights[o][k] * r_k(t) + bias[o],
/// with r_k = exponentially filtered spikes (tau_out_ms) of `neurons[k]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Readout {
    /// Global ids of the recorded neurons, in column order of `weights`.
    pub neurons: Vec<u32>,
    /// One row per output, one column per entry of `neurons`.
    pub weights: Vec<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bias: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_names: Vec<String>,
    /// Time constant of the spike filter (ms).
    pub tau_out_ms: f64,
    /// Host bin width (ms).
    pub dt_ms: f64,
    /// Output gain (the recalibrated scalar, 1 when none).
    pub gain: f64,
}

/// Unit weight chosen for one (core, type): weight of a single CAM entry in model units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitWeight {
    pub chip: u32,
    pub core: u32,
    pub syn_type: u32,
    pub unit: f64,
}

/// How trained weights became counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuantisationReport {
    /// e.g. "round(|w| / unit), clipped to 1..64, dropped below 0.5, budget: keep largest".
    pub method: String,
    #[serde(default)]
    pub unit_weights: Vec<UnitWeight>,
    /// Numbers such as relative_error, clipped, dropped, max_fan_in.
    #[serde(default)]
    pub stats: BTreeMap<String, f64>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Mismatch the network was trained / evaluated against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MismatchAssumptions {
    /// Coefficients of variation by quantity, e.g. tau_mem 0.2, w_fast 0.3.
    #[serde(default)]
    pub cv: BTreeMap<String, f64>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The export document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Always "dynapse1-network".
    pub format: String,
    /// "1.0".
    pub schema_version: String,
    pub conventions: Conventions,
    pub board: Board,
    pub cores: Vec<CoreConfig>,
    pub neurons: Vec<NeuronPlacement>,
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    pub connections: Vec<Connection>,
    #[serde(default)]
    pub outputs: Readout,
    #[serde(default)]
    pub quantisation: QuantisationReport,
    #[serde(default)]
    pub mismatch_assumptions: MismatchAssumptions,
    /// Free-form: config, seed, engine version, commit, date ...
    #[serde(default)]
    pub provenance: BTreeMap<String, Value>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON (line {line}, column {column}): {message}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: String,
        /// JSON-path-like location, e.g. "cores[1].biases.IF_THR_N.fine".
        field: String,
        message: String,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl Doc {
    /// An empty document with the default conventions and board.
    pub fn new() -> Self {
        Doc {
            format: FORMAT.into(),
            schema_version: SCHEMA_VERSION.into(),
            conventions: Conventions::default(),
            board: Board::default(),
            cores: Vec::new(),
            neurons: Vec::new(),
            inputs: Vec::new(),
            connections: Vec::new(),
            outputs: Readout::default(),
            quantisation: QuantisationReport::default(),
            mismatch_assumptions: MismatchAssumptions::default(),
            provenance: BTreeMap::new(),
        }
    }

    /// Read and parse a document; errors name the file and the field.
    pub fn load(path: impl AsRef<Path>) -> Result<Doc, DocError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DocError::Io {
            file: file.clone(),
            source,
        })?;
        parse(&text, &file)
    }

    pub fn to_string_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("Doc serialises") + "\n"
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DocError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_string_pretty()).map_err(|source| DocError::Write {
            file: path.display().to_string(),
            source,
        })
    }

    /// Neuron placement by global id.
    pub fn neuron_by_gid(&self, gid: u32) -> Option<&NeuronPlacement> {
        self.neurons.iter().find(|n| n.global_id == gid)
    }

    /// Bias set of (chip, core), if present.
    pub fn core(&self, chip: u32, core: u32) -> Option<&CoreConfig> {
        self.cores.iter().find(|c| c.chip == chip && c.core == core)
    }
}

impl std::str::FromStr for Doc {
    type Err = DocError;
    /// Parse a document; errors name `<string>` as the file.
    fn from_str(s: &str) -> Result<Doc, DocError> {
        parse(s, "<string>")
    }
}

/// Parse a document from a string; errors name `<string>` as the file.
pub fn from_str(s: &str) -> Result<Doc, DocError> {
    parse(s, "<string>")
}

/// Read and parse a document; errors name the file and the field.
pub fn load(path: impl AsRef<Path>) -> Result<Doc, DocError> {
    Doc::load(path)
}

impl Default for Doc {
    fn default() -> Self {
        Doc::new()
    }
}

fn parse(text: &str, file: &str) -> Result<Doc, DocError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DocError::Json {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    match Doc::deserialize(&value) {
        Ok(doc) => Ok(doc),
        Err(e) => {
            let (field, message) = locate(&value, &e.to_string());
            Err(DocError::Field {
                file: file.to_string(),
                field,
                message,
            })
        }
    }
}

/// Join a location and the field that serde reports as missing or unknown.
fn with_reported_field(path: &str, message: &str) -> String {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let name = &rest[..end];
                return if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
            }
        }
    }
    if path.is_empty() {
        "(document)".to_string()
    } else {
        path.to_string()
    }
}

fn try_as<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<(), String> {
    T::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
}

/// Check the elements of an array one by one; the first failure gives its index.
fn try_vec<T: for<'de> Deserialize<'de>>(v: &Value, path: &str) -> Option<(String, String)> {
    let Some(items) = v.as_array() else {
        return try_as::<Vec<T>>(v).err().map(|m| (path.to_string(), m));
    };
    for (i, item) in items.iter().enumerate() {
        if let Err(m) = try_as::<T>(item) {
            let here = format!("{path}[{i}]");
            return Some((with_reported_field(&here, &m), m));
        }
    }
    None
}

/// Find the JSON path of the first field that does not deserialise.
fn locate(value: &Value, fallback: &str) -> (String, String) {
    let Some(obj) = value.as_object() else {
        return (
            "(document)".into(),
            "the document is not a JSON object".into(),
        );
    };
    let required = [
        "format",
        "schema_version",
        "conventions",
        "board",
        "cores",
        "neurons",
        "connections",
    ];
    for name in required {
        if !obj.contains_key(name) {
            return (name.to_string(), format!("missing field `{name}`"));
        }
    }
    for key in obj.keys() {
        let known = required.contains(&key.as_str())
            || [
                "inputs",
                "outputs",
                "quantisation",
                "mismatch_assumptions",
                "provenance",
            ]
            .contains(&key.as_str());
        if !known {
            return (key.clone(), format!("unknown field `{key}`"));
        }
    }
    for (key, v) in obj {
        let found = match key.as_str() {
            "format" | "schema_version" => try_as::<String>(v).err().map(|m| (key.clone(), m)),
            "conventions" => try_as::<Conventions>(v)
                .err()
                .map(|m| (with_reported_field(key, &m), m)),
            "board" => try_as::<Board>(v)
                .err()
                .map(|m| (with_reported_field(key, &m), m)),
            "cores" => locate_cores(v),
            "neurons" => try_vec::<NeuronPlacement>(v, key),
            "inputs" => try_vec::<InputSpec>(v, key),
            "connections" => try_vec::<Connection>(v, key),
            "outputs" => try_as::<Readout>(v)
                .err()
                .map(|m| (with_reported_field(key, &m), m)),
            "quantisation" => try_as::<QuantisationReport>(v)
                .err()
                .map(|m| (with_reported_field(key, &m), m)),
            "mismatch_assumptions" => try_as::<MismatchAssumptions>(v)
                .err()
                .map(|m| (with_reported_field(key, &m), m)),
            "provenance" => try_as::<BTreeMap<String, Value>>(v)
                .err()
                .map(|m| (key.clone(), m)),
            _ => None,
        };
        if let Some(f) = found {
            return f;
        }
    }
    ("(document)".into(), fallback.to_string())
}

fn locate_cores(v: &Value) -> Option<(String, String)> {
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            if let Some(biases) = item.get("biases").and_then(Value::as_object) {
                for (name, b) in biases {
                    if let Err(m) = try_as::<Bias>(b) {
                        let here = format!("cores[{i}].biases.{name}");
                        return Some((with_reported_field(&here, &m), m));
                    }
                }
            }
        }
    }
    try_vec::<CoreConfig>(v, "cores")
}
