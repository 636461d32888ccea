// Conv2d family (NCHW, cross-correlation, zero padding, groups): forward,
// input gradient and weight gradient, each an implicit GEMM.
//
// Launch code: src/backend/cuda/conv.rs; CPU twin: src/backend/cpu/conv.rs.
//
// All three share one tile scheme: a block of 256 threads computes a 64×64
// tile of the GEMM result (or 16×64, 64×16, 16×16 for skinny GEMMs, see
// Tile), stepping over the reduction 16 at a time; each thread owns a 4×4
// micro-tile (rows 4ty..4ty+3, columns 4tx..4tx+3; fewer in the skinny
// variants), read from shared memory as one float4 per operand and step (a
// quarter of the shared load instructions of scalar reads; a warp's 16 tx
// read 256 contiguous bytes, its 2 ty broadcast). The next step's operands
// are loaded into registers while the current step is multiplied from
// shared memory (two shared buffers, one barrier per step).
// Every load is bounds-checked (zero outside), so no size has to divide a tile.
//
// __launch_bounds__(256, 4) caps registers at 64, so four blocks (68 KiB of
// shared memory) fit an SM; ptxas reports no spills at that cap.
//
// The launch code checks that every tensor (and the weight-gradient
// workspace) has fewer than 2^31 elements, so int offsets do not overflow.
#include "common.cuh"

#define CONV_BK 16
#define CONV_THREADS 256

// The tile of one block: BM GEMM rows × BN columns. 256 threads as 16 × 16
// (tx = tid % 16, ty = tid / 16), each owning an RM × RN micro-tile, rows
// RM·ty.., columns RN·tx... 64 × 64 (4 × 4 micro-tiles) is the main shape;
// 16-row or 16-column variants serve GEMMs with at most 16 rows or columns
// (ToRGB's 3 outputs, fromRGB's 3 inputs), which a 64-wide tile would pad
// with up to 21× wasted work.
template <int BM, int BN>
struct Tile {
  static constexpr int RM = BM / 16, RN = BN / 16;
  // Shared row strides: +4 keeps rows 16-byte aligned (float4 reads) and
  // spreads the column-major stores of the weight-gradient kernel over banks.
  static constexpr int LDA = BM + 4, LDB = BN + 4;
  static constexpr int A_FLOATS = CONV_BK * LDA, B_FLOATS = CONV_BK * LDB;
  // One buffer holds an A and a B tile; two buffers alternate. The launch
  // code passes 2 · BUF floats of dynamic shared memory.
  static constexpr int BUF = A_FLOATS + B_FLOATS;
  // Loads per thread and step: A and B tiles have BK·BM and BK·BN elements.
  static constexpr int QA = BM * CONV_BK / CONV_THREADS, QB = BN * CONV_BK / CONV_THREADS;
};

// R consecutive floats of shared memory; 4 of them in one 16-byte load.
template <int R>
__device__ __forceinline__ void read_frag(const float* __restrict__ p, float* v) {
  if constexpr (R == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x;
    v[1] = t.y;
    v[2] = t.z;
    v[3] = t.w;
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r) v[r] = p[r];
  }
}

