// Conv2d on the tensor cores (NCHW, cross-correlation, zero padding,
// groups): forward, input gradient and weight gradient as implicit GEMMs on
// mma.sync (common.cuh) with TF32 (m16n8k8) or BF16/FP16 (m16n8k16)
// operands and FP32 accumulators. The same math as kernels/conv.cu (the
// exact FP32 path); its own NVRTC module, compiled only when a non-FP32
// precision is first used. Launch code: src/backend/cuda/conv_tc.rs.
//
// Every kernel computes a 64 × 64 tile of its GEMM with 256 threads: 8
// warps, 2 along the rows (32 rows: two m16 tiles) × 4 along the columns (16
// columns: two n8 tiles), 16 FP32 accumulators per thread. Operands sit in
// shared memory as 32-byte rows (tc_row32), one row per tile row or column
// per k-step, K contiguous within a row, so both A and B fragments come from
// non-transposed ldmatrix.x4. Every load is bounds-checked (zero outside):
// no size has to divide a tile.
#include "common.cuh"

#define CT_TILE 64
#define CT_THREADS 256
#define CT_STAGES 3  // forward / input gradient: weight tiles in flight
#define CT_ROW_BYTES 32

// The parameters of every kernel after its buffers, as kernels/conv.cu.
#define CT_GEOM                                                                                \
  int N, int C, int H, int W, int O, int kh, int kw, int sy, int sx, int py, int px, int OH, \
      int OW, int G

// acc[i][j] += A · B over one k-step: A rows (warp rows 32·wm + 16·i ..) and
// B columns (warp columns 16·wn + 8·j ..) from 32-byte rows of `as` / `bs`.
template <int FMT>
__device__ __forceinline__ void ct_kstep(const unsigned char* as, const unsigned char* bs, float (&acc)[2][2][4],
                                         int lane, int wm, int wn) {
  // ldmatrix.x4 row addresses: lanes 8q..8q+7 give matrix q. A: matrix q is
  // rows +8·(q&1), 16-byte half q>>1 (a0..a3 of the fragment); B: matrix q is
  // the n8 tile q>>1, half q&1 (b0, b1 of tile 0, then of tile 1).
  const int q = lane >> 3, r = lane & 7;
  unsigned a[2][4], b[4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
    tc_ldmatrix<4>(a[i], as + tc_row32(32 * wm + 16 * i + r + 8 * (q & 1), q >> 1));
  tc_ldmatrix<4>(b, bs + tc_row32(16 * wn + 8 * (q >> 1) + r, q & 1));
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const unsigned bj[2] = {b[2 * j], b[2 * j + 1]};
#pragma unroll
    for (int i = 0; i < 2; ++i) tc_mma<FMT>(acc[i][j], a[i], bj, acc[i][j]);
  }
}

// -------------------------------------------------------------- weights
// wt[g][m][tap][k] = the operand of the weight as the GEMM's A (zero for
// k ≥ Kg), Kpad a multiple of the values per 32-byte row:
//   forward        (transpose = 0): m = output channel, k = input channel;
//   input gradient (transpose = 1): m = input channel, k = output channel.
// w is [G·Og, Cg, kk] (Mg, Kg are Og, Cg or Cg, Og).
extern "C" __global__ void conv_tc_weight(unsigned char* __restrict__ wt, const float* __restrict__ w, int G,
                                          int Mg, int Kg, int kk, int Kpad, int transpose, int fmt) {
  const long long total = (long long)G * Mg * kk * Kpad;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const int k = (int)(e % Kpad);
    const long long t = e / Kpad;
    const int tap = (int)(t % kk);
    const long long r = t / kk;
    const int m = (int)(r % Mg), g = (int)(r / Mg);
    float v = 0.0f;
    if (k < Kg) {
      const long long src = transpose ? ((long long)(g * Kg + k) * Mg + m) * kk + tap
                                      : ((long long)(g * Mg + m) * Kg + k) * kk + tap;
      v = w[src];
    }
    tc_store_operand(wt, e, v, fmt);
  }
}

