"""Reference outputs of the official StyleGAN2-ADA augment pipeline for fixed
per-sample parameters, for tests/augment_official.rs.

    /work/torchenv/bin/python tests/data/make_augment.py /path/to/stylegan2-ada-pytorch

writes tests/data/augment_official.safetensors (float32, ~0.9 MB). Not needed by
CI: the file is committed.

How the parameters are fixed: the official `AugmentPipe.forward` draws every
random number with `torch.rand` / `torch.randn` in a fixed order (one draw of
the value, then one uniform "gate" draw compared against multiplier * p). This
script replaces the `torch` name inside `training.augment` by a proxy whose
`rand` / `randn` return scripted tensors in that order (every other attribute is
the real torch): the value draws are the inverses of the wanted parameters
(e.g. randn = log2(s) / scale_std for an isotropic scale s), and the gate draw
is 0 (applied) or 1 (not applied). The proxy checks the shape of every draw
and that all scripted draws are consumed, so a wrong order fails loudly. The
pipeline runs with p = 1 and only the multipliers of the case set to 1.

Each case stores:
  {case}.{set}.params  [N, 23]: the effective per-sample parameters (identity
                       where not applied), columns PARAM_COLUMNS below,
  {case}.{set}.y       the augmented images,
  {case}.{set}.grad    d/dx of L = sum(R * y) + 0.5 * sum(y^2) with
                       R[i] = sin(0.37 i + 0.1) over y's flat index,
  {case}.{set}.noise   (noise case) the standard normal noise images.
Sets: `rgb` = the first 2 images of x_rgb [4, 3, 32, 32] (each transformation
alone) or all 4 (the bgc chain), `gray` = x_gray [2, 1, 16, 16]
(image-space filtering needs 22 pixels, so it has no gray case).
"""

import math
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

PARAM_COLUMNS = [
    "xflip", "rotate90", "xint_x", "xint_y", "scale", "rotate_pre", "aniso", "rotate_post",
    "xfrac_x", "xfrac_y", "brightness", "contrast", "lumaflip", "hue", "saturation",
    "imgfilter0", "imgfilter1", "imgfilter2", "imgfilter3", "noise", "cutout", "cutout_cx", "cutout_cy",
]
IDENTITY = dict(scale=1.0, aniso=1.0, contrast=1.0, saturation=1.0, imgfilter0=1.0, imgfilter1=1.0,
                imgfilter2=1.0, imgfilter3=1.0, cutout_cx=0.5, cutout_cy=0.5)

# Official parameter ranges (AugmentPipe defaults).
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0
IMGFILTER_STD, NOISE_STD, CUTOUT_SIZE = 1.0, 0.1, 0.5

GROUPS = {
    "blit": ["xflip", "rotate90", "xint"],
    "geom": ["scale", "rotate", "aniso", "xfrac"],
    "color": ["brightness", "contrast", "lumaflip", "hue", "saturation"],
}


class ScriptedTorch:
    """`torch` with rand/randn replaced by a queue of scripted tensors."""

    def __init__(self, draws):
        self.draws = list(draws)

    def _next(self, kind, shape):
        assert self.draws, f"unscripted torch.{kind}({shape})"
        k, v = self.draws.pop(0)
        v = torch.as_tensor(np.asarray(v, dtype=np.float32))
        assert k == kind and list(v.shape) == list(shape), f"scripted {k}{list(v.shape)}, asked {kind}{list(shape)}"
        return v

    def rand(self, shape, device=None):
        return self._next("rand", shape)

    def randn(self, shape, device=None):
        return self._next("randn", shape)

    def __getattr__(self, name):
        return getattr(torch, name)


