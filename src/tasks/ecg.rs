//! Synthetic ECG anomaly detection (docs/design.md §4).
//!
//! # Generator
//! ECGSYN (McSharry et al. 2003, IEEE TBME 50:289): a point rotates on the unit limit cycle at
//! angular speed ω = 2π / RR and the ECG is the z coordinate of
//! `dz/dt = −Σ_i a_i Δθ_i ω exp(−Δθ_i² / (2 b_i²)) − (z − z0)`, with the P, Q, R, S, T events at
//! angles (−70, −15, 0, 15, 100)°, amplitudes (1.2, −5, 30, −7.5, 0.75) and widths
//! (0.25, 0.1, 0.1, 0.1, 0.4) rad, widths and angles scaled with heart rate as in ECGSYN.
//!
//! The forcing term is an exact derivative: over one beat at constant ω it integrates to
//! `Σ_i a_i b_i² exp(−Δθ_i² / (2 b_i²))`. We therefore give every beat its own phase clock centred
//! on its R peak (angular speed fixed at the trial's nominal heart rate) and sum these closed-form
//! bumps; only the linear relaxation `−(z − z0)` (z0 = 0, rate 1/s) is integrated with 1 ms Euler
//! steps, after a 3 s pre-roll. Compared with a single shared phase, this keeps a premature beat's
//! morphology intact instead of compressing it into the shortened RR interval.
//!
//! Heart rate is drawn per trial in `[hr_min_bpm, hr_max_bpm]`; each RR interval is jittered by a
//! Gaussian factor (std `hrv_std`, clipped at 3 std). The clean signal is scaled so a normal R
//! peaks at about 1 (the relaxation term puts the isoelectric line slightly below 0). Added to
//! it: baseline wander (a 0.15–0.3 Hz sinus of amplitude `baseline_amp`), 50 Hz mains hum
//! (`mains_amp`) and white noise whose power is the clean power divided by `10^(snr_db/10)`.
//!
//! # Anomalies
//! Premature ventricular contractions (PVCs): the R peak comes at 60–75 % of the sinus interval,
//! followed by a full compensatory pause (the next sinus beat keeps its time); no P wave; QRS
//! widths and Q/S angles ×2–3, R ×1.3–1.7 taller, S twice as deep; T wave inverted (×1.5–2.5),
//! wider and a little later. A trial is anomalous with probability `anomaly_trial_prob`; each
//! eligible beat of an anomalous trial is a PVC with probability `pvc_prob`, and if none was drawn
//! one eligible beat is forced. Eligible: not the first beat in the trial, not right after another
//! PVC, and the whole beat inside the trial. (With parameters that pass
//! [`EcgParams::validate`] an eligible beat always exists.)
//!
//! # Input channels (a causal front end a small rate RNN can use)
//! 0. The raw signal (clean + wander + hum + noise), R peak about 1.
//! 1. Baseline removed: a causal one-pole high-pass at 0.5 Hz of channel 0.
//! 2. Low-band energy: channel 1 through a causal 60 ms moving average (which also nulls the
//!    50 Hz hum and most noise), squared, through a causal 40 ms moving average, times
//!    [`FEATURE_GAIN`]. A narrow normal QRS is mostly averaged away while the wide, tall PVC
//!    complex and its inverted T pass, so PVCs peak near 1 and normal beats stay well below.
//!
//! # Target and decision
//! The target is 1 from a PVC's onset to its end plus `target_hold_ms`, 0 elsewhere. `decide`
//! smooths the output with a causal `smooth_ms` moving average and predicts 1 when it stays
//! above `detect_threshold` for at least `detect_min_ms` consecutive steps, else 0.

use std::f64::consts::PI;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{Split, Task, Trial, trial_seed};

/// Scale of input channel 2, chosen so a typical PVC peaks near 1.
pub const FEATURE_GAIN: f32 = 1.0;

/// ECGSYN event angles (degrees) for P, Q, R, S, T.
const ANGLES_DEG: [f64; 5] = [-70.0, -15.0, 0.0, 15.0, 100.0];
/// ECGSYN event amplitudes a_i.
const AMPS: [f64; 5] = [1.2, -5.0, 30.0, -7.5, 0.75];
/// ECGSYN event widths b_i (rad).
const WIDTHS: [f64; 5] = [0.25, 0.1, 0.1, 0.1, 0.4];
/// Steps simulated before the trial so the relaxation term has settled.
const PRE_ROLL_MS: usize = 3000;
/// High-pass corner of channel 1.
const HP_CORNER_HZ: f64 = 0.5;
/// Windows of the channel-2 feature; 60 ms is three 50 Hz periods so the hum cancels.
const BAND_MA_MS: usize = 60;
const ENERGY_MA_MS: usize = 40;

