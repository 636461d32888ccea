// CUDA device built-ins for the host simulator (Device::Sim).
//
// Kernel sources written for NVRTC compile unchanged with
//     g++ -std=c++17 -include kernels/sim/sim_runtime.h -I kernels
// from a generated wrapper that adds trampolines (see sim_invoke, and
// README.md beside this file for the wrapper's form and the flags).
// Link with kernels/sim/sim_runtime.cpp, which runs the launches.
//
// Model: the blocks of a launch run one after another on the calling OS thread;
// the threads of a block are fibers that switch only inside __syncthreads and
// the warp-level intrinsics. Everything else a kernel does between two such
// points runs without interruption, which is why atomics are plain
// read-modify-writes and why __shared__ can be function-static storage.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cstddef>
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------- launch API

extern "C" {
// Runs `entry` (a kernel trampoline, see sim_invoke) over a gx*gy*gz grid of
// bx*by*bz-thread blocks with `shared_bytes` of dynamic shared memory per block.
// `args` follows cuLaunchKernel's kernelParams: args[i] points to the i-th
// kernel argument. Returns 0 on success; otherwise a nonzero code and a
// NUL-terminated message in err[0..err_len) (err may be null when err_len is 0).
// Safe to call from several OS threads at once; not from inside a kernel.
int sim_launch(void (*entry)(void** args), void** args, unsigned gx, unsigned gy, unsigned gz,
               unsigned bx, unsigned by, unsigned bz, unsigned shared_bytes, char* err,
               unsigned err_len);
}

enum SimLaunchStatus : int {
  SIM_OK = 0,
  SIM_INVALID_LAUNCH = 1,  // bad grid, block or shared memory size
  SIM_KERNEL_ERROR = 2,    // barrier divergence, warp-op mismatch, ...
};

// Calls kernel(*(A0*)args[0], *(A1*)args[1], ...): the body of a trampoline.
// The trampoline generated for `extern "C" __global__ void scale(...)` reads
//     extern "C" void scale__sim(void** args) { sim_invoke(scale, args); }
template <class... A, std::size_t... I>
inline void sim_invoke_impl(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<A*>(args[I])...);
}
template <class... A>
inline void sim_invoke(void (*kernel)(A...), void** args) {
  sim_invoke_impl(kernel, args, std::index_sequence_for<A...>{});
}

// ---------------------------------------------------------------- keywords

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// Blocks of one launch run one at a time, so a block's static shared memory can
// be a function-static; thread_local gives each OS thread (each concurrent
// launch) its own copy, while the fibers of one launch, all on that OS thread,
// share it.
#define __shared__ static thread_local
// __restrict__ is already a g++ keyword.

// ---------------------------------------------------------------- vector types

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

// ---------------------------------------------------------------- built-in variables

// Set by the simulator before it switches to a fiber. __thread (not
// thread_local) because the type has a constant initializer, so kernel code
// reads them directly instead of through a TLS wrapper function.
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;
constexpr int warpSize = 32;

// ---------------------------------------------------------------- synchronization

namespace sim {
enum WarpOpKind : int { kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp };
// Block barrier; implemented in sim_runtime.cpp.
void syncthreads();
// Deposits `value` in the warp's exchange slot, waits until every lane of
// `mask` has arrived and returns this lane's result (shuffled value or vote).
uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int param, int width);
// Start of this block's dynamic shared memory (see SHARED_MEM in common.cuh).
unsigned char* dynamic_shared();

template <class T>
inline T shuffle(WarpOpKind kind, unsigned mask, T var, int param, int width) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                "shuffled values are at most 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &var, sizeof(T));
  bits = warp_op(kind, mask, bits, param, width);
  memcpy(&var, &bits, sizeof(T));
  return var;
}
}  // namespace sim