def script(enabled, params, n, c, hw, noise_img):
    """The draws of AugmentPipe.forward, in its order, for per-sample
    `params` (a list of dicts; a missing key = not applied: gate 1)."""
    d = []

    def gate(key, shape):
        d.append(("rand", np.array([0.0 if key in p else 1.0 for p in params]).reshape(shape)))

    def val(kind, key, f, shape, default):
        d.append((kind, np.array([f(p.get(key, default)) for p in params]).reshape(shape)))

    if "xflip" in enabled:
        val("rand", "xflip", lambda i: (i + 0.5) / 2, [n], 0)
        gate("xflip", [n])
    if "rotate90" in enabled:
        val("rand", "rotate90", lambda i: (i + 0.5) / 4, [n], 0)
        gate("rotate90", [n])
    if "xint" in enabled:
        d.append(("rand", np.array([[(t / XINT_MAX + 1) / 2 for t in p.get("xint", (0, 0))] for p in params])))
        gate("xint", [n, 1])
    if "scale" in enabled:
        val("randn", "scale", lambda s: math.log2(s) / SCALE_STD, [n], 1.0)
        gate("scale", [n])
    if "rotate" in enabled:
        val("rand", "rotate_pre", lambda t: (t / (math.pi * ROTATE_MAX) + 1) / 2, [n], 0.0)
        gate("rotate_pre", [n])
    if "aniso" in enabled:
        val("randn", "aniso", lambda s: math.log2(s) / ANISO_STD, [n], 1.0)
        gate("aniso", [n])
    if "rotate" in enabled:
        val("rand", "rotate_post", lambda t: (t / (math.pi * ROTATE_MAX) + 1) / 2, [n], 0.0)
        gate("rotate_post", [n])
    if "xfrac" in enabled:
        d.append(("randn", np.array([[t / XFRAC_STD for t in p.get("xfrac", (0, 0))] for p in params])))
        gate("xfrac", [n, 1])
    if "brightness" in enabled:
        val("randn", "brightness", lambda b: b / BRIGHTNESS_STD, [n], 0.0)
        gate("brightness", [n])
    if "contrast" in enabled:
        val("randn", "contrast", lambda s: math.log2(s) / CONTRAST_STD, [n], 1.0)
        gate("contrast", [n])
    if "lumaflip" in enabled:
        val("rand", "lumaflip", lambda i: (i + 0.5) / 2, [n, 1, 1], 0)
        gate("lumaflip", [n, 1, 1])
    if "hue" in enabled and c > 1:
        val("rand", "hue", lambda t: (t / (math.pi * HUE_MAX) + 1) / 2, [n], 0.0)
        gate("hue", [n])
    if "saturation" in enabled and c > 1:
        val("randn", "saturation", lambda s: math.log2(s) / SATURATION_STD, [n, 1, 1], 1.0)
        gate("saturation", [n, 1, 1])
    if "imgfilter" in enabled:
        for b in range(4):
            key = f"imgfilter{b}"
            val("randn", key, lambda s: math.log2(s) / IMGFILTER_STD, [n], 1.0)
            gate(key, [n])
    if "noise" in enabled:
        val("randn", "noise", lambda s: s / NOISE_STD, [n, 1, 1, 1], 0.0)
        gate("noise", [n, 1, 1, 1])
        d.append(("randn", noise_img))
    if "cutout" in enabled:
        gate("cutout", [n, 1, 1, 1, 1])
        d.append(("rand", np.array([p.get("cutout_center", (0.5, 0.5)) for p in params]).reshape(n, 2, 1, 1, 1)))
    return d


def param_rows(params, c):
    rows = []
    for p in params:
        r = dict(IDENTITY)
        for k, v in p.items():
            if k in ("xint", "xfrac"):
                r[k + "_x"], r[k + "_y"] = v
            elif k == "cutout_center":
                r["cutout_cx"], r["cutout_cy"] = v
            elif k == "cutout":
                r["cutout"] = CUTOUT_SIZE
            elif k in ("hue", "saturation") and c == 1:
                pass  # not drawn for grayscale
            else:
                r[k] = v
        rows.append([float(r.get(k, 0.0)) for k in PARAM_COLUMNS])
    return torch.tensor(rows, dtype=torch.float32)


# Per-sample parameters of each transformation alone (2 samples each).
ALONE = {
    "xflip": [dict(xflip=1), dict(xflip=0)],
    "rotate90": [dict(rotate90=1), dict(rotate90=3)],
    "xint": [dict(xint=(0.1, -0.05)), dict(xint=(-0.12, 0.07))],
    "scale": [dict(scale=1.3), dict(scale=0.8)],
    "rotate": [dict(rotate_pre=0.5, rotate_post=-0.2), dict(rotate_pre=-2.0)],
    "aniso": [dict(aniso=1.25), dict(aniso=0.85)],
    "xfrac": [dict(xfrac=(0.07, -0.03)), dict(xfrac=(-0.11, 0.16))],
    "brightness": [dict(brightness=0.15), dict(brightness=-0.3)],
    "contrast": [dict(contrast=1.4), dict(contrast=0.6)],
    "lumaflip": [dict(lumaflip=1), dict(lumaflip=0)],
    "hue": [dict(hue=1.1), dict(hue=-2.5)],
    "saturation": [dict(saturation=1.7), dict(saturation=0.4)],
    "imgfilter": [dict(imgfilter0=1.5, imgfilter2=0.5), dict(imgfilter1=2.2, imgfilter3=0.7)],
    "noise": [dict(noise=0.08), dict(noise=0.15)],
    "cutout": [dict(cutout=1, cutout_center=(0.3, 0.6)), dict(cutout=1, cutout_center=(0.9, 0.1))],
}

