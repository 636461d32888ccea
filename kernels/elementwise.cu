// Elementwise family: unary maps, broadcasting binary ops, a strided gather
// (permute, broadcast, narrow, flip), concat, and sum/max reductions.
//
// Launch code: src/backend/cuda/elementwise.rs; CPU twin:
// src/backend/cpu/{elementwise,layout,reduce}.rs. Sizes are 64-bit and every
// loop is bounds-checked: no size needs to divide a block or a tile.
#include "common.cuh"

// Shapes and strides of up to MAX_RANK axes, passed by value. The launch code
// right-aligns them: axis MAX_RANK-1 is the innermost, and only the last
// `rank` entries are read.
#define MAX_RANK 6
struct Dims {
  long long v[MAX_RANK];
};

// Op codes: the same numbers as in src/backend/cuda/elementwise.rs.
enum UnaryCode {
  U_NEG = 0,
  U_SQUARE = 1,
  U_SQRT = 2,
  U_RSQRT = 3,
  U_EXP = 4,
  U_LOG = 5,
  U_SOFTPLUS = 6,
  U_SIGMOID = 7,
  U_ABS = 8,
  U_SIGN = 9,
  U_AFFINE = 10,    // x * p0 + p1
  U_CLAMP = 11,     // clamp to [p0, p1]
  U_IN_RANGE = 12,  // 1 where p0 <= x <= p1, else 0
};
enum BinaryCode {
  B_ADD = 0,
  B_SUB = 1,
  B_MUL = 2,
  B_DIV = 3,
  B_MAXIMUM = 4,
  B_MINIMUM = 5,
  B_GT = 6,
  B_GE = 7,
  B_LT = 8,
  B_LE = 9,
  B_EQ = 10,
};
enum ReduceCode { R_SUM = 0, R_MAX = 1 };

__device__ __forceinline__ float apply_unary(int op, float x, float p0, float p1) {
  switch (op) {
    case U_NEG: return -x;
    case U_SQUARE: return x * x;
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.0f / sqrtf(x);
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    // log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
    case U_SOFTPLUS: return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    case U_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case U_ABS: return fabsf(x);
    case U_SIGN: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    case U_AFFINE: return x * p0 + p1;
    case U_CLAMP: return fminf(fmaxf(x, p0), p1);
    case U_IN_RANGE: return (x >= p0 && x <= p1) ? 1.0f : 0.0f;
    default: return __int_as_float(0x7fc00000);  // unknown code: NaN, never silent
  }
}

__device__ __forceinline__ float apply_binary(int op, float a, float b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAXIMUM: return fmaxf(a, b);
    case B_MINIMUM: return fminf(a, b);
    case B_GT: return a > b ? 1.0f : 0.0f;
    case B_GE: return a >= b ? 1.0f : 0.0f;
    case B_LT: return a < b ? 1.0f : 0.0f;
    case B_LE: return a <= b ? 1.0f : 0.0f;
    case B_EQ: return a == b ? 1.0f : 0.0f;
    default: return __int_as_float(0x7fc00000);
  }
}

// Offset Σ c_ax · st[ax] of the element whose row-major linear index over
// `dims` is i (only the last `rank` axes are used; strides may be 0 or negative).
__device__ __forceinline__ long long strided_offset(long long i, const Dims& dims, const Dims& st,
                                                    int rank) {
  if (rank == 1) return i * st.v[MAX_RANK - 1];
  long long off = 0;
#pragma unroll
  for (int ax = MAX_RANK - 1; ax >= 0; --ax) {
    if (ax < MAX_RANK - rank) break;
    const long long d = dims.v[ax];
    const long long q = i / d;
    off += (i - q * d) * st.v[ax];
    i = q;
  }
  return off;
}

