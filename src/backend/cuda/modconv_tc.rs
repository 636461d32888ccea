//! Launch code for `kernels/modconv_tc.cu`: the fused modulated
//! convolution's forward on the tensor cores (TF32, BF16, FP16 operands, FP32
//! accumulators), chosen by `modconv::fused_conv` when the precision asks
//! for it. Its own NVRTC module: a program that only runs FP32 never
//! compiles it.

use super::launch::{launch, Args, Config};
use super::modconv::{ConvGeom, Fir, WeightView};
use super::{alloc, OutBuf};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::precision::Precision;

pub(crate) const FAMILY: &str = "modconv_tc";
/// Bytes of operands per shared-memory row (one mma k-step per tap).
const ROW: usize = 32;
/// MC_TC_STAGES of modconv_tc.cu.
const STAGES: usize = 2;
/// The tensor-core forward pays off from about this many output channels and
/// input channels: below, a 64-channel tile is mostly padding and one chunk
/// of 8–16 channels is mostly zeros.
const MIN_M: usize = 32;
const MIN_C: usize = 16;

/// One tensor-core kernel of modconv_tc.cu and its operand format.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcKernel {
    pub(crate) name: &'static str,
    pub(crate) precision: Precision,
    fmt: i32,
    /// The variant reading F16 storage directly (`*_f16_xh`), for `F16`.
    xh_name: Option<&'static str>,
}

impl TcKernel {
    /// The kernel for this launch, or None for the FP32 kernels: the
    /// precision asks for tensor cores, the kernel shape has a tensor-core
    /// variant (3×3, 3×3 up 2 with a 4×4 filter, 1×1), and the device has
    /// them: always on the simulator (so they are tested there), from compute
    /// capability 8.0 and at sizes where a 64-channel tile is not mostly
    /// padding on a GPU.
    pub(crate) fn pick(
        precision: Precision,
        g: ConvGeom,
        fir: Option<Fir<'_>>,
        device: Device,
    ) -> Result<Option<TcKernel>> {
        let Some(fmt) = precision.tc_format() else {
            return Ok(None);
        };
        // Rows: 3×3, 3×3 up 2 (4×4 filter), 1×1; columns: TF32, BF16, F16.
        const NAMES: [[&str; 3]; 3] = [
            [
                "modconv_tc_fwd_3x3_tf32",
                "modconv_tc_fwd_3x3_bf16",
                "modconv_tc_fwd_3x3_f16",
            ],
            [
                "modconv_tc_fwd_3x3_up2_f4_tf32",
                "modconv_tc_fwd_3x3_up2_f4_bf16",
                "modconv_tc_fwd_3x3_up2_f4_f16",
            ],
            [
                "modconv_tc_fwd_1x1_tf32",
                "modconv_tc_fwd_1x1_bf16",
                "modconv_tc_fwd_1x1_f16",
            ],
        ];
        const XH_NAMES: [&str; 3] = [
            "modconv_tc_fwd_3x3_f16_xh",
            "modconv_tc_fwd_3x3_up2_f4_f16_xh",
            "modconv_tc_fwd_1x1_f16_xh",
        ];
        let shape = match (g.k, fir) {
            ([3, 3], Some(f)) if f.up == 2 && f.fhw == [4, 4] => 1,
            ([3, 3], None) => 0,
            ([1, 1], None) => 2,
            _ => return Ok(None),
        };
        let ok = match device {
            Device::Sim => true,
            Device::Cuda(ordinal) => {
                super::gpu(ordinal)?.arch.0 >= 8 && g.m >= MIN_M && g.c >= MIN_C
            }
            Device::Cpu => false,
        };
        Ok(ok.then_some(TcKernel {
            name: NAMES[shape][fmt as usize - 1],
            precision,
            fmt,
            xh_name: (precision == Precision::F16).then_some(XH_NAMES[shape]),
        }))
    }

    /// The kernel for an input `x` stored as `dtype`: the `_xh` variant reads
    /// F16 storage itself (no widened copy); None when this kernel would
    /// need the input widened to FP32 first.
    pub(crate) fn for_input(&self, dtype: DType) -> Option<&'static str> {
        match dtype {
            DType::F32 => Some(self.name),
            DType::F16 => self.xh_name,
            DType::BF16 => None,
        }
    }

    /// Channels of one k-step (32 bytes of operands): 8 TF32 or 16 BF16/FP16.
    fn chunk(&self) -> usize {
        ROW / self.precision.operand_bytes()
    }

    /// `Cpad`: the input channels rounded up to whole chunks.
    pub(crate) fn cpad(&self, c: usize) -> usize {
        c.div_ceil(self.chunk()) * self.chunk()
    }

    /// The weight view's operands `[M][kh·kw][Cpad]` (zero past C), as the
    /// forward's cp.async reads them: `modconv_tc_weight`.
    pub(crate) fn weight_operands(
        &self,
        w: u64,
        view: WeightView,
        g: ConvGeom,
        device: Device,
    ) -> Result<OutBuf> {
        let [kh, kw] = g.k;
        let cpad = self.cpad(g.c);
        let count = g.m * kh * kw * cpad;
        let mut wt = alloc(device, (count * self.precision.operand_bytes()).div_ceil(4))?;
        let mut args = Args::new();
        args.push(wt.ptr()).push(w).push(view.off);
        for s in view.strides {
            args.push(s);
        }
        for v in [g.m, g.c, kh, kw, cpad] {
            args.push(super::modconv::to_i32(FAMILY, v)?);
        }
        args.push(self.fmt);
        // SAFETY: matches modconv_tc_weight; wt holds `count` operands, the
        // view stays inside w for m < M, c < C, ky < kh, kx < kw.
        unsafe {
            launch(
                device,
                FAMILY,
                "modconv_tc_weight",
                Config::linear(count),
                &mut args,
            )?
        };
        Ok(wt)
    }

    /// Dynamic shared memory of the forward: STAGES × (weight rows + input rows).
    pub(crate) fn shared_bytes(&self, g: ConvGeom, tile: [usize; 3]) -> u32 {
        let [th, tw, bm] = tile;
        let [kh, kw] = g.k;
        (STAGES * ROW * (kh * kw * bm + (th + kh - 1) * (tw + kw - 1))) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F16 input picks the `_xh` kernel of its shape (the F16 operand
    /// kernels only); F32 the kernel itself; BF16 storage none (widened).
    #[test]
    fn f16_input_picks_the_kernel_that_reads_it() {
        let g = |k: usize| ConvGeom {
            n: 1,
            c: 5,
            hw: [5, 5],
            m: 67,
            k: [k, k],
            zhw: [5, 5],
            pad: [0, 0],
            ohw: [5, 5],
        };
        for (k, want) in [
            (3, "modconv_tc_fwd_3x3_f16_xh"),
            (1, "modconv_tc_fwd_1x1_f16_xh"),
        ] {
            let t = TcKernel::pick(Precision::F16, g(k), None, Device::Sim)
                .unwrap()
                .unwrap();
            assert_eq!(t.for_input(DType::F16), Some(want));
            assert_eq!(t.for_input(DType::F32), Some(t.name));
            assert_eq!(t.for_input(DType::BF16), None);
        }
        for p in [Precision::TF32, Precision::BF16] {
            let t = TcKernel::pick(p, g(3), None, Device::Sim).unwrap().unwrap();
            assert_eq!(t.for_input(DType::F16), None, "{p}");
        }
    }
}
