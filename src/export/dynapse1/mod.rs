//! DYNAP-SE1 export: the versioned JSON document ([`doc`]), the hardware-rule validator
//! ([`validate`]), emitters for the cAER netparser, samna and the host readout ([`emit`]), and
//! per-core biases from intended physical parameters through the nominal bias mapping
//! ([`biases`]), the mapper from a trained network ([`map`]), the deployed network for
//! re-simulation and the power estimate ([`deploy`]), and the CLI stage ([`stage`]).
//! See docs/design.md §7 and reference/dynapse1.md §6.

pub mod biases;
pub mod deploy;
pub mod doc;
pub mod emit;
pub mod map;
pub mod onchip;
pub mod stage;
pub mod validate;

#[cfg(test)]
mod tests;

pub use doc::{
    Bias, Board, CaerCoarseMapping, Connection, Conventions, CoreConfig, Doc, DocError, InputSpec,
    Leak, MismatchAssumptions, NeuronPlacement, QuantisationReport, Readout, Source, SynType,
    UnitWeight,
};
pub use emit::{
    EmitError, Emitted, caer_biases, caer_connections, emit_all, readout_json, samna_bias_json,
    samna_script,
};
pub use validate::{Rule, Violation, check_file, validate, warnings};
