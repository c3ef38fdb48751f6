//! The local learning rule of Network ADS (Alemi et al. 2018 as used by Büchel et al. 2021).

pub mod deferred;
pub mod ensemble;
pub mod gpu;
pub mod gpu_ensemble;
pub mod hardware;
pub mod regime;
pub mod rule;
pub mod trainer;

pub use gpu::GpuTrainer;
pub use gpu_ensemble::GpuEnsembleTrainer;
pub use rule::{TrainTrialStats, Trainer, reconstruction_error, train_trial, train_trial_shadow};
