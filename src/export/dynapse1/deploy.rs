//! What the chip will run, as a [`Network`] the engines can simulate: the deployed network
//! (integer counts x unit weights, pruned connections, inputs through their encoding scale), its
//! float twin with the same input model, and the power estimate from simulated spike counts.

use serde::Serialize;

use super::doc::{Doc, Source};
use super::map::{effective_input, effective_weights, placement_index, rectified_projection};
use crate::snn::Network;

/// `net` on rectified input channels (2C: max(c, 0) and max(-c, 0) per model channel, as the
/// chip's virtual neurons fire), with the teacher's input weights to match.
fn on_rectified_inputs(net: &Network, input_override: Vec<f32>) -> Network {
    let (nc, c) = (net.nc, net.n_in);
    let mut w_in = vec![0f32; 2 * c * nc];
    for ch in 0..c {
        for k in 0..nc {
            let w = net.w_in_teacher[ch * nc + k];
            w_in[2 * ch * nc + k] = w;
            w_in[(2 * ch + 1) * nc + k] = -w;
        }
    }
    let mut out = net.clone();
    out.n_in = 2 * c;
    out.w_in_teacher = w_in;
    out.input_override = Some(input_override);
    out
}

/// `net` on rectified input channels with its float projection given explicitly, so that on a
/// chip instance every input synapse is mismatched on its own, as in the deployed network. It
/// computes exactly what `net` computes on the signed input; it is the reference the deployed
/// network is compared with. Run it on [`rectify_input`]ed trials.
pub fn float_on_chip(net: &Network) -> Network {
    let p = rectified_projection(&net.input_projection(), net.n, net.n_in);
    on_rectified_inputs(net, p)
}

/// The network `doc` describes, on the model neurons of `net` (placement index = model index):
/// W_fast and W_slow from the connections (count x unit x sign), the input projection over the
/// rectified channels from the input connections (scale x count x unit x sign); decoder, readout
/// and neuron parameters are `net`'s (the readout runs on the host in floating point). Run it on
/// [`rectify_input`]ed trials.
pub fn deployed_network(net: &Network, doc: &Doc) -> Network {
    let (w_fast, w_slow) = effective_weights(doc, net.n);
    let input = effective_input(doc, net.n, 2 * net.n_in);
    let mut out = on_rectified_inputs(net, input.into_iter().map(|x| x as f32).collect());
    out.w_fast = w_fast;
    out.w_slow = w_slow;
    out
}

/// A T x C input as the chip's virtual neurons see it, T x 2C: channel 2k = max(c_k, 0),
/// 2k + 1 = max(-c_k, 0).
pub fn rectify_input(input: &[f32], c: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * input.len());
    for &x in input.iter().take(input.len() / c.max(1) * c) {
        out.push(x.max(0.0));
        out.push((-x).max(0.0));
    }
    out
}

/// CAM entries that listen to each model neuron (the synaptic events one of its spikes causes),
/// indexed by model index; length `n`.
pub fn cams_per_source(doc: &Doc, n: usize) -> Vec<u64> {
    cams_per(doc, n, |c| match c.pre {
        Source::Neuron(g) => Some(g),
        Source::Input(_) => None,
    })
}

/// CAM entries each model neuron uses (its fan-in, inputs included), indexed by model index;
/// length `n`.
pub fn cams_per_target(doc: &Doc, n: usize) -> Vec<u64> {
    cams_per(doc, n, |c| Some(c.post))
}

/// Sum of connection counts per model neuron, the neuron of a connection named by `key`.
fn cams_per(doc: &Doc, n: usize, key: impl Fn(&super::doc::Connection) -> Option<u32>) -> Vec<u64> {
    let index = placement_index(doc, n);
    let mut out = vec![0u64; n];
    for c in &doc.connections {
        if let Some(g) = key(c)
            && let Some(&(i, _, _)) = index.get(&g)
        {
            out[i] += c.count as u64;
        }
    }
    out
}

/// Energy figures of the estimate (see `ExportConfig` for where the defaults come from).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EnergyModel {
    pub energy_per_spike_pj: f64,
    pub energy_per_synaptic_event_pj: f64,
    pub static_power_uw: f64,
}

/// Power of one simulated chip.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PowerEstimate {
    /// Spikes per second, all neurons.
    pub spikes_per_s: f64,
    /// CAM-matched synaptic events per second (each spike times the CAM entries listening to it).
    pub synaptic_events_per_s: f64,
    pub total_uw: f64,
}