/// Parameters of the ECG anomaly-detection task (times in ms; one step is 1 ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcgParams {
    /// Trial length.
    pub duration_ms: usize,
    /// Lowest heart rate drawn per trial.
    pub hr_min_bpm: f32,
    /// Highest heart rate drawn per trial.
    pub hr_max_bpm: f32,
    /// Beat-to-beat RR jitter, as a fraction of the nominal RR (std).
    pub hrv_std: f32,
    /// White-noise level: clean power over noise power, in dB.
    pub snr_db: f32,
    /// Baseline wander amplitude, relative to the R peak.
    pub baseline_amp: f32,
    /// 50 Hz mains hum amplitude, relative to the R peak.
    pub mains_amp: f32,
    /// Probability that a trial contains PVCs.
    pub anomaly_trial_prob: f32,
    /// Per-beat PVC probability within an anomalous trial.
    pub pvc_prob: f32,
    /// How long the target stays 1 after a PVC ends.
    pub target_hold_ms: f32,
    /// Level the smoothed output must exceed for a detection.
    pub detect_threshold: f32,
    /// Minimum run above threshold for a detection.
    pub detect_min_ms: f32,
    /// Moving-average length applied to the output before detection.
    pub smooth_ms: f32,
}

impl Default for EcgParams {
    fn default() -> Self {
        Self {
            duration_ms: 4000,
            hr_min_bpm: 60.0,
            hr_max_bpm: 100.0,
            hrv_std: 0.03,
            snr_db: 20.0,
            baseline_amp: 0.15,
            mains_amp: 0.05,
            anomaly_trial_prob: 0.5,
            pvc_prob: 0.25,
            target_hold_ms: 150.0,
            detect_threshold: 0.5,
            detect_min_ms: 30.0,
            smooth_ms: 20.0,
        }
    }
}

impl EcgParams {
    /// Check every field; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let nonneg = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be finite and >= 0, got {v}"))
            }
        };
        let prob = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be in [0, 1], got {v}"))
            }
        };
        if !(self.hr_min_bpm.is_finite() && (20.0..=250.0).contains(&self.hr_min_bpm)) {
            return Err(format!(
                "hr_min_bpm must be in [20, 250], got {}",
                self.hr_min_bpm
            ));
        }
        if !(self.hr_max_bpm.is_finite()
            && self.hr_max_bpm >= self.hr_min_bpm
            && self.hr_max_bpm <= 250.0)
        {
            return Err(format!(
                "hr_max_bpm must be in [hr_min_bpm ({}), 250], got {}",
                self.hr_min_bpm, self.hr_max_bpm
            ));
        }
        if !(self.hrv_std.is_finite() && (0.0..=0.1).contains(&self.hrv_std)) {
            return Err(format!("hrv_std must be in [0, 0.1], got {}", self.hrv_std));
        }
        if !self.snr_db.is_finite() {
            return Err(format!("snr_db must be finite, got {}", self.snr_db));
        }
        nonneg("baseline_amp", self.baseline_amp)?;
        nonneg("mains_amp", self.mains_amp)?;
        prob("anomaly_trial_prob", self.anomaly_trial_prob)?;
        prob("pvc_prob", self.pvc_prob)?;
        nonneg("target_hold_ms", self.target_hold_ms)?;
        if !(self.detect_threshold.is_finite() && self.detect_threshold > 0.0) {
            return Err(format!(
                "detect_threshold must be > 0, got {}",
                self.detect_threshold
            ));
        }
        nonneg("detect_min_ms", self.detect_min_ms)?;
        nonneg("smooth_ms", self.smooth_ms)?;
        // A PVC needs a normal beat before it and must end inside the trial: at most about
        // 2.3 of the longest RR intervals; 2.5 leaves a margin.
        let rr_max = 60_000.0 / self.hr_min_bpm * (1.0 + 3.0 * self.hrv_std);
        let need = (2.5 * rr_max).ceil();
        if (self.duration_ms as f32) < need {
            return Err(format!(
                "duration_ms must be >= {need} for hr_min_bpm {} (room for a normal beat and a PVC), got {}",
                self.hr_min_bpm, self.duration_ms
            ));
        }
        Ok(())
    }
}

/// One heartbeat of a trial, in ms from the trial start (may be negative or beyond the end).
#[derive(Clone, Debug, PartialEq)]
pub struct EcgBeat {
    /// Time of the R peak.
    pub r_peak_ms: f64,
    /// Start of the beat: P-wave onset, or QRS onset for a PVC.
    pub onset_ms: f64,
    /// End of the T wave.
    pub end_ms: f64,
    /// Whether this beat is a premature ventricular contraction.
    pub pvc: bool,
}

/// The additive parts of channel 0, each `steps` long: raw = clean + baseline + mains + noise.
#[derive(Clone, Debug)]
pub struct EcgComponents {
    /// The ECGSYN signal, normal R peak about 1.
    pub clean: Vec<f32>,
    /// Baseline wander.
    pub baseline: Vec<f32>,
    /// 50 Hz hum.
    pub mains: Vec<f32>,
    /// White noise.
    pub noise: Vec<f32>,
}

