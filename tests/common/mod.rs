//! Fixtures shared by the integration tests.

// Each test crate compiles this module and uses a subset of it.
#![allow(dead_code)]

use robust_snn::tasks::xor::{XorParams, XorTask};
use robust_snn::teacher::weights::{TeacherInit, TeacherWeights};

/// An untrained one-input, one-output teacher with `hidden` units (the default initialisation).
pub fn random_teacher(hidden: usize, seed: u64) -> TeacherWeights {
    TeacherWeights::init(
        hidden,
        1,
        1,
        &TeacherInit {
            input_scale: 10.0,
            spectral_radius: 0.95,
            tau_init_min_ms: 15.0,
            tau_init_max_ms: 100.0,
        },
        seed,
    )
}

/// Temporal XOR with trials of `duration_ms`.
pub fn xor_task(duration_ms: usize, seed: u64) -> XorTask {
    XorTask::new(
        XorParams {
            duration_ms,
            ..XorParams::default()
        },
        seed,
    )
}
