//! Fused bias + activation + gain + clamp, and its gradient, elementwise
//! (the official `bias_act_kernel`, grad 0 and 1).

use super::PAR_MIN;
use rayon::prelude::*;

/// The activation of `bias_act`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// The identity.
    Linear,
    /// `x` where `x > 0`, else `alpha · x`.
    Lrelu { alpha: f32 },
}

/// `y = clamp(act(x + b) · gain, −clamp, clamp)`: bias, then activation, then
/// gain, then clamp (the official order). `gain` is the total multiplier,
/// e.g. `√2 · layer_gain` for the official lrelu with a layer gain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BiasAct {
    pub act: Act,
    pub gain: f32,
    pub clamp: Option<f32>,
}

impl BiasAct {
    /// Bias only: linear activation, gain 1, no clamp.
    pub fn linear() -> Self {
        BiasAct {
            act: Act::Linear,
            gain: 1.0,
            clamp: None,
        }
    }

    /// The official `lrelu` defaults: alpha 0.2, gain √2 (`def_gain`), no clamp.
    pub fn lrelu() -> Self {
        BiasAct {
            act: Act::Lrelu { alpha: 0.2 },
            gain: std::f32::consts::SQRT_2,
            clamp: None,
        }
    }

    /// Whether the op is the identity after the bias (its gradient is `dy`).
    pub fn is_identity(&self) -> bool {
        self.act == Act::Linear && self.gain == 1.0 && self.clamp.is_none()
    }

    #[inline]
    fn forward_one(&self, x: f32) -> f32 {
        let a = match self.act {
            Act::Linear => x,
            Act::Lrelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    x * alpha
                }
            }
        };
        let y = a * self.gain;
        match self.clamp {
            // As the kernel: values outside (−c, c), NaN included, go to a bound.
            Some(c) if !(y > -c && y < c) => {
                if y >= 0.0 {
                    c
                } else {
                    -c
                }
            }
            _ => y,
        }
    }

    /// `dy · act'(y) · gain`, zero where the output sat at the clamp
    /// (`|y| < clamp` passes, as in the kernel). The slope of lrelu comes from
    /// the sign of `y / gain`, the activation before the gain.
    #[inline]
    fn grad_one(&self, dy: f32, y: f32) -> f32 {
        if let Some(c) = self.clamp {
            if !(y > -c && y < c) {
                return 0.0;
            }
        }
        let d = match self.act {
            Act::Linear => dy,
            Act::Lrelu { alpha } => {
                let yy = if self.gain != 0.0 { y / self.gain } else { 0.0 };
                if yy > 0.0 {
                    dy
                } else {
                    dy * alpha
                }
            }
        };
        d * self.gain
    }
}

/// `bias_act` of `x` with the bias `b[(i / step) % b.len()]` added to element
/// `i` (`step` = the product of the dims after the bias axis).
pub fn bias_act(x: &[f32], b: Option<&[f32]>, step: usize, p: &BiasAct) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let b = b.filter(|b| !b.is_empty());
    let step = step.max(1);
    // One bias value per run of `step` elements: no index arithmetic per element.
    let run = |(k, (y, x)): (usize, (&mut [f32], &[f32]))| {
        let bias = b.map_or(0.0, |b| b[k % b.len()]);
        match (b.is_some(), p.act, p.clamp) {
            // The synthesis and discriminator layers' case, unrolled for the compiler.
            (true, Act::Lrelu { alpha }, None) => {
                let gain = p.gain;
                for (y, &x) in y.iter_mut().zip(x) {
                    let v = x + bias;
                    *y = if v > 0.0 { v } else { v * alpha } * gain;
                }
            }
            (true, _, _) => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = p.forward_one(x + bias);
                }
            }
            (false, _, _) => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = p.forward_one(x);
                }
            }
        }
    };
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(step)
            .zip(x.par_chunks(step))
            .enumerate()
            .for_each(run);
    } else {
        y.chunks_mut(step)
            .zip(x.chunks(step))
            .enumerate()
            .for_each(run);
    }
    y
}

/// The gradient of `bias_act` w.r.t. its input given the upstream gradient
/// `dy` and the op's output `y` (same length).
pub fn bias_act_grad(dy: &[f32], y: &[f32], p: &BiasAct) -> Vec<f32> {
    assert_eq!(dy.len(), y.len(), "bias_act_grad: sizes");
    let mut gx = vec![0f32; dy.len()];
    // Chunks of plain loops rather than one `grad_one` per element through a
    // parallel iterator: the lrelu arm below has no branch the compiler
    // cannot turn into a select, so it vectorizes (it was 6% of a CPU
    // training step as a per-element `match` with a scalar division).
    let run = |(gx, (dy, y)): (&mut [f32], (&[f32], &[f32]))| match (p.act, p.clamp) {
        (Act::Lrelu { alpha }, None) => {
            let gain = p.gain;
            // The same operations as `grad_one` (the division included:
            // `y / gain` may underflow to 0 where `y` does not), so equal.
            let inv = gain != 0.0;
            for ((g, &d), &v) in gx.iter_mut().zip(dy).zip(y) {
                let yy = if inv { v / gain } else { 0.0 };
                *g = if yy > 0.0 { d } else { d * alpha } * gain;
            }
        }
        _ => {
            for ((g, &d), &v) in gx.iter_mut().zip(dy).zip(y) {
                *g = p.grad_one(d, v);
            }
        }
    };
    const CHUNK: usize = 1 << 14;
    if dy.len() >= PAR_MIN {
        gx.par_chunks_mut(CHUNK)
            .zip(dy.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
            .for_each(run);
    } else {
        run((&mut gx, (dy, y)));
    }
    gx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked loops against `grad_one` element by element: equal (the
    /// same operations), for lrelu with and without clamp, linear, a zero
    /// gain, on values around the clamp and 0 (±0, denormals), over and
    /// under the parallel threshold.
    #[test]
    fn grad_equals_grad_one() {
        let specials = [0.0, -0.0, 1e-45, -1e-45, 0.3, -0.3, 2.0, -2.0, 5.0, -7.0];
        let params = [
            BiasAct::lrelu(),
            BiasAct {
                gain: 0.0,
                ..BiasAct::lrelu()
            },
            BiasAct {
                gain: 2.0,
                ..BiasAct::lrelu()
            },
            BiasAct {
                clamp: Some(2.0),
                ..BiasAct::lrelu()
            },
            BiasAct::linear(),
            BiasAct {
                gain: 3.0,
                clamp: Some(1.0),
                ..BiasAct::linear()
            },
        ];
        for n in [7, PAR_MIN + 3] {
            let y: Vec<f32> = (0..n)
                .map(|i| specials[i % specials.len()] * (1.0 + (i % 13) as f32 * 0.1))
                .collect();
            let dy: Vec<f32> = (0..n).map(|i| (i % 17) as f32 - 8.5).collect();
            for p in &params {
                let want: Vec<f32> = dy.iter().zip(&y).map(|(&d, &v)| p.grad_one(d, v)).collect();
                let got = bias_act_grad(&dy, &y, p);
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{p:?} n {n}"
                );
            }
        }
    }
}
