//! `MinibatchStdLayer` (no parameters).

use crate::error::Result;
use crate::tensor::Tensor;

/// Appends `num_channels` maps of per-group standard deviations; groups of
/// `min(group_size, N)` samples (`None`: the whole batch), strided as in the
/// official code (see `ops::mbstd::minibatch_std`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinibatchStd {
    pub group_size: Option<usize>,
    pub num_channels: usize,
}

impl MinibatchStd {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dims().first().copied().unwrap_or(0);
        let g = self.group_size.unwrap_or(n).min(n).max(1);
        crate::ops::mbstd::minibatch_std(x, g, self.num_channels)
    }
}
