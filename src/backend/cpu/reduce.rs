//! Reductions over any set of axes, accumulated in f64 so the reference is
//! more accurate than the kernels it checks.

use super::PAR_MIN;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reduce {
    Sum,
    Max,
}

/// Reduces `x` (shape `dims`) over `axes` (sorted, unique, in range). The
/// result has the keep-dim shape: reduced axes have size 1.
pub fn reduce(x: &[f32], dims: &[usize], axes: &[usize], op: Reduce) -> Vec<f32> {
    let r = dims.len();
    let mut strides = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    // Offsets of every point of the reduced sub-space from its base.
    let mut offs = vec![0usize];
    for &a in axes {
        let mut next = Vec::with_capacity(offs.len() * dims[a]);
        for &o in &offs {
            for c in 0..dims[a] {
                next.push(o + c * strides[a]);
            }
        }
        offs = next;
    }
    let kept: Vec<usize> = (0..r).filter(|a| !axes.contains(a)).collect();
    let n_out: usize = kept.iter().map(|&a| dims[a]).product();
    let base = |mut i: usize| {
        let mut o = 0;
        for &a in kept.iter().rev() {
            o += (i % dims[a]) * strides[a];
            i /= dims[a];
        }
        o
    };
    // The reduced axes that end the shape form contiguous runs of `run`
    // elements in `offs`: summed as slices.
    let run: usize = (0..r)
        .rev()
        .take_while(|a| axes.contains(a))
        .map(|a| dims[a])
        .product();
    let one = |i: usize| -> f32 {
        let b = base(i);
        match op {
            Reduce::Sum if run > 1 => offs
                .iter()
                .step_by(run)
                .map(|&o| sum_f64(&x[b + o..b + o + run]))
                .sum::<f64>() as f32,
            Reduce::Sum => offs.iter().map(|&o| x[b + o] as f64).sum::<f64>() as f32,
            Reduce::Max => offs
                .iter()
                .map(|&o| x[b + o])
                .fold(f32::NEG_INFINITY, f32::max),
        }
    };
    if n_out * offs.len() >= PAR_MIN && n_out > 1 {
        (0..n_out).into_par_iter().map(one).collect()
    } else {
        (0..n_out).map(one).collect()
    }
}

/// The sum of a slice in f64 with 8 partial sums, so the additions pipeline
/// and vectorize (a single chain waits on every add).
fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    acc.iter().sum::<f64>() + tail
}
