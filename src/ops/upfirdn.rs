//! upfirdn2d and its wrappers `upsample2d` / `downsample2d`, with the exact
//! semantics of the official `upfirdn2d` (`_upfirdn2d_ref`): insert `up − 1`
//! zeros after each pixel, pad (negative crops), convolve with the filter
//! (correlate when `flip_filter`), scale by the gain, keep every `down`-th
//! pixel starting at 0.
//!
//! The filter is a constant. The op is its own derivative: the gradient is
//! upfirdn2d with up and down swapped, the flip toggled and the padding of the
//! official backward, so gradients of any order work.

use crate::autograd::Backward;
use crate::backend::cpu::upfirdn as cpu;
use crate::backend::cuda::upfirdn as cuda;
use crate::device::Device;
use crate::error::{invalid, shape_err, Result};
use crate::tensor::{Storage, Tensor};

pub use crate::backend::cpu::upfirdn::UpFirDn;

struct UpFirDnOp {
    p: UpFirDn,
    /// The constant filter (never requires grad).
    f: Tensor,
    in_hw: [usize; 2],
    fhw: [usize; 2],
}

impl Backward for UpFirDnOp {
    fn name(&self) -> &'static str {
        "upfirdn2d"
    }

    fn backward(&self, inputs: &[Tensor], y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        if self.in_hw.contains(&0) {
            // An empty input plane: nothing to differentiate.
            return Ok(vec![Some(Tensor::zeros(inputs[0].shape(), g.device()))]);
        }
        let out_hw = [y.dims()[2], y.dims()[3]];
        let q = self.p.gradient(self.in_hw, out_hw, self.fhw);
        Ok(vec![Some(upfirdn2d(g, &self.f, &q)?)])
    }
}

/// `[fh, fw]` of a filter: `[k, k]` for a separable `[k]`, the dims of a 2-D one.
fn filter_hw(op: &'static str, f: &Tensor) -> Result<[usize; 2]> {
    let hw = match *f.dims() {
        [k] => [k, k],
        [fh, fw] => [fh, fw],
        _ => {
            return shape_err(
                op,
                format!(
                    "the filter must be [fh, fw] or [k] (separable), got {}",
                    f.shape()
                ),
            )
        }
    };
    if hw.contains(&0) {
        return shape_err(op, format!("empty filter {}", f.shape()));
    }
    Ok(hw)
}

/// Upsamples, pads, filters and downsamples each `[H, W]` plane of
/// `x [N, C, H, W]` with the constant filter `f` (`[fh, fw]`, or `[k]`
/// applied separably along x then y). See `UpFirDn` for the conventions.
///
/// The output is `[N, C, (H·up_y + y0 + y1 − fh) / down_y + 1, …]` (floor);
/// padding that leaves less than one output pixel is an error.
pub fn upfirdn2d(x: &Tensor, f: &Tensor, p: &UpFirDn) -> Result<Tensor> {
    const OP: &str = "upfirdn2d";
    let device = Tensor::same_device(OP, &[x, f])?;
    let [n, c, h, w] = match *x.dims() {
        [n, c, h, w] => [n, c, h, w],
        _ => return shape_err(OP, format!("x must be [N, C, H, W], got {}", x.shape())),
    };
    let fhw = filter_hw(OP, f)?;
    if f.needs_grad() {
        return invalid(
            OP,
            "the filter is a constant and takes no gradient; pass f.detach()",
        );
    }
    if p.up.contains(&0) || p.down.contains(&0) {
        return invalid(
            OP,
            format!("up {:?} and down {:?} must be at least 1", p.up, p.down),
        );
    }
    if p.pad.iter().any(|v| v.unsigned_abs() > i32::MAX as usize) {
        return invalid(OP, format!("padding {:?} out of range", p.pad));
    }
    if !p.gain.is_finite() {
        return invalid(OP, format!("gain {} is not finite", p.gain));
    }
    let Some([oh, ow]) = p.out_size([h, w], fhw) else {
        return invalid(
            OP,
            format!(
                "input [{h}, {w}] upsampled by {:?} (x, y) and padded by {:?} (x0, x1, y0, y1) is smaller than the filter [{}, {}]: no output pixel",
                p.up, p.pad, fhw[0], fhw[1]
            ),
        );
    };
    let storage = match device {
        Device::Cpu => Storage::Cpu(cpu::upfirdn2d(
            x.storage().cpu(),
            n * c,
            [h, w],
            f.storage().cpu(),
            f.dims(),
            p,
        )?),
        Device::Cuda(_) | Device::Sim => cuda::upfirdn2d(
            &x.storage(),
            n * c,
            [h, w],
            &f.storage(),
            f.dims(),
            p,
            device,
        )?,
    };
    Tensor::from_op_storage(
        storage,
        [n, c, oh, ow],
        device,
        UpFirDnOp {
            p: *p,
            f: f.clone(),
            in_hw: [h, w],
            fhw,
        },
        vec![x.clone()],
    )
}

