#!/usr/bin/env bash
# Run ON THE GPU MACHINE (device tool, `carry: [".gpu"]`), after
# bench/gpu-prepare.sh here. Unpacks the binaries, finds the machine's own
# libnvrtc.so.13, runs every kernel test on GPU 0 (the tests compare Cuda
# with the CPU reference), the golden tests, `stylegan2 bench`, and the
# PyTorch/cuDNN peer; everything lands in $OUT for bench/results/.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
work=/tmp/sg2 && rm -rf $work && mkdir -p $work && tar -C $work -xJf .gpu/pack.tar.xz
nvrtc=$(find / -name 'libnvrtc.so.13*' -not -path '*/proc/*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH="$(dirname "$nvrtc"):${LD_LIBRARY_PATH:-}"
# NVRTC before 13.3 has no bundled headers: use the toolkit's (cuda_fp16.h).
if command -v nvcc >/dev/null; then
  export STYLEGAN2_CUDA_INCLUDE="$(dirname "$(dirname "$(command -v nvcc)")")/include"
fi
# The binaries were built elsewhere: their compiled-in golden path is not
# here, the working tree's tests/data/golden is. A GPU machine must run the
# GPU part of every test: a missing GPU fails instead of saying SKIPPED.
export STYLEGAN2_GOLDEN_DIR=$PWD/tests/data/golden STYLEGAN2_KERNEL_CACHE=/tmp/sg2-cache
export STYLEGAN2_REQUIRE=gpu,nvrtc
log=$OUT/gpu-tests.log
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "nvrtc: $nvrtc; headers: ${STYLEGAN2_CUDA_INCLUDE:-bundled}"; } >"$log"
for t in $work/bin/*; do
  [ "$(basename "$t")" = stylegan2 ] && continue
  echo "== $(basename "$t")" >>"$log"
  "$t" --test-threads=1 >>"$log" 2>&1; echo "exit $?" >>"$log"
done
grep -E '^(==|exit|test result)' "$log"
$work/bin/stylegan2 bench --device cuda --out "$OUT/bench-cuda.json" 2>&1 | tee "$OUT/bench-cuda.txt"
python3 $work/torch_modconv.py --cases "$OUT/bench-cuda.json" --out "$OUT/bench-torch.json" 2>&1 |
  tee "$OUT/bench-torch.txt"
python3 $work/compare.py "$OUT/bench-cuda.json" "$OUT/bench-torch.json" >"$OUT/compare.md" 2>&1
cat "$OUT/compare.md"
