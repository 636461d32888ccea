// Modulated convolution family: demodulation coefficients, per-sample
// weights (grouped path), the fused forward (one implicit-GEMM kernel with
// modulation on load and the layer's whole epilogue), and the kernels of its
// first-order backward.
//
// Launch code: src/backend/cuda/modconv.rs; the CPU twin is the composed op
// (src/ops/modconv.rs: modulated_conv2d → noise_inject → bias_act).
//
// Conventions shared by the kernels below:
// - the input x is [N, C, H, W]; the staged signal Z is x ⊙ s (up 1) or
//   upfirdn2d(x ⊙ s, f, up, pad0, gain) (up 2), of size [ZH, ZW];
// - the convolution is a correlation over Z zero-padded by (cpy, cpx):
//   y[oy, ox] = Σ w(m, c, ky, kx) · Z[oy + ky − cpy, ox + kx − cpx];
// - w(m, c, ky, kx) = w[w_off + m·ws_m + c·ws_c + ky·ws_y + kx·ws_x]: flips
//   (negative strides) and the channel transpose of the input gradient are
//   views of the one raw weight, never copies.
// Every size is an argument and every load/store is bounds-checked.
//
// The tensor-core variants of the forward live in kernels/modconv_tc.cu
// (their own NVRTC module, compiled only when a non-FP32 precision is used).
#include "modconv_common.cuh"

// ------------------------------------------------------------ small kernels

// wsq[o, i] = Σ_k w[o, i, k]² (w is [O·I, K]).
extern "C" __global__ void modconv_wsq(float* __restrict__ wsq, const float* __restrict__ w, int OI,
                                       int K) {
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < OI; r += gridDim.x * blockDim.x) {
    const float* wr = w + (long long)r * K;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += wr[k] * wr[k];
    wsq[r] = acc;
  }
}

// d[n, o] = rsqrt(Σ_i s[n, i]² · wsq[o, i] + 1e-8).
extern "C" __global__ void modconv_demod(float* __restrict__ d, const float* __restrict__ s,
                                         const float* __restrict__ wsq, int N, int O, int I) {
  const int total = N * O;
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < total; r += gridDim.x * blockDim.x) {
    const int n = r / O, o = r - n * O;
    const float* sr = s + (long long)n * I;
    const float* wr = wsq + (long long)o * I;
    float acc = 0.0f;
    for (int i = 0; i < I; ++i) acc += sr[i] * sr[i] * wr[i];
    d[r] = 1.0f / sqrtf(acc + 1e-8f);
  }
}

// Per-sample weights of the grouped path: wn[n, o, i, k] = w[o, i, k] ·
// s[n, i] · d[n, o] (d == nullptr: no demodulation).
extern "C" __global__ void modconv_modulate_weight(float* __restrict__ wn, const float* __restrict__ w,
                                                   const float* __restrict__ s,
                                                   const float* __restrict__ d, int N, int O, int I,
                                                   int K) {
  const long long total = (long long)N * O * I * K;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long oik = (long long)O * I * K;
    const int n = (int)(e / oik);
    const long long r = e - n * oik;
    const int o = (int)(r / ((long long)I * K));
    const int i = (int)((r / K) % I);
    float v = w[r] * s[(long long)n * I + i];
    if (d != nullptr) v *= d[(long long)n * O + o];
    wn[e] = v;
  }
}

// p[0..n) = v (zeroes accumulation targets of atomicAdd).
extern "C" __global__ void modconv_fill(float* __restrict__ p, long long n, float v) {
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (long long)gridDim.x * blockDim.x)
    p[e] = v;
}

