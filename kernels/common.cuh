// Shared by every kernel file: index math, activations, warp/block reductions.
//
// Kernels are compiled two ways: by NVRTC for the GPU, and by the host C++
// compiler against kernels/sim/ for Device::Sim. This is the only file with
// #ifdefs for the difference; kernel files have none.
#pragma once

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
// NVRTC has no headers of its own: the compile must pass -I to the CUDA
// headers (nvrtcInstallBundledHeaders from NVRTC 13.3, or a toolkit's include/).
#include <cuda_fp16.h>

// Dynamic shared memory (the launch's shared_bytes), viewed as `type*`.
// Every use in a kernel refers to the same memory, as with extern __shared__.
#define SHARED_MEM(type, name)                                       \
  extern __shared__ __align__(16) unsigned char name##_shared_raw[]; \
  type* name = reinterpret_cast<type*>(name##_shared_raw)
#else
#ifndef __global__
#error "compile kernels for the simulator with -include kernels/sim/sim_runtime.h (see kernels/sim/README.md)"
#endif

#define SHARED_MEM(type, name) type* name = reinterpret_cast<type*>(sim::dynamic_shared())
#endif

__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Linear thread index in the block (x fastest) and the block's thread count;
// warps are 32 consecutive linear indices.
__device__ __forceinline__ int block_thread_index() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
__device__ __forceinline__ int block_threads() { return blockDim.x * blockDim.y * blockDim.z; }

// Leaky ReLU and its derivative; the derivative is the same whether taken from
// the input or from the output, as alpha > 0 keeps the sign.
__device__ __forceinline__ float lrelu(float x, float alpha) { return x > 0.0f ? x : x * alpha; }
__device__ __forceinline__ float lrelu_grad(float x, float alpha) { return x > 0.0f ? 1.0f : alpha; }

// Sum / max over the 32 lanes of a full warp; every lane gets the result.
__device__ __forceinline__ float warp_reduce_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_reduce_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum of v over all threads of the block, returned to every thread. Every
// thread of the block must call it (it holds __syncthreads); any block size up
// to 1024 works, including a last warp with fewer than 32 threads.
__device__ __forceinline__ float block_reduce_sum(float v) {
  __shared__ float warp_sums[32];
  const int tid = block_thread_index(), n = block_threads();
  const int lane = tid & 31, warp = tid >> 5;
  const int lanes = min(32, n - (warp << 5));  // threads in this warp
  const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  // Tree sum into lane 0; a source lane past the warp's end contributes nothing.
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_down_sync(mask, v, offset);
    if (lane + offset < lanes) v += other;
  }
  __syncthreads();  // a previous call may still be reading warp_sums
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < (n + 31) >> 5; ++w) total += warp_sums[w];
  return total;
}
