#!/usr/bin/env python3
"""CPU peer of `stylegan2 bench --device cpu --only generator,train`.

Runs the OFFICIAL StyleGAN2-ADA networks and loss (training/networks.py,
training/loss.py of a checkout given by --official, commit d72cc7d) on the CPU
with PyTorch, on the same configuration and the same weights as the crate:
the network file from `stylegan2 init` carries the crate's config (header
metadata `stylegan2.config`) and its G, D and G_ema tensors, which are loaded
into the official modules with `strict=True` (equal names and shapes, hence
equal parameter counts; both counts are printed).

Rows (medians of --iters timed runs after one warm-up run, batch --batch):

  generator  G(z) under no_grad, noise_mode='const', truncation 1, once with
             fused_modconv=False (the crate's `unfused` path, its CPU default)
             and once with fused_modconv=True (grouped convolution: the
             crate's `grouped` path).
  train      one training step per set of phases of the lazy-regularization
             schedule, as the official training loop runs them (per phase:
             zero_grad, requires_grad on the trained network, the official
             StyleGAN2Loss.accumulate_gradients with gain = interval, nan_to_num,
             Adam with lr and betas adjusted by mb_ratio), then the G_ema
             update; and the amortized mean over the schedule (Gmain+Dmain every
             step, Greg every 4, Dreg every 16). Reals are a fixed random batch.

FLOPs per image are those of src/bench.rs `synthesis_flops_per_image`
(multiply-add = 2, the synthesis convolutions at their output resolution),
counted here from the official modules' weight shapes.

Threads: torch.set_num_threads(--threads) (default 2). Output: a table on
stdout, and JSON (`--out`) in the `stylegan2-bench/2` row format with
"implementation": "torch-cpu".

Example (bench/cpu_vs_torch.sh alternates this with the crate):

  stylegan2 init --cfg tiny --resolution 32 --out /tmp/tiny32.safetensors
  python bench/torch_cpu_peer.py --official ../official \
      --network /tmp/tiny32.safetensors --batch 8 --only generator,train
"""