// ------------------------------------------------------- the fused forward
// One block computes a tile of MC_BM output channels × (MC_TH × MC_TW)
// output pixels of one sample (blockIdx.z). Per chunk of `cc` input channels
// it stages the raw weight tile and the modulated (and, for up 2, FIR
// up-sampled) input tile plus halo in shared memory, then each thread
// accumulates an MC_RM × MC_RN register tile over (c, ky, kx): an implicit
// GEMM with M = out channels, N = pixels, K = C·kh·kw.
#define MC_RM 8
#define MC_RN 4
// MC_THREADS = (MC_BM / MC_RM) warps × 32 lanes; MC_RN · 32 = MC_TH · MC_TW.

template <int KH, int KW, int UP = 0, int FH = 0, int FW = 0>
__device__ __forceinline__ void mc_fwd_impl(
    float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ in_scale,
    const float* __restrict__ w, long long w_off, int ws_m, int ws_c, int ws_y, int ws_x,
    const float* __restrict__ fir, int fh, int fw, int up, int p0y, int p0x, float fir_gain, int C,
    int H, int W, int M, int kh_rt, int kw_rt, int ZH, int ZW, int cpy, int cpx, int OH, int OW,
    int cc, const McEpi& e) {
  const int kh = KH > 0 ? KH : kh_rt, kw = KW > 0 ? KW : kw_rt;
  const int PH = MC_TH + kh - 1, PW = MC_TW + kw - 1;
  const int kk = kh * kw;
  SHARED_MEM(float, smem);
  float* ws = smem;                  // [cc · kk][MC_BM]
  float* ps = smem + cc * kk * MC_BM;  // [cc][PH][PW]

  const int tid = threadIdx.x, lane = tid & 31, wy = tid >> 5;
  const int tiles_x = (OW + MC_TW - 1) / MC_TW;
  const int ty0 = (blockIdx.x / tiles_x) * MC_TH, tx0 = (blockIdx.x % tiles_x) * MC_TW;
  const int m0 = blockIdx.y * MC_BM;
  const int n = blockIdx.z;

  // Pixel j of this thread: tile position lane + 32·j (rows of MC_TW).
  int poff[MC_RN];
#pragma unroll
  for (int j = 0; j < MC_RN; ++j) {
    const int p = lane + 32 * j;
    poff[j] = (p / MC_TW) * PW + (p % MC_TW);
  }
  float acc[MC_RM][MC_RN];
#pragma unroll
  for (int r = 0; r < MC_RM; ++r)
#pragma unroll
    for (int j = 0; j < MC_RN; ++j) acc[r][j] = 0.0f;

  const long long plane = (long long)H * W;
  for (int c0 = 0; c0 < C; c0 += cc) {
    __syncthreads();  // the previous chunk is consumed
    // Raw weight tile, channel-fastest so that shared writes do not conflict.
    const int wn = cc * kk * MC_BM;
    for (int idx = tid; idx < wn; idx += MC_THREADS) {
      const int ml = idx % MC_BM, t = idx / MC_BM;
      const int ci = t / kk, k = t - ci * kk;
      const int ky = k / kw, kx = k - ky * kw;
      const int m = m0 + ml, c = c0 + ci;
      float v = 0.0f;
      if (m < M && c < C)
        v = w[w_off + (long long)m * ws_m + (long long)c * ws_c + ky * ws_y + kx * ws_x];
      ws[idx] = v;
    }
    // Modulated input tile plus halo (zero outside Z and past the last channel).
    const int pn = cc * PH * PW;
    for (int idx = tid; idx < pn; idx += MC_THREADS) {
      const int ci = idx / (PH * PW), t = idx - ci * (PH * PW);
      const int r = t / PW, q = t - r * PW;
      const int c = c0 + ci, zy = ty0 - cpy + r, zx = tx0 - cpx + q;
      float v = 0.0f;
      if (c < C && zy >= 0 && zy < ZH && zx >= 0 && zx < ZW) {
        const float sc = in_scale != nullptr ? in_scale[(long long)n * C + c] : 1.0f;
        v = mc_stage<UP, FH, FW>(x + ((long long)n * C + c) * plane, H, W, zy, zx, sc, fir, fh, fw, up, p0y,
                     p0x, fir_gain);
      }
      ps[idx] = v;
    }
    __syncthreads();
    const int cn = min(cc, C - c0);
    for (int ci = 0; ci < cn; ++ci) {
#pragma unroll
      for (int ky = 0; ky < kh; ++ky) {
#pragma unroll
        for (int kx = 0; kx < kw; ++kx) {
          // All lanes of a warp read the same weights (a broadcast).
          const float* wp = ws + ((ci * kh + ky) * kw + kx) * MC_BM + wy * MC_RM;
          float wr[MC_RM];
#pragma unroll
          for (int q = 0; q < MC_RM; q += 4) {
            const float4 wv = *reinterpret_cast<const float4*>(wp + q);
            wr[q] = wv.x;
            wr[q + 1] = wv.y;
            wr[q + 2] = wv.z;
            wr[q + 3] = wv.w;
          }
          const float* pp = ps + (ci * PH + ky) * PW + kx;
#pragma unroll
          for (int j = 0; j < MC_RN; ++j) {
            const float pv = pp[poff[j]];
#pragma unroll
            for (int r = 0; r < MC_RM; ++r) acc[r][j] = fmaf(wr[r], pv, acc[r][j]);
          }
        }
      }
    }
  }

  // Epilogue: demodulation, noise, bias, activation, gain, clamp.
  const float strength = e.noise != nullptr ? e.strength[0] : 0.0f;
  float dot[MC_RM];
#pragma unroll
  for (int r = 0; r < MC_RM; ++r) {
    dot[r] = 0.0f;
    const int m = m0 + wy * MC_RM + r;
    if (m >= M) continue;
    const long long row = (long long)n * M + m;
    const float sc = e.out_scale != nullptr ? e.out_scale[row] : 1.0f;
    const float b = e.bias != nullptr ? e.bias[m] : 0.0f;
#pragma unroll
    for (int j = 0; j < MC_RN; ++j) {
      const int p = lane + 32 * j;
      const int oy = ty0 + p / MC_TW, ox = tx0 + p % MC_TW;
      if (oy >= OH || ox >= OW) continue;
      const long long o = row * OH * OW + (long long)oy * OW + ox;
      const float u = acc[r][j];
      if (e.pre != nullptr) e.pre[o] = u;
      if (e.dot_out != nullptr) dot[r] += u * e.dot_aux[o];
      float v = u * sc;
      if (e.noise != nullptr)
        v += e.noise[(long long)n * e.noise_nstride + (long long)oy * OW + ox] * strength;
      v += b;
      y[o] = mc_act(v, e.act, e.alpha, e.gain, e.clamp);
    }
  }
  if (e.dot_out != nullptr) {  // uniform over the block: every lane reaches the shuffles
#pragma unroll
    for (int r = 0; r < MC_RM; ++r) {
      const float s = warp_reduce_sum(dot[r]);
      const int m = m0 + wy * MC_RM + r;
      if (lane == 0 && m < M) atomicAdd(&e.dot_out[(long long)n * M + m], s);
    }
  }
}

