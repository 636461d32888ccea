#!/usr/bin/env python3
"""Side-by-side Markdown of `stylegan2 bench` and `bench/torch_modconv.py` JSON.

    python3 bench/compare.py bench.json torch_modconv.json > table.md

Modconv: one line per (layer, pass), the median ms of every path of every
file, the best stylegan2 modulated path over the best torch one and
stylegan2's conv2d over torch's (> 1: the Rust kernels are faster), and the
row's roofline floor (the larger of floor_compute_ms and floor_memory_ms of
the first file that has them: the fastest the row can run at that precision). Generator and train rows are listed as they are.
Standard library only.
"""

import argparse
import json
import sys


def load(path):
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") != "stylegan2-bench/2":
        sys.exit(f"compare.py: {path} is not stylegan2-bench/2 JSON (format {doc.get('format')!r})")
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="stylegan2-bench/2 JSON files (stylegan2 bench, torch_modconv.py)")
    a = ap.parse_args()
    docs = [load(p) for p in a.files]

    for p, d in zip(a.files, docs):
        extra = ""
        if d["implementation"] == "torch":
            extra = f", torch {d.get('torch_version')}, cuDNN {d.get('cudnn_version')}, TF32 {d.get('tf32')}"
        peak = f", peak {d['peak_tflops']} TFLOP/s ({d['peak_source']})" if d.get("peak_tflops") else ""
        print(f"- `{p}`: {d['implementation']} on {d['device']} ({d['device_name']}){extra}, "
              f"median of {d['iterations']}{peak}")
    print()

    cols = []  # (implementation, path)
    cells = {}  # (case, pass) -> {(impl, path): row}
    order = []
    for d in docs:
        for r in d["rows"]:
            if r["section"] != "modconv":
                continue
            col = (d["implementation"], r["path"])
            if col not in cols:
                cols.append(col)
            key = (r["case"], r["pass"])
            if key not in cells:
                cells[key] = {}
                order.append(key)
            cells[key][col] = r
    cases = list(dict.fromkeys(c for c, _ in order))
    passes = ["fwd", "bwd", "fwd+bwd"]
    order.sort(key=lambda k: (cases.index(k[0]), passes.index(k[1]) if k[1] in passes else len(passes)))
    if order:
        have_torch = any(i == "torch" for i, _ in cols)
        head = ["layer", "pass"] + [f"{p} ms" for _, p in cols]
        if have_torch:
            head += ["best ours / best torch", "conv2d ours / torch"]
        head.append("floor ms")
        print("### modulated convolution (median ms; lower is better)\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for key in order:
            row = cells[key]
            line = [key[0], key[1]]
            for col in cols:
                r = row.get(col)
                line.append("" if r is None else f"{r['median_ms']:.3f}")
            if have_torch:
                ours = [r["median_ms"] for (i, p), r in row.items() if i == "stylegan2" and p != "conv2d"]
                theirs = [r["median_ms"] for (i, p), r in row.items() if i == "torch" and p != "torch-conv2d"]
                line.append(f"{min(theirs) / min(ours):.2f}x" if ours and theirs else "")
                c_ours = [r["median_ms"] for (i, p), r in row.items() if i == "stylegan2" and p == "conv2d"]
                c_theirs = [r["median_ms"] for (i, p), r in row.items() if i == "torch" and p == "torch-conv2d"]
                line.append(f"{c_theirs[0] / c_ours[0]:.2f}x" if c_ours and c_theirs else "")
            floors = [
                max(v for v in (r.get("floor_compute_ms"), r.get("floor_memory_ms")) if v is not None)
                for r in row.values()
                if r.get("floor_compute_ms") is not None or r.get("floor_memory_ms") is not None
            ]
            line.append(f"{floors[0]:.4f}" if floors else "")
            print("| " + " | ".join(line) + " |")
        print()

    for section, title in [("generator", "generator forward"), ("train", "training step")]:
        rows = [(d, r) for d in docs for r in d["rows"] if r["section"] == section]
        if not rows:
            continue
        print(f"### {title}\n")
        print("| case | path | pass | ms | img/s | GFLOP/s | vs unfused | % peak |")
        print("|---|---|---|---|---|---|---|---|")
        for _, r in rows:
            def f(v, fmt):
                return "" if v is None else fmt.format(v)
            print(f"| {r['case']} | {r['path']} | {r['pass']} | {r['median_ms']:.2f} | "
                  f"{f(r['images_per_s'], '{:.2f}')} | {f(r['gflops'], '{:.1f}')} | "
                  f"{f(r['speedup_vs_unfused'], '{:.2f}x')} | "
                  f"{f(None if r['fraction_of_peak'] is None else 100 * r['fraction_of_peak'], '{:.1f}%')} |")
        print()


if __name__ == "__main__":
    main()
