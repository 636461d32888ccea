// Matmul family: batched row-major sgemm C[b] = A[b] · B[b], A [m, k],
// B [k, n], C [m, n].
//
// Launch code: src/backend/cuda/matmul.rs; CPU twin: src/backend/cpu/matmul.rs.
//
// The tile scheme of kernels/conv.cu: a block of 256 threads computes a
// 64×64 tile of C, stepping over k 16 at a time with the next step loaded
// into registers while the current one is multiplied from shared memory;
// each thread owns rows 4ty + r and columns 4tx + c (r, c < 4). Loads are
// bounds-checked (zero outside), so any m, n, k works. The launch code checks
// that every operand has fewer than 2^31 elements (int offsets). At most 64
// registers (launch bounds 256 × 4 blocks per SM), no spills.
#include "common.cuh"

#define MM_BM 64
#define MM_BN 64
#define MM_BK 16
#define MM_THREADS 256
#define MM_LDS (MM_BM + 4)
#define MM_TILE (MM_BK * MM_LDS)
#define MM_SHARED_FLOATS (4 * MM_TILE)

// acc[r][c] += Σ_k As[k][4ty + r] · Bs[k][4tx + c] over one step.
__device__ __forceinline__ void mm_tile_fma(const float* __restrict__ As,
                                            const float* __restrict__ Bs, float acc[4][4], int tx,
                                            int ty) {
#pragma unroll
  for (int k = 0; k < MM_BK; ++k) {
    // One 16-byte shared load per operand (rows are 16-byte aligned).
    const float4 a = *reinterpret_cast<const float4*>(As + k * MM_LDS + 4 * ty);
    const float4 b = *reinterpret_cast<const float4*>(Bs + k * MM_LDS + 4 * tx);
    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
  }
}

// Grid: (ceil(n / 64), ceil(m / 64), min(batch, 1024)) with a grid-stride
// loop over the batch; block 256; shared MM_SHARED_FLOATS floats.
extern "C" __global__ void __launch_bounds__(MM_THREADS, 4)
    matmul_tiled(float* __restrict__ c, const float* __restrict__ a, const float* __restrict__ b,
                 int batch, int m, int k, int n) {
  SHARED_MEM(float, smem);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * MM_BM, n0 = blockIdx.x * MM_BN;
  // A loads: 16 consecutive threads read 16 consecutive k of one row.
  const int ak = tid & 15, aq = tid >> 4;
  // B loads: 64 consecutive threads read 64 consecutive columns of one row.
  const int bn = tid & 63, bk = tid >> 6;
  const int steps = (k + MM_BK - 1) / MM_BK;

  for (int bi = blockIdx.z; bi < batch; bi += gridDim.z) {
    const float* ab = a + bi * m * k;
    const float* bb = b + bi * k * n;
    float ra[4], rb[4];
    auto load = [&](int s) {
      const int k0 = s * MM_BK;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int row = m0 + aq + 16 * q, ka = k0 + ak;
        ra[q] = (row < m && ka < k) ? ab[row * k + ka] : 0.0f;
        const int kb = k0 + bk + 4 * q, col = n0 + bn;
        rb[q] = (kb < k && col < n) ? bb[kb * n + col] : 0.0f;
      }
    };
    auto store = [&](float* buf) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        buf[ak * MM_LDS + aq + 16 * q] = ra[q];
        buf[MM_TILE + (bk + 4 * q) * MM_LDS + bn] = rb[q];
      }
    };

    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int cc = 0; cc < 4; ++cc) acc[r][cc] = 0.0f;
    // The previous batch item ended at a barrier after its last read.
    if (steps > 0) {
      load(0);
      store(smem);
    }
    __syncthreads();
    for (int s = 0; s < steps; ++s) {
      float* cur = smem + (s & 1) * 2 * MM_TILE;
      float* nxt = smem + ((s + 1) & 1) * 2 * MM_TILE;
      if (s + 1 < steps) load(s + 1);
      mm_tile_fma(cur, cur + MM_TILE, acc, tx, ty);
      if (s + 1 < steps) store(nxt);
      __syncthreads();
    }

    float* cb = c + bi * m * n;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int row = m0 + 4 * ty + r;
      if (row >= m) continue;
#pragma unroll
      for (int cc = 0; cc < 4; ++cc) {
        const int col = n0 + 4 * tx + cc;
        if (col < n) cb[row * n + col] = acc[r][cc];
      }
    }
  }
}