// acc[r][c] += Σ_k As[k][RM·ty + r] · Bs[k][RN·tx + c] over one reduction step.
template <int BM, int BN>
__device__ __forceinline__ void conv_tile_fma(const float* __restrict__ As,
                                              const float* __restrict__ Bs,
                                              float (&acc)[BM / 16][BN / 16], int tx, int ty) {
  using T = Tile<BM, BN>;
#pragma unroll
  for (int k = 0; k < CONV_BK; ++k) {
    float a[T::RM], b[T::RN];
    read_frag<T::RM>(As + k * T::LDA + T::RM * ty, a);
    read_frag<T::RN>(Bs + k * T::LDB + T::RN * tx, b);
#pragma unroll
    for (int r = 0; r < T::RM; ++r)
#pragma unroll
      for (int c = 0; c < T::RN; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
  }
}

// The main loop shared by the three kernels: `steps` reduction steps, the
// next one loaded (load(s) into registers, store(buf) into shared memory)
// while the current one is multiplied. Every thread of the block calls it.
template <int BM, int BN, typename Load, typename Store>
__device__ __forceinline__ void conv_mainloop(float* smem, int steps, float (&acc)[BM / 16][BN / 16],
                                              int tx, int ty, Load load, Store store) {
  using T = Tile<BM, BN>;
#pragma unroll
  for (int r = 0; r < T::RM; ++r)
#pragma unroll
    for (int c = 0; c < T::RN; ++c) acc[r][c] = 0.0f;
  if (steps > 0) {
    load(0);
    store(smem);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    float* cur = smem + (s & 1) * T::BUF;
    float* nxt = smem + ((s + 1) & 1) * T::BUF;
    if (s + 1 < steps) load(s + 1);
    conv_tile_fma<BM, BN>(cur, cur + T::A_FLOATS, acc, tx, ty);
    if (s + 1 < steps) store(nxt);
    __syncthreads();
  }
}

// The parameters of every conv kernel after its three buffers.
#define CONV_GEOM                                                                              \
  int N, int C, int H, int W, int O, int kh, int kw, int sy, int sx, int py, int px, int OH, \
      int OW, int G
#define CONV_GEOM_ARGS N, C, H, W, O, kh, kw, sy, sx, py, px, OH, OW, G

// ------------------------------------------------------------------ forward
// Per group g: Y_g[m, col] = Σ_k W_g[m, k] · X_g[k, col], with m an output
// channel of the group, col = (n, oy, ox) and k = (tap, c): the reduction
// runs over kernel taps (outer) and chunks of 16 input channels (inner), so
// the input pixel of a tap is computed once per step, with no division.
//
// Grid: (ceil(N·OH·OW / BN), ceil(O/G / BM), G); block 256.
template <int BM, int BN>
__device__ __forceinline__ void conv_fwd(float* __restrict__ y, const float* __restrict__ x,
                                         const float* __restrict__ w, CONV_GEOM) {
  using T = Tile<BM, BN>;
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int Cg = C / G, Og = O / G, g = blockIdx.z;
  const int P = OH * OW, HW = H * W, ncols = N * P, khkw = kh * kw;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  // Loads: this thread's output pixel (B column) and weight row (A row) are
  // fixed; it loads reduction rows kb + (256/BN)·q of B and ka + (256/BM)·q of A.
  const int bcol = tid % BN, kb = tid / BN;
  const int arow = tid % BM, ka = tid / BM;
  const int col = n0 + bcol;
  const bool col_ok = col < ncols;
  int iy0 = 0, ix0 = 0;
  const float* xb = x;
  if (col_ok) {
    const int n = col / P, p = col - n * P;
    const int oy = p / OW, ox = p - oy * OW;
    iy0 = oy * sy - py;
    ix0 = ox * sx - px;
    xb = x + (n * C + g * Cg) * HW;
  }
  const int m_load = m0 + arow;
  const bool m_ok = m_load < Og;
  const float* wb = w + (g * Og + (m_ok ? m_load : 0)) * Cg * khkw;

  const int chunks = (Cg + CONV_BK - 1) / CONV_BK;
  float ra[T::QA], rb[T::QB];
  auto load = [&](int s) {
    const int tap = s / chunks, c0 = (s - tap * chunks) * CONV_BK;
    const int i = tap / kw, j = tap - i * kw;
    const int iy = iy0 + i, ix = ix0 + j;
    const bool pix_ok = col_ok && iy >= 0 && iy < H && ix >= 0 && ix < W;
    const int off = iy * W + ix;
#pragma unroll
    for (int q = 0; q < T::QA; ++q) {
      const int c = c0 + ka + (CONV_THREADS / BM) * q;
      ra[q] = (m_ok && c < Cg) ? wb[c * khkw + tap] : 0.0f;
    }
#pragma unroll
    for (int q = 0; q < T::QB; ++q) {
      const int c = c0 + kb + (CONV_THREADS / BN) * q;
      rb[q] = (pix_ok && c < Cg) ? xb[c * HW + off] : 0.0f;
    }
  };
  auto store = [&](float* buf) {
#pragma unroll
    for (int q = 0; q < T::QA; ++q) buf[(ka + (CONV_THREADS / BM) * q) * T::LDA + arow] = ra[q];
#pragma unroll
    for (int q = 0; q < T::QB; ++q)
      buf[T::A_FLOATS + (kb + (CONV_THREADS / BN) * q) * T::LDB + bcol] = rb[q];
  };
  float acc[T::RM][T::RN];
  conv_mainloop<BM, BN>(smem, khkw * chunks, acc, tx, ty, load, store);

#pragma unroll
  for (int c = 0; c < T::RN; ++c) {
    const int oc = n0 + T::RN * tx + c;
    if (oc >= ncols) continue;
    const int n = oc / P, p = oc - n * P;
    float* yb = y + (n * O + g * Og) * P + p;
#pragma unroll
    for (int r = 0; r < T::RM; ++r) {
      const int m = m0 + T::RM * ty + r;
      if (m < Og) yb[m * P] = acc[r][c];
    }
  }
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_fwd(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w,
               CONV_GEOM) {
  conv_fwd<64, 64>(y, x, w, CONV_GEOM_ARGS);
}
// At most 16 output channels per group.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_fwd_m16(float* __restrict__ y, const float* __restrict__ x,
                   const float* __restrict__ w, CONV_GEOM) {
  conv_fwd<16, 64>(y, x, w, CONV_GEOM_ARGS);
}

// ----------------------------------------------------------- input gradient
// gx[n, c, iy, ix] = Σ_{m, i, j} w[m, c, i, j] · gy[n, m, oy, ox] over the
// taps with iy + py − i = oy·sy (and likewise in x). Split by stride phase
// (ry, rx) = (iy mod sy, ix mod sx): within a phase exactly the taps
// i ≡ (ry + py) (mod sy) contribute, and for the t-th of them
// oy = a + (ry + py) / sy − t where iy = ry + a·sy. So each phase is a dense
// implicit GEMM gathering over output pixels (no atomics, no wasted taps):
// rows c, columns (n, a, b), reduction (phase tap, output channel).
//
// Grid: (ceil(N·ceil(H/sy)·ceil(W/sx) / BN), ceil(C/G / BM), G·sy·sx); block 256.
template <int BM, int BN>
__device__ __forceinline__ void conv_dgrad(float* __restrict__ gx, const float* __restrict__ gy,
                                           const float* __restrict__ w, CONV_GEOM) {
  using T = Tile<BM, BN>;
  const int phases = sy * sx;
  const int g = blockIdx.z / phases, ph = blockIdx.z - g * phases;
  const int ry = ph / sx, rx = ph - ry * sx;
  // Input pixels of this phase: rows ry, ry + sy, ..., columns likewise.
  const int Hp = ry < H ? (H - ry + sy - 1) / sy : 0;
  const int Wp = rx < W ? (W - rx + sx - 1) / sx : 0;
  const int Pp = Hp * Wp, ncols = N * Pp;
  const int n0 = blockIdx.x * BN;
  // The grid covers the largest phase; the whole block leaves together.
  if (n0 >= ncols) return;
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int Cg = C / G, Og = O / G;
  const int P = OH * OW, HW = H * W, khkw = kh * kw;
  const int m0 = blockIdx.y * BM;
  // Taps of the phase: i = i0 + t·sy for t < khp (and j likewise).
  const int i0 = (ry + py) % sy, qy = (ry + py) / sy;
  const int j0 = (rx + px) % sx, qx = (rx + px) / sx;
  const int khp = i0 < kh ? (kh - i0 + sy - 1) / sy : 0;
  const int kwp = j0 < kw ? (kw - j0 + sx - 1) / sx : 0;

  const int bcol = tid % BN, kb = tid / BN;
  const int arow = tid % BM, ka = tid / BM;
  const int col = n0 + bcol;
  const bool col_ok = col < ncols;
  int a = 0, b = 0;
  const float* gyb = gy;
  if (col_ok) {
    const int n = col / Pp, p = col - n * Pp;
    a = p / Wp;
    b = p - a * Wp;
    gyb = gy + (n * O + g * Og) * P;
  }
  const int c_load = m0 + arow;
  const bool c_ok = c_load < Cg;
  const float* wb = w + (g * Og * Cg + (c_ok ? c_load : 0)) * khkw;

  const int chunks = (Og + CONV_BK - 1) / CONV_BK;
  float ra[T::QA], rb[T::QB];
  auto load = [&](int s) {
    const int tap = s / chunks, mk0 = (s - tap * chunks) * CONV_BK;
    const int ti = tap / kwp, tj = tap - ti * kwp;
    const int oy = a + qy - ti, ox = b + qx - tj;
    const bool pix_ok = col_ok && oy >= 0 && oy < OH && ox >= 0 && ox < OW;
    const int off = oy * OW + ox;
    const int wtap = (i0 + ti * sy) * kw + j0 + tj * sx;
#pragma unroll
    for (int q = 0; q < T::QA; ++q) {
      const int m = mk0 + ka + (CONV_THREADS / BM) * q;
      ra[q] = (c_ok && m < Og) ? wb[m * Cg * khkw + wtap] : 0.0f;
    }
#pragma unroll
    for (int q = 0; q < T::QB; ++q) {
      const int m = mk0 + kb + (CONV_THREADS / BN) * q;
      rb[q] = (pix_ok && m < Og) ? gyb[m * P + off] : 0.0f;
    }
  };
  auto store = [&](float* buf) {
#pragma unroll
    for (int q = 0; q < T::QA; ++q) buf[(ka + (CONV_THREADS / BM) * q) * T::LDA + arow] = ra[q];
#pragma unroll
    for (int q = 0; q < T::QB; ++q)
      buf[T::A_FLOATS + (kb + (CONV_THREADS / BN) * q) * T::LDB + bcol] = rb[q];
  };
  float acc[T::RM][T::RN];
  // A phase without taps (kernel smaller than the stride) writes zeros.
  conv_mainloop<BM, BN>(smem, khp * kwp * chunks, acc, tx, ty, load, store);

#pragma unroll
  for (int c = 0; c < T::RN; ++c) {
    const int oc = n0 + T::RN * tx + c;
    if (oc >= ncols) continue;
    const int n = oc / Pp, p = oc - n * Pp;
    const int pa = p / Wp, pb = p - pa * Wp;
    float* gxb = gx + (n * C + g * Cg) * HW + (ry + pa * sy) * W + rx + pb * sx;
#pragma unroll
    for (int r = 0; r < T::RM; ++r) {
      const int m = m0 + T::RM * ty + r;
      if (m < Cg) gxb[m * HW] = acc[r][c];
    }
  }
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_dgrad(float* __restrict__ gx, const float* __restrict__ gy,
                 const float* __restrict__ w, CONV_GEOM) {
  conv_dgrad<64, 64>(gx, gy, w, CONV_GEOM_ARGS);
}
// At most 16 input channels per group.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_dgrad_m16(float* __restrict__ gx, const float* __restrict__ gy,
                     const float* __restrict__ w, CONV_GEOM) {
  conv_dgrad<16, 64>(gx, gy, w, CONV_GEOM_ARGS);
}

// ---------------------------------------------------------- weight gradient
// Per group g: gW_g[m, kc] = Σ_l gy[n, m, oy, ox] · x[n, c, oy·sy − py + i,
// ox·sx − px + j] with kc = (c, i, j) (the weight's own layout) and
// l = (n, oy, ox) running over batch × output pixels: a GEMM whose reduction
// is the long axis. It is split ("split-K") into `splits` contiguous ranges
// of `chunk` (a multiple of 16) so that small weights still fill the GPU;
// split s writes its partial sums to out[s] ([splits, O, Cg·kh·kw]) and
// conv2d_wgrad_reduce adds them up in a fixed order (deterministic, and no
// zeroed buffer or atomics needed). With one split, out is the gradient.
//
// Grid: (ceil(Cg·kh·kw / BN), ceil(O/G / BM), G·splits); block 256.
template <int BM, int BN>
__device__ __forceinline__ void conv_wgrad(float* __restrict__ out, const float* __restrict__ x,
                                           const float* __restrict__ gy, CONV_GEOM, int splits,
                                           int chunk) {
  using T = Tile<BM, BN>;
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int Cg = C / G, Og = O / G;
  const int g = blockIdx.z / splits, split = blockIdx.z - g * splits;
  const int P = OH * OW, HW = H * W, khkw = kh * kw, kc_len = Cg * khkw;
  const int L = N * P;
  const int l_begin = split * chunk;
  const int l_end = min(L, l_begin + chunk);
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  // Loads: this thread reads reduction row lk of both tiles (one (n, oy, ox)
  // per step, one division pair) for rows/columns lq + 16q, whose channel
  // and tap it decodes once here.
  const int lk = tid & 15, lq = tid >> 4;
  int xoff[T::QB], ti[T::QB], tj[T::QB], gyoff[T::QA];
#pragma unroll
  for (int q = 0; q < T::QB; ++q) {
    const int kc = n0 + lq + 16 * q;
    if (kc < kc_len) {
      const int c = kc / khkw, t = kc - c * khkw;
      ti[q] = t / kw;
      tj[q] = t - ti[q] * kw;
      xoff[q] = (g * Cg + c) * HW + ti[q] * W + tj[q];
    } else {
      ti[q] = -(1 << 28);  // fails every bounds check below
      tj[q] = 0;
      xoff[q] = 0;
    }
  }
#pragma unroll
  for (int q = 0; q < T::QA; ++q) {
    const int m = m0 + lq + 16 * q;
    gyoff[q] = m < Og ? (g * Og + m) * P : -1;
  }

  const int steps = l_end > l_begin ? (l_end - l_begin + CONV_BK - 1) / CONV_BK : 0;
  float ra[T::QA], rb[T::QB];
  auto load = [&](int s) {
    const int l = l_begin + s * CONV_BK + lk;
    const bool l_ok = l < l_end;
    int n = 0, p = 0, oy = 0, ox = 0;
    if (l_ok) {
      n = l / P;
      p = l - n * P;
      oy = p / OW;
      ox = p - oy * OW;
    }
    const int iy0 = oy * sy - py, ix0 = ox * sx - px;
    const float* gyn = gy + n * O * P + p;
    const float* xn = x + n * C * HW + iy0 * W + ix0;
#pragma unroll
    for (int q = 0; q < T::QA; ++q) ra[q] = (l_ok && gyoff[q] >= 0) ? gyn[gyoff[q]] : 0.0f;
#pragma unroll
    for (int q = 0; q < T::QB; ++q) {
      const int iy = iy0 + ti[q], ix = ix0 + tj[q];
      const bool ok = l_ok && iy >= 0 && iy < H && ix >= 0 && ix < W;
      rb[q] = ok ? xn[xoff[q]] : 0.0f;
    }
  };
  auto store = [&](float* buf) {
#pragma unroll
    for (int q = 0; q < T::QA; ++q) buf[lk * T::LDA + lq + 16 * q] = ra[q];
#pragma unroll
    for (int q = 0; q < T::QB; ++q) buf[T::A_FLOATS + lk * T::LDB + lq + 16 * q] = rb[q];
  };
  float acc[T::RM][T::RN];
  conv_mainloop<BM, BN>(smem, steps, acc, tx, ty, load, store);

  float* ob = out + (split * O + g * Og) * kc_len;
#pragma unroll
  for (int r = 0; r < T::RM; ++r) {
    const int m = m0 + T::RM * ty + r;
    if (m >= Og) continue;
#pragma unroll
    for (int c = 0; c < T::RN; ++c) {
      const int kc = n0 + T::RN * tx + c;
      if (kc < kc_len) ob[m * kc_len + kc] = acc[r][c];
    }
  }
}

// Variants by tile: 64 × 64; at most 16 output channels per group (m16);
// at most 16 weight columns Cg·kh·kw (n16); both.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_wgrad(float* __restrict__ out, const float* __restrict__ x,
                 const float* __restrict__ gy, CONV_GEOM, int splits, int chunk) {
  conv_wgrad<64, 64>(out, x, gy, CONV_GEOM_ARGS, splits, chunk);
}
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_wgrad_m16(float* __restrict__ out, const float* __restrict__ x,
                     const float* __restrict__ gy, CONV_GEOM, int splits, int chunk) {
  conv_wgrad<16, 64>(out, x, gy, CONV_GEOM_ARGS, splits, chunk);
}
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_wgrad_n16(float* __restrict__ out, const float* __restrict__ x,
                     const float* __restrict__ gy, CONV_GEOM, int splits, int chunk) {
  conv_wgrad<64, 16>(out, x, gy, CONV_GEOM_ARGS, splits, chunk);
}
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_wgrad_m16n16(float* __restrict__ out, const float* __restrict__ x,
                        const float* __restrict__ gy, CONV_GEOM, int splits, int chunk) {
  conv_wgrad<16, 16>(out, x, gy, CONV_GEOM_ARGS, splits, chunk);
}

// gw[i] = Σ_s partial[s·n + i] for i < n, s in order 0..splits.
extern "C" __global__ void conv2d_wgrad_reduce(float* __restrict__ gw,
                                               const float* __restrict__ partial, int n,
                                               int splits) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[k * n + i];
    gw[i] = s;
  }
}
