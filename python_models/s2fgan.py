"""S2FGAN (Yan98/S2FGAN, model.py and op/) on hrops: sketch-to-face
generation with attribute editing, inference side.

Module and parameter names follow S2FGAN's model.py, so its checkpoints load
(load_s2fgan_state_dict). The StyleGAN2 ops run on hrops:
fused_bias_leaky_relu, upfirdn2d and modulated_conv2d; every layer takes
`impl` (set for a whole model with use_impl(model, impl)): "ref" runs the
pure-PyTorch fallback those code bases use on CPU (unfused bias + leaky
ReLU, upfirdn2d as pad + conv2d, grouped modulated conv).

Pieces: Encoder (image: Encoder(3, 64, 6) at 256^2; sketch: Encoder(1, 128, 5)
on the binarised half-size sketch), Generator (the 256^2 StyleGAN2 decoder fed
one style vector for every layer, no noise), Embeding (the S2F-DEC attribute
mapping network) and Classifier.edit (S2F-DIS).

Entry point (sketch PNG + attribute shifts in, edited face PNG out):
  python -m python_models.s2fgan --checkpoint s2fgan.pt --sketch sketch.png \\
      --shift Smiling=2 --out face.png [--sweep Smiling --sweep-out strip.png]
"""
import argparse
import math

import torch
from torch import nn
from torch.nn import functional as F

import hrops

from ._impl import use_impl

ATTRIBUTES = ["Smiling", "Male", "No_Beard", "Eyeglasses", "Young", "Bangs", "Narrow_Eyes",
              "Pale_Skin", "Big_Lips", "Big_Nose", "Mustache", "Chubby"]
BLUR = (1, 3, 3, 1)


def make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel, bias=True, negative_slope=0.2, scale=2 ** 0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope, self.scale, self.impl = negative_slope, scale, None

    def forward(self, x):
        return hrops.fused_bias_leaky_relu(x, self.bias, self.negative_slope, self.scale,
                                           impl=self.impl)


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor=1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)
        self.pad, self.impl = pad, None

    def forward(self, x):
        return hrops.upfirdn2d(x, self.kernel, pad=self.pad, impl=self.impl)


class Upsample(nn.Module):
    def __init__(self, kernel, factor=2):
        super().__init__()
        self.factor, self.impl = factor, None
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return hrops.upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad, impl=self.impl)


class EqualConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation, self.lr_mul, self.impl = activation, lr_mul, None
        self.scale = 1 / math.sqrt(in_dim) * lr_mul

    def forward(self, x):
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return hrops.fused_bias_leaky_relu(F.linear(x, self.weight * self.scale), bias,
                                               impl=self.impl)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv1d(nn.Module):
    """S2FGAN's 1-D equalised conv; note its scale 2 / sqrt(in * out * k)."""

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size))
        self.scale = 2 / math.sqrt(in_channel * out_channel * kernel_size)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x):
        return F.conv1d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class ModulatedConv2d(nn.Module):
    """rosinality's ModulatedConv2d on hrops.modulated_conv2d. `blur` holds
    the (fixed) blur kernel buffer that S2FGAN's checkpoints carry."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True,
                 upsample=False, downsample=False, blur_kernel=BLUR):
        super().__init__()
        self.kernel_size, self.in_channel, self.out_channel = kernel_size, in_channel, out_channel
        self.upsample, self.downsample, self.demodulate = upsample, downsample, demodulate
        self.blur_kernel, self.impl = tuple(blur_kernel), None
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size,
                                               kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, x, style):
        return hrops.modulated_conv2d(x, self.scale * self.weight[0], self.modulation(style),
                                      self.demodulate, 2 if self.upsample else 1,
                                      2 if self.downsample else 1, self.blur_kernel,
                                      impl=self.impl)


class ConstantInput(nn.Module):
    def __init__(self, channel, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, style):
        return self.input.repeat(style.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """Upsampling modulated conv + act, modulated conv + act (no noise)."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, blur_kernel=BLUR,
                 demodulate=True):
        super().__init__()
        self.conv1 = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim,
                                     demodulate, upsample=True, blur_kernel=blur_kernel)
        self.activate1 = FusedLeakyReLU(out_channel)
        self.conv2 = ModulatedConv2d(out_channel, out_channel, kernel_size, style_dim,
                                     demodulate, blur_kernel=blur_kernel)
        self.activate2 = FusedLeakyReLU(out_channel)

    def forward(self, x, style):
        return self.activate2(self.conv2(self.activate1(self.conv1(x, style)), style))


