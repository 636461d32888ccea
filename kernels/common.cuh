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

// ------------------------------------------------------------ tensor cores
// Warp-level matrix instructions of sm_80+ and what feeds them: operand
// conversions, ldmatrix, cp.async, and mma.sync with FP32 accumulators.
//
// On the GPU each wrapper is the PTX instruction (inline asm); below sm_80
// they trap, and the launch code never picks a kernel using them there. In the
// simulator each is emulated lane by lane with the fragment layouts of the PTX
// ISA ("Warp-level matrix fragments for mma.m16n8k16 / mma.m16n8k8"):
// fragments move between lanes only through warp shuffles, so a kernel that
// puts an element in the wrong register or lane computes a wrong product on
// the simulator, as it would on the GPU.
//
// Notation: g = lane >> 2 (groupID), t = lane & 3 (threadID_in_group).
// m16n8k16, .bf16/.f16 operands, two 16-bit elements per .b32 register
// (the lower-indexed element in the low half):
//   A 16×16 (row):  a0 = (g, 2t..2t+1)  a1 = (g+8, 2t..)  a2 = (g, 2t+8..)  a3 = (g+8, 2t+8..)
//   B 16×8  (col):  b0 = (k 2t..2t+1, n g)  b1 = (k 2t+8.., n g)
// m16n8k8, .tf32 operands, one element per register:
//   A 16×8:  a0 = (g, t)  a1 = (g+8, t)  a2 = (g, t+4)  a3 = (g+8, t+4)
//   B 8×8:   b0 = (k t, n g)  b1 = (k t+4, n g)
// C/D 16×8 FP32 (both):  c0, c1 = (g, 2t), (g, 2t+1)  c2, c3 = (g+8, 2t), (g+8, 2t+1)

// Operand formats of the tensor-core kernels; the codes of Precision in
// src/ops/precision.rs (0 is FP32 on the CUDA cores).
#define TC_TF32 1
#define TC_BF16 2
#define TC_F16 3

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define TC_UNSUPPORTED 1
#endif

// TF32 (cvt.rna.tf32.f32: nearest, ties away from zero), as the bits of a
// float whose 13 low mantissa bits are zero.
__device__ __forceinline__ unsigned tc_tf32(float x) {
#ifdef TC_UNSUPPORTED
  __trap();
  return 0;
#else
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#endif
}
// Two floats to a bf16x2 / f16x2 register, round to nearest even; `lo` goes
// to the low half (the lower-indexed element of a fragment).
__device__ __forceinline__ unsigned tc_pack_bf16x2(float lo, float hi) {
#ifdef TC_UNSUPPORTED
  __trap();
  return 0;
#else
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#endif
}
__device__ __forceinline__ unsigned tc_pack_f16x2(float lo, float hi) {
#ifdef TC_UNSUPPORTED
  __trap();
  return 0;
#else
  unsigned r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#endif
}

