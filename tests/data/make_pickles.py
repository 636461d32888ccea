"""Writes the network-pickle fixtures of tests/pickle.rs with NVIDIA's own code.

Usage: python tests/data/make_pickles.py /path/to/stylegan2-ada-pytorch [OUTDIR]

The official classes (training/networks.py, training/augment.py, their
torch_utils.persistence records) build tiny 16x16 networks, which are pickled
exactly as the official training loop pickles a snapshot: a dict of
deep-copied CPU modules in eval mode, `pickle.dump` with the default protocol.
Beside each pickle, `<name>.oracle.safetensors` holds what the official code
computes from it: for seeds 0-3 the latents of generate.py
(`np.random.RandomState(seed).randn(1, z_dim)`), the images of G_ema for
psi 1 and 0.7 with noise const (before the 8-bit conversion), and D's logits
on the psi-1 images.

Fixtures:
  sg2_uncond.pkl   G, D, G_ema, augment_pipe (p = 0.25), training_set_kwargs
  sg2_cond.pkl     c_dim = 3, D with freeze_layers = 2 (frozen weights are buffers)
  sg2_fp16.pkl     num_fp16_res = 2, conv_clamp = 256 in G and D (the oracle
                   runs with force_fp32, the function the crate computes)
  sg2_proto3.pkl   sg2_uncond's networks with pickle protocol 3, as Python 3.7
                   wrote NVIDIA's published pickles (torch 1.7-1.9 reduce
                   tensors the same way torch 2.x does: _rebuild_tensor_v2 of a
                   storage reduced to torch.storage._load_from_bytes of a
                   legacy torch.save)
  tf_legacy.pkl    a hand-made TF StyleGAN2 pickle: the tuple (G, D, Gs) of
                   dnnlib.tflib.network.Network states with numpy arrays, the
                   inverse of legacy.py's mapping of sg2_uncond's networks; the
                   oracle is what legacy.load_network_pkl makes of it
  tf_converted.pkl what the official `legacy.py --source=tf_legacy.pkl` writes:
                   the converted networks pickled (its oracle is tf_legacy's)
  bad_missing.pkl  sg2_uncond with G_ema.synthesis.b16.torgb.bias removed
  bad_shape.pkl    sg2_uncond with G.mapping.fc1.weight of the wrong shape
  tensors.pkl      a dict of tensors in the forms a pickle can hold them
                   (float32, float16, float64, a transposed view, a view at a
                   storage offset, a Parameter, two views of one storage),
                   with their values in tensors.safetensors
"""

import copy
import io
import os
import pickle
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

SEEDS = [0, 1, 2, 3]
PSIS = [(1.0, "img_psi1"), (0.7, "img_psi0.7")]


def stub_missing():
    """dnnlib.util and legacy.py import `requests` (URLs) and `click` (their
    command line) at module level; neither is used here."""
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    try:
        import click  # noqa: F401
    except ImportError:
        click = types.ModuleType("click")
        click.command = lambda *a, **k: (lambda f: f)
        click.option = lambda *a, **k: (lambda f: f)
        click.pass_context = lambda f: f
        sys.modules["click"] = click


def official(path):
    stub_missing()
    sys.path.insert(0, os.path.abspath(path))
    import dnnlib  # noqa: F401
    import legacy
    from training import augment, networks

    return dnnlib, legacy, networks, augment


def randomize(module, gen):
    """Biases, noise strengths, w_avg and noise buffers to random values so
    every path of the network carries signal (their init values are 0/1)."""
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("resample_filter") or name.endswith(".p"):
                continue
            if name.endswith("bias") or "noise_strength" in name or name.endswith("w_avg"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5 + (1.0 if "affine.bias" in name else 0.0))


