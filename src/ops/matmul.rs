//! Matrix product, 2-D `[m, k] × [k, n]` and batched 3-D
//! `[b, m, k] × [b, k, n]`. The backward is matmul again (with transposes),
//! so it differentiates to any order.

use crate::autograd::Backward;
use crate::backend::cpu::matmul as cpu;
use crate::backend::cuda::matmul as cuda;
use crate::device::Device;
use crate::error::{shape_err, Result};
use crate::tensor::{Storage, Tensor};

struct MatmulOp;

impl Backward for MatmulOp {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn backward(&self, inputs: &[Tensor], _y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        // The last two axes are the matrix axes in both ranks.
        let (r, c) = (a.rank() - 2, a.rank() - 1);
        // dA = g · Bᵀ, dB = Aᵀ · g.
        let da = if a.needs_grad() {
            Some(g.matmul(&b.transpose(r, c)?)?)
        } else {
            None
        };
        let db = if b.needs_grad() {
            Some(a.transpose(r, c)?.matmul(g)?)
        } else {
            None
        };
        Ok(vec![da, db])
    }
}

impl Tensor {
    /// Matrix product: `[m, k] × [k, n] → [m, n]`, or batched
    /// `[b, m, k] × [b, k, n] → [b, m, n]` (no broadcasting of the batch).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let device = Tensor::same_device("matmul", &[self, rhs])?;
        let (a, b) = (self.dims(), rhs.dims());
        let (batch, m, k, n) = match (a, b) {
            (&[m, k], &[k2, n]) if k == k2 => (1, m, k, n),
            (&[ba, m, k], &[bb, k2, n]) if ba == bb && k == k2 => (ba, m, k, n),
            (&[_, _], &[_, _]) | (&[_, _, _], &[_, _, _]) => {
                let what = if a[a.len() - 1] != b[b.len() - 2] {
                    format!(
                        "inner dimensions {} and {} differ",
                        a[a.len() - 1],
                        b[b.len() - 2]
                    )
                } else {
                    format!("batch sizes {} and {} differ", a[0], b[0])
                };
                return shape_err(
                    "matmul",
                    format!("{} × {}: {what}", self.shape(), rhs.shape()),
                );
            }
            _ => {
                return shape_err(
                    "matmul",
                    format!(
                        "{} × {}: both operands must be 2-D [m, k] × [k, n] or 3-D [b, m, k] × [b, k, n]",
                        self.shape(),
                        rhs.shape()
                    ),
                )
            }
        };
        let data = match device {
            Device::Cpu => Storage::Cpu(cpu::matmul(
                self.storage().cpu(),
                rhs.storage().cpu(),
                batch,
                m,
                k,
                n,
            )),
            Device::Cuda(_) | Device::Sim => {
                cuda::matmul(&self.storage(), &rhs.storage(), batch, m, k, n, device)?
            }
        };
        let dims = if a.len() == 2 {
            vec![m, n]
        } else {
            vec![batch, m, n]
        };
        Tensor::from_op_storage(
            data,
            dims,
            device,
            MatmulOp,
            vec![self.clone(), rhs.clone()],
        )
    }
}