// ---------------------------------------------- forward and input gradient
// One implicit GEMM for both: out[n, g·Mg + m, pixel] = Σ_{tap, k}
// wt[g][m][wtap][k] · src[n, g·Kg + k, src pixel of (pixel, tap)].
//   forward:  src = x [N, C, H, W], out = y [N, O, OH, OW], Mg = Og, Kg = Cg;
//             columns (n, oy, ox), every tap, src pixel (oy·sy − py + ky, ox·sx − px + kx).
//   input gradient (DGRAD): src = gy, out = gx, Mg = Cg, Kg = Og; split by
//             stride phase (ry, rx) as conv.cu's conv_dgrad: columns (n, a, b)
//             are the input pixels (ry + a·sy, rx + b·sx), and only the taps
//             i = i0 + ti·sy, j = j0 + tj·sx contribute, reading gy at
//             (a + qy − ti, b + qx − tj).
// K is ordered (tap, chunk of 32 bytes of channels); one k-step per chunk.
// Pipeline over CT_STAGES shared buffers, one barrier per k-step: the
// weights of step s+2 are in flight (cp.async) while step s is multiplied,
// and the input of step s+1 is loaded into registers before the products of
// step s and stored after them.
//
// Grid: (ceil(columns / 64), ceil(Mg / 64), G · phases); block 256; dynamic
// shared memory CT_STAGES · 2 · 64 · 32 bytes.
// XT is the source's element type: float, or unsigned short for F16 storage
// (an FP16 block's activations read as stored, `_xh`), widened exactly as
// each value is gathered.
__device__ __forceinline__ float ct_ld(float v) { return v; }
__device__ __forceinline__ float ct_ld(unsigned short h) { return half_bits_to_float(h, TC_F16); }

