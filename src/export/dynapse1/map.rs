//! Map a trained [`Network`] onto a DYNAP-SE1 board: placement, quantisation of the weights into
//! CAM counts, per-core biases and the host readout, as an export [`Doc`] (docs/design.md §7).
//!
//! Conventions of this mapper (also written into the document's `quantisation.notes`):
//! - Placement: model neuron i goes to the i-th free slot, filling chip 0 core 0 .. core 3, then
//!   chip 2 core 0 .. core 3 ([`USED_CHIPS`]). A recurrent network has connections both ways
//!   between any two chips it uses, and rule V10 forbids a left chip {0, 2} to reach a right chip
//!   {1, 3}, so it can use the two left chips only (2 x 1023 slots less the input tags; the right
//!   pair {1, 3} would hold as many). Never placed: (core 0, neuron 0) of every chip (empty
//!   CAMs listen to that tag) and the input tag slots (see below), on every chip. All neurons
//!   share one parameter set, so every used core gets the same biases (apart from the unit
//!   weights, which are per core).
//! - Inputs: an event rate cannot be negative, so model channel k becomes two virtual channels
//!   ([`rectified_projection`]): 2k fires for max(c_k, 0) with the weights P, 2k + 1 for
//!   max(-c_k, 0) with the weights -P. Virtual channel `v` owns the tag slot number `1023 - v`
//!   (core 3, neuron 255 - v for the first channels). That slot is reserved on every chip, so no
//!   physical neuron ever carries an input's tag and the conservative aliasing rule holds. An
//!   FPGA virtual neuron targets one chip only, so one virtual input is created per (virtual
//!   channel, chip) pair that has at least one surviving input connection; its core mask is the
//!   set of cores of that chip with targets. `InputSpec::channel` is the virtual channel, the
//!   label is "ch<k>+@chip<chip>" or "ch<k>-@chip<chip>".
//! - Synapse types: W_fast positive -> AMPA (3), negative -> GABA_A (1); W_slow positive -> NMDA (2),
//!   negative -> GABA_B (0); input projection positive -> AMPA (3), negative -> GABA_A (1).
//!   W_fast is not exported when `params.use_fast` is false.
//! - Unit weight per (post core, type): `unit = q-quantile of |w| / max_count` over all nonzero
//!   trained weights of that type into that core (`q = unit_quantile`, nearest rank; q = 1 is
//!   the largest weight); `count = min(round(|w| / unit), max_count)`, dropped when 0.
//! - Inputs share the (core, type) unit of the recurrent weights (they are AMPA / GABA_A like
//!   W_fast) through a host-side encoding scale per virtual neuron (`InputSpec::scale`, the
//!   factor on its event rate): `scale = q-quantile of |w| / unit over its targets /
//!   input_max_count`, `count = min(round(|w| / (unit scale)), input_max_count)`.
//! - Fan-in: per post neuron, W_fast candidates are first taken by decreasing |w| while they fit
//!   in `fast_cams` entries; then every remaining candidate (inputs included) is taken by
//!   decreasing |w| while the running CAM total stays within `cam_budget` (a candidate that does
//!   not fit is pruned, smaller ones may still fit).
//! - Fan-out: a source neuron reaching more than 3 chips loses its connections to the chips with
//!   the smallest kept |w| mass.
//! - Aliasing (conservative rule): neurons on different chips share (core, neuron) tags; within
//!   one target core each tag keeps the connections of the source chip with the largest kept |w|
//!   mass into that core, the other chips' connections are dropped.
//! - Floats written into the document are rounded to 9 significant digits, so the JSON round trip
//!   is exact.
//! - Dropped mass (per post neuron) = |w| of every trained weight that is not in the document:
//!   rounded to 0, pruned by the CAM budget, or pruned by the fan-out rule.
//! - Bias currents (ASSUMPTION, nominal, uncalibrated): unit-weight currents are proportional to the
//!   unit weights with one board-wide factor chosen so that the largest unit weight maps to
//!   `MapOptions::max_unit_current_a`; currents are clamped to the representable range (noted).
//!   Membrane/synapse taus come from `net.params` (ms -> s); DPI gains from [`MapOptions`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::export::dynapse1::biases::{IntendedCore, core_biases, max_current_a, min_current_a};
use crate::export::dynapse1::doc::{
    Bias, CORES_PER_CHIP, Connection, CoreConfig, Doc, InputSpec, NEURONS_PER_CORE,
    NeuronPlacement, Readout, Source, SynType, USABLE_SRAMS, UnitWeight, global_id,
};
use crate::snn::network::Network;

/// Slots per chip (cores x neurons).
const SLOTS_PER_CHIP: u32 = CORES_PER_CHIP * NEURONS_PER_CORE;

/// The chips the mapper fills, in order: the two left chips. A recurrent network connects its
/// chips both ways, and rule V10 forbids left {0, 2} -> right {1, 3}, so no network may use a
/// left and a right chip together.
pub const USED_CHIPS: [u32; 2] = [0, 2];

/// Options of [`map_network`].
#[derive(Debug, Clone, PartialEq)]
pub struct MapOptions {
    /// CAM entries a neuron may use (1..=64).
    pub cam_budget: u32,
    /// Count given to a weight at the unit quantile of its (core, type) (1..=64).
    pub max_count: u32,
    /// The same for input connections, whose unit is the core's times the input's scale: an
    /// input channel costs one connection per neuron, so it can afford finer counts (1..=64).
    pub input_max_count: u32,
    /// unit = quantile(|w|, unit_quantile) / max_count per (core, type); larger weights clip
    /// to `max_count`. 1.0: the largest weight sets the unit.
    pub unit_quantile: f64,
    /// CAM entries per neuron given to W_fast first (by decreasing |w|); the remaining budget is
    /// then filled from every other candidate by decreasing |w|.
    pub fast_cams: u32,
    /// Nominal current (A) of the largest unit weight on the board. ASSUMPTION: uncalibrated.
    pub max_unit_current_a: f64,
    /// Membrane DPI gain I_th / I_tau (howto: 2-3).
    pub mem_gain: f64,
    /// Synaptic DPI gain I_th / I_tau.
    pub syn_gain: f64,
    /// How each neuron's CAM entries are shared out.
    pub policy: FanInPolicy,
}

