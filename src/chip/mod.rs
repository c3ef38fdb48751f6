//! What one simulated chip is: counter-based random draws, mismatch, silencing, membrane noise
//! (the quantisation of the nominal weights is `snn::quantize`) (docs/design.md §5).

pub mod instance;
pub mod rng;

pub use instance::{Instance, MismatchCv, MismatchMode, Perturbation};
