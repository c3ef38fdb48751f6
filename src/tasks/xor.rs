//! Temporal XOR (paper task 1, docs/design.md §4; reference `generate_xor_sample`).
//!
//! One input channel, 1 ms steps. Two pulses of random sign and random length are placed in the
//! first two thirds of the trial, the second starting at least `min_gap_ms` after the first ends,
//! and smoothed with a Gaussian. The target is +1 (signs differ) or -1 (signs equal) from 50 ms to
//! 300 ms after the end of the second pulse, Gaussian-smoothed and normalised to max |1|.
//!
//! Unlike the reference, the first pulse's latest end also leaves room for the gap and the second
//! pulse, so the placement can never be infeasible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Split, Task, Trial, gaussian_smooth, trial_seed};

/// Parameters of the temporal XOR task (all times in ms; one step is 1 ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XorParams {
    /// Trial length.
    pub duration_ms: usize,
    /// Gaussian smoothing of the input pulses.
    pub input_sigma_ms: f32,
    /// Gaussian smoothing of the target.
    pub target_sigma_ms: f32,
    /// Shortest pulse.
    pub min_pulse_ms: f32,
    /// Longest pulse.
    pub max_pulse_ms: f32,
    /// Minimum silence between the end of the first pulse and the start of the second.
    pub min_gap_ms: f32,
    /// Target onset after the end of the second pulse.
    pub response_start_ms: f32,
    /// Target offset after the end of the second pulse.
    pub response_end_ms: f32,
    /// Minimum |output| in the window for the network to have made a decision.
    pub decision_threshold: f32,
    /// Moving-average smoothing of the output before the decision, `y_s[t] = alpha y_s[t-1] +
    /// (1 - alpha) y[t]` (the reference's XOR scripts use alpha = 0.95); 0: none. It changes the
    /// decision only, never the output itself.
    pub decision_smoothing: f32,
}

impl Default for XorParams {
    fn default() -> Self {
        Self {
            duration_ms: 1000,
            input_sigma_ms: 10.0,
            target_sigma_ms: 20.0,
            min_pulse_ms: 67.0,
            max_pulse_ms: 167.0,
            min_gap_ms: 100.0,
            response_start_ms: 50.0,
            response_end_ms: 300.0,
            decision_threshold: 0.5,
            decision_smoothing: 0.0,
        }
    }
}

impl XorParams {
    /// Steps available for the pulses: the first two thirds of the trial.
    pub fn pulse_region(&self) -> usize {
        self.duration_ms * 2 / 3
    }

    /// Check every field; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let finite_nonneg = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be finite and >= 0, got {v}"))
            }
        };
        if self.duration_ms == 0 {
            return Err("duration_ms must be > 0, got 0".into());
        }
        finite_nonneg("input_sigma_ms", self.input_sigma_ms)?;
        finite_nonneg("target_sigma_ms", self.target_sigma_ms)?;
        finite_nonneg("min_gap_ms", self.min_gap_ms)?;
        finite_nonneg("response_start_ms", self.response_start_ms)?;
        if !(0.0..1.0).contains(&self.decision_smoothing) {
            return Err(format!(
                "decision_smoothing must be in [0, 1), got {}",
                self.decision_smoothing
            ));
        }
        if !(self.min_pulse_ms.is_finite() && self.min_pulse_ms >= 1.0) {
            return Err(format!(
                "min_pulse_ms must be >= 1, got {}",
                self.min_pulse_ms
            ));
        }
        if !(self.max_pulse_ms.is_finite() && self.max_pulse_ms >= self.min_pulse_ms) {
            return Err(format!(
                "max_pulse_ms must be >= min_pulse_ms ({}), got {}",
                self.min_pulse_ms, self.max_pulse_ms
            ));
        }
        if !(self.response_end_ms.is_finite() && self.response_end_ms > self.response_start_ms) {
            return Err(format!(
                "response_end_ms must be > response_start_ms ({}), got {}",
                self.response_start_ms, self.response_end_ms
            ));
        }
        if !(self.decision_threshold.is_finite() && self.decision_threshold > 0.0) {
            return Err(format!(
                "decision_threshold must be > 0, got {}",
                self.decision_threshold
            ));
        }
        let region = self.pulse_region() as f32;
        let need = 2.0 * self.max_pulse_ms.floor() + self.min_gap_ms.ceil();
        if need > region {
            return Err(format!(
                "max_pulse_ms: two pulses of {} ms plus min_gap_ms {} need {need} ms, but only {region} ms (2/3 of duration_ms) are available",
                self.max_pulse_ms, self.min_gap_ms
            ));
        }
        if region + self.response_end_ms > self.duration_ms as f32 {
            return Err(format!(
                "duration_ms: the response window can end at {} ms, beyond duration_ms {}",
                region + self.response_end_ms,
                self.duration_ms
            ));
        }
        Ok(())
    }
}

