//! Hardware-rule validation of an export document (docs/design.md §7, reference/dynapse1.md §6.3).
//!
//! [`validate`] returns the errors: a document with none can be emitted and loaded by the cAER
//! netparser and samna's `NetworkGenerator`. [`warnings`] returns the advisory rules (unused
//! core-mask cores, TAU2 = TAU1, missing unit weights); they never block an export.
//!
//! V10 (chip direction) is an error: the 2021 ctxctl_contrib `NetworkGenerator`, which
//! `samna_setup.py` can import, raises on a connection from a physical neuron on a left chip
//! {0, 2} to one on a right chip {1, 3} ("will make chips die"); its 2022 successor only warns,
//! but the hardware reason is the same.
//!
//! Aliasing is checked in the conservative mode (Rockpool `validate_connections`): within one
//! target core a (core, neuron) tag may come from one source only, whether that source is a
//! physical neuron (on any chip) or an FPGA input. samna's "CAM reuse" exception is not used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use super::doc::{
    BIAS_NAMES, Board, CAMS_PER_NEURON, CORES_PER_CHIP, Conventions, Doc, DocError, FORMAT, Leak,
    N_CHIPS, NEURONS_PER_CORE, SCHEMA_VERSION, Source, SynType, USABLE_SRAMS, global_id,
};

/// The rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `format` / `schema_version` not the ones this module understands.
    Schema,
    /// Conventions (coarse convention, value order, synapse codes, id formula) differ from ours.
    Conventions,
    /// Board constants are not DYNAP-SE1's (4 chips, 4 cores, 256 neurons, 64 CAMs, 3 SRAMs).
    Board,
    /// V1: chip/core 0..3, neuron 0..255, input tag, target chip, core mask 1..15, input scale > 0.
    IdRange,
    /// global_id != 1024*chip + 256*core + neuron.
    GlobalId,
    /// V2: two neurons on the same physical neuron, or the same model index / global id twice.
    DuplicatePlacement,
    /// V4: a neuron sits on a core that has no bias set.
    CoreWithoutBiases,
    /// V11: one bias set per core, and every neuron's own parameters equal its core's.
    SharedBiases,
    /// V4: a bias set lacks one of the 25 names or has an unknown name.
    BiasSet,
    /// V4: coarse > 7 or fine > 255.
    BiasRange,
    /// V3: a connection or the readout names a neuron or input that does not exist.
    UnknownReference,
    /// Synapse type code not in 0..=3.
    SynapseType,
    /// Count not in 1..=64.
    Count,
    /// The same (pre, post, type) appears twice (netparser drops the second line).
    DuplicateConnection,
    /// V5: CAM entries of a neuron exceed the budget (<= 64).
    FanIn,
    /// V6/V16: a neuron projects to more than 3 chips.
    FanOut,
    /// V7: a connection from an input reaches a neuron outside the input's target chip / core mask.
    InputTarget,
    /// V8: two sources with the same (core, neuron) tag reach the same target core.
    Aliasing,
    /// V9: a source with tag (core 0, neuron 0).
    ZeroTagSource,
    /// Readout weights/bias/names do not match the neuron list, or time constants are not positive.
    ReadoutShape,
    /// V10: a connection from a physical neuron on a left chip {0, 2} to one on a right chip
    /// {1, 3}. FPGA inputs are exempt (ctxctl_contrib checks `pre.is_spike_gen is False`).
    ChipDirection,
    /// Warning V7: an input's core mask covers a core with none of its targets.
    CoreMaskExtra,
    /// Warning V13: a TAU2 neuron on a core whose IF_TAU2_N equals IF_TAU1_N.
    Tau2SameAsTau1,
    /// Warning V12: no quantisation unit weight stated for a (core, type) that is used.
    UnitWeightMissing,
}

impl Rule {
    /// True for rules that [`validate`] reports (errors), false for [`warnings`].
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            Rule::CoreMaskExtra | Rule::Tau2SameAsTau1 | Rule::UnitWeightMissing
        )
    }
}

/// One broken rule at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// JSON-path-like location, e.g. "connections[12]" or "cores[3].biases.IF_THR_N".
    pub at: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at {}: {}", self.rule, self.at, self.message)
    }
}

struct Out(Vec<Violation>);

impl Out {
    fn push(&mut self, rule: Rule, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            rule,
            at: at.into(),
            message: message.into(),
        });
    }
}

