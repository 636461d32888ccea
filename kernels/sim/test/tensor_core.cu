// Test kernels for common.cuh's tensor-core wrappers: conversions, mma.sync
// with fragments loaded by hand (the PTX ISA layouts, written out here a
// second time) and through ldmatrix (x1, x2, x4, .trans), and cp.async.
// Plain CUDA: they compile under NVRTC as they are (sm_80+).
#include "common.cuh"

// out[4i..4i+3] = tf32(x), bf16x2(x, y), f16x2(x, y), 0 with y = in[(i+1) % n].
extern "C" __global__ void tc_convert(unsigned* out, const float* in, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float x = in[i], y = in[(i + 1) % n];
    out[4 * i] = tc_tf32(x);
    out[4 * i + 1] = tc_pack_bf16x2(x, y);
    out[4 * i + 2] = tc_pack_f16x2(x, y);
    out[4 * i + 3] = 0;
  }
}

template <int FMT>
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  return FMT == TC_BF16 ? tc_pack_bf16x2(lo, hi) : tc_pack_f16x2(lo, hi);
}

// One warp: D [16, 8] = A [16, K] · B [K, 8] + C, all row-major floats, K =
// 16 (bf16/f16) or 8 (tf32); fragments read straight from global memory.
template <int FMT>
__device__ void mma_manual(float* d, const float* a, const float* b, const float* c) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  constexpr int K = FMT == TC_TF32 ? 8 : 16;
  unsigned ra[4], rb[2];
  if (FMT == TC_TF32) {
    ra[0] = tc_tf32(a[g * K + t]);
    ra[1] = tc_tf32(a[(g + 8) * K + t]);
    ra[2] = tc_tf32(a[g * K + t + 4]);
    ra[3] = tc_tf32(a[(g + 8) * K + t + 4]);
    rb[0] = tc_tf32(b[t * 8 + g]);
    rb[1] = tc_tf32(b[(t + 4) * 8 + g]);
  } else {
    for (int r = 0; r < 4; ++r) {
      const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
      ra[r] = pack2<FMT>(a[row * K + col], a[row * K + col + 1]);
    }
    for (int r = 0; r < 2; ++r) {
      const int k = 2 * t + 8 * r;
      rb[r] = pack2<FMT>(b[k * 8 + g], b[(k + 1) * 8 + g]);
    }
  }
  float rc[4], rd[4];
  for (int i = 0; i < 4; ++i) rc[i] = c[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
  tc_mma<FMT>(rd, ra, rb, rc);
  for (int i = 0; i < 4; ++i) d[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = rd[i];
}
extern "C" __global__ void tc_mma_manual_tf32(float* d, const float* a, const float* b, const float* c) {
  mma_manual<TC_TF32>(d, a, b, c);
}
extern "C" __global__ void tc_mma_manual_bf16(float* d, const float* a, const float* b, const float* c) {
  mma_manual<TC_BF16>(d, a, b, c);
}
extern "C" __global__ void tc_mma_manual_f16(float* d, const float* a, const float* b, const float* c) {
  mma_manual<TC_F16>(d, a, b, c);
}

// The same product with the operands staged in shared memory (32 bytes of K
// per row) and fragments loaded by ldmatrix. A is stored [16][K], B either
// as Bᵀ [8][K] (plain ldmatrix; `b_trans` = 0) or as B [K][8] (16-bit only:
// ldmatrix .trans; `b_trans` = 1). `mode` picks the ldmatrix widths: 0 = A
// by x4, B by x2; 1 = A by two x2, B by two x1.
template <int FMT>
__device__ void mma_ldmatrix(float* d, const float* a, const float* b, const float* c, int b_trans,
                             int mode) {
  __shared__ __align__(16) unsigned char as[16 * 32];
  __shared__ __align__(16) unsigned char bs[16 * 32];
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  constexpr int K = FMT == TC_TF32 ? 8 : 16;
  // Stage: lane l converts row l/2 of A (half of it) and an eighth of B.
  for (int e = lane; e < 16 * K; e += 32) {
    const int row = e / K, k = e % K;
    if (FMT == TC_TF32) {
      reinterpret_cast<unsigned*>(as)[row * 8 + k] = tc_tf32(a[e]);
    } else if (k % 2 == 0) {
      reinterpret_cast<unsigned*>(as)[row * 8 + k / 2] = pack2<FMT>(a[e], a[e + 1]);
    }
  }
  for (int e = lane; e < 8 * K; e += 32) {
    const int n = e / K, k = e % K;  // element (k, n) of B
    if (FMT == TC_TF32) {
      reinterpret_cast<unsigned*>(bs)[n * 8 + k] = tc_tf32(b[k * 8 + n]);
    } else if (!b_trans && k % 2 == 0) {
      reinterpret_cast<unsigned*>(bs)[n * 8 + k / 2] = pack2<FMT>(b[k * 8 + n], b[(k + 1) * 8 + n]);
    } else if (b_trans && n % 2 == 0) {  // rows of k, 8 columns of n: 16 bytes a row
      reinterpret_cast<unsigned*>(bs)[k * 4 + n / 2] = pack2<FMT>(b[k * 8 + n], b[k * 8 + n + 1]);
    }
  }
  __syncwarp();
  unsigned ra[4], rb[2];
  // A: matrix j = rows 8(j&1).., 16-byte half j>>1 of each 32-byte row.
  if (mode == 0) {
    tc_ldmatrix<4>(ra, as + ((lane & 7) + 8 * ((lane >> 3) & 1)) * 32 + 16 * (lane >> 4));
  } else {
    unsigned lo[2], hi[2];
    tc_ldmatrix<2>(lo, as + ((lane & 7) + 8 * ((lane >> 3) & 1)) * 32);
    tc_ldmatrix<2>(hi, as + ((lane & 7) + 8 * ((lane >> 3) & 1)) * 32 + 16);
    ra[0] = lo[0];
    ra[1] = lo[1];
    ra[2] = hi[0];
    ra[3] = hi[1];
  }
  if (!b_trans) {
    // Bᵀ: matrix j = rows n 0..7, 16-byte half j of each row.
    if (mode == 0) {
      tc_ldmatrix<2>(rb, bs + (lane & 7) * 32 + 16 * ((lane >> 3) & 1));
    } else {
      unsigned r0[1], r1[1];
      tc_ldmatrix<1>(r0, bs + (lane & 7) * 32);
      tc_ldmatrix<1>(r1, bs + (lane & 7) * 32 + 16);
      rb[0] = r0[0];
      rb[1] = r1[0];
    }
  } else {
    // B [k][n], 16 bytes a row: matrix j = rows k 8j..8j+7.
    if (mode == 0) {
      tc_ldmatrix<2, true>(rb, bs + ((lane & 7) + 8 * ((lane >> 3) & 1)) * 16);
    } else {
      unsigned r0[1], r1[1];
      tc_ldmatrix<1, true>(r0, bs + (lane & 7) * 16);
      tc_ldmatrix<1, true>(r1, bs + ((lane & 7) + 8) * 16);
      rb[0] = r0[0];
      rb[1] = r1[0];
    }
  }
  float rc[4], rd[4];
  for (int i = 0; i < 4; ++i) rc[i] = c[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
  tc_mma<FMT>(rd, ra, rb, rc);
  for (int i = 0; i < 4; ++i) d[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = rd[i];
}
extern "C" __global__ void tc_mma_ldmatrix_tf32(float* d, const float* a, const float* b, const float* c,
                                                int b_trans, int mode) {
  mma_ldmatrix<TC_TF32>(d, a, b, c, b_trans, mode);
}
extern "C" __global__ void tc_mma_ldmatrix_bf16(float* d, const float* a, const float* b, const float* c,
                                                int b_trans, int mode) {
  mma_ldmatrix<TC_BF16>(d, a, b, c, b_trans, mode);
}
extern "C" __global__ void tc_mma_ldmatrix_f16(float* d, const float* a, const float* b, const float* c,
                                               int b_trans, int mode) {
  mma_ldmatrix<TC_F16>(d, a, b, c, b_trans, mode);
}

// cp.async of n floats (n ≤ 4·blockDim.x) into dynamic shared memory in two
// groups (first and second half of the 16-byte chunks), the last chunk
// partial (zero-filled). out[0..4·chunks) = the shared copy after the wait;
// `early` [4·chunks] = what each thread read from its second-group chunk
// after waiting for the first group only (0xff bytes where the copy had not
// landed — the simulator's poison; the GPU may have either).
extern "C" __global__ void tc_cp_async_copy(float* out, float* early, const float* in, int n) {
  SHARED_MEM(float, s);
  const int chunks = (n + 3) / 4, half = (chunks + 1) / 2, t = threadIdx.x;
  const int c0 = t, c1 = t + half;
  if (c0 < half) tc_cp_async16(s + 4 * c0, in + 4 * c0, 4 * min(4, n - 4 * c0));
  tc_cp_async_commit();
  if (c1 < chunks) tc_cp_async16(s + 4 * c1, in + 4 * c1, 4 * min(4, n - 4 * c1));
  tc_cp_async_commit();
  tc_cp_async_wait<1>();
  if (c1 < chunks)
    for (int i = 0; i < 4; ++i) early[4 * c1 + i] = s[4 * c1 + i];
  tc_cp_async_wait<0>();
  __syncthreads();
  for (int i = t; i < 4 * chunks; i += blockDim.x) out[i] = s[i];
}
