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
#include "common.cuh"

#define MC_ACT_LINEAR 0
#define MC_ACT_LRELU 1

// Epilogue of one output element, in SynthesisLayer's order: the value is
// already demodulated and noised; bias, activation, gain, clamp (clamp < 0:
// none; values outside (−c, c), NaN included, go to a bound as bias_act does).
__device__ __forceinline__ float mc_act(float v, int act, float alpha, float gain, float clamp) {
  if (act == MC_ACT_LRELU) v = v > 0.0f ? v : v * alpha;
  v *= gain;
  if (clamp >= 0.0f && !(v > -clamp && v < clamp)) v = v >= 0.0f ? clamp : -clamp;
  return v;
}

// bias_act_grad: dy · act'(y) · gain, zero where y sat at the clamp; the
// lrelu slope comes from the sign of y / gain.
__device__ __forceinline__ float mc_act_grad(float dy, float y, int act, float alpha, float gain,
                                             float clamp) {
  if (clamp >= 0.0f && !(y > -clamp && y < clamp)) return 0.0f;
  float d = dy;
  if (act == MC_ACT_LRELU) {
    const float yy = gain != 0.0f ? y / gain : 0.0f;
    d = yy > 0.0f ? dy : dy * alpha;
  }
  return d * gain;
}

// One pixel of Z for channel plane `xp` (H × W, already offset to (n, c)),
// times `scale`: x itself (fir == nullptr) or upfirdn2d with zero insertion
// `up`, leading pad (p0y, p0x) and the 2-D filter f [fh, fw] as a convolution
// (flip_filter = false), times fir_gain. (zy, zx) must be inside Z.
// UP, FH, FW > 0 fix up and the filter size at compile time (the 3×3 up-2
// layer's [1,3,3,1] filter); 0 takes the run-time values.
template <int UP = 0, int FH = 0, int FW = 0>
__device__ __forceinline__ float mc_stage(const float* __restrict__ xp, int H, int W, int zy, int zx,
                                          float scale, const float* __restrict__ fir, int fh_rt,
                                          int fw_rt, int up_rt, int p0y, int p0x, float fir_gain) {
  if (fir == nullptr) return xp[(long long)zy * W + zx] * scale;
  const int up = UP > 0 ? UP : up_rt, fh = FH > 0 ? FH : fh_rt, fw = FW > 0 ? FW : fw_rt;
  // Filter position j reads the upsampled signal at z + j − p0: input pixel
  // (z + j − p0) / up when that divides exactly; the tap is f[fh − 1 − j].
  const int qy0 = zy - p0y, qx0 = zx - p0x;
  int jy0 = (-qy0) % up;
  if (jy0 < 0) jy0 += up;
  int jx0 = (-qx0) % up;
  if (jx0 < 0) jx0 += up;
  float acc = 0.0f;
  for (int jy = jy0; jy < fh; jy += up) {
    const int qy = qy0 + jy;
    if (qy < 0) continue;
    const int iy = qy / up;
    if (iy >= H) break;
    const float* frow = fir + (fh - 1 - jy) * fw;
    const float* xrow = xp + (long long)iy * W;
    for (int jx = jx0; jx < fw; jx += up) {
      const int qx = qx0 + jx;
      if (qx < 0) continue;
      const int ix = qx / up;
      if (ix >= W) break;
      acc += xrow[ix] * frow[fw - 1 - jx];
    }
  }
  return acc * fir_gain * scale;
}

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
#define MC_TH 8
#define MC_TW 16
#define MC_BM 64
#define MC_RM 8
#define MC_RN 4
#define MC_THREADS 256  // (MC_BM / MC_RM) warps × 32 lanes; MC_RN · 32 = MC_TH · MC_TW

struct McEpi {
  const float* out_scale;  // [N, M] or null (demodulation, or styles for the input gradient)
  const float* noise;      // [N or 1, 1, OH, OW] or null
  long long noise_nstride; // 0 when the noise is shared by the batch
  const float* strength;   // [1], read when noise is set
  const float* bias;       // [M] or null
  int act;
  float alpha, gain, clamp;
  float* pre;              // [N, M, OH, OW] or null: the raw accumulator
  float* dot_out;          // [N, M] or null: += Σ_p acc · dot_aux (atomic)
  const float* dot_aux;    // [N, M, OH, OW]
};

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
// The two 16-byte halves of row r are swapped when bit 2 of r is set, so the
// 8 rows an ldmatrix reads (consecutive r) hit 32 distinct banks.
// Two stages: while the warps multiply chunk k, the weights of chunk k+1 are
// in flight (cp.async) and the threads stage the input of chunk k+1.
// 8 warps: 2 along M (32 channels, two m16 tiles) × 4 along N (32 pixels,
// four n8 tiles); 32 FP32 accumulators per thread.
#define MC_TC_STAGES 2

__device__ __forceinline__ int mc_tc_row(int r, int half) { return r * 32 + ((half ^ ((r >> 2) & 1)) << 4); }

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
    if (fmt == TC_TF32) {
      reinterpret_cast<unsigned*>(wt)[e] = tc_tf32(v);
    } else {
      const unsigned p = fmt == TC_BF16 ? tc_pack_bf16x2(v, 0.0f) : tc_pack_f16x2(v, 0.0f);
      reinterpret_cast<unsigned short*>(wt)[e] = (unsigned short)(p & 0xffffu);
    }
  }
}

template <int FMT, int KH, int KW, int UP = 0, int FH = 0, int FW = 0>
__device__ __forceinline__ void mc_tc_fwd_impl(
    float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ in_scale,
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
      tc_cp_async16(ws + mc_tc_row(row, half), src, m < M ? 16 : 0);
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
      unsigned bits;
      if (FMT == TC_TF32) bits = tc_tf32(v[0]);
      else if (FMT == TC_BF16) bits = tc_pack_bf16x2(v[0], v[1]);
      else bits = tc_pack_f16x2(v[0], v[1]);
      *reinterpret_cast<unsigned*>(ps + mc_tc_row(q, u >> 2) + 4 * (u & 3)) = bits;
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
      for (int i = 0; i < 2; ++i) tc_ldmatrix<4>(a[i], ws + mc_tc_row(tap * MC_BM + a_row + 16 * i, a_half));
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
        unsigned b4[4];
        tc_ldmatrix<4>(b4, ps + mc_tc_row(b_pix[jj] + ky * PW + kx, b_half));
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

#define MC_TC_PARAMS                                                                                 \
  float *__restrict__ y, const float *__restrict__ x, const float *__restrict__ in_scale,            \
      const unsigned char *__restrict__ wt, const float *__restrict__ fir, int fh, int fw, int up,    \
      int p0y, int p0x, float fir_gain, int C, int H, int W, int M, int ZH, int ZW, int cpy, int cpx, \
      int OH, int OW, int Cpad, McEpi e
#define MC_TC_ARGS \
  y, x, in_scale, wt, fir, fh, fw, up, p0y, p0x, fir_gain, C, H, W, M, ZH, ZW, cpy, cpx, OH, OW, Cpad, e

// Grid (spatial tiles, ceil(M / MC_BM), N), MC_THREADS threads, dynamic
// shared memory MC_TC_STAGES · 32 · (kh·kw·MC_BM + (MC_TH+kh−1)·(MC_TW+kw−1))
// bytes; Cpad a multiple of 32 / operand bytes.
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