#define MC_FWD_PARAMS                                                                             \
  float *__restrict__ y, const float *__restrict__ x, const float *__restrict__ in_scale,         \
      const float *__restrict__ w, long long w_off, int ws_m, int ws_c, int ws_y, int ws_x,       \
      const float *__restrict__ fir, int fh, int fw, int up, int p0y, int p0x, float fir_gain,    \
      int C, int H, int W, int M, int kh, int kw, int ZH, int ZW, int cpy, int cpx, int OH,       \
      int OW, int cc, McEpi e
#define MC_FWD_ARGS                                                                                \
  y, x, in_scale, w, w_off, ws_m, ws_c, ws_y, ws_x, fir, fh, fw, up, p0y, p0x, fir_gain, C, H, W, \
      M, kh, kw, ZH, ZW, cpy, cpx, OH, OW, cc, e

// Grid (spatial tiles, ceil(M / MC_BM), N), MC_THREADS threads, dynamic
// shared memory (cc·kh·kw·MC_BM + cc·(MC_TH+kh−1)·(MC_TW+kw−1)) floats.
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_fwd_3x3(MC_FWD_PARAMS) {
  mc_fwd_impl<3, 3>(MC_FWD_ARGS);
}
// The up-2 layers with the 4×4 filter (shape checked at launch).
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_fwd_3x3_up2_f4(MC_FWD_PARAMS) {
  mc_fwd_impl<3, 3, 2, 4, 4>(MC_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_fwd_1x1(MC_FWD_PARAMS) {
  mc_fwd_impl<1, 1>(MC_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(MC_THREADS, 2) modconv_fwd_any(MC_FWD_PARAMS) {
  mc_fwd_impl<0, 0>(MC_FWD_ARGS);
}

// --------------------------------------------------------------- backward

// Backward of the epilogue for one row (n, m) per block (grid-stride):
// g = bias_act_grad(gy, y) (the gradient of the demodulated, pre-noise
// value), gu = g · d[n, m] (the gradient of the raw accumulator), and the
// row sums Σ_p g (bias), Σ_p g · u (demodulation: dd[n, m]) and
// Σ_p g · noise (noise strength). Null outputs are skipped.
extern "C" __global__ void modconv_epilogue_grad(
    float* __restrict__ gu, float* __restrict__ g_out, float* __restrict__ row_g,
    float* __restrict__ row_gu, float* __restrict__ row_gn, const float* __restrict__ gy,
    const float* __restrict__ y, const float* __restrict__ pre, const float* __restrict__ d,
    const float* __restrict__ noise, long long noise_nstride, int N, int M, int P, int act,
    float alpha, float gain, float clamp) {
  const int rows = N * M;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const int n = row / M;
    const float dn = d != nullptr ? d[row] : 1.0f;
    const long long base = (long long)row * P;
    float sg = 0.0f, sgu = 0.0f, sgn = 0.0f;
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
      const float g = mc_act_grad(gy[base + p], y[base + p], act, alpha, gain, clamp);
      gu[base + p] = g * dn;
      if (g_out != nullptr) g_out[base + p] = g;
      sg += g;
      if (pre != nullptr) sgu += g * pre[base + p];
      if (noise != nullptr) sgn += g * noise[(long long)n * noise_nstride + p];
    }
    // Every thread calls each reduction (they hold barriers).
    sg = block_reduce_sum(sg);
    sgu = block_reduce_sum(sgu);
    sgn = block_reduce_sum(sgn);
    if (threadIdx.x == 0) {
      if (row_g != nullptr) row_g[row] = sg;
      if (row_gu != nullptr) row_gu[row] = sgu;
      if (row_gn != nullptr) row_gn[row] = sgn;
    }
  }
}

// Demodulation terms of the weight and style gradients, with
// e[n, o] = dd[n, o] · d[n, o]³ (∂d/∂(Σ s²·wsq) = −d³/2):
// cw[o, i] = Σ_n e[n, o] · s[n, i]²   (dw −= w[o, i, k] · cw[o, i]),
// ds[n, i] = −s[n, i] · Σ_o e[n, o] · wsq[o, i].
extern "C" __global__ void modconv_demod_grad(float* __restrict__ cw, float* __restrict__ ds,
                                              const float* __restrict__ dd,
                                              const float* __restrict__ d,
                                              const float* __restrict__ s,
                                              const float* __restrict__ wsq, int N, int O, int I) {
  const int total = O * I + N * I;
  for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < total; r += gridDim.x * blockDim.x) {
    if (r < O * I) {
      const int o = r / I, i = r - o * I;
      float acc = 0.0f;
      for (int n = 0; n < N; ++n) {
        const float dv = d[n * O + o], sv = s[n * I + i];
        acc += dd[n * O + o] * dv * dv * dv * sv * sv;
      }
      cw[r] = acc;
    } else {
      const int q = r - O * I, n = q / I, i = q - n * I;
      float acc = 0.0f;
      for (int o = 0; o < O; ++o) {
        const float dv = d[n * O + o];
        acc += dd[n * O + o] * dv * dv * dv * wsq[o * I + i];
      }
      ds[q] = -s[q] * acc;
    }
  }
}

// Z = upfirdn2d(x ⊙ s) materialized for the weight gradient of up-sampling
// layers: z [N, C, ZH, ZW]. Grid-stride over the elements.
extern "C" __global__ void modconv_upfir(float* __restrict__ z, const float* __restrict__ x,
                                         const float* __restrict__ s, const float* __restrict__ fir,
                                         int fh, int fw, int up, int p0y, int p0x, float fir_gain,
                                         int N, int C, int H, int W, int ZH, int ZW) {
  const long long total = (long long)N * C * ZH * ZW;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long nc = e / ((long long)ZH * ZW);
    const int t = (int)(e - nc * ZH * ZW);
    const int zy = t / ZW, zx = t - zy * ZW;
    z[e] = mc_stage(x + nc * H * W, H, W, zy, zx, s[nc], fir, fh, fw, up, p0y, p0x, fir_gain);
  }
}

