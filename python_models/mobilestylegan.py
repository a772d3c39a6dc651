"""MobileStyleGAN (Belousov 2021) on hrops: mapping network, 1024^2
MobileSynthesisNetwork, checkpoint loading and image generation.

Parameter names follow bes-dev/MobileStyleGAN.pytorch, so the student part of
an official checkpoint loads unchanged (`load_checkpoint`). Semantics:
bes-dev/MobileStyleGAN.pytorch, core/models/mobile_synthesis_network.py,
core/models/modules/mobile_synthesis_block.py and core/models/utils.py,
NoiseManager (W+ of 23 styles, noise broadcast over the batch, the
12-channel Haar-packed image heads, final IDWT to RGB).

    python -m python_models.mobilestylegan --ckpt mobilestylegan_ffhq.ckpt -n 4 --out imgs/
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

import hrops
from hrops.nn import (ConstantInput, DWTInverse, IDWTUpsample, ModulatedDWConv2d,
                      MultichannelImage, StyledConv2d)

FFHQ_1024_CHANNELS = [512, 512, 512, 512, 512, 256, 128, 64]


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """StyleGAN2's equalised-lr linear with fused leaky ReLU (gain sqrt(2)),
    as in MobileStyleGAN's legacy.py mapping network."""

    def __init__(self, in_dim, out_dim, lr_mul=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul
        return F.leaky_relu(out, 0.2) * math.sqrt(2)


class MappingNetwork(nn.Module):
    """z (N, style_dim) -> w: PixelNorm then n_layers EqualLinear (lr_mul 0.01)."""

    def __init__(self, style_dim=512, n_layers=8, lr_mlp=0.01):
        super().__init__()
        self.style_dim = style_dim
        self.layers = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mlp)
                                                   for _ in range(n_layers)])

    def forward(self, z):
        return self.layers(z)


class MobileSynthesisBlock(nn.Module):
    """IDWT upsample -> 2 x StyledConv2d(ModulatedDWConv2d) -> 12-channel head."""

    def __init__(self, channels_in, channels_out, style_dim, kernel_size=3):
        super().__init__()
        self.up = IDWTUpsample(channels_in, style_dim)
        self.conv1 = StyledConv2d(channels_in // 4, channels_out, style_dim, kernel_size,
                                  conv_module=ModulatedDWConv2d)
        self.conv2 = StyledConv2d(channels_out, channels_out, style_dim, kernel_size,
                                  conv_module=ModulatedDWConv2d)
        self.to_img = MultichannelImage(channels_out, 12, style_dim, kernel_size=1)

    def forward(self, hidden, style, noise=(None, None)):
        """style: (N, style_dim) for every layer, or (N, 3, style_dim)."""
        s = [style] * 3 if style.ndim == 2 else [style[:, 0], style[:, 1], style[:, 2]]
        hidden = self.up(hidden, s[0])
        hidden = self.conv1(hidden, s[0], noise=noise[0])
        hidden = self.conv2(hidden, s[1], noise=noise[1])
        return hidden, self.to_img(hidden, s[2])

    def wsize(self):
        return 3


class MobileSynthesisNetwork(nn.Module):
    """W or W+ (N, 23, 512) -> {"img": (N, 3, 1024, 1024), "freq": [12-channel
    Haar-packed images per resolution], "noise": [noise used]}."""

    def __init__(self, style_dim=512, channels=FFHQ_1024_CHANNELS):
        super().__init__()
        self.style_dim = style_dim
        self.input = ConstantInput(channels[0])
        self.conv1 = StyledConv2d(channels[0], channels[0], style_dim, kernel_size=3)
        self.to_img1 = MultichannelImage(channels[0], 12, style_dim, kernel_size=1)
        self.layers = nn.ModuleList(
            MobileSynthesisBlock(cin, cout, style_dim) for cin, cout in zip(channels, channels[1:]))
        self.idwt = DWTInverse(mode="zero", wave="db1")
        self.register_buffer("device_info", torch.zeros(1))

    def wsize(self):
        return 3 * len(self.layers) + 2

    def make_noise(self, generator=None):
        """One noise map per noise layer (shared by the batch), as
        MobileStyleGAN draws them: (1, 1, 4, 4) for conv1, then (2, 1, s, s) per block."""
        dev = self.device_info.device
        noise = [torch.randn(1, 1, 4, 4, generator=generator, device=dev)]
        noise += [torch.randn(2, 1, 2 ** (i + 3), 2 ** (i + 3), generator=generator, device=dev)
                  for i in range(len(self.layers))]
        return noise

    def forward(self, style, noise=None):
        """noise: a list as make_noise() returns (looked up by size, as
        MobileStyleGAN's NoiseManager does), or None for fresh noise."""
        if noise is None:
            noise = self.make_noise()
        by_size = {n.shape[-1]: n for n in noise}
        out = {"noise": [], "freq": [], "img": None}
        hidden = self.input(style)
        out["noise"].append(by_size[hidden.shape[-1]])
        hidden = self.conv1(hidden, style if style.ndim == 2 else style[:, 0],
                            noise=out["noise"][-1])
        out["freq"].append(self.to_img1(hidden, style if style.ndim == 2 else style[:, 1]))
        for i, block in enumerate(self.layers):
            out["noise"].append(by_size[2 ** (i + 3)])
            s = style if style.ndim == 2 else style[:, 3 * i + 1: 3 * i + 4]
            hidden, freq = block(hidden, s, noise=out["noise"][-1])
            out["freq"].append(freq)
        out["img"] = hrops.haar_idwt(out["freq"][-1])
        return out


