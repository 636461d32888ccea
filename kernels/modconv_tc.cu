// The fused modulated convolution's forward on the tensor cores (mma.sync,
// common.cuh), one NVRTC module of its own so that an FP32-only program never
// compiles it. Launch code: src/backend/cuda/modconv_tc.rs.
#include "modconv_common.cuh"

// ------------------------------------------- the fused forward on tensor cores
// The same implicit GEMM and epilogue as mc_fwd_impl (M = out channels,
// N = MC_TH × MC_TW pixels of one sample, K = C·kh·kw) with the products on
// mma.sync (common.cuh): FMT = TC_TF32 (m16n8k8) or TC_BF16 / TC_F16
// (m16n8k16), FP32 accumulators, demodulation and epilogue in FP32.
//
// K is ordered (channel chunk, tap, channel in chunk): one chunk is 32 bytes
// of operands per tap (16 channels of 16 bits, 8 of TF32), so each tap of a
// chunk is one k-step of the mma.
// Shared memory, per stage, rows of 32 bytes:
//   weights [kh·kw][MC_BM] rows (tap, out channel), filled by cp.async from
//   the weight pre-converted by modconv_tc_weight ([M][kh·kw][Cpad] operands);
//   input   [PH·PW] rows (pixel of the tile plus halo), modulated (and FIR
//   up-sampled) in registers as it is loaded, then converted and stored.
// (tc_row32 of common.cuh: halves swapped by row, free of bank conflicts).
// Two stages: while the warps multiply chunk k, the weights of chunk k+1 are
// in flight (cp.async) and the threads stage the input of chunk k+1.
// 8 warps: 2 along M (32 channels, two m16 tiles) × 4 along N (32 pixels,
// four n8 tiles); 32 FP32 accumulators per thread.
#define MC_TC_STAGES 2

// wt[m][tap][c] = the operand of w(m, c, ky, kx) (zero for c ≥ C), Cpad a
// multiple of the channels per chunk: bf16/f16 bits (2 bytes) or tf32 bits (4 bytes).
extern "C" __global__ void modconv_tc_weight(unsigned char* __restrict__ wt, const float* __restrict__ w,
                                             long long w_off, int ws_m, int ws_c, int ws_y, int ws_x, int M,
                                             int C, int kh, int kw, int Cpad, int fmt) {
  const long long total = (long long)M * kh * kw * Cpad;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const int c = (int)(e % Cpad);
    const long long mt = e / Cpad;
    const int tap = (int)(mt % (kh * kw)), m = (int)(mt / (kh * kw));
    const int ky = tap / kw, kx = tap - ky * kw;
    const float v =
        c < C ? w[w_off + (long long)m * ws_m + (long long)c * ws_c + ky * ws_y + kx * ws_x] : 0.0f;
    tc_store_operand(wt, e, v, fmt);
  }
}