def build(dnnlib, networks, gen, c_dim=0, num_fp16_res=0, conv_clamp=None, freeze=0):
    """Tiny networks, their kwargs nested in EasyDicts as train.py passes them."""
    E = dnnlib.EasyDict
    common = dict(c_dim=c_dim, img_resolution=16, img_channels=3)
    G = networks.Generator(
        z_dim=8,
        w_dim=8,
        mapping_kwargs=E(num_layers=2),
        synthesis_kwargs=E(channel_base=128, channel_max=8, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp),
        **common,
    )
    D = networks.Discriminator(
        channel_base=128,
        channel_max=8,
        num_fp16_res=num_fp16_res,
        conv_clamp=conv_clamp,
        block_kwargs=E(freeze_layers=freeze),
        mapping_kwargs=E(num_layers=2),
        epilogue_kwargs=E(mbstd_group_size=2),
        **common,
    )
    randomize(G, gen)
    randomize(D, gen)
    G_ema = copy.deepcopy(G)
    # G_ema a little different from G, as after training.
    with torch.no_grad():
        for t in G_ema.parameters():
            t.add_(torch.randn(t.shape, generator=gen) * 0.05)
    return G, D, G_ema


def snapshot(modules, training_set_kwargs):
    """official training_loop.py: the snapshot dict as it is pickled."""
    data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in modules:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        data[name] = module
    return data


def oracle(G, D, c_dim, force_fp32):
    """generate.py on the CPU: z from RandomState(seed), const noise."""
    out = {}
    zs = np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in SEEDS])
    c = torch.zeros([len(SEEDS), c_dim])
    for i in range(len(SEEDS)):
        if c_dim:
            c[i, i % c_dim] = 1
    z = torch.from_numpy(zs)
    out["z"] = z.to(torch.float32)
    out["c"] = c
    with torch.no_grad():
        for psi, key in PSIS:
            img = G(z, c, truncation_psi=psi, noise_mode="const", force_fp32=force_fp32)
            out[key] = img.to(torch.float32)
        out["d_logits"] = D(out["img_psi1"], c, force_fp32=force_fp32).to(torch.float32)
    return {k: v.contiguous() for k, v in out.items()}


