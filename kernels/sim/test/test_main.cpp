// Tests of the CUDA host simulator: runs the kernels of basics.cu, warp.cu and
// divergence.cu through sim_launch and compares with values computed here.
// Prints "N passed, M failed" and exits nonzero when a test fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../sim_runtime.h"

// Trampolines of the test kernels, defined in *_sim.cpp.
using Entry = void(void**);
extern "C" Entry basics_tag__sim, record_indices__sim, transpose__sim, reverse_chunks__sim,
    peek_shared__sim, block_scan__sim, block_sums__sim, histogram__sim, intrinsics__sim;
extern "C" Entry warp_tag__sim, shuffles__sim, shuffle_double__sim, votes__sim, split_ballot__sim,
    warp_rotate__sim, sum_shfl_down__sim, sum_shfl_xor__sim, sum_shared_tree__sim, warp_max__sim;
extern "C" Entry exit_before_syncthreads__sim, exit_in_one_block__sim, exit_before_shuffle__sim,
    syncthreads_vs_shuffle__sim, mismatched_warp_ops__sim, exit_without_barrier__sim, stack_overflow__sim;
extern "C" Entry tc_convert__sim, tc_mma_manual_tf32__sim, tc_mma_manual_bf16__sim, tc_mma_manual_f16__sim,
    tc_mma_ldmatrix_tf32__sim, tc_mma_ldmatrix_bf16__sim, tc_mma_ldmatrix_f16__sim, tc_cp_async_copy__sim;

namespace {

int g_check_failures = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_check_failures;                                                    \
    }                                                                        \
  } while (0)

// Compares element by element and reports the first difference only.
template <class T>
void check_equal(const std::vector<T>& got, const std::vector<T>& want, const char* what) {
  if (got.size() != want.size()) {
    fprintf(stderr, "  %s: size %zu, want %zu\n", what, got.size(), want.size());
    ++g_check_failures;
    return;
  }
  for (size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == want[i])) {
      fprintf(stderr, "  %s: element %zu is %g, want %g\n", what, i, double(got[i]), double(want[i]));
      ++g_check_failures;
      return;
    }
}

struct Result {
  int status;
  std::string error;
};

// Launches a trampoline with kernel arguments passed by value, the way the
// Rust side will: an array of pointers to each argument.
template <class... Args>
Result launch(void (*entry)(void**), dim3 grid, dim3 block, unsigned shared_bytes, Args... args) {
  void* params[] = {static_cast<void*>(&args)...};
  char err[512] = "";
  const int status = sim_launch(entry, params, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                                shared_bytes, err, sizeof err);
  return {status, err};
}

#define CHECK_OK(result)                                                                \
  do {                                                                                  \
    const Result r_ = (result);                                                         \
    if (r_.status != SIM_OK) {                                                          \
      fprintf(stderr, "  %s:%d: launch failed (%d): %s\n", __FILE__, __LINE__, r_.status, \
              r_.error.c_str());                                                        \
      ++g_check_failures;                                                               \
    }                                                                                   \
  } while (0)

