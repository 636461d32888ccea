//! Launch code for `kernels/matmul.cu`: batched row-major sgemm on
//! `Device::Cuda` and `Device::Sim` alike.

use super::launch::{launch, Args, Config};
use super::{alloc, InBuf};
use crate::device::Device;
use crate::error::{invalid, Result};
use crate::tensor::Storage;

const FAMILY: &str = "matmul";
/// `MM_BM`/`MM_BN` of matmul.cu: the output tile of one block.
const TILE: usize = 64;
const THREADS: u32 = 256;
/// `MM_SHARED_FLOATS` of matmul.cu: two buffers of two 16 × (64 + 4) tiles.
const SHARED_BYTES: u32 = (4 * 16 * (TILE + 4) * 4) as u32;
const MAX_GRID_YZ: usize = 65535;
/// Batch items beyond this many grid slices are looped over inside the
/// kernel: 1024 × the row and column tiles already fill a GPU (an H200 holds
/// 132 × 4 such blocks at once).
const MAX_BATCH_SLICES: usize = 1024;

/// `batch` products `[m, k] × [k, n]`, stored one after another in `a`, `b`
/// and the result.
pub(crate) fn matmul(
    a: &Storage,
    b: &Storage,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    device: Device,
) -> Result<Storage> {
    const OP: &str = "matmul";
    let len = batch * m * n;
    let max = i32::MAX as usize;
    for (what, size) in [
        ("lhs", batch * m * k),
        ("rhs", batch * k * n),
        ("result", len),
    ] {
        if size > max {
            return invalid(
                OP,
                format!("the {what} has {size} elements; the CUDA kernel takes at most {max}"),
            );
        }
    }
    let mut c = alloc(device, len)?;
    if len == 0 {
        return Ok(c.into_storage());
    }
    let grid_y = m.div_ceil(TILE);
    if grid_y > MAX_GRID_YZ {
        return invalid(
            OP,
            format!("{m} rows need {grid_y} row tiles; the CUDA grid takes at most {MAX_GRID_YZ}"),
        );
    }
    let cfg = Config {
        grid: (
            n.div_ceil(TILE) as u32,
            grid_y as u32,
            batch.min(MAX_BATCH_SLICES) as u32,
        ),
        block: (THREADS, 1, 1),
        shared_bytes: SHARED_BYTES,
    };
    let (ain, bin) = (InBuf::new(a, device)?, InBuf::new(b, device)?);
    let mut args = Args::new();
    args.push(c.ptr())
        .push(ain.ptr())
        .push(bin.ptr())
        .push(batch as i32)
        .push(m as i32)
        .push(k as i32)
        .push(n as i32);
    // SAFETY: matmul_tiled(float*, const float*, const float*, int, int, int,
    // int); a, b and c hold batch·m·k, batch·k·n and batch·m·n floats, and
    // the kernel reads and writes only inside them (k = 0 writes zeros).
    unsafe { launch(device, FAMILY, "matmul_tiled", cfg, &mut args)? };
    Ok(c.into_storage())
}