class MobileStyleGAN(nn.Module):
    """Mapping network + student synthesis network + the truncation mean."""

    def __init__(self, style_dim=512, n_mlp=8, channels=FFHQ_1024_CHANNELS):
        super().__init__()
        self.mapping_net = MappingNetwork(style_dim, n_mlp)
        self.student = MobileSynthesisNetwork(style_dim, channels)
        self.register_buffer("style_mean", torch.zeros(1, style_dim))

    @torch.no_grad()
    def compute_style_mean(self, n=4096, generator=None):
        z = torch.randn(n, self.mapping_net.style_dim, generator=generator,
                        device=self.style_mean.device)
        self.style_mean.copy_(self.mapping_net(z).mean(0, keepdim=True))

    def forward(self, z, truncation=1.0, noise=None):
        w = self.mapping_net(z)
        if truncation != 1.0:
            w = self.style_mean + truncation * (w - self.style_mean)
        return self.student(w, noise=noise)["img"]


def load_checkpoint(model, path, allow_pickle=False):
    """Loads an official MobileStyleGAN Lightning checkpoint (keys
    `mapping_net.*`, `student.*`, `style_mean`; the teacher is ignored) or a
    plain state_dict of this model. torch.load(weights_only=True) unless
    allow_pickle=True is passed explicitly for a trusted file."""
    ckpt = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    state = ckpt.get("state_dict", ckpt)
    wanted = {k: v for k, v in state.items()
              if k.startswith(("mapping_net.", "student.")) or k == "style_mean"}
    style_mean = wanted.get("style_mean")
    if style_mean is not None and style_mean.dim() == 3:  # stored per W+ entry: (1, wsize, dim)
        wanted["style_mean"] = style_mean[:, 0]
    model.load_state_dict(wanted)
    return model


def set_impl(model, impl):
    """Sets impl= on every hrops layer of `model` (e.g. "ref" for the pure
    PyTorch path); returns the model."""
    for m in model.modules():
        if hasattr(m, "impl"):
            m.impl = impl
    return model


@torch.no_grad()
def generate(model, n, seed=0, truncation=0.5, out_dir="mobilestylegan_out", batch=4):
    """Writes n images (PNG) sampled with `seed`; returns their paths."""
    from .png import write_png
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    paths = []
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), model.mapping_net.style_dim, generator=gen)
        imgs = model(z, truncation=truncation, noise=model.student.make_noise(gen))
        for i, img in enumerate(imgs):
            paths.append(os.path.join(out_dir, f"{seed:04d}_{start + i:04d}.png"))
            write_png(paths[-1], (img + 1) / 2)
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="official checkpoint or state_dict (random weights if absent)")
    p.add_argument("-n", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=0.5)
    p.add_argument("--out", default="mobilestylegan_out")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = MobileStyleGAN().eval()
    if args.ckpt:
        load_checkpoint(model, args.ckpt)
    else:
        print("no --ckpt: random weights (the images show noise patterns)")
        model.compute_style_mean()
    for path in generate(model, args.n, args.seed, args.truncation, args.out):
        print(path)


if __name__ == "__main__":
    main()
