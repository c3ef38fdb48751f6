//! The DYNAP-SE1 as a [`ChipModel`] for hardware-aware training (docs/design.md §2,
//! "Hardware-aware training"): the network the chip runs for a float shadow is the one this
//! exporter writes for it. [`Dynapse1Chip::running`] maps the shadow with [`map_network`]
//! (policy [`FanInPolicy::Reserved`]) and rebuilds the matrices from the document's counts x
//! units ([`effective_weights`], [`effective_input`]):
//! - placement: model neuron i in the i-th free slot, fixed before training (all cores share
//!   one nominal parameter set);
//! - fan-in: inputs first, W_fast within `fast_cams`, W_slow in the rest of the `cam_budget`
//!   entries, a weight of count c using c entries;
//! - weights: count (1..max_count) x unit per (core, synapse type), the unit chosen at every
//!   re-quantisation as the largest |w| / max_count of its (core, type); AMPA and GABA_A units
//!   tied, so an input's ON and OFF virtual channels carry exactly opposite weights and the
//!   running network has a signed input projection (`Network::input_override`);
//! - W_fast: the fixed balancing matrix restricted to each neuron's strongest partners within
//!   `fast_cams` entries (its selection never depends on W_slow, so it is fixed from the start);
//!   W_slow is trained with this sparse W_fast in the loop and so absorbs the balance the pruned
//!   partners no longer provide.

use super::deploy::cams_per_target;
use super::map::{FanInPolicy, MapOptions, effective_input, effective_weights, map_network};
use crate::learn::hardware::{ChipModel, Running};
use crate::snn::Network;

/// The DYNAP-SE1 board under the mapper's options.
#[derive(Clone, Debug)]
pub struct Dynapse1Chip {
    opts: MapOptions,
}

impl Dynapse1Chip {
    /// The constraints of `opts`, mapped with [`FanInPolicy::Reserved`] whatever `opts` says
    /// (the other policy lets W_slow compete with the inputs and W_fast, which would then change
    /// during training).
    pub fn new(opts: MapOptions) -> Self {
        Dynapse1Chip {
            opts: MapOptions {
                policy: FanInPolicy::Reserved,
                ..opts
            },
        }
    }

    /// The mapper's options (the exporter must use these to reproduce the trained network).
    pub fn options(&self) -> &MapOptions {
        &self.opts
    }
}

impl ChipModel for Dynapse1Chip {
    /// W_fast, W_slow and the input projection rebuilt from the exported document; parameters,
    /// decoder, encoder (the training feedback) and teacher weights are the shadow's.
    fn running(&self, shadow: &Network) -> Result<Running, String> {
        let n = shadow.n;
        let mapped = map_network(shadow, &self.opts).map_err(|e| e.to_string())?;
        let (w_fast, w_slow) = effective_weights(&mapped.doc, n);
        let c = shadow.n_in;
        let rect = effective_input(&mapped.doc, n, 2 * c);
        let mut input = vec![0f32; n * c];
        for post in 0..n {
            for ch in 0..c {
                let (on, off) = (rect[post * 2 * c + 2 * ch], rect[post * 2 * c + 2 * ch + 1]);
                // tied units and equal counts make OFF exactly -ON; they differ only when the
                // budget cut between the two
                if (on + off).abs() > 1e-9 * on.abs().max(off.abs()) {
                    return Err(format!(
                        "neuron {post}: the inputs alone need more than cam_budget = {} CAM \
                         entries (channel {ch} lost its ON or OFF connection); lower \
                         export.input_max_count or raise export.cam_budget",
                        self.opts.cam_budget
                    ));
                }
                input[post * c + ch] = on as f32;
            }
        }
        let mut net = shadow.clone();
        net.w_fast = w_fast;
        net.w_slow = w_slow;
        net.input_override = Some(input);
        Ok(Running {
            net,
            fan_in: cams_per_target(&mapped.doc, n),
        })
    }