/// The ECG anomaly-detection task.
#[derive(Clone, Debug)]
pub struct EcgTask {
    /// Task parameters.
    pub params: EcgParams,
    /// Global seed; trials derive from it via [`trial_seed`].
    pub seed: u64,
}

/// Per-beat Gaussian events in the beat's phase: angle θ (rad), width b (rad), height a·b².
#[derive(Clone, Copy, Debug)]
struct Wave {
    theta: [f64; 5],
    b: [f64; 5],
    h: [f64; 5],
}

impl Wave {
    /// The normal beat at a given heart rate, with ECGSYN's rate scaling of angles and widths.
    fn normal(hr_bpm: f64) -> Self {
        let f = (hr_bpm / 60.0).sqrt();
        let f2 = f.sqrt();
        let scale = [f2, f, 1.0, f, 1.0];
        let mut w = Wave {
            theta: [0.0; 5],
            b: [0.0; 5],
            h: [0.0; 5],
        };
        for i in 0..5 {
            w.theta[i] = ANGLES_DEG[i].to_radians() * scale[i];
            w.b[i] = WIDTHS[i] * f;
            w.h[i] = AMPS[i] * w.b[i] * w.b[i];
        }
        w
    }

    /// A PVC built from the normal beat: no P, QRS widened by `widen`, R taller by `r_gain`,
    /// S twice as deep, T inverted with gain `t_gain`, wider and later.
    fn pvc(normal: &Wave, widen: f64, r_gain: f64, t_gain: f64) -> Self {
        let mut w = *normal;
        w.h[0] = 0.0;
        for i in 1..4 {
            w.theta[i] *= widen;
            w.b[i] *= widen;
        }
        w.h[2] *= r_gain;
        w.h[3] *= 2.0;
        w.theta[4] *= 1.1;
        w.b[4] *= 1.25;
        w.h[4] *= -t_gain;
        w
    }

    /// Value of the summed bumps at phase `phi` relative to the R peak.
    fn at(&self, phi: f64) -> f64 {
        (0..5)
            .filter(|&i| self.h[i] != 0.0)
            .map(|i| {
                let d = phi - self.theta[i];
                self.h[i] * (-0.5 * d * d / (self.b[i] * self.b[i])).exp()
            })
            .sum()
    }

    /// Phase extent (start, end) of the beat: first present wave −2b to the T wave +2b.
    fn extent(&self) -> (f64, f64) {
        let first = if self.h[0] != 0.0 { 0 } else { 1 };
        (
            self.theta[first] - 2.0 * self.b[first],
            self.theta[4] + 2.0 * self.b[4],
        )
    }

    /// Phase range outside which every bump is below exp(−8) of its height.
    fn support(&self) -> (f64, f64) {
        (0..5).fold((0.0f64, 0.0f64), |(lo, hi), i| {
            (
                lo.min(self.theta[i] - 4.0 * self.b[i]),
                hi.max(self.theta[i] + 4.0 * self.b[i]),
            )
        })
    }
}

/// A beat with its morphology, before being summarised as an [`EcgBeat`].
struct RawBeat {
    r: f64,
    wave: Wave,
    pvc: bool,
}

/// Everything one trial is made of.
struct Generated {
    beats: Vec<EcgBeat>,
    comps: EcgComponents,
}

/// Parameters clamped into ranges where generation cannot panic or loop forever.
struct Sane {
    steps: usize,
    hr_min: f64,
    hr_max: f64,
    hrv: f64,
    snr_db: f64,
    baseline_amp: f64,
    mains_amp: f64,
    anomaly_p: f64,
    pvc_p: f64,
}

/// Clamp to [lo, hi], mapping NaN to `lo`.
fn clampf(v: f32, lo: f64, hi: f64) -> f64 {
    let v = v as f64;
    if v.is_nan() { lo } else { v.clamp(lo, hi) }
}

/// Causal moving average over `len` steps (shorter at the start).
fn causal_ma(x: &[f32], len: usize) -> Vec<f32> {
    let len = len.max(1);
    let mut acc = 0.0f64;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            acc += v as f64;
            if i >= len {
                acc -= x[i - len] as f64;
            }
            (acc / (i + 1).min(len) as f64) as f32
        })
        .collect()
}

/// Duration in ms to steps, garbage to 0.
fn steps_of(ms: f32) -> usize {
    if ms.is_finite() && ms > 0.0 {
        ms.round() as usize
    } else {
        0
    }
}

impl EcgTask {
    /// A task with the given parameters and global seed (call [`EcgParams::validate`] first).
    pub fn new(params: EcgParams, seed: u64) -> Self {
        Self { params, seed }
    }

