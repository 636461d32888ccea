// Broken kernels the simulator must reject: threads of a block that reach
// different barriers, or exit while others wait; and one that must fault.
// Valid CUDA syntax, undefined behaviour on a GPU.
#include "common.cuh"

// The upper half of each block returns before __syncthreads.
extern "C" __global__ void exit_before_syncthreads(float* y) {
  if (threadIdx.x >= blockDim.x / 2) return;
  y[threadIdx.x] = 1.0f;
  __syncthreads();
}

// Only block 2 loses a thread, so blocks 0 and 1 complete first.
extern "C" __global__ void exit_in_one_block(float* y) {
  if (blockIdx.x == 2 && threadIdx.x == 5) return;
  __syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

// Lanes 16..31 return before a full-warp shuffle.
extern "C" __global__ void exit_before_shuffle(float* y) {
  if ((threadIdx.x & 31) >= 16) return;
  y[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// Lanes 0..15 wait at __syncthreads while lanes 16..31 of the same warp
// wait for them in a full-warp shuffle.
extern "C" __global__ void syncthreads_vs_shuffle(float* y) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    y[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0f, 1);
    __syncthreads();
  }
}

// Even lanes ballot while odd lanes shuffle, both over the whole warp.
extern "C" __global__ void mismatched_warp_ops(unsigned* y) {
  if (threadIdx.x & 1)
    y[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1u, 1);
  else
    y[threadIdx.x] = __ballot_sync(0xffffffffu, 1);
}

// An early return with no barrier after it is fine.
extern "C" __global__ void exit_without_barrier(float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = 2.0f * i;
}

// Needs 256 KiB of stack, far more than a simulator fiber has.
extern "C" __global__ void stack_overflow(int* out, int n) {
  volatile int local[65536];
  for (int i = 0; i < n; ++i) local[i] = i;
  out[threadIdx.x] = local[n - 1];
}