/// The temporal XOR task.
#[derive(Clone, Debug)]
pub struct XorTask {
    /// Task parameters.
    pub params: XorParams,
    /// Global seed; trials derive from it via [`trial_seed`].
    pub seed: u64,
}

/// Round a non-negative duration in ms to steps, treating garbage as 0.
fn steps_of(ms: f32) -> usize {
    if ms.is_finite() && ms > 0.0 {
        ms.round() as usize
    } else {
        0
    }
}

impl XorTask {
    /// A task with the given parameters and global seed (call [`XorParams::validate`] first).
    pub fn new(params: XorParams, seed: u64) -> Self {
        Self { params, seed }
    }

    /// Build a trial from explicit pulse signs (+1 / -1 by sign of the value), start steps and
    /// lengths in steps. Pulses are clipped to the trial; nothing is checked against the
    /// placement constraints, so tests can build any configuration.
    pub fn trial_from(&self, signs: [i32; 2], starts: [usize; 2], lengths: [usize; 2]) -> Trial {
        let p = &self.params;
        let t_len = p.duration_ms;
        let sign = |s: i32| if s < 0 { -1i32 } else { 1 };
        let signs = [sign(signs[0]), sign(signs[1])];

        let mut raw = vec![0.0f32; t_len];
        let mut events = Vec::with_capacity(2);
        for k in 0..2 {
            let start = starts[k].min(t_len);
            let end = starts[k].saturating_add(lengths[k]).min(t_len);
            raw[start..end].fill(signs[k] as f32);
            events.push((start, end, signs[k]));
        }
        let input = gaussian_smooth(&raw, p.input_sigma_ms);

        let label = if signs[0] != signs[1] { 1 } else { -1 };
        let end2 = events[1].1;
        let r0 = end2
            .saturating_add(steps_of(p.response_start_ms))
            .min(t_len);
        let r1 = end2.saturating_add(steps_of(p.response_end_ms)).min(t_len);
        let mut tgt = vec![0.0f32; t_len];
        tgt[r0..r1.max(r0)].fill(label as f32);
        let mut target = gaussian_smooth(&tgt, p.target_sigma_ms);
        let peak = target.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if peak > 0.0 {
            target.iter_mut().for_each(|v| *v /= peak);
        }

        // Read the decision until the smoothed target has decayed (2 sigma past its offset).
        let tail = steps_of(p.response_end_ms + 2.0 * p.target_sigma_ms);
        let window = (end2, end2.saturating_add(tail).min(t_len));
        Trial {
            input,
            target,
            label,
            steps: t_len,
            channels: 1,
            outputs: 1,
            window,
            events,
        }
    }

