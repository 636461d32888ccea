//! Noise injection: `y = x + noise · strength`, the noise plane broadcast
//! over channels (and over the batch when it has one sample).

use super::PAR_MIN;
use rayon::prelude::*;

/// `x` is `[N, C, H, W]` (`dims`); `noise` holds one `[H, W]` plane per
/// sample (`batched`) or a single plane shared by all samples.
pub fn noise_inject(
    x: &[f32],
    dims: [usize; 4],
    noise: &[f32],
    batched: bool,
    strength: f32,
) -> Vec<f32> {
    let [_, c, h, w] = dims;
    let hw = h * w;
    let mut y = vec![0f32; x.len()];
    if y.is_empty() {
        return y;
    }
    let plane = |(pi, out): (usize, &mut [f32])| {
        let n = pi / c.max(1);
        let np = if batched {
            &noise[n * hw..(n + 1) * hw]
        } else {
            &noise[..hw]
        };
        let xp = &x[pi * hw..(pi + 1) * hw];
        for ((o, &xv), &nv) in out.iter_mut().zip(xp).zip(np) {
            *o = xv + nv * strength;
        }
    };
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(hw).enumerate().for_each(plane);
    } else {
        y.chunks_mut(hw).enumerate().for_each(plane);
    }
    y
}
