#!/usr/bin/env python3
"""PyTorch/cuDNN peer of `stylegan2 bench --only modconv`.

Times the modulated convolution at the same layer shapes as `stylegan2 bench`
with the two paths of the official StyleGAN2-ADA `modulated_conv2d`
(torch_utils/misc + training/networks.py):

  torch-grouped  fused_modconv=True: per-sample weights w·s·d, one grouped
                 convolution with groups = N;
  torch-unfused  fused_modconv=False: x·s -> conv2d -> ·d;
  torch-conv2d   the plain F.conv2d of the same shape (no modulation; layers
                 without up-sampling), the floor.

Passes: fwd (no graph), bwd (torch.autograd.grad of x, weight and styles for a
random upstream gradient on a graph built once, retain_graph=True, as the Rust
bench does), fwd+bwd (both, fresh graph each run). Times are medians of CUDA
event pairs after warm-up. cuDNN runs with benchmark=True (as the official
training loop) and TF32 off (as the official default allow_tf32=False; the
Rust kernels are FP32 too); --tf32 turns it on.

Precision rows (--precisions, default tf32,bf16,f16): every path again
(both official paths and the plain conv2d), forward and backward, pass
"fwd <precision>" / "bwd <precision>" as the Rust bench's rows at that
precision: tf32 = FP32 tensors with cuDNN TF32 allowed (the FP32 rows run
with it off: cuDNN allow_tf32 off/on); bf16/f16 = tensors and weights in that
dtype, channels_last, as the official FP16 layers run (use_fp16 casts x and
the weight to float16 with memory_format=channels_last).

Roofline floors (every row, as src/bench.rs): floor_compute_ms = FLOPs / the
peak of the row's precision (FP32 CUDA cores, TF32 or FP16/BF16 dense tensor
cores) and floor_memory_ms = minimum bytes (x, w, y once; bwd: gy, x, w read,
gx, gw written; at the row's element size) / memory bandwidth, for the GPUs
the Rust bench knows by name (H100, H200, A100); null elsewhere.

Up-sampling layers follow the official conv2d_resample: a transposed
convolution (stride 2) then the [1,3,3,1] FIR with gain 4 — here as the
upfirdn2d reference implementation (pad + depthwise conv2d), since the
official custom CUDA upfirdn2d plugin is not part of PyTorch.

FLOPs per row are the Rust bench's nominal counts (module doc of
src/bench.rs): the convolution at the output resolution, bwd = 2x fwd,
fwd+bwd = 3x fwd, so GFLOP/s compare across implementations as inverse times.

Output: JSON in the `stylegan2-bench/2` row format with "implementation":
"torch". Cases come from a `stylegan2 bench` JSON (--cases bench.json, the
recommended way: the shapes are then exactly those of that run) or from the
mirror of src/bench.rs `cases()` below (--scale full|quick|tiny).

torch is imported only when timing, so --help and --list-cases work without it.
"""

import argparse
import json
import sys