__device__ __forceinline__ unsigned tc_smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// ldmatrix.sync.aligned.m8n8.xNUM[.trans].shared.b16: lanes 8j..8j+7 give the
// row addresses (16 bytes each, 16-byte aligned) of 8×8 matrix j; r[j] of
// lane l receives row l/4, elements 2(l%4), 2(l%4)+1 of matrix j (with
// .trans: column l/4, rows 2(l%4), 2(l%4)+1). Lanes past 8·NUM give none.
template <int NUM, bool TRANS = false>
__device__ __forceinline__ void tc_ldmatrix(unsigned (&r)[NUM], const void* row) {
#ifdef TC_UNSUPPORTED
  __trap();
#else
  const unsigned a = tc_smem_addr(row);
  if constexpr (NUM == 1 && !TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(a));
  if constexpr (NUM == 1 && TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(a));
  if constexpr (NUM == 2 && !TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  if constexpr (NUM == 2 && TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  if constexpr (NUM == 4 && !TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  if constexpr (NUM == 4 && TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
#endif
}

// cp.async.cg.shared.global: copies `src_bytes` (0..16) bytes from global
// `src` to shared `dst` (both 16-byte aligned) and zero-fills the rest of
// the 16; completes asynchronously. tc_cp_async_commit closes the group of
// copies issued since the last commit; tc_cp_async_wait<N> waits until at
// most N of this thread's committed groups are pending. Other threads' copies
// are visible only after a barrier that follows their wait.
__device__ __forceinline__ void tc_cp_async16(void* dst, const void* src, int src_bytes) {
#ifdef TC_UNSUPPORTED
  __trap();
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(tc_smem_addr(dst)), "l"(src),
               "r"(src_bytes));
#endif
}
__device__ __forceinline__ void tc_cp_async_commit() {
#ifndef TC_UNSUPPORTED
  asm volatile("cp.async.commit_group;");
#endif
}
template <int N>
__device__ __forceinline__ void tc_cp_async_wait() {
#ifndef TC_UNSUPPORTED
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
#endif
}

// D = A·B + C, FP32 accumulators; FMT is TC_BF16 or TC_F16 (m16n8k16) or
// TC_TF32 (m16n8k8, operands as tc_tf32 bits).
template <int FMT>
__device__ __forceinline__ void tc_mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                       const float (&c)[4]) {
#ifdef TC_UNSUPPORTED
  __trap();
#else
  if constexpr (FMT == TC_BF16)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
  if constexpr (FMT == TC_F16)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
  if constexpr (FMT == TC_TF32)
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
#endif
}
#undef TC_UNSUPPORTED

#else  // the simulator

__device__ __forceinline__ unsigned tc_tf32(float x) {
  unsigned b = __float_as_uint(x);
  if ((b & 0x7f800000u) == 0x7f800000u) return b;  // inf and NaN pass unchanged
  return (b + 0x1000u) & 0xffffe000u;               // half an ulp of tf32 on the magnitude: ties away
}
__device__ __forceinline__ unsigned tc_bf16_bits(float x) {
  const unsigned b = __float_as_uint(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u;  // quiet NaN
  return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;                  // nearest even
}
__device__ __forceinline__ unsigned tc_pack_bf16x2(float lo, float hi) {
  return tc_bf16_bits(lo) | (tc_bf16_bits(hi) << 16);
}
__device__ __forceinline__ unsigned tc_pack_f16x2(float lo, float hi) {
  return static_cast<unsigned>(__float2half_rn(lo).x) | (static_cast<unsigned>(__float2half_rn(hi).x) << 16);
}

// Shared memory is host memory here: "row addresses" are plain pointers,
// handed from lane to lane by shuffles as the hardware's address crossbar does.
template <int NUM, bool TRANS = false>
__device__ __forceinline__ void tc_ldmatrix(unsigned (&r)[NUM], const void* row) {
  const int lane = block_thread_index() & 31;
  const unsigned long long mine = reinterpret_cast<unsigned long long>(row);
  for (int j = 0; j < NUM; ++j) {
    if (!TRANS) {
      const auto* p = reinterpret_cast<const unsigned char*>(__shfl_sync(0xffffffffu, mine, 8 * j + (lane >> 2)));
      memcpy(&r[j], p + 4 * (lane & 3), 4);
    } else {
      const auto* p0 = reinterpret_cast<const unsigned char*>(__shfl_sync(0xffffffffu, mine, 8 * j + 2 * (lane & 3)));
      const auto* p1 = reinterpret_cast<const unsigned char*>(__shfl_sync(0xffffffffu, mine, 8 * j + 2 * (lane & 3) + 1));
      unsigned short lo, hi;
      memcpy(&lo, p0 + 2 * (lane >> 2), 2);
      memcpy(&hi, p1 + 2 * (lane >> 2), 2);
      r[j] = static_cast<unsigned>(lo) | (static_cast<unsigned>(hi) << 16);
    }
  }
}

// cp.async is deferred as on the GPU: a copy happens when its group is waited
// for, so a kernel that reads the destination before waiting (or before the
// barrier after the other threads' waits) reads stale shared memory here too.
struct TcCopy {
  void* dst;
  const void* src;
  int bytes;
  int group;
};
struct TcCopyQueue {
  static constexpr int kCap = 64;  // pending copies per thread
  TcCopy ops[kCap];
  int n = 0, committed = 0;
  unsigned block = ~0u;
};
__device__ __forceinline__ TcCopyQueue& tc_copy_queue() {
  static thread_local TcCopyQueue* queues = nullptr;  // one per thread of the block, per OS thread
  if (queues == nullptr) queues = new TcCopyQueue[1024];
  TcCopyQueue& q = queues[block_thread_index()];
  // Copies left by an earlier block are dropped: its shared memory is gone.
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  if (q.block != block) {
    q.n = 0;
    q.committed = 0;
    q.block = block;
  }
  return q;
}
__device__ __forceinline__ void tc_cp_async16(void* dst, const void* src, int src_bytes) {
  TcCopyQueue& q = tc_copy_queue();
  if (q.n == TcCopyQueue::kCap) __builtin_trap();  // more pending copies than the emulation holds
  q.ops[q.n++] = TcCopy{dst, src, src_bytes, q.committed};
}
__device__ __forceinline__ void tc_cp_async_commit() { ++tc_copy_queue().committed; }
template <int N>
__device__ __forceinline__ void tc_cp_async_wait() {
  TcCopyQueue& q = tc_copy_queue();
  int kept = 0;
  for (int i = 0; i < q.n; ++i) {
    const TcCopy& c = q.ops[i];
    if (c.group < q.committed - N) {
      memset(c.dst, 0, 16);
      if (c.bytes > 0) memcpy(c.dst, c.src, c.bytes < 16 ? c.bytes : 16);
    } else {
      q.ops[kept++] = c;
    }
  }
  q.n = kept;
}

// One element of a fragment register as the tensor core reads it.
template <int FMT>
__device__ __forceinline__ float tc_elem(unsigned reg, int half) {
  if (FMT == TC_TF32) return __uint_as_float(reg & 0xffffe000u);  // the low 13 bits are ignored
  const unsigned short h = static_cast<unsigned short>(half ? reg >> 16 : reg & 0xffffu);
  if (FMT == TC_BF16) return __uint_as_float(static_cast<unsigned>(h) << 16);
  return __half2float(__half{h});
}

template <int FMT>
__device__ __forceinline__ void tc_mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2],
                                       const float (&c)[4]) {
  const int lane = block_thread_index() & 31, g = lane >> 2, t = lane & 3;
  // Rows g and g+8 of A live in lanes 4g..4g+3 (all four registers); columns
  // 2t and 2t+1 of B in lanes 4·2t.. and 4·(2t+1).. (both registers), for
  // both shapes. Each round every lane fetches from its own source lane.
  unsigned ga[4][4], gb[2][4][2];
  const unsigned long long a01 = a[0] | (static_cast<unsigned long long>(a[1]) << 32);
  const unsigned long long a23 = a[2] | (static_cast<unsigned long long>(a[3]) << 32);
  const unsigned long long b01 = b[0] | (static_cast<unsigned long long>(b[1]) << 32);
  for (int q = 0; q < 4; ++q) {
    const unsigned long long lo = __shfl_sync(0xffffffffu, a01, 4 * g + q);
    const unsigned long long hi = __shfl_sync(0xffffffffu, a23, 4 * g + q);
    ga[q][0] = static_cast<unsigned>(lo);
    ga[q][1] = static_cast<unsigned>(lo >> 32);
    ga[q][2] = static_cast<unsigned>(hi);
    ga[q][3] = static_cast<unsigned>(hi >> 32);
    for (int j = 0; j < 2; ++j) {
      const unsigned long long v = __shfl_sync(0xffffffffu, b01, 4 * (2 * t + j) + q);
      gb[j][q][0] = static_cast<unsigned>(v);
      gb[j][q][1] = static_cast<unsigned>(v >> 32);
    }
  }
  const int K = FMT == TC_TF32 ? 8 : 16;
  for (int i = 0; i < 4; ++i) {
    const int hi_row = i >> 1, j = i & 1;  // row g + 8·hi_row, column 2t + j
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) {
      float av, bv;
      if (FMT == TC_TF32) {
        av = tc_elem<FMT>(ga[k & 3][hi_row + 2 * (k >> 2)], 0);
        bv = tc_elem<FMT>(gb[j][k & 3][k >> 2], 0);
      } else {
        av = tc_elem<FMT>(ga[(k & 7) >> 1][hi_row + 2 * (k >> 3)], k & 1);
        bv = tc_elem<FMT>(gb[j][(k & 7) >> 1][k >> 3], k & 1);
      }
      acc += av * bv;  // exact: both operands have at most 11 significant bits
    }
    d[i] = acc + c[i];
  }
}
#endif

