// Fused bias + activation + gain + clamp, and its gradient (the official
// bias_act_kernel, grad 0 and 1), elementwise.
//
// Launch code: src/backend/cuda/bias_act.rs; CPU twin:
// src/backend/cpu/bias_act.rs, whose arithmetic this follows step for step.
#include "common.cuh"

// Activation codes: the same numbers as in src/backend/cuda/bias_act.rs.
enum ActCode { A_LINEAR = 0, A_LRELU = 1 };

// y[i] = clamp(act(x[i] + b[(i / step) % c]) * gain); b may be null (no
// bias). Without a clamp the launch passes has_clamp = 0. Values outside
// (-clamp, clamp), NaN included, go to a bound, as on the CPU.
extern "C" __global__ void bias_act_fwd(float* __restrict__ y, const float* __restrict__ x,
                                        const float* __restrict__ b, long long n, long long step,
                                        long long c, int act, float alpha, float gain,
                                        int has_clamp, float clamp) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float v = x[i];
    if (b != nullptr) v += b[(i / step) % c];
    if (act == A_LRELU) v = lrelu(v, alpha);
    v *= gain;
    if (has_clamp && !(v > -clamp && v < clamp)) v = v >= 0.0f ? clamp : -clamp;
    y[i] = v;
  }
}

// dx[i] = dy[i] * act'(y[i]) * gain, zero where |y[i]| reached the clamp
// (strict |y| < clamp passes). The lrelu slope comes from the sign of
// y / gain, the activation before the gain.
extern "C" __global__ void bias_act_grad(float* __restrict__ dx, const float* __restrict__ dy,
                                         const float* __restrict__ y, long long n, int act,
                                         float alpha, float gain, int has_clamp, float clamp) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    const float yv = y[i];
    float d = 0.0f;
    if (!has_clamp || (yv > -clamp && yv < clamp)) {
      d = dy[i];
      if (act == A_LRELU) {
        const float pre = gain != 0.0f ? yv / gain : 0.0f;
        if (!(pre > 0.0f)) d *= alpha;
      }
      d *= gain;
    }
    dx[i] = d;
  }
}