/// P = sum_i rate_i (E_spike + E_syn cams_i) + P_static, from per-neuron spike counts over
/// `seconds` of simulated time. FPGA input events are not counted (their rate is a host choice).
pub fn power(
    spike_counts: &[u64],
    cams: &[u64],
    seconds: f64,
    model: &EnergyModel,
) -> PowerEstimate {
    let s = seconds.max(f64::MIN_POSITIVE);
    let spikes: f64 = spike_counts.iter().map(|&c| c as f64).sum::<f64>() / s;
    let events: f64 = spike_counts
        .iter()
        .zip(cams)
        .map(|(&c, &k)| c as f64 * k as f64)
        .sum::<f64>()
        / s;
    let pj_per_s = spikes * model.energy_per_spike_pj + events * model.energy_per_synaptic_event_pj;
    PowerEstimate {
        spikes_per_s: spikes,
        synaptic_events_per_s: events,
        total_uw: pj_per_s * 1e-6 + model.static_power_uw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::dynapse1::map::{MapOptions, map_network};
    use crate::snn::SnnParams;

    /// A network the board can hold exactly: sparse W_slow and inputs on a grid of one unit per
    /// (core, type), no W_fast.
    fn exact_net() -> Network {
        let n = 40;
        let mut net = Network::init(
            SnnParams {
                n,
                use_fast: false,
                ..Default::default()
            },
            vec![0.3, -0.2, 0.5, 0.1],
            vec![0.4, 0.1, -0.3, 0.2],
            4,
            1,
            1,
            5,
        )
        .unwrap();
        for post in 0..n {
            for j in 1..=6 {
                let pre = (post + 7 * j) % n;
                let k = (post + j) % 4 + 1; // 1..=4 units
                let s = if (post + j) % 3 == 0 { -1.0 } else { 1.0 };
                net.w_slow[pre * n + post] = s * 0.01 * k as f32;
            }
        }
        // Input weights on one grid per sign: +2.5, +10 (AMPA), -5, -10 (GABA_A).
        net.input_override = Some((0..n).map(|i| [2.5, -5.0, 10.0, -10.0][i % 4]).collect());
        net
    }

    #[test]
    fn a_network_on_the_unit_grid_deploys_exactly_and_simulates_the_same() {
        let net = exact_net();
        let m = map_network(&net, &MapOptions::default()).unwrap();
        assert_eq!(m.report.pruned_weight_fraction, 0.0);
        assert!(
            m.report.rel_error_slow < 1e-6,
            "{}",
            m.report.rel_error_slow
        );
        assert!(
            m.report.rel_error_input < 1e-6,
            "{}",
            m.report.rel_error_input
        );
        let dep = deployed_network(&net, &m.doc);
        for (a, b) in dep.w_slow.iter().zip(&net.w_slow) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
        }
        assert!(dep.w_fast.iter().all(|&w| w == 0.0));
        // Virtual channel 0 carries +P, channel 1 carries -P.
        let (p, q) = (dep.input_override.as_ref().unwrap(), net.input_projection());
        assert_eq!((dep.n_in, p.len()), (2, 2 * q.len()));
        for (i, &b) in q.iter().enumerate() {
            for (a, want) in [(p[2 * i], b), (p[2 * i + 1], -b)] {
                assert!((a - want).abs() <= 1e-6 * want.abs(), "{a} vs {want}");
            }
        }
        // CAM entries listening to each neuron: its 6 outgoing slow synapses' counts.
        let cams = cams_per_source(&m.doc, net.n);
        for (pre, &c) in cams.iter().enumerate() {
            let want: u64 = (0..net.n)
                .map(|post| (net.w_slow[pre * net.n + post].abs() / 0.01).round() as u64)
                .sum();
            assert_eq!(c, want, "neuron {pre}");
        }
        // The deployed and the trained network produce the same output on a trial.
        use crate::engine::{CpuEngine, Engine, EnsembleJob, Record, smooth_input};
        let signed = vec![smooth_input(400, 1, 1.0, 3)];
        assert!(signed[0].iter().any(|&x| x < 0.0) && signed[0].iter().any(|&x| x > 0.0));
        let rectified = vec![rectify_input(&signed[0], 1)];
        let none = crate::chip::Perturbation::default();
        let sim = |n: &Network, inputs: &[Vec<f32>]| {
            CpuEngine
                .simulate(&EnsembleJob {
                    net: n,
                    perturbation: &none,
                    seed: 2,
                    instances: 0..1,
                    inputs,
                    trial_offset: 0,
                    steps: 400,
                    record: Record::default(),
                })
                .unwrap()
        };
        let (a, b) = (sim(&dep, &rectified), sim(&net, &signed));
        // The float twin on rectified inputs is the trained network exactly.
        let f = sim(&float_on_chip(&net), &rectified);
        assert_eq!(f.trials[0][0].spike_counts, b.trials[0][0].spike_counts);
        let ca: u32 = a.trials[0][0].spike_counts.iter().sum();
        assert!(ca > 10, "the network should spike ({ca})");
        assert_eq!(a.trials[0][0].spike_counts, b.trials[0][0].spike_counts);
        for (x, y) in a.trials[0][0].y.iter().zip(&b.trials[0][0].y) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn rectified_input_splits_the_sign() {
        // T = 2, C = 2.
        let x = [0.5, -2.0, 0.0, 3.0];
        assert_eq!(
            rectify_input(&x, 2),
            vec![0.5, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0]
        );
    }

    #[test]
    fn power_is_rates_times_energies() {
        // Two neurons over 2 s: 10 and 4 spikes, 3 and 0 listening CAMs.
        // spikes/s = 7, events/s = (10*3)/2 = 15, P = 7*100 pJ/s + 15*10 pJ/s = 850 pJ/s
        // = 8.5e-4 uW, plus 2 uW static.
        let m = EnergyModel {
            energy_per_spike_pj: 100.0,
            energy_per_synaptic_event_pj: 10.0,
            static_power_uw: 2.0,
        };
        let p = power(&[10, 4], &[3, 0], 2.0, &m);
        assert_eq!(p.spikes_per_s, 7.0);
        assert_eq!(p.synaptic_events_per_s, 15.0);
        assert!(
            (p.total_uw - (2.0 + 8.5e-4)).abs() < 1e-12,
            "{}",
            p.total_uw
        );
    }
}
