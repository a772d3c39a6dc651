"""S2FGAN's decoder written the original (rosinality) way from Yan98/S2FGAN
model.py and op/ (fused_act.py, upfirdn2d.py),
on the pure-PyTorch fallback ops: per-sample modulated weights in one grouped
convolution, upfirdn2d as zero-insert + pad + conv2d, unfused bias + leaky
ReLU. Test-only oracle for python_models.s2fgan: its random state_dict must
load into the hrops model and give the same images."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from hrops import ref


def _upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    return ref.upfirdn2d(x, kernel, up, up, down, down, pad[0], pad[1], pad[0], pad[1])


def _make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x):
        return ref.fused_bias_leaky_relu(x, self.bias, 0.2, 2 ** 0.5)


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor=1):
        super().__init__()
        self.register_buffer("kernel", _make_kernel(kernel) * upsample_factor ** 2)
        self.pad = pad

    def forward(self, x):
        return _upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel, factor=2):
        super().__init__()
        self.register_buffer("kernel", _make_kernel(kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return _upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias_init=0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.scale = 1 / math.sqrt(in_dim)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


class ModulatedConv2d(nn.Module):
    def __init__(self, cin, cout, k, style_dim, demodulate=True, upsample=False):
        super().__init__()
        self.k, self.cout, self.upsample, self.demodulate = k, cout, upsample, demodulate
        if upsample:
            p = (4 - 2) - (k - 1)
            self.blur = Blur((1, 3, 3, 1), pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(cin * k ** 2)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1)

    def forward(self, x, style):
        n, cin, h, w = x.shape
        weight = self.scale * self.weight * self.modulation(style).view(n, 1, cin, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, -1, 1, 1, 1)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * cin, self.cout, self.k, self.k)
            out = F.conv_transpose2d(x.view(1, n * cin, h, w), weight, stride=2, groups=n)
            return self.blur(out.view(n, self.cout, *out.shape[2:]))
        out = F.conv2d(x.view(1, n * cin, h, w), weight.view(n * self.cout, cin, self.k, self.k),
                       padding=self.k // 2, groups=n)
        return out.view(n, self.cout, h, w)


class StyledConv(nn.Module):
    def __init__(self, cin, cout, style_dim):
        super().__init__()
        self.conv1 = ModulatedConv2d(cin, cout, 3, style_dim, upsample=True)
        self.activate1 = FusedLeakyReLU(cout)
        self.conv2 = ModulatedConv2d(cout, cout, 3, style_dim)
        self.activate2 = FusedLeakyReLU(cout)

    def forward(self, x, style):
        return self.activate2(self.conv2(self.activate1(self.conv1(x, style)), style))


class ToRGB(nn.Module):
    def __init__(self, cin, style_dim, upsample=True):
        super().__init__()
        if upsample:
            self.upsample = Upsample((1, 3, 3, 1))
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channel):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, 4, 4))


class Generator(nn.Module):
    def __init__(self, style_dim=512):
        super().__init__()
        chans = [512, 512, 512, 512, 256, 128, 64]
        self.input = ConstantInput(512)
        self.conv1 = ModulatedConv2d(512, 512, 3, style_dim)
        self.activate1 = FusedLeakyReLU(512)
        self.to_rgb1 = ToRGB(512, style_dim, upsample=False)
        self.convs = nn.ModuleList(StyledConv(a, b, style_dim) for a, b in zip(chans, chans[1:]))
        self.to_rgbs = nn.ModuleList(ToRGB(c, style_dim) for c in chans[1:])

    def forward(self, style):
        x = self.input.input.repeat(style.shape[0], 1, 1, 1)
        x = self.activate1(self.conv1(x, style))
        skip = self.to_rgb1(x, style)
        for conv, to_rgb in zip(self.convs, self.to_rgbs):
            x = conv(x, style)
            skip = to_rgb(x, style, skip)
        return skip