class ToRGB(nn.Module):
    def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=BLUR):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class Generator(nn.Module):
    """The 256^2 decoder: one style vector (N, style_dim) drives every layer.
    channels: the width at 4^2, 8^2, ... (S2FGAN's by default; a shorter list
    makes a smaller output, 4 * 2^(len - 1) pixels square)."""

    def __init__(self, style_dim=512, channel_multiplier=1, blur_kernel=BLUR, channels=None):
        super().__init__()
        cm = channel_multiplier
        chans = channels or [512, 512, 512, 512, 256 * cm, 128 * cm, 64 * cm]  # 4, 8, ..., 256
        self.input = ConstantInput(chans[0])
        self.conv1 = ModulatedConv2d(chans[0], chans[0], 3, style_dim, blur_kernel=blur_kernel)
        self.activate1 = FusedLeakyReLU(chans[0])
        self.to_rgb1 = ToRGB(chans[0], style_dim, upsample=False)
        self.convs = nn.ModuleList(StyledConv(cin, cout, 3, style_dim, blur_kernel)
                                   for cin, cout in zip(chans[:-1], chans[1:]))
        self.to_rgbs = nn.ModuleList(ToRGB(c, style_dim) for c in chans[1:])

    def forward(self, style):
        x = self.activate1(self.conv1(self.input(style), style))
        skip = self.to_rgb1(x, style)
        for conv, to_rgb in zip(self.convs, self.to_rgbs):
            x = conv(x, style)
            skip = to_rgb(x, style, skip)
        return skip


class ConvLayer(nn.Sequential):
    def __init__(self, in_channel, out_channel, kernel_size, downsample=False, blur_kernel=BLUR,
                 bias=True, activate=True):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=padding,
                                  stride=stride, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel, out_channel, blur_kernel=BLUR, downsample=True):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=downsample)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=downsample, activate=False,
                              bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Encoder(nn.Module):
    """Image or sketch -> style (N, 512): the mean of per-level heads,
    PixelNorm, then five EqualLinear (lr_mul 0.01) layers."""
    POOL = {32: 4, 64: 3, 128: 2, 256: 2, 512: 1}

    def __init__(self, in_channels=1, dim=64, n_downsample=5, max_dim=512):
        super().__init__()
        self.vision = ConvLayer(in_channels, dim, 1)
        convs, heads = [], []
        cur, nxt = dim, dim * 2
        for _ in range(n_downsample):
            convs.append(nn.Sequential(ResBlock(cur, nxt), ResBlock(nxt, nxt, downsample=False)))
            pool = self.POOL[nxt]
            heads.append(nn.Sequential(
                nn.AdaptiveAvgPool2d(pool), nn.Flatten(),
                EqualLinear(nxt * pool ** 2, 512, lr_mul=0.01, activation="fused_lrelu"),
                *[EqualLinear(512, 512, lr_mul=0.01, activation="fused_lrelu") for _ in range(3)]))
            cur, nxt = nxt, min(max_dim, nxt * 2)
        self.model = nn.ModuleList(convs)
        self.linear = nn.ModuleList(heads)
        self.norm = PixelNorm()
        self.final = nn.Sequential(*[EqualLinear(512, 512, lr_mul=0.01, activation="fused_lrelu")
                                     for _ in range(5)])

    def forward(self, x):
        x = self.vision(x)
        style = 0
        for conv, head in zip(self.model, self.linear):
            x = conv(x)
            style = style + head(x)
        return self.final(self.norm(style / len(self.model)))


