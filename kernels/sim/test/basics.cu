// Test kernels for the simulator: indexing, shared memory, atomics,
// intrinsics. Plain CUDA: they compile under NVRTC as they are.
#include "common.cuh"

// warp.cu defines a different tag(): each kernel file keeps its own helpers.
__device__ int tag() { return 1; }
extern "C" __global__ void basics_tag(int* out) { *out = tag(); }

// Stores every thread's built-in indices: 12 ints per thread, threads ordered
// by linear block index, then linear thread index.
extern "C" __global__ void record_indices(int* out) {
  const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  int* r = out + 12 * (block * block_threads() + block_thread_index());
  r[0] = threadIdx.x; r[1] = threadIdx.y; r[2] = threadIdx.z;
  r[3] = blockIdx.x;  r[4] = blockIdx.y;  r[5] = blockIdx.z;
  r[6] = blockDim.x;  r[7] = blockDim.y;  r[8] = blockDim.z;
  r[9] = gridDim.x;   r[10] = gridDim.y;  r[11] = gridDim.z;
}

// out = in^T for a rows x cols matrix, through a static 32x33 shared tile.
// Grid (ceil(cols/32), ceil(rows/32)), block (32, 8).
extern "C" __global__ void transpose(float* __restrict__ out, const float* __restrict__ in, int rows,
                                     int cols) {
  __shared__ float tile[32][33];
  const int x = blockIdx.x * 32 + threadIdx.x;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int y = blockIdx.y * 32 + j;
    if (x < cols && y < rows) tile[j][threadIdx.x] = __ldg(&in[y * cols + x]);
  }
  __syncthreads();
  const int ox = blockIdx.y * 32 + threadIdx.x;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    const int oy = blockIdx.x * 32 + j;
    if (ox < rows && oy < cols) out[oy * rows + ox] = tile[threadIdx.x][j];
  }
}

// Reverses every blockDim.x-long chunk of x (the last one may be shorter)
// through dynamic shared memory of blockDim.x floats.
extern "C" __global__ void reverse_chunks(float* y, const float* x, int n) {
  SHARED_MEM(float, buf);
  const int base = blockIdx.x * blockDim.x;
  const int len = min(static_cast<int>(blockDim.x), n - base);
  const int t = threadIdx.x;
  if (t < len) buf[t] = x[base + t];
  __syncthreads();
  if (t < len) y[base + t] = buf[len - 1 - t];
}

// Copies the first n bytes of dynamic shared memory as the block found it.
extern "C" __global__ void peek_shared(unsigned char* out, int n) {
  SHARED_MEM(unsigned char, raw);
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = raw[i];
}

// Inclusive prefix sum of each blockDim.x-long chunk (blockDim.x <= 1024),
// Hillis-Steele in static shared memory: one barrier pair per step.
extern "C" __global__ void __launch_bounds__(1024) block_scan(float* y, const float* x, int n) {
  __shared__ float buf[2][1024];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  int cur = 0;
  buf[cur][t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int offset = 1; offset < static_cast<int>(blockDim.x); offset <<= 1) {
    const float v = buf[cur][t] + (t >= offset ? buf[cur][t - offset] : 0.0f);
    cur ^= 1;
    buf[cur][t] = v;
    __syncthreads();
  }
  if (i < n) y[i] = buf[cur][t];
}

// Per-block sums through common.cuh's block_reduce_sum; every thread writes
// the total it received.
extern "C" __global__ void block_sums(float* totals, const float* x, int n) {
  const int g = blockIdx.x * block_threads() + block_thread_index();
  totals[g] = block_reduce_sum(g < n ? x[g] : 0.0f);
}

// Histogram of x into nbins with a grid-stride loop, plus atomic max, min,
// float sum of the low 4 bits and a compare-and-swap claim that exactly one thread wins.
extern "C" __global__ void histogram(int* bins, int nbins, int* stats, float* sum, const int* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    atomicAdd(&bins[x[i] % nbins], 1);
    atomicMax(&stats[0], x[i]);
    atomicMin(&stats[1], x[i]);
    if (atomicCAS(&stats[2], -1, i) == -1) atomicAdd(&stats[3], 1);
    atomicAdd(sum, static_cast<float>(x[i] & 15));  // stays below 2^24: exact
  }
}

// Math and bit intrinsics on one input; 16 floats out.
extern "C" __global__ void intrinsics(float* out, float x) {
  out[0] = rsqrtf(x);
  out[1] = __expf(x) - expf(x);
  out[2] = __fdividef(1.0f, x) - __frcp_rn(x);
  out[3] = __fmaf_rn(x, 2.0f, 1.0f);
  out[4] = __int_as_float(0x3f800000);
  out[5] = static_cast<float>(__float_as_int(1.0f) == 0x3f800000);
  out[6] = fminf(x, 1.0f) + fmaxf(x, 1.0f);
  out[7] = static_cast<float>(min(3, 7) + max(3, 7));
  out[8] = min(x, 0.5f);
  out[9] = static_cast<float>(max(-1, 2u));  // int/unsigned mix: -1 becomes 0xffffffff
  out[10] = static_cast<float>(__popc(0xf0f0u) + __clz(1) + __ffs(8));
  out[11] = __saturatef(x);
  out[12] = lrelu(-x, 0.2f);
  out[13] = lrelu_grad(-x, 0.2f);
  out[14] = static_cast<float>(ceil_div(10, 4));
  out[15] = __half2float(__float2half(x));
}