def mirror_cases(scale):
    """The mirror of `stylegan2::bench::cases(scale)` (src/bench.rs)."""
    c = {"full": lambda f: f, "quick": lambda f: f // 8, "tiny": lambda f: f // 64}[scale]
    r = (lambda f: f // 4) if scale == "tiny" else (lambda f: f)
    batch = 2 if scale == "tiny" else 4
    conv3 = dict(up=1, kernel=3, padding=1, demodulate=True, flip_weight=True)
    up2 = dict(up=2, kernel=3, padding=1, demodulate=True, flip_weight=False)
    torgb = dict(up=1, kernel=1, padding=0, demodulate=False, flip_weight=True)
    rows = [
        ("conv 8x8", c(512), c(512), r(8), conv3),
        ("conv 32x32", c(512), c(512), r(32), conv3),
        ("conv 64x64", c(256), c(256), r(64), conv3),
        ("conv up2 32->64", c(512), c(256), r(32), up2),
        ("torgb 64x64", c(256), 3, r(64), torgb),
    ]
    out = []
    for name, cin, cout, res, p in rows:
        case = dict(name=name, batch=batch, cin=cin, cout=cout, res=res, **p)
        case["flops_fwd"] = float(flops(case))
        out.append(case)
    return out


def flops(case):
    """Nominal FLOPs of the forward: 2·N·Cout·Cin·k²·(res·up)²."""
    o = case["res"] * case["up"]
    k = case["kernel"]
    return 2 * case["batch"] * case["cout"] * case["cin"] * k * k * o * o


# Datasheet peaks by driver name, most specific first, mirroring src/bench.rs
# (Peak::known, tensor_core_peak, memory_bandwidth): (keys, FP32, TF32,
# FP16/BF16 TFLOP/s, TB/s); None where bench.rs has no figure.
PEAKS = [
    (("H200", "NVL"), 60.0, None, None, 4.8),
    (("H200",), 67.0, 494.7, 989.4, 4.8),
    (("H100", "PCIE"), 51.0, 378.0, 756.0, 2.0),
    (("H100", "NVL"), 60.0, None, None, 3.9),
    (("H100",), 67.0, 494.7, 989.4, 3.35),
    (("A100", "80GB"), 19.5, 156.0, 312.0, 2.039),
    (("A100",), 19.5, 156.0, 312.0, 1.555),
]


def peaks(device_name):
    """(peak TFLOP/s by precision name, bandwidth TB/s) of a known GPU, else ({}, None)."""
    n = device_name.upper()
    for keys, f32, tf32, half, bw in PEAKS:
        if all(k in n for k in keys):
            return {"f32": f32, "tf32": tf32, "bf16": half, "f16": half}, bw
    return {}, None


def min_bytes(case, elem):
    """Minimum traffic of (fwd, bwd) in bytes: x, w, y once; bwd gy, x, w read, gx, gw written."""
    k, o = case["kernel"], case["res"] * case["up"]
    x = case["batch"] * case["cin"] * case["res"] ** 2
    w = case["cout"] * case["cin"] * k * k
    y = case["batch"] * case["cout"] * o * o
    return elem * (x + w + y), elem * (y + 2 * x + 2 * w)


def load_cases(path):
    with open(path) as f:
        doc = json.load(f)
    mc = doc.get("modconv")
    if not mc or not mc.get("cases"):
        sys.exit(f"torch_modconv.py: {path} has no modconv cases (run `stylegan2 bench` with the modconv section)")
    return mc["cases"]


def import_torch():
    try:
        import torch  # noqa: F401
        import torch.nn.functional  # noqa: F401
    except ImportError as e:
        sys.exit(
            f"torch_modconv.py: PyTorch is not installed ({e}); "
            "run this on the GPU machine (pip install torch), or use --list-cases"
        )
    return torch


def make_ops(torch):
    F = torch.nn.functional

    def setup_filter(device):
        f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
        f = f.ger(f)
        return f / f.sum()

    def upfirdn2d_ref(x, f, pad, gain):
        # Official upfirdn2d _upfirdn2d_ref with up = down = 1.
        px0, px1, py0, py1 = pad
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
        f = (f * gain).to(x.dtype)
        # Symmetric filter: flip_filter does not matter.
        f = f[None, None].repeat([x.shape[1], 1, 1, 1])
        return F.conv2d(x, f, groups=x.shape[1])

    def conv2d_resample(x, w, f, up, padding, groups, flip_weight):
        # Official conv2d_resample for up in {1, 2}, down = 1.
        out_ch, in_per_group, kh, kw = w.shape
        if up == 1:
            if not flip_weight and kw > 1:
                w = w.flip([2, 3])
            return F.conv2d(x, w, padding=padding, groups=groups)
        fw = f.shape[-1]
        px0 = py0 = padding + (fw + up - 1) // 2
        px1 = py1 = padding + (fw - up) // 2
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        # _conv2d_wrapper(transpose=True, flip_weight=not flip_weight).
        if flip_weight and kw > 1:
            w = w.flip([2, 3])
        x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=groups)
        return upfirdn2d_ref(x, f, [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)

    def modulated_conv2d(x, weight, styles, f, case, fused_modconv):
        # Official training/networks.py modulated_conv2d (fp32, no noise).
        n = x.shape[0]
        out_ch, in_ch, kh, kw = weight.shape
        demodulate = case["demodulate"]
        w = None
        dcoefs = None
        if demodulate or fused_modconv:
            w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
        if demodulate:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        if demodulate and fused_modconv:
            w = w * dcoefs.reshape(n, -1, 1, 1, 1)
        args = dict(f=f, up=case["up"], padding=case["padding"], flip_weight=case["flip_weight"])
        if not fused_modconv:
            x = x * styles.reshape(n, -1, 1, 1)
            x = conv2d_resample(x, weight, groups=1, **args)
            if demodulate:
                x = x * dcoefs.reshape(n, -1, 1, 1)
            return x
        x = x.reshape(1, -1, *x.shape[2:])
        w = w.reshape(-1, in_ch, kh, kw)
        x = conv2d_resample(x, w, groups=n, **args)
        return x.reshape(n, -1, *x.shape[2:])

    return setup_filter, modulated_conv2d


def timer(torch, warmup, iters, cuda):
    import time

    def run(fn):
        for _ in range(warmup):
            fn()
        if cuda:
            torch.cuda.synchronize()
        ts = []
        for _ in range(iters):
            if not cuda:
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
                continue
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b))
        # The upper median, as src/bench.rs takes it.
        return sorted(ts)[len(ts) // 2]

    return run


def main():
    ap = argparse.ArgumentParser(
        description="Time the official PyTorch modulated convolution paths (cuDNN) at the "
        "`stylegan2 bench` layer shapes; writes JSON rows in the stylegan2-bench/2 format.",
    )
    ap.add_argument("--cases", metavar="BENCH_JSON", help="take the layer shapes from this `stylegan2 bench` JSON")
    ap.add_argument(
        "--scale",
        choices=["full", "quick", "tiny"],
        default="full",
        help="without --cases: the mirror of src/bench.rs cases() at this scale (default full = config-f)",
    )
    ap.add_argument("--iters", type=int, default=20, help="timed runs per row, median reported (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first, for cuDNN autotuning (default 5)")
    ap.add_argument(
        "--device",
        default="cuda",
        help="torch device (default cuda; cpu only smoke-tests this script, timed by the wall clock)",
    )
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN (default off, as the official code)")
    ap.add_argument(
        "--precisions",
        default="tf32,bf16,f16",
        help="comma-separated forward precision rows after the FP32 ones: tf32, bf16, f16 (default all; '' for none)",
    )
    ap.add_argument("--peak-tflops", type=float, help="device peak in TFLOP/s: fills fraction_of_peak")
    ap.add_argument("--out", default="torch_modconv.json", help="JSON output (default torch_modconv.json)")
    ap.add_argument("--list-cases", action="store_true", help="print the cases as JSON and exit (no torch needed)")
    a = ap.parse_args()
    if a.iters < 1 or a.warmup < 0:
        ap.error("--iters must be >= 1 and --warmup >= 0")
    if a.peak_tflops is not None and not a.peak_tflops > 0:
        ap.error("--peak-tflops must be a positive number")
    precisions = [p for p in a.precisions.split(",") if p]
    for p in precisions:
        if p not in ("tf32", "bf16", "f16"):
            ap.error(f"--precisions: unknown precision '{p}': expected tf32, bf16 or f16")

    cases = load_cases(a.cases) if a.cases else mirror_cases(a.scale)
    if a.list_cases:
        print(json.dumps(cases, indent=2))
        return

    torch = import_torch()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("torch_modconv.py: torch.cuda.is_available() is False: this needs a CUDA GPU (or --device cpu)")
    if cuda:
        torch.cuda.set_device(dev)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    setup_filter, modulated_conv2d = make_ops(torch)
    F = torch.nn.functional
    time = timer(torch, a.warmup, a.iters, cuda)
    g = torch.Generator(device=dev).manual_seed(0)
    filt = setup_filter(dev)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    print(
        f"modulated convolution, PyTorch {torch.__version__} cuDNN {torch.backends.cudnn.version()} "
        f"on {name}, TF32 {'on' if a.tf32 else 'off'}, median of {a.iters} runs"
    )
    print(f"{'case':<24} {'path':<14} {'pass':<8} {'ms':>10} {'GFLOP/s':>9} {'vs unfused':>10}")
    # ("vs unfused" of a precision row compares with torch-unfused at the same precision.)

    rows = []
    peak_by_prec, bandwidth = peaks(name)

    def push(case, path, pass_, ms, fl, nbytes=None):
        secs = max(ms / 1e3, 1e-12)
        gflops = fl / secs / 1e9
        prec = pass_.split(" ")[1] if " " in pass_ else "f32"
        peak = peak_by_prec.get(prec)
        base = next(
            (r["median_ms"] for r in rows if r["case"] == case["name"] and r["pass"] == pass_ and r["path"] == "torch-unfused"),
            ms if path == "torch-unfused" else None,
        )
        row = {
            "section": "modconv",
            "case": case["name"],
            "path": path,
            "pass": pass_,
            "median_ms": ms,
            "gflops": gflops,
            "images_per_s": None,
            "speedup_vs_unfused": None if base is None else base / ms,
            "fraction_of_peak": None if a.peak_tflops is None else gflops / (a.peak_tflops * 1e3),
            "floor_compute_ms": None if peak is None else fl / (peak * 1e9),
            "floor_memory_ms": None if nbytes is None or bandwidth is None else nbytes / (bandwidth * 1e9),
        }
        rows.append(row)
        sp = "-" if row["speedup_vs_unfused"] is None else f"{row['speedup_vs_unfused']:.2f}x"
        print(f"{case['name']:<24} {path:<14} {pass_:<8} {ms:>10.3f} {gflops:>9.1f} {sp:>10}")

    for case in cases:
        n, cin, cout, res, k = case["batch"], case["cin"], case["cout"], case["res"], case["kernel"]
        x = torch.randn([n, cin, res, res], device=dev, generator=g).requires_grad_(True)
        w = torch.randn([cout, cin, k, k], device=dev, generator=g).requires_grad_(True)
        s = (torch.randn([n, cin], device=dev, generator=g) + 1.0).requires_grad_(True)
        fl = float(case.get("flops_fwd", flops(case)))
        variants = [("torch-unfused", lambda: modulated_conv2d(x, w, s, filt, case, False)),
                    ("torch-grouped", lambda: modulated_conv2d(x, w, s, filt, case, True))]
        if case["up"] == 1:
            variants.append(("torch-conv2d", lambda: F.conv2d(x, w, padding=case["padding"])))
        b32 = min_bytes(case, 4)
        for path, fwd in variants:
            with torch.no_grad():
                push(case, path, "fwd", time(fwd), fl, b32[0])
        for path, fwd in variants:
            inputs = [x, w] if path == "torch-conv2d" else [x, w, s]
            y = fwd()
            gy = torch.randn(y.shape, device=dev, generator=g)
            push(case, path, "bwd", time(lambda: torch.autograd.grad(y, inputs, gy, retain_graph=True)), 2 * fl, b32[1])
            del y
        for path, fwd in variants:
            inputs = [x, w] if path == "torch-conv2d" else [x, w, s]
            gy = torch.randn(fwd().shape, device=dev, generator=g)
            push(case, path, "fwd+bwd", time(lambda: torch.autograd.grad(fwd(), inputs, gy)), 3 * fl)
        for prec in precisions:
            dtype = {"tf32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[prec]
            fmt = torch.contiguous_format if prec == "tf32" else torch.channels_last
            xp = x.detach().to(dtype=dtype, memory_format=fmt).requires_grad_(True)
            wp = w.detach().to(dtype=dtype, memory_format=fmt).requires_grad_(True)
            sp_, fp = s.detach().to(dtype).requires_grad_(True), filt.to(dtype)
            bp = min_bytes(case, 4 if prec == "tf32" else 2)
            torch.backends.cudnn.allow_tf32 = prec == "tf32" or a.tf32
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32" or a.tf32
            pvariants = [
                ("torch-unfused", lambda: modulated_conv2d(xp, wp, sp_, fp, case, False)),
                ("torch-grouped", lambda: modulated_conv2d(xp, wp, sp_, fp, case, True)),
            ]
            if case["up"] == 1:
                pvariants.append(("torch-conv2d", lambda: F.conv2d(xp, wp, padding=case["padding"])))
            for path, fwd in pvariants:
                try:
                    with torch.no_grad():
                        ms = time(fwd)
                    push(case, path, f"fwd {prec}", ms, fl, bp[0])
                    inputs = [xp, wp] if path == "torch-conv2d" else [xp, wp, sp_]
                    y = fwd()
                    gy = torch.randn(y.shape, device=dev, generator=g).to(dtype=dtype, memory_format=fmt)
                    ms = time(lambda: torch.autograd.grad(y, inputs, gy, retain_graph=True))
                    push(case, path, f"bwd {prec}", ms, 2 * fl, bp[1])
                    del y
                except RuntimeError as e:  # e.g. a dtype the CPU backend lacks
                    print(f"{case['name']:<24} {path:<14} {prec}: skipped ({str(e).splitlines()[0]})")
            torch.backends.cudnn.allow_tf32 = a.tf32
            torch.backends.cuda.matmul.allow_tf32 = a.tf32

    doc = {
        "format": "stylegan2-bench/2",
        "implementation": "torch",
        "torch_version": torch.__version__,
        "cudnn_version": torch.backends.cudnn.version(),
        "tf32": a.tf32,
        "precisions": precisions,
        "device": str(dev),
        "device_name": name,
        "iterations": a.iters,
        "peak_tflops": a.peak_tflops,
        "peak_source": None if a.peak_tflops is None else "--peak-tflops",
        "modconv": {"cases": cases},
        "generator": None,
        "train": None,
        "rows": rows,
    }
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