class Modify(nn.Module):
    """One block of the attribute mapping network, with the Gram-matrix step."""

    def __init__(self, in_channel):
        super().__init__()
        self.model = nn.Sequential(EqualConv1d(in_channel, 64, 3, padding=1, bias=False),
                                   nn.LeakyReLU(0.2),
                                   EqualConv1d(64, 64, 3, padding=1, bias=False),
                                   nn.LeakyReLU(0.2))
        self.w = EqualConv1d(64, 64, 3, padding=1, bias=False)
        self.h = EqualConv1d(64, 64, 3, padding=1, bias=False)
        self.n = EqualConv1d(64, 64, 3, padding=1, bias=False)
        self.skip = EqualConv1d(in_channel, 64, 1, bias=False)

    def forward(self, x_in):
        x = self.model(x_in)
        f = self.w(x)
        f = f / (torch.norm(f, p=2, dim=1, keepdim=True) + 1e-8)
        return self.n(f.bmm(f.permute(0, 2, 1)).bmm(self.h(x))) + self.skip(x_in)


class Embeding(nn.Module):
    """S2F-DEC's attribute mapping network: edit(x, a) = x + d(x, a), with
    d = 0 exactly when a = 0 (no biases, LReLU(0) = 0, the latent row masked)."""

    def __init__(self, c_dim=len(ATTRIBUTES)):
        super().__init__()
        self.directions = nn.Parameter(torch.zeros(1, c_dim, 512))
        self.b1 = Modify(c_dim + 1)
        self.b2, self.b3, self.b4 = Modify(64), Modify(64), Modify(64)
        self.b5 = EqualConv1d(64, 1, 1, bias=False)

    def forward(self, x, a, reg=False):
        n = a.shape[0]
        editing = (a.sum(1, keepdim=True) != 0).to(x.dtype).view(n, 1, 1)
        d = torch.cat((self.directions * a.view(n, -1, 1), x.view(n, 1, 512) * editing), 1)
        d = self.b5(self.b4(self.b3(self.b2(self.b1(d))))).view(n, 512)
        return d if reg else x + d


class Classifier(nn.Module):
    """S2F-DIS's linear attribute classifier; edit moves x along its
    L2-normalised columns: x + sum_k a_k W[:, k] / |W[:, k]|."""

    def __init__(self, c_dim=len(ATTRIBUTES)):
        super().__init__()
        self.W = nn.Parameter(torch.randn(512, c_dim))
        self.c_dim = c_dim
        nn.init.xavier_uniform_(self.W.data, gain=1)

    def forward(self, x):
        return x @ (self.W / self.W.norm(dim=0))

    def edit(self, x, a):
        w = self.W / self.W.norm(dim=0)
        return x + (w.view(1, 512, -1) * a.view(a.shape[0], 1, -1)).sum(-1)


def downsample_sketch(sketch):
    """S2FGAN's sketch preprocessing: bilinear half size, then binarised at 0."""
    s = F.interpolate(sketch, scale_factor=0.5, mode="bilinear", align_corners=True,
                      recompute_scale_factor=True)
    return (s >= 0).to(sketch.dtype)


class S2FGAN(nn.Module):
    """Inference model. model_type 0: S2F-DIS (Classifier.edit); 1: S2F-DEC (Embeding)."""

    def __init__(self, c_dim=len(ATTRIBUTES), model_type=1):
        super().__init__()
        self.model_type = model_type
        self.encoder_sketch = Encoder(1, 128, 5)
        self.encoder_img = Encoder(3, 64, 6)
        self.generator = Generator()
        self.classifier = Classifier(c_dim)
        if model_type == 1:
            self.edit = Embeding(c_dim)

    def edit_latent(self, latent, shifts):
        if self.model_type == 0:
            return self.classifier.edit(latent, shifts)
        return self.edit(latent, shifts)

    def sketch_to_face(self, sketch, shifts):
        """sketch (N, 1, 256, 256) in [-1, 1], shifts (N, c) -> faces (N, 3, 256, 256)."""
        latent = self.encoder_sketch(downsample_sketch(sketch))
        return self.generator(self.edit_latent(latent, shifts))