    fn describe(&self) -> String {
        format!(
            "DYNAP-SE1: at most {} CAM entries per neuron (inputs first, counts up to {}), \
             W_fast within {} entries, W_slow counts 1..{} in the rest",
            self.opts.cam_budget,
            self.opts.input_max_count,
            self.opts.fast_cams,
            self.opts.max_count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::hardware::OnChip;
    use crate::snn::SnnParams;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::sync::Arc;

    fn net(n: usize) -> Network {
        let nc = 6;
        let mut rng = StdRng::seed_from_u64(3);
        let w_in: Vec<f32> = (0..nc).map(|_| rng.random_range(-2.0..2.0)).collect();
        let w_out: Vec<f32> = (0..nc).map(|_| rng.random_range(-1.0..1.0)).collect();
        let p = SnnParams {
            n,
            ..SnnParams::default()
        };
        Network::init(p, w_in, w_out, nc, 1, 1, 5).unwrap()
    }

    fn dense_slow(net: &mut Network, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = net.n;
        for pre in 0..n {
            for post in 0..n {
                net.w_slow[pre * n + post] = if pre == post {
                    0.0
                } else {
                    rng.random_range(-0.01..0.01)
                };
            }
        }
    }

    fn opts() -> MapOptions {
        MapOptions {
            cam_budget: 24,
            fast_cams: 6,
            input_max_count: 4,
            ..MapOptions::default()
        }
    }

    #[test]
    fn the_running_network_fits_and_keeps_w_fast_and_inputs_whatever_w_slow_is() {
        let mut shadow = net(40);
        let chip = OnChip::new(Arc::new(Dynapse1Chip::new(opts())));
        let empty = chip.running(&shadow).unwrap();
        dense_slow(&mut shadow, 1);
        let full = chip.running(&shadow).unwrap();
        for r in [&empty, &full] {
            assert!(r.fan_in.iter().all(|&c| c <= 24), "{:?}", r.fan_in);
        }
        assert!(
            full.fan_in.contains(&24),
            "the dense W_slow fills the budget"
        );
        // inputs and W_fast are taken before W_slow, so W_slow never moves them
        assert_eq!(empty.net.w_fast, full.net.w_fast);
        assert_eq!(empty.net.input_override, full.net.input_override);
        assert!(empty.net.w_slow.iter().all(|&w| w == 0.0));
        // every weight is a count of its (core, type) unit: at most 2 x 4 + 1 levels per row
        let n = 40;
        for post in 0..n {
            let mut levels: Vec<f32> = (0..n).map(|pre| full.net.w_slow[pre * n + post]).collect();
            levels.sort_by(f32::total_cmp);
            levels.dedup();
            assert!(levels.len() <= 9, "neuron {post}: {} levels", levels.len());
        }
    }

    #[test]
    fn a_fixed_mask_holds_for_any_later_shadow() {
        let mut shadow = net(40);
        dense_slow(&mut shadow, 1);
        let mut chip = OnChip::new(Arc::new(Dynapse1Chip::new(opts())));
        let first = chip.running(&shadow).unwrap();
        chip.fix_mask(&first.net);
        let mask = chip.mask().unwrap().to_vec();
        assert_eq!(chip.running(&shadow).unwrap().net.w_slow, first.net.w_slow);
        dense_slow(&mut shadow, 2);
        let later = chip.running(&shadow).unwrap();
        assert_eq!(chip.mask().unwrap(), &mask[..]);
        assert!(later.net.w_slow.iter().any(|&w| w != 0.0));
        for (k, (&w, &m)) in later.net.w_slow.iter().zip(&mask).enumerate() {
            assert!(m || w == 0.0, "W_slow[{k}] outside the mask");
        }
        // without the mask the new shadow would have chosen other connections
        let free = Dynapse1Chip::new(opts()).running(&shadow).unwrap();
        assert!(
            free.net
                .w_slow
                .iter()
                .zip(&mask)
                .any(|(&w, &m)| w != 0.0 && !m)
        );
    }

    #[test]
    fn inputs_that_overflow_the_budget_are_an_error() {
        let shadow = net(20);
        let chip = Dynapse1Chip::new(MapOptions {
            cam_budget: 5,
            fast_cams: 0,
            input_max_count: 4,
            ..MapOptions::default()
        });
        let e = chip.running(&shadow).unwrap_err();
        assert!(
            e.contains("inputs alone need more than cam_budget = 5"),
            "{e}"
        );
    }
}