/// How a neuron's CAM budget is shared out among its candidate connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanInPolicy {
    /// W_fast first within `fast_cams`, then every other candidate (inputs included) by
    /// decreasing |w|: the best post-hoc fit of a dense network.
    #[default]
    Greedy,
    /// Inputs first, then W_fast capped at `fast_cams`, then W_slow in what is left, each by
    /// decreasing |w|; the AMPA and GABA_A units of a core are tied (the larger of the two). The
    /// inputs' and W_fast's share of a neuron then never depends on W_slow, so hardware-aware
    /// training can fix them once, and the ON and OFF channels of an input get equal counts and
    /// exactly opposite weights (the deployed network computes a signed input projection).
    Reserved,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            cam_budget: 64,
            max_count: 4,
            input_max_count: 16,
            unit_quantile: 1.0,
            fast_cams: 16,
            max_unit_current_a: 100e-12,
            mem_gain: 2.0,
            syn_gain: 1.0,
            policy: FanInPolicy::Greedy,
        }
    }
}

/// Why a network could not be mapped.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MapError {
    #[error(
        "network has {neurons} neurons, the board holds {capacity} for a recurrent network: \
         rule V10 forbids connections from the left chips {{0, 2}} to the right chips {{1, 3}}, so \
         it uses chips 0 and 2 only (2 x 4 cores x 256 neurons, minus neuron 0 of core 0 and the \
         input tags on each)"
    )]
    TooLarge { neurons: usize, capacity: usize },
    #[error("{0} input channels need twice as many input tags (ON and OFF); at most 1022")]
    TooManyInputs(usize),
    #[error("invalid network: {0}")]
    Shape(String),
    /// The mapping places W_fast and W_slow on the chip's fast and slow synapse types; further
    /// types (`Network::extra_synapses`) have no place there.
    #[error("{0}")]
    SynapseTypes(String),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("bias encoding failed for chip {chip} core {core}: {message}")]
    Bias {
        chip: u32,
        core: u32,
        message: String,
    },
}

/// Numbers describing the quality of a mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapReport {
    pub neurons_used: usize,
    pub cores_used: usize,
    pub inputs_used: usize,
    pub connections: usize,
    /// Largest CAM total of any neuron.
    pub max_fan_in: u32,
    /// Dropped |w| mass / total |w| mass (all three matrices).
    pub pruned_weight_fraction: f64,
    /// ||W_eff - W||_F / ||W||_F (0 when ||W|| = 0 and W_eff = 0).
    pub rel_error_fast: f64,
    pub rel_error_slow: f64,
    pub rel_error_input: f64,
    /// Dropped |w| mass per model neuron (as post), length N.
    pub dropped_mass: Vec<f64>,
    /// Notes such as clamped bias currents.
    pub notes: Vec<String>,
}

/// The mapped document and its report.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub doc: Doc,
    pub report: MapReport,
}

/// Neurons the mapper can place when `n_in` input tags are reserved: the slots of the chips in
/// [`USED_CHIPS`] less (core 0, neuron 0) and the input tags on each.
pub fn capacity(n_in: usize) -> usize {
    USED_CHIPS.len() * ((SLOTS_PER_CHIP - 1) as usize - n_in)
}

/// The input projection over rectified channels, N x 2C: an event rate cannot be negative, so
/// model channel k is sent as two virtual channels, 2k carrying max(c_k, 0) with the weights P and
/// 2k + 1 carrying max(-c_k, 0) with the weights -P (P c = P c+ - P c-).
pub fn rectified_projection(p: &[f32], n: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * 2 * c];
    for i in 0..n {
        for ch in 0..c {
            out[i * 2 * c + 2 * ch] = p[i * c + ch];
            out[i * 2 * c + 2 * ch + 1] = -p[i * c + ch];
        }
    }
    out
}

/// Slot number (256*core + neuron) of virtual input channel `ch`'s tag.
fn input_slot(ch: usize) -> u32 {
    SLOTS_PER_CHIP - 1 - ch as u32
}