/// Read a document and validate it. Unreadable, non-JSON or incomplete files are `DocError`s.
pub fn check_file(path: impl AsRef<Path>) -> Result<Vec<Violation>, DocError> {
    let doc = Doc::load(path)?;
    Ok(validate(&doc))
}

/// A physical neuron position that is in range.
#[derive(Clone, Copy)]
struct Pos {
    chip: u32,
    core: u32,
    neuron: u32,
}

/// Resolved indices into the document, shared by the checks.
struct Index {
    /// global id -> neuron index (first occurrence, declared ids).
    by_gid: HashMap<u32, usize>,
    /// global ids computed from coordinates of neurons whose declared id is inconsistent; a
    /// reference to them is not reported again (GlobalId already is).
    shadow: BTreeSet<u32>,
    /// In-range coordinates per neuron.
    pos: Vec<Option<Pos>>,
    /// Input i is in range (tag, chip, mask).
    input_ok: Vec<bool>,
}

/// Chips 0 and 2 are the board's left chips, 1 and 3 its right ones (rule V10).
pub fn is_left_chip(chip: u32) -> bool {
    chip.is_multiple_of(2)
}

fn in_range(chip: u32, core: u32, neuron: u32) -> bool {
    chip < N_CHIPS && core < CORES_PER_CHIP && neuron < NEURONS_PER_CORE
}

/// All hardware-rule errors of `doc`, in document order per rule family. Empty = valid.
pub fn validate(doc: &Doc) -> Vec<Violation> {
    let mut out = Out(Vec::new());
    check_header(doc, &mut out);
    let index = check_placement(doc, &mut out);
    check_cores(doc, &mut out);
    check_inputs(doc, &mut out);
    let ok = check_connections(doc, &index, &mut out);
    check_fan(doc, &index, &ok, &mut out);
    check_aliasing(doc, &index, &ok, &mut out);
    check_readout(doc, &index, &mut out);
    out.0
}

fn check_header(doc: &Doc, out: &mut Out) {
    if doc.format != FORMAT {
        out.push(
            Rule::Schema,
            "format",
            format!("expected \"{FORMAT}\", found \"{}\"", doc.format),
        );
    }
    if doc.schema_version != SCHEMA_VERSION {
        out.push(
            Rule::Schema,
            "schema_version",
            format!(
                "this reader understands \"{SCHEMA_VERSION}\", found \"{}\"",
                doc.schema_version
            ),
        );
    }
    let want = Conventions::default();
    let c = &doc.conventions;
    if c.coarse_convention != want.coarse_convention {
        out.push(
            Rule::Conventions,
            "conventions.coarse_convention",
            format!(
                "expected \"{}\", found \"{}\"",
                want.coarse_convention, c.coarse_convention
            ),
        );
    }
    if c.bias_value_order != want.bias_value_order {
        out.push(
            Rule::Conventions,
            "conventions.bias_value_order",
            format!(
                "expected \"{}\", found \"{}\"",
                want.bias_value_order, c.bias_value_order
            ),
        );
    }
    if c.synapse_type_codes != want.synapse_type_codes {
        out.push(
            Rule::Conventions,
            "conventions.synapse_type_codes",
            format!(
                "expected {:?}, found {:?}",
                want.synapse_type_codes, c.synapse_type_codes
            ),
        );
    }
    if c.neuron_uid != want.neuron_uid {
        out.push(
            Rule::Conventions,
            "conventions.neuron_uid",
            format!(
                "expected \"{}\", found \"{}\"",
                want.neuron_uid, c.neuron_uid
            ),
        );
    }
    let b = &doc.board;
    let hw = Board::default();
    let fixed = [
        ("n_chips", b.n_chips, hw.n_chips),
        ("cores_per_chip", b.cores_per_chip, hw.cores_per_chip),
        ("neurons_per_core", b.neurons_per_core, hw.neurons_per_core),
        ("cams_per_neuron", b.cams_per_neuron, hw.cams_per_neuron),
        (
            "usable_srams_per_neuron",
            b.usable_srams_per_neuron,
            hw.usable_srams_per_neuron,
        ),
    ];
    for (name, found, want) in fixed {
        if found != want {
            let why = if name == "usable_srams_per_neuron" {
                " (SRAM 0 is reserved for monitoring)"
            } else {
                ""
            };
            out.push(
                Rule::Board,
                format!("board.{name}"),
                format!("DYNAP-SE1 has {want}{why}, found {found}"),
            );
        }
    }
    if b.cam_budget_per_neuron == 0 || b.cam_budget_per_neuron > CAMS_PER_NEURON {
        out.push(
            Rule::Board,
            "board.cam_budget_per_neuron",
            format!(
                "must be 1..={CAMS_PER_NEURON}, found {}",
                b.cam_budget_per_neuron
            ),
        );
    }
}

