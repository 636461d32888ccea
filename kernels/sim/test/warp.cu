// Test kernels for the simulator: warp shuffles, votes, reductions.
// Plain CUDA: they compile under NVRTC as they are.
#include "common.cuh"

// Global index of this thread when blocks are laid out one after another.
__device__ __forceinline__ int global_index() { return blockIdx.x * block_threads() + block_thread_index(); }

// basics.cu defines a different tag(): each kernel file keeps its own helpers.
__device__ int tag() { return 2; }
extern "C" __global__ void warp_tag(int* out) { *out = tag(); }

// Every shuffle mode, at width 32 and 8: 8 ints per thread.
extern "C" __global__ void shuffles(int* out, const int* in) {
  const int g = global_index(), lane = block_thread_index() & 31;
  const int v = in[g];
  int* r = out + 8 * g;
  r[0] = __shfl_sync(0xffffffffu, v, (lane * 7 + 3) & 31);
  r[1] = __shfl_up_sync(0xffffffffu, v, 3);
  r[2] = __shfl_down_sync(0xffffffffu, v, 5);
  r[3] = __shfl_xor_sync(0xffffffffu, v, 6);
  r[4] = __shfl_sync(0xffffffffu, v, lane + 2, 8);
  r[5] = __shfl_up_sync(0xffffffffu, v, 3, 8);
  r[6] = __shfl_down_sync(0xffffffffu, v, 5, 8);
  r[7] = __shfl_xor_sync(0xffffffffu, v, 9, 8);
}

// 8-byte values travel whole.
extern "C" __global__ void shuffle_double(double* out, const double* in) {
  const int g = global_index();
  out[g] = __shfl_down_sync(0xffffffffu, in[g], 1);
}

// Ballot, any and all over the whole warp: 3 words per thread.
extern "C" __global__ void votes(unsigned* out, const int* pred) {
  const int g = global_index(), p = pred[g];
  out[3 * g] = __ballot_sync(0xffffffffu, p);
  out[3 * g + 1] = __any_sync(0xffffffffu, p);
  out[3 * g + 2] = __all_sync(0xffffffffu, p);
}

// Even and odd lanes vote as two separate groups.
extern "C" __global__ void split_ballot(unsigned* out, const int* pred) {
  const int g = global_index();
  const unsigned mask = (block_thread_index() & 1) ? 0xaaaaaaaau : 0x55555555u;
  out[g] = __ballot_sync(mask, pred[g]);
}

// Each lane reads its right neighbour's value (cyclic within the warp's lanes)
// from shared memory written just before: only correct with __syncwarp.
extern "C" __global__ void warp_rotate(int* out, const int* in) {
  __shared__ int buf[1024];
  const int t = block_thread_index(), g = global_index();
  const int base = t & ~31, lanes = min(32, block_threads() - base);
  buf[t] = in[g];
  __syncwarp();
  out[g] = buf[base + ((t - base) + 1) % lanes];
}

// Per-block sum by a shfl_down tree in each warp, then in warp 0.
// blockDim.x a multiple of 32.
extern "C" __global__ void sum_shfl_down(float* out, const float* x, int n) {
  __shared__ float warp_sums[32];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  float v = i < n ? x[i] : 0.0f;
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  if ((t & 31) == 0) warp_sums[t >> 5] = v;
  __syncthreads();
  if (t < 32) {
    v = t < static_cast<int>(blockDim.x >> 5) ? warp_sums[t] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (t == 0) out[blockIdx.x] = v;
  }
}

// Per-block sum by common.cuh's xor butterfly, combined with atomicAdd into
// out[blockIdx.x] (zeroed by the caller). blockDim.x a multiple of 32.
extern "C" __global__ void sum_shfl_xor(float* out, const float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const float v = warp_reduce_sum(i < n ? x[i] : 0.0f);
  if ((threadIdx.x & 31) == 0) atomicAdd(&out[blockIdx.x], v);
}

// Per-block sum by a tree in dynamic shared memory of blockDim.x floats.
// blockDim.x a power of 2.
extern "C" __global__ void sum_shared_tree(float* out, const float* x, int n) {
  SHARED_MEM(float, buf);
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  buf[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = buf[0];
}

// Warp maxima through common.cuh; every lane writes its warp's maximum.
extern "C" __global__ void warp_max(float* out, const float* x) {
  const int g = global_index();
  out[g] = warp_reduce_max(x[g]);
}