/// (chip, core, neuron) of the first `n` free slots.
fn place(n: usize, n_in: usize) -> Vec<(u32, u32, u32)> {
    let reserved_from = SLOTS_PER_CHIP - n_in as u32;
    let mut out = Vec::with_capacity(n);
    'outer: for chip in USED_CHIPS {
        for slot in 1..reserved_from {
            if out.len() == n {
                break 'outer;
            }
            out.push((chip, slot / NEURONS_PER_CORE, slot % NEURONS_PER_CORE));
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Pre {
    Neuron(usize),
    Input(usize),
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    pre: Pre,
    post: usize,
    ty: SynType,
    w: f64,
    count: u32,
}

/// `x` rounded to 9 significant digits (exact JSON round trip).
fn r9(x: f64) -> f64 {
    if x.is_finite() {
        format!("{x:.8e}").parse().unwrap_or(x)
    } else {
        x
    }
}

fn fast_type(w: f64) -> SynType {
    if w > 0.0 {
        SynType::Ampa
    } else {
        SynType::GabaA
    }
}

fn slow_type(w: f64) -> SynType {
    if w > 0.0 {
        SynType::Nmda
    } else {
        SynType::GabaB
    }
}

fn frob_rel(eff: &[f64], w: &[f64]) -> f64 {
    let num: f64 = eff.iter().zip(w).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = w.iter().map(|b| b * b).sum();
    if den > 0.0 {
        (num / den).sqrt()
    } else if num > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// (chip, core, neuron) of each model neuron.
type Slots = [(u32, u32, u32)];
/// A unit weight's key: (chip, core, synapse type).
type UnitKey = (u32, u32, SynType);

/// Map `net` onto the board. See the module documentation for every convention. One pass per
/// step: candidates, units, input scales, counts, fan-in, fan-out, aliasing, then the document
/// (inputs, connections, placement, biases, readout) and the report.
pub fn map_network(net: &Network, opts: &MapOptions) -> Result<Mapped, MapError> {
    check_options(opts)?;
    let n = net.n;
    // Virtual (rectified) input channels: two per model channel.
    let c = 2 * net.n_in;
    check_fits(net, c)?;
    let slots = place(n, c);

    let p = rectified_projection(&net.input_projection(), n, net.n_in);
    let mut cands = candidates(net, &p, c);
    let total_mass: f64 = cands.iter().map(|k| k.w.abs()).sum();
    let units = unit_weights(&cands, &slots, opts);
    let input_scale = input_scales(&cands, &slots, &units, opts);
    assign_counts(&mut cands, &slots, &units, &input_scale, opts);
    let mut dropped = vec![0.0f64; n];
    let mut kept = fan_in(cands, n, opts, &mut dropped);
    fan_out(&mut kept, &slots, &mut dropped);
    aliasing(&mut kept, &slots, &mut dropped);

    let mut doc = Doc::new();
    doc.board.cam_budget_per_neuron = opts.cam_budget;
    let input_index = inputs(&mut doc, &kept, &slots, &input_scale);
    let fan_in = connections(&mut doc, kept, &slots, &input_index, n);
    placement(&mut doc, &slots);
    let (cores_used, scale, notes) = biases(&mut doc, net, &slots, &units, opts)?;
    doc.outputs = readout(net, &slots);
    conventions(&mut doc);

    let report = report(
        net, &doc, &p, c, &fan_in, cores_used, total_mass, dropped, &notes,
    );
    quantisation_notes(&mut doc, &report, opts, scale, notes);
    Ok(Mapped { doc, report })
}

fn check_options(opts: &MapOptions) -> Result<(), MapError> {
    if ![opts.cam_budget, opts.max_count, opts.input_max_count]
        .iter()
        .all(|v| (1..=64).contains(v))
    {
        return Err(MapError::Options(format!(
            "cam_budget {}, max_count {} and input_max_count {} must be in 1..=64",
            opts.cam_budget, opts.max_count, opts.input_max_count
        )));
    }
    if !(opts.unit_quantile > 0.0 && opts.unit_quantile <= 1.0) {
        return Err(MapError::Options(format!(
            "unit_quantile must be in (0, 1], got {}",
            opts.unit_quantile
        )));
    }
    if opts.fast_cams > opts.cam_budget {
        return Err(MapError::Options(format!(
            "fast_cams {} exceeds cam_budget {}",
            opts.fast_cams, opts.cam_budget
        )));
    }
    if !(opts.max_unit_current_a.is_finite() && opts.max_unit_current_a > 0.0) {
        return Err(MapError::Options("max_unit_current_a must be > 0".into()));
    }
    Ok(())
}

/// The network fits the board with `c` virtual input channels, and its matrices their shapes.
fn check_fits(net: &Network, c: usize) -> Result<(), MapError> {
    if c > (SLOTS_PER_CHIP - 2) as usize {
        return Err(MapError::TooManyInputs(net.n_in));
    }
    let cap = capacity(c);
    if net.n > cap {
        return Err(MapError::TooLarge {
            neurons: net.n,
            capacity: cap,
        });
    }
    net.validate_shapes()
        .map_err(|e| MapError::Shape(e.to_string()))?;
    net.require_two_synapse_types("the DYNAP-SE1 mapping")
        .map_err(|e| MapError::SynapseTypes(e.to_string()))
}

/// Every nonzero trained weight, per post neuron: W_fast (when used), W_slow, then the rectified
/// input projection `p` (N x c).
fn candidates(net: &Network, p: &[f32], c: usize) -> Vec<Cand> {
    let n = net.n;
    let mut cands: Vec<Cand> = Vec::new();
    let mut push = |pre: Pre, post: usize, w: f64, ty: fn(f64) -> SynType| {
        if w != 0.0 {
            cands.push(Cand {
                pre,
                post,
                ty: ty(w),
                w,
                count: 0,
            });
        }
    };
    for post in 0..n {
        if net.params.use_fast {
            for pre in 0..n {
                push(
                    Pre::Neuron(pre),
                    post,
                    net.w_fast[pre * n + post] as f64,
                    fast_type,
                );
            }
        }
        for pre in 0..n {
            push(
                Pre::Neuron(pre),
                post,
                net.w_slow[pre * n + post] as f64,
                slow_type,
            );
        }
        for ch in 0..c {
            push(Pre::Input(ch), post, p[post * c + ch] as f64, fast_type);
        }
    }
    cands
}

/// `quantile(v, q) / max_count`, the quantile by nearest rank: the smallest value with at least
/// a fraction q of the values <= it.
fn quantile_unit(mut v: Vec<f64>, q: f64, max_count: u32) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] / max_count as f64
}

/// Unit weight per (chip, core, type) = quantile of |w| / max_count, over the recurrent weights
/// of that type into that core (over the inputs where it has none).
fn unit_weights(cands: &[Cand], slots: &Slots, opts: &MapOptions) -> BTreeMap<UnitKey, f64> {
    let mut rec_mags: BTreeMap<UnitKey, Vec<f64>> = BTreeMap::new();
    let mut in_mags: BTreeMap<UnitKey, Vec<f64>> = BTreeMap::new();
    for k in cands {
        let (chip, core, _) = slots[k.post];
        let m = match k.pre {
            Pre::Neuron(_) => &mut rec_mags,
            Pre::Input(_) => &mut in_mags,
        };
        m.entry((chip, core, k.ty)).or_default().push(k.w.abs());
    }
    for (key, v) in in_mags {
        rec_mags.entry(key).or_insert(v);
    }
    let mut units: BTreeMap<UnitKey, f64> = rec_mags
        .into_iter()
        .map(|(key, v)| {
            (
                key,
                r9(quantile_unit(v, opts.unit_quantile, opts.max_count)),
            )
        })
        .collect();
    if opts.policy == FanInPolicy::Reserved {
        let cores: BTreeSet<(u32, u32)> =
            units.keys().map(|&(chip, core, _)| (chip, core)).collect();
        for (chip, core) in cores {
            let (a, g) = ((chip, core, SynType::Ampa), (chip, core, SynType::GabaA));
            let tied = units
                .get(&a)
                .copied()
                .unwrap_or(0.0)
                .max(units.get(&g).copied().unwrap_or(0.0));
            for key in [a, g] {
                if let Some(u) = units.get_mut(&key) {
                    *u = tied;
                }
            }
        }
    }
    units
}

/// Input scale per (channel, chip): the same quantile rule on |w| / unit, so the inputs use the
/// counts 1..input_max_count whatever the recurrent units are.
fn input_scales(
    cands: &[Cand],
    slots: &Slots,
    units: &BTreeMap<UnitKey, f64>,
    opts: &MapOptions,
) -> BTreeMap<(usize, u32), f64> {
    let mut in_ratio: BTreeMap<(usize, u32), Vec<f64>> = BTreeMap::new();
    for k in cands {
        if let Pre::Input(ch) = k.pre {
            let (chip, core, _) = slots[k.post];
            in_ratio
                .entry((ch, chip))
                .or_default()
                .push(k.w.abs() / units[&(chip, core, k.ty)]);
        }
    }
    in_ratio
        .into_iter()
        .map(|(key, v)| {
            let s =
                quantile_unit(v, opts.unit_quantile, opts.input_max_count).max(f64::MIN_POSITIVE);
            (key, r9(s))
        })
        .collect()
}

/// count = min(round(|w| / unit), cap) of every candidate (unit x scale for inputs).
fn assign_counts(
    cands: &mut [Cand],
    slots: &Slots,
    units: &BTreeMap<UnitKey, f64>,
    input_scale: &BTreeMap<(usize, u32), f64>,
    opts: &MapOptions,
) {
    for k in cands.iter_mut() {
        let (chip, core, _) = slots[k.post];
        let (unit, cap) = match k.pre {
            Pre::Input(ch) => (
                units[&(chip, core, k.ty)] * input_scale[&(ch, chip)],
                opts.input_max_count,
            ),
            Pre::Neuron(_) => (units[&(chip, core, k.ty)], opts.max_count),
        };
        k.count = ((k.w.abs() / unit).round() as u32).min(cap);
    }
}

/// Fan-in: per post, in the order of `opts.policy` ([`FanInPolicy`]), each by decreasing |w|
/// within the CAM budget (a candidate that does not fit is pruned, smaller ones may still fit).
/// Candidates with count 0 and pruned ones add their |w| to `dropped[post]`.
fn fan_in(cands: Vec<Cand>, n: usize, opts: &MapOptions, dropped: &mut [f64]) -> Vec<Cand> {
    let mut by_post: Vec<Vec<Cand>> = vec![Vec::new(); n];
    for k in cands {
        if k.count == 0 {
            dropped[k.post] += k.w.abs();
        } else {
            by_post[k.post].push(k);
        }
    }
    let is_fast = |k: &Cand| {
        matches!(k.pre, Pre::Neuron(_)) && matches!(k.ty, SynType::Ampa | SynType::GabaA)
    };
    let mut kept: Vec<Cand> = Vec::new();
    for list in by_post.iter_mut() {
        list.sort_by(|a, b| b.w.abs().total_cmp(&a.w.abs()).then(a.pre.cmp(&b.pre)));
        let mut used = 0u32;
        let mut fast_used = 0u32;
        let mut take = |k: &Cand, cap: u32, fast_cap: bool| -> bool {
            let fits =
                used + k.count <= cap && (!fast_cap || fast_used + k.count <= opts.fast_cams);
            if fits {
                used += k.count;
                if is_fast(k) {
                    fast_used += k.count;
                }
            }
            fits
        };
        match opts.policy {
            FanInPolicy::Greedy => {
                let mut taken = vec![false; list.len()];
                for (j, k) in list.iter().enumerate() {
                    if is_fast(k) && take(k, opts.fast_cams, false) {
                        taken[j] = true;
                        kept.push(*k);
                    }
                }
                for (j, k) in list.iter().enumerate() {
                    if taken[j] {
                        continue;
                    }
                    if take(k, opts.cam_budget, false) {
                        kept.push(*k);
                    } else {
                        dropped[k.post] += k.w.abs();
                    }
                }
            }
            FanInPolicy::Reserved => {
                let is_input = |k: &Cand| matches!(k.pre, Pre::Input(_));
                let classes: [&dyn Fn(&Cand) -> bool; 3] =
                    [&is_input, &is_fast, &|k: &Cand| !is_input(k) && !is_fast(k)];
                for class in classes {
                    for k in list.iter().filter(|k| class(k)) {
                        if take(k, opts.cam_budget, is_fast(k)) {
                            kept.push(*k);
                        } else {
                            dropped[k.post] += k.w.abs();
                        }
                    }
                }
            }
        }
    }
    kept
}

/// Fan-out: at most 3 target chips per source neuron; the chips with the least kept |w| mass go.
fn fan_out(kept: &mut Vec<Cand>, slots: &Slots, dropped: &mut [f64]) {
    let mut chip_mass: BTreeMap<usize, BTreeMap<u32, f64>> = BTreeMap::new();
    for k in kept.iter() {
        if let Pre::Neuron(pre) = k.pre {
            *chip_mass
                .entry(pre)
                .or_default()
                .entry(slots[k.post].0)
                .or_default() += k.w.abs();
        }
    }
    let mut banned: BTreeSet<(usize, u32)> = BTreeSet::new();
    for (pre, chips) in &chip_mass {
        if chips.len() > USABLE_SRAMS as usize {
            let mut v: Vec<(u32, f64)> = chips.iter().map(|(a, b)| (*a, *b)).collect();
            v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            for (chip, _) in &v[..v.len() - USABLE_SRAMS as usize] {
                banned.insert((*pre, *chip));
            }
        }
    }
    kept.retain(|k| match k.pre {
        Pre::Neuron(pre) if banned.contains(&(pre, slots[k.post].0)) => {
            dropped[k.post] += k.w.abs();
            false
        }
        _ => true,
    });
}

/// Aliasing: within one target core, a (core, neuron) tag may come from one chip only; keep the
/// source chip with the largest kept |w| mass into that core, drop the others.
fn aliasing(kept: &mut Vec<Cand>, slots: &Slots, dropped: &mut [f64]) {
    let mut tag_mass: BTreeMap<(u32, u32, u32, u32), BTreeMap<u32, f64>> = BTreeMap::new();
    for k in kept.iter() {
        if let Pre::Neuron(pre) = k.pre {
            let (pc, pk, pn) = slots[pre];
            let (tc, tk, _) = slots[k.post];
            *tag_mass
                .entry((tc, tk, pk, pn))
                .or_default()
                .entry(pc)
                .or_default() += k.w.abs();
        }
    }
    let winner: BTreeMap<(u32, u32, u32, u32), u32> = tag_mass
        .into_iter()
        .map(|(key, m)| {
            let best = m
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|x| x.0)
                .unwrap_or(0);
            (key, best)
        })
        .collect();
    kept.retain(|k| match k.pre {
        Pre::Neuron(pre) => {
            let (pc, pk, pn) = slots[pre];
            let (tc, tk, _) = slots[k.post];
            if winner[&(tc, tk, pk, pn)] == pc {
                true
            } else {
                dropped[k.post] += k.w.abs();
                false
            }
        }
        _ => true,
    });
}