fn check_placement(doc: &Doc, out: &mut Out) -> Index {
    let mut by_gid = HashMap::new();
    let mut shadow = BTreeSet::new();
    let mut pos = Vec::with_capacity(doc.neurons.len());
    let mut seen_place: HashMap<(u32, u32, u32), usize> = HashMap::new();
    let mut seen_index: HashMap<u32, usize> = HashMap::new();
    for (k, n) in doc.neurons.iter().enumerate() {
        let at = format!("neurons[{k}]");
        let mut ok = true;
        for (field, v, max) in [
            ("chip", n.chip, N_CHIPS),
            ("core", n.core, CORES_PER_CHIP),
            ("neuron", n.neuron, NEURONS_PER_CORE),
        ] {
            if v >= max {
                ok = false;
                out.push(
                    Rule::IdRange,
                    format!("{at}.{field}"),
                    format!("{field} {v} not in 0..={}", max - 1),
                );
            }
        }
        if ok {
            let uid = global_id(n.chip, n.core, n.neuron);
            if uid != n.global_id {
                out.push(
                    Rule::GlobalId,
                    format!("{at}.global_id"),
                    format!(
                        "global_id {} but 1024*{} + 256*{} + {} = {uid}",
                        n.global_id, n.chip, n.core, n.neuron
                    ),
                );
                shadow.insert(uid);
            }
            if let Some(first) = seen_place.insert((n.chip, n.core, n.neuron), k) {
                out.push(
                    Rule::DuplicatePlacement,
                    &at,
                    format!(
                        "chip {} core {} neuron {} is already used by neurons[{first}]",
                        n.chip, n.core, n.neuron
                    ),
                );
                seen_place.insert((n.chip, n.core, n.neuron), first);
            }
        }
        if let Some(first) = seen_index.get(&n.index) {
            out.push(
                Rule::DuplicatePlacement,
                &at,
                format!(
                    "model index {} is already placed by neurons[{first}]",
                    n.index
                ),
            );
        } else {
            seen_index.insert(n.index, k);
        }
        if let Some(&first) = by_gid.get(&n.global_id) {
            // Same declared id twice with different coordinates (same coordinates reported above).
            let f: &super::doc::NeuronPlacement = &doc.neurons[first];
            if (f.chip, f.core, f.neuron) != (n.chip, n.core, n.neuron) {
                out.push(
                    Rule::DuplicatePlacement,
                    &at,
                    format!(
                        "global_id {} is already used by neurons[{first}]",
                        n.global_id
                    ),
                );
            }
        } else {
            by_gid.insert(n.global_id, k);
        }
        pos.push(ok.then_some(Pos {
            chip: n.chip,
            core: n.core,
            neuron: n.neuron,
        }));
    }
    let input_ok = doc
        .inputs
        .iter()
        .map(|i| {
            i.tag_core < CORES_PER_CHIP
                && i.tag_neuron < NEURONS_PER_CORE
                && i.target_chip < N_CHIPS
                && (1..=15).contains(&i.core_mask)
        })
        .collect();
    Index {
        by_gid,
        shadow,
        pos,
        input_ok,
    }
}