# Training-only parts of S2FGAN's Model, whose weights a checkpoint also holds.
TRAINING_ONLY = ("img_discriminator.", "domain_discriminator.", "vgg.")


def checkpoint_weights(checkpoint):
    """(state_dict, which) from what S2FGAN's train.py saves, {"model": ...,
    "model_ema": ...} (Yan98/S2FGAN train.py, train): the moving average
    "model_ema", the weights S2FGAN samples with, else "model"; or a bare
    Model state_dict ("state_dict")."""
    for part in ("model_ema", "model"):
        if isinstance(checkpoint.get(part), dict):
            return checkpoint[part], part
    return checkpoint, "state_dict"


def load_s2fgan_state_dict(model, state_dict):
    """Loads S2FGAN's Model weights: a checkpoint as train.py saves it (its
    model_ema, see checkpoint_weights) or a Model state_dict (DataParallel
    'module.' prefixes stripped; discriminators and VGG skipped); every
    inference weight must be present."""
    state_dict, _ = checkpoint_weights(state_dict)
    clean = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if not key.startswith(TRAINING_ONLY):
            clean[key] = value
    model.load_state_dict(clean, strict=True)
    return model


def _parse_shifts(items, c_dim):
    shifts = torch.zeros(1, c_dim)
    for item in items:
        name, _, value = item.partition("=")
        if name not in ATTRIBUTES[:c_dim]:
            raise SystemExit(f"unknown attribute {name!r}; choose from {ATTRIBUTES[:c_dim]}")
        shifts[0, ATTRIBUTES.index(name)] = float(value)
    return shifts


def main(argv=None):
    from .png import write_png
    from .png_read import read_png
    p = argparse.ArgumentParser(description="S2FGAN: sketch + attribute shifts -> face (PNG)")
    p.add_argument("--checkpoint", required=True,
                   help="S2FGAN checkpoint (train.py's, model_ema used) or Model state_dict")
    p.add_argument("--sketch", required=True, help="sketch PNG, 256x256 (white lines on black)")
    p.add_argument("--shift", action="append", default=[], help="Attribute=value, e.g. Smiling=2")
    p.add_argument("--model-type", type=int, default=1, help="0: S2F-DIS, 1: S2F-DEC")
    p.add_argument("--out", default="face.png")
    p.add_argument("--sweep", help="attribute whose strength is swept from -4 to 4")
    p.add_argument("--sweep-out", default="sweep.png")
    p.add_argument("--impl", default=None, help="hrops impl: auto, ref, cpu, cuda")
    args = p.parse_args(argv)
    model = S2FGAN(model_type=args.model_type)
    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    load_s2fgan_state_dict(model, checkpoint)
    print(f"{args.checkpoint}: loaded {checkpoint_weights(checkpoint)[1]}")
    use_impl(model.eval(), args.impl)
    sketch = read_png(args.sketch).mean(0, keepdim=True)[None] * 2 - 1
    shifts = _parse_shifts(args.shift, model.classifier.c_dim)
    with torch.no_grad():
        write_png(args.out, (model.sketch_to_face(sketch, shifts)[0] + 1) / 2)
        if args.sweep:
            k = ATTRIBUTES.index(args.sweep)
            strengths = torch.linspace(-4, 4, 9)
            batch = shifts.repeat(len(strengths), 1)
            batch[:, k] = strengths
            faces = model.sketch_to_face(sketch.repeat(len(strengths), 1, 1, 1), batch)
            write_png(args.sweep_out, (torch.cat(list(faces), dim=2) + 1) / 2)


if __name__ == "__main__":
    main()
