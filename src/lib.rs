//! robust-snn: spiking networks trained to survive mismatched mixed-signal neuromorphic chips.
//!
//! Data flows one way: [`config`] -> [`tasks`] -> [`teacher`] -> spiking network -> engine ->
//! study / report / export. See `README.md` for the commands and DESIGN.md for the model.

pub mod backend;
pub mod bench;
pub mod chip;
pub mod config;
pub mod engine;
pub mod error;
pub mod export;
pub mod learn;
pub mod limits;
pub mod report;
pub mod snn;
pub mod stages;
pub mod study;
pub mod tasks;
pub mod teacher;

pub use error::Error;
