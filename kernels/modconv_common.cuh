// Shared by kernels/modconv.cu (FP32 CUDA cores) and kernels/modconv_tc.cu
// (tensor cores): the epilogue, the staging of the modulated (and FIR
// up-sampled) input, the forward's output tile and its epilogue arguments.
#pragma once
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
// XT is float, or unsigned short for F16 storage (the bits of an FP16
// block's activations, widened exactly as they are read).
__device__ __forceinline__ float mc_ld(float v) { return v; }
__device__ __forceinline__ float mc_ld(unsigned short h) { return half_bits_to_float(h, TC_F16); }

template <int UP = 0, int FH = 0, int FW = 0, typename XT = float>
__device__ __forceinline__ float mc_stage(const XT* __restrict__ xp, int H, int W, int zy, int zx,
                                          float scale, const float* __restrict__ fir, int fh_rt,
                                          int fw_rt, int up_rt, int p0y, int p0x, float fir_gain) {
  if (fir == nullptr) return mc_ld(xp[(long long)zy * W + zx]) * scale;
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
    const XT* xrow = xp + (long long)iy * W;
    for (int jx = jx0; jx < fw; jx += up) {
      const int qx = qx0 + jx;
      if (qx < 0) continue;
      const int ix = qx / up;
      if (ix >= W) break;
      acc += mc_ld(xrow[ix]) * frow[fw - 1 - jx];
    }
  }
  return acc * fir_gain * scale;
}

// The fused forward's block tile: MC_BM output channels × (MC_TH × MC_TW)
// output pixels of one sample, MC_THREADS threads (both kernel families).
#define MC_TH 8
#define MC_TW 16
#define MC_BM 64
#define MC_THREADS 256

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