    /// Draw pulse signs, starts and lengths for one trial.
    fn sample_pulses(&self, rng: &mut StdRng) -> ([i32; 2], [usize; 2], [usize; 2]) {
        let p = &self.params;
        let region = p.pulse_region();
        let gap = steps_of(p.min_gap_ms.ceil());
        let lo = steps_of(p.min_pulse_ms.ceil()).max(1);
        let hi = steps_of(p.max_pulse_ms.floor()).max(lo);
        let signs = [
            if rng.random::<bool>() { 1 } else { -1 },
            if rng.random::<bool>() { 1 } else { -1 },
        ];
        // Lengths first, so the positions below always have a non-empty range; with invalid
        // parameters the lengths shrink to fit rather than panic.
        let d1 = rng.random_range(lo..=hi);
        let d2 = rng.random_range(lo..=hi);
        let room = region.saturating_sub(gap);
        let d1 = d1.min(room / 2).max(1);
        let d2 = d2.min(room.saturating_sub(d1)).max(1);
        let end1_max = region.saturating_sub(gap + d2).max(d1);
        let end1 = rng.random_range(d1..=end1_max);
        let start2_min = end1 + gap;
        let start2_max = region.saturating_sub(d2).max(start2_min);
        let start2 = rng.random_range(start2_min..=start2_max);
        (signs, [end1 - d1, start2], [d1, d2])
    }
}

impl Task for XorTask {
    fn name(&self) -> &'static str {
        "xor"
    }
    fn channels(&self) -> usize {
        1
    }
    fn outputs(&self) -> usize {
        1
    }
    fn steps(&self) -> usize {
        self.params.duration_ms
    }
    fn trial(&self, split: Split, index: u64) -> Trial {
        let mut rng = StdRng::seed_from_u64(trial_seed(self.seed, split, index));
        let (signs, starts, lengths) = self.sample_pulses(&mut rng);
        self.trial_from(signs, starts, lengths)
    }
    /// The sign of the largest-magnitude output sample in the window, if it reaches the threshold.
    fn decide(&self, trial: &Trial, output: &[f32]) -> Option<i32> {
        let outs = trial.outputs.max(1);
        let alpha = self.params.decision_smoothing;
        let smoothed;
        let output = if alpha > 0.0 {
            smoothed = smooth(output, outs, alpha);
            &smoothed[..]
        } else {
            output
        };
        let (a, b) = trial.window;
        let mut best = 0.0f32;
        let mut best_v = 0.0f32;
        for t in a..b {
            // NaN never compares greater, so a diverged network makes no decision.
            if let Some(&v) = output.get(t * outs)
                && v.abs() > best
            {
                best = v.abs();
                best_v = v;
            }
        }
        if best >= self.params.decision_threshold {
            Some(if best_v > 0.0 { 1 } else { -1 })
        } else {
            None
        }
    }
    fn labels(&self) -> &'static [i32] {
        &[-1, 1]
    }
}