def dump(obj, path, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


# ---------------------------------------------------------------------------
# The TF layout (inverse of legacy.py's convert_tf_generator/discriminator).


def tf_module():
    """A stand-in for dnnlib.tflib.network.Network: pickles as that global
    with its state (TF's Network.__getstate__ layout)."""
    for name in ["dnnlib.tflib", "dnnlib.tflib.network"]:
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
    mod = sys.modules["dnnlib.tflib.network"]

    class Network:
        def __init__(self, name, static_kwargs, components, variables):
            self.state = dict(
                version=4,
                name=name,
                static_kwargs=static_kwargs,
                components=components,
                build_module_src="# (module source)\n",
                build_func_name=name,
                variables=variables,
            )

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    mod.Network = Network
    return Network


class _TFPickler(pickle.Pickler):
    """Writes Network as `dnnlib.tflib.network.Network` NEWOBJ + BUILD (how
    pickle writes a plain class instance with a __getstate__)."""

    def reducer_override(self, obj):
        if type(obj).__name__ == "Network" and type(obj).__module__ == "dnnlib.tflib.network":
            import copyreg

            return (copyreg.__newobj__, (type(obj),), obj.state)
        return NotImplemented


def np32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def tf_generator(G, Network):
    sd = {k: v for k, v in list(G.named_parameters()) + list(G.named_buffers())}
    res_list = G.synthesis.block_resolutions
    mapping_vars = []
    for i in range(G.mapping.num_layers):
        mapping_vars.append((f"Dense{i}/weight", np32(sd[f"mapping.fc{i}.weight"]).T.copy()))
        mapping_vars.append((f"Dense{i}/bias", np32(sd[f"mapping.fc{i}.bias"])))
    syn = []
    noise = []
    for r in res_list:
        b = f"synthesis.b{r}"
        convs = [("conv1", "Conv")] if r == 4 else [("conv0", "Conv0_up"), ("conv1", "Conv1")]
        if r == 4:
            syn.append(("4x4/Const/const", np32(sd[f"{b}.const"])[None]))
        for pt, tf in convs:
            w = np32(sd[f"{b}.{pt}.weight"]).transpose(2, 3, 1, 0)
            if tf == "Conv0_up":
                w = w[::-1, ::-1]
            syn.append((f"{r}x{r}/{tf}/weight", w.copy()))
            syn.append((f"{r}x{r}/{tf}/bias", np32(sd[f"{b}.{pt}.bias"])))
            syn.append((f"{r}x{r}/{tf}/noise_strength", np32(sd[f"{b}.{pt}.noise_strength"])))
            syn.append((f"{r}x{r}/{tf}/mod_weight", np32(sd[f"{b}.{pt}.affine.weight"]).T.copy()))
            syn.append((f"{r}x{r}/{tf}/mod_bias", np32(sd[f"{b}.{pt}.affine.bias"]) - 1))
            idx = 0 if r == 4 else int(np.log2(r)) * 2 - (5 if pt == "conv0" else 4)
            noise.append((f"noise{idx}", np32(sd[f"{b}.{pt}.noise_const"])[None, None]))
        syn.append((f"{r}x{r}/ToRGB/weight", np32(sd[f"{b}.torgb.weight"]).transpose(2, 3, 1, 0).copy()))
        syn.append((f"{r}x{r}/ToRGB/bias", np32(sd[f"{b}.torgb.bias"])))
        syn.append((f"{r}x{r}/ToRGB/mod_weight", np32(sd[f"{b}.torgb.affine.weight"]).T.copy()))
        syn.append((f"{r}x{r}/ToRGB/mod_bias", np32(sd[f"{b}.torgb.affine.bias"]) - 1))
    noise.sort(key=lambda kv: int(kv[0][5:]))
    kw = dict(
        latent_size=G.z_dim,
        label_size=0,
        dlatent_size=G.w_dim,
        resolution=G.img_resolution,
        num_channels=G.img_channels,
        mapping_layers=G.mapping.num_layers,
        fmap_base=64,
        fmap_max=8,
        architecture="skip",
        truncation_psi=0.5,
    )
    mapping = Network("G_mapping", dict(kw), {}, mapping_vars)
    synthesis = Network("G_synthesis", dict(kw), {}, noise + syn)
    return Network("G", kw, dict(mapping=mapping, synthesis=synthesis), [("dlatent_avg", np32(sd["mapping.w_avg"]))])


def tf_discriminator(D, Network):
    sd = {k: v for k, v in list(D.named_parameters()) + list(D.named_buffers())}
    var = []
    for r in D.block_resolutions:
        if r == D.img_resolution:
            var.append((f"{r}x{r}/FromRGB/weight", np32(sd[f"b{r}.fromrgb.weight"]).transpose(2, 3, 1, 0).copy()))
            var.append((f"{r}x{r}/FromRGB/bias", np32(sd[f"b{r}.fromrgb.bias"])))
        for i, tf in [(0, "Conv0"), (1, "Conv1_down")]:
            var.append((f"{r}x{r}/{tf}/weight", np32(sd[f"b{r}.conv{i}.weight"]).transpose(2, 3, 1, 0).copy()))
            var.append((f"{r}x{r}/{tf}/bias", np32(sd[f"b{r}.conv{i}.bias"])))
        var.append((f"{r}x{r}/Skip/weight", np32(sd[f"b{r}.skip.weight"]).transpose(2, 3, 1, 0).copy()))
    var.append(("4x4/Conv/weight", np32(sd["b4.conv.weight"]).transpose(2, 3, 1, 0).copy()))
    var.append(("4x4/Conv/bias", np32(sd["b4.conv.bias"])))
    var.append(("4x4/Dense0/weight", np32(sd["b4.fc.weight"]).T.copy()))
    var.append(("4x4/Dense0/bias", np32(sd["b4.fc.bias"])))
    var.append(("Output/weight", np32(sd["b4.out.weight"]).T.copy()))
    var.append(("Output/bias", np32(sd["b4.out.bias"])))
    kw = dict(
        label_size=0,
        resolution=D.img_resolution,
        num_channels=D.img_channels,
        fmap_base=64,
        fmap_max=8,
        architecture="resnet",
        mbstd_group_size=2,
    )
    return Network("D", kw, {}, var)


# ---------------------------------------------------------------------------


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    outdir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(outdir, exist_ok=True)
    dnnlib, legacy, networks, augment = official(sys.argv[1])
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    tsk = dict(
        class_name="training.dataset.ImageFolderDataset",
        path="~/datasets/tiny16.zip",
        use_labels=False,
        max_size=1000,
        xflip=False,
        resolution=16,
    )

    def write(name, data, c_dim, force_fp32=False, protocol=pickle.DEFAULT_PROTOCOL):
        path = os.path.join(outdir, name + ".pkl")
        dump(data, path, protocol)
        # The oracle from what the official loader makes of the file.
        with open(path, "rb") as f:
            loaded = legacy.load_network_pkl(f)
        o = oracle(loaded["G_ema"], loaded["D"], c_dim, force_fp32)
        save_file(o, os.path.join(outdir, name + ".oracle.safetensors"), metadata={"seeds": ",".join(map(str, SEEDS))})
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")

    # Unconditional, with an augment pipe as --aug=ada writes it.
    G, D, G_ema = build(dnnlib, networks, gen)
    aug = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    aug.p.copy_(torch.tensor(0.25))
    uncond = snapshot([("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", aug)], tsk)
    write("sg2_uncond", uncond, 0)
    write("sg2_proto3", snapshot([("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", None)], tsk), 0, protocol=3)

    # Conditional, Freeze-D 2.
    Gc, Dc, Gc_ema = build(dnnlib, networks, gen, c_dim=3, freeze=2)
    write("sg2_cond", snapshot([("G", Gc), ("D", Dc), ("G_ema", Gc_ema), ("augment_pipe", None)], dict(tsk, use_labels=True)), 3)

    # Mixed precision (the official presets' num_fp16_res = 4, conv_clamp = 256).
    Gh, Dh, Gh_ema = build(dnnlib, networks, gen, num_fp16_res=2, conv_clamp=256)
    write("sg2_fp16", snapshot([("G", Gh), ("D", Dh), ("G_ema", Gh_ema), ("augment_pipe", None)], tsk), 0, force_fp32=True)

    # Broken ones.
    bad = snapshot([("G", G), ("D", D), ("G_ema", G_ema)], tsk)
    del bad["G_ema"].synthesis.b16.torgb._parameters["bias"]
    dump(bad, os.path.join(outdir, "bad_missing.pkl"))
    bad = snapshot([("G", G), ("D", D), ("G_ema", G_ema)], tsk)
    bad["G"].mapping.fc1._parameters["weight"] = torch.nn.Parameter(torch.zeros([8, 7]), requires_grad=False)
    dump(bad, os.path.join(outdir, "bad_shape.pkl"))

    # Tensor forms.
    base = torch.randn([4, 6], generator=gen)
    forms = {
        "f32": base.clone(),
        "f16": base.to(torch.float16),
        "f64": base.to(torch.float64),
        "transposed": base.t(),
        "offset": base[1:, 2:5],
        "param": torch.nn.Parameter(base.clone(), requires_grad=False),
        "scalar": torch.tensor(0.5),
    }
    forms["shared_a"] = forms["f32"][0]
    forms["shared_b"] = forms["f32"][2:]
    dump(forms, os.path.join(outdir, "tensors.pkl"))
    save_file({k: v.detach().to(torch.float32).contiguous().clone() for k, v in forms.items()}, os.path.join(outdir, "tensors.safetensors"))

    # TF StyleGAN2 layout, converted by the official legacy.py for the oracle.
    Network = tf_module()
    tf = (tf_generator(G, Network), tf_discriminator(D, Network), tf_generator(G_ema, Network))
    path = os.path.join(outdir, "tf_legacy.pkl")
    with open(path, "wb") as f:
        _TFPickler(f, protocol=3).dump(tf)
    with open(path, "rb") as f:
        loaded = legacy.load_network_pkl(f)
    # The conversion must give back the networks the TF layout was made from.
    for name, ref in [("G", G), ("D", D), ("G_ema", G_ema)]:
        got = dict(loaded[name].named_parameters()) | dict(loaded[name].named_buffers())
        for k, v in list(ref.named_parameters()) + list(ref.named_buffers()):
            # mod_bias - 1 + 1 rounds in float32.
            assert torch.allclose(got[k], v.detach(), rtol=0, atol=1e-6), (name, k)
    o = oracle(loaded["G_ema"], loaded["D"], 0, False)
    save_file(o, os.path.join(outdir, "tf_legacy.oracle.safetensors"), metadata={"seeds": ",".join(map(str, SEEDS))})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    # legacy.py's convert_network_pickle: pickle.dump of what it loaded.
    path = os.path.join(outdir, "tf_converted.pkl")
    dump(loaded, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