    fn sane(&self) -> Sane {
        let p = &self.params;
        let hr_min = clampf(p.hr_min_bpm, 20.0, 250.0);
        Sane {
            steps: p.duration_ms,
            hr_min,
            hr_max: clampf(p.hr_max_bpm, hr_min, 250.0),
            hrv: clampf(p.hrv_std, 0.0, 0.1),
            snr_db: if p.snr_db.is_nan() {
                f64::INFINITY
            } else {
                p.snr_db as f64
            },
            baseline_amp: clampf(p.baseline_amp, 0.0, 1e6),
            mains_amp: clampf(p.mains_amp, 0.0, 1e6),
            anomaly_p: clampf(p.anomaly_trial_prob, 0.0, 1.0),
            pvc_p: clampf(p.pvc_prob, 0.0, 1.0),
        }
    }

    /// Beat schedule and morphologies, including pre-roll beats and one beyond the end.
    fn schedule(&self, s: &Sane, rng: &mut StdRng) -> (Vec<RawBeat>, Wave, f64) {
        let t_end = s.steps as f64;
        let hr = if s.hr_max > s.hr_min {
            rng.random_range(s.hr_min..=s.hr_max)
        } else {
            s.hr_min
        };
        let rr = 60_000.0 / hr;
        let normal = Wave::normal(hr);
        let anomalous = rng.random::<f64>() < s.anomaly_p;

        let mut times = Vec::new();
        let mut r = -(PRE_ROLL_MS as f64) - rng.random::<f64>() * rr;
        while r < t_end + 1.5 * rr {
            times.push(r);
            let z: f64 = rng.sample(StandardNormal);
            r += rr * (1.0 + s.hrv * z.clamp(-3.0, 3.0));
        }
        times.push(r);

        let omega = 2.0 * PI / rr;
        let mut beats: Vec<RawBeat> = times
            .iter()
            .map(|&r| RawBeat {
                r,
                wave: normal,
                pvc: false,
            })
            .collect();
        let first_in = beats.iter().position(|b| b.r >= 0.0);
        // Candidate PVCs with their own prematurity and shape, drawn for every in-trial beat
        // after the first so the random stream does not depend on earlier choices.
        let mut candidates: Vec<(usize, RawBeat)> = Vec::new();
        if let Some(f) = first_in {
            for k in (f + 1)..beats.len() {
                if beats[k].r >= t_end {
                    break;
                }
                let prem = rng.random_range(0.6..=0.75);
                let wave = Wave::pvc(
                    &normal,
                    rng.random_range(2.0..=3.0),
                    rng.random_range(1.3..=1.7),
                    rng.random_range(1.5..=2.5),
                );
                let r_new = beats[k - 1].r + prem * (beats[k].r - beats[k - 1].r);
                let (a, b) = wave.extent();
                let fits = r_new + a / omega >= 0.0 && r_new + b / omega <= t_end;
                let coin = rng.random::<f64>() < s.pvc_p;
                if fits {
                    candidates.push((
                        k,
                        RawBeat {
                            r: r_new,
                            wave,
                            pvc: coin,
                        },
                    ));
                }
            }
        }
        if anomalous && !candidates.is_empty() {
            let pick = rng.random_range(0..candidates.len());
            // Couplets are not modelled: a PVC right after another stays normal.
            let mut chosen = vec![false; candidates.len()];
            let mut last: Option<usize> = None;
            for (j, (k, cand)) in candidates.iter().enumerate() {
                if cand.pvc && last.is_none_or(|l| l + 1 != *k) {
                    chosen[j] = true;
                    last = Some(*k);
                }
            }
            if !chosen.contains(&true) {
                chosen[pick] = true;
            }
            for ((k, mut cand), c) in candidates.into_iter().zip(chosen) {
                if c {
                    cand.pvc = true;
                    beats[k] = cand;
                }
            }
        }
        (beats, normal, omega)
    }