/// `y_s[t] = alpha y_s[t-1] + (1 - alpha) y[t]` per output channel, from y_s[-1] = 0.
fn smooth(y: &[f32], outs: usize, alpha: f32) -> Vec<f32> {
    let mut s = vec![0f32; y.len()];
    let mut prev = vec![0f32; outs];
    for (row, out) in y.chunks(outs).zip(s.chunks_mut(outs)) {
        for ((p, &v), o) in prev.iter_mut().zip(row).zip(out) {
            *p = alpha * *p + (1.0 - alpha) * v;
            *o = *p;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_changes_only_the_decision() {
        let plain = task();
        let sm = XorTask::new(
            XorParams {
                decision_smoothing: 0.95,
                ..XorParams::default()
            },
            42,
        );
        let (a, b) = (plain.trial(Split::Test, 3), sm.trial(Split::Test, 3));
        assert_eq!(
            (&a.input, &a.target, a.label),
            (&b.input, &b.target, b.label)
        );
        // a right answer of 0.8 with a 3-step wrong-sign glitch of -2 at its start
        let tr = plain.trial_from([1, 1], [0, 200], [100, 100]);
        let mut out = vec![0.0f32; tr.steps];
        for v in &mut out[tr.window.0 - 100..tr.window.1] {
            *v = -0.8;
        }
        for v in &mut out[tr.window.0..tr.window.0 + 3] {
            *v = 2.0;
        }
        let sm = XorTask::new(
            XorParams {
                decision_smoothing: 0.95,
                ..XorParams::default()
            },
            42,
        );
        assert_eq!(
            plain.decide(&tr, &out),
            Some(1),
            "the glitch wins without smoothing"
        );
        assert_eq!(
            sm.decide(&tr, &out),
            Some(-1),
            "the moving average removes it"
        );
        // by hand: one step of the average from 0 is (1 - alpha) y
        assert!((smooth(&[2.0], 1, 0.95)[0] - 0.1).abs() < 1e-6);
        assert_eq!(smooth(&[1.0, 2.0], 1, 0.0), vec![1.0, 2.0]);
        let p = XorParams {
            decision_smoothing: 1.0,
            ..XorParams::default()
        };
        assert!(p.validate().unwrap_err().contains("decision_smoothing"));
    }

    fn task() -> XorTask {
        XorTask::new(XorParams::default(), 42)
    }

    #[test]
    fn default_params_are_valid() {
        assert_eq!(XorParams::default().validate(), Ok(()));
    }

    #[test]
    fn every_sign_combination_gives_the_xor_target() {
        let t = task();
        let starts = [100, 350];
        let lengths = [120, 100];
        let end2 = 450;
        for s1 in [-1, 1] {
            for s2 in [-1, 1] {
                let tr = t.trial_from([s1, s2], starts, lengths);
                let want = if s1 != s2 { 1.0 } else { -1.0 };
                assert_eq!(tr.label, want as i32);
                // Input plateaus carry the pulse signs.
                assert!((tr.input[160] - s1 as f32).abs() < 1e-3);
                assert!((tr.input[400] - s2 as f32).abs() < 1e-3);
                assert!(tr.input[300].abs() < 1e-3);
                // Centre of the response window is at full amplitude.
                let centre = end2 + 175;
                assert!(
                    (tr.target[centre] - want).abs() < 1e-3,
                    "{}",
                    tr.target[centre]
                );
                // Far outside (> 4 sigma = 80 ms from the edges) the target is exactly 0.
                for (i, &v) in tr.target.iter().enumerate() {
                    if i < end2 + 50 - 81 || i > end2 + 300 + 81 {
                        assert_eq!(v, 0.0, "t={i}");
                    } else {
                        assert!(v * want >= 0.0, "wrong sign at {i}");
                    }
                }
                let peak = tr.target.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!((peak - 1.0).abs() < 1e-6);
                assert_eq!(tr.window, (end2, end2 + 340));
                assert_eq!(tr.events, vec![(100, 220, s1), (350, 450, s2)]);
            }
        }
    }

    #[test]
    fn sampled_pulses_respect_placement_constraints() {
        let t = task();
        let region = 1000 * 2 / 3;
        let mut counts = [0usize; 4];
        for i in 0..2000 {
            let tr = t.trial(Split::Train, i);
            let [(s1, e1, g1), (s2, e2, g2)] = [tr.events[0], tr.events[1]];
            for (s, e) in [(s1, e1), (s2, e2)] {
                assert!((67..=167).contains(&(e - s)), "trial {i}: length {}", e - s);
            }
            assert!(s2 >= e1 + 100, "trial {i}: gap {}", s2 as i64 - e1 as i64);
            assert!(e2 <= region, "trial {i}: end2 {e2}");
            counts[((g1 > 0) as usize) * 2 + (g2 > 0) as usize] += 1;
            assert_eq!(tr.label, if g1 != g2 { 1 } else { -1 });
        }
        // All four sign combinations occur in roughly equal numbers.
        for c in counts {
            assert!((400..=600).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn trials_are_deterministic() {
        let a = task().trial(Split::Validation, 17);
        let b = task().trial(Split::Validation, 17);
        assert_eq!(a.input, b.input);
        assert_eq!(a.target, b.target);
        assert_eq!(a.events, b.events);
        let c = XorTask::new(XorParams::default(), 43).trial(Split::Validation, 17);
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn splits_never_share_a_trial() {
        let t = task();
        let mut seen = std::collections::HashMap::new();
        for split in [Split::Train, Split::Validation, Split::Test] {
            for i in 0..300 {
                let ev = t.trial(split, i).events;
                // Pulse placement space is ~1e7, so a collision here means shared streams.
                if let Some(prev) = seen.insert(ev.clone(), (split, i)) {
                    assert_eq!(prev.0, split, "{:?}/{i} equals {prev:?}", split);
                }
            }
        }
        let mut splits_seen = std::collections::HashSet::new();
        for (_, (s, _)) in seen {
            splits_seen.insert(s);
        }
        assert_eq!(splits_seen.len(), 3);
    }

    #[test]
    fn decide_on_target_is_correct_and_zeros_are_wrong() {
        let t = task();
        for i in 0..500 {
            let tr = t.trial(Split::Test, i);
            assert_eq!(t.decide(&tr, &tr.target), Some(tr.label), "trial {i}");
            assert!(t.correct(&tr, &tr.target));
            let flipped: Vec<f32> = tr.target.iter().map(|v| -v).collect();
            assert!(!t.correct(&tr, &flipped));
            let zeros = vec![0.0; tr.steps];
            assert_eq!(t.decide(&tr, &zeros), None);
            assert!(!t.correct(&tr, &zeros));
        }
    }

    #[test]
    fn decide_ignores_outputs_outside_the_window_and_below_threshold() {
        let t = task();
        let tr = t.trial_from([1, 1], [0, 200], [100, 100]);
        let mut out = vec![0.0f32; tr.steps];
        out[tr.window.0 - 1] = 5.0; // before the window
        assert_eq!(t.decide(&tr, &out), None);
        out[tr.window.0 + 10] = -0.49;
        assert_eq!(t.decide(&tr, &out), None);
        out[tr.window.0 + 20] = -0.7;
        out[tr.window.0 + 30] = 0.6;
        assert_eq!(t.decide(&tr, &out), Some(-1));
        out[tr.window.0 + 40] = f32::NAN;
        assert_eq!(t.decide(&tr, &out), Some(-1));
        assert_eq!(t.decide(&tr, &out[..10]), None);
    }

    #[test]
    fn validate_names_bad_fields() {
        let bad = |f: fn(&mut XorParams), field: &str| {
            let mut p = XorParams::default();
            f(&mut p);
            let e = p.validate().unwrap_err();
            assert!(e.contains(field), "{e}");
            // Generation must not panic even with invalid parameters.
            let t = XorTask::new(p, 1);
            for i in 0..20 {
                let tr = t.trial(Split::Train, i);
                assert_eq!(tr.input.len(), tr.steps);
                let _ = t.decide(&tr, &tr.target);
            }
        };
        bad(|p| p.min_pulse_ms = -5.0, "min_pulse_ms");
        bad(|p| p.max_pulse_ms = 50.0, "max_pulse_ms");
        bad(|p| p.max_pulse_ms = 400.0, "max_pulse_ms");
        bad(|p| p.min_gap_ms = f32::NAN, "min_gap_ms");
        bad(|p| p.input_sigma_ms = -1.0, "input_sigma_ms");
        bad(|p| p.response_end_ms = 10.0, "response_end_ms");
        bad(|p| p.duration_ms = 0, "duration_ms");
        bad(|p| p.duration_ms = 30, "max_pulse_ms");
        bad(|p| p.decision_threshold = 0.0, "decision_threshold");
    }
}