/// Inputs: one virtual neuron per (channel, chip) with kept connections, into `doc.inputs`;
/// returns each one's index there.
fn inputs(
    doc: &mut Doc,
    kept: &[Cand],
    slots: &Slots,
    input_scale: &BTreeMap<(usize, u32), f64>,
) -> BTreeMap<(usize, u32), u32> {
    let mut input_masks: BTreeMap<(usize, u32), u32> = BTreeMap::new();
    for k in kept {
        if let Pre::Input(ch) = k.pre {
            *input_masks.entry((ch, slots[k.post].0)).or_default() |= 1 << slots[k.post].1;
        }
    }
    let mut input_index: BTreeMap<(usize, u32), u32> = BTreeMap::new();
    for (&(ch, chip), &mask) in &input_masks {
        let s = input_slot(ch);
        input_index.insert((ch, chip), doc.inputs.len() as u32);
        doc.inputs.push(InputSpec {
            channel: ch as u32,
            label: Some(format!(
                "ch{}{}@chip{chip}",
                ch / 2,
                if ch % 2 == 0 { '+' } else { '-' }
            )),
            tag_core: s / NEURONS_PER_CORE,
            tag_neuron: s % NEURONS_PER_CORE,
            target_chip: chip,
            core_mask: mask,
            scale: input_scale[&(ch, chip)],
        });
    }
    input_index
}

