//! Synapse types beyond the two of Network ADS (docs/design.md §2, "Synapse types").
//!
//! A synapse type is a population-wide exponential synapse: its own time constant and its own
//! recurrent matrix. Every network has W_fast (tau_fast) and W_slow (tau_slow); a network may
//! carry up to [`MAX_EXTRA_SYNAPSE_TYPES`] further types (`Network::extra_synapses`), each
//! entering the membrane like I_slow does, so one engine simulates multi-timescale networks
//! (e.g. a reservoir with several synaptic time constants) as well as Network ADS.

use serde::{Deserialize, Serialize};

use super::error::SnnError;

/// The most synapse types a network may have beyond W_fast and W_slow. The GPU kernel holds
/// every type's current in registers per owned neuron quad and flags each nonzero matrix with
/// one bit of its uniform block, so the count is bounded; 8 covers every multi-timescale
/// network this project builds with room to spare.
pub const MAX_EXTRA_SYNAPSE_TYPES: usize = 8;

/// One further synapse type: `I_k` decays with `e^{-dt/tau}` and a spike of pre j adds
/// `w[j][i] / tau` to `I_k[i]` (the same kernel as W_slow, so the time integral of one spike's
/// current is the weight).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SynapseType {
    /// Time constant in ms (nominal; a chip mismatches it per neuron like tau_slow).
    pub tau_ms: f32,
    /// N x N weights, `[pre][post]` like W_fast and W_slow.
    pub w: Vec<f32>,
}

impl SynapseType {
    /// Checks this type against a network of `n` neurons; `k` is its index among the extra
    /// types (errors name it `extra synapse type k`).
    pub fn validate(&self, k: usize, n: usize) -> Result<(), SnnError> {
        if !(self.tau_ms.is_finite() && self.tau_ms > 0.0) {
            return Err(SnnError::InvalidParams(format!(
                "extra synapse type {k}: tau_ms must be finite and > 0, got {}",
                self.tau_ms
            )));
        }
        if self.w.len() != n * n {
            return Err(SnnError::Shape {
                what: format!("extra synapse type {k}: w (N x N)"),
                expected: n * n,
                got: self.w.len(),
            });
        }
        Ok(())
    }

    /// Whether any weight is nonzero (an all-zero type propagates nothing; the engines skip it).
    pub fn is_nonzero(&self) -> bool {
        self.w.iter().any(|&w| w != 0.0)
    }
}

/// Checks a list of extra types for a network of `n` neurons: the count, then each type.
pub fn validate_types(types: &[SynapseType], n: usize) -> Result<(), SnnError> {
    if types.len() > MAX_EXTRA_SYNAPSE_TYPES {
        return Err(SnnError::InvalidParams(format!(
            "too many synapse types: {} beyond W_fast and W_slow, at most {MAX_EXTRA_SYNAPSE_TYPES}",
            types.len()
        )));
    }
    for (k, t) in types.iter().enumerate() {
        t.validate(k, n)?;
    }
    Ok(())
}
