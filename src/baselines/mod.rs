//! The baselines Network ADS is compared with (paper §6): a BPTT-trained LIF network, FORCE and a
//! reservoir. Each trains the same engine network as Network ADS ([`crate::snn::Network`], with
//! the readout meaning its [`Method`] says), so every method meets the same perturbations on the
//! same engine and the study evaluates them on identical chip draws.

pub mod bptt;
pub mod force;
pub mod reservoir;
pub mod ridge;
pub mod sim;
pub mod weights;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::snn::{Method, SnnParams};
use crate::tasks::{Split, Task};
use crate::teacher::TeacherWeights;

/// One epoch of a baseline's training (the reservoir has one).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BaselineEpoch {
    pub epoch: usize,
    /// The training objective of the method (BPTT: loss; FORCE: mean squared decoding error of
    /// x~ during training; reservoir, fitted in one pass: the validation MSE).
    pub train_loss: f64,
    pub val_accuracy: f64,
    pub val_mse: f64,
    pub mean_rate_hz: f64,
    pub seconds: f64,
}

/// What a baseline's training produced: the network with the best validation accuracy (ties:
/// lower validation MSE).
#[derive(Clone, Debug)]
pub struct BaselineOutcome {
    pub net: crate::snn::Network,
    pub history: Vec<BaselineEpoch>,
    pub best_epoch: usize,
    pub train_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{0}")]
    Snn(#[from] crate::snn::SnnError),
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("{method} training: {message}")]
    Training { method: Method, message: String },
}

/// The neuron parameters of a baseline network: `[snn]`'s neurons without fast synapses or
/// adaptation (methods other than ADS do not have them), with `bias`.
pub fn baseline_params(snn: &SnnParams, bias: f32) -> SnnParams {
    SnnParams {
        use_fast: false,
        adapt_beta: 0.0,
        bias,
        ..snn.clone()
    }
}

/// Train `cfg.training.method` (not ADS, which `learn` trains) on `task`, with `teacher` as the
/// dynamics FORCE mimics and the input weights it uses (the others only report its accuracy
/// beside theirs in validation). `device` is burn's (BPTT only).
pub fn train(
    cfg: &Config,
    teacher: &TeacherWeights,
    task: &dyn Task,
    device: &burn::tensor::Device,
    show_progress: bool,
) -> Result<BaselineOutcome, BaselineError> {
    match cfg.training.method {
        Method::Bptt => bptt::train(cfg, teacher, task, device, show_progress),
        Method::Force => force::train(cfg, teacher, task, show_progress),
        Method::Reservoir => reservoir::train(cfg, task, show_progress),
        Method::Ads => Err(BaselineError::Training {
            method: Method::Ads,
            message: "Network ADS is trained by the local rule (learn::trainer), not here".into(),
        }),
        Method::Imported => Err(BaselineError::Training {
            method: Method::Imported,
            message: "an imported network is not trained here (robust-snn import)".into(),
        }),
    }
}

/// The epoch loop's bookkeeping shared by the iterative baselines: validation after every
/// epoch, the history, the progress line, and the best network by validation accuracy (ties:
/// lower validation MSE).
pub struct EpochLog {
    method: Method,
    epochs: usize,
    pb: indicatif::ProgressBar,
    show_progress: bool,
    history: Vec<BaselineEpoch>,
    best: Option<(f64, f64, crate::snn::Network, usize)>,
    t0: std::time::Instant,
}

impl EpochLog {
    /// A progress bar over `steps` units of work (`name` labels it).
    pub fn new(method: Method, epochs: usize, steps: u64, show_progress: bool) -> Self {
        let pb = crate::report::progress_bar(steps, method.label());
        if !show_progress {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        EpochLog {
            method,
            epochs,
            pb,
            show_progress,
            history: Vec::new(),
            best: None,
            t0: std::time::Instant::now(),
        }
    }

    pub fn pb(&self) -> &indicatif::ProgressBar {
        &self.pb
    }

    /// Scores `net` on the validation trials, records the epoch (`train_loss` is what the
    /// method minimises, named `loss_name` in the progress line) and keeps the best network.
    #[allow(clippy::too_many_arguments)]
    pub fn epoch_done(
        &mut self,
        net: &crate::snn::Network,
        epoch: usize,
        train_loss: f64,
        loss_name: &str,
        started: std::time::Instant,
        teacher: &TeacherWeights,
        task: &dyn Task,
        val_trials: usize,
        seed: u64,
    ) -> Result<(), BaselineError> {
        let v = crate::learn::trainer::evaluate(
            net,
            teacher,
            task,
            Split::Validation,
            val_trials,
            seed,
        )?;
        let (acc, mse, rate) = (v.accuracy, v.mse, v.mean_rate_hz);
        let rec = BaselineEpoch {
            epoch,
            train_loss,
            val_accuracy: acc,
            val_mse: mse,
            mean_rate_hz: rate,
            seconds: started.elapsed().as_secs_f64(),
        };
        let line = format!(
            "{} epoch {epoch}/{}: {loss_name} {train_loss:.4}, val accuracy {acc:.3}, val MSE {mse:.4}, {rate:.1} Hz ({:.0} s)",
            self.method.label(),
            self.epochs,
            rec.seconds
        );
        if self.show_progress {
            self.pb.println(line);
        } else {
            eprintln!("{line}");
        }
        let better = match &self.best {
            None => true,
            Some((a, m, _, _)) => acc > *a || (acc == *a && mse < *m),
        };
        if better {
            self.best = Some((acc, mse, net.clone(), epoch));
        }
        self.history.push(rec);
        Ok(())
    }

    /// The best network and the history.
    pub fn finish(self) -> Result<BaselineOutcome, BaselineError> {
        self.pb.finish_and_clear();
        let (_, _, net, best_epoch) = self.best.ok_or_else(|| BaselineError::Training {
            method: self.method,
            message: "no epoch ran".into(),
        })?;
        Ok(BaselineOutcome {
            net,
            history: self.history,
            best_epoch,
            train_seconds: self.t0.elapsed().as_secs_f64(),
        })
    }
}