fn check_cores(doc: &Doc, out: &mut Out) {
    let mut seen: HashMap<(u32, u32), usize> = HashMap::new();
    for (k, c) in doc.cores.iter().enumerate() {
        let at = format!("cores[{k}]");
        let mut ok = true;
        if c.chip >= N_CHIPS {
            ok = false;
            out.push(
                Rule::IdRange,
                format!("{at}.chip"),
                format!("chip {} not in 0..=3", c.chip),
            );
        }
        if c.core >= CORES_PER_CHIP {
            ok = false;
            out.push(
                Rule::IdRange,
                format!("{at}.core"),
                format!("core {} not in 0..=3", c.core),
            );
        }
        if ok && let Some(first) = seen.insert((c.chip, c.core), k) {
            seen.insert((c.chip, c.core), first);
            out.push(
                Rule::SharedBiases,
                &at,
                format!(
                    "chip {} core {} already has a bias set in cores[{first}]; a core has exactly one",
                    c.chip, c.core
                ),
            );
        }
        let missing: Vec<&str> = BIAS_NAMES
            .iter()
            .copied()
            .filter(|n| !c.biases.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            out.push(
                Rule::BiasSet,
                format!("{at}.biases"),
                format!("missing biases: {}", missing.join(", ")),
            );
        }
        for (name, b) in &c.biases {
            let bat = format!("{at}.biases.{name}");
            if !BIAS_NAMES.contains(&name.as_str()) {
                out.push(Rule::BiasSet, &bat, format!("unknown bias name \"{name}\""));
            }
            if b.coarse > 7 {
                out.push(
                    Rule::BiasRange,
                    &bat,
                    format!("coarse {} not in 0..=7", b.coarse),
                );
            }
            if b.fine > 255 {
                out.push(
                    Rule::BiasRange,
                    &bat,
                    format!("fine {} not in 0..=255", b.fine),
                );
            }
        }
    }
    // Every neuron uses its core's (single) bias set: the core must exist and the neuron's own
    // parameters must equal the core's.
    let mut reported_missing: BTreeSet<(u32, u32)> = BTreeSet::new();
    for (k, n) in doc.neurons.iter().enumerate() {
        if !in_range(n.chip, n.core, n.neuron) {
            continue;
        }
        let Some(core) = doc.core(n.chip, n.core) else {
            if reported_missing.insert((n.chip, n.core)) {
                out.push(
                    Rule::CoreWithoutBiases,
                    format!("neurons[{k}]"),
                    format!(
                        "chip {} core {} hosts neurons but has no entry in cores",
                        n.chip, n.core
                    ),
                );
            }
            continue;
        };
        for (key, v) in &n.intended {
            let same = core
                .intended
                .get(key)
                .is_some_and(|c| c == v || (c - v).abs() <= 1e-9 * c.abs().max(v.abs()));
            if !same {
                let cv = core
                    .intended
                    .get(key)
                    .map_or("not stated".to_string(), |c| c.to_string());
                out.push(
                    Rule::SharedBiases,
                    format!("neurons[{k}].intended.{key}"),
                    format!(
                        "{key} = {v} but the shared biases of chip {} core {} give {cv}; \
                         neurons with different parameters need different cores",
                        n.chip, n.core
                    ),
                );
            }
        }
    }
}

fn check_inputs(doc: &Doc, out: &mut Out) {
    for (j, i) in doc.inputs.iter().enumerate() {
        let at = format!("inputs[{j}]");
        if i.tag_core >= CORES_PER_CHIP {
            out.push(
                Rule::IdRange,
                format!("{at}.tag_core"),
                format!("tag_core {} not in 0..=3", i.tag_core),
            );
        }
        if i.tag_neuron >= NEURONS_PER_CORE {
            out.push(
                Rule::IdRange,
                format!("{at}.tag_neuron"),
                format!("tag_neuron {} not in 0..=255", i.tag_neuron),
            );
        }
        if i.target_chip >= N_CHIPS {
            out.push(
                Rule::IdRange,
                format!("{at}.target_chip"),
                format!("target_chip {} not in 0..=3", i.target_chip),
            );
        }
        if !(1..=15).contains(&i.core_mask) {
            out.push(
                Rule::IdRange,
                format!("{at}.core_mask"),
                format!("core_mask {} not in 1..=15", i.core_mask),
            );
        }
        if !(i.scale.is_finite() && i.scale > 0.0) {
            out.push(
                Rule::IdRange,
                format!("{at}.scale"),
                format!("scale {} must be finite and > 0", i.scale),
            );
        }
        if i.tag_core == 0 && i.tag_neuron == 0 {
            out.push(
                Rule::ZeroTagSource,
                &at,
                "tag (core 0, neuron 0) is what every empty CAM listens to; never use it as a source",
            );
        }
    }
}

/// Per connection: Some((pre, post position)) when it is well-formed enough for the derived checks.
type Resolved = Vec<Option<(ResolvedPre, Pos)>>;

#[derive(Clone, Copy)]
enum ResolvedPre {
    Neuron(usize, Pos),
    Input(usize),
}

