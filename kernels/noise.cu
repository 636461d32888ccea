// Noise injection y = x + noise * strength, with the noise plane broadcast
// over channels (and over the batch when it has one sample), and the fused
// first-order gradients w.r.t. noise and strength.
//
// Launch code: src/backend/cuda/noise.rs; CPU twin: src/backend/cpu/noise.rs.
// x and g are [N, C, HW]; noise is [N, HW] (batched) or [1, HW]. strength is
// read from device memory (one float), so no host round trip.
#include "common.cuh"

extern "C" __global__ void noise_fwd(float* __restrict__ y, const float* __restrict__ x,
                                     const float* __restrict__ noise,
                                     const float* __restrict__ strength, long long n, long long c,
                                     long long hw, int batched) {
  const float s = strength[0];
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    const long long plane = i / hw, p = i - plane * hw;
    const long long m = batched ? plane / c : 0;
    y[i] = x[i] + noise[m * hw + p] * s;
  }
}

// dnoise[m, p] = sum over the samples n of noise row m (n = m when batched,
// every n otherwise) of strength * sum_c g[n, c, p]: the composed rule's
// order (channel sum, times strength, batch sum). One thread per (m, p);
// consecutive threads read consecutive pixels.
extern "C" __global__ void noise_grad_noise(float* __restrict__ dnoise, const float* __restrict__ g,
                                            const float* __restrict__ strength, long long n,
                                            long long c, long long hw, int batched) {
  const float s = strength[0];
  const long long rows = batched ? n : 1;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows * hw;
       i += (long long)gridDim.x * blockDim.x) {
    const long long m = i / hw, p = i - m * hw;
    const long long n0 = batched ? m : 0, n1 = batched ? m + 1 : n;
    float acc = 0.0f;
    for (long long b = n0; b < n1; ++b) {
      const float* gp = g + b * c * hw + p;
      float cs = 0.0f;
      for (long long k = 0; k < c; ++k) cs += gp[k * hw];
      acc += cs * s;
    }
    dnoise[i] = acc;
  }
}

// dstrength = sum_i g[i] * noise[m(i), p(i)], deterministic two-stage
// reduction (no atomics): stage 1 writes one partial sum per block of a
// grid-stride pass, stage 2 (one block) sums the partials in block order.
extern "C" __global__ void noise_grad_strength_partial(float* __restrict__ partial,
                                                       const float* __restrict__ g,
                                                       const float* __restrict__ noise,
                                                       long long n, long long c, long long hw,
                                                       int batched) {
  float acc = 0.0f;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    const long long plane = i / hw, p = i - plane * hw;
    const long long m = batched ? plane / c : 0;
    acc += g[i] * noise[m * hw + p];
  }
  acc = block_reduce_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

extern "C" __global__ void noise_grad_strength_final(float* __restrict__ out,
                                                     const float* __restrict__ partial,
                                                     long long parts) {
  float acc = 0.0f;
  for (long long i = threadIdx.x; i < parts; i += blockDim.x) acc += partial[i];
  acc = block_reduce_sum(acc);
  if (threadIdx.x == 0) out[0] = acc;
}
