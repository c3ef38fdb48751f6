//! The perturbation levels a robustness study visits (docs/design.md §5).

use serde::{Deserialize, Serialize};

use crate::chip::{MismatchCv, MismatchMode, Perturbation};
use crate::snn::QuantScope;

/// What a level perturbs; with `value` it names the level in every table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum LevelKind {
    /// The unperturbed network (always evaluated, the reference).
    None,
    /// Mismatch in the paper's mode (tau_mem, tau_slow, V_th; F, D, W_slow).
    Mismatch,
    /// Mismatch of every parameter, W_fast, tau_fast and tau_out included.
    MismatchFull,
    /// Weight quantisation to `value` bits.
    Bits,
    /// Membrane noise, std in units of V_th - V_reset.
    Noise,
    /// Fraction of silenced neurons.
    Silence,
    /// A combination of several kinds (the grid option).
    Grid,
    /// DYNAP-SE1-like mismatch with its own sigma per parameter (the export's re-simulation).
    DynapMismatch,
    /// Quantisation in the paper's scope (W_fast left in float) to `value` bits.
    BitsPaper,
    /// One parameter mismatched at sigma `value`, all else nominal (the sensitivity table).
    OnlyMismatch,
    /// One matrix quantised to `value` bits, all else float (the sensitivity table).
    OnlyBits,
}

impl LevelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            LevelKind::None => "none",
            LevelKind::Mismatch => "mismatch",
            LevelKind::MismatchFull => "mismatch_full",
            LevelKind::Bits => "bits",
            LevelKind::Noise => "noise",
            LevelKind::Silence => "silence",
            LevelKind::Grid => "grid",
            LevelKind::DynapMismatch => "dynap_mismatch",
            LevelKind::BitsPaper => "bits_paper",
            LevelKind::OnlyMismatch => "only_mismatch",
            LevelKind::OnlyBits => "only_bits",
        }
    }
}

/// One level: a name and the perturbation every instance of it draws from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub kind: LevelKind,
    pub value: f64,
    /// For grid levels: a readable description (`mismatch=0.1,bits=4`).
    pub label: String,
    pub perturbation: Perturbation,
}

/// The lists of values per kind, as in the `[evaluation]` section.
#[derive(Clone, Debug, Default)]
pub struct LevelLists<'a> {
    pub mismatch: &'a [f32],
    pub mismatch_full: &'a [f32],
    pub bits: &'a [u32],
    pub noise: &'a [f32],
    pub silence: &'a [f32],
    /// Quantisation levels in the paper's scope (W_fast in float).
    pub bits_paper: &'a [u32],
    /// The sensitivity table: each parameter mismatched alone at this sigma (0: none) ...
    pub sensitivity_sigma: f32,
    /// ... and each matrix quantised alone to this many bits (0: none).
    pub sensitivity_bits: u32,
    /// Also every combination across kinds (values of 0 stand for "off").
    pub grid: bool,
}

/// The matrices the sensitivity table quantises one at a time.
pub const SENSITIVITY_MATRICES: [QuantScope; 4] = [
    QuantScope::F,
    QuantScope::D,
    QuantScope::WFast,
    QuantScope::WSlow,
];

/// The sensitivity levels: `mismatch[<parameter>]=sigma` and `bits[<matrix>]=b`.
fn sensitivity(l: &LevelLists, out: &mut Vec<Level>) {
    if l.sensitivity_sigma > 0.0 {
        for name in MismatchCv::SENSITIVITY {
            let mut lv = level(
                LevelKind::OnlyMismatch,
                l.sensitivity_sigma,
                Perturbation {
                    cv: MismatchCv::only(name, l.sensitivity_sigma),
                    ..Perturbation::default()
                },
            );
            lv.label = format!("mismatch[{name}]={}", lv.value);
            out.push(lv);
        }
    }
    if l.sensitivity_bits > 0 {
        for scope in SENSITIVITY_MATRICES {
            let mut lv = level(
                LevelKind::OnlyBits,
                l.sensitivity_bits as f32,
                Perturbation {
                    bits: Some(l.sensitivity_bits),
                    quant: scope,
                    ..Perturbation::default()
                },
            );
            lv.label = format!("bits[{}]={}", scope.as_str(), lv.value);
            out.push(lv);
        }
    }
}

/// The parameter or matrix of a sensitivity level (`v_th` of `mismatch[v_th]=0.2`).
pub fn sensitivity_target(label: &str) -> Option<&str> {
    let (_, rest) = label.split_once('[')?;
    Some(rest.split_once(']')?.0)
}

/// A level named `kind=value` (`unperturbed` for [`LevelKind::None`]).
pub fn level(kind: LevelKind, value: f32, p: Perturbation) -> Level {
    // Through the f32's shortest decimal form, so 0.05 stays 0.05 and not 0.0500000007.
    let value: f64 = value.to_string().parse().unwrap_or(value as f64);
    let label = match kind {
        LevelKind::None => "unperturbed".to_string(),
        _ => format!("{}={}", kind.as_str(), value),
    };
    Level {
        kind,
        value,
        label,
        perturbation: p,
    }
}

