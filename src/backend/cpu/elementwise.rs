//! Elementwise maps: unary functions and broadcasting binary arithmetic.

use super::PAR_MIN;
use crate::shape::Shape;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Square,
    Sqrt,
    Rsqrt,
    Exp,
    Log,
    Softplus,
    Sigmoid,
    Abs,
    /// -1, 0 or 1.
    Sign,
    /// `x * mul + add`.
    Affine {
        mul: f32,
        add: f32,
    },
    Clamp {
        lo: f32,
        hi: f32,
    },
    /// 1 where `lo <= x <= hi`, else 0.
    InRange {
        lo: f32,
        hi: f32,
    },
}

impl Unary {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Neg => -x,
            Unary::Square => x * x,
            Unary::Sqrt => x.sqrt(),
            Unary::Rsqrt => 1.0 / x.sqrt(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            // log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
            Unary::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Abs => x.abs(),
            Unary::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Unary::Affine { mul, add } => x * mul + add,
            Unary::Clamp { lo, hi } => x.max(lo).min(hi),
            Unary::InRange { lo, hi } => ((lo..=hi).contains(&x)) as u8 as f32,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    /// Masks: 1.0 where the comparison holds, else 0.0.
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Binary {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Maximum => a.max(b),
            Binary::Minimum => a.min(b),
            Binary::Gt => (a > b) as u8 as f32,
            Binary::Ge => (a >= b) as u8 as f32,
            Binary::Lt => (a < b) as u8 as f32,
            Binary::Le => (a <= b) as u8 as f32,
            Binary::Eq => (a == b) as u8 as f32,
        }
    }
}

pub fn unary(x: &[f32], op: Unary) -> Vec<f32> {
    if x.len() >= PAR_MIN {
        x.par_iter().map(|&v| op.apply(v)).collect()
    } else {
        x.iter().map(|&v| op.apply(v)).collect()
    }
}

/// `a op b` broadcast to `out` (which both shapes broadcast to).
pub fn binary(a: &[f32], sa: &Shape, b: &[f32], sb: &Shape, out: &Shape, op: Binary) -> Vec<f32> {
    let n = out.numel();
    if sa == out && sb == out {
        return if n >= PAR_MIN {
            a.par_iter().zip(b).map(|(&x, &y)| op.apply(x, y)).collect()
        } else {
            a.iter().zip(b).map(|(&x, &y)| op.apply(x, y)).collect()
        };
    }
    if n == 0 {
        return Vec::new();
    }
    let st_a = sa.broadcast_strides(out);
    let st_b = sb.broadcast_strides(out);
    let dims = out.dims();
    let r = dims.len();
    // Rows along the last axis; each row computes its own start offsets.
    let row = if r == 0 { 1 } else { dims[r - 1] };
    let (ia, ib) = if r == 0 {
        (0, 0)
    } else {
        (st_a[r - 1], st_b[r - 1])
    };
    let mut y = vec![0f32; n];
    let fill = |(ri, chunk): (usize, &mut [f32])| {
        let (mut oa, mut ob, mut rem) = (0, 0, ri);
        for ax in (0..r.saturating_sub(1)).rev() {
            let c = rem % dims[ax];
            rem /= dims[ax];
            oa += c * st_a[ax];
            ob += c * st_b[ax];
        }
        for (j, v) in chunk.iter_mut().enumerate() {
            *v = op.apply(a[oa + j * ia], b[ob + j * ib]);
        }
    };
    if n >= PAR_MIN {
        y.par_chunks_mut(row).enumerate().for_each(fill);
    } else {
        y.chunks_mut(row).enumerate().for_each(fill);
    }
    y
}
