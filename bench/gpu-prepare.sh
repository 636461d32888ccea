#!/usr/bin/env bash
# Run HERE (the machine with Rust, no GPU) before a GPU session: builds the
# kernel-device test binaries and the CLI, strips their debug info, and
# packs them into .gpu/ (ignored by git), small enough
# to travel with the device tool's `carry: [".gpu"]` (64 MiB limit).
# Then on the GPU machine: `bash bench/gpu-run.sh` (writes to $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info && grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
tests=(cuda_device kernels_elementwise kernels_conv kernels_matmul kernels_fir kernels_bias_act
       kernels_noise kernels_modconv kernels_modconv_tc kernels_conv_tc kernels_adam golden_ops_fir
       golden_ops_modconv golden_model)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
# cargo prints each test executable's path with --message-format=json.
cargo test --release --no-run "${args[@]}" --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]:
        print(m["target"]["name"], m["executable"])' >/tmp/gpu-tests.txt
cargo build --release --bin stylegan2
rm -rf .gpu/stage && mkdir -p .gpu/stage/bin
while read -r name exe; do cp "$exe" ".gpu/stage/bin/$name"; done </tmp/gpu-tests.txt
cp target/release/stylegan2 .gpu/stage/bin/stylegan2
strip .gpu/stage/bin/*
cp bench/torch_modconv.py bench/compare.py .gpu/stage/
tar -C .gpu/stage -cJf .gpu/pack.tar.xz .
rm -rf .gpu/stage
ls -la .gpu
