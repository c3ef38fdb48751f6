//! robust-snn: spiking networks trained to survive mismatched mixed-signal neuromorphic chips.
//!
//! Data flows one way: [`config`] -> [`tasks`] -> [`teacher`] -> spiking network -> engine ->
//! study / report / export ([`learn`] trains Network ADS, [`baselines`] the methods it is
//! compared with); [`stages`] decides what a run still needs and runs it, and [`sweep`]
//! drives the stages over a grid. Imports only go down these floors (`docs/design.md`). See
//! `README.md` for the commands.

pub mod backend;
pub mod baselines;
pub mod bench;
pub mod chip;
pub mod config;
pub mod engine;
pub mod error;
pub mod export;
pub mod learn;
pub mod limits;
pub mod nir;
pub mod report;
pub mod snn;
pub mod stages;
pub mod study;
pub mod sweep;
pub mod tasks;
pub mod teacher;

pub use error::Error;
