//! What one simulated chip is: counter-based random draws, mismatch, quantisation, silencing,
//! membrane noise (DESIGN.md §5).

pub mod instance;
pub mod quantize;
pub mod rng;

pub use instance::{Instance, MismatchCv, MismatchMode, Perturbation};