/// Connections, in (post, pre, type) order; each (pre, post, type) appears once by
/// construction. Returns the CAM entries used per neuron.
fn connections(
    doc: &mut Doc,
    mut kept: Vec<Cand>,
    slots: &Slots,
    input_index: &BTreeMap<(usize, u32), u32>,
    n: usize,
) -> Vec<u32> {
    let gid = |i: usize| global_id(slots[i].0, slots[i].1, slots[i].2);
    kept.sort_by_key(|k| (k.post, k.pre, k.ty.code()));
    let mut fan_in = vec![0u32; n];
    for k in &kept {
        fan_in[k.post] += k.count;
        let pre = match k.pre {
            Pre::Neuron(i) => Source::Neuron(gid(i)),
            Pre::Input(ch) => Source::Input(input_index[&(ch, slots[k.post].0)]),
        };
        doc.connections.push(Connection {
            pre,
            post: gid(k.post),
            syn_type: k.ty.code(),
            count: k.count,
            trained_weight: Some(r9(k.w)),
        });
    }
    fan_in
}

/// Placement: model neuron i at `slots[i]`.
fn placement(doc: &mut Doc, slots: &Slots) {
    for (i, &(chip, core, neuron)) in slots.iter().enumerate() {
        doc.neurons.push(NeuronPlacement {
            index: i as u32,
            chip,
            core,
            neuron,
            global_id: global_id(chip, core, neuron),
            leak: Default::default(),
            population: None,
            intended: BTreeMap::new(),
        });
    }
}

