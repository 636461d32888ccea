// Simulator build of basics.cu with its trampolines, in the form build.rs
// generates (see ../README.md): the kernel file included as it is inside an
// unnamed namespace, then one trampoline per `extern "C" __global__` function.
namespace {
#include "basics.cu"
}  // namespace

extern "C" void basics_tag__sim(void** a) { sim_invoke(basics_tag, a); }
extern "C" void record_indices__sim(void** a) { sim_invoke(record_indices, a); }
extern "C" void transpose__sim(void** a) { sim_invoke(transpose, a); }
extern "C" void reverse_chunks__sim(void** a) { sim_invoke(reverse_chunks, a); }
extern "C" void peek_shared__sim(void** a) { sim_invoke(peek_shared, a); }
extern "C" void block_scan__sim(void** a) { sim_invoke(block_scan, a); }
extern "C" void block_sums__sim(void** a) { sim_invoke(block_sums, a); }
extern "C" void histogram__sim(void** a) { sim_invoke(histogram, a); }
// The same trampoline spelled out argument by argument, as a generator that
// copies parameter types from the signature would write it.
extern "C" void intrinsics__sim(void** a) { intrinsics(*(float**)a[0], *(float*)a[1]); }