template <int FMT, bool DGRAD, typename XT = float>
__device__ __forceinline__ void ct_conv(float* __restrict__ out, const XT* __restrict__ src,
                                        const unsigned char* __restrict__ wt, CT_GEOM, int Kpad) {
  constexpr int EB = FMT == TC_TF32 ? 4 : 2;  // operand bytes
  constexpr int CC = CT_ROW_BYTES / EB;       // channels per k-step
  constexpr int UC = 4 / EB;                  // channels per 4-byte unit
  constexpr int TILE_BYTES = CT_TILE * CT_ROW_BYTES;
  const int phases = DGRAD ? sy * sx : 1;
  const int g = blockIdx.z / phases, ph = blockIdx.z - g * phases;
  const int ry = DGRAD ? ph / sx : 0, rx = DGRAD ? ph - (ph / sx) * sx : 0;
  const int Cg = C / G, Og = O / G;
  const int Mg = DGRAD ? Cg : Og, Kg = DGRAD ? Og : Cg;
  const int Cout = DGRAD ? C : O, Csrc = DGRAD ? O : C;
  const int SH = DGRAD ? OH : H, SW = DGRAD ? OW : W;     // source planes
  const int DH = DGRAD ? H : OH, DW = DGRAD ? W : OW;     // output planes
  // Column grid of this phase and the taps that reach it.
  int Pa, Pb, taps_x, taps, i0 = 0, j0 = 0, qy = 0, qx = 0;
  if (DGRAD) {
    Pa = ry < H ? (H - ry + sy - 1) / sy : 0;
    Pb = rx < W ? (W - rx + sx - 1) / sx : 0;
    i0 = (ry + py) % sy;
    qy = (ry + py) / sy;
    j0 = (rx + px) % sx;
    qx = (rx + px) / sx;
    const int khp = i0 < kh ? (kh - i0 + sy - 1) / sy : 0;
    taps_x = j0 < kw ? (kw - j0 + sx - 1) / sx : 0;
    taps = khp * taps_x;
  } else {
    Pa = OH;
    Pb = OW;
    taps_x = kw;
    taps = kh * kw;
  }
  const int ncols = N * Pa * Pb;
  const int n0 = blockIdx.x * CT_TILE, m0 = blockIdx.y * CT_TILE;
  if (n0 >= ncols) return;  // the grid covers the largest phase; the block leaves together
  SHARED_MEM(unsigned char, smem);  // CT_STAGES × (A tile, B tile)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp & 1, wn = warp >> 1;
  const int chunks = (Kg + CC - 1) / CC;
  const int steps = taps * chunks;
  const int kk = kh * kw;

  // A (weights) by cp.async: threads 0..127 copy one 16-byte half of a row.
  const int a_row = tid >> 1, a_half = tid & 1;
  const bool a_copies = tid < 2 * CT_TILE;
  const int a_m = m0 + a_row;
  const unsigned char* a_src = wt + ((long long)g * Mg + min(a_m, Mg - 1)) * kk * Kpad * EB + 16 * a_half;
  auto load_a = [&](int s) {
    if (s < steps && a_copies) {
      const int tap = s / chunks, c0 = (s - tap * chunks) * CC;
      const int ti = tap / taps_x, tj = tap - ti * taps_x;
      const int wtap = DGRAD ? (i0 + ti * sy) * kw + j0 + tj * sx : tap;
      unsigned char* dst = smem + (s % CT_STAGES) * 2 * TILE_BYTES;
      tc_cp_async16(dst + tc_row32(a_row, a_half), a_src + ((long long)wtap * Kpad + c0) * EB,
                    a_m < Mg ? 16 : 0);
    }
    tc_cp_async_commit();  // one group per step, possibly empty
  };

  // B (input) through registers: this thread's column is fixed, its 4-byte
  // units are b_unit and b_unit + 4 of the row.
  const int b_col = tid & (CT_TILE - 1), b_unit = tid >> 6;
  const int col = n0 + b_col;
  const bool col_ok = col < ncols;
  int ya, xb;  // source pixel of tap (0, 0)
  long long src_base;
  {
    const int cc = col_ok ? col : 0;
    const int n = cc / (Pa * Pb), p = cc - n * (Pa * Pb);
    const int a = p / Pb, b = p - a * Pb;
    ya = DGRAD ? a + qy : a * sy - py;
    xb = DGRAD ? b + qx : b * sx - px;
    src_base = ((long long)n * Csrc + g * Kg) * SH * SW;
  }
  unsigned breg[2];
  auto gather_b = [&](int s) {
    const int tap = s / chunks, c0 = (s - tap * chunks) * CC;
    const int ti = tap / taps_x, tj = tap - ti * taps_x;
    const int iy = DGRAD ? ya - ti : ya + ti, ix = DGRAD ? xb - tj : xb + tj;
    const bool inside = col_ok && iy >= 0 && iy < SH && ix >= 0 && ix < SW;
    const XT* sp = src + src_base + (long long)iy * SW + ix;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v[2] = {0.0f, 0.0f};
#pragma unroll
      for (int j = 0; j < UC; ++j) {
        const int c = c0 + (b_unit + 4 * h) * UC + j;
        if (inside && c < Kg) v[j] = ct_ld(sp[(long long)c * SH * SW]);
      }
      breg[h] = tc_pack<FMT>(v[0], v[1]);
    }
  };
  auto store_b = [&](int s) {
    unsigned char* bs = smem + (s % CT_STAGES) * 2 * TILE_BYTES + TILE_BYTES;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int u = b_unit + 4 * h;
      *reinterpret_cast<unsigned*>(bs + tc_row32(b_col, u >> 2) + 4 * (u & 3)) = breg[h];
    }
  };

  float acc[2][2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

  load_a(0);
  load_a(1);
  if (steps > 0) {
    gather_b(0);
    store_b(0);
  }
  for (int s = 0; s < steps; ++s) {
    tc_cp_async_wait<1>();  // this thread's weights of step s have landed
    __syncthreads();        // everyone's have, the input of step s is stored, step s−1 is consumed
    load_a(s + 2);          // into the buffer of step s−1
    if (s + 1 < steps) gather_b(s + 1);
    const unsigned char* as = smem + (s % CT_STAGES) * 2 * TILE_BYTES;
    ct_kstep<FMT>(as, as + TILE_BYTES, acc, lane, wm, wn);
    if (s + 1 < steps) store_b(s + 1);  // the buffer of step s−2: consumed before this step's barrier
  }
  tc_cp_async_wait<0>();

  // Epilogue: c0..c3 are rows g, g, g+8, g+8 and columns 2t, 2t+1.
  const int gq = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      const int oc = n0 + 16 * wn + 8 * j + 2 * t + v;
      if (oc >= ncols) continue;
      const int n = oc / (Pa * Pb), p = oc - n * (Pa * Pb);
      const int a = p / Pb, b = p - a * Pb;
      const long long o = ((long long)n * Cout + g * Mg) * DH * DW +
                          (DGRAD ? (long long)(ry + a * sy) * DW + rx + b * sx : (long long)a * DW + b);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int m = m0 + 32 * wm + 16 * i + gq + 8 * h;
          if (m < Mg) out[o + (long long)m * DH * DW] = acc[i][j][2 * h + v];
        }
    }
}