/// Biases for every used core, and the unit weights into `doc.quantisation`. Returns the
/// number of cores used, the current per unit weight (A) and notes on clamped currents.
fn biases(
    doc: &mut Doc,
    net: &Network,
    slots: &Slots,
    units: &BTreeMap<UnitKey, f64>,
    opts: &MapOptions,
) -> Result<(usize, f64, Vec<String>), MapError> {
    let used_cores: BTreeSet<(u32, u32)> = slots.iter().map(|s| (s.0, s.1)).collect();
    let max_unit = units.values().copied().fold(0.0f64, f64::max);
    let scale = if max_unit > 0.0 {
        opts.max_unit_current_a / max_unit
    } else {
        0.0
    };
    let mut notes: Vec<String> = Vec::new();
    let pr = &net.params;
    for &(chip, core) in &used_cores {
        let mut unit_a = [0.0f64; 4];
        let mut intended: BTreeMap<String, f64> = BTreeMap::new();
        intended.insert("tau_mem_ms".into(), r9(pr.tau_mem_ms as f64));
        intended.insert("tau_fast_ms".into(), r9(pr.tau_fast_ms as f64));
        intended.insert("tau_slow_ms".into(), r9(pr.tau_slow_ms as f64));
        for t in SynType::ALL {
            if let Some(&u) = units.get(&(chip, core, t)) {
                let mut a = u * scale;
                let (lo, hi) = (min_current_a(), max_current_a());
                if a < lo || a > hi {
                    let cl = a.clamp(lo, hi);
                    notes.push(format!(
                        "chip {chip} core {core} {}: unit current {a:e} A clamped to {cl:e} A",
                        t.samna_name()
                    ));
                    a = cl;
                }
                unit_a[t.code() as usize] = a;
                intended.insert(format!("unit_weight_{}", t.samna_name().to_lowercase()), u);
                doc.quantisation.unit_weights.push(UnitWeight {
                    chip,
                    core,
                    syn_type: t.code(),
                    unit: u,
                });
            }
        }
        let ic = IntendedCore {
            tau_mem_s: pr.tau_mem_ms as f64 * 1e-3,
            tau_fast_s: pr.tau_fast_ms as f64 * 1e-3,
            tau_slow_s: pr.tau_slow_ms as f64 * 1e-3,
            mem_gain: opts.mem_gain,
            syn_gain: opts.syn_gain,
            unit_weight_a: unit_a,
            t_ref_s: None,
            t_pulse_s: None,
        };
        let b = core_biases(&ic).map_err(|message| MapError::Bias {
            chip,
            core,
            message,
        })?;
        doc.cores.push(CoreConfig {
            chip,
            core,
            role: Some("recurrent population (shared parameters)".into()),
            biases: b
                .into_iter()
                .map(|(k, (co, fi))| (k, Bias::new(co, fi)))
                .collect(),
            intended,
        });
    }
    Ok((used_cores.len(), scale, notes))
}

/// Readout: y = W_outᵀ D r, on the host.
fn readout(net: &Network, slots: &Slots) -> Readout {
    let (n, nc, no) = (net.n, net.nc, net.n_out);
    let pr = &net.params;
    Readout {
        neurons: (0..n)
            .map(|i| global_id(slots[i].0, slots[i].1, slots[i].2))
            .collect(),
        weights: (0..no)
            .map(|o| {
                (0..n)
                    .map(|k| {
                        (0..nc)
                            .map(|q| net.w_out_teacher[q * no + o] as f64 * net.d[q * n + k] as f64)
                            .sum::<f64>()
                    })
                    .map(r9)
                    .collect()
            })
            .collect(),
        bias: Vec::new(),
        output_names: Vec::new(),
        tau_out_ms: r9(pr.tau_out_ms as f64),
        dt_ms: r9(pr.dt_ms as f64),
        gain: 1.0,
    }
}

/// Conventions specific to this mapper.
fn conventions(doc: &mut Doc) {
    let usage = &mut doc.conventions.synapse_usage;
    usage.insert(
        "AMPA".into(),
        "positive W_fast and positive input projection".into(),
    );
    usage.insert("GABA_A".into(), "negative W_fast and negative input projection (shunting in the simulators: an approximation of a linear negative weight)".into());
    usage.insert("NMDA".into(), "positive W_slow (gated by IF_NMDA_N)".into());
    usage.insert("GABA_B".into(), "negative W_slow".into());
}

/// How far the document's weights are from the trained ones, and what was pruned.
#[allow(clippy::too_many_arguments)]
fn report(
    net: &Network,
    doc: &Doc,
    p: &[f32],
    c: usize,
    fan_in: &[u32],
    cores_used: usize,
    total_mass: f64,
    dropped: Vec<f64>,
    notes: &[String],
) -> MapReport {
    let n = net.n;
    let (ef, es) = effective_weights(doc, n);
    let ei = effective_input(doc, n, c);
    let wf: Vec<f64> = if net.params.use_fast {
        net.w_fast.iter().map(|&x| x as f64).collect()
    } else {
        vec![0.0; n * n]
    };
    let ws: Vec<f64> = net.w_slow.iter().map(|&x| x as f64).collect();
    let pi: Vec<f64> = p.iter().map(|&x| x as f64).collect();
    let to64 = |v: Vec<f32>| v.into_iter().map(|x| x as f64).collect::<Vec<f64>>();
    let dropped_total: f64 = dropped.iter().sum();
    MapReport {
        neurons_used: n,
        cores_used,
        inputs_used: doc.inputs.len(),
        connections: doc.connections.len(),
        max_fan_in: fan_in.iter().copied().max().unwrap_or(0),
        pruned_weight_fraction: if total_mass > 0.0 {
            dropped_total / total_mass
        } else {
            0.0
        },
        rel_error_fast: frob_rel(&to64(ef), &wf),
        rel_error_slow: frob_rel(&to64(es), &ws),
        rel_error_input: frob_rel(&ei, &pi),
        dropped_mass: dropped,
        notes: notes.to_vec(),
    }
}