fn check_connections(doc: &Doc, index: &Index, out: &mut Out) -> Resolved {
    let mut resolved = Vec::with_capacity(doc.connections.len());
    let mut seen: HashMap<(Source, u32, u32), usize> = HashMap::new();
    for (i, c) in doc.connections.iter().enumerate() {
        let at = format!("connections[{i}]");
        let mut ok = true;
        if SynType::from_code(c.syn_type).is_none() {
            ok = false;
            out.push(
                Rule::SynapseType,
                format!("{at}.syn_type"),
                format!(
                    "synapse type {} not in 0..=3 (0 GABA_B, 1 GABA_A, 2 NMDA, 3 AMPA)",
                    c.syn_type
                ),
            );
        }
        if c.count == 0 || c.count > CAMS_PER_NEURON {
            ok = false;
            out.push(
                Rule::Count,
                format!("{at}.count"),
                format!("count {} not in 1..=64", c.count),
            );
        }
        let pre = match c.pre {
            Source::Neuron(gid) => match index.by_gid.get(&gid) {
                Some(&k) => index.pos[k].map(|p| ResolvedPre::Neuron(k, p)),
                None => {
                    if !index.shadow.contains(&gid) {
                        out.push(
                            Rule::UnknownReference,
                            format!("{at}.pre"),
                            format!("no neuron with global id {gid}"),
                        );
                    }
                    None
                }
            },
            Source::Input(j) => {
                let j = j as usize;
                if j < doc.inputs.len() {
                    index.input_ok[j].then_some(ResolvedPre::Input(j))
                } else {
                    out.push(
                        Rule::UnknownReference,
                        format!("{at}.pre"),
                        format!("no input {j} (there are {})", doc.inputs.len()),
                    );
                    None
                }
            }
        };
        let post = match index.by_gid.get(&c.post) {
            Some(&k) => index.pos[k],
            None => {
                if !index.shadow.contains(&c.post) {
                    out.push(
                        Rule::UnknownReference,
                        format!("{at}.post"),
                        format!(
                            "no neuron with global id {} (inputs cannot be targets)",
                            c.post
                        ),
                    );
                }
                None
            }
        };
        if let Some(first) = seen.insert((c.pre, c.post, c.syn_type), i) {
            seen.insert((c.pre, c.post, c.syn_type), first);
            out.push(
                Rule::DuplicateConnection,
                &at,
                format!(
                    "({}, post {}, type {}) already in connections[{first}]; merge the counts",
                    c.pre, c.post, c.syn_type
                ),
            );
        }
        if let Some(ResolvedPre::Neuron(_, p)) = pre
            && p.core == 0
            && p.neuron == 0
        {
            out.push(
                Rule::ZeroTagSource,
                format!("{at}.pre"),
                format!(
                    "neuron 0 of core 0 (chip {}) is what every empty CAM listens to; never use it as a source",
                    p.chip
                ),
            );
        }
        // V10, as ctxctl_contrib's NetworkGenerator.py (neuromorphic-CPG/neuromorphic-CPG@0d3b4b5,
        // Network.add_connection) has it: `if pre.is_spike_gen is False` and `pre.chip_id in
        // [0,2] and post.chip_id in [1,3]`: raise "connections from left chips [0,2] to right
        // chips [1,3] are forbidden!". FPGA spike generators are exempt whatever chip they reach.
        if let (Some(ResolvedPre::Neuron(_, p)), Some(q)) = (pre, post)
            && is_left_chip(p.chip)
            && !is_left_chip(q.chip)
        {
            let pre_gid = global_id(p.chip, p.core, p.neuron);
            out.push(
                Rule::ChipDirection,
                &at,
                format!(
                    "neuron {pre_gid} on chip {} -> neuron {} on chip {}: connections from the \
                     left chips {{0, 2}} to the right chips {{1, 3}} are forbidden (rule V10; \
                     ctxctl_contrib's NetworkGenerator refuses them, they can damage the chips)",
                    p.chip, c.post, q.chip
                ),
            );
        }
        if let (Some(ResolvedPre::Input(j)), Some(p)) = (pre, post) {
            let inp = &doc.inputs[j];
            if p.chip != inp.target_chip {
                out.push(
                    Rule::InputTarget,
                    &at,
                    format!(
                        "input {j} targets chip {} only, but post {} is on chip {}",
                        inp.target_chip, c.post, p.chip
                    ),
                );
            } else if inp.core_mask & (1 << p.core) == 0 {
                out.push(
                    Rule::InputTarget,
                    &at,
                    format!(
                        "input {j} has core mask {:#06b}, which excludes core {} of post {}",
                        inp.core_mask, p.core, c.post
                    ),
                );
            }
        }
        resolved.push(match (ok, pre, post) {
            (true, Some(pre), Some(post)) => Some((pre, post)),
            _ => None,
        });
    }
    resolved
}