// The adjoint of the FIR up-sampling step, for one (n, c) plane per block
// (grid-stride): gxs = upfirdn2d^T(gz) [H, W]; dx = gxs · s[n, c] and
// ds[n, c] = Σ gxs · x (the style gradient through the modulation).
extern "C" __global__ void modconv_fir_down(float* __restrict__ dx, float* __restrict__ ds,
                                            const float* __restrict__ gz,
                                            const float* __restrict__ x,
                                            const float* __restrict__ s,
                                            const float* __restrict__ fir, int fh, int fw, int up,
                                            int p0y, int p0x, float fir_gain, int N, int C, int H,
                                            int W, int ZH, int ZW) {
  const int planes = N * C;
  for (int pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    const float* g = gz + (long long)pl * ZH * ZW;
    const float sc = s[pl];
    float dot = 0.0f;
    for (int t = threadIdx.x; t < H * W; t += blockDim.x) {
      const int iy = t / W, ix = t - iy * W;
      // Forward: z[zy] gets f[fh−1−j]·xs[i] where zy + j − p0 = i·up.
      float acc = 0.0f;
      for (int jy = 0; jy < fh; ++jy) {
        const int zy = iy * up + p0y - jy;
        if (zy < 0 || zy >= ZH) continue;
        for (int jx = 0; jx < fw; ++jx) {
          const int zx = ix * up + p0x - jx;
          if (zx < 0 || zx >= ZW) continue;
          acc += fir[(fh - 1 - jy) * fw + (fw - 1 - jx)] * g[(long long)zy * ZW + zx];
        }
      }
      acc *= fir_gain;
      const long long o = (long long)pl * H * W + t;
      dx[o] = acc * sc;
      dot += acc * x[o];
    }
    dot = block_reduce_sum(dot);
    if (threadIdx.x == 0 && ds != nullptr) ds[pl] = dot;
  }
}