    fn generate(&self, split: Split, index: u64) -> Generated {
        let s = self.sane();
        let mut rng = StdRng::seed_from_u64(trial_seed(self.seed, split, index));
        let (beats, normal, omega) = self.schedule(&s, &mut rng);

        // Closed-form forcing g over pre-roll + trial.
        let total = PRE_ROLL_MS + s.steps;
        let mut g = vec![0.0f64; total];
        for beat in &beats {
            let (lo, hi) = beat.wave.support();
            let centre = beat.r + PRE_ROLL_MS as f64;
            let a = (centre + lo / omega).floor().max(0.0) as usize;
            let b = ((centre + hi / omega).ceil().max(0.0) as usize).min(total);
            for (n, gn) in g.iter_mut().enumerate().take(b).skip(a) {
                *gn += beat.wave.at((n as f64 - centre) * omega);
            }
        }
        // Relaxation −(z − 0) at 1/s: z = g − w with w' = g − w; start w at the pre-roll mean.
        let dt_s = 1e-3;
        let mut w = g[..PRE_ROLL_MS].iter().sum::<f64>() / PRE_ROLL_MS as f64;
        // In steady state the relaxation removes the cycle mean of g, so a normal R peak sits at
        // g(0) − mean(g); scale that to 1.
        let cycle_mean = (0..720)
            .map(|j| normal.at((j as f64 + 0.5) / 720.0 * 2.0 * PI - PI))
            .sum::<f64>()
            / 720.0;
        let norm = normal.at(0.0) - cycle_mean;
        let mut clean = Vec::with_capacity(s.steps);
        for (n, &gn) in g.iter().enumerate() {
            if n >= PRE_ROLL_MS {
                clean.push(((gn - w) / norm) as f32);
            }
            w += dt_s * (gn - w);
        }

        let t_s = |n: usize| n as f64 * 1e-3;
        let f_base = rng.random_range(0.15..=0.3);
        let ph_base = rng.random_range(0.0..2.0 * PI);
        let ph_mains = rng.random_range(0.0..2.0 * PI);
        let baseline: Vec<f32> = (0..s.steps)
            .map(|n| (s.baseline_amp * (2.0 * PI * f_base * t_s(n) + ph_base).sin()) as f32)
            .collect();
        let mains: Vec<f32> = (0..s.steps)
            .map(|n| (s.mains_amp * (2.0 * PI * 50.0 * t_s(n) + ph_mains).sin()) as f32)
            .collect();
        let power = clean.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.steps.max(1) as f64;
        let mut sigma = (power / 10f64.powf(s.snr_db / 10.0)).sqrt();
        if !sigma.is_finite() {
            sigma = 0.0;
        }
        let noise: Vec<f32> = (0..s.steps)
            .map(|_| (sigma * rng.sample::<f64, _>(StandardNormal)) as f32)
            .collect();

        let beats = beats
            .iter()
            .filter_map(|b| {
                let (a, e) = b.wave.extent();
                let onset = b.r + a / omega;
                let end = b.r + e / omega;
                (end > 0.0 && onset < s.steps as f64).then_some(EcgBeat {
                    r_peak_ms: b.r,
                    onset_ms: onset,
                    end_ms: end,
                    pvc: b.pvc,
                })
            })
            .collect();
        Generated {
            beats,
            comps: EcgComponents {
                clean,
                baseline,
                mains,
                noise,
            },
        }
    }

    /// The beats overlapping the trial (R peak, extent, kind), in time order.
    pub fn beats(&self, split: Split, index: u64) -> Vec<EcgBeat> {
        self.generate(split, index).beats
    }

    /// R-peak times (ms from trial start) of the beats whose R peak lies inside the trial.
    pub fn beat_times(&self, split: Split, index: u64) -> Vec<f64> {
        let t_end = self.params.duration_ms as f64;
        self.beats(split, index)
            .into_iter()
            .map(|b| b.r_peak_ms)
            .filter(|&r| (0.0..t_end).contains(&r))
            .collect()
    }

    /// The additive components of the raw signal (channel 0) of a trial.
    pub fn components(&self, split: Split, index: u64) -> EcgComponents {
        self.generate(split, index).comps
    }

    /// The clean ECG of a trial (no wander, hum or noise).
    pub fn clean_signal(&self, split: Split, index: u64) -> Vec<f32> {
        self.components(split, index).clean
    }

    /// Channels 1 and 2 of the front end from the raw signal (see the module docs).
    pub fn front_end(raw: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let rc = 1.0 / (2.0 * PI * HP_CORNER_HZ);
        let a = rc / (rc + 1e-3);
        let mut hp = Vec::with_capacity(raw.len());
        let mut y = 0.0f64;
        let mut prev = raw.first().copied().unwrap_or(0.0) as f64;
        for &x in raw {
            y = a * (y + x as f64 - prev);
            prev = x as f64;
            hp.push(y as f32);
        }
        let band = causal_ma(&hp, BAND_MA_MS);
        let sq: Vec<f32> = band.iter().map(|v| v * v).collect();
        let energy = causal_ma(&sq, ENERGY_MA_MS)
            .into_iter()
            .map(|v| v * FEATURE_GAIN)
            .collect();
        (hp, energy)
    }
}