fn check_fan(doc: &Doc, index: &Index, resolved: &Resolved, out: &mut Out) {
    let budget = doc.board.cam_budget_per_neuron.clamp(1, CAMS_PER_NEURON);
    let mut fan_in: BTreeMap<usize, u64> = BTreeMap::new();
    let mut fan_out: BTreeMap<usize, BTreeSet<u32>> = BTreeMap::new();
    for (c, r) in doc.connections.iter().zip(resolved) {
        let Some((pre, post)) = r else { continue };
        let post_k = index.by_gid[&c.post];
        *fan_in.entry(post_k).or_default() += c.count as u64;
        if let ResolvedPre::Neuron(k, _) = pre {
            fan_out.entry(*k).or_default().insert(post.chip);
        }
    }
    for (k, total) in fan_in {
        if total > budget as u64 {
            out.push(
                Rule::FanIn,
                format!("neurons[{k}]"),
                format!(
                    "neuron {} receives {total} CAM entries, more than the budget of {budget}",
                    doc.neurons[k].global_id
                ),
            );
        }
    }
    for (k, chips) in fan_out {
        if chips.len() > USABLE_SRAMS as usize {
            out.push(
                Rule::FanOut,
                format!("neurons[{k}]"),
                format!(
                    "neuron {} projects to chips {:?}: more than {USABLE_SRAMS} (one SRAM per target chip, SRAM 0 reserved)",
                    doc.neurons[k].global_id, chips
                ),
            );
        }
    }
}

/// A distinct event source: a physical neuron (by chip; the tag fixes core and neuron) or an input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EventSource {
    Chip(u32),
    Input(usize),
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventSource::Chip(c) => write!(f, "a neuron on chip {c}"),
            EventSource::Input(j) => write!(f, "input {j}"),
        }
    }
}

fn check_aliasing(doc: &Doc, index: &Index, resolved: &Resolved, out: &mut Out) {
    // (target chip, target core, tag core, tag neuron) -> first source and where it came from.
    let mut reach: HashMap<(u32, u32, u32, u32), (EventSource, String)> = HashMap::new();
    let mut reported: BTreeSet<(u32, u32, u32, u32, String)> = BTreeSet::new();
    let mut register = |key: (u32, u32, u32, u32), src: EventSource, at: String, out: &mut Out| {
        match reach.get(&key) {
            None => {
                reach.insert(key, (src, at));
            }
            Some((first, first_at)) if *first != src => {
                if reported.insert((key.0, key.1, key.2, key.3, at.clone())) {
                    out.push(
                    Rule::Aliasing,
                    &at,
                    format!(
                        "tag (core {}, neuron {}) reaches chip {} core {} from {first} ({first_at}) and from {src}; \
                         the CAMs there cannot tell them apart",
                        key.2, key.3, key.0, key.1
                    ),
                );
                }
            }
            Some(_) => {}
        }
    };
    // Inputs reach every core of their mask on their target chip, whether or not a neuron there
    // listens: a neuron listening to the same tag from elsewhere would respond to it.
    for (j, inp) in doc.inputs.iter().enumerate() {
        if !index.input_ok[j] {
            continue;
        }
        for core in 0..CORES_PER_CHIP {
            if inp.core_mask & (1 << core) != 0 {
                let key = (inp.target_chip, core, inp.tag_core, inp.tag_neuron);
                register(key, EventSource::Input(j), format!("inputs[{j}]"), out);
            }
        }
    }
    // A physical neuron reaches, through its SRAM for the post chip, the cores of its posts there.
    for (i, r) in resolved.iter().enumerate() {
        let Some((ResolvedPre::Neuron(_, p), post)) = r else {
            continue;
        };
        let key = (post.chip, post.core, p.core, p.neuron);
        register(
            key,
            EventSource::Chip(p.chip),
            format!("connections[{i}]"),
            out,
        );
    }
}

