// Simulator build of warp.cu with its trampolines (see basics_sim.cpp).
namespace {
#include "warp.cu"
}  // namespace

extern "C" void warp_tag__sim(void** a) { sim_invoke(warp_tag, a); }
extern "C" void shuffles__sim(void** a) { sim_invoke(shuffles, a); }
extern "C" void shuffle_double__sim(void** a) { sim_invoke(shuffle_double, a); }
extern "C" void votes__sim(void** a) { sim_invoke(votes, a); }
extern "C" void split_ballot__sim(void** a) { sim_invoke(split_ballot, a); }
extern "C" void warp_rotate__sim(void** a) { sim_invoke(warp_rotate, a); }
extern "C" void sum_shfl_down__sim(void** a) { sim_invoke(sum_shfl_down, a); }
extern "C" void sum_shfl_xor__sim(void** a) { sim_invoke(sum_shfl_xor, a); }
extern "C" void sum_shared_tree__sim(void** a) { sim_invoke(sum_shared_tree, a); }
extern "C" void warp_max__sim(void** a) { sim_invoke(warp_max, a); }
