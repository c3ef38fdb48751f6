//! How a network was trained, and what its readout therefore means.
//!
//! Every method produces the same engine network (docs/design.md §6): one recurrent LIF
//! population, an input projection and a linear readout of filtered spike trains. What differs is
//! the readout's target:
//! * [`Method::Ads`] and [`Method::Force`] decode the teacher's state, `x~ = D r` (Nc values),
//!   and the task output is the teacher's readout `y = W_out_teacherᵀ x~`;
//! * [`Method::Bptt`] and [`Method::Reservoir`] read the task output directly: D is n_out x N and
//!   `W_out_teacher` is the identity, so the network has no reconstruction error R;
//! * [`Method::Imported`] was trained elsewhere and brought in as a NIR graph (`robust-snn
//!   import`): its readout gives the task output (no R), like BPTT's.

use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Network ADS: fast balancing and slow recurrence learned with the local rule.
    #[default]
    Ads,
    /// Recurrent LIF network trained end to end with BPTT and a surrogate gradient (burn).
    Bptt,
    /// FORCE: fixed sparse random recurrence, RLS-learned decoder, fixed feedback folded into
    /// the recurrent weights.
    Force,
    /// Liquid state machine: fixed sparse random recurrence, ridge-regression readout.
    Reservoir,
    /// Trained elsewhere, imported from a NIR graph (`robust-snn import`); not a training
    /// method, so neither `--method` nor `training.method` offers it.
    #[value(skip)]
    Imported,
}

impl Method {
    /// The training methods (not [`Method::Imported`]).
    pub const ALL: [Method; 4] = [Method::Ads, Method::Bptt, Method::Force, Method::Reservoir];

    /// The config and CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ads => "ads",
            Method::Bptt => "bptt",
            Method::Force => "force",
            Method::Reservoir => "reservoir",
            Method::Imported => "imported",
        }
    }

    /// The name in tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Method::Ads => "Network ADS",
            Method::Bptt => "BPTT-LIF",
            Method::Force => "FORCE",
            Method::Reservoir => "Reservoir",
            Method::Imported => "Imported (NIR)",
        }
    }

    /// Whether the readout decodes the teacher's state (and R is defined).
    pub fn decodes_teacher(self) -> bool {
        matches!(self, Method::Ads | Method::Force)
    }

    /// A method by its name, [`Method::Imported`] included (a stored network may be one).
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .chain([Method::Imported])
            .find(|m| m.name() == s)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
