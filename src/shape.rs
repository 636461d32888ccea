//! Shapes of row-major (C-contiguous) tensors and NumPy-style broadcasting.

use crate::error::{shape_err, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Size of axis `i`; panics only on an internal misuse, callers validate axes first.
    pub fn dim(&self, i: usize) -> usize {
        self.0[i]
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }

    /// The shape both operands broadcast to (NumPy rules, aligned at the right).
    pub fn broadcast(&self, other: &Shape, op: &'static str) -> Result<Shape> {
        let r = self.rank().max(other.rank());
        let mut out = vec![0; r];
        for (i, o) in out.iter_mut().enumerate() {
            let a = self.dim_from_right(r - 1 - i);
            let b = other.dim_from_right(r - 1 - i);
            *o = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return shape_err(op, format!("cannot broadcast {self} with {other}")),
            };
        }
        Ok(Shape(out))
    }

    /// Whether `self` broadcasts to `target` without changing `target`.
    pub fn broadcasts_to(&self, target: &Shape) -> bool {
        self.rank() <= target.rank()
            && (0..self.rank()).all(|i| {
                let a = self.dim_from_right(i);
                a == 1 || a == target.dim_from_right(i)
            })
    }

    fn dim_from_right(&self, i: usize) -> usize {
        if i < self.0.len() {
            self.0[self.0.len() - 1 - i]
        } else {
            1
        }
    }

    /// Strides of `self` seen from a broadcast target of rank `rank`: 0 on
    /// broadcast axes, so indexing with the target's coordinates reads `self`.
    pub fn broadcast_strides(&self, target: &Shape) -> Vec<usize> {
        let own = self.strides();
        let r = target.rank();
        let off = r - self.rank();
        (0..r)
            .map(|i| {
                if i < off || self.0[i - off] == 1 {
                    0
                } else {
                    own[i - off]
                }
            })
            .collect()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        let a = Shape::new([2, 1, 4]);
        let b = Shape::new([3, 1]);
        assert_eq!(a.broadcast(&b, "t").unwrap(), Shape::new([2, 3, 4]));
        assert!(Shape::new([2, 3]).broadcast(&Shape::new([4]), "t").is_err());
        assert_eq!(b.broadcast_strides(&Shape::new([2, 3, 4])), vec![0, 1, 0]);
        assert!(Shape::new([3, 1]).broadcasts_to(&Shape::new([2, 3, 4])));
        assert!(!Shape::new([3, 2]).broadcasts_to(&Shape::new([2, 3, 4])));
    }
}
