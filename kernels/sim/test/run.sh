#!/usr/bin/env bash
# Builds and runs the simulator's tests with the host C++ compiler; no GPU and
# no cargo needed. Runs them twice: with the x86-64 stack switch (the default
# there) and with the portable ucontext one. With NVRTC_LIB pointing at a
# libnvrtc.so, also checks that common.cuh and the test kernels compile for sm_90.
#
#   bash kernels/sim/test/run.sh            CXX=clang++ bash kernels/sim/test/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kernels=$(cd "$here/../.." && pwd)
cxx=${CXX:-g++}
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

flags=(-std=c++17 -O2 -g -fstack-clash-protection -Wall -Wextra -Werror -I "$kernels")
# Kernel files are compiled as in the crate's build: sim_runtime.h force-included.
for k in basics warp divergence tensor_core; do
  "$cxx" "${flags[@]}" -include "$kernels/sim/sim_runtime.h" -c "$here/${k}_sim.cpp" -o "$build/$k.o" &
done
"$cxx" "${flags[@]}" -c "$here/test_main.cpp" -o "$build/test_main.o" &
"$cxx" "${flags[@]}" -c "$kernels/sim/sim_runtime.cpp" -o "$build/runtime.o" &
"$cxx" "${flags[@]}" -DSIM_USE_UCONTEXT -c "$kernels/sim/sim_runtime.cpp" -o "$build/runtime_ucontext.o" &
for job in $(jobs -p); do wait "$job"; done

objs=("$build"/basics.o "$build"/warp.o "$build"/divergence.o "$build"/tensor_core.o "$build"/test_main.o)
"$cxx" "${objs[@]}" "$build/runtime.o" -pthread -o "$build/test"
"$cxx" "${objs[@]}" "$build/runtime_ucontext.o" -pthread -o "$build/test_ucontext"

echo "== simulator tests"
"$build/test"
echo "== simulator tests, ucontext fibers"
"$build/test_ucontext"

if [[ -n "${NVRTC_LIB:-}" ]]; then
  echo "== NVRTC compile check ($NVRTC_LIB)"
  "$cxx" -std=c++17 -O1 "$here/nvrtc_check.cpp" -ldl -o "$build/nvrtc_check"
  "$build/nvrtc_check" "$NVRTC_LIB" "$kernels" "$here"/basics.cu "$here"/warp.cu "$here"/divergence.cu "$here"/tensor_core.cu
else
  echo "== NVRTC compile check skipped (set NVRTC_LIB=/path/to/libnvrtc.so.13)"
fi
