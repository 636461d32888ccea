// Simulator build of tensor_core.cu with its trampolines (see basics_sim.cpp).
namespace {
#include "tensor_core.cu"
}  // namespace

extern "C" void tc_convert__sim(void** a) { sim_invoke(tc_convert, a); }
extern "C" void tc_mma_manual_tf32__sim(void** a) { sim_invoke(tc_mma_manual_tf32, a); }
extern "C" void tc_mma_manual_bf16__sim(void** a) { sim_invoke(tc_mma_manual_bf16, a); }
extern "C" void tc_mma_manual_f16__sim(void** a) { sim_invoke(tc_mma_manual_f16, a); }
extern "C" void tc_mma_ldmatrix_tf32__sim(void** a) { sim_invoke(tc_mma_ldmatrix_tf32, a); }
extern "C" void tc_mma_ldmatrix_bf16__sim(void** a) { sim_invoke(tc_mma_ldmatrix_bf16, a); }
extern "C" void tc_mma_ldmatrix_f16__sim(void** a) { sim_invoke(tc_mma_ldmatrix_f16, a); }
extern "C" void tc_cp_async_copy__sim(void** a) { sim_invoke(tc_cp_async_copy, a); }