inline void __syncthreads() { sim::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { sim::warp_op(sim::kSyncWarp, mask, 0, 0, warpSize); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  return sim::shuffle(sim::kShflIdx, mask, var, srcLane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return sim::shuffle(sim::kShflUp, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return sim::shuffle(sim::kShflDown, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  return sim::shuffle(sim::kShflXor, mask, var, laneMask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(sim::warp_op(sim::kBallot, mask, pred != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int pred) {
  return static_cast<int>(sim::warp_op(sim::kAny, mask, pred != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int pred) {
  return static_cast<int>(sim::warp_op(sim::kAll, mask, pred != 0, 0, warpSize));
}

// ---------------------------------------------------------------- atomics
// Plain read-modify-writes returning the old value: fibers never switch inside
// them, and concurrent launches on other OS threads use other buffers.

#define SIM_ATOMIC(name, T, update)   \
  inline T name(T* address, T val) {  \
    const T old = *address;           \
    *address = (update);              \
    return old;                       \
  }
SIM_ATOMIC(atomicAdd, int, old + val)
SIM_ATOMIC(atomicAdd, unsigned, old + val)
SIM_ATOMIC(atomicAdd, unsigned long long, old + val)
SIM_ATOMIC(atomicAdd, float, old + val)
SIM_ATOMIC(atomicAdd, double, old + val)
SIM_ATOMIC(atomicSub, int, old - val)
SIM_ATOMIC(atomicSub, unsigned, old - val)
SIM_ATOMIC(atomicMax, int, old > val ? old : val)
SIM_ATOMIC(atomicMax, unsigned, old > val ? old : val)
SIM_ATOMIC(atomicMax, long long, old > val ? old : val)
SIM_ATOMIC(atomicMax, unsigned long long, old > val ? old : val)
SIM_ATOMIC(atomicMin, int, old < val ? old : val)
SIM_ATOMIC(atomicMin, unsigned, old < val ? old : val)
SIM_ATOMIC(atomicMin, long long, old < val ? old : val)
SIM_ATOMIC(atomicMin, unsigned long long, old < val ? old : val)
SIM_ATOMIC(atomicExch, int, val)
SIM_ATOMIC(atomicExch, unsigned, val)
SIM_ATOMIC(atomicExch, unsigned long long, val)
SIM_ATOMIC(atomicExch, float, val)
SIM_ATOMIC(atomicAnd, int, old & val)
SIM_ATOMIC(atomicAnd, unsigned, old & val)
SIM_ATOMIC(atomicOr, int, old | val)
SIM_ATOMIC(atomicOr, unsigned, old | val)
SIM_ATOMIC(atomicXor, int, old ^ val)
SIM_ATOMIC(atomicXor, unsigned, old ^ val)
#undef SIM_ATOMIC

#define SIM_ATOMIC_CAS(T)                                   \
  inline T atomicCAS(T* address, T compare, T val) {        \
    const T old = *address;                                 \
    if (old == compare) *address = val;                     \
    return old;                                             \
  }
SIM_ATOMIC_CAS(int)
SIM_ATOMIC_CAS(unsigned)
SIM_ATOMIC_CAS(unsigned long long)
#undef SIM_ATOMIC_CAS

// ---------------------------------------------------------------- math and bits
// expf, sqrtf, fmaf, fminf, ... come from <math.h>. The fast intrinsics are
// computed exactly here; kernels must tolerate their error on the GPU anyway.

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0

inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float x) { unsigned i; memcpy(&i, &x, 4); return i; }

template <class T>
inline T __ldg(const T* p) { return *p; }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }

// min/max: CUDA's overload set (same-type pairs, plus int/unsigned mixes that
// yield unsigned and float/double mixes that yield double).
#define SIM_MINMAX(R, A, B)                                            \
  inline R min(A a, B b) {                                             \
    const R x = static_cast<R>(a), y = static_cast<R>(b);              \
    return x < y ? x : y;                                              \
  }                                                                    \
  inline R max(A a, B b) {                                             \
    const R x = static_cast<R>(a), y = static_cast<R>(b);              \
    return x > y ? x : y;                                              \
  }
SIM_MINMAX(int, int, int)
SIM_MINMAX(unsigned, unsigned, unsigned)
SIM_MINMAX(unsigned, int, unsigned)
SIM_MINMAX(unsigned, unsigned, int)
SIM_MINMAX(long, long, long)
SIM_MINMAX(unsigned long, unsigned long, unsigned long)
SIM_MINMAX(long long, long long, long long)
SIM_MINMAX(unsigned long long, unsigned long long, unsigned long long)
SIM_MINMAX(double, double, double)
SIM_MINMAX(double, float, double)
SIM_MINMAX(double, double, float)
#undef SIM_MINMAX
// float: CUDA's min/max(float, float) are fminf/fmaxf (a NaN operand is ignored).
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// ---------------------------------------------------------------- half precision
// Storage type and round-to-nearest-even conversions; no half arithmetic.

struct __half {
  unsigned short x;  // IEEE binary16 bits
};

inline __half __float2half_rn(float f) {
  uint32_t bits = __float_as_uint(f);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  bits &= 0x7fffffffu;
  uint32_t h;
  if (bits >= 0x47800000u) {          // |f| >= 65536, inf or NaN
    h = bits > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (bits < 0x38800000u) {    // |f| < 2^-14: subnormal half or zero
    // Adding 0.5 aligns the half's 10 mantissa bits at the bottom of the
    // float's mantissa; the float addition does the rounding to nearest even.
    h = __float_as_uint(__uint_as_float(bits) + 0.5f) - 0x3f000000u;
  } else {
    // Rebias the exponent and round to nearest even on the 13 dropped bits;
    // a carry out of the mantissa correctly bumps the exponent (up to inf).
    bits += 0xc8000fffu + ((bits >> 13) & 1u);  // (15 - 127) << 23, plus rounding
    h = bits >> 13;
  }
  return __half{static_cast<unsigned short>(sign | h)};
}
inline __half __float2half(float f) { return __float2half_rn(f); }

inline float __half2float(__half h) {
  const uint32_t sign = static_cast<uint32_t>(h.x & 0x8000u) << 16;
  const uint32_t exp = (h.x >> 10) & 0x1fu;
  const uint32_t mant = h.x & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float mag = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return __uint_as_float(__float_as_uint(mag) | sign);
  }
  const uint32_t fexp = exp == 31 ? 255u : exp + 112u;  // inf/NaN keep their payload
  return __uint_as_float(sign | (fexp << 23) | (mant << 13));
}