fn check_readout(doc: &Doc, index: &Index, out: &mut Out) {
    let r = &doc.outputs;
    for (k, gid) in r.neurons.iter().enumerate() {
        if !index.by_gid.contains_key(gid) && !index.shadow.contains(gid) {
            out.push(
                Rule::UnknownReference,
                format!("outputs.neurons[{k}]"),
                format!("no neuron with global id {gid}"),
            );
        }
    }
    for (o, row) in r.weights.iter().enumerate() {
        if row.len() != r.neurons.len() {
            out.push(
                Rule::ReadoutShape,
                format!("outputs.weights[{o}]"),
                format!(
                    "{} weights for {} readout neurons",
                    row.len(),
                    r.neurons.len()
                ),
            );
        }
        if let Some(c) = row.iter().position(|w| !w.is_finite()) {
            out.push(
                Rule::ReadoutShape,
                format!("outputs.weights[{o}][{c}]"),
                "weight is not finite",
            );
        }
    }
    if !r.bias.is_empty() && r.bias.len() != r.weights.len() {
        out.push(
            Rule::ReadoutShape,
            "outputs.bias",
            format!("{} biases for {} outputs", r.bias.len(), r.weights.len()),
        );
    }
    if !r.output_names.is_empty() && r.output_names.len() != r.weights.len() {
        out.push(
            Rule::ReadoutShape,
            "outputs.output_names",
            format!(
                "{} names for {} outputs",
                r.output_names.len(),
                r.weights.len()
            ),
        );
    }
    if !r.weights.is_empty() {
        for (name, v) in [("tau_out_ms", r.tau_out_ms), ("dt_ms", r.dt_ms)] {
            if !(v.is_finite() && v > 0.0) {
                out.push(
                    Rule::ReadoutShape,
                    format!("outputs.{name}"),
                    format!("{name} must be > 0, found {v}"),
                );
            }
        }
        if !r.gain.is_finite() {
            out.push(Rule::ReadoutShape, "outputs.gain", "gain is not finite");
        }
    }
}

/// Advisory rules (never block an export): core-mask cores without targets (V7), TAU2 neurons
/// on cores with IF_TAU2_N = IF_TAU1_N (V13), (core, type) pairs in use without a quantisation
/// unit weight (V12).
pub fn warnings(doc: &Doc) -> Vec<Violation> {
    let mut out = Out(Vec::new());
    let pos = |gid: u32| {
        doc.neuron_by_gid(gid)
            .filter(|n| in_range(n.chip, n.core, n.neuron))
            .map(|n| (n.chip, n.core))
    };
    let mut input_cores: BTreeMap<usize, BTreeSet<u32>> = BTreeMap::new();
    let mut used: BTreeSet<(u32, u32, u32)> = BTreeSet::new();
    for c in &doc.connections {
        let Some((post_chip, post_core)) = pos(c.post) else {
            continue;
        };
        used.insert((post_chip, post_core, c.syn_type));
        if let Source::Input(j) = c.pre {
            input_cores.entry(j as usize).or_default().insert(post_core);
        }
    }
    for (j, inp) in doc.inputs.iter().enumerate() {
        let targets = input_cores.get(&j).cloned().unwrap_or_default();
        let extra: Vec<u32> = (0..CORES_PER_CHIP)
            .filter(|k| inp.core_mask & (1 << k) != 0 && !targets.contains(k))
            .collect();
        if !extra.is_empty() {
            out.push(
                Rule::CoreMaskExtra,
                format!("inputs[{j}].core_mask"),
                format!("core mask includes cores {extra:?} where the input has no target"),
            );
        }
    }
    for (k, n) in doc.neurons.iter().enumerate() {
        if n.leak == Leak::Tau2
            && let Some(core) = doc.core(n.chip, n.core)
            && core.biases.get("IF_TAU1_N") == core.biases.get("IF_TAU2_N")
        {
            out.push(
                Rule::Tau2SameAsTau1,
                format!("neurons[{k}].leak"),
                "TAU2 neuron on a core whose IF_TAU2_N equals IF_TAU1_N",
            );
        }
    }
    let stated: BTreeSet<(u32, u32, u32)> = doc
        .quantisation
        .unit_weights
        .iter()
        .map(|u| (u.chip, u.core, u.syn_type))
        .collect();
    for key in used.difference(&stated) {
        out.push(
            Rule::UnitWeightMissing,
            "quantisation.unit_weights",
            format!(
                "no unit weight for chip {} core {} type {}",
                key.0, key.1, key.2
            ),
        );
    }
    out.0
}
