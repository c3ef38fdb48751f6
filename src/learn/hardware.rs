//! Hardware-aware training (docs/design.md §2, "Hardware-aware training"): the forward step runs
//! exactly the network a chip would run, and the rule updates a float shadow of W_slow.
//!
//! What the chip's network is for a given shadow is the chip's business, behind [`ChipModel`]:
//! the DYNAP-SE1 implementation (`export::dynapse1::onchip`) maps the shadow with the exporter's
//! own mapper and rebuilds the matrices from the document, so training and export cannot disagree
//! about the constraints (the model lives on the export floor; the trainer only sees the trait).
//! This module owns what training adds: W_slow's connectivity, free (the largest shadow weights
//! that fit, re-chosen at every re-quantisation) until [`OnChip::fix_mask`], then fixed.

use std::sync::Arc;

use crate::snn::Network;

/// The network as the chip runs it, with its CAM use.
#[derive(Clone, Debug)]
pub struct Running {
    pub net: Network,
    /// Fan-in per neuron in the chip's units (DYNAP-SE1: CAM entries, inputs included).
    pub fan_in: Vec<u64>,
}

/// A chip's constraints: the network it runs for a float network.
pub trait ChipModel: Send + Sync {
    /// The network the chip runs for `shadow`: its fixed matrices and W_slow as the chip holds
    /// them (a zero weight of `shadow` must stay zero).
    fn running(&self, shadow: &Network) -> Result<Running, String>;
    /// One line for the training log: the constraints.
    fn describe(&self) -> String;
}

/// A chip's constraints during training, and the W_slow connectivity once fixed.
#[derive(Clone)]
pub struct OnChip {
    model: Arc<dyn ChipModel>,
    /// W_slow connections allowed, `[pre][post]` (N x N), once fixed.
    mask: Option<Vec<bool>>,
}

impl OnChip {
    pub fn new(model: Arc<dyn ChipModel>) -> Self {
        OnChip { model, mask: None }
    }

    pub fn model(&self) -> &dyn ChipModel {
        self.model.as_ref()
    }

    /// The fixed W_slow connectivity, `[pre][post]`.
    pub fn mask(&self) -> Option<&[bool]> {
        self.mask.as_deref()
    }

    /// Fix W_slow's connectivity to the connections `running` has.
    pub fn fix_mask(&mut self, running: &Network) {
        self.mask = Some(running.w_slow.iter().map(|&w| w != 0.0).collect());
    }

    /// Restore a fixed connectivity (a resumed run).
    pub fn set_mask(&mut self, mask: Vec<bool>) {
        self.mask = Some(mask);
    }

    /// The network the chip runs for the float `shadow`, W_slow restricted to the fixed
    /// connections when they are fixed.
    pub fn running(&self, shadow: &Network) -> Result<Running, String> {
        let Some(mask) = &self.mask else {
            return self.model.running(shadow);
        };
        let n = shadow.n;
        if mask.len() != n * n {
            return Err(format!(
                "W_slow mask has {} entries, the network {n} x {n}",
                mask.len()
            ));
        }
        let mut cand = shadow.clone();
        for (w, &keep) in cand.w_slow.iter_mut().zip(mask) {
            if !keep {
                *w = 0.0;
            }
        }
        self.model.running(&cand)
    }
}