// Small deterministic pseudo-random integers in [0, range).
std::vector<int> random_ints(size_t n, int range, unsigned seed) {
  std::vector<int> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<int>((seed >> 8) % static_cast<unsigned>(range));
  }
  return v;
}
std::vector<float> random_floats(size_t n, unsigned seed) {  // integers: sums are exact
  std::vector<float> v(n);
  const std::vector<int> i = random_ints(n, 201, seed);
  for (size_t k = 0; k < n; ++k) v[k] = static_cast<float>(i[k] - 100);
  return v;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Runs f in a child process; returns the signal that killed it, or 0.
int death_signal(void (*f)()) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    f();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

// ---------------------------------------------------------------- tests

// Two kernel files define different helpers of the same name; the build keeps
// them apart (each file is included in an unnamed namespace).
void test_per_file_helpers() {
  int a = 0, b = 0;
  CHECK_OK(launch(basics_tag__sim, dim3(1), dim3(1), 0, &a));
  CHECK_OK(launch(warp_tag__sim, dim3(1), dim3(1), 0, &b));
  CHECK(a == 1 && b == 2);
}

void test_indexing() {
  const dim3 configs[][2] = {{dim3(3, 2), dim3(4, 3)}, {dim3(2, 3, 2), dim3(3, 2, 4)}, {dim3(5), dim3(33)}};
  for (const auto& c : configs) {
    const dim3 g = c[0], b = c[1];
    const unsigned nb = g.x * g.y * g.z, nt = b.x * b.y * b.z;
    std::vector<int> out(12 * nb * nt, -1), want;
    for (unsigned bz = 0; bz < g.z; ++bz)
      for (unsigned by = 0; by < g.y; ++by)
        for (unsigned bx = 0; bx < g.x; ++bx)
          for (unsigned tz = 0; tz < b.z; ++tz)
            for (unsigned ty = 0; ty < b.y; ++ty)
              for (unsigned tx = 0; tx < b.x; ++tx) {
                const int rec[12] = {int(tx), int(ty), int(tz), int(bx), int(by), int(bz),
                                     int(b.x), int(b.y), int(b.z), int(g.x), int(g.y), int(g.z)};
                want.insert(want.end(), rec, rec + 12);
              }
    CHECK_OK(launch(record_indices__sim, g, b, 0, out.data()));
    check_equal(out, want, "record_indices");
  }
}

void test_transpose_static_shared() {
  const int rows = 70, cols = 45;
  const std::vector<float> in = random_floats(rows * cols, 1);
  std::vector<float> out(rows * cols, 0.0f), want(rows * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) want[c * rows + r] = in[r * cols + c];
  CHECK_OK(launch(transpose__sim, dim3((cols + 31) / 32, (rows + 31) / 32), dim3(32, 8), 0, out.data(),
                  in.data(), rows, cols));
  check_equal(out, want, "transpose");
}

void test_dynamic_shared() {
  const int n = 1000;
  for (unsigned block : {1u, 33u, 128u, 1024u}) {
    const std::vector<float> x = random_floats(n, block);
    std::vector<float> y(n, 0.0f), want(n);
    for (int base = 0; base < n; base += block) {
      const int len = std::min<int>(block, n - base);
      for (int t = 0; t < len; ++t) want[base + t] = x[base + len - 1 - t];
    }
    CHECK_OK(launch(reverse_chunks__sim, dim3((n + block - 1) / block), dim3(block), block * 4, y.data(),
                    x.data(), n));
    check_equal(y, want, "reverse_chunks");
  }
}

// Each block finds dynamic shared memory filled with 0xff bytes (NaN as
// float), not what an earlier block or launch left; the whole 227 KiB is usable.
void test_shared_poison_and_limit() {
  const unsigned bytes = 227 * 1024;
  std::vector<unsigned char> out(bytes, 0);
  std::vector<float> x(64, 1.0f), y(64);
  CHECK_OK(launch(reverse_chunks__sim, dim3(1), dim3(64), 64 * 4, y.data(), x.data(), 64));
  CHECK_OK(launch(peek_shared__sim, dim3(2), dim3(256), bytes, out.data(), int(bytes)));
  check_equal(out, std::vector<unsigned char>(bytes, 0xff), "peek_shared");
}

// Running off the end of dynamic shared memory, or off a fiber's stack, hits a
// guard page instead of corrupting memory. (The stack case relies on
// -fstack-clash-protection, which touches a large frame page by page.)
void test_overruns_fault() {
  CHECK(death_signal([] {
          std::vector<unsigned char> out(512);
          launch(peek_shared__sim, dim3(1), dim3(32), 256, out.data(), 256);  // in bounds
          launch(peek_shared__sim, dim3(1), dim3(32), 256, out.data(), 257);
        }) == SIGSEGV);
  CHECK(death_signal([] {
          std::vector<int> out(32);
          launch(stack_overflow__sim, dim3(1), dim3(32), 0, out.data(), 10);
        }) == SIGSEGV);
}

void test_block_scan() {
  const int n = 3000;
  for (unsigned block : {1u, 40u, 256u, 1024u}) {
    const std::vector<float> x = random_floats(n, 7 + block);
    std::vector<float> y(n), want(n);
    for (int base = 0; base < n; base += block) {
      float acc = 0.0f;
      for (int i = base; i < std::min<int>(n, base + block); ++i) want[i] = acc += x[i];
    }
    CHECK_OK(launch(block_scan__sim, dim3((n + block - 1) / block), dim3(block), 0, y.data(), x.data(), n));
    check_equal(y, want, "block_scan");
  }
}

// common.cuh's block_reduce_sum on full and partial warps, and 3-D blocks.
void test_block_reduce_sum() {
  for (dim3 block : {dim3(256), dim3(40), dim3(33), dim3(1), dim3(5, 3, 4), dim3(1024)}) {
    const unsigned nt = block.x * block.y * block.z, blocks = 7, n = blocks * nt - 3;
    const std::vector<float> x = random_floats(n, nt);
    std::vector<float> totals(blocks * nt, -1.0f), want(blocks * nt);
    for (unsigned b = 0; b < blocks; ++b) {
      float s = 0.0f;
      for (unsigned i = b * nt; i < std::min(n, (b + 1) * nt); ++i) s += x[i];
      for (unsigned t = 0; t < nt; ++t) want[b * nt + t] = s;
    }
    CHECK_OK(launch(block_sums__sim, dim3(blocks), block, 0, totals.data(), x.data(), int(n)));
    check_equal(totals, want, "block_sums");
  }
}

void test_warp_sums() {
  const int n = 5000;
  const std::vector<float> x = random_floats(n, 3);
  for (unsigned block : {32u, 64u, 256u, 1024u}) {
    const unsigned blocks = (n + block - 1) / block;
    std::vector<float> want(blocks, 0.0f);
    for (int i = 0; i < n; ++i) want[i / block] += x[i];
    std::vector<float> down(blocks, -1.0f), butterfly(blocks, 0.0f), tree(blocks, -1.0f);
    CHECK_OK(launch(sum_shfl_down__sim, dim3(blocks), dim3(block), 0, down.data(), x.data(), n));
    CHECK_OK(launch(sum_shfl_xor__sim, dim3(blocks), dim3(block), 0, butterfly.data(), x.data(), n));
    CHECK_OK(launch(sum_shared_tree__sim, dim3(blocks), dim3(block), block * 4, tree.data(), x.data(), n));
    check_equal(down, want, "sum_shfl_down");
    check_equal(butterfly, want, "sum_shfl_xor");
    check_equal(tree, want, "sum_shared_tree");
  }
  std::vector<float> max(256), want_max(256, -1e30f);
  const std::vector<float> y = random_floats(256, 11);
  for (int i = 0; i < 256; ++i) want_max[i / 32 * 32] = std::max(want_max[i / 32 * 32], y[i]);
  for (int i = 0; i < 256; ++i) want_max[i] = want_max[i / 32 * 32];
  CHECK_OK(launch(warp_max__sim, dim3(2), dim3(128), 0, max.data(), y.data()));
  check_equal(max, want_max, "warp_max");
}

// Shuffle results as CUDA defines them; a source lane past the block's last
// thread yields the caller's own value.
void test_shuffles() {
  for (dim3 block : {dim3(32), dim3(64), dim3(40), dim3(33), dim3(1), dim3(5, 3, 4)}) {
    const unsigned nt = block.x * block.y * block.z, blocks = 3;
    const std::vector<int> in = random_ints(blocks * nt, 1000000, nt);
    std::vector<int> out(8 * blocks * nt, 0), want;
    for (unsigned b = 0; b < blocks; ++b)
      for (unsigned t = 0; t < nt; ++t) {
        const int base = t & ~31u, lanes = std::min<int>(32, nt - base), l = t - base, own = in[b * nt + t];
        auto from = [&](int src) { return src >= 0 && src < lanes ? in[b * nt + base + src] : own; };
        const int seg = l & ~7, pos = l & 7;
        const int rec[8] = {
            from((l * 7 + 3) & 31),
            l >= 3 ? from(l - 3) : own,
            l + 5 < 32 ? from(l + 5) : own,
            from(l ^ 6),
            from(seg + ((l + 2) & 7)),
            pos >= 3 ? from(l - 3) : own,
            pos + 5 < 8 ? from(l + 5) : own,
            (l ^ 9) < seg + 8 ? from(l ^ 9) : own,
        };
        want.insert(want.end(), rec, rec + 8);
      }
    CHECK_OK(launch(shuffles__sim, dim3(blocks), block, 0, out.data(), in.data()));
    check_equal(out, want, "shuffles");
  }
  std::vector<double> in(64), out(64), want(64);
  for (int i = 0; i < 64; ++i) in[i] = 1.0 / 3.0 + i * 1e10;
  for (int i = 0; i < 64; ++i) want[i] = (i & 31) == 31 ? in[i] : in[i + 1];
  CHECK_OK(launch(shuffle_double__sim, dim3(1), dim3(64), 0, out.data(), in.data()));
  check_equal(out, want, "shuffle_double");
}

void test_votes() {
  for (unsigned block : {32u, 96u, 40u, 33u, 1u}) {
    for (int density : {0, 1, 2, 3}) {  // none, some, most, all predicates true
      const unsigned blocks = 2, n = blocks * block;
      std::vector<int> pred = random_ints(n, 4, block * 10 + density);
      for (int& p : pred) p = p < density ? 1 : (density == 3 ? 1 : 0);
      std::vector<unsigned> out(3 * n), want, split(n), want_split(n);
      for (unsigned b = 0; b < blocks; ++b)
        for (unsigned t = 0; t < block; ++t) {
          const unsigned base = t & ~31u, lanes = std::min(32u, block - base);
          unsigned ballot = 0, parity = 0;
          for (unsigned l = 0; l < lanes; ++l) {
            const bool p = pred[b * block + base + l] != 0;
            ballot |= unsigned(p) << l;
            if ((l & 1) == (t & 1)) parity |= unsigned(p) << l;
          }
          const unsigned all_lanes = lanes == 32 ? ~0u : (1u << lanes) - 1;
          want.insert(want.end(), {ballot, ballot != 0, ballot == all_lanes});
          want_split[b * block + t] = parity;
        }
      CHECK_OK(launch(votes__sim, dim3(blocks), dim3(block), 0, out.data(), pred.data()));
      CHECK_OK(launch(split_ballot__sim, dim3(blocks), dim3(block), 0, split.data(), pred.data()));
      check_equal(out, want, "votes");
      check_equal(split, want_split, "split_ballot");
    }
  }
}

void test_syncwarp() {
  for (unsigned block : {64u, 40u, 1u}) {
    const std::vector<int> in = random_ints(2 * block, 1000, block);
    std::vector<int> out(2 * block), want(2 * block);
    for (unsigned b = 0; b < 2; ++b)
      for (unsigned t = 0; t < block; ++t) {
        const unsigned base = t & ~31u, lanes = std::min(32u, block - base);
        want[b * block + t] = in[b * block + base + (t - base + 1) % lanes];
      }
    CHECK_OK(launch(warp_rotate__sim, dim3(2), dim3(block), 0, out.data(), in.data()));
    check_equal(out, want, "warp_rotate");
  }
}

void test_atomics() {
  const int n = 100000, nbins = 37;
  const std::vector<int> x = random_ints(n, 1000, 5);
  std::vector<int> bins(nbins, 0), want_bins(nbins, 0);
  int stats[4] = {-1, 1 << 30, -1, 0};  // max, min, CAS slot, CAS winners
  float sum = 0.0f;
  double want_sum = 0.0;
  for (int v : x) ++want_bins[v % nbins], want_sum += v & 15;
  CHECK_OK(launch(histogram__sim, dim3(50), dim3(128), 0, bins.data(), nbins, stats, &sum, x.data(), n));
  check_equal(bins, want_bins, "histogram");
  CHECK(stats[0] == *std::max_element(x.begin(), x.end()));
  CHECK(stats[1] == *std::min_element(x.begin(), x.end()));
  CHECK(stats[2] >= 0 && stats[2] < n);
  CHECK(stats[3] == 1);
  CHECK(sum == static_cast<float>(want_sum));
}

void test_intrinsics_and_half() {
  std::vector<float> out(16);
  CHECK_OK(launch(intrinsics__sim, dim3(1), dim3(1), 0, out.data(), 0.25f));
  const float want[16] = {2.0f, 0.0f, 0.0f, 1.5f, 1.0f, 1.0f, 1.25f, 10.0f, 0.25f, 4294967295.0f,
                          8.0f + 31.0f + 4.0f, 0.25f, -0.05f, 0.2f, 3.0f, 0.25f};
  check_equal(out, std::vector<float>(want, want + 16), "intrinsics");

  struct Case {
    float f;
    unsigned short bits;
  };
  const Case cases[] = {
      {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
      {65519.99f, 0x7bff}, {65520.0f, 0x7c00}, {1e6f, 0x7c00}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
      {5.9604645e-8f, 0x0001}, {2.9802322e-8f, 0x0000},   // 2^-24; 2^-25 ties to even (0)
      {8.940697e-8f, 0x0002},                             // 1.5 * 2^-24 ties to even (2)
      {6.1035156e-5f, 0x0400}, {6.1028975e-5f, 0x0400},   // 2^-14; just below rounds up to it
      {1.0009766f, 0x3c01}, {1.00048828f, 0x3c00},        // 1 + 2^-10; 1 + 2^-11 ties to even
      {1.00146484f, 0x3c02}, {0.1f, 0x2e66}, {-3.14159f, 0xc248}};
  for (const Case& c : cases) {
    const __half h = __float2half(c.f);
    if (h.x != c.bits) {
      fprintf(stderr, "  __float2half(%g) = 0x%04x, want 0x%04x\n", c.f, h.x, c.bits);
      ++g_check_failures;
    }
  }
  CHECK(__float2half(NAN).x == 0x7e00);
  CHECK(std::isnan(__half2float(__half{0x7e00})));
  // Every finite half survives half -> float -> half.
  for (unsigned b = 0; b < 0x10000; ++b) {
    if ((b & 0x7c00) == 0x7c00 && (b & 0x3ff) != 0) continue;  // NaN
    const __half h{static_cast<unsigned short>(b)};
    if (__float2half(__half2float(h)).x != b) {
      fprintf(stderr, "  half 0x%04x does not round-trip\n", b);
      ++g_check_failures;
      break;
    }
  }
  CHECK(__half2float(__half{0x0001}) == std::ldexp(1.0f, -24));
  CHECK(__half2float(__half{0xfbff}) == -65504.0f);
}

void test_divergence_errors() {
  std::vector<float> y(4096);
  std::vector<unsigned> u(64);
  Result r = launch(exit_before_syncthreads__sim, dim3(3), dim3(64), 0, y.data());
  CHECK(r.status == SIM_KERNEL_ERROR);
  CHECK(r.error == "barrier divergence in block (0,0,0): 32 threads exited while 32 wait at __syncthreads");

  r = launch(exit_in_one_block__sim, dim3(4), dim3(40), 0, y.data());
  CHECK(r.status == SIM_KERNEL_ERROR);
  CHECK(r.error == "barrier divergence in block (2,0,0): 1 threads exited while 39 wait at __syncthreads");

  r = launch(exit_before_shuffle__sim, dim3(1), dim3(64), 0, y.data());
  CHECK(r.status == SIM_KERNEL_ERROR);
  CHECK(contains(r.error, "barrier divergence in block (0,0,0): warp 0 lane 0 waits in __shfl_xor_sync "
                          "with mask 0xffffffff but lane 16 has exited"));

  r = launch(syncthreads_vs_shuffle__sim, dim3(1), dim3(32), 0, y.data());
  CHECK(r.status == SIM_KERNEL_ERROR);
  CHECK(contains(r.error, "lane 16 waits in __shfl_down_sync with mask 0xffffffff but lane 0 waits at "
                          "__syncthreads (0 threads exited, 16 wait at __syncthreads, 16 at warp ops)"));

  r = launch(mismatched_warp_ops__sim, dim3(1), dim3(32), 0, u.data());
  CHECK(r.status == SIM_KERNEL_ERROR);
  CHECK(contains(r.error, "warp op mismatch in block (0,0,0) warp 0"));

  // After errors the same OS thread launches normally again.
  std::vector<float> z(100, 0.0f), want(100);
  for (int i = 0; i < 100; ++i) want[i] = 2.0f * i;
  CHECK_OK(launch(exit_without_barrier__sim, dim3(4), dim3(32), 0, z.data(), 100));
  check_equal(z, want, "exit_without_barrier");
  test_block_scan();
}

void test_invalid_launches() {
  std::vector<float> y(100);
  struct Case {
    dim3 grid, block;
    unsigned shared;
    const char* message;
  };
  const Case cases[] = {
      {dim3(1), dim3(0), 0, "invalid launch: blockDim (0,1,1)"},
      {dim3(1), dim3(1025), 0, "invalid launch: blockDim (1025,1,1)"},
      {dim3(1), dim3(32, 32, 2), 0, "invalid launch: blockDim (32,32,2) has 2048 threads, more than 1024"},
      {dim3(1), dim3(1, 1, 65), 0, "invalid launch: blockDim (1,1,65)"},
      {dim3(0), dim3(32), 0, "invalid launch: gridDim (0,1,1)"},
      {dim3(2, 0, 1), dim3(32), 0, "invalid launch: gridDim (2,0,1)"},
      {dim3(1, 65536), dim3(32), 0, "invalid launch: gridDim (1,65536,1)"},
      {dim3(1), dim3(32), 227 * 1024 + 1,
       "invalid launch: 232449 bytes of dynamic shared memory, more than 232448"},
  };
  for (const Case& c : cases) {
    const Result r = launch(exit_without_barrier__sim, c.grid, c.block, c.shared, y.data(), 100);
    CHECK(r.status == SIM_INVALID_LAUNCH);
    if (!contains(r.error, c.message)) {
      fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", r.error.c_str(), c.message);
      ++g_check_failures;
    }
  }
  CHECK(sim_launch(nullptr, nullptr, 1, 1, 1, 1, 1, 1, 0, nullptr, 0) == SIM_INVALID_LAUNCH);
}

// Two OS threads run kernels with static __shared__ at once: each needs its own
// copy of the shared arrays.
void test_concurrent_launches() {
  int failures[2] = {0, 0};
  auto worker = [&](int id) {
    const int n = 4096;
    for (int iter = 0; iter < 40; ++iter) {
      const std::vector<float> x = random_floats(n, 100 * id + iter);
      std::vector<float> y(n), want(n), t(n), want_t(n);
      for (int base = 0; base < n; base += 256) {
        float acc = 0.0f;
        for (int i = base; i < base + 256; ++i) want[i] = acc += x[i];
      }
      for (int r = 0; r < 64; ++r)
        for (int c = 0; c < 64; ++c) want_t[c * 64 + r] = x[r * 64 + c];
      float *yp = y.data(), *tp = t.data();
      const float* xp = x.data();
      int len = n, rows = 64, cols = 64;
      void* scan_args[] = {&yp, &xp, &len};
      void* transpose_args[] = {&tp, &xp, &rows, &cols};
      const int scan = sim_launch(block_scan__sim, scan_args, n / 256, 1, 1, 256, 1, 1, 0, nullptr, 0);
      const int transposed = sim_launch(transpose__sim, transpose_args, 2, 2, 1, 32, 8, 1, 0, nullptr, 0);
      if (scan != SIM_OK || y != want || transposed != SIM_OK || t != want_t) ++failures[id];
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  CHECK(failures[0] == 0);
  CHECK(failures[1] == 0);
}

// 1000 blocks of 256 threads, each through block_reduce_sum (two barriers and
// five shuffles per thread).
void test_throughput() {
  const unsigned blocks = 1000, block = 256, n = blocks * block;
  const std::vector<float> x = random_floats(n, 9);
  std::vector<float> totals(n);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_OK(launch(block_sums__sim, dim3(blocks), dim3(block), 0, totals.data(), x.data(), int(n)));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float s0 = 0.0f;
  for (unsigned i = 0; i < block; ++i) s0 += x[i];
  CHECK(totals[0] == s0);
  printf("  block_sums over %u blocks x %u threads: %.1f ms\n", blocks, block, s * 1e3);
}


// ---------------------------------------------------------------- tensor cores
// common.cuh's wrappers against references written here independently: the
// roundings by scaling to the target's last mantissa place and rounding the
// integer (nearbyint: ties to even; round: ties away), products in double.

// x rounded to `mant` mantissa bits with ties to even (or away from zero),
// with the exponent floored at `emin` (subnormals of the target format).
double round_to(double x, int mant, int emin, bool ties_away) {
  if (x == 0.0 || !std::isfinite(x)) return x;
  const int e = std::max(static_cast<int>(std::floor(std::log2(std::fabs(x)))), emin);
  const double q = std::ldexp(1.0, e - mant);
  return (ties_away ? std::round(x / q) : std::nearbyint(x / q)) * q;
}
double ref_tf32(float x) { return round_to(x, 10, -126, true); }
double ref_bf16(float x) { return round_to(x, 7, -126, false); }
double ref_f16(float x) {
  const double r = round_to(x, 10, -14, false);
  return std::fabs(r) >= 65520.0 ? std::copysign(INFINITY, x) : r;
}
float bits_f32(unsigned b) { float f; memcpy(&f, &b, 4); return f; }
float bf16_f32(unsigned short h) { return bits_f32(static_cast<unsigned>(h) << 16); }
float f16_f32(unsigned short h) {  // IEEE binary16, independently of sim_runtime.h
  const int e = (h >> 10) & 31, m = h & 1023;
  const double mag = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
  return static_cast<float>(h & 0x8000 ? -mag : mag);
}

// Values with full 24-bit mantissas over a few binades, both signs.
std::vector<float> random_reals(size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    const float m = 1.0f + static_cast<float>(seed >> 9) / 8388608.0f;
    seed = seed * 1664525u + 1013904223u;
    x = std::ldexp(m, static_cast<int>(seed >> 29) - 4) * ((seed >> 8) & 1 ? -1.0f : 1.0f);
  }
  return v;
}

void test_tc_conversions() {
  std::vector<float> x = random_reals(200, 21);
  // Ties of each format (exact halves of the last place), both signs,
  // subnormal halves, overflow to inf, inf and NaN.
  const float special[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -(1.0f + 0x1p-11f), 1.0f + 0x1p-8f,
                           1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 0x1p-20f * 1.37f, 0x1p-25f * 3.0f,
                           65519.0f, 65520.0f, 1e6f, -0.0f, INFINITY, -INFINITY, NAN, 0x1p-130f};
  x.insert(x.end(), std::begin(special), std::end(special));
  const int n = static_cast<int>(x.size());
  std::vector<unsigned> out(4 * n);
  CHECK_OK(launch(tc_convert__sim, dim3(2), dim3(64), 0, out.data(), x.data(), n));
  int bad = 0;
  for (int i = 0; i < n && bad < 5; ++i) {
    const float y = x[(i + 1) % n];
    const float tf = bits_f32(out[4 * i]);
    const bool tf_ok = std::isnan(x[i]) ? std::isnan(tf) : (tf == ref_tf32(x[i]) && (out[4 * i] & 0x1fffu) == 0);
    const unsigned bf = out[4 * i + 1], hf = out[4 * i + 2];
    auto same = [](double got, double want) { return std::isnan(want) ? std::isnan(got) : got == want; };
    const bool bf_ok = same(bf16_f32(bf & 0xffffu), ref_bf16(x[i])) && same(bf16_f32(bf >> 16), ref_bf16(y));
    const bool hf_ok = same(f16_f32(hf & 0xffffu), ref_f16(x[i])) && same(f16_f32(hf >> 16), ref_f16(y));
    if (!(tf_ok && bf_ok && hf_ok)) {
      fprintf(stderr, "  x = %a: tf32 %a (want %a), bf16 %a (want %a), f16 %a (want %a)\n", x[i], tf,
              ref_tf32(x[i]), bf16_f32(bf & 0xffffu), ref_bf16(x[i]), f16_f32(hf & 0xffffu), ref_f16(x[i]));
      ++bad;
    }
  }
  CHECK(bad == 0);
}

// D = A·B + C for one m16n8kK tile, operands rounded by `round`, products
// and sums in double. The emulation sums K exact products in FP32: each
// partial sum is within 2^-24 of Σ|products| so far, so |err| ≤ K·2^-24·Σ|a·b|
// + 2^-24·|c| (bound used with K = 16 below).
void check_mma(Entry* entry, int K, double (*round)(float), bool ldmatrix, int b_trans, int mode, unsigned seed,
               const char* what) {
  const std::vector<float> a = random_reals(16 * K, seed), b = random_reals(K * 8, seed + 1),
                           c = random_reals(16 * 8, seed + 2);
  std::vector<float> d(16 * 8, NAN);
  if (ldmatrix)
    CHECK_OK(launch(entry, dim3(1), dim3(32), 0, d.data(), a.data(), b.data(), c.data(), b_trans, mode));
  else
    CHECK_OK(launch(entry, dim3(1), dim3(32), 0, d.data(), a.data(), b.data(), c.data()));
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double want = c[i * 8 + j], mag = 0.0;
      for (int k = 0; k < K; ++k) {
        const double p = round(a[i * K + k]) * round(b[k * 8 + j]);
        want += p;
        mag += std::fabs(p);
      }
      const double tol = 16 * 0x1p-24 * (mag + std::fabs(c[i * 8 + j]));
      if (!(std::fabs(d[i * 8 + j] - want) <= tol)) {
        fprintf(stderr, "  %s: D[%d][%d] = %.9g, want %.9g (tolerance %.3g)\n", what, i, j, d[i * 8 + j], want,
                tol);
        ++g_check_failures;
        return;
      }
    }
}

void test_tc_mma_fragments() {
  check_mma(tc_mma_manual_tf32__sim, 8, ref_tf32, false, 0, 0, 31, "tf32 m16n8k8");
  check_mma(tc_mma_manual_bf16__sim, 16, ref_bf16, false, 0, 0, 41, "bf16 m16n8k16");
  check_mma(tc_mma_manual_f16__sim, 16, ref_f16, false, 0, 0, 51, "f16 m16n8k16");
}

void test_tc_ldmatrix() {
  for (int mode = 0; mode < 2; ++mode) {
    check_mma(tc_mma_ldmatrix_tf32__sim, 8, ref_tf32, true, 0, mode, 61 + mode, "tf32 ldmatrix");
    for (int trans = 0; trans < 2; ++trans) {
      check_mma(tc_mma_ldmatrix_bf16__sim, 16, ref_bf16, true, trans, mode, 71 + mode, "bf16 ldmatrix");
      check_mma(tc_mma_ldmatrix_f16__sim, 16, ref_f16, true, trans, mode, 81 + mode, "f16 ldmatrix");
    }
  }
}

void test_tc_cp_async() {
  const int n = 37;  // 10 chunks, the last one holding a single float
  const int chunks = (n + 3) / 4, half = (chunks + 1) / 2;
  const std::vector<float> in = random_reals(n, 91);
  std::vector<float> out(4 * chunks, NAN), early(4 * chunks, 0.0f);
  CHECK_OK(launch(tc_cp_async_copy__sim, dim3(1), dim3(8), 4 * 4 * chunks, out.data(), early.data(), in.data(), n));
  std::vector<float> want(in);
  want.resize(4 * chunks, 0.0f);  // zero fill past src_bytes
  check_equal(out, want, "cp.async copy");
  // Waiting for the first group only must not have delivered the second.
  for (int i = 4 * half; i < 4 * chunks; ++i) CHECK(std::isnan(early[i]));
}

}  // namespace

int main() {
  const struct {
    const char* name;
    void (*fn)();
  } tests[] = {
      {"per_file_helpers", test_per_file_helpers},
      {"indexing", test_indexing},
      {"transpose_static_shared", test_transpose_static_shared},
      {"dynamic_shared", test_dynamic_shared},
      {"shared_poison_and_limit", test_shared_poison_and_limit},
      {"overruns_fault", test_overruns_fault},
      {"block_scan", test_block_scan},
      {"block_reduce_sum", test_block_reduce_sum},
      {"warp_sums", test_warp_sums},
      {"shuffles", test_shuffles},
      {"votes", test_votes},
      {"syncwarp", test_syncwarp},
      {"atomics", test_atomics},
      {"intrinsics_and_half", test_intrinsics_and_half},
      {"divergence_errors", test_divergence_errors},
      {"invalid_launches", test_invalid_launches},
      {"concurrent_launches", test_concurrent_launches},
      {"throughput", test_throughput},
      {"tc_conversions", test_tc_conversions},
      {"tc_mma_fragments", test_tc_mma_fragments},
      {"tc_ldmatrix", test_tc_ldmatrix},
      {"tc_cp_async", test_tc_cp_async},
  };
  int passed = 0, failed = 0;
  for (const auto& t : tests) {
    const int before = g_check_failures;
    const auto t0 = std::chrono::steady_clock::now();
    t.fn();
    const double ms = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3;
    const bool ok = g_check_failures == before;
    printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", t.name, ms);
    ++(ok ? passed : failed);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
