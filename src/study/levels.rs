//! The perturbation levels a robustness study visits (docs/design.md §5).

use serde::{Deserialize, Serialize};

use crate::chip::{MismatchMode, Perturbation};

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
    /// Also every combination across kinds (values of 0 stand for "off").
    pub grid: bool,
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
}
