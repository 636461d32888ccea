//! Data movement: one strided gather serves permute, broadcast, narrow and
//! flip; concat copies blocks.

use super::PAR_MIN;
use rayon::prelude::*;

/// `out[c] = src[offset + Σ c_i · strides_i]` for every coordinate `c` of
/// `out_dims`. Strides may be 0 (broadcast) or negative (flip).
pub fn strided_gather(
    src: &[f32],
    out_dims: &[usize],
    strides: &[isize],
    offset: isize,
) -> Vec<f32> {
    let n: usize = out_dims.iter().product();
    if n == 0 {
        return Vec::new();
    }
    let r = out_dims.len();
    let row = if r == 0 { 1 } else { out_dims[r - 1] };
    let inner = if r == 0 { 0 } else { strides[r - 1] };
    let mut y = vec![0f32; n];
    let fill = |(ri, chunk): (usize, &mut [f32])| {
        let (mut o, mut rem) = (offset, ri);
        for ax in (0..r.saturating_sub(1)).rev() {
            o += (rem % out_dims[ax]) as isize * strides[ax];
            rem /= out_dims[ax];
        }
        for (j, v) in chunk.iter_mut().enumerate() {
            *v = src[(o + j as isize * inner) as usize];
        }
    };
    if n >= PAR_MIN {
        y.par_chunks_mut(row).enumerate().for_each(fill);
    } else {
        y.chunks_mut(row).enumerate().for_each(fill);
    }
    y
}

/// Concatenates along an axis: `outer` is the product of the dims before it,
/// `inners[k]` the size of part k's block from the axis on.
pub fn concat(parts: &[&[f32]], outer: usize, inners: &[usize]) -> Vec<f32> {
    let total: usize = inners.iter().sum();
    let mut y = Vec::with_capacity(outer * total);
    for o in 0..outer {
        for (p, &inner) in parts.iter().zip(inners) {
            y.extend_from_slice(&p[o * inner..(o + 1) * inner]);
        }
    }
    y
}