/// The quantisation section's method, statistics and notes.
fn quantisation_notes(
    doc: &mut Doc,
    report: &MapReport,
    opts: &MapOptions,
    scale: f64,
    notes: Vec<String>,
) {
    let q = &mut doc.quantisation;
    q.method = format!(
        "unit = quantile(|w|, {q}) / {m} per (core, type); count = min(round(|w| / unit), {m}), \
         dropped when 0; inputs: unit x scale, scale per (channel, chip) = quantile(|w| / unit, {q}) \
         / {mi}, counts up to {mi}; per neuron {order} within {b} CAMs; at most 3 target chips \
         per source",
        order = match opts.policy {
            FanInPolicy::Greedy => format!(
                "W_fast first within {f} CAMs, then the largest |w|",
                f = opts.fast_cams
            ),
            FanInPolicy::Reserved => format!(
                "inputs first, then W_fast (at most {f} CAMs), then W_slow, each by decreasing |w|; \
                 AMPA and GABA_A units of a core tied",
                f = opts.fast_cams
            ),
        },
        q = opts.unit_quantile,
        m = opts.max_count,
        mi = opts.input_max_count,
        b = opts.cam_budget
    );
    for (k, v) in [
        ("max_fan_in", report.max_fan_in as f64),
        ("pruned_weight_fraction", report.pruned_weight_fraction),
        ("relative_error_w_fast", report.rel_error_fast),
        ("relative_error_w_slow", report.rel_error_slow),
        ("relative_error_input", report.rel_error_input),
    ] {
        if v.is_finite() {
            q.stats.insert(k.into(), r9(v));
        }
    }
    q.notes.push(format!(
        "ASSUMPTION: unit-weight currents = unit * {scale:e} A (largest unit weight -> {:e} A); nominal, uncalibrated",
        opts.max_unit_current_a
    ));
    q.notes.push(
        "inputs: event rates cannot be negative, so model input k is sent as two virtual channels: 2k fires at scale x max(c_k, 0) and carries the weights P, 2k + 1 fires at scale x max(-c_k, 0) and carries -P; InputSpec::channel is the virtual channel"
            .into(),
    );
    q.notes.push(
        "inputs: one FPGA virtual neuron per (virtual channel, chip); virtual channel v uses tag slot 1023 - v, reserved on every chip"
            .into(),
    );
    q.notes.extend(notes);
}

/// Unit weight of (chip, core, type) stated in the document.
fn unit_lookup(doc: &Doc) -> BTreeMap<(u32, u32, u32), f64> {
    doc.quantisation
        .unit_weights
        .iter()
        .map(|u| ((u.chip, u.core, u.syn_type), u.unit))
        .collect()
}

fn signed(count: u32, unit: f64, code: u32) -> f64 {
    let s = if code == SynType::Ampa.code() || code == SynType::Nmda.code() {
        1.0
    } else {
        -1.0
    };
    s * count as f64 * unit
}

/// Global id -> (model index, chip, core) of every placed neuron with a model index below `n`.
pub fn placement_index(doc: &Doc, n: usize) -> BTreeMap<u32, (usize, u32, u32)> {
    doc.neurons
        .iter()
        .filter(|p| (p.index as usize) < n)
        .map(|p| (p.global_id, (p.index as usize, p.chip, p.core)))
        .collect()
}

/// Float matrices rebuilt from `doc` (count x unit x sign), both N x N `[pre][post]`: (w_fast from
/// AMPA and GABA_A, w_slow from NMDA and GABA_B). Neuron sources only; neurons are
/// indexed by their model index (`NeuronPlacement::index`, which must be < n). Connections with an
/// unknown neuron or missing unit weight are skipped.
pub fn effective_weights(doc: &Doc, n: usize) -> (Vec<f32>, Vec<f32>) {
    let idx = placement_index(doc, n);
    let units = unit_lookup(doc);
    let mut wf = vec![0f32; n * n];
    let mut ws = vec![0f32; n * n];
    for c in &doc.connections {
        let Source::Neuron(pg) = c.pre else { continue };
        let (Some(&(pre, _, _)), Some(&(post, chip, core))) = (idx.get(&pg), idx.get(&c.post))
        else {
            continue;
        };
        let Some(&unit) = units.get(&(chip, core, c.syn_type)) else {
            continue;
        };
        let w = signed(c.count, unit, c.syn_type) as f32;
        if c.syn_type == SynType::Ampa.code() || c.syn_type == SynType::GabaA.code() {
            wf[pre * n + post] += w;
        } else {
            ws[pre * n + post] += w;
        }
    }
    (wf, ws)
}

