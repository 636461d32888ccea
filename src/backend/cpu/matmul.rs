//! Matrix products through the `gemm` crate: a safe wrapper over strided
//! matrices (shared with the im2col convolution) and batched row-major matmul.

use gemm::Parallelism;
use rayon::prelude::*;

/// From this many multiply-adds (`m·n·k`) on, one product is split over
/// threads by `gemm` itself; below it the threads cost more than they save.
pub(crate) const GEMM_PAR_MIN: usize = 1 << 20;

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A strided view; panics (a bug of the caller, never user input) when
    /// an element would lie outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * rs + (cols - 1) * cs;
            assert!(
                last < data.len(),
                "MatRef {rows}×{cols} (strides {rs}, {cs}) outside a buffer of {}",
                data.len()
            );
        }
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A contiguous row-major `rows × cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef::new(data, rows, cols, cols, 1)
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` contiguous
/// row-major `a.rows × b.cols`. `parallel` lets `gemm` use the rayon pool
/// when the product is large enough (see [`GEMM_PAR_MIN`]).
pub fn gemm_into(dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool, parallel: bool) {
    assert_eq!(dst.len(), a.rows * b.cols, "gemm_into: destination size");
    gemm_into_strided(dst, b.cols, a, b, accumulate, parallel);
}

/// [`gemm_into`] with the rows of `dst` `rs ≥ b.cols` apart (row `i` is
/// `dst[i·rs..][..b.cols]`; the floats between rows are left alone).
pub fn gemm_into_strided(
    dst: &mut [f32],
    rs: usize,
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm_into: inner dimensions {k} and {}", b.rows);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        rs >= n && dst.len() >= (m - 1) * rs + n,
        "gemm_into: destination of {} floats for {m}×{n} rows {rs} apart",
        dst.len()
    );
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(rs).take(m).for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    let par = if parallel && m * n * k >= GEMM_PAR_MIN && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: `MatRef::new` checked that every element of `a` and `b` lies
    // inside its slice, `dst` holds m rows of n elements `rs ≥ n` apart
    // (asserted: the rows do not overlap), and `dst` (a unique borrow)
    // cannot alias `a` or `b` (shared borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Batched row-major matmul: `batch` products `[m, k] × [k, n]`, stored one
/// after another in `a`, `b` and the result.
pub fn matmul(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.len(), batch * m * k, "matmul: lhs size");
    assert_eq!(b.len(), batch * k * n, "matmul: rhs size");
    let mut out = vec![0.0; batch * m * n];
    if out.is_empty() {
        return out;
    }
    let one = |i: usize, c: &mut [f32], parallel: bool| {
        let ai = MatRef::row_major(&a[i * m * k..(i + 1) * m * k], m, k);
        let bi = MatRef::row_major(&b[i * k * n..(i + 1) * k * n], k, n);
        gemm_into(c, ai, bi, false, parallel);
    };
    let each = m * n * k;
    if batch > 1 && each < GEMM_PAR_MIN && batch * each >= GEMM_PAR_MIN {
        // Many small products: one per task.
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c, false));
    } else {
        for (i, c) in out.chunks_mut(m * n).enumerate() {
            one(i, c, true);
        }
    }
    out
}
