//! The CPU reference: plain f32 loops parallelized with rayon, GEMM through
//! the `gemm` crate. Each file holds one op family and works on slices.

pub mod bias_act;
pub mod conv;
pub mod elementwise;
pub mod grid_sample;
pub mod layout;
pub mod matmul;
pub mod noise;
pub mod reduce;
pub mod upfirdn;

/// Below this many elements a loop runs on one thread: spawning costs more.
pub(crate) const PAR_MIN: usize = 1 << 15;
