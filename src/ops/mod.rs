//! Differentiable ops: each file dispatches one family's forward to the
//! backend of the tensors' device and holds its backward rule, written with
//! ops of this crate so that gradients can be differentiated again.
//!
//! Most ops are methods of `Tensor` (`x.add(&y)?`); ops with parameters of
//! their own are functions of their family's module.

pub mod bias_act;
pub mod cast;
pub mod conv;
pub mod elementwise;
pub mod grid_sample;
pub mod layout;
pub mod matmul;
pub mod mbstd;
pub mod modconv;
pub mod noise;
pub mod precision;
pub mod reduce;
pub mod upfirdn;
