// Conv2d family (NCHW, cross-correlation, zero padding, groups): forward,
// input gradient and weight gradient, each an implicit GEMM.
//
// Launch code: src/backend/cuda/conv.rs; CPU twin: src/backend/cpu/conv.rs.
//
// All three share one tile scheme: a block of 256 threads computes a 64×64
// tile of the GEMM result, stepping over the reduction 16 at a time; each
// thread owns a 4×4 micro-tile (rows 4ty..4ty+3, columns 4tx..4tx+3), read
// from shared memory as one float4 per operand and step (a quarter of the
// shared load instructions of scalar reads; a warp's 16 tx read 256
// contiguous bytes, its 2 ty broadcast). The next
// step's operands are loaded into registers while the current step is
// multiplied from shared memory (two shared buffers, one barrier per step).
// Every load is bounds-checked (zero outside), so no size has to divide a tile.
//
// __launch_bounds__(256, 4) caps registers at 64, so four blocks (68 KiB of
// shared memory) fit an SM; ptxas reports no spills at that cap.
//
// The launch code checks that every tensor (and the weight-gradient
// workspace) has fewer than 2^31 elements, so int offsets do not overflow.
#include "common.cuh"

#define CONV_BM 64
#define CONV_BN 64
#define CONV_BK 16
#define CONV_THREADS 256
// Shared row stride: 64 + 4 keeps rows 16-byte aligned and spreads the
// column-major stores of the weight-gradient kernel over the banks.
#define CONV_LDS (CONV_BM + 4)
// One operand tile in shared memory, and the dynamic shared bytes of a
// launch: two buffers of (A tile, B tile).
#define CONV_TILE (CONV_BK * CONV_LDS)
#define CONV_SHARED_FLOATS (4 * CONV_TILE)

// acc[r][c] += Σ_k As[k][4ty + r] · Bs[k][4tx + c] over one reduction step.
__device__ __forceinline__ void conv_tile_fma(const float* __restrict__ As,
                                              const float* __restrict__ Bs, float acc[4][4],
                                              int tx, int ty) {
#pragma unroll
  for (int k = 0; k < CONV_BK; ++k) {
    // One 16-byte shared load per operand (rows are 16-byte aligned).
    const float4 a = *reinterpret_cast<const float4*>(As + k * CONV_LDS + 4 * ty);
    const float4 b = *reinterpret_cast<const float4*>(Bs + k * CONV_LDS + 4 * tx);
    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
  }
}

// ------------------------------------------------------------------ forward
// Per group g: Y_g[m, col] = Σ_k W_g[m, k] · X_g[k, col], with m an output
// channel of the group, col = (n, oy, ox) and k = (tap, c): the reduction
// runs over kernel taps (outer) and chunks of 16 input channels (inner), so
// the input pixel of a tap is computed once per step, with no division.
//
// Grid: (ceil(N·OH·OW / 64), ceil(O/G / 64), G); block 256; shared
// CONV_SHARED_FLOATS floats.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_fwd(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w,
               int N, int C, int H, int W, int O, int kh, int kw, int sy, int sx, int py, int px,
               int OH, int OW, int G) {
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int Cg = C / G, Og = O / G, g = blockIdx.z;
  const int P = OH * OW, HW = H * W, ncols = N * P, khkw = kh * kw;
  const int m0 = blockIdx.y * CONV_BM, n0 = blockIdx.x * CONV_BN;

  // Loads: this thread's column (output pixel) and weight row are fixed;
  // it loads reduction rows lk + 4q of both tiles.
  const int lr = tid & 63, lk = tid >> 6;
  const int col = n0 + lr;
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
  const int m_load = m0 + lr;
  const bool m_ok = m_load < Og;
  const float* wb = w + (g * Og + (m_ok ? m_load : 0)) * Cg * khkw;

  const int chunks = (Cg + CONV_BK - 1) / CONV_BK;
  const int steps = khkw * chunks;
  float ra[4], rb[4];
  auto load = [&](int s) {
    const int tap = s / chunks, c0 = (s - tap * chunks) * CONV_BK;
    const int i = tap / kw, j = tap - i * kw;
    const int iy = iy0 + i, ix = ix0 + j;
    const bool pix_ok = col_ok && iy >= 0 && iy < H && ix >= 0 && ix < W;
    const int off = iy * W + ix;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int c = c0 + lk + 4 * q;
      const bool c_ok = c < Cg;
      ra[q] = (m_ok && c_ok) ? wb[c * khkw + tap] : 0.0f;
      rb[q] = (pix_ok && c_ok) ? xb[c * HW + off] : 0.0f;
    }
  };
  auto store = [&](float* buf) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      buf[(lk + 4 * q) * CONV_LDS + lr] = ra[q];
      buf[CONV_TILE + (lk + 4 * q) * CONV_LDS + lr] = rb[q];
    }
  };

  float acc[4][4];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
  if (steps > 0) {
    load(0);
    store(smem);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    float* cur = smem + (s & 1) * 2 * CONV_TILE;
    float* nxt = smem + ((s + 1) & 1) * 2 * CONV_TILE;
    if (s + 1 < steps) load(s + 1);
    conv_tile_fma(cur, cur + CONV_TILE, acc, tx, ty);
    if (s + 1 < steps) store(nxt);
    __syncthreads();
  }

