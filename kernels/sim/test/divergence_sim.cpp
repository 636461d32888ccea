// Simulator build of divergence.cu with its trampolines (see basics_sim.cpp).
namespace {
#include "divergence.cu"
}  // namespace

extern "C" void exit_before_syncthreads__sim(void** a) { sim_invoke(exit_before_syncthreads, a); }
extern "C" void exit_in_one_block__sim(void** a) { sim_invoke(exit_in_one_block, a); }
extern "C" void exit_before_shuffle__sim(void** a) { sim_invoke(exit_before_shuffle, a); }
extern "C" void syncthreads_vs_shuffle__sim(void** a) { sim_invoke(syncthreads_vs_shuffle, a); }
extern "C" void mismatched_warp_ops__sim(void** a) { sim_invoke(mismatched_warp_ops, a); }
extern "C" void exit_without_barrier__sim(void** a) { sim_invoke(exit_without_barrier, a); }
extern "C" void stack_overflow__sim(void** a) { sim_invoke(stack_overflow, a); }