import argparse
import json
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official", required=True, help="checkout of stylegan2-ada-pytorch")
    p.add_argument("--network", required=True, help="safetensors file from `stylegan2 init`")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=5, help="timed runs per row (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="generator,train", help="generator, train (comma-separated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the rows as JSON here")
    return p.parse_args()


def load_network(path):
    """The crate's config (dict) and tensors of a network file."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        if "stylegan2.config" not in meta:
            sys.exit(f"{path}: no 'stylegan2.config' metadata; write it with `stylegan2 init`")
        cfg = json.loads(meta["stylegan2.config"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return cfg, tensors


def build(networks, cfg):
    """Official G and D for the crate's config (no fp16 layers, as on the CPU)."""
    g, d = cfg["generator"], cfg["discriminator"]
    G = networks.Generator(
        z_dim=g["z_dim"],
        c_dim=g["c_dim"],
        w_dim=g["w_dim"],
        img_resolution=g["img_resolution"],
        img_channels=g["img_channels"],
        mapping_kwargs=dict(
            num_layers=g["mapping_layers"],
            lr_multiplier=g["mapping_lr_multiplier"],
            w_avg_beta=g["w_avg_beta"],
        ),
        synthesis_kwargs=dict(
            channel_base=g["channel_base"],
            channel_max=g["channel_max"],
            num_fp16_res=0,
            conv_clamp=g["conv_clamp"],
            architecture=g["architecture"],
        ),
    )
    D = networks.Discriminator(
        c_dim=d["c_dim"],
        img_resolution=d["img_resolution"],
        img_channels=d["img_channels"],
        architecture=d["architecture"],
        channel_base=d["channel_base"],
        channel_max=d["channel_max"],
        num_fp16_res=0,
        conv_clamp=d["conv_clamp"],
        cmap_dim=d["cmap_dim"],
        mapping_kwargs=dict(num_layers=d["mapping_layers"]),
        epilogue_kwargs=dict(
            mbstd_group_size=d["mbstd_group_size"],
            mbstd_num_channels=d["mbstd_num_channels"],
        ),
    )
    return G, D


def load_into(module, prefix, tensors, path):
    sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if missing or unexpected:
        sys.exit(f"{path}: {prefix} does not match the official module: missing {missing}, unexpected {unexpected}")


def synthesis_flops_per_image(G, networks):
    """As src/bench.rs: 2 · Σ over synthesis convs of weight MACs × output pixels."""
    macs = 0
    for m in G.synthesis.modules():
        if isinstance(m, networks.SynthesisLayer):
            o, i, kh, kw = m.weight.shape
            macs += o * i * kh * kw * m.resolution**2
        elif isinstance(m, networks.ToRGBLayer):
            o, i, kh, kw = m.weight.shape
            res = None
            for name, blk in G.synthesis.named_children():
                if getattr(blk, "torgb", None) is m:
                    res = blk.resolution
            macs += o * i * kh * kw * res**2
    return 2.0 * macs


def median_time(fn, iters):
    fn()  # warm-up
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


class Trainer:
    """The official training loop's step (training_loop.py), without data loading."""

    def __init__(self, torch, loss_mod, G, D, cfg, batch, device):
        import copy

        t = cfg["training"]
        self.torch = torch
        self.G, self.D = G.train().requires_grad_(False), D.train().requires_grad_(False)
        self.G_ema = copy.deepcopy(G).eval()
        self.batch = batch
        self.ema_kimg, self.ema_rampup = t["ema_kimg"], t["ema_rampup"]
        self.loss = loss_mod.StyleGAN2Loss(
            device=device,
            G_mapping=G.mapping,
            G_synthesis=G.synthesis,
            D=D,
            r1_gamma=t["r1_gamma"],
            style_mixing_prob=t["style_mixing_prob"],
            pl_weight=t["pl_weight"],
        )
        self.phases = []
        for name, module, reg_interval in [("G", G, 4), ("D", D, 16)]:
            mb_ratio = reg_interval / (reg_interval + 1)
            opt = torch.optim.Adam(
                module.parameters(),
                lr=t["lr"] * mb_ratio,
                betas=[0 ** mb_ratio, 0.99**mb_ratio],
                eps=1e-8,
            )
            self.phases.append((name + "main", module, opt, 1))
            self.phases.append((name + "reg", module, opt, reg_interval))
        g = cfg["generator"]
        self.real = torch.rand([batch, g["img_channels"], g["img_resolution"], g["img_resolution"]]) * 2 - 1
        self.c = torch.zeros([batch, g["c_dim"]])
        self.z_dim = g["z_dim"]
        self.cur_nimg = 0

    def phases_of(self, step):
        return [p for p in self.phases if step % p[3] == 0]

    def step(self, step):
        torch = self.torch
        for name, module, opt, interval in self.phases_of(step):
            gen_z = torch.randn([self.batch, self.z_dim])
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            self.loss.accumulate_gradients(
                phase=name, real_img=self.real, real_c=self.c, gen_z=gen_z, gen_c=self.c, sync=True, gain=interval
            )
            module.requires_grad_(False)
            for param in module.parameters():
                if param.grad is not None:
                    torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            opt.step()
        with torch.no_grad():
            ema_nimg = self.ema_kimg * 1000
            if self.ema_rampup is not None:
                ema_nimg = min(ema_nimg, self.cur_nimg * self.ema_rampup)
            ema_beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.cur_nimg += self.batch


def main():
    args = parse_args()
    sys.path.insert(0, args.official)
    try:
        import requests  # noqa: F401
    except ImportError:
        # dnnlib/util.py imports it for URL downloads only, which this never does.
        import types

        sys.modules["requests"] = types.ModuleType("requests")
    import torch
    import numpy as np  # noqa: F401  (the official modules need it)
    from training import networks
    from training import loss as loss_mod

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg, tensors = load_network(args.network)
    G, D = build(networks, cfg)
    load_into(G, "G", tensors, args.network)
    load_into(D, "D", tensors, args.network)
    g = cfg["generator"]
    label = f"{cfg['preset']} {g['img_resolution']}x{g['img_resolution']} batch {args.batch}"
    n_file = {p: sum(v.numel() for k, v in tensors.items() if k.startswith(p + ".")) for p in ("G", "D")}
    n_torch = {"G": sum(v.numel() for v in G.state_dict().values()), "D": sum(v.numel() for v in D.state_dict().values())}
    flops = synthesis_flops_per_image(G, networks)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, official {args.official}")
    for p in ("G", "D"):
        print(f"{p}: {n_torch[p]} values in the official state dict, {n_file[p]} in {args.network}")
    print(f"synthesis FLOPs per image: {flops:.6g}")
    rows = []

    def report(section, path, pas, secs, fl=None):
        ips = args.batch / secs
        gf = f"{fl / secs / 1e9:9.1f}" if fl else "        -"
        print(f"{label:<24} {path:<14} {pas:<24} {secs * 1e3:10.2f} {gf} {ips:9.2f}", flush=True)
        rows.append(
            dict(section=section, case=label, path=path, pass_=pas, ms=secs * 1e3, images_per_s=ips, flops=fl)
        )

    only = args.only.split(",")
    print(f"{'case':<24} {'path':<14} {'pass':<24} {'ms':>10} {'GFLOP/s':>9} {'img/s':>9}")
    if "generator" in only:
        z = torch.randn([args.batch, g["z_dim"]])
        c = torch.zeros([args.batch, g["c_dim"]])
        G.eval()
        for fused, name in [(False, "torch-unfused"), (True, "torch-grouped")]:
            with torch.no_grad():
                t = median_time(lambda: G(z, c, noise_mode="const", fused_modconv=fused), args.iters)
            report("generator", name, "fwd", t, flops * args.batch)
    if "train" in only:
        tr = Trainer(torch, loss_mod, G, D, cfg, args.batch, torch.device("cpu"))
        kinds = {}
        for s in range(16):
            kinds.setdefault("+".join(p[0] for p in tr.phases_of(s)), s)
        times = {}
        for kind, s in sorted(kinds.items(), key=lambda k: k[0].count("+")):
            times[kind] = median_time(lambda: tr.step(s), args.iters)
            report("train", "torch-unfused", kind, times[kind])
        amort = sum(times["+".join(p[0] for p in tr.phases_of(s))] for s in range(16)) / 16
        report("train", "torch-unfused", "amortized", amort)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                dict(
                    format="stylegan2-bench/2",
                    implementation="torch-cpu",
                    torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    params=n_torch,
                    flops_per_image=flops,
                    rows=[{("pass" if k == "pass_" else k): v for k, v in r.items()} for r in rows],
                ),
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
