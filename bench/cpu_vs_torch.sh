#!/usr/bin/env bash
# The crate's CPU bench beside the official PyTorch code (bench/torch_cpu_peer.py),
# alternating runs on the same CPU, and a table of medians and ratios.
#
#   bash bench/cpu_vs_torch.sh OFFICIAL_CHECKOUT [OUT_DIR]
#
# Env: PYTHON (with torch, safetensors), BIN (default target/release/stylegan2),
# ROUNDS (3), ITERS (3, timed runs per row inside each run), THREADS (2: rayon
# and torch threads), ROWS (subset of: tiny32 tiny64 auto64).
set -euo pipefail
OFFICIAL=${1:?usage: bench/cpu_vs_torch.sh OFFICIAL_CHECKOUT [OUT_DIR]}
OUT=${2:-cpu-vs-torch}
PYTHON=${PYTHON:-python3}
BIN=${BIN:-target/release/stylegan2}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-3}
THREADS=${THREADS:-2}
ROWS=${ROWS:-"tiny32 tiny64 auto64"}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"

spec() { # row -> preset resolution sections
  case $1 in
    tiny32) echo "tiny 32 generator,train" ;;
    tiny64) echo "tiny 64 generator,train" ;;
    auto64) echo "auto 64 generator" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}

for row in $ROWS; do
  read -r preset res only < <(spec "$row")
  [ -f "$OUT/$row.safetensors" ] || "$BIN" init --cfg "$preset" --resolution "$res" --out "$OUT/$row.safetensors" >/dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  for row in $ROWS; do
    read -r preset res only < <(spec "$row")
    echo "== round $round $row: crate" >&2
    RAYON_NUM_THREADS=$THREADS "$BIN" bench --device cpu --only "$only" --cfg "$preset" \
      --resolution "$res" --batch 8 --iters "$ITERS" --out "$OUT/crate-$row-$round.json" \
      | tee "$OUT/crate-$row-$round.txt" >&2
    echo "== round $round $row: torch" >&2
    OMP_NUM_THREADS=$THREADS "$PYTHON" "$HERE/torch_cpu_peer.py" --official "$OFFICIAL" \
      --network "$OUT/$row.safetensors" --batch 8 --iters "$ITERS" --threads "$THREADS" \
      --only "$only" --out "$OUT/torch-$row-$round.json" | tee "$OUT/torch-$row-$round.txt" >&2
  done
done

python3 - "$OUT" "$ROUNDS" "$ROWS" <<'PY'
import json, statistics, sys
out, rounds, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def ips(path, section, path_name, pas):
    d = json.load(open(path))
    for r in d["rows"]:
        if r["section"] == section and r["path"] == path_name and r["pass"] == pas:
            return r["images_per_s"]
    return None
print("| measurement (batch 8, images/s, median of %d alternating runs) | crate | official PyTorch | ratio |" % rounds)
print("| --- | --- | --- | --- |")
for row in rows:
    items = [("generator", "unfused", "torch-unfused", "fwd", "G forward, unfused vs fused_modconv=False")]
    if row != "auto64":
        items.append(("train", "unfused", "torch-unfused", "amortized", "training step, amortized"))
    for section, cp, tp, pas, label in items:
        c = [ips(f"{out}/crate-{row}-{k}.json", section, cp, pas) for k in range(1, rounds + 1)]
        t = [ips(f"{out}/torch-{row}-{k}.json", section, tp, pas) for k in range(1, rounds + 1)]
        c, t = statistics.median(c), statistics.median(t)
        print(f"| {label}, {row} | {c:.1f} | {t:.1f} | {c / t:.2f} |")
PY
