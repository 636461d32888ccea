//! StyleGAN2 on hand-written CUDA kernels, with a CPU reference for every op
//! and a minimal autograd with higher-order gradients.
//!
//! Layers above `ops` never see a device; `ops` never sees a layer.

pub mod augment;
pub mod autograd;
pub mod backend;
pub mod bench;
pub mod data;
pub mod device;
pub mod dtype;
pub mod error;
pub mod flags;
pub mod fsio;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod pickle;
pub mod shape;
pub mod tensor;
pub mod train;

pub use autograd::{grad, no_grad};
pub use device::Device;
pub use dtype::DType;
pub use error::{Error, Result};
pub use shape::Shape;
pub use tensor::Tensor;

/// The crate's seeded random generator: reproducible across platforms and
/// versions, so a seed names the same latent on every device.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> Rng {
    use rand::SeedableRng;
    Rng::seed_from_u64(seed)
}

/// The README's examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