/// The unperturbed reference, then each listed value of each kind on its own, then (with
/// `grid`) every combination of two or more kinds.
pub fn levels(l: &LevelLists) -> Vec<Level> {
    let none = Perturbation::default();
    let mut out = vec![level(LevelKind::None, 0.0, none.clone())];
    for &m in l.mismatch {
        out.push(level(
            LevelKind::Mismatch,
            m,
            Perturbation {
                mismatch: m,
                mode: MismatchMode::Paper,
                ..none.clone()
            },
        ));
    }
    for &m in l.mismatch_full {
        out.push(level(
            LevelKind::MismatchFull,
            m,
            Perturbation {
                mismatch: m,
                mode: MismatchMode::Full,
                ..none.clone()
            },
        ));
    }
    for &b in l.bits {
        out.push(level(
            LevelKind::Bits,
            b as f32,
            Perturbation {
                bits: Some(b),
                ..none.clone()
            },
        ));
    }
    for &s in l.noise {
        out.push(level(
            LevelKind::Noise,
            s,
            Perturbation {
                noise: s,
                ..none.clone()
            },
        ));
    }
    for &p in l.silence {
        out.push(level(
            LevelKind::Silence,
            p,
            Perturbation {
                silence: p,
                ..none.clone()
            },
        ));
    }
    for &b in l.bits_paper {
        out.push(level(
            LevelKind::BitsPaper,
            b as f32,
            Perturbation {
                bits: Some(b),
                quant: QuantScope::Paper,
                ..none.clone()
            },
        ));
    }
    sensitivity(l, &mut out);
    if l.grid {
        let mism: Vec<(f32, MismatchMode)> = std::iter::once((0.0, MismatchMode::Paper))
            .chain(l.mismatch.iter().map(|&m| (m, MismatchMode::Paper)))
            .chain(l.mismatch_full.iter().map(|&m| (m, MismatchMode::Full)))
            .collect();
        let bits: Vec<Option<u32>> = std::iter::once(None)
            .chain(l.bits.iter().map(|&b| Some(b)))
            .collect();
        let noise: Vec<f32> = std::iter::once(0.0)
            .chain(l.noise.iter().copied())
            .collect();
        let silence: Vec<f32> = std::iter::once(0.0)
            .chain(l.silence.iter().copied())
            .collect();
        for &(m, mode) in &mism {
            for &b in &bits {
                for &s in &noise {
                    for &p in &silence {
                        let parts: Vec<String> = [
                            (m > 0.0).then(|| {
                                let k = if mode == MismatchMode::Full {
                                    "mismatch_full"
                                } else {
                                    "mismatch"
                                };
                                format!("{k}={m}")
                            }),
                            b.map(|b| format!("bits={b}")),
                            (s > 0.0).then(|| format!("noise={s}")),
                            (p > 0.0).then(|| format!("silence={p}")),
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        if parts.len() < 2 {
                            continue;
                        }
                        out.push(Level {
                            kind: LevelKind::Grid,
                            value: out.len() as f64,
                            label: parts.join(","),
                            perturbation: Perturbation {
                                mismatch: m,
                                mode,
                                bits: b,
                                noise: s,
                                silence: p,
                                cv: None,
                                quant: QuantScope::All,
                            },
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snn::{Network, SnnParams};

    #[test]
    fn single_kind_levels_then_grid_combinations() {
        let lists = LevelLists {
            mismatch: &[0.1, 0.2],
            bits: &[4],
            noise: &[],
            silence: &[0.4],
            ..Default::default()
        };
        let ls = levels(&lists);
        let names: Vec<&str> = ls.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            names,
            [
                "unperturbed",
                "mismatch=0.1",
                "mismatch=0.2",
                "bits=4",
                "silence=0.4"
            ]
        );
        assert_eq!(ls[3].perturbation.bits, Some(4));
        let grid = levels(&LevelLists {
            grid: true,
            ..lists
        });
        // Pairs and triples of {mismatch (2 values), bits (1), silence (1)}: 2 + 2 + 1 + 2 = 7.
        assert_eq!(grid.len(), 5 + 7);
        assert!(
            grid.iter()
                .any(|l| l.label == "mismatch=0.2,bits=4,silence=0.4")
        );
    }

    #[test]
    fn sensitivity_levels_perturb_one_thing_each() {
        let ls = levels(&LevelLists {
            bits_paper: &[4],
            sensitivity_sigma: 0.2,
            sensitivity_bits: 4,
            ..Default::default()
        });
        let names: Vec<&str> = ls.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(names[1], "bits_paper=4");
        assert_eq!(ls[1].perturbation.quant, QuantScope::Paper);
        assert_eq!(names[2], "mismatch[tau_mem]=0.2");
        assert_eq!(names[4], "mismatch[v_th]=0.2");
        assert_eq!(names[10], "bits[f]=4");
        assert_eq!(names[13], "bits[w_slow]=4");
        assert_eq!(ls.len(), 2 + 8 + 4);
        let v_th = &ls[4].perturbation.cvs();
        assert_eq!(
            (v_th.v_th, v_th.tau_mem, v_th.w_slow, v_th.w_in),
            (0.2, 0.0, 0.0, 0.0)
        );
        assert_eq!(sensitivity_target(names[4]), Some("v_th"));
        assert_eq!(sensitivity_target("mismatch=0.2"), None);
        // one matrix rounded, the others untouched
        let p = SnnParams {
            n: 12,
            ..Default::default()
        };
        let net = Network::init(p, vec![0.5; 2 * 3], vec![1.0; 3], 3, 2, 1, 7).unwrap();
        let q = ls[13].perturbation.nominal(&net);
        assert_eq!(
            (q.f.clone(), q.d.clone(), q.w_fast.clone()),
            (net.f.clone(), net.d.clone(), net.w_fast.clone())
        );
        let q = ls[11].perturbation.nominal(&net); // D only
        assert_ne!(q.d, net.d);
        assert_eq!(q.f, net.f);
    }
}
