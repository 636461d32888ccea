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

/// Calls `$body` with `$f` bound to a closure of the op's own arithmetic, so
/// each op gets a loop of its own (vectorized, no `match` per element).
macro_rules! with_unary {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Unary::Neg => {
                let $f = |x: f32| Unary::Neg.apply(x);
                $body
            }
            Unary::Square => {
                let $f = |x: f32| Unary::Square.apply(x);
                $body
            }
            Unary::Sqrt => {
                let $f = |x: f32| Unary::Sqrt.apply(x);
                $body
            }
            Unary::Rsqrt => {
                let $f = |x: f32| Unary::Rsqrt.apply(x);
                $body
            }
            Unary::Affine { mul, add } => {
                let $f = move |x: f32| Unary::Affine { mul, add }.apply(x);
                $body
            }
            Unary::Clamp { lo, hi } => {
                let $f = move |x: f32| Unary::Clamp { lo, hi }.apply(x);
                $body
            }
            other => {
                let $f = move |x: f32| other.apply(x);
                $body
            }
        }
    };
}

macro_rules! with_binary {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Binary::Add => {
                let $f = |a: f32, b: f32| Binary::Add.apply(a, b);
                $body
            }
            Binary::Sub => {
                let $f = |a: f32, b: f32| Binary::Sub.apply(a, b);
                $body
            }
            Binary::Mul => {
                let $f = |a: f32, b: f32| Binary::Mul.apply(a, b);
                $body
            }
            Binary::Div => {
                let $f = |a: f32, b: f32| Binary::Div.apply(a, b);
                $body
            }
            other => {
                let $f = move |a: f32, b: f32| other.apply(a, b);
                $body
            }
        }
    };
}

pub fn unary(x: &[f32], op: Unary) -> Vec<f32> {
    with_unary!(op, |f| unary_with(x, f))
}

fn unary_with(x: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) -> Vec<f32> {
    if x.len() >= PAR_MIN {
        x.par_iter().map(|&v| f(v)).collect()
    } else {
        x.iter().map(|&v| f(v)).collect()
    }
}

/// `a op b` broadcast to `out` (which both shapes broadcast to).
pub fn binary(a: &[f32], sa: &Shape, b: &[f32], sb: &Shape, out: &Shape, op: Binary) -> Vec<f32> {
    with_binary!(op, |f| binary_with(a, sa, b, sb, out, f))
}

fn binary_with(
    a: &[f32],
    sa: &Shape,
    b: &[f32],
    sb: &Shape,
    out: &Shape,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> Vec<f32> {
    let n = out.numel();
    if sa == out && sb == out {
        return if n >= PAR_MIN {
            a.par_iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
        } else {
            a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
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
        // The common strides get loops without index arithmetic.
        match (ia, ib) {
            (1, 1) => {
                let (ra, rb) = (&a[oa..oa + row], &b[ob..ob + row]);
                for ((v, &x), &y) in chunk.iter_mut().zip(ra).zip(rb) {
                    *v = f(x, y);
                }
            }
            (1, 0) => {
                let (ra, y) = (&a[oa..oa + row], b[ob]);
                for (v, &x) in chunk.iter_mut().zip(ra) {
                    *v = f(x, y);
                }
            }
            (0, 1) => {
                let (x, rb) = (a[oa], &b[ob..ob + row]);
                for (v, &y) in chunk.iter_mut().zip(rb) {
                    *v = f(x, y);
                }
            }
            _ => {
                for (j, v) in chunk.iter_mut().enumerate() {
                    *v = f(a[oa + j * ia], b[ob + j * ib]);
                }
            }
        }
    };
    if n >= PAR_MIN {
        y.par_chunks_mut(row).enumerate().for_each(fill);
    } else {
        y.chunks_mut(row).enumerate().for_each(fill);
    }
    y
}