__device__ __forceinline__ long long grid_start() {
  return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

// y[i] = op(x[i]) for i < n.
extern "C" __global__ void unary_map(float* __restrict__ y, const float* __restrict__ x, long long n,
                                     int op, float p0, float p1) {
  for (long long i = grid_start(); i < n; i += grid_stride()) y[i] = apply_unary(op, x[i], p0, p1);
}

// y[i] = op(a[off_a(i)], b[off_b(i)]) over the row-major output `dims`; the
// operands' strides are 0 on broadcast axes.
extern "C" __global__ void binary_map(float* __restrict__ y, const float* __restrict__ a,
                                      const float* __restrict__ b, long long n, int op, Dims dims,
                                      Dims stride_a, Dims stride_b, int rank) {
  for (long long i = grid_start(); i < n; i += grid_stride()) {
    const float va = a[strided_offset(i, dims, stride_a, rank)];
    const float vb = b[strided_offset(i, dims, stride_b, rank)];
    y[i] = apply_binary(op, va, vb);
  }
}

// y[i] = x[offset + off(i)]: permute (permuted strides), broadcast (stride 0),
// narrow (offset), flip (negative stride, offset at the last element).
extern "C" __global__ void strided_gather(float* __restrict__ y, const float* __restrict__ x,
                                          long long n, long long offset, Dims dims, Dims strides,
                                          int rank) {
  for (long long i = grid_start(); i < n; i += grid_stride())
    y[i] = x[offset + strided_offset(i, dims, strides, rank)];
}

// One part of a concat: x is [outer, inner], y is [outer, total]; copies x
// into columns start..start+inner of y.
extern "C" __global__ void concat_part(float* __restrict__ y, const float* __restrict__ x,
                                       long long outer, long long inner, long long total,
                                       long long start) {
  const long long n = outer * inner;
  for (long long i = grid_start(); i < n; i += grid_stride()) {
    const long long o = i / inner;
    y[o * total + start + (i - o * inner)] = x[i];
  }
}

// ---------------------------------------------------------------- reductions
// x is viewed as [outer, r, inner] and reduced over r into y [outer, inner],
// accumulating in fp32. The launch code permutes first when the reduced axes
// are not adjacent.

__device__ __forceinline__ float reduce_identity(int op) {
  return op == R_MAX ? __int_as_float(0xff800000) : 0.0f;  // -inf for max
}
__device__ __forceinline__ float reduce_combine(int op, float acc, float v) {
  return op == R_MAX ? fmaxf(acc, v) : acc + v;
}

// inner == 1, short rows: one warp per row. The block size must be a multiple
// of 32 (the launch uses 256); every lane of a warp shares its row, so the
// loop condition is uniform within each warp.
extern "C" __global__ void reduce_rows_warp(float* __restrict__ y, const float* __restrict__ x,
                                            long long outer, long long r, int op) {
  const int lane = threadIdx.x & 31;
  const int warps = blockDim.x >> 5;
  for (long long row = (long long)blockIdx.x * warps + (threadIdx.x >> 5); row < outer;
       row += (long long)gridDim.x * warps) {
    const float* src = x + row * r;
    float acc = reduce_identity(op);
    for (long long k = lane; k < r; k += 32) acc = reduce_combine(op, acc, src[k]);
    acc = op == R_MAX ? warp_reduce_max(acc) : warp_reduce_sum(acc);
    if (lane == 0) y[row] = acc;
  }
}

// inner == 1, long rows: one block per row; any block size that is a
// multiple of 32, up to 1024.
extern "C" __global__ void reduce_rows_block(float* __restrict__ y, const float* __restrict__ x,
                                             long long outer, long long r, int op) {
  __shared__ float warp_acc[32];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, warps = blockDim.x >> 5;
  for (long long row = blockIdx.x; row < outer; row += gridDim.x) {
    const float* src = x + row * r;
    float acc = reduce_identity(op);
    for (long long k = tid; k < r; k += blockDim.x) acc = reduce_combine(op, acc, src[k]);
    acc = op == R_MAX ? warp_reduce_max(acc) : warp_reduce_sum(acc);
    __syncthreads();  // the previous row may still be reading warp_acc
    if (lane == 0) warp_acc[warp] = acc;
    __syncthreads();
    if (tid == 0) {
      float total = warp_acc[0];
      for (int w = 1; w < warps; ++w) total = reduce_combine(op, total, warp_acc[w]);
      y[row] = total;
    }
  }
}

// inner > 1: block (bx, by) with bx * by <= 256. threadIdx.x walks inner
// (coalesced loads), threadIdx.y splits r; the by partial results are
// combined through shared memory. gridDim.x covers inner, gridDim.y loops
// over outer.
extern "C" __global__ void reduce_inner(float* __restrict__ y, const float* __restrict__ x,
                                        long long outer, long long r, long long inner, int op) {
  __shared__ float partial[256];
  const int tx = threadIdx.x, ty = threadIdx.y, bx = blockDim.x, by = blockDim.y;
  const long long j = (long long)blockIdx.x * bx + tx;
  for (long long o = blockIdx.y; o < outer; o += gridDim.y) {
    float acc = reduce_identity(op);
    if (j < inner) {
      const float* src = x + o * r * inner + j;
      for (long long k = ty; k < r; k += by) acc = reduce_combine(op, acc, src[k * inner]);
    }
    partial[ty * bx + tx] = acc;
    __syncthreads();
    if (ty == 0 && j < inner) {
      for (int k = 1; k < by; ++k) acc = reduce_combine(op, acc, partial[k * bx + tx]);
      y[o * inner + j] = acc;
    }
    __syncthreads();  // partial is rewritten by the next o
  }
}

// One Adam step (torch.optim.Adam without weight decay) over n parameters,
// out of place so that tensors sharing the old buffers keep them:
//   g  = nan_to_num(g, nan=0, ±inf=±1e5)
//   m' = b1·m + (1−b1)·g,   v' = b2·v + (1−b2)·g²
//   p' = p − (m' / (sqrt(v')·inv_sqrt_bc2 + eps)) · step_size
// with step_size = lr/(1−b1^t) and inv_sqrt_bc2 = 1/sqrt(1−b2^t) from the
// host. has_state = 0 (first step): m and v are zeros and never read.
// CPU twin: src/train/adam.rs (adam_update_host).
extern "C" __global__ void adam_step(float* __restrict__ p_out, float* __restrict__ m_out,
                                     float* __restrict__ v_out, const float* __restrict__ p,
                                     const float* __restrict__ m, const float* __restrict__ v,
                                     const float* __restrict__ g, long long n, float b1, float b2,
                                     float step_size, float inv_sqrt_bc2, float eps,
                                     int has_state) {
  for (long long i = grid_start(); i < n; i += grid_stride()) {
    float gi = g[i];
    gi = gi != gi ? 0.0f : fminf(fmaxf(gi, -1e5f), 1e5f);
    const float mi = (has_state ? b1 * m[i] : 0.0f) + (1.0f - b1) * gi;
    const float vi = (has_state ? b2 * v[i] : 0.0f) + (1.0f - b2) * (gi * gi);
    m_out[i] = mi;
    v_out[i] = vi;
    p_out[i] = p[i] - (mi / (sqrtf(vi) * inv_sqrt_bc2 + eps)) * step_size;
  }
}

// Casts between FP32 and 2-byte storage (fmt TC_BF16 or TC_F16, see
// common.cuh): y[i] = round_nearest_even(x[i]), and the exact widening.
// CPU twin: src/dtype.rs (encode, decode).
extern "C" __global__ void cast_to_half(unsigned short* __restrict__ y, const float* __restrict__ x,
                                        long long n, int fmt) {
  for (long long i = grid_start(); i < n; i += grid_stride()) y[i] = half_bits_from_float(x[i], fmt);
}
extern "C" __global__ void cast_from_half(float* __restrict__ y, const unsigned short* __restrict__ x,
                                          long long n, int fmt) {
  for (long long i = grid_start(); i < n; i += grid_stride()) y[i] = half_bits_to_float(x[i], fmt);
}