/// The official `setup_filter(taps)` for a 1-D list of taps: the outer
/// product normalized to sum 1, as a `[k, k]` filter.
pub fn setup_filter(taps: &[f32], device: Device) -> Result<Tensor> {
    const OP: &str = "setup_filter";
    if taps.is_empty() {
        return invalid(OP, "no filter taps");
    }
    if taps.iter().any(|v| !v.is_finite()) {
        return invalid(OP, format!("taps {taps:?} are not all finite"));
    }
    let k = taps.len();
    let outer: Vec<f32> = taps
        .iter()
        .flat_map(|&a| taps.iter().map(move |&b| a * b))
        .collect();
    let sum: f32 = outer.iter().sum();
    if sum == 0.0 || !sum.is_finite() {
        return invalid(OP, format!("taps {taps:?} sum to {sum}: cannot normalize"));
    }
    Tensor::from_vec(outer.into_iter().map(|v| v / sum).collect(), [k, k], device)
}

/// `floor(a / 2)` for signed `a` (Python's `//`).
fn half_floor(a: isize) -> isize {
    a.div_euclid(2)
}

/// The official `upsample2d(x, f, up, gain=gain)` with its default padding:
/// the output is `up` times the input, the filter's gain `gain · up²`.
pub fn upsample2d(x: &Tensor, f: &Tensor, up: usize, gain: f32) -> Result<Tensor> {
    if up == 0 {
        return invalid("upsample2d", "up must be at least 1");
    }
    let [fh, fw] = filter_hw("upsample2d", f)?.map(|v| v as isize);
    let u = up as isize;
    let p = UpFirDn {
        up: [up, up],
        down: [1, 1],
        pad: [
            half_floor(fw + u - 1),
            half_floor(fw - u),
            half_floor(fh + u - 1),
            half_floor(fh - u),
        ],
        flip_filter: false,
        gain: gain * (up as f32) * (up as f32),
    };
    upfirdn2d(x, f, &p)
}

/// The official `downsample2d(x, f, down, gain=gain)` with its default
/// padding: the output is the input divided by `down` (rounded down for odd
/// sizes as the official code does).
pub fn downsample2d(x: &Tensor, f: &Tensor, down: usize, gain: f32) -> Result<Tensor> {
    if down == 0 {
        return invalid("downsample2d", "down must be at least 1");
    }
    let [fh, fw] = filter_hw("downsample2d", f)?.map(|v| v as isize);
    let d = down as isize;
    let p = UpFirDn {
        up: [1, 1],
        down: [down, down],
        pad: [
            half_floor(fw - d + 1),
            half_floor(fw - d),
            half_floor(fh - d + 1),
            half_floor(fh - d),
        ],
        flip_filter: false,
        gain,
    };
    upfirdn2d(x, f, &p)
}
