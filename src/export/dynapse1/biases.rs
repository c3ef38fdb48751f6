//! Intended physical parameters -> per-core DYNAP-SE1 bias settings, through the NOMINAL
//! (uncalibrated) bias-generator mapping `I = I_max[coarse] * fine / 255` (samna/Rockpool
//! convention, coarse 7 = largest; reference/dynapse1.md §2.2, [`nominal_current_a`]).
//!
//! The physical relations are the subthreshold DPI relations used by the Rockpool dev simulator
//! (reference/dynapse1.md §1.5):
//! - DPI time constant: `tau = C * U_T / (kappa * I_tau)`;
//! - DPI gain: `f_gain = I_th / I_tau`;
//! - refractory period: `t_ref = V_on * C_ref / I_ref`;
//! - pulse width: `t_pulse = V_on * C_pulse / I_pulse`.
//!
//! Every constant below is a NOMINAL layout value taken from the simulators, not a measurement of
//! any chip. The reference note states that the nominal mapping is not calibrated (Rockpool even
//! applies an unexplained 1e-4 factor to `IF_TAU1_N`), so time constants and weights produced here
//! must be measured on the chip. There is no bias for the spike threshold (`Ispkthr` is a layout
//! constant), and the reference gives no formula from a physical weight to `PS_WEIGHT_*`, so unit
//! weights are taken as nominal weight currents `I_w` directly.

use std::collections::BTreeMap;

use crate::export::dynapse1::doc::{BIAS_NAMES, COARSE_IMAX_A, SynType, nominal_current_a};

/// Thermal voltage U_T = 25 mV (nominal, [RPdev] layout constant).
pub const U_T_V: f64 = 0.025;
/// Subthreshold slope factor of n-type transistors, 0.75 (nominal, [RPdev]).
pub const KAPPA_N: f64 = 0.75;
/// Subthreshold slope factor of p-type transistors, 0.66 (nominal, [RPdev]).
pub const KAPPA_P: f64 = 0.66;
/// kappa used in `tau = C U_T / (kappa I_tau)`: the mean of [`KAPPA_N`] and [`KAPPA_P`].
/// ASSUMPTION: the reference note lists both values but not which one each DPI uses.
pub const KAPPA: f64 = (KAPPA_N + KAPPA_P) / 2.0;
/// V_on = 0.7 V, used by the refractory-period and pulse-width relations (nominal, [RPdev]).
pub const V_ON_V: f64 = 0.7;
/// Membrane capacitance, 3 pF (nominal, [RPdev]).
pub const C_MEM_F: f64 = 3e-12;
/// Refractory capacitance, 1.5 pF (nominal, [RPdev]).
pub const C_REF_F: f64 = 1.5e-12;
/// Pulse-extender capacitance, 0.5 pF (nominal, [RPdev]).
pub const C_PULSE_F: f64 = 0.5e-12;
/// AMPA (fast excitatory) DPI capacitance, 24.5 pF (nominal, [RPdev]).
pub const C_AMPA_F: f64 = 24.5e-12;
/// NMDA (slow excitatory) DPI capacitance, 25 pF (nominal, [RPdev]).
pub const C_NMDA_F: f64 = 25e-12;
/// GABA_A (fast inhibitory) DPI capacitance, 24.5 pF (nominal, [RPdev]).
pub const C_GABA_A_F: f64 = 24.5e-12;
/// GABA_B (slow inhibitory) DPI capacitance, 25 pF (nominal, [RPdev]).
pub const C_GABA_B_F: f64 = 25e-12;

/// Smallest non-zero nominal current (coarse 0, fine 1), amperes.
pub fn min_current_a() -> f64 {
    COARSE_IMAX_A[0] / 255.0
}

/// Largest nominal current (coarse 7, fine 255), amperes.
pub fn max_current_a() -> f64 {
    COARSE_IMAX_A[7]
}