impl Task for EcgTask {
    fn name(&self) -> &'static str {
        "ecg"
    }
    fn channels(&self) -> usize {
        3
    }
    fn outputs(&self) -> usize {
        1
    }
    fn steps(&self) -> usize {
        self.params.duration_ms
    }
    fn trial(&self, split: Split, index: u64) -> Trial {
        let steps = self.params.duration_ms;
        let Generated { beats, comps } = self.generate(split, index);
        let raw: Vec<f32> = (0..steps)
            .map(|n| comps.clean[n] + comps.baseline[n] + comps.mains[n] + comps.noise[n])
            .collect();
        let (hp, energy) = Self::front_end(&raw);
        let mut input = Vec::with_capacity(steps * 3);
        for n in 0..steps {
            input.extend_from_slice(&[raw[n], hp[n], energy[n]]);
        }

        let to_step = |t: f64| (t.max(0.0).round() as usize).min(steps);
        let hold = steps_of(self.params.target_hold_ms);
        let mut target = vec![0.0f32; steps];
        let mut events = Vec::with_capacity(beats.len());
        for b in &beats {
            let (s, e) = (to_step(b.onset_ms), to_step(b.end_ms));
            events.push((s, e, b.pvc as i32));
            if b.pvc {
                target[s..(e + hold).min(steps)].fill(1.0);
            }
        }
        let label = beats.iter().any(|b| b.pvc) as i32;
        Trial {
            input,
            target,
            label,
            steps,
            channels: 3,
            outputs: 1,
            window: (0, steps),
            events,
        }
    }
    /// 1 when the smoothed output stays above threshold long enough anywhere, else 0.
    fn decide(&self, trial: &Trial, output: &[f32]) -> Option<i32> {
        let outs = trial.outputs.max(1);
        let (a, b) = trial.window;
        // NaN counts as 0 so a diverged network detects nothing.
        let y: Vec<f32> = (a..b)
            .map_while(|t| output.get(t * outs).copied())
            .map(|v| if v.is_finite() { v } else { 0.0 })
            .collect();
        let sm = causal_ma(&y, steps_of(self.params.smooth_ms));
        let need = steps_of(self.params.detect_min_ms).max(1);
        let mut run = 0usize;
        for v in sm {
            run = if v > self.params.detect_threshold {
                run + 1
            } else {
                0
            };
            if run >= need {
                return Some(1);
            }
        }
        Some(0)
    }
    fn labels(&self) -> &'static [i32] {
        &[0, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_with(f: impl FnOnce(&mut EcgParams)) -> EcgTask {
        let mut p = EcgParams::default();
        f(&mut p);
        assert_eq!(p.validate(), Ok(()));
        EcgTask::new(p, 11)
    }

    /// Local maxima above half the signal maximum, at least 200 ms apart.
    fn r_peaks(x: &[f32]) -> Vec<usize> {
        let max = x.iter().fold(f32::MIN, |m, &v| m.max(v));
        let mut peaks: Vec<usize> = Vec::new();
        for i in 1..x.len() - 1 {
            if x[i] > 0.5 * max && x[i] >= x[i - 1] && x[i] > x[i + 1] {
                match peaks.last() {
                    Some(&p) if i - p < 200 => {
                        if x[i] > x[p] {
                            *peaks.last_mut().unwrap() = i;
                        }
                    }
                    _ => peaks.push(i),
                }
            }
        }
        peaks
    }

    #[test]
    fn default_params_are_valid() {
        assert_eq!(EcgParams::default().validate(), Ok(()));
    }

    #[test]
    fn detected_heart_rate_matches_configuration() {
        for bpm in [72.0f32, 95.0] {
            let t = task_with(|p| {
                p.hr_min_bpm = bpm;
                p.hr_max_bpm = bpm;
                p.anomaly_trial_prob = 0.0;
            });
            let mut intervals = Vec::new();
            for i in 0..20 {
                let tr = t.trial(Split::Train, i);
                assert_eq!(tr.label, 0);
                // Detect on the noisy raw channel: wander and noise must not hide the R peaks.
                let raw: Vec<f32> = (0..tr.steps).map(|n| tr.input[n * 3]).collect();
                let peaks = r_peaks(&raw);
                let truth = t.beat_times(Split::Train, i);
                assert_eq!(
                    peaks.len(),
                    truth.len(),
                    "trial {i}: {peaks:?} vs {truth:?}"
                );
                // Hum and noise tilt the flat R top by a few ms on the raw signal.
                for (p, r) in peaks.iter().zip(&truth) {
                    assert!((*p as f64 - r).abs() <= 8.0, "trial {i}: {p} vs {r}");
                }
                let clean_peaks = r_peaks(&t.clean_signal(Split::Train, i));
                assert_eq!(clean_peaks.len(), truth.len());
                for (p, r) in clean_peaks.iter().zip(&truth) {
                    assert!((*p as f64 - r).abs() <= 1.0, "trial {i}: {p} vs {r}");
                }
                intervals.extend(peaks.windows(2).map(|w| (w[1] - w[0]) as f64));
            }
            let mean = intervals.iter().sum::<f64>() / intervals.len() as f64;
            let measured = 60_000.0 / mean;
            assert!(
                (measured - bpm as f64).abs() < 0.03 * bpm as f64,
                "{measured} bpm vs {bpm}"
            );
            // Beat-to-beat variability is present but small.
            let sd = (intervals.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                / intervals.len() as f64)
                .sqrt();
            assert!(sd > 0.01 * mean && sd < 0.06 * mean, "rr sd {sd}");
        }
    }

    #[test]
    fn normal_beat_has_pqrst_morphology() {
        let t = task_with(|p| {
            p.hr_min_bpm = 60.0;
            p.hr_max_bpm = 60.0;
            p.anomaly_trial_prob = 0.0;
        });
        let clean = t.clean_signal(Split::Train, 3);
        for b in t.beats(Split::Train, 3) {
            let r = b.r_peak_ms.round() as i64;
            if r < 300 || r + 450 > clean.len() as i64 {
                continue;
            }
            let at = |dt: i64| clean[(r + dt) as usize];
            let iso = at(-300); // diastole before P
            let win_min = |a: i64, b: i64| (a..b).map(at).fold(f32::MAX, f32::min);
            let win_max = |a: i64, b: i64| (a..b).map(at).fold(f32::MIN, f32::max);
            assert!((at(0) - 1.0).abs() < 0.1, "R peak {}", at(0));
            assert!(
                iso < -0.05,
                "relaxation pulls the isoelectric line below 0: {iso}"
            );
            let p = win_max(-260, -120) - iso;
            let q = win_min(-60, -5) - iso;
            let s = win_min(5, 60) - iso;
            let tw = win_max(200, 350) - iso;
            assert!((0.1..0.5).contains(&p), "P {p}");
            assert!(q < -0.02 && s < q, "Q {q} S {s}");
            assert!((0.2..0.7).contains(&tw), "T {tw}");
        }
    }

    #[test]
    fn pvc_beats_sit_where_events_say() {
        let t = task_with(|p| p.anomaly_trial_prob = 1.0);
        let mut n_pvc = 0;
        for i in 0..60 {
            let tr = t.trial(Split::Validation, i);
            let beats = t.beats(Split::Validation, i);
            let clean = t.clean_signal(Split::Validation, i);
            assert_eq!(tr.label, 1);
            assert_eq!(tr.events.len(), beats.len());
            let pvcs: Vec<_> = tr.events.iter().filter(|e| e.2 == 1).collect();
            assert!(!pvcs.is_empty(), "trial {i}");
            // Never the first beat in the trial.
            let first_in = beats.iter().position(|b| b.r_peak_ms >= 0.0).unwrap();
            assert!(!beats[first_in].pvc);
            let covered = |t: usize| pvcs.iter().any(|&&(s, e, _)| t >= s && t < e + 150);
            for (n, &y) in tr.target.iter().enumerate() {
                assert_eq!(y, if covered(n) { 1.0 } else { 0.0 }, "trial {i} t {n}");
            }
            for (k, b) in beats.iter().enumerate() {
                if !b.pvc {
                    continue;
                }
                n_pvc += 1;
                // Premature: well before the sinus interval.
                let prev = &beats[k - 1];
                let Some(next) = beats.get(k + 1) else {
                    continue;
                };
                let sinus = next.r_peak_ms - prev.r_peak_ms;
                let prem = (b.r_peak_ms - prev.r_peak_ms) / (sinus / 2.0);
                assert!((0.5..0.85).contains(&prem), "prematurity {prem}");
                // Tall and wide in the clean signal, with an inverted T.
                let r = b.r_peak_ms.round() as usize;
                let prev_r = prev.r_peak_ms.round() as usize;
                assert!(
                    clean[r] > 1.15 * clean[prev_r],
                    "{} vs {}",
                    clean[r],
                    clean[prev_r]
                );
                let half = |c: usize| {
                    let lvl = clean[c] / 2.0;
                    let mut a = c;
                    while a > 0 && clean[a] > lvl {
                        a -= 1;
                    }
                    let mut e = c;
                    while e + 1 < clean.len() && clean[e] > lvl {
                        e += 1;
                    }
                    e - a
                };
                assert!(half(r) as f64 > 1.8 * half(prev_r) as f64);
                let end = b.end_ms.round() as usize;
                let t_min = clean[r + 60..end].iter().fold(f32::MAX, |m, &v| m.min(v));
                assert!(t_min < -0.2, "T not inverted: {t_min}");
            }
        }
        assert!(n_pvc >= 60);
    }

    #[test]
    fn normal_trials_have_zero_target_and_labels_balance() {
        let t = task_with(|_| {});
        let mut positives = 0;
        for i in 0..400 {
            let tr = t.trial(Split::Train, i);
            let any_pvc = tr.events.iter().any(|e| e.2 == 1);
            assert_eq!(tr.label, any_pvc as i32);
            if tr.label == 0 {
                assert!(tr.target.iter().all(|&v| v == 0.0));
            } else {
                positives += 1;
            }
        }
        // Binomial(400, 0.5): 5 std is 50.
        assert!((150..=250).contains(&positives), "{positives}/400");
    }

    #[test]
    fn decide_on_target_is_correct() {
        let t = task_with(|_| {});
        for i in 0..200 {
            let tr = t.trial(Split::Test, i);
            assert_eq!(t.decide(&tr, &tr.target), Some(tr.label), "trial {i}");
            let zeros = vec![0.0; tr.steps];
            assert_eq!(t.decide(&tr, &zeros), Some(0));
        }
        // A blip shorter than detect_min_ms is not a detection; a long enough run is.
        let tr = t.trial(Split::Test, 0);
        let mut out = vec![0.0f32; tr.steps];
        out[1000..1025].fill(1.0);
        assert_eq!(t.decide(&tr, &out), Some(0));
        out[2000..2060].fill(1.0);
        assert_eq!(t.decide(&tr, &out), Some(1));
        assert_eq!(t.decide(&tr, &vec![f32::NAN; tr.steps]), Some(0));
    }

    #[test]
    fn noise_power_matches_snr() {
        for snr in [10.0f32, 20.0] {
            let t = task_with(|p| p.snr_db = snr);
            for i in 0..5 {
                let tr = t.trial(Split::Train, i);
                let c = t.components(Split::Train, i);
                let n = tr.steps;
                // Noise recovered from the trial input, not from the components' noise field.
                let mut pn = 0.0f64;
                let mut pc = 0.0f64;
                for k in 0..n {
                    let resid = tr.input[k * 3] - c.clean[k] - c.baseline[k] - c.mains[k];
                    pn += (resid as f64).powi(2);
                    pc += (c.clean[k] as f64).powi(2);
                }
                let measured = 10.0 * (pc / pn).log10();
                assert!(
                    (measured - snr as f64).abs() < 1.0,
                    "{measured} dB vs {snr}"
                );
            }
        }
    }

    #[test]
    fn feature_channel_separates_pvcs() {
        let t = task_with(|p| p.anomaly_trial_prob = 1.0);
        let (mut pvc_min, mut normal_max) = (f32::MAX, f32::MIN);
        for i in 0..40 {
            let tr = t.trial(Split::Train, i);
            for &(s, e, kind) in &tr.events {
                // Skip the first 1.5 s while the high-pass settles, and normal beats right after
                // a PVC whose energy window still overlaps.
                if s < 1500 || e >= tr.steps {
                    continue;
                }
                let peak = (s..(e + 60).min(tr.steps))
                    .map(|n| tr.input[n * 3 + 2])
                    .fold(f32::MIN, f32::max);
                if kind == 1 {
                    pvc_min = pvc_min.min(peak);
                } else if !tr
                    .events
                    .iter()
                    .any(|ev| ev.2 == 1 && ev.1 <= s && s < ev.1 + 200)
                {
                    normal_max = normal_max.max(peak);
                }
            }
        }
        assert!(
            pvc_min > 1.5 * normal_max,
            "pvc {pvc_min} normal {normal_max}"
        );
    }

    #[test]
    fn trials_are_deterministic_and_splits_differ() {
        let t = task_with(|_| {});
        let a = t.trial(Split::Test, 5);
        let b = t.trial(Split::Test, 5);
        assert_eq!(a.input, b.input);
        assert_eq!(a.target, b.target);
        let mut seen = std::collections::HashSet::new();
        for split in [Split::Train, Split::Validation, Split::Test] {
            for i in 0..100 {
                let first = t.beat_times(split, i)[0];
                assert!(seen.insert(first.to_bits()), "{split:?} {i}");
            }
        }
    }

    #[test]
    fn validate_names_bad_fields_and_generation_never_panics() {
        let bad = |f: fn(&mut EcgParams), field: &str| {
            let mut p = EcgParams::default();
            f(&mut p);
            let e = p.validate().unwrap_err();
            assert!(e.contains(field), "{e}");
            let t = EcgTask::new(p, 3);
            for i in 0..5 {
                let tr = t.trial(Split::Train, i);
                assert_eq!(tr.input.len(), tr.steps * 3);
                let _ = t.decide(&tr, &tr.target);
            }
        };
        bad(|p| p.hr_min_bpm = 0.0, "hr_min_bpm");
        bad(|p| p.hr_max_bpm = 50.0, "hr_max_bpm");
        bad(|p| p.hrv_std = -0.1, "hrv_std");
        bad(|p| p.snr_db = f32::INFINITY, "snr_db");
        bad(|p| p.snr_db = f32::NAN, "snr_db");
        bad(|p| p.baseline_amp = -1.0, "baseline_amp");
        bad(|p| p.anomaly_trial_prob = 1.5, "anomaly_trial_prob");
        bad(|p| p.pvc_prob = f32::NAN, "pvc_prob");
        bad(|p| p.target_hold_ms = -5.0, "target_hold_ms");
        bad(|p| p.detect_threshold = 0.0, "detect_threshold");
        bad(|p| p.smooth_ms = f32::NAN, "smooth_ms");
        bad(|p| p.duration_ms = 0, "duration_ms");
        bad(|p| p.duration_ms = 1500, "duration_ms");
    }
}