#define CT_CONV_PARAMS_X(out, src, XT)                                                          \
  float *__restrict__ out, const XT *__restrict__ src, const unsigned char *__restrict__ wt, \
      CT_GEOM, int Kpad
#define CT_CONV_PARAMS(out, src) CT_CONV_PARAMS_X(out, src, float)
#define CT_GEOM_ARGS N, C, H, W, O, kh, kw, sy, sx, py, px, OH, OW, G

extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_fwd_tf32(CT_CONV_PARAMS(y, x)) {
  ct_conv<TC_TF32, false>(y, x, wt, CT_GEOM_ARGS, Kpad);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_fwd_bf16(CT_CONV_PARAMS(y, x)) {
  ct_conv<TC_BF16, false>(y, x, wt, CT_GEOM_ARGS, Kpad);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_fwd_f16(CT_CONV_PARAMS(y, x)) {
  ct_conv<TC_F16, false>(y, x, wt, CT_GEOM_ARGS, Kpad);
}
// FP16 operands read from F16 storage (`_xh`: the FP16 blocks of mixed
// precision): the same products as conv_tc_fwd_f16 on the widened input,
// since F16 → FP32 → F16 is exact.
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2)
    conv_tc_fwd_f16_xh(CT_CONV_PARAMS_X(y, x, unsigned short)) {
  ct_conv<TC_F16, false, unsigned short>(y, x, wt, CT_GEOM_ARGS, Kpad);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_dgrad_tf32(CT_CONV_PARAMS(gx, gy)) {
  ct_conv<TC_TF32, true>(gx, gy, wt, CT_GEOM_ARGS, Kpad);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_dgrad_bf16(CT_CONV_PARAMS(gx, gy)) {
  ct_conv<TC_BF16, true>(gx, gy, wt, CT_GEOM_ARGS, Kpad);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_dgrad_f16(CT_CONV_PARAMS(gx, gy)) {
  ct_conv<TC_F16, true>(gx, gy, wt, CT_GEOM_ARGS, Kpad);
}

// ---------------------------------------------------------- weight gradient
// Per group g: part[split, g·Og + m, kc'] = Σ_l gy[n, g·Og + m, oy, ox] ·
// x[n, g·Cg + c, oy·sy − py + i, ox·sx − px + j] · in_scale[n, g·Cg + c]
// over the split's range of l = (n, oy, ox), kc = (c, i, j) the weight's own
// layout; kc' = kc, or the index of the flipped tap (c, kh−1−i, kw−1−j) when
// `flip`. in_scale (null: 1) and flip serve the modulated convolution, whose
// weight gradient is this GEMM on s ⊙ Z (kernels/modconv.cu's
// modconv_wgrad). Rows m → A, columns kc → B, K = l in k-steps of 32 bytes;
// both operands are gathered through registers (the next step's loads in
// flight while this one is multiplied), two shared buffers.
// Split-K as conv.cu's conv_wgrad: each split writes its partial sums, the
// launch code adds them in a fixed order (deterministic).
//
// Grid: (ceil(Cg·kh·kw / 64), ceil(Og / 64), G · splits); block 256;
// dynamic shared memory 2 · 2 · 64 · 32 bytes.
template <int FMT>
__device__ __forceinline__ void ct_wgrad(float* __restrict__ part, const float* __restrict__ x,
                                         const float* __restrict__ gy, const float* __restrict__ in_scale,
                                         CT_GEOM, int flip, int splits, long long chunk) {
  constexpr int EB = FMT == TC_TF32 ? 4 : 2;
  constexpr int CC = CT_ROW_BYTES / EB;  // values of l per k-step
  constexpr int UC = 4 / EB;             // values of l per 4-byte unit
  constexpr int TILE_BYTES = CT_TILE * CT_ROW_BYTES;
  SHARED_MEM(unsigned char, smem);  // 2 × (A tile, B tile)
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp & 1, wn = warp >> 1;
  const int Cg = C / G, Og = O / G;
  const int g = blockIdx.z / splits, split = blockIdx.z - g * splits;
  const int P = OH * OW, kk = kh * kw, kc_len = Cg * kk;
  const long long L = (long long)N * P;
  const long long l_begin = split * chunk, l_end = min(L, l_begin + chunk);
  const int m0 = blockIdx.y * CT_TILE, n0 = blockIdx.x * CT_TILE;
  const int steps = l_end > l_begin ? (int)((l_end - l_begin + CC - 1) / CC) : 0;

  // This thread's 4-byte unit of every row it fills, and its rows: A rows
  // (m) and B rows (kc) r0 and r0 + 32.
  const int unit = tid & 7, r0 = tid >> 3;
  long long a_off[2];
  int b_ci[2], b_i[2], b_j[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int m = m0 + r0 + 32 * h;
    a_off[h] = m < Og ? (long long)(g * Og + m) * P : -1;
    const int kc = n0 + r0 + 32 * h;
    if (kc < kc_len) {
      const int c = kc / kk, tap = kc - c * kk;
      b_ci[h] = g * Cg + c;
      b_i[h] = tap / kw;
      b_j[h] = tap - b_i[h] * kw;
    } else {
      b_ci[h] = -1;
      b_i[h] = b_j[h] = 0;
    }
  }
  unsigned areg[2], breg[2];
  auto gather = [&](int s) {
    float av[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}, bv[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
#pragma unroll
    for (int j = 0; j < UC; ++j) {
      const long long l = l_begin + (long long)s * CC + unit * UC + j;
      if (l >= l_end) continue;
      const int n = (int)(l / P), p = (int)(l - (long long)n * P);
      const int oy = p / OW, ox = p - oy * OW;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (a_off[h] >= 0) av[h][j] = gy[(long long)n * O * P + a_off[h] + p];
        if (b_ci[h] >= 0) {
          const int iy = oy * sy - py + b_i[h], ix = ox * sx - px + b_j[h];
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
            const long long nc = (long long)n * C + b_ci[h];
            float v = x[(nc * H + iy) * W + ix];
            if (in_scale != nullptr) v *= in_scale[nc];
            bv[h][j] = v;
          }
        }
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      areg[h] = tc_pack<FMT>(av[h][0], av[h][1]);
      breg[h] = tc_pack<FMT>(bv[h][0], bv[h][1]);
    }
  };
  auto store = [&](int s) {
    unsigned char* as = smem + (s & 1) * 2 * TILE_BYTES;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = r0 + 32 * h, off = tc_row32(row, unit >> 2) + 4 * (unit & 3);
      *reinterpret_cast<unsigned*>(as + off) = areg[h];
      *reinterpret_cast<unsigned*>(as + TILE_BYTES + off) = breg[h];
    }
  };

  float acc[2][2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;
  if (steps > 0) {
    gather(0);
    store(0);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    if (s + 1 < steps) gather(s + 1);
    const unsigned char* as = smem + (s & 1) * 2 * TILE_BYTES;
    ct_kstep<FMT>(as, as + TILE_BYTES, acc, lane, wm, wn);
    if (s + 1 < steps) store(s + 1);  // the other buffer: consumed before the last barrier
    __syncthreads();
  }

  const int gq = lane >> 2, t = lane & 3;
  float* ob = part + ((long long)split * O + g * Og) * kc_len;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = m0 + 32 * wm + 16 * i + gq + 8 * h;
      if (m >= Og) continue;
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          const int kc = n0 + 16 * wn + 8 * j + 2 * t + v;
          if (kc >= kc_len) continue;
          int dst = kc;
          if (flip) {
            const int c = kc / kk, tap = kc - c * kk, i2 = tap / kw, j2 = tap - i2 * kw;
            dst = c * kk + (kh - 1 - i2) * kw + (kw - 1 - j2);
          }
          ob[(long long)m * kc_len + dst] = acc[i][j][2 * h + v];
        }
    }
}

#define CT_WGRAD_PARAMS                                                                       \
  float *__restrict__ part, const float *__restrict__ x, const float *__restrict__ gy,         \
      const float *__restrict__ in_scale, CT_GEOM, int flip, int splits, long long chunk
#define CT_WGRAD_ARGS part, x, gy, in_scale, CT_GEOM_ARGS, flip, splits, chunk

extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_wgrad_tf32(CT_WGRAD_PARAMS) {
  ct_wgrad<TC_TF32>(CT_WGRAD_ARGS);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_wgrad_bf16(CT_WGRAD_PARAMS) {
  ct_wgrad<TC_BF16>(CT_WGRAD_ARGS);
}
extern "C" __global__ void __launch_bounds__(CT_THREADS, 2) conv_tc_wgrad_f16(CT_WGRAD_PARAMS) {
  ct_wgrad<TC_F16>(CT_WGRAD_ARGS);
}