/// The (coarse 0..=7, fine 0..=255) pair whose nominal current is closest to `target_a`, by
/// relative error, searching all 8 x 256 pairs. A target of exactly 0 gives (0, 0). Errors when
/// the target is non-finite, negative, or outside `[min_current_a(), max_current_a()]` (with half a
/// fine step of slack at the bottom and 0.5 % at the top).
pub fn encode_current(target_a: f64) -> Result<(u32, u32), String> {
    let (lo, hi) = (min_current_a(), max_current_a());
    if !target_a.is_finite() {
        return Err(format!("bias current {target_a} A is not finite"));
    }
    if target_a < 0.0 {
        return Err(format!(
            "bias current {target_a:e} A is negative; representable range is 0 or [{lo:e}, {hi:e}] A"
        ));
    }
    if target_a == 0.0 {
        return Ok((0, 0));
    }
    if target_a < 0.5 * lo || target_a > hi * 1.005 {
        return Err(format!(
            "bias current {target_a:e} A is outside the representable nominal range 0 or [{lo:e}, {hi:e}] A"
        ));
    }
    let mut best = (0u32, 0u32);
    let mut best_err = f64::INFINITY;
    for coarse in 0..8u32 {
        for fine in 1..256u32 {
            let i = nominal_current_a(coarse, fine).expect("in range");
            let err = (i - target_a).abs() / target_a;
            if err < best_err {
                best_err = err;
                best = (coarse, fine);
            }
        }
    }
    Ok(best)
}

/// Leak current for a DPI time constant: `I_tau = C U_T / (kappa tau)` with the nominal
/// [`U_T_V`] and [`KAPPA`]. Returns NaN/inf for non-positive or non-finite inputs; the encoder
/// rejects those.
pub fn tau_to_current(tau_s: f64, capacitance_f: f64) -> f64 {
    capacitance_f * U_T_V / (KAPPA * tau_s)
}

/// Gain ("THR") current for a DPI: `I_th = f_gain * I_tau` (reference §1.5; the ctxctl howto sets
/// the membrane gain to 2–3x the TAU current).
pub fn gain_to_current(gain: f64, i_tau_a: f64) -> f64 {
    gain * i_tau_a
}

/// Refractory current: `I_ref = V_on C_ref / t_ref` with nominal [`V_ON_V`], [`C_REF_F`].
pub fn refractory_to_current(t_ref_s: f64) -> f64 {
    V_ON_V * C_REF_F / t_ref_s
}

/// Pulse-width current: `I_pulse = V_on C_pulse / t_pulse` with nominal [`V_ON_V`], [`C_PULSE_F`].
pub fn pulse_width_to_current(t_pulse_s: f64) -> f64 {
    V_ON_V * C_PULSE_F / t_pulse_s
}

/// Intended physical parameters of one core (all shared by its 256 neurons).
#[derive(Debug, Clone, PartialEq)]
pub struct IntendedCore {
    /// Membrane time constant (IF_TAU1_N), seconds.
    pub tau_mem_s: f64,
    /// Fast synapse time constant (AMPA and GABA_A: NPDPIE/NPDPII_TAU_F_P), seconds.
    pub tau_fast_s: f64,
    /// Slow synapse time constant (NMDA and GABA_B: NPDPIE/NPDPII_TAU_S_P), seconds.
    pub tau_slow_s: f64,
    /// Membrane DPI gain I_th/I_tau (IF_THR_N). This is the only "threshold" bias: the spike
    /// threshold itself is a layout constant. Howto advice: 2–3.
    pub mem_gain: f64,
    /// Synaptic DPI gain I_th/I_tau, applied to all four synapse THR biases.
    pub syn_gain: f64,
    /// Nominal unit-weight currents I_w in amperes (PS_WEIGHT_*), indexed by [`SynType::code`]
    /// (0 GABA_B, 1 GABA_A, 2 NMDA, 3 AMPA). 0 disables the type. Taken as currents directly:
    /// the reference gives no physical-weight-to-current relation.
    pub unit_weight_a: [f64; 4],
    /// Refractory period (IF_RFR_N), seconds; None = default (4, 128) from reference §2.3.
    pub t_ref_s: Option<f64>,
    /// Input pulse width (PULSE_PWLK_P), seconds; None = default (4, 106) from reference §2.3.
    pub t_pulse_s: Option<f64>,
}