// XT: the input's element type, float or unsigned short (F16 storage of an
// FP16 block, read directly: no widened copy of the activations).
template <int FMT, int KH, int KW, int UP = 0, int FH = 0, int FW = 0, typename XT = float>
__device__ __forceinline__ void mc_tc_fwd_impl(
    float* __restrict__ y, const XT* __restrict__ x, const float* __restrict__ in_scale,
    const unsigned char* __restrict__ wt, const float* __restrict__ fir, int fh, int fw, int up, int p0y,
    int p0x, float fir_gain, int C, int H, int W, int M, int ZH, int ZW, int cpy, int cpx, int OH, int OW,
    int Cpad, const McEpi& e) {
  constexpr int EB = FMT == TC_TF32 ? 4 : 2;  // operand bytes
  constexpr int CC = 32 / EB;                 // channels per chunk
  constexpr int KK = KH * KW, PH = MC_TH + KH - 1, PW = MC_TW + KW - 1;
  constexpr int WS_BYTES = KK * MC_BM * 32, PS_BYTES = PH * PW * 32;
  SHARED_MEM(unsigned char, smem);  // MC_TC_STAGES × (weights, input)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp & 1, wn = warp >> 1;
  const int tiles_x = (OW + MC_TW - 1) / MC_TW;
  const int ty0 = (blockIdx.x / tiles_x) * MC_TH, tx0 = (blockIdx.x % tiles_x) * MC_TW;
  const int m0 = blockIdx.y * MC_BM;
  const int n = blockIdx.z;
  const long long plane = (long long)H * W;
  const int chunks = Cpad / CC;

  // Weights of chunk `k` into stage `s`: 2 × 16 bytes per (tap, channel) row.
  auto load_weights = [&](int k, int s) {
    unsigned char* ws = smem + s * (WS_BYTES + PS_BYTES);
    for (int idx = tid; idx < KK * MC_BM * 2; idx += MC_THREADS) {
      const int row = idx >> 1, half = idx & 1;
      const int tap = row / MC_BM, ml = row - tap * MC_BM, m = m0 + ml;
      const unsigned char* src = wt + (((long long)min(m, M - 1) * KK + tap) * Cpad + k * CC) * EB + 16 * half;
      tc_cp_async16(ws + tc_row32(row, half), src, m < M ? 16 : 0);
    }
  };
  // Modulated input of chunk `k` into stage `s`: 4 bytes (2 channels of 16
  // bits, or 1 of TF32) per item, pixels fastest so global loads coalesce.
  auto stage_input = [&](int k, int s) {
    unsigned char* ps = smem + s * (WS_BYTES + PS_BYTES) + WS_BYTES;
    constexpr int UNITS = 8, PIX = PH * PW;
    for (int idx = tid; idx < UNITS * PIX; idx += MC_THREADS) {
      const int u = idx / PIX, q = idx - u * PIX;
      const int r = q / PW, qx = q - r * PW;
      const int zy = ty0 - cpy + r, zx = tx0 - cpx + qx;
      const bool inside = zy >= 0 && zy < ZH && zx >= 0 && zx < ZW;
      float v[2] = {0.0f, 0.0f};
#pragma unroll
      for (int j = 0; j < 4 / EB; ++j) {
        const int c = k * CC + u * (4 / EB) + j;
        if (c < C && inside) {
          const float sc = in_scale != nullptr ? in_scale[(long long)n * C + c] : 1.0f;
          v[j] = mc_stage<UP, FH, FW>(x + ((long long)n * C + c) * plane, H, W, zy, zx, sc, fir, fh, fw, up,
                                      p0y, p0x, fir_gain);
        }
      }
      const unsigned bits = tc_pack<FMT>(v[0], v[1]);
      *reinterpret_cast<unsigned*>(ps + tc_row32(q, u >> 2) + 4 * (u & 3)) = bits;
    }
  };

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

  // This lane's ldmatrix rows. A (x4): matrix lane/8 = rows +8·((lane/8)&1),
  // 16-byte half lane/16. B (x4 over two n8 tiles): matrix q = lane/8 is
  // tile 2·jj + q/2, half q&1; its row is pixel (lane&7) of that tile.
  const int a_row = wm * 32 + (lane & 7) + 8 * ((lane >> 3) & 1), a_half = lane >> 4;
  int b_pix[2];
#pragma unroll
  for (int jj = 0; jj < 2; ++jj) {
    const int p = wn * 32 + (2 * jj + ((lane >> 3) >> 1)) * 8 + (lane & 7);
    b_pix[jj] = (p / MC_TW) * PW + (p % MC_TW);
  }
  const int b_half = (lane >> 3) & 1;

  load_weights(0, 0);
  tc_cp_async_commit();
  stage_input(0, 0);
  for (int k = 0; k < chunks; ++k) {
    const int s = k & 1;
    if (k + 1 < chunks) load_weights(k + 1, s ^ 1);
    tc_cp_async_commit();  // possibly empty: keeps one group per chunk
    if (k + 1 < chunks) stage_input(k + 1, s ^ 1);
    tc_cp_async_wait<1>();  // this thread's copies of chunk k have landed
    __syncthreads();        // everyone's have, and the input of chunk k is staged
    const unsigned char* ws = smem + s * (WS_BYTES + PS_BYTES);
    const unsigned char* ps = ws + WS_BYTES;
#pragma unroll
    for (int tap = 0; tap < KK; ++tap) {
      const int ky = tap / KW, kx = tap - ky * KW;
      unsigned a[2][4];
#pragma unroll
      for (int i = 0; i < 2; ++i) tc_ldmatrix<4>(a[i], ws + tc_row32(tap * MC_BM + a_row + 16 * i, a_half));
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
        unsigned b4[4];
        tc_ldmatrix<4>(b4, ps + tc_row32(b_pix[jj] + ky * PW + kx, b_half));
        const unsigned b0[2] = {b4[0], b4[1]}, b1[2] = {b4[2], b4[3]};
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          tc_mma<FMT>(acc[i][2 * jj], a[i], b0, acc[i][2 * jj]);
          tc_mma<FMT>(acc[i][2 * jj + 1], a[i], b1, acc[i][2 * jj + 1]);
        }
      }
    }
    __syncthreads();  // stage s is consumed before iteration k+1 refills it
  }

  // Epilogue on the accumulators (c0..c3: rows g, g, g+8, g+8; columns 2t, 2t+1).
  const int g = lane >> 2, t = lane & 3;
  const float strength = e.noise != nullptr ? e.strength[0] : 0.0f;
  float dot[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = m0 + wm * 32 + 16 * i + g + 8 * h;
      if (m >= M) continue;
      const long long row = (long long)n * M + m;
      const float sc = e.out_scale != nullptr ? e.out_scale[row] : 1.0f;
      const float b = e.bias != nullptr ? e.bias[m] : 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          const int p = wn * 32 + 8 * j + 2 * t + v;
          const int oy = ty0 + p / MC_TW, ox = tx0 + p % MC_TW;
          if (oy >= OH || ox >= OW) continue;
          const long long o = row * OH * OW + (long long)oy * OW + ox;
          const float u = acc[i][j][2 * h + v];
          if (e.pre != nullptr) e.pre[o] = u;
          if (e.dot_out != nullptr) dot[i][h] += u * e.dot_aux[o];
          float val = u * sc;
          if (e.noise != nullptr) val += e.noise[(long long)n * e.noise_nstride + (long long)oy * OW + ox] * strength;
          val += b;
          y[o] = mc_act(val, e.act, e.alpha, e.gain, e.clamp);
        }
    }
  if (e.dot_out != nullptr) {  // uniform over the block: every lane reaches the shuffles
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float sum = dot[i][h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);  // the 4 lanes of a group share the row
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int m = m0 + wm * 32 + 16 * i + g + 8 * h;
        if (t == 0 && m < M) atomicAdd(&e.dot_out[(long long)n * M + m], sum);
      }
  }
}