#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int oc = n0 + 4 * tx + c;
    if (oc >= ncols) continue;
    const int n = oc / P, p = oc - n * P;
    float* yb = y + (n * O + g * Og) * P + p;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int m = m0 + 4 * ty + r;
      if (m < Og) yb[m * P] = acc[r][c];
    }
  }
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
// Grid: (ceil(N·ceil(H/sy)·ceil(W/sx) / 64), ceil(C/G / 64), G·sy·sx);
// block 256; shared CONV_SHARED_FLOATS floats.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_dgrad(float* __restrict__ gx, const float* __restrict__ gy, const float* __restrict__ w,
                 int N, int C, int H, int W, int O, int kh, int kw, int sy, int sx, int py, int px,
                 int OH, int OW, int G) {
  const int phases = sy * sx;
  const int g = blockIdx.z / phases, ph = blockIdx.z - g * phases;
  const int ry = ph / sx, rx = ph - ry * sx;
  // Input pixels of this phase: rows ry, ry + sy, ..., columns likewise.
  const int Hp = ry < H ? (H - ry + sy - 1) / sy : 0;
  const int Wp = rx < W ? (W - rx + sx - 1) / sx : 0;
  const int Pp = Hp * Wp, ncols = N * Pp;
  const int n0 = blockIdx.x * CONV_BN;
  // The grid covers the largest phase; the whole block leaves together.
  if (n0 >= ncols) return;
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int Cg = C / G, Og = O / G;
  const int P = OH * OW, HW = H * W, khkw = kh * kw;
  const int m0 = blockIdx.y * CONV_BM;
  // Taps of the phase: i = i0 + t·sy for t < khp (and j likewise).
  const int i0 = (ry + py) % sy, qy = (ry + py) / sy;
  const int j0 = (rx + px) % sx, qx = (rx + px) / sx;
  const int khp = i0 < kh ? (kh - i0 + sy - 1) / sy : 0;
  const int kwp = j0 < kw ? (kw - j0 + sx - 1) / sx : 0;

  const int lr = tid & 63, lk = tid >> 6;
  const int col = n0 + lr;
  const bool col_ok = col < ncols;
  int a = 0, b = 0;
  const float* gyb = gy;
  if (col_ok) {
    const int n = col / Pp, p = col - n * Pp;
    a = p / Wp;
    b = p - a * Wp;
    gyb = gy + (n * O + g * Og) * P;
  }
  const int c_load = m0 + lr;
  const bool c_ok = c_load < Cg;
  const float* wb = w + (g * Og * Cg + (c_ok ? c_load : 0)) * khkw;

  const int chunks = (Og + CONV_BK - 1) / CONV_BK;
  const int steps = khp * kwp * chunks;
  float ra[4], rb[4];
  auto load = [&](int s) {
    const int tap = s / chunks, m0k = (s - tap * chunks) * CONV_BK;
    const int ti = tap / kwp, tj = tap - ti * kwp;
    const int oy = a + qy - ti, ox = b + qx - tj;
    const bool pix_ok = col_ok && oy >= 0 && oy < OH && ox >= 0 && ox < OW;
    const int off = oy * OW + ox;
    const int wtap = (i0 + ti * sy) * kw + j0 + tj * sx;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int m = m0k + lk + 4 * q;
      const bool m_ok = m < Og;
      ra[q] = (c_ok && m_ok) ? wb[m * Cg * khkw + wtap] : 0.0f;
      rb[q] = (pix_ok && m_ok) ? gyb[m * P + off] : 0.0f;
    }
  };
  auto store = [&](float* buf) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      buf[(lk + 4 * q) * CONV_LDS + lr] = ra[q];
      buf[CONV_TILE + (lk + 4 * q) * CONV_LDS + lr] = rb[q];
    }
  };

  float acc[4][4];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
  if (steps > 0) {
    load(0);
    store(smem);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    float* cur = smem + (s & 1) * 2 * CONV_TILE;
    float* nxt = smem + ((s + 1) & 1) * 2 * CONV_TILE;
    if (s + 1 < steps) load(s + 1);
    conv_tile_fma(cur, cur + CONV_TILE, acc, tx, ty);
    if (s + 1 < steps) store(nxt);
    __syncthreads();
  }

  // A phase without taps (kernel smaller than the stride) writes zeros.
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int oc = n0 + 4 * tx + c;
    if (oc >= ncols) continue;
    const int n = oc / Pp, p = oc - n * Pp;
    const int pa = p / Wp, pb = p - pa * Wp;
    float* gxb = gx + (n * C + g * Cg) * HW + (ry + pa * sy) * W + rx + pb * sx;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int m = m0 + 4 * ty + r;
      if (m < Cg) gxb[m * HW] = acc[r][c];
    }
  }
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
// Grid: (ceil(Cg·kh·kw / 64), ceil(O/G / 64), G·splits); block 256; shared
// CONV_SHARED_FLOATS floats.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_wgrad(float* __restrict__ out, const float* __restrict__ x,
                 const float* __restrict__ gy, int N, int C, int H, int W, int O, int kh, int kw,
                 int sy, int sx, int py, int px, int OH, int OW, int G, int splits, int chunk) {
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int Cg = C / G, Og = O / G;
  const int g = blockIdx.z / splits, split = blockIdx.z - g * splits;
  const int P = OH * OW, HW = H * W, khkw = kh * kw, kc_len = Cg * khkw;
  const int L = N * P;
  const int l_begin = split * chunk;
  const int l_end = min(L, l_begin + chunk);
  const int m0 = blockIdx.y * CONV_BM, n0 = blockIdx.x * CONV_BN;

  // Loads: this thread reads reduction row lk of both tiles (one (n, oy, ox)
  // per step, one division pair) for rows/columns lq + 16q, whose channel
  // and tap it decodes once here.
  const int lk = tid & 15, lq = tid >> 4;
  int xoff[4], ti[4], tj[4], gyoff[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
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
    const int m = m0 + lq + 16 * q;
    gyoff[q] = m < Og ? (g * Og + m) * P : -1;
  }

  const int steps = l_end > l_begin ? (l_end - l_begin + CONV_BK - 1) / CONV_BK : 0;
  float ra[4], rb[4];
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
    for (int q = 0; q < 4; ++q) {
      ra[q] = (l_ok && gyoff[q] >= 0) ? gyn[gyoff[q]] : 0.0f;
      const int iy = iy0 + ti[q], ix = ix0 + tj[q];
      const bool ok = l_ok && iy >= 0 && iy < H && ix >= 0 && ix < W;
      rb[q] = ok ? xn[xoff[q]] : 0.0f;
    }
  };
  auto store = [&](float* buf) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      buf[lk * CONV_LDS + lq + 16 * q] = ra[q];
      buf[CONV_TILE + lk * CONV_LDS + lq + 16 * q] = rb[q];
    }
  };

  float acc[4][4];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
  if (steps > 0) {
    load(0);
    store(smem);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    float* cur = smem + (s & 1) * 2 * CONV_TILE;
    float* nxt = smem + ((s + 1) & 1) * 2 * CONV_TILE;
    if (s + 1 < steps) load(s + 1);
    conv_tile_fma(cur, cur + CONV_TILE, acc, tx, ty);
    if (s + 1 < steps) store(nxt);
    __syncthreads();
  }

  float* ob = out + (split * O + g * Og) * kc_len;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int m = m0 + 4 * ty + r;
    if (m >= Og) continue;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int kc = n0 + 4 * tx + c;
      if (kc < kc_len) ob[m * kc_len + kc] = acc[r][c];
    }
  }
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