# The bgc chain on 4 samples: mixes of applied and not-applied transformations.
BGC = [
    dict(xflip=1, rotate90=2, xint=(0.06, 0.0), scale=1.1, rotate_pre=0.3, brightness=0.1, hue=0.7, saturation=1.3),
    dict(rotate90=1, aniso=1.2, rotate_post=1.0, xfrac=(0.02, -0.05), contrast=0.7, lumaflip=1),
    dict(),
    dict(xflip=1, xint=(-0.09, 0.11), scale=0.85, rotate_pre=-0.4, aniso=0.9, rotate_post=2.5,
         xfrac=(-0.04, 0.03), brightness=-0.2, contrast=1.3, lumaflip=1, hue=-1.2, saturation=0.5),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OFFICIAL_STYLEGAN2_ADA_PYTORCH_DIR")
    official = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(official))
    try:
        import requests  # noqa: F401  (dnnlib imports it for downloads only)
    except ImportError:
        import types
        sys.modules["requests"] = types.ModuleType("requests")
    from training import augment

    g = torch.Generator().manual_seed(12)
    x_rgb = torch.rand([4, 3, 32, 32], generator=g) * 2 - 1
    x_gray = torch.rand([2, 1, 16, 16], generator=g) * 2 - 1
    out = {"x_rgb": x_rgb, "x_gray": x_gray}

    def run(case, set_name, enabled, params, x):
        n, c, h, w = x.shape
        noise_img = torch.randn([n, c, h, w], generator=g) if "noise" in enabled else None
        kwargs = {k: 1 for k in enabled}
        pipe = augment.AugmentPipe(**kwargs)  # p = 1 (the buffer's default)
        draws = script(enabled, params, n, c, (h, w), None if noise_img is None else noise_img.numpy())
        proxy = ScriptedTorch(draws)
        augment.torch = proxy
        try:
            xx = x.clone().requires_grad_(True)
            y = pipe(xx)
        finally:
            augment.torch = torch
        assert not proxy.draws, f"{case}: {len(proxy.draws)} scripted draws left"
        # R[i] = sin(0.37 i + 0.1) over the flat index (a formula, not stored).
        rr = torch.from_numpy(np.sin(0.37 * np.arange(y.numel()) + 0.1).astype(np.float32)).reshape(y.shape)
        loss = (rr * y).sum() + 0.5 * y.square().sum()
        (gx,) = torch.autograd.grad(loss, [xx])
        p = f"{case}.{set_name}"
        out[f"{p}.params"] = param_rows(params, c)
        out[f"{p}.y"] = y.detach()
        out[f"{p}.grad"] = gx
        if noise_img is not None:
            out[f"{p}.noise"] = noise_img

    for case, params in ALONE.items():
        enabled = ["rotate"] if case == "rotate" else [case]
        run(case, "rgb", enabled, params, x_rgb[:2])
        if case != "imgfilter":
            run(case, "gray", enabled, params, x_gray)
    bgc = GROUPS["blit"] + GROUPS["geom"] + GROUPS["color"]
    run("bgc", "rgb", bgc, BGC, x_rgb)
    run("bgc", "gray", bgc, BGC[:2], x_gray)

    dst = Path(__file__).resolve().parent / "augment_official.safetensors"
    save_file({k: v.contiguous().float() for k, v in out.items()}, str(dst),
              metadata={"source": "stylegan2-ada-pytorch training/augment.py", "columns": ",".join(PARAM_COLUMNS)})
    print(f"wrote {dst} ({dst.stat().st_size} bytes, {len(out)} tensors)")


if __name__ == "__main__":
    main()
