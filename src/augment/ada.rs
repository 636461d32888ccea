//! The ADA heuristic of the official training loop: every `interval` steps,
//! `p ← max(0, p + sign(r_t − target) · batch·interval / (ada_kimg·1000))`
//! with `r_t = E[sign(D(real))]` over the real logits D saw since the last
//! adjustment (`Loss/signs/real`). `p` grows while D is over-confident on
//! reals (overfitting) and shrinks otherwise.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// What a resumed run needs to continue the heuristic exactly: `p` and the
/// signs accumulated since the last adjustment. Saved in snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaState {
    /// The augmentation probability.
    pub p: f32,
    /// Sum and count of `sign(D(real))` means since the last adjustment.
    pub signs_sum: f64,
    pub signs_count: u64,
    /// The last `r_t` the heuristic used (`None` before the first adjustment).
    pub last_rt: Option<f64>,
}

/// `--aug`: how `p` evolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AugMode {
    /// No augmentation.
    NoAug,
    /// Adaptive `p` (starts at `--p`, default 0).
    Ada,
    /// `p` fixed at `--p`.
    Fixed,
}

impl AugMode {
    /// Parses `ada`, `noaug` or `fixed`.
    pub fn parse(s: &str) -> Result<AugMode> {
        match s {
            "ada" => Ok(AugMode::Ada),
            "noaug" => Ok(AugMode::NoAug),
            "fixed" => Ok(AugMode::Fixed),
            _ => Err(Error::Invalid {
                op: "--aug",
                msg: format!("unknown augmentation mode `{s}`; expected ada, noaug or fixed"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AugMode::NoAug => "noaug",
            AugMode::Ada => "ada",
            AugMode::Fixed => "fixed",
        }
    }
}

/// The heuristic's settings and state.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaController {
    /// Whether `p` adapts (`--aug ada`) or stays (`--aug fixed`).
    pub adaptive: bool,
    /// Target of `r_t` (official 0.6).
    pub target: f64,
    /// Steps between adjustments (official 4).
    pub interval: u64,
    /// kimg for `p` to move by 1 at most (official 500).
    pub ada_kimg: f64,
    pub state: AdaState,
}

impl AdaController {
    /// The official settings with initial probability `p` (≥ 0).
    pub fn new(adaptive: bool, p: f32, target: f64) -> Result<AdaController> {
        if !(p.is_finite() && p >= 0.0) {
            return Err(Error::Invalid {
                op: "--p",
                msg: format!("the augmentation probability {p} must be a finite number ≥ 0"),
            });
        }
        if !(target.is_finite() && (0.0..=1.0).contains(&target)) {
            return Err(Error::Invalid {
                op: "--target",
                msg: format!("the ADA target {target} must lie in [0, 1]"),
            });
        }
        Ok(AdaController {
            adaptive,
            target,
            interval: 4,
            ada_kimg: 500.0,
            state: AdaState {
                p,
                signs_sum: 0.0,
                signs_count: 0,
                last_rt: None,
            },
        })
    }

    /// Records the mean `sign(D(real))` of one batch (all batches of a run
    /// have the same size, so the mean of means is the official mean).
    pub fn observe(&mut self, mean_sign: f64) {
        if self.adaptive {
            self.state.signs_sum += mean_sign;
            self.state.signs_count += 1;
        }
    }

    /// Called after step `steps_done` (1-based count) of `batch` images:
    /// adjusts `p` every `interval` steps from the signs observed since the
    /// last adjustment, then starts a new collection. Returns `r_t` when it
    /// adjusted.
    pub fn after_step(&mut self, steps_done: u64, batch: usize) -> Option<f64> {
        if !self.adaptive
            || !steps_done.is_multiple_of(self.interval)
            || self.state.signs_count == 0
        {
            return None;
        }
        let rt = self.state.signs_sum / self.state.signs_count as f64;
        let speed = (batch as f64 * self.interval as f64) / (self.ada_kimg * 1000.0);
        let adjust = (rt - self.target).signum() * if rt == self.target { 0.0 } else { speed };
        self.state.p = ((self.state.p as f64 + adjust).max(0.0)) as f32;
        self.state.signs_sum = 0.0;
        self.state.signs_count = 0;
        self.state.last_rt = Some(rt);
        Some(rt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_moves_by_the_official_speed_and_stays_non_negative() {
        let mut a = AdaController::new(true, 0.0, 0.6).unwrap();
        // Overfitting D: all real logits positive, r_t = 1 > 0.6.
        for step in 1..=8 {
            a.observe(1.0);
            a.after_step(step, 32);
        }
        // Two adjustments of 32·4 / 500k each.
        assert!((a.state.p as f64 - 2.0 * 128.0 / 500_000.0).abs() < 1e-9);
        assert_eq!(a.state.last_rt, Some(1.0));
        for step in 9..=20 {
            a.observe(-0.2);
            a.after_step(step, 32);
        }
        assert_eq!(a.state.p, 0.0);
        let mut fixed = AdaController::new(false, 0.3, 0.6).unwrap();
        fixed.observe(1.0);
        assert_eq!(fixed.after_step(4, 32), None);
        assert_eq!(fixed.state.p, 0.3);
    }
}