// Tensor-core kernels keep operands in shared memory as rows of 32 bytes
// (one k-step of one tile row or column: 8 TF32 or 16 BF16/FP16 values).
// Byte offset of 16-byte half `half` of row r: the halves are swapped when
// bit 2 of r is set, so the 8 consecutive rows an ldmatrix reads hit 32
// distinct banks.
__device__ __forceinline__ int tc_row32(int r, int half) { return r * 32 + ((half ^ ((r >> 2) & 1)) << 4); }

// Element e of an operand array in format `fmt` (run-time code): 4-byte
// TF32 bits or a 2-byte bf16 / f16 value, rounded as tc_pack rounds.
__device__ __forceinline__ void tc_store_operand(unsigned char* base, long long e, float v, int fmt) {
  if (fmt == TC_TF32) {
    reinterpret_cast<unsigned*>(base)[e] = tc_tf32(v);
  } else {
    const unsigned p = fmt == TC_BF16 ? tc_pack_bf16x2(v, 0.0f) : tc_pack_f16x2(v, 0.0f);
    reinterpret_cast<unsigned short*>(base)[e] = (unsigned short)(p & 0xffffu);
  }
}

// One 4-byte unit of such a row: the TF32 bits of `lo` (`hi` unused), or the
// bf16x2 / f16x2 pair (lo, hi), rounded as the format's conversion does.
template <int FMT>
__device__ __forceinline__ unsigned tc_pack(float lo, float hi) {
  if (FMT == TC_TF32) return tc_tf32(lo);
  if (FMT == TC_BF16) return tc_pack_bf16x2(lo, hi);
  return tc_pack_f16x2(lo, hi);
}

// ---------------------------------------------------------------- 2-byte storage
// Bits of F16/BF16 storage (DType in src/dtype.rs): rounding to nearest even
// and the exact widening back to float, on every architecture (the tc_pack_*
// instructions need sm_80). The codes are TC_BF16 and TC_F16.
__device__ __forceinline__ unsigned short half_bits_from_float(float x, int fmt) {
  if (fmt == TC_BF16) {
    const unsigned b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<unsigned short>((b >> 16) | 0x40u);  // quiet NaN
    return static_cast<unsigned short>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);  // nearest even
  }
#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
  return __half_as_ushort(__float2half_rn(x));
#else
  return __float2half_rn(x).x;
#endif
}
__device__ __forceinline__ float half_bits_to_float(unsigned short h, int fmt) {
  if (fmt == TC_BF16) return __uint_as_float(static_cast<unsigned>(h) << 16);
#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
  return __half2float(__ushort_as_half(h));
#else
  return __half2float(__half{h});
#endif
}
