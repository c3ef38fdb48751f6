//! Simulations the baselines' training needs beyond the engine's outputs: the filtered spike
//! trains r(t) of every neuron (the reservoir's features), and a step loop with a per-step hook
//! for online learning (FORCE).

use crate::chip::Perturbation;
use crate::engine::lif_step::{NeuronConsts, State, StepWeights, step_with_types};
use crate::engine::{CpuEngine, Engine, EngineError, EnsembleJob, Record, transpose};
use crate::snn::Network;

/// A copy of `net` whose decoded state is r itself: D = I (N x N), so the engine's recorded
/// x~ is the filtered spike trains, exactly as the readout sees them.
pub fn feature_network(net: &Network) -> Network {
    let n = net.n;
    let mut d = vec![0f32; n * n];
    for i in 0..n {
        d[i * n + i] = 1.0;
    }
    Network {
        nc: n,
        d,
        f: vec![0.0; n * n],
        w_in_teacher: vec![0.0; net.n_in * n],
        w_out_teacher: vec![0.0; n * net.n_out],
        input_override: Some(net.input_projection()),
        ..net.clone()
    }
}

/// r(t) (steps x N, row-major) of each input on the nominal network, trials numbered from
/// `trial_offset` (they key the initial membrane potentials as in every other simulation),
/// and the number of spikes of all of them.
pub fn features(
    net: &Network,
    inputs: &[Vec<f32>],
    steps: usize,
    trial_offset: u32,
    seed: u64,
) -> Result<(Vec<Vec<f32>>, u64), EngineError> {
    let feat = feature_network(net);
    let out = CpuEngine.simulate(&EnsembleJob {
        net: &feat,
        perturbation: &Perturbation::default(),
        seed,
        instances: 0..1,
        inputs,
        trial_offset,
        steps,
        record: Record {
            x: true,
            spikes: false,
            v: false,
        },
    })?;
    let trials = out.trials.into_iter().next().unwrap_or_default();
    let spikes = trials
        .iter()
        .map(|o| o.spike_counts.iter().map(|&c| c as u64).sum::<u64>())
        .sum();
    Ok((
        trials
            .into_iter()
            .map(|o| o.x.unwrap_or_default())
            .collect(),
        spikes,
    ))
}

/// Runs one trial of the nominal `net` step by step; after every step `hook(t, state)` may read
/// the state and set the next step's feedback current `state.i_fb`. Returns the spike count.
pub fn run_with_hook(
    net: &Network,
    input: &[f32],
    steps: usize,
    trial: u32,
    seed: u64,
    mut hook: impl FnMut(usize, &mut State),
) -> u64 {
    let (n, c) = (net.n, net.n_in);
    let consts = NeuronConsts::nominal(net);
    let proj_t = transpose(&net.input_projection(), n, c);
    // the hook reads r; the engine's own readout of x~ is not used here
    let d_t = vec![0f32; n * net.nc];
    let w = StepWeights {
        w_fast: net
            .w_fast
            .iter()
            .any(|&x| x != 0.0)
            .then_some(&net.w_fast[..]),
        w_slow: net
            .w_slow
            .iter()
            .any(|&x| x != 0.0)
            .then_some(&net.w_slow[..]),
        d_t: &d_t,
        input_proj_t: &proj_t,
    };
    let extra: Vec<Option<&[f32]>> = net
        .extra_synapses
        .iter()
        .map(|t| t.is_nonzero().then_some(&t.w[..]))
        .collect();
    let mut st = State::new(n, net.nc);
    let mut v0 = vec![0f32; n];
    crate::chip::instance::initial_v(seed, 0, trial, net.params.v_reset, &consts.v_th, &mut v0);
    st.reset(&v0);
    let mut spikes = 0u64;
    for t in 0..steps {
        step_with_types(
            &consts,
            &w,
            &extra,
            &mut st,
            &input[t * c..(t + 1) * c],
            t as u32,
            None,
        );
        spikes += st.spikes.len() as u64;
        hook(t, &mut st);
    }
    spikes
}