// Weight gradient as a GEMM: M = out channels, columns = C·kh·kw, K = N·OH·OW
// (split over blockIdx.z in ranges of k_per_split):
// part[z, m, col] = Σ_k gu[n, m, p] · s[n, c] · Z[n, c, oy + ky − cpy, ox + kx − cpx].
// The column of (c, ky, kx) is stored at the raw weight's index, flipped when
// `flip` (the forward's weight view was flipped). 64 × 64 block tile,
// 4 × 4 per thread, K in steps of MC_WK.
#define MC_WM 64
#define MC_WN 64
#define MC_WK 16
#define MC_WPAD 68  // row stride of the shared tiles: 16-byte aligned, fewer bank conflicts
extern "C" __global__ void __launch_bounds__(256)
    modconv_wgrad(float* __restrict__ part, const float* __restrict__ gu,
                  const float* __restrict__ z, const float* __restrict__ in_scale, int N, int M,
                  int C, int ZH, int ZW, int kh, int kw, int cpy, int cpx, int OH, int OW, int flip,
                  long long k_per_split) {
  __shared__ __align__(16) float as[MC_WK * MC_WPAD];
  __shared__ __align__(16) float bs[MC_WK * MC_WPAD];
  const int tid = threadIdx.x, tm = tid >> 4, tn = tid & 15;
  const int m0 = blockIdx.y * MC_WM, col0 = blockIdx.x * MC_WN;
  const int kk = kh * kw, cols = C * kk, P = OH * OW;
  const long long K = (long long)N * P;
  const long long kbeg = (long long)blockIdx.z * k_per_split;
  const long long kend = min(K, kbeg + k_per_split);
  float acc[4][4];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[r][j] = 0.0f;

  // Every load of this thread is at K lane kl = tid % MC_WK (256 is a
  // multiple of MC_WK), so its columns are fixed and its (n, oy, ox) only
  // advances by MC_WK per step: no divisions inside the loop.
  const int kl = tid % MC_WK, rl = tid / MC_WK;  // rl: row / column within a 16-wide group
  constexpr int LOADS = (MC_WK * MC_WN) / 256;
  int cc_[LOADS], cy_[LOADS], cx_[LOADS];
#pragma unroll
  for (int e = 0; e < LOADS; ++e) {
    const int col = col0 + rl + 16 * e;
    const int c = col / kk, t = col - c * kk;
    cc_[e] = col < cols ? c : -1;
    cy_[e] = t / kw - cpy;
    cx_[e] = t % kw - cpx;
  }
  long long k = kbeg + kl;
  int n = (int)(k / P), oy = (int)(k - (long long)n * P) / OW;
  int ox = (int)(k - (long long)n * P) - oy * OW;
  for (long long k0 = kbeg; k0 < kend; k0 += MC_WK) {
    __syncthreads();
    const bool kv = k < kend;
    const int p = oy * OW + ox;
#pragma unroll
    for (int e = 0; e < (MC_WK * MC_WM) / 256; ++e) {
      const int ml = rl + 16 * e, m = m0 + ml;
      as[kl * MC_WPAD + ml] = kv && m < M ? gu[((long long)n * M + m) * P + p] : 0.0f;
    }
#pragma unroll
    for (int e = 0; e < LOADS; ++e) {
      float v = 0.0f;
      const int zy = oy + cy_[e], zx = ox + cx_[e];
      if (kv && cc_[e] >= 0 && zy >= 0 && zy < ZH && zx >= 0 && zx < ZW) {
        const long long nc = (long long)n * C + cc_[e];
        v = z[(nc * ZH + zy) * ZW + zx];
        if (in_scale != nullptr) v *= in_scale[nc];
      }
      bs[kl * MC_WPAD + rl + 16 * e] = v;
    }
    k += MC_WK;
    ox += MC_WK;
    if (ox >= OW) {
      oy += ox / OW;
      ox %= OW;
      if (oy >= OH) {
        n += oy / OH;
        oy %= OH;
      }
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < MC_WK; ++q) {
      const float4 a = *reinterpret_cast<const float4*>(as + q * MC_WPAD + tm * 4);
      const float4 b = *reinterpret_cast<const float4*>(bs + q * MC_WPAD + tn * 4);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[r][j] = fmaf(av[r], bv[j], acc[r][j]);
    }
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int m = m0 + tm * 4 + r;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = col0 + tn * 4 + j;
      if (col >= cols) continue;
      int dst = col;
      if (flip) {
        const int c = col / kk, t = col - c * kk, ky = t / kw, kx = t - ky * kw;
        dst = c * kk + (kh - 1 - ky) * kw + (kw - 1 - kx);
      }
      part[((long long)blockIdx.z * M + m) * cols + dst] = acc[r][j];
    }
  }
}
