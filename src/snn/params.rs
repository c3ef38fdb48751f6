//! Parameters of a Network ADS (docs/design.md §2). Time constants in milliseconds here; the dynamics
//! use seconds for every `1/tau` factor (see the CPU engine's neuron step).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SnnParams {
    /// Number of spiking neurons N.
    pub n: usize,
    pub tau_mem_ms: f32,
    pub tau_fast_ms: f32,
    pub tau_slow_ms: f32,
    pub tau_out_ms: f32,
    pub v_th: f32,
    pub v_rest: f32,
    pub v_reset: f32,
    /// Constant bias current b.
    pub bias: f32,
    /// Fast balancing (EBN) recurrence W_fast on/off.
    pub use_fast: bool,
    /// c in `W_fast = -c (D0ᵀD0 + mu lambda² I) / T`.
    pub fast_gain: f32,
    /// Input amplitude in units of 1/tau_mem: `A = input_gain / tau_mem_s` (10 for XOR, 50 audio).
    pub input_gain: f32,
    pub mu: f32,
    pub nu: f32,
    pub dt_ms: f32,
    /// Spike-frequency adaptation (a homeostatic brake): the threshold is `V_th + adapt_beta a`
    /// with `a <- adapt_rho a + s` every step (s = 1 on a spike). 0 = off; the reference code
    /// uses beta = 0.01, rho = 0.99.
    pub adapt_beta: f32,
    /// Per-step decay of the adaptation variable a, in [0, 1).
    pub adapt_rho: f32,
}

impl Default for SnnParams {
    fn default() -> Self {
        Self {
            n: 320,
            tau_mem_ms: 50.0,
            tau_fast_ms: 1.0,
            tau_slow_ms: 70.0,
            tau_out_ms: 70.0,
            v_th: 1.0,
            v_rest: 0.5,
            v_reset: 0.0,
            bias: 0.0,
            use_fast: true,
            fast_gain: 0.5,
            input_gain: 10.0,
            mu: 5e-4,
            nu: 1e-4,
            dt_ms: 1.0,
            adapt_beta: 0.0,
            adapt_rho: 0.99,
        }
    }
}

impl SnnParams {
    /// tau_mem in seconds.
    pub fn tau_mem_s(&self) -> f32 {
        self.tau_mem_ms * 1e-3
    }
    /// dt in seconds.
    pub fn dt_s(&self) -> f32 {
        self.dt_ms * 1e-3
    }
    /// lambda = 1 / tau_mem in 1/s (20 by default).
    pub fn lambda(&self) -> f32 {
        1.0 / self.tau_mem_s()
    }
    /// Input amplitude A = input_gain / tau_mem_s (200 by default).
    pub fn input_amplitude(&self) -> f32 {
        self.input_gain / self.tau_mem_s()
    }

    /// Checks every field; the message names the offending field and value.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 {
            return Err("n must be > 0, got 0".into());
        }
        for (name, v) in [
            ("tau_mem_ms", self.tau_mem_ms),
            ("tau_fast_ms", self.tau_fast_ms),
            ("tau_slow_ms", self.tau_slow_ms),
            ("tau_out_ms", self.tau_out_ms),
            ("dt_ms", self.dt_ms),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be > 0, got {v}"));
            }
        }
        for (name, v) in [
            ("v_th", self.v_th),
            ("v_rest", self.v_rest),
            ("v_reset", self.v_reset),
            ("bias", self.bias),
            ("fast_gain", self.fast_gain),
            ("input_gain", self.input_gain),
            ("adapt_beta", self.adapt_beta),
        ] {
            if !v.is_finite() {
                return Err(format!("{name} must be finite, got {v}"));
            }
        }
        for (name, v) in [
            ("mu", self.mu),
            ("nu", self.nu),
            ("fast_gain", self.fast_gain),
            ("adapt_beta", self.adapt_beta),
        ] {
            if v < 0.0 {
                return Err(format!("{name} must be >= 0, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.adapt_rho) {
            return Err(format!(
                "adapt_rho must be in [0, 1), got {}",
                self.adapt_rho
            ));
        }
        if self.v_th <= self.v_reset {
            return Err(format!(
                "v_th must be > v_reset, got v_th {} <= v_reset {}",
                self.v_th, self.v_reset
            ));
        }
        if self.v_th == self.v_rest {
            return Err(format!(
                "v_th must differ from v_rest, both are {}",
                self.v_th
            ));
        }
        if self.dt_ms > self.tau_mem_ms {
            return Err(format!(
                "dt_ms must be <= tau_mem_ms for a stable Euler step, got dt_ms {} > tau_mem_ms {}",
                self.dt_ms, self.tau_mem_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_valid_and_errors_name_fields() {
        let p = SnnParams::default();
        p.validate().unwrap();
        assert_eq!(p.lambda(), 20.0);
        assert_eq!(p.input_amplitude(), 200.0);
        let bad = SnnParams {
            tau_mem_ms: -5.0,
            ..p.clone()
        };
        assert_eq!(
            bad.validate().unwrap_err(),
            "tau_mem_ms must be > 0, got -5"
        );
        let bad = SnnParams { n: 0, ..p.clone() };
        assert!(bad.validate().unwrap_err().starts_with("n "));
        let bad = SnnParams {
            v_th: f32::NAN,
            ..p
        };
        assert!(bad.validate().unwrap_err().starts_with("v_th"));
    }
}