/// Defaults for biases the model does not set: the samna NI course `gen_param_group()` column of
/// reference/dynapse1.md §2.3 (coarse, fine). TAU2 at maximum silences TAU2 neurons; DC, NMDA
/// gating and adaptation are off.
pub const DEFAULT_BIASES: [(&str, (u32, u32)); 11] = [
    ("IF_TAU2_N", (7, 255)),
    ("IF_RFR_N", (4, 128)),
    ("IF_DC_P", (0, 0)),
    ("IF_NMDA_N", (0, 0)),
    ("IF_AHTAU_N", (4, 80)),
    ("IF_AHTHR_N", (0, 0)),
    ("IF_AHW_P", (0, 0)),
    ("IF_CASC_N", (0, 0)),
    ("IF_BUF_P", (3, 80)),
    ("PULSE_PWLK_P", (4, 106)),
    ("R2R_P", (3, 85)),
];

fn enc(name: &str, current_a: f64) -> Result<(u32, u32), String> {
    encode_current(current_a).map_err(|e| format!("{name}: {e}"))
}

/// All 25 biases of a core, (coarse, fine) in the samna convention, from the intended parameters
/// through the nominal mapping. Unset biases get [`DEFAULT_BIASES`].
pub fn core_biases(intended: &IntendedCore) -> Result<BTreeMap<String, (u32, u32)>, String> {
    let mut out: BTreeMap<String, (u32, u32)> = DEFAULT_BIASES
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    let mut set = |name: &str, current_a: f64| -> Result<(), String> {
        out.insert(name.to_string(), enc(name, current_a)?);
        Ok(())
    };

    let i_mem = tau_to_current(intended.tau_mem_s, C_MEM_F);
    set("IF_TAU1_N", i_mem)?;
    set("IF_THR_N", gain_to_current(intended.mem_gain, i_mem))?;

    let syn = [
        (
            "NPDPIE_TAU_F_P",
            "NPDPIE_THR_F_P",
            intended.tau_fast_s,
            C_AMPA_F,
        ),
        (
            "NPDPIE_TAU_S_P",
            "NPDPIE_THR_S_P",
            intended.tau_slow_s,
            C_NMDA_F,
        ),
        (
            "NPDPII_TAU_F_P",
            "NPDPII_THR_F_P",
            intended.tau_fast_s,
            C_GABA_A_F,
        ),
        (
            "NPDPII_TAU_S_P",
            "NPDPII_THR_S_P",
            intended.tau_slow_s,
            C_GABA_B_F,
        ),
    ];
    for (tau_name, thr_name, tau, c) in syn {
        let i_tau = tau_to_current(tau, c);
        set(tau_name, i_tau)?;
        set(thr_name, gain_to_current(intended.syn_gain, i_tau))?;
    }

    for t in SynType::ALL {
        set(t.weight_bias(), intended.unit_weight_a[t.code() as usize])?;
    }
    if let Some(t) = intended.t_ref_s {
        set("IF_RFR_N", refractory_to_current(t))?;
    }
    if let Some(t) = intended.t_pulse_s {
        set("PULSE_PWLK_P", pulse_width_to_current(t))?;
    }

    debug_assert!(out.len() == BIAS_NAMES.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> IntendedCore {
        IntendedCore {
            tau_mem_s: 0.04,
            tau_fast_s: 0.01,
            tau_slow_s: 0.1,
            mem_gain: 2.5,
            syn_gain: 1.0,
            unit_weight_a: [0.0, 1e-10, 5e-10, 5e-11],
            t_ref_s: Some(4e-3),
            t_pulse_s: Some(10e-6),
        }
    }

    #[test]
    fn encode_round_trips_over_range() {
        let (lo, hi) = (min_current_a(), max_current_a());
        let n = 200;
        for k in 0..=n {
            // log-spaced targets from 30 fine steps of coarse 0 (~1.8 pA) up to the maximum;
            // below that the fine resolution of coarse 0 alone exceeds a few %.
            let t = (30.0 * lo) * (hi / (30.0 * lo)).powf(k as f64 / n as f64);
            let (c, f) = encode_current(t).unwrap();
            assert!(c <= 7 && f <= 255);
            let i = nominal_current_a(c, f).unwrap();
            assert!(
                (i - t).abs() / t < 0.03,
                "target {t:e} -> ({c},{f}) = {i:e}"
            );
        }
        assert_eq!(encode_current(0.0).unwrap(), (0, 0));
        assert_eq!(encode_current(24e-6).unwrap(), (7, 255));
        assert_eq!(encode_current(15e-12 / 255.0).unwrap(), (0, 1));
    }

    #[test]
    fn encode_rejects_bad_targets_naming_value() {
        let e = encode_current(-1e-9).unwrap_err();
        assert!(e.contains("-1e-9"), "{e}");
        let e = encode_current(1e-3).unwrap_err();
        assert!(e.contains("1e-3") && e.contains("2.4e-5"), "{e}");
        let e = encode_current(1e-15).unwrap_err();
        assert!(e.contains("1e-15"), "{e}");
        assert!(encode_current(f64::NAN).unwrap_err().contains("NaN"));
        assert!(encode_current(f64::INFINITY).is_err());
    }

    #[test]
    fn tau_current_inverse_proportional() {
        let a = tau_to_current(0.02, C_MEM_F);
        let b = tau_to_current(0.01, C_MEM_F);
        assert!((b / a - 2.0).abs() < 1e-12);
        // tau = C U_T / (kappa I) recovered
        assert!((C_MEM_F * U_T_V / (KAPPA * a) - 0.02).abs() < 1e-15);
        assert!((refractory_to_current(2e-3) / refractory_to_current(4e-3) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn core_biases_has_all_25_in_range() {
        let b = core_biases(&example()).unwrap();
        let names: Vec<&str> = b.keys().map(|s| s.as_str()).collect();
        assert_eq!(names, BIAS_NAMES.to_vec());
        for (n, (c, f)) in &b {
            assert!(*c <= 7 && *f <= 255, "{n}");
        }
        assert_eq!(b["PS_WEIGHT_INH_S_N"], (0, 0));
        assert_eq!(b["IF_TAU2_N"], (7, 255));
        // membrane leak current nominal value within 3 % of the formula
        let i = nominal_current_a(b["IF_TAU1_N"].0, b["IF_TAU1_N"].1).unwrap();
        let want = tau_to_current(0.04, C_MEM_F);
        assert!((i - want).abs() / want < 0.03);
        // defaults when unset
        let mut e = example();
        e.t_ref_s = None;
        e.t_pulse_s = None;
        let b = core_biases(&e).unwrap();
        assert_eq!(b["IF_RFR_N"], (4, 128));
        assert_eq!(b["PULSE_PWLK_P"], (4, 106));
    }

    #[test]
    fn core_biases_errors_name_the_bias() {
        let mut e = example();
        e.tau_mem_s = 1e3; // needs ~2e-17 A, below the range
        let err = core_biases(&e).unwrap_err();
        assert!(err.starts_with("IF_TAU1_N"), "{err}");
        e = example();
        e.unit_weight_a[3] = -1.0;
        assert!(
            core_biases(&e)
                .unwrap_err()
                .starts_with("PS_WEIGHT_EXC_F_N")
        );
    }
}