#define MC_TC_PARAMS_X(XT)                                                                           \
  float *__restrict__ y, const XT *__restrict__ x, const float *__restrict__ in_scale,               \
      const unsigned char *__restrict__ wt, const float *__restrict__ fir, int fh, int fw, int up,    \
      int p0y, int p0x, float fir_gain, int C, int H, int W, int M, int kh, int kw, int ZH, int ZW,   \
      int cpy, int cpx, int OH, int OW, int Cpad, McEpi e
#define MC_TC_PARAMS MC_TC_PARAMS_X(float)
#define MC_TC_ARGS \
  y, x, in_scale, wt, fir, fh, fw, up, p0y, p0x, fir_gain, C, H, W, M, ZH, ZW, cpy, cpx, OH, OW, Cpad, e

// Grid (spatial tiles, ceil(M / MC_BM), N), MC_THREADS threads, dynamic
// shared memory MC_TC_STAGES · 32 · (kh·kw·MC_BM + (MC_TH+kh−1)·(MC_TW+kw−1))
// bytes; Cpad a multiple of 32 / operand bytes. kh and kw are fixed by the
// kernel's name (checked at launch): the arguments keep the parameter list
// of the FP32 kernels, so both are launched by the same code.
// One kernel per (format, shape); written out because build.rs reads the names.
// The minimum of 2 blocks per SM matters: with the thread count alone ptxas
// capped some variants at 64 registers and spilled (sm_90, NVRTC 13.5).
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_3x3_tf32(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_TF32, 3, 3>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_3x3_up2_f4_tf32(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_TF32, 3, 3, 2, 4, 4>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_1x1_tf32(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_TF32, 1, 1>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_3x3_bf16(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_BF16, 3, 3>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_3x3_up2_f4_bf16(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_BF16, 3, 3, 2, 4, 4>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_1x1_bf16(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_BF16, 1, 1>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_3x3_f16(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_F16, 3, 3>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_3x3_up2_f4_f16(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_F16, 3, 3, 2, 4, 4>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_tc_fwd_1x1_f16(MC_TC_PARAMS) {
  mc_tc_fwd_impl<TC_F16, 1, 1>(MC_TC_ARGS);
}
// FP16 operands read from F16 storage (`_xh`: the FP16 blocks of mixed
// precision): the same products as the `_f16` kernels on the widened input,
// since F16 → FP32 → F16 is exact.
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2)
    modconv_tc_fwd_3x3_f16_xh(MC_TC_PARAMS_X(unsigned short)) {
  mc_tc_fwd_impl<TC_F16, 3, 3, 0, 0, 0, unsigned short>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2)
    modconv_tc_fwd_3x3_up2_f4_f16_xh(MC_TC_PARAMS_X(unsigned short)) {
  mc_tc_fwd_impl<TC_F16, 3, 3, 2, 4, 4, unsigned short>(MC_TC_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2)
    modconv_tc_fwd_1x1_f16_xh(MC_TC_PARAMS_X(unsigned short)) {
  mc_tc_fwd_impl<TC_F16, 1, 1, 0, 0, 0, unsigned short>(MC_TC_ARGS);
}