/// Effective input projection N x C (`[post][channel]`) rebuilt from the document's input
/// connections: scale x count x unit x sign.
pub fn effective_input(doc: &Doc, n: usize, c: usize) -> Vec<f64> {
    let idx = placement_index(doc, n);
    let units = unit_lookup(doc);
    let mut out = vec![0f64; n * c];
    for con in &doc.connections {
        let Source::Input(j) = con.pre else { continue };
        let Some(inp) = doc.inputs.get(j as usize) else {
            continue;
        };
        let ch = inp.channel as usize;
        let Some(&(post, chip, core)) = idx.get(&con.post) else {
            continue;
        };
        if ch >= c {
            continue;
        }
        if let Some(&unit) = units.get(&(chip, core, con.syn_type)) {
            out[post * c + ch] += inp.scale * signed(con.count, unit, con.syn_type);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::dynapse1::doc::from_str;
    use crate::export::dynapse1::validate::validate;
    use crate::snn::params::SnnParams;

    /// Small deterministic generator (xorshift), uniform in [-1, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn small_net(seed: u64) -> Network {
        let mut r = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let nc = 8;
        let w_in: Vec<f32> = (0..nc).map(|_| r.next()).collect();
        let w_out: Vec<f32> = (0..nc).map(|_| r.next()).collect();
        let mut net = Network::init(
            SnnParams {
                n: 60,
                ..Default::default()
            },
            w_in,
            w_out,
            nc,
            1,
            1,
            seed,
        )
        .unwrap();
        net.w_slow = (0..60 * 60).map(|_| 0.1 * r.next()).collect();
        net
    }

    #[test]
    fn map_small_network_is_valid() {
        for seed in [1u64, 2, 3] {
            let net = small_net(seed);
            let m = map_network(&net, &MapOptions::default()).unwrap();
            let v = validate(&m.doc);
            assert!(v.is_empty(), "violations: {v:?}");
            let mut per_post: BTreeMap<u32, u32> = BTreeMap::new();
            for c in &m.doc.connections {
                assert!((1..=64).contains(&c.count), "count {}", c.count);
                *per_post.entry(c.post).or_default() += c.count;
            }
            assert!(per_post.values().all(|&t| t <= 64));
            assert_eq!(
                m.report.max_fan_in,
                per_post.values().copied().max().unwrap()
            );
            assert_eq!(m.report.dropped_mass.len(), 60);
            assert!((0.0..=1.0).contains(&m.report.pruned_weight_fraction));
            assert!(m.report.rel_error_slow.is_finite() && m.report.rel_error_fast.is_finite());
            assert_eq!(m.report.cores_used, 1);
            assert!(!m.doc.inputs.is_empty());
            // Every (core, type) in use has a unit weight.
            assert!(
                crate::export::dynapse1::validate::warnings(&m.doc)
                    .iter()
                    .all(|w| w.rule != crate::export::dynapse1::validate::Rule::UnitWeightMissing)
            );
        }
    }

    #[test]
    fn map_multi_chip_network_is_valid() {
        // 1100 neurons span two chips; sparse random W_slow, no W_fast (keeps the test fast).
        let mut r = Lcg(7);
        let nc = 4;
        let n = 1100;
        let mut net = Network::init(
            SnnParams {
                n,
                ..Default::default()
            },
            (0..2 * nc).map(|_| r.next()).collect(),
            (0..nc).map(|_| r.next()).collect(),
            nc,
            2,
            1,
            7,
        )
        .unwrap();
        net.params.use_fast = false;
        net.w_slow = (0..n * n)
            .map(|_| {
                let x = r.next();
                if x.abs() > 0.99 { x } else { 0.0 }
            })
            .collect();
        let m = map_network(&net, &MapOptions::default()).unwrap();
        let v = validate(&m.doc);
        assert!(v.is_empty(), "violations: {:?}", &v[..v.len().min(5)]);
        // chips 0 and 2 only (V10): 1019 neurons fit chip 0 (1023 slots less the ON and OFF
        // tags of 2 channels), the other 81 go to chip 2
        let on = |chip: u32| m.doc.neurons.iter().filter(|p| p.chip == chip).count();
        assert_eq!((on(0), on(1), on(2), on(3)), (1019, 0, 81, 0));
        assert!(m.doc.cores.iter().all(|c| c.chip == 0 || c.chip == 2));
        assert!(m.doc.inputs.iter().any(|i| i.target_chip == 2));
        assert!(
            m.doc
                .inputs
                .iter()
                .all(|i| i.target_chip != 1 && i.target_chip != 3)
        );
        // both directions between the two chips are in use, which is why a right chip cannot be
        let chip_of = |g: u32| g / 1024;
        let pairs: BTreeSet<(u32, u32)> = m
            .doc
            .connections
            .iter()
            .filter_map(|c| match c.pre {
                Source::Neuron(g) => Some((chip_of(g), chip_of(c.post))),
                Source::Input(_) => None,
            })
            .collect();
        assert!(
            pairs.contains(&(0, 2)) && pairs.contains(&(2, 0)),
            "{pairs:?}"
        );
        assert_eq!(m.report.rel_error_fast, 0.0);
    }

    #[test]
    fn map_too_large_network_errors() {
        let n = capacity(2) + 1;
        let net = Network {
            params: SnnParams {
                n,
                ..Default::default()
            },
            n,
            nc: 1,
            n_in: 1,
            n_out: 1,
            d: vec![],
            f: vec![],
            w_fast: vec![],
            w_slow: vec![],
            w_in_teacher: vec![],
            w_out_teacher: vec![],
            input_override: None,
            method: Default::default(),
            extra_synapses: Vec::new(),
        };
        let err = map_network(&net, &MapOptions::default()).unwrap_err();
        // chips 0 and 2, 1023 slots each less the 2 input tags (ON and OFF of one channel)
        assert_eq!(
            err,
            MapError::TooLarge {
                neurons: n,
                capacity: 2 * (1023 - 2)
            }
        );
        assert_eq!(n, 2043);
        let text = err.to_string();
        for part in ["2043 neurons", "holds 2042", "V10", "chips 0 and 2"] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }

    #[test]
    fn map_effective_weights_match_counts() {
        let net = small_net(5);
        let m = map_network(&net, &MapOptions::default()).unwrap();
        let n = net.n;
        let (wf, ws) = effective_weights(&m.doc, n);
        let units = unit_lookup(&m.doc);
        let idx: BTreeMap<u32, &NeuronPlacement> =
            m.doc.neurons.iter().map(|p| (p.global_id, p)).collect();
        let mut seen_f = vec![false; n * n];
        let mut seen_s = vec![false; n * n];
        for c in &m.doc.connections {
            let Source::Neuron(pg) = c.pre else { continue };
            let (pre, post) = (idx[&pg], idx[&c.post]);
            let unit = units[&(post.chip, post.core, c.syn_type)];
            let want = signed(c.count, unit, c.syn_type) as f32;
            let (i, j) = (pre.index as usize, post.index as usize);
            if c.syn_type == 3 || c.syn_type == 1 {
                assert_eq!(wf[i * n + j], want);
                seen_f[i * n + j] = true;
            } else {
                assert_eq!(ws[i * n + j], want);
                seen_s[i * n + j] = true;
            }
            // Sign agrees with the trained weight.
            assert_eq!(want > 0.0, c.trained_weight.unwrap() > 0.0);
        }
        for k in 0..n * n {
            if !seen_f[k] {
                assert_eq!(wf[k], 0.0);
            }
            if !seen_s[k] {
                assert_eq!(ws[k], 0.0);
            }
        }
        // Report errors are consistent with the rebuilt matrices.
        let rel = frob_rel(
            &ws.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            &net.w_slow.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        );
        assert!((rel - m.report.rel_error_slow).abs() < 1e-12);
    }

    #[test]
    fn map_doc_round_trips_json() {
        let m = map_network(&small_net(9), &MapOptions::default()).unwrap();
        let text = m.doc.to_string_pretty();
        let back = from_str(&text).unwrap();
        assert_eq!(back, m.doc);
    }
}
